/* pm_store.h - the revisioned policy store (LMDB).
 *
 * One environment in a directory holds:
 *   - every policy revision, immutable, numbered 1, 2, 3... with no gaps;
 *   - the head (the newest revision number);
 *   - the latest status reported by each node (by node name).
 * A commit is one LMDB write transaction, synced before it returns: after a
 * crash at any point either the whole revision and the new head are on disk
 * or neither is. Other processes may open the same directory and read
 * concurrently (LMDB readers never block the writer).
 *
 * Revisions are stored as packed Pm__Revision messages (proto/privmta.proto);
 * what comes back from disk goes through pm_wire before it is returned.
 *
 * Every function returns PM_OK or a pm_err_t (common/pm_error.h); output
 * parameters are only set on success.
 */
#ifndef PM_STORE_H
#define PM_STORE_H

#include "pm_error.h"
#include "privmta.pb-c.h"

#include <stddef.h>
#include <stdint.h>

typedef struct pm_store_t pm_store_t;

#define PM_STORE_RDONLY 0x1u     /* open for reading only */
#define PM_REV_ANY (-1)          /* commit: no compare-and-swap */

typedef struct {
    const char *author;   /* required */
    const char *message;  /* may be NULL */
    int64_t expect_rev;   /* PM_REV_ANY, or the head the caller saw */
    uint64_t rollback_of; /* 0, or the revision this one restores */
    const char *digest;   /* sha256 hex of the canonical policy (required) */
    int64_t time;         /* unix seconds; 0 means now */
} pm_commit_t;

/* Opens (creating if needed, mode 0700 dir / 0600 files) the store in DIR.
 * map_size 0 means the default (1 GiB, sparse). Returns PM_EIO when the
 * directory cannot be used. Caller destroys *out with pm_store_close. */
int pm_store_open(const char *dir, unsigned flags, size_t map_size,
                  pm_store_t **out);

/* Closes the store; accepts NULL, safe twice, nulls *self_p. */
void pm_store_close(pm_store_t **self_p);

/* Sets *rev to the head revision number, 0 when nothing was committed. */
int pm_store_head(pm_store_t *self, uint64_t *rev);

/* Reads revision REV (0 means the head) with its policy. Returns
 * PM_ENOTFOUND when there is no such revision. Caller owns *out and frees it
 * with pm__revision__free_unpacked(*out, NULL). */
int pm_store_get(pm_store_t *self, uint64_t rev, Pm__Revision **out);

/* Commits POLICY as revision head+1 in one durable transaction. With
 * info->expect_rev != PM_REV_ANY, returns PM_ECONFLICT (and writes nothing)
 * when the head is not expect_rev. Sets *new_rev. Returns PM_EINVAL when
 * info lacks author or digest. */
int pm_store_commit(pm_store_t *self, const Pm__Policy *policy,
                    const pm_commit_t *info, uint64_t *new_rev);

/* Lists up to LIMIT revisions, newest first, starting below BEFORE (0 means
 * from the head). Each revision's metadata only: policy is NULL. Sets *revs
 * to a new array of *n revisions; free it with pm_store_history_free. */
int pm_store_history(pm_store_t *self, uint64_t before, unsigned limit,
                     Pm__Revision ***revs, size_t *n);
void pm_store_history_free(Pm__Revision ***revs_p, size_t n);

/* Stores STATUS as the latest status of node status->name (replacing it). */
int pm_store_node_put(pm_store_t *self, const Pm__NodeStatus *status);

/* Reads every stored node status, sorted by name. Free with
 * pm_store_nodes_free. */
int pm_store_node_list(pm_store_t *self, Pm__NodeStatus ***nodes, size_t *n);
void pm_store_nodes_free(Pm__NodeStatus ***nodes_p, size_t n);

#endif
