/* test_notify.c - pm_notify: rendering, Message-IDs, and the addresses a
 * notice may go to (envelope addresses of hostile mail). */
#include "pm_notify.h"

#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

static char *s_rcpts[] = {"alice@node1.test", "bob@node1.test"};
static const pm_notice_t s_notice = {
    "virus", "Eicar", "s@remote.example", s_rcpts, 2, "4ABCDEF", "hi", 0};

static char *
s_header(const char *text, const char *name)
{
    const char *h = strstr(text, name);
    cr_assert_not_null(h, "%s in %s", name, text);
    const char *e = strstr(h, "\r\n");
    return strndup(h, (size_t)(e - h));
}

Test(notify, message_ids_are_unique_per_notice)
{
    char *a =
        pm_notify_render(&s_notice, "pm@node1.test", "alice@node1.test", false);
    char *b =
        pm_notify_render(&s_notice, "pm@node1.test", "alice@node1.test", false);
    char *c =
        pm_notify_render(&s_notice, "pm@node1.test", "admin@node1.test", true);
    char *ia = s_header(a, "Message-ID: "), *ib = s_header(b, "Message-ID: ");
    char *ic = s_header(c, "Message-ID: ");
    cr_assert_str_neq(ia, ib, "same notice twice: two ids");
    cr_assert_str_neq(ia, ic);
    cr_assert_not_null(strstr(ia, "4ABCDEF"), "%s", ia);
    cr_assert_eq(ia[strlen(ia) - 1], '>');
    free(ia);
    free(ib);
    free(ic);
    free(a);
    free(b);
    free(c);
}

Test(notify, usable_addresses)
{
    char *hdr = NULL;
    char *rcpt = pm_notify_address("alice@node1.test", &hdr);
    cr_assert_str_eq(rcpt, "alice@node1.test");
    cr_assert_str_eq(hdr, "alice@node1.test");
    free(rcpt);
    free(hdr);
    rcpt = pm_notify_address("first.last+tag@sub.node1.test", NULL);
    cr_assert_str_eq(rcpt, "first.last+tag@sub.node1.test");
    free(rcpt);
    char *t =
        pm_notify_render(&s_notice, "pm@node1.test", "alice@node1.test", false);
    cr_assert_not_null(strstr(t, "\r\nTo: alice@node1.test\r\n"));
    free(t);
}

Test(notify, unusable_addresses_are_refused)
{
    const char *bad[] = {"",
                         "nobody",
                         "a@",
                         "@node1.test",
                         "<alice@node1.test>",
                         "alice@node1.test\r\nBcc: x@evil.test",
                         "alice@node1.test\nRCPT TO:<x@evil.test>",
                         "alice@node1.test, bob@node1.test",
                         "Alice <alice@node1.test>",
                         "a\tb@node1.test",
                         "grp: a@node1.test;"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char *hdr = NULL;
        cr_assert_null(pm_notify_address(bad[i], &hdr), "'%s'", bad[i]);
        cr_assert_null(hdr);
        cr_assert_null(
            pm_notify_render(&s_notice, "pm@node1.test", bad[i], false),
            "'%s' rendered", bad[i]);
    }
    cr_assert_null(pm_notify_address(NULL, NULL));
    /* the notifier refuses to queue them (nothing listens: none is sent) */
    char *why = NULL;
    pm_notify_t *nt = pm_notify_new("127.0.0.1:1", "pm@node1.test", 100, &why);
    cr_assert_not_null(nt, "%s", why ? why : "");
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_assert_not(pm_notify_post(nt, &s_notice, bad[i], false), "'%s'",
                      bad[i]);
    uint64_t sent = 1, failed = 1;
    pm_notify_counts(nt, &sent, &failed);
    cr_assert_eq(sent + failed, 0);
    pm_notify_destroy(&nt);
}
