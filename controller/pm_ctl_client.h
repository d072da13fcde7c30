/* pm_ctl_client.h - one request, one reply, with a deadline.
 *
 * privmta-ctl's connection to the controller: CURVE client socket, the
 * request packed by protobuf-c, the reply checked by pm_wire. A controller
 * that is down or silent is reported after the timeout, never waited on
 * forever; a controller that refuses our key is reported as such.
 */
#ifndef PM_CTL_CLIENT_H
#define PM_CTL_CLIENT_H

#include "privmta.pb-c.h"

typedef struct pm_ctl_client_t pm_ctl_client_t;

/* Prepares a client for ENDPOINT using our secret key file KEY and the
 * controller's public key file SERVER_KEY. Returns NULL with *why (caller
 * frees) when a key cannot be loaded. */
pm_ctl_client_t *pm_ctl_client_new(const char *endpoint, const char *key,
                                   const char *server_key, int timeout_ms,
                                   char **why);
void pm_ctl_client_destroy(pm_ctl_client_t **self_p);

/* Sends REQ and waits for the reply. Returns PM_OK with *resp (caller frees
 * with pm__response__free_unpacked), PM_ETIMEDOUT when nothing came back in
 * time, PM_EDENIED when the controller refused our key, PM_EPROTO for a
 * malformed reply; *why explains (caller frees). */
int pm_ctl_client_call(pm_ctl_client_t *self, const Pm__Request *req,
                       Pm__Response **resp, char **why);

#endif
