/* pm_crash.h - crash points for fault tests: die at a named step exactly
 * as `kill -9` would, so tests can stop a daemon between two steps of an
 * apply (after main.cf is renamed, before the reload...) without racing
 * a signal against it.
 *
 * Off unless a daemon's debug_crash_at option names a step; the steps are
 * listed where pm_crash_point is called (nodeagent/pm_agent.c,
 * nodeagent/pm_postfix.c). Set once, before any thread starts.
 */
#ifndef PM_CRASH_H
#define PM_CRASH_H

/* Arms the crash point STEP (copied); NULL or "" disarms. */
void pm_crash_set(const char *step);

/* Sends this process SIGKILL when STEP is the armed one. */
void pm_crash_point(const char *step);

#endif
