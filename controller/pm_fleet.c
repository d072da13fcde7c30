/* pm_fleet.c - distribution to agents and their status: enrolment, each
 * agent's connection and reports, revisions and snapshots out, heartbeats.
 * MEMBERS (membership, fetch duties, cool-downs) is pm_fleet_members.c. */
#include "pm_fleet.h"
#include "pm_ctlzap.h"
#include "pm_fleet_private.h"
#include "pm_keys.h"
#include "pm_log.h"
#include "pm_mem.h"
#include "pm_nodereport.h"
#include "pm_text.h"
#include "pm_wire.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

/* Caps on agent-supplied text in one log line. */
#define S_LOG_NAME_MAX 80
#define S_LOG_TEXT_MAX 512

/* Lines a node's messages may make us log a minute: an agent can send
 * thousands of malformed reports, failed applies or hand edits a second,
 * and each would be a line. */
#define S_LOG_LINES 30
#define S_LOG_WINDOW_MS 60000

/* Ticks between two reads of clients/ that do not wait for its mtime to
 * change: a file replaced within the same second may not change it where
 * the file system keeps whole seconds. */
#define S_RESCAN_TICKS 30

static void s_flush(pm_fleet_t *self, bool all);

static void
s_node_forget_keys(pm_fleet_node_t *n)
{
    for (size_t i = 0; i < n->n_keys; i++)
        free(n->keys[i]);
    PM_FREE(&n->keys);
    n->n_keys = 0;
}

static void
s_node_destroy(void **item)
{
    pm_fleet_node_t *n = *item;
    if (!n)
        return;
    if (n->status)
        pm__node_status__free_unpacked(n->status, NULL);
    zframe_destroy(&n->route);
    s_node_forget_keys(n);
    free(n->label);
    free(n->name);
    free(n);
    *item = NULL;
}

static pm_fleet_node_t *
s_node(pm_fleet_t *self, const char *name)
{
    pm_fleet_node_t *n = zhashx_lookup(self->nodes, name);
    if (!n) {
        n = pm_calloc(1, sizeof *n);
        n->name = pm_strdup(name);
        n->label = pm_text_escape(name, S_LOG_NAME_MAX);
        zhashx_insert(self->nodes, name, n);
    }
    return n;
}

/* Whether KEY is enrolled for N now. */
static bool
s_key_enrolled(const pm_fleet_node_t *n, const char *key)
{
    for (size_t i = 0; i < n->n_keys; i++)
        if (strcmp(n->keys[i], key) == 0)
            return true;
    return false;
}

/* The one gate of everything sent to agents (pm_fleet_private.h). */
bool
pm_fleet_served(const pm_fleet_node_t *n)
{
    return n->route && s_key_enrolled(n, n->route_key);
}

/* Nothing more goes to N's connection, not even a pending snapshot. */
static void
s_forget_route(pm_fleet_node_t *n)
{
    zframe_destroy(&n->route);
    n->route_key[0] = '\0';
    n->snapshot_pending = false;
}

/* Ends N's minute of logging when it is over at NOW, saying how many
 * lines it did not get. */
static void
s_log_roll(pm_fleet_node_t *n, int64_t now)
{
    if (n->log_since && now - n->log_since < S_LOG_WINDOW_MS)
        return;
    if (n->log_suppressed)
        pm_warn("node %s: suppressed %u log lines in the last minute (at "
                "most %d a minute per node)",
                n->label, n->log_suppressed, S_LOG_LINES);
    n->log_since = now;
    n->log_lines = n->log_suppressed = 0;
}

/* Lines N may still log this minute. */
static size_t
s_log_room(pm_fleet_node_t *n)
{
    s_log_roll(n, zclock_mono());
    return S_LOG_LINES - n->log_lines;
}

/* N's messages would log WANT lines: returns how many may be, the rest
 * counted as suppressed (the first time in a minute, said at once). */
static size_t
s_log_take(pm_fleet_node_t *n, size_t want)
{
    size_t room = s_log_room(n);
    size_t take = want < room ? want : room;
    n->log_lines += (unsigned)take;
    if (take < want && !n->log_suppressed)
        pm_warn("node %s: more than %d log lines this minute; the rest are "
                "suppressed and counted",
                n->label, S_LOG_LINES);
    n->log_suppressed += (unsigned)(want - take);
    return take;
}

