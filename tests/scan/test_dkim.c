/* test_dkim.c - pm_dkim: sign with a fresh key, verify offline through a
 * key file (no DNS), tampering, unsigned mail, other domains, keys. */
#include "pm_dkim.h"
#include "pm_error.h"

#include <criterion/criterion.h>
#include <dkim.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char s_dir[64];
static char s_keyfile[128];
static char *s_key;       /* example.test, selector sel */
static char *s_other_key; /* other.test, selector sel */
static pm_dkim_t *s_dkim;

/* A test message built with LF line ends, as a test would write it. */
static const char *s_msg_lf = "From: Alice <alice@example.test>\n"
                              "To: bob@example.net\n"
                              "Subject: quarterly report\n"
                              "Date: Tue, 25 Nov 2025 10:00:00 +0000\n"
                              "Message-ID: <q1@example.test>\n"
                              "X-Folded: first part\n"
                              "\tsecond part\n"
                              "\n"
                              "Hello Bob,\n"
                              "\n"
                              "the numbers are fine.\n";

static char *
s_lf_to_crlf(const char *s)
{
    size_t n = strlen(s), extra = 0;
    for (size_t i = 0; i < n; i++)
        extra += s[i] == '\n';
    char *out = malloc(n + extra + 1), *o = out;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '\n')
            *o++ = '\r';
        *o++ = s[i];
    }
    *o = '\0';
    return out;
}

static char *
s_cat3(const char *a, const char *b, const char *c)
{
    char *out = NULL;
    cr_assert(asprintf(&out, "%s%s%s", a, b, c) > 0);
    return out;
}

static void
s_add_key_line(FILE *f, const char *name, const char *pem)
{
    char *why = NULL;
    char *txt = pm_dkim_txt_record(pem, &why);
    cr_assert_not_null(txt, "%s", why);
    fprintf(f, "%s %s\n", name, txt);
    free(txt);
}

static void
s_setup(void)
{
    char *why = NULL;
    strcpy(s_dir, "/tmp/pm_dkim_XXXXXX");
    cr_assert_not_null(mkdtemp(s_dir));
    cr_assert_eq(pm_dkim_generate_key(2048, &s_key, &why), PM_OK, "%s", why);
    cr_assert_eq(pm_dkim_generate_key(2048, &s_other_key, &why), PM_OK, "%s",
                 why);
    /* Only public keys go to disk; the private PEMs stay in memory. */
    snprintf(s_keyfile, sizeof s_keyfile, "%s/keys", s_dir);
    FILE *f = fopen(s_keyfile, "w");
    cr_assert_not_null(f);
    s_add_key_line(f, "sel._domainkey.example.test", s_key);
    s_add_key_line(f, "sel._domainkey.other.test", s_other_key);
    fclose(f);
    s_dkim = pm_dkim_new(&why);
    cr_assert_not_null(s_dkim, "%s", why);
    cr_assert_eq(pm_dkim_set_query_file(s_dkim, s_keyfile), PM_OK);
}

static void
s_free_secret(char **pem_p)
{
    if (*pem_p)
        OPENSSL_cleanse(*pem_p, strlen(*pem_p));
    free(*pem_p);
    *pem_p = NULL;
}

static void
s_teardown(void)
{
    pm_dkim_destroy(&s_dkim);
    pm_dkim_destroy(&s_dkim);
    s_free_secret(&s_key);
    s_free_secret(&s_other_key);
    if (s_keyfile[0])
        unlink(s_keyfile);
    if (s_dir[0])
        rmdir(s_dir);
}

TestSuite(dkim, .init = s_setup, .fini = s_teardown);

/* Signs the CRLF form of msg_lf and returns signature + "\r\n" + msg. */
static char *
s_signed(const char *msg_lf, const char *domain, const char *key)
{
    char *msg = s_lf_to_crlf(msg_lf);
    char *hdr = NULL, *why = NULL;
    cr_assert_eq(
        pm_dkim_sign(s_dkim, msg, strlen(msg), domain, "sel", key, &hdr, &why),
        PM_OK, "%s", why);
    char *out = s_cat3(hdr, "\r\n", msg);
    free(hdr);
    free(msg);
    return out;
}

