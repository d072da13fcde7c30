#include "pm_scanstatus.h"
#include "pm_error.h"
#include "pm_file.h"
#include "pm_mem.h"
#include "pm_text.h"

#include <ctype.h>
#include <czmq.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

static Pm__ServiceStatus *
s_service(Pm__ServiceStatus__State state, char *detail)
{
    Pm__ServiceStatus *s = pm_malloc(sizeof *s);
    pm__service_status__init(s);
    s->state = state;
    s->detail = detail;
    return s;
}

static void
s_set(Pm__ServiceStatus **slot, Pm__ServiceStatus *value)
{
    if (*slot)
        pm__service_status__free_unpacked(*slot, NULL);
    *slot = value;
}

/* Text from the status file, as it may go into a detail: the milter's
 * side writes it, and the report that carries it must pass pm_wire (valid
 * UTF-8, bounded) or the controller refuses the node's whole status. So it
 * is escaped (a broken byte becomes "\xNN") and cut to MAX bytes on a
 * character boundary; NULL when V is not a string. Caller frees. */
static char *
s_text(json_t *v, size_t max)
{
    return json_is_string(v) ? pm_text_escape(json_string_value(v), max) : NULL;
}

/* Sets loaded_version on ST's databases (from the agent's signature
 * actor) from the milter's list of what its engine was built from; at
 * most PM_AV_DBS_MAX entries are looked at. */
static void
s_loaded_versions(json_t *av, Pm__NodeStatus *st)
{
    json_t *dbs = json_object_get(av, "databases");
    size_t n = json_is_array(dbs) ? json_array_size(dbs) : 0;
    for (size_t i = 0; i < n && i < 16; i++) {
        json_t *d = json_array_get(dbs, i);
        const char *name = json_string_value(json_object_get(d, "name"));
        json_t *v = json_object_get(d, "version");
        if (!name || !json_is_integer(v) || json_integer_value(v) < 0 ||
            json_integer_value(v) > UINT32_MAX)
            continue;
        for (size_t j = 0; j < st->n_databases; j++)
            if (strcmp(st->databases[j]->name, name) == 0)
                st->databases[j]->loaded_version =
                    (uint32_t)json_integer_value(v);
    }
}

/* "daily 27100, main 62" or NULL when no fetched database is loaded. */
static char *
s_loaded_text(const Pm__NodeStatus *st)
{
    char *text = NULL;
    for (size_t j = 0; j < st->n_databases; j++) {
        const Pm__SignatureDb *db = st->databases[j];
        if (!db->loaded_version)
            continue;
        char *more =
            pm_asprintf("%s%s%s %u", text ? text : "", text ? ", " : "",
                        db->name, db->loaded_version);
        free(text);
        text = more;
    }
    return text;
}

/* The first database problem the signature actor reported, or NULL. */
static char *
s_db_problem(const Pm__NodeStatus *st)
{
    for (size_t j = 0; j < st->n_databases; j++)
        if (*st->databases[j]->error)
            return pm_asprintf("%s: %s", st->databases[j]->name,
                               st->databases[j]->error);
    return NULL;
}

/* Down without an engine; degraded when the policy names databases and
 * none is loaded (custom signatures only: almost no protection), when
 * fetching or pulling one fails, or when the last load failed. */
static Pm__ServiceStatus *
s_antivirus(json_t *av, const Pm__Policy *policy, Pm__NodeStatus *st)
{
    char *err = s_text(json_object_get(av, "last_error"), 200);
    if (!json_is_true(json_object_get(av, "loaded"))) {
        Pm__ServiceStatus *s =
            s_service(PM__SERVICE_STATUS__STATE__DOWN,
                      pm_asprintf("engine not loaded%s%s", err ? ": " : "",
                                  err ? err : ""));
        free(err);
        return s;
    }
    s_loaded_versions(av, st);
    json_int_t sigs = json_integer_value(json_object_get(av, "signatures"));
    char *loaded = s_loaded_text(st), *problem = s_db_problem(st);
    bool want = policy && policy->n_antivirus_databases;
    char *detail;
    if (loaded)
        detail =
            pm_asprintf("%lld signatures (%s)%s%s", (long long)sigs, loaded,
                        problem ? "; " : "", problem ? problem : "");
    else
        detail =
            pm_asprintf("%lld signatures (custom only%s)%s%s", (long long)sigs,
                        want ? ": no ClamAV database loaded yet" : "",
                        problem ? "; " : "", problem ? problem : "");
    Pm__ServiceStatus__State state = err || problem || (want && !loaded)
                                         ? PM__SERVICE_STATUS__STATE__DEGRADED
                                         : PM__SERVICE_STATUS__STATE__OK;
    free(err);
    free(loaded);
    free(problem);
    return s_service(state, detail);
}

