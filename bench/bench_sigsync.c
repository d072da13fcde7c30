/* bench_sigsync.c - a new ClamAV database version from the mirror to N
 * agents, the agents in this process: the N=1000 row of
 * bench_signatures.sh, which runs N agents as processes up to ~60.
 *
 * usage: bench_sigsync N ROUNDS FETCHER MIRROR_URL WWW ACCESS_LOG FIXTURES
 *                      WORKDIR [GOSSIP_MS [LINKS [TIMEOUT_MS]]]
 *
 * The caller runs the mirror (tests/data/clamav/mirror.py serving WWW at
 * MIRROR_URL, logging to ACCESS_LOG) with FIXTURES/test-1.cvd as
 * WWW/test.cvd. This starts N pm_sigsync actors (the agent's signature
 * sync, unchanged: its own CURVE key, peer service on 127.0.0.1, database
 * directory WORKDIR/nI, privmta-sigfetch FETCHER for the fetch duty and
 * the checks of what peers send), plays the controller's part (MEMBERS:
 * every node live, n1 holds the fetch duty for "test"; the policy names
 * the mirror, [test], update_frequency 1s) and waits until every node
 * holds version 1. Then per round, as bench_signatures.sh does:
 *   t0       WWW/test.cvd becomes version 6 (the CDIFFs 2..6 are there);
 *   fetch    the duty holder's version-6 file entered its directory;
 *   all      the last node's did.
 * Arrival is the ctime of the newest database file (a verified file
 * enters by rename(2)), or when this thread got the node's STATUS if that
 * came first (s_arrival). Between rounds the
 * policy drops "test" (the files go), the mirror goes back to version 1
 * and the policy names it again.
 *
 * Prints per round "round R: ALL FETCH SPREAD MISSES OK MAXFILE FETCHERS"
 * (ms, ms, ms, nodes without version 6 after 30 s, the mirror's 200
 * answers, the most any one file was served, nodes whose version 6 came
 * from the mirror), and "idle-cpu P" (this process, % of one core, 5 s
 * after convergence; the verify helpers idle then), "rss-mib R", "threads
 * T", "helpers H MIB" (privmta-sigfetch processes, one verifier per
 * node, and their resident memory together).
 * Not a test: it prints figures.
 */
#include "pm_error.h"
#include "pm_log.h"
#include "pm_mem.h"
#include "pm_sigsync.h"
#include "pm_wire.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define S_MISS_MS 30000

typedef struct {
    char name[24];
    char dbdir[256];
    zcert_t *cert;
    zactor_t *actor;
    char *endpoint;   /* its peer service, from its first STATUS */
    unsigned version; /* of "test", from its last STATUS */
    bool from_mirror; /* that version came from the mirror */
    double seen;      /* when this thread got the STATUS with it */
} s_node_t;

static s_node_t *s_nodes;
static size_t s_n;
static const char *s_mirror, *s_www, *s_log, *s_fixtures;
static int s_links;      /* peer links per node; 0: the agent's default */
static int s_timeout_ms; /* one peer reply; 0: the agent's default */

static double
s_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
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

static size_t
s_open_fds(void)
{
    size_t n = 0;
    DIR *d = opendir("/proc/self/fd");
    while (d && readdir(d))
        n++;
    if (d)
        closedir(d);
    return n > 2 ? n - 2 : 0;
}

static void
s_send_policy(s_node_t *node, bool with_test)
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
    zsock_send(node->actor, "sb", "POLICY", buf, len);
    free(buf);
}

