/* pm_ctld_rollout.c - rolling restarts in the controller: the current
 * rollout stored, stepped (pm_rollout) and its orders sent (pm_fleet). */
#include "pm_ctld_private.h"
#include "pm_error.h"
#include "pm_log.h"
#include "pm_mem.h"
#include "pm_rollout.h"
#include "pm_text.h"
#include "pm_wire.h"

#include <stdlib.h>

/* Caps on agent-supplied text in one log line. */
#define S_LOG_NAME_MAX 80
#define S_LOG_TEXT_MAX 512

/* What changed from OLD to NEW, for the operator: nodes that moved on,
 * and the rollout's own state. Names and details came from agents or
 * certificates: escaped. */
static void
s_rollout_log(const Pm__Rollout *old, const Pm__Rollout *new)
{
    unsigned long long id = (unsigned long long)new->id;
    if (old->id != new->id)
        return; /* a new rollout: its start is logged on its own */
    for (size_t i = 0; i < new->n_nodes &&i < old->n_nodes; i++) {
        const Pm__RolloutNode *a = old->nodes[i], *b = new->nodes[i];
        if (a->state == b->state)
            continue;
        char *name = pm_text_escape(b->name, S_LOG_NAME_MAX);
        char *detail = pm_text_escape(b->detail, S_LOG_TEXT_MAX);
        const char *state = pm_rollout_node_state_name(b->state);
        if (b->state == PM__ROLLOUT_NODE__STATE__FAILED ||
            b->state == PM__ROLLOUT_NODE__STATE__UNREACHABLE)
            pm_warn("rollout %llu: node %s %s: %s", id, name, state, detail);
        else
            pm_info("rollout %llu: node %s %s", id, name, state);
        free(name);
        free(detail);
    }
    if (old->state == new->state)
        return;
    char *reason = pm_text_escape(new->reason, S_LOG_TEXT_MAX);
    if (new->state == PM__ROLLOUT__STATE__HALTED)
        pm_warn("rollout %llu halted: %s", id, reason);
    else
        pm_info("rollout %llu %s%s%s", id, pm_rollout_state_name(new->state),
                *reason ? ": " : "", reason);
    free(reason);
}

static void s_canary_end(pm_ctld_t *self, const Pm__Rollout *old);

/* NEXT (taken over, already stored) becomes the current rollout. */
static void
s_rollout_adopt(pm_ctld_t *self, Pm__Rollout *next)
{
    Pm__Rollout *old = self->rollout;
    if (old)
        s_rollout_log(old, next);
    self->rollout = next;
    s_canary_end(self, old);
    if (old)
        pm__rollout__free_unpacked(old, NULL);
}

/* Stores NEXT (taken over) and makes it the current rollout. On a store
 * error nothing changes; R (when not NULL) says why. */
static bool
s_rollout_replace(pm_ctld_t *self, Pm__Rollout **next_p, pm_ctld_reply_t *r)
{
    Pm__Rollout *next = *next_p;
    *next_p = NULL;
    int rc = pm_store_rollout_put(self->store, next);
    if (rc != PM_OK) {
        pm_error("cannot store rollout %llu: %s; no node is told anything "
                 "until it can be",
                 (unsigned long long)next->id, pm_strerror(rc));
        if (r)
            pm_ctld_store_fail(r, rc, "storing the rollout");
        pm__rollout__free_unpacked(next, NULL);
        return false;
    }
    s_rollout_adopt(self, next);
    return true;
}

/* Sends the current rollout's order to its nodes at ORDERS (N). */
static void
s_rollout_send(pm_ctld_t *self, const size_t *orders, size_t n)
{
    const Pm__Rollout *ro = self->rollout;
    Pm__RestartOrder order = PM__RESTART_ORDER__INIT;
    if (!ro->spec)
        return; /* stored without one: nothing to order */
    order.rollout = ro->id;
    order.service = ro->spec->service;
    order.drain_ms = pm_rollout_drain_ms(ro);
    if (ro->spec->policy_rev) { /* a canary push */
        order.service = PM_WIRE_SERVICE_PROBE;
        order.drain_ms = 0;
    }
    for (size_t i = 0; i < n; i++) {
        const char *name = ro->nodes[orders[i]]->name;
        if (ro->spec->policy_rev && !pm_rollout_probing(ro, orders[i])) {
            pm_fleet_pin(self->fleet, name, ro->spec->policy_rev);
            continue; /* a canary: the new revision first */
        }
        if (!pm_fleet_restart(self->fleet, name, &order)) {
            char *label = pm_text_escape(name, S_LOG_NAME_MAX);
            pm_debug("rollout %llu: node %s is not connected; its order "
                     "goes again later",
                     (unsigned long long)ro->id, label);
            free(label);
        }
    }
}

