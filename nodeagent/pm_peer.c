/* pm_peer.c - the service: agents serve verified ClamAV database files to
 * enrolled peers (the client calls are in pm_peer_client.c). */
#include "pm_peer.h"
#include "pm_actor.h"
#include "pm_check.h"
#include "pm_sigcdiff.h"
#include "pm_file.h"
#include "pm_keys.h"
#include "pm_peerconn.h"
#include "pm_peerzap.h"
#include "pm_log.h"
#include "pm_mem.h"
#include "pm_text.h"
#include "pm_wire.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define S_WARN_EVERY_MS 60000 /* per member, for dropped messages */

/* A database file as pm_peer_hold saw it hold a version: served at that
 * version only while DBDIR/FILE is still this very file. */
typedef struct {
    char file[PM_DATABASE_NAME_MAX + 5]; /* NAME.cvd or NAME.cld */
    uint32_t version;
    dev_t dev;
    ino_t ino;
} s_held_file_t;

/* The service actor's state; owned by the actor thread once started. */
typedef struct {
    char *name, *dbdir, *endpoint;
    zsock_t *pipe, *router;
    pm_peerzap_t *zap;    /* this service's keys, for the process's handler */
    pm_peerconn_t *conns; /* its connections, counted */
    zhashx_t *members;    /* Z85 public key -> member name */
    zhashx_t *warned;     /* member name -> int64_t: next warning allowed */
    uint8_t *hold;        /* the packed VERSIONS_REPLY, or NULL before HOLD */
    size_t hold_len;
    s_held_file_t *files; /* the files that hold those versions (HOLD) */
    size_t n_files;
    atomic_size_t *gossip_queued; /* the owner's, or NULL */
    bool stop;
} s_peer_t;

/* ---- Keys --------------------------------------------------------------- */

static void
s_free_item(void **item)
{
    free(*item);
    *item = NULL;
}

static zhashx_t *
s_table_new(void)
{
    zhashx_t *t = zhashx_new();
    zhashx_set_destructor(t, s_free_item);
    return t;
}

/* ---- Service: answering peers ------------------------------------------ */

/* Notes a dropped message from member NAME, at most once a minute each:
 * a hostile member must not be able to fill the log. */
static void
s_ignore(s_peer_t *self, const char *name, const char *what)
{
    int64_t now = zclock_mono();
    int64_t *next = zhashx_lookup(self->warned, name);
    if (next && now < *next)
        return;
    if (!next) {
        next = pm_malloc(sizeof *next);
        zhashx_insert(self->warned, name, next);
    }
    *next = now + S_WARN_EVERY_MS;
    char *safe = pm_text_escape(what, 300);
    pm_warn("peer %s: ignored a message from %s: %s (more from it are "
            "ignored quietly for a minute)",
            self->name, name, safe);
    free(safe);
}

/* Sends MSG to the peer with routing id ID. A ROUTER drops what a full
 * peer queue cannot take instead of waiting: the actor never blocks. */
static void
s_reply(s_peer_t *self, zframe_t *id, const Pm__PeerMessage *msg)
{
    size_t len = 0;
    uint8_t *buf = pm_wire_pack(&msg->base, &len);
    void *h = zsock_resolve(self->router);
    if (zmq_send(h, zframe_data(id), zframe_size(id),
                 ZMQ_SNDMORE | ZMQ_DONTWAIT) >= 0)
        zmq_send(h, buf, len, ZMQ_DONTWAIT);
    free(buf);
}

static void
s_reply_error(s_peer_t *self, zframe_t *id, const Pm__PeerMessage *req,
              const char *error)
{
    Pm__PeerMessage out = PM__PEER_MESSAGE__INIT;
    out.kind = PM__PEER_MESSAGE__KIND__ERROR;
    out.file = req->file;
    out.version = req->version;
    out.offset = req->offset;
    out.seq = req->seq;
    out.error = (char *)error;
    s_reply(self, id, &out);
}

/* Tells the owner member NAME pushed BODY. The pipe never blocks the
 * actor: once the first part is queued, libzmq takes the rest. */
