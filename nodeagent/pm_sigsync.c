/* pm_sigsync.c - the signature actor: what this node holds, its status,
 * the policy and membership it is given, its loop. See pm_sigsync.h;
 * gossip and pulls are in pm_sigsync_peers.c, the fetch duty in
 * pm_sigsync_duty.c. */
#include "pm_actor.h"
#include "pm_error.h"
#include "pm_file.h"
#include "pm_log.h"
#include "pm_mem.h"
#include "pm_peer.h"
#include "pm_priv.h"
#include "pm_sigcdiff.h"
#include "pm_sigsync_private.h"
#include "pm_text.h"
#include "pm_wire.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Bytes of a helper's or peer's text shown in a log line (escaped). */
#define S_LOG_TEXT_MAX 512

/* Frees a plain malloc'd item (holders, slow peers). */
static void
s_item_free(void **item)
{
    free(*item);
    *item = NULL;
}

/* ---- small state helpers ------------------------------------------------ */

/* Commands read while a step runs wait in the backlog (the header says
 * why). */
bool
pm_sigsync_stopping(pm_sigsync_state_t *self)
{
    if (zsys_interrupted)
        self->stopping = true;
    while (!self->term && (zsock_events(self->pipe) & ZMQ_POLLIN)) {
        zmsg_t *msg = pm_actor_recv(self->pipe);
        if (!msg || zframe_streq(zmsg_first(msg), "$TERM")) {
            self->stopping = self->term = true;
            zmsg_destroy(&msg);
        } else {
            zlist_append(self->backlog, msg);
        }
    }
    return self->stopping;
}

bool
pm_sigsync_fetch_cancelled(void *self)
{
    return pm_sigsync_stopping(self);
}

uint64_t
pm_sigsync_rand(pm_sigsync_state_t *self)
{
    /* xorshift64: only spreads peers, nothing secret depends on it */
    self->rnd ^= self->rnd << 13;
    self->rnd ^= self->rnd >> 7;
    self->rnd ^= self->rnd << 17;
    return self->rnd;
}

void
pm_sigsync_set_str(char **slot, const char *value)
{
    free(*slot);
    *slot = value ? pm_strdup(value) : NULL;
}

static void
s_db_free(pm_sigsync_db_t **db_p)
{
    pm_sigsync_db_t *db = *db_p;
    if (!db)
        return;
    free(db->name);
    free(db->file);
    free(db->source);
    free(db->error);
    zhashx_destroy(&db->holders);
    free(db);
    *db_p = NULL;
}

/* Takes the database called NAME out of SELF's list, its slot left NULL
 * (s_on_policy frees what is left), or NULL. */
static pm_sigsync_db_t *
s_take_db(pm_sigsync_state_t *self, const char *name)
{
    for (size_t j = 0; j < self->n_dbs; j++)
        if (self->dbs[j] && strcmp(self->dbs[j]->name, name) == 0) {
            pm_sigsync_db_t *db = self->dbs[j];
            self->dbs[j] = NULL;
            return db;
        }
    return NULL;
}

pm_sigsync_db_t *
pm_sigsync_db_find(pm_sigsync_state_t *self, const char *name)
{
    for (size_t i = 0; i < self->n_dbs; i++)
        if (strcmp(self->dbs[i]->name, name) == 0)
            return self->dbs[i];
    return NULL;
}

/* ---- what this node holds ------------------------------------------------ */

/* PATH is not used, for WHY: the verifier's words, escaped (it runs
 * libclamav on files peers sent, as another user). */
static void
s_warn_unused(pm_sigsync_state_t *self, const char *path, const char *why)
{
    char *shown = pm_text_escape(why, S_LOG_TEXT_MAX);
    pm_warn("node %s: %s is not used: %s", self->node, path, shown);
    free(shown);
}

/* The header of DBDIR/NAME.cld or NAME.cvd, whichever is newer, read by
 * pm_sigverify's helper (libclamav runs there, never in the root agent).
 * Files got into DBDIR verified (pm_sigfetch, pm_peer). */
