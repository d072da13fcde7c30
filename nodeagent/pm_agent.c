/* pm_agent.c - the agent actor. */
#include "pm_agent_private.h"
#include "pm_actor.h"
#include "pm_conf.h"
#include "pm_crash.h"
#include "pm_declog.h"
#include "pm_file.h"
#include "pm_handoff.h"
#include "pm_log.h"
#include "pm_members.h"
#include "pm_mem.h"
#include "pm_rehearse.h"
#include "pm_pf_rejects.h"
#include "pm_policy.h"
#include "pm_scanstatus.h"
#include "pm_sigsync.h"
#include "pm_store.h"
#include "pm_wire.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* Queued updates looked at before applying one: the newest wins. */
#define S_COALESCE_MAX 1000
/* Reconnecting to the controller: see s_connect */
#define S_CONNECT_MIN_MS 5000
#define S_RECONNECT_MAX_MS 500

/* Gives ST the signature fields of the sigsync's last status (a copy:
 * each report owns what it carries). */
static void
s_fill_sigs(pm_agent_state_t *self, Pm__NodeStatus *st)
{
    if (!self->sigs)
        return;
    Pm__NodeStatus *from = pm__node_status__unpack(
        NULL, zchunk_size(self->sigs), zchunk_data(self->sigs));
    if (!from)
        return;
    st->databases = from->databases;
    st->n_databases = from->n_databases;
    st->cooldowns = from->cooldowns;
    st->n_cooldowns = from->n_cooldowns;
    st->distrusted = from->distrusted;
    st->n_distrusted = from->n_distrusted;
    from->databases = NULL;
    from->cooldowns = NULL;
    from->distrusted = NULL;
    from->n_databases = from->n_cooldowns = from->n_distrusted = 0;
    pm_wire_set_string(&st->peer_endpoint, from->peer_endpoint);
    pm__node_status__free_unpacked(from, NULL);
}

void
pm_agent_send(pm_agent_state_t *self, Pm__AgentReport__Kind kind)
{
    if (!self->dealer)
        return; /* at start, before connecting: the hello carries it */
    Pm__AgentReport rep = PM__AGENT_REPORT__INIT;
    Pm__NodeStatus *st = pm_malloc(sizeof *st);
    pm__node_status__init(st);
    st->name = pm_strdup(self->node);
    st->address = pm_strdup(self->cfg.address ? self->cfg.address : "");
    st->applied_rev = self->applied;
    st->apply_error = pm_strdup(self->apply_error ? self->apply_error : "");
    if (self->cfg.backend->status)
        self->cfg.backend->status(self->cfg.backend, st);
    s_fill_sigs(self, st);
    if (self->n_drift) {
        st->drift = pm_calloc(self->n_drift, sizeof *st->drift);
        for (size_t i = 0; i < self->n_drift; i++)
            st->drift[i] = pm_wire_dup(&self->drift[i]->base);
        st->n_drift = self->n_drift;
    }
    if (self->restart_last)
        st->restart = pm_wire_dup(&self->restart_last->base);
    if (self->cfg.milter_status || self->cfg.state_dir) {
        /* the node's own policy: its overrides may name other DKIM
         * domains than the cluster's */
        const Pm__Policy *pol = self->current ? self->current->policy : NULL;
        Pm__Policy *eff = pol ? pm_agent_effective(self, pol) : NULL;
        pm_scanstatus_fill(self->cfg.milter_status, eff ? eff : pol,
                           self->applied, 10, st);
        pm_policy_free(&eff);
    }
    if (self->cfg.metrics) {
        size_t len = 0;
        char *text = pm_agent_metrics_text(st, &self->stats, time(NULL), &len);
        pm_metrics_server_set(self->cfg.metrics, text, len);
        free(text);
    }
    rep.kind = kind;
    rep.applied_rev = self->applied;
    rep.status = st;
    pm_agent_send_report(self, &rep);
    pm__node_status__free_unpacked(st, NULL);
}

void
pm_agent_send_report(pm_agent_state_t *self, const Pm__AgentReport *rep)
{
    /* every report says which MEMBERS this node holds (pm_members.h) */
    Pm__AgentReport out = *rep;
    out.members_epoch = self->members ? self->members->members_epoch : 0;
    size_t len = 0;
    uint8_t *buf = pm_wire_pack(&out.base, &len);
    zframe_t *f = zframe_new(buf, len);
    /* a full queue (controller away) drops the report: the next
     * heartbeat carries the same state */
    if (!self->dealer || zframe_send(&f, self->dealer, ZFRAME_DONTWAIT) != 0)
        zframe_destroy(&f);
    free(buf);
}

static void
s_resync(pm_agent_state_t *self, const char *why)
{
    int64_t now = zclock_mono();
    if (now < self->next_resync)
        return; /* one request in flight is enough */
    self->next_resync = now + self->cfg.heartbeat_ms;
    pm_info("node %s: %s; asking for a snapshot", self->node, why);
    pm_agent_send(self, PM__AGENT_REPORT__KIND__RESYNC);
}

/* This node's policy: a copy with its overrides applied, or NULL when it
 * has none and the cluster policy applies as it is (the common case; no
 * copy per revision per node). */
