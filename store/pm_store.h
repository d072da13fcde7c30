/* pm_store.h - the revisioned policy store (LMDB).
 *
 * One environment in a directory holds:
 *   - the policy revisions, immutable, numbered 1, 2, 3... with no gaps
 *     except where history retention pruned old ones
 *     (pm_store_set_retention);
 *   - the head (the newest revision number);
 *   - the latest status reported by each node (by node name);
 *   - the current rolling restart (the last one started), whole;
 *   - the secrets policies refer to (pm_store_secret_put);
 *   - the controller's role (primary or standby, and its epoch).
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
 * Size: the store lives in one memory map. Writes that do not fit grow it
 * (by at least doubling) up to a ceiling, PM_STORE_MAP_MAX unless changed
 * with pm_store_set_map_max, and run again. A write that does not fit even
 * then fails with PM_EFULL and adds nothing (commit and mirror may first
 * have pruned what their rules allowed anyway): the store stays usable,
 * and lowering the retention or raising the ceiling makes room. A full
 * file system under the map (ENOSPC, EDQUOT) is PM_EFULL too. The map is
 * sparse: the data file only grows with what is written. Readers in other
 * processes follow a grown map by themselves.
 *
 * A pm_store_t is not thread-safe: use one per thread or lock around it.
 * Do not carry one across fork(); open the store in the process that uses
 * it (LMDB's rule). Never open the same directory twice in one process.
 */
#ifndef PM_STORE_H
#define PM_STORE_H

#include "pm_error.h"
#include "privmta.pb-c.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct pm_store_t pm_store_t;

#define PM_STORE_RDONLY 0x1u /* open for reading only */
#define PM_REV_ANY (-1)      /* commit: no compare-and-swap */

/* Default ceiling for the map: 16 times PM_WIRE_MESSAGE_MAX, so that an
 * agent's mirror always fits the largest revision the wire accepts beside
 * the one it replaces, however fragmented the free space. */
#define PM_STORE_MAP_MAX ((size_t)1 << 30)

typedef struct {
    const char *author;   /* required */
    const char *message;  /* may be NULL */
    int64_t expect_rev;   /* PM_REV_ANY, or the head the caller saw */
    uint64_t rollback_of; /* 0, or the revision this one restores */
    const char *digest;   /* sha256 hex of the canonical policy (required) */
    int64_t time;         /* unix seconds; 0 means now */
    /* NULL, or a rollout put in the same transaction as the revision, as
     * pm_store_rollout_put would (a canary push: the revision must never
     * be stored without the rollout that holds it back from the nodes,
     * or a controller restarted in between would publish it to all). */
    const Pm__Rollout *rollout;
} pm_commit_t;

/* Opens (creating if needed, mode 0700 dir / 0600 files) the store in DIR.
 * map_size is the initial size of the map, 0 meaning 1 GiB; writes grow it
 * up to PM_STORE_MAP_MAX, or up to map_size when that is larger (see Size
 * above). Returns PM_EIO when the directory cannot be used, PM_EINVAL on
 * unknown flags.
 * With PM_STORE_RDONLY nothing is created: PM_ENOTFOUND when DIR or its
 * data file does not exist yet; when a writer has created the environment
 * but not yet its databases, the open succeeds and the store reads as
 * empty (head 0) until the writer's first transaction is visible.
 * Caller destroys *out with pm_store_close. */
int pm_store_open(const char *dir, unsigned flags, size_t map_size,
                  pm_store_t **out);

/* Closes the store; accepts NULL, safe twice, nulls *self_p. */
void pm_store_close(pm_store_t **self_p);

