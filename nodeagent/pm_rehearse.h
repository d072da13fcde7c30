/* pm_rehearse.h - privmta-ctl policy test on this node: messages through
 * the node's own Postfix and privmta-milter under a candidate policy (and
 * under the head), nothing delivered, nothing live touched.
 *
 * A scratch instance, made for the test in a fresh directory under DIR
 * (root-owned, removed afterwards with rm -rf, which never follows a link
 * a less-privileged user planted):
 *     run.XXXXXX/etc/main.cf   the live main.cf, then: the policy's
 *                              parameters rendered (pm_pf_render, the
 *                              same path an apply takes), its own queue,
 *                              data and maillog, every transport discard:
 *                              (default, local, relay, virtual; no
 *                              transport_maps, content_filter, bcc maps or
 *                              mailbox command), no notices to the
 *                              postmaster (notify_classes empty), and
 *                              XCLIENT allowed from 127.0.0.1 only;
 *     run.XXXXXX/etc/master.cf Postfix's template (no listener of the live
 *                              instance's), one smtpd on 127.0.0.1:PORT
 *                              with the filter, and one without it on
 *                              127.0.0.1:NPORT where the filter's
 *                              notifications go (and are discarded);
 *     queue/, data/, maillog   the instance's own;
 *     handoff/policy.pb        the policy tested, root:<milter group> 0640
 *                              (as pm_handoff: the filter only reads it);
 *     handoff/dkim/<id>        the DKIM keys the controller sent with the
 *                              test (the candidate's and the head's, a key
 *                              not yet on the node included), the same;
 *     status/                  the scratch filter's status and decision
 *                              log (written by the milter user, read here
 *                              the strict way, as the live ones are);
 *     milter.sock              the scratch privmta-milter: MILTER_PROGRAM
 *                              with the node's MILTER_CONFIG (its
 *                              signature databases, spamd, DKIM keys, user)
 *                              and only the socket, policy file, status
 *                              directory and notification address changed.
 * The instance is started (postfix -c ... start), the filter waited for
 * (its status shows the revision, and a new engine when the custom
 * signatures differ), then every message goes to every recipient
 * (pm_rehearse_smtp: swaks with XCLIENT). The answer at the end of DATA is
 * the filter's: its decision record names the key, the evidence and what
 * it did with an accepted message (tagged, discarded). A refusal before it
 * is Postfix's, named by its wording. Then the next policy: handed to the
 * filter, rendered into main.cf, postfix reload. At the end: postfix stop,
 * the filter stopped, the directory removed; also on every error.
 */
#ifndef PM_REHEARSE_H
#define PM_REHEARSE_H

#include "privmta.pb-c.h"

#include <stdbool.h>
#include <sys/types.h>

#define PM_REHEARSE_DIR "/var/lib/privmta-agent/rehearsal"
#define PM_REHEARSE_MILTER "/usr/sbin/privmta-milter"
#define PM_REHEARSE_MILTER_CONFIG "/etc/privmta/milter.conf"
/* How long the scratch filter may take to be ready: a full ClamAV database
 * takes 20-60 s to load. Under the controller's PM_CTLD_TEST_MS. */
#define PM_REHEARSE_READY_MS 150000

typedef struct {
    const char *postfix_dir;    /* the live instance's main.cf is the base */
    const char *dir;            /* NULL: PM_REHEARSE_DIR */
    const char *milter_program; /* NULL: PM_REHEARSE_MILTER */
    const char *milter_config;  /* NULL: PM_REHEARSE_MILTER_CONFIG */
    gid_t milter_gid;           /* reads handoff/ */
    const char *swaks;          /* NULL: pm_rehearse_smtp's default */
    const char *node;           /* the node's name: its overrides apply */
    int ready_ms;               /* 0: PM_REHEARSE_READY_MS */
    const Pm__Secret *const *secrets; /* the DKIM keys the policies name */
    size_t n_secrets;
    /* Asked between steps, messages and waits (NULL: never): true stops
     * the test, the scratch instance torn down (the agent is stopping). */
    bool (*cancelled)(void *arg);
    void *cancel_arg;
} pm_rehearse_config_t;

/* One policy a test runs under. */
typedef struct {
    const Pm__Policy *policy; /* the cluster policy, overrides included */
    uint64_t rev;             /* its revision; 0 for an unstored one */
    const char *label;        /* "candidate" or "head" */
} pm_rehearse_policy_t;

/* Runs every message of TEST to every recipient under each of POLICIES
 * (N of them, in order). PM_OK with *OUT (N_OUT results, message by
 * message, recipient by recipient, policy by policy; caller frees each
 * with pm__test_result__free_unpacked and the array); an error with *why
 * ("the scratch Postfix did not start: ...", "cancelled") and nothing in
 * *OUT. */
int pm_rehearse_run(const pm_rehearse_config_t *cfg, const Pm__PolicyTest *test,
                    const pm_rehearse_policy_t *policies, size_t n,
                    Pm__TestResult ***out, size_t *n_out, char **why);

/* What a killed agent left in DIR (NULL: PM_REHEARSE_DIR), at its next
 * start: for each run.* directory, the scratch Postfix stopped, its filter
 * killed (the pid its status names, only when that process has
 * MILTER_GID, -1: any, and names the directory on its command line) and
 * the directory removed. Returns how many it swept. */
size_t pm_rehearse_sweep(const char *dir, gid_t milter_gid);

#endif
