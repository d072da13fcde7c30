/* pm_hash.h - sha256 through OpenSSL's libcrypto (never hand-written). */
#ifndef PM_HASH_H
#define PM_HASH_H

#include <stddef.h>

/* Writes the lowercase hex sha256 of DATA (64 chars + NUL) into out. */
void pm_sha256_hex(const void *data, size_t len, char out[65]);

#endif
