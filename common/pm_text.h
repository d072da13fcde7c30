/* pm_text.h - untrusted text made safe to show to a person.
 *
 * Strings an agent (or any peer) sent end up in terminals and log files.
 * A raw newline forges a log line, ESC or a C1 control (CSI is U+009B)
 * starts a terminal control sequence, and bidirectional overrides reorder
 * what an operator reads. Every human-readable output of such a string
 * goes through pm_text_escape; machine output (JSON) has its own escaping.
 */
#ifndef PM_TEXT_H
#define PM_TEXT_H

#include <stddef.h>
#include <stdint.h>

/* The ellipsis pm_text_escape ends a capped string with. */
#define PM_TEXT_MORE "..."

/* Returns a copy of S (NULL reads as "") in which every character that is
 * not plain printable text becomes a visible escape:
 *   \n \r \t            as themselves, written as two characters;
 *   a backslash         as "\\", so that an escape is never ambiguous;
 *   other C0 bytes, DEL as "\xNN" (ESC is "\x1b");
 *   C1 controls U+0080-U+009F, the line and paragraph separators
 *   U+2028/U+2029 and the bidirectional marks and overrides (U+200E,
 *   U+200F, U+202A-U+202E, U+2066-U+2069) as "\uNNNN";
 *   bytes that are not well-formed UTF-8 (stray continuation bytes,
 *   overlong forms, surrogates, past U+10FFFF, cut short) as "\xNN" each.
 * Other UTF-8 text is copied unchanged. When MAX is not 0 the result is at
 * most MAX bytes: if the escaped text is longer, as many whole characters
 * or escapes as fit are kept and PM_TEXT_MORE is appended (never half an
 * escape or half a UTF-8 sequence). Never NULL; caller frees it. */
char *pm_text_escape(const char *s, size_t max);

/* Decodes one well-formed UTF-8 sequence of 2 to 4 bytes at P into *CP
 * (may be NULL). Returns its length, or 0 when P does not start one
 * (overlong, surrogate, past U+10FFFF; the string's NUL stops a sequence
 * cut short, as it is not a continuation byte). */
size_t pm_text_utf8_seq(const unsigned char *p, uint32_t *cp);

#endif
