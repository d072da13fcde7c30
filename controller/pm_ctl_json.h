/* pm_ctl_json.h - the controller's answers as JSON, one shape for every
 * client: `privmta-ctl ... --json` and privmta-web's API print the same
 * objects, so a script written against one reads the other.
 *
 * Each function returns a new reference (caller decrefs). Text from agents
 * goes in as it came: JSON escapes it; a page shows it with textContent. */
#ifndef PM_CTL_JSON_H
#define PM_CTL_JSON_H

#include "privmta.pb-c.h"

#include <jansson.h>

/* "unknown", "ok", "disabled", "degraded" or "down" (NULL: "unknown"). */
const char *pm_ctl_service_state(const Pm__ServiceStatus *s);

/* One node: its NodeStatus fields, "lag" behind R's head and "duties",
 * the databases it fetches for the cluster. */
json_t *pm_ctl_json_node(const Pm__NodeStatus *n, const Pm__Response *r);

/* What belongs to no one node: {"duties": [...], "cooldowns": [...]}. */
json_t *pm_ctl_json_cluster(const Pm__Response *r);

json_t *pm_ctl_json_cooldowns(Pm__Cooldown *const *cds, size_t n);
json_t *pm_ctl_json_drift(const Pm__Drift *d);

/* {"revision", "parent", "author", "time", "message", "digest",
 * "rollback_of"}; the policy is not in it. */
json_t *pm_ctl_json_revision(const Pm__Revision *rev);

/* The rollout as `rollout status --json` shows it; null for none. */
json_t *pm_ctl_json_rollout(const Pm__Rollout *ro);

/* [{"key", "before", "after"}...], values as compact JSON text. */
json_t *pm_ctl_json_diff(Pm__DiffEntry *const *entries, size_t n);

/* One answer of a policy test (a TestResult): {"message", "rcpt",
 * "policy", "revision", "reply", "stage", "verdict", "key", "evidence"}. */
json_t *pm_ctl_json_test_result(const Pm__TestResult *r);

#endif
