/* pm_ctl_test.c - privmta-ctl policy test: a candidate policy (a file,
 * or a stored revision) rehearsed on real messages on one live node, and
 * compared with the head.
 *
 * The node's agent starts a scratch Postfix and filter with each policy
 * and submits every message to every recipient over SMTP, XCLIENT giving
 * the client the test names; everything is discarded. What comes back,
 * per message, recipient and policy, is the SMTP answer, the verdict, the
 * deciding key and its evidence. An answer changes when its verdict, its
 * reply code or its key differs under the candidate
 * (pm_ctl_testmsg_same).
 *
 * The envelope defaults to what each message says (From:, To:), so the
 * messages may need different envelopes while a test has one: they go in
 * one request per envelope (and per PM_WIRE_TEST_MESSAGES_MAX messages or
 * PM_WIRE_TEST_BYTES_MAX bytes), all to the node that ran the first.
 *
 * Exit 0 when no answer changes (or there is no head to compare with), 1
 * when one does; 2 for a usage error, a message file that cannot be read
 * or is not a message, or one with no envelope to give it; 1 when the
 * candidate file is refused, or the controller refused the test or the
 * node could not run it (stderr says why); 3/4 when the controller could
 * not be reached.
 */
#include "pm_ctl.h"
#include "pm_ctl_json.h"
#include "pm_ctl_show.h"
#include "pm_ctl_testmsg.h"
#include "pm_ctl_client.h"
#include "pm_error.h"
#include "pm_file.h"
#include "pm_mem.h"
#include "pm_policy.h"
#include "pm_wire.h"

#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define S_USAGE                                                                \
    "usage: privmta-ctl policy test [FILE | --rev N] MESSAGE.eml... "          \
    "[--client IP] [--client-name NAME] [--helo NAME] [--from ADDR] "          \
    "[--rcpt ADDR]... [--auth USER] [--node NAME] [--json]\n"

/* An Internet client outside mynetworks: a documentation address
 * (RFC 5737). Nothing is sent to it; XCLIENT only names it. */
#define S_CLIENT "192.0.2.1"

typedef struct {
    uint64_t rev; /* --rev N; 0: the candidate is a FILE */
    const char *client, *client_name, *helo, *from, *auth, *node;
    char **rcpts; /* --rcpt, in order (the strings are argv's) */
    size_t n_rcpts;
    bool json;
} s_opts_t;

typedef struct {
    const char *path; /* as given: the message's name in the test */
    char *data;
    size_t len;
    char *from;   /* the envelope sender; "" the null sender */
    char **rcpts; /* NULL-terminated (pm_conf_list_free) */
    size_t n_rcpts;
    size_t request; /* the request it goes in */
} s_msg_t;

/* One request: its messages (indexes in order) and, once asked, the
 * answer. */
typedef struct {
    size_t *msgs;
    size_t n_msgs, bytes;
    Pm__Response *answer;
} s_request_t;

typedef struct {
    s_opts_t o;
    const char *file; /* the candidate's file, or NULL (--rev) */
    char *helo;       /* the one sent */
    s_msg_t *msgs;
    size_t n_msgs;
    s_request_t *reqs;
    size_t n_reqs;
    size_t answers, changed; /* message-recipient pairs, those changed */
    bool printed_head;       /* the text output's first line */
} s_test_t;

/* Whether S may go into an SMTP command: no control character. */
static bool
s_plain(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return false;
    return true;
}

static bool
s_option(int c, const char *arg, s_opts_t *o)
{
    char *end = NULL;
    if (c == 'j') {
        o->json = true;
        return true;
    }
    if (!s_plain(arg))
        return false;
    switch (c) {
    case 'r':
        errno = 0;
        o->rev = strtoull(arg, &end, 10);
        return !errno && end != arg && !*end && o->rev > 0 && *arg != '-';
    case 'c': {
        unsigned char buf[sizeof(struct in6_addr)];
        o->client = arg;
        return inet_pton(AF_INET, arg, buf) == 1 ||
               inet_pton(AF_INET6, arg, buf) == 1;
    }
    case 'N':
        o->client_name = arg;
        return true;
    case 'h':
        o->helo = arg;
        return *arg != '\0';
    case 'f':
        o->from = arg;
        return true;
    case 't':
        o->rcpts = pm_realloc(o->rcpts, (o->n_rcpts + 1) * sizeof *o->rcpts);
        o->rcpts[o->n_rcpts++] = (char *)arg;
        return *arg && o->n_rcpts <= PM_WIRE_TEST_RCPTS_MAX;
    case 'a':
        o->auth = arg;
        return true;
    case 'n':
        o->node = arg;
        return *arg != '\0';
    default:
        return false;
    }
}

