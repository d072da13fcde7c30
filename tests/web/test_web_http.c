/* test_web_http.c - pm_web_http over real HTTPS (libcurl), with a fake
 * controller that answers only when the test says so: an API call waiting
 * for the controller holds up neither the page's files nor a new TLS
 * connection, and what a request carries (token, query arguments) reaches
 * the API on its own thread. */
#include <criterion/criterion.h>

#include <curl/curl.h>
#include <czmq.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pm_error.h"
#include "pm_keys.h"
#include "pm_mem.h"
#include "pm_web_api.h"
#include "pm_web_http.h"
#include "pm_web_tls.h"
#include "pm_web_users.h"
#include "pm_wire.h"
#include "testdir.h"

static char s_dir[64], s_ca[96], s_url[64];
static zsock_t *s_controller; /* a ROUTER: the web console's controller */
static pm_web_api_t *s_api;
static pm_web_http_t *s_http;

static void
s_setup(void)
{
    strcpy(s_dir, "/tmp/pm_web_http_test.XXXXXX");
    cr_assert_not_null(mkdtemp(s_dir));
    char *why = NULL, key[128], server[128], users[96], tkey[96];
    zcert_t *cert = pm_keys_controller(s_dir, &why);
    cr_assert_not_null(cert, "%s", why ? why : "");
    s_controller = zsock_new(ZMQ_ROUTER);
    zcert_apply(cert, s_controller);
    zsock_set_curve_server(s_controller, 1);
    int port = zsock_bind(s_controller, "tcp://127.0.0.1:*[60000-]");
    cr_assert_gt(port, 0);
    zcert_destroy(&cert);
    snprintf(key, sizeof key, "%s/keys/admin.cert_secret", s_dir);
    snprintf(server, sizeof server, "%s/keys/controller.cert", s_dir);
    snprintf(users, sizeof users, "%s/users", s_dir);
    cr_assert_eq(pm_web_users_set(users, "alice", "correct horse", false, &why),
                 PM_OK);
    char endpoint[64];
    snprintf(endpoint, sizeof endpoint, "tcp://127.0.0.1:%d", port);
    /* a minute: the test, not the timeout, decides when a call ends */
    pm_ctl_client_t *client =
        pm_ctl_client_new(endpoint, key, server, 60000, &why);
    cr_assert_not_null(client, "%s", why ? why : "");
    s_api = pm_web_api_new(client, users);
    snprintf(s_ca, sizeof s_ca, "%s/tls.crt", s_dir);
    snprintf(tkey, sizeof tkey, "%s/tls.key", s_dir);
    char *cert_pem = NULL, *key_pem = NULL;
    cr_assert_eq(
        pm_web_tls_load(s_ca, tkey, "localhost", &cert_pem, &key_pem, &why),
        PM_OK, "%s", why ? why : "");
    s_http = pm_web_http_new("127.0.0.1:0", s_api, cert_pem, key_pem, &why);
    cr_assert_not_null(s_http, "%s", why ? why : "");
    snprintf(s_url, sizeof s_url, "https://127.0.0.1:%u",
             pm_web_http_port(s_http));
    free(cert_pem);
    free(key_pem);
}

static void
s_teardown(void)
{
    pm_web_http_destroy(&s_http);
    pm_web_api_destroy(&s_api);
    zsock_destroy(&s_controller);
    testdir_remove(s_dir);
    zsys_shutdown();
}

TestSuite(web_http, .init = s_setup, .fini = s_teardown);

static size_t
s_keep(char *data, size_t size, size_t n, void *arg)
{
    char **body = arg;
    size_t had = *body ? strlen(*body) : 0;
    *body = pm_realloc(*body, had + size * n + 1);
    memcpy(*body + had, data, size * n);
    (*body)[had + size * n] = '\0';
    return size * n;
}

/* PATH over HTTPS with BODY (NULL: a GET) and TOKEN (a bearer, or NULL);
 * returns the status, the body in *out (caller frees; may be NULL). */
static long
s_fetch(const char *path, const char *body, const char *token, char **out)
{
    CURL *curl = curl_easy_init();
    char url[256], auth[128];
    snprintf(url, sizeof url, "%s%s", s_url, path);
    struct curl_slist *headers =
        curl_slist_append(NULL, "Content-Type: application/json");
    if (token) {
        snprintf(auth, sizeof auth, "Authorization: Bearer %s", token);
        headers = curl_slist_append(headers, auth);
    }
    char *got = NULL;
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_CAINFO, s_ca);
    curl_easy_setopt(curl, CURLOPT_SSL_VERIFYHOST, 0L);
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, s_keep);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &got);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT, 100L); /* never hangs the test */
    if (body)
        curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body);
    long status = 0;
    CURLcode rc = curl_easy_perform(curl);
    if (rc == CURLE_OK)
        curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(headers);
    curl_easy_cleanup(curl);
    if (out)
        *out = got;
    else
        free(got);
    return rc == CURLE_OK ? status : -(long)rc;
}

