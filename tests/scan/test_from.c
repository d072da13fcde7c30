/* test_from.c - pm_from: From headers as the DKIM forged-mail rule and
 * the signer read them (GMime's parser), hostile spellings included. */
#include "pm_from.h"

#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

/* Parses the From values (NULL-terminated list) into *f. */
#define S_PARSE(f, ...)                                                        \
    do {                                                                       \
        const char *v_[] = {__VA_ARGS__, NULL};                                \
        size_t n_ = 0;                                                         \
        while (v_[n_])                                                         \
            n_++;                                                              \
        pm_from_parse(v_, n_, (f));                                            \
    } while (0)

/* One clean mailbox in DOMAIN. */
static void
s_one(const char *value, const char *domain)
{
    pm_from_t f;
    S_PARSE(&f, value);
    cr_assert_eq(f.kind, PM_FROM_ONE, "'%s': %s", value,
                 f.problem ? f.problem : "");
    cr_assert_str_eq(f.domain, domain, "'%s'", value);
    cr_assert(pm_from_names(&f, domain), "'%s'", value);
    pm_from_clear(&f);
}

/* Not one clean mailbox, yet it names DOMAIN. */
static void
s_ambiguous(const char *value, const char *domain)
{
    pm_from_t f;
    S_PARSE(&f, value);
    cr_assert_eq(f.kind, PM_FROM_AMBIGUOUS, "'%s' -> %s", value,
                 f.domain ? f.domain : "");
    cr_assert_not_null(f.problem);
    cr_assert_null(f.domain);
    cr_assert(pm_from_names(&f, domain), "'%s' names %s", value, domain);
    cr_log_info("'%s': %s", value, f.problem);
    pm_from_clear(&f);
}

Test(from, legit_mailboxes)
{
    s_one("ceo@bank.com", "bank.com");
    s_one("CEO@Bank.COM.", "bank.com");
    s_one("\"Boss, The\" <ceo@bank.com>", "bank.com");
    s_one("Boss <ceo@bank.com> (the boss)", "bank.com");
    s_one("=?UTF-8?B?QsO2c3M=?= <ceo@bank.com>", "bank.com");
    s_one("Boss\r\n <ceo@bank.com>", "bank.com");
    pm_from_t f;
    S_PARSE(&f, "a@elsewhere.test");
    cr_assert_not(pm_from_names(&f, "bank.com"));
    cr_assert_not(pm_from_names(&f, "test"));
    cr_assert_not(pm_from_names(&f, "where.test"));
    pm_from_clear(&f);
}

/* Spellings that used to slip past the rule: GMime reads them as the
 * mailbox ceo@bank.com, which then needs bank.com's signature. */
Test(from, hostile_spellings_are_the_mailbox)
{
    const char *v[] = {"ceo@ bank.com",
                       "ceo@(x)bank.com",
                       "ceo@\r\n bank.com",
                       "ceo@\n\tbank.com",
                       "<ceo @ bank.com>",
                       "Boss <ceo @ bank.com>",
                       "ceo@bank.com (x)",
                       "ceo@bank.com.",
                       "ceo@bank.com, ",
                       "ceo@bank.com@evil.test",
                       NULL};
    for (size_t i = 0; v[i]; i++) {
        pm_from_t f;
        S_PARSE(&f, v[i]);
        cr_log_info("'%s': kind %d domain %s problem %s", v[i], f.kind,
                    f.domain ? f.domain : "-", f.problem ? f.problem : "-");
        cr_assert(pm_from_names(&f, "bank.com"), "'%s' names bank.com", v[i]);
        cr_assert(f.kind == PM_FROM_AMBIGUOUS ||
                      strcmp(f.domain, "bank.com") == 0,
                  "'%s': one mailbox, and it is in bank.com", v[i]);
        pm_from_clear(&f);
    }
}

