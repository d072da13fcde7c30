/* test_attach.c - pm_attach: blocked extensions in real MIME messages, at
 * every level, with RFC 2231 and RFC 2047 names; in archives, TNEF and
 * uuencoded text; and the limits that keep hostile mail bounded. */
#include "pm_attach.h"

#include <criterion/criterion.h>
#include <glib.h>
#include <locale.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

static pm_attach_blocklist_t *s_bl;

static void
s_setup(void)
{
    char *exts[] = {"exe", "js", "Bat"};
    s_bl = pm_attach_blocklist_new(exts, 3);
    cr_assert_not_null(s_bl);
}

static void
s_teardown(void)
{
    pm_attach_blocklist_destroy(&s_bl);
}

TestSuite(attach, .init = s_setup, .fini = s_teardown);

#define HEAD                                                                   \
    "From: alice@example.test\r\n"                                             \
    "To: bob@example.test\r\n"                                                 \
    "Subject: test\r\n"                                                        \
    "Message-ID: <1@example.test>\r\n"                                         \
    "MIME-Version: 1.0\r\n"

/* A multipart/mixed message: a text part, then one part whose headers
 * (Content-Type and Content-Disposition lines) are PART_HEADERS. */
static char *
s_mixed(const char *part_headers)
{
    char *msg = NULL;
    int n = asprintf(&msg,
                     HEAD "Content-Type: multipart/mixed; boundary=\"b1\"\r\n"
                          "\r\n"
                          "preamble\r\n"
                          "--b1\r\n"
                          "Content-Type: text/plain; charset=utf-8\r\n"
                          "\r\n"
                          "Hello.\r\n"
                          "--b1\r\n"
                          "%s"
                          "Content-Transfer-Encoding: base64\r\n"
                          "\r\n"
                          "TVqQAAMAAAAEAAAA//8AALgAAAAAAAAAQAAAAAAAAAAA\r\n"
                          "--b1--\r\n",
                     part_headers);
    cr_assert(n > 0);
    return msg;
}

/* Scans MSG; returns the verdict and copies the hit's name into NAME. */
static int
s_scan(const char *msg, char *name, size_t size)
{
    pm_attach_hit_t hit = {0};
    char *why = NULL;
    int rc = pm_attach_scan(s_bl, msg, strlen(msg), &hit, &why);
    if (name)
        snprintf(name, size, "%s", rc == 1 ? hit.filename : "");
    if (rc == 1)
        cr_assert_not_null(hit.extension);
    if (rc == -1 || rc == 2)
        cr_assert_not_null(why);
    else
        cr_assert_null(why);
    pm_attach_hit_clear(&hit);
    free(why);
    return rc;
}

static void
s_expect_hit(const char *part_headers, const char *want)
{
    char *msg = s_mixed(part_headers);
    char name[256];
    cr_assert_eq(s_scan(msg, name, sizeof name), 1, "no hit for: %s",
                 part_headers);
    cr_assert_str_eq(name, want);
    free(msg);
}

static void
s_expect_pass(const char *part_headers)
{
    char *msg = s_mixed(part_headers);
    cr_assert_eq(s_scan(msg, NULL, 0), 0, "hit for: %s", part_headers);
    free(msg);
}

Test(attach, plain_exe)
{
    s_expect_hit("Content-Type: application/octet-stream\r\n"
                 "Content-Disposition: attachment; filename=\"evil.exe\"\r\n",
                 "evil.exe");
}

Test(attach, upper_case_name)
{
    pm_attach_hit_t hit = {0};
    char *msg = s_mixed("Content-Type: application/octet-stream\r\n"
                        "Content-Disposition: attachment; "
                        "filename=INVOICE.EXE\r\n");
    cr_assert_eq(pm_attach_scan(s_bl, msg, strlen(msg), &hit, NULL), 1);
    cr_assert_str_eq(hit.filename, "INVOICE.EXE");
    cr_assert_str_eq(hit.extension, "EXE");
    pm_attach_hit_clear(&hit);
    pm_attach_hit_clear(&hit); /* safe twice */
    free(msg);
}

Test(attach, double_extension)
{
    s_expect_hit("Content-Type: application/pdf\r\n"
                 "Content-Disposition: attachment; "
                 "filename=\"report.pdf.exe\"\r\n",
                 "report.pdf.exe");
}

Test(attach, rfc2231_charset)
{
    s_expect_hit("Content-Type: application/octet-stream\r\n"
                 "Content-Disposition: attachment; "
                 "filename*=utf-8''%E2%82%ACvil.exe\r\n",
                 "\xE2\x82\xAC"
                 "vil.exe");
}

Test(attach, rfc2231_continuations)
{
    s_expect_hit("Content-Type: application/octet-stream\r\n"
                 "Content-Disposition: attachment;\r\n"
                 " filename*0=\"ev\";\r\n"
                 " filename*1=\"il.exe\"\r\n",
                 "evil.exe");
    /* Encoded continuations: the dot and extension only in part 2. */
    s_expect_hit("Content-Type: application/octet-stream\r\n"
                 "Content-Disposition: attachment;\r\n"
                 " filename*0*=utf-8''%E2%82%AC;\r\n"
                 " filename*1*=vil%2E;\r\n"
                 " filename*2=\"exe\"\r\n",
                 "\xE2\x82\xAC"
                 "vil.exe");
}

Test(attach, rfc2047_in_parameter)
{
    s_expect_hit("Content-Type: application/octet-stream\r\n"
                 "Content-Disposition: attachment;\r\n"
                 " filename=\"=?UTF-8?B?YsO2c2FydGlnLmV4ZQ==?=\"\r\n",
                 "b\xC3\xB6sartig.exe");
    s_expect_hit("Content-Type: application/octet-stream;\r\n"
                 " name=\"=?iso-8859-1?Q?b=F6sartig=2Eexe?=\"\r\n",
                 "b\xC3\xB6sartig.exe");
}

