/* pm_sigsync_peers.c - gossip with the members and pulls from the peers
 * that hold a newer version (whole files or CDIFFs, each verified before
 * it is used or served); a peer whose bytes fail is distrusted. See
 * pm_sigsync.h. */
#include "pm_error.h"
#include "pm_log.h"
#include "pm_mem.h"
#include "pm_peer.h"
#include "pm_sigcdiff.h"
#include "pm_sigfetch.h"
#include "pm_sigsync_private.h"
#include "pm_text.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* Bytes of a peer's or the verifier's text in a log line (escaped). */
#define S_LOG_TEXT_MAX 512

/* ---- what peers say ------------------------------------------------------ */

void
pm_sigsync_learn(pm_sigsync_state_t *self, const char *peer,
                 const Pm__PeerMessage *msg)
{
    if (pm_sigbook_distrusted(self->book, peer))
        return; /* its claims are what made it distrusted */
    for (size_t i = 0; i < msg->n_databases; i++) {
        pm_sigsync_db_t *db = pm_sigsync_db_find(self, msg->databases[i]->name);
        if (!db)
            continue;
        unsigned v = msg->databases[i]->version;
        if (!v)
            continue;
        pm_sigsync_held_t *held = pm_malloc(sizeof *held);
        held->version = v;
        held->cdiff_from = msg->databases[i]->cdiff_from;
        zhashx_update(db->holders, peer, held);
        if (v > db->newest) {
            db->newest = v;
            pm_sigsync_news(self);
        }
    }
    for (size_t j = 0; j < msg->n_cooldowns; j++)
        pm_sigsync_cool(self, msg->cooldowns[j]->mirror,
                        msg->cooldowns[j]->http_status,
                        msg->cooldowns[j]->until, msg->cooldowns[j]->node);
}

static void
s_distrust(pm_sigsync_state_t *self, const char *peer, const char *reason)
{
    int secs = self->cfg.distrust_s;
    pm_sigbook_distrust(self->book, peer, secs, reason);
    char *shown = pm_text_escape(reason, S_LOG_TEXT_MAX);
    pm_warn("node %s: distrusting peer %s for %d s: %s", self->node, peer, secs,
            shown);
    free(shown);
}

/* ---- pulling from peers -------------------------------------------------- */

/* A holder a pull from timed out is not asked for this long, doubled for
 * each timeout in a row (within a back-off's length of the last one's
 * end) up to the distrust period. Not distrusted: an honest holder may be
 * loaded. But its next claim must not cost this node a pull's timeout
 * every gossip round (before, it counted again as soon as it gossiped
 * again). */
#define S_SLOW_FIRST_MS 60000

static bool
s_is_slow(pm_sigsync_state_t *self, const char *peer)
{
    const pm_sigsync_slow_t *slow = zhashx_lookup(self->slow, peer);
    return slow && zclock_mono() < slow->until;
}

/* A pull from PEER ended with RC: a timeout (not this node's own stop)
 * sets it aside; an arrival clears that. */
static void
s_note_pull(pm_sigsync_state_t *self, const char *peer, int rc)
{
    if (rc == PM_OK) {
        zhashx_delete(self->slow, peer);
        return;
    }
    if (rc != PM_ETIMEDOUT || pm_sigsync_stopping(self))
        return;
    pm_sigsync_slow_t *slow = zhashx_lookup(self->slow, peer);
    if (!slow) {
        slow = pm_calloc(1, sizeof *slow);
        zhashx_insert(self->slow, peer, slow);
    }
    int64_t max = self->cfg.distrust_s * (int64_t)1000;
    int64_t now = zclock_mono();
    if (now > slow->until + slow->backoff_ms) /* not in a row: anew */
        slow->backoff_ms = 0;
    slow->backoff_ms =
        slow->backoff_ms ? 2 * slow->backoff_ms : S_SLOW_FIRST_MS;
    if (slow->backoff_ms > max)
        slow->backoff_ms = max;
    slow->until = now + slow->backoff_ms;
    pm_info("node %s: not pulling from peer %s for %lld s: a pull from it "
            "timed out",
            self->node, peer, (long long)(slow->backoff_ms / 1000));
}

/* Member PEER, when this node may pull from it (a member it trusts, that
 * serves, not itself, not set aside as slow), else NULL. */
static const pm_sigmember_t *
s_pullable(pm_sigsync_state_t *self, const char *peer)
{
    const pm_sigmember_t *m = pm_sigmembers_find(self->members, peer);
    if (!m || !*m->endpoint || pm_sigbook_distrusted(self->book, peer) ||
        strcmp(peer, self->node) == 0 || s_is_slow(self, peer))
        return NULL;
    return m;
}

