/* test_members.c - MEMBERS as a change (pm_members). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pm_error.h"
#include "pm_members.h"
#include "pm_wire.h"

#define S_KEY_A "Yne@$w-vo<fVvi]a<NY6T1ed:M$fCG*[IaLV{hID"
#define S_KEY_B "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7"

typedef struct {
    Pm__Publication pub;
    Pm__Member m[4], *mp[4];
} s_list_t;

/* A whole MEMBERS of epoch EPOCH: "name+key-letter[live]" items, e.g.
 * "mx1:a+" is mx1 with key A, live. */
static void
s_list(s_list_t *l, uint64_t epoch, const char *const *items, size_t n)
{
    pm__publication__init(&l->pub);
    l->pub.kind = PM__PUBLICATION__KIND__MEMBERS;
    l->pub.members_epoch = epoch;
    for (size_t i = 0; i < n; i++) {
        pm__member__init(&l->m[i]);
        const char *colon = strchr(items[i], ':');
        l->m[i].name = strndup(items[i], (size_t)(colon - items[i]));
        l->m[i].public_key = colon[1] == 'a' ? S_KEY_A : S_KEY_B;
        l->m[i].live = colon[2] == '+';
        l->m[i].peer_endpoint = "";
        l->mp[i] = &l->m[i];
    }
    l->pub.members = l->mp;
    l->pub.n_members = n;
}

static void
s_list_free(s_list_t *l)
{
    for (size_t i = 0; i < l->pub.n_members; i++)
        free(l->m[i].name);
}

/* What PUB says, in one line: "mx1:a+ mx2:b-" */
static char *
s_line(const Pm__Publication *pub)
{
    char *line = calloc(1, 256);
    for (size_t i = 0; i < pub->n_members; i++) {
        const Pm__Member *m = pub->members[i];
        snprintf(line + strlen(line), 256 - strlen(line), "%s%s:%c%c",
                 i ? " " : "", m->name,
                 strcmp(m->public_key, S_KEY_A) == 0 ? 'a' : 'b',
                 m->live ? '+' : '-');
    }
    return line;
}

/* A delta says what changed and what went; applied to the old list it
 * makes the new one, sorted by name, whole (base 0), of the new epoch. */
Test(members, delta_then_apply_makes_the_new_list)
{
    s_list_t old, now;
    const char *o[] = {"mx1:a+", "mx2:b+", "mx3:a-"};
    const char *n[] = {"mx0:b+", "mx1:a+", "mx2:b-"};
    s_list(&old, 7, o, 3);
    s_list(&now, 8, n, 3);
    Pm__Publication delta = PM__PUBLICATION__INIT;
    pm_members_delta(&old.pub, &now.pub, &delta);
    cr_expect_eq(delta.members_base, 7);
    cr_expect_eq(delta.members_epoch, 8);
    char *line = s_line(&delta);
    cr_expect_str_eq(line, "mx0:b+ mx2:b-", "new and changed only");
    free(line);
    cr_assert_eq(delta.n_members_gone, 1);
    cr_expect_str_eq(delta.members_gone[0], "mx3");

    /* through the wire, as an agent gets it */
    size_t len = 0;
    uint8_t *buf = pm_wire_pack(&delta.base, &len);
    Pm__Publication *got = NULL;
    cr_assert_eq(pm_wire_unpack_publication(buf, len, &got, NULL), PM_OK);
    free(buf);
    buf = pm_members_apply(&old.pub, got, &len);
    cr_assert_not_null(buf);
    Pm__Publication *whole = pm__publication__unpack(NULL, len, buf);
    line = s_line(whole);
    cr_expect_str_eq(line, "mx0:b+ mx1:a+ mx2:b-");
    cr_expect_eq(whole->members_epoch, 8);
    cr_expect_eq(whole->members_base, 0);
    cr_expect_eq(whole->n_members_gone, 0);
    free(line);
    free(buf);
    pm__publication__free_unpacked(whole, NULL);
    pm__publication__free_unpacked(got, NULL);
    pm_members_delta_clear(&delta);
    s_list_free(&old);
    s_list_free(&now);
}

/* A change from another epoch than the one held, or with nothing held,
 * is not applied; a whole list always is. */
