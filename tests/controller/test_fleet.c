/* test_fleet.c - the controller against hostile or outdated peers: an
 * agent that floods HELLO and never reads, an agent whose key was replaced,
 * an admin whose key was removed.
 *
 * Each test runs the real privmta-controller as a child process (so that
 * its memory can be read from /proc and nothing of the test's own counts)
 * on ipc:// endpoints in a fresh state directory. Agents are small actors
 * in this process that speak the agent protocol and record what they were
 * sent; the admin is a REQ socket that stays connected across requests.
 *
 * Environment:
 *   PM_TEST_FLOOD_S      seconds the hostile agent floods (default 30,
 *                        within the 240 s ctest timeout of this binary);
 *   PM_TEST_CONTROLLER   the controller binary to test (default: the one
 *                        built here), e.g. to watch an older one fail.
 */
#include <criterion/criterion.h>

#include <czmq.h>
#include <errno.h>
#include <jansson.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "pm_error.h"
#include "pm_fleet.h"
#include "pm_keys.h"
#include "pm_members.h"
#include "pm_mem.h"
#include "pm_policy.h"
#include "pm_store.h"
#include "pm_wire.h"
#include "testdir.h"
#include "testsh.h"

#define S_REVS 256      /* revisions a test may push */
#define S_WAIT_MS 30000 /* give up on something that should happen */
#define S_RSS_LIMIT_KIB (32 * 1024)

static char s_dir[64];
static char s_ctl_ep[128], s_agent_ep[128];
static char s_server_key[41];
static pid_t s_pid;
/* liveness thresholds for the next controller started */
static int s_stale_ms, s_down_ms;
/* its metrics_listen ("" none) */
static char s_metrics[64];

/* ---- fixture ------------------------------------------------------------ */

/* "DIR/REST" in a static buffer (two slots, for two paths at once). */
static const char *
s_path(const char *rest)
{
    static char buf[2][256];
    static int slot;
    slot = !slot;
    snprintf(buf[slot], sizeof buf[slot], "%s/%s", s_dir, rest);
    return buf[slot];
}

static void
s_setup(void)
{
    strcpy(s_dir, "/tmp/pm_fleet_test.XXXXXX");
    cr_assert_not_null(mkdtemp(s_dir));
    char *why = NULL;
    zcert_t *server = pm_keys_controller(s_dir, &why);
    cr_assert_not_null(server, "%s", why ? why : "");
    snprintf(s_server_key, sizeof s_server_key, "%s", zcert_public_txt(server));
    zcert_destroy(&server);
    snprintf(s_ctl_ep, sizeof s_ctl_ep, "ipc://%s/ctl.sock", s_dir);
    snprintf(s_agent_ep, sizeof s_agent_ep, "ipc://%s/agents.sock", s_dir);
    s_stale_ms = 5000;
    s_down_ms = 30000;
    s_metrics[0] = '\0';
}

static void
s_controller_kill(void)
{
    if (s_pid > 0) {
        kill(s_pid, SIGKILL);
        waitpid(s_pid, NULL, 0);
    }
    s_pid = 0;
}

static void
s_teardown(void)
{
    s_controller_kill();
    testdir_remove(s_dir);
    zsys_shutdown();
}

TestSuite(fleet, .init = s_setup, .fini = s_teardown);

/* The controller's resident set in KiB, from /proc. */
static long
s_rss_kib(void)
{
    char path[64], line[256];
    long kib = -1;
    snprintf(path, sizeof path, "/proc/%d/status", (int)s_pid);
    FILE *f = fopen(path, "r");
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, "VmRSS:", 6) == 0)
            kib = strtol(line + 6, NULL, 10);
    if (f)
        fclose(f);
    return kib;
}

/* Starts the controller with heartbeats every HEARTBEAT_MS. Under ASan,
 * freed memory is held in a quarantine (256 MiB by default) before it is
 * reused; it is kept small here so that RSS shows what the controller
 * holds, not what the sanitizer delays. */
static void
s_controller_start(int heartbeat_ms)
{
    const char *bin = getenv("PM_TEST_CONTROLLER");
    char *def = pm_asprintf("%s/controller/privmta-controller", PM_BUILD_DIR);
    char hb[16], stale[16], down[16];
    snprintf(hb, sizeof hb, "%d", heartbeat_ms);
    snprintf(stale, sizeof stale, "%d", s_stale_ms);
    snprintf(down, sizeof down, "%d", s_down_ms);
    const char *asan = getenv("ASAN_OPTIONS");
    char *opts = pm_asprintf("%s%squarantine_size_mb=4", asan ? asan : "",
                             asan && *asan ? ":" : "");
    fflush(NULL);
    s_pid = fork();
    cr_assert_geq(s_pid, 0);
    if (s_pid == 0) {
        /* a failed assertion ends the test process: not the controller */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        int fd =
            open(s_path("controller.log"), O_WRONLY | O_CREAT | O_APPEND, 0600);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        setenv("ASAN_OPTIONS", opts, 1);
        const char *prog = bin && *bin ? bin : def;
        execl(prog, prog, "--state-dir", s_dir, "--endpoint", s_ctl_ep,
              "--agent-endpoint", s_agent_ep, "--heartbeat-ms", hb,
              "--stale-after-ms", stale, "--down-after-ms", down, "--log-level",
              "info", "--metrics-listen", s_metrics, (char *)NULL);
        _exit(127);
    }
    free(def);
    free(opts);
}

/* Copies the controller's log to stderr (when a test is about to fail:
 * the state directory is removed afterwards). */
static void
s_show_log(void)
{
    FILE *f = fopen(s_path("controller.log"), "r");
    char line[1024];
    fprintf(stderr, "---- controller log ----\n");
    while (f && fgets(line, sizeof line, f))
        fputs(line, stderr);
    if (f)
        fclose(f);
}

/* Stops the controller and expects a clean exit (no leak, no crash). */
static void
s_controller_stop(void)
{
    int status = 0;
    kill(s_pid, SIGTERM);
    cr_assert_eq(waitpid(s_pid, &status, 0), s_pid);
    s_pid = 0;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        s_show_log();
    cr_expect(WIFEXITED(status) && WEXITSTATUS(status) == 0,
              "controller exit status %#x", status);
}

/* ---- the admin API --------------------------------------------------- */

/* A REQ socket to the API as CERT; it stays connected across requests, as
 * a long-lived client's would. */
static zsock_t *
s_api_as(zcert_t *cert)
{
    zsock_t *sock = zsock_new(ZMQ_REQ);
    zcert_apply(cert, sock);
    zsock_set_curve_serverkey(sock, s_server_key);
    zsock_set_linger(sock, 0);
    cr_assert_eq(zsock_connect(sock, "%s", s_ctl_ep), 0);
    return sock;
}

/* The same, as the key in SECRET_FILE. */
static zsock_t *
s_api(const char *secret_file)
{
    char *why = NULL;
    zcert_t *cert = pm_keys_load(secret_file, &why);
    cr_assert_not_null(cert, "%s", why ? why : "");
    zsock_t *sock = s_api_as(cert);
    zcert_destroy(&cert);
    return sock;
}

/* Sends REQ, not waiting for the reply. */
static void
s_send(zsock_t *sock, const Pm__Request *req)
{
    size_t len = 0;
    uint8_t *buf = pm_wire_pack(&req->base, &len);
    zframe_t *f = zframe_new(buf, len);
    free(buf);
    cr_assert_eq(zframe_send(&f, sock, 0), 0);
}

/* The next reply on SOCK, checked; caller frees it. Waits S_WAIT_MS at
 * most (then shows the controller's log). */
static Pm__Response *
s_answer(zsock_t *sock)
{
    zpoller_t *poller = zpoller_new(sock, NULL);
    void *which = zpoller_wait(poller, S_WAIT_MS);
    zpoller_destroy(&poller);
    if (which != sock)
        s_show_log();
    cr_assert_eq(which, sock, "no answer from the controller");
    zframe_t *f = zframe_recv(sock);
    cr_assert_not_null(f);
    Pm__Response *resp = NULL;
    char *why = NULL;
    int rc =
        pm_wire_unpack_response(zframe_data(f), zframe_size(f), &resp, &why);
    zframe_destroy(&f);
    cr_assert_eq(rc, PM_OK, "%s", why ? why : "");
    return resp;
}

/* Sends REQ and returns the checked reply; caller frees it. */
static Pm__Response *
s_ask(zsock_t *sock, const Pm__Request *req)
{
    s_send(sock, req);
    return s_answer(sock);
}

static Pm__Request
s_req(Pm__Request__Op op)
{
    Pm__Request req = PM__REQUEST__INIT;
    req.op = op;
    req.expect_rev = -1;
    return req;
}

/* Waits until the controller answers a PING as the first admin. */
static zsock_t *
s_admin_ready(void)
{
    zsock_t *sock = NULL;
    Pm__Request ping = s_req(PM__REQUEST__OP__PING);
    int64_t deadline = zclock_mono() + S_WAIT_MS;
    while (zclock_mono() < deadline) {
        sock = s_api(s_path("keys/admin.cert_secret"));
        zsock_set_rcvtimeo(sock, 200);
        size_t len = 0;
        uint8_t *buf = pm_wire_pack(&ping.base, &len);
        zframe_t *f = zframe_new(buf, len);
        free(buf);
        zframe_send(&f, sock, 0);
        f = zframe_recv(sock);
        bool up = f != NULL;
        zframe_destroy(&f);
        if (up) {
            zsock_set_rcvtimeo(sock, -1);
            return sock;
        }
        zsock_destroy(&sock);
    }
    s_show_log();
    cr_assert_fail("the controller did not come up");
    return NULL;
}

/* Commits a new revision (a new subject prefix) and returns its number. */
static uint64_t
s_push(zsock_t *api, unsigned i)
{
    char value[32];
    snprintf(value, sizeof value, "[t%u]", i);
    Pm__Edit e = PM__EDIT__INIT, *edits[1] = {&e};
    e.key = (char *)"antispam.subject_prefix";
    e.op = PM__EDIT__OP__ASSIGN;
    e.value = value;
    Pm__Request req = s_req(PM__REQUEST__OP__SET);
    req.edits = edits;
    req.n_edits = 1;
    Pm__Response *r = s_ask(api, &req);
    cr_assert_eq(r->status, PM__RESPONSE__STATUS__OK, "%s", r->error);
    cr_assert_not_null(r->revision);
    uint64_t rev = r->revision->number;
    cr_assert_lt(rev, S_REVS);
    pm__response__free_unpacked(r, NULL);
    return rev;
}

/* ---- an agent that behaves ---------------------------------------------- */

/* One agent: speaks the protocol as privmta-agent does (HELLO until
 * answered, heartbeats, RESYNC on a gap, APPLIED after each revision) and
 * records what it was sent. The counters are read by the test thread. */
typedef struct {
    const char *name;
    const char *address;
    const char *peer_endpoint; /* NULL: none */
    zcert_t *cert;             /* the test's */
    int heartbeat_ms;
    _Atomic uint64_t applied;
    _Atomic unsigned received, snapshots, heartbeats, reports;
    _Atomic unsigned checks;        /* CHECK publications received */
    _Atomic bool got[S_REVS];       /* revisions it applied */
    _Atomic int64_t got_at[S_REVS]; /* when, zclock_usecs() */
    /* MEMBERS: how many, whether one came right after each SNAPSHOT
     * (snapshots_then_members counts those), how many were changes
     * (deltas), and the whole list they make (under lock; freed when the
     * actor ends). drop_deltas: that many changes are lost on the way. */
    _Atomic unsigned members, snapshots_then_members, deltas, drop_deltas;
    pthread_mutex_t lock;
    Pm__Publication *last_members;
    /* the actor's own */
    zsock_t *dealer;
    bool answered;
    bool after_snapshot; /* the last message was a SNAPSHOT */
    int64_t next_resync;
} s_agent_t;

static void
s_report(s_agent_t *a, Pm__AgentReport__Kind kind)
{
    Pm__NodeStatus st = PM__NODE_STATUS__INIT;
    Pm__AgentReport rep = PM__AGENT_REPORT__INIT;
    st.name = (char *)a->name;
    st.address = (char *)a->address;
    if (a->peer_endpoint)
        st.peer_endpoint = (char *)a->peer_endpoint;
    st.applied_rev = atomic_load(&a->applied);
    rep.kind = kind;
    rep.applied_rev = st.applied_rev;
    rep.status = &st;
    pthread_mutex_lock(&a->lock);
    rep.members_epoch = a->last_members ? a->last_members->members_epoch : 0;
    pthread_mutex_unlock(&a->lock);
    size_t len = 0;
    uint8_t *buf = pm_wire_pack(&rep.base, &len);
    zframe_t *f = zframe_new(buf, len);
    free(buf);
    if (zframe_send(&f, a->dealer, ZFRAME_DONTWAIT) != 0)
        zframe_destroy(&f);
    else
        atomic_fetch_add(&a->reports, 1);
}

static void
s_apply(s_agent_t *a, uint64_t rev)
{
    if (rev < S_REVS && !atomic_load(&a->got[rev])) {
        atomic_store(&a->got_at[rev], zclock_usecs());
        atomic_store(&a->got[rev], true);
    }
    atomic_store(&a->applied, rev);
    s_report(a, PM__AGENT_REPORT__KIND__APPLIED);
}

static void
s_resync(s_agent_t *a)
{
    if (zclock_mono() < a->next_resync)
        return;
    a->next_resync = zclock_mono() + a->heartbeat_ms;
    s_report(a, PM__AGENT_REPORT__KIND__RESYNC);
}

/* Takes PUB, whole or a change, into A's whole MEMBERS, as the agent
 * does (pm_members_apply); a change from another epoch is dropped. */
static void
s_on_members(s_agent_t *a, const Pm__Publication *pub, bool after_snapshot)
{
    if (after_snapshot)
        atomic_fetch_add(&a->snapshots_then_members, 1);
    atomic_fetch_add(&a->members, 1);
    if (pub->members_base) {
        atomic_fetch_add(&a->deltas, 1);
        unsigned drop = atomic_load(&a->drop_deltas);
        if (drop &&
            atomic_compare_exchange_strong(&a->drop_deltas, &drop, drop - 1))
            return;
    }
    pthread_mutex_lock(&a->lock);
    size_t len = 0;
    uint8_t *buf = pm_members_apply(a->last_members, pub, &len);
    if (buf) {
        if (a->last_members)
            pm__publication__free_unpacked(a->last_members, NULL);
        a->last_members = pm__publication__unpack(NULL, len, buf);
        free(buf);
    }
    pthread_mutex_unlock(&a->lock);
}

static void
s_on_publication(s_agent_t *a, Pm__Publication **pub_p)
{
    const Pm__Publication *pub = *pub_p;
    atomic_fetch_add(&a->received, 1);
    a->answered = true;
    bool after_snapshot = a->after_snapshot;
    a->after_snapshot = pub->kind == PM__PUBLICATION__KIND__SNAPSHOT;
    uint64_t applied = atomic_load(&a->applied);
    if (pub->kind == PM__PUBLICATION__KIND__MEMBERS) {
        s_on_members(a, pub, after_snapshot);
    } else if (pub->kind == PM__PUBLICATION__KIND__HEARTBEAT) {
        atomic_fetch_add(&a->heartbeats, 1);
        if (pub->head > applied)
            s_resync(a);
    } else if (pub->kind == PM__PUBLICATION__KIND__SNAPSHOT) {
        atomic_fetch_add(&a->snapshots, 1);
        s_apply(a, pub->revision ? pub->revision->number : 0);
    } else if (pub->kind == PM__PUBLICATION__KIND__CHECK) {
        atomic_fetch_add(&a->checks, 1);
    } else if (!pub->revision) {
        return; /* another kind these agents do not act on */
    } else if (pub->revision->number == applied + 1) {
        s_apply(a, pub->revision->number);
    } else if (pub->revision->number > applied) {
        s_resync(a);
    }
}

static void
s_agent_actor(zsock_t *pipe, void *arg)
{
    s_agent_t *a = arg;
    a->dealer = zsock_new(ZMQ_DEALER);
    zcert_apply(a->cert, a->dealer);
    zsock_set_curve_serverkey(a->dealer, s_server_key);
    zsock_set_linger(a->dealer, 0);
    zsock_set_reconnect_ivl(a->dealer, 100);
    zsock_connect(a->dealer, "%s", s_agent_ep);
    s_report(a, PM__AGENT_REPORT__KIND__HELLO);
    zsock_signal(pipe, 0);
    zpoller_t *poller = zpoller_new(pipe, a->dealer, NULL);
    int64_t next_beat = zclock_mono() + a->heartbeat_ms;
    for (;;) {
        int64_t wait = next_beat - zclock_mono();
        void *which = zpoller_wait(poller, wait > 0 ? (int)wait : 0);
        if (which == pipe) {
            char *cmd = zstr_recv(pipe);
            bool term = !cmd || strcmp(cmd, "$TERM") == 0;
            if (cmd && strcmp(cmd, "HELLO") == 0) {
                s_report(a, PM__AGENT_REPORT__KIND__HELLO);
                zsock_signal(pipe, 0);
            }
            free(cmd);
            if (term)
                break;
        } else if (which == a->dealer) {
            zframe_t *f = zframe_recv(a->dealer);
            Pm__Publication *pub = NULL;
            if (f && pm_wire_unpack_publication(zframe_data(f), zframe_size(f),
                                                &pub, NULL) == PM_OK) {
                s_on_publication(a, &pub);
                if (pub)
                    pm__publication__free_unpacked(pub, NULL);
            }
            zframe_destroy(&f);
        } else if (zpoller_terminated(poller)) {
            break;
        }
        if (zclock_mono() >= next_beat) {
            next_beat = zclock_mono() + a->heartbeat_ms;
            s_report(a, a->answered ? PM__AGENT_REPORT__KIND__HEARTBEAT
                                    : PM__AGENT_REPORT__KIND__HELLO);
        }
    }
    zpoller_destroy(&poller);
    zsock_destroy(&a->dealer);
    pthread_mutex_lock(&a->lock);
    if (a->last_members)
        pm__publication__free_unpacked(a->last_members, NULL);
    a->last_members = NULL;
    pthread_mutex_unlock(&a->lock);
}

/* A new agent key NAME, enrolled in clients/ by hand (as an operator
 * would copy the certificate there). Caller destroys it. */
static zcert_t *
s_enrolled_key(const char *name)
{
    zcert_t *cert = zcert_new();
    zcert_set_meta(cert, "name", "%s", name);
    zcert_set_meta(cert, "role", "%s", PM_ROLE_AGENT);
    char *why = NULL;
    cr_assert_eq(pm_keys_enroll(s_path("clients"), name, PM_ROLE_AGENT,
                                zcert_public_txt(cert), &why),
                 0, "%s", why ? why : "");
    return cert;
}

