/* pm_milter_run.c - the milter's runtime: its engines (libclamav, spamd,
 * libopendkim) behind bounded gates, the decision with spamd's check
 * started ahead, notices, the canary probe, and its lifecycle. The
 * threads that follow the policy and rebuild the antivirus engine are in
 * pm_milter_follow.c, the decision log in pm_milter_record.c. */
#include "pm_av.h"
#include "pm_clock.h"
#include "pm_declog.h"
#include "pm_file.h"
#include "pm_from.h"
#include "pm_mimeparse.h"
#include "pm_log.h"
#include "pm_mem.h"
#include "pm_milter.h"
#include "pm_milter_private.h"
#include "pm_milter_run.h"
#include "pm_notify.h"
#include "pm_policy.h"
#include "pm_handoff.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

/* ---- bounded concurrency --------------------------------------------------
 */

void
pm_mgate_init(pm_mgate_t *g, int slots)
{
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_mutex_init(&g->mu, NULL);
    pthread_cond_init(&g->cond, &attr);
    pthread_condattr_destroy(&attr);
    g->free = slots > 0 ? slots : 1;
}

void
pm_mgate_destroy(pm_mgate_t *g)
{
    pthread_mutex_destroy(&g->mu);
    pthread_cond_destroy(&g->cond);
}

bool
pm_mgate_enter(pm_mgate_t *g, int64_t deadline_ms)
{
    struct timespec ts = {(time_t)(deadline_ms / 1000),
                          (long)(deadline_ms % 1000) * 1000000L};
    pthread_mutex_lock(&g->mu);
    int rc = 0;
    while (g->free == 0 && rc == 0)
        rc = pthread_cond_timedwait(&g->cond, &g->mu, &ts);
    bool got = g->free > 0; /* a slot freed as the wait timed out counts */
    if (got)
        g->free--;
    pthread_mutex_unlock(&g->mu);
    return got;
}

void
pm_mgate_leave(pm_mgate_t *g)
{
    pthread_mutex_lock(&g->mu);
    g->free++;
    pthread_cond_signal(&g->cond);
    pthread_mutex_unlock(&g->mu);
}

/* ---- engines ----------------------------------------------------------- */

static int
s_av_scan(void *ctx, const char *msg, size_t len, char **virname, char **why)
{
    pm_milter_t *self = ((pm_mcall_t *)ctx)->milter;
    return pm_av_scan(self->av, msg, len, virname, why);
}

/* One spamd check under spamd_timeout_ms as a whole: waiting for one of
 * the spamd_max_conns slots comes out of the same budget, and a check
 * that had to wait runs on a client made with what is left (pm_spamd's
 * timeout is fixed per client). */
static int
s_spamd_bounded(pm_milter_t *self, const char *msg, size_t len,
                pm_spamd_result_t *out, char **err)
{
    int64_t t0 = pm_clock_ms(), budget = self->o.spamd_timeout_ms;
    if (!pm_mgate_enter(&self->spamd_gate, t0 + budget)) {
        *err = pm_asprintf("spamd busy: all %d connections in use for %lld ms",
                           self->o.spamd_max_conns, (long long)budget);
        return PM_ETIMEDOUT;
    }
    int64_t left = t0 + budget - pm_clock_ms();
    pm_spamd_t *client = self->spamd, *tmp = NULL;
    if (left < budget && left > 0)
        client = tmp = pm_spamd_new(self->o.spamd, (int)left);
    int rc;
    if (left <= 0 || !client) {
        *err = pm_strdup("spamd check: no time left after waiting");
        rc = PM_ETIMEDOUT;
    } else
        rc = pm_spamd_check(client, msg, len, NULL, out, err);
    pm_spamd_destroy(&tmp);
    pm_mgate_leave(&self->spamd_gate);
    return rc;
}

/* What a check or a PING of spamd told (RC, ERR), taking LATENCY_MS. */
static void
s_spam_told(pm_milter_t *self, int rc, unsigned latency_ms, const char *err)
{
    pthread_mutex_lock(&self->mu);
    self->spam_checked = time(NULL);
    self->spam_reachable = rc == PM_OK;
    self->spam_latency_ms = latency_ms;
    free(self->spam_error);
    self->spam_error = err ? pm_strdup(err) : NULL;
    pthread_mutex_unlock(&self->mu);
}

