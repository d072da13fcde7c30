/* test_postconf.c - main.cf through postconf (pm_postconf).
 *
 * The parser is fed text directly; reading and writing run the real
 * postconf on a scratch configuration directory (a main.cf alone is
 * enough for postconf -c).
 */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "pm_error.h"
#include "pm_mem.h"
#include "pm_postconf.h"

/* ------------------------------------------------------------------------
 * Parsing */

static void
s_free_all(char **values, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(values[i]);
}

Test(parse, maps_by_name)
{
    const char *names[] = {"relayhost", "mynetworks", "smtpd_milters"};
    char *v[3];
    size_t found = pm_postconf_parse("mynetworks = 127.0.0.0/8 [::1]/128\n"
                                     "relayhost =\n"
                                     "smtpd_milters = unix:/x = y\n",
                                     names, 3, v);
    cr_expect_eq(found, 3);
    cr_expect_str_eq(v[0], "");
    cr_expect_str_eq(v[1], "127.0.0.0/8 [::1]/128");
    cr_expect_str_eq(v[2], "unix:/x = y");
    s_free_all(v, 3);
}

/* The bug this module fixes: postconf prints no line for a parameter it
 * does not know (only a warning on stderr), so reading values by position
 * (postconf -h) gave every later name the value of the one after it. */
Test(parse, unknown_name_shifts_nothing)
{
    const char *names[] = {"mail_name", "privmta_unknown", "myorigin"};
    char *v[3];
    size_t found = pm_postconf_parse("mail_name = Postfix\n"
                                     "myorigin = node.example\n",
                                     names, 3, v);
    cr_expect_eq(found, 2);
    cr_expect_str_eq(v[0], "Postfix");
    cr_expect_null(v[1]);
    cr_expect_str_eq(v[2], "node.example");
    s_free_all(v, 3);
}

Test(parse, ignores_what_was_not_asked)
{
    const char *names[] = {"relayhost"};
    char *v[1];
    cr_expect_eq(pm_postconf_parse("", names, 1, v), 0);
    cr_expect_null(v[0]);
    cr_expect_eq(pm_postconf_parse("relay = a\nrelayhostx = b\n"
                                   "no equals sign\n = c\nrelay host = d\n"
                                   "relayhost = [10.0.0.1]:25",
                                   names, 1, v),
                 1);
    cr_expect_str_eq(v[0], "[10.0.0.1]:25"); /* last line, no newline */
    s_free_all(v, 1);
    /* the first line of a name wins */
    cr_expect_eq(
        pm_postconf_parse("relayhost = a\nrelayhost = b\n", names, 1, v), 1);
    cr_expect_str_eq(v[0], "a");
    s_free_all(v, 1);
}

/* ------------------------------------------------------------------------
 * The real postconf */

static char s_dir[64];

static void
s_scratch(const char *main_cf)
{
    snprintf(s_dir, sizeof s_dir, "/tmp/pm-test-postconf.XXXXXX");
    cr_assert(mkdtemp(s_dir));
    char path[128];
    snprintf(path, sizeof path, "%s/main.cf", s_dir);
    FILE *f = fopen(path, "w");
    cr_assert(f);
    fputs(main_cf, f);
    fclose(f);
}

static void
s_cleanup(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", s_dir);
    cr_expect_eq(system(cmd), 0);
}

TestSuite(postconf, .fini = s_cleanup);

Test(postconf, read_maps_by_name_and_expands)
{
    s_scratch("myhostname = node.example\nmyorigin = $myhostname\n"
              "mynetworks = 10.0.0.0/8\nrelayhost =\n");
    const char *names[] = {"mynetworks", "privmta_unknown", "relayhost",
                           "myorigin", "mail_name"};
    char *v[5];
    char *why = NULL;
    cr_assert_eq(pm_postconf_read(s_dir, names, 5, v, &why), PM_OK, "%s",
                 why ? why : "");
    cr_expect_str_eq(v[0], "10.0.0.0/8");
    cr_expect_str_eq(v[1], "");
    cr_expect_str_eq(v[2], "");
    cr_expect_str_eq(v[3], "node.example");
    cr_expect_str_eq(v[4], "Postfix");
    s_free_all(v, 5);
    cr_expect_null(why);
}

Test(postconf, read_fails_without_main_cf)
{
    s_scratch("");
    char path[128];
    snprintf(path, sizeof path, "%s/main.cf", s_dir);
    unlink(path);
    const char *names[] = {"mynetworks"};
    char *v[1] = {NULL};
    char *why = NULL;
    cr_assert_eq(pm_postconf_read(s_dir, names, 1, v, &why), PM_EIO);
    cr_expect_null(v[0]);
    cr_expect(why && strstr(why, "postconf -x: exit 1") &&
                  strstr(why, "main.cf"),
              "%s", why ? why : "");
    free(why);
}

static time_t
s_mtime(void)
{
    char path[128];
    snprintf(path, sizeof path, "%s/main.cf", s_dir);
    struct stat st;
    cr_assert_eq(stat(path, &st), 0);
    return st.st_mtime;
}

Test(postconf, write_then_has)
{
    s_scratch("# keep me\nmynetworks = 10.0.0.0/8\n");
    pm_postconf_param_t params[] = {{"mynetworks", "127.0.0.0/8"},
                                    {"relayhost", ""},
                                    {"smtpd_helo_required", "yes"}};
    cr_expect_not(pm_postconf_has(s_dir, params, 3));
    char *why = NULL;
    cr_assert_eq(pm_postconf_write(s_dir, params, 3, &why), PM_OK, "%s",
                 why ? why : "");
    cr_expect_null(why);
    cr_expect(pm_postconf_has(s_dir, params, 3));
    cr_expect_leq(s_mtime(), time(NULL) - 1, "main.cf not dated back");
    pm_postconf_param_t other = {"relayhost", "[10.0.0.1]"};
    cr_expect_not(pm_postconf_has(s_dir, &other, 1));
}