static s_agent_t *
s_agent_new(const char *name, const char *address, zcert_t *cert,
            int heartbeat_ms)
{
    s_agent_t *a = pm_calloc(1, sizeof *a);
    a->name = name;
    a->address = address;
    a->cert = cert;
    a->heartbeat_ms = heartbeat_ms;
    pthread_mutex_init(&a->lock, NULL);
    return a;
}

/* Waits until A applied REV or later; false after S_WAIT_MS. */
static bool
s_wait_applied(s_agent_t *a, uint64_t rev)
{
    int64_t deadline = zclock_mono() + S_WAIT_MS;
    while (atomic_load(&a->applied) < rev)
        if (zclock_mono() > deadline)
            return false;
        else
            zclock_sleep(2);
    return true;
}

/* A's latest MEMBERS in one line (caller frees; "" before the first):
 * "mx1+ mx2- | test:mx2 main:mx1 | http://a.example:403:mx2", + for a live
 * member, - for one that is not, duties and cool-downs in their order. */
static char *
s_members_line(s_agent_t *a)
{
    char *line = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&line, &size);
    pthread_mutex_lock(&a->lock);
    const Pm__Publication *pub = a->last_members;
    for (size_t i = 0; pub && i < pub->n_members; i++)
        fprintf(f, "%s%s%s", i ? " " : "", pub->members[i]->name,
                pub->members[i]->live ? "+" : "-");
    for (size_t i = 0; pub && i < pub->n_duties; i++)
        fprintf(f, "%s%s:%s", i ? " " : " | ", pub->duties[i]->database,
                pub->duties[i]->node);
    for (size_t i = 0; pub && i < pub->n_cooldowns; i++)
        fprintf(f, "%s%s:%d:%s", i ? " " : " | ", pub->cooldowns[i]->mirror,
                (int)pub->cooldowns[i]->http_status, pub->cooldowns[i]->node);
    pthread_mutex_unlock(&a->lock);
    fclose(f);
    return line;
}

/* Waits until A's latest MEMBERS reads WANT (see s_members_line). */
static void
s_wait_members(s_agent_t *a, const char *want)
{
    int64_t deadline = zclock_mono() + S_WAIT_MS;
    for (;;) {
        char *line = s_members_line(a);
        bool ok = strcmp(line, want) == 0;
        if (!ok && zclock_mono() > deadline)
            s_show_log();
        cr_assert(ok || zclock_mono() <= deadline,
                  "%s: MEMBERS says \"%s\", not \"%s\"", a->name, line, want);
        free(line);
        if (ok)
            return;
        zclock_sleep(10);
    }
}

/* Waits until A received N more heartbeats than it has now. */
static void
s_wait_heartbeats(s_agent_t *a, unsigned n)
{
    unsigned want = atomic_load(&a->heartbeats) + n;
    int64_t deadline = zclock_mono() + S_WAIT_MS;
    while (atomic_load(&a->heartbeats) < want) {
        cr_assert_lt(zclock_mono(), deadline, "%s: no heartbeats", a->name);
        zclock_sleep(5);
    }
}

/* ---- a hostile agent ----------------------------------------------------- */

/* An enrolled agent that sends HELLO as fast as it can and never reads:
 * what the controller sends piles up against it. */
typedef struct {
    zcert_t *cert;
    _Atomic bool stop;
    _Atomic unsigned long sent;
    pthread_t thread;
} s_flood_t;

static void *
s_flood_run(void *arg)
{
    s_flood_t *fl = arg;
    zsock_t *sock = zsock_new(ZMQ_DEALER);
    zcert_apply(fl->cert, sock);
    zsock_set_curve_serverkey(sock, s_server_key);
    zsock_set_linger(sock, 0);
    zsock_set_rcvhwm(sock, 1);
    zsock_connect(sock, "%s", s_agent_ep);
    /* its status carries text meant for the operator's terminal */
    Pm__NodeStatus st = PM__NODE_STATUS__INIT;
    Pm__AgentReport rep = PM__AGENT_REPORT__INIT;
    st.name = (char *)"evil";
    st.address = (char *)"10.0.0.66\nprivmta: info: forged\x1b[2J";
    st.apply_error = (char *)"boom\r\n\x1b]0;owned\x07";
    rep.kind = PM__AGENT_REPORT__KIND__HELLO;
    rep.status = &st;
    size_t len = 0;
    uint8_t *buf = pm_wire_pack(&rep.base, &len);
    void *raw = zsock_resolve(sock);
    while (!atomic_load(&fl->stop)) {
        if (zmq_send(raw, buf, len, ZMQ_DONTWAIT) >= 0)
            atomic_fetch_add(&fl->sent, 1);
        else
            zclock_sleep(1);
    }
    free(buf);
    zsock_destroy(&sock);
    return NULL;
}

static void
s_flood_start(s_flood_t *fl, zcert_t *cert)
{
    fl->cert = cert;
    cr_assert_eq(pthread_create(&fl->thread, NULL, s_flood_run, fl), 0);
}

static void
s_flood_stop(s_flood_t *fl)
{
    atomic_store(&fl->stop, true);
    pthread_join(fl->thread, NULL);
}

/* Seconds of flooding: PM_TEST_FLOOD_S, default 30. */
static int
s_flood_seconds(void)
{
    const char *v = getenv("PM_TEST_FLOOD_S");
    int n = v ? atoi(v) : 0;
    return n > 0 ? n : 30;
}

/* ---- tests ----------------------------------------------------------- */

#define S_AGENTS 3

/* One enrolled agent floods HELLO (each asks for a full snapshot) and
 * never reads. The controller's memory must stay flat, and every other
 * agent must get every revision pushed meanwhile. */
Test(fleet, hello_flood_does_not_grow_memory_or_starve_others)
{
    static const char *const names[S_AGENTS] = {"mx1", "mx2", "mx3"};
    zcert_t *keys[S_AGENTS], *evil = s_enrolled_key("evil");
    s_agent_t *agents[S_AGENTS];
    zactor_t *actors[S_AGENTS];
    for (size_t i = 0; i < S_AGENTS; i++)
        keys[i] = s_enrolled_key(names[i]);
    s_controller_start(500);
    zsock_t *api = s_admin_ready();
    uint64_t rev = s_push(api, 0);
    for (size_t i = 0; i < S_AGENTS; i++) {
        agents[i] = s_agent_new(names[i], "192.0.2.1", keys[i], 500);
        actors[i] = zactor_new(s_agent_actor, agents[i]);
        cr_assert(s_wait_applied(agents[i], rev), "%s", names[i]);
    }
    /* every code path has run once before the baseline is taken */
    rev = s_push(api, 1);
    for (size_t i = 0; i < S_AGENTS; i++)
        cr_assert(s_wait_applied(agents[i], rev), "%s", names[i]);
    zclock_sleep(1000);
    long base = s_rss_kib(), peak = base;
    cr_assert_gt(base, 0);

    int seconds = s_flood_seconds();
    s_flood_t flood = {0};
    s_flood_start(&flood, evil);
    int64_t end = zclock_mono() + seconds * 1000LL;
    uint64_t first = rev + 1;
    double worst_ms = 0, total_ms = 0;
    while (zclock_mono() < end && rev + 1 < S_REVS) {
        int64_t t0 = zclock_usecs();
        rev = s_push(api, (unsigned)rev + 1);
        for (size_t i = 0; i < S_AGENTS; i++) {
            cr_assert(s_wait_applied(agents[i], rev),
                      "%s did not get revision %llu during the flood", names[i],
                      (unsigned long long)rev);
            double ms =
                (double)(atomic_load(&agents[i]->got_at[rev]) - t0) / 1000.0;
            worst_ms = ms > worst_ms ? ms : worst_ms;
            total_ms += ms;
        }
        long rss = s_rss_kib();
        peak = rss > peak ? rss : peak;
        zclock_sleep(200);
    }
    s_flood_stop(&flood);
    long rss = s_rss_kib();
    peak = rss > peak ? rss : peak;
    unsigned pushes = (unsigned)(rev - first + 1);
    printf("hello flood: %d s, %lu HELLOs sent; controller RSS %ld KiB before, "
           "peak %ld KiB (+%ld KiB); %u revisions pushed meanwhile, "
           "push->applied avg %.1f ms, worst %.1f ms\n",
           seconds, atomic_load(&flood.sent), base, peak, peak - base, pushes,
           total_ms / (pushes * S_AGENTS), worst_ms);
    fflush(stdout);
    cr_expect_gt(atomic_load(&flood.sent), 0);
    cr_expect_leq(peak - base, S_RSS_LIMIT_KIB,
                  "controller RSS grew by %ld KiB during the flood",
                  peak - base);
    for (uint64_t r = first; r <= rev; r++)
        for (size_t i = 0; i < S_AGENTS; i++)
            cr_expect(atomic_load(&agents[i]->got[r]), "%s missed %llu",
                      names[i], (unsigned long long)r);

    for (size_t i = 0; i < S_AGENTS; i++) {
        zactor_destroy(&actors[i]);
        free(agents[i]);
        zcert_destroy(&keys[i]);
    }
    zsock_destroy(&api);
    s_controller_stop();
    zcert_destroy(&evil);
}

/* Counts the snapshots SOCK has received; waits up to MS for more. */
static void
s_count_snapshots(zsock_t *sock, int ms, unsigned *snapshots)
{
    zpoller_t *poller = zpoller_new(sock, NULL);
    int64_t end = zclock_mono() + ms;
    for (int64_t left = ms; left >= 0; left = end - zclock_mono()) {
        if (zpoller_wait(poller, (int)left) != sock)
            break;
        zframe_t *f = zframe_recv(sock);
        Pm__Publication *pub = NULL;
        if (f && pm_wire_unpack_publication(zframe_data(f), zframe_size(f),
                                            &pub, NULL) == PM_OK) {
            if (pub->kind == PM__PUBLICATION__KIND__SNAPSHOT)
                (*snapshots)++;
            pm__publication__free_unpacked(pub, NULL);
        }
        zframe_destroy(&f);
    }
    zpoller_destroy(&poller);
}

/* A burst of HELLO from one node gets one snapshot at once and then at
 * most one per gap (1 s), not one each; the request made inside the gap is
 * still answered when the gap ends. */
Test(fleet, hello_burst_gets_one_snapshot_per_gap)
{
    zcert_t *key = s_enrolled_key("greedy");
    s_controller_start(200);
    zsock_t *api = s_admin_ready();
    s_push(api, 0);
    zsock_t *sock = zsock_new(ZMQ_DEALER);
    zcert_apply(key, sock);
    zsock_set_curve_serverkey(sock, s_server_key);
    zsock_set_linger(sock, 0);
    cr_assert_eq(zsock_connect(sock, "%s", s_agent_ep), 0);
    Pm__AgentReport rep = PM__AGENT_REPORT__INIT;
    rep.kind = PM__AGENT_REPORT__KIND__HELLO;
    size_t len = 0;
    uint8_t *buf = pm_wire_pack(&rep.base, &len);
    int64_t t0 = zclock_mono();
    unsigned snapshots = 0, sent = 0;
    for (; sent < 2000; sent++) {
        cr_assert_geq(zmq_send(zsock_resolve(sock), buf, len, 0), 0);
        if (sent % 100 == 0)
            s_count_snapshots(sock, 0, &snapshots);
    }
    free(buf);
    /* the first is answered at once, the rest once the gap ends */
    int64_t deadline = zclock_mono() + S_WAIT_MS;
    while (snapshots < 2 && zclock_mono() < deadline)
        s_count_snapshots(sock, 100, &snapshots);
    /* and nothing piles up after that */
    s_count_snapshots(sock, 2500, &snapshots);
    int64_t elapsed = zclock_mono() - t0;
    printf("hello burst: %u HELLOs, %u snapshots in %lld ms\n", sent, snapshots,
           (long long)elapsed);
    cr_expect_geq(snapshots, 2);
    cr_expect_leq(snapshots, elapsed / PM_FLEET_SNAPSHOT_GAP_MS + 2,
                  "%u snapshots in %lld ms", snapshots, (long long)elapsed);
    zsock_destroy(&sock);
    zsock_destroy(&api);
    s_controller_stop();
    zcert_destroy(&key);
}

/* The NODES entry of NAME, or NULL. */
static const Pm__NodeStatus *
s_node_entry(const Pm__Response *r, const char *name)
{
    for (size_t i = 0; i < r->n_nodes; i++)
        if (strcmp(r->nodes[i]->name, name) == 0)
            return r->nodes[i];
    return NULL;
}

/* `node add mx1 NEWKEY` replaces mx1's key: the connection made with the
 * old key gets nothing more (no revision, heartbeat or snapshot, even when
 * it asks), its reports are dropped, and the new key's connection is
 * served. */
Test(fleet, replaced_agent_key_ends_old_session)
{
    zcert_t *old_key = s_enrolled_key("mx1"), *ref_key = s_enrolled_key("mx2");
    zcert_t *new_key = zcert_new();
    s_controller_start(100);
    zsock_t *api = s_admin_ready();
    uint64_t r1 = s_push(api, 1);
    /* the old agent reports faster than the new one: were its reports
     * still taken, its address would show */
    s_agent_t *old = s_agent_new("mx1", "old.example", old_key, 30);
    s_agent_t *ref = s_agent_new("mx2", "ref.example", ref_key, 100);
    zactor_t *old_actor = zactor_new(s_agent_actor, old);
    zactor_t *ref_actor = zactor_new(s_agent_actor, ref);
    cr_assert(s_wait_applied(old, r1));
    cr_assert(s_wait_applied(ref, r1));
    s_wait_heartbeats(old, 2);

    Pm__Request add = s_req(PM__REQUEST__OP__NODE_ADD);
    add.node = (char *)"mx1";
    add.public_key = (char *)zcert_public_txt(new_key);
    Pm__Response *r = s_ask(api, &add);
    cr_assert_eq(r->status, PM__RESPONSE__STATUS__OK, "%s", r->error);
    pm__response__free_unpacked(r, NULL);
    /* what was on its way before the reply has arrived once mx2, served
     * by the same loop, has had two more heartbeats */
    s_wait_heartbeats(ref, 2);
    unsigned seen = atomic_load(&old->received);
    unsigned reports = atomic_load(&old->reports);

    /* no new connection yet: the old route must not be used */
    uint64_t r2 = s_push(api, 2);
    cr_assert(s_wait_applied(ref, r2));
    zstr_send(old_actor, "HELLO");
    zsock_wait(old_actor);
    s_agent_t *new = s_agent_new("mx1", "new.example", new_key, 100);
    zactor_t *new_actor = zactor_new(s_agent_actor, new);
    cr_assert(s_wait_applied(new, r2), "the new key is not served");
    uint64_t r3 = s_push(api, 3);
    cr_assert(s_wait_applied(new, r3));
    cr_assert(s_wait_applied(ref, r3));
    /* longer than the snapshot gap, so a pending snapshot would be out */
    s_wait_heartbeats(ref, 15);

    cr_expect_eq(atomic_load(&old->received), seen,
                 "the old session got %u more messages",
                 atomic_load(&old->received) - seen);
    cr_expect_eq(atomic_load(&old->applied), r1);
    cr_expect_not(atomic_load(&old->got[r2]));
    cr_expect_not(atomic_load(&old->got[r3]));
    cr_expect_gt(atomic_load(&old->reports), reports + 10,
                 "the old agent kept reporting");
    Pm__Request nodes = s_req(PM__REQUEST__OP__NODES);
    for (int i = 0; i < 3; i++) {
        s_wait_heartbeats(new, 1);
        r = s_ask(api, &nodes);
        const Pm__NodeStatus *mx1 = s_node_entry(r, "mx1");
        cr_assert_not_null(mx1);
        cr_expect_str_eq(mx1->address, "new.example",
                         "a report of the old key was taken");
        cr_expect_eq(mx1->applied_rev, r3);
        pm__response__free_unpacked(r, NULL);
    }

    zactor_destroy(&old_actor);
    zactor_destroy(&new_actor);
    zactor_destroy(&ref_actor);
    free(old);
    free(new);
    free(ref);
    zsock_destroy(&api);
    s_controller_stop();
    zcert_destroy(&old_key);
    zcert_destroy(&new_key);
    zcert_destroy(&ref_key);
}

/* Whether the controller's store (read beside it, as privmta-milter
 * reads an agent's) holds a status of node NAME. */
static bool
s_status_stored(const char *name)
{
    pm_store_t *st = NULL;
    Pm__NodeStatus **nodes = NULL;
    size_t n = 0;
    bool found = false;
    if (pm_store_open(s_path("store"), PM_STORE_RDONLY, 0, &st) == PM_OK &&
        pm_store_node_list(st, &nodes, &n) == PM_OK)
        for (size_t i = 0; i < n; i++)
            found |= strcmp(nodes[i]->name, name) == 0;
    pm_store_nodes_free(&nodes, n);
    pm_store_close(&st);
    return found;
}

/* Waits until NAME's status is stored; false after S_WAIT_MS. */
static bool
s_wait_stored(const char *name)
{
    int64_t end = zclock_mono() + S_WAIT_MS;
    while (!s_status_stored(name))
        if (zclock_mono() > end)
            return false;
        else
            zclock_sleep(20);
    return true;
}

/* `node remove mx2` while mx2 is connected: its session gets nothing more,
 * the others go on, and its stored status goes (it pinned the revision
 * mx2 ran against history retention for good). */
Test(fleet, withdrawn_agent_gets_nothing_more)
{
    zcert_t *key1 = s_enrolled_key("mx1"), *key2 = s_enrolled_key("mx2");
    s_controller_start(100);
    zsock_t *api = s_admin_ready();
    uint64_t r1 = s_push(api, 1);
    s_agent_t *mx1 = s_agent_new("mx1", "192.0.2.1", key1, 100);
    s_agent_t *mx2 = s_agent_new("mx2", "192.0.2.2", key2, 100);
    zactor_t *actor1 = zactor_new(s_agent_actor, mx1);
    zactor_t *actor2 = zactor_new(s_agent_actor, mx2);
    cr_assert(s_wait_applied(mx1, r1));
    cr_assert(s_wait_applied(mx2, r1));
    cr_assert(s_wait_stored("mx2"), "mx2's status was stored");

    Pm__Request rm = s_req(PM__REQUEST__OP__NODE_REMOVE);
    rm.node = (char *)"mx2";
    Pm__Response *r = s_ask(api, &rm);
    cr_assert_eq(r->status, PM__RESPONSE__STATUS__OK, "%s", r->error);
    pm__response__free_unpacked(r, NULL);
    s_wait_heartbeats(mx1, 2);
    unsigned seen = atomic_load(&mx2->received);
    uint64_t r2 = s_push(api, 2);
    cr_assert(s_wait_applied(mx1, r2));
    zstr_send(actor2, "HELLO");
    zsock_wait(actor2);
    s_wait_heartbeats(mx1, 15); /* longer than the snapshot gap */
    cr_expect_eq(atomic_load(&mx2->received), seen);
    cr_expect_not(atomic_load(&mx2->got[r2]));
    Pm__Request nodes = s_req(PM__REQUEST__OP__NODES);
    r = s_ask(api, &nodes);
    cr_expect_null(s_node_entry(r, "mx2"));
    cr_expect_not_null(s_node_entry(r, "mx1"));
    pm__response__free_unpacked(r, NULL);
    cr_expect_not(s_status_stored("mx2"), "mx2's stored status was removed");
    cr_expect(s_status_stored("mx1"));

    zactor_destroy(&actor1);
    zactor_destroy(&actor2);
    free(mx1);
    free(mx2);
    zsock_destroy(&api);
    s_controller_stop();
    zcert_destroy(&key1);
    zcert_destroy(&key2);
}

