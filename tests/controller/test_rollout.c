/* test_rollout.c - the rolling restart state machine (pm_rollout) on its
 * own: nodes are NodeStatus views the test edits, time is a number the
 * test moves; plus the rollout kept in the store across a "controller
 * restart", and the controller's refusal of policy changes while one runs
 * (pm_ctld_handle without sockets). */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "pm_ctld.h"
#include "pm_error.h"
#include "pm_rollout.h"
#include "pm_store.h"
#include "pm_wire.h"
#include "testdir.h"

#define S_MAX 8
#define S_SEC 1000

static char s_dir[64];

static void
s_setup(void)
{
    strcpy(s_dir, "/tmp/pm_rollout_test.XXXXXX");
    cr_assert_not_null(mkdtemp(s_dir));
}

static void
s_teardown(void)
{
    testdir_remove(s_dir);
}

TestSuite(rollout, .init = s_setup, .fini = s_teardown);

/* ---- a fleet of views the test edits ------------------------------------ */

typedef struct {
    Pm__NodeStatus st[S_MAX];
    Pm__RestartResult res[S_MAX];
    Pm__NodeStatus *ptr[S_MAX];
    size_t n;
    unsigned orders[S_MAX]; /* orders each node got, all told */
    int64_t settled[S_MAX]; /* when it was first seen past RESTARTING */
} s_fleet_t;

/* Every node up, postfix running, no answer yet. */
static void
s_fleet(s_fleet_t *f, const char *const *names, size_t n)
{
    memset(f, 0, sizeof *f);
    f->n = n;
    for (size_t i = 0; i < n; i++) {
        pm__node_status__init(&f->st[i]);
        pm__restart_result__init(&f->res[i]);
        f->st[i].name = (char *)names[i];
        f->st[i].liveness = (char *)"up";
        f->st[i].postfix_running = true;
        f->ptr[i] = &f->st[i];
    }
}

static size_t
s_index(const s_fleet_t *f, const char *name)
{
    for (size_t i = 0; i < f->n; i++)
        if (strcmp(f->st[i].name, name) == 0)
            return i;
    cr_assert_fail("no node %s", name);
    return 0;
}

static Pm__NodeStatus *
s_st(s_fleet_t *f, const char *name)
{
    return &f->st[s_index(f, name)];
}

/* NAME's agent answers ROLLOUT: done (ok or not) in PHASE with ERROR. */
static void
s_answer(s_fleet_t *f, const char *name, uint64_t rollout, bool done, bool ok,
         const char *phase, const char *error)
{
    size_t i = s_index(f, name);
    f->res[i].rollout = rollout;
    f->res[i].done = done;
    f->res[i].ok = ok;
    f->res[i].phase = (char *)phase;
    f->res[i].error = (char *)error;
    f->st[i].restart = &f->res[i];
}

static Pm__RolloutSpec
s_spec(uint32_t batch)
{
    Pm__RolloutSpec spec = PM__ROLLOUT_SPEC__INIT;
    spec.service = (char *)"postfix";
    spec.batch = batch;
    return spec;
}

static Pm__Rollout *
s_start(s_fleet_t *f, const Pm__RolloutSpec *spec, const Pm__Rollout *cur)
{
    Pm__Rollout *r = NULL;
    char *why = NULL;
    int rc = pm_rollout_start(cur, spec, f->ptr, f->n, 0, "alice", 0, &r, &why);
    cr_assert_eq(rc, PM_OK, "%s", why ? why : "");
    return r;
}

/* Ticks R at NOW and returns the nodes ordered, "mx1 mx2" (static; a
 * canary push's probe order as "mx1(probe)"). Also checks the property
 * every tick must keep: no node is ordered once it was seen SETTLING or
 * beyond, but for a canary's probe. */
static const char *
s_tick(Pm__Rollout *r, s_fleet_t *f, int64_t now, bool resend)
{
    static char line[256];
    size_t orders[S_MAX], n = 0;
    pm_rollout_tick(r, f->ptr, f->n, now, resend, orders, &n);
    line[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        const char *name = r->nodes[orders[i]]->name;
        size_t k = s_index(f, name);
        bool probe = pm_rollout_probing(r, orders[i]);
        cr_assert(f->settled[k] == 0 || probe,
                  "%s ordered again after it settled", name);
        f->orders[k]++;
        snprintf(line + strlen(line), sizeof line - strlen(line), "%s%s%s",
                 i ? " " : "", name, probe ? "(probe)" : "");
    }
    for (size_t i = 0; i < r->n_nodes; i++) {
        Pm__RolloutNode__State s = r->nodes[i]->state;
        size_t k = s_index(f, r->nodes[i]->name);
        if (s >= PM__ROLLOUT_NODE__STATE__SETTLING && !f->settled[k])
            f->settled[k] = now ? now : 1;
    }
    return line;
}

/* "mx1:done mx2:restarting ..." in restart order (static). */
static const char *
s_states(const Pm__Rollout *r)
{
    static char line[512];
    line[0] = '\0';
    for (size_t i = 0; i < r->n_nodes; i++)
        snprintf(line + strlen(line), sizeof line - strlen(line), "%s%s:%s",
                 i ? " " : "", r->nodes[i]->name,
                 pm_rollout_node_state_name(r->nodes[i]->state));
    return line;
}

static const Pm__RolloutNode *
s_node(const Pm__Rollout *r, const char *name)
{
    for (size_t i = 0; i < r->n_nodes; i++)
        if (strcmp(r->nodes[i]->name, name) == 0)
            return r->nodes[i];
    cr_assert_fail("no node %s in the rollout", name);
    return NULL;
}

static const char *const s_three[] = {"mx3", "mx1", "mx2"};

/* ---- starting ----------------------------------------------------------- */

