/* pm_web_api.h - privmta-web's JSON API: the page's calls turned into
 * ctl requests, with login, sessions and CSRF checks in front.
 *
 * Pure of HTTP: pm_web_http parses the request (libmicrohttpd) and hands
 * over a pm_web_req_t; the answer is a status and a JSON document. Calls
 * run one at a time on the API's thread (pm_web_worker: the ctl client
 * is not thread-safe and an admin console needs no more), never on the
 * thread that serves the page's files.
 *
 *   POST /api/login      {"user","password"} -> {"user","csrf","token"}
 *                        ("token" only to a client that is not a browser:
 *                        the page has its HttpOnly cookie, and a bearer
 *                        token skips the CSRF check)
 *   POST /api/logout     -> {}
 *   GET  /api/session    -> {"user","csrf"}
 *   GET  /api/policy     -> {"rev","digest","author","message","time",
 *                            "policy","keys","common_extensions"}
 *   POST /api/policy/check {"rev","edits"[,"node"]} -> {"ok","problems",
 *                            "diff","effect"} (checked here, nothing sent)
 *   POST /api/policy     {"rev","edits","message"[,"node"]} -> {"rev",
 *                            "diff","effect"[,"unchanged"]}
 *   POST /api/rollback   {"rev","expect_rev","message"} -> as above
 *   GET  /api/nodes      -> {"head","nodes","cluster"}
 *   GET  /api/history?limit=N&before=N -> {"revisions"}
 *   GET  /api/diff?a=N&b=N -> {"diff"}
 *   GET  /api/rollout    -> {"rollout"}: the current or last rolling
 *                            restart as `privmta-ctl rollout status --json`
 *                            shows it (pm_ctl_json_rollout), null for none
 * An edit is {"key","op": "set"|"add"|"remove"|"reset","value": JSON}.
 * Errors are {"error": text, ...}: 400 bad request, 401 not logged in,
 * 403 CSRF or origin refused, 404, 409 the head moved (with "head",
 * "author" and "diff" since the page's revision), 422 invalid (with
 * "problems": [{"key","problem"}]), 429 login throttled ("retry_after"),
 * 503 no controller answered.
 */
#ifndef PM_WEB_API_H
#define PM_WEB_API_H

#include "pm_ctl_client.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

/* Bodies: a login is small; a change may carry custom signature files. */
#define PM_WEB_LOGIN_BODY_MAX (16u << 10)
#define PM_WEB_BODY_MAX (12u << 20)
#define PM_WEB_EDITS_MAX 200
/* After a controller call without an answer, calls are answered 503 at
 * once for this long: the API's one thread waits out the client's
 * timeout once, not for every request of every open page. */
#define PM_WEB_CONTROLLER_BACK_S 10
/* __Host-: the browser takes it only from this host, Secure, Path=/ and
 * without Domain, so a sibling subdomain cannot plant one that shadows
 * the admin's. */
#define PM_WEB_COOKIE "__Host-pm_session"

typedef struct {
    const char *method; /* "GET" or "POST" */
    const char *path;   /* "/api/policy" */
    const char *body;   /* POST: NUL-terminated */
    size_t body_len;
    const char *token; /* the session token, from the cookie or... */
    bool bearer;       /* ...from "Authorization: Bearer" (no CSRF) */
    const char *csrf;  /* X-CSRF-Token */
    const char *addr;  /* the client's address, for throttling */
    bool browser;      /* sent Origin or Sec-Fetch-Site: a browser's */
    const char *(*arg)(void *ctx, const char *name); /* query arguments */
    void *arg_ctx;
} pm_web_req_t;

typedef struct {
    unsigned status;
    json_t *body; /* caller decrefs */
    char *cookie; /* a Set-Cookie value to send, or NULL; caller frees */
} pm_web_reply_t;

typedef struct pm_web_api_t pm_web_api_t;

/* CLIENT (taken over) talks to the controller; USERS is the users file. */
pm_web_api_t *pm_web_api_new(pm_ctl_client_t *client, const char *users);
void pm_web_api_destroy(pm_web_api_t **self_p);

/* Tests: the clock sessions and login throttling go by (unix seconds;
 * NULL: time(NULL)), so that a slow machine cannot let a wait run out. */
void pm_web_api_set_clock(pm_web_api_t *self, int64_t (*clock)(void));

/* The most body bytes REQ may send: PM_WEB_LOGIN_BODY_MAX for a login,
 * PM_WEB_BODY_MAX with a live session, 0 without one (the request is
 * answered 401 before its body is read). */
size_t pm_web_api_body_cap(pm_web_api_t *self, const pm_web_req_t *req);

/* Answers REQ into REPLY. */
void pm_web_api_handle(pm_web_api_t *self, const pm_web_req_t *req,
                       pm_web_reply_t *reply);

#endif
