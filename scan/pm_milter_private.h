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

/* The first Message-ID header's value, blanks around it dropped, at most
 * PM_MMSG_MSGID_MAX bytes kept; "" when there is none. */
#define PM_MMSG_MSGID_MAX 998
const char *pm_mmsg_message_id(const pm_mmsg_t *msg);

/* The deciding policy key of V under POL (NULL: none), as the decision
 * log records it: "inbound.blocked_extensions", "antivirus.databases",
 * "antivirus.custom_signatures" (the signature is named in one of POL's
 * custom files), "antivirus.block_encrypted_archives", "dkim.domains",
 * "antispam.tag_percent" or "antispam.kill_percent"; "" when no key
 * decided (an accept, a failure, a MIME or scan limit). Static. */
const char *pm_milter_decision_key(const pm_mpolicy_t *pol,
                                   const pm_mverdict_t *v);

/* The From headers of MSG, parsed (pm_from.h); caller clears *out. */
void pm_mmsg_from(const pm_mmsg_t *msg, pm_from_t *out);

/* True when the From headers of MSG name DOMAIN (lowercase), as the
 * forged-mail rule reads them (pm_from_names). Parses every call: for
 * tests and fuzzing; the decision parses once (pm_mmsg_from). */
bool pm_mmsg_from_mentions(const pm_mmsg_t *msg, const char *domain);

#endif
