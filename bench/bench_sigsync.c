/* bench_sigsync.c - a new ClamAV database version from the mirror to N
 * agents, the agents as actors in P processes: the N=1000 row of
 * bench_signatures.sh, which runs N agents as processes up to ~60.
 *
 * usage: bench_sigsync N ROUNDS FETCHER MIRROR_URL WWW ACCESS_LOG FIXTURES
 *                      WORKDIR [GOSSIP_MS [LINKS [TIMEOUT_MS [PROCS]]]]
 *
 * The caller runs the mirror (tests/data/clamav/mirror.py serving WWW at
 * MIRROR_URL, logging to ACCESS_LOG) with FIXTURES/test-1.cvd as
 * WWW/test.cvd. This process forks PROCS (default 1) children, which run
 * N/PROCS pm_sigsync actors each (the agent's signature sync, unchanged:
 * its own CURVE key, peer service on 127.0.0.1, database directory
 * WORKDIR/nI, privmta-sigfetch FETCHER for the fetch duty and the checks
 * of what peers send), and plays the controller's part (MEMBERS: every
 * node live, n1 holds the fetch duty for "test"; the policy names the
 * mirror, [test], update_frequency 1s) until every node holds version 1.
 * It talks to the children through a shared mapping (s_shared_t), so the
 * children's CPU is the agents' alone. Then per round, as
 * bench_signatures.sh does:
 *   t0       WWW/test.cvd becomes version 6 (the CDIFFs 2..6 are there);
 *   fetch    the duty holder's version-6 file entered its directory;
 *   all      the last node's did.
 * Arrival is the ctime of the newest database file (a verified file
 * enters by rename(2)), or when a child got the node's STATUS if that
 * came first (s_arrival). Between rounds the
 * policy drops "test" (the files go), the mirror goes back to version 1
 * and the policy names it again.
 *
 * Why several processes: a process's libzmq context and czmq keep
 * process-wide lists that every socket closed walks under one lock
 * (czmq's registry of open sockets, libzmq's inproc endpoints of the
 * actors' pipes); with 1000 agents in one process perf put ~15 % of its
 * CPU there, a cost no agent pays on its own host (~130 sockets).
 * PROCS > 1 keeps each list to N/PROCS agents' sockets, as the
 * propagation bench's --procs does. Measured (README): 10 processes
 * spread a version no faster than one; the machine's two cores are
 * saturated either way, over half of it in the kernel (2000 threads'
 * context switches, polls and wake-ups).
 *
 * Prints per round "round R: ALL FETCH SPREAD MISSES OK MAXFILE FETCHERS"
 * (ms, ms, ms, nodes without version 6 after 30 s, the mirror's 200
 * answers, the most any one file was served, nodes whose version 6 came
 * from the mirror), and "idle-cpu P" (the agents' processes together, %
 * of one core, 5 s after convergence; the verify helpers idle then),
 * "rss-mib R", "threads T" (the agents' processes together), "helpers H
 * MIB" (privmta-sigfetch processes, one verifier per node, and their
 * resident memory together), "open-files F of L" (the most in one agents'
 * process). Not a test: it prints figures.
 */
#include "pm_error.h"
#include "pm_log.h"
#include "pm_mem.h"
#include "pm_sigsync.h"
#include "pm_wire.h"

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define S_MISS_MS 30000

/* One node as its child process reports it; the parent only reads. */
typedef struct {
    char endpoint[64];        /* its peer service, from its first STATUS */
    char key[48];             /* its CURVE public key (Z85) */
    _Atomic int ready;        /* endpoint and key are written */
    _Atomic unsigned version; /* of "test", from its last STATUS */
    _Atomic int from_mirror;  /* that version came from the mirror */
    _Atomic int64_t seen_us;  /* when its child got the STATUS with it */
} s_slot_t;

/* What the parent asks of the children: each counter that moves is one
 * command, read by every child within S_CHILD_TICK_MS. */
typedef struct {
    _Atomic unsigned policy_gen; /* send the policy, with "test" or not */
    _Atomic int with_test;
    _Atomic unsigned members_gen; /* send MEMBERS (packed below) */
    _Atomic int stop;
    size_t members_len;
    s_slot_t slots[]; /* N, then the packed MEMBERS */
} s_shared_t;

#define S_CHILD_TICK_MS 20
#define S_MEMBERS_MAX(n) ((n)*256 + 4096)

