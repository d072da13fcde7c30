/* pm_milter.c - the per-message decision (pure: engines are passed in). */
#include "pm_attach.h"
#include "pm_av.h"
#include "pm_mem.h"
#include "pm_handoff.h"
#include "pm_milter.h"
#include "pm_milter_private.h"

#include <glib.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Reply text must be printable ASCII without '%' (libmilter and Postfix
 * reply rules); names from mail are cleaned before they go into one. */
static char *
s_clean(const char *text)
{
    size_t n = strlen(text);
    if (n > 200)
        n = 200;
    char *out = pm_strndup(text, n);
    for (char *c = out; *c; c++)
        if ((unsigned char)*c < 0x20 || (unsigned char)*c > 0x7e || *c == '%')
            *c = '?';
    return out;
}

static void
s_reply(pm_mverdict_t *out, pm_mv_action_t action, const char *rcode,
        const char *xcode, char *text)
{
    out->action = action;
    snprintf(out->rcode, sizeof out->rcode, "%s", rcode);
    snprintf(out->xcode, sizeof out->xcode, "%s", xcode);
    out->text = text;
}

static pm_mv_action_t
s_tempfail(pm_mverdict_t *out, const char *stage, const char *why)
{
    s_reply(out, PM_MV_TEMPFAIL, "451", "4.3.0",
            pm_asprintf("Temporary failure in the %s check, try again later",
                        stage));
    free(out->log);
    out->log = pm_asprintf("tempfail: %s: %s", stage, why ? why : "failed");
    return PM_MV_TEMPFAIL;
}

static void
s_set_notice(pm_mverdict_t *out, const pm_mpolicy_t *pol, const pm_mmsg_t *msg,
             pm_notice_kind_t kind, const char *item)
{
    const Pm__Policy *p = pm_mpolicy_policy(pol);
    out->notice = kind;
    out->notice_item = pm_strdup(item);
    out->notify_admin = kind == PM_NOTICE_ATTACHMENT
                            ? p->inbound_notify_admin
                            : p->antivirus_notify_admin;
    out->notify_recipients = kind == PM_NOTICE_ATTACHMENT
                                 ? p->inbound_notify_recipient
                                 : p->antivirus_notify_recipient;
    const char *host = pm_mmsg_myhostname(msg);
    if (p->inbound_admin_address && *p->inbound_admin_address)
        out->admin_address = pm_strdup(p->inbound_admin_address);
    else if (*host)
        out->admin_address = pm_asprintf("postmaster@%s", host);
    else
        out->admin_address = pm_strdup("postmaster");
}

/* A 554 for content that could not be looked at completely, WHY naming
 * the limit: the MIME check says "checked completely: WHY", the antivirus
 * "scanned completely (WHY)" (pm_milter.h). */
static void
s_incomplete(pm_mverdict_t *out, bool av, const char *why)
{
    char *w = s_clean(why ? why : "a limit");
    s_reply(out, PM_MV_REJECT, "554", "5.7.1",
            av ? pm_asprintf("Message rejected: could not be scanned "
                             "completely (%s)",
                             w)
               : pm_asprintf("Message rejected: could not be checked "
                             "completely: %s",
                             w));
    out->log = pm_asprintf("reject: could not be %s completely: %s",
                           av ? "scanned" : "checked", w);
    free(w);
}

/* Blocked attachments and MIME shape limits: true when the verdict is
 * final. Runs with an empty blocklist too: it is what refuses a MIME part
 * bomb before libclamav and spamd see it. */
