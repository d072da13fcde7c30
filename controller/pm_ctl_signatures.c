/* pm_ctl_signatures.c - privmta-ctl signatures check: the nodes holding
 * the cluster's fetch duties check the signature mirrors now, not at their
 * next planned check (antivirus.update_frequency). For an admin who just
 * published on a private mirror (cvdupdate, then this), or who wants an
 * outbreak's signatures without waiting; a mirror cooling down is still
 * left alone.
 *
 * Prints who checks which database and the mirrors nobody asks yet, as
 * `nodes --cluster` does (--json: the same object); the versions then show
 * in `nodes` as they spread; a holder the order may not reach (stale,
 * not connected) is named in a warning (stderr). Exit 1 when nobody can
 * check: no duty (no database, antivirus off, no node up), every mirror
 * cooling down, or no duty holder connected. */
#include "pm_ctl.h"
#include "pm_ctl_json.h"
#include "pm_ctl_show.h"

#include <stdio.h>
#include <string.h>

int
pm_ctl_signatures_check(pm_ctl_t *ctl, int argc, char **argv)
{
    bool json = argc == 2 && strcmp(argv[1], "--json") == 0;
    if (argc > 1 && !json) {
        fprintf(stderr, "usage: privmta-ctl signatures check [--json]\n");
        return PM_EXIT_USAGE;
    }
    Pm__Response *r = NULL;
    int rc = pm_ctl_call_op(ctl, PM__REQUEST__OP__SIGNATURES_CHECK, &r);
    if (rc != PM_EXIT_OK)
        return rc;
    if (json) {
        pm_ctl_print_json(pm_ctl_json_cluster(r));
    } else {
        printf("the fetch duties check the mirrors now:\n");
        pm_ctl_cluster_text(r);
        printf("(privmta-ctl nodes shows each node's versions as they "
               "arrive)\n");
    }
    pm__response__free_unpacked(r, NULL);
    return PM_EXIT_OK;
}
