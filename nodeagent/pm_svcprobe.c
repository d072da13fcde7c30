/* pm_svcprobe.c - see pm_svcprobe.h. */
#include "pm_svcprobe.h"
#include "pm_clock.h"
#include "pm_cmd.h"
#include "pm_error.h"
#include "pm_mem.h"
#include "pm_pf_run.h"
#include "pm_postconf.h"
#include "pm_text.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define S_GREETING_MAX 1024 /* bytes of a greeting read before giving up */

/* ---- where Postfix listens --------------------------------------------- */

void
pm_svcprobe_free(pm_svcprobe_listener_t **list_p, size_t n)
{
    pm_svcprobe_listener_t *list = *list_p;
    if (!list)
        return;
    for (size_t i = 0; i < n; i++) {
        free(list[i].service);
        free(list[i].host);
    }
    free(list);
    *list_p = NULL;
}

/* The port of a master.cf service name's port part: a number, or a name
 * from /etc/services ("smtp", "submission"); 0 when neither. */
static int
s_port(const char *port)
{
    char *end = NULL;
    long p = strtol(port, &end, 10);
    if (*port && !*end)
        return p > 0 && p < 65536 ? (int)p : 0;
    struct servent se, *res = NULL;
    char buf[1024];
    if (getservbyname_r(port, "tcp", &se, buf, sizeof buf, &res) != 0 || !res)
        return 0;
    return ntohs((uint16_t)res->s_port);
}

/* Where to connect to a listener that names no host: the first address of
 * inet_interfaces, loopback for the keywords that include it. */
static char *
s_default_host(const char *dir, char **why)
{
    const char *names[] = {"inet_interfaces", "inet_protocols"};
    char *v[2] = {NULL, NULL};
    if (pm_postconf_read(dir, names, 2, v, why) != PM_OK)
        return NULL;
    size_t skip = strspn(v[0], ", \t");
    size_t len = strcspn(v[0] + skip, ", \t");
    char *first = pm_strndup(v[0] + skip, len);
    char *host = NULL;
    if (!*first || strcmp(first, "all") == 0 ||
        strcmp(first, "loopback-only") == 0 || strcmp(first, "localhost") == 0)
        host = pm_strdup(strcmp(v[1], "ipv6") == 0 ? "::1" : "127.0.0.1");
    else if (first[0] == '[')
        host = pm_strndup(first + 1, strcspn(first + 1, "]"));
    else
        host = pm_strdup(first);
    free(first);
    free(v[0]);
    free(v[1]);
    return host;
}

/* Splits NAME ("[::1]:25", "127.0.0.1:2525", "smtp") into L's host (NULL
 * when it names none) and port. False when the port is unknown. */
static bool
s_parse_name(const char *name, pm_svcprobe_listener_t *l)
{
    const char *port = name;
    const char *close = name[0] == '[' ? strchr(name, ']') : NULL;
    const char *colon = strrchr(name, ':');
    if (close && close[1] == ':') {
        l->host = pm_strndup(name + 1, (size_t)(close - name - 1));
        port = close + 2;
    } else if (!close && colon) {
        l->host = pm_strndup(name, (size_t)(colon - name));
        port = colon + 1;
    }
    l->port = s_port(port);
    l->any = !l->host || strcmp(l->host, "0.0.0.0") == 0 ||
             strcmp(l->host, "::") == 0;
    l->service = pm_strdup(name);
    return l->port != 0;
}

/* Fields of one postconf -M line (modified in place): name type private
 * unpriv chroot wakeup maxproc command [args]. */
static size_t
s_fields(char *line, char **f, size_t max)
{
    size_t n = 0;
    for (char *save = NULL, *t = strtok_r(line, " \t", &save); t && n < max;
         t = strtok_r(NULL, " \t", &save))
        f[n++] = t;
    return n;
}

/* Words of a master.cf command line, at most: a service with more -o
 * options than fit is read without the rest (a listener still, perhaps
 * taken for one that runs the milter: its probe then says otherwise). */
#define S_FIELDS_MAX 128

/* ARGS (the command's arguments) turn the milters off: "-o smtpd_milters=
 * ..." (whatever it names, not this node's filter) or "-o
 * receive_override_options=..." holding no_milters. */
