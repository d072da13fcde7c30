/* pm_sigcdiff.c - see pm_sigcdiff.h. */
#include "pm_sigcdiff.h"
#include "pm_check.h"
#include "pm_error.h"
#include "pm_file.h"
#include "pm_log.h"
#include "pm_mem.h"
#include "pm_sigfetch.h"
#include "pm_sigstore.h"
#include "pm_wire.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int
pm_sigcdiff_stage(const char *dbdir, bool for_fetch, uid_t uid, gid_t gid,
                  char **path, char **why)
{
    char *parent = for_fetch ? pm_asprintf("%s/%s", dbdir, PM_SIGSTORE_FETCH)
                             : pm_strdup(dbdir);
    char *dir = pm_asprintf("%s/%s", parent,
                            for_fetch ? PM_SIGCDIFF_KEPT : PM_SIGCDIFF_INBOX);
    int pfd = open(parent, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    int fd = -1, rc = PM_EIO;
    if (pfd < 0)
        pm_why(why, "sigcdiff", "%s: %s", parent, strerror(errno));
    else
        fd = for_fetch ? pm_sigstore_subdir(pfd, PM_SIGCDIFF_KEPT, dir, uid,
                                            gid, 0700, why)
                       : pm_sigstore_subdir(pfd, PM_SIGCDIFF_INBOX, dir,
                                            geteuid(), getegid(), 0755, why);
    if (fd >= 0)
        rc = pm_sigstore_clear(fd, dir, NULL, why);
    if (fd >= 0)
        close(fd);
    if (pfd >= 0)
        close(pfd);
    free(parent);
    if (rc == PM_OK)
        *path = dir;
    else
        free(dir);
    return rc;
}

size_t
pm_sigcdiff_keep(const char *dbdir, bool for_fetch, const char *name,
                 unsigned from, unsigned to)
{
    char *src = for_fetch ? pm_asprintf("%s/%s/%s", dbdir, PM_SIGSTORE_FETCH,
                                        PM_SIGCDIFF_KEPT)
                          : pm_asprintf("%s/%s", dbdir, PM_SIGCDIFF_INBOX);
    char *kept = pm_asprintf("%s/%s", dbdir, PM_SIGCDIFF_KEPT), *why = NULL;
    int dbfd = open(dbdir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    int pfd = dbfd < 0 || !for_fetch
                  ? -1
                  : openat(dbfd, PM_SIGSTORE_FETCH,
                           O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    int fd = dbfd < 0 ? -1
                      : openat(for_fetch ? pfd : dbfd,
                               for_fetch ? PM_SIGCDIFF_KEPT : PM_SIGCDIFF_INBOX,
                               O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    size_t n = 0;
    bool ok = fd >= 0 && pm_file_mkdir(kept, 0700, (gid_t)-1, &why) == PM_OK;
    /* only the chain kept (pm_sigcdiff_from): FROM and TO come from a
     * version the fetch user's files claim, and 27000 CDIFFs of 16 MiB
     * would be copied as root before the pruning */
    if (to > PM_SIGFETCH_CDIFF_STEPS && from < to - PM_SIGFETCH_CDIFF_STEPS)
        from = to - PM_SIGFETCH_CDIFF_STEPS;
    for (unsigned v = from + 1; ok && v <= to; v++) {
        char *file = pm_asprintf("%s-%u.cdiff", name, v);
        char *to_path = pm_asprintf("%s/%s", kept, file);
        char *from_path = pm_asprintf("%s/%s", src, file), *data = NULL;
        size_t len = 0;
        int rc = pm_file_read_at(fd, file, from_path, PM_WIRE_CDIFF_MAX,
                                 PM_FILE_STRICT | PM_FILE_NO_HOLES, &data, &len,
                                 &why);
        if (rc == PM_OK && len == 0) {
            pm_why(&why, "sigcdiff", "%s is empty", from_path);
            rc = PM_EINVAL;
        }
        ok = rc == PM_OK &&
             pm_file_write(to_path, data, len, 0644, (gid_t)-1, &why) == PM_OK;
        if (rc == PM_ENOTFOUND)
            ; /* a whole file came instead: nothing to keep */
        else if (!ok)
            pm_warn("not keeping %s to share: %s", from_path, why);
        n += ok;
        free(data);
        free(from_path);
        free(to_path);
        free(file);
    }
    if (fd < 0)
        pm_warn("not keeping CDIFFs of %s: %s cannot be opened", name, src);
    if (fd >= 0)
        close(fd);
    if (pfd >= 0)
        close(pfd);
    if (dbfd >= 0)
        close(dbfd);
    free(why);
    free(kept);
    free(src);
    return n;
}

unsigned
pm_sigcdiff_from(const char *dbdir, const char *name, unsigned version)
{
    enum { S_STEPS = PM_SIGFETCH_CDIFF_STEPS };
    char *kept = pm_asprintf("%s/%s", dbdir, PM_SIGCDIFF_KEPT);
    DIR *d = opendir(kept);
    if (!d) {
        free(kept);
        return 0;
    }
    /* held[i]: NAME-(VERSION - i).cdiff is there, i < S_STEPS */
    bool held[S_STEPS] = {false};
    size_t nlen = strlen(name);
    char **drop = NULL;
    size_t n_drop = 0;
    for (struct dirent *e; (e = readdir(d));) {
        uint32_t v = 0;
        char *bad = pm_check_cdiff_file(e->d_name, &v);
        bool mine = !bad && strncmp(e->d_name, name, nlen) == 0 &&
                    e->d_name[nlen] == '-' &&
                    strchr(e->d_name + nlen + 1, '-') == NULL;
        free(bad);
        if (!mine)
            continue;
        if (v <= version && version - v < S_STEPS)
            held[version - v] = true;
        else {
            drop = pm_realloc(drop, (n_drop + 1) * sizeof *drop);
            drop[n_drop++] = pm_strdup(e->d_name);
        }
    }
    closedir(d);
    size_t chain = 0;
    while (chain < S_STEPS && chain < version && held[chain])
        chain++;
    for (size_t i = chain; i < S_STEPS && i < version; i++)
        if (held[i]) {
            drop = pm_realloc(drop, (n_drop + 1) * sizeof *drop);
            drop[n_drop++] =
                pm_asprintf("%s-%u.cdiff", name, version - (unsigned)i);
        }
    for (size_t i = 0; i < n_drop; i++) {
        char *path = pm_asprintf("%s/%s", kept, drop[i]);
        unlink(path);
        free(path);
        free(drop[i]);
    }
    free(drop);
    free(kept);
    return chain ? version - (unsigned)chain + 1 : 0;
}
