/* test_peer.c - pm_peer over real CurveZMQ sockets on 127.0.0.1: version
 * push-pull and gossip to the owner, pulls of ClamAV's signed test
 * database (both forms), a version not held, a tampered file, a hostile
 * server, unenrolled and removed keys, garbage from a member. */
#include <criterion/criterion.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pm_error.h"
#include "pm_mem.h"
#include "pm_file.h"
#include "pm_sigcdiff.h"
#include "pm_peer.h"
#include "pm_peerconn.h"
#include "testmirror.h"
#include "pm_sigfetch.h"
#include "pm_wire.h"
#include "testdir.h"

#define S_FIXTURES PM_SOURCE_DIR "/tests/data/clamav"
#define S_WAIT 5000 /* ms for an answer that must come */
#define S_NONE 600  /* ms to wait for one that must not */
/* the verifier's helper, as in the agent: privmta-sigfetch --verify-server */
#define S_HELPER PM_BUILD_DIR "/nodeagent/privmta-sigfetch"

static char s_dir[64], s_srv[96], s_cli[96];
static zcert_t *s_server, *s_client, *s_stranger;
static pm_sigverify_t *s_verifier;
static zactor_t *s_peer;
static char *s_endpoint;
static atomic_size_t *s_queued; /* the next service's gossip_queued */
static size_t s_conns_max;      /* the next service's conns_max */

static void
s_setup(void)
{
    s_conns_max = 0;
    strcpy(s_dir, "/tmp/pm-test-peer.XXXXXX");
    cr_assert_not_null(mkdtemp(s_dir));
    snprintf(s_srv, sizeof s_srv, "%s/srv", s_dir);
    snprintf(s_cli, sizeof s_cli, "%s/cli", s_dir);
    cr_assert_eq(mkdir(s_srv, 0700), 0);
    cr_assert_eq(mkdir(s_cli, 0700), 0);
    s_server = zcert_new();
    s_client = zcert_new();
    s_stranger = zcert_new();
    s_verifier = pm_sigverify_new(S_HELPER, NULL);
}

static void
s_teardown(void)
{
    zactor_destroy(&s_peer);
    zstr_free(&s_endpoint);
    zcert_destroy(&s_server);
    zcert_destroy(&s_client);
    zcert_destroy(&s_stranger);
    pm_sigverify_destroy(&s_verifier);
    testdir_remove(s_dir);
}

/* No Criterion .timeout: its watchdog leaks under LeakSanitizer; ctest's
 * TIMEOUT bounds the binary instead. */
TestSuite(peer, .init = s_setup, .fini = s_teardown);

/* ---- Fixtures ---------------------------------------------------------- */

/* DIR/AS: test-6.cvd as a .cld (the header, then the tar uncompressed, as
 * libfreshclam leaves a database it updated by CDIFFs), followed by
 * PAD_KIB KiB of zero blocks (the tar's end: a bigger file, still valid). */
static void
s_make_cld(const char *dir, const char *as, int pad_kib)
{
    char *cmd = pm_asprintf(
        "f=%s/test-6.cvd; { head -c 512 $f; tail -c +513 $f | gzip -dc; "
        "head -c %dK /dev/zero; } > %s/%s",
        S_FIXTURES, pad_kib, dir, as);
    cr_assert_eq(system(cmd), 0, "%s", cmd);
    free(cmd);
}

static bool
s_exists(const char *dir, const char *name)
{
    char *path = pm_asprintf("%s/%s", dir, name);
    bool there = access(path, F_OK) == 0;
    free(path);
    return there;
}

/* DIR holds exactly N entries (besides . and ..). */
static void
s_expect_entries(const char *dir, int n)
{
    char *cmd = pm_asprintf("test $(ls -A %s | wc -l) -eq %d", dir, n);
    cr_expect_eq(system(cmd), 0, "%s does not hold %d entries", dir, n);
    free(cmd);
}

/* ---- The service ------------------------------------------------------- */

static void
s_send_packed(zactor_t *a, const char *cmd, const ProtobufCMessage *m)
{
    size_t len = 0;
    uint8_t *buf = pm_wire_pack(m, &len);
    zstr_sendm(a, cmd);
    zframe_t *f = zframe_new(buf, len);
    zframe_send(&f, a, 0);
    free(buf);
}

/* Enrols the N certs as members "alpha", "beta", ... */
static void
s_members(zactor_t *a, zcert_t **certs, size_t n)
{
    static char *names[] = {"alpha", "beta", "gamma"};
    Pm__Member m[3], *mp[3];
    Pm__Publication pub = PM__PUBLICATION__INIT;
    pub.kind = PM__PUBLICATION__KIND__MEMBERS;
    for (size_t i = 0; i < n; i++) {
        pm__member__init(&m[i]);
        m[i].name = names[i];
        m[i].public_key = (char *)zcert_public_txt(certs[i]);
        m[i].live = true;
        mp[i] = &m[i];
    }
    pub.n_members = n;
    pub.members = mp;
    s_send_packed(a, "MEMBERS", &pub.base);
}

/* A VERSIONS message: database "test" at VERSION. Caller frees DB. */
static Pm__PeerMessage
s_versions(uint32_t version, Pm__SignatureDb **db)
{
    Pm__PeerMessage msg = PM__PEER_MESSAGE__INIT;
    *db = pm_malloc(sizeof **db);
    pm__signature_db__init(*db);
    (*db)->name = "test";
    (*db)->version = version;
    (*db)->source = "mirror http://127.0.0.1:1";
    msg.n_databases = 1;
    msg.databases = db;
    return msg;
}

/* The owner's HOLD: "test" at VERSION, in whichever of test.cld and
 * test.cvd s_srv has now (as pm_sigsync, which installs one and removes
 * the other), then a command answered: in once this returns. */
static void
s_hold(zactor_t *a, uint32_t version)
{
    Pm__SignatureDb *db;
    Pm__PeerMessage msg = s_versions(version, &db);
    char *files[] = {s_exists(s_srv, "test.cld")   ? "test.cld"
                     : s_exists(s_srv, "test.cvd") ? "test.cvd"
                                                   : NULL};
    pm_peer_hold(a, s_srv, &msg, files);
    zstr_send(a, "ENDPOINT");
    char *at = zstr_recv(a);
    zstr_free(&at);
    free(db);
}

/* Starts the service on s_srv with CLIENT enrolled (when not NULL). */
static void
s_start(zcert_t *client)
{
    pm_peer_config_t cfg = {.cert = s_server,
                            .bind = "tcp://127.0.0.1:0",
                            .dbdir = s_srv,
                            .name = "srv",
                            .gossip_queued = s_queued,
                            .conns_max = s_conns_max};
    s_peer = pm_peer_new(&cfg);
    cr_assert_not_null(s_peer);
    if (client)
        s_members(s_peer, &client, 1);
    /* commands are handled in order: the answer means MEMBERS is in */
    zstr_send(s_peer, "ENDPOINT");
    s_endpoint = zstr_recv(s_peer);
    cr_assert_not_null(s_endpoint);
    cr_assert(strncmp(s_endpoint, "tcp://127.0.0.1:", 16) == 0, "%s",
              s_endpoint);
}

/* The next event from the actor within MS, or NULL. */
static zmsg_t *
s_event(int ms)
{
    zpoller_t *p = zpoller_new(s_peer, NULL);
    zmsg_t *msg = zpoller_wait(p, ms) ? zmsg_recv(s_peer) : NULL;
    zpoller_destroy(&p);
    return msg;
}

