/* test_restart.c - one step of a rolling restart on a real Postfix.
 *
 * pm_restart runs against real instances made by deploy/postfix-node.sh
 * on 127.0.0.9x loopback addresses and free ports, seen from outside the
 * way a client sees them (plain SMTP over TCP); the agent's part (an
 * order carried out once, its state kept across an agent's death) runs a
 * pm_agent actor against a fake controller on a ROUTER socket. Every
 * instance lives under one directory made before the first test; the
 * runner destroys them all after the last one, whatever happened.
 */
#include <criterion/criterion.h>
#include <criterion/hooks.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fakectl.h"
#include "pm_agent.h"
#include "pm_error.h"
#include "pm_file.h"
#include "pm_mem.h"
#include "pm_policy.h"
#include "pm_handoff.h"
#include "pm_restart.h"
#include "pm_svcprobe.h"
#include "pm_wire.h"
#include "testsh.h"

#define SCRIPT PM_SOURCE_DIR "/deploy/postfix-node.sh"
#define BASE_ENV "PM_TEST_RESTART_BASE"
#define S_WAIT_MS 40000 /* give up on something that should happen */

static char s_base[128];

/* ------------------------------------------------------------------------
 * Helpers */

static void
s_base_init(void)
{
    const char *base = getenv(BASE_ENV);
    cr_assert(base, BASE_ENV " not set by the runner");
    snprintf(s_base, sizeof s_base, "%s", base);
}

typedef struct {
    char dir[256];     /* instance directory */
    char etc[300];     /* its configuration directory */
    char main_cf[320]; /* etc/main.cf */
    char journal[300]; /* where the restart keeps the drain's originals */
    char addr[32];
    int port;
} node_t;

/* A started instance NAME on ADDR whose main.cf sets
 * smtpd_client_restrictions and leaves smtpd_delay_reject to its default:
 * a restart must put back one by postconf -e and remove the other. */
static void
s_node(node_t *n, const char *name, const char *addr)
{
    s_base_init();
    snprintf(n->dir, sizeof n->dir, "%s/%s", s_base, name);
    snprintf(n->etc, sizeof n->etc, "%s/etc", n->dir);
    snprintf(n->main_cf, sizeof n->main_cf, "%s/main.cf", n->etc);
    snprintf(n->journal, sizeof n->journal, "%s/%s.journal", s_base, name);
    snprintf(n->addr, sizeof n->addr, "%s", addr);
    n->port = testsh_free_port(addr);
    char *out = NULL;
    int rc =
        testsh_run(&out,
                   "bash %s create %s %s %d %s 2>&1 && postconf -c %s -e "
                   "'smtpd_client_restrictions = permit_mynetworks, permit' "
                   "2>&1 && bash %s start %s 2>&1",
                   SCRIPT, n->dir, addr, n->port, name, n->etc, SCRIPT, n->dir);
    cr_assert_eq(rc, 0, "node %s: %s", name, out);
    free(out);
}

static pm_restart_config_t
s_config(const node_t *n)
{
    return (pm_restart_config_t){
        .postfix_dir = n->etc, .journal = n->journal, .gate_ms = 20000};
}

/* ------------------------------------------------------------------------
 * A plain SMTP client */

/* Connected to N, with 10 s receive timeouts. */
static int
s_connect(const node_t *n)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)n->port)};
    inet_pton(AF_INET, n->addr, &sa.sin_addr);
    struct timeval tv = {.tv_sec = 10};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    cr_assert_eq(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0,
                 "connect %s:%d", n->addr, n->port);
    return fd;
}

/* The final line of the next reply on FD (static buffer), "" on EOF. */
static const char *
s_reply(int fd)
{
    static char line[512];
    size_t len = 0;
    for (;;) {
        char c;
        if (recv(fd, &c, 1, 0) != 1) {
            line[len] = '\0';
            return len ? line : "";
        }
        if (c == '\n') {
            line[len] = '\0';
            if (len >= 4 && line[3] == '-') { /* a continuation */
                len = 0;
                continue;
            }
            line[strcspn(line, "\r")] = '\0';
            return line;
        }
        if (len + 1 < sizeof line)
            line[len++] = c;
    }
}

/* Sends LINE and expects a reply starting with CODE. */
static void
s_cmd(int fd, const char *line, const char *code)
{
    char buf[600];
    snprintf(buf, sizeof buf, "%s\r\n", line);
    cr_assert_eq(send(fd, buf, strlen(buf), MSG_NOSIGNAL),
                 (ssize_t)strlen(buf));
    const char *r = s_reply(fd);
    cr_assert(strncmp(r, code, 3) == 0, "%s: want %s, got \"%s\"", line, code,
              r);
}

/* A session up to RCPT: what a drain must let finish. */
static int
s_session_to_rcpt(const node_t *n)
{
    int fd = s_connect(n);
    const char *g = s_reply(fd);
    cr_assert(strncmp(g, "220", 3) == 0, "greeting: %s", g);
    s_cmd(fd, "EHLO client.test", "250");
    s_cmd(fd, "MAIL FROM:<sender@client.test>", "250");
    s_cmd(fd, "RCPT TO:<postmaster@localhost>", "250");
    return fd;
}

/* Connects to N until the greeting starts with CODE or WAIT_MS pass;
 * sessions greeted otherwise are quit at once. Returns the last greeting
 * (static). */
static const char *
s_greeting_until(const node_t *n, const char *code, int wait_ms)
{
    int64_t deadline = zclock_mono() + wait_ms;
    for (;;) {
        int fd = s_connect(n);
        const char *g = s_reply(fd);
        (void)send(fd, "QUIT\r\n", 6, MSG_NOSIGNAL);
        close(fd);
        if (strncmp(g, code, 3) == 0 || zclock_mono() > deadline)
            return g;
        zclock_sleep(50);
    }
}

/* ------------------------------------------------------------------------
 * Running a restart */

typedef struct {
    char phases[128]; /* the phases reported while it ran, "drain,..." */
    Pm__RestartResult *done;
} run_t;

/* Reads the actor's STATUS events until PHASE (NULL: the end) or S_WAIT_MS.
 * True when it came. */
