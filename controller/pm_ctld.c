/* pm_ctld.c - the controller's API: one table of handlers, one loop. Who
 * may call it, and what, is pm_ctld_access.c. */
#include "pm_ctld_private.h"
#include "pm_ctlzap.h"
#include "pm_log.h"
#include "pm_mem.h"
#include "pm_policy.h"
#include "pm_check.h"
#include "pm_dkim.h"
#include "pm_fleet_metrics.h"
#include "pm_hash.h"
#include "pm_keys.h"
#include "pm_rollout.h"
#include "pm_text.h"
#include "pm_value.h"
#include "pm_wire.h"

#include <ctype.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

/* Messages queued per connection on the API socket, each way: a client
 * sends one request at a time and waits for its answer, and either may be
 * PM_WIRE_MESSAGE_MAX bytes (czmq's default of 1000 would let a client
 * that asks without reading hold gigabytes of answers here). */
#define S_CTL_HWM 4

typedef void (*s_handler_fn)(pm_ctld_t *self, const Pm__Request *req,
                             const char *author, pm_ctld_reply_t *r);

/* TEXT (taken), or a copy cut to what one string of an answer may hold:
 * a sentence quoting what an admin sent (a 4 KiB node name) must not make
 * the whole answer one the client's wire check refuses. */
static char *
s_fit_string(char *text)
{
    if (strlen(text) <= PM_WIRE_STRING_MAX)
        return text;
    char *cut = pm_text_escape(text, PM_WIRE_STRING_MAX);
    free(text);
    return cut;
}

void
pm_ctld_fail(pm_ctld_reply_t *r, Pm__Response__Status status, const char *fmt,
             ...)
{
    va_list ap;
    va_start(ap, fmt);
    free(r->error);
    r->error = s_fit_string(pm_vasprintf(fmt, ap));
    va_end(ap);
    r->resp.status = status;
    r->resp.error = r->error;
}

/* R's problems become the lines of its diag (the array points into it). */
static void
s_problems_from_diag(pm_ctld_reply_t *r)
{
    size_t n = pm_diag_count(r->diag);
    free(r->resp.problems);
    r->resp.problems = pm_calloc(n, sizeof(char *));
    r->resp.n_problems = n;
    for (size_t i = 0; i < n; i++)
        r->resp.problems[i] = (char *)pm_diag_line(r->diag, i);
}

void
pm_ctld_warn(pm_ctld_reply_t *r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *line = s_fit_string(pm_vasprintf(fmt, ap));
    va_end(ap);
    pm_diag_add_raw(r->diag, line);
    free(line);
    s_problems_from_diag(r);
}

void
pm_ctld_store_fail(pm_ctld_reply_t *r, int rc, const char *what)
{
    pm_ctld_fail(r,
                 rc == PM_ENOTFOUND ? PM__RESPONSE__STATUS__NOT_FOUND
                                    : PM__RESPONSE__STATUS__INTERNAL,
                 "%s: %s", what, pm_strerror(rc));
}

/* A missing revision is told apart: one above the head was never made;
 * one below it was pruned by retention, which the admin should hear
 * rather than a bare "not found". */
void
pm_ctld_revision_fail(pm_ctld_t *self, pm_ctld_reply_t *r, int rc, uint64_t rev)
{
    uint64_t head = 0;
    if (rc != PM_ENOTFOUND || pm_store_head(self->store, &head) != PM_OK)
        return pm_ctld_store_fail(r, rc, "reading a revision");
    unsigned long long n = (unsigned long long)rev,
                       h = (unsigned long long)head;
    if (rev > head || rev == 0)
        pm_ctld_fail(r, PM__RESPONSE__STATUS__NOT_FOUND,
                     "revision %llu does not exist (the head is %llu)", n, h);
    else
        pm_ctld_fail(
            r, PM__RESPONSE__STATUS__NOT_FOUND,
            "revision %llu is no longer kept: the history keeps the "
            "newest history_keep revisions and every revision a node "
            "still runs ('policy history' lists them; the head is %llu)",
            n, h);
}

/* The head policy, or the defaults before the first push. */
static Pm__Policy *
s_head_policy(pm_ctld_t *self, uint64_t *head, pm_ctld_reply_t *r)
{
    int rc = pm_store_head(self->store, head);
    if (rc != PM_OK) {
        pm_ctld_store_fail(r, rc, "reading the head");
        return NULL;
    }
    if (*head == 0)
        return pm_policy_new();
    Pm__Revision *rev = NULL;
    rc = pm_store_get(self->store, *head, &rev);
    if (rc != PM_OK) {
        pm_ctld_store_fail(r, rc, "reading the head revision");
        return NULL;
    }
    Pm__Policy *p = rev->policy ? pm_policy_dup(rev->policy) : pm_policy_new();
    pm__revision__free_unpacked(rev, NULL);
    return p;
}

