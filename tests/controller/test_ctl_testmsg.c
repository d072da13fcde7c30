/* test_ctl_testmsg.c - pm_ctl_testmsg: what `policy test` takes for a
 * message, the envelope it reads from one, and when two answers are the
 * same. */
#include "pm_conf.h"
#include "pm_ctl_testmsg.h"

#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

/* Asserts TEXT is refused with exactly WANT. */
static void
s_refused(const char *text, size_t len, const char *want)
{
    char *why = pm_ctl_testmsg_check(text, len);
    cr_assert_not_null(why, "accepted, want: %s", want);
    cr_expect_str_eq(why, want);
    free(why);
}

static void
s_accepted(const char *text)
{
    char *why = pm_ctl_testmsg_check(text, strlen(text));
    cr_expect_null(why, "%s: %s", text, why);
    free(why);
}

Test(ctl_testmsg, messages_accepted)
{
    s_accepted("From: a@example.test\r\nTo: b@example.test\r\n\r\nhi\r\n");
    s_accepted("From: a@example.test\nSubject: hi\n\nbody\n");
    /* folded fields, an empty value, no body at all */
    s_accepted("Subject: a\r\n long\r\n\tsubject\r\nX-Empty:\r\n");
    s_accepted("Received: from x\n  by y;\n  Mon, 1 Jan 2026\n\n\x80 8bit\n");
    /* a body may hold anything but NUL */
    s_accepted("Subject: x\n\nnot: a header\n \n");
}

Test(ctl_testmsg, non_messages_refused)
{
    s_refused("", 0, "not a mail message: the file is empty");
    static const char jpeg[] = "\xff\xd8\xff\xe0\0\x10JFIF";
    s_refused(jpeg, sizeof jpeg - 1,
              "not a mail message: a NUL byte at byte 4 (a binary file?)");
    s_refused("\xff\xd8\xff\xe0 JFIF", 9,
              "not a mail message: line 1 is not a header "
              "(\"\\xff\\xd8\\xff\\xe0 JFIF\")");
    s_refused("\r\nhello", 7,
              "not a mail message: line 1 is empty, where the header "
              "should start");
    s_refused("Hello Bob,\r\n\r\nhow are you?\r\n", 28,
              "not a mail message: line 1 is not a header (\"Hello Bob,\")");
    /* a continuation line needs a field before it */
    s_refused(" Subject: x\n\n", 13,
              "not a mail message: line 1 is not a header (\" Subject: "
              "x\")");
    /* a name is printable ASCII, and a ':' ends it */
    s_refused("Subject: x\nBad Name: y\n\n", 24,
              "not a mail message: line 2 is not a header (\"Bad Name: "
              "y\")");
    s_refused("Subject: x\n: y\n\n", 16,
              "not a mail message: line 2 is not a header (\": y\")");
    /* an mbox separator is named; a long line is cut short */
    s_refused("From alice@example.test Mon Jan  1 00:00:00 2026\n"
              "From: alice@example.test\n\nhi\n",
              78,
              "not a mail message: line 1 is not a header (\"From "
              "alice@example.test Mon Jan  1 00:00...\"): an mbox separator; "
              "give the message alone, as a .eml file");
    /* a NUL in the body is refused too: SMTP cannot carry it */
    static const char nul_body[] = "Subject: x\n\nab\0c";
    s_refused(nul_body, sizeof nul_body - 1,
              "not a mail message: a NUL byte at byte 14 (a binary file?)");
}

/* Runs pm_ctl_testmsg_envelope on TEXT; *rcpts as one line. */
static char *
s_envelope(const char *text, char **line)
{
    char *from = NULL, **rcpts = NULL;
    size_t n = 99;
    pm_ctl_testmsg_envelope(text, strlen(text), &from, &rcpts, &n);
    size_t size = 1;
    for (size_t i = 0; i < n; i++)
        size += strlen(rcpts[i]) + 1;
    *line = calloc(1, size);
    for (size_t i = 0; i < n; i++) {
        strcat(*line, i ? " " : "");
        strcat(*line, rcpts[i]);
    }
    cr_expect(n == 0 ? rcpts == NULL : rcpts[n] == NULL);
    pm_conf_list_free(&rcpts);
    return from;
}

