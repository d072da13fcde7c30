/* test_pf_status.c - what a node's Postfix reports (pm_pf_status).
 *
 * The auth decision and the relay-bypass rule are pure and fed directly;
 * filling a status runs the real postconf and postmap on a scratch
 * configuration directory (a main.cf alone is enough), no Postfix
 * instance.
 */
#include <criterion/criterion.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "pm_error.h"
#include "pm_mem.h"
#include "pm_pf_run.h"
#include "pm_pf_status.h"

/* ------------------------------------------------------------------------
 * The auth decision */

/* A node with dovecot answering AUTH over TLS, AUTH on, a login map. */
static pm_pf_node_t
s_node(void)
{
    return (pm_pf_node_t){.queue_dir = "/q",
                          .sasl_type = "dovecot",
                          .sasl_path = "private/auth",
                          .login_maps = "hash:/etc/postfix/login",
                          .tls_level = "may",
                          .use_tls = "",
                          .sasl_enable = "yes",
                          .tls_auth_only = "yes",
                          .transport_maps = "",
                          .sdrh_maps = ""};
}

static const pm_pf_wants_t s_all = {true, true, true};
static const pm_pf_wants_t s_before = {false, false, false};

/* Expects STATE and DETAIL for NODE after WANTS with SASL_PROBLEM. */
static void
s_expect(const pm_pf_node_t *node, const pm_pf_wants_t *wants,
         const char *problem, Pm__ServiceStatus__State state,
         const char *detail)
{
    char *got = NULL;
    cr_expect_eq(pm_pf_status_auth(node, wants, problem, &got), state, "%s",
                 got);
    cr_expect_str_eq(got, detail);
    free(got);
}

Test(auth, disabled)
{
    pm_pf_node_t n = s_node();
    const char *off = "SMTP AUTH off (outbound.sasl_auth)";
    pm_pf_wants_t no = {true, false, true};
    s_expect(&n, &no, NULL, PM__SERVICE_STATUS__STATE__DISABLED, off);
    /* the backend is not asked then: its problem does not count */
    s_expect(&n, &no, "no SASL backend: x", PM__SERVICE_STATUS__STATE__DISABLED,
             off);
    /* before any apply, main.cf decides */
    n.sasl_enable = "no";
    s_expect(&n, &s_before, NULL, PM__SERVICE_STATUS__STATE__DISABLED, off);
}

Test(auth, down_with_auth_on)
{
    pm_pf_node_t n = s_node();
    const char *problem = "no SASL backend: smtpd_sasl_type dovecot cannot "
                          "connect to /q/private/auth: No such file";
    char *want =
        pm_asprintf("%s; smtpd cannot start while AUTH is on", problem);
    s_expect(&n, &s_all, problem, PM__SERVICE_STATUS__STATE__DOWN, want);
    s_expect(&n, &s_before, problem, PM__SERVICE_STATUS__STATE__DOWN, want);
    free(want);
}

Test(auth, down_with_auth_off)
{
    pm_pf_node_t n = s_node();
    n.sasl_enable = "no"; /* the last apply left it off */
    s_expect(&n, &s_all, "no SASL backend: x", PM__SERVICE_STATUS__STATE__DOWN,
             "no SASL backend: x; SMTP AUTH kept off until it answers "
             "(next apply)");
    /* it answers now: the next apply turns AUTH on */
    s_expect(&n, &s_all, NULL, PM__SERVICE_STATUS__STATE__DOWN,
             "smtpd_sasl_type dovecot answers now but SMTP AUTH is off: it "
             "turns on at the next apply");
}

#define S_NO_LOGIN                                                             \
    "AUTH is offered only after STARTTLS but smtpd_tls_security_level is "     \
    "none: no client can log in"
#define S_NO_MAPS                                                              \
    "reject_sender_login_mismatch left out: smtpd_sender_login_maps is empty"

