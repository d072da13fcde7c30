/* pm_wire.c - unpack, then check every field before anyone else looks.
 *
 * The structural rules (string and list sizes, UTF-8, enum ranges, no unknown
 * fields) are applied by one walk over the protobuf-c descriptors, so a field
 * added to privmta.proto is covered without touching this file. Rules that
 * are about meaning rather than shape (what a request op needs, what a
 * revision number may be) live in the small tables at the end.
 *
 * A policy test (privmta-ctl policy test) travels three ways, each held
 * to its rule (pm_wire.h's list of rules does not name them yet):
 *   - Request POLICY_TEST: a test of 1..PM_WIRE_TEST_MESSAGES_MAX
 *     messages, each with a name and data, PM_WIRE_TEST_BYTES_MAX bytes in
 *     all, 1..PM_WIRE_TEST_RCPTS_MAX recipients, and exactly one of a
 *     candidate policy or a stored revision rev > 0;
 *   - Publication TEST: the same messages and recipients, an id >= 1 and
 *     the trial policy;
 *   - AgentReport TEST_ANSWER: the test_id it answers (>= 1) and at most
 *     PM_WIRE_TEST_RESULTS_MAX results.
 * The envelope (client address and name, HELO, sender, recipients, login)
 * goes into SMTP commands on the node: none of it may hold a control
 * character, so no CR or LF can add a command of its own.
 */
#include "pm_wire.h"

#include "pm_check.h"
#include "pm_error.h"
#include "pm_mem.h"

#include <assert.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Our schema is three levels deep; the cap only guards a future recursive
 * message against unbounded recursion on hostile input, here and in
 * protobuf-c, which has no limit of its own (1.4 recurses once per level):
 * the scan before decoding refuses deeper nesting first. */
#define S_DEPTH_MAX 16

/* Where the walk is, as a stack of field names and list indexes. The text
 * ("Request.edits[2].key") is only built when something fails: formatting
 * it for every field would cost more than the checks themselves. */
typedef struct {
    const char *name;
    size_t index;
    bool indexed;
} s_frame_t;

typedef struct {
    s_frame_t frames[2 * S_DEPTH_MAX + 4];
    int n;
    int depth;
    char *why;
} s_walk_t;

static void
s_path_push(s_walk_t *w, const char *name)
{
    assert(w->n < (int)(sizeof w->frames / sizeof w->frames[0]));
    w->frames[w->n++] = (s_frame_t){.name = name};
}

static void
s_path_pop(s_walk_t *w)
{
    w->n--;
}

static void
s_path_index(s_walk_t *w, size_t index)
{
    w->frames[w->n - 1].index = index;
    w->frames[w->n - 1].indexed = true;
}

static char *
s_path_text(const s_walk_t *w)
{
    char buf[512];
    size_t len = 0;
    for (int i = 0; i < w->n && len < sizeof buf; i++) {
        const s_frame_t *f = &w->frames[i];
        int k = f->indexed ? snprintf(buf + len, sizeof buf - len, "%s%s[%zu]",
                                      i ? "." : "", f->name, f->index)
                           : snprintf(buf + len, sizeof buf - len, "%s%s",
                                      i ? "." : "", f->name);
        if (k < 0)
            break;
        len += (size_t)k;
    }
    /* A truncated path still names where the problem starts. */
    buf[len < sizeof buf ? len : sizeof buf - 1] = '\0';
    return pm_strdup(buf);
}

