/* pm_milter_private.h - what the pm_milter*.c files share (not an API). */
#ifndef PM_MILTER_PRIVATE_H
#define PM_MILTER_PRIVATE_H

#include "pm_attach.h"
#include "pm_from.h"
#include "pm_milter.h"

#include <stddef.h>

/* The snapshot's attachment blocklist (owned by SELF). */
const pm_attach_blocklist_t *pm_mpolicy_blocklist(const pm_mpolicy_t *self);

/* Wipes and frees a secret string, nulls *s_p; accepts NULL. */
void pm_secure_free(char **s_p);

/* The recipients of MSG, *n of them (owned by MSG), and the envelope
 * sender ("" for the null sender), the "j" macro ("" unknown). */
char *const *pm_mmsg_rcpts(const pm_mmsg_t *msg, size_t *n);
const char *pm_mmsg_sender(const pm_mmsg_t *msg);
const char *pm_mmsg_myhostname(const pm_mmsg_t *msg);
const char *pm_mmsg_subject(const pm_mmsg_t *msg);           /* NULL: none */
const char *pm_mmsg_auth(const pm_mmsg_t *msg);              /* NULL: none */
const struct sockaddr *pm_mmsg_client(const pm_mmsg_t *msg); /* or NULL */

/* The From headers of MSG, parsed (pm_from.h); caller clears *out. */
void pm_mmsg_from(const pm_mmsg_t *msg, pm_from_t *out);

/* True when the From headers of MSG name DOMAIN (lowercase), as the
 * forged-mail rule reads them (pm_from_names). Parses every call: for
 * tests and fuzzing; the decision parses once (pm_mmsg_from). */
bool pm_mmsg_from_mentions(const pm_mmsg_t *msg, const char *domain);

#endif
