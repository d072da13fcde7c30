/* pm_file.c - bounded reads and atomic, link-safe writes (see pm_file.h). */
#include "pm_file.h"
#include "pm_error.h"
#include "pm_mem.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <libgen.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

/* Checks what an open descriptor really is, as safe_open does after
 * opening: a FIFO or device could block or never end. */
static int
s_check_regular(int fd, const char *path, unsigned flags, size_t cap,
                char **why)
{
    struct stat st;
    if (fstat(fd, &st) != 0) {
        pm_why(why, "file", "cannot stat %s: %s", path, strerror(errno));
        return PM_EIO;
    }
    if (!S_ISREG(st.st_mode)) {
        pm_why(why, "file", "%s is not a regular file", path);
        return PM_EINVAL;
    }
    if ((flags & PM_FILE_STRICT) && st.st_nlink != 1) {
        pm_why(why, "file", "%s has %lu hard links (refused)", path,
               (unsigned long)st.st_nlink);
        return PM_EINVAL;
    }
    if ((flags & PM_FILE_NO_HOLES) && st.st_size > 0) {
        off_t hole = lseek(fd, 0, SEEK_HOLE); /* the size when none */
        if (hole >= 0 && hole < st.st_size) {
            pm_why(why, "file", "%s has holes (a sparse file: refused)", path);
            return PM_EINVAL;
        }
        if (lseek(fd, 0, SEEK_SET) != 0) {
            pm_why(why, "file", "cannot read %s: %s", path, strerror(errno));
            return PM_EIO;
        }
    }
    if ((uintmax_t)st.st_size > cap) {
        pm_why(why, "file", "%s is %jd bytes, more than the %zu allowed", path,
               (intmax_t)st.st_size, cap);
        return PM_EINVAL;
    }
    return PM_OK;
}

/* Reads at most CAP bytes; one more byte tells a file that grew. */
static int
s_read_capped(int fd, const char *path, size_t cap, char **data, size_t *len,
              char **why)
{
    size_t size = 0, room = cap < 65536 ? cap + 1 : 65536;
    char *buf = pm_malloc(room + 1);
    for (;;) {
        if (size == room) {
            if (room > cap)
                break;
            room = room * 2 > cap + 1 ? cap + 1 : room * 2;
            buf = pm_realloc(buf, room + 1);
        }
        ssize_t n = read(fd, buf + size, room - size);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            pm_why(why, "file", "cannot read %s: %s", path, strerror(errno));
            free(buf);
            return PM_EIO;
        }
        if (n == 0)
            break;
        size += (size_t)n;
    }
    if (size > cap) {
        pm_why(why, "file", "%s is more than the %zu bytes allowed", path, cap);
        free(buf);
        return PM_EINVAL;
    }
    buf[size] = '\0';
    *data = buf;
    if (len)
        *len = size;
    return PM_OK;
}

int
pm_file_open_at(int dirfd, const char *file, const char *path, unsigned flags,
                int *err, char **why)
{
    int oflags = O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC;
    if (flags & PM_FILE_STRICT)
        oflags |= O_NOFOLLOW;
    int fd = openat(dirfd, file, oflags);
    if (fd < 0) {
        int e = errno;
        pm_why(why, "file", "cannot open %s: %s", path,
               e == ELOOP ? "it is a symbolic link (refused)" : strerror(e));
        *err = e == ENOENT ? PM_ENOTFOUND : e == ELOOP ? PM_EINVAL : PM_EIO;
        return -1;
    }
    *err = PM_OK;
    return fd;
}

int
pm_file_check(int fd, const char *path, size_t cap, unsigned flags, char **why)
{
    return s_check_regular(fd, path, flags, cap, why);
}

int
pm_file_read_at(int dirfd, const char *file, const char *path, size_t cap,
                unsigned flags, char **data, size_t *len, char **why)
{
    int rc;
    int fd = pm_file_open_at(dirfd, file, path, flags, &rc, why);
    if (fd < 0)
        return rc;
    rc = s_check_regular(fd, path, flags, cap, why);
    if (rc == PM_OK)
        rc = s_read_capped(fd, path, cap, data, len, why);
    close(fd);
    return rc;
}

int
pm_file_read(const char *path, size_t cap, unsigned flags, char **data,
             size_t *len, char **why)
{
    return pm_file_read_at(AT_FDCWD, path, path, cap, flags, data, len, why);
}

/* A new file under a random name in DIRFD: O_EXCL|O_NOFOLLOW, so a name
 * planted in advance (a link, a FIFO, a file) is never opened. */
static int
s_create_temp(int dirfd, const char *base, char *tmp, size_t tmp_size)
{
    for (int tries = 0; tries < 16; tries++) {
        uint64_t r = 0;
        if (getrandom(&r, sizeof r, 0) != (ssize_t)sizeof r)
            r = (uint64_t)getpid() * 2654435761u + (uint64_t)tries;
        snprintf(tmp, tmp_size, ".%.64s.%016llx.tmp", base,
                 (unsigned long long)r);
        int fd =
            openat(dirfd, tmp,
                   O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd >= 0 || errno != EEXIST)
            return fd;
    }
    errno = EEXIST;
    return -1;
}

