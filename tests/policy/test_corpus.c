/* test_corpus.c - every file of tests/policy/invalid is refused with a
 * "FILE:LINE: KEY: problem" line naming the key its first line expects, and
 * every file of tests/policy/valid loads.
 *
 * An invalid file starts with "# expect: KEY" ("# expect: -" when the
 * mistake is not tied to a key, e.g. a YAML syntax error); an "# error:
 * TEXT" line among the comments right after it says what one problem line
 * must contain, so that the message itself is tested too. Valid files that
 * share the part of their name before the first dot (full.nested.yaml,
 * full.dotted.yaml, full.json) are the same policy written differently and
 * must have the same digest.
 */
#include <criterion/criterion.h>

#include <ctype.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "pm_policy.h"

#define INVALID_DIR PM_SOURCE_DIR "/tests/policy/invalid"
#define VALID_DIR PM_SOURCE_DIR "/tests/policy/valid"

static int
s_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The regular files of DIR ending in .yaml or .json, sorted. Caller frees
 * every name and the array. */
static char **
s_list(const char *dir, size_t *n)
{
    DIR *d = opendir(dir);
    cr_assert_not_null(d, "cannot open %s", dir);
    char **names = NULL;
    *n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t len = strlen(e->d_name);
        bool yaml = len > 5 && strcmp(e->d_name + len - 5, ".yaml") == 0;
        bool json = len > 5 && strcmp(e->d_name + len - 5, ".json") == 0;
        if (!yaml && !json)
            continue;
        names = realloc(names, (*n + 1) * sizeof *names);
        names[(*n)++] = strdup(e->d_name);
    }
    closedir(d);
    qsort(names, *n, sizeof *names, s_cmp);
    return names;
}

static void
s_free_list(char **names, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
}

/* The KEY of the first line "# expect: KEY"; caller frees. */
static char *
s_expected_key(const char *path)
{
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f, "cannot open %s", path);
    char line[256] = "";
    char *ok = fgets(line, sizeof line, f);
    fclose(f);
    const char *tag = "# expect: ";
    cr_assert(ok && strncmp(line, tag, strlen(tag)) == 0,
              "%s: first line must be '# expect: KEY'", path);
    char *key = strdup(line + strlen(tag));
    key[strcspn(key, " \t\r\n")] = '\0';
    cr_assert(key[0], "%s: '# expect:' names no key", path);
    return key;
}

/* The TEXT of an "# error: TEXT" line among the leading comments, or
 * NULL. Caller frees. */
static char *
s_expected_error(const char *path)
{
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f, "cannot open %s", path);
    char line[512];
    char *text = NULL;
    const char *tag = "# error: ";
    while (!text && fgets(line, sizeof line, f) && line[0] == '#') {
        if (strncmp(line, tag, strlen(tag)) != 0)
            continue;
        text = strdup(line + strlen(tag));
        text[strcspn(text, "\r\n")] = '\0';
    }
    fclose(f);
    return text;
}

/* "PATH:DIGITS: " */
static bool
s_has_location(const char *line, const char *path)
{
    size_t len = strlen(path);
    if (strncmp(line, path, len) != 0 || line[len] != ':')
        return false;
    const char *p = line + len + 1;
    if (!isdigit((unsigned char)*p) || *p == '0')
        return false;
    while (isdigit((unsigned char)*p))
        p++;
    return p[0] == ':' && p[1] == ' ';
}

static void
s_check_invalid(const char *name)
{
    char *path = NULL;
    cr_assert(asprintf(&path, "%s/%s", INVALID_DIR, name) > 0);
    char *expect = s_expected_key(path);
    pm_diag_t *diag = pm_diag_new("unused");
    Pm__Policy *p = pm_policy_load_file(path, diag);
    size_t n = pm_diag_count(diag);
    char all[4096] = "";
    for (size_t i = 0; i < n; i++)
        snprintf(all + strlen(all), sizeof all - strlen(all), "\n  %s",
                 pm_diag_line(diag, i));
    cr_expect_null(p, "%s: accepted", name);
    cr_expect_gt(n, 0, "%s: refused without saying why", name);
    bool named = strcmp(expect, "-") == 0;
    for (size_t i = 0; i < n; i++) {
        cr_expect(s_has_location(pm_diag_line(diag, i), path),
                  "%s: line %zu lacks '%s:LINE: ':%s", name, i, path, all);
        const char *key = pm_diag_key(diag, i);
        named = named || (key && strcmp(key, expect) == 0);
    }
    cr_expect(named, "%s: no problem names %s:%s", name, expect, all);
    char *error = s_expected_error(path);
    bool said = !error;
    for (size_t i = 0; i < n && !said; i++)
        said = strstr(pm_diag_line(diag, i), error) != NULL;
    cr_expect(said, "%s: no problem says '%s':%s", name, error, all);
    free(error);
    pm_policy_free(&p);
    pm_diag_destroy(&diag);
    free(expect);
    free(path);
}

