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
 * parameters are only set on success. PM_EINVAL also covers NULL arguments.
 * PM_EIO means storage trouble, including a stored record that no longer
 * passes pm_wire (damage); details go to pm_debug.
 *
 * A pm_store_t is not thread-safe: use one per thread or lock around it.
 * Do not carry one across fork(); open the store in the process that uses
 * it (LMDB's rule). Never open the same directory twice in one process.
 */
#ifndef PM_STORE_H
#define PM_STORE_H

#include "pm_error.h"
#include "privmta.pb-c.h"

#include <stddef.h>
#include <stdint.h>

typedef struct pm_store_t pm_store_t;

#define PM_STORE_RDONLY 0x1u /* open for reading only */
#define PM_REV_ANY (-1)      /* commit: no compare-and-swap */

typedef struct {
    const char *author;   /* required */
    const char *message;  /* may be NULL */
    int64_t expect_rev;   /* PM_REV_ANY, or the head the caller saw */
    uint64_t rollback_of; /* 0, or the revision this one restores */
    const char *digest;   /* sha256 hex of the canonical policy (required) */
    int64_t time;         /* unix seconds; 0 means now */
} pm_commit_t;

/* Opens (creating if needed, mode 0700 dir / 0600 files) the store in DIR.
 * map_size 0 means the default (1 GiB, sparse); it is the most the store
 * can hold (commits beyond it fail with PM_ENOMEM). Returns PM_EIO when the
 * directory cannot be used, PM_EINVAL on unknown flags.
 * With PM_STORE_RDONLY nothing is created: PM_ENOTFOUND when DIR or its
 * data file does not exist yet; when a writer has created the environment
 * but not yet its databases, the open succeeds and the store reads as
 * empty (head 0) until the writer's first transaction is visible.
 * Caller destroys *out with pm_store_close. */
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
 * when the head is not expect_rev. Sets *new_rev. Returns PM_EINVAL (and
 * writes nothing) when info lacks author or digest, expect_rev < -1, the
 * store is read-only, rollback_of names no existing revision, or the
 * revision would not pass pm_wire_unpack_revision when read back (digest
 * not 64 lowercase hex, an over-long or non-UTF-8 string, a structurally
 * bad policy): what is acknowledged is always readable. PM_ENOMEM when the
 * map is full. POLICY is only read; the caller keeps it. */
int pm_store_commit(pm_store_t *self, const Pm__Policy *policy,
                    const pm_commit_t *info, uint64_t *new_rev);

/* Lists up to LIMIT revisions, newest first, starting below BEFORE (0 means
 * from the head; BEFORE itself is excluded). LIMIT is capped at
 * PM_WIRE_LIST_MAX (what one Response may carry); 0 means that cap. Each
 * revision's metadata only: policy is NULL. Sets *revs to a new array of *n
 * revisions (an allocated, empty array when *n is 0); free it with
 * pm_store_history_free, which accepts NULL, is safe twice and nulls
 * *revs_p. */
int pm_store_history(pm_store_t *self, uint64_t before, unsigned limit,
                     Pm__Revision ***revs, size_t *n);
void pm_store_history_free(Pm__Revision ***revs_p, size_t n);

/* Stores STATUS as the latest status of node status->name (replacing it),
 * durably. PM_EINVAL when the name is empty or longer than LMDB's key limit
 * (511 bytes), the store is read-only, or STATUS would not pass pm_wire. */
int pm_store_node_put(pm_store_t *self, const Pm__NodeStatus *status);

/* Stores N statuses in one transaction (one sync for a whole heartbeat
 * round of many nodes). All or none are written. */
int pm_store_node_put_many(pm_store_t *self, Pm__NodeStatus *const *statuses,
                           size_t n);

/* Agents keep a mirror of what they applied: REV is stored under its own
 * number (the controller's, not head+1), becomes the head, and revisions
 * older than the newest 16 are dropped, in one durable transaction. A
 * reader (privmta-milter) then reads the applied policy with
 * pm_store_get(store, 0). Returns PM_EINVAL without a policy. */
int pm_store_mirror(pm_store_t *self, const Pm__Revision *rev);

/* Reads every stored node status, sorted by name (bytewise). Sets *nodes
 * to a new array of *n statuses (allocated even when empty). Free with
 * pm_store_nodes_free (accepts NULL, safe twice, nulls *nodes_p). */
int pm_store_node_list(pm_store_t *self, Pm__NodeStatus ***nodes, size_t *n);
void pm_store_nodes_free(Pm__NodeStatus ***nodes_p, size_t n);

/* Secrets the policy refers to by id (DKIM private keys): stored apart
 * from revisions so that history, show and diff never contain them.
 * put replaces; get returns a copy the caller frees (PM_ENOTFOUND when
 * absent); del returns PM_ENOTFOUND when absent. Durable like commits. */
int pm_store_secret_put(pm_store_t *self, const char *id, const void *data,
                        size_t len);
int pm_store_secret_get(pm_store_t *self, const char *id, uint8_t **data,
                        size_t *len);
int pm_store_secret_del(pm_store_t *self, const char *id);

#endif