static void
s_problems(pm_ctld_reply_t *r, Pm__Response__Status status)
{
    size_t n = pm_diag_count(r->diag);
    s_problems_from_diag(r);
    pm_ctld_fail(r, status, "policy rejected: %zu problem%s", n,
                 n == 1 ? "" : "s");
}

/* Metadata of revision N for a reply (the policy itself is left out). */
static void
s_reply_revision(pm_ctld_t *self, uint64_t n, pm_ctld_reply_t *r)
{
    Pm__Revision *rev = NULL;
    int rc = pm_store_get(self->store, n, &rev);
    if (rc != PM_OK) {
        pm_ctld_store_fail(r, rc, "reading the new revision");
        return;
    }
    pm_policy_free(&rev->policy);
    r->revision = rev;
    r->resp.revision = rev;
    r->resp.head = n;
}

void
pm_ctld_commit(pm_ctld_t *self, const Pm__Policy *policy,
               const Pm__Request *req, const char *author, uint64_t rollback_of,
               const Pm__Rollout *held, pm_ctld_reply_t *r)
{
    uint64_t head = 0, rev = 0;
    char digest[65];
    pm_policy_digest(policy, digest);
    int rc = pm_store_head(self->store, &head);
    if (rc == PM_OK && req->expect_rev >= 0 &&
        (uint64_t)req->expect_rev != head)
        rc = PM_ECONFLICT;
    Pm__Revision *cur = NULL;
    if (rc == PM_OK && head && pm_store_get(self->store, head, &cur) != PM_OK)
        cur = NULL;
    if (cur && !rollback_of && strcmp(cur->digest, digest) == 0) {
        pm__revision__free_unpacked(cur, NULL);
        r->resp.unchanged = true;
        s_reply_revision(self, head, r);
        return;
    }
    /* against the defaults the first time: what every node ran before */
    Pm__Policy *dflt = cur ? NULL : pm_policy_new();
    pm_effect_t effect =
        pm_policy_diff(cur ? cur->policy : dflt, policy, NULL, NULL);
    pm_policy_free(&dflt);
    if (cur)
        pm__revision__free_unpacked(cur, NULL);
    char *message = *req->message || !rollback_of
                        ? pm_strdup(req->message)
                        : pm_asprintf("rollback to revision %llu",
                                      (unsigned long long)rollback_of);
    pm_commit_t info = {author, message, req->expect_rev, rollback_of, digest,
                        0,      held};
    if (rc == PM_OK)
        rc = pm_store_commit(self->store, policy, &info, &rev);
    free(message);
    if (rc == PM_ECONFLICT)
        pm_ctld_fail(r, PM__RESPONSE__STATUS__CONFLICT,
                     "the head is revision %llu, not %lld: someone committed "
                     "since you looked; re-read and retry",
                     (unsigned long long)head, (long long)req->expect_rev);
    else if (rc != PM_OK)
        pm_ctld_store_fail(r, rc, "committing");
    else {
        s_reply_revision(self, rev, r);
        r->resp.effect = (char *)pm_effect_name(effect);
        if (self->fleet && !held)
            pm_fleet_publish(self->fleet, rev);
    }
}

/* The enrolled nodes (free with pm_store_nodes_free): the fleet's list,
 * or the store's when this controller serves no agents. */
void
pm_ctld_enrolled(pm_ctld_t *self, Pm__NodeStatus ***nodes, size_t *n)
{
    *nodes = NULL;
    *n = 0;
    if (self->fleet)
        pm_fleet_nodes(self->fleet, nodes, n);
    else if (pm_store_node_list(self->store, nodes, n) != PM_OK)
        *n = 0;
}

/* Overrides are found by node name, exactly: those of a name no node is
 * enrolled under (a typo, "MX1" for "mx1", a node not enrolled yet) apply
 * to nothing. The policy is still valid (the node may be enrolled later),
 * so this is a warning, sent with the accepted answer: the problems of an
 * OK response, which privmta-ctl prints. */
static void
s_override_warnings(pm_ctld_t *self, const Pm__Policy *p, pm_ctld_reply_t *r)
{
    if (!p || !p->n_overrides || r->resp.status != PM__RESPONSE__STATUS__OK)
        return;
    Pm__NodeStatus **nodes = NULL;
    size_t n = 0;
    pm_ctld_enrolled(self, &nodes, &n);
    pm_value_index_t *enrolled = pm_value_index_new(true);
    pm_value_index_t *warned = pm_value_index_new(false);
    for (size_t i = 0; i < n; i++)
        pm_value_index_put(enrolled, nodes[i]->name, nodes[i]->name);
    for (size_t i = 0; i < p->n_overrides; i++) {
        const char *node = p->overrides[i]->node;
        const char *near = pm_value_index_get(enrolled, node);
        if ((near && strcmp(near, node) == 0) ||
            pm_value_index_get(warned, node))
            continue;
        pm_value_index_put(warned, node, r);
        pm_ctld_warn(r,
                     "nodes.%s: no enrolled node is named '%s'%s%s%s: its "
                     "overrides apply to no node",
                     node, node,
                     near ? " (node names are case-sensitive; did you "
                            "mean '"
                          : "",
                     near ? near : "", near ? "'?)" : "");
    }
    pm_value_index_destroy(&warned);
    pm_value_index_destroy(&enrolled);
    pm_store_nodes_free(&nodes, n);
}