static Pm__ServiceStatus *
s_antispam(json_t *as)
{
    json_t *err = json_object_get(as, "last_error");
    if (json_is_true(json_object_get(as, "reachable")))
        return s_service(PM__SERVICE_STATUS__STATE__OK,
                         pm_asprintf("spamd %lld ms",
                                     (long long)json_integer_value(
                                         json_object_get(as, "latency_ms"))));
    if (json_integer_value(json_object_get(as, "checked")) == 0 &&
        !json_is_string(err))
        return s_service(PM__SERVICE_STATUS__STATE__UNKNOWN,
                         pm_strdup("no message checked yet"));
    char *text = s_text(err, 200);
    Pm__ServiceStatus *s = s_service(
        PM__SERVICE_STATUS__STATE__DOWN,
        pm_asprintf("spamd unreachable: %s", text ? text : "unknown error"));
    free(text);
    return s;
}

/* Domains named in a detail before "and N more": a report has a size
 * limit. */
#define S_NAMES_MAX 10
#define S_DOMAIN_MAX 253

/* NAME, lowercased, into BUF (S_DOMAIN_MAX + 1 bytes); false when it is
 * too long to be a domain. */
static bool
s_lower(const char *name, char *buf)
{
    size_t n = strlen(name);
    if (n > S_DOMAIN_MAX)
        return false;
    for (size_t i = 0; i <= n; i++)
        buf[i] = (char)tolower((unsigned char)name[i]);
    return true;
}

/* The milter's "dkim.domains" into LISTED (every domain it names) and
 * USABLE (those it has a key for), lowercased. */
static void
s_milter_domains(json_t *dk, zhashx_t *listed, zhashx_t *usable)
{
    json_t *all = json_object_get(dk, "domains");
    char buf[S_DOMAIN_MAX + 1];
    for (size_t i = 0; i < json_array_size(all); i++) {
        json_t *d = json_array_get(all, i);
        const char *name = json_string_value(json_object_get(d, "domain"));
        if (!name || !s_lower(name, buf))
            continue;
        zhashx_update(listed, buf, (void *)1);
        if (json_is_true(json_object_get(d, "usable")))
            zhashx_update(usable, buf, (void *)1);
    }
}

/* NAME appended to the list *TEXT (the N-th one; after S_NAMES_MAX only
 * counted). */
static void
s_name_add(char **text, size_t n, const char *name)
{
    if (n >= S_NAMES_MAX)
        return;
    char *more =
        pm_asprintf("%s%s%s", *text ? *text : "", *text ? ", " : "", name);
    free(*text);
    *text = more;
}

/* "WHAT: LIST[ and N more]" appended to *DETAIL ("; " between), when N
 * names were counted into LIST. */
static void
s_names_done(char **detail, const char *what, char *list, size_t n)
{
    if (!n)
        return;
    char *more = n > S_NAMES_MAX ? pm_asprintf(" and %zu more", n - S_NAMES_MAX)
                                 : pm_strdup("");
    char *d = pm_asprintf("%s%s%s: %s%s", *detail ? *detail : "",
                          *detail ? "; " : "", what, list, more);
    free(more);
    free(*detail);
    *detail = d;
}

/* OK only when the milter has a usable key for every domain POLICY names:
 * a milter that lists fewer (or other) domains signs less than the
 * policy asks, whatever it says about the ones it lists. */
