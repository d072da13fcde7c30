/* pm_ctld_private.h - the controller's state, shared by its parts.
 *
 * pm_ctld.c serves the API socket and the policy requests;
 * pm_ctld_rollout.c runs rolling restarts (the state machine is
 * pm_rollout) between them; pm_ctld_standby.c follows a primary;
 * pm_ctld_why.c and pm_ctld_test.c answer the requests that wait for
 * nodes. Only they include this header.
 */
#ifndef PM_CTLD_PRIVATE_H
#define PM_CTLD_PRIVATE_H

#include "pm_ctld.h"
#include "pm_diag.h"
#include "pm_fleet.h"
#include "pm_store.h"
#include "privmta.pb-c.h"

#include <czmq.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

/* Least time between two looks at a rollout in progress: a node's answer
 * and the end of its settling are seen within this. */
#define PM_CTLD_ROLLOUT_TICK_MS 200
#define PM_CTLD_METRICS_MS 1000 /* the metrics text is this old at most */

struct pm_ctld_t {
    pm_store_t *store;
    pm_fleet_t *fleet; /* not owned; may be NULL */
    zsock_t *router;
    zactor_t *auth;
    char *clients_dir;
    zhashx_t *admins; /* enrolled admin public key (Z85) -> its cert file */
    struct timespec admins_mtime; /* of clients/ when admins was read */
    int64_t admins_read;          /* zclock_mono() of that read */
    Pm__Rollout *rollout;         /* the current one as stored, or NULL */
    int64_t rollout_next;         /* zclock_mono() of its next tick */
    int64_t resend_at;            /* zclock_mono(): orders go again */
    pm_metrics_server_t *metrics; /* not owned; may be NULL */
    int64_t metrics_at;           /* zclock_mono(): render them again */
    /* peer controllers (pm_ctld_standby.c) */
    bool standby;
    uint64_t epoch;   /* of the role record; a standby: the primary's */
    char *primary;    /* a standby: the endpoint that last answered */
    char **peers;     /* the other controllers' ctl endpoints */
    char *peers_text; /* the same as configured */
    struct pm_peerlink_t *link; /* NULL without peers */
    int follow_ms;
    int64_t peer_at;              /* zclock_mono(): the next call to a peer */
    size_t peer_next;             /* a primary pings its peers in turn */
    char *peer_trouble;           /* the last trouble logged, said once */
    struct pm_replica_t *replica; /* secrets and keys, kept between asks */
    struct pm_ctld_why_t *why;    /* asks waiting for nodes (pm_ctld_why.c) */
    struct pm_ctld_test_t *test;  /* policy tests waiting for their node
                                     (pm_ctld_test.c) */
    int stop;                     /* what pm_ctld_run returns */
};

/* A reply under construction, with everything to free once it is packed. */
typedef struct {
    Pm__Response resp;
    Pm__Revision *revision; /* from the store */
    Pm__Revision **history; /* from the store */
    size_t n_history;
    pm_diag_t *diag; /* problems, owned strings */
    Pm__DiffEntry **diff;
    Pm__NodeStatus **nodes;
    size_t n_nodes;
    Pm__Publication *members; /* the fleet's: duties and cool-downs */
    Pm__Rollout *rollout;     /* a copy of the current one */
    char *error;
    char *txt;
} pm_ctld_reply_t;

/* ---- pm_ctld.c */

/* An empty OK reply with its problem list; pm_ctld_reply_clear frees what
 * R holds (once packed, or unused). */
pm_ctld_reply_t pm_ctld_reply_new(void);
void pm_ctld_reply_clear(pm_ctld_reply_t *r);

