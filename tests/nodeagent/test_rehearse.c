/* test_rehearse.c - a policy test the agent's stop cancels ends before its
 * next step, having made nothing, and says so; what a killed agent left is
 * swept at its next start; the scratch filter (a shell standing in for it,
 * a stand-in postfix on PATH) writes nothing into the agent's log and says
 * why it failed through its status. (The rehearsal itself, on a real
 * scratch Postfix and filter, is tests/integration/test_rehearse.sh.) */
#include "pm_error.h"
#include "pm_file.h"
#include "pm_mem.h"
#include "pm_policy.h"
#include "pm_rehearse.h"
#include "testdir.h"

#include <criterion/criterion.h>
#include <czmq.h>
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>

static bool
s_stop(void *arg)
{
    ++*(int *)arg;
    return true;
}

Test(rehearse, a_cancelled_test_makes_nothing)
{
    char dir[] = "/tmp/pm_rehearse_test.XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    int asked = 0;
    pm_rehearse_config_t cfg = {.postfix_dir = "/nonexistent",
                                .dir = dir,
                                .cancelled = s_stop,
                                .cancel_arg = &asked};
    Pm__PolicyTest t = PM__POLICY_TEST__INIT;
    char *rcpts[] = {"root@mx1.test"};
    t.rcpts = rcpts;
    t.n_rcpts = 1;
    Pm__Policy pol = PM__POLICY__INIT;
    pm_rehearse_policy_t p = {&pol, 1, "candidate"};
    Pm__TestResult **out = NULL;
    size_t n_out = 0;
    char *why = NULL;
    cr_assert_eq(pm_rehearse_run(&cfg, &t, &p, 1, &out, &n_out, &why), PM_EIO);
    cr_expect(why && strstr(why, "cancelled"), "%s", why ? why : "");
    cr_expect_eq(asked, 1);
    cr_expect_null(out);
    DIR *d = opendir(dir);
    int entries = 0;
    for (struct dirent *e; d && (e = readdir(d));)
        entries += e->d_name[0] != '.';
    if (d)
        closedir(d);
    cr_expect_eq(entries, 0, "a scratch instance was made");
    free(why);
    testdir_remove(dir);
}

/* A process whose command line holds WORD, until killed. */
static pid_t
s_spawn(const char *word)
{
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        execlp("python3", "python3", "-c", "import time; time.sleep(60)", word,
               (char *)NULL);
        _exit(127);
    }
    /* until it runs python3 with WORD (before exec: the test's own line) */
    char *path = pm_asprintf("/proc/%d/cmdline", (int)pid);
    bool named = false;
    for (int i = 0; i < 500 && !named; i++) {
        char *cmd = NULL;
        size_t len = 0;
        named = pm_file_read(path, 65536, 0, &cmd, &len, NULL) == PM_OK &&
                memmem(cmd, len, word, strlen(word)) != NULL;
        free(cmd);
        if (!named)
            usleep(10000);
    }
    free(path);
    cr_assert(named, "python3 did not start");
    return pid;
}

/* Writes DIR/status/status.json naming PID. */
static void
s_status(const char *run, pid_t pid)
{
    char *dir = pm_asprintf("%s/status", run);
    cr_assert_eq(mkdir(dir, 0755), 0);
    char *path = pm_asprintf("%s/status.json", dir);
    char *text = pm_asprintf("{\"pid\": %d}", (int)pid);
    cr_assert_eq(pm_file_write(path, text, strlen(text), 0644, (gid_t)-1, NULL),
                 PM_OK);
    free(text);
    free(path);
    free(dir);
}

/* True when PID ended (reaped here), within a few seconds. */
static bool
s_ended(pid_t pid)
{
    for (int i = 0; i < 300; i++) {
        if (waitpid(pid, NULL, WNOHANG) == pid)
            return true;
        usleep(10000);
    }
    return false;
}

