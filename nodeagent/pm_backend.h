/* pm_backend.h - what an agent enforces a policy on.
 *
 * The agent core (distribution, local store, acknowledgements) is the same
 * for every node; what "apply" means is a backend: the node's real Postfix
 * (pm_postfix), or a no-op for benchmarks. A backend applies atomically: on
 * any failure the node keeps exactly the configuration it had, and the
 * reason is returned for the controller to show.
 */
#ifndef PM_BACKEND_H
#define PM_BACKEND_H

#include "privmta.pb-c.h"

#include <stdint.h>

typedef struct pm_backend_t pm_backend_t;

struct pm_backend_t {
    const char *name;
    void *ctx;
    /* Enforces EFFECTIVE (the node's policy, overrides applied) as revision
     * REV. Returns 0, or -1 with *why (caller frees) after restoring the
     * previous configuration. */
    int (*apply)(pm_backend_t *self, const Pm__Policy *effective, uint64_t rev,
                 char **why);
    /* Fills the backend's part of STATUS (postfix_running, auth,
     * relay_overrides...). Allocations go through pm_mem and belong to
     * STATUS (freed with pm__node_status__free_unpacked). Must be cheap:
     * it runs once per heartbeat. */
    void (*status)(pm_backend_t *self, Pm__NodeStatus *status);
    /* Hand edits: what the last successful apply set that the node's
     * configuration no longer holds (pm_pf_drift_check for Postfix). Sets
     * *found to a new array of Pm__Drift (parameter, applied, found) and
     * returns how many; each change is reported once. Cheap when nothing
     * changed: it runs every second. NULL: the backend is not watched. */
    size_t (*drift)(pm_backend_t *self, Pm__Drift ***found);
    /* At the agent's start, before EFFECTIVE (the revision it last
     * applied) is applied again: what it set that the node's configuration
     * no longer holds, i.e. edits made while the agent was stopped (as
     * drift returns them). NULL: not watched. */
    size_t (*drift_since)(pm_backend_t *self, const Pm__Policy *effective,
                          Pm__Drift ***found);
    void (*destroy)(pm_backend_t **self_p);
};

/* A backend that accepts every policy and reports nothing: for the
 * propagation benchmark, so it measures distribution, not Postfix. */
pm_backend_t *pm_backend_noop_new(void);

#endif
