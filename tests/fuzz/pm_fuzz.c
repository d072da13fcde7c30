/* pm_fuzz.c - shared checks of the fuzz targets (see pm_fuzz.h). */
#include "pm_fuzz.h"

#include "pm_diag.h"
#include "pm_error.h"
#include "pm_mem.h"
#include "pm_policy.h"
#include "pm_sigcheck.h"
#include "pm_value.h"
#include "pm_wire.h"

#include <sanitizer/allocator_interface.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void
pm_fuzz_fail(const char *file, int line, const char *what)
{
    fprintf(stderr, "%s:%d: property broken: %s\n", file, line, what);
    abort();
}

/* Heap held by the input being run, counted by the sanitizer allocator's
 * hooks. libFuzzer's -rss_limit_mb cannot say this: the process' RSS
 * under ASan grows with the number of runs, not with any one input (the
 * allocator keeps freed chunks: 514 MB RSS for 24 MB live heap after 8
 * million fuzz_wire runs). The input runs on libFuzzer's main thread; the
 * counters are that thread's. */
static _Thread_local int s_counting;
static _Thread_local size_t s_held, s_peak;

static void
s_on_malloc(const volatile void *ptr, size_t size)
{
    (void)ptr;
    if (!s_counting)
        return;
    s_held += size;
    if (s_held > s_peak)
        s_peak = s_held;
}

static void
s_on_free(const volatile void *ptr)
{
    if (!s_counting)
        return;
    /* called before the chunk is released, so its size is still known;
     * a block from before the input counts from zero */
    size_t size = __sanitizer_get_allocated_size(ptr);
    s_held = size < s_held ? s_held - size : 0;
}

static size_t
s_peak_limit(void)
{
    const char *env = getenv("PM_FUZZ_PEAK_MB");
    double mb = env ? strtod(env, NULL) : 0; /* "0.1" for a quick check */
    return (size_t)((mb > 0 ? mb : PM_FUZZ_PEAK_MB) * 1048576.0);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static size_t limit;
    if (!limit) {
        limit = s_peak_limit();
        if (!__sanitizer_install_malloc_and_free_hooks(s_on_malloc, s_on_free))
            pm_fuzz_fail(__FILE__, __LINE__, "allocator hooks not installed");
    }
    s_held = s_peak = 0;
    s_counting = 1;
    pm_fuzz_one(data, size);
    s_counting = 0;
    if (s_peak > limit) {
        char what[128];
        snprintf(what, sizeof what,
                 "one input of %zu bytes held %zu KiB of heap at once "
                 "(limit %zu KiB)",
                 size, s_peak >> 10, limit >> 10);
        pm_fuzz_fail(__FILE__, __LINE__, what);
    }
    return 0;
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
