/* test_ctlzap.c - the controller's ZAP handler: enrolled keys in, others
 * out, the metadata the controller reads (User-Id, name, role), and
 * clients/ changed by hand seen at the next handshake. Real CURVE sockets
 * over 127.0.0.1. */
#include <criterion/criterion.h>

#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pm_ctlzap.h"
#include "pm_keys.h"
#include "testdir.h"

static char s_dir[64], s_clients[96];
static zactor_t *s_zap;
static zcert_t *s_server;
static zsock_t *s_router;
static char s_endpoint[64];

static void
s_setup(void)
{
    strcpy(s_dir, "/tmp/pm_ctlzap_test.XXXXXX");
    cr_assert_not_null(mkdtemp(s_dir));
    snprintf(s_clients, sizeof s_clients, "%s/clients", s_dir);
    cr_assert_eq(mkdir(s_clients, 0755), 0);
    s_zap = zactor_new(pm_ctlzap, NULL);
    zstr_sendx(s_zap, "CURVE", s_clients, NULL);
    cr_assert_eq(zsock_wait(s_zap), 0, "the handler bound");
    s_server = zcert_new();
    s_router = zsock_new(ZMQ_ROUTER);
    zcert_apply(s_server, s_router);
    zsock_set_curve_server(s_router, 1);
    zsock_set_zap_domain(s_router, "test");
    int port = zsock_bind(s_router, "tcp://127.0.0.1:*");
    cr_assert_gt(port, 0);
    snprintf(s_endpoint, sizeof s_endpoint, "tcp://127.0.0.1:%d", port);
}

static void
s_teardown(void)
{
    zsock_destroy(&s_router);
    zcert_destroy(&s_server);
    zactor_destroy(&s_zap);
    testdir_remove(s_dir);
}

TestSuite(ctlzap, .init = s_setup, .fini = s_teardown);

/* Connects with CERT and sends "hi"; returns the frame the server got
 * within 1 s (caller destroys it), NULL when refused. */
static zframe_t *
s_try(zcert_t *cert)
{
    zsock_t *c = zsock_new(ZMQ_DEALER);
    zcert_apply(cert, c);
    zsock_set_curve_serverkey(c, zcert_public_txt(s_server));
    zsock_set_linger(c, 0);
    zsock_connect(c, "%s", s_endpoint);
    zstr_send(c, "hi");
    zframe_t *body = NULL;
    zpoller_t *p = zpoller_new(s_router, NULL);
    if (zpoller_wait(p, 1000) == s_router) {
        zframe_t *id = zframe_recv(s_router);
        body = zframe_recv(s_router);
        zframe_destroy(&id);
    }
    zpoller_destroy(&p);
    zsock_destroy(&c);
    return body;
}

Test(ctlzap, an_enrolled_key_comes_in_with_its_name_and_role)
{
    zcert_t *a = zcert_new();
    char *why = NULL;
    cr_assert_eq(pm_keys_enroll(s_clients, "mx1", PM_ROLE_AGENT,
                                zcert_public_txt(a), &why),
                 0);
    zstr_sendx(s_zap, "CURVE", s_clients, NULL);
    zsock_wait(s_zap);
    zframe_t *f = s_try(a);
    cr_assert_not_null(f, "an enrolled key is let in");
    cr_expect_str_eq(zframe_meta(f, "User-Id"), zcert_public_txt(a));
    cr_expect_str_eq(zframe_meta(f, "name"), "mx1");
    cr_expect_str_eq(zframe_meta(f, "role"), PM_ROLE_AGENT);
    zframe_destroy(&f);
    zcert_destroy(&a);
}

Test(ctlzap, a_key_not_enrolled_is_refused)
{
    zcert_t *a = zcert_new();
    zframe_t *f = s_try(a);
    cr_expect_null(f, "nothing from a key that is not enrolled");
    zframe_destroy(&f);
    zcert_destroy(&a);
}

/* No command: the handler sees the directory change by itself at the next
 * handshake, both ways. */
Test(ctlzap, clients_changed_by_hand_are_seen_at_the_next_handshake)
{
    zcert_t *a = zcert_new();
    char *why = NULL;
    usleep(20000); /* a new mtime, even on a coarse clock */
    cr_assert_eq(pm_keys_enroll(s_clients, "admin2", PM_ROLE_ADMIN,
                                zcert_public_txt(a), &why),
                 0);
    zframe_t *f = s_try(a);
    cr_assert_not_null(f, "enrolled by hand: let in");
    cr_expect_str_eq(zframe_meta(f, "role"), PM_ROLE_ADMIN);
    zframe_destroy(&f);
    usleep(20000);
    cr_assert_eq(pm_keys_withdraw(s_clients, "admin2", PM_ROLE_ADMIN, &why), 0);
    f = s_try(a);
    cr_expect_null(f, "withdrawn by hand: refused at the next connection");
    zframe_destroy(&f);
    zcert_destroy(&a);
}