/* Parses the options into O. Returns the index of the first operand, or
 * -1 after saying what is wrong. */
static int
s_options(int argc, char **argv, s_opts_t *o)
{
    static const struct option longs[] = {
        {"rev", required_argument, NULL, 'r'},
        {"client", required_argument, NULL, 'c'},
        {"client-name", required_argument, NULL, 'N'},
        {"helo", required_argument, NULL, 'h'},
        {"from", required_argument, NULL, 'f'},
        {"rcpt", required_argument, NULL, 't'},
        {"auth", required_argument, NULL, 'a'},
        {"node", required_argument, NULL, 'n'},
        {"json", no_argument, NULL, 'j'},
        {NULL, 0, NULL, 0}};
    *o = (s_opts_t){.client = S_CLIENT, .client_name = "", .auth = ""};
    int c, at = -1;
    opterr = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, ":", longs, &at)) != -1) {
        if (c == ':' || c == '?') {
            fprintf(stderr, "privmta-ctl policy test: %s '%s'\n",
                    c == ':' ? "a value is needed for" : "unknown option",
                    argv[optind - 1]);
            return -1;
        }
        if (!s_option(c, optarg, o)) {
            fprintf(stderr,
                    "privmta-ctl policy test: bad value '%s' for --%s%s\n",
                    optarg, longs[at].name,
                    c == 'c'   ? " (an IP address)"
                    : c == 'r' ? " (a revision number)"
                    : c == 't' ? " (at most 10 recipients, none empty)"
                               : "");
            return -1;
        }
        at = -1;
    }
    return optind;
}

/* Reads message PATH into M, with its envelope. 0, or -1 after saying
 * what is wrong. */
static int
s_read_message(const char *path, const s_opts_t *o, s_msg_t *m)
{
    char *why = NULL, *from = NULL, **rcpts = NULL;
    size_t n = 0;
    struct stat st;
    m->path = path;
    int rc =
        pm_file_read(path, PM_WIRE_CONTENT_MAX, 0, &m->data, &m->len, &why);
    if (rc == PM_EINVAL && stat(path, &st) == 0 && S_ISREG(st.st_mode) &&
        (uint64_t)st.st_size > PM_WIRE_CONTENT_MAX) {
        free(why);
        why = pm_asprintf("%s: %lld bytes, more than the %u a test message "
                          "may have",
                          path, (long long)st.st_size, PM_WIRE_CONTENT_MAX);
    } else if (rc == PM_OK && (why = pm_ctl_testmsg_check(m->data, m->len))) {
        char *named = pm_asprintf("%s: %s", path, why);
        free(why);
        why = named;
    }
    if (!why)
        pm_ctl_testmsg_envelope(m->data, m->len, &from, &rcpts, &n);
    if (!why && !o->from && !from)
        why = pm_asprintf("%s: no sender: its From: names no address; give "
                          "--from ADDR (--from '' for the null sender)",
                          path);
    else if (!why && !o->n_rcpts && !n)
        why = pm_asprintf("%s: no recipient: give --rcpt", path);
    else if (!why && !o->n_rcpts && n > PM_WIRE_TEST_RCPTS_MAX)
        why = pm_asprintf("%s: %zu recipients in To:, more than the %d a "
                          "test may have: give --rcpt",
                          path, n, PM_WIRE_TEST_RCPTS_MAX);
    else if (!why && !o->from && !s_plain(from))
        why = pm_asprintf("%s: its From: address holds a control "
                          "character: give --from",
                          path);
    if (!why) {
        m->from = pm_strdup(o->from ? o->from : from);
        m->n_rcpts = o->n_rcpts ? o->n_rcpts : n;
        m->rcpts = pm_calloc(m->n_rcpts + 1, sizeof *m->rcpts);
        for (size_t i = 0; i < m->n_rcpts; i++)
            m->rcpts[i] = pm_strdup(o->n_rcpts ? o->rcpts[i] : rcpts[i]);
    }
    free(from);
    pm_conf_list_free(&rcpts);
    if (!why)
        return 0;
    fprintf(stderr, "privmta-ctl: %s\n", why);
    free(why);
    return -1;
}

static bool
s_same_envelope(const s_msg_t *a, const s_msg_t *b)
{
    if (strcmp(a->from, b->from) != 0 || a->n_rcpts != b->n_rcpts)
        return false;
    for (size_t i = 0; i < a->n_rcpts; i++)
        if (strcmp(a->rcpts[i], b->rcpts[i]) != 0)
            return false;
    return true;
}

