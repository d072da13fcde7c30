/* pm_http.c - see pm_http.h. */
#include "pm_http.h"
#include "pm_error.h"
#include "pm_mem.h"

#include <assert.h>
#include <dlfcn.h>
#include <netdb.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

/* libmicrohttpd is opened when the first server starts, not linked: every
 * daemon links pm_http for its metrics, which are off by default, and
 * Debian's libmicrohttpd brings GnuTLS with p11-kit, nettle, gmp and
 * libidn2 and their start-up work into the process: 2.3 MiB of an idle
 * agent's 14.4 MiB RSS, measured here, for a server most nodes never start
 * (systemd opens its optional libraries the same way). Only the functions
 * privmta's servers call through pm_http are looked up; the web console
 * and the CDIFF mirror, which always serve, link the library and build
 * their answers with it directly. */
#define S_MHD_SONAME "libmicrohttpd.so.12"

static struct {
    char *error; /* why the library could not be opened, or NULL */
    __typeof__(MHD_start_daemon) *start_daemon;
    __typeof__(MHD_stop_daemon) *stop_daemon;
    __typeof__(MHD_get_daemon_info) *get_daemon_info;
    __typeof__(MHD_queue_response) *queue_response;
    __typeof__(MHD_destroy_response) *destroy_response;
    __typeof__(MHD_create_response_from_buffer) *create_response_from_buffer;
    __typeof__(MHD_add_response_header) *add_response_header;
} s_mhd;
static pthread_once_t s_mhd_once = PTHREAD_ONCE_INIT;

static void
s_mhd_open(void)
{
    void *lib = dlopen(S_MHD_SONAME, RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
        s_mhd.error = pm_strdup(dlerror());
        return;
    }
    /* kept open for the life of the process */
    const struct {
        const char *name;
        void **fn;
    } syms[] = {
        {"MHD_start_daemon", (void **)&s_mhd.start_daemon},
        {"MHD_stop_daemon", (void **)&s_mhd.stop_daemon},
        {"MHD_get_daemon_info", (void **)&s_mhd.get_daemon_info},
        {"MHD_queue_response", (void **)&s_mhd.queue_response},
        {"MHD_destroy_response", (void **)&s_mhd.destroy_response},
        {"MHD_create_response_from_buffer",
         (void **)&s_mhd.create_response_from_buffer},
        {"MHD_add_response_header", (void **)&s_mhd.add_response_header},
    };
    for (size_t i = 0; i < sizeof syms / sizeof syms[0]; i++) {
        *syms[i].fn = dlsym(lib, syms[i].name);
        if (!*syms[i].fn) {
            s_mhd.error = pm_asprintf("%s: no %s", S_MHD_SONAME, syms[i].name);
            return;
        }
    }
}

/* LISTEN into *AI (free with freeaddrinfo), for MHD_OPTION_SOCK_ADDR:
 * numeric only, so that starting a server never waits on a resolver. */
static int
s_listen_addr(const char *listen, struct addrinfo **ai, char **why)
{
    char *host = pm_strdup(listen);
    char *colon = strrchr(host, ':');
    char *h = host;
    if (colon && *host == '[' && colon > host && colon[-1] == ']') {
        h = host + 1;
        colon[-1] = '\0';
    }
    int rc = PM_EINVAL;
    if (!colon || colon == host || !colon[1] || strlen(colon + 1) > 5 ||
        strspn(colon + 1, "0123456789") != strlen(colon + 1) ||
        atol(colon + 1) > 65535) {
        pm_why(why, "listen",
               "\"%s\": not HOST:PORT (a numeric address and a port "
               "up to 65535, e.g. 127.0.0.1:9466)",
               listen);
    } else {
        *colon = '\0';
        struct addrinfo hints = {.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV |
                                             AI_PASSIVE,
                                 .ai_socktype = SOCK_STREAM};
        int e = getaddrinfo(h, colon + 1, &hints, ai);
        if (e == 0)
            rc = PM_OK;
        else
            pm_why(why, "listen", "\"%s\": %s", listen, gai_strerror(e));
    }
    free(host);
    return rc;
}

struct pm_http {
    struct MHD_Daemon *daemon;
    unsigned port;
    pm_http_answer_fn *answer; /* for a server that reads no body */
    void *cls;
};

