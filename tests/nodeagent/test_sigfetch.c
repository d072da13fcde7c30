/* test_sigfetch.c - pm_sigfetch against a real HTTP mirror on 127.0.0.1
 * serving ClamAV's signed test database: first fetch, update by CDIFFs
 * (the access log shows no whole CVD), 429 and 403 as cool-downs, a
 * tampered CVD refused with the old version kept, an unreachable mirror. */
#include <criterion/criterion.h>

#include <clamav.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "testnet.h"
#include "pm_error.h"
#include "pm_mem.h"
#include "pm_sigfetch.h"
#include "pm_sigverify.h"
#include "testmirror.h"
#include "testdir.h"

#define S_FIXTURES TESTMIRROR_FIXTURES

static char s_dir[64], s_db[96], s_www[96], s_log[96];
static testmirror_t s_mirror = {.pid = -1};
#define s_url (s_mirror.url)

static void
s_setup(void)
{
    strcpy(s_dir, "/tmp/pm-test-sigfetch.XXXXXX");
    cr_assert_not_null(mkdtemp(s_dir));
    snprintf(s_db, sizeof s_db, "%s/db", s_dir);
    snprintf(s_www, sizeof s_www, "%s/www", s_dir);
    snprintf(s_log, sizeof s_log, "%s/access.log", s_dir);
    cr_assert_eq(mkdir(s_db, 0700), 0);
    cr_assert_eq(mkdir(s_www, 0700), 0);
}

static void
s_teardown(void)
{
    testmirror_stop(&s_mirror);
    testdir_remove(s_dir);
}

/* No Criterion .timeout: its watchdog leaks under LeakSanitizer; ctest's
 * TIMEOUT bounds the binary instead. */
TestSuite(sigfetch, .init = s_setup, .fini = s_teardown);

/* ---- Fixtures ---------------------------------------------------------- */

/* Starts tests/data/clamav/mirror.py serving s_www (testmirror.h). */
static void
s_mirror_start(void)
{
    char *portfile = pm_asprintf("%s/port", s_dir);
    testmirror_start(&s_mirror, s_www, portfile, s_log);
    free(portfile);
}

/* A loopback URL nobody listens on: a port the kernel just gave out. */
static void
s_dead_url(char *url, size_t size)
{
    int port = testnet_free_port("127.0.0.1");
    cr_assert(port > 0);
    snprintf(url, size, "http://127.0.0.1:%d", port);
}

/* "test" from MIRRORS (N; 0 with CDIFFS: what CDIFFS holds), CDIFFS the
 * CDIFF directory or NULL. */
static pm_sigfetch_report_t *
s_fetch_cdiffs(const char *cdiffs, const char *const *mirrors, size_t n)
{
    const char *dbs[] = {"test"};
    pm_sigfetch_opts_t o = {.dbdir = s_db,
                            .mirrors = mirrors,
                            .n_mirrors = n,
                            .databases = dbs,
                            .n_databases = 1,
                            .connect_timeout_s = 2,
                            .request_timeout_s = 5,
                            .cdiff_dir = cdiffs};
    pm_sigfetch_report_t *r = NULL;
    char *why = NULL;
    pm_err_t err = pm_sigfetch_run(&o, &r, &why);
    cr_assert_eq(err, PM_OK, "%s", why ? why : "");
    cr_assert_not_null(r);
    cr_assert_eq(r->n_dbs, 1);
    cr_assert_str_eq(r->dbs[0].name, "test");
    free(why);
    return r;
}

static pm_sigfetch_report_t *
s_fetch_from(const char *const *mirrors, size_t n)
{
    return s_fetch_cdiffs(NULL, mirrors, n);
}

static pm_sigfetch_report_t *
s_fetch(void)
{
    const char *mirrors[] = {s_url};
    return s_fetch_from(mirrors, 1);
}

/* DIR/NAME for one call's argument: valid until the next s_path. */
static const char *
s_path(const char *dir, const char *name)
{
    static char *last;
    free(last);
    last = pm_asprintf("%s/%s", dir, name);
    return last;
}

