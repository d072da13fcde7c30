/* pm_actor.h - how privmta's czmq actors end: on their owner's $TERM only.
 *
 * czmq's actors, by default, also end by themselves when the process gets
 * SIGINT or SIGTERM: an interrupted zpoller_wait or recv, and the actor
 * returns. czmq then sends the actor's end signal into its pipe at once.
 * An owner that reads the pipe for the actor's messages (the agent reads
 * its signature actor's STATUS, that one its peer service's GOSSIP) may
 * take that signal for one of them; its zactor_destroy then waits for
 * the signal forever (seen in test_signatures: an agent that logged
 * "stopping" and never exited, its signature actor waiting in
 * zactor_destroy for a peer service that had long returned).
 *
 * So an actor here ignores interrupts and leaves when its owner says
 * $TERM, and the owner, which sees the interrupt too, destroys it. An
 * actor that must cut long work short on a signal asks zsys_interrupted
 * between steps, as before; it still waits for $TERM to return.
 */
#ifndef PM_ACTOR_H
#define PM_ACTOR_H

#include <czmq.h>
#include <stdbool.h>

/* The next message on PIPE, waiting through interrupts; NULL only when
 * the ZeroMQ context is ending (then there is no owner left to wait). */
zmsg_t *pm_actor_recv(zsock_t *pipe);

/* The next command on PIPE as a string (caller frees), as pm_actor_recv;
 * the frames after the first are dropped. */
char *pm_actor_recv_str(zsock_t *pipe);

/* A poller over PIPE and the other readers (NULL-terminated) that an
 * interrupt does not end: zpoller_wait returns NULL only on a timeout, an
 * interrupted wait or the context ending (pm_actor_ended). */
zpoller_t *pm_actor_poller(zsock_t *pipe, ...);

/* After zpoller_wait returned NULL: true only when the context is ending
 * (every socket is dead), never for a timeout or an interrupt. */
bool pm_actor_ended(zpoller_t *poller);

#endif
