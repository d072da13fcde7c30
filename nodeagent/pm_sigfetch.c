/* pm_sigfetch.c - ClamAV databases from mirrors, through libfreshclam. */
#include "pm_sigfetch.h"
#include "pm_error.h"
#include "pm_file.h"
#include "pm_mem.h"
#include "pm_sigmirror.h"
#include "pm_wire.h"

#include <archive.h>
#include <archive_entry.h>
#include <clamav.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <libfreshclam.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

#define S_HEAD_LEN 512         /* a CVD header, as cl_cvdparse reads it */
#define S_NAME_MAX 64          /* a database name */
#define S_COOL_403 (24 * 3600) /* freshclam's cool-down after a 403 */
#define S_COOL_429 (4 * 3600)  /* after a 429 without Retry-After */
#define S_TMPDIR ".pm-sigfetch.tmp"

/* libfreshclam's globals and chdir() allow one run per process at a time. */
static pthread_mutex_t s_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t s_once = PTHREAD_ONCE_INIT;
static cl_error_t s_init_rc;

/* One run: its options, the report being filled, and what the
 * download-complete callback found (libfreshclam passes only a context). */
typedef struct {
    const pm_sigfetch_opts_t *opts;
    pm_sigfetch_report_t *report;
    const char *db_name; /* the database libfreshclam updates now */
    char *verify_why;
} s_run_t;

/* What one version check of one mirror answered. */
typedef struct {
    int http;      /* 0: no HTTP answer (ERR says why) */
    bool uptodate; /* 304, or If-Modified-Since not met */
    unsigned version;
    long retry_after; /* seconds; 0: none given */
    char err[CURL_ERROR_SIZE];
    char head[S_HEAD_LEN + 1];
    size_t len;
} s_probe_t;

static void
s_init(void)
{
    s_init_rc = cl_init(CL_INIT_DEFAULT);
}

/* Names end up in URLs and in file names inside DBDIR. */
static bool
s_name_ok(const char *name)
{
    size_t n = name ? strlen(name) : 0;
    if (n == 0 || n > S_NAME_MAX)
        return false;
    return strspn(name, "abcdefghijklmnopqrstuvwxyz0123456789_-") == n;
}

static bool
s_url_ok(const char *url)
{
    if (!url || strpbrk(url, " \t\r\n"))
        return false;
    return !strncmp(url, "http://", 7) || !strncmp(url, "https://", 8);
}

/* The local copy libfreshclam will update: <db>.cvd, else <db>.cld (its
 * currentdb()). Fills VERSION, SIGS, BUILT; zeros when there is none. */
static void
s_local(const char *dbdir, const char *db, pm_sigfetch_db_t *out)
{
    out->version = out->sigs = 0;
    out->built = 0;
    static const char *const exts[] = {"cvd", "cld"};
    for (size_t i = 0; i < 2; i++) {
        char *path = pm_asprintf("%s/%s.%s", dbdir, db, exts[i]);
        struct cl_cvd *cvd = access(path, R_OK) ? NULL : cl_cvdhead(path);
        free(path);
        if (cvd) {
            out->version = cvd->version;
            out->sigs = cvd->sigs;
            out->built = (time_t)cvd->stime;
            cl_cvdfree(cvd);
            return;
        }
    }
}

/* Keeps the first S_HEAD_LEN bytes of the body, then stops the transfer:
 * a mirror that ignores Range must not make us download the whole CVD. */
static size_t
s_on_body(char *data, size_t size, size_t n, void *ud)
{
    s_probe_t *pr = ud;
    size_t len = size * n, room = S_HEAD_LEN - pr->len;
    size_t take = len < room ? len : room;
    memcpy(pr->head + pr->len, data, take);
    pr->len += take;
    return take < len ? 0 : len;
}

/* freshclam's User-Agent shape: the CDN turns away scripted clients. */
static char *
s_user_agent(void)
{
    struct utsname u;
    const char *arch = uname(&u) == 0 ? u.machine : "unknown";
    return pm_asprintf("ClamAV/%s (OS: linux-gnu, ARCH: %s, CPU: %s)",
                       cl_retver(), arch, arch);
}

static bool
s_cancelled(const pm_sigfetch_opts_t *o)
{
    return o->cancelled && o->cancelled(o->cancel_arg);
}

