/* test_sigsync.c - two signature actors and a real HTTP mirror on
 * 127.0.0.1: the one with the duty fetches, the other pulls from it over
 * CurveZMQ (one node serves, the other only pulls); a new version by CDIFFs
 * spreads the same way; a 429 becomes a cool-down both know; a peer's tampered
 * file is refused and its sender distrusted. The controller's part (MEMBERS) is
 * played by the test. */
#include <criterion/criterion.h>

#include <czmq.h>
#include <dlfcn.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pm_error.h"
#include "pm_file.h"
#include "pm_mem.h"
#include "pm_peer.h"
#include "pm_peerzap.h"
#include "pm_sigsync.h"
#include "pm_wire.h"
#include "testmirror.h"
#include "testdir.h"

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/lsan_interface.h>
#endif

static char s_dir[64], s_www[96], s_log[96];
static testmirror_t s_mirror = {.pid = -1};

static void
s_setup(void)
{
    strcpy(s_dir, "/tmp/pm-test-sigsync.XXXXXX");
    cr_assert_not_null(mkdtemp(s_dir));
    snprintf(s_www, sizeof s_www, "%s/www", s_dir);
    snprintf(s_log, sizeof s_log, "%s/access.log", s_dir);
    cr_assert_eq(mkdir(s_www, 0700), 0);
    testmirror_copy("test-1.cvd", s_www, "test.cvd", false);
    char *port = pm_asprintf("%s/port", s_dir);
    testmirror_start(&s_mirror, s_www, port, s_log);
    free(port);
}

static void
s_teardown(void)
{
    testmirror_stop(&s_mirror);
    testdir_remove(s_dir);
}

TestSuite(sigsync, .init = s_setup, .fini = s_teardown);

/* One node: its actor, keys and the last status it sent. */
typedef struct {
    const char *name;
    zcert_t *cert;
    zactor_t *actor;
    Pm__NodeStatus *st;
    char dbdir[128];
} s_node_t;

/* the fetches run in the helper, as in the agent */
#define S_FETCHER PM_BUILD_DIR "/nodeagent/privmta-sigfetch"

/* The next node's cdiff_min_kib (0: by CDIFF whenever it can). */
static int s_cdiff_min_kib;
/* The next node's fetch helper (NULL: S_FETCHER). */
static const char *s_fetcher;

static void s_drain(s_node_t *n, int wait_ms);

/* SERVE: the node runs a peer service, else it only pulls. */
static void
s_node_start(s_node_t *n, const char *name, bool serve)
{
    n->name = name;
    n->cert = zcert_new();
    snprintf(n->dbdir, sizeof n->dbdir, "%s/%s", s_dir, name);
    pm_sigsync_config_t c = {.cert = n->cert,
                             .dbdir = n->dbdir,
                             .fetcher = s_fetcher ? s_fetcher : S_FETCHER,
                             .gid = -1,
                             .peer_bind = serve ? "tcp://127.0.0.1:0" : NULL,
                             .name = name,
                             .gossip_ms = 100,
                             .fanout = 2,
                             .distrust_s = 600,
                             .cdiff_min_kib = s_cdiff_min_kib,
                             .peer_timeout_ms = 2000};
    n->actor = pm_sigsync_new(&c);
    cr_assert_not_null(n->actor);
    /* its first STATUS, which names where it serves: MEMBERS sent before
     * it would give peers an empty endpoint (a slow start on a loaded
     * machine once left "honest" unreachable for the whole test) */
    int64_t end = zclock_mono() + 30000;
    while (zclock_mono() < end && !(n->st && (!serve || *n->st->peer_endpoint)))
        s_drain(n, 200);
    cr_assert(n->st, "%s sent no status in 30 s", name);
    cr_assert(!serve ||
                  strncmp(n->st->peer_endpoint, "tcp://127.0.0.1:", 16) == 0,
              "%s serves at \"%s\"", name, n->st->peer_endpoint);
}

static void
s_node_stop(s_node_t *n)
{
    zactor_destroy(&n->actor);
    zcert_destroy(&n->cert);
    if (n->st)
        pm__node_status__free_unpacked(n->st, NULL);
    n->st = NULL;
}

/* Reads every STATUS the node sent so far (waiting up to WAIT_MS for
 * one); the last one stays in n->st. */
static void
s_drain(s_node_t *n, int wait_ms)
{
    zpoller_t *p = zpoller_new(n->actor, NULL);
    while (zpoller_wait(p, wait_ms) == n->actor) {
        char *cmd = NULL;
        zchunk_t *chunk = NULL;
        cr_assert_eq(zsock_recv(n->actor, "sc", &cmd, &chunk), 0);
        cr_assert_str_eq(cmd, "STATUS");
        Pm__NodeStatus *st = NULL;
        char *why = NULL;
        cr_assert_eq(pm_wire_unpack_node_status(zchunk_data(chunk),
                                                zchunk_size(chunk), &st, &why),
                     PM_OK, "%s", why ? why : "");
        if (n->st)
            pm__node_status__free_unpacked(n->st, NULL);
        n->st = st;
        free(cmd);
        zchunk_destroy(&chunk);
        wait_ms = 0;
    }
    zpoller_destroy(&p);
}

