/* pm_milter.h - what privmta-milter decides for one message, and the
 * per-node runtime that keeps its policy, engines and status current.
 *
 * Three layers, each usable without the next:
 *
 *   pm_mpolicy_t   an immutable, reference-counted snapshot of what the
 *                  node enforces, built from the node's effective policy
 *                  (pm_policy_for_node) of one applied revision: blocklist,
 *                  thresholds in exact hundredths, parsed mynetworks, DKIM
 *                  domains with their private keys read from the key dir.
 *   pm_mmsg_t      one message as the MTA hands it over (client address,
 *                  {auth_authen}, queue id, envelope, headers, body).
 *   pm_milter_decide
 *                  the pure decision: policy + message + scanning engines
 *                  (a table of functions, so tests pass fakes) -> verdict
 *                  (accept, reject, tempfail or discard; headers to add;
 *                  Subject change; DKIM-Signature to insert; notices).
 *   pm_milter_t    the runtime: follows the agent's LMDB (read-only), owns
 *                  the libclamav holder, the spamd client, the DKIM handle,
 *                  the notifier, and writes the status file. The libmilter
 *                  glue (pm_milter_smfi.c) only translates callbacks.
 *
 * Order of checks in pm_milter_decide, first verdict wins:
 *   1. no policy yet                          -> 451 4.3.0 (tempfail)
 *      message larger than max_message_bytes  -> 451 4.3.0
 *   2. MIME shape and attachments (all mail, blocklist empty or not:
 *      pm_attach_scan is the guard against MIME part bombs):
 *      inbound.blocked_extensions             -> 554 5.7.1 naming the
 *      extension and file; notices per inbound.notify_*;
 *      a MIME/archive limit exceeded (parts, depth, headers...)
 *        -> 554 5.7.1 "Message rejected: could not be checked
 *           completely: <why>"; unparsable -> 451 4.3.0
 *   3. antivirus (antivirus.enabled)          -> 554 5.7.1 naming the
 *      signature; notices per antivirus.notify_*. Content past one of
 *      libclamav's limits (recursion, files, file size, scan size; see
 *      pm_av.h) -> 554 5.7.1 "Message rejected: could not be scanned
 *      completely (<which limit>)", no notice; past the scan time limit
 *      (a resource, not the content) -> 451 4.3.0 naming it.
 *   4. DKIM forged-mail rule, inbound mail only (antispam.dkim_verify).
 *      From headers are parsed by GMime (pm_from.h):
 *      - not exactly one From header with exactly one mailbox (several
 *        From headers, several mailboxes, a group, no domain) and any
 *        DKIM domain named in it, by a parsed address or by its text
 *        (unfolded, comments dropped, encoded words decoded)
 *                                             -> 550 5.7.1 "the From
 *        header names D but is not exactly one mailbox (<problem>)",
 *        whatever signatures the message carries;
 *      - one mailbox: every DKIM domain it names (its own domain, or an
 *        "@D" in its display name) needs a passing signature of exactly
 *        that domain                          -> 550 5.7.1, or 451 4.3.0
 *        when a signature of that domain could not be checked because
 *        its key could not be looked up (DNS)
 *   5. antispam (antispam.enabled; inbound mail only unless
 *      antispam.scan_outbound): a message over spamd_max_bytes (default
 *      512000, as spamc and amavis) is not scored: it gets
 *      "X-Privmta-Antispam: skipped, message of N bytes over the
 *      512000-byte scoring limit" (not an X-Spam-Status: nothing claims it
 *      is ham) and goes on. Otherwise score >= kill -> discard
 *      (kill_action discard) or tag (deliver); score >= tag -> tag:
 *      X-Spam-Flag, X-Spam-Score, X-Spam-Level, X-Spam-Status headers and
 *      antispam.subject_prefix before the Subject. Exact: hundredths.
 *   6. outbound mail whose From is one mailbox in a domain of dkim.domains
 *      with a usable key is signed, last: over the message as it will be
 *      delivered (Subject changed in place, added headers appended at the
 *      end of the header block, a new Subject after them: what
 *      smfi_chgheader / smfi_addheader make the MTA do), so a tagged
 *      message's signature verifies. DKIM-Signature is inserted at the top.
 *   7. this node's probe (pm_handoff.h; pm_mmsg_probe_ok) that every check
 *      let through is refused: 550 5.7.0 PM_PROBE_PASSED (its proof; no
 *      copy is kept, headers and signature dropped).
 * "Outbound" means {auth_authen} is set or the client address is in the
 * policy's outbound.mynetworks. Any engine error or timeout (scanner
 * failed, no engine yet, spamd down or slow, DKIM library failure, a
 * message too big to hold) is a tempfail 451 4.3.0 naming the stage:
 * never a silent accept.
 *
 * Bounded work (runtime, pm_milter_run_decide): at most max_scans (8)
 * messages are decided at once; one that finds no slot within
 * scan_wait_ms (60000) is a tempfail 451 4.3.2 "Too busy scanning other
 * mail". At most spamd_max_conns (5, spamd's default --max-children)
 * spamd requests run at once; waiting for one comes out of
 * spamd_timeout_ms, which bounds the whole spamd check.
 *
 * Policy following: a follower thread checks the file the agent hands the
 * applied revision over in (pm_handoff.h) every poll_ms (100 ms by
 * default; one stat) and the DKIM key dir; only when either changed does
 * it read the revision (bounded, through pm_wire), build a new snapshot and
 * swap it under a mutex. It never opens anything of the agent's for
 * writing, and holds no lock the agent needs. Started before the agent, it
 * waits for the file (mail is tempfailed until a policy is there).
 * A message takes a reference to the snapshot current at MAIL FROM and
 * keeps it to its end, so a new revision never changes or fails a message
 * in flight. When the custom signature set (names + sha256), the
 * block_encrypted flag or the signature directory (names, sizes, mtimes)
 * changes, a second thread builds a new libclamav engine (pm_av_load) and
 * swaps it atomically; scans keep using the old engine meanwhile. No
 * message ever waits for a reload.
 *
 * Notifications (pm_notify.h) are sent by a notifier thread over SMTP, with
 * the null envelope sender, to a dedicated Postfix listener that runs no
 * milter: they cannot loop through this filter, and nothing bounces back
 * to a notification.
 *
 * Decision log (pm_declog.h), for privmta-ctl why: every decided message
 * but the probe is appended to status_dir's decisions.jsonl (time, queue
 * id, Message-ID, envelope addresses, verdict, reply, the deciding policy
 * key, the verdict's log line, revision; never a body), within
 * decision_log_records and decision_log_bytes (0 records: no log). A log
 * that cannot be written never holds up or fails mail.
 *
 * WHAT THE AGENT MUST SET ON THE NODE'S POSTFIX (main.cf via postconf -e):
 *     smtpd_milters = unix:/run/privmta-milter/milter.sock
 *                     (or inet:127.0.0.1:PORT; both work, TCP_NODELAY is
 *                     set on the listener)
 *     non_smtpd_milters = $smtpd_milters
 *     milter_default_action = tempfail
 *     milter_protocol = 6
 *     milter_mail_macros = i {auth_type} {auth_authen} {auth_author}
 *                          {mail_addr} {mail_host} {mail_mailer}
 *                          (Postfix's default; {auth_authen} is required)
 *     milter_connect_macros = j {daemon_name} {daemon_addr} v _
 *                          (default; j names the node for admin notices)
 *     milter_end_of_data_macros = i   (default; the queue id)
 * and one master.cf service for notifications (the no-loop path), e.g.:
 *     127.0.0.1:10026 inet n - n - - smtpd
 *       -o smtpd_milters= -o non_smtpd_milters=
 *       -o receive_override_options=no_milters,no_address_mappings
 *       -o mynetworks=127.0.0.0/8
 *       -o smtpd_client_restrictions=permit_mynetworks,reject
 *       -o smtpd_recipient_restrictions=permit_mynetworks,reject
 * named by the agent's notify_listener, which the agent hands over beside
 * the policy file (pm_handoff.h, notify.addr); the milter's notify_smtp
 * option (127.0.0.1:10026) is used when there is none.
 * (no_address_mappings is optional; keep alias expansion if recipients
 * are aliases.) The milter reads, as its own unprivileged user, the
 * handoff file and DKIM key dir (through its group: the agent writes them
 * root:<milter group> 0640) and the signature dir; it writes only its
 * status dir. Nothing is read while it is still root.
 *
 * Threads: pm_mpolicy_t and pm_milter_t are shared by all threads;
 * pm_mmsg_t and pm_mverdict_t belong to one connection's thread.
 */