static void
s_verify(const char *msg, pm_dkim_verdict_t *v)
{
    char *why = NULL;
    cr_assert_eq(pm_dkim_verify(s_dkim, msg, strlen(msg), v, &why), PM_OK, "%s",
                 why);
}

Test(dkim, sign_header_shape)
{
    char *msg = s_lf_to_crlf(s_msg_lf);
    char *hdr = NULL, *why = NULL;
    cr_assert_eq(pm_dkim_sign(s_dkim, msg, strlen(msg), "example.test", "sel",
                              s_key, &hdr, &why),
                 PM_OK, "%s", why);
    cr_assert(!strncmp(hdr, "DKIM-Signature: v=1;", 20), "%s", hdr);
    cr_assert(strstr(hdr, "a=rsa-sha256"), "%s", hdr);
    cr_assert(strstr(hdr, "c=relaxed/relaxed"), "%s", hdr);
    cr_assert(strstr(hdr, "d=example.test"), "%s", hdr);
    cr_assert(strstr(hdr, "s=sel"), "%s", hdr);
    size_t n = strlen(hdr);
    cr_assert(hdr[n - 1] != '\n' && hdr[n - 1] != '\r', "ends with CRLF");
    for (size_t i = 0; i < n; i++)
        if (hdr[i] == '\n')
            cr_assert(i > 0 && hdr[i - 1] == '\r' && hdr[i + 1] == '\t',
                      "fold at %zu is not CRLF TAB", i);
    /* Signing the LF form gives a signature over the same bytes. */
    char *hdr2 = NULL;
    cr_assert_eq(pm_dkim_sign(s_dkim, s_msg_lf, strlen(s_msg_lf),
                              "example.test", "sel", s_key, &hdr2, &why),
                 PM_OK, "%s", why);
    const char *bh1 = strstr(hdr, "bh="), *bh2 = strstr(hdr2, "bh=");
    cr_assert(bh1 && bh2);
    cr_assert_eq(strncmp(bh1, bh2, 47), 0, "body hashes differ");
    free(hdr);
    free(hdr2);
    free(msg);
}

Test(dkim, signed_message_passes)
{
    char *msg = s_signed(s_msg_lf, "example.test", s_key);
    pm_dkim_verdict_t v = {0};
    s_verify(msg, &v);
    cr_assert_eq(v.n_sigs, 1);
    cr_assert(v.sigs[0].pass, "%s", v.sigs[0].reason);
    cr_assert_eq(v.sigs[0].result, PM_DKIM_PASS);
    cr_assert_str_eq(v.sigs[0].domain, "example.test");
    cr_assert_str_eq(v.sigs[0].selector, "sel");
    cr_assert(pm_dkim_has_valid_signature_for(&v, "example.test"));
    cr_assert(pm_dkim_has_valid_signature_for(&v, "Example.TEST."));
    cr_assert_not(pm_dkim_has_valid_signature_for(&v, "other.test"));
    cr_assert_not(pm_dkim_has_valid_signature_for(&v, "sub.example.test"));
    cr_assert_not(pm_dkim_has_valid_signature_for(&v, "test"));
    cr_assert_not(pm_dkim_has_valid_signature_for(&v, ""));
    cr_assert_not(pm_dkim_has_valid_signature_for(NULL, "example.test"));
    pm_dkim_verdict_clear(&v);
    pm_dkim_verdict_clear(&v);
    free(msg);
}

Test(dkim, lf_form_of_signed_message_passes)
{
    char *hdr = NULL, *why = NULL;
    cr_assert_eq(pm_dkim_sign(s_dkim, s_msg_lf, strlen(s_msg_lf),
                              "example.test", "sel", s_key, &hdr, &why),
                 PM_OK, "%s", why);
    char *msg = s_cat3(hdr, "\n", s_msg_lf); /* header folds stay CRLF */
    pm_dkim_verdict_t v = {0};
    s_verify(msg, &v);
    cr_assert(pm_dkim_has_valid_signature_for(&v, "example.test"), "%s",
              v.n_sigs ? v.sigs[0].reason : "no signature");
    pm_dkim_verdict_clear(&v);
    free(msg);
    free(hdr);
}

