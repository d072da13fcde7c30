/* test_web_api.c - pm_web_api without a controller: login, sessions,
 * CSRF, throttling, body caps and malformed requests are answered before
 * anything is sent, and a controller that does not answer is a 503. (The
 * calls that reach a real controller are in tests/integration/test_web.sh.)
 */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pm_error.h"
#include "pm_keys.h"
#include "pm_web_api.h"
#include "pm_web_users.h"
#include "testdir.h"

static char s_dir[64], s_users[96];
static pm_web_api_t *s_api;

/* The API's clock, standing still unless a test moves it: each argon2id
 * check takes a good part of a second on a loaded machine. */
static int64_t s_now = 1800000000;

/* Where requests come from, and whether from a browser (Origin or
 * Sec-Fetch-Site sent). */
static const char *s_addr = "192.0.2.7";
static bool s_browser;

static int64_t
s_clock(void)
{
    return s_now;
}

static void
s_setup(void)
{
    strcpy(s_dir, "/tmp/pm_web_api_test.XXXXXX");
    cr_assert_not_null(mkdtemp(s_dir));
    char *why = NULL, key[128], server[128];
    zcert_t *cert = pm_keys_controller(s_dir, &why);
    cr_assert_not_null(cert, "%s", why ? why : "");
    zcert_destroy(&cert);
    snprintf(key, sizeof key, "%s/keys/admin.cert_secret", s_dir);
    snprintf(server, sizeof server, "%s/keys/controller.cert", s_dir);
    snprintf(s_users, sizeof s_users, "%s/users", s_dir);
    cr_assert_eq(
        pm_web_users_set(s_users, "alice", "correct horse", false, &why),
        PM_OK);
    /* port 9 on loopback: nothing listens there */
    pm_ctl_client_t *client =
        pm_ctl_client_new("tcp://127.0.0.1:9", key, server, 200, &why);
    cr_assert_not_null(client, "%s", why ? why : "");
    s_api = pm_web_api_new(client, s_users);
    pm_web_api_set_clock(s_api, s_clock);
}

static void
s_teardown(void)
{
    pm_web_api_destroy(&s_api);
    testdir_remove(s_dir);
    zsys_shutdown();
}

TestSuite(web_api, .init = s_setup, .fini = s_teardown);

/* Answers METHOD PATH with BODY (may be NULL) and the given credentials;
 * returns the status, the JSON body in *out (caller decrefs; may be NULL). */
static unsigned
s_call(const char *method, const char *path, const char *body,
       const char *token, bool bearer, const char *csrf, json_t **out,
       char **cookie)
{
    pm_web_req_t req = {.method = method,
                        .path = path,
                        .body = body,
                        .body_len = body ? strlen(body) : 0,
                        .token = token,
                        .bearer = bearer,
                        .csrf = csrf,
                        .addr = s_addr,
                        .browser = s_browser};
    pm_web_reply_t reply;
    pm_web_api_handle(s_api, &req, &reply);
    if (out)
        *out = reply.body;
    else
        json_decref(reply.body);
    if (cookie)
        *cookie = reply.cookie;
    else
        free(reply.cookie);
    return reply.status;
}

static const char *
s_str(json_t *doc, const char *key)
{
    const char *v = json_string_value(json_object_get(doc, key));
    cr_assert_not_null(v, "no \"%s\" in the answer", key);
    return v;
}

/* Logs alice in; TOKEN and CSRF get hers. */
static void
s_login(char token[64], char csrf[64])
{
    json_t *doc = NULL;
    char *cookie = NULL;
    unsigned st = s_call("POST", "/api/login",
                         "{\"user\":\"alice\",\"password\":\"correct horse\"}",
                         NULL, false, NULL, &doc, &cookie);
    cr_assert_eq(st, 200);
    snprintf(token, 64, "%s", s_str(doc, "token"));
    snprintf(csrf, 64, "%s", s_str(doc, "csrf"));
    cr_assert_str_eq(s_str(doc, "user"), "alice");
    cr_assert_not_null(cookie);
    cr_assert(strncmp(cookie, "__Host-pm_session=", 18) == 0, "%s", cookie);
    cr_assert(strstr(cookie, token), "%s", cookie);
    cr_assert(strstr(cookie, "; Path=/;"), "%s", cookie);
    cr_assert_null(strstr(cookie, "Domain"), "%s", cookie);
    cr_assert(strstr(cookie, "; Secure; HttpOnly; SameSite=Strict"), "%s",
              cookie);
    free(cookie);
    json_decref(doc);
}