/* Every DKIM domain must have its private key in the store: the policy
 * only names it, so that show, history and diff never contain keys. */
static size_t
s_check_secrets(pm_ctld_t *self, const Pm__Policy *p, pm_diag_t *diag)
{
    size_t problems = 0;
    for (size_t i = 0; i < p->n_dkim_domains; i++) {
        uint8_t *data = NULL;
        size_t len = 0;
        const Pm__DkimDomain *d = p->dkim_domains[i];
        if (pm_store_secret_get(self->store, d->key, &data, &len) == PM_OK) {
            free(data);
            continue;
        }
        pm_diag_add(diag, 0, "dkim.domains",
                    "%s: no private key '%s' is stored; add it with "
                    "privmta-ctl dkim add %s --selector %s --key FILE",
                    d->domain, d->key, d->domain, d->selector);
        problems++;
    }
    return problems;
}

bool
pm_ctld_validate(pm_ctld_t *self, const Pm__Policy *policy, const char *origin,
                 pm_ctld_reply_t *r)
{
    pm_diag_set_origin(r->diag, origin);
    if (pm_policy_validate(policy, r->diag) +
            s_check_secrets(self, policy, r->diag) ==
        0)
        return true;
    s_problems(r, PM__RESPONSE__STATUS__INVALID);
    return false;
}

static void
s_handle_push(pm_ctld_t *self, const Pm__Request *req, const char *author,
              pm_ctld_reply_t *r)
{
    if (!pm_ctld_validate(self, req->policy, "pushed policy", r))
        return;
    if (req->rollout_spec && req->rollout_spec->n_canary)
        pm_ctld_rollout_canary(self, req, author, r);
    else
        pm_ctld_commit(self, req->policy, req, author, 0, NULL, r);
    s_override_warnings(self, req->policy, r);
}

static void
s_handle_set(pm_ctld_t *self, const Pm__Request *req, const char *author,
             pm_ctld_reply_t *r)
{
    uint64_t head = 0;
    Pm__Policy *p = s_head_policy(self, &head, r);
    if (!p)
        return;
    pm_diag_set_origin(r->diag, "policy set");
    if (pm_policy_edit(&p, req->node, req->edits, req->n_edits, r->diag) > 0 ||
        s_check_secrets(self, p, r->diag) > 0)
        s_problems(r, PM__RESPONSE__STATUS__INVALID);
    else
        pm_ctld_commit(self, p, req, author, 0, NULL, r);
    s_override_warnings(self, p, r);
    pm_policy_free(&p);
}

static void
s_handle_rollback(pm_ctld_t *self, const Pm__Request *req, const char *author,
                  pm_ctld_reply_t *r)
{
    Pm__Revision *old = NULL;
    int rc = pm_store_get(self->store, req->rev, &old);
    if (rc != PM_OK)
        return pm_ctld_revision_fail(self, r, rc, req->rev);
    /* Revisions were valid when stored; checking again guards against a
     * rule that became stricter since. */
    if (pm_policy_validate(old->policy, r->diag) > 0)
        s_problems(r, PM__RESPONSE__STATUS__INVALID);
    else
        pm_ctld_commit(self, old->policy, req, author, req->rev, NULL, r);
    s_override_warnings(self, old->policy, r);
    pm__revision__free_unpacked(old, NULL);
}

static void
s_handle_show(pm_ctld_t *self, const Pm__Request *req, const char *author,
              pm_ctld_reply_t *r)
{
    (void)author;
    uint64_t head = 0;
    int rc = pm_store_head(self->store, &head);
    if (rc != PM_OK)
        return pm_ctld_store_fail(r, rc, "reading the head");
    r->resp.head = head;
    if (head == 0 && req->rev == 0)
        return; /* nothing pushed yet: no revision, the CLI shows defaults */
    rc = pm_store_get(self->store, req->rev, &r->revision);
    if (rc != PM_OK)
        return pm_ctld_revision_fail(self, r, rc, req->rev);
    /* show --node is computed by the CLI from the whole revision, so that
     * it can also say which keys the node overrides. */
    r->resp.revision = r->revision;
    s_override_warnings(self, r->revision->policy, r);
}

