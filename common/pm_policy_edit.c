/* pm_policy_edit.c - building policies from documents and edits.
 * Everything goes through pm_policy_apply, then pm_policy_validate: one
 * path for files, `policy set` and overrides. The per-node view is in
 * pm_policy_node.c.
 */
#include "pm_mem.h"
#include "pm_policy_private.h"

#include <stdlib.h>
#include <string.h>

/* "given, on no particular line" (a `policy set` argument) */
#define S_NOLINE 0xffffffffu

/* Problems reported for one document before reading stops: past this the
 * file is not a policy with mistakes but something else, and thousands of
 * lines (each unknown key with its "did you mean") help nobody. */
#define S_PROBLEMS_MAX 100

typedef struct {
    Pm__Policy *policy;
    pm_origin_t *origin;
    const char *base_dir;
    const char *node;    /* inside nodes: NODE */
    Pm__Policy *scratch; /* for reading override values */
    size_t stop_at;      /* diag count at which reading stops */
    bool stopped;        /* and it did */
} s_doc_t;

typedef size_t (*s_leaf_fn)(s_doc_t *d, const pm_key_t *key,
                            const pm_value_t *value, unsigned line,
                            pm_diag_t *diag);

static bool
s_is_group(const char *name)
{
    size_t n, len = strlen(name);
    const pm_key_t *keys = pm_policy_keys(&n);
    for (size_t i = 0; i < n; i++)
        if (strncmp(keys[i].name, name, len) == 0 && keys[i].name[len] == '.')
            return true;
    return false;
}

static size_t
s_unknown(const char *name, unsigned line, pm_diag_t *diag)
{
    const char *near = pm_policy_suggest(name);
    if (near)
        pm_diag_add(diag, line, name, "unknown key; did you mean %s?", near);
    else
        pm_diag_add(diag, line, name, "unknown key");
    return 1;
}

/* Whether reading goes on at LINE; says so once when it does not. */
static bool
s_go_on(s_doc_t *d, unsigned line, pm_diag_t *diag)
{
    if (pm_diag_count(diag) < d->stop_at)
        return true;
    if (!d->stopped)
        pm_diag_add(diag, line, NULL,
                    "stopped reading after %d problems; fix these first",
                    S_PROBLEMS_MAX);
    d->stopped = true;
    return false;
}

/* Handles item I of MAP: a key, a group of keys or a mistake. */
static size_t s_walk_item(const pm_value_t *map, size_t i, const char *prefix,
                          s_leaf_fn leaf, s_doc_t *d, pm_diag_t *diag);

/* Walks nested mappings ("outbound: {relay_host: x}") and dotted names
 * ("outbound.relay_host: x") alike, calling LEAF for every key found. */
static size_t
s_walk(const pm_value_t *map, const char *prefix, s_leaf_fn leaf, s_doc_t *d,
       pm_diag_t *diag)
{
    size_t problems = 0;
    for (size_t i = 0; i < map->n && s_go_on(d, map->key_lines[i], diag); i++)
        problems += s_walk_item(map, i, prefix, leaf, d, diag);
    return problems;
}

static size_t
s_walk_item(const pm_value_t *map, size_t i, const char *prefix, s_leaf_fn leaf,
            s_doc_t *d, pm_diag_t *diag)
{
    char *name = prefix ? pm_asprintf("%s.%s", prefix, map->keys[i])
                        : pm_strdup(map->keys[i]);
    const pm_key_t *key = pm_policy_key(name);
    const pm_value_t *v = map->items[i];
    unsigned line = map->key_lines[i];
    size_t problems = 1;
    if (key)
        problems = leaf(d, key, v, line, diag);
    else if (s_is_group(name) && v->kind == PM_V_MAP)
        problems = s_walk(v, name, leaf, d, diag);
    else if (s_is_group(name))
        pm_diag_add(diag, line, name,
                    "is a group of keys; expected a mapping, got %s",
                    pm_value_kind_name(v));
    else
        s_unknown(name, line, diag);
    free(name);
    return problems;
}

/* ---- a whole document --------------------------------------------------- */

