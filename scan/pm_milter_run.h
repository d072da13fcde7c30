/* pm_milter_run.h - the runtime's state, shared by pm_milter_run.c,
 * pm_milter_follow.c, pm_milter_record.c and pm_milter_status.c only (not
 * an API). */
#ifndef PM_MILTER_RUN_H
#define PM_MILTER_RUN_H

#include "pm_clock.h"
#include "pm_av.h"
#include "pm_declog.h"
#include "pm_dkim.h"
#include "pm_milter.h"
#include "pm_notify.h"
#include "pm_spamd.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

/* The longest spamd PING between messages may take (pm_milter_run.c,
 * pm_milter_spam_ping): it runs in the thread that follows the policy. */
#define PM_MILTER_SPAMD_PING_MS 2000

/* A counting semaphore whose waits end at a deadline (CLOCK_MONOTONIC). */
typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cond;
    int free; /* slots left */
} pm_mgate_t;

void pm_mgate_init(pm_mgate_t *g, int slots);
void pm_mgate_destroy(pm_mgate_t *g);
/* Takes a slot, waiting until DEADLINE_MS (pm_clock_ms clock); true
 * when it got one, false when the deadline passed. */
bool pm_mgate_enter(pm_mgate_t *g, int64_t deadline_ms);
void pm_mgate_leave(pm_mgate_t *g);

/* A spamd check started before pm_milter_decide, in a thread of its own,
 * so that spamd's time (tens of ms) overlaps the attachment, antivirus
 * and DKIM checks (pm_milter_run_decide); the decision's spam_check joins
 * it rather than asking spamd again. */
typedef struct {
    pm_milter_t *milter;
    const char *data; /* the message it checks */
    size_t len;
    pthread_t thread;
    int rc; /* pm_spamd_check's, with OUT and ERR */
    pm_spamd_result_t out;
    char *err;
} pm_spam_ahead_t;

/* What every engine callback gets as its ctx: the milter, and the check
 * started ahead for the decision in progress (NULL: none, the callback
 * asks spamd itself). */
typedef struct {
    pm_milter_t *milter;
    pm_spam_ahead_t *ahead;
} pm_mcall_t;

struct pm_milter_t {
    pm_milter_opts_t o; /* strings owned */
    char *probe_file;   /* PM_HANDOFF_PROBE beside o.policy_file */
    pm_mengines_t eng;  /* its ctx is CALL */
    pm_mcall_t call;    /* the milter, no spam check ahead */
    pthread_mutex_t mu; /* guards everything below that changes */
    pthread_cond_t av_cond, stop_cond;
    bool stop;
    /* policy */
    char handoff_print[96]; /* follower thread only: what was loaded */
    uint64_t head;          /* revision in force, 0 before any */
    pm_mpolicy_t *cur;
    char *policy_error;
    /* antivirus */
    pm_av_t *av;
    Pm__Policy *av_want_policy;  /* signatures wanted, or NULL */
    uint64_t av_want, av_have;   /* fingerprints */
    uint64_t dir_seen, dir_used; /* sig dir prints: last seen, loaded */
    int64_t dir_due;             /* when dir_seen is to be loaded (ms) */
    bool dir_known;              /* dir_used was set once */
    /* antispam */
    pm_spamd_t *spamd;
    pm_spamd_t *spamd_ping; /* the same spamd, PM_MILTER_SPAMD_PING_MS */
    pm_mgate_t spamd_gate;  /* spamd_max_conns requests at once */
    bool spam_reachable;
    unsigned spam_latency_ms;
    time_t spam_checked;
    char *spam_error;
    /* DKIM, notices */
    pm_dkim_t *dkim;
    pm_notify_t *notify;
    uint64_t counts[PM_MC_N]; /* by pm_mcounter_t */
    pm_mgate_t scan_gate;     /* max_scans decisions at once */
    /* the decision log (pm_declog.h), its own lock: appends never wait
     * for mu */
    pthread_mutex_t declog_mu;
    pm_declog_t *declog;  /* NULL: off, or not opened yet */
    time_t declog_tried;  /* the last open attempt */
    time_t declog_warned; /* the last trouble reported */
    uint64_t declog_lost; /* records lost since then */
    pthread_t av_thr, follow_thr;
    bool av_started, follow_started;
};

/* Checks the handoff file (and key dir) once; reloads on change. */
void pm_milter_poll(pm_milter_t *self);

/* The threads pm_milter_start runs (pm_milter_follow.c), ARG the milter:
 * the antivirus reloader, and the follower of the policy, the signature
 * directory, spamd's health and the status file. Both end at stop. */
void *pm_milter_av_run(void *arg);
void *pm_milter_follow_run(void *arg);

/* spamd's health between messages: a PING when antispam is on and no
 * check told within the last status period (pm_milter_run.c). */
void pm_milter_spam_ping(pm_milter_t *self);

/* The decision log (pm_milter_record.c): its first open, once privileges
 * are dropped, trouble told at once; and V for MSG, decided under POL,
 * appended to it (the canary probe is not mail and is not logged). */
void pm_milter_declog_start(pm_milter_t *self);
void pm_milter_record(pm_milter_t *self, const pm_mpolicy_t *pol,
                      const pm_mmsg_t *msg, const pm_mverdict_t *v);

void pm_milter_opts_free(pm_milter_opts_t *o);

#endif
