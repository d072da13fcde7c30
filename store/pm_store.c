/* pm_store.c - the revisioned policy store on LMDB.
 *
 * Layout (four named databases in one environment):
 *   meta   "head"    -> 8-byte big-endian number of the newest revision
 *          "format"  -> 8-byte big-endian layout version (S_FORMAT)
 *          "role"    -> 9 bytes: 1 (primary) or 0 (standby), then the
 *                       epoch, 8-byte big-endian; a key, as "rollout"
 *          "rollout" -> the current rollout, as a packed Pm__Response
 *                       that carries only it: pm_wire reads a Rollout
 *                       only inside a Response, and what is read back
 *                       goes through pm_wire like everything else. A
 *                       key, not a database of its own, so that readers
 *                       of stores made before it (read-only, they cannot
 *                       create one) still open them.
 *   revs   8-byte big-endian revision number -> packed Pm__Revision
 *   nodes  node name -> packed Pm__NodeStatus
 *   secrets  secret id -> its bytes (never empty)
 * Big-endian keys sort numerically under LMDB's default memcmp order, so the
 * newest revision is the last key and MDB_APPEND is valid for commits.
 *
 * Every write goes through s_write, which grows the map when it is full
 * and runs the transaction again. Pruning (retention, mirrors) deletes
 * revisions with s_prune.
 */
#include "pm_store.h"

#include "pm_log.h"
#include "pm_mem.h"
#include "pm_wire.h"

#include <errno.h>
#include <sys/statvfs.h>
#include <inttypes.h>
#include <lmdb.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#define S_FORMAT 1
#define S_MAP_DEFAULT ((size_t)1 << 30)

struct pm_store_t {
    MDB_env *env;
    MDB_dbi meta, revs, nodes, secrets;
    bool rdonly;
    bool have_dbs;  /* false while a read-only open finds no databases yet */
    MDB_txn *rtxn;  /* reset read transaction, renewed for each read */
    size_t map_max; /* the map grows up to this */
    uint64_t keep;  /* history retention; 0 keeps every revision */
};

static int
s_err(int rc)
{
    switch (rc) {
    case MDB_SUCCESS:
        return PM_OK;
    case MDB_NOTFOUND:
        return PM_ENOTFOUND;
    case MDB_MAP_FULL:
    case MDB_TXN_FULL: /* too many pages for one transaction: no room */
    case ENOSPC:       /* the file system under the map is full */
    case EDQUOT:
        return PM_EFULL;
    case ENOMEM:
        return PM_ENOMEM;
    case MDB_KEYEXIST:
        return PM_EEXIST;
    default:
        return PM_EIO;
    }
}

static void
s_u64_put(uint64_t v, uint8_t out[8])
{
    for (int i = 7; i >= 0; i--, v >>= 8)
        out[i] = (uint8_t)v;
}

static uint64_t
s_u64_get(const uint8_t in[8])
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = (v << 8) | in[i];
    return v;
}

/* Begins a transaction; when another process grew the map, adopts the new
 * size and tries once more (LMDB asks the caller to do this). */
static int
s_txn_begin(pm_store_t *self, unsigned flags, MDB_txn **txn)
{
    int rc = mdb_txn_begin(self->env, NULL, flags, txn);
    if (rc == MDB_MAP_RESIZED) {
        rc = mdb_env_set_mapsize(self->env, 0);
        if (rc == MDB_SUCCESS)
            rc = mdb_txn_begin(self->env, NULL, flags, txn);
    }
    return rc;
}

/* Reads an 8-byte number from meta; *v = 0 when the key is absent. */
static int
s_meta_get(pm_store_t *self, MDB_txn *txn, const char *name, uint64_t *v)
{
    MDB_val key = {strlen(name), (void *)name}, val;
    int rc = mdb_get(txn, self->meta, &key, &val);
    if (rc == MDB_NOTFOUND) {
        *v = 0;
        return MDB_SUCCESS;
    }
    if (rc != MDB_SUCCESS)
        return rc;
    if (val.mv_size != 8)
        return MDB_CORRUPTED;
    *v = s_u64_get(val.mv_data);
    return MDB_SUCCESS;
}

static int
s_meta_put(pm_store_t *self, MDB_txn *txn, const char *name, uint64_t v)
{
    uint8_t buf[8];
    s_u64_put(v, buf);
    MDB_val key = {strlen(name), (void *)name}, val = {8, buf};
    return mdb_put(txn, self->meta, &key, &val, 0);
}

/* Opens the three databases. A writer creates them (and stamps the format);
 * a reader that finds none yet leaves have_dbs false and retries later. */
static int
s_open_dbis(pm_store_t *self)
{
    unsigned create = self->rdonly ? 0 : MDB_CREATE;
    MDB_txn *txn = NULL;
    uint64_t format = 0;
    int rc = s_txn_begin(self, self->rdonly ? MDB_RDONLY : 0, &txn);
    if (rc != MDB_SUCCESS)
        return s_err(rc);
    rc = mdb_dbi_open(txn, "meta", create, &self->meta);
    if (rc == MDB_SUCCESS)
        rc = mdb_dbi_open(txn, "revs", create, &self->revs);
    if (rc == MDB_SUCCESS)
        rc = mdb_dbi_open(txn, "nodes", create, &self->nodes);
    if (rc == MDB_SUCCESS)
        rc = mdb_dbi_open(txn, "secrets", create, &self->secrets);
    if (rc == MDB_SUCCESS)
        rc = s_meta_get(self, txn, "format", &format);
    if (rc == MDB_SUCCESS && format == 0 && !self->rdonly)
        rc = s_meta_put(self, txn, "format", format = S_FORMAT);
    if (rc == MDB_NOTFOUND && self->rdonly) {
        mdb_txn_abort(txn);
        return PM_OK;
    }
    if (rc == MDB_SUCCESS && format != S_FORMAT) {
        pm_debug("store: unknown layout format %" PRIu64, format);
        rc = MDB_INCOMPATIBLE;
    }
    if (rc != MDB_SUCCESS) {
        mdb_txn_abort(txn);
        return s_err(rc);
    }
    /* Committing (even a read transaction) keeps the handles for the env. */
    rc = mdb_txn_commit(txn);
    if (rc != MDB_SUCCESS)
        return s_err(rc);
    self->have_dbs = true;
    return PM_OK;
}

static int
s_prepare_dir(const char *dir, bool rdonly)
{
    struct stat st;
    if (!rdonly && mkdir(dir, 0700) != 0 && errno != EEXIST) {
        pm_debug("store: mkdir %s: %s", dir, strerror(errno));
        return PM_EIO;
    }
    if (stat(dir, &st) != 0) {
        pm_debug("store: %s: %s", dir, strerror(errno));
        return errno == ENOENT ? PM_ENOTFOUND : PM_EIO;
    }
    if (!S_ISDIR(st.st_mode)) {
        pm_debug("store: %s is not a directory", dir);
        return PM_EIO;
    }
    return PM_OK;
}

