/* test_wire.c - pm_wire: round trips and every rejection rule. */
#include "pm_error.h"
#include "pm_wire.h"

#include <criterion/criterion.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

static const char *s_exts[] = {"exe", "bat", "js"};
static const char *s_nets[] = {"127.0.0.0/8", "[::1]/128"};
static const char s_digest[] =
    "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

static void
s_policy_init(Pm__Policy *p)
{
    pm__policy__init(p);
    p->n_inbound_blocked_extensions = 3;
    p->inbound_blocked_extensions = (char **)s_exts;
    p->n_outbound_mynetworks = 2;
    p->outbound_mynetworks = (char **)s_nets;
    p->inbound_admin_address = "postmaster@example.com";
    p->antispam_level = "medium";
    p->antispam_tag_percent = 33;
    p->antispam_kill_percent = 75;
    p->antispam_subject_prefix = "[SPAM] \xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80";
}

/* Packs MSG, unpacks it as a request; returns the rc, *why set on error. */
static int
s_request_rc(const Pm__Request *req, char **why)
{
    size_t len = 0;
    uint8_t *buf = pm_wire_pack(&req->base, &len);
    Pm__Request *back = NULL;
    *why = NULL;
    int rc = pm_wire_unpack_request(buf, len, &back, why);
    if (rc == PM_OK) {
        cr_assert_not_null(back);
        pm__request__free_unpacked(back, NULL);
    }
    free(buf);
    return rc;
}

/* Asserts REQ is refused with exactly WANT as the explanation. */
static void
s_expect_request_why(const Pm__Request *req, const char *want)
{
    char *why = NULL;
    cr_assert_eq(s_request_rc(req, &why), PM_EPROTO, "accepted, want: %s",
                 want);
    cr_assert_str_eq(why, want);
    free(why);
}

/* Asserts POLICY is refused with an explanation starting with PREFIX. */
static void
s_expect_policy_why(const Pm__Policy *p, const char *prefix)
{
    char *why = NULL;
    cr_assert_eq(pm_wire_check_policy(p, &why), PM_EPROTO, "accepted: %s",
                 prefix);
    cr_assert_not_null(why);
    cr_assert(strncmp(why, prefix, strlen(prefix)) == 0, "why: %s, want %s",
              why, prefix);
    free(why);
}

Test(wire, request_round_trip)
{
    Pm__Policy pol;
    Pm__Request req = PM__REQUEST__INIT;
    s_policy_init(&pol);
    req.op = PM__REQUEST__OP__PUSH;
    req.policy = &pol;
    req.expect_rev = 7;
    req.message = "tighten antispam";
    req.user = "alice";
    size_t len = 0, len2 = 0;
    uint8_t *buf = pm_wire_pack(&req.base, &len);
    cr_assert_eq(len, protobuf_c_message_get_packed_size(&req.base));
    Pm__Request *back = NULL;
    char *why = NULL;
    cr_assert_eq(pm_wire_unpack_request(buf, len, &back, &why), PM_OK, "%s",
                 why ? why : "");
    cr_assert_null(why);
    cr_assert_eq(back->op, PM__REQUEST__OP__PUSH);
    cr_assert_eq(back->expect_rev, 7);
    cr_assert_str_eq(back->message, "tighten antispam");
    cr_assert_eq(back->policy->n_inbound_blocked_extensions, 3);
    cr_assert_str_eq(back->policy->inbound_blocked_extensions[2], "js");
    cr_assert_str_eq(back->policy->antispam_subject_prefix,
                     pol.antispam_subject_prefix);
    uint8_t *buf2 = pm_wire_pack(&back->base, &len2);
    cr_assert_eq(len, len2);
    cr_assert(memcmp(buf, buf2, len) == 0);
    free(buf);
    free(buf2);
    pm__request__free_unpacked(back, NULL);
}

Test(wire, every_valid_op_accepted)
{
    Pm__Policy pol;
    Pm__Edit e = PM__EDIT__INIT, *edits[] = {&e};
    Pm__Request req = PM__REQUEST__INIT;
    char *why = NULL;
    s_policy_init(&pol);
    e.key = "antispam.level";
    e.value = "high";
    req.policy = &pol;
    req.n_edits = 1;
    req.edits = edits;
    req.rev = 1;
    req.rev_b = 2;
    req.expect_rev = -1;
    req.node = (char *)"mx1";
    req.public_key = (char *)"rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7";
    req.domain = (char *)"example.test";
    req.selector = (char *)"s1";
    req.private_key.data = (uint8_t *)"-----BEGIN PRIVATE KEY-----";
    req.private_key.len = 27;
    Pm__RolloutSpec spec = PM__ROLLOUT_SPEC__INIT;
    spec.service = (char *)"postfix";
    req.rollout_spec = &spec;
    Pm__WhyQuery q = PM__WHY_QUERY__INIT;
    q.queue_id = (char *)"4XyzAbC12";
    q.max = 20;
    req.why = &q;
    Pm__TestMessage m = PM__TEST_MESSAGE__INIT, *msgs[] = {&m};
    char *rcpts[] = {(char *)"alice@example.test"};
    Pm__PolicyTest t = PM__POLICY_TEST__INIT;
    m.name = (char *)"report.eml";
    static uint8_t body[] = "Subject: hi\r\n\r\nhello\r\n";
    m.data.data = body;
    m.data.len = sizeof body - 1;
    t.n_messages = 1, t.messages = msgs;
    t.n_rcpts = 1, t.rcpts = rcpts;
    t.rev = 3;
    req.test = &t;
    /* Every declared op but NONE: a new op must get its entry in the
     * requirements table of pm_wire.c. */
    const ProtobufCEnumDescriptor *ops = &pm__request__op__descriptor;
    cr_assert_geq(ops->n_values, 9);
    for (unsigned i = 0; i < ops->n_values; i++) {
        req.op = ops->values[i].value;
        if (req.op == PM__REQUEST__OP__NONE)
            continue;
        cr_assert_eq(s_request_rc(&req, &why), PM_OK, "op %s: %s",
                     ops->values[i].name, why);
    }
    /* a why that names nothing to look for, or asks for too much */
    req.op = PM__REQUEST__OP__WHY;
    q.queue_id = (char *)"";
    cr_expect_eq(s_request_rc(&req, &why), PM_EPROTO);
    cr_expect(why && strstr(why, "Request.why: WHY needs"), "%s", why);
    free(why), why = NULL;
    q.sender = (char *)"a@example.test";
    q.max = PM_WIRE_WHY_MAX + 1;
    cr_expect_eq(s_request_rc(&req, &why), PM_EPROTO);
    free(why), why = NULL;
    q.max = PM_WIRE_WHY_MAX;
    cr_expect_eq(s_request_rc(&req, &why), PM_OK, "%s", why);
    free(why), why = NULL;
    /* a rolling restart of something that is not a service */
    spec.service = (char *)"dovecot";
    req.op = PM__REQUEST__OP__ROLLOUT_START;
    cr_expect_eq(s_request_rc(&req, &why), PM_EPROTO);
    cr_expect(why && strstr(why, "Request.rollout_spec: ROLLOUT_START needs"),
              "%s", why);
    free(why);
}

