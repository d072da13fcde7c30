/* pm_policy_json.c - JSON rendering (jansson) and the canonical digest. */
#include "pm_check.h"
#include "pm_hash.h"
#include "pm_mem.h"
#include "pm_policy_private.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

json_t *
pm_policy_json_strings(char *const *items, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(a, json_string(items[i]));
    return a;
}

static json_t *
s_signatures(const Pm__Policy *p)
{
    json_t *a = json_array();
    for (size_t i = 0; i < p->n_antivirus_custom_signatures; i++) {
        const Pm__CustomSignature *s = p->antivirus_custom_signatures[i];
        /* Signature files are text; a body that is not UTF-8 renders as
         * null and is refused by validation before it is ever stored. */
        json_t *body =
            json_stringn((const char *)s->content.data, s->content.len);
        json_array_append_new(a, json_pack("{s:s, s:s, s:o}", "name", s->name,
                                           "sha256", s->sha256, "content",
                                           body ? body : json_null()));
    }
    return a;
}

static json_t *
s_dkim(const Pm__Policy *p)
{
    json_t *a = json_array();
    for (size_t i = 0; i < p->n_dkim_domains; i++) {
        const Pm__DkimDomain *d = p->dkim_domains[i];
        json_array_append_new(a, json_pack("{s:s, s:s, s:s}", "domain",
                                           d->domain, "selector", d->selector,
                                           "key", d->key));
    }
    return a;
}

static json_t *
s_key_json(const Pm__Policy *p, const pm_key_t *key)
{
    char buf[32];
    switch (key->type) {
    case PM_KT_BOOL:
        return json_boolean(*PM_FIELD(p, key, protobuf_c_boolean));
    case PM_KT_PERCENT:
        return json_integer(*PM_FIELD(p, key, uint32_t));
    case PM_KT_DURATION:
        return json_string(
            pm_duration_format(*PM_FIELD(p, key, uint32_t), buf, sizeof buf));
    case PM_KT_ENUM:
    case PM_KT_STRING: {
        json_t *s = json_string(*PM_FIELD(p, key, char *));
        return s ? s : json_null();
    }
    case PM_KT_LIST:
        return pm_policy_json_strings(*PM_FIELD(p, key, char **),
                                      *PM_COUNT(p, key));
    case PM_KT_SIGNATURES:
        return s_signatures(p);
    case PM_KT_DKIM:
        return s_dkim(p);
    }
    return json_null();
}

char *
pm_policy_key_text(const Pm__Policy *policy, const pm_key_t *key)
{
    json_t *v = s_key_json(policy, key);
    char *text = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    json_decref(v);
    if (!text)
        abort(); /* jansson fails here only without memory */
    return text;
}

/* Puts VALUE at a dotted NAME, creating the nested objects on the way. */
static void
s_nest(json_t *root, const char *name, json_t *value)
{
    char *copy = pm_strdup(name), *seg = copy, *dot;
    json_t *obj = root;
    while ((dot = strchr(seg, '.'))) {
        *dot = '\0';
        json_t *next = json_object_get(obj, seg);
        if (!next) {
            next = json_object();
            json_object_set_new(obj, seg, next);
        }
        obj = next;
        seg = dot + 1;
    }
    json_object_set_new(obj, seg, value);
    free(copy);
}

static json_t *
s_policy_json(const Pm__Policy *p)
{
    size_t n;
    const pm_key_t *keys = pm_policy_keys(&n);
    json_t *root = json_object();
    for (size_t i = 0; i < n; i++)
        s_nest(root, keys[i].name, s_key_json(p, &keys[i]));
    if (p->n_overrides) {
        json_t *nodes = json_object();
        for (size_t i = 0; i < p->n_overrides; i++) {
            const Pm__NodeOverride *ov = p->overrides[i];
            json_t *node = json_object_get(nodes, ov->node);
            if (!node) {
                node = json_object();
                json_object_set_new(nodes, ov->node, node);
            }
            json_t *v = json_loads(ov->value, JSON_DECODE_ANY, NULL);
            json_object_set_new(node, ov->key, v ? v : json_string(ov->value));
        }
        json_object_set_new(root, "nodes", nodes);
    }
    return root;
}

char *
pm_policy_to_json(const Pm__Policy *policy, bool pretty)
{
    json_t *root = s_policy_json(policy);
    char *text = json_dumps(root, pretty ? JSON_INDENT(2) : JSON_COMPACT);
    json_decref(root);
    if (!text)
        abort();
    return text;
}

/* The canonical form is compact JSON with sorted keys: independent of the
 * order keys were written in, of YAML or JSON input, and of protobuf's
 * encoding, so equal policies always have equal digests. */
void
pm_policy_digest(const Pm__Policy *policy, char out[65])
{
    json_t *root = s_policy_json(policy);
    char *text = json_dumps(root, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(root);
    if (!text)
        abort();
    pm_sha256_hex(text, strlen(text), out);
    free(text);
}
