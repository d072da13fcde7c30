/* pm_sigcdiff.h - the CDIFFs a node keeps, so that peers a few versions
 * behind catch up by CDIFF (KiB) instead of the whole database (a
 * daily.cld is ~300 MiB).
 *
 * DBDIR/PM_SIGCDIFF_KEPT (root's, 0700) holds NAME-N.cdiff files; the
 * peer service serves them (pm_peer.h) and gossip tells how far back a
 * node holds them (SignatureDb.cdiff_from, pm_sigcdiff_from). A CDIFF is
 * kept only after it was applied here and the result passed ClamAV's own
 * check (pm_sigstore_take); libfreshclam checked the CDIFF's own signature
 * while applying it. Where they come from:
 *   - a mirror fetch (the duty): privmta-sigfetch downloads them into
 *     DBDIR/PM_SIGSTORE_FETCH/PM_SIGCDIFF_KEPT, the fetch user's (see
 *     pm_sigfetch.h), and the agent copies them back as pm_sigstore_take
 *     does files: never following a link, regular files only, at most
 *     PM_WIRE_CDIFF_MAX bytes counted while reading;
 *   - a peer: the agent pulls them into DBDIR/PM_SIGCDIFF_INBOX (root's,
 *     0755: the fetch user's helper reads them there and applies them) and
 *     keeps them from there once applied and checked.
 * At most PM_SIGFETCH_CDIFF_STEPS are kept per database: the chain that
 * ends at the version held. A whole file installed (a first fetch, a node
 * far behind) ends the chain: the node shares whole files until its next
 * CDIFF update.
 *
 * One owner (the pm_sigsync actor). Errors as pm_error.h, with *WHY when
 * WHY is not NULL. */
#ifndef PM_SIGCDIFF_H
#define PM_SIGCDIFF_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#define PM_SIGCDIFF_KEPT ".pm-cdiff"
#define PM_SIGCDIFF_INBOX ".pm-cdiff-in"

/* Empties (makes when missing) the directory the next step fills and sets
 * *PATH (caller frees) to it: FOR_FETCH, the fetch user's
 * DBDIR/PM_SIGSTORE_FETCH/PM_SIGCDIFF_KEPT, UID:GID's, 0700 (after
 * pm_sigstore_stage made its parent); else DBDIR/PM_SIGCDIFF_INBOX, ours,
 * 0755. An entry in it is removed, never followed. PM_EIO. */
int pm_sigcdiff_stage(const char *dbdir, bool for_fetch, uid_t uid, gid_t gid,
                      char **path, char **why);

/* Keeps NAME-N.cdiff for N = FROM + 1 .. TO from the directory
 * pm_sigcdiff_stage gave (FOR_FETCH as there) in DBDIR/PM_SIGCDIFF_KEPT,
 * stopping at the first that is missing or refused (see above); returns
 * how many it kept. */
size_t pm_sigcdiff_keep(const char *dbdir, bool for_fetch, const char *name,
                        unsigned from, unsigned to);

/* The lowest N such that DBDIR/PM_SIGCDIFF_KEPT holds NAME-N.cdiff up to
 * NAME-VERSION.cdiff, or 0 when it holds none that ends at VERSION. Every
 * other CDIFF of NAME kept there is removed (past VERSION, not in that
 * chain, more than PM_SIGFETCH_CDIFF_STEPS back): VERSION 0 removes all. */
unsigned pm_sigcdiff_from(const char *dbdir, const char *name,
                          unsigned version);

#endif
