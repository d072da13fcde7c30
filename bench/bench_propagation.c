/* bench_propagation.c - push -> every agent applied and acknowledged.
 *
 * usage: bench_propagation CONTROLLER_BINARY [AGENTS...] [--pushes K]
 *
 * Starts the real privmta-controller (a separate process, on 127.0.0.1),
 * enrols N agents and runs them as actors in this process, each with its
 * own CURVE connection and a no-op backend that records when it applied a
 * revision. Then K times: `policy set` through the ctl API, and the time
 * until the last of the N agents applied that revision and sent its
 * acknowledgement. Prints p50/p99 of that, the commit round trip alone,
 * and the controller's CPU time per push and peak RSS (from /proc). Agents
 * keep no local store here (memory only), so the figure is distribution,
 * not N fsyncs. Not a test: it prints figures.
 */
#include "pm_agent.h"
#include "pm_ctl_client.h"
#include "pm_keys.h"
#include "pm_log.h"
#include "pm_mem.h"

#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

typedef struct {
    pm_backend_t base;
    _Atomic uint64_t rev;
    _Atomic int64_t at_us;
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
    atomic_store(&probe->at_us, s_now_us());
    atomic_store(&probe->rev, rev);
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

/* utime+stime of PID in seconds, and its peak RSS in KiB. */
static double
s_cpu(pid_t pid, long *hwm_kib)
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
    if (f)
        fclose(f);
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
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
s_wait_all(s_probe_t *probes, size_t n, uint64_t rev, int64_t deadline)
{
    int64_t last = 0;
    for (size_t i = 0; i < n; i++) {
        while (atomic_load(&probes[i].rev) < rev) {
            if (s_now_us() > deadline)
                return -1;
            usleep(50);
        }
        int64_t at = atomic_load(&probes[i].at_us);
        last = at > last ? at : last;
    }
    return last;
}

typedef struct {
    const char *controller_bin;
    char state[64];
    unsigned pushes;
} s_run_t;

static pm_ctl_client_t *
s_client(const char *state, int port)
{
    char ep[64], *key = pm_asprintf("%s/keys/admin.cert_secret", state);
    char *server = pm_asprintf("%s/keys/controller.cert", state), *why = NULL;
    snprintf(ep, sizeof ep, "tcp://127.0.0.1:%d", port);
    pm_ctl_client_t *c = pm_ctl_client_new(ep, key, server, 10000, &why);
    if (!c) {
        fprintf(stderr, "client: %s\n", why);
        exit(1);
    }
    free(key);
    free(server);
    return c;
}

static void
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
    }
    int port = 31000 + (int)(getpid() % 1000) * 2;
    pid_t pid = s_start_controller(run->controller_bin, run->state, port);
    usleep(300 * 1000);
    pm_ctl_client_t *client = s_client(run->state, port);
    s_probe_t *probes = pm_calloc(n, sizeof *probes);
    zactor_t **agents = pm_calloc(n, sizeof *agents);
    char agent_ep[64];
    snprintf(agent_ep, sizeof agent_ep, "tcp://127.0.0.1:%d", port + 1);
    for (size_t i = 0; i < n; i++) {
        char name[32];
        snprintf(name, sizeof name, "bench-%zu", i);
        probes[i].base.name = "probe";
        probes[i].base.apply = s_probe_apply;
        pm_agent_config_t cfg = {.endpoint = agent_ep,
                                 .server_key = zcert_public_txt(server),
                                 .cert = certs[i],
                                 .name = name,
                                 .backend = &probes[i].base,
                                 .heartbeat_ms = 1000,
                                 .dead_after_ms = 3000,
                                 .milter_gid = -1};
        agents[i] = pm_agent_new(&cfg);
    }
    uint64_t rev = s_push(client, 0);
    if (s_wait_all(probes, n, rev, s_now_us() + 60000000) < 0) {
        fprintf(stderr, "agents did not all connect\n");
        exit(1);
    }
    long hwm = 0;
    double cpu0 = s_cpu(pid, &hwm);
    double *lat = pm_calloc(run->pushes, sizeof *lat);
    double *commit = pm_calloc(run->pushes, sizeof *commit);
    for (unsigned k = 0; k < run->pushes; k++) {
        int64_t t0 = s_now_us();
        rev = s_push(client, k + 1);
        commit[k] = (double)(s_now_us() - t0) / 1000.0;
        int64_t last = s_wait_all(probes, n, rev, t0 + 30000000);
        lat[k] = last < 0 ? 30000.0 : (double)(last - t0) / 1000.0;
    }
    double cpu1 = s_cpu(pid, &hwm);
    printf("%6zu agents  push->all applied+acked p50 %7.2f ms  p99 %7.2f ms  "
           "(commit round trip p50 %.2f ms)  controller CPU %.2f ms/push  "
           "peak RSS %.1f MiB\n",
           n, s_pct(lat, run->pushes, 0.5), s_pct(lat, run->pushes, 0.99),
           s_pct(commit, run->pushes, 0.5),
           (cpu1 - cpu0) * 1000.0 / run->pushes, (double)hwm / 1024.0);
    fflush(stdout);
    for (size_t i = 0; i < n; i++) {
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
    free(lat);
    free(commit);
}

int
main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: bench_propagation CONTROLLER_BINARY [N...] "
                        "[--pushes K]\n");
        return 2;
    }
    s_run_t run = {argv[1], "", 50};
    size_t sizes[16], n_sizes = 0;
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--pushes") == 0 && i + 1 < argc)
            run.pushes = (unsigned)atoi(argv[++i]);
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
           "process, agents in-process (no-op backend, no local store)\n",
           run.pushes);
    for (size_t i = 0; i < n_sizes; i++)
        s_run(&run, sizes[i]);
    return 0;
}
