/* test_policy.c - the policy table and everything derived from it.
 *
 * The table is the only list of keys, so its integrity is checked against
 * the protobuf descriptor; then defaults, round trips through YAML and JSON,
 * digests, `policy set` edits, per-node overrides, custom signatures and the
 * "report every problem" rule of validation.
 */
#include <criterion/criterion.h>

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pm_check.h"
#include "pm_policy.h"
#include "pm_policy_private.h"
#include "pm_sigcheck.h"

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

/* "privmta-test-marker" in hex: a signature that matches nothing real. */
#define MARKER_NDB                                                             \
    "PrivmtaTest.Marker:0:*:707269766d74612d746573742d6d61726b6572\n"

/* ------------------------------------------------------------------------
 * Helpers */

/* All diag lines joined, for failure messages. Static buffer. */
static const char *
s_lines(const pm_diag_t *diag)
{
    static char all[8192];
    all[0] = '\0';
    for (size_t i = 0; i < pm_diag_count(diag); i++)
        snprintf(all + strlen(all), sizeof all - strlen(all), "\n  %s",
                 pm_diag_line(diag, i));
    return all;
}

/* Parses TEXT as a policy document; NULL when refused, with DIAG (may be
 * NULL) holding the problems. */
static Pm__Policy *
s_parse(const char *text, pm_diag_t *diag)
{
    pm_diag_t *own = diag ? NULL : pm_diag_new("test");
    pm_diag_t *d = diag ? diag : own;
    pm_value_t *v = pm_value_parse(text, strlen(text), 1, d);
    Pm__Policy *p = v ? pm_policy_from_value(v, NULL, d) : NULL;
    pm_value_destroy(&v);
    pm_diag_destroy(&own);
    return p;
}

/* Parses TEXT and asserts it is accepted. */
static Pm__Policy *
s_parse_ok(const char *text)
{
    pm_diag_t *diag = pm_diag_new("test");
    Pm__Policy *p = s_parse(text, diag);
    /* copy the problems out first: a failed assert ends the test here, and
     * the diag would show up as a leak under ASan */
    char *problems = strdup(s_lines(diag));
    size_t n = pm_diag_count(diag);
    pm_diag_destroy(&diag);
    if (!p || n) {
        pm_policy_free(&p);
        cr_log_error("refused:%s\n--- policy:\n%s", problems, text);
        free(problems);
        cr_assert_fail("a valid policy was refused");
    }
    free(problems);
    return p;
}

static void
s_digest(const Pm__Policy *p, char out[65])
{
    pm_policy_digest(p, out);
    cr_assert_eq(strlen(out), 64);
}

/* The text of KEY in P (compact JSON); static buffer per call slot. */
static char *
s_text(const Pm__Policy *p, const char *name)
{
    const pm_key_t *key = pm_policy_key(name);
    cr_assert_not_null(key, "no key %s", name);
    return pm_policy_key_text(p, key);
}

static void
s_expect_text(const Pm__Policy *p, const char *name, const char *want)
{
    char *got = s_text(p, name);
    cr_expect_str_eq(got, want, "%s", name);
    free(got);
}

typedef struct {
    const char *key;
    Pm__Edit__Op op;
    const char *value;
} edit_t;

/* Runs pm_policy_edit on *P with the edits; returns the problem count. On a
 * rejected edit, checks that *P was left alone and that the count equals
 * the lines added. */
static size_t
s_edit(Pm__Policy **p, const char *node, const edit_t *rows, size_t n,
       pm_diag_t *diag)
{
    Pm__Edit *edits = calloc(n, sizeof *edits);
    Pm__Edit **ptrs = calloc(n, sizeof *ptrs);
    for (size_t i = 0; i < n; i++) {
        pm__edit__init(&edits[i]);
        edits[i].key = (char *)rows[i].key;
        edits[i].op = rows[i].op;
        edits[i].value = (char *)(rows[i].value ? rows[i].value : "");
        ptrs[i] = &edits[i];
    }
    char before[65], after[65];
    s_digest(*p, before);
    Pm__Policy *was = *p;
    size_t lines = pm_diag_count(diag);
    size_t problems = pm_policy_edit(p, node, ptrs, n, diag);
    lines = pm_diag_count(diag) - lines;
    cr_expect_eq(problems, lines, "returned %zu, reported %zu:%s", problems,
                 lines, s_lines(diag));
    if (problems) {
        cr_expect_eq(*p, was, "a rejected edit replaced the policy");
        s_digest(*p, after);
        cr_expect_str_eq(before, after, "a rejected edit changed the policy");
    }
    free(ptrs);
    free(edits);
    return problems;
}

static void
s_edit_ok(Pm__Policy **p, const char *node, const edit_t *rows, size_t n)
{
    pm_diag_t *diag = pm_diag_new("command line");
    size_t problems = s_edit(p, node, rows, n, diag);
    char *lines = strdup(s_lines(diag));
    pm_diag_destroy(&diag);
    if (problems) {
        /* free before the assert ends the test, so ASan sees no leak */
        pm_policy_free(p);
        cr_log_error("%s%s: edit refused:%s", rows[0].key,
                     node ? " (node)" : "", lines);
        free(lines);
        cr_assert_fail("a valid edit was refused");
    }
    free(lines);
}

/* Applies a rejected edit and returns its diag; caller destroys it. */
static pm_diag_t *
s_edit_bad(Pm__Policy **p, const char *node, const edit_t *rows, size_t n)
{
    pm_diag_t *diag = pm_diag_new("command line");
    size_t problems = s_edit(p, node, rows, n, diag);
    cr_assert_gt(problems, 0, "edit accepted");
    return diag;
}

static bool
s_diag_has(const pm_diag_t *diag, const char *key, const char *fragment)
{
    for (size_t i = 0; i < pm_diag_count(diag); i++) {
        const char *k = pm_diag_key(diag, i);
        if (key && (!k || strcmp(k, key) != 0))
            continue;
        if (!fragment || strstr(pm_diag_problem(diag, i), fragment))
            return true;
    }
    return false;
}

/* A policy away from the defaults almost everywhere, with a multi-line
 * custom signature, DKIM and per-node overrides. */
static const char *const s_rich =
    "inbound:\n"
    "  blocked_extensions: [exe, \"@common\", iso, tar-gz, my_ext]\n"
    "  notify_admin: false\n"
    "  admin_address: \"it.admin@example.com\"\n"
    "  checks: {helo_fqdn: true, sender_domain: false}\n"
    "outbound:\n"
    "  mynetworks: [127.0.0.0/8, \"[::1]/128\", 10.20.0.0/16, "
    "\"[2001:db8:1::]/48\"]\n"
    "  relay_host: \"[relay.example.com]:587\"\n"
    "  fallback_relay_host: \"[ipv6:2001:db8::25]:25\"\n"
    "antispam:\n"
    "  level: custom\n"
    "  tag_percent: 21\n"
    "  kill_percent: 77\n"
    "  subject_prefix: \"[SPAM] \\u00e9t\\u00e9: #1 'x' \\\"y\\\" \"\n"
    "  kill_action: deliver\n"
    "antivirus:\n"
    "  mirrors: [\"https://database.clamav.net\", "
    "\"http://mirror.example.com:8080/clam?x=1\"]\n"
    "  update_frequency: 90m\n"
    "  custom_signatures:\n"
    "    - name: local.ndb\n"
    "      content: |\n"
    "        PrivmtaTest.Marker:0:*:707269766d74612d746573742d6d61726b6572\n"
    "        PrivmtaTest.Other:0:*:6f746865722d6d61726b6572\n"
    "dkim:\n"
    "  domains:\n"
    "    - {domain: example.com, selector: s2024, key: \"ex: key\"}\n"
    "nodes:\n"
    "  mx1:\n"
    "    outbound.relay_host: relay-eu.example.com:2525\n"
    "  mx2:\n"
    "    outbound:\n"
    "      mynetworks: [127.0.0.0/8, 10.0.0.0/8]\n"
    "      tls_auth_only: false\n";

/* ------------------------------------------------------------------------
 * The table */

Test(table, every_field_exists_with_a_matching_type)
{
    size_t n;
    const pm_key_t *keys = pm_policy_keys(&n);
    cr_assert_gt(n, 30);
    for (size_t i = 0; i < n; i++) {
        const pm_key_t *k = &keys[i];
        const ProtobufCFieldDescriptor *f =
            protobuf_c_message_descriptor_get_field_by_name(
                &pm__policy__descriptor, k->field);
        cr_assert_not_null(f, "%s: no Policy field '%s'", k->name, k->field);
        ProtobufCType want = PROTOBUF_C_TYPE_STRING;
        bool repeated = false;
        const ProtobufCMessageDescriptor *msg = NULL;
        switch (k->type) {
        case PM_KT_BOOL:
            want = PROTOBUF_C_TYPE_BOOL;
            break;
        case PM_KT_PERCENT:
        case PM_KT_DURATION:
            want = PROTOBUF_C_TYPE_UINT32;
            break;
        case PM_KT_ENUM:
        case PM_KT_STRING:
            break;
        case PM_KT_LIST:
            repeated = true;
            break;
        case PM_KT_SIGNATURES:
            want = PROTOBUF_C_TYPE_MESSAGE;
            repeated = true;
            msg = &pm__custom_signature__descriptor;
            break;
        case PM_KT_DKIM:
            want = PROTOBUF_C_TYPE_MESSAGE;
            repeated = true;
            msg = &pm__dkim_domain__descriptor;
            break;
        }
        cr_expect_eq(f->type, want, "%s: field %s has type %d, want %d",
                     k->name, k->field, (int)f->type, (int)want);
        cr_expect_eq(f->label == PROTOBUF_C_LABEL_REPEATED, repeated,
                     "%s: field %s repeated mismatch", k->name, k->field);
        if (msg)
            cr_expect_eq(f->descriptor, msg, "%s: wrong message type", k->name);
        cr_expect_eq(pm_policy_field(k), f);
        cr_expect_eq(pm_policy_key(k->name), k);
        cr_expect_eq(pm_policy_key_index(k), i);
        cr_expect_eq(k->type == PM_KT_ENUM, k->choices != NULL,
                     "%s: choices only for enums", k->name);
        cr_expect_not_null(k->dflt, "%s", k->name);
        cr_expect(k->drives && *k->drives, "%s: says nothing it drives",
                  k->name);
        cr_expect(k->help && *k->help, "%s: no help", k->name);
    }
}

