/* pm_policy_apply.c - turning parsed values into typed policy fields.
 *
 * Only type and shape are checked here (is it a boolean, a list?); whether a
 * value is acceptable is pm_policy_validate's job, so that a policy arriving
 * from the network gets exactly the same checks as one read from a file.
 */
#include "pm_check.h"
#include "pm_error.h"
#include "pm_file.h"
#include "pm_hash.h"
#include "pm_mem.h"
#include "pm_policy_private.h"
#include "pm_text.h"
#include "pm_wire.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* A signature file is at most what one message may carry of it. */
#define S_FILE_MAX PM_WIRE_CONTENT_MAX

static bool
s_need_scalar(const pm_key_t *key, const pm_value_t *v, pm_diag_t *diag)
{
    if (v->kind == PM_V_SCALAR)
        return true;
    pm_diag_add(diag, v->line, key->name, "expected a single value, got %s",
                pm_value_kind_name(v));
    return false;
}

/* The scalar types (s_bool to s_string): V is one value, as
 * pm_policy_apply checked. */
static size_t
s_bool(Pm__Policy *p, const pm_key_t *key, const pm_value_t *v, pm_diag_t *diag)
{
    static const char *const yes[] = {"true", "yes", "on"};
    static const char *const no[] = {"false", "no", "off"};
    for (size_t i = 0; i < 3; i++) {
        if (strcasecmp(v->text, yes[i]) == 0 ||
            strcasecmp(v->text, no[i]) == 0) {
            *PM_FIELD(p, key, protobuf_c_boolean) =
                strcasecmp(v->text, yes[i]) == 0;
            return 0;
        }
    }
    pm_diag_add(diag, v->line, key->name, "expected true or false, got '%s'",
                v->text);
    return 1;
}

static size_t
s_percent(Pm__Policy *p, const pm_key_t *key, const pm_value_t *v,
          pm_diag_t *diag)
{
    char *end = NULL;
    errno = 0;
    long n = strtol(v->text, &end, 10);
    if (end && *end == '%')
        end++;
    if (end == v->text || *end || errno || !isdigit((unsigned char)*v->text)) {
        pm_diag_add(diag, v->line, key->name,
                    "expected a whole percent 0-100, got '%s'", v->text);
        return 1;
    }
    if (n > 100) {
        pm_diag_add(diag, v->line, key->name,
                    "%ld is above 100 (a percent of the spam score 20)", n);
        return 1;
    }
    *PM_FIELD(p, key, uint32_t) = (uint32_t)n;
    return 0;
}

static size_t
s_duration(Pm__Policy *p, const pm_key_t *key, const pm_value_t *v,
           pm_diag_t *diag)
{
    uint32_t secs = 0;
    char *problem = pm_duration_parse(v->text, &secs);
    if (problem) {
        pm_diag_add(diag, v->line, key->name, "%s", problem);
        free(problem);
        return 1;
    }
    *PM_FIELD(p, key, uint32_t) = secs;
    return 0;
}

static size_t
s_string(Pm__Policy *p, const pm_key_t *key, const pm_value_t *v)
{
    pm_policy_set_string(PM_FIELD(p, key, char *), v->text);
    return 0;
}

/* ---- lists of text items ---------------------------------------------- */

/* One list being edited: its items are also kept in an index, so that
 * folding duplicates costs O(1) per item, not a pass over the list. */
typedef struct {
    Pm__Policy *p;
    const pm_key_t *key;
    Pm__Edit__Op op;
    pm_origin_t *origin;
    pm_diag_t *diag;
    pm_value_index_t *seen; /* item -> non-NULL */
    size_t cap;             /* room in the items array */
} s_list_t;

static ssize_t
s_list_find(const s_list_t *l, const char *item)
{
    size_t n = *PM_COUNT(l->p, l->key);
    char **items = *PM_FIELD(l->p, l->key, char **);
    for (size_t i = 0; i < n; i++)
        if ((l->key->flags & PM_KF_FOLD) ? strcasecmp(items[i], item) == 0
                                         : strcmp(items[i], item) == 0)
            return (ssize_t)i;
    return -1;
}

/* Appends ITEM unless already present (duplicates fold silently: listing
 * "exe" and "EXE" means one extension). */
