/* pm_agent_metrics.h - what an agent's metrics endpoint shows.
 *
 * Made from the status the agent just reported (pm_agent_send), so the
 * endpoint and the controller never disagree:
 *   privmta_agent_info{node}                    gauge, 1
 *   privmta_agent_applied_revision              gauge
 *   privmta_agent_apply_seconds                 histogram: one apply
 *   privmta_agent_applies_total{result}         counter: ok, failed
 *   privmta_agent_drift_events_total            counter: hand edits found
 *   privmta_agent_postfix_up                    gauge
 *   privmta_agent_service_ok{service}           gauge: antispam,
 *                                               antivirus, auth, dkim (those
 *                                               enabled: 1 ok, 0 not)
 *   privmta_milter_messages_total{verdict}      counter: accepted,
 *       spam_tagged, spam_discarded, rejected_attachment, rejected_virus,
 *       rejected_dkim, rejected_other, tempfailed (MessageCounts; they
 *       restart at 0 with the milter, which Prometheus takes as a reset)
 *   privmta_signature_version{database}         gauge
 *   privmta_signature_age_seconds{database}     gauge: since it was built
 */
#ifndef PM_AGENT_METRICS_H
#define PM_AGENT_METRICS_H

#include "pm_metrics.h"
#include "privmta.pb-c.h"

#include <stdint.h>
#include <time.h>

/* Kept by the agent since it started. */
typedef struct {
    uint64_t applies_ok, applies_failed;
    uint64_t drift_events;
    pm_metrics_hist_t apply; /* seconds per apply */
} pm_agent_stats_t;

/* The exposition for status ST and STATS at NOW (*LEN bytes); caller
 * frees. */
char *pm_agent_metrics_text(const Pm__NodeStatus *st,
                            const pm_agent_stats_t *stats, time_t now,
                            size_t *len);

#endif
