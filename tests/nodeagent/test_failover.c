/* test_failover.c - an agent given a primary controller and standbys.
 *
 * The controllers are fake: ROUTER sockets, CURVE servers all with the
 * one keypair, as a primary and its standby share theirs. An agent runs
 * in-process against them with a short dead_after_ms: when the one it
 * talks to stays silent it moves to the next of the list, says HELLO
 * there and follows that one. A snapshot of the revision number it runs
 * but with another digest (a promoted standby that never got the old
 * primary's last revision) is applied again.
 */
#include "pm_conf.h"
#include <criterion/criterion.h>

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fakectl.h"
#include "pm_agent.h"
#include "pm_error.h"
#include "pm_mem.h"
#include "pm_policy.h"
#include "pm_wire.h"
#include "testdir.h"

#define S_WAIT_MS 10000 /* give up on something that should happen */
#define S_DIGEST_A                                                             \
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define S_DIGEST_B                                                             \
    "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"

/* ------------------------------------------------------------------------
 * A fake controller */

/* Sends the agent revision NUMBER (the default policy) with DIGEST as a
 * SNAPSHOT. */
static void
s_ctl_snapshot(fakectl_t *c, uint64_t number, const char *digest)
{
    Pm__Revision rev = PM__REVISION__INIT;
    rev.number = number;
    rev.digest = (char *)digest;
    rev.policy = pm_policy_new();
    Pm__Publication pub = PM__PUBLICATION__INIT;
    pub.kind = PM__PUBLICATION__KIND__SNAPSHOT;
    pub.head = number;
    pub.node = "mx1";
    pub.revision = &rev;
    fakectl_send(c, &pub);
    pm_policy_free(&rev.policy);
}

/* ------------------------------------------------------------------------
 * A backend counting its applies */

typedef struct {
    pm_backend_t base;
    _Atomic unsigned applies;
    _Atomic uint64_t last;
} count_backend_t;

static int
s_count_apply(pm_backend_t *self, const Pm__Policy *p, uint64_t rev, char **why)
{
    (void)p, (void)why;
    count_backend_t *b = (count_backend_t *)self;
    atomic_store(&b->last, rev);
    atomic_fetch_add(&b->applies, 1);
    return 0;
}

/* Waits until B has applied at least N times; true when it has. */
static bool
s_applies_reach(count_backend_t *b, unsigned n)
{
    int64_t deadline = zclock_mono() + S_WAIT_MS;
    while (atomic_load(&b->applies) < n && zclock_mono() < deadline)
        zclock_sleep(10);
    return atomic_load(&b->applies) >= n;
}

static zactor_t *
s_agent(const char *endpoints, zcert_t *server, zcert_t *cert,
        pm_backend_t *backend, const char *state_dir)
{
    pm_agent_config_t cfg = {
        .endpoint = endpoints,
        .server_key = zcert_public_txt(server),
        .cert = cert,
        .state_dir = state_dir,
        .name = "mx1",
        .backend = backend,
        .heartbeat_ms = 50,
        .dead_after_ms = 300,
        .milter_gid = -1,
    };
    zactor_t *a = pm_agent_new(&cfg);
    cr_assert(a);
    return a;
}

/* ------------------------------------------------------------------------
 * The endpoint list */

Test(failover, endpoint_list_split_on_commas_and_blanks)
{
    size_t n = 9;
    char **l = pm_conf_list(" tcp://a:1, tcp://b:2\ttcp://c:3,,\n"
                            "tcp://d:4 ,",
                            &n);
    cr_assert_eq(n, 4);
    cr_expect_str_eq(l[0], "tcp://a:1");
    cr_expect_str_eq(l[1], "tcp://b:2");
    cr_expect_str_eq(l[2], "tcp://c:3");
    cr_expect_str_eq(l[3], "tcp://d:4");
    cr_expect_null(l[4]);
    pm_conf_list_free(&l);
    cr_expect_null(l);
    l = pm_conf_list("tcp://127.0.0.1:7421", &n);
    cr_assert_eq(n, 1);
    cr_expect_str_eq(l[0], "tcp://127.0.0.1:7421");
    pm_conf_list_free(&l);
    const char *empty[] = {"", " ", ",", " , \t,", NULL};
    for (int i = 0; i < 5; i++) {
        l = pm_conf_list(empty[i], &n);
        cr_expect_eq(n, 0, "\"%s\": %zu endpoints", empty[i] ? empty[i] : "",
                     n);
        cr_expect_null(l[0]);
        pm_conf_list_free(&l);
    }
    pm_conf_list_free(&l); /* safe twice */
}

