/* test_ctl_client.c - pm_ctl_client with a list of controllers: fake
 * controllers (CURVE ROUTER sockets sharing one keypair, in-process) that
 * answer as a primary or as a standby, and endpoints where nothing
 * listens. The client passes over standbys and dead endpoints, sticks to
 * the one that answered, and when nothing answers names every endpoint. */
#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "pm_ctl_client.h"
#include "pm_error.h"
#include "pm_keys.h"
#include "pm_wire.h"
#include "testdir.h"

/* Small, so that a dead endpoint costs little. */
#define S_TIMEOUT_MS 300

static char s_dir[64];
static zcert_t *s_cert; /* the controllers' keypair, shared */
static char s_key[128], s_server_key[128];

static void
s_setup(void)
{
    strcpy(s_dir, "/tmp/pm_ctl_client_test.XXXXXX");
    cr_assert_not_null(mkdtemp(s_dir));
    char *why = NULL;
    s_cert = pm_keys_controller(s_dir, &why);
    cr_assert_not_null(s_cert, "%s", why ? why : "");
    snprintf(s_key, sizeof s_key, "%s/keys/admin.cert_secret", s_dir);
    snprintf(s_server_key, sizeof s_server_key, "%s/keys/controller.cert",
             s_dir);
}

/* The sockets that hold the dead endpoints' ports (s_dead_endpoint). */
static int s_dead_fds[8];
static size_t s_n_dead;

static void
s_teardown(void)
{
    zcert_destroy(&s_cert);
    testdir_remove(s_dir);
    while (s_n_dead)
        close(s_dead_fds[--s_n_dead]);
    /* stop czmq's zsys, so that LeakSanitizer sees only the test's own */
    zsys_shutdown();
}

TestSuite(ctl_client, .init = s_setup, .fini = s_teardown);

/* ---- fake controllers --------------------------------------------------- */

#define S_PRIMARY "tcp://primary.example:7420"

typedef struct {
    bool standby;
    char endpoint[64]; /* where it listens, once started */
    atomic_int requests;
} s_server_t;

/* Answers as a controller would: a primary with OK (head 42, epoch 3); a
 * standby PING with OK and standby set, anything else with NOT_PRIMARY. */
static void
s_reply(zsock_t *router, s_server_t *srv)
{
    zmsg_t *msg = zmsg_recv(router);
    if (!msg)
        return;
    zframe_t *id = zmsg_pop(msg);
    zframe_t *empty = zmsg_pop(msg);
    zframe_t *body = zmsg_pop(msg);
    Pm__Request *req = NULL;
    char *why = NULL;
    int rc = body ? pm_wire_unpack_request(zframe_data(body), zframe_size(body),
                                           &req, &why)
                  : PM_EPROTO;
    free(why);
    atomic_fetch_add(&srv->requests, 1);
    Pm__Response resp = PM__RESPONSE__INIT;
    resp.epoch = 3;
    resp.head = 42;
    if (rc != PM_OK) {
        resp.status = PM__RESPONSE__STATUS__BAD_REQUEST;
        resp.error = "malformed request";
    } else if (srv->standby) {
        resp.standby = true;
        resp.primary = S_PRIMARY;
        if (req->op != PM__REQUEST__OP__PING) {
            resp.status = PM__RESPONSE__STATUS__NOT_PRIMARY;
            resp.error = "this controller is a standby";
        }
    }
    size_t len = 0;
    uint8_t *buf = pm_wire_pack(&resp.base, &len);
    zmsg_t *out = zmsg_new();
    zmsg_append(out, &id);
    zmsg_append(out, &empty);
    zmsg_addmem(out, buf, len);
    zmsg_send(&out, router);
    free(buf);
    zframe_destroy(&body);
    if (req)
        pm__request__free_unpacked(req, NULL);
    zmsg_destroy(&msg);
}

