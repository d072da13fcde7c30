/* pm_peer.h - agents share verified ClamAV database files over CurveZMQ.
 *
 * In a cluster one agent fetches each ClamAV database from the mirrors
 * (pm_sigfetch); the others learn by gossip (pm_sigsync) that a newer
 * version exists and pull the file from a peer that holds it. This module
 * is the transport: a service actor that answers peers, and two blocking
 * client calls (push-pull of versions, pull of one file).
 *
 * Protocol (PeerMessage, proto/privmta.proto), one request, one answer,
 * over a ROUTER (server) and a DEALER (client), CURVE on both:
 *   VERSIONS  -> VERSIONS_REPLY (what the server holds), or ERROR when its
 *                owner has not said yet what it holds;
 *   GET FILE VERSION OFFSET [LENGTH] -> CHUNK FILE VERSION OFFSET DATA
 *                TOTAL, where DATA is exactly min(PM_WIRE_CHUNK_MAX,
 *                LENGTH when not 0, TOTAL - OFFSET) bytes of the file and
 *                TOTAL its size; or ERROR (the server does not hold FILE
 *                at VERSION, or OFFSET is past its end). FILE is NAME.cvd
 *                or NAME.cld in DBDIR (VERSION: as pm_peer_hold said), or
 *                NAME-VERSION.cdiff in DBDIR/PM_SIGCDIFF_KEPT
 *                (pm_sigcdiff.h).
 * Every message in either direction passes pm_wire_unpack_peer_message
 * first (file names are NAME.cvd or NAME.cld, never a path; sizes capped).
 *
 * Trust: only enrolled agents may talk to the service. A CURVE client key
 * is let in only when it is the public key of a member the controller
 * listed (command MEMBERS; before the first list nobody is), with User-Id
 * the member's name; the process's one ZAP handler (pm_peerzap.h) decides,
 * from this service's own table (its own ZAP domain), so several services
 * may run in one process (a benchmark runs a thousand), each admitting its
 * own members. A member removed later is ignored even on a connection it
 * opened before. Requests with another mechanism or for another ZAP
 * domain are refused: a CURVE or PLAIN server socket elsewhere in the
 * process would be locked out, and a service never runs beside czmq's
 * zauth (pm_peer_new returns NULL then). The agent process has no other
 * ZAP handler.
 *
 * An enrolled peer is still not trusted with content: a pulled file is
 * checked by ClamAV's own signature check (pm_sigfetch_verify) and its
 * header version before it goes live, and the service never blocks or
 * stops on what a member sends (garbage is dropped, logged at most once a
 * minute per member; a peer that does not read its answers loses them at
 * a small high-water mark instead of filling memory).
 *
 * Serving reads DBDIR/FILE afresh for each GET (opened without following
 * a link, regular files only), so a file replaced by rename between GETs
 * is noticed: the client sees a changed total, an ERROR for the version it
 * asked for, or a file that fails verification. Secrets (keys) are never
 * logged.
 */
#ifndef PM_PEER_H
#define PM_PEER_H

#include "pm_error.h"
#include "pm_sigstore.h"
#include "pm_sigverify.h"
#include "privmta.pb-c.h"

#include <czmq.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

/* Messages queued per peer connection, each way, on both sides: a client
 * has at most a few requests out (a pull keeps 4 GETs in flight), so a
 * peer that sends GETs without reading the chunks, or pushes chunks
 * nobody asked for, loses them here instead of costing gigabytes. */
#define PM_PEER_HWM 16

/* ZMTP heartbeats on the service's connections: a PING this often, and a
 * connection without any traffic for three of them is closed. */
#define PM_PEER_HEARTBEAT_MS 10000

/* The services' ZAP domains: this, "." and a number per service. */
#define PM_PEER_ZAP_DOMAIN "privmta-peer"

/* Bytes of GOSSIP the owner has not taken yet beyond which more is
 * dropped (with pm_peer_config_t.gossip_queued): a VERSIONS is a few
 * hundred bytes, but a member may send 2 MiB ones, and a pipe holds
 * thousands of messages while the owner is busy pulling or fetching. */
