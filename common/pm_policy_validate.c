/* pm_policy_validate.c - is every value of a policy acceptable?
 *
 * Runs on every policy, however it arrived (file, `policy set`, network), so
 * a bad policy is stopped the same way everywhere. Every problem is reported,
 * not just the first.
 */
#include "pm_check.h"
#include "pm_hash.h"
#include "pm_mem.h"
#include "pm_policy_private.h"
#include "pm_sigcheck.h"

#include <ctype.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static unsigned
s_line(const pm_origin_t *o, const pm_key_t *key, size_t item)
{
    if (!o)
        return 0;
    const pm_keyline_t *kl = &o->keys[pm_policy_key_index(key)];
    if (item != (size_t)-1 && item < kl->n_items && kl->item_lines[item])
        return kl->item_lines[item];
    return kl->line;
}

/* Value text fit to quote in a message: control characters escaped (a CR
 * or LF must not break the "FILE:LINE: KEY: problem" line), long values
 * cut. Caller frees. */
static char *
s_quote(const char *value)
{
    char *out = pm_malloc(4 * 64 + 4), *o = out;
    size_t i = 0;
    for (; value[i] && i < 64; i++) {
        unsigned char c = (unsigned char)value[i];
        if (c == '\r' || c == '\n')
            o += sprintf(o, "\\%c", c == '\r' ? 'r' : 'n');
        else if (c < 0x20 || c == 0x7f)
            o += sprintf(o, "\\x%02x", c);
        else
            *o++ = (char)c;
    }
    strcpy(o, value[i] ? "..." : "");
    return out;
}

/* Runs KEY's item check; reports with the item's own line. */
static size_t
s_check(const pm_key_t *key, const char *value, const pm_origin_t *o,
        size_t item, pm_diag_t *diag)
{
    char *problem = key->check(value);
    if (!problem)
        return 0;
    char *quoted = s_quote(value);
    pm_diag_add(diag, s_line(o, key, item), key->name, "'%s': %s", quoted,
                problem);
    free(quoted);
    free(problem);
    return 1;
}

/* Too many items is reported alone: checking each of them would bury the
 * one problem that matters under thousands of lines. */
static bool
s_too_many(const pm_key_t *key, size_t n, const char *what,
           const pm_origin_t *o, pm_diag_t *diag)
{
    if (!key->max || n <= key->max)
        return false;
    pm_diag_add(diag, s_line(o, key, (size_t)-1), key->name,
                "%zu %s; at most %u are allowed", n, what, key->max);
    return true;
}

/* Whether NAME was seen before in SEEN (and remembers it). */
static bool
s_seen(pm_value_index_t *seen, const char *name)
{
    if (pm_value_index_get(seen, name))
        return true;
    pm_value_index_put(seen, name, seen);
    return false;
}

static size_t
s_list(const Pm__Policy *p, const pm_key_t *key, const pm_origin_t *o,
       pm_diag_t *diag)
{
    size_t n = *PM_COUNT(p, key), problems = 0;
    char **items = *PM_FIELD(p, key, char **);
    if (s_too_many(key, n, "items", o, diag))
        return 1;
    pm_value_index_t *seen = pm_value_index_new(key->flags & PM_KF_FOLD);
    for (size_t i = 0; i < n; i++) {
        problems += s_check(key, items[i], o, i, diag);
        if (s_seen(seen, items[i])) {
            pm_diag_add(diag, s_line(o, key, i), key->name,
                        "'%s' is listed twice", items[i]);
            problems++;
        }
    }
    pm_value_index_destroy(&seen);
    return problems;
}

