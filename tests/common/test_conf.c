/* test_conf.c - pm_conf: daemon parameters from defaults, a "name = value"
 * file and command-line options, in that order of precedence. */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pm_conf.h"

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

/* A fresh table for each test: values are filled in by pm_conf_*. */
#define S_TABLE(t)                                                             \
    pm_param_t t[] = {                                                         \
        {"state_dir", "/var/lib/privmta", "where revisions live", NULL},       \
        {"listen", "tcp://*:7700", "API endpoint", NULL},                      \
        {"log_level", "info", "lowest level logged", NULL},                    \
        {"no_default", NULL, "has no default", NULL},                          \
        {NULL, NULL, NULL, NULL},                                              \
    }

static char s_path[64];

static void
s_setup(void)
{
    strcpy(s_path, "/tmp/pm_conf_test.XXXXXX");
    int fd = mkstemp(s_path);
    cr_assert_geq(fd, 0);
    close(fd);
}

static void
s_teardown(void)
{
    unlink(s_path);
}

TestSuite(conf, .init = s_setup, .fini = s_teardown);

static void
s_write(const char *text)
{
    FILE *f = fopen(s_path, "w");
    cr_assert_not_null(f);
    fputs(text, f);
    cr_assert_eq(fclose(f), 0);
}

/* "PATH:LINE: REST" for the test file. Static buffer. */
static const char *
s_at(unsigned line, const char *rest)
{
    static char buf[256];
    snprintf(buf, sizeof buf, "%s:%u: %s", s_path, line, rest);
    return buf;
}

Test(conf, defaults)
{
    S_TABLE(t);
    pm_conf_defaults(t);
    cr_expect_str_eq(pm_conf_get(t, "state_dir"), "/var/lib/privmta");
    cr_expect_str_eq(pm_conf_get(t, "listen"), "tcp://*:7700");
    cr_expect_str_eq(pm_conf_get(t, "log_level"), "info");
    cr_expect_str_eq(pm_conf_get(t, "no_default"), "");
    cr_expect_str_eq(pm_conf_get(t, "state-dir"), "/var/lib/privmta");
    cr_expect_null(pm_conf_get(t, "nope"));
    cr_expect_null(pm_conf_get(t, "state"));
    cr_expect_null(pm_conf_get(t, "state_dir_x"));
    /* defaults again after a change resets the value */
    cr_expect(pm_conf_set(t, "log-level", "debug"));
    cr_expect_str_eq(pm_conf_get(t, "log_level"), "debug");
    cr_expect_not(pm_conf_set(t, "nope", "x"));
    pm_conf_defaults(t);
    cr_expect_str_eq(pm_conf_get(t, "log_level"), "info");
    pm_conf_free(t);
    cr_expect_null(t[0].value);
}

Test(conf, file_parsing)
{
    S_TABLE(t);
    pm_conf_defaults(t);
    s_write("# privmta controller\n"
            "\n"
            "   \t\n"
            "state_dir = /srv/privmta\n"
            "listen=tcp://10.0.0.1:7700\n"
            "   log_level   =   debug   # was info\n"
            "no_default = a=b c\r\n");
    pm_diag_t *d = pm_diag_new("test");
    cr_expect_eq(pm_conf_file(t, s_path, true, d), 0);
    cr_expect_eq(pm_diag_count(d), 0, "%s", pm_diag_line(d, 0));
    cr_expect_str_eq(pm_conf_get(t, "state_dir"), "/srv/privmta");
    cr_expect_str_eq(pm_conf_get(t, "listen"), "tcp://10.0.0.1:7700");
    cr_expect_str_eq(pm_conf_get(t, "log_level"), "debug");
    cr_expect_str_eq(pm_conf_get(t, "no_default"), "a=b c");
    pm_diag_destroy(&d);
    pm_conf_free(t);
}

