/* pm_text.c - escaping untrusted text for terminals and logs. */
#include "pm_text.h"
#include "pm_mem.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* The longest escape ("\u202e") plus a NUL. */
#define S_UNIT_MAX 8

size_t
pm_text_utf8_seq(const unsigned char *p, uint32_t *cp)
{
    size_t len;
    uint32_t c, min;
    if (p[0] >= 0xc2 && p[0] <= 0xdf)
        len = 2, c = p[0] & 0x1fu, min = 0x80;
    else if (p[0] >= 0xe0 && p[0] <= 0xef)
        len = 3, c = p[0] & 0x0fu, min = 0x800;
    else if (p[0] >= 0xf0 && p[0] <= 0xf4)
        len = 4, c = p[0] & 0x07u, min = 0x10000;
    else
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((p[i] & 0xc0) != 0x80)
            return 0;
        c = (c << 6) | (p[i] & 0x3fu);
    }
    if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
        return 0;
    if (cp)
        *cp = c;
    return len;
}

/* Code points above U+007F that control rather than print. */
static bool
s_invisible(uint32_t c)
{
    return (c >= 0x80 && c <= 0x9f) || c == 0x200e || c == 0x200f ||
           (c >= 0x202a && c <= 0x202e) || c == 0x2028 || c == 0x2029 ||
           (c >= 0x2066 && c <= 0x2069);
}

/* The output for the character at P: written to OUT (S_UNIT_MAX bytes, not
 * NUL-terminated); returns its length and sets *USED to the input bytes it
 * stands for. */
static size_t
s_unit(const unsigned char *p, char *out, size_t *used)
{
    static const char named[] = {'\n', 'n', '\r', 'r', '\t', 't', '\\', '\\'};
    *used = 1;
    for (size_t i = 0; i < sizeof named; i += 2)
        if (p[0] == (unsigned char)named[i]) {
            out[0] = '\\';
            out[1] = named[i + 1];
            return 2;
        }
    if (p[0] >= 0x20 && p[0] < 0x7f) {
        out[0] = (char)p[0];
        return 1;
    }
    uint32_t c = 0;
    size_t len = p[0] >= 0x80 ? pm_text_utf8_seq(p, &c) : 0;
    char buf[S_UNIT_MAX + 1];
    if (len == 0) {
        snprintf(buf, sizeof buf, "\\x%02x", p[0]);
    } else if (s_invisible(c)) {
        *used = len;
        snprintf(buf, sizeof buf, "\\u%04x", (unsigned)c);
    } else {
        *used = len;
        memcpy(out, p, len);
        return len;
    }
    size_t n = strlen(buf);
    memcpy(out, buf, n);
    return n;
}

/* Length of the whole escaped text of S. */
static size_t
s_escaped_len(const unsigned char *s)
{
    size_t total = 0, used = 0;
    char unit[S_UNIT_MAX];
    for (; *s; s += used)
        total += s_unit(s, unit, &used);
    return total;
}

char *
pm_text_escape(const char *s, size_t max)
{
    const unsigned char *p = (const unsigned char *)(s ? s : "");
    size_t full = s_escaped_len(p);
    bool cut = max && full > max;
    size_t more = strlen(PM_TEXT_MORE);
    /* the room left for text when the marker must fit too */
    size_t room = !cut ? full : max > more ? max - more : 0;
    char *out = pm_malloc((cut ? max : full) + 1);
    size_t len = 0, used = 0;
    char unit[S_UNIT_MAX];
    for (; *p; p += used) {
        size_t n = s_unit(p, unit, &used);
        if (len + n > room)
            break;
        memcpy(out + len, unit, n);
        len += n;
    }
    if (cut) {
        size_t n = max - len < more ? max - len : more;
        memcpy(out + len, PM_TEXT_MORE, n);
        len += n;
    }
    out[len] = '\0';
    return out;
}
