/* bench_store.c - how fast the policy store commits and reads.
 *
 * usage: bench_store [DIR] [COMMITS]
 *
 * Commits COMMITS (default 2000) revisions of a realistic policy, each a
 * durable LMDB transaction, then times 100000 reads of the head revision
 * (pm_store_get(0): snapshot, copy out, unpack, wire checks) and reading the
 * whole history. Without DIR a temporary directory under /tmp is used and
 * removed afterwards; a given DIR is kept (commits go on top of its head).
 * Not a test: it prints figures and fails only when the store does.
 */
#include "pm_error.h"
#include "pm_mem.h"
#include "pm_store.h"
#include "pm_wire.h"

#include <ftw.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define S_READS 100000
#define S_PAGE 100

static const char *s_exts[] = {"asd", "bat", "chm", "cmd", "com", "dll", "do",
                               "exe", "hlp", "hta", "js",  "jse", "lnk", "ocx",
                               "pif", "reg", "scr", "shb", "shm", "shs", "vbe",
                               "vbs", "vbx", "vxd", "wsf", "wsh", "xl"};
static const char *s_nets[] = {"127.0.0.0/8", "[::1]/128", "10.20.0.0/16",
                               "192.168.10.0/24"};
static const char *s_mirrors[] = {"https://database.clamav.net",
                                  "https://mirror.example.com/clamav"};
static Pm__DkimDomain s_dk[2] = {PM__DKIM_DOMAIN__INIT, PM__DKIM_DOMAIN__INIT};
static Pm__DkimDomain *s_dks[2] = {&s_dk[0], &s_dk[1]};
static Pm__NodeOverride s_ov = PM__NODE_OVERRIDE__INIT, *s_ovs[1] = {&s_ov};
static const char s_digest[] =
    "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

static double
s_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static void
s_policy_fill(Pm__Policy *p)
{
    p->n_inbound_blocked_extensions = sizeof s_exts / sizeof s_exts[0];
    p->inbound_blocked_extensions = (char **)s_exts;
    p->inbound_notify_admin = p->inbound_notify_recipient = 1;
    p->inbound_admin_address = "postmaster@example.com";
    p->inbound_reject_unlisted_sender = p->inbound_reject_unlisted_recipient =
        1;
    p->inbound_reject_sender_login_mismatch = 1;
    p->inbound_checks_helo_valid = p->inbound_checks_sender_domain = 1;
    p->inbound_checks_sender_fqdn = 1;
    p->outbound_sasl_auth = p->outbound_tls_auth_only = 1;
    p->n_outbound_mynetworks = sizeof s_nets / sizeof s_nets[0];
    p->outbound_mynetworks = (char **)s_nets;
    p->outbound_relay_host = "[smtp.relay.example.com]:587";
    p->antispam_enabled = p->antispam_dkim_verify = 1;
    p->antispam_level = "medium";
    p->antispam_tag_percent = 33;
    p->antispam_kill_percent = 75;
    p->antispam_subject_prefix = "[SPAM]";
    p->antispam_kill_action = "discard";
    p->antivirus_enabled = p->antivirus_block_encrypted_archives = 1;
    p->antivirus_notify_admin = p->antivirus_notify_recipient = 1;
    p->n_antivirus_mirrors = 2;
    p->antivirus_mirrors = (char **)s_mirrors;
    p->antivirus_update_frequency = 7200;
    s_dk[0].domain = "example.com", s_dk[0].selector = "s2024";
    s_dk[0].key = "dkim/example.com";
    s_dk[1].domain = "example.org", s_dk[1].selector = "mail";
    s_dk[1].key = "dkim/example.org";
    p->n_dkim_domains = 2, p->dkim_domains = s_dks;
    s_ov.node = "mx2", s_ov.key = "outbound.mynetworks";
    s_ov.value = "[127.0.0.0/8, 10.30.0.0/16]";
    p->n_overrides = 1, p->overrides = s_ovs;
}

static int
s_rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

