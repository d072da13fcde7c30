/* pm_attach.c - blocked attachment extensions, with GMime 3.0. */
#include "pm_attach.h"
#include "pm_mem.h"

#include <gmime/gmime.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

struct pm_attach_blocklist_t {
    char **exts; /* lower case, distinct */
    size_t n;
};

/* What one scan collects while GMime parses and while the tree is walked. */
typedef struct {
    const pm_attach_blocklist_t *bl;
    bool nesting_overflow; /* GMime stopped descending */
    bool too_deep;         /* our own walk stopped descending */
    char *filename;        /* the hit, once found */
    char *extension;
} s_scan_t;

static pthread_once_t s_once = PTHREAD_ONCE_INIT;

/* g_mime_init keeps an unlocked counter: call it exactly once. */
static void
s_init(void)
{
    g_mime_init();
}

pm_attach_blocklist_t *
pm_attach_blocklist_new(char *const *exts, size_t n)
{
    if (n && !exts)
        return NULL;
    pm_attach_blocklist_t *self = pm_calloc(1, sizeof *self);
    self->exts = pm_calloc(n ? n : 1, sizeof *self->exts);
    for (size_t i = 0; i < n; i++) {
        const char *e = exts[i];
        if (!e || !*e || strpbrk(e, "./ \t\r\n")) {
            pm_attach_blocklist_destroy(&self);
            return NULL;
        }
        char *lower = g_ascii_strdown(e, -1);
        bool dup = false;
        for (size_t j = 0; j < self->n && !dup; j++)
            dup = strcmp(self->exts[j], lower) == 0;
        if (dup)
            g_free(lower);
        else
            self->exts[self->n++] = lower;
    }
    return self;
}

void
pm_attach_blocklist_destroy(pm_attach_blocklist_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    pm_attach_blocklist_t *self = *self_p;
    for (size_t i = 0; i < self->n; i++)
        g_free(self->exts[i]);
    free(self->exts);
    free(self);
    *self_p = NULL;
}

size_t
pm_attach_blocklist_size(const pm_attach_blocklist_t *self)
{
    return self ? self->n : 0;
}

void
pm_attach_hit_clear(pm_attach_hit_t *hit)
{
    if (!hit)
        return;
    PM_FREE(&hit->filename);
    PM_FREE(&hit->extension);
}

static bool
s_blocked(const pm_attach_blocklist_t *bl, const char *ext)
{
    for (size_t i = 0; i < bl->n; i++)
        if (g_ascii_strcasecmp(bl->exts[i], ext) == 0)
            return true;
    return false;
}

/* Cleans NAME as Windows does when it saves a file (trailing dots and white
 * space go) and checks the text after the last dot. Records the first hit. */
static void
s_check_name(s_scan_t *scan, const char *name)
{
    if (scan->filename || !name)
        return;
    size_t len = strlen(name);
    while (len && strchr(". \t\r\n\v\f", name[len - 1]))
        len--;
    const char *dot = memrchr(name, '.', len);
    if (!dot || dot + 1 == name + len)
        return;
    char *ext = pm_strndup(dot + 1, (size_t)(name + len - dot - 1));
    if (s_blocked(scan->bl, ext)) {
        scan->filename = pm_strndup(name, len);
        scan->extension = ext;
    } else {
        free(ext);
    }
}

/* Every "filename" and "name" parameter in LIST, duplicates included (a
 * second "filename" another client may prefer must not slip through). */
static void
s_check_params(s_scan_t *scan, GMimeParamList *list)
{
    int n = list ? g_mime_param_list_length(list) : 0;
    for (int i = 0; i < n && !scan->filename; i++) {
        GMimeParam *p = g_mime_param_list_get_parameter_at(list, i);
        const char *pname = g_mime_param_get_name(p);
        if (pname && (g_ascii_strcasecmp(pname, "filename") == 0 ||
                      g_ascii_strcasecmp(pname, "name") == 0))
            s_check_name(scan, g_mime_param_get_value(p));
    }
}

static GMimeMessage *s_parse(s_scan_t *scan, const char *msg, size_t len);
static void s_walk(s_scan_t *scan, GMimeObject *obj, unsigned depth);

/* GMime leaves a message/rfc822 part with a base64, quoted-printable or
 * uuencode transfer encoding unparsed (RFC 2046 forbids the encoding, but
 * mail clients decode and open it): decode it and look inside. */
