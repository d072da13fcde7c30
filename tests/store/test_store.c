/* test_store.c - pm_store: revisions, history, nodes, readers in another
 * process, and acknowledged commits surviving SIGKILL. */
#include "pm_error.h"
#include "pm_mem.h"
#include "pm_store.h"
#include "pm_wire.h"
#include "testdir.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <inttypes.h>
#include <lmdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static char s_dir[64];

static void
s_setup(void)
{
    strcpy(s_dir, "/tmp/pm_store_test.XXXXXX");
    cr_assert_not_null(mkdtemp(s_dir));
}

static void
s_teardown(void)
{
    testdir_remove(s_dir);
}

/* No Criterion .timeout: with --jobs > 1 its watchdog leaks in the runner
 * (LeakSanitizer); ctest's TIMEOUT bounds the binary instead. */
TestSuite(store, .init = s_setup, .fini = s_teardown);

/* ---- Fixtures ---------------------------------------------------------- */

static const char *s_exts[] = {"asd", "bat", "chm", "cmd", "com", "dll", "do",
                               "exe", "hlp", "hta", "js",  "jse", "lnk", "ocx",
                               "pif", "reg", "scr", "shb", "shm", "shs", "vbe",
                               "vbs", "vbx", "vxd", "wsf", "wsh", "xl"};
static const char *s_nets[] = {"127.0.0.0/8", "[::1]/128", "10.1.0.0/16"};
static const char *s_mirrors[] = {"https://database.clamav.net"};

/* Packs a policy whose admin address names SEED, so content tells which
 * revision it was committed as. */
static uint8_t *
s_policy_pack(uint64_t seed, size_t *len)
{
    Pm__Policy p = PM__POLICY__INIT;
    Pm__DkimDomain dk = PM__DKIM_DOMAIN__INIT, *dks[] = {&dk};
    char addr[64];
    snprintf(addr, sizeof addr, "admin-%" PRIu64 "@example.com", seed);
    p.n_inbound_blocked_extensions = sizeof s_exts / sizeof s_exts[0];
    p.inbound_blocked_extensions = (char **)s_exts;
    p.n_outbound_mynetworks = 3;
    p.outbound_mynetworks = (char **)s_nets;
    p.n_antivirus_mirrors = 1;
    p.antivirus_mirrors = (char **)s_mirrors;
    p.inbound_admin_address = addr;
    p.inbound_notify_admin = 1;
    p.antispam_enabled = 1;
    p.antispam_level = "medium";
    p.antispam_tag_percent = 33;
    p.antispam_kill_percent = 75;
    p.antivirus_update_frequency = 7200;
    dk.domain = "example.com", dk.selector = "s1", dk.key = "dkim/ex";
    p.n_dkim_domains = 1, p.dkim_domains = dks;
    return pm_wire_pack(&p.base, len);
}

/* A heap policy (free with pm__policy__free_unpacked); aborts on failure
 * so it is usable in forked children too. */
static Pm__Policy *
s_policy_new(uint64_t seed)
{
    size_t len = 0;
    uint8_t *buf = s_policy_pack(seed, &len);
    Pm__Policy *p = pm__policy__unpack(NULL, len, buf);
    free(buf);
    if (!p)
        abort();
    return p;
}

static void
s_digest(uint64_t seed, char out[65])
{
    snprintf(out, 65, "%064" PRIx64, seed * 2654435761u);
}

static pm_store_t *
s_open(void)
{
    pm_store_t *st = NULL;
    cr_assert_eq(pm_store_open(s_dir, 0, 0, &st), PM_OK);
    cr_assert_not_null(st);
    return st;
}

/* Commits the policy for SEED; returns the rc, sets *rev on success. */
static int
s_commit(pm_store_t *st, uint64_t seed, int64_t expect, uint64_t *rev)
{
    char digest[65];
    s_digest(seed, digest);
    pm_commit_t info = {.author = "ctl/alice",
                        .message = "test commit",
                        .expect_rev = expect,
                        .digest = digest,
                        .time = 1700000000 + (int64_t)seed};
    Pm__Policy *p = s_policy_new(seed);
    int rc = pm_store_commit(st, p, &info, rev);
    pm__policy__free_unpacked(p, NULL);
    return rc;
}

/* Asserts revision NUMBER holds what s_commit(seed = NUMBER) wrote. */
static void
s_assert_rev(pm_store_t *st, uint64_t number)
{
    Pm__Revision *r = NULL;
    char digest[65];
    int rc = pm_store_get(st, number, &r);
    cr_assert_eq(rc, PM_OK, "get %" PRIu64 ": %s", number, pm_strerror(rc));
    cr_assert_eq(r->number, number);
    cr_assert_eq(r->parent, number - 1);
    cr_assert_str_eq(r->author, "ctl/alice");
    cr_assert_eq(r->time, 1700000000 + (int64_t)number);
    s_digest(number, digest);
    cr_assert_str_eq(r->digest, digest);
    cr_assert_not_null(r->policy);
    size_t want_len = 0, got_len = 0;
    uint8_t *want = s_policy_pack(number, &want_len);
    uint8_t *got = pm_wire_pack(&r->policy->base, &got_len);
    cr_assert_eq(got_len, want_len, "rev %" PRIu64 " policy differs", number);
    cr_assert(memcmp(got, want, got_len) == 0, "rev %" PRIu64, number);
    free(want);
    free(got);
    pm__revision__free_unpacked(r, NULL);
}

static uint64_t
s_head(pm_store_t *st)
{
    uint64_t head = 12345;
    cr_assert_eq(pm_store_head(st, &head), PM_OK);
    return head;
}

/* ---- Basics ------------------------------------------------------------ */

Test(store, open_close_modes)
{
    struct stat sb;
    char sub[128], data[160];
    snprintf(sub, sizeof sub, "%s/db", s_dir);
    pm_store_t *st = NULL;
    cr_assert_eq(pm_store_open(sub, 0, 0, &st), PM_OK);
    cr_assert_eq(stat(sub, &sb), 0);
    cr_assert_eq(sb.st_mode & 0777, 0700);
    snprintf(data, sizeof data, "%s/data.mdb", sub);
    cr_assert_eq(stat(data, &sb), 0);
    cr_assert_eq(sb.st_mode & 0077, 0, "data.mdb mode %o", sb.st_mode);
    pm_store_close(&st);
    cr_assert_null(st);
    pm_store_close(&st);
    pm_store_close(NULL);
}

Test(store, empty_store)
{
    pm_store_t *st = s_open();
    Pm__Revision *r = NULL, **revs = NULL;
    Pm__NodeStatus **nodes = NULL;
    size_t n = 99;
    cr_assert_eq(s_head(st), 0);
    cr_assert_eq(pm_store_get(st, 0, &r), PM_ENOTFOUND);
    cr_assert_eq(pm_store_get(st, 1, &r), PM_ENOTFOUND);
    cr_assert_null(r);
    cr_assert_eq(pm_store_history(st, 0, 10, &revs, &n), PM_OK);
    cr_assert_eq(n, 0);
    pm_store_history_free(&revs, n);
    cr_assert_null(revs);
    n = 99;
    cr_assert_eq(pm_store_node_list(st, &nodes, &n), PM_OK);
    cr_assert_eq(n, 0);
    pm_store_nodes_free(&nodes, n);
    pm_store_nodes_free(&nodes, n);
    pm_store_close(&st);
}

Test(store, commit_and_read_back)
{
    pm_store_t *st = s_open();
    for (uint64_t i = 1; i <= 30; i++) {
        uint64_t rev = 0;
        cr_assert_eq(s_commit(st, i, PM_REV_ANY, &rev), PM_OK);
        cr_assert_eq(rev, i);
        cr_assert_eq(s_head(st), i);
    }
    for (uint64_t i = 1; i <= 30; i++)
        s_assert_rev(st, i);
    Pm__Revision *r = NULL;
    cr_assert_eq(pm_store_get(st, 0, &r), PM_OK);
    cr_assert_eq(r->number, 30);
    cr_assert_str_eq(r->message, "test commit");
    pm__revision__free_unpacked(r, NULL);
    cr_assert_eq(pm_store_get(st, 31, &r), PM_ENOTFOUND);
    cr_assert_eq(pm_store_get(st, UINT64_MAX, &r), PM_ENOTFOUND);
    pm_store_close(&st);
}

Test(store, time_zero_means_now)
{
    pm_store_t *st = s_open();
    char digest[65];
    s_digest(1, digest);
    pm_commit_t info = {
        .author = "a", .expect_rev = PM_REV_ANY, .digest = digest};
    Pm__Policy *p = s_policy_new(1);
    uint64_t rev = 0;
    int64_t before = time(NULL);
    cr_assert_eq(pm_store_commit(st, p, &info, &rev), PM_OK);
    Pm__Revision *r = NULL;
    cr_assert_eq(pm_store_get(st, rev, &r), PM_OK);
    cr_assert(r->time >= before && r->time <= time(NULL) + 1);
    cr_assert_str_eq(r->message, "");
    pm__revision__free_unpacked(r, NULL);
    pm__policy__free_unpacked(p, NULL);
    pm_store_close(&st);
}

