/* pm_ctl_nodes.c - privmta-ctl nodes: one row per node, then what holds
 * for the whole cluster (mirrors cooling down, who fetches which database).
 *
 * `nodes --json` stays an array with one object per node, as scripts read
 * it (.[0].name, length); each object carries its NodeStatus fields and
 * "duties", the databases that node fetches for the cluster. The cluster's
 * cool-downs and all duties, which belong to no one node, are
 * `nodes --cluster --json`: {"duties": [...], "cooldowns": [...]}.
 *
 * `nodes --watch [SECONDS]` asks again every SECONDS and redraws the table
 * in place on a terminal; piped, frames follow one another. */
#include "pm_ctl.h"
#include "pm_ctl_json.h"
#include "pm_ctl_show.h"
#include "pm_keys.h"
#include "pm_mem.h"
#include "pm_text.h"

#include <czmq.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Why a service is not fine, one line each, under its node. */
static void
s_row_details(const Pm__NodeStatus *n)
{
    const Pm__ServiceStatus *svc[] = {n->antispam, n->antivirus, n->auth,
                                      n->dkim};
    static const char *const names[] = {"antispam", "antivirus", "auth",
                                        "dkim"};
    for (size_t i = 0; i < 4; i++) {
        if (!svc[i] || !*svc[i]->detail ||
            (svc[i]->state != PM__SERVICE_STATUS__STATE__DOWN &&
             svc[i]->state != PM__SERVICE_STATUS__STATE__DEGRADED))
            continue;
        printf("%-16s %s %s: ", "", names[i], pm_ctl_service_state(svc[i]));
        pm_ctl_cell(svc[i]->detail, 0, PM_CTL_LINE_MAX, "\n");
    }
    for (size_t i = 0; i < n->n_relay_overrides; i++) {
        printf("%-16s relay host bypassed by ", "");
        pm_ctl_cell(n->relay_overrides[i], 0, PM_CTL_LINE_MAX, "\n");
    }
}

/* How old something made at T is at NOW, in the unit a person reads. */
static void
s_age(int64_t t, time_t now, char *buf, size_t size)
{
    double s = (double)((int64_t)now - t);
    if (s < 120)
        snprintf(buf, size, "%.0f s", s < 0 ? 0 : s);
    else if (s < 3600)
        snprintf(buf, size, "%.0f min", s / 60);
    else if (s < 48 * 3600)
        snprintf(buf, size, "%.1f h", s / 3600);
    else
        snprintf(buf, size, "%.1f d", s / 86400);
}

/* "test 6 (loaded 6), 1.2 h old, from mirror http://...; error: ..." */
static void
s_row_database(const Pm__SignatureDb *db, time_t now)
{
    printf("%-16s database ", "");
    pm_ctl_cell(db->name, 0, PM_CTL_CELL_MAX, "");
    if (db->version) {
        printf(" %u (loaded %u)", db->version, db->loaded_version);
        if (db->built) {
            char age[32];
            s_age(db->built, now, age, sizeof age);
            printf(", %s old", age);
        }
    } else {
        printf(": none held");
    }
    if (*db->source) {
        printf(", from ");
        pm_ctl_cell(db->source, 0, PM_CTL_CELL_MAX, "");
    }
    if (*db->error) {
        printf("; error: ");
        pm_ctl_cell(db->error, 0, PM_CTL_LINE_MAX, "");
    }
    printf("\n");
}

/* One hand edit: 'smtpd_helo_restrictions set by hand to "permit" at
 * 2026-12-01 12:00:00 UTC; put back to "..."'. */
static void
s_drift_text(const Pm__Drift *d)
{
    char at[40];
    pm_ctl_utc(d->at, at, sizeof at);
    pm_ctl_cell(d->parameter, 0, PM_CTL_CELL_MAX, " set by hand to \"");
    pm_ctl_cell(d->found, 0, PM_CTL_CELL_MAX, "\"");
    printf(" at %s; %s \"", at,
           d->reverted ? "put back to" : "NOT put back to");
    pm_ctl_cell(d->applied, 0, PM_CTL_CELL_MAX, "\"");
    if (!d->reverted) {
        printf(": ");
        pm_ctl_cell(d->error, 0, PM_CTL_LINE_MAX, "");
    }
    printf("\n");
}