Test(rollout, canaries_first_then_by_name_one_at_a_time)
{
    static const char *const names[] = {"mx4", "mx2", "mx3", "mx1"};
    char *canary[] = {"mx3"};
    s_fleet_t f;
    s_fleet(&f, names, 4);
    Pm__RolloutSpec spec = s_spec(2);
    spec.canary = canary;
    spec.n_canary = 1;
    Pm__Rollout *r = s_start(&f, &spec, NULL);
    cr_expect_eq(r->id, 1);
    cr_expect_eq(r->state, PM__ROLLOUT__STATE__RUNNING);
    cr_expect_str_eq(s_states(r),
                     "mx3:pending mx1:pending mx2:pending mx4:pending");
    cr_expect_str_eq(r->user, "alice");
    cr_expect_eq(r->spec->min_healthy_ms, 10 * S_SEC, "defaults filled in");
    cr_expect_eq(r->spec->deadline_ms, 300 * S_SEC);
    /* the canary goes alone, although the batch is 2 */
    cr_expect_str_eq(s_tick(r, &f, 1, false), "mx3");
    cr_expect_eq(s_node(r, "mx3")->started, 1);
    cr_expect_str_eq(s_tick(r, &f, 2 * S_SEC, false), "");
    s_answer(&f, "mx3", r->id, true, true, "gate", "");
    cr_expect_str_eq(s_tick(r, &f, 3 * S_SEC, false), "");
    cr_expect_eq(s_node(r, "mx3")->state, PM__ROLLOUT_NODE__STATE__SETTLING);
    cr_expect_str_eq(s_tick(r, &f, 12 * S_SEC, false), "",
                     "nothing else while the canary settles");
    /* DONE: then two at a time, by name */
    cr_expect_str_eq(s_tick(r, &f, 13 * S_SEC, false), "mx1 mx2");
    cr_expect_str_eq(s_states(r),
                     "mx3:done mx1:restarting mx2:restarting mx4:pending");
    s_answer(&f, "mx2", r->id, true, true, "gate", "");
    cr_expect_str_eq(s_tick(r, &f, 14 * S_SEC, false), "");
    s_answer(&f, "mx1", r->id, true, true, "gate", "");
    cr_expect_str_eq(s_tick(r, &f, 15 * S_SEC, false), "");
    /* mx2 settled 10 s: DONE, and its place goes to mx4 */
    cr_expect_str_eq(s_tick(r, &f, 24 * S_SEC, false), "mx4");
    cr_expect_str_eq(s_states(r),
                     "mx3:done mx1:settling mx2:done mx4:restarting");
    s_answer(&f, "mx4", r->id, true, true, "gate", "");
    s_tick(r, &f, 25 * S_SEC, false);
    cr_expect_eq(r->state, PM__ROLLOUT__STATE__RUNNING);
    cr_expect_str_eq(s_tick(r, &f, 35 * S_SEC, false), "");
    cr_expect_str_eq(s_states(r), "mx3:done mx1:done mx2:done mx4:done");
    cr_expect_eq(r->state, PM__ROLLOUT__STATE__DONE);
    cr_expect_eq(r->finished, 35 * S_SEC);
    cr_expect_str_eq(r->reason, "");
    for (size_t i = 0; i < f.n; i++)
        cr_expect_eq(f.orders[i], 1, "%s: %u orders", f.st[i].name,
                     f.orders[i]);
    pm__rollout__free_unpacked(r, NULL);
}

/* A promoted standby or a rebuilt store counts rollouts from 1 again; a
 * node answers an order of an id it answered before with its old result,
 * which counted as a restart that never happened. A new rollout's id is
 * past every id the nodes report (but one past belief). */
Test(rollout, a_new_id_is_past_what_the_nodes_answered)
{
    s_fleet_t f;
    s_fleet(&f, s_three, 3);
    Pm__RolloutSpec spec = s_spec(1);
    s_answer(&f, "mx1", 7, true, true, "gate", "");
    s_answer(&f, "mx2", 12, true, true, "gate", "");
    s_answer(&f, "mx3", PM_ROLLOUT_ID_TRUST, true, true, "gate", "");
    Pm__Rollout *r = s_start(&f, &spec, NULL);
    cr_expect_eq(r->id, 13, "id %llu", (unsigned long long)r->id);
    /* mx2's old answer is not this rollout's: it is ordered */
    cr_expect_str_eq(s_tick(r, &f, 1, false), "mx1");
    r->state = PM__ROLLOUT__STATE__DONE;
    Pm__Rollout *next = s_start(&f, &spec, r);
    cr_expect_eq(next->id, 14);
    pm__rollout__free_unpacked(r, NULL);
    pm__rollout__free_unpacked(next, NULL);
}

/* ...and past what a controller of an earlier epoch can have given: just
 * promoted, it has heard from no node yet. */
Test(rollout, a_promoted_controller_starts_past_its_predecessor)
{
    s_fleet_t f;
    s_fleet(&f, s_three, 3);
    Pm__RolloutSpec spec = s_spec(1);
    Pm__Rollout *r = NULL;
    char *why = NULL;
    uint64_t ids[][2] = {{0, 1},
                         {1, 1},
                         {2, 1 + (1ull << 24)},
                         {3, 1 + (2ull << 24)},
                         {1ull << 40, 1 + ((PM_ROLLOUT_EPOCH_MAX - 1) << 24)}};
    for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++) {
        cr_assert_eq(pm_rollout_start(NULL, &spec, f.ptr, f.n, ids[i][0], "a",
                                      0, &r, &why),
                     PM_OK, "%s", why ? why : "");
        cr_expect_eq(r->id, ids[i][1], "epoch %llu: id %llu",
                     (unsigned long long)ids[i][0], (unsigned long long)r->id);
        cr_expect_lt(r->id, PM_ROLLOUT_ID_TRUST);
        pm__rollout__free_unpacked(r, NULL);
    }
    /* a later one at the same epoch counts on from the last */
    Pm__Rollout last = PM__ROLLOUT__INIT;
    last.id = 5 + (1ull << 24);
    last.state = PM__ROLLOUT__STATE__DONE;
    cr_assert_eq(
        pm_rollout_start(&last, &spec, f.ptr, f.n, 2, "a", 0, &r, &why), PM_OK);
    cr_expect_eq(r->id, 6 + (1ull << 24));
    pm__rollout__free_unpacked(r, NULL);
}

