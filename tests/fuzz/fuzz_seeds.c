/* fuzz_seeds.c - writes the seeds that are better built than committed:
 *
 *   fuzz_seeds DIR
 *     DIR/fuzz_wire/NAME   one encoded message of each type (and each
 *                          request op, publication kind and peer message
 *                          kind), packed by pm_wire_pack from a
 *                          default policy, preceded by fuzz_wire's type
 *                          byte; built from today's .proto, so they never
 *                          go stale;
 *     DIR/policy_keys.dict every policy key, dotted and by segment, in
 *                          libFuzzer's dictionary syntax (from the table,
 *                          pm_policy_keys: no second list of keys).
 *   fuzz_seeds DIR POLICY.yaml...
 *     also DIR/fuzz_policy_json/NAME.json: each YAML policy of the test
 *                          corpus (tests/policy/valid and invalid) written
 *                          as JSON, so that the JSON target starts from
 *                          every mistake the YAML corpus shows.
 */
#include "pm_error.h"
#include "pm_mem.h"
#include "pm_policy.h"
#include "pm_value.h"
#include "pm_wire.h"

#include <jansson.h>
#include <libgen.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* fuzz_wire's type byte (its s_types order). */
enum {
    T_REQUEST,
    T_RESPONSE,
    T_REVISION,
    T_NODE_STATUS,
    T_REPORT,
    T_PUB,
    T_POLICY,
    T_PEER,
    T_FETCH
};

static const char s_digest[] =
    "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

static void
s_write(const char *dir, const char *name, int type, const ProtobufCMessage *m)
{
    size_t len = 0;
    uint8_t *buf = pm_wire_pack(m, &len);
    char *path = pm_asprintf("%s/fuzz_wire/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f || fputc(type, f) == EOF || fwrite(buf, 1, len, f) != len ||
        fclose(f) != 0) {
        fprintf(stderr, "fuzz_seeds: %s: %s\n", path, strerror(errno));
        exit(1);
    }
    free(path);
    free(buf);
}

static void
s_wire(const char *dir)
{
    Pm__Policy *policy = pm_policy_new();
    s_write(dir, "policy", T_POLICY, &policy->base);

    Pm__Edit edit = PM__EDIT__INIT, *edits[] = {&edit};
    edit.key = "antispam.enabled";
    edit.value = "true";
    Pm__Request req = PM__REQUEST__INIT;
    req.policy = policy;
    req.expect_rev = 3;
    req.n_edits = 1;
    req.edits = edits;
    req.node = "node1";
    req.rev = 2;
    req.rev_b = 3;
    req.public_key = "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7";
    req.domain = "example.com";
    req.selector = "s1";
    req.private_key =
        (ProtobufCBinaryData){.len = 4, .data = (uint8_t *)"PEM\n"};
    for (const ProtobufCEnumValue *v = pm__request__op__descriptor.values;
         v < pm__request__op__descriptor.values +
                 pm__request__op__descriptor.n_values;
         v++) {
        req.op = v->value;
        char *name = pm_asprintf("request_%s", v->name);
        s_write(dir, name, T_REQUEST, &req.base);
        free(name);
    }

    Pm__Revision rev = PM__REVISION__INIT;
    rev.number = 3;
    rev.parent = 2;
    rev.author = "admin (root)";
    rev.time = 1700000000;
    rev.message = "tighten antispam";
    rev.digest = (char *)s_digest;
    rev.policy = policy;
    s_write(dir, "revision", T_REVISION, &rev.base);

    Pm__ServiceStatus ok = PM__SERVICE_STATUS__INIT;
    ok.state = PM__SERVICE_STATUS__STATE__OK;
    ok.detail = "spamd 4 ms";
    char *overrides[] = {"transport_maps: example.org -> [10.0.0.1]:25"};
    Pm__NodeStatus st = PM__NODE_STATUS__INIT;
    st.name = "node1";
    st.address = "10.0.0.2";
    st.applied_rev = 3;
    st.postfix_running = true;
    st.antispam = st.antivirus = st.dkim = st.auth = &ok;
    st.n_relay_overrides = 1;
    st.relay_overrides = overrides;
    s_write(dir, "node_status", T_NODE_STATUS, &st.base);

    Pm__DiffEntry diff = PM__DIFF_ENTRY__INIT, *diffs[] = {&diff};
    diff.key = "antispam.enabled";
    diff.before = "false";
    diff.after = "true";
    Pm__Revision *history[] = {&rev};
    Pm__NodeStatus *nodes[] = {&st};
    char *problems[] = {"antispam.level: unknown"};
    Pm__Response resp = PM__RESPONSE__INIT;
    resp.error = "";
    resp.n_problems = 1;
    resp.problems = problems;
    resp.revision = &rev;
    resp.n_history = 1;
    resp.history = history;
    resp.n_diff = 1;
    resp.diff = diffs;
    resp.head = 3;
    resp.n_nodes = 1;
    resp.nodes = nodes;
    s_write(dir, "response", T_RESPONSE, &resp.base);

    Pm__AgentReport report = PM__AGENT_REPORT__INIT;
    report.applied_rev = 3;
    report.status = &st;
    s_write(dir, "agent_report", T_REPORT, &report.base);

    Pm__Secret secret = PM__SECRET__INIT, *secrets[] = {&secret};
    secret.id = "example.com/s1";
    secret.data = (ProtobufCBinaryData){.len = 4, .data = (uint8_t *)"PEM\n"};
    Pm__Publication pub = PM__PUBLICATION__INIT;
    pub.kind = PM__PUBLICATION__KIND__SNAPSHOT;
    pub.head = 3;
    pub.revision = &rev;
    pub.node = "node1";
    pub.n_secrets = 1;
    pub.secrets = secrets;
    s_write(dir, "publication", T_PUB, &pub.base);
    pub.kind = PM__PUBLICATION__KIND__HEARTBEAT;
    pub.revision = NULL;
    pub.n_secrets = 0;
    s_write(dir, "heartbeat", T_PUB, &pub.base);
    pm_policy_free(&policy);
}

