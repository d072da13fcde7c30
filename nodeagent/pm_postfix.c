/* pm_postfix.c - the policy on one real Postfix instance (postfix -c DIR).
 *
 * The backend: apply with check and rollback, reload, status. What the
 * policy renders to is pm_pf_render, main.cf is read and written through
 * pm_postconf, the SASL check is pm_pf_sasl; postfix checks and reloads,
 * smtpd -S parses the candidate configuration the way every smtpd process
 * will, all run with common/pm_cmd.
 */
#include "pm_postfix.h"
#include "pm_cmd.h"
#include "pm_crash.h"
#include "pm_error.h"
#include "pm_file.h"
#include "pm_mem.h"
#include "pm_pf_render.h"
#include "pm_pf_sasl.h"
#include "pm_postconf.h"

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define S_TIMEOUT_MS 15000        /* any single Postfix command */
#define S_OUTPUT_MAX (64u << 20)  /* postmap -s of a big map */
#define S_PROBE_MS 10000          /* smtpd -S: healthy, it exits at once */
#define S_STATUS_TTL 10           /* seconds a status computation is reused */
#define S_OVERRIDES_MAX 100       /* relay-host bypasses listed in a report */
#define S_OVERRIDE_LEN 250        /* bytes of one of them */
#define S_MAIN_CF_MAX (16u << 20) /* a main.cf bigger than this is refused */
#define S_SMTPD_FALLBACK "/usr/lib/postfix/sbin/smtpd"

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
 * The node: parameters of main.cf the policy does not own. */

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
    return pm_postconf_read(dir, s_node_names, N_COUNT, node->v, why) == PM_OK;
}

/* True when the node's SASL backend answers; else *problem (pm_pf_sasl). */
static bool
s_sasl_backend(const s_node_t *node, char **problem)
{
    return pm_pf_sasl_answers(node->v[N_SASL_TYPE], node->v[N_SASL_PATH],
                              node->v[N_QUEUE], problem);
}

static pm_pf_caps_t
s_node_caps(const s_node_t *node, char **sasl_problem)
{
    pm_pf_caps_t caps;
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
    bool ok =
        pm_postconf_write_file(path, main_data, main_len, st, why) == PM_OK;
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
s_check_relay_families(const s_node_t *node, const pm_postconf_param_t *params,
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
           const pm_postconf_param_t *params, size_t n, char **why)
{
    return pm_postconf_write(tmp, params, n, why) == PM_OK &&
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
    if (pm_postconf_write_file(self->main_cf, old, old_len, st, &restore_why) !=
        PM_OK) {
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
    pm_postconf_param_t *params = NULL;
    struct stat st;
    s_node_t node;
    bool ok = false;
    (void)rev;

    if (!s_read_file(self->main_cf, &old, &old_len, &st, &err))
        goto out;
    if (!s_node_read(self->dir, &node, &err))
        goto out;
    pm_pf_caps_t caps = s_node_caps(&node, &sasl_problem);
    caps.milter = self->milter;
    params = pm_pf_render(effective, &caps, &n);
    self->applied = true;
    self->want_sasl = effective->outbound_sasl_auth;
    self->want_login_mismatch = effective->inbound_reject_sender_login_mismatch;
    s_cache_drop(self);
    if (pm_postconf_has(self->dir, params, n)) {
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
            pm_postconf_write_file(self->main_cf, old, old_len, &st, &ignored);
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
    pm_postconf_params_free(&params, n);
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
    const char *level = node->v[N_TLS_LEVEL];
    bool tls = strcmp(level, "may") == 0 || strcmp(level, "encrypt") == 0 ||
               (!*level && strcmp(node->v[N_USE_TLS], "yes") == 0);
    bool no_login = !tls && strcmp(node->v[N_TLS_AUTH_ONLY], "yes") == 0;
    bool no_maps =
        self->applied && self->want_login_mismatch && !*node->v[N_LOGIN_MAPS];
    char *issues = pm_asprintf(
        "%s%s%s",
        no_login ? "AUTH is offered only after STARTTLS but "
                   "smtpd_tls_security_level is none: no client can log in"
                 : "",
        no_login && no_maps ? "; " : "",
        no_maps ? "reject_sender_login_mismatch left out: "
                  "smtpd_sender_login_maps is empty"
                : "");
    if (*issues) {
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
