/* fuzz_spamd_reply.c - spamd's answer to SYMBOLS, as pm_spamd_check reads
 * it off the socket: pm_spamd_parse_reply. A spamd (or anything listening
 * on its port) may send any bytes; the milter must never take them for a
 * score it did not send, nor crash on them. */
#include "pm_error.h"
#include "pm_fuzz.h"
#include "pm_spamd.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

int
pm_fuzz_one(const uint8_t *data, size_t size)
{
    pm_spamd_result_t r = {.n_symbols = 12345}; /* untouched on error */
    char *why = NULL;
    int rc = pm_spamd_parse_reply((const char *)data, size, &r, &why);
    if (rc != PM_OK) {
        PM_FUZZ_REQUIRE(rc == PM_EPROTO && why && *why);
        PM_FUZZ_REQUIRE(r.n_symbols == 12345 && !r.symbols);
        /* network text is made printable before it goes into *why */
        for (const char *p = why; *p; p++)
            PM_FUZZ_REQUIRE(isprint((unsigned char)*p));
        free(why);
        return 0;
    }
    PM_FUZZ_REQUIRE(!why);
    /* exact scores within the documented range, and the double agrees */
    PM_FUZZ_REQUIRE(r.score_hundredths > -INT64_C(100000000000000) &&
                    r.score_hundredths < INT64_C(100000000000000));
    PM_FUZZ_REQUIRE(r.score == (double)r.score_hundredths / 100.0);
    PM_FUZZ_REQUIRE(r.threshold == (double)r.threshold_hundredths / 100.0);
    /* symbols go into log lines and headers: non-empty, printable, short */
    PM_FUZZ_REQUIRE(r.n_symbols == 0 || r.symbols);
    for (size_t i = 0; i < r.n_symbols; i++) {
        size_t n = strlen(r.symbols[i]);
        PM_FUZZ_REQUIRE(n > 0 && n <= 120);
        for (size_t k = 0; k < n; k++)
            PM_FUZZ_REQUIRE(isprint((unsigned char)r.symbols[i][k]));
    }
    pm_spamd_result_clear(&r);
    return 0;
}