#define PM_PEER_GOSSIP_QUEUED (4u << 20)

typedef struct {
    zcert_t *cert;     /* this agent's keypair (not owned); CURVE server key */
    const char *bind;  /* e.g. "tcp://127.0.0.1:0" (port 0: any free port) */
    const char *dbdir; /* directory of verified database files served */
    const char *name;  /* this node's name, for logs */
    /* NULL, or the owner's count of GOSSIP bytes queued for it: the
     * service adds each frame's size, the owner subtracts it as it takes
     * the frame (it must outlive the actor) */
    atomic_size_t *gossip_queued;
    /* the most connections the service holds (pm_peerconn.h); 0: two a
     * member and PM_PEER_CONNS_SPARE */
    size_t conns_max;
} pm_peer_config_t;

/* Starts the peer service actor: a ZMQ_ROUTER bound to CFG->bind as a
 * CURVE server with CFG->cert, ZMQ_MAXMSGSIZE PM_WIRE_PEER_MAX, its own
 * ZAP handler (see above), its connections counted and bounded
 * (pm_peerconn.h: a few per member, a bound in all). CFG's strings are
 * copied; the cert must outlive the actor. Returns NULL (and logs why)
 * when it cannot bind the endpoint or the ZAP handler (another one runs in
 * this process). Caller destroys the actor with zactor_destroy. Pipe
 * commands (czmq actor conventions):
 *   "ENDPOINT"          -> replies one string: the bound endpoint, e.g.
 *                          "tcp://127.0.0.1:41234"
 *   "MEMBERS" + frame   -> frame = packed Pm__Publication of kind MEMBERS:
 *                          from now on only these members' public keys may
 *                          connect (ZAP; User-Id = member name); replies
 *                          nothing. A frame that fails pm_wire or is of
 *                          another kind is logged and changes nothing.
 *   "HOLD" + frames     -> sent by pm_peer_hold (below), never by hand;
 *                          replies nothing. A versions frame that fails
 *                          pm_wire is refused like MEMBERS.
 *   "$TERM"             -> stops
 * Events the actor sends on the pipe to its owner (the owner polls it):
 *   "GOSSIP" + name + frame -> member NAME pushed VERSIONS (frame = the
 *                          packed, already wire-checked Pm__PeerMessage);
 *                          the actor has already answered it with the HOLD
 *                          message. Dropped (logged) when the owner lets
 *                          the pipe fill up (the actor never waits on
 *                          it), or when the frames it has not taken add
 *                          up to PM_PEER_GOSSIP_QUEUED bytes. */
zactor_t *pm_peer_new(const pm_peer_config_t *cfg);

/* The client calls below give up (PM_ETIMEDOUT, "interrupted") within a
 * slice of 250 ms once a signal came (SIGINT, SIGTERM) or, in the calling
 * thread, once FN(ARG) says true (NULL: signals only): an actor's owner
 * saying $TERM must not wait out a pull from a peer that trickles its
 * chunks. A pull also ends once it has taken longer than one answer's
 * timeout plus a second per MiB that came (less than 1 MiB/s). */
void pm_peer_set_cancel(bool (*fn)(void *arg), void *arg);

/* Tells the service SELF what this node holds: VERSIONS (kind VERSIONS:
 * the databases and the cool-downs it knows), from now on the answer to
 * every VERSIONS a peer sends, and for each of its databases, in order,
 * FILES[i], the file in DBDIR that holds that version ("test.cld"; NULL:
 * none). The files' identities (device and inode) are taken here, in the
 * caller's thread, while the caller knows them to hold those versions
 * (it verified and installed them): the service serves NAME.cvd or
 * NAME.cld at a version only from that very file, so one replaced since
 * (a newer version installed by rename) is refused under the old number
 * until the next hold, never served as it. */
void pm_peer_hold(zactor_t *self, const char *dbdir,
                  const Pm__PeerMessage *versions, char *const *files);