Test(web_api, nothing_without_a_login)
{
    const char *paths[][2] = {
        {"GET", "/api/policy"},        {"GET", "/api/nodes"},
        {"GET", "/api/history"},       {"GET", "/api/session"},
        {"POST", "/api/policy"},       {"POST", "/api/rollback"},
        {"POST", "/api/policy/check"}, {"GET", "/api/diff"},
        {"GET", "/api/rollout"}};
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
        cr_assert_eq(s_call(paths[i][0], paths[i][1], "{}", NULL, false, NULL,
                            NULL, NULL),
                     401, "%s %s", paths[i][0], paths[i][1]);
        cr_assert_eq(s_call(paths[i][0], paths[i][1], "{}", "forged", true,
                            NULL, NULL, NULL),
                     401);
    }
    pm_web_req_t req = {.method = "POST", .path = "/api/policy"};
    cr_assert_eq(pm_web_api_body_cap(s_api, &req), 0, "no body is read");
    req.path = "/api/login";
    cr_assert_eq(pm_web_api_body_cap(s_api, &req), PM_WEB_LOGIN_BODY_MAX);
}

Test(web_api, wrong_password_then_throttled)
{
    const char *wrong = "{\"user\":\"alice\",\"password\":\"not it at all\"}";
    json_t *doc = NULL;
    for (int i = 0; i < 5; i++)
        cr_assert_eq(
            s_call("POST", "/api/login", wrong, NULL, false, NULL, NULL, NULL),
            401);
    /* the right password now waits too: guessing gets no faster */
    cr_assert_eq(s_call("POST", "/api/login",
                        "{\"user\":\"alice\",\"password\":\"correct horse\"}",
                        NULL, false, NULL, &doc, NULL),
                 429);
    cr_assert_eq(json_integer_value(json_object_get(doc, "retry_after")), 1);
    json_decref(doc);
    s_now += 1; /* the wait is over: the right password gets in */
    cr_assert_eq(s_call("POST", "/api/login",
                        "{\"user\":\"alice\",\"password\":\"correct horse\"}",
                        NULL, false, NULL, NULL, NULL),
                 200);
    cr_assert_eq(
        s_call("POST", "/api/login", "not json", NULL, false, NULL, NULL, NULL),
        400);
}

Test(web_api, csrf_token_needed_with_the_cookie_not_with_bearer)
{
    char token[64], csrf[64];
    s_login(token, csrf);
    json_t *doc = NULL;
    const char *bad_edit =
        "{\"rev\":0,\"edits\":[{\"key\":\"a\",\"op\":\"frob\","
        "\"value\":1}]}";
    cr_assert_eq(
        s_call("POST", "/api/policy", bad_edit, token, false, NULL, &doc, NULL),
        403);
    cr_assert(strstr(s_str(doc, "error"), "X-CSRF-Token"));
    json_decref(doc);
    cr_assert_eq(s_call("POST", "/api/policy", bad_edit, token, false, token,
                        NULL, NULL),
                 403, "the session token is not the CSRF token");
    /* past the CSRF check, the malformed edit is refused before any call */
    cr_assert_eq(
        s_call("POST", "/api/policy", bad_edit, token, false, csrf, &doc, NULL),
        400);
    cr_assert(strstr(s_str(doc, "error"), "edit 1 (a): op is set, add"), "%s",
              s_str(doc, "error"));
    json_decref(doc);
    cr_assert_eq(
        s_call("POST", "/api/policy", bad_edit, token, true, NULL, NULL, NULL),
        400, "a script's bearer token needs no CSRF token");
    cr_assert_eq(s_call("POST", "/api/policy", "{\"rev\":0,\"edits\":[]}",
                        token, true, NULL, NULL, NULL),
                 400);
    cr_assert_eq(
        s_call("POST", "/api/policy", "[1]", token, true, NULL, NULL, NULL),
        400);
    pm_web_req_t req = {
        .method = "POST", .path = "/api/policy", .token = token};
    cr_assert_eq(pm_web_api_body_cap(s_api, &req), PM_WEB_BODY_MAX);
}

/* The page has its HttpOnly cookie; a bearer token, which skips the CSRF
 * check, is only for scripts: a browser's login does not get it, so that
 * a script that runs in the page cannot take one. */
Test(web_api, a_browsers_login_gets_no_bearer_token)
{
    s_browser = true;
    json_t *doc = NULL;
    char *cookie = NULL;
    cr_assert_eq(s_call("POST", "/api/login",
                        "{\"user\":\"alice\",\"password\":\"correct horse\"}",
                        NULL, false, NULL, &doc, &cookie),
                 200);
    cr_assert_null(json_object_get(doc, "token"));
    cr_assert_not_null(json_object_get(doc, "csrf"));
    cr_assert_not_null(cookie, "the page logs in by its cookie");
    free(cookie);
    json_decref(doc);
}