/* Puts each message in a request: the first with its envelope that has
 * room, else a new one. */
static void
s_group(s_test_t *t)
{
    t->reqs = pm_calloc(t->n_msgs, sizeof *t->reqs);
    for (size_t i = 0; i < t->n_msgs; i++) {
        s_msg_t *m = &t->msgs[i];
        size_t k = 0;
        for (; k < t->n_reqs; k++) {
            s_request_t *r = &t->reqs[k];
            if (s_same_envelope(&t->msgs[r->msgs[0]], m) &&
                r->n_msgs < PM_WIRE_TEST_MESSAGES_MAX &&
                r->bytes + m->len <= PM_WIRE_TEST_BYTES_MAX)
                break;
        }
        if (k == t->n_reqs)
            t->reqs[t->n_reqs++].msgs = pm_calloc(t->n_msgs, sizeof(size_t));
        s_request_t *r = &t->reqs[k];
        r->msgs[r->n_msgs++] = i;
        r->bytes += m->len;
        m->request = k;
    }
}

/* The result of POLICY ("candidate" or "head") for message M and
 * recipient RCPT in answer A, or NULL. */
static const Pm__TestResult *
s_result(const Pm__Response *a, const s_msg_t *m, const char *rcpt, bool head)
{
    for (size_t i = 0; i < a->n_test_results; i++) {
        const Pm__TestResult *r = a->test_results[i];
        if ((strcmp(r->policy, "head") == 0) == head &&
            strcmp(r->message, m->path) == 0 && strcasecmp(r->rcpt, rcpt) == 0)
            return r;
    }
    return NULL;
}

/* Whether the answer A compares with a head. */
static bool
s_has_head(const s_test_t *t, const Pm__Response *a)
{
    return a->head && t->o.rev != a->head;
}

/* "candidate FILE", "revision N" (caller frees). */
static char *
s_trial_name(const s_test_t *t)
{
    return t->o.rev ? pm_asprintf("revision %llu", (unsigned long long)t->o.rev)
                    : pm_asprintf("candidate %s", t->file);
}

static void
s_print_header(s_test_t *t, const Pm__Response *a)
{
    char *trial = s_trial_name(t);
    printf("node ");
    pm_ctl_cell(a->test_node, 0, PM_CTL_CELL_MAX, ": ");
    if (s_has_head(t, a))
        printf("%s against head %llu\n", trial, (unsigned long long)a->head);
    else if (a->head)
        printf("%s (the head itself: nothing to compare with)\n", trial);
    else
        printf("%s (no policy was pushed yet: nothing to compare with)\n",
               trial);
    free(trial);
}

/* One answer's line: LABEL, then the verdict, the SMTP answer, where it
 * came and what decided it; TAIL after. Text from the node is escaped. */
static void
s_print_row(const char *label, const Pm__TestResult *r, const char *tail)
{
    printf("  %-11s ", label);
    if (!r) {
        printf("(the node sent no answer for it)%s\n", tail);
        return;
    }
    pm_ctl_cell(r->verdict, 10, PM_CTL_CELL_MAX, " ");
    pm_ctl_cell(r->reply, 0, PM_CTL_LINE_MAX, "");
    if (*r->stage && strcmp(r->stage, "end-of-data") != 0) {
        printf(" (at ");
        pm_ctl_cell(r->stage, 0, PM_CTL_CELL_MAX, ")");
    }
    if (*r->key) {
        printf("  by ");
        pm_ctl_cell(r->key, 0, PM_CTL_CELL_MAX, "");
    }
    if (*r->evidence) {
        printf(*r->key ? ": " : "  ");
        pm_ctl_cell(r->evidence, 0, PM_CTL_LINE_MAX, "");
    }
    printf("%s\n", tail);
}

/* Counts (and with PRINT shows) what message M got for recipient RCPT. */
static void
s_pair(s_test_t *t, const Pm__Response *a, const s_msg_t *m, const char *rcpt,
       bool print)
{
    const Pm__TestResult *trial = s_result(a, m, rcpt, false);
    const Pm__TestResult *head = s_result(a, m, rcpt, true);
    bool compare = s_has_head(t, a);
    bool same = !compare || (trial && head && pm_ctl_testmsg_same(trial, head));
    t->answers++;
    t->changed += !same;
    if (!print)
        return;
    pm_ctl_cell(m->path, 0, PM_CTL_LINE_MAX, " -> ");
    pm_ctl_cell(rcpt, 0, PM_CTL_LINE_MAX, "\n");
    char label[32];
    snprintf(label, sizeof label, "head %llu", (unsigned long long)a->head);
    if (compare && same) {
        s_print_row("both", trial, "  (same under both)");
        return;
    }
    if (compare)
        s_print_row(label, head, "");
    char *name = t->o.rev
                     ? pm_asprintf("rev %llu", (unsigned long long)t->o.rev)
                     : pm_strdup("candidate");
    s_print_row(name, trial, same ? "" : "  <- changed");
    free(name);
}

