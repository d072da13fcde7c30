/* pm_rehearse_private.h - one policy test's run, shared by its parts:
 * pm_rehearse.c (the filter, the messages, the results) and
 * pm_rehearse_pf.c (the scratch directory and Postfix instance). */
#ifndef PM_REHEARSE_PRIVATE_H
#define PM_REHEARSE_PRIVATE_H

#include "pm_cmd.h"
#include "pm_rehearse.h"

#include <stdbool.h>
#include <stdint.h>

typedef struct {
    const pm_rehearse_config_t *cfg;
    char *dir;     /* the scratch directory, DIR/run.XXXXXX */
    char *etc;     /* its Postfix configuration directory */
    char *handoff; /* the filter's policy.pb */
    char *status;  /* the filter's status directory */
    char *msg;     /* the message being sent, as DATA */
    int port, notify_port;
    pm_cmd_child_t milter;
    bool started;         /* the scratch Postfix runs */
    int64_t engine_loads; /* the filter's engine builds seen so far */
} pm_rehearse_run_t;

/* Runs postconf or postfix ARGV; PM_OK, or PM_EIO with *why naming WHAT. */
int pm_rehearse_pf_cmd(char *const argv[], const char *what, char **why);

/* Two free loopback ports, the scratch directory and its Postfix
 * configuration (main.cf, master.cf). PM_OK, or an error with *why;
 * R->dir is set as soon as the directory exists (for the teardown). */
int pm_rehearse_pf_make(pm_rehearse_run_t *r, char **why);

/* postfix start, then waits until R->port accepts a connection. */
int pm_rehearse_pf_start(pm_rehearse_run_t *r, char **why);

/* postfix stop when it was started; safe twice. */
void pm_rehearse_pf_stop(pm_rehearse_run_t *r);

#endif
