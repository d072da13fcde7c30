/* pm_metrics.c - Prometheus text exposition; HTTP is libmicrohttpd's. */
#include "pm_metrics.h"
#include "pm_error.h"
#include "pm_log.h"
#include "pm_mem.h"

#include <microhttpd.h>
#include <inttypes.h>
#include <netdb.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

static const double s_bounds[PM_METRICS_BUCKETS] = {
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};

/* ---- Writing ------------------------------------------------------------ */

FILE *
pm_metrics_begin(char **text, size_t *len)
{
    FILE *f = open_memstream(text, len);
    if (!f)
        pm_fatal("out of memory");
    return f;
}

void
pm_metrics_end(FILE *f)
{
    if (fclose(f) != 0)
        pm_fatal("out of memory");
}

void
pm_metrics_family(FILE *f, const char *name, const char *type, const char *help)
{
    fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void
s_label_value(FILE *f, const char *value)
{
    for (const char *p = value; *p; p++) {
        if (*p == '\\' || *p == '"')
            fputc('\\', f);
        if (*p == '\n')
            fputs("\\n", f);
        else
            fputc(*p, f);
    }
}

void
pm_metrics_sample(FILE *f, const char *name, const char *label,
                  const char *value, double v)
{
    fputs(name, f);
    if (label) {
        fprintf(f, "{%s=\"", label);
        s_label_value(f, value ? value : "");
        fputs("\"}", f);
    }
    fprintf(f, " %.17g\n", v);
}

void
pm_metrics_hist_observe(pm_metrics_hist_t *h, double seconds)
{
    for (size_t i = 0; i < PM_METRICS_BUCKETS; i++)
        if (seconds <= s_bounds[i])
            h->le[i]++;
    h->count++;
    h->sum += seconds;
}

void
pm_metrics_hist_write(FILE *f, const char *name, const char *help,
                      const pm_metrics_hist_t *h)
{
    pm_metrics_family(f, name, "histogram", help);
    for (size_t i = 0; i < PM_METRICS_BUCKETS; i++)
        fprintf(f, "%s_bucket{le=\"%g\"} %" PRIu64 "\n", name, s_bounds[i],
                h->le[i]);
    fprintf(f, "%s_bucket{le=\"+Inf\"} %" PRIu64 "\n", name, h->count);
    fprintf(f, "%s_sum %.17g\n%s_count %" PRIu64 "\n", name, h->sum, name,
            h->count);
}

/* ---- Serving ------------------------------------------------------------ */

struct pm_metrics_server {
    struct MHD_Daemon *daemon;
    pthread_mutex_t mu;
    char *text; /* NULL until the first set */
    size_t len;
    unsigned port;
};

static enum MHD_Result
s_reply(struct MHD_Connection *c, unsigned status, const char *body, size_t len)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(
        len, (void *)body, MHD_RESPMEM_MUST_COPY);
    if (!r)
        return MHD_NO;
    if (status == MHD_HTTP_OK)
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE,
                                "text/plain; version=0.0.4; charset=utf-8");
    if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
        MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
    enum MHD_Result rc = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return rc;
}

static enum MHD_Result
s_on_request(void *cls, struct MHD_Connection *c, const char *url,
             const char *method, const char *version, const char *upload,
             size_t *upload_size, void **state)
{
    (void)version, (void)upload;
    pm_metrics_server_t *self = cls;
    if (*upload_size)
        return MHD_NO; /* nothing here takes a body */
    if (!*state) {     /* the first call is for the headers alone */
        *state = (void *)1;
        return MHD_YES;
    }
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
        return s_reply(c, MHD_HTTP_METHOD_NOT_ALLOWED, "", 0);
    if (strcmp(url, "/metrics") != 0)
        return s_reply(c, MHD_HTTP_NOT_FOUND, "", 0);
    pthread_mutex_lock(&self->mu);
    enum MHD_Result rc =
        self->text ? s_reply(c, MHD_HTTP_OK, self->text, self->len)
                   : s_reply(c, MHD_HTTP_SERVICE_UNAVAILABLE, "starting\n", 9);
    pthread_mutex_unlock(&self->mu);
    return rc;
}

int
pm_listen_addr(const char *listen, struct addrinfo **ai, char **why)
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

pm_metrics_server_t *
pm_metrics_server_new(const char *listen, char **why)
{
    struct addrinfo *ai = NULL;
    if (pm_listen_addr(listen, &ai, why) != PM_OK)
        return NULL;
    pm_metrics_server_t *self = pm_calloc(1, sizeof *self);
    pthread_mutex_init(&self->mu, NULL);
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL;
    if (ai->ai_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    self->daemon = MHD_start_daemon(
        flags, 0, NULL, NULL, s_on_request, self, MHD_OPTION_SOCK_ADDR,
        ai->ai_addr, MHD_OPTION_CONNECTION_LIMIT, (unsigned)PM_METRICS_CONNS,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)PM_METRICS_TIMEOUT_S,
        MHD_OPTION_END);
    freeaddrinfo(ai);
    const union MHD_DaemonInfo *info =
        self->daemon
            ? MHD_get_daemon_info(self->daemon, MHD_DAEMON_INFO_BIND_PORT)
            : NULL;
    if (!info || !info->port) {
        pm_why(why, "metrics",
               "cannot listen on \"%s\" (address in use, or not this "
               "host's)",
               listen);
        pm_metrics_server_destroy(&self);
        return NULL;
    }
    self->port = info->port;
    return self;
}

unsigned
pm_metrics_server_port(const pm_metrics_server_t *self)
{
    return self->port;
}

void
pm_metrics_server_set(pm_metrics_server_t *self, const char *text, size_t len)
{
    char *copy = pm_malloc(len + 1);
    memcpy(copy, text, len);
    copy[len] = '\0';
    pthread_mutex_lock(&self->mu);
    char *old = self->text;
    self->text = copy;
    self->len = len;
    pthread_mutex_unlock(&self->mu);
    free(old);
}

void
pm_metrics_server_destroy(pm_metrics_server_t **self_p)
{
    pm_metrics_server_t *self = self_p ? *self_p : NULL;
    if (!self)
        return;
    if (self->daemon)
        MHD_stop_daemon(self->daemon);
    pthread_mutex_destroy(&self->mu);
    free(self->text);
    free(self);
    *self_p = NULL;
}
