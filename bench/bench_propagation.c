/* bench_propagation.c - push -> every agent applied and acknowledged.
 *
 * usage: bench_propagation CONTROLLER_BINARY [AGENTS...] [--pushes K]
 *                           [--procs P] [--each] [--no-etcd]
 *
 * Starts the real privmta-controller (a separate process, on 127.0.0.1),
 * enrols N agents and runs them as actors in this process (or, with
 * --procs P, in P child processes of N/P each: 5000 agents need more file
 * descriptors than one process may have here), each with its own CURVE
 * connection and a no-op backend that records, in memory shared with this
 * process, when it applied a revision. Then K times: `policy set` through the
 * ctl API, and the time until the last of the N agents applied that revision
 * and sent its acknowledgement. Prints p50/p99 of that, the commit round trip
 * alone, and the controller's CPU time per push, RSS after the pushes and
 * peak RSS (from /proc). The first of S_WARMUP_PUSHES unmeasured pushes,
 * right after the agents connected, is shown apart; the measured ones
 * start when the controller is quiet again (the connection burst over). Agents
 * keep no local store here (memory only), so the figure is distribution, not N
 * fsyncs. Not a test: it prints figures.
 *
 * With Node and etcd installed (Debian's nodejs and etcd-server), each size
 * also gets etcd's one-way watch fan-out in the same run (etcd_fanout.js
 * beside this file: put -> every one of N watchers told, one connection
 * each) and the ratio of the p99s; --no-etcd leaves it out.
 */
#include "pm_agent.h"
#include "pm_cmd.h"
#include "pm_ctl_client.h"
#include "pm_keys.h"
#include "pm_log.h"
#include "pm_mem.h"

#include <signal.h>
#include <stdbool.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* Pushes before the measured ones, as the floor's rounds before its own */
#define S_WARMUP_PUSHES 3

/* What one agent applied last, and when (CLOCK_MONOTONIC, which every
 * process reads alike); in a shared mapping with --procs. */
typedef struct {
    _Atomic uint64_t rev;
    _Atomic int64_t at_us;
} s_slot_t;

typedef struct {
    pm_backend_t base;
    s_slot_t *slot;
    zcert_t *cert; /* loaded for the agent (a child's), which does not own it */
} s_probe_t;

static int64_t
s_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int
s_probe_apply(pm_backend_t *self, const Pm__Policy *p, uint64_t rev, char **why)
{
    (void)p;
    (void)why;
    s_probe_t *probe = (s_probe_t *)self;
    atomic_store(&probe->slot->at_us, s_now_us());
    atomic_store(&probe->slot->rev, rev);
    return 0;
}

static int
s_cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double
s_pct(double *v, size_t n, double p)
{
    qsort(v, n, sizeof *v, s_cmp);
    size_t i = (size_t)(p * (double)(n - 1) + 0.5);
    return v[i < n ? i : n - 1];
}

/* utime+stime of PID in seconds; its peak and current RSS in KiB. */
static double
s_cpu(pid_t pid, long *hwm_kib, long *rss_kib)
{
    char path[64], buf[4096];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    unsigned long ut = 0, st = 0;
    if (f && fgets(buf, sizeof buf, f)) {
        char *p = strrchr(buf, ')');
        if (p)
            sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu",
                   &ut, &st);
    }
    if (f)
        fclose(f);
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    f = fopen(path, "r");
    while (f && fgets(buf, sizeof buf, f))
        if (strncmp(buf, "VmHWM:", 6) == 0)
            *hwm_kib = strtol(buf + 6, NULL, 10);
        else if (strncmp(buf, "VmRSS:", 6) == 0)
            *rss_kib = strtol(buf + 6, NULL, 10);
    if (f)
        fclose(f);
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

/* CPU time the whole machine has spent busy (not idle or waiting on
 * I/O), in seconds, from /proc/stat. */