Test(rollout, start_refusals)
{
    s_fleet_t f;
    Pm__Rollout *r = NULL;
    char *why = NULL;
    s_fleet(&f, s_three, 3);
    Pm__RolloutSpec spec = s_spec(0);
    cr_expect_eq(pm_rollout_start(NULL, &spec, NULL, 0, 0, "a", 0, &r, &why),
                 PM_EINVAL);
    cr_expect(why && strstr(why, "no node to restart"), "%s", why);
    char *unknown[] = {"mx1", "mx9"};
    spec.canary = unknown;
    spec.n_canary = 2;
    cr_expect_eq(pm_rollout_start(NULL, &spec, f.ptr, 3, 0, "a", 0, &r, &why),
                 PM_EINVAL);
    cr_expect(why && strstr(why, "canary 'mx9' is not an enrolled node"), "%s",
              why);
    char *twice[] = {"mx1", "mx1"};
    spec.canary = twice;
    cr_expect_eq(pm_rollout_start(NULL, &spec, f.ptr, 3, 0, "a", 0, &r, &why),
                 PM_EINVAL);
    cr_expect(why && strstr(why, "named twice"), "%s", why);
    spec.n_canary = 0;
    spec.batch = 2;
    spec.batch_percent = 50;
    cr_expect_eq(pm_rollout_start(NULL, &spec, f.ptr, 3, 0, "a", 0, &r, &why),
                 PM_EINVAL);
    spec.batch = 0;
    spec.batch_percent = 101;
    cr_expect_eq(pm_rollout_start(NULL, &spec, f.ptr, 3, 0, "a", 0, &r, &why),
                 PM_EINVAL);
    spec.batch_percent = 0;
    spec.min_healthy_ms = 60 * S_SEC;
    spec.deadline_ms = 60 * S_SEC;
    cr_expect_eq(pm_rollout_start(NULL, &spec, f.ptr, 3, 0, "a", 0, &r, &why),
                 PM_EINVAL);
    cr_expect(why && strstr(why, "min-healthy 1m is not shorter than the "
                                 "deadline 1m"),
              "%s", why);
    cr_expect_null(r, "nothing is set on error");

    /* one at a time: refused while running or paused, naming it */
    spec = s_spec(0);
    Pm__Rollout *first = s_start(&f, &spec, NULL);
    cr_expect_eq(pm_rollout_start(first, &spec, f.ptr, 3, 0, "a", 0, &r, &why),
                 PM_ECONFLICT);
    cr_expect(why && strstr(why, "rollout 1 is running (0 of 3 nodes done)") &&
                  strstr(why, "privmta-ctl rollout status") &&
                  strstr(why, "privmta-ctl rollout abort"),
              "%s", why);
    cr_assert_eq(pm_rollout_pause(first, &why), PM_OK);
    cr_expect_eq(pm_rollout_start(first, &spec, f.ptr, 3, 0, "a", 0, &r, &why),
                 PM_ECONFLICT);
    cr_assert_eq(pm_rollout_abort(first, "bob", 5, &why), PM_OK);
    Pm__Rollout *second = s_start(&f, &spec, first);
    cr_expect_eq(second->id, 2, "ids are never reused");
    free(why);
    pm__rollout__free_unpacked(first, NULL);
    pm__rollout__free_unpacked(second, NULL);
}

Test(rollout, batch_percent_rounds_up)
{
    static const char *const names[] = {"a", "b", "c", "d", "e"};
    s_fleet_t f;
    s_fleet(&f, names, 5);
    Pm__RolloutSpec spec = s_spec(0);
    spec.batch_percent = 30; /* 1.5 nodes: 2 */
    Pm__Rollout *r = s_start(&f, &spec, NULL);
    cr_expect_eq(r->spec->batch, 2);
    cr_expect_str_eq(s_tick(r, &f, 0, false), "a b");
    pm__rollout__free_unpacked(r, NULL);
    spec.batch_percent = 1; /* at least one */
    r = s_start(&f, &spec, NULL);
    cr_expect_eq(r->spec->batch, 1);
    cr_expect_str_eq(s_tick(r, &f, 0, false), "a");
    pm__rollout__free_unpacked(r, NULL);
    spec.batch_percent = 100;
    r = s_start(&f, &spec, NULL);
    cr_expect_str_eq(s_tick(r, &f, 0, false), "a b c d e");
    pm__rollout__free_unpacked(r, NULL);
}

/* ---- one node's way ----------------------------------------------------- */

Test(rollout, settles_continuously_then_done)
{
    s_fleet_t f;
    s_fleet(&f, s_three, 3);
    Pm__RolloutSpec spec = s_spec(3);
    spec.max_failures = 3;
    Pm__Rollout *r = s_start(&f, &spec, NULL);
    cr_expect_str_eq(s_tick(r, &f, 0, false), "mx1 mx2 mx3");
    /* still running (phase drain): not done */
    s_answer(&f, "mx1", r->id, false, false, "drain", "");
    s_answer(&f, "mx2", r->id, true, true, "gate", "");
    s_answer(&f, "mx3", r->id, true, true, "gate", "");
    s_tick(r, &f, 1 * S_SEC, false);
    cr_expect_str_eq(s_states(r), "mx1:restarting mx2:settling mx3:settling");
    s_tick(r, &f, 10 * S_SEC, false);
    cr_expect_str_eq(s_states(r), "mx1:restarting mx2:settling mx3:settling");
    cr_expect_gt(s_node(r, "mx2")->settling_since, 0);
    cr_expect_eq(s_node(r, "mx2")->finished, 0);
    /* a bad look while settling fails it, naming the check */
    s_st(&f, "mx3")->postfix_running = false;
    s_tick(r, &f, 10500, false);
    cr_expect_eq(s_node(r, "mx3")->state, PM__ROLLOUT_NODE__STATE__FAILED);
    cr_expect_str_eq(s_node(r, "mx3")->detail,
                     "settling: postfix is not running");
    s_tick(r, &f, 11 * S_SEC, false);
    cr_expect_eq(s_node(r, "mx2")->state, PM__ROLLOUT_NODE__STATE__DONE);
    cr_expect_eq(s_node(r, "mx2")->finished, 11 * S_SEC);
    /* the others: an apply error, a node gone stale */
    s_answer(&f, "mx1", r->id, true, true, "gate", "");
    s_tick(r, &f, 12 * S_SEC, false);
    s_st(&f, "mx1")->apply_error = (char *)"postconf: bad value";
    s_tick(r, &f, 13 * S_SEC, false);
    cr_expect_str_eq(s_node(r, "mx1")->detail,
                     "settling: apply error: postconf: bad value");
    cr_expect_eq(r->state, PM__ROLLOUT__STATE__DONE, "within max_failures");
    cr_expect(strstr(r->reason, "2 of 3 nodes did not restart"), "%s",
              r->reason);
    pm__rollout__free_unpacked(r, NULL);
}

Test(rollout, stale_while_settling_fails)
{
    s_fleet_t f;
    s_fleet(&f, s_three, 3);
    Pm__RolloutSpec spec = s_spec(1);
    spec.max_failures = 1;
    Pm__Rollout *r = s_start(&f, &spec, NULL);
    s_tick(r, &f, 0, false);
    s_answer(&f, "mx1", r->id, true, true, "gate", "");
    s_tick(r, &f, 1 * S_SEC, false);
    s_st(&f, "mx1")->liveness = (char *)"stale";
    cr_expect_str_eq(s_tick(r, &f, 2 * S_SEC, false), "mx2");
    cr_expect_str_eq(s_node(r, "mx1")->detail, "settling: node is stale");
    pm__rollout__free_unpacked(r, NULL);
}

/* A node that answered and failed is FAILED with what it said; one that
 * never answered and is down at the deadline is UNREACHABLE; one that
 * never answered although it is up is FAILED. */
