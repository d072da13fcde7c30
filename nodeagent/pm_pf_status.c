/* pm_pf_status.c - what a node's Postfix reports in its status. */
#include "pm_pf_status.h"
#include "pm_pf_run.h"
#include "pm_error.h"
#include "pm_file.h"
#include "pm_mem.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define S_TTL 10            /* seconds a computation is reused */
#define S_OVERRIDES_MAX 100 /* relay-host bypasses listed in a report */
#define S_OVERRIDE_LEN 250  /* bytes of one of them */

struct pm_pf_status_t {
    char *dir;                 /* configuration directory */
    char *main_cf;             /* DIR/main.cf */
    char *queue_dir;           /* for the master pid file; NULL until read */
    pm_pf_node_cache_t *facts; /* borrowed */
    pm_pf_wants_t wants;
    /* cache, keyed by main.cf's identity and a TTL */
    bool cached;
    pm_file_ident_t cached_id;
    time_t cached_at;
    Pm__ServiceStatus__State auth_state;
    char *auth_detail;
    char **overrides;
    size_t n_overrides;
    size_t n_unlisted; /* overrides past S_OVERRIDES_MAX, only counted */
};

static void
s_cache_drop(pm_pf_status_t *self)
{
    self->cached = false;
    PM_FREE(&self->auth_detail);
    for (size_t i = 0; i < self->n_overrides; i++)
        free(self->overrides[i]);
    PM_FREE(&self->overrides);
    self->n_overrides = 0;
    self->n_unlisted = 0;
}

pm_pf_status_t *
pm_pf_status_new(const char *config_dir, pm_pf_node_cache_t *facts)
{
    pm_pf_status_t *self = pm_calloc(1, sizeof *self);
    self->facts = facts;
    self->dir = pm_strdup(config_dir);
    self->main_cf = pm_asprintf("%s/main.cf", config_dir);
    return self;
}

void
pm_pf_status_destroy(pm_pf_status_t **self_p)
{
    pm_pf_status_t *self = *self_p;
    if (!self)
        return;
    s_cache_drop(self);
    free(self->queue_dir);
    free(self->dir);
    free(self->main_cf);
    free(self);
    *self_p = NULL;
}

void
pm_pf_status_applied(pm_pf_status_t *self, bool want_sasl,
                     bool want_login_mismatch)
{
    self->wants = (pm_pf_wants_t){.applied = true,
                                  .sasl = want_sasl,
                                  .login_mismatch = want_login_mismatch};
    s_cache_drop(self);
}

/* ------------------------------------------------------------------------
 * Auth */

static bool
s_auth_wanted(const pm_pf_node_t *node, const pm_pf_wants_t *wants)
{
    return wants->applied ? wants->sasl : strcmp(node->sasl_enable, "yes") == 0;
}

/* What keeps AUTH, on and answering, from working; "" when nothing. */
static char *
s_auth_issues(const pm_pf_node_t *node, const pm_pf_wants_t *wants)
{
    const char *level = node->tls_level;
    bool tls = strcmp(level, "may") == 0 || strcmp(level, "encrypt") == 0 ||
               (!*level && strcmp(node->use_tls, "yes") == 0);
    bool no_login = !tls && strcmp(node->tls_auth_only, "yes") == 0;
    bool no_maps =
        wants->applied && wants->login_mismatch && !*node->login_maps;
    return pm_asprintf(
        "%s%s%s",
        no_login ? "AUTH is offered only after STARTTLS but "
                   "smtpd_tls_security_level is none: no client can log in"
                 : "",
        no_login && no_maps ? "; " : "",
        no_maps ? "reject_sender_login_mismatch left out: "
                  "smtpd_sender_login_maps is empty"
                : "");
}

