/* test_ctld.c - the controller's request handlers (pm_ctld_handle) over a
 * real store, without a socket: every op, its refusals, and that nothing
 * is committed unless the answer says so. */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pm_ctld.h"
#include "pm_error.h"
#include "pm_log.h"
#include "pm_policy.h"
#include "pm_store.h"
#include "pm_text.h"
#include "pm_wire.h"
#include "testdir.h"

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

static char s_dir[64];
static pm_store_t *s_store;
static pm_ctld_t *s_ctld;

static void
s_setup(void)
{
    strcpy(s_dir, "/tmp/pm_ctld_test.XXXXXX");
    cr_assert_not_null(mkdtemp(s_dir));
    cr_assert_eq(pm_store_open(s_dir, 0, 0, &s_store), PM_OK);
    char *why = NULL;
    s_ctld = pm_ctld_new(s_store, NULL, NULL, NULL, &why);
    cr_assert_not_null(s_ctld, "%s", why ? why : "");
}

static void
s_teardown(void)
{
    pm_ctld_destroy(&s_ctld);
    pm_store_close(&s_store);
    testdir_remove(s_dir);
}

TestSuite(ctld, .init = s_setup, .fini = s_teardown);

/* ---- helpers ------------------------------------------------------------ */

/* A request of OP with no compare-and-swap. */
static Pm__Request
s_req(Pm__Request__Op op)
{
    Pm__Request req = PM__REQUEST__INIT;
    req.op = op;
    req.expect_rev = -1;
    return req;
}

/* Handles REQ as AUTHOR and returns the unpacked, checked reply. Caller
 * frees it with pm__response__free_unpacked. */
static Pm__Response *
s_call_as(const Pm__Request *req, const char *author)
{
    size_t len = 0;
    uint8_t *buf = pm_ctld_handle(s_ctld, req, author, &len);
    cr_assert_not_null(buf);
    Pm__Response *resp = NULL;
    char *why = NULL;
    int rc = pm_wire_unpack_response(buf, len, &resp, &why);
    free(buf);
    cr_assert_eq(rc, PM_OK, "reply does not pass pm_wire: %s", why ? why : "");
    return resp;
}

static Pm__Response *
s_call(const Pm__Request *req)
{
    return s_call_as(req, "tester");
}

static uint64_t
s_head(void)
{
    uint64_t head = 99;
    cr_assert_eq(pm_store_head(s_store, &head), PM_OK);
    return head;
}

/* The stored revision REV (0: head). Caller frees. */
static Pm__Revision *
s_stored(uint64_t rev)
{
    Pm__Revision *r = NULL;
    cr_assert_eq(pm_store_get(s_store, rev, &r), PM_OK, "revision %llu",
                 (unsigned long long)rev);
    return r;
}

/* Whether any problem of RESP contains every one of the NULL-ended
 * strings. */
static bool
s_problem_has(const Pm__Response *resp, ...)
{
    for (size_t i = 0; i < resp->n_problems; i++) {
        va_list ap;
        va_start(ap, resp);
        bool all = true;
        for (const char *s; (s = va_arg(ap, const char *));)
            all = all && strstr(resp->problems[i], s) != NULL;
        va_end(ap);
        if (all)
            return true;
    }
    return false;
}

/* All problems joined, for failure messages. Static buffer. */
static const char *
s_problems(const Pm__Response *resp)
{
    static char all[4096];
    snprintf(all, sizeof all, "%s", resp->error ? resp->error : "");
    for (size_t i = 0; i < resp->n_problems; i++)
        snprintf(all + strlen(all), sizeof all - strlen(all), "\n  %s",
                 resp->problems[i]);
    return all;
}

/* A valid policy: the defaults with KEY=VALUE assignments applied
 * (NULL-ended pairs). Caller frees with pm_policy_free. */
static Pm__Policy *
s_policy(const char *key, ...)
{
    Pm__Policy *p = pm_policy_new();
    Pm__Edit edits[8], *ptrs[8];
    size_t n = 0;
    va_list ap;
    va_start(ap, key);
    for (const char *k = key; k && n < COUNT(edits);
         k = va_arg(ap, const char *)) {
        pm__edit__init(&edits[n]);
        edits[n].key = (char *)k;
        edits[n].op = PM__EDIT__OP__ASSIGN;
        edits[n].value = va_arg(ap, char *);
        ptrs[n] = &edits[n];
        n++;
    }
    va_end(ap);
    pm_diag_t *d = pm_diag_new("test");
    size_t problems = pm_policy_edit(&p, NULL, ptrs, n, d);
    char first[512];
    snprintf(first, sizeof first, "%s", problems ? pm_diag_line(d, 0) : "none");
    pm_diag_destroy(&d);
    cr_assert_eq(problems, 0, "fixture policy refused: %s", first);
    return p;
}

static Pm__Edit
s_edit(const char *key, Pm__Edit__Op op, const char *value)
{
    Pm__Edit e = PM__EDIT__INIT;
    e.key = (char *)key;
    e.op = op;
    e.value = (char *)(value ? value : "");
    return e;
}

/* Pushes POLICY and asserts it was committed as revision WANT. */
static void
s_push_ok(Pm__Policy *policy, uint64_t want)
{
    Pm__Request req = s_req(PM__REQUEST__OP__PUSH);
    req.policy = policy;
    Pm__Response *resp = s_call(&req);
    cr_assert_eq(resp->status, PM__RESPONSE__STATUS__OK, "%s",
                 s_problems(resp));
    cr_assert_not_null(resp->revision);
    cr_assert_eq(resp->revision->number, want);
    cr_assert_not(resp->unchanged);
    pm__response__free_unpacked(resp, NULL);
}

/* Pushes the defaults with admin address N@example.com as the next
 * revision WANT. */
static void
s_push_n(unsigned n, uint64_t want)
{
    char addr[64];
    snprintf(addr, sizeof addr, "admin%u@example.com", n);
    Pm__Policy *p = s_policy("inbound.admin_address", addr, NULL);
    s_push_ok(p, want);
    pm_policy_free(&p);
}

/* Applies EDITS (optionally on NODE) with one SET request; returns the
 * reply. */
static Pm__Response *
s_set(const char *node, Pm__Edit *edits, size_t n, int64_t expect_rev)
{
    Pm__Edit *ptrs[16];
    cr_assert_leq(n, COUNT(ptrs));
    for (size_t i = 0; i < n; i++)
        ptrs[i] = &edits[i];
    Pm__Request req = s_req(PM__REQUEST__OP__SET);
    req.edits = ptrs;
    req.n_edits = n;
    req.node = (char *)(node ? node : "");
    req.expect_rev = expect_rev;
    return s_call(&req);
}