static bool
s_check_attach(const pm_mpolicy_t *pol, const pm_mmsg_t *msg,
               pm_mverdict_t *out)
{
    const pm_attach_blocklist_t *bl = pm_mpolicy_blocklist(pol);
    size_t len;
    const char *data = pm_mmsg_data(msg, &len);
    pm_attach_hit_t hit = {0};
    char *why = NULL;
    int rc = pm_attach_scan(bl, data, len, &hit, &why);
    if (rc == 0 || rc == 2) {
        if (rc == 2)
            s_incomplete(out, false, why);
        free(why);
        return rc == 2;
    }
    if (rc != 1) { /* -1, or anything this code does not know */
        s_tempfail(out, "attachment", why);
        free(why);
        return true;
    }
    char *ext = s_clean(hit.extension), *name = s_clean(hit.filename);
    s_reply(out, PM_MV_REJECT, "554", "5.7.1",
            pm_asprintf("Message rejected: attachment \"%s\" has the blocked "
                        "extension .%s",
                        name, ext));
    out->log =
        pm_asprintf("reject: blocked attachment %s (extension %s)", name, ext);
    s_set_notice(out, pol, msg, PM_NOTICE_ATTACHMENT, hit.filename);
    out->reason = PM_MR_ATTACHMENT;
    free(ext);
    free(name);
    pm_attach_hit_clear(&hit);
    return true;
}

static bool
s_check_av(const pm_mpolicy_t *pol, const pm_mmsg_t *msg,
           const pm_mengines_t *eng, pm_mverdict_t *out)
{
    if (!pm_mpolicy_policy(pol)->antivirus_enabled)
        return false;
    if (!eng->av_scan)
        return s_tempfail(out, "antivirus", "no engine"), true;
    size_t len;
    const char *data = pm_mmsg_data(msg, &len);
    char *virname = NULL, *why = NULL;
    int rc = eng->av_scan(eng->ctx, data, len, &virname, &why);
    if (rc == PM_AV_CLEAN)
        return false;
    if (rc == PM_AV_INCOMPLETE)
        s_incomplete(out, true, why);
    else if (rc == PM_AV_TIMEOUT) {
        /* a resource limit, not a verdict on the content: try later */
        char *w = s_clean(why ? why : "scan time limit");
        s_reply(out, PM_MV_TEMPFAIL, "451", "4.3.0",
                pm_asprintf("Temporary failure in the antivirus check (%s), "
                            "try again later",
                            w));
        out->log = pm_asprintf("tempfail: antivirus: %s", w);
        free(w);
    } else if (rc != PM_AV_INFECTED)
        s_tempfail(out, "antivirus", why);
    if (rc != PM_AV_INFECTED) {
        free(why);
        free(virname);
        return true;
    }
    char *name = s_clean(virname ? virname : "unknown");
    s_reply(out, PM_MV_REJECT, "554", "5.7.1",
            pm_asprintf("Message rejected: virus found: %s", name));
    out->log = pm_asprintf("reject: infected with %s", name);
    s_set_notice(out, pol, msg, PM_NOTICE_VIRUS, name);
    out->reason = PM_MR_VIRUS;
    free(name);
    free(virname);
    return true;
}

/* The first DKIM domain the From headers name at or after index *I, or
 * NULL; *I moves past it. */
static const pm_mdkim_t *
s_named(const pm_mpolicy_t *pol, const pm_from_t *from, size_t *i)
{
    size_t n;
    const pm_mdkim_t *d = pm_mpolicy_dkim(pol, &n);
    for (; *i < n; (*i)++)
        if (pm_from_names(from, d[*i].domain))
            return &d[(*i)++];
    return NULL;
}

static bool
s_forged(pm_mverdict_t *out, const char *domain, const char *problem)
{
    char *p = s_clean(problem);
    s_reply(out, PM_MV_REJECT, "550", "5.7.1",
            pm_asprintf("Message rejected: the From header names %s but is "
                        "not exactly one mailbox (%s)",
                        domain, p));
    out->log = pm_asprintf("reject: ambiguous From naming %s: %s", domain, p);
    out->reason = PM_MR_DKIM;
    free(p);
    return true;
}

/* One clean From mailbox: every DKIM domain FROM names, HIT first (*I
 * past it), needs a passing signature of its own. True when final. */
