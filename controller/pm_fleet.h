/* pm_fleet.h - the controller's side of the agents: distribution of
 * revisions, heartbeats, acknowledgements and node status.
 *
 * One ROUTER socket (CURVE server); each agent holds one DEALER connection
 * and is served only if its public key is enrolled with role=agent. Every
 * new revision is sent to every connected agent; revision numbers have no
 * gaps, so they are the sequence numbers agents check. Heartbeats carry the
 * head, so an agent that missed an update (high-water mark, reconnect)
 * notices and asks for a snapshot. Status lives in memory and is written
 * to the store in one transaction per tick.
 *
 * An enrolled agent may be hostile or broken; what it can cost is bounded:
 *   - a report longer than PM_WIRE_REPORT_MAX is refused by the socket
 *     before it is read, and nothing is decoded before the sender's key
 *     is checked;
 *   - each connection queues at most send_hwm messages here; beyond that
 *     messages to it are dropped (it sees the gap and resyncs);
 *   - a node gets at most one snapshot per snapshot_gap_ms however often
 *     it sends HELLO or RESYNC; a request inside the gap is answered when
 *     the gap ends (pm_fleet_tick), so an honest agent always gets one;
 *   - every message is checked against the key enrolled for the node's
 *     name now (clients/ as last read): after a key is replaced or
 *     withdrawn, a connection made with the old key gets nothing more (no
 *     revision, heartbeat, snapshot or DKIM key) and its reports are
 *     dropped;
 *   - text from agents is escaped (pm_text) before it is logged.
 */
#ifndef PM_FLEET_H
#define PM_FLEET_H

#include "pm_metrics.h"
#include "pm_store.h"
#include "privmta.pb-c.h"

#include <czmq.h>

typedef struct pm_fleet_t pm_fleet_t;

typedef struct {
    int heartbeat_ms;    /* heartbeat period, both ways */
    int stale_after_ms;  /* silence before a node is "stale" */
    int down_after_ms;   /* silence before a node is "down" */
    int send_hwm;        /* messages queued per agent connection (and read
                          * ahead from it); 0: PM_FLEET_HWM */
    int snapshot_gap_ms; /* least time between two snapshots to one node;
                          * 0: PM_FLEET_SNAPSHOT_GAP_MS */
} pm_fleet_opts_t;

#define PM_FLEET_HWM 16
#define PM_FLEET_SNAPSHOT_GAP_MS 1000
#define PM_FLEET_BACKLOG                                                       \
    4096 /* agent connections waiting to be accepted                           \
            (the kernel's somaxconn caps it) */

/* Binds ENDPOINT as a CURVE server with CERT (pm_ctlzap must already check
 * CLIENTS_DIR, which is where enrolled agents' keys live). Returns NULL
 * with *why (caller frees) on failure. STORE stays the caller's. */
pm_fleet_t *pm_fleet_new(pm_store_t *store, const char *endpoint, zcert_t *cert,
                         const char *clients_dir, const pm_fleet_opts_t *opts,
                         char **why);
/* Writes the node statuses not yet in the store (those of the last tick
 * and every node's "last seen"), then closes the socket. */
void pm_fleet_destroy(pm_fleet_t **self_p);

/* The socket to poll; call pm_fleet_handle when it is readable. */
zsock_t *pm_fleet_socket(pm_fleet_t *self);
void pm_fleet_handle(pm_fleet_t *self);

/* Sends revision REV (just committed) to every connected agent; it is the
 * head from now on, for every node (pins are dropped). */
void pm_fleet_publish(pm_fleet_t *self, uint64_t rev);

/* A canary push: HEAD is the revision every node gets (snapshots,
 * heartbeats) unless pinned, although the store's head is newer. Set when
 * the controller starts with a canary push running; a commit published
 * normally (pm_fleet_publish) ends it. */
void pm_fleet_hold(pm_fleet_t *self, uint64_t head);

/* Node NAME gets revision REV instead of the head, from now on until the
 * next pm_fleet_publish: a SNAPSHOT of it now, and at every HELLO or
 * RESYNC. False when NAME is not enrolled or has no connection served now
 * (pinned all the same: it gets REV when it connects). */
bool pm_fleet_pin(pm_fleet_t *self, const char *name, uint64_t rev);

/* Heartbeats, snapshots that were asked for inside their gap, status
 * flushing and re-reading clients/; returns ms until it wants to run
 * again. Cheap when there is nothing to do: call it before every wait. */
int pm_fleet_tick(pm_fleet_t *self);

/* Every enrolled node with its latest status and liveness, sorted by name.
 * Free with pm_store_nodes_free. */
void pm_fleet_nodes(pm_fleet_t *self, Pm__NodeStatus ***nodes, size_t *n);

