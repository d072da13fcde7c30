/* pm_web_api.c - the web console's JSON API (see pm_web_api.h). */
#include "pm_web_api.h"

#include "pm_ctl_json.h"
#include "pm_diag.h"
#include "pm_error.h"
#include "pm_file.h"
#include "pm_log.h"
#include "pm_mem.h"
#include "pm_policy.h"
#include "pm_text.h"
#include "pm_web_session.h"
#include "pm_web_users.h"

#include <inttypes.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct pm_web_api_t {
    pm_ctl_client_t *client;
    char *users;
    pm_file_ident_t users_id; /* the users file as sessions were checked */
    pm_web_sessions_t *sessions;
    int64_t (*clock)(void);  /* unix seconds */
    int64_t controller_back; /* the controller is not asked before */
    char *controller_why;    /* why it did not answer, the last time */
};

static int64_t
s_wall(void)
{
    return (int64_t)time(NULL);
}

pm_web_api_t *
pm_web_api_new(pm_ctl_client_t *client, const char *users)
{
    pm_web_api_t *self = pm_calloc(1, sizeof *self);
    self->client = client;
    self->users = pm_strdup(users);
    pm_file_ident(users, &self->users_id);
    self->sessions = pm_web_sessions_new();
    self->clock = s_wall;
    return self;
}

void
pm_web_api_set_clock(pm_web_api_t *self, int64_t (*clock)(void))
{
    self->clock = clock ? clock : s_wall;
}

void
pm_web_api_destroy(pm_web_api_t **self_p)
{
    pm_web_api_t *self = *self_p;
    if (!self)
        return;
    pm_ctl_client_destroy(&self->client);
    pm_web_sessions_destroy(&self->sessions);
    free(self->controller_why);
    free(self->users);
    free(self);
    *self_p = NULL;
}

static void
s_reply(pm_web_reply_t *reply, unsigned status, json_t *body)
{
    json_decref(reply->body);
    reply->status = status;
    reply->body = body ? body : json_object();
}

static void s_error(pm_web_reply_t *reply, unsigned status, const char *fmt,
                    ...) __attribute__((format(printf, 3, 4)));

static void
s_error(pm_web_reply_t *reply, unsigned status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *text = pm_vasprintf(fmt, ap);
    va_end(ap);
    s_reply(reply, status, json_pack("{s:s}", "error", text));
    free(text);
}

/* The users file as read once: names and stamps. */
typedef struct {
    char **names;
    unsigned char (*stamps)[PM_WEB_STAMP_LEN];
    size_t n;
} s_users_t;

static void
s_users_add(const char *name, const unsigned char *stamp, void *arg)
{
    s_users_t *u = arg;
    u->names = pm_realloc(u->names, (u->n + 1) * sizeof *u->names);
    u->stamps = pm_realloc(u->stamps, (u->n + 1) * sizeof *u->stamps);
    u->names[u->n] = pm_strdup(name);
    memcpy(u->stamps[u->n++], stamp, PM_WEB_STAMP_LEN);
}

/* Whether USER still has the entry (STAMP) it logged in with. */
static bool
s_still_user(const char *user, const unsigned char *stamp, void *arg)
{
    const s_users_t *u = arg;
    for (size_t i = 0; i < u->n; i++)
        if (strcmp(u->names[i], user) == 0)
            return sodium_memcmp(u->stamps[i], stamp, PM_WEB_STAMP_LEN) == 0;
    return false;
}

/* When the users file changed (web user remove / passwd), the sessions
 * of a user gone or given a new password end, and the networks it was
 * known on are forgotten: a stolen password must not outlive the remedy.
 * A file that cannot be read keeps nothing (and says why). */
static void
s_users_recheck(pm_web_api_t *self)
{
    pm_file_ident_t id;
    pm_file_ident(self->users, &id);
    if (pm_file_ident_same(&id, &self->users_id))
        return;
    self->users_id = id;
    s_users_t u = {0};
    char *why = NULL;
    int rc = pm_web_users_each(self->users, s_users_add, &u, &why);
    bool readable = rc == PM_OK || rc == PM_ENOTFOUND; /* none: no users */
    if (!readable)
        pm_error("users file: %s: every session ends", why);
    s_users_t none = {0};
    size_t ended = pm_web_sessions_keep(self->sessions, s_still_user,
                                        readable ? &u : &none);
    if (ended)
        pm_info("users file changed: %zu session%s ended", ended,
                ended == 1 ? "" : "s");
    for (size_t i = 0; i < u.n; i++)
        free(u.names[i]);
    free(u.names);
    free(u.stamps);
    free(why);
}

