/* pm_restart.c - see pm_restart.h. */
#include "pm_restart.h"
#include "pm_actor.h"
#include "pm_cmd.h"
#include "pm_error.h"
#include "pm_file.h"
#include "pm_log.h"
#include "pm_mem.h"
#include "pm_pf_run.h"
#include "pm_postconf.h"
#include "pm_probe.h"
#include "pm_svcprobe.h"
#include "pm_text.h"
#include "pm_wire.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define S_TICK_MS 200            /* drain and gate look again this often */
#define S_PROBE_MS 5000          /* one connection of the gate, at most */
#define S_JOURNAL_MAX (1u << 20) /* bytes of a journal read back */
#define S_WORDS_MAX 64           /* words of milter_restart, postfix_restart */

/* What the drain sets in main.cf, in this order; the journal keeps their
 * originals. The 421 has a name of its own so that a master.cf service
 * can refer to it: postconf -P takes no blanks in a value. */
static const char *const s_drain_names[] = {"smtpd_delay_reject",
                                            "privmta_drain_restrictions",
                                            "smtpd_client_restrictions"};
static const char *const s_drain_values[] = {
    "no",
    "check_client_access static:{421 4.3.2 Service restarting, try again "
    "later}",
    "$privmta_drain_restrictions"};
#define S_NDRAIN (sizeof s_drain_names / sizeof s_drain_names[0])

/* What a master.cf service (-o) that sets these itself gets. */
static const char *const s_override_names[] = {"smtpd_delay_reject",
                                               "smtpd_client_restrictions"};
static const char *const s_override_values[] = {"no",
                                                "$privmta_drain_restrictions"};
#define S_NOVERRIDE (sizeof s_override_names / sizeof s_override_names[0])
#define S_MASTER_MAX (1u << 20) /* bytes of a master.cf kept */
#define S_WHY_LOG_MAX 512       /* bytes of a failure's reason logged */

/* What the drain changed, as it was. */
typedef struct {
    char *main[S_NDRAIN]; /* postconf -n before the drain; NULL: not set */
    char *master;         /* master.cf before the drain, when a service in
                             it was drained too; NULL: master.cf untouched */
    size_t master_len;
} s_orig_t;

typedef struct {
    pm_restart_config_t cfg; /* strings owned */
    zsock_t *pipe;
    zpoller_t *poller; /* the pipe, nonstop: $TERM is what ends us */
    uint64_t rollout;
    char *service;
    int64_t drain_ms;
    const char *phase;
    int64_t phase_at; /* zclock_mono() the phase began: its time is logged */
    bool stopping;    /* $TERM seen */
    bool abandoned;   /* test hook: end as if killed */
    bool drained;     /* main.cf (and master.cf) may hold the drain values */
    s_orig_t orig;
    pm_svcprobe_listener_t *ls;
    size_t n_ls;
    char *queue_dir;      /* Postfix's (s_queue_dir) */
    bool queue_dir_asked; /* postconf ran for it, whatever it said */
} s_restart_t;

/* Sets *WHY to TEXT (taken over), freeing what it held. */
static void
s_set_why(char **why, char *text)
{
    free(*why);
    *why = text;
}

/* ---- the journal and the parameters ------------------------------------ */

/* The master.cf copy beside JOURNAL (caller frees); NULL for NULL. */
static char *
s_master_journal(const char *journal)
{
    return journal ? pm_asprintf("%s.master", journal) : NULL;
}

/* The originals as postconf -n printed them (an unset one has no line),
 * and master.cf as it was when the drain touches it. */
static bool
s_journal_write(const char *path, const s_orig_t *orig, char **why)
{
    if (!path)
        return true;
    char *text = pm_strdup("# privmta-agent: Postfix is being restarted; "
                           "what main.cf set before the drain\n");
    for (size_t i = 0; i < S_NDRAIN; i++) {
        if (!orig->main[i])
            continue;
        char *more =
            pm_asprintf("%s%s = %s\n", text, s_drain_names[i], orig->main[i]);
        free(text);
        text = more;
    }
    char *master = s_master_journal(path);
    int rc = orig->master
                 ? pm_file_write(master, orig->master, orig->master_len, 0600,
                                 (gid_t)-1, why)
                 : PM_OK;
    if (rc == PM_OK) /* the main journal last: its presence says "undo" */
        rc = pm_file_write(path, text, strlen(text), 0600, (gid_t)-1, why);
    free(master);
    free(text);
    return rc == PM_OK;
}

