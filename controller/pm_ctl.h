/* pm_ctl.h - privmta-ctl's commands and the context they share. */
#ifndef PM_CTL_H
#define PM_CTL_H

#include "pm_conf.h"
#include "privmta.pb-c.h"

#include <stdbool.h>

/* Exit codes of the CLI contract (DESIGN.md). */
enum {
    PM_EXIT_OK = 0,
    PM_EXIT_REJECTED = 1,
    PM_EXIT_USAGE = 2,
    PM_EXIT_UNREACHABLE = 3,
    PM_EXIT_TIMEOUT = 4,
};

typedef struct pm_ctl_t pm_ctl_t;

/* Sends REQ to the controller. Returns PM_EXIT_OK with *resp (caller frees)
 * when the controller answered OK, after printing its warnings (the
 * problems of an OK answer) to stderr; otherwise prints why to stderr (the
 * controller's error and every problem line) and returns the exit code. */
int pm_ctl_call(pm_ctl_t *ctl, Pm__Request *req, Pm__Response **resp);

/* As pm_ctl_call, but the line it would print on failure goes to *why
 * (caller frees; set whenever the result is not PM_EXIT_OK), for a command
 * that shows it in its own output (nodes --watch). */
int pm_ctl_call_why(pm_ctl_t *ctl, Pm__Request *req, Pm__Response **resp,
                    char **why);

/* pm_ctl_call for a request the controller answers only once a node did,
 * within WAIT_MS: the controller is reached first (a PING, under the
 * usual timeout, so that one that is down is reported as soon as for any
 * other command), then REQ may take the usual timeout plus WAIT_MS. */
int pm_ctl_call_slow(pm_ctl_t *ctl, Pm__Request *req, int wait_ms,
                     Pm__Response **resp);

/* pm_ctl_call with a request that is only OP (NODES, ROLLOUT_STATUS...). */
int pm_ctl_call_op(pm_ctl_t *ctl, Pm__Request__Op op, Pm__Response **resp);

/* The controller that gave the last answer, or before any the address (or
 * list) as configured (--controller...). */
const char *pm_ctl_controller(const pm_ctl_t *ctl);

/* From now on SIGINT and SIGTERM set zsys_interrupted rather than end the
 * process at once: for a command that loops until stopped and then exits
 * normally (nodes --watch). */
void pm_ctl_until_interrupted(void);

/* Each command gets its own argv (argv[0] is the command name). */
int pm_ctl_policy_validate(pm_ctl_t *ctl, int argc, char **argv);
int pm_ctl_policy_push(pm_ctl_t *ctl, int argc, char **argv);
int pm_ctl_policy_set(pm_ctl_t *ctl, int argc, char **argv);
int pm_ctl_policy_show(pm_ctl_t *ctl, int argc, char **argv);
int pm_ctl_policy_history(pm_ctl_t *ctl, int argc, char **argv);
int pm_ctl_policy_diff(pm_ctl_t *ctl, int argc, char **argv);
int pm_ctl_policy_rollback(pm_ctl_t *ctl, int argc, char **argv);
int pm_ctl_policy_test(pm_ctl_t *ctl, int argc, char **argv);
int pm_ctl_nodes(pm_ctl_t *ctl, int argc, char **argv);
int pm_ctl_drift(pm_ctl_t *ctl, int argc, char **argv);
int pm_ctl_keygen(pm_ctl_t *ctl, int argc, char **argv);
int pm_ctl_node(pm_ctl_t *ctl, int argc, char **argv);
int pm_ctl_dkim(pm_ctl_t *ctl, int argc, char **argv);
int pm_ctl_restart(pm_ctl_t *ctl, int argc, char **argv);
int pm_ctl_rollout(pm_ctl_t *ctl, int argc, char **argv);
int pm_ctl_ping(pm_ctl_t *ctl, int argc, char **argv);
int pm_ctl_signatures_check(pm_ctl_t *ctl, int argc, char **argv);
int pm_ctl_web(pm_ctl_t *ctl, int argc, char **argv);
int pm_ctl_why(pm_ctl_t *ctl, int argc, char **argv);

/* The web console's users file (--web-users). */
const char *pm_ctl_web_users(const pm_ctl_t *ctl);

/* Follows rollout ID (N_NODES nodes) until it ends or SECS have passed,
 * printing each node as it ends: PM_EXIT_OK when it is done,
 * PM_EXIT_REJECTED when it halted or was aborted (or is no longer the
 * current one), PM_EXIT_TIMEOUT. */
int pm_ctl_rollout_wait(pm_ctl_t *ctl, uint64_t id, size_t n_nodes,
                        double secs);

#endif
