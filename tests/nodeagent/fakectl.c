/* fakectl.c - see fakectl.h. */
#include "fakectl.h"

#include "pm_error.h"
#include "pm_wire.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void
fakectl_new(fakectl_t *c, zcert_t *cert, int rcvhwm)
{
    memset(c, 0, sizeof *c);
    zcert_t *own = cert ? NULL : zcert_new();
    c->router = zsock_new(ZMQ_ROUTER);
    if (rcvhwm)
        zsock_set_rcvhwm(c->router, rcvhwm);
    zcert_apply(cert ? cert : own, c->router);
    zsock_set_curve_server(c->router, 1);
    int port = zsock_bind(c->router, "tcp://127.0.0.1:*");
    cr_assert_gt(port, 0);
    snprintf(c->endpoint, sizeof c->endpoint, "tcp://127.0.0.1:%d", port);
    snprintf(c->key, sizeof c->key, "%s", zcert_public_txt(cert ? cert : own));
    zcert_destroy(&own);
}

void
fakectl_destroy(fakectl_t *c)
{
    zframe_destroy(&c->agent);
    zsock_destroy(&c->router);
}

/* The next message within WAIT_MS, its routing id into *ID and its body
 * into *BODY (caller frees both); false when none came. */
static bool
s_recv(fakectl_t *c, int wait_ms, zframe_t **id, zframe_t **body)
{
    zpoller_t *p = zpoller_new(c->router, NULL);
    bool got = zpoller_wait(p, wait_ms) != NULL;
    zpoller_destroy(&p);
    if (!got)
        return false;
    zmsg_t *m = zmsg_recv(c->router);
    *id = zmsg_pop(m);
    *body = zmsg_pop(m);
    zmsg_destroy(&m);
    return *id && *body;
}

Pm__AgentReport *
fakectl_next(fakectl_t *c, int wait_ms, zframe_t **id)
{
    zframe_t *from = NULL, *body = NULL;
    Pm__AgentReport *rep = NULL;
    if (s_recv(c, wait_ms, &from, &body)) {
        char *why = NULL;
        cr_assert_eq(pm_wire_unpack_agent_report(zframe_data(body),
                                                 zframe_size(body), &rep, &why),
                     PM_OK, "%s", why);
    }
    if (id && rep)
        *id = from;
    else
        zframe_destroy(&from);
    zframe_destroy(&body);
    return rep;
}

bool
fakectl_hello(fakectl_t *c, int wait_ms)
{
    int64_t deadline = zclock_mono() + wait_ms;
    zframe_destroy(&c->agent);
    while (!c->agent && zclock_mono() < deadline) {
        zframe_t *id = NULL, *body = NULL;
        if (!s_recv(c, (int)(deadline - zclock_mono()), &id, &body)) {
            zframe_destroy(&id);
            zframe_destroy(&body);
            continue;
        }
        Pm__AgentReport *rep = NULL;
        if (pm_wire_unpack_agent_report(zframe_data(body), zframe_size(body),
                                        &rep, NULL) == PM_OK &&
            rep->kind == PM__AGENT_REPORT__KIND__HELLO)
            c->agent = zframe_dup(id);
        if (rep)
            pm__agent_report__free_unpacked(rep, NULL);
        zframe_destroy(&id);
        zframe_destroy(&body);
    }
    return c->agent != NULL;
}

void
fakectl_send(fakectl_t *c, const Pm__Publication *pub)
{
    cr_assert_not_null(c->agent, "no agent said hello to send to");
    size_t len = 0;
    uint8_t *buf = pm_wire_pack(&pub->base, &len);
    zmsg_t *m = zmsg_new();
    zmsg_addmem(m, zframe_data(c->agent), zframe_size(c->agent));
    zmsg_addmem(m, buf, len);
    cr_assert_eq(zmsg_send(&m, c->router), 0);
    free(buf);
}

bool
fakectl_applied(fakectl_t *c, uint64_t rev, int wait_ms)
{
    int64_t deadline = zclock_mono() + wait_ms;
    while (zclock_mono() < deadline) {
        Pm__AgentReport *r = fakectl_next(c, 200, NULL);
        bool done = r && r->applied_rev == rev && !*r->status->apply_error;
        if (r)
            pm__agent_report__free_unpacked(r, NULL);
        if (done)
            return true;
    }
    return false;
}
