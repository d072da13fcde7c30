/* pm_notify.c - notices over SMTP to the node's no-milter listener. */
#include "pm_notify.h"
#include "pm_error.h"
#include "pm_file.h"
#include "pm_from.h"
#include "pm_handoff.h"
#include "pm_mimeparse.h"
#include "pm_log.h"
#include "pm_mem.h"

#include <gmime/gmime.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define S_QUEUE_MAX 1000
#define S_TRIES 3

typedef struct s_job_t {
    char *to;
    char *text;
    struct s_job_t *next;
} s_job_t;

struct pm_notify_t {
    char *host, *port;           /* where notices go now (s_target) */
    char *conf_host, *conf_port; /* the configured address */
    char *follow;                /* the agent's address file, or NULL */
    char *problem;               /* what was last wrong with it, or NULL */
    char *from;
    int timeout_ms;
    pthread_t thread;
    bool started, stop;
    pthread_mutex_t mutex;
    pthread_cond_t cond;
    s_job_t *head, *tail;
    size_t queued;
    uint64_t sent, failed;
};

/* ---- rendering ----------------------------------------------------------- */

/* Header-safe copy: no CR/LF/control characters, at most 200 bytes. */
static char *
s_hdr_safe(const char *text)
{
    text = text ? text : "";
    char *out = pm_strndup(text, 200);
    for (char *c = out; *c; c++)
        if ((unsigned char)*c < 0x20 || *c == 0x7f)
            *c = ' ';
    return out;
}

static char *
s_rcpt_list(const pm_notice_t *n)
{
    size_t len = 1;
    for (size_t i = 0; i < n->n_rcpts; i++)
        len += strlen(n->rcpts[i]) + 2;
    char *s = pm_calloc(1, len);
    for (size_t i = 0; i < n->n_rcpts; i++) {
        if (i)
            strcat(s, ", ");
        strcat(s, n->rcpts[i]);
    }
    return s;
}

/* The one mailbox GMime reads in ADDR, or NULL (caller unrefs). */
static InternetAddressMailbox *
s_mailbox(const char *addr)
{
    InternetAddressList *l = internet_address_list_parse(NULL, addr);
    InternetAddress *ia = l && internet_address_list_length(l) == 1
                              ? internet_address_list_get_address(l, 0)
                              : NULL;
    InternetAddressMailbox *mb = NULL;
    if (ia && INTERNET_ADDRESS_IS_MAILBOX(ia))
        mb = g_object_ref(INTERNET_ADDRESS_MAILBOX(ia));
    if (l)
        g_object_unref(l);
    return mb;
}

char *
pm_notify_address(const char *addr, char **to_header)
{
    if (!addr || !*addr || strlen(addr) > 320 || strpbrk(addr, "<>"))
        return NULL;
    for (const char *c = addr; *c; c++)
        if ((unsigned char)*c < 0x20 || *c == 0x7f)
            return NULL;
    pm_mime_init();
    InternetAddressMailbox *mb = s_mailbox(addr);
    const char *spec = mb ? internet_address_mailbox_get_addr(mb) : NULL;
    const char *at = spec ? strrchr(spec, '@') : NULL;
    char *out = NULL;
    if (at && at > spec && at[1] && !strpbrk(spec, " \t")) {
        out = pm_strdup(spec);
        if (to_header) {
            char *h =
                internet_address_to_string(INTERNET_ADDRESS(mb), NULL, TRUE);
            *to_header = pm_strdup(h);
            g_free(h);
        }
    }
    if (mb)
        g_object_unref(mb);
    return out;
}

/* A Message-ID nobody else has: the queue id for a reader, a random part
 * for uniqueness (one message gives several notices). */
static char *
s_message_id(const char *qid)
{
    char *uuid = g_uuid_string_random();
    char *id = pm_asprintf("<privmta.%s.%s@privmta-milter>", qid, uuid);
    g_free(uuid);
    return id;
}

char *
pm_notify_render(const pm_notice_t *n, const char *from, const char *to,
                 bool for_admin)
{
    char *to_header = NULL, *rcpt = pm_notify_address(to, &to_header);
    if (!rcpt)
        return NULL;
    free(rcpt);
    char date[64], stamp[64];
    struct tm tm;
    gmtime_r(&n->when, &tm);
    strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S +0000", &tm);
    strftime(stamp, sizeof stamp, "%Y-%m-%d %H:%M:%S UTC", &tm);
    char *item = s_hdr_safe(n->item), *subj = s_hdr_safe(n->subject);
    char *sender = s_hdr_safe(*n->sender ? n->sender : "<>");
    char *rcpts = s_rcpt_list(n), *rl = s_hdr_safe(rcpts);
    char *qid = s_hdr_safe(n->queue_id);
    char *msgid = s_message_id(qid);
    char *text = pm_asprintf(
        "From: %s\r\nTo: %s\r\nSubject: [privmta] %s refused: %s\r\n"
        "Date: %s\r\nMessage-ID: %s\r\n"
        "Auto-Submitted: auto-generated\r\nMIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        "Content-Transfer-Encoding: 8bit\r\n\r\n"
        "%s\r\n\r\n"
        "Reason:     %s: %s\r\n"
        "Sender:     %s\r\n"
        "Recipients: %s\r\n"
        "Subject:    %s\r\n"
        "Time:       %s\r\n"
        "Queue ID:   %s\r\n",
        from, to_header, n->what, item, date, msgid,
        for_admin ? "privmta-milter refused a message on this node."
                  : "A message addressed to you was refused and not "
                    "delivered.",
        n->what, item, sender, rl, subj, stamp, qid);
    free(item);
    free(subj);
    free(sender);
    free(rcpts);
    free(rl);
    free(qid);
    free(to_header);
    free(msgid);
    return text;
}