static double
s_machine_busy(void)
{
    unsigned long long v[8] = {0};
    FILE *f = fopen("/proc/stat", "r");
    if (!f || fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0],
                     &v[1], &v[2], &v[3], &v[4], &v[5], &v[6], &v[7]) != 8)
        v[0] = 0;
    if (f)
        fclose(f);
    return (double)(v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) /
           (double)sysconf(_SC_CLK_TCK);
}

/* Waits (at most 10 s) until the whole machine uses less than a fifth of
 * a core over a quarter second: the connection burst is over, in the
 * controller and in the agents (which decode every MEMBERS list and
 * snapshot of the burst after the controller has sent them). Returns the
 * seconds. */
static double
s_settle(void)
{
    int64_t t0 = s_now_us();
    double before = s_machine_busy();
    for (int i = 0; i < 40; i++) {
        usleep(250 * 1000);
        double now = s_machine_busy();
        if (now - before < 0.05)
            break;
        before = now;
    }
    return (double)(s_now_us() - t0) / 1e6;
}

static pid_t
s_start_controller(const char *bin, const char *state, int port)
{
    char ep[64], agents[64];
    snprintf(ep, sizeof ep, "tcp://127.0.0.1:%d", port);
    snprintf(agents, sizeof agents, "tcp://127.0.0.1:%d", port + 1);
    pid_t pid = fork();
    if (pid == 0) {
        /* a bench killed (a timeout) takes its controller with it */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        execl(bin, bin, "--state-dir", state, "--endpoint", ep,
              "--agent-endpoint", agents, "--log-level", "warning", NULL);
        _exit(127);
    }
    return pid;
}

/* One `policy set` through the ctl API; returns the new revision. */
static uint64_t
s_push(pm_ctl_client_t *client, unsigned i)
{
    Pm__Edit e = PM__EDIT__INIT, *edits[1] = {&e};
    Pm__Request req = PM__REQUEST__INIT;
    Pm__Response *r = NULL;
    char value[32], *why = NULL;
    snprintf(value, sizeof value, "[bench %u]", i);
    e.key = (char *)"antispam.subject_prefix";
    e.value = value;
    req.op = PM__REQUEST__OP__SET;
    req.edits = edits;
    req.n_edits = 1;
    req.expect_rev = -1;
    if (pm_ctl_client_call(client, &req, &r, &why) != 0 || !r->revision) {
        fprintf(stderr, "push failed: %s\n", why ? why : r->error);
        exit(1);
    }
    uint64_t rev = r->revision->number;
    pm__response__free_unpacked(r, NULL);
    return rev;
}

/* Waits until every probe reports REV; returns when the last did (us). */
static int64_t
s_wait_all(s_slot_t *slots, size_t n, uint64_t rev, int64_t deadline)
{
    int64_t last = 0;
    for (size_t i = 0; i < n; i++) {
        while (atomic_load(&slots[i].rev) < rev) {
            if (s_now_us() > deadline)
                return -1;
            usleep(50);
        }
        int64_t at = atomic_load(&slots[i].at_us);
        last = at > last ? at : last;
    }
    return last;
}

typedef struct {
    const char *controller_bin;
    char state[64];
    unsigned pushes;
    unsigned procs; /* 1: agents in this process */
    bool each;      /* every push's time to stderr, to see outliers */
} s_run_t;

/* Agents FIRST..FIRST+COUNT-1 of the run in STATE, their probes writing to
 * SLOTS (indexed by agent number), connected to PORT+1. CERTS: theirs,
 * or NULL to load them from STATE/agents (a child process). */