static bool
s_exists(const char *dir, const char *name)
{
    char *path = pm_asprintf("%s/%s", dir, name);
    bool yes = access(path, F_OK) == 0;
    free(path);
    return yes;
}

static char *
s_slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        *len = 0;
        return pm_strdup("");
    }
    char *buf = pm_malloc(1 << 16);
    *len = fread(buf, 1, (1 << 16) - 1, f);
    buf[*len] = '\0';
    fclose(f);
    return buf;
}

static int
s_log_count(const char *needle)
{
    size_t len;
    char *log = s_slurp(s_log, &len);
    int n = 0;
    for (const char *p = log; (p = strstr(p, needle)); p++)
        n++;
    free(log);
    return n;
}

/* Nothing unverified or half-done is left: the scratch directory is gone
 * and every database file there passes ClamAV's own check. */
static void
s_assert_dir_clean(void)
{
    cr_assert_not(s_exists(s_db, ".pm-sigfetch.tmp"));
    static const char *const names[] = {"test.cvd", "test.cld"};
    for (size_t i = 0; i < 2; i++) {
        char *path = pm_asprintf("%s/%s", s_db, names[i]);
        if (access(path, F_OK) == 0)
            cr_assert_eq(cl_cvdverify(path), CL_SUCCESS, "%s", path);
        free(path);
    }
}

/* ---- Tests ------------------------------------------------------------- */

Test(sigfetch, empty_dir_gets_version_1_then_stays)
{
    cr_assert_eq(cl_init(CL_INIT_DEFAULT), CL_SUCCESS);
    testmirror_copy("test-1.cvd", s_www, "test.cvd", false);
    s_mirror_start();
    pm_sigfetch_report_t *r = s_fetch();
    pm_sigfetch_db_t *db = &r->dbs[0];
    cr_assert_eq(db->err, PM_OK, "%s", db->why);
    cr_assert_null(db->why);
    cr_assert_eq(db->old_version, 0);
    cr_assert_eq(db->version, 1);
    cr_assert(db->changed);
    cr_assert_eq(db->built, 1624388302);
    cr_assert_str_eq(db->mirror, s_url);
    cr_assert_eq(r->n_cooldowns, 0);
    cr_assert(s_exists(s_db, "test.cvd"));
    s_assert_dir_clean();
    pm_sigfetch_report_destroy(&r);
    cr_assert_null(r);

    /* Again: the mirror has nothing newer; nothing is downloaded. */
    int whole = s_log_count("GET /test.cvd 200 -");
    r = s_fetch();
    cr_assert_eq(r->dbs[0].err, PM_OK, "%s", r->dbs[0].why);
    cr_assert_eq(r->dbs[0].version, 1);
    cr_assert_not(r->dbs[0].changed);
    cr_assert_eq(s_log_count("GET /test.cvd 200 -"), whole);
    pm_sigfetch_report_destroy(&r);
    pm_sigfetch_report_destroy(&r); /* safe twice */
}

Test(sigfetch, mirror_at_6_updates_by_cdiffs)
{
    cr_assert_eq(cl_init(CL_INIT_DEFAULT), CL_SUCCESS);
    testmirror_copy("test-1.cvd", s_db, "test.cvd", false);
    testmirror_publish_v6(s_www);
    s_mirror_start();
    pm_sigfetch_report_t *r = s_fetch();
    pm_sigfetch_db_t *db = &r->dbs[0];
    cr_assert_eq(db->err, PM_OK, "%s", db->why);
    cr_assert_eq(db->old_version, 1);
    cr_assert_eq(db->version, 6);
    cr_assert_eq(db->sigs, 14);
    cr_assert(db->changed);
    cr_assert_str_eq(db->mirror, s_url);
    /* CDIFFs applied into test.cld; the old CVD is gone. */
    cr_assert(s_exists(s_db, "test.cld"));
    cr_assert_not(s_exists(s_db, "test.cvd"));
    s_assert_dir_clean();
    for (int v = 2; v <= 6; v++) {
        char line[64];
        snprintf(line, sizeof line, "GET /test-%d.cdiff 200", v);
        cr_assert_eq(s_log_count(line), 1, "%s", line);
    }
    /* Only 512-byte version checks of the CVD, never the whole file. */
    cr_assert_eq(s_log_count("GET /test.cvd 200"), 0);
    cr_assert_eq(s_log_count("GET /test.cvd 206 bytes=0-511"), 2);
    pm_sigfetch_report_destroy(&r);
}

