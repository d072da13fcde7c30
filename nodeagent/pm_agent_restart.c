/* pm_agent_restart.c - rolling-restart orders, carried out once each
 * (pm_restart does the work in its own thread). */
#include "pm_agent_private.h"
#include "pm_error.h"
#include "pm_file.h"
#include "pm_log.h"
#include "pm_mem.h"
#include "pm_restart.h"
#include "pm_wire.h"

#include <string.h>

#define S_RESTART_FILE_MAX (64u << 10) /* restart.pb read back */

static pm_restart_config_t
s_restart_config(const pm_agent_state_t *self)
{
    return (pm_restart_config_t){
        .postfix_dir = self->cfg.postfix_dir,
        .milter_socket = self->cfg.milter_socket,
        .milter_restart = self->cfg.milter_restart,
        .postfix_restart = self->cfg.postfix_restart,
        .journal = self->restart_journal,
        .probe_dir = self->cfg.milter_dir,
        .probe_gid = self->cfg.milter_gid,
        .gate_ms = self->cfg.restart_gate_ms,
    };
}

/* Keeps the restart's state in STATE/restart.pb, as a NodeStatus that
 * carries only it, so that reading it back goes through pm_wire's gate. */
static void
s_restart_keep(pm_agent_state_t *self)
{
    if (!self->restart_file || !self->restart_last)
        return;
    Pm__NodeStatus st = PM__NODE_STATUS__INIT;
    st.name = self->node;
    st.restart = self->restart_last;
    size_t len = 0;
    char *why = NULL;
    uint8_t *buf = pm_wire_pack(&st.base, &len);
    if (pm_file_write(self->restart_file, buf, len, 0600, (gid_t)-1, &why) !=
        PM_OK)
        pm_warn("node %s: the restart's state is not kept: %s", self->node,
                why);
    free(buf);
    free(why);
}

/* Replaces the restart's state with R (taken over). */
static void
s_restart_set(pm_agent_state_t *self, Pm__RestartResult *r)
{
    if (self->restart_last)
        pm__restart_result__free_unpacked(self->restart_last, NULL);
    self->restart_last = r;
}

static Pm__RestartResult *
s_restart_result(uint64_t rollout, const char *phase)
{
    Pm__RestartResult *r = pm_malloc(sizeof *r);
    pm__restart_result__init(r);
    r->rollout = rollout;
    r->phase = pm_strdup(phase);
    r->error = pm_strdup("");
    r->at = zclock_time();
    return r;
}

/* Postfix put back on its own configuration if a restart was cut short
 * (pm_restart_recover): at start, and before the next restart. Returns why it
 * could not be, or NULL; caller frees. */
static char *
s_restart_recover(pm_agent_state_t *self)
{
    char *why = NULL;
    bool acted = false;
    pm_restart_config_t rc = s_restart_config(self);
    if (pm_restart_recover(&rc, &acted, &why) != PM_OK) {
        pm_error("node %s: after a restart cut short, Postfix could not be "
                 "put back on its configuration: %s",
                 self->node, why);
        return why ? why : pm_strdup("failed");
    }
    if (acted)
        pm_warn("node %s: a restart was cut short; Postfix is back on its "
                "configuration",
                self->node);
    free(why);
    return NULL;
}