static int
s_exchange(zcert_t *cert, uint32_t version, Pm__PeerMessage **theirs,
           int timeout_ms)
{
    Pm__SignatureDb *db;
    Pm__PeerMessage mine = s_versions(version, &db);
    char *why = NULL;
    int rc = pm_peer_exchange(cert, s_endpoint, zcert_public_txt(s_server),
                              &mine, theirs, timeout_ms, &why);
    if (rc != PM_OK)
        cr_log_info("exchange: %s", why);
    free(why);
    free(db);
    return rc;
}

static int
s_pull(const char *file, uint32_t version, pm_sigfile_t *info, char **why)
{
    *why = NULL;
    return pm_peer_pull(s_client, s_endpoint, zcert_public_txt(s_server), s_cli,
                        file, version, s_verifier, S_WAIT, info, why);
}

/* ---- Push-pull --------------------------------------------------------- */

/* A signal does not end the service: its owner's $TERM does (pm_actor.h).
 * Before, it returned on SIGTERM, and the signature actor, which reads
 * the pipe for GOSSIP, took czmq's end signal for a message and then
 * waited in zactor_destroy forever (an agent that never exited). */
Test(peer, a_signal_does_not_end_the_service)
{
    s_start(s_client);
    zsys_interrupted = 1;
    s_hold(s_peer, 6); /* wakes the service, as any command would */
    zclock_sleep(300);
    zsys_interrupted = 0;
    zmsg_t *msg = s_event(S_NONE);
    cr_expect_null(msg, "the service sent %s on a signal",
                   msg && zmsg_signal(msg) >= 0 ? "its end" : "something");
    zmsg_destroy(&msg);
    zstr_send(s_peer, "ENDPOINT");
    char *again = zstr_recv(s_peer);
    cr_expect_str_eq(again ? again : "", s_endpoint,
                     "the service answers its owner after the signal");
    free(again);
}

Test(peer, exchange_answers_with_hold_and_gossips)
{
    s_start(s_client);
    Pm__PeerMessage *theirs = NULL;
    /* before HOLD the service says it has nothing to tell yet */
    cr_assert_eq(s_exchange(s_client, 1, &theirs, S_WAIT), PM_OK);
    cr_expect_eq(theirs->kind, PM__PEER_MESSAGE__KIND__ERROR);
    pm__peer_message__free_unpacked(theirs, NULL);
    zmsg_t *ev = s_event(S_WAIT);
    cr_assert_not_null(ev);
    zmsg_destroy(&ev);

    s_hold(s_peer, 6);
    cr_assert_eq(s_exchange(s_client, 1, &theirs, S_WAIT), PM_OK);
    cr_assert_eq(theirs->kind, PM__PEER_MESSAGE__KIND__VERSIONS_REPLY);
    cr_assert_eq(theirs->n_databases, 1);
    cr_expect_str_eq(theirs->databases[0]->name, "test");
    cr_expect_eq(theirs->databases[0]->version, 6);
    pm__peer_message__free_unpacked(theirs, NULL);

    ev = s_event(S_WAIT);
    cr_assert_not_null(ev, "no GOSSIP event");
    cr_assert_eq(zmsg_size(ev), 3);
    char *kind = zmsg_popstr(ev), *name = zmsg_popstr(ev);
    cr_expect_str_eq(kind, "GOSSIP");
    cr_expect_str_eq(name, "alpha");
    zframe_t *f = zmsg_pop(ev);
    Pm__PeerMessage *pushed = NULL;
    cr_assert_eq(pm_wire_unpack_peer_message(zframe_data(f), zframe_size(f),
                                             &pushed, NULL),
                 PM_OK);
    cr_expect_eq(pushed->kind, PM__PEER_MESSAGE__KIND__VERSIONS);
    cr_expect_eq(pushed->databases[0]->version, 1);
    pm__peer_message__free_unpacked(pushed, NULL);
    zframe_destroy(&f);
    free(kind);
    free(name);
    zmsg_destroy(&ev);
}

/* While the owner does not take the GOSSIP frames (busy pulling), what
 * the service queues for it stops at PM_PEER_GOSSIP_QUEUED bytes: a member
 * pushing 1 MiB VERSIONS in a loop cost gigabytes before. Once the owner
 * took them, gossip goes through again. */
Test(peer, gossip_queued_for_a_busy_owner_is_bounded)
{
    static atomic_size_t queued;
    s_queued = &queued;
    s_start(s_client);
    s_hold(s_peer, 6);
    enum { N = 1000 };
    static Pm__Cooldown cds[N];
    static Pm__Cooldown *cdp[N];
    static char mirror[1000];
    memset(mirror, 'm', sizeof mirror - 1);
    for (size_t i = 0; i < N; i++) {
        pm__cooldown__init(&cds[i]);
        cds[i].mirror = mirror;
        cds[i].http_status = 429;
        cds[i].until = time(NULL) + 60;
        cdp[i] = &cds[i];
    }
    Pm__PeerMessage big = PM__PEER_MESSAGE__INIT;
    big.cooldowns = cdp;
    big.n_cooldowns = N;
    for (int i = 0; i < 10; i++) {
        Pm__PeerMessage *theirs = NULL;
        char *why = NULL;
        cr_assert_eq(pm_peer_exchange(s_client, s_endpoint,
                                      zcert_public_txt(s_server), &big, &theirs,
                                      S_WAIT, &why),
                     PM_OK, "%s", why ? why : "");
        pm__peer_message__free_unpacked(theirs, NULL);
    }
    size_t got = 0, bytes = 0;
    zmsg_t *ev;
    while ((ev = s_event(300))) {
        zframe_t *f = zmsg_last(ev);
        bytes += zframe_size(f);
        got++;
        zmsg_destroy(&ev);
    }
    cr_expect_gt(got, 0);
    cr_expect_lt(got, 10, "%zu of 10 queued", got);
    cr_expect_leq(bytes, PM_PEER_GOSSIP_QUEUED);
    cr_expect_eq(atomic_load(&queued), bytes);
    atomic_store(&queued, 0); /* the owner took them */
    Pm__PeerMessage *theirs = NULL;
    cr_assert_eq(s_exchange(s_client, 1, &theirs, S_WAIT), PM_OK);
    pm__peer_message__free_unpacked(theirs, NULL);
    ev = s_event(S_WAIT);
    cr_expect_not_null(ev, "gossip goes through again");
    zmsg_destroy(&ev);
    s_queued = NULL;
}

/* Several peers at once: the one that answers is heard, one that never
 * will (a port nobody serves) and one that refuses our key leave a NULL,
 * and the call ends within its timeout. */
Test(peer, exchange_many_hears_who_answers)
{
    s_start(s_client);
    s_hold(s_peer, 6);
    Pm__SignatureDb *db;
    Pm__PeerMessage mine = s_versions(1, &db);
    zcert_t *other = zcert_new();
    pm_peer_target_t to[] = {
        {"tcp://127.0.0.1:1", zcert_public_txt(s_server)},
        {s_endpoint, zcert_public_txt(s_server)},
        {s_endpoint, zcert_public_txt(other)}, /* not its key: no answer */
    };
    Pm__PeerMessage *theirs[3];
    size_t got = pm_peer_exchange_many(s_client, to, 3, &mine, theirs, S_WAIT);
    cr_assert_eq(got, 1);
    cr_assert_null(theirs[0]);
    cr_assert_not_null(theirs[1]);
    cr_assert_null(theirs[2]);
    cr_assert_eq(theirs[1]->kind, PM__PEER_MESSAGE__KIND__VERSIONS_REPLY);
    cr_expect_eq(theirs[1]->databases[0]->version, 6);
    pm__peer_message__free_unpacked(theirs[1], NULL);
    zmsg_t *ev = s_event(S_WAIT);
    cr_assert_not_null(ev, "the server heard our VERSIONS");
    zmsg_destroy(&ev);
    zcert_destroy(&other);
    free(db);
}

