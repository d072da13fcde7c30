/* pm_policy_node.c - the policy one node applies: the cluster's, with
 * that node's overrides in place.
 *
 * Its own file because the agent needs this and nothing that validates:
 * linked beside pm_policy_edit.c it pulled pm_policy_validate and, through
 * its compile check of custom signatures (pm_sigcheck), libclamav into the
 * root agent, which leaves libclamav to its helpers.
 */
#include "pm_policy_private.h"

#include <stdlib.h>
#include <string.h>

Pm__Policy *
pm_policy_for_node(const Pm__Policy *policy, const char *node)
{
    Pm__Policy *p = pm_policy_dup(policy);
    pm_diag_t *ignored = pm_diag_new("override");
    for (size_t i = 0; i < p->n_overrides; i++) {
        const Pm__NodeOverride *ov = p->overrides[i];
        const pm_key_t *key = pm_policy_key(ov->key);
        if (!key || strcmp(ov->node, node) != 0)
            continue;
        /* Overrides were validated when stored; a bad one keeps the
         * cluster value rather than half-applying. */
        pm_value_t *v =
            pm_value_parse(ov->value, strlen(ov->value), 0, ignored);
        if (v)
            pm_policy_apply(p, key, PM__EDIT__OP__ASSIGN, v, NULL, NULL, NULL,
                            ignored);
        pm_value_destroy(&v);
    }
    for (size_t i = 0; i < p->n_overrides; i++)
        pm__node_override__free_unpacked(p->overrides[i], NULL);
    free(p->overrides);
    p->overrides = NULL;
    p->n_overrides = 0;
    pm_diag_destroy(&ignored);
    return p;
}
