/* pm_ctld_test.c - privmta-ctl policy test: a candidate policy rehearsed
 * on one node's real Postfix and filter.
 *
 * Like why, a request the controller does not answer at once: the test is
 * checked here (the candidate exactly as a push is, a revision must be
 * stored), completed with the policies to compare (the trial and the
 * head's) and sent to one node (pm_fleet_test), and the client is answered
 * when that node's TEST_ANSWER comes, or PM_CTLD_TEST_MS after asking. The
 * client's ROUTER identity is kept meanwhile; the loop goes on serving
 * everything else. At most PM_CTLD_TEST_PENDING tests wait at once: each
 * costs its node a scratch Postfix and filter. An answer is taken only
 * from the node asked, for the id it was asked with; anything else is
 * dropped.
 */
#include "pm_ctld_private.h"

#include "pm_log.h"
#include "pm_mem.h"
#include "pm_text.h"
#include "pm_wire.h"

#include <inttypes.h>
#include <string.h>
#include <time.h>

/* Caps on agent-supplied text: in a log line, in an answer's error (the
 * whole error must stay under PM_WIRE_STRING_MAX). */
#define S_LOG_TEXT_MAX 512
#define S_ERROR_TEXT_MAX 2000

typedef struct {
    uint64_t id;
    zframe_t *route; /* the client's identity on the ROUTER */
    int64_t deadline;
    char *node;    /* the enrolled name of the node asked */
    uint64_t head; /* the store's head when asked */
} s_test_t;

struct pm_ctld_test_t {
    s_test_t tests[PM_CTLD_TEST_PENDING];
    size_t n;
    uint64_t next_id;
};

/* Answers R, a refusal, to the client at *ROUTE, with the role fields,
 * and logs it as pm_ctld_handle logs a request. */
static void
s_reply(pm_ctld_t *self, zframe_t **route, pm_ctld_reply_t *r,
        const char *author)
{
    pm_ctld_role_reply(self, r);
    /* the error may quote the client's node name */
    char *error = pm_text_escape(r->resp.error, S_LOG_TEXT_MAX);
    pm_info("policy test by %s: refused: %s", author, error);
    free(error);
    pm_ctld_send(self, route, &r->resp);
    pm_ctld_reply_clear(r);
}

/* Answers test I with R and forgets it. */
static void
s_finish(pm_ctld_t *self, size_t i, pm_ctld_reply_t *r)
{
    struct pm_ctld_test_t *t = self->test;
    s_test_t *test = &t->tests[i];
    r->resp.head = test->head;
    pm_ctld_role_reply(self, r);
    pm_ctld_send(self, &test->route, &r->resp);
    free(test->node);
    t->tests[i] = t->tests[--t->n];
    memset(&t->tests[t->n], 0, sizeof t->tests[0]);
}

/* A node's answer (pm_fleet_on_test): for a test waiting, from the node
 * asked. The results go to the client as they came (borrowed from REP for
 * the call); the node is the enrolled name. */
static void
s_on_answer(const char *node, Pm__AgentReport *rep, void *arg)
{
    pm_ctld_t *self = arg;
    struct pm_ctld_test_t *t = self->test;
    size_t i = 0;
    while (i < t->n && (t->tests[i].id != rep->test_id ||
                        strcmp(t->tests[i].node, node) != 0))
        i++;
    char *label = pm_text_escape(node, 80);
    if (i == t->n) {
        pm_debug("node %s: answer to policy test %" PRIu64 " dropped: not "
                 "asked of it, or answered already",
                 label, rep->test_id);
        free(label);
        return;
    }
    pm_ctld_reply_t r = pm_ctld_reply_new();
    if (*rep->test_error) {
        char *shown = pm_text_escape(rep->test_error, S_LOG_TEXT_MAX);
        pm_info("policy test %" PRIu64 " on node %s failed: %s", rep->test_id,
                label, shown);
        free(shown);
        /* cut on a character boundary: the answer must stay UTF-8 */
        char *error = pm_text_escape(rep->test_error, S_ERROR_TEXT_MAX);
        pm_ctld_fail(&r, PM__RESPONSE__STATUS__INTERNAL, "node %s: %s", node,
                     error);
        free(error);
    } else {
        pm_info("policy test %" PRIu64 " on node %s: %zu results", rep->test_id,
                label, rep->n_test_results);
        r.resp.test_results = rep->test_results;
        r.resp.n_test_results = rep->n_test_results;
        r.resp.test_node = (char *)node;
    }
    free(label);
    s_finish(self, i, &r);
    r.resp.test_results = NULL; /* REP's */
    r.resp.n_test_results = 0;
    pm_ctld_reply_clear(&r);
}