/* What a node holds of the ClamAV databases, and whom it will not pull
 * them from. */
static void
s_row_signatures(const Pm__NodeStatus *n, time_t now)
{
    for (size_t i = 0; i < n->n_databases; i++)
        s_row_database(n->databases[i], now);
    for (size_t i = 0; i < n->n_distrusted; i++) {
        const Pm__Distrust *d = n->distrusted[i];
        char until[40];
        pm_ctl_utc(d->until, until, sizeof until);
        printf("%-16s distrusts peer ", "");
        pm_ctl_cell(d->peer, 0, PM_CTL_CELL_MAX, "");
        printf(" until %s: ", until);
        pm_ctl_cell(d->reason, 0, PM_CTL_LINE_MAX, "\n");
    }
}

/* One node. Every string in it came from an agent (or was stored from
 * one) and is escaped: a newline cannot forge a row, ESC cannot drive the
 * terminal. */
static void
s_row(const Pm__NodeStatus *n, uint64_t head, time_t now)
{
    char *liveness = pm_text_escape(*n->liveness ? n->liveness : "seen", 16);
    char seen[32] = "never";
    if (n->last_seen)
        snprintf(seen, sizeof seen, "%s %llds", liveness,
                 (long long)(now - (time_t)n->last_seen));
    free(liveness);
    pm_ctl_cell(n->name, 16, PM_CTL_CELL_MAX, " ");
    pm_ctl_cell(n->address, 22, PM_CTL_CELL_MAX, " ");
    printf(
        "%-8llu %-4llu %-12s %-9s %-9s %-9s %-9s ",
        (unsigned long long)n->applied_rev,
        (unsigned long long)(head > n->applied_rev ? head - n->applied_rev : 0),
        seen, pm_ctl_service_state(n->antispam),
        pm_ctl_service_state(n->antivirus), pm_ctl_service_state(n->auth),
        pm_ctl_service_state(n->dkim));
    pm_ctl_cell(n->apply_error, 0, PM_CTL_LINE_MAX, "\n");
    s_row_details(n);
    for (size_t i = 0; i < n->n_drift; i++) {
        printf("%-16s drift: ", "");
        s_drift_text(n->drift[i]);
    }
    s_row_signatures(n, now);
}

static void
s_nodes_text(const Pm__Response *r, bool cluster)
{
    time_t now = time(NULL);
    if (!cluster) {
        printf("%-16s %-22s %-8s %-4s %-12s %-9s %-9s %-9s %-9s %s\n", "NAME",
               "ADDRESS", "APPLIED", "LAG", "LAST-SEEN", "ANTISPAM",
               "ANTIVIRUS", "AUTH", "DKIM", "LAST-ERROR");
        for (size_t i = 0; i < r->n_nodes; i++)
            s_row(r->nodes[i], r->head, now);
        if (r->n_nodes == 0)
            printf("(no node has reported yet; head revision %llu)\n",
                   (unsigned long long)r->head);
        if (r->n_cooldowns || r->n_duties)
            printf("\n");
    }
    pm_ctl_cluster_text(r);
}

/* nodes' options; watch is the period in seconds, 0 without --watch. */
typedef struct {
    bool json, cluster;
    int watch;
} s_nodes_opts_t;

/* --watch SECONDS: whole seconds up to an hour (a longer period is a job
 * for cron, not for a screen someone looks at). */
static int
s_watch_period(const char *arg)
{
    char *end = NULL;
    long secs = strtol(arg, &end, 10);
    if (end == arg || *end || secs < 1 || secs > 3600) {
        fprintf(stderr,
                "privmta-ctl nodes: --watch takes a whole number of seconds "
                "from 1 to 3600, not '%s'\n",
                arg);
        return -1;
    }
    return (int)secs;
}

/* The value of --watch is optional: the next word is SECONDS unless it
 * is an option ("-5" is a bad SECONDS, not an option). */