static void
s_assert_history(pm_store_t *st, uint64_t before, unsigned limit,
                 uint64_t first, size_t count)
{
    Pm__Revision **revs = NULL;
    size_t n = 0;
    cr_assert_eq(pm_store_history(st, before, limit, &revs, &n), PM_OK);
    cr_assert_eq(n, count, "before %" PRIu64 " limit %u: %zu revisions", before,
                 limit, n);
    for (size_t i = 0; i < n; i++) {
        cr_assert_eq(revs[i]->number, first - i);
        cr_assert_null(revs[i]->policy);
        cr_assert_str_eq(revs[i]->author, "ctl/alice");
    }
    pm_store_history_free(&revs, n);
    cr_assert_null(revs);
}

Test(store, history_paging)
{
    pm_store_t *st = s_open();
    uint64_t rev = 0;
    for (uint64_t i = 1; i <= 25; i++)
        cr_assert_eq(s_commit(st, i, PM_REV_ANY, &rev), PM_OK);
    s_assert_history(st, 0, 10, 25, 10);
    s_assert_history(st, 16, 10, 15, 10);
    s_assert_history(st, 6, 10, 5, 5);
    s_assert_history(st, 1, 10, 0, 0);
    s_assert_history(st, 100, 3, 25, 3);
    s_assert_history(st, 26, 1, 25, 1);
    s_assert_history(st, 25, 1, 24, 1);
    s_assert_history(st, 0, 0, 25, 25); /* 0: up to PM_WIRE_LIST_MAX */
    pm_store_close(&st);
}

Test(store, expect_rev_conflict_writes_nothing)
{
    pm_store_t *st = s_open();
    uint64_t rev = 77;
    cr_assert_eq(s_commit(st, 1, 5, &rev), PM_ECONFLICT);
    cr_assert_eq(rev, 77, "output set on failure");
    cr_assert_eq(s_commit(st, 1, 0, &rev), PM_OK);
    cr_assert_eq(s_commit(st, 2, 1, &rev), PM_OK);
    cr_assert_eq(s_commit(st, 3, 2, &rev), PM_OK);
    cr_assert_eq(rev, 3);
    rev = 77;
    cr_assert_eq(s_commit(st, 4, 2, &rev), PM_ECONFLICT);
    cr_assert_eq(s_commit(st, 4, 0, &rev), PM_ECONFLICT);
    cr_assert_eq(rev, 77);
    cr_assert_eq(s_head(st), 3);
    Pm__Revision *r = NULL;
    cr_assert_eq(pm_store_get(st, 4, &r), PM_ENOTFOUND);
    cr_assert_eq(s_commit(st, 4, 3, &rev), PM_OK);
    cr_assert_eq(rev, 4);
    s_assert_rev(st, 4);
    pm_store_close(&st);
}

Test(store, revisions_are_immutable)
{
    pm_store_t *st = s_open();
    uint64_t rev = 0;
    cr_assert_eq(s_commit(st, 1, PM_REV_ANY, &rev), PM_OK);
    Pm__Revision *r = NULL;
    cr_assert_eq(pm_store_get(st, 1, &r), PM_OK);
    size_t len1 = 0, len2 = 0;
    uint8_t *before = pm_wire_pack(&r->base, &len1);
    pm__revision__free_unpacked(r, NULL);

    /* A rollback to 1, a conflict and more commits leave 1 untouched. */
    char digest[65];
    s_digest(1, digest);
    pm_commit_t info = {.author = "ctl/bob",
                        .expect_rev = 1,
                        .rollback_of = 1,
                        .digest = digest,
                        .time = 5};
    Pm__Policy *p = s_policy_new(1);
    cr_assert_eq(pm_store_commit(st, p, &info, &rev), PM_OK);
    cr_assert_eq(rev, 2);
    info.rollback_of = 3; /* no revision 3 before this one */
    info.expect_rev = PM_REV_ANY;
    cr_assert_eq(pm_store_commit(st, p, &info, &rev), PM_EINVAL);
    pm__policy__free_unpacked(p, NULL);
    cr_assert_eq(s_commit(st, 9, 1, &rev), PM_ECONFLICT);
    cr_assert_eq(s_commit(st, 3, 2, &rev), PM_OK);

    cr_assert_eq(pm_store_get(st, 2, &r), PM_OK);
    cr_assert_eq(r->rollback_of, 1);
    cr_assert_str_eq(r->author, "ctl/bob");
    pm__revision__free_unpacked(r, NULL);
    cr_assert_eq(pm_store_get(st, 1, &r), PM_OK);
    uint8_t *after = pm_wire_pack(&r->base, &len2);
    pm__revision__free_unpacked(r, NULL);
    cr_assert_eq(len1, len2);
    cr_assert(memcmp(before, after, len1) == 0);
    free(before);
    free(after);
    pm_store_close(&st);
}

Test(store, reopen_persists)
{
    pm_store_t *st = s_open();
    uint64_t rev = 0;
    for (uint64_t i = 1; i <= 5; i++)
        cr_assert_eq(s_commit(st, i, PM_REV_ANY, &rev), PM_OK);
    pm_store_close(&st);
    st = s_open();
    cr_assert_eq(s_head(st), 5);
    for (uint64_t i = 1; i <= 5; i++)
        s_assert_rev(st, i);
    cr_assert_eq(s_commit(st, 6, 5, &rev), PM_OK);
    pm_store_close(&st);
    cr_assert_eq(pm_store_open(s_dir, PM_STORE_RDONLY, 0, &st), PM_OK);
    cr_assert_eq(s_head(st), 6);
    s_assert_rev(st, 6);
    pm_store_close(&st);
}

/* ---- Nodes ------------------------------------------------------------- */

static int
s_node_put(pm_store_t *st, const char *name, uint64_t applied)
{
    Pm__NodeStatus ns = PM__NODE_STATUS__INIT;
    Pm__ServiceStatus av = PM__SERVICE_STATUS__INIT;
    av.state = PM__SERVICE_STATUS__STATE__OK;
    av.detail = "daily.cvd 27000";
    ns.name = (char *)name;
    ns.address = "10.0.0.1";
    ns.applied_rev = applied;
    ns.antivirus = &av;
    return pm_store_node_put(st, &ns);
}

Test(store, nodes_sorted_and_replaced)
{
    pm_store_t *st = s_open();
    cr_assert_eq(s_node_put(st, "mx-b", 1), PM_OK);
    cr_assert_eq(s_node_put(st, "mx-c", 2), PM_OK);
    cr_assert_eq(s_node_put(st, "mx-a", 3), PM_OK);
    cr_assert_eq(s_node_put(st, "mx-b", 9), PM_OK);
    Pm__NodeStatus **nodes = NULL;
    size_t n = 0;
    cr_assert_eq(pm_store_node_list(st, &nodes, &n), PM_OK);
    cr_assert_eq(n, 3);
    cr_assert_str_eq(nodes[0]->name, "mx-a");
    cr_assert_str_eq(nodes[1]->name, "mx-b");
    cr_assert_str_eq(nodes[2]->name, "mx-c");
    cr_assert_eq(nodes[0]->applied_rev, 3);
    cr_assert_eq(nodes[1]->applied_rev, 9);
    cr_assert_eq(nodes[2]->antivirus->state, PM__SERVICE_STATUS__STATE__OK);
    cr_assert_str_eq(nodes[2]->antivirus->detail, "daily.cvd 27000");
    pm_store_nodes_free(&nodes, n);
    cr_assert_null(nodes);
    pm_store_close(&st);
}

/* ---- Invalid arguments ------------------------------------------------- */

