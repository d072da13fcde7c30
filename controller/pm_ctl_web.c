/* pm_ctl_web.c - privmta-ctl web user add|passwd|remove|list: the web
 * console's users file (pm_web_users). The password is read from the
 * terminal without echo (twice), or as one line from standard input when
 * that is not a terminal; never from the command line, where any user of
 * the host could read it in the process list. */
#include "pm_ctl.h"
#include "pm_error.h"
#include "pm_mem.h"
#include "pm_web_users.h"

#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

/* One line of standard input into BUF, without its newline; echo off on
 * a terminal, with PROMPT on stderr. False at end of input or when the
 * line does not fit. */
static bool
s_read_secret(const char *prompt, char *buf, size_t size)
{
    bool tty = isatty(STDIN_FILENO);
    struct termios old, quiet;
    if (tty) {
        fprintf(stderr, "%s", prompt);
        tcgetattr(STDIN_FILENO, &old);
        quiet = old;
        quiet.c_lflag &= ~(tcflag_t)ECHO;
        tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
    }
    bool ok = fgets(buf, (int)size, stdin) != NULL;
    if (tty) {
        tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
        fprintf(stderr, "\n");
    }
    size_t len = ok ? strlen(buf) : 0;
    if (ok && (len == 0 || buf[len - 1] != '\n') && !feof(stdin))
        return false; /* longer than BUF */
    if (len && buf[len - 1] == '\n')
        buf[--len] = '\0';
    return ok;
}

static int
s_password(char *pw, size_t size)
{
    char again[PM_WEB_PASSWORD_MAX + 2];
    if (!s_read_secret("password: ", pw, size)) {
        fprintf(stderr,
                "privmta-ctl web user: no password read (give it on "
                "standard input, one line of at most %d characters)\n",
                PM_WEB_PASSWORD_MAX);
        return PM_EXIT_USAGE;
    }
    if (isatty(STDIN_FILENO) &&
        (!s_read_secret("again: ", again, sizeof again) ||
         strcmp(pw, again) != 0)) {
        sodium_memzero(again, sizeof again);
        fprintf(stderr, "privmta-ctl web user: the passwords differ\n");
        return PM_EXIT_USAGE;
    }
    sodium_memzero(again, sizeof again);
    return PM_EXIT_OK;
}

static void
s_print_user(const char *name, const unsigned char *stamp, void *arg)
{
    (void)stamp, (void)arg;
    printf("%s\n", name);
}

int
pm_ctl_web(pm_ctl_t *ctl, int argc, char **argv)
{
    const char *cmd = argc >= 3 && strcmp(argv[1], "user") == 0 ? argv[2] : "";
    bool list = strcmp(cmd, "list") == 0 && argc == 3;
    bool named =
        argc == 4 && (strcmp(cmd, "add") == 0 || strcmp(cmd, "passwd") == 0 ||
                      strcmp(cmd, "remove") == 0);
    if (!list && !named) {
        fprintf(stderr, "usage: privmta-ctl web user add|passwd|remove NAME"
                        "\n       privmta-ctl web user list\n");
        return PM_EXIT_USAGE;
    }
    const char *path = pm_ctl_web_users(ctl);
    char *why = NULL, pw[PM_WEB_PASSWORD_MAX + 2];
    int rc = PM_OK;
    if (list) {
        rc = pm_web_users_each(path, s_print_user, NULL, &why);
    } else if (strcmp(cmd, "remove") == 0) {
        rc = pm_web_users_remove(path, argv[3], &why);
    } else {
        int usage = s_password(pw, sizeof pw);
        if (usage != PM_EXIT_OK)
            return usage;
        rc = pm_web_users_set(path, argv[3], pw, strcmp(cmd, "passwd") == 0,
                              &why);
        sodium_memzero(pw, sizeof pw);
    }
    if (rc != PM_OK) {
        fprintf(stderr, "privmta-ctl web user %s: %s\n", cmd, why);
        free(why);
        return rc == PM_EINVAL ? PM_EXIT_USAGE : PM_EXIT_REJECTED;
    }
    if (!list)
        printf("user %s %s in %s\n", argv[3],
               strcmp(cmd, "add") == 0      ? "added"
               : strcmp(cmd, "passwd") == 0 ? "has a new password"
                                            : "removed",
               path);
    return PM_EXIT_OK;
}