static bool
s_events(zactor_t *a, run_t *run, const char *phase)
{
    int64_t deadline = zclock_mono() + S_WAIT_MS;
    zpoller_t *p = zpoller_new(a, NULL);
    bool seen = false;
    while (!seen && !run->done && zclock_mono() < deadline) {
        if (!zpoller_wait(p, 200))
            continue;
        char *cmd = NULL;
        uint8_t *buf = NULL;
        size_t len = 0;
        cr_assert_eq(zsock_recv(a, "sb", &cmd, &buf, &len), 0);
        cr_assert_str_eq(cmd, "STATUS");
        Pm__RestartResult *r = pm__restart_result__unpack(NULL, len, buf);
        cr_assert(r);
        if (r->done) {
            run->done = r;
        } else {
            size_t at = strlen(run->phases);
            snprintf(run->phases + at, sizeof run->phases - at, "%s%s",
                     at ? "," : "", r->phase);
            seen = phase && strcmp(r->phase, phase) == 0;
            pm__restart_result__free_unpacked(r, NULL);
        }
        free(cmd);
        free(buf);
    }
    zpoller_destroy(&p);
    return seen || (!phase && run->done);
}

static Pm__RestartOrder
s_order(uint64_t rollout, const char *service, int64_t drain_ms)
{
    Pm__RestartOrder o = PM__RESTART_ORDER__INIT;
    o.rollout = rollout;
    o.service = (char *)service;
    o.drain_ms = drain_ms;
    return o;
}

/* Carries out ORDER with CFG to its end; caller frees the result. */
static Pm__RestartResult *
s_restart(const pm_restart_config_t *cfg, Pm__RestartOrder order, run_t *run)
{
    memset(run, 0, sizeof *run);
    zactor_t *a = pm_restart_new(cfg, &order);
    cr_assert(a);
    cr_assert(s_events(a, run, NULL), "no result; phases %s", run->phases);
    zactor_destroy(&a);
    cr_expect_eq(run->done->rollout, order.rollout);
    cr_expect_gt(run->done->at, 0);
    return run->done;
}

static void
s_expect_same_main_cf(const node_t *n, const char *before)
{
    char *after = testsh_slurp(n->main_cf);
    cr_expect_str_eq(after, before, "main.cf changed:\n%s\nwas:\n%s", after,
                     before);
    free(after);
    cr_expect_eq(access(n->journal, F_OK), -1, "journal left behind");
}

/* A unix socket that accepts connections (the kernel's backlog does). */
static int
s_listen_unix(const char *path)
{
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    snprintf(sun.sun_path, sizeof sun.sun_path, "%s", path);
    unlink(path);
    cr_assert_eq(bind(fd, (struct sockaddr *)&sun, sizeof sun), 0);
    cr_assert_eq(listen(fd, 16), 0);
    return fd;
}

/* ------------------------------------------------------------------------
 * Setup and teardown of every instance. */

ReportHook(PRE_ALL)(struct criterion_test_set *set)
{
    (void)set;
    snprintf(s_base, sizeof s_base, "%s", testsh_base_new("restart", BASE_ENV));
}

ReportHook(POST_ALL)(struct criterion_global_stats *stats)
{
    (void)stats;
    testsh_base_destroy(s_base);
}

/* ------------------------------------------------------------------------
 * Postfix */

/* "all": the drain, the milter's command, Postfix, both gated. */
Test(restart, drain_lets_sessions_finish_and_refuses_new)
{
    node_t n;
    s_node(&n, "drain", "127.0.0.91");
    char *before = testsh_slurp(n.main_cf);
    char path[256], sock[300], cmd[300], ran[256];
    snprintf(path, sizeof path, "%s/drain-milter.sock", s_base);
    snprintf(sock, sizeof sock, "unix:%s", path);
    snprintf(ran, sizeof ran, "%s/drain-milter-restarted", s_base);
    snprintf(cmd, sizeof cmd, "touch %s", ran);
    int milter = s_listen_unix(path);
    int old = s_session_to_rcpt(&n);

    pm_restart_config_t cfg = s_config(&n);
    cfg.milter_socket = sock;
    cfg.milter_restart = cmd;
    Pm__RestartOrder order = s_order(1, "all", 30000);
    run_t run = {0};
    zactor_t *a = pm_restart_new(&cfg, &order);
    cr_assert(s_events(a, &run, "drain"), "phases %s", run.phases);
    const char *g = s_greeting_until(&n, "421", 10000);
    cr_expect(strncmp(g, "421 4.3.2 ", 10) == 0, "a new session got \"%s\"", g);
    cr_expect_eq(access(n.journal, F_OK), 0, "no journal while drained");

    /* the session opened before the drain still delivers, and the drain
     * waits for it to end */
    s_cmd(old, "DATA", "354");
    s_cmd(old, "Subject: in flight\r\n\r\nsent before the drain\r\n.", "250");
    cr_expect_not(zsock_events(zactor_sock(a)) & ZMQ_POLLIN,
                  "went on while a session was open");
    s_cmd(old, "QUIT", "221");
    close(old);

    cr_assert(s_events(a, &run, NULL), "no result; phases %s", run.phases);
    zactor_destroy(&a);
    Pm__RestartResult *r = run.done;
    cr_expect(r->ok, "failed in %s: %s", r->phase, r->error);
    cr_expect_str_eq(r->phase, "gate");
    cr_expect_str_eq(r->error, "");
    cr_expect_eq(r->rollout, 1);
    cr_expect_str_eq(run.phases, "drain,restart,gate");
    cr_expect_eq(access(ran, F_OK), 0, "milter_restart did not run");
    g = s_greeting_until(&n, "220", 5000);
    cr_expect(strncmp(g, "220", 3) == 0, "after the restart: \"%s\"", g);
    s_expect_same_main_cf(&n, before);
    pm__restart_result__free_unpacked(r, NULL);
    free(before);
    close(milter);
}

/* postfix_restart: Postfix restarted by that command (as systemd would),
 * the drain's values back before it, nothing else changed. */