/* Every Policy field but the overrides is used by exactly one key: there is
 * no value outside the table and no field shared by two keys. */
Test(table, every_policy_field_belongs_to_one_key)
{
    size_t n;
    const pm_key_t *keys = pm_policy_keys(&n);
    const ProtobufCMessageDescriptor *d = &pm__policy__descriptor;
    for (unsigned i = 0; i < d->n_fields; i++) {
        const char *field = d->fields[i].name;
        size_t users = 0;
        for (size_t j = 0; j < n; j++)
            users += strcmp(keys[j].field, field) == 0;
        if (strcmp(field, "overrides") == 0)
            cr_expect_eq(users, 0, "overrides is not a key");
        else
            cr_expect_eq(users, 1, "Policy.%s is used by %zu keys", field,
                         users);
    }
    cr_expect_eq(n, d->n_fields - 1, "%zu keys for %u fields", n, d->n_fields);
}

Test(table, key_names_are_unique_and_well_formed)
{
    size_t n;
    const pm_key_t *keys = pm_policy_keys(&n);
    for (size_t i = 0; i < n; i++) {
        const char *name = keys[i].name;
        cr_expect(strchr(name, '.'), "%s: not in a group", name);
        for (const char *c = name; *c; c++)
            cr_expect((*c >= 'a' && *c <= 'z') || *c == '_' || *c == '.',
                      "%s: odd character", name);
        for (size_t j = 0; j < i; j++)
            cr_expect_str_neq(name, keys[j].name, "%s is declared twice", name);
        /* a key is never also a group: "a.b" and "a.b.c" cannot coexist */
        size_t len = strlen(name);
        for (size_t j = 0; j < n; j++)
            cr_expect(strncmp(keys[j].name, name, len) != 0 ||
                          keys[j].name[len] != '.',
                      "%s is both a key and a group", name);
    }
    cr_expect_null(pm_policy_key("inbound"));
    cr_expect_null(pm_policy_key("inbound.checks"));
    cr_expect_null(pm_policy_key(""));
}

Test(table, defaults_are_valid)
{
    Pm__Policy *p = pm_policy_new();
    cr_assert_not_null(p);
    pm_diag_t *diag = pm_diag_new("default");
    cr_expect_eq(pm_policy_validate(p, diag), 0, "%s", s_lines(diag));
    cr_expect_eq(pm_diag_count(diag), 0);
    /* each default, read back as a document, gives the same policy */
    Pm__Policy *empty = s_parse_ok("");
    char a[65], b[65];
    s_digest(p, a);
    s_digest(empty, b);
    cr_expect_str_eq(a, b);
    pm_policy_free(&empty);
    pm_diag_destroy(&diag);
    pm_policy_free(&p);
    pm_policy_free(&p); /* safe twice */
}

Test(table, common_preset_is_carbonios_27)
{
    static const char *const want[] = {
        "asd", "bat", "chm", "cmd", "com", "dll", "do",  "exe", "hlp",
        "hta", "js",  "jse", "lnk", "ocx", "pif", "reg", "scr", "shb",
        "shm", "shs", "vbe", "vbs", "vbx", "vxd", "wsf", "wsh", "xl"};
    size_t n = 0;
    while (pm_policy_common_extensions[n])
        n++;
    cr_assert_eq(n, COUNT(want));
    for (size_t i = 0; i < n; i++) {
        cr_expect_str_eq(pm_policy_common_extensions[i], want[i]);
        char *problem = pm_check_extension(want[i]);
        cr_expect_null(problem, "%s: %s", want[i], problem);
        free(problem);
    }
}

/* ------------------------------------------------------------------------
 * Defaults (DESIGN.md) */

Test(defaults, match_design)
{
    Pm__Policy *p = pm_policy_new();
    static const struct {
        const char *key, *text;
    } want[] = {
        {"inbound.blocked_extensions", "[]"},
        {"inbound.notify_admin", "true"},
        {"inbound.notify_recipient", "true"},
        {"inbound.admin_address", "\"\""},
        {"inbound.reject_unlisted_sender", "true"},
        {"inbound.reject_unlisted_recipient", "true"},
        {"inbound.reject_sender_login_mismatch", "true"},
        {"inbound.checks.client_hostname", "false"},
        {"inbound.checks.reverse_client_hostname", "false"},
        {"inbound.checks.helo_resolves", "false"},
        {"inbound.checks.helo_valid", "true"},
        {"inbound.checks.helo_fqdn", "false"},
        {"inbound.checks.sender_domain", "true"},
        {"inbound.checks.sender_fqdn", "true"},
        {"outbound.authenticated_header", "false"},
        {"outbound.sasl_auth", "true"},
        {"outbound.tls_auth_only", "true"},
        {"outbound.mynetworks", "[\"127.0.0.0/8\",\"[::1]/128\"]"},
        {"outbound.relay_host", "\"\""},
        {"outbound.fallback_relay_host", "\"\""},
        {"antispam.enabled", "true"},
        {"antispam.level", "\"medium\""},
        {"antispam.tag_percent", "33"},
        {"antispam.kill_percent", "75"},
        {"antispam.subject_prefix", "\"\""},
        {"antispam.kill_action", "\"discard\""},
        {"antispam.scan_outbound", "false"},
        {"antispam.dkim_verify", "true"},
        {"antivirus.enabled", "true"},
        {"antivirus.mirrors", "[\"https://database.clamav.net\"]"},
        {"antivirus.databases", "[\"main\",\"daily\",\"bytecode\"]"},
        {"antivirus.custom_signatures", "[]"},
        {"antivirus.update_frequency", "\"2h\""},
        {"antivirus.block_encrypted_archives", "true"},
        {"antivirus.notify_admin", "true"},
        {"antivirus.notify_recipient", "true"},
        {"dkim.domains", "[]"},
    };
    size_t n;
    pm_policy_keys(&n);
    cr_expect_eq(n, COUNT(want), "DESIGN.md lists %zu keys, table has %zu",
                 COUNT(want), n);
    for (size_t i = 0; i < COUNT(want); i++)
        s_expect_text(p, want[i].key, want[i].text);
    /* the raw fields behind the text */
    cr_expect(p->inbound_checks_helo_valid);
    cr_expect_eq(p->antispam_tag_percent, 33);
    cr_expect_eq(p->antispam_kill_percent, 75);
    cr_expect_eq(p->antivirus_update_frequency, 7200);
    cr_assert_eq(p->n_outbound_mynetworks, 2);
    cr_expect_str_eq(p->outbound_mynetworks[0], "127.0.0.0/8");
    cr_expect_str_eq(p->outbound_mynetworks[1], "[::1]/128");
    cr_assert_eq(p->n_antivirus_mirrors, 1);
    cr_expect_str_eq(p->antivirus_mirrors[0], "https://database.clamav.net");
    cr_expect_str_eq(p->antispam_kill_action, "discard");
    cr_expect_eq(p->n_overrides, 0);
    pm_policy_free(&p);
}

Test(defaults, per_node_keys)
{
    static const char *const node_keys[] = {
        "inbound.admin_address",       "outbound.authenticated_header",
        "outbound.sasl_auth",          "outbound.tls_auth_only",
        "outbound.mynetworks",         "outbound.relay_host",
        "outbound.fallback_relay_host"};
    size_t n, per_node = 0;
    const pm_key_t *keys = pm_policy_keys(&n);
    for (size_t i = 0; i < n; i++)
        per_node += (keys[i].flags & PM_KF_NODE) != 0;
    cr_expect_eq(per_node, COUNT(node_keys));
    for (size_t i = 0; i < COUNT(node_keys); i++)
        cr_expect(pm_policy_key(node_keys[i])->flags & PM_KF_NODE, "%s",
                  node_keys[i]);
    cr_expect_not(pm_policy_key("antispam.enabled")->flags & PM_KF_NODE);
}

Test(defaults, levels)
{
    unsigned tag = 0, kill = 0;
    cr_assert(pm_policy_level_percents("low", &tag, &kill));
    cr_expect(tag == 40 && kill == 90);
    cr_assert(pm_policy_level_percents("medium", &tag, &kill));
    cr_expect(tag == 33 && kill == 75);
    cr_assert(pm_policy_level_percents("high", &tag, &kill));
    cr_expect(tag == 16 && kill == 66);
    cr_expect_not(pm_policy_level_percents("custom", &tag, &kill));
    cr_expect_not(pm_policy_level_percents("extreme", &tag, &kill));
    cr_expect_str_eq(pm_policy_level_for(16, 66), "high");
    cr_expect_null(pm_policy_level_for(16, 75));
}

/* ------------------------------------------------------------------------
 * Round trips and digests */

