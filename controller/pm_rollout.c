/* pm_rollout.c - the rolling restart state machine (see pm_rollout.h). */
#include "pm_rollout.h"
#include "pm_check.h"
#include "pm_error.h"
#include "pm_mem.h"
#include "pm_wire.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_RUNNING PM__ROLLOUT__STATE__RUNNING
#define S_PAUSED PM__ROLLOUT__STATE__PAUSED
#define S_PENDING PM__ROLLOUT_NODE__STATE__PENDING
#define S_RESTARTING PM__ROLLOUT_NODE__STATE__RESTARTING
#define S_SETTLING PM__ROLLOUT_NODE__STATE__SETTLING
#define S_DONE PM__ROLLOUT_NODE__STATE__DONE
#define S_FAILED PM__ROLLOUT_NODE__STATE__FAILED
#define S_UNREACHABLE PM__ROLLOUT_NODE__STATE__UNREACHABLE

/* Bytes of agent text kept in a node's detail or the reason: what is
 * stored must stay under PM_WIRE_STRING_MAX however long the agent's
 * phase and error were, or the rollout could no longer be stored. */
#define S_TEXT_MAX 1024

static const Pm__RolloutSpec s_no_spec = PM__ROLLOUT_SPEC__INIT;

/* ---- small facts ----------------------------------------------------- */

static const Pm__RolloutSpec *
s_spec(const Pm__Rollout *r)
{
    return r->spec ? r->spec : &s_no_spec;
}

static int64_t
s_min_healthy(const Pm__Rollout *r)
{
    int64_t v = s_spec(r)->min_healthy_ms;
    return v > 0 ? v : PM_ROLLOUT_MIN_HEALTHY_MS_DEFAULT;
}

static int64_t
s_deadline(const Pm__Rollout *r)
{
    int64_t v = s_spec(r)->deadline_ms;
    return v > 0 ? v : PM_ROLLOUT_DEADLINE_MS_DEFAULT;
}

static size_t
s_batch(const Pm__Rollout *r)
{
    uint32_t v = s_spec(r)->batch;
    return v > 0 ? v : PM_ROLLOUT_BATCH_DEFAULT;
}

static bool
s_ended(const Pm__RolloutNode *n)
{
    return n->state == S_DONE || n->state == S_FAILED ||
           n->state == S_UNREACHABLE;
}

static bool
s_in_flight(const Pm__RolloutNode *n)
{
    return n->state == S_RESTARTING || n->state == S_SETTLING;
}

static bool
s_failed(const Pm__RolloutNode *n)
{
    return n->state == S_FAILED || n->state == S_UNREACHABLE;
}

static bool
s_is_canary(const Pm__Rollout *r, const char *name)
{
    const Pm__RolloutSpec *spec = s_spec(r);
    for (size_t i = 0; i < spec->n_canary; i++)
        if (strcmp(spec->canary[i], name) == 0)
            return true;
    return false;
}

static size_t
s_failures(const Pm__Rollout *r)
{
    size_t n = 0;
    for (size_t i = 0; i < r->n_nodes; i++)
        n += s_failed(r->nodes[i]);
    return n;
}

/* "5m", "10s", or "1500ms" for what is not whole seconds. */
static const char *
s_span(int64_t ms, char *buf, size_t size)
{
    if (ms > 0 && ms % 1000 == 0 && ms / 1000 <= UINT32_MAX)
        return pm_duration_format((uint32_t)(ms / 1000), buf, size);
    snprintf(buf, size, "%lldms", (long long)ms);
    return buf;
}

/* Cuts S (valid UTF-8) to at most MAX bytes, between two characters. */
static void
s_cap(char *s, size_t max)
{
    if (strlen(s) <= max)
        return;
    while (max > 0 && ((unsigned char)s[max] & 0xC0) == 0x80)
        max--;
    s[max] = '\0';
}