static void
s_server_actor(zsock_t *pipe, void *arg)
{
    s_server_t *srv = arg;
    zsock_t *router = zsock_new(ZMQ_ROUTER);
    zcert_apply(s_cert, router);
    zsock_set_curve_server(router, 1);
    zsock_set_linger(router, 0);
    int port = zsock_bind(router, "tcp://127.0.0.1:*");
    snprintf(srv->endpoint, sizeof srv->endpoint, "tcp://127.0.0.1:%d", port);
    zsock_signal(pipe, port > 0 ? 0 : 1);
    zpoller_t *poller = zpoller_new(pipe, router, NULL);
    while (port > 0) {
        void *which = zpoller_wait(poller, -1);
        if (which == router) {
            s_reply(router, srv);
            continue;
        }
        char *cmd = which == pipe ? zstr_recv(pipe) : NULL;
        bool term = !cmd || strcmp(cmd, "$TERM") == 0;
        zstr_free(&cmd);
        if (term)
            break;
    }
    zpoller_destroy(&poller);
    zsock_destroy(&router);
}

static zactor_t *
s_server_start(s_server_t *srv, bool standby)
{
    srv->standby = standby;
    atomic_init(&srv->requests, 0);
    srv->endpoint[0] = '\0';
    zactor_t *actor = zactor_new(s_server_actor, srv);
    cr_assert_not_null(actor);
    cr_assert(srv->endpoint[0], "fake controller did not bind");
    return actor;
}

/* An endpoint where nothing listens: a port below the kernel's ephemeral
 * range (32768 and up, where a connection to a port nothing listens on
 * can connect to itself by TCP simultaneous open, and so "answer"), held
 * bound but not listening until the test ends, so that a connection is
 * refused and no other process (tests run two at a time) can start
 * listening there meanwhile. */
static void
s_dead_endpoint(char *buf, size_t size)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert_geq(fd, 0);
    int port = -1;
    for (int i = 0; i < 1000 && port < 0; i++) {
        int p = 20000 + (int)((getpid() * 7919 + i * 104729) % 12000);
        struct sockaddr_in sa = {.sin_family = AF_INET,
                                 .sin_port = htons((uint16_t)p),
                                 .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        if (bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0)
            port = p;
    }
    cr_assert_gt(port, 0);
    cr_assert_lt(s_n_dead, sizeof s_dead_fds / sizeof s_dead_fds[0]);
    s_dead_fds[s_n_dead++] = fd;
    snprintf(buf, size, "tcp://127.0.0.1:%d", port);
}

/* ---- helpers ------------------------------------------------------------ */

static pm_ctl_client_t *
s_client(const char *endpoints)
{
    char *why = NULL;
    pm_ctl_client_t *c =
        pm_ctl_client_new(endpoints, s_key, s_server_key, S_TIMEOUT_MS, &why);
    cr_assert_not_null(c, "%s", why ? why : "");
    return c;
}

/* Sends OP; returns the call's result, the reply in *resp and why in
 * *why (either may be NULL after). */
static int
s_call(pm_ctl_client_t *c, Pm__Request__Op op, Pm__Response **resp, char **why)
{
    Pm__Request req = PM__REQUEST__INIT;
    req.op = op;
    req.expect_rev = -1;
    *resp = NULL;
    *why = NULL;
    return pm_ctl_client_call(c, &req, resp, why);
}

/* ---- tests -------------------------------------------------------------- */

Test(ctl_client, standby_first_reaches_primary_and_sticks)
{
    s_server_t a, b;
    zactor_t *standby = s_server_start(&a, true);
    zactor_t *primary = s_server_start(&b, false);
    char list[160];
    snprintf(list, sizeof list, "%s,%s", a.endpoint, b.endpoint);
    pm_ctl_client_t *c = s_client(list);
    cr_expect_null(pm_ctl_client_endpoint(c), "no answer yet");

    Pm__Response *r = NULL;
    char *why = NULL;
    cr_assert_eq(s_call(c, PM__REQUEST__OP__NODES, &r, &why), PM_OK, "%s",
                 why ? why : "");
    cr_expect_null(why, "%s", why);
    cr_expect_eq(r->status, PM__RESPONSE__STATUS__OK);
    cr_expect_eq(r->head, 42);
    cr_expect_not(r->standby);
    cr_assert_not_null(pm_ctl_client_endpoint(c));
    cr_expect_str_eq(pm_ctl_client_endpoint(c), b.endpoint);
    cr_expect_eq(atomic_load(&a.requests), 1, "the standby was asked first");
    cr_expect_eq(atomic_load(&b.requests), 1);
    pm__response__free_unpacked(r, NULL);

    /* the next call goes straight to the primary */
    cr_assert_eq(s_call(c, PM__REQUEST__OP__NODES, &r, &why), PM_OK, "%s",
                 why ? why : "");
    cr_expect_eq(r->status, PM__RESPONSE__STATUS__OK);
    cr_expect_eq(atomic_load(&a.requests), 1, "the standby was not asked");
    cr_expect_eq(atomic_load(&b.requests), 2);
    cr_expect_str_eq(pm_ctl_client_endpoint(c), b.endpoint);
    pm__response__free_unpacked(r, NULL);
    free(why);

    pm_ctl_client_destroy(&c);
    cr_expect_null(c);
    zactor_destroy(&standby);
    zactor_destroy(&primary);
}

