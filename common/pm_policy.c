/* pm_policy.c - the policy table and the basics every other part reads. */
#include "pm_check.h"
#include "pm_mem.h"
#include "pm_policy_private.h"
#include "pm_wire.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

const char *const pm_policy_common_extensions[] = {
    "asd", "bat", "chm", "cmd", "com", "dll", "do",  "exe", "hlp", "hta",
    "js",  "jse", "lnk", "ocx", "pif", "reg", "scr", "shb", "shm", "shs",
    "vbe", "vbs", "vbx", "vxd", "wsf", "wsh", "xl",  NULL};

static const char *const s_levels[] = {"low", "medium", "high", "custom", NULL};
static const char *const s_kill_actions[] = {"discard", "deliver", NULL};

/* Carbonio's levels; medium is the seed page's 33/75. */
static const struct {
    const char *name;
    unsigned tag, kill;
} s_level_table[] = {{"low", 40, 90}, {"medium", 33, 75}, {"high", 16, 66}};

#define B PM_KT_BOOL
/* The main.cf parameters a key drives (pm_key_t.postfix). */
#define PF(...) ((const char *const[]){__VA_ARGS__, NULL})
static const pm_key_t s_keys[] = {
    {"inbound.blocked_extensions", PM_KT_LIST, "inbound_blocked_extensions",
     "[]", pm_check_extension, NULL, 512, PM_KF_FOLD, "milter",
     "attachment extensions to reject, no dot; @common adds the preset",
     PF("smtpd_milters", "non_smtpd_milters", "milter_default_action"),
     PM_EFFECT_RELOAD},
    {"inbound.notify_admin", B, "inbound_notify_admin", "true", NULL, NULL, 0,
     0, "milter", "notify inbound.admin_address of blocked attachments", NULL,
     PM_EFFECT_LIVE},
    {"inbound.notify_recipient", B, "inbound_notify_recipient", "true", NULL,
     NULL, 0, 0, "milter", "notify each recipient of blocked attachments", NULL,
     PM_EFFECT_LIVE},
    {"inbound.admin_address", PM_KT_STRING, "inbound_admin_address", "\"\"",
     pm_check_address, NULL, 0, PM_KF_NODE, "milter notifications",
     "where admin notifications go; empty: postmaster@<node domain>", NULL,
     PM_EFFECT_LIVE},
    {"inbound.reject_unlisted_sender", B, "inbound_reject_unlisted_sender",
     "true", NULL, NULL, 0, 0, "smtpd_reject_unlisted_sender",
     "reject senders that are not known local addresses",
     PF("smtpd_reject_unlisted_sender"), PM_EFFECT_RELOAD},
    {"inbound.reject_unlisted_recipient", B,
     "inbound_reject_unlisted_recipient", "true", NULL, NULL, 0, 0,
     "smtpd_reject_unlisted_recipient", "reject unknown local recipients",
     PF("smtpd_reject_unlisted_recipient"), PM_EFFECT_RELOAD},
    {"inbound.reject_sender_login_mismatch", B,
     "inbound_reject_sender_login_mismatch", "true", NULL, NULL, 0, 0,
     "smtpd_sender_restrictions = reject_sender_login_mismatch",
     "reject senders not owned by the authenticated login",
     PF("smtpd_sender_restrictions"), PM_EFFECT_RELOAD},
    {"inbound.checks.client_hostname", B, "inbound_checks_client_hostname",
     "false", NULL, NULL, 0, 0, "reject_unknown_client_hostname",
     "client IP must have matching forward and reverse DNS",
     PF("smtpd_client_restrictions"), PM_EFFECT_RELOAD},
    {"inbound.checks.reverse_client_hostname", B,
     "inbound_checks_reverse_client_hostname", "false", NULL, NULL, 0, 0,
     "reject_unknown_reverse_client_hostname",
     "client IP must have a reverse DNS name", PF("smtpd_client_restrictions"),
     PM_EFFECT_RELOAD},
    {"inbound.checks.helo_resolves", B, "inbound_checks_helo_resolves", "false",
     NULL, NULL, 0, 0, "reject_unknown_helo_hostname",
     "HELO name must resolve in DNS",
     PF("smtpd_helo_required", "smtpd_helo_restrictions"), PM_EFFECT_RELOAD},
    {"inbound.checks.helo_valid", B, "inbound_checks_helo_valid", "true", NULL,
     NULL, 0, 0, "reject_invalid_helo_hostname, smtpd_helo_required",
     "HELO is required and must be syntactically valid",
     PF("smtpd_helo_required", "smtpd_helo_restrictions"), PM_EFFECT_RELOAD},
    {"inbound.checks.helo_fqdn", B, "inbound_checks_helo_fqdn", "false", NULL,
     NULL, 0, 0, "reject_non_fqdn_helo_hostname",
     "HELO name must be a fully qualified domain name",
     PF("smtpd_helo_required", "smtpd_helo_restrictions"), PM_EFFECT_RELOAD},
    {"inbound.checks.sender_domain", B, "inbound_checks_sender_domain", "true",
     NULL, NULL, 0, 0, "reject_unknown_sender_domain",
     "sender domain must exist in DNS", PF("smtpd_sender_restrictions"),
     PM_EFFECT_RELOAD},
    {"inbound.checks.sender_fqdn", B, "inbound_checks_sender_fqdn", "true",
     NULL, NULL, 0, 0, "reject_non_fqdn_sender",
     "sender address must be fully qualified", PF("smtpd_sender_restrictions"),
     PM_EFFECT_RELOAD},
    {"outbound.authenticated_header", B, "outbound_authenticated_header",
     "false", NULL, NULL, 0, PM_KF_NODE, "smtpd_sasl_authenticated_header",
     "add the authenticated login to the Received header",
     PF("smtpd_sasl_authenticated_header"), PM_EFFECT_RELOAD},
    {"outbound.sasl_auth", B, "outbound_sasl_auth", "true", NULL, NULL, 0,
     PM_KF_NODE, "smtpd_sasl_auth_enable, permit_sasl_authenticated",
     "offer SMTP AUTH and let authenticated clients relay",
     PF("smtpd_relay_restrictions", "smtpd_sasl_auth_enable"),
     PM_EFFECT_RELOAD},
    {"outbound.tls_auth_only", B, "outbound_tls_auth_only", "true", NULL, NULL,
     0, PM_KF_NODE, "smtpd_tls_auth_only", "offer AUTH only after STARTTLS",
     PF("smtpd_tls_auth_only"), PM_EFFECT_RELOAD},
    {"outbound.mynetworks", PM_KT_LIST, "outbound_mynetworks",
     "[127.0.0.0/8, \"[::1]/128\"]", pm_check_mynetwork, NULL, 256, PM_KF_NODE,
     "mynetworks", "networks trusted to relay (CIDR)", PF("mynetworks"),
     PM_EFFECT_RELOAD},
    {"outbound.relay_host", PM_KT_STRING, "outbound_relay_host", "\"\"",
     pm_check_relay_host, NULL, 0, PM_KF_NODE, "relayhost",
     "send all outgoing mail, for every domain, through this host",
     PF("relayhost"), PM_EFFECT_RELOAD},
    {"outbound.fallback_relay_host", PM_KT_STRING,
     "outbound_fallback_relay_host", "\"\"", pm_check_relay_host, NULL, 0,
     PM_KF_NODE, "smtp_fallback_relay", "used when the relay host is down",
     PF("smtp_fallback_relay"), PM_EFFECT_RELOAD},
    {"antispam.enabled", B, "antispam_enabled", "true", NULL, NULL, 0, 0,
     "milter + spamd", "score mail with SpamAssassin",
     PF("smtpd_milters", "non_smtpd_milters", "milter_default_action"),
     PM_EFFECT_RELOAD},
    {"antispam.level", PM_KT_ENUM, "antispam_level", "medium", NULL, s_levels,
     0, 0, "milter", "low 40/90, medium 33/75, high 16/66, custom", NULL,
     PM_EFFECT_LIVE},
    {"antispam.tag_percent", PM_KT_PERCENT, "antispam_tag_percent", "33", NULL,
     NULL, 100, 0, "milter", "tag at score percent x 20 / 100 (33 -> 6.6)",
     NULL, PM_EFFECT_LIVE},
    {"antispam.kill_percent", PM_KT_PERCENT, "antispam_kill_percent", "75",
     NULL, NULL, 100, 0, "milter",
     "kill at score percent x 20 / 100 (75 -> 15), above tag", NULL,
     PM_EFFECT_LIVE},
    {"antispam.subject_prefix", PM_KT_STRING, "antispam_subject_prefix", "\"\"",
     pm_check_subject_prefix, NULL, PM_SUBJECT_PREFIX_MAX, 0, "milter",
     "prefix added to the Subject of tagged mail", NULL, PM_EFFECT_LIVE},
    {"antispam.kill_action", PM_KT_ENUM, "antispam_kill_action", "discard",
     NULL, s_kill_actions, 0, 0, "milter",
     "above the kill level: discard, or deliver tagged", NULL, PM_EFFECT_LIVE},
    {"antispam.scan_outbound", B, "antispam_scan_outbound", "false", NULL, NULL,
     0, 0, "milter", "also scan authenticated and mynetworks mail", NULL,
     PM_EFFECT_LIVE},
    {"antispam.dkim_verify", B, "antispam_dkim_verify", "true", NULL, NULL, 0,
     0, "milter", "reject mail of DKIM-enabled domains without a signature",
     NULL, PM_EFFECT_LIVE},
    {"antivirus.enabled", B, "antivirus_enabled", "true", NULL, NULL, 0, 0,
     "milter + libclamav", "scan mail with ClamAV",
     PF("smtpd_milters", "non_smtpd_milters", "milter_default_action"),
     PM_EFFECT_RELOAD},
    {"antivirus.mirrors", PM_KT_LIST, "antivirus_mirrors",
     "[\"https://database.clamav.net\"]", pm_check_url, NULL, 16, 0,
     "agent updater", "where signature databases are fetched", NULL,
     PM_EFFECT_LIVE},
    {"antivirus.databases", PM_KT_LIST, "antivirus_databases",
     "[main, daily, bytecode]", pm_check_database_name, NULL, 16, 0,
     "agent updater", "ClamAV databases fetched from the mirrors", NULL,
     PM_EFFECT_LIVE},
    {"antivirus.custom_signatures", PM_KT_SIGNATURES,
     "antivirus_custom_signatures", "[]", pm_check_signature_name, NULL, 64, 0,
     "milter engine", "signature files in ClamAV syntax, with their sha256",
     NULL, PM_EFFECT_ENGINE},
    {"antivirus.update_frequency", PM_KT_DURATION, "antivirus_update_frequency",
     "2h", NULL, NULL, 0, 0, "agent updater",
     "how often mirrors are checked (1s to 8w)", NULL, PM_EFFECT_LIVE},
    {"antivirus.block_encrypted_archives", B,
     "antivirus_block_encrypted_archives", "true", NULL, NULL, 0, 0,
     "libclamav", "treat encrypted archives as infected", NULL,
     PM_EFFECT_ENGINE},
    {"antivirus.notify_admin", B, "antivirus_notify_admin", "true", NULL, NULL,
     0, 0, "milter", "notify the admin of infected mail", NULL, PM_EFFECT_LIVE},
    {"antivirus.notify_recipient", B, "antivirus_notify_recipient", "true",
     NULL, NULL, 0, 0, "milter", "notify recipients of infected mail", NULL,
     PM_EFFECT_LIVE},
    {"dkim.domains", PM_KT_DKIM, "dkim_domains", "[]", pm_check_domain, NULL,
     1024, 0, "milter", "DKIM-enabled domains: {domain, selector, key}",
     PF("smtpd_milters", "non_smtpd_milters", "milter_default_action"),
     PM_EFFECT_RELOAD},
};
#undef PF
#undef B

