/* test_pf_sasl.c - does the node's SASL backend answer (pm_pf_sasl)? */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "pm_pf_sasl.h"

/* A listening unix socket at DIR/private/auth, as dovecot's would be. */
static int
s_listen(const char *dir)
{
    char sub[128];
    snprintf(sub, sizeof sub, "%s/private", dir);
    cr_assert_eq(mkdir(sub, 0700), 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s/private/auth", dir);
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    cr_assert(fd >= 0);
    cr_assert_eq(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    cr_assert_eq(listen(fd, 4), 0);
    return fd;
}

Test(sasl, dovecot_socket)
{
    char dir[] = "/tmp/pm-test-sasl.XXXXXX";
    cr_assert(mkdtemp(dir));
    char *problem = NULL;
    cr_expect_not(pm_pf_sasl_answers("dovecot", "private/auth", dir, &problem));
    cr_expect(problem &&
                  strstr(problem, "no SASL backend: smtpd_sasl_type "
                                  "dovecot cannot connect to") &&
                  strstr(problem, "/private/auth: No such file"),
              "%s", problem ? problem : "");
    free(problem);
    problem = NULL;
    int fd = s_listen(dir);
    /* relative to the queue directory, or absolute */
    cr_expect(pm_pf_sasl_answers("dovecot", "private/auth", dir, &problem));
    char abs[128];
    snprintf(abs, sizeof abs, "%s/private/auth", dir);
    cr_expect(pm_pf_sasl_answers("dovecot", abs, "/nonexistent", &problem));
    cr_expect_null(problem);
    close(fd);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    cr_expect_eq(system(cmd), 0);
}

Test(sasl, dovecot_inet_trusted)
{
    char *problem = NULL;
    cr_expect(
        pm_pf_sasl_answers("dovecot", "inet:10.0.0.1:12345", "/x", &problem));
    cr_expect_null(problem);
}

Test(sasl, other_types)
{
    char *problem = NULL;
    cr_expect_not(pm_pf_sasl_answers("", "", "/x", &problem));
    cr_expect_str_eq(problem, "no SASL backend: smtpd_sasl_type  is not a "
                              "type this agent can check");
    free(problem);
    problem = NULL;
    /* cyrus: a mechanism plugin decides (libsasl2-modules here or not) */
    bool plugins =
        access("/usr/lib/x86_64-linux-gnu/sasl2/libplain.so", R_OK) == 0 ||
        access("/usr/lib/x86_64-linux-gnu/sasl2/libanonymous.so", R_OK) == 0;
    bool ok = pm_pf_sasl_answers("cyrus", "smtpd", "/x", &problem);
    if (plugins)
        cr_expect(ok);
    if (!ok)
        cr_expect(problem && strstr(problem, "cyrus has no mechanisms"));
    free(problem);
}
