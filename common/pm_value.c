/* pm_value.c - YAML documents into pm_value_t trees, event by event.
 *
 * libyaml's loader (yaml_parser_load) builds the whole document graph
 * before anything can look at it, and its work grows with the square of the
 * flow nesting: 160 KB of "[[[[" took 14 s before a depth check that ran
 * afterwards could refuse it. Reading events (yaml_parser_parse) instead
 * lets every bound be checked on the event that crosses it, after which
 * nothing more is read.
 */
#include "pm_value.h"
#include "pm_mem.h"
#include "pm_text.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <yaml.h>

/* ---- the index ------------------------------------------------------------
 */

typedef struct s_entry_t {
    struct s_entry_t *next;
    void *data;
    uint64_t hash;
    char name[];
} s_entry_t;

struct pm_value_index_t {
    s_entry_t **buckets;
    size_t n_buckets, n;
    bool fold;
};

/* FNV-1a, folded to lower case when the index folds. */
static uint64_t
s_hash(const pm_value_index_t *self, const char *name)
{
    uint64_t h = 0xcbf29ce484222325u;
    for (const unsigned char *c = (const unsigned char *)name; *c; c++) {
        unsigned char ch = *c;
        if (self->fold && ch >= 'A' && ch <= 'Z')
            ch = (unsigned char)(ch - 'A' + 'a');
        h = (h ^ ch) * 0x100000001b3u;
    }
    return h;
}

/* The link that points at NAME's entry, or at the NULL ending its chain. */
static s_entry_t **
s_link(const pm_value_index_t *self, const char *name, uint64_t hash)
{
    s_entry_t **at = &self->buckets[hash & (self->n_buckets - 1)];
    for (; *at; at = &(*at)->next) {
        if ((*at)->hash != hash)
            continue;
        if (self->fold ? strcasecmp((*at)->name, name) == 0
                       : strcmp((*at)->name, name) == 0)
            break;
    }
    return at;
}

pm_value_index_t *
pm_value_index_new(bool fold)
{
    pm_value_index_t *self = pm_calloc(1, sizeof *self);
    self->fold = fold;
    self->n_buckets = 16;
    self->buckets = pm_calloc(self->n_buckets, sizeof *self->buckets);
    return self;
}

void
pm_value_index_destroy(pm_value_index_t **self_p)
{
    pm_value_index_t *self = *self_p;
    if (!self)
        return;
    for (size_t i = 0; i < self->n_buckets; i++) {
        for (s_entry_t *e = self->buckets[i], *next; e; e = next) {
            next = e->next;
            free(e);
        }
    }
    free(self->buckets);
    free(self);
    *self_p = NULL;
}

/* Doubles the table once there are more entries than buckets, so chains
 * stay short whatever the number of names. */
static void
s_grow(pm_value_index_t *self)
{
    size_t n = self->n_buckets * 2;
    s_entry_t **buckets = pm_calloc(n, sizeof *buckets);
    for (size_t i = 0; i < self->n_buckets; i++) {
        for (s_entry_t *e = self->buckets[i], *next; e; e = next) {
            next = e->next;
            e->next = buckets[e->hash & (n - 1)];
            buckets[e->hash & (n - 1)] = e;
        }
    }
    free(self->buckets);
    self->buckets = buckets;
    self->n_buckets = n;
}

void
pm_value_index_put(pm_value_index_t *self, const char *name, void *data)
{
    uint64_t hash = s_hash(self, name);
    s_entry_t **at = s_link(self, name, hash);
    if (*at) {
        (*at)->data = data;
        return;
    }
    size_t len = strlen(name);
    s_entry_t *e = pm_malloc(sizeof *e + len + 1);
    memcpy(e->name, name, len + 1);
    e->hash = hash;
    e->data = data;
    e->next = NULL;
    *at = e;
    if (++self->n > self->n_buckets)
        s_grow(self);
}

void *
pm_value_index_get(const pm_value_index_t *self, const char *name)
{
    s_entry_t *e = *s_link(self, name, s_hash(self, name));
    return e ? e->data : NULL;
}

void
pm_value_index_remove(pm_value_index_t *self, const char *name)
{
    s_entry_t **at = s_link(self, name, s_hash(self, name));
    s_entry_t *e = *at;
    if (!e)
        return;
    *at = e->next;
    free(e);
    self->n--;
}

/* ---- the tree
 * ----------------------------------------------------------------
 */

static pm_value_t *
s_new(pm_vkind_t kind, unsigned line)
{
    pm_value_t *v = pm_calloc(1, sizeof *v);
    v->kind = kind;
    v->line = line;
    return v;
}

/* Arrays grow by doubling (at 1, 2, 4, ... items), so that reading n items
 * copies O(n) pointers, not O(n^2). */
