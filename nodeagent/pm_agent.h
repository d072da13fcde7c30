/* pm_agent.h - one node's agent: follows the controller's revisions and
 * enforces each on the node through a backend.
 *
 * An actor (czmq zactor) owning one DEALER connection to the controller
 * (CURVE). It keeps the last applied revision in its own LMDB store, so at
 * start it enforces the last good policy even with the controller down. It
 * checks that revision numbers arrive without gaps and asks for a snapshot
 * when one is missing (a gap, a heartbeat head it has not seen, a reconnect
 * after silence), applies each revision all-or-nothing, and acknowledges
 * what it applied, or why it could not, with the node's status. A failed
 * apply (also of the stored revision at start) is retried with backoff
 * (1 s doubling to 60 s) until it succeeds or a newer revision arrives;
 * until then the node reports the error and the revision it really runs.
 *
 * Standby controllers: the configured endpoint may be a list, the primary
 * and its standbys, all with the one controller key; only the primary
 * listens for agents. The agent talks to one at a time, the first at
 * start. When it decides the controller is silent (dead_after_ms without
 * a word), and again every dead_after_ms while the silence lasts, it drops
 * that connection and connects to the next endpoint of the list (round
 * robin), saying HELLO there until it is answered with a snapshot. A
 * snapshot of the revision number it runs is taken as enforced only when
 * its digest is the applied revision's too: a newly promoted standby may
 * hold another revision under that number (one the old primary made that
 * never reached it), applied then like any new one.
 *
 * Drift: once a second the backend looks for hand edits of what the
 * applied revision set (pm_backend_t.drift); the agent applies the
 * revision again and reports what it found in the node's status at once
 * (NodeStatus.drift: the last edit, until another one).
 *
 * Rolling restarts: a RESTART publication orders one step of a rollout;
 * a pm_restart actor carries it out (drain, restart, gate: see
 * pm_restart.h) while the agent goes on beating, and NodeStatus.restart
 * says how far it is, reported at once at the start, at each phase change
 * and at the end. An order is carried out once: the rollout it answered
 * last (or runs) is only answered again, an older one is ignored, and so
 * is any order while a restart runs. Meanwhile drift checks pause (the
 * drain changes owned parameters on purpose) and a revision that arrives
 * waits for the end (an apply would rewrite main.cf under the drain).
 * Stopping the agent stops the restart where it is, Postfix put back on
 * its own configuration and running before the agent returns. The
 * result is kept in STATE_DIR/restart.pb at the start and at the end; an
 * agent that finds it unfinished at its next start reports it done, not
 * ok, PM_RESTART_STOPPED_ERROR, after pm_restart_recover has put Postfix
 * back on its own configuration (the drain's original values are kept in
 * STATE_DIR/restart-drain.cf while Postfix restarts).
 *
 * ClamAV databases: with a sig_dir, a pm_sigsync actor fetches them from
 * the mirrors when the controller gives this node the duty and shares them
 * with peers (see pm_sigsync.h); the agent passes it the applied policy and
 * the controller's MEMBERS publications, and reports what it holds.
 *
 * Privilege boundary: the agent runs as root; privmta-milter does not.
 * Everything the agent writes for the milter (the handoff, DKIM keys) is
 * root-owned and readable through the milter's group, written with
 * pm_file (no link followed, nothing given away); what it reads from the
 * milter (status.json) is read bounded, refusing links and FIFOs.
 */
#ifndef PM_AGENT_H
#define PM_AGENT_H

#include "pm_backend.h"
#include "pm_metrics.h"

#include <czmq.h>
#include <stdint.h>

typedef struct {
    const char *endpoint;   /* the controller's agent endpoint, or several
                             * (primary and standbys, one key) separated by
                             * commas and/or blanks (pm_conf_list) */
    const char *server_key; /* the controller's public key, Z85 */
    zcert_t *cert;          /* this agent's keypair (not owned) */
    const char *state_dir;  /* applied revisions; NULL: memory only */
    const char *name;       /* node name until the controller says it */
    const char *address;    /* shown by `privmta-ctl nodes` */
    pm_backend_t *backend;  /* not owned */
    int heartbeat_ms;
    int dead_after_ms;           /* controller silence that forces a resync */
    uint64_t drop_rev;           /* test hook: ignore the update of this rev */
    const char *crash_at;        /* test hook: pm_crash step armed once the
                                  * stored revision is restored; NULL: none */
    const char *milter_dir;      /* the handoff dir for privmta-milter
                                  * (pm_handoff.h): the applied revision and
                                  * DKIM keys; NULL: nothing handed over */
    const char *notify_listener; /* handed to the milter as where its
                                  * notices go (pm_handoff.h, notify.addr);
                                  * NULL or "": none, its own notify_smtp */
    int milter_gid;              /* group given read access to it (files
                                  * root:GID 0640, dirs 0750); -1: root's */
    const char *milter_status;   /* privmta-milter's status.json, or NULL */
    const char *sig_dir;         /* ClamAV databases for the milter
                                  * (pm_sigsync.h), absolute; NULL: none */
    const char *peer_bind;       /* where peers pull databases; NULL: none */
    const char *sigfetch;        /* privmta-sigfetch, by path (pm_sigsync.h) */
    int cdiff_min_kib;           /* pm_sigsync.h */
    int peer_links;              /* pm_sigsync.h's links_max */
    const char *fetch_user;      /* it runs as this user (when root); NULL:
                                  * as the agent */
    const char *verify_user;     /* its verifier's user; NULL: fetch_user */
    const char *peer_host;       /* host peers reach us at; NULL: bind's */
    int gossip_ms;               /* signature gossip round; 0: 200 */
    const char *postfix_dir;     /* restarts: Postfix's configuration
                                  * directory; NULL: no Postfix here (the
                                  * noop backend), orders for it fail */
    const char *milter_socket;   /* restarts: gated there; NULL: no milter */
    const char *milter_restart;  /* restarts: the command restarting the
                                  * milter (pm_restart.h); NULL: none */
    const char *postfix_restart; /* restarts: the command restarting
                                  * Postfix (pm_restart.h); NULL or "":
                                  * postfix stop, start */
    int restart_gate_ms;         /* 0: PM_RESTART_GATE_MS */
    const char *rehearsal_dir;   /* policy tests: pm_rehearse.h's DIR */
    const char *milter_program;  /* policy tests: privmta-milter, by path */
    const char *milter_config;   /* policy tests: the live milter's -c FILE */
    const char *postfix_log;     /* Postfix's log, followed for its own
                                  * refusals (pm_pf_rejects.h) into
                                  * STATE_DIR/postfix-decisions for
                                  * privmta-ctl why; NULL or "": not */
    const char *postfix_syslog_name; /* its syslog_name, for the journal
                                      * (NULL: "postfix") */
    pm_metrics_server_t *metrics;    /* gets pm_agent_metrics_text at each
                                      * report; NULL: none (not owned) */
} pm_agent_config_t;

/* Starts an agent. CONFIG is copied (cert and backend stay the caller's and
 * must outlive the actor). Returns NULL when the local store cannot be
 * opened or config->endpoint names no endpoint. Commands on the actor pipe:
 *   "APPLIED" -> replies the applied revision number as a string
 *   "$TERM"   -> stops (zactor_destroy sends it) */
zactor_t *pm_agent_new(const pm_agent_config_t *config);

#endif