static zactor_t **
s_agents_start(const char *state, int port, size_t first, size_t count,
               s_slot_t *slots, zcert_t **certs, s_probe_t **probes_out)
{
    char *why = NULL, *path = pm_asprintf("%s/keys/controller.cert", state);
    zcert_t *server = pm_keys_load(path, &why);
    if (!server) {
        fprintf(stderr, "%s\n", why);
        exit(1);
    }
    free(path);
    char agent_ep[64];
    snprintf(agent_ep, sizeof agent_ep, "tcp://127.0.0.1:%d", port + 1);
    s_probe_t *probes = pm_calloc(count, sizeof *probes);
    zactor_t **agents = pm_calloc(count, sizeof *agents);
    for (size_t k = 0; k < count; k++) {
        size_t i = first + k;
        char name[32];
        snprintf(name, sizeof name, "bench-%zu", i);
        zcert_t *cert = certs ? certs[i] : NULL;
        if (!cert) {
            path = pm_asprintf("%s/agents/%s.cert", state, name);
            cert = pm_keys_load(path, &why);
            free(path);
            if (!cert) {
                fprintf(stderr, "%s\n", why);
                exit(1);
            }
        }
        probes[k].base.name = "probe";
        probes[k].base.apply = s_probe_apply;
        probes[k].slot = &slots[i];
        pm_agent_config_t cfg = {.endpoint = agent_ep,
                                 .server_key = zcert_public_txt(server),
                                 .cert = cert,
                                 .name = name,
                                 .backend = &probes[k].base,
                                 .heartbeat_ms = 1000,
                                 .dead_after_ms = 3000,
                                 .milter_gid = -1};
        agents[k] = pm_agent_new(&cfg);
        if (!certs)
            probes[k].cert = cert;
    }
    zcert_destroy(&server);
    *probes_out = probes;
    return agents;
}

/* SLOTS for N agents: shared with child processes when there are any. */
static s_slot_t *
s_slots_new(size_t n, bool shared, int *fd)
{
    *fd = -1;
    if (!shared)
        return pm_calloc(n, sizeof(s_slot_t));
    *fd = memfd_create("bench-slots", 0); /* inherited by the children */
    if (*fd < 0 || ftruncate(*fd, (off_t)(n * sizeof(s_slot_t))) != 0) {
        perror("memfd");
        exit(1);
    }
    void *p = mmap(NULL, n * sizeof(s_slot_t), PROT_READ | PROT_WRITE,
                   MAP_SHARED, *fd, 0);
    if (p == MAP_FAILED) {
        perror("mmap");
        exit(1);
    }
    return p;
}

/* Child process C of P runs its share of the N agents (see s_child). */
static pid_t
s_spawn_child(const s_run_t *run, int port, size_t n, unsigned c, int fd)
{
    char args[5][32];
    size_t first = n * c / run->procs, next = n * (c + 1) / run->procs;
    snprintf(args[0], 32, "%d", port);
    snprintf(args[1], 32, "%zu", first);
    snprintf(args[2], 32, "%zu", next - first);
    snprintf(args[3], 32, "%d", fd);
    snprintf(args[4], 32, "%zu", n);
    pid_t pid = fork();
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        execl("/proc/self/exe", "bench_propagation", "--child", run->state,
              args[0], args[1], args[2], args[3], args[4], NULL);
        _exit(127);
    }
    return pid;
}

/* bench_propagation --child STATE PORT FIRST COUNT FD N: runs agents
 * FIRST.. of the run in STATE until SIGTERM. */
static int
s_child(char **argv)
{
    const char *state = argv[2];
    int port = atoi(argv[3]), fd = atoi(argv[6]);
    size_t first = strtoul(argv[4], NULL, 10),
           count = strtoul(argv[5], NULL, 10);
    size_t n = strtoul(argv[7], NULL, 10);
    s_slot_t *slots = mmap(NULL, n * sizeof(s_slot_t), PROT_READ | PROT_WRITE,
                           MAP_SHARED, fd, 0);
    if (slots == MAP_FAILED)
        return 1;
    s_probe_t *probes = NULL;
    zactor_t **agents =
        s_agents_start(state, port, first, count, slots, NULL, &probes);
    while (!zsys_interrupted)
        zclock_sleep(100);
    for (size_t k = 0; k < count; k++) {
        zactor_destroy(&agents[k]);
        zcert_destroy(&probes[k].cert);
    }
    free(agents);
    free(probes);
    return 0;
}