/* MEMBERS as the controller packs it: every node live, n1 fetching. */
static void
s_send_members(void)
{
    Pm__Member *m = pm_calloc(s_n, sizeof *m);
    Pm__Member **mp = pm_calloc(s_n, sizeof *mp);
    for (size_t i = 0; i < s_n; i++) {
        pm__member__init(&m[i]);
        m[i].name = s_nodes[i].name;
        m[i].peer_endpoint = s_nodes[i].endpoint;
        m[i].public_key = (char *)zcert_public_txt(s_nodes[i].cert);
        m[i].live = true;
        mp[i] = &m[i];
    }
    Pm__Duty d = PM__DUTY__INIT, *dp = &d;
    d.database = "test";
    d.node = s_nodes[0].name;
    Pm__Publication pub = PM__PUBLICATION__INIT;
    pub.kind = PM__PUBLICATION__KIND__MEMBERS;
    pub.members = mp;
    pub.n_members = s_n;
    pub.duties = &dp;
    pub.n_duties = 1;
    size_t len = 0;
    uint8_t *buf = pm_wire_pack(&pub.base, &len);
    for (size_t i = 0; i < s_n; i++)
        zsock_send(s_nodes[i].actor, "sb", "MEMBERS", buf, len);
    free(buf);
    free(mp);
    free(m);
}

/* One STATUS of NODE: its peer endpoint, and where "test" stands. */
static void
s_take_status(s_node_t *node)
{
    char *cmd = NULL;
    zchunk_t *chunk = NULL;
    if (zsock_recv(node->actor, "sc", &cmd, &chunk) != 0)
        return;
    Pm__NodeStatus *st = NULL;
    char *why = NULL;
    if (pm_wire_unpack_node_status(zchunk_data(chunk), zchunk_size(chunk), &st,
                                   &why) == PM_OK) {
        if (!node->endpoint && *st->peer_endpoint)
            node->endpoint = pm_strdup(st->peer_endpoint);
        unsigned was = node->version;
        node->version = 0;
        for (size_t i = 0; i < st->n_databases; i++)
            if (strcmp(st->databases[i]->name, "test") == 0) {
                node->version = st->databases[i]->version;
                if (node->version != was)
                    node->seen = s_now();
                node->from_mirror =
                    strncmp(st->databases[i]->source, "mirror", 6) == 0;
            }
        pm__node_status__free_unpacked(st, NULL);
    }
    free(why);
    free(cmd);
    zchunk_destroy(&chunk);
}

/* Takes statuses until DONE(node) holds for every node or TIMEOUT_MS
 * passed; returns how many nodes it holds for. One zmq_poll serves every
 * node that has something: a poll over 1000 pipes per status was a tenth
 * of the machine's CPU, taken from the agents being measured. */
static size_t
s_wait(bool (*done)(const s_node_t *, unsigned), unsigned arg, int timeout_ms)
{
    zmq_pollitem_t *items = pm_calloc(s_n, sizeof *items);
    for (size_t i = 0; i < s_n; i++)
        items[i] =
            (zmq_pollitem_t){zsock_resolve(s_nodes[i].actor), 0, ZMQ_POLLIN, 0};
    int64_t end = zclock_mono() + timeout_ms;
    size_t ok = 0;
    for (;;) {
        ok = 0;
        for (size_t i = 0; i < s_n; i++)
            ok += done(&s_nodes[i], arg);
        if (ok == s_n || zclock_mono() >= end)
            break;
        if (zmq_poll(items, (int)s_n, 100) <= 0)
            continue;
        for (size_t i = 0; i < s_n; i++)
            while (items[i].revents & ZMQ_POLLIN) {
                s_take_status(&s_nodes[i]);
                items[i].revents = zsock_events(s_nodes[i].actor);
            }
    }
    free(items);
    return ok;
}

static bool
s_has_endpoint(const s_node_t *node, unsigned arg)
{
    (void)arg;
    return node->endpoint != NULL;
}

static bool
s_never(const s_node_t *node, unsigned arg)
{
    (void)node;
    (void)arg;
    return false;
}

static bool
s_at(const s_node_t *node, unsigned version)
{
    return node->version == version;
}

/* When NODE's newest database file entered its directory: the ctime of
 * the file (rename(2) sets it), unless the STATUS saying so came earlier.
 * The duty holder's next check links its files into the fetch directory,
 * and a link count change moves the ctime on. */