/* spamd's health between messages: a fresh node showed antispam
 * "unknown" until mail came, and a dead spamd stayed "ok" until mail
 * failed. So, antispam on, a PING when no check told within the last
 * status period; none when every spamd slot is busy (the checks tell
 * then), and never longer than PM_MILTER_SPAMD_PING_MS (this thread also
 * follows the policy). */
void
pm_milter_spam_ping(pm_milter_t *self)
{
    pm_mpolicy_t *cur = pm_milter_policy(self);
    const Pm__Policy *p = pm_mpolicy_policy(cur);
    bool on = p && p->antispam_enabled && self->spamd_ping;
    pm_mpolicy_unref(&cur);
    pthread_mutex_lock(&self->mu);
    time_t period = (time_t)((self->o.status_ms + 999) / 1000);
    bool told = self->spam_checked && time(NULL) - self->spam_checked < period;
    pthread_mutex_unlock(&self->mu);
    int64_t t0 = pm_clock_ms();
    if (!on || told || !pm_mgate_enter(&self->spamd_gate, t0))
        return;
    char *err = NULL;
    int rc = pm_spamd_ping(self->spamd_ping, &err);
    pm_mgate_leave(&self->spamd_gate);
    s_spam_told(self, rc, (unsigned)(pm_clock_ms() - t0), err);
    free(err);
}

/* spamd's answer about MSG, spamd's health told: the check itself. */
static int
s_spam_ask(pm_milter_t *self, const char *msg, size_t len,
           pm_spamd_result_t *out, char **err)
{
    if (!self->spamd) {
        *err = pm_strdup("no spamd address configured");
        return PM_EINVAL;
    }
    int64_t t0 = pm_clock_ms();
    int rc = s_spamd_bounded(self, msg, len, out, err);
    s_spam_told(self, rc,
                rc == PM_OK ? out->latency_ms : (unsigned)(pm_clock_ms() - t0),
                *err);
    return rc;
}

static void *
s_spam_ahead_run(void *arg)
{
    pm_spam_ahead_t *a = arg;
    a->rc = s_spam_ask(a->milter, a->data, a->len, &a->out, &a->err);
    return NULL;
}

static int
s_spam_check(void *ctx, const char *msg, size_t len, pm_spamd_result_t *out,
             char **why)
{
    pm_mcall_t *call = ctx;
    pm_spam_ahead_t *a = call->ahead;
    char *err = NULL;
    int rc;
    if (a && a->data == msg && a->len == len) {
        pthread_join(a->thread, NULL);
        call->ahead = NULL; /* joined; its answer is moved out */
        rc = a->rc;
        *out = a->out;
        err = a->err;
    } else
        rc = s_spam_ask(call->milter, msg, len, out, &err);
    if (why)
        *why = err;
    else
        free(err);
    return rc;
}

static int
s_dkim_verify(void *ctx, const char *msg, size_t len,
              const char *const *domains, size_t n_domains,
              pm_dkim_verdict_t *out, char **why)
{
    pm_milter_t *self = ((pm_mcall_t *)ctx)->milter;
    return pm_dkim_verify_for(self->dkim, msg, len, domains, n_domains, out,
                              why);
}

static int
s_dkim_sign(void *ctx, const char *msg, size_t len, const char *domain,
            const char *selector, const char *key_pem, char **header_out,
            char **why)
{
    pm_milter_t *self = ((pm_mcall_t *)ctx)->milter;
    return pm_dkim_sign(self->dkim, msg, len, domain, selector, key_pem,
                        header_out, why);
}

/* ---- lifecycle
 * ----------------------------------------------------------------- */

