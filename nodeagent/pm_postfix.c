/* pm_postfix.c - the policy on one real Postfix instance (postfix -c DIR).
 *
 * Two parts: the parameter table (policy keys -> the main.cf parameters
 * they own) and the backend itself (apply with check and rollback,
 * status). Everything Postfix is asked goes through its own tools, run
 * with common/pm_cmd: postconf reads and writes main.cf, postfix checks
 * and reloads, smtpd -S parses the candidate configuration the way every
 * smtpd process will.
 */
#include "pm_postfix.h"
#include "pm_cmd.h"
#include "pm_crash.h"
#include "pm_error.h"
#include "pm_file.h"
#include "pm_mem.h"
#include "pm_policy.h"

#include <dirent.h>
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define S_TIMEOUT_MS 15000        /* any single Postfix command */
#define S_OUTPUT_MAX (64u << 20)  /* postconf -n, postmap -s of a big map */
#define S_PROBE_MS 10000          /* smtpd -S: healthy, it exits at once */
#define S_STATUS_TTL 10           /* seconds a status computation is reused */
#define S_OVERRIDES_MAX 100       /* relay-host bypasses listed in a report */
#define S_OVERRIDE_LEN 250        /* bytes of one of them */
#define S_MAIN_CF_MAX (16u << 20) /* a main.cf bigger than this is refused */
#define S_SMTPD_FALLBACK "/usr/lib/postfix/sbin/smtpd"

/* ------------------------------------------------------------------------
 * What the node can support. The policy says what is wanted; the node's
 * own configuration (parameters privmta does not own) says what works. */

typedef struct {
    bool sasl;          /* a SASL backend answers: AUTH may be turned on */
    bool login_maps;    /* smtpd_sender_login_maps is set */
    const char *milter; /* this node's privmta-milter, or NULL */
} s_caps_t;

static const s_caps_t s_all_caps = {true, true,
                                    "unix:/run/privmta-milter/milter.sock"};

/* ------------------------------------------------------------------------
 * The table: every Postfix parameter the policy owns, with the keys that
 * drive it (documentation, and the test checks each key is declared) and
 * the function that renders it. Nothing else in main.cf is touched. */

typedef char *(*s_render_fn)(const Pm__Policy *p, const s_caps_t *caps);

typedef struct {
    const char *param;
    const char *keys;
    s_render_fn render; /* NULL: the value of the one key, as it is */
} s_param_t;

static char *
s_yesno(bool b)
{
    return pm_strdup(b ? "yes" : "no");
}

/* Appends WORD to the space separated list *LIST when ON. */
static void
s_add(char **list, bool on, const char *word)
{
    if (!on)
        return;
    char *next = **list ? pm_asprintf("%s %s", *list, word) : pm_strdup(word);
    free(*list);
    *list = next;
}

/* A HELO check can only be enforced when HELO is required: a client that
 * skips HELO is never checked. */
static char *
r_helo_required(const Pm__Policy *p, const s_caps_t *c)
{
    (void)c;
    return s_yesno(p->inbound_checks_helo_valid ||
                   p->inbound_checks_helo_fqdn ||
                   p->inbound_checks_helo_resolves);
}

static char *
r_helo_restrictions(const Pm__Policy *p, const s_caps_t *c)
{
    (void)c;
    char *v = pm_strdup("");
    s_add(&v, p->inbound_checks_helo_valid, "reject_invalid_helo_hostname");
    s_add(&v, p->inbound_checks_helo_fqdn, "reject_non_fqdn_helo_hostname");
    s_add(&v, p->inbound_checks_helo_resolves, "reject_unknown_helo_hostname");
    return v;
}

static char *
r_client_restrictions(const Pm__Policy *p, const s_caps_t *c)
{
    (void)c;
    char *v = pm_strdup("");
    s_add(&v, p->inbound_checks_client_hostname,
          "reject_unknown_client_hostname");
    s_add(&v, p->inbound_checks_reverse_client_hostname,
          "reject_unknown_reverse_client_hostname");
    return v;
}

/* reject_sender_login_mismatch needs smtpd_sender_login_maps: without it
 * no address has an owner, so every SASL-authenticated client would be a
 * "mismatch". Left out until the node defines the map (status says so). */
static char *
r_sender_restrictions(const Pm__Policy *p, const s_caps_t *c)
{
    char *v = pm_strdup("");
    s_add(&v, p->inbound_reject_sender_login_mismatch && c->login_maps,
          "reject_sender_login_mismatch");
    s_add(&v, p->inbound_checks_sender_fqdn, "reject_non_fqdn_sender");
    s_add(&v, p->inbound_checks_sender_domain, "reject_unknown_sender_domain");
    return v;
}

/* reject (5xx), not Postfix's default defer_unauth_destination (4xx): an
 * admin who narrows mynetworks wants a clean, final relay denial. */
static char *
r_relay_restrictions(const Pm__Policy *p, const s_caps_t *c)
{
    char *v = pm_strdup("permit_mynetworks");
    s_add(&v, p->outbound_sasl_auth && c->sasl, "permit_sasl_authenticated");
    s_add(&v, true, "reject_unauth_destination");
    return v;
}

/* With smtpd_sasl_auth_enable = yes and no backend answering, every smtpd
 * process dies ("fatal: no SASL authentication mechanisms") and master
 * throttles the service: no mail at all. So AUTH is only turned on when
 * the node has a backend (status reports auth DOWN otherwise). */
static char *
r_sasl_enable(const Pm__Policy *p, const s_caps_t *c)
{
    return s_yesno(p->outbound_sasl_auth && c->sasl);
}

/* Postfix reads an unbracketed IPv6 entry ("::1/128") as a "type:table"
 * lookup table and every smtpd dies on it; the check accepts both forms,
 * so IPv6 entries are always written in brackets. */
