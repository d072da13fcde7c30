/* pm_tnef.c - TNEF attachment names with libytnef. */
#include "pm_tnef.h"
#include "pm_mem.h"

#include <glib.h>
#include <stdio.h> /* tnef-types.h needs FILE */
#include <stdlib.h>
#include <string.h>
/* ytnef.h defines BYTE, WORD and DWORD as macros: include it last and
 * keep it out of headers. */
#include <ytnef.h>

/* Reports the value V of a MAPI string property, if there is one: 1 when
 * FN asked to stop, -1 when the name cannot be read, else 0. libytnef
 * turns a UTF-16 (PT_UNICODE) value into UTF-8 itself, NUL-ended, in a
 * buffer of 3 * SIZE / 2 + 1 bytes, and leaves SIZE the UTF-16 byte count:
 * the name is read as that string (converting it again read every such
 * name as garbage, so a long file name "evil.exe" stored as UTF-16 passed
 * unchecked). An odd count is no UTF-16 (libytnef drops the last byte): a
 * client may save the file under any name, so it is unread, never a pass. */
static int
s_report(const variableLength *v, bool utf16, pm_tnef_name_fn fn, void *arg)
{
    if (!v || v == MAPI_UNDEFINED || !v->data || v->size <= 0)
        return 0;
    if (utf16 && v->size % 2)
        return -1;
    size_t max = utf16 ? (size_t)v->size / 2 * 3 + 1 : (size_t)v->size;
    char *name =
        g_strndup((const char *)v->data, strnlen((const char *)v->data, max));
    int rc = fn(arg, name) ? 1 : 0;
    g_free(name);
    return rc;
}

/* Every name ATT gives itself: the down-level title, then the MAPI long
 * and short file names in both string types. As s_report: 1 stopped, -1
 * a name unread (the others still reported), 0. */
static int
s_attachment(Attachment *att, pm_tnef_name_fn fn, void *arg)
{
    static const unsigned ids[] = {PR_ATTACH_LONG_FILENAME, PR_ATTACH_FILENAME};
    MAPIProps *p = &att->MAPI;
    const variableLength *names[5] = {&att->Title};
    bool utf16[5] = {false};
    for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++) {
        names[1 + 2 * i] = MAPIFindProperty(p, PROP_TAG(PT_STRING8, ids[i]));
        names[2 + 2 * i] = MAPIFindProperty(p, PROP_TAG(PT_UNICODE, ids[i]));
        utf16[2 + 2 * i] = true;
    }
    int rc = 0;
    for (size_t i = 0; i < 5 && rc <= 0; i++) {
        int r = s_report(names[i], utf16[i], fn, arg);
        rc = r ? r : rc;
    }
    return rc;
}

int
pm_tnef_list(const void *data, size_t len, pm_tnef_name_fn fn,
             pm_tnef_data_fn data_fn, void *arg)
{
    if (!data || len < 4 || len > (size_t)G_MAXINT32)
        return -1;
    /* TNEFParseMemory takes a mutable buffer: give it a copy. */
    BYTE *copy = pm_malloc(len);
    memcpy(copy, data, len);
    TNEFStruct tnef;
    memset(&tnef, 0, sizeof tnef);
    TNEFInitialize(&tnef);
    tnef.Debug = 0;
    int rc = TNEFParseMemory(copy, (long)len, &tnef) == 0 ? 0 : -1;
    /* Attachments parsed before an error are still in the list. */
    for (Attachment *att = tnef.starting_attach.next; att; att = att->next) {
        int r = s_attachment(att, fn, arg);
        if (r == 0 && data_fn && att->FileData.data && att->FileData.size > 0 &&
            data_fn(arg, att->FileData.data, (size_t)att->FileData.size))
            r = 1;
        if (r > 0) {
            rc = 1;
            break;
        }
        if (r < 0)
            rc = -1;
    }
    TNEFFree(&tnef);
    free(copy);
    return rc;
}