/* With a CDIFF directory: the module downloads the CDIFFs itself (once
 * each), keeps them there with the header, and libfreshclam applies them
 * from its loopback mirror: the real mirror sees one version check. */
Test(sigfetch, cdiffs_are_kept_and_applied_from_loopback)
{
    cr_assert_eq(cl_init(CL_INIT_DEFAULT), CL_SUCCESS);
    testmirror_copy("test-1.cvd", s_db, "test.cvd", false);
    testmirror_publish_v6(s_www);
    s_mirror_start();
    char *cdiffs = pm_asprintf("%s/cdiffs", s_dir);
    cr_assert_eq(mkdir(cdiffs, 0700), 0);
    const char *mirrors[] = {s_url};
    pm_sigfetch_report_t *r = s_fetch_cdiffs(cdiffs, mirrors, 1);
    pm_sigfetch_db_t *db = &r->dbs[0];
    cr_assert_eq(db->err, PM_OK, "%s", db->why);
    cr_assert_eq(db->version, 6);
    cr_assert_str_eq(db->mirror, s_url, "the real mirror is named");
    s_assert_dir_clean();
    cr_assert_eq(s_log_count("GET /test.cvd 206 bytes=0-511"), 1);
    cr_assert_eq(s_log_count("GET /test.cvd 200"), 0);
    for (int v = 2; v <= 6; v++) {
        char line[64], name[32];
        snprintf(line, sizeof line, "GET /test-%d.cdiff 200", v);
        cr_assert_eq(s_log_count(line), 1, "%s", line);
        snprintf(name, sizeof name, "test-%d.cdiff", v);
        cr_assert(s_exists(cdiffs, name), "%s kept", name);
    }
    cr_assert(s_exists(cdiffs, "test.head"));
    pm_sigfetch_report_destroy(&r);

    /* Another node at version 1 applies the same CDIFFs, no mirror */
    cr_assert_eq(unlink(s_path(s_db, "test.cld")), 0);
    testmirror_copy("test-1.cvd", s_db, "test.cvd", false);
    size_t asked = (size_t)s_log_count("GET ");
    r = s_fetch_cdiffs(cdiffs, NULL, 0);
    cr_assert_eq(r->dbs[0].err, PM_OK, "%s", r->dbs[0].why);
    cr_assert_eq(r->dbs[0].version, 6);
    cr_assert(r->dbs[0].changed);
    cr_assert_eq((size_t)s_log_count("GET "), asked, "the mirror is not asked");
    s_assert_dir_clean();
    pm_sigfetch_report_destroy(&r);

    /* ... and refuses a tampered one: version 1 stays */
    cr_assert_eq(unlink(s_path(s_db, "test.cld")), 0);
    testmirror_copy("test-1.cvd", s_db, "test.cvd", false);
    testmirror_copy("test-4.cdiff", cdiffs, "test-4.cdiff", true);
    r = s_fetch_cdiffs(cdiffs, NULL, 0);
    cr_assert_eq(r->dbs[0].err, PM_EPROTO, "%s", r->dbs[0].why);
    cr_log_info("%s", r->dbs[0].why);
    cr_assert_eq(r->dbs[0].version, 1);
    s_assert_dir_clean();
    pm_sigfetch_report_destroy(&r);

    /* No header: nothing to apply towards */
    cr_assert_eq(unlink(s_path(cdiffs, "test.head")), 0);
    r = s_fetch_cdiffs(cdiffs, NULL, 0);
    cr_assert_eq(r->dbs[0].err, PM_ENOTFOUND, "%s", r->dbs[0].why);
    pm_sigfetch_report_destroy(&r);
    free(cdiffs);
}

/* A CDIFF missing on the mirror: libfreshclam updates as before (the
 * whole CVD, since none applied). */
