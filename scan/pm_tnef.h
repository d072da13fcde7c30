/* pm_tnef.h - the file names in a TNEF stream ("winmail.dat",
 * application/ms-tnef), with libytnef.
 *
 * Outlook wraps attachments in TNEF; a client that understands it saves
 * them under the names stored inside, so those names are what count. Each
 * attachment may name itself several ways (the title attribute, the MAPI
 * long and short file names, in 8-bit or UTF-16 form); every one found is
 * reported.
 *
 * libytnef prints to stdout when a stream is corrupt; it does nothing
 * else outside the arguments. Thread-safe.
 */
#ifndef PM_TNEF_H
#define PM_TNEF_H

#include <stdbool.h>
#include <stddef.h>

/* Called with each name (UTF-8 when stored as UTF-16, as libytnef
 * converts it, else as stored); returns true to stop. */
typedef bool (*pm_tnef_name_fn)(void *arg, const char *name);

/* Called with the contents of each attachment (after its names), so that
 * an archive inside is opened too; returns true to stop. */
typedef bool (*pm_tnef_data_fn)(void *arg, const void *data, size_t len);

/* Reports to FN the attachment names in the TNEF stream DATA of LEN bytes,
 * and to DATA_FN (may be NULL) each attachment's contents. Returns 0 when
 * every attachment was reported, 1 when a callback stopped the listing,
 * -1 when libytnef cannot parse DATA or a name cannot be read (UTF-16 of
 * an odd length); what could be read is reported all the same. */
int pm_tnef_list(const void *data, size_t len, pm_tnef_name_fn fn,
                 pm_tnef_data_fn data_fn, void *arg);

#endif
