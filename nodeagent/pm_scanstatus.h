/* pm_scanstatus.h - the content filter's health, as the agent reports it.
 *
 * privmta-milter writes status.json (atomically) every second; the agent
 * reads it at each heartbeat and turns it into the antispam, antivirus and
 * DKIM entries of its node status. A missing or old file means the milter
 * is not running: that is reported as down, never as fine.
 *
 * The file is written by an unprivileged process that parses hostile mail
 * and read here by root, in the agent's event loop: it is read through
 * pm_file with PM_FILE_STRICT (no link, no FIFO or device, one hard link)
 * and at most PM_SCANSTATUS_MAX bytes. Anything else, or malformed JSON,
 * shows the milter's services as down with the reason; strings taken from
 * it are cut to a bounded length.
 */
#ifndef PM_SCANSTATUS_H
#define PM_SCANSTATUS_H

#include "privmta.pb-c.h"

#include <stdint.h>

#define PM_SCANSTATUS_MAX (1u << 20)

/* Fills status->antispam, ->antivirus and ->dkim from the status file at
 * PATH for the node's effective POLICY (NULL: nothing applied yet), which
 * is revision APPLIED: a milter enforcing another revision is reported
 * (degraded, naming both). A file older than STALE_S seconds counts as
 * missing. Allocations belong to STATUS. */
void pm_scanstatus_fill(const char *path, const Pm__Policy *policy,
                        uint64_t applied, int stale_s, Pm__NodeStatus *status);

#endif