/* Sends a PING on SOCK and returns the reply's status (and its error in
 * ERROR, a static buffer). */
static Pm__Response__Status
s_ping(zsock_t *sock, const char **error)
{
    static char text[256];
    Pm__Request ping = s_req(PM__REQUEST__OP__PING);
    Pm__Response *r = s_ask(sock, &ping);
    Pm__Response__Status status = r->status;
    snprintf(text, sizeof text, "%s", r->error);
    pm__response__free_unpacked(r, NULL);
    if (error)
        *error = text;
    return status;
}

/* Whether the controller refuses CERT's CURVE handshake on ENDPOINT (its
 * ZAP handler said no) rather than completing it. */
static bool
s_handshake_refused(zcert_t *cert, const char *endpoint)
{
    static int seq;
    char ep[64];
    snprintf(ep, sizeof ep, "inproc://test-fleet-monitor-%d", seq++);
    zsock_t *sock = zsock_new(ZMQ_DEALER);
    zcert_apply(cert, sock);
    zsock_set_curve_serverkey(sock, s_server_key);
    zsock_set_linger(sock, 0);
    cr_assert_eq(zmq_socket_monitor(zsock_resolve(sock), ep,
                                    ZMQ_EVENT_HANDSHAKE_FAILED_AUTH |
                                        ZMQ_EVENT_HANDSHAKE_SUCCEEDED),
                 0);
    zsock_t *mon = zsock_new_pair(ep);
    zsock_set_rcvtimeo(mon, S_WAIT_MS);
    cr_assert_eq(zsock_connect(sock, "%s", endpoint), 0);
    zmsg_t *ev = zmsg_recv(mon);
    zframe_t *f = ev ? zmsg_first(ev) : NULL;
    uint16_t id = 0;
    if (f && zframe_size(f) >= 2)
        memcpy(&id, zframe_data(f), 2);
    zmsg_destroy(&ev);
    zmq_socket_monitor(zsock_resolve(sock), NULL, 0);
    zsock_destroy(&mon);
    zsock_destroy(&sock);
    cr_assert_neq(id, 0, "no handshake with %s", endpoint);
    return id == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH;
}

/* An admin key removed from clients/ (or replaced there) is refused at its
 * next request on a connection it made before; an agent's key is refused
 * at its handshake on the API, an admin's on the agents' socket. */
Test(fleet, removed_admin_key_refused_on_open_connection)
{
    zcert_t *agent = s_enrolled_key("mx1");
    s_controller_start(500);
    zsock_t *api = s_admin_ready();
    char *why = NULL;
    cr_assert_eq(pm_keys_create(s_path("bob"), "bob", PM_ROLE_ADMIN,
                                s_path("clients"), &why),
                 0, "%s", why ? why : "");
    cr_assert_eq(pm_keys_create(s_path("carol"), "carol", PM_ROLE_ADMIN,
                                s_path("clients"), &why),
                 0, "%s", why ? why : "");
    zsock_t *bob = s_api(s_path("bob/bob.cert_secret"));
    zsock_t *carol = s_api(s_path("carol/carol.cert_secret"));
    const char *error = NULL;
    cr_assert_eq(s_ping(bob, &error), PM__RESPONSE__STATUS__OK, "%s", error);
    cr_assert_eq(s_ping(carol, &error), PM__RESPONSE__STATUS__OK, "%s", error);
    uint64_t r1 = s_push(bob, 1);

    /* bob's certificate is removed by hand */
    cr_assert_eq(unlink(s_path("clients/admin-bob.cert")), 0);
    cr_expect_eq(s_ping(bob, &error), PM__RESPONSE__STATUS__BAD_REQUEST);
    cr_expect(strstr(error, "not enrolled as an admin") != NULL, "%s", error);
    char value[] = "[bob]";
    Pm__Edit e = PM__EDIT__INIT, *edits[1] = {&e};
    e.key = (char *)"antispam.subject_prefix";
    e.op = PM__EDIT__OP__ASSIGN;
    e.value = value;
    Pm__Request set = s_req(PM__REQUEST__OP__SET);
    set.edits = edits;
    set.n_edits = 1;
    Pm__Response *r = s_ask(bob, &set);
    cr_expect_eq(r->status, PM__RESPONSE__STATUS__BAD_REQUEST);
    cr_expect_null(r->revision);
    pm__response__free_unpacked(r, NULL);

    /* carol's file now enrols another key, same name, same size */
    zcert_t *other = zcert_new();
    cr_assert_eq(pm_keys_enroll(s_path("clients"), "carol", PM_ROLE_ADMIN,
                                zcert_public_txt(other), &why),
                 0, "%s", why ? why : "");
    cr_expect_eq(s_ping(carol, &error), PM__RESPONSE__STATUS__BAD_REQUEST);
    zcert_destroy(&other);

    /* an agent's key is enrolled too, but not for this API: refused at
     * its handshake, before a request of it can be queued; an admin's is
     * not for the agents' socket */
    cr_expect(s_handshake_refused(agent, s_ctl_ep), "agent key on the API");
    cr_expect_not(s_handshake_refused(agent, s_agent_ep));
    zcert_t *admin = pm_keys_load(s_path("keys/admin.cert_secret"), &why);
    cr_assert_not_null(admin, "%s", why ? why : "");
    cr_expect(s_handshake_refused(admin, s_agent_ep), "admin key on agents'");
    zcert_destroy(&admin);
    zcert_destroy(&agent);

    /* nothing was committed after bob's push; the first admin still works */
    Pm__Request ping = s_req(PM__REQUEST__OP__PING);
    r = s_ask(api, &ping);
    cr_expect_eq(r->status, PM__RESPONSE__STATUS__OK);
    cr_expect_eq(r->head, r1);
    pm__response__free_unpacked(r, NULL);
    cr_expect_eq(s_push(api, 2), r1 + 1);

    zsock_destroy(&bob);
    zsock_destroy(&carol);
    zsock_destroy(&api);
    s_controller_stop();
}

/* Sends one report of KIND as the agent on SOCK with status ST. */
static void
s_send_report(zsock_t *sock, Pm__AgentReport__Kind kind, Pm__NodeStatus *st)
{
    Pm__AgentReport rep = PM__AGENT_REPORT__INIT;
    rep.kind = kind;
    rep.applied_rev = st->applied_rev;
    rep.status = st;
    size_t len = 0;
    uint8_t *buf = pm_wire_pack(&rep.base, &len);
    cr_assert_geq(zmq_send(zsock_resolve(sock), buf, len, 0), 0);
    free(buf);
}

/* The whole output of COMMAND, which must succeed (caller frees). */
static char *
s_run(const char *command)
{
    char *out = NULL;
    cr_assert_eq(testsh_run(&out, "%s", command), 0, "%s", command);
    return out;
}

/* The contents of PATH, which must exist (caller frees). */
static char *
s_slurp(const char *path)
{
    char *text = testsh_slurp(path);
    cr_assert_not_null(text, "%s", path);
    return text;
}

/* Whether a line of TEXT starts with PREFIX. */
static bool
s_line_starts(const char *text, const char *prefix)
{
    for (const char *l = text; l && *l; l = strchr(l, '\n')) {
        l += *l == '\n';
        if (strncmp(l, prefix, strlen(prefix)) == 0)
            return true;
    }
    return false;
}

/* What an agent reports reaches a person escaped: `privmta-ctl nodes` and
 * the controller's log show control characters as visible escapes, so a
 * newline cannot forge a row or a log line and ESC cannot drive the
 * terminal. */
Test(fleet, agent_text_is_escaped_for_people)
{
    zcert_t *key = s_enrolled_key("mx1");
    s_controller_start(200);
    zsock_t *api = s_admin_ready();
    uint64_t rev = s_push(api, 1);
    zsock_t *sock = zsock_new(ZMQ_DEALER);
    zcert_apply(key, sock);
    zsock_set_curve_serverkey(sock, s_server_key);
    zsock_set_linger(sock, 0);
    cr_assert_eq(zsock_connect(sock, "%s", s_agent_ep), 0);
    Pm__NodeStatus st = PM__NODE_STATUS__INIT;
    Pm__ServiceStatus spam = PM__SERVICE_STATUS__INIT;
    char *overrides[] = {"transport_maps: a\nFORGED-OVERRIDE"};
    st.name = (char *)"mx1";
    st.address = (char *)"10.0.0.1\nFORGED-ROW\x1b[31m";
    st.apply_error =
        (char *)"boom\nprivmta-controller: error: FORGED\x1b]0;owned\x07";
    st.applied_rev = rev;
    spam.state = PM__SERVICE_STATUS__STATE__DOWN;
    spam.detail = (char *)"x\r\nFORGED-DETAIL\xc2\x9b"
                          "2J";
    st.antispam = &spam;
    st.relay_overrides = overrides;
    st.n_relay_overrides = 1;
    s_send_report(sock, PM__AGENT_REPORT__KIND__APPLIED, &st);

    /* taken once the controller lists it */
    Pm__Request nodes = s_req(PM__REQUEST__OP__NODES);
    int64_t deadline = zclock_mono() + S_WAIT_MS;
    for (bool seen = false; !seen;) {
        cr_assert_lt(zclock_mono(), deadline, "the report was not taken");
        Pm__Response *r = s_ask(api, &nodes);
        const Pm__NodeStatus *mx1 = s_node_entry(r, "mx1");
        seen = mx1 && *mx1->apply_error;
        pm__response__free_unpacked(r, NULL);
        if (!seen)
            zclock_sleep(20);
    }
    char *cmd = pm_asprintf("%s/controller/privmta-ctl --state-dir %s "
                            "--controller %s nodes",
                            PM_BUILD_DIR, s_dir, s_ctl_ep);
    char *out = s_run(cmd);
    cr_expect_null(strchr(out, '\x1b'), "%s", out);
    cr_expect_null(strchr(out, '\r'), "%s", out);
    cr_expect_null(strstr(out, "\xc2\x9b"), "%s", out);
    cr_expect_not(s_line_starts(out, "FORGED"), "%s", out);
    cr_expect(strstr(out, "10.0.0.1\\nFORGED-ROW\\x1b[31m") != NULL, "%s", out);
    cr_expect(strstr(out, "boom\\nprivmta-controller") != NULL, "%s", out);
    cr_expect(strstr(out, "x\\r\\nFORGED-DETAIL\\u009b2J") != NULL, "%s", out);
    cr_expect(strstr(out, "a\\nFORGED-OVERRIDE") != NULL, "%s", out);
    free(out);
    free(cmd);

    zsock_destroy(&sock);
    zsock_destroy(&api);
    s_controller_stop();
    char *log = s_slurp(s_path("controller.log"));
    cr_expect_not(s_line_starts(log, "privmta-controller: error: FORGED"), "%s",
                  log);
    cr_expect_null(strchr(log, '\x1b'), "%s", log);
    cr_expect(strstr(log, "failed to apply: boom\\nprivmta-controller: "
                          "error: FORGED\\x1b]0;owned\\x07") != NULL,
              "%s", log);
    free(log);
    zcert_destroy(&key);
}

/* The user name a client sends is the client's word: it is escaped for
 * the log (a newline there forged a line) and for the revision's author,
 * and cut on a character boundary (cut through a UTF-8 sequence, the
 * store's check of the revision refused the commit). */
Test(fleet, api_user_is_escaped_for_log_and_author)
{
    s_controller_start(500);
    zsock_t *api = s_admin_ready();
    char user[128];
    memset(user, 'a', 63); /* byte 64 starts a two-byte character */
    snprintf(user + 63, sizeof user - 63, "\xc3\xa9");
    const char *const users[] = {
        user, "bob\nprivmta-controller: error: FORGED\x1b[2J"};
    for (size_t i = 0; i < 2; i++) {
        Pm__Edit e = PM__EDIT__INIT, *edits[1] = {&e};
        e.key = (char *)"antispam.subject_prefix";
        e.op = PM__EDIT__OP__ASSIGN;
        e.value = i ? (char *)"[b]" : (char *)"[a]";
        Pm__Request set = s_req(PM__REQUEST__OP__SET);
        set.edits = edits;
        set.n_edits = 1;
        set.user = (char *)users[i];
        Pm__Response *r = s_ask(api, &set);
        cr_expect_eq(r->status, PM__RESPONSE__STATUS__OK, "%s", r->error);
        if (r->revision)
            cr_expect(strncmp(r->revision->author, "admin (aaa", 10) == 0 ||
                          strncmp(r->revision->author, "admin (bob\\n", 12) ==
                              0,
                      "%s", r->revision->author);
        pm__response__free_unpacked(r, NULL);
    }
    zsock_destroy(&api);
    s_controller_stop();
    char *log = s_slurp(s_path("controller.log"));
    cr_expect_not(s_line_starts(log, "privmta-controller: error: FORGED"), "%s",
                  log);
    cr_expect_null(strchr(log, '\x1b'), "%s", log);
    free(log);
}

#define S_UNREAD_ASKS 2000

/* A client that asks without reading the answers holds few of them in the
 * controller: the API socket's send queue is as small as its receive
 * queue, not czmq's 1000 messages (an answer may be 64 MiB). Counted here
 * as the answers the client gets once it reads: those queued, plus what
 * the kernel's socket buffers hold. */
Test(fleet, api_answers_not_read_are_not_kept)
{
    s_controller_start(500);
    zsock_t *api = s_admin_ready();
    s_push(api, 1);
    char *why = NULL;
    zcert_t *cert = pm_keys_load(s_path("keys/admin.cert_secret"), &why);
    cr_assert_not_null(cert, "%s", why ? why : "");
    zsock_t *sock = zsock_new(ZMQ_DEALER);
    zcert_apply(cert, sock);
    zsock_set_curve_serverkey(sock, s_server_key);
    zsock_set_linger(sock, 0);
    zsock_set_rcvhwm(sock, 1);
    cr_assert_eq(zsock_connect(sock, "%s", s_ctl_ep), 0);
    Pm__Request show = s_req(PM__REQUEST__OP__SHOW);
    size_t len = 0;
    uint8_t *buf = pm_wire_pack(&show.base, &len);
    for (int i = 0; i < S_UNREAD_ASKS; i++) {
        zmsg_t *m = zmsg_new();
        zmsg_addmem(m, "", 0);
        zmsg_addmem(m, buf, len);
        cr_assert_eq(zmsg_send(&m, sock), 0);
    }
    free(buf);
    /* every one answered (or dropped), as the log says */
    int64_t deadline = zclock_mono() + S_WAIT_MS;
    size_t logged = 0;
    while (logged < S_UNREAD_ASKS && zclock_mono() < deadline) {
        zclock_sleep(100);
        char *log = s_slurp(s_path("controller.log"));
        logged = 0;
        for (char *p = log; (p = strstr(p, "show by admin: ok")); p++)
            logged++;
        free(log);
    }
    cr_assert_eq(logged, S_UNREAD_ASKS);
    size_t got = 0, bytes = 0;
    zsock_set_rcvtimeo(sock, 1000);
    for (zmsg_t *m; (m = zmsg_recv(sock)); zmsg_destroy(&m)) {
        got++;
        bytes += zmsg_content_size(m);
    }
    printf("%zu of %d answers (%zu bytes) reached a client that read them "
           "late\n",
           got, S_UNREAD_ASKS, bytes);
    fflush(stdout);
    cr_expect_lt(got, S_UNREAD_ASKS / 4, "%zu answers were kept", got);
    zsock_destroy(&sock);
    zcert_destroy(&cert);
    zsock_destroy(&api);
    s_controller_stop();
}

/* A report with COUNT relay overrides of SIZE bytes each, packed; sets
 * *len. Caller frees. */
static uint8_t *
s_big_report(size_t count, size_t size, size_t *len)
{
    Pm__NodeStatus st = PM__NODE_STATUS__INIT;
    Pm__AgentReport rep = PM__AGENT_REPORT__INIT;
    char *line = pm_malloc(size + 1);
    memset(line, 'o', size);
    line[size] = '\0';
    char **items = pm_calloc(count, sizeof *items);
    for (size_t i = 0; i < count; i++)
        items[i] = line;
    st.name = (char *)"big";
    st.address = (char *)"big.example";
    st.relay_overrides = items;
    st.n_relay_overrides = count;
    rep.kind = PM__AGENT_REPORT__KIND__APPLIED;
    rep.status = &st;
    uint8_t *buf = pm_wire_pack(&rep.base, len);
    free(items);
    free(line);
    return buf;
}

/* A report longer than PM_WIRE_REPORT_MAX is refused: by pm_wire, and by
 * the agent socket before the controller reads it. */