static const pm_web_session_t *
s_session(pm_web_api_t *self, const pm_web_req_t *req)
{
    if (req->token)
        s_users_recheck(self);
    return req->token
               ? pm_web_session_find(self->sessions, req->token, self->clock())
               : NULL;
}

/* ---- talking to the controller ------------------------------------------ */

static unsigned
s_http_status(Pm__Response__Status status)
{
    switch (status) {
    case PM__RESPONSE__STATUS__OK:
        return 200;
    case PM__RESPONSE__STATUS__INVALID:
        return 422;
    case PM__RESPONSE__STATUS__CONFLICT:
        return 409;
    case PM__RESPONSE__STATUS__NOT_FOUND:
        return 404;
    case PM__RESPONSE__STATUS__BAD_REQUEST:
        return 400;
    case PM__RESPONSE__STATUS__NOT_PRIMARY:
        return 503;
    default:
        return 500;
    }
}

/* A problem line from the controller ("ORIGIN:LINE: KEY: problem") as
 * {"key", "problem"}: the key is the first ": "-separated part that names
 * a policy key (or a per-node override, nodes.NODE.KEY). */
static json_t *
s_problem_line(const char *line)
{
    for (const char *p = line; p && *p;) {
        const char *end = strstr(p, ": ");
        if (!end)
            break;
        char *part = pm_strndup(p, (size_t)(end - p));
        bool key = pm_policy_key(part) || strncmp(part, "nodes.", 6) == 0;
        json_t *out =
            key ? json_pack("{s:s, s:s}", "key", part, "problem", end + 2)
                : NULL;
        free(part);
        if (out)
            return out;
        p = end + 2;
    }
    return json_pack("{s:n, s:s}", "key", "problem", line);
}

/* Sends REQ (USER as the author's user): on an answer with status OK,
 * returns it (caller frees); otherwise fills REPLY and returns NULL. */
static Pm__Response *
s_call(pm_web_api_t *self, Pm__Request *req, const char *user,
       pm_web_reply_t *reply)
{
    Pm__Response *resp = NULL;
    char *why = NULL;
    req->user = (char *)(user ? user : "");
    int64_t now = self->clock();
    if (now < self->controller_back) {
        /* one thread answers every API call: a controller that is down must not
         * hold every request (a page polls) for the client's timeout */
        s_error(reply, 503,
                "the controller did not answer: %s (asked again in %" PRId64
                " s)",
                self->controller_why, self->controller_back - now);
        return NULL;
    }
    int rc = pm_ctl_client_call(self->client, req, &resp, &why);
    if (rc != PM_OK) {
        free(self->controller_why);
        self->controller_why = pm_strdup(why ? why : pm_strerror(rc));
        /* from when the call gave up: it may have waited long */
        self->controller_back = self->clock() + PM_WEB_CONTROLLER_BACK_S;
        pm_warn("controller: %s (not asked again for %d s)",
                self->controller_why, PM_WEB_CONTROLLER_BACK_S);
        s_error(reply, 503, "the controller did not answer: %s",
                self->controller_why);
        free(why);
        return NULL;
    }
    free(why);
    if (resp->status == PM__RESPONSE__STATUS__OK)
        return resp;
    json_t *problems = json_array();
    for (size_t i = 0; i < resp->n_problems; i++)
        json_array_append_new(problems, s_problem_line(resp->problems[i]));
    const char *error = *resp->error ? resp->error : "refused";
    if (resp->status == PM__RESPONSE__STATUS__NOT_PRIMARY)
        error = "no primary controller answered (a standby did)";
    s_reply(reply, s_http_status(resp->status),
            json_pack("{s:s, s:o}", "error", error, "problems", problems));
    pm__response__free_unpacked(resp, NULL);
    return NULL;
}

/* The revision REV (0: the head) with its policy; a cluster with no
 * revision yet gets the defaults as revision 0. */
static Pm__Response *
s_show(pm_web_api_t *self, uint64_t rev, const char *user,
       pm_web_reply_t *reply)
{
    Pm__Request req = PM__REQUEST__INIT;
    req.op = PM__REQUEST__OP__SHOW;
    req.rev = rev;
    req.expect_rev = -1;
    return s_call(self, &req, user, reply);
}

