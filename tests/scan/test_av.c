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

Test(av, swap_while_scanning, .timeout = 60)
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
