/* test_web_session.c - pm_web_session: sessions, CSRF tokens and login
 * throttling. */
#include <criterion/criterion.h>

#include <stdio.h>
#include <string.h>

#include "pm_web_session.h"

static const unsigned char s_stamp[PM_WEB_STAMP_LEN] = {1};

Test(web_session, open_find_close)
{
    pm_web_sessions_t *s = pm_web_sessions_new();
    const pm_web_session_t *a = pm_web_session_open(s, "alice", s_stamp, 1000);
    cr_assert_eq(strlen(a->token), PM_WEB_TOKEN_LEN);
    cr_assert_eq(strlen(a->csrf), PM_WEB_TOKEN_LEN);
    cr_assert_str_neq(a->token, a->csrf);
    char token[PM_WEB_TOKEN_LEN + 1];
    strcpy(token, a->token);
    const pm_web_session_t *b = pm_web_session_open(s, "bob", s_stamp, 1000);
    cr_assert_str_neq(b->token, token);
    cr_assert_str_eq(pm_web_session_find(s, token, 1001)->user, "alice");
    cr_assert_null(pm_web_session_find(s, "x", 1001));
    char wrong[PM_WEB_TOKEN_LEN + 1];
    strcpy(wrong, token);
    wrong[0] = wrong[0] == 'A' ? 'B' : 'A';
    cr_assert_null(pm_web_session_find(s, wrong, 1001));
    pm_web_session_close(s, token);
    cr_assert_null(pm_web_session_find(s, token, 1002));
    pm_web_sessions_destroy(&s);
    cr_assert_null(s);
}

Test(web_session, expires_when_idle_and_when_old)
{
    pm_web_sessions_t *s = pm_web_sessions_new();
    char token[PM_WEB_TOKEN_LEN + 1];
    strcpy(token, pm_web_session_open(s, "alice", s_stamp, 0)->token);
    /* used every idle period minus one second: alive until its life ends */
    int64_t t = 0;
    while (t + PM_WEB_IDLE_S - 1 <= PM_WEB_LIFE_S) {
        t += PM_WEB_IDLE_S - 1;
        cr_assert_not_null(pm_web_session_find(s, token, t), "at %ld", (long)t);
    }
    cr_assert_null(pm_web_session_find(s, token, PM_WEB_LIFE_S + 1));
    strcpy(token, pm_web_session_open(s, "alice", s_stamp, 0)->token);
    cr_assert_null(pm_web_session_find(s, token, PM_WEB_IDLE_S + 1));
    pm_web_sessions_destroy(&s);
}

/* The users file changed: the sessions the check says no to end, the
 * others stay. */
static bool
s_not_bob(const char *user, const unsigned char *stamp, void *arg)
{
    (void)stamp;
    ++*(int *)arg;
    return strcmp(user, "bob") != 0;
}

Test(web_session, keep_ends_the_sessions_said_no_to)
{
    pm_web_sessions_t *s = pm_web_sessions_new();
    char alice[PM_WEB_TOKEN_LEN + 1], bob[2][PM_WEB_TOKEN_LEN + 1];
    strcpy(bob[0], pm_web_session_open(s, "bob", s_stamp, 0)->token);
    const pm_web_session_t *a = pm_web_session_open(s, "alice", s_stamp, 0);
    cr_assert_eq(memcmp(a->stamp, s_stamp, PM_WEB_STAMP_LEN), 0);
    strcpy(alice, a->token);
    strcpy(bob[1], pm_web_session_open(s, "bob", s_stamp, 0)->token);
    int asked = 0;
    cr_assert_eq(pm_web_sessions_keep(s, s_not_bob, &asked), 2);
    cr_assert_eq(asked, 3);
    cr_assert_not_null(pm_web_session_find(s, alice, 1));
    cr_assert_null(pm_web_session_find(s, bob[0], 1));
    cr_assert_null(pm_web_session_find(s, bob[1], 1));
    pm_web_sessions_destroy(&s);
}

Test(web_session, csrf_must_match)
{
    pm_web_sessions_t *s = pm_web_sessions_new();
    const pm_web_session_t *a = pm_web_session_open(s, "alice", s_stamp, 0);
    cr_assert(pm_web_session_csrf_ok(a, a->csrf));
    cr_assert_not(pm_web_session_csrf_ok(a, NULL));
    cr_assert_not(pm_web_session_csrf_ok(a, ""));
    cr_assert_not(pm_web_session_csrf_ok(a, a->token));
    pm_web_sessions_destroy(&s);
}