/* A question with nothing but OP to ask (NODES, ROLLOUT_STATUS): as
 * s_call. */
static Pm__Response *
s_ask(pm_web_api_t *self, Pm__Request__Op op, const char *user,
      pm_web_reply_t *reply)
{
    Pm__Request req = PM__REQUEST__INIT;
    req.op = op;
    req.expect_rev = -1;
    return s_call(self, &req, user, reply);
}

/* ---- login -------------------------------------------------------------- */

static json_t *
s_body(const pm_web_req_t *req, pm_web_reply_t *reply)
{
    json_error_t err;
    json_t *doc = req->body ? json_loadb(req->body, req->body_len,
                                         JSON_REJECT_DUPLICATES, &err)
                            : NULL;
    if (!json_is_object(doc)) {
        s_error(reply, 400, "the body must be a JSON object%s%s",
                doc || !req->body ? "" : ": ",
                doc || !req->body ? "" : err.text);
        json_decref(doc);
        return NULL;
    }
    return doc;
}

/* POST /api/login: the one call without a session (S is NULL). */
static void
s_login(pm_web_api_t *self, const pm_web_session_t *s, const pm_web_req_t *req,
        pm_web_reply_t *reply)
{
    (void)s;
    json_t *doc = s_body(req, reply);
    const char *user = NULL, *password = NULL;
    if (!doc)
        return;
    if (json_unpack(doc, "{s:s, s:s}", "user", &user, "password", &password)) {
        s_error(reply, 400, "a login is {\"user\": ..., \"password\": ...}");
        json_decref(doc);
        return;
    }
    s_users_recheck(self); /* a network known by an old password is not */
    int64_t now = self->clock();
    int64_t wait = pm_web_throttle_wait(self->sessions, req->addr, user, now);
    char *why = NULL;
    unsigned char stamp[PM_WEB_STAMP_LEN];
    int rc = wait > 0 ? PM_EDENIED
             : pm_web_user_name_problem(user)
                 ? PM_EDENIED
                 : pm_web_users_check(self->users, user, password, stamp, &why);
    if (wait > 0) {
        s_reply(reply, 429,
                json_pack("{s:s, s:I}", "error",
                          "too many failed logins: wait before trying again",
                          "retry_after", (json_int_t)wait));
    } else if (rc == PM_OK) {
        const pm_web_session_t *s =
            pm_web_session_open(self->sessions, user, stamp, now);
        pm_web_throttle_ok(self->sessions, req->addr, user, stamp, now);
        pm_info("login: %s from %s", user, req->addr);
        reply->cookie = pm_asprintf("%s=%s; Path=/; Secure; HttpOnly; "
                                    "SameSite=Strict; Max-Age=%d",
                                    PM_WEB_COOKIE, s->token, PM_WEB_LIFE_S);
        json_t *body =
            json_pack("{s:s, s:s}", "user", s->user, "csrf", s->csrf);
        if (!req->browser) /* a script's: a page's script never needs it */
            json_object_set_new(body, "token", json_string(s->token));
        s_reply(reply, 200, body);
    } else if (rc == PM_EDENIED) {
        pm_web_throttle_fail(self->sessions, req->addr, user, now);
        char *shown = pm_text_escape(user, PM_WEB_USER_MAX);
        pm_warn("login refused: %s from %s", shown, req->addr);
        free(shown);
        s_error(reply, 401, "wrong user name or password");
    } else {
        pm_error("users file: %s", why);
        s_error(reply, 500, "the users file cannot be read (see the log)");
    }
    free(why);
    json_decref(doc);
}

/* ---- the policy --------------------------------------------------------- */

static const char *
s_type_name(pm_ktype_t type)
{
    static const char *const names[] = {[PM_KT_BOOL] = "bool",
                                        [PM_KT_PERCENT] = "percent",
                                        [PM_KT_DURATION] = "duration",
                                        [PM_KT_ENUM] = "enum",
                                        [PM_KT_STRING] = "string",
                                        [PM_KT_LIST] = "list",
                                        [PM_KT_SIGNATURES] = "signatures",
                                        [PM_KT_DKIM] = "dkim"};
    return names[type];
}

