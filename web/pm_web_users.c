/* pm_web_users.c - the users file (see pm_web_users.h). */
#include "pm_web_users.h"

#include "pm_error.h"
#include "pm_file.h"
#include "pm_mem.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define S_NAME_CHARS                                                           \
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._@-"

const char *
pm_web_user_name_problem(const char *name)
{
    size_t len = strlen(name);
    if (len == 0 || len > PM_WEB_USER_MAX)
        return "a user name is 1 to 64 characters";
    if (strspn(name, S_NAME_CHARS) != len)
        return "a user name may hold letters, digits and . _ @ - only";
    return NULL;
}

/* One parsed file: the lines, and for each its name (the text before the
 * colon, NUL-terminated in place) and hash. */
typedef struct {
    char *data;
    char **names, **hashes;
    size_t n;
} s_file_t;

static void
s_file_free(s_file_t *f)
{
    free(f->data);
    free(f->names);
    free(f->hashes);
    memset(f, 0, sizeof *f);
}

static int
s_file_parse(s_file_t *f, const char *path, char **why)
{
    size_t n = 0;
    for (const char *p = f->data; *p; p++)
        n += *p == '\n';
    f->names = pm_calloc(n + 1, sizeof *f->names);
    f->hashes = pm_calloc(n + 1, sizeof *f->hashes);
    unsigned line = 0;
    for (char *p = f->data, *next; p && *p; p = next) {
        line++;
        next = strchr(p, '\n');
        if (next)
            *next++ = '\0';
        if (!*p || *p == '#')
            continue;
        char *colon = strchr(p, ':');
        if (colon)
            *colon = '\0';
        if (!colon || pm_web_user_name_problem(p) ||
            strncmp(colon + 1, crypto_pwhash_STRPREFIX,
                    strlen(crypto_pwhash_STRPREFIX)) != 0) {
            pm_why(why, "web users",
                   "%s:%u: not NAME:ARGON2ID-HASH (the file is written by "
                   "'privmta-ctl web user')",
                   path, line);
            return PM_EINVAL;
        }
        f->names[f->n] = p;
        f->hashes[f->n++] = colon + 1;
    }
    return PM_OK;
}

static int
s_file_read(s_file_t *f, const char *path, bool missing_ok, char **why)
{
    memset(f, 0, sizeof *f);
    int rc = pm_file_read(path, PM_WEB_USERS_FILE_MAX, PM_FILE_STRICT, &f->data,
                          NULL, why);
    if (rc == PM_ENOTFOUND && missing_ok) {
        if (why) {
            free(*why);
            *why = NULL;
        }
        f->data = pm_strdup("");
        rc = PM_OK;
    }
    if (rc == PM_OK)
        rc = s_file_parse(f, path, why);
    if (rc != PM_OK)
        s_file_free(f);
    return rc;
}

static ssize_t
s_find(const s_file_t *f, const char *name)
{
    for (size_t i = 0; i < f->n; i++)
        if (strcmp(f->names[i], name) == 0)
            return (ssize_t)i;
    return -1;
}

/* Writes F back, with the user at SKIP left out (-1: none) and, when
 * NAME is not NULL, NAME:HASH at the end. */
static int
s_file_write(const s_file_t *f, const char *path, ssize_t skip,
             const char *name, const char *hash, char **why)
{
    char *text = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&text, &len);
    if (!out)
        abort();
    for (size_t i = 0; i < f->n; i++)
        if ((ssize_t)i != skip)
            fprintf(out, "%s:%s\n", f->names[i], f->hashes[i]);
    if (name)
        fprintf(out, "%s:%s\n", name, hash);
    fclose(out);
    /* the file keeps its group: privmta-web reads it through that */
    struct stat st;
    gid_t gid = stat(path, &st) == 0 ? st.st_gid : (gid_t)-1;
    int rc = pm_file_write(path, text, len, 0640, gid, why);
    sodium_memzero(text, len);
    free(text);
    return rc;
}

