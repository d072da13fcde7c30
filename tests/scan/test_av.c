/* test_av.c - pm_av: custom signatures in MIME mail, refused signatures,
 * engine swaps under concurrent scans, encrypted archives. */
#include "pm_av.h"
#include "pm_error.h"

#include <criterion/criterion.h>
#include <glib.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The markers never appear in clear in the test messages: only
 * libclamav's mail parser, decoding base64, can see them. */
#define MARKER_A "privmta-test-marker"
#define MARKER_B "privmta-other-marker"

static char *
s_hex(const char *s)
{
    size_t n = strlen(s);
    char *out = malloc(2 * n + 1);
    for (size_t i = 0; i < n; i++)
        sprintf(out + 2 * i, "%02x", (unsigned char)s[i]);
    return out;
}

/* An .ndb line "NAME:0:*:HEX(MARKER)". */
static char *
s_ndb(const char *name, const char *marker)
{
    char *hex = s_hex(marker);
    char *line = g_strdup_printf("%s:0:*:%s\n", name, hex);
    free(hex);
    return line;
}

/* A MIME message with a base64 attachment holding BYTES. */
static char *
s_message(const void *bytes, size_t len, const char *filename)
{
    gchar *b64 = g_base64_encode(bytes, len);
    GString *wrapped = g_string_new("");
    for (size_t i = 0, n = strlen(b64); i < n; i += 76) {
        g_string_append_len(wrapped, b64 + i, n - i < 76 ? n - i : 76);
        g_string_append(wrapped, "\r\n");
    }
    char *msg = g_strdup_printf(
        "From: alice@example.test\r\n"
        "To: bob@example.test\r\n"
        "Subject: av test\r\n"
        "Message-ID: <av@example.test>\r\n"
        "MIME-Version: 1.0\r\n"
        "Content-Type: multipart/mixed; boundary=\"zz\"\r\n"
        "\r\n"
        "--zz\r\n"
        "Content-Type: text/plain\r\n"
        "\r\n"
        "See attachment.\r\n"
        "--zz\r\n"
        "Content-Type: application/octet-stream; name=\"%s\"\r\n"
        "Content-Disposition: attachment; filename=\"%s\"\r\n"
        "Content-Transfer-Encoding: base64\r\n"
        "\r\n"
        "%s"
        "--zz--\r\n",
        filename, filename, wrapped->str);
    g_string_free(wrapped, TRUE);
    g_free(b64);
    return msg;
}

static char *
s_marker_message(const char *marker)
{
    char *payload = g_strdup_printf("some data %s more data\n", marker);
    char *msg = s_message(payload, strlen(payload), "data.bin");
    g_free(payload);
    cr_assert_null(strstr(msg, marker));
    return msg;
}

/* Scans MSG and returns the verdict; *name gets the virus name or "". */
static int
s_scan(pm_av_t *av, const char *msg, char *name, size_t size)
{
    char *vn = NULL, *why = NULL;
    int rc = pm_av_scan(av, msg, strlen(msg), &vn, &why);
    if (name)
        snprintf(name, size, "%s", vn ? vn : "");
    cr_assert_eq(rc == -1, why != NULL, "why: %s", why ? why : "(none)");
    cr_assert_eq(rc == 1, vn != NULL);
    free(vn);
    free(why);
    return rc;
}

static int
s_load_one(pm_av_t *av, const char *file, const char *content, bool enc,
           char **why)
{
    pm_av_sig_t sig = {file, content, strlen(content)};
    return pm_av_load(av, "/nonexistent/privmta-sigdir", &sig, 1, enc, why);
}