static json_t *
s_keys_json(void)
{
    size_t n = 0;
    const pm_key_t *keys = pm_policy_keys(&n);
    json_t *all = json_array();
    for (size_t i = 0; i < n; i++) {
        const pm_key_t *k = &keys[i];
        json_t *o =
            json_pack("{s:s, s:s, s:s, s:s, s:b, s:s, s:I}", "name", k->name,
                      "type", s_type_name(k->type), "default", k->dflt, "help",
                      k->help, "node", (k->flags & PM_KF_NODE) != 0, "effect",
                      pm_effect_name(k->effect), "max", (json_int_t)k->max);
        if (k->choices) {
            json_t *c = json_array();
            for (const char *const *p = k->choices; *p; p++)
                json_array_append_new(c, json_string(*p));
            json_object_set_new(o, "choices", c);
        }
        json_array_append_new(all, o);
    }
    return all;
}

static json_t *
s_policy_json(const Pm__Policy *p)
{
    char *text = pm_policy_to_json(p, false);
    json_t *doc = json_loads(text, 0, NULL);
    free(text);
    return doc ? doc : json_object();
}

static void
s_policy_get(pm_web_api_t *self, const pm_web_session_t *s,
             const pm_web_req_t *req, pm_web_reply_t *reply)
{
    (void)req;
    Pm__Response *r = s_show(self, 0, s->user, reply);
    if (!r)
        return;
    const Pm__Revision *rev = r->revision;
    Pm__Policy *dflt = rev ? NULL : pm_policy_new();
    json_t *common = json_array();
    for (const char *const *e = pm_policy_common_extensions; *e; e++)
        json_array_append_new(common, json_string(*e));
    s_reply(reply, 200,
            json_pack("{s:I, s:s, s:s, s:s, s:I, s:o, s:o, s:o}", "rev",
                      (json_int_t)(rev ? rev->number : 0), "digest",
                      rev ? rev->digest : "", "author", rev ? rev->author : "",
                      "message", rev ? rev->message : "", "time",
                      (json_int_t)(rev ? rev->time : 0), "policy",
                      s_policy_json(rev ? rev->policy : dflt), "keys",
                      s_keys_json(), "common_extensions", common));
    pm_policy_free(&dflt);
    pm__response__free_unpacked(r, NULL);
}

/* ---- edits -------------------------------------------------------------- */

typedef struct {
    Pm__Edit **edits;
    size_t n;
} s_edits_t;

static void
s_edits_free(s_edits_t *e)
{
    for (size_t i = 0; i < e->n; i++)
        pm__edit__free_unpacked(e->edits[i], NULL);
    free(e->edits);
    e->edits = NULL;
    e->n = 0;
}

/* A signature file added as {"name", "content"} travels as the CLI's
 * KEY+=FILE does: the name as the value, the bytes as content. */
static bool
s_edit_file(Pm__Edit *e, json_t *value)
{
    const char *name = NULL, *content = NULL;
    size_t len = 0;
    if (e->op != PM__EDIT__OP__ADD ||
        strcmp(e->key, "antivirus.custom_signatures") != 0 ||
        json_unpack(value, "{s:s, s:s%}", "name", &name, "content", &content,
                    &len) != 0 ||
        json_object_size(value) != 2)
        return false;
    e->value = pm_strdup(name);
    e->content.data = pm_malloc(len ? len : 1);
    memcpy(e->content.data, content, len);
    e->content.len = len;
    return true;
}

static Pm__Edit *
s_edit(json_t *item, size_t i, pm_web_reply_t *reply)
{
    static const char *const ops[] = {"set", "add", "remove", "reset"};
    const char *key = NULL, *op = NULL;
    json_t *value = NULL;
    if (json_unpack(item, "{s:s, s:s, s?o}", "key", &key, "op", &op, "value",
                    &value) != 0 ||
        strlen(key) > 256) {
        s_error(reply, 400, "edit %zu: not {\"key\", \"op\", \"value\"}",
                i + 1);
        return NULL;
    }
    size_t k = 0;
    while (k < 4 && strcmp(op, ops[k]) != 0)
        k++;
    if (k == 4 || (k != 3 && !value)) {
        s_error(reply, 400,
                "edit %zu (%s): op is set, add, remove or reset, and all but "
                "reset need a value",
                i + 1, key);
        return NULL;
    }
    Pm__Edit *e = pm_malloc(sizeof *e);
    pm__edit__init(e);
    e->key = pm_strdup(key);
    e->op = (Pm__Edit__Op)k; /* the same order as the proto's */
    if (value && !s_edit_file(e, value))
        e->value = json_dumps(value, JSON_COMPACT | JSON_ENCODE_ANY);
    else if (!value)
        e->value = pm_strdup("");
    return e;
}