static pm_ctl_client_t *
s_client(const char *state, int port)
{
    char ep[64], *key = pm_asprintf("%s/keys/admin.cert_secret", state);
    char *server = pm_asprintf("%s/keys/controller.cert", state), *why = NULL;
    snprintf(ep, sizeof ep, "tcp://127.0.0.1:%d", port);
    pm_ctl_client_t *c = pm_ctl_client_new(ep, key, server, 30000, &why);
    if (!c) {
        fprintf(stderr, "client: %s\n", why);
        exit(1);
    }
    free(key);
    free(server);
    return c;
}

/* ---- the bare-libzmq floor -----------------------------------------------
 * PUB -> N SUB -> DEALER ack -> ROUTER on 127.0.0.1: no CURVE, no store, no
 * decoding, no work; each subscriber an actor (a thread), as each agent
 * is. A message of S_FLOOR_BYTES, about what a policy update weighs. What
 * privmta adds over it is what its p99 ratio shows. */
#define S_FLOOR_BYTES 2048

typedef struct {
    char pub[64], router[64];
} s_floor_eps_t;

static void
s_floor_actor(zsock_t *pipe, void *arg)
{
    s_floor_eps_t *eps = arg;
    zsock_t *sub = zsock_new_sub(eps->pub, "");
    zsock_t *dealer = zsock_new_dealer(eps->router);
    zsock_signal(pipe, 0);
    zpoller_t *poller = zpoller_new(pipe, sub, NULL);
    for (;;) {
        void *which = zpoller_wait(poller, -1);
        if (which != sub)
            break; /* $TERM, or interrupted */
        zframe_t *f = zframe_recv(sub);
        if (!f)
            break;
        /* the ack is the first 8 bytes: the sequence number */
        zsock_send(dealer, "b", zframe_data(f), (size_t)8);
        zframe_destroy(&f);
    }
    zpoller_destroy(&poller);
    zsock_destroy(&sub);
    zsock_destroy(&dealer);
}

/* Publishes SEQ and waits for N acks of it (older ones are dropped);
 * returns the time it took (us), or -1 after TIMEOUT_US. */
static int64_t
s_floor_round(zsock_t *pub, zsock_t *router, size_t n, uint64_t seq,
              int64_t timeout_us)
{
    uint8_t msg[S_FLOOR_BYTES] = {0};
    memcpy(msg, &seq, 8);
    int64_t t0 = s_now_us();
    zsock_send(pub, "b", msg, sizeof msg);
    size_t got = 0;
    zpoller_t *poller = zpoller_new(router, NULL);
    while (got < n) {
        int64_t left = t0 + timeout_us - s_now_us();
        if (left <= 0 || !zpoller_wait(poller, (int)(left / 1000) + 1))
            break;
        zframe_t *id = NULL, *ack = NULL;
        if (zsock_recv(router, "ff", &id, &ack) == 0 && ack &&
            zframe_size(ack) == 8 && memcmp(zframe_data(ack), &seq, 8) == 0)
            got++;
        zframe_destroy(&id);
        zframe_destroy(&ack);
    }
    zpoller_destroy(&poller);
    return got == n ? s_now_us() - t0 : -1;
}

/* Prints the floor's p50/p99 for N subscribers over PUSHES rounds; sets
 * *p99 (ms). */