Test(av, marker_in_base64_attachment)
{
    pm_av_t *av = pm_av_new();
    cr_assert_not_null(av);
    char *ndb = s_ndb("PrivmtaTest.Marker", MARKER_A);
    char *why = NULL;
    cr_assert_eq(s_load_one(av, "privmta.ndb", ndb, false, &why), PM_OK, "%s",
                 why ? why : "");
    cr_assert_null(why);

    char *bad = s_marker_message(MARKER_A);
    char name[128];
    cr_assert_eq(s_scan(av, bad, name, sizeof name), 1);
    cr_assert_str_eq(name, "PrivmtaTest.Marker.UNOFFICIAL");

    const char *clean = "From: a@example.test\r\nSubject: hi\r\n\r\nHello\r\n";
    cr_assert_eq(s_scan(av, clean, NULL, 0), 0);
    char *other = s_marker_message(MARKER_B);
    cr_assert_eq(s_scan(av, other, NULL, 0), 0);
    cr_assert_eq(pm_av_scan(av, "", 0, NULL, NULL), 0);

    pm_av_status_t st = {0};
    cr_assert_eq(pm_av_status(av, &st), PM_OK);
    cr_assert(st.loaded);
    cr_assert_eq(st.sigs, 1);
    cr_assert_eq(st.loads, 1);
    cr_assert_eq(st.failures, 0);
    cr_assert_null(st.last_error);
    cr_assert(st.built > 0);
    cr_assert_eq(st.db_version, 0);
    pm_av_status_clear(&st);

    g_free(bad);
    g_free(other);
    g_free(ndb);
    pm_av_destroy(&av);
    pm_av_destroy(&av);
    cr_assert_null(av);
}

/* The engine writes what it extracts (and the custom signature files)
 * where pm_av_set_tmpdir says: a scan works with the directory there and
 * fails once it is gone, and a load fails without it. */
Test(av, temporary_files_go_to_the_set_directory)
{
    char dir[] = "/tmp/pm-av-tmp.XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    pm_av_t *av = pm_av_new();
    pm_av_set_tmpdir(av, dir);
    char *ndb = s_ndb("PrivmtaTest.Marker", MARKER_A);
    char *why = NULL;
    cr_assert_eq(s_load_one(av, "privmta.ndb", ndb, false, &why), PM_OK, "%s",
                 why ? why : "");
    char *bad = s_marker_message(MARKER_A);
    char name[128];
    cr_assert_eq(s_scan(av, bad, name, sizeof name), 1);
    cr_assert_str_eq(name, "PrivmtaTest.Marker.UNOFFICIAL");

    cr_assert_eq(rmdir(dir), 0, "libclamav left files behind in %s", dir);
    char *vn = NULL;
    cr_assert_eq(pm_av_scan(av, bad, strlen(bad), &vn, &why), PM_AV_ERROR,
                 "a scan with its temporary directory gone must fail");
    cr_assert_null(vn);
    cr_assert_not_null(strstr(why, "temporary directory"), "%s", why);
    free(why);
    why = NULL;
    cr_assert_eq(s_load_one(av, "privmta.ndb", ndb, false, &why), PM_EIO);
    cr_assert_not_null(strstr(why, "temporary directory"), "%s", why);
    free(why);

    pm_av_set_tmpdir(av, NULL); /* libclamav's default again */
    cr_assert_eq(s_load_one(av, "privmta.ndb", ndb, false, NULL), PM_OK);
    cr_assert_eq(s_scan(av, bad, NULL, 0), 1);
    g_free(bad);
    g_free(ndb);
    pm_av_destroy(&av);
}

/* libclamav says "clean" when it cannot write the parts it extracts; a
 * full temporary file system must not let a marked attachment through.
 * Needs root (a 16 KiB tmpfs). */
Test(av, a_full_temporary_directory_is_not_clean)
{
    char dir[] = "/tmp/pm-av-full.XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    char *cmd = g_strdup_printf("mount -t tmpfs -o size=16k tmpfs %s "
                                "2>/dev/null",
                                dir);
    int mounted = system(cmd) == 0;
    g_free(cmd);
    if (!mounted) {
        rmdir(dir);
        cr_skip_test("cannot mount a tmpfs (not root?)");
    }
    pm_av_t *av = pm_av_new();
    pm_av_set_tmpdir(av, dir);
    char *ndb = s_ndb("PrivmtaTest.Marker", MARKER_A);
    pm_av_sig_t sig = {"privmta.ndb", ndb, strlen(ndb)};
    cr_assert_eq(pm_av_load(av, NULL, &sig, 1, false, NULL), PM_OK);
    /* 64 KiB of filler before the marker: more than the file system holds */
    size_t fill = 64 * 1024;
    char *payload = g_malloc(fill + 64);
    memset(payload, 'A', fill);
    int n = snprintf(payload + fill, 64, " %s\n", MARKER_A);
    char *msg = s_message(payload, fill + (size_t)n, "data.bin");
    char *vn = NULL, *why = NULL;
    int rc = pm_av_scan(av, msg, strlen(msg), &vn, &why);
    cr_expect_neq(rc, PM_AV_CLEAN,
                  "a part libclamav could not write was "
                  "passed as clean");
    cr_expect(rc == PM_AV_ERROR || rc == PM_AV_INFECTED, "rc %d", rc);
    free(vn);
    free(why);
    cmd = g_strdup_printf("umount %s", dir);
    cr_expect_eq(system(cmd), 0);
    g_free(cmd);
    rmdir(dir);
    g_free(msg);
    g_free(payload);
    g_free(ndb);
    pm_av_destroy(&av);
}

