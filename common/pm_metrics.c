/* pm_metrics.c - Prometheus text exposition, served through pm_http. */
#include "pm_metrics.h"
#include "pm_error.h"
#include "pm_http.h"
#include "pm_log.h"
#include "pm_mem.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

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
    pm_http_t *http;
    pthread_mutex_t mu;
    char *text; /* NULL until the first set */
    size_t len;
};

static enum MHD_Result
s_reply(struct MHD_Connection *c, unsigned status, const char *body, size_t len)
{
    static const char *const ok[] = {MHD_HTTP_HEADER_CONTENT_TYPE,
                                     "text/plain; version=0.0.4; charset=utf-8",
                                     NULL};
    static const char *const get_only[] = {MHD_HTTP_HEADER_ALLOW, "GET, HEAD",
                                           NULL};
    return pm_http_reply(c, status, body, len,
                         status == MHD_HTTP_OK                   ? ok
                         : status == MHD_HTTP_METHOD_NOT_ALLOWED ? get_only
                                                                 : NULL);
}

static enum MHD_Result
s_on_request(void *cls, struct MHD_Connection *c, const char *url,
             const char *method)
{
    pm_metrics_server_t *self = cls;
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

pm_metrics_server_t *
pm_metrics_server_new(const char *listen, char **why)
{
    pm_metrics_server_t *self = pm_calloc(1, sizeof *self);
    pthread_mutex_init(&self->mu, NULL);
    pm_http_conf_t conf = {.name = "metrics",
                           .listen = listen,
                           .answer = s_on_request,
                           .cls = self,
                           .conns = PM_METRICS_CONNS,
                           .timeout_s = PM_METRICS_TIMEOUT_S};
    if (pm_http_new(&conf, &self->http, why) != PM_OK)
        pm_metrics_server_destroy(&self);
    return self;
}

unsigned
pm_metrics_server_port(const pm_metrics_server_t *self)
{
    return pm_http_port(self->http);
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
    pm_http_destroy(&self->http); /* first: no scrape reads what follows */
    pthread_mutex_destroy(&self->mu);
    free(self->text);
    free(self);
    *self_p = NULL;
}
