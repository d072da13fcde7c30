/* test_web_session.c - pm_web_session: sessions, CSRF tokens and login
 * throttling. */
#include <criterion/criterion.h>

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
s_not_bob(const pm_web_session_t *s, void *arg)
{
    ++*(int *)arg;
    return strcmp(s->user, "bob") != 0;
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
    pm_web_throttle_ok(s, "10.0.0.1", "alice");
    pm_web_throttle_fail(s, "10.0.0.1", "alice", now);
    cr_assert_eq(pm_web_throttle_wait(s, "10.0.0.1", "alice", now), 0,
                 "a success starts the count again");
    pm_web_sessions_destroy(&s);
}