static void
s_gossip(s_peer_t *self, const char *name, zframe_t *body)
{
    void *h = zsock_resolve(self->pipe);
    size_t size = zframe_size(body);
    atomic_size_t *q = self->gossip_queued;
    if (q && atomic_load(q) + size > PM_PEER_GOSSIP_QUEUED) {
        s_ignore(self, name, "the owner is busy: gossip dropped");
        return;
    }
    if (zmq_send(h, "GOSSIP", 6, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0) {
        s_ignore(self, name, "the owner is not reading: gossip dropped");
        return;
    }
    if (q)
        atomic_fetch_add(q, size);
    zmq_send(h, name, strlen(name), ZMQ_SNDMORE);
    zmq_send(h, zframe_data(body), size, 0);
}

static void
s_on_versions(s_peer_t *self, zframe_t *id, const char *name, zframe_t *body,
              const Pm__PeerMessage *req)
{
    if (self->hold) {
        /* the held reply packed once, and the asker's seq after it: a
         * protobuf parser merges a field appended to a message */
        Pm__PeerMessage tail = PM__PEER_MESSAGE__INIT;
        tail.seq = req->seq;
        uint8_t seq[16];
        size_t seq_len = pm__peer_message__pack(&tail, seq);
        zmq_msg_t reply;
        zmq_msg_init_size(&reply, self->hold_len + seq_len);
        memcpy(zmq_msg_data(&reply), self->hold, self->hold_len);
        memcpy((uint8_t *)zmq_msg_data(&reply) + self->hold_len, seq, seq_len);
        void *h = zsock_resolve(self->router);
        if (zmq_send(h, zframe_data(id), zframe_size(id),
                     ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0 ||
            zmq_msg_send(&reply, h, ZMQ_DONTWAIT) < 0)
            zmq_msg_close(&reply);
    } else {
        s_reply_error(self, id, req, "no versions to offer yet");
    }
    s_gossip(self, name, body);
}

/* The version the open file ST (DBDIR/FILE) holds, as the owner said in
 * its last HOLD: 0 when FILE is not the file it saw then (replaced since,
 * or never held). No header is parsed here: the root agent leaves
 * libclamav to the helpers, and the owner verified the file before it
 * said. */
static unsigned
s_held_version(const s_peer_t *self, const char *file, const struct stat *st)
{
    for (size_t i = 0; i < self->n_files; i++)
        if (strcmp(self->files[i].file, file) == 0)
            return self->files[i].dev == st->st_dev &&
                           self->files[i].ino == st->st_ino
                       ? self->files[i].version
                       : 0;
    return 0;
}

/* NAME-N.cdiff (pm_wire let through only that and NAME.cvd/.cld). */
static bool
s_is_cdiff(const char *file)
{
    size_t n = strlen(file);
    return n > 6 && strcmp(file + n - 6, ".cdiff") == 0;
}

/* Fills OUT with the chunk REQ asks for from the open file FD; NULL, or
 * the reason it cannot (caller frees). *DATA is OUT's buffer. */
static char *
s_read_chunk(const s_peer_t *self, int fd, const Pm__PeerMessage *req,
             Pm__PeerMessage *out, uint8_t **data)
{
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))
        return pm_asprintf("%s: not a regular file", req->file);
    uint64_t size = (uint64_t)st.st_size;
    bool cdiff = s_is_cdiff(req->file);
    if (size > (cdiff ? PM_WIRE_CDIFF_MAX : PM_WIRE_DATABASE_MAX))
        return pm_asprintf("%s: too large to share", req->file);
    unsigned held = cdiff ? req->version : s_held_version(self, req->file, &st);
    if (held != req->version)
        return pm_asprintf("%s: version %u is held, not %" PRIu32, req->file,
                           held, req->version);
    if (req->offset >= size)
        return pm_asprintf("%s: offset %" PRIu64 " is past its %" PRIu64
                           " bytes",
                           req->file, req->offset, size);
    size_t max = req->length && req->length < PM_WIRE_CHUNK_MAX
                     ? req->length
                     : PM_WIRE_CHUNK_MAX;
    size_t n = size - req->offset < max ? (size_t)(size - req->offset) : max;
    *data = pm_malloc(n);
    if (!pm_file_pread_all(fd, *data, n, req->offset))
        return pm_asprintf("%s: cannot be read", req->file);
    out->data.data = *data;
    out->data.len = n;
    out->total = size;
    return NULL;
}