Test(fleet, oversized_report_is_refused)
{
    size_t len = 0;
    Pm__AgentReport *rep = NULL;
    char *why = NULL;
    /* the list maximum of overrides at 250 bytes each fits */
    uint8_t *buf = s_big_report(PM_WIRE_LIST_MAX, 250, &len);
    cr_assert_leq(len, PM_WIRE_REPORT_MAX);
    cr_expect_eq(pm_wire_unpack_agent_report(buf, len, &rep, &why), PM_OK, "%s",
                 why ? why : "");
    if (rep)
        pm__agent_report__free_unpacked(rep, NULL);
    free(buf);
    buf = s_big_report(300, 4000, &len);
    cr_assert_gt(len, PM_WIRE_REPORT_MAX);
    cr_expect_eq(pm_wire_unpack_agent_report(buf, len, &rep, &why), PM_EPROTO);
    cr_assert_not_null(why);
    cr_expect(strstr(why, "more than 1048576") != NULL, "%s", why);
    free(why);

    zcert_t *key = s_enrolled_key("big"), *ref_key = s_enrolled_key("mx1");
    s_controller_start(100);
    zsock_t *api = s_admin_ready();
    s_agent_t *ref = s_agent_new("mx1", "ref.example", ref_key, 100);
    zactor_t *ref_actor = zactor_new(s_agent_actor, ref);
    zsock_t *sock = zsock_new(ZMQ_DEALER);
    zcert_apply(key, sock);
    zsock_set_curve_serverkey(sock, s_server_key);
    zsock_set_linger(sock, 0);
    cr_assert_eq(zsock_connect(sock, "%s", s_agent_ep), 0);
    for (int i = 0; i < 5; i++)
        cr_assert_geq(zmq_send(zsock_resolve(sock), buf, len, 0), 0);
    free(buf);
    s_wait_heartbeats(ref, 10);
    Pm__Request nodes = s_req(PM__REQUEST__OP__NODES);
    Pm__Response *r = s_ask(api, &nodes);
    const Pm__NodeStatus *big = s_node_entry(r, "big");
    cr_assert_not_null(big);
    cr_expect_str_eq(big->liveness, "never");
    cr_expect_str_eq(big->address, "");
    cr_expect_not_null(s_node_entry(r, "mx1"));
    pm__response__free_unpacked(r, NULL);

    zactor_destroy(&ref_actor);
    free(ref);
    zsock_destroy(&sock);
    zsock_destroy(&api);
    s_controller_stop();
    zcert_destroy(&key);
    zcert_destroy(&ref_key);
}

/* ---- membership, fetch duties, cool-downs -------------------------------- */

/* Commits KEY=VALUE (policy-file syntax) and returns the new revision. */
static uint64_t
s_set(zsock_t *api, const char *key, const char *value)
{
    Pm__Edit e = PM__EDIT__INIT, *edits[1] = {&e};
    e.key = (char *)key;
    e.op = PM__EDIT__OP__ASSIGN;
    e.value = (char *)value;
    Pm__Request req = s_req(PM__REQUEST__OP__SET);
    req.edits = edits;
    req.n_edits = 1;
    Pm__Response *r = s_ask(api, &req);
    cr_assert_eq(r->status, PM__RESPONSE__STATUS__OK, "%s", r->error);
    cr_assert_not_null(r->revision);
    uint64_t rev = r->revision->number;
    pm__response__free_unpacked(r, NULL);
    return rev;
}

/* Waits until A has received MORE snapshots immediately followed by
 * MEMBERS than it had when it was BEFORE. */
static void
s_wait_snapshot_members(s_agent_t *a, unsigned before)
{
    int64_t deadline = zclock_mono() + S_WAIT_MS;
    while (atomic_load(&a->snapshots_then_members) <= before) {
        cr_assert_lt(zclock_mono(), deadline, "%s: no MEMBERS after SNAPSHOT",
                     a->name);
        zclock_sleep(5);
    }
}

/* An agent gets MEMBERS, whole, right after each SNAPSHOT. MEMBERS names
 * every enrolled node with its key and peer endpoint; a change goes out as
 * a delta from the epoch before, and nothing when nothing changes. */
Test(fleet, members_follow_snapshot_and_changes)
{
    zcert_t *key1 = s_enrolled_key("mx1"), *key2 = s_enrolled_key("mx2");
    s_controller_start(50);
    zsock_t *api = s_admin_ready();
    uint64_t r1 = s_push(api, 1);
    s_agent_t *mx1 = s_agent_new("mx1", "192.0.2.1", key1, 50);
    mx1->peer_endpoint = "tcp://192.0.2.1:7422";
    zactor_t *actor = zactor_new(s_agent_actor, mx1);
    cr_assert(s_wait_applied(mx1, r1));
    s_wait_snapshot_members(mx1, 0);
    /* the one after its SNAPSHOT may predate its HELLO; within a
     * heartbeat it is live, and the only one to fetch */
    s_wait_members(mx1, "mx1+ mx2- | main:mx1 daily:mx1 bytecode:mx1");
    pthread_mutex_lock(&mx1->lock);
    const Pm__Publication *pub = mx1->last_members;
    cr_expect_eq(pub->head, 0);
    cr_expect_str_eq(pub->members[0]->public_key, zcert_public_txt(key1));
    cr_expect_str_eq(pub->members[0]->peer_endpoint, "tcp://192.0.2.1:7422");
    cr_expect_str_eq(pub->members[1]->public_key, zcert_public_txt(key2));
    cr_expect_str_eq(pub->members[1]->peer_endpoint, "");
    pthread_mutex_unlock(&mx1->lock);

    /* asking again: SNAPSHOT, then MEMBERS */
    unsigned after = atomic_load(&mx1->snapshots_then_members);
    zstr_send(actor, "HELLO");
    zsock_wait(actor);
    s_wait_snapshot_members(mx1, after);

    /* nothing changes: nothing sent (its reports say it holds the
     * current epoch) */
    s_wait_heartbeats(mx1, 2);
    unsigned before = atomic_load(&mx1->members);
    s_wait_heartbeats(mx1, 20);
    unsigned sent = atomic_load(&mx1->members) - before;
    cr_expect_eq(sent, 0, "%u MEMBERS in 20 heartbeats of no change", sent);

    /* a change is sent at once, as a delta: no antivirus, no duties */
    unsigned deltas = atomic_load(&mx1->deltas);
    cr_assert(s_wait_applied(mx1, s_set(api, "antivirus.enabled", "false")));
    s_wait_members(mx1, "mx1+ mx2-");
    cr_expect_gt(atomic_load(&mx1->deltas), deltas);
    pthread_mutex_lock(&mx1->lock);
    cr_expect_str_eq(mx1->last_members->members[0]->public_key,
                     zcert_public_txt(key1), "the delta kept what it left out");
    pthread_mutex_unlock(&mx1->lock);

    /* a change lost on the way: the agent keeps the epoch it holds, says
     * so, and the whole list comes again */
    atomic_store(&mx1->drop_deltas, 1);
    deltas = atomic_load(&mx1->deltas);
    cr_assert(s_wait_applied(mx1, s_set(api, "antivirus.enabled", "true")));
    s_wait_members(mx1, "mx1+ mx2- | main:mx1 daily:mx1 bytecode:mx1");
    cr_expect_eq(atomic_load(&mx1->drop_deltas), 0, "no change was lost");
    cr_expect_gt(atomic_load(&mx1->deltas), deltas);

    zactor_destroy(&actor);
    free(mx1);
    zsock_destroy(&api);
    s_controller_stop();
    zcert_destroy(&key1);
    zcert_destroy(&key2);
}

/* Waits until NODE shows as stale and expects it, in that same answer, to
 * still hold the duty for DATABASE. */
static void
s_expect_stale_keeps_duty(zsock_t *api, const char *node, const char *database)
{
    int64_t deadline = zclock_mono() + S_WAIT_MS;
    for (;;) {
        Pm__Request nodes = s_req(PM__REQUEST__OP__NODES);
        Pm__Response *r = s_ask(api, &nodes);
        const Pm__NodeStatus *n = s_node_entry(r, node);
        cr_assert_not_null(n);
        cr_assert_str_neq(n->liveness, "down", "%s went down unseen stale",
                          node);
        if (strcmp(n->liveness, "stale") == 0) {
            const char *holder = NULL;
            for (size_t i = 0; i < r->n_duties; i++)
                if (strcmp(r->duties[i]->database, database) == 0)
                    holder = r->duties[i]->node;
            cr_expect_str_eq(holder ? holder : "(none)", node,
                             "a stale %s keeps its duty for %s", node,
                             database);
            pm__response__free_unpacked(r, NULL);
            return;
        }
        pm__response__free_unpacked(r, NULL);
        cr_assert_lt(zclock_mono(), deadline, "%s never went stale", node);
        zclock_sleep(20);
    }
}

/* `signatures check` now: accepted, with a warning naming NODE (NULL:
 * none) as a duty holder the order may not reach. */
static void
s_expect_check_unheard(zsock_t *api, const char *node)
{
    Pm__Request check = s_req(PM__REQUEST__OP__SIGNATURES_CHECK);
    Pm__Response *r = s_ask(api, &check);
    cr_assert_eq(r->status, PM__RESPONSE__STATUS__OK, "%s", r->error);
    cr_assert_eq(r->n_problems, node ? 1u : 0u, "%zu warnings, first: %s",
                 r->n_problems, r->n_problems ? r->problems[0] : "-");
    if (node) {
        char *want = pm_asprintf("%s holds a fetch duty but was not heard "
                                 "from lately",
                                 node);
        cr_expect(strncmp(r->problems[0], want, strlen(want)) == 0, "%s",
                  r->problems[0]);
        free(want);
    }
    pm__response__free_unpacked(r, NULL);
}

/* A waits until it received N CHECK publications, and gets no more. */
static void
s_expect_checks(s_agent_t *a, unsigned n)
{
    int64_t deadline = zclock_mono() + S_WAIT_MS;
    while (atomic_load(&a->checks) < n && zclock_mono() < deadline)
        zclock_sleep(10);
    zclock_sleep(100);
    cr_expect_eq(atomic_load(&a->checks), n, "%u CHECKs, not %u",
                 atomic_load(&a->checks), n);
}

/* With databases test, daily and main, each of mx1..mx3 fetches one (see
 * test_duty.c). When mx2 stops reporting, it keeps its duty while it is
 * only stale (late, as an agent busy applying is), and `signatures check`
 * names it as one its order may not reach; once it is down its duty moves
 * and no other does; when it is back, so is its duty. */
Test(fleet, duty_moves_when_holder_goes_down)
{
    static const char *const names[3] = {"mx1", "mx2", "mx3"};
    zcert_t *keys[3];
    s_agent_t *agents[3];
    zactor_t *actors[3];
    for (size_t i = 0; i < 3; i++)
        keys[i] = s_enrolled_key(names[i]);
    s_stale_ms = 300;
    s_down_ms = 3000;
    s_controller_start(100);
    zsock_t *api = s_admin_ready();
    uint64_t rev = s_set(api, "antivirus.databases", "[test, daily, main]");
    for (size_t i = 0; i < 3; i++) {
        agents[i] = s_agent_new(names[i], "192.0.2.1", keys[i], 100);
        actors[i] = zactor_new(s_agent_actor, agents[i]);
        cr_assert(s_wait_applied(agents[i], rev), "%s", names[i]);
    }
    s_wait_members(agents[0], "mx1+ mx2+ mx3+ | test:mx2 daily:mx3 main:mx1");
    s_expect_check_unheard(api, NULL);
    for (size_t i = 0; i < 3; i++) /* each holds one duty: each told once */
        s_expect_checks(agents[i], 1);

    zactor_destroy(&actors[1]);
    s_expect_stale_keeps_duty(api, "mx2", "test");
    s_expect_check_unheard(api, "mx2"); /* stale: told, maybe in vain */
    s_wait_members(agents[0], "mx1+ mx2- mx3+ | test:mx3 daily:mx3 main:mx1");
    s_wait_members(agents[2], "mx1+ mx2- mx3+ | test:mx3 daily:mx3 main:mx1");
    Pm__Request nodes = s_req(PM__REQUEST__OP__NODES);
    Pm__Response *r = s_ask(api, &nodes);
    const Pm__NodeStatus *mx2 = s_node_entry(r, "mx2");
    cr_assert_not_null(mx2);
    cr_expect_str_eq(mx2->liveness, "down");
    cr_assert_eq(r->n_duties, 3);
    cr_expect_str_eq(r->duties[0]->database, "test");
    cr_expect_str_eq(r->duties[0]->node, "mx3");
    pm__response__free_unpacked(r, NULL);

    free(agents[1]);
    agents[1] = s_agent_new("mx2", "192.0.2.1", keys[1], 100);
    actors[1] = zactor_new(s_agent_actor, agents[1]);
    s_wait_members(agents[0], "mx1+ mx2+ mx3+ | test:mx2 daily:mx3 main:mx1");
    s_wait_members(agents[1], "mx1+ mx2+ mx3+ | test:mx2 daily:mx3 main:mx1");

    for (size_t i = 0; i < 3; i++) {
        zactor_destroy(&actors[i]);
        free(agents[i]);
        zcert_destroy(&keys[i]);
    }
    zsock_destroy(&api);
    s_controller_stop();
}

/* mx1 holds the only duty and is up, but the connection it has was made
 * with a key replaced since (`node add mx1 NEWKEY`): nothing goes to it,
 * so `signatures check` refuses, naming mx1, and mx1's old session gets
 * no CHECK; once mx1 is back with its new key, the check is accepted and
 * reaches it. */
Test(fleet, check_refused_when_no_holder_is_connected)
{
    zcert_t *old_key = s_enrolled_key("mx1"), *new_key = zcert_new();
    s_controller_start(100);
    zsock_t *api = s_admin_ready();
    uint64_t rev = s_set(api, "antivirus.databases", "[test]");
    s_agent_t *old = s_agent_new("mx1", "192.0.2.1", old_key, 100);
    zactor_t *old_actor = zactor_new(s_agent_actor, old);
    cr_assert(s_wait_applied(old, rev));
    s_wait_members(old, "mx1+ | test:mx1");

    Pm__Request add = s_req(PM__REQUEST__OP__NODE_ADD);
    add.node = (char *)"mx1";
    add.public_key = (char *)zcert_public_txt(new_key);
    Pm__Response *r = s_ask(api, &add);
    cr_assert_eq(r->status, PM__RESPONSE__STATUS__OK, "%s", r->error);
    pm__response__free_unpacked(r, NULL);
    Pm__Request check = s_req(PM__REQUEST__OP__SIGNATURES_CHECK);
    r = s_ask(api, &check);
    cr_expect_eq(r->status, PM__RESPONSE__STATUS__NOT_FOUND);
    cr_expect_str_eq(r->error ? r->error : "(none)",
                     "no node holding a fetch duty is connected now (mx1; "
                     "privmta-ctl nodes)");
    pm__response__free_unpacked(r, NULL);
    s_expect_checks(old, 0);

    s_agent_t *new = s_agent_new("mx1", "192.0.2.1", new_key, 100);
    zactor_t *new_actor = zactor_new(s_agent_actor, new);
    cr_assert(s_wait_applied(new, rev), "the new key is not served");
    s_expect_check_unheard(api, NULL);
    s_expect_checks(new, 1);
    cr_expect_eq(atomic_load(&old->checks), 0u);

    zactor_destroy(&old_actor);
    zactor_destroy(&new_actor);
    free(old);
    free(new);
    zsock_destroy(&api);
    s_controller_stop();
    zcert_destroy(&old_key);
    zcert_destroy(&new_key);
}

/* A DEALER connected as the agent of KEY; reports go through
 * s_send_report. */
static zsock_t *
s_raw_agent(zcert_t *key)
{
    zsock_t *sock = zsock_new(ZMQ_DEALER);
    zcert_apply(key, sock);
    zsock_set_curve_serverkey(sock, s_server_key);
    zsock_set_linger(sock, 0);
    cr_assert_eq(zsock_connect(sock, "%s", s_agent_ep), 0);
    return sock;
}

/* NODE's applied revision as `nodes` shows it (0: not listed). */
static uint64_t
s_applied(zsock_t *api, const char *node)
{
    Pm__Request nodes = s_req(PM__REQUEST__OP__NODES);
    Pm__Response *r = s_ask(api, &nodes);
    const Pm__NodeStatus *n = s_node_entry(r, node);
    uint64_t rev = n ? n->applied_rev : 0;
    pm__response__free_unpacked(r, NULL);
    return rev;
}

/* SOCK (NODE's raw agent) heartbeats at REV; returns once `nodes` shows
 * it (every message SOCK sent before has been read by then). */
static void
s_heartbeat_seen(zsock_t *api, zsock_t *sock, const char *node, uint64_t rev)
{
    Pm__NodeStatus st = PM__NODE_STATUS__INIT;
    st.name = (char *)node;
    st.applied_rev = rev;
    s_send_report(sock, PM__AGENT_REPORT__KIND__HEARTBEAT, &st);
    int64_t deadline = zclock_mono() + S_WAIT_MS;
    while (s_applied(api, node) != rev && zclock_mono() < deadline)
        zclock_sleep(20);
    cr_assert_eq(s_applied(api, node), rev, "%s's report was not read", node);
}

/* Answers to WHY and TEST say nothing of the node's state: a policy
 * test's answer comes from a thread of the agent that knows no revision
 * (0). Taken as a report, it showed the node at revision 0 and could
 * drop its revision's retention pin until the next heartbeat. */
Test(fleet, answers_leave_the_applied_revision)
{
    zcert_t *key = s_enrolled_key("mx1");
    s_controller_start(100);
    zsock_t *api = s_admin_ready();
    uint64_t rev = s_push(api, 1);
    zsock_t *sock = s_raw_agent(key);
    s_heartbeat_seen(api, sock, "mx1", rev);

    for (int i = 0; i < 2; i++) { /* revision 0, ids never given */
        Pm__AgentReport rep = PM__AGENT_REPORT__INIT;
        rep.kind = i ? PM__AGENT_REPORT__KIND__WHY_ANSWER
                     : PM__AGENT_REPORT__KIND__TEST_ANSWER;
        rep.test_id = rep.why_id = 999;
        size_t len = 0;
        uint8_t *buf = pm_wire_pack(&rep.base, &len);
        cr_assert_geq(zmq_send(zsock_resolve(sock), buf, len, 0), 0);
        free(buf);
    }
    zclock_sleep(300); /* taken in milliseconds, were they taken */
    cr_expect_eq(s_applied(api, "mx1"), rev);

    zsock_destroy(&sock);
    zsock_destroy(&api);
    s_controller_stop();
    zcert_destroy(&key);
}

static Pm__Cooldown
s_cooldown(const char *mirror, int status, int64_t until, const char *node)
{
    Pm__Cooldown c = PM__COOLDOWN__INIT;
    c.mirror = (char *)mirror;
    c.http_status = status;
    c.until = until;
    c.node = (char *)node;
    return c;
}

/* What mx1 reports: a database from a mirror, a peer it distrusts, and two
 * mirrors it was told to wait for (b's for 3 s only). */
static void
s_report_mx1(zsock_t *sock, uint64_t rev, time_t now)
{
    Pm__NodeStatus st = PM__NODE_STATUS__INIT;
    Pm__SignatureDb db = PM__SIGNATURE_DB__INIT, *dbs[] = {&db};
    Pm__Distrust d = PM__DISTRUST__INIT, *ds[] = {&d};
    Pm__Cooldown a = s_cooldown("http://a.example", 429, now + 3600, "");
    Pm__Cooldown b = s_cooldown("http://b.example", 429, now + 3, "");
    Pm__Cooldown *cds[] = {&a, &b};
    st.name = (char *)"mx1";
    st.applied_rev = rev;
    st.peer_endpoint = (char *)"tcp://192.0.2.1:7422";
    db.name = (char *)"test";
    db.version = db.loaded_version = 6;
    db.sigs = 3;
    db.built = now - 4320; /* 1.2 h */
    db.source = (char *)"mirror http://a.example";
    db.last_check = now;
    st.databases = dbs;
    st.n_databases = 1;
    d.peer = (char *)"mx2";
    d.until = now + 600;
    d.reason = (char *)"daily.cld version 6: bad signature";
    st.distrusted = ds;
    st.n_distrusted = 1;
    st.cooldowns = cds;
    st.n_cooldowns = 2;
    s_send_report(sock, PM__AGENT_REPORT__KIND__APPLIED, &st);
}