Pm__Policy *
pm_agent_effective(pm_agent_state_t *self, const Pm__Policy *policy)
{
    for (size_t i = 0; i < policy->n_overrides; i++)
        if (strcmp(policy->overrides[i]->node, self->node) == 0)
            return pm_policy_for_node(policy, self->node);
    return NULL;
}

/* Whether PATH is a file as the agent hands it over: regular, root's
 * (this process's), one link, LEN bytes, 0640, group GID. A DKIM key id
 * carries its content's digest and only root writes the directory, so
 * such a file is that key already, and every revision need not rewrite
 * and fsync it (1024 DKIM domains would otherwise cost 1024 fsyncs per
 * apply). */
static bool
s_handed_in_place(const char *path, size_t len, gid_t gid)
{
    struct stat st;
    return lstat(path, &st) == 0 && S_ISREG(st.st_mode) &&
           st.st_uid == geteuid() && st.st_nlink == 1 &&
           (size_t)st.st_size == len && (st.st_mode & 07777) == 0640 &&
           (gid == (gid_t)-1 || st.st_gid == gid);
}

/* DKIM keys arrive with the revision that names them; they are written
 * before the revision is applied, so the milter never sees a policy whose
 * key is not there yet. Root-owned, 0640, readable through the milter's
 * group; never through a link the milter's user may have planted. */
static bool
s_write_secrets(pm_agent_state_t *self, const Pm__Publication *pub, char **why)
{
    if (!self->cfg.milter_dir || !pub->n_secrets)
        return true;
    gid_t gid = (gid_t)self->cfg.milter_gid;
    char *dir = pm_asprintf("%s/%s", self->cfg.milter_dir, PM_HANDOFF_DKIM);
    bool ok = pm_file_mkdir(self->cfg.milter_dir, 0750, gid, why) == PM_OK &&
              pm_file_mkdir(dir, 0750, gid, why) == PM_OK;
    for (size_t i = 0; ok && i < pub->n_secrets; i++) {
        const Pm__Secret *sec = pub->secrets[i];
        if (!*sec->id || strchr(sec->id, '/') || sec->id[0] == '.')
            continue; /* ids are file names, never paths */
        char *path = pm_asprintf("%s/%s", dir, sec->id);
        if (!s_handed_in_place(path, sec->data.len, gid))
            ok = pm_file_write(path, sec->data.data, sec->data.len, 0640, gid,
                               why) == PM_OK;
        free(path);
    }
    free(dir);
    return ok;
}

/* Whether NAME is a DKIM key file as the controller names them
 * ("<domain>.<selector>.<12 hex digits of its digest>.pem", lowercase;
 * pm_ctld's dkim add): the sweep removes nothing else from the
 * directory. */
static bool
s_key_file_name(const char *name)
{
    size_t n = strlen(name);
    if (n < 4 + 12 + 1 + 4 || name[0] == '.' ||
        strcmp(name + n - 4, ".pem") != 0 || name[n - 4 - 12 - 1] != '.')
        return false;
    for (const char *h = name + n - 4 - 12; h < name + n - 4; h++)
        if (!isdigit((unsigned char)*h) && (*h < 'a' || *h > 'f'))
            return false;
    return true;
}

/* Adds the key ids POLICY names, and those of this node's overrides of
 * it, to IDS. */
static void
s_named_keys(pm_agent_state_t *self, const Pm__Policy *policy, zhashx_t *ids)
{
    Pm__Policy *eff = pm_agent_effective(self, policy);
    const Pm__Policy *both[] = {policy, eff};
    for (size_t k = 0; k < 2 && both[k]; k++)
        for (size_t i = 0; i < both[k]->n_dkim_domains; i++)
            zhashx_update(ids, both[k]->dkim_domains[i]->key, (void *)1);
    pm_policy_free(&eff);
}

/* Removes from the dkim directory DIRFD (open) the key files in it that
 * IDS does not name; returns how many. Regular files only, by name in
 * the directory (unlinkat), never through a link. */
static size_t
s_remove_keys(pm_agent_state_t *self, int dirfd, zhashx_t *ids)
{
    DIR *d = fdopendir(dirfd);
    if (!d) {
        close(dirfd);
        return 0;
    }
    size_t n = 0;
    for (struct dirent *e; (e = readdir(d));) {
        struct stat st;
        if (!s_key_file_name(e->d_name) || zhashx_lookup(ids, e->d_name) ||
            fstatat(dirfd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 ||
            !S_ISREG(st.st_mode))
            continue;
        if (unlinkat(dirfd, e->d_name, 0) == 0)
            n++;
        else
            pm_warn("node %s: DKIM key %s not removed: %s", self->node,
                    e->d_name, strerror(errno));
    }
    closedir(d);
    return n;
}

/* After REV was applied over PREV: the DKIM keys neither names (nor PUB
 * brought) are removed, so that a rotated or removed key does not stay
 * readable by the milter's group for ever. PREV's are kept: mail in
 * flight on it may still be signed. Nothing is removed before a revision
 * was applied since the agent started (PREV NULL): what the milter runs
 * then is not known here. */
static void
s_sweep_keys(pm_agent_state_t *self, const Pm__Publication *pub,
             const Pm__Revision *rev, const Pm__Revision *prev)
{
    if (!self->cfg.milter_dir || !prev)
        return;
    char *dir = pm_asprintf("%s/%s", self->cfg.milter_dir, PM_HANDOFF_DKIM);
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0 || st.st_uid != geteuid()) {
        if (fd >= 0 || errno != ENOENT)
            pm_warn("node %s: old DKIM keys not removed: %s is not a "
                    "directory of this process's user",
                    self->node, dir);
        if (fd >= 0)
            close(fd);
        free(dir);
        return;
    }
    zhashx_t *ids = zhashx_new();
    s_named_keys(self, rev->policy, ids);
    s_named_keys(self, prev->policy, ids);
    for (size_t i = 0; i < pub->n_secrets; i++)
        zhashx_update(ids, pub->secrets[i]->id, (void *)1);
    size_t n = s_remove_keys(self, fd, ids);
    if (n)
        pm_info("node %s: removed %zu DKIM key%s no revision in force names",
                self->node, n, n == 1 ? "" : "s");
    zhashx_destroy(&ids);
    free(dir);
}

