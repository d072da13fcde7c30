/* pm_ctld_signatures.c - privmta-ctl signatures check: the holders of the
 * fetch duties check the mirrors now rather than at their next planned
 * check (an admin who just published on a private mirror, or wants an
 * outbreak's signatures at once). Answered like NODES --cluster: who
 * fetches what, and the mirrors nobody asks yet; refused, with the one
 * reason that holds, when nobody can check. */
#include "pm_ctld_private.h"

#include "pm_conf.h"
#include "pm_error.h"
#include "pm_mem.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Why MEMBERS names no duty, from the head policy P (NULL: none yet). */
static const char *
s_no_duty(const Pm__Policy *p)
{
    if (!p)
        return "no node holds a fetch duty: no policy has been pushed";
    if (!p->antivirus_enabled)
        return "no node holds a fetch duty: antivirus.enabled is false";
    if (!p->n_antivirus_databases)
        return "no node holds a fetch duty: antivirus.databases is empty";
    return "no node holds a fetch duty: no node is up (privmta-ctl nodes)";
}

/* When every mirror of P (at least one) is cooling down (MEMBERS'
 * cool-downs), why no node may be asked to check, with the first
 * deadline; else NULL. Caller frees. */
static char *
s_all_cooling(const Pm__Policy *p, const Pm__Publication *members)
{
    int64_t first = INT64_MAX;
    for (size_t i = 0; i < p->n_antivirus_mirrors; i++) {
        int64_t until = 0;
        for (size_t j = 0; j < members->n_cooldowns; j++)
            if (strcmp(members->cooldowns[j]->mirror,
                       p->antivirus_mirrors[i]) == 0)
                until = members->cooldowns[j]->until;
        if (!until)
            return NULL; /* this one may be asked */
        if (until < first)
            first = until;
    }
    long long in = (long long)(first - time(NULL));
    return pm_asprintf("every mirror of the policy is cooling down (the "
                       "first may be asked again in %lld s; privmta-ctl "
                       "nodes --cluster shows each): no node asks one "
                       "before its deadline",
                       in > 0 ? in : 0);
}

/* The duty holders in R's members check now. Those the order may not
 * reach are named (a warning: their duties move to a live node once they
 * are down, and that node checks then); none reached, R fails. */
static void
s_check(pm_ctld_t *self, pm_ctld_reply_t *r)
{
    char **unheard = NULL;
    size_t told = pm_fleet_check(self->fleet, r->members, &unheard);
    if (told) {
        for (size_t i = 0; unheard[i]; i++)
            pm_ctld_warn(r,
                         "%s holds a fetch duty but was not heard from "
                         "lately: the order may not reach it (its duties "
                         "move to a live node once it is down; privmta-ctl "
                         "nodes)",
                         unheard[i]);
    } else {
        char *names = pm_strdup("");
        for (size_t i = 0; unheard[i]; i++) {
            char *more =
                pm_asprintf("%s%s%s", names, i ? ", " : "", unheard[i]);
            free(names);
            names = more;
        }
        pm_ctld_fail(r, PM__RESPONSE__STATUS__NOT_FOUND,
                     "no node holding a fetch duty is connected now (%s; "
                     "privmta-ctl nodes)",
                     names);
        free(names);
    }
    pm_conf_list_free(&unheard);
}

void
pm_ctld_signatures_check(pm_ctld_t *self, const Pm__Request *req,
                         const char *author, pm_ctld_reply_t *r)
{
    (void)req;
    (void)author;
    if (!self->fleet)
        return pm_ctld_fail(r, PM__RESPONSE__STATUS__BAD_REQUEST,
                            "this controller serves no agents");
    Pm__Revision *head = NULL;
    int rc = pm_store_get(self->store, 0, &head);
    if (rc != PM_OK && rc != PM_ENOTFOUND)
        return pm_ctld_store_fail(r, rc, "reading the head revision");
    const Pm__Policy *p = head ? head->policy : NULL;
    r->members = pm_fleet_members(self->fleet);
    r->resp.duties = r->members->duties;
    r->resp.n_duties = r->members->n_duties;
    r->resp.cooldowns = r->members->cooldowns;
    r->resp.n_cooldowns = r->members->n_cooldowns;
    char *why = NULL;
    if (!r->members->n_duties || !p) {
        pm_ctld_fail(r, PM__RESPONSE__STATUS__NOT_FOUND, "%s", s_no_duty(p));
    } else if (!p->n_antivirus_mirrors) {
        pm_ctld_fail(r, PM__RESPONSE__STATUS__NOT_FOUND,
                     "antivirus.mirrors is empty: there is no mirror to "
                     "check");
    } else if ((why = s_all_cooling(p, r->members))) {
        pm_ctld_fail(r, PM__RESPONSE__STATUS__CONFLICT, "%s", why);
    } else {
        s_check(self, r);
    }
    free(why);
    if (head)
        pm__revision__free_unpacked(head, NULL);
}