static void
s_yaml_round_trip(const Pm__Policy *p)
{
    char *yaml = pm_policy_to_yaml(p, "generated by test_policy\nline two");
    cr_assert_not_null(yaml);
    cr_expect_eq(strncmp(yaml, "# generated by test_policy\n# line two\n", 38),
                 0, "header:\n%s", yaml);
    pm_diag_t *diag = pm_diag_new("yaml");
    Pm__Policy *back = s_parse(yaml, diag);
    cr_assert_not_null(back, "to_yaml output refused:%s\n%s", s_lines(diag),
                       yaml);
    char a[65], b[65];
    s_digest(p, a);
    s_digest(back, b);
    cr_expect_str_eq(a, b, "YAML round trip changed the policy:\n%s", yaml);
    /* rendering is deterministic */
    char *again = pm_policy_to_yaml(back, "generated by test_policy\nline two");
    cr_expect_str_eq(yaml, again);
    free(again);
    pm_policy_free(&back);
    pm_diag_destroy(&diag);
    free(yaml);
}

static void
s_json_round_trip(const Pm__Policy *p, bool pretty)
{
    char *json = pm_policy_to_json(p, pretty);
    cr_assert_not_null(json);
    cr_expect_eq(json[0], '{');
    pm_diag_t *diag = pm_diag_new("json");
    Pm__Policy *back = s_parse(json, diag);
    cr_assert_not_null(back, "to_json output refused:%s\n%s", s_lines(diag),
                       json);
    char a[65], b[65];
    s_digest(p, a);
    s_digest(back, b);
    cr_expect_str_eq(a, b, "JSON round trip changed the policy:\n%s", json);
    pm_policy_free(&back);
    pm_diag_destroy(&diag);
    free(json);
}

Test(round_trip, defaults)
{
    Pm__Policy *p = pm_policy_new();
    s_yaml_round_trip(p);
    s_json_round_trip(p, true);
    s_json_round_trip(p, false);
    pm_policy_free(&p);
}

Test(round_trip, rich_policy_with_overrides_and_signature)
{
    Pm__Policy *p = s_parse_ok(s_rich);
    cr_assert_eq(p->n_overrides, 3);
    cr_assert_eq(p->n_antivirus_custom_signatures, 1);
    cr_expect_not_null(
        strchr((char *)p->antivirus_custom_signatures[0]->content.data, '\n'));
    s_yaml_round_trip(p);
    s_json_round_trip(p, true);
    s_json_round_trip(p, false);
    pm_policy_free(&p);
}

/* A round trip keeps the bytes, not just the digest. */
Test(round_trip, keeps_values_exactly)
{
    Pm__Policy *p = s_parse_ok(s_rich);
    char *yaml = pm_policy_to_yaml(p, NULL);
    Pm__Policy *back = s_parse_ok(yaml);
    cr_expect_str_eq(back->antispam_subject_prefix,
                     "[SPAM] \xc3\xa9t\xc3\xa9: #1 'x' \"y\" ");
    const Pm__CustomSignature *s = back->antivirus_custom_signatures[0];
    const char *body =
        MARKER_NDB "PrivmtaTest.Other:0:*:6f746865722d6d61726b6572\n";
    cr_expect_eq(s->content.len, strlen(body));
    cr_expect(s->content.len == strlen(body) &&
              memcmp(s->content.data, body, s->content.len) == 0);
    cr_expect_str_eq(s->sha256, p->antivirus_custom_signatures[0]->sha256);
    cr_expect_str_eq(back->dkim_domains[0]->key, "ex: key");
    cr_expect_eq(back->antivirus_update_frequency, 5400);
    pm_policy_free(&back);
    free(yaml);
    pm_policy_free(&p);
}

/* Strings that YAML would read as something else unless quoted. */
Test(round_trip, tricky_strings)
{
    static const char *const texts[] = {
        "yes",      "no",
        "~",        "null",
        "123",      "0x1f",
        "1e3",      "- a",
        "? a",      "#a",
        "a #b",     "a: b",
        "*a",       "&a",
        "!a",       "%a",
        "|a",       ">a",
        "'",        "\"",
        " a",       "a ",
        "@a",       "`a",
        "[a]",      "{a}",
        "a,b",      "\\",
        "---",      "...",
        "=",        "<<",
        "\xc3\xa9", "\xe2\x82\xac \xf0\x9f\x92\xa9"};
    for (size_t i = 0; i < COUNT(texts); i++) {
        Pm__Policy *p = pm_policy_new();
        pm_policy_set_string(&p->antispam_subject_prefix, texts[i]);
        Pm__DkimDomain *d = malloc(sizeof *d);
        pm__dkim_domain__init(d);
        d->domain = strdup("example.com");
        d->selector = strdup("s1");
        d->key = strdup(texts[i]);
        p->dkim_domains = malloc(sizeof *p->dkim_domains);
        p->dkim_domains[0] = d;
        p->n_dkim_domains = 1;
        pm_diag_t *diag = pm_diag_new("t");
        cr_assert_eq(pm_policy_validate(p, diag), 0, "'%s':%s", texts[i],
                     s_lines(diag));
        pm_diag_destroy(&diag);
        s_yaml_round_trip(p);
        s_json_round_trip(p, false);
        char *yaml = pm_policy_to_yaml(p, NULL);
        Pm__Policy *back = s_parse_ok(yaml);
        cr_expect_str_eq(back->antispam_subject_prefix, texts[i]);
        cr_expect_str_eq(back->dkim_domains[0]->key, texts[i]);
        pm_policy_free(&back);
        free(yaml);
        pm_policy_free(&p);
    }
}

/* Signature bodies whose layout a literal block must keep: no final
 * newline. (libclamav refuses blank lines in .ndb files, so those cannot
 * occur in a valid policy.) */
Test(round_trip, signature_layouts)
{
    static const char *const bodies[] = {
        MARKER_NDB "PrivmtaTest.Other:0:*:6f746865722d6d61726b6572",
        "PrivmtaTest.Marker:0:*:707269766d74612d746573742d6d61726b6572",
    };
    for (size_t i = 0; i < COUNT(bodies); i++) {
        char *why = pm_sigcheck("x.ndb", bodies[i], strlen(bodies[i]), NULL);
        cr_assert_null(why, "body %zu: %s", i, why);
        Pm__Edit e = PM__EDIT__INIT;
        e.key = "antivirus.custom_signatures";
        e.op = PM__EDIT__OP__ADD;
        e.value = "x.ndb";
        e.content.data = (uint8_t *)bodies[i];
        e.content.len = strlen(bodies[i]);
        Pm__Edit *edits[] = {&e};
        Pm__Policy *p = pm_policy_new();
        pm_diag_t *diag = pm_diag_new("cli");
        cr_assert_eq(pm_policy_edit(&p, NULL, edits, 1, diag), 0, "%s",
                     s_lines(diag));
        pm_diag_destroy(&diag);
        s_yaml_round_trip(p);
        s_json_round_trip(p, true);
        pm_policy_free(&p);
    }
}

Test(digest, independent_of_order_and_style)
{
    Pm__Policy *a = s_parse_ok("antispam:\n"
                               "  kill_action: deliver\n"
                               "  level: high\n"
                               "outbound:\n"
                               "  relay_host: relay.example.com\n"
                               "  sasl_auth: false\n"
                               "inbound:\n"
                               "  checks:\n"
                               "    helo_fqdn: yes\n");
    Pm__Policy *b = s_parse_ok("inbound.checks.helo_fqdn: true\n"
                               "outbound.sasl_auth: off\n"
                               "antispam.level: high\n"
                               "outbound.relay_host: relay.example.com\n"
                               "antispam.kill_action: deliver\n");
    Pm__Policy *c = s_parse_ok("{\"outbound\": {\"sasl_auth\": false,"
                               " \"relay_host\": \"relay.example.com\"},"
                               " \"inbound\": {\"checks.helo_fqdn\": true},"
                               " \"antispam.kill_action\": \"deliver\","
                               " \"antispam\": {\"level\": \"high\"}}");
    Pm__Policy *other = s_parse_ok("antispam.level: high\n"
                                   "outbound.relay_host: relay.example.com\n"
                                   "antispam.kill_action: deliver\n");
    char da[65], db[65], dc[65], dd[65];
    s_digest(a, da);
    s_digest(b, db);
    s_digest(c, dc);
    s_digest(other, dd);
    cr_expect_str_eq(da, db);
    cr_expect_str_eq(da, dc);
    cr_expect_str_neq(da, dd, "digest ignores a key");
    cr_expect_eq(a->antispam_tag_percent, 16);
    cr_expect_eq(a->antispam_kill_percent, 66);
    /* a dup, and a policy rebuilt from its own digest input, agree */
    Pm__Policy *dup = pm_policy_dup(a);
    s_digest(dup, dd);
    cr_expect_str_eq(da, dd);
    pm_policy_free(&dup);
    pm_policy_free(&other);
    pm_policy_free(&c);
    pm_policy_free(&b);
    pm_policy_free(&a);
}

Test(digest, overrides_written_two_ways_agree)
{
    Pm__Policy *a = s_parse_ok("nodes:\n"
                               "  mx2:\n"
                               "    outbound:\n"
                               "      mynetworks: [10.0.0.0/8]\n"
                               "      sasl_auth: no\n");
    Pm__Policy *b = s_parse_ok("nodes:\n"
                               "  mx2:\n"
                               "    outbound.sasl_auth: false\n"
                               "    outbound.mynetworks: 10.0.0.0/8\n");
    char da[65], db[65];
    s_digest(a, da);
    s_digest(b, db);
    cr_expect_str_eq(da, db);
    Pm__Policy *none = pm_policy_new();
    s_digest(none, db);
    cr_expect_str_neq(da, db, "overrides are not in the digest");
    pm_policy_free(&none);
    pm_policy_free(&b);
    pm_policy_free(&a);
}