/* Reads PATH's originals into ORIG; PM_ENOTFOUND when there is none. */
static int
s_journal_read(const char *path, s_orig_t *orig, char **why)
{
    char *text = NULL, *master = s_master_journal(path);
    int rc =
        pm_file_read(path, S_JOURNAL_MAX, PM_FILE_STRICT, &text, NULL, why);
    if (rc == PM_OK)
        pm_postconf_parse(text, s_drain_names, S_NDRAIN, orig->main);
    if (rc == PM_OK) {
        rc = pm_file_read(master, S_MASTER_MAX, PM_FILE_STRICT, &orig->master,
                          &orig->master_len, why);
        if (rc == PM_ENOTFOUND) { /* master.cf was not drained */
            PM_FREE(why);
            rc = PM_OK;
        }
    }
    free(master);
    free(text);
    return rc;
}

static void
s_journal_remove(const char *path)
{
    char *master = s_master_journal(path);
    if (master && unlink(master) != 0 && errno != ENOENT)
        pm_warn("restart: cannot remove %s: %s", master, strerror(errno));
    if (path && unlink(path) != 0 && errno != ENOENT)
        pm_warn("restart: cannot remove %s: %s", path, strerror(errno));
    free(master);
}

static void
s_orig_clear(s_orig_t *orig)
{
    for (size_t i = 0; i < S_NDRAIN; i++)
        PM_FREE(&orig->main[i]);
    PM_FREE(&orig->master);
    orig->master_len = 0;
}

/* Puts ORIG back in DIR: master.cf whole when it was drained, then
 * main.cf's values (postconf -e the set ones, -X the others). */
static bool
s_put_back(const char *dir, const s_orig_t *orig, char **why)
{
    pm_postconf_param_t set[S_NDRAIN];
    const char *unset[S_NDRAIN];
    size_t n_set = 0, n_unset = 0;
    for (size_t i = 0; i < S_NDRAIN; i++) {
        if (orig->main[i])
            set[n_set++] =
                (pm_postconf_param_t){(char *)s_drain_names[i], orig->main[i]};
        else
            unset[n_unset++] = s_drain_names[i];
    }
    char *master = pm_asprintf("%s/master.cf", dir);
    bool ok =
        !orig->master || pm_file_write(master, orig->master, orig->master_len,
                                       0644, (gid_t)-1, why) == PM_OK;
    free(master);
    return ok && (!n_set || pm_postconf_write(dir, set, n_set, why) == PM_OK) &&
           (!n_unset || pm_postconf_unset(dir, unset, n_unset, why) == PM_OK);
}

/* postfix -c DIR VERB (start, stop, reload); false with *why. */
static bool
s_postfix(const char *dir, const char *verb, char **why)
{
    char *argv[] = {"postfix", "-c", (char *)dir, (char *)verb, NULL};
    pm_cmd_result_t c;
    int rc = pm_pf_run(argv, NULL, true, 0, &c);
    if (rc != 0) {
        char *what = pm_asprintf("postfix %s", verb);
        s_set_why(why, pm_cmd_why(what, &c));
        free(what);
    }
    pm_cmd_result_clear(&c);
    return rc == 0;
}

/* Splits COPY on blanks into WORDS (S_WORDS_MAX + 1 slots, pointing
 * into COPY, NULL-terminated); false when there are more. */
static bool
s_words(char *copy, char **words)
{
    size_t n = 0;
    char *save = NULL, *w = strtok_r(copy, " \t", &save);
    for (; w && n < S_WORDS_MAX; w = strtok_r(NULL, " \t", &save))
        words[n++] = w;
    words[n] = NULL;
    return !w;
}

/* Runs the agent parameter NAME's command LINE (split on blanks, no
 * shell) for at most PM_RESTART_MILTER_MS; false with *why. CANCELLED
 * (may be NULL) ends it early. */