static void
s_handle_history(pm_ctld_t *self, const Pm__Request *req, const char *author,
                 pm_ctld_reply_t *r)
{
    (void)author;
    int rc =
        pm_store_history(self->store, req->before, req->limit ? req->limit : 20,
                         &r->history, &r->n_history);
    if (rc != PM_OK)
        return pm_ctld_store_fail(r, rc, "reading the history");
    pm_store_head(self->store, &r->resp.head);
    r->resp.history = r->history;
    r->resp.n_history = r->n_history;
}

static void
s_diff_add(pm_ctld_reply_t *r, const char *key, const char *a, const char *b)
{
    Pm__DiffEntry *e = pm_malloc(sizeof *e);
    pm__diff_entry__init(e);
    e->key = pm_strdup(key);
    e->before =
        s_fit_string(pm_strdup(a ? a : "")); /* a long list: 256 networks */
    e->after = s_fit_string(pm_strdup(b ? b : ""));
    r->diff = pm_realloc(r->diff, (r->resp.n_diff + 1) * sizeof *r->diff);
    r->diff[r->resp.n_diff++] = e;
    r->resp.diff = r->diff;
}

static void
s_diff_one(const char *name, const pm_key_t *key, const char *before,
           const char *after, void *arg)
{
    (void)key;
    s_diff_add(arg, name, before, after);
}

static void
s_handle_diff(pm_ctld_t *self, const Pm__Request *req, const char *author,
              pm_ctld_reply_t *r)
{
    (void)author;
    Pm__Revision *a = NULL, *b = NULL;
    int rc = pm_store_get(self->store, req->rev, &a);
    if (rc == PM_OK)
        rc = pm_store_get(self->store, req->rev_b, &b);
    if (rc != PM_OK) {
        pm_ctld_revision_fail(self, r, rc, a ? req->rev_b : req->rev);
        goto out;
    }
    pm_policy_diff(a->policy, b->policy, s_diff_one, r);
out:
    if (a)
        pm__revision__free_unpacked(a, NULL);
    if (b)
        pm__revision__free_unpacked(b, NULL);
}

static void
s_handle_ping(pm_ctld_t *self, const Pm__Request *req, const char *author,
              pm_ctld_reply_t *r)
{
    (void)req;
    (void)author;
    int rc = pm_store_head(self->store, &r->resp.head);
    if (rc != PM_OK)
        pm_ctld_store_fail(r, rc, "reading the head");
}

static void
s_handle_nodes(pm_ctld_t *self, const Pm__Request *req, const char *author,
               pm_ctld_reply_t *r)
{
    (void)req;
    (void)author;
    if (self->fleet) {
        pm_fleet_nodes(self->fleet, &r->nodes, &r->n_nodes);
        r->members = pm_fleet_members(self->fleet);
        r->resp.duties = r->members->duties;
        r->resp.n_duties = r->members->n_duties;
        r->resp.cooldowns = r->members->cooldowns;
        r->resp.n_cooldowns = r->members->n_cooldowns;
    } else {
        int rc = pm_store_node_list(self->store, &r->nodes, &r->n_nodes);
        if (rc != PM_OK)
            return pm_ctld_store_fail(r, rc, "reading node status");
    }
    pm_store_head(self->store, &r->resp.head);
    r->resp.nodes = r->nodes;
    r->resp.n_nodes = r->n_nodes;
}

/* The ZAP handler (pm_ctlzap) reads clients/ again when its mtime
 * changed; after an enrolment made here, have it read the directory now,
 * whatever the file system's mtime resolution. Returns its status: 0, or
 * -1 when it could not bind (no handshake would be checked). */
static int
s_auth_reload(pm_ctld_t *self)
{
    if (!self->auth)
        return 0;
    zstr_sendx(self->auth, "CURVE", self->clients_dir, NULL);
    return zsock_wait(self->auth) == 0 ? 0 : -1;
}

static void
s_handle_node_add(pm_ctld_t *self, const Pm__Request *req, const char *author,
                  pm_ctld_reply_t *r)
{
    (void)author;
    char *why = pm_check_selector(req->node);
    if (why) {
        pm_ctld_fail(r, PM__RESPONSE__STATUS__INVALID, "node name '%s': %s",
                     req->node, why);
        free(why);
        return;
    }
    if (!self->fleet)
        return pm_ctld_fail(r, PM__RESPONSE__STATUS__BAD_REQUEST,
                            "this controller serves no agents");
    if (pm_fleet_enroll(self->fleet, req->node, req->public_key, &why) != 0) {
        pm_ctld_fail(r, PM__RESPONSE__STATUS__INVALID, "%s", why);
        free(why);
        return;
    }
    s_auth_reload(self);
}

