/* pm_rehearse.c - a scratch Postfix and privmta-milter for one policy test
 * (see pm_rehearse.h). */
#include "pm_rehearse.h"
#include "pm_rehearse_private.h"

#include "pm_clock.h"
#include "pm_cmd.h"
#include "pm_declog.h"
#include "pm_error.h"
#include "pm_file.h"
#include "pm_handoff.h"
#include "pm_log.h"
#include "pm_mem.h"
#include "pm_pf_node.h"
#include "pm_pf_rejects.h"
#include "pm_pf_render.h"
#include "pm_policy.h"
#include "pm_postconf.h"
#include "pm_rehearse_smtp.h"
#include "pm_text.h"

#include <czmq.h>
#include <dirent.h>
#include <jansson.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define S_STATUS_MAX (1u << 20)
#define S_REASON_MAX 300 /* bytes of one reason from the filter's status */

/* Hands POL (revision REV) to the filter and renders it into main.cf. */
static int
s_set_policy(pm_rehearse_run_t *r, const pm_rehearse_policy_t *pol,
             uint64_t rev, char **why)
{
    Pm__Revision copy = PM__REVISION__INIT;
    char digest[65];
    pm_policy_digest(pol->policy, digest);
    copy.number = rev;
    copy.digest = digest;
    copy.author = (char *)"privmta-ctl policy test";
    copy.policy = (Pm__Policy *)pol->policy;
    char *path = pm_asprintf("%s/%s", r->handoff, PM_HANDOFF_POLICY);
    int rc = pm_handoff_write(path, &copy, r->cfg->milter_gid, why);
    free(path);
    if (rc != PM_OK)
        return rc;
    Pm__Policy *eff = pm_policy_for_node(pol->policy, r->cfg->node);
    pm_pf_node_t node = {0};
    char *sock = pm_asprintf("unix:%s/milter.sock", r->dir);
    rc = pm_pf_node_read(r->etc, &node, why);
    if (rc == PM_OK) {
        pm_pf_caps_t caps = pm_pf_node_caps(&node, sock);
        size_t n = 0;
        pm_postconf_param_t *p = pm_pf_render(eff, &caps, &n);
        rc = pm_postconf_write(r->etc, p, n, why);
        pm_postconf_params_free(&p, n);
    }
    pm_pf_node_clear(&node);
    pm_policy_free(&eff);
    free(sock);
    if (rc == PM_OK && r->started)
        rc = pm_rehearse_pf_cmd(
            (char *[]){"postfix", "-c", r->etc, "reload", NULL},
            "postfix reload (scratch)", why);
    return rc;
}

/* The filter's status.json, parsed (caller decrefs), or NULL. */
static json_t *
s_status_json(pm_rehearse_run_t *r)
{
    char *path = pm_asprintf("%s/status.json", r->status), *text = NULL;
    size_t len = 0;
    bool ok = pm_file_read(path, S_STATUS_MAX, PM_FILE_STRICT, &text, &len,
                           NULL) == PM_OK;
    free(path);
    json_t *root = ok ? json_loadb(text, len, 0, NULL) : NULL;
    free(text);
    return root;
}

/* The filter's status: the revision in force and its engine builds. */
static bool
s_filter_status(pm_rehearse_run_t *r, uint64_t *rev, int64_t *loads,
                bool *loaded)
{
    json_t *root = s_status_json(r);
    json_t *av = json_object_get(root, "antivirus");
    *rev = (uint64_t)json_integer_value(
        json_object_get(json_object_get(root, "policy"), "revision"));
    *loads = json_integer_value(json_object_get(av, "loads")) +
             json_integer_value(json_object_get(av, "failures"));
    *loaded = json_is_true(json_object_get(av, "loaded"));
    json_decref(root);
    return root != NULL;
}

/* Whether the filter has exited; *SI then says how. Not reaped
 * (WNOWAIT): pm_cmd_stop does that. */
static bool
s_filter_exited(const pm_rehearse_run_t *r, siginfo_t *si)
{
    *si = (siginfo_t){0};
    return r->milter.pid > 0 &&
           waitid(P_PID, (id_t)r->milter.pid, si,
                  WEXITED | WNOHANG | WNOWAIT) == 0 &&
           si->si_pid == r->milter.pid;
}

/* The reasons the filter's status gives (its policy's error, its
 * engine's last error), escaped, appended to *WHY: the filter's own
 * messages go nowhere (it parses hostile mail, so it never writes into
 * the agent's log), so this is where a test says why it is not ready. */
