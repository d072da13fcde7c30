/* pm_clock.h - the one monotonic clock of privmta's C code, for deadlines
 * and durations (never for dates: those are time(NULL)). Libraries that do
 * not link czmq use it instead of zclock_mono, with the same meaning. */
#ifndef PM_CLOCK_H
#define PM_CLOCK_H

#include <stdint.h>

/* Milliseconds since an arbitrary point, never going back. */
int64_t pm_clock_ms(void);

#endif