Test(rollout, failed_is_not_unreachable)
{
    static const char *const names[] = {"mx1", "mx2", "mx3", "mx4"};
    s_fleet_t f;
    s_fleet(&f, names, 4);
    Pm__RolloutSpec spec = s_spec(4);
    spec.max_failures = 4;
    Pm__Rollout *r = s_start(&f, &spec, NULL);
    cr_expect_str_eq(s_tick(r, &f, 0, false), "mx1 mx2 mx3 mx4");
    s_answer(&f, "mx1", r->id, true, false, "gate",
             "nothing answers on port 25");
    s_st(&f, "mx2")->liveness = (char *)"down";
    s_answer(&f, "mx4", r->id, false, false, "drain", "");
    s_tick(r, &f, 1 * S_SEC, false);
    cr_expect_eq(s_node(r, "mx1")->state, PM__ROLLOUT_NODE__STATE__FAILED);
    cr_expect_str_eq(s_node(r, "mx1")->detail,
                     "gate: nothing answers on port 25");
    cr_expect_eq(s_node(r, "mx1")->finished, 1 * S_SEC);
    s_tick(r, &f, 300 * S_SEC - 1, false);
    cr_expect_str_eq(s_states(r),
                     "mx1:failed mx2:restarting mx3:restarting "
                     "mx4:restarting",
                     "the deadline is not yet");
    s_tick(r, &f, 300 * S_SEC, false);
    cr_expect_eq(s_node(r, "mx2")->state, PM__ROLLOUT_NODE__STATE__UNREACHABLE);
    cr_expect_str_eq(s_node(r, "mx2")->detail, "no answer in 5m; node is down");
    cr_expect_eq(s_node(r, "mx3")->state, PM__ROLLOUT_NODE__STATE__FAILED);
    cr_expect_str_eq(s_node(r, "mx3")->detail,
                     "no answer in 5m although the node is up");
    cr_expect_str_eq(s_node(r, "mx4")->detail, "drain: not done in 5m");
    cr_expect_eq(r->state, PM__ROLLOUT__STATE__DONE);
    pm__rollout__free_unpacked(r, NULL);
}

Test(rollout, deadline_covers_settling)
{
    s_fleet_t f;
    s_fleet(&f, s_three, 3);
    Pm__RolloutSpec spec = s_spec(1);
    spec.min_healthy_ms = 10 * S_SEC;
    spec.deadline_ms = 12 * S_SEC;
    spec.max_failures = 9;
    Pm__Rollout *r = s_start(&f, &spec, NULL);
    s_tick(r, &f, 0, false);
    s_answer(&f, "mx1", r->id, true, true, "gate", "");
    s_tick(r, &f, 5 * S_SEC, false);
    cr_expect_str_eq(s_tick(r, &f, 12 * S_SEC, false), "mx2");
    cr_expect_str_eq(s_node(r, "mx1")->detail,
                     "settling: not healthy for 10s within the 12s deadline");
    cr_expect_eq(pm_rollout_drain_ms(r), 6 * S_SEC, "half the deadline");
    pm__rollout__free_unpacked(r, NULL);
}

/* ---- failures, halting -------------------------------------------------- */

Test(rollout, halt_leaves_the_others_pending)
{
    s_fleet_t f;
    s_fleet(&f, s_three, 3);
    Pm__RolloutSpec spec = s_spec(1);
    Pm__Rollout *r = s_start(&f, &spec, NULL);
    cr_expect_str_eq(s_tick(r, &f, 0, false), "mx1");
    s_answer(&f, "mx1", r->id, true, false, "restart",
             "postfix did not start: fatal: bad config");
    cr_expect_str_eq(s_tick(r, &f, 1 * S_SEC, true), "");
    cr_expect_eq(r->state, PM__ROLLOUT__STATE__HALTED);
    cr_expect_str_eq(r->reason, "mx1 failed: restart: postfix did not start: "
                                "fatal: bad config (1 failure, more than "
                                "max-failures 0)");
    cr_expect_eq(r->finished, 1 * S_SEC);
    for (int t = 2; t < 400; t += 50)
        cr_expect_str_eq(s_tick(r, &f, t * S_SEC, true), "");
    cr_expect_str_eq(s_states(r), "mx1:failed mx2:pending mx3:pending");
    cr_expect_not(pm_rollout_active(r));
    cr_expect_not(pm_rollout_ticking(r));
    pm__rollout__free_unpacked(r, NULL);
}

/* A node down when its turn comes is UNREACHABLE at once (it is not
 * told, and it counts). */
Test(rollout, down_when_due_is_unreachable_at_once)
{
    s_fleet_t f;
    s_fleet(&f, s_three, 3);
    Pm__RolloutSpec spec = s_spec(1);
    spec.max_failures = 1;
    s_st(&f, "mx1")->liveness = (char *)"down";
    s_st(&f, "mx3")->liveness = (char *)"never";
    Pm__Rollout *r = s_start(&f, &spec, NULL);
    cr_expect_str_eq(s_tick(r, &f, 7, false), "mx2");
    cr_expect_eq(s_node(r, "mx1")->state, PM__ROLLOUT_NODE__STATE__UNREACHABLE);
    cr_expect_str_eq(s_node(r, "mx1")->detail,
                     "node was down when its turn came");
    cr_expect_eq(s_node(r, "mx1")->started, 0);
    cr_expect_eq(s_node(r, "mx1")->finished, 7);
    s_answer(&f, "mx2", r->id, true, true, "gate", "");
    s_tick(r, &f, 1 * S_SEC, false);
    cr_expect_str_eq(s_tick(r, &f, 11 * S_SEC, false), "");
    cr_expect_eq(r->state, PM__ROLLOUT__STATE__HALTED);
    cr_expect(strstr(r->reason, "mx1 unreachable: node was down when its "
                                "turn came (2 failures, more than "
                                "max-failures 1)"),
              "%s", r->reason);
    cr_expect_str_eq(s_node(r, "mx3")->detail,
                     "node was not seen yet when its turn came");
    pm__rollout__free_unpacked(r, NULL);
}

/* A canary that fails halts whatever max_failures allows. */
Test(rollout, failed_canary_halts)
{
    s_fleet_t f;
    char *canary[] = {"mx2"};
    s_fleet(&f, s_three, 3);
    Pm__RolloutSpec spec = s_spec(1);
    spec.canary = canary;
    spec.n_canary = 1;
    spec.max_failures = 2;
    Pm__Rollout *r = s_start(&f, &spec, NULL);
    cr_expect_str_eq(s_tick(r, &f, 0, false), "mx2");
    s_answer(&f, "mx2", r->id, true, false, "gate", "milter not answering");
    cr_expect_str_eq(s_tick(r, &f, 1 * S_SEC, false), "");
    cr_expect_eq(r->state, PM__ROLLOUT__STATE__HALTED);
    cr_expect_str_eq(r->reason, "canary mx2 failed: gate: milter not "
                                "answering");
    char *why = NULL;
    cr_expect_eq(pm_rollout_abort(r, "alice", 9, &why), PM_ECONFLICT,
                 "a halted restart is over: nothing to abort");
    cr_expect(why && strstr(why, "is halted"), "%s", why);
    free(why);
    pm__rollout__free_unpacked(r, NULL);
}