static void
s_filter_reasons(pm_rehearse_run_t *r, char **why)
{
    json_t *root = s_status_json(r);
    const char *policy = json_string_value(
        json_object_get(json_object_get(root, "policy"), "error"));
    const char *engine = json_string_value(
        json_object_get(json_object_get(root, "antivirus"), "last_error"));
    const char *what[] = {"its policy", "its engine"};
    const char *text[] = {policy, engine};
    for (size_t i = 0; i < 2; i++) {
        if (!text[i])
            continue;
        char *shown = pm_text_escape(text[i], S_REASON_MAX);
        char *more = pm_asprintf("%s; %s: %s", *why, what[i], shown);
        free(shown);
        free(*why);
        *why = more;
    }
    if (!root) {
        char *more = pm_asprintf("%s; it wrote no status", *why);
        free(*why);
        *why = more;
    }
    json_decref(root);
}

/* True, with *WHY, when the owner stops the test. */
static bool
s_cancelled(const pm_rehearse_run_t *r, char **why)
{
    if (!r->cfg->cancelled || !r->cfg->cancelled(r->cfg->cancel_arg))
        return false;
    free(*why);
    *why = pm_strdup("cancelled: the agent is stopping");
    return true;
}

/* Waits until the filter enforces REV with an engine built after the
 * last one seen when NEW_ENGINE (the custom signatures changed). */
static int
s_filter_ready(pm_rehearse_run_t *r, const Pm__Policy *pol, uint64_t rev,
               bool new_engine, char **why)
{
    int ms = r->cfg->ready_ms > 0 ? r->cfg->ready_ms : PM_REHEARSE_READY_MS;
    int64_t end = pm_clock_ms() + ms;
    uint64_t seen = 0;
    int64_t loads = 0;
    bool loaded = false;
    siginfo_t si;
    bool exited = false;
    while (!exited && pm_clock_ms() < end) {
        if (s_cancelled(r, why))
            return PM_EIO;
        if (s_filter_status(r, &seen, &loads, &loaded) && seen == rev &&
            (!pol->antivirus_enabled ||
             (loaded && (!new_engine || loads > r->engine_loads)))) {
            r->engine_loads = loads;
            return PM_OK;
        }
        exited = s_filter_exited(r, &si);
        if (!exited)
            zclock_sleep(100);
    }
    char *how = exited
                    ? pm_asprintf("exited (%s %d) before it was ready",
                                  si.si_code == CLD_EXITED ? "status"
                                                           : "killed by signal",
                                  si.si_status)
                    : pm_asprintf("was not ready within %d s", ms / 1000);
    *why = pm_asprintf("the scratch filter %s (revision %llu in force, "
                       "engine %s)",
                       how, (unsigned long long)seen,
                       loaded ? "loaded" : "not loaded");
    free(how);
    s_filter_reasons(r, why);
    return PM_EIO;
}

static int
s_start_milter(pm_rehearse_run_t *r, const char *node, char **why)
{
    const pm_rehearse_config_t *cfg = r->cfg;
    char *sock = pm_asprintf("unix:%s/milter.sock", r->dir);
    char *policy = pm_asprintf("%s/%s", r->handoff, PM_HANDOFF_POLICY);
    char *notify = pm_asprintf("127.0.0.1:%d", r->notify_port);
    char *keys = pm_asprintf("%s/%s", r->handoff, PM_HANDOFF_DKIM);
    char *temp = pm_asprintf("%s/tmp", r->status);
    char *argv[] = {(char *)(cfg->milter_program ? cfg->milter_program
                                                 : PM_REHEARSE_MILTER),
                    "-c",
                    (char *)(cfg->milter_config ? cfg->milter_config
                                                : PM_REHEARSE_MILTER_CONFIG),
                    "--socket",
                    sock,
                    "--policy-file",
                    policy,
                    "--dkim-key-dir",
                    keys,
                    "--status-dir",
                    r->status,
                    "--temp-dir", /* not the live one's: emptied at start */
                    temp,
                    "--notify-smtp",
                    notify,
                    "--node",
                    (char *)node,
                    "--sig-jitter-ms",
                    "0",
                    "--status-ms",
                    "100",
                    "--syslog",
                    "no",
                    NULL};
    /* quiet: the filter parses hostile mail and must not write lines into
     * the agent's log as the agent; why it fails shows in its status and
     * exit (s_filter_ready) */
    int rc = pm_cmd_start(argv, true, &r->milter, why) == 0 ? PM_OK : PM_EIO;
    free(sock);
    free(policy);
    free(notify);
    free(keys);
    free(temp);
    return rc;
}