/* Tells the milter where its notices go (pm_handoff.h): the listener this
 * agent keeps in master.cf; none when it keeps none. Written only when it
 * or its group changed (every apply asks). */
static bool
s_handoff_notify(pm_agent_state_t *self, gid_t gid, char **why)
{
    char *path = pm_asprintf("%s/%s", self->cfg.milter_dir, PM_HANDOFF_NOTIFY);
    const char *addr = self->cfg.notify_listener;
    char *want = addr ? pm_asprintf("%s\n", addr) : NULL, *have = NULL;
    bool ok = true;
    if (pm_file_read(path, PM_HANDOFF_NOTIFY_MAX, PM_FILE_STRICT, &have, NULL,
                     NULL) != PM_OK)
        PM_FREE(&have);
    if (want && (!have || strcmp(have, want) != 0 ||
                 !s_handed_in_place(path, strlen(want), gid)))
        ok = pm_file_write(path, want, strlen(want), 0640, gid, why) == PM_OK;
    else if (!want && unlink(path) != 0 && errno != ENOENT) {
        pm_why(why, "agent", "cannot remove %s: %s", path, strerror(errno));
        ok = false;
    }
    free(have);
    free(want);
    free(path);
    return ok;
}

/* Hands REV, with this node's effective POLICY, to the milter. */
static bool
s_handoff(pm_agent_state_t *self, const Pm__Revision *rev,
          const Pm__Policy *policy, char **why)
{
    if (!self->cfg.milter_dir)
        return true;
    gid_t gid = (gid_t)self->cfg.milter_gid;
    if (pm_file_mkdir(self->cfg.milter_dir, 0750, gid, why) != PM_OK ||
        !s_handoff_notify(self, gid, why))
        return false;
    Pm__Revision copy = *rev;
    copy.policy = (Pm__Policy *)policy;
    char *path = pm_asprintf("%s/%s", self->cfg.milter_dir, PM_HANDOFF_POLICY);
    int rc = pm_handoff_write(path, &copy, gid, why);
    free(path);
    return rc == PM_OK;
}

/* Keys, the milter's copy, Postfix, the local store. The milter gets the
 * revision just before Postfix (its keys before its policy); when Postfix
 * refuses it, the milter is put back on the revision Postfix kept, so the
 * two never stay on different revisions. A disk too full for the milter's
 * copy fails the apply before Postfix is touched. */
static bool
s_enforce(pm_agent_state_t *self, const Pm__Publication *pub, char **why)
{
    const Pm__Revision *rev = pub->revision;
    if (!s_write_secrets(self, pub, why))
        return false;
    pm_crash_point("keys");
    Pm__Policy *eff = pm_agent_effective(self, rev->policy);
    const Pm__Policy *p = eff ? eff : rev->policy;
    bool ok = s_handoff(self, rev, p, why);
    pm_crash_point("handoff");
    if (ok &&
        self->cfg.backend->apply(self->cfg.backend, p, rev->number, why)) {
        ok = false;
        if (self->current) {
            char *ignored = NULL;
            Pm__Policy *old = pm_agent_effective(self, self->current->policy);
            if (!s_handoff(self, self->current,
                           old ? old : self->current->policy, &ignored))
                pm_warn("node %s: the milter could not be put back on "
                        "revision %llu: %s",
                        self->node, (unsigned long long)self->current->number,
                        ignored);
            free(ignored);
            pm_policy_free(&old);
        }
    }
    int rc = ok && self->store ? pm_store_mirror(self->store, rev) : PM_OK;
    pm_crash_point("stored"); /* kept, not acknowledged */
    if (rc != PM_OK) {
        *why = pm_asprintf("applied, but the local store cannot keep it: %s",
                           pm_strerror(rc));
        ok = false;
    }
    pm_policy_free(&eff);
    return ok;
}

/* The signature actor follows what the node enforces: the applied
 * revision with this node's overrides. */
static void
s_sigsync_policy(pm_agent_state_t *self)
{
    if (!self->sigsync || !self->current)
        return;
    zstr_sendx(self->sigsync, "NODE", self->node, NULL);
    Pm__Policy *eff = pm_agent_effective(self, self->current->policy);
    const Pm__Policy *p = eff ? eff : self->current->policy;
    size_t len = 0;
    uint8_t *buf = pm_wire_pack(&p->base, &len);
    zsock_send(self->sigsync, "sb", "POLICY", buf, len);
    free(buf);
    pm_policy_free(&eff);
}