Test(sigfetch, a_missing_cdiff_falls_back_to_libfreshclam)
{
    cr_assert_eq(cl_init(CL_INIT_DEFAULT), CL_SUCCESS);
    testmirror_copy("test-1.cvd", s_db, "test.cvd", false);
    testmirror_publish_v6(s_www);
    cr_assert_eq(unlink(s_path(s_www, "test-2.cdiff")), 0);
    s_mirror_start();
    char *cdiffs = pm_asprintf("%s/cdiffs", s_dir);
    cr_assert_eq(mkdir(cdiffs, 0700), 0);
    const char *mirrors[] = {s_url};
    pm_sigfetch_report_t *r = s_fetch_cdiffs(cdiffs, mirrors, 1);
    cr_assert_eq(r->dbs[0].err, PM_OK, "%s", r->dbs[0].why);
    cr_assert_eq(r->dbs[0].version, 6);
    cr_assert_not(s_exists(cdiffs, "test-3.cdiff"), "stopped at the gap");
    s_assert_dir_clean();
    pm_sigfetch_report_destroy(&r);
    free(cdiffs);
}

Test(sigfetch, http_429_with_retry_after_is_a_cooldown)
{
    cr_assert_eq(cl_init(CL_INIT_DEFAULT), CL_SUCCESS);
    testmirror_copy("test-1.cvd", s_db, "test.cvd", false);
    testmirror_publish_v6(s_www);
    testmirror_status(s_www, "429 120");
    s_mirror_start();
    time_t before = time(NULL);
    pm_sigfetch_report_t *r = s_fetch();
    time_t after = time(NULL);
    pm_sigfetch_db_t *db = &r->dbs[0];
    cr_assert_eq(db->err, PM_EDENIED);
    cr_assert_eq(db->http_status, 429);
    cr_assert_not_null(strstr(db->why, "429"), "%s", db->why);
    cr_assert_eq(db->version, 1);
    cr_assert_not(db->changed);
    cr_assert_null(db->mirror);
    cr_assert_eq(r->n_cooldowns, 1);
    cr_assert_str_eq(r->cooldowns[0].mirror, s_url);
    cr_assert_eq(r->cooldowns[0].http_status, 429);
    cr_assert(r->cooldowns[0].until >= before + 120);
    cr_assert(r->cooldowns[0].until <= after + 120);
    /* One request, and libfreshclam never asked. */
    cr_assert_eq(s_log_count("\n"), 1);
    cr_assert(s_exists(s_db, "test.cvd"));
    cr_assert_not(s_exists(s_db, "test.cld"));
    s_assert_dir_clean();
    pm_sigfetch_report_destroy(&r);
}

/* The mirror answers the version checks, then rate-limits the downloads:
 * libfreshclam reports that as success with nothing updated (or as a
 * failed GET), and the module must still come back with the 429. */
static void
s_429_midway(const char *status)
{
    testmirror_copy("test-1.cvd", s_db, "test.cvd", false);
    testmirror_publish_v6(s_www);
    testmirror_status(s_www, status);
    s_mirror_start();
    time_t before = time(NULL);
    pm_sigfetch_report_t *r = s_fetch();
    pm_sigfetch_db_t *db = &r->dbs[0];
    cr_assert_eq(db->err, PM_EDENIED, "%s", db->why);
    cr_assert_eq(db->http_status, 429);
    cr_assert_eq(db->version, 1);
    cr_assert_not(db->changed);
    cr_assert_eq(r->n_cooldowns, 1);
    cr_assert(r->cooldowns[0].until >= before + 60);
    cr_assert(r->cooldowns[0].until <= time(NULL) + 60);
    cr_assert_eq(s_log_count(" 200 "), 0);
    s_assert_dir_clean();
    pm_sigfetch_report_destroy(&r);
}

Test(sigfetch, http_429_on_libfreshclams_version_check)
{
    s_429_midway("429 60 1");
}

Test(sigfetch, http_429_during_the_downloads)
{
    s_429_midway("429 60 2");
}