static const Pm__SignatureDb *
s_db_named(s_node_t *n, const char *name)
{
    for (size_t i = 0; n->st && i < n->st->n_databases; i++)
        if (strcmp(n->st->databases[i]->name, name) == 0)
            return n->st->databases[i];
    return NULL;
}

static const Pm__SignatureDb *
s_db(s_node_t *n)
{
    return s_db_named(n, "test");
}

/* Waits for N's "test" database to reach VERSION: up to 90 s, what an
 * idle machine needs (30 s) times three, as the integration tests scale
 * theirs (PM_TEST_WAIT_SCALE): under a full CI run with ASan, a node
 * catching up from a second peer after distrusting the first once took
 * longer than 30 s. A wait that is met returns at once. */
static void
s_wait_version(s_node_t *n, unsigned version)
{
    int64_t end = zclock_mono() + 90000;
    while (zclock_mono() < end) {
        s_drain(n, 200);
        const Pm__SignatureDb *db = s_db(n);
        if (db && db->version == version)
            return;
    }
    const Pm__SignatureDb *db = s_db(n);
    cr_assert_fail("%s: test at version %u, not %u (error: %s)", n->name,
                   db ? db->version : 0, version, db ? db->error : "-");
}

/* A policy naming MIRROR and the N databases DBS. */
static void
s_send_policy_of(s_node_t *n, const char *mirror, char **dbs, size_t count)
{
    Pm__Policy p = PM__POLICY__INIT;
    char *mirrors[] = {(char *)mirror};
    p.antivirus_enabled = true;
    p.antivirus_mirrors = mirrors;
    p.n_antivirus_mirrors = 1;
    p.antivirus_databases = dbs;
    p.n_antivirus_databases = count;
    p.antivirus_update_frequency = 3600;
    size_t len = 0;
    uint8_t *buf = pm_wire_pack(&p.base, &len);
    zsock_send(n->actor, "sb", "POLICY", buf, len);
    free(buf);
}

static void
s_send_policy(s_node_t *n, const char *mirror)
{
    char *dbs[] = {"test"};
    s_send_policy_of(n, mirror, dbs, 1);
}

/* MEMBERS as the controller would pack it: members M (N of them), every
 * one live, HOLDER fetching "test". Caller frees the bytes. */
static uint8_t *
s_pack_members(Pm__Member *m, size_t n, const char *holder, size_t *len)
{
    Pm__Member *mp[8];
    cr_assert(n <= 8);
    for (size_t i = 0; i < n; i++) {
        m[i].live = true;
        mp[i] = &m[i];
    }
    Pm__Duty d = PM__DUTY__INIT, *dp = &d;
    d.database = "test";
    d.node = (char *)holder;
    Pm__Publication pub = PM__PUBLICATION__INIT;
    pub.kind = PM__PUBLICATION__KIND__MEMBERS;
    pub.members = mp;
    pub.n_members = n;
    pub.duties = &dp;
    pub.n_duties = 1;
    return pm_wire_pack(&pub.base, len);
}

/* What the controller would send to NODES. */
static void
s_send_members(s_node_t **nodes, size_t count, const char *holder)
{
    Pm__Member m[8];
    for (size_t i = 0; i < count; i++) {
        pm__member__init(&m[i]);
        m[i].name = (char *)nodes[i]->name;
        m[i].peer_endpoint = nodes[i]->st ? nodes[i]->st->peer_endpoint : "";
        m[i].public_key = (char *)zcert_public_txt(nodes[i]->cert);
    }
    size_t len = 0;
    uint8_t *buf = s_pack_members(m, count, holder, &len);
    for (size_t i = 0; i < count; i++)
        zsock_send(nodes[i]->actor, "sb", "MEMBERS", buf, len);
    free(buf);
}

