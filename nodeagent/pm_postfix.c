/* pm_postfix.c - the policy on one real Postfix instance (postfix -c DIR).
 *
 * The backend: apply with check and rollback, reload. What the policy
 * renders to is pm_pf_render, main.cf is read and written through
 * pm_postconf, the node's own parameters and what they support are
 * pm_pf_node, status is pm_pf_status; postfix checks and reloads, smtpd -S
 * parses the candidate configuration the way every smtpd process will,
 * all run with common/pm_cmd.
 */
#include "pm_postfix.h"
#include "pm_check.h"
#include "pm_clock.h"
#include "pm_pf_run.h"
#include "pm_cmd.h"
#include "pm_crash.h"
#include "pm_error.h"
#include "pm_file.h"
#include "pm_log.h"
#include "pm_mem.h"
#include "pm_pf_drift.h"
#include "pm_pf_listener.h"
#include "pm_pf_node.h"
#include "pm_pf_render.h"
#include "pm_pf_status.h"
#include "pm_postconf.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define S_PROBE_MS 10000          /* smtpd -S: healthy, it exits at once */
#define S_RELOAD_WAIT_MS 2000     /* the master re-reads within ms */
#define S_MAIN_CF_MAX (16u << 20) /* a main.cf bigger than this is refused */
#define S_SCRATCH_DEPTH 8 /* directories copied as directories, this deep */
#define S_SCRATCH_COPY_MAX (1u << 20) /* a linked file copied, this big */
#define S_SMTPD_FALLBACK "/usr/lib/postfix/sbin/smtpd"

/* ------------------------------------------------------------------------
 * The backend object. */

typedef struct {
    char *dir;          /* configuration directory */
    char *main_cf;      /* DIR/main.cf */
    char *milter;       /* privmta-milter socket in Postfix syntax, or NULL */
    char *notify;       /* the notify listener's address, or NULL */
    bool notify_tried;  /* this process ensured it, or warned why not */
    bool notify_reload; /* added to master.cf, not reloaded since */
    bool loaded;        /* a reload since this process started saw main.cf */
    bool checked;       /* `postfix check` passed since this process started */
    pm_pf_status_t *status;    /* told what each apply wanted */
    pm_pf_drift_t *drift;      /* told what each apply left in main.cf */
    pm_pf_node_cache_t *facts; /* the node's facts, shared with STATUS */
} s_pf_t;

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

/* Puts FROM's entry at TO in a scratch copy: a hard link to a regular
 * file, or to the file a symbolic link names (Debian's makedefs.out);
 * for a directory (sasl/, dynamicmaps.cf.d/) a real one with its entries
 * put the same way. A symbolic link only where neither a hard link nor a
 * copy can be (a big file on another file system, a tree deeper than
 * S_SCRATCH_DEPTH): postfix check warns "symlink leaves directory" for
 * every one, at every apply. */
static void
s_scratch_put(const char *from, const char *to, int depth)
{
    struct stat lst, st;
    if (lstat(from, &lst) != 0)
        return;
    if (S_ISREG(lst.st_mode) && link(from, to) == 0)
        return;
    if (S_ISLNK(lst.st_mode) && stat(from, &st) == 0 && S_ISREG(st.st_mode)) {
        if (linkat(AT_FDCWD, from, AT_FDCWD, to, AT_SYMLINK_FOLLOW) == 0)
            return;
        /* on another mount (the unit's read-only /usr): a small file is
         * copied, the scratch copy lives for one check */
        char *data = NULL, *why = NULL;
        size_t len = 0;
        bool copied = pm_file_read(from, S_SCRATCH_COPY_MAX, 0, &data, &len,
                                   &why) == PM_OK &&
                      pm_file_write(to, data, len, st.st_mode & 0777, (gid_t)-1,
                                    &why) == PM_OK;
        free(data);
        free(why);
        if (copied)
            return;
    }
    if (S_ISDIR(lst.st_mode) && depth < S_SCRATCH_DEPTH &&
        mkdir(to, lst.st_mode & 07777) == 0) {
        DIR *d = opendir(from);
        struct dirent *e;
        while (d && (e = readdir(d))) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
                continue;
            char *f = pm_asprintf("%s/%s", from, e->d_name);
            char *t = pm_asprintf("%s/%s", to, e->d_name);
            s_scratch_put(f, t, depth + 1);
            free(f);
            free(t);
        }
        if (d)
            closedir(d);
        return;
    }
    (void)symlink(from, to);
}

/* A scratch configuration directory beside DIR's files: DIR/.privmta.XXXXXX
 * with a copy of main.cf and every other file put there (s_scratch_put),
 * so paths under $config_directory still resolve. */
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
        s_scratch_put(from, to, 0);
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
    if (!*tmp_p)
        return;
    char *why = NULL;
    if (pm_file_remove_tree(*tmp_p, false, &why) != PM_OK) {
        pm_warn("postfix: scratch directory not removed: %s", why);
        free(why);
    }
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