#ifndef PM_MILTER_H
#define PM_MILTER_H

#include "pm_av.h"
#include "pm_error.h"
#include "pm_spamd.h"
#include "pm_dkim.h"
#include "privmta.pb-c.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <time.h>

/* ---- policy snapshot ---------------------------------------------------- */

typedef struct pm_mpolicy_t pm_mpolicy_t;

/* One dkim.domains entry as the milter sees it. */
typedef struct {
    char *domain; /* lowercased */
    char *selector;
    char *key_pem;   /* NULL when the key is missing or unusable */
    char *key_error; /* why the key is unusable, or NULL */
} pm_mdkim_t;

/* Builds a snapshot of POLICY (the node's effective policy; only read, the
 * caller keeps it) as revision REV. DKIM keys are read from KEY_DIR/<key>
 * (KEY_DIR NULL or empty: every key is unusable); a missing or bad key only
 * makes that domain unusable for signing (verification still applies).
 * Returns NULL (and *why, caller frees) when the snapshot cannot be built:
 * an extension or network the policy validator would have refused. Caller
 * owns the result (one reference) and drops it with pm_mpolicy_unref. */
pm_mpolicy_t *pm_mpolicy_new(const Pm__Policy *policy, uint64_t rev,
                             const char *key_dir, char **why);

