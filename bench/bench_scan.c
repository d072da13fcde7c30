/* bench_scan.c - what each of privmta-milter's content checks costs per
 * message, without Postfix or the milter protocol: the attachment check
 * (GMime, the 27-entry preset) and the libclamav scan (one custom
 * signature, as bench_milter.sh loads it), each timed alone over the same
 * messages. Not a test: it prints figures.
 *
 * usage: bench_scan [--keep-heap] ROUNDS MESSAGE.eml...
 * ROUNDS 1 for what new mail costs: from the second round on, libclamav's
 * cache of clean files skips every part it has seen (measured: 1.7 ms a
 * message in one round, 0.4-0.6 ms in ten).
 * Prints, per check, CPU microseconds per message (the process's CPU
 * time, one thread) and messages per second of one core. --keep-heap
 * sets glibc's heap as privmta-milter does (pm_mem_keep_heap); without
 * it, glibc's defaults. */
#include "pm_attach.h"
#include "pm_error.h"
#include "pm_av.h"
#include "pm_file.h"
#include "pm_mem.h"
#include "pm_policy.h"

#include <locale.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define S_NDB                                                                  \
    "PrivmtaBench.Marker:0:*:707269766d74612d62656e63682d6d61726b6572\n"

typedef struct {
    char *data;
    size_t len;
} s_msg_t;

static double
s_cpu_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static void
s_print(const char *what, double us, size_t n)
{
    printf("%-36s %9.0f us/msg  %8.1f msgs/s of one core\n", what, us / n,
           n * 1e6 / us);
}

int
main(int argc, char **argv)
{
    setlocale(LC_CTYPE, "C.UTF-8"); /* as privmta-milter reads names */
    bool keep = argc > 1 && strcmp(argv[1], "--keep-heap") == 0;
    argc -= keep;
    argv += keep;
    if (argc < 3) {
        fprintf(stderr,
                "usage: bench_scan [--keep-heap] ROUNDS MESSAGE.eml...\n");
        return 2;
    }
    if (keep && !pm_mem_keep_heap()) {
        fprintf(stderr, "bench_scan: mallopt refused\n");
        return 1;
    }
    int rounds = atoi(argv[1]);
    size_t n = (size_t)(argc - 2);
    s_msg_t *msgs = pm_calloc(n, sizeof *msgs);
    for (size_t i = 0; i < n; i++) {
        char *why = NULL;
        if (pm_file_read(argv[i + 2], 64u << 20, 0, &msgs[i].data, &msgs[i].len,
                         &why) != PM_OK) {
            fprintf(stderr, "bench_scan: %s\n", why);
            return 1;
        }
    }
    size_t n_common = 0;
    while (pm_policy_common_extensions[n_common])
        n_common++;
    pm_attach_blocklist_t *bl = pm_attach_blocklist_new(
        (char *const *)pm_policy_common_extensions, n_common);
    pm_av_t *av = pm_av_new();
    pm_av_sig_t sig = {"bench.ndb", S_NDB, strlen(S_NDB)};
    char *why = NULL;
    if (!bl || !av || pm_av_load(av, NULL, &sig, 1, false, &why) != PM_OK) {
        fprintf(stderr, "bench_scan: set-up failed: %s\n", why ? why : "-");
        return 1;
    }
    size_t total = (size_t)rounds * n;
    double t0 = s_cpu_us();
    for (int r = 0; r < rounds; r++)
        for (size_t i = 0; i < n; i++) {
            pm_attach_hit_t hit = {0};
            if (pm_attach_scan(bl, msgs[i].data, msgs[i].len, &hit, NULL))
                fprintf(stderr, "bench_scan: message %zu not clean\n", i);
            pm_attach_hit_clear(&hit);
        }
    double t1 = s_cpu_us();
    s_print("attachments (GMime, 27 extensions)", t1 - t0, total);
    for (int r = 0; r < rounds; r++)
        for (size_t i = 0; i < n; i++)
            if (pm_av_scan(av, msgs[i].data, msgs[i].len, NULL, NULL))
                fprintf(stderr, "bench_scan: message %zu not clean\n", i);
    double t2 = s_cpu_us();
    s_print("antivirus (libclamav)", t2 - t1, total);
    pm_av_destroy(&av);
    pm_attach_blocklist_destroy(&bl);
    for (size_t i = 0; i < n; i++)
        free(msgs[i].data);
    free(msgs);
    return 0;
}