/* R fails with STATUS and the message FMT. */
void pm_ctld_fail(pm_ctld_reply_t *r, Pm__Response__Status status,
                  const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* R stays as it is (OK: an accepted answer) and carries the warning FMT
 * in its problems, which privmta-ctl prints. */
void pm_ctld_warn(pm_ctld_reply_t *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* R fails because the store said RC while doing WHAT. */
void pm_ctld_store_fail(pm_ctld_reply_t *r, int rc, const char *what);

/* R fails because reading revision REV gave RC: NOT_FOUND saying whether
 * it was never made or is no longer kept, else INTERNAL. */
void pm_ctld_revision_fail(pm_ctld_t *self, pm_ctld_reply_t *r, int rc,
                           uint64_t rev);

/* Validates POLICY as every policy pushed is (pm_policy_validate, and
 * every DKIM key it names must be stored), the problems' origin being
 * ORIGIN. True when valid; else false with R INVALID, every problem in its
 * problems. */
bool pm_ctld_validate(pm_ctld_t *self, const Pm__Policy *policy,
                      const char *origin, pm_ctld_reply_t *r);

/* Sends RESP to the client at *ROUTE (taken over) on the API socket: the
 * answer to a request that was not answered at once. */
void pm_ctld_send(pm_ctld_t *self, zframe_t **route, const Pm__Response *resp);

/* Commits a validated POLICY unless it equals the head (R says which, or
 * why not); compare-and-swap against req->expect_rev is done inside the
 * store's write transaction. HELD NULL: every agent gets it now. Else
 * HELD is the canary push that holds the revision back, stored in the
 * same transaction, and no agent gets it until that rollout says. */
void pm_ctld_commit(pm_ctld_t *self, const Pm__Policy *policy,
                    const Pm__Request *req, const char *author,
                    uint64_t rollback_of, const Pm__Rollout *held,
                    pm_ctld_reply_t *r);

/* The enrolled nodes (free with pm_store_nodes_free): the fleet's list,
 * or the store's when this controller serves no agents. */
void pm_ctld_enrolled(pm_ctld_t *self, Pm__NodeStatus ***nodes, size_t *n);

/* ---- pm_ctld_rollout.c */

/* The rollout the store holds becomes the current one (at start). */
void pm_ctld_rollout_load(pm_ctld_t *self);

/* One step of the current rollout, at most every PM_CTLD_ROLLOUT_TICK_MS
 * unless FORCE. */
void pm_ctld_rollout_tick(pm_ctld_t *self, bool force);

/* PUSH with canaries (req->rollout_spec): commits the policy without
 * publishing it and starts a canary push of it (pm_rollout.h). */
void pm_ctld_rollout_canary(pm_ctld_t *self, const Pm__Request *req,
                            const char *author, pm_ctld_reply_t *r);

/* With the fleet set: a canary push that was running (or halted with its
 * revision still the head) when the controller stopped holds the other
 * nodes on the revision they had again, and its canaries on the new one. */
void pm_ctld_rollout_hold(pm_ctld_t *self);

/* Whether HEAD is the revision of a canary push that has not passed (it
 * runs, or halted or was aborted without going back): it is on the
 * canaries only, every other node keeps the revision before. */
bool pm_ctld_rollout_holds(const pm_ctld_t *self, uint64_t head);

/* ROLLOUT_START, ROLLOUT_STATUS, and PAUSE/RESUME/ABORT. */
void pm_ctld_rollout_start(pm_ctld_t *self, const Pm__Request *req,
                           const char *author, pm_ctld_reply_t *r);
void pm_ctld_rollout_status(pm_ctld_t *self, const Pm__Request *req,
                            const char *author, pm_ctld_reply_t *r);
void pm_ctld_rollout_step(pm_ctld_t *self, const Pm__Request *req,
                          const char *author, pm_ctld_reply_t *r);

/* ---- pm_ctld_standby.c */

/* REPLICATE (role controller only): the revisions after req->rev, and
 * the secrets and enrolled keys when req->replica_digest is not theirs. */
void pm_ctld_replicate(pm_ctld_t *self, const Pm__Request *req,
                       const char *author, pm_ctld_reply_t *r);

/* What a standby does with its primary's (at ENDPOINT) REPLICATE answer
 * RESP: stores its epoch (refused: one older than the last followed),
 * then its secrets and enrolled keys, then its revisions (*LAST: the
 * newest stored). Returns NULL, or the trouble (caller frees). */
char *pm_ctld_follow(pm_ctld_t *self, const Pm__Response *resp,
                     const char *endpoint, uint64_t *last);

/* Fills R's role fields (standby, epoch, primary). */
void pm_ctld_role_reply(pm_ctld_t *self, pm_ctld_reply_t *r);

/* The peer work of one loop turn: a standby's promotion check and its
 * next REPLICATE, a primary's next PING. Returns WAIT or less. */
int pm_ctld_peers_tick(pm_ctld_t *self, int wait);

/* Takes a peer's answer (the link's socket was readable). */
void pm_ctld_peers_answer(pm_ctld_t *self);

/* The link's socket to poll, or NULL. */
zsock_t *pm_ctld_peers_socket(pm_ctld_t *self);

/* Frees the peer state (pm_ctld_destroy). */
void pm_ctld_peers_free(pm_ctld_t *self);

/* ---- pm_ctld_access.c */

/* The role (PM_ROLE_ADMIN, _WEB or _CONTROLLER) whose key, enrolled in
 * clients/ now, sent FRAME; NULL when refused (an agent's key, or one no
 * longer enrolled). Sets *NAME (caller frees) to the name it is enrolled
 * as. */
const char *pm_ctld_client_role(pm_ctld_t *self, zframe_t *frame, char **name);

/* Why ROLE may not ask REQ's operation (static), or NULL when it may. */
const char *pm_ctld_op_refused(const char *role, const Pm__Request *req);

/* ---- pm_ctld_signatures.c */

/* SIGNATURES_CHECK: the holders of the fetch duties check the mirrors
 * now; R says who checks what, or exactly why nobody can. */
void pm_ctld_signatures_check(pm_ctld_t *self, const Pm__Request *req,
                              const char *author, pm_ctld_reply_t *r);

/* ---- pm_ctld_why.c */

/* A WHY from the client at *ROUTE: asks every node served, takes *ROUTE
 * over and answers later (pm_ctld_why_tick, or when the last node
 * answered); true. False when this controller cannot defer it (not WHY,
 * no fleet, a standby, too many waiting): pm_ctld_handle answers it. */
bool pm_ctld_why_start(pm_ctld_t *self, zframe_t **route,
                       const Pm__Request *req);

/* Answers the asks whose deadline passed. Returns WAIT or less. */
int pm_ctld_why_tick(pm_ctld_t *self, int wait);

/* R fails as a WHY that pm_ctld_why_start did not take with a fleet: as
 * many asks wait as are kept (pm_ctld.c answers the other cases). */
void pm_ctld_why_busy(pm_ctld_reply_t *r);

/* Frees the asks (pm_ctld_destroy): their clients get no answer. */
void pm_ctld_why_free(pm_ctld_t *self);

/* ---- pm_ctld_test.c */

/* Policy tests waiting for their node at once (PM_CTLD_TEST_MS each at
 * most, pm_ctld.h). */
#define PM_CTLD_TEST_PENDING 4

/* A POLICY_TEST from AUTHOR, the client at *ROUTE: takes *ROUTE over and
 * returns true. The test is checked first (a candidate as PUSH checks a
 * policy, a revision must be stored, the node must be enrolled and
 * connected: --node, else the first node up by name); a test that fails
 * is answered at once, else it is sent to that one node and answered when
 * its TEST_ANSWER comes or after PM_CTLD_TEST_MS (pm_ctld_test_tick).
 * False when this controller cannot take it (not POLICY_TEST, no fleet, a
 * standby, PM_CTLD_TEST_PENDING waiting): pm_ctld_handle answers it. */
bool pm_ctld_test_start(pm_ctld_t *self, zframe_t **route,
                        const Pm__Request *req, const char *author);

/* Answers the tests whose deadline passed. Returns WAIT or less. */
int pm_ctld_test_tick(pm_ctld_t *self, int wait);

/* R fails as a POLICY_TEST that pm_ctld_test_start did not take with a
 * fleet: PM_CTLD_TEST_PENDING tests wait (pm_ctld.c answers the other
 * cases). */
void pm_ctld_test_busy(pm_ctld_reply_t *r);

/* Frees the tests waiting (pm_ctld_destroy): their clients get no answer. */
void pm_ctld_test_free(pm_ctld_t *self);
#endif