Test(sigfetch, http_429_without_retry_after_is_4_hours)
{
    testmirror_copy("test-1.cvd", s_db, "test.cvd", false);
    testmirror_status(s_www, "429 -");
    s_mirror_start();
    time_t before = time(NULL);
    pm_sigfetch_report_t *r = s_fetch();
    cr_assert_eq(r->n_cooldowns, 1);
    cr_assert_eq(r->cooldowns[0].http_status, 429);
    cr_assert(r->cooldowns[0].until >= before + 4 * 3600);
    cr_assert(r->cooldowns[0].until <= time(NULL) + 4 * 3600);
    pm_sigfetch_report_destroy(&r);
}

Test(sigfetch, http_403_is_24_hours)
{
    testmirror_copy("test-1.cvd", s_db, "test.cvd", false);
    testmirror_status(s_www, "403 -");
    s_mirror_start();
    time_t before = time(NULL);
    pm_sigfetch_report_t *r = s_fetch();
    pm_sigfetch_db_t *db = &r->dbs[0];
    cr_assert_eq(db->err, PM_EDENIED);
    cr_assert_eq(db->http_status, 403);
    cr_assert_eq(db->version, 1);
    cr_assert_eq(r->n_cooldowns, 1);
    cr_assert_eq(r->cooldowns[0].http_status, 403);
    cr_assert(r->cooldowns[0].until >= before + 24 * 3600);
    cr_assert(r->cooldowns[0].until <= time(NULL) + 24 * 3600);
    pm_sigfetch_report_destroy(&r);
}

Test(sigfetch, tampered_cvd_is_refused_and_old_version_kept)
{
    cr_assert_eq(cl_init(CL_INIT_DEFAULT), CL_SUCCESS);
    testmirror_copy("test-1.cvd", s_db, "test.cvd", false);
    /* Version 6, one byte changed, and no CDIFFs: the whole CVD it is. */
    testmirror_copy("test-6.cvd", s_www, "test.cvd", true);
    s_mirror_start();
    pm_sigfetch_report_t *r = s_fetch();
    pm_sigfetch_db_t *db = &r->dbs[0];
    cr_assert_eq(db->err, PM_EPROTO, "%s", pm_strerror(db->err));
    cr_assert_not_null(strstr(db->why, "signature"), "%s", db->why);
    cr_assert_not_null(strstr(db->why, s_url), "%s", db->why);
    cr_assert_eq(db->version, 1);
    cr_assert_not(db->changed);
    cr_assert_eq(r->n_cooldowns, 0);
    cr_assert_eq(s_log_count("GET /test.cvd 200 -"), 1);
    /* The old file, byte for byte, and nothing else. */
    size_t a, b;
    char *old = s_slurp(S_FIXTURES "/test-1.cvd", &a);
    char *path = pm_asprintf("%s/test.cvd", s_db);
    char *now = s_slurp(path, &b);
    cr_assert(a == b && memcmp(old, now, a) == 0);
    cr_assert_not(s_exists(s_db, "test.cld"));
    s_assert_dir_clean();
    free(old);
    free(now);
    free(path);
    pm_sigfetch_report_destroy(&r);
}

Test(sigfetch, unreachable_mirror_is_a_clear_error)
{
    testmirror_copy("test-1.cvd", s_db, "test.cvd", false);
    char dead[64];
    s_dead_url(dead, sizeof dead);
    const char *mirrors[] = {dead};
    pm_sigfetch_report_t *r = s_fetch_from(mirrors, 1);
    pm_sigfetch_db_t *db = &r->dbs[0];
    cr_assert_eq(db->err, PM_ETIMEDOUT);
    cr_assert_eq(db->http_status, 0);
    cr_assert_not_null(strstr(db->why, dead), "%s", db->why);
    cr_assert_not_null(strstr(db->why, "onnect"), "%s", db->why);
    cr_assert_null(db->mirror);
    cr_assert_eq(db->version, 1);
    cr_assert_eq(r->n_cooldowns, 0);
    s_assert_dir_clean();
    pm_sigfetch_report_destroy(&r);
}

