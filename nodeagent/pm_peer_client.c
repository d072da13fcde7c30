/* pm_peer_client.c - the client calls of pm_peer.h: a push-pull of
 * versions with one or many peers, and the pull of one file. Each runs in
 * the caller's thread, blocking for at most its timeout. */
#include "pm_check.h"
#include "pm_file.h"
#include "pm_keys.h"
#include "pm_log.h"
#include "pm_mem.h"
#include "pm_peer.h"
#include "pm_sigfetch.h"
#include "pm_sigmirror.h"
#include "pm_sigstore.h"
#include "pm_sigverify.h"
#include "pm_text.h"
#include "pm_wire.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define S_WINDOW 4 /* GETs in flight during a pull */
/* A wait between two interrupt checks: SIGTERM waits no longer. At 50 ms,
 * 1000 in-process agents polled 20 000 times a second at idle and the
 * version took 23-28 s to spread; 17 s at 250 ms. */
#define S_SLICE_MS 250
/* The reason given for a connection libzmq gave up on (s_alive): libzmq
 * tells none, and a key the peer does not admit is the cause met. */
#define S_REFUSED                                                              \
    "the connection was refused (does that node have this one among its "      \
    "members yet?)"

#define S_BAD_LINK                                                             \
    "no certificate or endpoint, or a server key that is not a Z85 CURVE key"

/* A DEALER to the peer at ENDPOINT, one per call (any thread). */
static int
s_dial(zcert_t *cert, const char *endpoint, const char *server_key,
       int timeout_ms, zsock_t **out, char **why)
{
    if (!cert || !endpoint || !pm_keys_is_public(server_key)) {
        pm_why(why, "peer", S_BAD_LINK);
        return PM_EINVAL;
    }
    zsock_t *s = zsock_new(ZMQ_DEALER);
    zcert_apply(cert, s);
    zsock_set_curve_serverkey(s, server_key);
    zsock_set_maxmsgsize(s, PM_WIRE_PEER_MAX);
    zsock_set_rcvhwm(s, PM_PEER_HWM); /* a peer pushing unasked chunks */
    zsock_set_linger(s, 0);
    zsock_set_rcvtimeo(s, timeout_ms); /* sends never wait: s_send */
    if (zsock_connect(s, "%s", endpoint) != 0) {
        pm_why(why, "peer", "cannot connect to %s: %s", endpoint,
               zmq_strerror(zmq_errno()));
        zsock_destroy(&s);
        return PM_EINVAL;
    }
    *out = s;
    return PM_OK;
}

/* Never waits: a DEALER queues at once while it connects, and has nowhere
 * to send only when libzmq gave its connection up for good, which it does
 * when the peer refused this key at the handshake (a member that had not
 * heard of this node yet). Waiting out the send timeout there stalled a
 * gossip round for 2 s each time such a link was picked: a node at the
 * tail of every spread (bench_signatures, N=60). */
static int
s_send(zsock_t *s, const Pm__PeerMessage *msg, const char *endpoint, char **why)
{
    size_t len = 0;
    uint8_t *buf = pm_wire_pack(&msg->base, &len);
    int rc = zmq_send(zsock_resolve(s), buf, len, ZMQ_DONTWAIT);
    free(buf);
    if (rc < 0) {
        pm_why(why, "peer", "%s: cannot send: %s", endpoint,
               zmq_errno() == EAGAIN ? S_REFUSED : zmq_strerror(zmq_errno()));
        return PM_ETIMEDOUT;
    }
    return PM_OK;
}

/* False once libzmq gave S's connection up, as it does when the peer
 * refused this key at the handshake: no pipe is left to send on (and
 * none to answer on), which ZMQ_EVENTS tells by lacking POLLOUT. Waiting
 * for that answer cost a whole peer timeout. */
static bool
s_alive(zsock_t *s)
{
    return (zsock_events(s) & ZMQ_POLLOUT) != 0;
}

/* The calling thread's cancel hook (pm_peer_set_cancel). */
static _Thread_local bool (*s_cancel_fn)(void *);
static _Thread_local void *s_cancel_arg;

void
pm_peer_set_cancel(bool (*fn)(void *arg), void *arg)
{
    s_cancel_fn = fn;
    s_cancel_arg = arg;
}