/* History retention for pm_store_commit: each commit keeps the newest KEEP
 * revisions (the head and the KEEP-1 below it) and every revision a stored
 * node status names as applied_rev (what a node still runs), and deletes
 * the others, in the commit's own transaction, so that the history never
 * holds more than KEEP plus those pinned. Such a commit reads every node
 * status; when one is unreadable it prunes nothing (never what a node may
 * run). KEEP 0 (the default) keeps every revision. A new setting takes
 * effect at the next commit; it is not stored. Mirrors (pm_store_mirror)
 * keep their own count. PM_EINVAL on a read-only store. */
int pm_store_set_retention(pm_store_t *self, uint64_t keep);

/* Sets the most the map may grow to (see Size above). A MAX not above the
 * current map size (e.g. 0) turns growth off; the map never shrinks while
 * the store is open. PM_EINVAL on a read-only store. */
int pm_store_set_map_max(pm_store_t *self, size_t max);

/* Sets *rev to the head revision number, 0 when nothing was committed. */
int pm_store_head(pm_store_t *self, uint64_t *rev);

/* Reads revision REV (0 means the head) with its policy. Returns
 * PM_ENOTFOUND when there is no such revision: REV is above the head, or
 * it was pruned. Commits number revisions without gaps, so there a
 * missing REV at or below the head is one the retention pruned (callers
 * can say so; pm_debug does). Caller owns *out and frees it with
 * pm__revision__free_unpacked(*out, NULL). */
int pm_store_get(pm_store_t *self, uint64_t rev, Pm__Revision **out);

/* Reads the first revision stored numbered REV or above into *OUT (as
 * pm_store_get): one look-up however many before it were pruned.
 * PM_ENOTFOUND when there is none. */
int pm_store_next(pm_store_t *self, uint64_t rev, Pm__Revision **out);

/* Commits POLICY as revision head+1 in one durable transaction, which
 * also applies the retention (pm_store_set_retention). With
 * info->expect_rev != PM_REV_ANY, returns PM_ECONFLICT (and writes nothing)
 * when the head is not expect_rev. Sets *new_rev. Returns PM_EINVAL (and
 * writes nothing) when info lacks author or digest, expect_rev < -1, the
 * store is read-only, rollback_of names no existing revision, or the
 * revision would not pass pm_wire_unpack_revision when read back (digest
 * not 64 lowercase hex, an over-long or non-UTF-8 string, a structurally
 * bad policy): what is acknowledged is always readable. PM_EFULL (and
 * no new revision) when it does not fit in the map at its ceiling, even
 * after pruning what the retention allows in a transaction of its own
 * first (so that a lowered retention frees room). With info->rollout, a
 * rollout pm_store_rollout_put would refuse makes it PM_EINVAL, and the
 * rollout is stored if and only if the revision is. POLICY and the rollout
 * are only read; the caller keeps them. */
int pm_store_commit(pm_store_t *self, const Pm__Policy *policy,
                    const pm_commit_t *info, uint64_t *new_rev);

/* A standby controller copies the primary's revisions: REV, as the
 * primary sent it, is stored verbatim under its own number (number,
 * parent, author, time, message, digest, policy and rollback_of all kept)
 * and becomes the head, in one durable transaction which also applies the
 * retention (pm_store_set_retention) as a commit of that number would.
 * REV->number must be above the head: PM_ECONFLICT (and nothing written)
 * otherwise. Gaps are allowed (the primary may have pruned), so neither
 * the parent nor rollback_of need be stored here. Returns PM_EINVAL (and
 * writes nothing) on a read-only store, without a policy, or when REV
 * would not pass pm_wire_unpack_revision when read back (number 0, a
 * digest not 64 lowercase hex, parent or rollback_of not below number, an
 * over-long or non-UTF-8 string, a structurally bad policy), as
 * pm_store_commit checks. PM_EFULL as pm_store_commit (the retention may
 * first have pruned in a transaction of its own). REV is only read. */
int pm_store_follow(pm_store_t *self, const Pm__Revision *rev);