Test(store, invalid_arguments)
{
    pm_store_t *st = s_open();
    Pm__Policy *p = s_policy_new(1);
    char digest[65];
    uint64_t rev = 0;
    s_digest(1, digest);
    pm_commit_t ok = {
        .author = "a", .expect_rev = PM_REV_ANY, .digest = digest};
    pm_commit_t bad = ok;
    bad.author = NULL;
    cr_assert_eq(pm_store_commit(st, p, &bad, &rev), PM_EINVAL);
    bad.author = "";
    cr_assert_eq(pm_store_commit(st, p, &bad, &rev), PM_EINVAL);
    bad = ok;
    bad.digest = NULL;
    cr_assert_eq(pm_store_commit(st, p, &bad, &rev), PM_EINVAL);
    bad.digest = "ABCDEF"; /* what we store must read back: refused */
    cr_assert_eq(pm_store_commit(st, p, &bad, &rev), PM_EINVAL);
    bad = ok;
    bad.expect_rev = -2;
    cr_assert_eq(pm_store_commit(st, p, &bad, &rev), PM_EINVAL);
    bad = ok;
    bad.message = "bad \xff utf-8";
    cr_assert_eq(pm_store_commit(st, p, &bad, &rev), PM_EINVAL);
    cr_assert_eq(pm_store_commit(st, NULL, &ok, &rev), PM_EINVAL);
    cr_assert_eq(pm_store_commit(st, p, NULL, &rev), PM_EINVAL);
    cr_assert_eq(pm_store_commit(st, p, &ok, NULL), PM_EINVAL);
    cr_assert_eq(pm_store_commit(NULL, p, &ok, &rev), PM_EINVAL);
    char *level = p->antispam_level;
    p->antispam_level = "\xc0\xaf"; /* a structurally bad policy */
    cr_assert_eq(pm_store_commit(st, p, &ok, &rev), PM_EINVAL);
    p->antispam_level = level;
    cr_assert_eq(rev, 0);
    cr_assert_eq(s_head(st), 0, "a refused commit wrote something");

    cr_assert_eq(s_node_put(st, "", 1), PM_EINVAL);
    char longname[600];
    memset(longname, 'n', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    cr_assert_eq(s_node_put(st, longname, 1), PM_EINVAL);
    cr_assert_eq(pm_store_node_put(st, NULL), PM_EINVAL);

    uint64_t head;
    Pm__Revision *r = NULL;
    cr_assert_eq(pm_store_head(NULL, &head), PM_EINVAL);
    cr_assert_eq(pm_store_head(st, NULL), PM_EINVAL);
    cr_assert_eq(pm_store_get(st, 0, NULL), PM_EINVAL);
    cr_assert_eq(pm_store_get(NULL, 0, &r), PM_EINVAL);
    pm__policy__free_unpacked(p, NULL);
    pm_store_close(&st);

    cr_assert_eq(pm_store_open(NULL, 0, 0, &st), PM_EINVAL);
    cr_assert_eq(pm_store_open(s_dir, 0x80, 0, &st), PM_EINVAL);
    cr_assert_eq(pm_store_open("/proc/nonexistent/x", 0, 0, &st), PM_EIO);
    cr_assert_null(st);
}

Test(store, read_only_refuses_writes)
{
    pm_store_t *st = s_open();
    uint64_t rev = 0;
    cr_assert_eq(s_commit(st, 1, PM_REV_ANY, &rev), PM_OK);
    pm_store_close(&st);
    cr_assert_eq(pm_store_open(s_dir, PM_STORE_RDONLY, 0, &st), PM_OK);
    cr_assert_eq(s_commit(st, 2, PM_REV_ANY, &rev), PM_EINVAL);
    cr_assert_eq(s_node_put(st, "mx1", 1), PM_EINVAL);
    cr_assert_eq(pm_store_node_del(st, "mx1"), PM_EINVAL);
    cr_assert_eq(s_head(st), 1);
    pm_store_close(&st);
}

/* ---- Full map, growth, retention --------------------------------------- */

/* Fills BUF with bytes drawn from SEED, so contents tell revisions apart. */
static void
s_fill(uint8_t *buf, size_t len, uint64_t seed)
{
    uint64_t x = seed * 0x9E3779B97F4A7C15u + 1;
    for (size_t i = 0; i < len; i++) {
        x = x * 6364136223846793005u + 1442695040888963407u;
        buf[i] = (uint8_t)(x >> 56);
    }
}

/* The revision s_commit(seed = NUMBER) would write, plus N custom
 * signatures of LEN bytes drawn from NUMBER (everything on the heap, as
 * pm__revision__free_unpacked expects). Aborts on allocation failure. */
static Pm__Revision *
s_big_rev(uint64_t number, size_t n, size_t len)
{
    Pm__Revision *r = malloc(sizeof *r);
    char digest[65], name[32];
    if (!r)
        abort();
    pm__revision__init(r);
    s_digest(number, digest);
    r->number = number;
    r->parent = number - 1;
    r->author = strdup("ctl/alice");
    r->message = strdup("test commit");
    r->digest = strdup(digest);
    r->time = 1700000000 + (int64_t)number;
    r->policy = s_policy_new(number);
    r->policy->antivirus_custom_signatures = calloc(n, sizeof(void *));
    r->policy->n_antivirus_custom_signatures = n;
    for (size_t i = 0; i < n; i++) {
        Pm__CustomSignature *sig = malloc(sizeof *sig);
        if (!sig)
            abort();
        pm__custom_signature__init(sig);
        snprintf(name, sizeof name, "big%zu.ndb", i);
        sig->name = strdup(name);
        sig->sha256 = strdup(digest);
        if (!(sig->content.data = malloc(len)))
            abort();
        sig->content.len = len;
        s_fill(sig->content.data, len, number * 64 + i);
        r->policy->antivirus_custom_signatures[i] = sig;
    }
    return r;
}

/* Asserts that revision NUMBER (0: the head, which must be WANT) holds what
 * s_big_rev(WANT, N, LEN) built. */
static void
s_assert_big(pm_store_t *st, uint64_t number, uint64_t want, size_t n,
             size_t len)
{
    Pm__Revision *r = NULL;
    int rc = pm_store_get(st, number, &r);
    cr_assert_eq(rc, PM_OK, "get %" PRIu64 ": %s", number, pm_strerror(rc));
    cr_assert_eq(r->number, want);
    cr_assert_eq(r->policy->n_antivirus_custom_signatures, n);
    uint8_t *buf = malloc(len);
    cr_assert_not_null(buf);
    for (size_t i = 0; i < n; i++) {
        ProtobufCBinaryData *c =
            &r->policy->antivirus_custom_signatures[i]->content;
        s_fill(buf, len, want * 64 + i);
        cr_assert_eq(c->len, len);
        cr_assert(memcmp(c->data, buf, len) == 0, "rev %" PRIu64 " sig %zu",
                  want, i);
    }
    free(buf);
    pm__revision__free_unpacked(r, NULL);
}

/* Sets *n to the number of stored revisions and *numbers (up to CAP) to
 * theirs, newest first. */
static size_t
s_stored(pm_store_t *st, uint64_t *numbers, size_t cap)
{
    Pm__Revision **revs = NULL;
    size_t n = 0;
    cr_assert_eq(pm_store_history(st, 0, 0, &revs, &n), PM_OK);
    for (size_t i = 0; i < n && i < cap; i++)
        numbers[i] = revs[i]->number;
    pm_store_history_free(&revs, n);
    return n;
}

/* Commits the policy for SEED with a custom signature of LEN bytes. */
static int
s_commit_big(pm_store_t *st, uint64_t seed, size_t len, uint64_t *rev)
{
    Pm__Revision *r = s_big_rev(seed, 1, len);
    pm_commit_t info = {.author = r->author,
                        .message = r->message,
                        .expect_rev = PM_REV_ANY,
                        .digest = r->digest,
                        .time = r->time};
    int rc = pm_store_commit(st, r->policy, &info, rev);
    pm__revision__free_unpacked(r, NULL);
    return rc;
}

Test(store, map_full_is_efull_and_store_survives)
{
    pm_store_t *st = NULL;
    cr_assert_eq(pm_store_open(s_dir, 0, 256 * 1024, &st), PM_OK);
    cr_assert_eq(pm_store_set_map_max(st, 0), PM_OK); /* no growth */
    uint64_t rev = 0, ok = 0;
    int rc = PM_OK;
    for (uint64_t i = 1; i <= 100 && rc == PM_OK; i++) {
        rc = s_commit_big(st, i, 40000, &rev);
        ok += rc == PM_OK;
    }
    cr_assert_eq(rc, PM_EFULL, "rc %d after %" PRIu64 " commits", rc, ok);
    cr_assert(strstr(pm_strerror(rc), "full"), "%s", pm_strerror(rc));
    cr_assert_gt(ok, 0);
    cr_assert_eq(rev, ok, "output set on failure");
    /* The failed commit changed nothing; the store still reads. */
    cr_assert_eq(s_head(st), ok);
    uint64_t numbers[128];
    cr_assert_eq(s_stored(st, numbers, 128), ok);
    s_assert_big(st, 0, ok, 1, 40000);
    s_assert_big(st, 1, 1, 1, 40000);
    Pm__Revision *r = NULL;
    cr_assert_eq(pm_store_get(st, ok + 1, &r), PM_ENOTFOUND);
    pm_store_close(&st);
    cr_assert_eq(pm_store_open(s_dir, 0, 256 * 1024, &st), PM_OK);
    cr_assert_eq(s_head(st), ok);
    s_assert_big(st, 0, ok, 1, 40000);
    /* Raising the ceiling is one way out. */
    cr_assert_eq(pm_store_set_map_max(st, 4u << 20), PM_OK);
    cr_assert_eq(s_commit_big(st, ok + 1, 40000, &rev), PM_OK);
    cr_assert_eq(rev, ok + 1);
    s_assert_big(st, 0, ok + 1, 1, 40000);
    pm_store_close(&st);
}

Test(store, map_grows_up_to_its_ceiling)
{
    pm_store_t *st = NULL;
    cr_assert_eq(pm_store_open(s_dir, 0, 256 * 1024, &st), PM_OK);
    cr_assert_eq(pm_store_set_map_max(st, 2u << 20), PM_OK);
    uint64_t rev = 0, ok = 0;
    int rc = PM_OK;
    for (uint64_t i = 1; i <= 200 && rc == PM_OK; i++) {
        rc = s_commit_big(st, i, 40000, &rev);
        ok += rc == PM_OK;
    }
    cr_assert_eq(rc, PM_EFULL, "rc %d after %" PRIu64 " commits", rc, ok);
    cr_assert_gt(ok * 40000, 1u << 20, "only %" PRIu64 " commits", ok);
    cr_assert_lt(ok * 40000, 2u << 20);
    cr_assert_eq(s_head(st), ok);
    for (uint64_t i = 1; i <= ok; i++)
        s_assert_big(st, i, i, 1, 40000);
    pm_store_close(&st);
}

/* Asserts the stored revisions are exactly WANT (newest first). */
static void
s_assert_stored(pm_store_t *st, const uint64_t *want, size_t n)
{
    uint64_t got[64];
    size_t count = s_stored(st, got, 64);
    cr_assert_eq(count, n, "%zu revisions stored, want %zu", count, n);
    for (size_t i = 0; i < n; i++)
        cr_assert_eq(got[i], want[i], "[%zu] is %" PRIu64 ", want %" PRIu64, i,
                     got[i], want[i]);
}

Test(store, retention_keeps_newest_and_pinned)
{
    pm_store_t *st = s_open();
    uint64_t rev = 0;
    Pm__Revision *r = NULL;
    cr_assert_eq(pm_store_set_retention(st, 10), PM_OK);
    cr_assert_eq(s_node_put(st, "mx-a", 3), PM_OK);
    cr_assert_eq(s_node_put(st, "mx-b", 7), PM_OK);
    cr_assert_eq(s_node_put(st, "mx-c", 0), PM_OK); /* applied nothing */
    cr_assert_eq(s_node_put(st, "mx-d", 24), PM_OK);
    for (uint64_t i = 1; i <= 25; i++) {
        cr_assert_eq(s_commit(st, i, PM_REV_ANY, &rev), PM_OK);
        cr_assert_eq(rev, i);
    }
    cr_assert_eq(s_head(st), 25);
    for (uint64_t i = 16; i <= 25; i++)
        s_assert_rev(st, i);
    s_assert_rev(st, 3);
    s_assert_rev(st, 7);
    uint64_t gone[] = {1, 2, 4, 5, 6, 8, 14, 15};
    for (size_t i = 0; i < sizeof gone / sizeof gone[0]; i++)
        cr_assert_eq(pm_store_get(st, gone[i], &r), PM_ENOTFOUND, "%" PRIu64,
                     gone[i]);
    cr_assert_null(r);
    uint64_t want[] = {25, 24, 23, 22, 21, 20, 19, 18, 17, 16, 7, 3};
    s_assert_stored(st, want, 12); /* keep + pinned, no more */
    /* Paging goes over the gaps. */
    s_assert_history(st, 16, 1, 7, 1);
    s_assert_history(st, 7, 5, 3, 1);
    /* ...and so does the next stored one, in one look-up */
    uint64_t next[][2] = {{0, 3}, {1, 3}, {3, 3}, {4, 7}, {8, 16}, {25, 25}};
    for (size_t i = 0; i < sizeof next / sizeof next[0]; i++) {
        cr_assert_eq(pm_store_next(st, next[i][0], &r), PM_OK);
        cr_assert_eq(r->number, next[i][1], "after %" PRIu64 ": %" PRIu64,
                     next[i][0], r->number);
        cr_assert_not_null(r->policy);
        pm__revision__free_unpacked(r, NULL);
        r = NULL;
    }
    cr_assert_eq(pm_store_next(st, 26, &r), PM_ENOTFOUND);
    cr_assert_null(r);

    /* mx-a moves on: 3 is no longer pinned, the next commit drops it. */
    cr_assert_eq(s_node_put(st, "mx-a", 25), PM_OK);
    cr_assert_eq(s_commit(st, 26, 25, &rev), PM_OK);
    cr_assert_eq(pm_store_get(st, 3, &r), PM_ENOTFOUND);
    cr_assert_eq(pm_store_get(st, 16, &r), PM_ENOTFOUND);
    uint64_t want2[] = {26, 25, 24, 23, 22, 21, 20, 19, 18, 17, 7};
    s_assert_stored(st, want2, 11);

    /* Retention 0 keeps everything again; a smaller one prunes at once. */
    cr_assert_eq(pm_store_set_retention(st, 0), PM_OK);
    cr_assert_eq(s_commit(st, 27, 26, &rev), PM_OK);
    s_assert_rev(st, 17);
    cr_assert_eq(pm_store_set_retention(st, 2), PM_OK);
    cr_assert_eq(s_commit(st, 28, 27, &rev), PM_OK);
    uint64_t want3[] = {28, 27, 25, 24, 7};
    s_assert_stored(st, want3, 5);
    s_assert_rev(st, 28);
    pm_store_close(&st);
}

/* A node withdrawn for good: its status goes, and with it the pin on the
 * revision it ran; removing it twice says it is not there. */
Test(store, node_del_unpins_its_revision)
{
    pm_store_t *st = s_open();
    uint64_t rev = 0;
    Pm__Revision *r = NULL;
    cr_assert_eq(pm_store_set_retention(st, 2), PM_OK);
    cr_assert_eq(s_node_put(st, "mx-a", 1), PM_OK);
    cr_assert_eq(s_node_put(st, "mx-b", 4), PM_OK);
    for (uint64_t i = 1; i <= 4; i++)
        cr_assert_eq(s_commit(st, i, PM_REV_ANY, &rev), PM_OK);
    s_assert_rev(st, 1); /* pinned by mx-a */
    cr_assert_eq(pm_store_node_del(st, "mx-a"), PM_OK);
    cr_assert_eq(pm_store_node_del(st, "mx-a"), PM_ENOTFOUND);
    cr_assert_eq(pm_store_node_del(st, ""), PM_EINVAL);
    Pm__NodeStatus **nodes = NULL;
    size_t n = 0;
    cr_assert_eq(pm_store_node_list(st, &nodes, &n), PM_OK);
    cr_assert_eq(n, 1);
    cr_assert_str_eq(nodes[0]->name, "mx-b");
    pm_store_nodes_free(&nodes, n);
    cr_assert_eq(s_commit(st, 5, 4, &rev), PM_OK);
    cr_assert_eq(pm_store_get(st, 1, &r), PM_ENOTFOUND, "no longer pinned");
    uint64_t want[] = {5, 4};
    s_assert_stored(st, want, 2);
    pm_store_close(&st);
}

Test(store, lower_retention_makes_room_when_full)
{
    pm_store_t *st = NULL;
    cr_assert_eq(pm_store_open(s_dir, 0, 512 * 1024, &st), PM_OK);
    cr_assert_eq(pm_store_set_map_max(st, 0), PM_OK);
    uint64_t rev = 0, ok = 0;
    int rc = PM_OK;
    for (uint64_t i = 1; i <= 100 && rc == PM_OK; i++) {
        rc = s_commit_big(st, i, 40000, &rev);
        ok += rc == PM_OK;
    }
    cr_assert_eq(rc, PM_EFULL, "rc %d after %" PRIu64 " commits", rc, ok);
    cr_assert_eq(pm_store_set_retention(st, 2), PM_OK);
    for (uint64_t i = ok + 1; i <= ok + 50; i++) {
        rc = s_commit_big(st, i, 40000, &rev);
        cr_assert_eq(rc, PM_OK, "commit %" PRIu64 ": %s", i, pm_strerror(rc));
        cr_assert_eq(rev, i);
        uint64_t want[] = {i, i - 1};
        s_assert_stored(st, want, 2);
    }
    s_assert_big(st, 0, ok + 50, 1, 40000);
    s_assert_big(st, ok + 49, ok + 49, 1, 40000);
    pm_store_close(&st);
}

/* ---- Mirrors ------------------------------------------------------------ */

/* Mirrors s_big_rev(NUMBER, N, LEN) and checks it became the head. */
static void
s_mirror_big(pm_store_t *st, uint64_t number, size_t n, size_t len)
{
    Pm__Revision *r = s_big_rev(number, n, len);
    int rc = pm_store_mirror(st, r);
    pm__revision__free_unpacked(r, NULL);
    cr_assert_eq(rc, PM_OK, "mirror %" PRIu64 ": %s", number, pm_strerror(rc));
    cr_assert_eq(s_head(st), number);
}

Test(store, mirror_keeps_newest_sixteen)
{
    pm_store_t *st = s_open();
    Pm__Revision *r = NULL;
    for (uint64_t i = 1; i <= 40; i++)
        s_mirror_big(st, i, 1, 100);
    uint64_t want[16];
    for (size_t i = 0; i < 16; i++)
        want[i] = 40 - i;
    s_assert_stored(st, want, 16);
    cr_assert_eq(pm_store_get(st, 24, &r), PM_ENOTFOUND);
    s_assert_big(st, 0, 40, 1, 100);
    s_assert_big(st, 25, 25, 1, 100);
    /* An older number (a controller that started over) stays the head. */
    s_mirror_big(st, 3, 1, 100);
    s_assert_big(st, 0, 3, 1, 100);
    cr_assert_eq(s_stored(st, want, 16), 16);
    pm_store_close(&st);
}

Test(store, mirror_thirty_4mib_revisions_in_64mib_map)
{
    pm_store_t *st = NULL;
    cr_assert_eq(pm_store_open(s_dir, 0, 64u << 20, &st), PM_OK);
    for (uint64_t i = 1; i <= 30; i++) {
        s_mirror_big(st, i, 1, 4u << 20);
        s_assert_big(st, 0, i, 1, 4u << 20);
    }
    uint64_t want[16];
    for (size_t i = 0; i < 16; i++)
        want[i] = 30 - i;
    s_assert_stored(st, want, 16);
    s_assert_big(st, 15, 15, 1, 4u << 20);
    pm_store_close(&st);
    cr_assert_eq(pm_store_open(s_dir, PM_STORE_RDONLY, 0, &st), PM_OK);
    s_assert_big(st, 0, 30, 1, 4u << 20);
    pm_store_close(&st);
}

/* A full file system under the map (LMDB reports the short write as EIO)
 * is "full" too: the mirror keeps fewer copies instead of failing every
 * apply. Needs root to mount a small tmpfs; skipped otherwise. */
Test(store, mirror_on_a_full_disk_keeps_fewer_copies)
{
    char *mnt = pm_asprintf("%s/fs", s_dir);
    cr_assert_eq(mkdir(mnt, 0700), 0);
    char *cmd =
        pm_asprintf("mount -t tmpfs -o size=16m tmpfs %s 2>/dev/null", mnt);
    if (geteuid() != 0 || system(cmd) != 0) {
        free(cmd);
        free(mnt);
        s_teardown(); /* cr_skip_test skips .fini */
        cr_skip_test("cannot mount a tmpfs here (needs root)");
    }
    pm_store_t *st = NULL;
    cr_assert_eq(pm_store_open(mnt, 0, 64u << 20, &st), PM_OK);
    uint64_t numbers[16];
    for (uint64_t i = 1; i <= 20; i++) {
        s_mirror_big(st, i, 1, 1500000); /* 16 copies would need 24 MB */
        s_assert_big(st, 0, i, 1, 1500000);
    }
    size_t n = s_stored(st, numbers, 16);
    cr_expect(n >= 1 && n < 16, "%zu copies kept", n);
    cr_expect_eq(numbers[0], 20);
    pm_store_close(&st);
    char *umount = pm_asprintf("umount %s", mnt);
    cr_expect_eq(system(umount), 0);
    free(umount);
    free(cmd);
    free(mnt);
}

Test(store, mirror_keeps_fewer_copies_when_full)
{
    pm_store_t *st = NULL;
    uint64_t numbers[16];
    cr_assert_eq(pm_store_open(s_dir, 0, 64u << 20, &st), PM_OK);
    cr_assert_eq(pm_store_set_map_max(st, 0), PM_OK); /* stays 64 MiB */
    for (uint64_t i = 1; i <= 30; i++) {
        s_mirror_big(st, i, 1, 4u << 20);
        s_assert_big(st, 0, i, 1, 4u << 20);
        size_t n = s_stored(st, numbers, 16);
        cr_assert(n >= 1 && n <= 16, "%zu stored", n);
        cr_assert_eq(numbers[0], i);
    }
    size_t n = s_stored(st, numbers, 16);
    cr_assert_lt(n, 16, "16 copies of 4 MiB cannot fit in 64 MiB");
    for (size_t i = 0; i < n; i++)
        s_assert_big(st, numbers[i], numbers[i], 1, 4u << 20);
    /* 63 MiB does not fit beside the head it replaces: PM_EFULL, and the
     * head stays. */
    Pm__Revision *r = s_big_rev(31, 8, (8u << 20) - (100u << 10));
    cr_assert_eq(pm_store_mirror(st, r), PM_EFULL);
    pm__revision__free_unpacked(r, NULL);
    cr_assert_eq(s_head(st), 30);
    s_assert_big(st, 0, 30, 1, 4u << 20);
    pm_store_close(&st);
}

Test(store, mirror_revision_near_message_max)
{
    pm_store_t *st = NULL;
    size_t len = (15u << 20) / 2; /* 8 x 7.5 MiB = 60 MiB */
    cr_assert_eq(pm_store_open(s_dir, 0, 64u << 20, &st), PM_OK);
    s_mirror_big(st, 1, 1, 4u << 20);
    s_mirror_big(st, 2, 8, len);
    s_assert_big(st, 0, 2, 8, len);
    s_mirror_big(st, 3, 8, len);
    s_assert_big(st, 0, 3, 8, len);
    s_assert_big(st, 1, 1, 1, 4u << 20);
    pm_store_close(&st);
}

Test(store, settings_refused_when_read_only)
{
    pm_store_t *st = s_open();
    pm_store_close(&st);
    cr_assert_eq(pm_store_set_retention(NULL, 1), PM_EINVAL);
    cr_assert_eq(pm_store_set_map_max(NULL, 1), PM_EINVAL);
    cr_assert_eq(pm_store_open(s_dir, PM_STORE_RDONLY, 0, &st), PM_OK);
    cr_assert_eq(pm_store_set_retention(st, 1), PM_EINVAL);
    cr_assert_eq(pm_store_set_map_max(st, 1), PM_EINVAL);
    pm_store_close(&st);
}

/* ---- Other processes --------------------------------------------------- */

/* Waits for child PID and asserts it exited with status 0. */
static void
s_reap_ok(pid_t pid)
{
    int status = 0;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child status %#x",
              status);
}

