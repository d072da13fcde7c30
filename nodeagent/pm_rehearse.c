/* pm_rehearse.c - a scratch Postfix and privmta-milter for one policy test
 * (see pm_rehearse.h). */
#include "pm_rehearse.h"

#include "pm_cmd.h"
#include "pm_declog.h"
#include "pm_error.h"
#include "pm_file.h"
#include "pm_handoff.h"
#include "pm_log.h"
#include "pm_mem.h"
#include "pm_pf_node.h"
#include "pm_pf_render.h"
#include "pm_pf_run.h"
#include "pm_policy.h"
#include "pm_postconf.h"
#include "pm_priv.h"
#include "pm_rehearse_smtp.h"

#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define S_MAIN_CF_MAX (4u << 20)
#define S_STATUS_MAX (1u << 20)
#define S_START_MS 15000 /* the scratch master's listener */

typedef struct {
    const pm_rehearse_config_t *cfg;
    char *dir, *etc, *handoff, *status, *msg;
    int port, notify_port;
    pm_cmd_child_t milter;
    bool started;
    int64_t engine_loads; /* the filter's engine builds seen so far */
} s_run_t;

static int64_t
s_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void
s_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

/* Runs postconf/postfix ARGV; PM_OK or PM_EIO with *why naming WHAT. */
static int
s_pf(char *const argv[], const char *what, char **why)
{
    pm_cmd_result_t res = {0};
    int rc = pm_pf_run(argv, NULL, true, 30000, &res);
    if (rc != 0)
        *why = pm_cmd_why(what, &res);
    pm_cmd_result_clear(&res);
    return rc == 0 ? PM_OK : PM_EIO;
}

/* Two free loopback ports, held until both are known. */
static int
s_ports(int *a, int *b, char **why)
{
    int fds[2] = {-1, -1}, ports[2] = {0, 0};
    for (int i = 0; i < 2; i++) {
        struct sockaddr_in sa = {.sin_family = AF_INET};
        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        socklen_t len = sizeof sa;
        fds[i] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fds[i] < 0 || bind(fds[i], (struct sockaddr *)&sa, sizeof sa) ||
            getsockname(fds[i], (struct sockaddr *)&sa, &len)) {
            *why =
                pm_asprintf("no free port on 127.0.0.1: %s", strerror(errno));
            break;
        }
        ports[i] = ntohs(sa.sin_port);
    }
    for (int i = 0; i < 2; i++)
        if (fds[i] >= 0)
            close(fds[i]);
    *a = ports[0], *b = ports[1];
    return ports[1] ? PM_OK : PM_EIO;
}

/* The scratch directory and what lives in it, main.cf from the live one. */
static int
s_make_dirs(s_run_t *r, char **why)
{
    const pm_rehearse_config_t *cfg = r->cfg;
    const char *root = cfg->dir ? cfg->dir : PM_REHEARSE_DIR;
    if (pm_file_mkdir(root, 0711, (gid_t)-1, why) != PM_OK)
        return PM_EIO;
    r->dir = pm_asprintf("%s/run.XXXXXX", root);
    if (!mkdtemp(r->dir) || chmod(r->dir, 0755) != 0) {
        *why = pm_asprintf("%s: %s", r->dir, strerror(errno));
        PM_FREE(&r->dir);
        return PM_EIO;
    }
    r->etc = pm_asprintf("%s/etc", r->dir);
    r->handoff = pm_asprintf("%s/handoff", r->dir);
    r->status = pm_asprintf("%s/status", r->dir);
    r->msg = pm_asprintf("%s/message.eml", r->dir);
    uid_t pf_uid;
    gid_t pf_gid;
    char *queue = pm_asprintf("%s/queue", r->dir);
    char *data = pm_asprintf("%s/data", r->dir);
    char *log = pm_asprintf("%s/maillog", r->dir);
    int rc = PM_EIO;
    if (pm_priv_lookup("postfix", &pf_uid, &pf_gid, why) == PM_OK &&
        pm_file_mkdir(r->etc, 0755, (gid_t)-1, why) == PM_OK &&
        pm_file_mkdir(queue, 0755, (gid_t)-1, why) == PM_OK &&
        pm_file_mkdir(data, 0700, (gid_t)-1, why) == PM_OK &&
        pm_file_mkdir(r->handoff, 0750, r->cfg->milter_gid, why) == PM_OK &&
        pm_file_write(log, "", 0, 0644, (gid_t)-1, why) == PM_OK) {
        if (chown(data, pf_uid, pf_gid) == 0 && chown(log, pf_uid, pf_gid) == 0)
            rc = PM_OK;
        else
            *why = pm_asprintf("%s: cannot give it to postfix: %s", data,
                               strerror(errno));
    }
    free(queue);
    free(data);
    free(log);
    return rc;
}

