/* test_diag.c - pm_diag: the "ORIGIN:LINE: KEY: problem" lines every
 * validator reports through, and their printing in line order. */
#include <criterion/criterion.h>

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pm_diag.h"

/* Prints DIAG into a new string (caller frees). */
static char *
s_print(const pm_diag_t *diag)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    cr_assert_not_null(f);
    pm_diag_print(diag, f);
    cr_assert_eq(fclose(f), 0);
    return buf;
}

Test(diag, line_format_with_key_and_line)
{
    pm_diag_t *d = pm_diag_new("policy.yaml");
    pm_diag_add(d, 12, "antispam.tag_percent", "must be at most %d", 100);
    cr_assert_eq(pm_diag_count(d), 1);
    cr_expect_str_eq(pm_diag_line(d, 0),
                     "policy.yaml:12: antispam.tag_percent: must be at most "
                     "100");
    cr_expect_str_eq(pm_diag_key(d, 0), "antispam.tag_percent");
    cr_expect_str_eq(pm_diag_problem(d, 0), "must be at most 100");
    cr_expect_str_eq(pm_diag_origin(d), "policy.yaml");
    pm_diag_destroy(&d);
    cr_expect_null(d);
}

Test(diag, line_zero_is_left_out)
{
    pm_diag_t *d = pm_diag_new("command line");
    pm_diag_add(d, 0, "outbound.relay_host", "bad host");
    cr_expect_str_eq(pm_diag_line(d, 0),
                     "command line: outbound.relay_host: bad host");
    pm_diag_destroy(&d);
}

Test(diag, null_key_is_left_out)
{
    pm_diag_t *d = pm_diag_new("f.conf");
    pm_diag_add(d, 3, NULL, "expected 'name = value'");
    pm_diag_add(d, 0, NULL, "cannot open: %s", "No such file or directory");
    cr_expect_str_eq(pm_diag_line(d, 0), "f.conf:3: expected 'name = value'");
    cr_expect_str_eq(pm_diag_line(d, 1),
                     "f.conf: cannot open: No such file or directory");
    cr_expect_null(pm_diag_key(d, 0));
    cr_expect_str_eq(pm_diag_problem(d, 0), "expected 'name = value'");
    pm_diag_destroy(&d);
}

Test(diag, large_line_number)
{
    pm_diag_t *d = pm_diag_new("o");
    pm_diag_add(d, UINT_MAX, "k", "p");
    char want[64];
    snprintf(want, sizeof want, "o:%u: k: p", UINT_MAX);
    cr_expect_str_eq(pm_diag_line(d, 0), want);
    pm_diag_destroy(&d);
}

Test(diag, null_origin_and_out_of_range)
{
    pm_diag_t *d = pm_diag_new(NULL);
    cr_expect_str_eq(pm_diag_origin(d), "input");
    cr_expect_eq(pm_diag_count(d), 0);
    cr_expect_null(pm_diag_line(d, 0));
    cr_expect_null(pm_diag_key(d, 0));
    cr_expect_null(pm_diag_problem(d, 0));
    pm_diag_add(d, 1, "k", "p");
    cr_expect_null(pm_diag_line(d, 1));
    pm_diag_destroy(&d);
    pm_diag_destroy(&d); /* safe twice */
}

Test(diag, set_origin_applies_to_later_lines)
{
    pm_diag_t *d = pm_diag_new("a");
    pm_diag_add(d, 1, "k", "first");
    pm_diag_set_origin(d, "b");
    pm_diag_add(d, 2, "k", "second");
    cr_expect_str_eq(pm_diag_line(d, 0), "a:1: k: first");
    cr_expect_str_eq(pm_diag_line(d, 1), "b:2: k: second");
    cr_expect_str_eq(pm_diag_origin(d), "b");
    pm_diag_destroy(&d);
}

Test(diag, add_raw_keeps_text)
{
    pm_diag_t *d = pm_diag_new("local");
    pm_diag_add_raw(d, "remote:4: antispam.level: unknown level %s");
    cr_expect_str_eq(pm_diag_line(d, 0),
                     "remote:4: antispam.level: unknown level %s");
    cr_expect_null(pm_diag_key(d, 0));
    pm_diag_destroy(&d);
}

Test(diag, print_sorts_by_line_stably)
{
    pm_diag_t *d = pm_diag_new("p");
    pm_diag_add(d, 3, "c", "three");
    pm_diag_add(d, 1, "a", "one-first");
    pm_diag_add(d, 2, "b", "two");
    pm_diag_add(d, 1, "a", "one-second");
    pm_diag_add(d, 0, NULL, "no line");
    pm_diag_add(d, 3, "c", "three-again");
    pm_diag_add(d, 1, "a", "one-third");
    char *out = s_print(d);
    cr_expect_str_eq(out, "p: no line\n"
                          "p:1: a: one-first\n"
                          "p:1: a: one-second\n"
                          "p:1: a: one-third\n"
                          "p:2: b: two\n"
                          "p:3: c: three\n"
                          "p:3: c: three-again\n");
    free(out);
    /* printing does not reorder the list itself */
    cr_expect_str_eq(pm_diag_problem(d, 0), "three");
    cr_expect_str_eq(pm_diag_problem(d, 6), "one-third");
    pm_diag_destroy(&d);
}

Test(diag, print_empty_and_many)
{
    pm_diag_t *d = pm_diag_new("p");
    char *out = s_print(d);
    cr_expect_str_eq(out, "");
    free(out);
    /* more items than the initial capacity, in reverse line order */
    for (unsigned i = 40; i >= 1; i--)
        pm_diag_add(d, i, NULL, "n%u", i);
    cr_assert_eq(pm_diag_count(d), 40);
    out = s_print(d);
    char want[1024] = "";
    for (unsigned i = 1; i <= 40; i++)
        snprintf(want + strlen(want), sizeof want - strlen(want), "p:%u: n%u\n",
                 i, i);
    cr_expect_str_eq(out, want);
    free(out);
    pm_diag_destroy(&d);
}