Test(rehearse, a_killed_agents_leftovers_are_swept)
{
    char root[] = "/tmp/pm_rehearse_sweep.XXXXXX";
    cr_assert_not_null(mkdtemp(root));
    char *run = pm_asprintf("%s/run.abc123", root);
    char *other = pm_asprintf("%s/run.def456", root);
    cr_assert_eq(mkdir(run, 0755), 0);
    cr_assert_eq(mkdir(other, 0755), 0);
    pid_t filter = s_spawn(run);                 /* names its run: it goes */
    pid_t bystander = s_spawn("something else"); /* named by a status */
    s_status(run, filter);
    s_status(other, bystander);
    char *keep = pm_asprintf("%s/keep.txt", root);
    cr_assert_eq(pm_file_write(keep, "x", 1, 0644, (gid_t)-1, NULL), PM_OK);
    char *target = pm_asprintf("%s/target", root);
    cr_assert_eq(mkdir(target, 0755), 0);
    char *link = pm_asprintf("%s/run.link", root);
    cr_assert_eq(symlink(target, link), 0);

    cr_assert_eq(pm_rehearse_sweep(root, (gid_t)-1), 2);
    cr_expect(s_ended(filter), "the run's filter still runs");
    cr_expect_eq(kill(bystander, 0), 0, "a process not of the run was killed");
    struct stat st;
    cr_expect_neq(stat(run, &st), 0, "the run's directory is left");
    cr_expect_neq(stat(other, &st), 0);
    cr_expect_eq(stat(keep, &st), 0, "not a run: kept");
    cr_expect_eq(lstat(link, &st), 0, "a link named run.*: left as it is");
    cr_expect_eq(stat(target, &st), 0, "a link's target removed");
    kill(bystander, SIGKILL);
    waitpid(bystander, NULL, 0);
    free(link);
    free(target);
    free(keep);
    free(other);
    free(run);
    testdir_remove(root);
}

/* ---- the scratch filter, a shell standing in for privmta-milter --------- */

/* A stand-in for postfix(1) on PATH: "start" waits until $PM_TEST_MARKER
 * exists (the filter has run), then, when $PM_TEST_LISTEN is set, listens
 * on the scratch smtpd's port (from master.cf) and succeeds, else fails;
 * "stop" ends that listener. postconf is the real one. */
static const char s_fake_postfix[] =
    "#!/bin/sh\n"
    "case \"$3\" in\n"
    "start)\n"
    "    i=0\n"
    "    while [ ! -e \"$PM_TEST_MARKER\" ] && [ $i -lt 200 ]; do\n"
    "        sleep 0.05; i=$((i + 1))\n"
    "    done\n"
    "    [ -n \"$PM_TEST_LISTEN\" ] || { echo 'fake start fails' >&2; exit 1; "
    "}\n"
    "    port=$(awk '/^127\\.0\\.0\\.1:[0-9]+ +inet / {sub(/.*:/, \"\", "
    "$1); print $1; exit}' \"$2/master.cf\")\n"
    "    setsid python3 -c 'import socket, sys, time\n"
    "s = socket.socket()\n"
    "s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
    "s.bind((\"127.0.0.1\", int(sys.argv[1])))\n"
    "s.listen()\n"
    "time.sleep(60)' \"$port\" </dev/null >/dev/null 2>&1 &\n"
    "    echo $! >\"$2/fake.pid\"\n"
    "    exit 0;;\n"
    "stop)\n"
    "    [ -e \"$2/fake.pid\" ] && kill \"$(cat \"$2/fake.pid\")\"\n"
    "    exit 0;;\n"
    "esac\n"
    "exit 0\n";

typedef struct {
    char dir[64];
    char *bin, *postfix_dir, *marker, *log, *old_path;
    int saved_err; /* the test's own stderr while the agent's is LOG */
} s_fake_t;

