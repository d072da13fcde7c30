/* pm_web_users.h - the web console's users: names and argon2id hashes.
 *
 * One file, one user per line, "NAME:HASH", HASH as libsodium's
 * crypto_pwhash_str writes it ("$argon2id$v=19$m=...,t=...,p=1$..."); no
 * password is ever stored or logged. privmta-ctl manages it (web user
 * add|remove|passwd|list), privmta-web reads it at every login, and again
 * when it changed, so a user removed or given a new password is refused
 * at once, sessions already open included. The file is written whole and
 * atomically (pm_file), mode 0640, keeping the group it had (the package makes
 * it root:privmta-web), so that privmta-web reads it through its group.
 *
 * Names are 1..PM_WEB_USER_MAX of [A-Za-z0-9._@-]: they end up in the
 * revision's author ("web (alice)") and in logs.
 */
#ifndef PM_WEB_USERS_H
#define PM_WEB_USERS_H

#include <stdbool.h>
#include <stddef.h>

#define PM_WEB_USER_MAX 64
#define PM_WEB_USERS_FILE_MAX (1u << 20) /* ~5000 users */
#define PM_WEB_PASSWORD_MIN 10
#define PM_WEB_PASSWORD_MAX 1024

/* NULL when NAME may be a user name, else why not (static text). */
const char *pm_web_user_name_problem(const char *name);

/* Adds NAME with PASSWORD to the file at PATH (created when missing), or
 * with REPLACE sets the password of an existing NAME. PM_OK; PM_EINVAL
 * (bad name, password too short or long), PM_EEXIST (NAME is there and not
 * REPLACE), PM_ENOTFOUND (REPLACE and no such user), PM_EIO; *why says. */
int pm_web_users_set(const char *path, const char *name, const char *password,
                     bool replace, char **why);

/* Removes NAME. PM_OK, PM_ENOTFOUND, PM_EIO. */
int pm_web_users_remove(const char *path, const char *name, char **why);

/* Calls FN for each user in the file, in file order, with its name and
 * its entry's stamp (PM_WEB_STAMP_LEN bytes, below). PM_OK, PM_ENOTFOUND
 * (no file), PM_EINVAL (a malformed line: which), PM_EIO. */
typedef void(pm_web_users_fn)(const char *name, const unsigned char *stamp,
                              void *arg);
int pm_web_users_each(const char *path, pm_web_users_fn *fn, void *arg,
                      char **why);

/* A digest of a user's entry (of its hash, so it changes with the
 * password): a session keeps the one it logged in with, and ends when the
 * user's entry is gone or no longer has it. */
#define PM_WEB_STAMP_LEN 32

/* Whether PASSWORD is NAME's. Reads the file each time. An unknown user
 * costs as much as a wrong password (a hash is checked either way), so
 * the answer time does not tell which names exist. PM_OK (it is; STAMP,
 * when not NULL, gets the entry's stamp), PM_EDENIED (unknown user or
 * wrong password), PM_EIO / PM_EINVAL (the file cannot be read: *why). */
int pm_web_users_check(const char *path, const char *name, const char *password,
                       unsigned char *stamp, char **why);

#endif
