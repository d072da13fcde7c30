/* pm_duty.h - who in the cluster fetches which ClamAV database from the
 * mirrors, and which mirrors the whole cluster leaves alone for now.
 *
 * Signature databases are fetched about once per cluster, not by every
 * node: for each database one live member holds the fetch duty and the
 * others pull the files from their peers. The holder is chosen by
 * rendezvous (highest random weight) hashing: every member gets a weight
 * per database, the first 8 bytes of sha256(DATABASE "\0" NODE), and the
 * live member with the highest weight holds the duty. So:
 *   - the answer depends only on the set of live names, never on their
 *     order or on anything remembered: agents and controllers that see the
 *     same members agree;
 *   - when the holder stops being live its duties move to the next highest
 *     weight, and come back when it is live again; no other duty moves;
 *   - databases spread evenly over the members (each is a fair draw).
 *
 * A mirror that answered 429 or 403 to any node must not be asked by any
 * node before its deadline: the cluster's cool-downs are the union of what
 * the nodes report, one per mirror, the latest deadline winning.
 *
 * Everything here is a pure function over borrowed messages: nothing is
 * allocated that the caller does not free, nothing is logged, and there
 * is no error to report (bad input, e.g. an empty node name, is still
 * answered deterministically).
 */
#ifndef PM_DUTY_H
#define PM_DUTY_H

#include "privmta.pb-c.h"

#include <stddef.h>
#include <stdint.h>

/* The rendezvous weight of NODE for DATABASE: the first 8 bytes of
 * sha256(DATABASE "\0" NODE), read big-endian. */
uint64_t pm_duty_weight(const char *database, const char *node);

/* The index in MEMBERS (N of them) of the member that fetches DATABASE:
 * among those with live set, the one with the highest weight (equal
 * weights, which sha256 makes practically impossible, go to the smaller
 * name). Returns -1 when no member is live: then nobody holds the duty. */
long pm_duty_holder(const char *database, Pm__Member *const *members, size_t n);

/* The cluster's cool-downs from IN (N_IN of them, from any number of
 * nodes, in any order): those whose until is after NOW (unix seconds), one
 * per mirror, the one with the latest until winning (with equal deadlines,
 * the one from the smaller node name, so the answer does not depend on the
 * order of IN). Writes borrowed pointers into OUT, which has room for
 * N_IN, sorted by mirror; returns how many. Sets *NEXT_EXPIRY (when not
 * NULL) to the earliest until among them, or INT64_MAX when there are
 * none: the moment the answer changes by itself. Reorders IN. */
size_t pm_duty_cooldowns(Pm__Cooldown **in, size_t n_in, int64_t now,
                         Pm__Cooldown **out, int64_t *next_expiry);

#endif
