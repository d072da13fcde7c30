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
    if (self->rollout) {
        s_rollout_log(self->rollout, next);
        pm__rollout__free_unpacked(self->rollout, NULL);
    }
    self->rollout = next;
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
    for (size_t i = 0; i < n; i++) {
        const char *name = ro->nodes[orders[i]]->name;
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

void
pm_ctld_rollout_start(pm_ctld_t *self, const Pm__Request *req,
                      const char *author, pm_ctld_reply_t *r)
{
    Pm__NodeStatus **nodes = NULL;
    Pm__Rollout *next = NULL;
    size_t n = 0;
    char *why = NULL;
    pm_ctld_enrolled(self, &nodes, &n);
    int rc = pm_rollout_start(self->rollout, req->rollout_spec, nodes, n,
                              author, zclock_time(), &next, &why);
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
