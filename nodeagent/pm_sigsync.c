/* pm_sigsync.c - see pm_sigsync.h. */
#include "pm_sigsync.h"
#include "pm_actor.h"
#include "pm_error.h"
#include "pm_file.h"
#include "pm_log.h"
#include "pm_mem.h"
#include "pm_peer.h"
#include "pm_priv.h"
#include "pm_sigbook.h"
#include "pm_sigcdiff.h"
#include "pm_sigfetch.h"
#include "pm_sigmembers.h"
#include "pm_sigstore.h"
#include "pm_wire.h"

#include <clamav.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* One database the policy names, as this node holds it. */
typedef struct {
    char *name;
    unsigned version, sigs;
    time_t built;
    unsigned cdiff_from; /* CDIFFs kept from this version on (0: none) */
    char *source;        /* "mirror URL" / "peer NAME", NULL: was there */
    time_t last_check;   /* duty: last mirror check */
    time_t next_check;   /* duty: next one; 0: none planned */
    char *error;         /* last fetch or pull problem */
    bool duty;           /* the controller named this node to fetch it */
    int64_t duty_since;  /* zclock_mono() when the duty was given */
    int64_t peer_wait;   /* zclock_mono() since when a due check waits
                            for a peer's newer version; 0: none */
    unsigned newest;     /* newest version a peer said it holds */
    time_t behind_since; /* when NEWEST first ran 2+ versions ahead */
    zhashx_t *holders;   /* peer name -> s_held_t */
} s_db_t;

/* What a peer said it holds of one database. */
typedef struct {
    unsigned version, cdiff_from;
} s_held_t;

static void
s_held_free(void **item)
{
    free(*item);
    *item = NULL;
}

typedef struct {
    pm_sigsync_config_t cfg;
    char *node;
    zsock_t *pipe;
    zactor_t *peer;
    char *endpoint; /* ours, as peers reach it; "" when serving none */
    /* the policy */
    bool enabled;
    char **mirrors;
    size_t n_mirrors;
    uint32_t freq_s;
    s_db_t **dbs;
    size_t n_dbs;
    /* what others said */
    pm_sigmembers_t *members; /* the last MEMBERS: who, where, duties */
    int64_t heard;            /* zclock_mono() when this node last learnt
                                 what its live members hold */
    int64_t members_at;       /* zclock_mono() of the last MEMBERS */
    pm_sigbook_t *book;       /* cool-downs and distrusted peers */
    pm_sigverify_t *verifier; /* checks every file a peer or a fetch brings */
    uid_t fetch_uid;          /* who fetches (cfg.fetch_user), as root */
    gid_t fetch_gid;
    zchunk_t *last_status, *last_hold; /* as last sent */
    uint64_t rnd;
    int64_t next_round; /* zclock_mono */
    bool stopping;      /* $TERM seen, or SIGINT/SIGTERM: see s_stopping */
    bool term;          /* $TERM seen: the actor returns (pm_actor.h) */
    zlist_t *backlog;   /* pipe commands read by s_stopping, not yet done */
} s_sync_t;

/* ---- small state helpers ------------------------------------------------ */

/* True once the owner sent $TERM (maybe queued behind other commands) or
 * the process got SIGINT/SIGTERM. Long steps (a gossip round meeting
 * silent peers, pulls, a mirror fetch) ask between peers and files, so
 * zactor_destroy returns within one peer timeout at most, at once on a
 * signal; the commands read here wait in the backlog until the step is
 * over (a POLICY may not change the databases under it). A signal stops
 * the work, not the actor: that waits for $TERM (pm_actor.h). */
static bool
s_stopping(s_sync_t *self)
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

/* pm_sigfetch_spawn's cancel hook: stopping kills the fetch's child at once. */
static bool
s_fetch_cancelled(void *self)
{
    return s_stopping(self);
}

static uint64_t
s_rand(s_sync_t *self)
{
    /* xorshift64: only spreads peers, nothing secret depends on it */
    self->rnd ^= self->rnd << 13;
    self->rnd ^= self->rnd >> 7;
    self->rnd ^= self->rnd << 17;
    return self->rnd;
}

