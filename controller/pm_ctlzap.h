/* pm_ctlzap.h - the controller's ZAP handler (RFC 27): which CURVE keys
 * may connect, from the allow-list clients/, at the cost of one stat per
 * handshake.
 *
 * czmq's zauth answered this before, but its certificate store reads the
 * whole directory again at every lookup, that is at every handshake: with
 * N agents enrolled a handshake cost N stat calls, and N agents
 * reconnecting at once N² (1000 agents kept a controller busy with 11 000
 * stat calls a second). This handler keeps the keys in a table, read
 * again when the directory's modification time (to the nanosecond)
 * changed, or when told.
 *
 * Run it with zactor_new(pm_ctlzap, NULL) before binding any CURVE server
 * socket (a handshake before the bind would go unchecked). Commands, as
 * zauth's: "CURVE" DIR (a string message of two frames) makes DIR the
 * allow-list and reads it now; the actor signals when done (zsock_wait).
 * A key is let in when a *.cert file of DIR holds it with name and role
 * metadata and the role fits the server socket's ZAP domain (agents on
 * PM_CTLZAP_DOMAIN_AGENTS; admin, web and controller keys on
 * PM_CTLZAP_DOMAIN_API; nobody on a socket of another domain): 200,
 * User-Id the key (Z85) and the file's metadata (name, role) as ZAP
 * metadata, which zframe_meta shows on every message; else 400. Other
 * mechanisms than CURVE are refused.
 */
#ifndef PM_CTLZAP_H
#define PM_CTLZAP_H

#include <czmq.h>

/* The ZAP domains (zsock_set_zap_domain) of the controller's server
 * sockets: the API (pm_ctld), and the agents' (pm_fleet). */
#define PM_CTLZAP_DOMAIN_API "privmta"
#define PM_CTLZAP_DOMAIN_AGENTS "privmta-agents"

/* The actor (zactor_fn). */
void pm_ctlzap(zsock_t *pipe, void *args);

#endif