static int
s_open_dir(const char *path, char **base_out)
{
    char *a = pm_strdup(path), *b = pm_strdup(path);
    int dirfd = open(dirname(a), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    *base_out = pm_strdup(basename(b));
    free(a);
    free(b);
    return dirfd;
}

int
pm_file_write(const char *path, const void *data, size_t len, mode_t mode,
              gid_t gid, char **why)
{
    return pm_file_write_dated(path, data, len, mode, gid, NULL, why);
}

int
pm_file_write_dated(const char *path, const void *data, size_t len, mode_t mode,
                    gid_t gid, const struct timespec times[2], char **why)
{
    char *base = NULL, tmp[128];
    const char *step = "open the directory of";
    int dirfd = s_open_dir(path, &base), fd = -1;
    bool made = false, ok = false;
    if (dirfd < 0)
        goto out;
    step = "create a temporary file for";
    if ((fd = s_create_temp(dirfd, base, tmp, sizeof tmp)) < 0)
        goto out;
    made = true;
    step = "set the owner and mode of";
    if ((gid != (gid_t)-1 && fchown(fd, (uid_t)-1, gid) != 0) ||
        fchmod(fd, mode) != 0)
        goto out;
    step = "write";
    if (!pm_file_pwrite_all(fd, data, len, 0) ||
        (times && futimens(fd, times) != 0) || fsync(fd) != 0)
        goto out;
    int rc = close(fd);
    fd = -1;
    if (rc != 0)
        goto out;
    step = "replace";
    if (renameat(dirfd, tmp, dirfd, base) != 0)
        goto out;
    made = false;
    step = "sync the directory of";
    ok = fsync(dirfd) == 0;
out:;
    int e = errno;
    if (fd >= 0)
        close(fd);
    if (made)
        unlinkat(dirfd, tmp, 0);
    if (dirfd >= 0)
        close(dirfd);
    free(base);
    if (ok)
        return PM_OK;
    pm_why(why, "file", "cannot %s %s: %s", step, path, strerror(e));
    return PM_EIO;
}

int
pm_file_rename(const char *from, const char *to, char **why)
{
    char *base = NULL;
    int dirfd = s_open_dir(to, &base);
    bool ok = dirfd >= 0 && rename(from, to) == 0 && fsync(dirfd) == 0;
    int e = errno;
    if (dirfd >= 0)
        close(dirfd);
    free(base);
    if (ok)
        return PM_OK;
    pm_why(why, "file", "cannot move %s to %s: %s", from, to, strerror(e));
    return PM_EIO;
}

int
pm_file_mkdir(const char *path, mode_t mode, gid_t gid, char **why)
{
    if (mkdir(path, 0700) != 0 && errno != EEXIST) {
        pm_why(why, "file", "cannot create %s: %s", path, strerror(errno));
        return PM_EIO;
    }
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        pm_why(why, "file", "%s: %s", path,
               e == ELOOP || e == ENOTDIR
                   ? "not a directory, or a symbolic link (refused)"
                   : strerror(e));
        return e == ELOOP || e == ENOTDIR ? PM_EINVAL : PM_EIO;
    }
    struct stat st;
    int rc = PM_OK;
    if (fstat(fd, &st) != 0 ||
        ((st.st_uid != geteuid() || (gid != (gid_t)-1 && st.st_gid != gid)) &&
         fchown(fd, geteuid(), gid) != 0) ||
        ((st.st_mode & 07777) != mode && fchmod(fd, mode) != 0)) {
        pm_why(why, "file", "cannot take %s over (owner, group, mode): %s",
               path, strerror(errno));
        rc = PM_EIO;
    }
    close(fd);
    return rc;
}

/* nftw's callback has no argument of its own: what the current walk of
 * this thread keeps and the first failure it met. */
static __thread bool s_tree_keep_top;
static __thread char *s_tree_why;

static int
s_tree_remove_one(const char *path, const struct stat *st, int flag,
                  struct FTW *ftw)
{
    (void)st;
    (void)flag;
    if (ftw->level == 0 && s_tree_keep_top)
        return 0;
    if (remove(path) != 0 && errno != ENOENT && !s_tree_why)
        s_tree_why = pm_asprintf("cannot remove %s: %s", path, strerror(errno));
    return 0;
}

int
pm_file_remove_tree(const char *path, bool keep_top, char **why)
{
    s_tree_keep_top = keep_top;
    s_tree_why = NULL;
    if (nftw(path, s_tree_remove_one, 16, FTW_DEPTH | FTW_PHYS | FTW_MOUNT) !=
            0 &&
        errno != ENOENT && !s_tree_why)
        s_tree_why = pm_asprintf("cannot walk %s: %s", path, strerror(errno));
    if (!s_tree_why)
        return PM_OK;
    pm_why(why, "file", "%s", s_tree_why);
    PM_FREE(&s_tree_why);
    return PM_EIO;
}

bool
pm_file_pread_all(int fd, void *buf, size_t len, uint64_t offset)
{
    uint8_t *p = buf;
    while (len > 0) {
        ssize_t n = pread(fd, p, len, (off_t)offset);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return false;
        p += n, len -= (size_t)n, offset += (uint64_t)n;
    }
    return true;
}

bool
pm_file_pwrite_all(int fd, const void *buf, size_t len, uint64_t offset)
{
    const uint8_t *p = buf;
    while (len > 0) {
        ssize_t n = pwrite(fd, p, len, (off_t)offset);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return false;
        p += n, len -= (size_t)n, offset += (uint64_t)n;
    }
    return true;
}

bool
pm_file_ident(const char *path, pm_file_ident_t *id)
{
    struct stat st;
    memset(id, 0, sizeof *id);
    if (stat(path, &st) != 0)
        return false;
    id->dev = st.st_dev;
    id->ino = st.st_ino;
    id->size = st.st_size;
    id->mtime = st.st_mtim;
    id->ctime = st.st_ctim;
    return true;
}

bool
pm_file_ident_same(const pm_file_ident_t *a, const pm_file_ident_t *b)
{
    return a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
           a->mtime.tv_sec == b->mtime.tv_sec &&
           a->mtime.tv_nsec == b->mtime.tv_nsec &&
           a->ctime.tv_sec == b->ctime.tv_sec &&
           a->ctime.tv_nsec == b->ctime.tv_nsec;
}