Test(dkim, tampered_body_fails)
{
    char *msg = s_signed(s_msg_lf, "example.test", s_key);
    char *p = strstr(msg, "fine");
    cr_assert_not_null(p);
    memcpy(p, "FINE", 4);
    pm_dkim_verdict_t v = {0};
    s_verify(msg, &v);
    cr_assert_eq(v.n_sigs, 1);
    cr_assert_not(v.sigs[0].pass);
    cr_assert_eq(v.sigs[0].result, PM_DKIM_FAIL, "%s", v.sigs[0].reason);
    cr_assert_str_eq(v.sigs[0].reason, "body hash mismatch");
    cr_assert_str_eq(v.sigs[0].domain, "example.test");
    cr_assert_not(pm_dkim_has_valid_signature_for(&v, "example.test"));
    pm_dkim_verdict_clear(&v);
    free(msg);
}

Test(dkim, appended_body_fails)
{
    char *signed_msg = s_signed(s_msg_lf, "example.test", s_key);
    char *msg = s_cat3(signed_msg, "Click here: http://evil.test/\r\n", "");
    pm_dkim_verdict_t v = {0};
    s_verify(msg, &v);
    cr_assert_not(pm_dkim_has_valid_signature_for(&v, "example.test"));
    pm_dkim_verdict_clear(&v);
    free(msg);
    free(signed_msg);
}

/* A signature with l= (made here with libopendkim directly, since
 * pm_dkim_sign never sets it) does not pass, even though it verifies:
 * anything may follow the signed part of the body. */
Test(dkim, body_length_limit_does_not_pass)
{
    DKIM_LIB *lib = dkim_init(NULL, NULL);
    unsigned int flags = DKIM_LIBFLAGS_SIGNLEN;
    dkim_options(lib, DKIM_OP_SETOPT, DKIM_OPTS_FLAGS, &flags, sizeof flags);
    DKIM_STAT st;
    DKIM *d = dkim_sign(lib, (const u_char *)"t", NULL, (dkim_sigkey_t)s_key,
                        (const u_char *)"sel", (const u_char *)"example.test",
                        DKIM_CANON_RELAXED, DKIM_CANON_RELAXED,
                        DKIM_SIGN_RSASHA256, -1, &st);
    cr_assert_not_null(d);
    char from[] = "From: a@example.test";
    char body[] = "signed part\r\n";
    cr_assert_eq(dkim_header(d, (u_char *)from, strlen(from)), DKIM_STAT_OK);
    cr_assert_eq(dkim_eoh(d), DKIM_STAT_OK);
    cr_assert_eq(dkim_body(d, (u_char *)body, strlen(body)), DKIM_STAT_OK);
    cr_assert_eq(dkim_eom(d, NULL), DKIM_STAT_OK);
    u_char *value;
    size_t vlen;
    cr_assert_eq(dkim_getsighdr_d(d, 16, &value, &vlen), DKIM_STAT_OK);
    char *msg = NULL;
    cr_assert(asprintf(&msg, "DKIM-Signature: %.*s\r\n%s\r\n\r\n%sappended\r\n",
                       (int)vlen, value, from, body) > 0);
    cr_assert(strstr(msg, "l="), "%s", msg);
    dkim_free(d);
    dkim_close(lib);
    pm_dkim_verdict_t v = {0};
    s_verify(msg, &v);
    cr_assert_eq(v.n_sigs, 1);
    cr_assert_not(v.sigs[0].pass);
    cr_assert(strstr(v.sigs[0].reason, "l="), "%s", v.sigs[0].reason);
    cr_assert_not(pm_dkim_has_valid_signature_for(&v, "example.test"));
    pm_dkim_verdict_clear(&v);
    free(msg);
}