Test(restart, postfix_restart_command_replaces_stop_and_start)
{
    node_t n;
    s_node(&n, "pfcmd", "127.0.0.89");
    char *before = testsh_slurp(n.main_cf);
    char script[256], ran[256], cmd[1024];
    snprintf(script, sizeof script, "%s/pf-restart.sh", s_base);
    snprintf(ran, sizeof ran, "%s/pf-restart.ran", s_base);
    FILE *f = fopen(script, "w");
    cr_assert_not_null(f);
    /* what it sees: main.cf already without the drain */
    fprintf(f, "#!/bin/sh\n"
               "postconf -c \"$1\" -h smtpd_client_restrictions > \"$2\"\n"
               "postfix -c \"$1\" stop && postfix -c \"$1\" start\n");
    fclose(f);
    cr_assert_eq(chmod(script, 0755), 0);
    snprintf(cmd, sizeof cmd, "%s %s %s", script, n.etc, ran);
    pm_restart_config_t cfg = s_config(&n);
    cfg.postfix_restart = cmd;
    run_t run;
    Pm__RestartResult *r = s_restart(&cfg, s_order(21, "postfix", 5000), &run);
    cr_expect(r->ok, "failed in %s: %s", r->phase, r->error);
    char *seen = testsh_slurp(ran);
    cr_expect(!strstr(seen, "privmta_drain"),
              "the command ran on the drained main.cf: %s", seen);
    free(seen);
    const char *g = s_greeting_until(&n, "220", 5000);
    cr_expect(strncmp(g, "220", 3) == 0, "after the restart: \"%s\"", g);
    s_expect_same_main_cf(&n, before);
    cr_expect_eq(access(n.journal, F_OK), -1, "the journal outlived it");
    pm__restart_result__free_unpacked(r, NULL);

    /* a command that fails fails the order, naming the parameter, and
     * Postfix runs on its own configuration again: greeting, not 421 */
    cfg.postfix_restart = "false";
    r = s_restart(&cfg, s_order(22, "postfix", 5000), &run);
    cr_expect_not(r->ok);
    cr_expect_str_eq(r->phase, "restart");
    cr_expect(strstr(r->error, "postfix_restart (false)"), "%s", r->error);
    s_expect_same_main_cf(&n, before);
    g = s_greeting_until(&n, "220", 5000);
    cr_expect(strncmp(g, "220", 3) == 0, "after the failure: \"%s\"", g);
    pm__restart_result__free_unpacked(r, NULL);
    free(before);
}

Test(restart, term_mid_drain_leaves_postfix_undrained)
{
    node_t n;
    s_node(&n, "term", "127.0.0.92");
    char *before = testsh_slurp(n.main_cf);
    int old = s_session_to_rcpt(&n); /* keeps the drain waiting */

    pm_restart_config_t cfg = s_config(&n);
    Pm__RestartOrder order = s_order(2, "postfix", 600000);
    run_t run = {0};
    zactor_t *a = pm_restart_new(&cfg, &order);
    cr_assert(s_events(a, &run, "drain"), "phases %s", run.phases);
    const char *g = s_greeting_until(&n, "421", 10000);
    cr_assert(strncmp(g, "421", 3) == 0, "not drained: \"%s\"", g);

    int64_t t0 = zclock_mono();
    zactor_destroy(&a);
    int64_t took = zclock_mono() - t0;
    cr_expect_lt(took, 10000, "$TERM took %lld ms", (long long)took);
    g = s_greeting_until(&n, "220", 5000);
    cr_expect(strncmp(g, "220", 3) == 0, "still drained: \"%s\"", g);
    s_expect_same_main_cf(&n, before);
    s_cmd(old, "QUIT", "221");
    close(old);
    free(before);
}

/* Test hook: a master.cf that postfix start refuses. */
static bool
s_break_master_cf(const char *step, void *arg)
{
    if (strcmp(step, "start") == 0) {
        FILE *f = fopen(arg, "a");
        fputs("broken-by-test-restart\n", f);
        fclose(f);
    }
    return false;
}

/* Both failures on one instance (each instance costs seconds): the result
 * names the phase and the reason, main.cf is as it was. */
Test(restart, failures_name_the_phase_and_undo_the_drain)
{
    node_t n;
    s_node(&n, "fail", "127.0.0.93");
    char *before = testsh_slurp(n.main_cf);
    char sock[300], master[320];
    snprintf(sock, sizeof sock, "unix:%s/no-milter.sock", s_base);
    snprintf(master, sizeof master, "%s/master.cf", n.etc);

    /* a dead milter: Postfix restarted, the gate fails */
    pm_restart_config_t cfg = s_config(&n);
    cfg.milter_socket = sock;
    cfg.gate_ms = 1500;
    run_t run;
    Pm__RestartResult *r = s_restart(&cfg, s_order(3, "postfix", 5000), &run);
    cr_expect_not(r->ok);
    cr_expect_str_eq(r->phase, "gate");
    cr_expect(strstr(r->error, "milter unix:") &&
                  strstr(r->error, "No such file or directory"),
              "%s", r->error);
    const char *g = s_greeting_until(&n, "220", 5000);
    cr_expect(strncmp(g, "220", 3) == 0, "Postfix left down: \"%s\"", g);
    s_expect_same_main_cf(&n, before);
    pm__restart_result__free_unpacked(r, NULL);

    /* a Postfix that cannot start */
    cfg = s_config(&n);
    cfg.test_hook = s_break_master_cf;
    cfg.test_arg = master;
    r = s_restart(&cfg, s_order(4, "postfix", 5000), &run);
    cr_expect_not(r->ok);
    cr_expect_str_eq(r->phase, "restart");
    cr_expect(strstr(r->error, "postfix start: exit 1") &&
                  strstr(r->error, "master.cf"),
              "%s", r->error);
    s_expect_same_main_cf(&n, before); /* the drain undone all the same */
    pm__restart_result__free_unpacked(r, NULL);
    free(before);
}

/* The gate's probe: a milter that takes connections but never answers
 * makes Postfix tempfail every message (milter_default_action), and the
 * gate fails naming the probe; the token is gone afterwards. A milter
 * that answers and discards is the cluster test's (tests/integration). */