static const char *
s_override(const Pm__Policy *p, const char *node, const char *key)
{
    for (size_t i = 0; i < p->n_overrides; i++)
        if (strcmp(p->overrides[i]->node, node) == 0 &&
            strcmp(p->overrides[i]->key, key) == 0)
            return p->overrides[i]->value;
    return NULL;
}

static bool
s_has_item(char **items, size_t n, const char *item)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(items[i], item) == 0)
            return true;
    return false;
}

/* ---- PUSH --------------------------------------------------------------- */

Test(ctld, push_valid_commits_revision_1)
{
    Pm__Policy *p = s_policy("inbound.admin_address", "ops@example.com",
                             "antispam.subject_prefix", "[SPAM]", NULL);
    char digest[65];
    pm_policy_digest(p, digest);
    Pm__Request req = s_req(PM__REQUEST__OP__PUSH);
    req.policy = p;
    req.message = "first policy";
    Pm__Response *resp = s_call_as(&req, "admin (alice)");
    cr_assert_eq(resp->status, PM__RESPONSE__STATUS__OK, "%s",
                 s_problems(resp));
    cr_assert_not_null(resp->revision);
    cr_expect_eq(resp->revision->number, 1);
    cr_expect_eq(resp->revision->parent, 0);
    cr_expect_eq(resp->revision->rollback_of, 0);
    cr_expect_str_eq(resp->revision->author, "admin (alice)");
    cr_expect_str_eq(resp->revision->message, "first policy");
    cr_expect_str_eq(resp->revision->digest, digest);
    cr_expect_gt(resp->revision->time, 0);
    cr_expect_eq(resp->head, 1);
    cr_expect_not(resp->unchanged);
    cr_expect_eq(resp->n_problems, 0);
    pm__response__free_unpacked(resp, NULL);

    /* what the store holds is what was pushed */
    cr_expect_eq(s_head(), 1);
    Pm__Revision *r = s_stored(1);
    cr_expect_str_eq(r->author, "admin (alice)");
    cr_assert_not_null(r->policy);
    cr_expect_str_eq(r->policy->inbound_admin_address, "ops@example.com");
    cr_expect_str_eq(r->policy->antispam_subject_prefix, "[SPAM]");
    char stored[65];
    pm_policy_digest(r->policy, stored);
    cr_expect_str_eq(stored, digest);
    pm__revision__free_unpacked(r, NULL);
    pm_policy_free(&p);
}

Test(ctld, push_same_policy_is_unchanged)
{
    Pm__Policy *p = s_policy("inbound.admin_address", "ops@example.com", NULL);
    s_push_ok(p, 1);
    Pm__Request req = s_req(PM__REQUEST__OP__PUSH);
    req.policy = p;
    req.message = "again";
    Pm__Response *resp = s_call(&req);
    cr_assert_eq(resp->status, PM__RESPONSE__STATUS__OK, "%s",
                 s_problems(resp));
    cr_expect(resp->unchanged);
    cr_expect_eq(resp->head, 1);
    cr_assert_not_null(resp->revision);
    cr_expect_eq(resp->revision->number, 1);
    pm__response__free_unpacked(resp, NULL);
    cr_expect_eq(s_head(), 1);

    /* an equal policy built another way is unchanged too */
    Pm__Policy *q = pm_policy_dup(p);
    req.policy = q;
    req.expect_rev = 1;
    resp = s_call(&req);
    cr_expect_eq(resp->status, PM__RESPONSE__STATUS__OK);
    cr_expect(resp->unchanged);
    pm__response__free_unpacked(resp, NULL);
    cr_expect_eq(s_head(), 1);
    pm_policy_free(&q);
    pm_policy_free(&p);
}

Test(ctld, push_invalid_percent_is_refused)
{
    s_push_n(1, 1);
    Pm__Policy *p = pm_policy_new();
    p->antispam_tag_percent = 101;
    Pm__Request req = s_req(PM__REQUEST__OP__PUSH);
    req.policy = p;
    Pm__Response *resp = s_call(&req);
    cr_expect_eq(resp->status, PM__RESPONSE__STATUS__INVALID);
    cr_expect_geq(resp->n_problems, 1);
    cr_expect(s_problem_has(resp, "antispam.tag_percent", NULL), "%s",
              s_problems(resp));
    cr_expect_null(resp->revision);
    cr_expect(resp->error && *resp->error);
    pm__response__free_unpacked(resp, NULL);
    cr_expect_eq(s_head(), 1);
    pm_policy_free(&p);
}

Test(ctld, push_invalid_cidr_is_refused)
{
    Pm__Policy *p = pm_policy_new();
    cr_assert_geq(p->n_outbound_mynetworks, 1);
    free(p->outbound_mynetworks[0]);
    p->outbound_mynetworks[0] = strdup("10.0.0.0/33");
    Pm__Request req = s_req(PM__REQUEST__OP__PUSH);
    req.policy = p;
    Pm__Response *resp = s_call(&req);
    cr_expect_eq(resp->status, PM__RESPONSE__STATUS__INVALID);
    cr_expect(s_problem_has(resp, "outbound.mynetworks", NULL), "%s",
              s_problems(resp));
    pm__response__free_unpacked(resp, NULL);
    cr_expect_eq(s_head(), 0);
    pm_policy_free(&p);
}

/* Validation reports every problem, not only the first. */
Test(ctld, push_reports_every_problem)
{
    Pm__Policy *p = pm_policy_new();
    p->antispam_tag_percent = 101;
    free(p->outbound_mynetworks[0]);
    p->outbound_mynetworks[0] = strdup("300.1.1.1/8");
    Pm__Request req = s_req(PM__REQUEST__OP__PUSH);
    req.policy = p;
    Pm__Response *resp = s_call(&req);
    cr_expect_eq(resp->status, PM__RESPONSE__STATUS__INVALID);
    cr_expect(s_problem_has(resp, "antispam.tag_percent", NULL), "%s",
              s_problems(resp));
    cr_expect(s_problem_has(resp, "outbound.mynetworks", NULL), "%s",
              s_problems(resp));
    pm__response__free_unpacked(resp, NULL);
    cr_expect_eq(s_head(), 0);
    pm_policy_free(&p);
}

/* ---- SET ---------------------------------------------------------------- */

