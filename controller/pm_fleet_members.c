/* pm_fleet_members.c - MEMBERS, what the fleet tells every agent about the
 * others for signature gossip: each enrolled node's name, key, peer
 * endpoint and liveness, which node holds each database's fetch duty
 * (pm_duty), and the cluster's mirror cool-downs. Built only when
 * something it says may have changed, packed once, sent as a change to
 * agents that hold the epoch before (pm_members) and whole to the others. */
#include "pm_duty.h"
#include "pm_fleet_private.h"
#include "pm_hash.h"
#include "pm_log.h"
#include "pm_members.h"
#include "pm_mem.h"
#include "pm_nodereport.h"
#include "pm_wire.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* The key a member is known by: the one its connection authenticated
 * with, else the first enrolled for it. */
static const char *
s_public_key(const pm_fleet_node_t *n)
{
    return pm_fleet_served(n) ? n->route_key : n->keys[0];
}

static int
s_node_by_name(const void *a, const void *b)
{
    return strcmp((*(pm_fleet_node_t *const *)a)->name,
                  (*(pm_fleet_node_t *const *)b)->name);
}

/* Every enrolled node, sorted by name (so MEMBERS does not depend on hash
 * order); sets *N and *N_COOLDOWNS (their reported cool-downs, all told).
 * Caller frees the array, not the nodes. */
static pm_fleet_node_t **
s_enrolled_sorted(pm_fleet_t *self, size_t *n, size_t *n_cooldowns)
{
    pm_fleet_node_t **all =
        pm_calloc(zhashx_size(self->nodes) + 1, sizeof *all);
    size_t count = 0, cds = 0;
    for (pm_fleet_node_t *node = zhashx_first(self->nodes); node;
         node = zhashx_next(self->nodes)) {
        if (!node->n_keys)
            continue;
        all[count++] = node;
        cds += node->status ? node->status->n_cooldowns : 0;
    }
    qsort(all, count, sizeof *all, s_node_by_name);
    *n = count;
    *n_cooldowns = cds;
    return all;
}

/* The cluster's cool-downs from what NODES (N) reported, into PUB (arrays
 * the caller frees; the messages stay the nodes'); returns when the answer
 * changes by itself. One per mirror of the head policy, so no more than
 * it has (at most 16), filtered here too: a status stored before the
 * policy changed, or before reports were cut to its mirrors, may name
 * others. */
static int64_t
s_members_cooldowns(pm_fleet_t *self, pm_fleet_node_t **nodes, size_t n,
                    size_t total, Pm__Publication *pub)
{
    Pm__Cooldown **all = pm_calloc(total + 1, sizeof *all);
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        const Pm__NodeStatus *st = nodes[i]->status;
        for (size_t j = 0; st && j < st->n_cooldowns; j++)
            if (pm_nodereport_cooldown_kept(st->cooldowns[j], self->mirrors,
                                            self->n_mirrors))
                all[k++] = st->cooldowns[j];
    }
    int64_t expiry = INT64_MAX;
    pub->cooldowns = pm_calloc(total + 1, sizeof *pub->cooldowns);
    pub->n_cooldowns =
        pm_duty_cooldowns(all, k, time(NULL), pub->cooldowns, &expiry);
    free(all);
    return expiry;
}

/* The change from the current MEMBERS to NOW, of the next epoch, into
 * members_delta (nothing before the first). */
static void
s_members_delta_make(pm_fleet_t *self, const Pm__Publication *now)
{
    zmq_msg_close(&self->members_delta);
    zmq_msg_init(&self->members_delta);
    /* bytes packed here, not read from anyone: NULL only when empty */
    Pm__Publication *old = pm__publication__unpack(
        NULL, zmq_msg_size(&self->members), zmq_msg_data(&self->members));
    if (!old || !old->members_epoch) {
        if (old)
            pm__publication__free_unpacked(old, NULL);
        return;
    }
    Pm__Publication delta = PM__PUBLICATION__INIT;
    pm_members_delta(old, now, &delta);
    size_t len = 0;
    uint8_t *buf = pm_wire_pack(&delta.base, &len);
    zmq_msg_init_data(&self->members_delta, buf, len, pm_fleet_free_buf, NULL);
    pm_members_delta_clear(&delta);
    pm__publication__free_unpacked(old, NULL);
}

/* Makes the current MEMBERS publication; returns whether its bytes differ
 * from the previous one. Strings are borrowed from the nodes: the message
 * is packed before anything can change them. */