static void
s_list_add(s_list_t *l, const char *item, unsigned line)
{
    if (pm_value_index_get(l->seen, item))
        return;
    pm_value_index_put(l->seen, item, l);
    size_t *n = PM_COUNT(l->p, l->key);
    char ***items = PM_FIELD(l->p, l->key, char **);
    if (*n >= l->cap) {
        l->cap = 2 * l->cap + 16;
        *items = pm_realloc(*items, l->cap * sizeof **items);
    }
    char *copy = pm_strdup(item);
    if (l->key->flags & PM_KF_FOLD)
        for (char *c = copy; *c; c++)
            *c = (char)tolower((unsigned char)*c);
    (*items)[*n] = copy;
    if (l->origin)
        pm_origin_item_line(l->origin, pm_policy_key_index(l->key), *n, line);
    (*n)++;
}

static void
s_list_remove(s_list_t *l, const char *item)
{
    ssize_t at = s_list_find(l, item);
    if (at < 0)
        return;
    pm_value_index_remove(l->seen, item);
    size_t *n = PM_COUNT(l->p, l->key);
    char **items = *PM_FIELD(l->p, l->key, char **);
    free(items[at]);
    memmove(items + at, items + at + 1, (*n - (size_t)at - 1) * sizeof *items);
    (*n)--;
}

static void
s_list_clear(Pm__Policy *p, const pm_key_t *key)
{
    size_t *n = PM_COUNT(p, key);
    char ***items = PM_FIELD(p, key, char **);
    for (size_t i = 0; i < *n; i++)
        free((*items)[i]);
    free(*items);
    *items = NULL;
    *n = 0;
}

/* One written item: "@common" stands for the preset of blocked_extensions. */
static size_t
s_list_item(s_list_t *l, const char *item, unsigned line)
{
    const char *name = l->key->name;
    if (item[0] == '@') {
        if (strcmp(item, "@common") != 0 ||
            strcmp(name, "inbound.blocked_extensions") != 0) {
            pm_diag_add(l->diag, line, name, "unknown preset '%s'%s", item,
                        strcmp(name, "inbound.blocked_extensions") == 0
                            ? "; the preset is @common"
                            : "; presets exist for "
                              "inbound.blocked_extensions only");
            return 1;
        }
        for (const char *const *e = pm_policy_common_extensions; *e; e++)
            s_list_item(l, *e, line);
        return 0;
    }
    if (l->op == PM__EDIT__OP__REMOVE)
        s_list_remove(l, item);
    else
        s_list_add(l, item, line);
    return 0;
}

/* Refuses a list of more than PM_VALUE_ITEMS_MAX items before any is
 * stored: a parsed list cannot be longer, but one value split on spaces
 * can, and no message could carry it. (KEY's own, smaller maximum is
 * validation's business, after duplicates are folded.) */
static bool
s_list_fits(const s_list_t *l, size_t n, unsigned line)
{
    if (n <= PM_VALUE_ITEMS_MAX)
        return true;
    pm_diag_add(l->diag, line, l->key->name,
                "%zu items; no list holds more than %d (this one at most %u)",
                n, PM_VALUE_ITEMS_MAX, l->key->max);
    return false;
}

/* A scalar given for a list is split on spaces and commas, as the console
 * does ("type an extension and press the space bar"). */
static size_t
s_list_scalar(s_list_t *l, const pm_value_t *v)
{
    static const char *const seps = " \t,";
    size_t n = 0;
    for (const char *c = v->text + strspn(v->text, seps); *c;
         c += strspn(c, seps), n++)
        c += strcspn(c, seps);
    if (!s_list_fits(l, n, v->line))
        return 1;
    size_t problems = 0;
    char *copy = pm_strdup(v->text), *save = NULL;
    for (char *tok = strtok_r(copy, seps, &save); tok;
         tok = strtok_r(NULL, seps, &save))
        problems += s_list_item(l, tok, v->line);
    free(copy);
    return problems;
}

static size_t
s_list_seq(s_list_t *l, const pm_value_t *v)
{
    if (!s_list_fits(l, v->n, v->line))
        return 1;
    size_t problems = 0;
    for (size_t i = 0; i < v->n; i++) {
        const pm_value_t *it = v->items[i];
        if (it->kind != PM_V_SCALAR) {
            pm_diag_add(l->diag, it->line, l->key->name,
                        "item %zu: expected a single value, got %s", i + 1,
                        pm_value_kind_name(it));
            problems++;
            continue;
        }
        problems += s_list_item(l, it->text, it->line);
    }
    return problems;
}