static int
s_nodes_args(int argc, char **argv, s_nodes_opts_t *o)
{
    bool bad = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--watch") == 0) {
            bad = bad || o->watch;
            bool given = i + 1 < argc && strncmp(argv[i + 1], "--", 2) != 0;
            o->watch = given ? s_watch_period(argv[++i]) : 2;
            if (o->watch < 0)
                return PM_EXIT_USAGE;
            continue;
        }
        bool *flag = strcmp(argv[i], "--json") == 0      ? &o->json
                     : strcmp(argv[i], "--cluster") == 0 ? &o->cluster
                                                         : NULL;
        bad = bad || !flag || *flag;
        if (flag)
            *flag = true;
    }
    if (bad) {
        fprintf(stderr, "usage: privmta-ctl nodes [--cluster] "
                        "[--json | --watch [SECONDS]]\n");
        return PM_EXIT_USAGE;
    }
    if (o->watch && o->json) {
        fprintf(stderr, "privmta-ctl nodes: --watch cannot go with --json: "
                        "--watch redraws a table for a person, JSON is for "
                        "scripts (run 'nodes --json' in a loop instead)\n");
        return PM_EXIT_USAGE;
    }
    return PM_EXIT_OK;
}

static void
s_nodes_print(const Pm__Response *r, const s_nodes_opts_t *o)
{
    if (o->json && o->cluster) {
        pm_ctl_print_json(pm_ctl_json_cluster(r));
    } else if (o->json) {
        json_t *all = json_array();
        for (size_t i = 0; i < r->n_nodes; i++)
            json_array_append_new(all, pm_ctl_json_node(r->nodes[i], r));
        pm_ctl_print_json(all);
    } else {
        s_nodes_text(r, o->cluster);
    }
}

/* One frame of --watch: on a terminal it replaces the last one; piped, a
 * blank line parts it from the last, and no escape code goes to a log. */
static void
s_watch_show(pm_ctl_t *ctl, const s_nodes_opts_t *o, const Pm__Response *r,
             const char *error, bool tty, bool first)
{
    time_t now = time(NULL);
    struct tm tm;
    char at[16];
    strftime(at, sizeof at, "%H:%M:%S", localtime_r(&now, &tm));
    printf("%s", tty ? "\033[H\033[2J" : first ? "" : "\n");
    printf("every %d s, controller ", o->watch);
    pm_ctl_cell(pm_ctl_controller(ctl), 0, PM_CTL_LINE_MAX, ", ");
    printf("%s\n\n", at);
    if (r) {
        s_nodes_print(r, o);
    } else {
        /* a refusal is the controller's text: escaped like an agent's */
        pm_ctl_cell(error, 0, PM_CTL_LINE_MAX, "\n");
    }
    fflush(stdout);
}

/* Asks once and shows the answer, or why there is none. Only a usage
 * error (a bad --timeout) ends the watch. */
static int
s_watch_frame(pm_ctl_t *ctl, const s_nodes_opts_t *o, bool tty, bool first)
{
    Pm__Request req = PM__REQUEST__INIT;
    Pm__Response *r = NULL;
    char *why = NULL;
    req.op = PM__REQUEST__OP__NODES;
    req.expect_rev = -1;
    int rc = pm_ctl_call_why(ctl, &req, &r, &why);
    if (rc == PM_EXIT_USAGE) {
        fprintf(stderr, "privmta-ctl: %s\n", why);
    } else if (!zsys_interrupted) { /* else a signal cut the request short */
        char *error =
            r ? NULL
              : pm_asprintf("controller %s: %s",
                            rc == PM_EXIT_REJECTED ? "refused" : "unreachable",
                            why);
        s_watch_show(ctl, o, r, error, tty, first);
        free(error);
    }
    if (r)
        pm__response__free_unpacked(r, NULL);
    free(why);
    return rc == PM_EXIT_USAGE ? rc : PM_EXIT_OK;
}

/* Until SIGINT or SIGTERM: a controller that is down is shown in the
 * frame and asked again next period, as the person watching expects. */
static int
s_watch(pm_ctl_t *ctl, const s_nodes_opts_t *o)
{
    bool tty = isatty(STDOUT_FILENO);
    pm_ctl_until_interrupted();
    for (bool first = true; !zsys_interrupted; first = false) {
        int64_t next = zclock_mono() + (int64_t)o->watch * 1000;
        if (s_watch_frame(ctl, o, tty, first) != PM_EXIT_OK)
            return PM_EXIT_USAGE;
        /* short naps, so a signal ends it at once */
        while (!zsys_interrupted && zclock_mono() < next)
            zclock_sleep(100);
    }
    return PM_EXIT_OK;
}