/* libcurl calls this about once a second even while nothing arrives: the
 * one way to end a version check early (non-zero aborts it). */
static int
s_on_progress(void *ud, curl_off_t dltotal, curl_off_t dlnow,
              curl_off_t ultotal, curl_off_t ulnow)
{
    (void)dltotal, (void)dlnow, (void)ultotal, (void)ulnow;
    return s_cancelled(ud) ? 1 : 0;
}

/* What every request of ours to a mirror sets: freshclam's headers and
 * User-Agent, the timeouts, http(s) only, the cancel hook. */
static void
s_curl_setopts(CURL *c, char *err, const pm_sigfetch_opts_t *o,
               struct curl_slist *hdrs, const char *ua)
{
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, err);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(c, CURLOPT_USERAGENT, ua);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, s_on_progress);
    curl_easy_setopt(c, CURLOPT_XFERINFODATA, (void *)o);
    curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(c, CURLOPT_MAXREDIRS, 5L);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT,
                     (long)(o->connect_timeout_s ? o->connect_timeout_s : 10));
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME,
                     (long)(o->request_timeout_s ? o->request_timeout_s : 60));
}

static void
s_probe_setopts(CURL *c, s_probe_t *pr, const pm_sigfetch_opts_t *o,
                struct curl_slist *hdrs, const char *ua)
{
    s_curl_setopts(c, pr->err, o, hdrs, ua);
    curl_easy_setopt(c, CURLOPT_RANGE, "0-511");
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, s_on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, pr);
}

/* Turns a 200/206 body into a version through cl_cvdparse. */
static void
s_probe_parse(s_probe_t *pr, const char *url)
{
    pr->head[pr->len] = '\0';
    struct cl_cvd *cvd = NULL;
    if (pr->len == S_HEAD_LEN && strlen(pr->head) == S_HEAD_LEN)
        cvd = cl_cvdparse(pr->head);
    if (!cvd) {
        snprintf(pr->err, sizeof pr->err, "%s: not a CVD header", url);
        return;
    }
    pr->version = cvd->version;
    cl_cvdfree(cvd);
}

/* Asks MIRROR for DB's version as freshclam does without DNS. SINCE is
 * the local build time (0: none). Fills *PR; never fails otherwise. */
static void
s_probe(const pm_sigfetch_opts_t *o, const char *mirror, const char *db,
        time_t since, s_probe_t *pr)
{
    memset(pr, 0, sizeof *pr);
    char *url = pm_asprintf("%s/%s.cvd", mirror, db);
    char *ua = s_user_agent();
    struct curl_slist *hdrs =
        curl_slist_append(NULL, "Cache-Control: no-cache");
    hdrs = curl_slist_append(hdrs, "Connection: close");
    CURL *c = curl_easy_init();
    if (!c || !hdrs) {
        snprintf(pr->err, sizeof pr->err, "libcurl would not start");
        goto out;
    }
    s_probe_setopts(c, pr, o, hdrs, ua);
    curl_easy_setopt(c, CURLOPT_URL, url);
    if (since > 0) {
        curl_easy_setopt(c, CURLOPT_TIMECONDITION, CURL_TIMECOND_IFMODSINCE);
        curl_easy_setopt(c, CURLOPT_TIMEVALUE, (long)since);
    }
    CURLcode rc = curl_easy_perform(c);
    long http = 0, unmet = 0;
    curl_off_t retry = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &http);
    curl_easy_getinfo(c, CURLINFO_CONDITION_UNMET, &unmet);
    curl_easy_getinfo(c, CURLINFO_RETRY_AFTER, &retry);
    pr->http = (int)http;
    pr->retry_after = (long)retry;
    if (rc != CURLE_OK && !(rc == CURLE_WRITE_ERROR && pr->len == S_HEAD_LEN)) {
        if (!pr->err[0])
            snprintf(pr->err, sizeof pr->err, "%s", curl_easy_strerror(rc));
        pr->http = 0;
    } else if (http == 304 || unmet) {
        pr->uptodate = true;
    } else if (http == 200 || http == 206) {
        s_probe_parse(pr, url);
    } else {
        snprintf(pr->err, sizeof pr->err, "%s: HTTP %ld", url, http);
    }
