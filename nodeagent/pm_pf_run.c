/* pm_pf_run.c - see pm_pf_run.h. */
#include "pm_pf_run.h"
#include "pm_mem.h"

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define S_OUTPUT_MAX (64u << 20)

int
pm_pf_run(char *const argv[], const char *mail_config, bool pty, int timeout_ms,
          pm_cmd_result_t *res)
{
    char *env_mc =
        mail_config ? pm_asprintf("MAIL_CONFIG=%s", mail_config) : NULL;
    const char *env[] = {env_mc, NULL};
    pm_cmd_opts_t opts = {.env = env,
                          .pty_stderr = pty,
                          .timeout_ms = timeout_ms > 0 ? timeout_ms
                                                       : PM_PF_RUN_TIMEOUT_MS,
                          .max_output = S_OUTPUT_MAX};
    int rc = pm_cmd_run(argv, &opts, res);
    free(env_mc);
    return rc;
}

bool
pm_pf_running(const char *dir)
{
    char *argv[] = {"postfix", "-c", (char *)dir, "status", NULL};
    pm_cmd_result_t c;
    int rc = pm_pf_run(argv, NULL, false, 0, &c);
    pm_cmd_result_clear(&c);
    return rc == 0;
}

/* True when /proc says PID is a process called master that is not a
 * zombie (in a container nothing may reap a killed master) and runs as
 * OWNER, the pid file's: after a crash left master.pid behind, any local
 * user could get that pid and call a process master. */
static bool
s_is_master(long pid, uid_t owner)
{
    char *path = pm_asprintf("/proc/%ld/stat", pid);
    FILE *f = fopen(path, "r");
    char line[256] = "";
    struct stat st;
    bool got = f && fstat(fileno(f), &st) == 0 && st.st_uid == owner &&
               fgets(line, sizeof line, f);
    if (f)
        fclose(f);
    free(path);
    /* "PID (COMM) STATE ...": COMM may hold ')', so the last one ends it */
    const char *lp = strchr(line, '('), *rp = strrchr(line, ')');
    return got && lp && rp && rp - lp == 7 &&
           strncmp(lp + 1, "master", 6) == 0 && rp[1] == ' ' && rp[2] != 'Z' &&
           rp[2] != 'X';
}

/* The pid master.pid names when it is a live master (s_is_master), else
 * 0. */
static pid_t
s_master_pid(const char *queue_dir)
{
    char *path = pm_asprintf("%s/pid/master.pid", queue_dir);
    FILE *f = fopen(path, "r");
    long pid = 0;
    struct stat st;
    bool alive = f && fstat(fileno(f), &st) == 0 &&
                 fscanf(f, "%ld", &pid) == 1 && pid > 0 && pid <= INT_MAX &&
                 s_is_master(pid, st.st_uid);
    if (f)
        fclose(f);
    free(path);
    return alive ? (pid_t)pid : 0;
}

bool
pm_pf_master_alive(const char *queue_dir)
{
    return s_master_pid(queue_dir) > 0;
}

bool
pm_pf_reload(const char *queue_dir, char **why)
{
    pid_t pid = s_master_pid(queue_dir);
    if (pid > 0 && kill(pid, SIGHUP) == 0)
        return true;
    *why = pid > 0 ? pm_asprintf("reload: SIGHUP to the master (pid %ld): %s",
                                 (long)pid, strerror(errno))
                   : pm_asprintf("reload: no master runs (%s/pid/master.pid)",
                                 queue_dir);
    return false;
}