static bool
s_command(const char *name, const char *line, bool (*cancelled)(void *),
          void *arg, char **why)
{
    char *copy = pm_strdup(line);
    char *words[S_WORDS_MAX + 1];
    if (!s_words(copy, words) || !words[0]) {
        pm_why(why, "restart", "%s is empty or has more than %d words", name,
               S_WORDS_MAX);
        free(copy);
        return false;
    }
    pm_cmd_opts_t opts = {.timeout_ms = PM_RESTART_MILTER_MS,
                          .cancelled = cancelled,
                          .cancel_arg = arg};
    pm_cmd_result_t c;
    int rc = pm_cmd_run(words, &opts, &c);
    if (rc != 0) {
        char *what = pm_asprintf("%s (%s)", name, line);
        s_set_why(why, pm_cmd_why(what, &c));
        free(what);
    }
    pm_cmd_result_clear(&c);
    free(copy);
    return rc == 0;
}

/* Starts a Postfix that does not run: postfix_restart (PF_RESTART) when
 * set, else postfix start. */
static bool
s_start(const char *dir, const char *pf_restart, char **why)
{
    return pf_restart && *pf_restart
               ? s_command("postfix_restart", pf_restart, NULL, NULL, why)
               : s_postfix(dir, "start", why);
}

/* Postfix on its original configuration, running: ORIG put back when
 * DRAINED (*drained cleared then), then reloaded if it runs, started if
 * not (PF_RESTART as s_start). False with *why (what failed, first
 * line). */
static bool
s_settle(const char *dir, const char *pf_restart, const s_orig_t *orig,
         bool *drained, char **why)
{
    bool back = !*drained || s_put_back(dir, orig, why);
    if (back && *drained) {
        *drained = false;
        return pm_pf_running(dir) ? s_postfix(dir, "reload", why)
                                  : s_start(dir, pf_restart, why);
    }
    return pm_pf_running(dir) || s_start(dir, pf_restart, why);
}

int
pm_restart_recover(const pm_restart_config_t *config, bool *acted, char **why)
{
    s_orig_t orig = {0};
    *acted = false;
    if (!config->journal || !config->postfix_dir)
        return PM_OK;
    int rc = s_journal_read(config->journal, &orig, why);
    if (rc == PM_ENOTFOUND) {
        if (why)
            PM_FREE(why);
        return PM_OK;
    }
    *acted = true;
    bool drained = true;
    if (rc == PM_OK && !s_settle(config->postfix_dir, config->postfix_restart,
                                 &orig, &drained, why))
        rc = PM_EIO;
    if (rc == PM_OK)
        s_journal_remove(config->journal);
    s_orig_clear(&orig);
    return rc;
}

/* ---- the actor's plumbing ---------------------------------------------- */

/* Waits up to MS (-1: until a command) for the owner; true once $TERM came
 * (other commands are ignored: the owner sends none). */
static bool
s_wait(s_restart_t *self, int ms)
{
    if (!self->stopping && zpoller_wait(self->poller, ms) == self->pipe) {
        char *cmd = pm_actor_recv_str(self->pipe);
        self->stopping = !cmd || strcmp(cmd, "$TERM") == 0;
        free(cmd);
    }
    return self->stopping;
}

static bool
s_stopped(void *self)
{
    return s_wait(self, 0);
}

/* The test hook at STEP; true when the test wants us gone. */
static bool
s_hook(s_restart_t *self, const char *step)
{
    if (self->cfg.test_hook && self->cfg.test_hook(step, self->cfg.test_arg))
        self->abandoned = self->stopping = true;
    return self->abandoned;
}

static void
s_emit(s_restart_t *self, bool done, bool ok, const char *error)
{
    Pm__RestartResult r = PM__RESTART_RESULT__INIT;
    r.rollout = self->rollout;
    r.done = done;
    r.ok = ok;
    r.phase = (char *)self->phase;
    r.error = (char *)(error ? error : "");
    r.at = zclock_time();
    size_t len = 0;
    uint8_t *buf = pm_wire_pack(&r.base, &len);
    zsock_send(self->pipe, "sb", "STATUS", buf, len);
    free(buf);
}

