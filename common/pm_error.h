/* pm_error.h - the one error enum every privmta module returns.
 *
 * Library code returns these; daemons and the CLI turn them into log lines
 * and exit codes. Foreign codes (MDB_*, CL_*, errno) are converted at the
 * module edge so callers only ever compare against PM_*.
 */
#ifndef PM_ERROR_H
#define PM_ERROR_H

typedef enum {
    PM_OK = 0,
    PM_EINVAL,    /* input rejected: bad policy, bad argument */
    PM_ENOTFOUND, /* no such revision, node or key */
    PM_ECONFLICT, /* compare-and-swap failed: the head moved */
    PM_EEXIST,    /* already exists (immutable revision, enrolled node) */
    PM_ENOMEM,    /* out of memory */
    PM_EIO,       /* storage or file system error */
    PM_EPROTO,    /* malformed message from the network */
    PM_ETIMEDOUT, /* the peer did not answer in time */
    PM_EDENIED,   /* authentication or authorisation refused */
    PM_EINTERNAL, /* a bug or an unexpected library failure */
    PM_EFULL,     /* store full: no room in the LMDB map or on its disk */
} pm_err_t;

/* Returns a static, human-readable description of err. Never NULL. */
const char *pm_strerror(int err);

/* Sets *WHY (when WHY is not NULL) to a new message, freeing the one it
 * held, and logs it at debug level with PREFIX: the one way library code
 * tells its caller why a call failed. */
void pm_why(char **why, const char *prefix, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
