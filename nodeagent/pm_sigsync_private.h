/* pm_sigsync_private.h - the signature actor's state, shared by its parts.
 *
 * pm_sigsync.c is the actor: what this node holds, its status, the
 * policy and MEMBERS it is given, the loop and its rounds;
 * pm_sigsync_peers.c is gossip and pulling from peers;
 * pm_sigsync_duty.c is the fetch duty's mirror checks. Only they include
 * this header; everything here runs on the actor's thread.
 */
#ifndef PM_SIGSYNC_PRIVATE_H
#define PM_SIGSYNC_PRIVATE_H

#include "pm_sigbook.h"
#include "pm_sigmembers.h"
#include "pm_sigstore.h"
#include "pm_sigsync.h"
#include "pm_sigverify.h"
#include "privmta.pb-c.h"

#include <czmq.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

/* One database the policy names, as this node holds it. */
typedef struct {
    char *name;
    unsigned version, sigs;
    time_t built;
    char *file;          /* NAME.cld or NAME.cvd in DBDIR holding VERSION;
                            NULL: none */
    unsigned cdiff_from; /* CDIFFs kept from this version on (0: none) */
    char *source;        /* "mirror URL" / "peer NAME", NULL: was there */
    time_t last_check;   /* duty: last mirror check */
    time_t next_check;   /* duty: next one; 0: none planned */
    char *error;         /* last fetch or pull problem */
    bool duty;           /* the controller named this node to fetch it */
    int64_t duty_since;  /* zclock_mono() when the duty was given */
    int64_t peer_wait;   /* zclock_mono() since when a due check waits
                            for a peer's newer version; 0: none */
    unsigned newest;     /* newest version a peer said it holds */
    time_t behind_since; /* when NEWEST first ran 2+ versions ahead */
    zhashx_t *holders;   /* peer name -> pm_sigsync_held_t */
} pm_sigsync_db_t;

/* What a peer said it holds of one database. */
typedef struct {
    unsigned version, cdiff_from;
} pm_sigsync_held_t;

/* A holder a pull from timed out: not picked before UNTIL (zclock_mono);
 * BACKOFF_MS doubles with each timeout in a row. */
typedef struct {
    int64_t until, backoff_ms;
} pm_sigsync_slow_t;

/* The actor's state. */
typedef struct {
    pm_sigsync_config_t cfg;
    char *node;
    zsock_t *pipe;
    zactor_t *peer;
    char *endpoint; /* ours, as peers reach it; "" when serving none */
    /* the policy */
    bool enabled;
    char **mirrors;
    size_t n_mirrors;
    uint32_t freq_s;
    pm_sigsync_db_t **dbs;
    size_t n_dbs;
    /* what others said */
    pm_sigmembers_t *members; /* the last MEMBERS: who, where, duties */
    int64_t heard;            /* zclock_mono() when this node last learnt
                                 what its live members hold */
    int64_t members_at;       /* zclock_mono() of the last MEMBERS */
    pm_sigbook_t *book;       /* cool-downs and distrusted peers */
    zhashx_t *slow; /* peer name -> pm_sigsync_slow_t: holders a pull from
                       timed out, not asked again before their time */
    pm_sigverify_t *verifier; /* checks every file a peer or a fetch brings */
    uid_t fetch_uid;          /* who fetches (cfg.fetch_user), as root */
    gid_t fetch_gid;
    zchunk_t *last_status, *last_hold; /* as last sent */
    bool hold_files; /* a file was read or installed since the last HOLD:
                        the peer service must learn its identity */
    uint64_t rnd;
    int64_t next_round; /* zclock_mono */
    unsigned quiet;     /* rounds since the last news (pm_sigsync_news) */
    atomic_size_t gossip_queued; /* GOSSIP bytes the peer service queued
                                    and this actor has not taken (pm_peer.h) */
    bool stopping;               /* $TERM or SIGINT/SIGTERM seen (below) */
    bool term;        /* $TERM seen: the actor returns (pm_actor.h) */
    zlist_t *backlog; /* pipe commands read by pm_sigsync_stopping,
                         not yet done */
} pm_sigsync_state_t;

/* ---- pm_sigsync.c ----------------------------------------------------------
 */

