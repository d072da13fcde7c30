/* pm_dkim.c - libopendkim wrapper: feed headers and body, read verdicts. */
#include "pm_dkim.h"

#include "pm_log.h"
#include "pm_mem.h"

#include <dkim.h>
#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define DKIM_SIG_PREFIX "DKIM-Signature: "
#define BODY_CHUNK 65536

/* LIB signs (no DNS). Verification looks keys up with libopendkim's stock
 * resolver, whose one resolver state (res_ninit) belongs to a library
 * handle: threads sharing one would share its sockets, and a query could
 * close another thread's. So each verifying thread has a handle of its
 * own (KEY), made like LIB on its first verification, closed when the
 * thread ends. */
struct pm_dkim_t {
    DKIM_LIB *lib;
    char *query_file; /* NULL: DNS */
    pthread_key_t key;
};

/* Headers signed twice so none can be added above them (RFC 6376 8.15). */
static const char *s_oversign[] = {"from", NULL};

/* The first OpenSSL error, as text; clears the queue. Never key bytes. */
static const char *
s_ssl_error(char *buf, size_t size)
{
    unsigned long e = ERR_get_error();
    if (e)
        ERR_error_string_n(e, buf, size);
    else
        snprintf(buf, size, "unknown OpenSSL error");
    ERR_clear_error();
    return buf;
}

/* ---- which signatures are checked ------------------------------------- */

static bool s_domain_eq(const char *a, const char *b);

/* A verification's DOMAINS (NULL: any), its user context. */
typedef struct {
    const char *const *domains;
    size_t n;
} s_want_t;

static bool
s_wanted(const s_want_t *want, const char *domain)
{
    if (!want || !want->domains)
        return true;
    for (size_t i = 0; domain && i < want->n; i++)
        if (s_domain_eq(domain, want->domains[i]))
            return true;
    return false;
}

/* libopendkim's prescreen, called once the signatures are parsed and
 * before any key is looked up: the first PM_DKIM_CHECK_MAX wanted ones
 * are checked, the others ignored (pm_dkim.h). */
static DKIM_CBSTAT
s_prescreen(DKIM *dkim, DKIM_SIGINFO **sigs, int nsigs)
{
    const s_want_t *want = dkim_get_user_context(dkim);
    int kept = 0;
    for (int i = 0; i < nsigs; i++) {
        const u_char *d = dkim_sig_getdomain(sigs[i]);
        if (kept < PM_DKIM_CHECK_MAX && s_wanted(want, (const char *)d))
            kept++;
        else
            dkim_sig_ignore(sigs[i]);
    }
    return DKIM_CBSTAT_CONTINUE;
}

/* ---- library handle --------------------------------------------------- */

/* A library handle with this module's options; NULL with *WHY. */
static DKIM_LIB *
s_lib_new(const char *query_file, char **why)
{
    DKIM_LIB *lib = dkim_init(NULL, NULL);
    if (!lib) {
        pm_why(why, "dkim", "libopendkim failed to start (dkim_init)");
        return NULL;
    }
    /* Keep signatures that fail to parse in the list, so the verdict names
     * them instead of silently dropping them. */
    unsigned int flags = DKIM_LIBFLAGS_BADSIGHANDLES;
    unsigned int timeout = PM_DKIM_DNS_TIMEOUT_S;
    dkim_query_t method = DKIM_QUERY_FILE;
    DKIM_STAT st = dkim_options(lib, DKIM_OP_SETOPT, DKIM_OPTS_FLAGS, &flags,
                                sizeof flags);
    if (st == DKIM_STAT_OK)
        st = dkim_options(lib, DKIM_OP_SETOPT, DKIM_OPTS_OVERSIGNHDRS,
                          s_oversign, sizeof(char **));
    if (st == DKIM_STAT_OK)
        st = dkim_options(lib, DKIM_OP_SETOPT, DKIM_OPTS_TIMEOUT, &timeout,
                          sizeof timeout);
    if (st == DKIM_STAT_OK)
        st = dkim_set_prescreen(lib, s_prescreen);
    if (st == DKIM_STAT_OK && query_file)
        st = dkim_options(lib, DKIM_OP_SETOPT, DKIM_OPTS_QUERYMETHOD, &method,
                          sizeof method);
    if (st == DKIM_STAT_OK && query_file)
        st = dkim_options(lib, DKIM_OP_SETOPT, DKIM_OPTS_QUERYINFO,
                          (void *)query_file, strlen(query_file));
    if (st != DKIM_STAT_OK) {
        pm_why(why, "dkim", "libopendkim refused its options: %s",
               dkim_getresultstr(st));
        dkim_close(lib);
        return NULL;
    }
    return lib;
}

