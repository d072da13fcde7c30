/* pm_postfix.h - enforcing the policy on one real Postfix instance.
 *
 * One instance is one configuration directory (postfix -c DIR), so several
 * nodes run side by side on one machine. The Postfix part of the policy is
 * rendered into main.cf parameters by pm_pf_render (which parameters, from
 * the policy table); every other parameter of main.cf is left exactly as
 * it was. master.cf is left alone but for one service, the listener the
 * filter's notifications come back through (pm_pf_listener.h), added when
 * pm_postfix_set_notify_listener names one and it is missing.
 *
 * Apply is all-or-nothing: the parameters are written with postconf into a
 * copy of main.cf (a scratch configuration directory inside CONFIG_DIR),
 * checked, swapped in with rename(2), and Postfix is reloaded if running
 * (`postfix status`); on any failure the previous main.cf is put back byte
 * for byte and Postfix reloaded again. When main.cf already holds every
 * rendered value nothing is written and nothing reloaded. The checks:
 *   - postconf -e must not warn about (or fail on) a parameter we set, and
 *     postconf -n must read every value back unchanged;
 *   - relayhost / smtp_fallback_relay literals must be of an address family
 *     the node's inet_protocols enables: "[ipv6:::1]:25" on an ipv4-only
 *     node passes postconf, `postfix check` and reload, then defers every
 *     relayed message ("relayhost configuration problem", 4.3.5);
 *   - smtpd, started stand-alone (smtpd -S) on the copy, must parse it:
 *     this catches what only smtpd notices at connection time (a table or
 *     mynetworks entry it dies on, which would kill every SMTP session);
 *   - `postfix -c COPY check`.
 * Every failure returns "what failed: its first error line".
 *
 * What the node cannot support is not turned on (the rest still applies):
 *   - SMTP AUTH (outbound.sasl_auth) only when the smtpd_sasl_type backend
 *     answers (dovecot: its socket accepts a connection; cyrus: a mechanism
 *     plugin is installed). With smtpd_sasl_auth_enable = yes and no
 *     backend every smtpd dies ("fatal: no SASL authentication
 *     mechanisms") and master throttles the listener: no mail at all.
 *     Status then reports auth DOWN, "no SASL backend: smtpd_sasl_type
 *     dovecot cannot connect to QUEUE/private/auth: No such file or
 *     directory; SMTP AUTH kept off until it answers (next apply)".
 *   - reject_sender_login_mismatch only when smtpd_sender_login_maps is
 *     set: without the map no address has an owner, so every authenticated
 *     sender would be refused. Status reports auth DEGRADED saying so.
 *
 * drift() is pm_pf_drift_check: the owned parameters someone changed by
 * hand since the last successful apply (the agent then applies again).
 */
#ifndef PM_POSTFIX_H
#define PM_POSTFIX_H

#include "pm_backend.h"

/* A backend for the Postfix instance whose configuration directory is
 * CONFIG_DIR. Returns NULL with *why (caller frees) when CONFIG_DIR has no
 * readable, writable main.cf. Caller destroys it with backend->destroy.
 * status() is pm_pf_status_fill (pm_pf_status.h): postfix_running, auth
 * judged against what the last apply wanted, and relay_overrides. */
pm_backend_t *pm_postfix_new(const char *config_dir, char **why);

/* Wires this node's privmta-milter (SOCKET in Postfix syntax,
 * "unix:/path" or "inet:127.0.0.1:PORT") into smtpd_milters and
 * non_smtpd_milters whenever the policy needs it (blocked extensions,
 * antispam, antivirus or DKIM) and takes it out when nothing does, with
 * milter_default_action = tempfail. NULL or "": no milter on this node,
 * the parameters stay empty. Takes effect at the next apply. */
void pm_postfix_set_milter(pm_backend_t *backend, const char *socket);

/* ADDR ("127.0.0.1:10026", checked with pm_pf_listener_check): the first
 * apply makes sure master.cf has the listener privmta-milter sends its
 * notifications to (pm_pf_listener.h), adding it when missing and
 * reloading Postfix with the apply. NULL or "": master.cf is not
 * touched. A listener that cannot be added is logged as a warning, once;
 * the apply goes on. */
void pm_postfix_set_notify_listener(pm_backend_t *backend, const char *addr);

#endif
