/* pm_pf_drift.c - hand edits of the parameters the policy owns. */
#include "pm_pf_drift.h"
#include "pm_file.h"
#include "pm_mem.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

struct pm_pf_drift_t {
    char *dir, *main_cf;
    pm_postconf_param_t *want; /* what the last apply left in main.cf */
    size_t n_want;
    pm_file_ident_t seen; /* main.cf when WANT was last compared with it */
    bool known;           /* SEEN is valid */
    bool holds;           /* at SEEN, main.cf held WANT */
};

pm_pf_drift_t *
pm_pf_drift_new(const char *config_dir)
{
    pm_pf_drift_t *self = pm_calloc(1, sizeof *self);
    self->dir = pm_strdup(config_dir);
    self->main_cf = pm_asprintf("%s/main.cf", config_dir);
    return self;
}

void
pm_pf_drift_destroy(pm_pf_drift_t **self_p)
{
    pm_pf_drift_t *self = *self_p;
    if (!self)
        return;
    pm_postconf_params_free(&self->want, self->n_want);
    free(self->dir);
    free(self->main_cf);
    free(self);
    *self_p = NULL;
}

void
pm_pf_drift_applied(pm_pf_drift_t *self, const pm_postconf_param_t *params,
                    size_t n)
{
    pm_postconf_params_free(&self->want, self->n_want);
    self->want = pm_calloc(n ? n : 1, sizeof *self->want);
    self->n_want = n;
    for (size_t i = 0; i < n; i++) {
        self->want[i].name = pm_strdup(params[i].name);
        self->want[i].value = pm_strdup(params[i].value);
    }
    self->known = self->holds = pm_file_ident(self->main_cf, &self->seen);
}

void
pm_pf_drift_forget(pm_pf_drift_t *self)
{
    self->known = self->holds = false;
}

void
pm_pf_drift_expect(pm_pf_drift_t *self, const pm_postconf_param_t *params,
                   size_t n)
{
    pm_pf_drift_applied(self, params, n);
    self->known = self->holds = false;
}

/* WANT's value of NAME, or NULL when it does not own NAME. */
static const char *
s_wanted(const pm_pf_drift_t *self, const char *name)
{
    for (size_t i = 0; i < self->n_want; i++)
        if (strcmp(self->want[i].name, name) == 0)
            return self->want[i].value;
    return NULL;
}

int
pm_pf_drift_holds(const pm_pf_drift_t *self, const pm_postconf_param_t *params,
                  size_t n)
{
    pm_file_ident_t now;
    if (!self->holds || !pm_file_ident(self->main_cf, &now) ||
        !pm_file_ident_same(&now, &self->seen))
        return -1;
    int holds = 1;
    for (size_t i = 0; i < n; i++) {
        const char *was = s_wanted(self, params[i].name);
        if (!was)
            return -1; /* never applied: main.cf's own value, unread */
        if (strcmp(was, params[i].value) != 0)
            holds = 0;
    }
    return holds;
}

size_t
pm_pf_drift_check(pm_pf_drift_t *self, Pm__Drift ***found)
{
    *found = NULL;
    pm_file_ident_t now;
    if (!self->n_want || !pm_file_ident(self->main_cf, &now) ||
        (self->known && pm_file_ident_same(&now, &self->seen)))
        return 0;
    char **got = pm_calloc(self->n_want, sizeof *got);
    int differ = pm_postconf_diff(self->dir, self->want, self->n_want, got);
    if (differ < 0) {
        free(got);
        return 0; /* unreadable now: looked at again next time */
    }
    self->seen = now;
    self->known = true;
    self->holds = differ == 0;
    Pm__Drift **list = differ ? pm_calloc((size_t)differ, sizeof *list) : NULL;
    size_t n = 0;
    for (size_t i = 0; i < self->n_want; i++) {
        if (!got[i])
            continue;
        Pm__Drift *d = pm_malloc(sizeof *d);
        pm__drift__init(d);
        d->parameter = pm_strdup(self->want[i].name);
        d->applied = pm_strdup(self->want[i].value);
        d->found = got[i];
        d->error = pm_strdup("");
        list[n++] = d;
    }
    free(got);
    *found = list;
    return n;
}