Test(ctld, set_edits_commit)
{
    Pm__Edit e[] = {
        s_edit("antispam.subject_prefix", PM__EDIT__OP__ASSIGN, "[SPAM]"),
        s_edit("inbound.blocked_extensions", PM__EDIT__OP__ADD, "exe"),
        s_edit("outbound.mynetworks", PM__EDIT__OP__REMOVE, "[::1]/128"),
        s_edit("outbound.mynetworks", PM__EDIT__OP__ADD, "10.1.0.0/16"),
    };
    Pm__Response *resp = s_set(NULL, e, COUNT(e), -1);
    cr_assert_eq(resp->status, PM__RESPONSE__STATUS__OK, "%s",
                 s_problems(resp));
    cr_assert_not_null(resp->revision);
    cr_expect_eq(resp->revision->number, 1);
    cr_expect_str_eq(resp->revision->author, "tester");
    cr_expect_str_eq(resp->effect, "reload", "mynetworks is in main.cf");
    pm__response__free_unpacked(resp, NULL);

    Pm__Revision *r = s_stored(1);
    Pm__Policy *p = r->policy;
    cr_expect_str_eq(p->antispam_subject_prefix, "[SPAM]");
    cr_expect(s_has_item(p->inbound_blocked_extensions,
                         p->n_inbound_blocked_extensions, "exe"));
    cr_expect(s_has_item(p->outbound_mynetworks, p->n_outbound_mynetworks,
                         "10.1.0.0/16"));
    cr_expect(s_has_item(p->outbound_mynetworks, p->n_outbound_mynetworks,
                         "127.0.0.0/8"));
    cr_expect_not(s_has_item(p->outbound_mynetworks, p->n_outbound_mynetworks,
                             "[::1]/128"));
    pm__revision__free_unpacked(r, NULL);

    /* RESET goes back to the default, on top of the head */
    Pm__Edit reset[] = {
        s_edit("antispam.subject_prefix", PM__EDIT__OP__RESET, NULL),
    };
    resp = s_set(NULL, reset, 1, 1);
    cr_assert_eq(resp->status, PM__RESPONSE__STATUS__OK, "%s",
                 s_problems(resp));
    cr_expect_eq(resp->revision->number, 2);
    cr_expect_eq(resp->revision->parent, 1);
    cr_expect_str_eq(resp->effect, "live", "the filter reads the prefix");
    pm__response__free_unpacked(resp, NULL);
    r = s_stored(2);
    cr_expect_str_eq(r->policy->antispam_subject_prefix, "");
    cr_expect(s_has_item(r->policy->inbound_blocked_extensions,
                         r->policy->n_inbound_blocked_extensions, "exe"));
    pm__revision__free_unpacked(r, NULL);
}

Test(ctld, set_on_node_commits_override)
{
    s_push_n(1, 1);
    Pm__Edit e[] = {
        s_edit("outbound.sasl_auth", PM__EDIT__OP__ASSIGN, "false"),
        s_edit("outbound.mynetworks", PM__EDIT__OP__ADD, "10.9.0.0/16"),
    };
    Pm__Response *resp = s_set("mx1", e, COUNT(e), -1);
    cr_assert_eq(resp->status, PM__RESPONSE__STATUS__OK, "%s",
                 s_problems(resp));
    cr_expect_eq(resp->revision->number, 2);
    pm__response__free_unpacked(resp, NULL);

    Pm__Revision *r = s_stored(2);
    const char *v = s_override(r->policy, "mx1", "outbound.sasl_auth");
    cr_assert_not_null(v);
    cr_expect_str_eq(v, "false");
    v = s_override(r->policy, "mx1", "outbound.mynetworks");
    cr_assert_not_null(v);
    cr_expect(strstr(v, "10.9.0.0/16") && strstr(v, "127.0.0.0/8"), "%s", v);
    /* the cluster values stay */
    cr_expect(r->policy->outbound_sasl_auth);
    cr_expect_not(s_has_item(r->policy->outbound_mynetworks,
                             r->policy->n_outbound_mynetworks, "10.9.0.0/16"));
    pm__revision__free_unpacked(r, NULL);

    /* RESET on the node drops the override */
    Pm__Edit reset[] = {
        s_edit("outbound.sasl_auth", PM__EDIT__OP__RESET, NULL),
    };
    resp = s_set("mx1", reset, 1, 2);
    cr_assert_eq(resp->status, PM__RESPONSE__STATUS__OK, "%s",
                 s_problems(resp));
    pm__response__free_unpacked(resp, NULL);
    r = s_stored(3);
    cr_expect_null(s_override(r->policy, "mx1", "outbound.sasl_auth"));
    cr_expect_not_null(s_override(r->policy, "mx1", "outbound.mynetworks"));
    pm__revision__free_unpacked(r, NULL);
}

Test(ctld, set_cluster_wide_key_on_node_refused)
{
    Pm__Edit e[] = {
        s_edit("antispam.enabled", PM__EDIT__OP__ASSIGN, "false"),
    };
    Pm__Response *resp = s_set("mx1", e, 1, -1);
    cr_expect_eq(resp->status, PM__RESPONSE__STATUS__INVALID);
    cr_expect(s_problem_has(resp, "antispam.enabled", "cluster-wide", NULL),
              "%s", s_problems(resp));
    pm__response__free_unpacked(resp, NULL);
    cr_expect_eq(s_head(), 0);
}

Test(ctld, set_unknown_key_suggests)
{
    s_push_n(1, 1);
    Pm__Edit e[] = {
        s_edit("antispam.subject_prefix", PM__EDIT__OP__ASSIGN, "[X]"),
        s_edit("antispam.levle", PM__EDIT__OP__ASSIGN, "high"),
    };
    Pm__Response *resp = s_set(NULL, e, COUNT(e), -1);
    cr_expect_eq(resp->status, PM__RESPONSE__STATUS__INVALID);
    cr_expect(s_problem_has(resp, "antispam.levle", "did you mean",
                            "antispam.level", NULL),
              "%s", s_problems(resp));
    cr_expect_null(resp->revision);
    pm__response__free_unpacked(resp, NULL);
    /* the valid edit beside it was not committed either */
    cr_expect_eq(s_head(), 1);
    Pm__Revision *r = s_stored(1);
    cr_expect_str_eq(r->policy->antispam_subject_prefix, "");
    pm__revision__free_unpacked(r, NULL);
}

/* The controller's log says why a request was refused, not only that
 * "1 problem" was found. */