/* Enforces PUB's revision (PUB taken over) and acknowledges the outcome.
 * On failure PUB is kept and retried with backoff. */
static void
s_attempt(pm_agent_state_t *self, Pm__Publication *pub)
{
    char *why = NULL;
    Pm__Revision *rev = pub->revision;
    self->seen = rev->number;
    int64_t t0 = zclock_usecs();
    bool ok = s_enforce(self, pub, &why);
    pm_metrics_hist_observe(&self->stats.apply,
                            (double)(zclock_usecs() - t0) / 1e6);
    if (ok)
        self->stats.applies_ok++;
    else
        self->stats.applies_failed++;
    PM_FREE(&self->apply_error);
    self->drift_error = false;
    if (self->pending && self->pending != pub)
        pm__publication__free_unpacked(self->pending, NULL);
    self->pending = NULL;
    if (ok) {
        s_sweep_keys(self, pub, rev, self->current);
        self->applied = rev->number;
        if (self->current)
            pm__revision__free_unpacked(self->current, NULL);
        self->current = rev;
        pub->revision = NULL;
        pm__publication__free_unpacked(pub, NULL);
        self->retry_ms = 0;
        pm_info("node %s: applied revision %llu", self->node,
                (unsigned long long)self->applied);
        s_sigsync_policy(self);
    } else {
        self->apply_error =
            pm_asprintf("revision %llu: %s", (unsigned long long)self->seen,
                        why ? why : "apply failed");
        self->pending = pub;
        self->retry_ms = self->retry_ms ? self->retry_ms * 2 : 1000;
        if (self->retry_ms > 60000)
            self->retry_ms = 60000;
        self->next_retry = zclock_mono() + self->retry_ms;
        pm_warn("node %s: %s (retrying in %d s)", self->node, self->apply_error,
                self->retry_ms / 1000);
    }
    free(why);
    pm_agent_send(self, PM__AGENT_REPORT__KIND__APPLIED);
}

/* Membership, duties and cool-downs are the signature actor's business. */
/* MEMBERS, whole or a change to the one held (pm_members.h): the whole
 * list it makes is held and goes to the signature sync. A change from
 * another epoch is dropped; the reports say which one is held, and the
 * controller sends the whole list. */
static void
s_on_members(pm_agent_state_t *self, const Pm__Publication *pub)
{
    size_t len = 0;
    uint8_t *buf = pm_members_apply(self->members, pub, &len);
    if (!buf) {
        pm_debug("node %s: MEMBERS change from epoch %llu dropped: this node "
                 "holds %llu",
                 self->node, (unsigned long long)pub->members_base,
                 (unsigned long long)(self->members
                                          ? self->members->members_epoch
                                          : 0));
        return;
    }
    /* bytes packed a moment ago from checked ones */
    Pm__Publication *whole = pm__publication__unpack(NULL, len, buf);
    if (whole) {
        if (self->members)
            pm__publication__free_unpacked(self->members, NULL);
        self->members = whole;
    }
    if (self->sigsync) {
        zstr_sendx(self->sigsync, "NODE", self->node, NULL);
        zsock_send(self->sigsync, "sb", "MEMBERS", buf, len);
    }
    free(buf);
}

/* A revision that comes while a restart runs waits for its end: its apply
 * would rewrite main.cf under the drain and reload Postfix into taking
 * sessions again. It becomes the pending one (a newer one replaces it:
 * each carries the whole policy), tried when the restart is over. */
static void
s_hold(pm_agent_state_t *self, Pm__Publication *pub)
{
    self->seen = pub->revision->number;
    if (self->pending && self->pending != pub)
        pm__publication__free_unpacked(self->pending, NULL);
    self->pending = pub;
    self->next_retry = 0;
    pm_info("node %s: revision %llu waits for the restart to end", self->node,
            (unsigned long long)self->seen);
}

/* Whether REV, of the applied number, is the applied revision: a
 * controller promoted after a failover may hold another one under that
 * number (made by the old primary, never replicated), to be applied. */
static bool
s_is_applied(pm_agent_state_t *self, const Pm__Revision *rev)
{
    const char *have = self->current ? self->current->digest : "";
    if (strcmp(rev->digest, have) == 0)
        return true;
    pm_info("node %s: the controller's revision %llu is not the one applied "
            "(digest %.12s, applied %.12s); applying it",
            self->node, (unsigned long long)rev->number, rev->digest, have);
    return false;
}

/* Revision numbers are sequence numbers: an update that is not the next
 * one means something was lost on the way. */
