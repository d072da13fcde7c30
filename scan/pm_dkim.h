/* pm_dkim.h - DKIM verify and sign through libopendkim, keys via OpenSSL.
 *
 * No DKIM or crypto is written here: canonicalization, hashing, signing and
 * key lookup are libopendkim's; key generation, the DNS TXT record and PEM
 * handling are OpenSSL's libcrypto.
 *
 * Messages are whole RFC 5322 messages (headers, blank line, body) with
 * CRLF or bare LF line ends; bare LFs are turned into CRLF before the
 * message reaches libopendkim, so a message built with LF verifies the same
 * as its CRLF form on the wire.
 *
 * Key lookup: live DNS by default (libopendkim's resolver, blocking, its
 * default 10 s timeout). Tests and offline setups call
 * pm_dkim_set_query_file with a file of lines
 *     sel._domainkey.example.test v=DKIM1; k=rsa; p=MIIBIjANBg...
 *
 * Private keys (PEM text) are never logged and never put into *why; the
 * PEM buffers this module allocates are cleansed before they are freed.
 *
 * Every function returning int returns PM_OK or a pm_err_t
 * (common/pm_error.h): any non-zero value is an error. When why is not
 * NULL, an error also sets *why to one line (caller frees); *why is
 * untouched on success. Output parameters are set only on success.
 *
 * Threads: configure a pm_dkim_t (pm_dkim_set_query_file) before sharing
 * it; afterwards pm_dkim_verify and pm_dkim_sign may run in several threads
 * at once, each on its own per-message libopendkim handle. Signing shares
 * one library handle; verifying uses one per thread (made at the thread's
 * first verification, closed when it ends), since libopendkim's resolver
 * state belongs to a library handle and concurrent lookups on one share
 * its sockets.
 */
#ifndef PM_DKIM_H
#define PM_DKIM_H

#include "pm_error.h"

#include <stdbool.h>
#include <stddef.h>

typedef struct pm_dkim_t pm_dkim_t;

typedef enum {
    PM_DKIM_PASS = 0,  /* signature and body hash verified, whole body */
    PM_DKIM_FAIL,      /* signature or body hash does not match */
    PM_DKIM_PERMERROR, /* unusable: syntax, no key, revoked key, expired */
    PM_DKIM_TEMPERROR, /* the key lookup failed; may work later */
} pm_dkim_result_t;

typedef struct {
    char *domain;   /* d=, as written in the signature */
    char *selector; /* s= */
    pm_dkim_result_t result;
    bool pass;    /* result == PM_DKIM_PASS */
    char *reason; /* libopendkim's word for it, e.g. "bad
                     signature"; "ok" when it passed */
} pm_dkim_sig_t;

typedef struct {
    pm_dkim_sig_t *sigs; /* one per DKIM-Signature header, in the order
                            libopendkim lists them; one it cannot parse
                            is a PERMERROR (e.g. "selector tag missing") */
    size_t n_sigs;
} pm_dkim_verdict_t;

/* Starts a libopendkim library handle. Returns NULL (and *why) when
 * libopendkim cannot start. Caller destroys with pm_dkim_destroy. */
pm_dkim_t *pm_dkim_new(char **why);

/* Destroys the handle; accepts NULL, safe twice, nulls *self_p. */
void pm_dkim_destroy(pm_dkim_t **self_p);

/* Looks keys up in the file at path instead of DNS (libopendkim's
 * DKIM_QUERY_FILE). PM_EINVAL when path is NULL, empty or too long. */
int pm_dkim_set_query_file(pm_dkim_t *self, const char *path);

/* At most this many signatures of a message are checked, each a key
 * lookup of up to PM_DKIM_DNS_TIMEOUT_S seconds (libopendkim looks keys up
 * one after another, blocking): a message carrying a thousand signatures
 * naming a silent name server would otherwise hold a scan slot for hours.
 * The others are left out of the verdict. */