/* ------------------------------------------------------------------------
 * Documents */

Test(document, durations_through_the_table)
{
    Pm__Policy *p = s_parse_ok("antivirus.update_frequency: 1w\n");
    cr_expect_eq(p->antivirus_update_frequency, 604800);
    s_expect_text(p, "antivirus.update_frequency", "\"1w\"");
    pm_policy_free(&p);
    static const struct {
        const char *text;
        uint32_t secs;
        const char *shown;
    } rows[] = {{"30s", 30, "30s"},    {"15m", 900, "15m"},
                {"2h", 7200, "2h"},    {"1d", 86400, "1d"},
                {"8w", 4838400, "8w"}, {"90m", 5400, "90m"},
                {"120", 120, "2m"},    {"1s", 1, "1s"}};
    for (size_t i = 0; i < COUNT(rows); i++) {
        char *doc = NULL;
        cr_assert(asprintf(&doc, "antivirus.update_frequency: %s\n",
                           rows[i].text) > 0);
        p = s_parse_ok(doc);
        cr_expect_eq(p->antivirus_update_frequency, rows[i].secs, "%s",
                     rows[i].text);
        char buf[32];
        cr_expect_str_eq(pm_duration_format(rows[i].secs, buf, sizeof buf),
                         rows[i].shown);
        pm_policy_free(&p);
        free(doc);
    }
    static const char *const bad[] = {"0s",   "9w",  "1x", "2h30m",
                                      "1.5h", "-1h", "h",  ""};
    for (size_t i = 0; i < COUNT(bad); i++) {
        char *doc = NULL;
        cr_assert(
            asprintf(&doc, "antivirus.update_frequency: \"%s\"\n", bad[i]) > 0);
        pm_diag_t *diag = pm_diag_new("t");
        p = s_parse(doc, diag);
        cr_expect_null(p, "'%s' accepted", bad[i]);
        cr_expect(s_diag_has(diag, "antivirus.update_frequency", NULL), "%s",
                  bad[i]);
        pm_policy_free(&p);
        pm_diag_destroy(&diag);
        free(doc);
    }
}

/* Five independent mistakes: five lines, each with its key and line. */
Test(document, every_problem_is_reported)
{
    const char *doc = "inbound:\n"                           /* 1 */
                      "  notify_admn: true\n"                /* 2 */
                      "outbound:\n"                          /* 3 */
                      "  mynetworks: [10.0.0.1/8]\n"         /* 4 */
                      "  relay_host: relay.example.com:0\n"  /* 5 */
                      "antispam:\n"                          /* 6 */
                      "  kill_action: bounce\n"              /* 7 */
                      "antivirus:\n"                         /* 8 */
                      "  update_frequency: 9w\n"             /* 9 */
                      "  mirrors: [ftp://mirror.example]\n"; /* 10 */
    static const struct {
        const char *key;
        unsigned line;
    } want[] = {{"inbound.notify_admn", 2},        {"outbound.mynetworks", 4},
                {"outbound.relay_host", 5},        {"antispam.kill_action", 7},
                {"antivirus.update_frequency", 9}, {"antivirus.mirrors", 10}};
    pm_diag_t *diag = pm_diag_new("p.yaml");
    Pm__Policy *p = s_parse(doc, diag);
    cr_expect_null(p);
    cr_expect_geq(pm_diag_count(diag), COUNT(want), "%s", s_lines(diag));
    for (size_t i = 0; i < COUNT(want); i++) {
        char prefix[128];
        snprintf(prefix, sizeof prefix, "p.yaml:%u: %s: ", want[i].line,
                 want[i].key);
        bool found = false;
        for (size_t j = 0; j < pm_diag_count(diag); j++)
            found = found ||
                    strncmp(pm_diag_line(diag, j), prefix, strlen(prefix)) == 0;
        cr_expect(found, "no line '%s...':%s", prefix, s_lines(diag));
    }
    cr_expect(s_diag_has(diag, "inbound.notify_admn",
                         "did you mean inbound.notify_admin"),
              "%s", s_lines(diag));
    pm_policy_free(&p);
    pm_diag_destroy(&diag);
}

Test(document, list_items_name_their_own_line)
{
    const char *doc = "outbound:\n"
                      "  mynetworks:\n"
                      "    - 127.0.0.0/8\n"
                      "    - 10.0.0.0/8\n"
                      "    - 10.0.0.0/33\n";
    pm_diag_t *diag = pm_diag_new("f");
    Pm__Policy *p = s_parse(doc, diag);
    cr_expect_null(p);
    cr_assert_eq(pm_diag_count(diag), 1, "%s", s_lines(diag));
    cr_expect_eq(
        strncmp(pm_diag_line(diag, 0), "f:5: outbound.mynetworks: ", 26), 0,
        "%s", s_lines(diag));
    pm_policy_free(&p);
    pm_diag_destroy(&diag);
}

Test(document, levels_and_percents)
{
    Pm__Policy *p = s_parse_ok("antispam.level: low\n");
    cr_expect(p->antispam_tag_percent == 40 && p->antispam_kill_percent == 90);
    pm_policy_free(&p);
    p = s_parse_ok("antispam: {level: high, tag_percent: 16}\n");
    cr_expect(p->antispam_tag_percent == 16 && p->antispam_kill_percent == 66);
    pm_policy_free(&p);
    p = s_parse_ok("antispam.tag_percent: 20\n");
    cr_expect_str_eq(p->antispam_level, "custom");
    cr_expect(p->antispam_tag_percent == 20 && p->antispam_kill_percent == 75);
    pm_policy_free(&p);
    /* percents that happen to equal a level keep the level written */
    p = s_parse_ok("antispam: {level: custom, tag_percent: 33}\n");
    cr_expect_str_eq(p->antispam_level, "custom");
    pm_policy_free(&p);
    pm_diag_t *diag = pm_diag_new("f");
    p = s_parse("antispam: {level: medium, kill_percent: 80}\n", diag);
    cr_expect_null(p);
    cr_expect(s_diag_has(diag, "antispam.kill_percent", "contradicts"), "%s",
              s_lines(diag));
    pm_policy_free(&p);
    pm_diag_destroy(&diag);
}

/* The rule between two keys names a line that was written, even when the
 * key it names kept its default. */
Test(document, level_problems_name_a_written_line)
{
    pm_diag_t *diag = pm_diag_new("f");
    Pm__Policy *p = s_parse("antispam:\n"
                            "  tag_percent: 90\n",
                            diag);
    cr_expect_null(p);
    cr_assert_eq(pm_diag_count(diag), 1, "%s", s_lines(diag));
    cr_expect(s_diag_has(diag, "antispam.kill_percent", "must be above"));
    cr_expect_eq(strncmp(pm_diag_line(diag, 0), "f:2: ", 5), 0,
                 "no line number:%s", s_lines(diag));
    pm_policy_free(&p);
    pm_diag_destroy(&diag);
}

/* JSON is read as YAML flow; JSON from other tools escapes characters
 * outside the BMP as UTF-16 surrogate pairs ("\ud83d\udca9"). */
Test(document, json_escapes)
{
    Pm__Policy *p = s_parse_ok(
        "{\"antivirus\": {\"mirrors\": [\"https:\\/\\/mirror.example\"]},"
        " \"antispam\": {\"subject_prefix\": \"[\\u00e9]\"}}");
    cr_expect_str_eq(p->antivirus_mirrors[0], "https://mirror.example");
    cr_expect_str_eq(p->antispam_subject_prefix, "[\xc3\xa9]");
    pm_policy_free(&p);
    p = s_parse_ok("{\"antispam\": {\"subject_prefix\": "
                   "\"[SPAM \\ud83d\\udca9]\"}}");
    cr_expect_str_eq(p->antispam_subject_prefix, "[SPAM \xf0\x9f\x92\xa9]");
    pm_policy_free(&p);
}

Test(document, rejects_non_mapping_documents)
{
    static const char *const docs[] = {
        "[a, b]\n", "just text\n", "a: 1\n---\nb: 2\n", "x: &a [1]\ny: *a\n"};
    for (size_t i = 0; i < COUNT(docs); i++) {
        pm_diag_t *diag = pm_diag_new("f");
        Pm__Policy *p = s_parse(docs[i], diag);
        cr_expect_null(p, "accepted: %s", docs[i]);
        cr_expect_gt(pm_diag_count(diag), 0);
        pm_policy_free(&p);
        pm_diag_destroy(&diag);
    }
}

/* ------------------------------------------------------------------------
 * pm_policy_suggest */

Test(suggest, near_names)
{
    cr_expect_str_eq(pm_policy_suggest("inbound.notify_admn"),
                     "inbound.notify_admin");
    cr_expect_str_eq(pm_policy_suggest("relayhost"), "outbound.relay_host");
    cr_expect_str_eq(pm_policy_suggest("inbound.checks.helo_vaild"),
                     "inbound.checks.helo_valid");
    cr_expect_str_eq(pm_policy_suggest("antivirus.mirror"),
                     "antivirus.mirrors");
    cr_expect_null(pm_policy_suggest("zzzzzz"));
    cr_expect_null(pm_policy_suggest("completely.unrelated.thing.here"));
}

/* ------------------------------------------------------------------------
 * pm_policy_edit */

#define A PM__EDIT__OP__ASSIGN
#define ADD PM__EDIT__OP__ADD
#define RM PM__EDIT__OP__REMOVE
#define RESET PM__EDIT__OP__RESET

