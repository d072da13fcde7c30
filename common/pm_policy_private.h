/* pm_policy_private.h - shared between the pm_policy*.c files and tests. */
#ifndef PM_POLICY_PRIVATE_H
#define PM_POLICY_PRIVATE_H

#include "pm_policy.h"

#include <protobuf-c/protobuf-c.h>

/* Where each key and list item of a parsed document came from, so that
 * validation can name lines. Indexed by the key's table index. */
typedef struct {
    unsigned line;        /* 0: not written in the document */
    unsigned *item_lines; /* one per stored list item, may be NULL */
    size_t n_items, cap;  /* cap: room in item_lines */
} pm_keyline_t;

typedef struct {
    pm_keyline_t *keys;       /* one per table key */
    unsigned *override_lines; /* one per Pm__Policy.overrides entry */
    size_t n_overrides;
} pm_origin_t;

pm_origin_t *pm_origin_new(void);
void pm_origin_destroy(pm_origin_t **self_p);
void pm_origin_item_line(pm_origin_t *self, size_t key, size_t item,
                         unsigned line);

/* The table index of KEY (a pointer into the table). */
size_t pm_policy_key_index(const pm_key_t *key);

/* The Pm__Policy field descriptor of KEY. */
const ProtobufCFieldDescriptor *pm_policy_field(const pm_key_t *key);
#define PM_FIELD(policy, key, type)                                            \
    ((type *)((char *)(policy) + pm_policy_field(key)->offset))
#define PM_COUNT(policy, key)                                                  \
    ((size_t *)((char *)(policy) + pm_policy_field(key)->quantifier_offset))

/* Applies one operation with VALUE to KEY of POLICY. For signature ADD from
 * the CLI, CONTENT carries the file body and VALUE its name. Problems go to
 * DIAG (lines from VALUE); ORIGIN, when not NULL, learns item lines.
 * Returns the number of problems. */
size_t pm_policy_apply(Pm__Policy *policy, const pm_key_t *key, Pm__Edit__Op op,
                       const pm_value_t *value,
                       const ProtobufCBinaryData *content, const char *base_dir,
                       pm_origin_t *origin, pm_diag_t *diag);

/* pm_policy_from_value without pm_policy_validate: for tests that send a
 * policy the client would refuse straight to the controller, so that the
 * controller's own checks are what refuses it. NULL when a value cannot
 * be represented at all (wrong type, unknown key). */
Pm__Policy *pm_policy_from_value_unchecked(const pm_value_t *doc,
                                           const char *base_dir,
                                           pm_diag_t *diag);

/* Validation with lines from ORIGIN (may be NULL). */
size_t pm_policy_validate_at(const Pm__Policy *policy,
                             const pm_origin_t *origin, pm_diag_t *diag);

/* Replaces *slot (a string field) by a copy of VALUE, freeing the old one
 * unless it is protobuf-c's shared empty string. */
void pm_policy_set_string(char **slot, const char *value);

/* Level name for the given percents, or NULL when they match none. */
const char *pm_policy_level_for(unsigned tag, unsigned kill);
/* Percents of a named level; false for "custom" or unknown names. */
bool pm_policy_level_percents(const char *level, unsigned *tag, unsigned *kill);

#endif