static size_t
s_enum(const Pm__Policy *p, const pm_key_t *key, const pm_origin_t *o,
       pm_diag_t *diag)
{
    const char *v = *PM_FIELD(p, key, char *);
    for (const char *const *c = key->choices; *c; c++)
        if (strcmp(*c, v) == 0)
            return 0;
    char choices[256] = "";
    for (const char *const *c = key->choices; *c; c++)
        snprintf(choices + strlen(choices), sizeof choices - strlen(choices),
                 "%s%s", c == key->choices ? "" : ", ", *c);
    pm_diag_add(diag, s_line(o, key, (size_t)-1), key->name,
                "'%s' is not one of: %s", v, choices);
    return 1;
}

static size_t
s_scalar(const Pm__Policy *p, const pm_key_t *key, const pm_origin_t *o,
         pm_diag_t *diag)
{
    unsigned line = s_line(o, key, (size_t)-1);
    switch (key->type) {
    case PM_KT_PERCENT:
        if (*PM_FIELD(p, key, uint32_t) <= 100)
            return 0;
        pm_diag_add(diag, line, key->name, "%u is above 100",
                    *PM_FIELD(p, key, uint32_t));
        return 1;
    case PM_KT_DURATION: {
        uint32_t s = *PM_FIELD(p, key, uint32_t);
        if (s >= PM_DURATION_MIN && s <= PM_DURATION_MAX)
            return 0;
        pm_diag_add(diag, line, key->name,
                    "%u seconds is outside 1s to 8w (4838400 s)", s);
        return 1;
    }
    case PM_KT_ENUM:
        return s_enum(p, key, o, diag);
    case PM_KT_STRING: {
        const char *v = *PM_FIELD(p, key, char *);
        return *v ? s_check(key, v, o, (size_t)-1, diag) : 0;
    }
    default:
        return 0;
    }
}

static size_t
s_signatures(const Pm__Policy *p, const pm_key_t *key, const pm_origin_t *o,
             pm_diag_t *diag)
{
    size_t problems = 0;
    unsigned line = s_line(o, key, (size_t)-1);
    if (s_too_many(key, p->n_antivirus_custom_signatures, "files", o, diag))
        return 1;
    size_t total = 0;
    for (size_t i = 0; i < p->n_antivirus_custom_signatures; i++)
        total += p->antivirus_custom_signatures[i]->content.len;
    if (total > PM_POLICY_SIGNATURES_MAX) {
        /* refused before any is compiled */
        pm_diag_add(diag, line, key->name,
                    "%zu bytes of signatures; all files together may have "
                    "at most %u",
                    total, PM_POLICY_SIGNATURES_MAX);
        return 1;
    }
    pm_value_index_t *seen = pm_value_index_new(false);
    for (size_t i = 0; i < p->n_antivirus_custom_signatures; i++) {
        const Pm__CustomSignature *s = p->antivirus_custom_signatures[i];
        if (s_check(key, s->name, o, i, diag)) {
            problems++;
            continue;
        }
        if (s_seen(seen, s->name)) {
            pm_diag_add(diag, line, key->name, "'%s' is listed twice", s->name);
            problems++;
        }
        char digest[65];
        pm_sha256_hex(s->content.len ? (const void *)s->content.data : "",
                      s->content.len, digest);
        if (strcasecmp(digest, s->sha256) != 0) {
            pm_diag_add(diag, line, key->name,
                        "'%s': sha256 %s does not match its content (%s)",
                        s->name, s->sha256, digest);
            problems++;
            continue;
        }
        json_t *text =
            json_stringn((const char *)s->content.data, s->content.len);
        if (!text) {
            pm_diag_add(diag, line, key->name,
                        "'%s': not UTF-8 text; signature files are text",
                        s->name);
            problems++;
            continue;
        }
        json_decref(text);
        char *why = pm_sigcheck(s->name, s->content.data, s->content.len, NULL);
        if (why) {
            pm_diag_add(diag, line, key->name, "'%s': %s", s->name, why);
            free(why);
            problems++;
        }
    }
    pm_value_index_destroy(&seen);
    return problems;
}

