/* pm_replica.h - what a standby controller copies besides the revisions:
 * the secrets policies refer to (DKIM private keys, from the store) and
 * the enrolled keys (clients/), so that once promoted it serves the same
 * agents and admins and signs with the same keys.
 *
 * The primary sends them whole when the standby's digest differs from
 * its own; they are few (one secret per DKIM domain, one key per node and
 * admin), and whole copies cannot drift.
 */
#ifndef PM_REPLICA_H
#define PM_REPLICA_H

#include "pm_store.h"
#include "privmta.pb-c.h"

#include <stddef.h>
#include <time.h>

typedef struct pm_replica_t {
    Pm__ReplicaSecret **secrets; /* sorted by id */
    size_t n_secrets;
    Pm__EnrolledKey **keys; /* sorted by role, then name */
    size_t n_keys;
    char digest[65];  /* sha256 hex of both, as packed */
    size_t size;      /* bytes of both, as packed */
    char clients[65]; /* clients/ before the keys were read (its entries'
                         names, inodes, sizes, change times) */
} pm_replica_t;

/* Reads STORE's secrets and the keys enrolled in CLIENTS_DIR now. Returns
 * NULL with *why (caller frees) when either cannot be read. */
pm_replica_t *pm_replica_read(pm_store_t *store, const char *clients_dir,
                              char **why);

/* The same, for a caller that asks often (a primary answering REPLICATE
 * twice a second, a standby asking): *SELF_P (NULL at first) is made
 * again only when clients/ changed (an entry added, removed or written:
 * one stat each, no file read); else only the secrets, read from the
 * store, are read again. Returns 0, or -1 with *why
 * (caller frees), *SELF_P then unchanged. */
int pm_replica_refresh(pm_replica_t **self_p, pm_store_t *store,
                       const char *clients_dir, char **why);

/* Accepts NULL, nulls *self_p. */
void pm_replica_destroy(pm_replica_t **self_p);

/* Makes STORE's secrets exactly SECRETS (one transaction) and CLIENTS_DIR
 * enrol exactly KEYS: keys missing or different are written, others
 * withdrawn. Every key is checked first (a name that is a plain file
 * name, a known role, a CURVE public key): on a bad one nothing changes.
 * Returns 0, or -1 with *why (caller frees). */
int pm_replica_apply(pm_store_t *store, const char *clients_dir,
                     Pm__ReplicaSecret *const *secrets, size_t n_secrets,
                     Pm__EnrolledKey *const *keys, size_t n_keys, char **why);

#endif