Test(auth, degraded_no_tls)
{
    pm_pf_node_t n = s_node();
    n.tls_level = "none";
    s_expect(&n, &s_all, NULL, PM__SERVICE_STATUS__STATE__DEGRADED, S_NO_LOGIN);
    /* no security level: the old smtpd_use_tls decides */
    n.tls_level = "";
    n.use_tls = "no";
    s_expect(&n, &s_all, NULL, PM__SERVICE_STATUS__STATE__DEGRADED, S_NO_LOGIN);
    n.use_tls = "yes";
    s_expect(&n, &s_all, NULL, PM__SERVICE_STATUS__STATE__OK,
             "SMTP AUTH via smtpd_sasl_type dovecot");
    /* AUTH offered without TLS too */
    n.tls_level = "none";
    n.tls_auth_only = "no";
    s_expect(&n, &s_all, NULL, PM__SERVICE_STATUS__STATE__OK,
             "SMTP AUTH via smtpd_sasl_type dovecot");
}

Test(auth, degraded_no_login_maps)
{
    pm_pf_node_t n = s_node();
    n.login_maps = "";
    s_expect(&n, &s_all, NULL, PM__SERVICE_STATUS__STATE__DEGRADED, S_NO_MAPS);
    /* only when the last apply wanted the check */
    pm_pf_wants_t no_check = {true, true, false};
    s_expect(&n, &no_check, NULL, PM__SERVICE_STATUS__STATE__OK,
             "SMTP AUTH via smtpd_sasl_type dovecot");
    s_expect(&n, &s_before, NULL, PM__SERVICE_STATUS__STATE__OK,
             "SMTP AUTH via smtpd_sasl_type dovecot");
    /* both issues, named in turn */
    n.tls_level = "none";
    s_expect(&n, &s_all, NULL, PM__SERVICE_STATUS__STATE__DEGRADED,
             S_NO_LOGIN "; " S_NO_MAPS);
}

Test(auth, ok)
{
    pm_pf_node_t n = s_node();
    n.tls_level = "encrypt";
    n.sasl_type = "cyrus";
    s_expect(&n, &s_all, NULL, PM__SERVICE_STATUS__STATE__OK,
             "SMTP AUTH via smtpd_sasl_type cyrus");
}

/* ------------------------------------------------------------------------
 * The relay-bypass rule */

Test(bypass, rule)
{
    const char *t = "transport_maps", *s = "sender_dependent_relayhost_maps";
    cr_expect(pm_pf_status_bypasses_relay(t, "smtp:[10.0.0.1]"));
    cr_expect(pm_pf_status_bypasses_relay(t, "relay:[10.0.0.1]:587"));
    cr_expect(pm_pf_status_bypasses_relay(t, "error:no mail here"));
    cr_expect(pm_pf_status_bypasses_relay(t, ":[10.0.0.1]"));
    /* keeps the default next hop */
    cr_expect_not(pm_pf_status_bypasses_relay(t, "smtp:"));
    cr_expect_not(pm_pf_status_bypasses_relay(t, "relay:"));
    cr_expect_not(pm_pf_status_bypasses_relay(t, ":"));
    /* a sender-dependent relay host is always another one */
    cr_expect(pm_pf_status_bypasses_relay(s, "[10.0.0.2]"));
    cr_expect(pm_pf_status_bypasses_relay(s, "smtp:"));
    cr_expect_not(pm_pf_status_bypasses_relay(s, ""));
}

/* ------------------------------------------------------------------------
 * Filling a status (the real postconf and postmap) */

static char s_dir[64];

static void
s_write(const char *name, const char *text)
{
    char path[128];
    snprintf(path, sizeof path, "%s/%s", s_dir, name);
    FILE *f = fopen(path, "w");
    cr_assert(f);
    fputs(text, f);
    fclose(f);
    /* Postfix waits ~2.4 s on a main.cf younger than a second */
    struct timeval old[2] = {{time(NULL) - 2, 0}, {time(NULL) - 2, 0}};
    cr_assert_eq(utimes(path, old), 0);
}

/* A scratch configuration directory, its own queue directory too, whose
 * main.cf is "queue_directory = DIR" and REST. */
