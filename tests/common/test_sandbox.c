/* test_sandbox.c - pm_sandbox: once the filter is in, a process cannot
 * start another, signal or trace one, or open a network socket; its own
 * threads, its own signals and unix sockets still work. Each case runs in
 * a child of the test, which reports what it saw through its exit code. */
#include <criterion/criterion.h>

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "pm_error.h"
#include "pm_sandbox.h"

/* Runs CASE in a child sandboxed as FLAGS say; returns its exit code
 * (100: the filter did not go in; 101: the child died). */
static int
s_sandboxed_as(unsigned flags, int (*fn)(void))
{
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        char *why = NULL;
        if (pm_sandbox_no_spawn(flags, &why) != PM_OK)
            _exit(100);
        _exit(fn()); /* _exit: no atexit work (a sanitizer's) in here */
    }
    int status;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 101;
}

static int
s_sandboxed(int (*fn)(void))
{
    return s_sandboxed_as(0, fn);
}

/* 0 when CALL failed with errno WANT, else the line's number. */
#define S_REFUSED(call, want)                                                  \
    do {                                                                       \
        errno = 0;                                                             \
        if ((call) != -1 || errno != (want))                                   \
            return __LINE__ % 100;                                             \
    } while (0)

static int
s_no_process(void)
{
    S_REFUSED(fork(), EPERM);
    char *argv[] = {"true", NULL}, *envp[] = {NULL};
    S_REFUSED(execve("/bin/true", argv, envp), EPERM);
    return 0;
}

Test(sandbox, no_process_is_started)
{
    cr_assert_eq(s_sandboxed(s_no_process), 0);
}

static int
s_no_other(void)
{
    S_REFUSED(kill(getppid(), 0), EPERM);
    S_REFUSED(kill(1, SIGKILL), EPERM);
#ifndef __SANITIZE_ADDRESS__ /* its leak check traces (pm_sandbox.c) */
    S_REFUSED(ptrace(PTRACE_ATTACH, getppid(), NULL, NULL), EPERM);
#endif
    if (kill(getpid(), 0) != 0) /* itself, still */
        return 90;
    return 0;
}

Test(sandbox, no_other_process_is_signalled_or_traced)
{
    cr_assert_eq(s_sandboxed(s_no_other), 0);
}

static int
s_no_network(void)
{
    S_REFUSED(socket(AF_INET, SOCK_STREAM, 0), EPERM);
    S_REFUSED(socket(AF_INET6, SOCK_DGRAM, 0), EPERM);
    S_REFUSED(socket(AF_NETLINK, SOCK_RAW, 0), EPERM);
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    if (fd < 0)
        return 90;
    close(fd);
    return 0;
}

Test(sandbox, no_network_socket)
{
    cr_assert_eq(s_sandboxed(s_no_network), 0);
}

/* The milter's: the network stays, the rest goes as above. */
static int
s_network_only(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return 90;
    close(fd);
    if ((fd = socket(AF_INET6, SOCK_DGRAM, 0)) < 0 && errno != EAFNOSUPPORT)
        return 91;
    if (fd >= 0)
        close(fd);
    int rc = s_no_process();
    return rc ? rc : s_no_other();
}

Test(sandbox, network_kept_when_asked_nothing_else)
{
    cr_assert_eq(s_sandboxed_as(PM_SANDBOX_NETWORK, s_network_only), 0);
}

static void *
s_thread(void *arg)
{
    return arg;
}

static volatile sig_atomic_t s_got;

static void
s_on_signal(int sig)
{
    s_got = sig;
}

static int
s_still_works(void)
{
    pthread_t t;
    void *back = NULL;
    if (pthread_create(&t, NULL, s_thread, (void *)&s_got) != 0 ||
        pthread_join(t, &back) != 0 || back != (void *)&s_got)
        return 90;
    signal(SIGUSR1, s_on_signal);
    if (raise(SIGUSR1) != 0 || s_got != SIGUSR1)
        return 91;
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    int seccomp = -1, nnp = -1;
    while (f && fgets(line, sizeof line, f)) {
        sscanf(line, "Seccomp: %d", &seccomp);
        sscanf(line, "NoNewPrivs: %d", &nnp);
    }
    if (f)
        fclose(f);
    return seccomp == 2 && nnp == 1 ? 0 : 92;
}

Test(sandbox, threads_own_signals_and_files_still_work)
{
    cr_assert_eq(s_sandboxed(s_still_works), 0);
}