Test(attach, name_only_in_content_type)
{
    s_expect_hit("Content-Type: application/x-msdownload; name=setup.exe\r\n",
                 "setup.exe");
}

Test(attach, disposition_and_type_disagree)
{
    /* A client may save under either name: both are checked. */
    s_expect_hit("Content-Type: application/octet-stream; name=\"a.exe\"\r\n"
                 "Content-Disposition: attachment; filename=\"a.txt\"\r\n",
                 "a.exe");
    s_expect_hit("Content-Type: application/octet-stream\r\n"
                 "Content-Disposition: attachment; filename=\"a.txt\";"
                 " filename=\"a.exe\"\r\n",
                 "a.exe");
}

Test(attach, trailing_dot_and_space)
{
    s_expect_hit("Content-Type: application/octet-stream\r\n"
                 "Content-Disposition: attachment; filename=\"evil.exe.\"\r\n",
                 "evil.exe");
    s_expect_hit("Content-Type: application/octet-stream\r\n"
                 "Content-Disposition: attachment; filename=\"evil.exe \"\r\n",
                 "evil.exe");
    s_expect_hit("Content-Type: application/octet-stream\r\n"
                 "Content-Disposition: attachment; "
                 "filename=\"evil.exe . .\"\r\n",
                 "evil.exe");
}

Test(attach, harmless_names_pass)
{
    s_expect_pass("Content-Type: text/plain\r\n"
                  "Content-Disposition: attachment; filename=\"exe.txt\"\r\n");
    s_expect_pass("Content-Type: application/octet-stream\r\n"
                  "Content-Disposition: attachment; filename=\"exe\"\r\n");
    s_expect_pass(
        "Content-Type: application/octet-stream\r\n"
        "Content-Disposition: attachment; filename=\"notes.exex\"\r\n");
    s_expect_pass("Content-Type: application/octet-stream\r\n"
                  "Content-Disposition: attachment; filename=\"...\"\r\n");
    s_expect_pass("Content-Type: application/octet-stream\r\n");
}

Test(attach, no_attachment_passes)
{
    const char *msg = HEAD "Content-Type: text/plain\r\n"
                           "\r\n"
                           "Run setup.exe, please.\r\n";
    cr_assert_eq(s_scan(msg, NULL, 0), 0);
    const char *bare = "From: a@example.test\r\n\r\nbody\r\n";
    cr_assert_eq(s_scan(bare, NULL, 0), 0);
}

Test(attach, attached_message)
{
    const char *msg =
        HEAD "Content-Type: multipart/mixed; boundary=\"outer\"\r\n"
             "\r\n"
             "--outer\r\n"
             "Content-Type: text/plain\r\n"
             "\r\n"
             "Forwarded.\r\n"
             "--outer\r\n"
             "Content-Type: message/rfc822\r\n"
             "Content-Disposition: attachment; filename=\"fwd.eml\"\r\n"
             "\r\n"
             "From: mallory@example.test\r\n"
             "Subject: inner\r\n"
             "MIME-Version: 1.0\r\n"
             "Content-Type: multipart/mixed; boundary=\"inner\"\r\n"
             "\r\n"
             "--inner\r\n"
             "Content-Type: text/plain\r\n"
             "\r\n"
             "hi\r\n"
             "--inner\r\n"
             "Content-Type: application/octet-stream\r\n"
             "Content-Disposition: attachment; filename=\"payload.js\"\r\n"
             "\r\n"
             "alert(1)\r\n"
             "--inner--\r\n"
             "--outer--\r\n";
    char name[64];
    cr_assert_eq(s_scan(msg, name, sizeof name), 1);
    cr_assert_str_eq(name, "payload.js");
}

Test(attach, base64_encoded_attached_message)
{
    /* GMime does not parse an encoded message/rfc822 by itself. */
    const char *inner = "From: m@example.test\r\n"
                        "MIME-Version: 1.0\r\n"
                        "Content-Type: application/octet-stream; "
                        "name=\"hidden.exe\"\r\n"
                        "\r\n"
                        "MZ\r\n";
    gchar *b64 = g_base64_encode((const guchar *)inner, strlen(inner));
    char *msg = s_mixed("Content-Type: message/rfc822\r\n"
                        "Content-Disposition: attachment\r\n");
    /* Replace the sample body with the encoded inner message. */
    char *body = strstr(msg, "TVqQ");
    cr_assert_not_null(body);
    *body = '\0';
    char *full = NULL;
    cr_assert(asprintf(&full, "%s%s\r\n--b1--\r\n", msg, b64) > 0);
    char name[64];
    cr_assert_eq(s_scan(full, name, sizeof name), 1);
    cr_assert_str_eq(name, "hidden.exe");
    free(full);
    free(msg);
    g_free(b64);
}

Test(attach, nested_alternative)
{
    const char *msg =
        HEAD "Content-Type: multipart/mixed; boundary=\"m\"\r\n"
             "\r\n"
             "--m\r\n"
             "Content-Type: multipart/alternative; boundary=\"a\"\r\n"
             "\r\n"
             "--a\r\n"
             "Content-Type: text/plain\r\n"
             "\r\n"
             "plain\r\n"
             "--a\r\n"
             "Content-Type: multipart/related; boundary=\"r\"\r\n"
             "\r\n"
             "--r\r\n"
             "Content-Type: text/html\r\n"
             "\r\n"
             "<p>html</p>\r\n"
             "--r\r\n"
             "Content-Type: application/octet-stream; name=\"run.BAT\"\r\n"
             "Content-ID: <x@y>\r\n"
             "\r\n"
             "echo\r\n"
             "--r--\r\n"
             "--a--\r\n"
             "--m\r\n"
             "Content-Type: text/plain; name=\"readme.txt\"\r\n"
             "\r\n"
             "text\r\n"
             "--m--\r\n";
    char name[64];
    cr_assert_eq(s_scan(msg, name, sizeof name), 1);
    cr_assert_str_eq(name, "run.BAT");
}