static bool
s_need_signatures(const pm_mpolicy_t *pol, const pm_mmsg_t *msg,
                  const pm_from_t *from, const pm_mdkim_t *hit, size_t i,
                  const pm_mengines_t *eng, pm_mverdict_t *out)
{
    if (!eng->dkim_verify)
        return s_tempfail(out, "DKIM", "no verifier"), true;
    size_t len, n, n_want = 0;
    const char *data = pm_mmsg_data(msg, &len);
    /* only the signatures of the domains FROM names are checked (each is a
     * key lookup: pm_dkim.h) */
    pm_mpolicy_dkim(pol, &n);
    const char **want = pm_calloc(n + 1, sizeof *want);
    want[n_want++] = hit->domain;
    for (size_t j = i; n_want < n;) {
        const pm_mdkim_t *d = s_named(pol, from, &j);
        if (!d)
            break;
        want[n_want++] = d->domain;
    }
    pm_dkim_verdict_t verdict = {0};
    char *why = NULL;
    int rc =
        eng->dkim_verify(eng->ctx, data, len, want, n_want, &verdict, &why);
    free(want);
    if (rc != PM_OK) {
        s_tempfail(out, "DKIM", why);
        free(why);
        return true;
    }
    while (hit && pm_dkim_has_valid_signature_for(&verdict, hit->domain))
        hit = s_named(pol, from, &i);
    /* its key could not be looked up (DNS down): not proof of forgery */
    bool retry =
        hit && pm_dkim_has_result_for(&verdict, hit->domain, PM_DKIM_TEMPERROR);
    pm_dkim_verdict_clear(&verdict);
    if (!hit)
        return false;
    if (retry) {
        char *why = pm_asprintf("the key of %s's signature could not be "
                                "looked up",
                                hit->domain);
        s_tempfail(out, "DKIM", why);
        free(why);
        return true;
    }
    s_reply(out, PM_MV_REJECT, "550", "5.7.1",
            pm_asprintf("Message rejected: mail from %s must carry a valid "
                        "DKIM signature of %s",
                        hit->domain, hit->domain));
    out->log = pm_asprintf("reject: From domain %s without a valid DKIM "
                           "signature of its own",
                           hit->domain);
    out->reason = PM_MR_DKIM;
    return true;
}

/* The DKIM forged-mail rule (pm_milter.h, step 4). */
static bool
s_check_dkim(const pm_mpolicy_t *pol, const pm_mmsg_t *msg,
             const pm_mengines_t *eng, pm_mverdict_t *out)
{
    if (!pm_mpolicy_policy(pol)->antispam_dkim_verify)
        return false;
    pm_from_t from;
    pm_mmsg_from(msg, &from);
    size_t i = 0;
    const pm_mdkim_t *hit = s_named(pol, &from, &i);
    bool final = false;
    if (hit && from.kind == PM_FROM_AMBIGUOUS)
        final = s_forged(out, hit->domain, from.problem);
    else if (hit)
        final = s_need_signatures(pol, msg, &from, hit, i, eng, out);
    pm_from_clear(&from);
    return final;
}

/* "6.60", "-1.00": exact text of hundredths. */
static char *
s_points(int64_t h)
{
    const char *sign = h < 0 ? "-" : "";
    uint64_t a = h < 0 ? (uint64_t)0 - (uint64_t)h : (uint64_t)h;
    return pm_asprintf("%s%" PRIu64 ".%02" PRIu64, sign, a / 100, a % 100);
}

char *
pm_milter_spam_level(int64_t hundredths)
{
    int64_t stars = hundredths / 100;
    if (stars < 0)
        stars = 0;
    if (stars > 50)
        stars = 50;
    char *s = pm_malloc((size_t)stars + 1);
    memset(s, '*', (size_t)stars);
    s[stars] = '\0';
    return s;
}

static void
s_add_header(pm_mverdict_t *out, const char *name, char *value)
{
    out->add = pm_realloc(out->add, (out->n_add + 1) * sizeof *out->add);
    out->add[out->n_add].name = pm_strdup(name);
    out->add[out->n_add].value = value;
    out->n_add++;
}

static char *
s_symbols(const pm_spamd_result_t *r)
{
    size_t n = 1;
    for (size_t i = 0; i < r->n_symbols; i++)
        n += strlen(r->symbols[i]) + 1;
    char *s = pm_calloc(1, n);
    for (size_t i = 0; i < r->n_symbols; i++) {
        if (i)
            strcat(s, ",");
        strcat(s, r->symbols[i]);
    }
    return s;
}

