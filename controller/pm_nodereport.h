/* pm_nodereport.h - what one agent report changes in the controller's
 * record of a node.
 *
 * The controller keeps each node's latest Pm__NodeStatus (in memory and in
 * the store). A report replaces it, but not all of it is the agent's to
 * say: the drift history is the controller's, cool-downs get the
 * reporter's name and a cap, and most heartbeats change nothing worth a
 * store write or a new MEMBERS. These are those rules, with no sockets
 * and no fleet: OLD is the record so far (NULL before the first report),
 * NEW the status just received and wire-checked.
 */
#ifndef PM_NODEREPORT_H
#define PM_NODEREPORT_H

#include "privmta.pb-c.h"

#include <stdbool.h>
#include <stdint.h>

/* How many hand edits (Drift entries) the controller keeps per node. */
#define PM_NODEREPORT_DRIFT_HISTORY 32

/* Whether NEW says something OLD did not, besides last_seen and the drift
 * history (which changes only with news in `drift`, compared): only then
 * is it worth a write to the store. Call before
 * pm_nodereport_drift_history. OLD and NEW are left as they were. */
bool pm_nodereport_changed(Pm__NodeStatus *old, Pm__NodeStatus *new);

/* NEW's cool-downs, as the cluster will use them: one that names no node
 * was told to NODE (the reporter); none lasts past NOW +
 * PM_WIRE_COOLDOWN_MAX, so a broken or hostile node cannot keep the
 * cluster off a mirror for a year with one report. */
void pm_nodereport_own_cooldowns(const char *node, Pm__NodeStatus *new,
                                 int64_t now);

/* Whether NEW changes what MEMBERS takes from a node's status (its peer
 * endpoint, its cool-downs); the rest, e.g. when a database was last
 * checked, costs no rebuild. */
bool pm_nodereport_members_differ(const Pm__NodeStatus *old,
                                  const Pm__NodeStatus *new);

/* Makes NEW's drift history the controller's: what the agent sent in its
 * place is dropped; OLD's is moved over (OLD keeps none), NEW's news
 * first, at most PM_NODEREPORT_DRIFT_HISTORY entries. Each new hand edit
 * is logged with LABEL (the node's name, escaped). */
void pm_nodereport_drift_history(const char *label, Pm__NodeStatus *old,
                                 Pm__NodeStatus *new);

#endif