static size_t
s_dkim(const Pm__Policy *p, const pm_key_t *key, const pm_origin_t *o,
       pm_diag_t *diag)
{
    size_t problems = 0;
    unsigned line = s_line(o, key, (size_t)-1);
    if (s_too_many(key, p->n_dkim_domains, "domains", o, diag))
        return 1;
    pm_value_index_t *seen = pm_value_index_new(true);
    for (size_t i = 0; i < p->n_dkim_domains; i++) {
        const Pm__DkimDomain *d = p->dkim_domains[i];
        problems += s_check(key, d->domain, o, i, diag);
        char *why = pm_check_selector(d->selector);
        if (why) {
            pm_diag_add(diag, line, key->name, "%s: selector '%s': %s",
                        d->domain, d->selector, why);
            free(why);
            problems++;
        }
        if (!*d->key) {
            pm_diag_add(diag, line, key->name, "%s: 'key' is empty", d->domain);
            problems++;
        }
        if (s_seen(seen, d->domain)) {
            pm_diag_add(diag, line, key->name,
                        "'%s' is listed twice; one selector per domain",
                        d->domain);
            problems++;
        }
    }
    pm_value_index_destroy(&seen);
    return problems;
}

static size_t
s_key(const Pm__Policy *p, const pm_key_t *key, const pm_origin_t *o,
      pm_diag_t *diag)
{
    switch (key->type) {
    case PM_KT_LIST:
        return s_list(p, key, o, diag);
    case PM_KT_SIGNATURES:
        return s_signatures(p, key, o, diag);
    case PM_KT_DKIM:
        return s_dkim(p, key, o, diag);
    default:
        return s_scalar(p, key, o, diag);
    }
}

/* Spam thresholds: a named level fixes both percents; tag below kill. */
static size_t
s_levels(const Pm__Policy *p, const pm_origin_t *o, pm_diag_t *diag)
{
    const pm_key_t *lk = pm_policy_key("antispam.level");
    const pm_key_t *kk = pm_policy_key("antispam.kill_percent");
    unsigned tag, kill;
    if (pm_policy_level_percents(p->antispam_level, &tag, &kill) &&
        (tag != p->antispam_tag_percent || kill != p->antispam_kill_percent)) {
        pm_diag_add(diag, s_line(o, lk, (size_t)-1), lk->name,
                    "level %s means tag %u / kill %u, but the percents are "
                    "%u / %u; set antispam.level to custom",
                    p->antispam_level, tag, kill, p->antispam_tag_percent,
                    p->antispam_kill_percent);
        return 1;
    }
    if (p->antispam_tag_percent >= p->antispam_kill_percent) {
        /* name the line of whichever of the three keys was written */
        unsigned line = s_line(o, kk, (size_t)-1);
        if (!line)
            line = s_line(o, pm_policy_key("antispam.tag_percent"), (size_t)-1);
        if (!line)
            line = s_line(o, lk, (size_t)-1);
        pm_diag_add(diag, line, kk->name,
                    "%u must be above antispam.tag_percent (%u): mail is "
                    "tagged before it is killed",
                    p->antispam_kill_percent, p->antispam_tag_percent);
        return 1;
    }
    return 0;
}

static void
s_node_keys(char *buf, size_t size)
{
    size_t n;
    const pm_key_t *keys = pm_policy_keys(&n);
    buf[0] = '\0';
    for (size_t i = 0; i < n; i++)
        if (keys[i].flags & PM_KF_NODE)
            snprintf(buf + strlen(buf), size - strlen(buf), "%s%s",
                     buf[0] ? ", " : "", keys[i].name);
}

/* The key of an override is checked like any key, on SCRATCH (a copy of
 * the policy; each override replaces the whole value of its key, so one
 * copy serves every override); problems name the node. */
