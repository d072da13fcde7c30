/* pm_postconf.c - main.cf through postconf. */
#include "pm_postconf.h"
#include "pm_pf_run.h"
#include "pm_cmd.h"
#include "pm_error.h"
#include "pm_file.h"
#include "pm_mem.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void
pm_postconf_params_free(pm_postconf_param_t **params_p, size_t n)
{
    pm_postconf_param_t *params = *params_p;
    if (!params)
        return;
    for (size_t i = 0; i < n; i++) {
        free(params[i].name);
        free(params[i].value);
    }
    free(params);
    *params_p = NULL;
}

/* postconf -c DIR ARGS... ; returns the exit code (pm_cmd_run). */
static int
s_postconf(const char *dir, const char *const *args, size_t n,
           pm_cmd_result_t *res)
{
    char **argv = pm_calloc(n + 4, sizeof *argv);
    argv[0] = "postconf";
    argv[1] = "-c";
    argv[2] = (char *)dir;
    for (size_t i = 0; i < n; i++)
        argv[3 + i] = (char *)args[i];
    int rc = pm_pf_run(argv, NULL, false, 0, res);
    free(argv);
    return rc;
}

/* Splits LINE (LEN bytes, no newline) as "name = value"; false when it is
 * not one. */
static bool
s_split(const char *line, size_t len, size_t *name_len, const char **value)
{
    const char *eq = memchr(line, '=', len);
    if (!eq)
        return false;
    size_t nlen = (size_t)(eq - line);
    while (nlen && line[nlen - 1] == ' ')
        nlen--;
    if (!nlen || memchr(line, ' ', nlen))
        return false;
    const char *v = eq + 1;
    while (v < line + len && (*v == ' ' || *v == '\t'))
        v++;
    *name_len = nlen;
    *value = v;
    return true;
}

size_t
pm_postconf_parse(const char *text, const char *const *names, size_t n,
                  char **values)
{
    size_t found = 0;
    for (size_t i = 0; i < n; i++)
        values[i] = NULL;
    for (const char *line = text; *line;) {
        size_t len = strcspn(line, "\n"), nlen = 0;
        const char *v = NULL;
        if (s_split(line, len, &nlen, &v))
            for (size_t i = 0; i < n; i++)
                if (!values[i] && strlen(names[i]) == nlen &&
                    memcmp(names[i], line, nlen) == 0) {
                    values[i] = pm_strndup(v, (size_t)(line + len - v));
                    found++;
                    break;
                }
        line += len + (line[len] == '\n');
    }
    return found;
}

/* postconf -c DIR FLAG NAMES...: PM_OK with RES (caller clears it), or
 * PM_EIO with *why ("postconf FLAG: exit 1: ...", RES cleared). */
static int
s_postconf_names(const char *dir, const char *flag, const char *const *names,
                 size_t n, pm_cmd_result_t *res, char **why)
{
    const char **args = pm_calloc(n + 1, sizeof *args);
    args[0] = flag;
    memcpy(args + 1, names, n * sizeof *names);
    int rc = s_postconf(dir, args, n + 1, res);
    free(args);
    if (rc == 0)
        return PM_OK;
    char *what = pm_asprintf("postconf %s", flag);
    char *e = pm_cmd_why(what, res);
    pm_why(why, "pm_postconf", "%s", e);
    free(e);
    free(what);
    pm_cmd_result_clear(res);
    return PM_EIO;
}

/* The values postconf FLAG prints for NAMES, by name (pm_postconf_parse:
 * NULL for a name it printed no line for). */
static int
s_query(const char *dir, const char *flag, const char *const *names, size_t n,
        char **values, char **why)
{
    pm_cmd_result_t c;
    int err = s_postconf_names(dir, flag, names, n, &c, why);
    if (err != PM_OK)
        return err;
    pm_postconf_parse(c.out, names, n, values);
    pm_cmd_result_clear(&c);
    return PM_OK;
}

int
pm_postconf_read(const char *dir, const char *const *names, size_t n,
                 char **values, char **why)
{
    int err = s_query(dir, "-x", names, n, values, why);
    for (size_t i = 0; err == PM_OK && i < n; i++)
        if (!values[i]) /* unknown to this Postfix: postconf warned */
            values[i] = pm_strdup("");
    return err;
}

