/* test_rehearse.c - a policy test the agent's stop cancels ends before its
 * next step, having made nothing, and says so; what a killed agent left is
 * swept at its next start. (The rehearsal itself, on a real scratch
 * Postfix and filter, is tests/integration/test_rehearse.sh.) */
#include "pm_error.h"
#include "pm_file.h"
#include "pm_mem.h"
#include "pm_rehearse.h"
#include "testdir.h"

#include <criterion/criterion.h>
#include <dirent.h>
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
