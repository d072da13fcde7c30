/* pm_peerconn.c - see pm_peerconn.h. */
#include "pm_peerconn.h"
#include "pm_clock.h"
#include "pm_log.h"
#include "pm_mem.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>

#define S_WARN_EVERY_MS 60000

/* One connection the ROUTER accepted and has not said gone yet. */
typedef struct {
    int fd;
    char key[41]; /* the member's key once it spoke, else "" */
    int64_t accepted_ms;
    struct sockaddr_storage local, peer; /* what FD joined when accepted */
    socklen_t local_len, peer_len;       /* 0: unknown (never closed) */
    bool closing;
} s_conn_t;

struct pm_peerconn_t {
    char *name;
    zsock_t *router; /* not owned */
    zsock_t *events; /* the monitor's PAIR */
    s_conn_t *conns;
    size_t n, alloc;
    size_t max;      /* as configured; 0: from members */
    size_t members;  /* admitted now */
    size_t fd_bound; /* a quarter of the descriptor limit */
    int64_t next_warn_ms;
};

/* The most connections held now. */
static size_t
s_max(const pm_peerconn_t *self)
{
    size_t max =
        self->max ? self->max : 2 * self->members + PM_PEER_CONNS_SPARE;
    return max < self->fd_bound ? max : self->fd_bound;
}

static s_conn_t *
s_find(pm_peerconn_t *self, int fd)
{
    for (size_t i = 0; i < self->n; i++)
        if (self->conns[i].fd == fd)
            return &self->conns[i];
    return NULL;
}

static void
s_forget(pm_peerconn_t *self, s_conn_t *c)
{
    *c = self->conns[--self->n];
}

/* True when FD still joins the addresses C recorded: libzmq has not
 * closed it and given the number to another descriptor since. */
static bool
s_still(const s_conn_t *c)
{
    struct sockaddr_storage local, peer;
    socklen_t local_len = sizeof local, peer_len = sizeof peer;
    return c->local_len && c->peer_len &&
           getsockname(c->fd, (struct sockaddr *)&local, &local_len) == 0 &&
           getpeername(c->fd, (struct sockaddr *)&peer, &peer_len) == 0 &&
           local_len == c->local_len && peer_len == c->peer_len &&
           memcmp(&local, &c->local, local_len) == 0 &&
           memcmp(&peer, &c->peer, peer_len) == 0;
}

/* Ends connection C: libzmq reads the end of the stream and drops it (the
 * DISCONNECTED event then forgets it). */
static void
s_close(s_conn_t *c)
{
    if (!c->closing && s_still(c))
        shutdown(c->fd, SHUT_RDWR);
    c->closing = true;
}

/* Says, at most once a minute, that the service is full. */
static void
s_warn_full(pm_peerconn_t *self, size_t silent, bool refused)
{
    int64_t now = pm_clock_ms();
    if (now < self->next_warn_ms)
        return;
    self->next_warn_ms = now + S_WARN_EVERY_MS;
    pm_warn("peer %s: %zu connections open, the most it holds: closed %zu "
            "that said nothing for %d s%s (more are handled quietly for a "
            "minute)",
            self->name, s_max(self), silent, PM_PEER_SILENT_MS / 1000,
            refused ? ", and a new one" : "");
}

/* Connection NEWEST made one too many: the silent ones go, else it. */
static void
s_make_room(pm_peerconn_t *self, int newest)
{
    int64_t old = pm_clock_ms() - PM_PEER_SILENT_MS;
    size_t open = 0, silent = 0;
    for (size_t i = 0; i < self->n; i++) {
        s_conn_t *c = &self->conns[i];
        if (!c->closing && !c->key[0] && c->accepted_ms <= old) {
            s_close(c);
            silent++;
        }
        open += !c->closing;
    }
    bool refused = open > s_max(self);
    if (refused)
        s_close(s_find(self, newest));
    s_warn_full(self, silent, refused);
}

