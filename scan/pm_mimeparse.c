/* pm_mimeparse.c - GMime parsing with shape limits counted as GMime reads. */
#include "pm_mimeparse.h"
#include "pm_mem.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* Boundaries are compared on at most this many bytes (see the header). */
#define S_KEY_MAX 256

struct pm_mimeparse_t {
    pm_attach_limits_t lim;
    size_t parts; /* counted over every parse of this message */
    size_t headers;
    size_t header_bytes;
    char *exceeded; /* the first limit exceeded */
};

static pthread_once_t s_once = PTHREAD_ONCE_INIT;

static void
s_init(void)
{
    g_mime_init();
}

void
pm_mime_init(void)
{
    pthread_once(&s_once, s_init);
}

/* One call of pm_mimeparse_message: the bytes GMime reads and what is
 * known about them. Offsets are into MSG. */
typedef struct {
    pm_mimeparse_t *owner;
    GMimeParserOptions *opts;
    const char *msg;
    size_t len;
    size_t next_line;    /* next line start not yet looked at */
    size_t last_line;    /* start of the last line looked at */
    bool in_headers;     /* the lines looked at are a header block */
    bool inner_next;     /* and the block's body is a message's headers */
    size_t field;        /* bytes of the header field being read */
    GHashTable *bounds;  /* declared boundary keys */
    gint64 prev_header;  /* offset of the previous header field, or -1 */
    size_t part_headers; /* fields in the current part so far */
    size_t part_bytes;
} s_pass_t;

/* The stream GMime reads: a memory stream that counts boundary lines in
 * what it hands over and hands over nothing once a limit is exceeded.
 * GObject names it, so it does not follow the s_ convention. */
typedef struct {
    GMimeStreamMem parent;
    s_pass_t *pass; /* NULL once the parse is over */
} PmGuardStream;

typedef struct {
    GMimeStreamMemClass parent_class;
} PmGuardStreamClass;

G_DEFINE_TYPE(PmGuardStream, pm_guard_stream, GMIME_TYPE_STREAM_MEM)

static void
s_vexceed(pm_mimeparse_t *self, const char *fmt, va_list ap)
{
    if (!self->exceeded)
        self->exceeded = pm_vasprintf(fmt, ap);
}

void
pm_mimeparse_exceed(pm_mimeparse_t *self, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    s_vexceed(self, fmt, ap);
    va_end(ap);
}

/* The key of the line starting at S: what follows "--" up to white space or
 * the end of the line, at most S_KEY_MAX bytes. Returns false when the
 * line does not start with "--". KEY must hold S_KEY_MAX + 1 bytes. */
static bool
s_line_key(const s_pass_t *pass, size_t s, char *key)
{
    if (pass->len - s < 2 || pass->msg[s] != '-' || pass->msg[s + 1] != '-')
        return false;
    size_t k = 0;
    for (size_t i = s + 2; i < pass->len && k < S_KEY_MAX; i++) {
        char c = pass->msg[i];
        if (c == ' ' || c == '\t' || c == '\r' || c == '\n')
            break;
        key[k++] = c;
    }
    key[k] = '\0';
    return true;
}

/* Whether KEY opens a part of a boundary in BOUNDS, or (ONLY set) of the
 * boundary ONLY. A closing "--B--" line opens nothing. */
static bool
s_opens_part(GHashTable *bounds, const char *only, const char *key)
{
    return only ? strcmp(key, only) == 0 : g_hash_table_contains(bounds, key);
}

static void
s_count_part(s_pass_t *pass)
{
    pm_mimeparse_t *self = pass->owner;
    if (++self->parts > self->lim.max_parts)
        pm_mimeparse_exceed(self, "more than %zu MIME parts",
                            self->lim.max_parts);
}

static bool
s_is_boundary(const s_pass_t *pass, size_t s)
{
    char key[S_KEY_MAX + 1];
    return s_line_key(pass, s, key) && g_hash_table_contains(pass->bounds, key);
}

/* Follows header blocks through the line [S, E) to size the header field
 * GMime is reading before it has all of it: GMime keeps a field whole and
 * parses it at once (a 10 MiB To: or Content-Type: of a million
 * addresses or parameters costs gigabytes and minutes), so the field
 * limit must stop the input before the field ends. A block begins the
 * message, follows a boundary line, and follows a block that declares a
 * message/ type; an empty line ends it. */
static void
s_track_line(s_pass_t *pass, size_t s, size_t e, bool boundary)
{
    const char *l = pass->msg + s;
    if (boundary) {
        pass->in_headers = true;
        pass->field = 0;
    } else if (!pass->in_headers) {
        return;
    } else if (l[0] == '\n' || (e - s >= 2 && l[0] == '\r' && l[1] == '\n')) {
        pass->in_headers = pass->inner_next;
        pass->inner_next = false;
        pass->field = 0;
    } else {
        if (l[0] != ' ' && l[0] != '\t')
            pass->field = 0; /* not a continuation: a new field */
        pass->field += e - s;
        if (pass->field > pass->owner->lim.max_header_bytes)
            pm_mimeparse_exceed(pass->owner,
                                "more than %zu bytes of header in one part",
                                pass->owner->lim.max_header_bytes);
    }
}

