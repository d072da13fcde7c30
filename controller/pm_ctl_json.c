/* pm_ctl_json.c - the controller's answers as JSON (see pm_ctl_json.h). */
#include "pm_ctl_json.h"

#include "pm_policy.h"
#include "pm_rollout.h"

#include <string.h>

const char *
pm_ctl_service_state(const Pm__ServiceStatus *s)
{
    static const char *const names[] = {"unknown", "ok", "disabled", "degraded",
                                        "down"};
    if (!s || (unsigned)s->state >= sizeof names / sizeof names[0])
        return "unknown";
    return names[s->state];
}

static json_t *
s_service_json(const Pm__ServiceStatus *s)
{
    return json_pack("{s:s, s:s}", "state", pm_ctl_service_state(s), "detail",
                     s && s->detail ? s->detail : "");
}

static json_t *
s_node_base_json(const Pm__NodeStatus *n, uint64_t head)
{
    return json_pack(
        "{s:s, s:s, s:I, s:I, s:I, s:s, s:s, s:b, s:o, s:o, s:o, s:o, s:o}",
        "name", n->name, "address", n->address, "applied_rev",
        (json_int_t)n->applied_rev, "lag",
        (json_int_t)(head > n->applied_rev ? head - n->applied_rev : 0),
        "last_seen", (json_int_t)n->last_seen, "liveness", n->liveness,
        "last_error", n->apply_error, "postfix_running", n->postfix_running,
        "antispam", s_service_json(n->antispam), "antivirus",
        s_service_json(n->antivirus), "auth", s_service_json(n->auth), "dkim",
        s_service_json(n->dkim), "relay_overrides",
        pm_policy_json_strings(n->relay_overrides, n->n_relay_overrides));
}

static json_t *
s_databases_json(Pm__SignatureDb *const *dbs, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(
            a, json_pack(
                   "{s:s, s:I, s:I, s:I, s:I, s:s, s:I, s:I, s:s}", "name",
                   dbs[i]->name, "version", (json_int_t)dbs[i]->version,
                   "loaded_version", (json_int_t)dbs[i]->loaded_version, "sigs",
                   (json_int_t)dbs[i]->sigs, "built", (json_int_t)dbs[i]->built,
                   "source", dbs[i]->source, "last_check",
                   (json_int_t)dbs[i]->last_check, "next_check",
                   (json_int_t)dbs[i]->next_check, "error", dbs[i]->error));
    return a;
}

json_t *
pm_ctl_json_cooldowns(Pm__Cooldown *const *cds, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(
            a, json_pack("{s:s, s:i, s:I, s:s}", "mirror", cds[i]->mirror,
                         "http_status", (int)cds[i]->http_status, "until",
                         (json_int_t)cds[i]->until, "node", cds[i]->node));
    return a;
}

static json_t *
s_distrusted_json(Pm__Distrust *const *ds, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(
            a, json_pack("{s:s, s:I, s:s}", "peer", ds[i]->peer, "until",
                         (json_int_t)ds[i]->until, "reason", ds[i]->reason));
    return a;
}

static json_t *
s_duties_json(Pm__Duty *const *duties, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(a, json_pack("{s:s, s:s}", "database",
                                           duties[i]->database, "node",
                                           duties[i]->node));
    return a;
}

/* The databases NODE fetches for the cluster, by name. */
static json_t *
s_node_duties_json(const Pm__Response *r, const char *node)
{
    json_t *a = json_array();
    for (size_t i = 0; i < r->n_duties; i++)
        if (strcmp(r->duties[i]->node, node) == 0)
            json_array_append_new(a, json_string(r->duties[i]->database));
    return a;
}

json_t *
pm_ctl_json_drift(const Pm__Drift *d)
{
    return json_pack("{s:s, s:s, s:s, s:I, s:b, s:s, s:I}", "parameter",
                     d->parameter, "applied", d->applied, "found", d->found,
                     "at", (json_int_t)d->at, "reverted", d->reverted, "error",
                     d->error, "revision", (json_int_t)d->revision);
}

static json_t *
s_drift_json(Pm__Drift *const *ds, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(a, pm_ctl_json_drift(ds[i]));
    return a;
}

/* The fields of NodeStatus as they are, plus "lag" and "duties". */
/* The filter's verdict counters, or null when the node sent none; keys
 * as the MessageCounts fields (every one a uint64). */
static json_t *
s_messages_json(const Pm__MessageCounts *c)
{
    if (!c)
        return json_null();
    const ProtobufCMessageDescriptor *d = &pm__message_counts__descriptor;
    json_t *o = json_object();
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *fd = &d->fields[i];
        if (fd->type != PROTOBUF_C_TYPE_UINT64)
            continue; /* a counter is a uint64, nothing else is one */
        uint64_t n = *(const uint64_t *)((const char *)c + fd->offset);
        json_object_set_new(o, fd->name, json_integer((json_int_t)n));
    }
    return o;
}