Test(ctl_client, whitespace_and_commas_separate)
{
    s_server_t a, b;
    zactor_t *standby = s_server_start(&a, true);
    zactor_t *primary = s_server_start(&b, false);
    char list[160];
    snprintf(list, sizeof list, " %s ,\n\t%s, ", a.endpoint, b.endpoint);
    pm_ctl_client_t *c = s_client(list);
    Pm__Response *r = NULL;
    char *why = NULL;
    cr_assert_eq(s_call(c, PM__REQUEST__OP__SHOW, &r, &why), PM_OK, "%s",
                 why ? why : "");
    cr_expect_eq(r->status, PM__RESPONSE__STATUS__OK);
    cr_expect_str_eq(pm_ctl_client_endpoint(c), b.endpoint);
    pm__response__free_unpacked(r, NULL);
    free(why);
    pm_ctl_client_destroy(&c);
    zactor_destroy(&standby);
    zactor_destroy(&primary);
}

Test(ctl_client, dead_first_reaches_live_one)
{
    s_server_t b;
    zactor_t *primary = s_server_start(&b, false);
    char dead[64], list[160];
    s_dead_endpoint(dead, sizeof dead);
    snprintf(list, sizeof list, "%s,%s", dead, b.endpoint);
    pm_ctl_client_t *c = s_client(list);
    Pm__Response *r = NULL;
    char *why = NULL;
    int64_t start = zclock_mono();
    cr_assert_eq(s_call(c, PM__REQUEST__OP__NODES, &r, &why), PM_OK, "%s",
                 why ? why : "");
    cr_expect_geq(zclock_mono() - start, S_TIMEOUT_MS - 10,
                  "the dead one was given its timeout");
    cr_expect_null(why, "a dead endpoint is no warning: %s", why);
    cr_expect_eq(r->status, PM__RESPONSE__STATUS__OK);
    cr_expect_str_eq(pm_ctl_client_endpoint(c), b.endpoint);
    pm__response__free_unpacked(r, NULL);

    /* sticks to the live one: no timeout this time */
    start = zclock_mono();
    cr_assert_eq(s_call(c, PM__REQUEST__OP__NODES, &r, &why), PM_OK, "%s",
                 why ? why : "");
    cr_expect_lt(zclock_mono() - start, S_TIMEOUT_MS);
    pm__response__free_unpacked(r, NULL);
    free(why);
    pm_ctl_client_destroy(&c);
    zactor_destroy(&primary);
}

Test(ctl_client, all_dead_names_every_endpoint)
{
    char dead1[64], dead2[64], list[160];
    s_dead_endpoint(dead1, sizeof dead1);
    s_dead_endpoint(dead2, sizeof dead2);
    snprintf(list, sizeof list, "%s, %s", dead1, dead2);
    pm_ctl_client_t *c = s_client(list);
    Pm__Response *r = NULL;
    char *why = NULL;
    cr_expect_eq(s_call(c, PM__REQUEST__OP__NODES, &r, &why), PM_ETIMEDOUT);
    cr_expect_null(r);
    cr_assert_not_null(why);
    cr_expect_not_null(strstr(why, dead1), "%s", why);
    cr_expect_not_null(strstr(why, dead2), "%s", why);
    cr_expect_not_null(strstr(why, "; "), "%s", why);
    cr_expect_null(pm_ctl_client_endpoint(c));
    free(why);
    pm_ctl_client_destroy(&c);
}

Test(ctl_client, one_dead_endpoint_says_what_it_always_said)
{
    char dead[64];
    s_dead_endpoint(dead, sizeof dead);
    pm_ctl_client_t *c = s_client(dead);
    Pm__Response *r = NULL;
    char *why = NULL;
    cr_expect_eq(s_call(c, PM__REQUEST__OP__NODES, &r, &why), PM_ETIMEDOUT);
    cr_assert_not_null(why);
    char expect[256];
    snprintf(expect, sizeof expect,
             "cannot reach the controller at %s: no answer within %d ms", dead,
             S_TIMEOUT_MS);
    cr_expect_eq(strncmp(why, expect, strlen(expect)), 0, "%s", why);
    free(why);
    pm_ctl_client_destroy(&c);
}