static int
s_env_open(pm_store_t *self, const char *dir, size_t map_size)
{
    unsigned flags = MDB_NOTLS | (self->rdonly ? MDB_RDONLY : 0);
    int dead = 0;
    int rc = mdb_env_create(&self->env);
    if (rc != MDB_SUCCESS)
        return s_err(rc);
    rc = mdb_env_set_maxdbs(self->env, 8);
    if (rc == MDB_SUCCESS)
        rc =
            mdb_env_set_mapsize(self->env, map_size ? map_size : S_MAP_DEFAULT);
    if (rc == MDB_SUCCESS)
        rc = mdb_env_open(self->env, dir, flags, 0600);
    if (rc != MDB_SUCCESS) {
        pm_debug("store: open %s: %s", dir, mdb_strerror(rc));
        /* A reader that comes before any writer finds no data file. */
        return rc == ENOENT && self->rdonly ? PM_ENOTFOUND : s_err(rc);
    }
    /* Free reader slots left by processes that died (SIGKILL, crash). */
    rc = mdb_reader_check(self->env, &dead);
    if (dead)
        pm_debug("store: cleared %d stale readers", dead);
    return s_err(rc);
}

int
pm_store_open(const char *dir, unsigned flags, size_t map_size,
              pm_store_t **out)
{
    if (!dir || !*dir || !out || (flags & ~PM_STORE_RDONLY))
        return PM_EINVAL;
    pm_store_t *self = pm_calloc(1, sizeof *self);
    self->rdonly = flags & PM_STORE_RDONLY;
    self->map_max = map_size > PM_STORE_MAP_MAX ? map_size : PM_STORE_MAP_MAX;
    int rc = s_prepare_dir(dir, self->rdonly);
    if (rc == PM_OK)
        rc = s_env_open(self, dir, map_size);
    if (rc == PM_OK)
        rc = s_open_dbis(self);
    if (rc != PM_OK) {
        pm_store_close(&self);
        return rc;
    }
    *out = self;
    return PM_OK;
}

void
pm_store_close(pm_store_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    pm_store_t *self = *self_p;
    if (self->rtxn)
        mdb_txn_abort(self->rtxn);
    /* Also closes the dbi handles; env may be NULL in a half-built store. */
    if (self->env)
        mdb_env_close(self->env);
    free(self);
    *self_p = NULL;
}

int
pm_store_set_retention(pm_store_t *self, uint64_t keep)
{
    if (!self || self->rdonly)
        return PM_EINVAL;
    self->keep = keep;
    return PM_OK;
}

int
pm_store_set_map_max(pm_store_t *self, size_t max)
{
    if (!self || self->rdonly)
        return PM_EINVAL;
    self->map_max = max;
    return PM_OK;
}

/* ---- Reading ---------------------------------------------------------- */

/* Starts a read snapshot, reusing the store's reset transaction: renewing
 * costs a reader-slot update, not an allocation and a slot search. Sets
 * *txn to NULL (and returns PM_OK) while a read-only store finds no
 * databases yet: callers read that as an empty store. */
static int
s_read_begin(pm_store_t *self, MDB_txn **txn)
{
    *txn = NULL;
    if (!self->have_dbs) {
        int rc = s_open_dbis(self);
        if (rc != PM_OK || !self->have_dbs)
            return rc;
    }
    if (self->rtxn) {
        if (mdb_txn_renew(self->rtxn) == MDB_SUCCESS) {
            *txn = self->rtxn;
            return PM_OK;
        }
        /* E.g. the map grew: start over with a fresh transaction. */
        mdb_txn_abort(self->rtxn);
        self->rtxn = NULL;
    }
    int rc = s_txn_begin(self, MDB_RDONLY, &self->rtxn);
    if (rc != MDB_SUCCESS) {
        self->rtxn = NULL;
        return s_err(rc);
    }
    *txn = self->rtxn;
    return PM_OK;
}

static void
s_read_end(pm_store_t *self)
{
    mdb_txn_reset(self->rtxn);
}

/* Decodes a stored revision through the wire checks; anything that does not
 * pass, or sits under the wrong key, is damage: PM_EIO. */
static int
s_decode_rev(const MDB_val *key, const MDB_val *val, Pm__Revision **out)
{
    Pm__Revision *rev = NULL;
    char *why = NULL;
    if (key->mv_size != 8)
        return PM_EIO;
    uint64_t number = s_u64_get(key->mv_data);
    if (pm_wire_unpack_revision(val->mv_data, val->mv_size, &rev, &why)) {
        pm_debug("store: revision %" PRIu64 " unreadable: %s", number, why);
        free(why);
        return PM_EIO;
    }
    if (rev->number != number) {
        pm_debug("store: revision %" PRIu64 " stored under key %" PRIu64,
                 rev->number, number);
        pm__revision__free_unpacked(rev, NULL);
        return PM_EIO;
    }
    *out = rev;
    return PM_OK;
}

static int
s_decode_node(const MDB_val *key, const MDB_val *val, Pm__NodeStatus **out)
{
    Pm__NodeStatus *st = NULL;
    char *why = NULL;
    if (pm_wire_unpack_node_status(val->mv_data, val->mv_size, &st, &why)) {
        pm_debug("store: node %.*s unreadable: %s", (int)key->mv_size,
                 (const char *)key->mv_data, why);
        free(why);
        return PM_EIO;
    }
    if (strlen(st->name) != key->mv_size ||
        memcmp(st->name, key->mv_data, key->mv_size) != 0) {
        pm__node_status__free_unpacked(st, NULL);
        return PM_EIO;
    }
    *out = st;
    return PM_OK;
}

static int
s_get_rev(pm_store_t *self, MDB_txn *txn, uint64_t number, Pm__Revision **out)
{
    uint8_t buf[8];
    s_u64_put(number, buf);
    MDB_val key = {8, buf}, val;
    int rc = mdb_get(txn, self->revs, &key, &val);
    if (rc != MDB_SUCCESS)
        return s_err(rc);
    return s_decode_rev(&key, &val, out);
}

int
pm_store_head(pm_store_t *self, uint64_t *rev)
{
    MDB_txn *txn = NULL;
    uint64_t head = 0;
    if (!self || !rev)
        return PM_EINVAL;
    int rc = s_read_begin(self, &txn);
    if (rc != PM_OK || !txn) {
        if (rc == PM_OK)
            *rev = 0;
        return rc;
    }
    rc = s_err(s_meta_get(self, txn, "head", &head));
    s_read_end(self);
    if (rc == PM_OK)
        *rev = head;
    return rc;
}

