/* test_spamd.c - pm_spamd against a real spamd with only our own rules
 * (exact scores), over TCP and a unix socket; spamd down, a silent server
 * and malformed answers are errors, never ham. */
#include "testnet.h"
#include "pm_error.h"
#include "pm_spamd.h"

#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <libgen.h>
#include <math.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* Only these rules are loaded: no default rules, so no ALL_TRUSTED etc. */
static const char *s_rules = "body PM_TEST_A /pmtest-alpha/\n"
                             "score PM_TEST_A 6.6\n"
                             "body PM_TEST_B /pmtest-beta/\n"
                             "score PM_TEST_B 8.4\n"
                             "use_bayes 0\n"
                             "bayes_auto_learn 0\n";

static char s_dir[64];
static char s_addr[128];
static pid_t s_pid = -1;

static int64_t
s_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void
s_write_file(const char *path, const char *data, size_t len, mode_t mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
    cr_assert(fd >= 0, "open %s: %s", path, strerror(errno));
    cr_assert_eq(write(fd, data, len), (ssize_t)len);
    close(fd);
    chmod(path, mode); /* umask aside: spamd may run as nobody */
}

static char *
s_read_file(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return strdup("");
    char *buf = calloc(1, 65537);
    size_t n = fread(buf, 1, 65536, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

/* A config dir with the *.pre plugin files (spamd fails without them) and
 * our rules file, readable by nobody (spamd started as root drops to it). */
static void
s_make_config(void)
{
    strcpy(s_dir, "/tmp/pm_spamd_XXXXXX");
    cr_assert_not_null(mkdtemp(s_dir));
    chmod(s_dir, 0755);
    glob_t g;
    cr_assert_eq(glob("/etc/spamassassin/*.pre", 0, NULL, &g), 0,
                 "no /etc/spamassassin/*.pre: is spamassassin installed?");
    for (size_t i = 0; i < g.gl_pathc; i++) {
        char *text = s_read_file(g.gl_pathv[i]);
        char dst[256];
        snprintf(dst, sizeof dst, "%s/%s", s_dir, basename(g.gl_pathv[i]));
        s_write_file(dst, text, strlen(text), 0644);
        free(text);
    }
    globfree(&g);
    char cf[128];
    snprintf(cf, sizeof cf, "%s/pm_test.cf", s_dir);
    s_write_file(cf, s_rules, strlen(s_rules), 0644);
}

static int
s_free_port(void)
{
    int port = testnet_free_port("127.0.0.1");
    cr_assert(port > 0);
    return port;
}

static void
s_exec_spamd(const char *listen_opt)
{
    char log[128], cpath[128], spath[140];
    snprintf(log, sizeof log, "%s/spamd.log", s_dir);
    snprintf(cpath, sizeof cpath, "--configpath=%s", s_dir);
    snprintf(spath, sizeof spath, "--siteconfigpath=%s", s_dir);
    setpgid(0, 0);
    prctl(PR_SET_PDEATHSIG, SIGTERM); /* a crashed test leaves no spamd */
    int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(fd, 1);
    dup2(fd, 2);
    const char *argv[20];
    int n = 0;
    argv[n++] = "spamd";
    argv[n++] = cpath;
    argv[n++] = spath;
    argv[n++] = "-x"; /* no user configs */
    argv[n++] = "-L"; /* local tests only */
    argv[n++] = "--max-children=1";
    argv[n++] = "--syslog=stderr";
    argv[n++] = "--allowed-ips=127.0.0.1";
    argv[n++] = listen_opt;
    if (geteuid() == 0) {
        argv[n++] = "-u";
        argv[n++] = "nobody";
    }
    argv[n] = NULL;
    execvp("spamd", (char **)argv);
    _exit(127);
}

/* Starts spamd on TCP (unix_socket false) or a socket in s_dir and waits
 * until it answers PING. */
static void
s_start_spamd(bool unix_socket)
{
    s_make_config();
    char listen_opt[160];
    if (unix_socket) {
        snprintf(s_addr, sizeof s_addr, "%s/spamd.sock", s_dir);
        snprintf(listen_opt, sizeof listen_opt, "--socketpath=%s", s_addr);
    } else {
        int port = s_free_port();
        snprintf(s_addr, sizeof s_addr, "127.0.0.1:%d", port);
        snprintf(listen_opt, sizeof listen_opt, "--listen=127.0.0.1:%d", port);
    }
    prctl(PR_SET_CHILD_SUBREAPER, 1);
    s_pid = fork();
    cr_assert(s_pid >= 0);
    if (s_pid == 0)
        s_exec_spamd(listen_opt);
    setpgid(s_pid, s_pid);
    pm_spamd_t *c = pm_spamd_new(s_addr, 2000);
    cr_assert_not_null(c);
    int64_t deadline = s_ms() + 30000;
    for (;;) {
        int status;
        if (waitpid(s_pid, &status, WNOHANG) == s_pid) {
            s_pid = -1;
            char log[128];
            snprintf(log, sizeof log, "%s/spamd.log", s_dir);
            cr_assert_fail("spamd exited at start: %s", s_read_file(log));
        }
        if (pm_spamd_ping(c, NULL) == PM_OK)
            break;
        cr_assert(s_ms() < deadline, "spamd did not come up in 30 s");
        usleep(50000);
    }
    pm_spamd_destroy(&c);
}

/* SIGTERM (spamd then stops its children); once the master has exited,
 * and while its unreaped zombie still holds the group id, SIGKILL what is
 * left of the process group this test created; then reap everything (the
 * test is a subreaper, so spamd's orphaned children come back to it). */
static void
s_stop_spamd(void)
{
    if (s_pid <= 0)
        return;
    kill(s_pid, SIGTERM);
    int64_t deadline = s_ms() + 10000;
    siginfo_t si;
    for (;;) {
        memset(&si, 0, sizeof si);
        if (waitid(P_PID, (id_t)s_pid, &si, WEXITED | WNOHANG | WNOWAIT) ||
            si.si_pid == s_pid || s_ms() > deadline)
            break;
        usleep(20000);
    }
    kill(-s_pid, SIGKILL);
    while (s_ms() < deadline + 5000) {
        pid_t r = waitpid(-s_pid, NULL, WNOHANG);
        if (r < 0)
            break; /* ECHILD: the whole group is reaped */
        if (r == 0)
            usleep(20000);
    }
    s_pid = -1;
}

static void
s_remove_dir(void)
{
    if (!s_dir[0])
        return;
    DIR *d = opendir(s_dir);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        char path[400];
        snprintf(path, sizeof path, "%s/%s", s_dir, e->d_name);
        unlink(path);
    }
    if (d)
        closedir(d);
    rmdir(s_dir);
    s_dir[0] = '\0';
}

static void
s_fini(void)
{
    s_stop_spamd();
    s_remove_dir();
}

static void
s_init_tcp(void)
{
    s_start_spamd(false);
}

static void
s_init_unix(void)
{
    s_start_spamd(true);
}

static char *
s_msg(const char *body, bool crlf)
{
    const char *nl = crlf ? "\r\n" : "\n";
    char *m = NULL;
    cr_assert(asprintf(&m,
                       "From: alice@example.test%sTo: bob@example.test%s"
                       "Subject: test%sMessage-ID: <t@example.test>%s%s"
                       "%s%s",
                       nl, nl, nl, nl, nl, body, nl) > 0);
    return m;
}

static bool
s_has_symbol(const pm_spamd_result_t *r, const char *name)
{
    for (size_t i = 0; i < r->n_symbols; i++)
        if (!strcmp(r->symbols[i], name))
            return true;
    return false;
}

/* The three exact-score cases of the design: 6.6 tags at 33 %, 15.0
 * kills at 75 %, 0.0 is nothing. */
static void
s_check_scores(pm_spamd_t *c)
{
    pm_spamd_result_t r = {0};
    char *why = NULL;
    char *m = s_msg("hello pmtest-alpha", false);
    cr_assert_eq(pm_spamd_check(c, m, strlen(m), NULL, &r, &why), PM_OK, "%s",
                 why);
    cr_assert_eq(r.score_hundredths, 660);
    cr_assert_eq(r.score, 6.6);
    cr_assert_eq(r.threshold_hundredths, 500);
    cr_assert(r.spamd_says_spam);
    cr_assert(pm_spamd_over(r.score, 33), "6.6 must tag at 33%%");
    cr_assert(pm_spamd_over_hundredths(r.score_hundredths, 33));
    cr_assert_not(pm_spamd_over_hundredths(r.score_hundredths, 34));
    cr_assert_not(pm_spamd_over(r.score, 75));
    cr_assert_eq(r.n_symbols, 1);
    cr_assert(s_has_symbol(&r, "PM_TEST_A"));
    pm_spamd_result_clear(&r);
    free(m);

    m = s_msg("hello pmtest-alpha and pmtest-beta", true);
    cr_assert_eq(pm_spamd_check(c, m, strlen(m), "nobody", &r, &why), PM_OK,
                 "%s", why);
    cr_assert_eq(r.score_hundredths, 1500);
    cr_assert_eq(r.score, 15.0);
    cr_assert(pm_spamd_over(r.score, 75), "15.0 must kill at 75%%");
    cr_assert(pm_spamd_over_hundredths(r.score_hundredths, 75));
    cr_assert_not(pm_spamd_over_hundredths(r.score_hundredths, 76));
    cr_assert_eq(r.n_symbols, 2);
    cr_assert(s_has_symbol(&r, "PM_TEST_A") && s_has_symbol(&r, "PM_TEST_B"));
    pm_spamd_result_clear(&r);
    free(m);

    m = s_msg("hello nothing to see", false);
    cr_assert_eq(pm_spamd_check(c, m, strlen(m), NULL, &r, &why), PM_OK, "%s",
                 why);
    cr_assert_eq(r.score_hundredths, 0);
    cr_assert_not(r.spamd_says_spam);
    cr_assert_eq(r.n_symbols, 0);
    cr_assert_not(pm_spamd_over(r.score, 33));
    cr_assert(pm_spamd_over(r.score, 0));
    pm_spamd_result_clear(&r);
    free(m);
}

Test(spamd_tcp, exact_scores, .init = s_init_tcp, .fini = s_fini)
{
    pm_spamd_t *c = pm_spamd_new(s_addr, 10000);
    cr_assert_not_null(c);
    s_check_scores(c);
    pm_spamd_destroy(&c);
    pm_spamd_destroy(&c); /* safe twice */
}

Test(spamd_unix, exact_scores, .init = s_init_unix, .fini = s_fini)
{
    pm_spamd_t *c = pm_spamd_new(s_addr, 10000);
    cr_assert_not_null(c);
    s_check_scores(c);
    pm_spamd_destroy(&c);
}

/* A message far bigger than a socket buffer goes out in several
 * sendmsg() calls and still scores exactly. */
Test(spamd_tcp, big_message, .init = s_init_tcp, .fini = s_fini)
{
    size_t size = 600 * 1024;
    char *body = malloc(size + 1);
    for (size_t i = 0; i < size; i++)
        body[i] = (i % 64 == 63) ? '\n' : 'a' + (char)(i % 26);
    /* Near the start: SpamAssassin scans only the first 50 KB of a part
     * (body_part_scan_size). */
    memcpy(body + 100, "\npmtest-beta\n", 13);
    body[size] = '\0';
    char *m = s_msg(body, false);
    pm_spamd_t *c = pm_spamd_new(s_addr, 30000);
    pm_spamd_result_t r = {0};
    char *why = NULL;
    cr_assert_eq(pm_spamd_check(c, m, strlen(m), NULL, &r, &why), PM_OK, "%s",
                 why);
    cr_assert_eq(r.score_hundredths, 840);
    cr_assert(s_has_symbol(&r, "PM_TEST_B"));
    pm_spamd_result_clear(&r);
    pm_spamd_destroy(&c);
    free(m);
    free(body);
}

/* No per-message stall on TCP: with TCP_NODELAY and one write, a check of
 * a tiny message costs spamd's scan time, not a 40 ms delayed ACK. */
Test(spamd_tcp, no_stall, .init = s_init_tcp, .fini = s_fini)
{
    pm_spamd_t *c = pm_spamd_new(s_addr, 10000);
    char *m = s_msg("hello pmtest-alpha", false);
    pm_spamd_result_t r = {0};
    cr_assert_eq(pm_spamd_check(c, m, strlen(m), NULL, &r, NULL), PM_OK);
    pm_spamd_result_clear(&r);
    int64_t t0 = s_ms();
    unsigned max_ms = 0, n = 20;
    for (unsigned i = 0; i < n; i++) {
        cr_assert_eq(pm_spamd_check(c, m, strlen(m), NULL, &r, NULL), PM_OK);
        if (r.latency_ms > max_ms)
            max_ms = r.latency_ms;
        pm_spamd_result_clear(&r);
    }
    int64_t avg = (s_ms() - t0) / n;
    cr_log_info("spamd over TCP: %u checks, avg %lld ms, max %u ms", n,
                (long long)avg, max_ms);
    cr_expect_lt(avg, 35, "average %lld ms per check: a stall?",
                 (long long)avg);
    free(m);
    pm_spamd_destroy(&c);
}

/* spamd stopped: an error naming the refusal, never a ham verdict. */
Test(spamd_tcp, stopped_is_error, .init = s_init_tcp, .fini = s_fini)
{
    pm_spamd_t *c = pm_spamd_new(s_addr, 2000);
    char *m = s_msg("hello", false);
    pm_spamd_result_t r = {0};
    cr_assert_eq(pm_spamd_check(c, m, strlen(m), NULL, &r, NULL), PM_OK);
    pm_spamd_result_clear(&r);
    s_stop_spamd();
    r.score_hundredths = 4242; /* must stay untouched */
    char *why = NULL;
    int rc = pm_spamd_check(c, m, strlen(m), NULL, &r, &why);
    cr_assert_eq(rc, PM_EIO, "rc %d (%s)", rc, why);
    cr_assert_not_null(why);
    cr_assert(strstr(why, "cannot connect") && strstr(why, "refused"), "%s",
              why);
    cr_assert_eq(r.score_hundredths, 4242);
    free(why);
    why = NULL;
    cr_assert_neq(pm_spamd_ping(c, &why), PM_OK);
    free(why);
    free(m);
    pm_spamd_destroy(&c);
}

Test(spamd_unix, stopped_is_error, .init = s_init_unix, .fini = s_fini)
{
    pm_spamd_t *c = pm_spamd_new(s_addr, 2000);
    s_stop_spamd();
    char *m = s_msg("hello", false);
    pm_spamd_result_t r = {0};
    char *why = NULL;
    int rc = pm_spamd_check(c, m, strlen(m), NULL, &r, &why);
    cr_assert_eq(rc, PM_EIO, "rc %d (%s)", rc, why);
    cr_assert(strstr(why, "cannot connect"), "%s", why);
    free(why);
    free(m);
    pm_spamd_destroy(&c);
}

/* ---- fake servers ------------------------------------------------------ */

typedef struct {
    int lfd;
    const char *reply; /* NULL: never answer */
    char request[4096];
    size_t request_len;
} s_fake_t;

static int
s_listen(int *port)
{
    int fd = testnet_socket("127.0.0.1", true, port);
    cr_assert_geq(fd, 0);
    return fd;
}

/* Accepts one client, reads its request to EOF (the client shuts down
 * its sending side), sends the canned reply and closes. */
static void *
s_fake_serve(void *arg)
{
    s_fake_t *f = arg;
    int fd = accept(f->lfd, NULL, NULL);
    if (fd < 0)
        return NULL;
    ssize_t n;
    while ((n = read(fd, f->request + f->request_len,
                     sizeof f->request - 1 - f->request_len)) > 0)
        f->request_len += (size_t)n;
    if (f->reply && write(fd, f->reply, strlen(f->reply)) < 0)
        perror("fake spamd write");
    close(fd);
    return NULL;
}

static int
s_fake_check(const char *reply, char **why, s_fake_t *f)
{
    int port;
    f->lfd = s_listen(&port);
    f->reply = reply;
    f->request_len = 0;
    pthread_t t;
    pthread_create(&t, NULL, s_fake_serve, f);
    char addr[64];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", port);
    pm_spamd_t *c = pm_spamd_new(addr, 2000);
    pm_spamd_result_t r = {0};
    const char *m = "Subject: x\r\n\r\nbody\r\n";
    int rc = pm_spamd_check(c, m, strlen(m), NULL, &r, why);
    if (rc == PM_OK)
        pm_spamd_result_clear(&r);
    pthread_join(t, NULL);
    close(f->lfd);
    pm_spamd_destroy(&c);
    return rc;
}

Test(spamd_fake, request_format)
{
    s_fake_t f = {0};
    char *why = NULL;
    int rc = s_fake_check("SPAMD/1.1 0 EX_OK\r\nContent-length: 0\r\n"
                          "Spam: False ; -1.0 / 5.0\r\n\r\n",
                          &why, &f);
    cr_assert_eq(rc, PM_OK, "%s", why);
    f.request[f.request_len] = '\0';
    cr_assert_str_eq(f.request, "SYMBOLS SPAMC/1.5\r\n"
                                "Content-length: 20\r\n\r\n"
                                "Subject: x\r\n\r\nbody\r\n");
}

Test(spamd_fake, malformed_answers_are_errors)
{
    static const struct {
        const char *reply;
        const char *why;
    } cases[] = {
        {"SPAMD/1.0 76 Bad header line: (Content-Length mismatch)\r\n",
         "Bad header line"},
        {"SPAMD/1.0 79 Timeout: (30 second timeout while trying to CHECK)\r\n",
         "Timeout"},
        {"SPAMD/1.1 0 EX_OK\r\nContent-length: 20\r\n"
         "Spam: True ; 6.6 / 5.0\r\n\r\nPM_T",
         "Content-length"},
        {"SPAMD/1.1 0 EX_OK\r\nContent-length: 0\r\n\r\n", "no Spam:"},
        {"SPAMD/1.1 0 EX_OK\r\nContent-length: 0\r\n"
         "Spam: True ; 6,6 / 5.0\r\n\r\n",
         "bad header"},
        {"SPAMD/1.1 0 EX_OK\r\nContent-length: 0\r\n"
         "Spam: Maybe ; 6.6 / 5.0\r\n\r\n",
         "bad header"},
        {"SPAMD/1.1 0 EX_OK\r\nSpam: True ; 6.6 / 5.0\r\n", "truncated"},
        {"", "no answer"},
        {"HTTP/1.1 400 Bad Request\r\n\r\n", "HTTP/1.1"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        s_fake_t f = {0};
        char *why = NULL;
        int rc = s_fake_check(cases[i].reply, &why, &f);
        cr_assert_eq(rc, PM_EPROTO, "case %zu: rc %d (%s)", i, rc, why);
        cr_assert(why && strstr(why, cases[i].why), "case %zu: %s", i, why);
        free(why);
    }
}

/* A server that accepts and never answers: a timeout, not before the
 * limit (a hang would meet the test's own timeout; no upper bound on a
 * loaded machine's clock). */
Test(spamd_fake, silent_server_times_out)
{
    int port;
    int lfd = s_listen(&port); /* the kernel accepts; nobody reads */
    char addr[64];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", port);
    pm_spamd_t *c = pm_spamd_new(addr, 300);
    pm_spamd_result_t r = {0};
    char *why = NULL;
    const char *m = "Subject: x\r\n\r\nbody\r\n";
    int64_t t0 = s_ms();
    int rc = pm_spamd_check(c, m, strlen(m), NULL, &r, &why);
    int64_t took = s_ms() - t0;
    cr_assert_eq(rc, PM_ETIMEDOUT, "rc %d (%s)", rc, why);
    cr_assert(strstr(why, "timed out"), "%s", why);
    cr_assert(took >= 290, "gave up after %lld ms, before its 300 ms",
              (long long)took);
    cr_assert_eq(r.n_symbols, 0);
    free(why);
    pm_spamd_destroy(&c);
    close(lfd);
}

Test(spamd_fake, nothing_listening)
{
    int port = s_free_port();
    char addr[64];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", port);
    pm_spamd_t *c = pm_spamd_new(addr, 1000);
    pm_spamd_result_t r = {0};
    char *why = NULL;
    cr_assert_eq(pm_spamd_check(c, "x", 1, NULL, &r, &why), PM_EIO);
    cr_assert(strstr(why, "refused"), "%s", why);
    free(why);
    pm_spamd_destroy(&c);
}

/* ---- pure functions ---------------------------------------------------- */

Test(spamd_score, parse_hundredths)
{
    static const struct {
        const char *text;
        int64_t want;
    } ok[] = {
        {"6.6", 660},     {"15.0", 1500},     {"0.0", 0},     {"-0.0", 0},
        {"-1.0", -100},   {"1000.0", 100000}, {"15", 1500},   {"+2.5", 250},
        {"6.60", 660},    {"6.605", 660},     {"6.609", 660}, {"-6.605", -661},
        {"-6.600", -660}, {"0.01", 1},        {"4.9", 490},   {".5", 50},
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        int64_t h = -12345;
        cr_assert_eq(pm_spamd_parse_score(ok[i].text, strlen(ok[i].text), &h),
                     PM_OK, "%s", ok[i].text);
        cr_assert_eq(h, ok[i].want, "%s -> %lld", ok[i].text, (long long)h);
    }
    static const char *bad[] = {"",
                                "-",
                                ".",
                                "6,6",
                                "6.6.6",
                                "abc",
                                "6.6 ",
                                " 6.6",
                                "1e3",
                                "nan",
                                "99999999999999999999"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int64_t h = 7;
        cr_assert_eq(pm_spamd_parse_score(bad[i], strlen(bad[i]), &h),
                     PM_EINVAL, "'%s'", bad[i]);
        cr_assert_eq(h, 7);
    }
}

Test(spamd_score, thresholds_exact)
{
    /* The levels of DESIGN.md: percent x 20 / 100, no rounding. */
    cr_assert_eq(pm_spamd_percent_hundredths(33), 660);
    cr_assert_eq(pm_spamd_percent_hundredths(75), 1500);
    cr_assert_eq(pm_spamd_percent_hundredths(40), 800);
    cr_assert_eq(pm_spamd_percent_hundredths(90), 1800);
    cr_assert_eq(pm_spamd_percent_hundredths(16), 320);
    cr_assert_eq(pm_spamd_percent_hundredths(66), 1320);
    cr_assert(pm_spamd_over(6.6, 33));
    cr_assert_not(pm_spamd_over(6.5, 33));
    cr_assert_not(pm_spamd_over(6.59, 33));
    cr_assert(pm_spamd_over(6.61, 33));
    cr_assert(pm_spamd_over(3.2, 16));
    cr_assert_not(pm_spamd_over(3.1, 16));
    cr_assert(pm_spamd_over(13.2, 66));
    cr_assert(pm_spamd_over(15.0, 75));
    cr_assert_not(pm_spamd_over(14.9, 75));
    /* Sums that are not exact in binary still compare as their text. */
    cr_assert(pm_spamd_over(0.1 + 0.2 + 6.3, 33));
    cr_assert(pm_spamd_over(1.1 * 6, 33));
    cr_assert_not(pm_spamd_over(-1.0, 0));
    cr_assert(pm_spamd_over(0.0, 0));
    cr_assert(pm_spamd_over(1000.0, 100));
    cr_assert_not(pm_spamd_over(NAN, 0));
}

Test(spamd_api, bad_arguments)
{
    cr_assert_null(pm_spamd_new(NULL, 1000));
    cr_assert_null(pm_spamd_new("127.0.0.1:783", 0));
    cr_assert_null(pm_spamd_new("127.0.0.1", 1000));
    cr_assert_null(pm_spamd_new("127.0.0.1:0", 1000));
    cr_assert_null(pm_spamd_new("127.0.0.1:99999", 1000));
    cr_assert_null(pm_spamd_new("no.such.host.invalid:783", 1000));
    char longpath[200];
    memset(longpath, 'a', sizeof longpath - 1);
    longpath[0] = '/';
    longpath[sizeof longpath - 1] = '\0';
    cr_assert_null(pm_spamd_new(longpath, 1000));
    pm_spamd_t *c = pm_spamd_new("[::1]:783", 1000);
    cr_assert_not_null(c);
    pm_spamd_result_t r = {0};
    char *why = NULL;
    cr_assert_eq(pm_spamd_check(c, "x", 1, "two words", &r, &why), PM_EINVAL);
    free(why);
    cr_assert_eq(pm_spamd_check(c, NULL, 0, NULL, &r, NULL), PM_EINVAL);
    pm_spamd_destroy(&c);
    pm_spamd_destroy(NULL);
    pm_spamd_result_clear(NULL);
}

/* ---- the reply parser alone -------------------------------------------- */

Test(spamd_reply, well_formed_answers)
{
    static const char ok[] = "SPAMD/1.1 0 EX_OK\r\n"
                             "Content-length: 21\r\n"
                             "Spam: True ; 15.0 / 5.0\r\n"
                             "\r\n"
                             "PM_TEST_A, PM_TEST_B\n";
    pm_spamd_result_t r = {0};
    char *why = NULL;
    /* not NUL-terminated: the parser must stop at LEN */
    char *copy = malloc(sizeof ok - 1);
    memcpy(copy, ok, sizeof ok - 1);
    cr_assert_eq(pm_spamd_parse_reply(copy, sizeof ok - 1, &r, &why), PM_OK,
                 "%s", why);
    free(copy);
    cr_assert(r.spamd_says_spam);
    cr_assert_eq(r.score_hundredths, 1500);
    cr_assert_eq(r.threshold_hundredths, 500);
    cr_assert_eq(r.n_symbols, 2);
    cr_assert_str_eq(r.symbols[0], "PM_TEST_A");
    cr_assert_str_eq(r.symbols[1], "PM_TEST_B");
    cr_assert_eq(r.latency_ms, 0);
    pm_spamd_result_clear(&r);

    /* no Content-length: the body runs to the end; none at all is fine */
    static const char ham[] = "SPAMD/1.1 0 EX_OK\r\n"
                              "Spam: No ; -1.0 / 5.0\r\n\r\n";
    cr_assert_eq(pm_spamd_parse_reply(ham, strlen(ham), &r, &why), PM_OK, "%s",
                 why);
    cr_assert_not(r.spamd_says_spam);
    cr_assert_eq(r.score_hundredths, -100);
    cr_assert_eq(r.n_symbols, 0);
    pm_spamd_result_clear(&r);
}

Test(spamd_reply, malformed_answers_are_errors)
{
    static const struct {
        const char *reply;
        size_t len; /* 0: strlen */
        const char *why;
    } cases[] = {
        {"", 0, "no answer"},
        {"SPAMD/1.1 0 EX_OK", 0, "truncated answer from spamd"},
        {"SPAMD/1.0 76 Bad header line: (Content-Length mismatch)\r\n", 0,
         "spamd answered 'SPAMD/1.0 76 Bad header line"},
        {"SPAMD/1.1 0 EX_OK\r\nSpam: True ; 6.6 / 5.0\r\n", 0,
         "truncated answer"},
        {"SPAMD/1.1 0 EX_OK\r\nContent-length: 1\r\n"
         "Spam: True ; 6.6 / 5.0\r\n\r\nAB",
         0, "Content-length 1, got 2 bytes"},
        {"SPAMD/1.1 0 EX_OK\r\nContent-length: -1\r\n"
         "Spam: True ; 6.6 / 5.0\r\n\r\n",
         0, "bad header from spamd: 'Content-length: -1'"},
        {"SPAMD/1.1 0 EX_OK\r\n\r\n", 0, "no Spam: header"},
        {"SPAMD/1.1 0 EX_OK\r\nSpam: True ; 6.6 / 5.0 x\r\n\r\n", 0,
         "bad header"},
        {"SPAMD/1.1 0 EX_OK\r\nSpam: True ; 6.6 / 5.0\r\n\r\nA\0B", 48,
         "NUL byte"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t len = cases[i].len ? cases[i].len : strlen(cases[i].reply);
        pm_spamd_result_t r = {.n_symbols = 99};
        char *why = NULL;
        int rc = pm_spamd_parse_reply(cases[i].reply, len, &r, &why);
        cr_assert_eq(rc, PM_EPROTO, "case %zu: rc %d", i, rc);
        cr_assert(why && strstr(why, cases[i].why), "case %zu: %s", i, why);
        cr_assert_eq(r.n_symbols, 99, "case %zu: *out touched", i);
        free(why);
    }
    pm_spamd_result_t r = {0};
    cr_assert_eq(pm_spamd_parse_reply(NULL, 1, &r, NULL), PM_EINVAL);
    cr_assert_eq(pm_spamd_parse_reply("x", 1, NULL, NULL), PM_EINVAL);
    cr_assert_eq(pm_spamd_parse_reply(NULL, 0, &r, NULL), PM_EPROTO);
}
