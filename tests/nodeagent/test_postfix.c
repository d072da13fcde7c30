/* test_postfix.c - the policy on real Postfix instances.
 *
 * Apply, rollback and status run against real instances made by
 * deploy/postfix-node.sh on 127.0.0.x loopback addresses and free ports,
 * checked with postconf, swaks and smtp-sink (rendering alone is
 * test_pf_render).
 * Every instance lives under one directory made before the first test; the
 * runner destroys them all after the last one, whatever happened.
 */
#include <criterion/criterion.h>
#include <criterion/hooks.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "pm_policy.h"
#include "testpolicy.h"
#include "testsh.h"
#include "pm_pf_listener.h"
#include "pm_pf_render.h"
#include "pm_postfix.h"

#define SCRIPT PM_SOURCE_DIR "/deploy/postfix-node.sh"

/* Made by the runner before the first test; workers find it in the
 * environment. */
#define BASE_ENV "PM_TEST_POSTFIX_BASE"
static char s_base[128];

/* ------------------------------------------------------------------------
 * Helpers */

typedef struct {
    char dir[256]; /* instance directory */
    char etc[300]; /* its configuration directory */
    char name[32];
    char addr[32];
    int port;
} node_t;

/* Creates (and optionally starts) an instance NAME on ADDR. */
static void
s_base_init(void)
{
    const char *base = getenv(BASE_ENV);
    cr_assert(base, BASE_ENV " not set by the runner");
    snprintf(s_base, sizeof s_base, "%s", base);
}

static void
s_node(node_t *n, const char *name, const char *addr, bool start)
{
    s_base_init();
    snprintf(n->dir, sizeof n->dir, "%s/%s", s_base, name);
    snprintf(n->etc, sizeof n->etc, "%s/etc", n->dir);
    snprintf(n->name, sizeof n->name, "%s", name);
    snprintf(n->addr, sizeof n->addr, "%s", addr);
    n->port = testsh_free_port(addr);
    char *out = NULL;
    int rc = testsh_run(&out, "bash %s create %s %s %d %s 2>&1", SCRIPT, n->dir,
                        addr, n->port, name);
    cr_assert_eq(rc, 0, "create %s: %s", name, out);
    free(out);
    if (start) {
        rc = testsh_run(&out, "bash %s start %s 2>&1", SCRIPT, n->dir);
        cr_assert_eq(rc, 0, "start %s: %s", name, out);
        free(out);
    }
}

static char *
s_param(const node_t *n, const char *param)
{
    char *out = NULL;
    cr_assert_eq(testsh_run(&out, "postconf -c %s -h %s", n->etc, param), 0);
    out[strcspn(out, "\n")] = '\0';
    return out;
}

static void
s_expect_param(const node_t *n, const char *param, const char *want)
{
    char *got = s_param(n, param);
    cr_expect_str_eq(got, want, "%s: %s = '%s', want '%s'", n->name, param, got,
                     want);
    free(got);
}

/* swaks exit code for one message through node N. */
static int
s_swaks(const node_t *n, const char *helo, const char *from, const char *to)
{
    return testsh_run(NULL,
                      "swaks --server %s:%d --helo '%s' --from %s --to %s "
                      "--timeout 15 >/dev/null 2>&1",
                      n->addr, n->port, helo, from, to);
}

/* Local mail works with DNS off: no sender-domain lookups. */
static Pm__Policy *
s_policy(void)
{
    Pm__Policy *p = pm_policy_new();
    testpolicy_set(&p, NULL, "inbound.checks.sender_domain", "false");
    return p;
}

static pm_backend_t *
s_backend(const node_t *n)
{
    char *why = NULL;
    pm_backend_t *b = pm_postfix_new(n->etc, &why);
    cr_assert(b, "pm_postfix_new: %s", why ? why : "");
    return b;
}

static void
s_apply_ok(pm_backend_t *b, const Pm__Policy *p)
{
    char *why = NULL;
    int rc = b->apply(b, p, 1, &why);
    cr_assert_eq(rc, 0, "apply failed: %s", why ? why : "(no reason)");
    free(why);
}

static Pm__NodeStatus *
s_status_new(void)
{
    Pm__NodeStatus *st = malloc(sizeof *st);
    pm__node_status__init(st);
    return st;
}

/* ------------------------------------------------------------------------
 * Setup and teardown of every instance. */

