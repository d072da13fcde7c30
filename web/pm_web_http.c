/* pm_web_http.c - the HTTPS server (see pm_web_http.h). */
#include "pm_web_http.h"

#include "pm_error.h"
#include "pm_http.h"
#include "pm_log.h"
#include "pm_mem.h"
#include "pm_web_assets.h"
#include "pm_web_worker.h"

#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

/* require-trusted-types-for: the page writes text, never HTML (no
 * innerHTML): a change that did would be refused, not run. */
#define S_CSP                                                                  \
    "default-src 'self'; style-src 'self'; script-src 'self'; "                \
    "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; "       \
    "form-action 'self'; base-uri 'none'; object-src 'none'; "                 \
    "require-trusted-types-for 'script'"

struct pm_web_http_t {
    pm_http_t *http;
    pm_web_api_t *api; /* used on the worker's thread only */
    pm_web_worker_t *worker;
};

/* Where an API request is. */
typedef enum {
    S_ASKING_CAP, /* a POST: the worker says how much body it may send */
    S_CAP_KNOWN,  /* ...and has said so: checked at the next call */
    S_READING,    /* its body is being read (a GET's: none allowed) */
    S_HANDLING,   /* the worker is answering it */
    S_ANSWERED,   /* the answer is in REPLY, to send */
} s_state_t;

/* One API request, as a job for the worker (pm_web_worker.h): the
 * request is copied here by libmicrohttpd's thread, and the worker never
 * touches the connection itself. */
typedef struct {
    pm_web_job_t job; /* first: the worker's view */
    s_state_t state;
    char *method, *path, *token, *csrf;
    bool bearer, browser;
    char addr[INET6_ADDRSTRLEN];
    char **args; /* query arguments: name, value, name, value... */
    size_t n_args;
    size_t cap; /* the most body bytes it may send */
    char *body;
    size_t len;
    bool too_big;
    pm_web_reply_t reply;
} s_conn_t;

static void
s_headers(struct MHD_Response *r, const char *type, bool api)
{
    MHD_add_response_header(r, "Content-Type", type);
    MHD_add_response_header(r, "Cache-Control", api ? "no-store" : "no-cache");
    MHD_add_response_header(r, "Content-Security-Policy", S_CSP);
    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(r, "X-Frame-Options", "DENY");
    MHD_add_response_header(r, "Referrer-Policy", "no-referrer");
    MHD_add_response_header(r, "Strict-Transport-Security", "max-age=31536000");
}

static enum MHD_Result
s_send_json(struct MHD_Connection *c, unsigned status, json_t *body,
            const char *cookie)
{
    char *text = json_dumps(body, JSON_COMPACT);
    struct MHD_Response *r = MHD_create_response_from_buffer(
        strlen(text), text, MHD_RESPMEM_MUST_FREE);
    s_headers(r, "application/json", true);
    if (cookie)
        MHD_add_response_header(r, "Set-Cookie", cookie);
    return pm_http_send(c, status, r);
}

static enum MHD_Result
s_send_error(struct MHD_Connection *c, unsigned status, const char *error)
{
    json_t *body = json_pack("{s:s}", "error", error);
    enum MHD_Result rc = s_send_json(c, status, body, NULL);
    json_decref(body);
    return rc;
}

static enum MHD_Result
s_send_asset(struct MHD_Connection *c, const char *url, const char *method)
{
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
        return s_send_error(c, 405, "the page's files are only read");
    const pm_web_asset_t *a = pm_web_asset(url);
    if (!a)
        return s_send_error(c, 404, "no such page");
    struct MHD_Response *r = MHD_create_response_from_buffer(
        a->len, (void *)a->data, MHD_RESPMEM_PERSISTENT);
    s_headers(r, a->type, false);
    return pm_http_send(c, 200, r);
}

static const char *
s_query(void *ctx, const char *name)
{
    const s_conn_t *conn = ctx;
    for (size_t i = 0; i < conn->n_args; i++)
        if (strcmp(conn->args[2 * i], name) == 0)
            return conn->args[2 * i + 1];
    return NULL;
}

static enum MHD_Result
s_add_arg(void *cls, enum MHD_ValueKind kind, const char *name,
          const char *value)
{
    (void)kind;
    s_conn_t *conn = cls;
    conn->args =
        pm_realloc(conn->args, (conn->n_args + 1) * 2 * sizeof *conn->args);
    conn->args[2 * conn->n_args] = pm_strdup(name);
    conn->args[2 * conn->n_args++ + 1] = pm_strdup(value ? value : "");
    return MHD_YES;
}

static char *
s_dup_or_null(const char *s)
{
    return s ? pm_strdup(s) : NULL;
}

/* A new request's copy of what the API looks at (the body is added as it
 * is read): bounded by libmicrohttpd's per-connection memory, which holds
 * the request line and headers. */
