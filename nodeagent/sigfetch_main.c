/* privmta-sigfetch - one libfreshclam run for the agent (pm_sigfetch_spawn).
 *
 * privmta-sigfetch --dbdir DIR --mirror URL... --database NAME...
 *                  [--connect-timeout S] [--request-timeout S]
 * privmta-sigfetch --verify PATH --database NAME
 *
 * Brings each database in DIR to the newest version a mirror offers
 * (pm_sigfetch_run: verified with ClamAV's own check before anything is
 * renamed into DIR) and writes what happened to stdout as a packed
 * FetchReport; exit 0. Otherwise exits with the pm_err_t code and says why
 * on the last line of stderr. SIGTERM ends it at once: nothing unverified
 * is ever in DIR (the scratch directory is cleared by the next run).
 *
 * With --verify, checks the file PATH (database NAME, a .cvd or .cld) with
 * ClamAV's own check (pm_sigfetch_verify) and reports the result the same
 * way (one database: its error and reason, or version, signatures and
 * build time); exit 0 whatever the verdict. The agent runs this for every
 * file a peer sent: libclamav parses hostile bytes here, not in the root
 * agent. */
#include "pm_error.h"
#include "pm_log.h"
#include "pm_mem.h"
#include "pm_sigfetch.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int
s_fail(int err, const char *why)
{
    fprintf(stderr, "privmta-sigfetch: %s\n", why);
    return err;
}

static bool
s_seconds(const char *text, unsigned *out)
{
    char *end = NULL;
    errno = 0;
    unsigned long v = strtoul(text, &end, 10);
    if (errno || !*text || *end || v > 3600)
        return false;
    *out = (unsigned)v;
    return true;
}

/* Writes all of BUF to stdout. */
static bool
s_write_all(const uint8_t *buf, size_t len)
{
    while (len) {
        ssize_t w = write(STDOUT_FILENO, buf, len);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return false;
        buf += w;
        len -= (size_t)w;
    }
    return true;
}

/* The verdict on PATH as a one-database report. */
static int
s_verify(const char *path, const char *name)
{
    pm_sigfetch_db_t db = {.name = (char *)name};
    db.err =
        pm_sigfetch_verify(path, &db.version, &db.sigs, &db.built, &db.why);
    pm_sigfetch_report_t r = {.dbs = &db, .n_dbs = 1};
    size_t len = 0;
    uint8_t *buf = pm_sigfetch_report_pack(&r, &len);
    bool ok = s_write_all(buf, len);
    free(buf);
    free(db.why);
    return ok ? 0 : s_fail(PM_EIO, "cannot write the report to stdout");
}

static int
s_run(pm_sigfetch_opts_t *o)
{
    pm_sigfetch_report_t *r = NULL;
    char *why = NULL;
    pm_err_t err = pm_sigfetch_run(o, &r, &why);
    if (err != PM_OK) {
        int rc = s_fail(err, why ? why : pm_strerror(err));
        free(why);
        return rc;
    }
    size_t len = 0;
    uint8_t *buf = pm_sigfetch_report_pack(r, &len);
    bool ok = s_write_all(buf, len);
    free(buf);
    pm_sigfetch_report_destroy(&r);
    return ok ? 0 : s_fail(PM_EIO, "cannot write the report to stdout");
}

int
main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"dbdir", required_argument, NULL, 'd'},
        {"mirror", required_argument, NULL, 'm'},
        {"database", required_argument, NULL, 'b'},
        {"connect-timeout", required_argument, NULL, 'c'},
        {"request-timeout", required_argument, NULL, 'r'},
        {"verify", required_argument, NULL, 'v'},
        {NULL, 0, NULL, 0}};
    pm_log_init("privmta-sigfetch", false, PM_LOG_INFO);
    pm_sigfetch_opts_t o = {0};
    const char *verify = NULL;
    const char **mirrors = pm_calloc((size_t)argc + 1, sizeof *mirrors);
    const char **dbs = pm_calloc((size_t)argc + 1, sizeof *dbs);
    o.mirrors = mirrors;
    o.databases = dbs;
    int c, rc = -1;
    while (rc < 0 && (c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (c == 'd')
            o.dbdir = optarg;
        else if (c == 'm')
            mirrors[o.n_mirrors++] = optarg;
        else if (c == 'b')
            dbs[o.n_databases++] = optarg;
        else if (c == 'v')
            verify = optarg;
        else if (c == 'c' && s_seconds(optarg, &o.connect_timeout_s))
            continue;
        else if (c == 'r' && s_seconds(optarg, &o.request_timeout_s))
            continue;
        else
            rc = s_fail(PM_EINVAL, "usage: privmta-sigfetch --dbdir DIR "
                                   "--mirror URL... --database NAME... "
                                   "[--connect-timeout S] [--request-timeout "
                                   "S] (seconds up to 3600), or --verify "
                                   "PATH --database NAME");
    }
    if (rc < 0 && optind < argc)
        rc = s_fail(PM_EINVAL, "unexpected argument; see --dbdir, --mirror, "
                               "--database");
    if (rc < 0 && verify)
        rc = o.n_databases == 1
                 ? s_verify(verify, dbs[0])
                 : s_fail(PM_EINVAL, "--verify PATH takes one --database");
    if (rc < 0 && !o.dbdir)
        rc = s_fail(PM_EINVAL, "--dbdir DIR is required");
    if (rc < 0)
        rc = s_run(&o);
    free(mirrors);
    free(dbs);
    return rc;
}