out:
    curl_easy_cleanup(c);
    curl_slist_free_all(hdrs);
    free(ua);
    free(url);
}

static bool
s_cooling(const pm_sigfetch_report_t *r, const char *mirror)
{
    for (size_t i = 0; i < r->n_cooldowns; i++)
        if (!strcmp(r->cooldowns[i].mirror, mirror))
            return true;
    return false;
}

/* Records MIRROR's cool-down after HTTP status 429 or 403. */
static void
s_cool(pm_sigfetch_report_t *r, const char *mirror, int http, long retry)
{
    long secs = http == 403 ? S_COOL_403 : retry > 0 ? retry : S_COOL_429;
    r->cooldowns =
        pm_realloc(r->cooldowns, (r->n_cooldowns + 1) * sizeof *r->cooldowns);
    pm_sigfetch_cooldown_t *c = &r->cooldowns[r->n_cooldowns++];
    c->mirror = pm_strdup(mirror);
    c->http_status = http;
    c->until = time(NULL) + secs;
}

/* libfreshclam's download-complete callback: the last check before a new
 * file replaces the old one (see the header). */
static fc_error_t
s_on_download(const char *file, void *ctx)
{
    s_run_t *run = ctx;
    char *why = NULL;
    if (pm_sigfetch_verify(file, run->db_name, NULL, NULL, NULL, &why) == PM_OK)
        return FC_SUCCESS;
    free(run->verify_why);
    run->verify_why = why;
    return FC_ETESTFAIL;
}

static pm_err_t
s_fc_err(fc_error_t rc)
{
    switch (rc) {
    case FC_SUCCESS:
    case FC_UPTODATE:
        return PM_OK;
    case FC_ECONNECTION:
        return PM_ETIMEDOUT;
    case FC_EBADCVD:
    case FC_ETESTFAIL:
    case FC_EFAILEDUPDATE:
    case FC_EEMPTYFILE:
    case FC_EMIRRORNOTSYNC:
        return PM_EPROTO;
    case FC_EFORBIDDEN:
    case FC_ERETRYLATER:
        return PM_EDENIED;
    case FC_EDIRECTORY:
    case FC_EDBDIRACCESS:
    case FC_EFILE:
        return PM_EIO;
    default:
        return PM_EINTERNAL;
    }
}

/* Sets DB's failure from a version check that did not give a version. */
static void
s_probe_failed(pm_sigfetch_report_t *r, pm_sigfetch_db_t *db,
               const char *mirror, const s_probe_t *pr)
{
    db->http_status = pr->http;
    if (pr->http == 429 || pr->http == 403) {
        s_cool(r, mirror, pr->http, pr->retry_after);
        db->err = PM_EDENIED;
        pm_why(&db->why, "sigfetch",
               "%s answered %d: not asked again for %ld s", mirror, pr->http,
               (long)(r->cooldowns[r->n_cooldowns - 1].until - time(NULL)));
        return;
    }
    if (pr->http == 0)
        db->err = PM_ETIMEDOUT; /* refused, unresolved or timed out */
    else if (pr->http == 404)
        db->err = PM_ENOTFOUND;
    else if (pr->http == 200 || pr->http == 206)
        db->err = PM_EPROTO; /* an answer, but not a CVD header */
    else
        db->err = PM_EINTERNAL;
    pm_why(&db->why, "sigfetch", "%s: %s", mirror, pr->err);
}

/* libfreshclam ended without reaching WANT. Says why on DB; a 429 during
 * its downloads comes back as success, so one more check asks. */
static void
s_update_failed(s_run_t *run, pm_sigfetch_db_t *db, const char *mirror,
                fc_error_t rc, unsigned want)
{
    if (rc == FC_EFORBIDDEN) {
        s_probe_t pr = {.http = 403};
        s_probe_failed(run->report, db, mirror, &pr);
        return;
    }
    if (rc == FC_SUCCESS || rc == FC_EFAILEDGET || rc == FC_ERETRYLATER) {
        s_probe_t pr;
        s_probe(run->opts, mirror, db->name, 0, &pr);
        if (pr.http == 429 || pr.http == 403) {
            s_probe_failed(run->report, db, mirror, &pr);
            return;
        }
    }
    db->err = rc == FC_SUCCESS ? PM_EINTERNAL : s_fc_err(rc);
    if (rc == FC_ETESTFAIL && run->verify_why)
        pm_why(&db->why, "sigfetch", "%s: %s", mirror, run->verify_why);
    else if (rc == FC_SUCCESS)
        pm_why(&db->why, "sigfetch",
               "%s offers version %u but libfreshclam stopped at %u", mirror,
               want, db->version);
    else if (rc == FC_EBADCVD)
        pm_why(&db->why, "sigfetch",
               "%s served a %s.cvd that failed ClamAV's signature check (%s)",
               mirror, db->name, fc_strerror(rc));
    else
        pm_why(&db->why, "sigfetch", "%s: %s", mirror, fc_strerror(rc));
}