/* The access handler of a server that reads no body. libmicrohttpd calls
 * it once with the headers alone, then once per piece of a body, then
 * once to answer. */
static enum MHD_Result
s_bodyless(void *cls, struct MHD_Connection *c, const char *url,
           const char *method, const char *version, const char *upload,
           size_t *upload_size, void **state)
{
    (void)version, (void)upload;
    pm_http_t *self = cls;
    if (*upload_size)
        return MHD_NO; /* closes the connection: no body is buffered */
    if (!*state) {     /* the first call is for the headers alone */
        *state = (void *)1;
        return MHD_YES;
    }
    return self->answer(self->cls, c, url, method);
}

/* Starts SELF's daemon on AI as CONF says; false when it does not run. */
static bool
s_start(pm_http_t *self, const pm_http_conf_t *conf, const struct addrinfo *ai)
{
    static const struct MHD_OptionItem none[] = {{MHD_OPTION_END, 0, NULL}};
    unsigned flags =
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL | conf->flags;
    if (ai->ai_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    self->daemon = s_mhd.start_daemon(
        flags, 0, NULL, NULL, conf->answer ? s_bodyless : conf->handler,
        conf->answer ? (void *)self : conf->cls, MHD_OPTION_SOCK_ADDR,
        ai->ai_addr, MHD_OPTION_CONNECTION_LIMIT, conf->conns,
        MHD_OPTION_CONNECTION_TIMEOUT, conf->timeout_s,
        MHD_OPTION_NOTIFY_COMPLETED, conf->done, conf->cls, MHD_OPTION_ARRAY,
        conf->options ? conf->options : none, MHD_OPTION_END);
    /* the port is what a caller asking for port 0 needs; a daemon that
     * cannot tell it has no socket to serve on */
    const union MHD_DaemonInfo *info =
        self->daemon
            ? s_mhd.get_daemon_info(self->daemon, MHD_DAEMON_INFO_BIND_PORT)
            : NULL;
    if (!info || !info->port)
        return false;
    self->port = info->port;
    return true;
}

int
pm_http_new(const pm_http_conf_t *conf, pm_http_t **self_p, char **why)
{
    assert(!conf->answer != !conf->handler);
    struct addrinfo *ai = NULL;
    int rc = s_listen_addr(conf->listen, &ai, why);
    if (rc != PM_OK)
        return rc;
    pthread_once(&s_mhd_once, s_mhd_open);
    if (s_mhd.error) {
        freeaddrinfo(ai);
        pm_why(why, conf->name,
               "cannot serve HTTP: %s (package libmicrohttpd12)", s_mhd.error);
        return PM_EIO;
    }
    pm_http_t *self = pm_calloc(1, sizeof *self);
    self->answer = conf->answer;
    self->cls = conf->cls;
    bool started = s_start(self, conf, ai);
    freeaddrinfo(ai);
    if (!started) {
        pm_why(why, conf->name,
               "cannot listen on \"%s\" (address in use, or not this "
               "host's)",
               conf->listen);
        pm_http_destroy(&self);
        return PM_EIO;
    }
    *self_p = self;
    return PM_OK;
}

unsigned
pm_http_port(const pm_http_t *self)
{
    return self->port;
}

void
pm_http_destroy(pm_http_t **self_p)
{
    pm_http_t *self = self_p ? *self_p : NULL;
    if (!self)
        return;
    if (self->daemon)
        s_mhd.stop_daemon(self->daemon);
    free(self);
    *self_p = NULL;
}

enum MHD_Result
pm_http_send(struct MHD_Connection *c, unsigned status, struct MHD_Response *r)
{
    if (!r)
        return MHD_NO;
    enum MHD_Result rc = s_mhd.queue_response(c, status, r);
    s_mhd.destroy_response(r); /* libmicrohttpd holds its own reference */
    return rc;
}

enum MHD_Result
pm_http_reply(struct MHD_Connection *c, unsigned status, const void *body,
              size_t len, const char *const *headers)
{
    struct MHD_Response *r = s_mhd.create_response_from_buffer(
        len, (void *)body, MHD_RESPMEM_MUST_COPY);
    for (size_t i = 0; r && headers && headers[i]; i += 2)
        if (s_mhd.add_response_header(r, headers[i], headers[i + 1]) !=
            MHD_YES) {
            s_mhd.destroy_response(r);
            r = NULL;
        }
    return pm_http_send(c, status, r);
}