Test(failover, no_endpoint_no_agent)
{
    zcert_t *cert = zcert_new();
    pm_backend_t *b = pm_backend_noop_new();
    pm_agent_config_t cfg = {.endpoint = " , ",
                             .server_key = zcert_public_txt(cert),
                             .cert = cert,
                             .name = "mx1",
                             .backend = b,
                             .heartbeat_ms = 50,
                             .dead_after_ms = 300,
                             .milter_gid = -1};
    cr_expect_null(pm_agent_new(&cfg));
    b->destroy(&b);
    zcert_destroy(&cert);
}

/* ------------------------------------------------------------------------
 * Failing over */

/* The first endpoint takes the connection and never answers (a primary
 * hung, or a standby's address in front): the agent says HELLO to the
 * second within a few dead_after_ms and follows it from then on. */
Test(failover, silent_first_controller_hello_goes_to_the_second)
{
    zcert_t *server = zcert_new(), *cert = zcert_new();
    count_backend_t b = {.base = {.name = "count", .apply = s_count_apply}};
    fakectl_t mute, live;
    fakectl_new(&mute, server, 0);
    fakectl_new(&live, server, 0);
    char list[160];
    snprintf(list, sizeof list, "%s,  %s", mute.endpoint, live.endpoint);
    int64_t t0 = zclock_mono();
    zactor_t *agent = s_agent(list, server, cert, &b.base, NULL);
    cr_assert(fakectl_hello(&mute, S_WAIT_MS), "no HELLO at the first");
    cr_assert(fakectl_hello(&live, 5000),
              "no HELLO at the second within 5 s (dead_after_ms 300)");
    int64_t took = zclock_mono() - t0;
    cr_expect_geq(took, 300, "switched after %lld ms, before the silence",
                  (long long)took);
    /* the new connection is the one the agent listens to */
    s_ctl_snapshot(&live, 1, S_DIGEST_A);
    cr_expect(fakectl_applied(&live, 1, S_WAIT_MS),
              "revision 1 from the second: not "
              "applied");
    cr_expect_eq(atomic_load(&b.last), 1);
    zactor_destroy(&agent);
    fakectl_destroy(&mute);
    fakectl_destroy(&live);
    zcert_destroy(&server);
    zcert_destroy(&cert);
}

/* Round robin: with nothing listening at the second either, the agent
 * comes back to the first, on a new connection, and says HELLO again. */
Test(failover, round_robin_back_to_the_first)
{
    zcert_t *server = zcert_new(), *cert = zcert_new();
    pm_backend_t *b = pm_backend_noop_new();
    fakectl_t mute, gone;
    fakectl_new(&mute, server, 0);
    fakectl_new(&gone, server, 0);
    zsock_destroy(&gone.router); /* its port: nothing listens there */
    char list[160];
    snprintf(list, sizeof list, "%s %s", mute.endpoint, gone.endpoint);
    zactor_t *agent = s_agent(list, server, cert, b, NULL);
    cr_assert(fakectl_hello(&mute, S_WAIT_MS), "no HELLO at the first");
    zframe_t *first = zframe_dup(mute.agent);
    /* reports of the first connection until it is dropped, then a HELLO
     * from a new one (dead_after_ms 300: two switches, ~700 ms) */
    int64_t deadline = zclock_mono() + 5000;
    bool again = false;
    while (!again && zclock_mono() < deadline) {
        zframe_t *id = NULL;
        Pm__AgentReport *rep = fakectl_next(&mute, 200, &id);
        again = rep && rep->kind == PM__AGENT_REPORT__KIND__HELLO &&
                !zframe_eq(id, first);
        if (rep)
            pm__agent_report__free_unpacked(rep, NULL);
        zframe_destroy(&id);
    }
    cr_expect(again, "no HELLO on a new connection to the first");
    zframe_destroy(&first);
    zactor_destroy(&agent);
    fakectl_destroy(&mute);
    fakectl_destroy(&gone);
    b->destroy(&b);
    zcert_destroy(&server);
    zcert_destroy(&cert);
}

/* One endpoint: a silent controller is not left, and the agent goes on
 * saying HELLO on the same connection. */
Test(failover, one_endpoint_stays)
{
    zcert_t *server = zcert_new(), *cert = zcert_new();
    pm_backend_t *b = pm_backend_noop_new();
    fakectl_t mute;
    fakectl_new(&mute, server, 0);
    zactor_t *agent = s_agent(mute.endpoint, server, cert, b, NULL);
    cr_assert(fakectl_hello(&mute, S_WAIT_MS), "no HELLO");
    zframe_t *first = zframe_dup(mute.agent);
    int64_t until = zclock_mono() + 1200; /* four times dead_after_ms */
    unsigned reports = 0;
    while (zclock_mono() < until) {
        zframe_t *id = NULL;
        Pm__AgentReport *rep = fakectl_next(&mute, 200, &id);
        if (rep) {
            reports++;
            cr_expect(zframe_eq(id, first), "a new connection");
            cr_expect_eq(rep->kind, PM__AGENT_REPORT__KIND__HELLO);
            pm__agent_report__free_unpacked(rep, NULL);
        }
        zframe_destroy(&id);
    }
    cr_expect_gt(reports, 5, "%u reports in 1.2 s", reports);
    zframe_destroy(&first);
    zactor_destroy(&agent);
    fakectl_destroy(&mute);
    b->destroy(&b);
    zcert_destroy(&server);
    zcert_destroy(&cert);
}

