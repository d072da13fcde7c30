/* pm_pf_drift.h - noticing hand edits of the parameters the policy owns.
 *
 * After each successful apply the backend tells this module what main.cf
 * now holds (the rendered parameters). A check then costs one stat(2) of
 * main.cf while nothing touched it; when its identity changed (inode,
 * size, mtime or ctime: an editor writing in place, `postconf -e`
 * renaming a new file over it, a chmod), postconf -n reads the owned
 * parameters back and every one that no longer holds the applied value is
 * drift. Edits of parameters the policy does not own change the identity
 * but are no drift: they are the node's own business.
 *
 * Why a stat per check and not inotify: a stat catches every way main.cf
 * can change, including a rename over it (which an inotify watch on the
 * file loses) and costs nothing at one check a second; the agent's loop
 * polls ZeroMQ sockets, where an inotify descriptor does not fit.
 */
#ifndef PM_PF_DRIFT_H
#define PM_PF_DRIFT_H

#include "pm_postconf.h"
#include "privmta.pb-c.h"

#include <stddef.h>

typedef struct pm_pf_drift_t pm_pf_drift_t;

/* Watches CONFIG_DIR/main.cf; nothing is owned until the first applied. */
pm_pf_drift_t *pm_pf_drift_new(const char *config_dir);
void pm_pf_drift_destroy(pm_pf_drift_t **self_p);

/* main.cf now holds PARAMS (copied), as an apply just wrote or found. */
void pm_pf_drift_applied(pm_pf_drift_t *self, const pm_postconf_param_t *params,
                         size_t n);

/* The next check reads main.cf whatever its identity: a failed apply may
 * have rewritten it with bytes that are not what was applied. */
void pm_pf_drift_forget(pm_pf_drift_t *self);

/* main.cf should hold PARAMS (copied): what an earlier run of the agent
 * applied. The next check reads main.cf whatever its identity, so it
 * reports what was edited while the agent was not running. */
void pm_pf_drift_expect(pm_pf_drift_t *self, const pm_postconf_param_t *params,
                        size_t n);

/* Whether main.cf sets PARAMS, when that is known without reading it:
 * main.cf is as it was when it last held what was applied. 1: it sets
 * every one of them (they are among what was applied, same values); 0:
 * one of them was applied with another value; -1: not known (main.cf
 * changed since, nothing was applied, drift was found, or a parameter in
 * PARAMS was never applied): ask postconf. Spares an apply one postconf
 * run, i.e. one process start. */
int pm_pf_drift_holds(const pm_pf_drift_t *self,
                      const pm_postconf_param_t *params, size_t n);

/* The owned parameters that main.cf no longer sets to their applied
 * value: sets *FOUND to a new array of that many Pm__Drift (parameter,
 * applied, found; the rest is the caller's to fill) and returns the
 * count. Free each with pm__drift__free_unpacked(d, NULL), the array with
 * free(). 0 (and *FOUND NULL) when nothing drifted, nothing was applied
 * yet, or postconf cannot read main.cf (the apply that follows says why).
 * A change is reported once: the next check is quiet until main.cf
 * changes again. */
size_t pm_pf_drift_check(pm_pf_drift_t *self, Pm__Drift ***found);

#endif
