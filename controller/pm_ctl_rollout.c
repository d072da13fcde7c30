/* pm_ctl_rollout.c - privmta-ctl restart --rolling, and rollout
 * status|pause|resume|abort: the controller runs the rollout (see
 * controller/pm_rollout.h); these commands start it, follow it and steer
 * it.
 *
 * `rollout status --json` is the Rollout message's fields, states as
 * lowercase names ("running", "settling"), times in unix ms; `null` when
 * no rollout was ever started. */
#include "pm_clock.h"
#include "pm_ctl.h"
#include "pm_ctl_json.h"
#include "pm_ctl_show.h"
#include "pm_check.h"
#include "pm_mem.h"
#include "pm_rollout.h"
#include "pm_text.h"

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* --wait without SECONDS: an hour, the order of a large cluster's
 * rollout at the default pace. */
#define S_WAIT_DEFAULT 3600
#define S_POLL_MS 500

static const char s_auto_revert_note[] =
    "--auto-revert has nothing to revert in a restart, which changes no "
    "revision: it is for `policy push FILE --canary NODE --auto-revert`";

static const char s_restart_usage[] =
    "usage: privmta-ctl restart --rolling [--service postfix|milter|all] "
    "[--batch N|P%] [--canary NODE]... [--min-healthy D] [--deadline D] "
    "[--max-failures K] [--auto-revert] [--wait[=SECONDS]]\n";

/* ---- showing a rollout ------------------------------------------------- */

static void
s_header(const Pm__Rollout *ro)
{
    char started[40], what[64];
    pm_ctl_utc(ro->started / 1000, started, sizeof started);
    if (ro->spec && ro->spec->policy_rev)
        snprintf(what, sizeof what, "canary push of revision %llu%s",
                 (unsigned long long)ro->spec->policy_rev,
                 ro->spec->auto_revert ? ", auto-revert" : "");
    else
        snprintf(what, sizeof what, "%s", ro->spec ? ro->spec->service : "?");
    printf("rollout %llu (%s): %s, started %s by ", (unsigned long long)ro->id,
           what, pm_rollout_state_name(ro->state), started);
    pm_ctl_cell(ro->user, 0, PM_CTL_CELL_MAX, "");
    printf(", %zu of %zu nodes done", pm_rollout_done(ro), ro->n_nodes);
    if (*ro->reason) {
        printf("; ");
        pm_ctl_cell(ro->reason, 0, PM_CTL_LINE_MAX, "");
    }
    printf("\n");
}

/* One node: name, state, started, how long it took (or has taken so far,
 * at NOW), detail. */
static void
s_node_row(const Pm__RolloutNode *n, const Pm__Rollout *ro, int64_t now)
{
    char started[40] = "-", took[32] = "-";
    bool ended = n->state == PM__ROLLOUT_NODE__STATE__DONE ||
                 n->state == PM__ROLLOUT_NODE__STATE__FAILED ||
                 n->state == PM__ROLLOUT_NODE__STATE__UNREACHABLE;
    if (n->started) {
        pm_ctl_utc(n->started / 1000, started, sizeof started);
        int64_t end = ended ? n->finished : now;
        snprintf(took, sizeof took, "%.1f s",
                 (double)(end > n->started ? end - n->started : 0) / 1000);
    }
    pm_ctl_cell(n->name, 16, PM_CTL_CELL_MAX, " ");
    printf("%-12s %-24s %-10s ", pm_rollout_node_state_name(n->state), started,
           took);
    if (n->state == PM__ROLLOUT_NODE__STATE__SETTLING)
        printf("healthy for %.1f s of %.1f s\n",
               (double)(now - n->settling_since) / 1000,
               (double)(ro->spec ? ro->spec->min_healthy_ms : 0) / 1000);
    else
        pm_ctl_cell(n->detail, 0, PM_CTL_LINE_MAX, "\n");
}

static int64_t
s_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void
s_status_text(const Pm__Rollout *ro)
{
    if (!ro) {
        printf("no rolling restart has been started yet\n");
        return;
    }
    int64_t now = s_now_ms();
    s_header(ro);
    printf("%-16s %-12s %-24s %-10s %s\n", "NODE", "STATE", "STARTED", "TOOK",
           "DETAIL");
    for (size_t i = 0; i < ro->n_nodes; i++)
        s_node_row(ro->nodes[i], ro, now);
}

