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

void
pm_nodereport_own_cooldowns(const char *node, Pm__NodeStatus *new, int64_t now)
{
    int64_t cap = now + PM_WIRE_COOLDOWN_MAX;
    for (size_t i = 0; i < new->n_cooldowns; i++) {
        if (!*new->cooldowns[i]->node)
            pm_wire_set_string(&new->cooldowns[i]->node, node);
        if (new->cooldowns[i]->until > cap)
            new->cooldowns[i]->until = cap;
    }
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

void
pm_nodereport_drift_history(const char *label, Pm__NodeStatus *old,
                            Pm__NodeStatus *new)
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
        return;
    new->drift_history = pm_calloc(fresh + kept, sizeof *new->drift_history);
    for (size_t i = 0; i < fresh; i++) {
        const Pm__Drift *d = new->drift[i];
        new->drift_history[i] = pm_wire_dup(&d->base);
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
}
