/* test_cmd.c - pm_cmd: a program runs with no shell, nothing inherited and
 * its output captured; a deadline, an output cap or the caller's cancel
 * takes down its whole process group. Bounds on time are generous: the
 * test asserts that a 30 s sleep did not run its course, never how fast. */
#include <criterion/criterion.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "pm_cmd.h"
#include "pm_mem.h"

static long
s_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

/* True once PID is gone or a zombie (init may be slow to reap an orphan),
 * waiting up to 10 s for it. */
static bool
s_gone(pid_t pid)
{
    for (int i = 0; i < 1000; i++) {
        char path[64], state = 0;
        snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
        FILE *f = fopen(path, "r");
        if (!f)
            return true;
        int ok = fscanf(f, "%*d (%*[^)]) %c", &state);
        fclose(f);
        if (ok == 1 && (state == 'Z' || state == 'X'))
            return true;
        usleep(10000);
    }
    return false;
}

Test(cmd, exit_code_and_both_streams)
{
    char *argv[] = {"sh", "-c", "echo out; echo err >&2; exit 3", NULL};
    pm_cmd_result_t r;
    cr_assert_eq(pm_cmd_run(argv, NULL, &r), 3);
    cr_assert_eq(r.status, 3);
    cr_assert_str_eq(r.out, "out\n");
    cr_assert_eq(r.out_len, 4);
    cr_assert_str_eq(r.err, "err\n");
    cr_assert_null(r.fail);
    pm_cmd_result_clear(&r);
    cr_assert_eq(r.status, -1);
    cr_assert_null(r.out);
    cr_assert_null(r.err);
}

Test(cmd, empty_output_is_an_empty_string)
{
    char *argv[] = {"true", NULL};
    pm_cmd_result_t r;
    cr_assert_eq(pm_cmd_run(argv, NULL, &r), 0);
    cr_assert_str_eq(r.out, "");
    cr_assert_eq(r.out_len, 0);
    cr_assert_str_eq(r.err, "");
    cr_assert_null(r.fail);
    pm_cmd_result_clear(&r);
}

Test(cmd, stdin_is_dev_null)
{
    char *argv[] = {"cat", NULL};
    pm_cmd_result_t r;
    cr_assert_eq(pm_cmd_run(argv, NULL, &r), 0);
    cr_assert_eq(r.out_len, 0);
    pm_cmd_result_clear(&r);
}

Test(cmd, binary_stdout_keeps_its_nuls)
{
    char *argv[] = {"/usr/bin/printf", "a\\0b", NULL};
    pm_cmd_result_t r;
    cr_assert_eq(pm_cmd_run(argv, NULL, &r), 0);
    cr_assert_eq(r.out_len, 3);
    cr_assert_eq(memcmp(r.out, "a\0b", 4), 0); /* and the NUL after it */
    pm_cmd_result_clear(&r);
}

Test(cmd, large_output_is_read_whole)
{
    char *argv[] = {"head", "-c", "3000000", "/dev/zero", NULL};
    pm_cmd_opts_t o = {.max_output = 3000000};
    pm_cmd_result_t r;
    cr_assert_eq(pm_cmd_run(argv, &o, &r), 0, "%s", r.fail);
    cr_assert_eq(r.out_len, 3000000);
    pm_cmd_result_clear(&r);
}

/* An entry replaces the one of the same name (and only that one), a new
 * one is added, the rest of the environment is kept. */
Test(cmd, env_replaces_and_adds)
{
    setenv("PM_CMD_OLD", "old", 1);
    setenv("PM_CMD_OLDER", "kept", 1);
    const char *env[] = {"PM_CMD_OLD=new", "PM_CMD_ADDED=yes", NULL};
    pm_cmd_opts_t o = {.env = env};
    char *argv[] = {"/usr/bin/env", NULL};
    pm_cmd_result_t r;
    cr_assert_eq(pm_cmd_run(argv, &o, &r), 0);
    char *all = pm_asprintf("\n%s", r.out);
    cr_assert_not_null(strstr(all, "\nPM_CMD_OLD=new\n"), "%s", all);
    cr_assert_null(strstr(all, "\nPM_CMD_OLD=old\n"));
    cr_assert_not_null(strstr(all, "\nPM_CMD_OLDER=kept\n"));
    cr_assert_not_null(strstr(all, "\nPM_CMD_ADDED=yes\n"));
    cr_assert_not_null(strstr(all, "\nPATH="));
    free(all);
    pm_cmd_result_clear(&r);
    unsetenv("PM_CMD_OLD");
    unsetenv("PM_CMD_OLDER");
}

