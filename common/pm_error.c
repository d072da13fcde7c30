#include "pm_error.h"

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
        return "out of memory or storage map full";
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
    }
    return "unknown error";
}