/* Takes another reference; returns SELF. Thread-safe. */
pm_mpolicy_t *pm_mpolicy_ref(pm_mpolicy_t *self);

/* Drops a reference (freeing on the last), nulls *self_p; accepts NULL. */
void pm_mpolicy_unref(pm_mpolicy_t **self_p);

/* The revision number and the node's effective policy (owned by SELF). */
uint64_t pm_mpolicy_rev(const pm_mpolicy_t *self);
const Pm__Policy *pm_mpolicy_policy(const pm_mpolicy_t *self);

/* The DKIM domains, *n of them (owned by SELF). */
const pm_mdkim_t *pm_mpolicy_dkim(const pm_mpolicy_t *self, size_t *n);

/* True when SA (AF_INET or AF_INET6; v4-mapped v6 counts as v4) lies in
 * the policy's outbound.mynetworks. False for NULL or other families. */
bool pm_mpolicy_in_mynetworks(const pm_mpolicy_t *self,
                              const struct sockaddr *sa);

/* ---- one message ------------------------------------------------------- */

typedef struct pm_mmsg_t pm_mmsg_t;

/* A new, empty message holder that keeps at most MAX_BYTES of message
 * (headers and body as rebuilt); more makes pm_mmsg_too_big true. Caller
 * owns it and destroys it with pm_mmsg_destroy. */
pm_mmsg_t *pm_mmsg_new(size_t max_bytes);
void pm_mmsg_destroy(pm_mmsg_t **self_p);

/* Forgets the message (envelope, headers, body, queue id, auth) but keeps
 * the connection's client address and host name: the next MAIL FROM. */
void pm_mmsg_reset(pm_mmsg_t *self);

/* Connection facts. SA NULL: unknown or local submission (not in
 * mynetworks). MYHOSTNAME is Postfix's "j" macro (admin default domain). */
void pm_mmsg_set_client(pm_mmsg_t *self, const struct sockaddr *sa);
void pm_mmsg_set_myhostname(pm_mmsg_t *self, const char *name);
/* {auth_authen}; NULL or "" means not authenticated. */
void pm_mmsg_set_auth(pm_mmsg_t *self, const char *authen);
void pm_mmsg_set_queue_id(pm_mmsg_t *self, const char *qid);
/* Envelope addresses with or without <>; kept without them. */
void pm_mmsg_set_sender(pm_mmsg_t *self, const char *addr);
void pm_mmsg_add_rcpt(pm_mmsg_t *self, const char *addr);
/* One header field as libmilter gives it (value without the leading
 * space, continuation lines joined by LF or CRLF). */
