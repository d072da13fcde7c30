/* pm_scanstatus.h - the content filter's health, as the agent reports it.
 *
 * privmta-milter writes status.json (atomically) every second; the agent
 * reads it at each heartbeat and turns it into the antispam, antivirus and
 * DKIM entries of its node status. A missing or old file means the milter
 * is not running: that is reported as down, never as fine.
 */
#ifndef PM_SCANSTATUS_H
#define PM_SCANSTATUS_H

#include "privmta.pb-c.h"

/* Fills status->antispam, ->antivirus and ->dkim from the status file at
 * PATH for the node's effective POLICY (NULL: nothing applied yet). A file
 * older than STALE_S seconds counts as missing. Allocations belong to
 * STATUS. */
void pm_scanstatus_fill(const char *path, const Pm__Policy *policy, int stale_s,
                        Pm__NodeStatus *status);

#endif