static int
s_hash(const char *password, char out[crypto_pwhash_STRBYTES], char **why)
{
    size_t len = strlen(password);
    if (len < PM_WEB_PASSWORD_MIN || len > PM_WEB_PASSWORD_MAX) {
        pm_why(why, "web users", "a password is %d to %d characters",
               PM_WEB_PASSWORD_MIN, PM_WEB_PASSWORD_MAX);
        return PM_EINVAL;
    }
    if (sodium_init() < 0 ||
        crypto_pwhash_str(out, password, len,
                          crypto_pwhash_OPSLIMIT_INTERACTIVE,
                          crypto_pwhash_MEMLIMIT_INTERACTIVE) != 0) {
        pm_why(why, "web users", "cannot hash the password (out of memory)");
        return PM_ENOMEM;
    }
    return PM_OK;
}

int
pm_web_users_set(const char *path, const char *name, const char *password,
                 bool replace, char **why)
{
    const char *bad = pm_web_user_name_problem(name);
    if (bad) {
        pm_why(why, "web users", "\"%.64s\": %s", name, bad);
        return PM_EINVAL;
    }
    char hash[crypto_pwhash_STRBYTES];
    int rc = s_hash(password, hash, why);
    if (rc != PM_OK)
        return rc;
    s_file_t f;
    if ((rc = s_file_read(&f, path, !replace, why)) != PM_OK)
        return rc;
    ssize_t at = s_find(&f, name);
    if (at >= 0 && !replace) {
        pm_why(why, "web users",
               "user %s exists (to change the password: web user passwd)",
               name);
        rc = PM_EEXIST;
    } else if (at < 0 && replace) {
        pm_why(why, "web users", "no user %s in %s", name, path);
        rc = PM_ENOTFOUND;
    } else {
        rc = s_file_write(&f, path, at, name, hash, why);
    }
    s_file_free(&f);
    return rc;
}

int
pm_web_users_remove(const char *path, const char *name, char **why)
{
    s_file_t f;
    int rc = s_file_read(&f, path, false, why);
    if (rc != PM_OK)
        return rc;
    ssize_t at = s_find(&f, name);
    if (at < 0) {
        pm_why(why, "web users", "no user %.64s in %s", name, path);
        rc = PM_ENOTFOUND;
    } else {
        rc = s_file_write(&f, path, at, NULL, NULL, why);
    }
    s_file_free(&f);
    return rc;
}

static void
s_stamp(const char *hash, unsigned char stamp[PM_WEB_STAMP_LEN])
{
    crypto_generichash(stamp, PM_WEB_STAMP_LEN, (const unsigned char *)hash,
                       strlen(hash), NULL, 0);
}

int
pm_web_users_each(const char *path, pm_web_users_fn *fn, void *arg, char **why)
{
    s_file_t f;
    int rc = s_file_read(&f, path, false, why);
    if (rc != PM_OK)
        return rc;
    for (size_t i = 0; i < f.n; i++) {
        unsigned char stamp[PM_WEB_STAMP_LEN];
        s_stamp(f.hashes[i], stamp);
        fn(f.names[i], stamp, arg);
    }
    s_file_free(&f);
    return PM_OK;
}

/* A hash of a password nobody has, to check an unknown user against. */
static const char *
s_decoy(void)
{
    static char decoy[crypto_pwhash_STRBYTES];
    if (!*decoy) {
        unsigned char pw[32];
        randombytes_buf(pw, sizeof pw);
        if (crypto_pwhash_str(decoy, (const char *)pw, sizeof pw,
                              crypto_pwhash_OPSLIMIT_INTERACTIVE,
                              crypto_pwhash_MEMLIMIT_INTERACTIVE) != 0)
            abort(); /* out of memory, as pm_mem */
    }
    return decoy;
}

int
pm_web_users_check(const char *path, const char *name, const char *password,
                   unsigned char *stamp, char **why)
{
    if (sodium_init() < 0)
        abort();
    s_file_t f;
    int rc = s_file_read(&f, path, true, why);
    if (rc != PM_OK)
        return rc;
    ssize_t at = s_find(&f, name);
    size_t len = strnlen(password, PM_WEB_PASSWORD_MAX + 1);
    const char *hash = at >= 0 ? f.hashes[at] : s_decoy();
    bool ok = crypto_pwhash_str_verify(hash, password, len) == 0 && at >= 0 &&
              len <= PM_WEB_PASSWORD_MAX;
    if (ok && stamp)
        s_stamp(hash, stamp);
    s_file_free(&f);
    return ok ? PM_OK : PM_EDENIED;
}