static void
s_floor(size_t n, unsigned pushes, double *p99)
{
    /* every subscriber is an actor (pipe pair), a SUB and a DEALER, each
     * with a mailbox, and two TCP connections, both ends in this process */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
        (rlim_t)n * 8 + 64 > rl.rlim_cur) {
        printf("%6zu subs    bare libzmq floor: not measured (%zu subscribers "
               "in one process need ~%zu descriptors, this one may have "
               "%llu)\n",
               n, n, n * 8 + 64, (unsigned long long)rl.rlim_cur);
        *p99 = 0;
        return;
    }
    zsock_t *pub = zsock_new_pub("tcp://127.0.0.1:*");
    zsock_t *router = zsock_new_router("tcp://127.0.0.1:*");
    zsock_set_sndhwm(pub, 0);
    s_floor_eps_t eps;
    char *ep = zsock_last_endpoint(pub);
    snprintf(eps.pub, sizeof eps.pub, "%s", ep);
    zstr_free(&ep);
    ep = zsock_last_endpoint(router);
    snprintf(eps.router, sizeof eps.router, "%s", ep);
    zstr_free(&ep);
    zactor_t **subs = pm_calloc(n, sizeof *subs);
    for (size_t i = 0; i < n; i++)
        subs[i] = zactor_new(s_floor_actor, &eps);
    /* subscriptions take a moment to reach the PUB: until one round is
     * answered by all */
    uint64_t seq = 1;
    int64_t deadline = s_now_us() + 60000000;
    while (s_floor_round(pub, router, n, seq++, 200000) < 0)
        if (s_now_us() > deadline) {
            fprintf(stderr, "floor: subscribers did not all join\n");
            exit(1);
        }
    double *lat = pm_calloc(pushes, sizeof *lat);
    for (unsigned k = 0; k < pushes; k++) {
        int64_t us = s_floor_round(pub, router, n, seq++, 30000000);
        lat[k] = us < 0 ? 30000.0 : (double)us / 1000.0;
    }
    double p50 = s_pct(lat, pushes, 0.5);
    *p99 = s_pct(lat, pushes, 0.99);
    printf("%6zu subs    bare libzmq floor (PUB->SUB->DEALER ack, no CURVE, "
           "no work, %d B) p50 %7.2f ms  p99 %7.2f ms\n",
           n, S_FLOOR_BYTES, p50, *p99);
    fflush(stdout);
    for (size_t i = 0; i < n; i++)
        zactor_destroy(&subs[i]);
    free(subs);
    free(lat);
    zsock_destroy(&pub);
    zsock_destroy(&router);
}

/* A child process loads its agents' keypairs from STATE/agents. */
static int
s_save_agent(const char *state, const char *name, zcert_t *cert)
{
    char *dir = pm_asprintf("%s/agents", state);
    char *path = pm_asprintf("%s/%s.cert", dir, name);
    mkdir(dir, 0700);
    int rc = zcert_save(cert, path);
    if (rc != 0)
        fprintf(stderr, "cannot write %s\n", path);
    free(dir);
    free(path);
    return rc;
}