/* DOC's "edits" as Pm__Edits; false with REPLY filled when malformed. */
static bool
s_edits(json_t *doc, s_edits_t *out, pm_web_reply_t *reply)
{
    json_t *list = json_object_get(doc, "edits");
    size_t n = json_array_size(list);
    memset(out, 0, sizeof *out);
    if (!json_is_array(list) || n == 0 || n > PM_WEB_EDITS_MAX) {
        s_error(reply, 400, "\"edits\" is a list of 1 to %d edits",
                PM_WEB_EDITS_MAX);
        return false;
    }
    out->edits = pm_calloc(n, sizeof *out->edits);
    for (size_t i = 0; i < n; i++) {
        out->edits[i] = s_edit(json_array_get(list, i), i, reply);
        if (!out->edits[i]) {
            s_edits_free(out);
            return false;
        }
        out->n++;
    }
    return true;
}

/* "rev" (or NAME) as a revision number; -1 with REPLY filled when
 * missing or not one. */
static int64_t
s_rev(json_t *doc, const char *name, pm_web_reply_t *reply)
{
    json_t *v = json_object_get(doc, name);
    if (!json_is_integer(v) || json_integer_value(v) < 0) {
        s_error(reply, 400, "\"%s\" is a revision number", name);
        return -1;
    }
    return (int64_t)json_integer_value(v);
}

static const char *
s_node(json_t *doc)
{
    const char *node = json_string_value(json_object_get(doc, "node"));
    return node && *node ? node : NULL;
}

static void
s_diff_row(const char *name, const pm_key_t *key, const char *before,
           const char *after, void *arg)
{
    (void)key;
    json_array_append_new(arg, json_pack("{s:s, s:s?, s:s?}", "key", name,
                                         "before", before, "after", after));
}

/* A change's body ({"rev", "edits", ...}): returns "rev" with *DOC
 * (caller decrefs) and the edits in E (caller frees), or -1 with REPLY
 * filled. */
static int64_t
s_change(const pm_web_req_t *req, pm_web_reply_t *reply, json_t **doc,
         s_edits_t *e)
{
    *doc = s_body(req, reply);
    int64_t rev = *doc ? s_rev(*doc, "rev", reply) : -1;
    if (rev < 0 || !s_edits(*doc, e, reply)) {
        json_decref(*doc);
        *doc = NULL;
        return -1;
    }
    return rev;
}

/* POST /api/policy/check: the edits applied to revision "rev" here, with
 * the validator the controller runs, so the page shows every problem next
 * to its field as it is typed; nothing is sent. */
static void
s_policy_check(pm_web_api_t *self, const pm_web_session_t *s,
               const pm_web_req_t *req, pm_web_reply_t *reply)
{
    json_t *doc = NULL;
    s_edits_t e = {0};
    int64_t rev = s_change(req, reply, &doc, &e);
    if (rev < 0)
        return;
    Pm__Response *r = s_show(self, (uint64_t)rev, s->user, reply);
    if (r) {
        Pm__Policy *base =
            r->revision ? pm_policy_dup(r->revision->policy) : pm_policy_new();
        Pm__Policy *edited = pm_policy_dup(base);
        pm_diag_t *diag = pm_diag_new("web");
        size_t bad = pm_policy_edit(&edited, s_node(doc), e.edits, e.n, diag);
        json_t *problems = json_array(), *diff = json_array();
        for (size_t i = 0; i < pm_diag_count(diag); i++)
            json_array_append_new(
                problems, json_pack("{s:s?, s:s}", "key", pm_diag_key(diag, i),
                                    "problem", pm_diag_problem(diag, i)));
        pm_effect_t effect =
            bad ? PM_EFFECT_LIVE
                : pm_policy_diff(base, edited, s_diff_row, diff);
        s_reply(reply, 200,
                json_pack("{s:b, s:o, s:o, s:s}", "ok", bad == 0, "problems",
                          problems, "diff", diff, "effect",
                          pm_effect_name(effect)));
        pm_diag_destroy(&diag);
        pm_policy_free(&edited);
        pm_policy_free(&base);
        pm__response__free_unpacked(r, NULL);
    }
    s_edits_free(&e);
    json_decref(doc);
}