/* Cluster membership, fetch duties and cool-downs (see pm_duty.h), as
 * agents get them in a MEMBERS publication:
 *   - members: every enrolled node, sorted by name, with the key its
 *     connection authenticated with (else the first enrolled for it), the
 *     peer_endpoint of its latest status ("" before one) and live when its
 *     liveness is "up";
 *   - duties: for each database of the head policy (none while antivirus
 *     is disabled), in policy order, the live member that fetches it; a
 *     database with no live member has no entry;
 *   - cooldowns: the union of the nodes' reported cool-downs still running
 *     for a mirror of the head policy (429 or 403 only), one per mirror,
 *     the latest deadline winning, each named after the node that
 *     reported it (pm_nodereport_own_cooldowns): at most as many as the
 *     policy has mirrors.
 * MEMBERS is sent to every agent when its bytes change (looked at every
 * tick, so a change shows within a heartbeat), every 60 ticks when they
 * do not (a lost one heals), and to one agent right after each SNAPSHOT
 * it is sent (the current one, at most a tick old: cheap however many
 * agents reconnect at once). It is packed once per change and its bytes
 * shared by every send; a tick with nothing changed costs one pass over
 * the nodes and no hashing. Its head is 0: it says nothing about
 * revisions.
 *
 * Returns the current one, brought up to date first (which may send it to
 * every agent). Caller frees it with pm__publication__free_unpacked. */
Pm__Publication *pm_fleet_members(pm_fleet_t *self);

/* Sends ORDER (a step of a rolling restart) to the agent of node NAME as
 * a RESTART publication (head 0: it says nothing about revisions).
 * Returns false when NAME has no connection that is served now. An order
 * can be lost on its way like any publication (a full queue drops it);
 * the rollout sends it again until the agent answers (pm_rollout.h). */
bool pm_fleet_restart(pm_fleet_t *self, const char *name,
                      const Pm__RestartOrder *order);

/* Sends a CHECK publication (head 0) to each node MEMBERS (a MEMBERS
 * publication, pm_fleet_members) names as holding a fetch duty, once per
 * node, when that node is served now: its duties check the mirrors at
 * once (the agent still honours the cool-downs). *UNHEARD gets the duty
 * holders the order may not reach: not told (no connection served now),
 * or told but not heard from within stale_after (NULL-terminated; free
 * with pm_conf_list_free). Returns how many nodes were sent it. Like any
 * publication it can be lost (a full queue): the holder's next planned
 * check comes anyway. */
size_t pm_fleet_check(pm_fleet_t *self, const Pm__Publication *members,
                      char ***unheard);

/* Sends Q (a WHY query, with its id) to every node served now. *ASKED
 * gets their names, *UNSERVED those of the enrolled nodes with no
 * connection served (NULL-terminated; free with pm_conf_list_free).
 * Returns how many were asked. Answers come as WHY_ANSWER reports,
 * handed to the function set with pm_fleet_on_why, from pm_fleet_handle;
 * like any publication, a query can be lost (a full queue): the asker
 * waits with a deadline. */
size_t pm_fleet_why(pm_fleet_t *self, const Pm__WhyQuery *q, char ***asked,
                    char ***unserved);

/* Called for each WHY_ANSWER report, with the enrolled name of the node it
 * came from (checked like any report); REP is the fleet's, for the call
 * only (a callee may take its records: set n_why to 0). */
typedef void(pm_fleet_why_fn)(const char *node, Pm__AgentReport *rep,
                              void *arg);
void pm_fleet_on_why(pm_fleet_t *self, pm_fleet_why_fn *fn, void *arg);

/* Sends TEST (a policy test, with its id and the trial policy) to the
 * agent of node NAME only, as a TEST publication (head 0), with the DKIM
 * keys the trial and head policies name. Returns false when NAME has no
 * connection that is served now. The answer comes as a TEST_ANSWER
 * report, handed to the function set with pm_fleet_on_test (the same
 * shape as pm_fleet_on_why's: a callee may take the results, setting
 * n_test_results to 0); like any publication the test can be lost (a full
 * queue): the asker waits with a deadline. */
bool pm_fleet_test(pm_fleet_t *self, const char *name,
                   const Pm__PolicyTest *test);
typedef pm_fleet_why_fn pm_fleet_test_fn;
void pm_fleet_on_test(pm_fleet_t *self, pm_fleet_test_fn *fn, void *arg);

/* Whether every agent that is alive has had time to report since this
 * fleet started (stale_after_ms): before that, a node that is up may
 * still show as "down" (the status read back from the store), so nothing
 * that judges nodes by their liveness should act yet. */
bool pm_fleet_settled(pm_fleet_t *self);

/* Enrols / withdraws an agent key (see pm_keys). Returns 0, or -1 with
 * *why. A withdrawn node is forgotten (its stored status too), its
 * connection no longer served;
 * enrolling a new key for a name takes effect at once: the connection made
 * with the old key is no longer served, one made with the new key is. */
int pm_fleet_enroll(pm_fleet_t *self, const char *name, const char *pubkey,
                    char **why);
int pm_fleet_withdraw(pm_fleet_t *self, const char *name, char **why);

/* What the metrics endpoint shows of the fleet besides its nodes. */
typedef struct {
    uint64_t head;         /* the revision nodes are told to enforce */
    uint64_t published;    /* revisions published since the start */
    pm_metrics_hist_t ack; /* a publish -> each node's first report of
                              having applied it, seconds */
} pm_fleet_stats_t;

void pm_fleet_stats(const pm_fleet_t *self, pm_fleet_stats_t *out);

#endif