static void
s_walk_encoded_message(s_scan_t *scan, GMimePart *part, unsigned depth)
{
    GMimeDataWrapper *content = g_mime_part_get_content(part);
    if (!content)
        return;
    GMimeStream *mem = g_mime_stream_mem_new();
    if (g_mime_data_wrapper_write_to_stream(content, mem) >= 0) {
        GByteArray *bytes =
            g_mime_stream_mem_get_byte_array(GMIME_STREAM_MEM(mem));
        GMimeMessage *inner =
            s_parse(scan, (const char *)bytes->data, bytes->len);
        if (inner) {
            s_walk(scan, g_mime_message_get_mime_part(inner), depth);
            g_object_unref(inner);
        }
    }
    g_object_unref(mem);
}

static void
s_walk(s_scan_t *scan, GMimeObject *obj, unsigned depth)
{
    if (!obj || scan->filename || scan->too_deep)
        return;
    if (depth > PM_ATTACH_MAX_DEPTH) {
        scan->too_deep = true;
        return;
    }
    GMimeContentType *ct = g_mime_object_get_content_type(obj);
    if (ct)
        s_check_params(scan, g_mime_content_type_get_parameters(ct));
    GMimeContentDisposition *cd = g_mime_object_get_content_disposition(obj);
    if (cd)
        s_check_params(scan, g_mime_content_disposition_get_parameters(cd));

    if (GMIME_IS_MULTIPART(obj)) {
        GMimeMultipart *mp = GMIME_MULTIPART(obj);
        int n = g_mime_multipart_get_count(mp);
        for (int i = 0; i < n && !scan->filename; i++)
            s_walk(scan, g_mime_multipart_get_part(mp, i), depth + 1);
    } else if (GMIME_IS_MESSAGE_PART(obj)) {
        GMimeMessage *inner =
            g_mime_message_part_get_message(GMIME_MESSAGE_PART(obj));
        if (inner)
            s_walk(scan, g_mime_message_get_mime_part(inner), depth + 1);
    } else if (GMIME_IS_PART(obj) && ct &&
               g_mime_content_type_is_type(ct, "message", "rfc822")) {
        s_walk_encoded_message(scan, GMIME_PART(obj), depth + 1);
    }
}

static void
s_on_warning(gint64 offset, GMimeParserWarning code, const gchar *item,
             gpointer user_data)
{
    (void)offset;
    (void)item;
    s_scan_t *scan = user_data;
    /* GMime stops building the tree below its own nesting limit: parts
     * below it were never seen, so the message cannot be passed. Other
     * warnings leave a tree in which every name is still checked. */
    if (code == GMIME_CRIT_NESTING_OVERFLOW)
        scan->nesting_overflow = true;
}

static GMimeMessage *
s_parse(s_scan_t *scan, const char *msg, size_t len)
{
    GMimeParserOptions *opts = g_mime_parser_options_new();
    /* Loose: decode what real mailers write (encoded words glued to text,
     * unquoted parameter values with spaces), as the recipient's client
     * will when it shows and saves the file. */
    g_mime_parser_options_set_rfc2047_compliance_mode(
        opts, GMIME_RFC_COMPLIANCE_LOOSE);
    g_mime_parser_options_set_parameter_compliance_mode(
        opts, GMIME_RFC_COMPLIANCE_LOOSE);
    g_mime_parser_options_set_warning_callback(opts, s_on_warning, scan);

    GMimeStream *stream = g_mime_stream_mem_new_with_buffer(msg, len);
    GMimeParser *parser = g_mime_parser_new_with_stream(stream);
    g_mime_parser_set_format(parser, GMIME_FORMAT_MESSAGE);
    GMimeMessage *message = g_mime_parser_construct_message(parser, opts);
    g_object_unref(parser);
    g_object_unref(stream);
    g_mime_parser_options_free(opts);
    return message;
}

int
pm_attach_scan(const pm_attach_blocklist_t *bl, const char *msg, size_t len,
               pm_attach_hit_t *hit, char **why)
{
    if (!bl || (!msg && len)) {
        if (why)
            *why = pm_strdup("invalid argument");
        return -1;
    }
    pthread_once(&s_once, s_init);
    s_scan_t scan = {.bl = bl};
    GMimeMessage *message = s_parse(&scan, msg ? msg : "", len);
    if (!message) {
        if (why)
            *why = pm_strdup("GMime finds no message in the input");
        return -1;
    }
    if (bl->n)
        s_walk(&scan, g_mime_message_get_mime_part(message), 0);
    g_object_unref(message);

    int rc = 0;
    if (scan.filename) {
        rc = 1;
        if (hit) {
            hit->filename = scan.filename;
            hit->extension = scan.extension;
            scan.filename = scan.extension = NULL;
        }
    } else if (scan.nesting_overflow || scan.too_deep) {
        rc = -1;
        if (why)
            *why = pm_asprintf("MIME nesting deeper than %s",
                               scan.too_deep ? "privmta's limit"
                                             : "GMime's limit");
    }
    free(scan.filename);
    free(scan.extension);
    return rc;
}
