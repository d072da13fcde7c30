/* pm_ctl_testmsg.h - the messages `privmta-ctl policy test` rehearses,
 * and how it compares the answers they got.
 *
 * A file given as a message is checked before anything is sent: a photo
 * or a PDF given by mistake would only come back as an odd SMTP answer.
 * The envelope a test needs (sender, recipients) defaults to what the
 * message's own headers say, read with GMime's address parser, never by
 * hand (as pm_from does for the filter).
 *
 * Pure: no I/O, no logging. GMime is initialised once per process on
 * first use (g_mime_init; no other part of privmta-ctl uses GMime).
 */
#ifndef PM_CTL_TESTMSG_H
#define PM_CTL_TESTMSG_H

#include "privmta.pb-c.h"

#include <stdbool.h>
#include <stddef.h>

/* Whether DATA (LEN bytes) is a mail message: no NUL byte anywhere, and a
 * header of at least one field before the first empty line (or the end):
 * every line a field "Name: value" (a name of printable ASCII but ':') or
 * its continuation (a line starting with a space or a tab, after a
 * field). Lines end with LF or CRLF. Returns NULL when it is; else why not
 * (caller frees), naming the line and showing it escaped and cut short,
 * e.g. "not a mail message: line 1 is not a header (\"\xff\xd8\xff\xe0\")".
 * The caller puts the file name in front. */
char *pm_ctl_testmsg_check(const char *data, size_t len);

/* What the header of the message DATA (LEN bytes, checked as above) says
 * of its envelope: *FROM the address of the first mailbox in its From
 * field (NULL when there is none), *RCPTS those of every mailbox in its To
 * fields, groups' members included, each once, in order (a
 * NULL-terminated list, free with pm_conf_list_free; NULL when there is
 * none), their count in *N_RCPTS. A mailbox without a domain is left
 * out; domains are given in their ASCII form (xn--), as SMTP without
 * SMTPUTF8 needs them. Caller frees *FROM. */
void pm_ctl_testmsg_envelope(const char *data, size_t len, char **from,
                             char ***rcpts, size_t *n_rcpts);

/* Whether A and B are the same answer: the same verdict, the same SMTP
 * reply code (its first three characters: the rest holds queue ids,
 * which differ from one run to the next) and the same deciding key. */
bool pm_ctl_testmsg_same(const Pm__TestResult *a, const Pm__TestResult *b);

#endif
