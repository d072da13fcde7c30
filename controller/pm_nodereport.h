/* pm_nodereport.h - what one agent report changes in the controller's
 * record of a node.
 *
 * The controller keeps each node's latest Pm__NodeStatus (in memory and in
 * the store). A report replaces it, but not all of it is the agent's to
 * say: the drift history is the controller's, cool-downs are kept for
 * the policy's mirrors only, in the reporter's name and with a cap, and
 * most heartbeats change nothing worth a store write or a new MEMBERS.
 * These are those rules, with no sockets and no fleet: OLD is the record
 * so far (NULL before the first report), NEW the status just received
 * and wire-checked.
 */
#ifndef PM_NODEREPORT_H
#define PM_NODEREPORT_H

#include "privmta.pb-c.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* How many hand edits (Drift entries) the controller keeps per node. */
#define PM_NODEREPORT_DRIFT_HISTORY 32

/* Whether NEW says something OLD did not, besides last_seen and the drift
 * history (which changes only with news in `drift`, compared): only then
 * is it worth a write to the store. Call before
 * pm_nodereport_drift_history. OLD and NEW are left as they were. */
bool pm_nodereport_changed(Pm__NodeStatus *old, Pm__NodeStatus *new);

/* Whether cool-down C may count for the cluster: its mirror is one of
 * MIRRORS (N_MIRRORS, the head policy's antivirus.mirrors) and its HTTP
 * status one that asks a client to wait (429, 403). Any other mirror
 * name only costs room: every agent gets the cluster's list, and names
 * made up to sort first would push the real ones out of it. */
bool pm_nodereport_cooldown_kept(const Pm__Cooldown *c, char *const *mirrors,
                                 size_t n_mirrors);

/* NEW's cool-downs, as the cluster will use them: only those
 * pm_nodereport_cooldown_kept keeps, at most one per mirror (the latest
 * deadline), each told to NODE, the reporter, whatever node it names (an
 * agent relays what peers told it, but the controller cannot check a
 * name, and a node could blame another); none lasts past NOW +
 * PM_WIRE_COOLDOWN_MAX, so a broken or hostile node cannot keep the
 * cluster off a mirror for a year with one report. The others are freed. */
void pm_nodereport_own_cooldowns(const char *node, char *const *mirrors,
                                 size_t n_mirrors, Pm__NodeStatus *new,
                                 int64_t now);

/* NEW's peer endpoint, as every agent will dial it: kept only when it is
 * "tcp://HOST:PORT" (what an agent's peer service binds); anything else
 * (an ipc:// path, an inproc:// name) is emptied, so that a node cannot
 * make every root agent connect to a local socket of its choosing.
 * Returns whether it was emptied. */
bool pm_nodereport_own_endpoint(Pm__NodeStatus *new);

/* Whether NEW changes what MEMBERS takes from a node's status (its peer
 * endpoint, its cool-downs); the rest, e.g. when a database was last
 * checked, costs no rebuild. */
bool pm_nodereport_members_differ(const Pm__NodeStatus *old,
                                  const Pm__NodeStatus *new);

/* Makes NEW's drift history the controller's: what the agent sent in its
 * place is dropped; OLD's is moved over (OLD keeps none), NEW's news
 * first, at most PM_NODEREPORT_DRIFT_HISTORY entries. The first LOG_MAX
 * new hand edits are logged with LABEL (the node's name, escaped).
 * Returns how many new hand edits there were (logged or not). */
size_t pm_nodereport_drift_history(const char *label, Pm__NodeStatus *old,
                                   Pm__NodeStatus *new, size_t log_max);

#endif
