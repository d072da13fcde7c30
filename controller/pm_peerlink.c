/* pm_peerlink.c - calls to peer controllers in an actor. */
#include "pm_peerlink.h"
#include "pm_actor.h"
#include "pm_ctl_client.h"
#include "pm_error.h"
#include "pm_keys.h"
#include "pm_mem.h"
#include "pm_wire.h"

#include <string.h>

typedef struct {
    char *key, *server_key;
    int timeout_ms;
} s_args_t;

struct pm_peerlink_t {
    zactor_t *actor;
    s_args_t args; /* read by the actor only while it runs */
    bool busy;
};

/* One call: frames ENDPOINTS and the packed request in; rc, endpoint or
 * why, and the response (a pointer, or NULL) out. */
static void
s_call(zsock_t *pipe, s_args_t *a, zmsg_t *msg)
{
    char *endpoints = zmsg_popstr(msg);
    zframe_t *body = zmsg_pop(msg);
    Pm__Response *resp = NULL;
    char *why = NULL;
    int rc = PM_EPROTO;
    Pm__Request *req =
        body ? pm__request__unpack(NULL, zframe_size(body), zframe_data(body))
             : NULL;
    pm_ctl_client_t *client =
        endpoints && req ? pm_ctl_client_new(endpoints, a->key, a->server_key,
                                             a->timeout_ms, &why)
                         : NULL;
    if (client)
        rc = pm_ctl_client_call(client, req, &resp, &why);
    else if (!why)
        why = pm_strdup("bad call");
    const char *from = client ? pm_ctl_client_endpoint(client) : NULL;
    zsock_send(pipe, "isp", rc, rc == PM_OK ? (from ? from : "") : why,
               (void *)resp);
    pm_ctl_client_destroy(&client);
    if (req)
        pm__request__free_unpacked(req, NULL);
    zframe_destroy(&body);
    free(endpoints);
    free(why);
}

static void
s_actor(zsock_t *pipe, void *arg)
{
    s_args_t *a = arg;
    zsock_signal(pipe, 0);
    for (;;) {
        zmsg_t *msg = pm_actor_recv(pipe); /* $TERM ends it (pm_actor.h) */
        if (!msg)
            break;
        char *cmd = zmsg_popstr(msg);
        bool term = !cmd || strcmp(cmd, "$TERM") == 0;
        if (!term && strcmp(cmd, "CALL") == 0)
            s_call(pipe, a, msg);
        free(cmd);
        zmsg_destroy(&msg);
        if (term)
            break;
    }
}

pm_peerlink_t *
pm_peerlink_new(const char *key, const char *server_key, int timeout_ms,
                char **why)
{
    /* each call loads the keys again; a bad file is said at start */
    const char *files[] = {key, server_key};
    for (size_t i = 0; i < 2; i++) {
        zcert_t *cert = pm_keys_load(files[i], why);
        if (!cert)
            return NULL;
        zcert_destroy(&cert);
    }
    pm_peerlink_t *self = pm_calloc(1, sizeof *self);
    self->args.key = pm_strdup(key);
    self->args.server_key = pm_strdup(server_key);
    self->args.timeout_ms = timeout_ms;
    self->actor = zactor_new(s_actor, &self->args);
    return self;
}

void
pm_peerlink_destroy(pm_peerlink_t **self_p)
{
    pm_peerlink_t *self = *self_p;
    if (!self)
        return;
    if (self->busy) { /* take the answer in flight, so that it is freed */
        Pm__Response *resp = NULL;
        char *ep = NULL, *why = NULL;
        pm_peerlink_answer(self, &resp, &ep, &why);
        if (resp)
            pm__response__free_unpacked(resp, NULL);
        free(ep);
        free(why);
    }
    zactor_destroy(&self->actor);
    free(self->args.key);
    free(self->args.server_key);
    free(self);
    *self_p = NULL;
}

bool
pm_peerlink_call(pm_peerlink_t *self, const char *endpoints,
                 const Pm__Request *req)
{
    if (self->busy)
        return false;
    size_t len = 0;
    uint8_t *buf = pm_wire_pack(&req->base, &len);
    zmsg_t *msg = zmsg_new();
    zmsg_addstr(msg, "CALL");
    zmsg_addstr(msg, endpoints);
    zmsg_addmem(msg, buf, len);
    free(buf);
    zmsg_send(&msg, self->actor);
    self->busy = true;
    return true;
}

bool
pm_peerlink_busy(const pm_peerlink_t *self)
{
    return self->busy;
}

zsock_t *
pm_peerlink_socket(pm_peerlink_t *self)
{
    return zactor_sock(self->actor);
}

int
pm_peerlink_answer(pm_peerlink_t *self, Pm__Response **resp, char **endpoint,
                   char **why)
{
    int rc = PM_EPROTO;
    char *text = NULL;
    void *ptr = NULL;
    if (zsock_recv(self->actor, "isp", &rc, &text, &ptr) != 0) {
        *why = pm_strdup("the peer link stopped");
        return PM_EPROTO;
    }
    self->busy = false;
    if (rc == PM_OK) {
        *resp = ptr;
        *endpoint = text;
    } else {
        *why = text;
    }
    return rc;
}
