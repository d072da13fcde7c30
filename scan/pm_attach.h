/* pm_attach.h - find attachments whose file extension the policy blocks.
 *
 * The milter hands over a whole RFC 5322 message (headers and body) as it
 * received it; GMime 3.0 parses it (MIME is never parsed by hand here).
 * Every part at every multipart level is looked at, and attached messages
 * (message/rfc822) are opened and looked at too.
 *
 * A part's file name is taken from each of Content-Disposition "filename"
 * and Content-Type "name" (and the non-standard Content-Disposition "name"
 * and Content-Type "filename", which some clients write); each one found is
 * checked, so a part cannot hide "evil.exe" in one parameter behind
 * "notes.txt" in the other. GMime decodes RFC 2231 (charsets, percent
 * escapes, continuations "filename*0*=") and RFC 2047 encoded words inside
 * parameters ("=?UTF-8?B?...?="). The decoded name is cleaned as Windows
 * would: trailing dots and white space are removed ("evil.exe. " is
 * "evil.exe"). The extension is the text after the last dot of the cleaned
 * name; a name without a dot has none. Extensions compare ASCII
 * case-insensitively ("INVOICE.EXE" matches "exe"; "report.pdf.exe" matches
 * "exe"; "exe.txt" does not).
 *
 * Thread-safe: a blocklist is immutable once built and may be shared by any
 * number of threads calling pm_attach_scan at once.
 */
#ifndef PM_ATTACH_H
#define PM_ATTACH_H

#include <stddef.h>

/* The most MIME levels (multipart or attached message) looked into. A
 * deeper message is a parse error (-1): the milter's fail-safe action
 * applies rather than a pass for what was never looked at. */
#define PM_ATTACH_MAX_DEPTH 64

typedef struct pm_attach_blocklist_t pm_attach_blocklist_t;

/* The first blocked attachment found. Both strings are owned by the hit;
 * release them with pm_attach_hit_clear. */
typedef struct {
    char *filename;  /* decoded and cleaned, UTF-8 ("bösartig.exe") */
    char *extension; /* as written in the name, without the dot ("EXE") */
} pm_attach_hit_t;

/* Builds a blocklist from N extensions without the dot ("exe", "js"),
 * compared case-insensitively. N may be 0 (nothing is blocked). Returns
 * NULL when an entry is NULL, empty, or contains '.', '/' or white space
 * (the policy validator, pm_check_extension, refuses those already).
 * Caller owns the result and must destroy it. */
pm_attach_blocklist_t *pm_attach_blocklist_new(char *const *exts, size_t n);

/* Destroys *self_p and sets it to NULL; accepts NULL, safe twice. */
void pm_attach_blocklist_destroy(pm_attach_blocklist_t **self_p);

/* The number of distinct extensions in the list. */
size_t pm_attach_blocklist_size(const pm_attach_blocklist_t *self);

/* Looks for a blocked attachment in the message MSG of LEN bytes (need not
 * be NUL-terminated). Returns:
 *    0  no part carries a blocked extension (a message without
 *       attachments passes);
 *    1  found: *hit is filled in (caller clears it with
 *       pm_attach_hit_clear); the scan stops at the first hit;
 *   -1  the message cannot be checked: GMime finds no message in it, MIME
 *       nesting deeper than PM_ATTACH_MAX_DEPTH or than GMime's own limit
 *       (GMIME_CRIT_NESTING_OVERFLOW: GMime stops building the tree, so
 *       deeper parts were never seen) with no hit above it; *why (may be
 *       NULL) gets a new sentence the caller frees. The caller applies its
 *       fail-safe action, never a silent pass. GMime's other warnings
 *       (malformed multipart, duplicated parameters...) still leave a tree
 *       in which every name is checked, so they do not fail the scan.
 * Output parameters are only set for their own return value. HIT may be
 * NULL when the caller only needs the verdict. */
int pm_attach_scan(const pm_attach_blocklist_t *bl, const char *msg, size_t len,
                   pm_attach_hit_t *hit, char **why);

/* Frees the strings of a hit and zeroes it; safe on a zeroed hit. */
void pm_attach_hit_clear(pm_attach_hit_t *hit);

#endif