/* True once the owner sent $TERM (maybe queued behind other commands) or
 * the process got SIGINT/SIGTERM. Long steps (a gossip round meeting
 * silent peers, pulls, a mirror fetch) ask between peers and files, so
 * zactor_destroy returns within one peer timeout at most, at once on a
 * signal; the commands read here wait in the backlog until the step is
 * over (a POLICY may not change the databases under it). A signal stops
 * the work, not the actor: that waits for $TERM (pm_actor.h). */
bool pm_sigsync_stopping(pm_sigsync_state_t *self);

/* pm_sigfetch_spawn's cancel hook (SELF: the state): stopping kills the
 * fetch's child at once. */
bool pm_sigsync_fetch_cancelled(void *self);

/* A fast random number: spreads peers, nothing secret depends on it. */
uint64_t pm_sigsync_rand(pm_sigsync_state_t *self);

/* *SLOT becomes a copy of VALUE (NULL: none), the old one freed. */
void pm_sigsync_set_str(char **slot, const char *value);

/* Something new (a newer version heard of or installed, a new or later
 * mirror cool-down, a policy or membership): gossip goes back to every
 * round, and the next round comes within one (pm_sigsync.c, s_round_ms). */
void pm_sigsync_news(pm_sigsync_state_t *self);

/* MIRROR said HTTP to NODE, nobody asks it before UNTIL (pm_sigbook_cool),
 * as this node or a peer learnt it: taken only for a mirror of the
 * policy, or a hostile member could fill the book (and this node's
 * VERSIONS, until peers refuse them) with made-up mirrors. True, and
 * news, when it was new or later. */
bool pm_sigsync_cool(pm_sigsync_state_t *self, const char *mirror, int http,
                     time_t until, const char *node);

/* The database the policy names NAME, or NULL. */
pm_sigsync_db_t *pm_sigsync_db_find(pm_sigsync_state_t *self, const char *name);

/* DB is now at GOT (installed in the directory), brought by SOURCE
 * (taken); the status goes out at once. */
void pm_sigsync_got(pm_sigsync_state_t *self, pm_sigsync_db_t *db,
                    const pm_sigfile_t *got, char *source);

/* What this node holds and knows, as gossip carries it (caller frees). */
Pm__PeerMessage *pm_sigsync_versions(pm_sigsync_state_t *self);

/* Tells the peer service what to answer with (when it changed). */
void pm_sigsync_hold(pm_sigsync_state_t *self);

/* Sends the owner the status (when it changed). */
void pm_sigsync_status(pm_sigsync_state_t *self);

/* ---- pm_sigsync_peers.c ----------------------------------------------------
 */

/* PEER says it holds MSG's databases and knows MSG's cool-downs. */
void pm_sigsync_learn(pm_sigsync_state_t *self, const char *peer,
                      const Pm__PeerMessage *msg);

/* One push-pull with up to the fan-out's live, trusted members at once. */
void pm_sigsync_gossip(pm_sigsync_state_t *self);

/* After something new arrived: serve it and gossip now. */
void pm_sigsync_spread(pm_sigsync_state_t *self);

/* Pulls every database a peer holds newer; true when anything arrived. */
bool pm_sigsync_pull_newer(pm_sigsync_state_t *self);

/* A random member this node may pull from (trusted, serving) holding the
 * newest version such a member holds, which becomes DB's newest; NULL
 * when none holds one newer than DB's own. */
const pm_sigmember_t *pm_sigsync_pick_holder(pm_sigsync_state_t *self,
                                             pm_sigsync_db_t *db);

/* Marks databases 2+ versions behind the cluster's newest for longer than
 * one check period, and a daily database built more than 7 days ago
 * (antivirus degraded). */
void pm_sigsync_check_stale(pm_sigsync_state_t *self);

/* ---- pm_sigsync_duty.c -----------------------------------------------------
 */

/* Takes the duties of the last MEMBERS for the databases the policy
 * names (either may arrive first). */
void pm_sigsync_apply_duties(pm_sigsync_state_t *self);

/* Plans DB's next mirror check one period (freq_s) after its last, or now
 * when that is past or it has none: for a duty just given, and for every
 * duty when the period changes. */
void pm_sigsync_replan(pm_sigsync_state_t *self, pm_sigsync_db_t *db);

/* Milliseconds until the first planned mirror check of a duty, 0 when
 * one is due, -1 when none is. */
int64_t pm_sigsync_check_in_ms(const pm_sigsync_state_t *self);

/* Checks the mirrors for every duty database that is due; true when a
 * new version arrived. */
bool pm_sigsync_fetch_due(pm_sigsync_state_t *self);

#endif