Test(wire, revision_node_response_round_trip)
{
    Pm__Policy pol;
    Pm__Revision rev = PM__REVISION__INIT, *hist[] = {&rev};
    Pm__ServiceStatus ok = PM__SERVICE_STATUS__INIT;
    Pm__NodeStatus node = PM__NODE_STATUS__INIT, *nodes[] = {&node};
    Pm__Response resp = PM__RESPONSE__INIT;
    s_policy_init(&pol);
    rev.number = 3, rev.parent = 2, rev.rollback_of = 1;
    rev.author = "ctl-key/alice", rev.time = 1700000000;
    rev.digest = (char *)s_digest, rev.policy = &pol;
    ok.state = PM__SERVICE_STATUS__STATE__OK;
    node.name = "mx1", node.applied_rev = 3, node.antispam = &ok;
    resp.status = PM__RESPONSE__STATUS__OK, resp.revision = &rev;
    resp.n_history = 1, resp.history = hist, resp.n_nodes = 1;
    resp.nodes = nodes, resp.head = 3;

    size_t len = 0;
    uint8_t *buf = pm_wire_pack(&rev.base, &len);
    Pm__Revision *r = NULL;
    cr_assert_eq(pm_wire_unpack_revision(buf, len, &r, NULL), PM_OK);
    cr_assert_eq(r->number, 3);
    cr_assert_str_eq(r->digest, s_digest);
    cr_assert_str_eq(r->policy->antispam_level, "medium");
    pm__revision__free_unpacked(r, NULL);
    free(buf);

    buf = pm_wire_pack(&node.base, &len);
    Pm__NodeStatus *n = NULL;
    cr_assert_eq(pm_wire_unpack_node_status(buf, len, &n, NULL), PM_OK);
    cr_assert_str_eq(n->name, "mx1");
    cr_assert_eq(n->antispam->state, PM__SERVICE_STATUS__STATE__OK);
    pm__node_status__free_unpacked(n, NULL);
    free(buf);

    buf = pm_wire_pack(&resp.base, &len);
    Pm__Response *re = NULL;
    cr_assert_eq(pm_wire_unpack_response(buf, len, &re, NULL), PM_OK);
    cr_assert_eq(re->n_history, 1);
    cr_assert_eq(re->history[0]->number, 3);
    cr_assert_str_eq(re->nodes[0]->name, "mx1");
    pm__response__free_unpacked(re, NULL);
    free(buf);
}

Test(wire, garbage_and_oversize_rejected)
{
    static const uint8_t junk[] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    /* Field 4 (message, length-delimited) claims 100 bytes, has 2. */
    static const uint8_t short_len[] = {0x22, 100, 'a', 'b'};
    Pm__Request *req = NULL;
    char *why = NULL;
    cr_assert_eq(pm_wire_unpack_request(junk, sizeof junk, &req, &why),
                 PM_EPROTO);
    cr_assert_str_eq(why, "Request: not a valid protobuf encoding (a field "
                          "key cut short at byte 0)");
    free(why);
    cr_assert_eq(
        pm_wire_unpack_request(short_len, sizeof short_len, &req, &why),
        PM_EPROTO);
    cr_assert_str_eq(why, "Request.message: not a valid protobuf encoding (a "
                          "length past the end at byte 0)");
    free(why);
    /* The size is refused before a byte is read. */
    cr_assert_eq(
        pm_wire_unpack_request(junk, PM_WIRE_MESSAGE_MAX + 1u, &req, NULL),
        PM_EPROTO);
    cr_assert_null(req);
}

Test(wire, unknown_field_rejected)
{
    Pm__Request req = PM__REQUEST__INIT;
    req.op = PM__REQUEST__OP__PING;
    size_t len = 0;
    uint8_t *buf = pm_wire_pack(&req.base, &len);
    /* Append field 99, varint 1: key (99 << 3) = 792 = 0x98 0x06. */
    buf = realloc(buf, len + 3);
    buf[len] = 0x98, buf[len + 1] = 0x06, buf[len + 2] = 0x01;
    Pm__Request *back = NULL;
    char *why = NULL;
    cr_assert_eq(pm_wire_unpack_request(buf, len + 3, &back, &why), PM_EPROTO);
    cr_assert(strstr(why, "unknown field 99") != NULL, "%s", why);
    free(why);
    free(buf);
}

Test(wire, bad_utf8_rejected)
{
    static const char *bad[] = {
        "\xc0\x80",         /* overlong NUL */
        "\xe0\x80\xaf",     /* overlong '/' */
        "\xed\xa0\x80",     /* surrogate U+D800 */
        "\xf4\x90\x80\x80", /* past U+10FFFF */
        "ab\x80",           /* lone continuation */
        "\xe2\x82",         /* truncated */
        "\xff",             /* never valid */
    };
    Pm__Request req = PM__REQUEST__INIT;
    req.op = PM__REQUEST__OP__PING;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char *why = NULL;
        req.message = (char *)bad[i];
        cr_assert_eq(s_request_rc(&req, &why), PM_EPROTO, "case %zu", i);
        cr_assert(strncmp(why, "Request.message: not valid UTF-8", 32) == 0,
                  "case %zu: %s", i, why);
        free(why);
    }
    s_expect_request_why(&req, "Request.message: not valid UTF-8 at byte 0");
    req.message = "ab\x80";
    s_expect_request_why(&req, "Request.message: not valid UTF-8 at byte 2");
}

Test(wire, string_length_limit)
{
    char *s = malloc(PM_WIRE_STRING_MAX + 2);
    memset(s, 'x', PM_WIRE_STRING_MAX + 1);
    s[PM_WIRE_STRING_MAX] = '\0';
    Pm__Request req = PM__REQUEST__INIT;
    char *why = NULL;
    req.op = PM__REQUEST__OP__PING;
    req.user = s;
    cr_assert_eq(s_request_rc(&req, &why), PM_OK, "%s", why);
    s[PM_WIRE_STRING_MAX] = 'x';
    s[PM_WIRE_STRING_MAX + 1] = '\0';
    s_expect_request_why(&req, "Request.user: longer than 4096 bytes");
    free(s);
}

Test(wire, list_length_limit)
{
    Pm__Policy pol;
    s_policy_init(&pol);
    char **exts = calloc(PM_WIRE_LIST_MAX + 1, sizeof *exts);
    for (size_t i = 0; i <= PM_WIRE_LIST_MAX; i++)
        exts[i] = "exe";
    pol.inbound_blocked_extensions = exts;
    pol.n_inbound_blocked_extensions = PM_WIRE_LIST_MAX;
    cr_assert_eq(pm_wire_check_policy(&pol, NULL), PM_OK);
    pol.n_inbound_blocked_extensions = PM_WIRE_LIST_MAX + 1;
    s_expect_policy_why(&pol, "Policy.inbound_blocked_extensions: 4097 items");

    /* Through the network path, refused while reading the bytes. */
    Pm__Request req = PM__REQUEST__INIT;
    req.op = PM__REQUEST__OP__PUSH;
    req.policy = &pol;
    s_expect_request_why(&req, "Request.policy.inbound_blocked_extensions: "
                               "more than 4096 items");
    exts[7] = NULL;
    pol.n_inbound_blocked_extensions = 10;
    s_expect_policy_why(&pol,
                        "Policy.inbound_blocked_extensions[7]: missing item");
    free(exts);
}

Test(wire, a_replicate_answer_carries_a_fleets_keys)
{
    /* one enrolled key per node (and one secret per DKIM key): a fleet of
     * more than 4096 must still reach its standby */
    size_t n = PM_WIRE_LIST_MAX + 100;
    Pm__EnrolledKey k = PM__ENROLLED_KEY__INIT;
    k.name = "mx1", k.role = "agent",
    k.public_key = "Yne@$w-vo<fVvi]a<NY6T1ed:M$fCG*[IaLV{hID";
    Pm__ReplicaSecret s = PM__REPLICA_SECRET__INIT;
    s.id = "dkim-1", s.data.data = (uint8_t *)"PEM", s.data.len = 3;
    Pm__EnrolledKey **keys = calloc(n, sizeof *keys);
    Pm__ReplicaSecret **secrets = calloc(n, sizeof *secrets);
    for (size_t i = 0; i < n; i++)
        keys[i] = &k, secrets[i] = &s;
    Pm__Response resp = PM__RESPONSE__INIT;
    resp.keys = keys, resp.n_keys = n;
    resp.secrets = secrets, resp.n_secrets = n;
    size_t len = 0;
    uint8_t *buf = pm_wire_pack(&resp.base, &len);
    Pm__Response *back = NULL;
    char *why = NULL;
    cr_assert_eq(pm_wire_unpack_response(buf, len, &back, &why), PM_OK, "%s",
                 why ? why : "");
    cr_assert_eq(back->n_keys, n);
    pm__response__free_unpacked(back, NULL);
    free(buf);
    free(keys);
    free(secrets);
}

