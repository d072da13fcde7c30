/* pm_ctl_client.h - one request, one reply, with a deadline.
 *
 * privmta-ctl's connection to the controller: CURVE client socket, the
 * request packed by protobuf-c, the reply checked by pm_wire. A controller
 * that is down or silent is reported after the timeout, never waited on
 * forever; a controller that refuses our key is reported as such.
 *
 * A client may know several controllers, a primary and its standbys, which
 * share one CURVE keypair (so one server key serves for all). A standby
 * answers every request but PING and REPLICATE with status NOT_PRIMARY,
 * and PING with standby set; either way the client moves on to the next
 * controller, so that a list finds the primary wherever it is.
 */
#ifndef PM_CTL_CLIENT_H
#define PM_CTL_CLIENT_H

#include "privmta.pb-c.h"

typedef struct pm_ctl_client_t pm_ctl_client_t;

/* A POLICY_TEST is answered when its node answered, or after this long
 * (with an error): the node starts a scratch Postfix and filter (ClamAV's
 * databases loaded: up to PM_REHEARSE_READY_MS, 150 s, and again when the
 * candidate's custom signatures differ from the head's) and submits every
 * message to every recipient under each policy. The controller keeps a
 * test this long; a client waits this long, and its usual timeout, for
 * the answer. */
#define PM_CTLD_TEST_MS 300000

/* Prepares a client for ENDPOINTS, one controller address or a list of
 * them separated by commas and/or whitespace ("tcp://a:7420,tcp://b:7420"),
 * using our secret key file KEY and the controllers' public key file
 * SERVER_KEY. Each call waits at most TIMEOUT_MS for each controller it
 * tries. Returns NULL with *why (caller frees) when a key cannot be
 * loaded. Nothing is connected yet. */
pm_ctl_client_t *pm_ctl_client_new(const char *endpoints, const char *key,
                                   const char *server_key, int timeout_ms,
                                   char **why);
void pm_ctl_client_destroy(pm_ctl_client_t **self_p);

/* Sends REQ and waits for the reply.
 *
 * With one endpoint: returns PM_OK with *resp (caller frees with
 * pm__response__free_unpacked) whatever its status, NOT_PRIMARY included;
 * PM_ETIMEDOUT when nothing came back in time, PM_EDENIED when the
 * controller refused our key (or the server key is wrong), PM_EINVAL for an
 * address that cannot be connected to, PM_EPROTO for a malformed reply;
 * *why explains (caller frees).
 *
 * With a list: the endpoints are tried one after the other, each with the
 * full timeout, starting with the one that gave the last answer (so that
 * repeated calls stick to the primary once found), then the others in list
 * order. One that fails as above (a refused key too) or that answers as a
 * standby (status NOT_PRIMARY, or standby set in its answer to PING) is
 * skipped for the next. The first other answer is returned, PM_OK with
 * *resp. When none gives one:
 *   - if some standby answered, PM_OK with the last standby answer in
 *     *resp (the caller shows the standby's status: who it follows);
 *   - otherwise the error: PM_EDENIED when any endpoint refused our key,
 *     else that of the last endpoint tried, with *why naming every endpoint
 *     tried and why it failed, joined with "; ".
 * Because a refused key is worth fixing even when another controller
 * answered, on PM_OK *why may be set too (caller frees): it then says which
 * endpoints refused our key, or, along with a standby answer, why the other
 * endpoints gave none. Otherwise *why is left alone on PM_OK. A call cut
 * short by a signal (zsys_interrupted) tries no further endpoint. */
int pm_ctl_client_call(pm_ctl_client_t *self, const Pm__Request *req,
                       Pm__Response **resp, char **why);

/* Each call from now on waits at most TIMEOUT_MS for each controller (a
 * request the controller answers late, once a node did); the current
 * value is pm_ctl_client_timeout's. */
void pm_ctl_client_set_timeout(pm_ctl_client_t *self, int timeout_ms);
int pm_ctl_client_timeout(const pm_ctl_client_t *self);

/* The endpoint that gave the answer the last call returned (a standby's
 * included), as written in ENDPOINTS; NULL before any call got one. A call
 * that failed leaves it as it was. */
const char *pm_ctl_client_endpoint(const pm_ctl_client_t *self);

#endif