static void
s_set_str(char **slot, const char *value)
{
    free(*slot);
    *slot = value ? pm_strdup(value) : NULL;
}

static void
s_db_free(s_db_t **db_p)
{
    s_db_t *db = *db_p;
    if (!db)
        return;
    free(db->name);
    free(db->source);
    free(db->error);
    zhashx_destroy(&db->holders);
    free(db);
    *db_p = NULL;
}

static s_db_t *
s_db_find(s_sync_t *self, const char *name)
{
    for (size_t i = 0; i < self->n_dbs; i++)
        if (strcmp(self->dbs[i]->name, name) == 0)
            return self->dbs[i];
    return NULL;
}

/* ---- what this node holds ------------------------------------------------ */

/* The header of DBDIR/NAME.cld or NAME.cvd, whichever is newer. Files in
 * DBDIR were verified before they got there (pm_sigfetch, pm_peer). */
static void
s_local(s_sync_t *self, s_db_t *db)
{
    static const char *const exts[] = {"cld", "cvd"};
    db->version = db->sigs = 0;
    db->built = 0;
    for (size_t i = 0; i < 2; i++) {
        char *path =
            pm_asprintf("%s/%s.%s", self->cfg.dbdir, db->name, exts[i]);
        struct cl_cvd *cvd = access(path, R_OK) ? NULL : cl_cvdhead(path);
        if (cvd && cvd->version > db->version) {
            db->version = cvd->version;
            db->sigs = cvd->sigs;
            db->built = (time_t)cvd->stime;
        }
        if (cvd)
            cl_cvdfree(cvd);
        free(path);
    }
    db->cdiff_from = pm_sigcdiff_from(self->cfg.dbdir, db->name, db->version);
}

static void s_status(s_sync_t *self);

/* DB is now at GOT (installed here), brought by SOURCE (taken). The
 * status goes out at once: the milter may load the file within
 * milliseconds, and the gossip that follows can wait a peer timeout on
 * each silent member (test_signatures saw `nodes` show the new version
 * loaded beside the old one held, seconds after the pull). */
static void
s_got(s_sync_t *self, s_db_t *db, const pm_sigfile_t *got, char *source)
{
    db->version = got->version;
    db->sigs = got->sigs;
    db->built = got->built;
    free(db->source);
    db->source = source;
    db->cdiff_from = pm_sigcdiff_from(self->cfg.dbdir, db->name, db->version);
    pm_info("node %s: %s version %u from %s", self->node, db->name, db->version,
            source);
    s_status(self);
}

/* Removes the files of a database the policy no longer names. */
static void
s_forget_files(s_sync_t *self, const char *name)
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
s_db_msg(const s_db_t *db, bool full)
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
static Pm__PeerMessage *
s_versions(s_sync_t *self)
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

/* Sends MSG packed after CMD to TO when it differs from *LAST (then kept
 * there): every round asks, only a change costs a message. */
static void
s_send_changed(zsock_t *to, const char *cmd, const ProtobufCMessage *msg,
               zchunk_t **last)
{
    size_t len = 0;
    uint8_t *buf = pm_wire_pack(msg, &len);
    if (!*last || zchunk_size(*last) != len ||
        memcmp(zchunk_data(*last), buf, len) != 0) {
        zchunk_destroy(last);
        *last = zchunk_new(buf, len);
        zsock_send(to, "sb", cmd, buf, len);
    }
    free(buf);
}

/* Tells the peer service what to answer with. */
static void
s_hold(s_sync_t *self)
{
    if (!self->peer)
        return;
    Pm__PeerMessage *m = s_versions(self);
    s_send_changed(zactor_sock(self->peer), "HOLD", &m->base, &self->last_hold);
    pm__peer_message__free_unpacked(m, NULL);
}

/* ---- status -------------------------------------------------------------- */

static void
s_status(s_sync_t *self)
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

static void s_apply_duties(s_sync_t *self);

