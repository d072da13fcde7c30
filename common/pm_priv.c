/* pm_priv.c - see pm_priv.h. */
#include "pm_priv.h"
#include "pm_error.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <string.h>
#include <unistd.h>

int
pm_priv_lookup(const char *user, uid_t *uid, gid_t *gid, char **why)
{
    if (!user || !*user) {
        pm_why(why, "priv", "no user named to run as");
        return PM_EINVAL;
    }
    errno = 0;
    struct passwd *pw = getpwnam(user);
    if (!pw) {
        pm_why(why, "priv", "user %s: %s", user,
               errno ? strerror(errno) : "no such user");
        return PM_ENOTFOUND;
    }
    if (pw->pw_uid == 0) {
        pm_why(why, "priv",
               "user %s has uid 0: what parses hostile input must not run "
               "as root",
               user);
        return PM_EINVAL;
    }
    if (uid)
        *uid = pw->pw_uid;
    if (gid)
        *gid = pw->pw_gid;
    return PM_OK;
}

int
pm_priv_drop(const char *user, char **why)
{
    if (geteuid() != 0)
        return PM_OK;
    uid_t uid;
    gid_t gid;
    int rc = pm_priv_lookup(user, &uid, &gid, why);
    if (rc != PM_OK)
        return rc;
    if (initgroups(user, gid) != 0 || setgid(gid) != 0 || setuid(uid) != 0) {
        pm_why(why, "priv", "cannot become user %s: %s", user, strerror(errno));
        return PM_EIO;
    }
    if (setuid(0) == 0) {
        pm_why(why, "priv", "root could be regained after becoming %s", user);
        return PM_EINTERNAL;
    }
    return PM_OK;
}
