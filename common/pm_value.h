/* pm_value.h - a parsed policy document: scalars, lists and mappings with
 * the line each came from.
 *
 * Policy files, `policy set` values and stored per-node overrides are all
 * YAML (JSON is read the same way, as YAML's flow style), parsed by libyaml
 * into this small tree so that the policy table can read any of them through
 * one code path and name the line of every problem.
 *
 * Input is hostile until proven otherwise (a policy file may come from
 * anywhere, and the fuzzers feed this directly), so the tree is built from
 * libyaml's events one at a time and every bound is checked as the event
 * arrives, never after the whole document was loaded: parsing stops at the
 * first event past a bound, so the work done is linear in the input up to
 * that point. The bounds:
 *   - nesting: PM_VALUE_DEPTH_MAX levels (a policy needs 5);
 *   - items in one list or keys in one mapping: PM_VALUE_ITEMS_MAX (what
 *     one repeated field of a message may carry, PM_WIRE_LIST_MAX);
 *   - values in the whole document, aliases expanded: PM_VALUE_NODES_MAX
 *     (an alias bomb expands exponentially);
 *   - a key given twice in one mapping, a NUL character in a key or a value
 *     (it would silently cut the text short), an alias to a node that
 *     contains it, an alias to no anchor: each is an error.
 * Errors name the line and the column where parsing stopped.
 */
#ifndef PM_VALUE_H
#define PM_VALUE_H

#include "pm_diag.h"

#include <stdbool.h>
#include <stddef.h>

#define PM_VALUE_DEPTH_MAX 16
#define PM_VALUE_ITEMS_MAX 4096
#define PM_VALUE_NODES_MAX 200000

typedef enum { PM_V_SCALAR, PM_V_SEQ, PM_V_MAP } pm_vkind_t;

typedef struct pm_value_t pm_value_t;
struct pm_value_t {
    pm_vkind_t kind;
    unsigned line;       /* 1-based line in the source, 0 if unknown */
    char *text;          /* PM_V_SCALAR: the scalar, never NULL */
    bool quoted;         /* PM_V_SCALAR: written in quotes */
    size_t n;            /* PM_V_SEQ / PM_V_MAP: number of items */
    char **keys;         /* PM_V_MAP: item keys, unique */
    unsigned *key_lines; /* PM_V_MAP: line of each key */
    pm_value_t **items;  /* PM_V_SEQ items, or PM_V_MAP values */
};

/* Parses one YAML document from TEXT (LEN bytes). An empty document yields
 * an empty mapping. Aliases are expanded. Syntax errors, a second document
 * and every bound above are added to DIAG (line numbers start at
 * FIRST_LINE: 1 for files, 0 for a one-line argument, whose line is then
 * left out), naming the key path where it can ("dkim.domains"), and NULL is
 * returned. Caller owns the result and destroys it with pm_value_destroy. */
pm_value_t *pm_value_parse(const char *text, size_t len, unsigned first_line,
                           pm_diag_t *diag);

/* Destroys a tree; accepts NULL, nulls *self_p. */
void pm_value_destroy(pm_value_t **self_p);

/* Returns the value of KEY in mapping SELF, or NULL. */
const pm_value_t *pm_value_get(const pm_value_t *self, const char *key);

/* Names the kind of value for messages: "a scalar", "a list", "a mapping". */
const char *pm_value_kind_name(const pm_value_t *self);

/* ---- an index of names ----------------------------------------------------
 * A hash table from text to a pointer, so that finding duplicates among n
 * keys or list items costs O(n), not O(n^2). FOLD compares names
 * case-insensitively (ASCII). The index keeps its own copy of each name. */
typedef struct pm_value_index_t pm_value_index_t;

/* Creates an empty index. Caller owns it. */
pm_value_index_t *pm_value_index_new(bool fold);

/* Destroys an index (not the data it points to); accepts NULL, nulls
 * *self_p. */
void pm_value_index_destroy(pm_value_index_t **self_p);

/* Sets NAME's data to DATA (not NULL), replacing what it had. */
void pm_value_index_put(pm_value_index_t *self, const char *name, void *data);

/* The data of NAME, or NULL when NAME is not in the index. */
void *pm_value_index_get(const pm_value_index_t *self, const char *name);

/* Takes NAME out of the index, if it is there. */
void pm_value_index_remove(pm_value_index_t *self, const char *name);

#endif
