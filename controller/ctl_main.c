/* privmta-ctl: the admin's command line. */
#include "pm_ctl.h"
#include "pm_ctl_client.h"
#include "pm_ctl_show.h"
#include "pm_error.h"
#include "pm_log.h"
#include "pm_mem.h"
#include "pm_text.h"

#include <czmq.h>
#include <inttypes.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct pm_ctl_t {
    pm_param_t *params;
    pm_ctl_client_t *client;
};

static pm_param_t s_params[] = {
    {"controller", "tcp://127.0.0.1:7420",
     "controller address, or a list of them separated by commas (a "
     "primary and its standbys, sharing one server key): tried in order, "
     "the one that answered last first, skipping any that is down or a "
     "standby (or PRIVMTA_CONTROLLER)",
     NULL},
    {"state_dir", "/var/lib/privmta",
     "controller state directory whose "
     "keys/ are used by default (or PRIVMTA_STATE_DIR)",
     NULL},
    {"key", "",
     "this client's secret key file (or PRIVMTA_KEY; default "
     "STATE_DIR/keys/admin.cert_secret)",
     NULL},
    {"server_key", "",
     "the controller's public key file (or "
     "PRIVMTA_SERVER_KEY; default STATE_DIR/keys/controller.cert)",
     NULL},
    {"timeout", "5", "seconds to wait for the controller", NULL},
    {"web_users", "/etc/privmta/web-users",
     "the web console's users file (web user ...)", NULL},
    {NULL, NULL, NULL, NULL},
};

static const struct {
    const char *group, *name;
    int (*fn)(pm_ctl_t *, int, char **);
    const char *usage;
} s_commands[] = {
    {"policy", "validate", pm_ctl_policy_validate, "policy validate FILE"},
    {"policy", "push", pm_ctl_policy_push,
     "policy push FILE [--wait[=SECONDS]] [--expect-rev N] [-m MSG]"},
    {"policy", "set", pm_ctl_policy_set,
     "policy set KEY=VALUE|KEY+=ITEM|KEY-=ITEM... [--reset KEY] "
     "[--node NAME] [--expect-rev N] [-m MSG]"},
    {"policy", "show", pm_ctl_policy_show,
     "policy show [--rev N] [--node NAME] [--json]"},
    {"policy", "history", pm_ctl_policy_history,
     "policy history [--limit N] [--before N] [--json]"},
    {"policy", "diff", pm_ctl_policy_diff, "policy diff A B [--json]"},
    {"policy", "rollback", pm_ctl_policy_rollback,
     "policy rollback N [--expect-rev N] [-m MSG]"},
    {"policy", "test", pm_ctl_policy_test,
     "policy test [FILE | --rev N] MESSAGE.eml... [--client IP] "
     "[--client-name NAME] [--helo NAME] [--from ADDR] [--rcpt ADDR]... "
     "[--auth USER] [--node NAME] [--json]"},
    {"nodes", NULL, pm_ctl_nodes,
     "nodes [--cluster] [--json | --watch [SECONDS]]"},
    {"drift", NULL, pm_ctl_drift, "drift [NODE] [--json]"},
    {"node", NULL, pm_ctl_node,
     "node add NAME PUBLIC-KEY|CERT-FILE, node remove NAME"},
    {"dkim", NULL, pm_ctl_dkim,
     "dkim add DOMAIN --selector S (--key FILE | --generate), dkim remove "
     "DOMAIN, dkim list"},
    {"restart", NULL, pm_ctl_restart,
     "restart --rolling [--service postfix|milter|all] [--batch N|P%] "
     "[--canary NODE]... [--min-healthy D] [--deadline D] [--max-failures K] "
     "[--auto-revert] [--wait[=SECONDS]]"},
    {"rollout", NULL, pm_ctl_rollout,
     "rollout status|pause|resume|abort [--json]"},
    {"signatures", "check", pm_ctl_signatures_check,
     "signatures check [--json]"},
    {"ping", NULL, pm_ctl_ping, "ping [--json]"},
    {"why", NULL, pm_ctl_why,
     "why QUEUE-ID | MESSAGE-ID | --from ADDRESS [--since DURATION] [--max N] "
     "[--json]"},
    {"web", NULL, pm_ctl_web,
     "web user add|passwd|remove NAME (password on stdin), web user list"},
    {"keygen", NULL, pm_ctl_keygen, "keygen PATH"},
};