Test(members, apply_refuses_another_base)
{
    s_list_t held, whole;
    const char *h[] = {"mx1:a+"};
    s_list(&held, 5, h, 1);
    s_list(&whole, 9, h, 1);
    Pm__Publication delta = PM__PUBLICATION__INIT;
    delta.kind = PM__PUBLICATION__KIND__MEMBERS;
    delta.members_base = 6;
    delta.members_epoch = 7;
    size_t len = 0;
    cr_expect_null(pm_members_apply(&held.pub, &delta, &len));
    cr_expect_null(pm_members_apply(NULL, &delta, &len));
    uint8_t *buf = pm_members_apply(NULL, &whole.pub, &len);
    cr_assert_not_null(buf);
    Pm__Publication *got = pm__publication__unpack(NULL, len, buf);
    cr_expect_eq(got->members_epoch, 9);
    cr_expect_eq(got->n_members, 1);
    pm__publication__free_unpacked(got, NULL);
    free(buf);
    s_list_free(&held);
    s_list_free(&whole);
}

static char *
s_wire_error(const Pm__Publication *pub)
{
    size_t len = 0;
    uint8_t *buf = pm_wire_pack(&pub->base, &len);
    Pm__Publication *got = NULL;
    char *why = NULL;
    int rc = pm_wire_unpack_publication(buf, len, &got, &why);
    free(buf);
    if (got)
        pm__publication__free_unpacked(got, NULL);
    cr_expect_neq(rc, PM_OK);
    return why;
}

/* The wire gate refuses a delta that cannot be one. */
Test(members, wire_refuses_malformed_deltas)
{
    char *gone[] = {"mx1"}, *empty[] = {""};
    Pm__Publication pub = PM__PUBLICATION__INIT;
    pub.kind = PM__PUBLICATION__KIND__MEMBERS;
    pub.members_epoch = 3;
    pub.members_gone = gone;
    pub.n_members_gone = 1;
    char *why = s_wire_error(&pub);
    cr_expect(why && strstr(why, "members_gone"), "%s", why);
    free(why);

    pub.members_base = 3;
    why = s_wire_error(&pub);
    cr_expect(why && strstr(why, "members_epoch"), "%s", why);
    free(why);

    pub.members_epoch = 4;
    pub.members_gone = empty;
    why = s_wire_error(&pub);
    cr_expect(why && strstr(why, "empty name"), "%s", why);
    free(why);
}

/* A fleet past PM_WIRE_LIST_MAX nodes still gets its MEMBERS through the
 * gate (its lists of nodes have their own cap); other lists do not. */
Test(members, wire_takes_a_fleet_larger_than_list_max)
{
    size_t n = PM_WIRE_LIST_MAX + 904; /* 5000 */
    Pm__Member *m = calloc(n, sizeof *m), **mp = calloc(n, sizeof *mp);
    char(*names)[16] = calloc(n, sizeof *names);
    for (size_t i = 0; i < n; i++) {
        pm__member__init(&m[i]);
        snprintf(names[i], sizeof names[i], "mx%zu", i);
        m[i].name = names[i];
        m[i].public_key = S_KEY_A;
        mp[i] = &m[i];
    }
    Pm__Publication pub = PM__PUBLICATION__INIT;
    pub.kind = PM__PUBLICATION__KIND__MEMBERS;
    pub.members_epoch = 1;
    pub.members = mp;
    pub.n_members = n;
    size_t len = 0;
    uint8_t *buf = pm_wire_pack(&pub.base, &len);
    Pm__Publication *got = NULL;
    char *why = NULL;
    cr_expect_eq(pm_wire_unpack_publication(buf, len, &got, &why), PM_OK, "%s",
                 why);
    cr_expect_eq(got ? got->n_members : 0, n);
    if (got)
        pm__publication__free_unpacked(got, NULL);
    free(buf);
    free(why);

    /* the same number of duties is no fleet list */
    Pm__Duty d = PM__DUTY__INIT, **dp = calloc(n, sizeof *dp);
    d.database = "daily";
    d.node = "mx1";
    for (size_t i = 0; i < n; i++)
        dp[i] = &d;
    pub.n_members = 0;
    pub.duties = dp;
    pub.n_duties = n;
    why = s_wire_error(&pub);
    cr_expect(why && strstr(why, "more than 4096"), "%s", why);
    free(why);
    free(dp);
    free(m);
    free(mp);
    free(names);
}
