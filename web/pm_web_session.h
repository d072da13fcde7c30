/* pm_web_session.h - who is logged in to the web console, and how often
 * a login may be tried.
 *
 * A session is a random 256-bit token (base64url, 43 characters) that the
 * browser holds in a cookie (Secure; HttpOnly; SameSite=Strict) and a
 * script sends as "Authorization: Bearer TOKEN", with a second random
 * value, the CSRF token, that the page must echo in X-CSRF-Token on every
 * change made with the cookie: a page of another site can make the
 * browser send the cookie, never read the token. Sessions end after
 * PM_WEB_IDLE_S without a request, PM_WEB_LIFE_S after login, at logout,
 * when the user is removed or given a new password (pm_web_sessions_keep),
 * and when privmta-web stops (they live in its memory only).
 *
 * Login throttling: each client network (an IPv4 address, an IPv6 /64)
 * and each user name counts its failures; from the PM_WEB_FREE_TRIES-th
 * on, the next try must wait 1, 2, 4... seconds (at most
 * PM_WEB_WAIT_MAX_S). A success clears both, and makes the pair known: a
 * user is not held back by its name's failures on a network it logged in
 * from before with the password it has now (else one wrong password
 * every few minutes from anywhere would keep the admin out for good;
 * known pairs live in memory, so until the first login after a restart
 * it can again). Password checks (argon2id, a good
 * part of a second of the API's one thread) for pairs not known have a
 * budget: PM_WEB_HASH_BURST at once, then one a second (a try the budget
 * has no room for is refused before its check, and counts nothing). The
 * tables are bounded: the oldest entries go first.
 *
 * Not thread-safe: used from the API's one thread (pm_web_worker).
 */
#ifndef PM_WEB_SESSION_H
#define PM_WEB_SESSION_H

#include "pm_web_users.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PM_WEB_TOKEN_LEN 43 /* 32 bytes, base64url without padding */
#define PM_WEB_IDLE_S (30 * 60)
#define PM_WEB_LIFE_S (12 * 3600)
#define PM_WEB_SESSIONS_MAX 1024
#define PM_WEB_FREE_TRIES 5
#define PM_WEB_WAIT_MAX_S 300
#define PM_WEB_THROTTLE_MAX 4096
#define PM_WEB_KNOWN_MAX 256
#define PM_WEB_HASH_BURST 10

typedef struct {
    char token[PM_WEB_TOKEN_LEN + 1];
    char csrf[PM_WEB_TOKEN_LEN + 1];
    char user[PM_WEB_USER_MAX + 1];
    unsigned char stamp[PM_WEB_STAMP_LEN]; /* the user's entry at login */
    int64_t created, seen;                 /* unix seconds */
} pm_web_session_t;

typedef struct pm_web_sessions_t pm_web_sessions_t;

pm_web_sessions_t *pm_web_sessions_new(void);
void pm_web_sessions_destroy(pm_web_sessions_t **self_p);

/* A new session for USER, whose entry had STAMP when the password was
 * checked, at NOW (unix seconds); the oldest one goes when
 * PM_WEB_SESSIONS_MAX are open. Owned by SELF until it ends. */
const pm_web_session_t *
pm_web_session_open(pm_web_sessions_t *self, const char *user,
                    const unsigned char stamp[PM_WEB_STAMP_LEN], int64_t now);

/* The users file changed: every session, and every known pair (below),
 * for which STILL says no (the user is gone, or its entry has another
 * stamp: a new password) ends. Returns how many sessions ended. */
typedef bool(pm_web_user_still_fn)(const char *user, const unsigned char *stamp,
                                   void *arg);
size_t pm_web_sessions_keep(pm_web_sessions_t *self,
                            pm_web_user_still_fn *still, void *arg);

/* The live session of TOKEN (NULL: none, or it expired), its idle clock
 * restarted. Tokens are compared in constant time. */
const pm_web_session_t *pm_web_session_find(pm_web_sessions_t *self,
                                            const char *token, int64_t now);

/* Ends TOKEN's session, if any. */
void pm_web_session_close(pm_web_sessions_t *self, const char *token);

/* Whether HEADER (may be NULL) is S's CSRF token, in constant time. */
bool pm_web_session_csrf_ok(const pm_web_session_t *s, const char *header);

/* Seconds before ADDR may try a login for USER again (0: now). */
int64_t pm_web_throttle_wait(pm_web_sessions_t *self, const char *addr,
                             const char *user, int64_t now);

/* A failed login of USER from ADDR at NOW; a successful one. Both count
 * a password check against the budget (a known pair's excepted). */
void pm_web_throttle_fail(pm_web_sessions_t *self, const char *addr,
                          const char *user, int64_t now);
void pm_web_throttle_ok(pm_web_sessions_t *self, const char *addr,
                        const char *user,
                        const unsigned char stamp[PM_WEB_STAMP_LEN],
                        int64_t now);

#endif
