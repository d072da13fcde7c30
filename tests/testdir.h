/* testdir.h - removing a test's scratch directory, whatever is in it. */
#ifndef PM_TESTDIR_H
#define PM_TESTDIR_H

/* Removes DIR and everything below it, depth first, never following a
 * link (a test may plant links to files outside it). Quiet: a directory
 * already gone is fine. */
void testdir_remove(const char *dir);

#endif