static void
s_lib_close(void *lib)
{
    dkim_close(lib);
}

pm_dkim_t *
pm_dkim_new(char **why)
{
    DKIM_LIB *lib = s_lib_new(NULL, why);
    if (!lib)
        return NULL;
    pm_dkim_t *self = pm_calloc(1, sizeof *self);
    self->lib = lib;
    if (pthread_key_create(&self->key, s_lib_close) != 0) {
        pm_why(why, "dkim", "no thread-specific key left");
        dkim_close(lib);
        free(self);
        return NULL;
    }
    return self;
}

void
pm_dkim_destroy(pm_dkim_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    pm_dkim_t *self = *self_p;
    DKIM_LIB *mine = pthread_getspecific(self->key);
    if (mine)
        dkim_close(mine);
    pthread_key_delete(self->key);
    if (self->lib)
        dkim_close(self->lib);
    free(self->query_file);
    PM_FREE(self_p);
}

int
pm_dkim_set_query_file(pm_dkim_t *self, const char *path)
{
    if (!self || !path || !*path || strlen(path) >= 4096)
        return PM_EINVAL;
    char *why = NULL;
    DKIM_LIB *lib = s_lib_new(path, &why); /* the options are taken */
    if (!lib) {
        pm_debug("dkim: query file option refused: %s", why);
        free(why);
        return PM_EINVAL;
    }
    dkim_close(self->lib);
    self->lib = lib;
    free(self->query_file);
    self->query_file = pm_strdup(path);
    return PM_OK;
}

/* The calling thread's library handle for verifying, or NULL with *WHY. */
static DKIM_LIB *
s_thread_lib(pm_dkim_t *self, char **why)
{
    DKIM_LIB *lib = pthread_getspecific(self->key);
    if (!lib && (lib = s_lib_new(self->query_file, why)) &&
        pthread_setspecific(self->key, lib) != 0) {
        dkim_close(lib);
        pm_why(why, "dkim", "cannot keep a handle for this thread");
        return NULL;
    }
    return lib;
}

/* ---- feeding a message ------------------------------------------------ */

static bool
s_internal(DKIM_STAT st)
{
    return st == DKIM_STAT_NORESOURCE || st == DKIM_STAT_INTERNAL;
}

/* A copy of msg with every bare LF turned into CRLF (libopendkim hashes
 * the wire form, which is CRLF). */
static char *
s_crlf(const char *msg, size_t len, size_t *out_len)
{
    size_t extra = 0;
    for (size_t i = 0; i < len; i++)
        if (msg[i] == '\n' && (i == 0 || msg[i - 1] != '\r'))
            extra++;
    char *out = pm_malloc(len + extra + 1);
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        if (msg[i] == '\n' && (i == 0 || msg[i - 1] != '\r'))
            out[o++] = '\r';
        out[o++] = msg[i];
    }
    out[o] = '\0';
    *out_len = o;
    return out;
}

/* The DKIM-Signature fields seen while feeding headers to a verifier. */
typedef struct {
    size_t fields;         /* all of them */
    pm_dkim_verdict_t bad; /* those dkim_header refused */
} s_sigfields_t;

/* True when the header field is a DKIM-Signature (name, WSP, colon). */
static bool
s_is_signature(const char *field, size_t len)
{
    static const char name[] = "DKIM-Signature";
    size_t n = sizeof name - 1;
    if (len <= n || strncasecmp(field, name, n))
        return false;
    while (n < len && (field[n] == ' ' || field[n] == '\t'))
        n++;
    return n < len && field[n] == ':';
}

/* The d= of a signature libopendkim could not parse, for the verdict
 * only ("" when there is none): it never passes. */
static char *
s_guess_domain(const char *field, size_t len)
{
    const char *p = memchr(field, ':', len), *end = field + len;
    while (p && p < end) {
        p++;
        while (p < end && strchr(" \t\r\n", *p))
            p++;
        const char *semi = memchr(p, ';', (size_t)(end - p));
        const char *stop = semi ? semi : end;
        if (stop - p > 2 && p[0] == 'd' && p[1] == '=') {
            const char *v = p + 2, *ve = stop;
            while (v < ve && strchr(" \t\r\n", *v))
                v++;
            while (ve > v && strchr(" \t\r\n", ve[-1]))
                ve--;
            size_t n = (size_t)(ve - v);
            char *d = pm_strndup(v, n < 255 ? n : 255);
            for (char *c = d; *c; c++)
                if ((unsigned char)*c < 0x21 || (unsigned char)*c > 0x7e)
                    *c = '?';
            return d;
        }
        p = semi;
    }
    return pm_strdup("");
}

