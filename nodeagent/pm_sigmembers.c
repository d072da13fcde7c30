/* pm_sigmembers.c - see pm_sigmembers.h. */
#include "pm_sigmembers.h"
#include "pm_error.h"
#include "pm_file.h"
#include "pm_mem.h"
#include "pm_wire.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct pm_sigmembers_t {
    zcert_t *cert;
    char *file;
    pm_sigmember_t *members;
    size_t n_members;
    zhashx_t *duties; /* database -> node */
    zhashx_t *links;  /* member name -> s_link_t */
    uint64_t uses;    /* counts pm_sigmembers_link calls: recency */
    size_t links_max;
};

typedef struct {
    pm_peer_link_t *link;
    uint64_t used; /* the value of uses when last handed out */
} s_link_t;

static void
s_str_free(void **item)
{
    free(*item);
    *item = NULL;
}

static void
s_link_free(void **item)
{
    s_link_t *l = *item;
    if (l)
        pm_peer_link_destroy(&l->link);
    free(l);
    *item = NULL;
}

static void
s_members_free(pm_sigmembers_t *self)
{
    for (size_t i = 0; i < self->n_members; i++) {
        free(self->members[i].name);
        free(self->members[i].endpoint);
        free(self->members[i].key);
    }
    free(self->members);
    self->members = NULL;
    self->n_members = 0;
}

pm_sigmembers_t *
pm_sigmembers_new(zcert_t *cert, const char *file, size_t links_max)
{
    pm_sigmembers_t *self = pm_calloc(1, sizeof *self);
    self->cert = cert;
    self->links_max = links_max ? links_max : PM_SIGMEMBERS_LINKS_MAX;
    self->file = file ? pm_strdup(file) : NULL;
    self->duties = zhashx_new();
    zhashx_set_destructor(self->duties, s_str_free);
    self->links = zhashx_new();
    zhashx_set_destructor(self->links, s_link_free);
    return self;
}

void
pm_sigmembers_destroy(pm_sigmembers_t **self_p)
{
    pm_sigmembers_t *self = *self_p;
    if (!self)
        return;
    s_members_free(self);
    zhashx_destroy(&self->duties);
    zhashx_destroy(&self->links);
    free(self->file);
    free(self);
    *self_p = NULL;
}

/* Drops the kept links to nodes that are no longer members. */
static void
s_links_prune(pm_sigmembers_t *self)
{
    zlist_t *gone = zlist_new();
    zlist_autofree(gone);
    for (void *l = zhashx_first(self->links); l; l = zhashx_next(self->links))
        if (!pm_sigmembers_find(self, zhashx_cursor(self->links)))
            zlist_append(gone, (void *)zhashx_cursor(self->links));
    for (char *k = zlist_first(gone); k; k = zlist_next(gone))
        zhashx_delete(self->links, k);
    zlist_destroy(&gone);
}

void
pm_sigmembers_set(pm_sigmembers_t *self, const Pm__Publication *pub)
{
    s_members_free(self);
    self->n_members = pub->n_members;
    self->members = pm_calloc(self->n_members + 1, sizeof *self->members);
    for (size_t i = 0; i < pub->n_members; i++) {
        const Pm__Member *m = pub->members[i];
        self->members[i] =
            (pm_sigmember_t){pm_strdup(m->name), pm_strdup(m->peer_endpoint),
                             pm_strdup(m->public_key), m->live};
    }
    s_links_prune(self);
    zhashx_purge(self->duties);
    for (size_t j = 0; j < pub->n_duties; j++)
        zhashx_update(self->duties, pub->duties[j]->database,
                      pm_strdup(pub->duties[j]->node));
}

int
pm_sigmembers_keep(pm_sigmembers_t *self, const void *data, size_t len,
                   char **why)
{
    if (!self->file)
        return PM_OK;
    return pm_file_write(self->file, data, len, 0600, (gid_t)-1, why);
}

int
pm_sigmembers_kept(const pm_sigmembers_t *self, Pm__Publication **pub,
                   char **data, size_t *len, char **why)
{
    *pub = NULL;
    *data = NULL;
    *len = 0;
    if (!self->file)
        return PM_ENOTFOUND;
    int rc = pm_file_read(self->file, PM_WIRE_MESSAGE_MAX, PM_FILE_STRICT, data,
                          len, why);
    if (rc == PM_OK)
        rc = pm_wire_unpack_publication((const uint8_t *)*data, *len, pub, why);
    if (rc == PM_OK && (*pub)->kind != PM__PUBLICATION__KIND__MEMBERS) {
        *why = pm_strdup("not a membership");
        rc = PM_EINVAL;
    }
    if (rc != PM_OK) {
        if (*pub)
            pm__publication__free_unpacked(*pub, NULL);
        *pub = NULL;
        PM_FREE(data);
        *len = 0;
    }
    return rc;
}