static size_t
s_list(Pm__Policy *p, const pm_key_t *key, Pm__Edit__Op op, const pm_value_t *v,
       pm_origin_t *origin, pm_diag_t *diag)
{
    if (op == PM__EDIT__OP__ASSIGN)
        s_list_clear(p, key);
    if (v->kind == PM_V_MAP) {
        pm_diag_add(diag, v->line, key->name, "expected a list, got %s",
                    pm_value_kind_name(v));
        return 1;
    }
    size_t n = *PM_COUNT(p, key);
    s_list_t l = {.p = p,
                  .key = key,
                  .op = op,
                  .origin = origin,
                  .diag = diag,
                  .seen = pm_value_index_new(key->flags & PM_KF_FOLD),
                  .cap = n};
    char **items = *PM_FIELD(p, key, char **);
    for (size_t i = 0; i < n; i++)
        pm_value_index_put(l.seen, items[i], &l);
    size_t problems =
        v->kind == PM_V_SCALAR ? s_list_scalar(&l, v) : s_list_seq(&l, v);
    pm_value_index_destroy(&l.seen);
    return problems;
}

/* ---- lists of records -------------------------------------------------- */

/* Reads a `file:` reference of a custom signature, relative to the policy
 * file's directory. */
static bool
s_read_file(const char *base_dir, const char *file, ProtobufCBinaryData *out,
            char **problem)
{
    char *path =
        file[0] == '/' ? pm_strdup(file) : pm_asprintf("%s/%s", base_dir, file);
    char *data = NULL;
    size_t len = 0;
    bool ok = pm_file_read(path, S_FILE_MAX, 0, &data, &len, problem) == PM_OK;
    if (ok) {
        out->data = (uint8_t *)data;
        out->len = len;
    }
    free(path);
    return ok;
}

static const char *
s_field_text(const pm_key_t *key, const pm_value_t *rec, const char *name,
             bool required, pm_diag_t *diag, size_t *problems)
{
    const pm_value_t *f = pm_value_get(rec, name);
    if (f && f->kind == PM_V_SCALAR)
        return f->text;
    if (f || required) {
        pm_diag_add(diag, f ? f->line : rec->line, key->name,
                    f ? "'%s' must be a single value" : "'%s' is missing",
                    name);
        (*problems)++;
    }
    return NULL;
}

static size_t
s_unknown_fields(const pm_key_t *key, const pm_value_t *rec,
                 const char *const *known, pm_diag_t *diag)
{
    size_t problems = 0;
    for (size_t i = 0; i < rec->n; i++) {
        const char *const *k = known;
        while (*k && strcmp(*k, rec->keys[i]) != 0)
            k++;
        if (!*k) {
            pm_diag_add(diag, rec->key_lines[i], key->name,
                        "unknown field '%s'", rec->keys[i]);
            problems++;
        }
    }
    return problems;
}

/* A signature record owning a copy of BODY. A written sha256 is kept as
 * written: validation compares it with the content, which is how a stale
 * attestation is caught; otherwise it is computed. */
static Pm__CustomSignature *
s_signature_new(const char *name, const uint8_t *body, size_t len,
                const char *sha)
{
    Pm__CustomSignature *sig = pm_malloc(sizeof *sig);
    pm__custom_signature__init(sig);
    sig->name = pm_strdup(name);
    sig->content.data = pm_malloc(len);
    if (len)
        memcpy(sig->content.data, body, len);
    sig->content.len = len;
    char digest[65];
    pm_sha256_hex(len ? (const void *)body : "", len, digest);
    sig->sha256 = pm_strdup(sha ? sha : digest);
    return sig;
}