/* A signal came, or this thread's owner wants it back. */
static bool
s_cancelled(void)
{
    return zsys_interrupted || (s_cancel_fn && s_cancel_fn(s_cancel_arg));
}

/* Waits up to S's receive timeout for an answer, in slices: SIGINT or
 * SIGTERM (zsys_interrupted, set in whichever thread got the signal) ends
 * the wait at once, so an agent shutting down never waits out a silent
 * peer, whose timeout a gossip round may meet several times; a connection
 * given up (s_alive) ends it after the slice. */
static bool
s_readable(zsock_t *s)
{
    int timeout = zsock_rcvtimeo(s);
    int64_t end = zclock_mono() + timeout;
    zmq_pollitem_t item = {zsock_resolve(s), 0, ZMQ_POLLIN, 0};
    while (!s_cancelled()) {
        int64_t left = timeout < 0 ? S_SLICE_MS : end - zclock_mono();
        if (left <= 0)
            return false;
        if (zmq_poll(&item, 1, left < S_SLICE_MS ? left : S_SLICE_MS) > 0)
            return true;
        if (!s_alive(s))
            return false;
    }
    return false;
}

/* Receives one answer within the socket's timeout and passes it through
 * the wire gate: one frame, a valid PeerMessage. */
static int
s_recv(zsock_t *s, const char *endpoint, Pm__PeerMessage **out, char **why)
{
    zmsg_t *msg = s_readable(s) ? zmsg_recv(s) : NULL;
    if (!msg) {
        pm_why(why, "peer", "%s: %s", endpoint,
               s_cancelled() ? "interrupted"
               : !s_alive(s) ? S_REFUSED
                             : "no answer in time");
        return PM_ETIMEDOUT;
    }
    int rc = PM_EPROTO;
    char *bad = NULL;
    zframe_t *f = zmsg_first(msg);
    if (zmsg_size(msg) != 1)
        pm_why(why, "peer", "%s: answered %zu frames, not one", endpoint,
               zmsg_size(msg));
    else if (pm_wire_unpack_peer_message(zframe_data(f), zframe_size(f), out,
                                         &bad) != PM_OK)
        pm_why(why, "peer", "%s: %s", endpoint, bad);
    else
        rc = PM_OK;
    free(bad);
    zmsg_destroy(&msg);
    return rc;
}

int
pm_peer_exchange(zcert_t *cert, const char *endpoint, const char *server_key,
                 const Pm__PeerMessage *mine, Pm__PeerMessage **theirs,
                 int timeout_ms, char **why)
{
    zsock_t *s = NULL;
    if (!mine || !theirs) {
        pm_why(why, "peer", "nothing to exchange");
        return PM_EINVAL;
    }
    int rc = s_dial(cert, endpoint, server_key, timeout_ms, &s, why);
    if (rc != PM_OK)
        return rc;
    Pm__PeerMessage push = *mine;
    push.kind = PM__PEER_MESSAGE__KIND__VERSIONS;
    Pm__PeerMessage *in = NULL;
    if ((rc = s_send(s, &push, endpoint, why)) == PM_OK &&
        (rc = s_recv(s, endpoint, &in, why)) == PM_OK &&
        in->kind != PM__PEER_MESSAGE__KIND__VERSIONS_REPLY &&
        in->kind != PM__PEER_MESSAGE__KIND__ERROR) {
        pm_why(why, "peer", "%s: answered VERSIONS with kind %d", endpoint,
               (int)in->kind);
        pm__peer_message__free_unpacked(in, NULL);
        rc = PM_EPROTO;
    }
    if (rc == PM_OK)
        *theirs = in;
    zsock_destroy(&s);
    return rc;
}

/* The answer waiting on S (readable) if it is one to VERSIONS, or NULL. */
static Pm__PeerMessage *
s_versions_answer(zsock_t *s, const char *endpoint)
{
    Pm__PeerMessage *in = NULL;
    char *why = NULL;
    if (s_recv(s, endpoint, &in, &why) == PM_OK &&
        in->kind != PM__PEER_MESSAGE__KIND__VERSIONS_REPLY &&
        in->kind != PM__PEER_MESSAGE__KIND__ERROR) {
        pm__peer_message__free_unpacked(in, NULL);
        in = NULL;
    }
    if (!in)
        pm_debug("peer: %s", why ? why : "answered VERSIONS with another kind");
    free(why);
    return in;
}