/* What main.cf itself sets, unexpanded; NULL for what it leaves to the
 * default. Unsetting removes the line, twice is no error. */
Test(postconf, read_set_and_unset)
{
    s_scratch("# keep me\nmyorigin = $myhostname\nsmtpd_delay_reject = no\n");
    const char *names[] = {"myorigin", "smtpd_delay_reject", "mynetworks"};
    char *v[3];
    char *why = NULL;
    cr_assert_eq(pm_postconf_read_set(s_dir, names, 3, v, &why), PM_OK, "%s",
                 why ? why : "");
    cr_expect_str_eq(v[0], "$myhostname");
    cr_expect_str_eq(v[1], "no");
    cr_expect_null(v[2]);
    s_free_all(v, 3);
    const char *unset[] = {"smtpd_delay_reject", "mynetworks"};
    cr_assert_eq(pm_postconf_unset(s_dir, unset, 2, &why), PM_OK, "%s",
                 why ? why : "");
    cr_assert_eq(pm_postconf_unset(s_dir, unset, 2, &why), PM_OK, "%s",
                 why ? why : "");
    cr_expect_leq(s_mtime(), time(NULL) - 1, "main.cf not dated back");
    char path[128], buf[256] = "";
    snprintf(path, sizeof path, "%s/main.cf", s_dir);
    FILE *f = fopen(path, "r");
    cr_assert(f);
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    cr_expect_str_eq(buf, "# keep me\nmyorigin = $myhostname\n");
}

/* postconf -e takes a parameter Postfix does not know; reading it back
 * does not (postconf -n warns "unused parameter"). */
Test(postconf, write_refuses_what_does_not_read_back)
{
    s_scratch("mynetworks = 10.0.0.0/8\n");
    pm_postconf_param_t params[] = {{"privmta_bogus", "1"}};
    char *why = NULL;
    cr_assert_eq(pm_postconf_write(s_dir, params, 1, &why), PM_EINVAL);
    cr_expect(why && strstr(why, "postconf -n: ") &&
                  strstr(why, "privmta_bogus"),
              "%s", why ? why : "");
    free(why);
}

Test(postconf, write_file_keeps_mode_dates_back)
{
    s_scratch("old\n");
    char path[128];
    snprintf(path, sizeof path, "%s/main.cf", s_dir);
    cr_assert_eq(chmod(path, 0640), 0);
    struct stat st;
    cr_assert_eq(stat(path, &st), 0);
    char *why = NULL;
    cr_assert_eq(pm_postconf_write_file(path, "new\n", 4, &st, &why), PM_OK,
                 "%s", why ? why : "");
    struct stat now;
    cr_assert_eq(stat(path, &now), 0);
    cr_expect_eq(now.st_mode & 07777, 0640);
    cr_expect_eq(now.st_size, 4);
    cr_expect_leq(now.st_mtime, time(NULL) - 1);
}

Test(postconf, overrides_read_by_name_and_written)
{
    s_scratch("myhostname = node.example\n");
    char path[128];
    snprintf(path, sizeof path, "%s/master.cf", s_dir);
    FILE *f = fopen(path, "w");
    cr_assert(f);
    fputs("smtp inet n - n - - smtpd\n"
          "submission inet n - n - - smtpd\n"
          "  -o syslog_name=postfix/submission\n"
          "  -o smtpd_client_restrictions=permit_sasl_authenticated,reject\n"
          "127.0.0.1:2600 inet n - n - - smtpd -o smtpd_delay_reject=yes\n",
          f);
    fclose(f);
    const char *names[] = {"smtpd_client_restrictions", "smtpd_delay_reject"};
    pm_postconf_param_t *over = NULL;
    size_t n = 0;
    char *why = NULL;
    cr_assert_eq(pm_postconf_read_overrides(s_dir, names, 2, &over, &n, &why),
                 PM_OK, "%s", why ? why : "");
    cr_assert_eq(n, 2, "syslog_name is not asked for");
    cr_expect_str_eq(over[0].name, "submission/inet/smtpd_client_restrictions");
    cr_expect_str_eq(over[0].value, "permit_sasl_authenticated,reject");
    cr_expect_str_eq(over[1].name, "127.0.0.1:2600/inet/smtpd_delay_reject");
    cr_expect_str_eq(over[1].value, "yes");
    free(over[0].value);
    over[0].value = pm_strdup("$privmta_test_restrictions");
    cr_assert_eq(pm_postconf_write_overrides(s_dir, over, 1, &why), PM_OK, "%s",
                 why ? why : "");
    pm_postconf_params_free(&over, n);
    cr_assert_eq(pm_postconf_read_overrides(s_dir, names, 2, &over, &n, &why),
                 PM_OK);
    cr_expect_str_eq(over[0].value, "$privmta_test_restrictions");
    pm_postconf_params_free(&over, n);
    pm_postconf_param_t blank = {"submission/inet/smtpd_client_restrictions",
                                 "a b"};
    cr_expect_eq(pm_postconf_write_overrides(s_dir, &blank, 1, &why), PM_EIO,
                 "postconf -P takes no blanks");
    cr_expect(why && strstr(why, "postconf -P"), "%s", why ? why : "");
    free(why);
}
