/* test_sigmembers.c - the membership a node keeps from MEMBERS: members
 * and duties replaced whole, kept in a file and read back at start, links
 * reused while a member stays where it was. */
#include <criterion/criterion.h>

#include "pm_error.h"
#include "pm_file.h"
#include "pm_mem.h"
#include "pm_sigmembers.h"
#include "pm_wire.h"
#include "testdir.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static char s_dir[64], s_file[96];
static zcert_t *s_me, *s_mx1, *s_mx2;

static void
s_setup(void)
{
    strcpy(s_dir, "/tmp/pm-test-sigmembers.XXXXXX");
    cr_assert_not_null(mkdtemp(s_dir));
    snprintf(s_file, sizeof s_file, "%s/members", s_dir);
    s_me = zcert_new();
    s_mx1 = zcert_new();
    s_mx2 = zcert_new();
}

static void
s_teardown(void)
{
    zcert_destroy(&s_me);
    zcert_destroy(&s_mx1);
    zcert_destroy(&s_mx2);
    testdir_remove(s_dir);
}

TestSuite(sigmembers, .init = s_setup, .fini = s_teardown);

/* MEMBERS naming mx1 (live, serving at ENDPOINT1) and mx2 (down, no
 * endpoint), with "test" fetched by HOLDER; packed into *BUF when BUF. */
static Pm__Publication *
s_members(const char *endpoint1, const char *holder, uint8_t **buf, size_t *len)
{
    Pm__Publication pub = PM__PUBLICATION__INIT;
    Pm__Member m[2], *mp[2] = {&m[0], &m[1]};
    Pm__Duty d = PM__DUTY__INIT, *dp = &d;
    pm__member__init(&m[0]);
    pm__member__init(&m[1]);
    m[0].name = "mx1";
    m[0].peer_endpoint = (char *)endpoint1;
    m[0].public_key = (char *)zcert_public_txt(s_mx1);
    m[0].live = true;
    m[1].name = "mx2";
    m[1].peer_endpoint = "";
    m[1].public_key = (char *)zcert_public_txt(s_mx2);
    d.database = "test";
    d.node = (char *)holder;
    pub.kind = PM__PUBLICATION__KIND__MEMBERS;
    pub.members = mp;
    pub.n_members = 2;
    pub.duties = &dp;
    pub.n_duties = holder ? 1 : 0;
    size_t n = 0;
    uint8_t *packed = pm_wire_pack(&pub.base, &n);
    Pm__Publication *out = NULL;
    char *why = NULL;
    cr_assert_eq(pm_wire_unpack_publication(packed, n, &out, &why), PM_OK, "%s",
                 why ? why : "");
    if (buf) {
        *buf = packed;
        *len = n;
    } else {
        free(packed);
    }
    return out;
}

Test(sigmembers, replaced_whole_by_each_publication)
{
    pm_sigmembers_t *ms = pm_sigmembers_new(s_me, NULL, 0);
    cr_assert_eq(pm_sigmembers_count(ms), 0);
    cr_assert_null(pm_sigmembers_duty(ms, "test"));

    Pm__Publication *pub = s_members("tcp://127.0.0.1:7301", "mx1", NULL, 0);
    pm_sigmembers_set(ms, pub);
    pm__publication__free_unpacked(pub, NULL);
    cr_assert_eq(pm_sigmembers_count(ms), 2);
    const pm_sigmember_t *mx1 = pm_sigmembers_find(ms, "mx1");
    cr_assert_not_null(mx1);
    cr_assert_eq(pm_sigmembers_at(ms, 0), mx1);
    cr_assert_str_eq(mx1->endpoint, "tcp://127.0.0.1:7301");
    cr_assert_str_eq(mx1->key, zcert_public_txt(s_mx1));
    cr_assert(mx1->live);
    cr_assert_not(pm_sigmembers_find(ms, "mx2")->live);
    cr_assert_null(pm_sigmembers_find(ms, "mx3"));
    cr_assert_null(pm_sigmembers_at(ms, 2));
    cr_assert_str_eq(pm_sigmembers_duty(ms, "test"), "mx1");
    cr_assert_null(pm_sigmembers_duty(ms, "daily"));

    /* the next one says nobody fetches: no duty left over */
    pub = s_members("tcp://127.0.0.1:7301", NULL, NULL, 0);
    pm_sigmembers_set(ms, pub);
    pm__publication__free_unpacked(pub, NULL);
    cr_assert_null(pm_sigmembers_duty(ms, "test"));
    pm_sigmembers_destroy(&ms);
    cr_assert_null(ms);
}