ReportHook(PRE_ALL)(struct criterion_test_set *set)
{
    (void)set;
    snprintf(s_base, sizeof s_base, "%s", testsh_base_new("postfix", BASE_ENV));
}

ReportHook(POST_ALL)(struct criterion_global_stats *stats)
{
    (void)stats;
    testsh_base_destroy(s_base);
}

/* ------------------------------------------------------------------------
 * Backends */

Test(noop, accepts_everything_reports_nothing)
{
    pm_backend_t *b = pm_backend_noop_new();
    Pm__Policy *p = pm_policy_new();
    char *why = NULL;
    cr_assert_eq(b->apply(b, p, 7, &why), 0);
    cr_assert_null(why);
    Pm__NodeStatus st = PM__NODE_STATUS__INIT;
    b->status(b, &st);
    cr_expect_null(st.auth);
    cr_expect_eq(st.n_relay_overrides, 0);
    b->destroy(&b);
    cr_expect_null(b);
    pm_policy_free(&p);
}

Test(backend, needs_main_cf)
{
    char *why = NULL;
    pm_backend_t *b = pm_postfix_new("/nonexistent/privmta", &why);
    cr_assert_null(b);
    cr_assert(why && strstr(why, "/nonexistent/privmta/main.cf"), "%s",
              why ? why : "");
    free(why);
}

/* ------------------------------------------------------------------------
 * The node script */

Test(script, idempotent_and_clear)
{
    node_t n;
    s_node(&n, "script", "127.0.0.20", false);
    char *out = NULL;
    cr_expect_eq(testsh_run(NULL, "bash %s status %s", SCRIPT, n.dir), 1);
    cr_expect_eq(testsh_run(NULL, "bash %s start %s", SCRIPT, n.dir), 0);
    cr_expect_eq(testsh_run(NULL, "bash %s start %s", SCRIPT, n.dir), 0);
    cr_expect_eq(testsh_run(NULL, "bash %s status %s", SCRIPT, n.etc), 0);
    cr_expect_eq(testsh_run(&out, "bash %s create %s 127.0.0.20 %d 2>&1",
                            SCRIPT, n.dir, n.port),
                 1);
    cr_expect(strstr(out, "stop it first"), "%s", out);
    free(out);
    s_expect_param(&n, "myhostname", "script.test");
    s_expect_param(&n, "relay_domains", "");
    s_expect_param(&n, "smtp_dns_support_level", "disabled");
    cr_expect_eq(s_swaks(&n, "client.test", "postmaster@script.test",
                         "postmaster@script.test"),
                 0);
    cr_expect_eq(testsh_run(NULL, "bash %s stop %s", SCRIPT, n.dir), 0);
    cr_expect_eq(testsh_run(NULL, "bash %s stop %s", SCRIPT, n.dir), 0);
    cr_expect_eq(testsh_run(NULL, "bash %s status %s", SCRIPT, n.dir), 1);
    cr_expect_eq(testsh_run(NULL, "bash %s destroy %s", SCRIPT, n.dir), 0);
    cr_expect_eq(access(n.dir, F_OK), -1);
    cr_expect_eq(testsh_run(NULL, "bash %s destroy %s", SCRIPT, n.dir), 0);
    cr_expect_eq(testsh_run(&out, "bash %s create %s 127.0.0.20 99999 2>&1",
                            SCRIPT, n.dir),
                 1);
    cr_expect(strstr(out, "port"), "%s", out);
    free(out);
}

/* ------------------------------------------------------------------------
 * Apply */

/* main.cf without the lines of parameters the policy owns. */
static char *
s_unowned(const char *main_cf)
{
    char *out = calloc(1, strlen(main_cf) + 1);
    for (const char *l = main_cf; *l;) {
        size_t len = strcspn(l, "\n") + (l[strcspn(l, "\n")] == '\n');
        size_t nlen = strcspn(l, " =");
        char name[128] = "";
        if (nlen < sizeof name)
            memcpy(name, l, nlen), name[nlen] = '\0';
        if (!pm_pf_render_owns(name))
            strncat(out, l, len);
        l += len;
    }
    return out;
}

