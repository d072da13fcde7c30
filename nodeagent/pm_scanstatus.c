#include "pm_scanstatus.h"
#include "pm_mem.h"

#include <jansson.h>
#include <stdbool.h>
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

static Pm__ServiceStatus *
s_antivirus(json_t *av)
{
    json_t *err = json_object_get(av, "last_error");
    if (!json_is_true(json_object_get(av, "loaded")))
        return s_service(
            PM__SERVICE_STATUS__STATE__DOWN,
            pm_asprintf("engine not loaded%s%s",
                        json_is_string(err) ? ": " : "",
                        json_is_string(err) ? json_string_value(err) : ""));
    json_int_t sigs = json_integer_value(json_object_get(av, "signatures"));
    json_t *age = json_object_get(av, "db_age_seconds");
    char *detail =
        json_is_integer(age)
            ? pm_asprintf("%lld signatures, database %lld h old",
                          (long long)sigs,
                          (long long)json_integer_value(age) / 3600)
            : pm_asprintf("%lld signatures (custom only)", (long long)sigs);
    return s_service(json_is_string(err) ? PM__SERVICE_STATUS__STATE__DEGRADED
                                         : PM__SERVICE_STATUS__STATE__OK,
                     detail);
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
    return s_service(PM__SERVICE_STATUS__STATE__DOWN,
                     pm_asprintf("spamd unreachable: %s",
                                 json_is_string(err) ? json_string_value(err)
                                                     : "unknown error"));
}

static Pm__ServiceStatus *
s_dkim(json_t *dk)
{
    json_t *all = json_object_get(dk, "domains");
    size_t total = json_array_size(all), usable = 0;
    char *bad = pm_strdup("");
    for (size_t i = 0; i < total; i++) {
        json_t *d = json_array_get(all, i);
        if (json_is_true(json_object_get(d, "usable"))) {
            usable++;
            continue;
        }
        char *more =
            pm_asprintf("%s%s%s", bad, *bad ? ", " : "",
                        json_string_value(json_object_get(d, "domain")));
        free(bad);
        bad = more;
    }
    Pm__ServiceStatus *s =
        usable == total ? s_service(PM__SERVICE_STATUS__STATE__OK,
                                    pm_asprintf("%zu domain%s signing", total,
                                                total == 1 ? "" : "s"))
                        : s_service(PM__SERVICE_STATUS__STATE__DEGRADED,
                                    pm_asprintf("no usable key for: %s", bad));
    free(bad);
    return s;
}

void
pm_scanstatus_fill(const char *path, const Pm__Policy *policy, int stale_s,
                   Pm__NodeStatus *st)
{
    bool av_on = policy && policy->antivirus_enabled;
    bool as_on = policy && policy->antispam_enabled;
    bool dk_on = policy && policy->n_dkim_domains;
    struct stat sb;
    json_t *root = NULL;
    char *why = NULL;
    if (!path || !*path)
        why = pm_strdup("no privmta-milter configured on this node");
    else if (stat(path, &sb) != 0)
        why = pm_strdup("privmta-milter is not running (no status file)");
    else if (time(NULL) - sb.st_mtime > stale_s)
        why = pm_asprintf("privmta-milter status is %lld s old (not running?)",
                          (long long)(time(NULL) - sb.st_mtime));
    else if (!(root = json_load_file(path, 0, NULL)))
        why = pm_strdup("privmta-milter status file is unreadable");
    Pm__ServiceStatus__State off = PM__SERVICE_STATUS__STATE__DISABLED;
    s_set(&st->antivirus,
          !av_on ? s_service(off, pm_strdup("off in the policy"))
          : why  ? s_service(PM__SERVICE_STATUS__STATE__DOWN, pm_strdup(why))
                 : s_antivirus(json_object_get(root, "antivirus")));
    s_set(&st->antispam,
          !as_on ? s_service(off, pm_strdup("off in the policy"))
          : why  ? s_service(PM__SERVICE_STATUS__STATE__DOWN, pm_strdup(why))
                 : s_antispam(json_object_get(root, "antispam")));
    s_set(&st->dkim,
          !dk_on ? s_service(off, pm_strdup("no DKIM-enabled domain"))
          : why  ? s_service(PM__SERVICE_STATUS__STATE__DOWN, pm_strdup(why))
                 : s_dkim(json_object_get(root, "dkim")));
    json_decref(root);
    free(why);
}