Test(conf, file_problems_named_with_file_and_line)
{
    S_TABLE(t);
    pm_conf_defaults(t);
    s_write("# comment\n"
            "state_dir = /a\n"
            "statedir = /b\n"
            "just some words\n"
            "\n"
            "  log_levle=debug  # typo\n"
            "listen = tcp://*:1\n");
    pm_diag_t *d = pm_diag_new("test");
    cr_expect_eq(pm_conf_file(t, s_path, false, d), 3);
    cr_assert_eq(pm_diag_count(d), 3);
    cr_expect_str_eq(pm_diag_line(d, 0),
                     s_at(3, "statedir: unknown parameter"));
    cr_expect_str_eq(pm_diag_key(d, 0), "statedir");
    cr_expect_str_eq(pm_diag_line(d, 1), s_at(4, "expected 'name = value'"));
    cr_expect_str_eq(pm_diag_line(d, 2),
                     s_at(6, "log_levle: unknown parameter"));
    /* good lines around the bad ones still apply */
    cr_expect_str_eq(pm_conf_get(t, "state_dir"), "/a");
    cr_expect_str_eq(pm_conf_get(t, "listen"), "tcp://*:1");
    cr_expect_str_eq(pm_conf_get(t, "log_level"), "info");
    pm_diag_destroy(&d);
    pm_conf_free(t);
}

Test(conf, file_counts_only_new_problems)
{
    S_TABLE(t);
    pm_conf_defaults(t);
    s_write("bogus = 1\n");
    pm_diag_t *d = pm_diag_new("test");
    pm_diag_add(d, 0, NULL, "earlier problem");
    cr_expect_eq(pm_conf_file(t, s_path, true, d), 1);
    cr_expect_eq(pm_diag_count(d), 2);
    pm_diag_destroy(&d);
    pm_conf_free(t);
}

Test(conf, missing_file)
{
    S_TABLE(t);
    pm_conf_defaults(t);
    unlink(s_path);
    pm_diag_t *d = pm_diag_new("test");
    cr_expect_eq(pm_conf_file(t, s_path, false, d), 0);
    cr_expect_eq(pm_diag_count(d), 0);
    cr_expect_eq(pm_conf_file(t, s_path, true, d), 1);
    cr_assert_eq(pm_diag_count(d), 1);
    cr_expect(strstr(pm_diag_line(d, 0), s_path) != NULL, "%s",
              pm_diag_line(d, 0));
    cr_expect(strstr(pm_diag_line(d, 0), "cannot open") != NULL, "%s",
              pm_diag_line(d, 0));
    cr_expect_str_eq(pm_conf_get(t, "state_dir"), "/var/lib/privmta");
    pm_diag_destroy(&d);
    pm_conf_free(t);
}

/* A line longer than the reader's buffer must not shift the line numbers
 * of the lines after it. */
Test(conf, long_line_keeps_line_numbers)
{
    S_TABLE(t);
    pm_conf_defaults(t);
    size_t n = 6000;
    char *text = malloc(n + 64);
    cr_assert_not_null(text);
    strcpy(text, "state_dir = /");
    size_t len = strlen(text);
    memset(text + len, 'x', n);
    strcpy(text + len + n, "\nbogus = 1\n");
    s_write(text);
    free(text);
    pm_diag_t *d = pm_diag_new("test");
    pm_conf_file(t, s_path, true, d);
    bool found = false;
    for (size_t i = 0; i < pm_diag_count(d); i++)
        if (pm_diag_key(d, i) && strcmp(pm_diag_key(d, i), "bogus") == 0) {
            found = true;
            cr_expect_str_eq(pm_diag_line(d, i),
                             s_at(2, "bogus: unknown parameter"));
        }
    cr_expect(found, "bogus on line 2 not reported");
    pm_diag_destroy(&d);
    pm_conf_free(t);
}

Test(conf, args_forms_and_first_operand)
{
    S_TABLE(t);
    pm_conf_defaults(t);
    char *argv[] = {"prog",
                    "--state-dir=/x",
                    "--log-level",
                    "debug",
                    "-c",
                    "/etc/p.conf",
                    "--listen",
                    "tcp://*:9",
                    "--no_default=u",
                    "operand",
                    "--listen=late"};
    const char *config = NULL;
    pm_diag_t *d = pm_diag_new("command line");
    int first = pm_conf_args(t, (int)COUNT(argv), argv, &config, d);
    cr_expect_eq(first, 9);
    cr_expect_eq(pm_diag_count(d), 0, "%s", pm_diag_line(d, 0));
    cr_expect_str_eq(config, "/etc/p.conf");
    cr_expect_str_eq(pm_conf_get(t, "state_dir"), "/x");
    cr_expect_str_eq(pm_conf_get(t, "log_level"), "debug");
    cr_expect_str_eq(pm_conf_get(t, "listen"), "tcp://*:9");
    cr_expect_str_eq(pm_conf_get(t, "no_default"), "u");
    pm_diag_destroy(&d);
    pm_conf_free(t);
}

