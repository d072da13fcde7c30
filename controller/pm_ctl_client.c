#include "pm_ctl_client.h"
#include "pm_conf.h"
#include "pm_error.h"
#include "pm_keys.h"
#include "pm_mem.h"
#include "pm_wire.h"

#include <czmq.h>
#include <string.h>

struct pm_ctl_client_t {
    char **endpoints; /* at least one */
    size_t n_endpoints;
    size_t last;   /* the endpoint tried first: the last one that answered */
    bool answered; /* whether any has yet */
    zcert_t *cert;
    char *server_key;
    int timeout_ms;
};

/* Splits LIST into self->endpoints (pm_conf_list). A list with no
 * endpoint at all stays one (bad) address, refused when it is connected
 * to, as it always was. */
static void
s_split(pm_ctl_client_t *self, const char *list)
{
    self->endpoints = pm_conf_list(list, &self->n_endpoints);
    if (!self->n_endpoints) {
        pm_conf_list_free(&self->endpoints);
        self->endpoints = pm_calloc(2, sizeof *self->endpoints);
        self->endpoints[self->n_endpoints++] = pm_strdup(list ? list : "");
    }
}

pm_ctl_client_t *
pm_ctl_client_new(const char *endpoints, const char *key,
                  const char *server_key, int timeout_ms, char **why)
{
    pm_ctl_client_t *self = pm_calloc(1, sizeof *self);
    s_split(self, endpoints);
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
    pm_conf_list_free(&self->endpoints);
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
                           "allow-list, or not with a role of this API (an "
                           "agent's key is for the agent socket only)",
                           endpoint);
        return PM_EDENIED;
    }
    *why = pm_asprintf("CURVE handshake with %s failed: is the controller's "
                       "public key (server key) the right one?",
                       endpoint);
    return PM_EDENIED;
}

static int
s_wait_reply(pm_ctl_client_t *self, const char *endpoint, zsock_t *sock,
             zsock_t *mon, Pm__Response **resp, char **why)
{
    zpoller_t *poller = zpoller_new(sock, mon, NULL);
    int64_t deadline = zclock_mono() + self->timeout_ms;
    int rc = PM_ETIMEDOUT;
    for (;;) {
        int64_t left = deadline - zclock_mono();
        void *which = left > 0 ? zpoller_wait(poller, (int)left) : NULL;
        if (which == mon && mon) {
            rc = s_monitor_event(mon, why, endpoint);
            break;
        }
        if (which != sock) {
            *why = pm_asprintf(
                "cannot reach the controller at %s: no answer within %d ms "
                "(is privmta-controller running there? a busy one, "
                "checking a large policy, may need a longer --timeout)",
                endpoint, self->timeout_ms);
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

/* One request to ENDPOINT: BUF (LEN bytes) is the packed request. */
static int
s_call_one(pm_ctl_client_t *self, const char *endpoint, const uint8_t *buf,
           size_t len, Pm__Response **resp, char **why)
{
    zsock_t *sock = zsock_new(ZMQ_REQ);
    zcert_apply(self->cert, sock);
    zsock_set_curve_serverkey(sock, self->server_key);
    zsock_set_linger(sock, 0);
    zsock_set_maxmsgsize(sock, PM_WIRE_MESSAGE_MAX);
    zsock_t *mon = s_monitor(sock);
    int rc = PM_ETIMEDOUT;
    if (zsock_connect(sock, "%s", endpoint) != 0) {
        *why = pm_asprintf("bad controller address '%s': %s", endpoint,
                           zmq_strerror(zmq_errno()));
        rc = PM_EINVAL;
        goto out;
    }
    zframe_t *frame = zframe_new(buf, len);
    zframe_send(&frame, sock, 0);
    rc = s_wait_reply(self, endpoint, sock, mon, resp, why);
out:
    if (mon)
        zmq_socket_monitor(zsock_resolve(sock), NULL, 0);
    zsock_destroy(&mon);
    zsock_destroy(&sock);
    return rc;
}

/* Whether R comes from a standby: one that refuses the request, or says
 * so in its answer to PING. */
static bool
s_is_standby(const Pm__Response *r)
{
    return r->status == PM__RESPONSE__STATUS__NOT_PRIMARY || r->standby;
}

/* Appends TEXT to *LIST, "; " between. */
static void
s_append(char **list, const char *text)
{
    char *joined = *list ? pm_asprintf("%s; %s", *list, text) : pm_strdup(text);
    free(*list);
    *list = joined;
}

int
pm_ctl_client_call(pm_ctl_client_t *self, const Pm__Request *req,
                   Pm__Response **resp, char **why)
{
    size_t len = 0;
    uint8_t *buf = pm_wire_pack(&req->base, &len);
    size_t n = self->n_endpoints, tried = 0, standby_at = 0;
    Pm__Response *answer = NULL, *standby = NULL;
    char *failed = NULL;  /* why each endpoint that gave no answer did not */
    char *refused = NULL; /* of those, the ones that refused our key */
    int err = PM_ETIMEDOUT;
    bool denied = false;
    for (size_t k = 0; k < n && !answer; k++) {
        /* the last one that answered first, then the others in order */
        size_t at = k == 0 ? self->last : k - 1 + (k - 1 >= self->last);
        const char *endpoint = self->endpoints[at];
        if (k && zsys_interrupted)
            break;
        tried++;
        Pm__Response *r = NULL;
        char *reason = NULL;
        int rc = s_call_one(self, endpoint, buf, len, &r, &reason);
        if (rc == PM_OK && (n == 1 || !s_is_standby(r))) {
            answer = r;
            self->last = at;
        } else if (rc == PM_OK) {
            if (standby)
                pm__response__free_unpacked(standby, NULL);
            standby = r;
            standby_at = at;
        } else {
            if (!reason)
                reason = pm_strdup(pm_strerror(rc));
            if (n > 1 && !strstr(reason, endpoint)) {
                char *named = pm_asprintf("%s: %s", endpoint, reason);
                free(reason);
                reason = named;
            }
            s_append(&failed, reason);
            if (rc == PM_EDENIED)
                s_append(&refused, reason);
            denied = denied || rc == PM_EDENIED;
            err = rc;
        }
        free(reason);
    }
    free(buf);
    int rc = PM_OK;
    if (answer) {
        if (standby)
            pm__response__free_unpacked(standby, NULL);
        *resp = answer;
        if (refused)
            *why = pm_strdup(refused);
    } else if (standby) {
        *resp = standby;
        self->last = standby_at;
        if (failed)
            *why = pm_strdup(failed);
    } else {
        rc = denied ? PM_EDENIED : err;
        *why = tried > 1 ? pm_asprintf("none of the %zu controllers tried "
                                       "answered: %s",
                                       tried, failed)
                         : pm_strdup(failed);
    }
    if (rc == PM_OK)
        self->answered = true;
    free(failed);
    free(refused);
    return rc;
}

const char *
pm_ctl_client_endpoint(const pm_ctl_client_t *self)
{
    return self && self->answered ? self->endpoints[self->last] : NULL;
}

void
pm_ctl_client_set_timeout(pm_ctl_client_t *self, int timeout_ms)
{
    self->timeout_ms = timeout_ms;
}

int
pm_ctl_client_timeout(const pm_ctl_client_t *self)
{
    return self->timeout_ms;
}
