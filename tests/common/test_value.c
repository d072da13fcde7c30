/* test_value.c - pm_value: YAML (and JSON) documents parsed into a small
 * tree with the line of every node, and every hostile input refused with a
 * line rather than a crash or an unbounded allocation. */
#include <criterion/criterion.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "pm_value.h"

/* All diag lines joined, for failure messages and substring checks. */
static const char *
s_lines(const pm_diag_t *diag)
{
    static char all[8192];
    all[0] = '\0';
    for (size_t i = 0; i < pm_diag_count(diag); i++)
        snprintf(all + strlen(all), sizeof all - strlen(all), "%s\n",
                 pm_diag_line(diag, i));
    return all;
}

static pm_value_t *
s_parse(const char *text, unsigned first_line, pm_diag_t *diag)
{
    return pm_value_parse(text, strlen(text), first_line, diag);
}

/* Asserts TEXT is refused with exactly one problem containing WANT; returns
 * a copy of that line (caller frees). */
static char *
s_refused(const char *text, unsigned first_line, const char *want)
{
    pm_diag_t *d = pm_diag_new("test");
    pm_value_t *v = s_parse(text, first_line, d);
    bool refused = v == NULL;
    pm_value_destroy(&v);
    char *line = pm_diag_count(d) ? strdup(pm_diag_line(d, 0)) : NULL;
    size_t n = pm_diag_count(d);
    pm_diag_destroy(&d);
    cr_expect(refused, "accepted: %s", text);
    cr_expect_eq(n, 1, "%zu problems for: %s", n, text);
    if (!line)
        return NULL;
    cr_expect(strstr(line, want) != NULL, "'%s' not in '%s'", want, line);
    return line;
}

Test(value, tree_with_lines)
{
    const char *text = "a: 1\n"
                       "b:\n"
                       "  - x\n"
                       "  - \"y\"\n"
                       "c:\n"
                       "  d: 'z'\n"
                       "  e: [p, q]\n";
    pm_diag_t *d = pm_diag_new("test");
    pm_value_t *v = s_parse(text, 1, d);
    cr_assert_not_null(v, "%s", s_lines(d));
    cr_assert_eq(v->kind, PM_V_MAP);
    cr_expect_eq(v->line, 1);
    cr_assert_eq(v->n, 3);
    cr_expect_str_eq(v->keys[0], "a");
    cr_expect_str_eq(v->keys[1], "b");
    cr_expect_str_eq(v->keys[2], "c");
    cr_expect_eq(v->key_lines[0], 1);
    cr_expect_eq(v->key_lines[1], 2);
    cr_expect_eq(v->key_lines[2], 5);

    const pm_value_t *a = pm_value_get(v, "a");
    cr_assert_not_null(a);
    cr_expect_eq(a->kind, PM_V_SCALAR);
    cr_expect_str_eq(a->text, "1");
    cr_expect_not(a->quoted);
    cr_expect_eq(a->line, 1);

    const pm_value_t *b = pm_value_get(v, "b");
    cr_assert_not_null(b);
    cr_assert_eq(b->kind, PM_V_SEQ);
    cr_assert_eq(b->n, 2);
    cr_expect_null(b->keys);
    cr_expect_str_eq(b->items[0]->text, "x");
    cr_expect_not(b->items[0]->quoted);
    cr_expect_eq(b->items[0]->line, 3);
    cr_expect_str_eq(b->items[1]->text, "y");
    cr_expect(b->items[1]->quoted);
    cr_expect_eq(b->items[1]->line, 4);

    const pm_value_t *c = pm_value_get(v, "c");
    cr_assert_not_null(c);
    cr_assert_eq(c->kind, PM_V_MAP);
    cr_expect_eq(c->line, 6);
    const pm_value_t *dd = pm_value_get(c, "d");
    cr_assert_not_null(dd);
    cr_expect_str_eq(dd->text, "z");
    cr_expect(dd->quoted);
    cr_expect_eq(c->key_lines[1], 7);
    const pm_value_t *e = pm_value_get(c, "e");
    cr_assert_not_null(e);
    cr_expect_eq(e->kind, PM_V_SEQ);
    cr_expect_eq(e->n, 2);
    cr_expect_eq(e->items[1]->line, 7);

    cr_expect_null(pm_value_get(v, "missing"));
    cr_expect_null(pm_value_get(b, "x"));
    cr_expect_null(pm_value_get(a, "a"));
    cr_expect_null(pm_value_get(NULL, "a"));
    cr_expect_str_eq(pm_value_kind_name(a), "a single value");
    cr_expect_str_eq(pm_value_kind_name(b), "a list");
    cr_expect_str_eq(pm_value_kind_name(c), "a mapping");
    cr_expect_eq(pm_diag_count(d), 0);
    pm_value_destroy(&v);
    cr_expect_null(v);
    pm_value_destroy(&v);
    pm_diag_destroy(&d);
}