/* Whether N may log one line now. */
static bool
s_log_ok(pm_fleet_node_t *n)
{
    return s_log_take(n, 1) == 1;
}

static const char *
s_liveness(const pm_fleet_t *self, const pm_fleet_node_t *n, int64_t now)
{
    if (!n->seen_mono)
        return n->seen_wall ? "down" : "never";
    int64_t quiet = now - n->seen_mono;
    return quiet >= self->opts.down_after_ms    ? "down"
           : quiet >= self->opts.stale_after_ms ? "stale"
                                                : "up";
}

/* A member keeps its fetch duty and its place in gossip while it is only
 * late ("stale": an agent busy applying a revision heartbeats late) and
 * loses them when it is down. Moving a duty on every late heartbeat made
 * it flap under load, and each new holder asked the mirror again. */
bool
pm_fleet_member_live(const pm_fleet_t *self, const pm_fleet_node_t *n,
                     int64_t now)
{
    const char *l = s_liveness(self, n, now);
    return strcmp(l, "up") == 0 || strcmp(l, "stale") == 0;
}

static void
s_enrol_one(const char *name, const char *role, const char *key,
            const char *path, void *arg)
{
    (void)path;
    pm_fleet_t *self = arg;
    if (strcmp(role, PM_ROLE_AGENT) != 0)
        return;
    pm_fleet_node_t *n = s_node(self, name);
    if (s_key_enrolled(n, key))
        return;
    n->keys = pm_realloc(n->keys, (n->n_keys + 1) * sizeof *n->keys);
    n->keys[n->n_keys++] = pm_strdup(key);
}

/* Enrolled agents are the certificates in clients/ with role=agent: each
 * name with the key(s) enrolled for it. The directory is read again when
 * its mtime changed, or whenever FORCE. A connection made with a key that
 * is no longer enrolled for its node loses its route. */
static void
s_scan_enrolled(pm_fleet_t *self, bool force)
{
    struct stat st;
    if (stat(self->clients_dir, &st) != 0 ||
        (!force && st.st_mtim.tv_sec == self->dir_mtime.tv_sec &&
         st.st_mtim.tv_nsec == self->dir_mtime.tv_nsec))
        return;
    self->dir_mtime = st.st_mtim;
    self->members_dirty = true; /* a key or a member may be new */
    for (pm_fleet_node_t *n = zhashx_first(self->nodes); n;
         n = zhashx_next(self->nodes))
        s_node_forget_keys(n);
    char *why = NULL;
    if (pm_keys_each(self->clients_dir, s_enrol_one, self, &why) != 0) {
        pm_warn("enrolled agents: %s", why);
        free(why);
    }
    for (pm_fleet_node_t *n = zhashx_first(self->nodes); n;
         n = zhashx_next(self->nodes)) {
        if (n->route && !pm_fleet_served(n)) {
            pm_info("node %s: the key of its connection is no longer "
                    "enrolled; nothing more is sent to it",
                    n->label);
            s_forget_route(n);
        }
    }
}

static void
s_load_statuses(pm_fleet_t *self)
{
    Pm__NodeStatus **all = NULL;
    size_t n = 0;
    if (pm_store_node_list(self->store, &all, &n) != PM_OK)
        return;
    for (size_t i = 0; i < n; i++) {
        pm_fleet_node_t *node = s_node(self, all[i]->name);
        node->status = all[i];
        node->seen_wall = all[i]->last_seen;
        all[i] = NULL;
    }
    pm_store_nodes_free(&all, n);
}

/* The databases and mirrors of the head policy, as the controller
 * starts. */
static void
s_load_antivirus(pm_fleet_t *self)
{
    Pm__Revision *r = NULL;
    if (!self->head || pm_store_get(self->store, self->head, &r) != PM_OK)
        return;
    pm_fleet_set_antivirus(self, r->policy);
    pm__revision__free_unpacked(r, NULL);
}