static double
s_arrival(const s_node_t *node)
{
    double best = 0;
    const char *ext[] = {"cld", "cvd"};
    for (size_t k = 0; k < 2; k++) {
        char path[300];
        struct stat st;
        snprintf(path, sizeof path, "%s/test.%s", node->dbdir, ext[k]);
        if (stat(path, &st) != 0)
            continue;
        double t = (double)st.st_ctim.tv_sec + (double)st.st_ctim.tv_nsec / 1e9;
        if (t > best)
            best = t;
    }
    return node->seen && node->seen < best ? node->seen : best;
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
    struct timespec m0, m1;
    clock_gettime(CLOCK_MONOTONIC, &m0);
    size_t got = s_wait(s_at, 6, S_MISS_MS);
    clock_gettime(CLOCK_MONOTONIC, &m1);
    if (getenv("SIG_DETAIL")) /* for perf report --time */
        fprintf(stderr, "round %d monotonic %ld.%06ld,%ld.%06ld\n", r,
                (long)m0.tv_sec, m0.tv_nsec / 1000, (long)m1.tv_sec,
                m1.tv_nsec / 1000);
    zclock_sleep(500); /* a late second fetch would show in the log */
    double first = 0, last = 0, fetch = s_arrival(&s_nodes[0]) - t0;
    int fetchers = 0;
    for (size_t i = 0; i < s_n; i++) {
        if (s_nodes[i].version != 6)
            continue;
        double t = s_arrival(&s_nodes[i]) - t0;
        first = first == 0 || t < first ? t : first;
        last = t > last ? t : last;
        fetchers += s_nodes[i].from_mirror;
    }
    const char *detail = getenv("SIG_DETAIL"); /* per node, for a look */
    FILE *f = detail ? fopen(detail, "a") : NULL;
    for (size_t i = 0; f && i < s_n; i++)
        fprintf(f, "%d %s %u %s %.1f\n", r, s_nodes[i].name, s_nodes[i].version,
                s_nodes[i].from_mirror ? "mirror" : "peer",
                (s_arrival(&s_nodes[i]) - t0) * 1e3);
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
    for (size_t i = 0; i < s_n; i++)
        s_send_policy(&s_nodes[i], false);
    if (s_wait(s_at, 0, S_MISS_MS) != s_n)
        fprintf(stderr, "not every node dropped test\n");
    s_publish(1);
    for (size_t i = 0; i < s_n; i++)
        s_send_policy(&s_nodes[i], true);
    if (s_wait(s_at, 1, 60000) != s_n)
        fprintf(stderr, "not every node is back at version 1\n");
}

static double
s_cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

/* "VmRSS:" or "Threads:" of this process, from /proc. */
static long
s_proc_status(const char *field)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long v = -1;
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, field, strlen(field)) == 0)
            v = strtol(line + strlen(field), NULL, 10);
    if (f)
        fclose(f);
    return v;
}

/* This process's children (the privmta-sigfetch helpers): how many, and
 * their resident memory together, MiB. */
static size_t
s_children(double *rss_mib)
{
    size_t n = 0;
    *rss_mib = 0;
    DIR *d = opendir("/proc");
    for (struct dirent *e = d ? readdir(d) : NULL; e; e = readdir(d)) {
        char path[300], line[256];
        snprintf(path, sizeof path, "/proc/%s/status", e->d_name);
        FILE *f = fopen(path, "r");
        long ppid = -1, rss = 0;
        while (f && fgets(line, sizeof line, f)) {
            if (strncmp(line, "PPid:", 5) == 0)
                ppid = strtol(line + 5, NULL, 10);
            else if (strncmp(line, "VmRSS:", 6) == 0)
                rss = strtol(line + 6, NULL, 10);
        }
        if (f)
            fclose(f);
        if (ppid == (long)getpid()) {
            n++;
            *rss_mib += (double)rss / 1024;
        }
    }
    if (d)
        closedir(d);
    return n;
}