void pm_mmsg_add_header(pm_mmsg_t *self, const char *name, const char *value);
/* The empty line after the headers, then body chunks. */
void pm_mmsg_end_headers(pm_mmsg_t *self);
void pm_mmsg_add_body(pm_mmsg_t *self, const void *data, size_t len);

/* The message as rebuilt (CRLF line ends), its length; the queue id (or
 * "NOQUEUE"); whether more than max_bytes arrived. */
const char *pm_mmsg_data(const pm_mmsg_t *self, size_t *len);
const char *pm_mmsg_queue_id(const pm_mmsg_t *self);
bool pm_mmsg_too_big(const pm_mmsg_t *self);

/* The probe (pm_handoff.h): the value of the message's one
 * PM_PROBE_HEADER when it came from a loopback client; NULL otherwise
 * (no such header, several, or another client). Whether it holds this
 * node's token is the runtime's to say (pm_milter_run_probe), and
 * pm_milter_decide answers a probe that passed every check with
 * PM_PROBE_PASSED. */
const char *pm_mmsg_probe(const pm_mmsg_t *self);
void pm_mmsg_set_probe_ok(pm_mmsg_t *self, bool ok);
bool pm_mmsg_probe_ok(const pm_mmsg_t *self);

/* ---- scanning engines ---------------------------------------------------- */

/* What pm_milter_decide calls; any entry may be NULL when the matching
 * feature is off (a NULL engine for an enabled feature is a tempfail).
 * Return conventions are those of pm_av_scan (PM_AV_*), pm_spamd_check,
 * pm_dkim_verify and pm_dkim_sign. SPAM_MAX_BYTES (0: no cap) is the
 * largest message handed to spam_check; a larger one is not scored and
 * gets the X-Privmta-Antispam header instead (see the decision order). */
typedef struct {
    void *ctx;
    int (*av_scan)(void *ctx, const char *msg, size_t len, char **virname,
                   char **why);
    int (*spam_check)(void *ctx, const char *msg, size_t len,
                      pm_spamd_result_t *out, char **why);
    int (*dkim_verify)(void *ctx, const char *msg, size_t len,
                       const char *const *domains, size_t n_domains,
                       pm_dkim_verdict_t *out, char **why);
    int (*dkim_sign)(void *ctx, const char *msg, size_t len, const char *domain,
                     const char *selector, const char *key_pem,
                     char **header_out, char **why);
    size_t spam_max_bytes;
} pm_mengines_t;

/* ---- verdict --------------------------------------------------------------
 */

typedef enum {
    PM_MV_ACCEPT = 0,
    PM_MV_REJECT,   /* permanent: rcode 5xx */
    PM_MV_TEMPFAIL, /* rcode 4xx */
    PM_MV_DISCARD,  /* accept and drop */
} pm_mv_action_t;

/* Which check decided, for the counters (pm_milter_count). */
typedef enum {
    PM_MR_NONE = 0,   /* no check in particular: accepted, or a failure */
    PM_MR_ATTACHMENT, /* a blocked extension */
    PM_MR_VIRUS,      /* ClamAV found a signature */
    PM_MR_DKIM,       /* a DKIM domain's From without its signature */
    PM_MR_SPAM,       /* tagged or discarded by score */
    PM_MR_PROBE,      /* this node's canary probe: not mail */
} pm_mv_reason_t;

/* The counters of MessageCounts (privmta.proto), in its order. */
typedef enum {
    PM_MC_ACCEPTED = 0,
    PM_MC_SPAM_TAGGED,
    PM_MC_SPAM_DISCARDED,
    PM_MC_REJECTED_ATTACHMENT,
    PM_MC_REJECTED_VIRUS,
    PM_MC_REJECTED_DKIM,
    PM_MC_REJECTED_OTHER,
    PM_MC_TEMPFAILED,
    PM_MC_N
} pm_mcounter_t;

typedef enum {
    PM_NOTICE_NONE = 0,
    PM_NOTICE_ATTACHMENT, /* a blocked attachment: item is the file name */
    PM_NOTICE_VIRUS,      /* infected: item is the signature name */
} pm_notice_kind_t;

