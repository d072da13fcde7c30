/* pm_spamd.c - spamd client: one connection per check, fail safe. */
#include "pm_spamd.h"
#include "pm_clock.h"

#include "pm_log.h"
#include "pm_mem.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

/* The biggest answer accepted: SYMBOLS is a rule list, a few KB at most. */
#define MAX_ANSWER (256 * 1024)
/* Scores must stay below 10^12 points (in hundredths: 10^14). */
#define MAX_HUNDREDTHS INT64_C(100000000000000)

struct pm_spamd_t {
    char *address; /* as given, for messages */
    struct sockaddr_storage addr;
    socklen_t addrlen;
    int timeout_ms;
};

/* One answer as read from the socket (NUL-terminated at len). */
typedef struct {
    char *buf;
    size_t len;
} s_answer_t;

/* Network text made safe for a log line: printable ASCII, at most 120. */
static char *
s_printable(const char *s, size_t n)
{
    if (n > 120)
        n = 120;
    char *out = pm_strndup(s, n);
    for (size_t i = 0; i < n; i++)
        if (!isprint((unsigned char)out[i]))
            out[i] = '?';
    return out;
}

/* ---- address ---------------------------------------------------------- */

static bool
s_parse_unix(pm_spamd_t *self, const char *path)
{
    struct sockaddr_un *sun = (struct sockaddr_un *)&self->addr;
    if (strlen(path) >= sizeof sun->sun_path)
        return false;
    sun->sun_family = AF_UNIX;
    strcpy(sun->sun_path, path);
    self->addrlen = sizeof *sun;
    return true;
}

/* "host:port", "[v6]:port"; resolved once with getaddrinfo. */
static bool
s_parse_inet(pm_spamd_t *self, const char *address)
{
    const char *colon = strrchr(address, ':');
    if (!colon || colon == address || !colon[1])
        return false;
    char *host = pm_strndup(address, (size_t)(colon - address));
    size_t hl = strlen(host);
    if (host[0] == '[' && hl > 2 && host[hl - 1] == ']') {
        memmove(host, host + 1, hl - 2);
        host[hl - 2] = '\0';
    }
    char *end = NULL;
    unsigned long port = strtoul(colon + 1, &end, 10);
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM};
    struct addrinfo *res = NULL;
    bool ok = !*end && port > 0 && port < 65536 &&
              getaddrinfo(host, colon + 1, &hints, &res) == 0 && res &&
              res->ai_addrlen <= sizeof self->addr;
    if (ok) {
        memcpy(&self->addr, res->ai_addr, res->ai_addrlen);
        self->addrlen = res->ai_addrlen;
    }
    if (res)
        freeaddrinfo(res);
    free(host);
    return ok;
}

pm_spamd_t *
pm_spamd_new(const char *address, int timeout_ms)
{
    if (!address || !*address || timeout_ms <= 0)
        return NULL;
    pm_spamd_t *self = pm_calloc(1, sizeof *self);
    self->address = pm_strdup(address);
    self->timeout_ms = timeout_ms;
    bool ok = address[0] == '/' ? s_parse_unix(self, address)
                                : s_parse_inet(self, address);
    if (!ok) {
        pm_debug("spamd: bad address '%s'", address);
        pm_spamd_destroy(&self);
    }
    return self;
}

void
pm_spamd_destroy(pm_spamd_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    free((*self_p)->address);
    PM_FREE(self_p);
}

/* ---- socket I/O under one deadline ------------------------------------ */

/* Waits for events on fd until deadline: 1 ready, 0 timed out, -1 error. */
static int
s_wait(int fd, short events, int64_t deadline)
{
    for (;;) {
        int64_t left = deadline - pm_clock_ms();
        if (left <= 0)
            return 0;
        struct pollfd pfd = {.fd = fd, .events = events};
        int rc = poll(&pfd, 1, (int)left);
        if (rc > 0)
            return 1;
        if (rc == 0)
            return 0;
        if (errno != EINTR)
            return -1;
    }
}

