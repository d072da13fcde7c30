/* pm_av.c - a refcounted libclamav engine, swapped in whole. */
#include "pm_av.h"
#include "pm_clock.h"
#include "pm_error.h"
#include "pm_mem.h"

#include <clamav.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* One compiled engine and what is known about it. REFS counts the holder's
 * own reference plus one per scan in flight; all under pm_av_t.lock. */
typedef struct {
    struct cl_engine *cl;
    unsigned refs;
    unsigned sigs;
    time_t built;
    double build_secs;
    unsigned db_version;
    time_t db_time;
    bool block_encrypted;
    pm_av_limits_t limits; /* what it was built with, for *why */
    pm_av_db_t dbs[PM_AV_DBS_MAX];
    size_t n_dbs;
} s_engine_t;

struct pm_av_t {
    pthread_mutex_t lock;      /* cur, refs, counters, last_error, limits */
    pthread_mutex_t load_lock; /* one load at a time */
    s_engine_t *cur;
    pm_av_limits_t limits; /* for the next load, defaults filled in */
    char *tmpdir;          /* for the next load; NULL: libclamav's default */
    uint64_t loads;
    uint64_t failures;
    char *last_error;
};

/* libclamav says why it refuses a file, or why a scan could not look at
 * everything, only through its process-wide log callback, with no
 * per-call context: each thread keeps the errors of its own current load
 * or scan. */
static __thread char s_msgs[1024];
/* Errors that name this path only repeat the specific one with a
 * meaningless temporary file name ("Can't load /tmp/...: ..."). */
static __thread const char *s_skip;
static pthread_once_t s_once = PTHREAD_ONCE_INIT;
static cl_error_t s_init_rc;

/* File name endings libclamav's directory loader reads (readdb.h). */
static const char *const s_db_exts[] = {
    "cvd", "cld",  "cud", "hdb",  "hdu", "hsb",  "hsu",  "fp",  "sfp", "mdb",
    "mdu", "msb",  "msu", "ndb",  "ndu", "ldb",  "ldu",  "sdb", "zmd", "rmd",
    "idb", "gdb",  "pdb", "wdb",  "cbc", "ftm",  "cfg",  "cdb", "cat", "crb",
    "ign", "ign2", "imp", "pwdb", "yar", "yara", "info", NULL};

static void
s_on_msg(enum cl_msg severity, const char *fullmsg, const char *msg,
         void *context)
{
    (void)fullmsg;
    (void)context;
    if (severity != CL_MSG_ERROR || !msg || (s_skip && strstr(msg, s_skip)))
        return;
    size_t used = strlen(s_msgs);
    if (used + 3 >= sizeof s_msgs)
        return;
    snprintf(s_msgs + used, sizeof s_msgs - used, "%s%s", used ? "; " : "",
             msg);
    size_t n = strlen(s_msgs);
    while (n && (s_msgs[n - 1] == '\n' || s_msgs[n - 1] == ' '))
        s_msgs[--n] = '\0';
}

static void
s_init(void)
{
    cl_set_clcb_msg(s_on_msg);
    s_init_rc = cl_init(CL_INIT_DEFAULT);
}

static void
s_engine_release(pm_av_t *self, s_engine_t *e)
{
    if (!e)
        return;
    pthread_mutex_lock(&self->lock);
    bool last = --e->refs == 0;
    pthread_mutex_unlock(&self->lock);
    if (last) {
        cl_engine_free(e->cl);
        free(e);
    }
}

static s_engine_t *
s_engine_acquire(pm_av_t *self)
{
    pthread_mutex_lock(&self->lock);
    s_engine_t *e = self->cur;
    if (e)
        e->refs++;
    pthread_mutex_unlock(&self->lock);
    return e;
}

pm_av_t *
pm_av_new(void)
{
    pthread_once(&s_once, s_init);
    if (s_init_rc != CL_SUCCESS)
        return NULL;
    pm_av_t *self = pm_calloc(1, sizeof *self);
    pthread_mutex_init(&self->lock, NULL);
    pthread_mutex_init(&self->load_lock, NULL);
    pm_av_set_limits(self, NULL);
    return self;
}

