/* pm_declog.h - the filter's record of what it decided, for
 * `privmta-ctl why`: bounded, local to the node, addresses only (never a
 * body, a Subject or a header other than Message-ID).
 *
 * Two files in the milter's status directory: DIR/decisions.jsonl (being
 * written) and DIR/decisions.1.jsonl (the previous one). One JSON object a
 * line:
 *   {"t": unix seconds, "qid": "4Xy...", "msgid": "<...>", "from": "a@b",
 *    "rcpt": ["c@d", ...], "verdict": "rejected", "reply": "554 5.7.1 ...",
 *    "key": "inbound.blocked_extensions", "evidence": "...", "rev": 7}
 * verdict is accepted, tagged, discarded, rejected or tempfailed; key is
 * the policy key that decided ("" for an accept or an engine failure);
 * evidence is what made it decide (file name, signature name, score
 * against tag/kill, the DKIM result), the verdict's log line.
 *
 * Retention: when the current file holds MAX_RECORDS / 2 records or
 * MAX_BYTES / 2 bytes, or its first record is half the age kept
 * (pm_declog_set_max_age), it replaces the previous one (rename) and a
 * new one begins, so at most MAX_RECORDS records and MAX_BYTES bytes,
 * about as old as the age kept, remain; a reader skips records older
 * than the time it is given. Each field is
 * capped (PM_DECLOG_FIELD_MAX, PM_DECLOG_RCPTS_MAX) before it is written.
 *
 * Written by the milter (unprivileged, assumed hostile), read by the agent
 * (root): the reader opens each file the pm_file way (PM_FILE_STRICT: no
 * link, no hard-linked file, never blocking on a FIFO), reads at most
 * MAX_BYTES / 2 + one record, and checks every record's shape and sizes
 * before passing it on, and that no text holds a C0 control or DEL (the
 * writer never writes one); a malformed line is skipped and counted,
 * never trusted. A last line without its newline (a write in progress) is
 * skipped. What the shape cannot tell (a key the filter never decides by,
 * a time in the future) is its reader's to check: see
 * pm_declog_filter_key.
 */
#ifndef PM_DECLOG_H
#define PM_DECLOG_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PM_DECLOG_FILE "decisions.jsonl"
#define PM_DECLOG_OLD "decisions.1.jsonl"
#define PM_DECLOG_RECORDS_DEFAULT 100000
#define PM_DECLOG_DAYS_DEFAULT 7
#define PM_DECLOG_BYTES_MAX                                                    \
    (64u << 20)                          /* both files together, by default    \
                                           (decision_log_bytes_mb); a reader   \
                                           is given the writer's value */
#define PM_DECLOG_FIELD_MAX 512          /* bytes of any one text field */
#define PM_DECLOG_RCPTS_MAX 100          /* recipients kept per record */
#define PM_DECLOG_RECORD_MAX (64u << 10) /* a longer line is malformed */

typedef struct {
    int64_t time;           /* unix seconds */
    const char *queue_id;   /* "NOQUEUE" when Postfix gave none */
    const char *message_id; /* the Message-ID header's value, or "" */
    const char *sender;     /* envelope sender, "" for <> */
    const char *const *rcpts;
    size_t n_rcpts;
    const char *verdict; /* accepted, tagged, discarded, rejected,
                            tempfailed */
    const char *reply;   /* "554 5.7.1 text", or "" */
    const char *key;     /* the deciding policy key, or "" */
    const char *evidence;
    uint64_t revision; /* the policy revision the message was under */
} pm_decision_t;

typedef struct pm_declog_t pm_declog_t;

/* Opens the log in DIR for appending (counting what the current file
 * holds, so that rotation goes on across restarts). Files are made 0640:
 * the agent reads them as root, the group is the milter's. NULL with *why
 * when DIR cannot be written, when the current file is a link or not a
 * regular file, or when MAX_RECORDS or MAX_BYTES is 0. Caller owns the
 * result and closes it with pm_declog_close (accepts NULL, nulls
 * *self_p). */
pm_declog_t *pm_declog_open(const char *dir, size_t max_records,
                            size_t max_bytes, char **why);
void pm_declog_close(pm_declog_t **self_p);

/* Records are kept about SECS (default PM_DECLOG_DAYS_DEFAULT days): the
 * current file is also rotated once its first record is SECS / 2 old, so
 * the previous one, replaced at the next rotation, holds nothing much
 * older than SECS. */
void pm_declog_set_max_age(pm_declog_t *self, int64_t secs);

/* Appends D as one line (one write, O_APPEND), rotating first when the
 * current file is full. Each text is capped at PM_DECLOG_FIELD_MAX bytes
 * (cut between characters; bytes that are not UTF-8, C0 controls and DEL
 * become '?'), and recipients past PM_DECLOG_RCPTS_MAX, or past what fits
 * in PM_DECLOG_RECORD_MAX, are left out. After a short write (disk full)
 * the next record starts on a line of its own. Thread-safe. PM_OK, or
 * PM_EIO with *why (the caller logs it; mail is never held up by the
 * log). */
int pm_declog_append(pm_declog_t *self, const pm_decision_t *d, char **why);

/* What a reader looks for: every set field (not NULL, not "") must
 * match (queue id and Message-ID exactly, the sender case-insensitively);
 * records before SINCE (unix seconds) are skipped; at most MAX records
 * (0: all) are passed on, newest first (in the order they were
 * written). */
typedef struct {
    const char *queue_id;
    const char *message_id;
    const char *sender;
    int64_t since;
    size_t max;
} pm_declog_query_t;

/* Called for each matching record, a JSON object of the shape above whose
 * every field was checked (types, sizes); borrowed for the call. */
typedef void(pm_declog_fn)(const json_t *record, void *arg);

/* Whether KEY is one privmta-milter's records can name: "" or one of the
 * content filter's keys, exactly what pm_milter_decision_key returns
 * (tests/scan/test_milter.c holds the two together). A filter record
 * naming another key (one of Postfix's, say, to blame the wrong check) was
 * not written by the filter's code: its reader drops it. Postfix's own
 * refusals (pm_pf_rejects, the agent's) use this format with Postfix's
 * keys and are not held to it. */
bool pm_declog_filter_key(const char *key);

/* Reads DIR's two files (either may be missing) for Q; MAX_BYTES is the
 * writer's (each file is read up to MAX_BYTES / 2 + PM_DECLOG_RECORD_MAX).
 * *SKIPPED (may be NULL) gets the number of lines passed over: malformed
 * ones, and a last line without its newline. Every line is read, so the
 * count is the whole files' even when MAX records came early. A rotation
 * between the two reads is noticed (the current file is read first) and
 * its records are passed once. PM_OK, or an error with *why naming the
 * file when one exists but cannot be read safely: PM_EINVAL (a link, a
 * hard-linked file, a FIFO or other non-regular file, too big), PM_EIO. */
int pm_declog_query(const char *dir, size_t max_bytes,
                    const pm_declog_query_t *q, pm_declog_fn *fn, void *arg,
                    size_t *skipped, char **why);

#endif
