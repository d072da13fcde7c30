/* pm_sigstore.c - see pm_sigstore.h. */
#include "pm_sigstore.h"
#include "pm_error.h"
#include "pm_file.h"
#include "pm_mem.h"
#include "pm_wire.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- scratch copies, checks, installs ------------------------------------ */

int
pm_sigstore_scratch(const char *dbdir, const char *file, char **tmp, int *fd,
                    char **why)
{
    char *scratch = pm_asprintf("%s/%s", dbdir, PM_SIGSTORE_SCRATCH);
    int rc = pm_file_mkdir(scratch, 0711, (gid_t)-1, why);
    if (rc == PM_OK) {
        *tmp = pm_asprintf("%s/XXXXXX-%s", scratch, file);
        *fd = mkostemps(*tmp, (int)strlen(file) + 1, O_CLOEXEC);
        if (*fd < 0) {
            pm_why(why, "sigstore", "cannot create a file in %s: %s", scratch,
                   strerror(errno));
            PM_FREE(tmp);
            rc = PM_EIO;
        }
    }
    free(scratch);
    return rc == PM_OK ? PM_OK : PM_EIO;
}

void
pm_sigstore_scratch_end(const char *dbdir, const char *tmp)
{
    if (tmp)
        unlink(tmp);
    char *scratch = pm_asprintf("%s/%s", dbdir, PM_SIGSTORE_SCRATCH);
    rmdir(scratch); /* fails, rightly, while another copy is in it */
    free(scratch);
}

int
pm_sigstore_check(pm_sigverify_t *verifier, int fd, const char *tmp,
                  const char *name, int timeout_ms, pm_sigfile_t *info,
                  char **why)
{
    if (fchmod(fd, 0644) != 0 || fsync(fd) != 0) {
        pm_why(why, "sigstore", "cannot keep %s: %s", tmp, strerror(errno));
        return PM_EIO;
    }
    char *bad = NULL;
    pm_sigfile_t got = {0};
    int rc = pm_sigverify_file(verifier, tmp, name, timeout_ms, &got.version,
                               &got.sigs, &got.built, &bad);
    if (rc == PM_EINTERNAL) { /* the helper, not the file */
        pm_why(why, "sigstore", "%s", bad ? bad : "the verifier failed");
        free(bad);
        return PM_EIO;
    }
    if (rc != PM_OK) { /* the reason, without our scratch file's name */
        size_t n = strlen(tmp);
        const char *reason = bad && strncmp(bad, tmp, n) == 0 && bad[n] == ' '
                                 ? bad + n + 1
                                 : bad;
        pm_why(why, "sigstore", "%s", reason ? reason : "fails verification");
        free(bad);
        return PM_EPROTO;
    }
    *info = got;
    return PM_OK;
}

int
pm_sigstore_install(const char *tmp, const char *dbdir, const char *file,
                    char **why)
{
    char *to = pm_asprintf("%s/%s", dbdir, file);
    int rc = pm_file_rename(tmp, to, why);
    size_t len = strlen(to);
    to[len - 2] = to[len - 2] == 'v' ? 'l' : 'v'; /* .cvd <-> .cld */
    if (rc == PM_OK && unlink(to) != 0 && errno != ENOENT) {
        pm_why(why, "sigstore", "cannot remove %s: %s", to, strerror(errno));
        rc = PM_EIO;
    }
    free(to);
    return rc;
}

/* ---- the fetch user's directory ------------------------------------------ */

