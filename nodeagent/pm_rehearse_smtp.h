/* pm_rehearse_smtp.h - one message to one recipient through a rehearsal's
 * Postfix, and what its answer means in policy terms.
 *
 * The SMTP client is swaks (no SMTP client is written here): it says EHLO,
 * sets the client's attributes with Postfix's XCLIENT (ADDR, NAME, LOGIN:
 * only the rehearsal's listener lets 127.0.0.1 use it), says EHLO again
 * as that client, then MAIL, RCPT and DATA. Its transcript is read for
 * the first refusal, or the answer at the end of DATA: the stage it came
 * at and the reply, multi-line replies joined.
 *
 * A refusal by Postfix itself (HELO, client, sender, recipient checks,
 * relay denial) names its policy key from the reply's wording
 * (pm_pf_reject_key); an answer at the end of DATA is the filter's, whose
 * decision record names the key (pm_rehearse).
 */
#ifndef PM_REHEARSE_SMTP_H
#define PM_REHEARSE_SMTP_H

#include <stddef.h>

#define PM_REHEARSE_SWAKS "/usr/bin/swaks"

typedef struct {
    const char *swaks; /* NULL: PM_REHEARSE_SWAKS */
    const char *host;  /* the listener: 127.0.0.1 */
    int port;
    const char *client_addr; /* XCLIENT ADDR */
    const char *client_name; /* XCLIENT NAME; "" or NULL: [UNAVAILABLE] */
    const char *helo;
    const char *sender; /* "" : the null sender */
    const char *rcpt;
    const char *auth;      /* XCLIENT LOGIN, or "" / NULL */
    const char *data_file; /* pm_rehearse_smtp_data's output, on disk */
} pm_rehearse_smtp_t;

typedef struct {
    char *stage; /* connect, helo, mail, rcpt, data, end-of-data */
    char *reply; /* "554 5.7.1 ..." (a multi-line reply's lines joined) */
} pm_rehearse_answer_t;

/* Sends S's message with swaks (at most 60 s). PM_OK with *OUT (caller
 * clears with pm_rehearse_answer_clear); PM_EIO with *why when swaks did
 * not run or its transcript holds no answer. */
int pm_rehearse_smtp_send(const pm_rehearse_smtp_t *s,
                          pm_rehearse_answer_t *out, char **why);

/* Reads swaks's TRANSCRIPT (its stdout): the first refusal ("<** " lines)
 * with the command it answered, else the answer to the end of DATA.
 * PM_OK with *OUT; PM_EPROTO with *why when there is none. Pure. */
int pm_rehearse_smtp_parse(const char *transcript, pm_rehearse_answer_t *out,
                           char **why);

void pm_rehearse_answer_clear(pm_rehearse_answer_t *a);

/* MSG (LEN bytes) as DATA goes on the wire: lines ending in CRLF, a line
 * starting with '.' doubled (RFC 5321 4.5.2), a last line completed, and
 * the terminating ".\r\n". Sets *OUT_LEN; caller frees. */
char *pm_rehearse_smtp_data(const char *msg, size_t len, size_t *out_len);

#endif