/* Logs alice in over HTTPS; her bearer token into TOKEN. */
static void
s_login(char token[64])
{
    char *body = NULL;
    long st = s_fetch("/api/login",
                      "{\"user\":\"alice\",\"password\":\"correct horse\"}",
                      NULL, &body);
    cr_assert_eq(st, 200, "%ld %s", st, body ? body : "");
    json_t *doc = json_loads(body, 0, NULL);
    snprintf(token, 64, "%s", json_string_value(json_object_get(doc, "token")));
    json_decref(doc);
    free(body);
}

/* An API call made on a thread of its own. */
typedef struct {
    const char *path, *token;
    long status;
    atomic_bool done;
    pthread_t thread;
} s_call_t;

static void *
s_call_main(void *arg)
{
    s_call_t *call = arg;
    call->status = s_fetch(call->path, NULL, call->token, NULL);
    atomic_store(&call->done, true);
    return NULL;
}

/* The request the controller got (its ROUTER identity into *ID), waiting
 * for it as long as the client would. */
static Pm__Request *
s_controller_recv(zframe_t **id)
{
    zsock_set_rcvtimeo(s_controller, 60000);
    zmsg_t *msg = zmsg_recv(s_controller);
    cr_assert_not_null(msg, "the controller was never asked");
    *id = zmsg_pop(msg);
    zframe_t *empty = zmsg_pop(msg), *body = zmsg_pop(msg);
    cr_assert_not_null(body);
    Pm__Request *req = NULL;
    char *why = NULL;
    cr_assert_eq(pm_wire_unpack_request(zframe_data(body), zframe_size(body),
                                        &req, &why),
                 PM_OK, "%s", why ? why : "");
    zframe_destroy(&empty);
    zframe_destroy(&body);
    zmsg_destroy(&msg);
    return req;
}

/* The controller's answer to ID: NOT_FOUND, which the API says as 404. */
static void
s_controller_answer(zframe_t **id)
{
    Pm__Response resp = PM__RESPONSE__INIT;
    resp.status = PM__RESPONSE__STATUS__NOT_FOUND;
    resp.error = "no such thing";
    size_t len = 0;
    uint8_t *buf = pm_wire_pack(&resp.base, &len);
    zmsg_t *msg = zmsg_new();
    zmsg_append(msg, id);
    zmsg_addmem(msg, "", 0);
    zmsg_addmem(msg, buf, len);
    cr_assert_eq(zmsg_send(&msg, s_controller), 0);
    free(buf);
}

Test(web_http, a_call_waiting_for_the_controller_holds_up_no_page)
{
    char token[64];
    s_login(token);
    s_call_t call = {.path = "/api/history?limit=2&before=7", .token = token};
    cr_assert_eq(pthread_create(&call.thread, NULL, s_call_main, &call), 0);
    zframe_t *id = NULL;
    Pm__Request *req = s_controller_recv(&id);
    /* the call is in flight, and stays so until the controller answers */
    cr_assert_eq(req->op, PM__REQUEST__OP__HISTORY);
    cr_assert_eq(req->limit, 2, "the query's limit reached the API");
    cr_assert_eq(req->before, 7, "the query's before reached the API");
    cr_assert_str_eq(req->user, "alice");
    pm__request__free_unpacked(req, NULL);
    char *page = NULL;
    cr_assert_eq(s_fetch("/", NULL, NULL, &page), 200);
    cr_assert_not_null(strstr(page, "<title>"));
    free(page);
    cr_assert_not(atomic_load(&call.done), "the call ended unanswered");
    s_controller_answer(&id);
    pthread_join(call.thread, NULL);
    cr_assert_eq(call.status, 404, "the controller's answer came back");
}

Test(web_http, a_body_without_a_session_is_refused_before_it_is_read)
{
    char *big = pm_malloc(PM_WEB_LOGIN_BODY_MAX + 2);
    memset(big, 'x', PM_WEB_LOGIN_BODY_MAX + 1);
    big[PM_WEB_LOGIN_BODY_MAX + 1] = '\0';
    cr_assert_eq(s_fetch("/api/policy", "{}", NULL, NULL), 401);
    cr_assert_eq(s_fetch("/api/login", big, NULL, NULL), 413);
    char token[64];
    s_login(token);
    char *body = NULL;
    cr_assert_eq(s_fetch("/api/policy/check", "[1]", token, &body), 400);
    cr_assert_not_null(strstr(body, "JSON object"), "%s", body);
    free(body);
    free(big);
}