/* What mx2 reports: no database yet, a later deadline for mirror a, and
 * one for c that is over. */
static void
s_report_mx2(zsock_t *sock, uint64_t rev, time_t now)
{
    Pm__NodeStatus st = PM__NODE_STATUS__INIT;
    Pm__SignatureDb db = PM__SIGNATURE_DB__INIT, *dbs[] = {&db};
    Pm__Cooldown a = s_cooldown("http://a.example", 403, now + 7200, "mx2");
    Pm__Cooldown c = s_cooldown("http://c.example", 429, now - 10, "mx2");
    Pm__Cooldown *cds[] = {&a, &c};
    st.name = (char *)"mx2";
    st.applied_rev = rev;
    db.name = (char *)"daily";
    db.error = (char *)"mirror said 429";
    st.databases = dbs;
    st.n_databases = 1;
    st.cooldowns = cds;
    st.n_cooldowns = 2;
    s_send_report(sock, PM__AGENT_REPORT__KIND__APPLIED, &st);
}

/* The node object named NAME in a `nodes --json` array. */
static json_t *
s_json_node(json_t *all, const char *name)
{
    size_t i;
    json_t *o;
    json_array_foreach(all, i, o)
    {
        if (strcmp(json_string_value(json_object_get(o, "name")), name) == 0)
            return o;
    }
    cr_assert_fail("no node %s in the JSON", name);
    return NULL;
}

static void
s_expect_nodes_text(time_t now)
{
    char *cmd = pm_asprintf("%s/controller/privmta-ctl --state-dir %s "
                            "--controller %s nodes",
                            PM_BUILD_DIR, s_dir, s_ctl_ep);
    char *out = s_run(cmd);
    char until_a[40], until_d[40], want[256];
    time_t ta = now + 7200, td = now + 600;
    strftime(until_a, sizeof until_a, "%Y-%m-%d %H:%M:%S UTC", gmtime(&ta));
    strftime(until_d, sizeof until_d, "%Y-%m-%d %H:%M:%S UTC", gmtime(&td));
    cr_expect(strstr(out, "database test 6 (loaded 6), 1.2 h old, from "
                          "mirror http://a.example\n") != NULL,
              "%s", out);
    cr_expect(strstr(out, "database daily: none held; error: mirror said "
                          "429\n") != NULL,
              "%s", out);
    snprintf(want, sizeof want,
             "distrusts peer mx2 until %s: daily.cld version 6: bad "
             "signature\n",
             until_d);
    cr_expect(strstr(out, want) != NULL, "%s", out);
    snprintf(want, sizeof want,
             "\nmirror http://a.example cooling down until %s (HTTP 403, "
             "told to mx2)\n",
             until_a);
    cr_expect(strstr(out, want) != NULL, "%s", out);
    cr_expect_null(strstr(out, "http://b.example cooling"), "%s", out);
    cr_expect_null(strstr(out, "http://c.example cooling"), "%s", out);
    cr_expect(strstr(out, "\nmain: fetched by mx1\ndaily: fetched by mx3\n"
                          "bytecode: fetched by mx3\n") != NULL,
              "%s", out);
    free(out);
    free(cmd);
    /* --cluster: only what holds for the cluster */
    cmd = pm_asprintf("%s/controller/privmta-ctl --state-dir %s "
                      "--controller %s nodes --cluster",
                      PM_BUILD_DIR, s_dir, s_ctl_ep);
    out = s_run(cmd);
    cr_expect(strncmp(out, "mirror http://a.example cooling down", 36) == 0,
              "%s", out);
    cr_expect(strstr(out, "bytecode: fetched by mx3\n") != NULL, "%s", out);
    cr_expect_null(strstr(out, "NAME"), "%s", out);
    free(out);
    free(cmd);
}

static void
s_expect_nodes_json(time_t now)
{
    char *cmd = pm_asprintf("%s/controller/privmta-ctl --state-dir %s "
                            "--controller %s nodes --json",
                            PM_BUILD_DIR, s_dir, s_ctl_ep);
    char *out = s_run(cmd);
    json_t *all = json_loads(out, 0, NULL);
    cr_assert(json_is_array(all), "%s", out);
    cr_expect_eq(json_array_size(all), 3);
    json_t *mx1 = s_json_node(all, "mx1");
    cr_expect_str_eq(json_string_value(json_object_get(mx1, "peer_endpoint")),
                     "tcp://192.0.2.1:7422");
    json_t *db = json_array_get(json_object_get(mx1, "databases"), 0);
    cr_expect_str_eq(json_string_value(json_object_get(db, "name")), "test");
    cr_expect_eq(json_integer_value(json_object_get(db, "loaded_version")), 6);
    cr_expect_eq(json_integer_value(json_object_get(db, "built")), now - 4320);
    cr_expect_eq(json_array_size(json_object_get(mx1, "cooldowns")), 2);
    json_t *d = json_array_get(json_object_get(mx1, "distrusted"), 0);
    cr_expect_str_eq(json_string_value(json_object_get(d, "peer")), "mx2");
    json_t *duties = json_object_get(mx1, "duties");
    cr_expect_eq(json_array_size(duties), 1);
    cr_expect_str_eq(json_string_value(json_array_get(duties, 0)), "main");
    duties = json_object_get(s_json_node(all, "mx3"), "duties");
    cr_expect_eq(json_array_size(duties), 2);
    json_decref(all);
    free(out);
    free(cmd);

    cmd = pm_asprintf("%s/controller/privmta-ctl --state-dir %s "
                      "--controller %s nodes --cluster --json",
                      PM_BUILD_DIR, s_dir, s_ctl_ep);
    out = s_run(cmd);
    json_t *cluster = json_loads(out, 0, NULL);
    cr_assert(json_is_object(cluster), "%s", out);
    json_t *cds = json_object_get(cluster, "cooldowns");
    cr_assert_eq(json_array_size(cds), 1, "%s", out);
    json_t *a = json_array_get(cds, 0);
    cr_expect_str_eq(json_string_value(json_object_get(a, "mirror")),
                     "http://a.example");
    cr_expect_eq(json_integer_value(json_object_get(a, "http_status")), 403);
    cr_expect_eq(json_integer_value(json_object_get(a, "until")), now + 7200);
    cr_expect_str_eq(json_string_value(json_object_get(a, "node")), "mx2");
    json_t *duty = json_array_get(json_object_get(cluster, "duties"), 1);
    cr_expect_str_eq(json_string_value(json_object_get(duty, "database")),
                     "daily");
    cr_expect_str_eq(json_string_value(json_object_get(duty, "node")), "mx3");
    json_decref(cluster);
    free(out);
    free(cmd);
}

/* Cool-downs reported by any node are the cluster's: one per mirror, the
 * latest deadline winning, those over dropped (as soon as they are over:
 * MEMBERS is sent again). `nodes` shows databases, distrusted peers, the
 * cluster's cool-downs and who fetches what; so does --json. */
Test(fleet, cooldowns_are_cluster_wide_and_shown)
{
    zcert_t *key1 = s_enrolled_key("mx1"), *key2 = s_enrolled_key("mx2");
    zcert_t *key3 = s_enrolled_key("mx3");
    s_stale_ms = 30000; /* mx1 and mx2 report once */
    s_down_ms = 60000;
    s_controller_start(100);
    zsock_t *api = s_admin_ready();
    uint64_t rev = s_set(api, "antivirus.mirrors",
                         "[\"http://a.example\", \"http://b.example\", "
                         "\"http://c.example\"]");
    s_agent_t *mx3 = s_agent_new("mx3", "192.0.2.3", key3, 100);
    zactor_t *actor = zactor_new(s_agent_actor, mx3);
    cr_assert(s_wait_applied(mx3, rev));
    zsock_t *sock1 = s_raw_agent(key1), *sock2 = s_raw_agent(key2);
    time_t now = time(NULL);
    s_report_mx1(sock1, rev, now);
    s_report_mx2(sock2, rev, now);
    s_wait_members(mx3, "mx1+ mx2+ mx3+ | main:mx1 daily:mx3 bytecode:mx3 | "
                        "http://a.example:403:mx2 http://b.example:429:mx1");
    pthread_mutex_lock(&mx3->lock);
    cr_expect_eq(mx3->last_members->cooldowns[0]->until, now + 7200);
    cr_expect_eq(mx3->last_members->cooldowns[1]->until, now + 3);
    pthread_mutex_unlock(&mx3->lock);
    /* b's deadline passes: MEMBERS without it, unasked */
    s_wait_members(mx3, "mx1+ mx2+ mx3+ | main:mx1 daily:mx3 bytecode:mx3 | "
                        "http://a.example:403:mx2");

    Pm__Request nodes = s_req(PM__REQUEST__OP__NODES);
    Pm__Response *r = s_ask(api, &nodes);
    cr_assert_eq(r->n_cooldowns, 1);
    cr_expect_str_eq(r->cooldowns[0]->mirror, "http://a.example");
    cr_expect_eq(r->n_duties, 3);
    const Pm__NodeStatus *st = s_node_entry(r, "mx1");
    cr_assert_not_null(st);
    cr_expect_eq(st->n_databases, 1);
    cr_expect_str_eq(st->peer_endpoint, "tcp://192.0.2.1:7422");
    pm__response__free_unpacked(r, NULL);
    s_expect_nodes_text(now);
    s_expect_nodes_json(now);

    zsock_destroy(&sock1);
    zsock_destroy(&sock2);
    zactor_destroy(&actor);
    free(mx3);
    zsock_destroy(&api);
    s_controller_stop();
    zcert_destroy(&key1);
    zcert_destroy(&key2);
    zcert_destroy(&key3);
}

/* The cool-downs in A's latest MEMBERS, as s_members_line writes them
 * ("" when none); caller frees. */
static char *
s_cooldowns_line(s_agent_t *a)
{
    char *line = s_members_line(a);
    char *cds = strstr(line, " | http");
    char *out = pm_strdup(cds ? cds + 3 : "");
    free(line);
    return out;
}

/* Waits until the cool-downs in A's latest MEMBERS read WANT. */
static void
s_wait_cooldowns(s_agent_t *a, const char *want)
{
    int64_t deadline = zclock_mono() + S_WAIT_MS;
    for (;;) {
        char *line = s_cooldowns_line(a);
        bool ok = strcmp(line, want) == 0;
        cr_assert(ok || zclock_mono() <= deadline,
                  "%s: MEMBERS cool-downs \"%.300s\", not \"%s\"", a->name,
                  line, want);
        free(line);
        if (ok)
            return;
        zclock_sleep(10);
    }
}

#define S_BOGUS_MIRRORS 1000

/* One hostile agent cannot keep the cluster off the mirrors nor blame
 * another node: of its cool-downs only the policy's mirrors count (made
 * up names would sort first and push the real ones out of a capped list,
 * and every agent would get them all), with 429 or 403, in its own name;
 * MEMBERS holds one per mirror of the policy, and a mirror the policy
 * drops leaves it with the next policy. */
Test(fleet, cooldowns_only_for_policy_mirrors_in_the_reporters_name)
{
    zcert_t *key1 = s_enrolled_key("mx1"), *key3 = s_enrolled_key("mx3");
    s_stale_ms = 30000; /* mx1 reports once */
    s_down_ms = 60000;
    s_controller_start(100);
    zsock_t *api = s_admin_ready();
    uint64_t rev = s_set(api, "antivirus.mirrors",
                         "[\"http://a.example\", \"http://b.example\"]");
    s_agent_t *mx3 = s_agent_new("mx3", "192.0.2.3", key3, 100);
    zactor_t *actor = zactor_new(s_agent_actor, mx3);
    cr_assert(s_wait_applied(mx3, rev));

    time_t now = time(NULL);
    static Pm__Cooldown bogus[S_BOGUS_MIRRORS];
    static char names[S_BOGUS_MIRRORS][32];
    Pm__Cooldown *cds[S_BOGUS_MIRRORS + 3];
    Pm__Cooldown blame = s_cooldown("http://a.example", 429, now + 3600, "mx3");
    Pm__Cooldown not_wait = s_cooldown("http://b.example", 500, now + 3600, "");
    Pm__Cooldown earlier = s_cooldown("http://a.example", 403, now + 60, "");
    cds[0] = &blame;
    cds[1] = &not_wait;
    cds[2] = &earlier;
    for (size_t i = 0; i < S_BOGUS_MIRRORS; i++) {
        snprintf(names[i], sizeof names[i], "http://%04zu.example", i);
        bogus[i] = s_cooldown(names[i], 429, now + 3600, "mx3");
        cds[3 + i] = &bogus[i];
    }
    Pm__NodeStatus st = PM__NODE_STATUS__INIT;
    st.name = (char *)"mx1";
    st.applied_rev = rev;
    st.cooldowns = cds;
    st.n_cooldowns = S_BOGUS_MIRRORS + 3;
    zsock_t *sock1 = s_raw_agent(key1);
    s_send_report(sock1, PM__AGENT_REPORT__KIND__APPLIED, &st);
    s_wait_cooldowns(mx3, "http://a.example:429:mx1");

    Pm__Request nodes = s_req(PM__REQUEST__OP__NODES);
    Pm__Response *r = s_ask(api, &nodes);
    const Pm__NodeStatus *mx1 = s_node_entry(r, "mx1");
    cr_assert_not_null(mx1);
    cr_expect_eq(mx1->n_cooldowns, 1, "kept: %zu", mx1->n_cooldowns);
    cr_expect_eq(r->n_cooldowns, 1);
    pm__response__free_unpacked(r, NULL);

    /* mirror a leaves the policy: its cool-down leaves MEMBERS, although
     * mx1's status still names it */
    s_set(api, "antivirus.mirrors", "[\"http://b.example\"]");
    s_wait_cooldowns(mx3, "");

    zsock_destroy(&sock1);
    zactor_destroy(&actor);
    free(mx3);
    zsock_destroy(&api);
    s_controller_stop();
    zcert_destroy(&key1);
    zcert_destroy(&key3);
}

/* ---- hand edits ------------------------------------------------------- */

/* mx1 reports one hand edit found at AT (and, hostile, a history of its
 * own that the controller must not take). */
static void
s_report_drift(zsock_t *sock, uint64_t rev, int64_t at, const char *found)
{
    Pm__NodeStatus st = PM__NODE_STATUS__INIT;
    Pm__Drift d = PM__DRIFT__INIT, *ds[] = {&d};
    Pm__Drift forged = PM__DRIFT__INIT, *fs[40];
    for (size_t i = 0; i < 40; i++)
        fs[i] = &forged;
    forged.parameter = (char *)"forged";
    st.name = (char *)"mx1";
    st.applied_rev = rev;
    d.parameter = (char *)"smtpd_helo_restrictions";
    d.applied = (char *)"reject_invalid_helo_hostname";
    d.found = (char *)found;
    d.at = at;
    d.reverted = true;
    d.revision = rev;
    st.drift = ds;
    st.n_drift = 1;
    st.drift_history = fs;
    st.n_drift_history = 40;
    s_send_report(sock, PM__AGENT_REPORT__KIND__HEARTBEAT, &st);
}

/* mx1's drift history as the controller holds it: "AT:FOUND ..." newest
 * first (caller frees), waiting until it holds N entries. */
static char *
s_wait_history(zsock_t *api, size_t n)
{
    int64_t deadline = zclock_mono() + S_WAIT_MS;
    for (;;) {
        Pm__Request nodes = s_req(PM__REQUEST__OP__NODES);
        Pm__Response *r = s_ask(api, &nodes);
        const Pm__NodeStatus *st = s_node_entry(r, "mx1");
        size_t have = st ? st->n_drift_history : 0;
        if (have == n || zclock_mono() > deadline) {
            char *line = NULL;
            size_t size = 0;
            FILE *f = open_memstream(&line, &size);
            for (size_t i = 0; i < have; i++)
                fprintf(f, "%s%lld:%s", i ? " " : "",
                        (long long)st->drift_history[i]->at,
                        st->drift_history[i]->found);
            fclose(f);
            pm__response__free_unpacked(r, NULL);
            if (have != n)
                s_show_log();
            cr_assert_eq(have, n, "history: %s", line);
            return line;
        }
        pm__response__free_unpacked(r, NULL);
        zclock_sleep(20);
    }
}

/* The controller keeps each node's hand edits: an edit reported again
 * (the agent repeats its last one in every heartbeat) counts once, what an
 * agent sends as history is dropped, the newest 32 are kept, across a
 * controller restart; `privmta-ctl drift` lists them and `nodes` shows
 * the last. */