static size_t
s_doc_leaf(s_doc_t *d, const pm_key_t *key, const pm_value_t *value,
           unsigned line, pm_diag_t *diag)
{
    pm_keyline_t *kl = &d->origin->keys[pm_policy_key_index(key)];
    if (kl->line) {
        pm_diag_add(diag, line, key->name, "given twice (first on line %u)",
                    kl->line);
        return 1;
    }
    kl->line = line;
    return pm_policy_apply(d->policy, key, PM__EDIT__OP__ASSIGN, value, NULL,
                           d->base_dir, d->origin, diag);
}

/* An override is stored as the canonical text of the value it sets, so
 * that the same override written two ways has one digest. */
static size_t
s_override_leaf(s_doc_t *d, const pm_key_t *key, const pm_value_t *value,
                unsigned line, pm_diag_t *diag)
{
    Pm__Policy *p = d->policy;
    if (p->n_overrides >= PM_VALUE_ITEMS_MAX) {
        pm_diag_add(diag, line, "nodes",
                    "more than %d overrides; no message could carry them",
                    PM_VALUE_ITEMS_MAX);
        d->stop_at = 0; /* nothing after this is worth reading */
        d->stopped = true;
        return 1;
    }
    if (!d->scratch)
        d->scratch = pm_policy_new();
    /* every key is assigned whole, so one scratch policy serves all */
    size_t problems = pm_policy_apply(d->scratch, key, PM__EDIT__OP__ASSIGN,
                                      value, NULL, d->base_dir, NULL, diag);
    if (!problems) {
        Pm__NodeOverride *ov = pm_malloc(sizeof *ov);
        pm__node_override__init(ov);
        ov->node = pm_strdup(d->node);
        ov->key = pm_strdup(key->name);
        ov->value = pm_policy_key_text(d->scratch, key);
        p->overrides =
            pm_realloc(p->overrides, (p->n_overrides + 1) * sizeof *ov);
        p->overrides[p->n_overrides] = ov;
        pm_origin_t *o = d->origin;
        o->override_lines = pm_realloc(o->override_lines,
                                       (p->n_overrides + 1) * sizeof(unsigned));
        o->override_lines[p->n_overrides] = line;
        o->n_overrides = ++p->n_overrides;
    }
    return problems;
}

static size_t
s_nodes(s_doc_t *d, const pm_value_t *nodes, pm_diag_t *diag)
{
    if (nodes->kind != PM_V_MAP) {
        pm_diag_add(diag, nodes->line, "nodes",
                    "expected a mapping of node name to keys, got %s",
                    pm_value_kind_name(nodes));
        return 1;
    }
    size_t problems = 0;
    for (size_t i = 0; i < nodes->n && s_go_on(d, nodes->key_lines[i], diag);
         i++) {
        if (nodes->items[i]->kind != PM_V_MAP) {
            pm_diag_add(diag, nodes->key_lines[i], "nodes",
                        "node %s: expected a mapping of keys", nodes->keys[i]);
            problems++;
            continue;
        }
        d->node = nodes->keys[i];
        problems += s_walk(nodes->items[i], NULL, s_override_leaf, d, diag);
    }
    d->node = NULL;
    return problems;
}

/* A named level fixes both percents; percents written by hand make the
 * level custom. Writing both, and contradicting, is a mistake to report
 * rather than guess: which one did the admin mean? */
static size_t
s_resolve_level(Pm__Policy *p, const unsigned *given, pm_diag_t *diag)
{
    const pm_key_t *lk = pm_policy_key("antispam.level");
    const pm_key_t *pk[2] = {pm_policy_key("antispam.tag_percent"),
                             pm_policy_key("antispam.kill_percent")};
    uint32_t *pv[2] = {&p->antispam_tag_percent, &p->antispam_kill_percent};
    unsigned want[2];
    bool level_given = given[pm_policy_key_index(lk)];
    size_t problems = 0;
    bool pct_given =
        given[pm_policy_key_index(pk[0])] || given[pm_policy_key_index(pk[1])];
    bool named =
        pm_policy_level_percents(p->antispam_level, &want[0], &want[1]);
    if (named && !pct_given) {
        /* the level decides (also after a reset of a percent) */
        *pv[0] = want[0];
        *pv[1] = want[1];
    } else if (level_given && named) {
        for (int i = 0; i < 2; i++) {
            unsigned line = given[pm_policy_key_index(pk[i])];
            if (line && *pv[i] != want[i]) {
                pm_diag_add(diag, line == S_NOLINE ? 0 : line, pk[i]->name,
                            "%u contradicts antispam.level %s (%u); set "
                            "antispam.level to custom to choose by hand",
                            *pv[i], p->antispam_level, want[i]);
                problems++;
            }
            *pv[i] = want[i];
        }
    } else if (pct_given) {
        pm_policy_set_string(&p->antispam_level, "custom");
    }
    return problems;
}