Test(restart, probe_fails_when_mail_cannot_pass)
{
    node_t n;
    s_node(&n, "probe", "127.0.0.94");
    char path[256], sock[300], handoff[256], key[300];
    snprintf(path, sizeof path, "%s/mute-milter.sock", s_base);
    snprintf(sock, sizeof sock, "unix:%s", path);
    snprintf(handoff, sizeof handoff, "%s/probe-handoff", s_base);
    snprintf(key, sizeof key, "%s/%s", handoff, PM_HANDOFF_PROBE);
    cr_assert_eq(mkdir(handoff, 0750), 0);
    int milter = s_listen_unix(path);
    char *out = NULL;
    cr_assert_eq(testsh_run(&out,
                            "postconf -c %s -e 'smtpd_milters = %s' "
                            "'milter_default_action = tempfail' "
                            "'milter_connect_timeout = 1s' "
                            "'milter_command_timeout = 1s' 2>&1 && "
                            "postfix -c %s reload 2>&1",
                            n.etc, sock, n.etc),
                 0, "%s", out);
    free(out);

    pm_restart_config_t cfg = s_config(&n);
    cfg.milter_socket = sock;
    cfg.milter_restart = "true";
    cfg.probe_dir = handoff;
    cfg.probe_gid = -1;
    cfg.gate_ms = 4000;
    run_t run;
    Pm__RestartResult *r = s_restart(&cfg, s_order(11, "milter", 0), &run);
    cr_expect_not(r->ok, "mail cannot pass, yet the gate passed");
    cr_expect_str_eq(r->phase, "gate");
    cr_expect(strstr(r->error, "probe through 127.0.0.94:") &&
                  strstr(r->error, "rejected: 4"),
              "%s", r->error);
    cr_expect_eq(access(key, F_OK), -1, "the token outlived the probe");
    pm__restart_result__free_unpacked(r, NULL);

    /* a canary push's probe order: nothing restarted (milter_restart would
     * fail), only the gate, which fails the same way */
    cfg.milter_restart = "false";
    r = s_restart(&cfg, s_order(13, PM_WIRE_SERVICE_PROBE, 0), &run);
    cr_expect_not(r->ok);
    cr_expect_str_eq(r->phase, "gate");
    cr_expect(strstr(r->error, "probe through 127.0.0.94:"), "%s", r->error);
    pm__restart_result__free_unpacked(r, NULL);
    cfg.milter_restart = "true";

    /* without a handoff directory there is no probe: the gate passes */
    cfg.probe_dir = NULL;
    r = s_restart(&cfg, s_order(12, "milter", 0), &run);
    cr_expect(r->ok, "failed in %s: %s", r->phase, r->error);
    pm__restart_result__free_unpacked(r, NULL);
    close(milter);
}

/* A service that sets its own client restrictions in master.cf (as a
 * submission service does) is drained too, and master.cf comes back byte
 * for byte. */
Test(restart, drain_covers_services_with_their_own_restrictions)
{
    node_t n;
    s_node(&n, "submission", "127.0.0.98");
    node_t sub = n;
    sub.port = testsh_free_port(n.addr);
    char *out = NULL;
    cr_assert_eq(testsh_run(&out,
                            "postconf -c %s -M '%s:%d/inet=%s:%d inet n - n "
                            "- - smtpd -o syslog_name=postfix/submission -o "
                            "smtpd_client_restrictions=permit_mynetworks,"
                            "permit -o smtpd_delay_reject=yes' 2>&1 && "
                            "postfix -c %s reload 2>&1",
                            n.etc, n.addr, sub.port, n.addr, sub.port, n.etc),
                 0, "%s", out);
    free(out);
    const char *g = s_greeting_until(&sub, "220", 10000);
    cr_assert(strncmp(g, "220", 3) == 0, "the service does not greet: %s", g);
    char master_cf[340], kept[320];
    snprintf(master_cf, sizeof master_cf, "%s/master.cf", n.etc);
    snprintf(kept, sizeof kept, "%s.master", n.journal);
    char *before = testsh_slurp(n.main_cf);
    char *master_before = testsh_slurp(master_cf);
    int old = s_session_to_rcpt(&n); /* keeps the drain waiting */

    pm_restart_config_t cfg = s_config(&n);
    Pm__RestartOrder order = s_order(8, "postfix", 30000);
    run_t run = {0};
    zactor_t *a = pm_restart_new(&cfg, &order);
    cr_assert(s_events(a, &run, "drain"), "phases %s", run.phases);
    g = s_greeting_until(&sub, "421", 10000);
    cr_expect(strncmp(g, "421 4.3.2 ", 10) == 0,
              "the service with its own restrictions greeted \"%s\"", g);
    g = s_greeting_until(&n, "421", 10000);
    cr_expect(strncmp(g, "421 4.3.2 ", 10) == 0, "smtpd greeted \"%s\"", g);
    cr_expect_eq(access(kept, F_OK), 0, "master.cf not kept while drained");
    s_cmd(old, "QUIT", "221");
    close(old);

    cr_assert(s_events(a, &run, NULL), "no result; phases %s", run.phases);
    zactor_destroy(&a);
    cr_expect(run.done->ok, "failed in %s: %s", run.done->phase,
              run.done->error);
    g = s_greeting_until(&sub, "220", 5000);
    cr_expect(strncmp(g, "220", 3) == 0, "after the restart: \"%s\"", g);
    char *master_after = testsh_slurp(master_cf);
    cr_expect_str_eq(master_after, master_before, "master.cf changed");
    cr_expect_eq(access(kept, F_OK), -1, "master.cf copy left behind");
    s_expect_same_main_cf(&n, before);
    pm__restart_result__free_unpacked(run.done, NULL);
    free(master_after);
    free(master_before);
    free(before);
}

static atomic_int s_killed;

/* Test hook: the agent dies right after postfix stop. */
static bool
s_die_when_stopped(const char *step, void *arg)
{
    (void)arg;
    if (strcmp(step, "stopped") != 0)
        return false;
    atomic_store(&s_killed, 1);
    return true;
}