static int
s_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static int
s_bench_commits(pm_store_t *st, const Pm__Policy *p, unsigned commits)
{
    pm_commit_t info = {.author = "bench/ctl",
                        .message = "bench_store commit",
                        .expect_rev = PM_REV_ANY,
                        .digest = s_digest};
    uint64_t rev = 0;
    double t0 = s_now_us();
    for (unsigned i = 0; i < commits; i++) {
        int rc = pm_store_commit(st, p, &info, &rev);
        if (rc != PM_OK) {
            fprintf(stderr, "commit: %s\n", pm_strerror(rc));
            return rc;
        }
    }
    double secs = (s_now_us() - t0) / 1e6;
    printf("commits:  %u durable commits in %.3f s = %.0f commits/s "
           "(%.3f ms each), head %" PRIu64 "\n",
           commits, secs, commits / secs, secs * 1e3 / commits, rev);
    return PM_OK;
}

static int
s_bench_head_reads(pm_store_t *st)
{
    double *lat = pm_malloc(S_READS * sizeof *lat);
    double t0 = s_now_us();
    int rc = PM_OK;
    for (unsigned i = 0; i < S_READS && rc == PM_OK; i++) {
        Pm__Revision *r = NULL;
        double a = s_now_us();
        rc = pm_store_get(st, 0, &r);
        lat[i] = s_now_us() - a;
        pm__revision__free_unpacked(r, NULL);
    }
    double total = s_now_us() - t0;
    if (rc == PM_OK) {
        qsort(lat, S_READS, sizeof *lat, s_cmp_double);
        printf("get(0):   %u head reads, p50 %.1f us, p99 %.1f us, max %.1f "
               "us, %.0f reads/s\n",
               S_READS, lat[S_READS / 2], lat[S_READS * 99 / 100],
               lat[S_READS - 1], S_READS / (total / 1e6));
    }
    free(lat);
    return rc;
}

/* Times pm_store_head alone: the snapshot cost without the decoding. */
static int
s_bench_head_number(pm_store_t *st)
{
    uint64_t head = 0;
    double t0 = s_now_us();
    for (unsigned i = 0; i < S_READS; i++) {
        int rc = pm_store_head(st, &head);
        if (rc != PM_OK)
            return rc;
    }
    printf("head():   %u reads, mean %.2f us\n", S_READS,
           (s_now_us() - t0) / S_READS);
    return PM_OK;
}

static int
s_bench_history(pm_store_t *st)
{
    uint64_t before = 0;
    size_t total = 0, n = 0;
    Pm__Revision **revs = NULL;
    double t0 = s_now_us(), first_page = 0;
    do {
        int rc = pm_store_history(st, before, S_PAGE, &revs, &n);
        if (rc != PM_OK)
            return rc;
        if (total == 0)
            first_page = s_now_us() - t0;
        if (n)
            before = revs[n - 1]->number;
        total += n;
        pm_store_history_free(&revs, n);
    } while (n == S_PAGE && before > 1);
    printf("history:  newest %d in %.2f ms; all %zu in pages of %d in "
           "%.2f ms\n",
           S_PAGE, first_page / 1e3, total, S_PAGE, (s_now_us() - t0) / 1e3);
    return PM_OK;
}

int
main(int argc, char **argv)
{
    char tmp[] = "/tmp/pm_bench.XXXXXX";
    const char *dir = argc > 1 ? argv[1] : NULL;
    unsigned commits = argc > 2 ? (unsigned)strtoul(argv[2], NULL, 10) : 2000;
    pm_store_t *st = NULL;
    Pm__Policy policy = PM__POLICY__INIT;
    int rc = PM_EIO;
    if (argc > 3 || commits == 0) {
        fprintf(stderr, "usage: bench_store [DIR] [COMMITS]\n");
        return 2;
    }
    if (!dir && !(dir = mkdtemp(tmp))) {
        perror("mkdtemp");
        return 1;
    }
    s_policy_fill(&policy);
    size_t len = 0;
    free(pm_wire_pack(&policy.base, &len));
    printf("store %s, policy %zu bytes packed\n", dir, len);
    rc = pm_store_open(dir, 0, 0, &st);
    if (rc == PM_OK)
        rc = s_bench_commits(st, &policy, commits);
    if (rc == PM_OK)
        rc = s_bench_head_reads(st);
    if (rc == PM_OK)
        rc = s_bench_head_number(st);
    if (rc == PM_OK)
        rc = s_bench_history(st);
    pm_store_close(&st);
    if (dir == tmp)
        nftw(tmp, s_rm_one, 8, FTW_DEPTH | FTW_PHYS);
    if (rc != PM_OK)
        fprintf(stderr, "bench_store: %s\n", pm_strerror(rc));
    return rc == PM_OK ? 0 : 1;
}