Test(value, first_line_offsets_lines)
{
    pm_diag_t *d = pm_diag_new("test");
    pm_value_t *v = s_parse("[a, \"b\"]", 0, d);
    cr_assert_not_null(v, "%s", s_lines(d));
    cr_assert_eq(v->kind, PM_V_SEQ);
    cr_expect_eq(v->line, 0);
    cr_assert_eq(v->n, 2);
    cr_expect_eq(v->items[0]->line, 0);
    cr_expect_str_eq(v->items[1]->text, "b");
    cr_expect(v->items[1]->quoted);
    pm_value_destroy(&v);

    v = s_parse("\n\nx: 1\n", 10, d);
    cr_assert_not_null(v);
    cr_expect_eq(v->key_lines[0], 12);
    cr_expect_eq(v->items[0]->line, 12);
    pm_value_destroy(&v);

    v = s_parse("plain text", 0, d);
    cr_assert_not_null(v);
    cr_expect_eq(v->kind, PM_V_SCALAR);
    cr_expect_str_eq(v->text, "plain text");
    pm_value_destroy(&v);
    cr_expect_eq(pm_diag_count(d), 0);
    pm_diag_destroy(&d);
}

Test(value, empty_document_is_empty_map)
{
    const char *docs[] = {"", "# only a comment\n", "\n   \n\n"};
    for (size_t i = 0; i < sizeof docs / sizeof docs[0]; i++) {
        pm_diag_t *d = pm_diag_new("test");
        pm_value_t *v = s_parse(docs[i], 1, d);
        cr_assert_not_null(v, "'%s': %s", docs[i], s_lines(d));
        cr_expect_eq(v->kind, PM_V_MAP, "'%s'", docs[i]);
        cr_expect_eq(v->n, 0);
        cr_expect_null(pm_value_get(v, "a"));
        pm_value_destroy(&v);
        pm_diag_destroy(&d);
    }
}

Test(value, syntax_error_with_line)
{
    char *line = s_refused("a: 1\nb: 2\n  c: 3\n", 1, "YAML syntax");
    cr_expect(line && strncmp(line, "test:3: ", 8) == 0, "%s", line);
    free(line);
    /* a one-line argument: no line number */
    line = s_refused("[a, b", 0, "YAML syntax");
    cr_expect(line && strncmp(line, "test: YAML syntax", 17) == 0, "%s", line);
    free(line);
    line = s_refused("x: @y", 0, "YAML syntax");
    cr_expect(line && strncmp(line, "test: YAML syntax", 17) == 0, "%s", line);
    free(line);
}

/* A file cut short (no final newline) is reported on its last line, not
 * on a line past the end of the file. */
Test(value, syntax_error_at_end_of_file_names_last_line)
{
    char *line = s_refused("a: 1\nb: [x", 1, "YAML syntax");
    cr_expect(line && strncmp(line, "test:2: ", 8) == 0, "%s", line);
    free(line);
}

Test(value, unquoted_at_gives_quoting_hint)
{
    char *line = s_refused("@common", 0, "\"@common\"");
    free(line);
    /* the same mistake inside a list and inside a file */
    line = s_refused("[exe, @common]", 0, "\"@common\"");
    free(line);
    line = s_refused("inbound:\n  blocked_extensions: [exe, @common]\n", 1,
                     "\"@common\"");
    free(line);
    /* quoted, it is just a value */
    pm_diag_t *d = pm_diag_new("test");
    pm_value_t *v = s_parse("\"@common\"", 0, d);
    cr_assert_not_null(v, "%s", s_lines(d));
    cr_expect_str_eq(v->text, "@common");
    cr_expect(v->quoted);
    pm_value_destroy(&v);
    pm_diag_destroy(&d);
}