Test(sigmembers, a_link_is_kept_until_its_member_moves)
{
    pm_sigmembers_t *ms = pm_sigmembers_new(s_me, NULL, 0);
    Pm__Publication *pub = s_members("tcp://127.0.0.1:7301", "mx1", NULL, 0);
    pm_sigmembers_set(ms, pub);
    pm__publication__free_unpacked(pub, NULL);
    const pm_sigmember_t *mx1 = pm_sigmembers_find(ms, "mx1");
    pm_peer_link_t *link = pm_sigmembers_link(ms, mx1);
    cr_assert_not_null(link);
    cr_assert_eq(pm_sigmembers_link(ms, mx1), link, "the same link again");
    cr_assert(
        pm_peer_link_is(link, "tcp://127.0.0.1:7301", zcert_public_txt(s_mx1)));

    pub = s_members("tcp://127.0.0.1:7302", "mx1", NULL, 0);
    pm_sigmembers_set(ms, pub);
    pm__publication__free_unpacked(pub, NULL);
    mx1 = pm_sigmembers_find(ms, "mx1");
    link = pm_sigmembers_link(ms, mx1);
    cr_assert(
        pm_peer_link_is(link, "tcp://127.0.0.1:7302", zcert_public_txt(s_mx1)),
        "remade at the new endpoint");

    /* at most PM_SIGMEMBERS_LINKS_MAX are kept: the least recently used
     * goes, the ones just used stay */
    cr_assert_eq(pm_sigmembers_links(ms), 1);
    char names[PM_SIGMEMBERS_LINKS_MAX + 1][16];
    for (int i = 0; i < PM_SIGMEMBERS_LINKS_MAX; i++) {
        snprintf(names[i], sizeof names[i], "p%d", i);
        pm_sigmember_t p = {names[i], "tcp://127.0.0.1:7400",
                            (char *)zcert_public_txt(s_mx2), true};
        cr_assert_not_null(pm_sigmembers_link(ms, &p));
        if (i == 0) /* mx1 used again: p0 is now the oldest */
            cr_assert_eq(pm_sigmembers_link(ms, mx1), link);
    }
    cr_expect_eq(pm_sigmembers_links(ms), PM_SIGMEMBERS_LINKS_MAX);
    cr_expect_eq(pm_sigmembers_link(ms, mx1), link, "mx1 was kept");
    pm_sigmember_t p0 = {names[0], "tcp://127.0.0.1:7400",
                         (char *)zcert_public_txt(s_mx2), true};
    pm_sigmembers_link(ms, &p0); /* made again: p1 goes */
    cr_expect_eq(pm_sigmembers_links(ms), PM_SIGMEMBERS_LINKS_MAX);

    /* a key that is not one gets no link */
    pm_sigmember_t bad = {"mx9", "tcp://127.0.0.1:7309", "not a key", true};
    cr_assert_null(pm_sigmembers_link(ms, &bad));
    pm_sigmembers_destroy(&ms);
}

static uint64_t
s_xorshift(void *state)
{
    uint64_t *x = state;
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    return *x;
}

/* A view of LINKS_MAX = 4 out of 40 candidates: random picks while it
 * fills, then picks within it, but for about one pick in
 * PM_SIGMEMBERS_VIEW_CHURN rounds, which replaces a view member. */