Test(sigfetch, next_mirror_when_the_first_is_down)
{
    testmirror_copy("test-1.cvd", s_www, "test.cvd", false);
    s_mirror_start();
    char dead[64], slash[80];
    s_dead_url(dead, sizeof dead);
    snprintf(slash, sizeof slash, "%s/", s_url);
    const char *mirrors[] = {dead, slash};
    pm_sigfetch_report_t *r = s_fetch_from(mirrors, 2);
    cr_assert_eq(r->dbs[0].err, PM_OK, "%s", r->dbs[0].why);
    cr_assert_eq(r->dbs[0].version, 1);
    cr_assert_str_eq(r->dbs[0].mirror, s_url);
    pm_sigfetch_report_destroy(&r);
}

Test(sigfetch, bad_arguments_are_refused)
{
    const char *mirrors[] = {"http://127.0.0.1:1"};
    const char *bad_db[] = {"../etc"};
    pm_sigfetch_opts_t o = {.dbdir = s_db,
                            .mirrors = mirrors,
                            .n_mirrors = 1,
                            .databases = bad_db,
                            .n_databases = 1};
    pm_sigfetch_report_t *r = (void *)0x1;
    char *why = NULL;
    cr_assert_eq(pm_sigfetch_run(&o, &r, &why), PM_EINVAL);
    cr_assert_eq(r, (void *)0x1);
    cr_assert_not_null(strstr(why, "../etc"));
    const char *ftp[] = {"ftp://127.0.0.1/"}, *good[] = {"test"};
    o.mirrors = ftp;
    o.databases = good;
    cr_assert_eq(pm_sigfetch_run(&o, &r, &why), PM_EINVAL);
    free(why);
}

/* ---- In a child process (pm_sigfetch_spawn, privmta-sigfetch) ---------- */

#define S_HELPER PM_BUILD_DIR "/nodeagent/privmta-sigfetch"

static pm_err_t
s_spawn(const char *helper, const char *const *mirrors, const char *db,
        pm_sigfetch_report_t **r, char **why)
{
    const char *dbs[] = {db};
    pm_sigfetch_opts_t o = {.dbdir = s_db,
                            .mirrors = mirrors,
                            .n_mirrors = 1,
                            .databases = dbs,
                            .n_databases = 1,
                            .connect_timeout_s = 2,
                            .request_timeout_s = 5};
    return pm_sigfetch_spawn(helper, &o, r, why);
}

Test(sigfetch, the_helper_fetches_and_reports_the_same)
{
    testmirror_copy("test-1.cvd", s_www, "test.cvd", false);
    s_mirror_start();
    const char *mirrors[] = {s_url};
    pm_sigfetch_report_t *r = NULL;
    char *why = NULL;
    cr_assert_eq(s_spawn(S_HELPER, mirrors, "test", &r, &why), PM_OK, "%s",
                 why ? why : "");
    cr_assert_eq(r->n_dbs, 1);
    cr_assert_str_eq(r->dbs[0].name, "test");
    cr_assert_eq(r->dbs[0].err, PM_OK, "%s", r->dbs[0].why);
    cr_assert_eq(r->dbs[0].version, 1);
    cr_assert(r->dbs[0].changed);
    cr_assert_eq(r->dbs[0].built, 1624388302);
    cr_assert_str_eq(r->dbs[0].mirror, s_url);
    cr_assert(s_exists(s_db, "test.cvd"));
    s_assert_dir_clean();
    pm_sigfetch_report_destroy(&r);

    /* a 429 comes back as a cool-down, across the process boundary */
    testmirror_status(s_www, "429 120");
    time_t before = time(NULL);
    cr_assert_eq(s_spawn(S_HELPER, mirrors, "test", &r, &why), PM_OK);
    cr_assert_eq(r->dbs[0].err, PM_EDENIED);
    cr_assert_not_null(r->dbs[0].why);
    cr_assert_eq(r->n_cooldowns, 1);
    cr_assert_eq(r->cooldowns[0].http_status, 429);
    cr_assert_geq(r->cooldowns[0].until, before + 120);
    pm_sigfetch_report_destroy(&r);
    free(why);
}

