/* pm_ctlzap.c - see pm_ctlzap.h. */
#include "pm_ctlzap.h"
#include "pm_keys.h"
#include "pm_log.h"
#include "pm_mem.h"

#include <string.h>
#include <sys/stat.h>

#define S_ZAP_ENDPOINT "inproc://zeromq.zap.01"

typedef struct {
    char *dir;
    struct timespec mtime; /* of DIR when KEYS was read */
    zhashx_t *keys;        /* Z85 key -> zframe_t *, the metadata frame */
} s_zap_t;

static void
s_frame_destroy(void **item)
{
    zframe_destroy((zframe_t **)item);
}

/* Appends the ZMTP property NAME = VALUE to BUF. */
static void
s_property(zchunk_t *buf, const char *name, const char *value)
{
    size_t nlen = strlen(name), vlen = strlen(value);
    uint8_t n = (uint8_t)nlen,
            v[4] = {(uint8_t)(vlen >> 24), (uint8_t)(vlen >> 16),
                    (uint8_t)(vlen >> 8), (uint8_t)vlen};
    zchunk_extend(buf, &n, 1);
    zchunk_extend(buf, name, nlen);
    zchunk_extend(buf, v, 4);
    zchunk_extend(buf, value, vlen);
}

static void
s_key_one(const char *name, const char *role, const char *key, const char *path,
          void *arg)
{
    (void)path;
    if (strlen(name) > 255 || strlen(role) > 255)
        return;
    zchunk_t *buf = zchunk_new(NULL, 0);
    s_property(buf, "name", name);
    s_property(buf, "role", role);
    zhashx_update(arg, key, zframe_new(zchunk_data(buf), zchunk_size(buf)));
    zchunk_destroy(&buf);
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

/* Answers one ZAP request; the reply echoes its request id. */
static void
s_answer(s_zap_t *self, zsock_t *zap)
{
    zmsg_t *req = zmsg_recv(zap);
    if (!req)
        return;
    zframe_t *version = zmsg_first(req), *id = zmsg_next(req);
    zmsg_next(req); /* domain */
    zmsg_next(req); /* address */
    zmsg_next(req); /* routing id */
    zframe_t *mech = zmsg_next(req), *cred = zmsg_next(req);
    char key[41] = "";
    zframe_t *meta = NULL;
    if (cred && zframe_streq(version, "1.0") && zframe_streq(mech, "CURVE") &&
        zframe_size(cred) == 32) {
        zmq_z85_encode(key, zframe_data(cred), 32);
        s_refresh(self, false);
        meta = zhashx_lookup(self->keys, key);
    }
    zmsg_t *rep = zmsg_new();
    zmsg_addstr(rep, "1.0");
    zframe_t *f = id ? zframe_dup(id) : zframe_new_empty();
    zmsg_append(rep, &f);
    zmsg_addstr(rep, meta ? "200" : "400");
    zmsg_addstr(rep, meta ? "OK" : "not an enrolled key");
    zmsg_addstr(rep, meta ? key : "");
    f = meta ? zframe_dup(meta) : zframe_new_empty();
    zmsg_append(rep, &f);
    if (!meta)
        pm_debug("refused a connection from key %s", key);
    if (zmsg_send(&rep, zap) != 0)
        zmsg_destroy(&rep);
    zmsg_destroy(&req);
}

/* "CURVE" DIR: the allow-list is DIR, read now; signals when done. */
static bool
s_command(s_zap_t *self, zsock_t *pipe, bool bound)
{
    zmsg_t *msg = zmsg_recv(pipe);
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
    zhashx_set_destructor(self.keys, s_frame_destroy);
    zsock_t *zap = zsock_new(ZMQ_REP);
    zsock_set_linger(zap, 0);
    int rc = zsock_bind(zap, S_ZAP_ENDPOINT);
    if (rc != 0)
        pm_error("cannot bind the ZAP handler (%s): %s", S_ZAP_ENDPOINT,
                 zmq_strerror(zmq_errno()));
    zsock_signal(pipe, 0);
    /* the pipe first: a flood of requests cannot starve $TERM */
    zpoller_t *poller = zpoller_new(pipe, rc == 0 ? zap : NULL, NULL);
    for (;;) {
        void *which = zpoller_wait(poller, -1);
        if (which == zap)
            s_answer(&self, zap);
        else if (which != pipe || !s_command(&self, pipe, rc == 0))
            break; /* $TERM, or interrupted */
    }
    zpoller_destroy(&poller);
    if (rc == 0)
        zsock_unbind(zap, S_ZAP_ENDPOINT);
    zsock_destroy(&zap);
    zhashx_destroy(&self.keys);
    free(self.dir);
}
