/* pm_rollout.h - the rolling restart state machine.
 *
 * A rollout (Pm__Rollout, proto/privmta.proto) restarts one service on
 * every enrolled node, a few nodes at a time, each gated on health. This
 * module only decides: it reads the rollout, the nodes' current views (the
 * NodeStatus the fleet holds for each enrolled node, with its liveness
 * "up", "stale", "down" or "never", its restart result, postfix_running
 * and apply_error) and the time, and returns the updated rollout and the
 * nodes to send an order to. It sends nothing, stores nothing and logs
 * nothing: the controller stores the rollout BEFORE it sends the orders a
 * tick asks for, so a controller killed at any point and restarted resumes
 * from what is on disk and never starts a node twice (an order re-sent to
 * a node that was already told is answered, not carried out again, by its
 * agent).
 *
 * The order of the nodes is fixed at the start: the canaries first, in the
 * order given, then every other enrolled node sorted by name (bytewise).
 * Each tick:
 *   - a RESTARTING node whose restart result answers this rollout with
 *     done becomes SETTLING (ok) or FAILED with detail "PHASE: ERROR";
 *   - a SETTLING node is DONE once it stayed healthy for min_healthy_ms:
 *     liveness "up", postfix running and no apply error. A look that finds
 *     one of them wrong fails it at once, with detail "settling: CHECK".
 *     Settling counts from the node's settling_since, which is stored
 *     with the rollout and so survives a controller restart;
 *   - a RESTARTING or SETTLING node still there deadline_ms after its
 *     `started` ends: UNREACHABLE when its liveness is not "up" (e.g. "no
 *     answer in 5m; node is down"), else FAILED naming where it stood;
 *   - the rollout HALTS (no node starts any more, the others are left
 *     alone) when a canary did not reach DONE, or when FAILED plus
 *     UNREACHABLE nodes exceed max_failures; its reason names the node
 *     and the check;
 *   - while RUNNING, PENDING nodes start in order: a canary only when no
 *     node is in flight and nothing else starts until it is DONE; others
 *     while fewer than spec.batch are in flight (RESTARTING or SETTLING).
 *     A node whose turn comes while its liveness is not "up" is
 *     UNREACHABLE at once (it counts as a failure); one that is up becomes
 *     RESTARTING with `started` = now and is listed in the orders;
 *   - once every node has ended, a RUNNING or PAUSED rollout is DONE.
 * Nodes in flight are followed whatever the rollout's state: a paused,
 * halted or aborted rollout starts no node, but those already told finish
 * and their outcome is recorded.
 *
 * A canary push (spec.policy_rev set; `policy push FILE --canary NODE`)
 * restarts nothing: its nodes are the canaries, one at a time. A canary
 * "told" (RESTARTING) was sent revision policy_rev; it is SETTLING once its
 * applied_rev reaches it without an apply error, FAILED ("apply: ERROR")
 * when it reports an apply error for it. Settling, a look that finds it
 * unhealthy (not up, postfix not running, an apply error, or its
 * antivirus, antispam or DKIM service down: the revision may have broken
 * its filter) starts min_healthy again instead of failing it: the milter
 * may still be loading what the revision asks for; the deadline fails it,
 * naming the problem. The controller sends policy_rev to every node only
 * once the rollout is DONE; a HALTED one (a canary failed) leaves them on
 * revert_rev, and the controller reverts the canaries when auto_revert
 * says so (or on abort). A node "answered" a canary push when its
 * applied_rev reached policy_rev; RESEND lists those that did not.
 *
 * Times are unix milliseconds (wall clock: they are stored and compared
 * across controller restarts). Functions that return int return PM_OK or
 * a pm_err_t with *why (caller frees, when why is not NULL) and change
 * nothing on error.
 */
#ifndef PM_ROLLOUT_H
#define PM_ROLLOUT_H

#include "privmta.pb-c.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* What a spec field left at 0 means. A deadline covers a node from its
 * order to the end of its settling: min_healthy must be shorter. */
#define PM_ROLLOUT_BATCH_DEFAULT 1
#define PM_ROLLOUT_MIN_HEALTHY_MS_DEFAULT 10000
#define PM_ROLLOUT_DEADLINE_MS_DEFAULT 300000

/* How long an agent lets SMTP sessions in flight finish before it
 * restarts (RestartOrder.drain_ms): 30 s, enough for a session to finish
 * the message it is sending; never more than half the deadline, so that a
 * drained node still has time to restart and settle. */
#define PM_ROLLOUT_DRAIN_MS 30000
/* Rollout ids a node reports beyond this are not believed (pm_rollout.c,
 * s_next_id): a rollout a minute for a million years stays below. */
#define PM_ROLLOUT_ID_TRUST (1ull << 40)
/* Each promotion (a new epoch) starts ids 2^24 further: past any its
 * predecessor can have given, below PM_ROLLOUT_ID_TRUST up to epoch
 * 2^15 (held there after). */