Test(av, no_engine_is_an_error)
{
    pm_av_t *av = pm_av_new();
    char *why = NULL;
    cr_assert_eq(pm_av_scan(av, "x", 1, NULL, &why), -1);
    cr_assert_not_null(why);
    free(why);
    pm_av_status_t st = {0};
    pm_av_status(av, &st);
    cr_assert(!st.loaded);
    pm_av_status_clear(&st);
    pm_av_destroy(&av);
}

Test(av, signature_directory)
{
    char dir[] = "/tmp/pm_av_test.XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    char *path = g_strdup_printf("%s/local.ndb", dir);
    char *ndb = s_ndb("PrivmtaTest.Dir", MARKER_B);
    cr_assert(g_file_set_contents(path, ndb, -1, NULL));

    pm_av_t *av = pm_av_new();
    cr_assert_eq(pm_av_load(av, dir, NULL, 0, false, NULL), PM_OK);
    char *msg = s_marker_message(MARKER_B);
    char name[128];
    cr_assert_eq(s_scan(av, msg, name, sizeof name), 1);
    cr_assert_str_eq(name, "PrivmtaTest.Dir.UNOFFICIAL");

    /* An empty directory, then no directory: an engine with no signature
     * still loads (custom signatures may come later). */
    unlink(path);
    cr_assert_eq(pm_av_load(av, dir, NULL, 0, false, NULL), PM_OK);
    cr_assert_eq(s_scan(av, msg, NULL, 0), 0);
    rmdir(dir);
    cr_assert_eq(pm_av_load(av, dir, NULL, 0, false, NULL), PM_OK);
    cr_assert_eq(pm_av_load(av, NULL, NULL, 0, false, NULL), PM_OK);

    g_free(msg);
    g_free(ndb);
    g_free(path);
    pm_av_destroy(&av);
}

/* The status names the signed databases an engine was built from, as
 * their headers say: what the agent reports as "loaded". ClamAV's own
 * signed test database, version 6. */
Test(av, signed_database_versions)
{
    char dir[] = "/tmp/pm_av_test.XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    char *src = NULL, *path = g_strdup_printf("%s/test.cvd", dir);
    gsize len = 0;
    cr_assert(g_file_get_contents(PM_SOURCE_DIR "/tests/data/clamav/test-6.cvd",
                                  &src, &len, NULL));
    cr_assert(g_file_set_contents(path, src, (gssize)len, NULL));
    char *dat = g_strdup_printf("%s/freshclam.dat", dir);
    cr_assert(g_file_set_contents(dat, "not a database", -1, NULL));

    pm_av_t *av = pm_av_new();
    cr_assert_eq(pm_av_load(av, dir, NULL, 0, false, NULL), PM_OK);
    pm_av_status_t st;
    pm_av_status(av, &st);
    cr_assert_eq(st.n_dbs, 1);
    cr_assert_str_eq(st.dbs[0].name, "test");
    cr_assert_eq(st.dbs[0].version, 6);
    cr_assert_gt(st.dbs[0].sigs, 0);
    cr_assert_gt(st.dbs[0].built, 0);
    pm_av_status_clear(&st);

    unlink(path);
    unlink(dat);
    cr_assert_eq(pm_av_load(av, dir, NULL, 0, false, NULL), PM_OK);
    pm_av_status(av, &st);
    cr_assert_eq(st.n_dbs, 0);
    pm_av_status_clear(&st);
    rmdir(dir);
    pm_av_destroy(&av);
    g_free(src);
    g_free(path);
    g_free(dat);
}

