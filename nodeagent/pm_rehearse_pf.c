/* pm_rehearse_pf.c - a policy test's scratch directory and Postfix
 * instance (see pm_rehearse.h): made from the live main.cf and Postfix's
 * master.cf template, started, stopped. */
#include "pm_rehearse_private.h"

#include "pm_clock.h"
#include "pm_error.h"
#include "pm_file.h"
#include "pm_handoff.h"
#include "pm_mem.h"
#include "pm_pf_run.h"
#include "pm_postconf.h"
#include "pm_priv.h"

#include <arpa/inet.h>
#include <czmq.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#define S_MAIN_CF_MAX (4u << 20)
#define S_START_MS 15000 /* the scratch master's listener */

/* Runs postconf/postfix ARGV; PM_OK or PM_EIO with *why naming WHAT. */
int
pm_rehearse_pf_cmd(char *const argv[], const char *what, char **why)
{
    pm_cmd_result_t res = {0};
    int rc = pm_pf_run(argv, NULL, true, 30000, &res);
    if (rc != 0)
        *why = pm_cmd_why(what, &res);
    pm_cmd_result_clear(&res);
    return rc == 0 ? PM_OK : PM_EIO;
}

/* Two free loopback ports, held until both are known. */
static int
s_ports(int *a, int *b, char **why)
{
    int fds[2] = {-1, -1}, ports[2] = {0, 0};
    for (int i = 0; i < 2; i++) {
        struct sockaddr_in sa = {.sin_family = AF_INET};
        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        socklen_t len = sizeof sa;
        fds[i] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fds[i] < 0 || bind(fds[i], (struct sockaddr *)&sa, sizeof sa) ||
            getsockname(fds[i], (struct sockaddr *)&sa, &len)) {
            *why =
                pm_asprintf("no free port on 127.0.0.1: %s", strerror(errno));
            break;
        }
        ports[i] = ntohs(sa.sin_port);
    }
    for (int i = 0; i < 2; i++)
        if (fds[i] >= 0)
            close(fds[i]);
    *a = ports[0], *b = ports[1];
    return ports[1] ? PM_OK : PM_EIO;
}

/* The DKIM keys of the test into handoff/dkim, as the agent hands them
 * to the live filter: root-owned 0640, the milter's group. */
static int
s_keys(pm_rehearse_run_t *r, char **why)
{
    char *dir = pm_asprintf("%s/%s", r->handoff, PM_HANDOFF_DKIM);
    gid_t gid = r->cfg->milter_gid;
    int rc = pm_file_mkdir(dir, 0750, gid, why);
    for (size_t i = 0; rc == PM_OK && i < r->cfg->n_secrets; i++) {
        const Pm__Secret *sec = r->cfg->secrets[i];
        if (!*sec->id || strchr(sec->id, '/') || sec->id[0] == '.')
            continue; /* ids are file names, never paths */
        char *path = pm_asprintf("%s/%s", dir, sec->id);
        rc = pm_file_write(path, sec->data.data, sec->data.len, 0640, gid, why);
        free(path);
    }
    free(dir);
    return rc;
}

/* The scratch directory and what lives in it, main.cf from the live one. */
static int
s_make_dirs(pm_rehearse_run_t *r, char **why)
{
    const pm_rehearse_config_t *cfg = r->cfg;
    const char *root = cfg->dir ? cfg->dir : PM_REHEARSE_DIR;
    if (pm_file_mkdir(root, 0711, (gid_t)-1, why) != PM_OK)
        return PM_EIO;
    r->dir = pm_asprintf("%s/run.XXXXXX", root);
    if (!mkdtemp(r->dir) || chmod(r->dir, 0755) != 0) {
        *why = pm_asprintf("%s: %s", r->dir, strerror(errno));
        PM_FREE(&r->dir);
        return PM_EIO;
    }
    r->etc = pm_asprintf("%s/etc", r->dir);
    r->handoff = pm_asprintf("%s/handoff", r->dir);
    r->status = pm_asprintf("%s/status", r->dir);
    r->msg = pm_asprintf("%s/message.eml", r->dir);
    uid_t pf_uid;
    gid_t pf_gid;
    char *queue = pm_asprintf("%s/queue", r->dir);
    char *data = pm_asprintf("%s/data", r->dir);
    char *log = pm_asprintf("%s/maillog", r->dir);
    int rc = PM_EIO;
    if (pm_priv_lookup("postfix", &pf_uid, &pf_gid, why) == PM_OK &&
        pm_file_mkdir(r->etc, 0755, (gid_t)-1, why) == PM_OK &&
        pm_file_mkdir(queue, 0755, (gid_t)-1, why) == PM_OK &&
        pm_file_mkdir(data, 0700, (gid_t)-1, why) == PM_OK &&
        pm_file_mkdir(r->handoff, 0750, r->cfg->milter_gid, why) == PM_OK &&
        s_keys(r, why) == PM_OK &&
        pm_file_write(log, "", 0, 0644, (gid_t)-1, why) == PM_OK) {
        if (chown(data, pf_uid, pf_gid) == 0 && chown(log, pf_uid, pf_gid) == 0)
            rc = PM_OK;
        else
            *why = pm_asprintf("%s: cannot give it to postfix: %s", data,
                               strerror(errno));
    }
    free(queue);
    free(data);
    free(log);
    return rc;
}

