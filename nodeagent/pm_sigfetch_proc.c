/* pm_sigfetch_proc.c - pm_sigfetch_run in a short-lived child process
 * (privmta-sigfetch), its report carried back on the child's stdout. See
 * pm_sigfetch.h. */
#include "pm_cmd.h"
#include "pm_log.h"
#include "pm_mem.h"
#include "pm_sigfetch.h"
#include "pm_text.h"
#include "pm_wire.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_LOG_LINES 20     /* of the helper's stderr (libfreshclam's words) */
#define S_LOG_LINE_MAX 512 /* bytes of one, escaped */

uint8_t *
pm_sigfetch_report_pack(const pm_sigfetch_report_t *r, size_t *len)
{
    Pm__FetchReport m = PM__FETCH_REPORT__INIT;
    Pm__FetchResult *res = pm_calloc(r->n_dbs + 1, sizeof *res);
    Pm__FetchResult **dbs = pm_calloc(r->n_dbs + 1, sizeof *dbs);
    Pm__Cooldown *cool = pm_calloc(r->n_cooldowns + 1, sizeof *cool);
    Pm__Cooldown **cools = pm_calloc(r->n_cooldowns + 1, sizeof *cools);
    for (size_t i = 0; i < r->n_dbs; i++) {
        const pm_sigfetch_db_t *d = &r->dbs[i];
        pm__fetch_result__init(&res[i]);
        res[i].name = d->name;
        res[i].err = (int32_t)d->err;
        res[i].why = d->why ? d->why : "";
        res[i].changed = d->changed;
        res[i].old_version = d->old_version;
        res[i].version = d->version;
        res[i].sigs = d->sigs;
        res[i].built = d->built;
        res[i].mirror = d->mirror ? d->mirror : "";
        res[i].http_status = d->http_status;
        dbs[i] = &res[i];
    }
    for (size_t i = 0; i < r->n_cooldowns; i++) {
        pm__cooldown__init(&cool[i]);
        cool[i].mirror = r->cooldowns[i].mirror;
        cool[i].http_status = r->cooldowns[i].http_status;
        cool[i].until = r->cooldowns[i].until;
        cools[i] = &cool[i];
    }
    m.dbs = dbs;
    m.n_dbs = r->n_dbs;
    m.cooldowns = cools;
    m.n_cooldowns = r->n_cooldowns;
    uint8_t *buf = pm_wire_pack(&m.base, len);
    free(res);
    free(dbs);
    free(cool);
    free(cools);
    return buf;
}

static char *
s_dup_or_null(const char *s)
{
    return s && *s ? pm_strdup(s) : NULL;
}

/* The report in BUF, which must answer for exactly the databases of O in
 * their order (the caller matches results to databases by position). */
pm_err_t
pm_sigfetch_report_unpack(const uint8_t *buf, size_t len,
                          const pm_sigfetch_opts_t *o,
                          pm_sigfetch_report_t **report_p, char **why)
{
    Pm__FetchReport *m = NULL;
    char *bad = NULL;
    if (pm_wire_unpack_fetch_report(buf, len, &m, &bad) != PM_OK) {
        pm_why(why, "sigfetch", "privmta-sigfetch's report: %s", bad);
        free(bad);
        return PM_EPROTO;
    }
    bool match = m->n_dbs == o->n_databases;
    for (size_t i = 0; match && i < m->n_dbs; i++)
        match = strcmp(m->dbs[i]->name, o->databases[i]) == 0;
    if (!match) {
        pm_why(why, "sigfetch",
               "privmta-sigfetch's report is not about the databases asked");
        pm__fetch_report__free_unpacked(m, NULL);
        return PM_EPROTO;
    }
    pm_sigfetch_report_t *r = pm_calloc(1, sizeof *r);
    r->n_dbs = m->n_dbs;
    r->dbs = pm_calloc(r->n_dbs + 1, sizeof *r->dbs);
    for (size_t i = 0; i < r->n_dbs; i++) {
        const Pm__FetchResult *s = m->dbs[i];
        r->dbs[i] = (pm_sigfetch_db_t){
            .name = pm_strdup(s->name),
            .err = (pm_err_t)s->err,
            .why = s->err ? pm_strdup(*s->why ? s->why : "failed") : NULL,
            .changed = s->changed,
            .old_version = s->old_version,
            .version = s->version,
            .sigs = s->sigs,
            .built = (time_t)s->built,
            .mirror = s_dup_or_null(s->mirror),
            .http_status = s->http_status};
    }
    r->n_cooldowns = m->n_cooldowns;
    r->cooldowns = pm_calloc(r->n_cooldowns + 1, sizeof *r->cooldowns);
    for (size_t i = 0; i < r->n_cooldowns; i++)
        r->cooldowns[i] = (pm_sigfetch_cooldown_t){
            .mirror = pm_strdup(m->cooldowns[i]->mirror),
            .http_status = m->cooldowns[i]->http_status,
            .until = (time_t)m->cooldowns[i]->until};
    pm__fetch_report__free_unpacked(m, NULL);
    *report_p = r;
    return PM_OK;
}