static s_shared_t *s_sh;
static size_t s_n, s_procs = 1;
static pid_t *s_kids;
static const char *s_mirror, *s_www, *s_log, *s_fixtures, *s_workdir,
    *s_fetcher;
static int s_gossip_ms = 200;
static int s_links;      /* peer links per node; 0: the agent's default */
static int s_timeout_ms; /* one peer reply; 0: the agent's default */

static double
s_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint8_t *
s_members_buf(void)
{
    return (uint8_t *)&s_sh->slots[s_n];
}

/* Raises the file limit as far as the kernel lets root: ~65 links and a
 * peer service per node, two descriptors per TCP connection on loopback. */
static long
s_raise_nofile(void)
{
    struct rlimit r;
    getrlimit(RLIMIT_NOFILE, &r);
    rlim_t want = 1 << 20;
    FILE *f = fopen("/proc/sys/fs/nr_open", "r");
    unsigned long nr = 0;
    if (f && fscanf(f, "%lu", &nr) == 1 && nr < want)
        want = nr;
    if (f)
        fclose(f);
    struct rlimit up = {want, want};
    if (setrlimit(RLIMIT_NOFILE, &up) != 0) { /* not root: the hard limit */
        up.rlim_cur = up.rlim_max = r.rlim_max;
        setrlimit(RLIMIT_NOFILE, &up);
    }
    getrlimit(RLIMIT_NOFILE, &r);
    return (long)r.rlim_cur;
}

/* ---- a child: its share of the agents ------------------------------------ */

typedef struct {
    size_t i; /* index in the slots */
    char name[24];
    zcert_t *cert;
    zactor_t *actor;
    unsigned version; /* as last reported */
} s_agent_t;

static void
s_send_policy(zactor_t *actor, bool with_test)
{
    Pm__Policy p = PM__POLICY__INIT;
    char *mirrors[] = {(char *)s_mirror};
    char *dbs[] = {"test"};
    p.antivirus_enabled = true;
    p.antivirus_mirrors = mirrors;
    p.n_antivirus_mirrors = 1;
    p.antivirus_databases = dbs;
    p.n_antivirus_databases = with_test ? 1 : 0;
    p.antivirus_update_frequency = 1;
    size_t len = 0;
    uint8_t *buf = pm_wire_pack(&p.base, &len);
    zsock_send(actor, "sb", "POLICY", buf, len);
    free(buf);
}

/* One STATUS of A into its slot: its peer endpoint, where "test" stands. */
static void
s_take_status(s_agent_t *a)
{
    char *cmd = NULL;
    zchunk_t *chunk = NULL;
    if (zsock_recv(a->actor, "sc", &cmd, &chunk) != 0)
        return;
    s_slot_t *slot = &s_sh->slots[a->i];
    Pm__NodeStatus *st = NULL;
    if (pm_wire_unpack_node_status(zchunk_data(chunk), zchunk_size(chunk), &st,
                                   NULL) == PM_OK) {
        if (!atomic_load(&slot->ready) && *st->peer_endpoint) {
            snprintf(slot->endpoint, sizeof slot->endpoint, "%s",
                     st->peer_endpoint);
            snprintf(slot->key, sizeof slot->key, "%s",
                     zcert_public_txt(a->cert));
            atomic_store(&slot->ready, 1);
        }
        unsigned version = 0;
        int from_mirror = 0;
        for (size_t k = 0; k < st->n_databases; k++)
            if (strcmp(st->databases[k]->name, "test") == 0) {
                version = st->databases[k]->version;
                from_mirror =
                    strncmp(st->databases[k]->source, "mirror", 6) == 0;
            }
        if (version != a->version)
            atomic_store(&slot->seen_us, (int64_t)(s_now() * 1e6));
        a->version = version;
        atomic_store(&slot->from_mirror, from_mirror);
        atomic_store(&slot->version, version);
        pm__node_status__free_unpacked(st, NULL);
    }
    free(cmd);
    zchunk_destroy(&chunk);
}

