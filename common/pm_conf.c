#include "pm_conf.h"
#include "pm_error.h"
#include "pm_file.h"
#include "pm_mem.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define S_CONF_FILE_MAX (1u << 20) /* a daemon's name = value file */

void
pm_conf_defaults(pm_param_t *table)
{
    for (pm_param_t *p = table; p->name; p++) {
        free(p->value);
        p->value = pm_strdup(p->dflt ? p->dflt : "");
    }
}

static pm_param_t *
s_find(pm_param_t *table, const char *name)
{
    for (pm_param_t *p = table; p->name; p++) {
        size_t i = 0;
        while (p->name[i] &&
               (p->name[i] == name[i] || (p->name[i] == '_' && name[i] == '-')))
            i++;
        if (!p->name[i] && !name[i])
            return p;
    }
    return NULL;
}

bool
pm_conf_set(pm_param_t *table, const char *name, const char *value)
{
    pm_param_t *p = s_find(table, name);
    if (!p)
        return false;
    free(p->value);
    p->value = pm_strdup(value);
    return true;
}

const char *
pm_conf_get(const pm_param_t *table, const char *name)
{
    pm_param_t *p = s_find((pm_param_t *)table, name);
    return p ? p->value : NULL;
}

static char *
s_trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    size_t n = strlen(s);
    while (n && isspace((unsigned char)s[n - 1]))
        s[--n] = '\0';
    return s;
}

size_t
pm_conf_file(pm_param_t *table, const char *path, bool must_exist,
             pm_diag_t *diag)
{
    size_t before = pm_diag_count(diag);
    pm_diag_set_origin(diag, path);
    if (strcmp(path, "/dev/null") == 0)
        return 0; /* the usual way to say "no configuration file" */
    char *data = NULL, *why = NULL;
    int rc = pm_file_read(path, S_CONF_FILE_MAX, 0, &data, NULL, &why);
    if (rc != PM_OK) {
        if (must_exist || rc != PM_ENOTFOUND)
            pm_diag_add(diag, 0, NULL, "%s", why);
        free(why);
        return pm_diag_count(diag) - before;
    }
    char *next = data;
    for (unsigned no = 1; next; no++) {
        char *line = next, *nl = strchr(line, '\n');
        next = nl ? nl + 1 : NULL;
        if (nl)
            *nl = '\0';
        if (!next && !*line)
            break;
        char *hash = strchr(line, '#');
        if (hash)
            *hash = '\0';
        char *text = s_trim(line), *eq = strchr(text, '=');
        if (!*text)
            continue;
        if (!eq) {
            pm_diag_add(diag, no, NULL, "expected 'name = value'");
            continue;
        }
        *eq = '\0';
        char *name = s_trim(text), *value = s_trim(eq + 1);
        if (!pm_conf_set(table, name, value))
            pm_diag_add(diag, no, name, "unknown parameter");
    }
    free(data);
    return pm_diag_count(diag) - before;
}

void
pm_conf_usage(const pm_param_t *table, FILE *f)
{
    for (const pm_param_t *p = table; p->name; p++) {
        char flag[64];
        snprintf(flag, sizeof flag, "--%s", p->name);
        for (char *c = flag; *c; c++)
            if (*c == '_')
                *c = '-';
        fprintf(f, "  %-20s %s (default: %s)\n", flag, p->help,
                p->dflt && *p->dflt ? p->dflt : "none");
    }
}

/* Writes TEXT as "# " comment lines of at most 76 columns. */
static void
s_comment(const char *text, FILE *f)
{
    while (*text) {
        size_t len = strlen(text), cut = len;
        if (len > 74) {
            cut = 74;
            while (cut > 0 && text[cut] != ' ')
                cut--;
            if (cut == 0)
                cut = strcspn(text, " ");
        }
        fprintf(f, "# %.*s\n", (int)cut, text);
        text += cut;
        while (*text == ' ')
            text++;
    }
}

void
pm_conf_print(const pm_param_t *table, const char *program, FILE *f)
{
    /* three lines: deploy/packaging.cmake puts the package's own values
     * after them */
    fprintf(f,
            "# settings of %s, for its -c FILE\n"
            "# One \"name = value\" a line. Every setting is shown commented "
            "out with\n"
            "# its default; command-line options (--name value) win over "
            "this file.\n",
            program);
    for (const pm_param_t *p = table; p->name; p++) {
        if (strncmp(p->name, "debug_", 6) == 0)
            continue; /* tests only */
        fputc('\n', f);
        s_comment(p->help, f);
        fprintf(f, "#%s = %s\n", p->name, p->dflt ? p->dflt : "");
    }
}

void
pm_conf_free(pm_param_t *table)
{
    for (pm_param_t *p = table; p->name; p++)
        PM_FREE(&p->value);
}

