/* pm_conf.h - daemon parameters declared in one table (Postfix style).
 *
 * A configuration file holds "name = value" lines ('#' starts a comment).
 * Values come from, in order: the table's default, the file, the command
 * line (--name=value or --name value, with '_' written as '-').
 */
#ifndef PM_CONF_H
#define PM_CONF_H

#include "pm_diag.h"
#include "pm_log.h"

#include <stdbool.h>

typedef struct {
    const char *name; /* e.g. "state_dir" */
    const char *dflt;
    const char *help;
    char *value; /* filled in by pm_conf_*; free with pm_conf_free */
} pm_param_t;

/* Sets every value to its default. TABLE ends with a {NULL} entry. */
void pm_conf_defaults(pm_param_t *table);

/* Reads PATH (a regular file of at most 1 MiB, through pm_file) into TABLE.
 * A missing file is fine unless MUST_EXIST; "/dev/null" reads as empty.
 * Unknown names and malformed lines go to DIAG (FILE:LINE: name: problem).
 * Returns the number of problems. */
size_t pm_conf_file(pm_param_t *table, const char *path, bool must_exist,
                    pm_diag_t *diag);

/* Sets NAME (as written on the command line, '-' or '_') to VALUE. Returns
 * false when NAME is not in the table. */
bool pm_conf_set(pm_param_t *table, const char *name, const char *value);

/* Reads command-line options into TABLE: "--name=value", "--name value",
 * and "-c FILE" / "--config FILE", which sets *config (applied by the caller
 * before the options, so options win). Problems go to DIAG. Returns the
 * index of the first argument that is not an option. Call twice: once to
 * find the config file, once after reading it. */
int pm_conf_args(pm_param_t *table, int argc, char **argv, const char **config,
                 pm_diag_t *diag);

/* The value of NAME; NULL if NAME is not in the table. */
const char *pm_conf_get(const pm_param_t *table, const char *name);

/* Prints "  --name VALUE   help (default)" for every parameter. */
void pm_conf_usage(const pm_param_t *table, FILE *f);

/* Prints every parameter as the -c FILE takes it, commented out with its
 * default and its help above it: the file a package installs in /etc,
 * made at build time from this table, so it cannot drift from it.
 * PROGRAM names the daemon in the file's first line. */
void pm_conf_print(const pm_param_t *table, const char *program, FILE *f);

/* The start every privmta daemon shares: defaults, then "-c FILE", then
 * the options; -h/--help prints USAGE and the options and exits 0,
 * --print-config the commented file (pm_conf_print) and exits 0; a last
 * argument --check-config reads everything as usual and exits 0 when no
 * setting is unknown or lacks a value (what each value means is checked
 * as the daemon starts); any
 * problem prints every one of them and the usage, and exits 2. FLAG (may
 * be NULL) is one valueless flag allowed as the last argument (e.g.
 * "--public-key"); returns whether it was given. */
bool pm_conf_main(pm_param_t *table, int argc, char **argv, const char *usage,
                  const char *flag);

/* NAME's value as a whole number within MIN..MAX; pm_fatal otherwise. */
long pm_conf_int(const pm_param_t *table, const char *name, long min, long max);

/* A list value: items separated by commas and/or white space
 * ("tcp://a:7420, tcp://b:7420"); empty items are dropped. Returns a
 * NULL-terminated array of *n copies (n may be NULL); free it with
 * pm_conf_list_free (accepts NULL, nulls *list_p). */
char **pm_conf_list(const char *value, size_t *n);
void pm_conf_list_free(char ***list_p);

/* The "log_level" parameter as a level; pm_fatal when it is none. */
pm_loglevel_t pm_conf_loglevel(const pm_param_t *table);

/* Starts logging as PROGNAME (pm_log_init) the way the daemons' shared
 * parameters say: at "log_level" (pm_conf_loglevel: pm_fatal when it is
 * none), and also to syslog when "syslog" is "yes". TABLE must declare
 * both. */
void pm_conf_log_init(const pm_param_t *table, const char *progname);

void pm_conf_free(pm_param_t *table);

#endif