Test(av, malformed_signature_keeps_old_engine)
{
    pm_av_t *av = pm_av_new();
    char *good = s_ndb("PrivmtaTest.Marker", MARKER_A);
    cr_assert_eq(s_load_one(av, "good.ndb", good, false, NULL), PM_OK);

    char *why = NULL;
    int rc = s_load_one(av, "bad.ndb", "PrivmtaTest.Bad:0:*:zz-not-hex\n",
                        false, &why);
    cr_assert_eq(rc, PM_EINVAL);
    cr_assert_not_null(why);
    cr_log_info("refused: %s", why);
    cr_assert_not_null(strstr(why, "bad.ndb"), "%s", why);
    cr_assert_not_null(strstr(why, "Malformed database"), "%s", why);

    pm_av_status_t st = {0};
    pm_av_status(av, &st);
    cr_assert_eq(st.loads, 1);
    cr_assert_eq(st.failures, 1);
    cr_assert_str_eq(st.last_error, why);
    pm_av_status_clear(&st);
    free(why);

    /* Unusable names are refused before libclamav sees them. */
    why = NULL;
    cr_assert_eq(s_load_one(av, "../x.ndb", good, false, &why), PM_EINVAL);
    cr_assert_not_null(why);
    free(why);

    char *msg = s_marker_message(MARKER_A);
    char name[128];
    cr_assert_eq(s_scan(av, msg, name, sizeof name), 1);
    cr_assert_str_eq(name, "PrivmtaTest.Marker.UNOFFICIAL");

    /* A later good load clears the error. */
    cr_assert_eq(s_load_one(av, "good.ndb", good, false, NULL), PM_OK);
    pm_av_status(av, &st);
    cr_assert_null(st.last_error);
    pm_av_status_clear(&st);

    g_free(msg);
    g_free(good);
    pm_av_destroy(&av);
}

typedef struct {
    pm_av_t *av;
    const char *msgs[3];
    atomic_bool stop;
    atomic_uint scans;
    atomic_uint errors;
    atomic_uint bad_names;
} s_race_t;

static void *
s_scanner(void *arg)
{
    s_race_t *r = arg;
    for (unsigned i = 0; !atomic_load(&r->stop) || i < 3; i++) {
        const char *msg = r->msgs[i % 3];
        char *vn = NULL, *why = NULL;
        int rc = pm_av_scan(r->av, msg, strlen(msg), &vn, &why);
        if (rc == -1)
            atomic_fetch_add(&r->errors, 1);
        if (rc == 1 && strncmp(vn, "PrivmtaTest.", 12) != 0)
            atomic_fetch_add(&r->bad_names, 1);
        atomic_fetch_add(&r->scans, 1);
        free(vn);
        free(why);
    }
    return NULL;
}

Test(av, swap_while_scanning)
{
    pm_av_t *av = pm_av_new();
    char *sig_a = s_ndb("PrivmtaTest.Marker", MARKER_A);
    char *sig_b = s_ndb("PrivmtaTest.MarkerB", MARKER_B);
    cr_assert_eq(s_load_one(av, "a.ndb", sig_a, false, NULL), PM_OK);

    char *msg_a = s_marker_message(MARKER_A);
    char *msg_b = s_marker_message(MARKER_B);
    s_race_t race = {.av = av, .msgs = {msg_a, msg_b, "From: x\r\n\r\nok\r\n"}};
    pthread_t th[4];
    for (int i = 0; i < 4; i++)
        cr_assert_eq(pthread_create(&th[i], NULL, s_scanner, &race), 0);
    for (int i = 0; i < 20; i++) {
        bool b = i % 2 == 1; /* the 20th load is set B */
        char *why = NULL;
        int rc = s_load_one(av, b ? "b.ndb" : "a.ndb", b ? sig_b : sig_a, false,
                            &why);
        cr_assert_eq(rc, PM_OK, "load %d: %s", i, why ? why : "");
    }
    atomic_store(&race.stop, true);
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    cr_log_info("%u scans during 20 reloads", atomic_load(&race.scans));
    cr_assert(atomic_load(&race.scans) >= 12);
    cr_assert_eq(atomic_load(&race.errors), 0);
    cr_assert_eq(atomic_load(&race.bad_names), 0);

    char name[128];
    cr_assert_eq(s_scan(av, msg_b, name, sizeof name), 1);
    cr_assert_str_eq(name, "PrivmtaTest.MarkerB.UNOFFICIAL");
    cr_assert_eq(s_scan(av, msg_a, NULL, 0), 0);
    pm_av_status_t st = {0};
    pm_av_status(av, &st);
    cr_assert_eq(st.loads, 21);
    pm_av_status_clear(&st);

    g_free(msg_a);
    g_free(msg_b);
    g_free(sig_a);
    g_free(sig_b);
    pm_av_destroy(&av);
}

