/* pm_web_session.c - sessions and login throttling (see pm_web_session.h). */
#include "pm_web_session.h"

#include "pm_mem.h"

#include <arpa/inet.h>
#include <sodium.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_NET_MAX (INET6_ADDRSTRLEN + 4) /* an address, or a "/64" */

typedef struct {
    char key[96]; /* "a:NET" or "u:USER" */
    unsigned fails;
    int64_t last, until;
} s_throttle_t;

/* A user that logged in from a network: its own failures do not hold it
 * back there. Only a right password makes one, so no flood evicts them. */
typedef struct {
    char user[PM_WEB_USER_MAX + 1];
    char net[S_NET_MAX];
    unsigned char stamp[PM_WEB_STAMP_LEN]; /* the entry it logged in with */
    int64_t last;
} s_known_t;

struct pm_web_sessions_t {
    pm_web_session_t *sessions;
    size_t n_sessions;
    s_throttle_t *throttle;
    size_t n_throttle;
    s_known_t *known;
    size_t n_known;
    int64_t hash_tat; /* the password checks' budget: when the last one
                         spent would be paid off, at one a second */
};

pm_web_sessions_t *
pm_web_sessions_new(void)
{
    if (sodium_init() < 0)
        abort();
    pm_web_sessions_t *self = pm_calloc(1, sizeof *self);
    self->sessions = pm_calloc(PM_WEB_SESSIONS_MAX, sizeof *self->sessions);
    self->throttle = pm_calloc(PM_WEB_THROTTLE_MAX, sizeof *self->throttle);
    self->known = pm_calloc(PM_WEB_KNOWN_MAX, sizeof *self->known);
    return self;
}

void
pm_web_sessions_destroy(pm_web_sessions_t **self_p)
{
    pm_web_sessions_t *self = *self_p;
    if (!self)
        return;
    sodium_memzero(self->sessions,
                   PM_WEB_SESSIONS_MAX * sizeof *self->sessions);
    free(self->sessions);
    free(self->throttle);
    free(self->known);
    free(self);
    *self_p = NULL;
}