Test(attach, blocklist_case_insensitive_and_checked)
{
    char *exts[] = {"EXE", "exe", "Js"};
    pm_attach_blocklist_t *bl = pm_attach_blocklist_new(exts, 3);
    cr_assert_not_null(bl);
    cr_assert_eq(pm_attach_blocklist_size(bl), 2);
    char *msg = s_mixed("Content-Type: application/octet-stream\r\n"
                        "Content-Disposition: attachment; "
                        "filename=\"a.eXe\"\r\n");
    cr_assert_eq(pm_attach_scan(bl, msg, strlen(msg), NULL, NULL), 1);
    pm_attach_blocklist_destroy(&bl);
    pm_attach_blocklist_destroy(&bl); /* safe twice */
    cr_assert_null(bl);

    /* An empty list blocks nothing. */
    bl = pm_attach_blocklist_new(NULL, 0);
    cr_assert_not_null(bl);
    cr_assert_eq(pm_attach_scan(bl, msg, strlen(msg), NULL, NULL), 0);
    pm_attach_blocklist_destroy(&bl);
    free(msg);

    char *bad1[] = {".exe"};
    char *bad2[] = {""};
    char *bad3[] = {"ex e"};
    cr_assert_null(pm_attach_blocklist_new(bad1, 1));
    cr_assert_null(pm_attach_blocklist_new(bad2, 1));
    cr_assert_null(pm_attach_blocklist_new(bad3, 1));
}

Test(attach, malformed_messages_do_not_crash)
{
    const char *cases[] = {
        "",
        "\r\n\r\n",
        "garbage without headers",
        HEAD "Content-Type: multipart/mixed\r\n\r\n--x\r\n\r\n",
        HEAD "Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n"
             "--b\r\nContent-Type: application/octet-stream; name=\"x.exe\r\n",
        HEAD "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n"
             "Content-Disposition: attachment; filename*0*=%ZZ; "
             "filename*9=\"\r\n--b",
        HEAD "Content-Type: message/rfc822\r\n\r\n",
        HEAD "Content-Type: ;;;===\r\nContent-Disposition: =?x?q?\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        pm_attach_hit_t hit = {0};
        char *why = NULL;
        int rc = pm_attach_scan(s_bl, cases[i], strlen(cases[i]), &hit, &why);
        cr_assert(rc >= -1 && rc <= 2);
        cr_assert((rc == -1 || rc == 2) == (why != NULL));
        pm_attach_hit_clear(&hit);
        free(why);
    }
    /* A message cut inside the attachment's name still shows the name. */
    cr_assert_eq(pm_attach_scan(s_bl, cases[4], strlen(cases[4]), NULL, NULL),
                 1);
    /* Not NUL-terminated: only LEN bytes are read. */
    char *msg = s_mixed("Content-Type: application/octet-stream\r\n"
                        "Content-Disposition: attachment; "
                        "filename=\"evil.exe\"\r\n");
    char *copy = malloc(strlen(msg));
    memcpy(copy, msg, strlen(msg));
    cr_assert_eq(pm_attach_scan(s_bl, copy, strlen(msg), NULL, NULL), 1);
    free(copy);
    free(msg);
}

/* A message of DEPTH nested multiparts around a part named deep.exe. */
static char *
s_nested(size_t depth, size_t *len)
{
    size_t cap = 64 * 1024 + depth * 128, off = 0;
    char *msg = malloc(cap);
    off += (size_t)snprintf(msg + off, cap - off, HEAD);
    for (size_t i = 0; i < depth; i++)
        off += (size_t)snprintf(msg + off, cap - off,
                                "Content-Type: multipart/mixed; "
                                "boundary=\"b%zu\"\r\n\r\n--b%zu\r\n",
                                i, i);
    off += (size_t)snprintf(msg + off, cap - off,
                            "Content-Type: application/octet-stream; "
                            "name=\"deep.exe\"\r\n\r\nx\r\n");
    for (size_t i = depth; i-- > 0;)
        off += (size_t)snprintf(msg + off, cap - off, "--b%zu--\r\n", i);
    cr_assert(off < cap);
    *len = off;
    return msg;
}

Test(attach, deep_nesting_is_a_limit)
{
    /* 200 nested multiparts: deeper than anything looked at. */
    size_t len;
    char *msg = s_nested(200, &len);
    char *why = NULL;
    cr_assert_eq(pm_attach_scan(s_bl, msg, len, NULL, &why), 2);
    cr_assert_str_eq(why, "MIME nesting deeper than 32 levels");
    free(why);
    free(msg);
}

Test(attach, depth_limit_is_configurable)
{
    size_t len;
    char *msg = s_nested(5, &len);
    cr_assert_eq(pm_attach_scan(s_bl, msg, len, NULL, NULL), 1);
    pm_attach_limits_t lim = {.max_depth = 3};
    pm_attach_blocklist_set_limits(s_bl, &lim);
    cr_assert_eq(pm_attach_blocklist_limits(s_bl).max_depth, 3);
    cr_assert_eq(pm_attach_blocklist_limits(s_bl).max_parts,
                 PM_ATTACH_DEFAULT_PARTS);
    char *why = NULL;
    cr_assert_eq(pm_attach_scan(s_bl, msg, len, NULL, &why), 2);
    cr_assert_str_eq(why, "MIME nesting deeper than 3 levels");
    free(why);
    /* Without a blocklist the shape is still checked. */
    pm_attach_blocklist_t *empty = pm_attach_blocklist_new(NULL, 0);
    pm_attach_blocklist_set_limits(empty, &lim);
    cr_assert_eq(pm_attach_scan(empty, msg, len, NULL, NULL), 2);
    pm_attach_blocklist_destroy(&empty);
    free(msg);
}

/* ---- hostile shapes: limits counted while GMime parses ---- */

static long
s_maxrss_kib(void)
{
    struct rusage ru;
    cr_assert_eq(getrusage(RUSAGE_SELF, &ru), 0);
    return ru.ru_maxrss;
}

