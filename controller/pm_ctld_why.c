/* pm_ctld_why.c - privmta-ctl why: every node's filter decisions that
 * match a query, merged.
 *
 * The one request the controller does not answer at once: it sends the
 * query to every node it serves (pm_fleet_why) and answers when all of
 * them did, or PM_CTLD_WHY_MS after asking, whichever comes first, naming
 * the nodes that gave nothing (not connected, silent, or whose record
 * could not be read). The client's ROUTER identity is kept meanwhile; the
 * loop goes on serving everything else. At most PM_CTLD_WHY_PENDING asks
 * wait at once, and what an answer may add is bounded (PM_WIRE_WHY_MAX
 * records a node, checked by pm_wire), so a flood of asks or a hostile
 * agent costs little; the merged answer holds the newest records that fit
 * one answer and says how many older ones it left out.
 */
#include "pm_ctld_private.h"

#include "pm_conf.h"
#include "pm_log.h"
#include "pm_mem.h"
#include "pm_text.h"
#include "pm_wire.h"

#include <string.h>

#define PM_CTLD_WHY_MS 3000
#define PM_CTLD_WHY_PENDING 16
/* Bytes of records in one answer: half of what a message may be, so that
 * the answer around them always fits */
#define S_WHY_BYTES (PM_WIRE_MESSAGE_MAX / 2)

typedef struct {
    uint64_t id;
    zframe_t *route; /* the client's identity on the ROUTER */
    int64_t deadline;
    char **asked; /* nodes asked, NULL once they answered */
    size_t n_asked, n_waiting;
    char **unserved;
    Pm__WhyRecord **records;
    size_t n_records;
    char **errors; /* "node: why its record could not be read" */
    size_t n_errors;
} s_ask_t;

struct pm_ctld_why_t {
    s_ask_t asks[PM_CTLD_WHY_PENDING];
    size_t n;
    uint64_t next_id;
};

static void
s_ask_free(s_ask_t *a)
{
    zframe_destroy(&a->route);
    for (size_t i = 0; i < a->n_asked; i++)
        free(a->asked[i]);
    free(a->asked);
    pm_conf_list_free(&a->unserved);
    for (size_t i = 0; i < a->n_records; i++)
        pm__why_record__free_unpacked(a->records[i], NULL);
    free(a->records);
    for (size_t i = 0; i < a->n_errors; i++)
        free(a->errors[i]);
    free(a->errors);
    memset(a, 0, sizeof *a);
}

static int
s_newest_first(const void *a, const void *b)
{
    const Pm__WhyRecord *x = *(Pm__WhyRecord *const *)a;
    const Pm__WhyRecord *y = *(Pm__WhyRecord *const *)b;
    return x->time < y->time ? 1 : x->time > y->time ? -1 : 0;
}

/* How many of RECORDS (N, newest first) one answer holds: each node may
 * send PM_WIRE_WHY_MAX, so 41 nodes could pass the client's limit of
 * items in a list, or a few with long records its limit of bytes, and the
 * admin would get a protocol error instead of the newest records. */
static size_t
s_records_that_fit(Pm__WhyRecord **records, size_t n)
{
    size_t keep = 0, bytes = 0;
    while (keep < n && keep < PM_WIRE_LIST_MAX) {
        bytes += pm__why_record__get_packed_size(records[keep]);
        if (bytes > S_WHY_BYTES)
            break;
        keep++;
    }
    return keep;
}

/* Answers ask I and forgets it. */
static void
s_finish(pm_ctld_t *self, size_t i)
{
    struct pm_ctld_why_t *w = self->why;
    s_ask_t *a = &w->asks[i];
    Pm__Response resp = PM__RESPONSE__INIT;
    if (a->n_records) /* no node answered: no array (qsort wants one) */
        qsort(a->records, a->n_records, sizeof *a->records, s_newest_first);
    resp.why = a->records;
    resp.n_why = s_records_that_fit(a->records, a->n_records);
    size_t n_missing = 0;
    for (char **u = a->unserved; u && *u; u++)
        n_missing++;
    char **missing =
        pm_calloc(n_missing + a->n_waiting + a->n_errors + 2, sizeof *missing);
    size_t m = 0;
    if (resp.n_why < a->n_records)
        missing[m++] = pm_asprintf("%zu older records left out: one answer "
                                   "holds %zu (narrow it with --since or "
                                   "--max)",
                                   a->n_records - resp.n_why, resp.n_why);
    for (char **u = a->unserved; u && *u; u++)
        missing[m++] = pm_asprintf("%s: not connected", *u);
    for (size_t k = 0; k < a->n_asked; k++)
        if (a->asked[k])
            missing[m++] = pm_asprintf("%s: no answer within %d ms",
                                       a->asked[k], PM_CTLD_WHY_MS);
    for (size_t k = 0; k < a->n_errors; k++)
        missing[m++] = pm_strdup(a->errors[k]);
    resp.why_missing = missing;
    resp.n_why_missing = m;
    pm_store_head(self->store, &resp.head);
    pm_ctld_send(self, &a->route, &resp);
    for (size_t k = 0; k < m; k++)
        free(missing[k]);
    free(missing);
    s_ask_free(a);
    w->asks[i] = w->asks[--w->n];
    memset(&w->asks[w->n], 0, sizeof w->asks[0]);
}