Test(restart, recover_after_the_agent_died_mid_restart)
{
    node_t n;
    s_node(&n, "recover", "127.0.0.95");
    char *before = testsh_slurp(n.main_cf);
    pm_restart_config_t cfg = s_config(&n);
    cfg.test_hook = s_die_when_stopped;
    Pm__RestartOrder order = s_order(5, "postfix", 5000);
    zactor_t *a = pm_restart_new(&cfg, &order);
    int64_t deadline = zclock_mono() + S_WAIT_MS;
    while (!atomic_load(&s_killed) && zclock_mono() < deadline)
        zclock_sleep(20);
    cr_assert(atomic_load(&s_killed), "never reached postfix stop");
    zactor_destroy(&a);
    /* as a killed agent leaves it: stopped, drained, journal kept */
    cr_assert_neq(testsh_run(NULL, "postfix -c %s status 2>/dev/null", n.etc),
                  0);
    char *drained = testsh_slurp(n.main_cf);
    cr_expect(strstr(drained, "smtpd_delay_reject = no"), "%s", drained);
    free(drained);
    cr_assert_eq(access(n.journal, F_OK), 0);

    bool acted = false;
    char *why = NULL;
    cfg.test_hook = NULL;
    cr_assert_eq(pm_restart_recover(&cfg, &acted, &why), PM_OK, "%s", why);
    cr_expect(acted);
    const char *g = s_greeting_until(&n, "220", 10000);
    cr_expect(strncmp(g, "220", 3) == 0, "not back: \"%s\"", g);
    s_expect_same_main_cf(&n, before);
    cr_assert_eq(pm_restart_recover(&cfg, &acted, &why), PM_OK, "%s", why);
    cr_expect_not(acted, "a second recovery found a journal");
    free(before);
}

/* ------------------------------------------------------------------------
 * The milter, and what a node lacks */

Test(restart, milter_command_then_gate)
{
    s_base_init();
    char path[256], sock[300], cmd[300], ran[256];
    snprintf(path, sizeof path, "%s/milter-ok.sock", s_base);
    snprintf(sock, sizeof sock, "unix:%s", path);
    snprintf(ran, sizeof ran, "%s/milter-restarted", s_base);
    snprintf(cmd, sizeof cmd, "  touch\t%s ", ran);
    int fd = s_listen_unix(path);
    pm_restart_config_t cfg = {.milter_socket = sock, .milter_restart = cmd};
    run_t run;
    Pm__RestartResult *r = s_restart(&cfg, s_order(6, "milter", 0), &run);
    cr_expect(r->ok, "failed in %s: %s", r->phase, r->error);
    cr_expect_str_eq(run.phases, "restart,gate");
    cr_expect_eq(access(ran, F_OK), 0, "milter_restart did not run");
    pm__restart_result__free_unpacked(r, NULL);

    cfg.milter_restart = "false";
    r = s_restart(&cfg, s_order(7, "milter", 0), &run);
    cr_expect_not(r->ok);
    cr_expect_str_eq(r->phase, "restart");
    cr_expect_str_eq(r->error, "milter_restart (false): exit 1");
    pm__restart_result__free_unpacked(r, NULL);
    close(fd);
}

/* Debian's smtpd runs chrooted in the queue directory, so the packaged
 * milter socket is a path relative to it ("unix:privmta/milter.sock"),
 * which every Postfix daemon resolves from there: so does the gate. */
Test(restart, milter_gate_finds_a_relative_socket_in_the_queue_dir)
{
    s_base_init();
    char etc[256], queue[256], path[300], mcf[300];
    snprintf(etc, sizeof etc, "%s/relq-etc", s_base);
    snprintf(queue, sizeof queue, "%s/relq-spool", s_base);
    snprintf(path, sizeof path, "%s/privmta", queue);
    cr_assert_eq(mkdir(etc, 0755), 0);
    cr_assert_eq(mkdir(queue, 0755), 0);
    cr_assert_eq(mkdir(path, 0755), 0);
    snprintf(mcf, sizeof mcf, "%s/main.cf", etc);
    FILE *f = fopen(mcf, "w");
    cr_assert(f);
    fprintf(f, "queue_directory = %s\n", queue);
    fclose(f);
    snprintf(mcf, sizeof mcf, "%s/master.cf", etc);
    f = fopen(mcf, "w");
    cr_assert(f);
    fclose(f);
    snprintf(path, sizeof path, "%s/privmta/milter.sock", queue);
    int fd = s_listen_unix(path);

    char *why = NULL;
    cr_expect(pm_svcprobe_milter("unix:privmta/milter.sock", queue, 2000, &why),
              "%s", why);
    PM_FREE(&why);
    cr_expect_not(
        pm_svcprobe_milter("unix:privmta/milter.sock", NULL, 2000, &why));
    cr_expect(strstr(why, "queue directory"), "%s", why);
    PM_FREE(&why);

    pm_restart_config_t cfg = {.postfix_dir = etc,
                               .milter_socket = "unix:privmta/milter.sock",
                               .milter_restart = "true"};
    run_t run;
    Pm__RestartResult *r = s_restart(&cfg, s_order(11, "milter", 0), &run);
    cr_expect(r->ok, "failed in %s: %s", r->phase, r->error);
    cr_expect_str_eq(run.phases, "restart,gate");
    pm__restart_result__free_unpacked(r, NULL);
    close(fd);

    /* nothing listens there any more: the gate says where it looked */
    cfg.gate_ms = 300;
    r = s_restart(&cfg, s_order(12, "milter", 0), &run);
    cr_expect_not(r->ok);
    cr_expect(strstr(r->error, path), "%s", r->error);
    pm__restart_result__free_unpacked(r, NULL);
}