/* X-Spam-* headers and the Subject prefix. */
static void
s_tag(const pm_mpolicy_t *pol, const pm_mmsg_t *msg, const pm_spamd_result_t *r,
      pm_mverdict_t *out)
{
    const Pm__Policy *p = pm_mpolicy_policy(pol);
    int64_t tag = pm_spamd_percent_hundredths(p->antispam_tag_percent);
    int64_t kill = pm_spamd_percent_hundredths(p->antispam_kill_percent);
    char *score = s_points(r->score_hundredths), *t = s_points(tag);
    char *k = s_points(kill), *syms = s_symbols(r);
    s_add_header(out, "X-Spam-Flag", pm_strdup("YES"));
    s_add_header(out, "X-Spam-Score", pm_strdup(score));
    s_add_header(out, "X-Spam-Level",
                 pm_milter_spam_level(r->score_hundredths));
    s_add_header(out, "X-Spam-Status",
                 pm_asprintf("Yes, score=%s tag=%s kill=%s tests=%s", score, t,
                             k, *syms ? syms : "none"));
    const char *prefix = p->antispam_subject_prefix;
    const char *old = pm_mmsg_subject(msg);
    if (prefix && *prefix) {
        if (!old) {
            out->subject = pm_strdup(prefix);
            out->subject_is_new = true;
        } else if (strncmp(old, prefix, strlen(prefix)) != 0) {
            out->subject =
                pm_asprintf("%s%s%s", prefix,
                            prefix[strlen(prefix) - 1] == ' ' ? "" : " ", old);
        }
    }
    out->log =
        pm_asprintf("tagged: spam score %s >= tag %s (kill %s)", score, t, k);
    free(score);
    free(t);
    free(k);
    free(syms);
}

/* Whether the spam check applies to mail going this way at all. */
static bool
s_spam_applies(const Pm__Policy *p, bool outbound)
{
    return p->antispam_enabled && (!outbound || p->antispam_scan_outbound);
}

/* Too big to be scored (see s_check_spam). */
static bool
s_over_spam_cap(const pm_mengines_t *eng, size_t len)
{
    return eng->spam_max_bytes && len > eng->spam_max_bytes;
}

bool
pm_milter_will_score(const pm_mpolicy_t *pol, const pm_mmsg_t *msg,
                     const pm_mengines_t *eng)
{
    size_t len;
    (void)pm_mmsg_data(msg, &len);
    return pol && eng->spam_check && !pm_mmsg_too_big(msg) &&
           s_spam_applies(pm_mpolicy_policy(pol),
                          pm_milter_is_outbound(pol, msg)) &&
           !s_over_spam_cap(eng, len);
}

static bool
s_check_spam(const pm_mpolicy_t *pol, const pm_mmsg_t *msg, bool outbound,
             const pm_mengines_t *eng, pm_mverdict_t *out)
{
    const Pm__Policy *p = pm_mpolicy_policy(pol);
    if (!s_spam_applies(p, outbound))
        return false;
    if (!eng->spam_check)
        return s_tempfail(out, "antispam", "no spamd client"), true;
    size_t len;
    const char *data = pm_mmsg_data(msg, &len);
    if (s_over_spam_cap(eng, len)) {
        /* as spamc and amavis do: big mail is not scored (spamd holds it
         * whole, and spam is small); say so rather than claim ham */
        s_add_header(out, "X-Privmta-Antispam",
                     pm_asprintf("skipped, message of %zu bytes over the "
                                 "%zu-byte scoring limit",
                                 len, eng->spam_max_bytes));
        out->log = pm_asprintf("not scored: %zu bytes over the %zu-byte "
                               "spamd limit",
                               len, eng->spam_max_bytes);
        return false;
    }
    pm_spamd_result_t r = {0};
    char *why = NULL;
    out->scanned_spam = true;
    if (eng->spam_check(eng->ctx, data, len, &r, &why) != PM_OK) {
        s_tempfail(out, "antispam", why);
        free(why);
        return true;
    }
    out->spam_latency_ms = r.latency_ms;
    bool final = false;
    if (pm_spamd_over_hundredths(r.score_hundredths,
                                 p->antispam_kill_percent) &&
        strcmp(p->antispam_kill_action, "deliver") != 0) {
        char *score = s_points(r.score_hundredths);
        char *k =
            s_points(pm_spamd_percent_hundredths(p->antispam_kill_percent));
        out->action = PM_MV_DISCARD;
        out->reason = PM_MR_SPAM;
        out->log = pm_asprintf("discarded: spam score %s >= kill %s", score, k);
        free(score);
        free(k);
        final = true;
    } else if (pm_spamd_over_hundredths(r.score_hundredths,
                                        p->antispam_tag_percent)) {
        s_tag(pol, msg, &r, out);
        out->reason = PM_MR_SPAM;
    }
    pm_spamd_result_clear(&r);
    return final;
}

