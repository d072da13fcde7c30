/* mkpolicy - tests and benchmarks only: hand a policy file over to
 * privmta-milter as the agent does (pm_handoff_write), without an agent.
 *
 * usage: mkpolicy HANDOFF_FILE REVISION POLICY_FILE [GROUP_ID]
 * Exit 0 on success; 1 with the policy problems or the write error. */
#include "pm_diag.h"
#include "pm_policy.h"
#include "pm_error.h"
#include "pm_handoff.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

int
main(int argc, char **argv)
{
    if (argc != 4 && argc != 5) {
        fprintf(stderr, "usage: mkpolicy HANDOFF_FILE REVISION POLICY_FILE "
                        "[GROUP_ID]\n");
        return 2;
    }
    pm_diag_t *diag = pm_diag_new(argv[3]);
    Pm__Policy *policy = pm_policy_load_file(argv[3], diag);
    if (!policy) {
        pm_diag_print(diag, stderr);
        pm_diag_destroy(&diag);
        return 1;
    }
    pm_diag_destroy(&diag);
    char digest[65];
    pm_policy_digest(policy, digest);
    Pm__Revision rev = PM__REVISION__INIT;
    rev.number = strtoull(argv[2], NULL, 10);
    rev.author = "mkpolicy";
    rev.time = (int64_t)time(NULL);
    rev.message = "";
    rev.digest = digest;
    rev.policy = policy;
    char *why = NULL;
    gid_t gid = argc == 5 ? (gid_t)strtoul(argv[4], NULL, 10) : (gid_t)-1;
    int rc = pm_handoff_write(argv[1], &rev, gid, &why);
    pm_policy_free(&policy);
    if (rc != PM_OK) {
        fprintf(stderr, "mkpolicy: %s\n", why);
        free(why);
        return 1;
    }
    return 0;
}