/* A controller that stops reading (its main loop busy checking a large
 * policy) fills its small queue for the agent: the agent keeps that
 * connection, and all it sent is there when the controller reads again.
 * With ZMTP heartbeats the agent dropped it after dead_after_ms (no PONG
 * comes from behind a full queue), and libzmq aborted the controller
 * when it read a queued PING once that connection had broken. */
Test(failover, a_controller_that_stops_reading_keeps_the_connection)
{
    zcert_t *server = zcert_new(), *cert = zcert_new();
    pm_backend_t *b = pm_backend_noop_new();
    fakectl_t busy;
    fakectl_new(&busy, server, 1);
    zactor_t *agent = s_agent(busy.endpoint, server, cert, b, NULL);
    cr_assert(fakectl_hello(&busy, S_WAIT_MS), "no HELLO");
    zframe_t *first = zframe_dup(busy.agent);
    zclock_sleep(1500); /* five times dead_after_ms, reading nothing */
    unsigned reports = 0, others = 0;
    int64_t until = zclock_mono() + 600; /* what queued, and a few more */
    while (zclock_mono() < until) {
        zframe_t *id = NULL;
        Pm__AgentReport *rep = fakectl_next(&busy, 200, &id);
        if (rep) {
            reports++;
            others += !zframe_eq(id, first);
            pm__agent_report__free_unpacked(rep, NULL);
        }
        zframe_destroy(&id);
    }
    cr_expect_gt(reports, 0, "nothing queued while the controller was busy");
    cr_expect_eq(others, 0, "%u of %u reports came on a new connection", others,
                 reports);
    zframe_destroy(&first);
    zactor_destroy(&agent);
    fakectl_destroy(&busy);
    b->destroy(&b);
    zcert_destroy(&server);
    zcert_destroy(&cert);
}

/* ------------------------------------------------------------------------
 * Same number, another revision */

/* A snapshot of the applied number and digest is enforced already; one
 * of that number with another digest is applied again, also after a
 * restart (the digest read back from the local store). */
Test(failover, same_number_other_digest_applied_again)
{
    zcert_t *server = zcert_new(), *cert = zcert_new();
    count_backend_t b = {.base = {.name = "count", .apply = s_count_apply}};
    char state[] = "/tmp/pm_failover_XXXXXX";
    cr_assert(mkdtemp(state));
    fakectl_t c;
    fakectl_new(&c, server, 0);
    zactor_t *agent = s_agent(c.endpoint, server, cert, &b.base, state);
    cr_assert(fakectl_hello(&c, S_WAIT_MS));
    s_ctl_snapshot(&c, 3, S_DIGEST_A);
    cr_assert(s_applies_reach(&b, 1), "revision 3 never applied");
    cr_assert(fakectl_applied(&c, 3, S_WAIT_MS));
    /* the same again: acknowledged, not applied; then another revision 3:
     * applied (in order, so a third apply would be the first one's) */
    s_ctl_snapshot(&c, 3, S_DIGEST_A);
    s_ctl_snapshot(&c, 3, S_DIGEST_B);
    cr_assert(s_applies_reach(&b, 2), "the other revision 3 was not applied");
    zclock_sleep(300);
    cr_expect_eq(atomic_load(&b.applies), 2, "%u applies",
                 atomic_load(&b.applies));
    cr_expect_eq(atomic_load(&b.last), 3);
    zactor_destroy(&agent);

    /* restarted: the stored revision 3 is enforced again (one apply);
     * the controller's digest B then is what it runs, A is not */
    agent = s_agent(c.endpoint, server, cert, &b.base, state);
    cr_assert(s_applies_reach(&b, 3), "the stored revision not enforced");
    cr_assert(fakectl_hello(&c, S_WAIT_MS));
    s_ctl_snapshot(&c, 3, S_DIGEST_B);
    s_ctl_snapshot(&c, 3, S_DIGEST_A);
    cr_assert(s_applies_reach(&b, 4), "revision 3 with digest A not applied");
    zclock_sleep(300);
    cr_expect_eq(atomic_load(&b.applies), 4, "%u applies",
                 atomic_load(&b.applies));
    zactor_destroy(&agent);

    fakectl_destroy(&c);
    testdir_remove(state);
    zcert_destroy(&server);
    zcert_destroy(&cert);
}
