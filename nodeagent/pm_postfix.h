/* pm_postfix.h - enforcing the policy on one real Postfix instance.
 *
 * One instance is one configuration directory (postfix -c DIR), so several
 * nodes run side by side on one machine. The Postfix part of the policy is
 * rendered into main.cf parameters from one table (pm_postfix.c) that maps
 * policy keys to the parameters they drive; every other parameter of
 * main.cf is left exactly as it was.
 *
 * Apply is all-or-nothing: the parameters are written with postconf into a
 * copy of main.cf, checked (postconf and `postfix check`), swapped in with
 * rename(2), and Postfix is reloaded if running; on any failure the previous
 * main.cf is put back byte for byte and Postfix reloaded again.
 */
#ifndef PM_POSTFIX_H
#define PM_POSTFIX_H

#include "pm_backend.h"

#include <stddef.h>

/* One rendered Postfix parameter. */
typedef struct {
    char *name;
    char *value;
} pm_postfix_param_t;

/* Renders EFFECTIVE into the Postfix parameters the policy owns, in table
 * order. Sets *n; caller frees with pm_postfix_params_free. */
pm_postfix_param_t *pm_postfix_render(const Pm__Policy *effective, size_t *n);
void pm_postfix_params_free(pm_postfix_param_t **params_p, size_t n);

/* A backend for the Postfix instance whose configuration directory is
 * CONFIG_DIR. Returns NULL with *why when CONFIG_DIR has no main.cf. */
pm_backend_t *pm_postfix_new(const char *config_dir, char **why);

#endif