/* DB's newest version as its holders say now (at least the one held): a
 * version only a holder that is gone claimed (distrusted, left) must not
 * keep the others from being pulled from. */
static void
s_renew_newest(pm_sigsync_db_t *db)
{
    db->newest = db->version;
    for (pm_sigsync_held_t *h = zhashx_first(db->holders); h;
         h = zhashx_next(db->holders))
        if (h->version > db->newest)
            db->newest = h->version;
}

/* A random pullable member holding the newest version a pullable member
 * holds (DB's newest becomes it), or NULL: one this node keeps a link to
 * when there is one (its pull costs no handshake and leaves the gossip
 * view as it is), else any; uniformly among them, which spreads the load
 * (in a cluster of up to PM_SIGMEMBERS_LINKS_MAX + 1 nodes every member
 * is linked). */
const pm_sigmember_t *
pm_sigsync_pick_holder(pm_sigsync_state_t *self, pm_sigsync_db_t *db)
{
    /* the newest version a pullable holder has is the one to pull */
    unsigned best = 0;
    for (pm_sigsync_held_t *h = zhashx_first(db->holders); h;
         h = zhashx_next(db->holders))
        if (h->version > best && s_pullable(self, zhashx_cursor(db->holders)))
            best = h->version;
    if (best <= db->version)
        return NULL;
    db->newest = best;
    const pm_sigmember_t *pick[2] = {NULL, NULL}; /* any, linked */
    unsigned seen[2] = {0, 0};
    for (void *v = zhashx_first(db->holders); v; v = zhashx_next(db->holders)) {
        const pm_sigmember_t *m = s_pullable(self, zhashx_cursor(db->holders));
        if (((pm_sigsync_held_t *)v)->version != best || !m)
            continue;
        bool linked = pm_sigmembers_linked(self->members, m);
        for (int k = 0; k <= (int)linked; k++)
            if (pm_sigsync_rand(self) % ++seen[k] == 0) /* reservoir */
                pick[k] = m;
    }
    return pick[1] ? pick[1] : pick[0];
}

/* Whether DB catches up from holder PEER by CDIFF: it holds a version,
 * larger than cdiff_min_kib, and the peer keeps every CDIFF from there to
 * the newest. */
static bool
s_by_cdiff(pm_sigsync_state_t *self, const pm_sigsync_db_t *db,
           const char *peer)
{
    const pm_sigsync_held_t *held = zhashx_lookup(db->holders, peer);
    if (!db->version || !held || !held->cdiff_from ||
        held->cdiff_from > db->version + 1 ||
        db->newest - db->version > PM_SIGFETCH_CDIFF_STEPS)
        return false;
    static const char *const exts[] = {"cld", "cvd"};
    off_t size = 0;
    for (size_t i = 0; i < 2; i++) {
        char *path =
            pm_asprintf("%s/%s.%s", self->cfg.dbdir, db->name, exts[i]);
        struct stat st;
        if (stat(path, &st) == 0 && st.st_size > size)
            size = st.st_size;
        free(path);
    }
    return size / 1024 > self->cfg.cdiff_min_kib;
}

/* Brings DB to its newest version with the CDIFFs of the peer at LINK, applied
 * by privmta-sigfetch as the fetch user and checked as any new file
 * (pm_sigcdiff.h); fills *GOT. PM_EPROTO when the peer's bytes are at
 * fault (the caller distrusts it), else the whole file is the way. */
static int
s_catch_up(pm_sigsync_state_t *self, pm_sigsync_db_t *db, pm_peer_link_t *link,
           pm_sigfile_t *got, char **why)
{
    const char *dbdir = self->cfg.dbdir, *names[] = {db->name};
    char *inbox = NULL, *stage = pm_asprintf("%s/%s", dbdir, PM_SIGSTORE_FETCH);
    pm_sigfetch_report_t *rep = NULL;
    int rc = pm_sigcdiff_stage(dbdir, false, 0, 0, &inbox, why);
    if (rc == PM_OK)
        rc = pm_peer_link_pull_cdiffs(link, db->name, db->version, db->newest,
                                      inbox, self->cfg.peer_timeout_ms, why);
    if (rc == PM_OK)
        rc = pm_sigstore_stage(dbdir, self->fetch_uid, self->fetch_gid, names,
                               1, why);
    pm_sigfetch_opts_t o = {.dbdir = stage,
                            .databases = names,
                            .n_databases = 1,
                            .cdiff_dir = inbox,
                            .cancelled = pm_sigsync_fetch_cancelled,
                            .cancel_arg = self,
                            .user = self->cfg.fetch_user};
    /* the helper failing (stopped, killed, a report that fails the gate)
     * is not the peer's fault: the whole file then */
    if (rc == PM_OK && pm_sigfetch_spawn(self->cfg.fetcher, &o, &rep, why))
        rc = PM_EINTERNAL;
    if (rc == PM_OK && rep->dbs[0].err != PM_OK) {
        rc = rep->dbs[0].err == PM_EPROTO ? PM_EPROTO : PM_EINTERNAL;
        pm_why(why, "sigsync", "%s", rep->dbs[0].why);
    }
    if (rc == PM_OK)
        rc = pm_sigstore_take(dbdir, db->name, db->version, self->verifier,
                              PM_SIGSTORE_VERIFY_MS, got, why);
    if (rc == PM_OK)
        pm_sigcdiff_keep(dbdir, false, db->name, db->version, got->version);
    pm_sigfetch_report_destroy(&rep);
    free(inbox);
    free(stage);
    return rc;
}