size_t
pm_sigmembers_count(const pm_sigmembers_t *self)
{
    return self->n_members;
}

const pm_sigmember_t *
pm_sigmembers_at(const pm_sigmembers_t *self, size_t i)
{
    return i < self->n_members ? &self->members[i] : NULL;
}

const pm_sigmember_t *
pm_sigmembers_find(const pm_sigmembers_t *self, const char *name)
{
    for (size_t i = 0; i < self->n_members; i++)
        if (strcmp(self->members[i].name, name) == 0)
            return &self->members[i];
    return NULL;
}

const char *
pm_sigmembers_duty(const pm_sigmembers_t *self, const char *database)
{
    return zhashx_lookup(self->duties, database);
}

/* Closes the least recently used link. */
static void
s_links_evict(pm_sigmembers_t *self)
{
    const char *oldest = NULL;
    uint64_t used = UINT64_MAX;
    for (s_link_t *l = zhashx_first(self->links); l;
         l = zhashx_next(self->links))
        if (l->used < used) {
            used = l->used;
            oldest = zhashx_cursor(self->links);
        }
    if (oldest)
        zhashx_delete(self->links, oldest);
}

pm_peer_link_t *
pm_sigmembers_link(pm_sigmembers_t *self, const pm_sigmember_t *m)
{
    s_link_t *l = zhashx_lookup(self->links, m->name);
    if (l && pm_peer_link_is(l->link, m->endpoint, m->key)) {
        l->used = ++self->uses;
        return l->link;
    }
    zhashx_delete(self->links, m->name); /* moved, or a new key */
    pm_peer_link_t *link = pm_peer_link_new(self->cert, m->endpoint, m->key);
    if (!link)
        return NULL;
    if (zhashx_size(self->links) >= self->links_max)
        s_links_evict(self);
    l = pm_malloc(sizeof *l);
    *l = (s_link_t){link, ++self->uses};
    zhashx_insert(self->links, m->name, l);
    return link;
}

size_t
pm_sigmembers_links(const pm_sigmembers_t *self)
{
    return zhashx_size(self->links);
}

size_t
pm_sigmembers_links_max(const pm_sigmembers_t *self)
{
    return self->links_max;
}

bool
pm_sigmembers_linked(const pm_sigmembers_t *self, const pm_sigmember_t *m)
{
    s_link_t *l = zhashx_lookup(self->links, m->name);
    return l && pm_peer_link_is(l->link, m->endpoint, m->key);
}

/* Moves FAN members of PICK[0..N) chosen at random to its front. */
static void
s_shuffle(const pm_sigmember_t **pick, size_t n, size_t fan,
          uint64_t (*rnd)(void *), void *arg)
{
    for (size_t k = 0; k < fan && k < n; k++) {
        size_t j = k + (size_t)(rnd(arg) % (n - k));
        const pm_sigmember_t *m = pick[j];
        pick[j] = pick[k];
        pick[k] = m;
    }
}

size_t
pm_sigmembers_pick(const pm_sigmembers_t *self, const pm_sigmember_t **pick,
                   size_t n, size_t fan, uint64_t (*rnd)(void *), void *arg)
{
    size_t in_view = 0; /* the linked candidates go first */
    for (size_t i = 0; i < n; i++)
        if (pm_sigmembers_linked(self, pick[i])) {
            const pm_sigmember_t *m = pick[in_view];
            pick[in_view++] = pick[i];
            pick[i] = m;
        }
    if (fan > n)
        fan = n;
    if (in_view < self->links_max || in_view == n) {
        s_shuffle(pick, n, fan, rnd, arg);
        return fan;
    }
    if (fan > in_view)
        fan = in_view;
    s_shuffle(pick, in_view, fan, rnd, arg);
    if (fan && rnd(arg) % PM_SIGMEMBERS_VIEW_CHURN == 0) {
        size_t j = in_view + (size_t)(rnd(arg) % (n - in_view));
        pick[fan - 1] = pick[j];
    }
    return fan;
}