Test(apply, writes_owned_keeps_the_rest)
{
    node_t n;
    s_node(&n, "writes", "127.0.0.21", false);
    char path[512];
    snprintf(path, sizeof path, "%s/main.cf", n.etc);
    FILE *f = fopen(path, "a");
    fputs("# privmta test: keep me\nmessage_size_limit  =  12345678\n", f);
    fclose(f);
    char *before = testsh_slurp(path);
    cr_assert_not_null(before, "cannot read %s", path);

    Pm__Policy *p = s_policy();
    testpolicy_set(&p, NULL, "inbound.checks.helo_fqdn", "true");
    testpolicy_set(&p, NULL, "outbound.mynetworks",
                   "[127.0.0.0/8, 10.1.0.0/16]");
    testpolicy_set(&p, NULL, "outbound.relay_host", "\"[127.0.0.1]:2600\"");
    pm_backend_t *b = s_backend(&n);
    s_apply_ok(b, p);
    s_expect_param(&n, "mynetworks", "127.0.0.0/8 10.1.0.0/16");
    s_expect_param(&n, "relayhost", "[127.0.0.1]:2600");
    s_expect_param(&n, "smtpd_helo_restrictions",
                   "reject_invalid_helo_hostname "
                   "reject_non_fqdn_helo_hostname");
    s_expect_param(&n, "smtpd_relay_restrictions",
                   "permit_mynetworks permit_sasl_authenticated "
                   "reject_unauth_destination");
    s_expect_param(&n, "message_size_limit", "12345678");
    char *after = testsh_slurp(path);
    cr_assert_not_null(after, "cannot read %s", path);
    cr_expect(strstr(after, "# privmta test: keep me\n"
                            "message_size_limit  =  12345678\n"),
              "unowned lines changed:\n%s", after);
    char *u0 = s_unowned(before), *u1 = s_unowned(after);
    cr_expect_str_eq(u0, u1, "unowned parameters changed");
    free(u0);
    free(u1);

    /* the same policy again: nothing written (same inode, same bytes) */
    struct stat st0, st1;
    stat(path, &st0);
    s_apply_ok(b, p);
    stat(path, &st1);
    cr_expect_eq(st0.st_ino, st1.st_ino, "main.cf rewritten for nothing");
    char *again = testsh_slurp(path);
    cr_assert_not_null(again, "cannot read %s", path);
    cr_expect_str_eq(after, again);
    /* no scratch directory left behind */
    cr_expect_eq(testsh_run(NULL, "ls -a %s | grep -q privmta", n.etc), 1);
    free(again);
    free(after);
    free(before);
    b->destroy(&b);
    pm_policy_free(&p);
}

/* Debian's /etc/postfix: makedefs.out a symbolic link to a file elsewhere,
 * directories (sasl/, dynamicmaps.cf.d/). The scratch copy an apply
 * checks holds them without symbolic links, which postfix check would
 * log as "symlink leaves directory" at every apply, and goes whole. */
Test(apply, debian_layout_checked_without_warnings)
{
    node_t n;
    s_node(&n, "debian", "127.0.0.30", false);
    cr_assert_eq(
        testsh_run(NULL,
                   "echo 'made by a test' >%s/makedefs.real && "
                   "ln -s %s/makedefs.real %s/makedefs.out && "
                   "mkdir -p %s/sasl/deeper && echo x >%s/sasl/smtpd.conf",
                   n.dir, n.dir, n.etc, n.etc, n.etc),
        0);
    Pm__Policy *p = s_policy();
    testpolicy_set(&p, NULL, "inbound.checks.helo_fqdn", "true");
    pm_backend_t *b = s_backend(&n);
    s_apply_ok(b, p);
    s_expect_param(&n, "smtpd_helo_restrictions",
                   "reject_invalid_helo_hostname "
                   "reject_non_fqdn_helo_hostname");
    char *warned = NULL;
    cr_expect_eq(testsh_run(&warned,
                            "grep 'symlink leaves directory' %s/maillog",
                            n.dir),
                 1, "postfix check warned of a symbolic link:\n%s", warned);
    free(warned);
    cr_expect_eq(testsh_run(NULL, "ls -a %s | grep -q privmta", n.etc), 1,
                 "a scratch directory was left behind");
    cr_expect_eq(testsh_run(NULL,
                            "test -L %s/makedefs.out && test -f "
                            "%s/sasl/smtpd.conf && test -d %s/sasl/deeper",
                            n.etc, n.etc, n.etc),
                 0, "the live directory's own entries were touched");
    b->destroy(&b);
    pm_policy_free(&p);
}

