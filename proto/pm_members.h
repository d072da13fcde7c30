/* pm_members.h - the MEMBERS publication, whole or as a change.
 *
 * MEMBERS names every enrolled node (name, peer endpoint, CURVE key,
 * liveness), some 80 bytes a node. Sent whole to every agent whenever one
 * node comes or goes, it costs the controller N x N x 80 bytes of CURVE
 * encryption per change: 80 MB at 1000 nodes, measured in the propagation
 * bench as half-second stalls of pushes and 70 MiB of extra RSS while agents
 * connect. So the membership has an epoch, and a change goes out as a
 * delta from the epoch before it. An agent that holds another epoch (it
 * lost a message, or the controller restarted) keeps what it holds, says
 * which epoch that is in its reports (AgentReport.members_epoch), and the
 * controller sends it the whole list again.
 *
 * Duties and cool-downs are a few lines: every MEMBERS, whole or delta,
 * carries all of them.
 *
 * A whole MEMBERS has members_base 0; a delta names its base epoch, holds
 * the members that are new or changed and, in members_gone, the names no
 * longer enrolled. Members are kept sorted by name.
 */
#ifndef PM_MEMBERS_H
#define PM_MEMBERS_H

#include "privmta.pb-c.h"

#include <stddef.h>
#include <stdint.h>

/* Fills DELTA (initialized by the caller) with the change from OLD to NOW,
 * both whole: members_base is OLD's epoch, members_epoch NOW's, members
 * NOW's that OLD lacks or holds otherwise, members_gone OLD's names that
 * NOW lacks, and NOW's duties and cool-downs. DELTA borrows every string
 * and member from OLD and NOW; pm_members_delta_clear frees its arrays. */
void pm_members_delta(const Pm__Publication *old, const Pm__Publication *now,
                      Pm__Publication *delta);
void pm_members_delta_clear(Pm__Publication *delta);

/* The whole MEMBERS that CHANGE (a wire-checked MEMBERS publication) makes
 * of HELD (the whole one held, or NULL), packed (*LEN bytes; caller
 * frees): CHANGE itself when it is whole, HELD with CHANGE applied when it
 * is a delta from HELD's epoch. NULL when it is a delta from another epoch
 * (or nothing is held): the holder then waits for the whole list. */
uint8_t *pm_members_apply(const Pm__Publication *held,
                          const Pm__Publication *change, size_t *len);

#endif