static bool
s_unfiltered(char **args, size_t n)
{
    for (size_t i = 0; i + 1 < n; i++) {
        if (strcmp(args[i], "-o") != 0)
            continue;
        const char *o = args[i + 1];
        if (strncmp(o, "smtpd_milters=", 14) == 0 ||
            (strncmp(o, "receive_override_options=", 25) == 0 &&
             strstr(o + 25, "no_milters")))
            return true;
    }
    return false;
}

/* Parses postconf -M output OUT into LIST; PM_EINVAL on an unknown port. */
static int
s_parse_services(char *out, pm_svcprobe_listener_t **list, size_t *n,
                 char **why)
{
    for (char *save = NULL, *line = strtok_r(out, "\n", &save); line;
         line = strtok_r(NULL, "\n", &save)) {
        char *f[S_FIELDS_MAX];
        size_t nf = s_fields(line, f, S_FIELDS_MAX);
        if (nf < 8 || strcmp(f[1], "inet") != 0 ||
            (strcmp(f[7], "smtpd") != 0 && strcmp(f[7], "postscreen") != 0))
            continue;
        *list = pm_realloc(*list, (*n + 1) * sizeof **list);
        pm_svcprobe_listener_t *l = &(*list)[(*n)++];
        memset(l, 0, sizeof *l);
        l->unfiltered = s_unfiltered(f + 8, nf - 8);
        if (!s_parse_name(f[0], l)) {
            pm_why(why, "pm_svcprobe",
                   "master.cf service %s: its port is neither a number nor "
                   "a service in /etc/services",
                   f[0]);
            return PM_EINVAL;
        }
    }
    return PM_OK;
}

int
pm_svcprobe_listeners(const char *dir, pm_svcprobe_listener_t **list, size_t *n,
                      char **why)
{
    char *argv[] = {"postconf", "-c", (char *)dir, "-M", NULL};
    pm_cmd_result_t c;
    if (pm_pf_run(argv, NULL, false, 0, &c) != 0) {
        char *e = pm_cmd_why("postconf -M", &c);
        pm_why(why, "pm_svcprobe", "%s", e);
        free(e);
        pm_cmd_result_clear(&c);
        return PM_EIO;
    }
    pm_svcprobe_listener_t *got = NULL;
    size_t count = 0;
    char *dflt = NULL;
    int rc = s_parse_services(c.out, &got, &count, why);
    for (size_t i = 0; rc == PM_OK && i < count; i++) {
        if (got[i].host)
            continue;
        if (!dflt && !(dflt = s_default_host(dir, why)))
            rc = PM_EIO;
        else
            got[i].host = pm_strdup(dflt);
    }
    free(dflt);
    pm_cmd_result_clear(&c);
    if (rc != PM_OK) {
        pm_svcprobe_free(&got, count);
        return rc;
    }
    *list = got;
    *n = count;
    return PM_OK;
}

/* ---- open sessions ----------------------------------------------------- */

/* A local address from /proc/net/tcp{,6} (the kernel prints each 32-bit
 * word of the address as it lies in memory), as IPv6, IPv4 mapped. */
static bool
s_proc_addr(const char *hex, bool v6, struct in6_addr *a)
{
    size_t len = strlen(hex);
    if (len != (v6 ? 32u : 8u))
        return false;
    memset(a, 0, sizeof *a);
    uint32_t w[4] = {0, 0, htonl(0xffff), 0};
    for (size_t i = 0; i < len / 8; i++) {
        char word[9];
        memcpy(word, hex + 8 * i, 8);
        word[8] = '\0';
        w[v6 ? i : 3] = (uint32_t)strtoul(word, NULL, 16);
    }
    memcpy(a, w, sizeof w);
    return true;
}

/* L's host as IPv6 (IPv4 mapped); false when it is not a literal. */
static bool
s_host_addr(const char *host, struct in6_addr *a)
{
    struct in_addr v4;
    if (inet_pton(AF_INET6, host, a) == 1)
        return true;
    if (inet_pton(AF_INET, host, &v4) != 1)
        return false;
    uint32_t w[4] = {0, 0, htonl(0xffff), v4.s_addr};
    memcpy(a, w, sizeof w);
    return true;
}

static bool
s_is_listener(const pm_svcprobe_listener_t *list, size_t n,
              const struct in6_addr *local, unsigned port)
{
    for (size_t i = 0; i < n; i++) {
        struct in6_addr want;
        if ((unsigned)list[i].port != port)
            continue;
        if (list[i].any || !s_host_addr(list[i].host, &want) ||
            memcmp(&want, local, sizeof want) == 0)
            return true;
    }
    return false;
}