Test(restart, missing_parts_fail_before_touching_anything)
{
    pm_restart_config_t none = {0};
    run_t run;
    Pm__RestartResult *r = s_restart(&none, s_order(8, "postfix", 0), &run);
    cr_expect_not(r->ok);
    cr_expect_str_eq(r->phase, "drain");
    cr_expect(strstr(r->error, "manages no Postfix"), "%s", r->error);
    cr_expect_str_eq(run.phases, "");
    pm__restart_result__free_unpacked(r, NULL);

    pm_restart_config_t milter = {.milter_socket = "unix:/nonexistent"};
    r = s_restart(&milter, s_order(9, "milter", 0), &run);
    cr_expect_not(r->ok);
    cr_expect_str_eq(r->phase, "restart");
    cr_expect(strstr(r->error, "agent parameter milter_restart"), "%s",
              r->error);
    pm__restart_result__free_unpacked(r, NULL);

    pm_restart_config_t cmd = {.milter_restart = "true"};
    r = s_restart(&cmd, s_order(10, "milter", 0), &run);
    cr_expect_not(r->ok);
    cr_expect(strstr(r->error, "milter_socket"), "%s", r->error);
    pm__restart_result__free_unpacked(r, NULL);
}

/* ------------------------------------------------------------------------
 * Probes */

Test(probe, listeners_from_master_cf)
{
    s_base_init();
    char dir[256];
    snprintf(dir, sizeof dir, "%s/probe-etc", s_base);
    cr_assert_eq(mkdir(dir, 0755), 0);
    cr_assert_eq(
        testsh_run(
            NULL,
            "cd %s && : >main.cf && postconf -c %s -e 'inet_interfaces = "
            "127.0.0.1' 'inet_protocols = ipv4' && printf '%%s\\n' "
            "'smtp inet n - n - - smtpd' "
            "'127.0.0.5:2526 inet n - n - - postscreen' "
            "'[::1]:2527 inet n - n - - smtpd -o smtpd_tls_wrappermode=yes' "
            "'127.0.0.1:10026 inet n - n - - smtpd -o smtpd_milters=' "
            "'127.0.0.1:10027 inet n - n - - smtpd -o "
            "receive_override_options=no_address_mappings,no_milters' "
            "'smtpd pass - - n - - smtpd' "
            "'pickup unix n - n 60 1 pickup' >master.cf",
            dir, dir),
        0);
    pm_svcprobe_listener_t *l = NULL;
    size_t n = 0;
    char *why = NULL;
    cr_assert_eq(pm_svcprobe_listeners(dir, &l, &n, &why), PM_OK, "%s", why);
    cr_assert_eq(n, 5);
    /* the notification listener's kind: mail through it meets no filter */
    cr_expect_not(l[0].unfiltered || l[1].unfiltered || l[2].unfiltered);
    cr_expect(l[3].unfiltered && l[4].unfiltered);
    cr_expect_eq(l[4].port, 10027);
    cr_expect_str_eq(l[0].service, "smtp");
    cr_expect_str_eq(l[0].host, "127.0.0.1");
    cr_expect_eq(l[0].port, 25);
    cr_expect(l[0].any);
    cr_expect_str_eq(l[1].host, "127.0.0.5");
    cr_expect_eq(l[1].port, 2526);
    cr_expect_not(l[1].any);
    cr_expect_str_eq(l[2].host, "::1");
    cr_expect_eq(l[2].port, 2527);
    pm_svcprobe_free(&l, n);
    cr_expect_null(l);
}

Test(probe, sessions_counted_on_the_listener_only)
{
    int srv = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET};
    socklen_t len = sizeof sa;
    inet_pton(AF_INET, "127.0.0.96", &sa.sin_addr);
    cr_assert_eq(bind(srv, (struct sockaddr *)&sa, sizeof sa), 0);
    cr_assert_eq(listen(srv, 4), 0);
    getsockname(srv, (struct sockaddr *)&sa, &len);
    pm_svcprobe_listener_t l = {
        .service = "test", .host = "127.0.0.96", .port = ntohs(sa.sin_port)};
    pm_svcprobe_listener_t other = l;
    other.host = "127.0.0.97"; /* the same port elsewhere is not ours */
    cr_expect_eq(pm_svcprobe_sessions(&l, 1), 0);
    int cli = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert_eq(connect(cli, (struct sockaddr *)&sa, sizeof sa), 0);
    int acc = accept(srv, NULL, NULL);
    cr_expect_eq(pm_svcprobe_sessions(&l, 1), 1); /* not the client's end */
    cr_expect_eq(pm_svcprobe_sessions(&other, 1), 0);
    l.any = true;
    other.any = true;
    cr_expect_eq(pm_svcprobe_sessions(&other, 1), 1);
    close(cli);
    close(acc);
    cr_expect_eq(pm_svcprobe_sessions(&l, 1), 0);
    close(srv);
}

/* ------------------------------------------------------------------------
 * The agent: an order carried out once, its state kept */

/* The next report whose restart answers ROLLOUT and is DONE; caller
 * frees it. */
static Pm__AgentReport *
s_ctl_wait(fakectl_t *c, uint64_t rollout, bool done)
{
    int64_t deadline = zclock_mono() + S_WAIT_MS;
    Pm__AgentReport *rep = NULL;
    while (!rep && zclock_mono() < deadline) {
        rep = fakectl_next(c, S_WAIT_MS, NULL);
        const Pm__RestartResult *r = rep ? rep->status->restart : NULL;
        if (rep && (!r || r->rollout != rollout || r->done != done))
            pm__agent_report__free_unpacked(rep, NULL), rep = NULL;
    }
    cr_assert(rep, "no report of rollout %llu done=%d",
              (unsigned long long)rollout, done);
    return rep;
}

/* Sends the agent a RESTART order. */
static void
s_ctl_order(fakectl_t *c, uint64_t rollout, const char *service)
{
    Pm__RestartOrder order = s_order(rollout, service, 0);
    Pm__Publication pub = PM__PUBLICATION__INIT;
    pub.kind = PM__PUBLICATION__KIND__RESTART;
    pub.restart = &order;
    fakectl_send(c, &pub);
}

/* Sends the agent revision 1 (the default policy) as an UPDATE. */
static void
s_ctl_update(fakectl_t *c)
{
    Pm__Revision rev = PM__REVISION__INIT;
    rev.number = 1;
    rev.digest =
        "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    rev.policy = pm_policy_new();
    Pm__Publication pub = PM__PUBLICATION__INIT;
    pub.kind = PM__PUBLICATION__KIND__UPDATE;
    pub.head = 1;
    pub.revision = &rev;
    fakectl_send(c, &pub);
    pm_policy_free(&rev.policy);
}