/* How long the phase that ends now took, in ms (for the log: where a
 * node's time out of rotation goes). */
static long long
s_phase_ms(s_restart_t *self)
{
    int64_t now = zclock_mono();
    long long ms = self->phase_at ? (long long)(now - self->phase_at) : 0;
    self->phase_at = now;
    return ms;
}

static void
s_phase(s_restart_t *self, const char *phase)
{
    const char *was = self->phase;
    long long ms = s_phase_ms(self);
    self->phase = phase;
    if (was && strcmp(was, phase) != 0)
        pm_info("restart %llu (%s): %s (%s took %lld ms)",
                (unsigned long long)self->rollout, self->service, phase, was,
                ms);
    else
        pm_info("restart %llu (%s): %s", (unsigned long long)self->rollout,
                self->service, phase);
    s_emit(self, false, false, NULL);
}

/* ---- the steps --------------------------------------------------------- */

/* Waits for the sessions on Postfix's listeners to end, drain_ms at most.
 * False only on $TERM. */
static bool
s_drain_wait(s_restart_t *self)
{
    int64_t deadline = zclock_mono() + self->drain_ms;
    int open = 0;
    bool blind = false;
    while ((open = pm_svcprobe_sessions(self->ls, self->n_ls)) != 0) {
        if (open < 0 && !blind)
            pm_warn("restart %llu: cannot read /proc/net/tcp; waiting out "
                    "drain_ms",
                    (unsigned long long)self->rollout);
        blind = open < 0;
        int64_t left = deadline - zclock_mono();
        if (left <= 0) {
            pm_warn("restart %llu: %d SMTP session%s still open after "
                    "drain_ms %lld; restarting anyway (their clients "
                    "retry what was not accepted)",
                    (unsigned long long)self->rollout, open,
                    open == 1 ? "" : "s", (long long)self->drain_ms);
            return true;
        }
        if (s_wait(self, left < S_TICK_MS ? (int)left : S_TICK_MS))
            return false;
    }
    return true;
}

/* The master.cf services that set the drain's parameters themselves
 * (-o): *OVER (caller frees) gets what they are set to during the drain,
 * and master.cf is kept whole in SELF->orig to be put back. */
static bool
s_master_keep(s_restart_t *self, pm_postconf_param_t **over, size_t *n_over,
              char **why)
{
    const char *dir = self->cfg.postfix_dir;
    if (pm_postconf_read_overrides(dir, s_override_names, S_NOVERRIDE, over,
                                   n_over, why) != PM_OK)
        return false;
    for (size_t i = 0; i < *n_over; i++) {
        const char *name = strrchr((*over)[i].name, '/') + 1;
        for (size_t j = 0; j < S_NOVERRIDE; j++)
            if (strcmp(name, s_override_names[j]) == 0) {
                free((*over)[i].value);
                (*over)[i].value = pm_strdup(s_override_values[j]);
            }
    }
    if (!*n_over)
        return true;
    char *path = pm_asprintf("%s/master.cf", dir);
    int rc = pm_file_read(path, S_MASTER_MAX, PM_FILE_STRICT,
                          &self->orig.master, &self->orig.master_len, why);
    free(path);
    return rc == PM_OK;
}

/* New sessions refused, those in flight done (see pm_restart.h). */
static bool
s_drain(s_restart_t *self, char **why)
{
    const char *dir = self->cfg.postfix_dir;
    pm_postconf_param_t drain[S_NDRAIN];
    if (pm_svcprobe_listeners(dir, &self->ls, &self->n_ls, why) != PM_OK)
        return false;
    if (!pm_pf_running(dir)) {
        pm_info("restart %llu: Postfix does not run; nothing to drain",
                (unsigned long long)self->rollout);
        return true;
    }
    pm_postconf_param_t *over = NULL;
    size_t n_over = 0;
    bool ok = pm_postconf_read_set(dir, s_drain_names, S_NDRAIN,
                                   self->orig.main, why) == PM_OK &&
              s_master_keep(self, &over, &n_over, why) &&
              s_journal_write(self->cfg.journal, &self->orig, why);
    for (size_t i = 0; i < S_NDRAIN; i++)
        drain[i] = (pm_postconf_param_t){(char *)s_drain_names[i],
                                         (char *)s_drain_values[i]};
    if (ok)
        self->drained = true; /* even half written, it must be undone */
    ok = ok && (!n_over ||
                pm_postconf_write_overrides(dir, over, n_over, why) == PM_OK);
    pm_postconf_params_free(&over, n_over);
    if (!ok || pm_postconf_write(dir, drain, S_NDRAIN, why) != PM_OK ||
        !s_postfix(dir, "reload", why) || s_hook(self, "drained"))
        return false;
    if (!s_drain_wait(self)) {
        s_set_why(why, pm_strdup(PM_RESTART_STOPPED_ERROR));
        return false;
    }
    return true;
}