static void
s_handle_node_remove(pm_ctld_t *self, const Pm__Request *req,
                     const char *author, pm_ctld_reply_t *r)
{
    (void)author;
    char *why = NULL;
    if (!self->fleet)
        return pm_ctld_fail(r, PM__RESPONSE__STATUS__BAD_REQUEST,
                            "this controller serves no agents");
    if (pm_fleet_withdraw(self->fleet, req->node, &why) != 0) {
        pm_ctld_fail(r, PM__RESPONSE__STATUS__NOT_FOUND, "%s", why);
        free(why);
        return;
    }
    s_auth_reload(self);
}

/* Applies one `policy set` style edit to the head and commits it. */
static void
s_edit_and_commit(pm_ctld_t *self, const Pm__Request *req, const char *author,
                  Pm__Edit *edit, pm_ctld_reply_t *r)
{
    uint64_t head = 0;
    Pm__Policy *p = s_head_policy(self, &head, r);
    if (!p)
        return;
    if (pm_policy_edit(&p, NULL, &edit, 1, r->diag) > 0)
        s_problems(r, PM__RESPONSE__STATUS__INVALID);
    else
        pm_ctld_commit(self, p, req, author, 0, NULL, r);
    pm_policy_free(&p);
}

/* dkim add: the key goes to the secret store, the policy names it. The
 * key is checked (and its DNS record made) by libcrypto, never logged. */
static void
s_handle_dkim_add(pm_ctld_t *self, const Pm__Request *req, const char *author,
                  pm_ctld_reply_t *r)
{
    char *why = pm_check_domain(req->domain);
    if (!why)
        why = pm_check_selector(req->selector);
    char *pem =
        pm_strndup((const char *)req->private_key.data, req->private_key.len);
    char *txt = why ? NULL : pm_dkim_txt_record(pem, &why);
    if (!txt) {
        pm_ctld_fail(r, PM__RESPONSE__STATUS__INVALID, "dkim add %s: %s",
                     req->domain, why ? why : "bad key");
        goto out;
    }
    /* the key's own digest in its id: a new key for the same selector is a
     * new revision, so every node gets it */
    char digest[65];
    pm_sha256_hex(req->private_key.data, req->private_key.len, digest);
    char *id =
        pm_asprintf("%s.%s.%.12s.pem", req->domain, req->selector, digest);
    for (char *c = id; *c; c++)
        *c = (char)tolower((unsigned char)*c);
    int rc = pm_store_secret_put(self->store, id, req->private_key.data,
                                 req->private_key.len);
    if (rc != PM_OK) {
        pm_ctld_store_fail(r, rc, "storing the key");
    } else {
        Pm__Edit e = PM__EDIT__INIT;
        char *value = pm_asprintf("{domain: %s, selector: %s, key: %s}",
                                  req->domain, req->selector, id);
        e.key = (char *)"dkim.domains";
        e.op = PM__EDIT__OP__ADD;
        e.value = value;
        s_edit_and_commit(self, req, author, &e, r);
        free(value);
        free(r->txt);
        r->txt = txt;
        r->resp.txt_record = txt;
        txt = NULL;
    }
    free(id);
out:
    free(txt);
    free(why);
    explicit_bzero(pem, strlen(pem));
    free(pem);
}

static void
s_handle_dkim_remove(pm_ctld_t *self, const Pm__Request *req,
                     const char *author, pm_ctld_reply_t *r)
{
    /* the key stays in the store: a rollback to a revision that signed
     * with it must still find it */
    Pm__Edit e = PM__EDIT__INIT;
    e.key = (char *)"dkim.domains";
    e.op = PM__EDIT__OP__REMOVE;
    e.value = req->domain;
    s_edit_and_commit(self, req, author, &e, r);
}

/* WHY and POLICY_TEST that pm_ctld_why_start and pm_ctld_test_start did
 * not take (pm_ctld_handle answered a standby already): both wait for
 * nodes, so without a fleet there is none to ask; with one, as many wait
 * as are kept. */
static void
s_handle_waiting(pm_ctld_t *self, const Pm__Request *req, const char *author,
                 pm_ctld_reply_t *r)
{
    (void)author;
    if (!self->fleet)
        pm_ctld_fail(r, PM__RESPONSE__STATUS__INTERNAL,
                     "this controller serves no nodes");
    else if (req->op == PM__REQUEST__OP__WHY)
        pm_ctld_why_busy(r);
    else
        pm_ctld_test_busy(r);
}

/* Ops marked `policy` change the policy: refused while a rolling restart
 * is running or paused, as nodes restarting would see it change under
 * them and a failure could not be told from a bad policy. */
