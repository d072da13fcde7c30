/* fuzz_scanstatus.c - status.json as the agent (root) reads it from the
 * milter (unprivileged, parses hostile mail): pm_scanstatus_fill_data.
 *
 * Input: one byte that picks the node's policy (bit 0 antivirus, bit 1
 * antispam, bits 2-3 the number of DKIM domains, bits 4-7 the applied
 * revision), then the file's text. Whatever the file says, the agent's
 * report must stay one the controller accepts: pm_wire unpacks the filled
 * NodeStatus (UTF-8, string sizes), or the node's whole status is lost. */
#include "pm_error.h"
#include "pm_fuzz.h"
#include "pm_mem.h"
#include "pm_policy.h"
#include "pm_scanstatus.h"
#include "pm_wire.h"

#include <stdlib.h>
#include <string.h>

static Pm__Policy *
s_policy(uint8_t bits)
{
    Pm__Policy *p = pm_policy_new();
    p->antivirus_enabled = bits & 1;
    p->antispam_enabled = (bits >> 1) & 1;
    size_t n = (bits >> 2) & 3;
    p->n_dkim_domains = n;
    p->dkim_domains = pm_calloc(n + 1, sizeof *p->dkim_domains);
    for (size_t i = 0; i < n; i++) {
        Pm__DkimDomain *d = pm_malloc(sizeof *d);
        pm__dkim_domain__init(d);
        d->domain = pm_asprintf("d%zu.example", i);
        d->selector = pm_strdup("s1");
        d->key = pm_strdup("k");
        p->dkim_domains[i] = d;
    }
    return p;
}

/* The 16 policies bits 0-3 pick, built once: pm_policy_new reads every
 * default through the policy parser, which would cost more than the
 * status file itself. */
static Pm__Policy *s_policies[16];

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    for (uint8_t i = 0; i < 16; i++)
        s_policies[i] = s_policy(i);
    return 0;
}

int
pm_fuzz_one(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    const Pm__Policy *policy = s_policies[data[0] & 15];
    uint64_t applied = data[0] >> 4;
    char *text = pm_malloc(size); /* own block: ASan sees reads past it */
    memcpy(text, data + 1, size - 1);
    Pm__NodeStatus *st = pm_malloc(sizeof *st);
    pm__node_status__init(st);
    st->name = pm_strdup("node1");
    pm_scanstatus_fill_data(text, size - 1, policy, applied, st);
    free(text);

    Pm__ServiceStatus *all[] = {st->antivirus, st->antispam, st->dkim};
    for (size_t i = 0; i < 3; i++)
        PM_FUZZ_REQUIRE(all[i] && all[i]->detail && *all[i]->detail);
    size_t len = 0;
    uint8_t *buf = pm_wire_pack(&st->base, &len);
    Pm__NodeStatus *back = NULL;
    char *why = NULL;
    if (pm_wire_unpack_node_status(buf, len, &back, &why) != PM_OK)
        pm_fuzz_fail(__FILE__, __LINE__, why);
    pm__node_status__free_unpacked(back, NULL);
    free(buf);
    pm__node_status__free_unpacked(st, NULL);
    return 0;
}
