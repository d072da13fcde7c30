/* pm_fleet.c - distribution to agents and their status. */
#include "pm_fleet.h"
#include "pm_keys.h"
#include "pm_log.h"
#include "pm_mem.h"
#include "pm_wire.h"

#include <dirent.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

typedef struct {
    char *name;
    Pm__NodeStatus *status; /* latest report, NULL before the first */
    zframe_t *route;        /* routing id of its live connection */
    int64_t seen_mono;      /* zclock_mono() of the last report, 0: never */
    int64_t seen_wall;      /* unix seconds of the last report */
    bool enrolled;
    bool dirty; /* not yet written to the store */
} s_node_t;

struct pm_fleet_t {
    pm_store_t *store;
    zsock_t *router;
    char *clients_dir;
    pm_fleet_opts_t opts;
    zhashx_t *nodes; /* name -> s_node_t */
    struct timespec dir_mtime;
    uint64_t head;
    int64_t next_tick;
    unsigned ticks;
};

static void
s_node_destroy(void **item)
{
    s_node_t *n = *item;
    if (!n)
        return;
    if (n->status)
        pm__node_status__free_unpacked(n->status, NULL);
    zframe_destroy(&n->route);
    free(n->name);
    free(n);
    *item = NULL;
}

static s_node_t *
s_node(pm_fleet_t *self, const char *name)
{
    s_node_t *n = zhashx_lookup(self->nodes, name);
    if (!n) {
        n = pm_calloc(1, sizeof *n);
        n->name = pm_strdup(name);
        zhashx_insert(self->nodes, name, n);
    }
    return n;
}

/* Enrolled agents are the certificates in clients/ with role=agent; the
 * directory is read again only when it changed. */
static void
s_scan_enrolled(pm_fleet_t *self)
{
    struct stat st;
    if (stat(self->clients_dir, &st) != 0 ||
        (st.st_mtim.tv_sec == self->dir_mtime.tv_sec &&
         st.st_mtim.tv_nsec == self->dir_mtime.tv_nsec))
        return;
    self->dir_mtime = st.st_mtim;
    for (s_node_t *n = zhashx_first(self->nodes); n;
         n = zhashx_next(self->nodes))
        n->enrolled = false;
    DIR *dir = opendir(self->clients_dir);
    struct dirent *e;
    while (dir && (e = readdir(dir))) {
        size_t len = strlen(e->d_name);
        if (len < 6 || strcmp(e->d_name + len - 5, ".cert") != 0)
            continue;
        char *path = pm_asprintf("%s/%s", self->clients_dir, e->d_name);
        zcert_t *cert = zcert_load(path);
        const char *role = cert ? zcert_meta(cert, "role") : NULL;
        const char *name = cert ? zcert_meta(cert, "name") : NULL;
        if (role && name && strcmp(role, PM_ROLE_AGENT) == 0)
            s_node(self, name)->enrolled = true;
        zcert_destroy(&cert);
        free(path);
    }
    if (dir)
        closedir(dir);
}

static void
s_load_statuses(pm_fleet_t *self)
{
    Pm__NodeStatus **all = NULL;
    size_t n = 0;
    if (pm_store_node_list(self->store, &all, &n) != PM_OK)
        return;
    for (size_t i = 0; i < n; i++) {
        s_node_t *node = s_node(self, all[i]->name);
        node->status = all[i];
        node->seen_wall = all[i]->last_seen;
        all[i] = NULL;
    }
    pm_store_nodes_free(&all, n);
}

pm_fleet_t *
pm_fleet_new(pm_store_t *store, const char *endpoint, zcert_t *cert,
             const char *clients_dir, const pm_fleet_opts_t *opts, char **why)
{
    pm_fleet_t *self = pm_calloc(1, sizeof *self);
    self->store = store;
    self->opts = *opts;
    self->clients_dir = pm_strdup(clients_dir);
    self->nodes = zhashx_new();
    zhashx_set_destructor(self->nodes, s_node_destroy);
    pm_store_head(store, &self->head);
    s_load_statuses(self);
    s_scan_enrolled(self);
    self->router = zsock_new(ZMQ_ROUTER);
    zcert_apply(cert, self->router);
    zsock_set_curve_server(self->router, 1);
    zsock_set_zap_domain(self->router, "privmta-agents");
    zsock_set_maxmsgsize(self->router, PM_WIRE_MESSAGE_MAX);
    /* A full queue drops silently; heartbeats then show the gap. */
    zsock_set_sndhwm(self->router, 100000);
    zsock_set_rcvhwm(self->router, 100000);
    zsock_set_linger(self->router, 0);
    if (zsock_bind(self->router, "%s", endpoint) < 0) {
        *why = pm_asprintf("cannot listen for agents on %s: %s", endpoint,
                           zmq_strerror(zmq_errno()));
        pm_fleet_destroy(&self);
    }
    return self;
}