/* Records that MIRROR answered and DB is at its newest version. */
static bool
s_succeed(pm_sigfetch_db_t *db, const char *mirror)
{
    db->err = PM_OK;
    free(db->why);
    db->why = NULL;
    free(db->mirror);
    db->mirror = pm_strdup(mirror);
    return true;
}

/* ---- CDIFFs kept for sharing (see the header) ---------------------------- */

/* A CDIFF's body as it arrives, at most PM_WIRE_CDIFF_MAX bytes. */
typedef struct {
    uint8_t *data;
    size_t len, cap;
    bool too_big;
} s_body_t;

static size_t
s_on_cdiff(char *data, size_t size, size_t n, void *ud)
{
    s_body_t *b = ud;
    size_t len = size * n;
    if (len > PM_WIRE_CDIFF_MAX - b->len) {
        b->too_big = true;
        return 0; /* checked while reading: libcurl stops */
    }
    if (b->len + len > b->cap) {
        b->cap = b->cap * 2 > b->len + len ? b->cap * 2 : b->len + len;
        b->data = pm_realloc(b->data, b->cap);
    }
    memcpy(b->data + b->len, data, len);
    b->len += len;
    return len;
}

/* The outcome of the GET of URL (BODY) into PR and, when the mirror sent
 * the file, into PATH. */
static bool
s_cdiff_keep(CURLcode rc, CURL *c, const s_body_t *body, const char *url,
             const char *path, s_probe_t *pr)
{
    long http = 0;
    curl_off_t retry = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &http);
    curl_easy_getinfo(c, CURLINFO_RETRY_AFTER, &retry);
    pr->http = (int)http;
    pr->retry_after = (long)retry;
    char *why = NULL;
    if (body->too_big)
        snprintf(pr->err, sizeof pr->err, "%s: more than %llu bytes", url,
                 (unsigned long long)PM_WIRE_CDIFF_MAX);
    else if (rc != CURLE_OK && !pr->err[0])
        snprintf(pr->err, sizeof pr->err, "%s: %s", url,
                 curl_easy_strerror(rc));
    else if (rc == CURLE_OK && (http != 200 || body->len == 0))
        snprintf(pr->err, sizeof pr->err, "%s: HTTP %ld, %zu bytes", url, http,
                 body->len); /* empty: "get the whole file" */
    else if (rc == CURLE_OK && pm_file_write(path, body->data, body->len, 0644,
                                             (gid_t)-1, &why) == PM_OK)
        return true;
    if (why)
        snprintf(pr->err, sizeof pr->err, "%s", why);
    free(why);
    return false;
}

/* GETs MIRROR/NAME-V.cdiff into the CDIFF directory. True when it is
 * there; else PR has the HTTP status, Retry-After and the reason. */
static bool
s_get_cdiff(const pm_sigfetch_opts_t *o, const char *mirror, const char *name,
            unsigned v, s_probe_t *pr)
{
    memset(pr, 0, sizeof *pr);
    char *url = pm_asprintf("%s/%s-%u.cdiff", mirror, name, v);
    char *path = pm_asprintf("%s/%s-%u.cdiff", o->cdiff_dir, name, v);
    char *ua = s_user_agent();
    struct curl_slist *hdrs =
        curl_slist_append(NULL, "Cache-Control: no-cache");
    hdrs = curl_slist_append(hdrs, "Connection: close");
    s_body_t body = {0};
    bool ok = false;
    CURL *c = curl_easy_init();
    if (c && hdrs) {
        s_curl_setopts(c, pr->err, o, hdrs, ua);
        curl_easy_setopt(c, CURLOPT_URL, url);
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, s_on_cdiff);
        curl_easy_setopt(c, CURLOPT_WRITEDATA, &body);
        ok = s_cdiff_keep(curl_easy_perform(c), c, &body, url, path, pr);
    } else {
        snprintf(pr->err, sizeof pr->err, "libcurl would not start");
    }
    curl_easy_cleanup(c);
    curl_slist_free_all(hdrs);
    free(body.data);
    free(ua);
    free(path);
    free(url);
    return ok;
}