Test(wire, enum_values_checked)
{
    Pm__Request req = PM__REQUEST__INIT;
    Pm__Edit e = PM__EDIT__INIT, *edits[] = {&e};
    req.op = 42;
    s_expect_request_why(&req,
                         "Request.op: 42 is not a value of pm.Request.Op");
    req.op = PM__REQUEST__OP__NONE;
    s_expect_request_why(&req, "Request.op: NONE is not a request");
    req.op = PM__REQUEST__OP__SET;
    req.n_edits = 1;
    req.edits = edits;
    e.key = "antispam.level";
    e.op = 7;
    s_expect_request_why(&req,
                         "Request.edits[0].op: 7 is not a value of pm.Edit.Op");
    e.op = -1;
    s_expect_request_why(
        &req, "Request.edits[0].op: -1 is not a value of pm.Edit.Op");
}

Test(wire, per_op_requirements)
{
    Pm__Request req = PM__REQUEST__INIT;
    Pm__Edit e[3] = {PM__EDIT__INIT, PM__EDIT__INIT, PM__EDIT__INIT};
    Pm__Edit *edits[] = {&e[0], &e[1], &e[2]};

    req.op = PM__REQUEST__OP__PUSH;
    s_expect_request_why(&req, "Request.policy: required by PUSH");

    req.op = PM__REQUEST__OP__SET;
    s_expect_request_why(&req, "Request.edits: SET needs at least one edit");
    e[0].key = "a.b", e[1].key = "c.d", e[2].key = "";
    req.n_edits = 3;
    req.edits = edits;
    s_expect_request_why(&req, "Request.edits[2].key: empty");

    req.n_edits = 0;
    req.op = PM__REQUEST__OP__DIFF;
    req.rev_b = 2;
    s_expect_request_why(&req, "Request.rev: DIFF needs a revision > 0");
    req.rev = 1;
    req.rev_b = 0;
    s_expect_request_why(&req, "Request.rev_b: DIFF needs a revision > 0");

    req.op = PM__REQUEST__OP__ROLLBACK;
    req.rev = 0;
    s_expect_request_why(&req, "Request.rev: ROLLBACK needs a revision > 0");
    req.rev = 4;
    req.expect_rev = -2;
    s_expect_request_why(&req, "Request.expect_rev: -2 is below -1");
    char *why = NULL;
    req.expect_rev = -1;
    cr_assert_eq(s_request_rc(&req, &why), PM_OK, "%s", why);
}

