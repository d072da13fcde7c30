/* smtp_load.c - push pre-generated messages through an SMTP server fast,
 * at little CPU cost of its own.
 *
 * usage: smtp_load HOST PORT SESSIONS FILE...
 *
 * SESSIONS transfers run at once (libcurl's multi interface, one thread),
 * each on a persistent SMTP connection sending its share of FILE... (each
 * file one whole message) one after another, as a busy MTA peer would;
 * smtp-source can only repeat one message per session, and identical
 * bodies would let a scanner's result cache flatter it. libcurl speaks
 * the SMTP (and dot-stuffs the body); nothing of it is written here.
 * Prints "sent N failed M seconds S cpu C", C being this process's user +
 * system CPU seconds, so a bench can show that its client was not the
 * bottleneck (the Python client it replaces took a core of two). Only for
 * benchmarks, on 127.0.0.1.
 */
#include "pm_error.h"
#include "pm_file.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#define S_MESSAGE_MAX (64u << 20)

typedef struct {
    char *data;
    size_t len;
} s_msg_t;

typedef struct {
    CURL *easy;
    const s_msg_t *msg; /* being sent */
    size_t off;
    size_t next; /* the next of its share: this session's index + k*SESSIONS */
} s_session_t;

static size_t
s_read(char *buf, size_t size, size_t n, void *arg)
{
    s_session_t *s = arg;
    size_t left = s->msg->len - s->off,
           take = size * n < left ? size * n : left;
    memcpy(buf, s->msg->data + s->off, take);
    s->off += take;
    return take;
}

/* Starts the session's next message; false when its share is sent. */
static bool
s_next(s_session_t *s, CURLM *multi, const s_msg_t *msgs, size_t n,
       size_t sessions)
{
    if (s->next >= n)
        return false;
    s->msg = &msgs[s->next];
    s->off = 0;
    s->next += sessions;
    curl_easy_setopt(s->easy, CURLOPT_INFILESIZE_LARGE,
                     (curl_off_t)s->msg->len);
    curl_multi_add_handle(multi, s->easy);
    return true;
}

static double
s_cpu(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

static double
s_mono(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + t.tv_nsec / 1e9;
}

int
main(int argc, char **argv)
{
    if (argc < 5) {
        fprintf(stderr, "usage: smtp_load HOST PORT SESSIONS FILE...\n");
        return 2;
    }
    size_t sessions = strtoul(argv[3], NULL, 10), n = (size_t)argc - 4;
    if (sessions < 1 || sessions > 1000) {
        fprintf(stderr, "smtp_load: SESSIONS must be 1 to 1000\n");
        return 2;
    }
    s_msg_t *msgs = calloc(n, sizeof *msgs);
    for (size_t i = 0; i < n; i++) {
        char *why = NULL;
        if (pm_file_read(argv[4 + i], S_MESSAGE_MAX, 0, &msgs[i].data,
                         &msgs[i].len, &why) != PM_OK) {
            fprintf(stderr, "smtp_load: %s\n", why);
            return 1;
        }
    }
    char url[512];
    snprintf(url, sizeof url, "smtp://%s:%s/load.bench.test", argv[1], argv[2]);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    CURLM *multi = curl_multi_init();
    struct curl_slist *rcpt = curl_slist_append(NULL, "<someone@remote.test>");
    s_session_t *ss = calloc(sessions, sizeof *ss);
    double t0 = s_mono();
    size_t sent = 0, failed = 0;
    int running = 0;
    for (size_t i = 0; i < sessions; i++) {
        s_session_t *s = &ss[i];
        s->next = i;
        s->easy = curl_easy_init();
        curl_easy_setopt(s->easy, CURLOPT_URL, url);
        curl_easy_setopt(s->easy, CURLOPT_MAIL_FROM, "<bench@remote.test>");
        curl_easy_setopt(s->easy, CURLOPT_MAIL_RCPT, rcpt);
        curl_easy_setopt(s->easy, CURLOPT_UPLOAD, 1L);
        curl_easy_setopt(s->easy, CURLOPT_READFUNCTION, s_read);
        curl_easy_setopt(s->easy, CURLOPT_READDATA, s);
        curl_easy_setopt(s->easy, CURLOPT_PRIVATE, s);
        curl_easy_setopt(s->easy, CURLOPT_TIMEOUT, 60L);
        running += s_next(s, multi, msgs, n, sessions);
    }
    while (running > 0) {
        int still = 0;
        curl_multi_perform(multi, &still);
        CURLMsg *m;
        int left = 0;
        while ((m = curl_multi_info_read(multi, &left))) {
            if (m->msg != CURLMSG_DONE)
                continue;
            s_session_t *s = NULL;
            curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&s);
            if (m->data.result == CURLE_OK)
                sent++;
            else
                failed++;
            curl_multi_remove_handle(multi, m->easy_handle);
            running -= !s_next(s, multi, msgs, n, sessions);
        }
        if (running > 0)
            curl_multi_poll(multi, NULL, 0, 1000, NULL);
    }
    printf("sent %zu failed %zu seconds %.3f cpu %.3f\n", sent, failed,
           s_mono() - t0, s_cpu());
    for (size_t i = 0; i < sessions; i++)
        curl_easy_cleanup(ss[i].easy);
    curl_slist_free_all(rcpt);
    curl_multi_cleanup(multi);
    curl_global_cleanup();
    for (size_t i = 0; i < n; i++)
        free(msgs[i].data);
    free(msgs);
    free(ss);
    return failed ? 1 : 0;
}