/* ---- restart --rolling ------------------------------------------------- */

typedef struct {
    Pm__RolloutSpec spec;
    char **canary;
    bool rolling;
    double wait; /* seconds; < 0: do not wait */
} s_restart_t;

/* N nodes or P% of them. */
static bool
s_batch(const char *text, Pm__RolloutSpec *spec)
{
    char *end = NULL;
    errno = 0;
    unsigned long v = strtoul(text, &end, 10);
    if (errno || !isdigit((unsigned char)*text) || v == 0 || v > 100000)
        return false;
    if (strcmp(end, "%") == 0 && v <= 100)
        spec->batch_percent = (uint32_t)v;
    else if (*end == '\0')
        spec->batch = (uint32_t)v;
    else
        return false;
    return true;
}

static bool
s_duration(const char *text, int64_t *ms, const char *option)
{
    uint32_t secs = 0;
    char *why = pm_duration_parse(text, &secs);
    if (why) {
        fprintf(stderr, "privmta-ctl restart: %s %s\n", option, why);
        free(why);
        return false;
    }
    *ms = (int64_t)secs * 1000;
    return true;
}

static bool
s_count(const char *text, uint32_t *out)
{
    char *end = NULL;
    errno = 0;
    unsigned long v = strtoul(text, &end, 10);
    if (errno || !isdigit((unsigned char)*text) || *end || v > UINT32_MAX)
        return false;
    *out = (uint32_t)v;
    return true;
}

/* What option C takes, said when its value is refused. */
static const char *
s_takes(int c)
{
    switch (c) {
    case 's':
        return "--service takes postfix, milter or all";
    case 'b':
        return "--batch takes a number of nodes (1 or more) or a percentage "
               "(1% to 100%), once";
    case 'c':
        return "--canary takes a node's name";
    case 'f':
        return "--max-failures takes a whole number (0 or more)";
    default:
        return "--wait takes a number of seconds above 0";
    }
}

/* One option C with OPTARG into O; false after saying what is wrong. */
static bool
s_restart_option(int c, const char *arg, s_restart_t *o)
{
    bool ok = true;
    if (c == 'r')
        o->rolling = true;
    else if (c == 's')
        ok = strcmp(arg, "postfix") == 0 || strcmp(arg, "milter") == 0 ||
             strcmp(arg, "all") == 0;
    else if (c == 'b')
        ok = !o->spec.batch && !o->spec.batch_percent && s_batch(arg, &o->spec);
    else if (c == 'c')
        ok = *arg != '\0';
    else if (c == 'h')
        return s_duration(arg, &o->spec.min_healthy_ms, "--min-healthy");
    else if (c == 'd')
        return s_duration(arg, &o->spec.deadline_ms, "--deadline");
    else if (c == 'f')
        ok = s_count(arg, &o->spec.max_failures);
    else if (c == 'a')
        o->spec.auto_revert = true;
    else if (c == 'w')
        ok = (o->wait = arg ? strtod(arg, NULL) : S_WAIT_DEFAULT) > 0;
    if (ok && c == 's')
        o->spec.service = (char *)arg;
    if (ok && c == 'c') {
        o->canary =
            pm_realloc(o->canary, (o->spec.n_canary + 1) * sizeof *o->canary);
        o->canary[o->spec.n_canary++] = (char *)arg;
        o->spec.canary = o->canary;
    }
    if (!ok)
        fprintf(stderr, "privmta-ctl restart: bad value '%s': %s\n", arg,
                s_takes(c));
    return ok;
}

