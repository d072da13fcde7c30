/* pm_pf_render.c - the policy as main.cf parameters. */
#include "pm_pf_render.h"
#include "pm_mem.h"
#include "pm_policy.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

const pm_pf_caps_t pm_pf_caps_all = {true, true,
                                     "unix:/run/privmta-milter/milter.sock"};

typedef char *(*s_render_fn)(const Pm__Policy *p, const pm_pf_caps_t *caps);

static char *
s_yesno(bool b)
{
    return pm_strdup(b ? "yes" : "no");
}

/* Appends WORD to the space separated list *LIST when ON. */
static void
s_add(char **list, bool on, const char *word)
{
    if (!on)
        return;
    char *next = **list ? pm_asprintf("%s %s", *list, word) : pm_strdup(word);
    free(*list);
    *list = next;
}

/* A HELO check can only be enforced when HELO is required: a client that
 * skips HELO is never checked. */
static char *
r_helo_required(const Pm__Policy *p, const pm_pf_caps_t *c)
{
    (void)c;
    return s_yesno(p->inbound_checks_helo_valid ||
                   p->inbound_checks_helo_fqdn ||
                   p->inbound_checks_helo_resolves);
}

static char *
r_helo_restrictions(const Pm__Policy *p, const pm_pf_caps_t *c)
{
    (void)c;
    char *v = pm_strdup("");
    s_add(&v, p->inbound_checks_helo_valid, "reject_invalid_helo_hostname");
    s_add(&v, p->inbound_checks_helo_fqdn, "reject_non_fqdn_helo_hostname");
    s_add(&v, p->inbound_checks_helo_resolves, "reject_unknown_helo_hostname");
    return v;
}

static char *
r_client_restrictions(const Pm__Policy *p, const pm_pf_caps_t *c)
{
    (void)c;
    char *v = pm_strdup("");
    s_add(&v, p->inbound_checks_client_hostname,
          "reject_unknown_client_hostname");
    s_add(&v, p->inbound_checks_reverse_client_hostname,
          "reject_unknown_reverse_client_hostname");
    return v;
}

/* reject_sender_login_mismatch needs smtpd_sender_login_maps: without it
 * no address has an owner, so every SASL-authenticated client would be a
 * "mismatch". Left out until the node defines the map (status says so). */
static char *
r_sender_restrictions(const Pm__Policy *p, const pm_pf_caps_t *c)
{
    char *v = pm_strdup("");
    s_add(&v, p->inbound_reject_sender_login_mismatch && c->login_maps,
          "reject_sender_login_mismatch");
    s_add(&v, p->inbound_checks_sender_fqdn, "reject_non_fqdn_sender");
    s_add(&v, p->inbound_checks_sender_domain, "reject_unknown_sender_domain");
    return v;
}

/* reject (5xx), not Postfix's default defer_unauth_destination (4xx): an
 * admin who narrows mynetworks wants a clean, final relay denial. */
static char *
r_relay_restrictions(const Pm__Policy *p, const pm_pf_caps_t *c)
{
    char *v = pm_strdup("permit_mynetworks");
    s_add(&v, p->outbound_sasl_auth && c->sasl, "permit_sasl_authenticated");
    s_add(&v, true, "reject_unauth_destination");
    return v;
}

/* With smtpd_sasl_auth_enable = yes and no backend answering, every smtpd
 * process dies ("fatal: no SASL authentication mechanisms") and master
 * throttles the service: no mail at all. So AUTH is only turned on when
 * the node has a backend (status reports auth DOWN otherwise). */
static char *
r_sasl_enable(const Pm__Policy *p, const pm_pf_caps_t *c)
{
    return s_yesno(p->outbound_sasl_auth && c->sasl);
}

/* Postfix reads an unbracketed IPv6 entry ("::1/128") as a "type:table"
 * lookup table and every smtpd dies on it; the check accepts both forms,
 * so IPv6 entries are always written in brackets. */
