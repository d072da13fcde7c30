/* pm_milter_wake.h - privmta-milter stops at once on SIGTERM, not within
 * libmilter's five seconds.
 *
 * libmilter's listener (the thread in smfi_main) waits for connections in
 * select() with a 5 s timeout (MI_CHK_TIME), holding its listener mutex,
 * and looks at its stop flag only when select returns. On SIGTERM its
 * signal thread sets the flag and then waits for that mutex to close the
 * listening socket; nothing wakes the select. So a stop took up to 5 s: in
 * a rolling restart, seconds of a node out of rotation for nothing.
 * libmilter gives no hook to see a stop coming (not even the socket's
 * closing, which waits on the same mutex).
 *
 * So a thread of ours interrupts the listener every PM_MILTER_WAKE_MS
 * with SIGUSR1, whose handler does nothing: select returns EINTR, which
 * libmilter's loop takes as "look at the stop flag, then wait again".
 * Ten wakeups a second cost nothing measurable; a stop then takes at most
 * PM_MILTER_WAKE_MS. The handler has SA_RESTART, so other system calls of
 * that thread carry on; Linux never restarts select or poll, whatever the
 * flag (signal(7)).
 *
 * SIGUSR1 must not be blocked in LISTENER (privmta-milter blocks only
 * SIGTERM, SIGINT and SIGHUP, which libmilter's own thread takes). */
#ifndef PM_MILTER_WAKE_H
#define PM_MILTER_WAKE_H

#include "pm_error.h"

#include <pthread.h>

#define PM_MILTER_WAKE_MS 100

/* Starts the kicks (just before smfi_main) at LISTENER, the thread that
 * calls smfi_main. PM_EINTERNAL: no thread or handler, with *WHY; a stop
 * then still works, in up to 5 s. */
int pm_milter_wake_start(pthread_t listener, char **why);

/* Stops them (once smfi_main returned). Safe without a start. */
void pm_milter_wake_stop(void);

#endif
