/* pm_ctlzap.c - see pm_ctlzap.h. */
#include "pm_ctlzap.h"
#include "pm_actor.h"
#include "pm_keys.h"
#include "pm_log.h"
#include "pm_mem.h"
#include "pm_zap.h"

#include <string.h>
#include <sys/stat.h>

typedef struct {
    char *dir;
    struct timespec mtime; /* of DIR when KEYS was read */
    zhashx_t *keys;        /* Z85 key -> s_key_t */
} s_zap_t;

typedef struct {
    zframe_t *meta; /* the metadata frame (name, role) */
    bool agent;     /* role=agent: for the agents' socket only */
} s_key_t;

static void
s_key_destroy(void **item)
{
    s_key_t *k = *item;
    if (!k)
        return;
    zframe_destroy(&k->meta);
    free(k);
    *item = NULL;
}

static void
s_key_one(const char *name, const char *role, const char *key, const char *path,
          void *arg)
{
    (void)path;
    if (strlen(name) > 255 || strlen(role) > 255)
        return;
    s_key_t *k = pm_calloc(1, sizeof *k);
    k->meta = pm_zap_metadata("name", name, "role", role, NULL);
    k->agent = strcmp(role, PM_ROLE_AGENT) == 0;
    zhashx_update(arg, key, k);
}

/* Whether K may connect to the socket of ZAP domain DOMAIN: agents to
 * theirs, every other role to the API, nothing to a socket of another
 * domain. Checked here, not only per request: a key that finishes the
 * handshake on the wrong socket may have requests queued there (4 x 64
 * MiB on the API) before anything looks at its role. */
static bool
s_domain_fits(const s_key_t *k, zframe_t *domain)
{
    if (!domain)
        return false;
    return zframe_streq(domain, k->agent ? PM_CTLZAP_DOMAIN_AGENTS
                                         : PM_CTLZAP_DOMAIN_API);
}

/* Reads DIR again when FORCE or when its mtime changed. */
static void
s_refresh(s_zap_t *self, bool force)
{
    struct stat st;
    if (!self->dir)
        return;
    bool found = stat(self->dir, &st) == 0;
    if (!force && found && st.st_mtim.tv_sec == self->mtime.tv_sec &&
        st.st_mtim.tv_nsec == self->mtime.tv_nsec)
        return;
    if (found)
        self->mtime = st.st_mtim;
    zhashx_purge(self->keys);
    char *why = NULL;
    if (pm_keys_each(self->dir, s_key_one, self->keys, &why) != 0) {
        pm_warn("allowed keys: %s", why);
        free(why);
    }
}

/* Answers one ZAP request: 200 with User-Id the key and its file's
 * metadata, or 400 (not enrolled, or not for this socket). */
static void
s_answer(s_zap_t *self, zsock_t *zap)
{
    pm_zap_request_t req;
    if (!pm_zap_recv(zap, &req))
        return;
    char key[41] = "";
    const s_key_t *k = NULL;
    if (req.curve) {
        zmq_z85_encode(key, zframe_data(req.curve), 32);
        s_refresh(self, false);
        k = zhashx_lookup(self->keys, key);
    }
    const char *no = !k ? "not an enrolled key"
                     : !s_domain_fits(k, req.domain)
                         ? "not a key for this socket"
                         : NULL;
    zframe_t *copy = no ? NULL : zframe_dup(k->meta);
    if (no)
        pm_debug("refused a connection from key %s: %s", key, no);
    pm_zap_reply(zap, &req, no ? NULL : key, &copy, no);
}

/* "CURVE" DIR: the allow-list is DIR, read now; signals when done. */
static bool
s_command(s_zap_t *self, zsock_t *pipe, bool bound)
{
    zmsg_t *msg = pm_actor_recv(pipe);
    char *cmd = msg ? zmsg_popstr(msg) : NULL;
    bool term = !cmd || strcmp(cmd, "$TERM") == 0;
    if (!term && strcmp(cmd, "CURVE") == 0) {
        char *dir = zmsg_popstr(msg);
        if (dir) {
            free(self->dir);
            self->dir = dir;
            s_refresh(self, true);
        }
        zsock_signal(pipe, bound ? 0 : 1);
    }
    free(cmd);
    zmsg_destroy(&msg);
    return !term;
}

void
pm_ctlzap(zsock_t *pipe, void *args)
{
    (void)args;
    s_zap_t self = {.keys = zhashx_new()};
    zhashx_set_destructor(self.keys, s_key_destroy);
    zsock_t *zap = zsock_new(ZMQ_REP);
    zsock_set_linger(zap, 0);
    int rc = zsock_bind(zap, PM_ZAP_ENDPOINT);
    if (rc != 0)
        pm_error("cannot bind the ZAP handler (%s): %s", PM_ZAP_ENDPOINT,
                 zmq_strerror(zmq_errno()));
    zsock_signal(pipe, 0);
    /* the pipe first: a flood of requests cannot starve $TERM, which
     * alone ends the handler (pm_actor.h) */
    zpoller_t *poller = pm_actor_poller(pipe, rc == 0 ? zap : NULL, NULL);
    for (;;) {
        void *which = zpoller_wait(poller, -1);
        if (which == zap)
            s_answer(&self, zap);
        else if (which == pipe ? !s_command(&self, pipe, rc == 0)
                               : pm_actor_ended(poller))
            break;
    }
    zpoller_destroy(&poller);
    if (rc == 0)
        zsock_unbind(zap, PM_ZAP_ENDPOINT);
    zsock_destroy(&zap);
    zhashx_destroy(&self.keys);
    free(self.dir);
}