/* The cluster's membership as the controller publishes it to agents. */
static void
s_wire_members(const char *dir)
{
    Pm__Member m = PM__MEMBER__INIT, *members[] = {&m};
    m.name = "node2";
    m.peer_endpoint = "tcp://10.0.0.3:7301";
    m.public_key = "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7";
    m.live = true;
    Pm__Duty duty = PM__DUTY__INIT, *duties[] = {&duty};
    duty.database = "daily";
    duty.node = "node2";
    Pm__Cooldown cool = PM__COOLDOWN__INIT, *cools[] = {&cool};
    cool.mirror = "https://database.clamav.net";
    cool.http_status = 429;
    cool.until = 1700003600;
    cool.node = "node2";
    Pm__Publication pub = PM__PUBLICATION__INIT;
    pub.kind = PM__PUBLICATION__KIND__MEMBERS;
    pub.head = 3;
    pub.n_members = 1;
    pub.members = members;
    pub.n_duties = 1;
    pub.duties = duties;
    pub.n_cooldowns = 1;
    pub.cooldowns = cools;
    s_write(dir, "members", T_PUB, &pub.base);
}

/* One agent-to-agent message of each kind (pm_peer). */
static void
s_wire_peer(const char *dir)
{
    Pm__SignatureDb db = PM__SIGNATURE_DB__INIT, *dbs[] = {&db};
    db.name = "daily";
    db.version = 27000;
    db.sigs = 2070000;
    db.built = 1700000000;
    db.source = "mirror https://database.clamav.net";
    Pm__Cooldown cool = PM__COOLDOWN__INIT, *cools[] = {&cool};
    cool.mirror = "https://database.clamav.net";
    cool.http_status = 403;
    cool.until = 1700086400;
    cool.node = "node1";
    Pm__PeerMessage m = PM__PEER_MESSAGE__INIT;
    m.n_databases = 1;
    m.databases = dbs;
    m.n_cooldowns = 1;
    m.cooldowns = cools;
    s_write(dir, "peer_versions", T_PEER, &m.base);
    m.kind = PM__PEER_MESSAGE__KIND__VERSIONS_REPLY;
    s_write(dir, "peer_versions_reply", T_PEER, &m.base);
    Pm__PeerMessage get = PM__PEER_MESSAGE__INIT;
    get.kind = PM__PEER_MESSAGE__KIND__GET;
    get.file = "daily.cld";
    get.version = 27000;
    get.offset = 1048576;
    s_write(dir, "peer_get", T_PEER, &get.base);
    get.kind = PM__PEER_MESSAGE__KIND__CHUNK;
    get.total = 1048600;
    get.data = (ProtobufCBinaryData){
        .len = 24, .data = (uint8_t *)"ClamAV-VDB:01 Jan 2024 0"};
    s_write(dir, "peer_chunk", T_PEER, &get.base);
    Pm__PeerMessage err = PM__PEER_MESSAGE__INIT;
    err.kind = PM__PEER_MESSAGE__KIND__ERROR;
    err.file = "daily.cld";
    err.version = 27001;
    err.error = "daily.cld: version 27000 is held, not 27001";
    s_write(dir, "peer_error", T_PEER, &err.base);
    /* privmta-sigfetch's report: one database done, one rate limited */
    Pm__FetchResult ok = PM__FETCH_RESULT__INIT, lim = PM__FETCH_RESULT__INIT;
    Pm__FetchResult *res[] = {&ok, &lim};
    ok.name = "daily";
    ok.changed = true;
    ok.old_version = 27000;
    ok.version = 27001;
    ok.sigs = 2070000;
    ok.built = 1700000000;
    ok.mirror = "https://database.clamav.net";
    ok.http_status = 200;
    lim.name = "main";
    lim.err = PM_EDENIED;
    lim.why = "https://database.clamav.net: 429, retry after 120 s";
    lim.http_status = 429;
    Pm__FetchReport rep = PM__FETCH_REPORT__INIT;
    rep.n_dbs = 2;
    rep.dbs = res;
    rep.n_cooldowns = 1;
    rep.cooldowns = cools;
    s_write(dir, "fetch_report", T_FETCH, &rep.base);
}