typedef struct {
    char *name;
    char *value;
} pm_mhdr_t;

typedef struct {
    pm_mv_action_t action;
    char rcode[4];  /* "554", "451"... for REJECT / TEMPFAIL */
    char xcode[8];  /* "5.7.1" */
    char *text;     /* reply text (REJECT / TEMPFAIL) */
    pm_mhdr_t *add; /* headers to append (X-Spam-*), n_add */
    size_t n_add;
    char *subject;       /* new Subject value, or NULL: unchanged */
    bool subject_is_new; /* the message had no Subject: add, not change */
    char *dkim_value;    /* DKIM-Signature value to insert at the top, folded
                            with LF + TAB (as smfi_insheader wants), or NULL */
    pm_notice_kind_t notice;
    char *notice_item; /* file name or signature name */
    bool notify_admin, notify_recipients;
    char *admin_address;   /* where the admin notice goes */
    char *log;             /* one line saying what happened and why */
    pm_mv_reason_t reason; /* which check decided (counters) */
    bool scanned_spam;     /* spamd was asked (for status) */
    unsigned spam_latency_ms;
} pm_mverdict_t;

/* Decides what to do with MSG under POL (NULL: no policy, tempfail) using
 * ENG. Fills *out (caller clears it with pm_mverdict_clear); returns the
 * action. Never returns ACCEPT after an engine error. */
pm_mv_action_t pm_milter_decide(const pm_mpolicy_t *pol, const pm_mmsg_t *msg,
                                const pm_mengines_t *eng, pm_mverdict_t *out);

/* The counters V adds 1 to: *N (0..2) of them into OUT (accepted and
 * spam-tagged both count a tagged message); none for the probe. */
void pm_milter_count(const pm_mverdict_t *v, pm_mcounter_t out[2], size_t *n);

void pm_mverdict_clear(pm_mverdict_t *v);

/* The domain of MSG's From mailbox, lowercased, as GMime parses it
 * (pm_from.h): only when there is exactly one From header holding exactly
 * one mailbox with a domain; NULL otherwise (such mail is never signed).
 * Caller frees. */
char *pm_mmsg_from_domain(const pm_mmsg_t *msg);

/* True when MSG counts as outbound under POL ({auth_authen} set or the
 * client in outbound.mynetworks). */
bool pm_milter_is_outbound(const pm_mpolicy_t *pol, const pm_mmsg_t *msg);

/* True when pm_milter_decide under POL would ask ENG's spam_check about
 * MSG if no earlier check decided first: antispam on, MSG inbound (or
 * outbound with scan_outbound), within spam_max_bytes and max_bytes. The
 * runtime starts that check ahead (pm_milter_run_decide). */
bool pm_milter_will_score(const pm_mpolicy_t *pol, const pm_mmsg_t *msg,
                          const pm_mengines_t *eng);

/* "*******" for a score in hundredths (one star per whole point, at most
 * 50, none below 1.0). Caller frees. */
char *pm_milter_spam_level(int64_t hundredths);

/* ---- runtime --------------------------------------------------------------
 */

typedef struct pm_milter_t pm_milter_t;

typedef struct {
    const char *policy_file; /* the agent's handoff (pm_handoff.h) */
    const char *node;        /* node name for per-node overrides ("" none) */
    const char *sig_dir;     /* signature database dir ("" none) */
    const char *key_dir;     /* DKIM private keys: KEY_DIR/<key> */
    const char *spamd;       /* spamd address (pm_spamd_new syntax) */
    int spamd_timeout_ms;
    const char *dkim_query_file; /* "" = DNS */
    const char *status_dir;      /* where status.json is written ("" none) */
    const char *notify_smtp;     /* host:port of the no-milter listener */
    const char *notify_from;     /* From: of notices ("" postmaster@<j>) */
    int poll_ms;                 /* handoff file check period */
    int sig_poll_ms;             /* signature dir check period */
    int sig_jitter_ms;           /* a changed sig dir is loaded after a
                                    random 0..this delay, so a cluster does
                                    not compile in the same second (0: at
                                    once) */
    int status_ms;               /* status file period */
    size_t max_bytes;            /* largest message held for scanning */
    int max_scans;               /* messages decided at once (0: 8) */
    int scan_wait_ms;            /* longest wait for a slot (0: 60000) */
    int spamd_max_conns;         /* spamd requests at once (0: 5) */
    size_t spamd_max_bytes;      /* largest message scored (0: 512000) */
    pm_av_limits_t av_limits;    /* libclamav limits (0 fields: pm_av.h's) */
    const char *temp_dir;        /* libclamav's temporary files ("" its
                                    default; see pm_av_set_tmpdir) */
    size_t decision_log_records; /* records kept in status_dir's decision
                                    log (pm_declog.h); 0: no log */
    size_t decision_log_bytes;   /* bytes kept, both files together
                                    (0: PM_DECLOG_BYTES_MAX) */
    int decision_log_days;       /* a record is kept about this long (0: the
                                    default, PM_DECLOG_DAYS_DEFAULT) */
} pm_milter_opts_t;