Test(ctl_testmsg, envelope_from_headers)
{
    char *rcpts = NULL;
    char *from =
        s_envelope("From: \"Alice A.\" <alice@Example.test>\r\n"
                   "To: bob@example.test, \"C\" <carol@example.test>"
                   ",\r\n  dave@example.test\r\n"
                   "Cc: eve@example.test\r\n"
                   "to: team: frank@example.test, BOB@example.test;\r\n"
                   "\r\n"
                   "To: not@a.header.test\r\n",
                   &rcpts);
    cr_expect_str_eq(from, "alice@Example.test");
    /* To: only (Cc is not), folded, groups' members, each once, nothing
     * from the body */
    cr_expect_str_eq(rcpts, "bob@example.test carol@example.test "
                            "dave@example.test frank@example.test");
    free(from);
    free(rcpts);

    /* none: no From, no To */
    from = s_envelope("Subject: x\n\nbody\n", &rcpts);
    cr_expect_null(from);
    cr_expect_str_eq(rcpts, "");
    free(rcpts);
    /* a From with no domain, an undisclosed-recipients group */
    from = s_envelope("From: nobody\nTo: undisclosed-recipients:;, bob\n\n",
                      &rcpts);
    cr_expect_null(from, "%s", from);
    cr_expect_str_eq(rcpts, "");
    free(from);
    free(rcpts);
    /* the first From's first mailbox; an IDN domain in its ASCII form */
    from = s_envelope("From: a@example.test, b@example.test\n"
                      "From: c@example.test\n"
                      "To: =?utf-8?q?J=C3=B6rg?= <jorg@b\xc3\xbc"
                      "cher.example>\n\n",
                      &rcpts);
    cr_expect_str_eq(from, "a@example.test");
    cr_expect_str_eq(rcpts, "jorg@xn--bcher-kva.example");
    free(from);
    free(rcpts);
}

Test(ctl_testmsg, same_answer)
{
    Pm__TestResult a = PM__TEST_RESULT__INIT, b = PM__TEST_RESULT__INIT;
    a.verdict = b.verdict = (char *)"accepted";
    a.reply = (char *)"250 2.0.0 Ok: queued as 4XyzAbC12";
    b.reply = (char *)"250 2.0.0 Ok: queued as 4XyzZZZ99";
    cr_expect(pm_ctl_testmsg_same(&a, &b), "queue ids differ, nothing else");
    b.reply = (char *)"554 5.7.1 Rejected";
    b.verdict = (char *)"rejected";
    b.key = (char *)"inbound.blocked_extensions";
    cr_expect_not(pm_ctl_testmsg_same(&a, &b));
    /* the same code and verdict, another key */
    a.reply = (char *)"554 5.7.1 Virus found";
    a.verdict = (char *)"rejected";
    a.key = (char *)"antivirus.enabled";
    cr_expect_not(pm_ctl_testmsg_same(&a, &b));
    a.key = (char *)"inbound.blocked_extensions";
    cr_expect(pm_ctl_testmsg_same(&a, &b));
    /* the same verdict, another code */
    a.reply = (char *)"550 5.7.1 Rejected";
    cr_expect_not(pm_ctl_testmsg_same(&a, &b));
    /* a tempfail is not a reject */
    a.reply = (char *)"554 4.7.1 x";
    a.verdict = (char *)"tempfailed";
    cr_expect_not(pm_ctl_testmsg_same(&a, &b));
    a.reply = b.reply = (char *)"";
    a.verdict = b.verdict = (char *)"tempfailed";
    cr_expect(pm_ctl_testmsg_same(&a, &b));
}
