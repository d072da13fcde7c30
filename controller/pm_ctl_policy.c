/* pm_ctl_policy.c - privmta-ctl policy ... commands. */
#include "pm_check.h"
#include "pm_clock.h"
#include "pm_ctl.h"
#include "pm_ctl_json.h"
#include "pm_ctl_show.h"
#include "pm_error.h"
#include "pm_file.h"
#include "pm_mem.h"
#include "pm_policy.h"
#include "pm_text.h"
#include "pm_value.h"
#include "pm_wire.h"

#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define S_NO_REV (-1)

typedef struct {
    int64_t expect_rev;
    const char *message;
    const char *node;
    bool json;
    double wait; /* seconds; < 0: do not wait */
    int64_t rev;
    unsigned limit;
    char **resets; /* --reset KEY, in order */
    size_t n_resets;
    Pm__RolloutSpec canary; /* push --canary ... (n_canary 0: none) */
} s_opts_t;

static bool
s_number(const char *text, int64_t min, int64_t *out)
{
    char *end = NULL;
    errno = 0;
    long long v = strtoll(text, &end, 10);
    if (errno || !end || *end || end == text || v < min)
        return false;
    *out = v;
    return true;
}

/* --canary NODE (repeated), --auto-revert, --min-healthy D, --deadline D
 * of a canary push into SPEC (pm_rollout.h); false when a value is bad. */
static bool
s_canary_option(int c, const char *arg, Pm__RolloutSpec *spec)
{
    uint32_t secs = 0;
    char *why = NULL;
    if (c == 'a')
        spec->auto_revert = true;
    else if (c == 'c' && *arg) {
        spec->canary =
            pm_realloc(spec->canary, (spec->n_canary + 1) * sizeof(char *));
        spec->canary[spec->n_canary++] = (char *)arg;
    } else if ((c == 'h' || c == 'd') && !(why = pm_duration_parse(arg, &secs)))
        *(c == 'h' ? &spec->min_healthy_ms : &spec->deadline_ms) =
            (int64_t)secs * 1000;
    else {
        free(why);
        return false;
    }
    return true;
}

/* Parses the options every policy command shares. Returns the index of the
 * first operand, or -1 after printing a usage error. */
static int
s_options(int argc, char **argv, s_opts_t *o, const char *allowed)
{
    static const struct option longs[] = {
        {"expect-rev", required_argument, NULL, 'e'},
        {"message", required_argument, NULL, 'm'},
        {"node", required_argument, NULL, 'n'},
        {"json", no_argument, NULL, 'j'},
        {"wait", optional_argument, NULL, 'w'},
        {"rev", required_argument, NULL, 'r'},
        {"before", required_argument, NULL, 'b'},
        {"limit", required_argument, NULL, 'l'},
        {"reset", required_argument, NULL, 'R'},
        {"canary", required_argument, NULL, 'c'},
        {"auto-revert", no_argument, NULL, 'a'},
        {"min-healthy", required_argument, NULL, 'h'},
        {"deadline", required_argument, NULL, 'd'},
        {NULL, 0, NULL, 0}};
    *o = (s_opts_t){
        .expect_rev = S_NO_REV, .message = "", .wait = -1, .limit = 20};
    pm__rollout_spec__init(&o->canary);
    int c, at = -1;
    int64_t n;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":m:", longs, &at)) != -1) {
        if (c == ':') {
            fprintf(stderr, "privmta-ctl %s: %s needs a value\n", argv[0],
                    argv[optind - 1]);
            return -1;
        }
        if (c == '?' || !strchr(allowed, c)) {
            fprintf(stderr, "privmta-ctl %s: unknown option '%s'\n", argv[0],
                    argv[optind - 1]);
            return -1;
        }
        bool ok = true;
        if (c == 'e')
            ok = s_number(optarg, 0, &o->expect_rev);
        else if (c == 'r' || c == 'b')
            ok = s_number(optarg, 1, &o->rev);
        else if (c == 'l')
            ok = s_number(optarg, 1, &n) && n <= 1000 &&
                 (o->limit = (unsigned)n);
        else if (c == 'w')
            o->wait = optarg ? strtod(optarg, NULL) : 60;
        else if (c == 'm')
            o->message = optarg;
        else if (c == 'n')
            o->node = optarg;
        else if (c == 'j')
            o->json = true;
        else if (c == 'R') {
            o->resets =
                pm_realloc(o->resets, (o->n_resets + 1) * sizeof(char *));
            o->resets[o->n_resets++] = optarg;
        } else if (c == 'c' || c == 'a' || c == 'h' || c == 'd')
            ok = s_canary_option(c, optarg, &o->canary);
        if (!ok || (c == 'w' && o->wait <= 0)) {
            /* the option's name, however it was written (--limit N,
             * --limit=N) */
            fprintf(stderr, "privmta-ctl %s: bad value '%s' for %s%s%s\n",
                    argv[0], optarg, at >= 0 ? "--" : "-",
                    at >= 0 ? longs[at].name : "m",
                    c == 'l' ? " (1 to 1000)" : "");
            return -1;
        }
        at = -1;
    }
    return optind;
}

