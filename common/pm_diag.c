#include "pm_diag.h"
#include "pm_mem.h"

#include <stdarg.h>
#include <stdlib.h>

typedef struct {
    unsigned line;
    char *key;
    char *problem;
    char *text;
} s_item_t;

struct pm_diag_t {
    char *origin;
    s_item_t *items;
    size_t n, cap;
};

pm_diag_t *
pm_diag_new(const char *origin)
{
    pm_diag_t *self = pm_calloc(1, sizeof *self);
    self->origin = pm_strdup(origin ? origin : "input");
    return self;
}

void
pm_diag_destroy(pm_diag_t **self_p)
{
    pm_diag_t *self = *self_p;
    if (!self)
        return;
    for (size_t i = 0; i < self->n; i++) {
        free(self->items[i].key);
        free(self->items[i].problem);
        free(self->items[i].text);
    }
    free(self->items);
    free(self->origin);
    free(self);
    *self_p = NULL;
}

static void
s_push(pm_diag_t *self, unsigned line, const char *key, char *problem,
       char *text)
{
    if (self->n == self->cap) {
        self->cap = self->cap ? self->cap * 2 : 8;
        self->items = pm_realloc(self->items, self->cap * sizeof *self->items);
    }
    self->items[self->n].line = line;
    self->items[self->n].key = key ? pm_strdup(key) : NULL;
    self->items[self->n].problem = problem;
    self->items[self->n].text = text;
    self->n++;
}

void
pm_diag_add(pm_diag_t *self, unsigned line, const char *key, const char *fmt,
            ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *problem = pm_vasprintf(fmt, ap);
    va_end(ap);
    char where[32] = "";
    if (line)
        snprintf(where, sizeof where, ":%u", line);
    char *text =
        key ? pm_asprintf("%s%s: %s: %s", self->origin, where, key, problem)
            : pm_asprintf("%s%s: %s", self->origin, where, problem);
    s_push(self, line, key, problem, text);
}

void
pm_diag_add_raw(pm_diag_t *self, const char *text)
{
    s_push(self, 0, NULL, pm_strdup(text), pm_strdup(text));
}

size_t
pm_diag_count(const pm_diag_t *self)
{
    return self->n;
}

const char *
pm_diag_line(const pm_diag_t *self, size_t i)
{
    return i < self->n ? self->items[i].text : NULL;
}

const char *
pm_diag_key(const pm_diag_t *self, size_t i)
{
    return i < self->n ? self->items[i].key : NULL;
}

const char *
pm_diag_problem(const pm_diag_t *self, size_t i)
{
    return i < self->n ? self->items[i].problem : NULL;
}

const char *
pm_diag_origin(const pm_diag_t *self)
{
    return self->origin;
}

void
pm_diag_set_origin(pm_diag_t *self, const char *origin)
{
    free(self->origin);
    self->origin = pm_strdup(origin);
}

/* Prints in line order (stable), the order an admin fixes a file in. */
void
pm_diag_print(const pm_diag_t *self, FILE *f)
{
    size_t *order = pm_malloc((self->n + 1) * sizeof *order);
    for (size_t i = 0; i < self->n; i++) {
        size_t j = i;
        while (j > 0 && self->items[order[j - 1]].line > self->items[i].line) {
            order[j] = order[j - 1];
            j--;
        }
        order[j] = i;
    }
    for (size_t i = 0; i < self->n; i++)
        fprintf(f, "%s\n", self->items[order[i]].text);
    free(order);
}