Test(value, json_surrogate_pairs_load_as_utf8)
{
    pm_diag_t *d = pm_diag_new("test");
    const char *json = "{\"q\": \"say \\\"hi\\\" \\\\\", "
                       "\"s\": \"poo \\ud83d\\udca9!\", "
                       "\"t\": [\"\\uD83D\\uDE00\", \"\\u00e9\"]}";
    pm_value_t *v = s_parse(json, 1, d);
    cr_assert_not_null(v, "%s", s_lines(d));
    const pm_value_t *q = pm_value_get(v, "q");
    cr_assert_not_null(q);
    cr_expect_str_eq(q->text, "say \"hi\" \\");
    const pm_value_t *s = pm_value_get(v, "s");
    cr_assert_not_null(s);
    cr_expect_str_eq(s->text, "poo \xf0\x9f\x92\xa9!");
    const pm_value_t *t = pm_value_get(v, "t");
    cr_assert_not_null(t);
    cr_assert_eq(t->n, 2);
    cr_expect_str_eq(t->items[0]->text, "\xf0\x9f\x98\x80");
    cr_expect_str_eq(t->items[1]->text, "\xc3\xa9");
    pm_value_destroy(&v);
    pm_diag_destroy(&d);
}

Test(value, lone_surrogate_refused)
{
    char *line = s_refused("{\"s\": \"\\ud83d x\"}", 1, "YAML syntax");
    free(line);
    line = s_refused("{\"s\": \"\\udca9\\ud83d\"}", 1, "YAML syntax");
    free(line);
}

static long
s_maxrss_kb(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss;
}

/* Nine levels of nine aliases expand to 9^9 (387 million) values. */
Test(value, alias_bomb_refused_within_bounds)
{
    const char *bomb =
        "a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\","
        "\"lol\",\"lol\"]\n"
        "b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\n"
        "c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\n"
        "d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\n"
        "e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\n"
        "f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]\n"
        "g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]\n"
        "h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]\n"
        "i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]\n";
    long before = s_maxrss_kb();
    pm_diag_t *d = pm_diag_new("test");
    pm_value_t *v = s_parse(bomb, 1, d);
    long grown = s_maxrss_kb() - before;
    cr_expect_null(v);
    cr_expect_geq(pm_diag_count(d), 1);
    cr_expect_lt(grown, 256 * 1024, "grew by %ld kB", grown);
    pm_value_destroy(&v);
    pm_diag_destroy(&d);
}

/* pm_value.h: aliases are expanded (within the bound tested above). */
Test(value, alias_expanded)
{
    pm_diag_t *d = pm_diag_new("test");
    pm_value_t *v = s_parse("a: &x 1\nb: *x\n", 1, d);
    cr_assert_not_null(v, "refused a plain alias");
    const pm_value_t *b = pm_value_get(v, "b");
    cr_assert_not_null(b);
    cr_expect_str_eq(b->text, "1");
    cr_expect_eq(pm_diag_count(d), 0);
    pm_value_destroy(&v);
    pm_diag_destroy(&d);
}

Test(value, self_referencing_alias_refused)
{
    pm_diag_t *d = pm_diag_new("test");
    pm_value_t *v = s_parse("a: &x [1, *x]\n", 1, d);
    cr_expect_null(v);
    cr_expect_geq(pm_diag_count(d), 1);
    pm_value_destroy(&v);
    pm_diag_destroy(&d);
}

/* Builds N nested flow lists around "x". Caller frees. */
static char *
s_nested(size_t n)
{
    char *s = malloc(2 * n + 2);
    cr_assert_not_null(s);
    memset(s, '[', n);
    s[n] = 'x';
    memset(s + n + 1, ']', n);
    s[2 * n + 1] = '\0';
    return s;
}