/* In a forked child: open the store for writing and commit REVS revisions,
 * sleeping a little between them. Never returns. */
static void
s_child_commit(int count, useconds_t pause)
{
    pm_store_t *st = NULL;
    if (pm_store_open(s_dir, 0, 0, &st) != PM_OK)
        _exit(2);
    for (int i = 0; i < count; i++) {
        uint64_t head = 0, rev = 0;
        if (pm_store_head(st, &head) != PM_OK)
            _exit(3);
        if (s_commit(st, head + 1, (int64_t)head, &rev) != PM_OK)
            _exit(4);
        usleep(pause);
    }
    pm_store_close(&st);
    _exit(0);
}

Test(store, reader_process_sees_writer_commits)
{
    pm_store_t *st = s_open(); /* create it, then leave it to the child */
    pm_store_close(&st);
    pid_t pid = fork();
    cr_assert_neq(pid, -1);
    if (pid == 0)
        s_child_commit(40, 2000);
    cr_assert_eq(pm_store_open(s_dir, PM_STORE_RDONLY, 0, &st), PM_OK);
    uint64_t seen = 0, head = 0;
    for (int spins = 0; seen < 40 && spins < 20000; spins++) {
        head = s_head(st);
        cr_assert_geq(head, seen, "head went back");
        if (head > seen) {
            s_assert_rev(st, head); /* readable while the writer works */
            seen = head;
        }
        usleep(500);
    }
    s_reap_ok(pid);
    cr_assert_eq(seen, 40);
    for (uint64_t i = 1; i <= 40; i++)
        s_assert_rev(st, i);
    s_assert_history(st, 0, 100, 40, 40);
    pm_store_close(&st);
}

