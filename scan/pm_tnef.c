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

/* Reports the value V of a MAPI string property, if there is one. */
static bool
s_report(const variableLength *v, bool utf16, pm_tnef_name_fn fn, void *arg)
{
    if (!v || v == MAPI_UNDEFINED || !v->data || v->size <= 0)
        return false;
    char *name = utf16 ? g_convert((const char *)v->data, v->size, "UTF-8",
                                   "UTF-16LE", NULL, NULL, NULL)
                       : g_strndup((const char *)v->data, (gsize)v->size);
    bool stop = name && fn(arg, name);
    g_free(name);
    return stop;
}

/* Every name ATT gives itself: the down-level title, then the MAPI long
 * and short file names in both string types. */
static bool
s_attachment(Attachment *att, pm_tnef_name_fn fn, void *arg)
{
    static const unsigned ids[] = {PR_ATTACH_LONG_FILENAME, PR_ATTACH_FILENAME};
    if (s_report(&att->Title, false, fn, arg))
        return true;
    for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++) {
        MAPIProps *p = &att->MAPI;
        if (s_report(MAPIFindProperty(p, PROP_TAG(PT_STRING8, ids[i])), false,
                     fn, arg) ||
            s_report(MAPIFindProperty(p, PROP_TAG(PT_UNICODE, ids[i])), true,
                     fn, arg))
            return true;
    }
    return false;
}

int
pm_tnef_list(const void *data, size_t len, pm_tnef_name_fn fn, void *arg)
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
    for (Attachment *att = tnef.starting_attach.next; att; att = att->next)
        if (s_attachment(att, fn, arg)) {
            rc = 1;
            break;
        }
    TNEFFree(&tnef);
    free(copy);
    return rc;
}