Test(web_api, a_silent_controller_is_503)
{
    char token[64], csrf[64];
    s_login(token, csrf);
    json_t *doc = NULL;
    cr_assert_eq(
        s_call("GET", "/api/policy", NULL, token, false, NULL, &doc, NULL),
        503);
    cr_assert(strstr(s_str(doc, "error"), "did not answer"), "%s",
              s_str(doc, "error"));
    cr_assert_null(strstr(s_str(doc, "error"), "asked again"));
    json_decref(doc);
    /* for a while the answer comes at once, saying when it tries again */
    s_now += PM_WEB_CONTROLLER_BACK_S - 1;
    cr_assert_eq(
        s_call("GET", "/api/nodes", NULL, token, false, NULL, &doc, NULL), 503);
    cr_assert(strstr(s_str(doc, "error"), "did not answer"), "%s",
              s_str(doc, "error"));
    cr_assert(strstr(s_str(doc, "error"), "(asked again in 1 s)"), "%s",
              s_str(doc, "error"));
    json_decref(doc);
    s_now += 1; /* then it is asked again */
    cr_assert_eq(
        s_call("GET", "/api/policy", NULL, token, false, NULL, &doc, NULL),
        503);
    cr_assert_null(strstr(s_str(doc, "error"), "asked again"), "%s",
                   s_str(doc, "error"));
    json_decref(doc);
    cr_assert_eq(
        s_call("GET", "/api/session", NULL, token, false, NULL, &doc, NULL),
        200);
    cr_assert_str_eq(s_str(doc, "csrf"), csrf);
    json_decref(doc);
}

/* Logs USER in with PASSWORD; its token into TOKEN. */
static void
s_login_as(const char *user, const char *password, char token[64])
{
    char *body = NULL;
    cr_assert_geq(asprintf(&body, "{\"user\":\"%s\",\"password\":\"%s\"}", user,
                           password),
                  0);
    json_t *doc = NULL;
    cr_assert_eq(
        s_call("POST", "/api/login", body, NULL, false, NULL, &doc, NULL), 200,
        "%s", user);
    snprintf(token, 64, "%s", s_str(doc, "token"));
    json_decref(doc);
    free(body);
}

/* A user removed, or given a new password, loses the sessions it had:
 * a stolen cookie must not outlive the remedy (it did, up to 12 hours). */
Test(web_api, a_user_removed_or_given_a_new_password_is_logged_out)
{
    char *why = NULL;
    cr_assert_eq(pm_web_users_set(s_users, "bob", "bobs password", false, &why),
                 PM_OK);
    char alice[64], csrf[64], bob[64];
    s_login(alice, csrf);
    s_login_as("bob", "bobs password", bob);
    /* web user passwd alice: her session ends, bob's stays */
    cr_assert_eq(
        pm_web_users_set(s_users, "alice", "a new password", true, &why),
        PM_OK);
    cr_assert_eq(
        s_call("GET", "/api/session", NULL, alice, false, NULL, NULL, NULL),
        401);
    cr_assert_eq(
        s_call("GET", "/api/session", NULL, bob, true, NULL, NULL, NULL), 200);
    /* web user remove bob: his ends too */
    cr_assert_eq(pm_web_users_remove(s_users, "bob", &why), PM_OK);
    cr_assert_eq(
        s_call("GET", "/api/session", NULL, bob, true, NULL, NULL, NULL), 401);
    /* a new login with the new password lives on while nothing changes */
    s_login_as("alice", "a new password", alice);
    cr_assert_eq(
        s_call("GET", "/api/session", NULL, alice, true, NULL, NULL, NULL),
        200);
    free(why);
}

/* The network alice logged in from stops being known when her password
 * changes, before anything else is asked: a stolen password must not
 * keep the per-user wait off there. */
Test(web_api, a_new_password_forgets_where_the_old_one_logged_in)
{
    char token[64], csrf[64], *why = NULL;
    s_login(token, csrf); /* known on 192.0.2.7 */
    const char *wrong = "{\"user\":\"alice\",\"password\":\"not it at all\"}";
    s_addr = "198.51.100.1";
    json_t *doc = NULL;
    for (int failed = 0; failed < 7;) { /* each as soon as it may */
        unsigned st =
            s_call("POST", "/api/login", wrong, NULL, false, NULL, &doc, NULL);
        if (st == 429)
            s_now += json_integer_value(json_object_get(doc, "retry_after"));
        failed += st == 401;
        json_decref(doc);
    } /* alice's name now waits, from anywhere not known */
    s_addr = "192.0.2.7";
    cr_assert_eq(
        pm_web_users_set(s_users, "alice", "a new password", true, &why),
        PM_OK);
    cr_assert_eq(s_call("POST", "/api/login",
                        "{\"user\":\"alice\",\"password\":\"a new password\"}",
                        NULL, false, NULL, NULL, NULL),
                 429, "still known by the old password");
    free(why);
}

Test(web_api, logout_ends_the_session)
{
    char token[64], csrf[64];
    char *cookie = NULL;
    s_login(token, csrf);
    cr_assert_eq(
        s_call("POST", "/api/logout", "{}", token, false, csrf, NULL, &cookie),
        200);
    cr_assert(strstr(cookie, "Max-Age=0"), "%s", cookie);
    free(cookie);
    cr_assert_eq(
        s_call("GET", "/api/session", NULL, token, false, NULL, NULL, NULL),
        401);
    cr_assert_eq(
        s_call("GET", "/api/nowhere", NULL, token, false, NULL, NULL, NULL),
        401);
}