/* Entries in DIR, "." and ".." aside. */
static int
s_count_files(const char *dir)
{
    DIR *d = opendir(dir);
    int n = 0;
    for (struct dirent *e; d && (e = readdir(d));)
        n += e->d_name[0] != '.';
    if (d)
        closedir(d);
    return n;
}

typedef struct {
    char state[256], runs[256], sock[300], cmd[300];
    char pfdir[300]; /* the agent's postfix_dir; "": none */
    zcert_t *cert;
    pm_backend_t *backend;
} agent_env_t;

/* A fresh agent environment in s_base, its names starting with NAME (one
 * of its own for each test: the base is the run's): its state and the
 * directory its milter_restart command leaves a file in for each run;
 * returns the listening socket of the node's (fake) milter. */
static int
s_agent_env(agent_env_t *e, const char *name)
{
    s_base_init();
    *e = (agent_env_t){.cert = zcert_new(), .backend = pm_backend_noop_new()};
    char path[256];
    snprintf(e->state, sizeof e->state, "%s/%s-state", s_base, name);
    snprintf(e->runs, sizeof e->runs, "%s/%s-runs", s_base, name);
    snprintf(path, sizeof path, "%s/%s-milter.sock", s_base, name);
    snprintf(e->sock, sizeof e->sock, "unix:%s", path);
    snprintf(e->cmd, sizeof e->cmd, "mktemp -p %s", e->runs);
    cr_assert_eq(mkdir(e->state, 0700), 0);
    cr_assert_eq(mkdir(e->runs, 0700), 0);
    return s_listen_unix(path);
}

static zactor_t *
s_agent(agent_env_t *e, fakectl_t *c, const char *milter_restart)
{
    pm_agent_config_t cfg = {
        .endpoint = c->endpoint,
        .server_key = c->key,
        .cert = e->cert,
        .state_dir = e->state,
        .name = "mx1",
        .backend = e->backend,
        .heartbeat_ms = 100,
        .dead_after_ms = 10000,
        .milter_gid = -1,
        .milter_socket = e->sock,
        .milter_restart = milter_restart,
        .postfix_dir = *e->pfdir ? e->pfdir : NULL,
    };
    zactor_t *a = pm_agent_new(&cfg);
    cr_assert(a);
    cr_assert(fakectl_hello(c, S_WAIT_MS), "the agent never said hello");
    return a;
}

Test(agent, restart_order_carried_out_once_and_kept)
{
    agent_env_t e;
    int milter = s_agent_env(&e, "agent");
    fakectl_t c;
    fakectl_new(&c, NULL, 0);
    zactor_t *agent = s_agent(&e, &c, e.cmd);

    s_ctl_order(&c, 1, "milter");
    Pm__AgentReport *rep = s_ctl_wait(&c, 1, true);
    cr_expect(rep->status->restart->ok, "%s", rep->status->restart->error);
    pm__agent_report__free_unpacked(rep, NULL);
    /* the same order again is answered, not carried out; an older one is
     * ignored; the next one runs */
    s_ctl_order(&c, 1, "milter");
    s_ctl_order(&c, 2, "milter");
    s_ctl_order(&c, 1, "milter");
    rep = s_ctl_wait(&c, 2, true);
    cr_expect(rep->status->restart->ok, "%s", rep->status->restart->error);
    pm__agent_report__free_unpacked(rep, NULL);
    cr_expect_eq(s_count_files(e.runs), 2, "milter_restart ran %d times",
                 s_count_files(e.runs));

    /* an agent stopped mid-restart (the command is killed at once)... */
    zactor_destroy(&agent);
    agent = s_agent(&e, &c, "sleep 60");
    s_ctl_order(&c, 3, "milter");
    pm__agent_report__free_unpacked(s_ctl_wait(&c, 3, false), NULL);
    int64_t t0 = zclock_mono();
    zactor_destroy(&agent);
    cr_expect_lt(zclock_mono() - t0, 10000, "the agent took long to stop");
    /* ...says at its next start that the restart failed, once */
    agent = s_agent(&e, &c, e.cmd);
    rep = s_ctl_wait(&c, 3, true);
    const Pm__RestartResult *r = rep->status->restart;
    cr_expect_not(r->ok);
    cr_expect_str_eq(r->error, PM_RESTART_STOPPED_ERROR);
    pm__agent_report__free_unpacked(rep, NULL);
    s_ctl_order(&c, 3, "milter");
    pm__agent_report__free_unpacked(s_ctl_wait(&c, 3, true), NULL);
    s_ctl_order(&c, 4, "milter");
    pm__agent_report__free_unpacked(s_ctl_wait(&c, 4, true), NULL);
    cr_expect_eq(s_count_files(e.runs), 3, "milter_restart ran %d times",
                 s_count_files(e.runs));

    zactor_destroy(&agent);
    fakectl_destroy(&c);
    close(milter);
    e.backend->destroy(&e.backend);
    zcert_destroy(&e.cert);
}

/* A drain left by a restart cut short, which cannot be undone at start
 * (here: no Postfix where the agent looks), refuses the next order: one
 * drained on top would journal the drained values as the originals. */