static void
s_on_policy(s_sync_t *self, const Pm__Policy *p)
{
    self->enabled = p->antivirus_enabled;
    self->freq_s =
        p->antivirus_update_frequency ? p->antivirus_update_frequency : 7200;
    for (size_t i = 0; i < self->n_mirrors; i++)
        free(self->mirrors[i]);
    free(self->mirrors);
    self->n_mirrors = p->n_antivirus_mirrors;
    self->mirrors = pm_calloc(self->n_mirrors + 1, sizeof *self->mirrors);
    for (size_t i = 0; i < self->n_mirrors; i++)
        self->mirrors[i] = pm_strdup(p->antivirus_mirrors[i]);
    /* keep what is still named, add the new names, drop the rest */
    s_db_t **dbs = pm_calloc(p->n_antivirus_databases + 1, sizeof *dbs);
    for (size_t i = 0; i < p->n_antivirus_databases; i++) {
        const char *name = p->antivirus_databases[i];
        s_db_t *db = s_db_find(self, name);
        if (db) {
            for (size_t j = 0; j < self->n_dbs; j++)
                if (self->dbs[j] == db)
                    self->dbs[j] = NULL;
        } else {
            db = pm_calloc(1, sizeof *db);
            db->name = pm_strdup(name);
            db->holders = zhashx_new();
            zhashx_set_destructor(db->holders, s_held_free);
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
    s_apply_duties(self);
}

/* A duty just given is checked at once unless this node checked within
 * the period; one just taken away stops planning checks. */
static void
s_set_duty(s_sync_t *self, s_db_t *db, bool duty)
{
    if (duty && !db->duty) {
        time_t due = db->last_check ? db->last_check + self->freq_s : 0;
        db->next_check = due > time(NULL) ? due : time(NULL);
        db->duty_since = zclock_mono();
        pm_info("node %s: fetching %s from the mirrors is now this node's "
                "duty",
                self->node, db->name);
    }
    db->duty = duty;
}

/* The duties of the last MEMBERS, for the databases the policy names:
 * either may arrive first. */
static void
s_apply_duties(s_sync_t *self)
{
    for (size_t i = 0; i < self->n_dbs; i++) {
        const char *holder =
            pm_sigmembers_duty(self->members, self->dbs[i]->name);
        s_set_duty(self, self->dbs[i], holder && !strcmp(holder, self->node));
    }
}

static void
s_on_members(s_sync_t *self, const Pm__Publication *pub)
{
    pm_sigmembers_set(self->members, pub);
    self->members_at = zclock_mono();
    s_apply_duties(self);
    for (size_t j = 0; j < pub->n_cooldowns; j++)
        pm_sigbook_cool(self->book, pub->cooldowns[j]->mirror,
                        pub->cooldowns[j]->http_status,
                        pub->cooldowns[j]->until, pub->cooldowns[j]->node);
}

/* PEER says it holds MSG's databases and knows MSG's cool-downs. */
static void
s_learn(s_sync_t *self, const char *peer, const Pm__PeerMessage *msg)
{
    for (size_t i = 0; i < msg->n_databases; i++) {
        s_db_t *db = s_db_find(self, msg->databases[i]->name);
        if (!db)
            continue;
        unsigned v = msg->databases[i]->version;
        if (!v)
            continue;
        s_held_t *held = pm_malloc(sizeof *held);
        held->version = v;
        held->cdiff_from = msg->databases[i]->cdiff_from;
        zhashx_update(db->holders, peer, held);
        if (v > db->newest)
            db->newest = v;
    }
    for (size_t j = 0; j < msg->n_cooldowns; j++)
        pm_sigbook_cool(self->book, msg->cooldowns[j]->mirror,
                        msg->cooldowns[j]->http_status,
                        msg->cooldowns[j]->until, msg->cooldowns[j]->node);
}

static void
s_distrust(s_sync_t *self, const char *peer, const char *reason)
{
    int secs = self->cfg.distrust_s > 0 ? self->cfg.distrust_s : 3600;
    pm_sigbook_distrust(self->book, peer, secs, reason);
    pm_warn("node %s: distrusting peer %s for %d s: %s", self->node, peer, secs,
            reason);
}

/* ---- pulling from peers -------------------------------------------------- */

/* A random trusted member holding DB's newest version, or NULL. */
static const pm_sigmember_t *
s_pick_holder(s_sync_t *self, s_db_t *db)
{
    const pm_sigmember_t *pick = NULL;
    unsigned seen = 0;
    for (void *v = zhashx_first(db->holders); v; v = zhashx_next(db->holders)) {
        const char *peer = zhashx_cursor(db->holders);
        const pm_sigmember_t *m = pm_sigmembers_find(self->members, peer);
        if (((s_held_t *)v)->version != db->newest || !m || !*m->endpoint ||
            pm_sigbook_distrusted(self->book, peer) ||
            strcmp(peer, self->node) == 0)
            continue;
        if (s_rand(self) % ++seen == 0) /* reservoir: uniform among them */
            pick = m;
    }
    return pick;
}

/* Whether DB catches up from holder PEER by CDIFF: it holds a version,
 * larger than cdiff_min_kib, and the peer keeps every CDIFF from there to
 * the newest. */
static bool
s_by_cdiff(s_sync_t *self, const s_db_t *db, const char *peer)
{
    const s_held_t *held = zhashx_lookup(db->holders, peer);
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

/* Brings DB to its newest version with the CDIFFs of member M, applied
 * by privmta-sigfetch as the fetch user and checked as any new file
 * (pm_sigcdiff.h); fills *GOT. PM_EPROTO when the peer's bytes are at
 * fault (the caller distrusts it), else the whole file is the way. */
static int
s_catch_up(s_sync_t *self, s_db_t *db, const pm_sigmember_t *m,
           pm_sigfile_t *got, char **why)
{
    const char *dbdir = self->cfg.dbdir, *names[] = {db->name};
    char *inbox = NULL, *stage = pm_asprintf("%s/%s", dbdir, PM_SIGSTORE_FETCH);
    pm_sigfetch_report_t *rep = NULL;
    int rc = pm_sigcdiff_stage(dbdir, false, 0, 0, &inbox, why);
    if (rc == PM_OK)
        rc = pm_peer_pull_cdiffs(self->cfg.cert, m->endpoint, m->key, db->name,
                                 db->version, db->newest, inbox,
                                 self->cfg.peer_timeout_ms, why);
    if (rc == PM_OK)
        rc = pm_sigstore_stage(dbdir, self->fetch_uid, self->fetch_gid, names,
                               1, why);
    pm_sigfetch_opts_t o = {.dbdir = stage,
                            .databases = names,
                            .n_databases = 1,
                            .cdiff_dir = inbox,
                            .cancelled = s_fetch_cancelled,
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
s_pull(s_sync_t *self, s_db_t *db)
{
    const pm_sigmember_t *m = s_pick_holder(self, db);
    if (!m)
        return false;
    char *peer = pm_strdup(m->name), *why = NULL;
    pm_sigfile_t got = {0};
    int rc = PM_ENOTFOUND;
    bool cdiff = s_by_cdiff(self, db, peer);
    if (cdiff && (rc = s_catch_up(self, db, m, &got, &why)) != PM_OK &&
        rc != PM_EPROTO) {
        pm_info("node %s: %s by CDIFF from peer %s failed, the whole file "
                "then: %s",
                self->node, db->name, peer, why ? why : pm_strerror(rc));
        cdiff = false;
        rc = PM_ENOTFOUND;
    }
    /* a .cld (built from CDIFFs) or a whole .cvd: ask for what it has */
    static const char *const exts[] = {"cld", "cvd"};
    for (size_t i = 0; !cdiff && i < 2 && rc == PM_ENOTFOUND; i++) {
        char *file = pm_asprintf("%s.%s", db->name, exts[i]);
        PM_FREE(&why);
        rc = pm_peer_pull(self->cfg.cert, m->endpoint, m->key, self->cfg.dbdir,
                          file, db->newest, self->verifier,
                          self->cfg.peer_timeout_ms, &got, &why);
        free(file);
    }
    if (rc == PM_OK) {
        PM_FREE(&db->error);
        s_got(self, db, &got,
              pm_asprintf("peer %s%s", peer, cdiff ? " by CDIFF" : ""));
    } else if (rc == PM_EPROTO) {
        char *reason = pm_asprintf("%s version %u: %s", db->name, db->newest,
                                   why ? why : "protocol error");
        s_distrust(self, peer, reason);
        free(reason);
        zhashx_delete(db->holders, peer);
    } else {
        if (rc == PM_ENOTFOUND)
            zhashx_delete(db->holders, peer);
        char *error =
            pm_asprintf("%s version %u from peer %s: %s", db->name, db->newest,
                        peer, why ? why : pm_strerror(rc));
        if (!db->error ||
            strcmp(error, db->error) != 0) /* once, not per round */
            pm_info("node %s: %s", self->node, error);
        free(db->error);
        db->error = error;
    }
    free(why);
    free(peer);
    return rc == PM_OK;
}

/* Pulls every database a peer holds newer; true when anything arrived. */
static bool
s_pull_newer(s_sync_t *self)
{
    bool got = false;
    for (size_t i = 0; self->enabled && i < self->n_dbs; i++) {
        s_db_t *db = self->dbs[i];
        /* a holder that fails leaves the others: try each once */
        size_t tries = zhashx_size(db->holders);
        while (db->newest > db->version && tries-- && !s_stopping(self)) {
            if (s_pull(self, db)) {
                got = true;
                break;
            }
            if (!s_pick_holder(self, db))
                break;
        }
    }
    return got;
}

/* ---- fetching from the mirrors (the duty) -------------------------------- */

/* What the fetch said about DB (R); a new version is taken from the
 * fetch user's directory only when it passes ClamAV's check again here and
 * is newer: the helper's report is not trusted for what goes live. */
static bool
s_fetch_result(s_sync_t *self, s_db_t *db, const pm_sigfetch_db_t *r)
{
    s_set_str(&db->error, r->err == PM_OK ? NULL : r->why);
    if (r->err != PM_OK)
        pm_warn("node %s: %s not fetched: %s", self->node, db->name,
                r->why ? r->why : pm_strerror(r->err));
    if (!r->changed)
        return false;
    pm_sigfile_t got = {0};
    char *why = NULL;
    int rc =
        pm_sigstore_take(self->cfg.dbdir, db->name, db->version, self->verifier,
                         PM_SIGSTORE_VERIFY_MS, &got, &why);
    if (rc == PM_OK) {
        /* the CDIFFs it downloaded, to share (none after a whole file) */
        pm_sigcdiff_keep(self->cfg.dbdir, true, db->name, db->version,
                         got.version);
        s_got(self, db, &got,
              pm_asprintf("mirror %s", r->mirror ? r->mirror : "?"));
    } else {
        free(db->error);
        db->error = pm_asprintf("%s from %s not taken: %s", db->name,
                                r->mirror ? r->mirror : "a mirror", why);
        pm_warn("node %s: %s", self->node, db->error);
    }
    free(why);
    return rc == PM_OK;
}

/* The mirrors no node has been told to wait for, in policy order. */
static size_t
s_usable_mirrors(s_sync_t *self, const char **out)
{
    size_t n = 0;
    for (size_t i = 0; i < self->n_mirrors; i++)
        if (!pm_sigbook_cool_until(self->book, self->mirrors[i]))
            out[n++] = self->mirrors[i];
    return n;
}

/* One period from NOW, or, when every mirror is cooling down, just after
 * the first deadline if that is later. */
static time_t
s_next_mirror_check(s_sync_t *self, time_t now)
{
    time_t next = now + self->freq_s, first = 0;
    for (size_t i = 0; i < self->n_mirrors; i++) {
        time_t until = pm_sigbook_cool_until(self->book, self->mirrors[i]);
        if (until <= now)
            return next;
        if (!first || until < first)
            first = until;
    }
    return first && first + 1 > next ? first + 1 : next;
}

/* A duty's mirror check waits until this node knows what its peers
 * hold: a peer answered since the duty was given and since the last
 * MEMBERS (or none did for three peer timeouts: the node is alone). A duty
 * moves to a node that may have come up a moment ago, and a node back
 * from a partition hears the controller before its peers (seen in
 * test_hosts: a healed node fetched again what its peers held). Then, while a
 * trusted peer holds a newer version, pulling it comes first, for up to
 * three peer timeouts: a check would download what the cluster has. */
static bool
s_duty_settled(s_sync_t *self, s_db_t *db)
{
    int64_t now = zclock_mono(), wait = 3 * (int64_t)self->cfg.peer_timeout_ms;
    int64_t since =
        db->duty_since > self->members_at ? db->duty_since : self->members_at;
    if (self->heard <= since && now - since < wait)
        return false;
    if (db->newest <= db->version || !s_pick_holder(self, db)) {
        db->peer_wait = 0;
        return true;
    }
    if (!db->peer_wait)
        db->peer_wait = now;
    return now - db->peer_wait >= wait;
}

/* Milliseconds until the first planned mirror check of a duty (whole
 * seconds of the wall clock), 0 when one is due, -1 when none is. */
static int64_t
s_check_in_ms(const s_sync_t *self)
{
    int64_t first = -1, now = zclock_time();
    for (size_t i = 0; self->enabled && i < self->n_dbs; i++) {
        const s_db_t *db = self->dbs[i];
        if (!db->duty || !db->next_check)
            continue;
        int64_t in = (int64_t)db->next_check * 1000 - now;
        if (in < 0)
            in = 0;
        if (first < 0 || in < first)
            first = in;
    }
    return first;
}

/* Checks the mirrors for every duty database that is due; true when a new
 * version arrived. */
static bool
s_fetch_due(s_sync_t *self)
{
    time_t now = time(NULL);
    const char **names = pm_calloc(self->n_dbs + 1, sizeof *names);
    s_db_t **due = pm_calloc(self->n_dbs + 1, sizeof *due);
    size_t n = 0;
    for (size_t i = 0; self->enabled && i < self->n_dbs; i++)
        if (self->dbs[i]->duty && self->dbs[i]->next_check &&
            self->dbs[i]->next_check <= now &&
            s_duty_settled(self, self->dbs[i])) {
            due[n] = self->dbs[i];
            names[n++] = self->dbs[i]->name;
        }
    bool got = false;
    if (n) {
        const char **mirrors = pm_calloc(self->n_mirrors + 1, sizeof *mirrors);
        size_t nm = s_usable_mirrors(self, mirrors);
        pm_sigfetch_report_t *rep = NULL;
        char *why = NULL,
             *stage = pm_asprintf("%s/%s", self->cfg.dbdir, PM_SIGSTORE_FETCH);
        pm_sigfetch_opts_t o = {.dbdir = stage,
                                .mirrors = mirrors,
                                .n_mirrors = nm,
                                .databases = names,
                                .n_databases = n,
                                .cancelled = s_fetch_cancelled,
                                .cancel_arg = self,
                                .user = self->cfg.fetch_user};
        int rc = nm ? pm_sigstore_stage(self->cfg.dbdir, self->fetch_uid,
                                        self->fetch_gid, names, n, &why)
                    : PM_EDENIED;
        char *cdiffs = NULL, *no = NULL;
        if (rc == PM_OK &&
            pm_sigcdiff_stage(self->cfg.dbdir, true, self->fetch_uid,
                              self->fetch_gid, &cdiffs, &no) != PM_OK)
            pm_warn("node %s: fetching without keeping CDIFFs: %s", self->node,
                    no);
        free(no);
        o.cdiff_dir = cdiffs;
        if (rc == PM_OK)
            rc = pm_sigfetch_spawn(self->cfg.fetcher, &o, &rep, &why);
        free(cdiffs);
        time_t next = s_next_mirror_check(self, now);
        for (size_t i = 0; i < n; i++) {
            due[i]->last_check = now;
            due[i]->next_check = next;
            if (rc != PM_OK)
                s_set_str(&due[i]->error,
                          nm ? why : "every mirror is cooling down");
            else
                got |= s_fetch_result(self, due[i], &rep->dbs[i]);
        }
        for (size_t i = 0; rep && i < rep->n_cooldowns; i++)
            pm_sigbook_cool(self->book, rep->cooldowns[i].mirror,
                            rep->cooldowns[i].http_status,
                            rep->cooldowns[i].until, self->node);
        pm_sigfetch_report_destroy(&rep);
        free(why);
        free(stage);
        free(mirrors);
    }
    free(names);
    free(due);
    return got;
}

/* ---- gossip -------------------------------------------------------------- */

static uint64_t
s_rand_cb(void *self)
{
    return s_rand(self);
}

/* Push-pull with up to FANOUT live members (pm_sigmembers_pick), all at once: a
 * round costs one round trip, and a silent member does not hold up the others.
 */
static void
s_gossip(s_sync_t *self, size_t fan)
{
    size_t n = 0;
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
    Pm__PeerMessage *mine = s_versions(self);
    if (fan && !s_stopping(self))
        pm_peer_exchange_links(to, fan, mine, theirs,
                               self->cfg.peer_timeout_ms);
    bool answered = fan == 0; /* nobody to ask: nothing to learn */
    for (size_t k = 0; k < fan; k++) {
        if (!theirs[k])
            continue;
        s_learn(self, pick[k]->name, theirs[k]);
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

/* A node 2+ versions behind the newest a peer holds, for longer than one
 * check period, says so (its antivirus shows degraded). */
static void
s_check_behind(s_sync_t *self)
{
    time_t now = time(NULL);
    for (size_t i = 0; i < self->n_dbs; i++) {
        s_db_t *db = self->dbs[i];
        if (db->newest < db->version + 2) {
            db->behind_since = 0;
            continue;
        }
        if (!db->behind_since)
            db->behind_since = now;
        if (now - db->behind_since > (time_t)self->freq_s && !db->error)
            db->error =
                pm_asprintf("version %u, %u versions behind the "
                            "cluster's %u",
                            db->version, db->newest - db->version, db->newest);
    }
}

static size_t
s_fanout(const s_sync_t *self)
{
    /* a round uses its links at once: never more than are kept */
    size_t fan = self->cfg.fanout > 0 ? (size_t)self->cfg.fanout : 3;
    size_t max = pm_sigmembers_links_max(self->members);
    return fan < max ? fan : max;
}

/* After something new arrived: serve it, and tell FANOUT peers now rather
 * than at the next round, so a version spreads in rounds of round trips. */
static void
s_spread(s_sync_t *self)
{
    s_hold(self);
    s_gossip(self, s_fanout(self));
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
s_round(s_sync_t *self)
{
    pm_sigbook_expire(self->book);
    s_gossip(self, s_fanout(self));
    while (!s_stopping(self) && s_pull_newer(self))
        s_spread(self);
    if (!s_stopping(self) && s_fetch_due(self))
        s_spread(self);
    if (s_stopping(self))
        return;
    s_check_behind(self);
    s_hold(self);
    s_status(self);
}

/* ---- the actor ----------------------------------------------------------- */

static void
s_destroy(s_sync_t **self_p)
{
    s_sync_t *self = *self_p;
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
    pm_sigverify_destroy(&self->verifier);
    zchunk_destroy(&self->last_status);
    zchunk_destroy(&self->last_hold);
    free(self->node);
    free(self->endpoint);
    free((char *)self->cfg.dbdir);
    free((char *)self->cfg.fetcher);
    free((char *)self->cfg.fetch_user);
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
s_start_peer(s_sync_t *self)
{
    if (!self->cfg.peer_bind) {
        self->endpoint = pm_strdup("");
        return true;
    }
    pm_peer_config_t pc = {self->cfg.cert, self->cfg.peer_bind, self->cfg.dbdir,
                           self->node};
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

static s_sync_t *
s_new(const pm_sigsync_config_t *cfg)
{
    s_sync_t *self = pm_calloc(1, sizeof *self);
    self->cfg = *cfg;
    self->cfg.dbdir = pm_strdup(cfg->dbdir);
    self->cfg.fetcher = pm_strdup(cfg->fetcher ? cfg->fetcher : "");
    self->cfg.fetch_user = cfg->fetch_user ? pm_strdup(cfg->fetch_user) : NULL;
    self->cfg.peer_bind = cfg->peer_bind ? pm_strdup(cfg->peer_bind) : NULL;
    self->cfg.peer_host = cfg->peer_host ? pm_strdup(cfg->peer_host) : NULL;
    self->cfg.members_file =
        cfg->members_file ? pm_strdup(cfg->members_file) : NULL;
    self->cfg.name = pm_strdup(cfg->name ? cfg->name : "");
    if (self->cfg.peer_timeout_ms <= 0)
        self->cfg.peer_timeout_ms = 2000;
    self->node = pm_strdup(self->cfg.name);
    self->members = pm_sigmembers_new(self->cfg.cert, self->cfg.members_file,
                                      (size_t)self->cfg.links_max);
    self->book = pm_sigbook_new();
    self->verifier = pm_sigverify_new(self->cfg.fetcher, self->cfg.fetch_user);
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
s_members_in(s_sync_t *self, const Pm__Publication *pub, const void *data,
             size_t len)
{
    /* the peer service admits exactly these members' keys */
    if (self->peer)
        zsock_send(zactor_sock(self->peer), "sb", "MEMBERS", data, len);
    s_on_members(self, pub);
}

static void
s_members_keep(s_sync_t *self, const void *data, size_t len)
{
    char *why = NULL;
    if (pm_sigmembers_keep(self->members, data, len, &why) != PM_OK)
        pm_warn("node %s: membership not kept: %s", self->node, why);
    free(why);
}

/* At start: the membership the last run knew, if any. */
static void
s_members_restore(s_sync_t *self)
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
s_on_pipe_msg(s_sync_t *self, const char *cmd, zframe_t *f)
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
s_on_pipe(s_sync_t *self, zmsg_t *msg)
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
            s_set_str(&self->node, name);
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
        self->next_round = 0; /* a duty or a policy may want work now */
    }
    free(cmd);
    zmsg_destroy(&msg);
    return !term;
}

/* A member pushed its versions (the peer service answered already). */
static void
s_on_peer(s_sync_t *self)
{
    zmsg_t *msg = pm_actor_recv(zactor_sock(self->peer));
    char *kind = msg ? zmsg_popstr(msg) : NULL;
    char *from = msg ? zmsg_popstr(msg) : NULL;
    zframe_t *f = msg ? zmsg_pop(msg) : NULL;
    Pm__PeerMessage *pm = NULL;
    if (kind && from && f && strcmp(kind, "GOSSIP") == 0 &&
        pm_wire_unpack_peer_message(zframe_data(f), zframe_size(f), &pm,
                                    NULL) == PM_OK) {
        s_learn(self, from, pm);
        pm__peer_message__free_unpacked(pm, NULL);
        self->heard = zclock_mono();
        while (!s_stopping(self) && s_pull_newer(self))
            s_spread(self);
        s_status(self);
    }
    zframe_destroy(&f);
    free(kind);
    free(from);
    zmsg_destroy(&msg);
}

static void
s_actor(zsock_t *pipe, void *args)
{
    s_sync_t *self = args;
    self->pipe = pipe;
    s_members_restore(self);
    zsock_signal(pipe, 0);
    zpoller_t *poller = pm_actor_poller(pipe, NULL);
    if (self->peer)
        zpoller_add(poller, self->peer);
    int gossip_ms = self->cfg.gossip_ms > 0 ? self->cfg.gossip_ms : 200;
    while (!self->term) {
        /* commands that came in during the last step go first */
        zmsg_t *msg = zlist_pop(self->backlog);
        void *which = msg ? pipe : NULL;
        if (!msg) {
            int wait = -1; /* stopped by a signal: only $TERM awaited */
            if (!self->stopping) {
                int64_t left = self->next_round - zclock_mono();
                int64_t check = s_check_in_ms(self);
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
        if (!s_stopping(self) && s_check_in_ms(self) == 0 &&
            zclock_mono() < self->next_round && s_fetch_due(self))
            s_spread(self);
        if (!s_stopping(self) && zclock_mono() >= self->next_round) {
            s_round(self);
            self->next_round = zclock_mono() + gossip_ms;
        }
    }
    zpoller_destroy(&poller);
    s_destroy(&self);
}

zactor_t *
pm_sigsync_new(const pm_sigsync_config_t *config)
{
    s_sync_t *self = s_new(config);
    return self ? zactor_new(s_actor, self) : NULL;
}