/* PUB is taken over. */
static void
s_on_publication(pm_agent_state_t *self, Pm__Publication *pub)
{
    if (self->silent) {
        /* back after a silence: the controller may have restarted or
         * dropped what it sent meanwhile */
        self->silent = false;
        pm_info("node %s: the controller is back; asking for a snapshot",
                self->node);
        pm_agent_send(self, PM__AGENT_REPORT__KIND__HELLO);
    }
    self->hello_answered = true;
    if (pub->kind == PM__PUBLICATION__KIND__SNAPSHOT && *pub->node &&
        strcmp(pub->node, self->node) != 0) {
        free(self->node);
        self->node = pm_strdup(pub->node);
    }
    Pm__Revision *rev = pub->revision;
    bool snapshot = pub->kind == PM__PUBLICATION__KIND__SNAPSHOT;
    if (pub->kind == PM__PUBLICATION__KIND__MEMBERS) {
        s_on_members(self, pub);
    } else if (pub->kind == PM__PUBLICATION__KIND__RESTART) {
        pm_agent_restart_begin(self, pub->restart);
    } else if (pub->kind == PM__PUBLICATION__KIND__WHY) {
        pm_agent_why(self, pub->why);
    } else if (pub->kind == PM__PUBLICATION__KIND__TEST) {
        pm_agent_test_begin(self, pub);
    } else if (pub->kind == PM__PUBLICATION__KIND__CHECK) {
        pm_info("node %s: signatures check: this node's fetch duties check "
                "the mirrors now",
                self->node);
        if (self->sigsync)
            zstr_send(self->sigsync, "CHECK");
    } else if (pub->kind == PM__PUBLICATION__KIND__HEARTBEAT) {
        if (pub->head > self->seen)
            s_resync(self, "heartbeat shows a newer head");
    } else if (pub->kind == PM__PUBLICATION__KIND__UPDATE &&
               rev->number == self->cfg.drop_rev) {
        self->cfg.drop_rev = 0; /* test hook: lose this one update */
    } else if (!snapshot && rev->number <= self->seen) {
        /* a duplicate */
    } else if (!snapshot && rev->number != self->seen + 1) {
        s_resync(self, "an update is missing");
    } else if (snapshot && rev->number == self->applied && !self->apply_error &&
               s_is_applied(self, rev)) {
        pm_agent_send(self, PM__AGENT_REPORT__KIND__APPLIED); /* enforced */
    } else if (self->restart) {
        s_hold(self, pub);
        return;
    } else {
        s_attempt(self, pub);
        return;
    }
    pm__publication__free_unpacked(pub, NULL);
}

/* The next message from the controller, through the wire gate; NULL (and
 * a warning) when it is malformed. */
static Pm__Publication *
s_recv_publication(pm_agent_state_t *self)
{
    zframe_t *f = zframe_recv(self->dealer);
    Pm__Publication *pub = NULL;
    char *why = NULL;
    self->last_heard = zclock_mono();
    if (!f || pm_wire_unpack_publication(zframe_data(f), zframe_size(f), &pub,
                                         &why) != PM_OK)
        pm_warn("node %s: malformed message from the controller: %s",
                self->node, why ? why : "empty");
    free(why);
    zframe_destroy(&f);
    return pub;
}

/* Updates that queued up while the last apply ran (a burst of pushes):
 * each carries the whole policy, so only the newest of a run of
 * consecutive ones is applied (20 pushes in 10 s otherwise kept a node
 * applying for a minute), heartbeats among them dropped. Anything else
 * met on the way is left in *AFTER, to be handled once PUB is. */
static Pm__Publication *
s_newest_update(pm_agent_state_t *self, Pm__Publication *pub,
                Pm__Publication **after)
{
    *after = NULL;
    if (pub->kind != PM__PUBLICATION__KIND__UPDATE || self->cfg.drop_rev ||
        pub->revision->number != self->seen + 1)
        return pub;
    unsigned skipped = 0;
    while (skipped < S_COALESCE_MAX &&
           (zsock_events(self->dealer) & ZMQ_POLLIN)) {
        Pm__Publication *next = s_recv_publication(self);
        if (next && next->kind == PM__PUBLICATION__KIND__HEARTBEAT) {
            /* one came every period the apply took; the update says more
             * than any of them */
            pm__publication__free_unpacked(next, NULL);
            continue;
        }
        if (!next)
            continue;
        if (next->kind != PM__PUBLICATION__KIND__UPDATE ||
            next->revision->number != pub->revision->number + 1) {
            *after = next;
            break;
        }
        pm__publication__free_unpacked(pub, NULL);
        pub = next;
        skipped++;
    }
    if (skipped) {
        self->seen = pub->revision->number - 1;
        pm_info("node %s: %u queued revisions superseded; applying %llu",
                self->node, skipped, (unsigned long long)pub->revision->number);
    }
    return pub;
}

static void
s_on_dealer(pm_agent_state_t *self)
{
    Pm__Publication *pub = s_recv_publication(self), *after = NULL;
    if (!pub)
        return;
    pub = s_newest_update(self, pub, &after);
    s_on_publication(self, pub);
    if (after)
        s_on_publication(self, after);
}

static void s_connect(pm_agent_state_t *self);

/* The controller is silent: with standbys configured, the dealer is
 * replaced by one connected to the next endpoint of the list (round
 * robin), taken into the poll set in its place, and says HELLO there. */
