/* pm_pf_sasl.c - does the node's SASL backend answer? */
#include "pm_pf_sasl.h"
#include "pm_mem.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static bool
s_unix_connects(const char *path, char **problem)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof sa.sun_path) {
        *problem = pm_asprintf("socket path %s is too long", path);
        return false;
    }
    strcpy(sa.sun_path, path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
        *problem =
            pm_asprintf("cannot connect to %s: %s", path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return false;
    }
    close(fd);
    return true;
}

/* Cyrus offers the mechanisms of its plugins; no plugin, no mechanism. */
static bool
s_cyrus_has_plugins(char **problem)
{
    static const char *const dirs[] = {
        "/usr/lib/x86_64-linux-gnu/sasl2", "/usr/lib/aarch64-linux-gnu/sasl2",
        "/usr/lib64/sasl2", "/usr/lib/sasl2", "/usr/local/lib/sasl2"};
    static const char *const mechs[] = {
        "libplain.so",     "liblogin.so", "libcrammd5.so",  "libdigestmd5.so",
        "libscram.so",     "libgs2.so",   "libgssapiv2.so", "libntlm.so",
        "libanonymous.so", "libotp.so"};
    for (size_t d = 0; d < sizeof dirs / sizeof dirs[0]; d++)
        for (size_t m = 0; m < sizeof mechs / sizeof mechs[0]; m++) {
            char *p = pm_asprintf("%s/%s", dirs[d], mechs[m]);
            bool ok = access(p, R_OK) == 0;
            free(p);
            if (ok)
                return true;
        }
    *problem = pm_strdup("has no mechanisms (no Cyrus SASL mechanism plugin "
                         "installed, e.g. libsasl2-modules)");
    return false;
}

bool
pm_pf_sasl_answers(const char *type, const char *path, const char *queue_dir,
                   char **problem)
{
    char *inner = NULL;
    bool ok;
    if (strcmp(type, "dovecot") == 0) {
        if (strncmp(path, "inet:", 5) == 0) {
            ok = true; /* remote: cannot be probed cheaply, trust it */
        } else {
            char *full = path[0] == '/' ? pm_strdup(path)
                                        : pm_asprintf("%s/%s", queue_dir, path);
            ok = s_unix_connects(full, &inner);
            free(full);
        }
    } else if (strcmp(type, "cyrus") == 0) {
        ok = s_cyrus_has_plugins(&inner);
    } else {
        ok = false;
        inner = pm_strdup("is not a type this agent can check");
    }
    if (!ok)
        *problem =
            pm_asprintf("no SASL backend: smtpd_sasl_type %s %s", type, inner);
    free(inner);
    return ok;
}
