/* pm_duty.c - fetch duties by rendezvous hashing; cluster cool-downs. */
#include "pm_duty.h"
#include "pm_hash.h"
#include "pm_mem.h"

#include <stdlib.h>
#include <string.h>

uint64_t
pm_duty_weight(const char *database, const char *node)
{
    /* the NUL keeps ("ab", "c") and ("a", "bc") apart */
    size_t ld = strlen(database), ln = strlen(node);
    char *key = pm_malloc(ld + 1 + ln);
    memcpy(key, database, ld);
    key[ld] = '\0';
    memcpy(key + ld + 1, node, ln);
    char hex[65];
    pm_sha256_hex(key, ld + 1 + ln, hex);
    free(key);
    hex[16] = '\0';
    return strtoull(hex, NULL, 16);
}

long
pm_duty_holder(const char *database, Pm__Member *const *members, size_t n)
{
    long best = -1;
    uint64_t best_weight = 0;
    for (size_t i = 0; i < n; i++) {
        if (!members[i]->live)
            continue;
        uint64_t w = pm_duty_weight(database, members[i]->name);
        if (best < 0 || w > best_weight ||
            (w == best_weight &&
             strcmp(members[i]->name, members[best]->name) < 0)) {
            best = (long)i;
            best_weight = w;
        }
    }
    return best;
}

/* By mirror; within a mirror the winner first: latest until, then the
 * smaller node name. */
static int
s_cooldown_order(const void *a, const void *b)
{
    const Pm__Cooldown *x = *(Pm__Cooldown *const *)a;
    const Pm__Cooldown *y = *(Pm__Cooldown *const *)b;
    int c = strcmp(x->mirror, y->mirror);
    if (c)
        return c;
    if (x->until != y->until)
        return x->until > y->until ? -1 : 1;
    return strcmp(x->node, y->node);
}

size_t
pm_duty_cooldowns(Pm__Cooldown **in, size_t n_in, int64_t now,
                  Pm__Cooldown **out, int64_t *next_expiry)
{
    if (n_in)
        qsort(in, n_in, sizeof *in, s_cooldown_order);
    size_t n = 0;
    int64_t next = INT64_MAX;
    for (size_t i = 0; i < n_in; i++) {
        /* only the first of each mirror counts: the winner */
        if (i > 0 && strcmp(in[i]->mirror, in[i - 1]->mirror) == 0)
            continue;
        if (in[i]->until <= now)
            continue;
        out[n++] = in[i];
        if (in[i]->until < next)
            next = in[i]->until;
    }
    if (next_expiry)
        *next_expiry = next;
    return n;
}