Pm__ServiceStatus__State
pm_pf_status_auth(const pm_pf_node_t *node, const pm_pf_wants_t *wants,
                  const char *sasl_problem, char **detail)
{
    bool enabled = strcmp(node->sasl_enable, "yes") == 0;
    if (!s_auth_wanted(node, wants)) {
        *detail = pm_strdup("SMTP AUTH off (outbound.sasl_auth)");
        return PM__SERVICE_STATUS__STATE__DISABLED;
    }
    if (sasl_problem) {
        *detail = pm_asprintf(
            "%s; %s", sasl_problem,
            enabled ? "smtpd cannot start while AUTH is on"
                    : "SMTP AUTH kept off until it answers (next apply)");
        return PM__SERVICE_STATUS__STATE__DOWN;
    }
    if (!enabled) {
        *detail = pm_asprintf(
            "smtpd_sasl_type %s answers now but SMTP AUTH is off: it "
            "turns on at the next apply",
            node->sasl_type);
        return PM__SERVICE_STATUS__STATE__DOWN;
    }
    char *issues = s_auth_issues(node, wants);
    if (*issues) {
        *detail = issues;
        return PM__SERVICE_STATUS__STATE__DEGRADED;
    }
    free(issues);
    *detail = pm_asprintf("SMTP AUTH via smtpd_sasl_type %s", node->sasl_type);
    return PM__SERVICE_STATUS__STATE__OK;
}

/* ------------------------------------------------------------------------
 * Relay overrides */

static void
s_override_add(pm_pf_status_t *self, char *entry)
{
    /* a status report has a size limit (PM_WIRE_REPORT_MAX): list the
     * first ones, count the rest */
    if (self->n_overrides >= S_OVERRIDES_MAX) {
        self->n_unlisted++;
        free(entry);
        return;
    }
    if (strlen(entry) > S_OVERRIDE_LEN)
        strcpy(entry + S_OVERRIDE_LEN - 3, "...");
    self->overrides = pm_realloc(self->overrides, (self->n_overrides + 1) *
                                                      sizeof *self->overrides);
    self->overrides[self->n_overrides++] = entry;
}

bool
pm_pf_status_bypasses_relay(const char *param, const char *value)
{
    if (strcmp(param, "sender_dependent_relayhost_maps") == 0)
        return *value != '\0';
    return strcmp(value, "smtp:") != 0 && strcmp(value, "relay:") != 0 &&
           strcmp(value, ":") != 0;
}

/* Adds the entries of postmap -s output TEXT ("key value" lines) that
 * bypass relayhost. */
static void
s_overrides_listed(pm_pf_status_t *self, const char *param, const char *text)
{
    for (const char *line = text; line && *line;) {
        size_t len = strcspn(line, "\n");
        size_t klen = strcspn(line, " \t");
        if (klen > len)
            klen = len;
        const char *v = line + klen;
        while (v < line + len && (*v == ' ' || *v == '\t'))
            v++;
        char *value = pm_strndup(v, (size_t)(line + len - v));
        if (klen && pm_pf_status_bypasses_relay(param, value))
            s_override_add(self, pm_asprintf("%s: %.*s -> %s", param, (int)klen,
                                             line, value));
        free(value);
        line += len + (line[len] == '\n');
    }
}

static bool
s_listable(const char *map)
{
    static const char *const types[] = {
        "hash:", "lmdb:", "btree:", "cdb:", "texthash:", "dbm:"};
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
        if (strncmp(map, types[i], strlen(types[i])) == 0)
            return true;
    return false;
}

/* Lists the entries of every map in LIST (a transport_maps style value). */
static void
s_overrides_of(pm_pf_status_t *self, const char *param, const char *list)
{
    char *copy = pm_strdup(list), *save = NULL;
    for (char *map = strtok_r(copy, ", \t", &save); map;
         map = strtok_r(NULL, ", \t", &save)) {
        if (!s_listable(map)) {
            s_override_add(
                self, pm_asprintf("%s: %s (entries not listable)", param, map));
            continue;
        }
        char *argv[] = {"postmap", "-c", self->dir, "-s", map, NULL};
        pm_cmd_result_t c;
        if (pm_pf_run(argv, NULL, false, 0, &c) != 0) {
            char *e = pm_cmd_why("postmap -s", &c);
            s_override_add(self, pm_asprintf("%s: %s (%s)", param, map, e));
            free(e);
        }
        s_overrides_listed(self, param, c.out);
        pm_cmd_result_clear(&c);
    }
    free(copy);
}