Test(attach, part_bomb_is_a_limit_in_bounded_memory)
{
    /* 10 MiB of empty parts without headers: about 1.5 million. */
    size_t size = 10 * 1024 * 1024, off = 0;
    char *msg = malloc(size + 64);
    off += (size_t)snprintf(msg, size,
                            HEAD "Content-Type: multipart/mixed; "
                                 "boundary=b\r\n\r\n");
    while (off + 7 < size) {
        memcpy(msg + off, "--b\r\n\r\n", 7);
        off += 7;
    }
    memcpy(msg + off, "--b--\r\n", 7);
    off += 7;
    pm_attach_blocklist_t *empty = pm_attach_blocklist_new(NULL, 0);
    pm_attach_blocklist_t *lists[] = {empty, s_bl};
    for (size_t i = 0; i < 2; i++) {
        long before = s_maxrss_kib();
        char *why = NULL;
        int rc = pm_attach_scan(lists[i], msg, off, NULL, &why);
        long grown = s_maxrss_kib() - before;
        cr_assert_eq(rc, 2);
        cr_assert_str_eq(why, "more than 1000 MIME parts");
        /* The scan copies the message once (10 MiB); GMime's tree of
         * 1.5 M parts would be about 2 GiB. */
        cr_assert_lt(grown, 64 * 1024, "the scan grew by %ld KiB", grown);
        free(why);
    }
    pm_attach_blocklist_destroy(&empty);
    free(msg);
}

/* A multipart message of N parts, each with a text body of BODY. */
static char *
s_parts(size_t n, const char *body)
{
    GString *s = g_string_new(HEAD "Content-Type: multipart/mixed; "
                                   "boundary=\"p\"\r\n\r\n");
    for (size_t i = 0; i < n; i++)
        g_string_append_printf(s,
                               "--p\r\nContent-Type: text/plain; "
                               "name=\"t%zu.txt\"\r\n\r\n%s\r\n",
                               i, body);
    g_string_append(s, "--p--\r\n");
    return g_string_free(s, FALSE);
}

Test(attach, part_limit_counts_boundaries_only)
{
    /* Lines that start with "--" but are no boundary are not parts. */
    GString *dashes = g_string_new("");
    for (int i = 0; i < 3000; i++)
        g_string_append(dashes, "-- a comment\r\n--p-not-it\r\n");
    char *msg = s_parts(20, dashes->str);
    g_string_free(dashes, TRUE);
    cr_assert_eq(s_scan(msg, NULL, 0), 0);
    pm_attach_limits_t lim = {.max_parts = 10};
    pm_attach_blocklist_set_limits(s_bl, &lim);
    char *why = NULL;
    cr_assert_eq(pm_attach_scan(s_bl, msg, strlen(msg), NULL, &why), 2);
    cr_assert_str_eq(why, "more than 10 MIME parts");
    free(why);
    lim.max_parts = 21; /* 20 parts and the multipart holding them */
    pm_attach_blocklist_set_limits(s_bl, &lim);
    cr_assert_eq(s_scan(msg, NULL, 0), 0);
    g_free(msg);
}

/* A multipart message of NPARTS parts, each with NHDR header fields of
 * VLEN bytes of value. */
static char *
s_headers(size_t nparts, size_t nhdr, size_t vlen)
{
    GString *s = g_string_new(HEAD "Content-Type: multipart/mixed; "
                                   "boundary=\"h\"\r\n\r\n");
    char *value = g_strnfill(vlen, 'v');
    for (size_t p = 0; p < nparts; p++) {
        g_string_append(s, "--h\r\nContent-Type: text/plain\r\n");
        for (size_t i = 0; i < nhdr; i++)
            g_string_append_printf(s, "X-H%zu: %s\r\n", i, value);
        g_string_append(s, "\r\nbody\r\n");
    }
    g_string_append(s, "--h--\r\n");
    g_free(value);
    return g_string_free(s, FALSE);
}

static void
s_expect_limit(const pm_attach_limits_t *lim, const char *msg, const char *want)
{
    cr_assert_eq(s_scan(msg, NULL, 0), 0, "defaults refuse: %s", want);
    pm_attach_blocklist_set_limits(s_bl, lim);
    char *why = NULL;
    cr_assert_eq(pm_attach_scan(s_bl, msg, strlen(msg), NULL, &why), 2);
    cr_assert_str_eq(why, want);
    free(why);
    pm_attach_blocklist_set_limits(s_bl, NULL);
}

Test(attach, header_limits)
{
    char *msg = s_headers(1, 60, 10);
    s_expect_limit(&(pm_attach_limits_t){.max_headers = 50}, msg,
                   "more than 50 header fields in one part");
    g_free(msg);
    msg = s_headers(1, 1, 2000);
    s_expect_limit(&(pm_attach_limits_t){.max_header_bytes = 1000}, msg,
                   "more than 1000 bytes of header in one part");
    g_free(msg);
    msg = s_headers(3, 40, 10);
    s_expect_limit(
        &(pm_attach_limits_t){.max_headers = 50, .max_total_headers = 100}, msg,
        "more than 100 header fields");
    g_free(msg);
    msg = s_headers(3, 1, 1500);
    s_expect_limit(&(pm_attach_limits_t){.max_header_bytes = 2000,
                                         .max_total_header_bytes = 3000},
                   msg, "more than 3000 bytes of header");
    g_free(msg);
}

Test(attach, header_bomb_is_a_limit)
{
    /* 10 MiB of tiny header fields in one part. */
    GString *s = g_string_sized_new(10 * 1024 * 1024 + 1024);
    g_string_append(s, HEAD);
    while (s->len < 10 * 1024 * 1024)
        g_string_append(s, "X: y\r\n");
    g_string_append(s, "\r\nbody\r\n");
    pm_attach_blocklist_t *empty = pm_attach_blocklist_new(NULL, 0);
    long before = s_maxrss_kib();
    char *why = NULL;
    cr_assert_eq(pm_attach_scan(empty, s->str, s->len, NULL, &why), 2);
    long grown = s_maxrss_kib() - before;
    cr_assert_str_eq(why, "more than 1000 header fields in one part");
    cr_assert_lt(grown, 64 * 1024, "the scan grew by %ld KiB", grown);
    free(why);
    pm_attach_blocklist_destroy(&empty);
    g_string_free(s, TRUE);
}

