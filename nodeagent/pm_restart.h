/* pm_restart.h - one step of a rolling restart on this node: restart
 * Postfix, the milter or both without losing mail, and check on the node
 * that they came back.
 *
 * An actor (czmq zactor, its own thread) carries out one RestartOrder, so
 * the agent's loop goes on beating and answering while it runs (a drain
 * may take minutes). Postfix ("postfix", and "all"):
 *
 *   drain    New SMTP sessions are refused with a temporary error and go
 *            elsewhere (another MX, or the client's retry); sessions in
 *            flight finish; the queue is kept. main.cf gets
 *                smtpd_delay_reject = no
 *                privmta_drain_restrictions = check_client_access
 *                    static:{421 4.3.2 Service restarting, try again later}
 *                smtpd_client_restrictions = $privmta_drain_restrictions
 *            and every master.cf service that sets either of the two
 *            itself (-o, as a submission service often does) gets them
 *            too (postconf -P: smtpd_delay_reject=no,
 *            smtpd_client_restrictions=$privmta_drain_restrictions, the
 *            421 by reference since postconf -P takes no blanks);
 *            then Postfix is reloaded: with smtpd_delay_reject = no the
 *            client restrictions run at connect, so smtpd answers the
 *            421 instead of its 220 greeting and hangs up (seen with
 *            Postfix 3.7: "NOQUEUE: reject: CONNECT from ...: 421 4.3.2").
 *            smtpd processes of the old configuration finish their
 *            session first (reload ends them when idle). Then it waits
 *            until no SMTP session is open on Postfix's listeners
 *            (pm_svcprobe_sessions: the kernel's socket tables) or until
 *            the order's drain_ms is over. Sessions still open then are
 *            cut by the stop: their clients got no 250 for what they
 *            were sending, so they keep it and retry (nothing is lost);
 *            the agent logs how many, the order still succeeds (drain_ms
 *            is the time the operator gave them). A Postfix that does
 *            not run is not drained.
 *   restart  The milter first ("all"), then postfix stop, master.cf put
 *            back byte for byte when a service in it was drained, the
 *            three parameters put back exactly as main.cf had them
 *            (postconf -e with the value postconf -n showed, postconf -X
 *            for one it did not set), postfix start.
 *   gate     Within GATE_MS (retrying every 200 ms): Postfix runs and
 *            every SMTP listener (pm_svcprobe_listeners) greets with 220;
 *            with a milter socket, the milter accepts a connection; with
 *            PROBE_DIR too, a probe message through an SMTP listener that
 *            runs the milter is answered by it as having passed every
 *            check (pm_probe.h; nothing is delivered).
 *
 * "probe" (PM_WIRE_SERVICE_PROBE: a canary push, once the canary applied
 * the revision) drains and restarts nothing: the gate alone, on the
 * running node, so a revision that breaks mail on the canary (a filter
 * that tempfails everything, a listener that rejects) stops the push
 * before it reaches another node. On a node without Postfix or milter the
 * gate checks what there is.
 *
 * The milter ("milter", and "all") is restarted by MILTER_RESTART, a
 * command split on blanks into words (no shell, no quoting), run with
 * common/pm_cmd for at most 60 s; then gated. Without MILTER_RESTART or
 * MILTER_SOCKET the order fails before anything is touched, saying which
 * agent parameter to set; so does a Postfix order without POSTFIX_DIR
 * ("this agent manages no Postfix").
 *
 * Failures: the result names the phase and the first error line
 * (pm_cmd_why). Postfix is then left running on its original
 * configuration if at all possible: the parameters put back, reloaded if
 * it runs, started if it does not.
 *
 * The journal: before the drain writes main.cf, the original values are
 * kept in JOURNAL (pm_file: atomic, durable), and master.cf, when a
 * service in it is drained, in JOURNAL.master; both are removed once the
 * restart is over. An agent killed in between finds it at its next start:
 * pm_restart_recover puts them back and makes sure Postfix runs. They
 * could not be derived instead: smtpd_client_restrictions is the policy's
 * (the next apply writes it) but smtpd_delay_reject is the node's own.
 *
 * $TERM (zactor_destroy) is seen within 200 ms during the drain, the gate
 * and the milter command (which is killed); postfix reload, stop and
 * start (a second or so each, at most 15 s) are never cut, so Postfix is
 * never left half-stopped. The actor then puts the parameters back,
 * reloads or starts Postfix, and ends without a result: its owner is
 * going away.
 *
 * Events on the pipe, to the owner:
 *   "STATUS" + frame   a packed Pm__RestartResult: rollout, phase and at
 *                      (unix ms) at each phase change (done false), then
 *                      once done true with ok and error. After that the
 *                      actor only waits for $TERM.
 */
#ifndef PM_RESTART_H
#define PM_RESTART_H

#include "privmta.pb-c.h"

#include <czmq.h>
#include <stdbool.h>

#define PM_RESTART_GATE_MS 30000   /* the gate, by default */
#define PM_RESTART_MILTER_MS 60000 /* milter_restart, postfix_restart */
#define PM_RESTART_STOPPED_ERROR "the agent stopped during the restart"

typedef struct {
    const char *postfix_dir;     /* Postfix's configuration directory
                                    (absolute); NULL: no Postfix here */
    const char *milter_socket;   /* privmta-milter's socket in Postfix
                                    syntax (pm_svcprobe_milter); NULL or "":
                                    this node has no milter */
    const char *milter_restart;  /* the agent parameter milter_restart, e.g.
                                    "systemctl restart privmta-milter"; NULL
                                    or "": none */
    const char *postfix_restart; /* the agent parameter postfix_restart,
                                    e.g. "systemctl restart postfix": run
                                    (split on blanks, no shell) instead of
                                    postfix stop and start, after the
                                    drain's values are put back; a Postfix
                                    that systemd runs must be restarted
                                    by systemd, or it would run inside the
                                    agent's unit. NULL or "": postfix -c
                                    DIR stop, start */
    const char *journal;         /* the drain's original values while
                                    Postfix restarts; NULL: not kept */
    const char *probe_dir;       /* the milter's handoff directory, where
                                    the probe's token goes; NULL: no probe */
    int probe_gid;               /* the milter's group (reads the token) */
    const char *smtp_source;     /* NULL: PM_PROBE_SMTP_SOURCE */
    int gate_ms;                 /* 0: PM_RESTART_GATE_MS */
    /* Tests only: called at the steps "drained" (drain written and
     * reloaded), "stopped" (postfix stop done) and "start" (parameters put
     * back, before postfix start). True: the actor ends there at once, as
     * if the agent had been killed (nothing put back, no result). */
    bool (*test_hook)(const char *step, void *arg);
    void *test_arg;
} pm_restart_config_t;

/* Starts carrying out ORDER (service "postfix", "milter", "all" or
 * "probe", checked by pm_wire). CONFIG and ORDER are copied. Returns NULL only
 * when the thread cannot start. The owner reads STATUS events until done and
 * destroys the actor (zactor_destroy) then, or earlier to stop it. */
zactor_t *pm_restart_new(const pm_restart_config_t *config,
                         const Pm__RestartOrder *order);

/* At the agent's start: when CONFIG's journal exists (a restart was cut
 * short), puts the original values back, reloads Postfix if it runs or
 * starts it, and removes the journal. Sets *acted to whether there was a
 * journal. Returns PM_OK (also when there is none, or no journal or
 * postfix_dir configured); PM_EIO or PM_EINVAL with *why when a step
 * fails (the journal is then kept for the next start). */
int pm_restart_recover(const pm_restart_config_t *config, bool *acted,
                       char **why);

#endif