static void
s_local(pm_sigsync_state_t *self, pm_sigsync_db_t *db)
{
    static const char *const exts[] = {"cld", "cvd"};
    db->version = db->sigs = 0;
    db->built = 0;
    free(db->file);
    db->file = NULL;
    for (size_t i = 0; i < 2; i++) {
        char *file = pm_asprintf("%s.%s", db->name, exts[i]);
        char *path = pm_asprintf("%s/%s", self->cfg.dbdir, file);
        pm_sigfile_t got = {0};
        char *why = NULL;
        if (access(path, R_OK) == 0 &&
            pm_sigverify_head(self->verifier, path, db->name,
                              PM_SIGSTORE_VERIFY_MS, &got.version, &got.sigs,
                              &got.built, &why) != PM_OK)
            s_warn_unused(self, path, why);
        if (got.version > db->version) {
            db->version = got.version;
            db->sigs = got.sigs;
            db->built = got.built;
            free(db->file);
            db->file = file;
            file = NULL;
        }
        free(why);
        free(file);
        free(path);
    }
    db->cdiff_from = pm_sigcdiff_from(self->cfg.dbdir, db->name, db->version);
    self->hold_files = true;
}

/* The file pm_sigstore_install just put in place for DB: NAME.cld or
 * NAME.cvd, the other one removed. */
static void
s_installed(pm_sigsync_state_t *self, pm_sigsync_db_t *db)
{
    static const char *const exts[] = {"cld", "cvd"};
    free(db->file);
    db->file = NULL;
    for (size_t i = 0; i < 2 && !db->file; i++) {
        char *file = pm_asprintf("%s.%s", db->name, exts[i]);
        char *path = pm_asprintf("%s/%s", self->cfg.dbdir, file);
        if (access(path, F_OK) == 0)
            db->file = file;
        else
            free(file);
        free(path);
    }
    self->hold_files = true;
}

/* DB is now at GOT (installed here), brought by SOURCE (taken). The
 * status goes out at once: the milter may load the file within
 * milliseconds, and the gossip that follows can wait a peer timeout on
 * each silent member (test_signatures saw `nodes` show the new version
 * loaded beside the old one held, seconds after the pull). */
void
pm_sigsync_got(pm_sigsync_state_t *self, pm_sigsync_db_t *db,
               const pm_sigfile_t *got, char *source)
{
    db->version = got->version;
    db->sigs = got->sigs;
    db->built = got->built;
    s_installed(self, db);
    free(db->source);
    db->source = source;
    db->cdiff_from = pm_sigcdiff_from(self->cfg.dbdir, db->name, db->version);
    pm_info("node %s: %s version %u from %s", self->node, db->name, db->version,
            source);
    pm_sigsync_news(self);
    pm_sigsync_status(self);
}

/* Removes the files of a database the policy no longer names. */
static void
s_forget_files(pm_sigsync_state_t *self, const char *name)
{
    static const char *const exts[] = {"cld", "cvd", "cud"};
    for (size_t i = 0; i < 3; i++) {
        char *path = pm_asprintf("%s/%s.%s", self->cfg.dbdir, name, exts[i]);
        if (unlink(path) == 0)
            pm_info("node %s: removed %s (no longer in antivirus.databases)",
                    self->node, path);
        free(path);
    }
    pm_sigcdiff_from(self->cfg.dbdir, name, 0); /* its kept CDIFFs too */
}

static Pm__SignatureDb *
s_db_msg(const pm_sigsync_db_t *db, bool full)
{
    Pm__SignatureDb *m = pm_malloc(sizeof *m);
    pm__signature_db__init(m);
    m->name = pm_strdup(db->name);
    m->version = db->version;
    m->sigs = db->sigs;
    m->built = db->built;
    m->cdiff_from = db->cdiff_from;
    if (full) {
        m->source = pm_strdup(db->source ? db->source : "");
        m->last_check = db->last_check;
        m->next_check = db->duty ? db->next_check : 0;
        m->error = pm_strdup(db->error ? db->error : "");
    }
    return m;
}

/* What we hold and know, as gossip carries it (caller frees). */
Pm__PeerMessage *
pm_sigsync_versions(pm_sigsync_state_t *self)
{
    Pm__PeerMessage *m = pm_malloc(sizeof *m);
    pm__peer_message__init(m);
    m->kind = PM__PEER_MESSAGE__KIND__VERSIONS;
    m->databases = pm_calloc(self->n_dbs + 1, sizeof *m->databases);
    for (size_t i = 0; i < self->n_dbs; i++)
        if (self->dbs[i]->version)
            m->databases[m->n_databases++] = s_db_msg(self->dbs[i], false);
    m->cooldowns = pm_sigbook_cooldowns(self->book, &m->n_cooldowns);
    return m;
}