Test(ctld, a_refusal_is_logged_with_its_first_reason)
{
    pm_log_init("test", false, PM_LOG_INFO);
    char path[] = "/tmp/pm_ctld_log.XXXXXX";
    int log = mkstemp(path), saved = dup(STDERR_FILENO);
    cr_assert(log >= 0 && saved >= 0);
    unlink(path);
    fflush(stderr);
    dup2(log, STDERR_FILENO);
    Pm__Edit e[] = {
        s_edit("antispam.tag_percent", PM__EDIT__OP__ASSIGN, "150"),
        s_edit("antispam.levle", PM__EDIT__OP__ASSIGN, "high"),
    };
    Pm__Response *resp = s_set(NULL, e, COUNT(e), -1);
    fflush(stderr);
    dup2(saved, STDERR_FILENO);
    close(saved);
    cr_assert_eq(resp->status, PM__RESPONSE__STATUS__INVALID);
    char text[4096] = "";
    cr_assert_geq(pread(log, text, sizeof text - 1, 0), 0);
    char *want = NULL;
    cr_assert_geq(asprintf(&want, "set by %s: refused: %s: %s; ...", "tester",
                           resp->error, resp->problems[0]),
                  0);
    cr_expect(strstr(text, want), "wanted '%s' in:\n%s", want, text);
    free(want);
    pm__response__free_unpacked(resp, NULL);
    /* what the client sent is quoted escaped: no line of its making */
    lseek(log, 0, SEEK_SET);
    cr_assert_eq(ftruncate(log, 0), 0);
    fflush(stderr);
    saved = dup(STDERR_FILENO);
    dup2(log, STDERR_FILENO);
    Pm__Edit forged[] = {s_edit("antispam.levle\ntest: info: set by root: ok",
                                PM__EDIT__OP__ASSIGN, "high")};
    resp = s_set(NULL, forged, COUNT(forged), -1);
    fflush(stderr);
    dup2(saved, STDERR_FILENO);
    close(saved);
    cr_assert_eq(resp->status, PM__RESPONSE__STATUS__INVALID);
    memset(text, 0, sizeof text);
    cr_assert_geq(pread(log, text, sizeof text - 1, 0), 0);
    cr_expect_null(strstr(text, "\ntest: info: set by root"), "%s", text);
    cr_expect(strstr(text, "\\ntest: info"), "%s", text);
    pm__response__free_unpacked(resp, NULL);
    close(log);
}

Test(ctld, set_bad_value_refused)
{
    Pm__Edit e[] = {
        s_edit("antispam.tag_percent", PM__EDIT__OP__ASSIGN, "150"),
    };
    Pm__Response *resp = s_set(NULL, e, 1, -1);
    cr_expect_eq(resp->status, PM__RESPONSE__STATUS__INVALID);
    cr_expect(s_problem_has(resp, "antispam.tag_percent", NULL), "%s",
              s_problems(resp));
    pm__response__free_unpacked(resp, NULL);
    cr_expect_eq(s_head(), 0);
}

/* A SET that changes nothing answers unchanged and commits nothing. */
Test(ctld, set_to_same_value_is_unchanged)
{
    s_push_n(1, 1);
    Pm__Edit e[] = {
        s_edit("inbound.admin_address", PM__EDIT__OP__ASSIGN,
               "admin1@example.com"),
    };
    Pm__Response *resp = s_set(NULL, e, 1, -1);
    cr_expect_eq(resp->status, PM__RESPONSE__STATUS__OK, "%s",
                 s_problems(resp));
    cr_expect(resp->unchanged);
    cr_expect_str_eq(resp->effect, "", "nothing to take effect");
    pm__response__free_unpacked(resp, NULL);
    cr_expect_eq(s_head(), 1);
}

/* ---- compare-and-swap --------------------------------------------------- */

Test(ctld, expect_rev_mismatch_conflicts)
{
    s_push_n(1, 1);
    Pm__Policy *p =
        s_policy("inbound.admin_address", "other@example.com", NULL);
    Pm__Request req = s_req(PM__REQUEST__OP__PUSH);
    req.policy = p;
    req.expect_rev = 0;
    Pm__Response *resp = s_call(&req);
    cr_expect_eq(resp->status, PM__RESPONSE__STATUS__CONFLICT);
    cr_expect_null(resp->revision);
    cr_expect(resp->error && strstr(resp->error, "1"), "%s", resp->error);
    pm__response__free_unpacked(resp, NULL);
    cr_expect_eq(s_head(), 1);

    Pm__Edit e[] = {
        s_edit("antispam.subject_prefix", PM__EDIT__OP__ASSIGN, "[S]"),
    };
    resp = s_set(NULL, e, 1, 7);
    cr_expect_eq(resp->status, PM__RESPONSE__STATUS__CONFLICT);
    pm__response__free_unpacked(resp, NULL);

    Pm__Request rb = s_req(PM__REQUEST__OP__ROLLBACK);
    rb.rev = 1;
    rb.expect_rev = 0;
    resp = s_call(&rb);
    cr_expect_eq(resp->status, PM__RESPONSE__STATUS__CONFLICT);
    pm__response__free_unpacked(resp, NULL);

    /* even pushing what the head holds conflicts on a stale expectation */
    Pm__Revision *head = s_stored(1);
    req.policy = head->policy;
    req.expect_rev = 5;
    resp = s_call(&req);
    cr_expect_eq(resp->status, PM__RESPONSE__STATUS__CONFLICT);
    pm__response__free_unpacked(resp, NULL);
    pm__revision__free_unpacked(head, NULL);

    cr_expect_eq(s_head(), 1);
    pm_policy_free(&p);
}

Test(ctld, expect_rev_match_commits)
{
    Pm__Policy *p = s_policy("inbound.admin_address", "a@example.com", NULL);
    Pm__Request req = s_req(PM__REQUEST__OP__PUSH);
    req.policy = p;
    req.expect_rev = 0; /* the empty store */
    Pm__Response *resp = s_call(&req);
    cr_expect_eq(resp->status, PM__RESPONSE__STATUS__OK, "%s",
                 s_problems(resp));
    cr_expect_eq(resp->head, 1);
    pm__response__free_unpacked(resp, NULL);

    Pm__Edit e[] = {
        s_edit("antispam.subject_prefix", PM__EDIT__OP__ASSIGN, "[S]"),
    };
    resp = s_set(NULL, e, 1, 1);
    cr_expect_eq(resp->status, PM__RESPONSE__STATUS__OK, "%s",
                 s_problems(resp));
    cr_assert_not_null(resp->revision);
    cr_expect_eq(resp->revision->number, 2);
    cr_expect_eq(resp->revision->parent, 1);
    pm__response__free_unpacked(resp, NULL);
    cr_expect_eq(s_head(), 2);
    pm_policy_free(&p);
}

/* ---- SHOW --------------------------------------------------------------- */

Test(ctld, show_on_empty_store)
{
    Pm__Request req = s_req(PM__REQUEST__OP__SHOW);
    Pm__Response *resp = s_call(&req);
    cr_expect_eq(resp->status, PM__RESPONSE__STATUS__OK);
    cr_expect_null(resp->revision);
    cr_expect_eq(resp->head, 0);
    pm__response__free_unpacked(resp, NULL);

    req.rev = 1;
    resp = s_call(&req);
    cr_expect_eq(resp->status, PM__RESPONSE__STATUS__NOT_FOUND);
    cr_expect_null(resp->revision);
    pm__response__free_unpacked(resp, NULL);
}

