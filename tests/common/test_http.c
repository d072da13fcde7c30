/* test_http.c - pm_http, the base of privmta's three HTTP servers: the
 * listening address (numeric only), port 0, a taken address, requests
 * with a body refused before anything is buffered, and stopping. Real
 * libmicrohttpd on 127.0.0.1, libcurl as the client. */
#include "pm_error.h"
#include "pm_http.h"

#include <criterion/criterion.h>
#include <curl/curl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Answers "METHOD URL" with 200, and counts its calls. */
static atomic_int s_answers;

static enum MHD_Result
s_answer(void *cls, struct MHD_Connection *c, const char *url,
         const char *method)
{
    (void)cls;
    atomic_fetch_add(&s_answers, 1);
    char body[256];
    int n = snprintf(body, sizeof body, "%s %s", method, url);
    return pm_http_send(c, 200,
                        MHD_create_response_from_buffer((size_t)n, body,
                                                        MHD_RESPMEM_MUST_COPY));
}

static pm_http_conf_t
s_conf(const char *listen)
{
    return (pm_http_conf_t){.name = "test",
                            .listen = listen,
                            .answer = s_answer,
                            .conns = 4,
                            .timeout_s = 5};
}

typedef struct {
    char data[256];
    size_t len;
} s_body_t;

static size_t
s_collect(char *p, size_t size, size_t n, void *arg)
{
    s_body_t *b = arg;
    size_t len = size * n, room = sizeof b->data - 1 - b->len;
    memcpy(b->data + b->len, p, len < room ? len : room);
    b->len += len < room ? len : room;
    return len;
}

/* One request to PORT: the curl result; *STATUS and BODY when answered.
 * POST_BODY non-NULL sends it as a POST. */
static CURLcode
s_get(unsigned port, const char *path, const char *post_body, long *status,
      s_body_t *body)
{
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%u%s", port, path);
    CURL *h = curl_easy_init();
    cr_assert(h);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 5000L);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, s_collect);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, body);
    if (post_body)
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, post_body);
    CURLcode rc = curl_easy_perform(h);
    *status = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, status);
    curl_easy_cleanup(h);
    return rc;
}

Test(http, listen_is_a_numeric_host_and_port)
{
    const char *bad[] = {
        "127.0.0.1",    "127.0.0.1:",     ":8080", "127.0.0.1:70000",
        "127.0.0.1:8x", "localhost:8080", "[::1]"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        pm_http_conf_t conf = s_conf(bad[i]);
        pm_http_t *srv = NULL;
        char *why = NULL;
        cr_expect_eq(pm_http_new(&conf, &srv, &why), PM_EINVAL, "%s", bad[i]);
        cr_expect_null(srv, "%s", bad[i]);
        cr_expect(why && strstr(why, bad[i]), "%s: %s", bad[i], why);
        free(why);
    }
}

Test(http, port_zero_gets_a_port_that_answers)
{
    pm_http_conf_t conf = s_conf("127.0.0.1:0");
    pm_http_t *srv = NULL;
    char *why = NULL;
    cr_assert_eq(pm_http_new(&conf, &srv, &why), PM_OK, "%s", why);
    unsigned port = pm_http_port(srv);
    cr_expect_gt(port, 0);
    long status = 0;
    s_body_t body = {0};
    cr_expect_eq(s_get(port, "/metrics", NULL, &status, &body), CURLE_OK);
    cr_expect_eq(status, 200);
    cr_expect_str_eq(body.data, "GET /metrics");
    pm_http_destroy(&srv);
    cr_expect_null(srv);
    pm_http_destroy(&srv); /* twice is fine */
}

/* A server that reads no body drops a request carrying one before its
 * answer runs: nothing of it is buffered. */
Test(http, a_request_with_a_body_is_dropped_unanswered)
{
    pm_http_conf_t conf = s_conf("127.0.0.1:0");
    pm_http_t *srv = NULL;
    char *why = NULL;
    cr_assert_eq(pm_http_new(&conf, &srv, &why), PM_OK, "%s", why);
    atomic_store(&s_answers, 0);
    long status = 0;
    s_body_t body = {0};
    CURLcode rc = s_get(pm_http_port(srv), "/", "a body", &status, &body);
    cr_expect_neq(rc, CURLE_OK, "a POST with a body got %ld", status);
    cr_expect_eq(status, 0);
    cr_expect_eq(atomic_load(&s_answers), 0, "the answer ran for it");
    /* the server goes on serving */
    cr_expect_eq(s_get(pm_http_port(srv), "/", NULL, &status, &body), CURLE_OK);
    cr_expect_eq(status, 200);
    pm_http_destroy(&srv);
}

Test(http, a_taken_address_is_refused_and_a_stopped_server_is_gone)
{
    pm_http_conf_t conf = s_conf("127.0.0.1:0");
    pm_http_t *first = NULL, *second = NULL;
    char *why = NULL;
    cr_assert_eq(pm_http_new(&conf, &first, &why), PM_OK, "%s", why);
    char taken[32];
    snprintf(taken, sizeof taken, "127.0.0.1:%u", pm_http_port(first));
    conf.listen = taken;
    cr_expect_eq(pm_http_new(&conf, &second, &why), PM_EIO);
    cr_expect_null(second);
    cr_expect(why && strstr(why, "cannot listen on") && strstr(why, taken),
              "%s", why);
    free(why);

    unsigned port = pm_http_port(first);
    pm_http_destroy(&first);
    long status = 0;
    s_body_t body = {0};
    cr_expect_eq(s_get(port, "/", NULL, &status, &body), CURLE_COULDNT_CONNECT);
}