struct pm_peer_link_t {
    zcert_t *cert; /* not owned */
    char *endpoint, *key;
    zsock_t *sock; /* NULL until used, and after a failure */
    uint64_t seq;  /* of the last VERSIONS sent */
    int echoes;    /* 1: the peer echoes seq, so a late answer is told
                      apart; -1: it does not (an older agent); 0: no
                      answer yet */
    int misses;    /* exchanges in a row it did not answer in time */
};

/* Unanswered exchanges after which a link's connection is closed and the
 * next one dials afresh. libzmq dials again by itself after a refused
 * handshake (test_peer checks it), but a connection it keeps can still be
 * silent for good in ways it does not see; a new one costs a handshake.
 * Written for test_sigsync's flake (a node never reached its one honest
 * peer in 90 s), whose cause this did not prove. */
#define S_LINK_MISSES 3

pm_peer_link_t *
pm_peer_link_new(zcert_t *cert, const char *endpoint, const char *server_key)
{
    if (!cert || !endpoint || !pm_keys_is_public(server_key))
        return NULL;
    pm_peer_link_t *self = pm_calloc(1, sizeof *self);
    self->cert = cert;
    self->endpoint = pm_strdup(endpoint);
    self->key = pm_strdup(server_key);
    return self;
}

void
pm_peer_link_destroy(pm_peer_link_t **self_p)
{
    pm_peer_link_t *self = self_p ? *self_p : NULL;
    if (!self)
        return;
    zsock_destroy(&self->sock);
    free(self->endpoint);
    free(self->key);
    free(self);
    *self_p = NULL;
}

bool
pm_peer_link_is(const pm_peer_link_t *self, const char *endpoint,
                const char *server_key)
{
    return self && strcmp(self->endpoint, endpoint) == 0 &&
           strcmp(self->key, server_key) == 0;
}

/* Sends PUSH on LINK, connecting it first when needed; false: closed. */
static bool
s_link_send(pm_peer_link_t *link, const Pm__PeerMessage *push, int timeout_ms)
{
    if (!link->sock && s_dial(link->cert, link->endpoint, link->key, timeout_ms,
                              &link->sock, NULL) != PM_OK)
        return false;
    Pm__PeerMessage numbered = *push;
    numbered.seq = ++link->seq;
    if (s_send(link->sock, &numbered, link->endpoint, NULL) == PM_OK)
        return true;
    zsock_destroy(&link->sock);
    return false;
}

/* Polls the OPEN links that have a socket (at most N) for up to SLICE_MS;
 * takes every answer that came into THEIRS. Returns the answers taken. */
static size_t
s_links_take(pm_peer_link_t **links, bool *open, size_t n,
             zmq_pollitem_t *items, Pm__PeerMessage **theirs, long slice_ms)
{
    size_t k = 0, got = 0;
    for (size_t i = 0; i < n; i++)
        if (open[i])
            items[k++] = (zmq_pollitem_t){zsock_resolve(links[i]->sock), 0,
                                          ZMQ_POLLIN, 0};
    if (zmq_poll(items, (int)k, slice_ms) <= 0)
        return 0;
    k = 0;
    for (size_t i = 0; i < n; i++) {
        if (!open[i] || !(items[k++].revents & ZMQ_POLLIN))
            continue;
        pm_peer_link_t *link = links[i];
        Pm__PeerMessage *in = s_versions_answer(link->sock, link->endpoint);
        if (in && in->seq && in->seq != link->seq) {
            link->echoes = 1; /* an earlier ask's, late: not this one */
            pm__peer_message__free_unpacked(in, NULL);
            continue;
        }
        open[i] = false;
        theirs[i] = in;
        if (!in) {
            zsock_destroy(&link->sock); /* broke the protocol */
            continue;
        }
        link->misses = 0;
        link->echoes = in->seq ? 1 : -1;
        got++;
    }
    return got;
}

