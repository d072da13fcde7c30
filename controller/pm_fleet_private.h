/* pm_fleet_private.h - what pm_fleet.c and pm_fleet_members.c share (not
 * an API): the fleet's state and the few helpers both use. */
#ifndef PM_FLEET_PRIVATE_H
#define PM_FLEET_PRIVATE_H

#include "pm_fleet.h"
#include "privmta.pb-c.h"

#include <czmq.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

/* Publish times kept for push -> ack latencies: a node acknowledging a
 * revision more than this many behind the head is not timed. */
#define PM_FLEET_SENT_KEPT 64

typedef struct {
    char *name;
    char *label;             /* the name escaped, for logs */
    char **keys;             /* public keys (Z85) enrolled for it now; */
    size_t n_keys;           /* none: not enrolled */
    Pm__NodeStatus *status;  /* latest report, NULL before the first */
    zframe_t *route;         /* routing id of its live connection */
    char route_key[41];      /* the key that connection authenticated with */
    int64_t seen_mono;       /* zclock_mono() of the last report, 0: never */
    int64_t seen_wall;       /* unix seconds of the last report */
    int64_t snapshot_due;    /* zclock_mono() before which none is sent */
    bool snapshot_pending;   /* asked for one inside the gap */
    bool dirty;              /* not yet written to the store */
    bool live;               /* live in the current MEMBERS */
    uint64_t pinned;         /* a canary push: the revision it gets instead
                                of the head; 0: the head */
    uint64_t acked;          /* the last published revision it applied */
    uint64_t members_sent;   /* epoch of the last MEMBERS sent it, 0: none */
    int64_t members_sent_at; /* zclock_mono() of that send */
    /* what it made us log (pm_fleet.c s_log_*) */
    int64_t log_since;       /* zclock_mono() its minute began */
    unsigned log_lines;      /* lines logged in it, */
    unsigned log_suppressed; /* and not logged */
} pm_fleet_node_t;

struct pm_fleet_t {
    pm_store_t *store;
    zsock_t *router;
    char *clients_dir;
    pm_fleet_opts_t opts;
    zhashx_t *nodes; /* name -> pm_fleet_node_t */
    struct timespec dir_mtime;
    uint64_t head;
    int64_t started; /* zclock_mono() when the fleet was made */
    int64_t next_tick;
    unsigned ticks;
    bool pending;       /* some node may have a snapshot pending, */
    int64_t pending_at; /* due no earlier than this */
    /* MEMBERS: packed once, each send shares the bytes */
    char **databases; /* the head policy's antivirus databases */
    size_t n_databases;
    char **mirrors; /* and its mirrors: the only ones cool-downs count */
    size_t n_mirrors;
    zmq_msg_t members;       /* the current MEMBERS publication, whole */
    zmq_msg_t members_delta; /* the change to it from the epoch before */
    uint64_t members_epoch;  /* the current one's (pm_members.h) */
    char members_digest[65]; /* sha256 of its bytes under epoch 0 */
    bool members_dirty;      /* something it says may have changed */
    int64_t members_expiry;  /* unix seconds: a cool-down in it ends */
    /* for the metrics endpoint */
    uint64_t published; /* revisions published since start */
    struct {
        uint64_t rev;
        int64_t at;             /* zclock_mono() */
    } sent[PM_FLEET_SENT_KEPT]; /* the last ones published, by rev %
                                   PM_FLEET_SENT_KEPT */
    pm_metrics_hist_t ack;      /* publish -> each node's report applying it */
    pm_fleet_why_fn *why_fn;    /* WHY_ANSWER reports go there */
    void *why_arg;
    pm_fleet_test_fn *test_fn; /* and TEST_ANSWER reports there */
    void *test_arg;
};

/* Whether N has a connection that may be served: made with a key that is
 * enrolled for N now. The one gate of everything sent to agents. */
bool pm_fleet_served(const pm_fleet_node_t *n);

/* Whether N keeps its fetch duty and its place in gossip: up, or only
 * late (stale), at NOW (zclock_mono). */
bool pm_fleet_member_live(const pm_fleet_t *self, const pm_fleet_node_t *n,
                          int64_t now);

/* Sends BODY to N when it is served; the bytes are shared, not copied. */
void pm_fleet_send_to(pm_fleet_t *self, pm_fleet_node_t *n, zmq_msg_t *body);

/* zmq_msg_init_data's free function for pm_wire_pack's buffers. */
void pm_fleet_free_buf(void *data, void *hint);

/* ---- MEMBERS (pm_fleet_members.c) ---- */

/* Makes the current MEMBERS publication; true when its bytes differ from
 * the previous one (a new epoch). */
bool pm_fleet_members_build(pm_fleet_t *self);

/* Rebuilds MEMBERS if something it says may have changed, and sends the
 * change to every agent if its bytes did. */
void pm_fleet_members_refresh(pm_fleet_t *self);

/* MEMBERS to N: the change when N holds the epoch before, else or when
 * WHOLE the whole list. */
void pm_fleet_members_send(pm_fleet_t *self, pm_fleet_node_t *n, bool whole);

/* N reports holding epoch HELD: not the one last sent it, once it had two
 * heartbeats to arrive, the whole list again. */
void pm_fleet_members_heal(pm_fleet_t *self, pm_fleet_node_t *n, uint64_t held);

/* The head policy P's antivirus databases become the ones with duties
 * (none when antivirus is off), and its mirrors the only ones a
 * cool-down may name (pm_nodereport_cooldown_kept). */
void pm_fleet_set_antivirus(pm_fleet_t *self, const Pm__Policy *p);

#endif