/* Makes an encrypted zip with the zip tool; NULL when it is missing. */
static char *
s_encrypted_zip(size_t *len)
{
    if (system("command -v zip >/dev/null 2>&1") != 0)
        return NULL;
    char dir[] = "/tmp/pm_av_zip.XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    char *cmd =
        g_strdup_printf("cd %s && printf 'secret payload\\n' > inner.txt && "
                        "zip -q -P s3cret enc.zip inner.txt",
                        dir);
    cr_assert_eq(system(cmd), 0);
    char *path = g_strdup_printf("%s/enc.zip", dir);
    gchar *data = NULL;
    gsize n = 0;
    cr_assert(g_file_get_contents(path, &data, &n, NULL));
    *len = n;
    char *rm = g_strdup_printf("rm -rf %s", dir);
    cr_assert_eq(system(rm), 0);
    g_free(rm);
    g_free(path);
    g_free(cmd);
    return data;
}

Test(av, encrypted_zip)
{
    size_t len = 0;
    char *zip = s_encrypted_zip(&len);
    if (!zip)
        cr_skip("the zip tool is not installed: cannot make an encrypted "
                "zip to test with");
    char *msg = s_message(zip, len, "secret.zip");
    char *sig = s_ndb("PrivmtaTest.Marker", MARKER_A);

    pm_av_t *av = pm_av_new();
    cr_assert_eq(s_load_one(av, "a.ndb", sig, true, NULL), PM_OK);
    char name[128];
    cr_assert_eq(s_scan(av, msg, name, sizeof name), 1);
    cr_log_info("encrypted zip: %s", name);
    cr_assert_not_null(strstr(name, "Encrypted"), "%s", name);
    pm_av_status_t st = {0};
    pm_av_status(av, &st);
    cr_assert(st.block_encrypted);
    pm_av_status_clear(&st);

    cr_assert_eq(s_load_one(av, "a.ndb", sig, false, NULL), PM_OK);
    cr_assert_eq(s_scan(av, msg, NULL, 0), 0);

    pm_av_destroy(&av);
    g_free(sig);
    g_free(msg);
    g_free(zip);
}

/* ---- limits ----------------------------------------------------------------
 */

/* Runs a shell command in DIR (made by the caller). */
static void
s_sh(const char *dir, const char *cmd)
{
    char *full = g_strdup_printf("cd %s && %s", dir, cmd);
    cr_assert_eq(system(full), 0, "%s", full);
    g_free(full);
}

static char *
s_read(const char *dir, const char *file, size_t *len)
{
    char *path = g_strdup_printf("%s/%s", dir, file);
    gchar *data = NULL;
    gsize n = 0;
    cr_assert(g_file_get_contents(path, &data, &n, NULL));
    g_free(path);
    *len = n;
    return data;
}

