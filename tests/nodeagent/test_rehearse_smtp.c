/* test_rehearse_smtp.c - a policy test's SMTP answers read from swaks's
 * transcripts (as Postfix 3.7 and swaks 20201014 print them), and a
 * message made ready for DATA. */
#include "pm_error.h"
#include "pm_rehearse_smtp.h"

#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#define S_GREETING                                                             \
    "=== Trying 127.0.0.1:2599...\n"                                           \
    "=== Connected to 127.0.0.1.\n"                                            \
    "<-  220 mx1.test ESMTP\n"                                                 \
    " -> EHLO [192.0.2.1]\n"                                                   \
    "<-  250-mx1.test\n"                                                       \
    "<-  250-XCLIENT NAME ADDR PROTO HELO REVERSE_NAME PORT LOGIN\n"           \
    "<-  250 CHUNKING\n"                                                       \
    " -> XCLIENT ADDR=192.0.2.1 NAME=[UNAVAILABLE]\n"                          \
    "<-  220 mx1.test ESMTP\n"                                                 \
    " -> EHLO [192.0.2.1]\n"                                                   \
    "<-  250-mx1.test\n"                                                       \
    "<-  250 CHUNKING\n"                                                       \
    " -> MAIL FROM:<a@b.example>\n"                                            \
    "<-  250 2.1.0 Ok\n"                                                       \
    " -> RCPT TO:<root@mx1.test>\n"

static void
s_expect(const char *transcript, const char *stage, const char *reply)
{
    pm_rehearse_answer_t a;
    char *why = NULL;
    cr_assert_eq(pm_rehearse_smtp_parse(transcript, &a, &why), PM_OK, "%s",
                 why);
    cr_expect_str_eq(a.stage, stage);
    cr_expect_str_eq(a.reply, reply);
    pm_rehearse_answer_clear(&a);
}

Test(rehearse_smtp, refusal_at_rcpt_names_its_stage)
{
    s_expect(S_GREETING "<** 504 5.5.2 <foo>: Helo command rejected: need "
                        "fully-qualified hostname\n -> QUIT\n<-  221 2.0.0 "
                        "Bye\n",
             "rcpt",
             "504 5.5.2 <foo>: Helo command rejected: need fully-qualified "
             "hostname");
}

Test(rehearse_smtp, answer_at_the_end_of_data)
{
    s_expect(S_GREETING "<-  250 2.1.5 Ok\n -> DATA\n<-  354 End data with "
                        "<CR><LF>.<CR><LF>\n -> 7 lines sent\n<-  250 2.0.0 "
                        "Ok: queued as 02388A9A026\n -> QUIT\n<-  221 Bye\n",
             "end-of-data", "250 2.0.0 Ok: queued as 02388A9A026");
    /* the filter's refusal, over two lines */
    s_expect(S_GREETING "<-  250 2.1.5 Ok\n -> DATA\n<-  354 go ahead\n"
                        " -> 9 lines sent\n<** 554-5.7.1 blocked attachment\n"
                        "<** 554 5.7.1 report.iso\n",
             "end-of-data", "554 5.7.1 blocked attachment 5.7.1 report.iso");
}

Test(rehearse_smtp, refusals_before_rcpt)
{
    s_expect("<** 554 5.7.1 no service\n", "connect", "554 5.7.1 no service");
    s_expect("<-  220 x ESMTP\n -> EHLO a\n<-  250 x\n -> XCLIENT ADDR=1\n"
             "<** 550 5.7.0 Error: insufficient authorization\n",
             "connect", "550 5.7.0 Error: insufficient authorization");
    s_expect("<-  220 x\n -> EHLO a\n<-  250 x\n -> MAIL FROM:<a@b>\n"
             "<** 553 5.1.8 Domain not found\n",
             "mail", "553 5.1.8 Domain not found");
    s_expect(S_GREETING "<-  250 2.1.5 Ok\n -> DATA\n<** 554 5.5.1 Error: no "
                        "valid recipients\n",
             "data", "554 5.5.1 Error: no valid recipients");
}

Test(rehearse_smtp, no_answer_is_an_error)
{
    pm_rehearse_answer_t a;
    char *why = NULL;
    cr_assert_eq(pm_rehearse_smtp_parse("=== Trying 127.0.0.1:1...\n*** "
                                        "Error connecting to 127.0.0.1:1: "
                                        "Connection refused\n",
                                        &a, &why),
                 PM_EPROTO);
    cr_expect(strstr(why, "Connection refused"), "%s", why);
    free(why);
    why = NULL;
    cr_assert_eq(pm_rehearse_smtp_parse(S_GREETING, &a, &why), PM_EPROTO);
    cr_expect(strstr(why, "ends early"), "%s", why);
    free(why);
}

Test(rehearse_smtp, data_is_crlf_dot_stuffed_and_terminated)
{
    const char in[] = "Subject: x\n\n.hidden\r\nlast";
    size_t len = 0;
    char *out = pm_rehearse_smtp_data(in, sizeof in - 1, &len);
    const char want[] = "Subject: x\r\n\r\n..hidden\r\nlast\r\n.\r\n";
    cr_assert_eq(len, sizeof want - 1);
    cr_expect_eq(memcmp(out, want, len), 0, "%.*s", (int)len, out);
    free(out);
    out = pm_rehearse_smtp_data("", 0, &len);
    cr_expect_eq(len, 3);
    cr_expect_eq(memcmp(out, ".\r\n", 3), 0);
    free(out);
}
