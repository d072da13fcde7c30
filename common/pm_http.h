/* pm_http.h - what every HTTP server of privmta does alike.
 *
 * Base layer (no policy, no protocol) over libmicrohttpd, for its three
 * servers: the metrics endpoints (pm_metrics), the web console
 * (pm_web_http) and the loopback CDIFF mirror (pm_sigmirror). Each keeps
 * what is its own (TLS, limits, answers, error messages); here are the
 * listening address, the thread model, the start-up check and the reading
 * of body-less requests, so that the servers cannot drift apart on them.
 *
 * libmicrohttpd itself is opened (dlopen) when the first server starts,
 * so that a process that serves nothing does not load it and GnuTLS; a
 * caller may call libmicrohttpd's functions once its server runs (pm_http
 * links nothing), or link it (the web console, the CDIFF mirror).
 *
 * Thread model: one libmicrohttpd thread per server waits in poll() (no
 * FD_SETSIZE limit on descriptors) and runs every handler, one request at
 * a time: a server's state needs no lock against itself, only against the
 * daemon thread that feeds it (as pm_metrics does).
 */
#ifndef PM_HTTP_H
#define PM_HTTP_H

#include <microhttpd.h>

typedef struct pm_http pm_http_t;

/* The answer of a server that reads no request body to METHOD on URL,
 * once the headers are in (a request that sends a body is dropped before:
 * nothing is buffered for it). Returns what an access handler returns, as
 * pm_http_send. */
typedef enum MHD_Result(pm_http_answer_fn)(void *cls, struct MHD_Connection *c,
                                           const char *url, const char *method);

/* How to serve. Exactly one of ANSWER (no request body is read) and
 * HANDLER (libmicrohttpd's own, for a server that reads bodies) is set.
 * Options beyond these (TLS certificate and key, per-address limits) go
 * in OPTIONS, as libmicrohttpd's MHD_OPTION_ARRAY takes them. */
typedef struct {
    const char *name;   /* the server, for the log: "metrics" */
    const char *listen; /* "HOST:PORT" (numeric IPv4) or "[V6]:PORT";
                           port 0: the kernel picks */
    unsigned flags;     /* MHD_USE_* beyond the thread model (TLS, log) */
    pm_http_answer_fn *answer;
    MHD_AccessHandlerCallback handler;
    void *cls;                         /* for ANSWER or HANDLER, and DONE */
    MHD_RequestCompletedCallback done; /* per-request cleanup, or NULL */
    unsigned conns;                    /* connections at once */
    unsigned timeout_s;                /* an idle connection is closed after */
    const struct MHD_OptionItem *options; /* ended by MHD_OPTION_END;
                                             or NULL */
} pm_http_conf_t;

/* Starts serving as CONF says (CONF itself is not kept) into *SELF_P, set
 * only on success; destroy it with pm_http_destroy. Errors, with *WHY
 * (caller frees): PM_EINVAL when CONF->listen is not a numeric HOST:PORT;
 * PM_EIO when the server did not start (address in use or not this
 * host's; a caller whose server can fail for more, as TLS material that
 * does not load, replaces *WHY to say so). */
int pm_http_new(const pm_http_conf_t *conf, pm_http_t **self_p, char **why);

/* The port it listens on (the kernel's pick for port 0). */
unsigned pm_http_port(const pm_http_t *self);

/* Stops serving (in-flight requests end; no handler runs after it
 * returns) and frees SELF; accepts NULL and *SELF_P == NULL; nulls
 * *SELF_P. */
void pm_http_destroy(pm_http_t **self_p);

/* Queues R (taken over) as the answer to C with STATUS: what a handler
 * returns. R NULL (libmicrohttpd could not make it: out of memory) is
 * MHD_NO, which closes the connection. */
enum MHD_Result pm_http_send(struct MHD_Connection *c, unsigned status,
                             struct MHD_Response *r);

/* Answers C with STATUS, a copy of BODY (LEN bytes) and HEADERS (name,
 * value, name, value..., NULL; or NULL), as pm_http_send: for a server
 * that builds no response of its own (pm_metrics). */
enum MHD_Result pm_http_reply(struct MHD_Connection *c, unsigned status,
                              const void *body, size_t len,
                              const char *const *headers);

#endif