/* Whether BUF (LEN bytes) differs from *LAST, then kept there: every
 * round asks, only a change costs a message. */
static bool
s_changed(zchunk_t **last, const uint8_t *buf, size_t len)
{
    if (*last && zchunk_size(*last) == len &&
        memcmp(zchunk_data(*last), buf, len) == 0)
        return false;
    zchunk_destroy(last);
    *last = zchunk_new(buf, len);
    return true;
}

/* Sends MSG packed after CMD to TO when it differs from *LAST. */
static void
s_send_changed(zsock_t *to, const char *cmd, const ProtobufCMessage *msg,
               zchunk_t **last)
{
    size_t len = 0;
    uint8_t *buf = pm_wire_pack(msg, &len);
    if (s_changed(last, buf, len))
        zsock_send(to, "sb", cmd, buf, len);
    free(buf);
}

/* Tells the peer service what to answer with. */
void
pm_sigsync_hold(pm_sigsync_state_t *self)
{
    if (!self->peer)
        return;
    Pm__PeerMessage *m = pm_sigsync_versions(self);
    size_t len = 0;
    uint8_t *buf = pm_wire_pack(&m->base, &len);
    if (s_changed(&self->last_hold, buf, len) || self->hold_files) {
        /* the file of each database in the message, in its order */
        char **files = pm_calloc(m->n_databases + 1, sizeof *files);
        for (size_t i = 0, k = 0; i < self->n_dbs; i++)
            if (self->dbs[i]->version)
                files[k++] = self->dbs[i]->file;
        pm_peer_hold(self->peer, self->cfg.dbdir, m, files);
        free(files);
        self->hold_files = false;
    }
    free(buf);
    pm__peer_message__free_unpacked(m, NULL);
}

/* ---- status -------------------------------------------------------------- */

void
pm_sigsync_status(pm_sigsync_state_t *self)
{
    Pm__NodeStatus st = PM__NODE_STATUS__INIT;
    st.name = self->node;
    st.peer_endpoint = self->endpoint;
    Pm__SignatureDb **dbs = pm_calloc(self->n_dbs + 1, sizeof *dbs);
    for (size_t i = 0; i < self->n_dbs; i++)
        dbs[i] = s_db_msg(self->dbs[i], true);
    st.databases = dbs;
    st.n_databases = self->n_dbs;
    st.cooldowns = pm_sigbook_cooldowns(self->book, &st.n_cooldowns);
    size_t nd = 0;
    Pm__Distrust **ds = pm_sigbook_distrusts(self->book, &nd);
    st.distrusted = ds;
    st.n_distrusted = nd;
    s_send_changed(self->pipe, "STATUS", &st.base, &self->last_status);
    st.name = st.peer_endpoint = NULL; /* not ours to free */
    for (size_t i = 0; i < st.n_databases; i++)
        pm__signature_db__free_unpacked(dbs[i], NULL);
    for (size_t i = 0; i < st.n_cooldowns; i++)
        pm__cooldown__free_unpacked(st.cooldowns[i], NULL);
    for (size_t i = 0; i < nd; i++)
        pm__distrust__free_unpacked(ds[i], NULL);
    free(dbs);
    free(st.cooldowns);
    free(ds);
}

/* ---- what the controller and the peers say ------------------------------- */

static void
s_on_policy(pm_sigsync_state_t *self, const Pm__Policy *p)
{
    self->enabled = p->antivirus_enabled;
    uint32_t freq =
        p->antivirus_update_frequency ? p->antivirus_update_frequency : 7200;
    if (freq != self->freq_s) {
        /* a duty's next check follows the new period from the last one:
         * 2h -> 15m must not wait out the 2h */
        self->freq_s = freq;
        for (size_t i = 0; i < self->n_dbs; i++)
            if (self->dbs[i]->duty)
                pm_sigsync_replan(self, self->dbs[i]);
    }
    for (size_t i = 0; i < self->n_mirrors; i++)
        free(self->mirrors[i]);
    free(self->mirrors);
    self->n_mirrors = p->n_antivirus_mirrors;
    self->mirrors = pm_calloc(self->n_mirrors + 1, sizeof *self->mirrors);
    for (size_t i = 0; i < self->n_mirrors; i++)
        self->mirrors[i] = pm_strdup(p->antivirus_mirrors[i]);
    /* keep what is still named, add the new names, drop the rest */
    pm_sigsync_db_t **dbs =
        pm_calloc(p->n_antivirus_databases + 1, sizeof *dbs);
    for (size_t i = 0; i < p->n_antivirus_databases; i++) {
        const char *name = p->antivirus_databases[i];
        pm_sigsync_db_t *db = s_take_db(self, name);
        if (!db) {
            db = pm_calloc(1, sizeof *db);
            db->name = pm_strdup(name);
            db->holders = zhashx_new();
            zhashx_set_destructor(db->holders, s_item_free);
            s_local(self, db);
        }
        dbs[i] = db;
    }
    for (size_t j = 0; j < self->n_dbs; j++)
        if (self->dbs[j]) {
            s_forget_files(self, self->dbs[j]->name);
            s_db_free(&self->dbs[j]);
        }
    free(self->dbs);
    self->dbs = dbs;
    self->n_dbs = p->n_antivirus_databases;
    pm_sigsync_apply_duties(self);
}

