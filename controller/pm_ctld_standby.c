/* pm_ctld_standby.c - a standby follows its primary; a primary yields to a
 * newer one (see "peer controllers" in pm_ctld.h). */
#include "pm_conf.h"
#include "pm_ctl_client.h"
#include "pm_ctld_private.h"
#include "pm_log.h"
#include "pm_mem.h"
#include "pm_peerlink.h"
#include "pm_replica.h"
#include "pm_wire.h"

#include <string.h>

/* One REPLICATE answer carries at most this many revisions, or bytes of
 * them with the secrets and keys it carries (at least one revision), so
 * that it stays well inside PM_WIRE_MESSAGE_MAX; a standby far behind
 * asks again at once. */
#define S_REPLICATE_MAX 256
#define S_REPLICATE_BYTES (16u << 20)

/* ---- the primary's side ------------------------------------------------- */

void
pm_ctld_role_reply(pm_ctld_t *self, pm_ctld_reply_t *r)
{
    r->resp.standby = self->standby;
    r->resp.epoch = self->epoch;
    if (self->standby && self->primary)
        r->resp.primary = self->primary;
}

/* Whether the follower's head is a revision we have, as we have it. */
static bool
s_same_history(pm_ctld_t *self, const Pm__Request *req, uint64_t head,
               pm_ctld_reply_t *r)
{
    if (req->rev > head) {
        pm_ctld_fail(r, PM__RESPONSE__STATUS__CONFLICT,
                     "the standby is ahead of the primary (its head is "
                     "revision %llu, the primary's %llu): its history "
                     "diverged; move its store aside and start it again",
                     (unsigned long long)req->rev, (unsigned long long)head);
        return false;
    }
    Pm__Revision *mine = NULL;
    if (req->rev == 0 || pm_store_get(self->store, req->rev, &mine) != PM_OK)
        return true; /* nothing yet, or pruned here: cannot tell */
    bool same = strcmp(mine->digest, req->head_digest) == 0;
    pm__revision__free_unpacked(mine, NULL);
    if (!same)
        pm_ctld_fail(r, PM__RESPONSE__STATUS__CONFLICT,
                     "the standby's revision %llu is not the primary's: its "
                     "history diverged; move its store aside and start it "
                     "again",
                     (unsigned long long)req->rev);
    return same;
}

/* Revisions FROM to HEAD, as many as fit beside the BYTES already in. */
static void
s_add_revisions(pm_ctld_t *self, uint64_t from, uint64_t head, size_t bytes,
                pm_ctld_reply_t *r)
{
    r->history = pm_calloc(S_REPLICATE_MAX, sizeof *r->history);
    for (uint64_t n = from; n <= head && r->n_history < S_REPLICATE_MAX;) {
        Pm__Revision *rev = NULL;
        int rc = pm_store_next(self->store, n, &rev); /* over pruned ones */
        if (rc == PM_ENOTFOUND)
            break;
        if (rc != PM_OK)
            return pm_ctld_store_fail(r, rc, "reading a revision");
        if (rev->number > head) { /* a canary's, held back */
            pm__revision__free_unpacked(rev, NULL);
            break;
        }
        n = rev->number + 1;
        size_t size = pm__revision__get_packed_size(rev);
        if (r->n_history && bytes + size > S_REPLICATE_BYTES) {
            pm__revision__free_unpacked(rev, NULL);
            break;
        }
        bytes += size;
        r->history[r->n_history++] = rev;
    }
    r->resp.history = r->history;
    r->resp.n_history = r->n_history;
}

