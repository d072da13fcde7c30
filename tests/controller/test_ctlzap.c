/* test_ctlzap.c - the controller's ZAP handler: enrolled keys in, on the
 * socket of their role, others out, the metadata the controller reads
 * (User-Id, name, role), and clients/ changed by hand seen at the next
 * handshake. Real CURVE sockets over 127.0.0.1. */
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
/* the controller's two sockets: its API's and the agents' */
static zsock_t *s_router, *s_agents;
static char s_endpoint[64], s_agents_ep[64];

/* A CURVE server socket of ZAP domain DOMAIN on 127.0.0.1; its endpoint
 * into EP. */
static zsock_t *
s_server_socket(const char *domain, char *ep, size_t size)
{
    zsock_t *s = zsock_new(ZMQ_ROUTER);
    zcert_apply(s_server, s);
    zsock_set_curve_server(s, 1);
    zsock_set_zap_domain(s, domain);
    int port = zsock_bind(s, "tcp://127.0.0.1:*");
    cr_assert_gt(port, 0);
    snprintf(ep, size, "tcp://127.0.0.1:%d", port);
    return s;
}

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
    s_router =
        s_server_socket(PM_CTLZAP_DOMAIN_API, s_endpoint, sizeof s_endpoint);
    s_agents = s_server_socket(PM_CTLZAP_DOMAIN_AGENTS, s_agents_ep,
                               sizeof s_agents_ep);
}

static void
s_teardown(void)
{
    zsock_destroy(&s_router);
    zsock_destroy(&s_agents);
    zcert_destroy(&s_server);
    zactor_destroy(&s_zap);
    testdir_remove(s_dir);
}

TestSuite(ctlzap, .init = s_setup, .fini = s_teardown);

/* Connects with CERT to SERVER (at EP) and sends "hi"; returns the frame
 * the server got within 1 s (caller destroys it), NULL when refused. */
static zframe_t *
s_try_on(zcert_t *cert, zsock_t *server, const char *ep)
{
    zsock_t *c = zsock_new(ZMQ_DEALER);
    zcert_apply(cert, c);
    zsock_set_curve_serverkey(c, zcert_public_txt(s_server));
    zsock_set_linger(c, 0);
    zsock_connect(c, "%s", ep);
    zstr_send(c, "hi");
    zframe_t *body = NULL;
    zpoller_t *p = zpoller_new(server, NULL);
    if (zpoller_wait(p, 1000) == server) {
        zframe_t *id = zframe_recv(server);
        body = zframe_recv(server);
        zframe_destroy(&id);
    }
    zpoller_destroy(&p);
    zsock_destroy(&c);
    return body;
}

/* The same on the API socket. */
static zframe_t *
s_try(zcert_t *cert)
{
    return s_try_on(cert, s_router, s_endpoint);
}

/* A new key enrolled as NAME with ROLE, seen by the handler now. */
static zcert_t *
s_enrolled(const char *name, const char *role)
{
    zcert_t *a = zcert_new();
    char *why = NULL;
    cr_assert_eq(
        pm_keys_enroll(s_clients, name, role, zcert_public_txt(a), &why), 0);
    zstr_sendx(s_zap, "CURVE", s_clients, NULL);
    zsock_wait(s_zap);
    return a;
}

Test(ctlzap, an_enrolled_key_comes_in_with_its_name_and_role)
{
    zcert_t *a = s_enrolled("mx1", PM_ROLE_AGENT);
    zframe_t *f = s_try_on(a, s_agents, s_agents_ep);
    cr_assert_not_null(f, "an enrolled key is let in");
    cr_expect_str_eq(zframe_meta(f, "User-Id"), zcert_public_txt(a));
    cr_expect_str_eq(zframe_meta(f, "name"), "mx1");
    cr_expect_str_eq(zframe_meta(f, "role"), PM_ROLE_AGENT);
    zframe_destroy(&f);
    zcert_destroy(&a);
}

/* An agent's key on the API would finish its handshake and have requests
 * queued there before the role is looked at; an admin's or the web
 * console's has nothing to do on the agents' socket. Each role gets in on
 * its socket only, and nobody on a socket of another domain. */
Test(ctlzap, each_role_on_its_own_socket_only)
{
    static const char *const clients[] = {PM_ROLE_ADMIN, PM_ROLE_WEB,
                                          PM_ROLE_CONTROLLER};
    zcert_t *agent = s_enrolled("mx1", PM_ROLE_AGENT);
    zframe_t *f = s_try(agent);
    cr_expect_null(f, "an agent's key is refused on the API");
    zframe_destroy(&f);
    for (size_t i = 0; i < sizeof clients / sizeof clients[0]; i++) {
        zcert_t *c = s_enrolled(clients[i], clients[i]);
        f = s_try(c);
        cr_expect_not_null(f, "%s: let in on the API", clients[i]);
        cr_expect_str_eq(f ? zframe_meta(f, "role") : "", clients[i]);
        zframe_destroy(&f);
        f = s_try_on(c, s_agents, s_agents_ep);
        cr_expect_null(f, "%s: refused on the agents' socket", clients[i]);
        zframe_destroy(&f);
        zcert_destroy(&c);
    }
    char ep[64];
    zsock_t *other = s_server_socket("other", ep, sizeof ep);
    f = s_try_on(agent, other, ep);
    cr_expect_null(f, "refused on a socket of another domain");
    zframe_destroy(&f);
    zsock_destroy(&other);
    zcert_destroy(&agent);
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