static int
s_connect(const pm_spamd_t *self, int64_t deadline, int *fd_out, char **why)
{
    int family = self->addr.ss_family;
    int fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        pm_why(why, "spamd", "cannot create socket: %s", strerror(errno));
        return PM_EIO;
    }
    if (family != AF_UNIX) {
        /* The request goes out in one sendmsg(); with Nagle off, the tail
         * of a message bigger than the send buffer is not held back
         * waiting for the peer's delayed ACK (~40 ms per message). */
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    int rc;
    while ((rc = connect(fd, (const struct sockaddr *)&self->addr,
                         self->addrlen)) < 0 &&
           (errno == EINTR || errno == EAGAIN)) {
        /* EAGAIN: a unix socket's backlog is full; try again shortly. */
        if (pm_clock_ms() >= deadline)
            break;
        poll(NULL, 0, 5);
    }
    int err = rc < 0 ? errno : 0;
    if (rc < 0 && err == EINPROGRESS) {
        int ready = s_wait(fd, POLLOUT, deadline);
        socklen_t elen = sizeof err;
        if (ready == 0) {
            close(fd);
            pm_why(why, "spamd", "timed out connecting to spamd at %s",
                   self->address);
            return PM_ETIMEDOUT;
        }
        if (ready < 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen))
            err = errno;
    }
    if (err) {
        close(fd);
        if (err == EAGAIN) {
            pm_why(why, "spamd", "timed out connecting to spamd at %s (busy)",
                   self->address);
            return PM_ETIMEDOUT;
        }
        pm_why(why, "spamd", "cannot connect to spamd at %s: %s", self->address,
               strerror(err));
        return PM_EIO;
    }
    *fd_out = fd;
    return PM_OK;
}

/* Sends all of iov with as few sendmsg() calls as the socket allows. */
static int
s_send(const pm_spamd_t *self, int fd, struct iovec *iov, int iovcnt,
       int64_t deadline, char **why)
{
    while (iovcnt > 0) {
        struct msghdr mh = {.msg_iov = iov, .msg_iovlen = (size_t)iovcnt};
        ssize_t n = sendmsg(fd, &mh, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN) {
            int ready = s_wait(fd, POLLOUT, deadline);
            if (ready > 0)
                continue;
            if (ready == 0) {
                pm_why(why, "spamd", "timed out sending to spamd at %s",
                       self->address);
                return PM_ETIMEDOUT;
            }
        }
        if (n < 0) {
            pm_why(why, "spamd", "cannot send to spamd at %s: %s",
                   self->address, strerror(errno));
            return PM_EIO;
        }
        size_t sent = (size_t)n;
        while (iovcnt > 0 && sent >= iov->iov_len) {
            sent -= iov->iov_len;
            iov++;
            iovcnt--;
        }
        if (iovcnt > 0) {
            iov->iov_base = (char *)iov->iov_base + sent;
            iov->iov_len -= sent;
        }
    }
    return PM_OK;
}

/* The answer is complete once its headers are in and, when it announced a
 * Content-length, that many body bytes. Without one, EOF ends it. */
static bool
s_complete(const char *buf, size_t len)
{
    const char *eoh = memmem(buf, len, "\r\n\r\n", 4);
    if (!eoh)
        return false;
    size_t body = len - (size_t)(eoh + 4 - buf);
    for (const char *p = buf; p < eoh;) {
        const char *eol = memmem(p, (size_t)(eoh - p) + 2, "\r\n", 2);
        if (!eol)
            break;
        if ((size_t)(eol - p) > 15 && !strncasecmp(p, "Content-length:", 15))
            return body >= strtoull(p + 15, NULL, 10);
        p = eol + 2;
    }
    return false;
}

static int
s_recv(const pm_spamd_t *self, int fd, int64_t deadline, s_answer_t *ans,
       char **why)
{
    size_t cap = 4096;
    ans->buf = pm_malloc(cap + 1);
    ans->buf[0] = '\0'; /* EOF before any byte: an empty string, not junk */
    ans->len = 0;
    for (;;) {
        if (ans->len == cap) {
            if (cap >= MAX_ANSWER) {
                pm_why(why, "spamd", "answer from spamd at %s is over %d bytes",
                       self->address, MAX_ANSWER);
                return PM_EPROTO;
            }
            cap *= 2;
            ans->buf = pm_realloc(ans->buf, cap + 1);
        }
        ssize_t n = recv(fd, ans->buf + ans->len, cap - ans->len, 0);
        if (n > 0) {
            ans->len += (size_t)n;
            ans->buf[ans->len] = '\0';
            if (s_complete(ans->buf, ans->len))
                return PM_OK;
            continue;
        }
        if (n == 0)
            return PM_OK; /* EOF: the parser decides if it is whole */
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN) {
            pm_why(why, "spamd", "cannot read from spamd at %s: %s",
                   self->address, strerror(errno));
            return PM_EIO;
        }
        int ready = s_wait(fd, POLLIN, deadline);
        if (ready == 0) {
            pm_why(why, "spamd", "timed out waiting for spamd at %s (%d ms)",
                   self->address, self->timeout_ms);
            return PM_ETIMEDOUT;
        }
        if (ready < 0) {
            pm_why(why, "spamd", "cannot poll spamd at %s: %s", self->address,
                   strerror(errno));
            return PM_EIO;
        }
    }
}