static char *
r_mynetworks(const Pm__Policy *p, const s_caps_t *c)
{
    (void)c;
    char *v = pm_strdup("");
    for (size_t i = 0; i < p->n_outbound_mynetworks; i++) {
        const char *net = p->outbound_mynetworks[i];
        char *item = NULL;
        if (net[0] != '[' && strchr(net, ':')) {
            const char *slash = strchr(net, '/');
            int alen = slash ? (int)(slash - net) : (int)strlen(net);
            item = pm_asprintf("[%.*s]%s", alen, net, slash ? slash : "");
        }
        s_add(&v, true, item ? item : net);
        free(item);
    }
    return v;
}

/* The content filter is wired in whenever the policy asks for anything
 * it does, and taken out when nothing does; with a filter configured but
 * unreachable, Postfix tempfails (milter_default_action) rather than let
 * mail through unscanned. */
static bool
s_needs_milter(const Pm__Policy *p)
{
    return p->n_inbound_blocked_extensions || p->antispam_enabled ||
           p->antivirus_enabled || p->n_dkim_domains;
}

static char *
r_milters(const Pm__Policy *p, const s_caps_t *c)
{
    return pm_strdup(c->milter && s_needs_milter(p) ? c->milter : "");
}

static char *
r_milter_action(const Pm__Policy *p, const s_caps_t *c)
{
    (void)p;
    (void)c;
    return pm_strdup("tempfail");
}

#define S_MILTER_KEYS                                                          \
    "inbound.blocked_extensions antispam.enabled antivirus.enabled "           \
    "dkim.domains"

static const s_param_t s_params[] = {
    {"smtpd_reject_unlisted_sender", "inbound.reject_unlisted_sender", NULL},
    {"smtpd_reject_unlisted_recipient", "inbound.reject_unlisted_recipient",
     NULL},
    {"smtpd_helo_required",
     "inbound.checks.helo_valid inbound.checks.helo_fqdn "
     "inbound.checks.helo_resolves",
     r_helo_required},
    {"smtpd_helo_restrictions",
     "inbound.checks.helo_valid inbound.checks.helo_fqdn "
     "inbound.checks.helo_resolves",
     r_helo_restrictions},
    {"smtpd_client_restrictions",
     "inbound.checks.client_hostname inbound.checks.reverse_client_hostname",
     r_client_restrictions},
    {"smtpd_sender_restrictions",
     "inbound.reject_sender_login_mismatch inbound.checks.sender_fqdn "
     "inbound.checks.sender_domain",
     r_sender_restrictions},
    {"smtpd_relay_restrictions", "outbound.sasl_auth", r_relay_restrictions},
    {"smtpd_sasl_auth_enable", "outbound.sasl_auth", r_sasl_enable},
    {"smtpd_sasl_authenticated_header", "outbound.authenticated_header", NULL},
    {"smtpd_tls_auth_only", "outbound.tls_auth_only", NULL},
    {"mynetworks", "outbound.mynetworks", r_mynetworks},
    {"relayhost", "outbound.relay_host", NULL},
    {"smtp_fallback_relay", "outbound.fallback_relay_host", NULL},
    {"smtpd_milters", S_MILTER_KEYS, r_milters},
    {"non_smtpd_milters", S_MILTER_KEYS, r_milters},
    {"milter_default_action", S_MILTER_KEYS, r_milter_action},
};

#define S_NPARAMS (sizeof s_params / sizeof s_params[0])

/* A parameter that is one policy key: a switch becomes yes/no, text is
 * copied; the key's type comes from the policy table. */
static char *
s_render_key(const Pm__Policy *p, const char *name)
{
    const pm_key_t *key = pm_policy_key(name);
    assert(key); /* test_postfix checks every key named here exists */
    if (key->type == PM_KT_BOOL)
        return s_yesno(pm_policy_get_bool(p, key));
    return pm_strdup(pm_policy_get_string(p, key));
}

static pm_postfix_param_t *
s_render(const Pm__Policy *effective, const s_caps_t *caps, size_t *n)
{
    pm_postfix_param_t *out = pm_calloc(S_NPARAMS, sizeof *out);
    for (size_t i = 0; i < S_NPARAMS; i++) {
        out[i].name = pm_strdup(s_params[i].param);
        out[i].value = s_params[i].render
                           ? s_params[i].render(effective, caps)
                           : s_render_key(effective, s_params[i].keys);
    }
    *n = S_NPARAMS;
    return out;
}

pm_postfix_param_t *
pm_postfix_render(const Pm__Policy *effective, size_t *n)
{
    return s_render(effective, &s_all_caps, n);
}

void
pm_postfix_params_free(pm_postfix_param_t **params_p, size_t n)
{
    pm_postfix_param_t *params = *params_p;
    if (!params)
        return;
    for (size_t i = 0; i < n; i++) {
        free(params[i].name);
        free(params[i].value);
    }
    free(params);
    *params_p = NULL;
}

const char *
pm_postfix_param_keys(const char *param)
{
    for (size_t i = 0; i < S_NPARAMS; i++)
        if (strcmp(s_params[i].param, param) == 0)
            return s_params[i].keys;
    return NULL;
}

/* ------------------------------------------------------------------------
 * Running Postfix's tools (common/pm_cmd). postfix(1) only writes its
 * messages to stderr when it is a terminal, so with S_PTY stderr is a
 * pseudo-terminal. */

#define S_PTY 0x1u

/* Runs ARGV with MAIL_CONFIG=CONFIG when CONFIG is given, for at most
 * TIMEOUT_MS. Returns the exit code, or -1 with res->fail. */
static int
s_run_for(char *const argv[], const char *config, unsigned flags,
          int timeout_ms, pm_cmd_result_t *res)
{
    char *mail_config = config ? pm_asprintf("MAIL_CONFIG=%s", config) : NULL;
    const char *env[] = {mail_config, NULL};
    pm_cmd_opts_t opts = {.env = env,
                          .pty_stderr = flags & S_PTY,
                          .timeout_ms = timeout_ms,
                          .max_output = S_OUTPUT_MAX};
    int rc = pm_cmd_run(argv, &opts, res);
    free(mail_config);
    return rc;
}