size_t
pm_peer_exchange_links(pm_peer_link_t **links, size_t n,
                       const Pm__PeerMessage *mine, Pm__PeerMessage **theirs,
                       int timeout_ms)
{
    bool *open = pm_calloc(n + 1, sizeof *open);
    zmq_pollitem_t *items = pm_calloc(n + 1, sizeof *items);
    Pm__PeerMessage push = *mine;
    push.kind = PM__PEER_MESSAGE__KIND__VERSIONS;
    size_t waiting = 0, got = 0;
    for (size_t i = 0; i < n; i++) {
        theirs[i] = NULL;
        open[i] = links[i] && s_link_send(links[i], &push, timeout_ms);
        waiting += open[i];
    }
    int64_t end = zclock_mono() + timeout_ms;
    while (got < waiting && !s_cancelled()) {
        int64_t left = end - zclock_mono();
        if (left <= 0)
            break;
        got += s_links_take(links, open, n, items, theirs,
                            left < S_SLICE_MS ? left : S_SLICE_MS);
        waiting = got;
        for (size_t i = 0; i < n; i++) {
            if (open[i] && !s_alive(links[i]->sock)) {
                open[i] = false; /* refused: dialled again next time */
                zsock_destroy(&links[i]->sock);
            }
            waiting += open[i];
        }
    }
    /* no answer in time: a peer that echoes keeps its connection for a
     * few rounds (under load, closing it at once would only add a
     * CurveZMQ handshake to the next round: a 1000-node bench on 2 cores
     * never converged that way); one that does not echoes loses it at
     * once (its late answer could not be told from the next one) */
    for (size_t i = 0; i < n; i++)
        if (open[i] &&
            (links[i]->echoes < 0 || ++links[i]->misses >= S_LINK_MISSES)) {
            zsock_destroy(&links[i]->sock);
            links[i]->misses = 0;
        }
    free(open);
    free(items);
    return got;
}

size_t
pm_peer_exchange_many(zcert_t *cert, const pm_peer_target_t *targets, size_t n,
                      const Pm__PeerMessage *mine, Pm__PeerMessage **theirs,
                      int timeout_ms)
{
    pm_peer_link_t **links = pm_calloc(n + 1, sizeof *links);
    for (size_t i = 0; i < n; i++)
        links[i] =
            pm_peer_link_new(cert, targets[i].endpoint, targets[i].server_key);
    size_t got = pm_peer_exchange_links(links, n, mine, theirs, timeout_ms);
    for (size_t i = 0; i < n; i++)
        pm_peer_link_destroy(&links[i]);
    free(links);
    return got;
}

/* One pull: the socket, the scratch file, and how far the transfer is. */
typedef struct {
    zsock_t *sock;
    const char *endpoint, *file;
    pm_sigverify_t *verifier;
    uint32_t version;
    int fd;
    uint64_t total; /* 0 until the first chunk says it */
    uint64_t done;  /* bytes written, in order */
    uint64_t next;  /* offset of the next GET to send */
    int inflight;
    uint64_t max;    /* the largest TOTAL accepted */
    uint32_t length; /* 0, or only the first LENGTH bytes (a header) */
    int stale;       /* late gossip answers still allowed on the socket */
    int timeout_ms;  /* for one answer */
    int64_t started; /* zclock_mono() at the first GET */
} s_pull_t;

/* The slowest a transfer may be, past one answer's timeout: a holder
 * answering each chunk just within the timeout would otherwise keep the
 * puller (its gossip, its duty) for an hour a file. Measured on what
 * came, not on the size the holder announced: one announcing 2 GiB and
 * trickling got 35 minutes. (One that really sends 2 GiB at 1 MiB/s
 * still holds a pull that long, once: the file then fails verification
 * and the holder is distrusted.) 1 MiB/s is slow for peers of one site:
 * a 300 MiB daily.cld in 5 minutes. */
#define S_MIN_BYTES_PER_S (1u << 20)

/* Where the transfer ends: the file's end, or LENGTH before it. */
static uint64_t
s_end(const s_pull_t *p)
{
    return p->length && p->length < p->total ? p->length : p->total;
}

/* FILE is NAME.cvd or NAME.cld with NAME a database name: nothing else
 * may become a path inside DBDIR. */
static bool
s_file_ok(const char *file)
{
    char *bad = file ? pm_check_database_file(file) : pm_strdup("none");
    bool ok = !bad;
    free(bad);
    return ok;
}

static int
s_ask(s_pull_t *p, char **why)
{
    Pm__PeerMessage get = PM__PEER_MESSAGE__INIT;
    get.kind = PM__PEER_MESSAGE__KIND__GET;
    get.file = (char *)p->file;
    get.version = p->version;
    get.offset = p->next;
    get.length = p->length;
    p->next += PM_WIRE_CHUNK_MAX;
    p->inflight++;
    return s_send(p->sock, &get, p->endpoint, why);
}