static void
s_usage(FILE *f)
{
    fprintf(f, "usage: privmta-ctl [GLOBAL OPTIONS] COMMAND...\ncommands:\n");
    for (size_t i = 0; i < sizeof s_commands / sizeof s_commands[0]; i++)
        fprintf(f, "  privmta-ctl %s\n", s_commands[i].usage);
    fprintf(f, "global options (also 'name = value' lines in "
               "/etc/privmta/ctl.conf or -c FILE):\n");
    pm_conf_usage(s_params, f);
    fprintf(f, "exit codes: 0 ok, 1 rejected (or sent to a standby "
               "controller), 2 usage, 3 controller unreachable, 4 timed out "
               "waiting\n");
}

/* The usage of each command of GROUP (e.g. "policy"): what a word
 * missing after it or mistyped was to be. False when GROUP is none. */
static bool
s_group_usage(const char *group, FILE *f)
{
    bool any = false;
    for (size_t i = 0; i < sizeof s_commands / sizeof s_commands[0]; i++)
        if (strcmp(s_commands[i].group, group) == 0) {
            fprintf(f, "%s  privmta-ctl %s\n", any ? "" : "usage:\n",
                    s_commands[i].usage);
            any = true;
        }
    return any;
}

/* defaults < config file < environment < command line */
static int
s_configure(int argc, char **argv)
{
    static const char *const env[][2] = {{"controller", "PRIVMTA_CONTROLLER"},
                                         {"state_dir", "PRIVMTA_STATE_DIR"},
                                         {"key", "PRIVMTA_KEY"},
                                         {"server_key", "PRIVMTA_SERVER_KEY"},
                                         {"timeout", "PRIVMTA_TIMEOUT"}};
    const char *config = getenv("PRIVMTA_CTL_CONFIG");
    bool explicit_config = config != NULL;
    pm_diag_t *diag = pm_diag_new("command line");
    pm_conf_defaults(s_params);
    int rest = pm_conf_args(s_params, argc, argv, &config, diag);
    explicit_config = explicit_config || config;
    pm_conf_file(s_params, config ? config : "/etc/privmta/ctl.conf",
                 explicit_config, diag);
    for (size_t i = 0; i < sizeof env / sizeof env[0]; i++)
        if (getenv(env[i][1]))
            pm_conf_set(s_params, env[i][0], getenv(env[i][1]));
    pm_diag_set_origin(diag, "command line");
    rest = pm_conf_args(s_params, argc, argv, &config, diag);
    if (pm_diag_count(diag)) {
        pm_diag_print(diag, stderr);
        rest = -1;
    }
    pm_diag_destroy(&diag);
    return rest;
}

/* Sets up the client on first use; on failure *why (caller frees) says
 * why and the exit code is returned. */
