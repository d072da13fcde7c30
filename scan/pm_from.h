/* pm_from.h - what the From header(s) of a message name, for the DKIM
 * forged-mail rule and for choosing the signing domain.
 *
 * RFC 5322 wants exactly one From field holding a mailbox-list; a message
 * that is to be trusted for a domain needs exactly one mailbox. Addresses
 * are parsed by GMime (internet_address_list_parse), never by hand, so
 * "ceo@ bank.com", "ceo@(x)bank.com", a folded "ceo@\r\n bank.com" and
 * "<ceo @ bank.com>" all come out as the mailbox ceo@bank.com, as a mail
 * client would show them.
 *
 * Besides the parsed addresses, the header's text is kept as a reader would
 * see it: unfolded, comments dropped, encoded words decoded, lowercased.
 * A From that is not one clean mailbox is judged by that text too, so that
 * nothing GMime reads differently from a mail client hides a domain.
 *
 * Pure: no state, no I/O, no logging; thread-safe (GMime is initialised
 * once per process, see pm_mime_init). Meant to be fuzzed.
 */
#ifndef PM_FROM_H
#define PM_FROM_H

#include <stdbool.h>
#include <stddef.h>

typedef enum {
    PM_FROM_NONE = 0,  /* no From header at all */
    PM_FROM_ONE,       /* one From header, exactly one mailbox with a domain */
    PM_FROM_AMBIGUOUS, /* several From headers, or one that is not exactly
                          one mailbox with a domain (none, several, a
                          group, no domain, unparsable) */
} pm_from_kind_t;

typedef struct {
    pm_from_kind_t kind;
    char *domain;   /* ONE: the mailbox's domain, lowercased, without a
                       trailing dot; NULL otherwise */
    char *problem;  /* AMBIGUOUS: what is wrong ("2 From headers", "3
                       mailboxes in From", "a group in From", ...) */
    char **domains; /* the domains of every parsed mailbox (groups
                       included), lowercased; also in ACE form (xn--)
                       when it differs */
    size_t n_domains;
    char *text; /* every value as read (see above), one per line */
} pm_from_t;

/* Parses the N From header values VALUES (as libmilter gives them: without
 * the name, continuation lines joined by LF or CRLF) into *out, which the
 * caller clears with pm_from_clear. N 0 gives PM_FROM_NONE. Never fails:
 * anything that is not one clean mailbox is PM_FROM_AMBIGUOUS. */
void pm_from_parse(const char *const *values, size_t n, pm_from_t *out);

/* True when F names DOMAIN (lowercase ASCII, no trailing dot):
 *  - a parsed mailbox's domain is DOMAIN; or
 *  - the text holds "@DOMAIN" ("@" then white space allowed) not followed
 *    by a letter, digit or '-' (what the rule always checked: an address
 *    in a display name counts); or
 *  - F is AMBIGUOUS and the text holds DOMAIN anywhere between label
 *    boundaries (not preceded by a letter, digit, '-' or '.', not followed
 *    by a letter, digit or '-'): generous on purpose, as such a From is
 *    refused when it names a protected domain at all. */
bool pm_from_names(const pm_from_t *f, const char *domain);

/* Frees what *f holds and zeroes it; safe on a zeroed or cleared one. */
void pm_from_clear(pm_from_t *f);

#endif