Test(ctld, show_head_and_missing)
{
    s_push_n(1, 1);
    s_push_n(2, 2);
    Pm__Request req = s_req(PM__REQUEST__OP__SHOW);
    Pm__Response *resp = s_call(&req);
    cr_assert_eq(resp->status, PM__RESPONSE__STATUS__OK);
    cr_assert_not_null(resp->revision);
    cr_expect_eq(resp->revision->number, 2);
    cr_expect_eq(resp->head, 2);
    cr_assert_not_null(resp->revision->policy);
    cr_expect_str_eq(resp->revision->policy->inbound_admin_address,
                     "admin2@example.com");
    pm__response__free_unpacked(resp, NULL);

    req.rev = 1;
    resp = s_call(&req);
    cr_assert_eq(resp->status, PM__RESPONSE__STATUS__OK);
    cr_expect_eq(resp->revision->number, 1);
    cr_expect_eq(resp->head, 2);
    cr_expect_str_eq(resp->revision->policy->inbound_admin_address,
                     "admin1@example.com");
    pm__response__free_unpacked(resp, NULL);

    req.rev = 3;
    resp = s_call(&req);
    cr_expect_eq(resp->status, PM__RESPONSE__STATUS__NOT_FOUND);
    cr_expect_null(resp->revision);
    cr_expect_eq(resp->head, 2);
    cr_expect(resp->error && strstr(resp->error, "3"), "%s", resp->error);
    pm__response__free_unpacked(resp, NULL);
}

/* ---- HISTORY ------------------------------------------------------------ */

static void
s_expect_history(uint64_t before, uint32_t limit, const uint64_t *want,
                 size_t n)
{
    Pm__Request req = s_req(PM__REQUEST__OP__HISTORY);
    req.before = before;
    req.limit = limit;
    Pm__Response *resp = s_call(&req);
    cr_assert_eq(resp->status, PM__RESPONSE__STATUS__OK);
    cr_expect_eq(resp->head, 5);
    cr_assert_eq(resp->n_history, n, "before %llu limit %u: %zu revisions",
                 (unsigned long long)before, limit, resp->n_history);
    for (size_t i = 0; i < n; i++) {
        cr_expect_eq(resp->history[i]->number, want[i]);
        cr_expect_null(resp->history[i]->policy);
        cr_expect_str_eq(resp->history[i]->author, "tester");
    }
    pm__response__free_unpacked(resp, NULL);
}

Test(ctld, history_newest_first)
{
    for (unsigned i = 1; i <= 5; i++)
        s_push_n(i, i);
    s_expect_history(0, 0, (uint64_t[]){5, 4, 3, 2, 1}, 5);
    s_expect_history(0, 2, (uint64_t[]){5, 4}, 2);
    s_expect_history(4, 2, (uint64_t[]){3, 2}, 2);
    s_expect_history(2, 10, (uint64_t[]){1}, 1);
    s_expect_history(1, 10, NULL, 0);
}

Test(ctld, history_on_empty_store)
{
    Pm__Request req = s_req(PM__REQUEST__OP__HISTORY);
    Pm__Response *resp = s_call(&req);
    cr_expect_eq(resp->status, PM__RESPONSE__STATUS__OK);
    cr_expect_eq(resp->n_history, 0);
    cr_expect_eq(resp->head, 0);
    pm__response__free_unpacked(resp, NULL);
}

/* ---- DIFF --------------------------------------------------------------- */

static const Pm__DiffEntry *
s_diff_entry(const Pm__Response *resp, const char *key)
{
    for (size_t i = 0; i < resp->n_diff; i++)
        if (strcmp(resp->diff[i]->key, key) == 0)
            return resp->diff[i];
    return NULL;
}

static Pm__Response *
s_diff(uint64_t a, uint64_t b)
{
    Pm__Request req = s_req(PM__REQUEST__OP__DIFF);
    req.rev = a;
    req.rev_b = b;
    return s_call(&req);
}

Test(ctld, diff_lists_exactly_changed_keys)
{
    s_push_n(1, 1);
    Pm__Edit e[] = {
        s_edit("antispam.subject_prefix", PM__EDIT__OP__ASSIGN, "[SPAM]"),
        s_edit("inbound.blocked_extensions", PM__EDIT__OP__ADD, "exe"),
    };
    Pm__Response *resp = s_set(NULL, e, COUNT(e), -1);
    cr_assert_eq(resp->status, PM__RESPONSE__STATUS__OK, "%s",
                 s_problems(resp));
    pm__response__free_unpacked(resp, NULL);
    Pm__Edit ne[] = {
        s_edit("outbound.sasl_auth", PM__EDIT__OP__ASSIGN, "false"),
    };
    resp = s_set("mx1", ne, 1, -1);
    cr_assert_eq(resp->status, PM__RESPONSE__STATUS__OK, "%s",
                 s_problems(resp));
    pm__response__free_unpacked(resp, NULL);
    cr_assert_eq(s_head(), 3);

    /* expected texts, rendered from the stored policies */
    Pm__Revision *r1 = s_stored(1), *r3 = s_stored(3);
    const pm_key_t *kp = pm_policy_key("antispam.subject_prefix");
    const pm_key_t *ke = pm_policy_key("inbound.blocked_extensions");
    char *p1 = pm_policy_key_text(r1->policy, kp);
    char *p3 = pm_policy_key_text(r3->policy, kp);
    char *e1 = pm_policy_key_text(r1->policy, ke);
    char *e3 = pm_policy_key_text(r3->policy, ke);

    resp = s_diff(1, 3);
    cr_assert_eq(resp->status, PM__RESPONSE__STATUS__OK, "%s",
                 s_problems(resp));
    cr_expect_eq(resp->n_diff, 3);
    const Pm__DiffEntry *d = s_diff_entry(resp, "antispam.subject_prefix");
    cr_assert_not_null(d);
    cr_expect_str_eq(d->before, p1);
    cr_expect_str_eq(d->after, p3);
    cr_expect(strstr(d->after, "[SPAM]") != NULL, "%s", d->after);
    d = s_diff_entry(resp, "inbound.blocked_extensions");
    cr_assert_not_null(d);
    cr_expect_str_eq(d->before, e1);
    cr_expect_str_eq(d->after, e3);
    cr_expect(strstr(d->after, "exe") != NULL, "%s", d->after);
    d = s_diff_entry(resp, "nodes.mx1.outbound.sasl_auth");
    cr_assert_not_null(d);
    cr_expect_str_eq(d->before, "");
    cr_expect_str_eq(d->after, "false");
    cr_expect_null(s_diff_entry(resp, "inbound.admin_address"));
    cr_expect_null(s_diff_entry(resp, "outbound.sasl_auth"));
    pm__response__free_unpacked(resp, NULL);

    /* the other way round, the override disappears */
    resp = s_diff(3, 1);
    cr_assert_eq(resp->status, PM__RESPONSE__STATUS__OK);
    cr_expect_eq(resp->n_diff, 3);
    d = s_diff_entry(resp, "nodes.mx1.outbound.sasl_auth");
    cr_assert_not_null(d);
    cr_expect_str_eq(d->before, "false");
    cr_expect_str_eq(d->after, "");
    d = s_diff_entry(resp, "antispam.subject_prefix");
    cr_assert_not_null(d);
    cr_expect_str_eq(d->before, p3);
    cr_expect_str_eq(d->after, p1);
    pm__response__free_unpacked(resp, NULL);

    /* only the override changed between 2 and 3 */
    resp = s_diff(2, 3);
    cr_assert_eq(resp->status, PM__RESPONSE__STATUS__OK);
    cr_expect_eq(resp->n_diff, 1);
    cr_expect_not_null(s_diff_entry(resp, "nodes.mx1.outbound.sasl_auth"));
    pm__response__free_unpacked(resp, NULL);

    /* a revision against itself: nothing */
    resp = s_diff(2, 2);
    cr_expect_eq(resp->status, PM__RESPONSE__STATUS__OK);
    cr_expect_eq(resp->n_diff, 0);
    pm__response__free_unpacked(resp, NULL);

    free(p1);
    free(p3);
    free(e1);
    free(e3);
    pm__revision__free_unpacked(r1, NULL);
    pm__revision__free_unpacked(r3, NULL);
}