/* main.cf: the live one, then the instance's own place and no way out. */
static int
s_main_cf(pm_rehearse_run_t *r, char **why)
{
    char *live = pm_asprintf("%s/main.cf", r->cfg->postfix_dir);
    char *to = pm_asprintf("%s/main.cf", r->etc), *text = NULL;
    size_t len = 0;
    int rc = pm_file_read(live, S_MAIN_CF_MAX, 0, &text, &len, why);
    if (rc == PM_OK)
        rc = pm_file_write(to, text, len, 0644, (gid_t)-1, why);
    free(text);
    free(live);
    free(to);
    if (rc != PM_OK)
        return rc;
#define S_P(n, ...) {(char *)n, pm_asprintf(__VA_ARGS__)}
    pm_postconf_param_t p[] = {
        S_P("queue_directory", "%s/queue", r->dir),
        S_P("data_directory", "%s/data", r->dir),
        S_P("maillog_file", "%s/maillog", r->dir),
        S_P("maillog_file_prefixes", "/var, /dev/stdout, %s", r->dir),
        S_P("syslog_name", "postfix/privmta-test"),
        S_P("inet_interfaces", "loopback-only"),
        S_P("inet_protocols", "ipv4"),
        S_P("proxy_interfaces", "%s", ""),
        S_P("multi_instance_enable", "no"),
        S_P("multi_instance_directories", "%s", ""),
        S_P("master_service_disable", "%s", ""),
        S_P("default_transport", "discard:privmta policy test"),
        S_P("local_transport", "discard:privmta policy test"),
        S_P("relay_transport", "discard:privmta policy test"),
        S_P("virtual_transport", "discard:privmta policy test"),
        S_P("mailbox_transport", "%s", ""),
        S_P("fallback_transport", "%s", ""),
        S_P("mailbox_command", "%s", ""),
        S_P("transport_maps", "%s", ""),
        S_P("sender_dependent_default_transport_maps", "%s", ""),
        S_P("content_filter", "%s", ""),
        S_P("smtpd_proxy_filter", "%s", ""),
        S_P("always_bcc", "%s", ""),
        S_P("sender_bcc_maps", "%s", ""),
        S_P("recipient_bcc_maps", "%s", ""),
        S_P("notify_classes", "%s", ""),
        S_P("smtpd_authorized_xclient_hosts", "127.0.0.1"),
    };
#undef S_P
    size_t n = sizeof p / sizeof *p;
    rc = pm_postconf_write(r->etc, p, n, why);
    for (size_t i = 0; i < n; i++)
        free(p[i].value);
    return rc;
}

