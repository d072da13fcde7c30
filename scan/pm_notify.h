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

/* Starts the notifier: SMTP to HOST:PORT ("127.0.0.1:10026", "[::1]:10026")
 * with TIMEOUT_MS per step; FROM is the From: header of notices. Returns
 * NULL (and *why) when the address is bad. Caller owns the result. */
pm_notify_t *pm_notify_new(const char *smtp, const char *from, int timeout_ms,
                           char **why);

/* Stops the thread after the queued notices were tried; accepts NULL, safe
 * twice, nulls *self_p. */
void pm_notify_destroy(pm_notify_t **self_p);

/* Queues one notice to TO (one message per address). FOR_ADMIN selects
 * the wording (the admin notice lists every recipient; a recipient's
 * notice tells them a message to them was refused). Everything is copied.
 * Returns false when the queue is full (the notice is dropped). */
bool pm_notify_post(pm_notify_t *self, const pm_notice_t *n, const char *to,
                    bool for_admin);

/* The message text of a notice to TO (RFC 5322, CRLF, with Date,
 * Message-ID, Auto-Submitted: auto-generated). Caller frees. */
char *pm_notify_render(const pm_notice_t *n, const char *from, const char *to,
                       bool for_admin);

/* Notices sent and given up since start (for the status file). */
void pm_notify_counts(pm_notify_t *self, uint64_t *sent, uint64_t *failed);

#endif