/* main.cf: the live one, then the instance's own place and no way out. */
static int
s_main_cf(s_run_t *r, char **why)
{
    char *live = pm_asprintf("%s/main.cf", r->cfg->postfix_dir);
    char *to = pm_asprintf("%s/main.cf", r->etc), *text = NULL;
    size_t len = 0;
    int rc = pm_file_read(live, S_MAIN_CF_MAX, 0, &text, &len, why);
    if (rc == PM_OK)
        rc = pm_file_write(to, text, len, 0644, (gid_t)-1, why);
    free(text);
    free(live);
    free(to);
    if (rc != PM_OK)
        return rc;
#define S_P(n, ...) {(char *)n, pm_asprintf(__VA_ARGS__)}
    pm_postconf_param_t p[] = {
        S_P("queue_directory", "%s/queue", r->dir),
        S_P("data_directory", "%s/data", r->dir),
        S_P("maillog_file", "%s/maillog", r->dir),
        S_P("maillog_file_prefixes", "/var, /dev/stdout, %s", r->dir),
        S_P("syslog_name", "postfix/privmta-test"),
        S_P("inet_interfaces", "loopback-only"),
        S_P("inet_protocols", "ipv4"),
        S_P("proxy_interfaces", "%s", ""),
        S_P("multi_instance_enable", "no"),
        S_P("multi_instance_directories", "%s", ""),
        S_P("master_service_disable", "%s", ""),
        S_P("default_transport", "discard:privmta policy test"),
        S_P("local_transport", "discard:privmta policy test"),
        S_P("relay_transport", "discard:privmta policy test"),
        S_P("virtual_transport", "discard:privmta policy test"),
        S_P("mailbox_transport", "%s", ""),
        S_P("fallback_transport", "%s", ""),
        S_P("mailbox_command", "%s", ""),
        S_P("transport_maps", "%s", ""),
        S_P("sender_dependent_default_transport_maps", "%s", ""),
        S_P("content_filter", "%s", ""),
        S_P("smtpd_proxy_filter", "%s", ""),
        S_P("always_bcc", "%s", ""),
        S_P("sender_bcc_maps", "%s", ""),
        S_P("recipient_bcc_maps", "%s", ""),
        S_P("notify_classes", "%s", ""),
        S_P("smtpd_authorized_xclient_hosts", "127.0.0.1"),
    };
#undef S_P
    size_t n = sizeof p / sizeof *p;
    rc = pm_postconf_write(r->etc, p, n, why);
    for (size_t i = 0; i < n; i++)
        free(p[i].value);
    return rc;
}