Test(agent, a_drain_that_could_not_be_undone_refuses_the_next_order)
{
    agent_env_t e;
    int milter = s_agent_env(&e, "drained");
    char journal[300];
    snprintf(journal, sizeof journal, "%s/restart-drain.cf", e.state);
    const char *drained = "# a restart cut short\nsmtpd_delay_reject = yes\n";
    cr_assert_eq(
        pm_file_write(journal, drained, strlen(drained), 0600, (gid_t)-1, NULL),
        PM_OK);
    snprintf(e.pfdir, sizeof e.pfdir, "%s/no-postfix-here", s_base);
    fakectl_t c;
    fakectl_new(&c, NULL, 0);
    zactor_t *agent = s_agent(&e, &c, e.cmd);
    s_ctl_order(&c, 1, "milter");
    Pm__AgentReport *rep = s_ctl_wait(&c, 1, true);
    const Pm__RestartResult *r = rep->status->restart;
    cr_expect_not(r->ok);
    cr_expect(strstr(r->error, "still drained"), "%s", r->error);
    pm__agent_report__free_unpacked(rep, NULL);
    cr_expect_eq(s_count_files(e.runs), 0, "the milter was restarted");
    struct stat st;
    cr_expect_eq(stat(journal, &st), 0, "the journal is gone");
    zactor_destroy(&agent);
    fakectl_destroy(&c);
    close(milter);
    e.backend->destroy(&e.backend);
    zcert_destroy(&e.cert);
}

Test(agent, revision_waits_for_the_restart)
{
    s_base_init();
    agent_env_t e = {.cert = zcert_new(), .backend = pm_backend_noop_new()};
    char path[256];
    snprintf(e.state, sizeof e.state, "%s/hold-state", s_base);
    snprintf(path, sizeof path, "%s/hold-milter.sock", s_base);
    snprintf(e.sock, sizeof e.sock, "unix:%s", path);
    cr_assert_eq(mkdir(e.state, 0700), 0);
    int milter = s_listen_unix(path);
    fakectl_t c;
    fakectl_new(&c, NULL, 0);
    zactor_t *agent = s_agent(&e, &c, "sleep 3");
    s_ctl_order(&c, 1, "milter");
    pm__agent_report__free_unpacked(s_ctl_wait(&c, 1, false), NULL);
    s_ctl_update(&c);
    /* nothing applied while the restart runs; applied once it is over */
    Pm__AgentReport *rep = NULL;
    bool over = false;
    int64_t deadline = zclock_mono() + S_WAIT_MS;
    while (zclock_mono() < deadline &&
           (rep = fakectl_next(&c, S_WAIT_MS, NULL))) {
        const Pm__RestartResult *r = rep->status->restart;
        cr_assert(r && r->rollout == 1);
        if (!r->done)
            cr_expect_eq(rep->applied_rev, 0, "applied during the restart");
        over = over || r->done;
        bool applied = rep->applied_rev == 1;
        pm__agent_report__free_unpacked(rep, NULL);
        if (applied)
            break;
    }
    cr_expect(over, "the restart never ended");
    cr_expect(rep, "revision 1 was never applied");

    zactor_destroy(&agent);
    fakectl_destroy(&c);
    close(milter);
    e.backend->destroy(&e.backend);
    zcert_destroy(&e.cert);
}

/* A backend whose applies are counted and take 300 ms, the first 1.5 s
 * (time for everything sent behind it to arrive, however loaded). */
typedef struct {
    pm_backend_t base;
    _Atomic unsigned applies;
    _Atomic uint64_t last;
} slow_backend_t;

static int
s_slow_apply(pm_backend_t *self, const Pm__Policy *p, uint64_t rev, char **why)
{
    (void)p, (void)why;
    slow_backend_t *b = (slow_backend_t *)self;
    zclock_sleep(atomic_load(&b->applies) ? 300 : 1500);
    atomic_fetch_add(&b->applies, 1);
    atomic_store(&b->last, rev);
    return 0;
}

/* Sends revisions FROM..TO as UPDATEs, back to back. */
static void
s_ctl_updates(fakectl_t *c, uint64_t from, uint64_t to)
{
    for (uint64_t n = from; n <= to; n++) {
        Pm__Revision rev = PM__REVISION__INIT;
        rev.number = n;
        rev.digest =
            "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
        rev.policy = pm_policy_new();
        Pm__Publication pub = PM__PUBLICATION__INIT;
        pub.kind = PM__PUBLICATION__KIND__UPDATE;
        pub.head = n;
        pub.revision = &rev;
        fakectl_send(c, &pub);
        pm_policy_free(&rev.policy);
    }
}

Test(agent, queued_updates_apply_only_the_newest)
{
    slow_backend_t b = {.base = {.name = "slow", .apply = s_slow_apply}};
    zcert_t *cert = zcert_new();
    fakectl_t c;
    fakectl_new(&c, NULL, 0);
    pm_agent_config_t cfg = {
        .endpoint = c.endpoint,
        .server_key = c.key,
        .cert = cert,
        .name = "mx1",
        .backend = &b.base,
        .heartbeat_ms = 100,
        .dead_after_ms = 10000,
        .milter_gid = -1,
    };
    zactor_t *agent = pm_agent_new(&cfg);
    cr_assert(agent);
    cr_assert(fakectl_hello(&c, S_WAIT_MS), "the agent never said hello");
    /* 1 is applied at once; 2..20 queue up behind it, heartbeats
     * between them as a controller sends them */
    s_ctl_updates(&c, 1, 1);
    zclock_sleep(50);
    Pm__Publication hb = PM__PUBLICATION__INIT;
    hb.kind = PM__PUBLICATION__KIND__HEARTBEAT;
    for (uint64_t n = 2; n <= 20; n++) {
        s_ctl_updates(&c, n, n);
        hb.head = n;
        fakectl_send(&c, &hb);
    }
    int64_t deadline = zclock_mono() + S_WAIT_MS;
    while (atomic_load(&b.last) != 20 && zclock_mono() < deadline)
        zclock_sleep(20);
    cr_assert_eq(atomic_load(&b.last), 20, "revision 20 never applied");
    zclock_sleep(500); /* nothing else should follow */
    unsigned applies = atomic_load(&b.applies);
    cr_expect_eq(applies, 2, "%u applies for 20 revisions, 19 queued", applies);
    Pm__AgentReport *rep = NULL;
    uint64_t acked = 0;
    while (acked != 20 && (rep = fakectl_next(&c, S_WAIT_MS, NULL))) {
        acked = rep->applied_rev;
        pm__agent_report__free_unpacked(rep, NULL);
    }
    cr_expect_eq(acked, 20, "20 acknowledged");
    zactor_destroy(&agent);
    fakectl_destroy(&c);
    zcert_destroy(&cert);
}