/* Serves one GET from a freshly opened descriptor: a file replaced by
 * rename since the last GET is the new file, whole, and says so. */
static void
s_on_get(s_peer_t *self, zframe_t *id, const Pm__PeerMessage *req)
{
    char *path =
        s_is_cdiff(req->file)
            ? pm_asprintf("%s/%s/%s", self->dbdir, PM_SIGCDIFF_KEPT, req->file)
            : pm_asprintf("%s/%s", self->dbdir, req->file);
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    free(path);
    Pm__PeerMessage out = PM__PEER_MESSAGE__INIT;
    uint8_t *data = NULL;
    char *err = fd < 0 ? pm_asprintf("%s: not held", req->file)
                       : s_read_chunk(self, fd, req, &out, &data);
    if (fd >= 0)
        close(fd);
    if (err) {
        pm_debug("peer %s: GET %s: %s", self->name, req->file, err);
        s_reply_error(self, id, req, err);
    } else {
        out.kind = PM__PEER_MESSAGE__KIND__CHUNK;
        out.file = req->file;
        out.version = req->version;
        out.offset = req->offset;
        s_reply(self, id, &out);
    }
    free(err);
    free(data);
}

/* The member a message came from, as ZAP named it, if it still is one:
 * a member removed since it connected is not answered. */
static const char *
s_sender(s_peer_t *self, zframe_t *body)
{
    const char *name = zframe_meta(body, "User-Id");
    const char *key = zframe_meta(body, PM_PEERZAP_KEY_PROPERTY);
    if (!name || !key)
        return NULL;
    const char *now = zhashx_lookup(self->members, key);
    return now && strcmp(now, name) == 0 ? name : NULL;
}

/* One message from a peer: [routing id][PeerMessage]. */
static void
s_on_router(s_peer_t *self)
{
    zmsg_t *msg = zmsg_recv(self->router);
    if (!msg)
        return;
    zframe_t *id = zmsg_first(msg), *body = zmsg_next(msg);
    const char *name = body ? s_sender(self, body) : NULL;
    Pm__PeerMessage *req = NULL;
    char *why = NULL;
    if (!name)
        pm_debug("peer %s: message from a former member", self->name);
    else if (!pm_peerconn_speaks(self->conns, body,
                                 zframe_meta(body, PM_PEERZAP_KEY_PROPERTY)))
        pm_debug("peer %s: message from %s on a connection being closed",
                 self->name, name);
    else if (zmsg_size(msg) != 2)
        s_ignore(self, name, "not one frame");
    else if (pm_wire_unpack_peer_message(zframe_data(body), zframe_size(body),
                                         &req, &why) != PM_OK)
        s_ignore(self, name, why);
    else if (req->kind == PM__PEER_MESSAGE__KIND__VERSIONS)
        s_on_versions(self, id, name, body, req);
    else if (req->kind == PM__PEER_MESSAGE__KIND__GET)
        s_on_get(self, id, req);
    else
        s_ignore(self, name, "neither VERSIONS nor GET");
    if (req)
        pm__peer_message__free_unpacked(req, NULL);
    free(why);
    zmsg_destroy(&msg);
}

/* ---- Service: the owner's commands ------------------------------------- */

static void
s_cmd_endpoint(s_peer_t *self, zmsg_t *msg)
{
    (void)msg;
    zstr_send(self->pipe, self->endpoint);
}

/* MEMBERS: a new table of keys ZAP lets in, replacing the old one whole. */
static void
s_cmd_members(s_peer_t *self, zmsg_t *msg)
{
    zframe_t *f = zmsg_first(msg);
    Pm__Publication *pub = NULL;
    char *why = NULL;
    if (!f ||
        pm_wire_unpack_publication(zframe_data(f), zframe_size(f), &pub,
                                   &why) != PM_OK ||
        pub->kind != PM__PUBLICATION__KIND__MEMBERS) {
        pm_warn("peer %s: MEMBERS refused: %s", self->name,
                why ? why : "not a MEMBERS publication");
        free(why);
        if (pub)
            pm__publication__free_unpacked(pub, NULL);
        return;
    }
    zhashx_t *members = s_table_new();
    for (size_t i = 0; i < pub->n_members; i++) {
        const Pm__Member *m = pub->members[i];
        if (pm_keys_is_public(m->public_key))
            zhashx_update(members, m->public_key, pm_strdup(m->name));
        else
            pm_warn("peer %s: member %s has no valid key", self->name, m->name);
    }
    pm_peerzap_admit(self->zap, members);
    pm_peerconn_set_members(self->conns, zhashx_size(members));
    zhashx_destroy(&self->members);
    self->members = members;
    pm__publication__free_unpacked(pub, NULL);
}

