/* dkimsign - tests only: DKIM through pm_dkim from the command line.
 *
 *   dkimsign sign DOMAIN SELECTOR KEYFILE < MSG > SIGNED
 *       prints the DKIM-Signature header, CRLF, then the message
 *   dkimsign verify QUERYFILE DOMAIN < MSG
 *       exit 0 when MSG has a passing signature of DOMAIN, else 1; one
 *       line per signature on stdout
 *   dkimsign txt KEYFILE
 *       prints the TXT record of the key's public half
 * Exit 2 on usage or I/O errors. */
#include "pm_dkim.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *
s_slurp(FILE *f, size_t *len)
{
    size_t cap = 65536, n = 0, r;
    char *buf = malloc(cap + 1);
    while ((r = fread(buf + n, 1, cap - n, f)) > 0) {
        n += r;
        if (n == cap)
            buf = realloc(buf, (cap *= 2) + 1);
    }
    buf[n] = '\0';
    *len = n;
    return buf;
}

static char *
s_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        perror(path);
        exit(2);
    }
    size_t len;
    char *s = s_slurp(f, &len);
    fclose(f);
    return s;
}

static int
s_sign(pm_dkim_t *d, char **argv)
{
    size_t len;
    char *msg = s_slurp(stdin, &len), *key = s_file(argv[4]);
    char *hdr = NULL, *why = NULL;
    if (pm_dkim_sign(d, msg, len, argv[2], argv[3], key, &hdr, &why) != 0) {
        fprintf(stderr, "dkimsign: %s\n", why);
        return 2;
    }
    printf("%s\r\n", hdr);
    fwrite(msg, 1, len, stdout);
    free(hdr);
    free(msg);
    free(key);
    return 0;
}

static int
s_verify(pm_dkim_t *d, char **argv)
{
    size_t len;
    char *msg = s_slurp(stdin, &len), *why = NULL;
    pm_dkim_verdict_t v = {0};
    if (pm_dkim_set_query_file(d, argv[2]) != 0 ||
        pm_dkim_verify(d, msg, len, &v, &why) != 0) {
        fprintf(stderr, "dkimsign: %s\n", why ? why : "bad query file");
        return 2;
    }
    for (size_t i = 0; i < v.n_sigs; i++)
        printf("d=%s s=%s %s (%s)\n", v.sigs[i].domain, v.sigs[i].selector,
               v.sigs[i].pass ? "pass" : "fail", v.sigs[i].reason);
    int rc = pm_dkim_has_valid_signature_for(&v, argv[3]) ? 0 : 1;
    pm_dkim_verdict_clear(&v);
    free(msg);
    return rc;
}

int
main(int argc, char **argv)
{
    char *why = NULL;
    if (argc == 3 && strcmp(argv[1], "txt") == 0) {
        char *key = s_file(argv[2]), *txt = pm_dkim_txt_record(key, &why);
        if (!txt) {
            fprintf(stderr, "dkimsign: %s\n", why);
            return 2;
        }
        printf("%s\n", txt);
        free(txt);
        free(key);
        return 0;
    }
    pm_dkim_t *d = pm_dkim_new(&why);
    if (!d) {
        fprintf(stderr, "dkimsign: %s\n", why);
        return 2;
    }
    int rc = 2;
    if (argc == 5 && strcmp(argv[1], "sign") == 0)
        rc = s_sign(d, argv);
    else if (argc == 4 && strcmp(argv[1], "verify") == 0)
        rc = s_verify(d, argv);
    else
        fprintf(stderr, "usage: dkimsign sign DOMAIN SELECTOR KEYFILE | "
                        "verify QUERYFILE DOMAIN | txt KEYFILE\n");
    pm_dkim_destroy(&d);
    return rc;
}
