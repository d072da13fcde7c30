/* pm_scanstatus.h - the content filter's health, as the agent reports it.
 *
 * privmta-milter writes status.json (atomically) every second; the agent
 * reads it at each heartbeat and turns it into the antispam, antivirus and
 * DKIM entries of its node status. A missing or old file means the milter
 * is not running: that is reported as down, never as fine. Old is judged
 * by both the file's mtime and the "time" the milter wrote in it, and
 * either one ahead of the clock counts as old too (the milter's user sets
 * both). DKIM is ok only when the milter has a usable key for every
 * domain the policy names, not merely for every one it lists itself.
 *
 * The file is written by an unprivileged process that parses hostile mail
 * and read here by root, in the agent's event loop: it is read through
 * pm_file with PM_FILE_STRICT (no link, no FIFO or device, one hard link)
 * and at most PM_SCANSTATUS_MAX bytes. Anything else, or malformed JSON,
 * shows the milter's services as down with the reason. Strings taken from
 * it are escaped (pm_text_escape) and cut to a bounded length on a
 * character boundary, so that the report carrying them is always one
 * pm_wire accepts: a broken byte in the file cannot make the controller
 * refuse the node's whole status.
 */
#ifndef PM_SCANSTATUS_H
#define PM_SCANSTATUS_H

#include "privmta.pb-c.h"

#include <stdint.h>

#define PM_SCANSTATUS_MAX (1u << 20)

/* Fills status->antispam, ->antivirus and ->dkim from the status file at
 * PATH for the node's effective POLICY (NULL: nothing applied yet), which
 * is revision APPLIED: a milter enforcing another revision is reported
 * (degraded, naming both). A file whose mtime or "time" is more than
 * STALE_S seconds old, or in the future, counts as missing; so does one
 * without a "time". Allocations belong to STATUS. */
void pm_scanstatus_fill(const char *path, const Pm__Policy *policy,
                        uint64_t applied, int stale_s, Pm__NodeStatus *status);

/* The same for status text already in memory: DATA holds LEN bytes (need
 * not be NUL-terminated) as the milter writes them to the file, and is
 * taken as fresh (its "time" is not looked at). pm_scanstatus_fill reads the
 * file and hands its text here; this is what parses the less-privileged side's
 * bytes, usable without a file (tests, fuzzing). More than PM_SCANSTATUS_MAX
 * bytes, text that is not a JSON object, or a NULL DATA show the enabled
 * services as down with the reason. Allocations belong to STATUS. */
void pm_scanstatus_fill_data(const char *data, size_t len,
                             const Pm__Policy *policy, uint64_t applied,
                             Pm__NodeStatus *status);

#endif
