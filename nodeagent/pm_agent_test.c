/* pm_agent_test.c - the node's side of privmta-ctl policy test: the
 * rehearsal (pm_rehearse) runs in a thread of its own, so the agent goes
 * on beating and applying meanwhile; its TEST_ANSWER goes back on the
 * agent's connection. */
#include "pm_agent_private.h"
#include "pm_actor.h"

#include "pm_log.h"
#include "pm_mem.h"
#include "pm_rehearse.h"
#include "pm_wire.h"

#include <string.h>

typedef struct {
    pm_rehearse_config_t cfg;
    Pm__PolicyTest *test;
    Pm__Secret **secrets; /* the DKIM keys both policies name */
    size_t n_secrets;
    char *node;    /* the agent's may be renamed meanwhile */
    zsock_t *pipe; /* the thread's, for $TERM (s_term_came) */
    bool term;     /* $TERM came */
} s_job_t;

static void
s_refuse(pm_agent_state_t *self, uint64_t id, const char *why)
{
    Pm__AgentReport rep = PM__AGENT_REPORT__INIT;
    rep.kind = PM__AGENT_REPORT__KIND__TEST_ANSWER;
    rep.applied_rev = self->applied;
    rep.test_id = id;
    rep.test_error = (char *)why;
    pm_agent_send_report(self, &rep);
}

/* The cancel hook of the rehearsal: $TERM from the owner (the agent is
 * stopping) ends the test at its next step, not after every message. */
static bool
s_term_came(void *arg)
{
    s_job_t *job = arg;
    while (!job->term && zsock_events(job->pipe) & ZMQ_POLLIN) {
        char *cmd = pm_actor_recv_str(job->pipe);
        job->term = !cmd || strcmp(cmd, "$TERM") == 0;
        free(cmd);
    }
    return job->term;
}

/* The thread: runs the job, sends the packed answer on PIPE, waits for
 * $TERM. */
static void
s_run(zsock_t *pipe, void *args)
{
    s_job_t *job = args;
    zsock_signal(pipe, 0);
    job->pipe = pipe;
    job->cfg.cancelled = s_term_came;
    job->cfg.cancel_arg = job;
    Pm__PolicyTest *t = job->test;
    pm_rehearse_policy_t pol[2] = {
        {t->trial, t->rev, "candidate"},
        {t->head, t->head_rev, "head"},
    };
    Pm__AgentReport rep = PM__AGENT_REPORT__INIT;
    rep.kind = PM__AGENT_REPORT__KIND__TEST_ANSWER;
    rep.test_id = t->id;
    char *why = NULL;
    job->cfg.secrets = (const Pm__Secret *const *)job->secrets;
    job->cfg.n_secrets = job->n_secrets;
    if (pm_rehearse_run(&job->cfg, t, pol, t->head ? 2 : 1, &rep.test_results,
                        &rep.n_test_results, &why) != PM_OK)
        rep.test_error = why ? why : (char *)"failed";
    size_t len = 0;
    uint8_t *buf = pm_wire_pack(&rep.base, &len);
    zsock_send(pipe, "b", buf, len);
    free(buf);
    for (size_t i = 0; i < rep.n_test_results; i++)
        pm__test_result__free_unpacked(rep.test_results[i], NULL);
    free(rep.test_results);
    free(why);
    pm__policy_test__free_unpacked(t, NULL);
    for (size_t i = 0; i < job->n_secrets; i++)
        pm__secret__free_unpacked(job->secrets[i], NULL);
    free(job->secrets);
    free(job->node);
    bool term = job->term;
    free(job);
    char *cmd = NULL;
    while (!term && (cmd = pm_actor_recv_str(pipe)) &&
           strcmp(cmd, "$TERM") != 0)
        free(cmd);
    free(cmd);
}

void
pm_agent_test_begin(pm_agent_state_t *self, Pm__Publication *pub)
{
    Pm__PolicyTest *t = pub->test;
    if (self->test) {
        s_refuse(self, t->id,
                 "another policy test is running on this node; try again "
                 "when it is done");
        return;
    }
    if (!self->cfg.postfix_dir || !self->cfg.milter_socket ||
        !*self->cfg.milter_socket) {
        s_refuse(self, t->id,
                 "this node runs no Postfix with privmta-milter (agent "
                 "parameters postfix_dir, milter_socket)");
        return;
    }
    s_job_t *job = pm_calloc(1, sizeof *job);
    job->node = pm_strdup(self->node);
    job->cfg = (pm_rehearse_config_t){
        .postfix_dir = self->cfg.postfix_dir,
        .dir = self->cfg.rehearsal_dir,
        .milter_program = self->cfg.milter_program,
        .milter_config = self->cfg.milter_config,
        .milter_gid = (gid_t)self->cfg.milter_gid,
        .node = job->node,
    };
    job->test = t;
    pub->test = NULL;
    job->secrets = pub->secrets, job->n_secrets = pub->n_secrets;
    pub->secrets = NULL, pub->n_secrets = 0;
    pm_info("node %s: policy test %llu: %zu message(s) to %zu recipient(s)",
            self->node, (unsigned long long)t->id, t->n_messages, t->n_rcpts);
    self->test = zactor_new(s_run, job);
    zpoller_add(self->poller, self->test);
}

void
pm_agent_test_event(pm_agent_state_t *self)
{
    zframe_t *f = zframe_recv(self->test);
    if (f) {
        zframe_t *out = zframe_dup(f);
        if (!self->dealer ||
            zframe_send(&out, self->dealer, ZFRAME_DONTWAIT) != 0)
            zframe_destroy(&out);
        zframe_destroy(&f);
    }
    pm_agent_test_stop(self);
}

void
pm_agent_test_stop(pm_agent_state_t *self)
{
    if (!self->test)
        return;
    if (self->poller)
        zpoller_remove(self->poller, self->test);
    zactor_destroy(&self->test);
}
