/* pm_milter_status.c - status.json for the agent, written atomically.
 *
 * {
 *   "time": 1700000000, "pid": 123,
 *   "policy": {"revision": 4, "loaded": true, "error": null},
 *   "antivirus": {"enabled": true, "loaded": true, "signatures": 12,
 *                 "built": 1700000000, "db_version": 0, "db_time": 0,
 *                 "db_age_seconds": null, "loads": 2, "failures": 0,
 *                 "last_error": null,
 *                 "databases": [{"name": "daily", "version": 27100,
 *                                "sigs": 2070000, "built": 1700000000}]},
 *   "antispam": {"enabled": true, "configured": true, "reachable": true,
 *                "latency_ms": 41, "checked": 1700000000,
 *                "last_error": null},    (the last check or, between
 *                                            messages, PING of spamd)
 *   "dkim": {"domains": [{"domain": "example.test", "selector": "s1",
 *            "usable": true, "error": null}], "usable": ["example.test"]},
 *   "messages": {"accepted": 10, "rejected": 2, "tempfailed": 0,
 *                "discarded": 1, "spam_tagged": 3,
 *                "rejected_attachment": 1, "rejected_virus": 1,
 *                "rejected_dkim": 0, "rejected_other": 0},
 *                (rejected: the sum of rejected_*; discarded: spam over
 *                the kill level; MessageCounts in privmta.proto)
 *   "notifications": {"sent": 3, "failed": 0}
 * }
 * Replaces STATUS_DIR/status.json with pm_file_write: a reader sees the
 * old or the new file whole. The agent reads it as root, bounded
 * (pm_scanstatus.c): whatever this process writes there is untrusted.
 */
#include "pm_file.h"
#include "pm_log.h"
#include "pm_mem.h"
#include "pm_milter.h"
#include "pm_milter_run.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static json_t *
s_str_or_null(const char *s)
{
    return s ? json_string(s) : json_null();
}

static json_t *
s_av_json(pm_milter_t *self, const Pm__Policy *p)
{
    pm_av_status_t st = {0};
    pm_av_status(self->av, &st);
    time_t now = time(NULL);
    json_t *o = json_pack(
        "{s:b, s:b, s:I, s:I, s:I, s:I, s:o, s:I, s:I, s:o}", "enabled",
        p && p->antivirus_enabled, "loaded", st.loaded, "signatures",
        (json_int_t)st.sigs, "built", (json_int_t)st.built, "db_version",
        (json_int_t)st.db_version, "db_time", (json_int_t)st.db_time,
        "db_age_seconds",
        st.db_time ? json_integer((json_int_t)(now - st.db_time)) : json_null(),
        "loads", (json_int_t)st.loads, "failures", (json_int_t)st.failures,
        "last_error", s_str_or_null(st.last_error));
    json_t *dbs = json_array();
    for (size_t i = 0; i < st.n_dbs; i++)
        json_array_append_new(
            dbs, json_pack("{s:s, s:I, s:I, s:I}", "name", st.dbs[i].name,
                           "version", (json_int_t)st.dbs[i].version, "sigs",
                           (json_int_t)st.dbs[i].sigs, "built",
                           (json_int_t)st.dbs[i].built));
    json_object_set_new(o, "databases", dbs);
    pm_av_status_clear(&st);
    return o;
}

/* Called under self->mu. */
static json_t *
s_spam_json(pm_milter_t *self, const Pm__Policy *p)
{
    return json_pack("{s:b, s:b, s:b, s:i, s:I, s:o}", "enabled",
                     p && p->antispam_enabled, "configured",
                     self->spamd != NULL, "reachable", self->spam_reachable,
                     "latency_ms", (int)self->spam_latency_ms, "checked",
                     (json_int_t)self->spam_checked, "last_error",
                     s_str_or_null(self->spam_error));
}

static json_t *
s_dkim_json(const pm_mpolicy_t *pol)
{
    size_t n;
    const pm_mdkim_t *d = pm_mpolicy_dkim(pol, &n);
    json_t *all = json_array(), *usable = json_array();
    for (size_t i = 0; i < n; i++) {
        json_array_append_new(all,
                              json_pack("{s:s, s:s, s:b, s:o}", "domain",
                                        d[i].domain, "selector", d[i].selector,
                                        "usable", d[i].key_pem != NULL, "error",
                                        s_str_or_null(d[i].key_error)));
        if (d[i].key_pem)
            json_array_append_new(usable, json_string(d[i].domain));
    }
    return json_pack("{s:o, s:o}", "domains", all, "usable", usable);
}

/* "messages": the counters (caller holds the lock). */
static json_t *
s_messages_json(const uint64_t *c)
{
    uint64_t rejected = c[PM_MC_REJECTED_ATTACHMENT] + c[PM_MC_REJECTED_VIRUS] +
                        c[PM_MC_REJECTED_DKIM] + c[PM_MC_REJECTED_OTHER];
    return json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}",
                     "accepted", (json_int_t)c[PM_MC_ACCEPTED], "rejected",
                     (json_int_t)rejected, "tempfailed",
                     (json_int_t)c[PM_MC_TEMPFAILED], "discarded",
                     (json_int_t)c[PM_MC_SPAM_DISCARDED], "spam_tagged",
                     (json_int_t)c[PM_MC_SPAM_TAGGED], "rejected_attachment",
                     (json_int_t)c[PM_MC_REJECTED_ATTACHMENT], "rejected_virus",
                     (json_int_t)c[PM_MC_REJECTED_VIRUS], "rejected_dkim",
                     (json_int_t)c[PM_MC_REJECTED_DKIM], "rejected_other",
                     (json_int_t)c[PM_MC_REJECTED_OTHER]);
}

static json_t *
s_status_json(pm_milter_t *self)
{
    pm_mpolicy_t *pol = pm_milter_policy(self);
    const Pm__Policy *p = pm_mpolicy_policy(pol);
    json_t *av = s_av_json(self, p);
    uint64_t sent = 0, failed = 0;
    pm_notify_counts(self->notify, &sent, &failed);
    pthread_mutex_lock(&self->mu);
    json_t *root = json_pack(
        "{s:I, s:i, s:{s:I, s:b, s:o}, s:o, s:o, s:o, s:o, s:{s:I, s:I}}",
        "time", (json_int_t)time(NULL), "pid", (int)getpid(), "policy",
        "revision", (json_int_t)pm_mpolicy_rev(pol), "loaded", pol != NULL,
        "error", s_str_or_null(self->policy_error), "antivirus", av, "antispam",
        s_spam_json(self, p), "dkim", s_dkim_json(pol), "messages",
        s_messages_json(self->counts), "notifications", "sent",
        (json_int_t)sent, "failed", (json_int_t)failed);
    pthread_mutex_unlock(&self->mu);
    pm_mpolicy_unref(&pol);
    return root;
}

int
pm_milter_write_status(pm_milter_t *self)
{
    if (!*self->o.status_dir)
        return PM_OK;
    json_t *root = s_status_json(self);
    if (!root)
        return PM_EINTERNAL;
    char *dst = pm_asprintf("%s/status.json", self->o.status_dir);
    char *text = json_dumps(root, JSON_INDENT(2) | JSON_SORT_KEYS);
    char *why = NULL;
    int rc = text
                 ? pm_file_write(dst, text, strlen(text), 0644, (gid_t)-1, &why)
                 : PM_EINTERNAL;
    if (rc != PM_OK)
        pm_debug("status file %s not written: %s", dst, why ? why : "");
    free(why);
    free(text);
    json_decref(root);
    free(dst);
    return rc;
}