/* Looks at every line that starts before UPTO: GMime now has those bytes. A
 * line that starts there may end far beyond; the whole message is in
 * memory, so it is read at once, and each byte is read only once. */
static void
s_advance(s_pass_t *pass, size_t upto)
{
    while (pass->next_line < upto && pass->next_line < pass->len) {
        size_t s = pass->next_line;
        const char *nl = memchr(pass->msg + s, '\n', pass->len - s);
        size_t e = nl ? (size_t)(nl - pass->msg) + 1 : pass->len;
        bool boundary = s_is_boundary(pass, s);
        if (boundary)
            s_count_part(pass);
        s_track_line(pass, s, e, boundary);
        pass->last_line = s;
        pass->next_line = e;
    }
}

/* The header at OFFSET was read by GMime; the stream may be up to a read
 * buffer further, having followed those lines without what this header
 * says (a boundary, a message/ type). Follow them again from OFFSET, which
 * is in a header block. Only the header itself and one read buffer, as
 * the last line's end is known: cheap. */
static void
s_retrack(s_pass_t *pass, size_t offset)
{
    pass->in_headers = true;
    pass->field = 0;
    size_t s = offset;
    while (s < pass->next_line) {
        size_t e = pass->next_line;
        if (s < pass->last_line) {
            const char *nl = memchr(pass->msg + s, '\n', pass->last_line - s);
            e = nl ? (size_t)(nl - pass->msg) + 1 : pass->last_line;
        }
        s_track_line(pass, s, e, s_is_boundary(pass, s));
        s = e;
    }
}

/* A boundary KEY declared by the header at OFFSET: lines after it that
 * GMime already has were looked at without it. Look again, for KEY only.
 * That is the header itself and one read buffer: cheap. */
static void
s_catch_up(s_pass_t *pass, size_t offset, const char *key)
{
    char line[S_KEY_MAX + 1];
    size_t s = offset;
    while (s <= pass->last_line && s < pass->next_line) {
        if (s_line_key(pass, s, line) && s_opens_part(NULL, key, line))
            s_count_part(pass);
        const char *nl = memchr(pass->msg + s, '\n', pass->last_line - s);
        if (!nl)
            break;
        s = (size_t)(nl - pass->msg) + 1;
    }
}

static ssize_t
s_stream_read(GMimeStream *stream, char *buf, size_t len)
{
    s_pass_t *pass = ((PmGuardStream *)stream)->pass;
    if (pass && pass->owner->exceeded)
        return 0; /* GMime takes this for the end of the message */
    GMimeStreamClass *parent = GMIME_STREAM_CLASS(pm_guard_stream_parent_class);
    ssize_t n = parent->read(stream, buf, len);
    if (pass && n > 0)
        s_advance(pass, (size_t)stream->position);
    return n;
}

static void
pm_guard_stream_class_init(PmGuardStreamClass *klass)
{
    GMIME_STREAM_CLASS(klass)->read = s_stream_read;
}

static void
pm_guard_stream_init(PmGuardStream *self)
{
    self->pass = NULL;
}

/* Whether the header field at OFFSET begins a new part: an empty line or
 * a boundary line lies between it and the previous field. */
static bool
s_new_part(s_pass_t *pass, gint64 offset)
{
    if (pass->prev_header < 0 || offset <= pass->prev_header ||
        (guint64)offset > pass->len)
        return true;
    char key[S_KEY_MAX + 1];
    size_t s = (size_t)pass->prev_header, end = (size_t)offset;
    for (;;) {
        const char *nl = memchr(pass->msg + s, '\n', end - s);
        if (!nl)
            return false;
        s = (size_t)(nl - pass->msg) + 1;
        if (s >= end)
            return false;
        if (pass->msg[s] == '\n' ||
            (pass->msg[s] == '\r' && s + 1 < end && pass->msg[s + 1] == '\n'))
            return true;
        if (s_line_key(pass, s, key) &&
            g_hash_table_contains(pass->bounds, key))
            return true;
    }
}

/* Learns the boundary a Content-Type field declares, with GMime's own
 * parameter parser (the one that will split the multipart). */
static void
s_learn_boundary(s_pass_t *pass, const char *value, gint64 offset)
{
    GMimeContentType *ct = g_mime_content_type_parse(pass->opts, value);
    const char *b =
        ct ? g_mime_content_type_get_parameter(ct, "boundary") : NULL;
    if (b) {
        char key[S_KEY_MAX + 1];
        size_t k = 0;
        while (b[k] && k < S_KEY_MAX && !strchr(" \t\r\n", b[k])) {
            key[k] = b[k];
            k++;
        }
        key[k] = '\0';
        if (!g_hash_table_contains(pass->bounds, key)) {
            g_hash_table_add(pass->bounds, g_strdup(key));
            if (offset >= 0 && (guint64)offset < pass->len)
                s_catch_up(pass, (size_t)offset, key);
        }
    }
    if (ct)
        g_object_unref(ct);
}