Test(edit, assign_bool_percent_duration_list)
{
    Pm__Policy *p = pm_policy_new();
    edit_t e[] = {{"inbound.checks.helo_fqdn", A, "true"},
                  {"inbound.notify_admin", A, "no"},
                  {"antivirus.update_frequency", A, "15m"},
                  {"outbound.mynetworks", A, "[10.0.0.0/8, \"[::1]/128\"]"},
                  {"outbound.relay_host", A, "\"[relay.example.com]:587\""}};
    s_edit_ok(&p, NULL, e, COUNT(e));
    cr_expect(p->inbound_checks_helo_fqdn);
    cr_expect_not(p->inbound_notify_admin);
    cr_expect_eq(p->antivirus_update_frequency, 900);
    s_expect_text(p, "outbound.mynetworks", "[\"10.0.0.0/8\",\"[::1]/128\"]");
    cr_expect_str_eq(p->outbound_relay_host, "[relay.example.com]:587");
    /* a scalar for a list is split on spaces and commas */
    edit_t split[] = {{"outbound.mynetworks", A, "10.0.0.0/8 192.168.0.0/16"}};
    s_edit_ok(&p, NULL, split, 1);
    s_expect_text(p, "outbound.mynetworks",
                  "[\"10.0.0.0/8\",\"192.168.0.0/16\"]");
    /* a single value is taken as typed: [SPAM] is text, not a list */
    edit_t typed[] = {{"antispam.subject_prefix", A, "[SPAM]"},
                      {"outbound.fallback_relay_host", A, "[10.1.2.3]:25"}};
    s_edit_ok(&p, NULL, typed, COUNT(typed));
    cr_expect_str_eq(p->antispam_subject_prefix, "[SPAM]");
    cr_expect_str_eq(p->outbound_fallback_relay_host, "[10.1.2.3]:25");
    edit_t quoted[] = {{"antispam.subject_prefix", A, "\"** \""}};
    s_edit_ok(&p, NULL, quoted, 1);
    cr_expect_str_eq(p->antispam_subject_prefix, "** ");
    pm_policy_free(&p);
}

/* Exactly what `privmta-ctl policy set inbound.blocked_extensions+=@common`
 * sends (DESIGN.md): the item as typed, without YAML quotes. */
Test(edit, common_preset_as_typed_on_the_cli)
{
    Pm__Policy *p = pm_policy_new();
    edit_t cli[] = {{"inbound.blocked_extensions", ADD, "@common"}};
    s_edit_ok(&p, NULL, cli, 1);
    cr_expect_eq(p->n_inbound_blocked_extensions, 27);
    edit_t rm[] = {{"inbound.blocked_extensions", RM, "@common"}};
    s_edit_ok(&p, NULL, rm, 1);
    cr_expect_eq(p->n_inbound_blocked_extensions, 0);
    pm_policy_free(&p);
}

Test(edit, add_remove_and_common_preset)
{
    Pm__Policy *p = pm_policy_new();
    edit_t common[] = {{"inbound.blocked_extensions", ADD, "\"@common\""}};
    s_edit_ok(&p, NULL, common, 1);
    cr_assert_eq(p->n_inbound_blocked_extensions, 27);
    for (size_t i = 0; i < 27; i++)
        cr_expect_str_eq(p->inbound_blocked_extensions[i],
                         pm_policy_common_extensions[i]);
    /* again: nothing new */
    s_edit_ok(&p, NULL, common, 1);
    cr_expect_eq(p->n_inbound_blocked_extensions, 27);
    /* EXE is exe; ISO is new and stored lowercase */
    edit_t more[] = {{"inbound.blocked_extensions", ADD, "EXE"},
                     {"inbound.blocked_extensions", ADD, "ISO"}};
    s_edit_ok(&p, NULL, more, COUNT(more));
    cr_assert_eq(p->n_inbound_blocked_extensions, 28);
    cr_expect_str_eq(p->inbound_blocked_extensions[27], "iso");
    edit_t rm[] = {{"inbound.blocked_extensions", RM, "Exe"},
                   {"inbound.blocked_extensions", RM, "not-there"}};
    s_edit_ok(&p, NULL, rm, COUNT(rm));
    cr_expect_eq(p->n_inbound_blocked_extensions, 27);
    for (size_t i = 0; i < p->n_inbound_blocked_extensions; i++)
        cr_expect_str_neq(p->inbound_blocked_extensions[i], "exe");
    edit_t rm_common[] = {{"inbound.blocked_extensions", RM, "\"@common\""}};
    s_edit_ok(&p, NULL, rm_common, 1);
    s_expect_text(p, "inbound.blocked_extensions", "[\"iso\"]");
    edit_t reset[] = {{"inbound.blocked_extensions", RESET, NULL}};
    s_edit_ok(&p, NULL, reset, 1);
    cr_expect_eq(p->n_inbound_blocked_extensions, 0);
    pm_policy_free(&p);
}

/* KEY+=ITEM and KEY-=ITEM take one item as typed: an IPv6 network in the
 * documented form "[::1]/128" (a default!) is not a YAML flow list. */
Test(edit, ipv6_items_as_typed)
{
    Pm__Policy *p = pm_policy_new();
    edit_t add[] = {{"outbound.mynetworks", ADD, "[2001:db8::]/32"}};
    s_edit_ok(&p, NULL, add, 1);
    s_expect_text(p, "outbound.mynetworks",
                  "[\"127.0.0.0/8\",\"[::1]/128\",\"[2001:db8::]/32\"]");
    edit_t rm[] = {{"outbound.mynetworks", RM, "[::1]/128"}};
    s_edit_ok(&p, NULL, rm, 1);
    s_expect_text(p, "outbound.mynetworks",
                  "[\"127.0.0.0/8\",\"[2001:db8::]/32\"]");
    pm_policy_free(&p);
}

Test(edit, duplicates_fold_case_insensitively)
{
    Pm__Policy *p = pm_policy_new();
    edit_t e[] = {{"inbound.blocked_extensions", A, "[EXE, exe, Bat]"},
                  {"inbound.blocked_extensions", ADD, "bAT"}};
    s_edit_ok(&p, NULL, e, COUNT(e));
    s_expect_text(p, "inbound.blocked_extensions", "[\"exe\",\"bat\"]");
    /* mynetworks is not folded, but the same CIDR twice is one */
    edit_t nets[] = {{"outbound.mynetworks", ADD, "127.0.0.0/8"}};
    s_edit_ok(&p, NULL, nets, 1);
    cr_expect_eq(p->n_outbound_mynetworks, 2);
    pm_policy_free(&p);
}

Test(edit, reset_scalars)
{
    Pm__Policy *p = s_parse_ok("antispam: {level: high}\n"
                               "antivirus.update_frequency: 1w\n"
                               "inbound.checks.helo_valid: false\n");
    edit_t e[] = {{"antivirus.update_frequency", RESET, NULL},
                  {"inbound.checks.helo_valid", RESET, NULL},
                  {"antispam.level", RESET, NULL}};
    s_edit_ok(&p, NULL, e, COUNT(e));
    Pm__Policy *d = pm_policy_new();
    char a[65], b[65];
    s_digest(p, a);
    s_digest(d, b);
    cr_expect_str_eq(a, b, "reset did not restore the defaults:\n%s",
                     pm_policy_to_yaml(p, NULL));
    pm_policy_free(&d);
    pm_policy_free(&p);
}

/* RESET brings a key back to its default: on a policy that holds only
 * defaults, resetting any key changes nothing. */
Test(edit, reset_on_defaults_changes_nothing)
{
    size_t n;
    const pm_key_t *keys = pm_policy_keys(&n);
    Pm__Policy *d = pm_policy_new();
    char want[65], got[65];
    s_digest(d, want);
    for (size_t i = 0; i < n; i++) {
        Pm__Policy *p = pm_policy_new();
        edit_t e[] = {{keys[i].name, RESET, NULL}};
        s_edit_ok(&p, NULL, e, 1);
        s_digest(p, got);
        cr_expect_str_eq(got, want,
                         "RESET %s changed a default policy: "
                         "level %s",
                         keys[i].name, p->antispam_level);
        pm_policy_free(&p);
    }
    pm_policy_free(&d);
}

Test(edit, levels)
{
    Pm__Policy *p = pm_policy_new();
    edit_t high[] = {{"antispam.level", A, "high"}};
    s_edit_ok(&p, NULL, high, 1);
    cr_expect_eq(p->antispam_tag_percent, 16);
    cr_expect_eq(p->antispam_kill_percent, 66);
    cr_expect_str_eq(p->antispam_level, "high");
    edit_t tag[] = {{"antispam.tag_percent", A, "40"}};
    s_edit_ok(&p, NULL, tag, 1);
    cr_expect_str_eq(p->antispam_level, "custom");
    cr_expect_eq(p->antispam_tag_percent, 40);
    cr_expect_eq(p->antispam_kill_percent, 66);
    edit_t both[] = {{"antispam.level", A, "medium"},
                     {"antispam.tag_percent", A, "40"}};
    pm_diag_t *diag = s_edit_bad(&p, NULL, both, COUNT(both));
    cr_expect(s_diag_has(diag, "antispam.tag_percent", "contradicts"), "%s",
              s_lines(diag));
    pm_diag_destroy(&diag);
    /* level and matching percents together are fine */
    edit_t same[] = {{"antispam.level", A, "low"},
                     {"antispam.kill_percent", A, "90"}};
    s_edit_ok(&p, NULL, same, COUNT(same));
    cr_expect_str_eq(p->antispam_level, "low");
    cr_expect_eq(p->antispam_tag_percent, 40);
    pm_policy_free(&p);
}

