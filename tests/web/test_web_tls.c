/* test_web_tls.c - pm_web_tls: a first start makes a self-signed
 * certificate and a 0600 key that GnuTLS-era clients accept; a later
 * start reads them back unchanged; half an admin's pair is refused. */
#include <criterion/criterion.h>

#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pm_error.h"
#include "pm_web_tls.h"
#include "testdir.h"

static char s_dir[64], s_cert[96], s_key[96];

static void
s_setup(void)
{
    strcpy(s_dir, "/tmp/pm_web_tls.XXXXXX");
    cr_assert_not_null(mkdtemp(s_dir));
    snprintf(s_cert, sizeof s_cert, "%s/tls.crt", s_dir);
    snprintf(s_key, sizeof s_key, "%s/tls.key", s_dir);
}

static void
s_teardown(void)
{
    testdir_remove(s_dir);
}

TestSuite(web_tls, .init = s_setup, .fini = s_teardown);

Test(web_tls, first_start_makes_a_self_signed_pair)
{
    char *cert = NULL, *key = NULL, *why = NULL;
    cr_assert_eq(
        pm_web_tls_load(s_cert, s_key, "mx.example.test", &cert, &key, &why),
        PM_OK, "%s", why ? why : "");
    struct stat st;
    cr_assert_eq(stat(s_key, &st), 0);
    cr_assert_eq(st.st_mode & 0777, 0600, "the key is 0600");
    BIO *b = BIO_new_mem_buf(cert, -1);
    X509 *x = PEM_read_bio_X509(b, NULL, NULL, NULL);
    cr_assert_not_null(x);
    cr_assert_eq(X509_check_host(x, "mx.example.test", 0, 0, NULL), 1);
    cr_assert_eq(X509_check_host(x, "localhost", 0, 0, NULL), 1);
    cr_assert_eq(X509_check_ip_asc(x, "127.0.0.1", 0), 1);
    cr_assert_eq(X509_check_host(x, "other.example", 0, 0, NULL), 0);
    BIO *kb = BIO_new_mem_buf(key, -1);
    EVP_PKEY *pk = PEM_read_bio_PrivateKey(kb, NULL, NULL, NULL);
    cr_assert_not_null(pk);
    cr_assert_eq(X509_check_private_key(x, pk), 1, "the key is the cert's");
    cr_assert_eq(X509_verify(x, pk), 1, "self-signed");
    EVP_PKEY_free(pk);
    BIO_free(kb);
    X509_free(x);
    BIO_free(b);
    /* the next start reads the same pair */
    char *cert2 = NULL, *key2 = NULL;
    cr_assert_eq(
        pm_web_tls_load(s_cert, s_key, "other.example", &cert2, &key2, &why),
        PM_OK);
    cr_assert_str_eq(cert2, cert);
    cr_assert_str_eq(key2, key);
    free(cert);
    free(key);
    free(cert2);
    free(key2);
}

Test(web_tls, half_a_pair_is_refused_not_overwritten)
{
    FILE *f = fopen(s_cert, "w");
    fputs("-----BEGIN CERTIFICATE-----\n", f);
    fclose(f);
    char *cert = NULL, *key = NULL, *why = NULL;
    cr_assert_eq(pm_web_tls_load(s_cert, s_key, "h", &cert, &key, &why),
                 PM_EINVAL);
    cr_assert(strstr(why, "give both"), "%s", why);
    cr_assert_eq(access(s_key, F_OK), -1, "no key was made");
    free(why);
}