static int
s_run(char *const argv[], const char *config, unsigned flags,
      pm_cmd_result_t *res)
{
    return s_run_for(argv, config, flags, S_TIMEOUT_MS, res);
}

/* ------------------------------------------------------------------------
 * Reading and writing main.cf through postconf. */

/* postconf -c DIR ARGS... ; returns the exit code. */
static int
s_postconf(const char *dir, const char *const *args, size_t n,
           pm_cmd_result_t *res)
{
    char **argv = pm_calloc(n + 4, sizeof *argv);
    argv[0] = "postconf";
    argv[1] = "-c";
    argv[2] = (char *)dir;
    for (size_t i = 0; i < n; i++)
        argv[3 + i] = (char *)args[i];
    int rc = s_run(argv, NULL, 0, res);
    free(argv);
    return rc;
}

/* Values (postconf -h -x, expanded) of NAMES in DIR, in order. Returns
 * false with *why. */
static bool
s_read_params(const char *dir, const char *const *names, size_t n,
              char **values, char **why)
{
    const char **args = pm_calloc(n + 2, sizeof *args);
    args[0] = "-h";
    args[1] = "-x";
    memcpy(args + 2, names, n * sizeof *names);
    pm_cmd_result_t c;
    int rc = s_postconf(dir, args, n + 2, &c);
    free(args);
    if (rc != 0) {
        *why = pm_cmd_why("postconf -h -x", &c);
        pm_cmd_result_clear(&c);
        return false;
    }
    char *line = c.out;
    for (size_t i = 0; i < n; i++) {
        size_t len = strcspn(line, "\n");
        values[i] = pm_strndup(line, len);
        line += len + (line[len] == '\n');
    }
    pm_cmd_result_clear(&c);
    return true;
}

/* The node facts apply and status need, read in one postconf call. */
enum {
    N_QUEUE,
    N_DAEMON,
    N_MAILLOG,
    N_PROTOCOLS,
    N_SASL_TYPE,
    N_SASL_PATH,
    N_LOGIN_MAPS,
    N_TLS_LEVEL,
    N_USE_TLS,
    N_SASL_ENABLE,
    N_TLS_AUTH_ONLY,
    N_TRANSPORT,
    N_SDRH,
    N_COUNT
};

static const char *const s_node_names[N_COUNT] = {
    "queue_directory",
    "daemon_directory",
    "maillog_file",
    "inet_protocols",
    "smtpd_sasl_type",
    "smtpd_sasl_path",
    "smtpd_sender_login_maps",
    "smtpd_tls_security_level",
    "smtpd_use_tls",
    "smtpd_sasl_auth_enable",
    "smtpd_tls_auth_only",
    "transport_maps",
    "sender_dependent_relayhost_maps",
};

typedef struct {
    char *v[N_COUNT];
} s_node_t;

static void
s_node_clear(s_node_t *node)
{
    for (int i = 0; i < N_COUNT; i++)
        PM_FREE(&node->v[i]);
}

static bool
s_node_read(const char *dir, s_node_t *node, char **why)
{
    memset(node, 0, sizeof *node);
    return s_read_params(dir, s_node_names, N_COUNT, node->v, why);
}

/* ------------------------------------------------------------------------
 * SASL: does the configured backend answer? */

static bool
s_unix_connects(const char *path, char **problem)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof sa.sun_path) {
        *problem = pm_asprintf("socket path %s is too long", path);
        return false;
    }
    strcpy(sa.sun_path, path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
        *problem =
            pm_asprintf("cannot connect to %s: %s", path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return false;
    }
    close(fd);
    return true;
}

/* Cyrus offers the mechanisms of its plugins; no plugin, no mechanism. */
static bool
s_cyrus_has_plugins(char **problem)
{
    static const char *const dirs[] = {
        "/usr/lib/x86_64-linux-gnu/sasl2", "/usr/lib/aarch64-linux-gnu/sasl2",
        "/usr/lib64/sasl2", "/usr/lib/sasl2", "/usr/local/lib/sasl2"};
    static const char *const mechs[] = {
        "libplain.so",     "liblogin.so", "libcrammd5.so",  "libdigestmd5.so",
        "libscram.so",     "libgs2.so",   "libgssapiv2.so", "libntlm.so",
        "libanonymous.so", "libotp.so"};
    for (size_t d = 0; d < sizeof dirs / sizeof dirs[0]; d++)
        for (size_t m = 0; m < sizeof mechs / sizeof mechs[0]; m++) {
            char *p = pm_asprintf("%s/%s", dirs[d], mechs[m]);
            bool ok = access(p, R_OK) == 0;
            free(p);
            if (ok)
                return true;
        }
    *problem = pm_strdup("has no mechanisms (no Cyrus SASL mechanism plugin "
                         "installed, e.g. libsasl2-modules)");
    return false;
}

/* True when smtpd_sasl_type's backend can serve AUTH; else *problem. */
static bool
s_sasl_backend(const s_node_t *node, char **problem)
{
    const char *type = node->v[N_SASL_TYPE];
    const char *path = node->v[N_SASL_PATH];
    char *inner = NULL;
    bool ok;
    if (strcmp(type, "dovecot") == 0) {
        if (strncmp(path, "inet:", 5) == 0) {
            ok = true; /* remote: cannot be probed cheaply, trust it */
        } else {
            char *full = path[0] == '/'
                             ? pm_strdup(path)
                             : pm_asprintf("%s/%s", node->v[N_QUEUE], path);
            ok = s_unix_connects(full, &inner);
            free(full);
        }
    } else if (strcmp(type, "cyrus") == 0) {
        ok = s_cyrus_has_plugins(&inner);
    } else {
        ok = false;
        inner = pm_strdup("is not a type this agent can check");
    }
    if (!ok)
        *problem =
            pm_asprintf("no SASL backend: smtpd_sasl_type %s %s", type, inner);
    free(inner);
    return ok;
}