/* A RESTART publication: carried out once (see pm_agent.h). */
void
pm_agent_restart_begin(pm_agent_state_t *self, const Pm__RestartOrder *order)
{
    const Pm__RestartResult *last = self->restart_last;
    unsigned long long id = order->rollout;
    if (last && order->rollout <= last->rollout) {
        if (order->rollout < last->rollout)
            pm_warn("node %s: restart order of rollout %llu ignored: "
                    "rollout %llu came after it",
                    self->node, id, (unsigned long long)last->rollout);
        pm_agent_send(self, PM__AGENT_REPORT__KIND__HEARTBEAT);
        return;
    }
    if (self->restart) {
        pm_warn("node %s: restart order of rollout %llu ignored: rollout "
                "%llu is still restarting",
                self->node, id, (unsigned long long)last->rollout);
        return;
    }
    bool milter = strcmp(order->service, "milter") == 0;
    bool probe = strcmp(order->service, PM_WIRE_SERVICE_PROBE) == 0;
    /* a drain left by a restart cut short whose undoing failed at start:
     * a restart on top of it would journal the drained values as the
     * originals (or remove the journal unapplied), and Postfix would stay
     * drained for good */
    char *left = s_restart_recover(self);
    if (left) {
        s_restart_set(self, s_restart_result(id, "drain"));
        self->restart_last->done = true;
        char *error = pm_asprintf("not restarted: Postfix is still drained by "
                                  "a restart cut short, and putting it back "
                                  "failed: %s",
                                  left);
        pm_wire_set_string(&self->restart_last->error, error);
        free(error);
        free(left);
        s_restart_keep(self);
        pm_agent_send(self, PM__AGENT_REPORT__KIND__HEARTBEAT);
        return;
    }
    if (probe)
        pm_info("node %s: checking mail through Postfix and the filter "
                "(canary push %llu)",
                self->node, id);
    else
        pm_info("node %s: restarting %s (rollout %llu, drain %lld ms)",
                self->node, order->service, id, (long long)order->drain_ms);
    s_restart_set(self, s_restart_result(id, probe    ? "gate"
                                             : milter ? "restart"
                                                      : "drain"));
    s_restart_keep(self);
    pm_restart_config_t rc = s_restart_config(self);
    self->restart = pm_restart_new(&rc, order);
    if (self->restart) {
        zpoller_add(self->poller, self->restart);
    } else {
        self->restart_last->done = true;
        pm_wire_set_string(&self->restart_last->error,
                           "the restart's thread did not start");
        s_restart_keep(self);
    }
    pm_agent_send(self, PM__AGENT_REPORT__KIND__HEARTBEAT);
}

/* The restart actor's news: reported at once; at the end kept, the actor
 * gone, and what waited for it (a revision, drift checks) goes on. */
void
pm_agent_restart_event(pm_agent_state_t *self)
{
    char *cmd = NULL;
    uint8_t *buf = NULL;
    size_t len = 0;
    Pm__RestartResult *r = NULL;
    if (zsock_recv(self->restart, "sb", &cmd, &buf, &len) == 0 && cmd &&
        strcmp(cmd, "STATUS") == 0)
        r = pm__restart_result__unpack(NULL, len, buf);
    free(cmd);
    free(buf);
    if (!r)
        return;
    s_restart_set(self, r);
    if (r->done) {
        s_restart_keep(self);
        zpoller_remove(self->poller, self->restart);
        zactor_destroy(&self->restart);
        self->next_retry = zclock_mono();
    }
    pm_agent_send(self, PM__AGENT_REPORT__KIND__HEARTBEAT);
}

/* At start: the last restart's state. One this agent did not finish (it
 * was killed or stopped) is over, not ok, once Postfix is back on its own
 * configuration. */
void
pm_agent_restart_load(pm_agent_state_t *self)
{
    char *data = NULL, *why = NULL, *recovery = s_restart_recover(self);
    size_t len = 0;
    Pm__NodeStatus *st = NULL;
    if (self->restart_file &&
        pm_file_read(self->restart_file, S_RESTART_FILE_MAX, PM_FILE_STRICT,
                     &data, &len, NULL) == PM_OK &&
        (pm_wire_unpack_node_status((const uint8_t *)data, len, &st, &why) !=
             PM_OK ||
         !st->restart))
        pm_warn("node %s: %s ignored: %s", self->node, self->restart_file,
                why ? why : "no restart in it");
    if (st && st->restart) {
        s_restart_set(self, st->restart);
        st->restart = NULL;
    }
    Pm__RestartResult *r = self->restart_last;
    if (r && !r->done) {
        char *e =
            pm_asprintf("%s%s%s", PM_RESTART_STOPPED_ERROR,
                        recovery ? "; Postfix could not be put back: " : "",
                        recovery ? recovery : "");
        r->done = true;
        r->ok = false;
        pm_wire_set_string(&r->error, e);
        r->at = zclock_time();
        s_restart_keep(self);
        free(e);
    }
    if (st)
        pm__node_status__free_unpacked(st, NULL);
    free(recovery);
    free(data);
    free(why);
}
