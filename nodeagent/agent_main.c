/* privmta-agent: one per mail node; enforces the controller's policy on
 * this node's Postfix and reports the node's status. */
#include "pm_agent.h"
#include "pm_conf.h"
#include "pm_crash.h"
#include "pm_error.h"
#include "pm_file.h"
#include "pm_handoff.h"
#include "pm_keys.h"
#include "pm_log.h"
#include "pm_mem.h"
#include "pm_pf_rejects.h"
#include "pm_postconf.h"
#include "pm_pf_listener.h"
#include "pm_postfix.h"
#include "pm_priv.h"
#include "pm_rehearse.h"
#include "pm_sigmembers.h"
#include "pm_sigsync.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <grp.h>
#include <pwd.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <string.h>
#include <unistd.h>

/* a number as the string the parameter table holds */
#define S_STR(x) #x
#define S_XSTR(x) S_STR(x)

static pm_param_t s_params[] = {
    {"name", "", "this node's name, as enrolled (required)", NULL},
    {"controller", "tcp://127.0.0.1:7421",
     "the controller's agent endpoint; with standby controllers (one "
     "controller key, only the primary listening), all of them separated by "
     "commas and/or blanks, e.g. \"tcp://10.0.0.1:7421, "
     "tcp://10.0.0.2:7421\": the agent talks to the first, and when it "
     "hears nothing for dead_after_ms it tries the next, in turn",
     NULL},
    {"controller_key", "/var/lib/privmta/keys/controller.cert",
     "the controller's public key file", NULL},
    {"state_dir", "/var/lib/privmta-agent", "keys and applied revisions", NULL},
    {"backend", "postfix", "postfix, or noop (benchmarks)", NULL},
    {"postfix_dir", "/etc/postfix", "the Postfix configuration directory",
     NULL},
    {"address", "", "the node's address, shown by privmta-ctl nodes", NULL},
    {"heartbeat_ms", "1000", "heartbeat period", NULL},
    {"dead_after_ms", "3000",
     "controller silence before a resync (with several controller "
     "endpoints: before the next is tried)",
     NULL},
    {"log_level", "info", "debug, info, warning or error", NULL},
    {"syslog", "no", "also log to syslog: yes or no", NULL},
    {"milter_socket", "",
     "privmta-milter's socket in Postfix syntax (unix:/path, "
     "unix:path relative to Postfix's queue directory, where a chrooted "
     "smtpd reaches it, or inet:127.0.0.1:PORT), wired into Postfix when "
     "the policy needs it; empty: no milter on this node",
     NULL},
    {"notify_listener", "",
     "the Postfix listener privmta-milter sends its notifications to, e.g. "
     "127.0.0.1:10026: added to master.cf by the first apply when missing "
     "(an smtpd on that address that runs no milter; an entry of that name "
     "already there is left as it is) and handed to the milter with the "
     "policy, which then uses it instead of its own notify_smtp; empty: "
     "master.cf is not touched and the milter keeps its notify_smtp",
     NULL},
    {"milter_status", "/run/privmta-milter/status.json",
     "privmta-milter's status file, read at each heartbeat", NULL},
    {"milter_dir", PM_HANDOFF_DIR,
     "where the applied revision and DKIM keys are handed to privmta-milter "
     "(root-owned, readable by milter_group); written when milter_socket "
     "is set",
     NULL},
    {"milter_group", "",
     "the group privmta-milter runs with, given read access to milter_dir "
     "(default: milter_user's group, else root's)",
     NULL},
    {"milter_user", "",
     "the user privmta-milter runs as: only its group is used (nothing is "
     "ever owned by it)",
     NULL},
    {"sig_dir", "",
     "where this node keeps the ClamAV databases the cluster fetches "
     "(antivirus.databases), for privmta-milter's sig_dir: an absolute "
     "path, created root-owned 0751 and readable by milter_group; empty: "
     "this node takes no part in fetching or sharing them",
     NULL},
    {"fetch_user", "nobody",
     "the user privmta-sigfetch runs as when this agent runs as root: "
     "mirror fetches (libcurl, libfreshclam) and ClamAV's check of what "
     "peers send parse hostile input, never as root; not root itself. Best a "
     "user of its own (nobody is shared with other daemons)",
     NULL},
    {"verify_user", "",
     "the user privmta-sigfetch --verify-server runs as when this agent "
     "runs as root: ClamAV's check of every database file a fetch or a peer "
     "brings, before the agent installs it; empty: fetch_user. Best a user "
     "of its own: a fetch compromised by what a mirror sent runs as "
     "fetch_user and could stop or kill a verifier of the same user; not "
     "root itself",
     NULL},
    {"peer_bind", "",
     "where this agent serves its databases to peers (CurveZMQ, enrolled "
     "keys only), e.g. tcp://0.0.0.0:7422; empty: it pulls but serves none",
     NULL},
    {"peer_host", "",
     "the host or address peers reach peer_bind at (default: peer_bind's)",
     NULL},
    {"sigfetch", "",
     "the privmta-sigfetch program every mirror fetch runs in (a short-lived "
     "child; default: the one beside this privmta-agent)",
     NULL},
    {"gossip_ms", "200", "signature gossip round", NULL},
    {"peer_links", S_XSTR(PM_SIGMEMBERS_LINKS_MAX),
     "CurveZMQ connections to peers this agent keeps at once: in a bigger "
     "cluster it gossips within that many members (a random partial view "
     "that changes one member every 16 rounds), so the cluster does not "
     "grow a connection between every pair of agents; each costs a few "
     "descriptors and some memory",
     NULL},
    {"cdiff_min_kib", S_XSTR(PM_SIGSYNC_CDIFF_MIN_KIB),
     "a database this node holds catches up from a peer by CDIFF (KiB "
     "instead of the whole file) only when this node's copy is larger than "
     "this many KiB: starting libfreshclam costs more than a few MiB from "
     "a peer; 0: always when a peer keeps the CDIFFs",
     NULL},
    {"postfix_log", "",
     "Postfix's log, followed for its own refusals (HELO, sender, recipient "
     "checks, relay denied) so that privmta-ctl why finds them; empty: "
     "postfix_dir's maillog_file, else " PM_PF_REJECTS_LOG " where it "
     "exists, else the systemd journal where it runs; \"" PM_PF_REJECTS_JOURNAL
     "\": the journal's entries of smtpd; \"none\": not followed",
     NULL},
    {"rehearsal_dir", PM_REHEARSE_DIR,
     "privmta-ctl policy test: where the scratch Postfix and filter of a "
     "test live while it runs (created root-owned 0711)",
     NULL},
    {"milter_program", PM_REHEARSE_MILTER,
     "privmta-ctl policy test: the privmta-milter program started for a "
     "test",
     NULL},
    {"milter_config", PM_REHEARSE_MILTER_CONFIG,
     "privmta-ctl policy test: the live privmta-milter's configuration "
     "file (its databases, spamd, DKIM keys and user are the test's)",
     NULL},
    {"milter_restart", "",
     "the command that restarts privmta-milter in a rolling restart, split "
     "on blanks into words (no shell), e.g. \"systemctl restart "
     "privmta-milter\"; empty: milter restarts of this node fail saying so",
     NULL},
    {"postfix_restart", "",
     "the command that restarts Postfix in a rolling restart, split on "
     "blanks into words (no shell), e.g. \"systemctl restart postfix\" "
     "where systemd runs Postfix (the agent's own postfix start would run "
     "it inside the agent's unit); empty: postfix -c postfix_dir stop, "
     "then start",
     NULL},
    {"metrics_listen", "",
     "HOST:PORT to serve Prometheus metrics on (GET /metrics), e.g. "
     "127.0.0.1:9467; empty: off",
     NULL},
    {"debug_drop_rev", "0", "tests only: ignore the update of this revision",
     NULL},
    {"debug_crash_at", "",
     "tests only: SIGKILL this agent at a step of its next apply: keys, "
     "handoff, main.cf, reload or stored",
     NULL},
    {NULL, NULL, NULL, NULL},
};