/* master.cf: Postfix's template, its two listeners, no chroot. */
static int
s_master_cf(pm_rehearse_run_t *r, char **why)
{
    static const char *const templates[] = {
        "/etc/postfix/master.cf.proto", "/usr/share/postfix/master.cf.dist"};
    char *text = NULL, *to = pm_asprintf("%s/master.cf", r->etc);
    size_t len = 0;
    int rc = PM_ENOTFOUND;
    for (size_t i = 0; i < 2 && rc != PM_OK; i++) {
        free(*why), *why = NULL;
        rc = pm_file_read(templates[i], S_MAIN_CF_MAX, 0, &text, &len, why);
    }
    if (rc == PM_OK)
        rc = pm_file_write(to, text, len, 0644, (gid_t)-1, why);
    free(text);
    free(to);
    char *smtp = pm_asprintf("127.0.0.1:%d/inet=127.0.0.1:%d inet n - n - - "
                             "smtpd",
                             r->port, r->port);
    char *notify =
        pm_asprintf("127.0.0.1:%d/inet=127.0.0.1:%d inet n - n - - smtpd "
                    "-o smtpd_milters= -o smtpd_authorized_xclient_hosts=",
                    r->notify_port, r->notify_port);
    char *cmds[][6] = {
        {"postconf", "-c", r->etc, "-MX", "smtp/inet", NULL},
        {"postconf", "-c", r->etc, "-M", smtp, NULL},
        {"postconf", "-c", r->etc, "-M", notify, NULL},
        {"postconf", "-c", r->etc, "-F", "*/*/chroot = n", NULL},
        {"postconf", "-c", r->etc, "-M",
         "postlog/unix-dgram=postlog unix-dgram n - n - 1 postlogd", NULL},
    };
    for (size_t i = 0; rc == PM_OK && i < sizeof cmds / sizeof *cmds; i++)
        rc =
            pm_rehearse_pf_cmd(cmds[i], "postconf -M (scratch master.cf)", why);
    free(smtp);
    free(notify);
    return rc;
}

/* The scratch Postfix's last "fatal:" line, or NULL: why it did not
 * start, which its maillog says and postfix start does not (the maillog
 * goes with the scratch directory). */
static char *
s_last_fatal(const pm_rehearse_run_t *r)
{
    char *path = pm_asprintf("%s/maillog", r->dir), *text = NULL, *ignored;
    char *line = NULL;
    if (pm_file_read(path, S_MAIN_CF_MAX, 0, &text, NULL, &ignored) == PM_OK) {
        char *at = NULL;
        for (char *p = strstr(text, "fatal: "); p; p = strstr(p + 1, "fatal: "))
            at = p;
        if (at)
            line = pm_strndup(at, strcspn(at, "\n"));
    } else
        free(ignored);
    free(text);
    free(path);
    return line;
}

int
pm_rehearse_pf_start(pm_rehearse_run_t *r, char **why)
{
    if (pm_rehearse_pf_cmd((char *[]){"postfix", "-c", r->etc, "start", NULL},
                           "postfix start (scratch)", why) != PM_OK) {
        char *fatal = s_last_fatal(r);
        if (fatal) {
            char *both = pm_asprintf("%s; its log: %s", *why, fatal);
            free(*why);
            *why = both;
            free(fatal);
        }
        return PM_EIO;
    }
    r->started = true;
    int64_t end = pm_clock_ms() + S_START_MS;
    while (pm_clock_ms() < end) {
        struct sockaddr_in sa = {.sin_family = AF_INET,
                                 .sin_port = htons((uint16_t)r->port)};
        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        bool up =
            fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0;
        if (fd >= 0)
            close(fd);
        if (up)
            return PM_OK;
        zclock_sleep(100);
    }
    char *fatal = s_last_fatal(r);
    *why = pm_asprintf("the scratch Postfix does not listen on 127.0.0.1:%d "
                       "within %d s%s%s",
                       r->port, S_START_MS / 1000, fatal ? "; its log: " : "",
                       fatal ? fatal : "");
    free(fatal);
    return PM_EIO;
}

int
pm_rehearse_pf_make(pm_rehearse_run_t *r, char **why)
{
    int rc = s_ports(&r->port, &r->notify_port, why);
    if (rc == PM_OK)
        rc = s_make_dirs(r, why);
    if (rc == PM_OK)
        rc = s_main_cf(r, why);
    if (rc == PM_OK)
        rc = s_master_cf(r, why);
    return rc;
}

void
pm_rehearse_pf_stop(pm_rehearse_run_t *r)
{
    char *ignored = NULL;
    if (r->started)
        pm_rehearse_pf_cmd((char *[]){"postfix", "-c", r->etc, "stop", NULL},
                           "postfix stop (scratch)", &ignored);
    r->started = false;
    free(ignored);
}