bool
pm_fleet_members_build(pm_fleet_t *self)
{
    self->members_dirty = false;
    int64_t now = zclock_mono();
    size_t n = 0, total = 0;
    pm_fleet_node_t **nodes = s_enrolled_sorted(self, &n, &total);
    Pm__Member *m = pm_calloc(n + 1, sizeof *m);
    Pm__Member **mp = pm_calloc(n + 1, sizeof *mp);
    for (size_t i = 0; i < n; i++) {
        pm__member__init(&m[i]);
        mp[i] = &m[i];
        m[i].name = nodes[i]->name;
        m[i].public_key = (char *)s_public_key(nodes[i]);
        m[i].peer_endpoint =
            nodes[i]->status ? nodes[i]->status->peer_endpoint : "";
        m[i].live = nodes[i]->live = pm_fleet_member_live(self, nodes[i], now);
    }
    Pm__Duty *d = pm_calloc(self->n_databases + 1, sizeof *d);
    Pm__Duty **dp = pm_calloc(self->n_databases + 1, sizeof *dp);
    Pm__Publication pub = PM__PUBLICATION__INIT;
    pub.kind = PM__PUBLICATION__KIND__MEMBERS;
    pub.members = mp;
    pub.n_members = n;
    pub.duties = dp;
    for (size_t i = 0; i < self->n_databases; i++) {
        long h = pm_duty_holder(self->databases[i], mp, n);
        if (h < 0)
            continue; /* nobody live: nobody fetches it */
        pm__duty__init(&d[pub.n_duties]);
        d[pub.n_duties].database = self->databases[i];
        d[pub.n_duties].node = mp[h]->name;
        dp[pub.n_duties] = &d[pub.n_duties];
        pub.n_duties++;
    }
    self->members_expiry = s_members_cooldowns(self, nodes, n, total, &pub);
    /* the digest is of what it says (epoch 0), not of when */
    size_t len = 0;
    uint8_t *buf = pm_wire_pack(&pub.base, &len);
    char digest[65];
    pm_sha256_hex(buf, len, digest);
    free(buf);
    bool changed = strcmp(digest, self->members_digest) != 0;
    if (changed) {
        memcpy(self->members_digest, digest, sizeof digest);
        pub.members_epoch = ++self->members_epoch;
        buf = pm_wire_pack(&pub.base, &len);
        s_members_delta_make(self, &pub);
        zmq_msg_close(&self->members);
        zmq_msg_init_data(&self->members, buf, len, pm_fleet_free_buf, NULL);
    }
    free(pub.cooldowns);
    free(dp);
    free(d);
    free(mp);
    free(m);
    free(nodes);
    return changed;
}

/* Whether MEMBERS may say something else now: a node came up or stopped
 * being up, or a cool-down in it ended. One pass over the nodes, no
 * hashing or packing; the rest happens only when this says so. */
static void
s_members_watch(pm_fleet_t *self)
{
    int64_t now = zclock_mono();
    if (time(NULL) >= self->members_expiry)
        self->members_dirty = true;
    for (pm_fleet_node_t *n = zhashx_first(self->nodes);
         n && !self->members_dirty; n = zhashx_next(self->nodes))
        if (n->n_keys && n->live != pm_fleet_member_live(self, n, now))
            self->members_dirty = true;
}

/* MEMBERS to N: the change, when N was sent the epoch before (a message
 * lost on the way shows in its reports: pm_fleet_members_heal), else or when
 * WHOLE the whole list. */
void
pm_fleet_members_send(pm_fleet_t *self, pm_fleet_node_t *n, bool whole)
{
    if (!pm_fleet_served(n))
        return;
    bool delta = !whole && zmq_msg_size(&self->members_delta) &&
                 n->members_sent + 1 == self->members_epoch;
    pm_fleet_send_to(self, n, delta ? &self->members_delta : &self->members);
    n->members_sent = self->members_epoch;
    n->members_sent_at = zclock_mono();
}

/* N reports holding the MEMBERS epoch HELD: if that is not the one last
 * sent it, once it had two heartbeats to arrive, the whole list again. */
void
pm_fleet_members_heal(pm_fleet_t *self, pm_fleet_node_t *n, uint64_t held)
{
    if (!n->members_sent || held == n->members_sent ||
        zclock_mono() - n->members_sent_at < 2 * self->opts.heartbeat_ms)
        return;
    pm_debug("node %s holds MEMBERS epoch %llu, not %llu: sending it whole",
             n->label, (unsigned long long)held,
             (unsigned long long)n->members_sent);
    pm_fleet_members_send(self, n, true);
}

void
pm_fleet_members_refresh(pm_fleet_t *self)
{
    s_members_watch(self);
    if (!self->members_dirty || !pm_fleet_members_build(self))
        return;
    pm_debug("membership, duties or cool-downs changed: sending MEMBERS");
    for (pm_fleet_node_t *n = zhashx_first(self->nodes); n;
         n = zhashx_next(self->nodes))
        pm_fleet_members_send(self, n, false);
}

/* Whether LIST (N) and the N_P strings of P differ. */
static bool
s_list_differs(char *const *list, size_t n, char *const *p, size_t n_p)
{
    bool same = n == n_p;
    for (size_t i = 0; same && i < n; i++)
        same = strcmp(p[i], list[i]) == 0;
    return !same;
}

/* *LIST_P (*N_P) becomes a copy of P (N). */
static void
s_list_set(char ***list_p, size_t *n_p, char *const *p, size_t n)
{
    for (size_t i = 0; i < *n_p; i++)
        free((*list_p)[i]);
    free(*list_p);
    *list_p = pm_calloc(n + 1, sizeof **list_p);
    for (size_t i = 0; i < n; i++)
        (*list_p)[i] = pm_strdup(p[i]);
    *n_p = n;
}

/* The head policy's databases become the ones with duties (none when
 * antivirus is off), its mirrors the only ones cool-downs may name. */
void
pm_fleet_set_antivirus(pm_fleet_t *self, const Pm__Policy *p)
{
    size_t n = p && p->antivirus_enabled ? p->n_antivirus_databases : 0;
    char *const *dbs = p ? p->antivirus_databases : NULL;
    size_t n_mirrors = p ? p->n_antivirus_mirrors : 0;
    char *const *mirrors = p ? p->antivirus_mirrors : NULL;
    if (s_list_differs(self->databases, self->n_databases, dbs, n)) {
        s_list_set(&self->databases, &self->n_databases, dbs, n);
        self->members_dirty = true;
    }
    if (s_list_differs(self->mirrors, self->n_mirrors, mirrors, n_mirrors)) {
        s_list_set(&self->mirrors, &self->n_mirrors, mirrors, n_mirrors);
        self->members_dirty = true;
    }
}