/* A kept link answers exchange after exchange; one to a peer that will
 * not answer (not its key) gives NULL each time and does not disturb it. */
Test(peer, kept_links_answer_again)
{
    s_start(s_client);
    s_hold(s_peer, 6);
    Pm__SignatureDb *db;
    Pm__PeerMessage mine = s_versions(1, &db);
    zcert_t *other = zcert_new();
    pm_peer_link_t *links[2] = {
        pm_peer_link_new(s_client, s_endpoint, zcert_public_txt(s_server)),
        pm_peer_link_new(s_client, s_endpoint, zcert_public_txt(other))};
    cr_assert(links[0] && links[1]);
    cr_assert(
        pm_peer_link_is(links[0], s_endpoint, zcert_public_txt(s_server)));
    cr_assert_not(
        pm_peer_link_is(links[0], s_endpoint, zcert_public_txt(other)));
    cr_assert_null(pm_peer_link_new(s_client, s_endpoint, "not a key"));
    for (int round = 0; round < 3; round++) {
        Pm__PeerMessage *theirs[2];
        cr_assert_eq(pm_peer_exchange_links(links, 2, &mine, theirs, S_WAIT), 1,
                     "round %d", round);
        cr_assert_not_null(theirs[0]);
        cr_assert_null(theirs[1]);
        cr_expect_eq(theirs[0]->databases[0]->version, 6);
        pm__peer_message__free_unpacked(theirs[0], NULL);
        zmsg_t *ev = s_event(S_WAIT);
        cr_assert_not_null(ev, "round %d: the server heard us", round);
        zmsg_destroy(&ev);
    }
    pm_peer_link_destroy(&links[0]);
    pm_peer_link_destroy(&links[1]);
    cr_assert_null(links[0]);
    zcert_destroy(&other);
    free(db);
}

/* A kept link refused because the service had not heard of it yet (the
 * controller's MEMBERS reach nodes at different moments) gets in once the
 * service knows its key. Meanwhile it is dead (libzmq gives the
 * connection up): an exchange over it gives up within a slice of its wait
 * instead of waiting out the timeout for an answer that cannot come, and
 * the next neither waits in the send (a gossip round stalled 2 s each
 * time it picked such a link). */
Test(peer, a_link_refused_before_members_gets_in_later)
{
    s_start(NULL);
    s_hold(s_peer, 6);
    Pm__SignatureDb *db;
    Pm__PeerMessage mine = s_versions(1, &db);
    pm_peer_link_t *link =
        pm_peer_link_new(s_client, s_endpoint, zcert_public_txt(s_server));
    Pm__PeerMessage *theirs = NULL;
    for (int i = 0; i < 2; i++) {
        int64_t start = zclock_mono();
        size_t got = pm_peer_exchange_links(&link, 1, &mine, &theirs, S_WAIT);
        int64_t ms = zclock_mono() - start;
        cr_assert_eq(got, 0, "refused: not a member yet");
        cr_expect_lt(ms, S_WAIT / 2,
                     "exchange %d over the refused link took %" PRId64
                     " ms of its %d",
                     i + 1, ms, S_WAIT);
    }
    s_members(s_peer, &s_client, 1);
    zstr_send(s_peer, "ENDPOINT"); /* answered once MEMBERS is in */
    char *endpoint = zstr_recv(s_peer);
    zstr_free(&endpoint);
    size_t got = 0;
    for (int round = 0; round < 6 && !got; round++)
        got = pm_peer_exchange_links(&link, 1, &mine, &theirs, S_NONE);
    cr_assert_eq(got, 1, "the link got in once the service knew its key");
    cr_expect_eq(theirs->databases[0]->version, 6);
    pm__peer_message__free_unpacked(theirs, NULL);
    pm_peer_link_destroy(&link);
    free(db);
}

/* A CURVE server with CERT on a free loopback port, for an actor that
 * plays a peer: signals PIPE, then sends it the endpoint. */
static zsock_t *
s_test_server(zsock_t *pipe, zcert_t *cert)
{
    zsock_t *router = zsock_new(ZMQ_ROUTER);
    zcert_apply(cert, router);
    zsock_set_curve_server(router, 1);
    zsock_set_linger(router, 0);
    int rc = zsock_bind(router, "tcp://127.0.0.1:0");
    (void)rc; /* a failure shows as an endpoint nobody answers on */
    zsock_signal(pipe, 0);
    char *ep = zsock_last_endpoint(router);
    zstr_send(pipe, ep);
    free(ep);
    return router;
}

/* A gossip server that answers each VERSIONS with version = its count of
 * asks, the first after 600 ms when SLOW; ECHO: with the asker's seq, as
 * a pm_peer service does (else as an older agent). Tells its pipe, on
 * "IDS", whether every ask came on one connection. */
typedef struct {
    zcert_t *cert;
    bool echo, slow;
} s_slow_args_t;

static void
s_slow(zsock_t *pipe, void *args)
{
    s_slow_args_t *a = args;
    zsock_t *router = s_test_server(pipe, a->cert);
    zpoller_t *p = zpoller_new(pipe, router, NULL);
    zframe_t *first_id = NULL;
    bool one_connection = true;
    uint32_t asks = 0;
    for (;;) {
        void *which = zpoller_wait(p, -1);
        if (which == pipe) {
            char *cmd = zstr_recv(pipe);
            bool ids = cmd && strcmp(cmd, "IDS") == 0;
            free(cmd);
            if (!ids)
                break; /* $TERM */
            zsock_send(pipe, "i", one_connection);
            continue;
        }
        zmsg_t *m = zmsg_recv(router);
        zframe_t *id = zmsg_first(m), *body = zmsg_next(m);
        Pm__PeerMessage *in = NULL;
        if (body &&
            pm_wire_unpack_peer_message(zframe_data(body), zframe_size(body),
                                        &in, NULL) == PM_OK) {
            if (!first_id)
                first_id = zframe_dup(id);
            one_connection &= zframe_eq(first_id, id);
            if (++asks == 1 && a->slow)
                zclock_sleep(600);
            Pm__SignatureDb *db;
            Pm__PeerMessage out = s_versions(asks, &db);
            out.kind = PM__PEER_MESSAGE__KIND__VERSIONS_REPLY;
            out.seq = a->echo ? in->seq : 0;
            size_t len = 0;
            uint8_t *buf = pm_wire_pack(&out.base, &len);
            void *h = zsock_resolve(router);
            zmq_send(h, zframe_data(id), zframe_size(id), ZMQ_SNDMORE);
            zmq_send(h, buf, len, 0);
            free(buf);
            free(db);
            pm__peer_message__free_unpacked(in, NULL);
        }
        zmsg_destroy(&m);
    }
    zframe_destroy(&first_id);
    zpoller_destroy(&p);
    zsock_destroy(&router);
}

/* Two exchanges on one link, the first answered too late when SLOW:
 * returns the version the second got (0: none), and whether both asks
 * came on one connection. */
