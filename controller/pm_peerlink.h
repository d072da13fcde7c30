/* pm_peerlink.h - the controller's calls to its peer controllers, off its
 * main loop.
 *
 * A standby asks the primary for what it lacks (REPLICATE), and every
 * controller asks its peers who is primary (PING). A peer that is down
 * costs a whole timeout; the main loop serves agents and admins
 * meanwhile, so the calls run in an actor (czmq zactor) with their own
 * pm_ctl_client, one at a time. The main loop polls the socket and takes
 * the answer when it is in.
 */
#ifndef PM_PEERLINK_H
#define PM_PEERLINK_H

#include "privmta.pb-c.h"

#include <czmq.h>
#include <stdbool.h>

typedef struct pm_peerlink_t pm_peerlink_t;

/* Calls are made with our secret key file KEY and the peers' public key
 * file SERVER_KEY (peer controllers share the controller keypair), each
 * waiting TIMEOUT_MS per endpoint. Returns NULL with *why (caller frees)
 * when a key cannot be loaded. */
pm_peerlink_t *pm_peerlink_new(const char *key, const char *server_key,
                               int timeout_ms, char **why);

/* Stops the actor (waits for a call in flight); accepts NULL, nulls
 * *self_p. */
void pm_peerlink_destroy(pm_peerlink_t **self_p);

/* Starts REQ to ENDPOINTS (a list, as pm_ctl_client takes). Returns false
 * (and does nothing) while a call is in flight. REQ is only read. */
bool pm_peerlink_call(pm_peerlink_t *self, const char *endpoints,
                      const Pm__Request *req);

/* Whether a call is in flight (its answer not yet taken). */
bool pm_peerlink_busy(const pm_peerlink_t *self);

/* Readable when the answer is in: poll it beside the loop's sockets. */
zsock_t *pm_peerlink_socket(pm_peerlink_t *self);

/* Takes the answer: PM_OK with *resp (caller frees with
 * pm__response__free_unpacked; it passed pm_wire) and *endpoint (caller
 * frees: the one that answered), or the pm_ctl_client_call error with
 * *why (caller frees). */
int pm_peerlink_answer(pm_peerlink_t *self, Pm__Response **resp,
                       char **endpoint, char **why);

#endif