/* Appends *sig to v, taking over its strings. */
static void
s_add_malformed_sig(pm_dkim_verdict_t *v, pm_dkim_sig_t *sig)
{
    v->sigs = pm_realloc(v->sigs, (v->n_sigs + 1) * sizeof *v->sigs);
    v->sigs[v->n_sigs++] = *sig;
    memset(sig, 0, sizeof *sig);
}

static void
s_add_malformed(pm_dkim_verdict_t *v, const char *field, size_t len)
{
    pm_dkim_sig_t sig = {.domain = s_guess_domain(field, len),
                         .selector = pm_strdup(""),
                         .result = PM_DKIM_PERMERROR,
                         .reason = pm_strdup("malformed DKIM-Signature")};
    s_add_malformed_sig(v, &sig);
}

/* Passes each header field (folded lines included, final CRLF excluded) to
 * dkim_header, then calls dkim_eoh and leaves its status in *eoh. *body is
 * set to where the body starts (after the blank line; the end of the
 * message when there is none). PM_EINVAL when libopendkim rejects a header
 * field (no colon, bad characters), PM_EINTERNAL when it runs out.
 * When verifying (sigs not NULL), a DKIM-Signature field libopendkim
 * cannot parse is not an error: libopendkim keeps it as a bad signature
 * (DKIM_LIBFLAGS_BADSIGHANDLES); in case it does not, it is also noted in
 * sigs->bad. So a sender cannot turn verification into an error with one
 * broken field. sigs->fields counts every DKIM-Signature field. */
static int
s_feed_headers(DKIM *dkim, const char *msg, size_t len, size_t *body,
               DKIM_STAT *eoh, s_sigfields_t *sigs, char **why)
{
    size_t i = 0;
    while (i < len) {
        if (len - i >= 2 && msg[i] == '\r' && msg[i + 1] == '\n') {
            i += 2; /* the blank line */
            break;
        }
        size_t end = i, next;
        for (;;) {
            const char *crlf = memmem(msg + end, len - end, "\r\n", 2);
            if (!crlf) {
                end = next = len;
                break;
            }
            end = (size_t)(crlf - msg);
            if (end + 2 < len &&
                (msg[end + 2] == ' ' || msg[end + 2] == '\t')) {
                end += 2; /* folded: the field goes on */
                continue;
            }
            next = end + 2;
            break;
        }
        DKIM_STAT st = dkim_header(dkim, (u_char *)msg + i, end - i);
        if (sigs && s_is_signature(msg + i, end - i)) {
            sigs->fields++;
            if (st != DKIM_STAT_OK && !s_internal(st)) {
                s_add_malformed(&sigs->bad, msg + i, end - i);
                st = DKIM_STAT_OK;
            }
        }
        if (st != DKIM_STAT_OK) {
            pm_why(why, "dkim", "header field at offset %zu rejected: %s", i,
                   dkim_getresultstr(st));
            return s_internal(st) ? PM_EINTERNAL : PM_EINVAL;
        }
        i = next;
    }
    *body = i;
    *eoh = dkim_eoh(dkim);
    return PM_OK;
}

static DKIM_STAT
s_feed_body(DKIM *dkim, const char *body, size_t len)
{
    for (size_t off = 0; off < len; off += BODY_CHUNK) {
        size_t n = len - off < BODY_CHUNK ? len - off : BODY_CHUNK;
        DKIM_STAT st = dkim_body(dkim, (u_char *)body + off, n);
        if (st != DKIM_STAT_OK)
            return st;
    }
    return dkim_eom(dkim, NULL);
}

/* ---- verify ----------------------------------------------------------- */

/* PASS only for a verified signature over the whole body: with l= a
 * signature covers a prefix and content may have been appended, so a
 * signature with l= does not pass at all. */