static void
s_agent_start(s_agent_t *a, size_t i)
{
    a->i = i;
    snprintf(a->name, sizeof a->name, "n%zu", i + 1);
    char dbdir[512];
    snprintf(dbdir, sizeof dbdir, "%s/%s", s_workdir, a->name);
    a->cert = zcert_new();
    pm_sigsync_config_t c = {.cert = a->cert,
                             .dbdir = dbdir,
                             .fetcher = s_fetcher,
                             .gid = -1,
                             .peer_bind = "tcp://127.0.0.1:0",
                             .name = a->name,
                             .gossip_ms = s_gossip_ms,
                             .fanout = 3,
                             .links_max = s_links,
                             .cdiff_min_kib = PM_SIGSYNC_CDIFF_MIN_KIB,
                             .peer_timeout_ms = s_timeout_ms};
    a->actor = pm_sigsync_new(&c);
    if (!a->actor) {
        fprintf(stderr, "node %s did not start\n", a->name);
        _exit(1);
    }
    s_send_policy(a->actor, true);
}

/* Child C of s_procs: runs agents FIRST.. until the parent says stop,
 * passing the parent's commands on and the agents' statuses back. */
static int
s_child(size_t first, size_t count)
{
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    zsys_set_max_sockets(0);
    /* two I/O threads for the whole machine's two cores */
    zsys_set_io_threads(s_procs > 1 ? 1 : 2);
    zsys_set_logstream(NULL);
    zsys_init();
    s_agent_t *agents = pm_calloc(count, sizeof *agents);
    zmq_pollitem_t *items = pm_calloc(count, sizeof *items);
    for (size_t k = 0; k < count; k++) {
        s_agent_start(&agents[k], first + k);
        items[k] =
            (zmq_pollitem_t){zsock_resolve(agents[k].actor), 0, ZMQ_POLLIN, 0};
    }
    unsigned policy_gen = 0, members_gen = 0;
    while (!atomic_load(&s_sh->stop)) {
        if (atomic_load(&s_sh->members_gen) != members_gen) {
            members_gen = atomic_load(&s_sh->members_gen);
            for (size_t k = 0; k < count; k++)
                zsock_send(agents[k].actor, "sb", "MEMBERS", s_members_buf(),
                           s_sh->members_len);
        }
        if (atomic_load(&s_sh->policy_gen) != policy_gen) {
            policy_gen = atomic_load(&s_sh->policy_gen);
            for (size_t k = 0; k < count; k++)
                s_send_policy(agents[k].actor, atomic_load(&s_sh->with_test));
        }
        /* one poll serves every agent that has something: a poll per
         * status over 1000 pipes was a tenth of the machine's CPU */
        if (zmq_poll(items, (int)count, S_CHILD_TICK_MS) <= 0)
            continue;
        for (size_t k = 0; k < count; k++)
            while (items[k].revents & ZMQ_POLLIN) {
                s_take_status(&agents[k]);
                items[k].revents = zsock_events(agents[k].actor);
            }
    }
    /* all stop at once: one after the other, each finishing its step,
     * 1000 took minutes */
    for (size_t k = 0; k < count; k++)
        zstr_send(agents[k].actor, "$TERM");
    for (size_t k = 0; k < count; k++) {
        zactor_destroy(&agents[k].actor);
        zcert_destroy(&agents[k].cert);
    }
    free(items);
    free(agents);
    return 0;
}

/* ---- the parent: the controller's part, and the clock ----------------------
 */

/* MEMBERS as the controller packs it: every node live, n1 fetching. */
static void
s_send_members(void)
{
    Pm__Member *m = pm_calloc(s_n, sizeof *m);
    Pm__Member **mp = pm_calloc(s_n, sizeof *mp);
    char(*names)[24] = pm_calloc(s_n, sizeof *names);
    for (size_t i = 0; i < s_n; i++) {
        snprintf(names[i], sizeof names[i], "n%zu", i + 1);
        pm__member__init(&m[i]);
        m[i].name = names[i];
        m[i].peer_endpoint = s_sh->slots[i].endpoint;
        m[i].public_key = s_sh->slots[i].key;
        m[i].live = true;
        mp[i] = &m[i];
    }
    Pm__Duty d = PM__DUTY__INIT, *dp = &d;
    d.database = "test";
    d.node = names[0];
    Pm__Publication pub = PM__PUBLICATION__INIT;
    pub.kind = PM__PUBLICATION__KIND__MEMBERS;
    pub.members = mp;
    pub.n_members = s_n;
    pub.duties = &dp;
    pub.n_duties = 1;
    size_t len = 0;
    uint8_t *buf = pm_wire_pack(&pub.base, &len);
    if (len > S_MEMBERS_MAX(s_n)) {
        fprintf(stderr, "MEMBERS is %zu bytes, more than the room for it\n",
                len);
        exit(1);
    }
    memcpy(s_members_buf(), buf, len);
    s_sh->members_len = len;
    atomic_fetch_add(&s_sh->members_gen, 1);
    free(buf);
    free(names);
    free(mp);
    free(m);
}

