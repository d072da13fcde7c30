/* pm_sigstore.h - the node's ClamAV database directory: how a new file
 * gets into it, whoever brought it.
 *
 * DBDIR holds only files that passed ClamAV's own check (cl_cvdverify, run
 * by the unprivileged verifier: pm_sigverify.h). A new file - pulled from
 * a peer (pm_peer) or fetched from a mirror (privmta-sigfetch) - is first
 * a scratch copy in DBDIR/PM_SIGSTORE_SCRATCH, written by the agent
 * itself, checked there, and renamed into place.
 *
 * Fetches run as an unprivileged user (the agent's fetch_user), in a
 * directory of theirs, DBDIR/PM_SIGSTORE_FETCH (0700). DBDIR stays root's,
 * mode 0751 then: they may pass through it to their directory, list and
 * write nothing. Before a fetch the agent links the files DBDIR holds into
 * their directory (libfreshclam applies CDIFFs to them: a link is
 * read-only to them, the file stays root's, and libfreshclam renames its
 * result over the link); after it the agent takes back only what is new:
 * never following a link, regular files only, at most
 * PM_WIRE_DATABASE_MAX bytes (counted while copying), copied into a
 * scratch file (so they can no longer change it), checked, newer than
 * what DBDIR holds (no rollback to an older signed version), installed;
 * their copy is then removed (no second copy of a large database).
 *
 * Not thread-safe for one database: one owner (the pm_sigsync actor, and
 * the pulls it runs). Errors as pm_error.h, with *WHY when WHY is not NULL.
 */
#ifndef PM_SIGSTORE_H
#define PM_SIGSTORE_H

#include "pm_sigverify.h"

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include <time.h>

/* Scratch copies (0711: the verifier may read a file it is named, list
 * nothing), and the fetch user's directory. */
#define PM_SIGSTORE_SCRATCH ".pm-peer.tmp"
#define PM_SIGSTORE_FETCH ".pm-fetch"

/* One verification: a full daily.cld (~300 MiB) is hashed in seconds;
 * minutes mean something is wrong. */
#define PM_SIGSTORE_VERIFY_MS (5 * 60 * 1000)

/* What a verified file's header says. */
typedef struct {
    unsigned version, sigs;
    time_t built;
} pm_sigfile_t;

/* A new scratch file for FILE ("test.cvd") in DBDIR's scratch directory
 * (made when missing), named so that libclamav still sees the form
 * (.cvd/.cld) at the end. Sets *TMP (caller frees) and *FD (caller
 * closes). PM_EIO. */
int pm_sigstore_scratch(const char *dbdir, const char *file, char **tmp,
                        int *fd, char **why);

/* Removes TMP (NULL: none) and the scratch directory when no other
 * scratch file is in it. */
void pm_sigstore_scratch_end(const char *dbdir, const char *tmp);

/* Makes the scratch file TMP (open as FD, holding database NAME) readable
 * to the verifier and durable, and has VERIFIER check it within TIMEOUT_MS.
 * PM_OK with *INFO; PM_EPROTO when the file fails ClamAV's check (*WHY:
 * libclamav's reason, without the scratch file's name); PM_EIO when the
 * file cannot be kept or the verifier cannot run (not the file's fault). */
int pm_sigstore_check(pm_sigverify_t *verifier, int fd, const char *tmp,
                      const char *name, int timeout_ms, pm_sigfile_t *info,
                      char **why);

/* Renames the checked TMP into place as DBDIR/FILE (directory fsync'd) and
 * removes the other form of the database (NAME.cvd beside NAME.cld):
 * libclamav would load both. PM_EIO. */
int pm_sigstore_install(const char *tmp, const char *dbdir, const char *file,
                        char **why);

/* PARENT_FD's directory NAME (PATH in messages), made when missing with
 * MODE, opened without following a link, and, as root, given to UID:GID
 * by descriptor, with MODE. Returns the descriptor (caller closes), or -1
 * with *WHY. */
int pm_sigstore_subdir(int parent_fd, const char *name, const char *path,
                       uid_t uid, gid_t gid, mode_t mode, char **why);

/* Removes the entries of the open directory FD (PATH in messages) that
 * WHICH accepts (NULL: every one): unlinked, or removed when an empty
 * directory, never followed. PM_EIO with *WHY. */
int pm_sigstore_clear(int fd, const char *path, bool (*which)(const char *name),
                      char **why);

/* Prepares DBDIR/PM_SIGSTORE_FETCH for a fetch of the N databases DBS by
 * the user UID:GID (see above): the directory made or taken back as
 * theirs, 0700 (as root; otherwise it is simply ours); old database files
 * in it removed, whatever they are (an entry is removed, never followed);
 * the file DBDIR holds for each of DBS linked in. PM_EINVAL (the entry is
 * not a directory), PM_EIO. */
int pm_sigstore_stage(const char *dbdir, uid_t uid, gid_t gid,
                      const char *const *dbs, size_t n, char **why);

/* Takes database NAME back after a fetch (see above): NAME.cld, else
 * NAME.cvd, from the fetch directory, when it is not the very file DBDIR
 * holds. PM_OK with *INFO (installed); PM_ENOTFOUND (nothing new there);
 * PM_EPROTO (not a regular file, too large, fails ClamAV's check, or not
 * newer than ABOVE: *WHY says which); PM_EIO. */
int pm_sigstore_take(const char *dbdir, const char *name, unsigned above,
                     pm_sigverify_t *verifier, int timeout_ms,
                     pm_sigfile_t *info, char **why);

#endif