static void
s_copy_opts(pm_milter_opts_t *dst, const pm_milter_opts_t *src)
{
#define S_DUP(f) dst->f = pm_strdup(src->f ? src->f : "")
    S_DUP(policy_file);
    S_DUP(node);
    S_DUP(sig_dir);
    S_DUP(key_dir);
    S_DUP(spamd);
    S_DUP(dkim_query_file);
    S_DUP(status_dir);
    S_DUP(notify_smtp);
    S_DUP(notify_from);
    S_DUP(temp_dir);
#undef S_DUP
    dst->spamd_timeout_ms =
        src->spamd_timeout_ms > 0 ? src->spamd_timeout_ms : 30000;
    dst->poll_ms = src->poll_ms > 0 ? src->poll_ms : 100;
    dst->sig_poll_ms = src->sig_poll_ms > 0 ? src->sig_poll_ms : 5000;
    dst->sig_jitter_ms = src->sig_jitter_ms > 0 ? src->sig_jitter_ms : 0;
    dst->status_ms = src->status_ms > 0 ? src->status_ms : 1000;
    dst->max_bytes = src->max_bytes ? src->max_bytes : 52428800;
    dst->max_scans = src->max_scans > 0 ? src->max_scans : 8;
    dst->scan_wait_ms = src->scan_wait_ms > 0 ? src->scan_wait_ms : 60000;
    dst->spamd_max_conns = src->spamd_max_conns > 0 ? src->spamd_max_conns : 5;
    dst->spamd_max_bytes = src->spamd_max_bytes ? src->spamd_max_bytes : 512000;
    dst->av_limits = src->av_limits;
    dst->decision_log_records = src->decision_log_records;
    dst->decision_log_bytes =
        src->decision_log_bytes ? src->decision_log_bytes : PM_DECLOG_BYTES_MAX;
}

/* NAME in the agent's handoff directory, beside the policy file. */
static char *
s_beside_policy(const pm_milter_t *self, const char *name)
{
    const char *slash = strrchr(self->o.policy_file, '/');
    return slash ? pm_asprintf("%.*s/%s", (int)(slash - self->o.policy_file),
                               self->o.policy_file, name)
                 : pm_strdup(name);
}

static bool
s_start_engines(pm_milter_t *self, char **why)
{
    self->av = pm_av_new();
    if (!self->av) {
        *why = pm_strdup("libclamav cannot be initialised");
        return false;
    }
    pm_av_set_limits(self->av, &self->o.av_limits);
    pm_av_set_tmpdir(self->av, self->o.temp_dir);
    if (*self->o.spamd) {
        self->spamd = pm_spamd_new(self->o.spamd, self->o.spamd_timeout_ms);
        int ping_ms = self->o.spamd_timeout_ms < PM_MILTER_SPAMD_PING_MS
                          ? self->o.spamd_timeout_ms
                          : PM_MILTER_SPAMD_PING_MS;
        self->spamd_ping = pm_spamd_new(self->o.spamd, ping_ms);
        if (!self->spamd || !self->spamd_ping) {
            *why =
                pm_asprintf("spamd address '%s' is not usable", self->o.spamd);
            return false;
        }
    }
    if (!(self->dkim = pm_dkim_new(why)))
        return false;
    if (*self->o.dkim_query_file &&
        pm_dkim_set_query_file(self->dkim, self->o.dkim_query_file) != PM_OK) {
        *why = pm_strdup("dkim_query_file is not usable");
        return false;
    }
    const char *from = *self->o.notify_from ? self->o.notify_from
                                            : "privmta-milter <postmaster>";
    /* the agent's listener, when it names one (pm_handoff.h) */
    char *follow = s_beside_policy(self, PM_HANDOFF_NOTIFY);
    self->notify = pm_notify_new(self->o.notify_smtp, follow, from, 10000, why);
    free(follow);
    return self->notify != NULL;
}

