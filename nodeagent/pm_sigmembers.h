/* pm_sigmembers.h - the cluster as this node's signature sync sees it.
 *
 * The controller names the members in MEMBERS publications: every enrolled
 * node with its peer endpoint, CURVE public key and whether it is live
 * (not down), and which node holds each database's fetch duty. This keeps
 * the last one, a kept CurveZMQ link to each member gossiped with, and the
 * file the publication is kept in, so that gossip goes on while the
 * controller is down, also after the agent restarts.
 *
 * Owned by the pm_sigsync actor; not thread-safe. Members and their
 * strings stay valid until the next pm_sigmembers_set.
 */
#ifndef PM_SIGMEMBERS_H
#define PM_SIGMEMBERS_H

#include "pm_peer.h"
#include "privmta.pb-c.h"

#include <czmq.h>
#include <stdbool.h>
#include <stddef.h>

typedef struct {
    char *name;     /* as enrolled */
    char *endpoint; /* tcp://HOST:PORT; "" when it serves none */
    char *key;      /* its CURVE public key, Z85 */
    bool live;      /* not down, when the controller last said */
} pm_sigmember_t;

typedef struct pm_sigmembers_t pm_sigmembers_t;

/* CERT is this node's keypair for the links (not owned); FILE is where
 * the membership is kept (NULL: nowhere). */
pm_sigmembers_t *pm_sigmembers_new(zcert_t *cert, const char *file);
void pm_sigmembers_destroy(pm_sigmembers_t **self_p);

/* PUB (a wire-checked MEMBERS publication) is the membership from now
 * on. The links to nodes it no longer names are closed. */
void pm_sigmembers_set(pm_sigmembers_t *self, const Pm__Publication *pub);

/* Keeps DATA (the packed publication last set) in the file, 0600, by an
 * atomic replace. PM_OK (also with no file), or an error with *WHY. */
int pm_sigmembers_keep(pm_sigmembers_t *self, const void *data, size_t len,
                       char **why);

/* At start: the publication the file holds, unpacked (*PUB) and packed
 * (*DATA, *LEN), all the caller's to free. PM_ENOTFOUND when there is no
 * file or nothing kept yet; another error with *WHY when what it holds is
 * not a membership that passes the wire checks. */
int pm_sigmembers_kept(const pm_sigmembers_t *self, Pm__Publication **pub,
                       char **data, size_t *len, char **why);

size_t pm_sigmembers_count(const pm_sigmembers_t *self);
/* Member I (< count), in the publication's order. */
const pm_sigmember_t *pm_sigmembers_at(const pm_sigmembers_t *self, size_t i);
/* The member called NAME, or NULL. */
const pm_sigmember_t *pm_sigmembers_find(const pm_sigmembers_t *self,
                                         const char *name);
/* The node holding DATABASE's fetch duty, or NULL when nobody does. */
const char *pm_sigmembers_duty(const pm_sigmembers_t *self,
                               const char *database);

/* At most this many links are kept. Gossip picks a few members at random
 * each round: kept without a bound, a node of a 1000-node cluster would
 * come to hold a CurveZMQ connection to every other one (a million across
 * the cluster). Beyond it the least recently used link is closed (its
 * member pays a handshake when picked again). 64 keeps every link of a
 * cluster of up to 65 nodes (the signature bench's 60 included), so only
 * bigger clusters pay handshakes again. A caller may use at most
 * this many links at once: the ones it got last are never the ones
 * closed. */
#define PM_SIGMEMBERS_LINKS_MAX 64

/* The kept link to member M: made on first use, remade when M moved or
 * changed keys. NULL when M's key is not a CURVE key. */
pm_peer_link_t *pm_sigmembers_link(pm_sigmembers_t *self,
                                   const pm_sigmember_t *m);

/* How many links are kept now. */
size_t pm_sigmembers_links(const pm_sigmembers_t *self);

#endif