/* One step of the current rollout (see pm_rollout.h). What changed is
 * stored before any order goes out, so a controller killed at any point
 * never has a node restarted twice. Waits until the fleet has heard from
 * its live nodes (pm_fleet_settled); FORCE: does not wait for the next
 * PM_CTLD_ROLLOUT_TICK_MS. */
void
pm_ctld_rollout_tick(pm_ctld_t *self, bool force)
{
    int64_t mono = zclock_mono();
    if (!self->fleet || !pm_rollout_ticking(self->rollout) ||
        (!force && mono < self->rollout_next) || !pm_fleet_settled(self->fleet))
        return;
    self->rollout_next = mono + PM_CTLD_ROLLOUT_TICK_MS;
    bool resend = mono >= self->resend_at;
    Pm__NodeStatus **views = NULL;
    size_t n = 0, n_orders = 0;
    pm_fleet_nodes(self->fleet, &views, &n);
    Pm__Rollout *next = pm_wire_dup(&self->rollout->base);
    size_t *orders = pm_calloc(next->n_nodes + 1, sizeof *orders);
    bool changed = pm_rollout_tick(next, views, n, zclock_time(), resend,
                                   orders, &n_orders);
    pm_store_nodes_free(&views, n);
    if (!changed)
        pm__rollout__free_unpacked(next, NULL);
    if (!changed || s_rollout_replace(self, &next, NULL)) {
        s_rollout_send(self, orders, n_orders);
        if (resend)
            self->resend_at = mono + PM_ROLLOUT_RESEND_MS;
    }
    free(orders);
}

static void
s_reply_rollout(pm_ctld_t *self, pm_ctld_reply_t *r)
{
    if (!self->rollout)
        return;
    r->rollout = pm_wire_dup(&self->rollout->base);
    r->resp.rollout = r->rollout;
}

static void
s_rollout_fail(pm_ctld_reply_t *r, int rc, char *why)
{
    pm_ctld_fail(r,
                 rc == PM_ECONFLICT   ? PM__RESPONSE__STATUS__CONFLICT
                 : rc == PM_ENOTFOUND ? PM__RESPONSE__STATUS__NOT_FOUND
                                      : PM__RESPONSE__STATUS__INVALID,
                 "%s", why ? why : pm_strerror(rc));
    free(why);
}

/* Why no rollout may start now, or NULL: a canary push that ended
 * without its revision going everywhere or back (halted without
 * auto-revert, or a revert refused) still holds the other nodes on
 * revert_rev while its revision is the head (pm_ctld_rollout_hold). A new
 * rollout would replace the record that holds them, so a controller
 * restart would send the failed revision to every node, and a new canary
 * push would take that revision as the one to go back to. */
static char *
s_held_back(pm_ctld_t *self)
{
    const Pm__Rollout *ro = self->rollout;
    uint64_t head = 0;
    if (pm_rollout_active(ro) || pm_store_head(self->store, &head) != PM_OK ||
        !pm_ctld_rollout_holds(self, head))
        return NULL; /* a running one refuses by itself (pm_rollout_start) */
    return pm_asprintf(
        "canary push %llu %s: revision %llu is on its canaries only and "
        "every other node keeps revision %llu; first `privmta-ctl rollout "
        "abort` (the canaries go back) or a push without --canary (a "
        "revision for every node)",
        (unsigned long long)ro->id, pm_rollout_state_name(ro->state),
        (unsigned long long)ro->spec->policy_rev,
        (unsigned long long)ro->spec->revert_rev);
}

void
pm_ctld_rollout_start(pm_ctld_t *self, const Pm__Request *req,
                      const char *author, pm_ctld_reply_t *r)
{
    char *held = s_held_back(self);
    if (held)
        return s_rollout_fail(r, PM_ECONFLICT, held);
    Pm__NodeStatus **nodes = NULL;
    Pm__Rollout *next = NULL;
    size_t n = 0;
    char *why = NULL;
    pm_ctld_enrolled(self, &nodes, &n);
    int rc = pm_rollout_start(self->rollout, req->rollout_spec, nodes, n,
                              self->epoch, author, zclock_time(), &next, &why);
    pm_store_nodes_free(&nodes, n);
    if (rc != PM_OK)
        return s_rollout_fail(r, rc, why);
    if (!s_rollout_replace(self, &next, r))
        return;
    pm_info("rollout %llu started by %s: %s on %zu nodes",
            (unsigned long long)self->rollout->id, author,
            self->rollout->spec->service, self->rollout->n_nodes);
    pm_ctld_rollout_tick(self, true); /* the first nodes start now */
    s_reply_rollout(self, r);
}