int
pm_store_get(pm_store_t *self, uint64_t rev, Pm__Revision **out)
{
    MDB_txn *txn = NULL;
    Pm__Revision *got = NULL;
    uint64_t head = 0;
    if (!self || !out)
        return PM_EINVAL;
    int rc = s_read_begin(self, &txn);
    if (rc != PM_OK || !txn)
        return rc == PM_OK ? PM_ENOTFOUND : rc;
    /* Head and revision from one snapshot, so "0" is never half-updated. */
    rc = s_err(s_meta_get(self, txn, "head", &head));
    if (rc == PM_OK && rev == 0)
        rev = head;
    if (rc == PM_OK)
        rc = rev == 0 ? PM_ENOTFOUND : s_get_rev(self, txn, rev, &got);
    s_read_end(self);
    if (rc == PM_ENOTFOUND && rev && rev <= head)
        pm_debug("store: revision %" PRIu64 " was pruned (head %" PRIu64 ")",
                 rev, head);
    if (rc == PM_OK)
        *out = got;
    return rc;
}

int
pm_store_next(pm_store_t *self, uint64_t rev, Pm__Revision **out)
{
    MDB_txn *txn = NULL;
    MDB_cursor *cur = NULL;
    if (!self || !out)
        return PM_EINVAL;
    int rc = s_read_begin(self, &txn);
    if (rc != PM_OK || !txn)
        return rc == PM_OK ? PM_ENOTFOUND : rc;
    uint8_t buf[8];
    s_u64_put(rev, buf); /* big-endian: LMDB's order is the numbers' */
    MDB_val key = {8, buf}, val;
    rc = s_err(mdb_cursor_open(txn, self->revs, &cur));
    if (rc == PM_OK)
        rc = s_err(mdb_cursor_get(cur, &key, &val, MDB_SET_RANGE));
    if (rc == PM_OK)
        rc = s_decode_rev(&key, &val, out);
    if (cur)
        mdb_cursor_close(cur);
    s_read_end(self);
    return rc;
}

/* ---- Writing ---------------------------------------------------------- */

typedef int (*s_write_fn)(pm_store_t *self, MDB_txn *txn, void *arg);

#define S_MB ((size_t)1 << 20)

/* Grows the map after MDB_MAP_FULL so that a retry has room for NEED more
 * bytes: to at least twice its size, never past map_max. LMDB allows this
 * while this process has no transaction open, so the reset read
 * transaction goes too (s_read_begin starts a new one). PM_EFULL when the
 * map is at its ceiling. */
static int
s_grow(pm_store_t *self, size_t need)
{
    MDB_envinfo info;
    int rc = mdb_env_info(self->env, &info);
    if (rc != MDB_SUCCESS)
        return s_err(rc);
    size_t cur = info.me_mapsize;
    if (cur >= self->map_max)
        return PM_EFULL;
    need = need < self->map_max ? need : self->map_max;
    size_t size = cur + 2 * need > 2 * cur ? cur + 2 * need : 2 * cur;
    size = (size + S_MB - 1) / S_MB * S_MB;
    if (size > self->map_max)
        size = self->map_max;
    if (self->rtxn) {
        mdb_txn_abort(self->rtxn);
        self->rtxn = NULL;
    }
    rc = mdb_env_set_mapsize(self->env, size);
    if (rc != MDB_SUCCESS) {
        pm_debug("store: growing the map to %zu bytes: %s", size,
                 mdb_strerror(rc));
        return s_err(rc);
    }
    pm_debug("store: map grown from %zu to %zu bytes", cur, size);
    return PM_OK;
}

/* Runs FN in one write transaction and commits it, durably (LMDB syncs
 * data and meta page before returning). When the map is full nothing was
 * written: the map grows and FN runs again from the start, as long as the
 * map can grow (a few times at most: each step doubles it). FN may thus
 * run more than once: it only sets fields of ARG, which the caller reads
 * after success. NEED: about how many bytes FN writes (0: a few pages). */
/* LMDB reports a write cut short by a full file system as EIO: tell the
 * two apart by the room left on the store's file system. */
static bool
s_disk_full(pm_store_t *self, size_t need)
{
    int fd = -1;
    struct statvfs vfs;
    if (mdb_env_get_fd(self->env, &fd) != MDB_SUCCESS || fstatvfs(fd, &vfs))
        return false;
    return (uint64_t)vfs.f_bavail * vfs.f_frsize < need + (1u << 20);
}

static int
s_write(pm_store_t *self, s_write_fn fn, void *arg, size_t need)
{
    for (;;) {
        MDB_txn *txn = NULL;
        int rc = s_err(s_txn_begin(self, 0, &txn));
        if (rc != PM_OK)
            return rc;
        rc = fn(self, txn, arg);
        if (rc != PM_OK) {
            mdb_txn_abort(txn);
        } else if ((rc = mdb_txn_commit(txn)) != MDB_SUCCESS) {
            pm_debug("store: commit: %s", mdb_strerror(rc));
            if (rc == EIO && s_disk_full(self, need))
                return PM_EFULL; /* a bigger map would not help */
            rc = s_err(rc);
        }
        if (rc != PM_EFULL || s_grow(self, need) != PM_OK)
            return rc;
    }
}

/* Rewrites the format stamp: a write that only moves LMDB's transaction
 * counter on (see s_make_room). */
static int
s_bump_txn(pm_store_t *self, MDB_txn *txn, void *arg)
{
    (void)arg;
    return s_err(s_meta_put(self, txn, "format", S_FORMAT));
}

/* Makes room after PM_EFULL: commits FN, which only deletes revisions and
 * counts them in *DROPPED, then, when it deleted some, one more small
 * transaction, because LMDB reuses a freed page only from the second
 * transaction after the one that freed it. */
static int
s_make_room(pm_store_t *self, s_write_fn fn, void *arg, const size_t *dropped)
{
    int rc = s_write(self, fn, arg, 0);
    if (rc == PM_OK && *dropped)
        rc = s_write(self, s_bump_txn, NULL, 0);
    return rc;
}

/* ---- Pruning ---------------------------------------------------------- */