static void
s_send_policy_all(bool with_test)
{
    atomic_store(&s_sh->with_test, with_test);
    atomic_fetch_add(&s_sh->policy_gen, 1);
}

/* Waits until DONE(slot, ARG) holds for every node or TIMEOUT_MS passed;
 * returns how many nodes it holds for. */
static size_t
s_wait(bool (*done)(const s_slot_t *, unsigned), unsigned arg, int timeout_ms)
{
    int64_t end = zclock_mono() + timeout_ms;
    size_t ok = 0;
    for (;;) {
        ok = 0;
        for (size_t i = 0; i < s_n; i++)
            ok += done(&s_sh->slots[i], arg);
        if (ok == s_n || zclock_mono() >= end)
            return ok;
        zclock_sleep(S_CHILD_TICK_MS);
    }
}

static bool
s_ready(const s_slot_t *slot, unsigned arg)
{
    (void)arg;
    return atomic_load(&slot->ready);
}

static bool
s_at(const s_slot_t *slot, unsigned version)
{
    return atomic_load(&slot->version) == version;
}

/* When node I's newest database file entered its directory: the ctime of
 * the file (rename(2) sets it), unless the STATUS saying so came earlier.
 * The duty holder's next check links its files into the fetch directory,
 * and a link count change moves the ctime on. */
static double
s_arrival(size_t i)
{
    double best = 0;
    const char *ext[] = {"cld", "cvd"};
    for (size_t k = 0; k < 2; k++) {
        char path[600];
        struct stat st;
        snprintf(path, sizeof path, "%s/n%zu/test.%s", s_workdir, i + 1,
                 ext[k]);
        if (stat(path, &st) != 0)
            continue;
        double t = (double)st.st_ctim.tv_sec + (double)st.st_ctim.tv_nsec / 1e9;
        if (t > best)
            best = t;
    }
    double seen = (double)atomic_load(&s_sh->slots[i].seen_us) / 1e6;
    return seen && seen < best ? seen : best;
}

static void
s_copy(const char *from, const char *to)
{
    char tmp[600];
    snprintf(tmp, sizeof tmp, "%s.tmp", to);
    FILE *in = fopen(from, "rb"), *out = fopen(tmp, "wb");
    char buf[65536];
    size_t got;
    while (in && out && (got = fread(buf, 1, sizeof buf, in)) > 0)
        fwrite(buf, 1, got, out);
    if (in)
        fclose(in);
    if (!out || fclose(out) != 0 || rename(tmp, to) != 0) {
        fprintf(stderr, "copying %s to %s: %s\n", from, to, strerror(errno));
        exit(1);
    }
}

/* The mirror's test.cvd becomes VERSION's (1 or 6); returns t0. */
static double
s_publish(unsigned version)
{
    char from[512], to[512];
    for (unsigned k = 2; k <= 6; k++) {
        snprintf(to, sizeof to, "%s/test-%u.cdiff", s_www, k);
        snprintf(from, sizeof from, "%s/test-%u.cdiff", s_fixtures, k);
        if (version == 6)
            s_copy(from, to);
        else
            unlink(to);
    }
    snprintf(to, sizeof to, "%s/test.cvd", s_www);
    snprintf(from, sizeof from, "%s/test-%u.cvd", s_fixtures, version);
    struct stat st;
    /* the mirror answers 304 to If-Modified-Since within the same second */
    while (stat(to, &st) == 0 && time(NULL) <= st.st_mtime)
        zclock_sleep(50);
    s_copy(from, to);
    return s_now();
}

/* The mirror's log from byte OFFSET: 200 answers, and the most any one
 * path got. */
static void
s_mirror_count(long offset, int *ok, int *maxfile)
{
    *ok = *maxfile = 0;
    FILE *f = fopen(s_log, "r");
    if (!f || fseek(f, offset, SEEK_SET) != 0) {
        if (f)
            fclose(f);
        return;
    }
    char line[512], paths[64][128];
    int counts[64] = {0}, n = 0;
    while (fgets(line, sizeof line, f)) {
        char method[16], path[128];
        int status = 0;
        if (sscanf(line, "%15s %127s %d", method, path, &status) != 3 ||
            status != 200)
            continue;
        (*ok)++;
        int i = 0;
        while (i < n && strcmp(paths[i], path) != 0)
            i++;
        if (i == n && n < 64)
            snprintf(paths[n++], sizeof paths[0], "%s", path);
        if (i < n && ++counts[i] > *maxfile)
            *maxfile = counts[i];
    }
    fclose(f);
}