/* Pulls DB's newest version from one holder: by CDIFF when both sides
 * can, else the whole file. True when it arrived. */
static bool
s_pull(pm_sigsync_state_t *self, pm_sigsync_db_t *db)
{
    const pm_sigmember_t *m = pm_sigsync_pick_holder(self, db);
    if (!m)
        return false;
    char *peer = pm_strdup(m->name), *why = NULL;
    /* over the kept link when there is one, else over a connection of the
     * pull's own: a pull does not change whom this node gossips with */
    pm_peer_link_t *kept = pm_sigmembers_linked(self->members, m)
                               ? pm_sigmembers_link(self->members, m)
                               : NULL;
    pm_peer_link_t *once =
        kept ? NULL : pm_peer_link_new(self->cfg.cert, m->endpoint, m->key);
    pm_peer_link_t *link = kept ? kept : once;
    pm_sigfile_t got = {0};
    int rc = PM_ENOTFOUND;
    bool cdiff = s_by_cdiff(self, db, peer);
    if (cdiff && (rc = s_catch_up(self, db, link, &got, &why)) != PM_OK &&
        rc != PM_EPROTO) {
        char *shown =
            pm_text_escape(why ? why : pm_strerror(rc), S_LOG_TEXT_MAX);
        pm_info("node %s: %s by CDIFF from peer %s failed, the whole file "
                "then: %s",
                self->node, db->name, peer, shown);
        free(shown);
        cdiff = false;
        rc = PM_ENOTFOUND;
    }
    /* a .cld (built from CDIFFs) or a whole .cvd: ask for what it has */
    static const char *const exts[] = {"cld", "cvd"};
    for (size_t i = 0; !cdiff && i < 2 && rc == PM_ENOTFOUND; i++) {
        char *file = pm_asprintf("%s.%s", db->name, exts[i]);
        PM_FREE(&why);
        rc = pm_peer_link_pull(link, self->cfg.dbdir, file, db->newest,
                               self->verifier, self->cfg.peer_timeout_ms, &got,
                               &why);
        free(file);
    }
    if (rc == PM_OK) {
        PM_FREE(&db->error);
        pm_sigsync_got(
            self, db, &got,
            pm_asprintf("peer %s%s", peer, cdiff ? " by CDIFF" : ""));
    } else if (rc == PM_EPROTO) {
        char *reason = pm_asprintf("%s version %u: %s", db->name, db->newest,
                                   why ? why : "protocol error");
        s_distrust(self, peer, reason);
        free(reason);
    } else {
        char *error =
            pm_asprintf("%s version %u from peer %s: %s", db->name, db->newest,
                        peer, why ? why : pm_strerror(rc));
        if (!db->error ||
            strcmp(error, db->error) != 0) { /* once, not per round */
            char *shown = pm_text_escape(error, S_LOG_TEXT_MAX);
            pm_info("node %s: %s", self->node, shown);
            free(shown);
        }
        free(db->error);
        db->error = error;
    }
    s_note_pull(self, peer, rc);
    if (rc != PM_OK) {
        /* forgotten as a holder until it says again what it holds: a
         * version only it claimed (a member gone, or lying) must not keep
         * the others from being pulled from */
        zhashx_delete(db->holders, peer);
        s_renew_newest(db);
    }
    pm_peer_link_destroy(&once);
    free(why);
    free(peer);
    return rc == PM_OK;
}

/* Pulls every database a peer holds newer; true when anything arrived. */
bool
pm_sigsync_pull_newer(pm_sigsync_state_t *self)
{
    bool got = false;
    for (size_t i = 0; self->enabled && i < self->n_dbs; i++) {
        pm_sigsync_db_t *db = self->dbs[i];
        /* a holder that fails leaves the others: try each once */
        size_t tries = zhashx_size(db->holders);
        while (db->newest > db->version && tries-- &&
               !pm_sigsync_stopping(self)) {
            if (s_pull(self, db)) {
                got = true;
                break;
            }
            if (!pm_sigsync_pick_holder(self, db))
                break;
        }
    }
    return got;
}

