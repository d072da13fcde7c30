/* pm_pf_sasl.h - does the node's SASL backend answer?
 *
 * smtpd_sasl_auth_enable = yes with no backend answering kills every smtpd
 * ("fatal: no SASL authentication mechanisms") and master throttles the
 * listener: no mail at all. So SMTP AUTH is only turned on when this check
 * passes, and status reports what it found. The check is cheap (one
 * connect(2), a few access(2)), for every apply and status refresh:
 *   - dovecot: its socket (smtpd_sasl_path, relative to queue_directory
 *     as smtpd, chrooted or not, resolves it) accepts a connection; an
 *     "inet:" path is trusted, as it cannot be probed cheaply;
 *   - cyrus: a Cyrus SASL mechanism plugin is installed (no plugin, no
 *     mechanism);
 *   - any other type: not something this agent can check, so "no".
 */
#ifndef PM_PF_SASL_H
#define PM_PF_SASL_H

#include <stdbool.h>

/* True when smtpd_sasl_type TYPE with smtpd_sasl_path PATH can serve AUTH
 * on a node whose queue_directory is QUEUE_DIR. Else false with *problem
 * (caller frees): "no SASL backend: smtpd_sasl_type dovecot cannot connect
 * to /var/spool/postfix/private/auth: No such file or directory", "...
 * cyrus has no mechanisms (no Cyrus SASL mechanism plugin installed, e.g.
 * libsasl2-modules)", "... TYPE is not a type this agent can check". */
bool pm_pf_sasl_answers(const char *type, const char *path,
                        const char *queue_dir, char **problem);

#endif