/* ---- a canary push --------------------------------------------------------
 */

static Pm__RolloutSpec
s_push_spec(char **canary, size_t n, uint64_t rev)
{
    Pm__RolloutSpec spec = PM__ROLLOUT_SPEC__INIT;
    spec.canary = canary;
    spec.n_canary = n;
    spec.policy_rev = rev;
    spec.revert_rev = rev - 1;
    spec.min_healthy_ms = 2 * S_SEC;
    spec.deadline_ms = 20 * S_SEC;
    return spec;
}

Test(rollout, canary_push_goes_to_the_canaries_only_one_at_a_time)
{
    s_fleet_t f;
    char *canary[] = {"mx2", "mx1"};
    s_fleet(&f, s_three, 3);
    Pm__RolloutSpec spec = s_push_spec(canary, 2, 7);
    Pm__Rollout *r = s_start(&f, &spec, NULL);
    cr_expect_str_eq(s_states(r), "mx2:pending mx1:pending",
                     "only the canaries are its nodes");
    cr_expect_str_eq(s_tick(r, &f, 0, false), "mx2");
    cr_expect_str_eq(s_tick(r, &f, 1 * S_SEC, true), "mx2",
                     "sent again until it holds the revision");
    s_st(&f, "mx2")->applied_rev = 7;
    cr_expect_str_eq(s_tick(r, &f, 2 * S_SEC, false), "mx2(probe)",
                     "applied: now a message through it");
    cr_expect_str_eq(s_states(r), "mx2:settling mx1:pending");
    cr_expect_str_eq(s_tick(r, &f, 3 * S_SEC, true), "mx2(probe)",
                     "asked again until it answers");
    cr_expect_str_eq(s_tick(r, &f, 5 * S_SEC, false), "",
                     "healthy, but no probe yet: not done");
    s_answer(&f, "mx2", r->id, true, true, "gate", "");
    cr_expect_str_eq(s_tick(r, &f, 6 * S_SEC, true), "");
    cr_expect_str_eq(s_tick(r, &f, 8 * S_SEC, false), "mx1",
                     "probe passed and healthy for min-healthy: the next");
    s_st(&f, "mx1")->applied_rev = 7;
    cr_expect_str_eq(s_tick(r, &f, 9 * S_SEC, false), "mx1(probe)");
    s_answer(&f, "mx1", r->id, true, true, "gate", "");
    s_tick(r, &f, 10 * S_SEC, false);
    s_tick(r, &f, 12 * S_SEC, false);
    cr_expect_eq(r->state, PM__ROLLOUT__STATE__DONE, "%s", s_states(r));
    cr_expect_eq(f.orders[s_index(&f, "mx3")], 0, "mx3 is no canary");
    pm__rollout__free_unpacked(r, NULL);
}

Test(rollout, canary_push_halts_on_a_broken_filter_after_the_deadline)
{
    s_fleet_t f;
    char *canary[] = {"mx1"};
    s_fleet(&f, s_three, 3);
    Pm__RolloutSpec spec = s_push_spec(canary, 1, 4);
    spec.auto_revert = true;
    Pm__Rollout *r = s_start(&f, &spec, NULL);
    s_tick(r, &f, 0, false);
    Pm__NodeStatus *mx1 = s_st(&f, "mx1");
    mx1->applied_rev = 4;
    Pm__ServiceStatus av = PM__SERVICE_STATUS__INIT;
    av.state = PM__SERVICE_STATUS__STATE__DOWN;
    av.detail = (char *)"the milter does not answer";
    mx1->antivirus = &av;
    s_tick(r, &f, 1 * S_SEC, false);
    s_tick(r, &f, 10 * S_SEC, false);
    cr_expect_eq(r->state, PM__ROLLOUT__STATE__RUNNING,
                 "a filter still loading is given until the deadline");
    s_tick(r, &f, 21 * S_SEC, false);
    cr_expect_eq(r->state, PM__ROLLOUT__STATE__HALTED);
    cr_expect(strstr(r->reason, "canary mx1 failed: settling: antivirus "
                                "down: the milter does not answer"),
              "%s", r->reason);
    cr_expect_eq(pm_rollout_abort(r, "alice", 22 * S_SEC, NULL), PM_ECONFLICT,
                 "auto-revert put the canary back already");
    mx1->antivirus = NULL;
    pm__rollout__free_unpacked(r, NULL);
}

Test(rollout, canary_push_recovering_filter_passes_and_refused_apply_fails)
{
    s_fleet_t f;
    char *canary[] = {"mx1"};
    s_fleet(&f, s_three, 3);
    Pm__RolloutSpec spec = s_push_spec(canary, 1, 4);
    Pm__Rollout *r = s_start(&f, &spec, NULL);
    s_tick(r, &f, 0, false);
    Pm__NodeStatus *mx1 = s_st(&f, "mx1");
    mx1->applied_rev = 4;
    s_tick(r, &f, 1 * S_SEC, false); /* applied: settling */
    s_answer(&f, "mx1", r->id, true, true, "gate", "");
    Pm__ServiceStatus av = PM__SERVICE_STATUS__INIT;
    av.state = PM__SERVICE_STATUS__STATE__DOWN;
    mx1->antivirus = &av;
    s_tick(r, &f, 2 * S_SEC, false);
    av.state = PM__SERVICE_STATUS__STATE__OK; /* the engine is loaded */
    s_tick(r, &f, 3 * S_SEC, false);
    cr_expect_eq(r->state, PM__ROLLOUT__STATE__RUNNING,
                 "min-healthy counts from the last bad look");
    s_tick(r, &f, 4 * S_SEC, false);
    cr_expect_eq(r->state, PM__ROLLOUT__STATE__DONE, "%s", s_states(r));
    mx1->antivirus = NULL;
    pm__rollout__free_unpacked(r, NULL);

    /* a canary that refuses the revision fails at once */
    s_fleet(&f, s_three, 3);
    spec = s_push_spec(canary, 1, 5);
    r = s_start(&f, &spec, NULL);
    s_tick(r, &f, 0, false);
    s_st(&f, "mx1")->applied_rev = 4;
    s_st(&f, "mx1")->apply_error = (char *)"revision 5: postfix check failed";
    s_tick(r, &f, 1 * S_SEC, false);
    cr_expect_eq(r->state, PM__ROLLOUT__STATE__HALTED);
    cr_expect_str_eq(r->reason, "canary mx1 failed: apply: revision 5: "
                                "postfix check failed");
    /* halted without auto-revert: abort is the way to put mx1 back */
    cr_assert_eq(pm_rollout_abort(r, "alice", 9 * S_SEC, NULL), PM_OK);
    cr_expect_eq(r->state, PM__ROLLOUT__STATE__ABORTED);
    cr_expect_eq(r->finished, 9 * S_SEC);
    cr_expect_str_eq(r->reason, "aborted by alice after: canary mx1 failed: "
                                "apply: revision 5: postfix check failed");
    cr_expect_eq(pm_rollout_abort(r, "alice", 10 * S_SEC, NULL), PM_ECONFLICT,
                 "once");
    pm__rollout__free_unpacked(r, NULL);
}

