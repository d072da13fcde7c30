/* pm_ctl_show.c - privmta-ctl's output helpers. */
#include "pm_ctl_show.h"
#include "pm_text.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

void
pm_ctl_cell(const char *text, int width, size_t max, const char *sep)
{
    char *shown = pm_text_escape(*text ? text : "-", max);
    printf("%-*s%s", width, shown, sep);
    free(shown);
}

void
pm_ctl_utc(int64_t t, char *buf, size_t size)
{
    time_t tt = (time_t)t;
    struct tm tm;
    if (!gmtime_r(&tt, &tm) ||
        !strftime(buf, size, "%Y-%m-%d %H:%M:%S UTC", &tm))
        snprintf(buf, size, "%lld", (long long)t);
}

void
pm_ctl_print_json(json_t *doc)
{
    char *text = doc ? json_dumps(doc, JSON_INDENT(2) | JSON_ENCODE_ANY) : NULL;
    puts(text ? text : "null");
    free(text);
    json_decref(doc);
}

void
pm_ctl_cluster_text(const Pm__Response *r)
{
    for (size_t i = 0; i < r->n_cooldowns; i++) {
        const Pm__Cooldown *c = r->cooldowns[i];
        char until[40];
        pm_ctl_utc(c->until, until, sizeof until);
        printf("mirror ");
        pm_ctl_cell(c->mirror, 0, PM_CTL_CELL_MAX, "");
        printf(" cooling down until %s (HTTP %d, told to ", until,
               (int)c->http_status);
        pm_ctl_cell(c->node, 0, PM_CTL_CELL_MAX, ")\n");
    }
    for (size_t i = 0; i < r->n_duties; i++) {
        pm_ctl_cell(r->duties[i]->database, 0, PM_CTL_CELL_MAX,
                    ": fetched by ");
        pm_ctl_cell(r->duties[i]->node, 0, PM_CTL_CELL_MAX, "\n");
    }
}