/* HOLD: what this node holds, kept packed as the VERSIONS_REPLY. */
static void
s_cmd_hold(s_peer_t *self, zmsg_t *msg)
{
    zframe_t *f = zmsg_first(msg);
    Pm__PeerMessage *hold = NULL;
    char *why = NULL;
    if (!f ||
        pm_wire_unpack_peer_message(zframe_data(f), zframe_size(f), &hold,
                                    &why) != PM_OK ||
        hold->kind != PM__PEER_MESSAGE__KIND__VERSIONS) {
        pm_warn("peer %s: HOLD refused: %s", self->name,
                why ? why : "not a VERSIONS message");
        free(why);
        if (hold)
            pm__peer_message__free_unpacked(hold, NULL);
        return;
    }
    hold->kind = PM__PEER_MESSAGE__KIND__VERSIONS_REPLY;
    free(self->hold);
    self->hold = pm_wire_pack(&hold->base, &self->hold_len);
    pm__peer_message__free_unpacked(hold, NULL);
    /* from pm_peer_hold in this process: an array of s_held_file_t */
    zframe_t *files = zmsg_next(msg);
    size_t size = files ? zframe_size(files) : 0;
    free(self->files);
    self->n_files = size % sizeof *self->files ? 0 : size / sizeof *self->files;
    self->files = pm_calloc(self->n_files + 1, sizeof *self->files);
    if (self->n_files)
        memcpy(self->files, zframe_data(files), size);
}

static void
s_cmd_term(s_peer_t *self, zmsg_t *msg)
{
    (void)msg;
    self->stop = true;
}

static const struct {
    const char *name;
    void (*fn)(s_peer_t *self, zmsg_t *msg); /* MSG: the frames after it */
} s_commands[] = {
    {"ENDPOINT", s_cmd_endpoint},
    {"MEMBERS", s_cmd_members},
    {"HOLD", s_cmd_hold},
    {"$TERM", s_cmd_term},
};

static void
s_on_pipe(s_peer_t *self)
{
    zmsg_t *msg = pm_actor_recv(self->pipe);
    if (!msg) {
        self->stop = true; /* the context is ending */
        return;
    }
    char *cmd = zmsg_popstr(msg);
    size_t i = 0, n = sizeof s_commands / sizeof s_commands[0];
    while (i < n && (!cmd || strcmp(cmd, s_commands[i].name) != 0))
        i++;
    if (i < n)
        s_commands[i].fn(self, msg);
    else
        pm_warn("peer %s: unknown command %s", self->name, cmd ? cmd : "");
    free(cmd);
    zmsg_destroy(&msg);
}

void
pm_peer_hold(zactor_t *self, const char *dbdir, const Pm__PeerMessage *versions,
             char *const *files)
{
    s_held_file_t *held = pm_calloc(versions->n_databases + 1, sizeof *held);
    size_t n = 0;
    for (size_t i = 0; i < versions->n_databases; i++) {
        struct stat st;
        char *path = files[i] ? pm_asprintf("%s/%s", dbdir, files[i]) : NULL;
        if (path && strlen(files[i]) < sizeof held[n].file &&
            lstat(path, &st) == 0 && S_ISREG(st.st_mode)) {
            strcpy(held[n].file, files[i]);
            held[n].version = versions->databases[i]->version;
            held[n].dev = st.st_dev;
            held[n].ino = st.st_ino;
            n++;
        }
        free(path);
    }
    size_t len = 0;
    uint8_t *buf = pm_wire_pack(&versions->base, &len);
    zmsg_t *msg = zmsg_new();
    zmsg_addstr(msg, "HOLD");
    zmsg_addmem(msg, buf, len);
    zmsg_addmem(msg, held, n * sizeof *held);
    zmsg_send(&msg, self);
    free(buf);
    free(held);
}

