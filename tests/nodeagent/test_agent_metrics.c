/* test_agent_metrics.c - an agent's exposition, from the status it
 * reports: every family present, values from the status and the agent's
 * own counters, disabled services and empty databases left out. */
#include "pm_agent_metrics.h"
#include "pm_mem.h"

#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

static Pm__ServiceStatus *
s_service(Pm__ServiceStatus__State state)
{
    Pm__ServiceStatus *s = pm_malloc(sizeof *s);
    pm__service_status__init(s);
    s->state = state;
    return s;
}

static Pm__SignatureDb *
s_db(const char *name, uint32_t version, int64_t built)
{
    Pm__SignatureDb *db = pm_malloc(sizeof *db);
    pm__signature_db__init(db);
    db->name = pm_strdup(name);
    db->version = version;
    db->built = built;
    return db;
}

static Pm__NodeStatus *
s_status(void)
{
    Pm__NodeStatus *st = pm_malloc(sizeof *st);
    pm__node_status__init(st);
    st->name = pm_strdup("mx1");
    st->applied_rev = 42;
    st->postfix_running = true;
    st->antispam = s_service(PM__SERVICE_STATUS__STATE__OK);
    st->antivirus = s_service(PM__SERVICE_STATUS__STATE__DEGRADED);
    st->dkim = s_service(PM__SERVICE_STATUS__STATE__DISABLED);
    st->messages = pm_malloc(sizeof *st->messages);
    pm__message_counts__init(st->messages);
    st->messages->accepted = 7;
    st->messages->rejected_attachment = 2;
    st->n_databases = 2;
    st->databases = pm_calloc(2, sizeof *st->databases);
    st->databases[0] = s_db("daily", 27100, 1000);
    st->databases[1] = s_db("main", 0, 0);
    return st;
}

Test(agent_metrics, from_the_status_and_the_counters)
{
    Pm__NodeStatus *st = s_status();
    pm_agent_stats_t stats = {
        .applies_ok = 3, .applies_failed = 1, .drift_events = 2};
    pm_metrics_hist_observe(&stats.apply, 0.2);
    size_t len = 0;
    char *t = pm_agent_metrics_text(st, &stats, 1600, &len);
    cr_assert_eq(strlen(t), len);
    const char *want[] = {
        "privmta_agent_info{node=\"mx1\"} 1\n",
        "privmta_agent_applied_revision 42\n",
        "privmta_agent_apply_seconds_bucket{le=\"0.25\"} 1\n",
        "privmta_agent_apply_seconds_count 1\n",
        "privmta_agent_applies_total{result=\"ok\"} 3\n",
        "privmta_agent_applies_total{result=\"failed\"} 1\n",
        "privmta_agent_drift_events_total 2\n",
        "privmta_agent_postfix_up 1\n",
        "privmta_agent_service_ok{service=\"antispam\"} 1\n",
        "privmta_agent_service_ok{service=\"antivirus\"} 0\n",
        "privmta_milter_messages_total{verdict=\"accepted\"} 7\n",
        "privmta_milter_messages_total{verdict=\"rejected_attachment\"} 2\n",
        "privmta_milter_messages_total{verdict=\"tempfailed\"} 0\n",
        "privmta_signature_version{database=\"daily\"} 27100\n",
        "privmta_signature_version{database=\"main\"} 0\n",
        "privmta_signature_age_seconds{database=\"daily\"} 600\n",
        "# TYPE privmta_milter_messages_total counter\n",
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        cr_expect_not_null(strstr(t, want[i]), "missing %s in\n%s", want[i], t);
    cr_expect_null(strstr(t, "service=\"dkim\""), "disabled: not shown");
    cr_expect_null(strstr(t, "service=\"auth\""), "unknown: not shown");
    cr_expect_null(strstr(t, "age_seconds{database=\"main\"}"));
    free(t);
    pm__node_status__free_unpacked(st, NULL);
}

Test(agent_metrics, no_milter_counters_no_samples)
{
    Pm__NodeStatus *st = s_status();
    pm__message_counts__free_unpacked(st->messages, NULL);
    st->messages = NULL;
    pm_agent_stats_t stats = {0};
    size_t len = 0;
    char *t = pm_agent_metrics_text(st, &stats, 1600, &len);
    cr_expect_null(strstr(t, "privmta_milter_messages_total"));
    cr_expect_not_null(strstr(t, "privmta_agent_applied_revision 42\n"));
    free(t);
    pm__node_status__free_unpacked(st, NULL);
}
