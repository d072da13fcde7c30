/* fuzz_from.c - the From header fields of a mail, as the milter gets them
 * from libmilter, through the public pm_mmsg API: pm_mmsg_add_header,
 * pm_mmsg_from_domain (the domain DKIM signing picks) and
 * pm_mmsg_from_mentions (the forged-mail rule). Only that API is used,
 * so the target keeps working when the parsing behind it changes.
 *
 * Input: the values of one or more From fields, separated by NUL bytes
 * (libmilter hands over C strings; folded lines keep their LF or CRLF). */
#include "pm_fuzz.h"
#include "pm_milter.h"
#include "pm_milter_private.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

/* More From fields than a mail has; what matters is how each is read. */
#define S_MAX_FIELDS 16

int
pm_fuzz_one(const uint8_t *data, size_t size)
{
    pm_mmsg_t *msg = pm_mmsg_new(1u << 20);
    const char *p = (const char *)data, *end = p + size;
    for (int n = 0; p < end && n < S_MAX_FIELDS; n++) {
        const char *nul = memchr(p, '\0', (size_t)(end - p));
        size_t len = nul ? (size_t)(nul - p) : (size_t)(end - p);
        char *value = strndup(p, len);
        pm_mmsg_add_header(msg, "From", value);
        free(value);
        p += len + 1;
    }
    char *domain = pm_mmsg_from_domain(msg);
    if (domain) {
        /* "lowercased", not empty; and the domain signing picks is one the
         * forged-mail rule sees too, whatever parses the field */
        PM_FUZZ_REQUIRE(*domain);
        for (const char *c = domain; *c; c++)
            PM_FUZZ_REQUIRE(!isupper((unsigned char)*c));
        PM_FUZZ_REQUIRE(pm_mmsg_from_mentions(msg, domain));
    }
    (void)pm_mmsg_from_mentions(msg, "example.com");
    free(domain);
    pm_mmsg_destroy(&msg);
    return 0;
}