Test(sigmembers, a_big_cluster_gossips_within_a_view)
{
    enum { N = 40, VIEW = 4, FAN = 3, ROUNDS = 1600 };
    pm_sigmembers_t *ms = pm_sigmembers_new(s_me, NULL, VIEW);
    cr_assert_eq(pm_sigmembers_links_max(ms), VIEW);
    char names[N][16];
    pm_sigmember_t m[N];
    for (int i = 0; i < N; i++) {
        snprintf(names[i], sizeof names[i], "p%d", i);
        m[i] = (pm_sigmember_t){names[i], "tcp://127.0.0.1:7400",
                                (char *)zcert_public_txt(s_mx2), true};
    }
    uint64_t seed = 42;
    const pm_sigmember_t *pick[N];
    size_t outside = 0, rounds_with_outside = 0;
    for (int r = 0; r < ROUNDS; r++) {
        for (int i = 0; i < N; i++)
            pick[i] = &m[(i + r) % N]; /* the caller's order matters not */
        bool full = pm_sigmembers_links(ms) == VIEW;
        size_t fan = pm_sigmembers_pick(ms, pick, N, FAN, s_xorshift, &seed);
        cr_assert_eq(fan, FAN);
        size_t out = 0;
        for (size_t k = 0; k < fan; k++) {
            for (size_t j = 0; j < k; j++)
                cr_assert_neq(pick[j], pick[k], "picked twice in a round");
            out += !pm_sigmembers_linked(ms, pick[k]);
        }
        if (full) {
            cr_assert_leq(out, 1, "a full view: one pick from outside at most");
            outside += out;
            rounds_with_outside += out > 0;
        }
        for (size_t k = 0; k < fan; k++) /* the round uses its links */
            cr_assert_not_null(pm_sigmembers_link(ms, pick[k]));
        cr_assert_leq(pm_sigmembers_links(ms), VIEW);
    }
    cr_assert_eq(pm_sigmembers_links(ms), VIEW, "the view filled");
    /* about ROUNDS / 16 = 100 rounds took a member from outside */
    cr_expect(rounds_with_outside > 50 && rounds_with_outside < 200,
              "%zu of %d rounds picked from outside", rounds_with_outside,
              ROUNDS);

    /* fewer candidates than the view holds: all of them, at random */
    size_t fan = pm_sigmembers_pick(ms, pick, 2, FAN, s_xorshift, &seed);
    cr_assert_eq(fan, 2);
    pm_sigmembers_destroy(&ms);
}

Test(sigmembers, kept_in_a_file_and_read_back)
{
    pm_sigmembers_t *ms = pm_sigmembers_new(s_me, s_file, 0);
    Pm__Publication *pub = NULL;
    char *data = NULL, *why = NULL;
    size_t len = 0;
    cr_assert_eq(pm_sigmembers_kept(ms, &pub, &data, &len, &why), PM_ENOTFOUND);
    free(why);
    why = NULL;

    uint8_t *buf = NULL;
    size_t n = 0;
    Pm__Publication *in = s_members("tcp://127.0.0.1:7301", "mx1", &buf, &n);
    pm_sigmembers_set(ms, in);
    pm__publication__free_unpacked(in, NULL);
    cr_assert_eq(pm_sigmembers_keep(ms, buf, n, &why), PM_OK);
    struct stat st;
    cr_assert_eq(stat(s_file, &st), 0);
    cr_assert_eq(st.st_mode & 0777, 0600, "a membership is kept 0600");
    pm_sigmembers_destroy(&ms);

    /* the next run reads it back, bytes and all */
    ms = pm_sigmembers_new(s_me, s_file, 0);
    cr_assert_eq(pm_sigmembers_kept(ms, &pub, &data, &len, &why), PM_OK);
    cr_assert_eq(len, n);
    cr_assert_eq(memcmp(data, buf, n), 0);
    cr_assert_eq(pub->n_members, 2);
    cr_assert_str_eq(pub->duties[0]->node, "mx1");
    pm__publication__free_unpacked(pub, NULL);
    free(data);
    free(buf);

    /* anything else in its place is refused, with the reason */
    cr_assert_eq(pm_file_write(s_file, "garbage", 7, 0600, (gid_t)-1, &why),
                 PM_OK);
    cr_assert_neq(pm_sigmembers_kept(ms, &pub, &data, &len, &why), PM_OK);
    cr_assert_not_null(why);
    cr_assert_null(pub);
    cr_assert_null(data);
    free(why);
    why = NULL;
    Pm__Publication hb = PM__PUBLICATION__INIT;
    hb.kind = PM__PUBLICATION__KIND__HEARTBEAT;
    buf = pm_wire_pack(&hb.base, &n);
    cr_assert_eq(pm_file_write(s_file, buf, n, 0600, (gid_t)-1, &why), PM_OK);
    free(buf);
    cr_assert_eq(pm_sigmembers_kept(ms, &pub, &data, &len, &why), PM_EINVAL);
    cr_assert_str_eq(why, "not a membership");
    free(why);
    pm_sigmembers_destroy(&ms);
}