#define PM_DKIM_CHECK_MAX 4
#define PM_DKIM_DNS_TIMEOUT_S 5

/* Verifies the DKIM-Signatures of msg: the first PM_DKIM_CHECK_MAX, or,
 * when DOMAINS (N_DOMAINS of them) is not NULL, the first
 * PM_DKIM_CHECK_MAX whose d= is one of them (as
 * pm_dkim_has_valid_signature_for compares). PM_OK means the message was
 * checked: *out tells, per signature checked, what came out (an unsigned
 * message gives n_sigs 0; a bad or even unparsable signature is a PM_OK
 * with pass false). Caller clears *out with pm_dkim_verdict_clear.
 * Errors: PM_EINVAL bad arguments or a header field libopendkim rejects (a
 * line without a colon in the header section); PM_EINTERNAL libopendkim
 * failed (out of resources). A message without a blank line is all
 * headers, empty body. A signature with l= (a body length limit) never
 * passes: content could have been appended after the signed part
 * (pm_dkim_sign never sets l=). */
int pm_dkim_verify_for(pm_dkim_t *self, const char *msg, size_t len,
                       const char *const *domains, size_t n_domains,
                       pm_dkim_verdict_t *out, char **why);

/* pm_dkim_verify_for with no DOMAINS. */
int pm_dkim_verify(pm_dkim_t *self, const char *msg, size_t len,
                   pm_dkim_verdict_t *out, char **why);

/* True when verdict holds a passing signature whose d= is domain exactly
 * (case-insensitive, a trailing dot ignored; a parent or subdomain's
 * signature does not count). False for NULL arguments. */
bool pm_dkim_has_valid_signature_for(const pm_dkim_verdict_t *verdict,
                                     const char *domain);

/* True when verdict holds a signature whose d= is domain exactly (as
 * above) that came out as result: PM_DKIM_TEMPERROR tells a signature
 * whose key could not be looked up now from one that is wrong. */
bool pm_dkim_has_result_for(const pm_dkim_verdict_t *verdict,
                            const char *domain, pm_dkim_result_t result);

/* Frees what pm_dkim_verify put into *verdict and zeroes it; accepts NULL
 * and a zeroed or already cleared verdict. */
void pm_dkim_verdict_clear(pm_dkim_verdict_t *verdict);

/* Signs msg for domain with selector and private_key_pem (PEM, PKCS#1 or
 * PKCS#8 RSA), relaxed/relaxed, rsa-sha256, From oversigned. On PM_OK,
 * *header_out is the whole header "DKIM-Signature: v=1; a=rsa-sha256; ..."
 * folded with CRLF + TAB and without a CRLF at the end: prepend it with
 * "\r\n" to the message. (For smfi_insheader, pass what follows
 * "DKIM-Signature: " with each CRLF turned into LF, as opendkim does.) Caller
 * frees *header_out. Errors: PM_EINVAL bad arguments, a bad, encrypted or
 * non-RSA key, or a header field libopendkim rejects; PM_EINTERNAL libopendkim
 * failed. */
int pm_dkim_sign(pm_dkim_t *self, const char *msg, size_t len,
                 const char *domain, const char *selector,
                 const char *private_key_pem, char **header_out, char **why);

/* Makes the DNS TXT record for the public half of private_key_pem:
 * "v=DKIM1; k=rsa; p=<base64 SubjectPublicKeyInfo>". NULL (and *why) when
 * the PEM is not a private RSA key. Caller frees the result. */
char *pm_dkim_txt_record(const char *private_key_pem, char **why);

/* Generates an RSA private key of bits (1024 to 8192) and returns it as
 * PKCS#8 PEM in *pem_out (caller frees; it is a secret: cleanse it with
 * OPENSSL_cleanse or explicit_bzero before free). PM_EINVAL for bits out of
 * range, PM_EINTERNAL when OpenSSL fails. */
int pm_dkim_generate_key(unsigned bits, char **pem_out, char **why);

#endif