/* Asks for request K; shows its answers unless --json. */
static int
s_ask(pm_ctl_t *ctl, s_test_t *t, size_t k, const Pm__Policy *candidate)
{
    s_request_t *rq = &t->reqs[k];
    const s_msg_t *first = &t->msgs[rq->msgs[0]];
    Pm__TestMessage *items = pm_calloc(rq->n_msgs, sizeof *items);
    Pm__TestMessage **msgs = pm_calloc(rq->n_msgs, sizeof *msgs);
    for (size_t i = 0; i < rq->n_msgs; i++) {
        const s_msg_t *m = &t->msgs[rq->msgs[i]];
        pm__test_message__init(&items[i]);
        items[i].name = (char *)m->path;
        items[i].data.data = (uint8_t *)m->data;
        items[i].data.len = m->len;
        msgs[i] = &items[i];
    }
    Pm__PolicyTest test = PM__POLICY_TEST__INIT;
    test.candidate = (Pm__Policy *)candidate;
    test.rev = t->o.rev;
    test.messages = msgs;
    test.n_messages = rq->n_msgs;
    test.client_addr = (char *)t->o.client;
    test.client_name = (char *)t->o.client_name;
    test.helo = t->helo;
    test.sender = first->from;
    test.rcpts = first->rcpts;
    test.n_rcpts = first->n_rcpts;
    test.auth = (char *)t->o.auth;
    Pm__Request req = PM__REQUEST__INIT;
    req.op = PM__REQUEST__OP__POLICY_TEST;
    req.expect_rev = -1;
    req.test = &test;
    /* every request to the node that ran the first */
    req.node = (char *)(t->o.node ? t->o.node
                        : k       ? t->reqs[0].answer->test_node
                                  : "");
    if (isatty(STDERR_FILENO))
        fprintf(stderr,
                "privmta-ctl: rehearsing %zu message%s on %s (up to "
                "%d s)...\n",
                rq->n_msgs, rq->n_msgs == 1 ? "" : "s",
                *req.node ? req.node : "a node", PM_CTLD_TEST_MS / 1000);
    int rc = pm_ctl_call_slow(ctl, &req, PM_CTLD_TEST_MS, &rq->answer);
    free(msgs);
    free(items);
    if (rc != PM_EXIT_OK)
        return rc;
    bool print = !t->o.json;
    if (print && !t->printed_head)
        s_print_header(t, rq->answer);
    t->printed_head = true;
    for (size_t i = 0; i < rq->n_msgs; i++) {
        const s_msg_t *m = &t->msgs[rq->msgs[i]];
        for (size_t r = 0; r < m->n_rcpts; r++)
            s_pair(t, rq->answer, m, m->rcpts[r], print);
    }
    fflush(stdout);
    return PM_EXIT_OK;
}

static void
s_print_summary(const s_test_t *t)
{
    const Pm__Response *a = t->reqs[0].answer;
    if (!s_has_head(t, a))
        printf("%zu answer%s, nothing to compare with\n", t->answers,
               t->answers == 1 ? "" : "s");
    else
        printf("%zu of %zu answer%s change%s\n", t->changed, t->answers,
               t->answers == 1 ? "" : "s", t->answers == 1 ? "s" : "");
}