static const struct {
    Pm__Request__Op op;
    const char *name;
    s_handler_fn fn;
    bool policy;
} s_handlers[] = {
    {PM__REQUEST__OP__PUSH, "push", s_handle_push, true},
    {PM__REQUEST__OP__SET, "set", s_handle_set, true},
    {PM__REQUEST__OP__SHOW, "show", s_handle_show, false},
    {PM__REQUEST__OP__HISTORY, "history", s_handle_history, false},
    {PM__REQUEST__OP__DIFF, "diff", s_handle_diff, false},
    {PM__REQUEST__OP__ROLLBACK, "rollback", s_handle_rollback, true},
    {PM__REQUEST__OP__PING, "ping", s_handle_ping, false},
    {PM__REQUEST__OP__NODES, "nodes", s_handle_nodes, false},
    {PM__REQUEST__OP__NODE_ADD, "node add", s_handle_node_add, false},
    {PM__REQUEST__OP__NODE_REMOVE, "node remove", s_handle_node_remove, false},
    {PM__REQUEST__OP__DKIM_ADD, "dkim add", s_handle_dkim_add, true},
    {PM__REQUEST__OP__DKIM_REMOVE, "dkim remove", s_handle_dkim_remove, true},
    {PM__REQUEST__OP__ROLLOUT_START, "rollout start", pm_ctld_rollout_start,
     false},
    {PM__REQUEST__OP__ROLLOUT_STATUS, "rollout status", pm_ctld_rollout_status,
     false},
    {PM__REQUEST__OP__ROLLOUT_PAUSE, "rollout pause", pm_ctld_rollout_step,
     false},
    {PM__REQUEST__OP__ROLLOUT_RESUME, "rollout resume", pm_ctld_rollout_step,
     false},
    {PM__REQUEST__OP__ROLLOUT_ABORT, "rollout abort", pm_ctld_rollout_step,
     false},
    {PM__REQUEST__OP__REPLICATE, "replicate", pm_ctld_replicate, false},
    {PM__REQUEST__OP__WHY, "why", s_handle_waiting, false},
    {PM__REQUEST__OP__POLICY_TEST, "policy test", s_handle_waiting, false},
    {PM__REQUEST__OP__SIGNATURES_CHECK, "signatures check",
     pm_ctld_signatures_check, false},
};

pm_ctld_reply_t
pm_ctld_reply_new(void)
{
    pm_ctld_reply_t r = {.diag = pm_diag_new("policy")};
    pm__response__init(&r.resp);
    return r;
}

void
pm_ctld_reply_clear(pm_ctld_reply_t *r)
{
    if (r->revision)
        pm__revision__free_unpacked(r->revision, NULL);
    pm_store_history_free(&r->history, r->n_history);
    pm_store_nodes_free(&r->nodes, r->n_nodes);
    if (r->members)
        pm__publication__free_unpacked(r->members, NULL);
    if (r->rollout)
        pm__rollout__free_unpacked(r->rollout, NULL);
    for (size_t i = 0; i < r->resp.n_diff; i++)
        pm__diff_entry__free_unpacked(r->diff[i], NULL);
    free(r->diff);
    free(r->resp.problems);
    pm_diag_destroy(&r->diag);
    free(r->error);
    free(r->txt);
}

void
pm_ctld_send(pm_ctld_t *self, zframe_t **route, const Pm__Response *resp)
{
    size_t len = 0;
    uint8_t *out = pm_wire_pack(&resp->base, &len);
    zmsg_t *msg = zmsg_new();
    zmsg_append(msg, route);
    zmsg_addmem(msg, "", 0);
    zmsg_addmem(msg, out, len);
    zmsg_send(&msg, self->router);
    free(out);
}

/* One line per admin request: what, by whom, and when refused, why (the
 * first of the problems too: "policy rejected: 1 problem" alone leaves
 * the log's reader guessing). AUTHOR's user part, what the client says,
 * is escaped already (s_author). */
static void
s_log_request(const char *name, const char *author, const Pm__Response *resp)
{
    if (resp->status == PM__RESPONSE__STATUS__OK)
        pm_info("%s by %s: ok", name, author);
    else if (resp->n_problems) {
        /* a problem quotes what the client sent: escaped, one line */
        char *first = pm_text_escape(resp->problems[0], 300);
        pm_info("%s by %s: refused: %s: %s%s", name, author, resp->error, first,
                resp->n_problems > 1 ? "; ..." : "");
        free(first);
    } else
        pm_info("%s by %s: refused: %s", name, author, resp->error);
}