static int
s_u64_cmp(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

static bool
s_pinned(uint64_t number, const uint64_t *pins, size_t n)
{
    return n && bsearch(&number, pins, n, sizeof *pins, s_u64_cmp);
}

/* Deletes every revision numbered CUT or lower except the N PINS (sorted);
 * adds how many it deleted to *DROPPED. */
static int
s_prune(pm_store_t *self, MDB_txn *txn, uint64_t cut, const uint64_t *pins,
        size_t n, size_t *dropped)
{
    MDB_cursor *cur = NULL;
    MDB_val key, val;
    uint8_t buf[8];
    int rc = mdb_cursor_open(txn, self->revs, &cur);
    for (uint64_t next = 0; rc == MDB_SUCCESS;) {
        s_u64_put(next, buf);
        key.mv_size = 8;
        key.mv_data = buf;
        rc = mdb_cursor_get(cur, &key, &val, MDB_SET_RANGE);
        if (rc == MDB_SUCCESS && key.mv_size != 8)
            rc = MDB_CORRUPTED;
        if (rc != MDB_SUCCESS)
            break;
        uint64_t number = s_u64_get(key.mv_data);
        if (number > cut)
            break;
        if (!s_pinned(number, pins, n)) {
            rc = mdb_cursor_del(cur, 0);
            *dropped += rc == MDB_SUCCESS;
        }
        next = number + 1;
    }
    if (cur)
        mdb_cursor_close(cur);
    return rc == MDB_NOTFOUND ? PM_OK : s_err(rc);
}

/* Sets *pins to a new sorted array of the applied_rev, when in 1..CUT, of
 * every stored node status: what the nodes run, which retention keeps.
 * PM_EIO when a status is unreadable. */
static int s_nodes_walk(pm_store_t *self, MDB_txn *txn, Pm__NodeStatus ***nodes,
                        size_t *n);

static int
s_pins_load(pm_store_t *self, MDB_txn *txn, uint64_t cut, uint64_t **pins,
            size_t *n)
{
    Pm__NodeStatus **nodes = NULL;
    size_t count = 0;
    int rc = s_nodes_walk(self, txn, &nodes, &count);
    for (size_t i = 0; rc == PM_OK && i < count; i++) {
        uint64_t applied = nodes[i]->applied_rev;
        if (applied && applied <= cut) {
            *pins = pm_realloc(*pins, (*n + 1) * sizeof **pins);
            (*pins)[(*n)++] = applied;
        }
    }
    pm_store_nodes_free(&nodes, count);
    if (rc == PM_OK && *n)
        qsort(*pins, *n, sizeof **pins, s_u64_cmp);
    return rc;
}

/* The retention rule (pm_store_set_retention) for a commit of revision
 * NEWEST, in that commit's transaction. A status that cannot be read
 * might be the only pin of a revision, so then nothing is pruned: never
 * delete what a node may still run. */
static int
s_retain(pm_store_t *self, MDB_txn *txn, uint64_t newest, size_t *dropped)
{
    uint64_t *pins = NULL;
    size_t n = 0;
    if (!self->keep || newest <= self->keep)
        return PM_OK;
    uint64_t cut = newest - self->keep;
    int rc = s_pins_load(self, txn, cut, &pins, &n);
    if (rc == PM_OK) {
        rc = s_prune(self, txn, cut, pins, n, dropped);
    } else if (rc == PM_EIO) {
        pm_debug("store: a node status is unreadable: not pruning history");
        rc = PM_OK;
    }
    free(pins);
    return rc;
}

/* ---- Committing ------------------------------------------------------- */

static int
s_commit_args(const pm_store_t *self, const Pm__Policy *policy,
              const pm_commit_t *info, const uint64_t *new_rev)
{
    if (!self || !policy || !info || !new_rev)
        return PM_EINVAL;
    if (self->rdonly)
        return PM_EINVAL;
    if (!info->author || !*info->author || !info->digest || !*info->digest)
        return PM_EINVAL;
    if (info->expect_rev < PM_REV_ANY)
        return PM_EINVAL;
    return PM_OK;
}

/* Packs REV and reads it back through pm_wire: what we store must be what
 * every reader accepts, or a bad digest would make the revision unreadable
 * after it was acknowledged. */
static int
s_pack_checked(const ProtobufCMessage *msg, uint8_t **buf, size_t *len)
{
    char *why = NULL;
    int rc = PM_OK;
    *buf = pm_wire_pack(msg, len);
    if (msg->descriptor == &pm__revision__descriptor) {
        Pm__Revision *back = NULL;
        rc = pm_wire_unpack_revision(*buf, *len, &back, &why);
        pm__revision__free_unpacked(back, NULL);
    } else if (msg->descriptor == &pm__response__descriptor) {
        Pm__Response *back = NULL;
        rc = pm_wire_unpack_response(*buf, *len, &back, &why);
        if (back)
            pm__response__free_unpacked(back, NULL);
    } else {
        Pm__NodeStatus *back = NULL;
        rc = pm_wire_unpack_node_status(*buf, *len, &back, &why);
        pm__node_status__free_unpacked(back, NULL);
    }
    if (rc != PM_OK) {
        pm_debug("store: refusing to write: %s", why);
        free(why);
        PM_FREE(buf);
        return PM_EINVAL;
    }
    return PM_OK;
}

/* Puts the packed revision NUMBER (above every stored one) and makes it
 * the head. */
static int
s_rev_put(pm_store_t *self, MDB_txn *txn, uint64_t number, MDB_val *packed)
{
    uint8_t key_buf[8];
    s_u64_put(number, key_buf);
    MDB_val key = {8, key_buf};
    int rc = s_err(
        mdb_put(txn, self->revs, &key, packed, MDB_NOOVERWRITE | MDB_APPEND));
    if (rc == PM_OK)
        rc = s_err(s_meta_put(self, txn, "head", number));
    return rc;
}

static int
s_commit_put(pm_store_t *self, MDB_txn *txn, uint64_t head,
             const Pm__Policy *policy, const pm_commit_t *info)
{
    Pm__Revision rev = PM__REVISION__INIT;
    uint8_t *packed = NULL;
    size_t len = 0;
    rev.number = head + 1;
    rev.parent = head;
    rev.author = (char *)info->author;
    rev.time = info->time ? info->time : (int64_t)time(NULL);
    rev.message = (char *)(info->message ? info->message : "");
    rev.digest = (char *)info->digest;
    /* Only read by the packer; the struct is not const in protobuf-c. */
    rev.policy = (Pm__Policy *)policy;
    rev.rollback_of = info->rollback_of;
    int rc = s_pack_checked(&rev.base, &packed, &len);
    if (rc != PM_OK)
        return rc;
    MDB_val val = {len, packed};
    rc = s_rev_put(self, txn, rev.number, &val);
    free(packed);
    return rc;
}

/* A commit (INFO set: POLICY becomes head+1) or a follow (INFO NULL: the
 * revision PACKED, already checked, goes in under NUMBER). */
typedef struct {
    const Pm__Policy *policy;
    const pm_commit_t *info;
    MDB_val packed;  /* a follow: the packed revision */
    MDB_val rollout; /* packed info->rollout; mv_data NULL: none */
    uint64_t number; /* the new revision */
    size_t dropped;  /* revisions the retention deleted */
} s_commit_t;

static int s_rollout_txn(pm_store_t *self, MDB_txn *txn, void *arg);
static int s_rollout_pack(const Pm__Rollout *rollout, MDB_val *out);

/* One commit or follow: check the head, prune (retention), put the new
 * revision (head+1 for a commit) and make it the head. */
static int
s_commit_txn(pm_store_t *self, MDB_txn *txn, void *arg)
{
    s_commit_t *c = arg;
    uint64_t head = 0;
    c->dropped = 0;
    int rc = s_err(s_meta_get(self, txn, "head", &head));
    if (rc == PM_OK && c->info && c->info->expect_rev != PM_REV_ANY &&
        (uint64_t)c->info->expect_rev != head)
        rc = PM_ECONFLICT;
    if (rc == PM_OK && !c->info && c->number <= head)
        rc = PM_ECONFLICT;
    if (c->info)
        c->number = head + 1;
    if (rc == PM_OK)
        rc = s_retain(self, txn, c->number, &c->dropped);
    if (rc == PM_OK)
        rc = c->info ? s_commit_put(self, txn, head, c->policy, c->info)
                     : s_rev_put(self, txn, c->number, &c->packed);
    if (rc == PM_OK && c->rollout.mv_data)
        rc = s_rollout_txn(self, txn, &c->rollout);
    return rc;
}

/* What the next commit or this follow would prune, alone (for
 * s_make_room). */
static int
s_retain_txn(pm_store_t *self, MDB_txn *txn, void *arg)
{
    s_commit_t *c = arg;
    uint64_t head = 0;
    c->dropped = 0;
    int rc = s_err(s_meta_get(self, txn, "head", &head));
    if (rc == PM_OK)
        rc = s_retain(self, txn, c->info ? head + 1 : c->number, &c->dropped);
    return rc;
}

/* Runs a commit or a follow; when it is full at the ceiling, what it would
 * prune cannot make room in its own transaction (LMDB does not reuse those
 * pages yet), so prunes first on its own, then tries once more. */
static int
s_commit_run(pm_store_t *self, s_commit_t *c, size_t need)
{
    int rc = s_write(self, s_commit_txn, c, need);
    if (rc == PM_EFULL && self->keep) {
        rc = s_make_room(self, s_retain_txn, c, &c->dropped);
        if (rc == PM_OK)
            rc = c->dropped ? s_write(self, s_commit_txn, c, need) : PM_EFULL;
    }
    return rc;
}

int
pm_store_commit(pm_store_t *self, const Pm__Policy *policy,
                const pm_commit_t *info, uint64_t *new_rev)
{
    int rc = s_commit_args(self, policy, info, new_rev);
    if (rc != PM_OK)
        return rc;
    s_commit_t c = {.policy = policy, .info = info};
    if (info->rollout && (rc = s_rollout_pack(info->rollout, &c.rollout)))
        return rc;
    size_t need =
        protobuf_c_message_get_packed_size(&policy->base) + c.rollout.mv_size;
    rc = s_commit_run(self, &c, need);
    if (rc == PM_OK)
        *new_rev = c.number;
    free(c.rollout.mv_data);
    return rc;
}

int
pm_store_follow(pm_store_t *self, const Pm__Revision *rev)
{
    uint8_t *packed = NULL;
    size_t len = 0;
    if (!self || !rev || self->rdonly || !rev->policy)
        return PM_EINVAL;
    /* Checks the number, parent, rollback_of and digest (pm_wire). */
    int rc = s_pack_checked(&rev->base, &packed, &len);
    if (rc != PM_OK)
        return rc;
    s_commit_t c = {.packed = {len, packed}, .number = rev->number};
    rc = s_commit_run(self, &c, len);
    free(packed);
    return rc;
}

/* ---- Mirrors (an agent's applied revisions) ----------------------------- */

#define S_MIRROR_KEEP 16

typedef struct {
    MDB_val packed;  /* the revision to store */
    uint64_t number; /* its number */
    size_t others;   /* stored revisions to keep besides it */
    size_t dropped;  /* revisions deleted */
} s_mirror_t;

/* Sets *cut to the number at and below which revisions go so that the
 * newest m->others besides m->number stay; 0 when nothing needs to go. */
static int
s_mirror_cut(pm_store_t *self, MDB_txn *txn, const s_mirror_t *m, uint64_t *cut)
{
    MDB_cursor *cur = NULL;
    MDB_val key, val;
    size_t seen = 0;
    *cut = 0;
    int rc = mdb_cursor_open(txn, self->revs, &cur);
    if (rc != MDB_SUCCESS)
        return s_err(rc);
    rc = mdb_cursor_get(cur, &key, &val, MDB_LAST);
    while (rc == MDB_SUCCESS) {
        if (key.mv_size != 8) {
            rc = MDB_CORRUPTED;
            break;
        }
        uint64_t number = s_u64_get(key.mv_data);
        if (number != m->number && seen++ == m->others) {
            *cut = number;
            break;
        }
        rc = mdb_cursor_get(cur, &key, &val, MDB_PREV);
    }
    mdb_cursor_close(cur);
    return rc == MDB_NOTFOUND ? PM_OK : s_err(rc);
}

/* One mirror: prune (first, as the put may be large), put, set the head. */
static int
s_mirror_txn(pm_store_t *self, MDB_txn *txn, void *arg)
{
    s_mirror_t *m = arg;
    uint64_t cut = 0;
    uint8_t buf[8];
    m->dropped = 0;
    int rc = s_mirror_cut(self, txn, m, &cut);
    if (rc == PM_OK && cut)
        rc = s_prune(self, txn, cut, &m->number, 1, &m->dropped);
    s_u64_put(m->number, buf);
    MDB_val key = {8, buf};
    if (rc == PM_OK)
        rc = s_err(mdb_put(txn, self->revs, &key, &m->packed, 0));
    if (rc == PM_OK)
        rc = s_err(s_meta_put(self, txn, "head", m->number));
    return rc;
}

/* The same pruning alone (for s_make_room), sparing the current head: the
 * milter reads it until the new revision is in. */
static int
s_shrink_txn(pm_store_t *self, MDB_txn *txn, void *arg)
{
    s_mirror_t *m = arg;
    uint64_t cut = 0, head = 0;
    m->dropped = 0;
    int rc = s_err(s_meta_get(self, txn, "head", &head));
    if (rc == PM_OK)
        rc = s_mirror_cut(self, txn, m, &cut);
    uint64_t pins[2] = {head < m->number ? head : m->number,
                        head < m->number ? m->number : head};
    if (rc == PM_OK && cut)
        rc = s_prune(self, txn, cut, pins, 2, &m->dropped);
    return rc;
}

int
pm_store_mirror(pm_store_t *self, const Pm__Revision *rev)
{
    uint8_t *packed = NULL;
    size_t len = 0;
    if (!self || !rev || self->rdonly || rev->number == 0 || !rev->policy)
        return PM_EINVAL;
    int rc = s_pack_checked(&rev->base, &packed, &len);
    if (rc != PM_OK)
        return rc;
    s_mirror_t m = {{len, packed}, rev->number, S_MIRROR_KEEP - 1, 0};
    rc = s_write(self, s_mirror_txn, &m, len);
    /* No room even at the ceiling: keep fewer copies, dropping them in
     * transactions of their own first so that their pages can be reused. */
    while (rc == PM_EFULL && m.others > 0) {
        m.others /= 2;
        rc = s_make_room(self, s_shrink_txn, &m, &m.dropped);
        if (rc == PM_OK)
            rc = s_write(self, s_mirror_txn, &m, len);
    }
    free(packed);
    return rc;
}

/* ---- History ---------------------------------------------------------- */

/* Puts the cursor on the newest revision below BEFORE (0: the head). */
static int
s_cursor_below(MDB_cursor *cur, uint64_t before, MDB_val *key, MDB_val *val)
{
    uint8_t buf[8];
    if (before == 0)
        return mdb_cursor_get(cur, key, val, MDB_LAST);
    s_u64_put(before, buf);
    key->mv_size = 8;
    key->mv_data = buf;
    int rc = mdb_cursor_get(cur, key, val, MDB_SET_RANGE);
    if (rc == MDB_NOTFOUND)
        return mdb_cursor_get(cur, key, val, MDB_LAST);
    if (rc != MDB_SUCCESS)
        return rc;
    /* SET_RANGE stops on the first key >= before; step below it. */
    return mdb_cursor_get(cur, key, val, MDB_PREV);
}

static int
s_history_walk(pm_store_t *self, MDB_txn *txn, uint64_t before, unsigned limit,
               Pm__Revision **revs, size_t *n)
{
    MDB_cursor *cur = NULL;
    MDB_val key, val;
    int rc = mdb_cursor_open(txn, self->revs, &cur);
    if (rc != MDB_SUCCESS)
        return s_err(rc);
    rc = s_cursor_below(cur, before, &key, &val);
    while (rc == MDB_SUCCESS && *n < limit) {
        Pm__Revision *rev = NULL;
        int prc = s_decode_rev(&key, &val, &rev);
        if (prc != PM_OK) {
            mdb_cursor_close(cur);
            return prc;
        }
        pm__policy__free_unpacked(rev->policy, NULL);
        rev->policy = NULL;
        revs[(*n)++] = rev;
        rc = mdb_cursor_get(cur, &key, &val, MDB_PREV);
    }
    mdb_cursor_close(cur);
    return rc == MDB_NOTFOUND ? PM_OK : s_err(rc);
}

int
pm_store_history(pm_store_t *self, uint64_t before, unsigned limit,
                 Pm__Revision ***revs, size_t *n)
{
    MDB_txn *txn = NULL;
    size_t got = 0;
    if (!self || !revs || !n)
        return PM_EINVAL;
    if (limit == 0 || limit > PM_WIRE_LIST_MAX)
        limit = PM_WIRE_LIST_MAX;
    Pm__Revision **out = pm_calloc(limit, sizeof *out);
    int rc = s_read_begin(self, &txn);
    if (rc == PM_OK && txn) {
        rc = s_history_walk(self, txn, before, limit, out, &got);
        s_read_end(self);
    }
    if (rc != PM_OK) {
        pm_store_history_free(&out, got);
        return rc;
    }
    *revs = out;
    *n = got;
    return PM_OK;
}

void
pm_store_history_free(Pm__Revision ***revs_p, size_t n)
{
    if (!revs_p || !*revs_p)
        return;
    for (size_t i = 0; i < n; i++)
        pm__revision__free_unpacked((*revs_p)[i], NULL);
    PM_FREE(revs_p);
}

/* ---- Node status ------------------------------------------------------ */

static int
s_node_put(pm_store_t *self, MDB_txn *txn, const Pm__NodeStatus *status)
{
    uint8_t *packed = NULL;
    size_t len = 0;
    if (!status || !status->name || !*status->name)
        return PM_EINVAL;
    size_t name_len = strlen(status->name);
    if (name_len > (size_t)mdb_env_get_maxkeysize(self->env))
        return PM_EINVAL;
    int rc = s_pack_checked(&status->base, &packed, &len);
    if (rc == PM_OK) {
        MDB_val key = {name_len, status->name}, val = {len, packed};
        rc = s_err(mdb_put(txn, self->nodes, &key, &val, 0));
    }
    free(packed);
    return rc;
}

typedef struct {
    Pm__NodeStatus *const *statuses;
    size_t n;
} s_nodes_t;

static int
s_nodes_txn(pm_store_t *self, MDB_txn *txn, void *arg)
{
    const s_nodes_t *a = arg;
    int rc = PM_OK;
    for (size_t i = 0; rc == PM_OK && i < a->n; i++)
        rc = s_node_put(self, txn, a->statuses[i]);
    return rc;
}

int
pm_store_node_put_many(pm_store_t *self, Pm__NodeStatus *const *statuses,
                       size_t n)
{
    if (!self || (n && !statuses) || self->rdonly)
        return PM_EINVAL;
    s_nodes_t a = {statuses, n};
    return s_write(self, s_nodes_txn, &a, 0);
}

int
pm_store_node_put(pm_store_t *self, const Pm__NodeStatus *status)
{
    Pm__NodeStatus *one = (Pm__NodeStatus *)status;
    if (!status)
        return PM_EINVAL;
    return pm_store_node_put_many(self, &one, 1);
}

static int
s_node_del_txn(pm_store_t *self, MDB_txn *txn, void *arg)
{
    const char *name = arg;
    MDB_val key = {strlen(name), (void *)name};
    return s_err(mdb_del(txn, self->nodes, &key, NULL));
}

int
pm_store_node_del(pm_store_t *self, const char *name)
{
    if (!self || !name || !*name || self->rdonly ||
        strlen(name) > (size_t)mdb_env_get_maxkeysize(self->env))
        return PM_EINVAL;
    return s_write(self, s_node_del_txn, (void *)name, 0);
}

static int
s_nodes_walk(pm_store_t *self, MDB_txn *txn, Pm__NodeStatus ***nodes, size_t *n)
{
    MDB_cursor *cur = NULL;
    MDB_val key, val;
    size_t cap = 0;
    int rc = mdb_cursor_open(txn, self->nodes, &cur);
    if (rc != MDB_SUCCESS)
        return s_err(rc);
    rc = mdb_cursor_get(cur, &key, &val, MDB_FIRST);
    while (rc == MDB_SUCCESS) {
        Pm__NodeStatus *st = NULL;
        int drc = s_decode_node(&key, &val, &st);
        if (drc != PM_OK) {
            mdb_cursor_close(cur);
            return drc;
        }
        if (*n == cap) {
            cap = cap ? cap * 2 : 16;
            *nodes = pm_realloc(*nodes, cap * sizeof **nodes);
        }
        (*nodes)[(*n)++] = st;
        rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT);
    }
    mdb_cursor_close(cur);
    return rc == MDB_NOTFOUND ? PM_OK : s_err(rc);
}

