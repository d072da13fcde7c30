/* pm_sigfetch.h - bring ClamAV databases up to a mirror's newest version.
 *
 * Given a database directory, mirror base URLs ("http://127.0.0.1:8080",
 * "https://database.clamav.net") and database names ("main", "daily",
 * "bytecode"; "test" in the tests), pm_sigfetch_run brings each database
 * to the newest version a mirror offers and reports exactly what happened:
 * version before and after, signature count, which mirror, and on failure
 * the reason; rate limits come back as per-mirror cool-downs, as data the
 * caller turns into a cluster fact.
 *
 * The mirror protocol and the formats are libfreshclam's, not ours: for
 * each database and mirror the module first asks the mirror itself for
 * the version, exactly as freshclam does without DNS (GET <mirror>/<db>.cvd
 * with "Range: bytes=0-511" and If-Modified-Since the local build time;
 * the header is parsed by libclamav's cl_cvdparse). Only when the mirror
 * is newer does it call libfreshclam's fc_update_database for that one
 * mirror, which asks again (one more 512-byte request), fetches
 * <db>-N.cdiff for each step and applies them into <db>.cld, or the whole
 * <db>.cvd when it has no local copy or the CDIFFs are missing.
 *
 * Why ask first: libfreshclam does not tell its caller the HTTP status. A
 * 429 on the version check comes back as FC_EFAILEDGET; a 429 during a
 * download comes back as FC_SUCCESS with nothing updated; the Retry-After
 * deadline is kept only in its private state (freshclam.dat in the
 * database directory, one deadline for the whole node, whatever mirror
 * said it). Our own check reads the status and Retry-After (libcurl's
 * CURLINFO_RETRY_AFTER) for the mirror that said it. When libfreshclam
 * then fails a GET or stops short of the announced version without an
 * error, one more check of that mirror says why (a 429 that came in the
 * middle of the update shows there).
 *
 * Cool-downs: a 429 sets the mirror's deadline to now + Retry-After (4 h
 * when absent), a 403 to now + 24 h, as freshclam does. The module asks no
 * mirror again in the same run once it has said either, and tries the
 * next mirror. It keeps no deadline between runs: the caller passes only
 * the mirrors whose cool-down has passed. libfreshclam's own freshclam.dat
 * cool-down is not what governs: fc_update_database (one database) does
 * not read it, only fc_update_databases does, which this module does not
 * call. libfreshclam still writes freshclam.dat (a node UUID and its last
 * deadline) into the database directory; libclamav does not load it.
 *
 * Verification: nothing unverified is left in the database directory.
 * libfreshclam downloads into a scratch directory inside it
 * (.pm-sigfetch.tmp, removed again before returning), checks a whole CVD
 * with cl_cvdverify (MD5 and RSA signature of the header, the signed
 * .info, every file's SHA-256) and every CDIFF's own signature while
 * applying it; before it renames a new file into place this module checks
 * the result once more with cl_cvdverify (for a .cld built from CDIFFs:
 * every file against the signed .info). A file that fails is removed and
 * the previous version stays. No engine is built (that is the milter's
 * job, and a full one costs ~1.2 GiB).
 *
 * CDIFFs kept and shared (CDIFF_DIR in the options): libfreshclam
 * removes the CDIFFs it applies, so a node could share only whole files
 * (a daily.cld is ~300 MiB; a CDIFF a few KiB). Given a CDIFF directory,
 * the module downloads a database's CDIFFs itself when the local copy is
 * 1 to PM_SIGFETCH_CDIFF_STEPS versions behind the mirror (GET
 * <mirror>/<db>-N.cdiff, one request each, at most PM_WIRE_CDIFF_MAX
 * bytes), writes the version check's 512-byte header beside them as
 * <db>.head, and has libfreshclam apply them from a mirror of its own on
 * 127.0.0.1 (pm_sigmirror.h): they stay in the directory for the agent to
 * keep and serve to peers. When a CDIFF is missing on the mirror or does
 * not apply, libfreshclam updates from the mirror itself as before (429
 * and 403 on a CDIFF are cool-downs as anywhere). With no mirrors and a
 * CDIFF directory, the module applies what the directory holds (a peer's
 * CDIFFs and the header of the version they make, put there by the
 * agent): the same libfreshclam path, the same checks.
 *
 * Process-global state: libfreshclam keeps its configuration (database
 * directory, timeouts, log flags) in globals, initialises and cleans up
 * libcurl globally (curl_global_init is not thread-safe against other
 * libcurl users) and chdir()s into the database directory. So
 * pm_sigfetch_run holds one process-wide mutex for its whole duration,
 * calls fc_initialize and fc_cleanup around each run, and restores the
 * working directory before returning; still, no other thread of the
 * process may use relative paths or initialise libcurl while it runs.
 * So it runs in a process of its own, privmta-sigfetch, which the agent
 * starts for each fetch (pm_sigfetch_spawn), never in the agent or the
 * milter. It blocks for as long as the downloads take (bounded by the
 * timeouts below per request) and libfreshclam prints its errors to
 * stderr (the agent logs them).
 */
