/* pm_notify.h - notification messages about mail the milter refused.
 *
 * A notice says who sent what to whom, which file (or which virus), when,
 * and the queue id. It is sent as a small text/plain message over SMTP to
 * a Postfix listener that runs no milter (see pm_milter.h for the
 * master.cf service the agent sets up), with the null envelope sender
 * (MAIL FROM:<>): a notice never passes through privmta-milter again (no
 * loop), and a notice that cannot be delivered never bounces.
 *
 * Sending happens in one notifier thread (an actor with a bounded queue):
 * pm_notify_post returns at once and never blocks a message. A send that
 * fails is retried (3 tries, 1 s apart) and then dropped with an error log
 * line; a full queue drops the notice with a warning.
 *
 * Addresses come from the envelope of hostile mail: each one is parsed by
 * GMime (pm_notify_address) before it goes into RCPT TO or a header, and a
 * notice to an address that is not exactly one plain mailbox is not sent
 * (a warning names it). Every notice has its own Message-ID (a random
 * part), so a recipient's notice never shares one with the admin's.
 */
#ifndef PM_NOTIFY_H
#define PM_NOTIFY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

typedef struct pm_notify_t pm_notify_t;

typedef struct {
    const char *what;   /* "blocked attachment" or "virus" */
    const char *item;   /* file name or signature name */
    const char *sender; /* envelope sender ("" null sender) */
    char *const *rcpts; /* envelope recipients */
    size_t n_rcpts;
    const char *queue_id;
    const char *subject; /* of the refused message, or NULL */
    time_t when;
} pm_notice_t;

/* Starts the notifier: SMTP to SMTP, HOST:PORT ("127.0.0.1:10026",
 * "[::1]:10026"), with TIMEOUT_MS per step; FROM is the From: header of
 * notices. FOLLOW (NULL: none) names a file that, when it exists, holds
 * the address to use instead ("HOST:PORT", a newline allowed; at most
 * PM_HANDOFF_NOTIFY_MAX bytes, no link followed): the agent's listener
 * (pm_handoff.h), read before each notice. Returns NULL (and *why) when
 * SMTP is bad. Caller owns the result. */
pm_notify_t *pm_notify_new(const char *smtp, const char *follow,
                           const char *from, int timeout_ms, char **why);

/* Stops the thread after the queued notices were tried; accepts NULL, safe
 * twice, nulls *self_p. */
void pm_notify_destroy(pm_notify_t **self_p);

/* Checks ADDR (an envelope address, without <>) for use as a notice's
 * recipient: no control character (CR, LF, ...), no '<' or '>', at most
 * 320 bytes, and GMime parses it to exactly one mailbox with a local part
 * and a domain. Returns the address for RCPT TO, or NULL when it is
 * unusable; *to_header (may be NULL) then gets the To: value as GMime
 * writes it (RFC 2047 encoded where needed). Caller frees both. */
char *pm_notify_address(const char *addr, char **to_header);

/* Queues one notice to TO (one message per address). FOR_ADMIN selects
 * the wording (the admin notice lists every recipient; a recipient's
 * notice tells them a message to them was refused). Everything is copied.
 * Returns false when the queue is full or TO is unusable (the notice is
 * dropped, with a warning). */
bool pm_notify_post(pm_notify_t *self, const pm_notice_t *n, const char *to,
                    bool for_admin);

/* The message text of a notice to TO (RFC 5322, CRLF, with Date, a
 * Message-ID of its own, Auto-Submitted: auto-generated). NULL when TO is
 * unusable (pm_notify_address). Caller frees. */
char *pm_notify_render(const pm_notice_t *n, const char *from, const char *to,
                       bool for_admin);

/* Notices sent and given up since start (for the status file). */
void pm_notify_counts(pm_notify_t *self, uint64_t *sent, uint64_t *failed);

#endif