/* A canary whose mail does not pass (its filter tempfails everything,
 * though every status is ok) fails at its probe's answer, before any
 * other node has the revision. */
Test(rollout, canary_push_halts_when_the_probe_fails)
{
    s_fleet_t f;
    char *canary[] = {"mx1"};
    s_fleet(&f, s_three, 3);
    Pm__RolloutSpec spec = s_push_spec(canary, 1, 4);
    spec.auto_revert = true;
    Pm__Rollout *r = s_start(&f, &spec, NULL);
    s_tick(r, &f, 0, false);
    s_st(&f, "mx1")->applied_rev = 4;
    cr_expect_str_eq(s_tick(r, &f, 1 * S_SEC, false), "mx1(probe)");
    s_answer(&f, "mx1", r->id, false, false, "gate", "");
    s_tick(r, &f, 2 * S_SEC, false);
    cr_expect_eq(r->state, PM__ROLLOUT__STATE__RUNNING, "still probing");
    s_answer(&f, "mx1", r->id, true, false, "gate",
             "probe through 127.0.0.1:25: exit 1: smtp-source: fatal: "
             "451 4.7.1 Service unavailable");
    s_tick(r, &f, 3 * S_SEC, false);
    cr_expect_eq(r->state, PM__ROLLOUT__STATE__HALTED);
    cr_expect_str_eq(r->reason,
                     "canary mx1 failed: probe: probe through "
                     "127.0.0.1:25: exit 1: smtp-source: fatal: 451 4.7.1 "
                     "Service unavailable");
    cr_expect_eq(f.orders[s_index(&f, "mx2")], 0);
    cr_expect_eq(f.orders[s_index(&f, "mx3")], 0);
    pm__rollout__free_unpacked(r, NULL);

    /* an answer to another rollout is not this probe's */
    s_fleet(&f, s_three, 3);
    r = s_start(&f, &spec, NULL);
    s_tick(r, &f, 0, false);
    s_st(&f, "mx1")->applied_rev = 4;
    s_tick(r, &f, 1 * S_SEC, false);
    s_answer(&f, "mx1", r->id + 1, true, true, "gate", "");
    s_tick(r, &f, 5 * S_SEC, false);
    cr_expect_eq(r->state, PM__ROLLOUT__STATE__RUNNING);
    s_tick(r, &f, 21 * S_SEC, false);
    cr_expect_eq(r->state, PM__ROLLOUT__STATE__HALTED);
    cr_expect(strstr(r->reason, "the probe"), "%s", r->reason);
    pm__rollout__free_unpacked(r, NULL);
}

Test(rollout, canary_push_refusals_and_busy_text)
{
    s_fleet_t f;
    s_fleet(&f, s_three, 3);
    Pm__RolloutSpec spec = s_push_spec(NULL, 0, 3);
    Pm__Rollout *r = NULL;
    char *why = NULL;
    cr_expect_eq(pm_rollout_start(NULL, &spec, f.ptr, f.n, 0, "a", 0, &r, &why),
                 PM_EINVAL);
    cr_expect(strstr(why, "needs at least one canary"), "%s", why);
    free(why);
    char *canary[] = {"mx3"};
    spec = s_push_spec(canary, 1, 3);
    r = s_start(&f, &spec, NULL);
    char *busy = pm_rollout_busy(r);
    cr_expect(strstr(busy, "a canary push is running (rollout 1: revision 3"),
              "%s", busy);
    free(busy);
    pm__rollout__free_unpacked(r, NULL);
}

/* ---- steering ------------------------------------------------------------ */

Test(rollout, pause_resume_abort)
{
    s_fleet_t f;
    char *why = NULL;
    s_fleet(&f, s_three, 3);
    Pm__RolloutSpec spec = s_spec(1);
    Pm__Rollout *r = s_start(&f, &spec, NULL);
    cr_expect_str_eq(s_tick(r, &f, 0, false), "mx1");
    cr_assert_eq(pm_rollout_pause(r, &why), PM_OK);
    cr_expect_eq(pm_rollout_pause(r, &why), PM_ECONFLICT);
    cr_expect(why && strstr(why, "rollout 1 is paused"), "%s", why);
    /* in flight: finishes; nothing new starts */
    s_answer(&f, "mx1", r->id, true, true, "gate", "");
    s_tick(r, &f, 1 * S_SEC, false);
    cr_expect_str_eq(s_tick(r, &f, 20 * S_SEC, true), "");
    cr_expect_str_eq(s_states(r), "mx1:done mx2:pending mx3:pending");
    cr_expect_eq(r->state, PM__ROLLOUT__STATE__PAUSED);
    cr_assert_eq(pm_rollout_resume(r, &why), PM_OK);
    cr_expect_eq(pm_rollout_resume(r, &why), PM_ECONFLICT);
    cr_expect_str_eq(s_tick(r, &f, 21 * S_SEC, false), "mx2");
    cr_assert_eq(pm_rollout_abort(r, "bob (root)", 22 * S_SEC, &why), PM_OK);
    cr_expect_eq(r->state, PM__ROLLOUT__STATE__ABORTED);
    cr_expect_str_eq(r->reason, "aborted by bob (root)");
    cr_expect_eq(r->finished, 22 * S_SEC);
    cr_expect_eq(pm_rollout_abort(r, "bob", 0, &why), PM_ECONFLICT);
    cr_expect_eq(pm_rollout_pause(r, &why), PM_ECONFLICT);
    /* mx2 was told: it finishes, and is followed to the end */
    cr_expect(pm_rollout_ticking(r));
    s_answer(&f, "mx2", r->id, true, true, "gate", "");
    s_tick(r, &f, 23 * S_SEC, false);
    cr_expect_str_eq(s_tick(r, &f, 40 * S_SEC, true), "");
    cr_expect_str_eq(s_states(r), "mx1:done mx2:done mx3:pending");
    cr_expect_eq(r->state, PM__ROLLOUT__STATE__ABORTED);
    cr_expect_eq(r->finished, 22 * S_SEC);
    cr_expect_not(pm_rollout_ticking(r));
    cr_expect_eq(pm_rollout_pause(NULL, &why), PM_ENOTFOUND);
    free(why);
    pm__rollout__free_unpacked(r, NULL);
}