Test(apply, helo_valid_rejects_bad_helo)
{
    node_t n;
    s_node(&n, "helo", "127.0.0.22", true);
    pm_backend_t *b = s_backend(&n);
    Pm__Policy *p = s_policy();
    s_apply_ok(b, p);
    int rc = s_swaks(&n, "bad helo!", "postmaster@helo.test",
                     "postmaster@helo.test");
    cr_expect_neq(rc, 0, "bad HELO accepted with helo_valid=true");
    cr_expect_eq(s_swaks(&n, "client.example.com", "postmaster@helo.test",
                         "postmaster@helo.test"),
                 0, "good HELO refused");
    testpolicy_set(&p, NULL, "inbound.checks.helo_valid", "false");
    s_apply_ok(b, p);
    s_expect_param(&n, "smtpd_helo_required", "no");
    cr_expect_eq(s_swaks(&n, "bad helo!", "postmaster@helo.test",
                         "postmaster@helo.test"),
                 0, "bad HELO refused with helo_valid=false");
    b->destroy(&b);
    pm_policy_free(&p);
}

/* Files smtp-sink wrote into DIR. */
static int
s_count(const char *dir)
{
    char *out = NULL;
    testsh_run(&out, "ls %s | wc -l", dir);
    int count = atoi(out);
    free(out);
    return count;
}

static bool
s_wait_count(const char *dir, int want)
{
    for (int i = 0; i < 150; i++) {
        if (s_count(dir) >= want)
            return true;
        usleep(100000);
    }
    return false;
}

Test(apply, mynetworks_controls_relaying)
{
    node_t n;
    s_node(&n, "relay", "127.0.0.23", true);
    /* the relay host: smtp-sink dumping every message into a folder */
    char sink[512], pidfile[512];
    snprintf(sink, sizeof sink, "%s/sink", s_base);
    snprintf(pidfile, sizeof pidfile, "%s/sink.pid", s_base);
    mkdir(sink, 0777);
    chmod(sink, 0777);
    int sport = testsh_free_port("127.0.0.24");
    cr_assert_eq(testsh_run(NULL,
                            "cd %s && (smtp-sink -u nobody -d %s/%%M. "
                            "127.0.0.24:%d 10 >/dev/null 2>&1 & echo $! > %s)",
                            s_base, sink, sport, pidfile),
                 0);
    usleep(300000);

    pm_backend_t *b = s_backend(&n);
    Pm__Policy *p = s_policy();
    char relay[64];
    snprintf(relay, sizeof relay, "\"[127.0.0.24]:%d\"", sport);
    testpolicy_set(&p, NULL, "outbound.relay_host", relay);
    s_apply_ok(b, p);
    cr_expect_eq(s_swaks(&n, "client.example.com", "postmaster@relay.test",
                         "someone@outside.example"),
                 0, "relaying from 127.0.0.1 refused");
    cr_expect(s_wait_count(sink, 1), "the relayed message never arrived");

    testpolicy_set(&p, NULL, "outbound.mynetworks", "[10.0.0.0/8]");
    s_apply_ok(b, p);
    int rc = s_swaks(&n, "client.example.com", "postmaster@relay.test",
                     "someone@outside.example");
    cr_expect_eq(rc, 24, "relay from outside mynetworks: swaks exit %d", rc);
    /* a final 5xx denial, not Postfix's default 4xx defer */
    char *denial = NULL;
    testsh_run(&denial,
               "swaks --server %s:%d --helo client.example.com --from "
               "postmaster@relay.test --to someone@outside.example 2>&1",
               n.addr, n.port);
    cr_expect(strstr(denial, "<** 554 5.7.1") &&
                  strstr(denial, "Relay access denied"),
              "not a clean 5xx relay denial:\n%s", denial);
    free(denial);
    /* local delivery is not relaying */
    cr_expect_eq(s_swaks(&n, "client.example.com", "other@outside.example",
                         "postmaster@relay.test"),
                 0);

    testpolicy_set(&p, NULL, "outbound.mynetworks", "[127.0.0.0/8]");
    s_apply_ok(b, p);
    cr_expect_eq(s_swaks(&n, "client.example.com", "postmaster@relay.test",
                         "again@outside.example"),
                 0, "relaying refused after mynetworks was restored");
    cr_expect(s_wait_count(sink, 2), "the second message never arrived");
    char *out = NULL;
    testsh_run(&out, "grep -l 'again@outside.example' %s/* | wc -l", sink);
    cr_expect_eq(atoi(out), 1, "second message not at the relay host");
    free(out);
    testsh_run(NULL, "kill $(cat %s)", pidfile);
    b->destroy(&b);
    pm_policy_free(&p);
}