/* Checks that answer M continues the file exactly (kind, file, version,
 * offset, total, size) and writes it. */
static int
s_take(s_pull_t *p, const Pm__PeerMessage *m, char **why)
{
    const char *ep = p->endpoint;
    if (m->kind == PM__PEER_MESSAGE__KIND__ERROR) {
        char *e = pm_text_escape(m->error, 200);
        pm_why(why, "peer", "%s has no %s version %" PRIu32 ": %s", ep, p->file,
               p->version, e);
        free(e);
        return PM_ENOTFOUND;
    }
    if (m->kind != PM__PEER_MESSAGE__KIND__CHUNK ||
        strcmp(m->file, p->file) != 0 || m->version != p->version) {
        pm_why(why, "peer",
               "%s answered a GET of %s version %" PRIu32
               " with something else",
               ep, p->file, p->version);
        return PM_EPROTO;
    }
    if (m->offset != p->done) {
        pm_why(why, "peer",
               "%s sent %s bytes at offset %" PRIu64 ", expected %" PRIu64, ep,
               p->file, m->offset, p->done);
        return PM_EPROTO;
    }
    if (m->total == 0 || (p->total && m->total != p->total)) {
        pm_why(why, "peer", "%s said %s has %" PRIu64 " bytes, after %" PRIu64,
               ep, p->file, m->total, p->total);
        return PM_EPROTO;
    }
    if (m->total > p->max) {
        pm_why(why, "peer", "%s said %s has %" PRIu64 " bytes, above %" PRIu64,
               ep, p->file, m->total, p->max);
        return PM_EPROTO;
    }
    p->total = m->total;
    uint64_t left = s_end(p) - p->done;
    size_t want = left < PM_WIRE_CHUNK_MAX ? (size_t)left : PM_WIRE_CHUNK_MAX;
    if (m->data.len != want) {
        pm_why(why, "peer", "%s sent %zu bytes of %s at %" PRIu64 ", not %zu",
               ep, m->data.len, p->file, m->offset, want);
        return PM_EPROTO;
    }
    if (!pm_file_pwrite_all(p->fd, m->data.data, want, p->done)) {
        pm_why(why, "peer", "cannot write the scratch copy of %s: %s", p->file,
               strerror(errno));
        return PM_EIO;
    }
    p->done += want;
    return PM_OK;
}

/* GETs the whole file into P->fd, S_WINDOW requests in flight once the
 * first answer has told the size. */
static int
s_transfer(s_pull_t *p, char **why)
{
    p->started = zclock_mono();
    int rc = s_ask(p, why);
    while (rc == PM_OK && (p->total == 0 || p->done < s_end(p))) {
        int64_t spent = zclock_mono() - p->started;
        if (spent >
            p->timeout_ms + (int64_t)(p->done * 1000 / S_MIN_BYTES_PER_S)) {
            pm_why(why, "peer",
                   "%s: %s came slower than %u KiB/s: %" PRIu64 " of %" PRIu64
                   " bytes in %lld ms",
                   p->endpoint, p->file, S_MIN_BYTES_PER_S / 1024, p->done,
                   s_end(p), (long long)spent);
            rc = PM_ETIMEDOUT;
            break;
        }
        Pm__PeerMessage *m = NULL;
        if ((rc = s_recv(p->sock, p->endpoint, &m, why)) != PM_OK)
            break;
        if (m->kind == PM__PEER_MESSAGE__KIND__VERSIONS_REPLY && p->stale > 0) {
            p->stale--; /* an earlier exchange's, late (s_link_socket) */
            pm__peer_message__free_unpacked(m, NULL);
            continue;
        }
        p->inflight--;
        rc = s_take(p, m, why);
        pm__peer_message__free_unpacked(m, NULL);
        while (rc == PM_OK && p->inflight < S_WINDOW && p->next < s_end(p))
            rc = s_ask(p, why);
        if (rc == PM_OK && p->inflight == 0 && p->done < s_end(p)) {
            pm_why(why, "peer", "%s: %s stopped short", p->endpoint, p->file);
            rc = PM_EPROTO; /* cannot happen with the checks above */
        }
    }
    return rc;
}

