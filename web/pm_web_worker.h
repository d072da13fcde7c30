/* pm_web_worker.h - the thread privmta-web's API runs on.
 *
 * libmicrohttpd's one thread reads requests, does TLS and serves the
 * page's files; an API call may take a good part of a second (a login's
 * argon2id check) or the controller client's whole timeout (a controller
 * that does not answer), and must not hold those up. So each API call is
 * posted here as a job: the connection is suspended
 * (MHD_suspend_connection), the job runs on this thread, and its
 * function resumes the connection when its answer is ready. Jobs run one
 * at a time, in the order posted: the API (its sessions, its ctl client)
 * is used from this thread only and needs no lock.
 *
 * A job is a pm_web_job_t at the start of the caller's own struct. The
 * queue needs no bound of its own: a connection has at most one job
 * posted, and libmicrohttpd bounds the connections (PM_WEB_CONNS).
 */
#ifndef PM_WEB_WORKER_H
#define PM_WEB_WORKER_H

#include <microhttpd.h>
#include <stdbool.h>

typedef struct pm_web_job pm_web_job_t;
struct pm_web_job {
    pm_web_job_t *next;
    struct MHD_Connection *conn; /* resumed once the job has run */
};

/* Runs JOB on the worker; STOPPING: the server is stopping, answer at
 * once. The connection is resumed after it returns (the job's memory
 * may be freed by libmicrohttpd's thread from then on). */
typedef void(pm_web_job_fn)(pm_web_job_t *job, bool stopping, void *arg);

typedef struct pm_web_worker_t pm_web_worker_t;

/* A worker running RUN (with ARG) for every job; NULL with *WHY (caller
 * frees) when the thread cannot start. */
pm_web_worker_t *pm_web_worker_new(pm_web_job_fn *run, void *arg, char **why);

/* Runs the jobs still posted with STOPPING set, ends the thread, frees
 * SELF; accepts NULL; nulls *SELF_P. Jobs posted after it began are not
 * taken (pm_web_worker_post returns false). */
void pm_web_worker_destroy(pm_web_worker_t **self_p);

/* From libmicrohttpd's thread, inside the access handler of JOB->conn:
 * suspends the connection and queues JOB. False (nothing suspended) when
 * the worker is stopping: the caller answers at once. */
bool pm_web_worker_post(pm_web_worker_t *self, pm_web_job_t *job);

#endif