/* What the controller's effect name means on the nodes (pm_effect_t):
 * the "reboot the MTA" note of the old page, made exact. */
static const char *
s_effect_words(const char *effect)
{
    static const struct {
        const char *name, *words;
    } words[] = {
        {"live", "at once, nothing restarts (the filter and the signature "
                 "updater follow each revision as they run)"},
        {"engine", "each node's filter builds a new ClamAV engine in the "
                   "background and swaps it; mail flows meanwhile"},
        {"reload", "Postfix reloads on every node; sessions in flight "
                   "finish, none is refused"},
        {"restart", "Postfix or the filter must restart on every node: run "
                    "privmta-ctl restart --rolling"},
    };
    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++)
        if (strcmp(words[i].name, effect) == 0)
            return words[i].words;
    return effect; /* a newer controller's level, as it named it */
}

static void
s_print_commit(const Pm__Response *r)
{
    const Pm__Revision *rev = r->revision;
    if (r->unchanged)
        printf("unchanged: the policy equals revision %llu\n",
               (unsigned long long)rev->number);
    else
        printf("revision %llu committed (digest %.12s)\n",
               (unsigned long long)rev->number, rev->digest);
    if (!r->unchanged && *r->effect)
        printf("takes effect: %s\n", s_effect_words(r->effect));
}

/* One lagging node's line: why it has not applied REV. Its name and error
 * came from an agent: escaped (pm_text), as in `nodes`. */
static void
s_lag_line(const Pm__NodeStatus *n)
{
    char *name = pm_text_escape(n->name, 64);
    unsigned long long at = (unsigned long long)n->applied_rev;
    if (*n->apply_error) {
        char *err = pm_text_escape(n->apply_error, 512);
        fprintf(stderr, "  %s: still at revision %llu: %s\n", name, at, err);
        free(err);
    } else if (strcmp(n->liveness, "up") != 0) {
        char *live = pm_text_escape(*n->liveness ? n->liveness : "unknown", 16);
        if (n->last_seen)
            fprintf(stderr,
                    "  %s: still at revision %llu: node is %s (last seen "
                    "%lld s ago)\n",
                    name, at, live,
                    (long long)(time(NULL) - (time_t)n->last_seen));
        else
            fprintf(stderr,
                    "  %s: still at revision %llu: node is %s (never seen)\n",
                    name, at, live);
        free(live);
    } else
        fprintf(stderr, "  %s: still at revision %llu: no answer yet\n", name,
                at);
    free(name);
}

/* Nodes that have not applied REV yet, one line each with the reason. */
static size_t
s_lagging(const Pm__Response *r, uint64_t rev, bool print)
{
    size_t late = 0;
    for (size_t i = 0; i < r->n_nodes; i++) {
        const Pm__NodeStatus *n = r->nodes[i];
        if (n->applied_rev >= rev && !*n->apply_error)
            continue;
        late++;
        if (print)
            s_lag_line(n);
    }
    return late;
}

