/* pm_fleet_metrics.c - the controller's exposition (pm_metrics.h). */
#include "pm_fleet_metrics.h"
#include "pm_metrics.h"

#include <stdlib.h>
#include <string.h>

static void
s_liveness(FILE *f, Pm__NodeStatus **nodes, size_t n)
{
    static const char *const states[] = {"up", "stale", "down", "never"};
    pm_metrics_family(f, "privmta_controller_nodes", "gauge",
                      "Enrolled nodes by liveness.");
    for (size_t k = 0; k < 4; k++) {
        size_t count = 0;
        for (size_t i = 0; i < n; i++)
            count += strcmp(nodes[i]->liveness, states[k]) == 0;
        pm_metrics_sample(f, "privmta_controller_nodes", "liveness", states[k],
                          (double)count);
    }
}

static void
s_per_node(FILE *f, Pm__NodeStatus **nodes, size_t n, uint64_t head)
{
    pm_metrics_family(f, "privmta_controller_node_applied_revision", "gauge",
                      "The revision each node last reported applied.");
    for (size_t i = 0; i < n; i++)
        pm_metrics_sample(f, "privmta_controller_node_applied_revision", "node",
                          nodes[i]->name, (double)nodes[i]->applied_rev);
    pm_metrics_family(f, "privmta_controller_node_lag_revisions", "gauge",
                      "Revisions each node is behind the head.");
    for (size_t i = 0; i < n; i++) {
        uint64_t a = nodes[i]->applied_rev;
        pm_metrics_sample(f, "privmta_controller_node_lag_revisions", "node",
                          nodes[i]->name, a < head ? (double)(head - a) : 0);
    }
}

char *
pm_fleet_metrics_text(pm_fleet_t *fleet, size_t *len)
{
    char *text = NULL;
    FILE *f = pm_metrics_begin(&text, len);
    pm_fleet_stats_t st;
    pm_fleet_stats(fleet, &st);
    pm_metrics_family(f, "privmta_controller_head_revision", "gauge",
                      "The revision nodes are told to enforce.");
    pm_metrics_sample(f, "privmta_controller_head_revision", NULL, NULL,
                      (double)st.head);
    pm_metrics_family(f, "privmta_controller_revisions_published_total",
                      "counter", "Revisions published since the start.");
    pm_metrics_sample(f, "privmta_controller_revisions_published_total", NULL,
                      NULL, (double)st.published);
    pm_metrics_hist_write(f, "privmta_controller_push_ack_seconds",
                          "From a publish to each node's report of having "
                          "applied it.",
                          &st.ack);
    Pm__NodeStatus **nodes = NULL;
    size_t n = 0;
    pm_fleet_nodes(fleet, &nodes, &n);
    s_liveness(f, nodes, n);
    s_per_node(f, nodes, n, st.head);
    pm_store_nodes_free(&nodes, n);
    pm_metrics_end(f);
    return text;
}
