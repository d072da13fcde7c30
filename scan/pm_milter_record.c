/* pm_milter_record.c - what the filter decided, kept for `privmta-ctl
 * why`: the policy key that decided each verdict, and the decision log
 * (pm_declog), opened lazily and, when it cannot be, tried again and
 * reported at most every S_DECLOG_QUIET_S; mail never waits on it. */
#include "pm_declog.h"
#include "pm_log.h"
#include "pm_mem.h"
#include "pm_milter.h"
#include "pm_milter_private.h"
#include "pm_milter_run.h"
#include "pm_spamd.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* A decision log that cannot be opened is tried again, and trouble with
 * it reported, at most this often (seconds). */
#define S_DECLOG_QUIET_S 60

/* ---- the decision log ------------------------------------------------------
 */

static bool
s_declog_on(const pm_milter_t *self)
{
    return *self->o.status_dir && self->o.decision_log_records > 0;
}

/* Under declog_mu: says what is wrong with the log (WHY, NULL: still not
 * open), with the records lost since the last time. */
static void
s_declog_warn(pm_milter_t *self, time_t now, const char *why)
{
    pm_warn("decision log in %s: %s (%llu decisions not logged since the "
            "last warning; mail is not affected)",
            self->o.status_dir, why ? why : "not open",
            (unsigned long long)self->declog_lost);
    self->declog_warned = now;
    self->declog_lost = 0;
}

/* Under declog_mu: the log, opened now when it is not open yet and the
 * last try is S_DECLOG_QUIET_S old. PM_EIO otherwise (*why only when it
 * was tried now). */
static int
s_declog_ready(pm_milter_t *self, time_t now, char **why)
{
    if (self->declog)
        return PM_OK;
    if (self->declog_tried && now - self->declog_tried < S_DECLOG_QUIET_S)
        return PM_EIO;
    self->declog_tried = now;
    self->declog =
        pm_declog_open(self->o.status_dir, self->o.decision_log_records,
                       self->o.decision_log_bytes, why);
    if (self->declog && self->o.decision_log_days > 0)
        pm_declog_set_max_age(self->declog,
                              (int64_t)self->o.decision_log_days * 86400);
    return self->declog ? PM_OK : PM_EIO;
}

/* The first open, once privileges are dropped (the files are the
 * milter user's): trouble is told at once. */
void
pm_milter_declog_start(pm_milter_t *self)
{
    if (!s_declog_on(self))
        return;
    char *why = NULL;
    time_t now = time(NULL);
    pthread_mutex_lock(&self->declog_mu);
    if (s_declog_ready(self, now, &why) != PM_OK)
        s_declog_warn(self, now, why);
    pthread_mutex_unlock(&self->declog_mu);
    free(why);
}

/* Whether the first ':' field (';' ends it too: .ldb) or the third ':'
 * field (.hdb, .hsb, .mdb, .msb: "hash:size:Name") of the line L (N
 * bytes) of a custom signature file is NAME (NLEN bytes). */
static bool
s_line_defines(const char *l, size_t n, const char *name, size_t nlen)
{
    size_t field = 0, start = 0;
    for (size_t i = 0; i <= n && field <= 2; i++) {
        if (i < n && l[i] != ':' && !(field == 0 && l[i] == ';'))
            continue;
        if ((field == 0 || field == 2) && i - start == nlen &&
            memcmp(l + start, name, nlen) == 0)
            return true;
        field++;
        start = i + 1;
    }
    return false;
}

/* Whether one of P's custom signature files defines VIRNAME (as
 * libclamav reports it, ".UNOFFICIAL" appended). */
static bool
s_custom_defines(const Pm__Policy *p, const char *virname)
{
    static const char unofficial[] = ".UNOFFICIAL";
    size_t nlen = strlen(virname), slen = sizeof unofficial - 1;
    if (nlen > slen && strcmp(virname + nlen - slen, unofficial) == 0)
        nlen -= slen;
    for (size_t i = 0; p && i < p->n_antivirus_custom_signatures; i++) {
        const ProtobufCBinaryData *c =
            &p->antivirus_custom_signatures[i]->content;
        const char *d = (const char *)c->data;
        for (size_t at = 0; at < c->len;) {
            const char *nl = memchr(d + at, '\n', c->len - at);
            size_t end = nl ? (size_t)(nl - d) : c->len, n = end - at;
            if (n && d[at + n - 1] == '\r')
                n--;
            if (s_line_defines(d + at, n, virname, nlen))
                return true;
            at = end + 1;
        }
    }
    return false;
}