/* Removes a test's directory RUN. GNU rm walks with *at calls and never
 * follows a link: the milter user's files in status/ cannot lead it
 * elsewhere. */
static void
s_remove_run(const char *run)
{
    pm_cmd_result_t res = {0};
    char *argv[] = {"rm", "-rf", "--one-file-system", "--", (char *)run, NULL};
    if (pm_cmd_run(argv, NULL, &res) != 0) {
        /* rm names the filter's files: escaped, as its user named them */
        char *err =
            pm_text_escape(*res.err ? res.err : "rm failed", S_REASON_MAX);
        pm_warn("policy test: %s not removed: %s", run, err);
        free(err);
    }
    pm_cmd_result_clear(&res);
}

static void
s_teardown(pm_rehearse_run_t *r)
{
    pm_rehearse_pf_stop(r);
    if (r->milter.pid > 0)
        kill(r->milter.pid, SIGTERM);
    pm_cmd_stop(&r->milter);
    if (r->dir) {
        s_remove_run(r->dir);
    }
    free(r->dir);
    free(r->etc);
    free(r->handoff);
    free(r->status);
    free(r->msg);
}

/* Whether A and B build the same engine (the same custom signatures). */
static bool
s_same_engine(const Pm__Policy *a, const Pm__Policy *b)
{
    if (a->antivirus_enabled != b->antivirus_enabled ||
        a->n_antivirus_custom_signatures != b->n_antivirus_custom_signatures)
        return false;
    for (size_t i = 0; i < a->n_antivirus_custom_signatures; i++)
        if (strcmp(a->antivirus_custom_signatures[i]->sha256,
                   b->antivirus_custom_signatures[i]->sha256) ||
            strcmp(a->antivirus_custom_signatures[i]->name,
                   b->antivirus_custom_signatures[i]->name))
            return false;
    return true;
}

typedef struct {
    size_t n;     /* records seen */
    json_t *last; /* the newest, a reference */
} s_records_t;

/* A record of the scratch filter's, unless it names a key the filter
 * never decides by (forged by its user: pm_declog_filter_key). */
static void
s_record(const json_t *rec, void *arg)
{
    s_records_t *acc = arg;
    if (!pm_declog_filter_key(json_string_value(json_object_get(rec, "key"))))
        return;
    if (acc->n++ == 0)
        acc->last = json_incref((json_t *)rec);
}

/* The filter's decision records: how many, and the newest (caller
 * decrefs). */
static s_records_t
s_records(pm_rehearse_run_t *r)
{
    s_records_t acc = {0};
    pm_declog_query_t q = {0};
    char *why = NULL;
    if (pm_declog_query(r->status, PM_DECLOG_BYTES_MAX, &q, s_record, &acc,
                        NULL, &why) != PM_OK)
        pm_warn("policy test: %s", why);
    free(why);
    return acc;
}

static char *
s_json_str(const json_t *o, const char *key)
{
    const char *v = json_string_value(json_object_get(o, key));
    return pm_strdup(v ? v : "");
}

/* What Postfix checked when it refused at STAGE. */
static char *
s_postfix_evidence(const Pm__PolicyTest *t, const char *stage, const char *key,
                   const char *rcpt)
{
    if (key && strcmp(key, "outbound.mynetworks") == 0)
        return pm_asprintf("client %s is not in mynetworks%s; recipient %s",
                           t->client_addr,
                           *t->auth ? "" : " and not authenticated", rcpt);
    if (key && strncmp(key, "inbound.checks.helo", 19) == 0)
        return pm_asprintf("HELO %s", t->helo);
    if (key && strncmp(key, "inbound.checks.", 15) == 0 &&
        strstr(key, "client"))
        return pm_asprintf("client %s (%s)", t->client_addr,
                           *t->client_name ? t->client_name : "no name");
    if (strcmp(stage, "mail") == 0 || (key && strstr(key, "sender")))
        return pm_asprintf("sender <%s>", t->sender);
    if (strcmp(stage, "rcpt") == 0)
        return pm_asprintf("recipient <%s>", rcpt);
    return pm_strdup("");
}

