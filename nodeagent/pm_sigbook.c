/* pm_sigbook.c - see pm_sigbook.h. */
#include "pm_sigbook.h"
#include "pm_mem.h"
#include "pm_wire.h"

#include <czmq.h>
#include <stdlib.h>

typedef struct {
    int http;
    time_t until;
    char *node;
} s_cool_t;

typedef struct {
    time_t until;
    char *reason;
} s_distrust_t;

struct pm_sigbook {
    zhashx_t *cools;    /* mirror -> s_cool_t */
    zhashx_t *distrust; /* peer -> s_distrust_t */
};

static void
s_cool_free(void **item)
{
    s_cool_t *c = *item;
    if (c)
        free(c->node);
    free(c);
    *item = NULL;
}

static void
s_distrust_free(void **item)
{
    s_distrust_t *d = *item;
    if (d)
        free(d->reason);
    free(d);
    *item = NULL;
}

pm_sigbook_t *
pm_sigbook_new(void)
{
    pm_sigbook_t *self = pm_calloc(1, sizeof *self);
    self->cools = zhashx_new();
    zhashx_set_destructor(self->cools, s_cool_free);
    self->distrust = zhashx_new();
    zhashx_set_destructor(self->distrust, s_distrust_free);
    return self;
}

void
pm_sigbook_destroy(pm_sigbook_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    zhashx_destroy(&(*self_p)->cools);
    zhashx_destroy(&(*self_p)->distrust);
    free(*self_p);
    *self_p = NULL;
}

bool
pm_sigbook_cool(pm_sigbook_t *self, const char *mirror, int http, time_t until,
                const char *node)
{
    time_t now = time(NULL);
    if (until <= now || !*mirror)
        return false;
    if (until > now + PM_WIRE_COOLDOWN_MAX) /* a peer may be lying */
        until = now + PM_WIRE_COOLDOWN_MAX;
    s_cool_t *c = zhashx_lookup(self->cools, mirror);
    if (c && c->until >= until)
        return false;
    if (!c) {
        c = pm_calloc(1, sizeof *c);
        zhashx_insert(self->cools, mirror, c);
    }
    c->http = http;
    c->until = until;
    free(c->node);
    c->node = pm_strdup(node ? node : "");
    return true;
}

time_t
pm_sigbook_cool_until(const pm_sigbook_t *self, const char *mirror)
{
    const s_cool_t *c = zhashx_lookup(self->cools, mirror);
    return c && c->until > time(NULL) ? c->until : 0;
}

Pm__Cooldown **
pm_sigbook_cooldowns(const pm_sigbook_t *self, size_t *n)
{
    Pm__Cooldown **out = pm_calloc(zhashx_size(self->cools) + 1, sizeof *out);
    *n = 0;
    for (s_cool_t *c = zhashx_first(self->cools); c;
         c = zhashx_next(self->cools)) {
        Pm__Cooldown *m = pm_malloc(sizeof *m);
        pm__cooldown__init(m);
        m->mirror = pm_strdup(zhashx_cursor(self->cools));
        m->http_status = c->http;
        m->until = c->until;
        m->node = pm_strdup(c->node);
        out[(*n)++] = m;
    }
    return out;
}

void
pm_sigbook_distrust(pm_sigbook_t *self, const char *peer, int secs,
                    const char *reason)
{
    s_distrust_t *d = pm_calloc(1, sizeof *d);
    d->until = time(NULL) + secs;
    d->reason = pm_strdup(reason);
    zhashx_update(self->distrust, peer, d);
}

bool
pm_sigbook_distrusted(const pm_sigbook_t *self, const char *peer)
{
    const s_distrust_t *d = zhashx_lookup(self->distrust, peer);
    return d && d->until > time(NULL);
}

Pm__Distrust **
pm_sigbook_distrusts(const pm_sigbook_t *self, size_t *n)
{
    Pm__Distrust **out =
        pm_calloc(zhashx_size(self->distrust) + 1, sizeof *out);
    *n = 0;
    for (s_distrust_t *d = zhashx_first(self->distrust); d;
         d = zhashx_next(self->distrust)) {
        Pm__Distrust *m = pm_malloc(sizeof *m);
        pm__distrust__init(m);
        m->peer = pm_strdup(zhashx_cursor(self->distrust));
        m->until = d->until;
        m->reason = pm_strdup(d->reason);
        out[(*n)++] = m;
    }
    return out;
}

/* Deletes from TABLE the keys whose deadline (read by UNTIL) has passed. */
static void
s_expire(zhashx_t *table, time_t (*until)(const void *item), time_t now)
{
    zlist_t *gone = zlist_new();
    zlist_autofree(gone);
    for (void *item = zhashx_first(table); item; item = zhashx_next(table))
        if (until(item) <= now)
            zlist_append(gone, (void *)zhashx_cursor(table));
    for (char *k = zlist_first(gone); k; k = zlist_next(gone))
        zhashx_delete(table, k);
    zlist_destroy(&gone);
}

static time_t
s_cool_until(const void *item)
{
    return ((const s_cool_t *)item)->until;
}

static time_t
s_distrust_until(const void *item)
{
    return ((const s_distrust_t *)item)->until;
}

void
pm_sigbook_expire(pm_sigbook_t *self)
{
    time_t now = time(NULL);
    s_expire(self->cools, s_cool_until, now);
    s_expire(self->distrust, s_distrust_until, now);
}