Test(dkim, tampered_header_fails)
{
    char *msg = s_signed(s_msg_lf, "example.test", s_key);
    char *p = strstr(msg, "quarterly");
    cr_assert_not_null(p);
    memcpy(p, "QUARTERLY", 9);
    pm_dkim_verdict_t v = {0};
    s_verify(msg, &v);
    cr_assert_eq(v.n_sigs, 1);
    cr_assert_eq(v.sigs[0].result, PM_DKIM_FAIL, "%s", v.sigs[0].reason);
    cr_assert_not(pm_dkim_has_valid_signature_for(&v, "example.test"));
    pm_dkim_verdict_clear(&v);
    free(msg);
}

/* From is oversigned: a second From added later breaks the signature. */
Test(dkim, added_from_fails)
{
    char *signed_msg = s_signed(s_msg_lf, "example.test", s_key);
    char *msg = s_cat3("From: Mallory <boss@example.test>\r\n", signed_msg, "");
    pm_dkim_verdict_t v = {0};
    s_verify(msg, &v);
    cr_assert_eq(v.n_sigs, 1);
    cr_assert_not(v.sigs[0].pass, "a From added above the signed one "
                                  "must not pass");
    pm_dkim_verdict_clear(&v);
    free(msg);
    free(signed_msg);
}

Test(dkim, unsigned_has_no_valid_signature)
{
    pm_dkim_verdict_t v = {0};
    s_verify(s_msg_lf, &v);
    cr_assert_eq(v.n_sigs, 0);
    cr_assert_null(v.sigs);
    cr_assert_not(pm_dkim_has_valid_signature_for(&v, "example.test"));
    pm_dkim_verdict_clear(&v);
}

Test(dkim, other_domain_does_not_count)
{
    char *msg = s_signed(s_msg_lf, "other.test", s_other_key);
    pm_dkim_verdict_t v = {0};
    s_verify(msg, &v);
    cr_assert_eq(v.n_sigs, 1);
    cr_assert(v.sigs[0].pass, "%s", v.sigs[0].reason);
    cr_assert_str_eq(v.sigs[0].domain, "other.test");
    cr_assert(pm_dkim_has_valid_signature_for(&v, "other.test"));
    cr_assert_not(pm_dkim_has_valid_signature_for(&v, "example.test"));
    pm_dkim_verdict_clear(&v);
    free(msg);
}

/* A key the DNS record does not match: the signature fails. */
Test(dkim, wrong_key_fails)
{
    char *msg = s_signed(s_msg_lf, "example.test", s_other_key);
    pm_dkim_verdict_t v = {0};
    s_verify(msg, &v);
    cr_assert_eq(v.n_sigs, 1);
    cr_assert_eq(v.sigs[0].result, PM_DKIM_FAIL, "%s", v.sigs[0].reason);
    cr_assert_not(pm_dkim_has_valid_signature_for(&v, "example.test"));
    pm_dkim_verdict_clear(&v);
    free(msg);
}

Test(dkim, two_signatures)
{
    char *inner = s_signed(s_msg_lf, "other.test", s_other_key);
    char *hdr = NULL, *why = NULL;
    cr_assert_eq(pm_dkim_sign(s_dkim, inner, strlen(inner), "example.test",
                              "sel", s_key, &hdr, &why),
                 PM_OK, "%s", why);
    char *msg = s_cat3(hdr, "\r\n", inner);
    pm_dkim_verdict_t v = {0};
    s_verify(msg, &v);
    cr_assert_eq(v.n_sigs, 2);
    cr_assert(pm_dkim_has_valid_signature_for(&v, "example.test"));
    cr_assert(pm_dkim_has_valid_signature_for(&v, "other.test"));
    pm_dkim_verdict_clear(&v);
    free(msg);
    free(hdr);
    free(inner);
}

/* At most PM_DKIM_CHECK_MAX signatures are checked (each is a key lookup,
 * one after another): the first ones in the message, or the first ones of
 * the domains asked about. */
