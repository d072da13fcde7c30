/* pm_attach.c - blocked attachment extensions, with GMime 3.0, in
 * archives (libarchive), TNEF (libytnef) and uuencoded text. */
#include "pm_attach.h"
#include "pm_archive.h"
#include "pm_mem.h"
#include "pm_mimeparse.h"
#include "pm_tnef.h"

#include <gmime/gmime.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

struct pm_attach_blocklist_t {
    char **exts; /* lower case, distinct */
    size_t n;
    pm_attach_limits_t lim; /* every field set */
};

/* What one scan collects while the tree is walked. Limits met, in the
 * parse or later, are recorded in MP (the first one counts). */
typedef struct {
    const pm_attach_blocklist_t *bl;
    pm_mimeparse_t *mp;
    pm_archive_usage_t archives; /* summed over the message */
    char *filename;              /* the hit, once found */
    char *extension;
} s_scan_t;

/* A TNEF part being listed: its attachments' names and contents go to
 * SCAN, and a limit met inside names LABEL. */
typedef struct {
    s_scan_t *scan;
    const char *label;
} s_tnef_t;

pm_attach_blocklist_t *
pm_attach_blocklist_new(char *const *exts, size_t n)
{
    if (n && !exts)
        return NULL;
    pm_attach_blocklist_t *self = pm_calloc(1, sizeof *self);
    pm_attach_blocklist_set_limits(self, NULL);
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

#define S_OR(field, def) (lim && lim->field ? lim->field : (def))

void
pm_attach_blocklist_set_limits(pm_attach_blocklist_t *self,
                               const pm_attach_limits_t *lim)
{
    if (!self)
        return;
    self->lim = (pm_attach_limits_t){
        .max_parts = S_OR(max_parts, PM_ATTACH_DEFAULT_PARTS),
        .max_depth = S_OR(max_depth, PM_ATTACH_DEFAULT_DEPTH),
        .max_headers = S_OR(max_headers, PM_ATTACH_DEFAULT_HEADERS),
        .max_header_bytes =
            S_OR(max_header_bytes, PM_ATTACH_DEFAULT_HEADER_BYTES),
        .max_total_headers =
            S_OR(max_total_headers, PM_ATTACH_DEFAULT_TOTAL_HEADERS),
        .max_total_header_bytes =
            S_OR(max_total_header_bytes, PM_ATTACH_DEFAULT_TOTAL_HEADER_BYTES),
        .max_archive_depth =
            S_OR(max_archive_depth, PM_ATTACH_DEFAULT_ARCHIVE_DEPTH),
        .max_archive_entries =
            S_OR(max_archive_entries, PM_ATTACH_DEFAULT_ARCHIVE_ENTRIES),
        .max_total_entries =
            S_OR(max_total_entries, PM_ATTACH_DEFAULT_TOTAL_ENTRIES),
        .max_archive_bytes =
            S_OR(max_archive_bytes, PM_ATTACH_DEFAULT_ARCHIVE_BYTES),
    };
}

pm_attach_limits_t
pm_attach_blocklist_limits(const pm_attach_blocklist_t *self)
{
    return self->lim;
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
    if (scan->filename || !name || !scan->bl->n)
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

static void s_walk(s_scan_t *scan, GMimeObject *obj, unsigned depth);

/* A name inside an archive: only its last path component is saved as a
 * file, so only that counts. */
static bool
s_on_archive_name(void *arg, const char *path)
{
    s_scan_t *scan = arg;
    size_t len = strlen(path);
    while (len && (path[len - 1] == '/' || path[len - 1] == '\\'))
        len--;
    size_t base = len;
    while (base && path[base - 1] != '/' && path[base - 1] != '\\')
        base--;
    char *name = pm_strndup(path + base, len - base);
    s_check_name(scan, name);
    free(name);
    return scan->filename != NULL;
}

static bool
s_on_tnef_name(void *arg, const char *name)
{
    s_scan_t *scan = ((s_tnef_t *)arg)->scan;
    s_check_name(scan, name);
    return scan->filename != NULL;
}

/* A line "begin MODE NAME" (MODE octal digits) opens a uuencoded file that
 * mail clients save as NAME; "begin-base64" is the base64 form of it. */
static void
s_check_uu_line(s_scan_t *scan, const char *line, size_t n)
{
    size_t i = 0;
    if (n < 6 || memcmp(line, "begin", 5) != 0)
        return;
    i = 5;
    if (n - i >= 7 && memcmp(line + i, "-base64", 7) == 0)
        i += 7;
    size_t sp = i;
    while (i < n && (line[i] == ' ' || line[i] == '\t'))
        i++;
    size_t mode = i;
    while (i < n && line[i] >= '0' && line[i] <= '7')
        i++;
    if (sp == mode || mode == i || i == n ||
        (line[i] != ' ' && line[i] != '\t'))
        return;
    while (i < n && (line[i] == ' ' || line[i] == '\t'))
        i++;
    while (n > i && line[n - 1] == '\r')
        n--;
    if (i == n)
        return;
    char *name = pm_strndup(line + i, n - i);
    s_check_name(scan, name);
    free(name);
}

static void
s_check_uuencode(s_scan_t *scan, const char *text, size_t len)
{
    size_t s = 0;
    while (s < len && !scan->filename) {
        const char *nl = memchr(text + s, '\n', len - s);
        size_t e = nl ? (size_t)(nl - text) : len;
        s_check_uu_line(scan, text + s, e - s);
        s = e + 1;
    }
}

/* The part's content, decoded (DECODE) or as transmitted. Caller frees. */
static GByteArray *
s_content(GMimePart *part, bool decode)
{
    GMimeDataWrapper *content = g_mime_part_get_content(part);
    if (!content)
        return NULL;
    GByteArray *bytes = g_byte_array_new();
    GMimeStream *mem = g_mime_stream_mem_new_with_byte_array(bytes);
    g_mime_stream_mem_set_owner(GMIME_STREAM_MEM(mem), FALSE);
    int rc;
    if (decode) {
        rc = (int)g_mime_data_wrapper_write_to_stream(content, mem);
    } else {
        GMimeStream *raw = g_mime_data_wrapper_get_stream(content);
        rc = raw && g_mime_stream_reset(raw) == 0
                 ? (int)g_mime_stream_write_to_stream(raw, mem)
                 : -1;
    }
    g_object_unref(mem);
    if (rc < 0) {
        g_byte_array_unref(bytes);
        return NULL;
    }
    return bytes;
}

static bool
s_is_tnef(GMimePart *part, GMimeContentType *ct)
{
    const char *name = g_mime_part_get_filename(part);
    return (ct &&
            (g_mime_content_type_is_type(ct, "application", "ms-tnef") ||
             g_mime_content_type_is_type(ct, "application", "vnd.ms-tnef"))) ||
           (name && g_ascii_strcasecmp(name, "winmail.dat") == 0);
}

/* Records that part LABEL could not be looked into completely. */
static void
s_incomplete(s_scan_t *scan, const char *why, const char *label)
{
    pm_mimeparse_exceed(scan->mp, "%s in part \"%s\"", why, label);
}

/* The names in DATA if it is an archive (found by content), counted with
 * the message's other archives; a limit or a broken archive makes the
 * scan incomplete, naming LABEL. */
static void
s_list_archive(s_scan_t *scan, const void *data, size_t len, const char *label)
{
    const pm_attach_limits_t *lim = &scan->bl->lim;
    pm_archive_limits_t alim = {lim->max_archive_depth,
                                lim->max_archive_entries,
                                lim->max_total_entries, lim->max_archive_bytes};
    char *why = NULL;
    pm_archive_result_t rc = pm_archive_list(data, len, &alim, &scan->archives,
                                             s_on_archive_name, scan, &why);
    if ((rc == PM_ARCHIVE_LIMIT || rc == PM_ARCHIVE_BROKEN) && why)
        s_incomplete(scan, why, label);
    free(why);
}

/* An attachment inside a TNEF part: an archive there is opened as one
 * attached directly would be (a client saves the file, then opens it). */
static bool
s_on_tnef_data(void *arg, const void *data, size_t len)
{
    const s_tnef_t *tnef = arg;
    s_list_archive(tnef->scan, data, len, tnef->label);
    return tnef->scan->filename != NULL;
}

/* Looks into the decoded content of a leaf part: TNEF, archive (found by
 * content, whatever the part is called) or uuencoded text. */
static void
s_look_inside(s_scan_t *scan, GMimePart *part, GMimeContentType *ct)
{
    const char *fname = g_mime_part_get_filename(part);
    char *label = fname ? g_strdup(fname)
                  : ct  ? g_mime_content_type_get_mime_type(ct)
                        : g_strdup("unnamed");
    GByteArray *data = s_content(part, true);
    if (data && s_is_tnef(part, ct)) {
        s_tnef_t tnef = {scan, label};
        if (pm_tnef_list(data->data, data->len, s_on_tnef_name, s_on_tnef_data,
                         &tnef) < 0 &&
            !scan->filename)
            s_incomplete(scan, "TNEF could not be read", label);
    } else if (data) {
        s_list_archive(scan, data->data, data->len, label);
        if (ct && g_mime_content_type_is_type(ct, "text", "*"))
            s_check_uuencode(scan, (const char *)data->data, data->len);
    }
    if (data)
        g_byte_array_unref(data);
    /* GMime's uudecoder drops the "begin" line: read it as transmitted. */
    if (g_mime_part_get_content_encoding(part) ==
        GMIME_CONTENT_ENCODING_UUENCODE) {
        GByteArray *raw = s_content(part, false);
        if (raw) {
            s_check_uuencode(scan, (const char *)raw->data, raw->len);
            g_byte_array_unref(raw);
        }
    }
    g_free(label);
}

/* GMime leaves a message/rfc822 part with a base64, quoted-printable or
 * uuencode transfer encoding unparsed (RFC 2046 forbids the encoding, but
 * mail clients decode and open it): decode it and look inside. */
static void
s_walk_encoded_message(s_scan_t *scan, GMimePart *part, unsigned depth)
{
    GByteArray *bytes = s_content(part, true);
    if (!bytes)
        return;
    GMimeMessage *inner =
        pm_mimeparse_message(scan->mp, (const char *)bytes->data, bytes->len);
    if (inner) {
        s_walk(scan, g_mime_message_get_mime_part(inner), depth);
        g_object_unref(inner);
    }
    g_byte_array_unref(bytes);
}

static void
s_walk(s_scan_t *scan, GMimeObject *obj, unsigned depth)
{
    if (!obj || scan->filename)
        return;
    if (depth > scan->bl->lim.max_depth) {
        pm_mimeparse_exceed(scan->mp, "MIME nesting deeper than %u levels",
                            scan->bl->lim.max_depth);
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
    } else if (GMIME_IS_PART(obj) && scan->bl->n) {
        /* Without a blocklist there are no names to look for: only the
         * shape limits matter, and they need no look inside. */
        s_look_inside(scan, GMIME_PART(obj), ct);
    }
}

static int
s_fail(char **why, int rc, const char *text)
{
    if (why)
        *why = pm_strdup(text);
    return rc;
}

int
pm_attach_scan(const pm_attach_blocklist_t *bl, const char *msg, size_t len,
               pm_attach_hit_t *hit, char **why)
{
    if (!bl || (!msg && len))
        return s_fail(why, -1, "invalid argument");
    if (len > (size_t)G_MAXINT32)
        return s_fail(why, -1, "message larger than 2 GiB");
    pm_mime_init();
    s_scan_t scan = {.bl = bl, .mp = pm_mimeparse_new(&bl->lim)};
    GMimeMessage *message = pm_mimeparse_message(scan.mp, msg ? msg : "", len);
    if (message) {
        /* Walked even with an empty blocklist: the depth limit. */
        s_walk(&scan, g_mime_message_get_mime_part(message), 0);
        g_object_unref(message);
    }
    const char *exceeded = pm_mimeparse_exceeded(scan.mp);
    int rc = 0;
    if (scan.filename) {
        rc = 1;
        if (hit) {
            hit->filename = scan.filename;
            hit->extension = scan.extension;
            scan.filename = scan.extension = NULL;
        }
    } else if (exceeded) {
        rc = s_fail(why, 2, exceeded);
    } else if (!message) {
        rc = s_fail(why, -1, "GMime finds no message in the input");
    }
    free(scan.filename);
    free(scan.extension);
    pm_mimeparse_destroy(&scan.mp);
    return rc;
}