static Pm__CustomSignature *
s_signature(const pm_key_t *key, const pm_value_t *rec, const char *base_dir,
            pm_diag_t *diag, size_t *problems)
{
    static const char *const known[] = {"name", "sha256", "content", "file",
                                        NULL};
    *problems += s_unknown_fields(key, rec, known, diag);
    const char *name = s_field_text(key, rec, "name", true, diag, problems);
    const char *sha = s_field_text(key, rec, "sha256", false, diag, problems);
    const char *text = s_field_text(key, rec, "content", false, diag, problems);
    const char *file = s_field_text(key, rec, "file", false, diag, problems);
    ProtobufCBinaryData body = {0, NULL};
    char *problem = NULL;
    if (text && file) {
        pm_diag_add(diag, rec->line, key->name,
                    "give either 'content' or 'file', not both");
        (*problems)++;
    } else if (text) {
        body.data = (uint8_t *)pm_strdup(text);
        body.len = strlen(text);
    } else if (file && !base_dir) {
        /* a path only means something on the machine where the policy
         * file was written: anything else (the controller above all)
         * would open a file its client chose, on its own host */
        char *shown = pm_text_escape(file, 64);
        pm_diag_add(diag, rec->line, key->name,
                    "'%s': 'file: %s' is refused here: only a policy file "
                    "read by privmta-ctl may name files; send the content "
                    "('content:', or policy set %s+=PATH, which reads PATH "
                    "where privmta-ctl runs)",
                    name ? name : "", shown, key->name);
        free(shown);
        (*problems)++;
    } else if (file && !s_read_file(base_dir, file, &body, &problem)) {
        pm_diag_add(diag, rec->line, key->name, "%s", problem);
        free(problem);
        (*problems)++;
    } else if (!file && name) {
        pm_diag_add(diag, rec->line, key->name,
                    "signature '%s' has neither 'content' nor 'file'", name);
        (*problems)++;
    }
    Pm__CustomSignature *sig = NULL;
    if (name && !*problems)
        sig = s_signature_new(name, body.data, body.len, sha);
    free(body.data);
    return sig;
}

static Pm__DkimDomain *
s_dkim(const pm_key_t *key, const pm_value_t *rec, pm_diag_t *diag,
       size_t *problems)
{
    static const char *const known[] = {"domain", "selector", "key", NULL};
    *problems += s_unknown_fields(key, rec, known, diag);
    const char *domain = s_field_text(key, rec, "domain", true, diag, problems);
    const char *sel = s_field_text(key, rec, "selector", true, diag, problems);
    const char *ref = s_field_text(key, rec, "key", true, diag, problems);
    if (*problems)
        return NULL;
    Pm__DkimDomain *d = pm_malloc(sizeof *d);
    pm__dkim_domain__init(d);
    d->domain = pm_strdup(domain);
    d->selector = pm_strdup(sel);
    d->key = pm_strdup(ref);
    return d;
}

static const char *
s_record_id(const pm_key_t *key, const ProtobufCMessage *m)
{
    return key->type == PM_KT_SIGNATURES
               ? ((const Pm__CustomSignature *)m)->name
               : ((const Pm__DkimDomain *)m)->domain;
}

static void
s_records_remove(Pm__Policy *p, const pm_key_t *key, const char *id)
{
    size_t *n = PM_COUNT(p, key);
    ProtobufCMessage **items = *PM_FIELD(p, key, ProtobufCMessage **);
    for (size_t i = 0; i < *n; i++) {
        if (strcasecmp(s_record_id(key, items[i]), id) != 0)
            continue;
        protobuf_c_message_free_unpacked(items[i], NULL);
        memmove(items + i, items + i + 1, (*n - i - 1) * sizeof *items);
        (*n)--;
        return;
    }
}

static void
s_records_append(Pm__Policy *p, const pm_key_t *key, ProtobufCMessage *m)
{
    size_t *n = PM_COUNT(p, key);
    ProtobufCMessage ***items = PM_FIELD(p, key, ProtobufCMessage **);
    *items = pm_realloc(*items, (*n + 1) * sizeof **items);
    (*items)[(*n)++] = m;
}

static size_t
s_record(Pm__Policy *p, const pm_key_t *key, Pm__Edit__Op op,
         const pm_value_t *rec, const ProtobufCBinaryData *content,
         const char *base_dir, pm_diag_t *diag)
{
    size_t problems = 0;
    ProtobufCMessage *m = NULL;
    if (rec->kind == PM_V_SCALAR && content && content->len &&
        key->type == PM_KT_SIGNATURES) {
        /* `antivirus.custom_signatures+=FILE`: the CLI sent name + body */
        m = (ProtobufCMessage *)s_signature_new(rec->text, content->data,
                                                content->len, NULL);
        goto store;
    }
    if (rec->kind != PM_V_MAP) {
        pm_diag_add(diag, rec->line, key->name,
                    "each entry must be a mapping (%s), got %s",
                    key->type == PM_KT_DKIM ? "domain, selector, key"
                                            : "name, content or file",
                    pm_value_kind_name(rec));
        return 1;
    }
    m = key->type == PM_KT_SIGNATURES
            ? (ProtobufCMessage *)s_signature(key, rec, base_dir, diag,
                                              &problems)
            : (ProtobufCMessage *)s_dkim(key, rec, diag, &problems);
store:
    if (m) {
        if (op == PM__EDIT__OP__ADD)
            s_records_remove(p, key, s_record_id(key, m));
        s_records_append(p, key, m);
    }
    return problems;
}