/* ESTABLISHED (state 01) lines of PATH whose local end is a listener; -1
 * when PATH cannot be opened. */
static int
s_count(const char *path, bool v6, const pm_svcprobe_listener_t *list, size_t n)
{
    FILE *f = fopen(path, "re");
    if (!f)
        return -1;
    char line[512], local[40];
    unsigned port = 0, state = 0;
    int count = 0;
    while (fgets(line, sizeof line, f)) {
        struct in6_addr a;
        if (sscanf(line, " %*u: %39[0-9A-Fa-f]:%x %*[0-9A-Fa-f]:%*x %x", local,
                   &port, &state) == 3 &&
            state == 1 && s_proc_addr(local, v6, &a) &&
            s_is_listener(list, n, &a, port))
            count++;
    }
    fclose(f);
    return count;
}

int
pm_svcprobe_sessions(const pm_svcprobe_listener_t *list, size_t n)
{
    int v4 = s_count("/proc/net/tcp", false, list, n);
    int v6 = s_count("/proc/net/tcp6", true, list, n); /* no IPv6: none */
    return v4 < 0 ? -1 : v4 + (v6 > 0 ? v6 : 0);
}

/* ---- connecting -------------------------------------------------------- */

/* A stream socket connected to SA within TIMEOUT_MS, or -1 with *err (the
 * reason, caller frees). */
static int
s_connect(const struct sockaddr *sa, socklen_t len, int timeout_ms, char **err)
{
    int fd =
        socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int e = fd < 0 ? errno : 0;
    if (fd >= 0 && connect(fd, sa, len) != 0) {
        e = errno;
        struct pollfd p = {.fd = fd, .events = POLLOUT};
        socklen_t elen = sizeof e;
        if (e == EINPROGRESS) {
            int r = poll(&p, 1, timeout_ms);
            e = r == 0 ? ETIMEDOUT : r < 0 ? errno : 0;
            if (r > 0 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &elen) != 0)
                e = errno;
        }
    }
    if (e) {
        *err = pm_asprintf("connect: %s", strerror(e));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    return fd;
}

/* Connected to HOST:PORT (names through getaddrinfo: /etc/hosts, no DNS
 * here) within TIMEOUT_MS, or -1 with *err. */
static int
s_connect_inet(const char *host, const char *port, int timeout_ms, char **err)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_NUMERICSERV};
    struct addrinfo *res = NULL;
    int g = getaddrinfo(host, port, &hints, &res);
    if (g != 0) {
        *err = pm_asprintf("cannot resolve: %s", gai_strerror(g));
        return -1;
    }
    int fd = -1;
    for (struct addrinfo *ai = res; ai && fd < 0; ai = ai->ai_next) {
        PM_FREE(err);
        fd = s_connect(ai->ai_addr, ai->ai_addrlen, timeout_ms, err);
    }
    freeaddrinfo(res);
    return fd;
}

/* One read of FD into BUF at LEN, waiting until DEADLINE: the bytes
 * read, or 0 with *err. */
static size_t
s_read_some(int fd, char *buf, size_t len, size_t cap, int64_t deadline,
            char **err)
{
    int left = (int)(deadline - pm_clock_ms());
    struct pollfd p = {.fd = fd, .events = POLLIN};
    int ready = len + 1 < cap && left > 0 ? poll(&p, 1, left) : 0;
    ssize_t r = ready > 0 ? recv(fd, buf + len, cap - 1 - len, 0) : -1;
    if (r > 0)
        return (size_t)r;
    if (len + 1 >= cap)
        *err = pm_asprintf("no end of the greeting in %zu bytes", cap - 1);
    else if (ready <= 0)
        *err = pm_strdup("no greeting in time");
    else
        *err =
            pm_strdup(r == 0 ? "closed without a greeting" : strerror(errno));
    return 0;
}

/* Reads from FD until BUF holds a final reply line ("NNN text", not
 * "NNN-text") or DEADLINE; returns that line (in BUF, without CRLF) or
 * NULL with *err. */
static const char *
s_read_reply(int fd, char *buf, size_t cap, int64_t deadline, char **err)
{
    size_t len = 0, got = 0;
    do {
        len += got;
        buf[len] = '\0';
        for (char *line = buf, *nl; (nl = strchr(line, '\n')); line = nl + 1) {
            size_t n = (size_t)(nl - line);
            if (n >= 3 && (n == 3 || line[3] == ' ' || line[3] == '\r')) {
                *nl = '\0';
                line[strcspn(line, "\r")] = '\0';
                return line;
            }
        }
    } while ((got = s_read_some(fd, buf, len, cap, deadline, err)) > 0);
    return NULL;
}