/* A node's answer (pm_fleet_on_why). */
static void
s_on_answer(const char *node, Pm__AgentReport *rep, void *arg)
{
    pm_ctld_t *self = arg;
    struct pm_ctld_why_t *w = self->why;
    for (size_t i = 0; i < w->n; i++) {
        s_ask_t *a = &w->asks[i];
        if (a->id != rep->why_id)
            continue;
        size_t k = 0;
        while (k < a->n_asked && (!a->asked[k] || strcmp(a->asked[k], node)))
            k++;
        if (k == a->n_asked)
            return; /* answered already, or never asked */
        PM_FREE(&a->asked[k]);
        a->n_waiting--;
        a->records = pm_realloc(a->records, (a->n_records + rep->n_why + 1) *
                                                sizeof *a->records);
        for (size_t r = 0; r < rep->n_why; r++) {
            /* the enrolled name, not what the agent wrote */
            pm_wire_set_string(&rep->why[r]->node, node);
            a->records[a->n_records++] = rep->why[r];
        }
        rep->n_why = 0; /* taken */
        if (*rep->why_error) {
            /* cut on a character boundary: a cut through one would make
             * the client refuse the whole answer (not UTF-8) */
            char *error = pm_text_escape(rep->why_error, 200);
            a->errors =
                pm_realloc(a->errors, (a->n_errors + 1) * sizeof *a->errors);
            a->errors[a->n_errors++] = pm_asprintf("%s: %s", node, error);
            free(error);
        }
        if (a->n_waiting == 0)
            s_finish(self, i);
        return;
    }
}

bool
pm_ctld_why_start(pm_ctld_t *self, zframe_t **route, const Pm__Request *req)
{
    if (req->op != PM__REQUEST__OP__WHY || !self->fleet || self->standby)
        return false;
    if (!self->why) {
        self->why = pm_calloc(1, sizeof *self->why);
        pm_fleet_on_why(self->fleet, s_on_answer, self);
    }
    struct pm_ctld_why_t *w = self->why;
    if (w->n == PM_CTLD_WHY_PENDING)
        return false; /* pm_ctld_handle answers "busy" */
    s_ask_t *a = &w->asks[w->n++];
    a->id = ++w->next_id;
    a->route = *route;
    *route = NULL;
    a->deadline = zclock_mono() + PM_CTLD_WHY_MS;
    Pm__WhyQuery q = *req->why;
    q.id = a->id;
    a->n_asked = pm_fleet_why(self->fleet, &q, &a->asked, &a->unserved);
    a->n_waiting = a->n_asked;
    if (a->n_asked == 0)
        s_finish(self, w->n - 1);
    return true;
}

int
pm_ctld_why_tick(pm_ctld_t *self, int wait)
{
    struct pm_ctld_why_t *w = self->why;
    int64_t now = zclock_mono();
    for (size_t i = w ? w->n : 0; i-- > 0;) {
        int64_t left = w->asks[i].deadline - now;
        if (left <= 0)
            s_finish(self, i);
        else if (left < wait)
            wait = (int)left;
    }
    return wait;
}

void
pm_ctld_why_busy(pm_ctld_reply_t *r)
{
    pm_ctld_fail(r, PM__RESPONSE__STATUS__CONFLICT,
                 "%d why requests are waiting for nodes already; try "
                 "again in a few seconds",
                 PM_CTLD_WHY_PENDING);
}

void
pm_ctld_why_free(pm_ctld_t *self)
{
    struct pm_ctld_why_t *w = self->why;
    for (size_t i = 0; w && i < w->n; i++)
        s_ask_free(&w->asks[i]);
    PM_FREE(&self->why);
}
