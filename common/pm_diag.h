/* pm_diag.h - a list of problems found in one input, reported together.
 *
 * Validation never stops at the first mistake: every problem becomes one line
 * "ORIGIN:LINE: KEY: problem" (ORIGIN is a file name or "command line";
 * LINE 0 is left out), so an admin fixes a policy in one pass.
 */
#ifndef PM_DIAG_H
#define PM_DIAG_H

#include <stddef.h>
#include <stdio.h>

typedef struct pm_diag_t pm_diag_t;

/* Creates an empty list for problems found in ORIGIN. Caller owns it. */
pm_diag_t *pm_diag_new(const char *origin);
void pm_diag_destroy(pm_diag_t **self_p);

/* Adds one problem. KEY may be NULL for problems not tied to a key. */
void pm_diag_add(pm_diag_t *self, unsigned line, const char *key,
                 const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* Adds one already formatted line as it is (problems from a peer). */
void pm_diag_add_raw(pm_diag_t *self, const char *text);

size_t pm_diag_count(const pm_diag_t *self);
/* Returns line i, "ORIGIN:LINE: KEY: problem". Owned by self. */
const char *pm_diag_line(const pm_diag_t *self, size_t i);
/* Returns the key of problem i, or NULL. Owned by self. */
const char *pm_diag_key(const pm_diag_t *self, size_t i);
/* Returns the problem of line i without origin, line or key. */
const char *pm_diag_problem(const pm_diag_t *self, size_t i);
const char *pm_diag_origin(const pm_diag_t *self);
void pm_diag_set_origin(pm_diag_t *self, const char *origin);
/* Prints every line to f, one per line. */
void pm_diag_print(const pm_diag_t *self, FILE *f);

#endif