/* ---- names inside archives, TNEF and uuencoded text ---- */

/* A message with one attachment per entry of NAMES/DATA/LENS. */
static char *
s_attachments(size_t n, const char *const *names, const void *const *data,
              const size_t *lens)
{
    GString *s = g_string_new(HEAD "Content-Type: multipart/mixed; "
                                   "boundary=\"a\"\r\n\r\n"
                                   "--a\r\nContent-Type: text/plain\r\n\r\n"
                                   "see attached\r\n");
    for (size_t i = 0; i < n; i++) {
        gchar *b64 = g_base64_encode(data[i], lens[i]);
        g_string_append_printf(s,
                               "--a\r\nContent-Type: application/octet-stream"
                               "\r\nContent-Disposition: attachment; "
                               "filename=\"%s\"\r\n"
                               "Content-Transfer-Encoding: base64\r\n\r\n",
                               names[i]);
        for (size_t o = 0, l = strlen(b64); o < l; o += 76)
            g_string_append_printf(s, "%.76s\r\n", b64 + o);
        g_free(b64);
    }
    g_string_append(s, "--a--\r\n");
    return g_string_free(s, FALSE);
}

static char *s_dir;

static void
s_archive_setup(void)
{
    s_setup();
    char tmpl[] = "/tmp/test_attach.XXXXXX";
    cr_assert_not_null(mkdtemp(tmpl));
    s_dir = strdup(tmpl);
}

static void
s_archive_teardown(void)
{
    char *cmd = g_strdup_printf("rm -rf '%s'", s_dir);
    cr_assert_eq(system(cmd), 0);
    g_free(cmd);
    free(s_dir);
    s_teardown();
}

TestSuite(archive, .init = s_archive_setup, .fini = s_archive_teardown);

/* Runs a shell command in the test's directory. */
static void
s_sh(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *cmd = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    char *full = g_strdup_printf("cd '%s' && (%s) >/dev/null 2>&1", s_dir, cmd);
    cr_assert_eq(system(full), 0, "failed: %s", cmd);
    g_free(full);
    g_free(cmd);
}

/* Reads PATH, relative to the test directory unless absolute. */
static char *
s_slurp(const char *path, size_t *len)
{
    char *full =
        path[0] == '/' ? g_strdup(path) : g_strdup_printf("%s/%s", s_dir, path);
    gchar *data = NULL;
    gsize n = 0;
    cr_assert(g_file_get_contents(full, &data, &n, NULL), "%s", full);
    g_free(full);
    *len = n;
    return data;
}

/* Scans a message carrying FILE as attachment NAME with BL. Returns the
 * verdict; *got gets the hit's name or the limit's sentence (caller
 * frees), or NULL. */
static int
s_scan_file(pm_attach_blocklist_t *bl, const char *file, const char *name,
            char **got)
{
    size_t len;
    char *data = s_slurp(file, &len);
    const void *datas[] = {data};
    char *msg = s_attachments(1, &name, datas, &len);
    pm_attach_hit_t hit = {0};
    char *why = NULL;
    int rc = pm_attach_scan(bl, msg, strlen(msg), &hit, &why);
    *got = rc == 1 ? strdup(hit.filename) : why ? strdup(why) : NULL;
    pm_attach_hit_clear(&hit);
    free(why);
    g_free(msg);
    g_free(data);
    return rc;
}

static void
s_expect_file(pm_attach_blocklist_t *bl, const char *file, const char *name,
              int want_rc, const char *want)
{
    char *got = NULL;
    int rc = s_scan_file(bl ? bl : s_bl, file, name, &got);
    cr_assert_eq(rc, want_rc, "%s: rc %d (%s)", file, rc, got ? got : "");
    if (want)
        cr_assert_str_eq(got, want, "%s", file);
    free(got);
}

static void
s_make_files(void)
{
    s_sh("mkdir -p d/sub && echo MZ > d/sub/evil.exe && echo hi > "
         "d/readme.txt && echo hi > clean.txt");
}

Test(archive, names_in_zip_tar_7z)
{
    s_make_files();
    s_sh("cd d && zip -qr ../x.zip . && tar -cf ../x.tar . && "
         "tar -czf ../x.tgz . && tar -cjf ../x.tbz . && tar -cJf ../x.txz . "
         "&& 7z a -bd ../x.7z .");
    s_sh("zip -q clean.zip clean.txt && 7z a -bd clean.7z clean.txt");
    const char *files[] = {"x.zip", "x.tar", "x.tgz", "x.tbz", "x.txz", "x.7z"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        s_expect_file(NULL, files[i], files[i], 1, "evil.exe");
        /* Found by content, whatever the part is called. */
        s_expect_file(NULL, files[i], "report.pdf", 1, "evil.exe");
    }
    s_expect_file(NULL, "clean.zip", "clean.zip", 0, NULL);
    s_expect_file(NULL, "clean.7z", "clean.7z", 0, NULL);
}

#define DATA PM_SOURCE_DIR "/tests/scan/data/"

Test(archive, names_in_rar_and_rar5)
{
    char *exts[] = {"txt"};
    pm_attach_blocklist_t *txt = pm_attach_blocklist_new(exts, 1);
    s_expect_file(txt, DATA "test_read_format_rar.rar", "a.rar", 1, "test.txt");
    s_expect_file(txt, DATA "test_read_format_rar5_stored.rar", "b.rar", 1,
                  "helloworld.txt");
    s_expect_file(NULL, DATA "test_read_format_rar.rar", "a.rar", 0, NULL);
    pm_attach_blocklist_destroy(&txt);
}