static s_caps_t
s_node_caps(const s_node_t *node, char **sasl_problem)
{
    s_caps_t caps;
    *sasl_problem = NULL;
    caps.sasl = s_sasl_backend(node, sasl_problem);
    caps.login_maps = node->v[N_LOGIN_MAPS][0] != '\0';
    caps.milter = NULL;
    return caps;
}

/* ------------------------------------------------------------------------
 * The backend object. */

typedef struct {
    char *dir;       /* configuration directory */
    char *main_cf;   /* DIR/main.cf */
    char *milter;    /* privmta-milter socket in Postfix syntax, or NULL */
    char *queue_dir; /* for the master pid file; NULL until read */
    /* what the last apply wanted, for status */
    bool applied;
    bool loaded; /* a reload since this process started saw main.cf */
    bool want_sasl, want_login_mismatch;
    /* status cache, keyed by main.cf's identity and a TTL */
    bool cached;
    struct stat cached_st;
    time_t cached_at;
    Pm__ServiceStatus__State auth_state;
    char *auth_detail;
    char **overrides;
    size_t n_overrides;
    size_t n_unlisted; /* overrides past S_OVERRIDES_MAX, only counted */
} s_pf_t;

static void
s_cache_drop(s_pf_t *self)
{
    self->cached = false;
    PM_FREE(&self->auth_detail);
    for (size_t i = 0; i < self->n_overrides; i++)
        free(self->overrides[i]);
    PM_FREE(&self->overrides);
    self->n_overrides = 0;
    self->n_unlisted = 0;
}

/* ------------------------------------------------------------------------
 * Apply, step by step. Every step returns false with *why. */

/* main.cf and its mode and group, which a rewrite keeps. */
static bool
s_read_file(const char *path, char **data, size_t *len, struct stat *st,
            char **why)
{
    if (stat(path, st) != 0) {
        *why = pm_asprintf("cannot read %s: %s", path, strerror(errno));
        return false;
    }
    return pm_file_read(path, S_MAIN_CF_MAX, 0, data, len, why) == PM_OK;
}

/* Postfix re-reads a main.cf whose mtime is not at least a second old,
 * pausing 300 ms per try (dict_load_file: "is the file being edited?"),
 * which costs every postconf, postfix and daemon start ~2.4 s after a
 * write. Ours are complete and atomic, so they are dated 2 s back. */
static void
s_backdate_times(struct timespec ts[2])
{
    clock_gettime(CLOCK_REALTIME, &ts[0]);
    ts[0].tv_sec -= 2;
    ts[1] = ts[0];
}

static void
s_backdate_path(const char *path)
{
    struct timespec ts[2];
    s_backdate_times(ts);
    utimensat(AT_FDCWD, path, ts, 0);
}

/* Writes DATA to PATH with pm_file (atomic, durable, no link followed),
 * with the mode and group of ST, dated back. */
static bool
s_write_atomic(const char *path, const char *data, size_t len,
               const struct stat *st, char **why)
{
    struct timespec ts[2];
    s_backdate_times(ts);
    return pm_file_write_dated(path, data, len, st->st_mode & 07777, st->st_gid,
                               ts, why) == PM_OK;
}

/* A scratch configuration directory beside DIR's files: DIR/.privmta.XXXXXX
 * with a copy of main.cf and hard links to every other file (symbolic
 * links to directories), so paths under $config_directory still resolve. */
static void s_scratch_destroy(char **tmp_p);

static char *
s_scratch_new(const s_pf_t *self, const char *main_data, size_t main_len,
              const struct stat *st, char **why)
{
    char *tmp = pm_asprintf("%s/.privmta.XXXXXX", self->dir);
    if (!mkdtemp(tmp)) {
        *why = pm_asprintf("cannot make a scratch directory in %s: %s",
                           self->dir, strerror(errno));
        free(tmp);
        return NULL;
    }
    DIR *d = opendir(self->dir);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        if (e->d_name[0] == '.' || strcmp(e->d_name, "main.cf") == 0)
            continue;
        char *from = pm_asprintf("%s/%s", self->dir, e->d_name);
        char *to = pm_asprintf("%s/%s", tmp, e->d_name);
        struct stat fst;
        if (lstat(from, &fst) == 0 && S_ISREG(fst.st_mode))
            (void)link(from, to);
        else
            (void)symlink(from, to);
        free(from);
        free(to);
    }
    if (d)
        closedir(d);
    char *path = pm_asprintf("%s/main.cf", tmp);
    bool ok = s_write_atomic(path, main_data, main_len, st, why);
    free(path);
    if (!ok)
        s_scratch_destroy(&tmp); /* its links hold space on a full disk */
    return tmp;
}

static void
s_scratch_destroy(char **tmp_p)
{
    char *tmp = *tmp_p;
    if (!tmp)
        return;
    DIR *d = opendir(tmp);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        char *p = pm_asprintf("%s/%s", tmp, e->d_name);
        unlink(p);
        free(p);
    }
    if (d)
        closedir(d);
    rmdir(tmp);
    PM_FREE(tmp_p);
}

/* Scratch directories left by an agent killed in the middle of an apply
 * (one agent per configuration directory: none is in use at start). */
static void
s_scratch_sweep(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        if (strncmp(e->d_name, ".privmta.", 9) != 0 || strlen(e->d_name) != 15)
            continue;
        char *tmp = pm_asprintf("%s/%s", dir, e->d_name);
        s_scratch_destroy(&tmp);
    }
    if (d)
        closedir(d);
}

/* True when main.cf in DIR already sets every parameter to its value. */
static bool
s_already_set(const char *dir, const pm_postfix_param_t *params, size_t n)
{
    const char **args = pm_calloc(n + 1, sizeof *args);
    args[0] = "-n";
    for (size_t i = 0; i < n; i++)
        args[i + 1] = params[i].name;
    pm_cmd_result_t c;
    int rc = s_postconf(dir, args, n + 1, &c);
    free(args);
    bool same = rc == 0;
    for (size_t i = 0; same && i < n; i++) {
        char *want = pm_asprintf("%s =%s%s\n", params[i].name,
                                 *params[i].value ? " " : "", params[i].value);
        char *hit = strstr(c.out, want);
        same = hit && (hit == c.out || hit[-1] == '\n');
        free(want);
    }
    pm_cmd_result_clear(&c);
    return same;
}