uint8_t *
pm_ctld_handle(pm_ctld_t *self, const Pm__Request *req, const char *author,
               size_t *len)
{
    pm_ctld_reply_t r = pm_ctld_reply_new();
    const char *name = NULL;
    for (size_t i = 0; i < sizeof s_handlers / sizeof s_handlers[0]; i++) {
        if (s_handlers[i].op != req->op)
            continue;
        name = s_handlers[i].name;
        if (self->standby && req->op != PM__REQUEST__OP__PING) {
            pm_ctld_fail(&r, PM__RESPONSE__STATUS__NOT_PRIMARY,
                         "this controller is a standby (epoch %llu) "
                         "following %s; send changes to the primary, or "
                         "promote this one with privmta-controller --promote",
                         (unsigned long long)self->epoch,
                         self->primary ? self->primary : self->peers_text);
        } else if (s_handlers[i].policy && pm_rollout_active(self->rollout)) {
            char *busy = pm_rollout_busy(self->rollout);
            pm_ctld_fail(&r, PM__RESPONSE__STATUS__CONFLICT, "%s", busy);
            free(busy);
        } else {
            s_handlers[i].fn(self, req, author, &r);
        }
    }
    pm_ctld_role_reply(self, &r);
    if (!name)
        pm_ctld_fail(&r, PM__RESPONSE__STATUS__BAD_REQUEST, "unknown request");
    else if (req->op != PM__REQUEST__OP__PING &&
             req->op != PM__REQUEST__OP__NODES &&
             req->op != PM__REQUEST__OP__REPLICATE &&
             req->op != PM__REQUEST__OP__ROLLOUT_STATUS)
        s_log_request(name, author, &r.resp);
    uint8_t *buf = pm_wire_pack(&r.resp.base, len);
    pm_ctld_reply_clear(&r);
    return buf;
}

/* ---- the socket --------------------------------------------------------- */

static void
s_string_destroy(void **item)
{
    free(*item);
    *item = NULL;
}

pm_ctld_t *
pm_ctld_new(pm_store_t *store, const char *endpoint, zcert_t *cert,
            const char *clients_dir, char **why)
{
    pm_ctld_t *self = pm_calloc(1, sizeof *self);
    self->store = store;
    pm_ctld_rollout_load(self);
    if (!clients_dir)
        return self;
    self->clients_dir = pm_strdup(clients_dir);
    self->admins = zhashx_new();
    zhashx_set_destructor(self->admins, s_string_destroy);
    /* the ZAP handler must run before the socket binds, or the first
     * handshakes are not checked at all */
    self->auth = zactor_new(pm_ctlzap, NULL);
    if (s_auth_reload(self) != 0) {
        *why = pm_strdup("cannot start the ZAP handler (another one runs "
                         "in this process?)");
        pm_ctld_destroy(&self);
        return NULL;
    }
    self->router = zsock_new(ZMQ_ROUTER);
    zcert_apply(cert, self->router);
    zsock_set_curve_server(self->router, 1);
    zsock_set_zap_domain(self->router, PM_CTLZAP_DOMAIN_API);
    zsock_set_maxmsgsize(self->router, PM_WIRE_MESSAGE_MAX);
    zsock_set_rcvhwm(self->router, S_CTL_HWM);
    zsock_set_sndhwm(self->router, S_CTL_HWM);
    zsock_set_linger(self->router, 0);
    if (zsock_bind(self->router, "%s", endpoint) < 0) {
        *why = pm_asprintf("cannot listen on %s: %s", endpoint,
                           zmq_strerror(zmq_errno()));
        pm_ctld_destroy(&self);
    }
    return self;
}

void
pm_ctld_destroy(pm_ctld_t **self_p)
{
    pm_ctld_t *self = *self_p;
    if (!self)
        return;
    zsock_destroy(&self->router);
    zactor_destroy(&self->auth);
    zhashx_destroy(&self->admins);
    pm_ctld_peers_free(self);
    pm_ctld_why_free(self);
    pm_ctld_test_free(self);
    if (self->rollout)
        pm__rollout__free_unpacked(self->rollout, NULL);
    free(self->clients_dir);
    free(self);
    *self_p = NULL;
}

/* The enrolled key's name (from its certificate as it is now) identifies
 * the author; the user name the client sends is informational only, and
 * escaped: it goes into the log line of each request and into the
 * revision, which the store checks again (cut through a UTF-8 sequence,
 * the commit would be refused). */
static char *
s_author(const char *name, const Pm__Request *req)
{
    if (!*req->user)
        return pm_strdup(name);
    char *user = pm_text_escape(req->user, 64);
    char *author = pm_asprintf("%s (%s)", name, user);
    free(user);
    return author;
}

static uint8_t *
s_refusal(const char *error, size_t *len)
{
    Pm__Response no = PM__RESPONSE__INIT;
    no.status = PM__RESPONSE__STATUS__BAD_REQUEST;
    no.error = (char *)error;
    return pm_wire_pack(&no.base, len);
}

/* The packed reply to the request BODY: who sent it is checked before the
 * request is decoded. */