/* ---- gossip -------------------------------------------------------------- */

static uint64_t
s_rand_cb(void *self)
{
    return pm_sigsync_rand(self);
}

static size_t
s_fanout(const pm_sigsync_state_t *self)
{
    /* a round uses its links at once: never more than are kept */
    size_t fan = self->cfg.fanout > 0 ? (size_t)self->cfg.fanout : 3;
    size_t max = pm_sigmembers_links_max(self->members);
    return fan < max ? fan : max;
}

/* Push-pull with up to FANOUT live members (pm_sigmembers_pick), all at
 * once: a round costs one round trip, and a silent member does not hold
 * up the others. */
void
pm_sigsync_gossip(pm_sigsync_state_t *self)
{
    size_t n = 0, fan = s_fanout(self);
    size_t count = pm_sigmembers_count(self->members);
    const pm_sigmember_t **pick = pm_calloc(count + 1, sizeof *pick);
    for (size_t i = 0; i < count; i++) {
        const pm_sigmember_t *m = pm_sigmembers_at(self->members, i);
        if (m->live && *m->endpoint && strcmp(m->name, self->node) != 0 &&
            !pm_sigbook_distrusted(self->book, m->name))
            pick[n++] = m;
    }
    fan = pm_sigmembers_pick(self->members, pick, n, fan, s_rand_cb, self);
    pm_peer_link_t **to = pm_calloc(fan + 1, sizeof *to);
    Pm__PeerMessage **theirs = pm_calloc(fan + 1, sizeof *theirs);
    for (size_t k = 0; k < fan; k++)
        to[k] = pm_sigmembers_link(self->members, pick[k]);
    Pm__PeerMessage *mine = pm_sigsync_versions(self);
    if (fan && !pm_sigsync_stopping(self))
        pm_peer_exchange_links(to, fan, mine, theirs,
                               self->cfg.peer_timeout_ms);
    bool answered = fan == 0; /* nobody to ask: nothing to learn */
    for (size_t k = 0; k < fan; k++) {
        if (!theirs[k])
            continue;
        pm_sigsync_learn(self, pick[k]->name, theirs[k]);
        pm__peer_message__free_unpacked(theirs[k], NULL);
        answered = true;
    }
    pm__peer_message__free_unpacked(mine, NULL);
    if (answered)
        self->heard = zclock_mono();
    free(theirs);
    free(to);
    free(pick);
}

/* ClamAV rebuilds its daily database several times a day, and libclamav
 * warns when the daily it loads is more than 7 days old. Mirrors that
 * stopped moving (a private mirror whose update job broke) answer every
 * check "nothing newer", so without this a node would look fine for good. */
#define S_DAILY_MAX_AGE_S (7 * 24 * 3600)

/* What is wrong with DB at NOW though every step succeeded (NULL:
 * nothing): 2+ versions behind the newest a peer holds for longer than
 * one check period, or a daily database too old. */
static char *
s_stale(pm_sigsync_state_t *self, pm_sigsync_db_t *db, time_t now)
{
    if (db->newest < db->version + 2)
        db->behind_since = 0;
    else if (!db->behind_since)
        db->behind_since = now;
    if (db->behind_since && now - db->behind_since > (time_t)self->freq_s)
        return pm_asprintf("version %u, %u versions behind the cluster's %u",
                           db->version, db->newest - db->version, db->newest);
    if (strcmp(db->name, "daily") == 0 && db->built &&
        now - db->built > S_DAILY_MAX_AGE_S)
        return pm_asprintf("version %u was built %lld days ago, and ClamAV "
                           "rebuilds daily several times a day: are the "
                           "mirrors still updated?",
                           db->version, (long long)(now - db->built) / 86400);
    return NULL;
}

void
pm_sigsync_check_stale(pm_sigsync_state_t *self)
{
    time_t now = time(NULL);
    for (size_t i = 0; i < self->n_dbs; i++) {
        pm_sigsync_db_t *db = self->dbs[i];
        char *why = s_stale(self, db, now);
        if (why && !db->error) /* a failed step says more */
            db->error = why;
        else
            free(why);
    }
}

/* After something new arrived: serve it, and tell FANOUT peers now rather
 * than at the next round, so a version spreads in rounds of round trips. */
void
pm_sigsync_spread(pm_sigsync_state_t *self)
{
    pm_sigsync_hold(self);
    pm_sigsync_gossip(self);
}