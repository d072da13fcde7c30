/* pm_wire.h - the one gate between bytes and privmta messages.
 *
 * Every message read from the network or from disk is unpacked here and
 * checked field by field (string lengths, UTF-8, list sizes, enum ranges,
 * what each request op requires) before any other code sees it. Semantic
 * checks of a policy (is this CIDR valid?) belong to pm_policy_validate; this
 * layer makes sure the structure is sane so that later code can trust it.
 *
 * Unpack functions return PM_OK and set *out, or PM_EPROTO and set *why to
 * a newly allocated explanation (caller frees) when why is not NULL. Caller
 * frees *out with the matching pm__*__free_unpacked(*out, NULL).
 *
 * What is checked, in every message and every nested message:
 *   - input of at most PM_WIRE_MESSAGE_MAX bytes (an AgentReport:
 *     PM_WIRE_REPORT_MAX) that protobuf-c can decode;
 *   - before decoding, in the bytes (pm_wire_scan): the list sizes below,
 *     no unknown field, no field that is not repeated given twice,
 *     nesting at most 16 deep, and varints and lengths that end in the
 *     input ("...: not a valid protobuf encoding (a length past the end
 *     at byte 7)");
 *   - every string <= PM_WIRE_STRING_MAX bytes and valid UTF-8 (no overlong
 *     forms, surrogates or code points past U+10FFFF); every bytes field
 *     (signature content, edit content) <= PM_WIRE_CONTENT_MAX;
 *   - every repeated field <= PM_WIRE_LIST_MAX items (a list of the
 *     fleet's nodes: PM_WIRE_NODES_MAX), none of them NULL;
 *   - every enum value one that the .proto declares;
 *   - no unknown fields: bytes nothing here has checked are never stored or
 *     republished, and a node that cannot read a policy setting refuses it
 *     instead of silently not enforcing it;
 *   - Request: expect_rev >= -1; every edit has a non-empty key; per op:
 *     PUSH needs policy, SET at least one edit, DIFF rev and rev_b > 0,
 *     ROLLBACK rev > 0, ROLLOUT_START a spec whose service is postfix,
 *     milter or all; NONE is refused;
 *   - Publication: UPDATE and SNAPSHOT carry their revision, RESTART an
 *     order (rollout >= 1, a service, drain_ms 0 to PM_WIRE_DRAIN_MS_MAX);
 *   - Revision (also inside a Response): number >= 1, parent < number,
 *     rollback_of < number, digest 64 lowercase hex characters;
 *   - NodeStatus (also inside a Response): non-empty name;
 *   - WHY (Request, Publication): a query naming a queue id, a Message-ID
 *     or a sender, max <= PM_WIRE_WHY_MAX; an agent's WHY_ANSWER names the
 *     query it answers.
 *   - POLICY_TEST (Request) and TEST (Publication): a PolicyTest with
 *     1..PM_WIRE_TEST_MESSAGES_MAX named, non-empty messages of at most
 *     PM_WIRE_TEST_BYTES_MAX in all, 1..PM_WIRE_TEST_RCPTS_MAX non-empty
 *     recipients, no control character in the client's attributes, HELO,
 *     sender or recipients (they go into SMTP commands); a request holds
 *     a candidate or a revision (one of them), a publication an id and
 *     the policy tried; a TEST_ANSWER names its test and holds at most
 *     PM_WIRE_TEST_RESULTS_MAX results.
 * These walks follow the protobuf-c descriptors, so a field added to the
 * .proto is covered by the structural rules without code changes.
 *
 * *why names the field and the problem, e.g. "Request.edits[2].key: empty"
 * or "Policy.antivirus_custom_signatures[0].name: not valid UTF-8 at byte 3".
 * An embedded NUL in a string cannot be seen after protobuf-c decoding: the
 * string reads as ending there.
 */
#ifndef PM_WIRE_H
#define PM_WIRE_H

#include "privmta.pb-c.h"

#include <stddef.h>
#include <stdint.h>

