/* test_rehearse.c - a policy test the agent's stop cancels ends before its
 * next step, having made nothing, and says so. (The rehearsal itself, on a
 * real scratch Postfix and filter, is tests/integration/test_rehearse.sh.)
 */
#include "pm_error.h"
#include "pm_rehearse.h"
#include "testdir.h"

#include <criterion/criterion.h>
#include <dirent.h>
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