void
pm_ctld_replicate(pm_ctld_t *self, const Pm__Request *req, const char *author,
                  pm_ctld_reply_t *r)
{
    (void)author;
    uint64_t head = 0;
    int rc = pm_store_head(self->store, &head);
    if (rc != PM_OK)
        return pm_ctld_store_fail(r, rc, "reading the head");
    /* A canary push's revision is not the cluster's yet: a standby that
     * stored it without the rollout holding it back would, once promoted,
     * send it to every node. It gets it once the push passed, or the
     * revert that follows a failed one. */
    if (pm_ctld_rollout_holds(self, head))
        head--;
    r->resp.head = head;
    if (!s_same_history(self, req, head, r))
        return;
    char *why = NULL;
    if (pm_replica_refresh(&self->replica, self->store, self->clients_dir,
                           &why) != 0) {
        pm_ctld_fail(r, PM__RESPONSE__STATUS__INTERNAL, "%s", why);
        free(why);
        return;
    }
    /* the reply points into self->replica, packed before it changes */
    pm_replica_t *rep = self->replica;
    size_t bytes = 0;
    if (strcmp(rep->digest, req->replica_digest) != 0) {
        r->resp.secrets = rep->secrets;
        r->resp.n_secrets = rep->n_secrets;
        r->resp.keys = rep->keys;
        r->resp.n_keys = rep->n_keys;
        r->resp.replica_digest = rep->digest;
        bytes = rep->size;
    }
    s_add_revisions(self, req->rev + 1, head, bytes, r);
}

/* ---- set-up ------------------------------------------------------------- */

int
pm_ctld_set_peers(pm_ctld_t *self, const pm_ctld_peers_t *peers, char **why)
{
    bool primary = true;
    uint64_t epoch = 0;
    if (pm_store_role_get(self->store, &primary, &epoch) == PM_OK) {
        self->standby = !primary;
        self->epoch = epoch;
    }
    size_t n = 0;
    self->peers = pm_conf_list(peers->peers, &n);
    self->peers_text = pm_strdup(peers->peers ? peers->peers : "");
    self->follow_ms = peers->follow_ms;
    if (n == 0)
        return 0;
    self->link =
        pm_peerlink_new(peers->key, peers->server_key, peers->timeout_ms, why);
    return self->link ? 0 : -1;
}

bool
pm_ctld_is_standby(const pm_ctld_t *self)
{
    return self->standby;
}

void
pm_ctld_peers_free(pm_ctld_t *self)
{
    pm_peerlink_destroy(&self->link);
    pm_conf_list_free(&self->peers);
    free(self->peers_text);
    free(self->primary);
    free(self->peer_trouble);
    pm_replica_destroy(&self->replica);
}

zsock_t *
pm_ctld_peers_socket(pm_ctld_t *self)
{
    return self->link ? pm_peerlink_socket(self->link) : NULL;
}

/* Logs WHAT unless it is the trouble logged last (a primary down is said
 * once, not twice a second); NULL: the trouble is over. */
static void
s_trouble(pm_ctld_t *self, const char *what)
{
    if (!what) {
        if (self->peer_trouble)
            pm_info("peers: %s", self->standby ? "following again" : "ok");
        free(self->peer_trouble);
        self->peer_trouble = NULL;
        return;
    }
    if (self->peer_trouble && strcmp(self->peer_trouble, what) == 0)
        return;
    pm_warn("%s", what);
    free(self->peer_trouble);
    self->peer_trouble = pm_strdup(what);
}

int
pm_ctld_fence_check(const pm_ctld_peers_t *peers, uint64_t epoch, char **why)
{
    char **list = pm_conf_list(peers->peers, NULL);
    int ret = 0;
    for (char **p = list; *p && ret == 0; p++) {
        Pm__Request req = PM__REQUEST__INIT;
        req.op = PM__REQUEST__OP__PING;
        req.expect_rev = -1;
        Pm__Response *resp = NULL;
        char *trouble = NULL;
        pm_ctl_client_t *c = pm_ctl_client_new(
            *p, peers->key, peers->server_key, peers->timeout_ms, &trouble);
        int rc = c ? pm_ctl_client_call(c, &req, &resp, &trouble) : PM_EIO;
        if (rc != PM_OK) {
            pm_warn("peer %s did not say whether it is primary: %s", *p,
                    trouble);
        } else if (!resp->standby && resp->epoch >= epoch &&
                   resp->status == PM__RESPONSE__STATUS__OK) {
            *why = pm_asprintf(
                "refusing to act as primary: the controller at %s is primary "
                "at epoch %llu and this store is at epoch %llu (it was "
                "promoted while this one was away). To make this one its "
                "standby, move STATE_DIR/store aside and start it with "
                "standby = yes",
                *p, (unsigned long long)resp->epoch, (unsigned long long)epoch);
            ret = -1;
        }
        if (resp)
            pm__response__free_unpacked(resp, NULL);
        pm_ctl_client_destroy(&c);
        free(trouble);
    }
    pm_conf_list_free(&list);
    return ret;
}

