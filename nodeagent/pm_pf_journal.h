/* pm_pf_journal.h - smtpd's log lines from the systemd journal.
 *
 * On a host where the journal is the only log (Debian 12's default: no
 * syslog daemon, no /var/log/mail.log), pm_pf_rejects reads Postfix's
 * refusals here instead. Only entries the journal itself attributes to a
 * process named smtpd running as Postfix's user are taken (_COMM, _UID:
 * fields the journal sets from the kernel's credentials of the sender,
 * not from the message), so another local user's syslog(3) call cannot
 * forge a refusal, as it could in a shared log file.
 */
#ifndef PM_PF_JOURNAL_H
#define PM_PF_JOURNAL_H

#include <stddef.h>
#include <sys/types.h>

typedef struct pm_pf_journal_t pm_pf_journal_t;

/* Opens the local system journal at its end (no history: a refusal is
 * recorded with the time it is read), entries of smtpd as POSTFIX_UID
 * only, and of one Postfix instance: those whose SYSLOG_IDENTIFIER starts
 * with SYSLOG_NAME/ (its syslog_name; NULL: "postfix"), which also holds
 * smtpd services a master.cf entry names (postfix/submission/smtpd).
 * NULL with *why when the journal cannot be read. */
pm_pf_journal_t *pm_pf_journal_new(uid_t postfix_uid, const char *syslog_name,
                                   char **why);
void pm_pf_journal_destroy(pm_pf_journal_t **self_p);

/* The entries added since the last call, as syslog writes them
 * ("postfix/smtpd[PID]: MESSAGE\n" each), at most MAX bytes: a malloc'd
 * buffer in *BUF (caller frees; NULL when none) and its length in *LEN.
 * Never blocks. 0, or a negative errno from the journal. */
int pm_pf_journal_read(pm_pf_journal_t *self, size_t max, char **buf,
                       size_t *len);

#endif