#define S_NKEYS (sizeof s_keys / sizeof s_keys[0])

const pm_key_t *
pm_policy_keys(size_t *n)
{
    *n = S_NKEYS;
    return s_keys;
}

const char *
pm_effect_name(pm_effect_t effect)
{
    static const char *const names[] = {"live", "engine", "reload", "restart"};
    return (unsigned)effect < sizeof names / sizeof names[0] ? names[effect]
                                                             : "unknown";
}

static const char *
s_override_of(const Pm__Policy *p, const char *node, const char *key)
{
    for (size_t i = 0; i < p->n_overrides; i++)
        if (strcmp(p->overrides[i]->node, node) == 0 &&
            strcmp(p->overrides[i]->key, key) == 0)
            return p->overrides[i]->value;
    return NULL;
}

/* Overrides are compared as "nodes.NODE.KEY", present on either side. */
static pm_effect_t
s_diff_overrides(const Pm__Policy *a, const Pm__Policy *b,
                 pm_policy_diff_fn *fn, void *arg)
{
    pm_effect_t most = PM_EFFECT_LIVE;
    const Pm__Policy *sides[2] = {a, b};
    for (int s = 0; s < 2; s++) {
        for (size_t i = 0; i < sides[s]->n_overrides; i++) {
            const Pm__NodeOverride *ov = sides[s]->overrides[i];
            const char *va = s_override_of(a, ov->node, ov->key);
            const char *vb = s_override_of(b, ov->node, ov->key);
            if ((s == 1 && va) || (va && vb && strcmp(va, vb) == 0))
                continue; /* seen from a's side, or equal */
            const pm_key_t *key = pm_policy_key(ov->key);
            if (key && key->effect > most)
                most = key->effect;
            if (fn) {
                char *name = pm_asprintf("nodes.%s.%s", ov->node, ov->key);
                fn(name, key, va, vb, arg);
                free(name);
            }
        }
    }
    return most;
}

