#include "pm_log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

static const char *s_prog = "privmta";
static char s_tag[128] = "privmta"; /* PROG or PROG/NODE */
static bool s_syslog;
static bool s_stderr = true;
static pm_loglevel_t s_level = PM_LOG_INFO;

/* Is stderr the journal's stream? systemd sets JOURNAL_STREAM to its
 * "device:inode" for a service whose stderr it connected there
 * (systemd.exec(5)); a child whose stderr was redirected keeps the
 * variable, hence the comparison. */
static bool
s_stderr_is_journal(void)
{
    const char *env = getenv("JOURNAL_STREAM");
    unsigned long long dev, ino;
    struct stat st;
    if (!env || sscanf(env, "%llu:%llu", &dev, &ino) != 2 ||
        fstat(STDERR_FILENO, &st) != 0)
        return false;
    return (unsigned long long)st.st_dev == dev &&
           (unsigned long long)st.st_ino == ino;
}

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
    s_stderr = !(use_syslog && s_stderr_is_journal());
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
    if (s_stderr)
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