/* Connect, send header + body in one sendmsg, read the answer. */
static int
s_exchange(const pm_spamd_t *self, const char *head, const char *body,
           size_t body_len, s_answer_t *ans, char **why)
{
    int64_t deadline = pm_clock_ms() + self->timeout_ms;
    int fd = -1;
    int rc = s_connect(self, deadline, &fd, why);
    if (rc)
        return rc;
    struct iovec iov[2] = {{.iov_base = (void *)head, .iov_len = strlen(head)},
                           {.iov_base = (void *)body, .iov_len = body_len}};
    rc = s_send(self, fd, iov, body_len ? 2 : 1, deadline, why);
    if (!rc) {
        /* Tell spamd the request is over; it does not need it (it counts
         * Content-length) but a FIN costs nothing and helps old servers. */
        shutdown(fd, SHUT_WR);
        rc = s_recv(self, fd, deadline, ans, why);
    }
    close(fd);
    if (rc)
        PM_FREE(&ans->buf);
    return rc;
}

/* ---- scores ----------------------------------------------------------- */

int
pm_spamd_parse_score(const char *text, size_t len, int64_t *hundredths)
{
    if (!text || !hundredths)
        return PM_EINVAL;
    size_t i = 0;
    bool neg = false;
    if (i < len && (text[i] == '-' || text[i] == '+'))
        neg = text[i++] == '-';
    int64_t whole = 0;
    size_t digits = 0;
    for (; i < len && isdigit((unsigned char)text[i]); i++, digits++) {
        whole = whole * 10 + (text[i] - '0');
        if (whole * 100 >= MAX_HUNDREDTHS)
            return PM_EINVAL;
    }
    int64_t frac = 0;  /* the first two decimals */
    bool rest = false; /* any non-zero decimal after those */
    if (i < len && text[i] == '.') {
        i++;
        for (size_t d = 0; i < len && isdigit((unsigned char)text[i]);
             i++, d++, digits++) {
            if (d < 2)
                frac += (text[i] - '0') * (d == 0 ? 10 : 1);
            else if (text[i] != '0')
                rest = true;
        }
    }
    if (i != len || digits == 0)
        return PM_EINVAL;
    int64_t v = whole * 100 + frac;
    /* Floor: -6.605 is -661 hundredths, 6.605 is 660. */
    *hundredths = neg ? -v - (rest ? 1 : 0) : v;
    return PM_OK;
}

int64_t
pm_spamd_percent_hundredths(unsigned percent)
{
    /* percent x 20 / 100 points x 100 hundredths/point = percent x 20. */
    return (int64_t)percent * 20;
}

bool
pm_spamd_over_hundredths(int64_t score_hundredths, unsigned percent)
{
    return score_hundredths >= pm_spamd_percent_hundredths(percent);
}

bool
pm_spamd_over(double score, unsigned percent)
{
    if (isnan(score))
        return false;
    if (score >= 1e12 || score <= -1e12)
        return score > 0;
    return pm_spamd_over_hundredths((int64_t)llround(score * 100.0), percent);
}

/* ---- the answer ------------------------------------------------------- */

