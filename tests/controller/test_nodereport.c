/* test_nodereport.c - what an agent's report may change in the
 * controller's record of its node: store writes only for news, cool-downs
 * named and capped, MEMBERS rebuilt only for what it carries, and a drift
 * history that is the controller's, capped. */
#include <criterion/criterion.h>

#include "pm_mem.h"
#include "pm_nodereport.h"
#include "pm_wire.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static Pm__NodeStatus *
s_status(void)
{
    Pm__NodeStatus *st = pm_malloc(sizeof *st);
    pm__node_status__init(st);
    pm_wire_set_string(&st->name, "mx1");
    pm_wire_set_string(&st->peer_endpoint, "tcp://127.0.0.1:7301");
    st->applied_rev = 4;
    st->last_seen = 1000;
    return st;
}

#define S_MIRROR "https://database.clamav.net"

static char *s_mirrors[] = {S_MIRROR, "https://mirror.example"};

static void
s_add_cooldown_of(Pm__NodeStatus *st, const char *mirror, int http,
                  const char *node, int64_t until)
{
    Pm__Cooldown *c = pm_malloc(sizeof *c);
    pm__cooldown__init(c);
    pm_wire_set_string(&c->mirror, mirror);
    pm_wire_set_string(&c->node, node);
    c->http_status = http;
    c->until = until;
    st->cooldowns = pm_realloc(st->cooldowns,
                               (st->n_cooldowns + 1) * sizeof *st->cooldowns);
    st->cooldowns[st->n_cooldowns++] = c;
}

static void
s_add_cooldown(Pm__NodeStatus *st, const char *node, int64_t until)
{
    s_add_cooldown_of(st, S_MIRROR, 429, node, until);
}

/* A hand edit of PARAM found at AT, into ST's drift (the agent's list). */
static void
s_add_drift(Pm__NodeStatus *st, const char *param, int64_t at)
{
    Pm__Drift *d = pm_malloc(sizeof *d);
    pm__drift__init(d);
    pm_wire_set_string(&d->parameter, param);
    pm_wire_set_string(&d->found, "permit");
    d->at = at;
    d->reverted = true;
    st->drift = pm_realloc(st->drift, (st->n_drift + 1) * sizeof *st->drift);
    st->drift[st->n_drift++] = d;
}

Test(nodereport, only_news_is_a_change)
{
    Pm__NodeStatus *old = s_status(), *new = s_status();
    cr_assert(pm_nodereport_changed(NULL, new), "the first report is news");
    new->last_seen = 2000;
    cr_assert_not(pm_nodereport_changed(old, new), "only the time moved");
    cr_assert_eq(old->last_seen, 1000, "left as it was");
    cr_assert_eq(new->last_seen, 2000, "left as it was");
    new->applied_rev = 5;
    cr_assert(pm_nodereport_changed(old, new));
    pm__node_status__free_unpacked(old, NULL);
    pm__node_status__free_unpacked(new, NULL);
}

Test(nodereport, cooldowns_are_named_and_capped)
{
    Pm__NodeStatus *st = s_status();
    int64_t now = 1700000000;
    s_add_cooldown_of(st, s_mirrors[1], 403, "", now + 600);
    s_add_cooldown(st, "mx3", now + 365 * 86400);
    pm_nodereport_own_cooldowns("mx1", s_mirrors, 2, st, now);
    cr_assert_eq(st->n_cooldowns, 2);
    cr_assert_str_eq(st->cooldowns[0]->node, "mx1", "told to the reporter");
    cr_assert_eq(st->cooldowns[0]->until, now + 600);
    cr_assert_eq(st->cooldowns[1]->until, now + PM_WIRE_COOLDOWN_MAX,
                 "a year is cut to the cap");
    pm__node_status__free_unpacked(st, NULL);
}

/* One agent must not keep every node off the mirrors, nor blame another
 * node: only the policy's mirrors, only 429 and 403, one per mirror, each
 * in the reporter's name whatever it says. */
Test(nodereport, cooldowns_only_policy_mirrors_in_the_reporters_name)
{
    Pm__NodeStatus *st = s_status();
    int64_t now = 1700000000;
    s_add_cooldown(st, "mx2", now + 600); /* blames mx2 */
    s_add_cooldown_of(st, "https://aaa.example", 429, "", now + 600);
    s_add_cooldown_of(st, s_mirrors[1], 500, "", now + 600);
    s_add_cooldown(st, "", now + 900); /* later: replaces the first */
    s_add_cooldown(st, "", now + 300); /* earlier: dropped */
    for (int i = 0; i < 100; i++) {
        char mirror[64];
        snprintf(mirror, sizeof mirror, "https://%03d.example", i);
        s_add_cooldown_of(st, mirror, 429, "mx9", now + 600);
    }
    pm_nodereport_own_cooldowns("mx1", s_mirrors, 2, st, now);
    cr_assert_eq(st->n_cooldowns, 1, "one per policy mirror, not %zu",
                 st->n_cooldowns);
    cr_expect_str_eq(st->cooldowns[0]->mirror, S_MIRROR);
    cr_expect_str_eq(st->cooldowns[0]->node, "mx1", "not mx2: the reporter");
    cr_expect_eq(st->cooldowns[0]->until, now + 900, "the latest deadline");
    cr_expect_eq(st->cooldowns[0]->http_status, 429);

    /* a policy with no mirrors: nothing to cool down */
    s_add_cooldown(st, "", now + 600);
    pm_nodereport_own_cooldowns("mx1", NULL, 0, st, now);
    cr_expect_eq(st->n_cooldowns, 0);
    pm__node_status__free_unpacked(st, NULL);
}

