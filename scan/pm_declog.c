/* pm_declog.c - the filter's decision log (see pm_declog.h). */
#include "pm_declog.h"
#include "pm_error.h"
#include "pm_file.h"
#include "pm_mem.h"
#include "pm_text.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

/* Read by the agent (root), written by the milter's user; the group is
 * the milter's, nobody else reads addresses. */
#define S_MODE 0640
#define S_CHUNK (64u << 10)
/* Braces, key names, separators, "t" and "rev": the part of a record
 * that is not field text (generously). */
#define S_FRAME 256

struct pm_declog_t {
    pthread_mutex_t mu;
    char *path, *old;
    int fd;                /* -1: (re)opened at the next append */
    size_t half_records;   /* the current file is full at this... */
    size_t half_bytes;     /* ...or at this */
    size_t records, bytes; /* what the current file holds */
    bool need_nl;          /* it ends inside a line (a short write) */
    int64_t max_age;       /* seconds a record is kept, about */
    int64_t first_t;       /* the current file's first record, 0: none */
};

/* The texts a record holds, in the order they are written. */
static const char *const s_texts[] = {"qid",   "msgid", "from",    "verdict",
                                      "reply", "key",   "evidence"};
#define S_N_TEXTS (sizeof s_texts / sizeof s_texts[0])
#define S_VERDICT 3 /* s_texts[S_VERDICT]; "rcpt" is written before it */

static const char *const s_verdicts[] = {"accepted", "tagged", "discarded",
                                         "rejected", "tempfailed"};

/* ---- fields ----------------------------------------------------------- */

/* S (NULL: "") as a field: at most PM_DECLOG_FIELD_MAX bytes, cut at a
 * character boundary; bytes that are not UTF-8, C0 controls and DEL
 * become '?' (jansson takes only UTF-8, and what a person reads later
 * should hold no control). Caller frees. */
static char *
s_field(const char *s)
{
    const unsigned char *p = (const unsigned char *)(s ? s : "");
    char *out = pm_malloc(PM_DECLOG_FIELD_MAX + 1);
    size_t n = 0;
    while (*p) {
        size_t len = *p < 0x80 ? 1 : pm_text_utf8_seq(p, NULL);
        if (n + (len ? len : 1) > PM_DECLOG_FIELD_MAX)
            break;
        if (len == 0 || *p < 0x20 || *p == 0x7f) {
            out[n++] = '?';
            p++;
            continue;
        }
        memcpy(out + n, p, len);
        n += len;
        p += len;
    }
    out[n] = '\0';
    return out;
}

/* How long jansson writes the field S (quotes included): it escapes only
 * '"', '\\' and controls, and s_field left no control. */
static size_t
s_json_len(const char *s)
{
    size_t n = 2;
    for (; *s; s++)
        n += (*s == '"' || *s == '\\') ? 2 : 1;
    return n;
}

/* D's recipients that fit beside the rest (USED bytes) in one record. */
static json_t *
s_rcpts(const pm_decision_t *d, size_t used)
{
    json_t *a = json_array();
    for (size_t i = 0; a && i < d->n_rcpts && i < PM_DECLOG_RCPTS_MAX; i++) {
        char *f = s_field(d->rcpts[i]);
        size_t need = s_json_len(f) + 1;
        bool fits = used + need < PM_DECLOG_RECORD_MAX;
        if (fits) {
            json_array_append_new(a, json_string(f));
            used += need;
        }
        free(f);
        if (!fits)
            break;
    }
    return a;
}

/* D as one JSON line (with its '\n'), *LEN bytes from the returned
 * buffer + 1; the byte before it is a spare '\n' (for a file that ends
 * inside a line). NULL when jansson fails. Caller frees. */
static char *
s_encode(const pm_decision_t *d, size_t *len)
{
    const char *in[S_N_TEXTS] = {d->queue_id, d->message_id, d->sender,
                                 d->verdict,  d->reply,      d->key,
                                 d->evidence};
    char *f[S_N_TEXTS];
    size_t used = S_FRAME;
    for (size_t i = 0; i < S_N_TEXTS; i++) {
        f[i] = s_field(in[i]);
        used += s_json_len(f[i]);
    }
    json_t *o = json_object();
    json_object_set_new(o, "t", json_integer((json_int_t)d->time));
    for (size_t i = 0; i < S_N_TEXTS; i++) {
        if (i == S_VERDICT)
            json_object_set_new(o, "rcpt", s_rcpts(d, used));
        json_object_set_new(o, s_texts[i], json_string(f[i]));
        free(f[i]);
    }
    json_int_t rev =
        d->revision > INT64_MAX ? INT64_MAX : (json_int_t)d->revision;
    json_object_set_new(o, "rev", json_integer(rev));
    char *text = json_object_size(o) == S_N_TEXTS + 3
                     ? json_dumps(o, JSON_COMPACT)
                     : NULL;
    json_decref(o);
    size_t n = text ? strlen(text) : 0;
    if (!text || n + 1 > PM_DECLOG_RECORD_MAX) {
        free(text);
        return NULL;
    }
    char *line = pm_malloc(n + 2);
    line[0] = '\n';
    memcpy(line + 1, text, n);
    line[n + 1] = '\n';
    free(text);
    *len = n + 1;
    return line;
}

