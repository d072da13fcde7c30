/* pm_probe.h - a message through this node's mail path: Postfix's smtpd,
 * cleanup and privmta-milter, after a restart, before the node counts as
 * healthy (pm_restart's gate).
 *
 * The agent writes a random token to the milter's handoff directory
 * (PM_HANDOFF_PROBE, root:<milter group> 0640, pm_file_write) and sends,
 * with Postfix's own test client smtp-source (no SMTP client written
 * here), one message from 127.0.0.1 to one SMTP listener:
 *     HELO [127.0.0.1]             an address literal: the policy's HELO
 *                                  checks (valid, FQDN, resolves) let it
 *                                  through, as Postfix documents them
 *     MAIL FROM:<>                 the null sender: no sender check
 *     RCPT TO:<postmaster>         every MTA must accept it (RFC 5321)
 *     PM_PROBE_HEADER: <token>, a From in probe.invalid (a domain nobody
 *                                  signs or owns), a one-line body
 * privmta-milter runs every check on it and, when all pass, refuses it at
 * the end of DATA with "550 5.7.0 " PM_PROBE_PASSED (pm_handoff.h): the
 * filter's own answer is the proof, and nothing is delivered. A 250 fails
 * the probe (the message went by the filter: a listener without it, or
 * milter_default_action = accept while it is down); so does any other
 * answer, with smtp-source's words ("sender rejected: 451 4.7.1 ...").
 * The token file is removed afterwards, so a valid token exists only
 * while a probe runs.
 */
#ifndef PM_PROBE_H
#define PM_PROBE_H

#include <stdbool.h>
#include <sys/types.h>

#define PM_PROBE_SMTP_SOURCE "/usr/sbin/smtp-source"
#define PM_PROBE_MS 15000 /* smtp-source's whole run */

typedef struct {
    const char *handoff_dir; /* the milter's handoff directory (absolute) */
    gid_t gid;               /* the milter's group: reads the token */
    const char *smtp_source; /* NULL: PM_PROBE_SMTP_SOURCE */
    bool (*cancelled)(void *arg); /* as pm_cmd_opts_t's; NULL: never */
    void *cancel_arg;
} pm_probe_config_t;

/* Sends the probe to HOST:PORT within PM_PROBE_MS. True when the filter
 * answered it with PM_PROBE_PASSED; false with *WHY ("probe through
 * 127.0.0.1:2525: end of data rejected: 451 4.3.0 ..."). */
bool pm_probe_send(const pm_probe_config_t *cfg, const char *host, int port,
                   char **why);

#endif