static void
s_on_header(GMimeParser *parser, const char *name, const char *value,
            gint64 offset, gpointer user_data)
{
    (void)parser;
    s_pass_t *pass = user_data;
    pm_mimeparse_t *self = pass->owner;
    const pm_attach_limits_t *lim = &self->lim;
    size_t bytes = strlen(name) + (value ? strlen(value) : 0);
    if (s_new_part(pass, offset))
        pass->part_headers = pass->part_bytes = 0;
    pass->prev_header = offset;
    pass->part_headers++;
    pass->part_bytes += bytes;
    self->headers++;
    self->header_bytes += bytes;
    if (pass->part_headers > lim->max_headers)
        pm_mimeparse_exceed(self, "more than %zu header fields in one part",
                            lim->max_headers);
    else if (pass->part_bytes > lim->max_header_bytes)
        pm_mimeparse_exceed(self, "more than %zu bytes of header in one part",
                            lim->max_header_bytes);
    else if (self->headers > lim->max_total_headers)
        pm_mimeparse_exceed(self, "more than %zu header fields",
                            lim->max_total_headers);
    else if (self->header_bytes > lim->max_total_header_bytes)
        pm_mimeparse_exceed(self, "more than %zu bytes of header",
                            lim->max_total_header_bytes);
    else if (value && g_ascii_strcasecmp(name, "Content-Type") == 0)
        s_learn_boundary(pass, value, offset);
    if (value && g_ascii_strcasecmp(name, "Content-Type") == 0) {
        const char *v = value + strspn(value, " \t\r\n");
        if (g_ascii_strncasecmp(v, "message/", 8) == 0)
            pass->inner_next = true;
    }
    if (offset >= 0 && (guint64)offset < pass->len)
        s_retrack(pass, (size_t)offset);
}

static void
s_on_warning(gint64 offset, GMimeParserWarning code, const gchar *item,
             gpointer user_data)
{
    (void)offset;
    (void)item;
    s_pass_t *pass = user_data;
    /* GMime stops building the tree below its own nesting limit: parts
     * below it were never seen. Other warnings leave a tree in which
     * every name is still checked. */
    if (code == GMIME_CRIT_NESTING_OVERFLOW)
        pm_mimeparse_exceed(pass->owner,
                            "MIME nesting deeper than GMime's limit");
}

pm_mimeparse_t *
pm_mimeparse_new(const pm_attach_limits_t *lim)
{
    pm_mimeparse_t *self = pm_calloc(1, sizeof *self);
    self->lim = *lim;
    return self;
}

void
pm_mimeparse_destroy(pm_mimeparse_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    free((*self_p)->exceeded);
    free(*self_p);
    *self_p = NULL;
}

const char *
pm_mimeparse_exceeded(const pm_mimeparse_t *self)
{
    return self->exceeded;
}

static GMimeParserOptions *
s_options(s_pass_t *pass)
{
    GMimeParserOptions *opts = g_mime_parser_options_new();
    /* Loose: decode what real mailers write (encoded words glued to text,
     * unquoted parameter values with spaces), as the recipient's client
     * will when it shows and saves the file. */
    g_mime_parser_options_set_rfc2047_compliance_mode(
        opts, GMIME_RFC_COMPLIANCE_LOOSE);
    g_mime_parser_options_set_parameter_compliance_mode(
        opts, GMIME_RFC_COMPLIANCE_LOOSE);
    g_mime_parser_options_set_warning_callback(opts, s_on_warning, pass);
    return opts;
}

GMimeMessage *
pm_mimeparse_message(pm_mimeparse_t *self, const char *msg, size_t len)
{
    if (self->exceeded)
        return NULL;
    s_pass_t pass = {.owner = self,
                     .msg = msg,
                     .len = len,
                     .prev_header = -1,
                     .in_headers = true};
    pass.bounds = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
    pass.opts = s_options(&pass);
    self->parts++; /* the message's own part, which no boundary opens */

    /* As g_mime_stream_mem_new_with_buffer, for the subclass: a copy the
     * parts' content streams can keep. */
    PmGuardStream *guard = g_object_new(pm_guard_stream_get_type(), NULL);
    GMimeStream *stream = GMIME_STREAM(guard);
    g_mime_stream_construct(stream, 0, -1);
    guard->parent.buffer = g_byte_array_sized_new((guint)len);
    g_byte_array_append(guard->parent.buffer, (const guint8 *)msg, (guint)len);
    guard->parent.owner = TRUE;
    guard->pass = &pass;

    GMimeParser *parser = g_mime_parser_new_with_stream(stream);
    g_mime_parser_set_format(parser, GMIME_FORMAT_MESSAGE);
    g_mime_parser_set_header_regex(parser, "^", s_on_header, &pass);
    GMimeMessage *message = g_mime_parser_construct_message(parser, pass.opts);

    guard->pass = NULL; /* the parts' streams outlive this call */
    g_object_unref(parser);
    g_object_unref(stream);
    g_mime_parser_options_free(pass.opts);
    g_hash_table_destroy(pass.bounds);
    return message;
}