int
pm_store_node_list(pm_store_t *self, Pm__NodeStatus ***nodes, size_t *n)
{
    MDB_txn *txn = NULL;
    size_t got = 0;
    if (!self || !nodes || !n)
        return PM_EINVAL;
    Pm__NodeStatus **out = pm_calloc(1, sizeof *out);
    int rc = s_read_begin(self, &txn);
    if (rc == PM_OK && txn) {
        /* Keys are names under memcmp order: the list comes out sorted. */
        rc = s_nodes_walk(self, txn, &out, &got);
        s_read_end(self);
    }
    if (rc != PM_OK) {
        pm_store_nodes_free(&out, got);
        return rc;
    }
    *nodes = out;
    *n = got;
    return PM_OK;
}

void
pm_store_nodes_free(Pm__NodeStatus ***nodes_p, size_t n)
{
    if (!nodes_p || !*nodes_p)
        return;
    for (size_t i = 0; i < n; i++)
        pm__node_status__free_unpacked((*nodes_p)[i], NULL);
    PM_FREE(nodes_p);
}

/* ---- Secrets (DKIM private keys), kept apart from the policy ------------ */

typedef struct {
    const char *id;
    MDB_val data; /* mv_data NULL: delete */
} s_secret_t;

static int
s_secret_txn(pm_store_t *self, MDB_txn *txn, void *arg)
{
    s_secret_t *a = arg;
    MDB_val key = {strlen(a->id), (void *)a->id};
    if (!a->data.mv_data)
        return s_err(mdb_del(txn, self->secrets, &key, NULL));
    return s_err(mdb_put(txn, self->secrets, &key, &a->data, 0));
}

