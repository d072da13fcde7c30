/* pm_priv.h - which user a privmta process runs as.
 *
 * Base layer (no policy, no protocol). Whatever parses hostile input runs
 * as an unprivileged user: privmta-milter (mail) and privmta-sigfetch
 * (what mirrors and peers send), both started by root. Each drops root the
 * same way, as Postfix's set_ugid() does: supplementary groups, then the
 * group, then the user, then a check that root cannot be regained. A
 * helper never runs as root by accident: a user whose uid is 0 is refused.
 */
#ifndef PM_PRIV_H
#define PM_PRIV_H

#include <sys/types.h>

/* Looks USER up (a name from the password database). Sets *UID and *GID
 * (its primary group; each may be NULL). Errors: PM_ENOTFOUND (no such
 * user), PM_EINVAL (USER is empty, or is root: uid 0), with *WHY. */
int pm_priv_lookup(const char *user, uid_t *uid, gid_t *gid, char **why);

/* Becomes USER for good when running as root: its groups (initgroups),
 * its primary group, its uid; then checks that setuid(0) fails. Not root:
 * nothing changes and PM_OK (an unprivileged process has nothing to drop;
 * tests run that way). Errors: those of pm_priv_lookup, PM_EIO (a set*id
 * call failed), PM_EINTERNAL (root could be regained), with *WHY. Call it
 * before any thread starts: the set*id calls act on this thread only
 * where the C library does not broadcast them. */
int pm_priv_drop(const char *user, char **why);

#endif