/* ------------------------------------------------------------------------
 * Refresh and fill */

static bool
s_fresh(const pm_pf_status_t *self, const pm_file_ident_t *id, time_t now)
{
    return self->cached && now - self->cached_at < S_TTL &&
           pm_file_ident_same(id, &self->cached_id);
}

static void
s_refresh(pm_pf_status_t *self)
{
    pm_file_ident_t id;
    time_t now = time(NULL);
    (void)pm_file_ident(self->main_cf, &id); /* zeroed when missing */
    if (s_fresh(self, &id, now))
        return;
    s_cache_drop(self);
    pm_pf_node_t node = {0};
    char *why = NULL, *problem = NULL;
    if (pm_pf_node_cache_read(self->facts, &node, &why) != PM_OK) {
        self->auth_state = PM__SERVICE_STATUS__STATE__UNKNOWN;
        self->auth_detail = why;
    } else {
        free(self->queue_dir);
        self->queue_dir = pm_strdup(node.queue_dir);
        /* the backend is only asked when AUTH is wanted */
        if (s_auth_wanted(&node, &self->wants))
            (void)pm_pf_node_sasl(&node, &problem);
        self->auth_state =
            pm_pf_status_auth(&node, &self->wants, problem, &self->auth_detail);
        s_overrides_of(self, "transport_maps", node.transport_maps);
        s_overrides_of(self, "sender_dependent_relayhost_maps", node.sdrh_maps);
    }
    free(problem);
    pm_pf_node_clear(&node);
    self->cached = true;
    self->cached_at = now;
    self->cached_id = id;
}

/* Until queue_directory is known, `postfix status` itself. */
static bool
s_master_alive(const pm_pf_status_t *self)
{
    return self->queue_dir ? pm_pf_master_alive(self->queue_dir)
                           : pm_pf_running(self->dir);
}

static Pm__ServiceStatus *
s_service(Pm__ServiceStatus *old, Pm__ServiceStatus__State state,
          const char *detail)
{
    if (old)
        pm__service_status__free_unpacked(old, NULL);
    Pm__ServiceStatus *s = pm_malloc(sizeof *s);
    pm__service_status__init(s);
    s->state = state;
    s->detail = pm_strdup(detail);
    return s;
}

static void
s_fill_overrides(const pm_pf_status_t *self, Pm__NodeStatus *status)
{
    for (size_t i = 0; i < status->n_relay_overrides; i++)
        free(status->relay_overrides[i]);
    free(status->relay_overrides);
    status->relay_overrides = NULL;
    status->n_relay_overrides = self->n_overrides + (self->n_unlisted > 0);
    if (!status->n_relay_overrides)
        return;
    status->relay_overrides =
        pm_calloc(status->n_relay_overrides, sizeof *status->relay_overrides);
    for (size_t i = 0; i < self->n_overrides; i++)
        status->relay_overrides[i] = pm_strdup(self->overrides[i]);
    if (self->n_unlisted)
        status->relay_overrides[self->n_overrides] =
            pm_asprintf("... and %zu more", self->n_unlisted);
}

void
pm_pf_status_fill(pm_pf_status_t *self, Pm__NodeStatus *status)
{
    s_refresh(self);
    status->postfix_running = s_master_alive(self);
    status->auth = s_service(status->auth, self->auth_state,
                             self->auth_detail ? self->auth_detail : "");
    if (!status->antispam)
        status->antispam = s_service(NULL, PM__SERVICE_STATUS__STATE__UNKNOWN,
                                     "not reported yet");
    if (!status->antivirus)
        status->antivirus = s_service(NULL, PM__SERVICE_STATUS__STATE__UNKNOWN,
                                      "not reported yet");
    if (!status->dkim)
        status->dkim = s_service(NULL, PM__SERVICE_STATUS__STATE__UNKNOWN,
                                 "not reported yet");
    s_fill_overrides(self, status);
}