#define PM_WIRE_STRING_MAX 4096 /* bytes in one ordinary string */
#define PM_WIRE_LIST_MAX 4096   /* items in one repeated field */
/* Items in a list with one per enrolled node (MEMBERS, `nodes`, a
 * REPLICATE answer's keys and secrets): the fleet's size, not a policy's,
 * and only ever sent by a controller */
#define PM_WIRE_NODES_MAX 65536
/* List items in all in one message an agent, a peer or a helper sends
 * (lists inside lists multiply past each one's limit) */
#define PM_WIRE_ITEMS_MAX 65536
#define PM_WIRE_CONTENT_MAX (8u << 20) /* bytes in one signature file */
#define PM_WIRE_MESSAGE_MAX (64u << 20)
/* Bytes in one AgentReport, the only message an agent sends; the agent
 * socket refuses anything longer (ZMQ_MAXMSGSIZE) before it is read, and
 * pm_wire_unpack_agent_report too. Decoding amplifies: protobuf-c allocates
 * every string and list item apart, so 63 MiB of tiny repeated strings cost
 * gigabytes; the cap keeps one hostile report to tens of MiB, briefly. A
 * legitimate report is a NodeStatus of a few short strings (address, an
 * apply error, four service details) and relay_overrides, one line per map
 * entry that bypasses relay_host ("transport_maps: DOMAIN -> NEXTHOP",
 * typically under 100 bytes). 1 MiB holds the list maximum of 4096 such
 * lines at an average of 250 bytes each, beyond any real node; a node with
 * more overrides than that has to summarise them, not send them all. */
#define PM_WIRE_REPORT_MAX (1u << 20)
/* Agent to agent (PeerMessage): a database file travels in chunks of at
 * most PM_WIRE_CHUNK_MAX bytes, so one message is at most PM_WIRE_PEER_MAX
 * (the peer socket's ZMQ_MAXMSGSIZE); a whole file is at most
 * PM_WIRE_DATABASE_MAX (ClamAV's main.cvd is ~160 MiB, an uncompressed
 * daily.cld ~300 MiB). */
#define PM_WIRE_CHUNK_MAX (1u << 20)
#define PM_WIRE_PEER_MAX (2u << 20)
#define PM_WIRE_DATABASE_MAX (2ull << 30)
/* A CDIFF (one version's changes: a few KiB to a few hundred for daily)
 * is at most this. */
#define PM_WIRE_CDIFF_MAX (16ull << 20)
/* The longest drain a restart order may ask of a node, which refuses new
 * mail meanwhile (the controller asks 30 s at most: PM_ROLLOUT_DRAIN_MS). */
#define PM_WIRE_DRAIN_MS_MAX (10 * 60 * 1000)
/* The furthest a Cooldown's until is honoured, from now: freshclam's 24 h
 * after a 403 plus an hour. The controller and the agents cut a later
 * deadline to this, so one broken or hostile report cannot keep the
 * cluster off a mirror for a year. */
#define PM_WIRE_COOLDOWN_MAX (25 * 3600)
/* Decision records one node returns for one WHY (the newest): enough to
 * follow one message or one sender's day; an AgentReport stays far under
 * PM_WIRE_REPORT_MAX (the agent trims records to fit). */
#define PM_WIRE_WHY_MAX 100
/* A policy test (PolicyTest): at most PM_WIRE_TEST_MESSAGES_MAX messages
 * of at most PM_WIRE_CONTENT_MAX bytes each, PM_WIRE_TEST_BYTES_MAX in
 * all, to at most PM_WIRE_TEST_RCPTS_MAX recipients; an answer holds one
 * result per message, recipient and policy (candidate, head). */
#define PM_WIRE_TEST_MESSAGES_MAX 20
#define PM_WIRE_TEST_RCPTS_MAX 10
#define PM_WIRE_TEST_BYTES_MAX (32u << 20)
#define PM_WIRE_TEST_RESULTS_MAX                                               \
    (2 * PM_WIRE_TEST_MESSAGES_MAX * PM_WIRE_TEST_RCPTS_MAX)