static bool
s_milter_restart(s_restart_t *self, char **why)
{
    return s_command("milter_restart", self->cfg.milter_restart, s_stopped,
                     self, why);
}

/* With postfix_restart: the originals back, then its command (the running
 * master keeps the drained configuration it loaded until it stops). Until
 * the command succeeded the node counts as drained: a failure reloads the
 * master still running on the drain (s_recover_postfix). */
static bool
s_restart_postfix_by_command(s_restart_t *self, char **why)
{
    if (self->drained && !s_put_back(self->cfg.postfix_dir, &self->orig, why))
        return false;
    if (s_hook(self, "start") ||
        !s_command("postfix_restart", self->cfg.postfix_restart, s_stopped,
                   self, why))
        return false;
    self->drained = false;
    s_journal_remove(self->cfg.journal);
    return true;
}

/* Stop, originals back, start. */
static bool
s_restart_postfix(s_restart_t *self, char **why)
{
    const char *dir = self->cfg.postfix_dir;
    if (self->cfg.postfix_restart)
        return s_restart_postfix_by_command(self, why);
    if (pm_pf_running(dir) &&
        (!s_postfix(dir, "stop", why) || s_hook(self, "stopped")))
        return false;
    if (s_wait(self, 0)) {
        s_set_why(why, pm_strdup(PM_RESTART_STOPPED_ERROR));
        return false;
    }
    if (self->drained && !s_put_back(dir, &self->orig, why))
        return false;
    self->drained = false;
    if (s_hook(self, "start") || !s_postfix(dir, "start", why))
        return false;
    s_journal_remove(self->cfg.journal);
    return true;
}

/* A message through the first SMTP listener that runs the milter and
 * through the milter (pm_probe.h), when the node has both and the
 * milter's handoff directory is known. */
static bool
s_probe(s_restart_t *self, char **why)
{
    const char *dir = self->cfg.postfix_dir;
    if (!self->cfg.probe_dir || !self->cfg.milter_socket || !dir)
        return true;
    if (!self->n_ls &&
        pm_svcprobe_listeners(dir, &self->ls, &self->n_ls, why) != PM_OK)
        return false;
    const pm_svcprobe_listener_t *l = NULL;
    for (size_t i = 0; !l && i < self->n_ls; i++)
        l = self->ls[i].unfiltered ? NULL : &self->ls[i];
    if (!l) /* no listener runs the filter: no path to probe */
        return true;
    pm_probe_config_t pc = {.handoff_dir = self->cfg.probe_dir,
                            .gid = (gid_t)self->cfg.probe_gid,
                            .smtp_source = self->cfg.smtp_source,
                            .cancelled = s_stopped,
                            .cancel_arg = self};
    return pm_probe_send(&pc, l->host, l->port, why);
}

/* Postfix's queue directory, where a relative milter socket path is
 * (pm_svcprobe_milter): asked once per restart, not at every look of the
 * gate; NULL when unknown (postconf's reason logged once). */
static const char *
s_queue_dir(s_restart_t *self)
{
    static const char *const name[] = {"queue_directory"};
    if (self->queue_dir_asked || !self->cfg.postfix_dir)
        return self->queue_dir;
    self->queue_dir_asked = true;
    char *why = NULL;
    if (pm_postconf_read(self->cfg.postfix_dir, name, 1, &self->queue_dir,
                         &why) != PM_OK) {
        pm_warn("restart %llu: Postfix's queue_directory, where the milter "
                "socket %s is: %s",
                (unsigned long long)self->rollout, self->cfg.milter_socket,
                why ? why : "postconf failed");
        free(why);
    }
    return self->queue_dir;
}