/* Push-pull with one peer: sends MINE (as kind VERSIONS, whatever its kind
 * says), waits at most TIMEOUT_MS for the answer and sets *THEIRS to it:
 * kind VERSIONS_REPLY, or ERROR when the peer cannot answer yet (its error
 * says why). Caller frees *THEIRS with pm__peer_message__free_unpacked(*THEIRS,
 * NULL). CERT is our keypair, SERVER_KEY the peer's public key (Z85).
 * Returns PM_OK; PM_ETIMEDOUT (no answer: peer down, our key not enrolled
 * there, wrong server key); PM_EPROTO (the answer fails pm_wire, is not one
 * frame, or is neither VERSIONS_REPLY nor ERROR); PM_EINVAL (SERVER_KEY is
 * not a Z85 key, ENDPOINT not an endpoint, NULL arguments); with *WHY
 * (caller frees) when WHY is not NULL. *THEIRS is set only on PM_OK.
 * Blocking; any thread (a socket of its own per call). */
int pm_peer_exchange(zcert_t *cert, const char *endpoint,
                     const char *server_key, const Pm__PeerMessage *mine,
                     Pm__PeerMessage **theirs, int timeout_ms, char **why);

/* One peer to exchange with: its endpoint and public key (Z85). */
typedef struct {
    const char *endpoint;
    const char *server_key;
} pm_peer_target_t;

/* pm_peer_exchange with N peers at once: MINE goes to every one first,
 * then their answers are awaited together, at most TIMEOUT_MS in all, so a
 * gossip round costs one round trip, not N (a silent peer no longer holds
 * up the others). THEIRS (N slots) gets each peer's answer, as
 * pm_peer_exchange would set it, or NULL when that peer did not answer in
 * time or broke the protocol. Returns how many answered. Stops early on a
 * signal (zsys_interrupted). Caller frees each answer. */
size_t pm_peer_exchange_many(zcert_t *cert, const pm_peer_target_t *targets,
                             size_t n, const Pm__PeerMessage *mine,
                             Pm__PeerMessage **theirs, int timeout_ms);

/* A connection kept to one member for gossip: the CurveZMQ handshake and
 * the ZAP check happen once, not at every exchange (60 agents gossiping
 * every 200 ms with a new connection each time kept two cores busy). CERT
 * is not owned and must outlive the link. NULL when SERVER_KEY is not a
 * Z85 key or an argument is NULL. */
typedef struct pm_peer_link_t pm_peer_link_t;
pm_peer_link_t *pm_peer_link_new(zcert_t *cert, const char *endpoint,
                                 const char *server_key);
void pm_peer_link_destroy(pm_peer_link_t **self_p);

/* True when LINK goes to ENDPOINT with SERVER_KEY (a member that moved or
 * changed keys needs a new link). */
bool pm_peer_link_is(const pm_peer_link_t *self, const char *endpoint,
                     const char *server_key);

/* pm_peer_exchange_many over kept links. Each VERSIONS on a link carries
 * the next number (seq), which the peer echoes: a late answer to an
 * earlier exchange is dropped, never taken for this one, and a peer that
 * answers late keeps its connection (closing it would add a handshake to
 * a loaded peer's next round). A link whose peer broke the protocol, or
 * did not answer in time and answered before without echoing (an older
 * agent), is closed and reconnects on its next use. */
size_t pm_peer_exchange_links(pm_peer_link_t **links, size_t n,
                              const Pm__PeerMessage *mine,
                              Pm__PeerMessage **theirs, int timeout_ms);

