/* pm_peerzap.c - see pm_peerzap.h. */
#include "pm_peerzap.h"
#include "pm_actor.h"
#include "pm_log.h"
#include "pm_mem.h"
#include "pm_peer.h"
#include "pm_zap.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

struct pm_peerzap_t {
    char *name, *domain;
    zhashx_t *members; /* Z85 key -> member name; under s_lock */
};

/* s_life serialises starting and stopping the handler (held across
 * zactor_new and zactor_destroy); s_lock guards the registry and is the
 * only one the handler takes. Order: s_life, then s_lock. */
static pthread_mutex_t s_life = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t s_lock = PTHREAD_MUTEX_INITIALIZER;
static zactor_t *s_handler; /* under s_life */
static zhashx_t *s_domains; /* domain -> pm_peerzap_t; under s_lock */
static uint64_t s_next_id;  /* under s_life */

static void
s_free_item(void **item)
{
    free(*item);
    *item = NULL;
}

/* The member REQ asks to let in, copied into NAME (NAME_LEN bytes), and
 * its key into KEY; false: refused. */
static bool
s_member(const pm_zap_request_t *req, char key[41], char *name, size_t name_len)
{
    if (!req->curve || zframe_size(req->domain) > 64)
        return false;
    zmq_z85_encode(key, zframe_data(req->curve), 32);
    char *dom = zframe_strdup(req->domain);
    bool found = false;
    pthread_mutex_lock(&s_lock);
    const pm_peerzap_t *reg = s_domains ? zhashx_lookup(s_domains, dom) : NULL;
    const char *member = reg ? zhashx_lookup(reg->members, key) : NULL;
    if (member && strlen(member) < name_len) {
        strcpy(name, member);
        found = true;
    }
    pthread_mutex_unlock(&s_lock);
    free(dom);
    return found;
}

/* Answers one ZAP request: 200 with User-Id = the member's name and its
 * key as metadata (X-Key), or 400. */
static void
s_answer(zsock_t *zap)
{
    pm_zap_request_t req;
    if (!pm_zap_recv(zap, &req))
        return;
    char key[41] = "", name[256] = "";
    bool ok = s_member(&req, key, name, sizeof name);
    zframe_t *meta =
        ok ? pm_zap_metadata(PM_PEERZAP_KEY_PROPERTY, key, NULL) : NULL;
    if (!ok)
        pm_debug("peer: refused a connection from key %s", key);
    pm_zap_reply(zap, &req, ok ? name : NULL, &meta, "not an enrolled member");
}

/* The handler: binds before it signals (a handshake before the bind would
 * go unchecked; zactor_new returns on that signal), answers until $TERM.
 * *ARGS (a bool) says whether it bound. */
static void
s_actor(zsock_t *pipe, void *args)
{
    bool *bound = args;
    zsock_t *zap = zsock_new(ZMQ_REP);
    zsock_set_linger(zap, 0);
    if (zsock_bind(zap, PM_ZAP_ENDPOINT) != 0) {
        pm_error("peer: cannot bind the ZAP handler (%s): %s; another one "
                 "runs in this process",
                 PM_ZAP_ENDPOINT, zmq_strerror(zmq_errno()));
        zsock_destroy(&zap);
        *bound = false;
        zsock_signal(pipe, 0);
        return;
    }
    *bound = true;
    zsock_signal(pipe, 0);
    /* the pipe first: a flood of requests cannot starve $TERM, which
     * alone ends the handler (pm_actor.h) */
    zpoller_t *poller = pm_actor_poller(pipe, zap, NULL);
    for (;;) {
        void *which = zpoller_wait(poller, -1);
        if (which == zap) {
            s_answer(zap);
            continue;
        }
        if (which == pipe) {
            char *cmd = pm_actor_recv_str(pipe);
            bool term = !cmd || strcmp(cmd, "$TERM") == 0;
            free(cmd);
            if (term)
                break;
        } else if (pm_actor_ended(poller)) {
            break;
        }
    }
    zpoller_destroy(&poller);
    /* unbound now, so that a new handler may bind at once */
    zsock_unbind(zap, PM_ZAP_ENDPOINT);
    zsock_destroy(&zap);
}

pm_peerzap_t *
pm_peerzap_new(const char *name)
{
    pthread_mutex_lock(&s_life);
    if (!s_handler) {
        bool bound = false;
        s_handler = zactor_new(s_actor, &bound);
        if (!bound) {
            zactor_destroy(&s_handler);
            pthread_mutex_unlock(&s_life);
            return NULL;
        }
    }
    pm_peerzap_t *self = pm_calloc(1, sizeof *self);
    self->name = pm_strdup(name ? name : "");
    self->domain = pm_asprintf("%s.%llu", PM_PEER_ZAP_DOMAIN,
                               (unsigned long long)++s_next_id);
    self->members = zhashx_new();
    zhashx_set_destructor(self->members, s_free_item);
    pthread_mutex_lock(&s_lock);
    if (!s_domains)
        s_domains = zhashx_new();
    zhashx_insert(s_domains, self->domain, self);
    pthread_mutex_unlock(&s_lock);
    pthread_mutex_unlock(&s_life);
    return self;
}

void
pm_peerzap_destroy(pm_peerzap_t **self_p)
{
    pm_peerzap_t *self = *self_p;
    if (!self)
        return;
    pthread_mutex_lock(&s_life);
    pthread_mutex_lock(&s_lock);
    zhashx_delete(s_domains, self->domain);
    bool last = zhashx_size(s_domains) == 0;
    if (last)
        zhashx_destroy(&s_domains);
    pthread_mutex_unlock(&s_lock);
    if (last)
        zactor_destroy(&s_handler);
    pthread_mutex_unlock(&s_life);
    zhashx_destroy(&self->members);
    free(self->name);
    free(self->domain);
    free(self);
    *self_p = NULL;
}

const char *
pm_peerzap_domain(const pm_peerzap_t *self)
{
    return self->domain;
}

void
pm_peerzap_admit(pm_peerzap_t *self, zhashx_t *members)
{
    zhashx_t *copy = zhashx_new();
    zhashx_set_destructor(copy, s_free_item);
    for (const char *name = zhashx_first(members); name;
         name = zhashx_next(members))
        zhashx_insert(copy, zhashx_cursor(members), pm_strdup(name));
    pthread_mutex_lock(&s_lock);
    zhashx_t *old = self->members;
    self->members = copy;
    pthread_mutex_unlock(&s_lock);
    zhashx_destroy(&old);
}