/* The node's keypair, made on first start (secret 0600). */
static zcert_t *
s_keys(const char *state_dir, const char *name)
{
    char *why = NULL;
    char *keys = pm_asprintf("%s/keys", state_dir);
    char *path = pm_asprintf("%s/agent.cert", keys);
    if (access(path, F_OK) != 0 &&
        pm_keys_create(keys, "agent", PM_ROLE_AGENT, NULL, &why) != 0)
        pm_fatal("keys: %s", why);
    zcert_t *cert = pm_keys_load(path, &why);
    if (!cert)
        pm_fatal("keys: %s", why);
    zcert_set_meta(cert, "name", "%s", name);
    free(keys);
    free(path);
    return cert;
}

/* Where Postfix logs (postfix_log; DIR's maillog_file; the syslog file;
 * the journal where it is the only log), or NULL: "none". Owned by the
 * process (it lives as long as the agent). */
static const char *
s_postfix_log(const char *dir, const char **syslog_name)
{
    static char *maillog, *name;
    const char *log = pm_conf_get(s_params, "postfix_log");
    const char *const names[] = {"maillog_file", "syslog_name"};
    char *values[2] = {NULL, NULL}, *why = NULL;
    if (strcmp(log, "none") == 0)
        return NULL;
    if (pm_postconf_read(dir, names, 2, values, &why) == PM_OK) {
        maillog = values[0] && *values[0] ? values[0] : NULL;
        if (!maillog)
            free(values[0]);
        name = values[1] && *values[1] ? values[1] : NULL;
        if (!name)
            free(values[1]);
    }
    free(why);
    *syslog_name = name;
    if (*log)
        return log;
    if (maillog)
        return maillog;
    /* no syslog daemon writes mail.log, and journald runs */
    if (access(PM_PF_REJECTS_LOG, F_OK) != 0 &&
        access("/run/systemd/journal/socket", F_OK) == 0)
        return PM_PF_REJECTS_JOURNAL;
    return PM_PF_REJECTS_LOG;
}