static void
s_on_members(pm_sigsync_state_t *self, const Pm__Publication *pub)
{
    pm_sigmembers_set(self->members, pub);
    self->members_at = zclock_mono();
    pm_sigsync_apply_duties(self);
    /* the controller's list: taken whole, also before the policy came */
    for (size_t j = 0; j < pub->n_cooldowns; j++)
        pm_sigbook_cool(self->book, pub->cooldowns[j]->mirror,
                        pub->cooldowns[j]->http_status,
                        pub->cooldowns[j]->until, pub->cooldowns[j]->node);
}

/* Every round: a push-pull with FANOUT members, then the duty's mirror
 * check. Pull matters as much as push: the quiet nodes' asking finds the
 * last few every push missed. Measured at 60 nodes (fetcher -> all, idle
 * CPU of all agents): FANOUT every round 467 ms, 62 % of a core; one
 * member a round 601 ms, 54 %; news told for log4(N) rounds with a
 * push-pull every 10 s, 1072 ms, 22 % - a rumour alone leaves a slow
 * tail. Serf: 892 ms, 19 %.
 * Peers before the mirror: what a peer already holds is pulled, and the
 * mirror check that follows finds nothing to download. A duty that moves
 * to a node that joined late (members come up one by one) would
 * otherwise download the whole file once more (seen under load: the
 * test database fetched three times at a cluster's start); a new duty
 * also waits for a round in which a peer answered (s_duty_settled). */
static void
s_round(pm_sigsync_state_t *self)
{
    pm_sigbook_expire(self->book);
    pm_sigsync_gossip(self);
    while (!pm_sigsync_stopping(self) && pm_sigsync_pull_newer(self))
        pm_sigsync_spread(self);
    if (!pm_sigsync_stopping(self) && pm_sigsync_fetch_due(self))
        pm_sigsync_spread(self);
    if (pm_sigsync_stopping(self))
        return;
    pm_sigsync_check_stale(self);
    pm_sigsync_hold(self);
    pm_sigsync_status(self);
}

/* ---- the actor ----------------------------------------------------------- */

/* After S_QUIET_ROUNDS rounds that brought nothing new, a node gossips
 * every S_QUIET_FACTOR rounds' time until something new comes (QUIET
 * counts the rounds ended since the news, the one it came in too). What
 * spreads a version is the push of each node that gets it (at once, then
 * every round while it is news, to FANOUT members), which a quiet cluster
 * still does at full speed; the rounds of nodes with nothing to tell
 * find the last few a push missed, and were most of an idle cluster's
 * CPU (bench_signatures.sh, N=60: 68 % of a core for the 60 agents,
 * Serf's 15 %). */
#define S_QUIET_ROUNDS 10
#define S_QUIET_FACTOR 5

static int
s_gossip_ms(const pm_sigsync_state_t *self)
{
    return self->cfg.gossip_ms > 0 ? self->cfg.gossip_ms : 200;
}

static int
s_round_ms(const pm_sigsync_state_t *self)
{
    int ms = s_gossip_ms(self);
    return self->quiet > S_QUIET_ROUNDS ? ms * S_QUIET_FACTOR : ms;
}

void
pm_sigsync_news(pm_sigsync_state_t *self)
{
    self->quiet = 0;
    int64_t soon = zclock_mono() + s_gossip_ms(self);
    if (self->next_round > soon)
        self->next_round = soon;
}

