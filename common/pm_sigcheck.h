/* pm_sigcheck.h - does libclamav accept this signature file?
 *
 * Loads one custom signature file into a scratch engine and compiles it,
 * exactly as a node would, so that a policy carrying a signature libclamav
 * refuses is rejected at the controller instead of breaking every node.
 */
#ifndef PM_SIGCHECK_H
#define PM_SIGCHECK_H

#include <stddef.h>

/* Returns NULL when libclamav loads and compiles CONTENT as a file named
 * NAME (the extension selects the format), else a new sentence with
 * libclamav's own reason. Sets *nsigs (may be NULL) to the signature count.
 * Caller frees the result. Thread-safe. */
char *pm_sigcheck(const char *name, const void *content, size_t len,
                  unsigned *nsigs);

#endif
