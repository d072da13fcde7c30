/* pm_handoff.c - see pm_handoff.h. */
#include "pm_handoff.h"
#include "pm_error.h"
#include "pm_file.h"
#include "pm_wire.h"

#include <stdlib.h>

int
pm_handoff_write(const char *path, const Pm__Revision *rev, gid_t gid,
                 char **why)
{
    size_t len = 0;
    uint8_t *buf = pm_wire_pack(&rev->base, &len);
    int rc = pm_file_write(path, buf, len, 0640, gid, why);
    free(buf);
    return rc;
}

int
pm_handoff_read(const char *path, Pm__Revision **rev, char **why)
{
    char *data = NULL;
    size_t len = 0;
    int rc = pm_file_read(path, PM_WIRE_MESSAGE_MAX, PM_FILE_STRICT, &data,
                          &len, why);
    if (rc != PM_OK)
        return rc;
    char *err = NULL;
    rc = pm_wire_unpack_revision((const uint8_t *)data, len, rev, &err);
    if (rc != PM_OK)
        pm_why(why, "handoff", "%s: %s", path, err ? err : "malformed");
    free(err);
    free(data);
    return rc;
}
