#include "pm_log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>

static const char *s_prog = "privmta";
static char s_tag[128] = "privmta"; /* PROG or PROG/NODE */
static bool s_syslog;
static pm_loglevel_t s_level = PM_LOG_INFO;

void
pm_log_init(const char *progname, bool use_syslog, pm_loglevel_t level)
{
    const char *slash = strrchr(progname, '/');
    s_prog = slash ? slash + 1 : progname;
    snprintf(s_tag, sizeof s_tag, "%s", s_prog);
    s_level = level;
    if (use_syslog && !s_syslog)
        openlog(s_tag, LOG_PID, LOG_MAIL);
    s_syslog = use_syslog;
}

void
pm_log_set_node(const char *node)
{
    if (node && *node)
        snprintf(s_tag, sizeof s_tag, "%s/%s", s_prog, node);
    else
        snprintf(s_tag, sizeof s_tag, "%s", s_prog);
    if (s_syslog) { /* openlog keeps the pointer: s_tag, changed in place */
        closelog();
        openlog(s_tag, LOG_PID, LOG_MAIL);
    }
}

static void
s_log(pm_loglevel_t level, const char *fmt, va_list ap)
{
    static const char *names[] = {"debug", "info", "warning", "error"};
    static const int prio[] = {LOG_DEBUG, LOG_INFO, LOG_WARNING, LOG_ERR};
    if (level < s_level)
        return;
    char line[2048];
    vsnprintf(line, sizeof line, fmt, ap);
    if (s_syslog)
        syslog(prio[level], "%s: %s", names[level], line);
    fprintf(stderr, "%s: %s: %s\n", s_tag, names[level], line);
}

#define PM_LOG_FN(fn, level)                                                   \
    void fn(const char *fmt, ...)                                              \
    {                                                                          \
        va_list ap;                                                            \
        va_start(ap, fmt);                                                     \
        s_log(level, fmt, ap);                                                 \
        va_end(ap);                                                            \
    }

PM_LOG_FN(pm_debug, PM_LOG_DEBUG)
PM_LOG_FN(pm_info, PM_LOG_INFO)
PM_LOG_FN(pm_warn, PM_LOG_WARN)
PM_LOG_FN(pm_error, PM_LOG_ERROR)

void
pm_fatal(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    s_log(PM_LOG_ERROR, fmt, ap);
    va_end(ap);
    exit(1);
}