static const char *
s_verdict_of(const char *reply)
{
    return reply[0] == '2'   ? "accepted"
           : reply[0] == '4' ? "tempfailed"
                             : "rejected";
}

/* One message to one recipient under POL. */
static Pm__TestResult *
s_one(pm_rehearse_run_t *r, const Pm__PolicyTest *t, const Pm__TestMessage *m,
      const char *rcpt, const pm_rehearse_policy_t *pol, char **why)
{
    pm_rehearse_smtp_t s = {
        .swaks = r->cfg->swaks,
        .host = "127.0.0.1",
        .port = r->port,
        .client_addr = t->client_addr,
        .client_name = t->client_name,
        .helo = t->helo,
        .sender = t->sender,
        .rcpt = rcpt,
        .auth = t->auth,
        .data_file = r->msg,
    };
    s_records_t before = s_records(r);
    json_decref(before.last);
    pm_rehearse_answer_t a = {0};
    if (pm_rehearse_smtp_send(&s, &a, why) != PM_OK)
        return NULL;
    Pm__TestResult *res = pm_malloc(sizeof *res);
    pm__test_result__init(res);
    res->message = pm_strdup(m->name);
    res->rcpt = pm_strdup(rcpt);
    res->policy = pm_strdup(pol->label);
    res->revision = pol->rev;
    res->reply = a.reply, a.reply = NULL;
    res->stage = a.stage, a.stage = NULL;
    s_records_t after = strcmp(res->stage, "end-of-data") == 0
                            ? s_records(r)
                            : (s_records_t){0};
    if (after.n > before.n) {
        res->verdict = s_json_str(after.last, "verdict");
        res->key = s_json_str(after.last, "key");
        /* a plain accept's log says only that */
        res->evidence = *res->key || strcmp(res->verdict, "accepted")
                            ? s_json_str(after.last, "evidence")
                            : pm_strdup("");
    } else {
        const char *key = pm_pf_reject_key(res->reply);
        res->verdict = pm_strdup(s_verdict_of(res->reply));
        res->key = pm_strdup(key ? key : "");
        res->evidence = res->reply[0] == '2'
                            ? pm_strdup("")
                            : s_postfix_evidence(t, res->stage, key, rcpt);
    }
    json_decref(after.last);
    return res;
}

/* Every message to every recipient under POLICIES[P], into
 * OUT[(m * n_rcpts + k) * n + p]. */
static int
s_messages(pm_rehearse_run_t *r, const Pm__PolicyTest *t, size_t p, size_t n,
           const pm_rehearse_policy_t *pol, Pm__TestResult **out, char **why)
{
    for (size_t m = 0; m < t->n_messages; m++) {
        const Pm__TestMessage *msg = t->messages[m];
        size_t len = 0;
        char *data = pm_rehearse_smtp_data((const char *)msg->data.data,
                                           msg->data.len, &len);
        int rc = pm_file_write(r->msg, data, len, 0600, (gid_t)-1, why);
        free(data);
        if (rc != PM_OK)
            return rc;
        for (size_t k = 0; k < t->n_rcpts; k++) {
            if (s_cancelled(r, why))
                return PM_EIO;
            Pm__TestResult *res = s_one(r, t, msg, t->rcpts[k], pol, why);
            if (!res) {
                char *w =
                    pm_asprintf("%s to %s: %s", msg->name, t->rcpts[k], *why);
                free(*why);
                *why = w;
                return PM_EIO;
            }
            out[(m * t->n_rcpts + k) * n + p] = res;
        }
    }
    return PM_OK;
}

static uint64_t
s_scratch_rev(const pm_rehearse_policy_t *policies, size_t n, size_t i)
{
    if (policies[i].rev)
        return policies[i].rev;
    uint64_t top = 0;
    for (size_t k = 0; k < n; k++)
        top = policies[k].rev > top ? policies[k].rev : top;
    return top + 1; /* apart from every stored one tested beside it */
}

