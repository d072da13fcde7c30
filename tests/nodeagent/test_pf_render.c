/* test_pf_render.c - the policy as main.cf parameters (pm_pf_render).
 *
 * Pure: no Postfix runs. What each parameter renders to, what a node that
 * lacks a capability gets, and that the parameters the renderer owns are
 * exactly those the policy table declares (pm_key_t.postfix), checked both
 * ways and by behaviour: changing a key changes no parameter it does not
 * declare.
 */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pm_pf_render.h"
#include "pm_policy.h"
#include "testpolicy.h"

static const char *
s_value(const pm_postconf_param_t *params, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(params[i].name, name) == 0)
            return params[i].value;
    cr_assert_fail("no parameter %s rendered", name);
    return NULL;
}

static bool
s_declares(const pm_key_t *key, const char *param)
{
    for (const char *const *p = key->postfix; p && *p; p++)
        if (strcmp(*p, param) == 0)
            return true;
    return false;
}

Test(render, defaults)
{
    Pm__Policy *p = pm_policy_new();
    size_t n = 0;
    pm_postconf_param_t *params = pm_pf_render(p, &pm_pf_caps_all, &n);
    cr_assert_eq(n, 16);
    cr_expect_str_eq(s_value(params, n, "smtpd_reject_unlisted_sender"), "yes");
    cr_expect_str_eq(s_value(params, n, "smtpd_reject_unlisted_recipient"),
                     "yes");
    cr_expect_str_eq(s_value(params, n, "smtpd_helo_required"), "yes");
    cr_expect_str_eq(s_value(params, n, "smtpd_helo_restrictions"),
                     "reject_invalid_helo_hostname");
    cr_expect_str_eq(s_value(params, n, "smtpd_client_restrictions"), "");
    cr_expect_str_eq(s_value(params, n, "smtpd_sender_restrictions"),
                     "reject_sender_login_mismatch reject_non_fqdn_sender "
                     "reject_unknown_sender_domain");
    cr_expect_str_eq(s_value(params, n, "smtpd_relay_restrictions"),
                     "permit_mynetworks permit_sasl_authenticated "
                     "reject_unauth_destination");
    cr_expect_str_eq(s_value(params, n, "smtpd_sasl_auth_enable"), "yes");
    cr_expect_str_eq(s_value(params, n, "smtpd_sasl_authenticated_header"),
                     "no");
    cr_expect_str_eq(s_value(params, n, "smtpd_tls_auth_only"), "yes");
    cr_expect_str_eq(s_value(params, n, "mynetworks"), "127.0.0.0/8 [::1]/128");
    cr_expect_str_eq(s_value(params, n, "relayhost"), "");
    cr_expect_str_eq(s_value(params, n, "smtp_fallback_relay"), "");
    /* antispam and antivirus are on by default: the filter is wired in */
    cr_expect_str_eq(s_value(params, n, "smtpd_milters"),
                     "unix:/run/privmta-milter/milter.sock");
    cr_expect_str_eq(s_value(params, n, "non_smtpd_milters"),
                     "unix:/run/privmta-milter/milter.sock");
    cr_expect_str_eq(s_value(params, n, "milter_default_action"), "tempfail");
    pm_postconf_params_free(&params, n);
    cr_expect_null(params);
    pm_policy_free(&p);
}

/* Nothing the filter does is asked for: it is taken out. */
Test(render, milter_only_when_needed)
{
    Pm__Policy *p = pm_policy_new();
    testpolicy_set(&p, NULL, "antispam.enabled", "false");
    testpolicy_set(&p, NULL, "antivirus.enabled", "false");
    size_t n = 0;
    pm_postconf_param_t *params = pm_pf_render(p, &pm_pf_caps_all, &n);
    cr_expect_str_eq(s_value(params, n, "smtpd_milters"), "");
    cr_expect_str_eq(s_value(params, n, "non_smtpd_milters"), "");
    pm_postconf_params_free(&params, n);
    testpolicy_set(&p, NULL, "inbound.blocked_extensions", "exe");
    params = pm_pf_render(p, &pm_pf_caps_all, &n);
    cr_expect_str_eq(s_value(params, n, "smtpd_milters"),
                     "unix:/run/privmta-milter/milter.sock");
    pm_postconf_params_free(&params, n);
    pm_policy_free(&p);
}

