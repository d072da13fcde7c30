/* pm_sigverify.h - ClamAV's own check of a database file, in a helper
 * process that lives as long as the agent wants it.
 *
 * Every file a peer sends is checked (cl_cvdverify) before it is used or
 * served, and the agent reads the headers of the files it holds through
 * it too (the root agent does not load libclamav). libclamav unpacking
 * what a possibly hostile peer sent must not run in the root agent, and a
 * process per file costs too much when a new version spreads (loading
 * libclamav and its libraries is ~15-30 ms of CPU, paid by every node at
 * once: 60 nodes on 2 cores lost 2.5 s). So
 * one privmta-sigfetch --verify-server per agent answers the requests,
 * started at the first and started again after it fails. A helper that
 * refused a file is ended too: a file without ClamAV's signature can
 * only attack what runs before the check refuses it, and the helper it
 * may have taken over must not answer for the files after it (a file
 * that takes it over and passes itself would pass in a helper of its own
 * as well); its seccomp filter (pm_sandbox) keeps it from leaving a
 * process behind. A refused file is rare (a broken or hostile peer), so
 * the restart costs nothing when updates spread.
 *
 * Protocol, over a socketpair that is the helper's stdin and stdout: a
 * frame is a 4-byte big-endian length and that many bytes. The agent
 * sends a packed VerifyRequest (path, database name), the helper answers
 * with a packed one-database FetchReport (its error and reason, or
 * version, signature count and build time); both pass pm_wire's gate.
 * The helper exits when its stdin ends.
 *
 * Not thread-safe: one owner thread (the pm_sigsync actor).
 */
#ifndef PM_SIGVERIFY_H
#define PM_SIGVERIFY_H

#include "pm_error.h"

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

typedef struct pm_sigverify pm_sigverify_t;

/* A verifier running HELPER (privmta-sigfetch, by path) as USER (when the
 * agent is root; NULL: as the agent); nothing starts until the first
 * pm_sigverify_file. USER must be able to read every file it is asked
 * about (pm_sigstore makes its scratch copies so). */
pm_sigverify_t *pm_sigverify_new(const char *helper, const char *user);

/* Stops the helper (pm_cmd_stop) and frees SELF; accepts NULL and
 * *SELF_P == NULL; nulls *SELF_P. */
void pm_sigverify_destroy(pm_sigverify_t **self_p);

/* Checks PATH (a .cvd or .cld holding database NAME) within TIMEOUT_MS.
 * Returns PM_OK and sets *VERSION, *SIGS, *BUILT (each may be NULL);
 * PM_EPROTO with *WHY when the file fails ClamAV's check (the helper's
 * reason: "PATH failed ClamAV's signature check: ..."); PM_EINTERNAL with
 * *WHY when the helper cannot start, dies, overruns TIMEOUT_MS or
 * answers something that is not a report: the file's fault it is not, and
 * the next call starts a new helper. */
pm_err_t pm_sigverify_file(pm_sigverify_t *self, const char *path,
                           const char *name, int timeout_ms, unsigned *version,
                           unsigned *sigs, time_t *built, char **why);

/* As pm_sigverify_file, but only what PATH's header says (libclamav's
 * cl_cvdhead in the helper), unchecked: for a file this node verified
 * before it installed it, read again at start-up. PM_EPROTO when PATH has
 * no CVD header. */
pm_err_t pm_sigverify_head(pm_sigverify_t *self, const char *path,
                           const char *name, int timeout_ms, unsigned *version,
                           unsigned *sigs, time_t *built, char **why);

/* The running helper's pid, 0 when none is running (for tests). */
pid_t pm_sigverify_pid(const pm_sigverify_t *self);

/* Framing, for both ends. pm_sigverify_send writes one frame of LEN
 * bytes; pm_sigverify_recv reads one of at most MAX bytes within
 * TIMEOUT_MS (-1: no limit) into *BUF (caller frees). Both return PM_OK,
 * or PM_EIO (the peer closed, an error), PM_ETIMEDOUT, PM_EPROTO (a frame
 * longer than MAX), with *WHY. */
pm_err_t pm_sigverify_send(int fd, const uint8_t *buf, size_t len, char **why);
pm_err_t pm_sigverify_recv(int fd, size_t max, int timeout_ms, uint8_t **buf,
                           size_t *len, char **why);

#endif