Test(cmd, missing_program_is_named)
{
    char *argv[] = {"pm-cmd-no-such-program", NULL};
    pm_cmd_result_t r;
    cr_assert_eq(pm_cmd_run(argv, NULL, &r), -1);
    cr_assert_eq(r.status, -1);
    cr_assert_not_null(r.fail);
    cr_assert_not_null(strstr(r.fail, "pm-cmd-no-such-program"), "%s", r.fail);
    cr_assert_str_eq(r.out, "");
    cr_assert_str_eq(r.err, "");
    char *why = pm_cmd_why("runner", &r);
    cr_assert_eq(strncmp(why, "runner: pm-cmd-no-such-program", 30), 0, "%s",
                 why);
    free(why);
    pm_cmd_result_clear(&r);
}

Test(cmd, killed_by_a_signal)
{
    char *argv[] = {"sh", "-c", "kill -9 $$", NULL};
    pm_cmd_result_t r;
    cr_assert_eq(pm_cmd_run(argv, NULL, &r), -1);
    cr_assert_str_eq(r.fail, "killed by signal 9");
    pm_cmd_result_clear(&r);
}

Test(cmd, deadline_kills_the_group)
{
    /* the sleep is a grandchild: the whole group must go */
    char *argv[] = {"sh", "-c", "sleep 30 & echo $!; wait", NULL};
    pm_cmd_opts_t o = {.timeout_ms = 1000};
    pm_cmd_result_t r;
    long t0 = s_now_ms();
    cr_assert_eq(pm_cmd_run(argv, &o, &r), -1);
    cr_assert_lt(s_now_ms() - t0, 10000);
    cr_assert_str_eq(r.fail, "timed out after 1 s");
    pid_t sleeper = (pid_t)atoi(r.out);
    cr_assert_gt(sleeper, 1, "%s", r.out);
    cr_assert(s_gone(sleeper));
    pm_cmd_result_clear(&r);
}

/* A child that moves itself into our process group (a compromised
 * helper may) is still killed at the deadline: before, the kill went to
 * its old group only and waitpid waited for it for good. In a session of
 * its own it cannot move, and has no controlling terminal to use. */
Test(cmd, a_child_cannot_leave_its_group)
{
    char *argv[] = {"python3", "-c",
                    "import os, time\n"
                    "print(os.getsid(0) == os.getpid(), flush=True)\n"
                    "try:\n"
                    "    os.setpgid(0, os.getpgid(os.getppid()))\n"
                    "except OSError:\n"
                    "    pass\n"
                    "time.sleep(3600)\n",
                    NULL};
    /* long enough for python to start on a loaded machine */
    pm_cmd_opts_t o = {.timeout_ms = 5000};
    pm_cmd_result_t r;
    cr_assert_eq(pm_cmd_run(argv, &o, &r), -1);
    cr_expect_str_eq(r.fail, "timed out after 5 s");
    cr_expect_str_eq(r.out, "True\n", "not a session of its own: %s", r.out);
    pm_cmd_result_clear(&r);
}

/* After the child exits, a grandchild still holding stdout delays the
 * return by about a second, not until it is done. */
Test(cmd, grandchild_holding_the_pipe)
{
    char *argv[] = {"sh", "-c", "sleep 30 & echo $!", NULL};
    pm_cmd_result_t r;
    long t0 = s_now_ms();
    cr_assert_eq(pm_cmd_run(argv, NULL, &r), 0);
    cr_assert_lt(s_now_ms() - t0, 10000);
    pid_t sleeper = (pid_t)atoi(r.out);
    cr_assert_gt(sleeper, 1, "%s", r.out);
    kill(sleeper, SIGKILL);
    pm_cmd_result_clear(&r);
}

Test(cmd, too_much_stdout)
{
    char *argv[] = {"head", "-c", "2000000", "/dev/zero", NULL};
    pm_cmd_result_t r;
    cr_assert_eq(pm_cmd_run(argv, NULL, &r), -1); /* 1 MiB by default */
    cr_assert_str_eq(r.fail, "wrote more than 1048576 bytes to stdout");
    cr_assert_leq(r.out_len, 1048577);
    pm_cmd_result_clear(&r);
}

Test(cmd, too_much_stderr_from_a_writer_that_never_stops)
{
    char *argv[] = {"sh", "-c", "yes >&2", NULL};
    pm_cmd_opts_t o = {.max_output = 1000};
    pm_cmd_result_t r;
    long t0 = s_now_ms();
    cr_assert_eq(pm_cmd_run(argv, &o, &r), -1);
    cr_assert_lt(s_now_ms() - t0, 10000);
    cr_assert_str_eq(r.fail, "wrote more than 1000 bytes to stderr");
    pm_cmd_result_clear(&r);
}

