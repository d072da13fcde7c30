/* test_pf_drift.c - hand edits of what the policy owns (pm_pf_drift), and
 * pm_postconf_diff under it, on the real postconf and a scratch
 * configuration directory (a main.cf alone is enough for postconf -c). */
#include <criterion/criterion.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pm_pf_drift.h"
#include "pm_postconf.h"

static char s_dir[64];

static void
s_setup(void)
{
    snprintf(s_dir, sizeof s_dir, "/tmp/pm-test-drift.XXXXXX");
    cr_assert(mkdtemp(s_dir));
    char path[128];
    snprintf(path, sizeof path, "%s/main.cf", s_dir);
    FILE *f = fopen(path, "w");
    cr_assert(f);
    fputs("myhostname = node.example\n"
          "smtpd_helo_restrictions = reject_invalid_helo_hostname\n"
          "smtpd_helo_required = yes\n",
          f);
    fclose(f);
}

static void
s_teardown(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", s_dir);
    cr_expect_eq(system(cmd), 0);
}

TestSuite(drift, .init = s_setup, .fini = s_teardown);

/* What the policy "applied" in these tests. */
static const pm_postconf_param_t s_owned[] = {
    {"smtpd_helo_restrictions", "reject_invalid_helo_hostname"},
    {"smtpd_helo_required", "yes"},
};

/* A hand edit: postconf -c DIR ARGS (e.g. -e "name = value", -X name). */
static void
s_edit(const char *args)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "postconf -c %s %s", s_dir, args);
    cr_assert_eq(system(cmd), 0, "%s", cmd);
}

static void
s_free(Pm__Drift ***found_p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        pm__drift__free_unpacked((*found_p)[i], NULL);
    free(*found_p);
    *found_p = NULL;
}

Test(drift, postconf_diff_names_what_differs)
{
    char *found[2];
    cr_expect_eq(pm_postconf_diff(s_dir, s_owned, 2, found), 0);
    cr_expect(!found[0] && !found[1]);
    s_edit("-e 'smtpd_helo_restrictions = permit'");
    s_edit("-X smtpd_helo_required");
    cr_expect_eq(pm_postconf_diff(s_dir, s_owned, 2, found), 2);
    cr_expect_str_eq(found[0], "permit");
    cr_expect_str_eq(found[1], ""); /* no longer set: the default */
    free(found[0]);
    free(found[1]);
    char bad[128];
    snprintf(bad, sizeof bad, "%s/nowhere", s_dir);
    cr_expect_eq(pm_postconf_diff(bad, s_owned, 2, found), -1);
    cr_expect(!found[0] && !found[1]);
}

Test(drift, nothing_before_an_apply)
{
    pm_pf_drift_t *d = pm_pf_drift_new(s_dir);
    Pm__Drift **found = NULL;
    s_edit("-e 'smtpd_helo_restrictions = permit'");
    cr_expect_eq(pm_pf_drift_check(d, &found), 0);
    cr_expect_null(found);
    pm_pf_drift_destroy(&d);
    cr_expect_null(d);
}

Test(drift, owned_edit_found_once)
{
    pm_pf_drift_t *d = pm_pf_drift_new(s_dir);
    pm_pf_drift_applied(d, s_owned, 2);
    Pm__Drift **found = NULL;
    cr_expect_eq(pm_pf_drift_check(d, &found), 0);
    s_edit("-e 'smtpd_helo_restrictions = permit'");
    cr_assert_eq(pm_pf_drift_check(d, &found), 1);
    cr_expect_str_eq(found[0]->parameter, "smtpd_helo_restrictions");
    cr_expect_str_eq(found[0]->applied, "reject_invalid_helo_hostname");
    cr_expect_str_eq(found[0]->found, "permit");
    s_free(&found, 1);
    /* reported once: quiet until main.cf changes again */
    cr_expect_eq(pm_pf_drift_check(d, &found), 0);
    /* after a failed revert the next check reads main.cf again */
    pm_pf_drift_forget(d);
    cr_expect_eq(pm_pf_drift_check(d, &found), 1);
    s_free(&found, 1);
    pm_pf_drift_destroy(&d);
}

