/* test_duty.c - fetch duties (rendezvous hashing) and cluster cool-downs.
 *
 * Names: with members mx1, mx2, mx3 and the default databases main, daily
 * and bytecode, sha256 puts main on mx1 and daily and bytecode on mx3, so
 * the duties are not all on one node; with test, daily and main each node
 * holds one (test on mx2, daily on mx3, main on mx1). The tests check
 * those spreads rather than trust them.
 */
#include <criterion/criterion.h>

#include <stdio.h>
#include <string.h>

#include "pm_duty.h"

#define S_MAX 64

typedef struct {
    Pm__Member m[S_MAX];
    Pm__Member *p[S_MAX];
    char names[S_MAX][24];
    size_t n;
} s_cluster_t;

/* N live members named mx1..mxN. */
static void
s_cluster(s_cluster_t *c, size_t n)
{
    cr_assert_leq(n, S_MAX);
    c->n = n;
    for (size_t i = 0; i < n; i++) {
        pm__member__init(&c->m[i]);
        snprintf(c->names[i], sizeof c->names[i], "mx%zu", i + 1);
        c->m[i].name = c->names[i];
        c->m[i].live = true;
        c->p[i] = &c->m[i];
    }
}

/* The name of DATABASE's holder, or NULL. */
static const char *
s_holder(const s_cluster_t *c, const char *database)
{
    long h = pm_duty_holder(database, c->p, c->n);
    return h < 0 ? NULL : c->p[h]->name;
}

Test(duty, weight_is_sha256_prefix)
{
    /* sha256("daily\0mx1") starts with these 8 bytes (python hashlib) */
    cr_expect_eq(pm_duty_weight("daily", "mx1"), 0xc6d69e1c6e77a5d8ull);
    cr_expect_neq(pm_duty_weight("ab", "c"), pm_duty_weight("a", "bc"));
    cr_expect_neq(pm_duty_weight("daily", "mx1"),
                  pm_duty_weight("daily", "mx2"));
}

Test(duty, holder_is_deterministic_and_order_free)
{
    static const char *const dbs[] = {"main", "daily", "bytecode", "test"};
    s_cluster_t a, b;
    s_cluster(&a, 5);
    s_cluster(&b, 5);
    /* the same members in the reverse order */
    for (size_t i = 0; i < b.n; i++)
        b.p[i] = &b.m[b.n - 1 - i];
    for (size_t i = 0; i < 4; i++) {
        const char *h = s_holder(&a, dbs[i]);
        cr_assert_not_null(h);
        cr_expect_str_eq(h, s_holder(&a, dbs[i]));
        cr_expect_str_eq(h, s_holder(&b, dbs[i]), "%s", dbs[i]);
    }
}

Test(duty, three_nodes_share_the_databases)
{
    s_cluster_t c;
    s_cluster(&c, 3);
    cr_expect_str_eq(s_holder(&c, "main"), "mx1");
    cr_expect_str_eq(s_holder(&c, "daily"), "mx3");
    cr_expect_str_eq(s_holder(&c, "bytecode"), "mx3");
    cr_expect_str_eq(s_holder(&c, "test"), "mx2");
    /* many databases spread about evenly */
    unsigned count[3] = {0};
    for (int i = 0; i < 300; i++) {
        char db[16];
        snprintf(db, sizeof db, "db%d", i);
        const char *h = s_holder(&c, db);
        count[h[2] - '1']++;
    }
    for (int i = 0; i < 3; i++)
        cr_expect(count[i] > 70 && count[i] < 130, "mx%d holds %u of 300",
                  i + 1, count[i]);
}

/* When a holder stops being live only its duties move, and they come back
 * when it is live again. */
Test(duty, only_the_lost_holders_duties_move)
{
    enum { N_DB = 60 };
    s_cluster_t c;
    s_cluster(&c, 5);
    char dbs[N_DB][16];
    const char *before[N_DB];
    for (int i = 0; i < N_DB; i++) {
        snprintf(dbs[i], sizeof dbs[i], "db%d", i);
        before[i] = s_holder(&c, dbs[i]);
    }
    c.m[2].live = false; /* mx3 goes stale */
    unsigned moved = 0;
    for (int i = 0; i < N_DB; i++) {
        const char *now = s_holder(&c, dbs[i]);
        cr_expect_str_neq(now, "mx3");
        if (strcmp(before[i], "mx3") == 0)
            moved++;
        else
            cr_expect_str_eq(now, before[i], "%s moved from %s to %s", dbs[i],
                             before[i], now);
    }
    cr_expect_gt(moved, 0);
    c.m[2].live = true;
    for (int i = 0; i < N_DB; i++)
        cr_expect_str_eq(s_holder(&c, dbs[i]), before[i]);
}