Test(archive, zip_in_zip)
{
    s_make_files();
    s_sh("cd d && zip -qr ../inner.zip . && cd .. && zip -q outer.zip "
         "inner.zip clean.txt");
    s_expect_file(NULL, "outer.zip", "outer.zip", 1, "evil.exe");
}

Test(archive, nesting_limit)
{
    /* Six levels of zip around a harmless file. */
    s_sh("echo hi > l0.txt && zip -q l1.zip l0.txt && zip -q l2.zip l1.zip "
         "&& zip -q l3.zip l2.zip && zip -q l4.zip l3.zip && "
         "zip -q l5.zip l4.zip && zip -q l6.zip l5.zip");
    s_expect_file(NULL, "l4.zip", "l4.zip", 0, NULL);
    s_expect_file(NULL, "l6.zip", "nest.zip", 2,
                  "archive nesting deeper than 4 levels in part "
                  "\"nest.zip\"");
}

Test(archive, entry_limits)
{
    s_sh("mkdir m && for i in $(seq 1 30); do echo $i > m/f$i.txt; done && "
         "cd m && zip -q ../many.zip *.txt");
    s_expect_file(NULL, "many.zip", "many.zip", 0, NULL);
    pm_attach_limits_t lim = {.max_archive_entries = 10};
    pm_attach_blocklist_set_limits(s_bl, &lim);
    s_expect_file(NULL, "many.zip", "many.zip", 2,
                  "more than 10 entries in one archive in part "
                  "\"many.zip\"");
    /* Two archives of 30 entries each, 50 allowed in all. */
    lim = (pm_attach_limits_t){.max_total_entries = 50};
    pm_attach_blocklist_set_limits(s_bl, &lim);
    size_t len;
    char *zip = s_slurp("many.zip", &len);
    const char *names[] = {"one.zip", "two.zip"};
    const void *datas[] = {zip, zip};
    size_t lens[] = {len, len};
    char *msg = s_attachments(2, names, datas, lens);
    char *why = NULL;
    cr_assert_eq(pm_attach_scan(s_bl, msg, strlen(msg), NULL, &why), 2);
    cr_assert_str_eq(why, "more than 50 archive entries in the message in "
                          "part \"two.zip\"");
    free(why);
    g_free(msg);
    g_free(zip);
}

Test(archive, decompression_bomb)
{
    /* 1 GiB of zeros is about 1 MiB of zip. */
    s_sh("head -c 1073741824 /dev/zero | zip -q bomb.zip -");
    long before = s_maxrss_kib();
    char *got = NULL;
    int rc = s_scan_file(s_bl, "bomb.zip", "bomb.zip", &got);
    long grown = s_maxrss_kib() - before;
    cr_assert_eq(rc, 2);
    cr_assert_str_eq(got, "archives decompress to more than 67108864 bytes "
                          "in part \"bomb.zip\"");
    cr_assert_lt(grown, 64 * 1024, "the scan grew by %ld KiB", grown);
    free(got);
}

Test(archive, corrupt_and_encrypted_archives)
{
    /* Cut short: the names read before the damage are checked. */
    size_t len;
    char *rar = s_slurp(DATA "test_read_format_rar.rar", &len);
    char *path = g_strdup_printf("%s/cut.rar", s_dir);
    cr_assert(g_file_set_contents(path, rar, 300, NULL));
    char *got = NULL;
    cr_assert_eq(s_scan_file(s_bl, "cut.rar", "cut.rar", &got), 2);
    cr_assert(strstr(got, "could not be") && strstr(got, "in part \"cut.rar\""),
              "%s", got);
    free(got);
    char *exts[] = {"txt"};
    pm_attach_blocklist_t *txt = pm_attach_blocklist_new(exts, 1);
    s_expect_file(txt, "cut.rar", "cut.rar", 1, "test.txt");
    pm_attach_blocklist_destroy(&txt);
    /* Names encrypted: nothing can be listed. */
    cr_assert_eq(s_scan_file(s_bl,
                             DATA "test_read_format_rar_encryption_"
                                  "header.rar",
                             "secret.rar", &got),
                 2);
    cr_assert(strstr(got, "archive could not be listed") &&
                  strstr(got, "in part \"secret.rar\""),
              "%s", got);
    free(got);
    /* A damaged zip is never a pass. */
    s_make_files();
    s_sh("cd d && zip -qr ../x.zip . && head -c 200 ../x.zip > ../cut.zip");
    cr_assert_neq(s_scan_file(s_bl, "cut.zip", "cut.zip", &got), 0);
    free(got);
    /* Without a blocklist archives are not opened at all. */
    pm_attach_blocklist_t *empty = pm_attach_blocklist_new(NULL, 0);
    s_expect_file(empty, "cut.rar", "cut.rar", 0, NULL);
    pm_attach_blocklist_destroy(&empty);
    g_free(path);
    g_free(rar);
}

/* Names outside ASCII: a zip's flagged UTF-8 name and 7z's UTF-16 ones
 * are read in privmta-milter's UTF-8 locale and checked. In a locale
 * where libarchive cannot give them (C), the archive counts as unreadable,
 * never as clean: one accent used to get a blocked name through. */
Test(archive, non_ascii_names_are_checked)
{
    s_sh("mkdir u && echo MZ > 'u/r\303\251sum\303\251.exe' && "
         "python3 -c \"import zipfile; z = zipfile.ZipFile('u.zip', 'w'); "
         "z.writestr('r\\u00e9sum\\u00e9.exe', 'MZ'); z.close()\" && "
         "cd u && LC_ALL=C.UTF-8 7z a -bd ../u.7z .");
    const char *files[] = {"u.zip", "u.7z"};
    cr_assert_not_null(setlocale(LC_CTYPE, "C.UTF-8"));
    for (size_t i = 0; i < 2; i++)
        s_expect_file(NULL, files[i], files[i], 1, "r\303\251sum\303\251.exe");
    cr_assert_not_null(setlocale(LC_CTYPE, "C"));
    for (size_t i = 0; i < 2; i++) {
        char *got = NULL;
        cr_expect_eq(s_scan_file(s_bl, files[i], files[i], &got), 2, "%s: %s",
                     files[i], got ? got : "passed");
        cr_expect(got && strstr(got, "has a name that cannot be read"), "%s",
                  got ? got : "-");
        free(got);
    }
}