/* The policy to try: the candidate as PUSH checks it (borrowed: *OWNED
 * stays NULL), or revision REV's (*OWNED, caller frees). NULL with R
 * failed otherwise. */
static const Pm__Policy *
s_trial(pm_ctld_t *self, const Pm__PolicyTest *test, Pm__Revision **owned,
        pm_ctld_reply_t *r)
{
    *owned = NULL;
    if (test->candidate)
        return pm_ctld_validate(self, test->candidate, "candidate policy", r)
                   ? test->candidate
                   : NULL;
    int rc = pm_store_get(self->store, test->rev, owned);
    if (rc != PM_OK) {
        pm_ctld_revision_fail(self, r, rc, test->rev);
        return NULL;
    }
    if (!(*owned)->policy) /* stored revisions hold theirs */
        pm_ctld_fail(r, PM__RESPONSE__STATUS__INTERNAL,
                     "revision %" PRIu64 " holds no policy", test->rev);
    return (*owned)->policy;
}

/* The head's policy to compare with into *HEAD_REV (caller frees), none
 * when the store is empty or the trial is the head. False with R failed
 * when the head cannot be read. */
static bool
s_head(pm_ctld_t *self, const Pm__PolicyTest *test, uint64_t head,
       Pm__Revision **head_rev, pm_ctld_reply_t *r)
{
    *head_rev = NULL;
    if (head == 0 || test->rev == head)
        return true;
    int rc = pm_store_get(self->store, head, head_rev);
    if (rc != PM_OK) {
        pm_ctld_store_fail(r, rc, "reading the head revision");
        return false;
    }
    return true;
}

/* "never heard from", or how long ago node N was. Caller frees. */
static char *
s_last_heard(const Pm__NodeStatus *n)
{
    if (!n->last_seen)
        return pm_strdup("never heard from");
    long long ago = (long long)(time(NULL) - (time_t)n->last_seen);
    return pm_asprintf("last heard %lld s ago", ago < 0 ? 0 : ago);
}

/* Sends TEST to node WANT (or, with WANT empty, to the first node up by
 * name) and sets *NODE (caller frees) to its name; false with R failed
 * when there is none to send it to. */
static bool
s_send_to_node(pm_ctld_t *self, const char *want, const Pm__PolicyTest *test,
               char **node, pm_ctld_reply_t *r)
{
    Pm__NodeStatus **nodes = NULL;
    size_t n = 0, i = 0;
    pm_fleet_nodes(self->fleet, &nodes, &n);
    for (; i < n && *want; i++)
        if (strcmp(nodes[i]->name, want) == 0)
            break;
    if (*want && i == n) {
        pm_ctld_fail(r, PM__RESPONSE__STATUS__NOT_FOUND,
                     "node %.200s is not enrolled", want);
    } else if (*want) {
        if (strcmp(nodes[i]->liveness, "down") != 0 &&
            strcmp(nodes[i]->liveness, "never") != 0 &&
            pm_fleet_test(self->fleet, want, test)) {
            *node = pm_strdup(want);
        } else {
            char *heard = s_last_heard(nodes[i]);
            pm_ctld_fail(r, PM__RESPONSE__STATUS__CONFLICT,
                         "node %.200s is not connected (%s)", want, heard);
            free(heard);
        }
    } else {
        /* a node up; a late one ("stale") only when none is up */
        for (int pass = 0; pass < 2 && !*node; pass++)
            for (i = 0; i < n && !*node; i++)
                if (strcmp(nodes[i]->liveness, pass ? "stale" : "up") == 0 &&
                    pm_fleet_test(self->fleet, nodes[i]->name, test))
                    *node = pm_strdup(nodes[i]->name);
        if (!*node && n == 0)
            pm_ctld_fail(r, PM__RESPONSE__STATUS__CONFLICT,
                         "no node is enrolled to run the test on");
        else if (!*node)
            pm_ctld_fail(r, PM__RESPONSE__STATUS__CONFLICT,
                         "none of the %zu enrolled nodes is connected to run "
                         "the test on",
                         n);
    }
    pm_store_nodes_free(&nodes, n);
    return *node != NULL;
}