Test(value, nesting_bounded)
{
    /* 16 levels of lists are fine */
    char *ok = s_nested(16);
    pm_diag_t *d = pm_diag_new("test");
    pm_value_t *v = s_parse(ok, 1, d);
    cr_expect_not_null(v, "%s", s_lines(d));
    const pm_value_t *w = v;
    size_t depth = 0;
    while (w && w->kind == PM_V_SEQ && w->n == 1)
        w = w->items[0], depth++;
    cr_expect_eq(depth, 16);
    cr_expect(w && w->kind == PM_V_SCALAR && strcmp(w->text, "x") == 0);
    pm_value_destroy(&v);
    pm_diag_destroy(&d);
    free(ok);

    size_t deep[] = {18, 40, 10000};
    for (size_t i = 0; i < sizeof deep / sizeof deep[0]; i++) {
        char *bad = s_nested(deep[i]);
        char *line = s_refused(bad, 1, "deeper than 16");
        free(line);
        free(bad);
    }
    /* mappings count too */
    char map[512] = "";
    for (int i = 0; i < 20; i++)
        strcat(map, "{a: ");
    strcat(map, "1");
    for (int i = 0; i < 20; i++)
        strcat(map, "}");
    char *line = s_refused(map, 1, "deeper than 16");
    free(line);
}

Test(value, two_documents_refused)
{
    /* reported where the second document starts, at its "---" */
    char *line = s_refused("a: 1\n---\nb: 2\n", 1, "only one YAML document");
    cr_expect(line && strncmp(line, "test:2: ", 8) == 0, "%s", line);
    free(line);
    line = s_refused("---\na: 1\n---\nb: 2\n", 1, "only one YAML document");
    free(line);
    /* a second document that is not even valid YAML is refused too */
    line = s_refused("a: 1\n---\nb: [x\n", 1, "test:");
    free(line);
    /* an explicit end marker alone is one document */
    pm_diag_t *d = pm_diag_new("test");
    pm_value_t *v = s_parse("a: 1\n...\n", 1, d);
    cr_expect_not_null(v, "%s", s_lines(d));
    pm_value_destroy(&v);
    pm_diag_destroy(&d);
}

Test(value, non_scalar_key_refused)
{
    char *line = s_refused("? [a, b]\n: 1\n", 1, "plain names");
    cr_expect(line && strncmp(line, "test:1: ", 8) == 0, "%s", line);
    free(line);
}

/* A NUL inside a value would cut it short for every C string function:
 * "mx.example.com\0[10.9.9.9]:25" would read, check and digest as
 * mx.example.com. Refused, naming the key. */
Test(value, nul_refused_naming_the_key)
{
    char *line = s_refused("outbound:\n  relay_host: \"mx.example.com\\0"
                           "[10.9.9.9]:25\"\n",
                           1, "NUL character");
    cr_expect(line && strncmp(line,
                              "test:2: outbound.relay_host: column 15: "
                              "'mx.example.com' is followed by a NUL",
                              76) == 0,
              "%s", line);
    free(line);
    /* JSON's \u0000, in a list, and in a key */
    line = s_refused("{\"a\": {\"b\": \"x\\u0000y\"}}", 1, "test:1: a.b: ");
    free(line);
    line = s_refused("a: [x, \"y\\0\"]\n", 1, "test:1: a: item 2, column 8");
    free(line);
    line = s_refused("\"k\\0\": 1\n", 1, "NUL character");
    free(line);
}

/* A key given twice in one mapping is refused wherever the mapping is,
 * records inside lists included (which one was meant?). */
Test(value, duplicate_keys_refused)
{
    char *line = s_refused("a: 1\nb: 2\na: 3\n", 1,
                           "test:3: a: column 1: 'a' is given twice in one "
                           "mapping (first on line 1)");
    free(line);
    line = s_refused("dkim:\n"
                     "  domains:\n"
                     "    - {domain: a.example, selector: s, key: k}\n"
                     "    - domain: b.example\n"
                     "      selector: s1\n"
                     "      key: k\n"
                     "      selector: s2\n",
                     1,
                     "test:7: dkim.domains: item 2, column 7: 'selector' is "
                     "given twice in one mapping (first on line 5)");
    free(line);
    line = s_refused("{\"a\": {\"x\": 1, \"x\": 2}}", 1, "test:1: a.x: ");
    free(line);
    /* the same key in two mappings is no duplicate */
    pm_diag_t *d = pm_diag_new("test");
    pm_value_t *v = s_parse("- {a: 1}\n- {a: 2}\n", 1, d);
    cr_expect_not_null(v, "%s", s_lines(d));
    pm_value_destroy(&v);
    pm_diag_destroy(&d);
}