void
pm_av_set_limits(pm_av_t *self, const pm_av_limits_t *limits)
{
    pm_av_limits_t l = limits ? *limits : (pm_av_limits_t){0};
    if (!l.max_recursion)
        l.max_recursion = PM_AV_MAX_RECURSION;
    if (!l.max_files)
        l.max_files = PM_AV_MAX_FILES;
    if (!l.max_filesize)
        l.max_filesize = PM_AV_MAX_FILESIZE;
    if (!l.max_scansize)
        l.max_scansize = PM_AV_MAX_SCANSIZE;
    if (!l.max_scantime_ms)
        l.max_scantime_ms = PM_AV_MAX_SCANTIME_MS;
    pthread_mutex_lock(&self->lock);
    self->limits = l;
    pthread_mutex_unlock(&self->lock);
}

void
pm_av_set_tmpdir(pm_av_t *self, const char *dir)
{
    char *copy = dir && *dir ? pm_strdup(dir) : NULL;
    pthread_mutex_lock(&self->lock);
    free(self->tmpdir);
    self->tmpdir = copy;
    pthread_mutex_unlock(&self->lock);
}

/* Explicit limits on CL, so that what "exceeds a limit" means is ours and
 * does not move with libclamav's defaults. */
static cl_error_t
s_set_limits(struct cl_engine *cl, const pm_av_limits_t *l)
{
    const struct {
        enum cl_engine_field field;
        long long value;
    } set[] = {
        {CL_ENGINE_MAX_RECURSION, (long long)l->max_recursion},
        {CL_ENGINE_MAX_FILES, (long long)l->max_files},
        {CL_ENGINE_MAX_FILESIZE, (long long)l->max_filesize},
        {CL_ENGINE_MAX_SCANSIZE, (long long)l->max_scansize},
        {CL_ENGINE_MAX_SCANTIME, (long long)l->max_scantime_ms},
    };
    for (size_t i = 0; i < sizeof set / sizeof set[0]; i++) {
        cl_error_t rc = cl_engine_set_num(cl, set[i].field, set[i].value);
        if (rc != CL_SUCCESS)
            return rc;
    }
    return CL_SUCCESS;
}

void
pm_av_destroy(pm_av_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    pm_av_t *self = *self_p;
    s_engine_release(self, self->cur);
    free(self->last_error);
    free(self->tmpdir);
    pthread_mutex_destroy(&self->lock);
    pthread_mutex_destroy(&self->load_lock);
    free(self);
    *self_p = NULL;
}

static bool
s_is_db_name(const char *name)
{
    const char *dot = strrchr(name, '.');
    if (name[0] == '.' || !dot)
        return false;
    for (size_t i = 0; s_db_exts[i]; i++)
        if (strcasecmp(dot + 1, s_db_exts[i]) == 0)
            return true;
    return false;
}

/* 1 when DIR holds a file libclamav loads, 0 when it is missing or holds
 * none (cl_load would fail on it), -1 when it cannot be read. */
static int
s_dir_has_db(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return errno == ENOENT ? 0 : -1;
    int found = 0;
    struct dirent *de;
    while (!found && (de = readdir(d)))
        found = s_is_db_name(de->d_name);
    closedir(d);
    return found;
}

/* The headers of the signed databases (NAME.cvd, NAME.cld) in DIR into
 * DBS (at most PM_AV_DBS_MAX names; the newer of two files of one name). */
static size_t
s_dir_headers(const char *dir, pm_av_db_t *dbs)
{
    DIR *d = opendir(dir);
    size_t n = 0;
    struct dirent *de;
    while (d && (de = readdir(d))) {
        size_t len = strlen(de->d_name);
        if (len < 5 || len - 4 >= sizeof dbs->name ||
            (strcmp(de->d_name + len - 4, ".cvd") != 0 &&
             strcmp(de->d_name + len - 4, ".cld") != 0))
            continue;
        char *path = pm_asprintf("%s/%s", dir, de->d_name);
        struct cl_cvd *cvd = cl_cvdhead(path);
        free(path);
        if (!cvd)
            continue;
        size_t i = 0;
        while (i < n && (strlen(dbs[i].name) != len - 4 ||
                         strncmp(dbs[i].name, de->d_name, len - 4) != 0))
            i++;
        if (i == n && n < PM_AV_DBS_MAX) {
            memset(&dbs[n], 0, sizeof dbs[n]);
            memcpy(dbs[n].name, de->d_name, len - 4);
            n++;
        }
        if (i < n && cvd->version > dbs[i].version) {
            dbs[i].version = cvd->version;
            dbs[i].sigs = cvd->sigs;
            dbs[i].built = (time_t)cvd->stime;
        }
        cl_cvdfree(cvd);
    }
    if (d)
        closedir(d);
    return n;
}

