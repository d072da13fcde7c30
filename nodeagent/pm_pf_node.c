/* pm_pf_node.c - the node's own part of main.cf, and what it supports. */
#include "pm_pf_node.h"
#include "pm_error.h"
#include "pm_file.h"
#include "pm_mem.h"
#include "pm_pf_sasl.h"
#include "pm_postconf.h"

#include <stddef.h>
#include <stdlib.h>

/* Every fact once: its parameter and its field. */
static const struct {
    const char *name;
    size_t offset;
} s_facts[] = {
    {"queue_directory", offsetof(pm_pf_node_t, queue_dir)},
    {"daemon_directory", offsetof(pm_pf_node_t, daemon_dir)},
    {"maillog_file", offsetof(pm_pf_node_t, maillog)},
    {"inet_protocols", offsetof(pm_pf_node_t, protocols)},
    {"smtpd_sasl_type", offsetof(pm_pf_node_t, sasl_type)},
    {"smtpd_sasl_path", offsetof(pm_pf_node_t, sasl_path)},
    {"smtpd_sender_login_maps", offsetof(pm_pf_node_t, login_maps)},
    {"smtpd_tls_security_level", offsetof(pm_pf_node_t, tls_level)},
    {"smtpd_use_tls", offsetof(pm_pf_node_t, use_tls)},
    {"smtpd_sasl_auth_enable", offsetof(pm_pf_node_t, sasl_enable)},
    {"smtpd_tls_auth_only", offsetof(pm_pf_node_t, tls_auth_only)},
    {"transport_maps", offsetof(pm_pf_node_t, transport_maps)},
    {"sender_dependent_relayhost_maps", offsetof(pm_pf_node_t, sdrh_maps)},
};

#define S_COUNT (sizeof s_facts / sizeof s_facts[0])

static char **
s_field(pm_pf_node_t *node, size_t i)
{
    return (char **)((char *)node + s_facts[i].offset);
}

int
pm_pf_node_read(const char *dir, pm_pf_node_t *node, char **why)
{
    const char *names[S_COUNT];
    char *values[S_COUNT];
    for (size_t i = 0; i < S_COUNT; i++)
        names[i] = s_facts[i].name;
    int rc = pm_postconf_read(dir, names, S_COUNT, values, why);
    if (rc != PM_OK)
        return rc;
    for (size_t i = 0; i < S_COUNT; i++)
        *s_field(node, i) = values[i];
    return PM_OK;
}

void
pm_pf_node_clear(pm_pf_node_t *node)
{
    for (size_t i = 0; i < S_COUNT; i++)
        PM_FREE(s_field(node, i));
}

struct pm_pf_node_cache_t {
    char *dir, *main_cf;
    pm_pf_node_t node;  /* the last facts read */
    pm_file_ident_t id; /* main.cf just before they were */
    bool filled;
};

static void
s_copy(pm_pf_node_t *to, pm_pf_node_t *from)
{
    for (size_t i = 0; i < S_COUNT; i++)
        *s_field(to, i) = pm_strdup(*s_field(from, i));
}

pm_pf_node_cache_t *
pm_pf_node_cache_new(const char *dir)
{
    pm_pf_node_cache_t *self = pm_calloc(1, sizeof *self);
    self->dir = pm_strdup(dir);
    self->main_cf = pm_asprintf("%s/main.cf", dir);
    return self;
}

void
pm_pf_node_cache_destroy(pm_pf_node_cache_t **self_p)
{
    pm_pf_node_cache_t *self = *self_p;
    if (!self)
        return;
    pm_pf_node_clear(&self->node);
    free(self->dir);
    free(self->main_cf);
    free(self);
    *self_p = NULL;
}

int
pm_pf_node_cache_read(pm_pf_node_cache_t *self, pm_pf_node_t *node, char **why)
{
    pm_file_ident_t now;
    bool known = pm_file_ident(self->main_cf, &now);
    if (known && self->filled && pm_file_ident_same(&now, &self->id)) {
        s_copy(node, &self->node);
        return PM_OK;
    }
    int rc = pm_pf_node_read(self->dir, node, why);
    pm_pf_node_clear(&self->node);
    self->filled = rc == PM_OK && known;
    if (self->filled) {
        s_copy(&self->node, node);
        self->id = now;
    }
    return rc;
}

bool
pm_pf_node_sasl(const pm_pf_node_t *node, char **problem)
{
    return pm_pf_sasl_answers(node->sasl_type, node->sasl_path, node->queue_dir,
                              problem);
}

pm_pf_caps_t
pm_pf_node_caps(const pm_pf_node_t *node, const char *milter)
{
    char *problem = NULL; /* status reports it; apply only leaves AUTH off */
    pm_pf_caps_t caps = {.sasl = pm_pf_node_sasl(node, &problem),
                         .login_maps = node->login_maps[0] != '\0',
                         .milter = milter};
    free(problem);
    return caps;
}