void
pm_ctld_rollout_status(pm_ctld_t *self, const Pm__Request *req,
                       const char *author, pm_ctld_reply_t *r)
{
    (void)req;
    (void)author;
    s_reply_rollout(self, r); /* none yet: OK without one */
}

/* PAUSE, RESUME and ABORT: a step on a copy, stored, then current. */
void
pm_ctld_rollout_step(pm_ctld_t *self, const Pm__Request *req,
                     const char *author, pm_ctld_reply_t *r)
{
    Pm__Rollout *next =
        self->rollout ? pm_wire_dup(&self->rollout->base) : NULL;
    char *why = NULL;
    int rc = req->op == PM__REQUEST__OP__ROLLOUT_PAUSE
                 ? pm_rollout_pause(next, &why)
             : req->op == PM__REQUEST__OP__ROLLOUT_RESUME
                 ? pm_rollout_resume(next, &why)
                 : pm_rollout_abort(next, author, zclock_time(), &why);
    if (rc != PM_OK) {
        if (next)
            pm__rollout__free_unpacked(next, NULL);
        return s_rollout_fail(r, rc, why);
    }
    if (s_rollout_replace(self, &next, r))
        s_reply_rollout(self, r);
}

/* The rollout the store holds: one that was running when the controller
 * stopped goes on from where it was (the first tick re-sends the orders
 * of nodes that had not answered). */
void
pm_ctld_rollout_load(pm_ctld_t *self)
{
    int rc = pm_store_rollout_get(self->store, &self->rollout);
    if (rc != PM_OK && rc != PM_ENOTFOUND)
        pm_error("cannot read the current rollout: %s", pm_strerror(rc));
    else if (pm_rollout_active(self->rollout))
        pm_info("rollout %llu is %s: %zu of %zu nodes done; taking it up "
                "where it was",
                (unsigned long long)self->rollout->id,
                pm_rollout_state_name(self->rollout->state),
                pm_rollout_done(self->rollout), self->rollout->n_nodes);
}

/* ---- a canary push (policy push --canary) ------------------------------ */

/* Whether R, a canary push that ended, is to be undone: a canary failed
 * and auto_revert says so, or an admin aborted it. */
static bool
s_canary_reverts(const Pm__Rollout *ro)
{
    return ro->state == PM__ROLLOUT__STATE__ABORTED ||
           (ro->state == PM__ROLLOUT__STATE__HALTED && ro->spec->auto_revert);
}

/* The canaries go back: the revision the other nodes kept is committed
 * again as the new head (revisions only move forward) and sent to every
 * node. Refused, rightly, when someone committed since (compare-and-swap
 * on the pushed revision): that commit went to everyone already. */
static void
s_canary_revert(pm_ctld_t *self)
{
    const Pm__Rollout *ro = self->rollout;
    unsigned long long rev = (unsigned long long)ro->spec->policy_rev;
    Pm__Revision *old = NULL;
    int rc = pm_store_get(self->store, ro->spec->revert_rev, &old);
    if (rc != PM_OK) {
        pm_error("canary push %llu: cannot read revision %llu to revert to: "
                 "%s",
                 (unsigned long long)ro->id,
                 (unsigned long long)ro->spec->revert_rev, pm_strerror(rc));
        return;
    }
    char *reason = pm_text_escape(ro->reason, S_LOG_TEXT_MAX);
    char *message = pm_asprintf("revert of revision %llu (canary push, rollout "
                                "%llu): %s",
                                rev, (unsigned long long)ro->id, reason);
    Pm__Request req = PM__REQUEST__INIT;
    req.expect_rev = (int64_t)ro->spec->policy_rev;
    req.message = message;
    pm_ctld_reply_t r = pm_ctld_reply_new();
    pm_ctld_commit(self, old->policy, &req, "privmta-controller",
                   ro->spec->revert_rev, NULL, &r);
    if (r.resp.status == PM__RESPONSE__STATUS__OK)
        pm_warn("canary push %llu: %s; revision %llu (the content of %llu) "
                "goes to every node",
                (unsigned long long)ro->id, reason,
                (unsigned long long)r.resp.head,
                (unsigned long long)ro->spec->revert_rev);
    else
        pm_error("canary push %llu: revision %llu not reverted: %s",
                 (unsigned long long)ro->id, rev, r.resp.error);
    pm_ctld_reply_clear(&r);
    pm__revision__free_unpacked(old, NULL);
    free(message);
    free(reason);
}

/* The current rollout just changed from OLD: a canary push that ended
 * sends its revision to every node (done), or reverts (see above), or
 * leaves the others where they are (halted without auto_revert). */