/* One look at everything the gate checks; false with *why. A listener
 * that greets proves master runs; without one, postfix status says. */
static bool
s_gate_once(s_restart_t *self, bool pf, char **why)
{
    if (pf && !self->n_ls && !pm_pf_running(self->cfg.postfix_dir)) {
        s_set_why(why, pm_strdup("Postfix does not run (postfix status)"));
        return false;
    }
    for (size_t i = 0; pf && i < self->n_ls; i++)
        if (!pm_svcprobe_smtp(&self->ls[i], S_PROBE_MS, why))
            return false;
    const char *ms = self->cfg.milter_socket;
    return (!ms ||
            pm_svcprobe_milter(ms, s_queue_dir(self), S_PROBE_MS, why)) &&
           s_probe(self, why);
}

/* Everything answers within gate_ms. */
static bool
s_gate(s_restart_t *self, bool pf, char **why)
{
    int gate_ms =
        self->cfg.gate_ms > 0 ? self->cfg.gate_ms : PM_RESTART_GATE_MS;
    int64_t deadline = zclock_mono() + gate_ms;
    while (!s_gate_once(self, pf, why)) {
        if (zclock_mono() >= deadline) {
            s_set_why(why, pm_asprintf("%s (for %d ms)", *why, gate_ms));
            return false;
        }
        if (s_wait(self, S_TICK_MS)) {
            s_set_why(why, pm_strdup(PM_RESTART_STOPPED_ERROR));
            return false;
        }
    }
    PM_FREE(why); /* what the tries before said */
    return true;
}

/* ---- the order ---------------------------------------------------------- */

/* What this node lacks for the order, said before anything is touched,
 * in the phase that would need it. */
static bool
s_precheck(s_restart_t *self, bool pf, bool mt, char **why)
{
    const char *lack = NULL;
    if (pf && !self->cfg.postfix_dir)
        lack = "this agent manages no Postfix (backend noop, or no "
               "postfix_dir)";
    else if (mt && !self->cfg.milter_restart)
        lack = "no command restarts the milter on this node: set the agent "
               "parameter milter_restart (e.g. \"systemctl restart "
               "privmta-milter\")";
    else if (mt && !self->cfg.milter_socket)
        lack = "this node has no milter: the agent parameter milter_socket "
               "is not set";
    if (lack && self->cfg.postfix_dir)
        self->phase = "restart";
    if (lack)
        pm_why(why, "restart", "%s", lack);
    return !lack;
}

/* After a failure or $TERM: Postfix back on its original configuration,
 * running; what fails here is added to *why. */
static void
s_recover_postfix(s_restart_t *self, char **why)
{
    char *more = NULL;
    bool ok = s_settle(self->cfg.postfix_dir, self->cfg.postfix_restart,
                       &self->orig, &self->drained, &more);
    if (!self->drained) /* the values are back: the result says the rest */
        s_journal_remove(self->cfg.journal);
    if (!ok) {
        s_set_why(why, pm_asprintf("%s; then Postfix could not be put back "
                                   "as it was: %s",
                                   *why ? *why : "failed", more));
    }
    free(more);
}

/* A canary push's check: the gate alone, on the running node. */
static void
s_run_probe(s_restart_t *self)
{
    char *why = NULL;
    self->phase = "gate";
    s_phase(self, self->phase);
    bool ok = s_gate(self, self->cfg.postfix_dir != NULL, &why);
    if (self->stopping)
        pm_warn("probe %llu: stopped", (unsigned long long)self->rollout);
    else {
        if (ok)
            pm_info("probe %llu: mail passes the node and its filter",
                    (unsigned long long)self->rollout);
        else {
            /* the gate's reasons quote the filter's answers: escaped */
            char *shown = pm_text_escape(why, S_WHY_LOG_MAX);
            pm_warn("probe %llu failed: %s", (unsigned long long)self->rollout,
                    shown);
            free(shown);
        }
        s_emit(self, true, ok, ok ? "" : why);
    }
    free(why);
}