pm_milter_t *
pm_milter_new(const pm_milter_opts_t *opts, char **why)
{
    /* GMime's init is not thread-safe: done here, before any thread */
    pm_mime_init();
    pm_milter_t *self = pm_calloc(1, sizeof *self);
    s_copy_opts(&self->o, opts);
    self->probe_file = s_beside_policy(self, PM_HANDOFF_PROBE);
    pthread_mutex_init(&self->mu, NULL);
    pthread_cond_init(&self->av_cond, NULL);
    pthread_cond_init(&self->stop_cond, NULL);
    pthread_mutex_init(&self->declog_mu, NULL);
    self->call = (pm_mcall_t){self, NULL};
    self->eng =
        (pm_mengines_t){&self->call,   s_av_scan,   s_spam_check,
                        s_dkim_verify, s_dkim_sign, self->o.spamd_max_bytes};
    pm_mgate_init(&self->scan_gate, self->o.max_scans);
    pm_mgate_init(&self->spamd_gate, self->o.spamd_max_conns);
    char *err = NULL;
    if (!s_start_engines(self, &err)) {
        if (why)
            *why = err;
        else
            free(err);
        pm_milter_destroy(&self);
        return NULL;
    }
    return self;
}

int
pm_milter_start(pm_milter_t *self)
{
    if (self->av_started || self->follow_started)
        return PM_OK;
    pm_milter_poll(self);
    pm_milter_declog_start(self);
    self->av_started =
        pthread_create(&self->av_thr, NULL, pm_milter_av_run, self) == 0;
    self->follow_started = pthread_create(&self->follow_thr, NULL,
                                          pm_milter_follow_run, self) == 0;
    return self->av_started && self->follow_started ? PM_OK : PM_EINTERNAL;
}

void
pm_milter_destroy(pm_milter_t **self_p)
{
    pm_milter_t *self = self_p ? *self_p : NULL;
    if (!self)
        return;
    pthread_mutex_lock(&self->mu);
    self->stop = true;
    pthread_cond_broadcast(&self->av_cond);
    pthread_cond_broadcast(&self->stop_cond);
    pthread_mutex_unlock(&self->mu);
    if (self->av_started)
        pthread_join(self->av_thr, NULL);
    if (self->follow_started)
        pthread_join(self->follow_thr, NULL);
    pm_notify_destroy(&self->notify);
    pm_mpolicy_unref(&self->cur);
    pm_policy_free(&self->av_want_policy);
    pm_av_destroy(&self->av);
    pm_spamd_destroy(&self->spamd);
    pm_spamd_destroy(&self->spamd_ping);
    pm_dkim_destroy(&self->dkim);
    pm_declog_close(&self->declog);
    pthread_mutex_destroy(&self->declog_mu);
    free(self->policy_error);
    free(self->spam_error);
    pm_milter_opts_free(&self->o);
    pthread_mutex_destroy(&self->mu);
    pthread_cond_destroy(&self->av_cond);
    pthread_cond_destroy(&self->stop_cond);
    pm_mgate_destroy(&self->scan_gate);
    pm_mgate_destroy(&self->spamd_gate);
    free(self->probe_file);
    free(self);
    *self_p = NULL;
}

void
pm_milter_opts_free(pm_milter_opts_t *o)
{
    free((char *)o->policy_file);
    free((char *)o->node);
    free((char *)o->sig_dir);
    free((char *)o->key_dir);
    free((char *)o->spamd);
    free((char *)o->dkim_query_file);
    free((char *)o->status_dir);
    free((char *)o->temp_dir);
    free((char *)o->notify_smtp);
    free((char *)o->notify_from);
    memset(o, 0, sizeof *o);
}

pm_mpolicy_t *
pm_milter_policy(pm_milter_t *self)
{
    pthread_mutex_lock(&self->mu);
    pm_mpolicy_t *p = pm_mpolicy_ref(self->cur);
    pthread_mutex_unlock(&self->mu);
    return p;
}

const pm_mengines_t *
pm_milter_engines(pm_milter_t *self)
{
    return &self->eng;
}

size_t
pm_milter_max_bytes(const pm_milter_t *self)
{
    return self->o.max_bytes;
}