static void
s_start(size_t i, const char *workdir, const char *fetcher, int gossip_ms)
{
    s_node_t *node = &s_nodes[i];
    snprintf(node->name, sizeof node->name, "n%zu", i + 1);
    snprintf(node->dbdir, sizeof node->dbdir, "%s/%s", workdir, node->name);
    node->cert = zcert_new();
    pm_sigsync_config_t c = {.cert = node->cert,
                             .dbdir = node->dbdir,
                             .fetcher = fetcher,
                             .gid = -1,
                             .peer_bind = "tcp://127.0.0.1:0",
                             .name = node->name,
                             .gossip_ms = gossip_ms,
                             .fanout = 3,
                             .links_max = s_links,
                             .cdiff_min_kib = PM_SIGSYNC_CDIFF_MIN_KIB,
                             .peer_timeout_ms = s_timeout_ms};
    node->actor = pm_sigsync_new(&c);
    if (!node->actor) {
        fprintf(stderr, "node %s did not start\n", node->name);
        exit(1);
    }
    s_send_policy(node, true);
}

int
main(int argc, char **argv)
{
    if (argc < 9) {
        fprintf(stderr, "usage: bench_sigsync N ROUNDS FETCHER MIRROR_URL WWW "
                        "ACCESS_LOG FIXTURES WORKDIR [GOSSIP_MS]\n");
        return 2;
    }
    s_n = strtoul(argv[1], NULL, 10);
    int rounds = atoi(argv[2]);
    s_mirror = argv[4];
    s_www = argv[5];
    s_log = argv[6];
    s_fixtures = argv[7];
    int gossip_ms = argc > 9 ? atoi(argv[9]) : 200;
    s_links = argc > 10 ? atoi(argv[10]) : 0;
    s_timeout_ms = argc > 11 ? atoi(argv[11]) : 0;
    pm_log_init("bench_sigsync", false, PM_LOG_ERROR);
    long nofile = s_raise_nofile();
    zsys_set_max_sockets(0);
    zsys_set_io_threads(2);
    zsys_set_logstream(NULL);
    zsys_init();
    if (mkdir(argv[8], 0755) != 0 && errno != EEXIST) {
        fprintf(stderr, "%s: %s\n", argv[8], strerror(errno));
        return 1;
    }
    s_nodes = pm_calloc(s_n, sizeof *s_nodes);
    double t = s_now();
    for (size_t i = 0; i < s_n; i++)
        s_start(i, argv[8], argv[3], gossip_ms);
    if (s_wait(s_has_endpoint, 0, 60000) != s_n) {
        fprintf(stderr, "not every node serves peers\n");
        return 1;
    }
    s_send_members();
    size_t at1 = s_wait(s_at, 1, 300000);
    fprintf(stderr, "%zu nodes started and at version 1 in %.1f s\n", at1,
            s_now() - t);
    zclock_sleep(2000);
    double c0 = s_cpu_s(), w0 = s_now();
    s_wait(s_never, 0, 5000); /* statuses taken meanwhile, as always */
    printf("idle-cpu %.0f\n", (s_cpu_s() - c0) * 100 / (s_now() - w0));
    for (int r = 1; r <= rounds; r++) {
        if (r > 1)
            s_reset();
        zclock_sleep(2000); /* the duty's checks in their steady rhythm */
        s_round(r);
    }
    double helpers_mib;
    size_t helpers = s_children(&helpers_mib);
    printf("open-files %zu of %ld\n", s_open_fds(), nofile);
    printf("rss-mib %.1f\nthreads %ld\nhelpers %zu %.1f\n",
           (double)s_proc_status("VmRSS:") / 1024, s_proc_status("Threads:"),
           helpers, helpers_mib);
    fflush(stdout);
    /* all stop at once: one after the other, each finishing its step,
     * 1000 took minutes */
    for (size_t i = 0; i < s_n; i++)
        zstr_send(s_nodes[i].actor, "$TERM");
    for (size_t i = 0; i < s_n; i++) {
        zactor_destroy(&s_nodes[i].actor);
        zcert_destroy(&s_nodes[i].cert);
        free(s_nodes[i].endpoint);
    }
    free(s_nodes);
    return 0;
}