/* Pulls FILE ("daily.cld", "test.cvd") at VERSION from the peer into
 * DBDIR: GETs of PM_WIRE_CHUNK_MAX bytes, a few in flight, into a scratch
 * file in DBDIR's scratch directory (pm_sigstore; the file and the
 * directory are removed again, the directory only when no other pull uses
 * it). Each
 * answer is wire-checked and must continue the file at the right offset,
 * with the same total, and the whole size it announced. The file is then
 * verified with ClamAV's own check by VERIFIER (a privmta-sigfetch
 * --verify-server: pm_sigverify.h), and its header
 * version must equal VERSION; only then it is renamed into DBDIR/FILE
 * (mode 0644, directory fsync'd), and the other form of the same database
 * (NAME.cvd vs NAME.cld) removed so that libclamav loads one copy.
 * TIMEOUT_MS bounds the wait for each answer. On success fills *INFO
 * (version, sigs, built) when INFO is not NULL.
 * Returns PM_OK; PM_EPROTO when the peer misbehaved (bad bytes, failed
 * verification, wrong version, chunks out of order or of the wrong size,
 * a total that changes, is 0 or is larger than PM_WIRE_DATABASE_MAX): the
 * caller should distrust that peer; PM_ENOTFOUND when the peer answered
 * ERROR (it does not hold that version, or the file changed under the
 * transfer); PM_ETIMEDOUT; PM_EIO (local: the scratch file, the
 * rename, removing the other form - the new file is in place then - or
 * VERIFIER could not run);
 * PM_EINVAL (FILE not NAME.cvd/NAME.cld, VERSION 0, a bad key or
 * endpoint); always with *WHY when WHY is not NULL. Nothing unverified is
 * ever left in DBDIR/FILE. Blocking; any thread; pulls of different files
 * into one DBDIR may run at the same time, of the same file they must not.
 */
int pm_peer_pull(zcert_t *cert, const char *endpoint, const char *server_key,
                 const char *dbdir, const char *file, uint32_t version,
                 pm_sigverify_t *verifier, int timeout_ms, pm_sigfile_t *info,
                 char **why);

/* pm_peer_pull over a kept link (pm_peer_exchange_links'), dialled when
 * it has no connection: a pull from a peer this node gossips with costs
 * no CurveZMQ handshake. Late answers to the link's earlier exchanges are
 * skipped (a few; more break the protocol). A pull that fails closes the
 * link's connection (GETs may be left unanswered); the next use dials
 * afresh. A NULL LINK (pm_peer_link_new refused the key or endpoint) is
 * PM_EINVAL. */
int pm_peer_link_pull(pm_peer_link_t *link, const char *dbdir, const char *file,
                      uint32_t version, pm_sigverify_t *verifier,
                      int timeout_ms, pm_sigfile_t *info, char **why);

/* Pulls from the peer what brings database NAME from version FROM to TO
 * by CDIFF (1 to PM_SIGFETCH_CDIFF_STEPS versions), into the existing
 * directory DIR as privmta-sigfetch applies it (pm_sigmirror.h):
 * NAME-N.cdiff for N = FROM + 1 .. TO, each at most PM_WIRE_CDIFF_MAX
 * bytes, and NAME.head, the first PM_SIGMIRROR_HEAD_LEN bytes of the
 * peer's NAME.cld (else NAME.cvd) at version TO. Nothing here is checked
 * but sizes and the protocol: libfreshclam checks each CDIFF's signature
 * as it applies them, and the result is checked as any new file. Files
 * are created new (O_EXCL, not followed); on failure the one in transfer
 * is removed. Returns PM_OK; PM_ENOTFOUND (the peer holds one of them
 * not), PM_EPROTO (it broke the protocol), PM_ETIMEDOUT, PM_EIO (DIR),
 * PM_EINVAL (arguments); with *WHY when WHY is not NULL. Blocking. */
int pm_peer_pull_cdiffs(zcert_t *cert, const char *endpoint,
                        const char *server_key, const char *name, uint32_t from,
                        uint32_t to, const char *dir, int timeout_ms,
                        char **why);

/* pm_peer_pull_cdiffs over a kept link, as pm_peer_link_pull. */
int pm_peer_link_pull_cdiffs(pm_peer_link_t *link, const char *name,
                             uint32_t from, uint32_t to, const char *dir,
                             int timeout_ms, char **why);

#endif