Test(edit, rejected_edits_change_nothing)
{
    Pm__Policy *p = s_parse_ok(s_rich);
    static const struct {
        edit_t e;
        const char *key, *fragment;
    } rows[] = {
        {{"antispam.enabled", ADD, "true"}, "antispam.enabled", "lists only"},
        {{"antispam.enabled", RM, "true"}, "antispam.enabled", "lists only"},
        {{"antispam.enabled", A, "maybe"}, "antispam.enabled", NULL},
        {{"antispam.tag_percent", A, "101"}, "antispam.tag_percent", NULL},
        {{"antispam.kill_percent", A, "10"}, "antispam.kill_percent", NULL},
        {{"antivirus.update_frequency", A, "2h30m"},
         "antivirus.update_frequency",
         NULL},
        {{"outbound.mynetworks", ADD, "10.0.0.0/33"},
         "outbound.mynetworks",
         NULL},
        {{"inbound.blocked_extensions", ADD, "\"@foo\""},
         "inbound.blocked_extensions",
         "@common"},
        {{"inbound.notify_admn", A, "true"},
         "inbound.notify_admn",
         "did you mean inbound.notify_admin"},
        {{"outbound.relay_host", A, "[a, b]"}, "outbound.relay_host", NULL},
        {{"antispam.level", A, "extreme"}, "antispam.level", NULL},
        {{"outbound.mynetworks", A, "[unclosed"},
         "outbound.mynetworks",
         "without a closing"},
    };
    for (size_t i = 0; i < COUNT(rows); i++) {
        pm_diag_t *diag = s_edit_bad(&p, NULL, &rows[i].e, 1);
        cr_expect(s_diag_has(diag, rows[i].key, rows[i].fragment),
                  "row %zu (%s): %s", i, rows[i].e.key, s_lines(diag));
        pm_diag_destroy(&diag);
    }
    /* a good edit next to a bad one is not applied either */
    edit_t mixed[] = {{"antispam.enabled", A, "false"},
                      {"antivirus.mirrors", ADD, "ftp://x.example"},
                      {"outbound.relay_host", A, "relay.example.com:99999"}};
    pm_diag_t *diag = s_edit_bad(&p, NULL, mixed, COUNT(mixed));
    cr_expect_eq(pm_diag_count(diag), 2, "%s", s_lines(diag));
    cr_expect(p->antispam_enabled);
    pm_diag_destroy(&diag);
    pm_policy_free(&p);
}

Test(edit, node_override_extends_the_cluster_list)
{
    Pm__Policy *p = pm_policy_new();
    char *cluster = s_text(p, "outbound.mynetworks");
    edit_t e[] = {{"outbound.mynetworks", ADD, "10.0.0.0/8"}};
    s_edit_ok(&p, "mx2", e, 1);
    cr_assert_eq(p->n_overrides, 1);
    cr_expect_str_eq(p->overrides[0]->node, "mx2");
    cr_expect_str_eq(p->overrides[0]->key, "outbound.mynetworks");
    s_expect_text(p, "outbound.mynetworks", cluster);

    Pm__Policy *mx2 = pm_policy_for_node(p, "mx2");
    s_expect_text(mx2, "outbound.mynetworks",
                  "[\"127.0.0.0/8\",\"[::1]/128\",\"10.0.0.0/8\"]");
    cr_expect_eq(mx2->n_overrides, 0);
    Pm__Policy *mx1 = pm_policy_for_node(p, "mx1");
    s_expect_text(mx1, "outbound.mynetworks", cluster);
    cr_expect_eq(mx1->n_overrides, 0);
    pm_policy_free(&mx1);
    pm_policy_free(&mx2);

    /* a second edit extends mx2's own list */
    edit_t more[] = {{"outbound.mynetworks", ADD, "192.168.0.0/16"}};
    s_edit_ok(&p, "mx2", more, 1);
    cr_assert_eq(p->n_overrides, 1);
    mx2 = pm_policy_for_node(p, "mx2");
    cr_expect_eq(mx2->n_outbound_mynetworks, 4);
    pm_policy_free(&mx2);

    /* the policy with its override survives validation and a round trip */
    pm_diag_t *diag = pm_diag_new("v");
    cr_expect_eq(pm_policy_validate(p, diag), 0, "%s", s_lines(diag));
    pm_diag_destroy(&diag);
    s_yaml_round_trip(p);
    s_json_round_trip(p, false);

    /* RESET with the node drops the override */
    edit_t reset[] = {{"outbound.mynetworks", RESET, NULL}};
    s_edit_ok(&p, "mx2", reset, 1);
    cr_expect_eq(p->n_overrides, 0);
    s_expect_text(p, "outbound.mynetworks", cluster);
    free(cluster);
    pm_policy_free(&p);
}

Test(edit, node_override_rules)
{
    Pm__Policy *p = pm_policy_new();
    edit_t wide[] = {{"antispam.enabled", A, "false"}};
    pm_diag_t *diag = s_edit_bad(&p, "mx1", wide, 1);
    cr_expect(s_diag_has(diag, "antispam.enabled", "cluster-wide"), "%s",
              s_lines(diag));
    pm_diag_destroy(&diag);
    edit_t bad[] = {{"outbound.mynetworks", ADD, "10.0.0.0/33"}};
    diag = s_edit_bad(&p, "mx1", bad, 1);
    cr_expect(s_diag_has(diag, "outbound.mynetworks", NULL), "%s",
              s_lines(diag));
    pm_diag_destroy(&diag);
    edit_t relay[] = {{"outbound.relay_host", A, "relay.example.com:0"}};
    diag = s_edit_bad(&p, "mx1", relay, 1);
    pm_diag_destroy(&diag);
    cr_expect_eq(p->n_overrides, 0);
    /* an empty node name means the cluster */
    edit_t ok[] = {{"outbound.relay_host", A, "relay.example.com"}};
    s_edit_ok(&p, "", ok, 1);
    cr_expect_eq(p->n_overrides, 0);
    cr_expect_str_eq(p->outbound_relay_host, "relay.example.com");
    pm_policy_free(&p);
}

Test(edit, signature_from_the_cli)
{
    Pm__Policy *p = pm_policy_new();
    Pm__Edit e = PM__EDIT__INIT;
    e.key = "antivirus.custom_signatures";
    e.op = PM__EDIT__OP__ADD;
    e.value = "local.ndb";
    e.content.data = (uint8_t *)MARKER_NDB;
    e.content.len = strlen(MARKER_NDB);
    Pm__Edit *edits[] = {&e};
    pm_diag_t *diag = pm_diag_new("cli");
    cr_assert_eq(pm_policy_edit(&p, NULL, edits, 1, diag), 0, "%s",
                 s_lines(diag));
    cr_assert_eq(p->n_antivirus_custom_signatures, 1);
    cr_expect_str_eq(p->antivirus_custom_signatures[0]->name, "local.ndb");
    /* adding the same name replaces the file */
    cr_assert_eq(pm_policy_edit(&p, NULL, edits, 1, diag), 0);
    cr_expect_eq(p->n_antivirus_custom_signatures, 1);
    Pm__Edit rm = PM__EDIT__INIT;
    rm.key = "antivirus.custom_signatures";
    rm.op = PM__EDIT__OP__REMOVE;
    rm.value = "local.ndb";
    edits[0] = &rm;
    cr_assert_eq(pm_policy_edit(&p, NULL, edits, 1, diag), 0);
    cr_expect_eq(p->n_antivirus_custom_signatures, 0);
    /* a body libclamav refuses is refused */
    e.content.data = (uint8_t *)"Privmta.Bad:0:*:zz\n";
    e.content.len = strlen((char *)e.content.data);
    edits[0] = &e;
    char before[65], after[65];
    s_digest(p, before);
    cr_expect_eq(pm_policy_edit(&p, NULL, edits, 1, diag), 1, "%s",
                 s_lines(diag));
    s_digest(p, after);
    cr_expect_str_eq(before, after);
    pm_diag_destroy(&diag);
    pm_policy_free(&p);
}

/* ------------------------------------------------------------------------
 * Custom signatures */

Test(signature, libclamav_compiles_a_valid_ndb)
{
    unsigned nsigs = 0;
    char *why =
        pm_sigcheck("local.ndb", MARKER_NDB, strlen(MARKER_NDB), &nsigs);
    cr_expect_null(why, "%s", why);
    cr_expect_eq(nsigs, 1);
    free(why);
}

Test(signature, libclamav_reason_for_a_malformed_ndb)
{
    static const char *const bodies[] = {"Privmta.Bad:0:*:zz7072\n",
                                         "Privmta.Bad:0\n",
                                         "Privmta.Bad:0:*:70{-}\n"};
    for (size_t i = 0; i < COUNT(bodies); i++) {
        unsigned nsigs = 42;
        char *why =
            pm_sigcheck("local.ndb", bodies[i], strlen(bodies[i]), &nsigs);
        cr_expect_not_null(why, "accepted: %s", bodies[i]);
        if (why)
            cr_expect_not_null(strstr(why, "libclamav"), "%s", why);
        cr_expect_eq(nsigs, 42, "nsigs set on failure");
        free(why);
    }
}