static void
s_failover(pm_agent_state_t *self, int64_t now)
{
    if (self->n_endpoints < 2)
        return;
    self->next_switch = now + self->cfg.dead_after_ms;
    const char *from = self->endpoints[self->endpoint_at];
    self->endpoint_at = (self->endpoint_at + 1) % self->n_endpoints;
    pm_info("node %s: no word from the controller at %s; trying %s", self->node,
            from, self->endpoints[self->endpoint_at]);
    if (self->poller)
        zpoller_remove(self->poller, self->dealer);
    zsock_destroy(&self->dealer);
    s_connect(self);
    if (self->poller)
        zpoller_add(self->poller, self->dealer);
    self->hello_answered = false; /* this beat's report is a HELLO */
    self->next_resync = 0;
}

static void
s_on_timer(pm_agent_state_t *self)
{
    int64_t now = zclock_mono();
    pm_agent_drift_check(self, now);
    if (self->pending && !self->restart && now >= self->next_retry) {
        pm_info("node %s: %s revision %llu", self->node,
                self->apply_error ? "retrying" : "applying held",
                (unsigned long long)self->pending->revision->number);
        s_attempt(self, self->pending);
    }
    if (now < self->next_beat)
        return;
    self->next_beat = now + self->cfg.heartbeat_ms;
    if (self->pf_rejects)
        pm_pf_rejects_poll(self->pf_rejects, self->applied,
                           (int64_t)time(NULL));
    /* messages waiting to be read are word from the controller: an
     * apply longer than dead_after_ms left its heartbeats queued */
    if (self->dealer && (zsock_events(self->dealer) & ZMQ_POLLIN))
        self->last_heard = now;
    if (!self->silent && now - self->last_heard > self->cfg.dead_after_ms) {
        self->silent = true;
        pm_warn("node %s: no word from the controller for %d ms; still "
                "enforcing revision %llu",
                self->node, self->cfg.dead_after_ms,
                (unsigned long long)self->applied);
        s_failover(self, now);
    } else if (self->silent && now >= self->next_switch) {
        s_failover(self, now);
    }
    /* until the controller answers, every beat is a hello */
    pm_agent_send(self, self->hello_answered ? PM__AGENT_REPORT__KIND__HEARTBEAT
                                             : PM__AGENT_REPORT__KIND__HELLO);
}

/* At start the node enforces what it last applied, controller or not:
 * Postfix is made to run it (a crash may have come between writing
 * main.cf and the reload) and the milter gets its copy (the milter may
 * have started first). Until that succeeds, nothing is claimed applied. */
static void
s_restore(pm_agent_state_t *self)
{
    Pm__Revision *rev = NULL;
    if (!self->store || pm_store_get(self->store, 0, &rev) != PM_OK)
        return;
    pm_info("node %s: enforcing stored revision %llu", self->node,
            (unsigned long long)rev->number);
    Pm__Drift **found = NULL;
    size_t n = pm_agent_drift_since(self, rev, &found);
    Pm__Publication *pub = pm_malloc(sizeof *pub);
    pm__publication__init(pub);
    pub->kind = PM__PUBLICATION__KIND__SNAPSHOT;
    pub->revision = rev;
    s_attempt(self, pub);
    pm_agent_drift_report(self, found, n);
}

static void
s_destroy(pm_agent_state_t **self_p)
{
    pm_agent_state_t *self = *self_p;
    if (!self)
        return;
    zactor_destroy(&self->restart); /* Postfix put back as it was */
    pm_pf_rejects_destroy(&self->pf_rejects);
    free(self->pf_rejects_dir);
    pm_agent_test_stop(self);
    if (self->restart_last)
        pm__restart_result__free_unpacked(self->restart_last, NULL);
    free(self->restart_file);
    free(self->restart_journal);
    zactor_destroy(&self->sigsync);
    zchunk_destroy(&self->sigs);
    pm_agent_drift_free(&self->drift, self->n_drift);
    zsock_destroy(&self->dealer);
    pm_conf_list_free(&self->endpoints);
    pm_store_close(&self->store);
    if (self->current)
        pm__revision__free_unpacked(self->current, NULL);
    if (self->pending)
        pm__publication__free_unpacked(self->pending, NULL);
    if (self->members)
        pm__publication__free_unpacked(self->members, NULL);
    free(self->apply_error);
    free(self->node);
    free((char *)self->cfg.endpoint);
    free((char *)self->cfg.server_key);
    free((char *)self->cfg.state_dir);
    free((char *)self->cfg.name);
    free((char *)self->cfg.address);
    free((char *)self->cfg.milter_dir);
    free((char *)self->cfg.crash_at);
    free((char *)self->cfg.milter_status);
    free((char *)self->cfg.sig_dir);
    free((char *)self->cfg.peer_bind);
    free((char *)self->cfg.peer_host);
    free((char *)self->cfg.postfix_dir);
    free((char *)self->cfg.milter_socket);
    free((char *)self->cfg.notify_listener);
    free((char *)self->cfg.milter_restart);
    free(self);
    *self_p = NULL;
}

/* A copy of S, NULL for NULL or "". */
static char *
s_opt(const char *s)
{
    return s && *s ? pm_strdup(s) : NULL;
}

/* Postfix's refusals, followed in its log into STATE/postfix-decisions
 * (pm_pf_rejects.h) for privmta-ctl why. */
