/* smtp_load.c - push pre-generated messages through an SMTP server fast,
 * at little CPU cost of its own.
 *
 * usage: smtp_load [--procs P] HOST PORT SESSIONS FILE...
 *
 * SESSIONS transfers run at once (libcurl's multi interface, one thread),
 * each on a persistent SMTP connection sending its share of FILE... (each
 * file one whole message) one after another, as a busy MTA peer would;
 * --procs P splits the sessions and the files over P processes (default
 * 1). One process is cheap but is one runnable task among Postfix's and
 * the filter's: each time it waits for a CPU, every session it drives
 * waits with it. Measured on 2 cores, 10 sessions and 50 KB messages:
 * Postfix alone 227 msgs/s from one process, 265 from two; through
 * privmta-milter 129 and 177 (the machine 28 % idle with one process,
 * 11 % with two).
 * smtp-source can only repeat one message per session, and identical
 * bodies would let a scanner's result cache flatter it. libcurl speaks
 * the SMTP (and dot-stuffs the body); nothing of it is written here.
 * Prints "sent N failed M seconds S cpu C", C being the user + system CPU
 * seconds of the client's processes, so a bench can show that it was not the
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
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

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
s_mono(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + t.tv_nsec / 1e9;
}

static double
s_cpu_of(int who)
{
    struct rusage ru;
    getrusage(who, &ru);
    return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

/* Sends MSGS[0..N) over SESSIONS persistent connections to URL; counts
 * into *SENT and *FAILED. */
static void
s_send_all(const char *url, const s_msg_t *msgs, size_t n, size_t sessions,
           size_t *sent, size_t *failed)
{
    CURLM *multi = curl_multi_init();
    struct curl_slist *rcpt = curl_slist_append(NULL, "<someone@remote.test>");
    s_session_t *ss = calloc(sessions, sizeof *ss);
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
                (*sent)++;
            else
                (*failed)++;
            curl_multi_remove_handle(multi, m->easy_handle);
            running -= !s_next(s, multi, msgs, n, sessions);
        }
        if (running > 0)
            curl_multi_poll(multi, NULL, 0, 1000, NULL);
    }
    for (size_t i = 0; i < sessions; i++)
        curl_easy_cleanup(ss[i].easy);
    curl_slist_free_all(rcpt);
    curl_multi_cleanup(multi);
    free(ss);
}

/* Process K of PROCS: every PROCS-th message from the K-th, and its
 * share of SESSIONS; tells its counts on FD. */
static void
s_child(const char *url, const s_msg_t *msgs, size_t n, size_t sessions,
        size_t procs, size_t k, int fd)
{
    size_t mine = 0, share = sessions / procs + (k < sessions % procs);
    s_msg_t *sub = calloc(n / procs + 1, sizeof *sub);
    for (size_t i = k; i < n; i += procs)
        sub[mine++] = msgs[i];
    size_t counts[2] = {0, 0};
    /* SHARE >= 1: main keeps PROCS <= SESSIONS */
    s_send_all(url, sub, mine, share, &counts[0], &counts[1]);
    if (write(fd, counts, sizeof counts) != (ssize_t)sizeof counts)
        _exit(1);
    _exit(0);
}

int
main(int argc, char **argv)
{
    size_t procs = 1;
    if (argc > 2 && strcmp(argv[1], "--procs") == 0) {
        procs = strtoul(argv[2], NULL, 10);
        argc -= 2;
        argv += 2;
    }
    if (argc < 5) {
        fprintf(stderr,
                "usage: smtp_load [--procs P] HOST PORT SESSIONS FILE...\n");
        return 2;
    }
    size_t sessions = strtoul(argv[3], NULL, 10), n = (size_t)argc - 4;
    if (sessions < 1 || sessions > 1000 || procs < 1 || procs > sessions) {
        fprintf(stderr, "smtp_load: SESSIONS must be 1 to 1000, and P 1 to "
                        "SESSIONS\n");
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
    int fds[2];
    if (pipe(fds) != 0) {
        perror("smtp_load: pipe");
        return 1;
    }
    double t0 = s_mono();
    for (size_t k = 0; k < procs; k++) {
        pid_t pid = fork();
        if (pid < 0) {
            perror("smtp_load: fork");
            return 1;
        }
        if (pid == 0)
            s_child(url, msgs, n, sessions, procs, k, fds[1]);
    }
    close(fds[1]);
    size_t sent = 0, failed = 0, counts[2];
    while (read(fds[0], counts, sizeof counts) == (ssize_t)sizeof counts) {
        sent += counts[0];
        failed += counts[1];
    }
    while (wait(NULL) > 0)
        ;
    failed += n - sent - failed; /* a child that died told nothing */
    printf("sent %zu failed %zu seconds %.3f cpu %.3f\n", sent, failed,
           s_mono() - t0, s_cpu_of(RUSAGE_SELF) + s_cpu_of(RUSAGE_CHILDREN));
    curl_global_cleanup();
    for (size_t i = 0; i < n; i++)
        free(msgs[i].data);
    free(msgs);
    return failed ? 1 : 0;
}