Test(corpus, invalid_files_are_refused_with_key_and_line)
{
    size_t n;
    char **names = s_list(INVALID_DIR, &n);
    cr_assert_geq(n, 35, "only %zu invalid files", n);
    for (size_t i = 0; i < n; i++)
        s_check_invalid(names[i]);
    s_free_list(names, n);
}

static Pm__Policy *
s_load_valid(const char *name)
{
    char *path = NULL;
    cr_assert(asprintf(&path, "%s/%s", VALID_DIR, name) > 0);
    pm_diag_t *diag = pm_diag_new("unused");
    Pm__Policy *p = pm_policy_load_file(path, diag);
    char all[4096] = "";
    for (size_t i = 0; i < pm_diag_count(diag); i++)
        snprintf(all + strlen(all), sizeof all - strlen(all), "\n  %s",
                 pm_diag_line(diag, i));
    cr_expect_not_null(p, "%s refused:%s", name, all);
    cr_expect_eq(pm_diag_count(diag), 0, "%s:%s", name, all);
    pm_diag_destroy(&diag);
    free(path);
    return p;
}

Test(corpus, valid_files_load_and_variants_agree)
{
    size_t n;
    char **names = s_list(VALID_DIR, &n);
    cr_assert_geq(n, 6, "only %zu valid files", n);
    char(*digests)[65] = calloc(n, sizeof *digests);
    for (size_t i = 0; i < n; i++) {
        Pm__Policy *p = s_load_valid(names[i]);
        if (p)
            pm_policy_digest(p, digests[i]);
        pm_policy_free(&p);
    }
    /* Files with the same stem are the same policy. */
    size_t groups = 0;
    for (size_t i = 0; i < n; i++) {
        size_t stem = strcspn(names[i], ".");
        for (size_t j = i + 1; j < n; j++) {
            if (strcspn(names[j], ".") != stem ||
                strncmp(names[i], names[j], stem) != 0)
                continue;
            groups++;
            cr_expect_str_eq(digests[i], digests[j], "%s and %s differ",
                             names[i], names[j]);
        }
    }
    /* full: nested, dotted, JSON (3 pairs); sig: inline, file (1 pair) */
    cr_expect_geq(groups, 4, "only %zu pairs of variants", groups);
    free(digests);
    s_free_list(names, n);
}

/* The full example really sets every key away from its default, so that
 * comparing its variants compares every key. */
Test(corpus, full_example_sets_every_key)
{
    Pm__Policy *full = s_load_valid("full.nested.yaml");
    cr_assert_not_null(full);
    Pm__Policy *dflt = pm_policy_new();
    size_t n;
    const pm_key_t *keys = pm_policy_keys(&n);
    for (size_t i = 0; i < n; i++) {
        char *a = pm_policy_key_text(full, &keys[i]);
        char *b = pm_policy_key_text(dflt, &keys[i]);
        cr_expect_str_neq(a, b, "%s keeps its default %s", keys[i].name, b);
        free(a);
        free(b);
    }
    pm_policy_free(&dflt);
    pm_policy_free(&full);
}

/* The signature read through `file:` is the file's bytes, with the sha256
 * computed from them. */
Test(corpus, signature_file_is_read_relative_to_the_policy)
{
    Pm__Policy *p = s_load_valid("sig.file.yaml");
    cr_assert_not_null(p);
    cr_assert_eq(p->n_antivirus_custom_signatures, 1);
    const Pm__CustomSignature *s = p->antivirus_custom_signatures[0];
    FILE *f = fopen(VALID_DIR "/sigs/x.ndb", "rb");
    cr_assert_not_null(f);
    char buf[512];
    size_t len = fread(buf, 1, sizeof buf, f);
    fclose(f);
    cr_expect_eq(s->content.len, len);
    cr_expect(s->content.len == len && memcmp(s->content.data, buf, len) == 0);
    cr_expect_str_eq(s->name, "x.ndb");
    cr_expect_eq(strlen(s->sha256), 64);
    pm_policy_free(&p);
}