int
pm_postconf_read_set(const char *dir, const char *const *names, size_t n,
                     char **values, char **why)
{
    return s_query(dir, "-n", names, n, values, why);
}

int
pm_postconf_diff(const char *dir, const pm_postconf_param_t *params, size_t n,
                 char **found)
{
    const char **names = pm_calloc(n ? n : 1, sizeof *names);
    for (size_t i = 0; i < n; i++) {
        names[i] = params[i].name;
        found[i] = NULL;
    }
    int differ = s_query(dir, "-n", names, n, found, NULL) == PM_OK ? 0 : -1;
    for (size_t i = 0; differ >= 0 && i < n; i++) {
        if (found[i] && strcmp(found[i], params[i].value) == 0)
            PM_FREE(&found[i]); /* holds: not a difference */
        else if (!found[i])
            found[i] = pm_strdup(""); /* not set: the default applies */
        differ += found[i] != NULL;
    }
    free(names);
    return differ;
}

bool
pm_postconf_has(const char *dir, const pm_postconf_param_t *params, size_t n)
{
    char **found = pm_calloc(n ? n : 1, sizeof *found);
    int differ = pm_postconf_diff(dir, params, n, found);
    for (size_t i = 0; i < n; i++)
        free(found[i]);
    free(found);
    return differ == 0;
}

/* The first "warning" or "fatal" line of ERR that names one of PARAMS, or
 * NULL. Caller frees. */
static char *
s_message_about(const char *err, const pm_postconf_param_t *params, size_t n)
{
    for (const char *line = err; *line;) {
        size_t len = strcspn(line, "\n");
        bool bad =
            memmem(line, len, "warning", 7) || memmem(line, len, "fatal", 5);
        for (size_t i = 0; bad && i < n; i++)
            if (memmem(line, len, params[i].name, strlen(params[i].name)))
                return pm_strndup(line, len < 500 ? len : 500);
        line += len + (line[len] == '\n');
    }
    return NULL;
}

static void
s_backdate_times(struct timespec ts[2])
{
    clock_gettime(CLOCK_REALTIME, &ts[0]);
    ts[0].tv_sec -= 2;
    ts[1] = ts[0];
}

/* DIR's main.cf, just written by postconf, dated back (see the header). */
static void
s_backdate(const char *dir)
{
    struct timespec ts[2];
    s_backdate_times(ts);
    char *path = pm_asprintf("%s/main.cf", dir);
    utimensat(AT_FDCWD, path, ts, 0);
    free(path);
}

/* postconf -c DIR FLAG "name<SEP>value"... for PARAMS (-e: " = ", -P:
 * "="); returns the exit code, with RES (caller clears it). */
static int
s_postconf_params(const char *dir, const char *flag, const char *sep,
                  const pm_postconf_param_t *params, size_t n,
                  pm_cmd_result_t *res)
{
    const char **args = pm_calloc(n + 1, sizeof *args);
    char **kv = pm_calloc(n + 1, sizeof *kv);
    args[0] = flag;
    for (size_t i = 0; i < n; i++)
        args[i + 1] = kv[i] =
            pm_asprintf("%s%s%s", params[i].name, sep, params[i].value);
    int rc = s_postconf(dir, args, n + 1, res);
    for (size_t i = 0; i < n; i++)
        free(kv[i]);
    free(kv);
    free(args);
    return rc;
}

/* postconf -e PARAMS; PM_OK when it neither fails nor complains. */
static int
s_set(const char *dir, const pm_postconf_param_t *params, size_t n, char **why)
{
    pm_cmd_result_t c;
    int rc = s_postconf_params(dir, "-e", " = ", params, n, &c);
    char *msg = rc == 0 ? s_message_about(c.err, params, n) : NULL;
    int err = rc != 0 ? PM_EIO : msg ? PM_EINVAL : PM_OK;
    if (rc != 0) {
        char *e = pm_cmd_why("postconf -e", &c);
        pm_why(why, "pm_postconf", "%s", e);
        free(e);
    } else if (msg) {
        pm_why(why, "pm_postconf", "postconf -e: %s", msg);
    }
    free(msg);
    pm_cmd_result_clear(&c);
    return err;
}