void
pm_fleet_destroy(pm_fleet_t **self_p)
{
    pm_fleet_t *self = *self_p;
    if (!self)
        return;
    zsock_destroy(&self->router);
    zhashx_destroy(&self->nodes);
    free(self->clients_dir);
    free(self);
    *self_p = NULL;
}

zsock_t *
pm_fleet_socket(pm_fleet_t *self)
{
    return self->router;
}

/* ---- sending ------------------------------------------------------------ */

/* Sends BODY to one agent. The body's bytes are shared, not copied, across
 * a fan-out (zmq_msg_copy of a large message only adds a reference). */
static void
s_send_to(pm_fleet_t *self, s_node_t *n, zmq_msg_t *body)
{
    void *sock = zsock_resolve(self->router);
    zmq_msg_t copy;
    zmq_msg_init(&copy);
    zmq_msg_copy(&copy, body);
    if (zmq_send(sock, zframe_data(n->route), zframe_size(n->route),
                 ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0 ||
        zmq_msg_send(&copy, sock, ZMQ_DONTWAIT) < 0)
        zmq_msg_close(&copy);
}

static void
s_free_buf(void *data, void *hint)
{
    (void)hint;
    free(data);
}

static void
s_msg_init(zmq_msg_t *msg, const Pm__Publication *pub)
{
    size_t len = 0;
    uint8_t *buf = pm_wire_pack(&pub->base, &len);
    zmq_msg_init_data(msg, buf, len, s_free_buf, NULL);
}

static void
s_broadcast(pm_fleet_t *self, const Pm__Publication *pub)
{
    zmq_msg_t msg;
    s_msg_init(&msg, pub);
    for (s_node_t *n = zhashx_first(self->nodes); n;
         n = zhashx_next(self->nodes))
        if (n->route && n->enrolled)
            s_send_to(self, n, &msg);
    zmq_msg_close(&msg);
}

/* The DKIM keys REV's policy names travel with it, over CURVE only; an
 * agent needs them before it can enable signing. */
static void
s_attach_secrets(pm_fleet_t *self, Pm__Publication *pub)
{
    const Pm__Policy *p = pub->revision->policy;
    pub->secrets = pm_calloc(p->n_dkim_domains + 1, sizeof *pub->secrets);
    for (size_t i = 0; i < p->n_dkim_domains; i++) {
        uint8_t *data = NULL;
        size_t len = 0;
        if (pm_store_secret_get(self->store, p->dkim_domains[i]->key, &data,
                                &len) != PM_OK)
            continue;
        Pm__Secret *sec = pm_malloc(sizeof *sec);
        pm__secret__init(sec);
        sec->id = pm_strdup(p->dkim_domains[i]->key);
        sec->data.data = data;
        sec->data.len = len;
        pub->secrets[pub->n_secrets++] = sec;
    }
}

static void
s_free_secrets(Pm__Publication *pub)
{
    for (size_t i = 0; i < pub->n_secrets; i++) {
        explicit_bzero(pub->secrets[i]->data.data, pub->secrets[i]->data.len);
        pm__secret__free_unpacked(pub->secrets[i], NULL);
    }
    free(pub->secrets);
    pub->secrets = NULL;
    pub->n_secrets = 0;
}

void
pm_fleet_publish(pm_fleet_t *self, uint64_t rev)
{
    Pm__Revision *r = NULL;
    if (pm_store_get(self->store, rev, &r) != PM_OK) {
        pm_error("cannot read revision %llu to publish it",
                 (unsigned long long)rev);
        return;
    }
    Pm__Publication pub = PM__PUBLICATION__INIT;
    pub.kind = PM__PUBLICATION__KIND__UPDATE;
    pub.head = self->head = rev;
    pub.revision = r;
    s_attach_secrets(self, &pub);
    s_broadcast(self, &pub);
    s_free_secrets(&pub);
    pm__revision__free_unpacked(r, NULL);
}

/* The head revision for one agent that asked (HELLO or RESYNC). */
static void
s_send_snapshot(pm_fleet_t *self, s_node_t *n)
{
    Pm__Publication pub = PM__PUBLICATION__INIT;
    Pm__Revision *r = NULL;
    pub.head = self->head;
    pub.node = n->name;
    if (self->head && pm_store_get(self->store, self->head, &r) == PM_OK) {
        pub.kind = PM__PUBLICATION__KIND__SNAPSHOT;
        pub.revision = r;
        s_attach_secrets(self, &pub);
    }
    zmq_msg_t msg;
    s_msg_init(&msg, &pub);
    s_send_to(self, n, &msg);
    zmq_msg_close(&msg);
    s_free_secrets(&pub);
    if (r)
        pm__revision__free_unpacked(r, NULL);
}

/* ---- receiving ------------------------------------------------------------
 */

/* Whether NEW says something OLD did not, besides the time: only then is
 * it worth a write to the store (a heartbeat usually changes nothing). */
static bool
s_changed(Pm__NodeStatus *old, Pm__NodeStatus *new)
{
    if (!old)
        return true;
    int64_t a = old->last_seen, b = new->last_seen;
    old->last_seen = new->last_seen = 0;
    size_t la = protobuf_c_message_get_packed_size(&old->base);
    size_t lb = protobuf_c_message_get_packed_size(&new->base);
    bool changed = la != lb;
    if (!changed) {
        uint8_t *pa = pm_malloc(la), *pb = pm_malloc(lb);
        protobuf_c_message_pack(&old->base, pa);
        protobuf_c_message_pack(&new->base, pb);
        changed = memcmp(pa, pb, la) != 0;
        free(pa);
        free(pb);
    }
    old->last_seen = a;
    new->last_seen = b;
    return changed;
}

static void
s_take_report(pm_fleet_t *self, s_node_t *n, Pm__AgentReport *rep)
{
    if (rep->status) {
        pm_wire_set_string(&rep->status->name, n->name);
        rep->status->applied_rev = rep->applied_rev;
        n->dirty = n->dirty || s_changed(n->status, rep->status);
        if (n->status)
            pm__node_status__free_unpacked(n->status, NULL);
        n->status = rep->status;
        rep->status = NULL;
    } else if (!n->status) {
        n->status = pm_malloc(sizeof *n->status);
        pm__node_status__init(n->status);
    }
    /* the enrolled name, not whatever the agent calls itself */
    pm_wire_set_string(&n->status->name, n->name);
    n->status->applied_rev = rep->applied_rev;
    n->seen_mono = zclock_mono();
    n->seen_wall = time(NULL);
    n->status->last_seen = n->seen_wall;
    if (rep->kind == PM__AGENT_REPORT__KIND__HELLO ||
        rep->kind == PM__AGENT_REPORT__KIND__RESYNC) {
        pm_info("node %s %s at revision %llu: sending the head (%llu)", n->name,
                rep->kind == PM__AGENT_REPORT__KIND__HELLO ? "connected"
                                                           : "asks to resync",
                (unsigned long long)rep->applied_rev,
                (unsigned long long)self->head);
        s_send_snapshot(self, n);
    } else if (rep->kind == PM__AGENT_REPORT__KIND__APPLIED) {
        if (*n->status->apply_error)
            pm_warn("node %s failed to apply: %s (keeps revision %llu)",
                    n->name, n->status->apply_error,
                    (unsigned long long)rep->applied_rev);
        else
            pm_debug("node %s applied revision %llu", n->name,
                     (unsigned long long)rep->applied_rev);
    }
}

static bool
s_enrolled(pm_fleet_t *self, const char *name)
{
    s_node_t *n = zhashx_lookup(self->nodes, name);
    if (!n || !n->enrolled) {
        s_scan_enrolled(self); /* enrolled by hand a moment ago? */
        n = zhashx_lookup(self->nodes, name);
    }
    return n && n->enrolled;
}

void
pm_fleet_handle(pm_fleet_t *self)
{
    zframe_t *route = zframe_recv(self->router);
    zframe_t *body =
        route && zsock_rcvmore(self->router) ? zframe_recv(self->router) : NULL;
    const char *role = body ? zframe_meta(body, "role") : NULL;
    const char *name = body ? zframe_meta(body, "name") : NULL;
    Pm__AgentReport *rep = NULL;
    char *why = NULL;
    if (!body || !role || !name || strcmp(role, PM_ROLE_AGENT) != 0) {
        pm_debug("agent socket: dropped a message from a key that is not "
                 "an enrolled agent");
    } else if (pm_wire_unpack_agent_report(zframe_data(body), zframe_size(body),
                                           &rep, &why) != PM_OK) {
        pm_warn("node %s: malformed report dropped: %s", name, why);
    } else if (!s_enrolled(self, name)) {
        /* a withdrawn key whose connection predates the withdrawal */
        pm_debug("node %s is no longer enrolled: report dropped", name);
    } else {
        s_node_t *n = s_node(self, name);
        zframe_destroy(&n->route);
        n->route = route;
        route = NULL;
        s_take_report(self, n, rep);
        pm__agent_report__free_unpacked(rep, NULL);
    }
    while (zsock_rcvmore(self->router)) {
        zframe_t *extra = zframe_recv(self->router);
        zframe_destroy(&extra);
    }
    free(why);
    zframe_destroy(&route);
    zframe_destroy(&body);
}

/* ---- ticking ------------------------------------------------------------ */

static void
s_flush(pm_fleet_t *self, bool all)
{
    size_t n = 0, cap = zhashx_size(self->nodes);
    Pm__NodeStatus **dirty = pm_calloc(cap + 1, sizeof *dirty);
    for (s_node_t *node = zhashx_first(self->nodes); node;
         node = zhashx_next(self->nodes))
        if ((node->dirty || (all && node->seen_mono)) && node->status)
            dirty[n++] = node->status;
    int rc = n ? pm_store_node_put_many(self->store, dirty, n) : PM_OK;
    if (rc != PM_OK)
        pm_warn("cannot store node status: %s", pm_strerror(rc));
    else
        for (s_node_t *node = zhashx_first(self->nodes); node;
             node = zhashx_next(self->nodes))
            node->dirty = false;
    free(dirty);
}

int
pm_fleet_tick(pm_fleet_t *self)
{
    int64_t now = zclock_mono();
    if (now < self->next_tick)
        return (int)(self->next_tick - now);
    self->next_tick = now + self->opts.heartbeat_ms;
    Pm__Publication pub = PM__PUBLICATION__INIT;
    pub.kind = PM__PUBLICATION__KIND__HEARTBEAT;
    pub.head = self->head;
    s_broadcast(self, &pub);
    /* changes are written every tick; "last seen" alone every 30 */
    s_flush(self, ++self->ticks % 30 == 0);
    s_scan_enrolled(self);
    return self->opts.heartbeat_ms;
}

/* ---- views and enrolment ------------------------------------------------ */

static const char *
s_liveness(const pm_fleet_t *self, const s_node_t *n, int64_t now)
{
    if (!n->seen_mono)
        return n->seen_wall ? "down" : "never";
    int64_t quiet = now - n->seen_mono;
    return quiet >= self->opts.down_after_ms    ? "down"
           : quiet >= self->opts.stale_after_ms ? "stale"
                                                : "up";
}

static int
s_by_name(const void *a, const void *b)
{
    return strcmp((*(Pm__NodeStatus *const *)a)->name,
                  (*(Pm__NodeStatus *const *)b)->name);
}

void
pm_fleet_nodes(pm_fleet_t *self, Pm__NodeStatus ***nodes, size_t *n)
{
    s_scan_enrolled(self);
    int64_t now = zclock_mono();
    Pm__NodeStatus **all = pm_calloc(zhashx_size(self->nodes) + 1, sizeof *all);
    size_t count = 0;
    for (s_node_t *node = zhashx_first(self->nodes); node;
         node = zhashx_next(self->nodes)) {
        if (!node->enrolled)
            continue;
        Pm__NodeStatus *st = NULL;
        if (node->status) {
            size_t len = 0;
            uint8_t *buf = pm_wire_pack(&node->status->base, &len);
            st = pm__node_status__unpack(NULL, len, buf);
            free(buf);
        }
        if (!st) {
            st = pm_malloc(sizeof *st);
            pm__node_status__init(st);
            pm_wire_set_string(&st->name, node->name);
        }
        pm_wire_set_string(&st->liveness, s_liveness(self, node, now));
        all[count++] = st;
    }
    qsort(all, count, sizeof *all, s_by_name);
    *nodes = all;
    *n = count;
}

int
pm_fleet_enroll(pm_fleet_t *self, const char *name, const char *pubkey,
                char **why)
{
    if (pm_keys_enroll(self->clients_dir, name, PM_ROLE_AGENT, pubkey, why))
        return -1;
    s_scan_enrolled(self);
    return 0;
}

int
pm_fleet_withdraw(pm_fleet_t *self, const char *name, char **why)
{
    if (pm_keys_withdraw(self->clients_dir, name, PM_ROLE_AGENT, why))
        return -1;
    zhashx_delete(self->nodes, name);
    s_scan_enrolled(self);
    return 0;
}