Test(render, every_flag_flipped)
{
    Pm__Policy *p = pm_policy_new();
    testpolicy_set(&p, NULL, "inbound.reject_unlisted_sender", "false");
    testpolicy_set(&p, NULL, "inbound.reject_sender_login_mismatch", "false");
    testpolicy_set(&p, NULL, "inbound.checks.client_hostname", "true");
    testpolicy_set(&p, NULL, "inbound.checks.reverse_client_hostname", "true");
    testpolicy_set(&p, NULL, "inbound.checks.helo_resolves", "true");
    testpolicy_set(&p, NULL, "inbound.checks.helo_valid", "false");
    testpolicy_set(&p, NULL, "inbound.checks.helo_fqdn", "true");
    testpolicy_set(&p, NULL, "inbound.checks.sender_domain", "false");
    testpolicy_set(&p, NULL, "outbound.sasl_auth", "false");
    testpolicy_set(&p, NULL, "outbound.authenticated_header", "true");
    testpolicy_set(&p, NULL, "outbound.tls_auth_only", "false");
    testpolicy_set(&p, NULL, "outbound.mynetworks",
                   "[10.0.0.0/8, \"::1/128\", "
                   "\"[fd00::]/64\", 192.0.2.7]");
    testpolicy_set(&p, NULL, "outbound.relay_host", "\"[10.1.2.3]:587\"");
    testpolicy_set(&p, NULL, "outbound.fallback_relay_host",
                   "relay.example.com:25");
    size_t n = 0;
    pm_postconf_param_t *params = pm_pf_render(p, &pm_pf_caps_all, &n);
    cr_expect_str_eq(s_value(params, n, "smtpd_reject_unlisted_sender"), "no");
    cr_expect_str_eq(s_value(params, n, "smtpd_helo_required"), "yes");
    cr_expect_str_eq(s_value(params, n, "smtpd_helo_restrictions"),
                     "reject_non_fqdn_helo_hostname "
                     "reject_unknown_helo_hostname");
    cr_expect_str_eq(s_value(params, n, "smtpd_client_restrictions"),
                     "reject_unknown_client_hostname "
                     "reject_unknown_reverse_client_hostname");
    cr_expect_str_eq(s_value(params, n, "smtpd_sender_restrictions"),
                     "reject_non_fqdn_sender");
    cr_expect_str_eq(s_value(params, n, "smtpd_relay_restrictions"),
                     "permit_mynetworks reject_unauth_destination");
    cr_expect_str_eq(s_value(params, n, "smtpd_sasl_auth_enable"), "no");
    cr_expect_str_eq(s_value(params, n, "smtpd_sasl_authenticated_header"),
                     "yes");
    cr_expect_str_eq(s_value(params, n, "smtpd_tls_auth_only"), "no");
    /* unbracketed IPv6 would be read as a lookup table by smtpd */
    cr_expect_str_eq(s_value(params, n, "mynetworks"),
                     "10.0.0.0/8 [::1]/128 [fd00::]/64 192.0.2.7");
    cr_expect_str_eq(s_value(params, n, "relayhost"), "[10.1.2.3]:587");
    cr_expect_str_eq(s_value(params, n, "smtp_fallback_relay"),
                     "relay.example.com:25");
    pm_postconf_params_free(&params, n);

    /* no HELO check at all: HELO need not be required */
    testpolicy_set(&p, NULL, "inbound.checks.helo_fqdn", "false");
    testpolicy_set(&p, NULL, "inbound.checks.helo_resolves", "false");
    params = pm_pf_render(p, &pm_pf_caps_all, &n);
    cr_expect_str_eq(s_value(params, n, "smtpd_helo_required"), "no");
    cr_expect_str_eq(s_value(params, n, "smtpd_helo_restrictions"), "");
    testpolicy_set(&p, NULL, "outbound.mynetworks", "[]");
    pm_postconf_params_free(&params, n);
    params = pm_pf_render(p, &pm_pf_caps_all, &n);
    cr_expect_str_eq(s_value(params, n, "mynetworks"), "");
    pm_postconf_params_free(&params, n);
    pm_policy_free(&p);
}

/* A node without SASL gets no AUTH; without smtpd_sender_login_maps no
 * login mismatch check; without a milter no milters. */
Test(render, node_capabilities)
{
    Pm__Policy *p = pm_policy_new();
    pm_pf_caps_t none = {false, false, NULL};
    size_t n = 0;
    pm_postconf_param_t *params = pm_pf_render(p, &none, &n);
    cr_expect_str_eq(s_value(params, n, "smtpd_sasl_auth_enable"), "no");
    cr_expect_str_eq(s_value(params, n, "smtpd_relay_restrictions"),
                     "permit_mynetworks reject_unauth_destination");
    cr_expect_str_eq(s_value(params, n, "smtpd_sender_restrictions"),
                     "reject_non_fqdn_sender reject_unknown_sender_domain");
    cr_expect_str_eq(s_value(params, n, "smtpd_milters"), "");
    cr_expect_str_eq(s_value(params, n, "milter_default_action"), "tempfail");
    pm_postconf_params_free(&params, n);
    pm_pf_caps_t inet = {true, true, "inet:127.0.0.1:8891"};
    params = pm_pf_render(p, &inet, &n);
    cr_expect_str_eq(s_value(params, n, "non_smtpd_milters"),
                     "inet:127.0.0.1:8891");
    pm_postconf_params_free(&params, n);
    pm_policy_free(&p);
}