#ifndef PM_SIGFETCH_H
#define PM_SIGFETCH_H

#include "pm_error.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* What pm_sigfetch_run is asked to do. Only read during the call. */
typedef struct {
    const char *dbdir;            /* existing directory, writable */
    const char *const *mirrors;   /* http(s) base URLs, tried in order */
    size_t n_mirrors;             /* at least 1 */
    const char *const *databases; /* names: [a-z0-9_-], 1..64 chars */
    size_t n_databases;           /* at least 1 */
    unsigned connect_timeout_s;   /* per connection; 0: 10 s */
    unsigned request_timeout_s;   /* stalled transfer; 0: 60 s */
    /* NULL, or asked (in the calling thread) about once a second during
     * this module's own version checks and before each mirror and each
     * database: true ends the run early, the databases not done with
     * PM_ETIMEDOUT ("stopped"). So an agent shutting down never waits out
     * a stalled mirror there. libfreshclam's own downloads cannot be
     * interrupted: they end by the timeouts above. */
    bool (*cancelled)(void *arg);
    void *cancel_arg;
    /* pm_sigfetch_spawn only: the helper runs as this user when started
     * by root (--user; pm_priv_drop); NULL: as its parent */
    const char *user;
    /* NULL, or an existing directory, writable, for CDIFFs (see above);
     * required when N_MIRRORS is 0 */
    const char *cdiff_dir;
} pm_sigfetch_opts_t;

/* The most versions a database is brought forward by CDIFFs the module
 * keeps (cvdupdate's private mirrors keep the last 30); further behind,
 * the whole file. The agent keeps as many per database to share. */
#define PM_SIGFETCH_CDIFF_STEPS 30

/* What became of one database. ERR is PM_OK when the database is at the
 * newest version a mirror offered (CHANGED says whether this run brought
 * it there), else:
 *   PM_EDENIED    every mirror asked answered 429 or 403 (see cooldowns);
 *   PM_ETIMEDOUT  no mirror could be reached (refused, timed out);
 *   PM_EPROTO     a mirror served a file that failed ClamAV's signature
 *                 check, or a header that is not a CVD header;
 *   PM_ENOTFOUND  no mirror has the database (404);
 *   PM_EIO        the database directory could not be written;
 *   PM_EINTERNAL  libfreshclam failed otherwise, or stopped short.
 * WHY then names the mirror and the reason for the last one tried.
 * VERSION, SIGS and BUILT describe what is in the directory after the call
 * (0 when nothing is), whatever ERR says: a partly applied update (CDIFFs
 * up to some version) is kept and counted as CHANGED. */
typedef struct {
    char *name;
    pm_err_t err;
    char *why;            /* NULL when ERR is PM_OK */
    bool changed;         /* VERSION differs from OLD_VERSION */
    unsigned old_version; /* before the call; 0: none */
    unsigned version;     /* after the call; 0: none */
    unsigned sigs;        /* signature count from the header */
    time_t built;         /* build time from the header */
    char *mirror;         /* the one that answered; NULL when none did */
    int http_status;      /* last HTTP status from MIRROR or the failing
                             one (0: no HTTP answer) */
} pm_sigfetch_db_t;

/* A mirror that answered 429 or 403 during the run: do not ask it again
 * before UNTIL (HTTP_STATUS 429: now + Retry-After, or 4 h without one;
 * 403: now + 24 h). */
typedef struct {
    char *mirror;
    int http_status;
    time_t until;
} pm_sigfetch_cooldown_t;

/* The outcome of one run: one entry per requested database, in order, and
 * one per mirror that is cooling down. */
typedef struct {
    pm_sigfetch_db_t *dbs;
    size_t n_dbs;
    pm_sigfetch_cooldown_t *cooldowns;
    size_t n_cooldowns;
} pm_sigfetch_report_t;