/* libclamav's reason: its logged errors, or cl_strerror when none. */
static char *
s_reason(const char *what, cl_error_t rc)
{
    return pm_asprintf("%s: %s%s%s", what, cl_strerror(rc),
                       s_msgs[0] ? ": " : "", s_msgs);
}

static int
s_write_file(const char *path, const void *data, size_t len)
{
    int fd =
        open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0)
        return -1;
    size_t done = 0;
    while (done < len) {
        ssize_t w = write(fd, (const char *)data + done, len - done);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            break;
        done += (size_t)w;
    }
    if (close(fd) != 0 || done < len) {
        unlink(path);
        return -1;
    }
    return 0;
}

static bool
s_valid_name(const char *name)
{
    return name && *name && !strchr(name, '/') && strcmp(name, ".") != 0 &&
           strcmp(name, "..") != 0;
}

/* Writes each custom file into a private directory and loads it alone, so
 * a refusal names the file. Files are gone when this returns. */
static int
s_load_custom(struct cl_engine *cl, const char *tmpdir,
              const pm_av_sig_t *custom, size_t n, unsigned *sigs,
              char **problem)
{
    const char *tmp = tmpdir ? tmpdir : getenv("TMPDIR");
    char *dir = pm_asprintf("%s/privmta-av.XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(dir)) {
        *problem = pm_asprintf("cannot create a temporary directory: %s",
                               strerror(errno));
        free(dir);
        return PM_EIO;
    }
    int rc = PM_OK;
    s_skip = dir;
    for (size_t i = 0; i < n && rc == PM_OK; i++) {
        if (!s_valid_name(custom[i].name) ||
            (!custom[i].data && custom[i].len)) {
            *problem = pm_asprintf("custom signature %zu: unusable name", i);
            rc = PM_EINVAL;
            break;
        }
        char *path = pm_asprintf("%s/%s", dir, custom[i].name);
        if (s_write_file(path, custom[i].data, custom[i].len) != 0) {
            *problem = pm_asprintf(
                "custom signature %s: cannot write it: %s", custom[i].name,
                errno == EEXIST ? "duplicate name" : strerror(errno));
            rc = PM_EIO;
        } else {
            s_msgs[0] = '\0';
            char *what = pm_asprintf("custom signature %s", custom[i].name);
            cl_error_t crc = cl_load(path, cl, sigs, CL_DB_STDOPT);
            if (crc != CL_SUCCESS) {
                *problem = s_reason(what, crc);
                rc = crc == CL_EMEM ? PM_ENOMEM : PM_EINVAL;
            }
            free(what);
            unlink(path);
        }
        free(path);
    }
    s_skip = NULL;
    rmdir(dir);
    free(dir);
    return rc;
}

/* Loads and compiles a new engine; NULL with *problem set on failure. */
static s_engine_t *
s_build(const char *sigdir, const pm_av_sig_t *custom, size_t n_custom,
        const pm_av_limits_t *limits, const char *tmpdir, int *rc,
        char **problem)
{
    int64_t start = pm_clock_ms();
    struct cl_engine *cl = cl_engine_new();
    if (!cl) {
        *problem = pm_strdup("libclamav cannot allocate an engine");
        *rc = PM_ENOMEM;
        return NULL;
    }
    unsigned sigs = 0;
    pm_av_db_t dbs[PM_AV_DBS_MAX] = {0};
    size_t n_dbs = 0;
    *rc = PM_OK;
    cl_error_t lrc = s_set_limits(cl, limits);
    if (lrc == CL_SUCCESS && tmpdir)
        lrc = cl_engine_set_str(cl, CL_ENGINE_TMPDIR, tmpdir);
    if (lrc != CL_SUCCESS) {
        *problem = s_reason(
            "setting the engine's limits and temporary directory", lrc);
        *rc = PM_EINVAL;
        cl_engine_free(cl);
        return NULL;
    }
    int has = sigdir ? s_dir_has_db(sigdir) : 0;
    if (has < 0) {
        *problem =
            pm_asprintf("signature directory %s: %s", sigdir, strerror(errno));
        *rc = PM_EIO;
    } else if (has) {
        n_dbs = s_dir_headers(sigdir, dbs);
        s_msgs[0] = '\0';
        cl_error_t crc = cl_load(sigdir, cl, &sigs, CL_DB_STDOPT);
        if (crc != CL_SUCCESS) {
            char *what = pm_asprintf("signature directory %s", sigdir);
            *problem = s_reason(what, crc);
            free(what);
            *rc = crc == CL_EMEM ? PM_ENOMEM : PM_EINVAL;
        }
    }
    if (*rc == PM_OK && n_custom)
        *rc = s_load_custom(cl, tmpdir, custom, n_custom, &sigs, problem);
    if (*rc == PM_OK) {
        s_msgs[0] = '\0';
        cl_error_t crc = cl_engine_compile(cl);
        if (crc != CL_SUCCESS) {
            *problem = s_reason("compiling the engine", crc);
            *rc = crc == CL_EMEM ? PM_ENOMEM : PM_EINVAL;
        }
    }
    if (*rc != PM_OK) {
        cl_engine_free(cl);
        return NULL;
    }
    s_engine_t *e = pm_calloc(1, sizeof *e);
    e->cl = cl;
    e->refs = 1;
    e->sigs = sigs;
    e->built = time(NULL);
    e->build_secs = (double)(pm_clock_ms() - start) / 1000;
    e->db_version = (unsigned)cl_engine_get_num(cl, CL_ENGINE_DB_VERSION, NULL);
    e->db_time = (time_t)cl_engine_get_num(cl, CL_ENGINE_DB_TIME, NULL);
    e->limits = *limits;
    memcpy(e->dbs, dbs, sizeof dbs);
    e->n_dbs = n_dbs;
    return e;
}