/* Orders go again, when asked to, to RESTARTING nodes that have not
 * answered; a node that answered (even "still draining") is not sent
 * another. */
Test(rollout, resend_until_answered)
{
    s_fleet_t f;
    s_fleet(&f, s_three, 3);
    Pm__RolloutSpec spec = s_spec(2);
    Pm__Rollout *r = s_start(&f, &spec, NULL);
    cr_expect_str_eq(s_tick(r, &f, 0, true), "mx1 mx2");
    cr_expect_str_eq(s_tick(r, &f, 1 * S_SEC, false), "");
    cr_expect_str_eq(s_tick(r, &f, 3 * S_SEC, true), "mx1 mx2");
    s_answer(&f, "mx1", r->id, false, false, "drain", "");
    s_answer(&f, "mx2", r->id + 1, true, true, "gate", "");
    cr_expect_str_eq(s_tick(r, &f, 6 * S_SEC, true), "mx2",
                     "an answer to another rollout is no answer");
    cr_expect_eq(s_node(r, "mx2")->state, PM__ROLLOUT_NODE__STATE__RESTARTING);
    pm__rollout__free_unpacked(r, NULL);
}

Test(rollout, withdrawn_node_and_long_agent_text)
{
    static const char *const names[] = {"mx1", "mx2", "mx3"};
    s_fleet_t f;
    size_t orders[S_MAX], n = 0;
    s_fleet(&f, names, 3);
    Pm__RolloutSpec spec = s_spec(2);
    spec.max_failures = 3;
    Pm__Rollout *r = s_start(&f, &spec, NULL);
    s_tick(r, &f, 0, false);
    /* mx1 answers with more text than a stored string may hold */
    static char phase[4001], error[4001];
    memset(phase, 'p', 4000);
    memset(error, 'e', 4000);
    s_answer(&f, "mx1", r->id, true, false, phase, error);
    /* mx3 is withdrawn before its turn: no view at all */
    cr_expect(pm_rollout_tick(r, f.ptr, 2, 1 * S_SEC, false, orders, &n));
    cr_expect_eq(n, 0);
    cr_expect_leq(strlen(s_node(r, "mx1")->detail), 1024);
    cr_expect_str_eq(s_node(r, "mx3")->detail,
                     "node was no longer enrolled when its turn came");
    pm_store_t *store = NULL;
    cr_assert_eq(pm_store_open(s_dir, 0, 0, &store), PM_OK);
    cr_expect_eq(pm_store_rollout_put(store, r), PM_OK, "still storable");
    pm_store_close(&store);
    pm__rollout__free_unpacked(r, NULL);
}

Test(rollout, texts)
{
    s_fleet_t f;
    s_fleet(&f, s_three, 3);
    Pm__RolloutSpec spec = s_spec(1);
    Pm__Rollout *r = s_start(&f, &spec, NULL);
    s_tick(r, &f, 0, false);
    s_answer(&f, "mx1", r->id, true, true, "gate", "");
    s_tick(r, &f, 1 * S_SEC, false);
    s_tick(r, &f, 11 * S_SEC, false);
    char *busy = pm_rollout_busy(r);
    cr_expect_str_eq(busy, "a rolling restart is running (rollout 1, 1 of 3 "
                           "nodes done): wait for it or `privmta-ctl "
                           "rollout abort`");
    free(busy);
    cr_expect_eq(pm_rollout_drain_ms(r), PM_ROLLOUT_DRAIN_MS);
    cr_expect_str_eq(pm_rollout_state_name(PM__ROLLOUT__STATE__HALTED),
                     "halted");
    pm__rollout__free_unpacked(r, NULL);
}

/* ---- a controller restart ------------------------------------------------ */

/* The rollout is stored after every tick that changed it (before its
 * orders go out, as the controller does); a "killed" controller's
 * successor reads it back and goes on from there: no node is started
 * twice, none gets an order once it settled. Killed after every tick. */
Test(rollout, resumes_from_the_store_after_a_restart)
{
    pm_store_t *store = NULL;
    cr_assert_eq(pm_store_open(s_dir, 0, 0, &store), PM_OK);
    s_fleet_t f;
    s_fleet(&f, s_three, 3);
    Pm__RolloutSpec spec = s_spec(1);
    spec.min_healthy_ms = 2 * S_SEC;
    Pm__Rollout *r = s_start(&f, &spec, NULL);
    cr_assert_eq(pm_store_rollout_put(store, r), PM_OK);
    int64_t now = 0;
    for (int step = 0; step < 40 && r->state == PM__ROLLOUT__STATE__RUNNING;
         step++, now += S_SEC) {
        size_t orders[S_MAX], n = 0;
        bool resend = step % 3 == 0;
        if (pm_rollout_tick(r, f.ptr, f.n, now, resend, orders, &n))
            cr_assert_eq(pm_store_rollout_put(store, r), PM_OK);
        for (size_t i = 0; i < n; i++) {
            size_t k = s_index(&f, r->nodes[orders[i]]->name);
            cr_assert_eq(f.settled[k], 0, "%s ordered after it settled",
                         f.st[k].name);
            f.orders[k]++;
            /* the agent answers the order a second later */
            s_answer(&f, f.st[k].name, r->id, true, true, "gate", "");
        }
        for (size_t i = 0; i < r->n_nodes; i++) {
            size_t k = s_index(&f, r->nodes[i]->name);
            if (r->nodes[i]->state >= PM__ROLLOUT_NODE__STATE__SETTLING)
                f.settled[k] = f.settled[k] ? f.settled[k] : now + 1;
        }
        /* the controller dies: its successor has only the store */
        pm__rollout__free_unpacked(r, NULL);
        pm_store_close(&store);
        cr_assert_eq(pm_store_open(s_dir, 0, 0, &store), PM_OK);
        r = NULL;
        cr_assert_eq(pm_store_rollout_get(store, &r), PM_OK);
    }
    cr_expect_eq(r->state, PM__ROLLOUT__STATE__DONE);
    cr_expect_str_eq(s_states(r), "mx1:done mx2:done mx3:done");
    for (size_t i = 0; i < f.n; i++)
        cr_expect_eq(f.orders[i], 1, "%s: %u orders", f.st[i].name,
                     f.orders[i]);
    pm__rollout__free_unpacked(r, NULL);
    pm_store_close(&store);
}

/* Killed between storing and sending: the order never went out; the
 * successor sends it (resend) and never restarts mx1, already settling. */