Test(from, not_exactly_one_mailbox)
{
    s_ambiguous("ceo@bank.com, x@evil.test", "bank.com");
    s_ambiguous("x@evil.test, ceo@bank.com", "bank.com");
    s_ambiguous("Staff: ceo@bank.com;", "bank.com");
    s_ambiguous("Staff: ;", "staff"); /* only by text */
    s_ambiguous("bank.com", "bank.com");
    s_ambiguous("ceo", "ceo");
    s_ambiguous("=?UTF-8?Q?ceo=40bank.com?=", "bank.com");
    s_ambiguous("\"ceo@bank.com\"", "bank.com"); /* a local part only */
    pm_from_t f;
    S_PARSE(&f, "ceo@bank.com", "x@evil.test");
    cr_assert_eq(f.kind, PM_FROM_AMBIGUOUS);
    cr_assert_str_eq(f.problem, "2 From headers");
    cr_assert(pm_from_names(&f, "bank.com"));
    cr_assert(pm_from_names(&f, "evil.test"));
    pm_from_clear(&f);
    /* an ambiguous From that does not name the domain */
    S_PARSE(&f, "a@x.test, b@y.test");
    cr_assert_str_eq(f.problem, "2 mailboxes in From");
    cr_assert_not(pm_from_names(&f, "bank.com"));
    cr_assert_not(pm_from_names(&f, "test"));
    pm_from_clear(&f);
    /* a comment or quote left open never reaches GMime (3.2.13 leaks the
     * address before it), nor a domain literal it would read otherwise
     * than this scan: ambiguous, judged by the text */
    const char *open[] = {"Tx@[e](\\",
                          "ceo@bank.com (x",
                          "ceo@bank.com (a(b)",
                          "\"ceo <ceo@bank.com>",
                          "Tx@[e\"x_@ev](\\m\377mple\"",
                          "ceo@[bank.com",
                          "ceo@[a(b)]",
                          "ceo@[a\\]b]"};
    for (size_t i = 0; i < sizeof open / sizeof *open; i++) {
        S_PARSE(&f, open[i]);
        cr_assert_eq(f.kind, PM_FROM_AMBIGUOUS, "%s", open[i]);
        cr_assert_str_eq(f.problem, "a comment, quoted string or domain "
                                    "literal left open or malformed in From");
        cr_assert_eq(f.n_domains, 0);
        pm_from_clear(&f);
    }
    S_PARSE(&f, "ceo@bank.com (x");
    cr_assert(pm_from_names(&f, "bank.com"));
    pm_from_clear(&f);
    /* comments are not what a reader sees, a subdomain is not the domain */
    S_PARSE(&f, "a@x.test (bank.com), b@mail.bank.com");
    cr_assert_not(pm_from_names(&f, "bank.com"));
    pm_from_clear(&f);
}

/* An address in the display name of one clean mailbox still counts (the
 * rule always checked every "@domain" in From). */
Test(from, address_in_display_name)
{
    pm_from_t f;
    S_PARSE(&f, "\"ceo@bank.com\" <x@evil.test>");
    cr_assert_eq(f.kind, PM_FROM_ONE);
    cr_assert_str_eq(f.domain, "evil.test");
    cr_assert(pm_from_names(&f, "bank.com"));
    pm_from_clear(&f);
    S_PARSE(&f, "\"bank.com news\" <x@evil.test>");
    cr_assert_not(pm_from_names(&f, "bank.com"), "no '@': a name only");
    pm_from_clear(&f);
}

Test(from, none_and_garbage)
{
    pm_from_t f;
    pm_from_parse(NULL, 0, &f);
    cr_assert_eq(f.kind, PM_FROM_NONE);
    cr_assert_not(pm_from_names(&f, "bank.com"));
    pm_from_clear(&f);
    pm_from_clear(&f);
    const char *junk[] = {"",     "<>", "@",      "<@bank.com>", "((((",
                          "\"\\", "a@", "=?x?q?", ":;,<>@()"};
    for (size_t i = 0; i < sizeof junk / sizeof junk[0]; i++) {
        pm_from_parse(&junk[i], 1, &f);
        cr_assert_neq(f.kind, PM_FROM_NONE);
        pm_from_clear(&f);
    }
}
