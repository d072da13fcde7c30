/* pm_cmd.h - the one way privmta runs another program.
 *
 * Base layer (no policy, no protocol). A program runs with no shell (so no
 * word of ARGV is ever interpreted), started with posix_spawn, never fork:
 * the daemons are threaded, and nothing may run between fork and exec that
 * could wait on a lock another thread held. Its stdout and stderr are
 * captured whole (up to a cap) and it is bounded in time: at the deadline,
 * past the output cap or when the caller cancels, its whole process group
 * is killed, so nothing it started outlives the call by accident.
 *
 * The child gets /dev/null as stdin, the two capture pipes as stdout and
 * stderr and no other descriptor, its own session and process group (no
 * controlling terminal; it cannot move into ours), every signal at
 * its default disposition and none blocked (the daemon ignores SIGPIPE; a
 * child that inherited that would not die writing to a closed pipe).
 *
 * The runner reads both streams until they close and the child has exited.
 * After the exit it waits at most 1 s more for the pipes to close (a
 * grandchild, say a daemon the command started, may hold them open), then
 * returns with what it has read.
 *
 * Thread-safe: every call has its own state. The caller must not reap
 * children it did not start itself (waitpid(-1), SIGCHLD set to SIG_IGN).
 */
#ifndef PM_CMD_H
#define PM_CMD_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

typedef struct {
    int status;     /* exit code; -1: did not run, timed out, stopped, killed
                       or wrote too much (FAIL says which) */
    char *out;      /* stdout, NUL-terminated; never NULL after pm_cmd_run */
    size_t out_len; /* bytes in OUT (it may hold NULs: binary output) */
    char *err;      /* stderr, "\r" removed; never NULL after pm_cmd_run */
    char *fail;     /* why STATUS is -1, else NULL */
} pm_cmd_result_t;

typedef struct {
    const char *const *env; /* NULL-terminated "NAME=VALUE" entries the child
                               gets on top of the environment (replacing an
                               entry of the same NAME); NULL: environ as is */
    bool pty_stderr;        /* stderr is a pseudo-terminal (postfix(1) writes
                               its messages only to a terminal) */
    int timeout_ms;         /* 0: 15000 */
    size_t max_output;      /* cap per stream, bytes; 0: 1 MiB. Checked while
                               reading: past it the child's process group is
                               killed and FAIL says "wrote more than N bytes" */
    bool (*cancelled)(void *arg); /* NULL, or asked about every 50 ms while the
                               child runs: true kills the child's process
                               group (SIGTERM, then SIGKILL after 1 s if it is
                               still there) and FAIL is "stopped" */
    void *cancel_arg;
} pm_cmd_opts_t;

/* Runs ARGV (argv[0] looked up in PATH when it has no '/'), no shell, with
 * /dev/null as stdin, no other inherited descriptor, its own session and
 * process group,
 * every signal default (SIGPIPE too). OPTS NULL: all defaults. Returns the
 * exit code, or -1 with RES->fail:
 *   "ARGV0: No such file or directory" (or another reason it did not start;
 *   "no command" when ARGV is empty),
 *   "timed out after N s" (or "N ms"; the process group got SIGKILL),
 *   "stopped" (OPTS->cancelled said so),
 *   "wrote more than N bytes to stdout" (or stderr),
 *   "killed by signal N" (it died of a signal nobody here sent).
 * Whatever was read before a failure stays in RES->out and RES->err. RES is
 * overwritten (call pm_cmd_result_clear to free it). */
int pm_cmd_run(char *const argv[], const pm_cmd_opts_t *opts,
               pm_cmd_result_t *res);

/* Frees RES's strings and sets status to -1. */
void pm_cmd_result_clear(pm_cmd_result_t *res);

/* "WHAT: exit N: first non-empty stderr line (else stdout's)", or
 * "WHAT: FAIL" when status is -1. Caller frees. */
char *pm_cmd_why(const char *what, const pm_cmd_result_t *res);

/* A long-lived child that answers requests: FD is our end of a
 * socketpair that is the child's stdin and stdout (send and recv on it
 * with MSG_NOSIGNAL: a child that died is an error, not SIGPIPE); its
 * stderr is ours. */
typedef struct {
    pid_t pid; /* -1: none */
    int fd;    /* -1: none */
} pm_cmd_child_t;

/* Starts ARGV (as pm_cmd_run does: no shell, own session, every
 * signal default, no other descriptor) with a socketpair as its stdin and
 * stdout, and our stderr, or /dev/null when QUIET (a child that parses
 * hostile input must not write lines into our log as us). Returns 0, or
 * -1 with *WHY (when WHY is not NULL) and CHILD holding none. */
int pm_cmd_start(char *const argv[], bool quiet, pm_cmd_child_t *child,
                 char **why);

/* Ends CHILD: closes our end (its stdin and stdout end), gives it 1 s to
 * exit, then kills its process group; reaps it, and kills what is left
 * in its group (a child of its own that did not start a session). CHILD
 * then holds none. Safe on a child that holds none. */
void pm_cmd_stop(pm_cmd_child_t *child);

#endif
