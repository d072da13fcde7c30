/* pm_agent_private.h - the agent actor's state, shared by its parts.
 *
 * pm_agent.c is the core (revisions, acknowledgements, the loop);
 * pm_agent_drift.c puts back hand edits of what the policy owns;
 * pm_agent_restart.c carries out rolling-restart orders. Only they
 * include this header; everything here runs on the actor's thread.
 */
#ifndef PM_AGENT_PRIVATE_H
#define PM_AGENT_PRIVATE_H

#include "pm_agent.h"
#include "pm_agent_metrics.h"
#include "pm_pf_rejects.h"
#include "pm_store.h"
#include "privmta.pb-c.h"

#include <czmq.h>
#include <stdbool.h>
#include <stdint.h>

/* STATE_DIR's directory of Postfix's refusals (pm_pf_rejects.h). */
#define PM_AGENT_PF_DECISIONS "postfix-decisions"

typedef struct pm_agent_state_t {
    pm_agent_config_t cfg;
    zsock_t *pipe, *dealer;
    char **endpoints;    /* cfg.endpoint split: primary and standbys */
    size_t n_endpoints;  /* at least 1 */
    size_t endpoint_at;  /* the one the dealer is connected to */
    int64_t next_switch; /* silent with standbys: the next one tried then */
    pm_store_t *store;
    Pm__Revision *current; /* last applied revision, NULL before any: its
                            * number is `applied`, its digest tells it
                            * from another one under that number */
    uint64_t applied, seen;
    char *apply_error;        /* why `seen` could not be applied, or NULL */
    char *node;               /* the name the controller enrolled us as */
    Pm__Publication *pending; /* whose apply failed: retried, or NULL */
    int64_t next_retry;
    int retry_ms;
    int64_t last_heard, next_beat, next_resync;
    bool hello_answered, silent;
    zactor_t *sigsync;        /* ClamAV databases, or NULL */
    Pm__Publication *members; /* the whole MEMBERS held, or NULL */
    zchunk_t *sigs;           /* its last status, packed, or NULL */
    Pm__Drift **drift;        /* the last hand edit found, reported */
    size_t n_drift;
    int64_t next_drift;
    int drift_retry_ms; /* backoff while a hand edit cannot be undone */
    bool drift_error;   /* apply_error says why it could not */
    zpoller_t *poller;
    zactor_t *restart;               /* the restart running, or NULL */
    Pm__RestartResult *restart_last; /* its state, or the last outcome */
    char *restart_file;              /* STATE/restart.pb, or NULL */
    char *restart_journal;           /* STATE/restart-drain.cf, or NULL */
    pm_agent_stats_t stats;          /* for the metrics endpoint */
    zactor_t *test;                  /* a policy test running, or NULL */
    pm_pf_rejects_t *pf_rejects;     /* Postfix's refusals, or NULL */
    char *pf_rejects_dir;            /* where they are kept, or NULL */
} pm_agent_state_t;

/* ---- pm_agent.c */

/* Sends a report of KIND with the node's whole status (dropped when the
 * controller's queue is full: the next heartbeat says the same). */
void pm_agent_send(pm_agent_state_t *self, Pm__AgentReport__Kind kind);

/* Sends REP as it is (a WHY or TEST answer); dropped, like any report,
 * when the connection's queue is full or there is none. */
void pm_agent_send_report(pm_agent_state_t *self, const Pm__AgentReport *rep);

/* This node's policy when it has overrides (caller frees), else NULL:
 * POLICY applies as it is. */
Pm__Policy *pm_agent_effective(pm_agent_state_t *self,
                               const Pm__Policy *policy);

/* ---- pm_agent_drift.c */

/* Once a second (NOW, zclock_mono): looks for hand edits through the
 * backend and puts the applied revision back, reporting at once. */
void pm_agent_drift_check(pm_agent_state_t *self, int64_t now);

/* At start, before the stored revision REV is applied again: the hand
 * edits made while the agent was stopped (*FOUND, count returned). */
size_t pm_agent_drift_since(pm_agent_state_t *self, const Pm__Revision *rev,
                            Pm__Drift ***found);

/* After that apply: reports FOUND (taken over) as drift, put back. */
void pm_agent_drift_report(pm_agent_state_t *self, Pm__Drift **found, size_t n);

/* Frees N drift entries and the array; nulls *LIST_P. */
void pm_agent_drift_free(Pm__Drift ***list_p, size_t n);

/* ---- pm_agent_restart.c */

/* A RESTART publication's ORDER: carried out once per rollout. */
void pm_agent_restart_begin(pm_agent_state_t *self,
                            const Pm__RestartOrder *order);

/* The restart actor has news (it is readable on the poller). */
void pm_agent_restart_event(pm_agent_state_t *self);

/* At start: Postfix put back if a restart was cut short, and the last
 * restart's outcome read back (one not finished is reported failed). */
void pm_agent_restart_load(pm_agent_state_t *self);

/* pm_agent_why.c: answers a WHY publication with the filter's matching
 * decision records (a WHY_ANSWER report). */
void pm_agent_why(pm_agent_state_t *self, const Pm__WhyQuery *q);

/* ---- pm_agent_test.c */

/* A TEST publication: its test and DKIM keys (taken over from PUB) run in
 * a thread of their own (pm_rehearse: seconds to minutes); one at a
 * time, another is answered at once with an error. */
void pm_agent_test_begin(pm_agent_state_t *self, Pm__Publication *pub);

/* The test's thread is done (readable on the poller): its TEST_ANSWER is
 * sent and the thread ends. */
void pm_agent_test_event(pm_agent_state_t *self);

/* Stops a test running (at stop; waits for it to end). */
void pm_agent_test_stop(pm_agent_state_t *self);

#endif
