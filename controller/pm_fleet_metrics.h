/* pm_fleet_metrics.h - what the controller's metrics endpoint shows.
 *
 *   privmta_controller_head_revision              gauge
 *   privmta_controller_revisions_published_total  counter
 *   privmta_controller_push_ack_seconds           histogram: a publish ->
 *                                                 each node's first report
 *                                                 of having applied it
 *   privmta_controller_nodes{liveness}            gauge: up, stale, down,
 *                                                 never
 *   privmta_controller_node_applied_revision{node}  gauge
 *   privmta_controller_node_lag_revisions{node}     gauge: head - applied
 */
#ifndef PM_FLEET_METRICS_H
#define PM_FLEET_METRICS_H

#include "pm_fleet.h"

#include <stddef.h>

/* The exposition text now (*LEN bytes); caller frees. */
char *pm_fleet_metrics_text(pm_fleet_t *fleet, size_t *len);

#endif
