/* pm_pf_status.h - what a node's Postfix reports in its status.
 *
 * Three things, for the controller's view of the node: whether Postfix
 * runs (master.pid names a live process called master: what `postfix
 * status` checks, without its log line per heartbeat); the auth service
 * (is SMTP AUTH what the last apply wanted, and can it work); and the
 * relay overrides, entries of transport_maps and
 * sender_dependent_relayhost_maps that send mail elsewhere than relayhost
 * ("transport_maps: example.com -> smtp:[10.0.0.1]", listed with postmap
 * -s; a map that cannot be listed appears as "transport_maps: pcre:/x
 * (entries not listable)"). A report has a size limit
 * (PM_WIRE_REPORT_MAX): at most 100 overrides are listed, then "... and N
 * more", each cut to 250 bytes ("..." at its end). Auth and overrides
 * cost postconf and postmap runs, so they are kept for 10 s unless
 * main.cf changes (its inode, size or modification time).
 */
#ifndef PM_PF_STATUS_H
#define PM_PF_STATUS_H

#include "pm_pf_node.h"
#include "privmta.pb-c.h"

#include <stdbool.h>

/* What the last apply wanted of SMTP AUTH. Before the first apply of this
 * process main.cf decides (smtpd_sasl_auth_enable). */
typedef struct {
    bool applied;        /* an apply ran: the two below hold */
    bool sasl;           /* outbound.sasl_auth */
    bool login_mismatch; /* inbound.reject_sender_login_mismatch */
} pm_pf_wants_t;

typedef struct pm_pf_status_t pm_pf_status_t;

/* Status of the Postfix instance whose configuration directory is
 * CONFIG_DIR, reading its facts through FACTS (borrowed: it must outlive
 * the status; the apply shares it). Nothing is read until the first fill.
 * Caller destroys it. */
pm_pf_status_t *pm_pf_status_new(const char *config_dir,
                                 pm_pf_node_cache_t *facts);

/* Destroys *SELF_P; accepts NULL, nulls *SELF_P. */
void pm_pf_status_destroy(pm_pf_status_t **self_p);

/* The apply path says what the policy it just rendered wanted; the next
 * fill computes afresh. */
void pm_pf_status_applied(pm_pf_status_t *self, bool want_sasl,
                          bool want_login_mismatch);

/* Fills STATUS: postfix_running, auth (replaced), relay_overrides
 * (replaced); antispam, antivirus and dkim only when still unset, to
 * UNKNOWN "not reported yet" (other parts of the agent report them). When
 * postconf fails auth is UNKNOWN with its error. */
void pm_pf_status_fill(pm_pf_status_t *self, Pm__NodeStatus *status);

/* The auth service of a node with facts NODE after WANTS; pure. Sets
 * *detail (caller frees). SASL_PROBLEM is what pm_pf_node_sasl found,
 * NULL when the backend answers; it counts only when AUTH is wanted.
 *   DISABLED: AUTH not wanted ("SMTP AUTH off (outbound.sasl_auth)");
 *   DOWN: wanted but the backend does not answer (SASL_PROBLEM, and
 *     whether smtpd can start), or it answers and the next apply turns
 *     AUTH on;
 *   DEGRADED: AUTH on but no client can log in (AUTH only after STARTTLS,
 *     and no TLS), or reject_sender_login_mismatch was wanted and left
 *     out for want of smtpd_sender_login_maps; both named, "; " between;
 *   OK: "SMTP AUTH via smtpd_sasl_type TYPE". */
Pm__ServiceStatus__State pm_pf_status_auth(const pm_pf_node_t *node,
                                           const pm_pf_wants_t *wants,
                                           const char *sasl_problem,
                                           char **detail);

/* True when VALUE, the value of an entry in a map of PARAM, sends mail
 * past relayhost; pure. In sender_dependent_relayhost_maps every
 * non-empty value does; in transport_maps every value but those keeping
 * the default next hop ("smtp:", "relay:", ":"). */
bool pm_pf_status_bypasses_relay(const char *param, const char *value);

#endif