static uint32_t
s_two_asks(bool echo, bool slow, bool *one_connection)
{
    s_slow_args_t args = {.cert = s_server, .echo = echo, .slow = slow};
    zactor_t *srv = zactor_new(s_slow, &args);
    char *ep = zstr_recv(srv);
    pm_peer_link_t *link =
        pm_peer_link_new(s_client, ep, zcert_public_txt(s_server));
    Pm__SignatureDb *db;
    Pm__PeerMessage mine = s_versions(1, &db);
    Pm__PeerMessage *theirs = NULL;
    size_t first = pm_peer_exchange_links(&link, 1, &mine, &theirs, 200);
    cr_assert_eq(first, slow ? 0 : 1, "the first answer came in time: %d",
                 !slow);
    if (first)
        pm__peer_message__free_unpacked(theirs, NULL);
    uint32_t got = 0;
    if (pm_peer_exchange_links(&link, 1, &mine, &theirs, S_WAIT) == 1) {
        got = theirs->databases[0]->version;
        pm__peer_message__free_unpacked(theirs, NULL);
    }
    zstr_send(srv, "IDS");
    int one = 0;
    zsock_recv(srv, "i", &one);
    *one_connection = one;
    pm_peer_link_destroy(&link);
    zactor_destroy(&srv);
    free(ep);
    free(db);
    return got;
}

Test(peer, a_late_answer_is_dropped_and_the_link_kept)
{
    bool one = false;
    cr_assert_eq(s_two_asks(true, true, &one), 2,
                 "the second exchange got the answer to the second ask, "
                 "not the late first one");
    cr_assert(one, "the link kept its connection");
}

Test(peer, an_agent_that_does_not_echo_is_still_answered)
{
    bool one = false;
    cr_assert_eq(s_two_asks(false, false, &one), 2);
    cr_assert(one, "on the one connection");
}

/* The service started holding version 6, and a link to it. */
static pm_peer_link_t *
s_start_linked(void)
{
    s_start(s_client);
    s_hold(s_peer, 6);
    return pm_peer_link_new(s_client, s_endpoint, zcert_public_txt(s_server));
}

Test(peer, the_service_echoes_seq)
{
    pm_peer_link_t *link = s_start_linked();
    Pm__SignatureDb *db;
    Pm__PeerMessage mine = s_versions(1, &db);
    for (uint64_t round = 1; round <= 3; round++) {
        Pm__PeerMessage *theirs = NULL;
        cr_assert_eq(pm_peer_exchange_links(&link, 1, &mine, &theirs, S_WAIT),
                     1);
        cr_expect_eq(theirs->seq, round, "the answer names the ask");
        cr_expect_eq(theirs->databases[0]->version, 6, "what it holds");
        pm__peer_message__free_unpacked(theirs, NULL);
    }
    pm_peer_link_destroy(&link);
    free(db);
}

/* ---- Connections ------------------------------------------------------- */

/* How many of the N links answer one exchange, all at once. */
static size_t
s_answered(pm_peer_link_t **links, size_t n, int timeout_ms)
{
    Pm__SignatureDb *db;
    Pm__PeerMessage mine = s_versions(1, &db);
    Pm__PeerMessage *theirs[8] = {NULL};
    cr_assert(n <= 8);
    size_t got = pm_peer_exchange_links(links, n, &mine, theirs, timeout_ms);
    for (size_t i = 0; i < n; i++)
        if (theirs[i])
            pm__peer_message__free_unpacked(theirs[i], NULL);
    free(db);
    return got;
}

/* One exchange as CERT, waiting S_WAIT; its answer dropped. */
static int
s_exchange_once(zcert_t *cert)
{
    Pm__PeerMessage *theirs = NULL;
    int rc = s_exchange(cert, 1, &theirs, S_WAIT);
    if (theirs)
        pm__peer_message__free_unpacked(theirs, NULL);
    return rc;
}

/* A plain TCP connection to the service that says nothing. */
static int
s_dial_silent(void)
{
    const char *port = strrchr(s_endpoint, ':');
    struct sockaddr_in at = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)atoi(port + 1)),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert(fd >= 0);
    cr_assert_eq(connect(fd, (struct sockaddr *)&at, sizeof at), 0);
    return fd;
}

/* True when the service ends connection FD within MS (its greeting read
 * and dropped on the way). */
static bool
s_ended(int fd, int ms)
{
    int64_t end = zclock_mono() + ms;
    for (;;) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int64_t left = end - zclock_mono();
        if (left <= 0 || poll(&p, 1, (int)left) != 1)
            return false;
        char buf[256];
        if (recv(fd, buf, sizeof buf, 0) <= 0)
            return true;
    }
}

/* A DEALER of CERT's to the service that does not reconnect, its end
 * watched: *EVENTS gets the monitor's DISCONNECTED. */
static zsock_t *
s_watched_dealer(zcert_t *cert, zsock_t **events, size_t i)
{
    zsock_t *s = zsock_new(ZMQ_DEALER);
    zcert_apply(cert, s);
    zsock_set_curve_serverkey(s, zcert_public_txt(s_server));
    zsock_set_linger(s, 0);
    zsock_set_reconnect_ivl(s, -1);
    char ep[64];
    snprintf(ep, sizeof ep, "inproc://test-peer-dealer-%zu", i);
    cr_assert_eq(
        zmq_socket_monitor(zsock_resolve(s), ep, ZMQ_EVENT_DISCONNECTED), 0);
    *events = zsock_new(ZMQ_PAIR);
    cr_assert_eq(zsock_connect(*events, "%s", ep), 0);
    cr_assert_eq(zsock_connect(s, "%s", s_endpoint), 0);
    return s;
}

/* One VERSIONS on S, answered within MS. */
static bool
s_asks(zsock_t *s, int ms)
{
    Pm__SignatureDb *db;
    Pm__PeerMessage mine = s_versions(1, &db);
    size_t len = 0;
    uint8_t *buf = pm_wire_pack(&mine.base, &len);
    zsock_set_rcvtimeo(s, ms);
    zmsg_t *answer = zmq_send(zsock_resolve(s), buf, len, 0) == (int)len
                         ? zmsg_recv(s)
                         : NULL;
    bool ok = answer != NULL;
    zmsg_destroy(&answer);
    free(buf);
    free(db);
    return ok;
}

/* EVENTS (s_watched_dealer's) told within MS that the connection ended. */
static bool
s_dropped(zsock_t *events, int ms)
{
    zpoller_t *p = zpoller_new(events, NULL);
    bool got = zpoller_wait(p, ms) == events;
    zpoller_destroy(&p);
    return got;
}

/* Before, a member was answered on every connection it opened, each with
 * its own queue of up to PM_PEER_HWM chunks of 1 MiB: K connections asking
 * without reading cost the root agent K x 16 MiB. Now speaking on one more
 * than PM_PEER_CONNS_PER_MEMBER closes its connection that spoke least
 * recently (one that died unseen, for an honest member). */
Test(peer, a_member_holds_a_few_connections_at_once)
{
    zcert_t *other = zcert_new();
    s_start(NULL);
    zcert_t *both[] = {s_client, other};
    s_members(s_peer, both, 2);
    s_hold(s_peer, 6);
    enum { N = PM_PEER_CONNS_PER_MEMBER + 2 };
    zsock_t *d[N], *ev[N];
    for (size_t i = 0; i < N; i++) {
        d[i] = s_watched_dealer(s_client, &ev[i], i);
        cr_assert(s_asks(d[i], S_WAIT), "connection %zu not answered", i);
    }
    for (size_t i = 0; i < N; i++)
        if (i < N - PM_PEER_CONNS_PER_MEMBER)
            cr_expect(s_dropped(ev[i], S_WAIT), "connection %zu kept", i);
        else
            cr_expect_not(s_dropped(ev[i], S_NONE), "connection %zu closed", i);
    cr_expect(s_asks(d[N - 1], S_WAIT), "the newest not answered again");
    cr_expect_eq(s_exchange_once(other), PM_OK,
                 "another member is still answered");
    for (size_t i = 0; i < N; i++) {
        zsock_destroy(&d[i]);
        zsock_destroy(&ev[i]);
    }
    zcert_destroy(&other);
}