/* Postfix's smtp client resolves relayhost in the families inet_protocols
 * enables; a literal of another family defers every relayed message
 * ("relayhost configuration problem", 4.3.5) although postconf, postfix
 * check and reload all accept it. Checked here, per node. */
static bool
s_check_relay_families(const pm_pf_node_t *node,
                       const pm_postconf_param_t *params, size_t n, char **why)
{
    const char *proto = node->protocols;
    bool all = strstr(proto, "all") != NULL;
    bool v4 = all || strstr(proto, "ipv4"), v6 = all || strstr(proto, "ipv6");
    for (size_t i = 0; i < n; i++) {
        if (strcmp(params[i].name, "relayhost") != 0 &&
            strcmp(params[i].name, "smtp_fallback_relay") != 0)
            continue;
        int fam = pm_check_relay_family(params[i].value);
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

/* The maillog for reading when it is a regular file: not syslog, nor
 * /dev/stdout (containers), which would block or read something else. */
static FILE *
s_maillog_open(const char *maillog)
{
    int fd = maillog[0] == '/'
                 ? open(maillog, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC)
                 : -1;
    struct stat st;
    FILE *f = fd >= 0 && fstat(fd, &st) == 0 && S_ISREG(st.st_mode)
                  ? fdopen(fd, "r")
                  : NULL;
    if (!f && fd >= 0)
        close(fd);
    return f;
}

/* The first line of the maillog since OFFSET in which PROCESS ("smtpd[",
 * "master[") says WHAT, from WHAT on; NULL when none, or when maillog_file
 * is not a regular file. Caller frees. */
static char *
s_maillog_find(const char *maillog, off_t offset, const char *process,
               const char *what)
{
    FILE *f = s_maillog_open(maillog);
    char line[1024];
    char *found = NULL;
    if (!f)
        return NULL;
    if (fseeko(f, offset, SEEK_SET) == 0)
        while (!found && fgets(line, sizeof line, f)) {
            char *at = strstr(line, process);
            at = at ? strstr(at, what) : NULL;
            if (at)
                found = pm_strndup(at, strcspn(at, "\n"));
        }
    fclose(f);
    return found;
}

/* The maillog's size, where s_maillog_find starts looking. */
static off_t
s_maillog_end(const char *maillog)
{
    struct stat st;
    return stat(maillog, &st) == 0 ? st.st_size : 0;
}

/* Waits, at most S_RELOAD_WAIT_MS, until the master logs that it re-read
 * its configuration (SIGHUP is asynchronous): then a session that starts
 * gets the new main.cf, and the acknowledgement says so. With syslog or
 * /dev/stdout rather than a maillog file there is nothing to watch: no
 * wait. */
static void
s_wait_reloaded(const char *maillog, off_t offset)
{
    FILE *f = s_maillog_open(maillog);
    if (!f)
        return;
    fclose(f);
    int64_t end = pm_clock_ms() + S_RELOAD_WAIT_MS;
    char *line = NULL;
    while (!(line = s_maillog_find(maillog, offset, "master[", "reload -- "))) {
        if (pm_clock_ms() >= end) {
            pm_warn("postfix: the master has not logged its reload in %s "
                    "after %d ms",
                    maillog, S_RELOAD_WAIT_MS);
            return;
        }
        usleep(5000);
    }
    free(line);
}

static bool
s_postfix_check(const char *tmp, char **why)
{
    char *argv[] = {"postfix", "-c", (char *)tmp, "check", NULL};
    pm_cmd_result_t c;
    int rc = pm_pf_run(argv, NULL, true, 0, &c);
    if (rc != 0)
        *why = pm_cmd_why("postfix check", &c);
    pm_cmd_result_clear(&c);
    return rc == 0;
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
s_probe_smtpd(const pm_pf_node_t *node, const char *tmp, char **why)
{
    char *smtpd = pm_asprintf("%s/smtpd", node->daemon_dir);
    if (access(smtpd, X_OK) != 0) {
        free(smtpd);
        smtpd = pm_strdup(S_SMTPD_FALLBACK);
    }
    const char *maillog = node->maillog;
    off_t before = s_maillog_end(maillog);
    char *argv[] = {smtpd, "-S", NULL};
    pm_cmd_result_t c;
    int rc = pm_pf_run(argv, tmp, false, S_PROBE_MS, &c);
    if (rc != 0) {
        /* smtpd logs a main.cf it cannot read to syslog only (it has not
         * read maillog_file yet); `postfix check` says it on stderr */
        char *fatal = s_maillog_find(maillog, before, "smtpd[", "fatal: ");
        char *check = NULL;
        if (fatal || !s_postfix_check(tmp, &check))
            *why = pm_asprintf("smtpd refuses the new configuration: %s",
                               fatal ? fatal : check);
        else
            *why = pm_cmd_why("smtpd -S (configuration probe)", &c);
        free(fatal);
        free(check);
    }
    pm_cmd_result_clear(&c);
    free(smtpd);
    return rc == 0;
}

/* Where an apply that writes main.cf spends its time, logged with it: the
 * push -> enforced time is mostly these Postfix commands. */
enum { S_WRITE, S_PROBE, S_CHECK, S_RELOAD, S_STEPS };
typedef struct {
    int64_t at; /* when the current step began (s_ms) */
    int64_t ms[S_STEPS];
} s_steps_t;

/* Ends step STEP (and starts the next); OK passes through. */
static bool
s_step(s_steps_t *t, int step, bool ok)
{
    int64_t now = pm_clock_ms();
    t->ms[step] += now - t->at;
    t->at = now;
    return ok;
}

/* Checks the scratch configuration: postconf, the node's own limits,
 * smtpd's parse; `postfix check` only when INSTALL_CHECK.
 *
 * Why not on every apply: `postfix check` is Postfix's installation check.
 * Its configuration half (the postfix command's mail_conf_read, which
 * refuses a bad typed value of any global parameter) is also done by
 * smtpd -S, which goes further (restriction lists, tables). The rest looks
 * at the instance, not at main.cf's policy parameters: post-install
 * create-missing (queue directories), master.cf present, postlog, a
 * postsuper pass over the queue, ownership warnings. It costs 0.5 s of
 * CPU on an idle node, three times the rest of an apply. So it runs until
 * it has passed once since the agent started (the instance as found), and
 * whenever Postfix is not running, where smtpd -S cannot probe. */
static bool
s_validate(const pm_pf_node_t *node, const char *tmp, bool running,
           bool install_check, const pm_postconf_param_t *params, size_t n,
           s_steps_t *t, char **why)
{
    return s_step(t, S_WRITE,
                  pm_postconf_write(tmp, params, n, why) == PM_OK &&
                      s_check_relay_families(node, params, n, why)) &&
           s_step(t, S_PROBE, !running || s_probe_smtpd(node, tmp, why)) &&
           s_step(t, S_CHECK, !install_check || s_postfix_check(tmp, why));
}

/* Swaps the validated scratch main.cf in and reloads; on a failed reload
 * puts OLD back byte for byte and reloads again. */
static bool
s_commit(s_pf_t *self, const char *tmp, const pm_pf_node_t *node, bool running,
         const char *old, size_t old_len, const struct stat *st, char **why)
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
    off_t logged = s_maillog_end(node->maillog);
    if (pm_pf_reload(node->queue_dir, &reload_why)) {
        s_wait_reloaded(node->maillog, logged);
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
        bool back = pm_pf_reload(node->queue_dir, &again);
        *why = pm_asprintf(
            "%s; previous main.cf restored%s%s", reload_why,
            back ? "" : ", but reloading it failed too: ", back ? "" : again);
        free(again);
    }
    free(reload_why);
    free(restore_why);
    return false;
}

/* The notify listener in master.cf, once per process; when it was added,
 * notify_reload stays set until an apply has reloaded Postfix. Not there
 * and not addable is a warning, not a failed apply: the policy matters
 * more than the notices about it. */
static void
s_notify_listener(s_pf_t *self)
{
    if (!self->notify || self->notify_tried)
        return;
    self->notify_tried = true;
    bool added = false;
    char *why = NULL;
    if (pm_pf_listener_ensure(self->dir, self->notify, &added, &why) != PM_OK)
        pm_warn("postfix %s: %s; the filter's notifications will not be "
                "delivered",
                self->dir, why);
    else if (added)
        pm_info("postfix %s: added the notify listener %s/inet to master.cf",
                self->dir, self->notify);
    self->notify_reload = added;
    free(why);
}

static int
s_apply(pm_backend_t *backend, const Pm__Policy *effective, uint64_t rev,
        char **why)
{
    s_pf_t *self = backend->ctx;
    char *old = NULL, *tmp = NULL, *err = NULL;
    size_t old_len = 0, n = 0;
    pm_postconf_param_t *params = NULL;
    struct stat st;
    pm_pf_node_t node = {0};
    bool ok = false;

    if (!s_read_file(self->main_cf, &old, &old_len, &st, &err))
        goto out;
    if (pm_pf_node_cache_read(self->facts, &node, &err) != PM_OK)
        goto out;
    pm_pf_caps_t caps = pm_pf_node_caps(&node, self->milter);
    params = pm_pf_render(effective, &caps, &n);
    pm_pf_status_applied(self->status, effective->outbound_sasl_auth,
                         effective->inbound_reject_sender_login_mismatch);
    s_notify_listener(self);
    int holds = pm_pf_drift_holds(self->drift, params, n);
    if (holds == 1 || (holds < 0 && pm_postconf_has(self->dir, params, n))) {
        /* nothing to write; but an agent that crashed between writing
         * main.cf and the reload left Postfix on the old file: the first
         * apply after a start reloads whatever main.cf says */
        ok = (self->loaded && !self->notify_reload) ||
             !pm_pf_master_alive(node.queue_dir) ||
             pm_pf_reload(node.queue_dir, &err);
        self->loaded = ok;
        self->notify_reload = self->notify_reload && !ok;
        if (ok)
            pm_pf_drift_applied(self->drift, params, n);
        goto out_node;
    }
    bool running = pm_pf_master_alive(node.queue_dir);
    s_steps_t t = {.at = pm_clock_ms()};
    int64_t t0 = t.at;
    tmp = s_scratch_new(self, old, old_len, &st, &err);
    bool install_check = !running || !self->checked;
    ok = tmp &&
         s_validate(&node, tmp, running, install_check, params, n, &t, &err);
    self->checked = self->checked || (ok && install_check);
    ok = ok &&
         s_step(&t, S_RELOAD,
                s_commit(self, tmp, &node, running, old, old_len, &st, &err));
    if (ok)
        pm_info("postfix %s: revision %llu in %lld ms (scratch copy and "
                "postconf %lld, smtpd -S %lld, postfix check %lld%s, "
                "main.cf swap and reload %lld)",
                self->dir, (unsigned long long)rev,
                (long long)(pm_clock_ms() - t0), (long long)t.ms[S_WRITE],
                (long long)t.ms[S_PROBE], (long long)t.ms[S_CHECK],
                install_check ? "" : " (passed earlier)",
                (long long)t.ms[S_RELOAD]);
    self->loaded = ok;
    self->notify_reload = self->notify_reload && !ok;
    if (ok)
        pm_pf_drift_applied(self->drift, params, n);
    else
        pm_pf_drift_forget(self->drift);
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
    pm_pf_node_clear(&node);
out:
    s_scratch_destroy(&tmp);
    pm_postconf_params_free(&params, n);
    free(old);
    if (!ok) {
        *why = err ? err : pm_strdup("apply failed");
        return -1;
    }
    free(err);
    return 0;
}

static void
s_status(pm_backend_t *backend, Pm__NodeStatus *status)
{
    s_pf_t *self = backend->ctx;
    pm_pf_status_fill(self->status, status);
}

static size_t
s_drift(pm_backend_t *backend, Pm__Drift ***found)
{
    s_pf_t *self = backend->ctx;
    return pm_pf_drift_check(self->drift, found);
}

/* What main.cf lost of EFFECTIVE's parameters while no agent ran. */
static size_t
s_drift_since(pm_backend_t *backend, const Pm__Policy *effective,
              Pm__Drift ***found)
{
    s_pf_t *self = backend->ctx;
    pm_pf_node_t node = {0};
    char *err = NULL;
    *found = NULL;
    if (pm_pf_node_cache_read(self->facts, &node, &err) != PM_OK) {
        free(err); /* the apply that follows says why */
        return 0;
    }
    pm_pf_caps_t caps = pm_pf_node_caps(&node, self->milter);
    size_t n = 0;
    pm_postconf_param_t *params = pm_pf_render(effective, &caps, &n);
    pm_pf_drift_expect(self->drift, params, n);
    pm_postconf_params_free(&params, n);
    pm_pf_node_clear(&node);
    return pm_pf_drift_check(self->drift, found);
}

static void
s_destroy(pm_backend_t **backend_p)
{
    pm_backend_t *backend = *backend_p;
    if (!backend)
        return;
    s_pf_t *self = backend->ctx;
    if (self) {
        pm_pf_status_destroy(&self->status);
        pm_pf_node_cache_destroy(&self->facts);
        pm_pf_drift_destroy(&self->drift);
        free(self->dir);
        free(self->main_cf);
        free(self->milter);
        free(self->notify);
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
    self->facts = pm_pf_node_cache_new(config_dir);
    self->status = pm_pf_status_new(config_dir, self->facts);
    self->drift = pm_pf_drift_new(config_dir);
    s_scratch_sweep(self->dir);
    pm_backend_t *backend = pm_calloc(1, sizeof *backend);
    backend->name = "postfix";
    backend->ctx = self;
    backend->apply = s_apply;
    backend->status = s_status;
    backend->drift = s_drift;
    backend->drift_since = s_drift_since;
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

void
pm_postfix_set_notify_listener(pm_backend_t *backend, const char *addr)
{
    s_pf_t *self = backend->ctx;
    free(self->notify);
    self->notify = addr && *addr ? pm_strdup(addr) : NULL;
    self->notify_tried = false;
}