/* "True ; 6.6 / 5.0" (also Yes/No from REPORT_IFSPAM). */
static bool
s_parse_spam_header(const char *v, pm_spamd_result_t *r)
{
    while (*v == ' ' || *v == '\t')
        v++;
    size_t wl = strcspn(v, " \t;");
    if ((wl == 4 && !strncasecmp(v, "True", 4)) ||
        (wl == 3 && !strncasecmp(v, "Yes", 3)))
        r->spamd_says_spam = true;
    else if ((wl == 5 && !strncasecmp(v, "False", 5)) ||
             (wl == 2 && !strncasecmp(v, "No", 2)))
        r->spamd_says_spam = false;
    else
        return false;
    v += wl;
    v += strspn(v, " \t");
    if (*v++ != ';')
        return false;
    v += strspn(v, " \t");
    size_t sl = strcspn(v, " \t/");
    if (pm_spamd_parse_score(v, sl, &r->score_hundredths))
        return false;
    v += sl;
    v += strspn(v, " \t");
    if (*v++ != '/')
        return false;
    v += strspn(v, " \t");
    size_t tl = strcspn(v, " \t\r\n");
    if (pm_spamd_parse_score(v, tl, &r->threshold_hundredths))
        return false;
    v += tl;
    v += strspn(v, " \t");
    if (*v)
        return false;
    r->score = (double)r->score_hundredths / 100.0;
    r->threshold = (double)r->threshold_hundredths / 100.0;
    return true;
}

/* "SPAMD/1.1 0 EX_OK": returns the code, or -1 when it is no status line. */
static int
s_parse_status(const char *line)
{
    int major, minor, code, used = 0;
    if (sscanf(line, "SPAMD/%d.%d %d %n", &major, &minor, &code, &used) < 3 ||
        used == 0)
        return -1;
    return code;
}

static void
s_parse_symbols(const char *body, size_t len, pm_spamd_result_t *r)
{
    size_t cap = 0;
    for (size_t i = 0; i < len;) {
        size_t j = i;
        while (j < len && body[j] != ',')
            j++;
        size_t a = i, b = j;
        while (a < b && isspace((unsigned char)body[a]))
            a++;
        while (b > a && isspace((unsigned char)body[b - 1]))
            b--;
        if (b > a) {
            if (r->n_symbols == cap) {
                cap = cap ? cap * 2 : 8;
                r->symbols = pm_realloc(r->symbols, cap * sizeof(char *));
            }
            r->symbols[r->n_symbols++] = s_printable(body + a, b - a);
        }
        i = j + 1;
    }
}

/* Walks the "Name: value" lines between the status line and the blank
 * line; fills *r from Spam:, *clen from Content-length:. WHO names the
 * server in messages ("spamd at 127.0.0.1:783"). */
static int
s_parse_headers(const char *who, char *p, pm_spamd_result_t *r, long long *clen,
                char **why)
{
    bool have_spam = false;
    while (*p) {
        char *eol = strstr(p, "\r\n");
        *eol = '\0';
        if (!strncasecmp(p, "Content-length:", 15)) {
            char *end;
            *clen = strtoll(p + 15, &end, 10);
            if (end == p + 15 || *clen < 0 || *end)
                goto bad;
        } else if (!strncasecmp(p, "Spam:", 5)) {
            if (!s_parse_spam_header(p + 5, r))
                goto bad;
            have_spam = true;
        }
        p = eol + 2;
    }
    if (!have_spam) {
        pm_why(why, "spamd", "answer from %s has no Spam: header", who);
        return PM_EPROTO;
    }
    return PM_OK;
bad:;
    char *text = s_printable(p, strlen(p));
    pm_why(why, "spamd", "bad header from %s: '%s'", who, text);
    free(text);
    return PM_EPROTO;
}

/* Parses BUF (NUL-terminated at LEN, modified in place) into *r. */
static int
s_parse_answer(const char *who, char *buf, size_t len, pm_spamd_result_t *r,
               char **why)
{
    if (memchr(buf, '\0', len)) {
        pm_why(why, "spamd", "NUL byte in the answer from %s", who);
        return PM_EPROTO;
    }
    char *eol = strstr(buf, "\r\n");
    if (!eol) {
        pm_why(why, "spamd", "%s from %s",
               len ? "truncated answer" : "no answer (connection closed)", who);
        return PM_EPROTO;
    }
    char *eoh = strstr(buf, "\r\n\r\n"); /* eoh >= eol */
    *eol = '\0';
    if (s_parse_status(buf) != 0) {
        char *text = s_printable(buf, strlen(buf));
        pm_why(why, "spamd", "%s answered '%s'", who, text);
        free(text);
        return PM_EPROTO;
    }
    if (!eoh) {
        pm_why(why, "spamd", "truncated answer from %s", who);
        return PM_EPROTO;
    }
    char *body = eoh + 4;
    size_t body_len = len - (size_t)(body - buf);
    eoh[2] = '\0'; /* the headers keep their last "\r\n" */
    long long clen = -1;
    int rc = s_parse_headers(who, eol + 2, r, &clen, why);
    if (rc)
        return rc;
    if (clen >= 0 && (size_t)clen != body_len) {
        pm_why(why, "spamd",
               "answer from %s: Content-length %lld, got %zu bytes", who, clen,
               body_len);
        return PM_EPROTO;
    }
    s_parse_symbols(body, body_len, r);
    return PM_OK;
}