Test(sigsync, fetched_once_shared_by_peers)
{
    s_node_t a = {0}, b = {0}, c = {0};
    s_node_start(&a, "a", true);
    s_node_start(&b, "b", false);
    s_cdiff_min_kib = 64; /* c's test.cvd, 40 KiB, comes whole */
    s_node_start(&c, "c", false);
    s_node_t *all[] = {&a, &b, &c};
    s_send_policy(&a, s_mirror.url);
    s_send_policy(&b, s_mirror.url);
    s_send_policy(&c, s_mirror.url);
    s_send_members(all, 3, "a");

    s_wait_version(&a, 1);
    s_wait_version(&b, 1);
    cr_assert(strncmp(s_db(&a)->source, "mirror ", 7) == 0, "%s",
              s_db(&a)->source);
    cr_assert_str_eq(s_db(&b)->source, "peer a");
    cr_assert_gt(s_db(&a)->next_check, 0, "a holds the duty");
    cr_assert_eq(s_db(&b)->next_check, 0, "b does not");
    cr_assert_eq(testmirror_count(s_log, "GET /test.cvd 200 "), 1);
    struct stat st;
    char *path = pm_asprintf("%s/test.cvd", b.dbdir);
    cr_assert_eq(stat(path, &st), 0);
    cr_assert_eq(st.st_mode & 0777, 0644);
    free(path);

    /* version 6 by five CDIFFs: the duty holder fetches, b pulls */
    testmirror_publish_v6(s_www);
    zstr_send(a.actor, "CHECK");
    s_wait_version(&a, 6);
    s_wait_version(&b, 6);
    cr_assert_eq(testmirror_count(s_log, "GET /test.cvd 200 "), 1);
    for (int v = 2; v <= 6; v++) {
        char *get = pm_asprintf("GET /test-%d.cdiff 200 ", v);
        cr_assert_eq(testmirror_count(s_log, get), 1, "%s once", get);
        free(get);
        /* both keep every CDIFF, root's alone, to share */
        s_node_t *nodes[] = {&a, &b};
        for (size_t i = 0; i < 2; i++) {
            path =
                pm_asprintf("%s/.pm-cdiff/test-%d.cdiff", nodes[i]->dbdir, v);
            cr_assert_eq(stat(path, &st), 0, "%s", path);
            cr_assert_eq(st.st_mode & 0777, 0644);
            free(path);
        }
    }
    /* b was five versions behind: it caught up by CDIFF, not the file;
     * c's copy is smaller than its cdiff_min_kib: the file */
    cr_assert_str_eq(s_db(&b)->source, "peer a by CDIFF");
    s_wait_version(&c, 6);
    cr_assert_str_eq(s_db(&c)->source, "peer a");
    cr_assert_eq(s_db(&a)->cdiff_from, 2);
    cr_assert_eq(s_db(&b)->cdiff_from, 2);
    path = pm_asprintf("%s/.pm-cdiff-in", b.dbdir);
    cr_assert_eq(stat(path, &st), 0);
    cr_assert_eq(st.st_mode & 0777, 0755, "the fetch user reads, no more");
    free(path);

    /* a 429 is a cool-down b learns by gossip */
    testmirror_status(s_www, "429 120");
    zstr_send(a.actor, "CHECK");
    int64_t end = zclock_mono() + 20000;
    while (zclock_mono() < end && !(b.st && b.st->n_cooldowns)) {
        s_drain(&a, 100);
        s_drain(&b, 100);
    }
    cr_assert(b.st && b.st->n_cooldowns == 1, "b learns the cool-down");
    cr_assert_str_eq(b.st->cooldowns[0]->mirror, s_mirror.url);
    cr_assert_eq(b.st->cooldowns[0]->http_status, 429);
    time_t now = time(NULL);
    cr_assert(b.st->cooldowns[0]->until > now + 100 &&
              b.st->cooldowns[0]->until <= now + 121);

    /* the duty moves to b, which does not ask the cooling mirror */
    size_t asked = testmirror_count(s_log, "GET ");
    s_send_members(all, 3, "b");
    end = zclock_mono() + 10000;
    while (zclock_mono() < end &&
           !(s_db(&b) && s_db(&b)->next_check > now + 100))
        s_drain(&b, 100);
    cr_assert_gt(s_db(&b)->next_check, now + 100,
                 "b plans its check after "
                 "the deadline");
    cr_assert_eq(testmirror_count(s_log, "GET "), asked);

    s_node_stop(&a);
    s_node_stop(&b);
    s_node_stop(&c);
    s_cdiff_min_kib = 0;
}

/* A peer announcing a version whose file fails ClamAV's check is
 * distrusted; the honest node keeps what it has. */
/* A daily database built more than 7 days ago is reported (antivirus
 * degraded): mirrors that stopped moving answer every check "nothing
 * newer". ClamAV's signed test database, built in 2021, stands in for
 * daily here; the same file held as test is not reported. */
Test(sigsync, old_daily_is_reported)
{
    char *dbdir = pm_asprintf("%s/a", s_dir);
    cr_assert_eq(mkdir(dbdir, 0751), 0);
    testmirror_copy("test-1.cvd", dbdir, "daily.cvd", false);
    testmirror_copy("test-1.cvd", dbdir, "test.cvd", false);
    free(dbdir);
    s_node_t a = {0};
    s_node_start(&a, "a", false);
    char *dbs[] = {"daily", "test"};
    s_send_policy_of(&a, s_mirror.url, dbs, 2);
    int64_t end = zclock_mono() + 30000;
    const Pm__SignatureDb *daily = NULL;
    while (zclock_mono() < end &&
           !((daily = s_db_named(&a, "daily")) && *daily->error))
        s_drain(&a, 200);
    cr_assert_not_null(daily, "no daily in the status");
    cr_expect_eq(daily->version, 1);
    char *want = pm_asprintf("version 1 was built %lld days ago",
                             (long long)(time(NULL) - daily->built) / 86400);
    cr_expect(strncmp(daily->error, want, strlen(want)) == 0, "%s",
              daily->error);
    free(want);
    cr_expect_str_eq(s_db(&a)->error, "");
    s_node_stop(&a);
}

/* The fetch helper runs as another user and talks to the network: what
 * it says (its report's reason and mirror, its stderr) goes into root's
 * log escaped, never as lines of its own or terminal controls. */