Test(archive, password_zip_names_are_checked)
{
    s_make_files();
    s_sh("cd d && zip -qr -P secret ../locked.zip . && cd .. && "
         "zip -q -P secret locked2.zip clean.txt");
    s_expect_file(NULL, "locked.zip", "locked.zip", 1, "evil.exe");
    s_expect_file(NULL, "locked2.zip", "locked2.zip", 0, NULL);
}

Test(archive, tnef)
{
    char *exts[] = {"dat"};
    pm_attach_blocklist_t *dat = pm_attach_blocklist_new(exts, 1);
    size_t len;
    char *tnef = s_slurp(DATA "long-filename.tnef", &len);
    GString *s = g_string_new(HEAD "Content-Type: multipart/mixed; "
                                   "boundary=\"t\"\r\n\r\n--t\r\n"
                                   "Content-Type: application/ms-tnef; "
                                   "name=\"msg.tnef\"\r\n"
                                   "Content-Transfer-Encoding: base64\r\n\r\n");
    gchar *b64 = g_base64_encode((const guchar *)tnef, len);
    g_string_append_printf(s, "%s\r\n--t--\r\n", b64);
    pm_attach_hit_t hit = {0};
    cr_assert_eq(pm_attach_scan(dat, s->str, s->len, &hit, NULL), 1);
    /* The title comes first; the long name would have matched too. */
    cr_assert_str_eq(hit.filename, "ALLPRO~1.DAT");
    pm_attach_hit_clear(&hit);
    cr_assert_eq(pm_attach_scan(s_bl, s->str, s->len, NULL, NULL), 0);
    g_free(b64);
    g_string_free(s, TRUE);

    /* A TNEF part that libytnef cannot read is not a pass. */
    s = g_string_new(HEAD "Content-Type: application/ms-tnef\r\n"
                          "Content-Transfer-Encoding: base64\r\n\r\n");
    /* (libytnef takes a stream cut very short for a complete one.) */
    b64 = g_base64_encode((const guchar *)tnef, 1000);
    g_string_append_printf(s, "%s\r\n", b64);
    char *why = NULL;
    cr_assert_eq(pm_attach_scan(dat, s->str, s->len, NULL, &why), 2);
    cr_assert_str_eq(why, "TNEF could not be read in part "
                          "\"application/ms-tnef\"");
    free(why);
    g_free(b64);
    g_string_free(s, TRUE);
    g_free(tnef);
    pm_attach_blocklist_destroy(&dat);
}

static void
s_le(GByteArray *b, guint32 v, int bytes)
{
    for (int i = 0; i < bytes; i++) {
        guint8 c = (guint8)(v >> (8 * i));
        g_byte_array_append(b, &c, 1);
    }
}

/* One TNEF attribute at attachment level: id, size, data, checksum. */
static void
s_tnef_attr(GByteArray *b, guint32 id, const guint8 *data, guint32 n)
{
    guint32 sum = 0;
    for (guint32 i = 0; i < n; i++)
        sum += data[i];
    s_le(b, 2, 1);
    s_le(b, id, 4);
    s_le(b, n, 4);
    g_byte_array_append(b, data, n);
    s_le(b, sum & 0xffff, 2);
}

/* A TNEF stream of one attachment whose only name is its MAPI long file
 * name, the N bytes of UTF-16LE at NAME, and whose contents are the
 * DATA_LEN bytes at DATA (none when NULL). */
static GByteArray *
s_tnef_file(const guint8 *name, guint32 n, const guint8 *data, guint32 data_len)
{
    GByteArray *t = g_byte_array_new(), *m = g_byte_array_new();
    s_le(t, 0x223E9F78, 4); /* signature */
    s_le(t, 1, 2);          /* key */
    guint8 rend[14] = {0};
    s_tnef_attr(t, 0x00069002, rend, sizeof rend); /* attAttachRenddata */
    s_le(m, 1, 4);                                 /* one property */
    s_le(m, 0x001F, 2);                            /* PT_UNICODE */
    s_le(m, 0x3707, 2);                            /* PR_ATTACH_LONG_FILENAME */
    s_le(m, 1, 4);                                 /* one value */
    s_le(m, n, 4);
    g_byte_array_append(m, name, n);
    while (m->len % 4)
        s_le(m, 0, 1);
    s_tnef_attr(t, 0x00069005, m->data, m->len); /* attAttachment */
    if (data)
        s_tnef_attr(t, 0x0006800F, data, data_len); /* attAttachData */
    g_byte_array_free(m, TRUE);
    return t;
}

static GByteArray *
s_tnef_named(const guint8 *name, guint32 n)
{
    return s_tnef_file(name, n, NULL, 0);
}

static int
s_scan_tnef(const GByteArray *t, char **why)
{
    GString *s = g_string_new(HEAD "Content-Type: application/ms-tnef\r\n"
                                   "Content-Transfer-Encoding: base64\r\n\r\n");
    gchar *b64 = g_base64_encode(t->data, t->len);
    g_string_append_printf(s, "%s\r\n", b64);
    pm_attach_hit_t hit = {0};
    int rc = pm_attach_scan(s_bl, s->str, s->len, &hit, why);
    if (rc == 1)
        *why = strdup(hit.filename);
    pm_attach_hit_clear(&hit);
    g_free(b64);
    g_string_free(s, TRUE);
    return rc;
}

/* Names stored as UTF-16 (PT_UNICODE), the only names an attachment may
 * give: checked as the text libytnef makes of them (they were read as
 * garbage and passed), CJK ones whole (their UTF-8 is longer than their
 * UTF-16); one of an odd length is not UTF-16 and is never a pass. */