/* ---- the standby's side ------------------------------------------------- */

/* A standby promoted by `privmta-controller --promote` (another process
 * writing the role record) stops following. */
static bool
s_promoted(pm_ctld_t *self)
{
    bool primary = false;
    uint64_t epoch = 0;
    if (pm_store_role_get(self->store, &primary, &epoch) != PM_OK || !primary)
        return false;
    pm_info("promoted: primary at epoch %llu (was following %s)",
            (unsigned long long)epoch, self->primary ? self->primary : "none");
    self->standby = false;
    self->epoch = epoch;
    self->stop = PM_CTLD_PROMOTED;
    return true;
}

static void
s_ask_primary(pm_ctld_t *self)
{
    Pm__Request req = PM__REQUEST__INIT;
    req.op = PM__REQUEST__OP__REPLICATE;
    req.expect_rev = -1;
    pm_store_head(self->store, &req.rev);
    Pm__Revision *head = NULL;
    if (req.rev && pm_store_get(self->store, req.rev, &head) == PM_OK)
        req.head_digest = head->digest;
    char *why = NULL;
    if (pm_replica_refresh(&self->replica, self->store, self->clients_dir,
                           &why) == 0)
        req.replica_digest = self->replica->digest;
    else
        free(why); /* unreadable here: ask for them whole */
    pm_peerlink_call(self->link, self->peers_text, &req);
    if (head)
        pm__revision__free_unpacked(head, NULL);
}

char *
pm_ctld_follow(pm_ctld_t *self, const Pm__Response *resp, const char *endpoint,
               uint64_t *last)
{
    if (resp->epoch < self->epoch)
        return pm_asprintf("standby: the primary at %s is at epoch %llu, "
                           "older than the %llu this standby followed: not "
                           "followed (list the newer primary in peers)",
                           endpoint, (unsigned long long)resp->epoch,
                           (unsigned long long)self->epoch);
    if (resp->epoch > self->epoch) {
        /* first, whatever fails below: a promotion of this store must
         * come out past the primary it followed, or both are primary at
         * the same epoch and neither steps down. Refused (PM_ECONFLICT)
         * when --promote wrote a newer record. */
        int rc = pm_store_role_put(self->store, false, resp->epoch);
        if (rc == PM_OK)
            self->epoch = resp->epoch;
        else if (rc != PM_ECONFLICT)
            return pm_asprintf("standby: cannot store the epoch: %s",
                               pm_strerror(rc));
    }
    /* secrets before revisions: a revision that names a DKIM key must not
     * be stored here without it (promoted, this store could not sign) */
    char *why = NULL;
    if (*resp->replica_digest &&
        pm_replica_apply(self->store, self->clients_dir, resp->secrets,
                         resp->n_secrets, resp->keys, resp->n_keys,
                         &why) != 0) {
        char *t = pm_asprintf("standby: cannot copy secrets and keys: %s", why);
        free(why);
        return t;
    }
    for (size_t i = 0; i < resp->n_history; i++) {
        int rc = pm_store_follow(self->store, resp->history[i]);
        if (rc != PM_OK)
            return pm_asprintf("standby: cannot store revision %llu: %s",
                               (unsigned long long)resp->history[i]->number,
                               pm_strerror(rc));
        *last = resp->history[i]->number;
    }
    return NULL;
}