/* Returns the p99 (ms) of push -> all applied and acked. */
static double
s_run(s_run_t *run, size_t n)
{
    char *why = NULL, *clients = NULL;
    snprintf(run->state, sizeof run->state, "/tmp/privmta-bench.XXXXXX");
    if (!mkdtemp(run->state))
        exit(1);
    zcert_t *server = pm_keys_controller(run->state, &why);
    clients = pm_asprintf("%s/clients", run->state);
    zcert_t **certs = pm_calloc(n, sizeof *certs);
    for (size_t i = 0; i < n; i++) {
        char name[32];
        snprintf(name, sizeof name, "bench-%zu", i);
        certs[i] = zcert_new();
        if (pm_keys_enroll(clients, name, PM_ROLE_AGENT,
                           zcert_public_txt(certs[i]), &why) != 0)
            exit(1);
        if (run->procs > 1 && s_save_agent(run->state, name, certs[i]) != 0)
            exit(1);
    }
    /* below the kernel's ephemeral range (32768 up, here): a thousand
     * agent connections take ports there, and once took this one */
    int port = 22000 + (int)(getpid() % 5000) * 2;
    pid_t pid = s_start_controller(run->controller_bin, run->state, port);
    usleep(300 * 1000);
    pm_ctl_client_t *client = s_client(run->state, port);
    int fd = -1;
    s_slot_t *slots = s_slots_new(n, run->procs > 1, &fd);
    s_probe_t *probes = NULL;
    zactor_t **agents = NULL;
    pid_t *children = pm_calloc(run->procs, sizeof *children);
    if (run->procs > 1) {
        for (unsigned c = 0; c < run->procs; c++)
            children[c] = s_spawn_child(run, port, n, c, fd);
    } else {
        agents = s_agents_start(run->state, port, 0, n, slots, certs, &probes);
    }
    uint64_t rev = s_push(client, 0);
    if (s_wait_all(slots, n, rev, s_now_us() + 120000000) < 0) {
        fprintf(stderr, "agents did not all connect\n");
        exit(1);
    }
    /* the first pushes after a thousand agents connect meet the tail of
     * the connection burst (handshakes, snapshots, whole MEMBERS lists):
     * shown apart, not in the steady figures */
    double cold = 0;
    for (unsigned k = 0; k < S_WARMUP_PUSHES; k++) {
        int64_t t0 = s_now_us();
        rev = s_push(client, run->pushes + k + 1);
        int64_t last = s_wait_all(slots, n, rev, t0 + 30000000);
        if (k == 0)
            cold = last < 0 ? 30000.0 : (double)(last - t0) / 1000.0;
    }
    double settled = s_settle();
    long hwm = 0, rss = 0;
    double cpu0 = s_cpu(pid, &hwm, &rss);
    int64_t t_start = s_now_us();
    double *lat = pm_calloc(run->pushes, sizeof *lat);
    double *commit = pm_calloc(run->pushes, sizeof *commit);
    for (unsigned k = 0; k < run->pushes; k++) {
        int64_t t0 = s_now_us();
        rev = s_push(client, k + 1);
        commit[k] = (double)(s_now_us() - t0) / 1000.0;
        int64_t last = s_wait_all(slots, n, rev, t0 + 30000000);
        lat[k] = last < 0 ? 30000.0 : (double)(last - t0) / 1000.0;
        if (run->each)
            fprintf(stderr, "push %u: %.2f ms at +%.3f s\n", k + 1, lat[k],
                    (double)(t0 - t_start) / 1e6);
    }
    double cpu1 = s_cpu(pid, &hwm, &rss);
    printf("%6zu agents%s  push->all applied+acked p50 %7.2f ms  p99 %7.2f "
           "ms  (commit round trip p50 %.2f ms; first push after connecting "
           "%.2f ms, quiet %.1f s later)  controller CPU %.2f ms/push  RSS "
           "%.1f MiB, peak %.1f MiB\n",
           n, run->procs > 1 ? " (in child processes)" : "",
           s_pct(lat, run->pushes, 0.5), s_pct(lat, run->pushes, 0.99),
           s_pct(commit, run->pushes, 0.5), cold, settled,
           (cpu1 - cpu0) * 1000.0 / run->pushes, (double)rss / 1024.0,
           (double)hwm / 1024.0);
    fflush(stdout);
    for (unsigned c = 0; c < run->procs && run->procs > 1; c++) {
        kill(children[c], SIGTERM);
        waitpid(children[c], NULL, 0);
    }
    for (size_t i = 0; i < n; i++) {
        if (agents)
            zactor_destroy(&agents[i]);
        zcert_destroy(&certs[i]);
    }
    kill(pid, SIGTERM);
    waitpid(pid, NULL, 0);
    pm_ctl_client_destroy(&client);
    zcert_destroy(&server);
    char *rm = pm_asprintf("rm -rf '%s'", run->state);
    if (system(rm) != 0)
        fprintf(stderr, "could not remove %s\n", run->state);
    free(rm);
    free(clients);
    free(certs);
    free(probes);
    free(agents);
    free(children);
    if (fd >= 0) {
        munmap(slots, n * sizeof(s_slot_t));
        close(fd);
    } else {
        free(slots);
    }
    double p99 = s_pct(lat, run->pushes, 0.99);
    free(lat);
    free(commit);
    return p99;
}

/* ---- etcd, for comparison ------------------------------------------------ */

/* etcd's put -> N watchers told over PUSHES puts, printed as a row; returns
 * its p99 in ms, 0 when it could not run (said why). */
