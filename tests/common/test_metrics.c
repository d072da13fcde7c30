/* test_metrics.c - the exposition format and its HTTP endpoint, scraped
 * with libcurl on 127.0.0.1. */
#include "pm_metrics.h"

#include <criterion/criterion.h>
#include <curl/curl.h>
#include <stdlib.h>
#include <string.h>

static char *
s_text(void (*write)(FILE *))
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = pm_metrics_begin(&text, &len);
    write(f);
    pm_metrics_end(f);
    cr_assert_eq(strlen(text), len);
    return text;
}

static void
s_write_samples(FILE *f)
{
    pm_metrics_family(f, "privmta_x_total", "counter", "Things.");
    pm_metrics_sample(f, "privmta_x_total", "node", "mx\"1\\\n", 3);
    pm_metrics_sample(f, "privmta_x_total", NULL, NULL, 12345678901.0);
}

Test(metrics, families_and_escaped_labels)
{
    char *t = s_text(s_write_samples);
    cr_assert_str_eq(t, "# HELP privmta_x_total Things.\n"
                        "# TYPE privmta_x_total counter\n"
                        "privmta_x_total{node=\"mx\\\"1\\\\\\n\"} 3\n"
                        "privmta_x_total 12345678901\n");
    free(t);
}

static void
s_write_hist(FILE *f)
{
    pm_metrics_hist_t h = {0};
    pm_metrics_hist_observe(&h, 0.004);
    pm_metrics_hist_observe(&h, 0.3);
    pm_metrics_hist_observe(&h, 60);
    pm_metrics_hist_write(f, "privmta_h_seconds", "Durations.", &h);
}

Test(metrics, histogram_buckets_are_cumulative)
{
    char *t = s_text(s_write_hist);
    cr_assert_not_null(strstr(t, "# TYPE privmta_h_seconds histogram\n"));
    cr_assert_not_null(strstr(t, "privmta_h_seconds_bucket{le=\"0.005\"} 1\n"));
    cr_assert_not_null(strstr(t, "privmta_h_seconds_bucket{le=\"0.25\"} 1\n"));
    cr_assert_not_null(strstr(t, "privmta_h_seconds_bucket{le=\"0.5\"} 2\n"));
    cr_assert_not_null(strstr(t, "privmta_h_seconds_bucket{le=\"10\"} 2\n"));
    cr_assert_not_null(strstr(t, "privmta_h_seconds_bucket{le=\"+Inf\"} 3\n"));
    cr_assert_not_null(strstr(t, "privmta_h_seconds_sum 60.304"), "%s", t);
    cr_assert_not_null(strstr(t, "privmta_h_seconds_count 3\n"));
    free(t);
}

typedef struct {
    char body[4096];
    size_t len;
    char type[128];
} s_reply_t;

static size_t
s_body(char *data, size_t size, size_t n, void *arg)
{
    s_reply_t *r = arg;
    size_t take = size * n;
    if (take > sizeof r->body - 1 - r->len)
        take = sizeof r->body - 1 - r->len;
    memcpy(r->body + r->len, data, take);
    r->len += take;
    r->body[r->len] = '\0';
    return size * n;
}

/* METHOD PATH on the server at PORT: the status; the reply in *R. */
static long
s_get(unsigned port, const char *method, const char *path, s_reply_t *r)
{
    memset(r, 0, sizeof *r);
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%u%s", port, path);
    CURL *c = curl_easy_init();
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, s_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 10L);
    cr_assert_eq(curl_easy_perform(c), CURLE_OK);
    long status = 0;
    char *type = NULL;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_getinfo(c, CURLINFO_CONTENT_TYPE, &type);
    snprintf(r->type, sizeof r->type, "%s", type ? type : "");
    curl_easy_cleanup(c);
    return status;
}

Test(metrics, served_on_get_only_and_replaced_whole)
{
    char *why = NULL;
    pm_metrics_server_t *s = pm_metrics_server_new("127.0.0.1:0", &why);
    cr_assert_not_null(s, "%s", why);
    unsigned port = pm_metrics_server_port(s);
    cr_assert_gt(port, 0);
    s_reply_t r;
    cr_assert_eq(s_get(port, "GET", "/metrics", &r), 503, "nothing yet");
    pm_metrics_server_set(s, "a 1\n", 4);
    cr_assert_eq(s_get(port, "GET", "/metrics", &r), 200);
    cr_assert_str_eq(r.body, "a 1\n");
    cr_assert_str_eq(r.type, "text/plain; version=0.0.4; charset=utf-8");
    pm_metrics_server_set(s, "b 2\n", 4);
    cr_assert_eq(s_get(port, "GET", "/metrics", &r), 200);
    cr_assert_str_eq(r.body, "b 2\n");
    cr_assert_eq(s_get(port, "GET", "/", &r), 404);
    cr_assert_eq(s_get(port, "GET", "/metrics/../etc", &r), 404);
    cr_assert_eq(s_get(port, "DELETE", "/metrics", &r), 405);
    pm_metrics_server_destroy(&s);
    cr_assert_null(s);
    pm_metrics_server_destroy(&s); /* twice is fine */
}

Test(metrics, bad_listen_addresses_say_why)
{
    const char *bad[] = {"",
                         "127.0.0.1",
                         "localhost:9466",
                         "127.0.0.1:x",
                         "127.0.0.1:99999",
                         ":9466",
                         "[::1]"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char *why = NULL;
        cr_assert_null(pm_metrics_server_new(bad[i], &why), "%s", bad[i]);
        cr_assert_not_null(why, "%s", bad[i]);
        char quoted[64];
        snprintf(quoted, sizeof quoted, "\"%s\"", bad[i]);
        cr_assert_not_null(strstr(why, quoted), "%s", why);
        free(why);
    }
}

Test(metrics, taken_port_is_refused)
{
    char *why = NULL;
    pm_metrics_server_t *a = pm_metrics_server_new("127.0.0.1:0", &why);
    cr_assert_not_null(a);
    char listen[64];
    snprintf(listen, sizeof listen, "127.0.0.1:%u", pm_metrics_server_port(a));
    cr_assert_null(pm_metrics_server_new(listen, &why));
    cr_assert_not_null(strstr(why, "cannot listen"), "%s", why);
    free(why);
    pm_metrics_server_destroy(&a);
}