bool
pm_sigsync_cool(pm_sigsync_state_t *self, const char *mirror, int http,
                time_t until, const char *node)
{
    bool ours = false;
    for (size_t i = 0; i < self->n_mirrors && !ours; i++)
        ours = strcmp(self->mirrors[i], mirror) == 0;
    if (!ours || !pm_sigbook_cool(self->book, mirror, http, until, node))
        return false;
    pm_sigsync_news(self); /* a deadline spreads as fast as a version */
    return true;
}

static void
s_destroy(pm_sigsync_state_t **self_p)
{
    pm_sigsync_state_t *self = *self_p;
    if (!self)
        return;
    zactor_destroy(&self->peer);
    for (zmsg_t *m = zlist_pop(self->backlog); m; m = zlist_pop(self->backlog))
        zmsg_destroy(&m);
    zlist_destroy(&self->backlog);
    for (size_t i = 0; i < self->n_dbs; i++)
        s_db_free(&self->dbs[i]);
    free(self->dbs);
    for (size_t i = 0; i < self->n_mirrors; i++)
        free(self->mirrors[i]);
    free(self->mirrors);
    pm_sigmembers_destroy(&self->members);
    pm_sigbook_destroy(&self->book);
    zhashx_destroy(&self->slow);
    pm_sigverify_destroy(&self->verifier);
    zchunk_destroy(&self->last_status);
    zchunk_destroy(&self->last_hold);
    free(self->node);
    free(self->endpoint);
    free((char *)self->cfg.dbdir);
    free((char *)self->cfg.fetcher);
    free((char *)self->cfg.fetch_user);
    free((char *)self->cfg.verify_user);
    free((char *)self->cfg.peer_bind);
    free((char *)self->cfg.peer_host);
    free((char *)self->cfg.members_file);
    free((char *)self->cfg.name);
    free(self);
    *self_p = NULL;
}

/* ENDPOINT ("tcp://0.0.0.0:7301") with its host replaced by HOST. */
static char *
s_advertised(const char *endpoint, const char *host)
{
    const char *colon = strrchr(endpoint, ':');
    if (!host || !*host || !colon || strncmp(endpoint, "tcp://", 6) != 0)
        return pm_strdup(endpoint);
    return pm_asprintf("tcp://%s%s", host, colon);
}

static bool
s_start_peer(pm_sigsync_state_t *self)
{
    if (!self->cfg.peer_bind) {
        self->endpoint = pm_strdup("");
        return true;
    }
    pm_peer_config_t pc = {.cert = self->cfg.cert,
                           .bind = self->cfg.peer_bind,
                           .dbdir = self->cfg.dbdir,
                           .name = self->node,
                           .gossip_queued = &self->gossip_queued};
    self->peer = pm_peer_new(&pc);
    if (!self->peer)
        return false;
    zstr_send(self->peer, "ENDPOINT");
    char *bound = zstr_recv(self->peer);
    self->endpoint = s_advertised(bound ? bound : "", self->cfg.peer_host);
    free(bound);
    pm_info("node %s: serving signature databases to peers at %s", self->node,
            self->endpoint);
    return true;
}