static int
s_restart_options(int argc, char **argv, s_restart_t *o)
{
    static const struct option longs[] = {
        {"rolling", no_argument, NULL, 'r'},
        {"service", required_argument, NULL, 's'},
        {"batch", required_argument, NULL, 'b'},
        {"canary", required_argument, NULL, 'c'},
        {"min-healthy", required_argument, NULL, 'h'},
        {"deadline", required_argument, NULL, 'd'},
        {"max-failures", required_argument, NULL, 'f'},
        {"auto-revert", no_argument, NULL, 'a'},
        {"wait", optional_argument, NULL, 'w'},
        {NULL, 0, NULL, 0}};
    pm__rollout_spec__init(&o->spec);
    o->spec.service = (char *)"postfix";
    o->wait = -1;
    opterr = 0;
    for (int c; (c = getopt_long(argc, argv, "", longs, NULL)) != -1;) {
        if (c == '?') {
            fprintf(stderr, "privmta-ctl restart: unknown option '%s'\n",
                    argv[optind - 1]);
            return PM_EXIT_USAGE;
        }
        if (!s_restart_option(c, optarg, o))
            return PM_EXIT_USAGE;
    }
    if (optind != argc) {
        fprintf(stderr, "privmta-ctl restart: unexpected '%s'\n", argv[optind]);
        return PM_EXIT_USAGE;
    }
    if (!o->rolling) {
        fprintf(stderr, "privmta-ctl restart: only rolling restarts exist: "
                        "add --rolling (the controller restarts the nodes a "
                        "batch at a time, each gated on health)\n");
        return PM_EXIT_USAGE;
    }
    return PM_EXIT_OK;
}

/* Prints the nodes of RO that ended since the last look (SEEN, one flag
 * per node, kept by the caller). */
static void
s_progress(const Pm__Rollout *ro, bool *seen)
{
    for (size_t i = 0; i < ro->n_nodes; i++) {
        const Pm__RolloutNode *n = ro->nodes[i];
        if (seen[i] || (n->state != PM__ROLLOUT_NODE__STATE__DONE &&
                        n->state != PM__ROLLOUT_NODE__STATE__FAILED &&
                        n->state != PM__ROLLOUT_NODE__STATE__UNREACHABLE))
            continue;
        seen[i] = true;
        pm_ctl_cell(n->name, 0, PM_CTL_CELL_MAX, " ");
        printf("%s", pm_rollout_node_state_name(n->state));
        if (n->started)
            printf(" (%.1f s)", (double)(n->finished - n->started) / 1000);
        printf("%s", *n->detail ? ": " : "\n");
        if (*n->detail)
            pm_ctl_cell(n->detail, 0, PM_CTL_LINE_MAX, "\n");
    }
    fflush(stdout);
}

/* How RO ended, or -1 while it goes on. */
static int
s_outcome(const Pm__Rollout *ro)
{
    if (ro->state == PM__ROLLOUT__STATE__DONE && ro->spec &&
        ro->spec->policy_rev) {
        printf("rollout %llu done: every canary healthy on revision %llu, "
               "which now goes to every node\n",
               (unsigned long long)ro->id,
               (unsigned long long)ro->spec->policy_rev);
        return PM_EXIT_OK;
    }
    if (ro->state == PM__ROLLOUT__STATE__DONE) {
        printf("rollout %llu done: %zu of %zu nodes restarted\n",
               (unsigned long long)ro->id, pm_rollout_done(ro), ro->n_nodes);
        return PM_EXIT_OK;
    }
    if (ro->state != PM__ROLLOUT__STATE__HALTED &&
        ro->state != PM__ROLLOUT__STATE__ABORTED)
        return -1;
    char *reason = pm_text_escape(ro->reason, PM_CTL_LINE_MAX);
    fprintf(stderr, "privmta-ctl: rollout %llu %s: %s\n",
            (unsigned long long)ro->id, pm_rollout_state_name(ro->state),
            reason);
    free(reason);
    return PM_EXIT_REJECTED;
}

int
pm_ctl_rollout_wait(pm_ctl_t *ctl, uint64_t id, size_t n_nodes, double secs)
{
    int64_t t0 = pm_clock_ms();
    bool *seen = pm_calloc(n_nodes + 1, sizeof *seen);
    int rc = -1;
    while (rc < 0) {
        Pm__Response *r = NULL;
        rc = pm_ctl_call_op(ctl, PM__REQUEST__OP__ROLLOUT_STATUS, &r);
        if (rc != PM_EXIT_OK)
            break;
        const Pm__Rollout *ro = r->rollout;
        if (!ro || ro->id != id || ro->n_nodes != n_nodes) {
            fprintf(stderr,
                    "privmta-ctl: rollout %llu is no longer the "
                    "current one\n",
                    (unsigned long long)id);
            rc = PM_EXIT_REJECTED;
        } else {
            s_progress(ro, seen);
            rc = s_outcome(ro);
        }
        double spent = (double)(pm_clock_ms() - t0) / 1000;
        if (rc < 0 && spent >= secs) {
            fprintf(stderr,
                    "privmta-ctl: rollout %llu still %s after %.0f s (%zu "
                    "of %zu nodes done); it goes on: see `privmta-ctl "
                    "rollout status`\n",
                    (unsigned long long)id, pm_rollout_state_name(ro->state),
                    secs, pm_rollout_done(ro), ro->n_nodes);
            rc = PM_EXIT_TIMEOUT;
        }
        pm__response__free_unpacked(r, NULL);
        if (rc < 0)
            usleep(S_POLL_MS * 1000);
    }
    free(seen);
    return rc;
}

