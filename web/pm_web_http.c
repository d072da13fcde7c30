/* pm_web_http.c - the HTTPS server (see pm_web_http.h). */
#include "pm_web_http.h"

#include "pm_error.h"
#include "pm_http.h"
#include "pm_log.h"
#include "pm_mem.h"
#include "pm_web_assets.h"

#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

#define S_CSP                                                                  \
    "default-src 'self'; style-src 'self'; script-src 'self'; "                \
    "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; "       \
    "form-action 'self'; base-uri 'none'"

struct pm_web_http_t {
    pm_http_t *http;
    pm_web_api_t *api;
};

/* One request being read: its body so far. */
typedef struct {
    char *body;
    size_t len, cap;
    bool too_big;
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
    return MHD_lookup_connection_value(ctx, MHD_GET_ARGUMENT_KIND, name);
}

/* The request as the API sees it (the body is added by the caller). */
static void
s_request(struct MHD_Connection *c, const char *url, const char *method,
          char addr[INET6_ADDRSTRLEN], pm_web_req_t *req)
{
    memset(req, 0, sizeof *req);
    req->method = method;
    req->path = url;
    const char *auth =
        MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
    if (auth && strncmp(auth, "Bearer ", 7) == 0) {
        req->token = auth + 7;
        req->bearer = true;
    } else {
        req->token =
            MHD_lookup_connection_value(c, MHD_COOKIE_KIND, PM_WEB_COOKIE);
    }
    req->csrf = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-CSRF-Token");
    const union MHD_ConnectionInfo *info =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    const struct sockaddr *sa = info ? info->client_addr : NULL;
    strcpy(addr, "?");
    if (sa && sa->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, addr,
                  INET6_ADDRSTRLEN);
    else if (sa && sa->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, addr,
                  INET6_ADDRSTRLEN);
    req->addr = addr;
    req->arg = s_query;
    req->arg_ctx = c;
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

/* The first call for an API request: whether its body may be read. */
static enum MHD_Result
s_api_start(pm_web_http_t *self, struct MHD_Connection *c, const char *url,
            const char *method, s_conn_t *conn, bool *answered)
{
    *answered = true;
    bool post = strcmp(method, "POST") == 0;
    if (!post && strcmp(method, "GET") != 0)
        return s_send_error(c, 405, "the API takes GET and POST");
    if (post && s_cross_site(c))
        return s_send_error(c, 403, "a change from another site is refused");
    char addr[INET6_ADDRSTRLEN];
    pm_web_req_t req;
    s_request(c, url, method, addr, &req);
    conn->cap = post ? pm_web_api_body_cap(self->api, &req) : 0;
    if (post && conn->cap == 0)
        return s_send_error(c, 401, "login required");
    const char *length =
        MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");
    if (length && strtoull(length, NULL, 10) > conn->cap && post)
        return s_send_error(c, 413, "the request body is too big");
    *answered = false;
    return MHD_YES;
}

static enum MHD_Result
s_api_finish(pm_web_http_t *self, struct MHD_Connection *c, const char *url,
             const char *method, s_conn_t *conn)
{
    if (conn->too_big)
        return s_send_error(c, 413, "the request body is too big");
    char addr[INET6_ADDRSTRLEN];
    pm_web_req_t req;
    s_request(c, url, method, addr, &req);
    req.body = conn->body;
    req.body_len = conn->len;
    pm_web_reply_t reply;
    pm_web_api_handle(self->api, &req, &reply);
    enum MHD_Result rc = s_send_json(c, reply.status, reply.body, reply.cookie);
    json_decref(reply.body);
    free(reply.cookie);
    return rc;
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
    if (!conn) {
        conn = pm_calloc(1, sizeof *conn);
        *con_cls = conn;
        bool answered = false;
        enum MHD_Result rc = s_api_start(self, c, url, method, conn, &answered);
        return answered ? rc : MHD_YES;
    }
    if (*upload_size) {
        s_append(conn, upload, *upload_size);
        *upload_size = 0;
        return MHD_YES;
    }
    return s_api_finish(self, c, url, method, conn);
}

static void
s_on_done(void *cls, struct MHD_Connection *c, void **con_cls,
          enum MHD_RequestTerminationCode why)
{
    (void)cls;
    (void)c;
    (void)why;
    s_conn_t *conn = *con_cls;
    if (conn) {
        free(conn->body);
        free(conn);
        *con_cls = NULL;
    }
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
    pm_http_conf_t conf = {.name = "web",
                           .listen = listen,
                           .flags = MHD_USE_TLS | MHD_USE_ERROR_LOG,
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
    pm_http_destroy(&self->http);
    free(self);
    *self_p = NULL;
}

unsigned
pm_web_http_port(const pm_web_http_t *self)
{
    return pm_http_port(self->http);
}