int
pm_sigstore_subdir(int parent_fd, const char *name, const char *path, uid_t uid,
                   gid_t gid, mode_t mode, char **why)
{
    if (mkdirat(parent_fd, name, mode) != 0 && errno != EEXIST) {
        pm_why(why, "sigstore", "cannot make %s: %s", path, strerror(errno));
        return -1;
    }
    int fd = openat(parent_fd, name,
                    O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        pm_why(why, "sigstore", "%s: %s", path,
               errno == ENOTDIR || errno == ELOOP ? "not a directory"
                                                  : strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    /* by descriptor: a chown by descriptor cannot be redirected */
    bool ours = geteuid() != 0 || (st.st_uid == uid && st.st_gid == gid);
    if ((!ours && fchown(fd, uid, gid) != 0) ||
        ((st.st_mode & 07777) != mode && fchmod(fd, mode) != 0)) {
        pm_why(why, "sigstore", "cannot give %s to uid %u: %s", path,
               (unsigned)uid, strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

static bool
s_db_file(const char *name)
{
    size_t n = strlen(name);
    return n > 4 && (strcmp(name + n - 4, ".cvd") == 0 ||
                     strcmp(name + n - 4, ".cld") == 0 ||
                     strcmp(name + n - 4, ".cud") == 0);
}

int
pm_sigstore_clear(int fd, const char *path, bool (*which)(const char *name),
                  char **why)
{
    int dup_fd = dup(fd);
    DIR *d = dup_fd >= 0 ? fdopendir(dup_fd) : NULL;
    if (!d) {
        if (dup_fd >= 0)
            close(dup_fd);
        pm_why(why, "sigstore", "cannot list %s: %s", path, strerror(errno));
        return PM_EIO;
    }
    int rc = PM_OK;
    for (struct dirent *e; (e = readdir(d));) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..") ||
            (which && !which(e->d_name)))
            continue;
        if (unlinkat(fd, e->d_name, 0) != 0 && errno != ENOENT &&
            unlinkat(fd, e->d_name, AT_REMOVEDIR) != 0) {
            pm_why(why, "sigstore", "cannot remove %s/%s: %s", path, e->d_name,
                   strerror(errno));
            rc = PM_EIO;
        }
    }
    closedir(d);
    return rc;
}

int
pm_sigstore_stage(const char *dbdir, uid_t uid, gid_t gid,
                  const char *const *dbs, size_t n, char **why)
{
    int dbfd = open(dbdir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (dbfd < 0) {
        pm_why(why, "sigstore", "%s: %s", dbdir, strerror(errno));
        return PM_EIO;
    }
    char *path = pm_asprintf("%s/%s", dbdir, PM_SIGSTORE_FETCH);
    int rc = PM_EIO, fd = pm_sigstore_subdir(dbfd, PM_SIGSTORE_FETCH, path, uid,
                                             gid, 0700, why);
    if (fd >= 0)
        rc = pm_sigstore_clear(fd, path, s_db_file, why);
    free(path);
    static const char *const exts[] = {"cld", "cvd"};
    for (size_t i = 0; rc == PM_OK && i < n; i++)
        for (size_t j = 0; j < 2 && rc == PM_OK; j++) {
            char *file = pm_asprintf("%s.%s", dbs[i], exts[j]);
            if (linkat(dbfd, file, fd, file, 0) != 0 && errno != ENOENT) {
                pm_why(why, "sigstore", "cannot link %s/%s into %s: %s", dbdir,
                       file, PM_SIGSTORE_FETCH, strerror(errno));
                rc = PM_EIO;
            }
            free(file);
        }
    if (fd >= 0)
        close(fd);
    close(dbfd);
    return rc;
}

/* Copies FROM (open) into TO, at most PM_WIRE_DATABASE_MAX bytes, counted
 * as they come (the file may grow while we read). */
static int
s_copy(int from, int to, const char *what, char **why)
{
    enum { S_BUF = 1 << 16 };
    char *buf = pm_malloc(S_BUF);
    uint64_t total = 0;
    int rc = PM_OK;
    while (rc == PM_OK) {
        ssize_t r = read(from, buf, S_BUF);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            if (r < 0)
                pm_why(why, "sigstore", "cannot read %s: %s", what,
                       strerror(errno));
            rc = r < 0 ? PM_EIO : PM_OK;
            break;
        }
        if ((total += (uint64_t)r) > PM_WIRE_DATABASE_MAX) {
            pm_why(why, "sigstore", "%s is larger than %llu bytes", what,
                   (unsigned long long)PM_WIRE_DATABASE_MAX);
            rc = PM_EPROTO;
        }
        for (ssize_t off = 0; rc == PM_OK && off < r;) {
            ssize_t w = write(to, buf + off, (size_t)(r - off));
            if (w < 0 && errno == EINTR)
                continue;
            if (w <= 0) {
                pm_why(why, "sigstore", "cannot copy %s: %s", what,
                       strerror(errno));
                rc = PM_EIO;
            }
            off += w;
        }
    }
    free(buf);
    return rc;
}

/* The fetch directory's (FD) FILE, open: not the very file DBDIR (DBFD)
 * holds, which the agent linked there for the fetcher to start from
 * (told by the open file, so nothing can be swapped in between), and
 * otherwise a regular file of one link and no holes, never a link
 * followed (pm_file). -1 and *RC (PM_ENOTFOUND: none, or nothing new)
 * otherwise. One link: the fetch user may hard-link a file it cannot read
 * (where the kernel lets it), which the agent would copy, make 0644 and
 * hand to the verifier. */
static int
s_open_new(int dbfd, int fd, const char *dbdir, const char *file, int *rc,
           char **why)
{
    char *what = pm_asprintf("%s/%s/%s", dbdir, PM_SIGSTORE_FETCH, file),
         *no = NULL;
    int in = pm_file_open_at(fd, file, what, PM_FILE_STRICT, rc, &no);
    struct stat st, cur;
    if (in >= 0 && fstat(in, &st) == 0 &&
        fstatat(dbfd, file, &cur, AT_SYMLINK_NOFOLLOW) == 0 &&
        cur.st_dev == st.st_dev && cur.st_ino == st.st_ino)
        *rc = PM_ENOTFOUND; /* our own link: unchanged */
    else if (in >= 0)
        *rc = pm_file_check(in, what, PM_WIRE_DATABASE_MAX,
                            PM_FILE_STRICT | PM_FILE_NO_HOLES, &no);
    if (*rc == PM_EINVAL) /* a link, two links, not a regular file */
        *rc = PM_EPROTO;
    if (*rc != PM_OK && *rc != PM_ENOTFOUND) /* none: the caller says */
        pm_why(why, "sigstore", "%s", no);
    if (*rc != PM_OK && in >= 0) {
        close(in);
        in = -1;
    }
    free(no);
    free(what);
    return in;
}

/* Copies IN (the fetch directory's FILE of database NAME) into a scratch
 * file, checks it and installs it when newer than ABOVE. */
static int
s_take_one(const char *dbdir, const char *file, const char *name, int in,
           unsigned above, pm_sigverify_t *verifier, int timeout_ms,
           pm_sigfile_t *info, char **why)
{
    char *tmp = NULL,
         *what = pm_asprintf("%s/%s/%s", dbdir, PM_SIGSTORE_FETCH, file);
    int out = -1, rc = pm_sigstore_scratch(dbdir, file, &tmp, &out, why);
    pm_sigfile_t got = {0};
    if (rc == PM_OK)
        rc = s_copy(in, out, what, why);
    if (rc == PM_OK)
        rc = pm_sigstore_check(verifier, out, tmp, name, timeout_ms, &got, why);
    if (rc == PM_OK && got.version <= above) {
        pm_why(why, "sigstore", "%s holds version %u, not newer than %u", what,
               got.version, above);
        rc = PM_EPROTO;
    }
    if (rc == PM_OK)
        rc = pm_sigstore_install(tmp, dbdir, file, why);
    if (out >= 0)
        close(out);
    pm_sigstore_scratch_end(dbdir, rc == PM_OK ? NULL : tmp);
    if (rc == PM_OK)
        *info = got;
    free(tmp);
    free(what);
    return rc;
}

int
pm_sigstore_take(const char *dbdir, const char *name, unsigned above,
                 pm_sigverify_t *verifier, int timeout_ms, pm_sigfile_t *info,
                 char **why)
{
    int dbfd = open(dbdir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    int fd = dbfd < 0 ? -1
                      : openat(dbfd, PM_SIGSTORE_FETCH,
                               O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    int rc = PM_ENOTFOUND;
    if (fd < 0) {
        pm_why(why, "sigstore", "%s/%s: %s", dbdir, PM_SIGSTORE_FETCH,
               strerror(errno));
        rc = PM_EIO;
    }
    static const char *const exts[] = {"cld", "cvd"};
    for (size_t i = 0; fd >= 0 && i < 2 && rc == PM_ENOTFOUND; i++) {
        char *file = pm_asprintf("%s.%s", name, exts[i]);
        int in = s_open_new(dbfd, fd, dbdir, file, &rc, why);
        if (in >= 0) {
            rc = s_take_one(dbdir, file, name, in, above, verifier, timeout_ms,
                            info, why);
            close(in);
        }
        if (rc == PM_OK) /* no second copy of a large database on disk */
            unlinkat(fd, file, 0);
        free(file);
    }
    if (rc == PM_ENOTFOUND)
        pm_why(why, "sigstore", "nothing new for %s in %s/%s", name, dbdir,
               PM_SIGSTORE_FETCH);
    if (fd >= 0)
        close(fd);
    if (dbfd >= 0)
        close(dbfd);
    return rc;
}
