#include "pm_value.h"
#include "pm_mem.h"

#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include <stdbool.h>
#include <stdio.h>

static pm_value_t *s_parse_yaml(const char *text, size_t len,
                                unsigned first_line, pm_diag_t *diag);

static pm_value_t *
s_new(pm_vkind_t kind, unsigned line)
{
    pm_value_t *v = pm_calloc(1, sizeof *v);
    v->kind = kind;
    v->line = line;
    return v;
}

static void
s_append(pm_value_t *v, char *key, unsigned key_line, pm_value_t *item)
{
    v->items = pm_realloc(v->items, (v->n + 1) * sizeof *v->items);
    v->items[v->n] = item;
    if (v->kind == PM_V_MAP) {
        v->keys = pm_realloc(v->keys, (v->n + 1) * sizeof *v->keys);
        v->key_lines =
            pm_realloc(v->key_lines, (v->n + 1) * sizeof *v->key_lines);
        v->keys[v->n] = key;
        v->key_lines[v->n] = key_line;
    }
    v->n++;
}

#define S_MAX_NODES 200000

/* Builds the tree from libyaml's document graph. Depth and node count are
 * bounded so that neither "[[[[..." nor an alias bomb (aliases expand into
 * shared nodes, exponentially) can exhaust the stack or memory. */
static pm_value_t *
s_convert(yaml_document_t *doc, yaml_node_t *node, unsigned base, int depth,
          size_t *budget, pm_diag_t *diag)
{
    unsigned line = (unsigned)node->start_mark.line + base;
    if (depth > 16) {
        pm_diag_add(diag, line, NULL, "nesting deeper than 16 levels");
        return NULL;
    }
    if ((*budget)-- == 0) {
        pm_diag_add(diag, line, NULL, "document has too many values");
        return NULL;
    }
    if (node->type == YAML_SCALAR_NODE) {
        pm_value_t *v = s_new(PM_V_SCALAR, line);
        v->text = pm_strndup((const char *)node->data.scalar.value,
                             node->data.scalar.length);
        v->quoted =
            node->data.scalar.style == YAML_SINGLE_QUOTED_SCALAR_STYLE ||
            node->data.scalar.style == YAML_DOUBLE_QUOTED_SCALAR_STYLE;
        return v;
    }
    if (node->type == YAML_SEQUENCE_NODE) {
        pm_value_t *v = s_new(PM_V_SEQ, line);
        for (yaml_node_item_t *it = node->data.sequence.items.start;
             it < node->data.sequence.items.top; it++) {
            pm_value_t *item = s_convert(doc, yaml_document_get_node(doc, *it),
                                         base, depth + 1, budget, diag);
            if (!item) {
                pm_value_destroy(&v);
                return NULL;
            }
            s_append(v, NULL, 0, item);
        }
        return v;
    }
    pm_value_t *v = s_new(PM_V_MAP, line);
    for (yaml_node_pair_t *p = node->data.mapping.pairs.start;
         p < node->data.mapping.pairs.top; p++) {
        yaml_node_t *k = yaml_document_get_node(doc, p->key);
        unsigned kline = (unsigned)k->start_mark.line + base;
        if (k->type != YAML_SCALAR_NODE) {
            pm_diag_add(diag, kline, NULL, "mapping keys must be plain names");
            pm_value_destroy(&v);
            return NULL;
        }
        pm_value_t *item = s_convert(doc, yaml_document_get_node(doc, p->value),
                                     base, depth + 1, budget, diag);
        if (!item) {
            pm_value_destroy(&v);
            return NULL;
        }
        s_append(v,
                 pm_strndup((const char *)k->data.scalar.value,
                            k->data.scalar.length),
                 kline, item);
    }
    return v;
}

static int
s_hex4(const char *p, size_t left)
{
    if (left < 4)
        return -1;
    int v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        int d = c >= '0' && c <= '9'   ? c - '0'
                : c >= 'a' && c <= 'f' ? c - 'a' + 10
                : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                       : -1;
        if (d < 0)
            return -1;
        v = v * 16 + d;
    }
    return v;
}

/* JSON writes characters beyond U+FFFF as surrogate pairs ("\ud83d\udca9",
 * Python's json.dumps does by default), which libyaml refuses. Inside
 * double-quoted strings such a pair becomes YAML's "\U0001f4a9": same
 * character, same line. Returns NULL when there is nothing to rewrite. */