/* A 409 in REPLY gains what changed since BASE: the head, its author and
 * the diff, so the page shows the other change rather than overwrite it. */
static void
s_conflict(pm_web_api_t *self, uint64_t base, const char *user,
           pm_web_reply_t *reply)
{
    if (reply->status != 409)
        return;
    pm_web_reply_t tmp = {0};
    Pm__Response *head = s_show(self, 0, user, &tmp);
    if (head && head->revision) {
        json_object_set_new(reply->body, "head",
                            json_integer((json_int_t)head->revision->number));
        json_object_set_new(reply->body, "author",
                            json_string(head->revision->author));
        Pm__Request req = PM__REQUEST__INIT;
        req.op = PM__REQUEST__OP__DIFF;
        req.rev = base;
        req.rev_b = head->revision->number;
        req.expect_rev = -1;
        Pm__Response *d = base ? s_call(self, &req, user, &tmp) : NULL;
        if (d) {
            json_object_set_new(reply->body, "diff",
                                pm_ctl_json_diff(d->diff, d->n_diff));
            pm__response__free_unpacked(d, NULL);
        }
    }
    if (head)
        pm__response__free_unpacked(head, NULL);
    json_decref(tmp.body);
}

/* Sends a commit (SET, ROLLBACK) and answers with the new revision. */
static void
s_commit(pm_web_api_t *self, Pm__Request *req, const char *user,
         pm_web_reply_t *reply)
{
    Pm__Response *r = s_call(self, req, user, reply);
    if (!r) {
        s_conflict(self, (uint64_t)req->expect_rev, user, reply);
        return;
    }
    uint64_t rev = r->revision ? r->revision->number : r->head;
    /* the commit's answer has no diff: the one from the page's revision */
    Pm__Response *d = NULL;
    if (!r->unchanged && req->expect_rev > 0 && r->n_diff == 0) {
        Pm__Request dreq = PM__REQUEST__INIT;
        dreq.op = PM__REQUEST__OP__DIFF;
        dreq.rev = (uint64_t)req->expect_rev;
        dreq.rev_b = rev;
        dreq.expect_rev = -1;
        pm_web_reply_t tmp = {0};
        d = s_call(self, &dreq, user, &tmp);
        json_decref(tmp.body);
    }
    const Pm__Response *dr = d ? d : r;
    s_reply(reply, 200,
            json_pack("{s:I, s:o, s:s, s:b}", "rev", (json_int_t)rev, "diff",
                      pm_ctl_json_diff(dr->diff, dr->n_diff), "effect",
                      r->effect, "unchanged", r->unchanged));
    if (d)
        pm__response__free_unpacked(d, NULL);
    pm_info("revision %" PRIu64 " by %s%s", rev, user,
            r->unchanged ? " (unchanged)" : "");
    pm__response__free_unpacked(r, NULL);
}

static const char *
s_message(json_t *doc, const char *dflt)
{
    const char *m = json_string_value(json_object_get(doc, "message"));
    return m && *m ? m : dflt;
}

static void
s_policy_save(pm_web_api_t *self, const pm_web_session_t *s,
              const pm_web_req_t *req, pm_web_reply_t *reply)
{
    json_t *doc = NULL;
    s_edits_t e = {0};
    int64_t rev = s_change(req, reply, &doc, &e);
    if (rev < 0)
        return;
    Pm__Request r = PM__REQUEST__INIT;
    r.op = PM__REQUEST__OP__SET;
    r.edits = e.edits;
    r.n_edits = e.n;
    r.node = (char *)(s_node(doc) ? s_node(doc) : "");
    r.expect_rev = rev;
    r.message = (char *)s_message(doc, "changed in the web console");
    s_commit(self, &r, s->user, reply);
    s_edits_free(&e);
    json_decref(doc);
}

static void
s_rollback(pm_web_api_t *self, const pm_web_session_t *s,
           const pm_web_req_t *req, pm_web_reply_t *reply)
{
    json_t *doc = s_body(req, reply);
    int64_t rev = doc ? s_rev(doc, "rev", reply) : -1;
    int64_t expect = rev >= 0 ? s_rev(doc, "expect_rev", reply) : -1;
    if (expect >= 0) {
        Pm__Request r = PM__REQUEST__INIT;
        r.op = PM__REQUEST__OP__ROLLBACK;
        r.rev = (uint64_t)rev;
        r.expect_rev = expect;
        r.message = (char *)s_message(doc, "rolled back in the web console");
        s_commit(self, &r, s->user, reply);
    }
    json_decref(doc);
}