static void s_set(char **slot, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
s_set(char **slot, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *text = pm_vasprintf(fmt, ap);
    va_end(ap);
    s_cap(text, S_TEXT_MAX);
    pm_wire_set_string(slot, text);
    free(text);
}

const char *
pm_rollout_state_name(Pm__Rollout__State state)
{
    static const char *const names[] = {"running", "paused", "done", "halted",
                                        "aborted"};
    return (unsigned)state < sizeof names / sizeof names[0] ? names[state]
                                                            : "unknown";
}

const char *
pm_rollout_node_state_name(Pm__RolloutNode__State state)
{
    static const char *const names[] = {"pending", "restarting", "settling",
                                        "done",    "failed",     "unreachable"};
    return (unsigned)state < sizeof names / sizeof names[0] ? names[state]
                                                            : "unknown";
}

bool
pm_rollout_active(const Pm__Rollout *r)
{
    return r && (r->state == S_RUNNING || r->state == S_PAUSED);
}

bool
pm_rollout_ticking(const Pm__Rollout *r)
{
    if (!r)
        return false;
    if (pm_rollout_active(r))
        return true;
    for (size_t i = 0; i < r->n_nodes; i++)
        if (s_in_flight(r->nodes[i]))
            return true;
    return false;
}

size_t
pm_rollout_done(const Pm__Rollout *r)
{
    size_t n = 0;
    for (size_t i = 0; r && i < r->n_nodes; i++)
        n += r->nodes[i]->state == S_DONE;
    return n;
}

char *
pm_rollout_busy(const Pm__Rollout *r)
{
    bool paused = r->state == S_PAUSED;
    if (s_spec(r)->policy_rev)
        return pm_asprintf(
            "a canary push is %s (rollout %llu: revision %llu on %zu of %zu "
            "canaries so far): %s or `privmta-ctl rollout abort` (which "
            "reverts the canaries)",
            paused ? "paused" : "running", (unsigned long long)r->id,
            (unsigned long long)s_spec(r)->policy_rev, pm_rollout_done(r),
            r->n_nodes,
            paused ? "`privmta-ctl rollout resume` and wait for it"
                   : "wait for it");
    return pm_asprintf("a rolling restart is %s (rollout %llu, %zu of %zu "
                       "nodes done): %s or `privmta-ctl rollout abort`",
                       paused ? "paused" : "running", (unsigned long long)r->id,
                       pm_rollout_done(r), r->n_nodes,
                       paused ? "`privmta-ctl rollout resume` and wait for it"
                              : "wait for it");
}

int64_t
pm_rollout_drain_ms(const Pm__Rollout *r)
{
    int64_t half = s_deadline(r) / 2;
    return half < PM_ROLLOUT_DRAIN_MS ? half : PM_ROLLOUT_DRAIN_MS;
}

/* ---- starting --------------------------------------------------------- */

/* The id of a new rollout: after the last one this controller ran, after
 * any a node says it answered, and past every id a controller of an
 * earlier epoch can have given. A promoted standby (rollouts are not
 * replicated: nodes that have not reported yet are not known) or a
 * rebuilt store would count from 1 again, and a node answers an order
 * whose id it answered before with its old result: counted done without a
 * restart. Ids a node claims past PM_ROLLOUT_ID_TRUST are not believed,
 * so that a hostile agent cannot run the count to its end. */
static uint64_t
s_next_id(const Pm__Rollout *current, Pm__NodeStatus *const *nodes, size_t n,
          uint64_t epoch)
{
    uint64_t last = current ? current->id : 0;
    if (epoch > PM_ROLLOUT_EPOCH_MAX)
        epoch = PM_ROLLOUT_EPOCH_MAX;
    uint64_t floor = epoch > 1 ? (epoch - 1) << PM_ROLLOUT_EPOCH_SHIFT : 0;
    if (last < floor)
        last = floor;
    for (size_t i = 0; i < n; i++) {
        const Pm__RestartResult *r = nodes[i]->restart;
        if (r && r->rollout > last && r->rollout < PM_ROLLOUT_ID_TRUST)
            last = r->rollout;
    }
    return last + 1;
}

static int
s_spec_check(const Pm__RolloutSpec *spec, char **why)
{
    Pm__Rollout probe = PM__ROLLOUT__INIT;
    char a[32], b[32];
    probe.spec = (Pm__RolloutSpec *)spec;
    if (spec->policy_rev && !spec->n_canary)
        pm_why(why, "rollout", "a canary push needs at least one canary");
    else if (spec->policy_rev && *spec->service)
        pm_why(why, "rollout", "a canary push restarts no service");
    else if (!spec->policy_rev && strcmp(spec->service, "postfix") != 0 &&
             strcmp(spec->service, "milter") != 0 &&
             strcmp(spec->service, "all") != 0)
        pm_why(why, "rollout", "service '%s': postfix, milter or all",
               spec->service);
    else if (spec->batch && spec->batch_percent)
        pm_why(why, "rollout",
               "give a batch size or a share of the nodes, not both");
    else if (spec->batch_percent > 100)
        pm_why(why, "rollout", "a batch of %u%% of the nodes: at most 100%%",
               spec->batch_percent);
    else if (spec->min_healthy_ms < 0 || spec->deadline_ms < 0)
        pm_why(why, "rollout", "durations cannot be negative");
    else if (s_min_healthy(&probe) >= s_deadline(&probe))
        pm_why(why, "rollout",
               "min-healthy %s is not shorter than the deadline %s: no node "
               "could pass",
               s_span(s_min_healthy(&probe), a, sizeof a),
               s_span(s_deadline(&probe), b, sizeof b));
    else
        return PM_OK;
    return PM_EINVAL;
}

/* Every canary names an enrolled node, once. */
static int
s_canary_check(const Pm__RolloutSpec *spec, Pm__NodeStatus *const *nodes,
               size_t n, char **why)
{
    for (size_t i = 0; i < spec->n_canary; i++) {
        const char *name = spec->canary[i];
        bool known = false;
        for (size_t j = 0; j < n && !known; j++)
            known = strcmp(nodes[j]->name, name) == 0;
        if (!known) {
            pm_why(why, "rollout",
                   "canary '%s' is not an enrolled node (`privmta-ctl nodes` "
                   "lists them)",
                   name);
            return PM_EINVAL;
        }
        for (size_t j = 0; j < i; j++)
            if (strcmp(spec->canary[j], name) == 0) {
                pm_why(why, "rollout", "canary '%s' is named twice", name);
                return PM_EINVAL;
            }
    }
    return PM_OK;
}

/* SPEC with its defaults filled in, for N nodes. */
static Pm__RolloutSpec *
s_spec_effective(const Pm__RolloutSpec *spec, size_t n)
{
    Pm__RolloutSpec *s = pm_wire_dup(&spec->base);
    if (s->batch_percent)
        s->batch = (uint32_t)((n * s->batch_percent + 99) / 100);
    if (!s->batch)
        s->batch = PM_ROLLOUT_BATCH_DEFAULT;
    if (!s->min_healthy_ms)
        s->min_healthy_ms = PM_ROLLOUT_MIN_HEALTHY_MS_DEFAULT;
    if (!s->deadline_ms)
        s->deadline_ms = PM_ROLLOUT_DEADLINE_MS_DEFAULT;
    return s;
}

static int
s_by_name(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static void
s_add_node(Pm__Rollout *r, const char *name)
{
    Pm__RolloutNode *node = pm_malloc(sizeof *node);
    pm__rollout_node__init(node);
    pm_wire_set_string(&node->name, name);
    r->nodes[r->n_nodes++] = node;
}

/* R's nodes in restart order: canaries as given, then the rest by name. */
static void
s_order_nodes(Pm__Rollout *r, Pm__NodeStatus *const *nodes, size_t n)
{
    const char **names = pm_calloc(n + 1, sizeof *names);
    for (size_t i = 0; i < n; i++)
        names[i] = nodes[i]->name;
    qsort(names, n, sizeof *names, s_by_name);
    r->nodes = pm_calloc(n + 1, sizeof *r->nodes);
    for (size_t i = 0; i < r->spec->n_canary; i++)
        s_add_node(r, r->spec->canary[i]);
    for (size_t i = 0; i < n && !r->spec->policy_rev; i++)
        if (!s_is_canary(r, names[i]))
            s_add_node(r, names[i]);
    free(names);
}

int
pm_rollout_start(const Pm__Rollout *current, const Pm__RolloutSpec *spec,
                 Pm__NodeStatus *const *nodes, size_t n, uint64_t epoch,
                 const char *user, int64_t now, Pm__Rollout **out, char **why)
{
    if (!spec || !out || (n && !nodes)) {
        pm_why(why, "rollout", "no spec");
        return PM_EINVAL;
    }
    if (pm_rollout_active(current)) {
        pm_why(why, "rollout",
               "rollout %llu is %s (%zu of %zu nodes done): see it with "
               "`privmta-ctl rollout status`, or stop it with `privmta-ctl "
               "rollout abort`",
               (unsigned long long)current->id,
               pm_rollout_state_name(current->state), pm_rollout_done(current),
               current->n_nodes);
        return PM_ECONFLICT;
    }
    if (n == 0) {
        pm_why(why, "rollout", "no node to restart: none is enrolled");
        return PM_EINVAL;
    }
    int rc = s_spec_check(spec, why);
    if (rc == PM_OK)
        rc = s_canary_check(spec, nodes, n, why);
    if (rc != PM_OK)
        return rc;
    Pm__Rollout *r = pm_malloc(sizeof *r);
    pm__rollout__init(r);
    r->id = s_next_id(current, nodes, n, epoch);
    r->spec = s_spec_effective(spec, n);
    r->state = S_RUNNING;
    r->started = now;
    pm_wire_set_string(&r->user, user ? user : "");
    s_order_nodes(r, nodes, n);
    *out = r;
    return PM_OK;
}

/* ---- pause, resume, abort -------------------------------------------- */

static int
s_none(char **why)
{
    pm_why(why, "rollout", "no rolling restart has been started");
    return PM_ENOTFOUND;
}

static int
s_wrong_state(const Pm__Rollout *r, const char *only, char **why)
{
    pm_why(why, "rollout", "rollout %llu is %s: only %s",
           (unsigned long long)r->id, pm_rollout_state_name(r->state), only);
    return PM_ECONFLICT;
}

int
pm_rollout_pause(Pm__Rollout *r, char **why)
{
    if (!r)
        return s_none(why);
    if (r->state != S_RUNNING)
        return s_wrong_state(r, "a running rollout can be paused", why);
    r->state = S_PAUSED;
    return PM_OK;
}

int
pm_rollout_resume(Pm__Rollout *r, char **why)
{
    if (!r)
        return s_none(why);
    if (r->state != S_PAUSED)
        return s_wrong_state(r, "a paused rollout can be resumed", why);
    r->state = S_RUNNING;
    return PM_OK;
}

int
pm_rollout_abort(Pm__Rollout *r, const char *user, int64_t now, char **why)
{
    if (!r)
        return s_none(why);
    /* with auto_revert, a halted canary push went back already */
    bool halted_push = r->state == PM__ROLLOUT__STATE__HALTED && r->spec &&
                       r->spec->policy_rev && !r->spec->auto_revert;
    if (!pm_rollout_active(r) && !halted_push)
        return s_wrong_state(r,
                             "a running or paused rollout, or a canary "
                             "push halted without auto-revert, can be "
                             "aborted",
                             why);
    const char *by = user && *user ? user : "an admin";
    if (halted_push)
        s_set(&r->reason, "aborted by %s after: %s", by, r->reason);
    else
        s_set(&r->reason, "aborted by %s", by);
    r->state = PM__ROLLOUT__STATE__ABORTED;
    r->finished = now;
    return PM_OK;
}

/* ---- ticking ---------------------------------------------------------- */

typedef struct {
    Pm__NodeStatus **sorted; /* borrowed views, by name */
    size_t n;
} s_views_t;

static int
s_view_by_name(const void *a, const void *b)
{
    return strcmp((*(Pm__NodeStatus *const *)a)->name,
                  (*(Pm__NodeStatus *const *)b)->name);
}

static s_views_t
s_views(Pm__NodeStatus *const *views, size_t n)
{
    s_views_t v = {pm_calloc(n + 1, sizeof *v.sorted), n};
    if (n)
        memcpy(v.sorted, views, n * sizeof *views);
    qsort(v.sorted, n, sizeof *v.sorted, s_view_by_name);
    return v;
}

static const Pm__NodeStatus *
s_view(const s_views_t *v, const char *name)
{
    Pm__NodeStatus key = PM__NODE_STATUS__INIT, *kp = &key;
    key.name = (char *)name;
    Pm__NodeStatus **hit =
        bsearch(&kp, v->sorted, v->n, sizeof *v->sorted, s_view_by_name);
    return hit ? *hit : NULL;
}

static bool
s_up(const Pm__NodeStatus *view)
{
    return view && strcmp(view->liveness, "up") == 0;
}

/* How a node that is not up is, for a detail line. */
static const char *
s_liveness(const Pm__NodeStatus *view)
{
    if (!view)
        return "no longer enrolled";
    if (!*view->liveness || strcmp(view->liveness, "never") == 0)
        return "not seen yet";
    return view->liveness;
}

/* The node's answer to R's order, or NULL. */
static const Pm__RestartResult *
s_answer(const Pm__Rollout *r, const Pm__NodeStatus *view)
{
    return view && view->restart && view->restart->rollout == r->id
               ? view->restart
               : NULL;
}

/* Whether the node acted on R's order: answered the restart, or (a canary
 * push) holds the revision. */
static bool
s_answered(const Pm__Rollout *r, const Pm__NodeStatus *view)
{
    uint64_t rev = s_spec(r)->policy_rev;
    return rev ? view && view->applied_rev >= rev : s_answer(r, view) != NULL;
}

static void s_end(Pm__RolloutNode *node, Pm__RolloutNode__State state,
                  int64_t now, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void
s_end(Pm__RolloutNode *node, Pm__RolloutNode__State state, int64_t now,
      const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *text = pm_vasprintf(fmt, ap);
    va_end(ap);
    s_cap(text, S_TEXT_MAX);
    pm_wire_set_string(&node->detail, text);
    free(text);
    node->state = state;
    node->finished = now;
}

/* A node told to restart: its answer, or the deadline. */
static void
s_follow_restarting(const Pm__Rollout *r, Pm__RolloutNode *node,
                    const Pm__NodeStatus *view, int64_t now)
{
    const Pm__RestartResult *res = s_answer(r, view);
    const char *phase = res && *res->phase ? res->phase : "restart";
    char span[32];
    if (res && res->done && res->ok) {
        node->state = S_SETTLING;
        node->settling_since = now;
        return;
    }
    if (res && res->done)
        return s_end(node, S_FAILED, now, "%s: %s", phase,
                     *res->error ? res->error : "failed, no reason given");
    if (now - node->started < s_deadline(r))
        return;
    s_span(s_deadline(r), span, sizeof span);
    if (!s_up(view) && !res)
        s_end(node, S_UNREACHABLE, now, "no answer in %s; node is %s", span,
              s_liveness(view));
    else if (!s_up(view))
        s_end(node, S_UNREACHABLE, now,
              "no result in %s (last heard in phase %s); node is %s", span,
              phase, s_liveness(view));
    else if (res)
        s_end(node, S_FAILED, now, "%s: not done in %s", phase, span);
    else
        s_end(node, S_FAILED, now, "no answer in %s although the node is up",
              span);
}

/* A restarted node must stay healthy for min_healthy, continuously. */
static void
s_follow_settling(const Pm__Rollout *r, Pm__RolloutNode *node,
                  const Pm__NodeStatus *view, int64_t now)
{
    char a[32], b[32];
    if (!s_up(view))
        s_end(node, S_FAILED, now, "settling: node is %s", s_liveness(view));
    else if (!view->postfix_running)
        s_end(node, S_FAILED, now, "settling: postfix is not running");
    else if (*view->apply_error)
        s_end(node, S_FAILED, now, "settling: apply error: %s",
              view->apply_error);
    else if (now - node->settling_since >= s_min_healthy(r))
        s_end(node, S_DONE, now, "%s", "");
    else if (now - node->started >= s_deadline(r))
        s_end(node, S_FAILED, now,
              "settling: not healthy for %s within the %s deadline",
              s_span(s_min_healthy(r), a, sizeof a),
              s_span(s_deadline(r), b, sizeof b));
}

/* ---- a canary push ---------------------------------------------------- */

/* What is wrong with a canary running the pushed revision, or NULL: the
 * restart checks, and the filter's services, which a policy can break
 * (antivirus on while the node's milter cannot scan: mail tempfails). */
static const char *
s_policy_problem(const Pm__NodeStatus *view, char *buf, size_t size)
{
    const Pm__ServiceStatus *svc[] = {view->antivirus, view->antispam,
                                      view->dkim};
    const char *names[] = {"antivirus", "antispam", "dkim"};
    if (!s_up(view)) {
        snprintf(buf, size, "node is %s", s_liveness(view));
        return buf;
    }
    if (!view->postfix_running)
        return "postfix is not running";
    if (*view->apply_error) {
        snprintf(buf, size, "apply error: %s", view->apply_error);
        return buf;
    }
    for (size_t i = 0; i < 3; i++)
        if (svc[i] && svc[i]->state == PM__SERVICE_STATUS__STATE__DOWN) {
            snprintf(buf, size, "%s down: %s", names[i], svc[i]->detail);
            return buf;
        }
    return NULL;
}

/* A canary sent the revision: it applied it (SETTLING), refused it
 * (FAILED), or the deadline. */
static void
s_follow_applying(const Pm__Rollout *r, Pm__RolloutNode *node,
                  const Pm__NodeStatus *view, int64_t now)
{
    uint64_t rev = s_spec(r)->policy_rev;
    char span[32];
    if (view && view->applied_rev >= rev && !*view->apply_error) {
        node->state = S_SETTLING;
        node->settling_since = now;
        return;
    }
    if (view && *view->apply_error && view->applied_rev < rev)
        return s_end(node, S_FAILED, now, "apply: %s", view->apply_error);
    if (now - node->started < s_deadline(r))
        return;
    s_span(s_deadline(r), span, sizeof span);
    if (!s_up(view))
        s_end(node, S_UNREACHABLE, now,
              "revision %llu not applied in %s; node is %s",
              (unsigned long long)rev, span, s_liveness(view));
    else
        s_end(node, S_FAILED, now,
              "revision %llu not applied in %s although the node is up",
              (unsigned long long)rev, span);
}

/* A canary on the pushed revision must pass the probe order (a message
 * through its Postfix and filter: pm_restart.h) and be healthy for
 * min_healthy on end. Unlike a restarted node it is not failed at the
 * first bad look: the milter may still be loading what the revision asks
 * for, so the clock starts again, and only the deadline fails it, naming
 * the problem; a probe that failed fails it at once. */
static void
s_follow_canary(const Pm__Rollout *r, Pm__RolloutNode *node,
                const Pm__NodeStatus *view, int64_t now)
{
    char buf[S_TEXT_MAX], a[32], b[32];
    const Pm__RestartResult *probe = s_answer(r, view);
    if (probe && probe->done && !probe->ok)
        return s_end(node, S_FAILED, now, "probe: %s",
                     *probe->error ? probe->error : "failed, no reason given");
    const char *problem = view ? s_policy_problem(view, buf, sizeof buf)
                               : "node is no longer enrolled";
    if (!problem && !(probe && probe->done))
        problem = "no message through its Postfix and filter yet (the "
                  "probe)";
    if (problem)
        node->settling_since = now;
    if (!problem && now - node->settling_since >= s_min_healthy(r))
        s_end(node, S_DONE, now, "%s", "");
    else if (now - node->started >= s_deadline(r))
        s_end(node, S_FAILED, now,
              "settling: %s (not healthy for %s within the %s deadline)",
              problem ? problem : "not long enough",
              s_span(s_min_healthy(r), a, sizeof a),
              s_span(s_deadline(r), b, sizeof b));
}

/* Halts R when a canary did not make it, or when the failures are more
 * than max_failures; the reason names the first failed node. */
static void
s_check_halt(Pm__Rollout *r, int64_t now)
{
    const Pm__RolloutNode *first = NULL;
    size_t failures = 0;
    for (size_t i = 0; i < r->n_nodes; i++)
        if (s_failed(r->nodes[i])) {
            first = first ? first : r->nodes[i];
            failures++;
        }
    if (!pm_rollout_active(r) || !first)
        return;
    bool canary = s_is_canary(r, first->name);
    uint32_t max = s_spec(r)->max_failures;
    if (!canary && failures <= max)
        return;
    r->state = PM__ROLLOUT__STATE__HALTED;
    r->finished = now;
    if (canary)
        s_set(&r->reason, "canary %s %s: %s", first->name,
              pm_rollout_node_state_name(first->state), first->detail);
    else
        s_set(&r->reason,
              "%s %s: %s (%zu failure%s, more than max-failures "
              "%u)",
              first->name, pm_rollout_node_state_name(first->state),
              first->detail, failures, failures == 1 ? "" : "s", max);
}

/* Starts node I if it is up; else it is UNREACHABLE at once. */
static void
s_begin(Pm__Rollout *r, size_t i, const s_views_t *v, int64_t now,
        size_t *orders, size_t *n_orders)
{
    Pm__RolloutNode *node = r->nodes[i];
    const Pm__NodeStatus *view = s_view(v, node->name);
    if (!s_up(view))
        return s_end(node, S_UNREACHABLE, now, "node was %s when its turn came",
                     s_liveness(view));
    node->state = S_RESTARTING;
    node->started = now;
    orders[(*n_orders)++] = i;
}

/* Starts the PENDING nodes whose turn it is (see pm_rollout.h). */
static void
s_schedule(Pm__Rollout *r, const s_views_t *v, int64_t now, size_t *orders,
           size_t *n_orders)
{
    size_t busy = 0;
    for (size_t i = 0; i < r->n_nodes; i++)
        busy += s_in_flight(r->nodes[i]);
    for (size_t i = 0; i < r->n_nodes && r->state == S_RUNNING; i++) {
        Pm__RolloutNode *node = r->nodes[i];
        bool canary = s_is_canary(r, node->name);
        if (node->state != S_PENDING) {
            if (canary && node->state != S_DONE)
                return; /* a canary goes alone, and must be DONE */
            continue;
        }
        if (busy >= (canary ? 1 : s_batch(r)))
            return;
        s_begin(r, i, v, now, orders, n_orders);
        if (node->state == S_RESTARTING && canary)
            return;
        if (node->state == S_RESTARTING)
            busy++;
        else
            s_check_halt(r, now);
    }
}

/* Every node ended: the rollout is DONE (failures within max_failures, or
 * it would have halted). */
static void
s_check_done(Pm__Rollout *r, int64_t now)
{
    if (!pm_rollout_active(r))
        return;
    for (size_t i = 0; i < r->n_nodes; i++)
        if (!s_ended(r->nodes[i]))
            return;
    r->state = PM__ROLLOUT__STATE__DONE;
    r->finished = now;
    size_t failures = s_failures(r);
    for (size_t i = 0; failures && i < r->n_nodes; i++)
        if (s_failed(r->nodes[i])) {
            s_set(&r->reason,
                  "%zu of %zu nodes did not restart (within max-failures "
                  "%u); the first: %s %s: %s",
                  failures, r->n_nodes, s_spec(r)->max_failures,
                  r->nodes[i]->name,
                  pm_rollout_node_state_name(r->nodes[i]->state),
                  r->nodes[i]->detail);
            break;
        }
}

/* A canary push: a canary that just applied the revision (it was
 * RESTARTING before this tick, WAS) is told to probe, and told again on
 * RESEND until it answers; pm_rollout_probing says which orders those
 * are. Only while the rollout runs. */
static void
s_probe_orders(const Pm__Rollout *r, const s_views_t *v,
               const Pm__RolloutNode__State *was, bool resend, size_t *orders,
               size_t *n_orders)
{
    for (size_t i = 0;
         s_spec(r)->policy_rev && r->state == S_RUNNING && i < r->n_nodes; i++)
        if (r->nodes[i]->state == S_SETTLING &&
            (was[i] == S_RESTARTING ||
             (resend && !s_answer(r, s_view(v, r->nodes[i]->name)))))
            orders[(*n_orders)++] = i;
}

bool
pm_rollout_probing(const Pm__Rollout *r, size_t node)
{
    return r->spec && r->spec->policy_rev && node < r->n_nodes &&
           r->nodes[node]->state == S_SETTLING;
}

bool
pm_rollout_tick(Pm__Rollout *r, Pm__NodeStatus *const *views, size_t n_views,
                int64_t now, bool resend, size_t *orders, size_t *n_orders)
{
    size_t len_before = 0, len_after = 0;
    uint8_t *before = pm_wire_pack(&r->base, &len_before);
    s_views_t v = s_views(views, n_views);
    *n_orders = 0;
    Pm__RolloutNode__State *was = pm_calloc(r->n_nodes + 1, sizeof *was);
    for (size_t i = 0; i < r->n_nodes; i++) {
        Pm__RolloutNode *node = r->nodes[i];
        was[i] = node->state;
        const Pm__NodeStatus *view = s_view(&v, node->name);
        bool policy = s_spec(r)->policy_rev != 0;
        if (node->state == S_RESTARTING)
            (policy ? s_follow_applying : s_follow_restarting)(r, node, view,
                                                               now);
        else if (node->state == S_SETTLING)
            (policy ? s_follow_canary : s_follow_settling)(r, node, view, now);
    }
    s_check_halt(r, now);
    for (size_t i = 0; resend && i < r->n_nodes; i++)
        if (r->nodes[i]->state == S_RESTARTING &&
            !s_answered(r, s_view(&v, r->nodes[i]->name)))
            orders[(*n_orders)++] = i;
    s_probe_orders(r, &v, was, resend, orders, n_orders);
    s_schedule(r, &v, now, orders, n_orders);
    s_check_done(r, now);
    free(v.sorted);
    free(was);
    uint8_t *after = pm_wire_pack(&r->base, &len_after);
    bool changed =
        len_before != len_after || memcmp(before, after, len_after) != 0;
    free(before);
    free(after);
    return changed;
}
