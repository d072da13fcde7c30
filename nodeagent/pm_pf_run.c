/* pm_pf_run.c - see pm_pf_run.h. */
#include "pm_pf_run.h"
#include "pm_mem.h"

#include <stdlib.h>

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
