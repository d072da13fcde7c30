/* test_priv.c - pm_priv: a helper becomes its user for good, and is never
 * root by accident. Dropping needs root (CI runs as root); elsewhere those
 * tests skip. Each drop happens in a child, the test process stays. */
#include <criterion/criterion.h>

#include <grp.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "pm_error.h"
#include "pm_priv.h"

Test(priv, lookup_finds_a_user_and_refuses_root_and_strangers)
{
    struct passwd *pw = getpwnam("nobody");
    cr_assert_not_null(pw);
    uid_t uid = 0;
    gid_t gid = 0;
    char *why = NULL;
    cr_assert_eq(pm_priv_lookup("nobody", &uid, &gid, &why), PM_OK);
    cr_assert_eq(uid, pw->pw_uid);
    cr_assert_eq(gid, pw->pw_gid);
    cr_assert_eq(pm_priv_lookup("root", &uid, NULL, &why), PM_EINVAL);
    cr_assert(strstr(why, "uid 0"), "%s", why);
    cr_assert_eq(pm_priv_lookup("pm-no-such-user", &uid, NULL, &why),
                 PM_ENOTFOUND);
    cr_assert(strstr(why, "pm-no-such-user"), "%s", why);
    cr_assert_eq(pm_priv_lookup("", &uid, NULL, &why), PM_EINVAL);
    free(why);
}

/* Runs pm_priv_drop(USER) in a child; its exit code says what it saw:
 * 0 dropped for good, 1 drop failed, 2 still privileged. */
static int
s_drop_in_child(const char *user)
{
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        if (pm_priv_drop(user, NULL) != PM_OK)
            _exit(1);
        struct passwd *pw = getpwnam(user);
        gid_t groups[64];
        int n = getgroups(64, groups);
        bool has_root_group = false;
        for (int i = 0; i < n; i++)
            has_root_group |= groups[i] == 0 && pw->pw_gid != 0;
        bool ok = getuid() == pw->pw_uid && geteuid() == pw->pw_uid &&
                  getgid() == pw->pw_gid && getegid() == pw->pw_gid &&
                  !has_root_group && setuid(0) != 0 && setgid(0) != 0;
        _exit(ok ? 0 : 2);
    }
    int status = 0;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFEXITED(status));
    return WEXITSTATUS(status);
}

Test(priv, drop_becomes_the_user_for_good)
{
    if (geteuid() != 0)
        cr_skip_test("needs root");
    cr_assert_eq(s_drop_in_child("nobody"), 0);
    cr_assert_eq(s_drop_in_child("root"), 1, "root is refused");
}

Test(priv, drop_without_root_changes_nothing)
{
    if (geteuid() == 0)
        cr_skip_test("runs unprivileged only");
    cr_assert_eq(pm_priv_drop("nobody", NULL), PM_OK);
    cr_assert_neq(geteuid(), 0);
}