static void *
s_reserve(void *array, size_t n, size_t size)
{
    if (n && (n & (n - 1)) != 0)
        return array;
    return pm_realloc(array, (n ? 2 * n : 1) * size);
}

static void
s_append(pm_value_t *v, char *key, unsigned key_line, pm_value_t *item)
{
    v->items = s_reserve(v->items, v->n, sizeof *v->items);
    v->items[v->n] = item;
    if (v->kind == PM_V_MAP) {
        v->keys = s_reserve(v->keys, v->n, sizeof *v->keys);
        v->key_lines = s_reserve(v->key_lines, v->n, sizeof *v->key_lines);
        v->keys[v->n] = key;
        v->key_lines[v->n] = key_line;
    }
    v->n++;
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

/* ---- building from events ---------------------------------------------------
 */

/* A collection being read. */
typedef struct {
    pm_value_t *v;
    char *anchor;           /* its anchor, registered once it is complete */
    char *key;              /* PM_V_MAP: the key waiting for its value */
    unsigned key_line;      /* of that key */
    pm_value_index_t *seen; /* PM_V_MAP: key -> line of its first use */
} s_frame_t;

typedef struct {
    unsigned base; /* added to libyaml's 0-based lines */
    pm_diag_t *diag;
    s_frame_t frames[PM_VALUE_DEPTH_MAX + 1];
    size_t depth;              /* frames open */
    size_t budget;             /* values left to create */
    pm_value_index_t *anchors; /* anchor -> its complete value */
    pm_value_t *root;
    unsigned documents;
    bool failed;
} s_builder_t;

/* The key path of the node being read, for messages: the keys of the
 * mappings around it up to the first list ("dkim.domains"), and in *ITEM
 * the 1-based item of that list it is in (0: none). LAST (may be NULL) is
 * the node's own key when no list intervenes. NULL when there is no key at
 * all. Segments are escaped and cut, so a hostile key cannot flood or
 * break a message line. Caller frees. */
static char *
s_join(char *path, const char *seg)
{
    char *safe = pm_text_escape(seg, 64);
    if (!path)
        return safe;
    char *longer = pm_asprintf("%s.%s", path, safe);
    free(path);
    free(safe);
    return longer;
}

static char *
s_path(const s_builder_t *b, const char *last, size_t *item)
{
    char *path = NULL;
    *item = 0;
    for (size_t i = 0; i < b->depth; i++) {
        const s_frame_t *f = &b->frames[i];
        if (f->v->kind == PM_V_SEQ) {
            *item = f->v->n + 1;
            return path;
        }
        const char *seg = f->key ? f->key : i + 1 == b->depth ? last : NULL;
        if (!seg)
            return path;
        path = s_join(path, seg);
    }
    return b->depth || !last ? path : s_join(NULL, last);
}

/* Reports a problem at MARK about the node being read (LAST: its key, when
 * it is one) and stops the parse. */
static void s_fail(s_builder_t *b, const yaml_mark_t *mark, const char *last,
                   const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void
s_fail(s_builder_t *b, const yaml_mark_t *mark, const char *last,
       const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *what = pm_vasprintf(fmt, ap);
    va_end(ap);
    size_t item = 0;
    char *key = s_path(b, last, &item);
    char at[64];
    if (item)
        snprintf(at, sizeof at, "item %zu, column %u", item,
                 (unsigned)mark->column + 1);
    else
        snprintf(at, sizeof at, "column %u", (unsigned)mark->column + 1);
    pm_diag_add(b->diag, (unsigned)mark->line + b->base, key, "%s: %s", at,
                what);
    free(key);
    free(what);
    b->failed = true;
}

/* Whether one more value at DEPTH fits the depth and the budget; charges
 * the budget. */
static bool
s_charge(s_builder_t *b, size_t depth, const yaml_mark_t *mark)
{
    if (depth > PM_VALUE_DEPTH_MAX) {
        s_fail(b, mark, NULL,
               "nesting deeper than %d levels%s; a policy needs 5, so the "
               "rest was not read",
               PM_VALUE_DEPTH_MAX,
               depth > b->depth ? " once an alias is expanded" : "");
        return false;
    }
    if (b->budget == 0) {
        s_fail(b, mark, NULL,
               "document has too many values (more than %d, aliases "
               "counted as expanded)",
               PM_VALUE_NODES_MAX);
        return false;
    }
    b->budget--;
    return true;
}

/* Whether the open collection has room for one more item. */
static bool
s_has_room(s_builder_t *b, const yaml_mark_t *mark)
{
    const s_frame_t *f = b->depth ? &b->frames[b->depth - 1] : NULL;
    if (!f || f->v->n < PM_VALUE_ITEMS_MAX ||
        (f->v->kind == PM_V_MAP && f->key))
        return true;
    s_fail(b, mark, NULL, "more than %d %s", PM_VALUE_ITEMS_MAX,
           f->v->kind == PM_V_SEQ ? "items in one list"
                                  : "keys in one mapping");
    return false;
}

static bool
s_may_add(s_builder_t *b, const yaml_mark_t *mark)
{
    return s_has_room(b, mark) && s_charge(b, b->depth, mark);
}

/* Takes in a complete value V (owned): as the root, as a list item, as a
 * mapping key (V must be a scalar; it is consumed) or as the value of the
 * waiting key. */
static void
s_attach(s_builder_t *b, pm_value_t *v, const yaml_mark_t *mark)
{
    if (!b->depth) {
        b->root = v;
        return;
    }
    s_frame_t *f = &b->frames[b->depth - 1];
    if (f->v->kind == PM_V_SEQ) {
        s_append(f->v, NULL, 0, v);
    } else if (f->key) {
        s_append(f->v, f->key, f->key_line, v);
        f->key = NULL;
    } else if (v->kind != PM_V_SCALAR) {
        pm_value_destroy(&v);
        s_fail(b, mark, NULL, "mapping keys must be plain names");
    } else {
        unsigned first =
            (unsigned)(uintptr_t)pm_value_index_get(f->seen, v->text);
        if (first) {
            char *shown = pm_text_escape(v->text, 64);
            s_fail(b, mark, v->text,
                   "'%s' is given twice in one mapping (first on line %u); "
                   "which one was meant?",
                   shown, first - 1);
            free(shown);
        } else {
            pm_value_index_put(f->seen, v->text,
                               (void *)(uintptr_t)(v->line + 1));
            f->key = v->text;
            f->key_line = v->line;
            v->text = NULL;
        }
        pm_value_destroy(&v);
    }
}

static pm_value_t *
s_scalar(s_builder_t *b, const yaml_event_t *ev)
{
    const char *text = (const char *)ev->data.scalar.value;
    size_t len = ev->data.scalar.length;
    const char *nul = memchr(text, '\0', len);
    if (nul) {
        /* the text ends at the NUL for every C string function: a value
         * that read as another, shorter one would pass every check */
        char *shown = pm_text_escape(text, 64);
        const s_frame_t *f = b->depth ? &b->frames[b->depth - 1] : NULL;
        s_fail(b, &ev->start_mark,
               f && f->v->kind == PM_V_MAP && !f->key ? shown : NULL,
               "'%s' is followed by a NUL character (\\0) at byte %zu; "
               "values and keys are text without NULs",
               shown, (size_t)(nul - text));
        free(shown);
        return NULL;
    }
    pm_value_t *v = s_new(PM_V_SCALAR, (unsigned)ev->start_mark.line + b->base);
    v->text = pm_strndup(text, len);
    v->quoted = ev->data.scalar.style == YAML_SINGLE_QUOTED_SCALAR_STYLE ||
                ev->data.scalar.style == YAML_DOUBLE_QUOTED_SCALAR_STYLE;
    return v;
}

/* A copy of SRC (an anchored value) for an alias at depth DEPTH, charged
 * to the budget like values written out; NULL once a bound is crossed. */
static pm_value_t *
s_copy(s_builder_t *b, const pm_value_t *src, size_t depth,
       const yaml_mark_t *mark)
{
    if (!s_charge(b, depth, mark))
        return NULL;
    pm_value_t *v = s_new(src->kind, src->line);
    v->quoted = src->quoted;
    v->text = src->text ? pm_strdup(src->text) : NULL;
    for (size_t i = 0; i < src->n; i++) {
        pm_value_t *item = s_copy(b, src->items[i], depth + 1, mark);
        if (!item) {
            pm_value_destroy(&v);
            return NULL;
        }
        s_append(v, src->keys ? pm_strdup(src->keys[i]) : NULL,
                 src->keys ? src->key_lines[i] : 0, item);
    }
    return v;
}

static pm_value_t *
s_alias(s_builder_t *b, const yaml_event_t *ev)
{
    const char *name = (const char *)ev->data.alias.anchor;
    const pm_value_t *src = pm_value_index_get(b->anchors, name);
    if (src)
        return s_copy(b, src, b->depth, &ev->start_mark);
    for (size_t i = 0; i < b->depth; i++)
        if (b->frames[i].anchor && strcmp(b->frames[i].anchor, name) == 0) {
            s_fail(b, &ev->start_mark, NULL,
                   "alias *%.64s is inside the value it names (a value "
                   "that contains itself)",
                   name);
            return NULL;
        }
    s_fail(b, &ev->start_mark, NULL, "alias *%.64s names no anchor before it",
           name);
    return NULL;
}

static void
s_open(s_builder_t *b, const yaml_event_t *ev, pm_vkind_t kind,
       const yaml_char_t *anchor)
{
    s_frame_t *f = &b->frames[b->depth];
    const s_frame_t *parent = b->depth ? f - 1 : NULL;
    if (parent && parent->v->kind == PM_V_MAP && !parent->key) {
        s_fail(b, &ev->start_mark, NULL, "mapping keys must be plain names");
        return;
    }
    *f = (s_frame_t){0};
    f->v = s_new(kind, (unsigned)ev->start_mark.line + b->base);
    f->anchor = anchor ? pm_strdup((const char *)anchor) : NULL;
    if (kind == PM_V_MAP)
        f->seen = pm_value_index_new(false);
    b->depth++;
}

static void
s_frame_free(s_frame_t *f)
{
    pm_value_destroy(&f->v);
    free(f->anchor);
    free(f->key);
    pm_value_index_destroy(&f->seen);
    *f = (s_frame_t){0};
}

static void
s_close(s_builder_t *b, const yaml_event_t *ev)
{
    s_frame_t *f = &b->frames[--b->depth];
    pm_value_t *v = f->v;
    f->v = NULL;
    if (f->anchor)
        pm_value_index_put(b->anchors, f->anchor, v);
    s_frame_free(f);
    s_attach(b, v, &ev->start_mark);
}

static void
s_complete(s_builder_t *b, pm_value_t *v, const yaml_char_t *anchor,
           const yaml_mark_t *mark)
{
    if (!v)
        return;
    if (anchor)
        pm_value_index_put(b->anchors, (const char *)anchor, v);
    s_attach(b, v, mark);
}

/* Handles one event. Returns whether the stream ended. */
static bool
s_event(s_builder_t *b, const yaml_event_t *ev)
{
    switch (ev->type) {
    case YAML_STREAM_END_EVENT:
        return true;
    case YAML_DOCUMENT_START_EVENT:
        /* a second document would be silently ignored; say so instead */
        if (b->documents++)
            s_fail(b, &ev->start_mark, NULL,
                   "only one YAML document is allowed");
        break;
    case YAML_SCALAR_EVENT:
        if (s_may_add(b, &ev->start_mark))
            s_complete(b, s_scalar(b, ev), ev->data.scalar.anchor,
                       &ev->start_mark);
        break;
    case YAML_ALIAS_EVENT:
        if (s_has_room(b, &ev->start_mark))
            s_complete(b, s_alias(b, ev), NULL, &ev->start_mark);
        break;
    case YAML_SEQUENCE_START_EVENT:
        if (s_may_add(b, &ev->start_mark))
            s_open(b, ev, PM_V_SEQ, ev->data.sequence_start.anchor);
        break;
    case YAML_MAPPING_START_EVENT:
        if (s_may_add(b, &ev->start_mark))
            s_open(b, ev, PM_V_MAP, ev->data.mapping_start.anchor);
        break;
    case YAML_SEQUENCE_END_EVENT:
    case YAML_MAPPING_END_EVENT:
        s_close(b, ev);
        break;
    default:
        break;
    }
    return false;
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
    unsigned column = (unsigned)parser->problem_mark.column + 1;
    for (size_t i = 0; i + 1 < len; i++)
        last += text[i] == '\n';
    if (line > last)
        line = last;
    /* '@' and '`' are reserved in YAML: "@common" needs quotes. */
    bool reserved = at < len && (text[at] == '@' || text[at] == '`');
    pm_diag_add(diag, base ? line + base : 0, NULL,
                "YAML syntax: %s%s%s (column %u)%s",
                parser->problem ? parser->problem : "unreadable",
                parser->context ? " " : "",
                parser->context ? parser->context : "", column,
                reserved ? "; values starting with '@' or '`' must be "
                           "quoted, e.g. \"@common\""
                         : "");
}

static pm_value_t *
s_parse_yaml(const char *text, size_t len, unsigned first_line, pm_diag_t *diag)
{
    yaml_parser_t parser;
    s_builder_t b = {.base = first_line,
                     .diag = diag,
                     .budget = PM_VALUE_NODES_MAX,
                     .anchors = pm_value_index_new(false)};
    if (!yaml_parser_initialize(&parser))
        abort(); /* libyaml fails here only without memory */
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    bool done = false;
    while (!done && !b.failed) {
        yaml_event_t ev;
        if (!yaml_parser_parse(&parser, &ev)) {
            s_syntax_error(&parser, text, len, first_line, diag);
            b.failed = true;
            break;
        }
        done = s_event(&b, &ev);
        yaml_event_delete(&ev);
    }
    while (b.depth)
        s_frame_free(&b.frames[--b.depth]);
    pm_value_index_destroy(&b.anchors);
    yaml_parser_delete(&parser);
    if (b.failed)
        pm_value_destroy(&b.root);
    else if (!b.root)
        b.root = s_new(PM_V_MAP, first_line);
    return b.root;
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