static const char *
s_virus_key(const Pm__Policy *p, const char *virname)
{
    static const char encrypted[] = "Heuristics.Encrypted.";
    if (!virname)
        return "antivirus.databases";
    if (p && p->antivirus_block_encrypted_archives &&
        strncmp(virname, encrypted, sizeof encrypted - 1) == 0)
        return "antivirus.block_encrypted_archives";
    return s_custom_defines(p, virname) ? "antivirus.custom_signatures"
                                        : "antivirus.databases";
}

/* A tagged message whose score reached kill (kill_action deliver): its
 * X-Spam-Score header says so. */
static bool
s_tagged_over_kill(const Pm__Policy *p, const pm_mverdict_t *v)
{
    if (!p || !p->antispam_kill_action ||
        strcmp(p->antispam_kill_action, "deliver") != 0)
        return false;
    for (size_t i = 0; i < v->n_add; i++) {
        int64_t h;
        const char *s = v->add[i].value;
        if (strcmp(v->add[i].name, "X-Spam-Score") == 0 &&
            pm_spamd_parse_score(s, strlen(s), &h) == PM_OK)
            return pm_spamd_over_hundredths(h, p->antispam_kill_percent);
    }
    return false;
}

const char *
pm_milter_decision_key(const pm_mpolicy_t *pol, const pm_mverdict_t *v)
{
    const Pm__Policy *p = pm_mpolicy_policy(pol);
    bool rejected = v->action == PM_MV_REJECT;
    switch (v->reason) {
    case PM_MR_ATTACHMENT:
        return rejected ? "inbound.blocked_extensions" : "";
    case PM_MR_VIRUS:
        return rejected ? s_virus_key(p, v->notice_item) : "";
    case PM_MR_DKIM:
        return rejected ? "dkim.domains" : "";
    case PM_MR_SPAM:
        if (v->action == PM_MV_DISCARD)
            return "antispam.kill_percent";
        if (v->action != PM_MV_ACCEPT)
            return ""; /* tagged, then a later check failed */
        return s_tagged_over_kill(p, v) ? "antispam.kill_percent"
                                        : "antispam.tag_percent";
    default:
        return "";
    }
}

static const char *
s_verdict(const pm_mverdict_t *v)
{
    switch (v->action) {
    case PM_MV_ACCEPT:
        return v->reason == PM_MR_SPAM ? "tagged" : "accepted";
    case PM_MV_REJECT:
        return "rejected";
    case PM_MV_TEMPFAIL:
        return "tempfailed";
    default:
        return "discarded";
    }
}

void
pm_milter_record(pm_milter_t *self, const pm_mpolicy_t *pol,
                 const pm_mmsg_t *msg, const pm_mverdict_t *v)
{
    if (v->reason == PM_MR_PROBE || !s_declog_on(self))
        return;
    size_t n;
    char *const *rcpts = pm_mmsg_rcpts(msg, &n);
    bool replied = v->action == PM_MV_REJECT || v->action == PM_MV_TEMPFAIL;
    char *reply = replied ? pm_asprintf("%s %s %s", v->rcode, v->xcode,
                                        v->text ? v->text : "")
                          : NULL;
    pm_decision_t d = {
        .time = (int64_t)time(NULL),
        .queue_id = pm_mmsg_queue_id(msg),
        .message_id = pm_mmsg_message_id(msg),
        .sender = pm_mmsg_sender(msg),
        .rcpts = (const char *const *)rcpts,
        .n_rcpts = n,
        .verdict = s_verdict(v),
        .reply = reply ? reply : "",
        .key = pm_milter_decision_key(pol, v),
        .evidence = v->log ? v->log : "",
        .revision = pm_mpolicy_rev(pol),
    };
    char *why = NULL;
    pthread_mutex_lock(&self->declog_mu);
    int rc = s_declog_ready(self, (time_t)d.time, &why);
    if (rc == PM_OK)
        rc = pm_declog_append(self->declog, &d, &why);
    if (rc != PM_OK) {
        self->declog_lost++;
        if (!self->declog_warned ||
            (time_t)d.time - self->declog_warned >= S_DECLOG_QUIET_S)
            s_declog_warn(self, (time_t)d.time, why);
    }
    pthread_mutex_unlock(&self->declog_mu);
    free(why);
    free(reply);
}