static Pm__ServiceStatus *
s_dkim(json_t *dk, const Pm__Policy *policy)
{
    zhashx_t *listed = zhashx_new(), *usable = zhashx_new();
    s_milter_domains(dk, listed, usable);
    char buf[S_DOMAIN_MAX + 1], *nokey = NULL, *unsigned_ = NULL;
    size_t n_nokey = 0, n_unsigned = 0;
    for (size_t i = 0; i < policy->n_dkim_domains; i++) {
        const char *name = policy->dkim_domains[i]->domain;
        bool known = s_lower(name, buf);
        if (known && zhashx_lookup(usable, buf))
            continue;
        if (known && zhashx_lookup(listed, buf))
            s_name_add(&nokey, n_nokey++, name);
        else
            s_name_add(&unsigned_, n_unsigned++, name);
    }
    zhashx_destroy(&listed);
    zhashx_destroy(&usable);
    char *detail = NULL;
    s_names_done(&detail, "no usable key for", nokey, n_nokey);
    s_names_done(&detail, "privmta-milter does not sign for", unsigned_,
                 n_unsigned);
    free(nokey);
    free(unsigned_);
    size_t n = policy->n_dkim_domains;
    return detail ? s_service(PM__SERVICE_STATUS__STATE__DEGRADED, detail)
                  : s_service(PM__SERVICE_STATUS__STATE__OK,
                              pm_asprintf("%zu domain%s signing", n,
                                          n == 1 ? "" : "s"));
}

/* Whether a status written at T (unix seconds, the milter's word) is
 * within STALE_S seconds before now; else *why says how it is not. A time
 * ahead of the clock is not fresh: the milter writes its file and its
 * "time" on this host's clock, so only a forged or stale one is ahead. */
static bool
s_fresh(int64_t t, int stale_s, char **why)
{
    int64_t now = (int64_t)time(NULL);
    if (t > now) {
        *why = pm_asprintf("privmta-milter status is dated %lld s in the "
                           "future (not trusted)",
                           (long long)(t - now));
        return false;
    }
    if (now - t > stale_s) {
        *why = pm_asprintf("privmta-milter status is %lld s old (not "
                           "running?)",
                           (long long)(now - t));
        return false;
    }
    return true;
}

/* The status file's text, or NULL with *why saying why it cannot be used.
 * Sets *len. */
static char *
s_read(const char *path, int stale_s, size_t *len, char **why)
{
    struct stat sb;
    if (!path || !*path) {
        *why = pm_strdup("no privmta-milter configured on this node");
        return NULL;
    }
    if (lstat(path, &sb) != 0) {
        *why = pm_strdup("privmta-milter is not running (no status file)");
        return NULL;
    }
    /* the milter's user sets the mtime (utimensat): one in the future
     * would keep a dead milter fresh for ever */
    if (!s_fresh(sb.st_mtime, stale_s, why))
        return NULL;
    char *data = NULL, *err = NULL;
    if (pm_file_read(path, PM_SCANSTATUS_MAX, PM_FILE_STRICT, &data, len,
                     &err) != PM_OK) {
        *why = pm_asprintf("privmta-milter status refused: %s", err);
        free(err);
        return NULL;
    }
    return data;
}

/* The parsed status, or NULL with *why saying what is wrong with it.
 * Unless STALE_S is negative (taken as fresh), its own "time" must be
 * fresh too: the file's mtime alone is the milter user's to set, and a
 * hung milter's file can be touched by anything running as that user. */
static json_t *
s_parse(const char *data, size_t len, int stale_s, char **why)
{
    if (len > PM_SCANSTATUS_MAX) {
        *why = pm_asprintf("privmta-milter status refused: over %u bytes",
                           PM_SCANSTATUS_MAX);
        return NULL;
    }
    json_error_t jerr;
    json_t *root = json_loadb(data, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!json_is_object(root)) {
        /* jansson quotes the offending input in its message */
        char *text = pm_text_escape(root ? "not an object" : jerr.text, 80);
        *why = pm_asprintf("privmta-milter status is not valid JSON (line "
                           "%d: %s)",
                           jerr.line, text);
        free(text);
        json_decref(root);
        return NULL;
    }
    json_t *t = json_object_get(root, "time");
    if (stale_s >= 0 && !json_is_integer(t)) {
        *why = pm_strdup("privmta-milter status has no time");
        json_decref(root);
        return NULL;
    }
    if (stale_s >= 0 && !s_fresh(json_integer_value(t), stale_s, why)) {
        json_decref(root);
        return NULL;
    }
    return root;
}

/* A milter on another revision than the node applied enforces something
 * else than Postfix: never hidden. */
