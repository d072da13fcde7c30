/* pm_milter_policy.c - the immutable policy snapshot the milter enforces. */
#include "pm_attach.h"
#include "pm_file.h"
#include "pm_milter.h"
#include "pm_milter_private.h"
#include "pm_mem.h"
#include "pm_policy.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

typedef struct {
    int family; /* AF_INET or AF_INET6 */
    unsigned char addr[16];
    unsigned bits;
} s_net_t;

struct pm_mpolicy_t {
    int refs;
    uint64_t rev;
    Pm__Policy *policy;
    pm_attach_blocklist_t *blocklist;
    s_net_t *nets;
    size_t n_nets;
    pm_mdkim_t *dkim;
    size_t n_dkim;
};

/* "127.0.0.0/8", "10.1.2.3", "[::1]/128", "2001:db8::/32". */
static bool
s_parse_net(const char *text, s_net_t *out)
{
    char buf[80];
    const char *slash = strrchr(text, '/');
    size_t alen = slash ? (size_t)(slash - text) : strlen(text);
    if (alen >= sizeof buf)
        return false;
    memcpy(buf, text, alen);
    buf[alen] = '\0';
    char *addr = buf;
    if (addr[0] == '[') {
        size_t n = strlen(addr);
        if (n < 2 || addr[n - 1] != ']')
            return false;
        addr[n - 1] = '\0';
        addr++;
    }
    unsigned max;
    if (inet_pton(AF_INET, addr, out->addr) == 1) {
        out->family = AF_INET;
        max = 32;
    } else if (inet_pton(AF_INET6, addr, out->addr) == 1) {
        out->family = AF_INET6;
        max = 128;
    } else {
        return false;
    }
    out->bits = max;
    if (slash) {
        char *end = NULL;
        unsigned long b = strtoul(slash + 1, &end, 10);
        if (!end || *end || end == slash + 1 || b > max)
            return false;
        out->bits = (unsigned)b;
    }
    return true;
}

static bool
s_net_match(const s_net_t *net, const unsigned char *addr)
{
    unsigned full = net->bits / 8, rest = net->bits % 8;
    if (memcmp(net->addr, addr, full) != 0)
        return false;
    if (rest == 0)
        return true;
    unsigned char mask = (unsigned char)(0xff << (8 - rest));
    return (net->addr[full] & mask) == (addr[full] & mask);
}

bool
pm_mpolicy_in_mynetworks(const pm_mpolicy_t *self, const struct sockaddr *sa)
{
    if (!self || !sa)
        return false;
    unsigned char addr[16];
    int family = sa->sa_family;
    if (family == AF_INET) {
        memcpy(addr, &((const struct sockaddr_in *)sa)->sin_addr, 4);
    } else if (family == AF_INET6) {
        const struct in6_addr *a6 =
            &((const struct sockaddr_in6 *)sa)->sin6_addr;
        if (IN6_IS_ADDR_V4MAPPED(a6)) {
            family = AF_INET;
            memcpy(addr, a6->s6_addr + 12, 4);
        } else {
            memcpy(addr, a6->s6_addr, 16);
        }
    } else {
        return false;
    }
    for (size_t i = 0; i < self->n_nets; i++)
        if (self->nets[i].family == family && s_net_match(&self->nets[i], addr))
            return true;
    return false;
}

/* Reads KEY_DIR/NAME as a PEM private RSA key; NULL and *why otherwise. */
static char *
s_read_key(const char *key_dir, const char *name, char **why)
{
    if (!key_dir || !*key_dir) {
        *why = pm_strdup("no dkim_key_dir configured");
        return NULL;
    }
    if (!*name || strchr(name, '/') || strcmp(name, "..") == 0 ||
        strcmp(name, ".") == 0) {
        *why = pm_asprintf("key name '%s' is not a file name", name);
        return NULL;
    }
    char *path = pm_asprintf("%s/%s", key_dir, name);
    char *pem = NULL;
    int rc = pm_file_read(path, 65536, PM_FILE_STRICT, &pem, NULL, why);
    free(path);
    if (rc != PM_OK)
        return NULL;
    char *txt = pm_dkim_txt_record(pem, NULL);
    if (!txt) {
        pm_secure_free(&pem);
        *why = pm_asprintf("key %s is not a private RSA key in PEM", name);
        return NULL;
    }
    free(txt);
    return pem;
}