static int
s_client(pm_ctl_t *ctl, char **why)
{
    if (ctl->client)
        return PM_EXIT_OK;
    const char *dir = pm_conf_get(ctl->params, "state_dir");
    const char *key = pm_conf_get(ctl->params, "key");
    const char *server = pm_conf_get(ctl->params, "server_key");
    char *key_path =
        *key ? pm_strdup(key) : pm_asprintf("%s/keys/admin.cert_secret", dir);
    char *server_path = *server ? pm_strdup(server)
                                : pm_asprintf("%s/keys/controller.cert", dir);
    char *end = NULL;
    double secs = strtod(pm_conf_get(ctl->params, "timeout"), &end);
    int rc = PM_EXIT_OK;
    if (!end || *end || secs <= 0 || secs > 3600) {
        *why = pm_asprintf("timeout '%s' is not a number of seconds between "
                           "0 and 3600",
                           pm_conf_get(ctl->params, "timeout"));
        rc = PM_EXIT_USAGE;
    } else {
        ctl->client =
            pm_ctl_client_new(pm_conf_get(ctl->params, "controller"), key_path,
                              server_path, (int)(secs * 1000), why);
        if (!ctl->client)
            rc = PM_EXIT_UNREACHABLE;
        /* the usual first meeting: a key looked for in the default
         * state directory on a machine whose controller keeps it elsewhere */
        if (!ctl->client && !*key && access(key_path, F_OK) != 0) {
            char *hint = pm_asprintf(
                "%s (the key is looked for in the controller's state "
                "directory, %s: name it with --state-dir or "
                "PRIVMTA_STATE_DIR, or the key with --key or PRIVMTA_KEY; "
                "the demo cluster's is .cluster/controller)",
                *why, dir);
            free(*why);
            *why = hint;
        }
    }
    free(key_path);
    free(server_path);
    return rc;
}

/* Why REQ got no further than a standby (R, from ENDPOINT); OTHERS (may be
 * NULL) says why the other controllers gave no answer. Caller frees. */
static char *
s_not_primary(const Pm__Response *r, const char *endpoint, const char *others)
{
    /* the primary's address is the standby's text: shown escaped */
    char *primary = pm_text_escape(r->primary, PM_CTL_LINE_MAX);
    char *at = pm_text_escape(endpoint, PM_CTL_LINE_MAX);
    char *why = pm_asprintf("the controller at %s is a standby (epoch "
                            "%" PRIu64 ") following %s; send changes to the "
                            "primary or promote this one with "
                            "privmta-controller --promote%s%s",
                            at, r->epoch, *primary ? primary : "no primary yet",
                            others ? "; " : "", others ? others : "");
    free(primary);
    free(at);
    return why;
}

int
pm_ctl_call_why(pm_ctl_t *ctl, Pm__Request *req, Pm__Response **resp,
                char **why)
{
    int rc = s_client(ctl, why);
    if (rc != PM_EXIT_OK)
        return rc;
    const char *user =
        getenv("SUDO_USER") ? getenv("SUDO_USER") : getenv("USER");
    req->user = (char *)(user ? user : "");
    Pm__Response *r = NULL;
    char *note = NULL; /* with an answer: why other controllers gave none */
    int err = pm_ctl_client_call(ctl->client, req, &r, &note);
    req->user = (char *)protobuf_c_empty_string;
    if (err != PM_OK) {
        *why = note ? note : pm_strdup(pm_strerror(err));
        return PM_EXIT_UNREACHABLE;
    }
    if (r->status == PM__RESPONSE__STATUS__NOT_PRIMARY) {
        *why = s_not_primary(r, pm_ctl_client_endpoint(ctl->client), note);
        free(note);
        pm__response__free_unpacked(r, NULL);
        return PM_EXIT_REJECTED;
    }
    /* another controller refused our key (worth fixing, though this one
     * answered), or only a standby answered PING and the others none */
    if (note)
        fprintf(stderr, "privmta-ctl: warning: %s\n", note);
    free(note);
    if (r->status == PM__RESPONSE__STATUS__OK) {
        /* an accepted request may still come with warnings (overrides
         * for a node that is not enrolled) */
        for (size_t i = 0; i < r->n_problems; i++)
            fprintf(stderr, "privmta-ctl: warning: %s\n", r->problems[i]);
        *resp = r;
        return PM_EXIT_OK;
    }
    for (size_t i = 0; i < r->n_problems; i++)
        fprintf(stderr, "%s\n", r->problems[i]);
    *why = pm_strdup(r->error);
    pm__response__free_unpacked(r, NULL);
    return PM_EXIT_REJECTED;
}

int
pm_ctl_call(pm_ctl_t *ctl, Pm__Request *req, Pm__Response **resp)
{
    char *why = NULL;
    int rc = pm_ctl_call_why(ctl, req, resp, &why);
    if (rc != PM_EXIT_OK)
        fprintf(stderr, "privmta-ctl: %s\n", why);
    free(why);
    return rc;
}

