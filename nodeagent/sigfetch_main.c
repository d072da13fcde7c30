/* privmta-sigfetch - one libfreshclam run for the agent (pm_sigfetch_spawn).
 *
 * privmta-sigfetch --dbdir DIR --mirror URL... --database NAME...
 *                  [--cdiffs DIR] [--connect-timeout S]
 *                  [--request-timeout S] [--user U]
 * privmta-sigfetch --dbdir DIR --cdiffs DIR --database NAME... [--user U]
 * privmta-sigfetch --verify-server [--user U]
 *
 * Started by root, it becomes user U (pm_priv_drop) before it does
 * anything else: what mirrors and peers send is parsed by libcurl,
 * libfreshclam and libclamav, never as root. The agent gives it a
 * directory of its own to fetch into (pm_sigstage.h) and copies back only
 * what passes ClamAV's check.
 *
 * Brings each database in DIR to the newest version a mirror offers
 * (pm_sigfetch_run: verified with ClamAV's own check before anything is
 * renamed into DIR) and writes what happened to stdout as a packed
 * FetchReport; exit 0. Otherwise exits with the pm_err_t code and says why
 * on the last line of stderr. SIGTERM ends it at once: nothing unverified
 * is ever in DIR (the scratch directory is cleared by the next run).
 *
 * With --verify-server, it gives up what it never needs (pm_sandbox:
 * starting processes, signalling others, the network), then answers
 * requests on stdin, one at a time, until
 * it ends (pm_sigverify.h has the protocol): each asks for ClamAV's own
 * check of a file (pm_sigfetch_verify), and the answer is a one-database
 * report with the verdict. The agent keeps one running for every file a
 * peer sends: libclamav parses hostile bytes here, not in the root agent.
 * A request that does not pass pm_wire's gate ends it (exit PM_EPROTO). */
#include "pm_error.h"
#include "pm_log.h"
#include "pm_mem.h"
#include "pm_priv.h"
#include "pm_sandbox.h"
#include "pm_sigfetch.h"
#include "pm_sigverify.h"
#include "pm_wire.h"

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

/* The verdict on REQ's PATH (database NAME), or only what its header says,
 * as a packed one-database report (caller frees). */
static uint8_t *
s_verdict(const Pm__VerifyRequest *req, size_t *len)
{
    pm_sigfetch_db_t db = {.name = req->name};
    db.err = req->header_only
                 ? pm_sigfetch_head(req->path, &db.version, &db.sigs, &db.built,
                                    &db.why)
                 : pm_sigfetch_verify(req->path, req->name, &db.version,
                                      &db.sigs, &db.built, &db.why);
    pm_sigfetch_report_t r = {.dbs = &db, .n_dbs = 1};
    uint8_t *buf = pm_sigfetch_report_pack(&r, len);
    free(db.why);
    return buf;
}

/* One request from stdin through pm_wire's gate (NULL when there is none or
 * it does not pass: *ERR and *WHY say which). */
static Pm__VerifyRequest *
s_next_request(pm_err_t *err, char **why)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    Pm__VerifyRequest *req = NULL;
    *err =
        pm_sigverify_recv(STDIN_FILENO, PM_WIRE_FETCH_MAX, -1, &buf, &len, why);
    if (*err == PM_OK)
        *err = pm_wire_unpack_verify_request(buf, len, &req, why);
    free(buf);
    return req;
}

/* The server could not give up what it never needs (ERR, REASON): the first
 * request is answered with that reason as the helper's own fault, its file
 * left unread, so the agent's log says why no file can be checked (stderr
 * is /dev/null: a helper that parses hostile bytes never writes there). */
static int
s_serve_none(pm_err_t err, const char *reason)
{
    pm_err_t got = PM_OK;
    char *why = NULL;
    Pm__VerifyRequest *req = s_next_request(&got, &why);
    if (req) {
        char *text = pm_asprintf("the verifier cannot start: %s", reason);
        pm_sigfetch_db_t db = {
            .name = req->name, .err = PM_EINTERNAL, .why = text};
        pm_sigfetch_report_t r = {.dbs = &db, .n_dbs = 1};
        size_t len = 0;
        uint8_t *out = pm_sigfetch_report_pack(&r, &len);
        (void)pm_sigverify_send(STDOUT_FILENO, out, len, &why);
        free(out);
        free(text);
        pm__verify_request__free_unpacked(req, NULL);
    }
    free(why);
    return s_fail(err, reason);
}

/* Answers verification requests on stdin until it ends. */
static int
s_serve(void)
{
    for (;;) {
        pm_err_t err = PM_OK;
        char *why = NULL;
        Pm__VerifyRequest *req = s_next_request(&err, &why);
        if (req) {
            size_t len = 0;
            uint8_t *out = s_verdict(req, &len);
            err = pm_sigverify_send(STDOUT_FILENO, out, len, &why);
            free(out);
            pm__verify_request__free_unpacked(req, NULL);
        }
        if (err != PM_OK) { /* the end of stdin is the normal way out */
            int rc = err == PM_EIO ? 0 : s_fail(err, why ? why : "?");
            free(why);
            return rc;
        }
    }
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
        {"verify-server", no_argument, NULL, 'v'},
        {"user", required_argument, NULL, 'u'},
        {"cdiffs", required_argument, NULL, 'f'},
        {NULL, 0, NULL, 0}};
    pm_log_init("privmta-sigfetch", false, PM_LOG_INFO);
    pm_sigfetch_opts_t o = {0};
    bool serve = false;
    const char *user = NULL;
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
            serve = true;
        else if (c == 'u')
            user = optarg;
        else if (c == 'f')
            o.cdiff_dir = optarg;
        else if (c == 'c' && s_seconds(optarg, &o.connect_timeout_s))
            continue;
        else if (c == 'r' && s_seconds(optarg, &o.request_timeout_s))
            continue;
        else
            rc = s_fail(PM_EINVAL, "usage: privmta-sigfetch --dbdir DIR "
                                   "--mirror URL... --database NAME... "
                                   "[--cdiffs DIR] [--connect-timeout S] "
                                   "[--request-timeout S] (seconds up to "
                                   "3600) [--user U], or --dbdir DIR "
                                   "--cdiffs DIR --database NAME... [--user "
                                   "U], or --verify-server [--user U]");
    }
    if (rc < 0 && optind < argc)
        rc = s_fail(PM_EINVAL, "unexpected argument; see --dbdir, --mirror, "
                               "--database");
    char *why = NULL;
    pm_err_t err = PM_OK;
    if (rc < 0 && user && pm_priv_drop(user, &why) != PM_OK)
        err = PM_EDENIED;
    if (rc < 0 && !err && serve && pm_sandbox_no_spawn(0, &why) != PM_OK)
        err = PM_EINTERNAL;
    if (rc < 0 && err)
        rc = serve ? s_serve_none(err, why) : s_fail(err, why);
    free(why);
    if (rc < 0 && serve)
        rc = s_serve();
    if (rc < 0 && !o.dbdir)
        rc = s_fail(PM_EINVAL, "--dbdir DIR is required");
    if (rc < 0)
        rc = s_run(&o);
    free(mirrors);
    free(dbs);
    return rc;
}
