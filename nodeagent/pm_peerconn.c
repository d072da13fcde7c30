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
#include <netdb.h>
#include <netinet/in.h>

#define S_WARN_EVERY_MS 60000

/* What a TCP descriptor joins. */
typedef struct {
    struct sockaddr_storage local, peer;
    socklen_t local_len, peer_len;
} s_ends_t;

/* Fills *ENDS with what FD joins; false when it joins nothing (closed). */
static bool
s_ends(int fd, s_ends_t *ends)
{
    ends->local_len = sizeof ends->local;
    ends->peer_len = sizeof ends->peer;
    return getsockname(fd, (struct sockaddr *)&ends->local, &ends->local_len) ==
               0 &&
           getpeername(fd, (struct sockaddr *)&ends->peer, &ends->peer_len) ==
               0;
}

/* One connection the ROUTER accepted and has not said gone yet. */
typedef struct {
    int fd;
    char key[41]; /* the member's key once it spoke, else "" */
    char ip[64];  /* the peer's, as libzmq's Peer-Address (IPv6 and a scope) */
    int64_t accepted_ms;
    uint64_t accepted, spoke; /* in the order of all accepts, all speaks */
    s_ends_t ends;            /* what FD joined when accepted */
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
    uint64_t accepts, speaks; /* counters for s_conn_t's orders */
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

static size_t
s_open(const pm_peerconn_t *self)
{
    size_t open = 0;
    for (size_t i = 0; i < self->n; i++)
        open += !self->conns[i].closing;
    return open;
}

/* True when FD still joins the addresses C recorded: libzmq has not
 * closed it and given the number to another descriptor since. */
static bool
s_still(const s_conn_t *c)
{
    s_ends_t now;
    return s_ends(c->fd, &now) && now.local_len == c->ends.local_len &&
           now.peer_len == c->ends.peer_len &&
           memcmp(&now.local, &c->ends.local, now.local_len) == 0 &&
           memcmp(&now.peer, &c->ends.peer, now.peer_len) == 0;
}

/* Ends connection C: libzmq reads the end of the stream and drops it (the
 * DISCONNECTED event then forgets it). Between the check and shutdown(2)
 * libzmq could close the number and another accept take it: a window of
 * two system calls, in which the other would be one of this listener's
 * connections too (s_accepted records no other). */
static void
s_close(s_conn_t *c)
{
    if (!c->closing && s_still(c))
        shutdown(c->fd, SHUT_RDWR);
    c->closing = true;
}

/* Says, at most once a minute, that the service is full. */
static void
s_warn_full(pm_peerconn_t *self, size_t closed)
{
    int64_t now = pm_clock_ms();
    if (now < self->next_warn_ms)
        return;
    self->next_warn_ms = now + S_WARN_EVERY_MS;
    pm_warn("peer %s: %zu connections open, the most it holds: closed %zu "
            "that had not spoken, the oldest first (more are closed quietly "
            "for a minute)",
            self->name, s_max(self), closed);
}

/* Past the bound: the connections silent for PM_PEER_SILENT_MS go, then
 * the oldest silent ones (someone reconnecting faster than that must not
 * keep the members out) until there is room; the ones that spoke stay. */
static void
s_make_room(pm_peerconn_t *self)
{
    int64_t old = pm_clock_ms() - PM_PEER_SILENT_MS;
    size_t closed = 0;
    for (size_t i = 0; i < self->n; i++) {
        s_conn_t *c = &self->conns[i];
        if (!c->closing && !c->key[0] && c->accepted_ms <= old) {
            s_close(c);
            closed++;
        }
    }
    for (size_t open = s_open(self); open > s_max(self); open--) {
        s_conn_t *oldest = NULL;
        for (size_t i = 0; i < self->n; i++) {
            s_conn_t *c = &self->conns[i];
            if (!c->closing && !c->key[0] &&
                (!oldest || c->accepted < oldest->accepted))
                oldest = c;
        }
        if (!oldest)
            break;
        s_close(oldest);
        closed++;
    }
    if (closed)
        s_warn_full(self, closed);
}

/* The port of ENDPOINT ("tcp://HOST:PORT"), 0 when it has none. */
static unsigned
s_endpoint_port(const char *endpoint)
{
    const char *colon = strrchr(endpoint, ':');
    return colon ? (unsigned)strtoul(colon + 1, NULL, 10) : 0;
}

static unsigned
s_port(const struct sockaddr_storage *sa)
{
    if (sa->ss_family == AF_INET)
        return ntohs(((const struct sockaddr_in *)sa)->sin_port);
    if (sa->ss_family == AF_INET6)
        return ntohs(((const struct sockaddr_in6 *)sa)->sin6_port);
    return 0;
}

/* The listener at ENDPOINT accepted FD. Recorded only while FD is still
 * one of its connections (local port: the listener's): an event read late
 * may name a number libzmq closed and the process gave to another socket
 * since, which must never be shut down. */
static void
s_accepted(pm_peerconn_t *self, int fd, const char *endpoint)
{
    s_conn_t *c = s_find(self, fd);
    if (c) /* its DISCONNECTED never came: the number was reused */
        s_forget(self, c);
    s_conn_t add = {
        .fd = fd, .accepted_ms = pm_clock_ms(), .accepted = ++self->accepts};
    if (!s_ends(fd, &add.ends) ||
        s_port(&add.ends.local) != s_endpoint_port(endpoint) ||
        getnameinfo((struct sockaddr *)&add.ends.peer, add.ends.peer_len,
                    add.ip, sizeof add.ip, NULL, 0, NI_NUMERICHOST) != 0)
        return; /* gone already */
    if (self->n == self->alloc) {
        self->alloc = self->alloc ? 2 * self->alloc : 16;
        self->conns = pm_realloc(self->conns, self->alloc * sizeof add);
    }
    self->conns[self->n++] = add;
}

void
pm_peerconn_on_events(pm_peerconn_t *self)
{
    void *h = zsock_resolve(self->events);
    bool accepted = false;
    for (;;) {
        /* v1 events: [u16 event, u32 value (the descriptor)][endpoint] */
        uint8_t head[6];
        char endpoint[256] = "";
        int n = zmq_recv(h, head, sizeof head, ZMQ_DONTWAIT);
        if (n < 0)
            break;
        int len = zsock_rcvmore(self->events)
                      ? zmq_recv(h, endpoint, sizeof endpoint - 1, 0)
                      : 0;
        endpoint[len > 0 && len < (int)sizeof endpoint ? len : 0] = '\0';
        while (zsock_rcvmore(self->events))
            zmq_recv(h, head, sizeof head, 0);
        uint16_t event;
        uint32_t value;
        if (n != sizeof head)
            continue;
        memcpy(&event, head, sizeof event);
        memcpy(&value, head + sizeof event, sizeof value);
        s_conn_t *c =
            event == ZMQ_EVENT_DISCONNECTED ? s_find(self, (int)value) : NULL;
        if (event == ZMQ_EVENT_ACCEPTED) {
            s_accepted(self, (int)value, endpoint);
            accepted = true;
        } else if (c) {
            s_forget(self, c);
        }
    }
    /* after the whole batch: a connection gone in it makes room too */
    if (accepted && s_open(self) > s_max(self))
        s_make_room(self);
}

/* Member KEY's connection that spoke least recently, other than C. */
static s_conn_t *
s_least_recent(pm_peerconn_t *self, const char *key, const s_conn_t *c,
               size_t *held)
{
    s_conn_t *lru = NULL;
    *held = 0;
    for (size_t i = 0; i < self->n; i++) {
        s_conn_t *o = &self->conns[i];
        if (o == c || o->closing || strcmp(o->key, key) != 0)
            continue;
        ++*held;
        if (!lru || o->spoke < lru->spoke)
            lru = o;
    }
    return lru;
}

bool
pm_peerconn_speaks(pm_peerconn_t *self, zframe_t *body, const char *key)
{
    /* a connection gone since its message was queued must not count */
    pm_peerconn_on_events(self);
    const char *fd_text = zframe_meta(body, "__fd");
    const char *ip = zframe_meta(body, "Peer-Address");
    s_conn_t *c = fd_text ? s_find(self, atoi(fd_text)) : NULL;
    /* none: not TCP, or its ACCEPTED was lost; another peer or key: a
     * message from a connection gone since, whose number was reused
     * (its answer goes to a routing id that is gone too) */
    if (!c || !ip || strcmp(ip, c->ip) != 0 ||
        (c->key[0] && strcmp(c->key, key) != 0))
        return true;
    if (c->closing)
        return false;
    c->spoke = ++self->speaks;
    if (c->key[0])
        return true;
    size_t held;
    s_conn_t *lru = s_least_recent(self, key, c, &held);
    if (held >= PM_PEER_CONNS_PER_MEMBER) /* one gone unseen, or asking on
                                             more than it may */
        s_close(lru);
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
        /* no bound on our side: libzmq's I/O thread sends events with a
         * blocking send, and must never wait for this actor */
        zsock_set_rcvhwm(self->events, 0);
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
    if (self->events) /* nothing left for the I/O thread to wait on */
        pm_peerconn_on_events(self);
    zmq_socket_monitor(zsock_resolve(self->router), NULL, 0);
    zsock_destroy(&self->events);
    free(self->conns);
    free(self->name);
    free(self);
    *self_p = NULL;
}