Test(sigsync, the_helpers_words_are_escaped_in_the_log)
{
    Pm__FetchResult res = PM__FETCH_RESULT__INIT, *resp = &res;
    res.name = "test";
    res.err = PM_EPROTO;
    res.why = "refused\nprivmta: error: FORGED-WHY";
    res.changed = true; /* and nothing staged: "not taken", naming it */
    res.mirror = "http://m.test\nprivmta: error: FORGED-MIRROR";
    Pm__FetchReport rep = PM__FETCH_REPORT__INIT;
    rep.dbs = &resp;
    rep.n_dbs = 1;
    size_t len = 0;
    uint8_t *buf = pm_wire_pack(&rep.base, &len);
    char *report = pm_asprintf("%s/report.pb", s_dir);
    cr_assert_eq(pm_file_write(report, buf, len, 0644, (gid_t)-1, NULL), PM_OK);
    free(buf);
    char *fetcher = pm_asprintf("%s/fake-sigfetch", s_dir);
    char *script = pm_asprintf(
        "#!/bin/sh\nprintf 'freshclam\\rprivmta: error: FORGED-STDERR\\033[2K"
        "\\n' >&2\nexec cat '%s'\n",
        report);
    cr_assert_eq(
        pm_file_write(fetcher, script, strlen(script), 0755, (gid_t)-1, NULL),
        PM_OK);
    char *log = pm_asprintf("%s/agent.log", s_dir);
    fflush(stderr);
    int saved = dup(2), fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    cr_assert_geq(fd, 0);
    dup2(fd, 2);
    close(fd);

    s_fetcher = fetcher;
    s_node_t a = {0};
    s_node_start(&a, "a", false);
    s_fetcher = NULL;
    s_send_policy(&a, "http://m.test");
    s_node_t *nodes[] = {&a};
    s_send_members(nodes, 1, "a");
    int64_t end = zclock_mono() + 30000;
    while (zclock_mono() < end &&
           !(s_db(&a) && strstr(s_db(&a)->error, "not taken")))
        s_drain(&a, 200);
    s_node_stop(&a);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);

    char *text = NULL;
    cr_assert_eq(pm_file_read(log, 1 << 20, 0, &text, &len, NULL), PM_OK);
    cr_expect(strstr(text, "not taken"), "no fetch logged: %s", text);
    cr_expect(strstr(text, "FORGED-WHY") && strstr(text, "FORGED-MIRROR") &&
                  strstr(text, "FORGED-STDERR"),
              "the helper's words are not in the log: %s", text);
    cr_expect_null(strstr(text, "\nprivmta: error: FORGED"),
                   "a forged line: %s", text);
    cr_expect_null(strchr(text, '\r'), "a carriage return: %s", text);
    cr_expect_null(strchr(text, '\033'), "a terminal control: %s", text);
    free(text);
    free(log);
    free(script);
    free(fetcher);
    free(report);
}

/* The agent sends POLICY at every apply: a policy naming several
 * databases, sent again, keeps them (the second crashed the agent: the
 * lookup of the second name read the slot the first had left empty). */
Test(sigsync, policy_sent_again_keeps_its_databases)
{
    s_node_t a = {0};
    s_node_start(&a, "a", false);
    char *both[] = {"main", "test"}, *one[] = {"test"};
    s_send_policy_of(&a, s_mirror.url, both, 2);
    s_send_policy_of(&a, s_mirror.url, both, 2);
    s_send_policy_of(&a, s_mirror.url, one, 1); /* a status follows */
    int64_t end = zclock_mono() + 30000;
    while (zclock_mono() < end && !(a.st && a.st->n_databases == 1 && s_db(&a)))
        s_drain(&a, 200);
    cr_assert(a.st && a.st->n_databases == 1 && s_db(&a),
              "no status after the third policy");
    s_node_stop(&a);
}

/* A member's gossip may name cool-downs: only those of the policy's
 * mirrors are taken. A hostile member naming made-up mirrors by the
 * thousand filled the root agent's memory and, past the wire's list
 * limit, made every peer refuse this node's own VERSIONS. */
Test(sigsync, cooldowns_of_other_mirrors_are_not_taken)
{
    s_node_t b = {0};
    s_node_start(&b, "b", true);
    s_send_policy(&b, s_mirror.url);
    zcert_t *evil = zcert_new();
    Pm__Member m[2];
    pm__member__init(&m[0]);
    pm__member__init(&m[1]);
    m[0].name = "b";
    m[0].peer_endpoint = b.st->peer_endpoint;
    m[0].public_key = (char *)zcert_public_txt(b.cert);
    m[1].name = "evil";
    m[1].peer_endpoint = "";
    m[1].public_key = (char *)zcert_public_txt(evil);
    size_t len = 0;
    uint8_t *buf = s_pack_members(m, 2, "b", &len);
    zsock_send(b.actor, "sb", "MEMBERS", buf, len);
    free(buf);

    time_t now = time(NULL);
    Pm__Cooldown made_up = PM__COOLDOWN__INIT, real = PM__COOLDOWN__INIT;
    made_up.mirror = "http://made-up.example";
    made_up.http_status = real.http_status = 429;
    made_up.until = now + 3600;
    made_up.node = real.node = "evil";
    real.mirror = s_mirror.url;
    real.until = now + 600;
    Pm__Cooldown *cds[] = {&made_up, &real};
    Pm__PeerMessage mine = PM__PEER_MESSAGE__INIT;
    mine.cooldowns = cds;
    mine.n_cooldowns = 2;
    int64_t end = zclock_mono() + 30000;
    while (zclock_mono() < end && !(b.st && b.st->n_cooldowns)) {
        Pm__PeerMessage *theirs = NULL;
        char *why = NULL;
        if (pm_peer_exchange(evil, b.st->peer_endpoint,
                             zcert_public_txt(b.cert), &mine, &theirs, 2000,
                             &why) == PM_OK)
            pm__peer_message__free_unpacked(theirs, NULL);
        free(why);
        s_drain(&b, 200);
    }
    cr_assert(b.st && b.st->n_cooldowns == 1, "%zu cool-downs",
              b.st ? b.st->n_cooldowns : 0);
    cr_expect_str_eq(b.st->cooldowns[0]->mirror, s_mirror.url);
    zcert_destroy(&evil);
    s_node_stop(&b);
}

