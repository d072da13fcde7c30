/* pm_log.h - daemon and CLI logging, Postfix msg_* style.
 *
 * Libraries (store/, proto/, common/ policy code) only ever call pm_debug;
 * daemons log when they act on an error. pm_fatal logs and exits 1 so error
 * paths in main() stay one line long. Secrets are never passed here.
 */
#ifndef PM_LOG_H
#define PM_LOG_H

#include <stdbool.h>

typedef enum {
    PM_LOG_DEBUG,
    PM_LOG_INFO,
    PM_LOG_WARN,
    PM_LOG_ERROR
} pm_loglevel_t;

/* Sets the program name shown in every line, whether lines also go to
 * syslog, and the lowest level printed. Safe to call again. Lines go to
 * stderr too, unless they go to syslog and stderr is the journal
 * (systemd's JOURNAL_STREAM names the stream): the journal would then
 * hold each line twice. */
void pm_log_init(const char *progname, bool use_syslog, pm_loglevel_t level);

/* The node this daemon serves (NULL or "": none): every line is then
 * tagged PROGRAM/NODE, as Postfix tags an instance's lines with its
 * syslog_name, so that lines merged from many nodes (journald, a log
 * host) still say where they come from. Call after pm_log_init. */
void pm_log_set_node(const char *node);

void pm_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void pm_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void pm_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void pm_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void pm_fatal(const char *fmt, ...)
    __attribute__((format(printf, 1, 2), noreturn));

#endif
