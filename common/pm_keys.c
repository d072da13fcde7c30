#include "pm_keys.h"
#include "pm_mem.h"

#include <dirent.h>
#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int
s_mkdir(const char *path, mode_t mode, char **why)
{
    if (mkdir(path, mode) == 0 || errno == EEXIST)
        return 0;
    *why = pm_asprintf("cannot create %s: %s", path, strerror(errno));
    return -1;
}

/* zcert_save writes through stdio; the umask makes the secret file 0600
 * from its first byte, and chmod fixes a file an older run left wider. */
static int
s_save(zcert_t *cert, const char *path, const char *secret_path, char **why)
{
    mode_t old = umask(077);
    int rc = zcert_save(cert, path);
    umask(old);
    if (rc != 0 || chmod(secret_path, 0600) != 0 || chmod(path, 0644) != 0) {
        *why = pm_asprintf("cannot write %s: %s", path, strerror(errno));
        return -1;
    }
    return 0;
}

int
pm_keys_create(const char *keys_dir, const char *name, const char *role,
               const char *enroll_dir, char **why)
{
    if (s_mkdir(keys_dir, 0700, why) != 0)
        return -1;
    char *path = pm_asprintf("%s/%s.cert", keys_dir, name);
    char *secret = pm_asprintf("%s/%s.cert_secret", keys_dir, name);
    zcert_t *cert = zcert_new();
    zcert_set_meta(cert, "name", "%s", name);
    zcert_set_meta(cert, "role", "%s", role);
    int rc = s_save(cert, path, secret, why);
    if (rc == 0 && enroll_dir) {
        /* the same ROLE-NAME.cert naming as pm_keys_enroll, so that
         * pm_keys_withdraw finds it */
        char *pub = pm_asprintf("%s/%s-%s.cert", enroll_dir, role, name);
        rc = s_mkdir(enroll_dir, 0755, why);
        if (rc == 0 && zcert_save_public(cert, pub) != 0) {
            *why = pm_asprintf("cannot write %s: %s", pub, strerror(errno));
            rc = -1;
        }
        free(pub);
    }
    zcert_destroy(&cert);
    free(path);
    free(secret);
    return rc;
}

zcert_t *
pm_keys_load(const char *path, char **why)
{
    if (access(path, R_OK) != 0) {
        *why =
            pm_asprintf("cannot read key file %s: %s", path, strerror(errno));
        return NULL;
    }
    zcert_t *cert = zcert_load(path);
    if (!cert)
        *why = pm_asprintf("%s is not a CURVE certificate", path);
    return cert;
}

/* A standby holding this keypair is a peer controller: the key is
 * enrolled as PM_ROLE_CONTROLLER (again if a copied keypair replaced it). */
static int
s_enroll_self(const char *clients, zcert_t *cert, char **why)
{
    char *path =
        pm_asprintf("%s/%s-controller.cert", clients, PM_ROLE_CONTROLLER);
    zcert_t *now = zcert_load(path);
    bool same =
        now && strcmp(zcert_public_txt(now), zcert_public_txt(cert)) == 0;
    zcert_destroy(&now);
    free(path);
    if (same)
        return 0;
    return pm_keys_enroll(clients, "controller", PM_ROLE_CONTROLLER,
                          zcert_public_txt(cert), why);
}

zcert_t *
pm_keys_controller(const char *state_dir, char **why)
{
    char *keys = pm_asprintf("%s/keys", state_dir);
    char *clients = pm_asprintf("%s/clients", state_dir);
    char *path = pm_asprintf("%s/controller.cert", keys);
    zcert_t *cert = NULL;
    if (s_mkdir(state_dir, 0700, why) != 0)
        goto out;
    if (access(path, F_OK) != 0) {
        if (pm_keys_create(keys, "controller", "controller", NULL, why) != 0 ||
            pm_keys_create(keys, "admin", PM_ROLE_ADMIN, clients, why) != 0)
            goto out;
    }
    if (s_mkdir(clients, 0755, why) != 0)
        goto out;
    /* zcert_load picks up the _secret file when present */
    cert = pm_keys_load(path, why);
    if (cert && s_enroll_self(clients, cert, why) != 0)
        zcert_destroy(&cert);
out:
    free(keys);
    free(clients);
    free(path);
    return cert;
}

bool
pm_keys_is_public(const char *key)
{
    static const char z85[] =
        "0123456789abcdefghijklmnopqrstuvwxyz"
        "ABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#";
    uint8_t raw[32];
    return key && strlen(key) == 40 && strspn(key, z85) == 40 &&
           zmq_z85_decode(raw, key) != NULL;
}

int
pm_keys_enroll(const char *clients_dir, const char *name, const char *role,
               const char *public_txt, char **why)
{
    uint8_t key[32];
    if (!pm_keys_is_public(public_txt) || !zmq_z85_decode(key, public_txt)) {
        *why = pm_asprintf("'%s' is not a CURVE public key (40 Z85 "
                           "characters)",
                           public_txt);
        return -1;
    }
    uint8_t no_secret[32] = {0};
    zcert_t *cert = zcert_new_from(key, no_secret);
    zcert_set_meta(cert, "name", "%s", name);
    zcert_set_meta(cert, "role", "%s", role);
    char *path = pm_asprintf("%s/%s-%s.cert", clients_dir, role, name);
    char *tmp = pm_asprintf("%s.tmp", path);
    /* written aside and renamed, so zauth never reads half a file */
    int rc =
        zcert_save_public(cert, tmp) == 0 && rename(tmp, path) == 0 ? 0 : -1;
    if (rc != 0) {
        *why = pm_asprintf("cannot write %s: %s", path, strerror(errno));
        unlink(tmp);
    }
    zcert_destroy(&cert);
    free(path);
    free(tmp);
    return rc;
}

int
pm_keys_withdraw(const char *clients_dir, const char *name, const char *role,
                 char **why)
{
    char *path = pm_asprintf("%s/%s-%s.cert", clients_dir, role, name);
    int rc = unlink(path);
    if (rc != 0)
        *why = pm_asprintf("%s %s is not enrolled (%s)", role, name,
                           strerror(errno));
    free(path);
    return rc == 0 ? 0 : -1;
}

int
pm_keys_each(const char *clients_dir, pm_keys_each_fn *fn, void *arg,
             char **why)
{
    DIR *dir = opendir(clients_dir);
    if (!dir) {
        *why = pm_asprintf("cannot read %s: %s", clients_dir, strerror(errno));
        return -1;
    }
    for (struct dirent *e; (e = readdir(dir));) {
        size_t len = strlen(e->d_name);
        if (len < 6 || strcmp(e->d_name + len - 5, ".cert") != 0)
            continue;
        char *path = pm_asprintf("%s/%s", clients_dir, e->d_name);
        zcert_t *cert = zcert_load(path);
        const char *role = cert ? zcert_meta(cert, "role") : NULL;
        const char *name = cert ? zcert_meta(cert, "name") : NULL;
        if (role && name)
            fn(name, role, zcert_public_txt(cert), path, arg);
        zcert_destroy(&cert);
        free(path);
    }
    closedir(dir);
    return 0;
}

bool
pm_keys_role_known(const char *role)
{
    static const char *const known[] = {PM_ROLE_ADMIN, PM_ROLE_AGENT,
                                        PM_ROLE_CONTROLLER, PM_ROLE_WEB};
    for (size_t i = 0; role && i < sizeof known / sizeof known[0]; i++)
        if (strcmp(role, known[i]) == 0)
            return true;
    return false;
}