/* Starts the engines and the notifier thread. Reads no policy: that is
 * pm_milter_start's first step, after privileges were dropped, so the
 * milter never reads as root what it could not read later. Returns NULL (and
 * *why) when the spamd address is bad or a library cannot start. Caller owns
 * the result and destroys it with pm_milter_destroy (joins the threads). */
pm_milter_t *pm_milter_new(const pm_milter_opts_t *opts, char **why);

/* Reads the handoff once (a missing one is retried by the follower; mail
 * is tempfailed until a policy is there), then starts the follower
 * (handoff, key dir, status file) and AV reloader threads; the first
 * engine build begins now. Call after privileges were dropped, so
 * that nothing is half done as root and half as the user (libclamav's
 * temporary files, the status file). PM_OK or PM_EINTERNAL. */
int pm_milter_start(pm_milter_t *self);
void pm_milter_destroy(pm_milter_t **self_p);

/* The current snapshot (a new reference the caller drops), or NULL when no
 * policy has been read yet. Cheap: a mutex and a counter. */
pm_mpolicy_t *pm_milter_policy(pm_milter_t *self);

/* The real engines (libclamav holder, spamd, DKIM); they record what the
 * status file reports (spamd reachability and latency). */
const pm_mengines_t *pm_milter_engines(pm_milter_t *self);

/* Hands the verdict's notices to the notifier thread (returns at once).
 * Also counts the verdict for the status file, and appends it to the
 * decision log (status_dir, pm_declog.h; not the probe) with POL's
 * revision (POL: the snapshot MSG was decided under, NULL: none, revision
 * 0). A log that cannot be written is retried and reported (pm_warn) at
 * most once a minute; mail never waits for it nor fails because of it. */
void pm_milter_after(pm_milter_t *self, const pm_mpolicy_t *pol,
                     const pm_mmsg_t *msg, const pm_mverdict_t *v);

/* Writes the status file now (also done every status_ms). */
int pm_milter_write_status(pm_milter_t *self);

/* The largest message held, from the options. */
size_t pm_milter_max_bytes(const pm_milter_t *self);

/* pm_milter_decide with the runtime's engines, at most max_scans messages
 * at once: a message waits up to scan_wait_ms for a slot, and past that
 * is a tempfail "451 4.3.2 Too busy scanning other mail, try again later"
 * (log: "tempfail: busy ..."). What one scan costs (GMime's tree,
 * libclamav's temporary files and CPU) is thus bounded by max_scans, not
 * by how many clients send at once. Same contract as pm_milter_decide. */
pm_mv_action_t pm_milter_run_decide(pm_milter_t *self, const pm_mpolicy_t *pol,
                                    const pm_mmsg_t *msg, pm_mverdict_t *out);

/* Whether MSG is this node's probe (pm_handoff.h): its PM_PROBE_HEADER
 * (pm_mmsg_probe: one, from a loopback client) holds the token in
 * PM_HANDOFF_PROBE beside the policy file (read through PM_FILE_STRICT, at
 * most PM_PROBE_TOKEN_MAX bytes, compared in constant time, trailing
 * blanks ignored). Sets pm_mmsg_set_probe_ok; no token file: not a probe.
 * Call before pm_milter_run_decide. */
void pm_milter_run_probe(pm_milter_t *self, pm_mmsg_t *msg);

#endif