static void
s_follow_answer(pm_ctld_t *self, int rc, Pm__Response *resp, char *endpoint,
                const char *why)
{
    char *trouble = NULL;
    uint64_t last = 0;
    if (s_promoted(self)) /* since it was asked: nothing more is followed */
        return;
    if (rc != PM_OK)
        trouble = pm_asprintf("standby: cannot reach the primary: %s", why);
    else if (resp->status == PM__RESPONSE__STATUS__NOT_PRIMARY)
        trouble =
            pm_asprintf("standby: no peer is primary (%s)", self->peers_text);
    else if (resp->status != PM__RESPONSE__STATUS__OK)
        trouble = pm_asprintf("standby: the primary at %s refused: %s",
                              endpoint, resp->error);
    else if (!resp->standby)
        trouble = pm_ctld_follow(self, resp, endpoint, &last);
    self->peer_at = zclock_mono() + self->follow_ms;
    if (!trouble && resp && resp->status == PM__RESPONSE__STATUS__OK) {
        if (!self->primary || strcmp(self->primary, endpoint) != 0) {
            pm_info("standby: following %s (epoch %llu, head revision %llu)",
                    endpoint, (unsigned long long)resp->epoch,
                    (unsigned long long)resp->head);
            free(self->primary);
            self->primary = pm_strdup(endpoint);
        }
        if (last && last < resp->head)
            self->peer_at = zclock_mono(); /* more to come */
    }
    s_trouble(self, trouble);
    free(trouble);
}

/* ---- the primary's look at its peers ------------------------------------ */

static void
s_fence_answer(pm_ctld_t *self, int rc, Pm__Response *resp, char *endpoint,
               const char *why)
{
    char *trouble = NULL;
    if (rc != PM_OK) {
        trouble = pm_asprintf("peer: %s", why);
    } else if (!resp->standby && resp->epoch > self->epoch) {
        pm_error("stepping down: the controller at %s is primary at epoch "
                 "%llu, newer than this one's %llu (it was promoted); no "
                 "more changes are taken here",
                 endpoint, (unsigned long long)resp->epoch,
                 (unsigned long long)self->epoch);
        self->stop = PM_CTLD_FENCED;
    } else if (!resp->standby) {
        trouble = pm_asprintf("peer: the controller at %s also acts as "
                              "primary at epoch %llu: promote one of them "
                              "(privmta-controller --promote) and stop the "
                              "other",
                              endpoint, (unsigned long long)resp->epoch);
    }
    s_trouble(self, trouble);
    free(trouble);
}

void
pm_ctld_peers_answer(pm_ctld_t *self)
{
    Pm__Response *resp = NULL;
    char *endpoint = NULL, *why = NULL;
    int rc = pm_peerlink_answer(self->link, &resp, &endpoint, &why);
    if (self->standby)
        s_follow_answer(self, rc, resp, endpoint, why);
    else
        s_fence_answer(self, rc, resp, endpoint, why);
    if (resp)
        pm__response__free_unpacked(resp, NULL);
    free(endpoint);
    free(why);
}

int
pm_ctld_peers_tick(pm_ctld_t *self, int wait)
{
    if (self->standby && s_promoted(self))
        return 0;
    if (!self->link)
        return self->standby && wait > 250 ? 250 : wait;
    int64_t now = zclock_mono();
    int most = self->standby ? 250 : PM_CTLD_FENCE_MS;
    if (pm_peerlink_busy(self->link)) /* its answer wakes the poll */
        return most < wait ? most : wait;
    if (now >= self->peer_at) {
        if (self->standby) {
            s_ask_primary(self);
        } else {
            Pm__Request req = PM__REQUEST__INIT;
            req.op = PM__REQUEST__OP__PING;
            req.expect_rev = -1;
            if (!self->peers[self->peer_next])
                self->peer_next = 0;
            pm_peerlink_call(self->link, self->peers[self->peer_next++], &req);
            self->peer_at = now + PM_CTLD_FENCE_MS;
        }
    }
    /* a standby looks at its role record a few times a second */
    if (pm_peerlink_busy(self->link))
        return most < wait ? most : wait;
    int64_t left = self->peer_at - now;
    if (left < most)
        most = left < 0 ? 0 : (int)left;
    return most < wait ? most : wait;
}
