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

/* What `postfix status` (master -t) checks, without its five processes and
 * a log line: QUEUE_DIR/pid/master.pid names a live process called master
 * (not a zombie).
 * Unlike `postfix status` it does not read main.cf: a master running on a
 * main.cf broken since it started counts as running (it is). For the
 * heartbeat and for apply, which knows queue_directory already. */
bool pm_pf_master_alive(const char *queue_dir);

/* Makes the master of the instance whose queue directory is QUEUE_DIR
 * re-read main.cf and master.cf: SIGHUP, as master(8) documents and as
 * `postfix reload` ends. The script's other steps, `postsuper active` and
 * a `postsuper` pass over the queue, check queue file names (they matter
 * after a queue was restored), not the configuration, and with the script
 * itself cost eight processes: most of an apply's time. The master logs
 * "reload -- version ..." when it has re-read. False with *why (caller
 * frees) when no master runs or the signal fails. */
bool pm_pf_reload(const char *queue_dir, char **why);

#endif
