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

/* Stops serving; accepts NULL, nulls *self_p. */
void pm_ctld_destroy(pm_ctld_t **self_p);

/* Serves admin requests and, with a fleet, agents, until SIGINT/SIGTERM.
 * Returns 0 on a clean stop. */
int pm_ctld_run(pm_ctld_t *self);

/* Handles one decoded request from AUTHOR and returns the packed reply.
 * Caller frees the buffer. */
uint8_t *pm_ctld_handle(pm_ctld_t *self, const Pm__Request *req,
                        const char *author, size_t *len);

#endif