/* ---- SMTP -----------------------------------------------------------------
 */

static int
s_connect(pm_notify_t *self)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL;
    if (getaddrinfo(self->host, self->port, &hints, &res) != 0)
        return -1;
    int fd = -1;
    for (struct addrinfo *ai = res; ai && fd < 0; ai = ai->ai_next) {
        fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd >= 0 && connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(res);
    if (fd >= 0) {
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        struct timeval tv = {self->timeout_ms / 1000,
                             (self->timeout_ms % 1000) * 1000};
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    }
    return fd;
}

/* Reads one (possibly multi-line) reply; returns its code or -1. */
static int
s_reply(int fd)
{
    char line[1024];
    size_t n = 0;
    for (;;) {
        char c;
        ssize_t r = recv(fd, &c, 1, 0);
        if (r <= 0)
            return -1;
        if (n < sizeof line - 1)
            line[n++] = c;
        if (c != '\n')
            continue;
        line[n] = '\0';
        if (n >= 4 && line[3] == ' ')
            return atoi(line);
        if (n < 4 || line[3] != '-')
            return -1;
        n = 0;
    }
}

static bool
s_cmd(int fd, const char *text, int want)
{
    size_t len = strlen(text);
    if (len && send(fd, text, len, MSG_NOSIGNAL) != (ssize_t)len)
        return false;
    int code = s_reply(fd);
    return code / 100 == want;
}

/* The body with dot-stuffing, ended by CRLF.CRLF. */
static char *
s_dot_stuff(const char *text)
{
    size_t n = strlen(text);
    char *out = pm_malloc(2 * n + 8), *w = out;
    bool bol = true;
    for (const char *p = text; *p; p++) {
        if (bol && *p == '.')
            *w++ = '.';
        *w++ = *p;
        bol = *p == '\n';
    }
    memcpy(w, bol ? ".\r\n" : "\r\n.\r\n", bol ? 4 : 6);
    return out;
}

static bool
s_send(pm_notify_t *self, const s_job_t *job)
{
    int fd = s_connect(self);
    if (fd < 0)
        return false;
    char *rcpt = pm_asprintf("RCPT TO:<%s>\r\n", job->to);
    char *data = s_dot_stuff(job->text);
    bool ok = s_cmd(fd, "", 2) && s_cmd(fd, "EHLO privmta-milter\r\n", 2) &&
              s_cmd(fd, "MAIL FROM:<>\r\n", 2) && s_cmd(fd, rcpt, 2) &&
              s_cmd(fd, "DATA\r\n", 3) && s_cmd(fd, data, 2);
    if (ok)
        s_cmd(fd, "QUIT\r\n", 2);
    close(fd);
    free(rcpt);
    free(data);
    return ok;
}

/* "host:port", "[v6]:port". */
static bool
s_split(const char *smtp, char **host, char **port)
{
    const char *colon = strrchr(smtp, ':');
    if (!colon || !colon[1])
        return false;
    const char *h = smtp;
    size_t hl = (size_t)(colon - smtp);
    if (hl >= 2 && h[0] == '[' && h[hl - 1] == ']') {
        h++;
        hl -= 2;
    }
    if (!hl)
        return false;
    *host = pm_strndup(h, hl);
    *port = pm_strdup(colon + 1);
    return true;
}

/* Says PROBLEM (taken) once, not at every notice while it lasts. */
static void
s_problem(pm_notify_t *self, char *problem)
{
    if (problem && (!self->problem || strcmp(problem, self->problem) != 0))
        pm_warn("%s; notices go to %s:%s (notify_smtp)", problem,
                self->conf_host, self->conf_port);
    free(self->problem);
    self->problem = problem;
}

/* Where the next notice goes: the address in the FOLLOW file when it
 * holds one (the agent's notify_listener, pm_handoff.h), else the
 * configured one; a change is logged. Read before each notice, which
 * are rare, so a changed listener is followed without a reload. Only the
 * notifier thread uses host and port. */