static void
s_pf_rejects_open(pm_agent_state_t *self)
{
    char *why = NULL;
    self->pf_rejects_dir =
        pm_asprintf("%s/%s", self->cfg.state_dir, PM_AGENT_PF_DECISIONS);
    self->pf_rejects =
        pm_pf_rejects_new(self->cfg.postfix_log, self->cfg.postfix_syslog_name,
                          self->pf_rejects_dir, PM_DECLOG_RECORDS_DEFAULT,
                          PM_DECLOG_BYTES_MAX, &why);
    if (!self->pf_rejects) {
        pm_warn("node %s: Postfix's refusals are not recorded: %s", self->node,
                why);
        PM_FREE(&self->pf_rejects_dir);
    }
    free(why);
}

static pm_agent_state_t *
s_new(const pm_agent_config_t *cfg)
{
    pm_agent_state_t *self = pm_calloc(1, sizeof *self);
    self->cfg = *cfg;
    self->cfg.endpoint = pm_strdup(cfg->endpoint ? cfg->endpoint : "");
    self->cfg.server_key = pm_strdup(cfg->server_key);
    self->cfg.state_dir = cfg->state_dir ? pm_strdup(cfg->state_dir) : NULL;
    self->cfg.name = pm_strdup(cfg->name);
    self->cfg.address = pm_strdup(cfg->address ? cfg->address : "");
    self->cfg.milter_dir = cfg->milter_dir ? pm_strdup(cfg->milter_dir) : NULL;
    self->cfg.crash_at = cfg->crash_at ? pm_strdup(cfg->crash_at) : NULL;
    self->cfg.milter_status =
        cfg->milter_status ? pm_strdup(cfg->milter_status) : NULL;
    self->cfg.sig_dir = cfg->sig_dir ? pm_strdup(cfg->sig_dir) : NULL;
    self->cfg.peer_bind = cfg->peer_bind ? pm_strdup(cfg->peer_bind) : NULL;
    self->cfg.peer_host = cfg->peer_host ? pm_strdup(cfg->peer_host) : NULL;
    self->cfg.postfix_dir = s_opt(cfg->postfix_dir);
    self->cfg.milter_socket = s_opt(cfg->milter_socket);
    self->cfg.notify_listener = s_opt(cfg->notify_listener);
    self->cfg.milter_restart = s_opt(cfg->milter_restart);
    self->node = pm_strdup(cfg->name);
    self->endpoints = pm_conf_list(cfg->endpoint, &self->n_endpoints);
    if (!self->n_endpoints) {
        pm_error("node %s: no controller endpoint in \"%s\"", self->node,
                 cfg->endpoint ? cfg->endpoint : "");
        s_destroy(&self);
        return NULL;
    }
    if (cfg->state_dir) {
        self->restart_file = pm_asprintf("%s/restart.pb", cfg->state_dir);
        self->restart_journal =
            pm_asprintf("%s/restart-drain.cf", cfg->state_dir);
    }
    if (cfg->state_dir && cfg->postfix_log && *cfg->postfix_log)
        s_pf_rejects_open(self);
    if (cfg->state_dir) {
        char *dir = pm_asprintf("%s/store", cfg->state_dir);
        int rc = pm_store_open(dir, 0, 64u << 20, &self->store);
        if (rc != PM_OK)
            pm_error("node %s: cannot open %s: %s", self->node, dir,
                     pm_strerror(rc));
        free(dir);
        if (rc != PM_OK)
            s_destroy(&self);
    }
    return self;
}

static void
s_connect(pm_agent_state_t *self)
{
    self->dealer = zsock_new(ZMQ_DEALER);
    zcert_apply(self->cfg.cert, self->dealer);
    zsock_set_curve_serverkey(self->dealer, self->cfg.server_key);
    zsock_set_maxmsgsize(self->dealer, PM_WIRE_MESSAGE_MAX);
    zsock_set_sndhwm(self->dealer, 1000);
    zsock_set_rcvhwm(self->dealer, 100000);
    zsock_set_linger(self->dealer, 0);
    zsock_set_reconnect_ivl(self->dealer, 100);
    zsock_set_reconnect_ivl_max(self->dealer, S_RECONNECT_MAX_MS);
    /* A partition leaves the TCP connection open and its retransmissions
     * backing off: healed, it could stay silent for most of a minute.
     * The kernel drops a connection whose data (a heartbeat a second) is
     * unacknowledged for dead_after_ms (TCP_USER_TIMEOUT). A new attempt
     * gives up on its SYN after as long, and at least S_CONNECT_MIN_MS:
     * 2000 agents reconnecting at once need seconds, and within 5 s Linux
     * (6.7 and later: tcp_syn_linear_timeouts, 4 by default) sends a SYN
     * every second; with the next attempt 0.5 s at most after a given-up
     * one, a healed link sees a SYN within about a second (with 3 s and
     * 2 s between attempts, gaps of 3 s: 1.5 s after a heal here).
     * Refused attempts (a controller restarting) come at most every
     * 0.5 s per agent: a few thousand a second at 2000 agents, cheap RSTs
     * for the controller's kernel.
     * Not ZMTP heartbeats: libzmq 4.3.4 (master too) aborts the receiving
     * process when a PING is read behind a full receive queue on a
     * connection that then breaks (the PONG is written on a dead engine,
     * stream_engine_base.cpp:331), and the controller's queue per agent is
     * small on purpose. A busy controller's kernel still acknowledges, so
     * agents keep their connections through its pauses. */
    zsock_set_tcp_maxrt(self->dealer, self->cfg.dead_after_ms);
    zsock_set_connect_timeout(self->dealer,
                              self->cfg.dead_after_ms > S_CONNECT_MIN_MS
                                  ? self->cfg.dead_after_ms
                                  : S_CONNECT_MIN_MS);
    zsock_connect(self->dealer, "%s", self->endpoints[self->endpoint_at]);
}