/* --wait: poll node status until every node applied REV or time is up. */
static int
s_wait(pm_ctl_t *ctl, uint64_t rev, double secs)
{
    int64_t t0 = pm_clock_ms();
    for (;;) {
        Pm__Request req = PM__REQUEST__INIT;
        Pm__Response *r = NULL;
        req.op = PM__REQUEST__OP__NODES;
        req.expect_rev = S_NO_REV;
        int rc = pm_ctl_call(ctl, &req, &r);
        if (rc != PM_EXIT_OK)
            return rc;
        size_t total = r->n_nodes, late = s_lagging(r, rev, false);
        double spent = (double)(pm_clock_ms() - t0) / 1000;
        if (late == 0) {
            if (total == 0)
                printf("no node has reported yet: nothing to wait for\n");
            else
                printf("all %zu nodes applied revision %llu\n", total,
                       (unsigned long long)rev);
        } else if (spent >= secs) {
            fprintf(stderr,
                    "privmta-ctl: %zu of %zu nodes did not apply revision "
                    "%llu within %.0f s:\n",
                    late, total, (unsigned long long)rev, secs);
            s_lagging(r, rev, true);
        }
        pm__response__free_unpacked(r, NULL);
        if (late == 0)
            return PM_EXIT_OK;
        if (spent >= secs)
            return PM_EXIT_TIMEOUT;
        /* most pushes land within a second: ask often then, so the wait
         * ends close to the last acknowledgement; then every 100 ms */
        usleep((pm_clock_ms() - t0 < 1000 ? 20 : 100) * 1000);
    }
}

static int
s_commit_request(pm_ctl_t *ctl, Pm__Request *req, const s_opts_t *o)
{
    Pm__Response *r = NULL;
    req->expect_rev = o->expect_rev;
    req->message = (char *)o->message;
    /* with --wait the admin gave the push that long: a busy controller
     * checking a large policy (megabytes of custom signatures go through
     * libclamav) may answer the commit after the usual --timeout, and a
     * push reported failed that was committed is worse than a slow one */
    int rc = o->wait > 0 ? pm_ctl_call_slow(ctl, req, (int)(o->wait * 1000), &r)
                         : pm_ctl_call(ctl, req, &r);
    if (rc != PM_EXIT_OK)
        return rc;
    s_print_commit(r);
    uint64_t rev = r->revision->number;
    pm__response__free_unpacked(r, NULL);
    return o->wait > 0 ? s_wait(ctl, rev, o->wait) : PM_EXIT_OK;
}

/* A push with canaries: the revision goes to them first (pm_rollout.h);
 * --wait follows the canary push, then every node's apply. */
static int
s_push_canary(pm_ctl_t *ctl, Pm__Request *req, const s_opts_t *o)
{
    Pm__Response *r = NULL;
    req->expect_rev = o->expect_rev;
    req->message = (char *)o->message;
    req->rollout_spec = (Pm__RolloutSpec *)&o->canary;
    int rc = pm_ctl_call(ctl, req, &r);
    if (rc != PM_EXIT_OK)
        return rc;
    s_print_commit(r);
    uint64_t rev = r->revision->number, id = 0;
    size_t n = 0;
    const Pm__Rollout *ro = r->rollout;
    if (!r->unchanged && ro && ro->spec && ro->spec->policy_rev == rev) {
        id = ro->id;
        n = ro->n_nodes;
        printf("canary push (rollout %llu): revision %llu goes to %zu "
               "canar%s first, each healthy for %.0f s; every other node "
               "keeps revision %llu until then%s; `privmta-ctl rollout "
               "status` follows it\n",
               (unsigned long long)id, (unsigned long long)rev, n,
               n == 1 ? "y" : "ies", (double)ro->spec->min_healthy_ms / 1000,
               (unsigned long long)ro->spec->revert_rev,
               ro->spec->auto_revert ? " (a failed canary is reverted)" : "");
    }
    pm__response__free_unpacked(r, NULL);
    if (o->wait <= 0 || !id)
        return PM_EXIT_OK;
    rc = pm_ctl_rollout_wait(ctl, id, n, o->wait);
    return rc == PM_EXIT_OK ? s_wait(ctl, rev, o->wait) : rc;
}

