/* pm_file.h - the one way privmta reads and writes whole files.
 *
 * Base layer (no policy, no protocol). Every whole-file read and every
 * replace-a-file write in privmta goes through here, so the rules for
 * crossing a privilege boundary live in one place (as Postfix's safe_open):
 *
 *   - a read never blocks on a FIFO or device, never reads more than the
 *     caller's cap (the cap is checked while reading, nothing bigger is
 *     allocated), and, with PM_FILE_STRICT, refuses symbolic links and
 *     files with more than one hard link (a less privileged user could
 *     otherwise point the path at /etc/shadow);
 *   - a write never follows a link and never truncates an existing file:
 *     the data goes to a new file made with O_CREAT|O_EXCL|O_NOFOLLOW under
 *     a random name in the target's directory, gets its mode and group,
 *     is fsync'd, renamed over the target (rename replaces a link, never
 *     its target), and the directory is fsync'd. A reader sees the old file
 *     or the new one, whole, even across a crash. Ownership of a file is
 *     never given to another user: the other side gets read access through
 *     a group.
 *
 * Functions return PM_OK or a pm_err_t and, when WHY is not NULL, set *WHY
 * (caller frees) to a sentence naming the path and the reason. Outputs are
 * set only on success.
 */
#ifndef PM_FILE_H
#define PM_FILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

/* Refuse symbolic links (the last component) and hard-linked files. */
#define PM_FILE_STRICT 0x1u
/* Refuse a file with holes: a sparse file costs its writer no disk, and
 * whoever copies it pays the whole size (the fetch user's databases,
 * copied by root). Where the file system cannot tell (no SEEK_HOLE), the
 * size cap alone bounds it. */
#define PM_FILE_NO_HOLES 0x2u

/* Reads PATH whole into *DATA (NUL-terminated, so text can be used as a
 * string; caller frees) and its size into *LEN (LEN may be NULL).
 * Errors: PM_ENOTFOUND (no such file), PM_EINVAL (not a regular file, a
 * link under PM_FILE_STRICT, or more than CAP bytes), PM_EIO. An empty
 * file is read as "" with *LEN 0. */
int pm_file_read(const char *path, size_t cap, unsigned flags, char **data,
                 size_t *len, char **why);

/* pm_file_read of FILE in the directory open as DIRFD (AT_FDCWD: the
 * current one); PATH names it in *WHY. For a directory another user
 * writes: opened once, no path to it is walked again. */
int pm_file_read_at(int dirfd, const char *file, const char *path, size_t cap,
                    unsigned flags, char **data, size_t *len, char **why);

/* The two halves of pm_file_read_at, for a caller that looks at the
 * open file before it is checked (is it one it made itself?) or reads it
 * its own way. pm_file_open_at opens FILE in DIRFD (with PM_FILE_STRICT:
 * no symbolic link followed; O_NONBLOCK, O_CLOEXEC) and returns the
 * descriptor, or -1 with pm_file_read's error in *ERR and *WHY.
 * pm_file_check says whether FD is a regular file of at most CAP bytes
 * as FLAGS want it (PM_OK, or pm_file_read's error with *WHY); a caller
 * that reads on counts what it reads: a writer holding the file can still
 * make it grow, or punch holes in it. */
int pm_file_open_at(int dirfd, const char *file, const char *path,
                    unsigned flags, int *err, char **why);
int pm_file_check(int fd, const char *path, size_t cap, unsigned flags,
                  char **why);

/* Replaces PATH with LEN bytes of DATA, atomically and durably (see above).
 * The new file has permission bits MODE and group GID (-1: the process's
 * group; setting another group needs root or membership). The directory
 * must exist. Errors: PM_EIO, with errno's words in *why ("No space left
 * on device", ...). On error PATH is unchanged and no temporary file is
 * left behind. */
int pm_file_write(const char *path, const void *data, size_t len, mode_t mode,
                  gid_t gid, char **why);

/* pm_file_write, and the new file gets access and modification times
 * TIMES (as futimens; NULL: now) before it replaces PATH. */
int pm_file_write_dated(const char *path, const void *data, size_t len,
                        mode_t mode, gid_t gid, const struct timespec times[2],
                        char **why);

/* Reads exactly LEN bytes at OFFSET of the open FD into BUF, through short
 * reads and EINTR. False on an error or when the file ends first. */
bool pm_file_pread_all(int fd, void *buf, size_t len, uint64_t offset);

/* Writes exactly LEN bytes of BUF at OFFSET of the open FD, through short
 * writes and EINTR. False on an error (errno says which). */
bool pm_file_pwrite_all(int fd, const void *buf, size_t len, uint64_t offset);

/* Moves FROM over TO (same file system) and fsyncs TO's directory, so the
 * move survives a crash: for a file prepared elsewhere (a scratch copy
 * checked before it goes live). PM_OK, or PM_EIO with *why. */
int pm_file_rename(const char *from, const char *to, char **why);

/* Makes sure PATH is a directory, not a link, owned by this process's
 * user, with permission bits MODE and group GID (-1: leave the group):
 * created when missing, its owner, group and mode set when it exists (a
 * directory left owned by someone else is taken back: only root can).
 * Errors: PM_EINVAL (PATH is a link or not a directory), PM_EIO. */
int pm_file_mkdir(const char *path, mode_t mode, gid_t gid, char **why);

/* Removes PATH and everything below it, or only what is below it when
 * KEEP_TOP. Links are removed, never followed; no other file system is
 * entered. For a directory this process owns (scratch space left by a
 * crash). PM_OK, or PM_EIO with *why naming the first entry that could
 * not be removed (the others are still tried). */
int pm_file_remove_tree(const char *path, bool keep_top, char **why);

/* What tells one version of a file from another without reading it:
 * device, inode, size, modification and change times. An editor writing
 * in place moves ctime even when it puts mtime back; a rename over the
 * file changes the inode. Times tick with the kernel's coarse clock (a
 * few ms): a same-size rewrite in place within one tick goes unseen. */
typedef struct {
    dev_t dev;
    ino_t ino;
    off_t size;
    struct timespec mtime, ctime;
} pm_file_ident_t;

/* PATH's identity into *ID; false (and *ID zeroed) when it cannot be
 * stat(2)ed. */
bool pm_file_ident(const char *path, pm_file_ident_t *id);

/* True when A and B are the same version of a file. */
bool pm_file_ident_same(const pm_file_ident_t *a, const pm_file_ident_t *b);

#endif
