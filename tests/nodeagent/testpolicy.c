/* testpolicy.c - see testpolicy.h. */
#include "testpolicy.h"
#include "pm_diag.h"
#include "pm_policy.h"

#include <criterion/criterion.h>
#include <stdio.h>

void
testpolicy_set(Pm__Policy **policy, const char *node, const char *key,
               const char *value)
{
    Pm__Edit e = PM__EDIT__INIT;
    Pm__Edit *ep = &e;
    e.key = (char *)key;
    e.value = (char *)value;
    e.op = PM__EDIT__OP__ASSIGN;
    pm_diag_t *diag = pm_diag_new("test");
    size_t problems = pm_policy_edit(policy, node, &ep, 1, diag);
    char first[512] = "";
    if (problems)
        snprintf(first, sizeof first, "%s", pm_diag_line(diag, 0));
    pm_diag_destroy(&diag);
    cr_assert_eq(problems, 0, "privmta refused %s=%s: %s", key, value, first);
}