static void
s_scratch(const char *rest)
{
    snprintf(s_dir, sizeof s_dir, "/tmp/pm-test-pfstatus.XXXXXX");
    cr_assert(mkdtemp(s_dir));
    char *main_cf = pm_asprintf("queue_directory = %s\n%s", s_dir, rest);
    s_write("main.cf", main_cf);
    free(main_cf);
}

/* The facts cache a status reads through (the backend shares one with its
 * apply); made by s_pf_status, freed at the end of each test. */
static pm_pf_node_cache_t *s_facts;

static pm_pf_status_t *
s_pf_status(void)
{
    s_facts = pm_pf_node_cache_new(s_dir);
    return pm_pf_status_new(s_dir, s_facts);
}

static void
s_cleanup(void)
{
    pm_pf_node_cache_destroy(&s_facts);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", s_dir);
    cr_expect_eq(system(cmd), 0);
}

TestSuite(fill, .fini = s_cleanup);

static Pm__NodeStatus *
s_status_new(void)
{
    Pm__NodeStatus *st = pm_malloc(sizeof *st);
    pm__node_status__init(st);
    return st;
}

Test(fill, before_any_apply)
{
    s_scratch("transport_maps = texthash:$queue_directory/transport, "
              "pcre:/etc/postfix/x\n");
    s_write("transport", "example.com smtp:[10.0.0.1]\n"
                         "keep.example smtp:\n"
                         "local.example :\n");
    pm_pf_status_t *self = s_pf_status();
    Pm__NodeStatus *st = s_status_new();
    Pm__ServiceStatus *dkim = pm_malloc(sizeof *dkim);
    pm__service_status__init(dkim);
    dkim->state = PM__SERVICE_STATUS__STATE__OK;
    dkim->detail = pm_strdup("signing");
    st->dkim = dkim;
    pm_pf_status_fill(self, st);
    cr_expect_not(st->postfix_running);
    cr_assert(st->auth);
    cr_expect_eq(st->auth->state, PM__SERVICE_STATUS__STATE__DISABLED);
    cr_expect_str_eq(st->auth->detail, "SMTP AUTH off (outbound.sasl_auth)");
    cr_assert(st->antispam && st->antivirus);
    cr_expect_eq(st->antispam->state, PM__SERVICE_STATUS__STATE__UNKNOWN);
    cr_expect_str_eq(st->antivirus->detail, "not reported yet");
    cr_expect_eq(st->dkim, dkim, "a service set elsewhere is kept");
    cr_assert_eq(st->n_relay_overrides, 2);
    cr_expect_str_eq(st->relay_overrides[0],
                     "transport_maps: example.com -> smtp:[10.0.0.1]");
    cr_expect_str_eq(st->relay_overrides[1], "transport_maps: "
                                             "pcre:/etc/postfix/x (entries "
                                             "not listable)");
    pm__node_status__free_unpacked(st, NULL);
    pm_pf_status_destroy(&self);
    cr_expect_null(self);
    pm_pf_status_destroy(&self);
}

Test(fill, overrides_capped)
{
    /* 105 maps that cannot be listed, the first with a long name */
    char *list = pm_asprintf("pcre:/%0300d", 0);
    for (int i = 1; i < 105; i++) {
        char *more = pm_asprintf("%s, pcre:/m%d", list, i);
        free(list);
        list = more;
    }
    char *rest = pm_asprintf("transport_maps = %s\n", list);
    s_scratch(rest);
    pm_pf_status_t *self = s_pf_status();
    Pm__NodeStatus *st = s_status_new();
    pm_pf_status_fill(self, st);
    cr_assert_eq(st->n_relay_overrides, 101);
    cr_expect_eq(strlen(st->relay_overrides[0]), 250);
    cr_expect(
        strncmp(st->relay_overrides[0], "transport_maps: pcre:/000", 25) == 0 &&
            strcmp(st->relay_overrides[0] + 247, "...") == 0,
        "%s", st->relay_overrides[0]);
    cr_expect_str_eq(st->relay_overrides[99],
                     "transport_maps: pcre:/m99 (entries not listable)");
    cr_expect_str_eq(st->relay_overrides[100], "... and 5 more");
    pm__node_status__free_unpacked(st, NULL);
    pm_pf_status_destroy(&self);
    free(rest);
    free(list);
}