Test(fleet, drift_history_kept_by_controller)
{
    zcert_t *key = s_enrolled_key("mx1");
    s_controller_start(100);
    zsock_t *api = s_admin_ready();
    uint64_t rev = s_push(api, 1);
    zsock_t *sock = s_raw_agent(key);
    int64_t t0 = 1764590000; /* 2025-12-01 11:53:20 UTC */
    s_report_drift(sock, rev, t0, "permit");
    char *h = s_wait_history(api, 1);
    cr_expect_str_eq(h, "1764590000:permit");
    free(h);
    s_report_drift(sock, rev, t0, "permit"); /* the same edit again */
    s_report_drift(sock, rev, t0 + 1, "a1");
    h = s_wait_history(api, 2);
    cr_expect_str_eq(h, "1764590001:a1 1764590000:permit");
    free(h);
    for (int i = 2; i <= 40; i++) {
        char found[16];
        snprintf(found, sizeof found, "a%d", i);
        s_report_drift(sock, rev, t0 + i, found);
    }
    int64_t deadline = zclock_mono() + S_WAIT_MS;
    for (;;) { /* until the last report is in */
        h = s_wait_history(api, 32);
        bool done = strncmp(h, "1764590040:a40 ", 15) == 0;
        if (done || zclock_mono() > deadline)
            break;
        free(h);
        zclock_sleep(20);
    }
    cr_expect(strncmp(h, "1764590040:a40 1764590039:a39 ", 30) == 0, "%s", h);
    cr_expect(strstr(h, " 1764590009:a9") && !strstr(h, ":a8"), "%s", h);

    char *cmd = pm_asprintf("%s/controller/privmta-ctl --state-dir %s "
                            "--controller %s nodes",
                            PM_BUILD_DIR, s_dir, s_ctl_ep);
    char *out = s_run(cmd);
    cr_expect(strstr(out, "drift: smtpd_helo_restrictions set by hand to "
                          "\"a40\" at 2025-12-01 11:54:00 UTC; put back to "
                          "\"reject_invalid_helo_hostname\"\n") != NULL,
              "%s", out);
    free(out);
    free(cmd);

    /* kept across a restart, shown by privmta-ctl drift */
    zsock_destroy(&sock);
    zsock_destroy(&api);
    s_controller_stop();
    s_controller_start(100);
    api = s_admin_ready();
    char *again = s_wait_history(api, 32);
    cr_expect_str_eq(again, h);
    free(again);
    free(h);
    cmd = pm_asprintf("%s/controller/privmta-ctl --state-dir %s "
                      "--controller %s drift mx1 --json",
                      PM_BUILD_DIR, s_dir, s_ctl_ep);
    out = s_run(cmd);
    json_t *all = json_loads(out, 0, NULL);
    cr_assert(json_is_array(all), "%s", out);
    cr_expect_eq(json_array_size(all), 32);
    json_t *first = json_array_get(all, 0);
    cr_expect_str_eq(json_string_value(json_object_get(first, "node")), "mx1");
    cr_expect_str_eq(json_string_value(json_object_get(first, "found")), "a40");
    cr_expect_eq(json_integer_value(json_object_get(first, "at")), t0 + 40);
    json_decref(all);
    free(out);
    free(cmd);
    cmd = pm_asprintf("%s/controller/privmta-ctl --state-dir %s "
                      "--controller %s drift mx9 2>&1; echo rc=$?",
                      PM_BUILD_DIR, s_dir, s_ctl_ep);
    out = s_run(cmd);
    cr_expect(strstr(out, "no node mx9 has reported\nrc=1\n") != NULL, "%s",
              out);
    free(out);
    free(cmd);

    zsock_destroy(&api);
    s_controller_stop();
    zcert_destroy(&key);
}

/* ---- rolling restarts --------------------------------------------------- */

/* An agent that answers restart orders as privmta-agent does: an order
 * for a rollout it has not answered is carried out (it takes answer_ms
 * and ends ok or not), its result is in every report after; an order for
 * a rollout it already answered is only answered again. It reports every
 * 50 ms, postfix running. ORDERS counts every order received, CARRIED
 * those acted on. With LOSE_FIRST the first order is lost on its way (it
 * is counted, nothing else). */
typedef struct {
    const char *name;
    zcert_t *cert;
    bool ok;
    int answer_ms;
    _Atomic bool lose_first; /* set by the test thread */
    _Atomic unsigned orders, carried, reports;
    /* the actor's own */
    zsock_t *dealer;
    bool answered;
    Pm__RestartResult result;
    int64_t done_at; /* zclock_mono() its restart ends; 0: none running */
} s_restarter_t;

static void
s_restarter_report(s_restarter_t *a)
{
    Pm__NodeStatus st = PM__NODE_STATUS__INIT;
    st.name = (char *)a->name;
    st.postfix_running = true;
    if (a->result.rollout)
        st.restart = &a->result;
    s_send_report(a->dealer,
                  a->answered ? PM__AGENT_REPORT__KIND__HEARTBEAT
                              : PM__AGENT_REPORT__KIND__HELLO,
                  &st);
    atomic_fetch_add(&a->reports, 1);
}

static void
s_restarter_order(s_restarter_t *a, const Pm__RestartOrder *o)
{
    if (atomic_fetch_add(&a->orders, 1) == 0 && atomic_load(&a->lose_first))
        return;
    if (o->rollout != a->result.rollout) {
        atomic_fetch_add(&a->carried, 1);
        pm__restart_result__init(&a->result);
        a->result.rollout = o->rollout;
        a->result.phase = (char *)"drain";
        a->result.at = zclock_time();
        a->done_at = zclock_mono() + a->answer_ms;
    }
    s_restarter_report(a);
}

static void
s_restarter_finish(s_restarter_t *a)
{
    a->done_at = 0;
    a->result.done = true;
    a->result.ok = a->ok;
    a->result.phase = (char *)(a->ok ? "gate" : "restart");
    a->result.error =
        (char *)(a->ok ? "" : "postfix did not start: fatal: bad main.cf");
    a->result.at = zclock_time();
    s_restarter_report(a);
}

static void
s_restarter_actor(zsock_t *pipe, void *arg)
{
    s_restarter_t *a = arg;
    pm__restart_result__init(&a->result);
    a->dealer = s_raw_agent(a->cert);
    zsock_set_reconnect_ivl(a->dealer, 100);
    s_restarter_report(a);
    zsock_signal(pipe, 0);
    zpoller_t *poller = zpoller_new(pipe, a->dealer, NULL);
    int64_t next_beat = zclock_mono() + 50;
    for (;;) {
        int64_t due =
            a->done_at && a->done_at < next_beat ? a->done_at : next_beat;
        int64_t wait = due - zclock_mono();
        void *which = zpoller_wait(poller, wait > 0 ? (int)wait : 0);
        if (which == pipe || zpoller_terminated(poller))
            break; /* $TERM */
        if (which == a->dealer) {
            zframe_t *f = zframe_recv(a->dealer);
            Pm__Publication *pub = NULL;
            if (f && pm_wire_unpack_publication(zframe_data(f), zframe_size(f),
                                                &pub, NULL) == PM_OK) {
                a->answered = true;
                if (pub->kind == PM__PUBLICATION__KIND__RESTART)
                    s_restarter_order(a, pub->restart);
                pm__publication__free_unpacked(pub, NULL);
            }
            zframe_destroy(&f);
        }
        if (a->done_at && zclock_mono() >= a->done_at)
            s_restarter_finish(a);
        if (zclock_mono() >= next_beat) {
            next_beat = zclock_mono() + 50;
            s_restarter_report(a);
        }
    }
    zpoller_destroy(&poller);
    zsock_destroy(&a->dealer);
}

#define S_RESTARTERS 3

typedef struct {
    zcert_t *keys[S_RESTARTERS];
    s_restarter_t agents[S_RESTARTERS];
    zactor_t *actors[S_RESTARTERS];
} s_restarters_t;

/* mx3, mx1, mx2 (enrolled in that order, restarted by name), each ending
 * its restarts OK[i] after ANSWER_MS[i]. */
static void
s_restarters_start(s_restarters_t *rs, const bool ok[], const int answer_ms[])
{
    static const char *const names[S_RESTARTERS] = {"mx3", "mx1", "mx2"};
    for (size_t i = 0; i < S_RESTARTERS; i++) {
        rs->keys[i] = s_enrolled_key(names[i]);
        rs->agents[i] = (s_restarter_t){.name = names[i],
                                        .cert = rs->keys[i],
                                        .ok = ok[i],
                                        .answer_ms = answer_ms[i]};
        rs->actors[i] = zactor_new(s_restarter_actor, &rs->agents[i]);
    }
}

static void
s_restarters_stop(s_restarters_t *rs)
{
    for (size_t i = 0; i < S_RESTARTERS; i++) {
        zactor_destroy(&rs->actors[i]);
        zcert_destroy(&rs->keys[i]);
    }
}

static s_restarter_t *
s_restarter(s_restarters_t *rs, const char *name)
{
    for (size_t i = 0; i < S_RESTARTERS; i++)
        if (strcmp(rs->agents[i].name, name) == 0)
            return &rs->agents[i];
    cr_assert_fail("no agent %s", name);
    return NULL;
}

/* Waits until the controller has every agent "up". */
static void
s_wait_all_up(zsock_t *api)
{
    int64_t deadline = zclock_mono() + S_WAIT_MS;
    Pm__Request nodes = s_req(PM__REQUEST__OP__NODES);
    for (;;) {
        Pm__Response *r = s_ask(api, &nodes);
        size_t up = 0;
        for (size_t i = 0; i < r->n_nodes; i++)
            up += strcmp(r->nodes[i]->liveness, "up") == 0;
        pm__response__free_unpacked(r, NULL);
        if (up == S_RESTARTERS)
            return;
        if (zclock_mono() > deadline)
            s_show_log();
        cr_assert_leq(zclock_mono(), deadline, "%zu agents up", up);
        zclock_sleep(20);
    }
}

/* The current rollout (the reply holds it; caller frees), and as
 * "STATE mx1:STATE ..." in *LINE (static). */
static Pm__Response *
s_rollout_status(zsock_t *api, const char **line)
{
    static char text[512];
    Pm__Request req = s_req(PM__REQUEST__OP__ROLLOUT_STATUS);
    Pm__Response *r = s_ask(api, &req);
    cr_assert_eq(r->status, PM__RESPONSE__STATUS__OK, "%s", r->error);
    cr_assert_not_null(r->rollout);
    static const char *const states[] = {"running", "paused", "done", "halted",
                                         "aborted"};
    static const char *const nodes[] = {"pending", "restarting", "settling",
                                        "done",    "failed",     "unreachable"};
    snprintf(text, sizeof text, "%s", states[r->rollout->state]);
    for (size_t i = 0; i < r->rollout->n_nodes; i++)
        snprintf(text + strlen(text), sizeof text - strlen(text), " %s:%s",
                 r->rollout->nodes[i]->name,
                 nodes[r->rollout->nodes[i]->state]);
    *line = text;
    return r;
}

/* Waits until the rollout's line starts with one of WANT (NULL-terminated);
 * returns the reply (caller frees). */
static Pm__Response *
s_wait_rollout(zsock_t *api, const char *const *want)
{
    int64_t deadline = zclock_mono() + S_WAIT_MS;
    for (;;) {
        const char *line = NULL;
        Pm__Response *r = s_rollout_status(api, &line);
        for (size_t i = 0; want[i]; i++)
            if (strncmp(line, want[i], strlen(want[i])) == 0)
                return r;
        if (zclock_mono() > deadline)
            s_show_log();
        cr_assert_leq(zclock_mono(), deadline, "rollout: %s", line);
        pm__response__free_unpacked(r, NULL);
        zclock_sleep(20);
    }
}

/* `privmta-ctl ARGS` against the test's controller (caller frees). */
static char *
s_ctl(const char *args)
{
    char *cmd = pm_asprintf("%s/controller/privmta-ctl --state-dir %s "
                            "--controller %s %s",
                            PM_BUILD_DIR, s_dir, s_ctl_ep, args);
    char *out = s_run(cmd);
    free(cmd);
    return out;
}

/* `privmta-ctl restart --rolling --wait` over three agents: batch 1, in
 * name order, each after the one before settled; it ends DONE and the CLI
 * exits 0. `rollout status` shows it as text and JSON. */
Test(fleet, rolling_restart_goes_done_in_name_order)
{
    s_stale_ms = 1000; /* the rollout waits this long after a start */
    s_down_ms = 3000;
    s_restarters_t rs;
    s_restarters_start(&rs, (bool[]){true, true, true}, (int[]){100, 100, 100});
    s_controller_start(100);
    zsock_t *api = s_admin_ready();
    s_wait_all_up(api);
    char *out = s_ctl("restart --rolling --min-healthy 1s --deadline 30s "
                      "--wait=60 2>&1; echo rc=$?");
    cr_expect(strstr(out, "rollout 1 started: postfix on 3 nodes, 1 at a "
                          "time") != NULL,
              "%s", out);
    cr_expect(strstr(out, "mx1 done (") && strstr(out, "mx3 done ("), "%s",
              out);
    cr_expect(strstr(out, "rollout 1 done: 3 of 3 nodes restarted\nrc=0\n"),
              "%s", out);
    free(out);

    const char *line = NULL;
    Pm__Response *r = s_rollout_status(api, &line);
    cr_expect_str_eq(line, "done mx1:done mx2:done mx3:done");
    const Pm__Rollout *ro = r->rollout;
    for (size_t i = 1; i < ro->n_nodes; i++)
        cr_expect_geq(ro->nodes[i]->started, ro->nodes[i - 1]->finished,
                      "%s started before %s was done", ro->nodes[i]->name,
                      ro->nodes[i - 1]->name);
    cr_expect_eq(ro->spec->min_healthy_ms, 1000);
    pm__response__free_unpacked(r, NULL);
    for (size_t i = 0; i < S_RESTARTERS; i++) {
        cr_expect_eq(atomic_load(&rs.agents[i].carried), 1, "%s",
                     rs.agents[i].name);
        cr_expect_geq(atomic_load(&rs.agents[i].orders), 1);
    }

    out = s_ctl("rollout status");
    static const char head[] = "rollout 1 (postfix): done, started ";
    cr_expect(strncmp(out, head, strlen(head)) == 0, "%s", out);
    cr_expect(strstr(out, ", 3 of 3 nodes done\nNODE ") != NULL, "%s", out);
    cr_expect(strstr(out, "\nmx1              done ") != NULL, "%s", out);
    cr_expect_null(strstr(out, "auto-revert"), "%s", out);
    free(out);
    out = s_ctl("rollout status --json");
    json_t *doc = json_loads(out, 0, NULL);
    cr_assert(json_is_object(doc), "%s", out);
    cr_expect_eq(json_integer_value(json_object_get(doc, "id")), 1);
    cr_expect_str_eq(json_string_value(json_object_get(doc, "state")), "done");
    json_t *first = json_array_get(json_object_get(doc, "nodes"), 0);
    cr_expect_str_eq(json_string_value(json_object_get(first, "name")), "mx1");
    cr_expect_eq(json_integer_value(
                     json_object_get(json_object_get(doc, "spec"), "batch")),
                 1);
    json_decref(doc);
    free(out);
    out = s_ctl("restart --service postfix 2>&1; echo rc=$?");
    cr_expect(strstr(out, "only rolling restarts exist") &&
                  strstr(out, "rc=2\n"),
              "%s", out);
    free(out);

    zsock_destroy(&api);
    s_controller_stop();
    s_restarters_stop(&rs);
}

/* mx2 fails its restart: the rollout halts naming it and the check, mx3
 * is never told, and `restart --wait` exits 1 with the reason. */
Test(fleet, failed_restart_halts_and_leaves_the_rest)
{
    s_stale_ms = 1000;
    s_down_ms = 3000;
    s_restarters_t rs;
    s_restarters_start(&rs, (bool[]){true, true, false},
                       (int[]){100, 100, 100});
    s_controller_start(100);
    zsock_t *api = s_admin_ready();
    s_wait_all_up(api);
    char *out = s_ctl("restart --rolling --min-healthy 1s --deadline 30s "
                      "--wait=60 2>&1; echo rc=$?");
    cr_expect(strstr(out, "privmta-ctl: rollout 1 halted: mx2 failed: "
                          "restart: postfix did not start: fatal: bad "
                          "main.cf (1 failure, more than max-failures 0)\n"
                          "rc=1\n") != NULL,
              "%s", out);
    free(out);
    const char *line = NULL;
    Pm__Response *r = s_rollout_status(api, &line);
    cr_expect_str_eq(line, "halted mx1:done mx2:failed mx3:pending");
    cr_expect_str_eq(r->rollout->nodes[1]->detail,
                     "restart: postfix did not start: fatal: bad main.cf");
    pm__response__free_unpacked(r, NULL);
    /* 20 more of mx3's reports (1 s: several rollout ticks), and it is
     * still never told */
    s_restarter_t *mx3 = s_restarter(&rs, "mx3");
    unsigned want = atomic_load(&mx3->reports) + 20;
    int64_t deadline = zclock_mono() + S_WAIT_MS;
    while (atomic_load(&mx3->reports) < want) {
        cr_assert_lt(zclock_mono(), deadline, "mx3 stopped reporting");
        zclock_sleep(10);
    }
    cr_expect_eq(atomic_load(&mx3->orders), 0);
    cr_expect_eq(atomic_load(&s_restarter(&rs, "mx1")->carried), 1);
    /* halted is over: the policy may change again */
    s_push(api, 1);

    zsock_destroy(&api);
    s_controller_stop();
    s_restarters_stop(&rs);
}

/* The controller is killed (SIGKILL) after mx1 is done, while mx2 is
 * told to restart but has not answered (its order was lost), and started
 * again: the rollout goes on to DONE from what the store holds; mx2's
 * order is sent again, mx1 gets no second one, and no node restarts
 * twice. Meanwhile a policy change is refused with a sentence that says
 * why. */
Test(fleet, killed_controller_resumes_the_rollout)
{
    s_stale_ms = 1000;
    s_down_ms = 3000;
    s_restarters_t rs;
    s_restarters_start(&rs, (bool[]){true, true, true}, (int[]){100, 100, 100});
    atomic_store(&s_restarter(&rs, "mx2")->lose_first, true);
    s_controller_start(100);
    zsock_t *api = s_admin_ready();
    s_wait_all_up(api);
    Pm__RolloutSpec spec = PM__ROLLOUT_SPEC__INIT;
    spec.service = (char *)"all";
    spec.min_healthy_ms = 500;
    spec.deadline_ms = 30000;
    Pm__Request start = s_req(PM__REQUEST__OP__ROLLOUT_START);
    start.rollout_spec = &spec;
    Pm__Response *r = s_ask(api, &start);
    cr_assert_eq(r->status, PM__RESPONSE__STATUS__OK, "%s", r->error);
    pm__response__free_unpacked(r, NULL);
    static const char *const mid[] = {"running mx1:done mx2:restarting", NULL};
    pm__response__free_unpacked(s_wait_rollout(api, mid), NULL);

    Pm__Edit e = PM__EDIT__INIT, *edits[1] = {&e};
    e.key = (char *)"antispam.subject_prefix";
    e.value = (char *)"[mid]";
    Pm__Request set = s_req(PM__REQUEST__OP__SET);
    set.edits = edits;
    set.n_edits = 1;
    r = s_ask(api, &set);
    cr_expect_eq(r->status, PM__RESPONSE__STATUS__CONFLICT);
    cr_expect_str_eq(r->error, "a rolling restart is running (rollout 1, 1 "
                               "of 3 nodes done): wait for it or "
                               "`privmta-ctl rollout abort`");
    pm__response__free_unpacked(r, NULL);

    zsock_destroy(&api);
    s_controller_kill();
    s_controller_start(100);
    api = s_admin_ready();
    static const char *const end[] = {"done ", "halted ", NULL};
    const char *line = NULL;
    r = s_wait_rollout(api, end);
    pm__response__free_unpacked(r, NULL);
    r = s_rollout_status(api, &line);
    cr_expect_str_eq(line, "done mx1:done mx2:done mx3:done");
    cr_expect_eq(r->rollout->id, 1);
    pm__response__free_unpacked(r, NULL);
    s_restarter_t *mx1 = s_restarter(&rs, "mx1");
    printf("rollout across a SIGKILL: orders received mx1 %u, mx2 %u, mx3 "
           "%u\n",
           atomic_load(&mx1->orders),
           atomic_load(&s_restarter(&rs, "mx2")->orders),
           atomic_load(&s_restarter(&rs, "mx3")->orders));
    fflush(stdout);
    cr_expect_eq(atomic_load(&mx1->orders), 1, "mx1 was ordered again");
    cr_expect_geq(atomic_load(&s_restarter(&rs, "mx2")->orders), 2);
    for (size_t i = 0; i < S_RESTARTERS; i++)
        cr_expect_eq(atomic_load(&rs.agents[i].carried), 1,
                     "%s restarted %u "
                     "times",
                     rs.agents[i].name, atomic_load(&rs.agents[i].carried));
    char *log = s_slurp(s_path("controller.log"));
    cr_expect(strstr(log, "rollout 1 is running: 1 of 3 nodes done; taking "
                          "it up where it was") != NULL,
              "%s", log);
    free(log);

    zsock_destroy(&api);
    s_controller_stop();
    s_restarters_stop(&rs);
}