static void
s_judge(DKIM *dkim, DKIM_SIGINFO *sig, pm_dkim_sig_t *out)
{
    unsigned int flags = dkim_sig_getflags(sig);
    int err = dkim_sig_geterror(sig);
    int bh = dkim_sig_getbh(sig);
    ssize_t msglen = -1, canonlen = -1, signlen = -1;
    dkim_sig_getcanonlen(dkim, sig, &msglen, &canonlen, &signlen);
    const u_char *d = dkim_sig_getdomain(sig);
    const u_char *s = dkim_sig_getselector(sig);
    out->domain = pm_strdup(d ? (const char *)d : "");
    out->selector = pm_strdup(s ? (const char *)s : "");
    const char *reason;
    if ((flags & DKIM_SIGFLAG_PASSED) && bh == DKIM_SIGBH_MATCH &&
        !(flags & DKIM_SIGFLAG_IGNORE)) {
        out->result = signlen >= 0 ? PM_DKIM_FAIL : PM_DKIM_PASS;
        reason = signlen >= 0 ? "l= body length limit not accepted" : "ok";
    } else if (bh == DKIM_SIGBH_MISMATCH) {
        out->result = PM_DKIM_FAIL;
        reason = "body hash mismatch";
    } else if (err == DKIM_SIGERROR_KEYFAIL) {
        out->result = PM_DKIM_TEMPERROR;
        reason = dkim_sig_geterrorstr(err);
    } else if (err == DKIM_SIGERROR_BADSIG) {
        out->result = PM_DKIM_FAIL;
        reason = dkim_sig_geterrorstr(err);
    } else if (err == DKIM_SIGERROR_OK) {
        out->result = PM_DKIM_FAIL;
        reason = "not verified";
    } else {
        out->result = PM_DKIM_PERMERROR;
        reason = dkim_sig_geterrorstr(err);
    }
    out->pass = out->result == PM_DKIM_PASS;
    out->reason = pm_strdup(reason ? reason : "unknown error");
}

/* The signatures checked (s_prescreen ignored the others) into *OUT;
 * *LISTED gets how many libopendkim listed. */
static int
s_collect(DKIM *dkim, pm_dkim_verdict_t *out, size_t *listed, char **why)
{
    DKIM_SIGINFO **sigs = NULL;
    int nsigs = 0;
    DKIM_STAT st = dkim_getsiglist(dkim, &sigs, &nsigs);
    if (st != DKIM_STAT_OK || nsigs <= 0) {
        if (s_internal(st)) {
            pm_why(why, "dkim", "libopendkim: %s", dkim_getresultstr(st));
            return PM_EINTERNAL;
        }
        return PM_OK; /* no signature at all */
    }
    *listed = (size_t)nsigs;
    out->sigs = pm_realloc(out->sigs,
                           (out->n_sigs + (size_t)nsigs) * sizeof *out->sigs);
    for (int i = 0; i < nsigs; i++) {
        if (dkim_sig_getflags(sigs[i]) & DKIM_SIGFLAG_IGNORE)
            continue;
        pm_dkim_sig_t *sig = &out->sigs[out->n_sigs++];
        memset(sig, 0, sizeof *sig);
        s_judge(dkim, sigs[i], sig);
    }
    return PM_OK;
}

int
pm_dkim_verify(pm_dkim_t *self, const char *msg, size_t len,
               pm_dkim_verdict_t *out, char **why)
{
    return pm_dkim_verify_for(self, msg, len, NULL, 0, out, why);
}

int
pm_dkim_verify_for(pm_dkim_t *self, const char *msg, size_t len,
                   const char *const *domains, size_t n_domains,
                   pm_dkim_verdict_t *out, char **why)
{
    if (!self || !msg || !out) {
        pm_why(why, "dkim", "invalid arguments to pm_dkim_verify");
        return PM_EINVAL;
    }
    DKIM_LIB *lib = s_thread_lib(self, why);
    if (!lib)
        return PM_EINTERNAL;
    DKIM_STAT st;
    DKIM *dkim = dkim_verify(lib, (const u_char *)"pm", NULL, &st);
    if (!dkim) {
        pm_why(why, "dkim", "libopendkim cannot verify: %s",
               dkim_getresultstr(st));
        return PM_EINTERNAL;
    }
    s_want_t want = {domains, n_domains};
    dkim_set_user_context(dkim, &want); /* for s_prescreen */
    size_t clen, body, listed = 0;
    char *crlf = s_crlf(msg, len, &clen);
    pm_dkim_verdict_t v = {0};
    s_sigfields_t sigs = {0};
    int rc = s_feed_headers(dkim, crlf, clen, &body, &st, &sigs, why);
    if (!rc && st == DKIM_STAT_OK)
        st = s_feed_body(dkim, crlf + body, clen - body);
    if (!rc && s_internal(st)) {
        pm_why(why, "dkim", "libopendkim failed: %s", dkim_getresultstr(st));
        rc = PM_EINTERNAL;
    } else if (!rc && st != DKIM_STAT_NOSIG) {
        /* OK, BADSIG, NOKEY, SYNTAX...: each signature says what it is. */
        rc = s_collect(dkim, &v, &listed, why);
    }
    if (!rc && listed < sigs.fields) {
        /* libopendkim dropped the fields it refused: list them too. */
        for (size_t i = 0; i < sigs.bad.n_sigs; i++)
            if (s_wanted(&want, sigs.bad.sigs[i].domain))
                s_add_malformed_sig(&v, &sigs.bad.sigs[i]);
    }
    pm_dkim_verdict_clear(&sigs.bad);
    dkim_free(dkim);
    free(crlf);
    if (rc) {
        pm_dkim_verdict_clear(&v);
        return rc;
    }
    *out = v;
    return PM_OK;
}