Test(conf, args_long_config_and_double_dash)
{
    S_TABLE(t);
    pm_conf_defaults(t);
    char *argv[] = {"prog", "--config", "/c", "--", "--listen=x", "op"};
    const char *config = NULL;
    pm_diag_t *d = pm_diag_new("command line");
    cr_expect_eq(pm_conf_args(t, (int)COUNT(argv), argv, &config, d), 4);
    cr_expect_str_eq(config, "/c");
    cr_expect_str_eq(pm_conf_get(t, "listen"), "tcp://*:7700");
    cr_expect_eq(pm_diag_count(d), 0);
    pm_diag_destroy(&d);
    pm_conf_free(t);
}

Test(conf, args_none)
{
    S_TABLE(t);
    pm_conf_defaults(t);
    char *argv[] = {"prog", "status"};
    const char *config = NULL;
    pm_diag_t *d = pm_diag_new("command line");
    cr_expect_eq(pm_conf_args(t, 1, argv, &config, d), 1);
    cr_expect_eq(pm_conf_args(t, 2, argv, &config, d), 1);
    cr_expect_null(config);
    cr_expect_eq(pm_diag_count(d), 0);
    pm_diag_destroy(&d);
    pm_conf_free(t);
}

Test(conf, args_unknown_option)
{
    S_TABLE(t);
    pm_conf_defaults(t);
    char *argv[] = {"prog", "--state-dri=/x", "--log-level=debug"};
    const char *config = NULL;
    pm_diag_t *d = pm_diag_new("command line");
    pm_conf_args(t, (int)COUNT(argv), argv, &config, d);
    cr_assert_eq(pm_diag_count(d), 1);
    cr_expect(strstr(pm_diag_line(d, 0), "--state-dri") != NULL, "%s",
              pm_diag_line(d, 0));
    cr_expect(strstr(pm_diag_line(d, 0), "unknown option") != NULL, "%s",
              pm_diag_line(d, 0));
    cr_expect(strncmp(pm_diag_line(d, 0), "command line: ", 14) == 0, "%s",
              pm_diag_line(d, 0));
    cr_expect_str_eq(pm_conf_get(t, "state_dir"), "/var/lib/privmta");
    cr_expect_str_eq(pm_conf_get(t, "log_level"), "debug");
    pm_diag_destroy(&d);
    pm_conf_free(t);
}

Test(conf, args_missing_value)
{
    S_TABLE(t);
    pm_conf_defaults(t);
    char *argv[] = {"prog", "--listen"};
    const char *config = NULL;
    pm_diag_t *d = pm_diag_new("command line");
    cr_expect_eq(pm_conf_args(t, 2, argv, &config, d), 2);
    cr_assert_eq(pm_diag_count(d), 1);
    cr_expect(strstr(pm_diag_line(d, 0), "--listen") != NULL);
    cr_expect(strstr(pm_diag_line(d, 0), "needs a value") != NULL, "%s",
              pm_diag_line(d, 0));
    cr_expect_str_eq(pm_conf_get(t, "listen"), "tcp://*:7700");

    char *argv2[] = {"prog", "-c"};
    pm_diag_t *d2 = pm_diag_new("command line");
    pm_conf_args(t, 2, argv2, &config, d2);
    cr_assert_eq(pm_diag_count(d2), 1);
    cr_expect(strstr(pm_diag_line(d2, 0), "-c") != NULL);
    cr_expect(strstr(pm_diag_line(d2, 0), "needs a file name") != NULL, "%s",
              pm_diag_line(d2, 0));
    cr_expect_null(config);
    pm_diag_destroy(&d);
    pm_diag_destroy(&d2);
    pm_conf_free(t);
}

