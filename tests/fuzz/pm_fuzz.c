/* pm_fuzz.c - shared checks of the fuzz targets (see pm_fuzz.h). */
#include "pm_fuzz.h"

#include "pm_diag.h"
#include "pm_error.h"
#include "pm_mem.h"
#include "pm_policy.h"
#include "pm_sigcheck.h"
#include "pm_value.h"
#include "pm_wire.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void
pm_fuzz_fail(const char *file, int line, const char *what)
{
    fprintf(stderr, "%s:%d: property broken: %s\n", file, line, what);
    abort();
}

/* Stands in for common/pm_sigcheck.c (whose object the linker then leaves
 * out of libpm_policy.a): the real one writes each custom signature to a
 * scratch file and compiles it in a new libclamav engine, milliseconds
 * per input spent fuzzing libclamav, which ClamAV fuzzes itself
 * (OSS-Fuzz). Everything around it (names, hashes, sizes) stays ours. */
char *
pm_sigcheck(const char *name, const void *content, size_t len, unsigned *nsigs)
{
    (void)name;
    (void)content;
    if (len == 0)
        return pm_strdup("libclamav loads no signature from it");
    if (nsigs)
        *nsigs = 1;
    return NULL;
}

/* Parses TEXT as a policy document; NULL when refused. */
static Pm__Policy *
s_load(const char *text, size_t len, pm_diag_t *diag)
{
    pm_value_t *doc = pm_value_parse(text, len, 1, diag);
    /* No `file:` signature resolves against a directory that is not there;
     * absolute paths still reach pm_policy's own reader. */
    Pm__Policy *p =
        doc ? pm_policy_from_value(doc, "/nonexistent/pm-fuzz", diag) : NULL;
    pm_value_destroy(&doc);
    return p;
}

/* What privmta does with a policy file it accepted: validate it again
 * (the controller does, on arrival), push it through the wire gate (the
 * client packs it, the controller unpacks it with pm_wire), and render it
 * for `policy show`, which must read back to the same policy. */
static void
s_accepted(const Pm__Policy *p, pm_fuzz_format_t format)
{
    pm_diag_t *diag = pm_diag_new("fuzz");
    PM_FUZZ_REQUIRE(pm_policy_validate(p, diag) == 0);
    char *why = NULL;
    PM_FUZZ_REQUIRE(pm_wire_check_policy(p, &why) == PM_OK);

    char digest[65], again[65];
    pm_policy_digest(p, digest);
    size_t len = 0;
    uint8_t *buf = pm_wire_pack(&p->base, &len);
    Pm__Policy *unpacked = pm__policy__unpack(NULL, len, buf);
    PM_FUZZ_REQUIRE(unpacked != NULL);
    pm_policy_digest(unpacked, again);
    PM_FUZZ_REQUIRE(strcmp(digest, again) == 0);
    pm__policy__free_unpacked(unpacked, NULL);
    free(buf);

    char *text = format == PM_FUZZ_YAML ? pm_policy_to_yaml(p, "fuzz")
                                        : pm_policy_to_json(p, true);
    Pm__Policy *back = s_load(text, strlen(text), diag);
    if (!back)
        pm_diag_print(diag, stderr);
    PM_FUZZ_REQUIRE(back != NULL);
    pm_policy_digest(back, again);
    PM_FUZZ_REQUIRE(strcmp(digest, again) == 0);
    pm_policy_free(&back);
    free(text);
    pm_diag_destroy(&diag);
}

void
pm_fuzz_policy(const uint8_t *data, size_t size, pm_fuzz_format_t format)
{
    pm_diag_t *diag = pm_diag_new("fuzz");
    Pm__Policy *p = s_load((const char *)data, size, diag);
    /* pm_policy_load_file's promise: NULL exactly when a problem was
     * reported, so that a refusal always says why. */
    PM_FUZZ_REQUIRE((p == NULL) == (pm_diag_count(diag) > 0));
    if (p)
        s_accepted(p, format);
    pm_policy_free(&p);
    pm_diag_destroy(&diag);
}