Test(store, read_only_before_any_writer)
{
    char sub[128];
    pm_store_t *st = NULL;
    snprintf(sub, sizeof sub, "%s/none", s_dir);
    cr_assert_eq(pm_store_open(sub, PM_STORE_RDONLY, 0, &st), PM_ENOTFOUND);
    cr_assert_eq(mkdir(sub, 0700), 0);
    cr_assert_eq(pm_store_open(sub, PM_STORE_RDONLY, 0, &st), PM_ENOTFOUND);
    cr_assert_null(st);
}

Test(store, read_only_env_without_databases)
{
    /* An environment a writer has created but not yet populated. */
    MDB_env *env = NULL;
    cr_assert_eq(mdb_env_create(&env), 0);
    cr_assert_eq(mdb_env_open(env, s_dir, 0, 0600), 0);
    mdb_env_close(env);
    int go[2];
    cr_assert_eq(pipe(go), 0);
    pid_t pid = fork();
    cr_assert_neq(pid, -1);
    if (pid == 0) {
        char c;
        close(go[1]);
        if (read(go[0], &c, 1) != 1)
            _exit(5);
        s_child_commit(1, 0);
    }
    close(go[0]);

    pm_store_t *st = NULL;
    Pm__Revision *r = NULL, **revs = NULL;
    Pm__NodeStatus **nodes = NULL;
    size_t n = 9;
    cr_assert_eq(pm_store_open(s_dir, PM_STORE_RDONLY, 0, &st), PM_OK);
    cr_assert_eq(s_head(st), 0);
    cr_assert_eq(pm_store_get(st, 0, &r), PM_ENOTFOUND);
    cr_assert_eq(pm_store_history(st, 0, 5, &revs, &n), PM_OK);
    cr_assert_eq(n, 0);
    pm_store_history_free(&revs, n);
    cr_assert_eq(pm_store_node_list(st, &nodes, &n), PM_OK);
    cr_assert_eq(n, 0);
    pm_store_nodes_free(&nodes, n);

    cr_assert_eq(write(go[1], "x", 1), 1);
    close(go[1]);
    s_reap_ok(pid);
    cr_assert_eq(s_head(st), 1, "reader did not pick up the new databases");
    s_assert_rev(st, 1);
    pm_store_close(&st);
}

/* ---- Crash safety ------------------------------------------------------ */

/* Child: commit forever, writing each acknowledged revision to FD. */
static void
s_crash_child(int fd)
{
    pm_store_t *st = NULL;
    if (pm_store_open(s_dir, 0, 0, &st) != PM_OK)
        _exit(2);
    for (;;) {
        uint64_t head = 0, rev = 0;
        if (pm_store_head(st, &head) != PM_OK)
            _exit(3);
        if (s_commit(st, head + 1, (int64_t)head, &rev) != PM_OK)
            _exit(4);
        if (write(fd, &rev, sizeof rev) != sizeof rev)
            _exit(5);
    }
}

/* Forks a committing child, kills it after DELAY_US; returns the highest
 * revision it acknowledged (0 if none). */