int
pm_ctl_policy_validate(pm_ctl_t *ctl, int argc, char **argv)
{
    (void)ctl;
    if (argc != 2) {
        fprintf(stderr, "usage: privmta-ctl policy validate FILE\n");
        return PM_EXIT_USAGE;
    }
    pm_diag_t *diag = pm_diag_new(argv[1]);
    Pm__Policy *p = pm_policy_load_file(argv[1], diag);
    pm_diag_print(diag, stderr);
    if (p) {
        char digest[65];
        pm_policy_digest(p, digest);
        printf("%s: valid (digest %.12s)\n", argv[1], digest);
    }
    pm_diag_destroy(&diag);
    int rc = p ? PM_EXIT_OK : PM_EXIT_REJECTED;
    pm_policy_free(&p);
    return rc;
}

int
pm_ctl_policy_push(pm_ctl_t *ctl, int argc, char **argv)
{
    s_opts_t o;
    int at = s_options(argc, argv, &o, "emwcahd");
    bool canary_only =
        !o.canary.n_canary && (o.canary.auto_revert ||
                               o.canary.min_healthy_ms || o.canary.deadline_ms);
    if (at < 0 || at != argc - 1 || canary_only) {
        if (canary_only)
            fprintf(stderr, "privmta-ctl policy push: --auto-revert, "
                            "--min-healthy and --deadline go with --canary\n");
        fprintf(stderr, "usage: privmta-ctl policy push FILE [--wait[=SECONDS]]"
                        " [--expect-rev N] [-m MSG] [--canary NODE]... "
                        "[--auto-revert] [--min-healthy D] [--deadline D]\n");
        free(o.canary.canary);
        return PM_EXIT_USAGE;
    }
    /* Checked here first for FILE:LINE errors; the controller checks
     * again, since it trusts no client. */
    pm_diag_t *diag = pm_diag_new(argv[at]);
    Pm__Policy *p = pm_policy_load_file(argv[at], diag);
    pm_diag_print(diag, stderr);
    pm_diag_destroy(&diag);
    if (!p) {
        free(o.canary.canary);
        return PM_EXIT_REJECTED;
    }
    Pm__Request req = PM__REQUEST__INIT;
    req.op = PM__REQUEST__OP__PUSH;
    req.policy = p;
    int rc = o.canary.n_canary ? s_push_canary(ctl, &req, &o)
                               : s_commit_request(ctl, &req, &o);
    pm_policy_free(&p);
    free(o.canary.canary);
    return rc;
}

/* antivirus.custom_signatures+=FILE sends the file itself: the controller
 * and every node must see the same bytes, not a path on this machine. */
static bool
s_attach_file(Pm__Edit *e, char **why)
{
    char *data = NULL;
    size_t len = 0;
    if (pm_file_read(e->value, PM_WIRE_CONTENT_MAX, 0, &data, &len, why) !=
        PM_OK)
        return false;
    e->content.data = (uint8_t *)data;
    e->content.len = len;
    char *copy = pm_strdup(e->value);
    e->value = pm_strdup(basename(copy));
    free(copy);
    return true;
}

/* One signature record as JSON, its `file:` (a path here, relative to the
 * current directory) replaced by the file's text as `content`. */
static json_t *
s_record_inline(const pm_value_t *rec, bool *files, char **why)
{
    if (rec->kind != PM_V_MAP)
        return rec->kind == PM_V_SCALAR ? json_string(rec->text) : json_null();
    json_t *out = json_object();
    for (size_t i = 0; i < rec->n; i++) {
        const pm_value_t *f = rec->items[i];
        if (f->kind != PM_V_SCALAR || strcmp(rec->keys[i], "file") != 0) {
            json_object_set_new(out, rec->keys[i],
                                f->kind == PM_V_SCALAR ? json_string(f->text)
                                                       : json_null());
            continue;
        }
        char *data = NULL;
        size_t len = 0;
        if (pm_file_read(f->text, PM_WIRE_CONTENT_MAX, 0, &data, &len, why) !=
            PM_OK)
            goto fail;
        json_t *body = json_stringn(data, len);
        free(data);
        if (!body) {
            *why = pm_asprintf("%s: not UTF-8 text; signature files are text",
                               f->text);
            goto fail;
        }
        json_object_set_new(out, "content", body);
        *files = true;
    }
    return out;
fail:
    json_decref(out);
    return NULL;
}