static pm_sigsync_state_t *
s_new(const pm_sigsync_config_t *cfg)
{
    pm_sigsync_state_t *self = pm_calloc(1, sizeof *self);
    self->cfg = *cfg;
    self->cfg.dbdir = pm_strdup(cfg->dbdir);
    self->cfg.fetcher = pm_strdup(cfg->fetcher ? cfg->fetcher : "");
    self->cfg.fetch_user = cfg->fetch_user ? pm_strdup(cfg->fetch_user) : NULL;
    self->cfg.verify_user =
        cfg->verify_user ? pm_strdup(cfg->verify_user) : NULL;
    self->cfg.peer_bind = cfg->peer_bind ? pm_strdup(cfg->peer_bind) : NULL;
    self->cfg.peer_host = cfg->peer_host ? pm_strdup(cfg->peer_host) : NULL;
    self->cfg.members_file =
        cfg->members_file ? pm_strdup(cfg->members_file) : NULL;
    self->cfg.name = pm_strdup(cfg->name ? cfg->name : "");
    if (self->cfg.peer_timeout_ms <= 0)
        self->cfg.peer_timeout_ms = 2000;
    if (self->cfg.distrust_s <= 0)
        self->cfg.distrust_s = 3600;
    self->node = pm_strdup(self->cfg.name);
    self->members = pm_sigmembers_new(self->cfg.cert, self->cfg.members_file,
                                      (size_t)self->cfg.links_max);
    self->book = pm_sigbook_new();
    self->slow = zhashx_new();
    zhashx_set_destructor(self->slow, s_item_free);
    self->verifier = pm_sigverify_new(
        self->cfg.fetcher,
        self->cfg.verify_user ? self->cfg.verify_user : self->cfg.fetch_user);
    self->backlog = zlist_new();
    self->rnd = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32) ^
                (uint64_t)(uintptr_t)self;
    if (!self->rnd)
        self->rnd = 1;
    char *why = NULL;
    self->fetch_uid = geteuid();
    self->fetch_gid = getegid();
    if (geteuid() == 0 && cfg->fetch_user &&
        pm_priv_lookup(cfg->fetch_user, &self->fetch_uid, &self->fetch_gid,
                       &why) != PM_OK) {
        pm_error("node %s: fetch_user: %s", self->node, why);
        free(why);
        s_destroy(&self);
        return NULL;
    }
    /* 0751: the fetch user passes through to its own directory in it */
    if (cfg->dbdir[0] != '/' ||
        pm_file_mkdir(cfg->dbdir, 0751, (gid_t)cfg->gid, &why) != PM_OK) {
        pm_error("node %s: signature directory %s: %s", self->node, cfg->dbdir,
                 why ? why : "not an absolute path");
        free(why);
        s_destroy(&self);
        return NULL;
    }
    if (!s_start_peer(self))
        s_destroy(&self);
    return self;
}

/* PUB (packed: DATA, LEN) is the membership from now on. */
static void
s_members_in(pm_sigsync_state_t *self, const Pm__Publication *pub,
             const void *data, size_t len)
{
    /* the peer service admits exactly these members' keys */
    if (self->peer)
        zsock_send(zactor_sock(self->peer), "sb", "MEMBERS", data, len);
    s_on_members(self, pub);
}

static void
s_members_keep(pm_sigsync_state_t *self, const void *data, size_t len)
{
    char *why = NULL;
    if (pm_sigmembers_keep(self->members, data, len, &why) != PM_OK)
        pm_warn("node %s: membership not kept: %s", self->node, why);
    free(why);
}

/* At start: the membership the last run knew, if any. */
static void
s_members_restore(pm_sigsync_state_t *self)
{
    Pm__Publication *pub = NULL;
    char *data = NULL, *why = NULL;
    size_t len = 0;
    int rc = pm_sigmembers_kept(self->members, &pub, &data, &len, &why);
    if (rc == PM_OK)
        s_members_in(self, pub, data, len);
    else if (rc != PM_ENOTFOUND)
        pm_warn("node %s: %s ignored: %s", self->node, self->cfg.members_file,
                why ? why : pm_strerror(rc));
    if (pub)
        pm__publication__free_unpacked(pub, NULL);
    free(why);
    free(data);
}

/* CMD with its packed message F, wire-checked before use. */
static void
s_on_pipe_msg(pm_sigsync_state_t *self, const char *cmd, zframe_t *f)
{
    const uint8_t *data = f ? zframe_data(f) : NULL;
    size_t len = f ? zframe_size(f) : 0;
    char *why = NULL;
    if (strcmp(cmd, "POLICY") == 0) {
        Pm__Policy *p = pm__policy__unpack(NULL, len, data);
        if (p && pm_wire_check_policy(p, &why) == PM_OK)
            s_on_policy(self, p);
        if (p)
            pm__policy__free_unpacked(p, NULL);
    } else if (strcmp(cmd, "MEMBERS") == 0) {
        Pm__Publication *pub = NULL;
        if (pm_wire_unpack_publication(data, len, &pub, &why) == PM_OK) {
            s_members_in(self, pub, data, len);
            s_members_keep(self, data, len);
            pm__publication__free_unpacked(pub, NULL);
        }
    }
    if (why)
        pm_warn("node %s: %s refused: %s", self->node, cmd, why);
    free(why);
}