static void
s_print_json(const s_test_t *t)
{
    const Pm__Response *first = t->reqs[0].answer;
    json_t *results = json_array(), *changes = json_array();
    for (size_t k = 0; k < t->n_reqs; k++) {
        const Pm__Response *a = t->reqs[k].answer;
        for (size_t i = 0; i < a->n_test_results; i++)
            json_array_append_new(results,
                                  pm_ctl_json_test_result(a->test_results[i]));
    }
    for (size_t i = 0; i < t->n_msgs; i++) {
        const s_msg_t *m = &t->msgs[i];
        const Pm__Response *a = t->reqs[m->request].answer;
        for (size_t r = 0; s_has_head(t, a) && r < m->n_rcpts; r++) {
            const Pm__TestResult *x = s_result(a, m, m->rcpts[r], false);
            const Pm__TestResult *y = s_result(a, m, m->rcpts[r], true);
            if (!x || !y || !pm_ctl_testmsg_same(x, y))
                json_array_append_new(changes,
                                      json_pack("{s:s, s:s}", "message",
                                                m->path, "rcpt", m->rcpts[r]));
        }
    }
    json_t *head = s_has_head(t, first) ? json_integer((json_int_t)first->head)
                                        : json_null();
    pm_ctl_print_json(json_pack(
        "{s:s, s:s?, s:o, s:o, s:o, s:I, s:I, s:o}", "node", first->test_node,
        "candidate", t->file, "revision",
        t->o.rev ? json_integer((json_int_t)t->o.rev) : json_null(), "head",
        head, "results", results, "answers", (json_int_t)t->answers, "changed",
        (json_int_t)t->changed, "changes", changes));
}

/* Reads the candidate (a FILE) and the messages into T. An exit code
 * other than PM_EXIT_OK after saying what is wrong. */
static int
s_load(s_test_t *t, int argc, char **argv, int at, Pm__Policy **candidate)
{
    if (!t->o.rev) {
        t->file = argv[at++];
        /* checked here first for FILE:LINE errors, as by policy push */
        pm_diag_t *diag = pm_diag_new(t->file);
        *candidate = pm_policy_load_file(t->file, diag);
        pm_diag_print(diag, stderr);
        pm_diag_destroy(&diag);
        if (!*candidate)
            return PM_EXIT_REJECTED;
    }
    t->msgs = pm_calloc((size_t)(argc - at), sizeof *t->msgs);
    for (; at < argc; at++) {
        for (size_t i = 0; i < t->n_msgs; i++)
            if (strcmp(t->msgs[i].path, argv[at]) == 0) {
                fprintf(stderr, "privmta-ctl: %s: given twice\n", argv[at]);
                return PM_EXIT_USAGE;
            }
        if (s_read_message(argv[at], &t->o, &t->msgs[t->n_msgs]) != 0) {
            free(t->msgs[t->n_msgs].data);
            return PM_EXIT_USAGE;
        }
        t->n_msgs++;
    }
    return PM_EXIT_OK;
}

static void
s_free(s_test_t *t, Pm__Policy **candidate)
{
    for (size_t i = 0; i < t->n_msgs; i++) {
        free(t->msgs[i].data);
        free(t->msgs[i].from);
        pm_conf_list_free(&t->msgs[i].rcpts);
    }
    free(t->msgs);
    for (size_t k = 0; k < t->n_reqs; k++) {
        free(t->reqs[k].msgs);
        if (t->reqs[k].answer)
            pm__response__free_unpacked(t->reqs[k].answer, NULL);
    }
    free(t->reqs);
    free(t->o.rcpts);
    free(t->helo);
    pm_policy_free(candidate);
}

int
pm_ctl_policy_test(pm_ctl_t *ctl, int argc, char **argv)
{
    s_test_t t = {0};
    Pm__Policy *candidate = NULL;
    int at = s_options(argc, argv, &t.o);
    /* FILE unless --rev, then at least one message */
    if (at < 0 || argc - at < (t.o.rev ? 1 : 2)) {
        fprintf(stderr, S_USAGE);
        free(t.o.rcpts);
        return PM_EXIT_USAGE;
    }
    /* an address literal passes every HELO check */
    t.helo = t.o.helo                  ? pm_strdup(t.o.helo)
             : strchr(t.o.client, ':') ? pm_asprintf("[IPv6:%s]", t.o.client)
                                       : pm_asprintf("[%s]", t.o.client);
    int rc = s_load(&t, argc, argv, at, &candidate);
    if (rc == PM_EXIT_OK)
        s_group(&t);
    for (size_t k = 0; rc == PM_EXIT_OK && k < t.n_reqs; k++)
        rc = s_ask(ctl, &t, k, candidate);
    if (rc == PM_EXIT_OK) {
        if (t.o.json)
            s_print_json(&t);
        else
            s_print_summary(&t);
        rc = t.changed ? PM_EXIT_REJECTED : PM_EXIT_OK;
    } else if (rc == PM_EXIT_REJECTED) {
        /* here 1 says "an answer changes", for a script to gate a push
         * on; a test that could not run (an invalid candidate, a node
         * that refused or failed it) is 2, as trouble is for diff(1) */
        rc = PM_EXIT_USAGE;
    }
    s_free(&t, &candidate);
    return rc;
}