/* The milter's group: named, or its user's primary group, or -1. */
static int
s_milter_gid(void)
{
    const char *group = pm_conf_get(s_params, "milter_group");
    const char *user = pm_conf_get(s_params, "milter_user");
    if (*group) {
        struct group *gr = getgrnam(group);
        if (!gr)
            pm_fatal("milter_group '%s': no such group", group);
        return (int)gr->gr_gid;
    }
    if (*user) {
        struct passwd *pw = getpwnam(user);
        if (!pw)
            pm_fatal("milter_user '%s': no such user", user);
        return (int)pw->pw_gid;
    }
    return -1;
}

static pm_backend_t *
s_backend(void)
{
    const char *kind = pm_conf_get(s_params, "backend");
    char *why = NULL;
    if (strcmp(kind, "noop") == 0)
        return pm_backend_noop_new();
    if (strcmp(kind, "postfix") != 0)
        pm_fatal("backend '%s' is not postfix or noop", kind);
    pm_backend_t *b =
        pm_postfix_new(pm_conf_get(s_params, "postfix_dir"), &why);
    if (!b)
        pm_fatal("postfix: %s", why);
    return b;
}

/* The sigfetch parameter, else privmta-sigfetch beside this program
 * (static storage); fatal when it cannot be run. */
static const char *
s_sigfetch_path(void)
{
    static char path[PATH_MAX];
    const char *set = pm_conf_get(s_params, "sigfetch");
    if (*set)
        snprintf(path, sizeof path, "%s", set);
    else {
        char self[PATH_MAX - 32]; /* room for "/privmta-sigfetch" */
        ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
        if (n <= 0)
            pm_fatal("sigfetch: cannot find this program's directory (%s); "
                     "set sigfetch",
                     strerror(errno));
        self[n] = '\0';
        char *slash = strrchr(self, '/');
        *slash = '\0';
        snprintf(path, sizeof path, "%s/privmta-sigfetch", self);
    }
    if (path[0] != '/' || access(path, X_OK) != 0)
        pm_fatal("sigfetch %s: %s; every signature fetch and check runs in "
                 "privmta-sigfetch (install it beside privmta-agent, or set "
                 "sigfetch to where it is)",
                 path,
                 path[0] != '/' ? "not an absolute path" : strerror(errno));
    return path;
}

/* The controller option names at least one endpoint (the agent splits it
 * with the same pm_conf_list). */
static void
s_check_controller(void)
{
    size_t n = 0;
    char **list = pm_conf_list(pm_conf_get(s_params, "controller"), &n);
    pm_conf_list_free(&list);
    if (!n)
        pm_fatal("controller: no endpoint given: the controller's agent "
                 "endpoint, or several (primary and standbys) separated by "
                 "commas and/or blanks");
}

