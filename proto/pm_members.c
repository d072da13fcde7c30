#include "pm_members.h"

#include "pm_mem.h"
#include "pm_wire.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

static int
s_by_name(const void *a, const void *b)
{
    return strcmp((*(Pm__Member *const *)a)->name,
                  (*(Pm__Member *const *)b)->name);
}

/* A copy of LIST (N), sorted by name, for s_find; caller frees. */
static Pm__Member **
s_sorted(Pm__Member *const *list, size_t n)
{
    Pm__Member **sorted = pm_calloc(n + 1, sizeof *sorted);
    if (n) /* an empty list may be NULL */
        memcpy(sorted, list, n * sizeof *sorted);
    qsort(sorted, n, sizeof *sorted, s_by_name);
    return sorted;
}

static const Pm__Member *
s_find(Pm__Member **sorted, size_t n, const char *name)
{
    Pm__Member key = {.name = (char *)name};
    const Pm__Member *k = &key;
    Pm__Member **hit = bsearch(&k, sorted, n, sizeof *sorted, s_by_name);
    return hit ? *hit : NULL;
}

static bool
s_same(const Pm__Member *a, const Pm__Member *b)
{
    return a->live == b->live && strcmp(a->public_key, b->public_key) == 0 &&
           strcmp(a->peer_endpoint, b->peer_endpoint) == 0;
}

void
pm_members_delta(const Pm__Publication *old, const Pm__Publication *now,
                 Pm__Publication *delta)
{
    delta->kind = PM__PUBLICATION__KIND__MEMBERS;
    delta->members_base = old->members_epoch;
    delta->members_epoch = now->members_epoch;
    delta->members = pm_calloc(now->n_members + 1, sizeof *delta->members);
    delta->members_gone =
        pm_calloc(old->n_members + 1, sizeof *delta->members_gone);
    Pm__Member **was = s_sorted(old->members, old->n_members);
    for (size_t i = 0; i < now->n_members; i++) {
        const Pm__Member *m = now->members[i];
        const Pm__Member *before = s_find(was, old->n_members, m->name);
        if (!before || !s_same(before, m))
            delta->members[delta->n_members++] = now->members[i];
    }
    Pm__Member **is = s_sorted(now->members, now->n_members);
    for (size_t i = 0; i < old->n_members; i++)
        if (!s_find(is, now->n_members, old->members[i]->name))
            delta->members_gone[delta->n_members_gone++] =
                old->members[i]->name;
    delta->duties = now->duties;
    delta->n_duties = now->n_duties;
    delta->cooldowns = now->cooldowns;
    delta->n_cooldowns = now->n_cooldowns;
    free(was);
    free(is);
}

void
pm_members_delta_clear(Pm__Publication *delta)
{
    PM_FREE(&delta->members);
    PM_FREE(&delta->members_gone);
    delta->n_members = delta->n_members_gone = 0;
}

static int
s_by_string(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Whether NAME is in SORTED (N strings). */
static bool
s_named(char **sorted, size_t n, const char *name)
{
    return bsearch(&name, sorted, n, sizeof *sorted, s_by_string) != NULL;
}

uint8_t *
pm_members_apply(const Pm__Publication *held, const Pm__Publication *change,
                 size_t *len)
{
    if (!change->members_base)
        return pm_wire_pack(&change->base, len);
    if (!held || held->members_epoch != change->members_base)
        return NULL;
    /* the names CHANGE speaks of: replaced or gone from what is held */
    size_t n_named = change->n_members + change->n_members_gone;
    char **named = pm_calloc(n_named + 1, sizeof *named);
    for (size_t i = 0; i < change->n_members; i++)
        named[i] = change->members[i]->name;
    if (change->n_members_gone)
        memcpy(named + change->n_members, change->members_gone,
               change->n_members_gone * sizeof *named);
    qsort(named, n_named, sizeof *named, s_by_string);
    Pm__Publication whole = *change;
    whole.members_base = 0;
    whole.n_members_gone = 0;
    whole.members_gone = NULL;
    whole.members = pm_calloc(held->n_members + change->n_members + 1,
                              sizeof *whole.members);
    whole.n_members = 0;
    for (size_t i = 0; i < held->n_members; i++)
        if (!s_named(named, n_named, held->members[i]->name))
            whole.members[whole.n_members++] = held->members[i];
    for (size_t i = 0; i < change->n_members; i++)
        whole.members[whole.n_members++] = change->members[i];
    qsort(whole.members, whole.n_members, sizeof *whole.members, s_by_name);
    uint8_t *buf = pm_wire_pack(&whole.base, len);
    free(whole.members);
    free(named);
    return buf;
}