json_t *
pm_ctl_json_node(const Pm__NodeStatus *n, const Pm__Response *r)
{
    json_t *o = s_node_base_json(n, r->head);
    json_object_set_new(o, "peer_endpoint", json_string(n->peer_endpoint));
    json_object_set_new(o, "databases",
                        s_databases_json(n->databases, n->n_databases));
    json_object_set_new(o, "cooldowns",
                        pm_ctl_json_cooldowns(n->cooldowns, n->n_cooldowns));
    json_object_set_new(o, "distrusted",
                        s_distrusted_json(n->distrusted, n->n_distrusted));
    json_object_set_new(o, "drift", s_drift_json(n->drift, n->n_drift));
    json_object_set_new(o, "drift_history",
                        s_drift_json(n->drift_history, n->n_drift_history));
    json_object_set_new(o, "duties", s_node_duties_json(r, n->name));
    json_object_set_new(o, "messages", s_messages_json(n->messages));
    return o;
}
json_t *
pm_ctl_json_cluster(const Pm__Response *r)
{
    return json_pack("{s:o, s:o}", "duties",
                     s_duties_json(r->duties, r->n_duties), "cooldowns",
                     pm_ctl_json_cooldowns(r->cooldowns, r->n_cooldowns));
}

json_t *
pm_ctl_json_revision(const Pm__Revision *rev)
{
    return json_pack("{s:I, s:I, s:s, s:I, s:s, s:s, s:I}", "revision",
                     (json_int_t)rev->number, "parent", (json_int_t)rev->parent,
                     "author", rev->author, "time", (json_int_t)rev->time,
                     "message", rev->message, "digest", rev->digest,
                     "rollback_of", (json_int_t)rev->rollback_of);
}

json_t *
pm_ctl_json_diff(Pm__DiffEntry *const *entries, size_t n)
{
    json_t *all = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(
            all, json_pack("{s:s, s:s, s:s}", "key", entries[i]->key, "before",
                           entries[i]->before, "after", entries[i]->after));
    return all;
}

static json_t *
s_spec_json(const Pm__RolloutSpec *s)
{
    json_t *canary = json_array();
    for (size_t i = 0; i < s->n_canary; i++)
        json_array_append_new(canary, json_string(s->canary[i]));
    return json_pack("{s:s, s:I, s:I, s:o, s:I, s:I, s:I, s:b}", "service",
                     s->service, "batch", (json_int_t)s->batch, "batch_percent",
                     (json_int_t)s->batch_percent, "canary", canary,
                     "min_healthy_ms", (json_int_t)s->min_healthy_ms,
                     "deadline_ms", (json_int_t)s->deadline_ms, "max_failures",
                     (json_int_t)s->max_failures, "auto_revert",
                     s->auto_revert);
}

json_t *
pm_ctl_json_rollout(const Pm__Rollout *ro)
{
    if (!ro)
        return json_null();
    json_t *nodes = json_array();
    for (size_t i = 0; i < ro->n_nodes; i++) {
        const Pm__RolloutNode *n = ro->nodes[i];
        json_array_append_new(
            nodes,
            json_pack("{s:s, s:s, s:I, s:I, s:I, s:s}", "name", n->name,
                      "state", pm_rollout_node_state_name(n->state), "started",
                      (json_int_t)n->started, "settling_since",
                      (json_int_t)n->settling_since, "finished",
                      (json_int_t)n->finished, "detail", n->detail));
    }
    Pm__RolloutSpec none = PM__ROLLOUT_SPEC__INIT;
    return json_pack(
        "{s:I, s:o, s:s, s:o, s:I, s:I, s:s, s:s}", "id", (json_int_t)ro->id,
        "spec", s_spec_json(ro->spec ? ro->spec : &none), "state",
        pm_rollout_state_name(ro->state), "nodes", nodes, "started",
        (json_int_t)ro->started, "finished", (json_int_t)ro->finished, "reason",
        ro->reason, "user", ro->user);
}

json_t *
pm_ctl_json_test_result(const Pm__TestResult *r)
{
    return json_pack("{s:s, s:s, s:s, s:I, s:s, s:s, s:s, s:s, s:s}", "message",
                     r->message, "rcpt", r->rcpt, "policy", r->policy,
                     "revision", (json_int_t)r->revision, "reply", r->reply,
                     "stage", r->stage, "verdict", r->verdict, "key", r->key,
                     "evidence", r->evidence);
}