Test(wire, revision_rules)
{
    Pm__Revision rev = PM__REVISION__INIT;
    rev.number = 1;
    rev.digest = (char *)s_digest;
    size_t len = 0;
    Pm__Revision *out = NULL;
    char *why = NULL;
    struct {
        uint64_t number, parent, rollback_of;
        const char *digest, *want;
    } cases[] = {
        {0, 0, 0, s_digest, "Revision.number: 0; revisions start at 1"},
        {2, 2, 0, s_digest, "Revision.parent: 2 is not below number 2"},
        {2, 1, 5, s_digest, "Revision.rollback_of: 5 is not below number 2"},
        {1, 0, 0, "", "Revision.digest: not 64 lowercase hex characters"},
        {1, 0, 0,
         "0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef",
         "Revision.digest: not 64 lowercase hex characters"},
        {1, 0, 0,
         "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde",
         "Revision.digest: not 64 lowercase hex characters"},
        {1, 0, 0,
         "g123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
         "Revision.digest: not 64 lowercase hex characters"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        rev.number = cases[i].number, rev.parent = cases[i].parent;
        rev.rollback_of = cases[i].rollback_of;
        rev.digest = (char *)cases[i].digest;
        uint8_t *buf = pm_wire_pack(&rev.base, &len);
        cr_assert_eq(pm_wire_unpack_revision(buf, len, &out, &why), PM_EPROTO,
                     "case %zu", i);
        cr_assert_str_eq(why, cases[i].want);
        free(why);
        why = NULL;
        free(buf);
    }
    rev.number = 2, rev.parent = 1, rev.rollback_of = 1;
    rev.digest = (char *)s_digest;
    uint8_t *buf = pm_wire_pack(&rev.base, &len);
    cr_assert_eq(pm_wire_unpack_revision(buf, len, &out, &why), PM_OK);
    cr_assert_eq(out->rollback_of, 1);
    cr_assert_null(out->policy);
    pm__revision__free_unpacked(out, NULL);
    free(buf);
}

Test(wire, node_status_and_response_rules)
{
    Pm__NodeStatus node = PM__NODE_STATUS__INIT, *nodes[] = {&node};
    Pm__ServiceStatus svc = PM__SERVICE_STATUS__INIT;
    Pm__Revision good = PM__REVISION__INIT, bad = PM__REVISION__INIT;
    Pm__Revision *hist[] = {&good, &bad};
    Pm__Response resp = PM__RESPONSE__INIT;
    size_t len = 0;
    char *why = NULL;
    uint8_t *buf = pm_wire_pack(&node.base, &len);
    Pm__NodeStatus *n = NULL;
    cr_assert_eq(pm_wire_unpack_node_status(buf, len, &n, &why), PM_EPROTO);
    cr_assert_str_eq(why, "NodeStatus.name: empty");
    free(why);
    free(buf);

    node.name = "mx2";
    node.dkim = &svc;
    svc.state = 9;
    buf = pm_wire_pack(&node.base, &len);
    cr_assert_eq(pm_wire_unpack_node_status(buf, len, &n, &why), PM_EPROTO);
    cr_assert_str_eq(why, "NodeStatus.dkim.state: 9 is not a value of "
                          "pm.ServiceStatus.State");
    free(why);
    free(buf);
    svc.state = PM__SERVICE_STATUS__STATE__DOWN;

    Pm__Response *r = NULL;
    resp.status = 7;
    buf = pm_wire_pack(&resp.base, &len);
    cr_assert_eq(pm_wire_unpack_response(buf, len, &r, &why), PM_EPROTO);
    cr_assert_str_eq(why,
                     "Response.status: 7 is not a value of pm.Response.Status");
    free(why);
    free(buf);

    /* Nested revisions and nodes follow their own rules. */
    resp.status = PM__RESPONSE__STATUS__OK;
    good.number = 2, good.parent = 1, good.digest = (char *)s_digest;
    bad.number = 1, bad.digest = "nope";
    resp.n_history = 2, resp.history = hist;
    resp.n_nodes = 1, resp.nodes = nodes;
    buf = pm_wire_pack(&resp.base, &len);
    cr_assert_eq(pm_wire_unpack_response(buf, len, &r, &why), PM_EPROTO);
    cr_assert_str_eq(why, "Response.history[1].digest: not 64 lowercase hex "
                          "characters");
    free(why);
    free(buf);
    bad.digest = (char *)s_digest;
    node.name = "";
    buf = pm_wire_pack(&resp.base, &len);
    cr_assert_eq(pm_wire_unpack_response(buf, len, &r, &why), PM_EPROTO);
    cr_assert_str_eq(why, "Response.nodes[0].name: empty");
    free(why);
    free(buf);
}

Test(wire, policy_nested_messages_checked)
{
    Pm__Policy pol;
    Pm__CustomSignature sig = PM__CUSTOM_SIGNATURE__INIT, *sigs[] = {&sig};
    Pm__DkimDomain dk = PM__DKIM_DOMAIN__INIT, *dks[] = {&dk};
    Pm__NodeOverride ov = PM__NODE_OVERRIDE__INIT, *ovs[] = {&ov, NULL};
    static uint8_t body[] = "Eicar-Test-Signature:0:*:58354f";
    s_policy_init(&pol);
    sig.name = "local.ndb";
    sig.sha256 = (char *)s_digest;
    sig.content.data = body;
    sig.content.len = sizeof body - 1;
    pol.n_antivirus_custom_signatures = 1;
    pol.antivirus_custom_signatures = sigs;
    dk.domain = "example.com", dk.selector = "s1", dk.key = "dkim/example";
    pol.n_dkim_domains = 1, pol.dkim_domains = dks;
    ov.node = "mx1", ov.key = "outbound.mynetworks", ov.value = "10.0.0.0/8";
    pol.n_overrides = 1, pol.overrides = ovs;
    cr_assert_eq(pm_wire_check_policy(&pol, NULL), PM_OK);

    sig.name = "loc\xc3\x28l.ndb";
    s_expect_policy_why(&pol, "Policy.antivirus_custom_signatures[0].name: "
                              "not valid UTF-8 at byte 3");
    sig.name = "local.ndb";
    /* Only the length is looked at; the data is never read past 31 bytes. */
    sig.content.len = PM_WIRE_CONTENT_MAX + 1;
    s_expect_policy_why(&pol, "Policy.antivirus_custom_signatures[0].content: "
                              "8388609 bytes");
    sig.content.len = PM_WIRE_CONTENT_MAX;
    sig.content.data = NULL;
    s_expect_policy_why(&pol, "Policy.antivirus_custom_signatures[0].content: "
                              "8388608 bytes announced, no data");
    sig.content.data = body;
    sig.content.len = sizeof body - 1;
    dk.selector = "\xed\xbf\xbf";
    s_expect_policy_why(&pol, "Policy.dkim_domains[0].selector: not valid");
    dk.selector = "s1";
    pol.n_overrides = 2;
    s_expect_policy_why(&pol, "Policy.overrides[1]: missing item");
    pol.n_overrides = 1;
    cr_assert_eq(pm_wire_check_policy(&pol, NULL), PM_OK);
    char *why = NULL;
    cr_assert_eq(pm_wire_check_policy(NULL, &why), PM_EPROTO);
    cr_assert_str_eq(why, "Policy: missing");
    free(why);
}

Test(wire, big_signature_over_the_wire)
{
    Pm__Policy pol;
    Pm__CustomSignature sig = PM__CUSTOM_SIGNATURE__INIT, *sigs[] = {&sig};
    Pm__Request req = PM__REQUEST__INIT;
    s_policy_init(&pol);
    sig.name = "big.ndb";
    sig.sha256 = (char *)s_digest;
    sig.content.len = PM_WIRE_CONTENT_MAX + 1;
    sig.content.data = calloc(1, sig.content.len);
    pol.n_antivirus_custom_signatures = 1;
    pol.antivirus_custom_signatures = sigs;
    req.op = PM__REQUEST__OP__PUSH;
    req.policy = &pol;
    s_expect_request_why(&req, "Request.policy.antivirus_custom_signatures[0]."
                               "content: 8388609 bytes, more than 8388608");
    sig.content.len = PM_WIRE_CONTENT_MAX;
    char *why = NULL;
    cr_assert_eq(s_request_rc(&req, &why), PM_OK, "%s", why);
    free(sig.content.data);
}

/* An update or snapshot without the revision it announces is refused. */
Test(wire, publication_needs_its_revision)
{
    Pm__Publication pub = PM__PUBLICATION__INIT;
    size_t len = 0;
    char *why = NULL;
    Pm__Publication *out = NULL;
    pub.kind = PM__PUBLICATION__KIND__UPDATE;
    pub.head = 3;
    uint8_t *buf = pm_wire_pack(&pub.base, &len);
    cr_expect_eq(pm_wire_unpack_publication(buf, len, &out, &why), PM_EPROTO);
    cr_expect_null(out);
    cr_assert_not_null(why);
    cr_expect_not_null(strstr(why, "revision"), "%s", why);
    free(why);
    free(buf);
    /* a heartbeat carries the head only */
    pub.kind = PM__PUBLICATION__KIND__HEARTBEAT;
    buf = pm_wire_pack(&pub.base, &len);
    cr_assert_eq(pm_wire_unpack_publication(buf, len, &out, NULL), PM_OK);
    cr_expect_eq(out->head, 3);
    pm__publication__free_unpacked(out, NULL);
    free(buf);
}

/* A restart order asks a drain of at most PM_WIRE_DRAIN_MS_MAX: a node
 * refuses new mail while it drains, and an order from far beyond (or
 * near INT64_MAX: an overflow in the agent's deadline) is no order. */
Test(wire, a_restart_order_drains_ten_minutes_at_most)
{
    Pm__Publication pub = PM__PUBLICATION__INIT;
    Pm__RestartOrder order = PM__RESTART_ORDER__INIT;
    pub.kind = PM__PUBLICATION__KIND__RESTART;
    pub.restart = &order;
    order.rollout = 1;
    order.service = (char *)"postfix";
    const int64_t drains[] = {0, PM_WIRE_DRAIN_MS_MAX, PM_WIRE_DRAIN_MS_MAX + 1,
                              INT64_MAX, -1};
    for (size_t i = 0; i < sizeof drains / sizeof drains[0]; i++) {
        order.drain_ms = drains[i];
        size_t len = 0;
        char *why = NULL;
        Pm__Publication *out = NULL;
        uint8_t *buf = pm_wire_pack(&pub.base, &len);
        int rc = pm_wire_unpack_publication(buf, len, &out, &why);
        cr_expect_eq(rc, i < 2 ? PM_OK : PM_EPROTO, "drain_ms %lld",
                     (long long)drains[i]);
        if (rc != PM_OK)
            cr_expect(why && strstr(why, "drain_ms 0 to 600000"), "%s", why);
        if (out)
            pm__publication__free_unpacked(out, NULL);
        free(why);
        free(buf);
    }
}

/* Packs a PeerMessage and unpacks it; returns the rc, *why set on error. */
static int
s_peer_rc(const Pm__PeerMessage *msg, char **why)
{
    size_t len = 0;
    uint8_t *buf = pm_wire_pack(&msg->base, &len);
    Pm__PeerMessage *back = NULL;
    *why = NULL;
    int rc = pm_wire_unpack_peer_message(buf, len, &back, why);
    if (rc == PM_OK)
        pm__peer_message__free_unpacked(back, NULL);
    else
        cr_expect_null(back);
    free(buf);
    return rc;
}

/* Asserts MSG is refused with an explanation containing WANT. */
static void
s_expect_peer_why(const Pm__PeerMessage *msg, const char *want)
{
    char *why = NULL;
    cr_assert_eq(s_peer_rc(msg, &why), PM_EPROTO, "accepted, want: %s", want);
    cr_assert_not_null(why);
    cr_expect_not_null(strstr(why, want), "why: %s, want %s", why, want);
    free(why);
}

/* Agent to agent: a file is named, never a path; a chunk lies inside the
 * total it announces; a file is asked for by a version. */
Test(wire, peer_message_rules)
{
    char *why = NULL;
    Pm__PeerMessage get = PM__PEER_MESSAGE__INIT;
    get.kind = PM__PEER_MESSAGE__KIND__GET;
    get.file = "daily.cld";
    get.version = 27000;
    cr_assert_eq(s_peer_rc(&get, &why), PM_OK, "%s", why);
    get.file = "../x.cvd";
    s_expect_peer_why(&get, "PeerMessage.file");
    get.file = "test.cvd/../../etc/passwd.cvd";
    s_expect_peer_why(&get, "PeerMessage.file");
    get.file = "daily.exe";
    s_expect_peer_why(&get, "PeerMessage.file: not NAME.cvd or NAME.cld");
    get.file = "test.cvd";
    get.version = 0;
    s_expect_peer_why(&get, "PeerMessage.version");
    /* a CDIFF is asked for by the version it makes */
    get.file = "daily-27001.cdiff";
    get.version = 27001;
    cr_assert_eq(s_peer_rc(&get, &why), PM_OK, "%s", why);
    get.version = 27000;
    s_expect_peer_why(&get, "a CDIFF is asked for by the version it makes");
    get.file = "daily-027001.cdiff";
    get.version = 27001;
    s_expect_peer_why(&get, "PeerMessage.file");
    get.file = "../daily-1.cdiff";
    get.version = 1;
    s_expect_peer_why(&get, "PeerMessage.file");
    get.file = "daily-4294967296.cdiff";
    s_expect_peer_why(&get, "PeerMessage.file");

    uint8_t data[16] = {0};
    Pm__PeerMessage chunk = PM__PEER_MESSAGE__INIT;
    chunk.kind = PM__PEER_MESSAGE__KIND__CHUNK;
    chunk.file = "test.cvd";
    chunk.version = 6;
    chunk.offset = 84;
    chunk.total = 100;
    chunk.data = (ProtobufCBinaryData){.len = sizeof data, .data = data};
    cr_assert_eq(s_peer_rc(&chunk, &why), PM_OK, "%s", why);
    chunk.offset = 85; /* one byte past the end */
    s_expect_peer_why(&chunk, "PeerMessage.offset");
    chunk.offset = UINT64_MAX; /* no wrap-around */
    s_expect_peer_why(&chunk, "PeerMessage.offset");
    chunk.offset = 0;
    chunk.total = PM_WIRE_DATABASE_MAX + 1;
    s_expect_peer_why(&chunk, "PeerMessage.total");
    chunk.total = 100;
    chunk.version = 0;
    s_expect_peer_why(&chunk, "PeerMessage.version");
    chunk.file = "test-6.cdiff"; /* a CDIFF is small */
    chunk.version = 6;
    cr_assert_eq(s_peer_rc(&chunk, &why), PM_OK, "%s", why);
    chunk.total = PM_WIRE_CDIFF_MAX + 1;
    s_expect_peer_why(&chunk, "a CDIFF is at most");

    /* VERSIONS: every database named as a database */
    Pm__SignatureDb db = PM__SIGNATURE_DB__INIT, *dbs[] = {&db};
    Pm__PeerMessage ver = PM__PEER_MESSAGE__INIT;
    ver.n_databases = 1;
    ver.databases = dbs;
    db.name = "daily";
    db.version = 27000;
    cr_assert_eq(s_peer_rc(&ver, &why), PM_OK, "%s", why);
    db.name = "../daily";
    s_expect_peer_why(&ver, "PeerMessage.databases[0].name");

    /* nothing bigger than a peer message may be decoded */
    uint8_t *big = calloc(1, PM_WIRE_PEER_MAX + 1);
    Pm__PeerMessage *out = NULL;
    cr_expect_eq(
        pm_wire_unpack_peer_message(big, PM_WIRE_PEER_MAX + 1, &out, NULL),
        PM_EPROTO);
    cr_expect_null(out);
    free(big);
}

/* MEMBERS: each member has a name and a 40-character key. */
Test(wire, members_publication_rules)
{
    Pm__Member m = PM__MEMBER__INIT, *ms[] = {&m};
    Pm__Publication pub = PM__PUBLICATION__INIT;
    pub.kind = PM__PUBLICATION__KIND__MEMBERS;
    pub.n_members = 1;
    pub.members = ms;
    m.name = "node1";
    m.public_key = "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7";
    size_t len = 0;
    uint8_t *buf = pm_wire_pack(&pub.base, &len);
    Pm__Publication *out = NULL;
    char *why = NULL;
    cr_assert_eq(pm_wire_unpack_publication(buf, len, &out, &why), PM_OK, "%s",
                 why);
    cr_expect_str_eq(out->members[0]->name, "node1");
    pm__publication__free_unpacked(out, NULL);
    free(buf);
    m.public_key = "short";
    buf = pm_wire_pack(&pub.base, &len);
    cr_expect_eq(pm_wire_unpack_publication(buf, len, &out, &why), PM_EPROTO);
    cr_expect_not_null(strstr(why, "public_key"), "%s", why);
    free(why);
    free(buf);
}

/* Packs MSG (a Publication or an AgentReport) and unpacks it as one;
 * returns the rc, *why set on error (the copy is freed). */
static int
s_unpack_rc(const ProtobufCMessage *msg, char **why)
{
    size_t len = 0;
    uint8_t *buf = pm_wire_pack(msg, &len);
    Pm__Publication *pub = NULL;
    Pm__AgentReport *rep = NULL;
    *why = NULL;
    int rc = msg->descriptor == &pm__publication__descriptor
                 ? pm_wire_unpack_publication(buf, len, &pub, why)
                 : pm_wire_unpack_agent_report(buf, len, &rep, why);
    if (pub)
        pm__publication__free_unpacked(pub, NULL);
    if (rep)
        pm__agent_report__free_unpacked(rep, NULL);
    cr_expect(rc == PM_OK || (!pub && !rep));
    free(buf);
    return rc;
}

/* Asserts MSG is refused with exactly WANT. */
static void
s_expect_refused(const ProtobufCMessage *msg, const char *want)
{
    char *why = NULL;
    cr_assert_eq(s_unpack_rc(msg, &why), PM_EPROTO, "accepted, want: %s", want);
    cr_expect_str_eq(why, want);
    free(why);
}

/* A test of a candidate or a revision: messages named and not empty, in
 * bounds, recipients in bounds, an envelope with no control character. */
Test(wire, policy_test_request_rules)
{
    Pm__Policy pol;
    s_policy_init(&pol);
    Pm__TestMessage m[PM_WIRE_TEST_MESSAGES_MAX + 1];
    Pm__TestMessage *msgs[PM_WIRE_TEST_MESSAGES_MAX + 1];
    static uint8_t body[] = "From: a@example.test\r\n\r\nhi\r\n";
    for (size_t i = 0; i <= PM_WIRE_TEST_MESSAGES_MAX; i++) {
        pm__test_message__init(&m[i]);
        m[i].name = (char *)"m.eml";
        m[i].data.data = body;
        m[i].data.len = sizeof body - 1;
        msgs[i] = &m[i];
    }
    char *rcpts[PM_WIRE_TEST_RCPTS_MAX + 1];
    for (size_t i = 0; i <= PM_WIRE_TEST_RCPTS_MAX; i++)
        rcpts[i] = (char *)"bob@example.test";
    Pm__PolicyTest t = PM__POLICY_TEST__INIT;
    t.messages = msgs, t.n_messages = 2;
    t.rcpts = rcpts, t.n_rcpts = 1;
    t.candidate = &pol;
    t.client_addr = (char *)"192.0.2.1";
    t.helo = (char *)"[192.0.2.1]";
    Pm__Request req = PM__REQUEST__INIT;
    req.op = PM__REQUEST__OP__POLICY_TEST;
    char *why = NULL;

    s_expect_request_why(&req, "Request.test: required by POLICY_TEST");
    req.test = &t;
    cr_assert_eq(s_request_rc(&req, &why), PM_OK, "%s", why);
    /* exactly one of a candidate and a revision */
    t.rev = 4;
    s_expect_request_why(&req, "Request.test: POLICY_TEST needs a candidate "
                               "policy or a revision rev > 0, exactly one "
                               "of them");
    t.candidate = NULL;
    cr_assert_eq(s_request_rc(&req, &why), PM_OK, "%s", why);
    t.rev = 0;
    s_expect_request_why(&req, "Request.test: POLICY_TEST needs a candidate "
                               "policy or a revision rev > 0, exactly one "
                               "of them");
    t.candidate = &pol;
    /* the candidate is held to the policy's structural rules */
    pol.antispam_level = (char *)"\xff";
    s_expect_request_why(&req, "Request.test.candidate.antispam_level: not "
                               "valid UTF-8 at byte 0");
    pol.antispam_level = (char *)"medium";

    /* messages */
    t.n_messages = 0;
    s_expect_request_why(&req, "Request.test.messages: 0 messages; a test "
                               "holds 1 to 20");
    t.n_messages = PM_WIRE_TEST_MESSAGES_MAX;
    cr_assert_eq(s_request_rc(&req, &why), PM_OK, "%s", why);
    t.n_messages = PM_WIRE_TEST_MESSAGES_MAX + 1;
    s_expect_request_why(&req, "Request.test.messages: 21 messages; a test "
                               "holds 1 to 20");
    t.n_messages = 3;
    m[2].name = (char *)"";
    s_expect_request_why(&req, "Request.test.messages[2].name: empty");
    m[2].name = (char *)"m.eml";
    m[1].data.len = 0;
    s_expect_request_why(&req, "Request.test.messages[1].data: empty");
    /* each message at most PM_WIRE_CONTENT_MAX, all of them at most
     * PM_WIRE_TEST_BYTES_MAX (only the lengths are read: the data of a
     * refused message is never looked at) */
    uint8_t *big = calloc(1, PM_WIRE_CONTENT_MAX + 1);
    m[1].data.data = big;
    m[1].data.len = PM_WIRE_CONTENT_MAX + 1;
    s_expect_request_why(&req, "Request.test.messages[1].data: 8388609 bytes, "
                               "more than 8388608");
    for (size_t i = 0; i < 5; i++) {
        m[i].data.data = big;
        m[i].data.len = PM_WIRE_CONTENT_MAX;
    }
    t.n_messages = 4;
    cr_assert_eq(s_request_rc(&req, &why), PM_OK, "%s", why);
    t.n_messages = 5;
    s_expect_request_why(&req, "Request.test.messages: 41943040 bytes in "
                               "all, more than 33554432");
    free(big);
    for (size_t i = 0; i < 5; i++) {
        m[i].data.data = body;
        m[i].data.len = sizeof body - 1;
    }

    /* recipients */
    t.n_rcpts = 0;
    s_expect_request_why(&req, "Request.test.rcpts: 0 recipients; a test "
                               "has 1 to 10");
    t.n_rcpts = PM_WIRE_TEST_RCPTS_MAX;
    cr_assert_eq(s_request_rc(&req, &why), PM_OK, "%s", why);
    t.n_rcpts = PM_WIRE_TEST_RCPTS_MAX + 1;
    s_expect_request_why(&req, "Request.test.rcpts: 11 recipients; a test "
                               "has 1 to 10");
    t.n_rcpts = 2;
    rcpts[1] = (char *)"";
    s_expect_request_why(&req, "Request.test.rcpts[1]: empty");
    rcpts[1] = (char *)"bob@example.test>\r\nDATA";
    s_expect_request_why(&req, "Request.test.rcpts[1]: a control character "
                               "at byte 17 (it goes into an SMTP command)");
    rcpts[1] = (char *)"bob@example.test";

    /* the envelope goes into SMTP commands: no CR, LF or other control */
    t.helo = (char *)"mx.example.test\r\nRSET";
    s_expect_request_why(&req, "Request.test.helo: a control character at "
                               "byte 15 (it goes into an SMTP command)");
    t.helo = (char *)"";
    t.sender = (char *)"a@example.test\x7f";
    s_expect_request_why(&req, "Request.test.sender: a control character at "
                               "byte 14 (it goes into an SMTP command)");
    t.sender = (char *)"";
    t.client_name = (char *)"\tx";
    s_expect_request_why(&req, "Request.test.client_name: a control "
                               "character at byte 0 (it goes into an SMTP "
                               "command)");
    t.client_name = (char *)"";
    t.auth = (char *)"alice\n";
    s_expect_request_why(&req, "Request.test.auth: a control character at "
                               "byte 5 (it goes into an SMTP command)");
    t.auth = (char *)"alice";
    t.client_addr = (char *)"192.0.2.1\r";
    s_expect_request_why(&req, "Request.test.client_addr: a control "
                               "character at byte 9 (it goes into an SMTP "
                               "command)");
    t.client_addr = (char *)"";
    /* nor anything the node's SMTP client (swaks, run as root) would take
     * for an option: a From: of <--output-file=/etc/x@y> wrote a file */
    struct {
        char **field;
        const char *name, *value;
    } dashed[] = {
        {&t.sender, "sender", "--output-file=/etc/profile.d/z@x.sh"},
        {&t.helo, "helo", "-q"},
        {&rcpts[1], "rcpts[1]", "--pipe=sh"},
        {&t.client_name, "client_name", "-x"},
        {&t.auth, "auth", "-a"},
        {&t.client_addr, "client_addr", "-6"},
    };
    for (size_t i = 0; i < sizeof dashed / sizeof dashed[0]; i++) {
        char *was = *dashed[i].field, want[160];
        *dashed[i].field = (char *)dashed[i].value;
        snprintf(want, sizeof want,
                 "Request.test.%s: starts with '-' (it is an argument of the "
                 "SMTP client the node runs)",
                 dashed[i].name);
        s_expect_request_why(&req, want);
        *dashed[i].field = was;
    }
    cr_assert_eq(s_request_rc(&req, &why), PM_OK, "%s", why);
}

/* The controller's TEST to one agent, and the agent's answer. */
Test(wire, policy_test_publication_and_answer)
{
    Pm__Policy pol;
    s_policy_init(&pol);
    static uint8_t body[] = "From: a@example.test\r\n\r\nhi\r\n";
    Pm__TestMessage m = PM__TEST_MESSAGE__INIT, *msgs[] = {&m};
    char *rcpts[] = {(char *)"bob@example.test"};
    m.name = (char *)"m.eml";
    m.data.data = body;
    m.data.len = sizeof body - 1;
    Pm__PolicyTest t = PM__POLICY_TEST__INIT;
    t.messages = msgs, t.n_messages = 1;
    t.rcpts = rcpts, t.n_rcpts = 1;
    t.trial = &pol;
    t.id = 7;
    Pm__Publication pub = PM__PUBLICATION__INIT;
    pub.kind = PM__PUBLICATION__KIND__TEST;
    char *why = NULL;

    s_expect_refused(&pub.base,
                     "Publication.test: a test needs an id >= 1 and the "
                     "trial policy");
    pub.test = &t;
    cr_assert_eq(s_unpack_rc(&pub.base, &why), PM_OK, "%s", why);
    t.id = 0;
    s_expect_refused(&pub.base,
                     "Publication.test: a test needs an id >= 1 and the "
                     "trial policy");
    t.id = 7;
    t.trial = NULL;
    s_expect_refused(&pub.base,
                     "Publication.test: a test needs an id >= 1 and the "
                     "trial policy");
    t.trial = &pol;
    t.n_messages = 0;
    s_expect_refused(&pub.base,
                     "Publication.test.messages: 0 messages; a test holds 1 "
                     "to 20");
    t.n_messages = 1;
    m.name = (char *)"";
    s_expect_refused(&pub.base, "Publication.test.messages[0].name: empty");
    m.name = (char *)"m.eml";
    t.rcpts[0] = (char *)"a\rb";
    s_expect_refused(&pub.base,
                     "Publication.test.rcpts[0]: a control character at "
                     "byte 1 (it goes into an SMTP command)");
    t.rcpts[0] = (char *)"bob@example.test";
    /* the head is optional: unset when the trial is the head */
    t.head = &pol;
    t.head_rev = 12;
    cr_assert_eq(s_unpack_rc(&pub.base, &why), PM_OK, "%s", why);

    /* the answer names its test and holds a bounded count of results */
    Pm__TestResult res = PM__TEST_RESULT__INIT;
    res.message = (char *)"m.eml";
    res.rcpt = (char *)"bob@example.test";
    res.policy = (char *)"candidate";
    res.reply = (char *)"554 5.7.1 blocked";
    res.verdict = (char *)"rejected";
    Pm__TestResult *results[PM_WIRE_TEST_RESULTS_MAX + 1];
    for (size_t i = 0; i <= PM_WIRE_TEST_RESULTS_MAX; i++)
        results[i] = &res;
    Pm__AgentReport rep = PM__AGENT_REPORT__INIT;
    rep.kind = PM__AGENT_REPORT__KIND__TEST_ANSWER;
    rep.test_results = results;
    rep.n_test_results = 1;
    s_expect_refused(&rep.base,
                     "AgentReport.test_id: 0; an answer names its test");
    rep.test_id = 7;
    cr_assert_eq(s_unpack_rc(&rep.base, &why), PM_OK, "%s", why);
    rep.n_test_results = PM_WIRE_TEST_RESULTS_MAX;
    cr_assert_eq(s_unpack_rc(&rep.base, &why), PM_OK, "%s", why);
    rep.n_test_results = PM_WIRE_TEST_RESULTS_MAX + 1;
    s_expect_refused(&rep.base,
                     "AgentReport.test_results: 401 results, more than 400");
    /* an error instead of results */
    rep.n_test_results = 0;
    rep.test_error = (char *)"postfix did not start";
    cr_assert_eq(s_unpack_rc(&rep.base, &why), PM_OK, "%s", why);
}

/* ---- Read before decoding (pm_wire_scan) ------------------------------ */

/* Raw protobuf bytes built by hand: what no packer would write. */
typedef struct {
    uint8_t *data;
    size_t len, cap;
} s_raw_t;

static void
s_raw_byte(s_raw_t *r, uint8_t b)
{
    if (r->len == r->cap) {
        r->cap = r->cap ? 2 * r->cap : 256;
        r->data = realloc(r->data, r->cap);
        cr_assert_not_null(r->data);
    }
    r->data[r->len++] = b;
}

static void
s_raw_varint(s_raw_t *r, uint64_t v)
{
    for (; v >= 0x80; v >>= 7)
        s_raw_byte(r, (uint8_t)(v | 0x80));
    s_raw_byte(r, (uint8_t)v);
}

/* Field NUMBER, length-delimited, holding INNER (which is freed). */
static void
s_raw_wrap(s_raw_t *r, uint32_t number, s_raw_t *inner)
{
    s_raw_varint(r, (uint64_t)number << 3 | 2);
    s_raw_varint(r, inner->len);
    for (size_t i = 0; i < inner->len; i++)
        s_raw_byte(r, inner->data[i]);
    free(inner->data);
    *inner = (s_raw_t){0};
}

/* N empty items of the repeated message field NUMBER. */
static void
s_raw_empty_items(s_raw_t *r, uint32_t number, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        s_raw_varint(r, (uint64_t)number << 3 | 2);
        s_raw_byte(r, 0);
    }
}

