/* fuzz_attach.c - a whole mail through pm_attach_scan (GMime's parser and
 * our walk over its tree: names, RFC 2231/2047 decoding, nesting limits),
 * with a fixed blocklist. Only the public signature is used, so the target
 * keeps working while the scanner grows (archives, TNEF, uuencode). */
#include "pm_attach.h"
#include "pm_fuzz.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

static pm_attach_blocklist_t *s_bl;
static const char *const s_exts[] = {"exe", "js", "bat", "scr"};

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    s_bl = pm_attach_blocklist_new((char *const *)s_exts,
                                   sizeof s_exts / sizeof s_exts[0]);
    PM_FUZZ_REQUIRE(s_bl != NULL);
    return 0;
}

static bool
s_blocked(const char *ext)
{
    for (size_t i = 0; i < sizeof s_exts / sizeof s_exts[0]; i++)
        if (strcasecmp(ext, s_exts[i]) == 0)
            return true;
    return false;
}

int
pm_fuzz_one(const uint8_t *data, size_t size)
{
    /* The message on its own heap block, not NUL-terminated: ASan sees
     * any read past LEN. */
    char *msg = malloc(size ? size : 1);
    memcpy(msg, data, size);
    pm_attach_hit_t hit = {0};
    char *why = NULL;
    int rc = pm_attach_scan(s_bl, msg, size, &hit, &why);
    free(msg);
    /* 0 clean, 1 hit, 2 a limit met, -1 not a message (pm_attach.h);
     * outputs only for their own result */
    PM_FUZZ_REQUIRE(rc == 0 || rc == 1 || rc == 2 || rc == -1);
    if (rc == 1) {
        PM_FUZZ_REQUIRE(hit.filename && hit.extension && !why);
        PM_FUZZ_REQUIRE(s_blocked(hit.extension));
    } else {
        PM_FUZZ_REQUIRE(!hit.filename && !hit.extension);
        PM_FUZZ_REQUIRE(rc == 0 ? !why : why && *why);
    }
    pm_attach_hit_clear(&hit);
    free(why);
    return 0;
}