int
pm_rehearse_run(const pm_rehearse_config_t *cfg, const Pm__PolicyTest *test,
                const pm_rehearse_policy_t *policies, size_t n,
                Pm__TestResult ***out, size_t *n_out, char **why)
{
    pm_rehearse_run_t r = {.cfg = cfg, .milter = {.pid = -1, .fd = -1}};
    size_t total = test->n_messages * test->n_rcpts * n;
    Pm__TestResult **res = pm_calloc(total + 1, sizeof *res);
    int rc = n && test->n_rcpts ? PM_OK : PM_EINVAL;
    if (rc != PM_OK)
        *why = pm_strdup("nothing to test: no recipient or no policy");
    if (rc == PM_OK && s_cancelled(&r, why))
        rc = PM_EIO;
    if (rc == PM_OK && (rc = pm_rehearse_pf_make(&r, why)) == PM_OK)
        rc = s_set_policy(&r, &policies[0], s_scratch_rev(policies, n, 0), why);
    if (rc == PM_OK)
        rc = s_start_milter(&r, cfg->node, why);
    if (rc == PM_OK)
        rc = pm_rehearse_pf_start(&r, why);
    for (size_t p = 0; rc == PM_OK && p < n; p++) {
        uint64_t rev = s_scratch_rev(policies, n, p);
        if (p > 0)
            rc = s_set_policy(&r, &policies[p], rev, why);
        if (rc == PM_OK)
            rc = s_filter_ready(&r, policies[p].policy, rev,
                                p > 0 && !s_same_engine(policies[p - 1].policy,
                                                        policies[p].policy),
                                why);
        if (rc == PM_OK)
            rc = s_messages(&r, test, p, n, &policies[p], res, why);
    }
    s_teardown(&r);
    if (rc != PM_OK) {
        for (size_t i = 0; i < total; i++)
            if (res[i])
                pm__test_result__free_unpacked(res[i], NULL);
        free(res);
        return rc;
    }
    *out = res;
    *n_out = total;
    return PM_OK;
}

/* ---- what a killed agent left ------------------------------------------ */

/* Whether process PID has GID (-1: any) and names RUN on its command line:
 * the status file that gave PID is the milter user's to write, and root
 * kills nothing it does not recognise as that run's filter. */
static bool
s_is_run_filter(long pid, gid_t gid, const char *run)
{
    char *path = pm_asprintf("/proc/%ld/cmdline", pid), *cmd = NULL;
    size_t len = 0;
    bool named = pm_file_read(path, 65536, 0, &cmd, &len, NULL) == PM_OK &&
                 memmem(cmd, len, run, strlen(run)) != NULL;
    free(cmd);
    free(path);
    path = pm_asprintf("/proc/%ld", pid);
    struct stat st;
    bool ours = stat(path, &st) == 0 && (gid == (gid_t)-1 || st.st_gid == gid);
    free(path);
    return named && ours;
}

/* RUN's scratch Postfix stopped, its filter killed, RUN removed. */
static void
s_sweep_run(const char *run, gid_t milter_gid)
{
    char *etc = pm_asprintf("%s/etc", run), *ignored = NULL;
    char *main_cf = pm_asprintf("%s/main.cf", etc);
    if (access(main_cf, F_OK) == 0)
        pm_rehearse_pf_cmd((char *[]){"postfix", "-c", etc, "stop", NULL},
                           "postfix stop (scratch)", &ignored);
    char *status = pm_asprintf("%s/status/status.json", run), *text = NULL;
    json_t *root = pm_file_read(status, 1 << 20, PM_FILE_STRICT, &text, NULL,
                                NULL) == PM_OK
                       ? json_loads(text, 0, NULL)
                       : NULL;
    json_int_t pid = json_integer_value(json_object_get(root, "pid"));
    if (pid > 1 && pid <= INT_MAX &&
        s_is_run_filter((long)pid, milter_gid, run))
        kill((pid_t)pid, SIGKILL);
    json_decref(root);
    s_remove_run(run);
    free(text);
    free(status);
    free(ignored);
    free(main_cf);
    free(etc);
}

size_t
pm_rehearse_sweep(const char *dir, gid_t milter_gid)
{
    const char *root = dir ? dir : PM_REHEARSE_DIR;
    DIR *d = opendir(root);
    size_t n = 0;
    for (struct dirent *e; d && (e = readdir(d));) {
        struct stat st;
        char *run = pm_asprintf("%s/%s", root, e->d_name);
        if (strncmp(e->d_name, "run.", 4) == 0 && lstat(run, &st) == 0 &&
            S_ISDIR(st.st_mode)) {
            pm_warn("policy test: sweeping %s, left by an agent that did "
                    "not finish it",
                    run);
            s_sweep_run(run, milter_gid);
            n++;
        }
        free(run);
    }
    if (d)
        closedir(d);
    return n;
}
