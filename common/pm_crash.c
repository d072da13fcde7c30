/* pm_crash.c - see pm_crash.h. */
#include "pm_crash.h"
#include "pm_log.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>

static char s_step[64];

void
pm_crash_set(const char *step)
{
    snprintf(s_step, sizeof s_step, "%s", step ? step : "");
}

void
pm_crash_point(const char *step)
{
    if (!s_step[0] || strcmp(s_step, step) != 0)
        return;
    pm_warn("debug_crash_at %s: killing this process (test hook)", step);
    raise(SIGKILL);
}
