/* pm_value.h - a parsed policy document: scalars, lists and mappings with
 * the line each came from.
 *
 * Policy files, `policy set` values and stored per-node overrides are all
 * YAML (JSON is read the same way, as YAML's flow style), parsed by libyaml
 * into this small tree so that the policy table can read any of them through
 * one code path and name the line of every problem.
 */
#ifndef PM_VALUE_H
#define PM_VALUE_H

#include "pm_diag.h"

#include <stdbool.h>
#include <stddef.h>

typedef enum { PM_V_SCALAR, PM_V_SEQ, PM_V_MAP } pm_vkind_t;

typedef struct pm_value_t pm_value_t;
struct pm_value_t {
    pm_vkind_t kind;
    unsigned line;       /* 1-based line in the source, 0 if unknown */
    char *text;          /* PM_V_SCALAR: the scalar, never NULL */
    bool quoted;         /* PM_V_SCALAR: written in quotes */
    size_t n;            /* PM_V_SEQ / PM_V_MAP: number of items */
    char **keys;         /* PM_V_MAP: item keys */
    unsigned *key_lines; /* PM_V_MAP: line of each key */
    pm_value_t **items;  /* PM_V_SEQ items, or PM_V_MAP values */
};

/* Parses one YAML document from TEXT (LEN bytes). An empty document yields
 * an empty mapping. Aliases are expanded, within a bound on the total
 * number of values (an alias bomb is refused). Syntax errors, a second
 * document, too deep nesting and non-scalar mapping keys are
 * added to DIAG (line numbers start at FIRST_LINE: 1 for files, 0 for a
 * one-line argument, whose line is then left out) and NULL is returned. Caller
 * owns the result and destroys it with pm_value_destroy. */
pm_value_t *pm_value_parse(const char *text, size_t len, unsigned first_line,
                           pm_diag_t *diag);

/* Destroys a tree; accepts NULL, nulls *self_p. */
void pm_value_destroy(pm_value_t **self_p);

/* Returns the value of KEY in mapping SELF, or NULL. */
const pm_value_t *pm_value_get(const pm_value_t *self, const char *key);

/* Names the kind of value for messages: "a scalar", "a list", "a mapping". */
const char *pm_value_kind_name(const pm_value_t *self);

#endif