Test(signature, sha256_computed_and_checked)
{
    Pm__Policy *p = s_parse_ok("antivirus.custom_signatures:\n"
                               "  - name: local.ndb\n"
                               "    content: |\n"
                               "      " MARKER_NDB);
    cr_assert_eq(p->n_antivirus_custom_signatures, 1);
    const Pm__CustomSignature *s = p->antivirus_custom_signatures[0];
    /* sha256 of MARKER_NDB, computed by `sha256sum` */
    cr_expect_str_eq(
        s->sha256,
        "8ba0050382de5091811535f2cf66b6e4d7db27d699023330c3048ad3ffea38ab");
    char *with_sha = NULL;
    cr_assert(asprintf(&with_sha,
                       "antivirus.custom_signatures:\n"
                       "  - name: local.ndb\n"
                       "    sha256: %s\n"
                       "    content: |\n"
                       "      " MARKER_NDB,
                       s->sha256) > 0);
    Pm__Policy *q = s_parse_ok(with_sha);
    char a[65], b[65];
    s_digest(p, a);
    s_digest(q, b);
    cr_expect_str_eq(a, b);
    free(with_sha);
    pm_policy_free(&q);

    pm_diag_t *diag = pm_diag_new("f");
    q = s_parse(
        "antivirus.custom_signatures:\n"
        "  - name: local.ndb\n"
        "    sha256: "
        "0000000000000000000000000000000000000000000000000000000000000000"
        "\n"
        "    content: |\n"
        "      " MARKER_NDB,
        diag);
    cr_expect_null(q);
    cr_expect(s_diag_has(diag, "antivirus.custom_signatures", "sha256"), "%s",
              s_lines(diag));
    pm_policy_free(&q);
    pm_diag_destroy(&diag);

    /* validation of a policy from the network catches a stale sha256 too */
    Pm__Policy *net = pm_policy_dup(p);
    free(net->antivirus_custom_signatures[0]->sha256);
    net->antivirus_custom_signatures[0]->sha256 = strdup(
        "1111111111111111111111111111111111111111111111111111111111111111");
    diag = pm_diag_new("net");
    cr_expect_eq(pm_policy_validate(net, diag), 1, "%s", s_lines(diag));
    pm_diag_destroy(&diag);
    pm_policy_free(&net);
    pm_policy_free(&p);
}

Test(signature, bad_signatures_in_a_document)
{
    static const char *const docs[] = {
        /* libclamav refuses the body */
        "antivirus.custom_signatures:\n"
        "  - {name: local.ndb, content: \"Privmta.Bad:0:*:zz\\n\"}\n",
        /* unknown extension */
        "antivirus.custom_signatures:\n"
        "  - {name: local.txt, content: \"" MARKER_NDB "\"}\n",
        /* a path, not a name */
        "antivirus.custom_signatures:\n"
        "  - {name: ../local.ndb, content: \"" MARKER_NDB "\"}\n",
        /* two with one name */
        "antivirus.custom_signatures:\n"
        "  - {name: a.ndb, content: \"" MARKER_NDB "\"}\n"
        "  - {name: a.ndb, content: \"" MARKER_NDB "\"}\n",
        /* content and file */
        "antivirus.custom_signatures:\n"
        "  - {name: a.ndb, content: x, file: a.ndb}\n",
        /* neither */
        "antivirus.custom_signatures:\n"
        "  - {name: a.ndb}\n",
        /* unknown field */
        "antivirus.custom_signatures:\n"
        "  - {name: a.ndb, content: \"" MARKER_NDB "\", sha: x}\n",
    };
    for (size_t i = 0; i < COUNT(docs); i++) {
        pm_diag_t *diag = pm_diag_new("f");
        Pm__Policy *p = s_parse(docs[i], diag);
        cr_expect_null(p, "accepted #%zu: %s", i, docs[i]);
        cr_expect(s_diag_has(diag, "antivirus.custom_signatures", NULL),
                  "#%zu:%s", i, s_lines(diag));
        for (size_t j = 0; j < pm_diag_count(diag); j++)
            cr_expect_eq(strncmp(pm_diag_line(diag, j), "f:", 2), 0);
        pm_policy_free(&p);
        pm_diag_destroy(&diag);
    }
}

/* ------------------------------------------------------------------------
 * Validation of policies that did not come from a document */

Test(validate, network_policy_gets_the_same_checks)
{
    Pm__Policy *p = pm_policy_new();
    pm_policy_set_string(&p->antispam_level, "custom");
    p->antispam_tag_percent = 150;
    pm_policy_set_string(&p->outbound_relay_host, "relay.example.com:0");
    pm_policy_set_string(&p->antispam_subject_prefix, "a\r\nBcc: x@y.z");
    pm_policy_set_string(&p->antispam_kill_action, "bounce");
    p->antivirus_update_frequency = 0;
    pm_diag_t *diag = pm_diag_new("net");
    size_t n = pm_policy_validate(p, diag);
    cr_expect_eq(n, pm_diag_count(diag));
    cr_expect_geq(n, 5, "%s", s_lines(diag));
    cr_expect(s_diag_has(diag, "antispam.tag_percent", NULL), "%s",
              s_lines(diag));
    cr_expect(s_diag_has(diag, "outbound.relay_host", NULL));
    cr_expect(s_diag_has(diag, "antispam.subject_prefix", NULL));
    cr_expect(s_diag_has(diag, "antispam.kill_action", NULL));
    cr_expect(s_diag_has(diag, "antivirus.update_frequency", NULL));
    /* a CR/LF in a value never breaks the one-line-per-problem output */
    for (size_t i = 0; i < n; i++)
        cr_expect_null(strpbrk(pm_diag_line(diag, i), "\r\n"), "%s",
                       pm_diag_line(diag, i));
    pm_diag_destroy(&diag);
    pm_policy_free(&p);
}

Test(validate, overrides_from_the_network)
{
    Pm__Policy *p = pm_policy_new();
    static const struct {
        const char *node, *key, *value;
    } ovs[] = {{"mx1", "antispam.enabled", "false"},
               {"mx1", "outbound.mynetworks", "[\"10.0.0.0/33\"]"},
               {"mx1", "outbound.relayhost", "\"x\""},
               {"bad node!", "outbound.sasl_auth", "false"}};
    p->n_overrides = COUNT(ovs);
    p->overrides = calloc(COUNT(ovs), sizeof *p->overrides);
    for (size_t i = 0; i < COUNT(ovs); i++) {
        Pm__NodeOverride *ov = malloc(sizeof *ov);
        pm__node_override__init(ov);
        ov->node = strdup(ovs[i].node);
        ov->key = strdup(ovs[i].key);
        ov->value = strdup(ovs[i].value);
        p->overrides[i] = ov;
    }
    pm_diag_t *diag = pm_diag_new("net");
    cr_expect_eq(pm_policy_validate(p, diag), 4, "%s", s_lines(diag));
    cr_expect(s_diag_has(diag, "antispam.enabled", "cluster-wide"));
    cr_expect(s_diag_has(diag, "outbound.mynetworks", "mx1"));
    cr_expect(s_diag_has(diag, "outbound.relayhost",
                         "did you mean outbound.relay_host"),
              "%s", s_lines(diag));
    cr_expect(s_diag_has(diag, "nodes", NULL));
    pm_diag_destroy(&diag);
    pm_policy_free(&p);
}

/* ------------------------------------------------------------------------
 * Hostile documents: every bound answers with its own precise problem */

/* Builds "KEY: [ITEM0, ITEM1, ...]" with N items from FMT (one %zu, or the
 * same item every time). Caller frees. */
static char *
s_long_list(const char *group, const char *key, const char *fmt, size_t n)
{
    char *text = malloc(64 + n * 48), *t = text;
    cr_assert_not_null(text);
    t += sprintf(t, "%s:\n  %s: [", group, key);
    for (size_t i = 0; i < n; i++) {
        t += sprintf(t, "%s", i ? ", " : "");
        t += sprintf(t, fmt, i);
    }
    strcpy(t, "]\n");
    return text;
}

/* Duplicates fold through a hash index: 4096 spellings of one extension
 * are one item; 4096 distinct ones are refused for their number alone,
 * not with 4096 more lines about each of them. */
Test(hostile, long_lists)
{
    static const char *const spellings[] = {"exe", "EXE", "Exe", "eXe"};
    char *text = malloc(64 + 4096 * 8), *t = text;
    cr_assert_not_null(text);
    t += sprintf(t, "inbound:\n  blocked_extensions: [");
    for (size_t i = 0; i < 4096; i++)
        t += sprintf(t, "%s%s", i ? ", " : "", spellings[i % 4]);
    strcpy(t, "]\n");
    Pm__Policy *p = s_parse_ok(text);
    cr_expect_eq(p->n_inbound_blocked_extensions, 1);
    cr_expect_str_eq(p->inbound_blocked_extensions[0], "exe");
    pm_policy_free(&p);
    free(text);

    text = s_long_list("inbound", "blocked_extensions", "x%zu", 4096);
    pm_diag_t *diag = pm_diag_new("f");
    p = s_parse(text, diag);
    cr_expect_null(p);
    cr_expect_eq(pm_diag_count(diag), 1, "%s", s_lines(diag));
    cr_expect(s_diag_has(diag, "inbound.blocked_extensions",
                         "4096 items; at most 512 are allowed"),
              "%s", s_lines(diag));
    pm_diag_destroy(&diag);
    free(text);

    /* validation finds the duplicates of a list from the network too */
    Pm__Policy *net = pm_policy_new();
    const pm_key_t *key = pm_policy_key("outbound.mynetworks");
    pm_value_t *v = NULL;
    text = s_long_list("x", "y", "10.0.0.0/8", 200);
    diag = pm_diag_new("net");
    v = pm_value_parse(text, strlen(text), 1, diag);
    cr_assert_not_null(v);
    /* stored without folding, as a hostile peer could send it */
    const pm_value_t *items = pm_value_get(pm_value_get(v, "x"), "y");
    for (size_t i = 0; i < net->n_outbound_mynetworks; i++)
        free(net->outbound_mynetworks[i]);
    free(net->outbound_mynetworks);
    net->n_outbound_mynetworks = items->n;
    net->outbound_mynetworks = calloc(items->n, sizeof(char *));
    for (size_t i = 0; i < items->n; i++)
        net->outbound_mynetworks[i] = strdup(items->items[i]->text);
    cr_expect_eq(pm_policy_validate(net, diag), 199, "%s", s_lines(diag));
    cr_expect(s_diag_has(diag, key->name, "'10.0.0.0/8' is listed twice"));
    pm_value_destroy(&v);
    pm_diag_destroy(&diag);
    pm_policy_free(&net);
    free(text);
}