/* Reads DOC into a new policy without the checks between keys; ORIGIN
 * learns where each key came from. Values that could not be read are
 * reported to DIAG and keep their defaults; NULL when DOC is no mapping. */
static Pm__Policy *
s_build(const pm_value_t *doc, const char *base_dir, pm_origin_t *origin,
        pm_diag_t *diag)
{
    if (doc->kind != PM_V_MAP) {
        pm_diag_add(diag, doc->line, NULL,
                    "a policy is a mapping of keys to values, got %s",
                    pm_value_kind_name(doc));
        return NULL;
    }
    size_t n;
    pm_policy_keys(&n);
    Pm__Policy *p = pm_policy_new();
    s_doc_t d = {.policy = p,
                 .origin = origin,
                 .base_dir = base_dir,
                 .stop_at = pm_diag_count(diag) + S_PROBLEMS_MAX};
    for (size_t i = 0; i < doc->n && s_go_on(&d, doc->key_lines[i], diag);
         i++) {
        if (strcmp(doc->keys[i], "nodes") == 0)
            s_nodes(&d, doc->items[i], diag);
        else
            s_walk_item(doc, i, NULL, s_doc_leaf, &d, diag);
    }
    pm_policy_free(&d.scratch);
    unsigned *given = pm_calloc(n, sizeof *given);
    for (size_t i = 0; i < n; i++)
        given[i] = origin->keys[i].line;
    s_resolve_level(p, given, diag);
    free(given);
    return p;
}

Pm__Policy *
pm_policy_from_value(const pm_value_t *doc, const char *base_dir,
                     pm_diag_t *diag)
{
    size_t before = pm_diag_count(diag);
    pm_origin_t *origin = pm_origin_new();
    Pm__Policy *p = s_build(doc, base_dir, origin, diag);
    if (p)
        pm_policy_validate_at(p, origin, diag);
    pm_origin_destroy(&origin);
    if (pm_diag_count(diag) != before)
        pm_policy_free(&p);
    return p;
}

Pm__Policy *
pm_policy_from_value_unchecked(const pm_value_t *doc, const char *base_dir,
                               pm_diag_t *diag)
{
    size_t before = pm_diag_count(diag);
    pm_origin_t *origin = pm_origin_new();
    Pm__Policy *p = s_build(doc, base_dir, origin, diag);
    pm_origin_destroy(&origin);
    if (pm_diag_count(diag) != before)
        pm_policy_free(&p);
    return p;
}

/* ---- edits (`privmta-ctl policy set`) ----------------------------------- */

static void
s_override_put(Pm__Policy *p, const char *node, const pm_key_t *key, char *text)
{
    for (size_t i = 0; i < p->n_overrides; i++) {
        Pm__NodeOverride *ov = p->overrides[i];
        if (strcmp(ov->node, node) == 0 && strcmp(ov->key, key->name) == 0) {
            if (text) {
                pm_policy_set_string(&ov->value, text);
                free(text);
            } else {
                pm__node_override__free_unpacked(ov, NULL);
                memmove(p->overrides + i, p->overrides + i + 1,
                        (p->n_overrides - i - 1) * sizeof *p->overrides);
                p->n_overrides--;
            }
            return;
        }
    }
    if (!text)
        return;
    Pm__NodeOverride *ov = pm_malloc(sizeof *ov);
    pm__node_override__init(ov);
    ov->node = pm_strdup(node);
    ov->key = pm_strdup(key->name);
    ov->value = text;
    p->overrides =
        pm_realloc(p->overrides, (p->n_overrides + 1) * sizeof *p->overrides);
    p->overrides[p->n_overrides++] = ov;
}

