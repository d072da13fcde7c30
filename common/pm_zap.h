/* pm_zap.h - reading and answering one ZAP request (RFC 27), for the
 * process's ZAP handlers (the controller's pm_ctlzap, the agents'
 * pm_peerzap).
 *
 * libzmq asks the handler bound to PM_ZAP_ENDPOINT in the socket's
 * context whether a client may connect; both handlers read the request
 * and answer it the same way and differ only in how they decide, so the
 * frames are read and written here once. Only CURVE is ever let in: a
 * request for another mechanism or ZAP version carries no key.
 */
#ifndef PM_ZAP_H
#define PM_ZAP_H

#include <czmq.h>
#include <stdbool.h>

/* Where libzmq looks for the ZAP handler (one per process: czmq sockets
 * share one context). */
#define PM_ZAP_ENDPOINT "inproc://zeromq.zap.01"

/* One request, its frames borrowed from MSG. */
typedef struct {
    zmsg_t *msg;      /* the request as received; owned */
    zframe_t *id;     /* its request id, echoed in the reply; may be NULL */
    zframe_t *domain; /* the server socket's ZAP domain; may be NULL */
    zframe_t *curve;  /* the client's CURVE public key (32 bytes) when the
                         request is ZAP 1.0 for CURVE; else NULL */
} pm_zap_request_t;

/* Receives one request from ZAP (the handler's REP socket) into *REQ.
 * False when none came (interrupted): *REQ is unchanged. Free it with
 * pm_zap_reply. */
bool pm_zap_recv(zsock_t *zap, pm_zap_request_t *req);

/* Answers REQ on ZAP, echoing its request id, and frees its message:
 * with USER_ID set, 200 "OK", User-Id USER_ID and the metadata *META_P
 * (taken over and nulled; NULL: none); with USER_ID NULL, 400 with the
 * status text REFUSAL and neither. A reply libzmq does not take is
 * dropped: the client's handshake then fails, which is all a refusal
 * would do. */
void pm_zap_reply(zsock_t *zap, pm_zap_request_t *req, const char *user_id,
                  zframe_t **meta_p, const char *refusal);

/* A ZAP metadata frame (ZMTP properties) of the NAME, VALUE pairs given,
 * up to a NULL name; each NAME shorter than 256 bytes. Caller owns the
 * frame. */
zframe_t *pm_zap_metadata(const char *name, ...) __attribute__((sentinel));

#endif