int
pm_av_load(pm_av_t *self, const char *sigdir, const pm_av_sig_t *custom,
           size_t n_custom, bool block_encrypted, char **why)
{
    if (!self || (n_custom && !custom)) {
        if (why)
            *why = pm_strdup("invalid argument");
        return PM_EINVAL;
    }
    pthread_mutex_lock(&self->load_lock);
    int rc = PM_OK;
    char *problem = NULL;
    pthread_mutex_lock(&self->lock);
    pm_av_limits_t limits = self->limits;
    char *tmpdir = self->tmpdir ? pm_strdup(self->tmpdir) : NULL;
    pthread_mutex_unlock(&self->lock);
    s_engine_t *e =
        s_build(sigdir, custom, n_custom, &limits, tmpdir, &rc, &problem);
    free(tmpdir);
    s_engine_t *old = NULL;
    pthread_mutex_lock(&self->lock);
    if (e) {
        e->block_encrypted = block_encrypted;
        old = self->cur;
        self->cur = e;
        self->loads++;
        PM_FREE(&self->last_error);
    } else {
        self->failures++;
        free(self->last_error);
        self->last_error = pm_strdup(problem);
    }
    pthread_mutex_unlock(&self->lock);
    /* Drops the holder's reference: freed now, or by the last scan. */
    s_engine_release(self, old);
    pthread_mutex_unlock(&self->load_lock);
    if (problem && why)
        *why = problem;
    else
        free(problem);
    return rc;
}

/* The limit a "Heuristics.Limits.Exceeded.<Max...>" alert or a limit
 * error names: PM_AV_INCOMPLETE or PM_AV_TIMEOUT with *why, or 0 when
 * NAME / CRC is not about a limit. */
static int
s_limit(const s_engine_t *e, const char *name, cl_error_t crc, char **why)
{
    static const char prefix[] = "Heuristics.Limits.Exceeded.";
    const char *max = name && strncmp(name, prefix, sizeof prefix - 1) == 0
                          ? name + sizeof prefix - 1
                          : "";
    const pm_av_limits_t *l = &e->limits;
    char *text = NULL;
    int verdict = PM_AV_INCOMPLETE;
    if (crc == CL_EMAXREC || strcmp(max, "MaxRecursion") == 0)
        text = pm_asprintf("recursion limit of %u levels", l->max_recursion);
    else if (crc == CL_EMAXFILES || strcmp(max, "MaxFiles") == 0)
        text = pm_asprintf("file count limit of %u files", l->max_files);
    else if (strcmp(max, "MaxFileSize") == 0)
        text = pm_asprintf("file size limit of %llu bytes",
                           (unsigned long long)l->max_filesize);
    else if (crc == CL_EMAXSIZE || strcmp(max, "MaxScanSize") == 0)
        text = pm_asprintf("scan size limit of %llu bytes",
                           (unsigned long long)l->max_scansize);
    else if (crc == CL_ETIMEOUT || strcmp(max, "MaxScanTime") == 0) {
        text = pm_asprintf("scan time limit of %u ms", l->max_scantime_ms);
        verdict = PM_AV_TIMEOUT;
    } else if (*max) /* a limit this libclamav knows and we do not */
        text = pm_asprintf("limit %s", max);
    else
        return 0;
    if (why)
        *why = text;
    else
        free(text);
    return verdict;
}

