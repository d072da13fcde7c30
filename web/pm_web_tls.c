/* pm_web_tls.c - load or make the web console's certificate. */
#include "pm_web_tls.h"

#include "pm_error.h"
#include "pm_file.h"
#include "pm_mem.h"

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define S_PEM_MAX (64u << 10)

static char *
s_bio_text(BIO *bio, size_t *len)
{
    char *data = NULL;
    long n = BIO_get_mem_data(bio, &data);
    *len = n > 0 ? (size_t)n : 0;
    return pm_strndup(data ? data : "", *len);
}

static bool
s_ext(X509 *x, int nid, const char *value)
{
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
    X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
    bool ok = ext && X509_add_ext(x, ext, -1);
    X509_EXTENSION_free(ext);
    return ok;
}

/* A self-signed certificate for HOSTNAME and its key, as PEM. */
static bool
s_make(const char *hostname, char **cert_pem, size_t *cert_len, char **key_pem,
       size_t *key_len)
{
    EVP_PKEY *pkey = EVP_EC_gen("P-256");
    X509 *x = X509_new();
    BIO *cb = BIO_new(BIO_s_mem()), *kb = BIO_new(BIO_s_mem());
    char *san = pm_asprintf("DNS:%s,DNS:localhost,IP:127.0.0.1", hostname);
    unsigned char serial[16];
    bool ok = pkey && x && cb && kb && RAND_bytes(serial, sizeof serial) == 1;
    if (ok) {
        serial[0] &= 0x7f; /* a positive serial */
        BIGNUM *bn = BN_bin2bn(serial, sizeof serial, NULL);
        X509_NAME *name = X509_get_subject_name(x);
        ok = bn && BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) &&
             X509_set_version(x, 2) &&
             X509_gmtime_adj(X509_getm_notBefore(x), -3600) &&
             X509_gmtime_adj(X509_getm_notAfter(x), 365L * 86400) &&
             X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                                        (const unsigned char *)hostname, -1, -1,
                                        0) &&
             X509_NAME_add_entry_by_txt(
                 name, "O", MBSTRING_ASC,
                 (const unsigned char *)"privmta-web (self-signed)", -1, -1,
                 0) &&
             X509_set_issuer_name(x, name) && X509_set_pubkey(x, pkey) &&
             s_ext(x, NID_subject_alt_name, san) &&
             s_ext(x, NID_basic_constraints, "critical,CA:FALSE") &&
             X509_sign(x, pkey, EVP_sha256()) > 0 &&
             PEM_write_bio_X509(cb, x) &&
             PEM_write_bio_PrivateKey(kb, pkey, NULL, NULL, 0, NULL, NULL);
        BN_free(bn);
    }
    if (ok) {
        *cert_pem = s_bio_text(cb, cert_len);
        *key_pem = s_bio_text(kb, key_len);
    }
    free(san);
    BIO_free(cb);
    BIO_free_all(kb);
    X509_free(x);
    EVP_PKEY_free(pkey);
    return ok;
}

int
pm_web_tls_load(const char *cert, const char *key, const char *hostname,
                char **cert_pem, char **key_pem, char **why)
{
    bool have_cert = access(cert, F_OK) == 0, have_key = access(key, F_OK) == 0;
    if (have_cert != have_key) {
        pm_why(why, "tls",
               "%s exists but %s does not: give both (PEM), or neither for "
               "a self-signed certificate",
               have_cert ? cert : key, have_cert ? key : cert);
        return PM_EINVAL;
    }
    if (!have_cert) {
        char *c = NULL, *k = NULL;
        size_t clen = 0, klen = 0;
        if (!s_make(hostname, &c, &clen, &k, &klen)) {
            pm_why(why, "tls", "cannot make a self-signed certificate");
            return PM_EINTERNAL;
        }
        int rc = pm_file_write(key, k, klen, 0600, (gid_t)-1, why);
        if (rc == PM_OK)
            rc = pm_file_write(cert, c, clen, 0644, (gid_t)-1, why);
        OPENSSL_cleanse(k, klen);
        free(k);
        free(c);
        if (rc != PM_OK)
            return rc;
    }
    int rc = pm_file_read(cert, S_PEM_MAX, 0, cert_pem, NULL, why);
    if (rc == PM_OK && (rc = pm_file_read(key, S_PEM_MAX, PM_FILE_STRICT,
                                          key_pem, NULL, why)) != PM_OK) {
        free(*cert_pem);
        *cert_pem = NULL;
    }
    return rc;
}