/* ---- nodes and history -------------------------------------------------- */

static void
s_nodes(pm_web_api_t *self, const pm_web_session_t *s, const pm_web_req_t *req,
        pm_web_reply_t *reply)
{
    (void)req;
    Pm__Response *r = s_ask(self, PM__REQUEST__OP__NODES, s->user, reply);
    if (!r)
        return;
    json_t *nodes = json_array();
    for (size_t i = 0; i < r->n_nodes; i++)
        json_array_append_new(nodes, pm_ctl_json_node(r->nodes[i], r));
    s_reply(reply, 200,
            json_pack("{s:I, s:o, s:o}", "head", (json_int_t)r->head, "nodes",
                      nodes, "cluster", pm_ctl_json_cluster(r)));
    pm__response__free_unpacked(r, NULL);
}

/* Query argument NAME as a number in 0..MAX (absent: DFLT); false with
 * REPLY filled when it is something else. */
static bool
s_arg(const pm_web_req_t *req, const char *name, uint64_t dflt, uint64_t max,
      uint64_t *out, pm_web_reply_t *reply)
{
    const char *text = req->arg ? req->arg(req->arg_ctx, name) : NULL;
    char *end = NULL;
    *out = dflt;
    if (!text)
        return true;
    unsigned long long v = strtoull(text, &end, 10);
    if (!*text || *end || *text == '-' || v > max) {
        s_error(reply, 400, "%s: a number from 0 to %" PRIu64, name, max);
        return false;
    }
    *out = v;
    return true;
}

static void
s_history(pm_web_api_t *self, const pm_web_session_t *s,
          const pm_web_req_t *req, pm_web_reply_t *reply)
{
    uint64_t limit = 0, before = 0;
    if (!s_arg(req, "limit", 50, 1000, &limit, reply) ||
        !s_arg(req, "before", 0, UINT64_MAX, &before, reply))
        return;
    Pm__Request r = PM__REQUEST__INIT;
    r.op = PM__REQUEST__OP__HISTORY;
    r.limit = (uint32_t)limit;
    r.before = before;
    r.expect_rev = -1;
    Pm__Response *resp = s_call(self, &r, s->user, reply);
    if (!resp)
        return;
    json_t *all = json_array();
    for (size_t i = 0; i < resp->n_history; i++)
        json_array_append_new(all, pm_ctl_json_revision(resp->history[i]));
    s_reply(reply, 200,
            json_pack("{s:I, s:o}", "head", (json_int_t)resp->head, "revisions",
                      all));
    pm__response__free_unpacked(resp, NULL);
}

static void
s_diff(pm_web_api_t *self, const pm_web_session_t *s, const pm_web_req_t *req,
       pm_web_reply_t *reply)
{
    uint64_t a = 0, b = 0;
    if (!s_arg(req, "a", 0, UINT64_MAX, &a, reply) ||
        !s_arg(req, "b", 0, UINT64_MAX, &b, reply))
        return;
    if (!a || !b)
        return s_error(reply, 400, "a and b: two revision numbers");
    Pm__Request r = PM__REQUEST__INIT;
    r.op = PM__REQUEST__OP__DIFF;
    r.rev = a;
    r.rev_b = b;
    r.expect_rev = -1;
    Pm__Response *resp = s_call(self, &r, s->user, reply);
    if (!resp)
        return;
    s_reply(
        reply, 200,
        json_pack("{s:o}", "diff", pm_ctl_json_diff(resp->diff, resp->n_diff)));
    pm__response__free_unpacked(resp, NULL);
}

static void
s_rollout(pm_web_api_t *self, const pm_web_session_t *s,
          const pm_web_req_t *req, pm_web_reply_t *reply)
{
    (void)req;
    Pm__Response *r =
        s_ask(self, PM__REQUEST__OP__ROLLOUT_STATUS, s->user, reply);
    if (!r)
        return;
    s_reply(reply, 200,
            json_pack("{s:o}", "rollout", pm_ctl_json_rollout(r->rollout)));
    pm__response__free_unpacked(r, NULL);
}

