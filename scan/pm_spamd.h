/* pm_spamd.h - a client for SpamAssassin's spamd (protocol SPAMC/1.5).
 *
 * One check is one connection: the client connects (TCP "host:port" or a
 * unix socket path), sends "SYMBOLS SPAMC/1.5" with a Content-length header
 * and the message in a single sendmsg() (TCP_NODELAY set, so no Nagle /
 * delayed-ACK stall on loopback TCP), and reads spamd's answer:
 *
 *     SPAMD/1.1 0 EX_OK
 *     Content-length: 19
 *     Spam: True ; 15.0 / 5.0
 *
 *     PM_TEST_A,PM_TEST_B
 *
 * Fail safe: anything but a complete, well-formed EX_OK answer is an error
 * (cannot connect, refused, timeout, a truncated or malformed answer, any
 * spamd EX_* failure). An error never comes back as a score: unlike spamc
 * without -x, a spamd that is down is not "0.0, not spam".
 *
 * Scores are exact. spamd prints its score with one decimal ("%2.1f"); the
 * text is parsed digit by digit into integer hundredths (6.6 -> 660), never
 * through strtod, so the tag/kill comparison "score >= percent x 20 / 100"
 * (DESIGN.md, no rounding) is an integer comparison: 660 >= 33 x 20.
 *
 * Every function returns PM_OK or a pm_err_t (common/pm_error.h): any
 * non-zero value is an error. When why is not NULL, an error also sets *why
 * to one line saying what went wrong (caller frees); *why is untouched on
 * success. Text that came from the network is made printable before it is
 * put into *why. Nothing is logged above debug.
 *
 * A pm_spamd_t is immutable after pm_spamd_new and holds no connection, so
 * one may be shared by any number of threads calling pm_spamd_check at once.
 */
#ifndef PM_SPAMD_H
#define PM_SPAMD_H

#include "pm_error.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct pm_spamd_t pm_spamd_t;

typedef struct {
    double score;             /* as spamd reported it, e.g. 6.6 */
    int64_t score_hundredths; /* the same, exact: 660 */
    double threshold;         /* spamd's own required_score, e.g. 5.0 */
    int64_t threshold_hundredths;
    bool spamd_says_spam; /* spamd's "Spam: True" (its own threshold) */
    char **symbols;       /* names of the rules that hit, n_symbols */
    size_t n_symbols;
    unsigned latency_ms; /* connect to last byte read */
} pm_spamd_result_t;

/* Creates a client for spamd at address: "/path/to/socket" (unix socket,
 * absolute path), "127.0.0.1:783", "[::1]:783" or "localhost:783" (resolved
 * once, here). timeout_ms bounds a whole check: connect, send and answer
 * together; it must be > 0. Returns NULL on a bad address or timeout.
 * Caller destroys the result with pm_spamd_destroy. */
pm_spamd_t *pm_spamd_new(const char *address, int timeout_ms);

/* Destroys the client; accepts NULL, safe twice, nulls *self_p. */
void pm_spamd_destroy(pm_spamd_t **self_p);

/* Asks spamd to score msg (len bytes, the whole RFC 5322 message, CRLF or
 * LF line ends); the caller caps its size (spamc's default is 500 KB, and
 * spamd holds the whole message in memory). user, when not NULL, is sent as the
 * "User:" header (spamd started with -x ignores it); it must be printable
 * without spaces. On PM_OK fills *out, which the caller clears with
 * pm_spamd_result_clear. Errors (with *why): PM_EINVAL bad arguments; PM_EIO
 * cannot connect (refused, no such socket) or the connection broke;
 * PM_ETIMEDOUT no complete answer within the timeout; PM_EPROTO a malformed or
 * truncated answer, or spamd answered an EX_* failure. *out is untouched on
 * error. */
int pm_spamd_check(pm_spamd_t *self, const char *msg, size_t len,
                   const char *user, pm_spamd_result_t *out, char **why);

/* Parses spamd's answer to a check: BUF holds the LEN bytes read from the
 * connection (need not be NUL-terminated, may be cut short), as in the
 * example above. pm_spamd_check reads with this parser; it is public so
 * that the part facing spamd's bytes can be tested and fuzzed without a
 * socket. Pure: no I/O, no state, thread-safe; BUF is only read.
 * On PM_OK fills *out (latency_ms is 0), which the caller clears with
 * pm_spamd_result_clear. Errors (with *why, which names the server as
 * "spamd"): PM_EINVAL a NULL OUT, or a NULL BUF with LEN > 0; PM_EPROTO
 * anything but a complete, well-formed EX_OK answer: a NUL byte, no status
 * line, an EX_* failure, no blank line after the headers, no Spam: header,
 * a malformed header, a body whose length is not the Content-length.
 * *out is untouched on error. */
int pm_spamd_parse_reply(const char *buf, size_t len, pm_spamd_result_t *out,
                         char **why);

/* Sends "PING" and expects "PONG": spamd is up and answering. Same errors
 * as pm_spamd_check. For health status and for tests waiting for spamd. */
int pm_spamd_ping(pm_spamd_t *self, char **why);

/* Frees what a successful check put into *result and zeroes it; accepts
 * NULL and a zeroed or already cleared result. */
void pm_spamd_result_clear(pm_spamd_result_t *result);

/* Parses spamd's score text ("6.6", "-1.0", "15", "1000.0") into exact
 * hundredths. More than two decimals are floored (toward minus infinity),
 * which keeps "score >= T" exact for any threshold T in hundredths.
 * Returns PM_EINVAL for anything but [+-]digits[.digits], or out of range
 * (|score| >= 10^12). */
int pm_spamd_parse_score(const char *text, size_t len, int64_t *hundredths);

/* The tag/kill threshold of a percent, in hundredths of a score point:
 * percent x 20 / 100 points = percent x 20 hundredths (33 -> 660 = 6.6). */
int64_t pm_spamd_percent_hundredths(unsigned percent);

/* True when score_hundredths >= percent x 20 / 100 points, exactly. */
bool pm_spamd_over_hundredths(int64_t score_hundredths, unsigned percent);

/* The same for a score held as a double that came from spamd's text (at
 * most two decimals): the double is first snapped to the nearest hundredth,
 * so 6.6 (really 6.5999999999999996...) compares as 660 and
 * pm_spamd_over(6.6, 33) is true. Prefer pm_spamd_over_hundredths with
 * result.score_hundredths. */
bool pm_spamd_over(double score, unsigned percent);

#endif