/* outbound.relay_host "[ipv6:::1]:PORT" is valid for privmta, and for
 * postconf, `postfix check` and reload; on this ipv4-only node Postfix
 * would then defer every relayed message. Apply refuses it and leaves
 * main.cf and the running Postfix exactly as they were. */
Test(apply, node_incompatible_override_rolls_back)
{
    node_t n;
    s_node(&n, "v4only", "127.0.0.25", true);
    s_expect_param(&n, "inet_protocols", "ipv4");
    pm_backend_t *b = s_backend(&n);
    Pm__Policy *p = s_policy();
    s_apply_ok(b, p);
    char path[512];
    snprintf(path, sizeof path, "%s/main.cf", n.etc);
    char *before = testsh_slurp(path);
    cr_assert_not_null(before, "cannot read %s", path);

    testpolicy_set(&p, "v4only", "outbound.relay_host", "\"[ipv6:::1]:2526\"");
    Pm__Policy *eff = pm_policy_for_node(p, "v4only");
    pm_diag_t *diag = pm_diag_new("test");
    cr_assert_eq(pm_policy_validate(eff, diag), 0, "privmta refuses it");
    pm_diag_destroy(&diag);
    char *why = NULL;
    cr_assert_eq(b->apply(b, eff, 2, &why), -1, "apply accepted it");
    cr_assert(why && strstr(why, "inet_protocols = ipv4") &&
                  strstr(why, "[ipv6:::1]:2526"),
              "why: %s", why ? why : "");
    free(why);
    char *after = testsh_slurp(path);
    cr_assert_not_null(after, "cannot read %s", path);
    cr_expect_str_eq(before, after, "main.cf changed by a failed apply");
    cr_expect_eq(testsh_run(NULL, "postfix -c %s status 2>/dev/null", n.etc), 0,
                 "Postfix stopped");
    cr_expect_eq(s_swaks(&n, "client.example.com", "postmaster@v4only.test",
                         "postmaster@v4only.test"),
                 0, "mail broken after a failed apply");

    /* unbracketed IPv6 in mynetworks kills smtpd if written as is; the
     * renderer brackets it and mail keeps flowing */
    pm_policy_free(&eff);
    testpolicy_set(&p, "v4only", "outbound.relay_host", "\"\"");
    testpolicy_set(&p, "v4only", "outbound.mynetworks",
                   "[127.0.0.0/8, \"::1/128\"]");
    eff = pm_policy_for_node(p, "v4only");
    s_apply_ok(b, eff);
    s_expect_param(&n, "mynetworks", "127.0.0.0/8 [::1]/128");
    cr_expect_eq(s_swaks(&n, "client.example.com", "postmaster@v4only.test",
                         "postmaster@v4only.test"),
                 0);
    free(before);
    free(after);
    pm_policy_free(&eff);
    pm_policy_free(&p);
    b->destroy(&b);
}

/* A configuration every smtpd would die on (here an unowned match list
 * with an unbracketed IPv6 address, which smtpd reads as a table) is
 * refused before it reaches main.cf, and the running Postfix keeps going. */
Test(apply, smtpd_probe_refuses_broken_config)
{
    node_t n;
    s_node(&n, "probe", "127.0.0.26", true);
    cr_assert_eq(testsh_run(NULL,
                            "postconf -c %s -e "
                            "'smtpd_client_event_limit_exceptions = ::1'",
                            n.etc),
                 0);
    char path[512];
    snprintf(path, sizeof path, "%s/main.cf", n.etc);
    char *before = testsh_slurp(path);
    cr_assert_not_null(before, "cannot read %s", path);
    pm_backend_t *b = s_backend(&n);
    Pm__Policy *p = s_policy();
    char *why = NULL;
    cr_assert_eq(b->apply(b, p, 1, &why), -1);
    cr_expect(why && strstr(why, "smtpd refuses the new configuration: "
                                 "fatal: open dictionary"),
              "why: %s", why ? why : "");
    free(why);
    char *after = testsh_slurp(path);
    cr_assert_not_null(after, "cannot read %s", path);
    cr_expect_str_eq(before, after);
    cr_expect_eq(testsh_run(NULL, "postfix -c %s status 2>/dev/null", n.etc),
                 0);
    free(before);
    free(after);
    b->destroy(&b);
    pm_policy_free(&p);
}

