/* pm_replica.c - secrets and enrolled keys, read and made equal. */
#include "pm_replica.h"
#include "pm_error.h"
#include "pm_hash.h"
#include "pm_keys.h"
#include "pm_mem.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct {
    Pm__EnrolledKey **keys;
    char **paths; /* the file that enrols each */
    size_t n, cap;
} s_keys_t;

static void
s_key_add(const char *name, const char *role, const char *public_txt,
          const char *path, void *arg)
{
    s_keys_t *k = arg;
    if (k->n == k->cap) {
        k->cap = k->cap ? 2 * k->cap : 16;
        k->keys = pm_realloc(k->keys, k->cap * sizeof *k->keys);
        k->paths = pm_realloc(k->paths, k->cap * sizeof *k->paths);
    }
    k->paths[k->n] = pm_strdup(path);
    Pm__EnrolledKey *e = pm_calloc(1, sizeof *e);
    pm__enrolled_key__init(e);
    e->name = pm_strdup(name);
    e->role = pm_strdup(role);
    e->public_key = pm_strdup(public_txt);
    k->keys[k->n++] = e;
}

static int
s_key_cmp(const void *a, const void *b)
{
    const Pm__EnrolledKey *x = *(Pm__EnrolledKey *const *)a;
    const Pm__EnrolledKey *y = *(Pm__EnrolledKey *const *)b;
    int c = strcmp(x->role, y->role);
    return c ? c : strcmp(x->name, y->name);
}

static void
s_paths_free(s_keys_t *k)
{
    for (size_t i = 0; i < k->n; i++)
        free(k->paths[i]);
    free(k->paths);
}

static void
s_keys_free(Pm__EnrolledKey **keys, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(keys[i]->name);
        free(keys[i]->role);
        free(keys[i]->public_key);
        free(keys[i]);
    }
    free(keys);
}

/* A digest of what CLIENTS_DIR holds now, from each entry's name, inode,
 * size and change time (no file is read): a certificate copied over
 * another in place changes it, where the directory's mtime does not.
 * Empty when the directory cannot be read (then the keys are read). */
static void
s_clients_stamp(const char *clients_dir, char out[65])
{
    out[0] = '\0';
    DIR *d = opendir(clients_dir);
    if (!d)
        return;
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    struct dirent *e;
    struct stat st;
    while (f && (e = readdir(d)))
        if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0)
            fprintf(f, "%s/%ju/%jd/%jd.%ld\n", e->d_name, (uintmax_t)st.st_ino,
                    (intmax_t)st.st_size, (intmax_t)st.st_ctim.tv_sec,
                    st.st_ctim.tv_nsec);
    closedir(d);
    if (f && fclose(f) == 0)
        pm_sha256_hex(buf, len, out);
    free(buf);
}

/* The digest of what a Response would carry: the same packing on both
 * sides, so equal digests mean equal contents. */
static void
s_digest(pm_replica_t *self)
{
    Pm__Response r = PM__RESPONSE__INIT;
    r.secrets = self->secrets;
    r.n_secrets = self->n_secrets;
    r.keys = self->keys;
    r.n_keys = self->n_keys;
    size_t len = pm__response__get_packed_size(&r);
    uint8_t *buf = pm_malloc(len ? len : 1);
    pm__response__pack(&r, buf);
    pm_sha256_hex(buf, len, self->digest);
    self->size = len;
    free(buf);
}

pm_replica_t *
pm_replica_read(pm_store_t *store, const char *clients_dir, char **why)
{
    pm_replica_t *self = pm_calloc(1, sizeof *self);
    int rc = pm_store_secrets(store, &self->secrets, &self->n_secrets);
    if (rc != PM_OK) {
        *why = pm_asprintf("reading the secrets: %s", pm_strerror(rc));
        pm_replica_destroy(&self);
        return NULL;
    }
    s_clients_stamp(clients_dir, self->clients);
    s_keys_t k = {0};
    int each = pm_keys_each(clients_dir, s_key_add, &k, why);
    s_paths_free(&k);
    if (each != 0) {
        s_keys_free(k.keys, k.n);
        pm_replica_destroy(&self);
        return NULL;
    }
    if (k.n)
        qsort(k.keys, k.n, sizeof *k.keys, s_key_cmp);
    self->keys = k.keys;
    self->n_keys = k.n;
    s_digest(self);
    return self;
}