pm_fleet_t *
pm_fleet_new(pm_store_t *store, const char *endpoint, zcert_t *cert,
             const char *clients_dir, const pm_fleet_opts_t *opts, char **why)
{
    pm_fleet_t *self = pm_calloc(1, sizeof *self);
    self->store = store;
    self->opts = *opts;
    if (self->opts.send_hwm <= 0)
        self->opts.send_hwm = PM_FLEET_HWM;
    if (self->opts.snapshot_gap_ms <= 0)
        self->opts.snapshot_gap_ms = PM_FLEET_SNAPSHOT_GAP_MS;
    self->clients_dir = pm_strdup(clients_dir);
    self->started = zclock_mono();
    self->nodes = zhashx_new();
    zhashx_set_destructor(self->nodes, s_node_destroy);
    pm_store_head(store, &self->head);
    s_load_statuses(self);
    s_scan_enrolled(self, true);
    s_load_antivirus(self);
    zmq_msg_init(&self->members);
    zmq_msg_init(&self->members_delta);
    /* epochs must not repeat across restarts (an agent keeps its epoch
     * and would take a delta meant for another list): seconds since 1970
     * times 2^20 leaves a million changes a second before they could */
    self->members_epoch = (uint64_t)time(NULL) << 20;
    pm_fleet_members_build(self);
    self->router = zsock_new(ZMQ_ROUTER);
    zcert_apply(cert, self->router);
    zsock_set_curve_server(self->router, 1);
    zsock_set_zap_domain(self->router, PM_CTLZAP_DOMAIN_AGENTS);
    /* agents only ever send reports: anything longer is dropped, with
     * the connection, before it is read into memory */
    zsock_set_maxmsgsize(self->router, PM_WIRE_REPORT_MAX);
    /* A full queue drops silently; heartbeats then show the gap. Small
     * queues: an agent that stops reading holds only this much here. */
    zsock_set_sndhwm(self->router, self->opts.send_hwm);
    zsock_set_rcvhwm(self->router, self->opts.send_hwm);
    zsock_set_linger(self->router, 0);
    /* every agent reconnects at once after a restart or a partition:
     * libzmq's default backlog of 100 dropped SYNs at 2000 agents */
    zsock_set_backlog(self->router, PM_FLEET_BACKLOG);
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
    /* what came since the last tick, and every "last seen": a clean stop
     * loses nothing an agent reported */
    if (self->router)
        s_flush(self, true);
    zsock_destroy(&self->router);
    zhashx_destroy(&self->nodes);
    zmq_msg_close(&self->members);
    zmq_msg_close(&self->members_delta);
    for (size_t i = 0; i < self->n_databases; i++)
        free(self->databases[i]);
    free(self->databases);
    for (size_t i = 0; i < self->n_mirrors; i++)
        free(self->mirrors[i]);
    free(self->mirrors);
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
void
pm_fleet_send_to(pm_fleet_t *self, pm_fleet_node_t *n, zmq_msg_t *body)
{
    if (!pm_fleet_served(n))
        return;
    void *sock = zsock_resolve(self->router);
    zmq_msg_t copy;
    zmq_msg_init(&copy);
    zmq_msg_copy(&copy, body);
    if (zmq_send(sock, zframe_data(n->route), zframe_size(n->route),
                 ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0 ||
        zmq_msg_send(&copy, sock, ZMQ_DONTWAIT) < 0)
        zmq_msg_close(&copy);
}

void
pm_fleet_free_buf(void *data, void *hint)
{
    (void)hint;
    free(data);
}

static void
s_msg_init(zmq_msg_t *msg, const Pm__Publication *pub)
{
    size_t len = 0;
    uint8_t *buf = pm_wire_pack(&pub->base, &len);
    zmq_msg_init_data(msg, buf, len, pm_fleet_free_buf, NULL);
}

static void
s_broadcast(pm_fleet_t *self, const Pm__Publication *pub)
{
    zmq_msg_t msg;
    s_msg_init(&msg, pub);
    for (pm_fleet_node_t *n = zhashx_first(self->nodes); n;
         n = zhashx_next(self->nodes))
        pm_fleet_send_to(self, n, &msg);
    zmq_msg_close(&msg);
}

bool
pm_fleet_restart(pm_fleet_t *self, const char *name,
                 const Pm__RestartOrder *order)
{
    pm_fleet_node_t *n = zhashx_lookup(self->nodes, name);
    if (!n || !pm_fleet_served(n))
        return false;
    Pm__Publication pub = PM__PUBLICATION__INIT;
    pub.kind = PM__PUBLICATION__KIND__RESTART;
    pub.restart = (Pm__RestartOrder *)order; /* only read by the packer */
    zmq_msg_t msg;
    s_msg_init(&msg, &pub);
    pm_fleet_send_to(self, n, &msg);
    zmq_msg_close(&msg);
    return true;
}

size_t
pm_fleet_check(pm_fleet_t *self, const Pm__Publication *members,
               char ***unheard)
{
    Pm__Publication pub = PM__PUBLICATION__INIT;
    pub.kind = PM__PUBLICATION__KIND__CHECK;
    zmq_msg_t msg;
    s_msg_init(&msg, &pub);
    size_t told = 0, n_un = 0;
    int64_t now = zclock_mono();
    *unheard = pm_calloc(members->n_duties + 1, sizeof **unheard);
    for (size_t i = 0; i < members->n_duties; i++) {
        const char *name = members->duties[i]->node;
        bool again = false; /* a node may hold several duties */
        for (size_t j = 0; j < i && !again; j++)
            again = strcmp(members->duties[j]->node, name) == 0;
        if (again)
            continue;
        pm_fleet_node_t *n = zhashx_lookup(self->nodes, name);
        bool served = n && pm_fleet_served(n);
        if (served) {
            pm_fleet_send_to(self, n, &msg);
            told++;
        }
        /* a stale holder keeps its duty (pm_fleet_member_live), and its
         * connection may be gone without a word */
        if (!served || strcmp(s_liveness(self, n, now), "up") != 0)
            (*unheard)[n_un++] = pm_strdup(name);
    }
    zmq_msg_close(&msg);
    return told;
}

size_t
pm_fleet_why(pm_fleet_t *self, const Pm__WhyQuery *q, char ***asked,
             char ***unserved)
{
    size_t n_nodes = zhashx_size(self->nodes), n_asked = 0, n_un = 0;
    *asked = pm_calloc(n_nodes + 1, sizeof **asked);
    *unserved = pm_calloc(n_nodes + 1, sizeof **unserved);
    Pm__Publication pub = PM__PUBLICATION__INIT;
    pub.kind = PM__PUBLICATION__KIND__WHY;
    pub.why = (Pm__WhyQuery *)q; /* only read by the packer */
    zmq_msg_t msg;
    s_msg_init(&msg, &pub);
    for (pm_fleet_node_t *n = zhashx_first(self->nodes); n;
         n = zhashx_next(self->nodes)) {
        if (!pm_fleet_served(n)) {
            (*unserved)[n_un++] = pm_strdup(n->name);
            continue;
        }
        pm_fleet_send_to(self, n, &msg);
        (*asked)[n_asked++] = pm_strdup(n->name);
    }
    zmq_msg_close(&msg);
    return n_asked;
}

void
pm_fleet_on_why(pm_fleet_t *self, pm_fleet_why_fn *fn, void *arg)
{
    self->why_fn = fn;
    self->why_arg = arg;
}

void
pm_fleet_on_test(pm_fleet_t *self, pm_fleet_test_fn *fn, void *arg)
{
    self->test_fn = fn;
    self->test_arg = arg;
}

bool
pm_fleet_settled(pm_fleet_t *self)
{
    return zclock_mono() - self->started >= self->opts.stale_after_ms;
}

/* The DKIM keys policy P names go with it into PUB (none twice), over
 * CURVE only; an agent needs them before it can enable signing. */
static void
s_attach_secrets_of(pm_fleet_t *self, Pm__Publication *pub, const Pm__Policy *p)
{
    pub->secrets =
        pm_realloc(pub->secrets, (pub->n_secrets + p->n_dkim_domains + 1) *
                                     sizeof *pub->secrets);
    for (size_t i = 0; i < p->n_dkim_domains; i++) {
        const char *id = p->dkim_domains[i]->key;
        bool have = false;
        for (size_t k = 0; k < pub->n_secrets && !have; k++)
            have = strcmp(pub->secrets[k]->id, id) == 0;
        uint8_t *data = NULL;
        size_t len = 0;
        if (have || pm_store_secret_get(self->store, id, &data, &len) != PM_OK)
            continue;
        Pm__Secret *sec = pm_malloc(sizeof *sec);
        pm__secret__init(sec);
        sec->id = pm_strdup(id);
        sec->data.data = data;
        sec->data.len = len;
        pub->secrets[pub->n_secrets++] = sec;
    }
}

/* Those of the revision PUB carries. */
static void
s_attach_secrets(pm_fleet_t *self, Pm__Publication *pub)
{
    s_attach_secrets_of(self, pub, pub->revision->policy);
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

bool
pm_fleet_test(pm_fleet_t *self, const char *name, const Pm__PolicyTest *test)
{
    pm_fleet_node_t *n = zhashx_lookup(self->nodes, name);
    if (!n || !pm_fleet_served(n))
        return false;
    Pm__Publication pub = PM__PUBLICATION__INIT;
    pub.kind = PM__PUBLICATION__KIND__TEST;
    pub.test = (Pm__PolicyTest *)test; /* only read by the packer */
    s_attach_secrets_of(self, &pub, test->trial);
    if (test->head)
        s_attach_secrets_of(self, &pub, test->head);
    zmq_msg_t msg;
    s_msg_init(&msg, &pub);
    s_free_secrets(&pub);
    pm_fleet_send_to(self, n, &msg);
    zmq_msg_close(&msg);
    return true;
}

void
pm_fleet_publish(pm_fleet_t *self, uint64_t rev)
{
    /* the head first: were the revision unreadable now, heartbeats would
     * still carry it, and each agent seeing the gap asks for a snapshot,
     * which reads it again */
    self->head = rev;
    for (pm_fleet_node_t *n = zhashx_first(self->nodes); n;
         n = zhashx_next(self->nodes))
        n->pinned = 0; /* a canary push is over: one head for everyone */
    Pm__Revision *r = NULL;
    if (pm_store_get(self->store, rev, &r) != PM_OK) {
        pm_error("cannot read revision %llu to publish it; the agents ask "
                 "for it again",
                 (unsigned long long)rev);
        return;
    }
    Pm__Publication pub = PM__PUBLICATION__INIT;
    pub.kind = PM__PUBLICATION__KIND__UPDATE;
    pub.head = rev;
    pub.revision = r;
    self->published++;
    self->sent[rev % PM_FLEET_SENT_KEPT].rev = rev;
    self->sent[rev % PM_FLEET_SENT_KEPT].at = zclock_mono();
    s_attach_secrets(self, &pub);
    s_broadcast(self, &pub);
    s_free_secrets(&pub);
    pm_fleet_set_antivirus(self, r->policy);
    pm__revision__free_unpacked(r, NULL);
}

/* The head revision for one agent that asked (HELLO or RESYNC); the next
 * one is due a gap later. */
static void
s_send_snapshot(pm_fleet_t *self, pm_fleet_node_t *n)
{
    n->snapshot_pending = false;
    n->snapshot_due = zclock_mono() + self->opts.snapshot_gap_ms;
    if (!pm_fleet_served(n))
        return;
    Pm__Publication pub = PM__PUBLICATION__INIT;
    Pm__Revision *r = NULL;
    uint64_t rev = n->pinned ? n->pinned : self->head;
    pub.head = rev;
    pub.node = n->name;
    if (rev && pm_store_get(self->store, rev, &r) == PM_OK) {
        pub.kind = PM__PUBLICATION__KIND__SNAPSHOT;
        pub.revision = r;
        s_attach_secrets(self, &pub);
    }
    zmq_msg_t msg;
    s_msg_init(&msg, &pub);
    pm_fleet_send_to(self, n, &msg);
    zmq_msg_close(&msg);
    /* what it needs besides the policy, as of the last tick: at most a
     * heartbeat old, and cheap however many agents reconnect at once */
    pm_fleet_members_send(self, n, true);
    s_free_secrets(&pub);
    if (r)
        pm__revision__free_unpacked(r, NULL);
}

/* Remembers that a snapshot is due at AT for some node. */
static void
s_note_pending(pm_fleet_t *self, int64_t at)
{
    if (!self->pending || at < self->pending_at)
        self->pending_at = at;
    self->pending = true;
}

/* HELLO and RESYNC ask for the head. A node gets at most one snapshot per
 * gap however often it asks: a request inside the gap is remembered and
 * answered when the gap ends (s_send_pending), so flooding costs one
 * snapshot per gap and an honest agent always gets its answer. */
static void
s_want_snapshot(pm_fleet_t *self, pm_fleet_node_t *n,
                const Pm__AgentReport *rep)
{
    const char *what = rep->kind == PM__AGENT_REPORT__KIND__HELLO
                           ? "connected"
                           : "asks to resync";
    int64_t wait = n->snapshot_due - zclock_mono();
    if (wait <= 0) {
        if (s_log_ok(n))
            pm_info("node %s %s at revision %llu: sending the head (%llu)",
                    n->label, what, (unsigned long long)rep->applied_rev,
                    (unsigned long long)self->head);
        s_send_snapshot(self, n);
    } else if (!n->snapshot_pending) {
        pm_debug("node %s %s at revision %llu: the head follows in %lld ms",
                 n->label, what, (unsigned long long)rep->applied_rev,
                 (long long)wait);
        n->snapshot_pending = true;
        s_note_pending(self, n->snapshot_due);
    }
}

/* Sends the snapshots whose gap has ended. */
static void
s_send_pending(pm_fleet_t *self, int64_t now)
{
    if (!self->pending || now < self->pending_at)
        return;
    self->pending = false;
    for (pm_fleet_node_t *n = zhashx_first(self->nodes); n;
         n = zhashx_next(self->nodes)) {
        if (!n->snapshot_pending)
            continue;
        if (n->snapshot_due > now) {
            s_note_pending(self, n->snapshot_due);
            continue;
        }
        pm_debug("node %s: sending the head (%llu) it asked for", n->label,
                 (unsigned long long)self->head);
        s_send_snapshot(self, n);
    }
}

/* ---- receiving ------------------------------------------------------------
 */

/* The first report of N applying a revision published since the start:
 * one push -> ack latency (a node that skips revisions acknowledges only
 * the one it reached). */
static void
s_note_ack(pm_fleet_t *self, pm_fleet_node_t *n, uint64_t applied)
{
    if (applied <= n->acked ||
        self->sent[applied % PM_FLEET_SENT_KEPT].rev != applied)
        return;
    n->acked = applied;
    int64_t at = self->sent[applied % PM_FLEET_SENT_KEPT].at;
    pm_metrics_hist_observe(&self->ack, (double)(zclock_mono() - at) / 1e3);
}

/* What a report of N says besides its status: answers and applies. */
static void
s_take_answer(pm_fleet_t *self, pm_fleet_node_t *n, Pm__AgentReport *rep)
{
    if (rep->kind == PM__AGENT_REPORT__KIND__WHY_ANSWER) {
        if (self->why_fn)
            self->why_fn(n->name, rep, self->why_arg);
    } else if (rep->kind == PM__AGENT_REPORT__KIND__TEST_ANSWER) {
        if (self->test_fn)
            self->test_fn(n->name, rep, self->test_arg);
    } else if (rep->kind == PM__AGENT_REPORT__KIND__APPLIED) {
        if (!*n->status->apply_error) {
            pm_debug("node %s applied revision %llu", n->label,
                     (unsigned long long)rep->applied_rev);
        } else if (s_log_ok(n)) {
            char *error =
                pm_text_escape(n->status->apply_error, S_LOG_TEXT_MAX);
            pm_warn("node %s failed to apply: %s (keeps revision %llu)",
                    n->label, error, (unsigned long long)rep->applied_rev);
            free(error);
        }
    }
}

/* An answer to a WHY or TEST publication says nothing of the node's
 * state: a test's comes from a thread of the agent that knows no revision
 * (applied_rev 0), and taking it would show the node at revision 0 and
 * could drop its revision's retention pin until the next heartbeat. */
static bool
s_is_answer(const Pm__AgentReport *rep)
{
    return rep->kind == PM__AGENT_REPORT__KIND__WHY_ANSWER ||
           rep->kind == PM__AGENT_REPORT__KIND__TEST_ANSWER;
}

static void
s_take_report(pm_fleet_t *self, pm_fleet_node_t *n, Pm__AgentReport *rep)
{
    bool answer = s_is_answer(rep);
    if (rep->status && !answer) {
        pm_wire_set_string(&rep->status->name, n->name);
        rep->status->applied_rev = rep->applied_rev;
        if (pm_nodereport_own_endpoint(rep->status) && s_log_ok(n))
            pm_warn("node %s: its peer endpoint is not tcp://HOST:PORT: "
                    "not passed on to the other nodes",
                    n->label);
        pm_nodereport_own_cooldowns(n->name, self->mirrors, self->n_mirrors,
                                    rep->status, time(NULL));
        n->dirty = n->dirty || pm_nodereport_changed(n->status, rep->status);
        size_t edits = pm_nodereport_drift_history(n->label, n->status,
                                                   rep->status, s_log_room(n));
        s_log_take(n, edits); /* logged as many as there was room for */
        if (pm_nodereport_members_differ(n->status, rep->status))
            self->members_dirty = true;
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
    if (!answer) {
        n->status->applied_rev = rep->applied_rev;
        s_note_ack(self, n, rep->applied_rev);
    }
    n->seen_mono = zclock_mono();
    n->seen_wall = time(NULL);
    n->status->last_seen = n->seen_wall;
    if (rep->kind == PM__AGENT_REPORT__KIND__HELLO ||
        rep->kind == PM__AGENT_REPORT__KIND__RESYNC) {
        s_want_snapshot(self, n, rep); /* MEMBERS, whole, with it */
    } else if (!answer) {
        pm_fleet_members_heal(self, n, rep->members_epoch);
    }
    s_take_answer(self, n, rep);
}

/* The node BODY comes from, or NULL: the key its connection authenticated
 * with (User-Id) must be enrolled for the name it authenticated as (name)
 * now, not only when it connected. Nothing is decoded before this. */
static pm_fleet_node_t *
s_sender(pm_fleet_t *self, zframe_t *body)
{
    const char *role = zframe_meta(body, "role");
    const char *name = zframe_meta(body, "name");
    const char *key = zframe_meta(body, "User-Id");
    if (!role || !name || !key || strcmp(role, PM_ROLE_AGENT) != 0) {
        pm_debug("agent socket: dropped a message from a key that is not "
                 "an enrolled agent");
        return NULL;
    }
    pm_fleet_node_t *n = zhashx_lookup(self->nodes, name);
    if (!n || !s_key_enrolled(n, key)) {
        s_scan_enrolled(self, false); /* enrolled by hand a moment ago? */
        n = zhashx_lookup(self->nodes, name);
    }
    if (n && s_key_enrolled(n, key))
        return n;
    /* a key withdrawn or replaced since its connection was made */
    char *label = pm_text_escape(name, S_LOG_NAME_MAX);
    pm_debug("node %s: message from a key not enrolled for it (now) dropped",
             label);
    free(label);
    return NULL;
}

/* Replies to N go to the connection it last reported on. */
static void
s_set_route(pm_fleet_t *self, pm_fleet_node_t *n, zframe_t **route_p,
            const char *key)
{
    if (strcmp(n->route_key, key) != 0)
        self->members_dirty = true; /* the key MEMBERS names it by */
    zframe_destroy(&n->route);
    n->route = *route_p;
    *route_p = NULL;
    snprintf(n->route_key, sizeof n->route_key, "%s", key);
}

void
pm_fleet_handle(pm_fleet_t *self)
{
    zframe_t *route = zframe_recv(self->router);
    zframe_t *body =
        route && zsock_rcvmore(self->router) ? zframe_recv(self->router) : NULL;
    pm_fleet_node_t *n = body ? s_sender(self, body) : NULL;
    Pm__AgentReport *rep = NULL;
    char *why = NULL;
    if (n && pm_wire_unpack_agent_report(zframe_data(body), zframe_size(body),
                                         &rep, &why) != PM_OK) {
        if (s_log_ok(n)) {
            char *shown = pm_text_escape(why, S_LOG_TEXT_MAX);
            pm_warn("node %s: malformed report dropped: %s", n->label, shown);
            free(shown);
        }
    } else if (n) {
        s_set_route(self, n, &route, zframe_meta(body, "User-Id"));
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
    for (pm_fleet_node_t *node = zhashx_first(self->nodes); node;
         node = zhashx_next(self->nodes))
        if ((node->dirty || (all && node->seen_mono)) && node->status)
            dirty[n++] = node->status;
    int rc = n ? pm_store_node_put_many(self->store, dirty, n) : PM_OK;
    if (rc != PM_OK)
        pm_warn("cannot store node status: %s", pm_strerror(rc));
    else
        for (pm_fleet_node_t *node = zhashx_first(self->nodes); node;
             node = zhashx_next(self->nodes))
            node->dirty = false;
    free(dirty);
}

static void
s_heartbeat(pm_fleet_t *self)
{
    Pm__Publication pub = PM__PUBLICATION__INIT;
    pub.kind = PM__PUBLICATION__KIND__HEARTBEAT;
    pub.head = self->head;
    s_broadcast(self, &pub);
    /* changes are written every tick; "last seen" alone every 30 */
    s_flush(self, ++self->ticks % 30 == 0);
    s_scan_enrolled(self, self->ticks % S_RESCAN_TICKS == 0);
    /* what a node's minute suppressed is said when it ends, even if the
     * node says nothing more */
    int64_t now = zclock_mono();
    for (pm_fleet_node_t *n = zhashx_first(self->nodes); n;
         n = zhashx_next(self->nodes))
        if (n->log_suppressed)
            s_log_roll(n, now);
    /* sent when it changed; one lost on the way shows in reports */
    pm_fleet_members_refresh(self);
}

int
pm_fleet_tick(pm_fleet_t *self)
{
    int64_t now = zclock_mono();
    s_send_pending(self, now);
    if (now >= self->next_tick) {
        self->next_tick = now + self->opts.heartbeat_ms;
        s_heartbeat(self);
    }
    int64_t wait = self->next_tick - now;
    if (self->pending && self->pending_at - now < wait)
        wait = self->pending_at - now;
    return wait > 0 ? (int)wait : 0;
}

/* ---- views and enrolment ------------------------------------------------ */

static int
s_by_name(const void *a, const void *b)
{
    return strcmp((*(Pm__NodeStatus *const *)a)->name,
                  (*(Pm__NodeStatus *const *)b)->name);
}

void
pm_fleet_nodes(pm_fleet_t *self, Pm__NodeStatus ***nodes, size_t *n)
{
    s_scan_enrolled(self, false);
    int64_t now = zclock_mono();
    Pm__NodeStatus **all = pm_calloc(zhashx_size(self->nodes) + 1, sizeof *all);
    size_t count = 0;
    for (pm_fleet_node_t *node = zhashx_first(self->nodes); node;
         node = zhashx_next(self->nodes)) {
        if (!node->n_keys)
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

Pm__Publication *
pm_fleet_members(pm_fleet_t *self)
{
    pm_fleet_members_refresh(self);
    /* bytes packed here a moment ago, not read from anyone: only a failed
     * allocation can make this fail, and that aborts everywhere */
    Pm__Publication *pub = pm__publication__unpack(
        NULL, zmq_msg_size(&self->members), zmq_msg_data(&self->members));
    if (!pub)
        abort();
    return pub;
}

int
pm_fleet_enroll(pm_fleet_t *self, const char *name, const char *pubkey,
                char **why)
{
    if (pm_keys_enroll(self->clients_dir, name, PM_ROLE_AGENT, pubkey, why))
        return -1;
    /* read now, whatever the directory's mtime says: a replaced key must
     * stop being served before the reply says it is enrolled */
    s_scan_enrolled(self, true);
    return 0;
}

int
pm_fleet_withdraw(pm_fleet_t *self, const char *name, char **why)
{
    /* the stored status first: it pins the revision the node ran
     * (history retention) and would greet a node enrolled later under
     * the name. Should the key stay, its next report stores it again. */
    int rc = pm_store_node_del(self->store, name);
    if (rc != PM_OK && rc != PM_ENOTFOUND) {
        pm_why(why, "fleet",
               "node %s: its status could not be removed from "
               "the store: %s",
               name, pm_strerror(rc));
        return -1;
    }
    if (pm_keys_withdraw(self->clients_dir, name, PM_ROLE_AGENT, why))
        return -1;
    zhashx_delete(self->nodes, name);
    self->members_dirty = true;
    s_scan_enrolled(self, true);
    return 0;
}

void
pm_fleet_hold(pm_fleet_t *self, uint64_t head)
{
    self->head = head;
}

bool
pm_fleet_pin(pm_fleet_t *self, const char *name, uint64_t rev)
{
    pm_fleet_node_t *n = zhashx_lookup(self->nodes, name);
    if (!n)
        return false;
    n->pinned = rev;
    if (!pm_fleet_served(n))
        return false;
    s_send_snapshot(self, n);
    return true;
}

void
pm_fleet_stats(const pm_fleet_t *self, pm_fleet_stats_t *out)
{
    out->head = self->head;
    out->published = self->published;
    out->ack = self->ack;
}
