/* test_pf_rejects.c - Postfix's own refusals read from its log (lines as
 * Postfix 3.7 writes them) and kept as decision records: parsed, named by
 * policy key, followed across a rotation, never imported from before. */
#include "pm_declog.h"
#include "pm_error.h"
#include "pm_pf_rejects.h"
#include "testdir.h"

#include <criterion/criterion.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define S_RELAY                                                                \
    "Dec 02 14:20:07 mx1 postfix/smtpd[8351]: NOQUEUE: reject: RCPT from "     \
    "unknown[192.0.2.1]: 454 4.7.1 <x@elsewhere.example>: Relay access "       \
    "denied; from=<a@b.example> to=<x@elsewhere.example> proto=ESMTP "         \
    "helo=<foo.example.com>\n"
#define S_HELO                                                                 \
    "Dec 02 14:21:00 mx1 postfix/submission/smtpd[9]: NOQUEUE: reject: RCPT "  \
    "from mail.example[2001:db8::1]: 501 5.5.2 <bad_name!>: Helo command "     \
    "rejected: Invalid name; from=<> to=<root@mx1.test> proto=ESMTP "          \
    "helo=<bad_name!>\n"
#define S_MILTER                                                               \
    "Dec 02 14:22:00 mx1 postfix/cleanup[77]: 4XyZ: milter-reject: "           \
    "END-OF-MESSAGE from unknown[192.0.2.1]: 5.7.1 blocked; from=<a@b> "       \
    "to=<c@d> proto=ESMTP helo=<h>\n"

Test(pf_rejects, a_relay_refusal_parsed)
{
    pm_pf_reject_t r;
    cr_assert(pm_pf_reject_parse(S_RELAY, &r));
    cr_expect_str_eq(r.queue_id, "NOQUEUE");
    cr_expect_str_eq(r.stage, "RCPT");
    cr_expect_str_eq(r.client, "unknown[192.0.2.1]");
    cr_expect_str_eq(r.reply,
                     "454 4.7.1 <x@elsewhere.example>: Relay access denied");
    cr_expect_str_eq(r.from, "a@b.example");
    cr_expect_str_eq(r.to, "x@elsewhere.example");
    cr_expect_str_eq(r.helo, "foo.example.com");
    pm_pf_reject_clear(&r);
    cr_assert(pm_pf_reject_parse(S_HELO, &r));
    cr_expect_str_eq(r.client, "mail.example[2001:db8::1]");
    cr_expect_str_eq(r.from, "");
    pm_pf_reject_clear(&r);
}

Test(pf_rejects, other_lines_are_not_refusals)
{
    pm_pf_reject_t r;
    cr_expect_not(pm_pf_reject_parse(S_MILTER, &r));
    cr_expect_not(pm_pf_reject_parse("Dec 02 14:20:07 mx1 postfix/qmgr[1]: "
                                     "4XyZ: removed",
                                     &r));
    cr_expect_not(pm_pf_reject_parse("Dec 02 mx1 postfix/smtpd[1]: NOQUEUE: "
                                     "reject: RCPT from x: cut short",
                                     &r));
    cr_expect_not(pm_pf_reject_parse("", &r));
}

Test(pf_rejects, refusals_named_by_key)
{
    cr_expect_str_eq(pm_pf_reject_key("454 4.7.1 <x@y>: Relay access denied"),
                     "outbound.mynetworks");
    cr_expect_str_eq(pm_pf_reject_key("501 5.5.2 <a_b>: Helo command "
                                      "rejected: Invalid name"),
                     "inbound.checks.helo_valid");
    cr_expect_str_eq(pm_pf_reject_key("504 5.5.2 <foo>: Helo command "
                                      "rejected: need fully-qualified "
                                      "hostname"),
                     "inbound.checks.helo_fqdn");
    cr_expect_str_eq(pm_pf_reject_key("450 4.7.25 Client host rejected: "
                                      "cannot find your reverse hostname,"
                                      " [192.0.2.1]"),
                     "inbound.checks.reverse_client_hostname");
    cr_expect_str_eq(pm_pf_reject_key("450 4.1.8 <a@nowhere.invalid>: "
                                      "Sender address rejected: Domain "
                                      "not found"),
                     "inbound.checks.sender_domain");
    cr_expect_null(pm_pf_reject_key("452 4.3.1 Insufficient system "
                                    "storage"));
}