int
pm_replica_refresh(pm_replica_t **self_p, pm_store_t *store,
                   const char *clients_dir, char **why)
{
    pm_replica_t *self = *self_p;
    char now[65];
    s_clients_stamp(clients_dir, now);
    if (self && *now && strcmp(now, self->clients) == 0) {
        Pm__ReplicaSecret **secrets = NULL;
        size_t n = 0;
        int rc = pm_store_secrets(store, &secrets, &n);
        if (rc != PM_OK) {
            *why = pm_asprintf("reading the secrets: %s", pm_strerror(rc));
            return -1;
        }
        pm_store_secrets_free(&self->secrets, self->n_secrets);
        self->secrets = secrets;
        self->n_secrets = n;
        s_digest(self);
        return 0;
    }
    pm_replica_t *fresh = pm_replica_read(store, clients_dir, why);
    if (!fresh)
        return -1;
    pm_replica_destroy(self_p);
    *self_p = fresh;
    return 0;
}

void
pm_replica_destroy(pm_replica_t **self_p)
{
    pm_replica_t *self = *self_p;
    if (!self)
        return;
    pm_store_secrets_free(&self->secrets, self->n_secrets);
    s_keys_free(self->keys, self->n_keys);
    free(self);
    *self_p = NULL;
}

/* A key from the primary names a file in clients/: ROLE-NAME.cert. */
static char *
s_key_problem(const Pm__EnrolledKey *k)
{
    if (!*k->name || k->name[0] == '.' || strchr(k->name, '/') ||
        strlen(k->name) > 200)
        return pm_asprintf("key name '%.64s' is not a plain file name",
                           k->name);
    if (!pm_keys_role_known(k->role))
        return pm_asprintf("key %s: unknown role '%.32s'", k->name, k->role);
    if (!pm_keys_is_public(k->public_key))
        return pm_asprintf("key %s: not a CURVE public key", k->name);
    return NULL;
}

static const Pm__EnrolledKey *
s_find(Pm__EnrolledKey *const *keys, size_t n, const Pm__EnrolledKey *k)
{
    for (size_t i = 0; i < n; i++) {
        if (strcmp(keys[i]->role, k->role) == 0 &&
            strcmp(keys[i]->name, k->name) == 0)
            return keys[i];
    }
    return NULL;
}

int
pm_replica_apply(pm_store_t *store, const char *clients_dir,
                 Pm__ReplicaSecret *const *secrets, size_t n_secrets,
                 Pm__EnrolledKey *const *keys, size_t n_keys, char **why)
{
    for (size_t i = 0; i < n_keys; i++) {
        if ((*why = s_key_problem(keys[i])))
            return -1;
    }
    int rc = pm_store_secrets_replace(store, secrets, n_secrets);
    if (rc != PM_OK) {
        *why = pm_asprintf("storing the secrets: %s", pm_strerror(rc));
        return -1;
    }
    s_keys_t now = {0};
    int ret = pm_keys_each(clients_dir, s_key_add, &now, why);
    /* withdrawn by removing the file that enrols it, whatever its name */
    for (size_t i = 0; i < now.n && ret == 0; i++) {
        if (!s_find(keys, n_keys, now.keys[i]) && unlink(now.paths[i]) != 0) {
            *why = pm_asprintf("cannot remove %s: %s", now.paths[i],
                               strerror(errno));
            ret = -1;
        }
    }
    for (size_t i = 0; i < n_keys && ret == 0; i++) {
        const Pm__EnrolledKey *have = s_find(now.keys, now.n, keys[i]);
        if (!have || strcmp(have->public_key, keys[i]->public_key) != 0)
            ret = pm_keys_enroll(clients_dir, keys[i]->name, keys[i]->role,
                                 keys[i]->public_key, why);
    }
    s_paths_free(&now);
    s_keys_free(now.keys, now.n);
    return ret;
}
