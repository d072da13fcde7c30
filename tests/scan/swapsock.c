/* swapsock.c - preloaded into privmta-milter by test_milter_main: the
 * first getgrnam (the milter asks for socket_group between making its
 * socket and giving it that group) first puts a symbolic link to
 * $PM_TEST_SWAP_TARGET in place of $PM_TEST_SWAP_PATH, as the milter's
 * user could race to do in a directory of its own. */
#include <dlfcn.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

struct group *
getgrnam(const char *name)
{
    static int done;
    const char *path = getenv("PM_TEST_SWAP_PATH");
    const char *target = getenv("PM_TEST_SWAP_TARGET");
    if (!done && path && target) {
        char tmp[4096];
        done = 1;
        snprintf(tmp, sizeof tmp, "%s.swap", path);
        if (symlink(target, tmp) != 0 || rename(tmp, path) != 0)
            perror("swapsock");
    }
    struct group *(*real)(const char *) =
        (struct group * (*)(const char *)) dlsym(RTLD_NEXT, "getgrnam");
    return real(name);
}