/* Scrapes the controller's metrics until TEXT holds every line of WANT
 * (within S_WAIT_MS: they are rendered once a second). */
static void
s_wait_metrics(int port, const char *const *want, size_t n)
{
    int64_t deadline = zclock_mono() + S_WAIT_MS;
    for (;;) {
        char *out = NULL;
        int rc = testsh_run(&out, "curl -sf http://127.0.0.1:%d/metrics", port);
        size_t k = 0;
        while (rc == 0 && k < n && strstr(out, want[k]))
            k++;
        if (k == n || zclock_mono() > deadline) {
            cr_assert_eq(k, n, "missing \"%s\" in:\n%s", k < n ? want[k] : "",
                         out ? out : "(nothing)");
            free(out);
            return;
        }
        free(out);
        zclock_sleep(100);
    }
}

Test(fleet, metrics_follow_pushes_and_acks)
{
    int port = testsh_free_port("127.0.0.1");
    snprintf(s_metrics, sizeof s_metrics, "127.0.0.1:%d", port);
    zcert_t *key1 = s_enrolled_key("mx1"), *key2 = s_enrolled_key("mx2");
    zcert_t *key3 = s_enrolled_key("mx3"); /* never connects */
    s_controller_start(50);
    zsock_t *api = s_admin_ready();
    s_agent_t *mx1 = s_agent_new("mx1", "192.0.2.1", key1, 50);
    s_agent_t *mx2 = s_agent_new("mx2", "192.0.2.2", key2, 50);
    zactor_t *a1 = zactor_new(s_agent_actor, mx1);
    zactor_t *a2 = zactor_new(s_agent_actor, mx2);
    const char *const idle[] = {
        "privmta_controller_nodes{liveness=\"up\"} 2\n",
        "privmta_controller_nodes{liveness=\"never\"} 1\n",
        "privmta_controller_push_ack_seconds_count 0\n"};
    s_wait_metrics(port, idle, 3);
    uint64_t r1 = s_push(api, 1), r2 = s_push(api, 2);
    cr_assert(s_wait_applied(mx1, r2) && s_wait_applied(mx2, r2));
    char head[80], published[80], lag[80];
    snprintf(head, sizeof head, "privmta_controller_head_revision %llu\n",
             (unsigned long long)r2);
    snprintf(published, sizeof published,
             "privmta_controller_revisions_published_total 2\n");
    snprintf(lag, sizeof lag,
             "privmta_controller_node_lag_revisions{node=\"mx3\"} %llu\n",
             (unsigned long long)r2);
    /* both agents applied both revisions: four acks, each within the
     * histogram's last bucket on any machine (+Inf holds them all) */
    const char *const pushed[] = {
        head,
        published,
        lag,
        "privmta_controller_node_lag_revisions{node=\"mx1\"} 0\n",
        "privmta_controller_node_lag_revisions{node=\"mx2\"} 0\n",
        "privmta_controller_push_ack_seconds_count 4\n",
        "privmta_controller_push_ack_seconds_bucket{le=\"+Inf\"} 4\n"};
    s_wait_metrics(port, pushed, 7);
    (void)r1;
    zactor_destroy(&a1);
    zactor_destroy(&a2);
    free(mx1);
    free(mx2);
    zsock_destroy(&api);
    s_controller_stop();
    zcert_destroy(&key1);
    zcert_destroy(&key2);
    zcert_destroy(&key3);
}

/* ---- policy test ------------------------------------------------------- */

/* An agent that answers TEST publications as privmta-agent does, with
 * made-up results: under the candidate a message whose name holds ".iso"
 * is rejected by inbound.blocked_extensions, any other accepted; under
 * the head everything is accepted (another queue id each time). It
 * answers 300 ms after the test came, having first sent an answer for an
 * id the controller never gave; meanwhile the other testers answer the
 * same test with forged results (s_forge_id): answers from a node that
 * was not asked. It keeps the last test it was sent. */
#define S_DUE_MAX 8

typedef struct {
    const char *name;
    zcert_t *cert;
    _Atomic bool fail;      /* answer with a test_error (set by the test) */
    _Atomic bool hold;      /* answer nothing until cleared (the same) */
    _Atomic unsigned tests; /* TEST publications received */
    _Atomic unsigned whys;  /* WHY publications received (never answered) */
    pthread_mutex_t lock;
    Pm__Publication *last; /* the last TEST (under lock) */
    /* the actor's own */
    zsock_t *dealer;
    bool answered;
    Pm__Publication *due[S_DUE_MAX]; /* the tests to answer at due_at */
    size_t n_due;
    int64_t due_at;
    uint64_t forged; /* the last id it forged an answer for */
} s_tester_t;

/* The id of the test an honest tester got last: the others forge an
 * answer for it. */
static _Atomic uint64_t s_forge_id;

static void
s_tester_report(s_tester_t *a)
{
    Pm__NodeStatus st = PM__NODE_STATUS__INIT;
    st.name = (char *)a->name;
    st.postfix_running = true;
    s_send_report(a->dealer,
                  a->answered ? PM__AGENT_REPORT__KIND__HEARTBEAT
                              : PM__AGENT_REPORT__KIND__HELLO,
                  &st);
}

/* Sends a TEST_ANSWER for ID with RESULTS (N) or ERROR. */
static void
s_tester_send(s_tester_t *a, uint64_t id, Pm__TestResult **results, size_t n,
              const char *error)
{
    Pm__NodeStatus st = PM__NODE_STATUS__INIT;
    Pm__AgentReport rep = PM__AGENT_REPORT__INIT;
    st.name = (char *)a->name;
    st.postfix_running = true;
    rep.kind = PM__AGENT_REPORT__KIND__TEST_ANSWER;
    rep.status = &st;
    rep.test_id = id;
    rep.test_results = results;
    rep.n_test_results = n;
    rep.test_error = (char *)(error ? error : "");
    size_t len = 0;
    uint8_t *buf = pm_wire_pack(&rep.base, &len);
    cr_assert_geq(zmq_send(zsock_resolve(a->dealer), buf, len, 0), 0);
    free(buf);
}

/* One result; its strings are static or kept in TEXTS (freed by the
 * caller). */
static Pm__TestResult *
s_tester_result(const Pm__PolicyTest *t, size_t m, size_t r, bool head,
                char **text)
{
    static unsigned queued;
    Pm__TestResult *res = pm_malloc(sizeof *res);
    pm__test_result__init(res);
    res->message = t->messages[m]->name;
    res->rcpt = t->rcpts[r];
    res->policy = (char *)(head ? "head" : "candidate");
    res->revision = head ? t->head_rev : t->rev;
    res->stage = (char *)"end-of-data";
    if (!head && strstr(t->messages[m]->name, ".iso")) {
        res->verdict = (char *)"rejected";
        res->reply = (char *)"554 5.7.1 attachment report.iso refused";
        res->key = (char *)"inbound.blocked_extensions";
        res->evidence = (char *)"report.iso";
    } else {
        res->verdict = (char *)"accepted";
        *text = pm_asprintf("250 2.0.0 Ok: queued as %c%u", head ? 'H' : 'C',
                            queued++);
        res->reply = *text;
    }
    return res;
}

/* The honest answer to T. */
static void
s_tester_answer(s_tester_t *a, const Pm__PolicyTest *t)
{
    if (atomic_load(&a->fail)) {
        s_tester_send(a, t->id, NULL, 0,
                      "postfix did not start: fatal: bad main.cf");
        return;
    }
    size_t n = 0, cap = t->n_messages * t->n_rcpts * 2;
    Pm__TestResult **res = pm_calloc(cap, sizeof *res);
    char **texts = pm_calloc(cap, sizeof *texts);
    for (size_t m = 0; m < t->n_messages; m++)
        for (size_t r = 0; r < t->n_rcpts; r++)
            for (int head = 0; head <= (t->head != NULL); head++, n++)
                res[n] = s_tester_result(t, m, r, head, &texts[n]);
    s_tester_send(a, t->id, res, n, NULL);
    for (size_t i = 0; i < n; i++) {
        free(texts[i]);
        free(res[i]);
    }
    free(texts);
    free(res);
}

/* A forged answer for another node's test. */
static void
s_tester_forge(s_tester_t *a, uint64_t id)
{
    Pm__TestResult res = PM__TEST_RESULT__INIT, *all[] = {&res};
    res.message = (char *)"forged";
    res.rcpt = (char *)"forged";
    res.policy = (char *)"candidate";
    res.verdict = (char *)"forged";
    s_tester_send(a, id, all, 1, NULL);
    a->forged = id;
}

static void
s_tester_on_test(s_tester_t *a, Pm__Publication **pub_p)
{
    Pm__Publication *pub = *pub_p;
    *pub_p = NULL;
    atomic_fetch_add(&a->tests, 1);
    pthread_mutex_lock(&a->lock);
    if (a->last)
        pm__publication__free_unpacked(a->last, NULL);
    a->last = pm_wire_dup(&pub->base);
    pthread_mutex_unlock(&a->lock);
    a->forged = pub->test->id; /* not its own */
    atomic_store(&s_forge_id, pub->test->id);
    /* an answer to a test never asked comes first */
    Pm__TestResult res = PM__TEST_RESULT__INIT, *all[] = {&res};
    res.verdict = (char *)"forged";
    s_tester_send(a, pub->test->id + 1000, all, 1, NULL);
    if (a->n_due < S_DUE_MAX)
        a->due[a->n_due++] = pub;
    else
        pm__publication__free_unpacked(pub, NULL);
    a->due_at = zclock_mono() + 300;
}

/* Answers the tests due, unless held. */
static void
s_tester_due(s_tester_t *a)
{
    if (!a->n_due || atomic_load(&a->hold) || zclock_mono() < a->due_at)
        return;
    for (size_t i = 0; i < a->n_due; i++) {
        s_tester_answer(a, a->due[i]->test);
        pm__publication__free_unpacked(a->due[i], NULL);
    }
    a->n_due = 0;
}

static void
s_tester_actor(zsock_t *pipe, void *arg)
{
    s_tester_t *a = arg;
    a->dealer = s_raw_agent(a->cert);
    zsock_set_reconnect_ivl(a->dealer, 100);
    s_tester_report(a);
    zsock_signal(pipe, 0);
    zpoller_t *poller = zpoller_new(pipe, a->dealer, NULL);
    int64_t next_beat = zclock_mono() + 50;
    for (;;) {
        int64_t due = a->n_due && a->due_at < next_beat ? a->due_at : next_beat;
        int64_t wait = due - zclock_mono();
        void *which = zpoller_wait(poller, wait > 0 ? (int)wait : 0);
        if (which == pipe || zpoller_terminated(poller))
            break; /* $TERM */
        if (which == a->dealer) {
            zframe_t *f = zframe_recv(a->dealer);
            Pm__Publication *pub = NULL;
            if (f && pm_wire_unpack_publication(zframe_data(f), zframe_size(f),
                                                &pub, NULL) == PM_OK) {
                a->answered = true;
                if (pub->kind == PM__PUBLICATION__KIND__TEST)
                    s_tester_on_test(a, &pub);
                else if (pub->kind == PM__PUBLICATION__KIND__WHY)
                    atomic_fetch_add(&a->whys, 1);
                if (pub)
                    pm__publication__free_unpacked(pub, NULL);
            }
            zframe_destroy(&f);
        }
        s_tester_due(a);
        uint64_t other = atomic_load(&s_forge_id);
        if (other && other != a->forged)
            s_tester_forge(a, other);
        if (zclock_mono() >= next_beat) {
            next_beat = zclock_mono() + 50;
            s_tester_report(a);
        }
    }
    for (size_t i = 0; i < a->n_due; i++)
        pm__publication__free_unpacked(a->due[i], NULL);
    zpoller_destroy(&poller);
    zsock_destroy(&a->dealer);
}

#define S_TESTERS 3

typedef struct {
    zcert_t *keys[S_TESTERS];
    s_tester_t agents[S_TESTERS];
    zactor_t *actors[S_TESTERS];
} s_testers_t;

/* mx1, mx2, mx3, enrolled and answering tests. */
static void
s_testers_start(s_testers_t *ts)
{
    static const char *const names[S_TESTERS] = {"mx1", "mx2", "mx3"};
    atomic_store(&s_forge_id, 0);
    for (size_t i = 0; i < S_TESTERS; i++) {
        ts->keys[i] = s_enrolled_key(names[i]);
        ts->agents[i] = (s_tester_t){.name = names[i], .cert = ts->keys[i]};
        pthread_mutex_init(&ts->agents[i].lock, NULL);
        ts->actors[i] = zactor_new(s_tester_actor, &ts->agents[i]);
    }
}

static void
s_testers_stop(s_testers_t *ts)
{
    for (size_t i = 0; i < S_TESTERS; i++) {
        zactor_destroy(&ts->actors[i]);
        zcert_destroy(&ts->keys[i]);
        if (ts->agents[i].last)
            pm__publication__free_unpacked(ts->agents[i].last, NULL);
        pthread_mutex_destroy(&ts->agents[i].lock);
    }
}

/* TEXT into the file NAME in the test's directory; returns its path (a
 * static buffer, see s_path). */
static const char *
s_file(const char *name, const char *text)
{
    const char *path = s_path(name);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f, "%s", path);
    fputs(text, f);
    fclose(f);
    return path;
}

#define S_HELLO                                                                \
    "From: \"Dave\" <dave@example.test>\r\n"                                   \
    "To: bob@example.test, carol@example.test\r\n"                             \
    "Subject: hello\r\n\r\nhi\r\n"

/* The messages and the candidate the tests use. */
static void
s_test_files(void)
{
    s_file("a.iso.eml", "From: alice@example.test\r\nTo: bob@example.test\r\n"
                        "Subject: the report\r\n\r\nsee attached\r\n");
    s_file("hello.eml", S_HELLO);
    s_file("photo.jpg", "\xff\xd8\xff\xe0 JFIF");
    s_file("candidate.yaml", "inbound.blocked_extensions: [exe, iso]\n");
}

/* A POLICY_TEST of revision HEAD (the head: one result) to NODE. */
static Pm__Request
s_test_req(Pm__PolicyTest *t, Pm__TestMessage **msgs, char **rcpts,
           uint64_t head, const char *node)
{
    static uint8_t body[] = "From: a@example.test\r\n\r\nhi\r\n";
    pm__test_message__init(msgs[0]);
    msgs[0]->name = (char *)"m.eml";
    msgs[0]->data.data = body;
    msgs[0]->data.len = sizeof body - 1;
    pm__policy_test__init(t);
    t->rev = head;
    t->messages = msgs;
    t->n_messages = 1;
    t->rcpts = rcpts;
    t->n_rcpts = 1;
    Pm__Request req = s_req(PM__REQUEST__OP__POLICY_TEST);
    req.test = t;
    req.node = (char *)node;
    return req;
}

/* Five tests at once to A, which holds its answers: four wait, the fifth
 * is told to come back; once A answers, each of the four gets its own. */
static void
s_tests_pending(s_tester_t *a, uint64_t head)
{
    Pm__TestMessage m, *msgs[] = {&m};
    char *rcpts[] = {(char *)"bob@example.test"};
    Pm__PolicyTest t;
    Pm__Request req = s_test_req(&t, msgs, rcpts, head, a->name);
    zsock_t *socks[5];
    unsigned before = atomic_load(&a->tests);
    atomic_store(&a->hold, true);
    for (size_t i = 0; i < 5; i++)
        socks[i] = s_api(s_path("keys/admin.cert_secret"));
    for (size_t i = 0; i < 4; i++)
        s_send(socks[i], &req);
    int64_t deadline = zclock_mono() + S_WAIT_MS;
    while (atomic_load(&a->tests) < before + 4) {
        cr_assert_lt(zclock_mono(), deadline, "%s got no tests", a->name);
        zclock_sleep(10);
    }
    Pm__Response *r = s_ask(socks[4], &req);
    cr_expect_eq(r->status, PM__RESPONSE__STATUS__CONFLICT);
    cr_expect_str_eq(r->error, "4 policy tests are running already; try "
                               "again when one has finished (each takes up "
                               "to 300 s)");
    pm__response__free_unpacked(r, NULL);
    atomic_store(&a->hold, false);
    for (size_t i = 0; i < 4; i++) {
        r = s_answer(socks[i]);
        cr_expect_eq(r->status, PM__RESPONSE__STATUS__OK, "%s", r->error);
        cr_expect_str_eq(r->test_node, a->name);
        cr_expect_eq(r->head, head);
        cr_expect(r->n_test_results == 1 &&
                  !strcmp(r->test_results[0]->message, "m.eml"));
        pm__response__free_unpacked(r, NULL);
    }
    for (size_t i = 0; i < 5; i++)
        zsock_destroy(&socks[i]);
}

/* privmta-ctl why waits for every node's answer, holding its client: at
 * most 16 asks wait at once and the next is told to come back; nodes that
 * never answer (the testers ignore WHY) are named once 3 s are up. */