/* ---- Service: life cycle ------------------------------------------------ */

static void
s_destroy(s_peer_t **self_p)
{
    s_peer_t *self = *self_p;
    if (!self)
        return;
    pm_peerconn_destroy(&self->conns); /* before the socket it watches */
    zsock_destroy(&self->router);
    pm_peerzap_destroy(&self->zap); /* after the socket it admits for */
    zhashx_destroy(&self->members);
    zhashx_destroy(&self->warned);
    free(self->hold);
    free(self->files);
    free(self->name);
    free(self->dbdir);
    free(self->endpoint);
    free(self);
    *self_p = NULL;
}

static bool
s_bind_router(s_peer_t *self, const pm_peer_config_t *cfg)
{
    zcert_t *cert = cfg->cert;
    const char *bind = cfg->bind;
    self->router = zsock_new(ZMQ_ROUTER);
    zcert_apply(cert, self->router);
    zsock_set_curve_server(self->router, 1);
    zsock_set_zap_domain(self->router, pm_peerzap_domain(self->zap));
    zsock_set_maxmsgsize(self->router, PM_WIRE_PEER_MAX);
    zsock_set_sndhwm(self->router, PM_PEER_HWM);
    zsock_set_rcvhwm(self->router, PM_PEER_HWM);
    zsock_set_linger(self->router, 0);
    /* a peer gone without a word (power cut, a firewall dropping an idle
     * link) is noticed: its connection must not count for it for good
     * (pm_peerconn.h); libzmq answers the PINGs, not the agent */
    zsock_set_heartbeat_ivl(self->router, PM_PEER_HEARTBEAT_MS);
    zsock_set_heartbeat_timeout(self->router, 3 * PM_PEER_HEARTBEAT_MS);
    /* watched before it is bound: no connection goes uncounted */
    self->conns = pm_peerconn_new(self->router, self->name, cfg->conns_max);
    if (!self->conns)
        return false;
    if (zsock_bind(self->router, "%s", bind) < 0) {
        pm_error("peer %s: cannot bind %s: %s", self->name, bind,
                 zmq_strerror(zmq_errno()));
        return false;
    }
    self->endpoint = zsock_last_endpoint(self->router);
    return true;
}

/* Builds the service in the caller's thread, so that a failure to bind
 * reaches pm_peer_new; the actor thread takes the sockets over. The ZAP
 * handler binds first: a handshake before it would go unchecked. */
static s_peer_t *
s_new(const pm_peer_config_t *cfg)
{
    s_peer_t *self = pm_calloc(1, sizeof *self);
    self->name = pm_strdup(cfg->name ? cfg->name : "");
    self->dbdir = pm_strdup(cfg->dbdir);
    self->gossip_queued = cfg->gossip_queued;
    self->members = s_table_new();
    self->warned = s_table_new();
    self->zap = pm_peerzap_new(self->name);
    if (!self->zap) {
        s_destroy(&self);
        return NULL;
    }
    if (!s_bind_router(self, cfg))
        s_destroy(&self);
    return self;
}

static void
s_actor(zsock_t *pipe, void *args)
{
    s_peer_t *self = args;
    self->pipe = pipe;
    zsock_signal(pipe, 0);
    /* the pipe first: a flood of requests cannot starve $TERM; a signal
     * does not end the service, its owner's $TERM does (pm_actor.h) */
    zsock_t *events = pm_peerconn_events(self->conns);
    zpoller_t *poller = pm_actor_poller(pipe, events, self->router, NULL);
    while (!self->stop) {
        void *which = zpoller_wait(poller, -1);
        if (which == pipe)
            s_on_pipe(self);
        else if (which == events)
            pm_peerconn_on_events(self->conns);
        else if (which == self->router)
            s_on_router(self);
        else if (pm_actor_ended(poller))
            break;
    }
    zpoller_destroy(&poller);
    s_destroy(&self);
}

zactor_t *
pm_peer_new(const pm_peer_config_t *cfg)
{
    if (!cfg || !cfg->cert || !cfg->bind || !cfg->dbdir) {
        pm_error("peer: no certificate, endpoint or database directory");
        return NULL;
    }
    s_peer_t *self = s_new(cfg);
    return self ? zactor_new(s_actor, self) : NULL;
}