static bool
s_domain_eq(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la && a[la - 1] == '.')
        la--;
    if (lb && b[lb - 1] == '.')
        lb--;
    return la == lb && la > 0 && !strncasecmp(a, b, la);
}

bool
pm_dkim_has_result_for(const pm_dkim_verdict_t *verdict, const char *domain,
                       pm_dkim_result_t result)
{
    if (!verdict || !domain)
        return false;
    for (size_t i = 0; i < verdict->n_sigs; i++)
        if (verdict->sigs[i].result == result &&
            verdict->sigs[i].pass == (result == PM_DKIM_PASS) &&
            s_domain_eq(verdict->sigs[i].domain, domain))
            return true;
    return false;
}

bool
pm_dkim_has_valid_signature_for(const pm_dkim_verdict_t *verdict,
                                const char *domain)
{
    return pm_dkim_has_result_for(verdict, domain, PM_DKIM_PASS);
}

void
pm_dkim_verdict_clear(pm_dkim_verdict_t *verdict)
{
    if (!verdict)
        return;
    for (size_t i = 0; i < verdict->n_sigs; i++) {
        free(verdict->sigs[i].domain);
        free(verdict->sigs[i].selector);
        free(verdict->sigs[i].reason);
    }
    free(verdict->sigs);
    memset(verdict, 0, sizeof *verdict);
}

/* ---- keys (OpenSSL) --------------------------------------------------- */

/* Refuses encrypted keys instead of prompting on a terminal. */
static int
s_no_passphrase(char *buf, int size, int rwflag, void *u)
{
    (void)buf, (void)size, (void)rwflag, (void)u;
    return -1;
}

/* Parses an unencrypted RSA private key from PEM text. */
static EVP_PKEY *
s_load_key(const char *pem, char **why)
{
    char err[256];
    BIO *bio = BIO_new_mem_buf(pem, -1);
    if (!bio) {
        pm_why(why, "dkim", "cannot read key: %s",
               s_ssl_error(err, sizeof err));
        return NULL;
    }
    EVP_PKEY *pkey = PEM_read_bio_PrivateKey(bio, NULL, s_no_passphrase, NULL);
    BIO_free(bio);
    if (!pkey) {
        pm_why(why, "dkim", "not a usable private key (PEM, unencrypted): %s",
               s_ssl_error(err, sizeof err));
        return NULL;
    }
    if (EVP_PKEY_get_base_id(pkey) != EVP_PKEY_RSA) {
        pm_why(why, "dkim", "private key is not RSA");
        EVP_PKEY_free(pkey);
        return NULL;
    }
    return pkey;
}

char *
pm_dkim_txt_record(const char *private_key_pem, char **why)
{
    if (!private_key_pem) {
        pm_why(why, "dkim", "no private key given");
        return NULL;
    }
    EVP_PKEY *pkey = s_load_key(private_key_pem, why);
    if (!pkey)
        return NULL;
    unsigned char *der = NULL;
    int der_len = i2d_PUBKEY(pkey, &der); /* SubjectPublicKeyInfo */
    EVP_PKEY_free(pkey);
    if (der_len <= 0) {
        char err[256];
        pm_why(why, "dkim", "cannot encode public key: %s",
               s_ssl_error(err, sizeof err));
        return NULL;
    }
    size_t b64_size = 4 * (((size_t)der_len + 2) / 3) + 1;
    unsigned char *b64 = pm_malloc(b64_size);
    EVP_EncodeBlock(b64, der, der_len);
    OPENSSL_free(der);
    char *record = pm_asprintf("v=DKIM1; k=rsa; p=%s", (char *)b64);
    free(b64);
    return record;
}