/* The version NAME.head in the CDIFF directory announces; 0: none. */
static unsigned
s_head_version(const pm_sigfetch_opts_t *o, const char *name)
{
    char *path = pm_asprintf("%s/%s" PM_SIGMIRROR_HEAD_EXT, o->cdiff_dir, name);
    char *data = NULL;
    size_t len = 0;
    s_probe_t pr = {0};
    if (pm_file_read(path, S_HEAD_LEN, PM_FILE_STRICT, &data, &len, NULL) ==
        PM_OK) {
        memcpy(pr.head, data, len);
        pr.len = len;
        s_probe_parse(&pr, path);
    }
    free(data);
    free(path);
    return pr.version;
}

/* Has libfreshclam bring DB forward with the CDIFFs the CDIFF directory
 * holds, served on 127.0.0.1; DB's local state after it. */
static fc_error_t
s_apply_held(s_run_t *run, pm_sigfetch_db_t *db)
{
    char *why = NULL;
    pm_sigmirror_t *m = pm_sigmirror_new(run->opts->cdiff_dir, &why);
    fc_error_t rc = FC_ECONNECTION;
    if (m) {
        char *servers[] = {(char *)pm_sigmirror_url(m)};
        int updated = 0;
        run->db_name = db->name;
        rc =
            fc_update_database(db->name, servers, 1, 0, NULL, 1, run, &updated);
        pm_sigmirror_destroy(&m);
    } else {
        free(run->verify_why);
        run->verify_why = why;
    }
    s_local(run->opts->dbdir, db->name, db);
    db->changed = db->version != db->old_version;
    return rc;
}

/* Brings DB from its version to PR's through CDIFFs downloaded from
 * MIRROR into the CDIFF directory and applied from there. 1: done; 0: not
 * this way (libfreshclam asks the mirror itself, as before); -1: the
 * mirror is cooling down or the run was stopped (DB says so). */
static int
s_by_cdiffs(s_run_t *run, pm_sigfetch_db_t *db, const char *mirror,
            const s_probe_t *pr)
{
    const pm_sigfetch_opts_t *o = run->opts;
    if (!o->cdiff_dir || !db->version ||
        pr->version - db->version > PM_SIGFETCH_CDIFF_STEPS)
        return 0;
    for (unsigned v = db->version + 1; v <= pr->version; v++) {
        s_probe_t got;
        if (s_cancelled(o)) {
            db->err = PM_ETIMEDOUT;
            pm_why(&db->why, "sigfetch", "stopped before it was done");
            return -1;
        }
        if (s_get_cdiff(o, mirror, db->name, v, &got))
            continue;
        if (got.http == 429 || got.http == 403) {
            s_probe_failed(run->report, db, mirror, &got);
            return -1;
        }
        return 0; /* missing or empty upstream: libfreshclam decides */
    }
    char *head =
        pm_asprintf("%s/%s" PM_SIGMIRROR_HEAD_EXT, o->cdiff_dir, db->name);
    bool put = pm_file_write(head, pr->head, S_HEAD_LEN, 0644, (gid_t)-1,
                             NULL) == PM_OK;
    free(head);
    return put && s_apply_held(run, db) == FC_SUCCESS &&
                   db->version >= pr->version
               ? 1
               : 0;
}