int
pm_postconf_write(const char *dir, const pm_postconf_param_t *params, size_t n,
                  char **why)
{
    int err = s_set(dir, params, n, why);
    if (err != PM_OK)
        return err;
    s_backdate(dir);
    /* read back, the way every daemon will read the file */
    if (pm_postconf_has(dir, params, n))
        return PM_OK;
    const char *all[] = {"-n"};
    pm_cmd_result_t c;
    s_postconf(dir, all, 1, &c);
    char *msg = s_message_about(c.err, params, n);
    if (msg)
        pm_why(why, "pm_postconf", "postconf -n: %s", msg);
    else
        pm_why(why, "pm_postconf",
               "postconf -n does not read back the values written with "
               "postconf -e");
    free(msg);
    pm_cmd_result_clear(&c);
    return PM_EINVAL;
}

int
pm_postconf_unset(const char *dir, const char *const *names, size_t n,
                  char **why)
{
    pm_cmd_result_t c;
    int err = s_postconf_names(dir, "-X", names, n, &c, why);
    if (err != PM_OK)
        return err;
    pm_cmd_result_clear(&c);
    s_backdate(dir);
    char **left = pm_calloc(n ? n : 1, sizeof *left);
    err = pm_postconf_read_set(dir, names, n, left, why);
    for (size_t i = 0; i < n; i++) {
        if (err == PM_OK && left[i]) {
            pm_why(why, "pm_postconf", "postconf -X %s: main.cf still sets it",
                   names[i]);
            err = PM_EINVAL;
        }
        free(left[i]);
    }
    free(left);
    return err;
}

int
pm_postconf_write_file(const char *path, const char *data, size_t len,
                       const struct stat *st, char **why)
{
    struct timespec ts[2];
    s_backdate_times(ts);
    return pm_file_write_dated(path, data, len, st->st_mode & 07777, st->st_gid,
                               ts, why);
}

int
pm_postconf_read_overrides(const char *dir, const char *const *names, size_t n,
                           pm_postconf_param_t **out, size_t *n_out, char **why)
{
    const char *const flag[] = {"-P"};
    pm_cmd_result_t c;
    if (s_postconf(dir, flag, 1, &c) != 0) {
        char *e = pm_cmd_why("postconf -P", &c);
        pm_why(why, "pm_postconf", "%s", e);
        free(e);
        pm_cmd_result_clear(&c);
        return PM_EIO;
    }
    size_t got = 0, cap = 4;
    pm_postconf_param_t *params = pm_calloc(cap, sizeof *params);
    for (const char *line = c.out; *line;) {
        size_t len = strcspn(line, "\n"), nlen = 0;
        const char *v = NULL, *slash = NULL;
        if (s_split(line, len, &nlen, &v))
            for (const char *p = line; p < line + nlen; p++)
                if (*p == '/')
                    slash = p; /* "service/type/name": the last one */
        for (size_t i = 0; slash && i < n; i++) {
            size_t plen = (size_t)(line + nlen - slash - 1);
            if (strlen(names[i]) != plen || memcmp(names[i], slash + 1, plen))
                continue;
            if (got == cap)
                params = pm_realloc(params, (cap *= 2) * sizeof *params);
            params[got].name = pm_strndup(line, nlen);
            params[got++].value = pm_strndup(v, (size_t)(line + len - v));
            break;
        }
        line += len + (line[len] == '\n');
    }
    pm_cmd_result_clear(&c);
    *out = params;
    *n_out = got;
    return PM_OK;
}

int
pm_postconf_write_overrides(const char *dir, const pm_postconf_param_t *params,
                            size_t n, char **why)
{
    pm_cmd_result_t c;
    int rc = s_postconf_params(dir, "-P", "=", params, n, &c);
    if (rc != 0) {
        char *e = pm_cmd_why("postconf -P", &c);
        pm_why(why, "pm_postconf", "%s", e);
        free(e);
    }
    pm_cmd_result_clear(&c);
    return rc == 0 ? PM_OK : PM_EIO;
}