static bool
s_second_time(void *arg)
{
    int *calls = arg;
    return ++*calls >= 2;
}

Test(cmd, cancel_stops_the_child)
{
    char *argv[] = {"sleep", "30", NULL};
    int calls = 0;
    pm_cmd_opts_t o = {.cancelled = s_second_time, .cancel_arg = &calls};
    pm_cmd_result_t r;
    long t0 = s_now_ms();
    cr_assert_eq(pm_cmd_run(argv, &o, &r), -1);
    cr_assert_lt(s_now_ms() - t0, 10000);
    cr_assert_str_eq(r.fail, "stopped");
    cr_assert_eq(calls, 2);
    char *why = pm_cmd_why("sleep", &r);
    cr_assert_str_eq(why, "sleep: stopped");
    free(why);
    pm_cmd_result_clear(&r);
}

Test(cmd, cancel_is_not_asked_once_done)
{
    char *argv[] = {"true", NULL};
    int calls = -1000000; /* never says yes */
    pm_cmd_opts_t o = {.cancelled = s_second_time, .cancel_arg = &calls};
    pm_cmd_result_t r;
    cr_assert_eq(pm_cmd_run(argv, &o, &r), 0);
    cr_assert_null(r.fail);
    pm_cmd_result_clear(&r);
}

/* A child that ignores SIGTERM gets SIGKILL a second later, and so does
 * what it started. */
Test(cmd, cancel_kills_what_ignores_sigterm)
{
    char *argv[] = {"sh", "-c", "trap '' TERM; sleep 30 & echo $!; wait", NULL};
    int calls = 0;
    pm_cmd_opts_t o = {.cancelled = s_second_time, .cancel_arg = &calls};
    pm_cmd_result_t r;
    long t0 = s_now_ms();
    cr_assert_eq(pm_cmd_run(argv, &o, &r), -1);
    long took = s_now_ms() - t0;
    cr_assert_geq(took, 1000); /* SIGTERM did not do it */
    cr_assert_lt(took, 10000);
    cr_assert_str_eq(r.fail, "stopped");
    pid_t sleeper = (pid_t)atoi(r.out);
    cr_assert_gt(sleeper, 1, "%s", r.out);
    cr_assert(s_gone(sleeper));
    pm_cmd_result_clear(&r);
}

Test(cmd, pty_stderr_is_a_terminal)
{
    char *argv[] = {"sh", "-c",
                    "test -t 2 && echo tty >&2; test -t 1 || echo pipe", NULL};
    pm_cmd_opts_t o = {.pty_stderr = true};
    pm_cmd_result_t r;
    cr_assert_eq(pm_cmd_run(argv, &o, &r), 0);
    cr_assert_str_eq(r.err, "tty\n"); /* the terminal's "\r\n", "\r" gone */
    cr_assert_str_eq(r.out, "pipe\n");
    pm_cmd_result_clear(&r);

    cr_assert_eq(pm_cmd_run(argv, NULL, &r), 0);
    cr_assert_str_eq(r.err, "");
    pm_cmd_result_clear(&r);
}

/* The child sees 0-2 and ls's own directory descriptor, nothing else, not
 * even a descriptor this process left open across exec. */
static void
s_only_std_fds(bool pty)
{
    int fd = open("/dev/null", O_RDONLY);
    cr_assert_geq(fd, 0);
    cr_assert_eq(dup2(fd, 57), 57);
    close(fd);
    char *argv[] = {"ls", "/proc/self/fd", NULL};
    pm_cmd_opts_t o = {.pty_stderr = pty};
    pm_cmd_result_t r;
    cr_assert_eq(pm_cmd_run(argv, &o, &r), 0);
    int n = 0;
    for (char *save = NULL, *l = strtok_r(r.out, "\n", &save); l;
         l = strtok_r(NULL, "\n", &save), n++)
        cr_assert(atoi(l) <= 3, "fd %s inherited", l);
    cr_assert_eq(n, 4);
    close(57);
    pm_cmd_result_clear(&r);
}

Test(cmd, no_inherited_descriptors)
{
    s_only_std_fds(false);
}

Test(cmd, no_inherited_descriptors_with_a_terminal)
{
    s_only_std_fds(true);
}

/* What a started child's fd 2 is: ours, or /dev/null when quiet (the
 * signature verifier parses what peers send: it must not write lines
 * into the agent's log as the agent). */