static void
s_run(s_restart_t *self)
{
    if (strcmp(self->service, PM_WIRE_SERVICE_PROBE) == 0)
        return s_run_probe(self);
    bool pf = strcmp(self->service, "milter") != 0;
    bool mt = strcmp(self->service, "postfix") != 0;
    char *why = NULL;
    self->phase = pf ? "drain" : "restart";
    bool ok = s_precheck(self, pf, mt, &why);
    if (ok) {
        s_phase(self, self->phase);
        ok = !pf || s_drain(self, &why);
    }
    if (ok && pf) {
        s_phase(self, "restart");
    }
    ok = ok && (!mt || s_milter_restart(self, &why)) &&
         (!pf || s_restart_postfix(self, &why));
    if (ok) {
        s_phase(self, "gate");
        ok = s_gate(self, pf, &why);
    }
    if (!self->abandoned && !ok && pf && self->cfg.postfix_dir)
        s_recover_postfix(self, &why);
    if (self->stopping) {
        if (!self->abandoned)
            pm_warn("restart %llu: stopped in phase %s",
                    (unsigned long long)self->rollout, self->phase);
    } else {
        if (ok)
            pm_info("restart %llu (%s): done (%s took %lld ms)",
                    (unsigned long long)self->rollout, self->service,
                    self->phase, s_phase_ms(self));
        else {
            /* the gate's reasons quote the filter's answers: escaped */
            char *shown = pm_text_escape(why, S_WHY_LOG_MAX);
            pm_warn("restart %llu (%s) failed in phase %s: %s",
                    (unsigned long long)self->rollout, self->service,
                    self->phase, shown);
            free(shown);
        }
        s_emit(self, true, ok, ok ? "" : why);
    }
    free(why);
}

static void
s_destroy(s_restart_t **self_p)
{
    s_restart_t *self = *self_p;
    if (!self)
        return;
    zpoller_destroy(&self->poller);
    pm_svcprobe_free(&self->ls, self->n_ls);
    s_orig_clear(&self->orig);
    free(self->queue_dir);
    free(self->service);
    free((char *)self->cfg.postfix_dir);
    free((char *)self->cfg.milter_socket);
    free((char *)self->cfg.milter_restart);
    free((char *)self->cfg.postfix_restart);
    free((char *)self->cfg.journal);
    free((char *)self->cfg.probe_dir);
    free((char *)self->cfg.smtp_source);
    free(self);
    *self_p = NULL;
}

static void
s_actor(zsock_t *pipe, void *args)
{
    s_restart_t *self = args;
    self->pipe = pipe;
    self->poller = pm_actor_poller(pipe, NULL); /* SIGTERM: the owner says */
    zsock_signal(pipe, 0);
    s_run(self);
    if (self->abandoned) /* as if killed; but an actor still ends on $TERM */
        self->stopping = false;
    while (!s_wait(self, -1))
        ;
    s_destroy(&self);
}

/* A copy of S, NULL for NULL or "". */
static char *
s_opt(const char *s)
{
    return s && *s ? pm_strdup(s) : NULL;
}

zactor_t *
pm_restart_new(const pm_restart_config_t *config, const Pm__RestartOrder *order)
{
    s_restart_t *self = pm_calloc(1, sizeof *self);
    self->cfg = *config;
    self->cfg.postfix_dir = s_opt(config->postfix_dir);
    self->cfg.milter_socket = s_opt(config->milter_socket);
    self->cfg.milter_restart = s_opt(config->milter_restart);
    self->cfg.postfix_restart = s_opt(config->postfix_restart);
    self->cfg.journal = s_opt(config->journal);
    self->cfg.probe_dir = s_opt(config->probe_dir);
    self->cfg.smtp_source = s_opt(config->smtp_source);
    self->rollout = order->rollout;
    self->service = pm_strdup(order->service);
    self->drain_ms = order->drain_ms;
    zactor_t *actor = zactor_new(s_actor, self);
    if (!actor)
        s_destroy(&self);
    return actor;
}