static uint64_t
s_crash_round(useconds_t delay_us)
{
    int fds[2];
    uint64_t rev = 0, last = 0;
    cr_assert_eq(pipe(fds), 0);
    pid_t pid = fork();
    cr_assert_neq(pid, -1);
    if (pid == 0) {
        close(fds[0]);
        s_crash_child(fds[1]);
    }
    close(fds[1]);
    usleep(delay_us);
    cr_assert_eq(kill(pid, SIGKILL), 0);
    while (read(fds[0], &rev, sizeof rev) == sizeof rev) {
        cr_assert_gt(rev, last, "acks out of order");
        last = rev;
    }
    close(fds[0]);
    int status = 0;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL,
              "child ended on its own, status %#x", status);
    return last;
}

Test(store, acknowledged_commits_survive_sigkill)
{
    unsigned seed = (unsigned)time(NULL) ^ (unsigned)getpid();
    uint64_t acked = 0, acks_total = 0;
    srand(seed);
    for (int round = 0; round < 8; round++) {
        useconds_t delay = 20000 + (useconds_t)(rand() % 150000);
        uint64_t last = s_crash_round(delay);
        acks_total += last > acked;
        if (last)
            acked = last;
        pm_store_t *st = s_open();
        uint64_t head = s_head(st);
        cr_assert_geq(head, acked,
                      "seed %u round %d: head %" PRIu64
                      " < acknowledged %" PRIu64,
                      seed, round, head, acked);
        /* No gaps, every revision intact, including unacked ones. */
        for (uint64_t i = 1; i <= head; i++)
            s_assert_rev(st, i);
        Pm__Revision *r = NULL;
        cr_assert_eq(pm_store_get(st, head + 1, &r), PM_ENOTFOUND);
        pm_store_close(&st);
        acked = head; /* the next child continues from here */
    }
    cr_assert_gt(acks_total, 0, "seed %u: no round acknowledged a commit",
                 seed);
    cr_log_info("8 SIGKILL rounds, %" PRIu64 " revisions intact, seed %u",
                acked, seed);
}

/* ---- The current rollout ------------------------------------------------ */

/* A rollout of three nodes, mx2 restarting with DETAIL. */
static Pm__Rollout *
s_rollout(uint64_t id, const char *detail)
{
    static char *canary[] = {"mx2"};
    static const char *names[] = {"mx2", "mx1", "mx3"};
    Pm__Rollout *r = pm_calloc(1, sizeof *r);
    Pm__RolloutSpec *spec = pm_calloc(1, sizeof *spec);
    pm__rollout__init(r);
    pm__rollout_spec__init(spec);
    spec->service = pm_strdup("postfix");
    spec->batch = 1;
    spec->canary = pm_calloc(1, sizeof *spec->canary);
    spec->canary[0] = pm_strdup(canary[0]);
    spec->n_canary = 1;
    r->id = id;
    r->spec = spec;
    r->started = 1764590000000;
    r->user = pm_strdup("admin (alice)");
    r->nodes = pm_calloc(3, sizeof *r->nodes);
    for (size_t i = 0; i < 3; i++) {
        Pm__RolloutNode *n = pm_calloc(1, sizeof *n);
        pm__rollout_node__init(n);
        n->name = pm_strdup(names[i]);
        r->nodes[r->n_nodes++] = n;
    }
    r->nodes[0]->state = PM__ROLLOUT_NODE__STATE__RESTARTING;
    r->nodes[0]->started = r->started + 5;
    r->nodes[0]->detail = pm_strdup(detail);
    return r;
}

static bool
s_same_message(const ProtobufCMessage *a, const ProtobufCMessage *b)
{
    size_t la = 0, lb = 0;
    uint8_t *pa = pm_wire_pack(a, &la), *pb = pm_wire_pack(b, &lb);
    bool same = la == lb && memcmp(pa, pb, la) == 0;
    free(pa);
    free(pb);
    return same;
}

/* The rollout is one record, replaced whole, there after a reopen; what
 * would not read back is refused and the stored one kept; a read-only
 * store reads it and writes nothing. */
Test(store, rollout_put_get_replace_reopen)
{
    pm_store_t *st = s_open();
    Pm__Rollout *got = NULL, *r1 = s_rollout(1, ""), *r2 = s_rollout(2, "x");
    cr_expect_eq(pm_store_rollout_get(st, &got), PM_ENOTFOUND);
    cr_expect_null(got);
    cr_assert_eq(pm_store_rollout_put(st, r1), PM_OK);
    cr_assert_eq(pm_store_rollout_get(st, &got), PM_OK);
    cr_expect(s_same_message(&got->base, &r1->base));
    pm__rollout__free_unpacked(got, NULL);
    cr_assert_eq(pm_store_rollout_put(st, r2), PM_OK);

    /* refused: no id, not UTF-8, read-only, NULL */
    Pm__Rollout *bad = s_rollout(0, "");
    cr_expect_eq(pm_store_rollout_put(st, bad), PM_EINVAL);
    pm__rollout__free_unpacked(bad, NULL);
    bad = s_rollout(3, "\xff\xfe broken");
    cr_expect_eq(pm_store_rollout_put(st, bad), PM_EINVAL);
    pm__rollout__free_unpacked(bad, NULL);
    cr_expect_eq(pm_store_rollout_put(st, NULL), PM_EINVAL);
    cr_expect_eq(pm_store_rollout_get(st, NULL), PM_EINVAL);
    /* the head and the rollout live side by side */
    cr_expect_eq(s_head(st), 0);
    pm_store_close(&st);

    cr_assert_eq(pm_store_open(s_dir, PM_STORE_RDONLY, 0, &st), PM_OK);
    cr_assert_eq(pm_store_rollout_get(st, &got), PM_OK);
    cr_expect(s_same_message(&got->base, &r2->base), "the last put");
    cr_expect_str_eq(got->nodes[0]->detail, "x");
    cr_expect_eq(got->nodes[0]->started, 1764590000005);
    cr_expect_eq(pm_store_rollout_put(st, r1), PM_EINVAL);
    pm__rollout__free_unpacked(got, NULL);
    pm_store_close(&st);
    pm__rollout__free_unpacked(r1, NULL);
    pm__rollout__free_unpacked(r2, NULL);
}

/* A canary push stores its revision and the rollout that holds it back
 * in one transaction: both, or (a rollout that would not read back, a
 * conflict) neither. */
Test(store, commit_with_rollout_is_one_transaction)
{
    pm_store_t *st = s_open();
    char digest[65];
    s_digest(1, digest);
    Pm__Policy *p = s_policy_new(1);
    Pm__Rollout *held = s_rollout(7, ""), *got = NULL;
    pm_commit_t info = {.author = "ctl/alice",
                        .expect_rev = PM_REV_ANY,
                        .digest = digest,
                        .rollout = held};
    uint64_t rev = 0;
    cr_assert_eq(pm_store_commit(st, p, &info, &rev), PM_OK);
    cr_expect_eq(rev, 1);
    cr_assert_eq(pm_store_rollout_get(st, &got), PM_OK);
    cr_expect(s_same_message(&got->base, &held->base));
    pm__rollout__free_unpacked(got, NULL);

    /* a rollout that would not read back: no revision, the old rollout */
    Pm__Rollout *bad = s_rollout(8, "\xff\xfe broken");
    info.rollout = bad;
    cr_expect_eq(pm_store_commit(st, p, &info, &rev), PM_EINVAL);
    cr_expect_eq(s_head(st), 1);
    /* a conflict: neither the revision nor the (valid) rollout */
    Pm__Rollout *other = s_rollout(9, "");
    info.rollout = other;
    info.expect_rev = 0;
    cr_expect_eq(pm_store_commit(st, p, &info, &rev), PM_ECONFLICT);
    cr_expect_eq(s_head(st), 1);
    cr_assert_eq(pm_store_rollout_get(st, &got), PM_OK);
    cr_expect_eq(got->id, 7, "rollout %llu stored without its revision",
                 (unsigned long long)got->id);
    pm__rollout__free_unpacked(got, NULL);
    pm__rollout__free_unpacked(held, NULL);
    pm__rollout__free_unpacked(bad, NULL);
    pm__rollout__free_unpacked(other, NULL);
    pm__policy__free_unpacked(p, NULL);
    pm_store_close(&st);
}

/* A rollout put is acknowledged only once it is on disk: a writer killed
 * right after put returned leaves exactly that rollout. */
Test(store, rollout_put_survives_sigkill)
{
    int fds[2];
    cr_assert_eq(pipe(fds), 0);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        close(fds[0]);
        pm_store_t *st = NULL;
        if (pm_store_open(s_dir, 0, 0, &st) != PM_OK)
            _exit(1);
        for (uint64_t id = 1;; id++) {
            Pm__Rollout *r = s_rollout(id, "");
            if (pm_store_rollout_put(st, r) != PM_OK)
                _exit(2);
            pm__rollout__free_unpacked(r, NULL);
            if (write(fds[1], &id, sizeof id) != sizeof id)
                _exit(3);
        }
    }
    close(fds[1]);
    uint64_t acked = 0, id = 0;
    while (acked < 20 && read(fds[0], &id, sizeof id) == sizeof id)
        acked = id;
    kill(pid, SIGKILL);
    while (read(fds[0], &id, sizeof id) == sizeof id)
        acked = id;
    close(fds[0]);
    int status = 0;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFSIGNALED(status), "child ended on its own, %#x", status);
    pm_store_t *st = s_open();
    Pm__Rollout *got = NULL;
    cr_assert_eq(pm_store_rollout_get(st, &got), PM_OK);
    cr_expect_geq(got->id, acked);
    cr_expect_leq(got->id, acked + 1, "one put may land unacknowledged");
    cr_expect_eq(got->n_nodes, 3);
    pm__rollout__free_unpacked(got, NULL);
    pm_store_close(&st);
}