static void
s_expect_report_why(const s_raw_t *r, const char *want)
{
    Pm__AgentReport *rep = NULL;
    char *why = NULL;
    cr_assert_eq(pm_wire_unpack_agent_report(r->data, r->len, &rep, &why),
                 PM_EPROTO, "accepted, want: %s", want);
    cr_expect_null(rep);
    cr_expect_str_eq(why, want);
    free(why);
}

/* The review's case: a report of ~1 MiB, all empty cool-downs in its
 * status. Decoded, it is 500 000 allocations before the list is counted;
 * the wording says it was refused while reading (decoding would have
 * counted "500000 items"). */
Test(wire, a_long_nested_list_is_refused_before_decoding)
{
    s_raw_t status = {0}, report = {0};
    s_raw_empty_items(&status, 14, 500000); /* NodeStatus.cooldowns */
    s_raw_wrap(&report, 3, &status);        /* AgentReport.status */
    cr_assert_leq(report.len, PM_WIRE_REPORT_MAX);
    s_expect_report_why(&report,
                        "AgentReport.status.cooldowns: more than 4096 items");
    free(report.data);

    /* in an item of a list, the path says which */
    s_raw_t node = {0}, resp = {0};
    for (int i = 0; i < 2; i++) {
        s_raw_varint(&node, 1 << 3 | 2); /* name "n" */
        s_raw_varint(&node, 1);
        s_raw_byte(&node, 'n');
        s_raw_wrap(&resp, 8, &node); /* Response.nodes */
    }
    s_raw_empty_items(&node, 14, PM_WIRE_LIST_MAX + 1);
    s_raw_wrap(&resp, 8, &node);
    Pm__Response *out = NULL;
    char *why = NULL;
    cr_assert_eq(pm_wire_unpack_response(resp.data, resp.len, &out, &why),
                 PM_EPROTO);
    cr_expect_str_eq(why, "Response.nodes[2].cooldowns: more than 4096 items");
    free(why);
    free(resp.data);
}

