/* pm_pf_node.c - the node's own part of main.cf, and what it supports. */
#include "pm_pf_node.h"
#include "pm_error.h"
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
