/* pm_peerconn.h - the connections a pm_peer service holds, counted and
 * bounded, so that no member (nor anyone who can reach the port) makes the
 * root agent hold what it pleases.
 *
 * ZAP lets an enrolled key in on any number of connections, and libzmq
 * queues up to PM_PEER_HWM answers (chunks of up to 1 MiB) on each: a
 * member opening K connections and asking on each without reading would
 * cost K x 16 MiB and K descriptors. ZAP cannot count a key's connections
 * (it never learns when one closes), and a ROUTER cannot close one peer.
 * So the service watches its ROUTER with a socket monitor (ACCEPTED and
 * DISCONNECTED, with the descriptor) and learns a connection's member from
 * the first message on it (libzmq's per-connection "__fd" property, the
 * one behind the documented ZMQ_SRCFD, beside ZAP's User-Id). With that:
 *   - a member speaks on at most PM_PEER_CONNS_PER_MEMBER connections at
 *     once: when it speaks on one more, its connection that spoke least
 *     recently is closed (an agent uses one kept link per member, two
 *     while it replaces one; more are links that died unseen, or a member
 *     asking on many without reading);
 *   - the service holds at most MAX connections (default: two a member and
 *     PM_PEER_CONNS_SPARE, and never more than a quarter of the process's
 *     descriptor limit): past it, the connections that have not spoken
 *     PM_PEER_SILENT_MS after they were accepted (a handshake that stalls,
 *     a member that dials and says nothing) are closed, then the oldest
 *     silent ones until there is room (so that someone reconnecting faster
 *     than that does not keep the members out); a connection that spoke is
 *     never closed for room.
 * Nothing changes for a service under its bounds: a silent connection is
 * closed only to make room, so an idle link that reconnected stays. (The
 * ROUTER's ZMTP heartbeats, pm_peer.c, end connections whose peer is gone
 * without a word, so that they do not count for long.)
 *
 * Closing is shutdown(2) of the descriptor libzmq owns (it then sees the
 * end of the stream and cleans up as for any peer that went away), done
 * only while the descriptor still joins the two addresses it joined when
 * accepted: one closed and reused since is left alone.
 *
 * Owned by the service actor's thread; not thread-safe.
 */
#ifndef PM_PEERCONN_H
#define PM_PEERCONN_H

#include <czmq.h>
#include <stdbool.h>
#include <stddef.h>

/* Connections one member may speak on at once. */
#define PM_PEER_CONNS_PER_MEMBER 4
/* Connections a service holds beyond two a member, for handshakes in
 * progress and links being replaced. */
#define PM_PEER_CONNS_SPARE 64
/* A connection that has not spoken this long after it was accepted may be
 * closed to make room. */
#define PM_PEER_SILENT_MS 3000

typedef struct pm_peerconn_t pm_peerconn_t;

/* Watches ROUTER (not owned; not bound yet, so that no connection goes
 * uncounted) for the service called NAME (for logs). MAX: the most
 * connections held; 0: the default above. NULL, after logging why, when
 * the monitor cannot be set up. */
pm_peerconn_t *pm_peerconn_new(zsock_t *router, const char *name, size_t max);

/* Stops watching (before the ROUTER is destroyed); accepts NULL, nulls
 * *SELF_P. */
void pm_peerconn_destroy(pm_peerconn_t **self_p);

/* The socket the monitor's events arrive on, for the actor's poller. */
zsock_t *pm_peerconn_events(pm_peerconn_t *self);

/* Takes every event queued (never waits): call when the events socket is
 * readable. */
void pm_peerconn_on_events(pm_peerconn_t *self);

/* The members the service admits now number N (the default bound). */
void pm_peerconn_set_members(pm_peerconn_t *self, size_t n);

/* BODY (a frame read from the ROUTER) came from the member with key KEY
 * (Z85, as ZAP let it in). True: answer it. False: the connection it came
 * on is being closed (to make room, or for one a member opened after it),
 * and the message must be dropped unanswered. */
bool pm_peerconn_speaks(pm_peerconn_t *self, zframe_t *body, const char *key);

#endif