Test(drift, edit_in_place_found)
{
    pm_pf_drift_t *d = pm_pf_drift_new(s_dir);
    pm_pf_drift_applied(d, s_owned, 2);
    /* an editor writing the same inode, same size, mtime put back: ctime
     * still moves */
    char path[128];
    snprintf(path, sizeof path, "%s/main.cf", s_dir);
    struct stat before;
    cr_assert_eq(stat(path, &before), 0);
    FILE *f = fopen(path, "r+");
    cr_assert(f);
    cr_assert_eq(fseek(f, 0, SEEK_END), 0);
    cr_assert_eq(fseek(f, -4, SEEK_END), 0);
    fputs("no \n", f); /* smtpd_helo_required = yes -> "no " */
    fclose(f);
    struct timespec ts[2] = {before.st_atim, before.st_mtim};
    cr_assert_eq(utimensat(AT_FDCWD, path, ts, 0), 0);
    Pm__Drift **found = NULL;
    cr_assert_eq(pm_pf_drift_check(d, &found), 1);
    cr_expect_str_eq(found[0]->parameter, "smtpd_helo_required");
    cr_expect_str_eq(found[0]->found, "no");
    s_free(&found, 1);
    pm_pf_drift_destroy(&d);
}

Test(drift, unowned_edit_is_the_nodes_business)
{
    pm_pf_drift_t *d = pm_pf_drift_new(s_dir);
    pm_pf_drift_applied(d, s_owned, 2);
    s_edit("-e 'smtpd_banner = $myhostname ESMTP hello'");
    Pm__Drift **found = NULL;
    cr_expect_eq(pm_pf_drift_check(d, &found), 0);
    cr_expect_null(found);
    pm_pf_drift_destroy(&d);
}

/* An agent that starts again expects what its last run applied: an edit
 * made meanwhile is found by the very first check, though this process
 * never saw main.cf before it. */
Test(drift, edit_made_while_stopped_found_at_start)
{
    s_edit("-e 'smtpd_helo_restrictions = permit'"); /* agent not running */
    pm_pf_drift_t *d = pm_pf_drift_new(s_dir);
    pm_pf_drift_expect(d, s_owned, 2);
    Pm__Drift **found = NULL;
    cr_assert_eq(pm_pf_drift_check(d, &found), 1);
    cr_expect_str_eq(found[0]->parameter, "smtpd_helo_restrictions");
    cr_expect_str_eq(found[0]->applied, "reject_invalid_helo_hostname");
    cr_expect_str_eq(found[0]->found, "permit");
    s_free(&found, 1);
    cr_expect_eq(pm_pf_drift_check(d, &found), 0, "reported once");
    /* nothing edited meanwhile: nothing found */
    s_edit("-e 'smtpd_helo_restrictions = reject_invalid_helo_hostname'");
    pm_pf_drift_expect(d, s_owned, 2);
    cr_expect_eq(pm_pf_drift_check(d, &found), 0);
    pm_pf_drift_destroy(&d);
}

/* What an apply may skip asking postconf: known while main.cf is as the
 * last apply (or a clean check) left it, unknown once anything touched it
 * or drift was found. */
Test(drift, holds_known_only_while_main_cf_untouched)
{
    pm_pf_drift_t *d = pm_pf_drift_new(s_dir);
    cr_expect_eq(pm_pf_drift_holds(d, s_owned, 2), -1, "nothing applied");
    pm_pf_drift_applied(d, s_owned, 2);
    cr_expect_eq(pm_pf_drift_holds(d, s_owned, 2), 1);
    cr_expect_eq(pm_pf_drift_holds(d, s_owned + 1, 1), 1, "a subset holds");
    const pm_postconf_param_t other[] = {
        {"smtpd_helo_restrictions", "permit"},
        {"smtpd_helo_required", "yes"},
    };
    cr_expect_eq(pm_pf_drift_holds(d, other, 2), 0, "another value");
    const pm_postconf_param_t unowned[] = {{"smtpd_banner", "hi"}};
    cr_expect_eq(pm_pf_drift_holds(d, unowned, 1), -1, "never applied");

    s_edit("-e 'smtpd_banner = $myhostname ESMTP hello'");
    cr_expect_eq(pm_pf_drift_holds(d, s_owned, 2), -1, "main.cf changed");
    Pm__Drift **found = NULL;
    cr_expect_eq(pm_pf_drift_check(d, &found), 0); /* read: still holds */
    cr_expect_eq(pm_pf_drift_holds(d, s_owned, 2), 1);

    s_edit("-e 'smtpd_helo_restrictions = permit'");
    cr_assert_eq(pm_pf_drift_check(d, &found), 1);
    s_free(&found, 1);
    cr_expect_eq(pm_pf_drift_holds(d, s_owned, 2), -1, "drift found");
    cr_expect_eq(pm_pf_drift_holds(d, other, 2), -1);
    pm_pf_drift_applied(d, other, 2);
    cr_expect_eq(pm_pf_drift_holds(d, other, 2), 1);
    pm_pf_drift_forget(d);
    cr_expect_eq(pm_pf_drift_holds(d, other, 2), -1, "forgotten");
    pm_pf_drift_destroy(&d);
}