Test(web_session, oldest_session_goes_when_full)
{
    pm_web_sessions_t *s = pm_web_sessions_new();
    char first[PM_WEB_TOKEN_LEN + 1];
    strcpy(first, pm_web_session_open(s, "u0", s_stamp, 0)->token);
    for (int i = 1; i < PM_WEB_SESSIONS_MAX; i++)
        pm_web_session_open(s, "u", s_stamp, 1 + i / 100);
    cr_assert_not_null(pm_web_session_find(s, first, 20), "still room");
    pm_web_session_open(s, "u", s_stamp,
                        20); /* first was just used: not oldest */
    cr_assert_not_null(pm_web_session_find(s, first, 21));
    pm_web_sessions_destroy(&s);
}

Test(web_session, throttle_after_free_tries_doubling_capped)
{
    pm_web_sessions_t *s = pm_web_sessions_new();
    int64_t now = 1000;
    for (int i = 1; i < PM_WEB_FREE_TRIES; i++) {
        pm_web_throttle_fail(s, "10.0.0.1", "alice", now);
        cr_assert_eq(pm_web_throttle_wait(s, "10.0.0.1", "alice", now), 0);
    }
    pm_web_throttle_fail(s, "10.0.0.1", "alice", now);
    cr_assert_eq(pm_web_throttle_wait(s, "10.0.0.1", "alice", now), 1);
    /* the address is throttled for any user, the user from any address */
    cr_assert_eq(pm_web_throttle_wait(s, "10.0.0.1", "bob", now), 1);
    cr_assert_eq(pm_web_throttle_wait(s, "10.0.0.2", "alice", now), 1);
    cr_assert_eq(pm_web_throttle_wait(s, "10.0.0.2", "bob", now), 0);
    pm_web_throttle_fail(s, "10.0.0.1", "alice", now);
    cr_assert_eq(pm_web_throttle_wait(s, "10.0.0.1", "alice", now), 2);
    for (int i = 0; i < 30; i++)
        pm_web_throttle_fail(s, "10.0.0.1", "alice", now);
    cr_assert_eq(pm_web_throttle_wait(s, "10.0.0.1", "alice", now),
                 PM_WEB_WAIT_MAX_S);
    cr_assert_eq(
        pm_web_throttle_wait(s, "10.0.0.1", "alice", now + PM_WEB_WAIT_MAX_S),
        0);
    pm_web_throttle_ok(s, "10.0.0.1", "alice", s_stamp, now);
    pm_web_throttle_fail(s, "10.0.0.1", "alice", now);
    cr_assert_eq(pm_web_throttle_wait(s, "10.0.0.1", "alice", now), 0,
                 "a success starts the count again");
    pm_web_sessions_destroy(&s);
}

/* Someone failing as alice from anywhere locks alice out only where she
 * never logged in: the review's lockout was one wrong password every five
 * minutes, keeping the admin out for good. */
Test(web_session, a_users_failures_do_not_lock_it_out_where_it_logged_in)
{
    pm_web_sessions_t *s = pm_web_sessions_new();
    int64_t now = 1000;
    pm_web_throttle_ok(s, "10.0.0.1", "alice", s_stamp, now);
    char addr[64];
    for (int i = 0; i < 15; i++) { /* each as soon as it may */
        snprintf(addr, sizeof addr, "203.0.113.%d", i + 1);
        now += pm_web_throttle_wait(s, addr, "alice", now);
        pm_web_throttle_fail(s, addr, "alice", now);
    }
    cr_assert_gt(pm_web_throttle_wait(s, "10.0.0.2", "alice", now), 60,
                 "a network alice never logged in from waits");
    cr_assert_eq(pm_web_throttle_wait(s, "10.0.0.1", "alice", now), 0,
                 "where alice logged in before, she gets in");
    cr_assert_eq(pm_web_throttle_wait(s, "10.0.0.2", "bob", now), 0);
    /* her own network's failures still count there */
    for (int i = 0; i < PM_WEB_FREE_TRIES; i++)
        pm_web_throttle_fail(s, "10.0.0.1", "alice", now);
    cr_assert_gt(pm_web_throttle_wait(s, "10.0.0.1", "alice", now), 0);
    cr_assert_gt(pm_web_throttle_wait(s, "10.0.0.1", "bob", now), 0);
    pm_web_sessions_destroy(&s);
}