/* One libclamav scan of MAP (LEN bytes) with E: the verdict and its
 * outputs. */
static int
s_scan_map(const s_engine_t *e, cl_fmap_t *map, size_t len, char **virname,
           char **why)
{
    struct cl_scan_options opts = {0};
    opts.parse = ~0u;
    /* without it a limit stops the look and the rest counts as clean */
    opts.heuristic = CL_SCAN_HEURISTIC_EXCEEDS_MAX;
    if (e->block_encrypted) {
        opts.general = CL_SCAN_GENERAL_HEURISTICS;
        opts.heuristic |= CL_SCAN_HEURISTIC_ENCRYPTED_ARCHIVE;
    }
    const char *name = NULL;
    unsigned long scanned = 0;
    s_msgs[0] = '\0';
    cl_error_t crc =
        cl_scanmap_callback(map, NULL, &name, &scanned, e->cl, &opts, NULL);
    /* libclamav 1.4 answers "clean" when it could not write what it
     * extracts (temporary directory gone, file system full: a marker in an
     * attachment then passes); it only logs an error. Whatever it logged
     * as an error during a "clean" scan means not looked at. */
    if (crc == CL_CLEAN && s_msgs[0]) {
        if (why)
            *why = pm_asprintf("libclamav could not look at everything: %s",
                               s_msgs);
        return PM_AV_ERROR;
    }
    if (crc == CL_CLEAN)
        return PM_AV_CLEAN;
    /* libclamav 1.x alerts on a whole input over max_filesize without
     * giving the alert's name */
    if (crc == CL_VIRUS && !name && len > e->limits.max_filesize)
        name = "Heuristics.Limits.Exceeded.MaxFileSize";
    int limit = s_limit(e, crc == CL_VIRUS ? name : NULL, crc, why);
    if (limit)
        return limit;
    if (crc == CL_VIRUS) {
        if (virname)
            *virname = pm_strdup(name ? name : "unknown");
        return PM_AV_INFECTED;
    }
    if (why)
        *why = pm_asprintf("libclamav scan failed: %s", cl_strerror(crc));
    return PM_AV_ERROR;
}

int
pm_av_scan(pm_av_t *self, const char *data, size_t len, char **virname,
           char **why)
{
    if (!self || (!data && len)) {
        if (why)
            *why = pm_strdup("invalid argument");
        return PM_AV_ERROR;
    }
    s_engine_t *e = s_engine_acquire(self);
    if (!e) {
        if (why)
            *why = pm_strdup("no antivirus engine loaded");
        return PM_AV_ERROR;
    }
    int verdict = PM_AV_CLEAN;
    cl_fmap_t *map = len ? cl_fmap_open_memory(data, len) : NULL;
    if (len && !map) {
        if (why)
            *why = pm_strdup("libclamav cannot map the message");
        verdict = PM_AV_ERROR;
    } else if (map) {
        verdict = s_scan_map(e, map, len, virname, why);
        cl_fmap_close(map);
    }
    s_engine_release(self, e);
    return verdict;
}

int
pm_av_status(pm_av_t *self, pm_av_status_t *out)
{
    if (!self || !out)
        return PM_EINVAL;
    pm_av_status_t st = {0};
    pthread_mutex_lock(&self->lock);
    s_engine_t *e = self->cur;
    if (e) {
        st.loaded = true;
        st.sigs = e->sigs;
        st.built = e->built;
        st.build_secs = e->build_secs;
        st.db_version = e->db_version;
        st.db_time = e->db_time;
        st.block_encrypted = e->block_encrypted;
        memcpy(st.dbs, e->dbs, sizeof st.dbs);
        st.n_dbs = e->n_dbs;
    }
    st.loads = self->loads;
    st.failures = self->failures;
    st.last_error = self->last_error ? pm_strdup(self->last_error) : NULL;
    pthread_mutex_unlock(&self->lock);
    *out = st;
    return PM_OK;
}

void
pm_av_status_clear(pm_av_status_t *st)
{
    if (!st)
        return;
    free(st->last_error);
    memset(st, 0, sizeof *st);
}