static void
s_canary_end(pm_ctld_t *self, const Pm__Rollout *old)
{
    const Pm__Rollout *ro = self->rollout;
    bool ended =
        old && old->id == ro->id && !pm_rollout_active(ro) &&
        (pm_rollout_active(old) || (old->state == PM__ROLLOUT__STATE__HALTED &&
                                    ro->state == PM__ROLLOUT__STATE__ABORTED));
    if (!ended || !ro->spec || !ro->spec->policy_rev || !self->fleet)
        return;
    unsigned long long rev = (unsigned long long)ro->spec->policy_rev;
    if (ro->state == PM__ROLLOUT__STATE__DONE) {
        pm_info("canary push %llu passed: revision %llu goes to every node",
                (unsigned long long)ro->id, rev);
        pm_fleet_publish(self->fleet, ro->spec->policy_rev);
    } else if (s_canary_reverts(ro)) {
        s_canary_revert(self);
    } else {
        pm_warn("canary push %llu halted: revision %llu stays on the "
                "canaries, every other node keeps revision %llu; `privmta-ctl "
                "rollout abort` puts the canaries back, or push again",
                (unsigned long long)ro->id, rev,
                (unsigned long long)ro->spec->revert_rev);
    }
}

bool
pm_ctld_rollout_holds(const pm_ctld_t *self, uint64_t head)
{
    const Pm__Rollout *ro = self->rollout;
    /* none, over, or a commit since went to everyone */
    return ro && ro->spec && ro->spec->policy_rev &&
           ro->state != PM__ROLLOUT__STATE__DONE &&
           head == ro->spec->policy_rev;
}

void
pm_ctld_rollout_hold(pm_ctld_t *self)
{
    const Pm__Rollout *ro = self->rollout;
    uint64_t head = 0;
    if (!self->fleet || pm_store_head(self->store, &head) != PM_OK ||
        !pm_ctld_rollout_holds(self, head))
        return;
    if (!pm_rollout_active(ro) && s_canary_reverts(ro)) {
        s_canary_revert(self); /* the controller stopped before it could */
        return;
    }
    pm_fleet_hold(self->fleet, ro->spec->revert_rev);
    for (size_t i = 0; i < ro->n_nodes; i++)
        if (ro->nodes[i]->state != PM__ROLLOUT_NODE__STATE__PENDING)
            pm_fleet_pin(self->fleet, ro->nodes[i]->name, ro->spec->policy_rev);
    pm_info("canary push %llu: revision %llu is on its canaries only; the "
            "other nodes keep revision %llu",
            (unsigned long long)ro->id,
            (unsigned long long)ro->spec->policy_rev,
            (unsigned long long)ro->spec->revert_rev);
}

void
pm_ctld_rollout_canary(pm_ctld_t *self, const Pm__Request *req,
                       const char *author, pm_ctld_reply_t *r)
{
    uint64_t head = 0;
    int rc = pm_store_head(self->store, &head);
    if (rc != PM_OK)
        return pm_ctld_store_fail(r, rc, "reading the head");
    if (!head)
        return pm_ctld_fail(r, PM__RESPONSE__STATUS__INVALID,
                            "a canary push keeps the other nodes on the "
                            "current revision, and there is none yet: push "
                            "without --canary first");
    char *held = s_held_back(self);
    if (held)
        return s_rollout_fail(r, PM_ECONFLICT, held);
    Pm__RolloutSpec *spec = pm_wire_dup(&req->rollout_spec->base);
    pm_wire_set_string(&spec->service, "");
    spec->policy_rev = head + 1; /* one writer: this thread */
    spec->revert_rev = head;
    Pm__NodeStatus **nodes = NULL;
    Pm__Rollout *next = NULL;
    size_t n = 0;
    char *why = NULL;
    pm_ctld_enrolled(self, &nodes, &n);
    rc = pm_rollout_start(self->rollout, spec, nodes, n, self->epoch, author,
                          zclock_time(), &next, &why);
    pm_store_nodes_free(&nodes, n);
    pm__rollout_spec__free_unpacked(spec, NULL);
    if (rc != PM_OK)
        return s_rollout_fail(r, rc, why);
    /* the revision and the rollout that holds it back: one transaction */
    pm_ctld_commit(self, req->policy, req, author, 0, next, r);
    if (r->resp.status != PM__RESPONSE__STATUS__OK || r->resp.unchanged ||
        r->resp.head != head + 1) {
        pm__rollout__free_unpacked(next, NULL); /* nothing new to try */
        return;
    }
    s_rollout_adopt(self, next);
    pm_info("canary push %llu of revision %llu started by %s: %zu canar%s "
            "first",
            (unsigned long long)self->rollout->id,
            (unsigned long long)(head + 1), author, self->rollout->n_nodes,
            self->rollout->n_nodes == 1 ? "y" : "ies");
    pm_ctld_rollout_tick(self, true); /* the first canary gets it now */
    s_reply_rollout(self, r);
}
