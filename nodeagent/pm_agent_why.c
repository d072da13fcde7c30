/* pm_agent_why.c - the node's side of privmta-ctl why: the filter's
 * decision records (scan/pm_declog.h) that match the controller's query,
 * read from the milter's status directory the safe way (the milter wrote
 * them and is assumed hostile: pm_declog_query checks every record), and
 * Postfix's own refusals the agent keeps (pm_pf_rejects), sent back in one
 * WHY_ANSWER report trimmed to fit PM_WIRE_REPORT_MAX. */
#include "pm_agent_private.h"

#include "pm_declog.h"
#include "pm_mem.h"
#include "pm_wire.h"

#include <libgen.h>
#include <string.h>

/* What one answer may hold: well under PM_WIRE_REPORT_MAX, the rest for
 * framing and field overhead. */
#define S_ANSWER_BYTES (PM_WIRE_REPORT_MAX / 2)

typedef struct {
    Pm__WhyRecord **records;
    size_t n;
    size_t bytes;
    bool full;
} s_acc_t;

static char *
s_str(const json_t *o, const char *key)
{
    const char *v = json_string_value(json_object_get(o, key));
    return pm_strdup(v ? v : "");
}

static void
s_take(const json_t *rec, void *arg)
{
    s_acc_t *acc = arg;
    if (acc->full || acc->n == PM_WIRE_WHY_MAX)
        return;
    /* its size on the wire, near enough: the texts (each capped by
     * pm_declog) and a little per field; no second encoding */
    size_t size = 64;
    const char *k;
    const json_t *v;
    json_object_foreach((json_t *)rec, k, v) size +=
        json_is_string(v) ? json_string_length(v) + 8 : 16;
    const json_t *rcpts = json_object_get(rec, "rcpt");
    for (size_t i = 0; i < json_array_size(rcpts); i++)
        size += json_string_length(json_array_get(rcpts, i)) + 8;
    if (acc->bytes + size > S_ANSWER_BYTES) {
        acc->full = true; /* the newest came first: the older ones go */
        return;
    }
    acc->bytes += size;
    Pm__WhyRecord *r = pm_malloc(sizeof *r);
    pm__why_record__init(r);
    r->node = pm_strdup("");
    r->time = (int64_t)json_integer_value(json_object_get(rec, "t"));
    r->queue_id = s_str(rec, "qid");
    r->message_id = s_str(rec, "msgid");
    r->sender = s_str(rec, "from");
    r->verdict = s_str(rec, "verdict");
    r->reply = s_str(rec, "reply");
    r->key = s_str(rec, "key");
    r->evidence = s_str(rec, "evidence");
    r->revision = (uint64_t)json_integer_value(json_object_get(rec, "rev"));
    r->n_rcpts = json_array_size(rcpts);
    r->rcpts = pm_calloc(r->n_rcpts + 1, sizeof *r->rcpts);
    for (size_t i = 0; i < r->n_rcpts; i++)
        r->rcpts[i] =
            pm_strdup(json_string_value(json_array_get(rcpts, i)) ?: "");
    acc->records[acc->n++] = r;
}

/* The milter's status directory: where its status.json is. */
static char *
s_dir(const char *status_file)
{
    char *copy = pm_strdup(status_file);
    char *dir = pm_strdup(dirname(copy));
    free(copy);
    return dir;
}

/* Q's records in DIR into ACC; NULL, or why some could not be read
 * (caller frees). */
static char *
s_query(const char *dir, const Pm__WhyQuery *q, s_acc_t *acc)
{
    pm_declog_query_t dq = {.queue_id = *q->queue_id ? q->queue_id : NULL,
                            .message_id = *q->message_id ? q->message_id : NULL,
                            .sender = *q->sender ? q->sender : NULL,
                            .since = q->since,
                            .max = q->max};
    size_t skipped = 0;
    char *why = NULL;
    if (pm_declog_query(dir, PM_DECLOG_BYTES_MAX, &dq, s_take, acc, &skipped,
                        &why) != PM_OK)
        return why;
    free(why);
    return skipped ? pm_asprintf("%zu malformed records in %s skipped", skipped,
                                 dir)
                   : NULL;
}

/* The filter's records, then Postfix's own refusals (pm_pf_rejects): the
 * controller sorts them by time. */
void
pm_agent_why(pm_agent_state_t *self, const Pm__WhyQuery *q)
{
    Pm__AgentReport rep = PM__AGENT_REPORT__INIT;
    rep.kind = PM__AGENT_REPORT__KIND__WHY_ANSWER;
    rep.applied_rev = self->applied;
    rep.why_id = q->id;
    s_acc_t acc = {.records = pm_calloc(PM_WIRE_WHY_MAX, sizeof *acc.records)};
    char *why = NULL, *dir = NULL;
    bool filter = self->cfg.milter_status && *self->cfg.milter_status;
    if (filter) {
        dir = s_dir(self->cfg.milter_status);
        why = s_query(dir, q, &acc);
    } else if (!self->pf_rejects_dir) {
        why = pm_strdup("this node has no filter (milter_status is not set)");
    }
    if (self->pf_rejects_dir) {
        char *more = s_query(self->pf_rejects_dir, q, &acc);
        if (more && !why)
            why = more;
        else
            free(more);
    }
    rep.why = acc.records;
    rep.n_why = acc.n;
    rep.why_error = why ? why : (char *)"";
    pm_agent_send_report(self, &rep);
    for (size_t i = 0; i < acc.n; i++)
        pm__why_record__free_unpacked(acc.records[i], NULL);
    free(acc.records);
    free(why);
    free(dir);
}