/* Every parameter a key declares is rendered, and every rendered parameter
 * is declared by some key. */
Test(table, declared_both_ways)
{
    Pm__Policy *p = pm_policy_new();
    size_t n = 0, nkeys = 0;
    pm_postconf_param_t *params = pm_pf_render(p, &pm_pf_caps_all, &n);
    const pm_key_t *keys = pm_policy_keys(&nkeys);
    for (size_t k = 0; k < nkeys; k++)
        for (const char *const *d = keys[k].postfix; d && *d; d++) {
            cr_expect(pm_pf_render_owns(*d), "%s declares %s, not rendered",
                      keys[k].name, *d);
            bool rendered = false;
            for (size_t i = 0; i < n; i++)
                rendered = rendered || strcmp(params[i].name, *d) == 0;
            cr_expect(rendered, "%s declares %s, not rendered", keys[k].name,
                      *d);
        }
    for (size_t i = 0; i < n; i++) {
        cr_expect(pm_pf_render_owns(params[i].name));
        size_t drivers = 0;
        for (size_t k = 0; k < nkeys; k++)
            drivers += s_declares(&keys[k], params[i].name);
        cr_expect(drivers > 0, "no key declares %s", params[i].name);
    }
    cr_expect_not(pm_pf_render_owns("myhostname"));
    cr_expect_not(pm_pf_render_owns(""));
    pm_postconf_params_free(&params, n);
    pm_policy_free(&p);
}

/* A value for each key that is not a switch (switches are flipped). Keys
 * not listed (percentages, tied to the level; signatures; DKIM, which
 * needs a key pair) are only covered by the tests above. */
static const struct {
    const char *key, *value;
} s_values[] = {
    {"inbound.blocked_extensions", "exe"},
    {"inbound.admin_address", "admin@example.com"},
    {"outbound.mynetworks", "[10.0.0.0/8]"},
    {"outbound.relay_host", "\"[10.1.2.3]:587\""},
    {"outbound.fallback_relay_host", "relay.example.com:25"},
    {"antispam.level", "high"},
    {"antispam.kill_action", "deliver"},
    {"antivirus.mirrors", "[\"https://mirror.example.com\"]"},
    {"antivirus.databases", "[main]"},
    {"antivirus.update_frequency", "1h"},
};

/* The value KEY is set to from BASE, or NULL when it has none. */
static const char *
s_other_value(const Pm__Policy *base, const pm_key_t *key)
{
    if (key->type == PM_KT_BOOL)
        return pm_policy_get_bool(base, key) ? "false" : "true";
    for (size_t i = 0; i < sizeof s_values / sizeof s_values[0]; i++)
        if (strcmp(s_values[i].key, key->name) == 0)
            return s_values[i].value;
    return NULL;
}

/* Sets each key in turn to another value from BASE: the parameters that
 * change must all be declared by the key; with MUST_CHANGE, a key that
 * declares parameters must change at least one. */
static void
s_check_changes(const Pm__Policy *base, bool must_change)
{
    size_t nkeys = 0, n0 = 0, n1 = 0;
    const pm_key_t *keys = pm_policy_keys(&nkeys);
    pm_postconf_param_t *before = pm_pf_render(base, &pm_pf_caps_all, &n0);
    for (size_t k = 0; k < nkeys; k++) {
        const char *value = s_other_value(base, &keys[k]);
        if (!value)
            continue;
        Pm__Policy *p = pm_policy_dup(base);
        testpolicy_set(&p, NULL, keys[k].name, value);
        pm_postconf_param_t *after = pm_pf_render(p, &pm_pf_caps_all, &n1);
        cr_assert_eq(n0, n1);
        size_t changed = 0;
        for (size_t i = 0; i < n0; i++) {
            if (strcmp(before[i].value, after[i].value) == 0)
                continue;
            changed++;
            cr_expect(s_declares(&keys[k], before[i].name),
                      "%s = %s changes %s, which it does not declare",
                      keys[k].name, value, before[i].name);
        }
        if (must_change && keys[k].postfix)
            cr_expect(changed > 0, "%s = %s changes none of its parameters",
                      keys[k].name, value);
        pm_postconf_params_free(&after, n1);
        pm_policy_free(&p);
    }
    pm_postconf_params_free(&before, n0);
}

Test(table, keys_change_only_what_they_declare)
{
    Pm__Policy *p = pm_policy_new();
    s_check_changes(p, false);
    /* everything off: each key alone makes a difference */
    size_t nkeys = 0;
    const pm_key_t *keys = pm_policy_keys(&nkeys);
    for (size_t k = 0; k < nkeys; k++)
        if (keys[k].type == PM_KT_BOOL)
            testpolicy_set(&p, NULL, keys[k].name, "false");
    testpolicy_set(&p, NULL, "outbound.mynetworks", "[]");
    s_check_changes(p, true);
    pm_policy_free(&p);
}