/* Lists inside lists: each within its limit, together more than an agent
 * may send (a heartbeat of why records, 4000 empty recipients each). */
static void
s_why_records(s_raw_t *report, size_t records, size_t rcpts)
{
    for (size_t i = 0; i < records; i++) {
        s_raw_t rec = {0};
        for (size_t j = 0; j < rcpts; j++) {
            s_raw_varint(&rec, 6 << 3 | 2); /* WhyRecord.rcpts: "" */
            s_raw_byte(&rec, 0);
        }
        s_raw_wrap(report, 5, &rec); /* AgentReport.why */
    }
}

Test(wire, lists_inside_lists_have_a_budget)
{
    s_raw_t report = {0};
    s_why_records(&report, 17, 4000); /* 68000 items */
    cr_assert_leq(report.len, PM_WIRE_REPORT_MAX);
    s_expect_report_why(&report, "AgentReport.why[16].rcpts: more than 65536 "
                                 "list items in the whole message");
    free(report.data);
    /* within it, the scan lets it through (the gate's other rules decide) */
    report = (s_raw_t){0};
    s_why_records(&report, 16, 4000);
    cr_assert_eq(pm_wire_scan(&pm__agent_report__descriptor, report.data,
                              report.len, NULL),
                 PM_OK);
    free(report.data);
}

