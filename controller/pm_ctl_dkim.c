/* pm_ctl_dkim.c - privmta-ctl dkim add/remove/list. */
#include "pm_ctl.h"
#include "pm_dkim.h"
#include "pm_file.h"
#include "pm_mem.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The private key: read from FILE, or made here (libcrypto) and never
 * written to disk on this machine. Caller wipes and frees. */
static char *
s_key(const char *file, unsigned bits, char **why)
{
    if (!file) {
        char *pem = NULL;
        return pm_dkim_generate_key(bits, &pem, why) == 0 ? pem : NULL;
    }
    char *pem = NULL;
    size_t n = 0;
    if (pm_file_read(file, 64 * 1024, 0, &pem, &n, why) != PM_OK)
        return NULL;
    if (n == 0) {
        *why = pm_asprintf("%s is empty", file);
        PM_FREE(&pem);
    }
    return pem;
}

/* DNS wants character-strings of at most 255 bytes: split p=. */
static void
s_print_txt(const char *domain, const char *selector, const char *txt)
{
    printf("publish this DNS record:\n%s._domainkey.%s. IN TXT (", selector,
           domain);
    for (size_t at = 0, n = strlen(txt); at < n; at += 250)
        printf("\n    \"%.*s\"", (int)(n - at < 250 ? n - at : 250), txt + at);
    printf(" )\n");
}

static int
s_add(pm_ctl_t *ctl, int argc, char **argv)
{
    static const struct option longs[] = {
        {"selector", required_argument, NULL, 's'},
        {"key", required_argument, NULL, 'k'},
        {"generate", no_argument, NULL, 'g'},
        {"bits", required_argument, NULL, 'b'},
        {NULL, 0, NULL, 0}};
    const char *selector = NULL, *file = NULL;
    bool generate = false;
    unsigned bits = 2048;
    int c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "", longs, NULL)) != -1) {
        if (c == 's')
            selector = optarg;
        else if (c == 'k')
            file = optarg;
        else if (c == 'g')
            generate = true;
        else if (c == 'b')
            bits = (unsigned)strtoul(optarg, NULL, 10);
        else
            return -1;
    }
    if (optind != argc - 1 || !selector || (file != NULL) == generate)
        return -1;
    char *why = NULL, *pem = s_key(file, bits, &why);
    if (!pem) {
        fprintf(stderr, "privmta-ctl dkim add: %s\n", why);
        free(why);
        return PM_EXIT_REJECTED;
    }
    Pm__Request req = PM__REQUEST__INIT;
    Pm__Response *r = NULL;
    req.op = PM__REQUEST__OP__DKIM_ADD;
    req.expect_rev = -1;
    req.domain = argv[optind];
    req.selector = (char *)selector;
    req.private_key.data = (uint8_t *)pem;
    req.private_key.len = strlen(pem);
    int rc = pm_ctl_call(ctl, &req, &r);
    explicit_bzero(pem, strlen(pem));
    free(pem);
    if (rc != PM_EXIT_OK)
        return rc;
    printf("DKIM enabled for %s (selector %s) in revision %llu\n", req.domain,
           selector, (unsigned long long)r->revision->number);
    s_print_txt(req.domain, selector, r->txt_record);
    pm__response__free_unpacked(r, NULL);
    return PM_EXIT_OK;
}

static int
s_remove(pm_ctl_t *ctl, int argc, char **argv)
{
    if (argc != 2)
        return -1;
    Pm__Request req = PM__REQUEST__INIT;
    Pm__Response *r = NULL;
    req.op = PM__REQUEST__OP__DKIM_REMOVE;
    req.expect_rev = -1;
    req.domain = argv[1];
    int rc = pm_ctl_call(ctl, &req, &r);
    if (rc != PM_EXIT_OK)
        return rc;
    if (r->unchanged)
        printf("%s was not DKIM-enabled; nothing changed\n", argv[1]);
    else
        printf("DKIM disabled for %s in revision %llu\n", argv[1],
               (unsigned long long)r->revision->number);
    pm__response__free_unpacked(r, NULL);
    return PM_EXIT_OK;
}

static int
s_list(pm_ctl_t *ctl, int argc, char **argv)
{
    (void)argv;
    if (argc != 1)
        return -1;
    Pm__Response *r = NULL;
    int rc = pm_ctl_call_op(ctl, PM__REQUEST__OP__SHOW, &r);
    if (rc != PM_EXIT_OK)
        return rc;
    const Pm__Policy *p = r->revision ? r->revision->policy : NULL;
    printf("%-32s %-16s %s\n", "DOMAIN", "SELECTOR", "KEY");
    for (size_t i = 0; p && i < p->n_dkim_domains; i++)
        printf("%-32s %-16s %s\n", p->dkim_domains[i]->domain,
               p->dkim_domains[i]->selector, p->dkim_domains[i]->key);
    if (!p || !p->n_dkim_domains)
        printf("(no DKIM-enabled domain)\n");
    pm__response__free_unpacked(r, NULL);
    return PM_EXIT_OK;
}

int
pm_ctl_dkim(pm_ctl_t *ctl, int argc, char **argv)
{
    int rc = -1;
    if (argc >= 2 && strcmp(argv[1], "add") == 0)
        rc = s_add(ctl, argc - 1, argv + 1);
    else if (argc >= 2 && strcmp(argv[1], "remove") == 0)
        rc = s_remove(ctl, argc - 1, argv + 1);
    else if (argc >= 2 && strcmp(argv[1], "list") == 0)
        rc = s_list(ctl, argc - 1, argv + 1);
    if (rc < 0) {
        fprintf(stderr, "usage: privmta-ctl dkim add DOMAIN --selector S "
                        "(--key FILE | --generate [--bits N])\n"
                        "       privmta-ctl dkim remove DOMAIN\n"
                        "       privmta-ctl dkim list\n");
        rc = PM_EXIT_USAGE;
    }
    return rc;
}