/* The service started for at most 3 connections, and 3 that say nothing
 * (SILENT) holding them, oldest first. */
static void
s_start_full_of_silent(int silent[3])
{
    s_conns_max = 3;
    s_start(s_client);
    s_hold(s_peer, 6);
    for (size_t i = 0; i < 3; i++)
        silent[i] = s_dial_silent();
}

/* Before, connections that never spoke (a stalled handshake, a member that
 * dials and waits) were held without bound: descriptors of the root agent.
 * Now a service at its bound closes them to take a new one. */
Test(peer, silent_connections_make_room_when_the_service_is_full)
{
    int silent[3];
    s_start_full_of_silent(silent);
    cr_expect_not(s_ended(silent[0], S_NONE),
                  "a silent connection closed while there is room");
    zclock_sleep(PM_PEER_SILENT_MS);
    cr_expect_eq(s_exchange_once(s_client), PM_OK,
                 "a member is answered at the bound");
    for (size_t i = 0; i < 3; i++) {
        cr_expect(s_ended(silent[i], S_WAIT), "silent connection %zu kept", i);
        close(silent[i]);
    }
}

/* At the bound, someone reconnecting faster than PM_PEER_SILENT_MS must
 * not keep the members out: the oldest silent connection goes. */
Test(peer, a_full_service_closes_the_oldest_silent_connection)
{
    int silent[3];
    s_start_full_of_silent(silent);
    cr_expect_eq(s_exchange_once(s_client), PM_OK,
                 "a member is answered at the bound");
    cr_expect(s_ended(silent[0], S_WAIT), "the oldest silent one kept");
    for (size_t i = 1; i < 3; i++)
        cr_expect_not(s_ended(silent[i], S_NONE), "silent %zu closed", i);
    for (size_t i = 0; i < 3; i++)
        close(silent[i]);
}

/* At the bound, connections that spoke stay: the one that does not goes,
 * even the newest. */
Test(peer, a_full_service_keeps_the_connections_that_spoke)
{
    s_conns_max = 2;
    pm_peer_link_t *links[] = {s_start_linked(), NULL};
    links[1] =
        pm_peer_link_new(s_client, s_endpoint, zcert_public_txt(s_server));
    cr_assert_eq(s_answered(links, 2, S_WAIT), 2);
    int newest = s_dial_silent();
    cr_expect(s_ended(newest, S_WAIT), "a silent connection past the bound");
    cr_expect_eq(s_answered(links, 2, S_WAIT), 2, "the links closed");
    close(newest);
    pm_peer_link_destroy(&links[0]);
    pm_peer_link_destroy(&links[1]);
}

Test(peer, unenrolled_key_refused)
{
    s_start(s_client);
    s_hold(s_peer, 6);
    Pm__PeerMessage *theirs = NULL;
    cr_expect_eq(s_exchange(s_stranger, 1, &theirs, S_NONE), PM_ETIMEDOUT);
    cr_expect_null(theirs);
    cr_expect_null(s_event(S_NONE / 2), "the service reported a stranger");
    /* the wrong server key: no handshake either */
    Pm__SignatureDb *db;
    Pm__PeerMessage mine = s_versions(1, &db);
    cr_expect_eq(pm_peer_exchange(s_client, s_endpoint,
                                  zcert_public_txt(s_stranger), &mine, &theirs,
                                  S_NONE, NULL),
                 PM_ETIMEDOUT);
    cr_expect_eq(pm_peer_exchange(s_client, s_endpoint, "short", &mine, &theirs,
                                  S_NONE, NULL),
                 PM_EINVAL);
    free(db);
}

/* No member list yet: nobody gets in. */
Test(peer, nobody_before_members)
{
    s_start(NULL);
    s_hold(s_peer, 6);
    Pm__PeerMessage *theirs = NULL;
    cr_expect_eq(s_exchange(s_client, 1, &theirs, S_NONE), PM_ETIMEDOUT);
}

/* Sends raw FRAMES (N of them) on SOCK. */
static void
s_raw(zsock_t *sock, const char *const *frames, size_t n)
{
    for (size_t i = 0; i < n; i++)
        zmq_send(zsock_resolve(sock), frames[i], strlen(frames[i]),
                 i + 1 < n ? ZMQ_SNDMORE : 0);
}

static zsock_t *
s_dealer(zcert_t *cert)
{
    zsock_t *d = zsock_new(ZMQ_DEALER);
    zcert_apply(cert, d);
    zsock_set_curve_serverkey(d, zcert_public_txt(s_server));
    zsock_set_linger(d, 0);
    zsock_set_rcvtimeo(d, S_WAIT);
    cr_assert_eq(zsock_connect(d, "%s", s_endpoint), 0);
    return d;
}

static void
s_send_versions(zsock_t *d)
{
    Pm__SignatureDb *db;
    Pm__PeerMessage mine = s_versions(1, &db);
    size_t len = 0;
    uint8_t *buf = pm_wire_pack(&mine.base, &len);
    zmq_send(zsock_resolve(d), buf, len, 0);
    free(buf);
    free(db);
}

Test(peer, garbage_from_member_does_not_stop_service)
{
    s_start(s_client);
    s_hold(s_peer, 6);
    zsock_t *d = s_dealer(s_client);
    const char *garbage[] = {"\xff\xff\xff\xff not protobuf"};
    const char *two[] = {"a", "b"};
    s_raw(d, garbage, 1);
    s_raw(d, two, 2);
    /* a CHUNK sent to a server, and a GET for a path */
    Pm__PeerMessage odd = PM__PEER_MESSAGE__INIT;
    odd.kind = PM__PEER_MESSAGE__KIND__CHUNK;
    odd.file = "test.cvd";
    odd.version = 6;
    size_t len = 0;
    uint8_t *buf = pm_wire_pack(&odd.base, &len);
    zmq_send(zsock_resolve(d), buf, len, 0);
    free(buf);
    odd.kind = PM__PEER_MESSAGE__KIND__GET;
    odd.file = "../srv.cvd";
    buf = pm_wire_pack(&odd.base, &len);
    zmq_send(zsock_resolve(d), buf, len, 0);
    free(buf);
    /* then a real request on the same connection is answered */
    s_send_versions(d);
    zmsg_t *reply = zmsg_recv(d);
    cr_assert_not_null(reply, "no answer after garbage");
    zframe_t *f = zmsg_first(reply);
    Pm__PeerMessage *m = NULL;
    cr_assert_eq(
        pm_wire_unpack_peer_message(zframe_data(f), zframe_size(f), &m, NULL),
        PM_OK);
    cr_expect_eq(m->kind, PM__PEER_MESSAGE__KIND__VERSIONS_REPLY);
    pm__peer_message__free_unpacked(m, NULL);
    zmsg_destroy(&reply);
    /* the only event is the one real push */
    zmsg_t *ev = s_event(S_WAIT);
    cr_assert_not_null(ev);
    char *kind = zmsg_popstr(ev);
    cr_expect_str_eq(kind, "GOSSIP");
    free(kind);
    zmsg_destroy(&ev);
    cr_expect_null(s_event(S_NONE / 2));
    zsock_destroy(&d);
    /* and a fresh client too */
    Pm__PeerMessage *theirs = NULL;
    cr_assert_eq(s_exchange(s_client, 1, &theirs, S_WAIT), PM_OK);
    pm__peer_message__free_unpacked(theirs, NULL);
}