/* antivirus.custom_signatures given as records ({name: a.ndb, file: PATH}
 * or a list of them): every `file:` is read here and sent as content,
 * since the controller opens no path a client names. The value is sent
 * on as JSON (which the controller reads as YAML). Anything it cannot
 * make sense of is left for the controller to refuse with its reasons. */
static bool
s_inline_files(Pm__Edit *e, char **why)
{
    pm_diag_t *diag = pm_diag_new("command line");
    pm_value_t *v = pm_value_parse(e->value, strlen(e->value), 0, diag);
    pm_diag_destroy(&diag);
    if (!v || v->kind == PM_V_SCALAR) {
        pm_value_destroy(&v);
        return true;
    }
    bool one = v->kind == PM_V_MAP, files = false;
    json_t *all = json_array();
    for (size_t i = 0; i < (one ? 1 : v->n); i++) {
        json_t *rec = s_record_inline(one ? v : v->items[i], &files, why);
        if (!rec) {
            json_decref(all);
            pm_value_destroy(&v);
            return false;
        }
        json_array_append_new(all, rec);
    }
    if (files) {
        free(e->value);
        e->value = json_dumps(one ? json_array_get(all, 0) : all,
                              JSON_COMPACT | JSON_ENCODE_ANY);
    }
    json_decref(all);
    pm_value_destroy(&v);
    return true;
}

/* KEY=VALUE, KEY+=ITEM, KEY-=ITEM. VALUE is policy-file syntax. */
static Pm__Edit *
s_parse_edit(const char *arg, char **why)
{
    const char *eq = strchr(arg, '=');
    if (!eq || eq == arg) {
        *why =
            pm_asprintf("'%s' is not KEY=VALUE, KEY+=ITEM or KEY-=ITEM", arg);
        return NULL;
    }
    Pm__Edit *e = pm_malloc(sizeof *e);
    pm__edit__init(e);
    const char *end = eq;
    if (eq[-1] == '+' || eq[-1] == '-') {
        e->op = eq[-1] == '+' ? PM__EDIT__OP__ADD : PM__EDIT__OP__REMOVE;
        end--;
    }
    e->key = pm_strndup(arg, (size_t)(end - arg));
    e->value = pm_strdup(eq + 1);
    /* KEY+=PATH reads PATH; records, and any whole value assigned, are
     * read here for their `file:` fields */
    bool sigs = strcmp(e->key, "antivirus.custom_signatures") == 0;
    const char *start = e->value + strspn(e->value, " \t\r\n");
    bool records = *start == '{' || *start == '[';
    bool ok = true;
    if (sigs && (records || e->op == PM__EDIT__OP__ASSIGN)) {
        ok = s_inline_files(e, why);
    } else if (sigs && e->op == PM__EDIT__OP__ADD) {
        char *path = e->value;
        ok = s_attach_file(e, why);
        if (e->value != path)
            free(path);
    }
    if (!ok)
        pm__edit__free_unpacked(e, NULL);
    return ok ? e : NULL;
}