/* One value split on spaces is the one way to write more items than a
 * parsed list can hold: refused before any is stored. */
Test(hostile, scalar_list_over_the_bound)
{
    char *text = malloc(4 * 5000 + 64), *t = text;
    t += sprintf(t, "inbound.blocked_extensions: \"");
    for (int i = 0; i < 5000; i++)
        t += sprintf(t, "%s", i ? " exe" : "exe");
    strcpy(t, "\"\n");
    pm_diag_t *diag = pm_diag_new("f");
    Pm__Policy *p = s_parse(text, diag);
    cr_expect_null(p);
    cr_expect(s_diag_has(diag, "inbound.blocked_extensions",
                         "5000 items; no list holds more than 4096 (this one "
                         "at most 512)"),
              "%s", s_lines(diag));
    pm_diag_destroy(&diag);
    free(text);
}

/* A document that is mostly mistakes gets 100 lines and a last one saying
 * the rest was not read. */
Test(hostile, problems_capped)
{
    char *text = malloc(200 * 16), *t = text;
    for (int i = 0; i < 200; i++)
        t += sprintf(t, "bogus%d: 1\n", i);
    pm_diag_t *diag = pm_diag_new("f");
    Pm__Policy *p = s_parse(text, diag);
    cr_expect_null(p);
    cr_assert_eq(pm_diag_count(diag), 101, "%zu", pm_diag_count(diag));
    cr_expect_str_eq(pm_diag_line(diag, 100),
                     "f:101: stopped reading after 100 problems; fix these "
                     "first");
    pm_diag_destroy(&diag);
    free(text);
}

/* All custom signatures together are bounded (PM_POLICY_SIGNATURES_MAX),
 * checked before any is compiled. */
Test(hostile, signatures_total_bounded)
{
    Pm__Policy *p = pm_policy_new();
    size_t each = PM_POLICY_SIGNATURES_MAX / 2 + 1;
    p->n_antivirus_custom_signatures = 2;
    p->antivirus_custom_signatures = calloc(2, sizeof(void *));
    for (size_t i = 0; i < 2; i++) {
        Pm__CustomSignature *s = malloc(sizeof *s);
        pm__custom_signature__init(s);
        s->name = strdup(i ? "b.ndb" : "a.ndb");
        s->content.data = malloc(each);
        memset(s->content.data, 'x', each);
        s->content.len = each;
        s->sha256 = strdup("0");
        p->antivirus_custom_signatures[i] = s;
    }
    pm_diag_t *diag = pm_diag_new("net");
    cr_expect_eq(pm_policy_validate(p, diag), 1, "%s", s_lines(diag));
    cr_expect(s_diag_has(diag, "antivirus.custom_signatures",
                         "8388610 bytes of signatures; all files together "
                         "may have at most 8388608"),
              "%s", s_lines(diag));
    pm_diag_destroy(&diag);
    pm_policy_free(&p);
}

/* Only a policy file read by privmta-ctl may name files: a document with
 * no base directory (anything that did not come from such a file), and
 * every `policy set` edit, which is what the controller runs, refuse
 * `file:` before opening anything. */
Test(hostile, file_refused_without_a_base_directory)
{
    char dir[] = "/tmp/pm_policy_fifo.XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    char fifo[64];
    snprintf(fifo, sizeof fifo, "%s/sig.ndb", dir);
    cr_assert_eq(mkfifo(fifo, 0600), 0);
    char text[256];
    snprintf(text, sizeof text,
             "antivirus.custom_signatures: [{name: a.ndb, file: %s}]\n", fifo);
    pm_diag_t *diag = pm_diag_new("doc");
    Pm__Policy *p = s_parse(text, diag);
    cr_expect_null(p);
    cr_expect(s_diag_has(diag, "antivirus.custom_signatures",
                         "is refused here: only a policy file read by "
                         "privmta-ctl may name files"),
              "%s", s_lines(diag));
    pm_diag_destroy(&diag);

    p = pm_policy_new();
    char value[128];
    snprintf(value, sizeof value, "{name: a.ndb, file: %s}", fifo);
    const edit_t rows[] = {
        {"antivirus.custom_signatures", PM__EDIT__OP__ADD, value},
    };
    diag = pm_diag_new("set");
    cr_expect_eq(s_edit(&p, NULL, rows, 1, diag), 1, "%s", s_lines(diag));
    cr_expect(
        s_diag_has(diag, "antivirus.custom_signatures", "is refused here"),
        "%s", s_lines(diag));
    pm_diag_destroy(&diag);
    pm_policy_free(&p);
    unlink(fifo);
    rmdir(dir);
}

/* ------------------------------------------------------------------------
 * What a change takes on the nodes */

Test(effect, declared_for_every_key)
{
    size_t n;
    const pm_key_t *keys = pm_policy_keys(&n);
    for (size_t i = 0; i < n; i++) {
        /* a key that changes main.cf takes at least a reload */
        if (keys[i].postfix)
            cr_expect_geq(keys[i].effect, PM_EFFECT_RELOAD, "%s", keys[i].name);
        cr_expect_str_neq(pm_effect_name(keys[i].effect), "unknown", "%s",
                          keys[i].name);
    }
    /* the ClamAV engine is rebuilt for what is compiled into it */
    cr_expect_eq(pm_policy_key("antivirus.custom_signatures")->effect,
                 PM_EFFECT_ENGINE);
    cr_expect_eq(pm_policy_key("antivirus.block_encrypted_archives")->effect,
                 PM_EFFECT_ENGINE);
    /* what the filter reads per message needs nothing */
    cr_expect_eq(pm_policy_key("antispam.tag_percent")->effect, PM_EFFECT_LIVE);
    cr_expect_str_eq(pm_effect_name(PM_EFFECT_RESTART), "restart");
    cr_expect_str_eq(pm_effect_name((pm_effect_t)42), "unknown");
}

typedef struct {
    char names[8][96];
    size_t n;
} s_seen_t;

static void
s_seen(const char *name, const pm_key_t *key, const char *before,
       const char *after, void *arg)
{
    (void)key;
    (void)before;
    (void)after;
    s_seen_t *seen = arg;
    cr_assert_lt(seen->n, 8);
    snprintf(seen->names[seen->n++], sizeof seen->names[0], "%s", name);
}

Test(effect, a_diff_takes_the_most_any_changed_key_takes)
{
    Pm__Policy *a = pm_policy_new(), *b = pm_policy_new();
    s_seen_t seen = {0};
    cr_expect_eq(pm_policy_diff(a, b, s_seen, &seen), PM_EFFECT_LIVE);
    cr_expect_eq(seen.n, 0, "equal policies differ in nothing");

    edit_t prefix[] = {{"antispam.subject_prefix", A, "[SPAM]"}};
    s_edit_ok(&b, NULL, prefix, 1);
    cr_expect_eq(pm_policy_diff(a, b, s_seen, &seen), PM_EFFECT_LIVE);
    cr_assert_eq(seen.n, 1);
    cr_expect_str_eq(seen.names[0], "antispam.subject_prefix");

    edit_t relay[] = {{"outbound.relay_host", A, "[relay.example]:587"}};
    s_edit_ok(&b, NULL, relay, 1);
    seen.n = 0;
    cr_expect_eq(pm_policy_diff(a, b, s_seen, &seen), PM_EFFECT_RELOAD);
    cr_expect_eq(seen.n, 2);
    cr_expect_eq(pm_policy_diff(b, a, NULL, NULL), PM_EFFECT_RELOAD,
                 "either way round");

    /* a per-node override counts as its key, named with its node */
    Pm__Policy *c = pm_policy_new();
    edit_t nets[] = {{"outbound.mynetworks", ADD, "10.0.0.0/8"}};
    s_edit_ok(&c, "mx2", nets, 1);
    seen.n = 0;
    cr_expect_eq(pm_policy_diff(a, c, s_seen, &seen), PM_EFFECT_RELOAD);
    cr_assert_eq(seen.n, 1);
    cr_expect_str_eq(seen.names[0], "nodes.mx2.outbound.mynetworks");

    /* new signatures: an engine rebuild, no reload */
    Pm__Policy *d = pm_policy_new();
    Pm__Edit e = PM__EDIT__INIT, *edits[] = {&e};
    e.key = "antivirus.custom_signatures";
    e.op = PM__EDIT__OP__ADD;
    e.value = "local.ndb";
    e.content.data = (uint8_t *)MARKER_NDB;
    e.content.len = strlen(MARKER_NDB);
    pm_diag_t *diag = pm_diag_new("cli");
    cr_assert_eq(pm_policy_edit(&d, NULL, edits, 1, diag), 0, "%s",
                 s_lines(diag));
    pm_diag_destroy(&diag);
    cr_expect_eq(pm_policy_diff(a, d, NULL, NULL), PM_EFFECT_ENGINE);
    pm_policy_free(&a);
    pm_policy_free(&b);
    pm_policy_free(&c);
    pm_policy_free(&d);
}