/* Kept while main.cf stays the same; a new main.cf, or an apply, is seen
 * at once. */
Test(fill, cache)
{
    s_scratch("transport_maps = pcre:/a\n");
    pm_pf_status_t *self = s_pf_status();
    Pm__NodeStatus *st = s_status_new();
    pm_pf_status_fill(self, st);
    cr_assert_eq(st->n_relay_overrides, 1);
    pm_pf_status_fill(self, st);
    cr_assert_eq(st->n_relay_overrides, 1);
    char *main_cf = pm_asprintf("queue_directory = %s\n"
                                "transport_maps = pcre:/a, pcre:/b\n",
                                s_dir);
    s_write("main.cf", main_cf);
    free(main_cf);
    pm_pf_status_fill(self, st);
    cr_expect_eq(st->n_relay_overrides, 2);
    cr_expect_eq(st->auth->state, PM__SERVICE_STATUS__STATE__DISABLED);
    /* the apply wanted AUTH, which main.cf does not have: down either way
     * (the default cyrus with or without mechanism plugins here) */
    pm_pf_status_applied(self, true, true);
    pm_pf_status_fill(self, st);
    cr_expect_eq(st->auth->state, PM__SERVICE_STATUS__STATE__DOWN, "%s",
                 st->auth->detail);
    pm__node_status__free_unpacked(st, NULL);
    pm_pf_status_destroy(&self);
}

Test(fill, postconf_fails)
{
    s_scratch("");
    char path[128];
    snprintf(path, sizeof path, "%s/main.cf", s_dir);
    cr_assert_eq(unlink(path), 0);
    pm_pf_status_t *self = s_pf_status();
    Pm__NodeStatus *st = s_status_new();
    pm_pf_status_fill(self, st);
    cr_expect_eq(st->auth->state, PM__SERVICE_STATUS__STATE__UNKNOWN);
    cr_expect(strstr(st->auth->detail, "postconf"), "%s", st->auth->detail);
    cr_expect_eq(st->n_relay_overrides, 0);
    pm__node_status__free_unpacked(st, NULL);
    pm_pf_status_destroy(&self);
}

/* A child process called master that waits for a signal (it renames
 * itself after fork returns: callers wait until /proc says so). */
static pid_t
s_fake_master(void)
{
    pid_t child = fork();
    cr_assert(child >= 0);
    if (child == 0) {
        prctl(PR_SET_NAME, "master");
        pause();
        _exit(0);
    }
    return child;
}

/* postfix_running: master.pid must name a live process called master. */
Test(fill, master_pid)
{
    s_scratch("");
    char sub[128];
    snprintf(sub, sizeof sub, "%s/pid", s_dir);
    cr_assert_eq(mkdir(sub, 0755), 0);
    pid_t child = s_fake_master();
    pm_pf_status_t *self = s_pf_status();
    Pm__NodeStatus *st = s_status_new();
    char *pid = pm_asprintf("%10ld\n", (long)getpid()); /* not master */
    s_write("pid/master.pid", pid);
    free(pid);
    pm_pf_status_fill(self, st);
    cr_expect_not(st->postfix_running);
    /* the child may not have renamed itself yet */
    pid = pm_asprintf("%10ld\n", (long)child);
    s_write("pid/master.pid", pid);
    free(pid);
    for (int i = 0; i < 100 && !st->postfix_running; i++) {
        usleep(10000);
        pm_pf_status_fill(self, st);
    }
    cr_expect(st->postfix_running);
    kill(child, SIGKILL);
    waitpid(child, NULL, 0);
    pm_pf_status_fill(self, st);
    cr_expect_not(st->postfix_running);
    pm__node_status__free_unpacked(st, NULL);
    pm_pf_status_destroy(&self);
}

/* pm_pf_reload signals only what master.pid names when it is a live
 * process called master, and says why not otherwise. */