int
pm_ctl_nodes(pm_ctl_t *ctl, int argc, char **argv)
{
    s_nodes_opts_t o = {0};
    int rc = s_nodes_args(argc, argv, &o);
    if (rc != PM_EXIT_OK)
        return rc;
    if (o.watch)
        return s_watch(ctl, &o);
    Pm__Response *r = NULL;
    rc = pm_ctl_call_op(ctl, PM__REQUEST__OP__NODES, &r);
    if (rc != PM_EXIT_OK)
        return rc;
    s_nodes_print(r, &o);
    pm__response__free_unpacked(r, NULL);
    return PM_EXIT_OK;
}

/* One hand edit of the history, with its node, for sorting. */
typedef struct {
    const char *node;
    const Pm__Drift *d;
} s_drift_row_t;

static int
s_newest_first(const void *a, const void *b)
{
    int64_t x = ((const s_drift_row_t *)a)->d->at;
    int64_t y = ((const s_drift_row_t *)b)->d->at;
    return x < y ? 1 : x > y ? -1 : 0;
}

/* privmta-ctl drift [NODE] [--json]: the hand edits the controller keeps
 * (the last 32 per node), newest first. */
int
pm_ctl_drift(pm_ctl_t *ctl, int argc, char **argv)
{
    bool json = false, bad = false;
    const char *only = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0 && !json)
            json = true;
        else if (argv[i][0] != '-' && !only)
            only = argv[i];
        else
            bad = true;
    }
    if (bad) {
        fprintf(stderr, "usage: privmta-ctl drift [NODE] [--json]\n");
        return PM_EXIT_USAGE;
    }
    Pm__Response *r = NULL;
    int rc = pm_ctl_call_op(ctl, PM__REQUEST__OP__NODES, &r);
    if (rc != PM_EXIT_OK)
        return rc;
    size_t n = 0, known = 0;
    for (size_t i = 0; i < r->n_nodes; i++)
        n += r->nodes[i]->n_drift_history;
    s_drift_row_t *rows = pm_calloc(n ? n : 1, sizeof *rows);
    n = 0;
    for (size_t i = 0; i < r->n_nodes; i++) {
        const Pm__NodeStatus *node = r->nodes[i];
        if (only && strcmp(node->name, only) != 0)
            continue;
        known++;
        for (size_t j = 0; j < node->n_drift_history; j++)
            rows[n++] = (s_drift_row_t){node->name, node->drift_history[j]};
    }
    qsort(rows, n, sizeof *rows, s_newest_first);
    if (only && !known) {
        fprintf(stderr, "privmta-ctl drift: no node %s has reported\n", only);
        rc = PM_EXIT_REJECTED;
    } else if (json) {
        json_t *all = json_array();
        for (size_t i = 0; i < n; i++) {
            json_t *o = pm_ctl_json_drift(rows[i].d);
            json_object_set_new(o, "node", json_string(rows[i].node));
            json_array_append_new(all, o);
        }
        pm_ctl_print_json(all);
    } else if (!n) {
        printf("no hand edit of what the policy owns has been seen\n");
    } else {
        for (size_t i = 0; i < n; i++) {
            pm_ctl_cell(rows[i].node, 16, PM_CTL_CELL_MAX, " ");
            s_drift_text(rows[i].d);
        }
    }
    free(rows);
    pm__response__free_unpacked(r, NULL);
    return rc;
}

/* privmta-ctl ping [--json]: whether the controller answers, and as what:
 * primary or standby (then following whom), its epoch and head revision.
 * With a list of controllers a standby is passed over for the primary;
 * with one the answer is that controller's. --json: {"endpoint", "role",
 * "epoch", "head", "primary"}, primary being the primary's address as far
 * as known (a primary's: the endpoint that answered), else null. */