Test(ctl_client, bad_address_is_skipped_and_named)
{
    char dead[64], list[160];
    s_dead_endpoint(dead, sizeof dead);
    snprintf(list, sizeof list, "nonsense://x,%s", dead);
    pm_ctl_client_t *c = s_client(list);
    Pm__Response *r = NULL;
    char *why = NULL;
    cr_expect_eq(s_call(c, PM__REQUEST__OP__NODES, &r, &why), PM_ETIMEDOUT,
                 "the error of the last one tried");
    cr_assert_not_null(why);
    cr_expect_not_null(strstr(why, "bad controller address 'nonsense://x'"),
                       "%s", why);
    cr_expect_not_null(strstr(why, dead), "%s", why);
    free(why);
    pm_ctl_client_destroy(&c);
}

Test(ctl_client, only_a_standby_answers)
{
    s_server_t a;
    zactor_t *standby = s_server_start(&a, true);
    char dead[64], list[160];
    s_dead_endpoint(dead, sizeof dead);
    snprintf(list, sizeof list, "%s,%s", a.endpoint, dead);
    pm_ctl_client_t *c = s_client(list);
    Pm__Response *r = NULL;
    char *why = NULL;
    cr_assert_eq(s_call(c, PM__REQUEST__OP__ROLLOUT_STATUS, &r, &why), PM_OK);
    cr_expect_eq(r->status, PM__RESPONSE__STATUS__NOT_PRIMARY);
    cr_expect(r->standby);
    cr_expect_eq(r->epoch, 3);
    cr_expect_str_eq(r->primary, S_PRIMARY);
    cr_expect_str_eq(pm_ctl_client_endpoint(c), a.endpoint);
    /* and why the other gave no answer */
    cr_assert_not_null(why);
    cr_expect_not_null(strstr(why, dead), "%s", why);
    pm__response__free_unpacked(r, NULL);
    free(why);
    pm_ctl_client_destroy(&c);
    zactor_destroy(&standby);
}

Test(ctl_client, single_standby_answers_as_itself)
{
    s_server_t a;
    zactor_t *standby = s_server_start(&a, true);
    pm_ctl_client_t *c = s_client(a.endpoint);
    Pm__Response *r = NULL;
    char *why = NULL;
    cr_assert_eq(s_call(c, PM__REQUEST__OP__SHOW, &r, &why), PM_OK);
    cr_expect_null(why);
    cr_expect_eq(r->status, PM__RESPONSE__STATUS__NOT_PRIMARY);
    pm__response__free_unpacked(r, NULL);
    /* PING: the standby's own state */
    cr_assert_eq(s_call(c, PM__REQUEST__OP__PING, &r, &why), PM_OK);
    cr_expect_eq(r->status, PM__RESPONSE__STATUS__OK);
    cr_expect(r->standby);
    cr_expect_str_eq(r->primary, S_PRIMARY);
    cr_expect_str_eq(pm_ctl_client_endpoint(c), a.endpoint);
    pm__response__free_unpacked(r, NULL);
    free(why);
    pm_ctl_client_destroy(&c);
    zactor_destroy(&standby);
}

Test(ctl_client, ping_in_a_list_finds_the_primary)
{
    s_server_t a, b;
    zactor_t *standby = s_server_start(&a, true);
    zactor_t *primary = s_server_start(&b, false);
    char list[160];
    snprintf(list, sizeof list, "%s %s", a.endpoint, b.endpoint);
    pm_ctl_client_t *c = s_client(list);
    Pm__Response *r = NULL;
    char *why = NULL;
    cr_assert_eq(s_call(c, PM__REQUEST__OP__PING, &r, &why), PM_OK);
    cr_expect_eq(r->status, PM__RESPONSE__STATUS__OK);
    cr_expect_not(r->standby);
    cr_expect_str_eq(pm_ctl_client_endpoint(c), b.endpoint);
    pm__response__free_unpacked(r, NULL);
    free(why);
    pm_ctl_client_destroy(&c);
    zactor_destroy(&standby);
    zactor_destroy(&primary);
}
