/* pm_pf_node.h - the node's own part of main.cf, and what it supports.
 *
 * The policy owns a fixed set of main.cf parameters (pm_pf_render); the
 * rest are the node's. Apply and status need a few of them: where the
 * queue, daemons and maillog are, which address families smtp may use,
 * the SASL backend and its TLS settings, and the maps that route mail
 * past relayhost. They are read together, in one postconf call, with
 * $names expanded; a parameter this Postfix does not know reads as "".
 * From them follows what the node supports (pm_pf_caps_t): AUTH only
 * when the SASL backend answers (pm_pf_sasl), the login mismatch check
 * only with a login map.
 */
#ifndef PM_PF_NODE_H
#define PM_PF_NODE_H

#include "pm_pf_render.h"

#include <stdbool.h>

/* The node's facts, each the value of the main.cf parameter named beside
 * it ("" when unset and without default; never NULL once read). */
typedef struct {
    char *queue_dir;      /* queue_directory */
    char *daemon_dir;     /* daemon_directory */
    char *maillog;        /* maillog_file */
    char *protocols;      /* inet_protocols */
    char *sasl_type;      /* smtpd_sasl_type */
    char *sasl_path;      /* smtpd_sasl_path */
    char *login_maps;     /* smtpd_sender_login_maps */
    char *tls_level;      /* smtpd_tls_security_level */
    char *use_tls;        /* smtpd_use_tls (gone from newer Postfix) */
    char *sasl_enable;    /* smtpd_sasl_auth_enable */
    char *tls_auth_only;  /* smtpd_tls_auth_only */
    char *transport_maps; /* transport_maps */
    char *sdrh_maps;      /* sender_dependent_relayhost_maps */
} pm_pf_node_t;

/* Reads the facts of the Postfix instance whose configuration directory
 * is DIR into *NODE (caller clears it with pm_pf_node_clear). Returns
 * PM_OK; or PM_EIO with *why (caller frees, pm_postconf_read) and *NODE
 * untouched. */
int pm_pf_node_read(const char *dir, pm_pf_node_t *node, char **why);

/* Frees every fact of NODE and sets it to NULL; safe on a zeroed NODE
 * and twice. */
void pm_pf_node_clear(pm_pf_node_t *node);

/* The facts last read, with main.cf's identity taken just before: while
 * main.cf keeps it, reading them again copies them instead of starting
 * postconf (a process start is most of what an apply costs on a busy
 * node). The Postfix backend's apply and status share one; owned by the
 * agent's loop, not thread-safe. */
typedef struct pm_pf_node_cache_t pm_pf_node_cache_t;

/* A cache for the instance whose configuration directory is DIR; empty. */
pm_pf_node_cache_t *pm_pf_node_cache_new(const char *dir);
void pm_pf_node_cache_destroy(pm_pf_node_cache_t **self_p);

/* pm_pf_node_read of the cache's DIR, from the cache while main.cf has not
 * changed since it was filled. */
int pm_pf_node_cache_read(pm_pf_node_cache_t *self, pm_pf_node_t *node,
                          char **why);

/* True when the node's SASL backend answers (pm_pf_sasl_answers on its
 * smtpd_sasl_type, smtpd_sasl_path and queue_directory); else false with
 * *problem (caller frees). Costs a connect(2) or a few access(2). */
bool pm_pf_node_sasl(const pm_pf_node_t *node, char **problem);

/* What NODE supports, with MILTER (this node's privmta-milter socket, or
 * NULL; borrowed, the result points at it). Checks the SASL backend. */
pm_pf_caps_t pm_pf_node_caps(const pm_pf_node_t *node, const char *milter);

#endif