int
main(int argc, char **argv)
{
    bool print_key = pm_conf_main(
        s_params, argc, argv,
        "usage: privmta-agent [-c FILE] [--option VALUE]... [--public-key]\n"
        "  --public-key: print this node's public key (made on first use) "
        "and exit",
        "--public-key");
    const char *name = pm_conf_get(s_params, "name");
    const char *state = pm_conf_get(s_params, "state_dir");
    if (!*name) {
        fprintf(stderr, "privmta-agent: --name NODE is required\n");
        return 2;
    }
    pm_conf_log_init(s_params, argv[0]);
    pm_log_set_node(name);
    zsys_init();
    zsys_set_logstream(NULL);
    char *why = NULL;
    /* 0711: what is in it is root's alone (0700, 0600), but for
     * rehearsal_dir below it, which a test's scratch Postfix and filter
     * (their own users) must reach */
    if (pm_file_mkdir(state, 0711, (gid_t)-1, &why) != PM_OK)
        pm_fatal("state_dir: %s", why);
    zcert_t *cert = s_keys(state, name);
    if (print_key) {
        printf("%s\n", zcert_public_txt(cert));
        zcert_destroy(&cert);
        return 0;
    }
    s_check_controller();
    zcert_t *server =
        pm_keys_load(pm_conf_get(s_params, "controller_key"), &why);
    if (!server)
        pm_fatal("controller key: %s", why);
    pm_backend_t *backend = s_backend();
    pm_agent_config_t cfg = {
        .endpoint = pm_conf_get(s_params, "controller"),
        .server_key = zcert_public_txt(server),
        .cert = cert,
        .state_dir = state,
        .name = name,
        .address = pm_conf_get(s_params, "address"),
        .backend = backend,
        .heartbeat_ms = pm_conf_int(s_params, "heartbeat_ms", 10, 600000),
        .dead_after_ms = pm_conf_int(s_params, "dead_after_ms", 20, 3600000),
        .crash_at = pm_conf_get(s_params, "debug_crash_at"),
        .drop_rev =
            (uint64_t)pm_conf_int(s_params, "debug_drop_rev", 0, 2147483647),
        .milter_gid = s_milter_gid(),
    };
    const char *sig_dir = pm_conf_get(s_params, "sig_dir");
    if (*sig_dir && sig_dir[0] != '/')
        pm_fatal("sig_dir %s: not an absolute path", sig_dir);
    if (*sig_dir) {
        cfg.sig_dir = sig_dir;
        const char *bind = pm_conf_get(s_params, "peer_bind");
        const char *host = pm_conf_get(s_params, "peer_host");
        /* peers on other nodes dial it, and the controller passes on no
         * other kind (pm_nodereport_own_endpoint) */
        if (*bind && strncmp(bind, "tcp://", 6) != 0)
            pm_fatal("peer_bind %s: peers on other nodes reach only "
                     "tcp://HOST:PORT",
                     bind);
        cfg.peer_bind = *bind ? bind : NULL;
        cfg.peer_host = *host ? host : NULL;
        cfg.gossip_ms = pm_conf_int(s_params, "gossip_ms", 10, 600000);
        cfg.peer_links = pm_conf_int(s_params, "peer_links", 3, 4096);
        cfg.cdiff_min_kib =
            pm_conf_int(s_params, "cdiff_min_kib", 0, 16 * 1024 * 1024);
        cfg.sigfetch = s_sigfetch_path();
        cfg.fetch_user = pm_conf_get(s_params, "fetch_user");
        if (geteuid() == 0 &&
            pm_priv_lookup(cfg.fetch_user, NULL, NULL, &why) != PM_OK)
            pm_fatal("fetch_user: %s", why);
        const char *verify_user = pm_conf_get(s_params, "verify_user");
        cfg.verify_user = *verify_user ? verify_user : NULL;
        if (geteuid() == 0 && cfg.verify_user &&
            pm_priv_lookup(cfg.verify_user, NULL, NULL, &why) != PM_OK)
            pm_fatal("verify_user: %s", why);
    }
    if (*pm_conf_get(s_params, "milter_socket") &&
        *pm_conf_get(s_params, "milter_dir"))
        cfg.milter_dir = pm_conf_get(s_params, "milter_dir");
    const char *msock = pm_conf_get(s_params, "milter_socket");
    cfg.milter_status = *msock ? pm_conf_get(s_params, "milter_status") : NULL;
    cfg.milter_socket = msock;
    cfg.milter_restart = pm_conf_get(s_params, "milter_restart");
    cfg.rehearsal_dir = pm_conf_get(s_params, "rehearsal_dir");
    cfg.milter_program = pm_conf_get(s_params, "milter_program");
    cfg.milter_config = pm_conf_get(s_params, "milter_config");
    cfg.postfix_restart = pm_conf_get(s_params, "postfix_restart");
    if (strcmp(pm_conf_get(s_params, "backend"), "postfix") == 0) {
        pm_postfix_set_milter(backend, msock);
        const char *notify = pm_conf_get(s_params, "notify_listener");
        if (*notify && pm_pf_listener_check(notify, &why) != PM_OK)
            pm_fatal("notify_listener: %s", why);
        pm_postfix_set_notify_listener(backend, notify);
        cfg.notify_listener = notify;
        cfg.postfix_dir = pm_conf_get(s_params, "postfix_dir");
        cfg.postfix_log =
            s_postfix_log(cfg.postfix_dir, &cfg.postfix_syslog_name);
    }
    const char *listen = pm_conf_get(s_params, "metrics_listen");
    if (*listen && !(cfg.metrics = pm_metrics_server_new(listen, &why)))
        pm_fatal("metrics_listen: %s", why);
    pm_info("node %s (public key %s) following %s%s%s", name,
            zcert_public_txt(cert), cfg.endpoint,
            cfg.metrics ? "; metrics on " : "", cfg.metrics ? listen : "");
    zactor_t *agent = pm_agent_new(&cfg);
    if (!agent)
        pm_fatal("cannot start: see the error above");
    while (!zsys_interrupted)
        zclock_sleep(200);
    pm_info("node %s: stopping", name);
    zactor_destroy(&agent);
    pm_metrics_server_destroy(&cfg.metrics);
    backend->destroy(&backend);
    zcert_destroy(&server);
    zcert_destroy(&cert);
    pm_conf_free(s_params);
    return 0;
}