/* master.cf: Postfix's template, its two listeners, no chroot. */
static int
s_master_cf(s_run_t *r, char **why)
{
    static const char *const templates[] = {
        "/etc/postfix/master.cf.proto", "/usr/share/postfix/master.cf.dist"};
    char *text = NULL, *to = pm_asprintf("%s/master.cf", r->etc);
    size_t len = 0;
    int rc = PM_ENOTFOUND;
    for (size_t i = 0; i < 2 && rc != PM_OK; i++) {
        free(*why), *why = NULL;
        rc = pm_file_read(templates[i], S_MAIN_CF_MAX, 0, &text, &len, why);
    }
    if (rc == PM_OK)
        rc = pm_file_write(to, text, len, 0644, (gid_t)-1, why);
    free(text);
    free(to);
    char *smtp = pm_asprintf("127.0.0.1:%d/inet=127.0.0.1:%d inet n - n - - "
                             "smtpd",
                             r->port, r->port);
    char *notify =
        pm_asprintf("127.0.0.1:%d/inet=127.0.0.1:%d inet n - n - - smtpd "
                    "-o smtpd_milters= -o smtpd_authorized_xclient_hosts=",
                    r->notify_port, r->notify_port);
    char *cmds[][6] = {
        {"postconf", "-c", r->etc, "-MX", "smtp/inet", NULL},
        {"postconf", "-c", r->etc, "-M", smtp, NULL},
        {"postconf", "-c", r->etc, "-M", notify, NULL},
        {"postconf", "-c", r->etc, "-F", "*/*/chroot = n", NULL},
        {"postconf", "-c", r->etc, "-M",
         "postlog/unix-dgram=postlog unix-dgram n - n - 1 postlogd", NULL},
    };
    for (size_t i = 0; rc == PM_OK && i < sizeof cmds / sizeof *cmds; i++)
        rc = s_pf(cmds[i], "postconf -M (scratch master.cf)", why);
    free(smtp);
    free(notify);
    return rc;
}

/* Hands POL (revision REV) to the filter and renders it into main.cf. */
static int
s_set_policy(s_run_t *r, const pm_rehearse_policy_t *pol, uint64_t rev,
             char **why)
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
        rc = s_pf((char *[]){"postfix", "-c", r->etc, "reload", NULL},
                  "postfix reload (scratch)", why);
    return rc;
}

/* The filter's status: the revision in force and its engine builds. */
static bool
s_filter_status(s_run_t *r, uint64_t *rev, int64_t *loads, bool *loaded)
{
    char *path = pm_asprintf("%s/status.json", r->status), *text = NULL;
    size_t len = 0;
    bool ok = pm_file_read(path, S_STATUS_MAX, PM_FILE_STRICT, &text, &len,
                           NULL) == PM_OK;
    free(path);
    json_t *root = ok ? json_loadb(text, len, 0, NULL) : NULL;
    free(text);
    json_t *av = json_object_get(root, "antivirus");
    *rev = (uint64_t)json_integer_value(
        json_object_get(json_object_get(root, "policy"), "revision"));
    *loads = json_integer_value(json_object_get(av, "loads")) +
             json_integer_value(json_object_get(av, "failures"));
    *loaded = json_is_true(json_object_get(av, "loaded"));
    json_decref(root);
    return root != NULL;
}

/* Waits until the filter enforces REV with an engine built after the
 * last one seen when NEW_ENGINE (the custom signatures changed). */
static int
s_filter_ready(s_run_t *r, const Pm__Policy *pol, uint64_t rev, bool new_engine,
               char **why)
{
    int ms = r->cfg->ready_ms > 0 ? r->cfg->ready_ms : PM_REHEARSE_READY_MS;
    int64_t end = s_now_ms() + ms;
    uint64_t seen = 0;
    int64_t loads = 0;
    bool loaded = false;
    while (s_now_ms() < end) {
        if (s_filter_status(r, &seen, &loads, &loaded) && seen == rev &&
            (!pol->antivirus_enabled ||
             (loaded && (!new_engine || loads > r->engine_loads)))) {
            r->engine_loads = loads;
            return PM_OK;
        }
        s_sleep_ms(100);
    }
    *why = pm_asprintf("the scratch filter was not ready within %d s "
                       "(revision %llu in force, engine %s)",
                       ms / 1000, (unsigned long long)seen,
                       loaded ? "loaded" : "not loaded");
    return PM_EIO;
}

