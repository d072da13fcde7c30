/* test_log.c - pm_log: a line reaches the journal once. A daemon logging
 * to syslog under systemd would otherwise write each line twice, through
 * syslog and through its stderr, both of which the journal takes in. */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pm_log.h"

static char s_path[] = "/tmp/pm-test-log.XXXXXX";
static int s_saved = -1;

/* stderr into a file of the test's; JOURNAL_STREAM naming it, or another
 * file, or unset */
static void
s_setup(void)
{
    int fd = mkstemp(s_path);
    cr_assert_geq(fd, 0);
    fflush(stderr);
    s_saved = dup(STDERR_FILENO);
    cr_assert_eq(dup2(fd, STDERR_FILENO), STDERR_FILENO);
    close(fd);
    unsetenv("JOURNAL_STREAM");
}

static void
s_teardown(void)
{
    fflush(stderr);
    dup2(s_saved, STDERR_FILENO);
    close(s_saved);
    unlink(s_path);
}

static void
s_journal_is(const char *path)
{
    struct stat st;
    cr_assert_eq(stat(path, &st), 0);
    char env[64];
    snprintf(env, sizeof env, "%llu:%llu", (unsigned long long)st.st_dev,
             (unsigned long long)st.st_ino);
    setenv("JOURNAL_STREAM", env, 1);
}

/* what the test's stderr file holds */
static char *
s_stderr_text(void)
{
    fflush(stderr);
    static char buf[4096];
    FILE *f = fopen(s_path, "r");
    cr_assert_not_null(f);
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    return buf;
}

TestSuite(log, .init = s_setup, .fini = s_teardown);

Test(log, stderr_only_when_not_logging_to_syslog)
{
    pm_log_init("privmta-test", false, PM_LOG_INFO);
    pm_info("applied revision %d", 7);
    cr_expect_str_eq(s_stderr_text(),
                     "privmta-test: info: applied revision 7\n");
}

Test(log, syslog_and_stderr_outside_systemd)
{
    pm_log_init("privmta-test", true, PM_LOG_INFO);
    pm_warn("outside");
    cr_expect(strstr(s_stderr_text(), "privmta-test: warning: outside\n"),
              "a terminal or a log file still gets the line");
}

Test(log, not_twice_when_stderr_is_the_journal)
{
    s_journal_is(s_path);
    pm_log_init("privmta-test", true, PM_LOG_INFO);
    pm_error("once");
    cr_expect_str_eq(s_stderr_text(), "",
                     "syslog takes the line; stderr would repeat it");
}

Test(log, stderr_when_it_is_not_the_journals_stream)
{
    /* a child of the service whose stderr was sent elsewhere keeps the
     * variable: its stderr is not the journal */
    s_journal_is("/");
    pm_log_init("privmta-test", true, PM_LOG_INFO);
    pm_error("redirected");
    cr_expect(strstr(s_stderr_text(), "redirected"));
}

Test(log, stderr_is_the_journal_but_no_syslog)
{
    s_journal_is(s_path);
    pm_log_init("privmta-test", false, PM_LOG_INFO);
    pm_info("only here");
    cr_expect(strstr(s_stderr_text(), "only here"),
              "without syslog, stderr is the only way to the journal");
}