int
pm_ctl_ping(pm_ctl_t *ctl, int argc, char **argv)
{
    bool json = argc == 2 && strcmp(argv[1], "--json") == 0;
    if (argc > 1 && !json) {
        fprintf(stderr, "usage: privmta-ctl ping [--json]\n");
        return PM_EXIT_USAGE;
    }
    Pm__Response *r = NULL;
    int rc = pm_ctl_call_op(ctl, PM__REQUEST__OP__PING, &r);
    if (rc != PM_EXIT_OK)
        return rc;
    const char *endpoint = pm_ctl_controller(ctl);
    const char *primary = *r->primary  ? r->primary
                          : r->standby ? NULL
                                       : endpoint;
    if (json) {
        pm_ctl_print_json(
            json_pack("{s:s, s:s, s:I, s:I, s:o}", "endpoint", endpoint, "role",
                      r->standby ? "standby" : "primary", "epoch",
                      (json_int_t)r->epoch, "head", (json_int_t)r->head,
                      "primary", primary ? json_string(primary) : json_null()));
    } else {
        /* the addresses are the controller's text: escaped */
        char *at = pm_text_escape(endpoint, PM_CTL_LINE_MAX);
        char *follows = pm_text_escape(primary ? primary : "no primary yet",
                                       PM_CTL_LINE_MAX);
        if (r->standby)
            printf("standby, epoch %" PRIu64 ", following %s, head revision "
                   "%" PRIu64 " (%s)\n",
                   r->epoch, follows, r->head, at);
        else
            printf("primary, epoch %" PRIu64 ", head revision %" PRIu64
                   " (%s)\n",
                   r->epoch, r->head, at);
        free(at);
        free(follows);
    }
    pm__response__free_unpacked(r, NULL);
    return PM_EXIT_OK;
}

/* privmta-ctl keygen PATH: a new client keypair, for enrolling another
 * admin (or, later, an agent): PATH.cert is public, PATH.cert_secret 0600. */
int
pm_ctl_keygen(pm_ctl_t *ctl, int argc, char **argv)
{
    (void)ctl;
    if (argc != 2) {
        fprintf(stderr, "usage: privmta-ctl keygen PATH\n");
        return PM_EXIT_USAGE;
    }
    char *copy = pm_strdup(argv[1]), *slash = strrchr(copy, '/');
    const char *dir = slash ? (*slash = '\0', *copy ? copy : "/") : ".";
    const char *name = slash ? slash + 1 : copy;
    char *why = NULL;
    int rc = PM_EXIT_OK;
    if (!*name || pm_keys_create(dir, name, PM_ROLE_ADMIN, NULL, &why) != 0) {
        fprintf(stderr, "privmta-ctl keygen: %s\n",
                why ? why : "PATH must end in a file name");
        rc = PM_EXIT_REJECTED;
    } else {
        printf("wrote %s.cert (public) and %s.cert_secret (secret, mode "
               "0600)\nto enroll it, copy %s.cert into the controller's "
               "clients/ directory\n",
               argv[1], argv[1], argv[1]);
    }
    free(why);
    free(copy);
    return rc;
}

/* privmta-ctl node add NAME PUBKEY|CERTFILE / node remove NAME */
int
pm_ctl_node(pm_ctl_t *ctl, int argc, char **argv)
{
    bool add = argc == 4 && strcmp(argv[1], "add") == 0;
    bool remove = argc == 3 && strcmp(argv[1], "remove") == 0;
    if (!add && !remove) {
        fprintf(stderr, "usage: privmta-ctl node add NAME PUBLIC-KEY|CERT-FILE"
                        "\n       privmta-ctl node remove NAME\n");
        return PM_EXIT_USAGE;
    }
    Pm__Request req = PM__REQUEST__INIT;
    Pm__Response *r = NULL;
    char *key = NULL, *why = NULL;
    req.op = add ? PM__REQUEST__OP__NODE_ADD : PM__REQUEST__OP__NODE_REMOVE;
    req.node = argv[2];
    req.expect_rev = -1;
    if (add) {
        /* a certificate file (the agent's NAME.cert) or the key itself */
        zcert_t *cert =
            strlen(argv[3]) == 40 ? NULL : pm_keys_load(argv[3], &why);
        if (!cert && strlen(argv[3]) != 40) {
            fprintf(stderr, "privmta-ctl node add: %s\n", why);
            free(why);
            return PM_EXIT_USAGE;
        }
        key = pm_strdup(cert ? zcert_public_txt(cert) : argv[3]);
        zcert_destroy(&cert);
        req.public_key = key;
    }
    int rc = pm_ctl_call(ctl, &req, &r);
    if (rc == PM_EXIT_OK) {
        printf(add ? "node %s enrolled\n" : "node %s withdrawn\n", argv[2]);
        pm__response__free_unpacked(r, NULL);
    }
    free(key);
    return rc;
}