static int s_fail(s_walk_t *w, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int
s_fail(s_walk_t *w, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *detail = pm_vasprintf(fmt, ap);
    va_end(ap);
    char *path = s_path_text(w);
    free(w->why);
    w->why = pm_asprintf("%s: %s", path, detail);
    free(path);
    free(detail);
    return PM_EPROTO;
}

/* Returns the offset of the first byte that is not part of a well-formed
 * UTF-8 sequence (no overlongs, surrogates or code points past U+10FFFF), or
 * len when the whole string is valid. */
static size_t
s_utf8_bad_at(const uint8_t *s, size_t len)
{
    size_t i = 0;
    while (i < len) {
        uint8_t c = s[i];
        size_t more;
        uint32_t cp, min;
        if (c < 0x80) {
            i++;
            continue;
        }
        if ((c & 0xE0) == 0xC0) {
            more = 1, cp = c & 0x1F, min = 0x80;
        } else if ((c & 0xF0) == 0xE0) {
            more = 2, cp = c & 0x0F, min = 0x800;
        } else if ((c & 0xF8) == 0xF0) {
            more = 3, cp = c & 0x07, min = 0x10000;
        } else {
            return i;
        }
        if (len - i <= more)
            return i;
        for (size_t k = 1; k <= more; k++) {
            if ((s[i + k] & 0xC0) != 0x80)
                return i;
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return i;
        i += more + 1;
    }
    return len;
}

static int
s_check_string(s_walk_t *w, const char *s, bool in_list)
{
    if (!s)
        return in_list ? s_fail(w, "missing item") : PM_OK;
    /* strnlen: an oversized string is rejected without reading all of it. */
    size_t len = strnlen(s, PM_WIRE_STRING_MAX + 1);
    if (len > PM_WIRE_STRING_MAX)
        return s_fail(w, "longer than %d bytes", PM_WIRE_STRING_MAX);
    size_t bad = s_utf8_bad_at((const uint8_t *)s, len);
    if (bad != len)
        return s_fail(w, "not valid UTF-8 at byte %zu", bad);
    return PM_OK;
}

static int
s_check_bytes(s_walk_t *w, const ProtobufCBinaryData *b)
{
    if (b->len > PM_WIRE_CONTENT_MAX)
        return s_fail(w, "%zu bytes, more than %u", b->len,
                      PM_WIRE_CONTENT_MAX);
    if (b->len && !b->data)
        return s_fail(w, "%zu bytes announced, no data", b->len);
    return PM_OK;
}

static int
s_check_enum(s_walk_t *w, const ProtobufCFieldDescriptor *f, int value)
{
    const ProtobufCEnumDescriptor *ed = f->descriptor;
    if (!protobuf_c_enum_descriptor_get_value(ed, value))
        return s_fail(w, "%d is not a value of %s", value, ed->name);
    return PM_OK;
}

static int s_check_message(s_walk_t *w, const ProtobufCMessage *msg);

/* Checks one value of field F stored at MEMBER (the field itself, or one
 * item of a repeated field when IN_LIST). */
static int
s_check_value(s_walk_t *w, const ProtobufCFieldDescriptor *f,
              const void *member, bool in_list)
{
    switch (f->type) {
    case PROTOBUF_C_TYPE_STRING:
        return s_check_string(w, *(const char *const *)member, in_list);
    case PROTOBUF_C_TYPE_BYTES:
        return s_check_bytes(w, member);
    case PROTOBUF_C_TYPE_ENUM:
        return s_check_enum(w, f, *(const int *)member);
    case PROTOBUF_C_TYPE_MESSAGE: {
        const ProtobufCMessage *sub = *(const ProtobufCMessage *const *)member;
        if (!sub)
            return in_list ? s_fail(w, "missing item") : PM_OK;
        if (sub->descriptor != f->descriptor)
            return s_fail(
                w, "not a %s",
                ((const ProtobufCMessageDescriptor *)f->descriptor)->name);
        return s_check_message(w, sub);
    }
    default:
        /* Numbers and bools: any value is structurally fine. */
        return PM_OK;
    }
}

/* Size of one item in the array protobuf-c keeps for a repeated field. */
static size_t
s_item_size(ProtobufCType type)
{
    switch (type) {
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
    case PROTOBUF_C_TYPE_DOUBLE:
        return 8;
    case PROTOBUF_C_TYPE_BOOL:
        return sizeof(protobuf_c_boolean);
    case PROTOBUF_C_TYPE_ENUM:
        return sizeof(int);
    case PROTOBUF_C_TYPE_STRING:
        return sizeof(char *);
    case PROTOBUF_C_TYPE_BYTES:
        return sizeof(ProtobufCBinaryData);
    case PROTOBUF_C_TYPE_MESSAGE:
        return sizeof(void *);
    default:
        return 4;
    }
}

/* The lists that hold one item per enrolled node (or enrolled key, or
 * stored secret: a standby gets them all in one REPLICATE answer). */
static size_t
s_list_max(const ProtobufCMessageDescriptor *d,
           const ProtobufCFieldDescriptor *f)
{
    bool fleet =
        (d == &pm__publication__descriptor &&
         (strcmp(f->name, "members") == 0 ||
          strcmp(f->name, "members_gone") == 0)) ||
        (d == &pm__response__descriptor &&
         (strcmp(f->name, "nodes") == 0 || strcmp(f->name, "keys") == 0 ||
          strcmp(f->name, "secrets") == 0));
    return fleet ? PM_WIRE_NODES_MAX : PM_WIRE_LIST_MAX;
}

static int
s_check_repeated(s_walk_t *w, const ProtobufCMessageDescriptor *d,
                 const char *base, const ProtobufCFieldDescriptor *f)
{
    size_t n = *(const size_t *)(base + f->quantifier_offset);
    const char *items = *(const char *const *)(base + f->offset);
    size_t max = s_list_max(d, f);
    if (n > max)
        return s_fail(w, "%zu items, more than %zu", n, max);
    if (n && !items)
        return s_fail(w, "%zu items announced, no array", n);
    size_t size = s_item_size(f->type);
    for (size_t k = 0; k < n; k++) {
        s_path_index(w, k);
        int rc = s_check_value(w, f, items + k * size, true);
        if (rc != PM_OK)
            return rc;
    }
    return PM_OK;
}

/* proto3 fields are always "present" (pointer fields may be NULL); oneofs and
 * proto2 optionals carry a case or has_ word that says whether to look. */
static bool
s_field_present(const char *base, const ProtobufCFieldDescriptor *f)
{
    if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF)
        return *(const uint32_t *)(base + f->quantifier_offset) == f->id;
    if (f->label == PROTOBUF_C_LABEL_OPTIONAL &&
        f->type != PROTOBUF_C_TYPE_STRING && f->type != PROTOBUF_C_TYPE_MESSAGE)
        return *(const protobuf_c_boolean *)(base + f->quantifier_offset);
    return true;
}

static int s_check_rules(s_walk_t *w, const ProtobufCMessage *msg);

static int
s_check_message(s_walk_t *w, const ProtobufCMessage *msg)
{
    const ProtobufCMessageDescriptor *d = msg->descriptor;
    const char *base = (const char *)msg;
    if (++w->depth > S_DEPTH_MAX)
        return s_fail(w, "nested more than %d deep", S_DEPTH_MAX);
    /* Unknown fields would be stored and republished without anyone having
     * checked them; and a node that cannot read a policy setting must say so
     * rather than silently not enforce it. */
    if (msg->n_unknown_fields)
        return s_fail(w, "unknown field %" PRIu32 " (sent by a newer peer?)",
                      msg->unknown_fields[0].tag);
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        int rc = PM_OK;
        s_path_push(w, f->name);
        if (f->label == PROTOBUF_C_LABEL_REPEATED)
            rc = s_check_repeated(w, d, base, f);
        else if (s_field_present(base, f))
            rc = s_check_value(w, f, base + f->offset, false);
        if (rc != PM_OK)
            return rc;
        s_path_pop(w);
    }
    int rc = s_check_rules(w, msg);
    w->depth--;
    return rc;
}

/* ---- Rules about meaning, per message type ---------------------------- */

