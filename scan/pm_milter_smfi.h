/* pm_milter_smfi.h - the libmilter glue of privmta-milter. */
#ifndef PM_MILTER_SMFI_H
#define PM_MILTER_SMFI_H

#include "pm_milter.h"

/* Registers the callbacks with libmilter (smfi_register), deciding with
 * MILTER (which must outlive smfi_main). PM_OK or PM_EINTERNAL. */
int pm_milter_smfi_register(pm_milter_t *milter);

#endif