/* `postfix check` runs until it has passed once (it checks the instance,
 * not the policy). A bad typed value an admin leaves in main.cf after that
 * is still refused before any reload: smtpd -S reads every global
 * parameter as the postfix command does. The master keeps running. */
Test(apply, bad_global_value_refused_after_first_apply)
{
    node_t n;
    s_node(&n, "typed", "127.0.0.24", true);
    pm_backend_t *b = s_backend(&n);
    Pm__Policy *p = s_policy();
    s_apply_ok(b, p);
    char *queue = s_param(&n, "queue_directory");
    cr_assert_eq(
        testsh_run(NULL, "postconf -c %s -e 'message_size_limit = 10x'", n.etc),
        0);
    char path[512];
    snprintf(path, sizeof path, "%s/main.cf", n.etc);
    char *before = testsh_slurp(path);
    cr_assert_not_null(before, "cannot read %s", path);
    testpolicy_set(&p, NULL, "inbound.checks.helo_fqdn", "true");
    char *why = NULL;
    cr_assert_eq(b->apply(b, p, 2, &why), -1, "apply accepted 10x");
    cr_expect(why && strstr(why, "smtpd refuses the new configuration: ") &&
                  strstr(why, "bad numerical configuration: "
                              "message_size_limit = 10x"),
              "why: %s", why ? why : "");
    free(why);
    char *after = testsh_slurp(path);
    cr_assert_not_null(after, "cannot read %s", path);
    cr_expect_str_eq(before, after);
    cr_expect(testsh_run(NULL, "kill -0 $(cat %s/pid/master.pid)", queue) == 0,
              "the master stopped");
    free(queue);
    /* put it right, or the master could not be told to stop */
    cr_expect_eq(
        testsh_run(NULL, "postconf -c %s -X message_size_limit", n.etc), 0);
    free(before);
    free(after);
    b->destroy(&b);
    pm_policy_free(&p);
}

/* ------------------------------------------------------------------------
 * SASL and status */

Test(status, no_sasl_backend_keeps_auth_off_and_mail_flowing)
{
    node_t n;
    s_node(&n, "nosasl", "127.0.0.27", true);
    cr_assert_eq(testsh_run(NULL,
                            "postconf -c %s -e smtpd_sasl_type=dovecot "
                            "smtpd_sasl_path=private/auth",
                            n.etc),
                 0);
    pm_backend_t *b = s_backend(&n);
    Pm__Policy *p = s_policy(); /* sasl_auth and login mismatch: true */
    s_apply_ok(b, p);
    s_expect_param(&n, "smtpd_sasl_auth_enable", "no");
    s_expect_param(&n, "smtpd_relay_restrictions",
                   "permit_mynetworks reject_unauth_destination");
    s_expect_param(&n, "smtpd_sender_restrictions", "reject_non_fqdn_sender");
    cr_expect_eq(s_swaks(&n, "client.example.com", "postmaster@nosasl.test",
                         "postmaster@nosasl.test"),
                 0, "mail broken on a node without SASL");
    Pm__NodeStatus *st = s_status_new();
    b->status(b, st);
    cr_expect(st->postfix_running);
    cr_assert(st->auth);
    cr_expect_eq(st->auth->state, PM__SERVICE_STATUS__STATE__DOWN);
    cr_expect(strstr(st->auth->detail, "no SASL backend: smtpd_sasl_type "
                                       "dovecot cannot connect to"),
              "%s", st->auth->detail);
    cr_assert(st->antispam && st->antivirus && st->dkim);
    cr_expect_eq(st->dkim->state, PM__SERVICE_STATUS__STATE__UNKNOWN);
    cr_expect_str_eq(st->antivirus->detail, "not reported yet");
    pm__node_status__free_unpacked(st, NULL);
    b->destroy(&b);
    pm_policy_free(&p);
}

