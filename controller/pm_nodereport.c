/* pm_nodereport.c - see pm_nodereport.h. */
#include "pm_nodereport.h"
#include "pm_log.h"
#include "pm_mem.h"
#include "pm_text.h"
#include "pm_wire.h"

#include <stdlib.h>
#include <string.h>

/* Cap on agent-supplied text in one log line. */
#define S_LOG_TEXT_MAX 512

bool
pm_nodereport_changed(Pm__NodeStatus *old, Pm__NodeStatus *new)
{
    if (!old)
        return true;
    /* the history changes only with news in `drift`, which is compared */
    int64_t a = old->last_seen, b = new->last_seen;
    size_t ha = old->n_drift_history, hb = new->n_drift_history;
    old->last_seen = new->last_seen = 0;
    old->n_drift_history = new->n_drift_history = 0;
    size_t la = protobuf_c_message_get_packed_size(&old->base);
    size_t lb = protobuf_c_message_get_packed_size(&new->base);
    bool changed = la != lb;
    if (!changed) {
        uint8_t *pa = pm_malloc(la), *pb = pm_malloc(lb);
        protobuf_c_message_pack(&old->base, pa);
        protobuf_c_message_pack(&new->base, pb);
        changed = memcmp(pa, pb, la) != 0;
        free(pa);
        free(pb);
    }
    old->last_seen = a;
    new->last_seen = b;
    old->n_drift_history = ha;
    new->n_drift_history = hb;
    return changed;
}

bool
pm_nodereport_cooldown_kept(const Pm__Cooldown *c, char *const *mirrors,
                            size_t n_mirrors)
{
    if (c->http_status != 429 && c->http_status != 403)
        return false;
    for (size_t i = 0; i < n_mirrors; i++)
        if (strcmp(c->mirror, mirrors[i]) == 0)
            return true;
    return false;
}

/* The index among the first N of CDS of the one for MIRROR, or -1. */
static long
s_cooldown_of(Pm__Cooldown *const *cds, size_t n, const char *mirror)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(cds[i]->mirror, mirror) == 0)
            return (long)i;
    return -1;
}

void
pm_nodereport_own_cooldowns(const char *node, char *const *mirrors,
                            size_t n_mirrors, Pm__NodeStatus *new, int64_t now)
{
    int64_t cap = now + PM_WIRE_COOLDOWN_MAX;
    size_t kept = 0;
    for (size_t i = 0; i < new->n_cooldowns; i++) {
        Pm__Cooldown *c = new->cooldowns[i];
        new->cooldowns[i] = NULL;
        if (c->until > cap)
            c->until = cap;
        long same = s_cooldown_of(new->cooldowns, kept, c->mirror);
        if (!pm_nodereport_cooldown_kept(c, mirrors, n_mirrors) ||
            (same >= 0 && new->cooldowns[same]->until >= c->until)) {
            pm__cooldown__free_unpacked(c, NULL);
            continue;
        }
        /* the reporter vouches for what it reports: a name it gives
         * would let it blame another node for a mirror's refusal */
        pm_wire_set_string(&c->node, node);
        if (same >= 0) {
            pm__cooldown__free_unpacked(new->cooldowns[same], NULL);
            new->cooldowns[same] = c;
        } else {
            new->cooldowns[kept++] = c;
        }
    }
    new->n_cooldowns = kept;
}

static bool
s_cooldown_eq(const Pm__Cooldown *a, const Pm__Cooldown *b)
{
    return a->until == b->until && a->http_status == b->http_status &&
           strcmp(a->mirror, b->mirror) == 0 && strcmp(a->node, b->node) == 0;
}

bool
pm_nodereport_members_differ(const Pm__NodeStatus *old,
                             const Pm__NodeStatus *new)
{
    if (!old || strcmp(old->peer_endpoint, new->peer_endpoint) != 0 ||
        old->n_cooldowns != new->n_cooldowns)
        return true;
    for (size_t i = 0; i < old->n_cooldowns; i++)
        if (!s_cooldown_eq(old->cooldowns[i], new->cooldowns[i]))
            return true;
    return false;
}

/* Whether NEW reports a hand edit OLD did not (the agent keeps reporting
 * its last one, with the time it found it). */
bool
pm_nodereport_own_endpoint(Pm__NodeStatus *new)
{
    const char *e = new->peer_endpoint;
    const char *colon = strrchr(e, ':');
    bool tcp = strncmp(e, "tcp://", 6) == 0 && colon && colon > e + 6 &&
               colon[1] && strspn(colon + 1, "0123456789") == strlen(colon + 1);
    if (tcp || !*e)
        return false;
    pm_wire_set_string(&new->peer_endpoint, "");
    return true;
}

static bool
s_drift_news(const Pm__NodeStatus *old, const Pm__NodeStatus *new)
{
    if (!new->n_drift)
        return false;
    if (!old || !old->n_drift)
        return true;
    return old->drift[0]->at != new->drift[0]->at ||
           strcmp(old->drift[0]->parameter, new->drift[0]->parameter) != 0;
}

size_t
pm_nodereport_drift_history(const char *label, Pm__NodeStatus *old,
                            Pm__NodeStatus *new, size_t log_max)
{
    for (size_t i = 0; i < new->n_drift_history; i++)
        pm__drift__free_unpacked(new->drift_history[i], NULL);
    PM_FREE(&new->drift_history);
    new->n_drift_history = 0;
    size_t fresh = s_drift_news(old, new) ? new->n_drift : 0;
    size_t kept = old ? old->n_drift_history : 0;
    if (fresh > PM_NODEREPORT_DRIFT_HISTORY)
        fresh = PM_NODEREPORT_DRIFT_HISTORY;
    if (fresh + kept > PM_NODEREPORT_DRIFT_HISTORY)
        kept = PM_NODEREPORT_DRIFT_HISTORY - fresh;
    if (fresh + kept == 0)
        return 0;
    new->drift_history = pm_calloc(fresh + kept, sizeof *new->drift_history);
    for (size_t i = 0; i < fresh; i++) {
        const Pm__Drift *d = new->drift[i];
        new->drift_history[i] = pm_wire_dup(&d->base);
        if (i >= log_max)
            continue;
        char *param = pm_text_escape(d->parameter, S_LOG_TEXT_MAX);
        char *found = pm_text_escape(d->found, S_LOG_TEXT_MAX);
        char *error = pm_text_escape(d->error, S_LOG_TEXT_MAX);
        pm_warn("node %s: %s was changed by hand to \"%s\"; %s%s", label, param,
                found, d->reverted ? "put back" : "not put back: ",
                d->reverted ? "" : error);
        free(param);
        free(found);
        free(error);
    }
    for (size_t i = 0; i < kept; i++) /* moved, not copied */
        new->drift_history[fresh + i] = old->drift_history[i];
    for (size_t i = kept; old && i < old->n_drift_history; i++)
        pm__drift__free_unpacked(old->drift_history[i], NULL);
    if (old)
        old->n_drift_history = 0; /* OLD is freed next: its array only */
    new->n_drift_history = fresh + kept;
    return fresh;
}