static size_t
s_signature_bytes(const Pm__Policy *p)
{
    size_t total = 0;
    for (size_t i = 0; i < p->n_antivirus_custom_signatures; i++)
        total += p->antivirus_custom_signatures[i]->content.len;
    return total;
}

static size_t
s_records(Pm__Policy *p, const pm_key_t *key, Pm__Edit__Op op,
          const pm_value_t *v, const ProtobufCBinaryData *content,
          const char *base_dir, pm_diag_t *diag)
{
    if (op == PM__EDIT__OP__REMOVE) {
        if (!s_need_scalar(key, v, diag))
            return 1;
        s_records_remove(p, key, v->text);
        return 0;
    }
    if (op == PM__EDIT__OP__ASSIGN) {
        size_t *n = PM_COUNT(p, key);
        ProtobufCMessage **items = *PM_FIELD(p, key, ProtobufCMessage **);
        for (size_t i = 0; i < *n; i++)
            protobuf_c_message_free_unpacked(items[i], NULL);
        free(items);
        *PM_FIELD(p, key, ProtobufCMessage **) = NULL;
        *n = 0;
    }
    if (v->kind != PM_V_SEQ)
        return s_record(p, key, op, v, content, base_dir, diag);
    if (key->max && v->n > key->max) {
        /* refused before any file is read or any body copied */
        pm_diag_add(diag, v->line, key->name,
                    "%zu entries; at most %u are allowed", v->n, key->max);
        return 1;
    }
    size_t problems = 0;
    for (size_t i = 0; i < v->n; i++) {
        problems += s_record(p, key, op, v->items[i], NULL, base_dir, diag);
        if (key->type == PM_KT_SIGNATURES &&
            s_signature_bytes(p) > PM_POLICY_SIGNATURES_MAX) {
            /* validation says how much too much; no more files are read */
            break;
        }
    }
    return problems;
}

size_t
pm_policy_apply(Pm__Policy *policy, const pm_key_t *key, Pm__Edit__Op op,
                const pm_value_t *value, const ProtobufCBinaryData *content,
                const char *base_dir, pm_origin_t *origin, pm_diag_t *diag)
{
    bool listy = key->type == PM_KT_LIST || key->type == PM_KT_SIGNATURES ||
                 key->type == PM_KT_DKIM;
    if (op == PM__EDIT__OP__RESET) {
        pm_value_t *d = pm_value_parse(key->dflt, strlen(key->dflt), 1, diag);
        size_t n = pm_policy_apply(policy, key, PM__EDIT__OP__ASSIGN, d, NULL,
                                   NULL, NULL, diag);
        pm_value_destroy(&d);
        return n;
    }
    if (!listy && op != PM__EDIT__OP__ASSIGN) {
        pm_diag_add(diag, value->line, key->name,
                    "'%s' works on lists only; use '='",
                    op == PM__EDIT__OP__ADD ? "+=" : "-=");
        return 1;
    }
    /* every type but the lists takes one value */
    if (!listy && !s_need_scalar(key, value, diag))
        return 1;
    switch (key->type) {
    case PM_KT_BOOL:
        return s_bool(policy, key, value, diag);
    case PM_KT_PERCENT:
        return s_percent(policy, key, value, diag);
    case PM_KT_DURATION:
        return s_duration(policy, key, value, diag);
    case PM_KT_ENUM:
    case PM_KT_STRING:
        return s_string(policy, key, value);
    case PM_KT_LIST:
        return s_list(policy, key, op, value, origin, diag);
    case PM_KT_SIGNATURES:
    case PM_KT_DKIM:
        return s_records(policy, key, op, value, content, base_dir, diag);
    }
    return 0;
}