int
pm_store_secret_put(pm_store_t *self, const char *id, const void *data,
                    size_t len)
{
    if (!self || !id || !*id || !data || !len || self->rdonly ||
        strlen(id) > (size_t)mdb_env_get_maxkeysize(self->env))
        return PM_EINVAL;
    s_secret_t a = {id, {len, (void *)data}};
    return s_write(self, s_secret_txn, &a, len);
}

int
pm_store_secret_get(pm_store_t *self, const char *id, uint8_t **data,
                    size_t *len)
{
    MDB_txn *txn = NULL;
    if (!self || !id || !*id || !data || !len)
        return PM_EINVAL;
    int rc = s_read_begin(self, &txn);
    if (rc != PM_OK || !txn) /* no txn: a reader before any writer */
        return rc == PM_OK ? PM_ENOTFOUND : rc;
    MDB_val key = {strlen(id), (void *)id}, val;
    rc = s_err(mdb_get(txn, self->secrets, &key, &val));
    if (rc == PM_OK) {
        *data = pm_malloc(val.mv_size);
        memcpy(*data, val.mv_data, val.mv_size);
        *len = val.mv_size;
    }
    s_read_end(self);
    return rc;
}

int
pm_store_secret_del(pm_store_t *self, const char *id)
{
    if (!self || !id || !*id || self->rdonly)
        return PM_EINVAL;
    s_secret_t a = {id, {0, NULL}};
    return s_write(self, s_secret_txn, &a, 0);
}

