/* pm_milter_msg.c - one message as the MTA hands it to the milter. */
#include "pm_mem.h"
#include "pm_milter.h"
#include "pm_handoff.h"
#include "pm_milter_private.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#define S_MAX_RCPTS 1000

struct pm_mmsg_t {
    size_t max_bytes;
    struct sockaddr_storage client;
    bool has_client;
    char *myhostname;
    char *auth, *qid, *sender, *subject, *msgid;
    char **rcpts;
    size_t n_rcpts, cap_rcpts;
    char **froms; /* every From value, n_froms */
    size_t n_froms;
    char *data; /* rebuilt message, CRLF */
    size_t len, cap;
    bool too_big;
    char *probe;     /* the first PM_PROBE_HEADER value */
    size_t n_probes; /* how many such headers came */
    bool probe_ok;   /* it holds this node's probe token */
};

pm_mmsg_t *
pm_mmsg_new(size_t max_bytes)
{
    pm_mmsg_t *self = pm_calloc(1, sizeof *self);
    self->max_bytes = max_bytes;
    return self;
}

static void
s_forget(pm_mmsg_t *self)
{
    PM_FREE(&self->auth);
    PM_FREE(&self->qid);
    PM_FREE(&self->sender);
    PM_FREE(&self->subject);
    PM_FREE(&self->msgid);
    for (size_t i = 0; i < self->n_rcpts; i++)
        free(self->rcpts[i]);
    self->n_rcpts = 0;
    for (size_t i = 0; i < self->n_froms; i++)
        free(self->froms[i]);
    PM_FREE(&self->froms);
    self->n_froms = 0;
    self->len = 0;
    self->too_big = false;
    PM_FREE(&self->probe);
    self->n_probes = 0;
    self->probe_ok = false;
    /* keep self->data's capacity: the next message on this connection
     * reuses it (few allocations per message) */
}

void
pm_mmsg_reset(pm_mmsg_t *self)
{
    if (self)
        s_forget(self);
}

void
pm_mmsg_destroy(pm_mmsg_t **self_p)
{
    pm_mmsg_t *self = self_p ? *self_p : NULL;
    if (!self)
        return;
    s_forget(self);
    free(self->rcpts);
    free(self->data);
    free(self->myhostname);
    free(self);
    *self_p = NULL;
}

void
pm_mmsg_set_client(pm_mmsg_t *self, const struct sockaddr *sa)
{
    self->has_client = false;
    if (!sa)
        return;
    size_t len = sa->sa_family == AF_INET    ? sizeof(struct sockaddr_in)
                 : sa->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                             : 0;
    if (len) {
        memcpy(&self->client, sa, len);
        self->has_client = true;
    }
}

static void
s_set(char **field, const char *value)
{
    free(*field);
    *field = value && *value ? pm_strdup(value) : NULL;
}

void
pm_mmsg_set_myhostname(pm_mmsg_t *self, const char *name)
{
    s_set(&self->myhostname, name);
}

void
pm_mmsg_set_auth(pm_mmsg_t *self, const char *authen)
{
    s_set(&self->auth, authen);
}

void
pm_mmsg_set_queue_id(pm_mmsg_t *self, const char *qid)
{
    s_set(&self->qid, qid);
}

/* "<a@b>" -> "a@b"; "" for "<>". */
static char *
s_strip_angles(const char *addr)
{
    size_t n = strlen(addr);
    if (n >= 2 && addr[0] == '<' && addr[n - 1] == '>')
        return pm_strndup(addr + 1, n - 2);
    return pm_strdup(addr);
}

void
pm_mmsg_set_sender(pm_mmsg_t *self, const char *addr)
{
    free(self->sender);
    self->sender = s_strip_angles(addr ? addr : "");
}

void
pm_mmsg_add_rcpt(pm_mmsg_t *self, const char *addr)
{
    if (!addr || self->n_rcpts >= S_MAX_RCPTS)
        return;
    if (self->n_rcpts == self->cap_rcpts) {
        self->cap_rcpts = self->cap_rcpts ? self->cap_rcpts * 2 : 4;
        self->rcpts =
            pm_realloc(self->rcpts, self->cap_rcpts * sizeof *self->rcpts);
    }
    self->rcpts[self->n_rcpts++] = s_strip_angles(addr);
}

static void
s_append(pm_mmsg_t *self, const void *data, size_t len)
{
    if (self->too_big || len > self->max_bytes - self->len) {
        self->too_big = true;
        return;
    }
    if (self->len + len + 1 > self->cap) {
        size_t cap = self->cap ? self->cap : 16384;
        while (cap < self->len + len + 1)
            cap *= 2;
        self->data = pm_realloc(self->data, cap);
        self->cap = cap;
    }
    memcpy(self->data + self->len, data, len);
    self->len += len;
    self->data[self->len] = '\0';
}

