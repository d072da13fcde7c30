/* fuzz_wire.c - every pm_wire_unpack_* (and pm_wire_check_policy), the one
 * gate between network bytes and privmta messages.
 *
 * Input: one byte that picks the message type (modulo the table below),
 * then the encoded message; fuzz_seeds writes seeds in that form. A
 * message the gate accepts must come out whole again: packed, it is
 * accepted again and packs to the same bytes (what the controller stores
 * and republishes is what it checked). */
#include "pm_error.h"
#include "pm_fuzz.h"
#include "pm_mem.h"
#include "pm_wire.h"

#include <stdlib.h>
#include <string.h>

/* Each entry point behind one signature. Outputs are set only on
 * success (pm_wire.h): *out must still be NULL after a refusal. */
#define S_WRAP(name, fn, type)                                                 \
    static int name(const uint8_t *buf, size_t len, ProtobufCMessage **out,    \
                    char **why)                                                \
    {                                                                          \
        type *m = NULL;                                                        \
        int rc = fn(buf, len, &m, why);                                        \
        if (rc != PM_OK)                                                       \
            PM_FUZZ_REQUIRE(m == NULL);                                        \
        else                                                                   \
            *out = &m->base;                                                   \
        return rc;                                                             \
    }

/* The policy alone: what pm_wire_check_policy sees after the agent's
 * store hands back a Policy it decoded itself. */
static int
s_unpack_policy(const uint8_t *buf, size_t len, Pm__Policy **out, char **why)
{
    Pm__Policy *p = pm__policy__unpack(NULL, len, buf);
    if (!p) {
        *why = pm_strdup("Policy: not a valid protobuf encoding");
        return PM_EPROTO;
    }
    int rc = pm_wire_check_policy(p, why);
    if (rc != PM_OK) {
        pm__policy__free_unpacked(p, NULL);
        return rc;
    }
    *out = p;
    return PM_OK;
}

S_WRAP(s_request, pm_wire_unpack_request, Pm__Request)
S_WRAP(s_response, pm_wire_unpack_response, Pm__Response)
S_WRAP(s_revision, pm_wire_unpack_revision, Pm__Revision)
S_WRAP(s_node_status, pm_wire_unpack_node_status, Pm__NodeStatus)
S_WRAP(s_agent_report, pm_wire_unpack_agent_report, Pm__AgentReport)
S_WRAP(s_publication, pm_wire_unpack_publication, Pm__Publication)
S_WRAP(s_policy, s_unpack_policy, Pm__Policy)
S_WRAP(s_peer_message, pm_wire_unpack_peer_message, Pm__PeerMessage)
S_WRAP(s_fetch_report, pm_wire_unpack_fetch_report, Pm__FetchReport)

/* Indexed by the first input byte; fuzz_seeds.c writes the same order. */
static int (*const s_types[])(const uint8_t *, size_t, ProtobufCMessage **,
                              char **) = {
    s_request,     s_response, s_revision,     s_node_status,  s_agent_report,
    s_publication, s_policy,   s_peer_message, s_fetch_report,
};
#define S_N_TYPES (sizeof s_types / sizeof s_types[0])

int
pm_fuzz_one(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    int (*unpack)(const uint8_t *, size_t, ProtobufCMessage **, char **) =
        s_types[data[0] % S_N_TYPES];
    /* The message on its own heap block, so that ASan sees a read past
     * its end (libFuzzer's buffer has the type byte in front). */
    size_t len = size - 1;
    uint8_t *buf = malloc(len ? len : 1);
    memcpy(buf, data + 1, len);
    ProtobufCMessage *msg = NULL;
    char *why = NULL;
    int rc = unpack(buf, len, &msg, &why);
    free(buf);
    if (rc != PM_OK) {
        PM_FUZZ_REQUIRE(rc == PM_EPROTO && why && *why && !msg);
        free(why);
        return 0;
    }
    PM_FUZZ_REQUIRE(why == NULL && msg != NULL);

    size_t n1 = 0, n2 = 0;
    uint8_t *packed = pm_wire_pack(msg, &n1);
    ProtobufCMessage *again = NULL;
    rc = unpack(packed, n1, &again, &why);
    if (rc != PM_OK)
        pm_fuzz_fail(__FILE__, __LINE__, why);
    uint8_t *repacked = pm_wire_pack(again, &n2);
    PM_FUZZ_REQUIRE(n1 == n2 && memcmp(packed, repacked, n1) == 0);
    free(packed);
    free(repacked);
    protobuf_c_message_free_unpacked(again, NULL);
    protobuf_c_message_free_unpacked(msg, NULL);
    return 0;
}
