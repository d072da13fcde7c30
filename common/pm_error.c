#include "pm_error.h"
#include "pm_log.h"
#include "pm_mem.h"

#include <stdarg.h>
#include <stdlib.h>

const char *
pm_strerror(int err)
{
    switch ((pm_err_t)err) {
    case PM_OK:
        return "success";
    case PM_EINVAL:
        return "invalid input";
    case PM_ENOTFOUND:
        return "not found";
    case PM_ECONFLICT:
        return "conflict: the head revision moved";
    case PM_EEXIST:
        return "already exists";
    case PM_ENOMEM:
        return "out of memory";
    case PM_EIO:
        return "storage or I/O error";
    case PM_EPROTO:
        return "malformed message";
    case PM_ETIMEDOUT:
        return "timed out";
    case PM_EDENIED:
        return "access denied";
    case PM_EINTERNAL:
        return "internal error";
    case PM_EFULL:
        return "store full: no room in its LMDB map or on its disk; free "
               "disk space, raise store_max_mb or lower history_keep";
    }
    return "unknown error";
}

void
pm_why(char **why, const char *prefix, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *text = pm_vasprintf(fmt, ap);
    va_end(ap);
    pm_debug("%s: %s", prefix, text);
    if (why) {
        free(*why);
        *why = text;
    } else {
        free(text);
    }
}