static int
s_start_milter(s_run_t *r, const char *node, char **why)
{
    const pm_rehearse_config_t *cfg = r->cfg;
    char *sock = pm_asprintf("unix:%s/milter.sock", r->dir);
    char *policy = pm_asprintf("%s/%s", r->handoff, PM_HANDOFF_POLICY);
    char *notify = pm_asprintf("127.0.0.1:%d", r->notify_port);
    char *argv[] = {(char *)(cfg->milter_program ? cfg->milter_program
                                                 : PM_REHEARSE_MILTER),
                    "-c",
                    (char *)(cfg->milter_config ? cfg->milter_config
                                                : PM_REHEARSE_MILTER_CONFIG),
                    "--socket",
                    sock,
                    "--policy-file",
                    policy,
                    "--status-dir",
                    r->status,
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
    int rc = pm_cmd_start(argv, &r->milter, why) == 0 ? PM_OK : PM_EIO;
    free(sock);
    free(policy);
    free(notify);
    return rc;
}

static int
s_start_postfix(s_run_t *r, char **why)
{
    if (s_pf((char *[]){"postfix", "-c", r->etc, "start", NULL},
             "postfix start (scratch)", why) != PM_OK)
        return PM_EIO;
    r->started = true;
    int64_t end = s_now_ms() + S_START_MS;
    while (s_now_ms() < end) {
        struct sockaddr_in sa = {.sin_family = AF_INET,
                                 .sin_port = htons((uint16_t)r->port)};
        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        bool up =
            fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0;
        if (fd >= 0)
            close(fd);
        if (up)
            return PM_OK;
        s_sleep_ms(100);
    }
    *why = pm_asprintf("the scratch Postfix does not listen on 127.0.0.1:%d "
                       "(see %s/maillog)",
                       r->port, r->dir);
    return PM_EIO;
}

static void
s_teardown(s_run_t *r)
{
    char *ignored = NULL;
    if (r->started)
        s_pf((char *[]){"postfix", "-c", r->etc, "stop", NULL},
             "postfix stop (scratch)", &ignored);
    free(ignored);
    if (r->milter.pid > 0)
        kill(r->milter.pid, SIGTERM);
    pm_cmd_stop(&r->milter);
    if (r->dir) {
        /* GNU rm walks with *at calls and never follows a link: the
         * milter user's files in status/ cannot lead it elsewhere */
        pm_cmd_result_t res = {0};
        char *argv[] = {"rm", "-rf", "--one-file-system", "--", r->dir, NULL};
        if (pm_cmd_run(argv, NULL, &res) != 0)
            pm_warn("policy test: %s not removed: %s", r->dir,
                    res.err ? res.err : "rm failed");
        pm_cmd_result_clear(&res);
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

static void
s_record(const json_t *rec, void *arg)
{
    s_records_t *acc = arg;
    if (acc->n++ == 0)
        acc->last = json_incref((json_t *)rec);
}

/* The filter's decision records: how many, and the newest (caller
 * decrefs). */
static s_records_t
s_records(s_run_t *r)
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
s_one(s_run_t *r, const Pm__PolicyTest *t, const Pm__TestMessage *m,
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
        const char *key = pm_rehearse_smtp_key(res->reply);
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
s_messages(s_run_t *r, const Pm__PolicyTest *t, size_t p, size_t n,
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
    s_run_t r = {.cfg = cfg, .milter = {.pid = -1, .fd = -1}};
    size_t total = test->n_messages * test->n_rcpts * n;
    Pm__TestResult **res = pm_calloc(total + 1, sizeof *res);
    int rc = n && test->n_rcpts ? PM_OK : PM_EINVAL;
    if (rc != PM_OK)
        *why = pm_strdup("nothing to test: no recipient or no policy");
    if (rc == PM_OK && (rc = s_ports(&r.port, &r.notify_port, why)) == PM_OK &&
        (rc = s_make_dirs(&r, why)) == PM_OK &&
        (rc = s_main_cf(&r, why)) == PM_OK &&
        (rc = s_master_cf(&r, why)) == PM_OK)
        rc = s_set_policy(&r, &policies[0], s_scratch_rev(policies, n, 0), why);
    if (rc == PM_OK)
        rc = s_start_milter(&r, cfg->node, why);
    if (rc == PM_OK)
        rc = s_start_postfix(&r, why);
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