/* A member claiming a version nobody can give it (lying, or gone while
 * it said so) is forgotten as a holder once a pull from it fails: the
 * version a real holder has is pulled. Before, the claim stayed the
 * node's newest and only a holder of exactly it was ever asked. */
Test(sigsync, a_false_claim_does_not_stop_pulls)
{
    s_node_t a = {0}, good = {0};
    s_node_start(&a, "a", true);
    s_node_start(&good, "good", true);
    s_send_policy(&a, s_mirror.url);
    s_send_policy(&good, s_mirror.url);
    zcert_t *liar = zcert_new();
    Pm__Member m[3];
    for (size_t i = 0; i < 3; i++)
        pm__member__init(&m[i]);
    m[0].name = "a";
    m[0].peer_endpoint = a.st->peer_endpoint;
    m[0].public_key = (char *)zcert_public_txt(a.cert);
    m[1].name = "good";
    m[1].peer_endpoint = good.st->peer_endpoint;
    m[1].public_key = (char *)zcert_public_txt(good.cert);
    m[2].name = "liar";
    m[2].peer_endpoint = "tcp://127.0.0.1:9"; /* nobody serves there */
    m[2].public_key = (char *)zcert_public_txt(liar);
    size_t len = 0;
    uint8_t *buf = s_pack_members(m, 3, "a", &len);
    zsock_send(a.actor, "sb", "MEMBERS", buf, len);
    zsock_send(good.actor, "sb", "MEMBERS", buf, len);
    free(buf);

    Pm__SignatureDb claim = PM__SIGNATURE_DB__INIT, *dbs[] = {&claim};
    claim.name = "test";
    claim.version = 4000000000u;
    Pm__PeerMessage mine = PM__PEER_MESSAGE__INIT;
    mine.databases = dbs;
    mine.n_databases = 1;
    Pm__PeerMessage *theirs = NULL;
    char *why = NULL;
    int64_t end = zclock_mono() + 30000;
    int rc;
    while ((rc = pm_peer_exchange(liar, good.st->peer_endpoint,
                                  zcert_public_txt(good.cert), &mine, &theirs,
                                  2000, &why)) != PM_OK &&
           zclock_mono() < end) {
        PM_FREE(&why);
        zclock_sleep(100);
    }
    cr_assert_eq(rc, PM_OK, "%s", why ? why : "");
    pm__peer_message__free_unpacked(theirs, NULL);
    s_wait_version(&a, 1);
    s_wait_version(&good, 1);
    cr_expect_str_eq(s_db(&good)->source, "peer a");
    zcert_destroy(&liar);
    s_node_stop(&a);
    s_node_stop(&good);
}

/* A member that lets in KEY and never answers anything; counts the GETs
 * it was sent (*ARGS: s_mute_t). */
typedef struct {
    zcert_t *cert;
    const char *key; /* the one member it lets in */
    atomic_int gets;
} s_mute_t;

static void
s_mute(zsock_t *pipe, void *args)
{
    s_mute_t *a = args;
    pm_peerzap_t *zap = pm_peerzap_new("mute");
    zhashx_t *in = zhashx_new();
    zhashx_insert(in, a->key, "a");
    pm_peerzap_admit(zap, in);
    zhashx_destroy(&in);
    zsock_t *router = zsock_new(ZMQ_ROUTER);
    zcert_apply(a->cert, router);
    zsock_set_curve_server(router, 1);
    zsock_set_zap_domain(router, pm_peerzap_domain(zap));
    zsock_set_linger(router, 0);
    int rc = zsock_bind(router, "tcp://127.0.0.1:0");
    (void)rc; /* a failure shows as a holder nobody reaches: a timeout */
    zsock_signal(pipe, 0);
    char *ep = zsock_last_endpoint(router);
    zstr_send(pipe, ep);
    free(ep);
    zpoller_t *p = zpoller_new(pipe, router, NULL);
    while (zpoller_wait(p, -1) == router) {
        zmsg_t *m = zmsg_recv(router);
        zframe_t *body = zmsg_size(m) == 2 ? zmsg_last(m) : NULL;
        Pm__PeerMessage *msg = NULL;
        if (body &&
            pm_wire_unpack_peer_message(zframe_data(body), zframe_size(body),
                                        &msg, NULL) == PM_OK) {
            if (msg->kind == PM__PEER_MESSAGE__KIND__GET)
                atomic_fetch_add(&a->gets, 1);
            pm__peer_message__free_unpacked(msg, NULL);
        }
        zmsg_destroy(&m);
    }
    zpoller_destroy(&p);
    zsock_destroy(&router);
    pm_peerzap_destroy(&zap);
}

/* A member that claims a version and then never answers a pull is asked
 * once, then set aside: before, it counted again at its next gossip, and
 * each claim cost the node a pull's timeout (its gossip, its duty and
 * its other pulls waiting), round after round. */