/* ---- the writer --------------------------------------------------------- */

/* The lines of the open FD (SIZE bytes), and whether it ends inside one. */
static bool
s_count(int fd, uint64_t size, size_t *lines, bool *partial)
{
    char *buf = pm_malloc(S_CHUNK);
    size_t n = 0;
    char last = '\n';
    bool ok = true;
    for (uint64_t off = 0; ok && off < size;) {
        size_t len = size - off < S_CHUNK ? (size_t)(size - off) : S_CHUNK;
        ok = pm_file_pread_all(fd, buf, len, off);
        for (size_t i = 0; ok && i < len; i++)
            n += buf[i] == '\n';
        last = ok ? buf[len - 1] : last;
        off += len;
    }
    free(buf);
    *lines = n;
    *partial = last != '\n';
    return ok;
}

/* The time of the file's first record (0 when there is none, or it does
 * not say): the file is rotated once that is half the age kept. */
static int64_t
s_first_time(int fd, uint64_t size)
{
    size_t len = size < 4096 ? (size_t)size : 4096;
    char buf[4097];
    if (!len || !pm_file_pread_all(fd, buf, len, 0))
        return 0;
    buf[len] = '\0';
    char *nl = strchr(buf, '\n');
    json_t *rec = nl ? json_loadb(buf, (size_t)(nl - buf), 0, NULL) : NULL;
    json_int_t t = json_integer_value(json_object_get(rec, "t"));
    json_decref(rec);
    return t > 0 ? (int64_t)t : 0;
}

/* Opens (creating it 0640) the current file and counts what it holds. */
static int
s_reopen(pm_declog_t *self, char **why)
{
    int fd = open(self->path,
                  O_RDWR | O_APPEND | O_CREAT | O_NOFOLLOW | O_NONBLOCK |
                      O_NOCTTY | O_CLOEXEC,
                  S_MODE);
    if (fd < 0) {
        int e = errno;
        pm_why(why, "declog", "cannot open %s: %s", self->path,
               e == ELOOP ? "it is a symbolic link (refused)" : strerror(e));
        return PM_EIO;
    }
    struct stat st;
    size_t lines = 0;
    bool partial = false;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) ||
        !s_count(fd, (uint64_t)st.st_size, &lines, &partial)) {
        pm_why(why, "declog", "%s is not a regular file that can be read",
               self->path);
        close(fd);
        return PM_EIO;
    }
    if ((st.st_mode & 07777) != S_MODE)
        (void)fchmod(fd, S_MODE); /* an umask took a bit away */
    self->first_t = s_first_time(fd, (uint64_t)st.st_size);
    self->fd = fd;
    self->records = lines;
    self->bytes = (size_t)st.st_size;
    self->need_nl = partial;
    return PM_OK;
}

pm_declog_t *
pm_declog_open(const char *dir, size_t max_records, size_t max_bytes,
               char **why)
{
    if (!dir || !*dir || max_records == 0 || max_bytes == 0) {
        pm_why(why, "declog",
               "a decision log needs a directory and room "
               "for at least one record");
        return NULL;
    }
    pm_declog_t *self = pm_calloc(1, sizeof *self);
    pthread_mutex_init(&self->mu, NULL);
    self->fd = -1;
    self->path = pm_asprintf("%s/%s", dir, PM_DECLOG_FILE);
    self->old = pm_asprintf("%s/%s", dir, PM_DECLOG_OLD);
    self->half_records = max_records / 2 ? max_records / 2 : 1;
    self->half_bytes = max_bytes / 2 ? max_bytes / 2 : 1;
    self->max_age = (int64_t)PM_DECLOG_DAYS_DEFAULT * 86400;
    if (s_reopen(self, why) != PM_OK)
        pm_declog_close(&self);
    return self;
}

void
pm_declog_set_max_age(pm_declog_t *self, int64_t secs)
{
    pthread_mutex_lock(&self->mu);
    self->max_age = secs > 0 ? secs : 1;
    pthread_mutex_unlock(&self->mu);
}

void
pm_declog_close(pm_declog_t **self_p)
{
    pm_declog_t *self = self_p ? *self_p : NULL;
    if (!self)
        return;
    if (self->fd >= 0)
        close(self->fd);
    pthread_mutex_destroy(&self->mu);
    free(self->path);
    free(self->old);
    free(self);
    *self_p = NULL;
}