pm_effect_t
pm_policy_diff(const Pm__Policy *a, const Pm__Policy *b, pm_policy_diff_fn *fn,
               void *arg)
{
    pm_effect_t most = PM_EFFECT_LIVE;
    for (size_t i = 0; i < S_NKEYS; i++) {
        char *ta = pm_policy_key_text(a, &s_keys[i]);
        char *tb = pm_policy_key_text(b, &s_keys[i]);
        if (strcmp(ta, tb) != 0) {
            if (s_keys[i].effect > most)
                most = s_keys[i].effect;
            if (fn)
                fn(s_keys[i].name, &s_keys[i], ta, tb, arg);
        }
        free(ta);
        free(tb);
    }
    pm_effect_t ov = s_diff_overrides(a, b, fn, arg);
    return ov > most ? ov : most;
}

const pm_key_t *
pm_policy_key(const char *name)
{
    for (size_t i = 0; i < S_NKEYS; i++)
        if (strcmp(s_keys[i].name, name) == 0)
            return &s_keys[i];
    return NULL;
}

size_t
pm_policy_key_index(const pm_key_t *key)
{
    assert(key >= s_keys && key < s_keys + S_NKEYS);
    return (size_t)(key - s_keys);
}

const ProtobufCFieldDescriptor *
pm_policy_field(const pm_key_t *key)
{
    static const ProtobufCFieldDescriptor *fields[S_NKEYS];
    size_t i = pm_policy_key_index(key);
    if (!fields[i]) {
        fields[i] = protobuf_c_message_descriptor_get_field_by_name(
            &pm__policy__descriptor, key->field);
        /* A table entry naming a missing field is a build-time mistake;
         * tests/common/test_policy.c checks every entry. */
        assert(fields[i]);
    }
    return fields[i];
}