/* The documented order: defaults, the command line once to find the file,
 * the file, then the command line again so that options win. */
Test(conf, precedence_file_then_args)
{
    S_TABLE(t);
    s_write("state_dir = /from/file\nlog_level = warn\n");
    char *argv[] = {"prog", "--log-level", "debug", "-c", s_path, "run"};
    int argc = (int)COUNT(argv);
    const char *config = NULL;
    pm_diag_t *d = pm_diag_new("command line");
    pm_conf_defaults(t);
    cr_expect_eq(pm_conf_args(t, argc, argv, &config, d), 5);
    cr_assert_str_eq(config, s_path);
    cr_expect_eq(pm_conf_file(t, config, true, d), 0);
    cr_expect_eq(pm_conf_args(t, argc, argv, &config, d), 5);
    cr_expect_eq(pm_diag_count(d), 0, "%s", pm_diag_line(d, 0));
    cr_expect_str_eq(pm_conf_get(t, "state_dir"), "/from/file");
    cr_expect_str_eq(pm_conf_get(t, "log_level"), "debug");
    cr_expect_str_eq(pm_conf_get(t, "listen"), "tcp://*:7700");
    pm_diag_destroy(&d);
    pm_conf_free(t);
}

Test(conf, usage_lists_flags_with_dashes)
{
    S_TABLE(t);
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    cr_assert_not_null(f);
    pm_conf_usage(t, f);
    fclose(f);
    cr_expect(strstr(buf, "--state-dir") != NULL, "%s", buf);
    cr_expect(strstr(buf, "--no-default") != NULL, "%s", buf);
    cr_expect(strstr(buf, "(default: /var/lib/privmta)") != NULL, "%s", buf);
    cr_expect(strstr(buf, "(default: none)") != NULL, "%s", buf);
    cr_expect(strstr(buf, "state_dir") == NULL, "%s", buf);
    free(buf);
}

/* The file a package installs: every setting commented out with its
 * default, its help above it wrapped at 76 columns, tests-only settings
 * left out; and the file reads back to the defaults. */
Test(conf, print_is_a_commented_file_that_reads_back)
{
    pm_param_t t[] = {
        {"state_dir", "/var/lib/privmta", "where revisions live", NULL},
        {"long_help", "1",
         "a help text long enough to be wrapped over more than one line of "
         "the file, at a blank, so that no line of it is wider than the "
         "seventy-six columns of a terminal",
         NULL},
        {"no_default", NULL, "has no default", NULL},
        {"debug_crash", "", "tests only", NULL},
        {NULL, NULL, NULL, NULL},
    };
    FILE *f = fopen(s_path, "w");
    cr_assert_not_null(f);
    pm_conf_print(t, "privmta-x", f);
    fclose(f);
    char *buf = NULL;
    size_t len = 0;
    f = fopen(s_path, "r");
    cr_assert_gt(getdelim(&buf, &len, '\0', f), 0);
    fclose(f);
    cr_expect(strncmp(buf, "# settings of privmta-x, for its -c FILE\n", 41) ==
                  0,
              "%s", buf);
    cr_expect(strstr(buf, "\n# where revisions live\n#state_dir = "
                          "/var/lib/privmta\n"),
              "%s", buf);
    cr_expect(strstr(buf, "\n#no_default = \n"), "%s", buf);
    cr_expect(!strstr(buf, "debug_crash"), "tests-only settings left out");
    for (char *line = strtok(buf, "\n"); line; line = strtok(NULL, "\n")) {
        cr_expect(line[0] == '#', "not commented: %s", line);
        cr_expect_leq(strlen(line), 76, "too wide: %s", line);
    }
    free(buf);
    /* read back: all comments, nothing set, no problem */
    pm_conf_defaults(t);
    pm_diag_t *diag = pm_diag_new("test");
    pm_conf_file(t, s_path, true, diag);
    cr_expect_eq(pm_diag_count(diag), 0);
    cr_expect_str_eq(pm_conf_get(t, "state_dir"), "/var/lib/privmta");
    pm_diag_destroy(&diag);
    pm_conf_free(t);
}
