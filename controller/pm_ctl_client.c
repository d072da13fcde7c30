#include "pm_ctl_client.h"
#include "pm_error.h"
#include "pm_keys.h"
#include "pm_mem.h"
#include "pm_wire.h"

#include <czmq.h>
#include <string.h>

struct pm_ctl_client_t {
    char *endpoint;
    zcert_t *cert;
    char *server_key;
    int timeout_ms;
};

pm_ctl_client_t *
pm_ctl_client_new(const char *endpoint, const char *key, const char *server_key,
                  int timeout_ms, char **why)
{
    pm_ctl_client_t *self = pm_calloc(1, sizeof *self);
    self->endpoint = pm_strdup(endpoint);
    self->timeout_ms = timeout_ms;
    self->cert = pm_keys_load(key, why);
    zcert_t *server = self->cert ? pm_keys_load(server_key, why) : NULL;
    if (!server) {
        pm_ctl_client_destroy(&self);
        return NULL;
    }
    self->server_key = pm_strdup(zcert_public_txt(server));
    zcert_destroy(&server);
    return self;
}

void
pm_ctl_client_destroy(pm_ctl_client_t **self_p)
{
    pm_ctl_client_t *self = *self_p;
    if (!self)
        return;
    zcert_destroy(&self->cert);
    free(self->server_key);
    free(self->endpoint);
    free(self);
    *self_p = NULL;
}

/* A socket monitor tells a refused key (ZAP said no) from a silent peer. */
static zsock_t *
s_monitor(zsock_t *sock)
{
    static int seq;
    char ep[64];
    snprintf(ep, sizeof ep, "inproc://pm-ctl-monitor-%d", seq++);
    if (zmq_socket_monitor(zsock_resolve(sock), ep,
                           ZMQ_EVENT_HANDSHAKE_FAILED_AUTH |
                               ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL) != 0)
        return NULL;
    zsock_t *mon = zsock_new(ZMQ_PAIR);
    if (mon && zsock_connect(mon, "%s", ep) != 0)
        zsock_destroy(&mon);
    return mon;
}

static int
s_monitor_event(zsock_t *mon, char **why, const char *endpoint)
{
    zmsg_t *ev = zmsg_recv(mon);
    zframe_t *f = ev ? zmsg_first(ev) : NULL;
    uint16_t id = 0;
    if (f && zframe_size(f) >= 2)
        memcpy(&id, zframe_data(f), 2);
    zmsg_destroy(&ev);
    if (id == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH) {
        *why = pm_asprintf("the controller at %s refused this client's key: "
                           "it is not in the controller's clients/ "
                           "allow-list",
                           endpoint);
        return PM_EDENIED;
    }
    *why = pm_asprintf("CURVE handshake with %s failed: is the controller's "
                       "public key (server key) the right one?",
                       endpoint);
    return PM_EDENIED;
}

static int
s_wait_reply(pm_ctl_client_t *self, zsock_t *sock, zsock_t *mon,
             Pm__Response **resp, char **why)
{
    zpoller_t *poller = zpoller_new(sock, mon, NULL);
    int64_t deadline = zclock_mono() + self->timeout_ms;
    int rc = PM_ETIMEDOUT;
    for (;;) {
        int64_t left = deadline - zclock_mono();
        void *which = left > 0 ? zpoller_wait(poller, (int)left) : NULL;
        if (which == mon && mon) {
            rc = s_monitor_event(mon, why, self->endpoint);
            break;
        }
        if (which != sock) {
            *why = pm_asprintf(
                "cannot reach the controller at %s: no answer within %d ms "
                "(is privmta-controller running there? a busy one, "
                "checking a large policy, may need a longer --timeout)",
                self->endpoint, self->timeout_ms);
            break;
        }
        zframe_t *frame = zframe_recv(sock);
        rc = frame ? pm_wire_unpack_response(zframe_data(frame),
                                             zframe_size(frame), resp, why)
                   : PM_EPROTO;
        zframe_destroy(&frame);
        break;
    }
    zpoller_destroy(&poller);
    return rc;
}

int
pm_ctl_client_call(pm_ctl_client_t *self, const Pm__Request *req,
                   Pm__Response **resp, char **why)
{
    zsock_t *sock = zsock_new(ZMQ_REQ);
    zcert_apply(self->cert, sock);
    zsock_set_curve_serverkey(sock, self->server_key);
    zsock_set_linger(sock, 0);
    zsock_set_maxmsgsize(sock, PM_WIRE_MESSAGE_MAX);
    zsock_t *mon = s_monitor(sock);
    int rc = PM_ETIMEDOUT;
    if (zsock_connect(sock, "%s", self->endpoint) != 0) {
        *why = pm_asprintf("bad controller address '%s': %s", self->endpoint,
                           zmq_strerror(zmq_errno()));
        rc = PM_EINVAL;
        goto out;
    }
    size_t len = 0;
    uint8_t *buf = pm_wire_pack(&req->base, &len);
    zframe_t *frame = zframe_new(buf, len);
    free(buf);
    zframe_send(&frame, sock, 0);
    rc = s_wait_reply(self, sock, mon, resp, why);
out:
    if (mon)
        zmq_socket_monitor(zsock_resolve(sock), NULL, 0);
    zsock_destroy(&mon);
    zsock_destroy(&sock);
    return rc;
}