static long
s_log_size(void)
{
    struct stat st;
    return stat(s_log, &st) == 0 ? (long)st.st_size : 0;
}

static void
s_round(int r)
{
    long offset = s_log_size();
    double t0 = s_publish(6);
    size_t got = s_wait(s_at, 6, S_MISS_MS);
    zclock_sleep(500); /* a late second fetch would show in the log */
    double first = 0, last = 0, fetch = s_arrival(0) - t0;
    int fetchers = 0;
    for (size_t i = 0; i < s_n; i++) {
        if (atomic_load(&s_sh->slots[i].version) != 6)
            continue;
        double t = s_arrival(i) - t0;
        first = first == 0 || t < first ? t : first;
        last = t > last ? t : last;
        fetchers += atomic_load(&s_sh->slots[i].from_mirror);
    }
    const char *detail = getenv("SIG_DETAIL"); /* per node, for a look */
    FILE *f = detail ? fopen(detail, "a") : NULL;
    for (size_t i = 0; f && i < s_n; i++)
        fprintf(f, "%d n%zu %u %s %.1f\n", r, i + 1,
                atomic_load(&s_sh->slots[i].version),
                atomic_load(&s_sh->slots[i].from_mirror) ? "mirror" : "peer",
                (s_arrival(i) - t0) * 1e3);
    if (f)
        fclose(f);
    int ok, maxfile;
    s_mirror_count(offset, &ok, &maxfile);
    printf("round %d: %.1f %.1f %.1f %zu %d %d %d\n", r, last * 1e3,
           fetch * 1e3, (last - fetch) * 1e3, s_n - got, ok, maxfile, fetchers);
    fflush(stdout);
}

/* Back to version 1 everywhere, the way an update goes. */
static void
s_reset(void)
{
    s_send_policy_all(false);
    if (s_wait(s_at, 0, S_MISS_MS) != s_n)
        fprintf(stderr, "not every node dropped test\n");
    s_publish(1);
    s_send_policy_all(true);
    if (s_wait(s_at, 1, 60000) != s_n)
        fprintf(stderr, "not every node is back at version 1\n");
}

/* A number from /proc/PID/status ("VmRSS:", "Threads:", "PPid:"); -1. */
static long
s_proc_status(long pid, const char *field)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%ld/status", pid);
    FILE *f = fopen(path, "r");
    long v = -1;
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, field, strlen(field)) == 0)
            v = strtol(line + strlen(field), NULL, 10);
    if (f)
        fclose(f);
    return v;
}