Test(fill, reload_signals_the_master_only)
{
    s_scratch("");
    char *why = NULL;
    cr_expect_not(pm_pf_reload(s_dir, &why), "no pid file");
    cr_expect(why && strstr(why, "no master runs") && strstr(why, s_dir),
              "why: %s", why ? why : "");
    PM_FREE(&why);
    char sub[128];
    snprintf(sub, sizeof sub, "%s/pid", s_dir);
    cr_assert_eq(mkdir(sub, 0755), 0);
    char *pid = pm_asprintf("%10ld\n", (long)getpid()); /* not master */
    s_write("pid/master.pid", pid);
    free(pid);
    cr_expect_not(pm_pf_reload(s_dir, &why), "signalled a non-master");
    PM_FREE(&why);

    pid_t child = s_fake_master();
    pid = pm_asprintf("%10ld\n", (long)child);
    s_write("pid/master.pid", pid);
    free(pid);
    for (int i = 0; i < 100 && !pm_pf_master_alive(s_dir); i++)
        usleep(10000); /* the child renames itself */
    /* a "master" of another user than the pid file's is none: after a
     * crash, a local user could get the stale pid and take the name */
    char *pidfile = pm_asprintf("%s/pid/master.pid", s_dir);
    if (geteuid() == 0) {
        cr_assert_eq(chown(pidfile, 65534, (gid_t)-1), 0);
        cr_expect_not(pm_pf_master_alive(s_dir), "another user's master");
        cr_expect_not(pm_pf_reload(s_dir, &why), "signalled another user's");
        PM_FREE(&why);
        cr_assert_eq(chown(pidfile, 0, (gid_t)-1), 0);
    }
    free(pidfile);
    cr_assert(pm_pf_reload(s_dir, &why), "why: %s", why ? why : "");
    siginfo_t info = {0};
    cr_assert_eq(waitid(P_PID, (id_t)child, &info, WEXITED | WNOWAIT), 0);
    cr_expect(info.si_code == CLD_KILLED && info.si_status == SIGHUP,
              "the master got no SIGHUP");
    /* dead, not yet reaped: a zombie is no master */
    cr_expect_not(pm_pf_master_alive(s_dir), "a zombie counted as running");
    cr_expect_not(pm_pf_reload(s_dir, &why));
    PM_FREE(&why);
    cr_assert_eq(waitpid(child, NULL, 0), child);
}

/* The facts cache starts postconf only when main.cf changed: with postconf
 * out of reach (PATH emptied) a second read still answers, from the
 * cache, and once main.cf changes it reads again (and here fails). */
Test(fill, facts_read_again_only_when_main_cf_changes)
{
    s_scratch("maillog_file = /dev/stdout\n");
    pm_pf_node_cache_t *facts = pm_pf_node_cache_new(s_dir);
    pm_pf_node_t node = {0};
    char *why = NULL;
    cr_assert_eq(pm_pf_node_cache_read(facts, &node, &why), PM_OK, "%s", why);
    cr_expect_str_eq(node.maillog, "/dev/stdout");
    cr_expect_str_eq(node.queue_dir, s_dir);
    pm_pf_node_clear(&node);

    char *path = pm_strdup(getenv("PATH"));
    setenv("PATH", "/nonexistent", 1);
    cr_expect_eq(pm_pf_node_cache_read(facts, &node, &why), PM_OK, "%s", why);
    cr_expect_str_eq(node.maillog, "/dev/stdout");
    pm_pf_node_clear(&node);

    char *text =
        pm_asprintf("queue_directory = %s\nmaillog_file = /dev/null\n", s_dir);
    s_write("main.cf", text); /* in place */
    free(text);
    cr_expect_neq(pm_pf_node_cache_read(facts, &node, &why), PM_OK,
                  "main.cf changed, yet no postconf ran");
    PM_FREE(&why);
    setenv("PATH", path, 1);
    free(path);
    cr_assert_eq(pm_pf_node_cache_read(facts, &node, &why), PM_OK, "%s", why);
    cr_expect_str_eq(node.maillog, "/dev/null");
    pm_pf_node_clear(&node);
    pm_pf_node_cache_destroy(&facts);
    cr_expect_null(facts);
}