Test(sigsync, a_holder_that_times_out_is_set_aside)
{
    s_node_t a = {0};
    s_node_start(&a, "a", true);
    s_send_policy(&a, s_mirror.url);
    s_mute_t mute = {.cert = zcert_new(), .key = zcert_public_txt(a.cert)};
    zactor_t *server = zactor_new(s_mute, &mute);
    char *at = zstr_recv(server);
    Pm__Member m[2];
    for (size_t i = 0; i < 2; i++)
        pm__member__init(&m[i]);
    m[0].name = "a";
    m[0].peer_endpoint = a.st->peer_endpoint;
    m[0].public_key = (char *)zcert_public_txt(a.cert);
    m[1].name = "mute";
    m[1].peer_endpoint = at;
    m[1].public_key = (char *)zcert_public_txt(mute.cert);
    size_t len = 0;
    uint8_t *buf = s_pack_members(m, 2, "nobody", &len);
    zsock_send(a.actor, "sb", "MEMBERS", buf, len);
    free(buf);

    /* the claim, again and again, until a asked, then for four of its
     * 2 s pull timeouts more */
    Pm__SignatureDb claim = PM__SIGNATURE_DB__INIT, *dbs[] = {&claim};
    claim.name = "test";
    claim.version = 6;
    Pm__PeerMessage mine = PM__PEER_MESSAGE__INIT;
    mine.databases = dbs;
    mine.n_databases = 1;
    int64_t end = zclock_mono() + 40000;
    bool asked = false;
    while (zclock_mono() < end) {
        if (!asked && atomic_load(&mute.gets)) {
            asked = true;
            end = zclock_mono() + 8000;
        }
        Pm__PeerMessage *theirs = NULL;
        if (pm_peer_exchange(mute.cert, a.st->peer_endpoint,
                             zcert_public_txt(a.cert), &mine, &theirs, 2000,
                             NULL) == PM_OK)
            pm__peer_message__free_unpacked(theirs, NULL);
        s_drain(&a, 200);
    }
    cr_expect_eq(atomic_load(&mute.gets), 1,
                 "the mute holder was asked %d times", atomic_load(&mute.gets));
    cr_expect(s_db(&a) && s_db(&a)->version == 0);
    zactor_destroy(&server);
    free(at);
    zcert_destroy(&mute.cert);
    s_node_stop(&a);
}

Test(sigsync, tampered_peer_is_distrusted)
{
    s_node_t good = {0}, bad = {0};
    s_node_start(&good, "good", false);
    /* bad's directory holds a test.cvd with a flipped byte: its header
     * still says version 6, which good does not have */
    char *dir = pm_asprintf("%s/bad", s_dir);
    cr_assert_eq(mkdir(dir, 0750), 0);
    testmirror_copy("test-6.cvd", dir, "test.cvd", true);
    free(dir);
    s_node_start(&bad, "bad", true);
    s_node_t *all[] = {&good, &bad};
    testmirror_status(s_www, "403 -"); /* nobody may fetch: peers only */
    s_send_policy(&good, s_mirror.url);
    s_send_policy(&bad, s_mirror.url);
    s_send_members(all, 2, "nobody");
    int64_t end = zclock_mono() + 20000;
    while (zclock_mono() < end && !(good.st && good.st->n_distrusted))
        s_drain(&good, 200);
    cr_assert(good.st && good.st->n_distrusted == 1, "good distrusts bad");
    cr_assert_str_eq(good.st->distrusted[0]->peer, "bad");
    cr_log_info("reason: %s", good.st->distrusted[0]->reason);
    cr_assert(s_db(&good) && s_db(&good)->version == 0);
    char *path = pm_asprintf("%s/test.cvd", good.dbdir);
    cr_assert_neq(access(path, F_OK), 0, "nothing unverified is kept");
    free(path);
    s_node_stop(&good);
    s_node_stop(&bad);
}

/* A peer that keeps a tampered CDIFF: the CDIFFs fail libfreshclam's
 * check here, the peer is distrusted, and the version comes whole from an
 * honest one. */