/* The first non-empty line of TEXT (static copy), or "". */
static const char *
s_first_line(const char *text)
{
    static __thread char line[512];
    while (*text == '\n' || *text == ' ')
        text++;
    size_t len = strcspn(text, "\n");
    if (len >= sizeof line)
        len = sizeof line - 1;
    memcpy(line, text, len);
    line[len] = '\0';
    return line;
}

/* A postconf message about one of our parameters, or NULL. */
static const char *
s_message_about(const char *err, const pm_postfix_param_t *params, size_t n)
{
    for (const char *line = err; *line;
         line += strcspn(line, "\n"), line += (*line == '\n')) {
        size_t len = strcspn(line, "\n");
        bool bad =
            memmem(line, len, "warning", 7) || memmem(line, len, "fatal", 5);
        for (size_t i = 0; bad && i < n; i++)
            if (memmem(line, len, params[i].name, strlen(params[i].name)))
                return s_first_line(line);
    }
    return NULL;
}

/* Writes PARAMS into the scratch main.cf with postconf -e, then reads them
 * back: postconf must neither complain about them nor change them. */
static bool
s_write_params(const char *tmp, const pm_postfix_param_t *params, size_t n,
               char **why)
{
    const char **args = pm_calloc(n + 1, sizeof *args);
    char **kv = pm_calloc(n, sizeof *kv);
    args[0] = "-e";
    for (size_t i = 0; i < n; i++)
        args[i + 1] = kv[i] =
            pm_asprintf("%s = %s", params[i].name, params[i].value);
    pm_cmd_result_t c;
    int rc = s_postconf(tmp, args, n + 1, &c);
    const char *msg = rc == 0 ? s_message_about(c.err, params, n) : NULL;
    if (rc != 0)
        *why = pm_cmd_why("postconf -e", &c);
    else if (msg)
        *why = pm_asprintf("postconf -e: %s", msg);
    for (size_t i = 0; i < n; i++)
        free(kv[i]);
    free(kv);
    free(args);
    pm_cmd_result_clear(&c);
    if (rc != 0 || msg)
        return false;
    char *path = pm_asprintf("%s/main.cf", tmp);
    s_backdate_path(path);
    free(path);
    /* read back, the way every daemon will read the file */
    if (!s_already_set(tmp, params, n)) {
        const char *all[] = {"-n"};
        s_postconf(tmp, all, 1, &c);
        msg = s_message_about(c.err, params, n);
        *why = msg ? pm_asprintf("postconf -n: %s", msg)
                   : pm_strdup("postconf -n does not read back the values "
                               "written with postconf -e");
        pm_cmd_result_clear(&c);
        return false;
    }
    return true;
}

/* The address family a relay host literal needs: AF_INET6 for
 * "[ipv6:...]", AF_INET for "[a.b.c.d]", 0 for a host name. */
static int
s_relay_family(const char *relay)
{
    if (strncasecmp(relay, "[ipv6:", 6) == 0)
        return AF_INET6;
    if (relay[0] == '[' && relay[1] >= '0' && relay[1] <= '9')
        return AF_INET;
    return 0;
}

/* Postfix's smtp client resolves relayhost in the families inet_protocols
 * enables; a literal of another family defers every relayed message
 * ("relayhost configuration problem", 4.3.5) although postconf, postfix
 * check and reload all accept it. Checked here, per node. */
static bool
s_check_relay_families(const s_node_t *node, const pm_postfix_param_t *params,
                       size_t n, char **why)
{
    const char *proto = node->v[N_PROTOCOLS];
    bool all = strstr(proto, "all") != NULL;
    bool v4 = all || strstr(proto, "ipv4"), v6 = all || strstr(proto, "ipv6");
    for (size_t i = 0; i < n; i++) {
        if (strcmp(params[i].name, "relayhost") != 0 &&
            strcmp(params[i].name, "smtp_fallback_relay") != 0)
            continue;
        int fam = s_relay_family(params[i].value);
        if ((fam == AF_INET6 && !v6) || (fam == AF_INET && !v4)) {
            *why = pm_asprintf(
                "%s = %s is an %s address but this node has inet_protocols "
                "= %s: Postfix would defer every relayed message "
                "(\"relayhost configuration problem\")",
                params[i].name, params[i].value,
                fam == AF_INET6 ? "IPv6" : "IPv4", proto);
            return false;
        }
    }
    return true;
}

/* The first "fatal:" line of an smtpd in the maillog since OFFSET. */
static char *
s_maillog_fatal(const char *maillog, off_t offset)
{
    FILE *f = maillog[0] == '/' ? fopen(maillog, "r") : NULL;
    char line[1024];
    char *found = NULL;
    if (!f)
        return NULL;
    if (fseeko(f, offset, SEEK_SET) == 0)
        while (!found && fgets(line, sizeof line, f)) {
            char *fatal = strstr(line, "smtpd[");
            fatal = fatal ? strstr(fatal, "fatal: ") : NULL;
            if (fatal)
                found = pm_strndup(fatal, strcspn(fatal, "\n"));
        }
    fclose(f);
    return found;
}

/* Starts smtpd in stand-alone mode on the scratch configuration: it parses
 * mynetworks and every restriction list and opens every table as each
 * smtpd process will, then sees end-of-input and exits. A configuration it
 * dies on would kill every SMTP session after a reload. Only while Postfix
 * runs: smtpd needs the instance's proxymap and friends (on a stopped
 * instance it retries them for ~100 s), and a stopped instance has no
 * sessions to lose; smtpd stuck in its fatal-error back-off is a failure
 * too. */
