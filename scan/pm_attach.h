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
 * Beyond the MIME headers, the scan opens what a recipient's client would:
 *  - archives (zip, tar with or without gzip/bzip2/xz, 7z, rar, rar5) with
 *    libarchive, nested ones too (a zip in a zip), whatever the part is
 *    called: libarchive recognises the format from the content;
 *  - TNEF ("winmail.dat", application/ms-tnef) with libytnef;
 *  - uuencoded files in text parts ("begin 644 invoice.exe").
 * Every name found there is cleaned and checked as a MIME file name is; for
 * a name inside an archive only its last path component counts ("dir/a.exe"
 * is "a.exe").
 *
 * Hostile mail is bounded by pm_attach_limits_t. The MIME shape limits are
 * enforced while GMime parses (see pm_mimeparse.h), so a message of a
 * million empty parts costs no more memory than its first thousand; they
 * apply even when the blocklist is empty, since the milter relies on the
 * scan as its guard against such messages. What is beyond a limit was not
 * looked at, so the scan says so (return value 2) rather than passing.
 *
 * Thread-safe: a blocklist is immutable once built (limits included) and
 * may be shared by any number of threads calling pm_attach_scan at once.
 */
#ifndef PM_ATTACH_H
#define PM_ATTACH_H

#include <stddef.h>
#include <stdint.h>

/* What one message may cost the scan. A field left 0 takes its default
 * (the PM_ATTACH_DEFAULT_* value beside it). Defaults are far above what
 * real mail needs and low enough that one message stays within a few tens
 * of MiB and about a second of CPU. */
typedef struct {
    /* MIME shape, counted while GMime parses (the part count also bounds
     * the tree GMime builds, hence memory). */
    size_t max_parts;        /* MIME parts in the message */
    unsigned max_depth;      /* multipart / message levels */
    size_t max_headers;      /* header fields in one part */
    size_t max_header_bytes; /* bytes of header fields in one part */
    size_t max_total_headers;
    size_t max_total_header_bytes;
    /* Archives, summed over all archives in the message. */
    unsigned max_archive_depth; /* an archive in an archive is level 2 */
    size_t max_archive_entries; /* entries in one archive */
    size_t max_total_entries;   /* entries in all archives */
    uint64_t max_archive_bytes; /* bytes decompressed, all archives */
} pm_attach_limits_t;

#define PM_ATTACH_DEFAULT_PARTS 1000
#define PM_ATTACH_DEFAULT_DEPTH 32 /* GMime itself stops at 1024 */
#define PM_ATTACH_DEFAULT_HEADERS 1000
#define PM_ATTACH_DEFAULT_HEADER_BYTES (256 * 1024)
#define PM_ATTACH_DEFAULT_TOTAL_HEADERS 10000
#define PM_ATTACH_DEFAULT_TOTAL_HEADER_BYTES (1024 * 1024)
#define PM_ATTACH_DEFAULT_ARCHIVE_DEPTH 4
#define PM_ATTACH_DEFAULT_ARCHIVE_ENTRIES 10000
#define PM_ATTACH_DEFAULT_TOTAL_ENTRIES 20000
#define PM_ATTACH_DEFAULT_ARCHIVE_BYTES (64 * 1024 * 1024)

typedef struct pm_attach_blocklist_t pm_attach_blocklist_t;

/* The first blocked attachment found. Both strings are owned by the hit;
 * release them with pm_attach_hit_clear. */
typedef struct {
    char *filename;  /* decoded and cleaned, UTF-8 ("bösartig.exe") */
    char *extension; /* as written in the name, without the dot ("EXE") */
} pm_attach_hit_t;

/* Builds a blocklist from N extensions without the dot ("exe", "js"),
 * compared case-insensitively, with the default limits. N may be 0
 * (nothing is blocked; the MIME shape limits still apply). Returns NULL
 * when an entry is NULL, empty, or contains '.', '/' or white space (the
 * policy validator, pm_check_extension, refuses those already). Caller
 * owns the result and must destroy it. */
pm_attach_blocklist_t *pm_attach_blocklist_new(char *const *exts, size_t n);

/* Destroys *self_p and sets it to NULL; accepts NULL, safe twice. */
void pm_attach_blocklist_destroy(pm_attach_blocklist_t **self_p);

/* The number of distinct extensions in the list. */
size_t pm_attach_blocklist_size(const pm_attach_blocklist_t *self);

/* Replaces the limits of SELF with *LIM, zero fields taking their
 * defaults; LIM NULL restores all defaults. Call it before SELF is shared
 * between threads. */
void pm_attach_blocklist_set_limits(pm_attach_blocklist_t *self,
                                    const pm_attach_limits_t *lim);

/* The limits in force for SELF, defaults filled in. */
pm_attach_limits_t
pm_attach_blocklist_limits(const pm_attach_blocklist_t *self);

/* Looks for a blocked attachment in the message MSG of LEN bytes (need not
 * be NUL-terminated). Returns:
 *    0  clean: no name anywhere carries a blocked extension and every limit
 *       held (a message without attachments passes);
 *    1  found: *hit is filled in (caller clears it with
 *       pm_attach_hit_clear); the scan stops at the first hit. A hit in
 *       what was seen wins over a limit met further on;
 *    2  the message exceeds a limit and could not be checked completely:
 *       *why (may be NULL) gets a new sentence naming the limit, which the
 *       caller frees ("more than 1000 MIME parts", "archive nesting deeper
 *       than 4 levels in part \"x.zip\""). An archive or TNEF part that
 *       its library recognises but cannot list to the end (corrupt,
 *       truncated, names encrypted) is a limit result too: names listed
 *       before the error are checked, the rest were never seen. Entries
 *       whose names are readable but whose data is encrypted are checked
 *       by name and not opened; that is not a limit result;
 *   -1  the message cannot be checked at all: GMime finds no message in
 *       it; *why as for 2.
 * The caller applies its fail-safe action on 2 and -1, never a silent
 * pass. GMime's warnings (malformed multipart, duplicated parameters...)
 * still leave a tree in which every name is checked, so they do not fail
 * the scan. Output parameters are only set for their own return value.
 * HIT may be NULL when the caller only needs the verdict. */
int pm_attach_scan(const pm_attach_blocklist_t *bl, const char *msg, size_t len,
                   pm_attach_hit_t *hit, char **why);

/* Frees the strings of a hit and zeroes it; safe on a zeroed hit. */
void pm_attach_hit_clear(pm_attach_hit_t *hit);

#endif