/* Updates every database of OPTS (see above) and sets *REPORT_P to what
 * happened to each. Per-database failures are in the report, not in the
 * return value: PM_OK means the run took place. Caller owns *REPORT_P and
 * must destroy it with pm_sigfetch_report_destroy. Serialised with every
 * other call in the process (see "Process-global state").
 * Errors (*REPORT_P untouched, *WHY set when WHY is not NULL):
 * PM_EINVAL (empty lists, a database name or mirror URL that is not
 * allowed, DBDIR or CDIFF_DIR not a directory, neither a mirror nor a
 * CDIFF directory), PM_EIO (the scratch directory or the
 * working directory could not be made or restored), PM_EINTERNAL
 * (libfreshclam would not initialise). */
pm_err_t pm_sigfetch_run(const pm_sigfetch_opts_t *opts,
                         pm_sigfetch_report_t **report_p, char **why);

/* pm_sigfetch_run in a child process: runs HELPER (privmta-sigfetch, by
 * path) with OPTS on its command line and reads the report back from its
 * stdout, through pm_wire's gate (at most PM_WIRE_FETCH_MAX bytes, the
 * databases asked, in order). The agent calls this, never pm_sigfetch_run:
 * libcurl, OpenSSL and libfreshclam then never start in the agent (about
 * 5 MiB of its memory for good), a crash on what a mirror sent ends the
 * child, not the root agent, and OPTS->cancelled kills the child, so a
 * stalled libfreshclam download no longer holds up a shutdown. Returns
 * what pm_sigfetch_run returns (the helper exits with it), PM_ETIMEDOUT
 * when cancelled, PM_EPROTO for a report that does not pass the gate,
 * PM_EINTERNAL when the helper cannot run, is killed or overruns its
 * deadline (every timeout of OPTS, per database and mirror); *WHY then
 * says which. */
pm_err_t pm_sigfetch_spawn(const char *helper, const pm_sigfetch_opts_t *opts,
                           pm_sigfetch_report_t **report_p, char **why);

/* The report as the helper writes it (a packed FetchReport; caller frees),
 * and back: pm_sigfetch_report_unpack accepts only a report about exactly
 * OPTS's databases, in their order (PM_EPROTO and *WHY otherwise). */
uint8_t *pm_sigfetch_report_pack(const pm_sigfetch_report_t *report,
                                 size_t *len);
pm_err_t pm_sigfetch_report_unpack(const uint8_t *buf, size_t len,
                                   const pm_sigfetch_opts_t *opts,
                                   pm_sigfetch_report_t **report_p, char **why);

/* Verifies PATH (a .cvd, or a .cld libfreshclam built from CDIFFs) with
 * ClamAV's own check (cl_cvdverify: for a .cvd the header's MD5 and RSA
 * signature, the signed .info and every file's SHA-256; for a .cld every
 * file against the signed .info), checks that it is database NAME (the
 * archive's one .info is NAME.info: a CVD header names no database, and a
 * genuine daily.cvd offered as main.cvd would otherwise pass, replace main
 * at a version far above main's own and shut out every real main after
 * it), and reads its header (cl_cvdhead). PATH must end in ".cvd" or
 * ".cld": libclamav tells the two forms apart by the name (and, seen with
 * libclamav 1.4, checking DIR/NAME.cld fails when a DIR/NAME.cvd beside it
 * is broken: check scratch copies in a directory of their own, under a
 * name no other file there has). Returns PM_OK and sets *VERSION, *SIGS
 * and *BUILT (each may be NULL), or PM_EPROTO with *WHY naming the file
 * and libclamav's reason, or the database it is. No engine is built; safe
 * from any thread (libclamav is initialised once per process), and usable
 * beside a running pm_sigfetch_run. */
int pm_sigfetch_verify(const char *path, const char *name, unsigned *version,
                       unsigned *sigs, time_t *built, char **why);

/* What the CVD header of PATH says (libclamav's cl_cvdhead), as
 * pm_sigfetch_verify sets it, without checking the file: for one this node
 * verified before it installed it. PM_EPROTO when there is no header. */
int pm_sigfetch_head(const char *path, unsigned *version, unsigned *sigs,
                     time_t *built, char **why);

/* Frees a report and nulls *SELF_P. Accepts NULL and *SELF_P == NULL. */
void pm_sigfetch_report_destroy(pm_sigfetch_report_t **self_p);

#endif
