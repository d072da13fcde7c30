/* pm_sigsync.h - this node's ClamAV databases: fetched from the mirrors
 * when the controller gave it the duty, pulled from peers otherwise.
 *
 * The cluster fetches each database about once per update: the controller
 * names one live node per database (rendezvous hashing, sent in MEMBERS
 * publications); that node checks the policy's mirrors every
 * antivirus.update_frequency with pm_sigfetch (libfreshclam). Every other
 * node learns of a new version by gossip and pulls the file from a peer
 * that holds it (pm_peer, CurveZMQ with the enrolled keys), so no node
 * serves everyone and the mirror sees one fetch.
 *
 * Gossip is push-pull: every GOSSIP_MS the node exchanges what it holds
 * (database versions) and the mirror cool-downs it knows with FANOUT
 * random live members, and at once with FANOUT members whenever it gets a
 * new version (the pulls of quiet nodes find the few every push missed;
 * see s_round in pm_sigsync.c for the figures that chose this).
 * A peer holding a newer version is pulled from (a random one among those
 * holding the newest, spreading the load). Membership is the
 * last MEMBERS publication (kept in MEMBERS_FILE), so gossip goes on while
 * the controller is down, also after this agent restarts.
 *
 * Trust: a file is used and served only after ClamAV's own signature check
 * (pm_sigfetch and pm_peer verify before a file enters DBDIR). A peer that
 * serves a file failing that check, or breaks the protocol, is distrusted
 * for DISTRUST_S seconds: not pulled from, and reported in the status.
 *
 * Cool-downs: a 429 or 403 a mirror gave any node (this one, a peer by
 * gossip, or the controller's cluster list) keeps this node from asking
 * that mirror until the deadline.
 *
 * DBDIR is this node's database directory (what privmta-milter loads as
 * its sig_dir): root-owned, created 0750 root:GID, files 0644 inside it.
 * Only databases the policy names are kept there; the files of a name the
 * policy drops are removed.
 *
 * An actor (zactor) owned by the agent actor. Fetches (in a privmta-
 * sigfetch child: FETCHER) and pulls block its thread (bounded by
 * timeouts), never the agent's; a command that arrives meanwhile is
 * handled after the step, except $TERM and SIGTERM, which end the step at
 * the next peer or pull, and a fetch at once (the child is killed; see
 * pm_sigsync_stopping). Pipe commands:
 *   "NODE" + name          the name the controller enrolled this node as
 *   "POLICY" + frame       the node's applied policy (packed Pm__Policy):
 *                          mirrors, databases, update_frequency, enabled
 *   "MEMBERS" + frame      a packed Publication of kind MEMBERS
 *   "CHECK"                the duties' next check is now (the
 *                          controller's CHECK: `privmta-ctl signatures
 *                          check`; cool-downs still apply)
 *   "$TERM"                stop
 * Events on the pipe, to the owner:
 *   "STATUS" + frame       a packed Pm__NodeStatus carrying databases,
 *                          cooldowns, distrusted and peer_endpoint (name
 *                          set, nothing else), sent whenever it changes
 */
#ifndef PM_SIGSYNC_H
#define PM_SIGSYNC_H

#include <czmq.h>

typedef struct {
    zcert_t *cert;            /* this agent's keypair (not owned) */
    const char *dbdir;        /* absolute path; created when missing */
    const char *fetcher;      /* privmta-sigfetch, by path: the duty's
                                 fetches run in it (pm_sigfetch_spawn), and
                                 one of it checks what peers send
                                 (pm_sigverify) */
    const char *fetch_user;   /* privmta-sigfetch runs as this user when the
                                 agent is root (pm_sigstore.h); NULL: as
                                 the agent */
    const char *verify_user;  /* its verifier (pm_sigverify) as this one;
                                 NULL: fetch_user. Another user keeps a
                                 compromised fetch from signalling it */
    int gid;                  /* group given read access to DBDIR; -1 root's */
    const char *peer_bind;    /* where to serve peers ("tcp://0.0.0.0:7301");
                                 NULL: serve none (pulls still work) */
    const char *peer_host;    /* the host peers reach us at; NULL: the bind's */
    const char *name;         /* node name until "NODE" says otherwise */
    const char *members_file; /* the last MEMBERS, kept across restarts
                                 (0600): gossip needs no controller to
                                 start; NULL: memory only */
    int gossip_ms;            /* gossip round; 0: 200 */
    int fanout;               /* peers per round; 0: 3; at most
                                 links_max */
    int links_max;            /* peer links kept at once, the gossip view
                                 of a big cluster (pm_sigmembers.h);
                                 0: PM_SIGMEMBERS_LINKS_MAX */
    int cdiff_min_kib;        /* a node catches up by CDIFF (pm_sigcdiff.h)
                                 only when its copy of the database is
                                 larger than this; smaller ones come whole
                                 (starting libfreshclam costs more than a
                                 few MiB from a peer); 0: whenever a peer
                                 keeps the CDIFFs. The agent's default is
                                 PM_SIGSYNC_CDIFF_MIN_KIB */
    int distrust_s;           /* 0: 3600 */
    int peer_timeout_ms;      /* one peer reply; 0: 2000 */
} pm_sigsync_config_t;

/* The agent's cdiff_min_kib: bytecode (~300 KiB) comes whole, daily and
 * main (tens to hundreds of MiB) by CDIFF. Measured here with the 40 KiB
 * test database at N=60: by CDIFF, spreading a version took 4.6 s (a
 * helper started on every node, 2 cores); whole, 0.5 s. */
#define PM_SIGSYNC_CDIFF_MIN_KIB 8192

/* Starts the actor. CONFIG is copied (cert stays the caller's). Returns
 * NULL when DBDIR cannot be made or the peer service cannot bind (why
 * logged). */
zactor_t *pm_sigsync_new(const pm_sigsync_config_t *config);

#endif
