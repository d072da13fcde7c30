/* pm_fuzz.h - what the libFuzzer targets in tests/fuzz share.
 *
 * A target is one LLVMFuzzerTestOneInput over one parser that faces hostile
 * bytes. Besides the sanitizers' findings (memory errors, undefined
 * behaviour, leaks, timeouts, memory blow-ups), a target states properties
 * its parser promises in its header (outputs set only on success, a
 * policy that loads also renders and reads back to the same digest...);
 * PM_FUZZ_REQUIRE turns a broken promise into a crash, i.e. a finding with
 * a reproducer.
 */
#ifndef PM_FUZZ_H
#define PM_FUZZ_H

#include "privmta.pb-c.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Aborts with the condition's text and place when COND is false. */
#define PM_FUZZ_REQUIRE(cond)                                                  \
    ((cond) ? (void)0 : pm_fuzz_fail(__FILE__, __LINE__, #cond))

/* The target's parser run on one input: each fuzz_*.c defines it, and
 * pm_fuzz.c's LLVMFuzzerTestOneInput calls it with the heap it holds
 * measured (PM_FUZZ_PEAK_MB). Returns 0 (libFuzzer's convention). */
int pm_fuzz_one(const uint8_t *data, size_t size);

/* The most heap one input may hold at once, in MiB, unless the
 * environment's PM_FUZZ_PEAK_MB says otherwise: 64 MiB is a thousand times
 * the largest input (run.sh's -max_len), the hostile message or file that
 * would take a daemon's memory with it. More is a finding. */
#define PM_FUZZ_PEAK_MB 64

/* Prints "FILE:LINE: property broken: WHAT" and aborts (libFuzzer saves
 * the input as a crash artifact). */
_Noreturn void pm_fuzz_fail(const char *file, int line, const char *what);

/* The policy formats the policy targets read and render. */
typedef enum { PM_FUZZ_YAML, PM_FUZZ_JSON } pm_fuzz_format_t;

/* Reads DATA (SIZE bytes) as a policy file in FORMAT the way
 * pm_policy_load_file does, minus the file, and when it is accepted checks
 * what the rest of privmta relies on (see pm_fuzz.c). */
void pm_fuzz_policy(const uint8_t *data, size_t size, pm_fuzz_format_t format);

#endif