/* A list of exactly its maximum passes, one more does not: 4096 for an
 * ordinary list, 65536 for one with an item per node. */
Test(wire, lists_at_their_limit_pass)
{
    Pm__Cooldown cd = PM__COOLDOWN__INIT;
    cd.mirror = (char *)"db.example.net";
    Pm__Cooldown **cds = calloc(PM_WIRE_LIST_MAX + 1, sizeof *cds);
    for (size_t i = 0; i <= PM_WIRE_LIST_MAX; i++)
        cds[i] = &cd;
    Pm__NodeStatus st = PM__NODE_STATUS__INIT;
    st.name = (char *)"mx1";
    st.cooldowns = cds;
    st.n_cooldowns = PM_WIRE_LIST_MAX;
    Pm__AgentReport rep = PM__AGENT_REPORT__INIT;
    rep.status = &st;
    char *why = NULL;
    cr_assert_eq(s_unpack_rc(&rep.base, &why), PM_OK, "%s", why);
    st.n_cooldowns = PM_WIRE_LIST_MAX + 1;
    s_expect_refused(&rep.base,
                     "AgentReport.status.cooldowns: more than 4096 items");
    free(cds);

    const char **gone = calloc(PM_WIRE_NODES_MAX + 1, sizeof *gone);
    for (size_t i = 0; i <= PM_WIRE_NODES_MAX; i++)
        gone[i] = "mx";
    Pm__Publication pub = PM__PUBLICATION__INIT;
    pub.kind = PM__PUBLICATION__KIND__MEMBERS;
    pub.members_base = 1, pub.members_epoch = 2;
    pub.members_gone = (char **)gone;
    pub.n_members_gone = PM_WIRE_NODES_MAX;
    cr_assert_eq(s_unpack_rc(&pub.base, &why), PM_OK, "%s", why);
    pub.n_members_gone = PM_WIRE_NODES_MAX + 1;
    s_expect_refused(&pub.base,
                     "Publication.members_gone: more than 65536 items");
    free(gone);
}

/* protobuf-c merges a message given twice, lists concatenated: two
 * statuses of 3000 cool-downs each would decode to one of 6000. */
Test(wire, a_field_given_twice_is_refused)
{
    s_raw_t status = {0}, report = {0};
    for (int i = 0; i < 2; i++) {
        s_raw_empty_items(&status, 14, 3000);
        s_raw_wrap(&report, 3, &status);
    }
    s_expect_report_why(&report, "AgentReport.status: given twice in one "
                                 "message (not a repeated field)");
    report.len = 0;
    s_raw_varint(&report, 1 << 3); /* kind, twice */
    s_raw_varint(&report, 0);
    s_raw_varint(&report, 1 << 3);
    s_raw_varint(&report, 1);
    s_expect_report_why(&report, "AgentReport.kind: given twice in one "
                                 "message (not a repeated field)");
    free(report.data);
}