static void
s_start_sigsync(pm_agent_state_t *self)
{
    if (!self->cfg.sig_dir)
        return;
    char *members = self->cfg.state_dir
                        ? pm_asprintf("%s/members.pb", self->cfg.state_dir)
                        : NULL;
    pm_sigsync_config_t sc = {
        .cert = self->cfg.cert,
        .dbdir = self->cfg.sig_dir,
        .fetcher = self->cfg.sigfetch,
        .fetch_user = self->cfg.fetch_user,
        .verify_user = self->cfg.verify_user,
        .gid = self->cfg.milter_gid,
        .peer_bind = self->cfg.peer_bind,
        .peer_host = self->cfg.peer_host,
        .name = self->node,
        .gossip_ms = self->cfg.gossip_ms,
        .cdiff_min_kib = self->cfg.cdiff_min_kib,
        .links_max = self->cfg.peer_links,
        .members_file = members,
    };
    self->sigsync = pm_sigsync_new(&sc);
    free(members);
    if (!self->sigsync)
        pm_error("node %s: no signature databases: the signature actor "
                 "did not start",
                 self->node);
}

/* The signature actor's status, kept for the next report. */
static void
s_on_sigsync(pm_agent_state_t *self)
{
    char *cmd = NULL;
    zchunk_t *chunk = NULL;
    if (zsock_recv(self->sigsync, "sc", &cmd, &chunk) == 0 && cmd &&
        strcmp(cmd, "STATUS") == 0 && chunk) {
        zchunk_destroy(&self->sigs);
        self->sigs = chunk;
        chunk = NULL;
    }
    zchunk_destroy(&chunk);
    free(cmd);
}

/* The first heartbeat comes after 1 to heartbeat_ms ms at random, and
 * the next every heartbeat_ms from it: agents started together (a site's
 * power coming back, a benchmark) would otherwise beat in step, and the
 * controller would take all their reports in one burst every period. */
static int
s_beat_phase(const pm_agent_state_t *self)
{
    uint32_t r = 0;
    if (getrandom(&r, sizeof r, GRND_NONBLOCK) != (ssize_t)sizeof r)
        r = (uint32_t)zclock_usecs(); /* no entropy yet: any spread will do */
    return 1 + (int)(r % (uint32_t)self->cfg.heartbeat_ms);
}

static void
s_actor(zsock_t *pipe, void *args)
{
    pm_agent_state_t *self = args;
    self->pipe = pipe;
    s_start_sigsync(self);
    pm_agent_restart_load(
        self); /* Postfix as it was before the stored revision */
    if (self->cfg.rehearsal_dir) /* policy tests a killed agent left */
        pm_rehearse_sweep(self->cfg.rehearsal_dir, self->cfg.milter_gid);
    s_restore(self);
    if (self->cfg.crash_at)
        pm_crash_set(self->cfg.crash_at); /* for the next apply, not that */
    s_connect(self);
    self->last_heard = zclock_mono();
    pm_agent_send(self, PM__AGENT_REPORT__KIND__HELLO);
    self->next_beat = zclock_mono() + s_beat_phase(self);
    zsock_signal(pipe, 0);
    /* a signal does not end the agent: its owner's $TERM does (pm_actor.h) */
    zpoller_t *poller = pm_actor_poller(pipe, self->dealer, NULL);
    self->poller = poller;
    if (self->sigsync)
        zpoller_add(poller, self->sigsync);
    for (;;) {
        int64_t next = self->next_beat;
        if (self->cfg.backend->drift && self->current &&
            self->next_drift < next)
            next = self->next_drift;
        int64_t wait = next - zclock_mono();
        void *which = zpoller_wait(poller, wait > 0 ? (int)wait : 0);
        if (which == self->dealer) {
            s_on_dealer(self);
        } else if (self->sigsync && which == self->sigsync) {
            s_on_sigsync(self);
        } else if (self->restart && which == self->restart) {
            pm_agent_restart_event(self);
        } else if (self->test && which == self->test) {
            pm_agent_test_event(self);
        } else if (which == pipe) {
            char *cmd = pm_actor_recv_str(pipe);
            bool term = !cmd || strcmp(cmd, "$TERM") == 0;
            if (cmd && strcmp(cmd, "APPLIED") == 0)
                zstr_sendf(pipe, "%llu", (unsigned long long)self->applied);
            free(cmd);
            if (term)
                break;
        } else if (pm_actor_ended(poller)) {
            break;
        }
        s_on_timer(self);
    }
    self->poller = NULL;
    zpoller_destroy(&poller);
    s_destroy(&self);
}

zactor_t *
pm_agent_new(const pm_agent_config_t *config)
{
    pm_agent_state_t *self = s_new(config);
    return self ? zactor_new(s_actor, self) : NULL;
}