/* RestartOrder.service of a canary push's check: only the restart's
 * health gate, probe message included, nothing drained or restarted. */
#define PM_WIRE_SERVICE_PROBE "probe"

int pm_wire_unpack_request(const uint8_t *buf, size_t len, Pm__Request **out,
                           char **why);
int pm_wire_unpack_response(const uint8_t *buf, size_t len, Pm__Response **out,
                            char **why);
int pm_wire_unpack_revision(const uint8_t *buf, size_t len, Pm__Revision **out,
                            char **why);
int pm_wire_unpack_node_status(const uint8_t *buf, size_t len,
                               Pm__NodeStatus **out, char **why);

/* Agent protocol. A Publication of kind UPDATE or SNAPSHOT must carry the
 * head revision with its policy. A Member has a name and a 40-character
 * public key. */
int pm_wire_unpack_agent_report(const uint8_t *buf, size_t len,
                                Pm__AgentReport **out, char **why);
int pm_wire_unpack_publication(const uint8_t *buf, size_t len,
                               Pm__Publication **out, char **why);

/* Agent to agent: at most PM_WIRE_PEER_MAX bytes; every SignatureDb name is
 * a database name (pm_check_database_name); GET and CHUNK name a file
 * NAME.cvd or NAME.cld and a version > 0, or NAME-N.cdiff and version N; a
 * CHUNK's data is at most PM_WIRE_CHUNK_MAX bytes and lies inside TOTAL <=
 * PM_WIRE_DATABASE_MAX (PM_WIRE_CDIFF_MAX for a CDIFF). */
int pm_wire_unpack_peer_message(const uint8_t *buf, size_t len,
                                Pm__PeerMessage **out, char **why);

/* privmta-sigfetch to its agent: at most PM_WIRE_FETCH_MAX bytes; every
 * database name checked as above, err a pm_err_t. */
#define PM_WIRE_FETCH_MAX (1u << 20)
int pm_wire_unpack_fetch_report(const uint8_t *buf, size_t len,
                                Pm__FetchReport **out, char **why);
/* An agent to its verifier: PATH absolute, NAME a database name; at most
 * PM_WIRE_FETCH_MAX bytes. */
int pm_wire_unpack_verify_request(const uint8_t *buf, size_t len,
                                  Pm__VerifyRequest **out, char **why);

/* Reads BUF, the encoding of a message of type D, without decoding it
 * (nothing allocated per item, time linear in LEN). Refuses a list with
 * more items than allowed, e.g. "AgentReport.status.cooldowns: more than
 * 4096 items" (a packed run of numbers counts each, an empty run one), an
 * unknown field, a field that is not repeated given twice (decoding would
 * merge the two), nesting deeper than 16, or an encoding that does not
 * hold together. Returns PM_OK, or PM_EPROTO with *why as above. Every
 * pm_wire_unpack_* calls it before protobuf-c allocates anything. BUF may
 * be NULL when LEN is 0. */
int pm_wire_scan(const ProtobufCMessageDescriptor *d, const uint8_t *buf,
                 size_t len, char **why);

/* Structural check of a policy already in memory (also used by the unpack
 * functions). Returns PM_OK or PM_EPROTO with *why as above. */
int pm_wire_check_policy(const Pm__Policy *policy, char **why);

/* Replaces the string field *SLOT with a copy of VALUE, freeing the old
 * one unless it is protobuf-c's shared empty string. */
void pm_wire_set_string(char **slot, const char *value);

/* Packs any message into a new buffer (never NULL; allocation failure
 * aborts); sets *len. Does not check the message: the receiver does. Caller
 * frees the buffer with free(). */
uint8_t *pm_wire_pack(const ProtobufCMessage *msg, size_t *len);

/* A deep copy of any message, of its own type (cast the result); freed
 * like an unpacked one (pm__x__free_unpacked(copy, NULL)). Allocation
 * failure aborts. */
void *pm_wire_dup(const ProtobufCMessage *msg);

#endif