static char *
s_started_stderr(bool quiet)
{
    char *argv[] = {"sh", "-c", "readlink /proc/self/fd/2", NULL};
    pm_cmd_child_t child;
    cr_assert_eq(pm_cmd_start(argv, quiet, &child, NULL), 0);
    char buf[256];
    ssize_t n = 0, r;
    while ((r = read(child.fd, buf + n, sizeof buf - 1 - (size_t)n)) > 0)
        n += r;
    buf[n > 0 ? n : 0] = '\0';
    pm_cmd_stop(&child);
    return pm_strdup(buf);
}

/* A started child that forks and exits when its stdin ends (a helper
 * taken over) leaves nothing running after pm_cmd_stop. */
Test(cmd, stop_ends_what_the_child_left_in_its_group)
{
    char *argv[] = {"sh", "-c", "sleep 3600 >/dev/null 2>&1 & echo $!; cat",
                    NULL};
    pm_cmd_child_t child;
    cr_assert_eq(pm_cmd_start(argv, true, &child, NULL), 0);
    char buf[64];
    ssize_t n = 0, r;
    while (n < (ssize_t)sizeof buf - 1 &&
           (r = read(child.fd, buf + n, sizeof buf - 1 - (size_t)n)) > 0) {
        n += r;
        if (memchr(buf, '\n', (size_t)n))
            break;
    }
    buf[n > 0 ? n : 0] = '\0';
    pid_t sleeper = (pid_t)atoi(buf);
    cr_assert_gt(sleeper, 1, "%s", buf);
    cr_assert_eq(kill(sleeper, 0), 0, "the grandchild runs");
    pm_cmd_stop(&child); /* cat ends with its stdin; sh exits */
    /* SIGKILL is delivered at once; the zombie is init's to reap */
    char path[64], state = 0;
    snprintf(path, sizeof path, "/proc/%d/stat", (int)sleeper);
    for (int i = 0; i < 100; i++) {
        FILE *f = fopen(path, "r");
        state = 0;
        if (f) {
            cr_assert_eq(fscanf(f, "%*d (%*[^)]) %c", &state), 1);
            fclose(f);
        }
        if (!f || state == 'Z')
            break;
        usleep(10000);
    }
    cr_expect(state == 0 || state == 'Z', "the grandchild still runs (%c)",
              state);
    kill(sleeper, SIGKILL);
}

Test(cmd, a_quiet_child_writes_nothing_to_our_stderr)
{
    char *quiet = s_started_stderr(true), *inherited = s_started_stderr(false);
    char mine[256];
    ssize_t n = readlink("/proc/self/fd/2", mine, sizeof mine - 2);
    cr_assert_gt(n, 0);
    mine[n] = '\n';
    mine[n + 1] = '\0';
    cr_expect_str_eq(quiet, "/dev/null\n");
    cr_expect_str_eq(inherited, mine, "not quiet: our own stderr");
    free(quiet);
    free(inherited);
}

Test(cmd, no_argv)
{
    char *argv[] = {NULL};
    pm_cmd_result_t r;
    cr_assert_eq(pm_cmd_run(argv, NULL, &r), -1);
    cr_assert_str_eq(r.fail, "no command");
    pm_cmd_result_clear(&r);
}

Test(cmd, why)
{
    char *argv[] = {"sh", "-c",
                    "echo out; printf '\\n  first\\nsecond\\n' >&2; exit 3",
                    NULL};
    pm_cmd_result_t r;
    cr_assert_eq(pm_cmd_run(argv, NULL, &r), 3);
    char *why = pm_cmd_why("thing", &r);
    cr_assert_str_eq(why, "thing: exit 3: first");
    free(why);
    pm_cmd_result_clear(&r);

    char *quiet[] = {"sh", "-c", "echo; echo from stdout; exit 1", NULL};
    cr_assert_eq(pm_cmd_run(quiet, NULL, &r), 1);
    why = pm_cmd_why("thing", &r);
    cr_assert_str_eq(why, "thing: exit 1: from stdout");
    free(why);
    pm_cmd_result_clear(&r);

    char *silent[] = {"false", NULL};
    cr_assert_eq(pm_cmd_run(silent, NULL, &r), 1);
    why = pm_cmd_why("thing", &r);
    cr_assert_str_eq(why, "thing: exit 1");
    free(why);
    pm_cmd_result_clear(&r);

    pm_cmd_result_t timed = {.status = -1, .fail = "timed out after 15 s"};
    why = pm_cmd_why("postfix reload", &timed);
    cr_assert_str_eq(why, "postfix reload: timed out after 15 s");
    free(why);
}