static void
s_target(pm_notify_t *self)
{
    char *text = NULL, *why = NULL, *host = NULL, *port = NULL;
    int rc = self->follow ? pm_file_read(self->follow, PM_HANDOFF_NOTIFY_MAX,
                                         PM_FILE_STRICT, &text, NULL, &why)
                          : PM_ENOTFOUND;
    if (rc == PM_OK) {
        text[strcspn(text, "\r\n")] = '\0';
        if (!s_split(text, &host, &port))
            rc = PM_EINVAL;
    }
    /* a file that is there but unusable is said once */
    s_problem(self, rc == PM_OK || rc == PM_ENOTFOUND
                        ? NULL
                        : pm_asprintf("%s: %s", self->follow,
                                      why ? why : "not host:port"));
    if (rc != PM_OK) {
        host = pm_strdup(self->conf_host);
        port = pm_strdup(self->conf_port);
    }
    if (strcmp(host, self->host) != 0 || strcmp(port, self->port) != 0) {
        pm_info("notices go to %s:%s (%s)", host, port,
                rc == PM_OK ? "the agent's notify_listener" : "notify_smtp");
        free(self->host);
        free(self->port);
        self->host = host;
        self->port = port;
    } else {
        free(host);
        free(port);
    }
    free(text);
    free(why);
}

/* ---- the notifier thread --------------------------------------------------
 */

static void *
s_run(void *arg)
{
    pm_notify_t *self = arg;
    pthread_mutex_lock(&self->mutex);
    for (;;) {
        while (!self->head && !self->stop)
            pthread_cond_wait(&self->cond, &self->mutex);
        s_job_t *job = self->head;
        if (!job)
            break; /* stop and nothing left */
        self->head = job->next;
        if (!self->head)
            self->tail = NULL;
        self->queued--;
        pthread_mutex_unlock(&self->mutex);
        s_target(self);
        bool ok = false;
        for (int i = 0; i < S_TRIES && !ok; i++) {
            ok = s_send(self, job);
            if (!ok && i + 1 < S_TRIES && !self->stop)
                sleep(1);
        }
        if (!ok)
            pm_error("notification to %s could not be sent to %s:%s", job->to,
                     self->host, self->port);
        pthread_mutex_lock(&self->mutex);
        *(ok ? &self->sent : &self->failed) += 1;
        free(job->to);
        free(job->text);
        free(job);
    }
    pthread_mutex_unlock(&self->mutex);
    return NULL;
}

pm_notify_t *
pm_notify_new(const char *smtp, const char *follow, const char *from,
              int timeout_ms, char **why)
{
    pm_notify_t *self = pm_calloc(1, sizeof *self);
    if (!smtp || !s_split(smtp, &self->conf_host, &self->conf_port)) {
        if (why)
            *why = pm_asprintf("notify address '%s' is not host:port",
                               smtp ? smtp : "");
        free(self);
        return NULL;
    }
    self->host = pm_strdup(self->conf_host);
    self->port = pm_strdup(self->conf_port);
    self->follow = follow ? pm_strdup(follow) : NULL;
    self->from = pm_strdup(from);
    self->timeout_ms = timeout_ms > 0 ? timeout_ms : 10000;
    pthread_mutex_init(&self->mutex, NULL);
    pthread_cond_init(&self->cond, NULL);
    self->started = pthread_create(&self->thread, NULL, s_run, self) == 0;
    if (!self->started) {
        if (why)
            *why = pm_strdup("cannot start the notifier thread");
        pm_notify_destroy(&self);
    }
    return self;
}

void
pm_notify_destroy(pm_notify_t **self_p)
{
    pm_notify_t *self = self_p ? *self_p : NULL;
    if (!self)
        return;
    if (self->started) {
        pthread_mutex_lock(&self->mutex);
        self->stop = true;
        pthread_cond_signal(&self->cond);
        pthread_mutex_unlock(&self->mutex);
        pthread_join(self->thread, NULL);
    }
    pthread_mutex_destroy(&self->mutex);
    pthread_cond_destroy(&self->cond);
    free(self->host);
    free(self->port);
    free(self->conf_host);
    free(self->conf_port);
    free(self->follow);
    free(self->problem);
    free(self->from);
    free(self);
    *self_p = NULL;
}

bool
pm_notify_post(pm_notify_t *self, const pm_notice_t *n, const char *to,
               bool for_admin)
{
    char *rcpt = pm_notify_address(to, NULL);
    if (!rcpt) {
        char *shown = s_hdr_safe(to);
        pm_warn("notification not sent: unusable recipient address '%s'",
                shown);
        free(shown);
        return false;
    }
    s_job_t *job = pm_calloc(1, sizeof *job);
    job->to = rcpt; /* as GMime reads it: what RCPT TO gets */
    job->text = pm_notify_render(n, self->from, to, for_admin);
    pthread_mutex_lock(&self->mutex);
    bool ok = self->queued < S_QUEUE_MAX && !self->stop;
    if (ok) {
        if (self->tail)
            self->tail->next = job;
        else
            self->head = job;
        self->tail = job;
        self->queued++;
        pthread_cond_signal(&self->cond);
    }
    pthread_mutex_unlock(&self->mutex);
    if (!ok) {
        pm_warn("notification queue full: notice to %s dropped", to);
        free(job->to);
        free(job->text);
        free(job);
    }
    return ok;
}

void
pm_notify_counts(pm_notify_t *self, uint64_t *sent, uint64_t *failed)
{
    pthread_mutex_lock(&self->mutex);
    *sent = self->sent;
    *failed = self->failed;
    pthread_mutex_unlock(&self->mutex);
}