Test(nodereport, cooldown_kept_only_for_policy_mirrors_and_429_403)
{
    Pm__Cooldown c = PM__COOLDOWN__INIT;
    c.mirror = (char *)S_MIRROR;
    c.http_status = 429;
    cr_expect(pm_nodereport_cooldown_kept(&c, s_mirrors, 2));
    c.http_status = 403;
    cr_expect(pm_nodereport_cooldown_kept(&c, s_mirrors, 2));
    c.http_status = 503;
    cr_expect_not(pm_nodereport_cooldown_kept(&c, s_mirrors, 2));
    c.http_status = 429;
    c.mirror = s_mirrors[1];
    cr_expect_not(pm_nodereport_cooldown_kept(&c, s_mirrors, 1),
                  "a mirror the policy no longer has");
    c.mirror = (char *)"https://database.clamav.net.evil.example";
    cr_expect_not(pm_nodereport_cooldown_kept(&c, s_mirrors, 2));
}

/* Every root agent dials what a node says its peer endpoint is: only a
 * TCP one is passed on (peer_bind is tcp://), never a local socket. */
Test(nodereport, only_a_tcp_peer_endpoint_is_passed_on)
{
    const char *kept[] = {"tcp://127.0.0.1:7301", "tcp://[::1]:7301",
                          "tcp://mx1.example.net:7301", ""};
    const char *emptied[] = {"ipc:///run/systemd/private",
                             "inproc://x",
                             "tcp://",
                             "tcp://host",
                             "tcp://host:",
                             "tcp://host:7301x",
                             "pgm://eth0;239.1.1.1:5555"};
    for (size_t i = 0; i < sizeof kept / sizeof kept[0]; i++) {
        Pm__NodeStatus *st = s_status();
        pm_wire_set_string(&st->peer_endpoint, kept[i]);
        cr_expect_not(pm_nodereport_own_endpoint(st), "%s", kept[i]);
        cr_expect_str_eq(st->peer_endpoint, kept[i]);
        pm__node_status__free_unpacked(st, NULL);
    }
    for (size_t i = 0; i < sizeof emptied / sizeof emptied[0]; i++) {
        Pm__NodeStatus *st = s_status();
        pm_wire_set_string(&st->peer_endpoint, emptied[i]);
        cr_expect(pm_nodereport_own_endpoint(st), "%s", emptied[i]);
        cr_expect_str_eq(st->peer_endpoint, "", "%s", emptied[i]);
        pm__node_status__free_unpacked(st, NULL);
    }
}

Test(nodereport, members_rebuilt_only_for_endpoint_or_cooldowns)
{
    Pm__NodeStatus *old = s_status(), *new = s_status();
    cr_assert(pm_nodereport_members_differ(NULL, new));
    new->applied_rev = 9;
    new->last_seen = 5000;
    cr_assert_not(pm_nodereport_members_differ(old, new));
    pm_wire_set_string(&new->peer_endpoint, "tcp://127.0.0.1:7302");
    cr_assert(pm_nodereport_members_differ(old, new));
    pm_wire_set_string(&new->peer_endpoint, old->peer_endpoint);
    s_add_cooldown(old, "mx1", 100);
    s_add_cooldown(new, "mx1", 100);
    cr_assert_not(pm_nodereport_members_differ(old, new));
    new->cooldowns[0]->until = 200;
    cr_assert(pm_nodereport_members_differ(old, new));
    pm__node_status__free_unpacked(old, NULL);
    pm__node_status__free_unpacked(new, NULL);
}

Test(nodereport, drift_history_is_the_controllers_and_capped)
{
    /* the agent's own "history" is dropped; its news is taken */
    Pm__NodeStatus *old = NULL, *new = s_status();
    s_add_drift(new, "smtpd_helo_restrictions", 10);
    new->drift_history = pm_calloc(1, sizeof *new->drift_history);
    new->drift_history[0] = pm_wire_dup(&new->drift[0]->base);
    pm_wire_set_string(&new->drift_history[0]->parameter, "made_up");
    new->n_drift_history = 1;
    pm_nodereport_drift_history("mx1", old, new, SIZE_MAX);
    cr_assert_eq(new->n_drift_history, 1);
    cr_assert_str_eq(new->drift_history[0]->parameter,
                     "smtpd_helo_restrictions");

    /* the same edit reported again is no news: the history carries over */
    old = new;
    new = s_status();
    s_add_drift(new, "smtpd_helo_restrictions", 10);
    pm_nodereport_drift_history("mx1", old, new, SIZE_MAX);
    cr_assert_eq(new->n_drift_history, 1);
    cr_assert_eq(old->n_drift_history, 0, "moved, not copied");
    pm__node_status__free_unpacked(old, NULL);

    /* 40 more edits: the newest first, 32 kept */
    for (int i = 1; i <= 40; i++) {
        old = new;
        new = s_status();
        s_add_drift(new, i % 2 ? "mynetworks" : "relayhost", 10 + i);
        pm_nodereport_drift_history("mx1", old, new, SIZE_MAX);
        pm__node_status__free_unpacked(old, NULL);
    }
    cr_assert_eq(new->n_drift_history, PM_NODEREPORT_DRIFT_HISTORY);
    cr_assert_eq(new->drift_history[0]->at, 50, "the newest first");
    cr_assert_eq(new->drift_history[PM_NODEREPORT_DRIFT_HISTORY - 1]->at,
                 50 - PM_NODEREPORT_DRIFT_HISTORY + 1, "the oldest dropped");
    pm__node_status__free_unpacked(new, NULL);
}