static char *
s_join_surrogates(const char *text, size_t len, size_t *out_len)
{
    if (!memmem(text, len, "\\u", 2))
        return NULL;
    char *out = pm_malloc(len + 1), *o = out;
    bool in_string = false;
    for (size_t i = 0; i < len; i++) {
        char c = text[i];
        if (!in_string) {
            in_string = c == '"';
            *o++ = c;
            continue;
        }
        if (c == '"') {
            in_string = false;
        } else if (c == '\\' && i + 1 < len && text[i + 1] == 'u') {
            int hi = s_hex4(text + i + 2, len - i - 2);
            int lo = i + 11 < len && text[i + 6] == '\\' && text[i + 7] == 'u'
                         ? s_hex4(text + i + 8, len - i - 8)
                         : -1;
            if (hi >= 0xd800 && hi < 0xdc00 && lo >= 0xdc00 && lo < 0xe000) {
                unsigned cp = 0x10000u + (((unsigned)hi - 0xd800u) << 10) +
                              ((unsigned)lo - 0xdc00u);
                o += sprintf(o, "\\U%08x", cp);
                i += 11;
                continue;
            }
            *o++ = text[i++]; /* keep the escape pair together */
            c = text[i];
        } else if (c == '\\' && i + 1 < len) {
            *o++ = text[i++];
            c = text[i];
        }
        *o++ = c;
    }
    *out_len = (size_t)(o - out);
    return out;
}

/* Reports libyaml's error with the line of the text it concerns: at the
 * end of unterminated input libyaml points one line past the last, which
 * would name a line the file does not have. */
static void
s_syntax_error(const yaml_parser_t *parser, const char *text, size_t len,
               unsigned base, pm_diag_t *diag)
{
    size_t at = parser->problem_mark.index;
    unsigned line = (unsigned)parser->problem_mark.line, last = 0;
    for (size_t i = 0; i + 1 < len; i++)
        last += text[i] == '\n';
    if (line > last)
        line = last;
    /* '@' and '`' are reserved in YAML: "@common" needs quotes. */
    bool reserved = at < len && (text[at] == '@' || text[at] == '`');
    pm_diag_add(diag, base ? line + base : 0, NULL, "YAML syntax: %s%s%s%s",
                parser->problem ? parser->problem : "unreadable",
                parser->context ? " " : "",
                parser->context ? parser->context : "",
                reserved ? " (values starting with '@' or '`' must be "
                           "quoted, e.g. \"@common\")"
                         : "");
}

pm_value_t *
pm_value_parse(const char *text, size_t len, unsigned first_line,
               pm_diag_t *diag)
{
    size_t joined_len = 0;
    char *joined = s_join_surrogates(text, len, &joined_len);
    if (joined) {
        pm_value_t *v = s_parse_yaml(joined, joined_len, first_line, diag);
        free(joined);
        return v;
    }
    return s_parse_yaml(text, len, first_line, diag);
}

static pm_value_t *
s_parse_yaml(const char *text, size_t len, unsigned first_line, pm_diag_t *diag)
{
    yaml_parser_t parser;
    yaml_document_t doc;
    pm_value_t *out = NULL;
    unsigned base = first_line;

    if (!yaml_parser_initialize(&parser))
        abort();
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    if (!yaml_parser_load(&parser, &doc)) {
        s_syntax_error(&parser, text, len, base, diag);
        yaml_parser_delete(&parser);
        return NULL;
    }
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    if (!root)
        out = s_new(PM_V_MAP, base);
    else {
        size_t budget = S_MAX_NODES;
        out = s_convert(&doc, root, base, 0, &budget, diag);
    }
    /* A second document would be silently ignored; say so instead. */
    yaml_document_t extra;
    if (out && !yaml_parser_load(&parser, &extra)) {
        s_syntax_error(&parser, text, len, base, diag);
        pm_value_destroy(&out);
    } else if (out) {
        if (yaml_document_get_root_node(&extra)) {
            pm_diag_add(diag, (unsigned)extra.start_mark.line + base, NULL,
                        "only one YAML document is allowed");
            pm_value_destroy(&out);
        }
        yaml_document_delete(&extra);
    }
    yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
    return out;
}

void
pm_value_destroy(pm_value_t **self_p)
{
    pm_value_t *v = *self_p;
    if (!v)
        return;
    for (size_t i = 0; i < v->n; i++) {
        pm_value_destroy(&v->items[i]);
        if (v->keys)
            free(v->keys[i]);
    }
    free(v->items);
    free(v->keys);
    free(v->key_lines);
    free(v->text);
    free(v);
    *self_p = NULL;
}

const pm_value_t *
pm_value_get(const pm_value_t *self, const char *key)
{
    if (!self || self->kind != PM_V_MAP)
        return NULL;
    for (size_t i = 0; i < self->n; i++)
        if (strcmp(self->keys[i], key) == 0)
            return self->items[i];
    return NULL;
}

const char *
pm_value_kind_name(const pm_value_t *self)
{
    switch (self->kind) {
    case PM_V_SCALAR:
        return "a single value";
    case PM_V_SEQ:
        return "a list";
    case PM_V_MAP:
        return "a mapping";
    }
    return "a value";
}
