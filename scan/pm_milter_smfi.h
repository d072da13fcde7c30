/* pm_milter_smfi.h - the libmilter glue of privmta-milter. */
#ifndef PM_MILTER_SMFI_H
#define PM_MILTER_SMFI_H

#include "pm_milter.h"

#include <stdbool.h>

/* Registers the callbacks with libmilter (smfi_register), deciding with
 * MILTER (which must outlive smfi_main). PM_OK or PM_EINTERNAL.
 *
 * NO_REPLIES (for a unix socket): every stage before the end of the
 * message is negotiated "no reply" (SMFIP_NR_*), so the MTA streams
 * connect, envelope, headers and body without waiting on the filter,
 * which decides only at the end of the message anyway. Measured: about a
 * dozen round trips a message less. Not on TCP: Postfix's milter client
 * leaves Nagle on, so packets that get no reply wait for the delayed ACK
 * (~40 ms a message). */
int pm_milter_smfi_register(pm_milter_t *milter, bool no_replies);

#endif