Test(wire, broken_lengths_and_varints_refused)
{
    static const struct {
        uint8_t bytes[16];
        size_t len;
        const char *want;
    } cases[] = {
        /* status holds cooldowns whose length runs past the status (not
         * past the input) */
        {{0x1a, 0x02, 0x72, 0x02, 0x08, 0x00},
         6,
         "AgentReport.status.cooldowns: not a valid protobuf encoding (a "
         "length past the end at byte 2)"},
        /* past the end of the input */
        {{0x08, 0x01, 0x1a, 0x64, 0x00},
         5,
         "AgentReport.status: not a valid protobuf encoding (a length past "
         "the end at byte 2)"},
        /* kind, its varint cut short */
        {{0x08, 0x80},
         2,
         "AgentReport.kind: not a valid protobuf encoding (a varint cut "
         "short at byte 0)"},
        /* kind, a varint of 11 bytes */
        {{0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
          0x01},
         12,
         "AgentReport.kind: not a valid protobuf encoding (a varint cut "
         "short at byte 0)"},
        /* a key cut short */
        {{0x08, 0x01, 0x80},
         3,
         "AgentReport: not a valid protobuf encoding (a field key cut short "
         "at byte 2)"},
        /* a length cut short */
        {{0x1a, 0x80},
         2,
         "AgentReport.status: not a valid protobuf encoding (a length cut "
         "short at byte 0)"},
        /* field number 0 */
        {{0x00, 0x01},
         2,
         "AgentReport: not a valid protobuf encoding (a field number out of "
         "range at byte 0)"},
        /* status as a varint */
        {{0x18, 0x01},
         2,
         "AgentReport.status: not a valid protobuf encoding (a wire type "
         "the field cannot have at byte 0)"},
        /* cooldowns as a varint */
        {{0x1a, 0x02, 0x70, 0x01},
         4,
         "AgentReport.status.cooldowns: not a valid protobuf encoding (a "
         "wire type the field cannot have at byte 2)"},
        /* a group */
        {{0x1b, 0x1c},
         2,
         "AgentReport.status: not a valid protobuf encoding (a wire type "
         "protobuf-c does not read at byte 0)"},
        /* field 31, which the .proto does not declare */
        {{0xf8, 0x01, 0x01},
         3,
         "AgentReport: unknown field 31 (sent by a newer peer?)"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        s_raw_t r = {.data = (uint8_t *)cases[i].bytes, .len = cases[i].len};
        s_expect_report_why(&r, cases[i].want);
    }
}

/* Every unpack function reads the bytes before protobuf-c does. */
#define S_EXPECT_SCANNED(fn, type, name)                                       \
    do {                                                                       \
        static const uint8_t key_cut[] = {0x80};                               \
        type *m = NULL;                                                        \
        char *why = NULL;                                                      \
        cr_expect_eq(fn(key_cut, sizeof key_cut, &m, &why), PM_EPROTO);        \
        cr_expect_null(m);                                                     \
        cr_expect_str_eq(why, name ": not a valid protobuf encoding (a field " \
                                   "key cut short at byte 0)");                \
        free(why);                                                             \
    } while (0)

Test(wire, every_unpack_reads_before_decoding)
{
    S_EXPECT_SCANNED(pm_wire_unpack_request, Pm__Request, "Request");
    S_EXPECT_SCANNED(pm_wire_unpack_response, Pm__Response, "Response");
    S_EXPECT_SCANNED(pm_wire_unpack_revision, Pm__Revision, "Revision");
    S_EXPECT_SCANNED(pm_wire_unpack_node_status, Pm__NodeStatus, "NodeStatus");
    S_EXPECT_SCANNED(pm_wire_unpack_agent_report, Pm__AgentReport,
                     "AgentReport");
    S_EXPECT_SCANNED(pm_wire_unpack_publication, Pm__Publication,
                     "Publication");
    S_EXPECT_SCANNED(pm_wire_unpack_peer_message, Pm__PeerMessage,
                     "PeerMessage");
    S_EXPECT_SCANNED(pm_wire_unpack_fetch_report, Pm__FetchReport,
                     "FetchReport");
    S_EXPECT_SCANNED(pm_wire_unpack_verify_request, Pm__VerifyRequest,
                     "VerifyRequest");
}

/* privmta.proto has no repeated number (and so no packed run) and no
 * recursive message: these tests read with a Cooldown whose fields are
 * changed. FIELDS receives its fields; the descriptor points at them. */
static ProtobufCMessageDescriptor
s_cooldown_changed(ProtobufCFieldDescriptor *fields)
{
    ProtobufCMessageDescriptor d = pm__cooldown__descriptor;
    cr_assert_leq(d.n_fields, 4);
    memcpy(fields, d.fields, d.n_fields * sizeof *fields);
    d.fields = fields;
    return d;
}

static int
s_scan_rc(const ProtobufCMessageDescriptor *d, const s_raw_t *r, char **why)
{
    *why = NULL;
    return pm_wire_scan(d, r->data, r->len, why);
}

/* One run of packed varints (field 3) of N numbers. */
static void
s_raw_packed(s_raw_t *r, size_t n)
{
    s_raw_t run = {0};
    for (size_t i = 0; i < n; i++)
        s_raw_varint(&run, i * 1000); /* one to three bytes */
    s_raw_wrap(r, 3, &run);
}

/* A packed run counts its numbers, not its one record; an empty run
 * counts one (protobuf-c keeps a record per run). */
Test(wire, packed_runs_counted_by_their_numbers)
{
    ProtobufCFieldDescriptor fields[4];
    ProtobufCMessageDescriptor d = s_cooldown_changed(fields);
    ProtobufCFieldDescriptor *until = &fields[2];
    cr_assert_str_eq(until->name, "until");
    until->label = PROTOBUF_C_LABEL_REPEATED;
    until->flags |= PROTOBUF_C_FIELD_FLAG_PACKED;
    s_raw_t r = {0};
    char *why = NULL;
    s_raw_packed(&r, PM_WIRE_LIST_MAX);
    cr_expect_eq(s_scan_rc(&d, &r, &why), PM_OK, "%s", why);
    r.len = 0;
    s_raw_packed(&r, 2048);
    s_raw_packed(&r, 2047);
    s_raw_varint(&r, 3 << 3); /* and one not packed */
    s_raw_varint(&r, 7);
    cr_expect_eq(s_scan_rc(&d, &r, &why), PM_OK, "%s", why);
    s_raw_packed(&r, 1);
    cr_expect_eq(s_scan_rc(&d, &r, &why), PM_EPROTO);
    cr_expect_str_eq(why, "Cooldown.until: more than 4096 items");
    free(why);

    r.len = 0;
    s_raw_empty_items(&r, 3, PM_WIRE_LIST_MAX);
    cr_expect_eq(s_scan_rc(&d, &r, &why), PM_OK, "%s", why);
    s_raw_empty_items(&r, 3, 1);
    cr_expect_eq(s_scan_rc(&d, &r, &why), PM_EPROTO);
    cr_expect_str_eq(why, "Cooldown.until: more than 4096 items");
    free(why);

    /* the last number cut short */
    static const uint8_t cut[] = {0x1a, 0x02, 0x01, 0x80};
    cr_expect_eq(pm_wire_scan(&d, cut, sizeof cut, &why), PM_EPROTO);
    cr_expect_str_eq(why, "Cooldown.until: not a valid protobuf encoding (a "
                          "packed run cut short at byte 0)");
    free(why);
    /* fixed-size numbers: whole ones only */
    until->type = PROTOBUF_C_TYPE_SFIXED64;
    static const uint8_t fixed[] = {0x1a, 0x06, 1, 2, 3, 4, 5, 6};
    cr_expect_eq(pm_wire_scan(&d, fixed, sizeof fixed, &why), PM_EPROTO);
    cr_expect_str_eq(why, "Cooldown.until: not a valid protobuf encoding (a "
                          "packed run cut short at byte 0)");
    free(why);
    free(r.data);
}

/* Nesting: 16 levels pass, 17 are refused before protobuf-c (which has no
 * limit) would recurse into them. */
Test(wire, nesting_is_bounded)
{
    ProtobufCFieldDescriptor fields[4];
    ProtobufCMessageDescriptor d = s_cooldown_changed(fields);
    cr_assert_str_eq(fields[0].name, "mirror");
    fields[0].type = PROTOBUF_C_TYPE_MESSAGE;
    fields[0].descriptor = &d;
    s_raw_t r = {0}, inner = {0};
    char *why = NULL;
    for (int depth = 2; depth <= 16; depth++) {
        s_raw_wrap(&r, 1, &inner);
        inner = r;
        r = (s_raw_t){0};
    }
    cr_expect_eq(s_scan_rc(&d, &inner, &why), PM_OK, "%s", why);
    s_raw_wrap(&r, 1, &inner);
    cr_expect_eq(s_scan_rc(&d, &r, &why), PM_EPROTO);
    cr_expect_str_eq(why, "Cooldown.mirror.mirror.mirror.mirror.mirror.mirror."
                          "mirror.mirror.mirror.mirror.mirror.mirror.mirror."
                          "mirror.mirror.mirror: nested more than 16 deep");
    free(why);
    free(r.data);
}
