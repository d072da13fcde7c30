/* pm_peerzap.h - the process's one ZAP handler (RFC 27) for pm_peer
 * services.
 *
 * libzmq asks the ZAP handler bound to inproc://zeromq.zap.01 in the
 * socket's context, and czmq sockets all share one context: a process has
 * at most one. Each pm_peer service registers here, gets a ZAP domain of
 * its own (PM_PEER_ZAP_DOMAIN "." N, set on its ROUTER) and says which
 * CURVE keys it lets in; the handler answers each request from the table
 * of the domain it names: 200 with User-Id the member's name and the key
 * as metadata (X-Key), else 400. Requests for another domain or with
 * another mechanism are refused, so a CURVE or PLAIN server socket
 * elsewhere in the process would be locked out, and czmq's zauth cannot
 * run beside a pm_peer service (nor a service beside zauth).
 *
 * The handler is an actor started by the first registration and stopped
 * with the last. Registrations, table updates and answers may come from
 * any thread (a lock guards the tables; the handler holds it only for a
 * lookup). One agent runs one service; a benchmark runs a thousand in one
 * process.
 */
#ifndef PM_PEERZAP_H
#define PM_PEERZAP_H

#include <czmq.h>

/* The ZAP metadata property that carries the client's key (Z85) to the
 * service, beside User-Id (zframe_meta on a received frame). */
#define PM_PEERZAP_KEY_PROPERTY "X-Key"

typedef struct pm_peerzap_t pm_peerzap_t;

/* Registers a service called NAME (for logs), letting nobody in yet.
 * NULL when the handler cannot bind (another ZAP handler, such as zauth,
 * runs in this process), after logging why. */
pm_peerzap_t *pm_peerzap_new(const char *name);

/* Unregisters; the last registration stops the handler. Accepts NULL,
 * nulls *SELF_P. */
void pm_peerzap_destroy(pm_peerzap_t **self_p);

/* The ZAP domain of this registration, for zsock_set_zap_domain. */
const char *pm_peerzap_domain(const pm_peerzap_t *self);

/* From now on the handler lets in exactly the keys of MEMBERS (Z85 public
 * key -> member name, strings); the table is copied. */
void pm_peerzap_admit(pm_peerzap_t *self, zhashx_t *members);

#endif