Test(dkim, only_a_few_signatures_are_checked)
{
    char *msg = s_signed(s_msg_lf, "example.test", s_key);
    for (int i = 0; i < PM_DKIM_CHECK_MAX + 1; i++) {
        char sel[16], *hdr = NULL, *why = NULL;
        snprintf(sel, sizeof sel, "nosuch%d", i);
        cr_assert_eq(pm_dkim_sign(s_dkim, msg, strlen(msg), "other.test", sel,
                                  s_other_key, &hdr, &why),
                     PM_OK, "%s", why);
        char *more = s_cat3(hdr, "\r\n", msg);
        free(hdr);
        free(msg);
        msg = more;
    }
    pm_dkim_verdict_t v = {0};
    s_verify(msg, &v); /* example.test's comes last: not checked */
    cr_assert_eq(v.n_sigs, PM_DKIM_CHECK_MAX);
    cr_assert_not(pm_dkim_has_valid_signature_for(&v, "example.test"));
    pm_dkim_verdict_clear(&v);
    const char *want[] = {"EXAMPLE.test."};
    char *why = NULL;
    cr_assert_eq(
        pm_dkim_verify_for(s_dkim, msg, strlen(msg), want, 1, &v, &why), PM_OK,
        "%s", why);
    cr_assert_eq(v.n_sigs, 1);
    cr_assert(pm_dkim_has_valid_signature_for(&v, "example.test"), "%s",
              v.sigs[0].reason);
    pm_dkim_verdict_clear(&v);
    free(msg);
}

Test(dkim, unknown_selector_is_permerror)
{
    char *msg = s_lf_to_crlf(s_msg_lf);
    char *hdr = NULL, *why = NULL;
    cr_assert_eq(pm_dkim_sign(s_dkim, msg, strlen(msg), "example.test",
                              "nosuch", s_key, &hdr, &why),
                 PM_OK, "%s", why);
    char *full = s_cat3(hdr, "\r\n", msg);
    pm_dkim_verdict_t v = {0};
    s_verify(full, &v);
    cr_assert_eq(v.n_sigs, 1);
    cr_assert_eq(v.sigs[0].result, PM_DKIM_PERMERROR, "%d %s", v.sigs[0].result,
                 v.sigs[0].reason);
    cr_assert_not(pm_dkim_has_valid_signature_for(&v, "example.test"));
    pm_dkim_verdict_clear(&v);
    free(full);
    free(hdr);
    free(msg);
}

/* A DKIM-Signature libopendkim cannot parse is a PERMERROR signature, not
 * an error for the whole message; the good one beside it still counts. */
Test(dkim, malformed_signature_is_permerror)
{
    char *good = s_signed(s_msg_lf, "example.test", s_key);
    char *msg =
        s_cat3("DKIM-Signature: v=1; d=evil.test; garbage\r\n", good, "");
    pm_dkim_verdict_t v = {0};
    s_verify(msg, &v);
    cr_assert_eq(v.n_sigs, 2);
    size_t bad = strcmp(v.sigs[0].domain, "evil.test") ? 1 : 0;
    cr_assert_eq(v.sigs[bad].result, PM_DKIM_PERMERROR);
    cr_assert_not(v.sigs[bad].pass);
    cr_assert_str_eq(v.sigs[bad].domain, "evil.test");
    cr_assert(v.sigs[1 - bad].pass, "%s", v.sigs[1 - bad].reason);
    cr_assert(pm_dkim_has_valid_signature_for(&v, "example.test"));
    pm_dkim_verdict_clear(&v);
    free(msg);

    char *plain = s_lf_to_crlf(s_msg_lf);
    msg = s_cat3("DKIM-Signature: v=1; d=example.test; garbage\r\n", plain, "");
    s_verify(msg, &v);
    cr_assert_eq(v.n_sigs, 1);
    cr_assert_eq(v.sigs[0].result, PM_DKIM_PERMERROR);
    cr_assert_not(pm_dkim_has_valid_signature_for(&v, "example.test"));
    pm_dkim_verdict_clear(&v);
    free(msg);
    free(plain);
    free(good);
}

Test(dkim, header_without_colon_is_einval)
{
    const char *msg = "no colon here\r\nFrom: a@example.test\r\n\r\nx\r\n";
    pm_dkim_verdict_t v = {0};
    char *why = NULL;
    cr_assert_eq(pm_dkim_verify(s_dkim, msg, strlen(msg), &v, &why), PM_EINVAL);
    cr_assert_not_null(why);
    cr_assert_eq(v.n_sigs, 0);
    free(why);
}