static s_conn_t *
s_conn_new(struct MHD_Connection *c, const char *url, const char *method)
{
    s_conn_t *conn = pm_calloc(1, sizeof *conn);
    conn->job.conn = c;
    conn->method = pm_strdup(method);
    conn->path = pm_strdup(url);
    const char *auth =
        MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
    conn->bearer = auth && strncmp(auth, "Bearer ", 7) == 0;
    conn->token = s_dup_or_null(
        conn->bearer
            ? auth + 7
            : MHD_lookup_connection_value(c, MHD_COOKIE_KIND, PM_WEB_COOKIE));
    conn->csrf = s_dup_or_null(
        MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-CSRF-Token"));
    conn->browser =
        MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Origin") ||
        MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Sec-Fetch-Site");
    MHD_get_connection_values(c, MHD_GET_ARGUMENT_KIND, s_add_arg, conn);
    const union MHD_ConnectionInfo *info =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    const struct sockaddr *sa = info ? info->client_addr : NULL;
    strcpy(conn->addr, "?");
    if (sa && sa->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr,
                  conn->addr, sizeof conn->addr);
    else if (sa && sa->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr,
                  conn->addr, sizeof conn->addr);
    return conn;
}

static void
s_conn_destroy(s_conn_t **conn_p)
{
    s_conn_t *conn = *conn_p;
    if (!conn)
        return;
    for (size_t i = 0; i < 2 * conn->n_args; i++)
        free(conn->args[i]);
    free(conn->args);
    free(conn->method);
    free(conn->path);
    free(conn->token);
    free(conn->csrf);
    free(conn->body);
    json_decref(conn->reply.body);
    free(conn->reply.cookie);
    free(conn);
    *conn_p = NULL;
}

/* The request as the API sees it. */
static void
s_request(s_conn_t *conn, pm_web_req_t *req)
{
    *req = (pm_web_req_t){.method = conn->method,
                          .path = conn->path,
                          .body = conn->body,
                          .body_len = conn->len,
                          .token = conn->token,
                          .bearer = conn->bearer,
                          .csrf = conn->csrf,
                          .addr = conn->addr,
                          .browser = conn->browser,
                          .arg = s_query,
                          .arg_ctx = conn};
}

/* The worker's part of a request (pm_web_job_fn). */
static void
s_work(pm_web_job_t *job, bool stopping, void *arg)
{
    pm_web_http_t *self = arg;
    s_conn_t *conn = (s_conn_t *)job;
    pm_web_req_t req;
    s_request(conn, &req);
    if (stopping) {
        conn->reply.status = 503;
        conn->reply.body =
            json_pack("{s:s}", "error", "privmta-web is stopping");
        conn->state = S_ANSWERED;
    } else if (conn->state == S_ASKING_CAP) {
        conn->cap = pm_web_api_body_cap(self->api, &req);
        conn->state = S_CAP_KNOWN;
    } else {
        pm_web_api_handle(self->api, &req, &conn->reply);
        conn->state = S_ANSWERED;
    }
}

/* A POST sent by a page of another site: refused whatever it carries. */
static bool
s_cross_site(struct MHD_Connection *c)
{
    const char *site =
        MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Sec-Fetch-Site");
    if (site && strcmp(site, "same-origin") != 0 && strcmp(site, "none") != 0)
        return true;
    const char *origin =
        MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Origin");
    const char *host = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Host");
    if (!origin)
        return false; /* not a browser's cross-site request (curl, a script) */
    return !host || strncmp(origin, "https://", 8) != 0 ||
           strcmp(origin + 8, host) != 0;
}

/* Hands CONN to the worker; answers 503 at once when it is stopping. */
static enum MHD_Result
s_post(pm_web_http_t *self, struct MHD_Connection *c, s_conn_t *conn)
{
    if (pm_web_worker_post(self->worker, &conn->job))
        return MHD_YES;
    return s_send_error(c, 503, "privmta-web is stopping");
}

/* The first call for an API request: a GET goes on to be answered, a
 * POST first asks the worker how much body it may send. */
static enum MHD_Result
s_api_start(pm_web_http_t *self, struct MHD_Connection *c, const char *url,
            const char *method, void **con_cls)
{
    bool post = strcmp(method, "POST") == 0;
    if (!post && strcmp(method, "GET") != 0)
        return s_send_error(c, 405, "the API takes GET and POST");
    if (post && s_cross_site(c))
        return s_send_error(c, 403, "a change from another site is refused");
    s_conn_t *conn = s_conn_new(c, url, method);
    *con_cls = conn;
    conn->state = post ? S_ASKING_CAP : S_READING;
    return post ? s_post(self, c, conn) : MHD_YES;
}

/* The first call after the worker said how much body may come:
 * libmicrohttpd repeats the call that suspended the connection (the
 * first, before any body) once it is resumed. */
static enum MHD_Result
s_api_cap(struct MHD_Connection *c, s_conn_t *conn, bool *answered)
{
    conn->state = S_READING;
    *answered = true;
    if (conn->cap == 0)
        return s_send_error(c, 401, "login required");
    const char *length =
        MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");
    if (length && strtoull(length, NULL, 10) > conn->cap)
        return s_send_error(c, 413, "the request body is too big");
    *answered = false;
    return MHD_YES;
}

/* Appends a piece of the body, up to the cap; past it the rest is read
 * and dropped, and the request is answered 413. */
static void
s_append(s_conn_t *conn, const char *data, size_t len)
{
    if (conn->too_big || len > conn->cap - conn->len) {
        conn->too_big = true;
        return;
    }
    conn->body = pm_realloc(conn->body, conn->len + len + 1);
    memcpy(conn->body + conn->len, data, len);
    conn->len += len;
    conn->body[conn->len] = '\0';
}

/* The last call of a request being read: to the worker, unless its body
 * was too big; and the call after the worker answered: the answer. */
static enum MHD_Result
s_api_finish(pm_web_http_t *self, struct MHD_Connection *c, s_conn_t *conn)
{
    if (conn->state == S_ANSWERED)
        return s_send_json(c, conn->reply.status, conn->reply.body,
                           conn->reply.cookie);
    if (conn->too_big)
        return s_send_error(c, 413, "the request body is too big");
    conn->state = S_HANDLING;
    return s_post(self, c, conn);
}

static enum MHD_Result
s_on_request(void *cls, struct MHD_Connection *c, const char *url,
             const char *method, const char *version, const char *upload,
             size_t *upload_size, void **con_cls)
{
    (void)version;
    pm_web_http_t *self = cls;
    s_conn_t *conn = *con_cls;
    if (strncmp(url, "/api/", 5) != 0)
        return s_send_asset(c, url, method);
    if (!conn)
        return s_api_start(self, c, url, method, con_cls);
    bool again = conn->state == S_CAP_KNOWN; /* the first call, repeated */
    if (again) {
        bool answered = false;
        enum MHD_Result rc = s_api_cap(c, conn, &answered);
        if (answered) {
            *upload_size = 0; /* the rest of the body is not read */
            return rc;
        }
    }
    if (*upload_size || again) {
        if (*upload_size)
            s_append(conn, upload, *upload_size);
        *upload_size = 0;
        return MHD_YES;
    }
    return s_api_finish(self, c, conn);
}

static void
s_on_done(void *cls, struct MHD_Connection *c, void **con_cls,
          enum MHD_RequestTerminationCode why)
{
    (void)cls;
    (void)c;
    (void)why;
    s_conn_destroy((s_conn_t **)con_cls);
}

pm_web_http_t *
pm_web_http_new(const char *listen, pm_web_api_t *api, const char *cert_pem,
                const char *key_pem, char **why)
{
    const struct MHD_OptionItem tls[] = {
        {MHD_OPTION_HTTPS_MEM_CERT, 0, (void *)cert_pem},
        {MHD_OPTION_HTTPS_MEM_KEY, 0, (void *)key_pem},
        {MHD_OPTION_HTTPS_PRIORITIES, 0,
         "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2"},
        {MHD_OPTION_PER_IP_CONNECTION_LIMIT, PM_WEB_CONNS_PER_IP, NULL},
        {MHD_OPTION_END, 0, NULL}};
    pm_web_http_t *self = pm_calloc(1, sizeof *self);
    self->api = api;
    self->worker = pm_web_worker_new(s_work, self, why);
    if (!self->worker) {
        free(self);
        return NULL;
    }
    pm_http_conf_t conf = {.name = "web",
                           .listen = listen,
                           .flags = MHD_USE_TLS | MHD_USE_ERROR_LOG |
                                    MHD_ALLOW_SUSPEND_RESUME,
                           .handler = s_on_request,
                           .cls = self,
                           .done = s_on_done,
                           .conns = PM_WEB_CONNS,
                           .timeout_s = PM_WEB_TIMEOUT_S,
                           .options = tls};
    int rc = pm_http_new(&conf, &self->http, why);
    if (rc == PM_EIO) /* the TLS material is a cause too */
        pm_why(why, "web",
               "cannot serve HTTPS on \"%s\" (address in use, not this "
               "host's, or the certificate and key do not load)",
               listen);
    if (rc != PM_OK)
        pm_web_http_destroy(&self);
    return self;
}

void
pm_web_http_destroy(pm_web_http_t **self_p)
{
    pm_web_http_t *self = *self_p;
    if (!self)
        return;
    /* every suspended connection resumed before libmicrohttpd stops */
    pm_web_worker_destroy(&self->worker);
    pm_http_destroy(&self->http);
    free(self);
    *self_p = NULL;
}

unsigned
pm_web_http_port(const pm_web_http_t *self)
{
    return pm_http_port(self->http);
}