static int s_fail_field(s_walk_t *w, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int
s_fail_field(s_walk_t *w, const char *field, const char *fmt, ...)
{
    s_path_push(w, field);
    va_list ap;
    va_start(ap, fmt);
    char *detail = pm_vasprintf(fmt, ap);
    va_end(ap);
    int rc = s_fail(w, "%s", detail);
    free(detail);
    return rc;
}

#define S_NEED_POLICY 0x1u
#define S_NEED_EDITS 0x2u
#define S_NEED_REV 0x4u
#define S_NEED_REV_B 0x8u
#define S_NEED_NODE 0x10u
#define S_NEED_KEY 0x20u
#define S_NEED_DOMAIN 0x40u
#define S_NEED_DKIM_KEY 0x80u
#define S_NEED_ROLLOUT 0x100u
#define S_NEED_WHY 0x200u
#define S_NEED_TEST 0x400u

/* What each request op needs. An op missing here is refused: NONE, and a
 * new op until someone decides what it needs (test_wire checks that every
 * declared op but NONE is listed). */
static const struct {
    Pm__Request__Op op;
    unsigned needs;
} s_op_needs[] = {
    {PM__REQUEST__OP__PUSH, S_NEED_POLICY},
    {PM__REQUEST__OP__SET, S_NEED_EDITS},
    {PM__REQUEST__OP__SHOW, 0},
    {PM__REQUEST__OP__HISTORY, 0},
    {PM__REQUEST__OP__DIFF, S_NEED_REV | S_NEED_REV_B},
    {PM__REQUEST__OP__ROLLBACK, S_NEED_REV},
    {PM__REQUEST__OP__PING, 0},
    {PM__REQUEST__OP__NODES, 0},
    {PM__REQUEST__OP__NODE_ADD, S_NEED_NODE | S_NEED_KEY},
    {PM__REQUEST__OP__NODE_REMOVE, S_NEED_NODE},
    {PM__REQUEST__OP__DKIM_ADD, S_NEED_DOMAIN | S_NEED_DKIM_KEY},
    {PM__REQUEST__OP__DKIM_REMOVE, S_NEED_DOMAIN},
    {PM__REQUEST__OP__ROLLOUT_START, S_NEED_ROLLOUT},
    {PM__REQUEST__OP__ROLLOUT_STATUS, 0},
    {PM__REQUEST__OP__ROLLOUT_PAUSE, 0},
    {PM__REQUEST__OP__ROLLOUT_RESUME, 0},
    {PM__REQUEST__OP__ROLLOUT_ABORT, 0},
    {PM__REQUEST__OP__REPLICATE, 0},
    {PM__REQUEST__OP__WHY, S_NEED_WHY},
    {PM__REQUEST__OP__POLICY_TEST, S_NEED_TEST},
    {PM__REQUEST__OP__SIGNATURES_CHECK, 0},
};

/* A WHY query names something to look for, and asks for a bounded count. */
static bool
s_why_ok(const Pm__WhyQuery *q)
{
    return q && (*q->queue_id || *q->message_id || *q->sender) && q->max >= 1 &&
           q->max <= PM_WIRE_WHY_MAX && q->since >= 0;
}

/* The index of the first control character (C0 or DEL) in S, or -1. */
static long
s_control_at(const char *s)
{
    for (const char *p = s; p && *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            return p - s;
    return -1;
}

/* What is wrong with VALUE of a test, which goes into an SMTP command on
 * the node (XCLIENT, EHLO, MAIL FROM, RCPT TO) and is an argument of the
 * SMTP client the root agent runs there (swaks) on the way; NULL when
 * nothing is. BUF holds the text when it is made. */
static const char *
s_smtp_value_problem(const char *value, char *buf, size_t size)
{
    long at = s_control_at(value);
    if (at >= 0) {
        snprintf(buf, size,
                 "a control character at byte %ld (it goes into an SMTP "
                 "command)",
                 at);
        return buf;
    }
    /* swaks would take it for an option of its own ("--output-file=..."
     * wrote a file as root); no name or address starts with one */
    if (*value == '-')
        return "starts with '-' (it is an argument of the SMTP client the "
               "node runs)";
    return NULL;
}

static int
s_test_smtp_value(s_walk_t *w, const char *field, const char *value)
{
    char buf[128];
    const char *problem = s_smtp_value_problem(value, buf, sizeof buf);
    return problem ? s_fail_field(w, field, "%s", problem) : PM_OK;
}

/* What a test holds wherever it travels, the walk being at the test: its
 * messages, named and not empty, and an envelope fit for SMTP. */
static int
s_test_body(s_walk_t *w, const Pm__PolicyTest *t)
{
    if (t->n_messages < 1 || t->n_messages > PM_WIRE_TEST_MESSAGES_MAX)
        return s_fail_field(w, "messages", "%zu messages; a test holds 1 to %d",
                            t->n_messages, PM_WIRE_TEST_MESSAGES_MAX);
    size_t total = 0;
    for (size_t k = 0; k < t->n_messages; k++) {
        const Pm__TestMessage *m = t->messages[k];
        const char *empty = !*m->name ? "name" : !m->data.len ? "data" : NULL;
        if (empty) {
            s_path_push(w, "messages");
            s_path_index(w, k);
            return s_fail_field(w, empty, "empty");
        }
        total += m->data.len;
    }
    if (total > PM_WIRE_TEST_BYTES_MAX)
        return s_fail_field(w, "messages", "%zu bytes in all, more than %u",
                            total, PM_WIRE_TEST_BYTES_MAX);
    if (t->n_rcpts < 1 || t->n_rcpts > PM_WIRE_TEST_RCPTS_MAX)
        return s_fail_field(w, "rcpts", "%zu recipients; a test has 1 to %d",
                            t->n_rcpts, PM_WIRE_TEST_RCPTS_MAX);
    for (size_t k = 0; k < t->n_rcpts; k++) {
        char buf[128];
        const char *problem =
            *t->rcpts[k] ? s_smtp_value_problem(t->rcpts[k], buf, sizeof buf)
                         : "empty";
        if (problem) {
            s_path_push(w, "rcpts");
            s_path_index(w, k);
            return s_fail(w, "%s", problem);
        }
    }
    int rc = s_test_smtp_value(w, "client_addr", t->client_addr);
    if (rc == PM_OK)
        rc = s_test_smtp_value(w, "client_name", t->client_name);
    if (rc == PM_OK)
        rc = s_test_smtp_value(w, "helo", t->helo);
    if (rc == PM_OK)
        rc = s_test_smtp_value(w, "sender", t->sender);
    if (rc == PM_OK)
        rc = s_test_smtp_value(w, "auth", t->auth);
    return rc;
}

/* POLICY_TEST: the test, and what to test: a candidate policy or a
 * stored revision, exactly one. */
static int
s_test_request(s_walk_t *w, const Pm__PolicyTest *t, const char *op)
{
    if (!t)
        return s_fail_field(w, "test", "required by %s", op);
    s_path_push(w, "test");
    if (!t->candidate == !t->rev)
        return s_fail(w,
                      "%s needs a candidate policy or a revision rev > 0, "
                      "exactly one of them",
                      op);
    int rc = s_test_body(w, t);
    if (rc == PM_OK)
        s_path_pop(w);
    return rc;
}

/* "postfix", "milter" or "all": what a restart can be of. */
static bool
s_is_service(const char *s)
{
    return s && (strcmp(s, "postfix") == 0 || strcmp(s, "milter") == 0 ||
                 strcmp(s, "all") == 0);
}

static int
s_rule_request_needs(s_walk_t *w, const Pm__Request *req, const char *op,
                     unsigned needs)
{
    if ((needs & S_NEED_POLICY) && !req->policy)
        return s_fail_field(w, "policy", "required by %s", op);
    if ((needs & S_NEED_EDITS) && req->n_edits == 0)
        return s_fail_field(w, "edits", "%s needs at least one edit", op);
    if ((needs & S_NEED_REV) && req->rev == 0)
        return s_fail_field(w, "rev", "%s needs a revision > 0", op);
    if ((needs & S_NEED_REV_B) && req->rev_b == 0)
        return s_fail_field(w, "rev_b", "%s needs a revision > 0", op);
    if ((needs & S_NEED_NODE) && !*req->node)
        return s_fail_field(w, "node", "%s needs a node name", op);
    /* a CURVE public key in Z85 is 40 characters */
    if ((needs & S_NEED_KEY) && strlen(req->public_key) != 40)
        return s_fail_field(w, "public_key", "%s needs a 40-character Z85 key",
                            op);
    if ((needs & S_NEED_DOMAIN) && !*req->domain)
        return s_fail_field(w, "domain", "%s needs a domain", op);
    if ((needs & S_NEED_DKIM_KEY) && (!*req->selector || !req->private_key.len))
        return s_fail_field(w, "private_key", "%s needs a selector and a key",
                            op);
    if ((needs & S_NEED_WHY) && !s_why_ok(req->why))
        return s_fail_field(w, "why",
                            "%s needs a queue id, a Message-ID or a sender, "
                            "and max 1..%d",
                            op, PM_WIRE_WHY_MAX);
    if (needs & S_NEED_TEST)
        return s_test_request(w, req->test, op);
    if ((needs & S_NEED_ROLLOUT) &&
        (!req->rollout_spec || !s_is_service(req->rollout_spec->service)))
        return s_fail_field(w, "rollout_spec",
                            "%s needs a spec whose service is postfix, "
                            "milter or all",
                            op);
    return PM_OK;
}

static int
s_rule_request(s_walk_t *w, const ProtobufCMessage *msg)
{
    const Pm__Request *req = (const Pm__Request *)msg;
    if (req->expect_rev < -1)
        return s_fail_field(w, "expect_rev", "%" PRId64 " is below -1",
                            req->expect_rev);
    for (size_t k = 0; k < req->n_edits; k++) {
        const char *key = req->edits[k]->key;
        if (!key || !*key) {
            s_path_push(w, "edits");
            s_path_index(w, k);
            s_path_push(w, "key");
            return s_fail(w, "empty");
        }
    }
    const ProtobufCEnumValue *v = protobuf_c_enum_descriptor_get_value(
        &pm__request__op__descriptor, req->op);
    for (size_t i = 0; i < sizeof s_op_needs / sizeof s_op_needs[0]; i++) {
        if (s_op_needs[i].op == req->op)
            return s_rule_request_needs(w, req, v->name, s_op_needs[i].needs);
    }
    return s_fail_field(w, "op", "%s is not a request", v->name);
}

static bool
s_is_sha256_hex(const char *s)
{
    if (!s || strlen(s) != 64)
        return false;
    for (; *s; s++) {
        if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f')))
            return false;
    }
    return true;
}

static int
s_rule_revision(s_walk_t *w, const ProtobufCMessage *msg)
{
    const Pm__Revision *rev = (const Pm__Revision *)msg;
    if (rev->number < 1)
        return s_fail_field(w, "number", "0; revisions start at 1");
    if (rev->parent >= rev->number)
        return s_fail_field(w, "parent",
                            "%" PRIu64 " is not below number %" PRIu64,
                            rev->parent, rev->number);
    if (rev->rollback_of >= rev->number)
        return s_fail_field(w, "rollback_of",
                            "%" PRIu64 " is not below number %" PRIu64,
                            rev->rollback_of, rev->number);
    if (!s_is_sha256_hex(rev->digest))
        return s_fail_field(w, "digest", "not 64 lowercase hex characters");
    return PM_OK;
}

static int
s_rule_node_status(s_walk_t *w, const ProtobufCMessage *msg)
{
    const Pm__NodeStatus *st = (const Pm__NodeStatus *)msg;
    if (!st->name || !*st->name)
        return s_fail_field(w, "name", "empty");
    return PM_OK;
}

/* A delta names the epoch it applies to; names gone are names. */
static int
s_members_ok(s_walk_t *w, const Pm__Publication *pub)
{
    if (!pub->members_base && pub->n_members_gone)
        return s_fail_field(w, "members_gone",
                            "names gone in a whole list (members_base 0)");
    if (pub->members_base && pub->members_epoch <= pub->members_base)
        return s_fail_field(w, "members_epoch",
                            "a delta must lead past its base epoch");
    for (size_t i = 0; i < pub->n_members_gone; i++)
        if (!*pub->members_gone[i])
            return s_fail_field(w, "members_gone", "an empty name");
    return PM_OK;
}

static int
s_rule_publication(s_walk_t *w, const ProtobufCMessage *msg)
{
    const Pm__Publication *pub = (const Pm__Publication *)msg;
    if (pub->kind == PM__PUBLICATION__KIND__HEARTBEAT ||
        pub->kind == PM__PUBLICATION__KIND__CHECK)
        return PM_OK;
    if (pub->kind == PM__PUBLICATION__KIND__MEMBERS)
        return s_members_ok(w, pub);
    if (pub->kind == PM__PUBLICATION__KIND__RESTART) {
        if (!pub->restart || pub->restart->rollout == 0 ||
            !(s_is_service(pub->restart->service) ||
              !strcmp(pub->restart->service, PM_WIRE_SERVICE_PROBE)) ||
            pub->restart->drain_ms < 0 ||
            pub->restart->drain_ms > PM_WIRE_DRAIN_MS_MAX)
            return s_fail_field(w, "restart",
                                "a restart needs an order: rollout >= 1, "
                                "service postfix, milter, all or probe, "
                                "drain_ms 0 to %d",
                                PM_WIRE_DRAIN_MS_MAX);
        return PM_OK;
    }
    if (pub->kind == PM__PUBLICATION__KIND__WHY) {
        if (!s_why_ok(pub->why) || pub->why->id == 0)
            return s_fail_field(w, "why",
                                "a why needs an id and a query naming a queue "
                                "id, a Message-ID or a sender, max 1..%d",
                                PM_WIRE_WHY_MAX);
        return PM_OK;
    }
    if (pub->kind == PM__PUBLICATION__KIND__TEST) {
        if (!pub->test || pub->test->id == 0 || !pub->test->trial)
            return s_fail_field(w, "test",
                                "a test needs an id >= 1 and the trial "
                                "policy");
        s_path_push(w, "test");
        int rc = s_test_body(w, pub->test);
        if (rc == PM_OK)
            s_path_pop(w);
        return rc;
    }
    if (!pub->revision || !pub->revision->policy)
        return s_fail_field(w, "revision",
                            "an update or snapshot needs the revision with "
                            "its policy");
    if (pub->revision->number != pub->head)
        return s_fail_field(
            w, "head", "%" PRIu64 " is not the revision sent (%" PRIu64 ")",
            pub->head, pub->revision->number);
    return PM_OK;
}

/* FIELD holds VALUE, checked by CHECK (pm_check_database_name / _file):
 * nothing a peer sends can name a path. */
static int
s_checked(s_walk_t *w, const char *field, const char *value,
          char *(*check)(const char *))
{
    char *bad = check(value);
    if (!bad)
        return PM_OK;
    int rc = s_fail_field(w, field, "%s", bad);
    free(bad);
    return rc;
}

static int
s_rule_signature_db(s_walk_t *w, const ProtobufCMessage *msg)
{
    const Pm__SignatureDb *db = (const Pm__SignatureDb *)msg;
    return s_checked(w, "name", db->name, pm_check_database_name);
}

static int
s_rule_member(s_walk_t *w, const ProtobufCMessage *msg)
{
    const Pm__Member *m = (const Pm__Member *)msg;
    if (!*m->name)
        return s_fail_field(w, "name", "empty");
    if (strlen(m->public_key) != 40)
        return s_fail_field(w, "public_key",
                            "not a Z85 CURVE key (40 "
                            "characters)");
    return PM_OK;
}

static int
s_rule_peer_message(s_walk_t *w, const ProtobufCMessage *msg)
{
    const Pm__PeerMessage *pm = (const Pm__PeerMessage *)msg;
    if (pm->kind != PM__PEER_MESSAGE__KIND__GET &&
        pm->kind != PM__PEER_MESSAGE__KIND__CHUNK)
        return PM_OK;
    uint32_t cdiff = 0;
    char *bad = pm_check_cdiff_file(pm->file, &cdiff);
    int rc = PM_OK;
    if (bad)
        rc = s_checked(w, "file", pm->file, pm_check_database_file);
    free(bad);
    if (rc != PM_OK)
        return rc;
    if (!pm->version)
        return s_fail_field(w, "version", "0; a file is asked for by version");
    if (cdiff && cdiff != pm->version)
        return s_fail_field(w, "version",
                            "%" PRIu32 " for %s; a CDIFF is asked for by "
                            "the version it makes",
                            pm->version, pm->file);
    if (pm->kind == PM__PEER_MESSAGE__KIND__GET)
        return PM_OK;
    if (pm->data.len > PM_WIRE_CHUNK_MAX)
        return s_fail_field(w, "data", "%zu bytes; a chunk holds at most %u",
                            pm->data.len, PM_WIRE_CHUNK_MAX);
    uint64_t max = cdiff ? PM_WIRE_CDIFF_MAX : PM_WIRE_DATABASE_MAX;
    if (pm->total > max)
        return s_fail_field(w, "total",
                            "%" PRIu64 " bytes; a %s is at most %" PRIu64,
                            pm->total, cdiff ? "CDIFF" : "database file", max);
    if (pm->offset > pm->total || pm->data.len > pm->total - pm->offset)
        return s_fail_field(w, "offset",
                            "%" PRIu64 " + %zu bytes is past the file's "
                            "%" PRIu64,
                            pm->offset, pm->data.len, pm->total);
    return PM_OK;
}

static int
s_rule_fetch_result(s_walk_t *w, const ProtobufCMessage *msg)
{
    const Pm__FetchResult *r = (const Pm__FetchResult *)msg;
    if (r->err < PM_OK || r->err > PM_EFULL)
        return s_fail_field(w, "err", "%d is not an error code", r->err);
    return s_checked(w, "name", r->name, pm_check_database_name);
}

static int
s_rule_verify_request(s_walk_t *w, const ProtobufCMessage *msg)
{
    const Pm__VerifyRequest *r = (const Pm__VerifyRequest *)msg;
    if (r->path[0] != '/')
        return s_fail_field(w, "path", "not an absolute path");
    return s_checked(w, "name", r->name, pm_check_database_name);
}

static int
s_rule_agent_report(s_walk_t *w, const ProtobufCMessage *msg)
{
    const Pm__AgentReport *r = (const Pm__AgentReport *)msg;
    if (r->kind == PM__AGENT_REPORT__KIND__WHY_ANSWER &&
        (r->why_id == 0 || r->n_why > PM_WIRE_WHY_MAX))
        return s_fail_field(w, "why_id",
                            "an answer names its query and holds at most %d "
                            "records",
                            PM_WIRE_WHY_MAX);
    if (r->kind == PM__AGENT_REPORT__KIND__TEST_ANSWER && r->test_id == 0)
        return s_fail_field(w, "test_id", "0; an answer names its test");
    if (r->kind == PM__AGENT_REPORT__KIND__TEST_ANSWER &&
        r->n_test_results > PM_WIRE_TEST_RESULTS_MAX)
        return s_fail_field(w, "test_results", "%zu results, more than %d",
                            r->n_test_results, PM_WIRE_TEST_RESULTS_MAX);
    return PM_OK;
}

/* Applied wherever the message appears, top level or nested (a Response's
 * history is held to the same rules as a Revision read alone). */
static const struct {
    const ProtobufCMessageDescriptor *desc;
    int (*check)(s_walk_t *w, const ProtobufCMessage *msg);
} s_rules[] = {
    {&pm__request__descriptor, s_rule_request},
    {&pm__revision__descriptor, s_rule_revision},
    {&pm__node_status__descriptor, s_rule_node_status},
    {&pm__publication__descriptor, s_rule_publication},
    {&pm__signature_db__descriptor, s_rule_signature_db},
    {&pm__member__descriptor, s_rule_member},
    {&pm__peer_message__descriptor, s_rule_peer_message},
    {&pm__fetch_result__descriptor, s_rule_fetch_result},
    {&pm__verify_request__descriptor, s_rule_verify_request},
    {&pm__agent_report__descriptor, s_rule_agent_report},
};

static int
s_check_rules(s_walk_t *w, const ProtobufCMessage *msg)
{
    for (size_t i = 0; i < sizeof s_rules / sizeof s_rules[0]; i++) {
        if (s_rules[i].desc == msg->descriptor)
            return s_rules[i].check(w, msg);
    }
    return PM_OK;
}

/* ---- Before decoding: the raw bytes, read once ------------------------ */

/* protobuf-c allocates every list item, string and nested message apart,
 * and a record of every field it meets before that: 1 MiB of empty items
 * in one list decodes to ~32 MiB in hundreds of ms, to be refused after.
 * So the sizes are checked while reading the encoding, against the
 * descriptors, allocating nothing per item: a tally per field of each
 * message being read, and the path. Linear: each byte is read at one
 * level only (a nested message is skipped by its length above), and
 * starting a message costs nothing whatever its number of fields.
 *
 * Refused: what protobuf-c would refuse too (a varint or length running
 * past the end, a wire type the field cannot have), fields the .proto does
 * not declare, a field that is not repeated given twice (protobuf-c would
 * merge the two, so lists inside a message given twice add up past what
 * either holds), lists longer than s_list_max, nesting deeper than
 * S_DEPTH_MAX. A packed run counts its elements, and an empty run one
 * item: protobuf-c keeps a record of every run. */

/* What the scan has seen of one field in the message being read. GEN
 * names that message: tallies are reused without clearing, and one whose
 * GEN is another message's counts as empty. */
typedef struct {
    uint64_t gen;
    size_t n; /* items (repeated) or occurrences */
    size_t max;
} s_tally_t;

typedef struct {
    s_walk_t w;
    const uint8_t *start; /* of the input, for byte offsets */
    s_tally_t *tally;     /* the fields of each message being read, a stack */
    size_t used, cap;
    uint64_t gen;
    size_t items, items_max; /* list items in the whole message, and cap */
} s_scan_t;

/* The list items a whole message of type D may hold: each list has its
 * own limit, but lists inside lists multiply (127 why records of 4096
 * recipients each fit in a 1 MiB report). What agents, peers and the
 * helpers send gets PM_WIRE_ITEMS_MAX in all (a real one holds at most
 * ~10000: 100 why records of 100 recipients); a controller's answers
 * carry a fleet and are bounded by their lists alone. */
static size_t
s_items_max(const ProtobufCMessageDescriptor *d)
{
    return d == &pm__agent_report__descriptor ||
                   d == &pm__peer_message__descriptor ||
                   d == &pm__fetch_report__descriptor ||
                   d == &pm__verify_request__descriptor
               ? PM_WIRE_ITEMS_MAX
               : SIZE_MAX;
}

/* One message being read: its type and where its tallies start. */
typedef struct {
    const ProtobufCMessageDescriptor *d;
    size_t base;
    uint64_t gen;
} s_body_t;

typedef struct {
    const uint8_t *at, *end;
} s_reader_t;

static int
s_malformed(s_scan_t *s, const uint8_t *at, const char *what)
{
    return s_fail(&s->w, "not a valid protobuf encoding (%s at byte %zu)", what,
                  (size_t)(at - s->start));
}

/* A varint of at most 10 bytes, as protobuf-c reads them. */
static bool
s_read_varint(s_reader_t *r, uint64_t *value)
{
    uint64_t v = 0;
    for (size_t i = 0; i < 10 && i < (size_t)(r->end - r->at); i++) {
        v |= (uint64_t)(r->at[i] & 0x7f) << (7 * i);
        if (!(r->at[i] & 0x80)) {
            r->at += i + 1;
            *value = v;
            return true;
        }
    }
    return false;
}

/* Moves R past one value of wire type WIRE and sets *V to its bytes (the
 * content of a length-delimited one). Returns what is wrong, or NULL. */
static const char *
s_read_value(s_reader_t *r, unsigned wire, s_reader_t *v)
{
    uint64_t n = 0;
    v->at = r->at;
    switch (wire) {
    case PROTOBUF_C_WIRE_TYPE_VARINT:
        if (!s_read_varint(r, &n))
            return "a varint cut short";
        v->end = r->at;
        return NULL;
    case PROTOBUF_C_WIRE_TYPE_64BIT:
        n = 8;
        break;
    case PROTOBUF_C_WIRE_TYPE_32BIT:
        n = 4;
        break;
    case PROTOBUF_C_WIRE_TYPE_LENGTH_PREFIXED:
        if (!s_read_varint(r, &n))
            return "a length cut short";
        v->at = r->at;
        break;
    default:
        return "a wire type protobuf-c does not read";
    }
    if (n > (uint64_t)(r->end - r->at))
        return wire == PROTOBUF_C_WIRE_TYPE_LENGTH_PREFIXED
                   ? "a length past the end"
                   : "a value cut short";
    r->at += n;
    v->end = r->at;
    return NULL;
}

/* The wire type of one value of TYPE (a packed run aside). */
static unsigned
s_wire_type(ProtobufCType type)
{
    switch (type) {
    case PROTOBUF_C_TYPE_SFIXED32:
    case PROTOBUF_C_TYPE_FIXED32:
    case PROTOBUF_C_TYPE_FLOAT:
        return PROTOBUF_C_WIRE_TYPE_32BIT;
    case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_FIXED64:
    case PROTOBUF_C_TYPE_DOUBLE:
        return PROTOBUF_C_WIRE_TYPE_64BIT;
    case PROTOBUF_C_TYPE_STRING:
    case PROTOBUF_C_TYPE_BYTES:
    case PROTOBUF_C_TYPE_MESSAGE:
        return PROTOBUF_C_WIRE_TYPE_LENGTH_PREFIXED;
    default:
        return PROTOBUF_C_WIRE_TYPE_VARINT;
    }
}

/* Counts the elements of the packed run V of numbers of TYPE into *N, as
 * protobuf-c does before allocating them (a bool per byte). False when the
 * run does not divide into whole elements. */
static bool
s_packed_count(ProtobufCType type, s_reader_t v, size_t *n)
{
    size_t len = (size_t)(v.end - v.at);
    uint64_t ignored;
    switch (s_wire_type(type)) {
    case PROTOBUF_C_WIRE_TYPE_32BIT:
        *n = len / 4;
        return len % 4 == 0;
    case PROTOBUF_C_WIRE_TYPE_64BIT:
        *n = len / 8;
        return len % 8 == 0;
    default:
        if (type == PROTOBUF_C_TYPE_BOOL) {
            *n = len;
            return true;
        }
        for (*n = 0; v.at < v.end; ++*n) {
            if (!s_read_varint(&v, &ignored))
                return false;
        }
        return true;
    }
}

/* The tally of field F of the message B, empty if B has not seen F yet.
 * It moves when the stack grows: not to be used across a nested scan. */
static s_tally_t *
s_tally_of(s_scan_t *s, const s_body_t *b, const ProtobufCFieldDescriptor *f)
{
    s_tally_t *t = &s->tally[b->base + (size_t)(f - b->d->fields)];
    if (t->gen != b->gen)
        *t = (s_tally_t){.gen = b->gen};
    return t;
}

static int s_scan_message(s_scan_t *s, const ProtobufCMessageDescriptor *d,
                          s_reader_t r);

/* One record of the repeated field F of B: one item, or a packed run. */
static int
s_scan_item(s_scan_t *s, const s_body_t *b, const ProtobufCFieldDescriptor *f,
            unsigned wire, s_reader_t v, const uint8_t *key_at)
{
    size_t items = 1;
    if (wire != s_wire_type(f->type)) {
        if (wire != PROTOBUF_C_WIRE_TYPE_LENGTH_PREFIXED)
            return s_malformed(s, key_at, "a wire type the field cannot have");
        if (!s_packed_count(f->type, v, &items))
            return s_malformed(s, key_at, "a packed run cut short");
        if (!items)
            items = 1; /* protobuf-c keeps a record of an empty run too */
    }
    s_tally_t *t = s_tally_of(s, b, f);
    if (!t->n)
        t->max = s_list_max(b->d, f);
    if (items > t->max - t->n)
        return s_fail(&s->w, "more than %zu items", t->max);
    if (items > s->items_max - s->items)
        return s_fail(&s->w, "more than %zu list items in the whole message",
                      s->items_max);
    t->n += items;
    s->items += items;
    if (f->type != PROTOBUF_C_TYPE_MESSAGE)
        return PM_OK;
    s_path_index(&s->w, t->n - 1);
    return s_scan_message(s, f->descriptor, v);
}

/* The one value of the field F of B, which is not repeated. */
static int
s_scan_once(s_scan_t *s, const s_body_t *b, const ProtobufCFieldDescriptor *f,
            unsigned wire, s_reader_t v, const uint8_t *key_at)
{
    if (s_tally_of(s, b, f)->n++)
        return s_fail(&s->w, "given twice in one message (not a repeated "
                             "field)");
    if (wire != s_wire_type(f->type))
        return s_malformed(s, key_at, "a wire type the field cannot have");
    if (f->type != PROTOBUF_C_TYPE_MESSAGE)
        return PM_OK;
    return s_scan_message(s, f->descriptor, v);
}

/* The field (key and value) at R in the message B. */
static int
s_scan_field(s_scan_t *s, const s_body_t *b, s_reader_t *r)
{
    const uint8_t *key_at = r->at;
    uint64_t key = 0;
    if (!s_read_varint(r, &key))
        return s_malformed(s, key_at, "a field key cut short");
    /* 0 is no field number, and none is above 2^29 - 1 */
    if (key >> 3 == 0 || key >> 3 > 0x1fffffff)
        return s_malformed(s, key_at, "a field number out of range");
    const ProtobufCFieldDescriptor *f =
        protobuf_c_message_descriptor_get_field(b->d, (unsigned)(key >> 3));
    if (!f)
        return s_fail(&s->w,
                      "unknown field %" PRIu64 " (sent by a newer peer?)",
                      key >> 3);
    s_path_push(&s->w, f->name);
    unsigned wire = (unsigned)(key & 7);
    s_reader_t v;
    const char *bad = s_read_value(r, wire, &v);
    if (bad)
        return s_malformed(s, key_at, bad);
    int rc = f->label == PROTOBUF_C_LABEL_REPEATED
                 ? s_scan_item(s, b, f, wire, v, key_at)
                 : s_scan_once(s, b, f, wire, v, key_at);
    if (rc == PM_OK)
        s_path_pop(&s->w);
    return rc;
}

/* Room for N more tallies; new ones are of no message (gen 0). */
static void
s_tally_reserve(s_scan_t *s, size_t n)
{
    if (s->used + n <= s->cap)
        return;
    size_t cap = 2 * (s->used + n);
    s->tally = pm_realloc(s->tally, cap * sizeof *s->tally);
    memset(s->tally + s->cap, 0, (cap - s->cap) * sizeof *s->tally);
    s->cap = cap;
}

/* The message of type D whose encoding is R, the path naming it. */
static int
s_scan_message(s_scan_t *s, const ProtobufCMessageDescriptor *d, s_reader_t r)
{
    if (++s->w.depth > S_DEPTH_MAX)
        return s_fail(&s->w, "nested more than %d deep", S_DEPTH_MAX);
    s_tally_reserve(s, d->n_fields);
    s_body_t b = {.d = d, .base = s->used, .gen = ++s->gen};
    s->used += d->n_fields;
    int rc = PM_OK;
    while (rc == PM_OK && r.at < r.end)
        rc = s_scan_field(s, &b, &r);
    s->used = b.base;
    s->w.depth--;
    return rc;
}

int
pm_wire_scan(const ProtobufCMessageDescriptor *d, const uint8_t *buf,
             size_t len, char **why)
{
    static const uint8_t empty[1];
    assert(d && (buf || !len));
    s_scan_t s = {.start = len ? buf : empty, .items_max = s_items_max(d)};
    s_path_push(&s.w, d->short_name);
    int rc = s_scan_message(&s, d, (s_reader_t){s.start, s.start + len});
    free(s.tally);
    if (rc != PM_OK && why)
        *why = s.w.why;
    else
        free(s.w.why);
    return rc;
}

/* ---- Public API ------------------------------------------------------- */

static int
s_check(const ProtobufCMessage *msg, char **why)
{
    s_walk_t w = {.n = 0, .depth = 0, .why = NULL};
    s_path_push(&w, msg->descriptor->short_name);
    int rc = s_check_message(&w, msg);
    if (rc != PM_OK && why)
        *why = w.why;
    else
        free(w.why);
    return rc;
}

static int
s_unpack(const ProtobufCMessageDescriptor *d, const uint8_t *buf, size_t len,
         ProtobufCMessage **out, char **why)
{
    static const uint8_t empty[1];
    assert(out);
    /* checked before decoding, which is where a big message costs */
    unsigned max = d == &pm__agent_report__descriptor     ? PM_WIRE_REPORT_MAX
                   : d == &pm__peer_message__descriptor   ? PM_WIRE_PEER_MAX
                   : d == &pm__fetch_report__descriptor   ? PM_WIRE_FETCH_MAX
                   : d == &pm__verify_request__descriptor ? PM_WIRE_FETCH_MAX
                                                          : PM_WIRE_MESSAGE_MAX;
    if (len > max || (len && !buf)) {
        if (why)
            *why = pm_asprintf("%s: %zu bytes, more than %u or missing",
                               d->short_name, len, max);
        return PM_EPROTO;
    }
    /* every list size, while reading: decoding is where items cost */
    if (pm_wire_scan(d, buf, len, why) != PM_OK)
        return PM_EPROTO;
    ProtobufCMessage *msg =
        protobuf_c_message_unpack(d, NULL, len, len ? buf : empty);
    if (!msg) {
        if (why)
            *why =
                pm_asprintf("%s: not a valid protobuf encoding", d->short_name);
        return PM_EPROTO;
    }
    int rc = s_check(msg, why);
    if (rc != PM_OK) {
        protobuf_c_message_free_unpacked(msg, NULL);
        return rc;
    }
    *out = msg;
    return PM_OK;
}

/* One typed entry point per message; the checks are all in s_unpack. */
#define S_UNPACK_AS(fn, type, desc)                                            \
    int fn(const uint8_t *buf, size_t len, type **out, char **why)             \
    {                                                                          \
        ProtobufCMessage *msg = NULL;                                          \
        int rc = s_unpack(&desc, buf, len, &msg, why);                         \
        if (rc == PM_OK)                                                       \
            *out = (type *)msg;                                                \
        return rc;                                                             \
    }

S_UNPACK_AS(pm_wire_unpack_request, Pm__Request, pm__request__descriptor)
S_UNPACK_AS(pm_wire_unpack_response, Pm__Response, pm__response__descriptor)
S_UNPACK_AS(pm_wire_unpack_revision, Pm__Revision, pm__revision__descriptor)
S_UNPACK_AS(pm_wire_unpack_node_status, Pm__NodeStatus,
            pm__node_status__descriptor)
S_UNPACK_AS(pm_wire_unpack_agent_report, Pm__AgentReport,
            pm__agent_report__descriptor)
S_UNPACK_AS(pm_wire_unpack_publication, Pm__Publication,
            pm__publication__descriptor)
S_UNPACK_AS(pm_wire_unpack_peer_message, Pm__PeerMessage,
            pm__peer_message__descriptor)
S_UNPACK_AS(pm_wire_unpack_fetch_report, Pm__FetchReport,
            pm__fetch_report__descriptor)
S_UNPACK_AS(pm_wire_unpack_verify_request, Pm__VerifyRequest,
            pm__verify_request__descriptor)

int
pm_wire_check_policy(const Pm__Policy *policy, char **why)
{
    if (!policy) {
        if (why)
            *why = pm_strdup("Policy: missing");
        return PM_EPROTO;
    }
    return s_check(&policy->base, why);
}

uint8_t *
pm_wire_pack(const ProtobufCMessage *msg, size_t *len)
{
    assert(msg && len);
    size_t size = protobuf_c_message_get_packed_size(msg);
    uint8_t *buf = pm_malloc(size);
    size_t done = protobuf_c_message_pack(msg, buf);
    assert(done == size);
    (void)done;
    *len = size;
    return buf;
}

void *
pm_wire_dup(const ProtobufCMessage *msg)
{
    size_t len = 0;
    uint8_t *buf = pm_wire_pack(msg, &len);
    ProtobufCMessage *copy =
        protobuf_c_message_unpack(msg->descriptor, NULL, len, buf);
    free(buf);
    if (!copy)
        abort(); /* unpacking what we just packed only fails without memory */
    return copy;
}

void
pm_wire_set_string(char **slot, const char *value)
{
    if (*slot && *slot != protobuf_c_empty_string)
        free(*slot);
    *slot = pm_strdup(value);
}
