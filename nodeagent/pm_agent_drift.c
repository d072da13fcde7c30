/* pm_agent_drift.c - hand edits of what the policy owns, put back. */
#include "pm_agent_private.h"
#include "pm_log.h"
#include "pm_mem.h"
#include "pm_policy.h"
#include "pm_text.h"
#include "pm_wire.h"

#include <string.h>
#include <time.h>

/* How often the backend looks for hand edits (pm_backend_t.drift): a
 * stat(2) of main.cf when nothing changed, so a change is put back and
 * reported within about a second. */
#define S_DRIFT_MS 1000

void
pm_agent_drift_free(Pm__Drift ***list_p, size_t n)
{
    for (size_t i = 0; *list_p && i < n; i++)
        pm__drift__free_unpacked((*list_p)[i], NULL);
    PM_FREE(list_p);
}

/* Whether FOUND is the edit reported last, still not undone (a retry): it
 * keeps its time, so the controller's history counts it once. */
static bool
s_drift_again(const pm_agent_state_t *self, Pm__Drift *const *found, size_t n)
{
    if (n != self->n_drift)
        return false;
    for (size_t i = 0; i < n; i++)
        if (self->drift[i]->reverted ||
            strcmp(self->drift[i]->parameter, found[i]->parameter) != 0 ||
            strcmp(self->drift[i]->found, found[i]->found) != 0)
            return false;
    return true;
}

/* Puts the applied revision back after FOUND (taken over) was changed by
 * hand, and reports it at once. A failure says why in the node's error and
 * is retried with backoff (1 s doubling to 60 s), not every second. */
static void
s_undo_drift(pm_agent_state_t *self, Pm__Drift **found, size_t n)
{
    char *why = NULL;
    Pm__Policy *eff = pm_agent_effective(self, self->current->policy);
    bool ok = self->cfg.backend->apply(self->cfg.backend,
                                       eff ? eff : self->current->policy,
                                       self->applied, &why) == 0;
    pm_policy_free(&eff);
    bool again = s_drift_again(self, found, n);
    int64_t at = again ? self->drift[0]->at : (int64_t)time(NULL);
    if (!again)
        self->stats.drift_events += n;
    for (size_t i = 0; i < n; i++) {
        Pm__Drift *d = found[i];
        d->at = at;
        d->revision = self->applied;
        d->reverted = ok;
        pm_wire_set_string(&d->error, ok ? "" : why);
        char *was = pm_text_escape(d->found, 200);
        char *want = pm_text_escape(d->applied, 200);
        pm_warn("node %s: %s was changed by hand to \"%s\"; %s \"%s\" of "
                "revision %llu",
                self->node, d->parameter, was,
                ok ? "put back" : "could not put back", want,
                (unsigned long long)self->applied);
        free(was);
        free(want);
    }
    pm_agent_drift_free(&self->drift, self->n_drift);
    self->drift = found;
    self->n_drift = n;
    if (ok) {
        self->drift_retry_ms = 0;
    } else {
        int ms = self->drift_retry_ms ? self->drift_retry_ms * 2 : 1000;
        self->drift_retry_ms = ms > 60000 ? 60000 : ms;
        self->next_drift = zclock_mono() + self->drift_retry_ms;
        pm_warn("node %s: %s (trying again in %d s)", self->node, why,
                self->drift_retry_ms / 1000);
    }
    if (ok && self->drift_error)
        PM_FREE(&self->apply_error);
    if (!ok) {
        free(self->apply_error);
        self->apply_error = pm_asprintf(
            "revision %llu: a hand edit of %s could not be undone: %s",
            (unsigned long long)self->applied, found[0]->parameter, why);
    }
    self->drift_error = !ok;
    free(why);
    pm_agent_send(self, PM__AGENT_REPORT__KIND__HEARTBEAT);
}

size_t
pm_agent_drift_since(pm_agent_state_t *self, const Pm__Revision *rev,
                     Pm__Drift ***found)
{
    *found = NULL;
    if (!self->cfg.backend->drift_since)
        return 0;
    Pm__Policy *eff = pm_agent_effective(self, rev->policy);
    size_t n = self->cfg.backend->drift_since(self->cfg.backend,
                                              eff ? eff : rev->policy, found);
    pm_policy_free(&eff);
    return n;
}

void
pm_agent_drift_report(pm_agent_state_t *self, Pm__Drift **found, size_t n)
{
    if (n && self->current && !self->pending) {
        s_undo_drift(self, found, n); /* a no-op apply, then the report */
        return;
    }
    /* the stored revision did not go back on: its retries put them back,
     * and the node's error says why meanwhile */
    self->stats.drift_events += n;
    for (size_t i = 0; i < n; i++) {
        char *was = pm_text_escape(found[i]->found, 200);
        pm_warn("node %s: %s was changed by hand to \"%s\" while the agent "
                "was stopped",
                self->node, found[i]->parameter, was);
        free(was);
    }
    pm_agent_drift_free(&found, n);
}

/* Once a second: has someone edited what the policy owns? Not while a
 * revision is pending: its retry rewrites everything anyway; nor while a
 * restart runs: its drain changes owned parameters on purpose. The next
 * check is set either way: the loop waits until it is due. */
void
pm_agent_drift_check(pm_agent_state_t *self, int64_t now)
{
    if (!self->cfg.backend->drift || !self->current || now < self->next_drift)
        return;
    self->next_drift = now + S_DRIFT_MS;
    if (self->pending || self->restart)
        return;
    Pm__Drift **found = NULL;
    size_t n = self->cfg.backend->drift(self->cfg.backend, &found);
    if (n)
        s_undo_drift(self, found, n);
}