static bool
s_probe_smtpd(const s_node_t *node, const char *tmp, char **why)
{
    char *smtpd = pm_asprintf("%s/smtpd", node->v[N_DAEMON]);
    if (access(smtpd, X_OK) != 0) {
        free(smtpd);
        smtpd = pm_strdup(S_SMTPD_FALLBACK);
    }
    struct stat st;
    const char *maillog = node->v[N_MAILLOG];
    off_t before = stat(maillog, &st) == 0 ? st.st_size : 0;
    char *argv[] = {smtpd, "-S", NULL};
    pm_cmd_result_t c;
    int rc = s_run_for(argv, tmp, 0, S_PROBE_MS, &c);
    if (rc != 0) {
        char *fatal = s_maillog_fatal(maillog, before);
        if (fatal)
            *why =
                pm_asprintf("smtpd refuses the new configuration: %s", fatal);
        else
            *why = pm_cmd_why("smtpd -S (configuration probe)", &c);
        free(fatal);
    }
    pm_cmd_result_clear(&c);
    free(smtpd);
    return rc == 0;
}

static bool
s_postfix_check(const char *tmp, char **why)
{
    char *argv[] = {"postfix", "-c", (char *)tmp, "check", NULL};
    pm_cmd_result_t c;
    int rc = s_run(argv, NULL, S_PTY, &c);
    if (rc != 0)
        *why = pm_cmd_why("postfix check", &c);
    pm_cmd_result_clear(&c);
    return rc == 0;
}

static bool
s_running(const char *dir)
{
    char *argv[] = {"postfix", "-c", (char *)dir, "status", NULL};
    pm_cmd_result_t c;
    int rc = s_run(argv, NULL, 0, &c);
    pm_cmd_result_clear(&c);
    return rc == 0;
}

static bool
s_reload(const char *dir, char **why)
{
    char *argv[] = {"postfix", "-c", (char *)dir, "reload", NULL};
    pm_cmd_result_t c;
    int rc = s_run(argv, NULL, S_PTY, &c);
    if (rc != 0)
        *why = pm_cmd_why("postfix reload", &c);
    pm_cmd_result_clear(&c);
    return rc == 0;
}

/* Checks the scratch configuration: postconf, the node's own limits,
 * smtpd's parse, postfix check. */
static bool
s_validate(const s_node_t *node, const char *tmp, bool running,
           const pm_postfix_param_t *params, size_t n, char **why)
{
    return s_write_params(tmp, params, n, why) &&
           s_check_relay_families(node, params, n, why) &&
           (!running || s_probe_smtpd(node, tmp, why)) &&
           s_postfix_check(tmp, why);
}

/* Swaps the validated scratch main.cf in and reloads; on a failed reload
 * puts OLD back byte for byte and reloads again. */
static bool
s_commit(s_pf_t *self, const char *tmp, bool running, const char *old,
         size_t old_len, const struct stat *st, char **why)
{
    char *path = pm_asprintf("%s/main.cf", tmp);
    bool ok = chmod(path, st->st_mode & 07777) == 0 &&
              chown(path, st->st_uid, st->st_gid) == 0;
    if (!ok)
        *why = pm_asprintf("cannot install %s: %s", self->main_cf,
                           strerror(errno));
    ok = ok && pm_file_rename(path, self->main_cf, why) == PM_OK;
    free(path);
    pm_crash_point("main.cf"); /* written, not reloaded */
    if (!ok || !running)
        return ok;
    char *reload_why = NULL;
    if (s_reload(self->dir, &reload_why)) {
        free(reload_why);
        pm_crash_point("reload"); /* reloaded, not acknowledged */
        return true;
    }
    char *restore_why = NULL;
    if (!s_write_atomic(self->main_cf, old, old_len, st, &restore_why)) {
        *why = pm_asprintf("%s; restoring the previous main.cf failed: %s",
                           reload_why, restore_why);
    } else {
        char *again = NULL;
        bool back = s_reload(self->dir, &again);
        *why = pm_asprintf(
            "%s; previous main.cf restored%s%s", reload_why,
            back ? "" : ", but reloading it failed too: ", back ? "" : again);
        free(again);
    }
    free(reload_why);
    free(restore_why);
    return false;
}

static int
s_apply(pm_backend_t *backend, const Pm__Policy *effective, uint64_t rev,
        char **why)
{
    s_pf_t *self = backend->ctx;
    char *old = NULL, *tmp = NULL, *sasl_problem = NULL, *err = NULL;
    size_t old_len = 0, n = 0;
    pm_postfix_param_t *params = NULL;
    struct stat st;
    s_node_t node;
    bool ok = false;
    (void)rev;

    if (!s_read_file(self->main_cf, &old, &old_len, &st, &err))
        goto out;
    if (!s_node_read(self->dir, &node, &err))
        goto out;
    s_caps_t caps = s_node_caps(&node, &sasl_problem);
    caps.milter = self->milter;
    params = s_render(effective, &caps, &n);
    self->applied = true;
    self->want_sasl = effective->outbound_sasl_auth;
    self->want_login_mismatch = effective->inbound_reject_sender_login_mismatch;
    s_cache_drop(self);
    if (s_already_set(self->dir, params, n)) {
        /* nothing to write; but an agent that crashed between writing
         * main.cf and the reload left Postfix on the old file: the first
         * apply after a start reloads whatever main.cf says */
        ok = self->loaded || !s_running(self->dir) || s_reload(self->dir, &err);
        self->loaded = ok;
        goto out_node;
    }
    bool running = s_running(self->dir);
    tmp = s_scratch_new(self, old, old_len, &st, &err);
    ok = tmp && s_validate(&node, tmp, running, params, n, &err) &&
         s_commit(self, tmp, running, old, old_len, &st, &err);
    self->loaded = ok;
    if (!ok && tmp) {
        /* the scratch copy never replaced main.cf unless s_commit restored
         * it; make sure the bytes are the old ones either way */
        char *now = NULL, *ignored = NULL;
        size_t now_len = 0;
        struct stat now_st;
        if (s_read_file(self->main_cf, &now, &now_len, &now_st, &ignored) &&
            (now_len != old_len || memcmp(now, old, old_len) != 0))
            s_write_atomic(self->main_cf, old, old_len, &st, &ignored);
        free(now);
        free(ignored);
    }
    if (!ok && err && tmp) { /* name the real directory, not the copy */
        char *at = strstr(err, tmp);
        if (at) {
            char *fixed = pm_asprintf("%.*s%s%s", (int)(at - err), err,
                                      self->dir, at + strlen(tmp));
            free(err);
            err = fixed;
        }
    }
out_node:
    s_node_clear(&node);
out:
    s_scratch_destroy(&tmp);
    pm_postfix_params_free(&params, n);
    free(sasl_problem);
    free(old);
    if (!ok) {
        *why = err ? err : pm_strdup("apply failed");
        return -1;
    }
    free(err);
    return 0;
}