Test(status, cyrus_with_login_maps)
{
    node_t n;
    s_node(&n, "cyrus", "127.0.0.28", true);
    cr_assert_eq(
        testsh_run(
            NULL,
            "printf 'postmaster@cyrus.test postmaster\\n' > %s/logins && "
            "postconf -c %s -e smtpd_sasl_type=cyrus "
            "smtpd_sender_login_maps=texthash:%s/logins",
            n.etc, n.etc, n.etc),
        0);
    pm_backend_t *b = s_backend(&n);
    Pm__Policy *p = s_policy();
    testpolicy_set(&p, NULL, "outbound.tls_auth_only", "false");
    s_apply_ok(b, p);
    s_expect_param(&n, "smtpd_sasl_auth_enable", "yes");
    s_expect_param(&n, "smtpd_sender_restrictions",
                   "reject_sender_login_mismatch reject_non_fqdn_sender");
    char *out = NULL;
    testsh_run(&out, "swaks --server %s:%d --quit-after EHLO 2>&1", n.addr,
               n.port);
    cr_expect(strstr(out, "250-AUTH"), "AUTH not offered:\n%s", out);
    free(out);
    cr_expect_eq(s_swaks(&n, "client.example.com", "other@elsewhere.example",
                         "postmaster@cyrus.test"),
                 0);
    Pm__NodeStatus *st = s_status_new();
    b->status(b, st);
    cr_assert(st->auth);
    cr_expect_eq(st->auth->state, PM__SERVICE_STATUS__STATE__OK, "%s",
                 st->auth->detail);
    /* AUTH only after STARTTLS on a node without TLS: nobody can log in */
    testpolicy_set(&p, NULL, "outbound.tls_auth_only", "true");
    s_apply_ok(b, p);
    b->status(b, st);
    cr_expect_eq(st->auth->state, PM__SERVICE_STATUS__STATE__DEGRADED);
    cr_expect(strstr(st->auth->detail, "STARTTLS"), "%s", st->auth->detail);
    pm__node_status__free_unpacked(st, NULL);
    b->destroy(&b);
    pm_policy_free(&p);
}

Test(status, relay_overrides_listed)
{
    node_t n;
    s_node(&n, "maps", "127.0.0.29", false);
    cr_assert_eq(
        testsh_run(
            NULL,
            "printf 'example.com smtp:[10.0.0.1]\\nkeep.test smtp:\\n' > "
            "%s/transport && printf 'user@example.org [10.0.0.2]:587\\n' > "
            "%s/sdrh && postmap -c %s hash:%s/sdrh && postconf -c %s -e "
            "'transport_maps = texthash:%s/transport, pcre:%s/x.pcre' "
            "'sender_dependent_relayhost_maps = hash:%s/sdrh'",
            n.etc, n.etc, n.etc, n.etc, n.etc, n.etc, n.etc, n.etc),
        0);
    pm_backend_t *b = s_backend(&n);
    Pm__NodeStatus *st = s_status_new();
    b->status(b, st);
    cr_expect_not(st->postfix_running);
    cr_assert_eq(st->n_relay_overrides, 3);
    cr_expect_str_eq(st->relay_overrides[0],
                     "transport_maps: example.com -> smtp:[10.0.0.1]");
    cr_expect(strstr(st->relay_overrides[1], "(entries not listable)"), "%s",
              st->relay_overrides[1]);
    cr_expect_str_eq(st->relay_overrides[2],
                     "sender_dependent_relayhost_maps: user@example.org -> "
                     "[10.0.0.2]:587");
    pm__node_status__free_unpacked(st, NULL);
    b->destroy(&b);
}

/* ------------------------------------------------------------------------
 * The listener privmta-milter's notifications come back through
 * (pm_pf_listener) */

Test(listener, addresses_checked)
{
    const char *good[] = {"127.0.0.1:10026", "[::1]:10026", "10.1.2.3:25"};
    const char *bad[] = {"localhost:10026",
                         "127.0.0.1",
                         "127.0.0.1:0",
                         "127.0.0.1:65536",
                         "::1:10026",
                         "127.0.0.1:x",
                         ":25",
                         "[127.0.0.1:25",
                         ""};
    for (size_t i = 0; i < sizeof good / sizeof *good; i++) {
        char *why = NULL;
        cr_expect_eq(pm_pf_listener_check(good[i], &why), PM_OK, "%s: %s",
                     good[i], why ? why : "");
        free(why);
    }
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char *why = NULL;
        cr_expect_eq(pm_pf_listener_check(bad[i], &why), PM_EINVAL,
                     "\"%s\" accepted", bad[i]);
        cr_expect(why && strstr(why, "not a numeric address and port"), "%s",
                  why ? why : "(no why)");
        free(why);
    }
}