static void
s_secret_free(Pm__ReplicaSecret *m)
{
    if (!m)
        return;
    free(m->id);
    if (m->data.data) /* a DKIM private key: not left in freed memory */
        explicit_bzero(m->data.data, m->data.len);
    free(m->data.data);
    free(m);
}

/* Appends a copy of the secret under KEY to *out; an id with a NUL in it
 * (not what a put stores) is damage: PM_EIO. */
static int
s_secret_copy(const MDB_val *key, const MDB_val *val, Pm__ReplicaSecret ***out,
              size_t *n, size_t *cap)
{
    if (memchr(key->mv_data, '\0', key->mv_size)) {
        pm_debug("store: a secret id holds a NUL byte");
        return PM_EIO;
    }
    Pm__ReplicaSecret *m = pm_malloc(sizeof *m);
    pm__replica_secret__init(m);
    m->id = pm_strndup(key->mv_data, key->mv_size);
    m->data.len = val->mv_size;
    m->data.data = pm_malloc(val->mv_size);
    memcpy(m->data.data, val->mv_data, val->mv_size);
    if (*n == *cap) {
        *cap = *cap ? *cap * 2 : 16;
        *out = pm_realloc(*out, *cap * sizeof **out);
    }
    (*out)[(*n)++] = m;
    return PM_OK;
}

static int
s_secrets_walk(pm_store_t *self, MDB_txn *txn, Pm__ReplicaSecret ***out,
               size_t *n)
{
    MDB_cursor *cur = NULL;
    MDB_val key, val;
    size_t cap = 0;
    int rc = mdb_cursor_open(txn, self->secrets, &cur);
    if (rc != MDB_SUCCESS)
        return s_err(rc);
    rc = mdb_cursor_get(cur, &key, &val, MDB_FIRST);
    while (rc == MDB_SUCCESS) {
        int crc = s_secret_copy(&key, &val, out, n, &cap);
        if (crc != PM_OK) {
            mdb_cursor_close(cur);
            return crc;
        }
        rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT);
    }
    mdb_cursor_close(cur);
    return rc == MDB_NOTFOUND ? PM_OK : s_err(rc);
}

int
pm_store_secrets(pm_store_t *self, Pm__ReplicaSecret ***out, size_t *n)
{
    MDB_txn *txn = NULL;
    size_t got = 0;
    if (!self || !out || !n)
        return PM_EINVAL;
    Pm__ReplicaSecret **list = pm_calloc(1, sizeof *list);
    int rc = s_read_begin(self, &txn);
    if (rc == PM_OK && txn) {
        /* Keys are ids under memcmp order: the list comes out sorted. */
        rc = s_secrets_walk(self, txn, &list, &got);
        s_read_end(self);
    }
    if (rc != PM_OK) {
        pm_store_secrets_free(&list, got);
        return rc;
    }
    *out = list;
    *n = got;
    return PM_OK;
}

void
pm_store_secrets_free(Pm__ReplicaSecret ***out_p, size_t n)
{
    if (!out_p || !*out_p)
        return;
    for (size_t i = 0; i < n; i++)
        s_secret_free((*out_p)[i]);
    PM_FREE(out_p);
}

typedef struct {
    Pm__ReplicaSecret *const *secrets;
    size_t n;
} s_secrets_t;

/* Empties the secrets database and puts the new set; a duplicate id
 * aborts the whole transaction. */
static int
s_secrets_txn(pm_store_t *self, MDB_txn *txn, void *arg)
{
    const s_secrets_t *a = arg;
    int rc = mdb_drop(txn, self->secrets, 0);
    for (size_t i = 0; rc == MDB_SUCCESS && i < a->n; i++) {
        const Pm__ReplicaSecret *m = a->secrets[i];
        MDB_val key = {strlen(m->id), m->id};
        MDB_val val = {m->data.len, m->data.data};
        rc = mdb_put(txn, self->secrets, &key, &val, MDB_NOOVERWRITE);
        if (rc == MDB_KEYEXIST)
            return PM_EINVAL;
    }
    return s_err(rc);
}

