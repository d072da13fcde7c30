/* pm_backend_noop.c - a backend that enforces nothing.
 *
 * For the propagation benchmark: apply always succeeds at once and status
 * leaves every field as the agent core set it, so what is measured is the
 * distribution of revisions, not Postfix.
 */
#include "pm_backend.h"
#include "pm_mem.h"

#include <stdlib.h>

static int
s_apply(pm_backend_t *self, const Pm__Policy *effective, uint64_t rev,
        char **why)
{
    (void)self;
    (void)effective;
    (void)rev;
    (void)why;
    return 0;
}

static void
s_status(pm_backend_t *self, Pm__NodeStatus *status)
{
    (void)self;
    (void)status;
}

static void
s_destroy(pm_backend_t **self_p)
{
    PM_FREE(self_p);
}

pm_backend_t *
pm_backend_noop_new(void)
{
    pm_backend_t *self = pm_calloc(1, sizeof *self);
    self->name = "noop";
    self->apply = s_apply;
    self->status = s_status;
    self->destroy = s_destroy;
    return self;
}