/* ------------------------------------------------------------------------
 * Status. */

/* Auth: DISABLED when the policy (or main.cf) turns AUTH off; DOWN when
 * it is wanted and the backend does not answer; DEGRADED when AUTH is on
 * but part of it cannot work; else OK. */
static void
s_auth_status(s_pf_t *self, const s_node_t *node)
{
    bool enabled = strcmp(node->v[N_SASL_ENABLE], "yes") == 0;
    bool want = self->applied ? self->want_sasl : enabled;
    char *problem = NULL;
    if (!want) {
        self->auth_state = PM__SERVICE_STATUS__STATE__DISABLED;
        self->auth_detail = pm_strdup("SMTP AUTH off (outbound.sasl_auth)");
        return;
    }
    if (!s_sasl_backend(node, &problem)) {
        self->auth_state = PM__SERVICE_STATUS__STATE__DOWN;
        self->auth_detail = pm_asprintf(
            "%s; %s", problem,
            enabled ? "smtpd cannot start while AUTH is on"
                    : "SMTP AUTH kept off until it answers (next apply)");
        free(problem);
        return;
    }
    if (!enabled) {
        self->auth_state = PM__SERVICE_STATUS__STATE__DOWN;
        self->auth_detail = pm_asprintf(
            "smtpd_sasl_type %s answers now but SMTP AUTH is off: it "
            "turns on at the next apply",
            node->v[N_SASL_TYPE]);
        return;
    }
    char *issues = pm_strdup("");
    const char *level = node->v[N_TLS_LEVEL];
    bool tls = strcmp(level, "may") == 0 || strcmp(level, "encrypt") == 0 ||
               (!*level && strcmp(node->v[N_USE_TLS], "yes") == 0);
    if (!tls && strcmp(node->v[N_TLS_AUTH_ONLY], "yes") == 0)
        s_add(&issues, true,
              "AUTH is offered only after STARTTLS but "
              "smtpd_tls_security_level is none: no client can log in;");
    if (self->applied && self->want_login_mismatch && !*node->v[N_LOGIN_MAPS])
        s_add(&issues, true,
              "reject_sender_login_mismatch left out: "
              "smtpd_sender_login_maps is empty;");
    if (*issues) {
        issues[strlen(issues) - 1] = '\0';
        self->auth_state = PM__SERVICE_STATUS__STATE__DEGRADED;
        self->auth_detail = issues;
    } else {
        free(issues);
        self->auth_state = PM__SERVICE_STATUS__STATE__OK;
        self->auth_detail = pm_asprintf("SMTP AUTH via smtpd_sasl_type %s",
                                        node->v[N_SASL_TYPE]);
    }
}

static void
s_override_add(s_pf_t *self, char *entry)
{
    /* a status report has a size limit (PM_WIRE_REPORT_MAX): list the
     * first ones, count the rest */
    if (self->n_overrides >= S_OVERRIDES_MAX) {
        self->n_unlisted++;
        free(entry);
        return;
    }
    if (strlen(entry) > S_OVERRIDE_LEN)
        strcpy(entry + S_OVERRIDE_LEN - 3, "...");
    self->overrides = pm_realloc(self->overrides, (self->n_overrides + 1) *
                                                      sizeof *self->overrides);
    self->overrides[self->n_overrides++] = entry;
}

/* An entry overrides relayhost unless it keeps the default next hop
 * ("smtp:" or "relay:" with nothing after the colon). */
static bool
s_bypasses_relay(const char *param, const char *value)
{
    if (strcmp(param, "sender_dependent_relayhost_maps") == 0)
        return *value != '\0';
    return strcmp(value, "smtp:") != 0 && strcmp(value, "relay:") != 0 &&
           strcmp(value, ":") != 0;
}

/* Lists the entries of every map in LIST (a transport_maps style value). */
static void
s_overrides_of(s_pf_t *self, const char *param, const char *list)
{
    static const char *const listable[] = {
        "hash:", "lmdb:", "btree:", "cdb:", "texthash:", "dbm:"};
    char *copy = pm_strdup(list), *save = NULL;
    for (char *map = strtok_r(copy, ", \t", &save); map;
         map = strtok_r(NULL, ", \t", &save)) {
        bool can = false;
        for (size_t i = 0; i < sizeof listable / sizeof listable[0]; i++)
            can = can || strncmp(map, listable[i], strlen(listable[i])) == 0;
        if (!can) {
            s_override_add(
                self, pm_asprintf("%s: %s (entries not listable)", param, map));
            continue;
        }
        char *argv[] = {"postmap", "-c", self->dir, "-s", map, NULL};
        pm_cmd_result_t c;
        if (s_run(argv, NULL, 0, &c) != 0) {
            char *e = pm_cmd_why("postmap -s", &c);
            s_override_add(self, pm_asprintf("%s: %s (%s)", param, map, e));
            free(e);
        }
        for (char *line = c.out; line && *line;) {
            size_t len = strcspn(line, "\n");
            size_t klen = strcspn(line, " \t");
            if (klen > len)
                klen = len;
            const char *v = line + klen;
            while (v < line + len && (*v == ' ' || *v == '\t'))
                v++;
            char *value = pm_strndup(v, (size_t)(line + len - v));
            if (klen && s_bypasses_relay(param, value))
                s_override_add(self, pm_asprintf("%s: %.*s -> %s", param,
                                                 (int)klen, line, value));
            free(value);
            line += len + (line[len] == '\n');
        }
        pm_cmd_result_clear(&c);
    }
    free(copy);
}