/* No mirrors: applies the CDIFFs a peer brought (see the header). */
static void
s_update_held(s_run_t *run, pm_sigfetch_db_t *db)
{
    static const char held[] = "CDIFFs held";
    unsigned want = s_head_version(run->opts, db->name);
    if (!want) {
        db->err = PM_ENOTFOUND;
        pm_why(&db->why, "sigfetch",
               "%s/%s" PM_SIGMIRROR_HEAD_EXT
               ": no CVD header of the version the CDIFFs make",
               run->opts->cdiff_dir, db->name);
        return;
    }
    fc_error_t rc = want > db->version ? s_apply_held(run, db) : FC_SUCCESS;
    if (db->version >= want) {
        s_succeed(db, held);
        return;
    }
    db->err = rc == FC_SUCCESS ? PM_EINTERNAL : s_fc_err(rc);
    if (rc == FC_ETESTFAIL && run->verify_why)
        pm_why(&db->why, "sigfetch", "%s: %s", held, run->verify_why);
    else
        pm_why(&db->why, "sigfetch",
               "%s: they took version %u no further than %u towards %u: a "
               "CDIFF failed ClamAV's check or did not apply (%s)",
               held, db->old_version, db->version, want, fc_strerror(rc));
}

/* Brings DB up to date from MIRROR. True when done with this database
 * (success), false to try the next mirror (DB says why). */
static bool
s_try_mirror(s_run_t *run, pm_sigfetch_db_t *db, const char *mirror)
{
    s_probe_t pr;
    s_probe(run->opts, mirror, db->name, db->version ? db->built : 0, &pr);
    if (!pr.uptodate && pr.version == 0) {
        s_probe_failed(run->report, db, mirror, &pr);
        return false;
    }
    db->http_status = pr.http;
    if (pr.uptodate && db->version == 0) {
        db->err = PM_EPROTO;
        pm_why(&db->why, "sigfetch", "%s: 304 without a local copy", mirror);
        return false;
    }
    if (pr.uptodate || pr.version <= db->version)
        return s_succeed(db, mirror);
    if (s_cancelled(run->opts))
        return false; /* the caller says why */
    int cdiffs = s_by_cdiffs(run, db, mirror, &pr);
    if (cdiffs)
        return cdiffs > 0 && s_succeed(db, mirror);
    char *servers[] = {(char *)mirror};
    int updated = 0;
    run->db_name = db->name;
    fc_error_t rc =
        fc_update_database(db->name, servers, 1, 0, NULL, 1, run, &updated);
    s_local(run->opts->dbdir, db->name, db);
    db->changed = db->version != db->old_version;
    if (rc != FC_SUCCESS || db->version < pr.version) {
        s_update_failed(run, db, mirror, rc, pr.version);
        return false;
    }
    return s_succeed(db, mirror);
}

/* Strips trailing slashes: libfreshclam joins with "/". */
static char *
s_mirror_norm(const char *url)
{
    char *m = pm_strdup(url);
    size_t n = strlen(m);
    while (n > 8 && m[n - 1] == '/')
        m[--n] = '\0';
    return m;
}

static void
s_update_one(s_run_t *run, pm_sigfetch_db_t *db)
{
    const pm_sigfetch_opts_t *o = run->opts;
    s_local(o->dbdir, db->name, db);
    db->old_version = db->version;
    if (!o->n_mirrors) {
        s_update_held(run, db);
        return;
    }
    db->err = PM_EDENIED;
    bool tried = false;
    for (size_t i = 0; i < o->n_mirrors; i++) {
        if (s_cancelled(o)) {
            db->err = PM_ETIMEDOUT;
            pm_why(&db->why, "sigfetch", "stopped before it was done");
            return;
        }
        char *mirror = s_mirror_norm(o->mirrors[i]);
        bool done = false;
        if (!s_cooling(run->report, mirror)) {
            tried = true;
            done = s_try_mirror(run, db, mirror);
        }
        free(mirror);
        if (done)
            return;
    }
    if (!tried)
        pm_why(&db->why, "sigfetch", "every mirror is cooling down");
}

/* Removes DBDIR's scratch directory with whatever a failed run left. */
static void
s_scratch_remove(const char *tmpdir)
{
    pm_file_remove_tree(tmpdir, false, NULL);
}