/* ---- Following a primary (a standby controller) ------------------------- */

/* A revision as a primary would send it: s_big_rev(NUMBER, 0, 0) with
 * PARENT, ROLLBACK_OF and fields no commit here would write. */
static Pm__Revision *
s_primary_rev(uint64_t number, uint64_t parent, uint64_t rollback_of)
{
    Pm__Revision *r = s_big_rev(number, 0, 0);
    r->parent = parent;
    r->rollback_of = rollback_of;
    free(r->author);
    r->author = strdup("primary/bob");
    free(r->message);
    r->message = strdup("made on the primary");
    r->time = 1600000000 + (int64_t)number;
    return r;
}

/* Follows s_primary_rev(NUMBER, PARENT, 0); returns the rc. */
static int
s_follow(pm_store_t *st, uint64_t number, uint64_t parent)
{
    Pm__Revision *r = s_primary_rev(number, parent, 0);
    int rc = pm_store_follow(st, r);
    pm__revision__free_unpacked(r, NULL);
    return rc;
}

Test(store, follow_keeps_revision_verbatim)
{
    pm_store_t *st = s_open();
    Pm__Revision *r = s_primary_rev(3, 2, 1), *got = NULL;
    cr_assert_eq(pm_store_follow(st, r), PM_OK);
    cr_assert_eq(s_head(st), 3);
    cr_assert_eq(pm_store_get(st, 0, &got), PM_OK);
    cr_expect_eq(got->number, 3);
    cr_expect_eq(got->parent, 2);
    cr_expect_eq(got->rollback_of, 1);
    cr_expect_str_eq(got->author, "primary/bob");
    cr_expect_str_eq(got->message, "made on the primary");
    cr_expect_eq(got->time, 1600000003);
    cr_expect_str_eq(got->digest, r->digest);
    cr_expect(s_same_message(&got->base, &r->base), "not verbatim");
    pm__revision__free_unpacked(got, NULL);
    pm__revision__free_unpacked(r, NULL);
    /* Stays so after a reopen. */
    pm_store_close(&st);
    st = s_open();
    r = s_primary_rev(3, 2, 1);
    cr_assert_eq(pm_store_get(st, 3, &got), PM_OK);
    cr_expect(s_same_message(&got->base, &r->base), "not verbatim");
    pm__revision__free_unpacked(got, NULL);
    pm__revision__free_unpacked(r, NULL);
    pm_store_close(&st);
}

Test(store, follow_moves_head_over_gaps_and_never_back)
{
    pm_store_t *st = s_open();
    Pm__Revision *r = NULL;
    uint64_t rev = 0;
    cr_assert_eq(s_commit(st, 1, PM_REV_ANY, &rev), PM_OK);
    cr_assert_eq(s_follow(st, 2, 1), PM_OK);
    cr_assert_eq(s_head(st), 2);
    cr_assert_eq(s_follow(st, 9, 8), PM_OK); /* a gap: 3..8 pruned there */
    cr_assert_eq(s_head(st), 9);
    cr_assert_eq(s_follow(st, 9, 8), PM_ECONFLICT);
    cr_assert_eq(s_follow(st, 5, 4), PM_ECONFLICT);
    cr_assert_eq(s_follow(st, 1, 0), PM_ECONFLICT);
    cr_assert_eq(s_head(st), 9);
    cr_assert_eq(pm_store_get(st, 5, &r), PM_ENOTFOUND);
    uint64_t want[] = {9, 2, 1};
    s_assert_stored(st, want, 3);
    s_assert_rev(st, 1);
    /* A commit after follows goes on from the followed head. */
    cr_assert_eq(s_commit(st, 10, 9, &rev), PM_OK);
    cr_assert_eq(rev, 10);
    pm_store_close(&st);
}

Test(store, follow_refuses_what_would_not_read_back)
{
    pm_store_t *st = s_open();
    Pm__Revision *r = s_primary_rev(4, 3, 0);
    Pm__Policy *policy = r->policy;
    char *digest = r->digest;
    r->policy = NULL;
    cr_expect_eq(pm_store_follow(st, r), PM_EINVAL, "no policy");
    r->policy = policy;
    r->digest = "ABCDEF";
    cr_expect_eq(pm_store_follow(st, r), PM_EINVAL, "bad digest");
    r->digest = "";
    cr_expect_eq(pm_store_follow(st, r), PM_EINVAL, "empty digest");
    r->digest = digest;
    r->number = 0;
    r->parent = 0;
    cr_expect_eq(pm_store_follow(st, r), PM_EINVAL, "number 0");
    r->number = 4;
    r->parent = 4;
    cr_expect_eq(pm_store_follow(st, r), PM_EINVAL, "parent not below");
    r->parent = 3;
    r->rollback_of = 5;
    cr_expect_eq(pm_store_follow(st, r), PM_EINVAL, "rollback_of above");
    r->rollback_of = 0;
    char *message = r->message;
    r->message = "bad \xff utf-8";
    cr_expect_eq(pm_store_follow(st, r), PM_EINVAL, "not UTF-8");
    r->message = message;
    cr_expect_eq(pm_store_follow(NULL, r), PM_EINVAL);
    cr_expect_eq(pm_store_follow(st, NULL), PM_EINVAL);
    cr_expect_eq(s_head(st), 0, "a refused follow wrote something");
    cr_expect_eq(pm_store_follow(st, r), PM_OK);
    pm_store_close(&st);
    cr_assert_eq(pm_store_open(s_dir, PM_STORE_RDONLY, 0, &st), PM_OK);
    r->number = 5;
    r->parent = 4;
    cr_expect_eq(pm_store_follow(st, r), PM_EINVAL, "read-only");
    cr_expect_eq(s_head(st), 4);
    pm__revision__free_unpacked(r, NULL);
    pm_store_close(&st);
}

Test(store, follow_applies_retention)
{
    pm_store_t *st = s_open();
    cr_assert_eq(pm_store_set_retention(st, 3), PM_OK);
    cr_assert_eq(s_node_put(st, "mx-a", 4), PM_OK); /* pins 4 */
    for (uint64_t i = 2; i <= 20; i += 2)
        cr_assert_eq(s_follow(st, i, i - 2), PM_OK, "follow %" PRIu64, i);
    /* Numbers above 20 - 3 stay, and what a node runs. */
    uint64_t want[] = {20, 18, 4};
    s_assert_stored(st, want, 3);
    cr_assert_eq(s_head(st), 20);
    pm_store_close(&st);
}

Test(store, follow_lower_retention_makes_room_when_full)
{
    pm_store_t *st = NULL;
    cr_assert_eq(pm_store_open(s_dir, 0, 512 * 1024, &st), PM_OK);
    cr_assert_eq(pm_store_set_map_max(st, 0), PM_OK);
    uint64_t ok = 0;
    int rc = PM_OK;
    for (uint64_t i = 1; i <= 100 && rc == PM_OK; i++) {
        Pm__Revision *r = s_big_rev(i, 1, 40000);
        rc = pm_store_follow(st, r);
        pm__revision__free_unpacked(r, NULL);
        ok += rc == PM_OK;
    }
    cr_assert_eq(rc, PM_EFULL, "rc %d after %" PRIu64 " follows", rc, ok);
    cr_assert_eq(s_head(st), ok, "a full follow moved the head");
    cr_assert_eq(pm_store_set_retention(st, 2), PM_OK);
    for (uint64_t i = ok + 1; i <= ok + 30; i++) {
        Pm__Revision *r = s_big_rev(i, 1, 40000);
        rc = pm_store_follow(st, r);
        pm__revision__free_unpacked(r, NULL);
        cr_assert_eq(rc, PM_OK, "follow %" PRIu64 ": %s", i, pm_strerror(rc));
        uint64_t want[] = {i, i - 1};
        s_assert_stored(st, want, 2);
    }
    s_assert_big(st, 0, ok + 30, 1, 40000);
    pm_store_close(&st);
}

/* ---- Copying the secrets ------------------------------------------------ */

/* Asserts the store holds exactly the N secrets IDS[i] = DATA[i]. */
static void
s_assert_secrets(pm_store_t *st, const char *const *ids,
                 const char *const *data, size_t n)
{
    Pm__ReplicaSecret **got = NULL;
    size_t count = 99;
    cr_assert_eq(pm_store_secrets(st, &got, &count), PM_OK);
    cr_assert_not_null(got);
    cr_assert_eq(count, n, "%zu secrets, want %zu", count, n);
    for (size_t i = 0; i < n; i++) {
        cr_assert_str_eq(got[i]->id, ids[i]);
        cr_assert_eq(got[i]->data.len, strlen(data[i]), "%s", ids[i]);
        cr_assert(memcmp(got[i]->data.data, data[i], strlen(data[i])) == 0,
                  "%s", ids[i]);
    }
    pm_store_secrets_free(&got, count);
    cr_assert_null(got);
    pm_store_secrets_free(&got, count);
}

