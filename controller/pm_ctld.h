/* pm_ctld.h - the controller's request/response API (privmta-ctl talks to
 * it) over a CURVE-secured ZeroMQ ROUTER socket.
 *
 * Requests are Pm__Request messages, replies Pm__Response (proto/). Each
 * request is checked by pm_wire before it is handled; a policy is validated
 * by pm_policy_validate before anything is stored: a rejected policy is
 * never committed. Handlers are looked up in a { op, function } table.
 */
#ifndef PM_CTLD_H
#define PM_CTLD_H

#include "pm_ctl_client.h"
#include "pm_fleet.h"
#include "pm_store.h"
#include "privmta.pb-c.h"

#include <czmq.h>

typedef struct pm_ctld_t pm_ctld_t;

/* Binds ENDPOINT as a CURVE server with CERT, serving only clients whose
 * public keys are in CLIENTS_DIR (may be NULL in unit tests: no socket is
 * bound, only pm_ctld_handle is usable). STORE stays owned by the caller.
 * Returns NULL with *why (caller frees) on failure. */
pm_ctld_t *pm_ctld_new(pm_store_t *store, const char *endpoint, zcert_t *cert,
                       const char *clients_dir, char **why);

/* Hands new revisions to FLEET and answers node requests from it (not
 * owned; NULL: no agents, `nodes` lists the stored statuses). Only keys
 * enrolled with role=admin may use this API, and only while they are:
 * every request is checked against clients/ as it is now (an admin key
 * removed or replaced there is refused at its next request, even on a
 * connection made before), and before the request is decoded. */
void pm_ctld_set_fleet(pm_ctld_t *self, pm_fleet_t *fleet);

/* Renders the fleet's metrics (pm_fleet_metrics.h) into SERVER once a
 * second from pm_ctld_run (not owned; NULL: none). */
void pm_ctld_set_metrics(pm_ctld_t *self, pm_metrics_server_t *server);

/* ---- peer controllers: a standby and its primary ------------------------
 *
 * A standby copies the primary's store over the ctl API (REPLICATE, with
 * the controller keypair the two share, enrolled as PM_ROLE_CONTROLLER):
 * revisions verbatim, secrets and enrolled keys; it serves no agents and
 * answers every request but PING with NOT_PRIMARY. `privmta-controller
 * --promote` writes the store's role record (primary, epoch + 1); the
 * running standby sees it within a tick and pm_ctld_run returns
 * PM_CTLD_PROMOTED. A primary asks its peers who is primary (PING), at
 * start (pm_ctld_fence_check) and every PM_CTLD_FENCE_MS: one that is
 * primary at a newer epoch wins, and pm_ctld_run returns PM_CTLD_FENCED.
 * Promotion is a deliberate act, as with PostgreSQL streaming
 * replication; there is no election. */
#define PM_CTLD_STOPPED 0  /* SIGINT or SIGTERM */
#define PM_CTLD_PROMOTED 1 /* give it a fleet, run it again */
#define PM_CTLD_FENCED 2   /* a newer primary exists: stop */
#define PM_CTLD_FENCE_MS 5000

typedef struct {
    const char *peers;      /* the other controllers' ctl endpoints: a list
                             * (pm_conf_list), never this controller */
    const char *key;        /* the controller keypair's secret file */
    const char *server_key; /* its public file (peers share the keypair) */
    int follow_ms;          /* a standby asks the primary this often */
    int timeout_ms;         /* for one call to one peer */
} pm_ctld_peers_t;

/* Takes the role from the store's role record (none: a lone primary at
 * epoch 0) and, with PEERS->peers not empty, starts calling them. Returns
 * 0, or -1 with *why (caller frees) when a key file cannot be read. */
int pm_ctld_set_peers(pm_ctld_t *self, const pm_ctld_peers_t *peers,
                      char **why);

/* Whether this controller is a standby now. */
bool pm_ctld_is_standby(const pm_ctld_t *self);

/* Asks each of PEERS->peers, one at a time, whether it is primary. Returns
 * 0 when none is primary at EPOCH or later (a peer that does not answer
 * is warned about and passed over), else -1 with *why (caller frees)
 * naming it. */
int pm_ctld_fence_check(const pm_ctld_peers_t *peers, uint64_t epoch,
                        char **why);

/* Stops serving; accepts NULL, nulls *self_p. */
void pm_ctld_destroy(pm_ctld_t **self_p);

/* Serves admin requests and, with a fleet, agents, until SIGINT/SIGTERM
 * (PM_CTLD_STOPPED), a promotion or a fence (above). */
int pm_ctld_run(pm_ctld_t *self);

/* Handles one decoded request from AUTHOR and returns the packed reply.
 * Caller frees the buffer. */
uint8_t *pm_ctld_handle(pm_ctld_t *self, const Pm__Request *req,
                        const char *author, size_t *len);

#endif