static double
s_etcd(size_t n, unsigned pushes)
{
    char nbuf[32], pbuf[32];
    snprintf(nbuf, sizeof nbuf, "%zu", n);
    snprintf(pbuf, sizeof pbuf, "%u", pushes);
    char *const argv[] = {"node", PM_BENCH_DIR "/etcd_fanout.js", nbuf, pbuf,
                          NULL};
    pm_cmd_opts_t opts = {.timeout_ms = 600000};
    pm_cmd_result_t res;
    double p50 = 0, p99 = 0, cpu = 0;
    if (pm_cmd_run(argv, &opts, &res) != 0 ||
        sscanf(res.out, "ETCD %*u p50 %lf ms p99 %lf ms client CPU %lf", &p50,
               &p99, &cpu) != 3) {
        char *why = pm_cmd_why("etcd_fanout.js", &res);
        printf("%6zu etcd     not measured (%s)\n", n, why);
        free(why);
        pm_cmd_result_clear(&res);
        return 0;
    }
    printf("%6zu watches  etcd put->all watchers told (one way, Node client, "
           "one connection each) p50 %7.2f ms  p99 %7.2f ms  (client CPU "
           "%.2f ms/put)\n",
           n, p50, p99, cpu);
    pm_cmd_result_clear(&res);
    return p99;
}

int
main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: bench_propagation CONTROLLER_BINARY [N...] "
                        "[--pushes K] [--procs P] [--each] [--no-etcd]\n");
        return 2;
    }
    if (strcmp(argv[1], "--child") == 0 && argc == 8) {
        pm_log_init("bench_propagation", false, PM_LOG_WARN);
        zsys_set_max_sockets(0);
        struct rlimit rl;
        if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
            rl.rlim_cur = rl.rlim_max;
            setrlimit(RLIMIT_NOFILE, &rl);
        }
        zsys_init();
        zsys_set_logstream(NULL);
        return s_child(argv);
    }
    s_run_t run = {argv[1], "", 50, 1, false};
    size_t sizes[16], n_sizes = 0;
    bool etcd = true;
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--pushes") == 0 && i + 1 < argc)
            run.pushes = (unsigned)atoi(argv[++i]);
        else if (strcmp(argv[i], "--procs") == 0 && i + 1 < argc)
            run.procs = (unsigned)atoi(argv[++i]);
        else if (strcmp(argv[i], "--each") == 0)
            run.each = true;
        else if (strcmp(argv[i], "--no-etcd") == 0)
            etcd = false;
        else if (n_sizes < 16)
            sizes[n_sizes++] = (size_t)atol(argv[i]);
    }
    if (!n_sizes) {
        sizes[0] = 10, sizes[1] = 100, sizes[2] = 1000;
        n_sizes = 3;
    }
    /* 1000 agents need ~4000 sockets and file descriptors here */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    pm_log_init("bench_propagation", false, PM_LOG_WARN);
    zsys_set_max_sockets(0);
    zsys_init();
    zsys_set_logstream(NULL);
    printf("privmta propagation: %u pushes per size, real controller "
           "process, agents as actors in %s (no-op backend, no local "
           "store)\n",
           run.pushes, run.procs > 1 ? "child processes" : "this process");
    for (size_t i = 0; i < n_sizes; i++) {
        double floor99 = 0;
        s_floor(sizes[i], run.pushes, &floor99);
        double p99 = s_run(&run, sizes[i]);
        printf("%6zu         p99 ratio privmta / floor: %.2f\n", sizes[i],
               floor99 > 0 ? p99 / floor99 : 0.0);
        fflush(stdout);
        double etcd99 = etcd ? s_etcd(sizes[i], run.pushes) : 0;
        if (etcd99 > 0)
            printf("%6zu         p99 ratio privmta / etcd: %.2f\n", sizes[i],
                   p99 / etcd99);
        fflush(stdout);
    }
    return 0;
}