/* A member dropped from the list is not answered, even on the connection
 * it opened while it was one. */
Test(peer, removed_member_ignored)
{
    s_start(s_client);
    s_hold(s_peer, 6);
    zsock_t *d = s_dealer(s_client);
    s_send_versions(d);
    zmsg_t *reply = zmsg_recv(d);
    cr_assert_not_null(reply);
    zmsg_destroy(&reply);
    s_members(s_peer, &s_stranger, 1);
    zstr_send(s_peer, "ENDPOINT"); /* a barrier: MEMBERS is in */
    zmsg_t *ev;
    while ((ev = s_event(S_NONE / 2)) != NULL) {
        char *first = zmsg_popstr(ev);
        bool endpoint = strncmp(first, "tcp://", 6) == 0;
        free(first);
        zmsg_destroy(&ev);
        if (endpoint)
            break;
    }
    zsock_set_rcvtimeo(d, S_NONE);
    s_send_versions(d);
    reply = zmsg_recv(d);
    cr_expect_null(reply, "a removed member was answered");
    zmsg_destroy(&reply);
    zsock_destroy(&d);
}

/* Several services in one process (a benchmark runs a thousand), each
 * letting in its own members only: the one ZAP handler answers from the
 * table of the service a handshake is for. It stops with the last and
 * starts again with the next; a bad address is refused; beside czmq's
 * zauth (which binds the same ZAP endpoint) no service starts. */
Test(peer, services_share_the_zap_handler_each_with_its_members)
{
    s_start(s_client); /* "srv": s_client is a member */
    pm_peer_config_t cfg = {.cert = s_server,
                            .bind = "tcp://127.0.0.1:0",
                            .dbdir = s_srv,
                            .name = "two"};
    zactor_t *two = pm_peer_new(&cfg);
    cr_assert_not_null(two, "a second service in the process");
    s_members(two, &s_stranger, 1); /* "two": only s_stranger */
    s_hold(two, 6);
    zstr_send(two, "ENDPOINT");
    char *two_at = zstr_recv(two);
    s_hold(s_peer, 6);
    Pm__PeerMessage *theirs = NULL;
    cr_expect_eq(s_exchange(s_client, 1, &theirs, S_WAIT), PM_OK,
                 "srv lets its member in");
    pm__peer_message__free_unpacked(theirs, NULL);
    theirs = NULL;
    cr_expect_eq(s_exchange(s_stranger, 1, &theirs, S_NONE), PM_ETIMEDOUT,
                 "srv does not let two's member in");

    Pm__SignatureDb *db;
    Pm__PeerMessage mine = s_versions(1, &db);
    char *why = NULL;
    cr_expect_eq(pm_peer_exchange(s_stranger, two_at,
                                  zcert_public_txt(s_server), &mine, &theirs,
                                  S_WAIT, &why),
                 PM_OK, "two lets its member in: %s", why ? why : "");
    if (theirs)
        pm__peer_message__free_unpacked(theirs, NULL);
    theirs = NULL;
    PM_FREE(&why);
    cr_expect_eq(pm_peer_exchange(s_client, two_at, zcert_public_txt(s_server),
                                  &mine, &theirs, S_NONE, &why),
                 PM_ETIMEDOUT, "two does not let srv's member in");
    PM_FREE(&why);
    free(db);
    free(two_at);

    /* the handler outlives the first service and stops with the last */
    zactor_destroy(&s_peer);
    zstr_free(&s_endpoint);
    zactor_destroy(&two);
    zactor_t *auth = zactor_new(zauth, NULL);
    cr_expect_null(pm_peer_new(&cfg), "a service beside zauth");
    zactor_destroy(&auth);
    s_start(s_client);
    s_hold(s_peer, 6);
    cr_assert_eq(s_exchange(s_client, 1, &theirs, S_WAIT), PM_OK);
    pm__peer_message__free_unpacked(theirs, NULL);
    cfg.bind = "tcp://256.0.0.1:1";
    cr_expect_null(pm_peer_new(&cfg), "bound a bad address");
}

/* ---- Pulls ------------------------------------------------------------- */

Test(peer, pull_into_empty_dir)
{
    testmirror_copy("test-6.cvd", s_srv, "test.cvd", false);
    s_start(s_client);
    s_hold(s_peer, 6);
    pm_sigfile_t info = {0};
    char *why = NULL;
    cr_assert_eq(s_pull("test.cvd", 6, &info, &why), PM_OK, "%s", why);
    cr_expect_eq(info.version, 6);
    cr_expect_gt(info.sigs, 0);
    cr_expect_gt(info.built, 0);
    char *path = pm_asprintf("%s/test.cvd", s_cli);
    struct stat st;
    cr_assert_eq(stat(path, &st), 0);
    cr_expect_eq(st.st_mode & 07777, 0644, "mode %o", st.st_mode & 07777);
    unsigned v = 0;
    cr_expect_eq(pm_sigfetch_verify(path, "test", &v, NULL, NULL, &why), PM_OK,
                 "%s", why);
    cr_expect_eq(v, 6);
    cr_expect_not(s_exists(s_cli, PM_SIGSTORE_SCRATCH), "scratch dir left");
    s_expect_entries(s_cli, 1);
    free(path);
}

/* A pull over a gossip link: the answer to an exchange that timed out
 * comes on the same connection in the middle of the pull and is skipped
 * (it used to be a broken protocol there: the agent would have distrusted
 * an honest peer). A pull that fails leaves the link usable: it dials
 * again. */
Test(peer, pull_over_a_kept_link)
{
    testmirror_copy("test-6.cvd", s_srv, "test.cvd", false);
    pm_peer_link_t *link = s_start_linked();
    Pm__SignatureDb *db;
    Pm__PeerMessage mine = s_versions(1, &db);
    Pm__PeerMessage *theirs = NULL;
    cr_assert_eq(pm_peer_exchange_links(&link, 1, &mine, &theirs, 0), 0,
                 "no time to answer");
    zmsg_t *ev = s_event(S_WAIT); /* the service got it, and answered */
    cr_assert_not_null(ev, "the exchange reached the service");
    zmsg_destroy(&ev);
    char *why = NULL;
    cr_expect_eq(pm_peer_link_pull(link, s_cli, "test.cvd", 7, s_verifier,
                                   S_WAIT, NULL, &why),
                 PM_ENOTFOUND, "%s", why ? why : "");
    PM_FREE(&why);
    pm_sigfile_t info = {0};
    cr_assert_eq(pm_peer_link_pull(link, s_cli, "test.cvd", 6, s_verifier,
                                   S_WAIT, &info, &why),
                 PM_OK, "%s", why ? why : "");
    cr_expect_eq(info.version, 6);
    s_expect_entries(s_cli, 1);
    free(why);
    pm_peer_link_destroy(&link);
    free(db);
}

/* CDIFFs from a peer's kept directory, and the header of the version
 * they make (512 bytes of its file, not the whole): what privmta-sigfetch
 * applies. One not kept is PM_ENOTFOUND, and nothing half-written stays. */