/* The children's CPU time together (utime + stime), s. */
static double
s_kids_cpu_s(void)
{
    double s = 0;
    for (size_t c = 0; c < s_procs; c++) {
        char path[64];
        snprintf(path, sizeof path, "/proc/%ld/stat", (long)s_kids[c]);
        FILE *f = fopen(path, "r");
        unsigned long ut = 0, st = 0;
        /* comm may hold spaces; the fields after it start past ')' */
        char buf[1024];
        size_t got = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
        buf[got] = '\0';
        const char *p = strrchr(buf, ')');
        if (p && sscanf(p + 2,
                        "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u "
                        "%lu %lu",
                        &ut, &st) == 2)
            s += (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
        if (f)
            fclose(f);
    }
    return s;
}

static bool
s_is_kid(long pid)
{
    for (size_t c = 0; c < s_procs; c++)
        if (s_kids[c] == pid)
            return true;
    return false;
}

/* The children's children (the privmta-sigfetch helpers): how many, and
 * their resident memory together, MiB. */
static size_t
s_helpers(double *rss_mib)
{
    size_t n = 0;
    *rss_mib = 0;
    DIR *d = opendir("/proc");
    for (struct dirent *e = d ? readdir(d) : NULL; e; e = readdir(d)) {
        long pid = strtol(e->d_name, NULL, 10);
        if (pid <= 0 || !s_is_kid(s_proc_status(pid, "PPid:")))
            continue;
        n++;
        *rss_mib += (double)s_proc_status(pid, "VmRSS:") / 1024;
    }
    if (d)
        closedir(d);
    return n;
}

static size_t
s_open_fds(long pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%ld/fd", pid);
    size_t n = 0;
    DIR *d = opendir(path);
    while (d && readdir(d))
        n++;
    if (d)
        closedir(d);
    return n > 2 ? n - 2 : 0;
}

static void
s_report(long nofile)
{
    double helpers_mib;
    size_t helpers = s_helpers(&helpers_mib), fds = 0;
    long rss = 0, threads = 0;
    for (size_t c = 0; c < s_procs; c++) {
        size_t f = s_open_fds(s_kids[c]);
        fds = f > fds ? f : fds;
        rss += s_proc_status(s_kids[c], "VmRSS:");
        threads += s_proc_status(s_kids[c], "Threads:");
    }
    printf("open-files %zu of %ld\n", fds, nofile);
    printf("rss-mib %.1f\nthreads %ld\nhelpers %zu %.1f\n", (double)rss / 1024,
           threads, helpers, helpers_mib);
    fflush(stdout);
}

int
main(int argc, char **argv)
{
    if (argc < 9) {
        fprintf(stderr, "usage: bench_sigsync N ROUNDS FETCHER MIRROR_URL WWW "
                        "ACCESS_LOG FIXTURES WORKDIR [GOSSIP_MS [LINKS "
                        "[TIMEOUT_MS [PROCS]]]]\n");
        return 2;
    }
    s_n = strtoul(argv[1], NULL, 10);
    int rounds = atoi(argv[2]);
    s_fetcher = argv[3];
    s_mirror = argv[4];
    s_www = argv[5];
    s_log = argv[6];
    s_fixtures = argv[7];
    s_workdir = argv[8];
    s_gossip_ms = argc > 9 ? atoi(argv[9]) : 200;
    s_links = argc > 10 ? atoi(argv[10]) : 0;
    s_timeout_ms = argc > 11 ? atoi(argv[11]) : 0;
    s_procs = argc > 12 ? strtoul(argv[12], NULL, 10) : 1;
    if (!s_n || !s_procs || s_procs > s_n) {
        fprintf(stderr, "bench_sigsync: N and PROCS must be 1 <= PROCS <= N\n");
        return 2;
    }
    pm_log_init("bench_sigsync", false, PM_LOG_ERROR);
    long nofile = s_raise_nofile();
    if (mkdir(s_workdir, 0755) != 0 && errno != EEXIST) {
        fprintf(stderr, "%s: %s\n", s_workdir, strerror(errno));
        return 1;
    }
    size_t size = sizeof *s_sh + s_n * sizeof(s_slot_t) + S_MEMBERS_MAX(s_n);
    s_sh = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
                -1, 0);
    if (s_sh == MAP_FAILED) {
        perror("mmap");
        return 1;
    }
    /* the children start the agents; this process never makes a libzmq
     * context, so they fork from a clean one */
    s_kids = pm_calloc(s_procs, sizeof *s_kids);
    double t = s_now();
    for (size_t c = 0; c < s_procs; c++) {
        size_t first = s_n * c / s_procs, next = s_n * (c + 1) / s_procs;
        s_kids[c] = fork();
        if (s_kids[c] == 0)
            _exit(s_child(first, next - first));
        if (s_kids[c] < 0) {
            perror("fork");
            return 1;
        }
    }
    int rc = 0;
    if (s_wait(s_ready, 0, 60000) != s_n) {
        fprintf(stderr, "not every node serves peers\n");
        rc = 1;
    }
    if (!rc) {
        s_send_members();
        size_t at1 = s_wait(s_at, 1, 300000);
        fprintf(stderr, "%zu nodes started and at version 1 in %.1f s\n", at1,
                s_now() - t);
        zclock_sleep(2000);
        double c0 = s_kids_cpu_s(), w0 = s_now();
        zclock_sleep(5000);
        printf("idle-cpu %.0f\n", (s_kids_cpu_s() - c0) * 100 / (s_now() - w0));
        for (int r = 1; r <= rounds; r++) {
            if (r > 1)
                s_reset();
            zclock_sleep(2000); /* the duty's checks in their steady rhythm */
            s_round(r);
        }
        s_report(nofile);
    }
    atomic_store(&s_sh->stop, 1);
    for (size_t c = 0; c < s_procs; c++) {
        int st = 0;
        if (waitpid(s_kids[c], &st, 0) < 0 || !WIFEXITED(st) ||
            WEXITSTATUS(st) != 0)
            rc = 1;
    }
    free(s_kids);
    return rc;
}