/* The last non-empty line of TEXT (a copy), or NULL. */
static char *
s_last_line(const char *text)
{
    const char *end = text + strlen(text);
    while (end > text && (end[-1] == '\n' || end[-1] == ' '))
        end--;
    const char *start = end;
    while (start > text && start[-1] != '\n')
        start--;
    return end > start ? pm_strndup(start, (size_t)(end - start)) : NULL;
}

/* libfreshclam's own words, into our log (a few lines, never its whole
 * progress output), escaped: the helper runs as another user and talks to
 * the network, so a carriage return or a terminal control in a line must
 * not forge or hide one of ours. */
static void
s_log_stderr(const char *text)
{
    int n = 0;
    for (const char *p = text; *p && n < S_LOG_LINES; n++) {
        size_t len = strcspn(p, "\n");
        if (len) {
            char *line = pm_strndup(p, len);
            char *shown = pm_text_escape(line, S_LOG_LINE_MAX);
            pm_info("privmta-sigfetch: %s", shown);
            free(shown);
            free(line);
        }
        p += len + (p[len] == '\n');
    }
}

static char **
s_argv(const char *helper, const pm_sigfetch_opts_t *o, char *nums[2])
{
    char **argv =
        pm_calloc(2 * (o->n_mirrors + o->n_databases) + 13, sizeof *argv);
    size_t n = 0;
    argv[n++] = (char *)helper;
    argv[n++] = "--dbdir";
    argv[n++] = (char *)o->dbdir;
    for (size_t i = 0; i < o->n_mirrors; i++) {
        argv[n++] = "--mirror";
        argv[n++] = (char *)o->mirrors[i];
    }
    for (size_t i = 0; i < o->n_databases; i++) {
        argv[n++] = "--database";
        argv[n++] = (char *)o->databases[i];
    }
    nums[0] = pm_asprintf("%u", o->connect_timeout_s);
    nums[1] = pm_asprintf("%u", o->request_timeout_s);
    argv[n++] = "--connect-timeout";
    argv[n++] = nums[0];
    argv[n++] = "--request-timeout";
    argv[n++] = nums[1];
    if (o->user) {
        argv[n++] = "--user";
        argv[n++] = (char *)o->user;
    }
    if (o->cdiff_dir) {
        argv[n++] = "--cdiffs";
        argv[n++] = (char *)o->cdiff_dir;
    }
    return argv;
}

/* The helper's worst case: a check and a download per database and
 * mirror (and, with a CDIFF directory, a download per CDIFF), each
 * bounded by the timeouts, plus a margin. */
static int
s_deadline_ms(const pm_sigfetch_opts_t *o)
{
    unsigned conn = o->connect_timeout_s ? o->connect_timeout_s : 10;
    unsigned req = o->request_timeout_s ? o->request_timeout_s : 60;
    uint64_t steps = 2 + (o->cdiff_dir ? PM_SIGFETCH_CDIFF_STEPS : 0);
    uint64_t ms = (uint64_t)(conn + req) * 1000 * steps *
                      (o->n_mirrors ? o->n_mirrors : 1) * o->n_databases +
                  30000;
    return ms > 6 * 3600 * 1000 ? 6 * 3600 * 1000 : (int)ms;
}

pm_err_t
pm_sigfetch_spawn(const char *helper, const pm_sigfetch_opts_t *o,
                  pm_sigfetch_report_t **report_p, char **why)
{
    char *nums[2];
    char **argv = s_argv(helper, o, nums);
    pm_cmd_opts_t run = {.timeout_ms = s_deadline_ms(o),
                         .max_output = PM_WIRE_FETCH_MAX,
                         .cancelled = o->cancelled,
                         .cancel_arg = o->cancel_arg};
    pm_cmd_result_t res = {0};
    int status = pm_cmd_run(argv, &run, &res);
    pm_err_t err = PM_OK;
    if (status == 0) {
        s_log_stderr(res.err);
        err = pm_sigfetch_report_unpack((const uint8_t *)res.out, res.out_len,
                                        o, report_p, why);
    } else if (status > 0 && status <= PM_EFULL) {
        /* the helper's own error: its last line says why */
        char *line = s_last_line(res.err);
        pm_why(why, "sigfetch", "%s", line ? line : "privmta-sigfetch failed");
        free(line);
        err = (pm_err_t)status;
    } else {
        char *w = pm_cmd_why(helper, &res);
        pm_why(why, "sigfetch", "%s", w);
        free(w);
        err = res.fail && strcmp(res.fail, "stopped") == 0 ? PM_ETIMEDOUT
                                                           : PM_EINTERNAL;
    }
    pm_cmd_result_clear(&res);
    free(nums[0]);
    free(nums[1]);
    free(argv);
    return err;
}

void
pm_sigfetch_report_destroy(pm_sigfetch_report_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    pm_sigfetch_report_t *r = *self_p;
    for (size_t i = 0; i < r->n_dbs; i++) {
        free(r->dbs[i].name);
        free(r->dbs[i].why);
        free(r->dbs[i].mirror);
    }
    for (size_t i = 0; i < r->n_cooldowns; i++)
        free(r->cooldowns[i].mirror);
    free(r->dbs);
    free(r->cooldowns);
    free(r);
    *self_p = NULL;
}