int
pm_ctl_restart(pm_ctl_t *ctl, int argc, char **argv)
{
    s_restart_t o = {.canary = NULL};
    int rc = s_restart_options(argc, argv, &o);
    if (rc != PM_EXIT_OK) {
        fputs(s_restart_usage, stderr);
        free(o.canary);
        return rc;
    }
    Pm__Request req = PM__REQUEST__INIT;
    Pm__Response *r = NULL;
    req.op = PM__REQUEST__OP__ROLLOUT_START;
    req.expect_rev = -1;
    req.rollout_spec = &o.spec;
    rc = pm_ctl_call(ctl, &req, &r);
    free(o.canary);
    if (rc != PM_EXIT_OK)
        return rc;
    const Pm__Rollout *ro = r->rollout;
    uint64_t id = ro ? ro->id : 0;
    size_t n = ro ? ro->n_nodes : 0;
    if (ro && ro->spec)
        printf("rollout %llu started: %s on %zu nodes, %u at a time; "
               "`privmta-ctl rollout status` follows it\n",
               (unsigned long long)id, ro->spec->service, n, ro->spec->batch);
    if (o.spec.auto_revert)
        fprintf(stderr, "privmta-ctl: note: %s\n", s_auto_revert_note);
    pm__response__free_unpacked(r, NULL);
    return o.wait > 0 && id ? pm_ctl_rollout_wait(ctl, id, n, o.wait)
                            : PM_EXIT_OK;
}

/* ---- rollout status|pause|resume|abort ---------------------------------- */

int
pm_ctl_rollout(pm_ctl_t *ctl, int argc, char **argv)
{
    static const struct {
        const char *name;
        Pm__Request__Op op;
        const char *done;
    } steps[] = {
        {"status", PM__REQUEST__OP__ROLLOUT_STATUS, NULL},
        {"pause", PM__REQUEST__OP__ROLLOUT_PAUSE,
         "paused: no new node starts, those in flight finish"},
        {"resume", PM__REQUEST__OP__ROLLOUT_RESUME, "resumed"},
        {"abort", PM__REQUEST__OP__ROLLOUT_ABORT,
         "aborted: no new node starts, those in flight finish"},
    };
    size_t k = sizeof steps / sizeof steps[0];
    bool json = argc == 3 && strcmp(argv[2], "--json") == 0;
    if (argc >= 2 && (argc == 2 || json))
        for (k = 0; k < sizeof steps / sizeof steps[0]; k++)
            if (strcmp(argv[1], steps[k].name) == 0)
                break;
    if (k == sizeof steps / sizeof steps[0]) {
        fprintf(stderr, "usage: privmta-ctl rollout status|pause|resume|abort "
                        "[--json]\n");
        return PM_EXIT_USAGE;
    }
    Pm__Response *r = NULL;
    int rc = pm_ctl_call_op(ctl, steps[k].op, &r);
    if (rc != PM_EXIT_OK)
        return rc;
    if (json)
        pm_ctl_print_json(pm_ctl_json_rollout(r->rollout));
    else if (!steps[k].done)
        s_status_text(r->rollout);
    else if (r->rollout && steps[k].op == PM__REQUEST__OP__ROLLOUT_ABORT &&
             r->rollout->spec && r->rollout->spec->policy_rev)
        printf("rollout %llu aborted: the canaries go back to the content of "
               "revision %llu, committed again for every node\n",
               (unsigned long long)r->rollout->id,
               (unsigned long long)r->rollout->spec->revert_rev);
    else if (r->rollout)
        printf("rollout %llu %s\n", (unsigned long long)r->rollout->id,
               steps[k].done);
    pm__response__free_unpacked(r, NULL);
    return PM_EXIT_OK;
}