Test(rollout, order_lost_in_a_crash_is_sent_by_the_successor)
{
    pm_store_t *store = NULL;
    cr_assert_eq(pm_store_open(s_dir, 0, 0, &store), PM_OK);
    s_fleet_t f;
    s_fleet(&f, s_three, 3);
    Pm__RolloutSpec spec = s_spec(1);
    Pm__Rollout *r = s_start(&f, &spec, NULL);
    s_tick(r, &f, 0, false);
    s_answer(&f, "mx1", r->id, true, true, "gate", "");
    s_tick(r, &f, 1 * S_SEC, false);
    cr_expect_str_eq(s_tick(r, &f, 11 * S_SEC, false), "mx2");
    cr_assert_eq(pm_store_rollout_put(store, r), PM_OK);
    pm__rollout__free_unpacked(r, NULL);
    r = NULL;
    cr_assert_eq(pm_store_rollout_get(store, &r), PM_OK);
    cr_expect_eq(r->state, PM__ROLLOUT__STATE__RUNNING);
    cr_expect_str_eq(s_tick(r, &f, 12 * S_SEC, true), "mx2");
    cr_expect_str_eq(s_states(r), "mx1:done mx2:restarting mx3:pending");
    pm__rollout__free_unpacked(r, NULL);
    pm_store_close(&store);
}

/* ---- the controller's requests (no sockets, no fleet) ------------------- */

static Pm__Response *
s_call(pm_ctld_t *ctld, const Pm__Request *req)
{
    size_t len = 0;
    uint8_t *buf = pm_ctld_handle(ctld, req, "admin (alice)", &len);
    Pm__Response *resp = NULL;
    char *why = NULL;
    cr_assert_eq(pm_wire_unpack_response(buf, len, &resp, &why), PM_OK, "%s",
                 why ? why : "");
    free(buf);
    return resp;
}

static Pm__Request
s_req(Pm__Request__Op op)
{
    Pm__Request req = PM__REQUEST__INIT;
    req.op = op;
    req.expect_rev = -1;
    return req;
}

static Pm__Response__Status
s_set_prefix(pm_ctld_t *ctld, const char *value, char *error, size_t size)
{
    Pm__Edit e = PM__EDIT__INIT, *edits[] = {&e};
    e.key = (char *)"antispam.subject_prefix";
    e.value = (char *)value;
    Pm__Request req = s_req(PM__REQUEST__OP__SET);
    req.edits = edits;
    req.n_edits = 1;
    Pm__Response *resp = s_call(ctld, &req);
    Pm__Response__Status status = resp->status;
    snprintf(error, size, "%s", resp->error);
    pm__response__free_unpacked(resp, NULL);
    return status;
}

/* While a rollout runs (or is paused), policy changes are refused with a
 * sentence that says why and what to do; so is a second rollout. The
 * rollout is in the store for the next controller. */
Test(rollout, controller_refuses_policy_changes_while_running)
{
    pm_store_t *store = NULL;
    char *why = NULL, error[512];
    cr_assert_eq(pm_store_open(s_dir, 0, 0, &store), PM_OK);
    for (size_t i = 0; i < 3; i++) {
        Pm__NodeStatus st = PM__NODE_STATUS__INIT;
        st.name = (char *)s_three[i];
        cr_assert_eq(pm_store_node_put(store, &st), PM_OK);
    }
    pm_ctld_t *ctld = pm_ctld_new(store, NULL, NULL, NULL, &why);
    cr_assert_not_null(ctld);
    Pm__Request status = s_req(PM__REQUEST__OP__ROLLOUT_STATUS);
    Pm__Response *resp = s_call(ctld, &status);
    cr_expect_eq(resp->status, PM__RESPONSE__STATUS__OK);
    cr_expect_null(resp->rollout, "none yet");
    pm__response__free_unpacked(resp, NULL);

    Pm__RolloutSpec spec = s_spec(0);
    Pm__Request start = s_req(PM__REQUEST__OP__ROLLOUT_START);
    start.rollout_spec = &spec;
    resp = s_call(ctld, &start);
    cr_assert_eq(resp->status, PM__RESPONSE__STATUS__OK, "%s", resp->error);
    cr_assert_not_null(resp->rollout);
    cr_expect_eq(resp->rollout->id, 1);
    cr_expect_str_eq(resp->rollout->user, "admin (alice)");
    cr_expect_str_eq(s_states(resp->rollout),
                     "mx1:pending mx2:pending mx3:pending");
    pm__response__free_unpacked(resp, NULL);

    cr_expect_eq(s_set_prefix(ctld, "[x]", error, sizeof error),
                 PM__RESPONSE__STATUS__CONFLICT);
    cr_expect_str_eq(error, "a rolling restart is running (rollout 1, 0 of 3 "
                            "nodes done): wait for it or `privmta-ctl "
                            "rollout abort`");
    resp = s_call(ctld, &start);
    cr_expect_eq(resp->status, PM__RESPONSE__STATUS__CONFLICT);
    cr_expect(strstr(resp->error, "rollout 1 is running"), "%s", resp->error);
    pm__response__free_unpacked(resp, NULL);
    Pm__Request pause = s_req(PM__REQUEST__OP__ROLLOUT_PAUSE);
    resp = s_call(ctld, &pause);
    cr_expect_eq(resp->rollout->state, PM__ROLLOUT__STATE__PAUSED);
    pm__response__free_unpacked(resp, NULL);
    cr_expect_eq(s_set_prefix(ctld, "[x]", error, sizeof error),
                 PM__RESPONSE__STATUS__CONFLICT);
    cr_expect(strstr(error, "is paused (rollout 1"), "%s", error);

    /* a controller started on the same store sees it, then aborts it */
    pm_ctld_destroy(&ctld);
    ctld = pm_ctld_new(store, NULL, NULL, NULL, &why);
    Pm__Request abort_req = s_req(PM__REQUEST__OP__ROLLOUT_ABORT);
    resp = s_call(ctld, &abort_req);
    cr_assert_eq(resp->status, PM__RESPONSE__STATUS__OK, "%s", resp->error);
    cr_expect_eq(resp->rollout->state, PM__ROLLOUT__STATE__ABORTED);
    cr_expect_str_eq(resp->rollout->reason, "aborted by admin (alice)");
    pm__response__free_unpacked(resp, NULL);
    resp = s_call(ctld, &abort_req);
    cr_expect_eq(resp->status, PM__RESPONSE__STATUS__CONFLICT);
    pm__response__free_unpacked(resp, NULL);
    cr_expect_eq(s_set_prefix(ctld, "[x]", error, sizeof error),
                 PM__RESPONSE__STATUS__OK, "%s", error);

    /* a canary that is not a node names it */
    char *canary[] = {"mx7"};
    spec.canary = canary;
    spec.n_canary = 1;
    resp = s_call(ctld, &start);
    cr_expect_eq(resp->status, PM__RESPONSE__STATUS__INVALID);
    cr_expect(strstr(resp->error, "mx7"), "%s", resp->error);
    pm__response__free_unpacked(resp, NULL);
    pm_ctld_destroy(&ctld);
    pm_store_close(&store);
}