Test(sigsync, tampered_cdiff_peer_is_distrusted)
{
    s_node_t good = {0}, bad = {0}, honest = {0};
    char *dir = pm_asprintf("%s/good", s_dir);
    cr_assert_eq(mkdir(dir, 0750), 0);
    testmirror_copy("test-1.cvd", dir, "test.cvd", false);
    free(dir);
    /* bad holds version 6 and CDIFFs 2..6 of which 4 is changed */
    dir = pm_asprintf("%s/bad", s_dir);
    cr_assert_eq(mkdir(dir, 0750), 0);
    testmirror_copy("test-6.cvd", dir, "test.cvd", false);
    char *kept = pm_asprintf("%s/.pm-cdiff", dir);
    cr_assert_eq(mkdir(kept, 0700), 0);
    for (int v = 2; v <= 6; v++) {
        char *name = pm_asprintf("test-%d.cdiff", v);
        char *as = pm_asprintf("test-%d.cdiff", v);
        testmirror_copy(name, kept, as, v == 4);
        free(name);
        free(as);
    }
    free(kept);
    free(dir);
    dir = pm_asprintf("%s/honest", s_dir);
    cr_assert_eq(mkdir(dir, 0750), 0);
    testmirror_copy("test-6.cvd", dir, "test.cvd", false);
    free(dir);
    s_node_start(&good, "good", false);
    s_node_start(&bad, "bad", true);
    s_node_t *two[] = {&good, &bad};
    testmirror_status(s_www, "403 -"); /* nobody may fetch: peers only */
    s_send_policy(&good, s_mirror.url);
    s_send_policy(&bad, s_mirror.url);
    s_send_members(two, 2, "nobody");
    int64_t end = zclock_mono() + 20000;
    while (zclock_mono() < end && !(good.st && good.st->n_distrusted))
        s_drain(&good, 200);
    cr_assert(good.st && good.st->n_distrusted == 1, "good distrusts bad");
    cr_assert_str_eq(good.st->distrusted[0]->peer, "bad");
    cr_log_info("reason: %s", good.st->distrusted[0]->reason);
    cr_assert(s_db(&good) && s_db(&good)->version == 1, "version 1 kept");
    char *path = pm_asprintf("%s/.pm-cdiff/test-4.cdiff", good.dbdir);
    cr_assert_neq(access(path, F_OK), 0, "no CDIFF of bad's is kept");
    free(path);

    s_node_start(&honest, "honest", true);
    s_send_policy(&honest, s_mirror.url);
    s_node_t *three[] = {&good, &bad, &honest};
    s_send_members(three, 3, "nobody");
    s_wait_version(&good, 6);
    cr_assert_str_eq(s_db(&good)->source, "peer honest");
    s_node_stop(&good);
    s_node_stop(&bad);
    s_node_stop(&honest);
}

/* ---- shutdown ------------------------------------------------------------ */

/* MEMBERS naming N unreachable peers (port 1 refuses: every exchange waits
 * out the peer timeout) and HOLDER as the duty of "test". */
static void
s_send_silent_members(zactor_t *actor, size_t n, const char *holder)
{
    Pm__Member m[8];
    zcert_t *keys[8];
    char names[8][24];
    cr_assert(n <= 8);
    for (size_t i = 0; i < n; i++) {
        keys[i] = zcert_new();
        snprintf(names[i], sizeof names[i], "p%zu", i);
        pm__member__init(&m[i]);
        m[i].name = names[i];
        m[i].peer_endpoint = "tcp://127.0.0.1:1";
        m[i].public_key = (char *)zcert_public_txt(keys[i]);
    }
    size_t len = 0;
    uint8_t *buf = s_pack_members(m, n, holder, &len);
    zsock_send(actor, "sb", "MEMBERS", buf, len);
    free(buf);
    for (size_t i = 0; i < n; i++)
        zcert_destroy(&keys[i]);
}

/* A node gossiping with FANOUT peers, 2 s each. */
static zactor_t *
s_gossiper(zcert_t *cert, const char *name, int fanout)
{
    char *dbdir = pm_asprintf("%s/%s", s_dir, name);
    pm_sigsync_config_t c = {.cert = cert,
                             .dbdir = dbdir,
                             .fetcher = S_FETCHER,
                             .gid = -1,
                             .name = name,
                             .gossip_ms = 100,
                             .fanout = fanout,
                             .peer_timeout_ms = 2000};
    zactor_t *actor = pm_sigsync_new(&c);
    free(dbdir);
    cr_assert_not_null(actor);
    return actor;
}

static int64_t
s_destroy_ms(zactor_t **actor_p)
{
    int64_t start = zclock_mono();
    zactor_destroy(actor_p);
    return zclock_mono() - start;
}

/* A round meeting eight silent peers takes 16 s: $TERM must not wait for
 * it, only for the exchange under way (2 s). The bound is far from both,
 * so that a loaded machine does not make it flaky. */
Test(sigsync, term_during_a_gossip_round_is_prompt)
{
    zcert_t *cert = zcert_new();
    zactor_t *actor = s_gossiper(cert, "a", 8);
    s_send_silent_members(actor, 8, "nobody");
    zclock_sleep(300); /* the round is in its first exchange */
    int64_t ms = s_destroy_ms(&actor);
    cr_assert_lt(ms, 8000, "zactor_destroy took %" PRId64 " ms", ms);
    zcert_destroy(&cert);
}

/* A duty just given waits to hear what the peers hold before it asks the
 * mirror: when none answers (one silent peer, 2 s timeout), three peer
 * timeouts, and then it does ask. Elapsed time is measured from before the
 * duty was sent, so a loaded machine only makes it longer. */
Test(sigsync, new_duty_waits_for_the_peers_then_asks_the_mirror)
{
    zcert_t *cert = zcert_new();
    s_node_t d = {.name = "d", .actor = s_gossiper(cert, "d", 3)};
    s_send_policy(&d, s_mirror.url);
    int64_t start = zclock_mono();
    s_send_silent_members(d.actor, 1, "d");
    s_wait_version(&d, 1);
    int64_t ms = zclock_mono() - start;
    cr_expect_geq(ms, 3 * 2000, "the mirror was asked after %" PRId64 " ms",
                  ms);
    cr_expect_eq(testmirror_count(s_log, "GET /test.cvd 200 "), 1);
    zactor_destroy(&d.actor);
    if (d.st)
        pm__node_status__free_unpacked(d.st, NULL);
    zcert_destroy(&cert);
}