Test(duty, nobody_live_nobody_holds)
{
    s_cluster_t c;
    s_cluster(&c, 3);
    for (size_t i = 0; i < c.n; i++)
        c.m[i].live = false;
    cr_expect_eq(pm_duty_holder("daily", c.p, c.n), -1);
    cr_expect_eq(pm_duty_holder("daily", c.p, 0), -1);
    c.m[1].live = true;
    cr_expect_str_eq(s_holder(&c, "daily"), "mx2");
}

static Pm__Cooldown
s_cd(const char *mirror, int status, int64_t until, const char *node)
{
    Pm__Cooldown c = PM__COOLDOWN__INIT;
    c.mirror = (char *)mirror;
    c.http_status = status;
    c.until = until;
    c.node = (char *)node;
    return c;
}

Test(duty, cooldowns_latest_wins_and_expired_drop)
{
    const int64_t now = 1000000;
    Pm__Cooldown cds[] = {
        s_cd("http://b.example", 429, now + 60, "mx1"),
        s_cd("http://a.example", 403, now + 300, "mx2"),
        s_cd("http://b.example", 403, now + 600, "mx3"), /* latest of b */
        s_cd("http://a.example", 429, now + 100, "mx1"),
        s_cd("http://c.example", 429, now - 1, "mx1"), /* over */
        s_cd("http://d.example", 429, now, "mx2"),     /* over now */
        s_cd("http://b.example", 429, now + 30, "mx2"),
    };
    size_t n = sizeof cds / sizeof cds[0];
    Pm__Cooldown *in[sizeof cds / sizeof cds[0]];
    Pm__Cooldown *out[sizeof cds / sizeof cds[0]];
    for (size_t i = 0; i < n; i++)
        in[i] = &cds[i];
    int64_t next = 0;
    size_t k = pm_duty_cooldowns(in, n, now, out, &next);
    cr_assert_eq(k, 2);
    cr_expect_str_eq(out[0]->mirror, "http://a.example");
    cr_expect_eq(out[0]->until, now + 300);
    cr_expect_eq(out[0]->http_status, 403);
    cr_expect_str_eq(out[0]->node, "mx2");
    cr_expect_str_eq(out[1]->mirror, "http://b.example");
    cr_expect_eq(out[1]->until, now + 600);
    cr_expect_eq(out[1]->http_status, 403);
    cr_expect_str_eq(out[1]->node, "mx3");
    cr_expect_eq(next, now + 300);

    /* later, a's ends first; then nothing is left */
    k = pm_duty_cooldowns(in, n, now + 300, out, &next);
    cr_assert_eq(k, 1);
    cr_expect_str_eq(out[0]->mirror, "http://b.example");
    k = pm_duty_cooldowns(in, n, now + 600, out, &next);
    cr_expect_eq(k, 0);
    cr_expect_eq(next, INT64_MAX);
    cr_expect_eq(pm_duty_cooldowns(in, 0, now, out, NULL), 0);
}

/* Equal deadlines: the answer does not depend on the reporting order. */
Test(duty, cooldown_ties_are_order_free)
{
    Pm__Cooldown x = s_cd("http://m.example", 429, 50, "mx2");
    Pm__Cooldown y = s_cd("http://m.example", 403, 50, "mx1");
    Pm__Cooldown *in1[] = {&x, &y}, *in2[] = {&y, &x}, *out[2];
    cr_assert_eq(pm_duty_cooldowns(in1, 2, 0, out, NULL), 1);
    cr_expect_str_eq(out[0]->node, "mx1");
    cr_assert_eq(pm_duty_cooldowns(in2, 2, 0, out, NULL), 1);
    cr_expect_str_eq(out[0]->node, "mx1");
}
