/* pm_agent_why.c - the node's side of privmta-ctl why: the filter's
 * decision records (scan/pm_declog.h) that match the controller's query,
 * read from the milter's status directory the safe way (the milter wrote
 * them and is assumed hostile: pm_declog_query checks every record's
 * shape; here a record naming a key the filter never decides by is
 * dropped, and no record's time is later than now), and
 * Postfix's own refusals the agent keeps (pm_pf_rejects), sent back in one
 * WHY_ANSWER report trimmed to fit PM_WIRE_REPORT_MAX. */
#include "pm_agent_private.h"

#include "pm_conf.h"
#include "pm_declog.h"
#include "pm_mem.h"
#include "pm_wire.h"

#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* What one answer may hold: well under PM_WIRE_REPORT_MAX, the rest for
 * framing and field overhead. */
#define S_ANSWER_BYTES (PM_WIRE_REPORT_MAX / 2)

typedef struct {
    Pm__WhyRecord **records;
    size_t n;
    size_t bytes;
    bool full;
    bool filter;   /* the filter's records: only its keys are believed */
    size_t forged; /* filter records naming another key, dropped */
    int64_t now;   /* a record's time is never later */
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
    const char *key = json_string_value(json_object_get(rec, "key"));
    if (acc->filter && !pm_declog_filter_key(key)) {
        acc->forged++; /* the filter never decides by it: not its record */
        return;
    }
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
    /* the writer's clock is this host's: a later time is a forged one,
     * made to sort first */
    int64_t t = (int64_t)json_integer_value(json_object_get(rec, "t"));
    r->time = t < acc->now ? t : acc->now;
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

/* The decision log's size, both files, as privmta-milter's configuration
 * file CONFIG (NULL: none known) sets it (decision_log_bytes_mb), else
 * the most it may keep: each file is read up to half of it, so a smaller
 * log configured means less read on the agent's thread. Options given on
 * the milter's command line are not seen here. */
static size_t
s_filter_log_bytes(const char *config)
{
    pm_param_t table[] = {{"decision_log_bytes_mb", "64", NULL, NULL},
                          {NULL, NULL, NULL, NULL}};
    pm_conf_defaults(table);
    if (config && *config) {
        pm_diag_t *ignored = pm_diag_new(config); /* its other settings */
        pm_conf_file(table, config, false, ignored);
        pm_diag_destroy(&ignored);
    }
    char *end = NULL;
    const char *text = pm_conf_get(table, "decision_log_bytes_mb");
    long mb = strtol(text, &end, 10);
    bool ok = end != text && !*end && mb >= 1 &&
              mb <= (long)(PM_DECLOG_BYTES_MAX >> 20);
    pm_conf_free(table);
    return ok ? (size_t)mb << 20 : PM_DECLOG_BYTES_MAX;
}

/* Q's records in DIR (whose log keeps MAX_BYTES) into ACC; NULL, or why
 * some could not be read (caller frees). */
static char *
s_query(const char *dir, size_t max_bytes, const Pm__WhyQuery *q, s_acc_t *acc)
{
    pm_declog_query_t dq = {.queue_id = *q->queue_id ? q->queue_id : NULL,
                            .message_id = *q->message_id ? q->message_id : NULL,
                            .sender = *q->sender ? q->sender : NULL,
                            .since = q->since,
                            .max = q->max};
    size_t skipped = 0;
    char *why = NULL;
    acc->forged = 0;
    if (pm_declog_query(dir, max_bytes, &dq, s_take, acc, &skipped, &why) !=
        PM_OK)
        return why;
    free(why);
    skipped += acc->forged;
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
    s_acc_t acc = {.records = pm_calloc(PM_WIRE_WHY_MAX, sizeof *acc.records),
                   .now = (int64_t)time(NULL)};
    char *why = NULL, *dir = NULL;
    bool filter = self->cfg.milter_status && *self->cfg.milter_status;
    if (filter) {
        dir = s_dir(self->cfg.milter_status);
        acc.filter = true;
        why =
            s_query(dir, s_filter_log_bytes(self->cfg.milter_config), q, &acc);
        acc.filter = false;
    } else if (!self->pf_rejects_dir) {
        why = pm_strdup("this node has no filter (milter_status is not set)");
    }
    if (self->pf_rejects_dir) {
        /* the agent's own records of Postfix's refusals: Postfix's keys */
        char *more =
            s_query(self->pf_rejects_dir, PM_DECLOG_BYTES_MAX, q, &acc);
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