static pm_err_t
s_check_opts(const pm_sigfetch_opts_t *o, char **why)
{
    struct stat st;
    if (!o || !o->dbdir || (!o->n_mirrors && !o->cdiff_dir) ||
        (o->n_mirrors && !o->mirrors) || !o->databases || !o->n_databases) {
        pm_why(why, "sigfetch",
               "no database directory, mirror (or CDIFF directory) or "
               "database");
        return PM_EINVAL;
    }
    const char *dirs[] = {o->dbdir, o->cdiff_dir};
    for (size_t i = 0; i < 2; i++)
        if (dirs[i] && (stat(dirs[i], &st) != 0 || !S_ISDIR(st.st_mode))) {
            pm_why(why, "sigfetch", "%s is not a directory", dirs[i]);
            return PM_EINVAL;
        }
    for (size_t i = 0; i < o->n_mirrors; i++)
        if (!s_url_ok(o->mirrors[i])) {
            pm_why(why, "sigfetch", "mirror \"%s\" is not an http(s) URL",
                   o->mirrors[i] ? o->mirrors[i] : "");
            return PM_EINVAL;
        }
    for (size_t i = 0; i < o->n_databases; i++)
        if (!s_name_ok(o->databases[i])) {
            pm_why(why, "sigfetch", "database name \"%s\" is not allowed",
                   o->databases[i] ? o->databases[i] : "");
            return PM_EINVAL;
        }
    return PM_OK;
}

/* fc_initialize for this run's directory: a fresh start each run, so a
 * later run may name another directory. */
static pm_err_t
s_fc_start(const pm_sigfetch_opts_t *o, const char *tmpdir, char **why)
{
    fc_config cfg = {
        .msgFlags = FC_CONFIG_MSG_QUIET | FC_CONFIG_MSG_NOWARN,
        .maxAttempts = 1, /* else it sleeps 5 s between attempts */
        .connectTimeout = o->connect_timeout_s ? o->connect_timeout_s : 10,
        .requestTimeout = o->request_timeout_s ? o->request_timeout_s : 60,
        .databaseDirectory = o->dbdir,
        .tempDirectory = tmpdir,
    };
    fc_error_t rc = fc_initialize(&cfg);
    if (rc != FC_SUCCESS) {
        pm_why(why, "sigfetch", "libfreshclam would not start in %s: %s",
               o->dbdir, fc_strerror(rc));
        return PM_EINTERNAL;
    }
    fc_set_fccb_download_complete(s_on_download);
    return PM_OK;
}

/* The run proper, under s_lock, with the working directory saved. */
static pm_err_t
s_run_locked(const pm_sigfetch_opts_t *o, pm_sigfetch_report_t *report,
             char **why)
{
    char *tmpdir = pm_asprintf("%s/%s", o->dbdir, S_TMPDIR);
    s_scratch_remove(tmpdir);
    pm_err_t err = PM_EIO;
    if (mkdir(tmpdir, 0700) != 0) {
        pm_why(why, "sigfetch", "cannot make %s: %s", tmpdir, strerror(errno));
        goto out;
    }
    if ((err = s_fc_start(o, tmpdir, why)) != PM_OK)
        goto out;
    s_run_t run = {.opts = o, .report = report};
    for (size_t i = 0; i < report->n_dbs; i++)
        s_update_one(&run, &report->dbs[i]);
    free(run.verify_why);
    fc_set_fccb_download_complete(NULL);
    fc_cleanup();
out:
    s_scratch_remove(tmpdir);
    free(tmpdir);
    return err;
}

pm_err_t
pm_sigfetch_run(const pm_sigfetch_opts_t *opts, pm_sigfetch_report_t **report_p,
                char **why)
{
    pm_err_t err = s_check_opts(opts, why);
    if (err != PM_OK)
        return err;
    pthread_once(&s_once, s_init);
    if (s_init_rc != CL_SUCCESS) {
        pm_why(why, "sigfetch", "libclamav would not start: %s",
               cl_strerror(s_init_rc));
        return PM_EINTERNAL;
    }
    pm_sigfetch_report_t *r = pm_calloc(1, sizeof *r);
    r->n_dbs = opts->n_databases;
    r->dbs = pm_calloc(r->n_dbs, sizeof *r->dbs);
    for (size_t i = 0; i < r->n_dbs; i++)
        r->dbs[i].name = pm_strdup(opts->databases[i]);
    pthread_mutex_lock(&s_lock);
    int cwd = open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (cwd < 0) {
        pm_why(why, "sigfetch", "cannot hold the working directory: %s",
               strerror(errno));
        err = PM_EIO;
    } else {
        err = s_run_locked(opts, r, why);
        if (fchdir(cwd) != 0 && err == PM_OK) {
            pm_why(why, "sigfetch", "cannot restore the working directory");
            err = PM_EIO;
        }
        close(cwd);
    }
    pthread_mutex_unlock(&s_lock);
    if (err != PM_OK)
        pm_sigfetch_report_destroy(&r);
    else
        *report_p = r;
    return err;
}

