/* fakectl.h - a fake controller for the agent's tests: the agent socket
 * (ROUTER, CURVE server, no ZAP handler, so any client key is let in),
 * reading the agent's reports and sending it publications. Criterion
 * asserts on what a test cannot go on without. */
#ifndef PM_FAKECTL_H
#define PM_FAKECTL_H

#include "privmta.pb-c.h"

#include <czmq.h>
#include <stdbool.h>
#include <stdint.h>

typedef struct {
    zsock_t *router;
    zframe_t *agent;   /* the routing id of the agent that said HELLO */
    char key[41];      /* the server's public key (Z85) */
    char endpoint[64]; /* "tcp://127.0.0.1:PORT" */
} fakectl_t;

/* Listens on a loopback port with CERT's keys (NULL: a keypair of its
 * own), queueing up to RCVHWM messages per agent (0: libzmq's default). */
void fakectl_new(fakectl_t *c, zcert_t *cert, int rcvhwm);
void fakectl_destroy(fakectl_t *c);

/* The next report within WAIT_MS, or NULL; *ID gets its routing id when
 * ID is not NULL. Caller frees both. A report the gate refuses fails the
 * test. */
Pm__AgentReport *fakectl_next(fakectl_t *c, int wait_ms, zframe_t **id);

/* Waits up to WAIT_MS for a HELLO (what is not one, or does not decode,
 * is passed over: an agent stopped before may still be heard), whose
 * sender becomes c->agent. True when one came. */
bool fakectl_hello(fakectl_t *c, int wait_ms);

/* PUB to c->agent, as the controller sends it. */
void fakectl_send(fakectl_t *c, const Pm__Publication *pub);

/* Waits up to WAIT_MS for a report that revision REV is applied without
 * an error. */
bool fakectl_applied(fakectl_t *c, uint64_t rev, int wait_ms);

#endif
