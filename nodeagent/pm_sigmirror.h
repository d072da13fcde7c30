/* pm_sigmirror.h - a ClamAV mirror on 127.0.0.1 serving CDIFFs a node
 * already holds, so that libfreshclam applies them.
 *
 * libclamav does not export CDIFF application (cdiff_apply is internal);
 * the supported way to apply a CDIFF is libfreshclam's fc_update_database,
 * which takes mirror URLs. So a node that got CDIFFs from a peer (or
 * downloaded them from a mirror itself, to keep and share them) serves
 * them to its own libfreshclam from a directory, over HTTP on loopback,
 * for the length of one privmta-sigfetch run. HTTP is libmicrohttpd's.
 *
 * The directory DIR holds NAME.head (the 512-byte CVD header of the
 * version to reach: the answer to libfreshclam's version check) and
 * NAME-N.cdiff files. Served:
 *   GET /NAME.cvd       -> DIR/NAME.head (200, whatever the Range asked:
 *                          libfreshclam reads the first 512 bytes; a whole
 *                          CVD it asks for after failing CDIFFs is then
 *                          512 bytes and fails its check, as it should)
 *   GET /NAME-N.cdiff   -> DIR/NAME-N.cdiff
 * NAME and N as pm_check_database_name / pm_check_cdiff_file allow; files
 * opened without following a link, regular files only; anything else,
 * another method or a missing file: 404. Nobody but this process's own
 * libfreshclam should ask, but the socket is a TCP port on 127.0.0.1 and
 * so reachable by every local user: it serves nothing else.
 *
 * Errors as pm_error.h, with *WHY when WHY is not NULL. */
#ifndef PM_SIGMIRROR_H
#define PM_SIGMIRROR_H

#include "pm_error.h"

typedef struct pm_sigmirror pm_sigmirror_t;

/* The header file beside the CDIFFs: NAME.head, PM_SIGMIRROR_HEAD_LEN
 * bytes (a CVD header, as cl_cvdparse reads it). */
#define PM_SIGMIRROR_HEAD_EXT ".head"
#define PM_SIGMIRROR_HEAD_LEN 512

/* Starts serving DIR on 127.0.0.1, on a port the kernel picks, in a
 * thread of libmicrohttpd's. Returns NULL (PM_EIO: the socket or thread)
 * with *WHY. */
pm_sigmirror_t *pm_sigmirror_new(const char *dir, char **why);

/* "http://127.0.0.1:PORT", as libfreshclam takes a mirror. */
const char *pm_sigmirror_url(const pm_sigmirror_t *self);

/* Stops serving (in-flight requests end) and frees SELF; accepts NULL and
 * *SELF_P == NULL; nulls *SELF_P. */
void pm_sigmirror_destroy(pm_sigmirror_t **self_p);

#endif