static char *
r_mynetworks(const Pm__Policy *p, const pm_pf_caps_t *c)
{
    (void)c;
    char *v = pm_strdup("");
    for (size_t i = 0; i < p->n_outbound_mynetworks; i++) {
        const char *net = p->outbound_mynetworks[i];
        char *item = NULL;
        if (net[0] != '[' && strchr(net, ':')) {
            const char *slash = strchr(net, '/');
            int alen = slash ? (int)(slash - net) : (int)strlen(net);
            item = pm_asprintf("[%.*s]%s", alen, net, slash ? slash : "");
        }
        s_add(&v, true, item ? item : net);
        free(item);
    }
    return v;
}

/* The content filter is wired in whenever the policy asks for anything
 * it does, and taken out when nothing does; with a filter configured but
 * unreachable, Postfix tempfails (milter_default_action) rather than let
 * mail through unscanned. */
static bool
s_needs_milter(const Pm__Policy *p)
{
    return p->n_inbound_blocked_extensions || p->antispam_enabled ||
           p->antivirus_enabled || p->n_dkim_domains;
}

static char *
r_milters(const Pm__Policy *p, const pm_pf_caps_t *c)
{
    return pm_strdup(c->milter && s_needs_milter(p) ? c->milter : "");
}

static char *
r_milter_action(const Pm__Policy *p, const pm_pf_caps_t *c)
{
    (void)p;
    (void)c;
    return pm_strdup("tempfail");
}

/* Every parameter the policy owns, in the order they are written; which
 * keys drive each is in the policy table (pm_key_t.postfix). */
static const struct {
    const char *param;
    s_render_fn render; /* NULL: the value of the one key driving it */
} s_params[] = {
    {"smtpd_reject_unlisted_sender", NULL},
    {"smtpd_reject_unlisted_recipient", NULL},
    {"smtpd_helo_required", r_helo_required},
    {"smtpd_helo_restrictions", r_helo_restrictions},
    {"smtpd_client_restrictions", r_client_restrictions},
    {"smtpd_sender_restrictions", r_sender_restrictions},
    {"smtpd_relay_restrictions", r_relay_restrictions},
    {"smtpd_sasl_auth_enable", r_sasl_enable},
    {"smtpd_sasl_authenticated_header", NULL},
    {"smtpd_tls_auth_only", NULL},
    {"mynetworks", r_mynetworks},
    {"relayhost", NULL},
    {"smtp_fallback_relay", NULL},
    {"smtpd_milters", r_milters},
    {"non_smtpd_milters", r_milters},
    {"milter_default_action", r_milter_action},
};

#define S_NPARAMS (sizeof s_params / sizeof s_params[0])

static bool
s_drives(const pm_key_t *key, const char *param)
{
    for (const char *const *p = key->postfix; p && *p; p++)
        if (strcmp(*p, param) == 0)
            return true;
    return false;
}

/* The one key whose table entry says it drives PARAM: a switch becomes
 * yes/no, text is copied. */
static char *
s_render_key(const Pm__Policy *p, const char *param)
{
    size_t nkeys = 0;
    const pm_key_t *keys = pm_policy_keys(&nkeys), *key = NULL;
    for (size_t i = 0; i < nkeys; i++)
        if (s_drives(&keys[i], param)) {
            assert(!key); /* test_pf_render checks there is exactly one */
            key = &keys[i];
        }
    assert(key);
    if (key->type == PM_KT_BOOL)
        return s_yesno(pm_policy_get_bool(p, key));
    return pm_strdup(pm_policy_get_string(p, key));
}

pm_postconf_param_t *
pm_pf_render(const Pm__Policy *effective, const pm_pf_caps_t *caps, size_t *n)
{
    pm_postconf_param_t *out = pm_calloc(S_NPARAMS, sizeof *out);
    for (size_t i = 0; i < S_NPARAMS; i++) {
        out[i].name = pm_strdup(s_params[i].param);
        out[i].value = s_params[i].render
                           ? s_params[i].render(effective, caps)
                           : s_render_key(effective, s_params[i].param);
    }
    *n = S_NPARAMS;
    return out;
}

bool
pm_pf_render_owns(const char *param)
{
    for (size_t i = 0; i < S_NPARAMS; i++)
        if (strcmp(s_params[i].param, param) == 0)
            return true;
    return false;
}