/* A value longer than one string of an answer may hold (250 networks)
 * is shown cut, and the answer still passes the client's wire check. */
Test(ctld, diff_of_a_long_value_is_cut)
{
    s_push_n(1, 1);
    char nets[8192] = "[";
    for (int i = 0; i < 250; i++)
        snprintf(nets + strlen(nets), sizeof nets - strlen(nets),
                 "%s192.168.%d.%d/32", i ? ", " : "", 100 + i / 100,
                 100 + i % 100);
    strcat(nets, "]");
    Pm__Edit e[] = {
        s_edit("outbound.mynetworks", PM__EDIT__OP__ASSIGN, nets),
    };
    Pm__Response *resp = s_set(NULL, e, COUNT(e), -1);
    cr_assert_eq(resp->status, PM__RESPONSE__STATUS__OK, "%s",
                 s_problems(resp));
    pm__response__free_unpacked(resp, NULL);
    resp = s_diff(1, 2); /* s_call: the reply passes pm_wire */
    cr_assert_eq(resp->status, PM__RESPONSE__STATUS__OK, "%s", resp->error);
    cr_assert_eq(resp->n_diff, 1);
    const char *after = resp->diff[0]->after;
    cr_expect_leq(strlen(after), PM_WIRE_STRING_MAX);
    cr_expect(strncmp(after, "[\"192.168.100.100/32\"", 21) == 0, "%.40s",
              after);
    cr_expect_str_eq(after + strlen(after) - strlen(PM_TEXT_MORE),
                     PM_TEXT_MORE);
    pm__response__free_unpacked(resp, NULL);
}

Test(ctld, diff_changed_override_value)
{
    Pm__Edit a[] = {
        s_edit("outbound.relay_host", PM__EDIT__OP__ASSIGN, "relay1.example"),
    };
    Pm__Response *resp = s_set("mx2", a, 1, -1);
    cr_assert_eq(resp->status, PM__RESPONSE__STATUS__OK, "%s",
                 s_problems(resp));
    pm__response__free_unpacked(resp, NULL);
    Pm__Edit b[] = {
        s_edit("outbound.relay_host", PM__EDIT__OP__ASSIGN, "relay2.example"),
    };
    resp = s_set("mx2", b, 1, -1);
    cr_assert_eq(resp->status, PM__RESPONSE__STATUS__OK, "%s",
                 s_problems(resp));
    pm__response__free_unpacked(resp, NULL);

    resp = s_diff(1, 2);
    cr_assert_eq(resp->status, PM__RESPONSE__STATUS__OK);
    cr_assert_eq(resp->n_diff, 1);
    cr_expect_str_eq(resp->diff[0]->key, "nodes.mx2.outbound.relay_host");
    cr_expect(strstr(resp->diff[0]->before, "relay1.example") != NULL, "%s",
              resp->diff[0]->before);
    cr_expect(strstr(resp->diff[0]->after, "relay2.example") != NULL, "%s",
              resp->diff[0]->after);
    pm__response__free_unpacked(resp, NULL);
}

/* A revision that was never made and one pruned by retention get
 * different answers: the admin should learn the history moved on. */
Test(ctld, pruned_revision_is_told_apart)
{
    cr_assert_eq(pm_store_set_retention(s_store, 2), PM_OK);
    for (int i = 1; i <= 5; i++)
        s_push_n(i, i);
    Pm__Request req = s_req(PM__REQUEST__OP__SHOW);
    req.rev = 1;
    Pm__Response *resp = s_call(&req);
    cr_expect_eq(resp->status, PM__RESPONSE__STATUS__NOT_FOUND);
    cr_expect(resp->error &&
                  strstr(resp->error, "revision 1 is no longer "
                                      "kept") &&
                  strstr(resp->error, "history_keep"),
              "%s", resp->error);
    pm__response__free_unpacked(resp, NULL);

    req.rev = 9;
    resp = s_call(&req);
    cr_expect_eq(resp->status, PM__RESPONSE__STATUS__NOT_FOUND);
    cr_expect(resp->error &&
                  strstr(resp->error, "revision 9 does not exist (the "
                                      "head is 5)"),
              "%s", resp->error);
    pm__response__free_unpacked(resp, NULL);

    req = s_req(PM__REQUEST__OP__ROLLBACK);
    req.rev = 2;
    resp = s_call(&req);
    cr_expect_eq(resp->status, PM__RESPONSE__STATUS__NOT_FOUND);
    cr_expect(resp->error && strstr(resp->error, "no longer kept"), "%s",
              resp->error);
    pm__response__free_unpacked(resp, NULL);
}

Test(ctld, diff_missing_revision)
{
    s_push_n(1, 1);
    Pm__Response *resp = s_diff(1, 9);
    cr_expect_eq(resp->status, PM__RESPONSE__STATUS__NOT_FOUND);
    cr_expect(resp->error && strstr(resp->error, "9"), "%s", resp->error);
    cr_expect_eq(resp->n_diff, 0);
    pm__response__free_unpacked(resp, NULL);
    resp = s_diff(8, 1);
    cr_expect_eq(resp->status, PM__RESPONSE__STATUS__NOT_FOUND);
    cr_expect(resp->error && strstr(resp->error, "8"), "%s", resp->error);
    pm__response__free_unpacked(resp, NULL);
}

