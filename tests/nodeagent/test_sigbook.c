/* test_sigbook.c - cool-downs and distrust, each until a deadline. */
#include <criterion/criterion.h>

#include "pm_sigbook.h"
#include "pm_wire.h"

#include <stdlib.h>

#define M "https://database.clamav.net"

Test(sigbook, the_later_cooldown_wins_and_only_news_counts)
{
    pm_sigbook_t *b = pm_sigbook_new();
    time_t now = time(NULL);
    cr_assert_eq(pm_sigbook_cool_until(b, M), 0);
    cr_assert(pm_sigbook_cool(b, M, 429, now + 120, "n1"));
    cr_assert_eq(pm_sigbook_cool_until(b, M), now + 120);
    /* the same again, or earlier: no news, nothing changes */
    cr_assert_not(pm_sigbook_cool(b, M, 429, now + 120, "n2"));
    cr_assert_not(pm_sigbook_cool(b, M, 429, now + 60, "n2"));
    cr_assert_eq(pm_sigbook_cool_until(b, M), now + 120);
    /* later: news, with who was told */
    cr_assert(pm_sigbook_cool(b, M, 403, now + 3600, "n3"));
    size_t n = 0;
    Pm__Cooldown **c = pm_sigbook_cooldowns(b, &n);
    cr_assert_eq(n, 1);
    cr_assert_str_eq(c[0]->mirror, M);
    cr_assert_eq(c[0]->http_status, 403);
    cr_assert_eq(c[0]->until, now + 3600);
    cr_assert_str_eq(c[0]->node, "n3");
    pm__cooldown__free_unpacked(c[0], NULL);
    free(c);
    pm_sigbook_destroy(&b);
    cr_assert_null(b);
    pm_sigbook_destroy(&b); /* safe twice */
}

Test(sigbook, a_deadline_past_or_too_far_is_not_taken_as_given)
{
    pm_sigbook_t *b = pm_sigbook_new();
    time_t now = time(NULL);
    cr_assert_not(pm_sigbook_cool(b, M, 429, now - 1, "n1"));
    cr_assert_not(pm_sigbook_cool(b, "", 429, now + 60, "n1"));
    cr_assert_eq(pm_sigbook_cool_until(b, M), 0);
    /* a year: cut to PM_WIRE_COOLDOWN_MAX from now */
    cr_assert(pm_sigbook_cool(b, M, 403, now + 365 * 86400, "liar"));
    time_t until = pm_sigbook_cool_until(b, M);
    cr_assert_geq(until, now + PM_WIRE_COOLDOWN_MAX);
    cr_assert_leq(until, time(NULL) + PM_WIRE_COOLDOWN_MAX);
    pm_sigbook_destroy(&b);
}

Test(sigbook, distrust_lasts_until_its_deadline)
{
    pm_sigbook_t *b = pm_sigbook_new();
    cr_assert_not(pm_sigbook_distrusted(b, "evil"));
    pm_sigbook_distrust(b, "evil", 600, "test.cvd version 6: bad signature");
    pm_sigbook_distrust(b, "gone", -1, "already over");
    cr_assert(pm_sigbook_distrusted(b, "evil"));
    cr_assert_not(pm_sigbook_distrusted(b, "gone"));
    cr_assert_not(pm_sigbook_distrusted(b, "good"));
    size_t n = 0;
    Pm__Distrust **d = pm_sigbook_distrusts(b, &n);
    cr_assert_eq(n, 2); /* "gone" stays listed until expired */
    for (size_t i = 0; i < n; i++)
        pm__distrust__free_unpacked(d[i], NULL);
    free(d);
    pm_sigbook_expire(b);
    d = pm_sigbook_distrusts(b, &n);
    cr_assert_eq(n, 1);
    cr_assert_str_eq(d[0]->peer, "evil");
    cr_assert_str_eq(d[0]->reason, "test.cvd version 6: bad signature");
    pm__distrust__free_unpacked(d[0], NULL);
    free(d);
    pm_sigbook_destroy(&b);
}