int
pm_dkim_generate_key(unsigned bits, char **pem_out, char **why)
{
    if (!pem_out || bits < 1024 || bits > 8192) {
        pm_why(why, "dkim", "key size %u out of range (1024 to 8192)", bits);
        return PM_EINVAL;
    }
    char err[256];
    EVP_PKEY *pkey = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)bits);
    if (!pkey) {
        pm_why(why, "dkim", "RSA key generation failed: %s",
               s_ssl_error(err, sizeof err));
        return PM_EINTERNAL;
    }
    /* A secure-memory BIO: its buffer is cleansed when freed. */
    BIO *bio = BIO_new(BIO_s_secmem());
    int rc = PM_EINTERNAL;
    char *data = NULL;
    long n;
    if (bio && PEM_write_bio_PrivateKey(bio, pkey, NULL, NULL, 0, NULL, NULL) &&
        (n = BIO_get_mem_data(bio, &data)) > 0) {
        *pem_out = pm_strndup(data, (size_t)n);
        rc = PM_OK;
    } else
        pm_why(why, "dkim", "cannot write the key as PEM: %s",
               s_ssl_error(err, sizeof err));
    BIO_free(bio);
    EVP_PKEY_free(pkey);
    return rc;
}

/* ---- sign ------------------------------------------------------------- */

/* Feeds msg to a signing handle and fetches "DKIM-Signature: ..." */
static int
s_sign_msg(DKIM *dkim, const char *msg, size_t len, char **header_out,
           char **why)
{
    size_t clen, body;
    char *crlf = s_crlf(msg, len, &clen);
    DKIM_STAT st;
    int rc = s_feed_headers(dkim, crlf, clen, &body, &st, NULL, why);
    if (!rc && st == DKIM_STAT_OK)
        st = s_feed_body(dkim, crlf + body, clen - body);
    free(crlf);
    if (rc)
        return rc;
    u_char *value = NULL;
    size_t vlen = 0;
    if (st == DKIM_STAT_OK)
        st = dkim_getsighdr_d(dkim, strlen(DKIM_SIG_PREFIX), &value, &vlen);
    if (st != DKIM_STAT_OK) {
        const char *detail = dkim_geterror(dkim);
        pm_why(why, "dkim", "signing failed: %s%s%s", dkim_getresultstr(st),
               detail ? ": " : "", detail ? detail : "");
        return s_internal(st) ? PM_EINTERNAL : PM_EINVAL;
    }
    /* libopendkim folds with bare LF (what smfi_insheader wants); the
     * header handed out is in wire form, folded with CRLF + TAB. */
    size_t n;
    char *folded = s_crlf((const char *)value, vlen, &n);
    *header_out = pm_asprintf(DKIM_SIG_PREFIX "%s", folded);
    free(folded);
    return PM_OK;
}

int
pm_dkim_sign(pm_dkim_t *self, const char *msg, size_t len, const char *domain,
             const char *selector, const char *private_key_pem,
             char **header_out, char **why)
{
    if (!self || !msg || !domain || !*domain || !selector || !*selector ||
        !private_key_pem || !header_out) {
        pm_why(why, "dkim", "invalid arguments to pm_dkim_sign");
        return PM_EINVAL;
    }
    /* Checked here first so a bad or encrypted key gets a clear reason and
     * never reaches a passphrase prompt inside libopendkim. */
    EVP_PKEY *pkey = s_load_key(private_key_pem, why);
    if (!pkey)
        return PM_EINVAL;
    EVP_PKEY_free(pkey);
    DKIM_STAT st;
    DKIM *dkim = dkim_sign(
        self->lib, (const u_char *)"pm", NULL, (dkim_sigkey_t)private_key_pem,
        (const u_char *)selector, (const u_char *)domain, DKIM_CANON_RELAXED,
        DKIM_CANON_RELAXED, DKIM_SIGN_RSASHA256, -1, &st);
    if (!dkim) {
        pm_why(why, "dkim", "libopendkim cannot sign for %s: %s", domain,
               dkim_getresultstr(st));
        return s_internal(st) ? PM_EINTERNAL : PM_EINVAL;
    }
    int rc = s_sign_msg(dkim, msg, len, header_out, why);
    dkim_free(dkim);
    return rc;
}