/* Lists up to LIMIT stored revisions, newest first, starting below BEFORE
 * (0 means from the head; BEFORE itself is excluded); revisions pruned by
 * retention are simply not listed. LIMIT is capped at
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

/* Removes the stored status of node NAME, durably: a node withdrawn for
 * good no longer pins the revision it ran (retention, above). PM_ENOTFOUND
 * when there is none; PM_EINVAL as pm_store_node_put. */
int pm_store_node_del(pm_store_t *self, const char *name);

/* Agents keep a mirror of what they applied: REV is stored under its own
 * number (the controller's, not head+1) and becomes the head; in the same
 * durable transaction, before the put, the store drops stored revisions
 * (lowest numbers first, never REV) so that at most 16 remain with REV.
 * When that does not fit even in the map at its ceiling, it keeps fewer
 * (8, 4, 2, then REV alone), dropping the others in transactions of their
 * own first (sparing the current head, which readers still use) so that
 * their pages can be reused: REV itself is always kept, and a revision up
 * to PM_WIRE_MESSAGE_MAX fits under the default ceiling. A reader
 * (privmta-milter) then reads the applied policy with pm_store_get(store,
 * 0). Returns PM_EINVAL without a policy, PM_EFULL when REV does not fit
 * even alone (the head is then unchanged). */
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

/* Reads every stored secret (id and data), sorted by id (bytewise), for a
 * standby to copy. Sets *out to a new array of *n secrets (allocated even
 * when empty); free it with pm_store_secrets_free (accepts NULL, safe
 * twice, nulls *out_p), not with pm__replica_secret__free_unpacked. */
int pm_store_secrets(pm_store_t *self, Pm__ReplicaSecret ***out, size_t *n);
void pm_store_secrets_free(Pm__ReplicaSecret ***out_p, size_t n);

/* Makes the stored secrets exactly the N SECRETS (a standby copying the
 * primary's): ids not among them are deleted, in one durable transaction,
 * all or none. PM_EINVAL (and nothing changed) on a read-only store, a
 * NULL secret, an empty id or one longer than LMDB's key limit (511
 * bytes), empty data (which pm_store_secret_put refuses too), or an id
 * given twice. N 0 deletes every secret. SECRETS are only read. */
int pm_store_secrets_replace(pm_store_t *self,
                             Pm__ReplicaSecret *const *secrets, size_t n);

/* The controller's role: PRIMARY (or a standby) and EPOCH, which counts
 * promotions. put replaces the record durably (synced before it returns;
 * PM_EINVAL on a read-only store), but never with an older one: it
 * returns PM_ECONFLICT (and writes nothing) when the stored epoch is
 * higher, or the same with the stored record primary and the new one
 * not, so that a standby storing its primary's epoch cannot undo a
 * promotion another process just wrote. get reads the record as last put, by
 * this or another process that has the store open (each get is a fresh
 * read), or returns PM_ENOTFOUND when none was ever put, PM_EIO when it is
 * damaged. */
int pm_store_role_get(pm_store_t *self, bool *primary, uint64_t *epoch);
int pm_store_role_put(pm_store_t *self, bool primary, uint64_t epoch);

/* The controller's current rolling restart (see controller/pm_rollout.h):
 * one record, replaced whole by each put, durably (synced before put
 * returns, like a commit), so that a controller killed at any point finds
 * on restart the rollout as last put, nodes' states and times included.
 * put returns PM_EINVAL (and writes nothing) on a read-only store, a NULL
 * rollout, id 0, or a rollout that would not pass pm_wire when read back
 * (an over-long or non-UTF-8 string, too many nodes); PM_EFULL as
 * commits. ROLLOUT is only read. get sets *out (caller frees it with
 * pm__rollout__free_unpacked) or returns PM_ENOTFOUND when none was ever
 * put, PM_EIO when the record is damaged. */
int pm_store_rollout_put(pm_store_t *self, const Pm__Rollout *rollout);
int pm_store_rollout_get(pm_store_t *self, Pm__Rollout **out);

#endif
