/* testpolicy.h - policy edits for the Postfix backend's tests. */
#ifndef PM_TESTPOLICY_H
#define PM_TESTPOLICY_H

#include "privmta.pb-c.h"

/* Edits *POLICY with `policy set` syntax KEY=VALUE (NODE: a per-node
 * override, else NULL) and asserts (Criterion) that privmta accepts it. */
void testpolicy_set(Pm__Policy **policy, const char *node, const char *key,
                    const char *value);

#endif