bool
pm_svcprobe_smtp(const pm_svcprobe_listener_t *l, int timeout_ms, char **why)
{
    int64_t deadline = pm_clock_ms() + timeout_ms;
    char port[16], *err = NULL, buf[S_GREETING_MAX];
    snprintf(port, sizeof port, "%d", l->port);
    int fd = s_connect_inet(l->host, port, timeout_ms, &err);
    const char *reply =
        fd < 0 ? NULL : s_read_reply(fd, buf, sizeof buf, deadline, &err);
    bool ok = reply && strncmp(reply, "220", 3) == 0;
    if (ok) {
        (void)send(fd, "QUIT\r\n", 6, MSG_NOSIGNAL); /* a polite client */
    } else if (reply) {
        char *said = pm_text_escape(reply, 200);
        pm_why(why, "pm_svcprobe", "SMTP %s (%s port %d) answered \"%s\"",
               l->service, l->host, l->port, said);
        free(said);
    } else {
        pm_why(why, "pm_svcprobe", "SMTP %s (%s port %d): %s", l->service,
               l->host, l->port, err);
    }
    if (fd >= 0)
        close(fd);
    free(err);
    return ok;
}

/* ---- the milter -------------------------------------------------------- */

/* Connected to the unix socket PATH (relative: in QUEUE_DIR) or -1 with
 * *err. */
static int
s_connect_unix(const char *path, const char *queue_dir, int timeout_ms,
               char **err)
{
    if (path[0] != '/' && !queue_dir) {
        *err = pm_strdup("a relative path is in Postfix's queue directory, "
                         "which is not known here");
        return -1;
    }
    char *full = path[0] == '/' ? pm_strdup(path)
                                : pm_asprintf("%s/%s", queue_dir, path);
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    int fd = -1;
    if (strlen(full) >= sizeof sun.sun_path) {
        *err = pm_asprintf("%s: the path is too long for a unix socket", full);
    } else {
        strcpy(sun.sun_path, full);
        fd = s_connect((struct sockaddr *)&sun, sizeof sun, timeout_ms, err);
        if (fd < 0 && path[0] != '/' && *err) { /* say where it looked */
            char *said = pm_asprintf("%s: %s", full, *err);
            free(*err);
            *err = said;
        }
    }
    free(full);
    return fd;
}

/* Connected to SOCKET (Postfix syntax) or -1 with *err. */
static int
s_connect_milter(const char *socket, const char *queue_dir, int timeout_ms,
                 char **err)
{
    const char *colon = strchr(socket, ':');
    const char *rest = colon ? colon + 1 : "";
    size_t kind = colon ? (size_t)(colon - socket) : 0;
    if ((kind == 4 && strncmp(socket, "unix", 4) == 0) ||
        (kind == 5 && strncmp(socket, "local", 5) == 0))
        return s_connect_unix(rest, queue_dir, timeout_ms, err);
    if (kind == 4 && strncmp(socket, "inet", 4) == 0) {
        const char *at = strchr(rest, '@'), *last = strrchr(rest, ':');
        char *host = at     ? pm_strdup(at + 1)
                     : last ? pm_strndup(rest, (size_t)(last - rest))
                            : NULL;
        char *port = at     ? pm_strndup(rest, (size_t)(at - rest))
                     : last ? pm_strdup(last + 1)
                            : NULL;
        int fd = -1;
        if (host && host[0] == '[') { /* inet:[::1]:PORT */
            memmove(host, host + 1, strlen(host));
            host[strcspn(host, "]")] = '\0';
        }
        if (host && port)
            fd = s_connect_inet(host, port, timeout_ms, err);
        else
            *err = pm_strdup("no port: not inet:host:port");
        free(host);
        free(port);
        return fd;
    }
    *err = pm_strdup("is not unix:/path or inet:host:port");
    return -1;
}

bool
pm_svcprobe_milter(const char *socket, const char *queue_dir, int timeout_ms,
                   char **why)
{
    char *err = NULL;
    int fd = s_connect_milter(socket, queue_dir, timeout_ms, &err);
    if (fd < 0)
        pm_why(why, "pm_svcprobe", "milter %s: %s", socket, err);
    else
        close(fd);
    free(err);
    return fd >= 0;
}