Test(store, secrets_listed_sorted)
{
    pm_store_t *st = s_open();
    Pm__ReplicaSecret **got = NULL;
    size_t n = 99;
    cr_assert_eq(pm_store_secrets(st, &got, &n), PM_OK);
    cr_assert_not_null(got, "an empty list is still an array");
    cr_assert_eq(n, 0);
    pm_store_secrets_free(&got, n);
    cr_assert_null(got);
    pm_store_secrets_free(&got, n);
    pm_store_secrets_free(NULL, 0);
    const char *put[] = {"dkim/b", "dkim/a", "dkim/ab", "dkim/B", "dkim/\xc3"};
    for (size_t i = 0; i < 5; i++)
        cr_assert_eq(pm_store_secret_put(st, put[i], put[i], strlen(put[i])),
                     PM_OK);
    const char *want[] = {"dkim/B", "dkim/a", "dkim/ab", "dkim/b", "dkim/\xc3"};
    s_assert_secrets(st, want, want, 5);
    cr_assert_eq(pm_store_secrets(NULL, &got, &n), PM_EINVAL);
    cr_assert_eq(pm_store_secrets(st, NULL, &n), PM_EINVAL);
    cr_assert_eq(pm_store_secrets(st, &got, NULL), PM_EINVAL);
    pm_store_close(&st);
    cr_assert_eq(pm_store_open(s_dir, PM_STORE_RDONLY, 0, &st), PM_OK);
    s_assert_secrets(st, want, want, 5);
    pm_store_close(&st);
}

Test(store, secrets_replace_is_exact_and_all_or_none)
{
    pm_store_t *st = s_open();
    cr_assert_eq(pm_store_secret_put(st, "a", "old-a", 5), PM_OK);
    cr_assert_eq(pm_store_secret_put(st, "b", "old-b", 5), PM_OK);
    cr_assert_eq(pm_store_secret_put(st, "c", "old-c", 5), PM_OK);
    Pm__ReplicaSecret s1 = PM__REPLICA_SECRET__INIT;
    Pm__ReplicaSecret s2 = PM__REPLICA_SECRET__INIT;
    Pm__ReplicaSecret s3 = PM__REPLICA_SECRET__INIT;
    Pm__ReplicaSecret *set[] = {&s1, &s2, &s3};
    s1.id = "d", s1.data.data = (uint8_t *)"new-d", s1.data.len = 5;
    s2.id = "b", s2.data.data = (uint8_t *)"new-b", s2.data.len = 5;
    cr_assert_eq(pm_store_secrets_replace(st, set, 2), PM_OK);
    const char *ids[] = {"b", "d"}, *data[] = {"new-b", "new-d"};
    s_assert_secrets(st, ids, data, 2);
    uint8_t *buf = NULL;
    size_t len = 0;
    cr_assert_eq(pm_store_secret_get(st, "a", &buf, &len), PM_ENOTFOUND);
    cr_assert_eq(pm_store_secret_get(st, "c", &buf, &len), PM_ENOTFOUND);

    /* A bad entry anywhere changes nothing. */
    s3.id = "", s3.data.data = (uint8_t *)"x", s3.data.len = 1;
    cr_expect_eq(pm_store_secrets_replace(st, set, 3), PM_EINVAL, "empty id");
    char longid[600];
    memset(longid, 'k', sizeof longid - 1);
    longid[sizeof longid - 1] = '\0';
    s3.id = longid;
    cr_expect_eq(pm_store_secrets_replace(st, set, 3), PM_EINVAL, "long id");
    s3.id = "d"; /* a duplicate, after two good ones */
    cr_expect_eq(pm_store_secrets_replace(st, set, 3), PM_EINVAL, "dup id");
    s3.id = "e", s3.data.len = 0;
    cr_expect_eq(pm_store_secrets_replace(st, set, 3), PM_EINVAL, "no data");
    set[2] = NULL;
    cr_expect_eq(pm_store_secrets_replace(st, set, 3), PM_EINVAL, "NULL");
    cr_expect_eq(pm_store_secrets_replace(st, NULL, 1), PM_EINVAL);
    cr_expect_eq(pm_store_secrets_replace(NULL, set, 2), PM_EINVAL);
    s_assert_secrets(st, ids, data, 2);

    /* None: every secret goes. */
    cr_assert_eq(pm_store_secrets_replace(st, NULL, 0), PM_OK);
    s_assert_secrets(st, NULL, NULL, 0);
    cr_assert_eq(pm_store_secrets_replace(st, set, 2), PM_OK);
    pm_store_close(&st);
    cr_assert_eq(pm_store_open(s_dir, PM_STORE_RDONLY, 0, &st), PM_OK);
    cr_expect_eq(pm_store_secrets_replace(st, set, 1), PM_EINVAL, "read-only");
    s_assert_secrets(st, ids, data, 2);
    pm_store_close(&st);
}

/* ---- The controller's role ---------------------------------------------- */

Test(store, role_put_get_reopen)
{
    pm_store_t *st = s_open();
    bool primary = true;
    uint64_t epoch = 77;
    cr_assert_eq(pm_store_role_get(st, &primary, &epoch), PM_ENOTFOUND);
    cr_assert(primary && epoch == 77, "outputs set on failure");
    cr_assert_eq(pm_store_role_put(st, false, 3), PM_OK);
    cr_assert_eq(pm_store_role_get(st, &primary, &epoch), PM_OK);
    cr_assert(!primary);
    cr_assert_eq(epoch, 3);
    cr_assert_eq(pm_store_role_put(st, true, UINT64_MAX), PM_OK);
    cr_assert_eq(pm_store_role_get(st, &primary, &epoch), PM_OK);
    cr_assert(primary);
    cr_assert_eq(epoch, UINT64_MAX);
    cr_assert_eq(pm_store_role_get(NULL, &primary, &epoch), PM_EINVAL);
    cr_assert_eq(pm_store_role_get(st, NULL, &epoch), PM_EINVAL);
    cr_assert_eq(pm_store_role_get(st, &primary, NULL), PM_EINVAL);
    cr_assert_eq(pm_store_role_put(NULL, true, 1), PM_EINVAL);
    cr_assert_eq(s_head(st), 0, "the role is no revision");
    pm_store_close(&st);
    cr_assert_eq(pm_store_open(s_dir, PM_STORE_RDONLY, 0, &st), PM_OK);
    primary = false;
    cr_assert_eq(pm_store_role_get(st, &primary, &epoch), PM_OK);
    cr_assert(primary);
    cr_assert_eq(epoch, UINT64_MAX);
    cr_assert_eq(pm_store_role_put(st, false, 1), PM_EINVAL);
    pm_store_close(&st);
}

/* A standby storing its primary's epoch must not undo a promotion: the
 * record never goes to an older epoch, nor from primary to standby at the
 * same one. */
Test(store, role_never_goes_back)
{
    pm_store_t *st = s_open();
    bool primary = false;
    uint64_t epoch = 0;
    cr_assert_eq(pm_store_role_put(st, false, 1), PM_OK);
    cr_assert_eq(pm_store_role_put(st, true, 2), PM_OK, "a promotion");
    cr_assert_eq(pm_store_role_put(st, false, 2), PM_ECONFLICT);
    cr_assert_eq(pm_store_role_put(st, false, 1), PM_ECONFLICT);
    cr_assert_eq(pm_store_role_put(st, true, 1), PM_ECONFLICT);
    cr_assert_eq(pm_store_role_get(st, &primary, &epoch), PM_OK);
    cr_assert(primary && epoch == 2, "unchanged by the refused puts");
    cr_assert_eq(pm_store_role_put(st, true, 2), PM_OK, "the same again");
    cr_assert_eq(pm_store_role_put(st, false, 3), PM_OK, "a newer primary");
    cr_assert_eq(pm_store_role_get(st, &primary, &epoch), PM_OK);
    cr_assert(!primary && epoch == 3);
    pm_store_close(&st);
}

/* The daemon keeps the store open and reads the role once a tick; another
 * process (privmta-controller --promote) opens the store itself and puts
 * it. */
Test(store, role_put_by_another_process_is_seen)
{
    pm_store_t *st = s_open();
    bool primary = true;
    uint64_t epoch = 0;
    cr_assert_eq(pm_store_role_get(st, &primary, &epoch), PM_ENOTFOUND);
    cr_assert_eq(pm_store_role_put(st, false, 1), PM_OK);
    cr_assert_eq(pm_store_role_get(st, &primary, &epoch), PM_OK);
    cr_assert(!primary);
    pid_t pid = fork();
    cr_assert_neq(pid, -1);
    if (pid == 0) {
        pm_store_t *other = NULL;
        if (pm_store_open(s_dir, 0, 0, &other) != PM_OK)
            _exit(2);
        if (pm_store_role_put(other, true, 2) != PM_OK)
            _exit(3);
        pm_store_close(&other);
        _exit(0);
    }
    s_reap_ok(pid);
    cr_assert_eq(pm_store_role_get(st, &primary, &epoch), PM_OK);
    cr_assert(primary, "the other process's put is not seen");
    cr_assert_eq(epoch, 2);
    pm_store_close(&st);
}