/* Appends "NAME: VALUE\r\n" to B, VALUE's line breaks as CRLF. */
static void
s_put_header(GString *b, const char *name, const char *value)
{
    g_string_append_printf(b, "%s: ", name);
    for (const char *v = value; *v; v++) {
        if (*v == '\n' && (v == value || v[-1] != '\r'))
            g_string_append_c(b, '\r');
        g_string_append_c(b, *v);
    }
    g_string_append(b, "\r\n");
}

/* MSG as it will be delivered once OUT's header changes are applied the
 * way libmilter makes the MTA apply them: the first Subject changed in
 * place (smfi_chgheader), added headers appended after the last header
 * (smfi_addheader), a new Subject after them. Signing anything else
 * signs a message nobody receives. Caller frees with g_string_free. */
static GString *
s_delivered(const pm_mmsg_t *msg, const pm_mverdict_t *out)
{
    size_t len;
    const char *data = pm_mmsg_data(msg, &len), *end = data + len;
    GString *b = g_string_sized_new(len + 1024);
    bool subject_done = !out->subject || out->subject_is_new;
    const char *p = data;
    while (p < end && !(end - p >= 2 && p[0] == '\r' && p[1] == '\n')) {
        const char *f = p; /* one field: its line and continuation lines */
        do {
            const char *nl = memchr(p, '\n', (size_t)(end - p));
            p = nl ? nl + 1 : end;
        } while (p < end && (*p == ' ' || *p == '\t'));
        if (!subject_done && g_ascii_strncasecmp(f, "Subject:", 8) == 0) {
            s_put_header(b, "Subject", out->subject);
            subject_done = true;
        } else
            g_string_append_len(b, f, p - f);
    }
    for (size_t i = 0; i < out->n_add; i++)
        s_put_header(b, out->add[i].name, out->add[i].value);
    if (out->subject && out->subject_is_new)
        s_put_header(b, "Subject", out->subject);
    g_string_append_len(b, p, end - p);
    return b;
}

/* Outbound mail of a DKIM domain with a usable key: sign it, last, as it
 * will be delivered. */
static bool
s_sign(const pm_mpolicy_t *pol, const pm_mmsg_t *msg, const pm_mengines_t *eng,
       pm_mverdict_t *out)
{
    char *domain = pm_mmsg_from_domain(msg);
    size_t n;
    const pm_mdkim_t *d = pm_mpolicy_dkim(pol, &n), *use = NULL;
    for (size_t i = 0; domain && i < n && !use; i++)
        if (strcmp(d[i].domain, domain) == 0 && d[i].key_pem)
            use = &d[i];
    free(domain);
    if (!use)
        return false;
    if (!eng->dkim_sign)
        return s_tempfail(out, "DKIM signing", "no signer"), true;
    GString *final = s_delivered(msg, out);
    char *hdr = NULL, *why = NULL;
    int rc = eng->dkim_sign(eng->ctx, final->str, final->len, use->domain,
                            use->selector, use->key_pem, &hdr, &why);
    g_string_free(final, TRUE);
    if (rc != PM_OK) {
        s_tempfail(out, "DKIM signing", why);
        free(why);
        return true;
    }
    /* "DKIM-Signature: v=1;...\r\n\t..." -> value with LF folding */
    const char *v = strchr(hdr, ':');
    v = v ? v + 1 : hdr;
    while (*v == ' ')
        v++;
    char *value = pm_malloc(strlen(v) + 1), *w = value;
    for (; *v; v++)
        if (*v != '\r')
            *w++ = *v;
    *w = '\0';
    out->dkim_value = value;
    free(hdr);
    return false;
}