static uint8_t *
s_answer(pm_ctld_t *self, zframe_t **id, zframe_t *body, size_t *len)
{
    Pm__Request *req = NULL;
    char *name = NULL, *why = NULL;
    uint8_t *out = NULL;
    const char *role = pm_ctld_client_role(self, body, &name), *no = NULL;
    if (!role) {
        out = s_refusal("this key is not enrolled as an admin, web or "
                        "controller client",
                        len);
    } else if (pm_wire_unpack_request(zframe_data(body), zframe_size(body),
                                      &req, &why) != PM_OK) {
        pm_warn("malformed request dropped: %s", why);
        out = s_refusal(why, len);
    } else if ((no = pm_ctld_op_refused(role, req))) {
        pm_warn("request refused: %s (key %s)", no, name);
        out = s_refusal(no, len);
        pm__request__free_unpacked(req, NULL);
    } else if (pm_ctld_why_start(self, id, req)) {
        pm__request__free_unpacked(req, NULL); /* answered later */
    } else {
        char *author = s_author(name, req);
        if (!pm_ctld_test_start(self, id, req, author))
            out = pm_ctld_handle(self, req, author, len);
        free(author);
        pm__request__free_unpacked(req, NULL);
    }
    free(name);
    free(why);
    return out;
}

static void
s_serve_one(pm_ctld_t *self)
{
    zmsg_t *msg = zmsg_recv(self->router);
    if (!msg)
        return;
    zframe_t *id = zmsg_pop(msg), *empty = zmsg_pop(msg);
    zframe_t *body = zmsg_pop(msg);
    size_t len = 0;
    uint8_t *out = NULL;
    if (!id || !empty || !body || zmsg_size(msg) != 0) {
        pm_warn("malformed request dropped: bad framing");
        out = s_refusal("malformed request", &len);
    } else {
        out = s_answer(self, &id, body, &len);
    }
    if (id && empty && out) {
        zmsg_t *reply = zmsg_new();
        zmsg_append(reply, &id);
        zmsg_append(reply, &empty);
        zmsg_addmem(reply, out, len);
        zmsg_send(&reply, self->router);
    }
    free(out);
    zframe_destroy(&id);
    zframe_destroy(&empty);
    zframe_destroy(&body);
    zmsg_destroy(&msg);
}

void
pm_ctld_set_fleet(pm_ctld_t *self, pm_fleet_t *fleet)
{
    self->fleet = fleet;
    pm_ctld_rollout_hold(self); /* a canary push stays one */
}

void
pm_ctld_set_metrics(pm_ctld_t *self, pm_metrics_server_t *server)
{
    self->metrics = server;
}

/* Once a second: scrapes read a copy, never the fleet itself. */
static int
s_metrics_tick(pm_ctld_t *self, int wait)
{
    if (!self->metrics || !self->fleet)
        return wait;
    int64_t now = zclock_mono();
    if (now >= self->metrics_at) {
        size_t len = 0;
        char *text = pm_fleet_metrics_text(self->fleet, &len);
        pm_metrics_server_set(self->metrics, text, len);
        free(text);
        self->metrics_at = now + PM_CTLD_METRICS_MS;
    }
    int64_t left = self->metrics_at - now;
    return left < wait ? (int)left : wait;
}

int
pm_ctld_run(pm_ctld_t *self)
{
    zsock_t *agents = self->fleet ? pm_fleet_socket(self->fleet) : NULL;
    zsock_t *peers = pm_ctld_peers_socket(self);
    zpoller_t *poller = zpoller_new(self->router, NULL);
    if (agents)
        zpoller_add(poller, agents);
    if (peers)
        zpoller_add(poller, peers);
    self->stop = PM_CTLD_STOPPED;
    while (!zsys_interrupted && self->stop == PM_CTLD_STOPPED) {
        int wait = self->fleet ? pm_fleet_tick(self->fleet) : 1000;
        pm_ctld_rollout_tick(self, false);
        if (pm_rollout_ticking(self->rollout) && wait > PM_CTLD_ROLLOUT_TICK_MS)
            wait = PM_CTLD_ROLLOUT_TICK_MS;
        wait = s_metrics_tick(self, wait);
        wait = pm_ctld_peers_tick(self, wait);
        wait = pm_ctld_why_tick(self, wait);
        wait = pm_ctld_test_tick(self, wait);
        if (self->stop != PM_CTLD_STOPPED)
            break;
        void *which = zpoller_wait(poller, wait);
        if (which == self->router)
            s_serve_one(self);
        else if (which && which == agents)
            pm_fleet_handle(self->fleet);
        else if (which && which == peers)
            pm_ctld_peers_answer(self);
        else if (zpoller_terminated(poller))
            break;
    }
    zpoller_destroy(&poller);
    return self->stop;
}