/* Levenshtein distance, bounded inputs (key names are short). */
static size_t
s_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 64 || lb > 64)
        return (size_t)-1;
    size_t prev[65], cur[65];
    for (size_t j = 0; j <= lb; j++)
        prev[j] = j;
    for (size_t i = 1; i <= la; i++) {
        cur[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t sub = prev[j - 1] + (a[i - 1] != b[j - 1]);
            size_t del = prev[j] + 1, ins = cur[j - 1] + 1;
            cur[j] =
                sub < del ? (sub < ins ? sub : ins) : (del < ins ? del : ins);
        }
        memcpy(prev, cur, sizeof prev);
    }
    return prev[lb];
}

static const char *
s_last_segment(const char *name)
{
    const char *dot = strrchr(name, '.');
    return dot ? dot + 1 : name;
}

/* A key is suggested when the whole name is close, or when the last part
 * alone is close to a key's last part ("relayhost" -> relay_host); each
 * measured against its own length, so short words do not match anything. */
const char *
pm_policy_suggest(const char *name)
{
    const char *best = NULL, *seg = s_last_segment(name);
    size_t best_d = (size_t)-1;
    size_t full_limit = strlen(name) / 4 + 1, seg_limit = strlen(seg) / 4 + 1;
    for (size_t i = 0; i < S_NKEYS; i++) {
        size_t d = s_distance(name, s_keys[i].name);
        size_t ds = s_distance(seg, s_last_segment(s_keys[i].name));
        if (d <= full_limit && d < best_d) {
            best_d = d;
            best = s_keys[i].name;
        }
        if (ds <= seg_limit && ds + 1 < best_d) {
            best_d = ds + 1;
            best = s_keys[i].name;
        }
    }
    return best;
}

