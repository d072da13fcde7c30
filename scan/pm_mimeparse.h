/* pm_mimeparse.h - GMime parsing with MIME shape limits enforced while
 * GMime parses.
 *
 * GMime builds the whole tree before anyone can look at it: a 10 MiB
 * message of 1.5 million empty parts ("--b\r\n\r\n--b\r\n\r\n...") costs
 * about 2 GiB and seconds of CPU, and checking the part count afterwards is
 * too late. So the limits are counted as GMime reads, and once one is
 * exceeded the stream it reads from ends: GMime stops with what it has
 * (at most one read buffer, 4 KiB, past the limit), a bounded tree.
 *
 * - Header fields (count and bytes, per part and in total) are counted in
 *   GMime's header callback (g_mime_parser_set_header_regex), which sees
 *   every field of every part, including attached messages. A part's
 *   fields are those not separated by an empty line or a boundary line.
 * - Parts carry no header of their own when they are empty, so no GMime
 *   callback sees them. They are counted from the stream instead: every
 *   part but the first begins after a line "--BOUNDARY", and each
 *   BOUNDARY is declared in a Content-Type header that the header callback
 *   has seen before GMime reads the part's body. The stream counts each
 *   line it hands to GMime that starts with "--" and a declared boundary
 *   (not a closing "--BOUNDARY--"). This over-counts, never under-counts:
 *   a boundary declared by a part that is not a multipart, or used where
 *   it is not active, is counted too, which only hurts a sender who built
 *   such a message. Boundaries are compared up to their first white space
 *   and at most 256 bytes, again erring towards counting.
 * - Nesting depth needs no count while parsing: every level is a part, so
 *   the part limit bounds it; it is checked on the (bounded) tree. GMime's
 *   own limit (GMIME_CRIT_NESTING_OVERFLOW) is reported as a limit too.
 *
 * Not thread-safe: one pm_mimeparse_t per scan (one message and the
 * messages attached to it in encoded form).
 */
#ifndef PM_MIMEPARSE_H
#define PM_MIMEPARSE_H

#include "pm_attach.h"

#include <gmime/gmime.h>

typedef struct pm_mimeparse_t pm_mimeparse_t;

/* Initialises GMime once per process for every module that uses it
 * (pm_attach, pm_from, pm_notify): g_mime_init keeps an unlocked counter,
 * so it must run exactly once, not once per module. Thread-safe
 * (pthread_once); programs may call it before starting threads. */
void pm_mime_init(void);

/* A parse context with the limits *LIM (copied; all fields must be set,
 * see pm_attach_blocklist_limits). Caller owns the result and must
 * destroy it. */
pm_mimeparse_t *pm_mimeparse_new(const pm_attach_limits_t *lim);

/* Destroys *self_p and sets it to NULL; accepts NULL, safe twice. */
void pm_mimeparse_destroy(pm_mimeparse_t **self_p);

/* Parses MSG of LEN bytes as a message (GMime's loose RFC 2047 and
 * parameter modes: names are decoded as mail clients decode them). Counts
 * go on from earlier calls on SELF, so an encoded attached message counts
 * towards its parent's limits. Once a limit is exceeded (here or in an
 * earlier call) GMime is given no more input. Returns the message, or NULL
 * when GMime finds none; caller unrefs it (it keeps its own copy of MSG
 * and outlives SELF). */
GMimeMessage *pm_mimeparse_message(pm_mimeparse_t *self, const char *msg,
                                   size_t len);

/* The first limit exceeded so far, as a sentence ("more than 1000 MIME
 * parts"), or NULL. Owned by SELF. */
const char *pm_mimeparse_exceeded(const pm_mimeparse_t *self);

/* Records a limit found outside the parse (the nesting depth, checked on
 * the tree) unless one is recorded already. FMT is printf-like. */
void pm_mimeparse_exceed(pm_mimeparse_t *self, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#endif
