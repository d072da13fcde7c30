/* pm_ctld_access.c - who may use the controller's API, and for what: a
 * client's key must be enrolled in clients/ with a client role (admin,
 * web, controller) at the moment of each request, not only at its
 * handshake, and each role may ask only its own operations. */
#include "pm_ctld_private.h"
#include "pm_keys.h"
#include "pm_log.h"
#include "pm_mem.h"

#include <string.h>
#include <sys/stat.h>

/* Least time between two reads of clients/ that its mtime did not ask for
 * (a key not known, or a file that no longer says what it said). */
#define S_ADMINS_REREAD_MS 1000

static void
s_admin_one(const char *name, const char *role, const char *key,
            const char *path, void *arg)
{
    (void)name;
    if (strcmp(role, PM_ROLE_ADMIN) == 0 ||
        strcmp(role, PM_ROLE_CONTROLLER) == 0 || strcmp(role, PM_ROLE_WEB) == 0)
        zhashx_update(arg, key, pm_strdup(path));
}

/* Reads which keys clients/ enrols as admins: when its mtime changed, or
 * when FORCE and the last read is S_ADMINS_REREAD_MS old (so that a key
 * that is not enrolled cannot make us read the directory at every
 * request). Returns whether it did. */
static bool
s_admins_read(pm_ctld_t *self, bool force)
{
    struct stat st;
    int64_t now = zclock_mono();
    bool found = stat(self->clients_dir, &st) == 0;
    bool changed = !found || st.st_mtim.tv_sec != self->admins_mtime.tv_sec ||
                   st.st_mtim.tv_nsec != self->admins_mtime.tv_nsec;
    if (!changed && !(force && now - self->admins_read >= S_ADMINS_REREAD_MS))
        return false;
    if (found)
        self->admins_mtime = st.st_mtim;
    self->admins_read = now;
    zhashx_purge(self->admins);
    char *why = NULL;
    if (pm_keys_each(self->clients_dir, s_admin_one, self->admins, &why)) {
        pm_warn("admin keys: %s", why);
        free(why);
    }
    return true;
}

/* Whether the certificate file PATH enrols KEY with ROLE; if so, sets
 * *name (caller frees) to the name it gives. */
static bool
s_admin_file(const char *path, const char *key, const char *want, char **name)
{
    zcert_t *cert = zcert_load(path);
    const char *role = cert ? zcert_meta(cert, "role") : NULL;
    const char *meta = cert ? zcert_meta(cert, "name") : NULL;
    bool ok = role && meta && strcmp(role, want) == 0 &&
              strcmp(zcert_public_txt(cert), key) == 0;
    if (ok)
        *name = pm_strdup(meta);
    zcert_destroy(&cert);
    return ok;
}

/* Whether KEY is enrolled with ROLE (admin or controller) in clients/
 * now: checked at every request, not once per connection, so that a key
 * removed or replaced is refused at its next request on a connection made
 * before. The list of such keys is read again when the directory changed;
 * the one file that enrols KEY is read every time, since an mtime may be
 * too coarse to show a change. Sets *name (caller frees) to the name it is
 * enrolled as. */
static bool
s_admin_now(pm_ctld_t *self, const char *key, const char *role, char **name)
{
    bool reread = s_admins_read(self, false);
    for (;;) {
        const char *path = zhashx_lookup(self->admins, key);
        if (path && s_admin_file(path, key, role, name))
            return true;
        if (reread || !s_admins_read(self, true))
            return false;
        reread = true; /* enrolled a moment ago? once more */
    }
}

/* Only admin keys, and peer controllers' for PING and REPLICATE, may use
 * this API: an agent's key is enrolled too (same allow-list, role=agent)
 * but must never push policy, nor make us decode a request. The role
 * zauth saw at the handshake refuses agents cheaply; the key must still be
 * enrolled now. Returns the role (admin or controller), NULL when
 * refused; sets *name (caller frees). */
const char *
pm_ctld_client_role(pm_ctld_t *self, zframe_t *frame, char **name)
{
    const char *role = zframe_meta(frame, "role");
    const char *key = zframe_meta(frame, "User-Id");
    const char *want = !role                              ? NULL
                       : strcmp(role, PM_ROLE_ADMIN) == 0 ? PM_ROLE_ADMIN
                       : strcmp(role, PM_ROLE_CONTROLLER) == 0
                           ? PM_ROLE_CONTROLLER
                       : strcmp(role, PM_ROLE_WEB) == 0 ? PM_ROLE_WEB
                                                        : NULL;
    if (!want || !key)
        return NULL;
    if (s_admin_now(self, key, want, name))
        return want;
    pm_warn("request refused: key %s is no longer enrolled as %s in %s", key,
            want, self->clients_dir);
    return NULL;
}

/* What the web console may ask: read and change the policy, read the
 * nodes and the rollout. */
static bool
s_web_op(Pm__Request__Op op)
{
    switch (op) {
    case PM__REQUEST__OP__PUSH:
    case PM__REQUEST__OP__SET:
    case PM__REQUEST__OP__SHOW:
    case PM__REQUEST__OP__HISTORY:
    case PM__REQUEST__OP__DIFF:
    case PM__REQUEST__OP__ROLLBACK:
    case PM__REQUEST__OP__PING:
    case PM__REQUEST__OP__NODES:
    case PM__REQUEST__OP__ROLLOUT_STATUS:
        return true;
    default:
        return false;
    }
}

/* A peer controller's key follows and asks who is primary, nothing else;
 * an admin's never follows (REPLICATE carries the DKIM secrets); the web
 * console's reads and changes the policy. */
const char *
pm_ctld_op_refused(const char *role, const Pm__Request *req)
{
    if (strcmp(role, PM_ROLE_WEB) == 0 && !s_web_op(req->op))
        return "the web console's key may only read and change the policy";
    bool peer_op = req->op == PM__REQUEST__OP__PING ||
                   req->op == PM__REQUEST__OP__REPLICATE;
    if (strcmp(role, PM_ROLE_CONTROLLER) == 0 && !peer_op)
        return "a peer controller's key may only follow and ping";
    if (strcmp(role, PM_ROLE_ADMIN) == 0 &&
        req->op == PM__REQUEST__OP__REPLICATE)
        return "only a peer controller may replicate";
    return NULL;
}