/* An IPv6 host picks its address from a whole /64: the /64 is what
 * counts; an IPv4-mapped address is its IPv4 address. */
Test(web_session, an_ipv6_64_counts_as_one_address)
{
    pm_web_sessions_t *s = pm_web_sessions_new();
    int64_t now = 1000;
    char addr[64];
    for (int i = 1; i <= PM_WEB_FREE_TRIES; i++) {
        snprintf(addr, sizeof addr, "2001:db8:1:2::%x", i);
        pm_web_throttle_fail(s, addr, "u", now);
    }
    cr_assert_gt(pm_web_throttle_wait(s, "2001:db8:1:2:ffff::1", "v", now), 0);
    cr_assert_eq(pm_web_throttle_wait(s, "2001:db8:1:3::1", "v", now), 0);
    for (int i = 0; i < PM_WEB_FREE_TRIES; i++)
        pm_web_throttle_fail(s, "::ffff:192.0.2.1", "w", now);
    cr_assert_gt(pm_web_throttle_wait(s, "192.0.2.1", "x", now), 0);
    pm_web_sessions_destroy(&s);
}

/* Password checks from pairs not known have a budget: a burst, then one a
 * second, whatever the addresses and names (each costs a good part of a
 * second of the one serving thread); a known pair is not held back. */
Test(web_session, password_checks_have_a_budget_known_pairs_do_not_wait)
{
    pm_web_sessions_t *s = pm_web_sessions_new();
    int64_t now = 1000;
    pm_web_throttle_ok(s, "10.0.0.1", "alice", s_stamp, now - 3600);
    char addr[64], user[16];
    for (int i = 0; i < PM_WEB_HASH_BURST; i++) {
        snprintf(addr, sizeof addr, "198.51.100.%d", i + 1);
        snprintf(user, sizeof user, "u%d", i);
        cr_assert_eq(pm_web_throttle_wait(s, addr, user, now), 0, "try %d", i);
        pm_web_throttle_fail(s, addr, user, now);
    }
    cr_assert_eq(pm_web_throttle_wait(s, "198.51.100.200", "v", now), 1);
    cr_assert_eq(pm_web_throttle_wait(s, "10.0.0.1", "alice", now), 0);
    cr_assert_eq(pm_web_throttle_wait(s, "198.51.100.200", "v", now + 1), 0);
    /* the wall clock stepped back an hour: a second's wait, not an hour's */
    cr_assert_eq(pm_web_throttle_wait(s, "198.51.100.200", "v", now - 3600), 1);
    pm_web_sessions_destroy(&s);
}

/* A user removed or given a new password is no longer known where it
 * logged in: a network that had its stolen password waits again. */
Test(web_session, keep_forgets_the_known_networks_of_a_user_said_no_to)
{
    pm_web_sessions_t *s = pm_web_sessions_new();
    int64_t now = 1000;
    pm_web_throttle_ok(s, "10.0.0.1", "bob", s_stamp, now);
    pm_web_throttle_ok(s, "10.0.0.1", "alice", s_stamp, now);
    for (int i = 0; i < 15; i++) {
        now += pm_web_throttle_wait(s, "203.0.113.1", "bob", now);
        pm_web_throttle_fail(s, "203.0.113.1", "bob", now);
        now += pm_web_throttle_wait(s, "203.0.113.2", "alice", now);
        pm_web_throttle_fail(s, "203.0.113.2", "alice", now);
    }
    cr_assert_eq(pm_web_throttle_wait(s, "10.0.0.1", "bob", now), 0);
    int asked = 0;
    pm_web_sessions_keep(s, s_not_bob, &asked);
    cr_assert_eq(asked, 2, "each known pair asked about");
    cr_assert_gt(pm_web_throttle_wait(s, "10.0.0.1", "bob", now), 0);
    cr_assert_eq(pm_web_throttle_wait(s, "10.0.0.1", "alice", now), 0);
    pm_web_sessions_destroy(&s);
}