int
pm_ctl_call_slow(pm_ctl_t *ctl, Pm__Request *req, int wait_ms,
                 Pm__Response **resp)
{
    Pm__Response *pong = NULL;
    int rc = pm_ctl_call_op(ctl, PM__REQUEST__OP__PING, &pong);
    if (rc != PM_EXIT_OK)
        return rc;
    pm__response__free_unpacked(pong, NULL);
    int usual = pm_ctl_client_timeout(ctl->client);
    pm_ctl_client_set_timeout(ctl->client, usual + wait_ms);
    rc = pm_ctl_call(ctl, req, resp);
    pm_ctl_client_set_timeout(ctl->client, usual);
    return rc;
}

const char *
pm_ctl_controller(const pm_ctl_t *ctl)
{
    const char *answered = pm_ctl_client_endpoint(ctl->client);
    return answered ? answered : pm_conf_get(ctl->params, "controller");
}

int
pm_ctl_call_op(pm_ctl_t *ctl, Pm__Request__Op op, Pm__Response **resp)
{
    Pm__Request req = PM__REQUEST__INIT;
    req.op = op;
    req.expect_rev = -1;
    return pm_ctl_call(ctl, &req, resp);
}

/* Ctrl-C and SIGTERM end any command at once, with the shell's codes
 * (130, 143). czmq would only set zsys_interrupted, which nothing in a
 * one-shot command looks at while it validates a file or waits for the
 * controller. Stopping halfway leaves nothing half done: the controller
 * takes a request whole or not at all, and files are written atomically
 * (pm_file_write). */
static void
s_on_signal(int sig)
{
    _exit(128 + sig);
}

/* For a command that runs until stopped: it sees zsys_interrupted (as
 * czmq's own handler would set it; zpoller_wait returns at once), ends its
 * loop and exits 0, with its output flushed. */
static void
s_on_signal_flag(int sig)
{
    (void)sig;
    zsys_interrupted = 1;
}

void
pm_ctl_until_interrupted(void)
{
    struct sigaction sa = {.sa_handler = s_on_signal_flag};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

static void
s_signals(void)
{
    struct sigaction sa = {.sa_handler = s_on_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

int
main(int argc, char **argv)
{
    s_signals();
    pm_log_init("privmta-ctl", false, PM_LOG_WARN);
    if (argc > 1 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") ||
                     !strcmp(argv[1], "help"))) {
        s_usage(stdout);
        return PM_EXIT_OK;
    }
    int at = s_configure(argc, argv);
    if (at < 0 || at >= argc) {
        if (at >= 0)
            s_usage(stderr);
        return PM_EXIT_USAGE;
    }
    zsys_handler_set(NULL); /* before zsys_init, which would install it */
    zsys_init();
    zsys_set_logstream(NULL);
    s_signals();
    pm_ctl_t ctl = {s_params, NULL};
    int rc = -1;
    for (size_t i = 0; i < sizeof s_commands / sizeof s_commands[0]; i++) {
        const char *group = s_commands[i].group, *name = s_commands[i].name;
        if (strcmp(argv[at], group) != 0)
            continue;
        int skip = name ? 2 : 1;
        if (name && (at + 1 >= argc || strcmp(argv[at + 1], name) != 0))
            continue;
        rc = s_commands[i].fn(&ctl, argc - at - skip + 1, argv + at + skip - 1);
        break;
    }
    if (rc < 0) {
        fprintf(stderr, "privmta-ctl: unknown command '%s%s%s'\n", argv[at],
                at + 1 < argc ? " " : "", at + 1 < argc ? argv[at + 1] : "");
        if (!s_group_usage(argv[at], stderr))
            s_usage(stderr);
        rc = PM_EXIT_USAGE;
    }
    pm_ctl_client_destroy(&ctl.client);
    pm_conf_free(s_params);
    return rc;
}

const char *
pm_ctl_web_users(const pm_ctl_t *ctl)
{
    return pm_conf_get(ctl->params, "web_users");
}
