/* pm_sigbook.h - what a node has been told about mirrors and peers, each
 * fact until a deadline: the mirrors the cluster must not ask (cool-downs,
 * after a 429 or 403 told to any node) and the peers this node does not
 * pull from (distrust, after one served a file that failed verification).
 *
 * Cool-downs arrive from this node's fetches, from peers by gossip and
 * from the controller; the latest deadline per mirror wins, and a
 * deadline further than PM_WIRE_COOLDOWN_MAX from now is cut to it (a
 * broken or hostile node cannot keep the cluster off a mirror for a year
 * with one report). Distrust is this node's own judgement, never gossiped.
 *
 * Plain data with no thread of its own: the pm_sigsync actor owns one.
 * Facts past their deadline are ignored at once and dropped by
 * pm_sigbook_expire.
 */
#ifndef PM_SIGBOOK_H
#define PM_SIGBOOK_H

#include "privmta.pb-c.h"

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

typedef struct pm_sigbook pm_sigbook_t;

pm_sigbook_t *pm_sigbook_new(void);

/* Frees SELF; accepts NULL and *SELF_P == NULL; nulls *SELF_P. */
void pm_sigbook_destroy(pm_sigbook_t **self_p);

/* MIRROR said HTTP (429, 403) to NODE: nobody asks it before UNTIL. Keeps
 * the later of UNTIL and what was known; ignores a deadline already past
 * or an empty MIRROR. True when this was news (a new or later deadline):
 * worth telling peers. */
bool pm_sigbook_cool(pm_sigbook_t *self, const char *mirror, int http,
                     time_t until, const char *node);

/* The deadline MIRROR is cooling down until, or 0 when it is not. */
time_t pm_sigbook_cool_until(const pm_sigbook_t *self, const char *mirror);

/* Every cool-down as messages (caller frees each with
 * pm__cooldown__free_unpacked, then the array); sets *N. */
Pm__Cooldown **pm_sigbook_cooldowns(const pm_sigbook_t *self, size_t *n);

/* This node does not pull from PEER for SECS seconds, because REASON. */
void pm_sigbook_distrust(pm_sigbook_t *self, const char *peer, int secs,
                         const char *reason);

/* True while PEER is distrusted. */
bool pm_sigbook_distrusted(const pm_sigbook_t *self, const char *peer);

/* Every distrusted peer as messages (caller frees each with
 * pm__distrust__free_unpacked, then the array); sets *N. */
Pm__Distrust **pm_sigbook_distrusts(const pm_sigbook_t *self, size_t *n);

/* Drops every fact whose deadline has passed. */
void pm_sigbook_expire(pm_sigbook_t *self);

#endif