/* ---- sessions ----------------------------------------------------------- */

static void
s_logout(pm_web_api_t *self, const pm_web_session_t *s, const pm_web_req_t *req,
         pm_web_reply_t *reply)
{
    pm_info("logout: %s", s->user);
    pm_web_session_close(self->sessions, req->token);
    reply->cookie = pm_asprintf("%s=; Path=/; Secure; HttpOnly; "
                                "SameSite=Strict; Max-Age=0",
                                PM_WEB_COOKIE);
    s_reply(reply, 200, NULL);
}

static void
s_session_get(pm_web_api_t *self, const pm_web_session_t *s,
              const pm_web_req_t *req, pm_web_reply_t *reply)
{
    (void)self, (void)req;
    s_reply(reply, 200,
            json_pack("{s:s, s:s}", "user", s->user, "csrf", s->csrf));
}

/* ---- dispatch ----------------------------------------------------------- */

/* Who may make a call. Every call but the login needs a live session, and
 * a POST with a session cookie its CSRF token too (s_admit). */
typedef enum {
    S_ANYONE, /* the login: it is how a session starts */
    S_SESSION,
} s_needs_t;

typedef struct {
    const char *method, *path;
    s_needs_t needs;
    void (*fn)(pm_web_api_t *self, const pm_web_session_t *s,
               const pm_web_req_t *req, pm_web_reply_t *reply);
} s_route_t;

/* Every API call; an unknown one is answered 404 (after s_admit). */
static const s_route_t s_routes[] = {
    {"POST", "/api/login", S_ANYONE, s_login},
    {"POST", "/api/logout", S_SESSION, s_logout},
    {"GET", "/api/session", S_SESSION, s_session_get},
    {"GET", "/api/policy", S_SESSION, s_policy_get},
    {"POST", "/api/policy/check", S_SESSION, s_policy_check},
    {"POST", "/api/policy", S_SESSION, s_policy_save},
    {"POST", "/api/rollback", S_SESSION, s_rollback},
    {"GET", "/api/nodes", S_SESSION, s_nodes},
    {"GET", "/api/history", S_SESSION, s_history},
    {"GET", "/api/diff", S_SESSION, s_diff},
    {"GET", "/api/rollout", S_SESSION, s_rollout},
};

/* REQ's call, or NULL when it names none. */
static const s_route_t *
s_route(const pm_web_req_t *req)
{
    for (size_t i = 0; i < sizeof s_routes / sizeof s_routes[0]; i++)
        if (strcmp(req->method, s_routes[i].method) == 0 &&
            strcmp(req->path, s_routes[i].path) == 0)
            return &s_routes[i];
    return NULL;
}

size_t
pm_web_api_body_cap(pm_web_api_t *self, const pm_web_req_t *req)
{
    const s_route_t *route = s_route(req);
    if (route && route->needs == S_ANYONE)
        return PM_WEB_LOGIN_BODY_MAX;
    return s_session(self, req) ? PM_WEB_BODY_MAX : 0;
}

/* REQ's session, checked before the call is looked at (so that a caller
 * without one learns nothing of which calls exist); NULL with REPLY
 * filled when there is none or a cookie's POST lacks its CSRF token (a
 * bearer token is not sent by a browser on its own: no CSRF to fear). */
static const pm_web_session_t *
s_admit(pm_web_api_t *self, const pm_web_req_t *req, pm_web_reply_t *reply)
{
    const pm_web_session_t *s = s_session(self, req);
    if (!s) {
        s_error(reply, 401, "login required");
        return NULL;
    }
    bool post = strcmp(req->method, "POST") == 0;
    if (post && !req->bearer && !pm_web_session_csrf_ok(s, req->csrf)) {
        s_error(reply, 403, "missing or wrong X-CSRF-Token: reload the page");
        return NULL;
    }
    return s;
}

void
pm_web_api_handle(pm_web_api_t *self, const pm_web_req_t *req,
                  pm_web_reply_t *reply)
{
    memset(reply, 0, sizeof *reply);
    const s_route_t *route = s_route(req);
    const pm_web_session_t *s = NULL;
    if (!route || route->needs != S_ANYONE) {
        s = s_admit(self, req, reply);
        if (!s)
            return;
    }
    if (!route)
        return s_error(reply, 404, "no such API call: %s %.100s", req->method,
                       req->path);
    route->fn(self, s, req, reply);
}