int
pm_conf_args(pm_param_t *table, int argc, char **argv, const char **config,
             pm_diag_t *diag)
{
    int i = 1;
    for (; i < argc && argv[i][0] == '-'; i++) {
        const char *arg = argv[i];
        if (strcmp(arg, "--") == 0)
            return i + 1;
        if (strcmp(arg, "-c") == 0 || strcmp(arg, "--config") == 0) {
            if (i + 1 >= argc) {
                pm_diag_add(diag, 0, arg, "needs a file name");
                break;
            }
            *config = argv[++i];
            continue;
        }
        const char *name = arg + (arg[1] == '-' ? 2 : 1);
        const char *eq = strchr(name, '=');
        char *key =
            eq ? pm_strndup(name, (size_t)(eq - name)) : pm_strdup(name);
        const char *value = eq ? eq + 1 : (i + 1 < argc ? argv[i + 1] : NULL);
        if (!s_find(table, key))
            pm_diag_add(diag, 0, arg, "unknown option");
        else if (!value)
            pm_diag_add(diag, 0, arg, "needs a value");
        else {
            pm_conf_set(table, key, value);
            i += eq ? 0 : 1;
        }
        free(key);
    }
    return i;
}

bool
pm_conf_main(pm_param_t *table, int argc, char **argv, const char *usage,
             const char *flag)
{
    const char *config = NULL;
    bool flagged = false;
    pm_conf_defaults(table);
    if (argc > 1 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
        printf("%s\noptions (also 'name = value' lines in the -c FILE):\n",
               usage);
        pm_conf_usage(table, stdout);
        exit(0);
    }
    if (argc == 2 && !strcmp(argv[1], "--print-config")) {
        const char *slash = strrchr(argv[0], '/');
        pm_conf_print(table, slash ? slash + 1 : argv[0], stdout);
        pm_conf_free(table);
        exit(0);
    }
    bool check = argc > 1 && strcmp(argv[argc - 1], "--check-config") == 0;
    argc -= check;
    if (flag && argc > 1 && strcmp(argv[argc - 1], flag) == 0) {
        flagged = true;
        argc--;
    }
    pm_diag_t *diag = pm_diag_new("command line");
    int rest = pm_conf_args(table, argc, argv, &config, diag);
    /* the file first, then the command line again: options win */
    if (config && pm_conf_file(table, config, true, diag) == 0) {
        pm_diag_set_origin(diag, "command line");
        rest = pm_conf_args(table, argc, argv, &config, diag);
    }
    if (rest < argc)
        pm_diag_add(diag, 0, argv[rest], "unexpected argument");
    if (pm_diag_count(diag)) {
        pm_diag_print(diag, stderr);
        fprintf(stderr, "%s\n", usage);
        pm_conf_usage(table, stderr);
        exit(2);
    }
    pm_diag_destroy(&diag);
    if (check) {
        printf("%s: %s: every setting is known and has a value\n", argv[0],
               config ? config : "(no -c FILE)");
        pm_conf_free(table);
        exit(0);
    }
    return flagged;
}

long
pm_conf_int(const pm_param_t *table, const char *name, long min, long max)
{
    const char *text = pm_conf_get(table, name);
    char *end = NULL;
    errno = 0;
    long v = text ? strtol(text, &end, 10) : 0;
    if (!text || errno || !end || *end || end == text || v < min || v > max)
        pm_fatal("%s '%s' must be a whole number from %ld to %ld", name,
                 text ? text : "", min, max);
    return v;
}

char **
pm_conf_list(const char *value, size_t *n)
{
    size_t count = 0;
    char **list = pm_calloc(1, sizeof *list);
    const char *p = value ? value : "";
    for (;;) {
        p += strspn(p, ", \t\r\n");
        size_t len = strcspn(p, ", \t\r\n");
        if (!len)
            break;
        list = pm_realloc(list, (count + 2) * sizeof *list);
        list[count++] = pm_strndup(p, len);
        list[count] = NULL;
        p += len;
    }
    if (n)
        *n = count;
    return list;
}

void
pm_conf_list_free(char ***list_p)
{
    char **list = *list_p;
    if (!list)
        return;
    for (char **p = list; *p; p++)
        free(*p);
    free(list);
    *list_p = NULL;
}

pm_loglevel_t
pm_conf_loglevel(const pm_param_t *table)
{
    static const char *const names[] = {"debug", "info", "warning", "error"};
    const char *name = pm_conf_get(table, "log_level");
    for (int i = 0; name && i < 4; i++)
        if (strcmp(name, names[i]) == 0)
            return (pm_loglevel_t)i;
    pm_fatal("log_level '%s' is not debug, info, warning or error",
             name ? name : "");
}

void
pm_conf_log_init(const pm_param_t *table, const char *progname)
{
    pm_log_init(progname, strcmp(pm_conf_get(table, "syslog"), "yes") == 0,
                pm_conf_loglevel(table));
}
