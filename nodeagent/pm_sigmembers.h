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
#include <stdint.h>

typedef struct {
    char *name;     /* as enrolled */
    char *endpoint; /* tcp://HOST:PORT; "" when it serves none */
    char *key;      /* its CURVE public key, Z85 */
    bool live;      /* not down, when the controller last said */
} pm_sigmember_t;

typedef struct pm_sigmembers_t pm_sigmembers_t;

/* CERT is this node's keypair for the links (not owned); FILE is where
 * the membership is kept (NULL: nowhere); at most LINKS_MAX links are
 * kept (0: PM_SIGMEMBERS_LINKS_MAX). */
pm_sigmembers_t *pm_sigmembers_new(zcert_t *cert, const char *file,
                                   size_t links_max);
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

/* At most this many links are kept by default. Kept without a bound, a
 * node of a 1000-node cluster would come to hold a CurveZMQ connection to
 * every other one (a million across the cluster). Beyond it the least
 * recently used link is closed (its member pays a handshake when picked
 * again). 64 keeps every link of a cluster of up to 65 nodes (the
 * signature bench's 60 included); in bigger ones gossip keeps to the
 * members it holds links to, a random partial view that changes one
 * member now and then (pm_sigsync_gossip), so handshakes stay rare.
 * A caller may use at most this many links at once: the ones it got last
 * are never the ones closed. */
#define PM_SIGMEMBERS_LINKS_MAX 64

/* The kept link to member M: made on first use, remade when M moved or
 * changed keys. NULL when M's key is not a CURVE key. */
pm_peer_link_t *pm_sigmembers_link(pm_sigmembers_t *self,
                                   const pm_sigmember_t *m);

/* How many links are kept now, and at most. */
size_t pm_sigmembers_links(const pm_sigmembers_t *self);
size_t pm_sigmembers_links_max(const pm_sigmembers_t *self);

/* Whether a link to M (at its endpoint, with its key) is kept now. */
bool pm_sigmembers_linked(const pm_sigmembers_t *self, const pm_sigmember_t *m);

/* One member in this many picks comes from outside the view, so that the
 * view keeps changing (the overlay heals around nodes that left) while a
 * 1000-node cluster gossiping every 200 ms pays about 1000 / (16 * 0.2 s)
 * = 300 handshakes a second, not the 15000 of random picks. */
#define PM_SIGMEMBERS_VIEW_CHURN 16

/* Whom a gossip round talks to: moves FAN of the N candidates in PICK (the
 * live, trusted members) to its front and returns how many (FAN, or N
 * when fewer). While the candidates this node holds links to are fewer
 * than the links it may keep, any may be picked (uniformly, with RND): the
 * view fills, and in a cluster that fits no link is ever closed. Once
 * they fill it, picks keep to them, but one in PM_SIGMEMBERS_VIEW_CHURN
 * rounds the last pick is a candidate from outside, whose link will
 * replace the least recently used. RND(ARG) gives random numbers. */
size_t pm_sigmembers_pick(const pm_sigmembers_t *self,
                          const pm_sigmember_t **pick, size_t n, size_t fan,
                          uint64_t (*rnd)(void *), void *arg);

#endif