static void
s_accepted(pm_peerconn_t *self, int fd)
{
    s_conn_t *c = s_find(self, fd);
    if (c) /* its DISCONNECTED never came: the number was reused */
        s_forget(self, c);
    if (self->n == self->alloc) {
        self->alloc = self->alloc ? 2 * self->alloc : 16;
        self->conns = pm_realloc(self->conns, self->alloc * sizeof *c);
    }
    c = &self->conns[self->n++];
    memset(c, 0, sizeof *c);
    c->fd = fd;
    c->accepted_ms = pm_clock_ms();
    c->local_len = sizeof c->local;
    c->peer_len = sizeof c->peer;
    if (getsockname(fd, (struct sockaddr *)&c->local, &c->local_len) != 0 ||
        getpeername(fd, (struct sockaddr *)&c->peer, &c->peer_len) != 0)
        c->local_len = c->peer_len = 0; /* gone already */
    size_t open = 0;
    for (size_t i = 0; i < self->n; i++)
        open += !self->conns[i].closing;
    if (open > s_max(self))
        s_make_room(self, fd);
}

void
pm_peerconn_on_events(pm_peerconn_t *self)
{
    void *h = zsock_resolve(self->events);
    for (;;) {
        /* v1 events: [u16 event, u32 value (the descriptor)][endpoint] */
        uint8_t head[6];
        char rest[256];
        int n = zmq_recv(h, head, sizeof head, ZMQ_DONTWAIT);
        if (n < 0)
            return;
        while (zsock_rcvmore(self->events))
            zmq_recv(h, rest, sizeof rest, 0);
        uint16_t event;
        uint32_t value;
        if (n != sizeof head)
            continue;
        memcpy(&event, head, sizeof event);
        memcpy(&value, head + sizeof event, sizeof value);
        s_conn_t *c =
            event == ZMQ_EVENT_DISCONNECTED ? s_find(self, (int)value) : NULL;
        if (event == ZMQ_EVENT_ACCEPTED)
            s_accepted(self, (int)value);
        else if (c)
            s_forget(self, c);
    }
}

bool
pm_peerconn_speaks(pm_peerconn_t *self, zframe_t *body, const char *key)
{
    /* a connection gone since its message was queued must not count */
    pm_peerconn_on_events(self);
    const char *fd_text = zframe_meta(body, "__fd");
    s_conn_t *c = fd_text ? s_find(self, atoi(fd_text)) : NULL;
    if (!c) /* not TCP, or its ACCEPTED was lost: nothing to count */
        return true;
    if (c->closing)
        return false;
    if (c->key[0]) /* another key: a message from before the number's
                      reuse, answered to a routing id that is gone */
        return true;
    size_t held = 0;
    for (size_t i = 0; i < self->n; i++)
        held += !self->conns[i].closing && strcmp(self->conns[i].key, key) == 0;
    if (held >= PM_PEER_CONNS_PER_MEMBER) {
        s_close(c);
        return false;
    }
    snprintf(c->key, sizeof c->key, "%s", key);
    return true;
}

void
pm_peerconn_set_members(pm_peerconn_t *self, size_t n)
{
    self->members = n;
}

zsock_t *
pm_peerconn_events(pm_peerconn_t *self)
{
    return self->events;
}

pm_peerconn_t *
pm_peerconn_new(zsock_t *router, const char *name, size_t max)
{
    pm_peerconn_t *self = pm_calloc(1, sizeof *self);
    self->name = pm_strdup(name ? name : "");
    self->router = router;
    self->max = max;
    struct rlimit rl;
    self->fd_bound =
        getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY
            ? (size_t)rl.rlim_cur / 4
            : SIZE_MAX;
    char *endpoint = pm_asprintf("inproc://pm-peerconn-%p", (void *)self);
    int rc = zmq_socket_monitor(zsock_resolve(router), endpoint,
                                ZMQ_EVENT_ACCEPTED | ZMQ_EVENT_DISCONNECTED);
    if (rc == 0) {
        self->events = zsock_new(ZMQ_PAIR);
        rc = zsock_connect(self->events, "%s", endpoint);
    }
    if (rc != 0) {
        pm_error("peer %s: cannot watch its connections (%s): %s", self->name,
                 endpoint, zmq_strerror(zmq_errno()));
        pm_peerconn_destroy(&self);
    }
    free(endpoint);
    return self;
}

void
pm_peerconn_destroy(pm_peerconn_t **self_p)
{
    pm_peerconn_t *self = *self_p;
    if (!self)
        return;
    zmq_socket_monitor(zsock_resolve(self->router), NULL, 0);
    zsock_destroy(&self->events);
    free(self->conns);
    free(self->name);
    free(self);
    *self_p = NULL;
}