Test(dkim, txt_record_and_keys)
{
    char *why = NULL;
    char *txt = pm_dkim_txt_record(s_key, &why);
    cr_assert_not_null(txt, "%s", why);
    /* An RSA SubjectPublicKeyInfo in base64 starts with MIIB (2048 bit). */
    cr_assert(!strncmp(txt, "v=DKIM1; k=rsa; p=MIIBIjAN", 26), "%s", txt);
    cr_assert_null(strchr(txt, '\n'));
    free(txt);

    cr_assert_null(pm_dkim_txt_record("not a key", &why));
    cr_assert_not_null(why);
    cr_assert_null(strstr(why, "not a key"));
    free(why);
    why = NULL;

    char *pem = NULL;
    cr_assert_eq(pm_dkim_generate_key(512, &pem, &why), PM_EINVAL);
    cr_assert_null(pem);
    free(why);
    why = NULL;
    cr_assert(!strncmp(s_key, "-----BEGIN PRIVATE KEY-----", 27));

    /* Not RSA: refused with a reason, for the record and for signing. */
    EVP_PKEY *ec = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    cr_assert_not_null(ec);
    BIO *bio = BIO_new(BIO_s_mem());
    PEM_write_bio_PrivateKey(bio, ec, NULL, NULL, 0, NULL, NULL);
    char *data;
    long n = BIO_get_mem_data(bio, &data);
    char *ec_pem = strndup(data, (size_t)n);
    BIO_free(bio);
    EVP_PKEY_free(ec);
    cr_assert_null(pm_dkim_txt_record(ec_pem, &why));
    cr_assert(strstr(why, "not RSA"), "%s", why);
    free(why);
    why = NULL;
    char *hdr = NULL;
    cr_assert_eq(pm_dkim_sign(s_dkim, s_msg_lf, strlen(s_msg_lf),
                              "example.test", "sel", ec_pem, &hdr, &why),
                 PM_EINVAL);
    cr_assert_null(hdr);
    free(why);
    free(ec_pem);
}

/* An encrypted key is refused at once: no passphrase prompt. */
Test(dkim, encrypted_key_refused)
{
    BIO *in = BIO_new_mem_buf(s_key, -1);
    EVP_PKEY *pkey = PEM_read_bio_PrivateKey(in, NULL, NULL, NULL);
    BIO_free(in);
    cr_assert_not_null(pkey);
    BIO *out = BIO_new(BIO_s_mem());
    cr_assert(PEM_write_bio_PKCS8PrivateKey(out, pkey, EVP_aes_256_cbc(),
                                            "secret", 6, NULL, NULL));
    EVP_PKEY_free(pkey);
    char *data;
    long n = BIO_get_mem_data(out, &data);
    char *enc = strndup(data, (size_t)n);
    BIO_free(out);
    char *why = NULL, *hdr = NULL;
    cr_assert_null(pm_dkim_txt_record(enc, &why));
    free(why);
    why = NULL;
    cr_assert_eq(pm_dkim_sign(s_dkim, s_msg_lf, strlen(s_msg_lf),
                              "example.test", "sel", enc, &hdr, &why),
                 PM_EINVAL);
    cr_assert_not_null(why);
    cr_assert_null(strstr(why, "ENCRYPTED"), "why leaks key text: %s", why);
    free(why);
    free(enc);
}

Test(dkim, bad_arguments)
{
    char *why = NULL, *hdr = NULL;
    pm_dkim_verdict_t v = {0};
    cr_assert_eq(pm_dkim_verify(NULL, "x", 1, &v, &why), PM_EINVAL);
    free(why);
    why = NULL;
    cr_assert_eq(pm_dkim_sign(s_dkim, "x", 1, "", "sel", s_key, &hdr, NULL),
                 PM_EINVAL);
    cr_assert_eq(pm_dkim_set_query_file(s_dkim, ""), PM_EINVAL);
    cr_assert_eq(pm_dkim_set_query_file(NULL, "/x"), PM_EINVAL);
    cr_assert_null(pm_dkim_txt_record(NULL, NULL));
    pm_dkim_destroy(NULL);
    pm_dkim_verdict_clear(NULL);
}