int
pm_ctl_policy_set(pm_ctl_t *ctl, int argc, char **argv)
{
    s_opts_t o;
    int at = s_options(argc, argv, &o, "emnwR");
    if (at < 0 || (at >= argc && o.n_resets == 0)) {
        fprintf(stderr, "usage: privmta-ctl policy set KEY=VALUE|KEY+=ITEM|"
                        "KEY-=ITEM... [--reset KEY] [--node NAME] "
                        "[--expect-rev N] [-m MSG]\n");
        free(o.resets);
        return PM_EXIT_USAGE;
    }
    size_t n = (size_t)(argc - at) + o.n_resets;
    Pm__Edit **edits = pm_calloc(n, sizeof *edits);
    int rc = PM_EXIT_OK;
    for (size_t i = 0; i < o.n_resets; i++) {
        edits[i] = pm_malloc(sizeof **edits);
        pm__edit__init(edits[i]);
        edits[i]->key = pm_strdup(o.resets[i]);
        edits[i]->op = PM__EDIT__OP__RESET;
    }
    for (size_t i = o.n_resets; i < n && rc == PM_EXIT_OK; i++) {
        char *why = NULL;
        edits[i] = s_parse_edit(argv[at + (int)(i - o.n_resets)], &why);
        if (!edits[i]) {
            fprintf(stderr, "privmta-ctl policy set: %s\n", why);
            rc = PM_EXIT_USAGE;
        }
        free(why);
    }
    if (rc == PM_EXIT_OK) {
        Pm__Request req = PM__REQUEST__INIT;
        req.op = PM__REQUEST__OP__SET;
        req.edits = edits;
        req.n_edits = n;
        req.node = (char *)(o.node ? o.node : "");
        rc = s_commit_request(ctl, &req, &o);
    }
    for (size_t i = 0; i < n; i++)
        if (edits[i])
            pm__edit__free_unpacked(edits[i], NULL);
    free(edits);
    free(o.resets);
    return rc;
}

int
pm_ctl_policy_rollback(pm_ctl_t *ctl, int argc, char **argv)
{
    s_opts_t o;
    int64_t rev = 0;
    int at = s_options(argc, argv, &o, "emw");
    if (at < 0 || at != argc - 1 || !s_number(argv[at], 1, &rev)) {
        fprintf(stderr, "usage: privmta-ctl policy rollback N [--expect-rev N]"
                        " [-m MSG]\n");
        return PM_EXIT_USAGE;
    }
    Pm__Request req = PM__REQUEST__INIT;
    req.op = PM__REQUEST__OP__ROLLBACK;
    req.rev = (uint64_t)rev;
    return s_commit_request(ctl, &req, &o);
}

static void
s_time(int64_t t, char *buf, size_t size)
{
    time_t tt = (time_t)t;
    struct tm tm;
    gmtime_r(&tt, &tm);
    strftime(buf, size, "%Y-%m-%d %H:%M:%SZ", &tm);
}

/* The comment above `show` output: which revision, who, why, and for a
 * node, which keys it overrides. */
static char *
s_show_header(const Pm__Revision *rev, const Pm__Policy *whole,
              const char *node)
{
    char when[32], *h;
    if (!rev)
        return pm_strdup("privmta policy: nothing pushed yet; these are the "
                         "defaults");
    s_time(rev->time, when, sizeof when);
    h = pm_asprintf("privmta policy revision %llu (digest %.12s)\n"
                    "by %s at %s%s%s",
                    (unsigned long long)rev->number, rev->digest, rev->author,
                    when, *rev->message ? ": " : "", rev->message);
    if (!node)
        return h;
    char *more = pm_asprintf("%s\neffective policy of node %s; overridden "
                             "for it:",
                             h, node);
    free(h);
    size_t n = 0;
    for (size_t i = 0; i < whole->n_overrides; i++) {
        if (strcmp(whole->overrides[i]->node, node) != 0)
            continue;
        h = pm_asprintf("%s %s", more, whole->overrides[i]->key);
        free(more);
        more = h;
        n++;
    }
    h = n ? more : pm_asprintf("%s none", more);
    if (!n)
        free(more);
    return h;
}