Test(archive, tnef_utf16_names)
{
    const guint8 ok[] = {'x', 0, '.', 0, 'e', 0, 'x', 0, 'e', 0, 0, 0};
    /* U+6587 U+4EF6 three times, ".exe" */
    guint8 cjk[24] = {0x87, 0x65, 0xF6, 0x4E, 0x87, 0x65, 0xF6, 0x4E,
                      0x87, 0x65, 0xF6, 0x4E, '.',  0,    'e',  0,
                      'x',  0,    'e',  0,    0,    0,    0,    0};
    const guint8 odd[] = {'x', 0, '.', 0, 'e', 0, 'x', 0, 'e'};
    const guint8 *names[] = {ok, cjk, odd};
    const guint32 lens[] = {sizeof ok, 22, sizeof odd};
    const int want_rc[] = {1, 1, 2};
    const char *want[] = {"x.exe",
                          "\xe6\x96\x87\xe4\xbb\xb6\xe6\x96\x87\xe4\xbb"
                          "\xb6\xe6\x96\x87\xe4\xbb\xb6.exe",
                          "TNEF could not be read"};
    for (size_t i = 0; i < 3; i++) {
        GByteArray *t = s_tnef_named(names[i], lens[i]);
        char *why = NULL;
        cr_expect_eq(s_scan_tnef(t, &why), want_rc[i], "%zu: %s", i,
                     why ? why : "passed");
        cr_expect(why && strstr(why, want[i]), "%zu: %s", i, why ? why : "-");
        free(why);
        g_byte_array_free(t, TRUE);
    }
}

/* A file inside winmail.dat is opened as one attached directly: a zip
 * there holding evil.exe is refused (its names went unchecked). */
Test(archive, archive_inside_tnef)
{
    s_make_files();
    s_sh("cd d && zip -qr ../x.zip .");
    size_t len;
    char *zip = s_slurp("x.zip", &len);
    const guint8 name[] = {'r', 0, '.', 0, 'd', 0, 'a', 0, 't', 0, 0, 0};
    GByteArray *t =
        s_tnef_file(name, sizeof name, (const guint8 *)zip, (guint32)len);
    char *why = NULL;
    cr_expect_eq(s_scan_tnef(t, &why), 1, "%s", why ? why : "passed");
    cr_expect_str_eq(why ? why : "-", "evil.exe");
    free(why);
    g_byte_array_free(t, TRUE);
    g_free(zip);
}

Test(attach, uuencoded_names)
{
    const char *msg = HEAD "Content-Type: text/plain\r\n\r\n"
                           "See below.\r\n\r\n"
                           "begin 644 invoice.exe\r\n"
                           "#34UH`\r\n`\r\nend\r\n";
    char name[64];
    cr_assert_eq(s_scan(msg, name, sizeof name), 1);
    cr_assert_str_eq(name, "invoice.exe");
    const char *b64 = HEAD "Content-Type: text/plain\r\n\r\n"
                           "begin-base64 755 run.js\r\nYQ==\r\n====\r\n";
    cr_assert_eq(s_scan(b64, name, sizeof name), 1);
    cr_assert_str_eq(name, "run.js");
    const char *harmless = HEAD "Content-Type: text/plain\r\n\r\n"
                                "begin 644 notes.txt\r\n"
                                "begin here, then run setup.exe\r\n"
                                "begin 9x9 a.exe\r\n"
                                " begin 644 b.exe\r\n";
    cr_assert_eq(s_scan(harmless, NULL, 0), 0);
    /* An x-uuencode part: GMime's decoder drops the begin line. */
    char *part = s_mixed("Content-Type: application/octet-stream\r\n");
    char *body = strstr(part, "Content-Transfer-Encoding: base64");
    cr_assert_not_null(body);
    *body = '\0';
    char *full = NULL;
    cr_assert(asprintf(&full,
                       "%sContent-Transfer-Encoding: x-uuencode\r\n\r\n"
                       "begin 644 tool.bat\r\n#34UH`\r\n`\r\nend\r\n"
                       "--b1--\r\n",
                       part) > 0);
    cr_assert_eq(s_scan(full, name, sizeof name), 1);
    cr_assert_str_eq(name, "tool.bat");
    free(full);
    free(part);
}

Test(attach, huge_header_field_is_cut_before_gmime_parses_it)
{
    /* GMime parses a field whole: a 10 MiB To: of a million addresses, or
     * a folded Content-Type of a million parameters, costs gigabytes and
     * minutes unless the input stops inside the field. */
    GString *to = g_string_new(HEAD "To: a@example.test");
    while (to->len < 10 * 1024 * 1024)
        g_string_append(to, ", a@example.test");
    g_string_append(to, "\r\n\r\nbody\r\n");
    GString *ct = g_string_new(HEAD "Content-Type: multipart/mixed; "
                                    "boundary=b");
    while (ct->len < 10 * 1024 * 1024)
        g_string_append(ct, ";\r\n a=b");
    g_string_append(ct, "\r\n\r\n--b\r\n\r\nx\r\n--b--\r\n");
    pm_attach_blocklist_t *empty = pm_attach_blocklist_new(NULL, 0);
    long before = s_maxrss_kib();
    char *why = NULL;
    cr_assert_eq(pm_attach_scan(empty, to->str, to->len, NULL, &why), 2);
    long grown = s_maxrss_kib() - before;
    cr_assert_str_eq(why, "more than 262144 bytes of header in one part");
    cr_assert_lt(grown, 64 * 1024, "the scan grew by %ld KiB", grown);
    free(why);
    why = NULL;
    cr_assert_eq(pm_attach_scan(empty, ct->str, ct->len, NULL, &why), 2);
    cr_assert_str_eq(why, "more than 262144 bytes of header in one part");
    free(why);
    pm_attach_blocklist_destroy(&empty);
    g_string_free(to, TRUE);
    g_string_free(ct, TRUE);
}
