/* pm_pf_run.h - running one of Postfix's own tools (postconf, postfix,
 * postmap, smtpd -S) with the limits every such run has: common/pm_cmd,
 * 15 s unless said otherwise, 64 MiB of output kept (postconf -n of a big
 * main.cf, postmap -s of a big map).
 */
#ifndef PM_PF_RUN_H
#define PM_PF_RUN_H

#include "pm_cmd.h"

#include <stdbool.h>

#define PM_PF_RUN_TIMEOUT_MS 15000

/* Runs ARGV with MAIL_CONFIG=MAIL_CONFIG in its environment when that is
 * not NULL, stderr a pseudo-terminal when PTY (postfix(1) writes its
 * messages only to a terminal), for at most TIMEOUT_MS (0:
 * PM_PF_RUN_TIMEOUT_MS). Returns the exit code, or -1 with RES->fail
 * (pm_cmd_run); RES is the caller's to clear. */
int pm_pf_run(char *const argv[], const char *mail_config, bool pty,
              int timeout_ms, pm_cmd_result_t *res);

/* True when `postfix -c DIR status` says the instance's master runs. */
bool pm_pf_running(const char *dir);

#endif