typedef struct {
    size_t n;
    char keys[8][64];
} s_seen_t;

static void
s_collect(const json_t *rec, void *arg)
{
    s_seen_t *s = arg;
    if (s->n < 8)
        snprintf(s->keys[s->n], sizeof s->keys[0], "%s",
                 json_string_value(json_object_get(rec, "key")));
    s->n++;
}

static s_seen_t
s_query(const char *dir)
{
    s_seen_t seen = {0};
    pm_declog_query_t q = {0};
    char *why = NULL;
    cr_assert_eq(pm_declog_query(dir, PM_DECLOG_BYTES_MAX, &q, s_collect, &seen,
                                 NULL, &why),
                 PM_OK, "%s", why);
    return seen;
}

static char *
s_dir(void)
{
    char *dir = strdup("/tmp/pm-test-pf-rejects.XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    return dir;
}

static void
s_append(const char *path, const char *text)
{
    FILE *f = fopen(path, "a");
    cr_assert_not_null(f);
    fputs(text, f);
    fclose(f);
}

Test(pf_rejects, followed_from_its_end_across_a_rotation)
{
    char *dir = s_dir();
    char log[512], rec[512];
    snprintf(log, sizeof log, "%s/maillog", dir);
    snprintf(rec, sizeof rec, "%s/decisions", dir);
    s_append(log, S_RELAY); /* before: history, not imported */
    char *why = NULL;
    pm_pf_rejects_t *p = pm_pf_rejects_new(log, NULL, rec, 1000, 1 << 20, &why);
    cr_assert_not_null(p, "%s", why);
    cr_expect_eq(pm_pf_rejects_poll(p, 3, 1700000000), 0);
    s_append(log, S_HELO);
    s_append(log, S_MILTER);
    s_append(log, "Dec 02 14:23:00 mx1 postfix/smtpd[1]: NOQUEUE: rej");
    cr_expect_eq(pm_pf_rejects_poll(p, 3, 1700000001), 1);
    s_seen_t seen = s_query(rec);
    cr_assert_eq(seen.n, 1);
    cr_expect_str_eq(seen.keys[0], "inbound.checks.helo_valid");
    /* the half line is finished, then the log is rotated */
    s_append(log, "ect: RCPT from unknown[192.0.2.9]: 554 5.7.1 <q@r>: Relay "
                  "access denied; from=<s@t> to=<q@r> proto=SMTP helo=<h>\n");
    cr_expect_eq(pm_pf_rejects_poll(p, 4, 1700000002), 1);
    char old[600];
    snprintf(old, sizeof old, "%s.1", log);
    cr_assert_eq(rename(log, old), 0);
    s_append(log, S_RELAY);
    cr_expect_eq(pm_pf_rejects_poll(p, 4, 1700000003), 1);
    seen = s_query(rec);
    cr_assert_eq(seen.n, 3);
    cr_expect_str_eq(seen.keys[0], "outbound.mynetworks"); /* newest first */
    cr_expect_str_eq(seen.keys[2], "inbound.checks.helo_valid");
    pm_pf_rejects_destroy(&p);
    testdir_remove(dir);
    free(dir);
}

Test(pf_rejects, a_missing_log_is_no_error)
{
    char *dir = s_dir();
    char log[512], rec[512];
    snprintf(log, sizeof log, "%s/none", dir);
    snprintf(rec, sizeof rec, "%s/decisions", dir);
    char *why = NULL;
    pm_pf_rejects_t *p = pm_pf_rejects_new(log, NULL, rec, 1000, 1 << 20, &why);
    cr_assert_not_null(p, "%s", why);
    cr_expect_eq(pm_pf_rejects_poll(p, 1, 1700000000), 0);
    cr_expect_eq(symlink("/etc/passwd", log), 0);
    cr_expect_eq(pm_pf_rejects_poll(p, 1, 1700000000), 0, "a link is not read");
    pm_pf_rejects_destroy(&p);
    testdir_remove(dir);
    free(dir);
}