static void
s_fake_setup(s_fake_t *f)
{
    strcpy(f->dir, "/tmp/pm_rehearse_fake.XXXXXX");
    cr_assert_not_null(mkdtemp(f->dir));
    f->bin = pm_asprintf("%s/bin", f->dir);
    f->postfix_dir = pm_asprintf("%s/pf", f->dir);
    f->marker = pm_asprintf("%s/filter-ran", f->dir);
    f->log = pm_asprintf("%s/agent.log", f->dir);
    cr_assert_eq(mkdir(f->bin, 0755), 0);
    cr_assert_eq(mkdir(f->postfix_dir, 0755), 0);
    char *path = pm_asprintf("%s/postfix", f->bin);
    cr_assert_eq(pm_file_write(path, s_fake_postfix, strlen(s_fake_postfix),
                               0755, (gid_t)-1, NULL),
                 PM_OK);
    free(path);
    path = pm_asprintf("%s/main.cf", f->postfix_dir);
    static const char main_cf[] = "compatibility_level = 3.6\n";
    cr_assert_eq(
        pm_file_write(path, main_cf, strlen(main_cf), 0644, (gid_t)-1, NULL),
        PM_OK);
    free(path);
    const char *old = getenv("PATH");
    f->old_path = pm_strdup(old ? old : "/usr/bin:/bin");
    char *new_path = pm_asprintf("%s:%s", f->bin, f->old_path);
    setenv("PATH", new_path, 1);
    free(new_path);
    setenv("PM_TEST_MARKER", f->marker, 1);
    /* the agent's log (its stderr) is LOG while the test runs */
    fflush(stderr);
    f->saved_err = dup(2);
    int fd = open(f->log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    cr_assert_geq(fd, 0);
    cr_assert_eq(dup2(fd, 2), 2);
    close(fd);
}

/* The agent's log as it was written; caller frees. */
static char *
s_fake_teardown(s_fake_t *f)
{
    fflush(stderr);
    dup2(f->saved_err, 2);
    close(f->saved_err);
    char *log = NULL;
    size_t len = 0;
    cr_assert_eq(pm_file_read(f->log, 1 << 20, 0, &log, &len, NULL), PM_OK);
    setenv("PATH", f->old_path, 1);
    unsetenv("PM_TEST_MARKER");
    unsetenv("PM_TEST_LISTEN");
    free(f->bin);
    free(f->postfix_dir);
    free(f->marker);
    free(f->log);
    free(f->old_path);
    testdir_remove(f->dir);
    return log;
}

/* One policy test with the filter running SCRIPT (sh -c; its $7 is the
 * status directory); its error returned (caller frees). */
static char *
s_fake_run(s_fake_t *f, const char *script)
{
    char *root = pm_asprintf("%s/rehearsal", f->dir);
    pm_rehearse_config_t cfg = {.postfix_dir = f->postfix_dir,
                                .dir = root,
                                .milter_program = "/bin/sh",
                                .milter_config = script,
                                .milter_gid = (gid_t)-1,
                                .node = "mx1",
                                .ready_ms = 5000};
    Pm__PolicyTest t = PM__POLICY_TEST__INIT;
    char *rcpts[] = {"root@mx1.test"};
    t.rcpts = rcpts;
    t.n_rcpts = 1;
    Pm__Policy *pol = pm_policy_new();
    pm_rehearse_policy_t p = {pol, 1, "candidate"};
    Pm__TestResult **out = NULL;
    size_t n_out = 0;
    char *why = NULL;
    cr_expect_eq(pm_rehearse_run(&cfg, &t, &p, 1, &out, &n_out, &why), PM_EIO);
    cr_expect_null(out);
    pm_policy_free(&pol);
    free(root);
    return why;
}

/* The filter parses hostile mail: what it writes to its stderr must not
 * become lines of the root agent's log. */
Test(rehearse, the_filter_writes_nothing_into_the_agents_log)
{
    s_fake_t f;
    s_fake_setup(&f);
    char *why = s_fake_run(&f, "echo 'privmta-agent: error: FORGED LINE' >&2;"
                               " : >\"$PM_TEST_MARKER\"; exec sleep 30");
    struct stat st;
    bool ran = stat(f.marker, &st) == 0;
    char *log = s_fake_teardown(&f);
    cr_expect(ran, "the filter did not run");
    cr_expect(why && strstr(why, "fake start fails"), "%s", why ? why : "");
    cr_expect_null(strstr(log, "FORGED LINE"), "the agent's log: %s", log);
    free(log);
    free(why);
}

/* With its stderr gone, why a filter did not come up is its status's
 * reason (escaped) and its exit, at once, not after the wait. */
Test(rehearse, a_failing_filter_says_why_through_its_status)
{
    s_fake_t f;
    s_fake_setup(&f);
    setenv("PM_TEST_LISTEN", "1", 1);
    int64_t t0 = zclock_mono();
    char *why = s_fake_run(
        &f, ": >\"$PM_TEST_MARKER\"; mkdir -p \"$7\"; printf '{\"policy\": "
            "{\"revision\": 0, \"error\": \"bad key\\\\nFORGED\"}}' "
            ">\"$7/status.json\"; exit 3");
    int64_t took = zclock_mono() - t0;
    char *log = s_fake_teardown(&f);
    cr_expect(why && strstr(why, "exited (status 3)"), "%s", why ? why : "");
    cr_expect(why && strstr(why, "its policy: bad key\\nFORGED"), "%s",
              why ? why : "");
    cr_expect_lt(took, 4500, "%lld ms: the wait ran out", (long long)took);
    free(log);
    free(why);
}
