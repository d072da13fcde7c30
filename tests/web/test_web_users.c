/* test_web_users.c - pm_web_users: the web console's users file. */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pm_error.h"
#include "pm_file.h"
#include "pm_web_users.h"
#include "testdir.h"

static char s_dir[64], s_path[96];

static void
s_setup(void)
{
    strcpy(s_dir, "/tmp/pm_web_users.XXXXXX");
    cr_assert_not_null(mkdtemp(s_dir));
    snprintf(s_path, sizeof s_path, "%s/users", s_dir);
}

static void
s_teardown(void)
{
    testdir_remove(s_dir);
}

TestSuite(web_users, .init = s_setup, .fini = s_teardown);

static int
s_check(const char *name, const char *pw)
{
    char *why = NULL;
    int rc = pm_web_users_check(s_path, name, pw, NULL, &why);
    free(why);
    return rc;
}

Test(web_users, add_then_check)
{
    char *why = NULL;
    cr_assert_eq(
        pm_web_users_set(s_path, "alice", "correct horse", false, &why), PM_OK,
        "%s", why);
    cr_assert_eq(s_check("alice", "correct horse"), PM_OK);
    cr_assert_eq(s_check("alice", "correct horsE"), PM_EDENIED);
    cr_assert_eq(s_check("bob", "correct horse"), PM_EDENIED);
    struct stat st;
    cr_assert_eq(stat(s_path, &st), 0);
    cr_assert_eq(st.st_mode & 07777, 0640);
    /* the password itself is nowhere in the file */
    char *data = NULL;
    cr_assert_eq(pm_file_read(s_path, 1 << 20, 0, &data, NULL, NULL), PM_OK);
    cr_assert_null(strstr(data, "correct horse"));
    cr_assert(strncmp(data, "alice:$argon2id$", 16) == 0, "%s", data);
    free(data);
}

Test(web_users, add_twice_passwd_remove)
{
    char *why = NULL;
    cr_assert_eq(
        pm_web_users_set(s_path, "alice", "first password", false, &why),
        PM_OK);
    cr_assert_eq(
        pm_web_users_set(s_path, "alice", "second password", false, &why),
        PM_EEXIST);
    cr_assert(strstr(why, "exists"), "%s", why);
    cr_assert_eq(pm_web_users_set(s_path, "bob", "second password", true, &why),
                 PM_ENOTFOUND);
    cr_assert_eq(
        pm_web_users_set(s_path, "alice", "second password", true, &why),
        PM_OK);
    cr_assert_eq(s_check("alice", "first password"), PM_EDENIED);
    cr_assert_eq(s_check("alice", "second password"), PM_OK);
    cr_assert_eq(pm_web_users_remove(s_path, "alice", &why), PM_OK);
    cr_assert_eq(s_check("alice", "second password"), PM_EDENIED);
    cr_assert_eq(pm_web_users_remove(s_path, "alice", &why), PM_ENOTFOUND);
    free(why);
}

typedef struct {
    const char *name;
    unsigned char *stamp;
    bool found;
} s_find_t;

static void
s_find_stamp(const char *name, const unsigned char *stamp, void *arg)
{
    s_find_t *f = arg;
    if (strcmp(name, f->name) == 0) {
        memcpy(f->stamp, stamp, PM_WEB_STAMP_LEN);
        f->found = true;
    }
}

/* NAME's stamp as pm_web_users_each gives it: PM_OK or PM_ENOTFOUND. */
static int
s_stamp_of(const char *name, unsigned char stamp[PM_WEB_STAMP_LEN])
{
    s_find_t f = {name, stamp, false};
    char *why = NULL;
    int rc = pm_web_users_each(s_path, s_find_stamp, &f, &why);
    cr_assert_eq(rc, PM_OK, "%s", why ? why : "");
    free(why);
    return f.found ? PM_OK : PM_ENOTFOUND;
}

/* A user's stamp is the one its check gave, until its password changes
 * or it is removed; another user's does not move. */
Test(web_users, a_stamp_follows_the_password)
{
    unsigned char at_login[PM_WEB_STAMP_LEN], now[PM_WEB_STAMP_LEN],
        bob[PM_WEB_STAMP_LEN];
    char *why = NULL;
    cr_assert_eq(
        pm_web_users_set(s_path, "alice", "first password", false, &why),
        PM_OK);
    cr_assert_eq(pm_web_users_set(s_path, "bob", "bobs password", false, &why),
                 PM_OK);
    cr_assert_eq(
        pm_web_users_check(s_path, "alice", "first password", at_login, &why),
        PM_OK);
    cr_assert_eq(s_stamp_of("alice", now), PM_OK);
    cr_assert_eq(memcmp(now, at_login, sizeof now), 0);
    cr_assert_eq(s_stamp_of("bob", bob), PM_OK);
    cr_assert_neq(memcmp(bob, at_login, sizeof bob), 0);
    /* the same password again is a new hash (a new salt): a new stamp */
    cr_assert_eq(
        pm_web_users_set(s_path, "alice", "first password", true, &why), PM_OK);
    cr_assert_eq(s_stamp_of("alice", now), PM_OK);
    cr_assert_neq(memcmp(now, at_login, sizeof now), 0);
    cr_assert_eq(s_stamp_of("bob", now), PM_OK);
    cr_assert_eq(memcmp(now, bob, sizeof now), 0);
    cr_assert_eq(pm_web_users_remove(s_path, "alice", &why), PM_OK);
    cr_assert_eq(s_stamp_of("alice", now), PM_ENOTFOUND);
    cr_assert_eq(s_stamp_of("carol", now), PM_ENOTFOUND);
    free(why);
}

Test(web_users, refuses_bad_names_and_passwords)
{
    char *why = NULL;
    cr_assert_eq(
        pm_web_users_set(s_path, "al:ice", "long enough pw", false, &why),
        PM_EINVAL);
    cr_assert(strstr(why, "letters, digits"), "%s", why);
    cr_assert_eq(pm_web_users_set(s_path, "", "long enough pw", false, &why),
                 PM_EINVAL);
    cr_assert_eq(pm_web_users_set(s_path, "alice", "short", false, &why),
                 PM_EINVAL);
    cr_assert(strstr(why, "10 to 1024"), "%s", why);
    cr_assert_eq(access(s_path, F_OK), -1, "nothing written");
    free(why);
}

Test(web_users, malformed_file_named_with_its_line)
{
    char *why = NULL;
    const char *text = "alice:$argon2id$v=19$m=65536,t=2,p=1$x$y\n"
                       "bob:plaintext\n";
    cr_assert_eq(
        pm_file_write(s_path, text, strlen(text), 0640, (gid_t)-1, NULL),
        PM_OK);
    cr_assert_eq(pm_web_users_check(s_path, "alice", "whatever pw", NULL, &why),
                 PM_EINVAL);
    cr_assert(strstr(why, ":2: not NAME:ARGON2ID-HASH"), "%s", why);
    free(why);
}

Test(web_users, a_missing_file_has_no_users)
{
    cr_assert_eq(s_check("alice", "correct horse"), PM_EDENIED);
    char *why = NULL;
    cr_assert_eq(pm_web_users_remove(s_path, "alice", &why), PM_ENOTFOUND);
    free(why);
}