/* Edits of a node's override start from what the node has now, so that
 * "mynetworks+=10.0.0.0/8 --node mx2" extends mx2's own list. */
static size_t
s_edit_override(Pm__Policy *p, const char *node, const pm_key_t *key,
                const Pm__Edit *e, const pm_value_t *v, pm_diag_t *diag)
{
    if (!(key->flags & PM_KF_NODE)) {
        pm_diag_add(diag, 0, key->name,
                    "is cluster-wide and cannot be set per node");
        return 1;
    }
    if (e->op == PM__EDIT__OP__RESET) {
        s_override_put(p, node, key, NULL);
        return 0;
    }
    Pm__Policy *eff = pm_policy_for_node(p, node);
    size_t problems =
        pm_policy_apply(eff, key, e->op, v, &e->content, NULL, NULL, diag);
    if (!problems)
        s_override_put(p, node, key, pm_policy_key_text(eff, key));
    pm_policy_free(&eff);
    return problems;
}

/* A `policy set` value, taken as typed so that "subject_prefix=[SPAM]"
 * is the text [SPAM] and "mynetworks+=[::1]/128" one network. YAML is
 * read only where it is clearly meant: records, a quoted value, or a
 * whole list assigned as "[a, b]". */
static pm_value_t *
s_edit_value(const pm_key_t *key, const Pm__Edit *e, pm_diag_t *diag)
{
    const char *text = e->value;
    size_t len = strlen(text);
    bool records = key->type == PM_KT_SIGNATURES || key->type == PM_KT_DKIM;
    bool quoted = len >= 2 && (text[0] == '"' || text[0] == '\'') &&
                  text[len - 1] == text[0];
    bool flow_list = key->type == PM_KT_LIST && e->op == PM__EDIT__OP__ASSIGN &&
                     len >= 2 && text[0] == '[' && text[len - 1] == ']';
    bool file_sent = e->content.len && e->op == PM__EDIT__OP__ADD;
    if ((records && !file_sent && e->op != PM__EDIT__OP__REMOVE) || quoted ||
        flow_list)
        return pm_value_parse(text, len, 0, diag);
    pm_value_t *v = pm_calloc(1, sizeof *v);
    v->kind = PM_V_SCALAR;
    v->text = pm_strdup(text);
    return v;
}

static size_t
s_edit_one(Pm__Policy *p, const char *node, const Pm__Edit *e, unsigned *given,
           pm_diag_t *diag)
{
    const pm_key_t *key = pm_policy_key(e->key);
    if (!key)
        return s_unknown(e->key, 0, diag);
    pm_value_t *v = NULL;
    if (e->op != PM__EDIT__OP__RESET) {
        v = s_edit_value(key, e, diag);
        if (!v)
            return 1;
    }
    size_t problems;
    if (node) {
        problems = s_edit_override(p, node, key, e, v, diag);
    } else {
        problems =
            pm_policy_apply(p, key, e->op, v, &e->content, NULL, NULL, diag);
        /* a reset is no choice of the admin's: it must not turn a named
         * spam level into "custom" */
        if (e->op != PM__EDIT__OP__RESET)
            given[pm_policy_key_index(key)] = S_NOLINE;
    }
    pm_value_destroy(&v);
    return problems;
}

size_t
pm_policy_edit(Pm__Policy **policy_p, const char *node, Pm__Edit *const *edits,
               size_t n, pm_diag_t *diag)
{
    size_t before = pm_diag_count(diag), nkeys;
    pm_policy_keys(&nkeys);
    Pm__Policy *p = pm_policy_dup(*policy_p);
    unsigned *given = pm_calloc(nkeys, sizeof *given);
    for (size_t i = 0; i < n; i++)
        s_edit_one(p, node && *node ? node : NULL, edits[i], given, diag);
    s_resolve_level(p, given, diag);
    free(given);
    if (pm_diag_count(diag) == before)
        pm_policy_validate(p, diag);
    size_t problems = pm_diag_count(diag) - before;
    if (problems) {
        pm_policy_free(&p);
        return problems;
    }
    pm_policy_free(policy_p);
    *policy_p = p;
    return 0;
}
