/* pm_postconf.h - reading and writing a Postfix main.cf (and master.cf
 * service overrides) through postconf.
 *
 * Every value is read and written the way Postfix itself reads it:
 * through `postconf -c DIR` (run with common/pm_cmd, 15 s at most), never
 * by parsing main.cf here. Reading asks for "name = value" lines and maps
 * them by name, so a parameter this Postfix does not know (postconf warns
 * on stderr and prints no line for it) reads as empty and cannot shift
 * the values after it. Writes are postconf -e, then read back; a whole
 * main.cf is written atomically (pm_file). Every write dates main.cf back
 * 2 s: Postfix re-reads a main.cf younger than a second, pausing 300 ms
 * per try ("is the file being edited?"), which would cost every postconf,
 * postfix and daemon start ~2.4 s after a write; ours are complete.
 */
#ifndef PM_POSTCONF_H
#define PM_POSTCONF_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/stat.h>

/* One main.cf parameter. */
typedef struct {
    char *name;
    char *value;
} pm_postconf_param_t;

/* Frees N parameters and their strings; accepts NULL, nulls *PARAMS_P. */
void pm_postconf_params_free(pm_postconf_param_t **params_p, size_t n);

/* Parses TEXT, postconf output of "name = value" lines ("name =" when the
 * value is empty), and sets VALUES[i] to a copy of the value of NAMES[i]
 * (caller frees), or NULL when TEXT has no line for it. Lines of names not
 * asked for, and lines that are not "name = value", are ignored. Returns
 * how many of the N names were found. */
size_t pm_postconf_parse(const char *text, const char *const *names, size_t n,
                         char **values);

/* Reads the values of NAMES in configuration directory DIR, $names
 * expanded (postconf -c DIR -x NAMES...), into VALUES (caller frees each);
 * a name Postfix does not know reads as "". Returns PM_OK, or PM_EIO with
 * *why ("postconf -x: exit 1: postconf: fatal: ...") and VALUES untouched. */
int pm_postconf_read(const char *dir, const char *const *names, size_t n,
                     char **values, char **why);

/* Reads what DIR's main.cf itself sets NAMES to (postconf -c DIR -n
 * NAMES..., $names not expanded) into VALUES: a copy of the value (caller
 * frees), or NULL when main.cf does not set it (the default applies).
 * Returns PM_OK, or PM_EIO with *why ("postconf -n: exit 1: ...") and
 * VALUES untouched. */
int pm_postconf_read_set(const char *dir, const char *const *names, size_t n,
                         char **values, char **why);

/* True when DIR's main.cf itself sets each of PARAMS to exactly its value
 * (postconf -n: set explicitly, not by default). False when postconf
 * fails. */
bool pm_postconf_has(const char *dir, const pm_postconf_param_t *params,
                     size_t n);

/* Says which of PARAMS DIR's main.cf does not set to exactly its value
 * (postconf -n): FOUND[i] is NULL when it does, else a copy of what it
 * sets instead, "" when it sets nothing (the default applies). Caller
 * frees each. Returns how many differ, or -1 (FOUND all NULL) when
 * postconf fails. */
int pm_postconf_diff(const char *dir, const pm_postconf_param_t *params,
                     size_t n, char **found);

/* Sets PARAMS in DIR's main.cf (postconf -c DIR -e "name = value"...),
 * dates it back, and reads them back: postconf must neither complain about
 * one of them (a "warning" or "fatal" line naming it) nor read back
 * another value. Returns PM_OK; PM_EIO when postconf fails ("postconf -e:
 * exit 1: ..."); PM_EINVAL when it complains ("postconf -e: postconf:
 * warning: ...") or reads back something else ("postconf -n: ..."). Always
 * with *why; main.cf may hold part of PARAMS then. */
int pm_postconf_write(const char *dir, const pm_postconf_param_t *params,
                      size_t n, char **why);

/* Removes NAMES from DIR's main.cf (postconf -c DIR -X NAMES...), so
 * their defaults apply; a name main.cf does not set is no error. Dates
 * main.cf back as pm_postconf_write does and reads back: postconf -n must
 * show none of them. Returns PM_OK; PM_EIO when postconf fails; PM_EINVAL
 * when one is still set. Always with *why on error. */
int pm_postconf_unset(const char *dir, const char *const *names, size_t n,
                      char **why);

/* The per-service overrides DIR's master.cf sets (-o name=value, read
 * with postconf -c DIR -P) for any of NAMES: one param per override, named
 * "service/type/name" as postconf prints it. *OUT (caller frees with
 * pm_postconf_params_free) and *N_OUT. PM_OK, or PM_EIO with *why. */
int pm_postconf_read_overrides(const char *dir, const char *const *names,
                               size_t n, pm_postconf_param_t **out,
                               size_t *n_out, char **why);

/* Sets PARAMS, named "service/type/name", in DIR's master.cf (postconf -c
 * DIR -P name=value...). postconf refuses whitespace in such a value: a
 * value with blanks goes into main.cf under a name of its own, and the
 * override refers to it ($name). PM_OK, or PM_EIO with *why. */
int pm_postconf_write_overrides(const char *dir,
                                const pm_postconf_param_t *params, size_t n,
                                char **why);

/* Replaces PATH (a main.cf) with LEN bytes of DATA, atomically and
 * durably, with the permission bits and group of ST, dated back. Returns
 * PM_OK, or PM_EIO with *why; PATH is unchanged then. */
int pm_postconf_write_file(const char *path, const char *data, size_t len,
                           const struct stat *st, char **why);

#endif
