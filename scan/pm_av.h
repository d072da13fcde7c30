/* pm_av.h - a libclamav engine that can be replaced while mail is scanned.
 *
 * A pm_av_t holds at most one compiled libclamav engine. pm_av_load builds
 * a new engine in the calling thread (signature directory plus the policy's
 * custom signature files), and only once it has compiled swaps it in. Scans
 * already running keep the engine they started with (each holds a
 * reference) and the old engine is freed when the last of them finishes;
 * scans that start after the swap use the new one. When a load fails
 * nothing changes: the previous engine keeps scanning.
 *
 * Thread-safe: any number of threads may scan while one (or more, they are
 * serialised) reloads. libclamav is initialised once per process on first
 * use (cl_init); its log callback (cl_set_clcb_msg, process-wide) is set
 * then, to catch the reason a signature file is refused. Another module in
 * the same process that replaces that callback leaves *why with
 * cl_strerror's generic text only.
 *
 * Errors. libclamav 1.4 answers "clean" when it cannot write what it
 * extracts (its temporary directory gone or full) and only logs an error;
 * a scan during which libclamav logged an error is PM_AV_ERROR, never
 * clean.
 *
 * Matches of custom and other unsigned signatures come back with
 * ".UNOFFICIAL" appended by libclamav ("PrivmtaTest.Marker.UNOFFICIAL").
 *
 * Limits. Every engine is built with explicit limits (pm_av_limits_t,
 * defaults below: clamd's own) and every scan runs with
 * CL_SCAN_HEURISTIC_EXCEEDS_MAX: content that goes past a limit is never
 * "clean" (libclamav's default is to stop looking and say clean, so a
 * marker 20 zips deep would pass). A real signature match anywhere in the
 * message still wins over a limit (the limit alert has no precedence).
 */
#ifndef PM_AV_H
#define PM_AV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

typedef struct pm_av_t pm_av_t;

/* Default limits (clamd 1.x's defaults). Nesting counts every container
 * level libclamav opens: the message itself, its MIME parts, archives. */
#define PM_AV_MAX_RECURSION 17          /* CL_ENGINE_MAX_RECURSION */
#define PM_AV_MAX_FILES 10000u          /* CL_ENGINE_MAX_FILES */
#define PM_AV_MAX_FILESIZE (100u << 20) /* CL_ENGINE_MAX_FILESIZE, 100 MiB */
/* CL_ENGINE_MAX_SCANSIZE, 400 MiB */
#define PM_AV_MAX_SCANSIZE (400ull << 20)
#define PM_AV_MAX_SCANTIME_MS 120000u /* CL_ENGINE_MAX_SCANTIME, 2 min */

/* Engine limits; a zero field means its default above. */
typedef struct {
    uint32_t max_recursion;   /* nesting levels */
    uint32_t max_files;       /* files looked at in one scan */
    uint64_t max_filesize;    /* largest single file (bytes) */
    uint64_t max_scansize;    /* bytes looked at in one scan */
    uint32_t max_scantime_ms; /* wall time of one scan */
} pm_av_limits_t;

/* What pm_av_scan returns. */
enum {
    PM_AV_ERROR = -1,     /* no engine, or libclamav failed */
    PM_AV_CLEAN = 0,      /* looked at completely, nothing found */
    PM_AV_INFECTED = 1,   /* a signature matched */
    PM_AV_INCOMPLETE = 2, /* content goes past a limit: recursion, files,
                             file size or scan size */
    PM_AV_TIMEOUT = 3,    /* the scan ran past max_scantime_ms */
};

/* One custom signature file: a base name whose extension selects the
 * format libclamav reads (.ndb, .hdb, .ldb, ...; see pm_check_signature_
 * name) and its bytes. */
typedef struct {
    const char *name;
    const void *data;
    size_t len;
} pm_av_sig_t;

/* One signed database (NAME.cvd or NAME.cld) in the signature directory
 * an engine was built from, as its header says. */
#define PM_AV_DBS_MAX 16
typedef struct {
    char name[65]; /* "daily"; the file name without .cvd / .cld */
    unsigned version;
    unsigned sigs;
    time_t built;
} pm_av_db_t;