#define PM_ROLLOUT_EPOCH_SHIFT 24
#define PM_ROLLOUT_EPOCH_MAX (1ull << 15)

/* How often the controller sends its order again to a RESTARTING node
 * that has not answered (lost message, reconnected agent, restarted
 * controller). Agents answer a repeated order without acting on it. */
#define PM_ROLLOUT_RESEND_MS 3000

/* Whether R is RUNNING or PAUSED: then no other rollout may start and the
 * policy may not change. NULL: false. */
bool pm_rollout_active(const Pm__Rollout *r);

/* Whether a tick can still change R: it is active, or a node is in flight
 * (RESTARTING or SETTLING). NULL: false. */
bool pm_rollout_ticking(const Pm__Rollout *r);

/* How many of R's nodes are DONE. */
size_t pm_rollout_done(const Pm__Rollout *r);

/* The sentence that refuses a policy change while R is active: "a rolling
 * restart is running (rollout N, K of M nodes done): wait for it or
 * `privmta-ctl rollout abort`" (paused: "... resume and wait for it or
 * ..."). Caller frees. */
char *pm_rollout_busy(const Pm__Rollout *r);

/* The drain time ordered to R's nodes: PM_ROLLOUT_DRAIN_MS, or half of
 * R's deadline when that is shorter. */
int64_t pm_rollout_drain_ms(const Pm__Rollout *r);

/* Starts a rollout after CURRENT (the last one, or NULL) of SPEC over the
 * enrolled NODES (N of them, any order; only their names and last restart
 * results are read), by USER, at NOW, on a controller at EPOCH. The new
 * rollout's id is past CURRENT's, past any a node reports it answered,
 * and past (EPOCH - 1) << PM_ROLLOUT_EPOCH_SHIFT (1 for the first at
 * epochs 0 and 1),
 * state RUNNING, every node PENDING in restart order, and a copy of SPEC
 * with the defaults filled in and, for batch_percent, batch set to that
 * share of the nodes rounded up (at least 1). No node is started: the
 * first tick does that. Sets *out (caller frees it with
 * pm__rollout__free_unpacked). Errors:
 *   PM_ECONFLICT  CURRENT is RUNNING or PAUSED (*why names it and says how
 *                 to see and abort it);
 *   PM_EINVAL     no node is enrolled ("no node to restart"), a canary is
 *                 not an enrolled node or is named twice, a canary push
 *                 without a canary or with a service, batch and
 *                 batch_percent are both set, batch_percent is above 100,
 *                 a duration is negative, or min_healthy_ms is not shorter
 *                 than deadline_ms. */
int pm_rollout_start(const Pm__Rollout *current, const Pm__RolloutSpec *spec,
                     Pm__NodeStatus *const *nodes, size_t n, uint64_t epoch,
                     const char *user, int64_t now, Pm__Rollout **out,
                     char **why);

/* PAUSE: a RUNNING rollout starts no more nodes (those in flight finish).
 * RESUME: a PAUSED one is RUNNING again. ABORT: a RUNNING or PAUSED one is
 * ABORTED for good, reason "aborted by USER", finished NOW; so is a canary
 * push that HALTED without auto_revert (its canaries then go back: the
 * way out of such a halt), reason "aborted by USER after: REASON".
 * PM_ENOTFOUND
 * when R is NULL, PM_ECONFLICT when R is not in a state the step applies
 * to (*why says which it is in). */
int pm_rollout_pause(Pm__Rollout *r, char **why);
int pm_rollout_resume(Pm__Rollout *r, char **why);
int pm_rollout_abort(Pm__Rollout *r, const char *user, int64_t now, char **why);

/* One step of R at NOW, given the enrolled nodes' current VIEWS (N_VIEWS,
 * any order; a node of R with no view is no longer enrolled and counts as
 * not up). Writes into ORDERS (room for R->n_nodes) the indexes in
 * R->nodes of the nodes to send an order to, and sets *N_ORDERS: those
 * this tick started and, when RESEND, every RESTARTING node whose agent
 * has not answered this rollout yet. In a canary push, a canary that
 * applied the revision this tick (SETTLING) is ordered too, and again on
 * RESEND until it answers: its order is the probe (RestartOrder service
 * PM_WIRE_SERVICE_PROBE), which must pass before it is DONE. Returns
 * whether R changed: the caller must then store R durably before sending
 * any order. */
bool pm_rollout_tick(Pm__Rollout *r, Pm__NodeStatus *const *views,
                     size_t n_views, int64_t now, bool resend, size_t *orders,
                     size_t *n_orders);

/* Whether the order to R's node NODE (an index from pm_rollout_tick) is
 * the probe of a canary push, not the revision itself. */
bool pm_rollout_probing(const Pm__Rollout *r, size_t node);

/* Lowercase names for a person or JSON: "running", "restarting". */
const char *pm_rollout_state_name(Pm__Rollout__State state);
const char *pm_rollout_node_state_name(Pm__RolloutNode__State state);

#endif