/* Bounds are checked on the event that crosses them: a 4 MiB file of "["
 * that is never closed is refused for its depth, at the 18th bracket, not
 * for the syntax error 4 MiB later (which libyaml would reach only after
 * work that grows with the square of the nesting). */
Test(value, depth_checked_while_parsing)
{
    size_t n = 4u << 20;
    char *text = malloc(n + 1);
    cr_assert_not_null(text);
    memset(text, '[', n);
    text[n] = '\0';
    char *line = s_refused(text, 1,
                           "test:1: item 1, column 18: nesting deeper than "
                           "16 levels");
    free(line);
    free(text);
}

Test(value, list_and_mapping_sizes_bounded)
{
    size_t n = PM_VALUE_ITEMS_MAX + 1;
    char *list = malloc(3 * n + 4), *map = malloc(16 * n + 4);
    cr_assert(list && map);
    char *l = list, *m = map;
    *l++ = '[';
    *m++ = '{';
    for (size_t i = 0; i < n; i++) {
        l += sprintf(l, "%sx", i ? ", " : "");
        m += sprintf(m, "%sk%zu: 1", i ? ", " : "", i);
    }
    strcpy(l, "]");
    strcpy(m, "}");
    char *line = s_refused(list, 1, "item 4097, column ");
    cr_expect(line && strstr(line, "more than 4096 items in one list"), "%s",
              line);
    free(line);
    line = s_refused(map, 1, "more than 4096 keys in one mapping");
    free(line);
    /* one item less is fine */
    strcpy(list + strlen(list) - 4, "]");
    pm_diag_t *d = pm_diag_new("test");
    pm_value_t *v = s_parse(list, 1, d);
    cr_assert_not_null(v, "%s", s_lines(d));
    cr_expect_eq(v->n, PM_VALUE_ITEMS_MAX);
    pm_value_destroy(&v);
    pm_diag_destroy(&d);
    free(list);
    free(map);
}

Test(value, bad_aliases_refused)
{
    char *line = s_refused("a: *x\n", 1, "alias *x names no anchor before it");
    free(line);
    /* an alias that expands past the depth bound */
    char text[128] = "a: &a [[[[[[[[[[[[[[[x]]]]]]]]]]]]]]]\nb: [*a]\n";
    line = s_refused(text, 1, "test:2: b: item 1, column 5: nesting deeper");
    free(line);
}

Test(value, index_finds_and_forgets)
{
    pm_value_index_t *idx = pm_value_index_new(false);
    char name[32];
    for (int i = 0; i < 100000; i++) {
        snprintf(name, sizeof name, "k%d", i);
        pm_value_index_put(idx, name, (void *)(intptr_t)(i + 1));
    }
    for (int i = 0; i < 100000; i += 997) {
        snprintf(name, sizeof name, "k%d", i);
        cr_assert_eq((intptr_t)pm_value_index_get(idx, name), i + 1);
    }
    cr_expect_null(pm_value_index_get(idx, "K1"));
    pm_value_index_put(idx, "k1", idx);
    cr_expect_eq(pm_value_index_get(idx, "k1"), idx);
    pm_value_index_remove(idx, "k1");
    cr_expect_null(pm_value_index_get(idx, "k1"));
    pm_value_index_remove(idx, "never there");
    pm_value_index_destroy(&idx);
    pm_value_index_destroy(&idx);

    idx = pm_value_index_new(true);
    pm_value_index_put(idx, "EXE", idx);
    cr_expect_eq(pm_value_index_get(idx, "exe"), idx);
    pm_value_index_destroy(&idx);
}