/* N's master.cf entry for the inet service ADDR (postconf -M), "" if none */
static char *
s_master_entry(const node_t *n, const char *addr)
{
    char *out = NULL;
    cr_assert_eq(
        testsh_run(&out, "postconf -c %s -M %s/inet 2>/dev/null", n->etc, addr),
        0);
    out[strcspn(out, "\n")] = '\0';
    return out;
}

/* true once an SMTP server greets on ADDR:PORT (within 5 s) */
static bool
s_greets(const char *addr, int port)
{
    for (int i = 0; i < 50; i++) {
        if (testsh_run(NULL,
                       "bash -c 'exec 3<>/dev/tcp/%s/%d && head -c 3 <&3' "
                       "2>/dev/null | grep -q 220",
                       addr, port) == 0)
            return true;
        usleep(100 * 1000);
    }
    return false;
}

#define S_NO_MILTERS                                                           \
    "smtpd -o smtpd_milters= -o non_smtpd_milters= "                           \
    "-o receive_override_options=no_milters"

Test(apply, notify_listener_added_once)
{
    node_t n;
    s_node(&n, "notify", "127.0.0.32", true);
    char addr[64];
    int port = testsh_free_port(n.addr);
    snprintf(addr, sizeof addr, "%s:%d", n.addr, port);
    pm_backend_t *b = s_backend(&n);
    pm_postfix_set_notify_listener(b, addr);
    Pm__Policy *p = s_policy();
    s_apply_ok(b, p);
    char *entry = s_master_entry(&n, addr);
    cr_expect(strstr(entry, S_NO_MILTERS), "master.cf: '%s'", entry);
    free(entry);
    cr_expect(s_greets(n.addr, port), "Postfix was not reloaded with it");
    /* another apply, then an agent restarted: still one entry */
    testpolicy_set(&p, NULL, "inbound.checks.helo_fqdn", "true");
    s_apply_ok(b, p);
    b->destroy(&b);
    b = s_backend(&n);
    pm_postfix_set_notify_listener(b, addr);
    s_apply_ok(b, p);
    char *count = NULL;
    testsh_run(&count, "grep -c '^%s ' %s/master.cf", addr, n.etc);
    cr_expect_str_eq(count, "1\n", "entries for %s in master.cf", addr);
    free(count);
    b->destroy(&b);
    pm_policy_free(&p);
}

Test(apply, notify_listener_admin_entry_kept)
{
    node_t n;
    s_node(&n, "notifyown", "127.0.0.33", false);
    char addr[64];
    snprintf(addr, sizeof addr, "%s:%d", n.addr, testsh_free_port(n.addr));
    cr_assert_eq(testsh_run(NULL,
                            "postconf -c %s -M '%s/inet=%s inet n - n - - "
                            "smtpd -o smtpd_banner=admins'",
                            n.etc, addr, addr),
                 0);
    char *before = s_master_entry(&n, addr);
    pm_backend_t *b = s_backend(&n);
    pm_postfix_set_notify_listener(b, addr);
    Pm__Policy *p = s_policy();
    s_apply_ok(b, p);
    char *after = s_master_entry(&n, addr);
    cr_expect_str_eq(after, before, "the admin's entry was changed");
    free(before);
    free(after);
    b->destroy(&b);
    pm_policy_free(&p);
}

Test(apply, notify_listener_busy_address_not_added)
{
    node_t n;
    s_node(&n, "notifybusy", "127.0.0.34", true);
    int port = testsh_free_port(n.addr);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
    inet_pton(AF_INET, n.addr, &sa.sin_addr);
    cr_assert(fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0 &&
              listen(fd, 1) == 0);
    char addr[64];
    snprintf(addr, sizeof addr, "%s:%d", n.addr, port);
    pm_backend_t *b = s_backend(&n);
    pm_postfix_set_notify_listener(b, addr);
    Pm__Policy *p = s_policy();
    testpolicy_set(&p, NULL, "inbound.checks.helo_fqdn", "true");
    s_apply_ok(b, p); /* the policy is applied all the same */
    s_expect_param(&n, "smtpd_helo_restrictions",
                   "reject_invalid_helo_hostname "
                   "reject_non_fqdn_helo_hostname");
    char *entry = s_master_entry(&n, addr);
    cr_expect_str_eq(entry, "", "added although the address was in use");
    free(entry);
    cr_expect_eq(testsh_run(NULL, "postfix -c %s status 2>/dev/null", n.etc), 0,
                 "Postfix stopped");
    close(fd);
    b->destroy(&b);
    pm_policy_free(&p);
}