void
pm_policy_set_string(char **slot, const char *value)
{
    pm_wire_set_string(slot, value);
}

const char *
pm_policy_level_for(unsigned tag, unsigned kill)
{
    for (size_t i = 0; i < sizeof s_level_table / sizeof s_level_table[0]; i++)
        if (s_level_table[i].tag == tag && s_level_table[i].kill == kill)
            return s_level_table[i].name;
    return NULL;
}

bool
pm_policy_level_percents(const char *level, unsigned *tag, unsigned *kill)
{
    for (size_t i = 0; i < sizeof s_level_table / sizeof s_level_table[0];
         i++) {
        if (strcmp(s_level_table[i].name, level) == 0) {
            *tag = s_level_table[i].tag;
            *kill = s_level_table[i].kill;
            return true;
        }
    }
    return false;
}

Pm__Policy *
pm_policy_new(void)
{
    Pm__Policy *p = pm_malloc(sizeof *p);
    pm__policy__init(p);
    pm_diag_t *diag = pm_diag_new("default");
    for (size_t i = 0; i < S_NKEYS; i++) {
        pm_value_t *v =
            pm_value_parse(s_keys[i].dflt, strlen(s_keys[i].dflt), 1, diag);
        pm_policy_apply(p, &s_keys[i], PM__EDIT__OP__ASSIGN, v, NULL, NULL,
                        NULL, diag);
        pm_value_destroy(&v);
    }
    /* Defaults are constants: a problem here is a bug in the table. */
    assert(pm_diag_count(diag) == 0);
    pm_diag_destroy(&diag);
    return p;
}

Pm__Policy *
pm_policy_dup(const Pm__Policy *policy)
{
    return pm_wire_dup(&policy->base);
}

void
pm_policy_free(Pm__Policy **policy_p)
{
    if (*policy_p)
        pm__policy__free_unpacked(*policy_p, NULL);
    *policy_p = NULL;
}

pm_origin_t *
pm_origin_new(void)
{
    pm_origin_t *self = pm_calloc(1, sizeof *self);
    self->keys = pm_calloc(S_NKEYS, sizeof *self->keys);
    return self;
}

void
pm_origin_destroy(pm_origin_t **self_p)
{
    pm_origin_t *self = *self_p;
    if (!self)
        return;
    for (size_t i = 0; i < S_NKEYS; i++)
        free(self->keys[i].item_lines);
    free(self->keys);
    free(self->override_lines);
    free(self);
    *self_p = NULL;
}

void
pm_origin_item_line(pm_origin_t *self, size_t key, size_t item, unsigned line)
{
    pm_keyline_t *kl = &self->keys[key];
    if (item >= kl->cap) {
        /* doubling: a list of n items costs O(n), not O(n^2) copies */
        kl->cap = item + 1 > 2 * kl->cap ? item + 1 : 2 * kl->cap;
        kl->item_lines =
            pm_realloc(kl->item_lines, kl->cap * sizeof *kl->item_lines);
    }
    if (item >= kl->n_items) {
        memset(kl->item_lines + kl->n_items, 0,
               (item + 1 - kl->n_items) * sizeof *kl->item_lines);
        kl->n_items = item + 1;
    }
    kl->item_lines[item] = line;
}

bool
pm_policy_get_bool(const Pm__Policy *policy, const pm_key_t *key)
{
    assert(key->type == PM_KT_BOOL);
    return *PM_FIELD(policy, key, protobuf_c_boolean);
}

const char *
pm_policy_get_string(const Pm__Policy *policy, const pm_key_t *key)
{
    assert(key->type == PM_KT_STRING || key->type == PM_KT_ENUM);
    const char *v = *PM_FIELD(policy, key, char *);
    return v ? v : "";
}