static void
s_random_token(char out[PM_WEB_TOKEN_LEN + 1])
{
    unsigned char bin[32];
    randombytes_buf(bin, sizeof bin);
    sodium_bin2base64(out, PM_WEB_TOKEN_LEN + 1, bin, sizeof bin,
                      sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    sodium_memzero(bin, sizeof bin);
}

static void
s_drop(pm_web_sessions_t *self, size_t i)
{
    self->sessions[i] = self->sessions[--self->n_sessions];
    sodium_memzero(&self->sessions[self->n_sessions], sizeof self->sessions[0]);
}

static bool
s_expired(const pm_web_session_t *s, int64_t now)
{
    return now - s->seen > PM_WEB_IDLE_S || now - s->created > PM_WEB_LIFE_S;
}

const pm_web_session_t *
pm_web_session_open(pm_web_sessions_t *self, const char *user,
                    const unsigned char stamp[PM_WEB_STAMP_LEN], int64_t now)
{
    for (size_t i = self->n_sessions; i-- > 0;)
        if (s_expired(&self->sessions[i], now))
            s_drop(self, i);
    if (self->n_sessions == PM_WEB_SESSIONS_MAX) {
        size_t oldest = 0;
        for (size_t i = 1; i < self->n_sessions; i++)
            if (self->sessions[i].seen < self->sessions[oldest].seen)
                oldest = i;
        s_drop(self, oldest);
    }
    pm_web_session_t *s = &self->sessions[self->n_sessions++];
    s_random_token(s->token);
    s_random_token(s->csrf);
    snprintf(s->user, sizeof s->user, "%s", user);
    memcpy(s->stamp, stamp, sizeof s->stamp);
    s->created = s->seen = now;
    return s;
}

size_t
pm_web_sessions_keep(pm_web_sessions_t *self, pm_web_user_still_fn *still,
                     void *arg)
{
    size_t ended = 0;
    for (size_t i = self->n_sessions; i-- > 0;)
        if (!still(self->sessions[i].user, self->sessions[i].stamp, arg)) {
            s_drop(self, i);
            ended++;
        }
    for (size_t i = self->n_known; i-- > 0;)
        if (!still(self->known[i].user, self->known[i].stamp, arg))
            self->known[i] = self->known[--self->n_known];
    return ended;
}

static bool
s_token_eq(const char *a, const char *b)
{
    return b && strlen(b) == PM_WEB_TOKEN_LEN &&
           sodium_memcmp(a, b, PM_WEB_TOKEN_LEN) == 0;
}

const pm_web_session_t *
pm_web_session_find(pm_web_sessions_t *self, const char *token, int64_t now)
{
    for (size_t i = 0; i < self->n_sessions; i++) {
        pm_web_session_t *s = &self->sessions[i];
        if (!s_token_eq(s->token, token))
            continue;
        if (s_expired(s, now)) {
            s_drop(self, i);
            return NULL;
        }
        s->seen = now;
        return s;
    }
    return NULL;
}

void
pm_web_session_close(pm_web_sessions_t *self, const char *token)
{
    for (size_t i = 0; i < self->n_sessions; i++)
        if (s_token_eq(self->sessions[i].token, token)) {
            s_drop(self, i);
            return;
        }
}

bool
pm_web_session_csrf_ok(const pm_web_session_t *s, const char *header)
{
    return s_token_eq(s->csrf, header);
}

/* ---- login throttling --------------------------------------------------- */

/* The key of ADDR's network: an IPv6 address stands for its /64 (one
 * host is given a whole /64 to pick from), an IPv4-mapped one for its
 * IPv4 address; anything else as it is. */
static void
s_net(const char *addr, char *out, size_t size)
{
    unsigned char a[16];
    if (addr && inet_pton(AF_INET6, addr, a) == 1) {
        static const unsigned char mapped[12] = {[10] = 0xff, [11] = 0xff};
        char text[INET6_ADDRSTRLEN];
        if (memcmp(a, mapped, sizeof mapped) == 0) {
            inet_ntop(AF_INET, a + 12, text, sizeof text);
            snprintf(out, size, "%s", text);
            return;
        }
        memset(a + 8, 0, 8);
        inet_ntop(AF_INET6, a, text, sizeof text);
        snprintf(out, size, "%s/64", text);
        return;
    }
    snprintf(out, size, "%s", addr ? addr : "");
}

/* The entry for KIND:WHAT, made (taking the least recently used slot when
 * the table is full) when MAKE. Failures make entries at most two a
 * second past the burst (the password-check budget), so a full table's
 * oldest entries have long stopped making anyone wait. */
static s_throttle_t *
s_entry(pm_web_sessions_t *self, char kind, const char *what, bool make)
{
    char key[sizeof self->throttle[0].key];
    snprintf(key, sizeof key, "%c:%s", kind, what ? what : "");
    size_t lru = 0;
    for (size_t i = 0; i < self->n_throttle; i++) {
        if (strcmp(self->throttle[i].key, key) == 0)
            return &self->throttle[i];
        if (self->throttle[i].last < self->throttle[lru].last)
            lru = i;
    }
    if (!make)
        return NULL;
    s_throttle_t *t = self->n_throttle < PM_WEB_THROTTLE_MAX
                          ? &self->throttle[self->n_throttle++]
                          : &self->throttle[lru];
    memset(t, 0, sizeof *t);
    memcpy(t->key, key, sizeof key);
    return t;
}

/* The slot of USER from NET among the known pairs, or NULL. */
static s_known_t *
s_known(pm_web_sessions_t *self, const char *user, const char *net)
{
    for (size_t i = 0; i < self->n_known; i++)
        if (strcmp(self->known[i].user, user) == 0 &&
            strcmp(self->known[i].net, net) == 0)
            return &self->known[i];
    return NULL;
}

/* When the budget's last check is paid off, seen from NOW: never more
 * than a full burst ahead, so that a wall clock stepped back does not
 * refuse every login for as long as the step. */
static int64_t
s_budget_tat(const pm_web_sessions_t *self, int64_t now)
{
    int64_t most = now + PM_WEB_HASH_BURST;
    return self->hash_tat < now    ? now
           : self->hash_tat > most ? most
                                   : self->hash_tat;
}

/* Seconds until the hash budget has room again (0: now). */
static int64_t
s_budget_wait(const pm_web_sessions_t *self, int64_t now)
{
    int64_t room = now + PM_WEB_HASH_BURST - 1, tat = s_budget_tat(self, now);
    return tat > room ? tat - room : 0;
}

static void
s_budget_spend(pm_web_sessions_t *self, int64_t now)
{
    self->hash_tat = s_budget_tat(self, now) + 1;
}

int64_t
pm_web_throttle_wait(pm_web_sessions_t *self, const char *addr,
                     const char *user, int64_t now)
{
    char net[S_NET_MAX];
    s_net(addr, net, sizeof net);
    bool known = user && s_known(self, user, net);
    /* a user's own failures do not lock it out of where it logged in
     * before, nor does the hash budget: else anyone could keep the admin
     * out with one wrong password every few minutes */
    s_throttle_t *t[] = {s_entry(self, 'a', net, false),
                         known ? NULL : s_entry(self, 'u', user, false)};
    int64_t wait = known ? 0 : s_budget_wait(self, now);
    for (size_t i = 0; i < 2; i++)
        if (t[i] && t[i]->until - now > wait)
            wait = t[i]->until - now;
    return wait;
}

void
pm_web_throttle_fail(pm_web_sessions_t *self, const char *addr,
                     const char *user, int64_t now)
{
    char net[S_NET_MAX];
    s_net(addr, net, sizeof net);
    if (!user || !s_known(self, user, net))
        s_budget_spend(self, now);
    s_throttle_t *t[] = {s_entry(self, 'a', net, true),
                         s_entry(self, 'u', user, true)};
    for (size_t i = 0; i < 2; i++) {
        /* a quiet hour forgives */
        if (now - t[i]->last > 3600)
            t[i]->fails = 0;
        t[i]->fails++;
        t[i]->last = now;
        if (t[i]->fails >= PM_WEB_FREE_TRIES) {
            unsigned shift = t[i]->fails - PM_WEB_FREE_TRIES;
            int64_t wait = shift >= 9 ? PM_WEB_WAIT_MAX_S : (int64_t)1 << shift;
            t[i]->until =
                now + (wait > PM_WEB_WAIT_MAX_S ? PM_WEB_WAIT_MAX_S : wait);
        }
    }
}

void
pm_web_throttle_ok(pm_web_sessions_t *self, const char *addr, const char *user,
                   const unsigned char stamp[PM_WEB_STAMP_LEN], int64_t now)
{
    char net[S_NET_MAX];
    s_net(addr, net, sizeof net);
    s_known_t *k = s_known(self, user, net);
    if (!k) {
        s_budget_spend(self, now);
        size_t lru = 0;
        for (size_t i = 1; i < self->n_known; i++)
            if (self->known[i].last < self->known[lru].last)
                lru = i;
        k = self->n_known < PM_WEB_KNOWN_MAX ? &self->known[self->n_known++]
                                             : &self->known[lru];
        snprintf(k->user, sizeof k->user, "%s", user);
        snprintf(k->net, sizeof k->net, "%s", net);
    }
    memcpy(k->stamp, stamp, sizeof k->stamp);
    k->last = now;
    s_throttle_t *t[] = {s_entry(self, 'a', net, false),
                         s_entry(self, 'u', user, false)};
    for (size_t i = 0; i < 2; i++)
        if (t[i])
            memset(t[i], 0, sizeof *t[i]), t[i]->key[0] = '\0';
}
