/* pm_sigsync_duty.c - the fetch duty: the node the controller names
 * checks the policy's mirrors every antivirus.update_frequency with
 * privmta-sigfetch (libfreshclam), once it knows what its peers hold, and
 * honours the cluster's cool-downs. See pm_sigsync.h. */
#include "pm_error.h"
#include "pm_log.h"
#include "pm_mem.h"
#include "pm_sigcdiff.h"
#include "pm_sigfetch.h"
#include "pm_sigsync_private.h"
#include "pm_text.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Bytes of a helper's text shown in a log line (escaped). */
#define S_LOG_TEXT_MAX 512

void
pm_sigsync_replan(pm_sigsync_state_t *self, pm_sigsync_db_t *db)
{
    time_t now = time(NULL);
    time_t due = db->last_check ? db->last_check + (time_t)self->freq_s : 0;
    db->next_check = due > now ? due : now;
}

/* A duty just given is checked at once unless this node checked within
 * the period; one just taken away stops planning checks. */
static void
s_set_duty(pm_sigsync_state_t *self, pm_sigsync_db_t *db, bool duty)
{
    if (duty && !db->duty) {
        pm_sigsync_replan(self, db);
        db->duty_since = zclock_mono();
        pm_info("node %s: fetching %s from the mirrors is now this node's "
                "duty",
                self->node, db->name);
    }
    db->duty = duty;
}

/* The duties of the last MEMBERS, for the databases the policy names:
 * either may arrive first. */
void
pm_sigsync_apply_duties(pm_sigsync_state_t *self)
{
    for (size_t i = 0; i < self->n_dbs; i++) {
        const char *holder =
            pm_sigmembers_duty(self->members, self->dbs[i]->name);
        s_set_duty(self, self->dbs[i], holder && !strcmp(holder, self->node));
    }
}

/* ---- fetching from the mirrors (the duty) -------------------------------- */

/* What the fetch said about DB (R); a new version is taken from the
 * fetch user's directory only when it passes ClamAV's check again here and
 * is newer: the helper's report is not trusted for what goes live. Nor
 * for what goes into root's log: its texts (and the verifier's) are
 * escaped, so that a newline or a terminal control in them forges no
 * line. */
static bool
s_fetch_result(pm_sigsync_state_t *self, pm_sigsync_db_t *db,
               const pm_sigfetch_db_t *r)
{
    pm_sigsync_set_str(&db->error, r->err == PM_OK ? NULL : r->why);
    if (r->err != PM_OK) {
        char *reason = pm_text_escape(r->why ? r->why : pm_strerror(r->err),
                                      S_LOG_TEXT_MAX);
        pm_warn("node %s: %s not fetched: %s", self->node, db->name, reason);
        free(reason);
    }
    if (!r->changed)
        return false;
    pm_sigfile_t got = {0};
    char *why = NULL;
    int rc =
        pm_sigstore_take(self->cfg.dbdir, db->name, db->version, self->verifier,
                         PM_SIGSTORE_VERIFY_MS, &got, &why);
    char *mirror = pm_text_escape(r->mirror, S_LOG_TEXT_MAX);
    if (rc == PM_OK) {
        /* the CDIFFs it downloaded, to share (none after a whole file) */
        pm_sigcdiff_keep(self->cfg.dbdir, true, db->name, db->version,
                         got.version);
        pm_sigsync_got(self, db, &got,
                       pm_asprintf("mirror %s", r->mirror ? mirror : "?"));
    } else {
        char *reason = pm_text_escape(why, S_LOG_TEXT_MAX);
        free(db->error);
        db->error = pm_asprintf("%s from %s not taken: %s", db->name,
                                r->mirror ? mirror : "a mirror", reason);
        pm_warn("node %s: %s", self->node, db->error);
        free(reason);
    }
    free(mirror);
    free(why);
    return rc == PM_OK;
}

/* The mirrors no node has been told to wait for, in policy order. */
static size_t
s_usable_mirrors(pm_sigsync_state_t *self, const char **out)
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
s_next_mirror_check(pm_sigsync_state_t *self, time_t now)
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
s_duty_settled(pm_sigsync_state_t *self, pm_sigsync_db_t *db)
{
    int64_t now = zclock_mono(), wait = 3 * (int64_t)self->cfg.peer_timeout_ms;
    int64_t since =
        db->duty_since > self->members_at ? db->duty_since : self->members_at;
    if (self->heard <= since && now - since < wait)
        return false;
    if (db->newest <= db->version || !pm_sigsync_pick_holder(self, db)) {
        db->peer_wait = 0;
        return true;
    }
    if (!db->peer_wait)
        db->peer_wait = now;
    return now - db->peer_wait >= wait;
}

/* Milliseconds until the first planned mirror check of a duty (whole
 * seconds of the wall clock), 0 when one is due, -1 when none is. */
int64_t
pm_sigsync_check_in_ms(const pm_sigsync_state_t *self)
{
    int64_t first = -1, now = zclock_time();
    for (size_t i = 0; self->enabled && i < self->n_dbs; i++) {
        const pm_sigsync_db_t *db = self->dbs[i];
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
bool
pm_sigsync_fetch_due(pm_sigsync_state_t *self)
{
    time_t now = time(NULL);
    const char **names = pm_calloc(self->n_dbs + 1, sizeof *names);
    pm_sigsync_db_t **due = pm_calloc(self->n_dbs + 1, sizeof *due);
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
                                .cancelled = pm_sigsync_fetch_cancelled,
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
                pm_sigsync_set_str(&due[i]->error,
                                   nm ? why : "every mirror is cooling down");
            else
                got |= s_fetch_result(self, due[i], &rep->dbs[i]);
        }
        for (size_t i = 0; rep && i < rep->n_cooldowns; i++)
            pm_sigsync_cool(self, rep->cooldowns[i].mirror,
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