/* Under self->mu: an open current file with room for LEN more bytes (the
 * full one becomes the previous one). After a failed rename the file is
 * opened again at the next append: one removed meanwhile is made anew. */
static int
s_room(pm_declog_t *self, size_t len, int64_t now, char **why)
{
    if (self->fd < 0 && s_reopen(self, why) != PM_OK)
        return PM_EIO;
    size_t need = len + (self->need_nl ? 1 : 0);
    bool young = !self->first_t || now - self->first_t < self->max_age / 2;
    if (self->records < self->half_records && young &&
        (self->bytes == 0 || self->bytes + need <= self->half_bytes))
        return PM_OK;
    int rc = pm_file_rename(self->path, self->old, why);
    close(self->fd);
    self->fd = -1;
    return rc == PM_OK ? s_reopen(self, why) : PM_EIO;
}

/* Under self->mu: LINE + 1 (LEN bytes) in one write, after the spare
 * '\n' when the file ends inside a line. */
static int
s_write(pm_declog_t *self, const char *line, size_t len, char **why)
{
    bool nl = self->need_nl;
    const char *p = nl ? line : line + 1;
    size_t n = len + (nl ? 1 : 0);
    ssize_t w;
    do
        w = write(self->fd, p, n);
    while (w < 0 && errno == EINTR);
    if (w < 0) {
        pm_why(why, "declog", "cannot write %s: %s", self->path,
               strerror(errno));
        return PM_EIO;
    }
    self->bytes += (size_t)w;
    if ((size_t)w < n) { /* the next record starts on a line of its own */
        self->need_nl = true;
        pm_why(why, "declog", "short write to %s (%zd of %zu bytes)",
               self->path, w, n);
        return PM_EIO;
    }
    self->need_nl = false;
    self->records += nl ? 2 : 1;
    return PM_OK;
}

int
pm_declog_append(pm_declog_t *self, const pm_decision_t *d, char **why)
{
    size_t len = 0;
    char *line = s_encode(d, &len);
    if (!line) {
        pm_why(why, "declog", "a record could not be encoded (jansson)");
        return PM_EIO;
    }
    pthread_mutex_lock(&self->mu);
    int rc = s_room(self, len, d->time, why);
    if (rc == PM_OK)
        rc = s_write(self, line, len, why);
    if (rc == PM_OK && !self->first_t)
        self->first_t = d->time;
    pthread_mutex_unlock(&self->mu);
    free(line);
    return rc;
}

/* ---- the reader ----------------------------------------------------------
 */

/* What pm_milter_decision_key (scan/pm_milter_record.c) returns. */
static const char *const s_filter_keys[] = {
    "",
    "inbound.blocked_extensions",
    "antivirus.databases",
    "antivirus.custom_signatures",
    "antivirus.block_encrypted_archives",
    "dkim.domains",
    "antispam.tag_percent",
    "antispam.kill_percent",
};

bool
pm_declog_filter_key(const char *key)
{
    for (size_t i = 0; key && i < sizeof s_filter_keys / sizeof *s_filter_keys;
         i++)
        if (strcmp(key, s_filter_keys[i]) == 0)
            return true;
    return false;
}

typedef struct {
    const pm_declog_query_t *q;
    pm_declog_fn *fn;
    void *arg;
    size_t passed, skipped;
} s_scan_t;

/* A text as the writer makes it (s_field): bounded, and without a C0
 * control or DEL (a NUL included), which it never writes: a line holding
 * one was written by someone else, to forge lines where it is shown. */
static bool
s_text_ok(const json_t *v)
{
    if (!json_is_string(v) || json_string_length(v) > PM_DECLOG_FIELD_MAX)
        return false;
    const unsigned char *p = (const unsigned char *)json_string_value(v);
    for (size_t i = 0; i < json_string_length(v); i++)
        if (p[i] < 0x20 || p[i] == 0x7f)
            return false;
    return true;
}

static bool
s_verdict_ok(const json_t *v)
{
    for (size_t i = 0; i < sizeof s_verdicts / sizeof s_verdicts[0]; i++)
        if (strcmp(json_string_value(v), s_verdicts[i]) == 0)
            return true;
    return false;
}

static bool
s_rcpts_ok(const json_t *a)
{
    if (!json_is_array(a) || json_array_size(a) > PM_DECLOG_RCPTS_MAX)
        return false;
    for (size_t i = 0; i < json_array_size(a); i++)
        if (!s_text_ok(json_array_get(a, i)))
            return false;
    return true;
}

static bool
s_count_ok(const json_t *v)
{
    return json_is_integer(v) && json_integer_value(v) >= 0;
}