/* Checks and completes the test of REQ and sends it to its node under
 * ID: true with *NODE and *HEAD set, else false with R failed. */
static bool
s_ask(pm_ctld_t *self, const Pm__Request *req, uint64_t id, char **node,
      uint64_t *head, pm_ctld_reply_t *r)
{
    Pm__Revision *stored = NULL, *head_rev = NULL;
    Pm__PolicyTest test = *req->test; /* only read by the packer */
    int rc = pm_store_head(self->store, head);
    if (rc != PM_OK) {
        pm_ctld_store_fail(r, rc, "reading the head");
        return false;
    }
    test.trial = (Pm__Policy *)s_trial(self, req->test, &stored, r);
    if (test.trial && r->resp.status == PM__RESPONSE__STATUS__OK &&
        s_head(self, req->test, *head, &head_rev, r)) {
        test.id = id;
        test.candidate = NULL; /* it travels as the trial */
        test.head = head_rev ? head_rev->policy : NULL;
        test.head_rev = head_rev ? head_rev->number : 0;
        s_send_to_node(self, req->node, &test, node, r);
    }
    if (stored)
        pm__revision__free_unpacked(stored, NULL);
    if (head_rev)
        pm__revision__free_unpacked(head_rev, NULL);
    return *node != NULL;
}

bool
pm_ctld_test_start(pm_ctld_t *self, zframe_t **route, const Pm__Request *req,
                   const char *author)
{
    if (req->op != PM__REQUEST__OP__POLICY_TEST || !self->fleet ||
        self->standby)
        return false;
    if (!self->test) {
        self->test = pm_calloc(1, sizeof *self->test);
        pm_fleet_on_test(self->fleet, s_on_answer, self);
    }
    struct pm_ctld_test_t *t = self->test;
    if (t->n == PM_CTLD_TEST_PENDING)
        return false; /* pm_ctld_handle answers "busy" */
    pm_ctld_reply_t r = pm_ctld_reply_new();
    char *node = NULL;
    uint64_t head = 0, id = t->next_id + 1;
    if (!s_ask(self, req, id, &node, &head, &r)) {
        s_reply(self, route, &r, author);
        return true;
    }
    pm_ctld_reply_clear(&r);
    t->next_id = id;
    s_test_t *test = &t->tests[t->n++];
    test->id = id;
    test->route = *route;
    *route = NULL;
    test->deadline = zclock_mono() + PM_CTLD_TEST_MS;
    test->node = node;
    test->head = head;
    pm_info("policy test by %s: test %" PRIu64 " (%zu messages) sent to "
            "node %s",
            author, id, req->test->n_messages, node);
    return true;
}

int
pm_ctld_test_tick(pm_ctld_t *self, int wait)
{
    struct pm_ctld_test_t *t = self->test;
    int64_t now = zclock_mono();
    for (size_t i = t ? t->n : 0; i-- > 0;) {
        int64_t left = t->tests[i].deadline - now;
        if (left > 0) {
            if (left < wait)
                wait = (int)left;
            continue;
        }
        pm_ctld_reply_t r = pm_ctld_reply_new();
        pm_info("policy test %" PRIu64 " on node %s: no answer within %d s",
                t->tests[i].id, t->tests[i].node, PM_CTLD_TEST_MS / 1000);
        pm_ctld_fail(&r, PM__RESPONSE__STATUS__INTERNAL,
                     "node %s did not answer within %d s", t->tests[i].node,
                     PM_CTLD_TEST_MS / 1000);
        s_finish(self, i, &r);
        pm_ctld_reply_clear(&r);
    }
    return wait;
}

void
pm_ctld_test_busy(pm_ctld_reply_t *r)
{
    pm_ctld_fail(r, PM__RESPONSE__STATUS__CONFLICT,
                 "%d policy tests are running already; try again when "
                 "one has finished (each takes up to %d s)",
                 PM_CTLD_TEST_PENDING, PM_CTLD_TEST_MS / 1000);
}

void
pm_ctld_test_free(pm_ctld_t *self)
{
    struct pm_ctld_test_t *t = self->test;
    for (size_t i = 0; t && i < t->n; i++) {
        zframe_destroy(&t->tests[i].route);
        free(t->tests[i].node);
    }
    PM_FREE(&self->test);
}