Test(fleet, why_asks_wait_then_busy_then_name_the_silent)
{
    s_stale_ms = 1000;
    s_down_ms = 3000;
    s_testers_t ts;
    s_testers_start(&ts);
    s_controller_start(100);
    zsock_t *api = s_admin_ready();
    s_wait_all_up(api);
    Pm__WhyQuery q = PM__WHY_QUERY__INIT;
    q.queue_id = (char *)"4XYZ123";
    q.max = 10;
    Pm__Request req = s_req(PM__REQUEST__OP__WHY);
    req.why = &q;
    enum { S_ASKS = 16 };
    zsock_t *socks[S_ASKS];
    /* every connection made (a PING answered) first, then one ask at a
     * time, each on to the next once every node has it: the fleet queues
     * 16 messages per agent and drops beyond (heartbeats show the gap), so
     * sixteen asks at once could lose some on the way */
    Pm__Request ping = s_req(PM__REQUEST__OP__PING);
    for (size_t i = 0; i < S_ASKS; i++) {
        socks[i] = s_api(s_path("keys/admin.cert_secret"));
        pm__response__free_unpacked(s_ask(socks[i], &ping), NULL);
    }
    int64_t deadline = zclock_mono() + S_WAIT_MS;
    for (unsigned i = 0; i < S_ASKS; i++) {
        s_send(socks[i], &req);
        for (size_t k = 0; k < S_TESTERS; k++)
            while (atomic_load(&ts.agents[k].whys) < i + 1) {
                cr_assert_lt(zclock_mono(), deadline, "%s got %u asks of %u",
                             ts.agents[k].name, atomic_load(&ts.agents[k].whys),
                             i + 1);
                zclock_sleep(2);
            }
    }
    /* all sixteen wait (the first has 3 s to go) */
    Pm__Response *r = s_ask(api, &req);
    cr_expect_eq(r->status, PM__RESPONSE__STATUS__CONFLICT);
    cr_expect_str_eq(r->error, "16 why requests are waiting for nodes "
                               "already; try again in a few seconds");
    pm__response__free_unpacked(r, NULL);
    for (size_t i = 0; i < S_ASKS; i++) {
        r = s_answer(socks[i]);
        cr_expect_eq(r->status, PM__RESPONSE__STATUS__OK, "%s", r->error);
        cr_expect_eq(r->n_why, 0);
        cr_assert_eq(r->n_why_missing, S_TESTERS);
        for (size_t k = 0; k < S_TESTERS; k++)
            cr_expect(strstr(r->why_missing[k], "no answer within 3000 ms"),
                      "%s", r->why_missing[k]);
        pm__response__free_unpacked(r, NULL);
        zsock_destroy(&socks[i]);
    }
    /* the waiting room is empty again */
    atomic_store(&ts.agents[0].whys, 0);
    zsock_t *again = s_api(s_path("keys/admin.cert_secret"));
    r = s_ask(again, &req);
    cr_expect_eq(r->status, PM__RESPONSE__STATUS__OK, "%s", r->error);
    cr_expect_eq(atomic_load(&ts.agents[0].whys), 1);
    pm__response__free_unpacked(r, NULL);
    zsock_destroy(&again);
    zsock_destroy(&api);
    s_controller_stop();
    s_testers_stop(&ts);
}

#define S_MALFORMED 500

/* One agent cannot flood the controller's log: each malformed report is a
 * warning, but at most a few a minute from one node, then one line saying
 * the rest are suppressed (and, when the minute ends, how many). */
Test(fleet, a_node_gets_a_few_log_lines_a_minute)
{
    zcert_t *key = s_enrolled_key("mx1");
    s_controller_start(100);
    zsock_t *api = s_admin_ready();
    uint64_t rev = s_push(api, 1);
    zsock_t *sock = s_raw_agent(key);
    void *raw = zsock_resolve(sock);
    for (int i = 0; i < S_MALFORMED; i++)
        cr_assert_eq(zmq_send(raw, "\xff\xff\xff", 3, 0), 3);
    s_heartbeat_seen(api, sock, "mx1", rev); /* the bad ones were read */

    zsock_destroy(&sock);
    zsock_destroy(&api);
    s_controller_stop();
    char *log = s_slurp(s_path("controller.log"));
    size_t lines = 0;
    for (char *p = log; (p = strstr(p, "malformed report dropped")); p++)
        lines++;
    cr_expect_gt(lines, 0);
    cr_expect_leq(lines, 60, "%zu lines for %d malformed reports", lines,
                  S_MALFORMED);
    cr_expect(strstr(log, "node mx1: more than") != NULL, "%s", log);
    free(log);
    zcert_destroy(&key);
}

/* The next publication of KIND on the raw agent SOCK (others skipped);
 * caller frees it. */
static Pm__Publication *
s_recv_kind(zsock_t *sock, Pm__Publication__Kind kind)
{
    int64_t deadline = zclock_mono() + S_WAIT_MS;
    zsock_set_rcvtimeo(sock, 100);
    while (zclock_mono() < deadline) {
        zframe_t *f = zframe_recv(sock);
        Pm__Publication *pub = NULL;
        if (f && pm_wire_unpack_publication(zframe_data(f), zframe_size(f),
                                            &pub, NULL) != PM_OK)
            pub = NULL;
        zframe_destroy(&f);
        if (pub && pub->kind == kind)
            return pub;
        if (pub)
            pm__publication__free_unpacked(pub, NULL);
    }
    cr_assert_fail("no publication of kind %d", (int)kind);
    return NULL;
}

/* A node's why_error is cut for the answer on a character boundary: cut
 * through a UTF-8 sequence, the client's wire check refused the whole
 * answer, and `privmta-ctl why` failed for the cluster. */
Test(fleet, why_error_cut_on_a_character_boundary)
{
    zcert_t *key = s_enrolled_key("mx1");
    s_controller_start(100);
    zsock_t *api = s_admin_ready();
    uint64_t rev = s_push(api, 1);
    zsock_t *sock = s_raw_agent(key);
    s_heartbeat_seen(api, sock, "mx1", rev);

    Pm__WhyQuery q = PM__WHY_QUERY__INIT;
    q.queue_id = (char *)"4XYZ123";
    q.max = 10;
    Pm__Request req = s_req(PM__REQUEST__OP__WHY);
    req.why = &q;
    s_send(api, &req);
    Pm__Publication *ask = s_recv_kind(sock, PM__PUBLICATION__KIND__WHY);
    char error[256];
    memset(error, 'x', 199); /* byte 200 starts a two-byte character */
    snprintf(error + 199, sizeof error - 199, "\xc3\xa9 and more");
    Pm__AgentReport rep = PM__AGENT_REPORT__INIT;
    rep.kind = PM__AGENT_REPORT__KIND__WHY_ANSWER;
    rep.why_id = ask->why->id;
    rep.why_error = error;
    pm__publication__free_unpacked(ask, NULL);
    size_t len = 0;
    uint8_t *buf = pm_wire_pack(&rep.base, &len);
    cr_assert_geq(zmq_send(zsock_resolve(sock), buf, len, 0), 0);
    free(buf);
    Pm__Response *r = s_answer(api); /* checked by pm_wire */
    cr_expect_eq(r->status, PM__RESPONSE__STATUS__OK, "%s", r->error);
    cr_assert_eq(r->n_why_missing, 1);
    cr_expect(strncmp(r->why_missing[0], "mx1: xxx", 8) == 0, "%s",
              r->why_missing[0]);
    pm__response__free_unpacked(r, NULL);

    zsock_destroy(&sock);
    zsock_destroy(&api);
    s_controller_stop();
    zcert_destroy(&key);
}

/* A POLICY_TEST reaches the node asked and no other; its answer (and
 * nothing forged by other nodes, nor an answer to an id never given)
 * comes back to privmta-ctl, which shows what changes and exits 1. The
 * messages need two envelopes: two tests, both to the same node. Without
 * --node the first node up by name runs it; --rev N tests a stored
 * revision; a node's error is the client's. */
Test(fleet, policy_test_runs_on_one_node)
{
    s_stale_ms = 1000;
    s_down_ms = 3000;
    s_test_files();
    s_testers_t ts;
    s_testers_start(&ts);
    s_controller_start(100);
    zsock_t *api = s_admin_ready();
    s_wait_all_up(api);
    uint64_t head = s_push(api, 1);
    char *args = pm_asprintf("policy test %s/candidate.yaml %s/a.iso.eml "
                             "%s/hello.eml --node mx2 2>&1; echo rc=$?",
                             s_dir, s_dir, s_dir);
    char *out = s_ctl(args);
    free(args);
    char *want = pm_asprintf(
        "node mx2: candidate %s/candidate.yaml against head %llu\n"
        "%s/a.iso.eml -> bob@example.test\n"
        "  head %llu      accepted   250 2.0.0 Ok: "
        "queued as H",
        s_dir, (unsigned long long)head, s_dir, (unsigned long long)head);
    cr_expect(strncmp(out, want, strlen(want)) == 0, "%s\nwant:\n%s", out,
              want);
    free(want);
    cr_expect(strstr(out, "\n  candidate   rejected   554 5.7.1 attachment "
                          "report.iso refused  by "
                          "inbound.blocked_extensions: report.iso  <- "
                          "changed\n"),
              "%s", out);
    want = pm_asprintf(
        "\n%s/hello.eml -> carol@example.test\n  both        accepted   "
        "250 2.0.0 Ok: queued as C",
        s_dir);
    cr_expect(strstr(out, want), "%s", out);
    free(want);
    cr_expect(strstr(out, "  (same under both)\n1 of 3 answers change\n"
                          "rc=1\n"),
              "%s", out);
    cr_expect_null(strstr(out, "forged"), "%s", out);
    free(out);
    cr_expect_eq(atomic_load(&ts.agents[0].tests), 0);
    cr_expect_eq(atomic_load(&ts.agents[1].tests), 2);
    cr_expect_eq(atomic_load(&ts.agents[2].tests), 0);
    /* what the agent got: the trial and the head, the envelope */
    pthread_mutex_lock(&ts.agents[1].lock);
    const Pm__PolicyTest *t = ts.agents[1].last->test;
    cr_expect_geq(t->id, 1);
    cr_expect_null(t->candidate);
    cr_assert_not_null(t->trial);
    cr_expect_eq(t->trial->n_inbound_blocked_extensions, 2);
    cr_expect_not_null(t->head);
    cr_expect_eq(t->head_rev, head);
    cr_expect_eq(t->rev, 0);
    cr_expect_str_eq(t->client_addr, "192.0.2.1");
    cr_expect_str_eq(t->helo, "[192.0.2.1]");
    cr_expect_str_eq(t->sender, "dave@example.test");
    cr_expect(t->n_rcpts == 2 && !strcmp(t->rcpts[1], "carol@example.test"));
    cr_expect(t->n_messages == 1 &&
              strstr(t->messages[0]->name, "/hello.eml") &&
              t->messages[0]->data.len == strlen(S_HELLO));
    pthread_mutex_unlock(&ts.agents[1].lock);

    /* the first node up by name, as JSON */
    args = pm_asprintf("policy test %s/candidate.yaml %s/a.iso.eml "
                       "%s/hello.eml --json --from x@example.test "
                       "--rcpt y@example.test; echo rc=$?",
                       s_dir, s_dir, s_dir);
    out = s_ctl(args);
    free(args);
    cr_expect(strstr(out, "}\nrc=1\n"), "%s", out);
    *strstr(out, "rc=") = '\0';
    json_t *doc = json_loads(out, 0, NULL);
    cr_assert(json_is_object(doc), "%s", out);
    cr_expect_str_eq(json_string_value(json_object_get(doc, "node")), "mx1");
    cr_expect_eq(json_integer_value(json_object_get(doc, "head")), head);
    cr_expect(json_is_null(json_object_get(doc, "revision")));
    cr_expect_eq(json_integer_value(json_object_get(doc, "answers")), 2);
    cr_expect_eq(json_integer_value(json_object_get(doc, "changed")), 1);
    cr_expect_eq(json_array_size(json_object_get(doc, "results")), 4);
    json_t *r0 = json_array_get(json_object_get(doc, "results"), 0);
    cr_expect_str_eq(json_string_value(json_object_get(r0, "rcpt")),
                     "y@example.test");
    json_t *c0 = json_array_get(json_object_get(doc, "changes"), 0);
    cr_expect(strstr(json_string_value(json_object_get(c0, "message")),
                     "/a.iso.eml"));
    json_decref(doc);
    free(out);
    /* one envelope given: one test */
    cr_expect_eq(atomic_load(&ts.agents[0].tests), 1);

    /* a stored revision, the head itself: nothing to compare with */
    args = pm_asprintf(
        "policy test --rev %llu %s/a.iso.eml --node mx3 2>&1; echo rc=$?",
        (unsigned long long)head, s_dir);
    out = s_ctl(args);
    free(args);
    want = pm_asprintf("node mx3: revision %llu (the head itself: nothing to "
                       "compare with)\n",
                       (unsigned long long)head);
    cr_expect(strncmp(out, want, strlen(want)) == 0, "%s", out);
    free(want);
    cr_expect(strstr(out, "\n  rev 1       rejected   554 5.7.1"), "%s", out);
    cr_expect(strstr(out, "\n1 answer, nothing to compare with\nrc=0\n"), "%s",
              out);
    free(out);
    pthread_mutex_lock(&ts.agents[2].lock);
    t = ts.agents[2].last->test;
    cr_expect(t->trial && !t->head && t->head_rev == 0 && t->rev == head);
    pthread_mutex_unlock(&ts.agents[2].lock);

    /* the node cannot run it; a node that is not enrolled: 2, the test
     * could not run (1 is for an answer that changes) */
    atomic_store(&ts.agents[2].fail, true);
    args = pm_asprintf("policy test %s/candidate.yaml %s/a.iso.eml --node mx3 "
                       "2>&1; echo rc=$?",
                       s_dir, s_dir);
    out = s_ctl(args);
    cr_expect_str_eq(out, "privmta-ctl: node mx3: postfix did not start: "
                          "fatal: bad main.cf\nrc=2\n");
    free(out);
    free(args);
    args = pm_asprintf("policy test %s/candidate.yaml %s/a.iso.eml --node mx9 "
                       "2>&1; echo rc=$?",
                       s_dir, s_dir);
    out = s_ctl(args);
    cr_expect_str_eq(out, "privmta-ctl: node mx9 is not enrolled\nrc=2\n");
    free(out);
    free(args);

    /* at most PM_CTLD_TEST_PENDING wait at once; the others are told */
    s_tests_pending(&ts.agents[0], head);

    zsock_destroy(&api);
    s_controller_stop();
    s_testers_stop(&ts);
}

/* A candidate the controller refuses (as a push would be refused), a
 * revision that does not exist, a file that is not a message and a key
 * that may not ask: nothing reaches a node. */
Test(fleet, policy_test_refused_reaches_no_node)
{
    s_stale_ms = 1000;
    s_down_ms = 3000;
    s_test_files();
    s_testers_t ts;
    s_testers_start(&ts);
    s_controller_start(100);
    zsock_t *api = s_admin_ready();
    s_wait_all_up(api);
    s_push(api, 1);

    /* straight to the API: every problem, as a push gets them */
    Pm__Policy *pol = pm_policy_new();
    Pm__DkimDomain dk = PM__DKIM_DOMAIN__INIT, *dks[] = {&dk};
    pol->antispam_tag_percent = 90;
    pol->antispam_kill_percent = 50;
    dk.domain = (char *)"example.test";
    dk.selector = (char *)"s1";
    dk.key = (char *)"no-such-key";
    pol->dkim_domains = dks;
    pol->n_dkim_domains = 1;
    static uint8_t body[] = "From: a@example.test\r\n\r\nhi\r\n";
    Pm__TestMessage m = PM__TEST_MESSAGE__INIT, *msgs[] = {&m};
    char *rcpts[] = {(char *)"bob@example.test"};
    m.name = (char *)"m.eml";
    m.data.data = body;
    m.data.len = sizeof body - 1;
    Pm__PolicyTest t = PM__POLICY_TEST__INIT;
    t.candidate = pol;
    t.messages = msgs;
    t.n_messages = 1;
    t.rcpts = rcpts;
    t.n_rcpts = 1;
    Pm__Request req = s_req(PM__REQUEST__OP__POLICY_TEST);
    req.test = &t;
    Pm__Response *r = s_ask(api, &req);
    cr_expect_eq(r->status, PM__RESPONSE__STATUS__INVALID, "%s", r->error);
    cr_expect_str_eq(r->error, "policy rejected: 2 problems");
    cr_assert_eq(r->n_problems, 2);
    cr_expect(strstr(r->problems[0], "candidate policy"), "%s", r->problems[0]);
    cr_expect(strstr(r->problems[1], "no private key 'no-such-key'"), "%s",
              r->problems[1]);
    pm__response__free_unpacked(r, NULL);

    /* through privmta-ctl: a candidate file that is valid as a file, but
     * names a key the controller does not hold */
    s_file("dkim.yaml", "dkim.domains:\n"
                        "  - {domain: example.test, selector: s1, key: k1}\n");
    char *args = pm_asprintf(
        "policy test %s/dkim.yaml %s/a.iso.eml 2>&1; echo rc=$?", s_dir, s_dir);
    char *out = s_ctl(args);
    free(args);
    cr_expect(strstr(out, "no private key 'k1' is stored") &&
                  strstr(out, "privmta-ctl: policy rejected: 1 problem\n"
                              "rc=2\n"),
              "%s", out);
    free(out);
    args = pm_asprintf("policy test --rev 99 %s/a.iso.eml 2>&1; echo rc=$?",
                       s_dir);
    out = s_ctl(args);
    free(args);
    cr_expect_str_eq(out, "privmta-ctl: revision 99 does not exist (the head "
                          "is 1)\nrc=2\n");
    free(out);
    args = pm_asprintf(
        "policy test --rev 1 %s/a.iso.eml %s/photo.jpg 2>&1; echo rc=$?", s_dir,
        s_dir);
    out = s_ctl(args);
    free(args);
    char *want =
        pm_asprintf("privmta-ctl: %s/photo.jpg: not a mail message: line 1 is "
                    "not a header (\"\\xff\\xd8\\xff\\xe0 JFIF\")\n"
                    "rc=2\n",
                    s_dir);
    cr_expect_str_eq(out, want);
    free(want);
    free(out);
    out = s_ctl("policy test --rev 1 2>&1; echo rc=$?");
    cr_expect(strstr(out, "usage: privmta-ctl policy test [FILE | --rev N] "
                          "MESSAGE.eml...") &&
                  strstr(out, "\nrc=2\n"),
              "%s", out);
    free(out);

    /* the web console's key may not ask for a test */
    zcert_t *web = zcert_new();
    char *why = NULL;
    cr_assert_eq(pm_keys_enroll(s_path("clients"), "console", PM_ROLE_WEB,
                                zcert_public_txt(web), &why),
                 0, "%s", why ? why : "");
    zsock_t *as_web = s_api_as(web);
    r = s_ask(as_web, &req);
    cr_expect_eq(r->status, PM__RESPONSE__STATUS__BAD_REQUEST);
    cr_expect(strstr(r->error, "web console"), "%s", r->error);
    pm__response__free_unpacked(r, NULL);
    zsock_destroy(&as_web);
    zcert_destroy(&web);

    pol->dkim_domains = NULL; /* the test's */
    pol->n_dkim_domains = 0;
    pm_policy_free(&pol);
    for (size_t i = 0; i < S_TESTERS; i++)
        cr_expect_eq(atomic_load(&ts.agents[i].tests), 0, "%s",
                     ts.agents[i].name);
    zsock_destroy(&api);
    s_controller_stop();
    s_testers_stop(&ts);
}