Test(peer, pull_cdiffs_and_the_header)
{
    s_make_cld(s_srv, "test.cld", 2 * 1024); /* two chunks: one asked */
    char *kept = pm_asprintf("%s/%s", s_srv, PM_SIGCDIFF_KEPT);
    cr_assert_eq(mkdir(kept, 0700), 0);
    for (int v = 3; v <= 6; v++) {
        char *name = pm_asprintf("test-%d.cdiff", v);
        testmirror_copy(name, kept, name, false);
        free(name);
    }
    s_start(s_client);
    s_hold(s_peer, 6);
    const char *key = zcert_public_txt(s_server);
    char *why = NULL;
    cr_assert_eq(pm_peer_pull_cdiffs(s_client, s_endpoint, key, "test", 2, 6,
                                     s_cli, S_WAIT, &why),
                 PM_OK, "%s", why);
    struct stat st;
    char *head = pm_asprintf("%s/test.head", s_cli);
    cr_assert_eq(stat(head, &st), 0);
    cr_assert_eq(st.st_size, 512);
    cr_assert_eq(st.st_mode & 0777, 0644);
    for (int v = 3; v <= 6; v++) {
        char *name = pm_asprintf("test-%d.cdiff", v);
        char *a = pm_asprintf("%s/%s", kept, name),
             *b = pm_asprintf("%s/%s", s_cli, name);
        size_t la = 0, lb = 0;
        char *da = NULL, *db = NULL;
        cr_assert_eq(pm_file_read(a, 1 << 20, 0, &da, &la, NULL), PM_OK);
        cr_assert_eq(pm_file_read(b, 1 << 20, 0, &db, &lb, NULL), PM_OK);
        cr_assert(la == lb && memcmp(da, db, la) == 0, "%s is the same", name);
        free(da);
        free(db);
        free(a);
        free(b);
        free(name);
    }
    /* from 1: test-2.cdiff is not kept there */
    cr_assert_eq(unlink(head), 0);
    cr_assert_eq(pm_peer_pull_cdiffs(s_client, s_endpoint, key, "test", 1, 6,
                                     s_cli, S_WAIT, &why),
                 PM_ENOTFOUND);
    cr_log_info("%s", why);
    cr_assert_not(s_exists(s_cli, "test-2.cdiff"), "nothing half-written");
    /* more versions than are ever kept is not asked */
    cr_assert_eq(pm_peer_pull_cdiffs(s_client, s_endpoint, key, "test", 1,
                                     2 + PM_SIGFETCH_CDIFF_STEPS, s_cli, S_WAIT,
                                     &why),
                 PM_EINVAL);
    free(why);
    free(head);
    free(kept);
}

/* A .cvd pulled over a .cld, then a .cld (several chunks) over the .cvd:
 * each time one form is left. */
Test(peer, pull_replaces_the_other_form)
{
    testmirror_copy("test-6.cvd", s_srv, "test.cvd", false);
    testmirror_copy("test-1.cvd", s_cli, "test.cld", false);
    s_start(s_client);
    s_hold(s_peer, 6);
    char *why = NULL;
    cr_assert_eq(s_pull("test.cvd", 6, NULL, &why), PM_OK, "%s", why);
    cr_expect(s_exists(s_cli, "test.cvd"));
    cr_expect_not(s_exists(s_cli, "test.cld"), "the other form was kept");

    /* 3 MiB of padding: four chunks, several in flight */
    s_make_cld(s_srv, "test.cld", 3 * 1024);
    char *cld = pm_asprintf("%s/test.cld", s_srv);
    cr_assert_eq(pm_sigfetch_verify(cld, "test", NULL, NULL, NULL, &why), PM_OK,
                 "fixture: %s", why);
    free(cld);
    s_hold(s_peer, 6); /* now in test.cld */
    pm_sigfile_t info = {0};
    cr_assert_eq(s_pull("test.cld", 6, &info, &why), PM_OK, "%s", why);
    cr_expect_eq(info.version, 6);
    cr_expect(s_exists(s_cli, "test.cld"));
    cr_expect_not(s_exists(s_cli, "test.cvd"), "the other form was kept");
    s_expect_entries(s_cli, 1);
}

Test(peer, version_not_held_is_not_found)
{
    testmirror_copy("test-6.cvd", s_srv, "test.cvd", false);
    s_start(s_client);
    s_hold(s_peer, 6);
    char *why = NULL;
    cr_expect_eq(s_pull("test.cvd", 5, NULL, &why), PM_ENOTFOUND);
    cr_expect_not_null(strstr(why, "version 6 is held"), "%s", why);
    free(why);
    cr_expect_eq(s_pull("daily.cld", 5, NULL, &why), PM_ENOTFOUND);
    free(why);
    /* a link is never served, whatever it points at */
    char *link = pm_asprintf("%s/main.cvd", s_srv);
    cr_assert_eq(symlink("test.cvd", link), 0);
    cr_expect_eq(s_pull("main.cvd", 6, NULL, &why), PM_ENOTFOUND);
    free(why);
    free(link);
    s_expect_entries(s_cli, 0);
    /* and what is not a database file is not asked for */
    cr_expect_eq(s_pull("../srv/test.cvd", 6, NULL, &why), PM_EINVAL);
    free(why);
    cr_expect_eq(s_pull("test.cvd", 0, NULL, &why), PM_EINVAL);
    free(why);
}

/* A file replaced by rename (a new version installed) since the owner's
 * last hold is not served under the version held, even with the same
 * bytes: until the owner says what it holds now. No header is read. */
Test(peer, replaced_file_not_served_until_held_again)
{
    testmirror_copy("test-6.cvd", s_srv, "test.cvd", false);
    s_start(s_client);
    s_hold(s_peer, 6);
    testmirror_copy("test-6.cvd", s_srv, "test.new", false);
    char *from = pm_asprintf("%s/test.new", s_srv),
         *to = pm_asprintf("%s/test.cvd", s_srv);
    cr_assert_eq(rename(from, to), 0);
    char *why = NULL;
    cr_expect_eq(s_pull("test.cvd", 6, NULL, &why), PM_ENOTFOUND);
    cr_log_info("%s", why);
    PM_FREE(&why);
    s_expect_entries(s_cli, 0);
    s_hold(s_peer, 6);
    cr_expect_eq(s_pull("test.cvd", 6, NULL, &why), PM_OK, "%s",
                 why ? why : "");
    free(why);
    free(from);
    free(to);
}

Test(peer, tampered_file_refused)
{
    testmirror_copy("test-6.cvd", s_srv, "test.cvd", true);
    s_start(s_client);
    s_hold(s_peer, 6);
    char *why = NULL;
    cr_expect_eq(s_pull("test.cvd", 6, NULL, &why), PM_EPROTO);
    cr_expect_not_null(strstr(why, "signature"), "%s", why);
    free(why);
    s_expect_entries(s_cli, 0);
}

/* A client with the wrong certificate times out; nothing is written. */
Test(peer, pull_unenrolled_times_out)
{
    testmirror_copy("test-6.cvd", s_srv, "test.cvd", false);
    s_start(s_client);
    char *why = NULL;
    cr_expect_eq(pm_peer_pull(s_stranger, s_endpoint,
                              zcert_public_txt(s_server), s_cli, "test.cvd", 6,
                              s_verifier, S_NONE, NULL, &why),
                 PM_ETIMEDOUT);
    free(why);
    s_expect_entries(s_cli, 0);
}

/* ---- A hostile server -------------------------------------------------- */

/* What the bare ROUTER answers to every GET. */
typedef enum {
    H_OFFSET,  /* a chunk at the wrong offset */
    H_TOTAL,   /* a total past PM_WIRE_DATABASE_MAX */
    H_GARBAGE, /* bytes that are no PeerMessage */
    H_FRAMES,  /* two frames */
    H_SHORT,   /* fewer bytes than the chunk must hold */
    H_GROWS,   /* a total that changes between chunks */
    H_FAKE,    /* a whole file of the right size that is no database */
    H_SILENT,  /* nothing, ever */
    H_TRICKLE, /* 8 MiB, a chunk every 1.5 s: each within the timeout */
} s_hostile_t;