static void
s_refresh(s_pf_t *self)
{
    struct stat st;
    time_t now = time(NULL);
    if (stat(self->main_cf, &st) != 0)
        memset(&st, 0, sizeof st);
    if (self->cached && now - self->cached_at < S_STATUS_TTL &&
        st.st_ino == self->cached_st.st_ino &&
        st.st_size == self->cached_st.st_size &&
        st.st_mtim.tv_sec == self->cached_st.st_mtim.tv_sec &&
        st.st_mtim.tv_nsec == self->cached_st.st_mtim.tv_nsec)
        return;
    s_cache_drop(self);
    s_node_t node;
    char *why = NULL;
    if (!s_node_read(self->dir, &node, &why)) {
        self->auth_state = PM__SERVICE_STATUS__STATE__UNKNOWN;
        self->auth_detail = why;
    } else {
        free(self->queue_dir);
        self->queue_dir = pm_strdup(node.v[N_QUEUE]);
        s_auth_status(self, &node);
        s_overrides_of(self, "transport_maps", node.v[N_TRANSPORT]);
        s_overrides_of(self, "sender_dependent_relayhost_maps", node.v[N_SDRH]);
    }
    s_node_clear(&node);
    self->cached = true;
    self->cached_at = now;
    self->cached_st = st;
}

/* What `postfix status` (master -t) checks, without a shell script and a
 * log line per heartbeat: master.pid names a live process called master. */
static bool
s_master_alive(const s_pf_t *self)
{
    if (!self->queue_dir)
        return s_running(self->dir);
    char *path = pm_asprintf("%s/pid/master.pid", self->queue_dir);
    FILE *f = fopen(path, "r");
    long pid = 0;
    bool alive = false;
    if (f && fscanf(f, "%ld", &pid) == 1 && pid > 0 &&
        kill((pid_t)pid, 0) == 0) {
        char comm[64] = "";
        char *cpath = pm_asprintf("/proc/%ld/comm", pid);
        FILE *c = fopen(cpath, "r");
        alive =
            c && fgets(comm, sizeof comm, c) && strncmp(comm, "master", 6) == 0;
        if (c)
            fclose(c);
        free(cpath);
    }
    if (f)
        fclose(f);
    free(path);
    return alive;
}

static Pm__ServiceStatus *
s_service(Pm__ServiceStatus *old, Pm__ServiceStatus__State state,
          const char *detail)
{
    if (old)
        pm__service_status__free_unpacked(old, NULL);
    Pm__ServiceStatus *s = pm_malloc(sizeof *s);
    pm__service_status__init(s);
    s->state = state;
    s->detail = pm_strdup(detail);
    return s;
}

static void
s_status(pm_backend_t *backend, Pm__NodeStatus *status)
{
    s_pf_t *self = backend->ctx;
    s_refresh(self);
    status->postfix_running = s_master_alive(self);
    status->auth = s_service(status->auth, self->auth_state,
                             self->auth_detail ? self->auth_detail : "");
    if (!status->antispam)
        status->antispam = s_service(NULL, PM__SERVICE_STATUS__STATE__UNKNOWN,
                                     "not reported yet");
    if (!status->antivirus)
        status->antivirus = s_service(NULL, PM__SERVICE_STATUS__STATE__UNKNOWN,
                                      "not reported yet");
    if (!status->dkim)
        status->dkim = s_service(NULL, PM__SERVICE_STATUS__STATE__UNKNOWN,
                                 "not reported yet");
    for (size_t i = 0; i < status->n_relay_overrides; i++)
        free(status->relay_overrides[i]);
    free(status->relay_overrides);
    status->relay_overrides = NULL;
    status->n_relay_overrides = self->n_overrides + (self->n_unlisted > 0);
    if (status->n_relay_overrides) {
        status->relay_overrides = pm_calloc(status->n_relay_overrides,
                                            sizeof *status->relay_overrides);
        for (size_t i = 0; i < self->n_overrides; i++)
            status->relay_overrides[i] = pm_strdup(self->overrides[i]);
        if (self->n_unlisted)
            status->relay_overrides[self->n_overrides] =
                pm_asprintf("... and %zu more", self->n_unlisted);
    }
}

static void
s_destroy(pm_backend_t **backend_p)
{
    pm_backend_t *backend = *backend_p;
    if (!backend)
        return;
    s_pf_t *self = backend->ctx;
    if (self) {
        s_cache_drop(self);
        free(self->queue_dir);
        free(self->dir);
        free(self->main_cf);
        free(self->milter);
        free(self);
    }
    free(backend);
    *backend_p = NULL;
}

pm_backend_t *
pm_postfix_new(const char *config_dir, char **why)
{
    char *main_cf = pm_asprintf("%s/main.cf", config_dir);
    if (access(main_cf, R_OK | W_OK) != 0) {
        *why = pm_asprintf("%s: %s", main_cf, strerror(errno));
        free(main_cf);
        return NULL;
    }
    s_pf_t *self = pm_calloc(1, sizeof *self);
    self->dir = pm_strdup(config_dir);
    self->main_cf = main_cf;
    s_scratch_sweep(self->dir);
    pm_backend_t *backend = pm_calloc(1, sizeof *backend);
    backend->name = "postfix";
    backend->ctx = self;
    backend->apply = s_apply;
    backend->status = s_status;
    backend->destroy = s_destroy;
    return backend;
}

void
pm_postfix_set_milter(pm_backend_t *backend, const char *socket)
{
    s_pf_t *self = backend->ctx;
    free(self->milter);
    self->milter = socket && *socket ? pm_strdup(socket) : NULL;
}