/* The parser works on a private NUL-terminated copy: it cuts the text
 * into lines in place, and the caller's bytes (a socket buffer, or a
 * fuzzer's input) need be neither writable nor terminated. */
static int
s_parse_reply(const char *who, const char *buf, size_t len,
              pm_spamd_result_t *out, char **why)
{
    char *copy = pm_malloc(len + 1);
    if (len)
        memcpy(copy, buf, len);
    copy[len] = '\0';
    pm_spamd_result_t r = {0};
    int rc = s_parse_answer(who, copy, len, &r, why);
    free(copy);
    if (rc) {
        pm_spamd_result_clear(&r);
        return rc;
    }
    *out = r;
    return PM_OK;
}

int
pm_spamd_parse_reply(const char *buf, size_t len, pm_spamd_result_t *out,
                     char **why)
{
    if ((!buf && len) || !out) {
        pm_why(why, "spamd", "invalid arguments to pm_spamd_parse_reply");
        return PM_EINVAL;
    }
    return s_parse_reply("spamd", buf ? buf : "", len, out, why);
}

/* ---- public ----------------------------------------------------------- */

static bool
s_user_ok(const char *user)
{
    if (!*user || strlen(user) > 128)
        return false;
    for (const char *p = user; *p; p++)
        if (!isgraph((unsigned char)*p))
            return false;
    return true;
}

int
pm_spamd_check(pm_spamd_t *self, const char *msg, size_t len, const char *user,
               pm_spamd_result_t *out, char **why)
{
    if (!self || !msg || !out || (user && !s_user_ok(user))) {
        pm_why(why, "spamd", "invalid arguments to pm_spamd_check");
        return PM_EINVAL;
    }
    int64_t start = pm_clock_ms();
    char *head = user ? pm_asprintf("SYMBOLS SPAMC/1.5\r\n"
                                    "Content-length: %zu\r\n"
                                    "User: %s\r\n\r\n",
                                    len, user)
                      : pm_asprintf("SYMBOLS SPAMC/1.5\r\n"
                                    "Content-length: %zu\r\n\r\n",
                                    len);
    s_answer_t ans = {0};
    int rc = s_exchange(self, head, msg, len, &ans, why);
    free(head);
    if (rc)
        return rc;
    char *who = pm_asprintf("spamd at %s", self->address);
    pm_spamd_result_t r = {0};
    rc = s_parse_reply(who, ans.buf, ans.len, &r, why);
    free(who);
    free(ans.buf);
    if (rc)
        return rc;
    r.latency_ms = (unsigned)(pm_clock_ms() - start);
    *out = r;
    return PM_OK;
}

int
pm_spamd_ping(pm_spamd_t *self, char **why)
{
    if (!self) {
        pm_why(why, "spamd", "invalid arguments to pm_spamd_ping");
        return PM_EINVAL;
    }
    s_answer_t ans = {0};
    int rc = s_exchange(self, "PING SPAMC/1.5\r\n\r\n", NULL, 0, &ans, why);
    if (rc)
        return rc;
    char *eol = strstr(ans.buf, "\r\n");
    if (eol)
        *eol = '\0';
    if (!eol || s_parse_status(ans.buf) != 0 || !strstr(ans.buf, "PONG")) {
        char *text = s_printable(ans.buf, strlen(ans.buf));
        pm_why(why, "spamd", "spamd at %s answered PING with '%s'",
               self->address, text);
        free(text);
        rc = PM_EPROTO;
    }
    free(ans.buf);
    return rc;
}

void
pm_spamd_result_clear(pm_spamd_result_t *result)
{
    if (!result)
        return;
    for (size_t i = 0; i < result->n_symbols; i++)
        free(result->symbols[i]);
    free(result->symbols);
    memset(result, 0, sizeof *result);
}