int
pm_ctl_policy_show(pm_ctl_t *ctl, int argc, char **argv)
{
    s_opts_t o;
    int at = s_options(argc, argv, &o, "rnj");
    if (at < 0 || at != argc) {
        fprintf(stderr, "usage: privmta-ctl policy show [--rev N] "
                        "[--node NAME] [--json]\n");
        return PM_EXIT_USAGE;
    }
    Pm__Request req = PM__REQUEST__INIT;
    Pm__Response *r = NULL;
    req.op = PM__REQUEST__OP__SHOW;
    req.rev = (uint64_t)o.rev;
    req.expect_rev = S_NO_REV;
    int rc = pm_ctl_call(ctl, &req, &r);
    if (rc != PM_EXIT_OK)
        return rc;
    const Pm__Revision *rev = r->revision;
    Pm__Policy *whole = rev ? pm_policy_dup(rev->policy) : pm_policy_new();
    Pm__Policy *shown =
        o.node ? pm_policy_for_node(whole, o.node) : pm_policy_dup(whole);
    char *text;
    if (o.json) {
        text = pm_policy_to_json(shown, true);
    } else {
        char *header = s_show_header(rev, whole, o.node);
        /* the controller's warnings (overrides that match no enrolled
         * node) stay with the file, where the overrides are */
        for (size_t i = 0; i < r->n_problems; i++) {
            char *more = pm_asprintf("%s\nwarning: %s", header, r->problems[i]);
            free(header);
            header = more;
        }
        text = pm_policy_to_yaml(shown, header);
        free(header);
    }
    fputs(text, stdout);
    if (o.json)
        putchar('\n');
    free(text);
    pm_policy_free(&shown);
    pm_policy_free(&whole);
    pm__response__free_unpacked(r, NULL);
    return PM_EXIT_OK;
}

int
pm_ctl_policy_history(pm_ctl_t *ctl, int argc, char **argv)
{
    s_opts_t o;
    int at = s_options(argc, argv, &o, "blj");
    if (at < 0 || at != argc) {
        fprintf(stderr, "usage: privmta-ctl policy history [--limit N] "
                        "[--before N] [--json]\n");
        return PM_EXIT_USAGE;
    }
    Pm__Request req = PM__REQUEST__INIT;
    Pm__Response *r = NULL;
    req.op = PM__REQUEST__OP__HISTORY;
    req.before = (uint64_t)o.rev;
    req.limit = o.limit;
    req.expect_rev = S_NO_REV;
    int rc = pm_ctl_call(ctl, &req, &r);
    if (rc != PM_EXIT_OK)
        return rc;
    json_t *all = json_array();
    if (!o.json)
        printf("%-6s %-21s %-24s %s\n", "REV", "TIME (UTC)", "AUTHOR",
               "MESSAGE");
    for (size_t i = 0; i < r->n_history; i++) {
        const Pm__Revision *rev = r->history[i];
        char when[32];
        s_time(rev->time, when, sizeof when);
        if (o.json)
            json_array_append_new(all, pm_ctl_json_revision(rev));
        else
            printf("%-6llu %-21s %-24s %s\n", (unsigned long long)rev->number,
                   when, rev->author, rev->message);
    }
    if (o.json)
        pm_ctl_print_json(all);
    else
        json_decref(all);
    if (!o.json && r->n_history == 0)
        printf("(no revisions yet)\n");
    pm__response__free_unpacked(r, NULL);
    return PM_EXIT_OK;
}

int
pm_ctl_policy_diff(pm_ctl_t *ctl, int argc, char **argv)
{
    s_opts_t o;
    int64_t a = 0, b = 0;
    int at = s_options(argc, argv, &o, "j");
    if (at < 0 || at != argc - 2 || !s_number(argv[at], 1, &a) ||
        !s_number(argv[at + 1], 1, &b)) {
        fprintf(stderr, "usage: privmta-ctl policy diff A B [--json]\n");
        return PM_EXIT_USAGE;
    }
    Pm__Request req = PM__REQUEST__INIT;
    Pm__Response *r = NULL;
    req.op = PM__REQUEST__OP__DIFF;
    req.rev = (uint64_t)a;
    req.rev_b = (uint64_t)b;
    req.expect_rev = S_NO_REV;
    int rc = pm_ctl_call(ctl, &req, &r);
    if (rc != PM_EXIT_OK)
        return rc;
    for (size_t i = 0; i < r->n_diff && !o.json; i++) {
        const Pm__DiffEntry *d = r->diff[i];
        printf("%s: %s -> %s\n", d->key, *d->before ? d->before : "(none)",
               *d->after ? d->after : "(none)");
    }
    if (o.json)
        pm_ctl_print_json(pm_ctl_json_diff(r->diff, r->n_diff));
    if (!o.json && r->n_diff == 0)
        printf("revisions %lld and %lld are identical\n", (long long)a,
               (long long)b);
    pm__response__free_unpacked(r, NULL);
    return PM_EXIT_OK;
}