/* ---- ROLLBACK ----------------------------------------------------------- */

Test(ctld, rollback_commits_old_policy)
{
    s_push_n(1, 1);
    s_push_n(2, 2);
    Pm__Revision *r1 = s_stored(1);
    Pm__Request req = s_req(PM__REQUEST__OP__ROLLBACK);
    req.rev = 1;
    Pm__Response *resp = s_call_as(&req, "bob");
    cr_assert_eq(resp->status, PM__RESPONSE__STATUS__OK, "%s",
                 s_problems(resp));
    cr_assert_not_null(resp->revision);
    cr_expect_eq(resp->revision->number, 3);
    cr_expect_eq(resp->revision->parent, 2);
    cr_expect_eq(resp->revision->rollback_of, 1);
    cr_expect_str_eq(resp->revision->digest, r1->digest);
    cr_expect_str_eq(resp->revision->author, "bob");
    cr_expect(strstr(resp->revision->message, "1") != NULL, "%s",
              resp->revision->message);
    cr_expect_eq(resp->head, 3);
    pm__response__free_unpacked(resp, NULL);

    Pm__Revision *r3 = s_stored(3);
    cr_expect_str_eq(r3->policy->inbound_admin_address,
                     r1->policy->inbound_admin_address);
    cr_expect_eq(r3->rollback_of, 1);
    pm__revision__free_unpacked(r3, NULL);

    /* rolling back to what the head already holds is still recorded */
    req.rev = 3;
    req.message = "again";
    resp = s_call(&req);
    cr_expect_eq(resp->status, PM__RESPONSE__STATUS__OK);
    cr_expect_eq(resp->revision->number, 4);
    cr_expect_eq(resp->revision->rollback_of, 3);
    cr_expect_str_eq(resp->revision->message, "again");
    pm__response__free_unpacked(resp, NULL);
    pm__revision__free_unpacked(r1, NULL);
}

Test(ctld, rollback_missing_revision)
{
    s_push_n(1, 1);
    Pm__Request req = s_req(PM__REQUEST__OP__ROLLBACK);
    req.rev = 4;
    Pm__Response *resp = s_call(&req);
    cr_expect_eq(resp->status, PM__RESPONSE__STATUS__NOT_FOUND);
    cr_expect_null(resp->revision);
    pm__response__free_unpacked(resp, NULL);
    cr_expect_eq(s_head(), 1);
}

/* ---- NODES, PING, unknown ---------------------------------------------- */

Test(ctld, nodes_empty_then_stored)
{
    Pm__Request req = s_req(PM__REQUEST__OP__NODES);
    Pm__Response *resp = s_call(&req);
    cr_expect_eq(resp->status, PM__RESPONSE__STATUS__OK);
    cr_expect_eq(resp->n_nodes, 0);
    cr_expect_eq(resp->head, 0);
    pm__response__free_unpacked(resp, NULL);

    Pm__NodeStatus st = PM__NODE_STATUS__INIT;
    st.name = "mx1";
    st.address = "192.0.2.1";
    st.applied_rev = 0;
    st.postfix_running = 1;
    cr_assert_eq(pm_store_node_put(s_store, &st), PM_OK);
    resp = s_call(&req);
    cr_expect_eq(resp->status, PM__RESPONSE__STATUS__OK);
    cr_assert_eq(resp->n_nodes, 1);
    cr_expect_str_eq(resp->nodes[0]->name, "mx1");
    cr_expect_str_eq(resp->nodes[0]->address, "192.0.2.1");
    cr_expect(resp->nodes[0]->postfix_running);
    pm__response__free_unpacked(resp, NULL);
}

Test(ctld, ping_answers_head)
{
    Pm__Request req = s_req(PM__REQUEST__OP__PING);
    Pm__Response *resp = s_call(&req);
    cr_expect_eq(resp->status, PM__RESPONSE__STATUS__OK);
    cr_expect_eq(resp->head, 0);
    pm__response__free_unpacked(resp, NULL);
    s_push_n(1, 1);
    s_push_n(2, 2);
    resp = s_call(&req);
    cr_expect_eq(resp->status, PM__RESPONSE__STATUS__OK);
    cr_expect_eq(resp->head, 2);
    pm__response__free_unpacked(resp, NULL);
}

Test(ctld, unknown_op_is_bad_request)
{
    Pm__Request req = s_req(PM__REQUEST__OP__NONE);
    Pm__Response *resp = s_call(&req);
    cr_expect_eq(resp->status, PM__RESPONSE__STATUS__BAD_REQUEST);
    cr_expect(resp->error && *resp->error);
    pm__response__free_unpacked(resp, NULL);
    req.op = (Pm__Request__Op)77;
    resp = s_call(&req);
    cr_expect_eq(resp->status, PM__RESPONSE__STATUS__BAD_REQUEST);
    pm__response__free_unpacked(resp, NULL);
    cr_expect_eq(s_head(), 0);
}

Test(ctld, node_add_without_fleet)
{
    Pm__Request req = s_req(PM__REQUEST__OP__NODE_ADD);
    req.node = "mx1";
    req.public_key = "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7";
    Pm__Response *resp = s_call(&req);
    cr_expect_eq(resp->status, PM__RESPONSE__STATUS__BAD_REQUEST);
    pm__response__free_unpacked(resp, NULL);
    /* a bad node name is refused before anything else */
    req.node = "mx 1/..";
    resp = s_call(&req);
    cr_expect_eq(resp->status, PM__RESPONSE__STATUS__INVALID);
    cr_expect(resp->error && strstr(resp->error, "mx 1/.."), "%s", resp->error);
    pm__response__free_unpacked(resp, NULL);
    /* a refusal quoting 4 KiB the admin sent still passes the client's
     * wire check (s_call unpacks it), cut to what one string may hold */
    char long_name[PM_WIRE_STRING_MAX - 5];
    memset(long_name, 'a', sizeof long_name - 1);
    long_name[sizeof long_name - 1] = '\0';
    req.node = long_name;
    resp = s_call(&req);
    cr_expect_eq(resp->status, PM__RESPONSE__STATUS__INVALID);
    cr_expect(strncmp(resp->error, "node name 'aaa", 14) == 0, "%.40s",
              resp->error);
    cr_expect_leq(strlen(resp->error), PM_WIRE_STRING_MAX);
    pm__response__free_unpacked(resp, NULL);

    Pm__Request rm = s_req(PM__REQUEST__OP__NODE_REMOVE);
    rm.node = "mx1";
    resp = s_call(&rm);
    cr_expect_eq(resp->status, PM__RESPONSE__STATUS__BAD_REQUEST);
    pm__response__free_unpacked(resp, NULL);
}