static void
s_check_revision(json_t *root, uint64_t applied, Pm__NodeStatus *st)
{
    json_t *pol = json_object_get(root, "policy");
    json_int_t rev = json_integer_value(json_object_get(pol, "revision"));
    json_t *err = json_object_get(pol, "error");
    if (!applied || ((uint64_t)rev == applied && !json_is_string(err)))
        return;
    char *text = s_text(err, 200);
    char *detail = pm_asprintf("privmta-milter enforces revision %lld, node "
                               "applied %llu%s%s",
                               (long long)rev, (unsigned long long)applied,
                               text ? ": " : "", text ? text : "");
    free(text);
    Pm__ServiceStatus **all[] = {&st->antivirus, &st->antispam, &st->dkim};
    for (size_t i = 0; i < 3; i++) {
        Pm__ServiceStatus *s = *all[i];
        if (!s || s->state == PM__SERVICE_STATUS__STATE__DISABLED ||
            s->state == PM__SERVICE_STATUS__STATE__DOWN)
            continue;
        s->state = PM__SERVICE_STATUS__STATE__DEGRADED;
        free(s->detail);
        s->detail = pm_strdup(detail);
    }
    free(detail);
}

/* A counter as the milter wrote it: anything but a whole number >= 0 is 0
 * (the file is untrusted; a counter only has to be a number). */
static uint64_t
s_count(json_t *o, const char *key)
{
    json_int_t v = json_integer_value(json_object_get(o, key));
    return v > 0 ? (uint64_t)v : 0;
}

/* "messages": MessageCounts, when the milter wrote them. */
static void
s_messages(json_t *m, Pm__NodeStatus *st)
{
    if (!json_is_object(m))
        return;
    Pm__MessageCounts *c = pm_malloc(sizeof *c);
    pm__message_counts__init(c);
    c->accepted = s_count(m, "accepted");
    c->spam_tagged = s_count(m, "spam_tagged");
    c->spam_discarded = s_count(m, "discarded");
    c->rejected_attachment = s_count(m, "rejected_attachment");
    c->rejected_virus = s_count(m, "rejected_virus");
    c->rejected_dkim = s_count(m, "rejected_dkim");
    c->rejected_other = s_count(m, "rejected_other");
    c->tempfailed = s_count(m, "tempfailed");
    if (st->messages)
        pm__message_counts__free_unpacked(st->messages, NULL);
    st->messages = c;
}

/* Fills STATUS from the status text DATA (LEN bytes), or, when READ_WHY is
 * set, reports every enabled service down for that reason. */
static void
s_fill(const char *data, size_t len, const char *read_why, int stale_s,
       const Pm__Policy *policy, uint64_t applied, Pm__NodeStatus *st)
{
    bool av_on = policy && policy->antivirus_enabled;
    bool as_on = policy && policy->antispam_enabled;
    bool dk_on = policy && policy->n_dkim_domains;
    char *why = read_why ? pm_strdup(read_why) : NULL;
    json_t *root = policy && !why ? s_parse(data, len, stale_s, &why) : NULL;
    Pm__ServiceStatus__State off = PM__SERVICE_STATUS__STATE__DISABLED;
    s_set(&st->antivirus,
          !av_on ? s_service(off, pm_strdup("off in the policy"))
          : why  ? s_service(PM__SERVICE_STATUS__STATE__DOWN, pm_strdup(why))
                 : s_antivirus(json_object_get(root, "antivirus"), policy, st));
    s_set(&st->antispam,
          !as_on ? s_service(off, pm_strdup("off in the policy"))
          : why  ? s_service(PM__SERVICE_STATUS__STATE__DOWN, pm_strdup(why))
                 : s_antispam(json_object_get(root, "antispam")));
    s_set(&st->dkim,
          !dk_on ? s_service(off, pm_strdup("no DKIM-enabled domain"))
          : why  ? s_service(PM__SERVICE_STATUS__STATE__DOWN, pm_strdup(why))
                 : s_dkim(json_object_get(root, "dkim"), policy));
    if (root) {
        s_check_revision(root, applied, st);
        s_messages(json_object_get(root, "messages"), st);
    }
    json_decref(root);
    free(why);
}

void
pm_scanstatus_fill(const char *path, const Pm__Policy *policy, uint64_t applied,
                   int stale_s, Pm__NodeStatus *st)
{
    /* read whenever a policy is applied: the counters matter even with
     * every service off (attachments are always checked) */
    char *why = NULL;
    size_t len = 0;
    char *data = policy ? s_read(path, stale_s, &len, &why) : NULL;
    s_fill(data, len, why, stale_s, policy, applied, st);
    free(data);
    free(why);
}

void
pm_scanstatus_fill_data(const char *data, size_t len, const Pm__Policy *policy,
                        uint64_t applied, Pm__NodeStatus *st)
{
    s_fill(data ? data : "", data ? len : 0, NULL, -1, policy, applied, st);
}
