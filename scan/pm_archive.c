/* pm_archive.c - archive entry names with libarchive, under limits. */
#include "pm_archive.h"
#include "pm_mem.h"

#include <archive.h>
#include <archive_entry.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

/* How much of an entry libarchive sees before we decide whether it is an
 * archive: enough for every supported format's signature and a tar
 * header, small enough that non-archives cost no memory. */
#define S_PROBE (64 * 1024)
#define S_CHUNK (64 * 1024)

typedef struct {
    const pm_archive_limits_t *lim;
    pm_archive_usage_t *use;
    pm_archive_name_fn fn;
    void *arg;
    char *why;
    char *chunk; /* S_CHUNK bytes of scratch */
} s_ctx_t;

/* An entry's data as far as it is kept. */
typedef struct {
    char *data;
    size_t len, cap;
} s_buf_t;

static pm_archive_result_t s_fail(s_ctx_t *ctx, pm_archive_result_t rc,
                                  const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static pm_archive_result_t
s_fail(s_ctx_t *ctx, pm_archive_result_t rc, const char *fmt, ...)
{
    if (!ctx->why) {
        va_list ap;
        va_start(ap, fmt);
        ctx->why = pm_vasprintf(fmt, ap);
        va_end(ap);
    }
    return rc;
}

/* A reader of exactly the formats the header names; never "raw", which
 * would take any file for an archive of one entry. */
static struct archive *
s_open(const void *data, size_t len)
{
    struct archive *a = archive_read_new();
    if (!a)
        abort(); /* out of memory, as pm_malloc */
    archive_read_support_format_zip(a);
    archive_read_support_format_tar(a);
    archive_read_support_format_7zip(a);
    archive_read_support_format_rar(a);
    archive_read_support_format_rar5(a);
    archive_read_support_filter_gzip(a);
    archive_read_support_filter_bzip2(a);
    archive_read_support_filter_xz(a);
    if (archive_read_open_memory(a, data, len) != ARCHIVE_OK) {
        archive_read_free(a);
        return NULL;
    }
    return a;
}

/* Whether libarchive recognises DATA as an archive with entries: a format
 * took it and found an entry, or failed after taking it (DATA may be only
 * the first S_PROBE bytes). An archive that ends at once has no names: tar
 * takes any run of zero bytes for one, and keeping those would cost
 * memory for nothing. */
static bool
s_is_archive(const void *data, size_t len)
{
    struct archive *a = s_open(data, len);
    if (!a)
        return false;
    struct archive_entry *e;
    int r = archive_read_next_header(a, &e);
    bool yes = r == ARCHIVE_OK || r == ARCHIVE_WARN ||
               (r < ARCHIVE_WARN && archive_format(a) != 0);
    archive_read_free(a);
    return yes;
}

/* Appends LEN bytes; the buffer never grows past MAX (the byte limit, which
 * the caller checks first) plus one chunk, so memory stays within it. */
static void
s_append(s_buf_t *buf, const char *data, size_t len, uint64_t max)
{
    if (buf->len + len > buf->cap) {
        uint64_t cap = (uint64_t)(buf->len + len) * 2;
        if (cap > max + S_CHUNK)
            cap = max + S_CHUNK;
        if (cap < buf->len + len)
            cap = buf->len + len;
        buf->cap = (size_t)cap;
        buf->data = pm_realloc(buf->data, buf->cap);
    }
    memcpy(buf->data + buf->len, data, len);
    buf->len += len;
}

static pm_archive_result_t s_list(s_ctx_t *ctx, const void *data, size_t len,
                                  unsigned depth);

/* Reads the current entry's data, counting every byte, and lists it when
 * it is an archive itself. DEPTH is the level of the archive holding it. */
static pm_archive_result_t
s_read_entry(s_ctx_t *ctx, struct archive *a, unsigned depth)
{
    pm_archive_result_t rc = PM_ARCHIVE_LISTED;
    s_buf_t buf = {0};
    bool probing = true, keep = false;
    for (;;) {
        la_ssize_t got = archive_read_data(a, ctx->chunk, S_CHUNK);
        if (got == 0)
            break;
        if (got < 0) {
            rc = s_fail(
                ctx, PM_ARCHIVE_BROKEN, "archive entry could not be read: %s",
                archive_error_string(a) ? archive_error_string(a) : "error");
            goto out;
        }
        ctx->use->bytes += (uint64_t)got;
        if (ctx->use->bytes > ctx->lim->max_bytes) {
            rc = s_fail(ctx, PM_ARCHIVE_LIMIT,
                        "archives decompress to more than %llu bytes",
                        (unsigned long long)ctx->lim->max_bytes);
            goto out;
        }
        if (probing || keep)
            s_append(&buf, ctx->chunk, (size_t)got, ctx->lim->max_bytes);
        if (probing && buf.len >= S_PROBE) {
            probing = false;
            keep = s_is_archive(buf.data, buf.len);
            if (keep && depth + 1 > ctx->lim->max_depth)
                break; /* no need to read what will not be opened */
            if (!keep)
                PM_FREE(&buf.data);
        }
    }
    if (probing)
        keep = buf.len > 0 && s_is_archive(buf.data, buf.len);
    if (keep && depth + 1 > ctx->lim->max_depth)
        rc = s_fail(ctx, PM_ARCHIVE_LIMIT,
                    "archive nesting deeper than %u levels",
                    ctx->lim->max_depth);
    else if (keep)
        rc = s_list(ctx, buf.data, buf.len, depth + 1);
    if (rc == PM_ARCHIVE_NONE)
        rc = PM_ARCHIVE_LISTED; /* its head looked like one; it is not */
out:
    free(buf.data);
    return rc;
}

/* One entry: counted, its name reported, its data looked into. */
static pm_archive_result_t
s_entry(s_ctx_t *ctx, struct archive *a, struct archive_entry *e, size_t *n,
        unsigned depth)
{
    if (++*n > ctx->lim->max_entries)
        return s_fail(ctx, PM_ARCHIVE_LIMIT,
                      "more than %zu entries in one archive",
                      ctx->lim->max_entries);
    if (++ctx->use->entries > ctx->lim->max_total_entries)
        return s_fail(ctx, PM_ARCHIVE_LIMIT,
                      "more than %zu archive entries in the message",
                      ctx->lim->max_total_entries);
    const char *name = archive_entry_pathname_utf8(e);
    if (!name)
        name = archive_entry_pathname(e);
    bool dir = archive_entry_filetype(e) == AE_IFDIR;
    /* libarchive gives no name it cannot convert to the locale's charset
     * (a zip's UTF-8 name, a 7z's UTF-16 one, in a non-UTF-8 locale): an
     * unchecked name must not pass */
    if (!name && !dir)
        return s_fail(ctx, PM_ARCHIVE_BROKEN,
                      "archive entry %zu has a name that cannot be read "
                      "(its character set)",
                      *n);
    if (name && !dir && ctx->fn(ctx->arg, name))
        return PM_ARCHIVE_STOPPED;
    /* Encrypted data cannot be looked into; its name was checked. */
    if (archive_entry_is_data_encrypted(e))
        return PM_ARCHIVE_LISTED;
    return s_read_entry(ctx, a, depth);
}

static pm_archive_result_t
s_list(s_ctx_t *ctx, const void *data, size_t len, unsigned depth)
{
    struct archive *a = s_open(data, len);
    if (!a)
        return PM_ARCHIVE_NONE;
    pm_archive_result_t rc = PM_ARCHIVE_LISTED;
    size_t n = 0;
    for (;;) {
        struct archive_entry *e;
        int r = archive_read_next_header(a, &e);
        if (r == ARCHIVE_EOF)
            break;
        if (r < ARCHIVE_WARN) {
            /* No format took it: not an archive. A format that took it and
             * then failed leaves names unseen (corrupt, truncated, or
             * names encrypted as 7z and rar can do). */
            if (n == 0 && archive_format(a) == 0)
                rc = PM_ARCHIVE_NONE;
            else
                rc = s_fail(ctx, PM_ARCHIVE_BROKEN,
                            "archive could not be listed: %s",
                            archive_error_string(a) ? archive_error_string(a)
                                                    : "error");
            break;
        }
        if (depth > ctx->lim->max_depth) {
            rc = s_fail(ctx, PM_ARCHIVE_LIMIT,
                        "archive nesting deeper than %u levels",
                        ctx->lim->max_depth);
            break;
        }
        rc = s_entry(ctx, a, e, &n, depth);
        if (rc != PM_ARCHIVE_LISTED)
            break;
    }
    archive_read_free(a);
    return rc;
}

pm_archive_result_t
pm_archive_list(const void *data, size_t len, const pm_archive_limits_t *lim,
                pm_archive_usage_t *use, pm_archive_name_fn fn, void *arg,
                char **why)
{
    if (!data || !len)
        return PM_ARCHIVE_NONE;
    s_ctx_t ctx = {.lim = lim, .use = use, .fn = fn, .arg = arg};
    ctx.chunk = pm_malloc(S_CHUNK);
    pm_archive_result_t rc = s_list(&ctx, data, len, 1);
    free(ctx.chunk);
    if ((rc == PM_ARCHIVE_LIMIT || rc == PM_ARCHIVE_BROKEN) && why)
        *why = ctx.why, ctx.why = NULL;
    free(ctx.why);
    return rc;
}