/* One dictionary entry: "TEXT" (policy names are plain ASCII). */
static void
s_entry(FILE *f, const char *text, size_t len)
{
    fprintf(f, "\"%.*s\"\n", (int)len, text);
}

static void
s_dict(const char *dir)
{
    char *path = pm_asprintf("%s/policy_keys.dict", dir);
    FILE *f = fopen(path, "w");
    if (!f) {
        fprintf(stderr, "fuzz_seeds: %s: %s\n", path, strerror(errno));
        exit(1);
    }
    fprintf(f, "# generated by fuzz_seeds from pm_policy_keys()\n");
    size_t n = 0;
    const pm_key_t *keys = pm_policy_keys(&n);
    for (size_t i = 0; i < n; i++) {
        const char *name = keys[i].name;
        s_entry(f, name, strlen(name));
        for (const char *seg = name; *seg;) {
            size_t len = strcspn(seg, ".");
            s_entry(f, seg, len);
            seg += len + (seg[len] == '.');
        }
        for (const char *const *c = keys[i].choices; c && *c; c++)
            s_entry(f, *c, strlen(*c));
    }
    fclose(f);
    free(path);
}

/* A parsed document as JSON that pm_value_parse reads back the same:
 * unquoted true/false/null and integers stay literals, the rest strings. */
static json_t *
s_to_json(const pm_value_t *v)
{
    if (v->kind == PM_V_SEQ) {
        json_t *a = json_array();
        for (size_t i = 0; i < v->n; i++)
            json_array_append_new(a, s_to_json(v->items[i]));
        return a;
    }
    if (v->kind == PM_V_MAP) {
        json_t *o = json_object();
        for (size_t i = 0; i < v->n; i++)
            json_object_set_new(o, v->keys[i], s_to_json(v->items[i]));
        return o;
    }
    if (!v->quoted) {
        json_error_t err;
        json_t *lit = json_loads(v->text, JSON_DECODE_ANY, &err);
        if (lit && !json_is_string(lit) && !json_is_real(lit))
            return lit;
        json_decref(lit);
    }
    return json_string(v->text);
}

static void
s_policy_json(const char *dir, const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "fuzz_seeds: %s: %s\n", path, strerror(errno));
        exit(1);
    }
    char buf[65536];
    size_t len = fread(buf, 1, sizeof buf, f);
    fclose(f);
    pm_diag_t *diag = pm_diag_new(path);
    pm_value_t *doc = pm_value_parse(buf, len, 1, diag);
    pm_diag_destroy(&diag);
    if (!doc)
        return; /* a YAML syntax error has no JSON form */
    json_t *j = s_to_json(doc);
    pm_value_destroy(&doc);
    char *copy = pm_strdup(path);
    char *out = pm_asprintf("%s/fuzz_policy_json/%s.json", dir, basename(copy));
    if (json_dump_file(j, out, JSON_INDENT(2) | JSON_PRESERVE_ORDER) != 0) {
        fprintf(stderr, "fuzz_seeds: cannot write %s\n", out);
        exit(1);
    }
    json_decref(j);
    free(out);
    free(copy);
}

int
main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: fuzz_seeds DIR [POLICY.yaml...]\n");
        return 2;
    }
    mkdir(argv[1], 0755);
    const char *subs[] = {"fuzz_wire", "fuzz_policy_json"};
    for (size_t i = 0; i < 2; i++) {
        char *sub = pm_asprintf("%s/%s", argv[1], subs[i]);
        mkdir(sub, 0755);
        free(sub);
    }
    s_wire(argv[1]);
    s_wire_members(argv[1]);
    s_wire_peer(argv[1]);
    s_dict(argv[1]);
    for (int i = 2; i < argc; i++)
        s_policy_json(argv[1], argv[i]);
    return 0;
}