bool
pm_milter_is_outbound(const pm_mpolicy_t *pol, const pm_mmsg_t *msg)
{
    const char *auth = pm_mmsg_auth(msg);
    return (auth && *auth) ||
           pm_mpolicy_in_mynetworks(pol, pm_mmsg_client(msg));
}

pm_mv_action_t
pm_milter_decide(const pm_mpolicy_t *pol, const pm_mmsg_t *msg,
                 const pm_mengines_t *eng, pm_mverdict_t *out)
{
    memset(out, 0, sizeof *out);
    if (!pol)
        return s_tempfail(out, "policy", "no policy loaded yet");
    if (pm_mmsg_too_big(msg))
        return s_tempfail(out, "size", "message larger than max_message_bytes");
    if (s_check_attach(pol, msg, out) || s_check_av(pol, msg, eng, out))
        return out->action;
    bool outbound = pm_milter_is_outbound(pol, msg);
    if (!outbound && s_check_dkim(pol, msg, eng, out))
        return out->action;
    if (s_check_spam(pol, msg, outbound, eng, out))
        return out->action;
    if (outbound && s_sign(pol, msg, eng, out))
        return out->action;
    /* this node's probe (pm_handoff.h): the answer is the proof, and no
     * copy is kept */
    if (pm_mmsg_probe_ok(msg)) {
        pm_mverdict_clear(out);
        out->action = PM_MV_REJECT;
        snprintf(out->rcode, sizeof out->rcode, "550");
        snprintf(out->xcode, sizeof out->xcode, "5.7.0");
        out->text = pm_strdup(PM_PROBE_PASSED);
        out->log = pm_strdup("probe: every check passed");
        out->reason = PM_MR_PROBE;
        return PM_MV_REJECT;
    }
    if (!out->log)
        out->log =
            pm_strdup(out->dkim_value ? "accepted, DKIM signed" : "accepted");
    else if (out->dkim_value) {
        char *l = pm_asprintf("%s, DKIM signed", out->log);
        free(out->log);
        out->log = l;
    }
    out->action = PM_MV_ACCEPT;
    return PM_MV_ACCEPT;
}

void
pm_milter_count(const pm_mverdict_t *v, pm_mcounter_t out[2], size_t *n)
{
    *n = 0;
    if (v->reason == PM_MR_PROBE)
        return;
    switch (v->action) {
    case PM_MV_ACCEPT:
        out[(*n)++] = PM_MC_ACCEPTED;
        if (v->reason == PM_MR_SPAM)
            out[(*n)++] = PM_MC_SPAM_TAGGED;
        break;
    case PM_MV_DISCARD:
        out[(*n)++] = PM_MC_SPAM_DISCARDED;
        break;
    case PM_MV_TEMPFAIL:
        out[(*n)++] = PM_MC_TEMPFAILED;
        break;
    case PM_MV_REJECT:
        out[(*n)++] = v->reason == PM_MR_ATTACHMENT ? PM_MC_REJECTED_ATTACHMENT
                      : v->reason == PM_MR_VIRUS    ? PM_MC_REJECTED_VIRUS
                      : v->reason == PM_MR_DKIM     ? PM_MC_REJECTED_DKIM
                                                    : PM_MC_REJECTED_OTHER;
        break;
    }
}

void
pm_mverdict_clear(pm_mverdict_t *v)
{
    if (!v)
        return;
    free(v->text);
    for (size_t i = 0; i < v->n_add; i++) {
        free(v->add[i].name);
        free(v->add[i].value);
    }
    free(v->add);
    free(v->subject);
    free(v->dkim_value);
    free(v->notice_item);
    free(v->admin_address);
    free(v->log);
    memset(v, 0, sizeof *v);
}