pm_mv_action_t
pm_milter_run_decide(pm_milter_t *self, const pm_mpolicy_t *pol,
                     const pm_mmsg_t *msg, pm_mverdict_t *out)
{
    if (!pm_mgate_enter(&self->scan_gate,
                        pm_clock_ms() + self->o.scan_wait_ms)) {
        memset(out, 0, sizeof *out);
        out->action = PM_MV_TEMPFAIL;
        snprintf(out->rcode, sizeof out->rcode, "451");
        snprintf(out->xcode, sizeof out->xcode, "4.3.2");
        out->text = pm_strdup("Too busy scanning other mail, try again later");
        out->log = pm_asprintf("tempfail: busy: %d messages in scanning, "
                               "no slot within %d ms",
                               self->o.max_scans, self->o.scan_wait_ms);
        return PM_MV_TEMPFAIL;
    }
    /* spamd's time overlaps the other checks: its check starts first */
    pm_spam_ahead_t ahead = {.milter = self};
    pm_mcall_t call = {self, NULL};
    pm_mengines_t eng = self->eng;
    eng.ctx = &call;
    if (self->spamd && pm_milter_will_score(pol, msg, &eng)) {
        ahead.data = pm_mmsg_data(msg, &ahead.len);
        if (pthread_create(&ahead.thread, NULL, s_spam_ahead_run, &ahead) == 0)
            call.ahead = &ahead;
    }
    pm_mv_action_t a = pm_milter_decide(pol, msg, &eng, out);
    if (call.ahead) { /* decided before the spam check: answer unused */
        pthread_join(ahead.thread, NULL);
        pm_spamd_result_clear(&ahead.out);
        free(ahead.err);
    }
    pm_mgate_leave(&self->scan_gate);
    return a;
}

static void
s_post(pm_milter_t *self, const pm_mmsg_t *msg, const pm_mverdict_t *v)
{
    size_t n;
    char *const *rcpts = pm_mmsg_rcpts(msg, &n);
    pm_notice_t notice = {
        .what = v->notice == PM_NOTICE_VIRUS ? "virus" : "blocked attachment",
        .item = v->notice_item,
        .sender = pm_mmsg_sender(msg),
        .rcpts = rcpts,
        .n_rcpts = n,
        .queue_id = pm_mmsg_queue_id(msg),
        .subject = pm_mmsg_subject(msg),
        .when = time(NULL),
    };
    if (v->notify_admin && v->admin_address)
        pm_notify_post(self->notify, &notice, v->admin_address, true);
    for (size_t i = 0; v->notify_recipients && i < n; i++)
        pm_notify_post(self->notify, &notice, rcpts[i], false);
}

void
pm_milter_after(pm_milter_t *self, const pm_mpolicy_t *pol,
                const pm_mmsg_t *msg, const pm_mverdict_t *v)
{
    pm_mcounter_t which[2];
    size_t n = 0;
    pm_milter_count(v, which, &n);
    pthread_mutex_lock(&self->mu);
    for (size_t i = 0; i < n; i++)
        self->counts[which[i]]++;
    pthread_mutex_unlock(&self->mu);
    if (v->notice != PM_NOTICE_NONE)
        s_post(self, msg, v);
    pm_milter_record(self, pol, msg, v);
}

/* LEN bytes of A and B alike, in time that does not depend on where they
 * differ: the probe token is what keeps other clients' mail from being
 * discarded. */
static bool
s_same_token(const char *a, const char *b, size_t len)
{
    unsigned char diff = 0;
    for (size_t i = 0; i < len; i++)
        diff |= (unsigned char)(a[i] ^ b[i]);
    return diff == 0;
}

static size_t
s_trimmed_len(const char *s, size_t len)
{
    while (len && isspace((unsigned char)s[len - 1]))
        len--;
    return len;
}

void
pm_milter_run_probe(pm_milter_t *self, pm_mmsg_t *msg)
{
    const char *value = pm_mmsg_probe(msg);
    if (!value)
        return;
    char *token = NULL, *why = NULL;
    size_t len = 0;
    int rc = pm_file_read(self->probe_file, PM_PROBE_TOKEN_MAX, PM_FILE_STRICT,
                          &token, &len, &why);
    bool ok = false;
    if (rc == PM_OK) {
        len = s_trimmed_len(token, len);
        ok = len > 0 && s_trimmed_len(value, strlen(value)) == len &&
             s_same_token(token, value, len);
    } else if (rc != PM_ENOTFOUND) {
        pm_warn("probe: %s", why ? why : self->probe_file);
    }
    pm_mmsg_set_probe_ok(msg, ok);
    free(token);
    free(why);
}