/* What the holder reports to the agent's status. */
typedef struct {
    bool loaded;          /* an engine is in place (scans can run) */
    unsigned sigs;        /* signatures in the current engine */
    time_t built;         /* when the current engine was compiled */
    double build_secs;    /* how long loading and compiling took */
    unsigned db_version;  /* CL_ENGINE_DB_VERSION (daily CVD), 0 if none */
    time_t db_time;       /* CL_ENGINE_DB_TIME, 0 if none */
    bool block_encrypted; /* the current engine flags encrypted archives */
    uint64_t loads;       /* successful loads since pm_av_new */
    uint64_t failures;    /* failed loads since pm_av_new */
    char *last_error;     /* reason of the last failed load, or NULL when
                             the last load succeeded; owned by the status */
    pm_av_db_t dbs[PM_AV_DBS_MAX]; /* the signed databases of the current
                                      engine (read just before loading:
                                      one replaced meanwhile shows its
                                      older version until the next load) */
    size_t n_dbs;
} pm_av_status_t;

/* Creates an empty holder (no engine: scans fail until the first load).
 * Returns NULL when libclamav cannot be initialised. Caller owns the
 * result and must destroy it. */
pm_av_t *pm_av_new(void);

/* Destroys *self_p and sets it to NULL; accepts NULL, safe twice. No scan
 * may be running on it (programmer error). */
void pm_av_destroy(pm_av_t **self_p);

/* Sets the limits of the engines later loads build (the current engine
 * keeps its own until the next load); LIMITS NULL restores the defaults.
 * Thread-safe. */
void pm_av_set_limits(pm_av_t *self, const pm_av_limits_t *limits);

/* Sets where the engines later loads build write their temporary files
 * (CL_ENGINE_TMPDIR: the MIME parts and archive members libclamav
 * extracts while it scans, and the custom signature files while they
 * load); DIR NULL or "" restores libclamav's default ($TMPDIR, else
 * /tmp). DIR is copied and must exist when a scan needs it: a scan that
 * cannot write there fails (PM_AV_ERROR). On a disk file system every
 * extracted part costs a create, a write and an unlink (on ext4 mounted
 * with discard, a synchronous TRIM): measured +8 ms a message against
 * tmpfs. Thread-safe. */
void pm_av_set_tmpdir(pm_av_t *self, const char *dir);

/* Builds a new engine from every database file in SIGDIR (NULL, missing,
 * or holding no file libclamav loads: skipped) plus the N_CUSTOM custom
 * signature files, and swaps it in. Custom files are written with mode
 * 0600 into a private (0700) temporary directory, loaded one by one with
 * cl_load, and removed before this returns. BLOCK_ENCRYPTED makes scans
 * with this engine flag encrypted archives (Heuristics.Encrypted.*).
 * Returns PM_OK, or (keeping the old engine):
 *   PM_EINVAL  a custom file has no usable name (empty, '/', "." or
 *              "..") or libclamav refuses a file or the compile;
 *   PM_EIO     the temporary files cannot be written;
 *   PM_ENOMEM  libclamav cannot allocate an engine.
 * On failure *why (may be NULL) gets a new sentence naming the file and
 * libclamav's reason ("custom signature bad.ndb: Malformed database: ...");
 * the caller frees it. The reason is also kept for pm_av_status. */
int pm_av_load(pm_av_t *self, const char *sigdir, const pm_av_sig_t *custom,
               size_t n_custom, bool block_encrypted, char **why);

/* Scans DATA (LEN bytes, a whole RFC 5322 message as the milter has it)
 * from memory with the current engine: mail, archives and every other
 * format libclamav parses (CL_SCAN_PARSE_MAIL decodes base64 attachments),
 * first match only. Returns:
 *    PM_AV_CLEAN (0)       clean;
 *    PM_AV_INFECTED (1)    *virname (may be NULL) gets a new copy of the
 *                          name the caller frees;
 *    PM_AV_INCOMPLETE (2)  the content goes past one of the engine's
 *                          content limits, so part of it was never looked
 *                          at: *why (may be NULL) names the limit, e.g.
 *                          "recursion limit of 17 levels" (caller frees);
 *    PM_AV_TIMEOUT (3)     the scan ran past the scan time limit: *why
 *                          names it ("scan time limit of 120000 ms");
 *    PM_AV_ERROR (-1)      no engine loaded yet or libclamav failed: *why
 *                          gets a new sentence the caller frees.
 * Only CLEAN is a pass: the caller applies its fail-safe action to every
 * other value. */
int pm_av_scan(pm_av_t *self, const char *data, size_t len, char **virname,
               char **why);

/* Fills *out (caller clears it with pm_av_status_clear). Returns PM_OK or
 * PM_EINVAL on NULL arguments. */
int pm_av_status(pm_av_t *self, pm_av_status_t *out);

/* Frees what a status owns and zeroes it; safe on a zeroed status. */
void pm_av_status_clear(pm_av_status_t *st);

#endif
