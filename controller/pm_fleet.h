/* pm_fleet.h - the controller's side of the agents: distribution of
 * revisions, heartbeats, acknowledgements and node status.
 *
 * One ROUTER socket (CURVE server); each agent holds one DEALER connection
 * and is served only if its public key is enrolled with role=agent. Every
 * new revision is sent to every connected agent; revision numbers have no
 * gaps, so they are the sequence numbers agents check. Heartbeats carry the
 * head, so an agent that missed an update (high-water mark, reconnect)
 * notices and asks for a snapshot. Status lives in memory and is written
 * to the store in one transaction per tick.
 */
#ifndef PM_FLEET_H
#define PM_FLEET_H

#include "pm_store.h"
#include "privmta.pb-c.h"

#include <czmq.h>

typedef struct pm_fleet_t pm_fleet_t;

typedef struct {
    int heartbeat_ms;   /* heartbeat period, both ways */
    int stale_after_ms; /* silence before a node is "stale" */
    int down_after_ms;  /* silence before a node is "down" */
} pm_fleet_opts_t;

/* Binds ENDPOINT as a CURVE server with CERT (zauth must already check
 * CLIENTS_DIR, which is where enrolled agents' keys live). Returns NULL
 * with *why (caller frees) on failure. STORE stays the caller's. */
pm_fleet_t *pm_fleet_new(pm_store_t *store, const char *endpoint, zcert_t *cert,
                         const char *clients_dir, const pm_fleet_opts_t *opts,
                         char **why);
void pm_fleet_destroy(pm_fleet_t **self_p);

/* The socket to poll; call pm_fleet_handle when it is readable. */
zsock_t *pm_fleet_socket(pm_fleet_t *self);
void pm_fleet_handle(pm_fleet_t *self);

/* Sends revision REV (just committed) to every connected agent. */
void pm_fleet_publish(pm_fleet_t *self, uint64_t rev);

/* Heartbeats and status flushing; returns ms until it wants to run again. */
int pm_fleet_tick(pm_fleet_t *self);

/* Every enrolled node with its latest status and liveness, sorted by name.
 * Free with pm_store_nodes_free. */
void pm_fleet_nodes(pm_fleet_t *self, Pm__NodeStatus ***nodes, size_t *n);

/* Enrols / withdraws an agent key (see pm_keys). Returns 0, or -1 with
 * *why. A withdrawn node is forgotten, its connection no longer served. */
int pm_fleet_enroll(pm_fleet_t *self, const char *name, const char *pubkey,
                    char **why);
int pm_fleet_withdraw(pm_fleet_t *self, const char *name, char **why);

#endif