/* A copy of J holding only the fields of a record, each checked; NULL
 * when J is not a record. Caller drops it. */
static json_t *
s_checked(json_t *j)
{
    json_t *t = json_object_get(j, "t"), *rev = json_object_get(j, "rev");
    json_t *rcpt = json_object_get(j, "rcpt");
    if (!json_is_object(j) || !s_count_ok(t) || !s_count_ok(rev) ||
        !s_rcpts_ok(rcpt))
        return NULL;
    json_t *out = json_object();
    json_object_set(out, "t", t);
    for (size_t i = 0; i < S_N_TEXTS; i++) {
        json_t *v = json_object_get(j, s_texts[i]);
        if (!s_text_ok(v) || (i == S_VERDICT && !s_verdict_ok(v))) {
            json_decref(out);
            return NULL;
        }
        if (i == S_VERDICT)
            json_object_set(out, "rcpt", rcpt);
        json_object_set(out, s_texts[i], v);
    }
    json_object_set(out, "rev", rev);
    return out;
}

/* A condition is a non-empty field of the query. */
static bool
s_differs(const char *want, const json_t *rec, const char *field, bool nocase)
{
    if (!want || !*want)
        return false;
    const char *have = json_string_value(json_object_get(rec, field));
    return nocase ? strcasecmp(want, have) != 0 : strcmp(want, have) != 0;
}

static bool
s_match(const pm_declog_query_t *q, const json_t *rec)
{
    return json_integer_value(json_object_get(rec, "t")) >= q->since &&
           !s_differs(q->queue_id, rec, "qid", false) &&
           !s_differs(q->message_id, rec, "msgid", false) &&
           !s_differs(q->sender, rec, "from", true);
}

static void
s_line(s_scan_t *s, const char *p, size_t n)
{
    if (n > PM_DECLOG_RECORD_MAX) {
        s->skipped++;
        return;
    }
    json_error_t err;
    json_t *j = json_loadb(p, n, JSON_REJECT_DUPLICATES, &err);
    json_t *rec = j ? s_checked(j) : NULL;
    json_decref(j);
    if (!rec) {
        s->skipped++;
        return;
    }
    if ((s->q->max == 0 || s->passed < s->q->max) && s_match(s->q, rec)) {
        s->fn(rec, s->arg);
        s->passed++;
    }
    json_decref(rec);
}

/* The lines of DATA (LEN bytes), the last first; a last line without its
 * '\n' is passed over (a write in progress, or a torn one). */
static void
s_scan(s_scan_t *s, const char *data, size_t len)
{
    size_t end = len;
    while (end > 0 && data[end - 1] != '\n')
        end--;
    if (end < len)
        s->skipped++;
    while (end > 0) {
        size_t start = end - 1; /* data[end - 1] is the line's '\n' */
        while (start > 0 && data[start - 1] != '\n')
            start--;
        s_line(s, data + start, end - 1 - start);
        end = start;
    }
}

/* DIR/NAME read the pm_file way into *DATA (NULL, *LEN 0: no such file). */
static int
s_read(const char *dir, const char *name, size_t cap, char **data, size_t *len,
       char **why)
{
    char *path = pm_asprintf("%s/%s", dir, name), *err = NULL;
    int rc = pm_file_read(path, cap, PM_FILE_STRICT, data, len, &err);
    free(path);
    if (rc == PM_ENOTFOUND) {
        *data = NULL;
        *len = 0;
        rc = PM_OK;
    } else if (rc != PM_OK && why) {
        free(*why);
        *why = err;
        err = NULL;
    }
    free(err);
    return rc;
}

int
pm_declog_query(const char *dir, size_t max_bytes, const pm_declog_query_t *q,
                pm_declog_fn *fn, void *arg, size_t *skipped, char **why)
{
    size_t cap = max_bytes / 2 + PM_DECLOG_RECORD_MAX;
    char *cur = NULL, *old = NULL;
    size_t cur_len = 0, old_len = 0;
    /* the current file first: a rotation between the two reads then
     * shows the same records twice (dropped below), never none */
    int rc = s_read(dir, PM_DECLOG_FILE, cap, &cur, &cur_len, why);
    if (rc == PM_OK)
        rc = s_read(dir, PM_DECLOG_OLD, cap, &old, &old_len, why);
    if (rc == PM_OK) {
        if (cur_len && old_len >= cur_len && memcmp(old, cur, cur_len) == 0)
            cur_len = 0; /* what was current is now the previous file */
        s_scan_t s = {q, fn, arg, 0, 0};
        s_scan(&s, cur, cur_len);
        s_scan(&s, old, old_len);
        if (skipped)
            *skipped = s.skipped;
    }
    free(cur);
    free(old);
    return rc;
}