int
pm_store_secrets_replace(pm_store_t *self, Pm__ReplicaSecret *const *secrets,
                         size_t n)
{
    size_t need = 0;
    if (!self || (n && !secrets) || self->rdonly)
        return PM_EINVAL;
    size_t max = (size_t)mdb_env_get_maxkeysize(self->env);
    for (size_t i = 0; i < n; i++) {
        const Pm__ReplicaSecret *m = secrets[i];
        if (!m || !m->id || !*m->id || strlen(m->id) > max || !m->data.len ||
            !m->data.data)
            return PM_EINVAL;
        need += strlen(m->id) + m->data.len;
    }
    s_secrets_t a = {secrets, n};
    return s_write(self, s_secrets_txn, &a, need);
}

/* ---- The current rollout ------------------------------------------------ */

#define S_ROLLOUT_KEY "rollout"

static int
s_rollout_txn(pm_store_t *self, MDB_txn *txn, void *arg)
{
    MDB_val key = {strlen(S_ROLLOUT_KEY), (void *)S_ROLLOUT_KEY};
    return s_err(mdb_put(txn, self->meta, &key, arg, 0));
}

/* ROLLOUT packed as it is stored (inside a Response, so that reading it
 * back goes through pm_wire's gate), into OUT (caller frees mv_data);
 * PM_EINVAL for one a reader would refuse. */
static int
s_rollout_pack(const Pm__Rollout *rollout, MDB_val *out)
{
    Pm__Response wrap = PM__RESPONSE__INIT;
    uint8_t *packed = NULL;
    size_t len = 0;
    if (!rollout || rollout->id == 0)
        return PM_EINVAL;
    wrap.rollout = (Pm__Rollout *)rollout; /* only read by the packer */
    int rc = s_pack_checked(&wrap.base, &packed, &len);
    if (rc == PM_OK)
        *out = (MDB_val){len, packed};
    return rc;
}

int
pm_store_rollout_put(pm_store_t *self, const Pm__Rollout *rollout)
{
    MDB_val val = {0, NULL};
    if (!self || self->rdonly)
        return PM_EINVAL;
    int rc = s_rollout_pack(rollout, &val);
    if (rc == PM_OK)
        rc = s_write(self, s_rollout_txn, &val, val.mv_size);
    free(val.mv_data);
    return rc;
}

/* Decodes what "rollout" holds; anything else is damage: PM_EIO. */
static int
s_decode_rollout(const MDB_val *val, Pm__Rollout **out)
{
    Pm__Response *wrap = NULL;
    char *why = NULL;
    if (pm_wire_unpack_response(val->mv_data, val->mv_size, &wrap, &why)) {
        pm_debug("store: the rollout is unreadable: %s", why);
        free(why);
        return PM_EIO;
    }
    Pm__Rollout *r = wrap->rollout;
    if (!r || r->id == 0) {
        pm_debug("store: the rollout record holds no rollout");
        pm__response__free_unpacked(wrap, NULL);
        return PM_EIO;
    }
    wrap->rollout = NULL;
    pm__response__free_unpacked(wrap, NULL);
    *out = r;
    return PM_OK;
}

int
pm_store_rollout_get(pm_store_t *self, Pm__Rollout **out)
{
    MDB_txn *txn = NULL;
    Pm__Rollout *got = NULL;
    if (!self || !out)
        return PM_EINVAL;
    int rc = s_read_begin(self, &txn);
    if (rc != PM_OK || !txn) /* no txn: a reader before any writer */
        return rc == PM_OK ? PM_ENOTFOUND : rc;
    MDB_val key = {strlen(S_ROLLOUT_KEY), (void *)S_ROLLOUT_KEY}, val;
    rc = s_err(mdb_get(txn, self->meta, &key, &val));
    if (rc == PM_OK)
        rc = s_decode_rollout(&val, &got);
    s_read_end(self);
    if (rc == PM_OK)
        *out = got;
    return rc;
}

/* ---- The controller's role ---------------------------------------------- */

#define S_ROLE_KEY "role"
#define S_ROLE_LEN 9

/* The record never goes back: not to an older epoch, nor from primary
 * to standby at the same one (a standby storing its primary's epoch must
 * not undo a --promote that another process wrote a moment before). */
static int
s_role_txn(pm_store_t *self, MDB_txn *txn, void *arg)
{
    const uint8_t *new = arg;
    MDB_val key = {strlen(S_ROLE_KEY), (void *)S_ROLE_KEY}, old;
    int rc = mdb_get(txn, self->meta, &key, &old);
    if (rc == 0 && old.mv_size == S_ROLE_LEN) {
        const uint8_t *o = old.mv_data;
        uint64_t old_epoch = s_u64_get(o + 1), new_epoch = s_u64_get(new + 1);
        if (old_epoch > new_epoch || (old_epoch == new_epoch && o[0] > new[0]))
            return PM_ECONFLICT;
    } else if (rc != 0 && rc != MDB_NOTFOUND) {
        return s_err(rc);
    }
    MDB_val val = {S_ROLE_LEN, (void *)new};
    return s_err(mdb_put(txn, self->meta, &key, &val, 0));
}

int
pm_store_role_put(pm_store_t *self, bool primary, uint64_t epoch)
{
    uint8_t buf[S_ROLE_LEN];
    if (!self || self->rdonly)
        return PM_EINVAL;
    buf[0] = primary ? 1 : 0;
    s_u64_put(epoch, buf + 1);
    return s_write(self, s_role_txn, buf, 0);
}

int
pm_store_role_get(pm_store_t *self, bool *primary, uint64_t *epoch)
{
    MDB_txn *txn = NULL;
    uint8_t buf[S_ROLE_LEN];
    if (!self || !primary || !epoch)
        return PM_EINVAL;
    int rc = s_read_begin(self, &txn);
    if (rc != PM_OK || !txn) /* no txn: a reader before any writer */
        return rc == PM_OK ? PM_ENOTFOUND : rc;
    MDB_val key = {strlen(S_ROLE_KEY), (void *)S_ROLE_KEY}, val;
    rc = s_err(mdb_get(txn, self->meta, &key, &val));
    if (rc == PM_OK &&
        (val.mv_size != S_ROLE_LEN || ((const uint8_t *)val.mv_data)[0] > 1)) {
        pm_debug("store: the role record is damaged");
        rc = PM_EIO;
    }
    if (rc == PM_OK)
        memcpy(buf, val.mv_data, S_ROLE_LEN);
    s_read_end(self);
    if (rc == PM_OK) {
        *primary = buf[0] == 1;
        *epoch = s_u64_get(buf + 1);
    }
    return rc;
}