Test(sigfetch, the_helpers_own_errors_come_back_with_their_reason)
{
    const char *mirrors[] = {"http://127.0.0.1:1"};
    pm_sigfetch_report_t *r = NULL;
    char *why = NULL;
    cr_assert_eq(s_spawn(S_HELPER, mirrors, "../etc", &r, &why), PM_EINVAL);
    cr_assert_null(r);
    cr_assert_not_null(strstr(why, "../etc"), "%s", why);
    PM_FREE(&why);
    cr_assert_eq(
        s_spawn("/nonexistent/privmta-sigfetch", mirrors, "test", &r, &why),
        PM_EINTERNAL);
    cr_assert_null(r);
    cr_assert_not_null(strstr(why, "/nonexistent/privmta-sigfetch"), "%s", why);
    free(why);
}

static bool
s_always(void *arg)
{
    (void)arg;
    return true;
}

Test(sigfetch, cancelling_ends_the_helper)
{
    /* a mirror that never answers: only the cancel can end it early */
    testmirror_copy("test-1.cvd", s_www, "test.cvd", false);
    testmirror_status(s_www, "stall 300");
    s_mirror_start();
    const char *mirrors[] = {s_url}, *dbs[] = {"test"};
    pm_sigfetch_opts_t o = {.dbdir = s_db,
                            .mirrors = mirrors,
                            .n_mirrors = 1,
                            .databases = dbs,
                            .n_databases = 1,
                            .connect_timeout_s = 60,
                            .request_timeout_s = 600,
                            .cancelled = s_always};
    pm_sigfetch_report_t *r = NULL;
    char *why = NULL;
    time_t start = time(NULL);
    cr_assert_eq(pm_sigfetch_spawn(S_HELPER, &o, &r, &why), PM_ETIMEDOUT);
    cr_assert_lt(time(NULL) - start, 30); /* not the 600 s of the request */
    cr_assert_null(r);
    cr_assert_not_null(strstr(why, "stopped"), "%s", why);
    free(why);
}

Test(sigfetch, a_report_passes_the_gate_or_is_refused)
{
    pm_sigfetch_db_t db = {.name = "test",
                           .err = PM_EDENIED,
                           .why = "429",
                           .version = 3,
                           .mirror = "http://m"};
    pm_sigfetch_cooldown_t cool = {
        .mirror = "http://m", .http_status = 429, .until = 99};
    pm_sigfetch_report_t in = {
        .dbs = &db, .n_dbs = 1, .cooldowns = &cool, .n_cooldowns = 1};
    size_t len = 0;
    uint8_t *buf = pm_sigfetch_report_pack(&in, &len);
    const char *asked[] = {"test"}, *other[] = {"daily"};
    pm_sigfetch_opts_t o = {.databases = asked, .n_databases = 1};
    pm_sigfetch_report_t *r = NULL;
    char *why = NULL;
    cr_assert_eq(pm_sigfetch_report_unpack(buf, len, &o, &r, &why), PM_OK);
    cr_assert_eq(r->dbs[0].err, PM_EDENIED);
    cr_assert_str_eq(r->dbs[0].why, "429");
    cr_assert_eq(r->dbs[0].version, 3);
    cr_assert_str_eq(r->cooldowns[0].mirror, "http://m");
    cr_assert_eq(r->cooldowns[0].until, 99);
    pm_sigfetch_report_destroy(&r);
    /* about another database: refused */
    o.databases = other;
    cr_assert_eq(pm_sigfetch_report_unpack(buf, len, &o, &r, &why), PM_EPROTO);
    cr_assert_null(r);
    free(buf);
    PM_FREE(&why);
    /* a name that is a path, or an error code that is none: the wire gate */
    db.name = "../x";
    buf = pm_sigfetch_report_pack(&in, &len);
    o.databases = (const char *[]){"../x"};
    cr_assert_eq(pm_sigfetch_report_unpack(buf, len, &o, &r, &why), PM_EPROTO);
    free(buf);
    PM_FREE(&why);
    db.name = "test";
    db.err = (pm_err_t)77;
    buf = pm_sigfetch_report_pack(&in, &len);
    o.databases = asked;
    cr_assert_eq(pm_sigfetch_report_unpack(buf, len, &o, &r, &why), PM_EPROTO);
    cr_assert_not_null(strstr(why, "err"), "%s", why);
    free(buf);
    free(why);
}

