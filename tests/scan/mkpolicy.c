/* mkpolicy - tests only: mirror a policy file into a store as the agent
 * does (pm_store_mirror), so privmta-milter can read it.
 *
 * usage: mkpolicy STORE_DIR REVISION POLICY_FILE
 * Exit 0 on success; 1 with the policy problems or the store error. */
#include "pm_diag.h"
#include "pm_policy.h"
#include "pm_store.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

int
main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: mkpolicy STORE_DIR REVISION POLICY_FILE\n");
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
    pm_store_t *store = NULL;
    int rc = pm_store_open(argv[1], 0, 64u << 20, &store);
    if (rc == PM_OK)
        rc = pm_store_mirror(store, &rev);
    pm_store_close(&store);
    pm_policy_free(&policy);
    if (rc != PM_OK) {
        fprintf(stderr, "mkpolicy: %s: %s\n", argv[1], pm_strerror(rc));
        return 1;
    }
    return 0;
}