/* A policy test and why need nodes: a controller serving none says so. */
Test(ctld, node_requests_without_fleet)
{
    Pm__PolicyTest t = PM__POLICY_TEST__INIT;
    t.rev = 1;
    Pm__WhyQuery q = PM__WHY_QUERY__INIT;
    q.queue_id = (char *)"4XYZ123";
    q.max = 10;
    Pm__Request reqs[] = {s_req(PM__REQUEST__OP__POLICY_TEST),
                          s_req(PM__REQUEST__OP__WHY)};
    reqs[0].test = &t;
    reqs[1].why = &q;
    for (size_t i = 0; i < COUNT(reqs); i++) {
        Pm__Response *resp = s_call(&reqs[i]);
        cr_expect_eq(resp->status, PM__RESPONSE__STATUS__INTERNAL, "op %d",
                     reqs[i].op);
        cr_expect_str_eq(resp->error, "this controller serves no nodes");
        pm__response__free_unpacked(resp, NULL);
    }
}

Test(ctld, destroy_null_is_safe)
{
    pm_ctld_t *none = NULL;
    pm_ctld_destroy(&none);
    cr_expect_null(none);
}

/* ---- hostile input ------------------------------------------------------- */

/* The controller opens no path a client names: a `file:` field in a
 * `policy set` value is refused, whatever it names. A FIFO would block its
 * one thread; a readable file would be copied into the policy for any
 * admin to read back with `policy show`. */
Test(ctld, set_refuses_file_fields)
{
    char fifo[128];
    snprintf(fifo, sizeof fifo, "%s/fifo.ndb", s_dir);
    cr_assert_eq(mkfifo(fifo, 0600), 0);
    char secret[128];
    snprintf(secret, sizeof secret, "%s/secret.ndb", s_dir);
    FILE *f = fopen(secret, "w");
    cr_assert_not_null(f);
    fputs("Secret.Sig:0:*:73656372657421\n", f);
    fclose(f);
    const char *paths[] = {fifo, secret, "relative.ndb"};
    for (size_t i = 0; i < COUNT(paths); i++) {
        char assign[256], add[256];
        snprintf(assign, sizeof assign, "[{name: a.ndb, file: \"%s\"}]",
                 paths[i]);
        snprintf(add, sizeof add, "{name: a.ndb, file: \"%s\"}", paths[i]);
        Pm__Edit e[] = {
            s_edit("antivirus.custom_signatures", PM__EDIT__OP__ASSIGN, assign),
            s_edit("antivirus.custom_signatures", PM__EDIT__OP__ADD, add),
        };
        for (size_t j = 0; j < COUNT(e); j++) {
            Pm__Response *resp = s_set(NULL, &e[j], 1, -1);
            cr_expect_eq(resp->status, PM__RESPONSE__STATUS__INVALID, "%s",
                         s_problems(resp));
            cr_expect(s_problem_has(resp, "antivirus.custom_signatures",
                                    "is refused here", NULL),
                      "%s", s_problems(resp));
            pm__response__free_unpacked(resp, NULL);
        }
    }
    cr_expect_eq(s_head(), 0, "nothing may be stored");
    /* content is what the controller takes */
    Pm__Edit ok = s_edit(
        "antivirus.custom_signatures", PM__EDIT__OP__ADD,
        "{name: a.ndb, content: \"Ok.Sig:0:*:707269766d74612d6f6b\\n\"}");
    Pm__Response *resp = s_set(NULL, &ok, 1, -1);
    cr_expect_eq(resp->status, PM__RESPONSE__STATUS__OK, "%s",
                 s_problems(resp));
    pm__response__free_unpacked(resp, NULL);
}

static void
s_enrol(const char *name)
{
    Pm__NodeStatus st = PM__NODE_STATUS__INIT;
    st.name = (char *)name;
    cr_assert_eq(pm_store_node_put(s_store, &st), PM_OK);
}

/* Overrides are found by exact node name: those for a name no node is
 * enrolled under apply to nothing, which push, set and show say. */
Test(ctld, overrides_for_unknown_nodes_are_warned_about)
{
    s_enrol("mx1");
    s_enrol("mx2");
    s_push_n(1, 1);
    Pm__Edit e = s_edit("outbound.sasl_auth", PM__EDIT__OP__ASSIGN, "false");
    const struct {
        const char *node, *warning;
    } cases[] = {
        {"mx1", NULL},
        {"MX2", "no enrolled node is named 'MX2' (node names are "
                "case-sensitive; did you mean 'mx2'?)"},
        {"mx9", "no enrolled node is named 'mx9': its overrides apply to "
                "no node"},
    };
    for (size_t i = 0; i < COUNT(cases); i++) {
        Pm__Response *resp = s_set(cases[i].node, &e, 1, -1);
        cr_assert_eq(resp->status, PM__RESPONSE__STATUS__OK, "%s",
                     s_problems(resp));
        if (cases[i].warning)
            cr_expect(s_problem_has(resp, cases[i].warning, NULL), "%s: %s",
                      cases[i].node, s_problems(resp));
        else
            cr_expect_eq(resp->n_problems, 0, "%s", s_problems(resp));
        pm__response__free_unpacked(resp, NULL);
    }
    /* show names both, once each; mx1 matches and is not named */
    Pm__Request req = s_req(PM__REQUEST__OP__SHOW);
    Pm__Response *resp = s_call(&req);
    cr_assert_eq(resp->status, PM__RESPONSE__STATUS__OK);
    cr_expect_eq(resp->n_problems, 2, "%s", s_problems(resp));
    cr_expect(s_problem_has(resp, "nodes.MX2:", "did you mean 'mx2'", NULL));
    cr_expect(s_problem_has(resp, "nodes.mx9:", NULL));
    cr_expect_not(s_problem_has(resp, "'mx1'", NULL));
    pm__response__free_unpacked(resp, NULL);
    /* a whole policy pushed with them gets the same warnings */
    Pm__Revision *head = s_stored(0);
    free(head->policy->inbound_admin_address);
    head->policy->inbound_admin_address = strdup("other@example.com");
    req = s_req(PM__REQUEST__OP__PUSH);
    req.policy = head->policy;
    resp = s_call(&req);
    cr_assert_eq(resp->status, PM__RESPONSE__STATUS__OK, "%s",
                 s_problems(resp));
    cr_expect_eq(resp->n_problems, 2, "%s", s_problems(resp));
    pm__response__free_unpacked(resp, NULL);
    pm__revision__free_unpacked(head, NULL);
}