/* Verifies the scratch copy TMP of P's file with ClamAV's own check (in
 * the helper: libclamav parses what a peer sent outside the root agent)
 * and its header version; fills *INFO. */
static int
s_verify(const s_pull_t *p, const char *tmp, pm_sigfile_t *info, char **why)
{
    char *bad = NULL;
    char *name = pm_strndup(p->file, strlen(p->file) - 4); /* NAME.cvd */
    int rc = pm_sigstore_check(p->verifier, p->fd, tmp, name,
                               PM_SIGSTORE_VERIFY_MS, info, &bad);
    free(name);
    if (rc == PM_EPROTO) /* shown in `nodes` as why the peer is distrusted */
        pm_why(why, "peer", "%s served %s version %" PRIu32 ", which %s",
               p->endpoint, p->file, p->version, bad);
    else if (rc != PM_OK)
        pm_why(why, "peer", "%s", bad);
    free(bad);
    if (rc == PM_OK && info->version != p->version) {
        pm_why(why, "peer", "%s served %s version %u for version %" PRIu32,
               p->endpoint, p->file, info->version, p->version);
        rc = PM_EPROTO;
    }
    return rc;
}

/* The pull proper, into the open scratch file TMP (P->fd). */
static int
s_pull(s_pull_t *p, const char *tmp, const char *dbdir, pm_sigfile_t *info,
       char **why)
{
    int rc = s_transfer(p, why);
    pm_sigfile_t got;
    if (rc == PM_OK)
        rc = s_verify(p, tmp, &got, why);
    if (rc == PM_OK)
        rc = pm_sigstore_install(tmp, dbdir, p->file, why);
    if (rc == PM_OK && info)
        *info = got;
    return rc;
}

/* False, with *WHY, for the NULL link pm_peer_link_new gives for a bad
 * key or endpoint. */
static bool
s_have_link(const pm_peer_link_t *link, char **why)
{
    if (!link)
        pm_why(why, "peer", S_BAD_LINK);
    return link != NULL;
}

/* P's socket for a pull over LINK, dialled when the link has none. The
 * link may still owe answers to exchanges it kept its connection through
 * (fewer than S_LINK_MISSES): the transfer skips that many. */
static int
s_link_socket(pm_peer_link_t *link, s_pull_t *p, int timeout_ms, char **why)
{
    int rc = link->sock ? PM_OK
                        : s_dial(link->cert, link->endpoint, link->key,
                                 timeout_ms, &link->sock, why);
    if (rc == PM_OK) /* this call's, not that of the call that dialled */
        zsock_set_rcvtimeo(link->sock, timeout_ms);
    p->sock = link->sock;
    p->endpoint = link->endpoint;
    p->stale = S_LINK_MISSES;
    p->timeout_ms = timeout_ms;
    return rc;
}

/* After a pull over LINK: one that failed may have left GETs unanswered,
 * whose chunks the next exchange would take for a broken protocol. */
static void
s_link_pulled(pm_peer_link_t *link, int rc)
{
    if (rc != PM_OK)
        zsock_destroy(&link->sock);
}

int
pm_peer_link_pull(pm_peer_link_t *link, const char *dbdir, const char *file,
                  uint32_t version, pm_sigverify_t *verifier, int timeout_ms,
                  pm_sigfile_t *info, char **why)
{
    if (!s_have_link(link, why))
        return PM_EINVAL;
    if (!dbdir || !s_file_ok(file) || version == 0) {
        pm_why(why, "peer",
               "pull of \"%s\" version %" PRIu32 ": not a "
               "database file NAME.cvd or NAME.cld, version "
               "above 0, into a directory",
               file ? file : "", version);
        return PM_EINVAL;
    }
    s_pull_t p = {.file = file,
                  .verifier = verifier,
                  .version = version,
                  .fd = -1,
                  .max = PM_WIRE_DATABASE_MAX};
    int rc = s_link_socket(link, &p, timeout_ms, why);
    if (rc != PM_OK)
        return rc;
    char *tmp = NULL;
    rc = pm_sigstore_scratch(dbdir, file, &tmp, &p.fd, why);
    if (rc == PM_OK)
        rc = s_pull(&p, tmp, dbdir, info, why);
    if (p.fd >= 0)
        close(p.fd);
    pm_sigstore_scratch_end(dbdir, rc == PM_OK ? NULL : tmp);
    free(tmp);
    s_link_pulled(link, rc);
    return rc;
}

