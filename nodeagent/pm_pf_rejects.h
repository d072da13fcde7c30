/* pm_pf_rejects.h - Postfix's own refusals, kept for privmta-ctl why.
 *
 * smtpd refuses some mail before the filter sees it: the HELO, client,
 * sender and recipient checks and the relay rule the policy renders. The
 * filter cannot record those, so the agent follows Postfix's log (its
 * maillog_file, or the syslog file it goes to) and keeps each
 * "NOQUEUE: reject:" line as a decision record (scan/pm_declog.h) in a
 * directory of its own, with the policy key the reply's wording names
 * (the restriction the policy rendered), the client and HELO as evidence,
 * and the revision the node enforced. The filter's own refusals
 * ("milter-reject") are left to the filter's record.
 *
 * The log is Postfix's (root's), or the systemd journal's entries of
 * smtpd (pm_pf_journal.h). A file is read with O_NOFOLLOW, never blocking,
 * at most PM_PF_REJECTS_READ bytes a poll and whole lines only. It is
 * followed from where it ends when first seen (no history is imported
 * with today's time); a log replaced (another inode) or cut (smaller
 * than where reading stopped) is read from its start.
 */
#ifndef PM_PF_REJECTS_H
#define PM_PF_REJECTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PM_PF_REJECTS_READ (1u << 20)
#define PM_PF_REJECTS_LOG "/var/log/mail.log"
/* the log named so is the systemd journal (pm_pf_journal.h) */
#define PM_PF_REJECTS_JOURNAL "journal"

/* One refusal as the log line says it; every field a copy ("" when the
 * line has none). */
typedef struct {
    char *queue_id; /* "NOQUEUE" */
    char *stage;    /* CONNECT, HELO, MAIL, RCPT, DATA, ... */
    char *client;   /* "unknown[192.0.2.1]" */
    char *reply;    /* "554 5.7.1 <b@c>: Relay access denied" */
    char *from, *to, *helo;
} pm_pf_reject_t;

/* Parses one log LINE: true with *OUT (caller clears) for a refusal of
 * smtpd's own; false for anything else. Pure. */
bool pm_pf_reject_parse(const char *line, pm_pf_reject_t *out);
void pm_pf_reject_clear(pm_pf_reject_t *r);

/* The policy key behind Postfix's refusal REPLY (a restriction the policy
 * renders: pm_pf_render), or NULL when the wording is none of theirs. */
const char *pm_pf_reject_key(const char *reply);

typedef struct pm_pf_rejects_t pm_pf_rejects_t;

/* Follows LOG (a file, or PM_PF_REJECTS_JOURNAL: there the entries of
 * the instance whose syslog_name is SYSLOG_NAME, NULL "postfix") into a
 * decision log in DIR (made 0700; MAX_RECORDS, MAX_BYTES as
 * pm_declog_open). NULL with *why when DIR or the journal cannot be
 * used. */
pm_pf_rejects_t *pm_pf_rejects_new(const char *log, const char *syslog_name,
                                   const char *dir, size_t max_records,
                                   size_t max_bytes, char **why);
void pm_pf_rejects_destroy(pm_pf_rejects_t **self_p);

/* Records what LOG gained since the last poll, each refusal under
 * revision REV at time NOW (unix seconds). Returns how many. A log that
 * cannot be read is retried at the next poll (said once in the log). */
size_t pm_pf_rejects_poll(pm_pf_rejects_t *self, uint64_t rev, int64_t now);

#endif