static void
s_hostile_answer(zsock_t *router, zframe_t *id, const Pm__PeerMessage *get,
                 s_hostile_t how)
{
    static uint8_t data[PM_WIRE_CHUNK_MAX];
    memset(data, 'A', sizeof data);
    Pm__PeerMessage c = PM__PEER_MESSAGE__INIT;
    c.kind = PM__PEER_MESSAGE__KIND__CHUNK;
    c.file = get->file;
    c.version = get->version;
    c.offset = get->offset;
    c.total = 2 * PM_WIRE_CHUNK_MAX;
    c.data = (ProtobufCBinaryData){.len = PM_WIRE_CHUNK_MAX, .data = data};
    if (how == H_OFFSET)
        c.offset += 5;
    if (how == H_TOTAL)
        c.total = PM_WIRE_DATABASE_MAX + 1;
    if (how == H_SHORT)
        c.data.len = 100;
    if (how == H_GROWS && get->offset > 0)
        c.total += PM_WIRE_CHUNK_MAX;
    if (how == H_SILENT)
        return;
    if (how == H_TRICKLE) { /* 1 MiB each 1.5 s, of the most it may say */
        c.total = PM_WIRE_DATABASE_MAX;
        zclock_sleep(1500);
    }
    size_t len = 0;
    uint8_t *buf = pm_wire_pack(&c.base, &len);
    void *h = zsock_resolve(router);
    zmq_send(h, zframe_data(id), zframe_size(id), ZMQ_SNDMORE);
    if (how == H_GARBAGE)
        zmq_send(h, "\x0a\xff\xff\xff\xff", 5, 0);
    else if (how == H_FRAMES)
        zmq_send(h, buf, len, ZMQ_SNDMORE), zmq_send(h, buf, len, 0);
    else
        zmq_send(h, buf, len, 0);
    free(buf);
}

typedef struct {
    zcert_t *cert;
    s_hostile_t how;
} s_hostile_args_t;

static void
s_hostile(zsock_t *pipe, void *args)
{
    s_hostile_args_t *a = args;
    zsock_t *router = s_test_server(pipe, a->cert);
    zpoller_t *p = zpoller_new(pipe, router, NULL);
    for (;;) {
        void *which = zpoller_wait(p, -1);
        if (which != router)
            break; /* $TERM */
        zmsg_t *m = zmsg_recv(router);
        zframe_t *id = zmsg_first(m), *body = zmsg_next(m);
        Pm__PeerMessage *get = NULL;
        if (body &&
            pm_wire_unpack_peer_message(zframe_data(body), zframe_size(body),
                                        &get, NULL) == PM_OK) {
            s_hostile_answer(router, id, get, a->how);
            pm__peer_message__free_unpacked(get, NULL);
        }
        zmsg_destroy(&m);
    }
    zpoller_destroy(&p);
    zsock_destroy(&router);
}

static int
s_pull_hostile_within(s_hostile_t how, int timeout_ms, char **why)
{
    s_hostile_args_t args = {.cert = s_server, .how = how};
    zactor_t *h = zactor_new(s_hostile, &args);
    char *ep = zstr_recv(h);
    *why = NULL;
    int rc = pm_peer_pull(s_client, ep, zcert_public_txt(s_server), s_cli,
                          "test.cvd", 6, s_verifier, timeout_ms, NULL, why);
    zactor_destroy(&h);
    free(ep);
    return rc;
}

static int
s_pull_hostile(s_hostile_t how, char **why)
{
    return s_pull_hostile_within(how, S_WAIT, why);
}

static int64_t s_cancel_at;

static bool
s_cancel_after(void *arg)
{
    (void)arg;
    return zclock_mono() >= s_cancel_at;
}

/* A holder answering each chunk just within the timeout cannot keep a
 * pull for an hour: past one timeout plus a second a MiB that came it
 * ends (before, a MiB it said the file had: 35 minutes here). And the
 * thread's owner can end a pull that waits (pm_peer_set_cancel), as
 * $TERM does the agent's. */
Test(peer, slow_or_silent_holder_does_not_hold_the_puller)
{
    char *why = NULL;
    cr_expect_eq(s_pull_hostile_within(H_TRICKLE, 2000, &why), PM_ETIMEDOUT,
                 "%s", why);
    cr_expect(why && strstr(why, "came slower than 1024 KiB/s"), "%s",
              why ? why : "-");
    free(why);
    s_expect_entries(s_cli, 0);

    s_cancel_at = zclock_mono() + 300;
    pm_peer_set_cancel(s_cancel_after, NULL);
    cr_expect_eq(s_pull_hostile_within(H_SILENT, 60000, &why), PM_ETIMEDOUT,
                 "%s", why);
    cr_expect(why && strstr(why, "interrupted"), "%s", why ? why : "-");
    free(why);
    pm_peer_set_cancel(NULL, NULL);
    s_expect_entries(s_cli, 0);
}

Test(peer, hostile_server_refused)
{
    static const s_hostile_t hows[] = {H_OFFSET, H_TOTAL, H_GARBAGE, H_FRAMES,
                                       H_SHORT,  H_GROWS, H_FAKE};
    for (size_t i = 0; i < sizeof hows / sizeof hows[0]; i++) {
        char *why = NULL;
        cr_expect_eq(s_pull_hostile(hows[i], &why), PM_EPROTO, "case %zu: %s",
                     i, why);
        cr_log_info("case %zu: %s", i, why);
        free(why);
        s_expect_entries(s_cli, 0);
    }
}

/* ---- pm_sigfetch_verify ------------------------------------------------- */

Test(peer, sigfetch_verify)
{
    char *good = pm_asprintf("%s/test-6.cvd", S_FIXTURES);
    unsigned v = 0, sigs = 0;
    time_t built = 0;
    char *why = NULL;
    cr_assert_eq(pm_sigfetch_verify(good, "test", &v, &sigs, &built, &why),
                 PM_OK, "%s", why);
    cr_expect_eq(v, 6);
    cr_expect_gt(sigs, 0);
    cr_expect_gt(built, 0);
    testmirror_copy("test-6.cvd", s_cli, "bad.cvd", true);
    char *bad = pm_asprintf("%s/bad.cvd", s_cli);
    v = 0;
    cr_expect_eq(pm_sigfetch_verify(bad, "test", &v, NULL, NULL, &why),
                 PM_EPROTO);
    cr_expect_eq(v, 0, "output set on failure");
    cr_expect_not_null(strstr(why, bad), "%s", why);
    free(why);
    free(bad);
    /* signed by ClamAV, but another database: a CVD header names none, so
     * before, a genuine daily.cvd passed as main.cvd (at daily's version,
     * far above main's: every real main refused after it) */
    why = NULL;
    cr_expect_eq(pm_sigfetch_verify(good, "main", &v, NULL, NULL, &why),
                 PM_EPROTO);
    cr_expect(why && strstr(why, "is database test, not main"), "%s",
              why ? why : "-");
    free(why);
    why = NULL;
    s_make_cld(s_cli, "daily.cld", 0);
    char *cld = pm_asprintf("%s/daily.cld", s_cli);
    cr_expect_eq(pm_sigfetch_verify(cld, "daily", NULL, NULL, NULL, &why),
                 PM_EPROTO, "a .cld of test passed as daily");
    cr_expect(why && strstr(why, "is database test, not daily"), "%s",
              why ? why : "-");
    free(why);
    free(cld);
    free(good);
}
