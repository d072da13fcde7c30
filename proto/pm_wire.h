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
 */
#ifndef PM_WIRE_H
#define PM_WIRE_H

#include "privmta.pb-c.h"

#include <stddef.h>
#include <stdint.h>

#define PM_WIRE_STRING_MAX 4096        /* bytes in one ordinary string */
#define PM_WIRE_LIST_MAX 4096          /* items in one repeated field */
#define PM_WIRE_CONTENT_MAX (8u << 20) /* bytes in one signature file */
#define PM_WIRE_MESSAGE_MAX (64u << 20)

int pm_wire_unpack_request(const uint8_t *buf, size_t len, Pm__Request **out,
                           char **why);
int pm_wire_unpack_response(const uint8_t *buf, size_t len,
                            Pm__Response **out, char **why);
int pm_wire_unpack_revision(const uint8_t *buf, size_t len,
                            Pm__Revision **out, char **why);
int pm_wire_unpack_node_status(const uint8_t *buf, size_t len,
                               Pm__NodeStatus **out, char **why);

/* Structural check of a policy already in memory (also used by the unpack
 * functions). Returns PM_OK or PM_EPROTO with *why as above. */
int pm_wire_check_policy(const Pm__Policy *policy, char **why);

/* Packs any message into a new buffer; sets *len. Caller frees. */
uint8_t *pm_wire_pack(const ProtobufCMessage *msg, size_t *len);

#endif
