/* test_milter_main.c - privmta-milter started by root (its `user`
 * setting): what it gives to its user before dropping root, the status
 * directory and the socket's group, it gives through no link. The
 * milter's user owns that directory (and, by default, the socket's) and
 * could have put a link where root looks in a previous run, or swap one
 * in while the milter starts (swapsock.c does, preloaded). */
#include "pm_mem.h"
#include "testdir.h"

#include <criterion/criterion.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define S_MILTER PM_BUILD_DIR "/scan/privmta-milter"

/* Runs the milter as root with user nobody, socket D/sock (swapped for a
 * link to D/victim-file on its way) and status_dir D/status, until it
 * exits (it cannot make its temp_dir as nobody in D) or 20 s. */
static void
s_run_milter(const char *d)
{
    char *sock = pm_asprintf("unix:%s/sock", d);
    char *status = pm_asprintf("%s/status", d);
    char *tmp = pm_asprintf("%s/tmp", d);
    char *none = pm_asprintf("%s/none", d);
    char *log = pm_asprintf("%s/milter.log", d);
    char *swap = pm_asprintf("%s/sock", d);
    char *target = pm_asprintf("%s/victim-file", d);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        dup2(fd, 1);
        dup2(fd, 2);
        setenv("LD_PRELOAD", PM_SWAPSOCK, 1);
        setenv("PM_TEST_SWAP_PATH", swap, 1);
        setenv("PM_TEST_SWAP_TARGET", target, 1);
        /* a preloaded library before ASan's runtime; a milter ended by
         * pm_fatal is not a leak to report */
        setenv("ASAN_OPTIONS", "verify_asan_link_order=0:detect_leaks=0", 1);
        execl(S_MILTER, S_MILTER, "-c", "/dev/null", "--socket", sock,
              "--socket-group", "nogroup", "--status-dir", status, "--temp-dir",
              tmp, "--policy-file", none, "--sig-dir", none, "--dkim-key-dir",
              none, "--user", "nobody", "--spamd", "127.0.0.1:1",
              "--notify-smtp", "127.0.0.1:1", (char *)NULL);
        _exit(127);
    }
    int st = 0;
    for (int i = 0; i < 200 && waitpid(pid, &st, WNOHANG) == 0; i++)
        usleep(100000);
    if (waitpid(pid, &st, WNOHANG) == 0) {
        kill(pid, SIGKILL);
        waitpid(pid, &st, 0);
    }
    free(sock);
    free(status);
    free(tmp);
    free(none);
    free(log);
    free(swap);
    free(target);
}

Test(milter_main, root_gives_nothing_through_a_link)
{
    if (geteuid() != 0)
        cr_skip_test("needs root (the milter drops it)");
    char d[] = "/tmp/pm_milter_main.XXXXXX";
    cr_assert_not_null(mkdtemp(d));
    char *victim_dir = pm_asprintf("%s/victim", d);
    char *victim_file = pm_asprintf("%s/victim-file", d);
    char *status = pm_asprintf("%s/status", d);
    char *sock = pm_asprintf("%s/sock", d);
    cr_assert_eq(mkdir(victim_dir, 0755), 0);
    int fd = open(victim_file, O_WRONLY | O_CREAT, 0600);
    cr_assert_geq(fd, 0);
    close(fd);
    cr_assert_eq(symlink(victim_dir, status), 0); /* left from before */

    s_run_milter(d);

    struct stat st;
    cr_assert_eq(lstat(sock, &st), 0);
    cr_expect(S_ISLNK(st.st_mode), "the socket was not swapped for a link");
    cr_assert_eq(stat(victim_dir, &st), 0);
    cr_expect_eq(st.st_uid, 0, "status_dir's link: its target went to %u",
                 (unsigned)st.st_uid);
    cr_assert_eq(stat(victim_file, &st), 0);
    cr_expect_eq(st.st_gid, 0, "the socket's link: its target got group %u",
                 (unsigned)st.st_gid);
    free(victim_dir);
    free(victim_file);
    free(status);
    free(sock);
    testdir_remove(d);
}