/* One command from the owner (MSG taken over); false on $TERM. */
static bool
s_on_pipe(pm_sigsync_state_t *self, zmsg_t *msg)
{
    char *cmd = msg ? zmsg_popstr(msg) : NULL;
    bool term = !cmd || strcmp(cmd, "$TERM") == 0;
    if (term) {
        self->stopping = self->term = true;
    } else if (self->stopping) {
        /* a signal came: only $TERM matters now */
    } else if (strcmp(cmd, "NODE") == 0) {
        char *name = zmsg_popstr(msg);
        if (name && *name)
            pm_sigsync_set_str(&self->node, name);
        free(name);
    } else if (strcmp(cmd, "CHECK") == 0) {
        for (size_t i = 0; i < self->n_dbs; i++)
            if (self->dbs[i]->duty)
                self->dbs[i]->next_check = time(NULL);
        self->next_round = 0;
    } else {
        zframe_t *f = zmsg_pop(msg);
        s_on_pipe_msg(self, cmd, f);
        zframe_destroy(&f);
        pm_sigsync_news(self);
        self->next_round = 0; /* a duty or a policy may want work now */
    }
    free(cmd);
    zmsg_destroy(&msg);
    return !term;
}

/* A member pushed its versions (the peer service answered already). */
static void
s_on_peer(pm_sigsync_state_t *self)
{
    zmsg_t *msg = pm_actor_recv(zactor_sock(self->peer));
    char *kind = msg ? zmsg_popstr(msg) : NULL;
    char *from = msg ? zmsg_popstr(msg) : NULL;
    zframe_t *f = msg ? zmsg_pop(msg) : NULL;
    bool gossip = kind && from && f && strcmp(kind, "GOSSIP") == 0;
    if (gossip)
        atomic_fetch_sub(&self->gossip_queued, zframe_size(f)); /* taken */
    Pm__PeerMessage *pm = NULL;
    if (gossip && pm_wire_unpack_peer_message(zframe_data(f), zframe_size(f),
                                              &pm, NULL) == PM_OK) {
        pm_sigsync_learn(self, from, pm);
        pm__peer_message__free_unpacked(pm, NULL);
        self->heard = zclock_mono();
        while (!pm_sigsync_stopping(self) && pm_sigsync_pull_newer(self))
            pm_sigsync_spread(self);
        pm_sigsync_status(self);
    }
    zframe_destroy(&f);
    free(kind);
    free(from);
    zmsg_destroy(&msg);
}

static void
s_actor(zsock_t *pipe, void *args)
{
    pm_sigsync_state_t *self = args;
    self->pipe = pipe;
    pm_peer_set_cancel(pm_sigsync_fetch_cancelled, self); /* $TERM: pulls */
    s_members_restore(self);
    zsock_signal(pipe, 0);
    zpoller_t *poller = pm_actor_poller(pipe, NULL);
    if (self->peer)
        zpoller_add(poller, self->peer);
    while (!self->term) {
        /* commands that came in during the last step go first */
        zmsg_t *msg = zlist_pop(self->backlog);
        void *which = msg ? pipe : NULL;
        if (!msg) {
            int wait = -1; /* stopped by a signal: only $TERM awaited */
            if (!self->stopping) {
                int64_t left = self->next_round - zclock_mono();
                int64_t check = pm_sigsync_check_in_ms(self);
                if (check > 0 && check < left)
                    left = check; /* awake the moment a check is due */
                wait = left > 0 ? (int)left : 0;
            }
            which = zpoller_wait(poller, wait);
            msg = which == pipe ? pm_actor_recv(pipe) : NULL;
        }
        if (which == pipe) {
            if (!s_on_pipe(self, msg))
                break;
        } else if (self->peer && which == self->peer) {
            s_on_peer(self);
        } else if (pm_actor_ended(poller)) {
            break;
        }
        /* a mirror check due between rounds runs now, so that the
         * period is the policy's: waiting for the next round added up to
         * a gossip period and the round's exchanges to every check */
        if (!pm_sigsync_stopping(self) && pm_sigsync_check_in_ms(self) == 0 &&
            zclock_mono() < self->next_round && pm_sigsync_fetch_due(self))
            pm_sigsync_spread(self);
        if (!pm_sigsync_stopping(self) && zclock_mono() >= self->next_round) {
            s_round(self);
            if (self->quiet <= S_QUIET_ROUNDS) /* no wrap in a long calm */
                self->quiet++;
            self->next_round = zclock_mono() + s_round_ms(self);
        }
    }
    zpoller_destroy(&poller);
    s_destroy(&self);
}

zactor_t *
pm_sigsync_new(const pm_sigsync_config_t *config)
{
    pm_sigsync_state_t *self = s_new(config);
    return self ? zactor_new(s_actor, self) : NULL;
}