/* A fresh work directory, or NULL when the zip tool is missing. */
static char *
s_zip_dir(void)
{
    if (system("command -v zip >/dev/null 2>&1") != 0)
        return NULL;
    char *dir = g_strdup("/tmp/pm_av_nest.XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    return dir;
}

static void
s_rm_dir(char *dir)
{
    char *rm = g_strdup_printf("rm -rf %s", dir);
    cr_assert_eq(system(rm), 0);
    g_free(rm);
    g_free(dir);
}

/* A message whose attachment is DEPTH zips, one inside the other, around
 * a text file holding MARKER (or none). The text compresses well, so the
 * marker is never visible in the outer bytes: only unpacking every level
 * finds it. */
static char *
s_nested_message(int depth, const char *marker)
{
    char *dir = s_zip_dir();
    if (!dir)
        return NULL;
    s_sh(dir, "for i in $(seq 1 200); do echo 'aaaaaaaaaaaaaaaaaaaaaaaa'; "
              "done > l0.txt");
    if (marker) {
        char *add =
            g_strdup_printf("echo 'some data %s more' >> l0.txt", marker);
        s_sh(dir, add);
        g_free(add);
    }
    s_sh(dir, "zip -q -9 l1.zip l0.txt");
    for (int i = 2; i <= depth; i++) {
        char *cmd = g_strdup_printf("zip -q -9 l%d.zip l%d.zip", i, i - 1);
        s_sh(dir, cmd);
        g_free(cmd);
    }
    char *file = g_strdup_printf("l%d.zip", depth);
    size_t len;
    char *zip = s_read(dir, file, &len);
    if (marker)
        cr_assert_null(g_strstr_len(zip, (gssize)len, marker));
    char *msg = s_message(zip, len, "nested.zip");
    g_free(file);
    g_free(zip);
    s_rm_dir(dir);
    return msg;
}

/* Scans MSG; returns the verdict and copies *why into WHY. */
static int
s_scan_why(pm_av_t *av, const char *msg, char *why_out, size_t size)
{
    char *vn = NULL, *why = NULL;
    int rc = pm_av_scan(av, msg, strlen(msg), &vn, &why);
    snprintf(why_out, size, "%s", why ? why : (vn ? vn : ""));
    cr_assert_eq(rc == PM_AV_INCOMPLETE || rc == PM_AV_TIMEOUT ||
                     rc == PM_AV_ERROR,
                 why != NULL, "rc %d why %s", rc, why ? why : "(none)");
    free(vn);
    free(why);
    return rc;
}

static pm_av_t *
s_marker_engine(const pm_av_limits_t *limits)
{
    pm_av_t *av = pm_av_new();
    pm_av_set_limits(av, limits);
    char *sig = s_ndb("PrivmtaTest.Marker", MARKER_A);
    char *why = NULL;
    cr_assert_eq(s_load_one(av, "a.ndb", sig, false, &why), PM_OK, "%s",
                 why ? why : "");
    g_free(sig);
    return av;
}

/* A marker 1 or 10 zips deep is found; 16 zips deep it is past the
 * default recursion limit, which is no longer "clean". */
Test(av, nested_zips_default_limits)
{
    char *one = s_nested_message(1, MARKER_A);
    if (!one)
        cr_skip("the zip tool is not installed");
    char *ten = s_nested_message(10, MARKER_A);
    char *deep = s_nested_message(16, MARKER_A);
    char *deep_clean = s_nested_message(16, NULL);
    pm_av_t *av = s_marker_engine(NULL);
    char why[256];
    cr_assert_eq(s_scan_why(av, one, why, sizeof why), PM_AV_INFECTED);
    cr_assert_str_eq(why, "PrivmtaTest.Marker.UNOFFICIAL");
    cr_assert_eq(s_scan_why(av, ten, why, sizeof why), PM_AV_INFECTED);
    cr_assert_eq(s_scan_why(av, deep, why, sizeof why), PM_AV_INCOMPLETE);
    cr_assert_str_eq(why, "recursion limit of 17 levels");
    cr_assert_eq(s_scan_why(av, deep_clean, why, sizeof why), PM_AV_INCOMPLETE,
                 "never clean: %s", why);
    pm_av_destroy(&av);
    g_free(one);
    g_free(ten);
    g_free(deep);
    g_free(deep_clean);
}

Test(av, nested_zips_lower_recursion_limit)
{
    char *four = s_nested_message(4, MARKER_A);
    if (!four)
        cr_skip("the zip tool is not installed");
    char *eight = s_nested_message(8, NULL);
    pm_av_t *av = s_marker_engine(&(pm_av_limits_t){.max_recursion = 8});
    char why[256];
    cr_assert_eq(s_scan_why(av, four, why, sizeof why), PM_AV_INFECTED);
    cr_assert_eq(s_scan_why(av, eight, why, sizeof why), PM_AV_INCOMPLETE);
    cr_assert_str_eq(why, "recursion limit of 8 levels");
    /* the limits belong to the engine: a reload with the defaults lets
     * the same message through, clean */
    pm_av_set_limits(av, NULL);
    char *sig = s_ndb("PrivmtaTest.Marker", MARKER_A);
    cr_assert_eq(s_load_one(av, "a.ndb", sig, false, NULL), PM_OK);
    cr_assert_eq(s_scan_why(av, eight, why, sizeof why), PM_AV_CLEAN);
    g_free(sig);
    pm_av_destroy(&av);
    g_free(four);
    g_free(eight);
}

/* A zip of N_FILES files of SIZE bytes each (compressible). */
static char *
s_zip_message(int n_files, int size)
{
    char *dir = s_zip_dir();
    if (!dir)
        return NULL;
    char *cmd = g_strdup_printf(
        "for i in $(seq 1 %d); do head -c %d /dev/zero | tr '\\0' a > f$i; "
        "done && zip -q -9 all.zip f*",
        n_files, size);
    s_sh(dir, cmd);
    g_free(cmd);
    size_t len;
    char *zip = s_read(dir, "all.zip", &len);
    char *msg = s_message(zip, len, "many.zip");
    g_free(zip);
    s_rm_dir(dir);
    return msg;
}

Test(av, file_count_file_size_and_scan_size_limits)
{
    char *many = s_zip_message(20, 100);
    if (!many)
        cr_skip("the zip tool is not installed");
    char *big = s_zip_message(1, 256 * 1024);
    char why[256];
    int rc;
    pm_av_t *av = s_marker_engine(&(pm_av_limits_t){.max_files = 5});
    cr_assert_eq(s_scan_why(av, many, why, sizeof why), PM_AV_INCOMPLETE);
    cr_assert_str_eq(why, "file count limit of 5 files");
    cr_assert_eq(s_scan_why(av, big, why, sizeof why), PM_AV_CLEAN, "%s", why);
    pm_av_destroy(&av);

    /* libclamav trims a file inside an archive to max_filesize (scans its
     * start) without an alert; a message larger than it is an alert */
    av = s_marker_engine(&(pm_av_limits_t){.max_filesize = 64 * 1024});
    char *large = s_message("x", 1, "x.bin");
    size_t n = strlen(large);
    large = g_realloc(large, n + 128 * 1024 + 1);
    memset(large + n, 'a', 128 * 1024);
    large[n + 128 * 1024] = '\0';
    rc = s_scan_why(av, large, why, sizeof why);
    cr_assert_eq(rc, PM_AV_INCOMPLETE, "%d %s", rc, why);
    cr_assert_str_eq(why, "file size limit of 65536 bytes");
    cr_assert_eq(s_scan_why(av, many, why, sizeof why), PM_AV_CLEAN, "%s", why);
    pm_av_destroy(&av);
    g_free(large);

    av = s_marker_engine(&(pm_av_limits_t){.max_scansize = 128 * 1024});
    rc = s_scan_why(av, big, why, sizeof why);
    cr_assert_eq(rc, PM_AV_INCOMPLETE, "%d %s", rc, why);
    cr_assert_str_eq(why, "scan size limit of 131072 bytes");
    pm_av_destroy(&av);
    g_free(many);
    g_free(big);
}

/* The scan time limit is a resource limit (try later), not a verdict on
 * the content. 1 ms is far less than unpacking 300 files takes. */
Test(av, scan_time_limit)
{
    char *many = s_zip_message(300, 20000);
    if (!many)
        cr_skip("the zip tool is not installed");
    char why[256];
    pm_av_t *av = s_marker_engine(&(pm_av_limits_t){.max_scantime_ms = 1});
    cr_assert_eq(s_scan_why(av, many, why, sizeof why), PM_AV_TIMEOUT, "%s",
                 why);
    cr_assert_str_eq(why, "scan time limit of 1 ms");
    pm_av_destroy(&av);
    g_free(many);
}
