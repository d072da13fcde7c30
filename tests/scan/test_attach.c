/* test_attach.c - pm_attach: blocked extensions in real MIME messages, at
 * every level, with RFC 2231 and RFC 2047 names. */
#include "pm_attach.h"

#include <criterion/criterion.h>
#include <glib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
    if (rc == -1)
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
        cr_assert(rc >= -1 && rc <= 1);
        cr_assert((rc == -1) == (why != NULL));
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

Test(attach, deep_nesting_is_an_error)
{
    /* 200 nested multiparts: deeper than anything looked at. */
    size_t depth = 200, cap = 64 * 1024, off = 0;
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
    char *why = NULL;
    int rc = pm_attach_scan(s_bl, msg, off, NULL, &why);
    /* Either the name is still found or the scan says it cannot tell:
     * never a pass. */
    cr_assert_neq(rc, 0, "deep message passed");
    if (rc == -1)
        cr_assert_not_null(strstr(why, "nesting"), "%s", why);
    free(why);
    free(msg);
}