/* Entries a database's archive may hold before its .info: sigtool puts
 * it second (after COPYING), but libfreshclam's .cld from CDIFFs holds
 * COPYING and daily.cfg, then the rest in directory order (daily: ~30
 * files). The file passed cl_cvdverify: only a bound against a misbuilt
 * one. */
#define S_INFO_WITHIN 1024

/* The name of the first .info in the archive of PATH (a .cvd or .cld: a
 * tar, gzipped or not, past the 512-byte header), or NULL with *WHY. */
static char *
s_info_name(const char *path, char **why)
{
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0 || lseek(fd, 512, SEEK_SET) != 512) {
        pm_why(why, "sigfetch", "%s: cannot be read: %s", path,
               strerror(errno));
        if (fd >= 0)
            close(fd);
        return NULL;
    }
    struct archive *a = archive_read_new();
    archive_read_support_filter_all(a);
    archive_read_support_format_tar(a);
    char *found = NULL;
    int rc = archive_read_open_fd(a, fd, 64 * 1024);
    for (int i = 0; rc == ARCHIVE_OK && !found && i < S_INFO_WITHIN; i++) {
        struct archive_entry *e;
        if ((rc = archive_read_next_header(a, &e)) != ARCHIVE_OK)
            break;
        const char *p = archive_entry_pathname(e);
        size_t n = p ? strlen(p) : 0;
        if (n > 5 && strcmp(p + n - 5, ".info") == 0)
            found = pm_strdup(p);
        else
            rc = archive_read_data_skip(a);
    }
    if (!found)
        pm_why(why, "sigfetch", "%s: no .info among its first %d files%s%s",
               path, S_INFO_WITHIN, rc == ARCHIVE_OK ? "" : ": ",
               rc == ARCHIVE_OK ? "" : archive_error_string(a));
    archive_read_free(a);
    close(fd);
    return found;
}

/* PATH's archive is database NAME's: its .info is NAME.info. */
static int
s_is_database(const char *path, const char *name, char **why)
{
    char *info = s_info_name(path, why);
    if (!info)
        return PM_EPROTO;
    size_t n = strlen(info) - 5;
    int rc =
        strlen(name) == n && strncmp(info, name, n) == 0 ? PM_OK : PM_EPROTO;
    if (rc != PM_OK)
        pm_why(why, "sigfetch", "%s is database %.*s, not %s", path, (int)n,
               info, name);
    free(info);
    return rc;
}

int
pm_sigfetch_verify(const char *path, const char *name, unsigned *version,
                   unsigned *sigs, time_t *built, char **why)
{
    pthread_once(&s_once, s_init);
    if (s_init_rc != CL_SUCCESS) {
        pm_why(why, "sigfetch", "libclamav would not start: %s",
               cl_strerror(s_init_rc));
        return PM_EPROTO;
    }
    /* cl_cvdverify tells a .cld from a .cvd by the name's ending */
    cl_error_t rc = cl_cvdverify(path);
    if (rc != CL_SUCCESS) {
        pm_why(why, "sigfetch", "%s failed ClamAV's signature check: %s", path,
               cl_strerror(rc));
        return PM_EPROTO;
    }
    if (!name || s_is_database(path, name, why) != PM_OK)
        return PM_EPROTO;
    return pm_sigfetch_head(path, version, sigs, built, why);
}

int
pm_sigfetch_head(const char *path, unsigned *version, unsigned *sigs,
                 time_t *built, char **why)
{
    struct cl_cvd *cvd = cl_cvdhead(path);
    if (!cvd) {
        pm_why(why, "sigfetch", "%s: no CVD header", path);
        return PM_EPROTO;
    }
    if (version)
        *version = cvd->version;
    if (sigs)
        *sigs = cvd->sigs;
    if (built)
        *built = (time_t)cvd->stime;
    cl_cvdfree(cvd);
    return PM_OK;
}