/* Appends TEXT with every bare LF turned into CRLF. */
static void
s_append_crlf(pm_mmsg_t *self, const char *text)
{
    for (const char *p = text; *p;) {
        const char *nl = strchr(p, '\n');
        size_t n = nl ? (size_t)(nl - p) : strlen(p);
        if (n && p[n - 1] == '\r')
            n--;
        s_append(self, p, n);
        if (!nl)
            break;
        s_append(self, "\r\n", 2);
        p = nl + 1;
    }
}

/* VALUE without the blanks (folding included) around it, at most MAX
 * bytes of it. */
static char *
s_trimmed(const char *value, size_t max)
{
    while (*value == ' ' || *value == '\t' || *value == '\r' || *value == '\n')
        value++;
    size_t n = strlen(value);
    while (n && strchr(" \t\r\n", value[n - 1]))
        n--;
    return pm_strndup(value, n < max ? n : max);
}

void
pm_mmsg_add_header(pm_mmsg_t *self, const char *name, const char *value)
{
    if (!name || !value)
        return;
    if (strcasecmp(name, "Subject") == 0 && !self->subject)
        self->subject = pm_strdup(value);
    if (strcasecmp(name, "Message-ID") == 0 && !self->msgid)
        self->msgid = s_trimmed(value, PM_MMSG_MSGID_MAX);
    if (strcasecmp(name, PM_PROBE_HEADER) == 0 && !self->n_probes++)
        self->probe = pm_strdup(value);
    if (strcasecmp(name, "From") == 0 && !self->too_big) {
        /* past max_bytes nothing is kept: the message is refused */
        self->froms =
            pm_realloc(self->froms, (self->n_froms + 1) * sizeof *self->froms);
        self->froms[self->n_froms++] = pm_strdup(value);
    }
    s_append(self, name, strlen(name));
    s_append(self, ": ", 2);
    s_append_crlf(self, value);
    s_append(self, "\r\n", 2);
}

void
pm_mmsg_end_headers(pm_mmsg_t *self)
{
    s_append(self, "\r\n", 2);
}

void
pm_mmsg_add_body(pm_mmsg_t *self, const void *data, size_t len)
{
    s_append(self, data, len);
}

const char *
pm_mmsg_data(const pm_mmsg_t *self, size_t *len)
{
    *len = self->len;
    return self->data ? self->data : "";
}

const char *
pm_mmsg_queue_id(const pm_mmsg_t *self)
{
    return self->qid ? self->qid : "NOQUEUE";
}

bool
pm_mmsg_too_big(const pm_mmsg_t *self)
{
    return self->too_big;
}

char *const *
pm_mmsg_rcpts(const pm_mmsg_t *msg, size_t *n)
{
    *n = msg->n_rcpts;
    return msg->rcpts;
}

const char *
pm_mmsg_sender(const pm_mmsg_t *msg)
{
    return msg->sender ? msg->sender : "";
}

const char *
pm_mmsg_myhostname(const pm_mmsg_t *msg)
{
    return msg->myhostname ? msg->myhostname : "";
}

const char *
pm_mmsg_subject(const pm_mmsg_t *msg)
{
    return msg->subject;
}

const char *
pm_mmsg_message_id(const pm_mmsg_t *msg)
{
    return msg->msgid ? msg->msgid : "";
}

const char *
pm_mmsg_auth(const pm_mmsg_t *msg)
{
    return msg->auth;
}

const struct sockaddr *
pm_mmsg_client(const pm_mmsg_t *msg)
{
    return msg->has_client ? (const struct sockaddr *)&msg->client : NULL;
}

void
pm_mmsg_from(const pm_mmsg_t *msg, pm_from_t *out)
{
    pm_from_parse((const char *const *)msg->froms, msg->n_froms, out);
}

char *
pm_mmsg_from_domain(const pm_mmsg_t *msg)
{
    pm_from_t f;
    pm_mmsg_from(msg, &f);
    char *d = f.kind == PM_FROM_ONE ? f.domain : NULL;
    f.domain = NULL;
    pm_from_clear(&f);
    return d;
}

bool
pm_mmsg_from_mentions(const pm_mmsg_t *msg, const char *domain)
{
    pm_from_t f;
    pm_mmsg_from(msg, &f);
    bool hit = pm_from_names(&f, domain);
    pm_from_clear(&f);
    return hit;
}

/* 127.0.0.0/8, ::1, or ::ffff:127.x.x.x. */
static bool
s_loopback(const struct sockaddr *sa)
{
    if (sa && sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
    }
    if (sa && sa->sa_family == AF_INET6) {
        const struct in6_addr *a =
            &((const struct sockaddr_in6 *)sa)->sin6_addr;
        return IN6_IS_ADDR_LOOPBACK(a) ||
               (IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127);
    }
    return false;
}

const char *
pm_mmsg_probe(const pm_mmsg_t *self)
{
    return self->n_probes == 1 && self->has_client &&
                   s_loopback((const struct sockaddr *)&self->client)
               ? self->probe
               : NULL;
}

void
pm_mmsg_set_probe_ok(pm_mmsg_t *self, bool ok)
{
    self->probe_ok = ok && pm_mmsg_probe(self);
}

bool
pm_mmsg_probe_ok(const pm_mmsg_t *self)
{
    return self->probe_ok;
}