static void
s_load_dkim(pm_mpolicy_t *self, const Pm__Policy *p, const char *key_dir)
{
    self->n_dkim = p->n_dkim_domains;
    self->dkim = pm_calloc(self->n_dkim ? self->n_dkim : 1, sizeof *self->dkim);
    for (size_t i = 0; i < self->n_dkim; i++) {
        const Pm__DkimDomain *d = p->dkim_domains[i];
        pm_mdkim_t *m = &self->dkim[i];
        m->domain = pm_strdup(d->domain);
        for (char *c = m->domain; *c; c++)
            *c = (char)tolower((unsigned char)*c);
        m->selector = pm_strdup(d->selector);
        m->key_pem = s_read_key(key_dir, d->key, &m->key_error);
    }
}

pm_mpolicy_t *
pm_mpolicy_new(const Pm__Policy *policy, uint64_t rev, const char *key_dir,
               char **why)
{
    if (!policy) {
        if (why)
            *why = pm_strdup("no policy");
        return NULL;
    }
    pm_mpolicy_t *self = pm_calloc(1, sizeof *self);
    self->refs = 1;
    self->rev = rev;
    self->policy = pm_policy_dup(policy);
    const Pm__Policy *p = self->policy;
    self->blocklist = pm_attach_blocklist_new(p->inbound_blocked_extensions,
                                              p->n_inbound_blocked_extensions);
    char *problem = NULL;
    if (!self->blocklist)
        problem = pm_strdup("inbound.blocked_extensions: a bad extension");
    self->nets = pm_calloc(p->n_outbound_mynetworks + 1, sizeof *self->nets);
    for (size_t i = 0; !problem && i < p->n_outbound_mynetworks; i++) {
        if (!s_parse_net(p->outbound_mynetworks[i], &self->nets[i]))
            problem = pm_asprintf("outbound.mynetworks: '%s' is not a network",
                                  p->outbound_mynetworks[i]);
        self->n_nets = i + 1;
    }
    if (problem) {
        if (why)
            *why = problem;
        else
            free(problem);
        pm_mpolicy_unref(&self);
        return NULL;
    }
    s_load_dkim(self, p, key_dir);
    return self;
}

pm_mpolicy_t *
pm_mpolicy_ref(pm_mpolicy_t *self)
{
    if (self)
        __atomic_add_fetch(&self->refs, 1, __ATOMIC_RELAXED);
    return self;
}

void
pm_mpolicy_unref(pm_mpolicy_t **self_p)
{
    pm_mpolicy_t *self = self_p ? *self_p : NULL;
    if (!self)
        return;
    *self_p = NULL;
    if (__atomic_sub_fetch(&self->refs, 1, __ATOMIC_ACQ_REL) > 0)
        return;
    pm_policy_free(&self->policy);
    pm_attach_blocklist_destroy(&self->blocklist);
    free(self->nets);
    for (size_t i = 0; self->dkim && i < self->n_dkim; i++) {
        free(self->dkim[i].domain);
        free(self->dkim[i].selector);
        pm_secure_free(&self->dkim[i].key_pem);
        free(self->dkim[i].key_error);
    }
    free(self->dkim);
    free(self);
}

uint64_t
pm_mpolicy_rev(const pm_mpolicy_t *self)
{
    return self ? self->rev : 0;
}

const Pm__Policy *
pm_mpolicy_policy(const pm_mpolicy_t *self)
{
    return self ? self->policy : NULL;
}

const pm_mdkim_t *
pm_mpolicy_dkim(const pm_mpolicy_t *self, size_t *n)
{
    *n = self ? self->n_dkim : 0;
    return self ? self->dkim : NULL;
}

const pm_attach_blocklist_t *
pm_mpolicy_blocklist(const pm_mpolicy_t *self)
{
    return self->blocklist;
}

/* ---- secrets ----------------------------------------------------------------
 */

void
pm_secure_free(char **s_p)
{
    if (*s_p) {
        explicit_bzero(*s_p, strlen(*s_p));
        free(*s_p);
        *s_p = NULL;
    }
}
