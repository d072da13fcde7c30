/* pm_agent_metrics.c - an agent's exposition (pm_metrics.h). */
#include "pm_agent_metrics.h"

#include <stddef.h>

static void
s_gauge(FILE *f, const char *name, const char *help, double v)
{
    pm_metrics_family(f, name, "gauge", help);
    pm_metrics_sample(f, name, NULL, NULL, v);
}

static void
s_applies(FILE *f, const Pm__NodeStatus *st, const pm_agent_stats_t *s)
{
    pm_metrics_family(f, "privmta_agent_info", "gauge",
                      "This agent, by the node name it is enrolled as.");
    pm_metrics_sample(f, "privmta_agent_info", "node", st->name, 1);
    s_gauge(f, "privmta_agent_applied_revision",
            "The policy revision this node enforces.", (double)st->applied_rev);
    pm_metrics_hist_write(f, "privmta_agent_apply_seconds",
                          "One apply of a revision to Postfix and the "
                          "filter.",
                          &s->apply);
    pm_metrics_family(f, "privmta_agent_applies_total", "counter",
                      "Applies of a revision, by outcome.");
    pm_metrics_sample(f, "privmta_agent_applies_total", "result", "ok",
                      (double)s->applies_ok);
    pm_metrics_sample(f, "privmta_agent_applies_total", "result", "failed",
                      (double)s->applies_failed);
    pm_metrics_family(f, "privmta_agent_drift_events_total", "counter",
                      "Hand edits of policy-owned Postfix settings found.");
    pm_metrics_sample(f, "privmta_agent_drift_events_total", NULL, NULL,
                      (double)s->drift_events);
    s_gauge(f, "privmta_agent_postfix_up", "Postfix runs on this node.",
            st->postfix_running ? 1 : 0);
}

static void
s_services(FILE *f, const Pm__NodeStatus *st)
{
    const struct {
        const char *name;
        const Pm__ServiceStatus *s;
    } all[] = {{"antispam", st->antispam},
               {"antivirus", st->antivirus},
               {"auth", st->auth},
               {"dkim", st->dkim}};
    pm_metrics_family(f, "privmta_agent_service_ok", "gauge",
                      "An enabled service works (1) or not (0).");
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        if (all[i].s && all[i].s->state != PM__SERVICE_STATUS__STATE__DISABLED)
            pm_metrics_sample(
                f, "privmta_agent_service_ok", "service", all[i].name,
                all[i].s->state == PM__SERVICE_STATUS__STATE__OK ? 1 : 0);
}

/* One sample per MessageCounts field, named as the field: the proto is
 * the one list of verdicts (every field a uint64). */
static void
s_messages(FILE *f, const Pm__MessageCounts *c)
{
    if (!c)
        return;
    const ProtobufCMessageDescriptor *d = &pm__message_counts__descriptor;
    pm_metrics_family(f, "privmta_milter_messages_total", "counter",
                      "Messages the filter decided, by verdict.");
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *fd = &d->fields[i];
        if (fd->type != PROTOBUF_C_TYPE_UINT64)
            continue; /* a counter is a uint64, nothing else is one */
        uint64_t n = *(const uint64_t *)((const char *)c + fd->offset);
        pm_metrics_sample(f, "privmta_milter_messages_total", "verdict",
                          fd->name, (double)n);
    }
}

static void
s_signatures(FILE *f, const Pm__NodeStatus *st, time_t now)
{
    pm_metrics_family(f, "privmta_signature_version", "gauge",
                      "The ClamAV database version this node holds.");
    for (size_t i = 0; i < st->n_databases; i++)
        pm_metrics_sample(f, "privmta_signature_version", "database",
                          st->databases[i]->name,
                          (double)st->databases[i]->version);
    pm_metrics_family(f, "privmta_signature_age_seconds", "gauge",
                      "Since the database this node holds was built.");
    for (size_t i = 0; i < st->n_databases; i++) {
        const Pm__SignatureDb *db = st->databases[i];
        if (db->version && db->built)
            pm_metrics_sample(f, "privmta_signature_age_seconds", "database",
                              db->name,
                              now > db->built ? (double)(now - db->built) : 0);
    }
}

char *
pm_agent_metrics_text(const Pm__NodeStatus *st, const pm_agent_stats_t *stats,
                      time_t now, size_t *len)
{
    char *text = NULL;
    FILE *f = pm_metrics_begin(&text, len);
    s_applies(f, st, stats);
    s_services(f, st);
    s_messages(f, st->messages);
    s_signatures(f, st, now);
    pm_metrics_end(f);
    return text;
}