/* SIGTERM (zsys_interrupted) ends even the exchange under way. */
Test(sigsync, signal_during_a_peer_exchange_is_prompt)
{
    zcert_t *cert = zcert_new();
    zactor_t *actor = s_gossiper(cert, "a", 8);
    s_send_silent_members(actor, 8, "nobody");
    zclock_sleep(300);
    zsys_interrupted = 1;
    int64_t ms = s_destroy_ms(&actor);
    zsys_interrupted = 0;
    cr_assert_lt(ms, 8000, "zactor_destroy took %" PRId64 " ms", ms);
    zcert_destroy(&cert);
}

/* True when a message the owner got within MS of quiet was the actor's
 * end signal (czmq sends it when the actor's function returns). */
static bool
s_ended_by_itself(zactor_t *actor, int ms)
{
    bool ended = false;
    zpoller_t *p = zpoller_new(actor, NULL);
    while (zpoller_wait(p, ms)) {
        zmsg_t *msg = zmsg_recv(actor);
        ended = ended || (msg && zmsg_signal(msg) >= 0);
        zmsg_destroy(&msg);
    }
    zpoller_destroy(&p);
    return ended;
}

/* A signal stops the work, not the actor: it returns on its owner's
 * $TERM only (pm_actor.h). Before, it returned on SIGTERM by itself, and
 * the agent, which reads the pipe for STATUS, could take czmq's end
 * signal for one: its zactor_destroy then waited forever. */
Test(sigsync, a_signal_ends_the_work_not_the_actor)
{
    zcert_t *cert = zcert_new();
    zactor_t *actor = s_gossiper(cert, "a", 3);
    s_send_silent_members(actor, 1, "nobody");
    zclock_sleep(300); /* in a round's exchange */
    zsys_interrupted = 1;
    zclock_sleep(2500); /* past the exchange's timeout */
    zsys_interrupted = 0;
    cr_expect_not(s_ended_by_itself(actor, 500),
                  "the actor returned before its owner said $TERM");
    int64_t ms = s_destroy_ms(&actor);
    cr_assert_lt(ms, 8000, "zactor_destroy took %" PRId64 " ms", ms);
    zcert_destroy(&cert);
}

/* A mirror that hangs (libcurl would wait 60 s for a byte) does not
 * hold up $TERM. */
Test(sigsync, term_during_a_stalled_mirror_check_is_prompt)
{
    testmirror_status(s_www, "stall 120");
    zcert_t *cert = zcert_new();
    zactor_t *actor = s_gossiper(cert, "a", 1);
    s_node_t n = {.name = "a", .actor = actor};
    s_send_policy(&n, s_mirror.url);
    s_send_silent_members(actor, 0, "a");
    int64_t end = zclock_mono() + 10000;
    while (zclock_mono() < end && testmirror_count(s_log, "GET ") == 0)
        zclock_sleep(50);
    cr_assert_eq(testmirror_count(s_log, "GET /test.cvd 0 "), 1,
                 "the version check hangs");
    int64_t ms = s_destroy_ms(&actor);
    cr_assert_lt(ms, 30000, "zactor_destroy took %" PRId64 " ms", ms);
    zcert_destroy(&cert);
}

/* The thread czmq runs an actor in exits only after zactor_destroy has
 * returned. Held there (a slow zmq_close of its pipe), it must have given
 * back its OpenSSL state (a fetch's random generators) already: main's
 * exit runs OPENSSL_cleanup at once and would orphan it (LeakSanitizer:
 * "Direct leak ... CRYPTO_zalloc ... EVP_RAND_CTX_new"). */
static volatile int s_slow_close;
static pthread_t s_main_thread;

int
zmq_close(void *socket)
{
    static int (*real)(void *);
    if (!real)
        *(void **)&real = dlsym(RTLD_NEXT, "zmq_close");
    if (s_slow_close && !pthread_equal(pthread_self(), s_main_thread))
        zclock_sleep(300);
    return real(socket);
}

/* Needs LeakSanitizer: skipped without it by .disabled, which (unlike
 * cr_skip_test in the body, after which Criterion runs no .fini) never
 * starts the suite's mirror: a mirror left running held ctest's pipe of a
 * release build's test_sigsync open until its timeout. */
#if defined(__SANITIZE_ADDRESS__)
#define S_NO_LSAN false
#else
#define S_NO_LSAN true
#endif

Test(sigsync, actor_gives_back_openssl_state_before_it_ends,
     .disabled = S_NO_LSAN)
{
#if defined(__SANITIZE_ADDRESS__)
    s_node_t a = {0};
    s_node_start(&a, "a", false);
    s_node_t *all[] = {&a};
    s_send_policy(&a, s_mirror.url);
    s_send_members(all, 1, "a");
    s_wait_version(&a, 1); /* fetched: libfreshclam used RAND_bytes */
    s_main_thread = pthread_self();
    s_slow_close = 1;
    s_node_stop(&a);
    OPENSSL_cleanup();  /* what exit() does next */
    zclock_sleep(1000); /* the actor's thread ends */
    s_slow_close = 0;
    cr_assert_eq(__lsan_do_recoverable_leak_check(), 0,
                 "the actor's thread left OpenSSL state behind");
#endif
}