static size_t
s_override_value(Pm__Policy *scratch, const Pm__NodeOverride *ov,
                 const pm_key_t *key, unsigned line, pm_diag_t *diag)
{
    pm_diag_t *sub = pm_diag_new(pm_diag_origin(diag));
    pm_value_t *v = pm_value_parse(ov->value, strlen(ov->value), 1, sub);
    if (v)
        pm_policy_apply(scratch, key, PM__EDIT__OP__ASSIGN, v, NULL, NULL, NULL,
                        sub);
    if (pm_diag_count(sub) == 0)
        s_key(scratch, key, NULL, sub);
    size_t problems = pm_diag_count(sub);
    for (size_t i = 0; i < problems; i++)
        pm_diag_add(diag, line, key->name, "node %s: %s", ov->node,
                    pm_diag_problem(sub, i));
    pm_value_destroy(&v);
    pm_diag_destroy(&sub);
    return problems;
}

/* The node name and the key of one override; problems for either. */
static size_t
s_override_names(const Pm__NodeOverride *ov, unsigned line,
                 const pm_key_t **key_p, pm_diag_t *diag)
{
    const pm_key_t *key = pm_policy_key(ov->key);
    char *why = pm_check_selector(ov->node);
    size_t problems = 0;
    if (why) {
        pm_diag_add(diag, line, "nodes", "node name '%s': %s", ov->node, why);
        free(why);
        problems++;
    }
    *key_p = NULL;
    if (!key) {
        const char *near = pm_policy_suggest(ov->key);
        pm_diag_add(diag, line, ov->key, "node %s: unknown key%s%s%s", ov->node,
                    near ? "; did you mean " : "", near ? near : "",
                    near ? "?" : "");
        return problems + 1;
    }
    if (!(key->flags & PM_KF_NODE)) {
        char allowed[1024];
        s_node_keys(allowed, sizeof allowed);
        pm_diag_add(diag, line, key->name,
                    "node %s: this key is cluster-wide and cannot be set "
                    "per node; per-node keys are: %s",
                    ov->node, allowed);
        return problems + 1;
    }
    *key_p = key;
    return problems;
}

static size_t
s_overrides(const Pm__Policy *p, const pm_origin_t *o, pm_diag_t *diag)
{
    if (p->n_overrides > PM_VALUE_ITEMS_MAX) {
        pm_diag_add(diag, o && o->n_overrides ? o->override_lines[0] : 0,
                    "nodes", "%zu overrides; at most %d are allowed",
                    p->n_overrides, PM_VALUE_ITEMS_MAX);
        return 1;
    }
    size_t problems = 0;
    Pm__Policy *scratch = NULL;
    pm_value_index_t *seen = pm_value_index_new(false);
    for (size_t i = 0; i < p->n_overrides; i++) {
        const Pm__NodeOverride *ov = p->overrides[i];
        unsigned line = o && i < o->n_overrides ? o->override_lines[i] : 0;
        const pm_key_t *key = NULL;
        problems += s_override_names(ov, line, &key, diag);
        if (!key)
            continue;
        char *id = pm_asprintf("%s\n%s", ov->node, ov->key);
        if (s_seen(seen, id)) {
            pm_diag_add(diag, line, key->name, "node %s: set twice", ov->node);
            problems++;
        }
        free(id);
        if (!scratch)
            scratch = pm_policy_dup(p);
        problems += s_override_value(scratch, ov, key, line, diag);
    }
    pm_value_index_destroy(&seen);
    pm_policy_free(&scratch);
    return problems;
}

size_t
pm_policy_validate_at(const Pm__Policy *policy, const pm_origin_t *origin,
                      pm_diag_t *diag)
{
    size_t n, problems = 0;
    const pm_key_t *keys = pm_policy_keys(&n);
    for (size_t i = 0; i < n; i++)
        problems += s_key(policy, &keys[i], origin, diag);
    problems += s_levels(policy, origin, diag);
    problems += s_overrides(policy, origin, diag);
    return problems;
}

size_t
pm_policy_validate(const Pm__Policy *policy, pm_diag_t *diag)
{
    return pm_policy_validate_at(policy, NULL, diag);
}