int
pm_peer_pull(zcert_t *cert, const char *endpoint, const char *server_key,
             const char *dbdir, const char *file, uint32_t version,
             pm_sigverify_t *verifier, int timeout_ms, pm_sigfile_t *info,
             char **why)
{
    pm_peer_link_t *link = pm_peer_link_new(cert, endpoint, server_key);
    int rc = pm_peer_link_pull(link, dbdir, file, version, verifier, timeout_ms,
                               info, why);
    pm_peer_link_destroy(&link);
    return rc;
}

/* One file of a CDIFF catch-up: FILE at VERSION (the first LENGTH bytes
 * when LENGTH is not 0) into DIR/AS, over the open socket P->sock. */
static int
s_pull_into(s_pull_t *p, const char *file, uint32_t version, uint32_t length,
            const char *dir, const char *as, char **why)
{
    char *path = pm_asprintf("%s/%s", dir, as);
    p->file = file;
    p->version = version;
    p->length = length;
    p->max = length ? PM_WIRE_DATABASE_MAX : PM_WIRE_CDIFF_MAX;
    p->total = p->done = p->next = 0;
    p->inflight = 0;
    p->fd =
        open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
    int rc = PM_EIO;
    if (p->fd < 0 || fchmod(p->fd, 0644) != 0) /* the fetch user reads it */
        pm_why(why, "peer", "cannot create %s: %s", path, strerror(errno));
    else
        rc = s_transfer(p, why);
    if (p->fd >= 0 && close(p->fd) != 0 && rc == PM_OK) {
        pm_why(why, "peer", "cannot write %s: %s", path, strerror(errno));
        rc = PM_EIO;
    }
    p->fd = -1;
    if (rc != PM_OK)
        unlink(path);
    free(path);
    return rc;
}

int
pm_peer_link_pull_cdiffs(pm_peer_link_t *link, const char *name, uint32_t from,
                         uint32_t to, const char *dir, int timeout_ms,
                         char **why)
{
    if (!s_have_link(link, why))
        return PM_EINVAL;
    char *bad = name ? pm_check_database_name(name) : pm_strdup("none");
    if (bad || !dir || from == 0 || to <= from ||
        to - from > PM_SIGFETCH_CDIFF_STEPS) {
        pm_why(why, "peer",
               "CDIFFs of \"%s\" from version %" PRIu32 " to %" PRIu32
               ": not a database name, or not 1 to %d versions",
               name ? name : "", from, to, PM_SIGFETCH_CDIFF_STEPS);
        free(bad);
        return PM_EINVAL;
    }
    s_pull_t p = {.fd = -1};
    int rc = s_link_socket(link, &p, timeout_ms, why);
    /* the header of the version the CDIFFs make: the answer the mirror of
     * privmta-sigfetch gives libfreshclam's version check */
    char *head = pm_asprintf("%s" PM_SIGMIRROR_HEAD_EXT, name);
    static const char *const exts[] = {"cld", "cvd"};
    for (size_t i = 0; i < 2 && (i == 0 ? rc == PM_OK : rc == PM_ENOTFOUND);
         i++) {
        char *file = pm_asprintf("%s.%s", name, exts[i]);
        if (why)
            PM_FREE(why);
        rc = s_pull_into(&p, file, to, PM_SIGMIRROR_HEAD_LEN, dir, head, why);
        free(file);
    }
    free(head);
    for (uint32_t v = from + 1; rc == PM_OK && v <= to; v++) {
        char *file = pm_asprintf("%s-%" PRIu32 ".cdiff", name, v);
        rc = s_pull_into(&p, file, v, 0, dir, file, why);
        free(file);
    }
    s_link_pulled(link, rc);
    return rc;
}

int
pm_peer_pull_cdiffs(zcert_t *cert, const char *endpoint, const char *server_key,
                    const char *name, uint32_t from, uint32_t to,
                    const char *dir, int timeout_ms, char **why)
{
    pm_peer_link_t *link = pm_peer_link_new(cert, endpoint, server_key);
    int rc =
        pm_peer_link_pull_cdiffs(link, name, from, to, dir, timeout_ms, why);
    pm_peer_link_destroy(&link);
    return rc;
}