/* The seccomp mode of process PID (2: a filter), -1 when unknown. */
static int
s_seccomp(pid_t pid)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    int mode = -1;
    while (f && fgets(line, sizeof line, f))
        sscanf(line, "Seccomp: %d", &mode);
    if (f)
        fclose(f);
    return mode;
}

Test(sigfetch, the_verifier_answers_and_survives_its_helper)
{
    testmirror_copy("test-1.cvd", s_db, "good.cvd", false);
    testmirror_copy("test-1.cvd", s_db, "bad.cvd", true);
    char *good = pm_asprintf("%s/good.cvd", s_db);
    char *bad = pm_asprintf("%s/bad.cvd", s_db);
    pm_sigverify_t *v = pm_sigverify_new(S_HELPER, NULL);
    unsigned version = 0, sigs = 0;
    time_t built = 0;
    char *why = NULL;
    /* one helper answers one good file after another; one that refused
     * a file (it may have been taken over by it) answers nothing more */
    pid_t before = 0;
    for (int i = 0; i < 3; i++) {
        for (int j = 0; j < 2; j++) {
            version = 0;
            cr_assert_eq(pm_sigverify_file(v, good, "test", 10000, &version,
                                           &sigs, &built, &why),
                         PM_OK, "%s", why ? why : "");
            cr_assert_eq(version, 1);
            cr_assert_eq(built, 1624388302);
            pid_t pid = pm_sigverify_pid(v);
            cr_assert_gt(pid, 0);
            cr_assert_eq(s_seccomp(pid), 2, "the verifier is not sandboxed");
            if (j)
                cr_assert_eq(pid, before, "the same helper answers again");
            else
                cr_assert_neq(pid, before, "a new helper after a refusal");
            before = pid;
        }
        cr_assert_eq(pm_sigverify_file(v, bad, "test", 10000, &version, &sigs,
                                       &built, &why),
                     PM_EPROTO);
        cr_assert_not_null(strstr(why, "signature check"), "%s", why);
        cr_assert_eq(pm_sigverify_pid(v), 0, "the refusing helper still runs");
        PM_FREE(&why);
    }
    /* a request the helper's gate refuses ends it: the helper's fault,
     * not the file's, and the next request starts a new one */
    cr_assert_eq(pm_sigverify_file(v, "relative.cvd", "test", 10000, NULL, NULL,
                                   NULL, &why),
                 PM_EINTERNAL);
    PM_FREE(&why);
    cr_assert_eq(
        pm_sigverify_file(v, good, "test", 10000, &version, NULL, NULL, &why),
        PM_OK, "%s", why ? why : "");
    pm_sigverify_destroy(&v);
    cr_assert_null(v);
    /* a helper that cannot start answers why, as its own fault (the
     * file is not blamed), and the next request tries again */
    v = pm_sigverify_new(S_HELPER, "pm-no-such-user");
    for (int i = 0; i < 2; i++) {
        cr_assert_eq(
            pm_sigverify_file(v, good, "test", 10000, NULL, NULL, NULL, &why),
            PM_EINTERNAL);
        cr_assert_not_null(strstr(why, "the verifier cannot start"), "%s", why);
        cr_assert_not_null(strstr(why, "pm-no-such-user"), "%s", why);
        cr_assert_eq(pm_sigverify_pid(v), 0, "the failed helper still runs");
        PM_FREE(&why);
    }
    pm_sigverify_destroy(&v);
    /* no helper at all */
    v = pm_sigverify_new("/nonexistent/privmta-sigfetch", NULL);
    cr_assert_eq(
        pm_sigverify_file(v, good, "test", 10000, NULL, NULL, NULL, &why),
        PM_EINTERNAL);
    cr_assert_not_null(why);
    pm_sigverify_destroy(&v);
    free(why);
    free(good);
    free(bad);
}
