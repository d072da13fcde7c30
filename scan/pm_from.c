/* pm_from.c - From headers through GMime's address parser. */
#include "pm_from.h"
#include "pm_mem.h"
#include "pm_mimeparse.h"

#include <gmime/gmime.h>
#include <stdlib.h>
#include <string.h>

/* VALUE without its line breaks (the white space after them stays). */
static char *
s_unfold(const char *value)
{
    char *out = pm_malloc(strlen(value) + 1), *w = out;
    for (const char *p = value; *p; p++)
        if (*p != '\r' && *p != '\n')
            *w++ = *p;
    *w = '\0';
    return out;
}

/* TEXT without RFC 5322 comments (nested, with quoted pairs), leaving
 * quoted strings alone: what a reader is shown. */
static char *
s_drop_comments(const char *text)
{
    char *out = pm_malloc(strlen(text) + 1), *w = out;
    int depth = 0;
    bool quoted = false;
    for (const char *p = text; *p; p++) {
        if (*p == '\\' && (quoted || depth) && p[1]) {
            if (!depth) {
                *w++ = *p;
                *w++ = p[1];
            }
            p++;
        } else if (!depth && *p == '"') {
            quoted = !quoted;
            *w++ = *p;
        } else if (!quoted && *p == '(') {
            depth++;
        } else if (!quoted && depth && *p == ')') {
            depth--;
        } else if (!depth) {
            *w++ = *p;
        }
    }
    *w = '\0';
    return out;
}

/* True when every comment, quoted string and domain literal in TEXT is
 * closed, and no literal holds a quote, parenthesis or backslash. GMime
 * 3.2.13 (Debian 12) leaks the address it read when a comment after it is
 * left open ("a@b.example (x", GMime issue #159, fixed in 3.2.15), so such
 * a value never reaches its parser: it is unparsable, which the forged-mail
 * rule treats as ambiguous anyway. Inside a domain literal GMime reads a
 * quote or parenthesis as a plain character, while this scan would read
 * it as opening a quoted string or comment ("x@[a\"b](c\"": closed here,
 * a comment left open there; found by fuzz_from). A real domain literal
 * is an IP address, with none of these: such a literal is refused. Same
 * scan as s_drop_comments. */
static bool
s_closed(const char *text)
{
    int depth = 0;
    bool quoted = false, literal = false;
    for (const char *p = text; *p; p++) {
        if (literal) {
            if (*p == ']')
                literal = false;
            else if (strchr("\"()\\", *p))
                return false;
        } else if (*p == '\\' && (quoted || depth) && p[1])
            p++;
        else if (!depth && *p == '"')
            quoted = !quoted;
        else if (!quoted && !depth && *p == '[')
            literal = true;
        else if (!quoted && *p == '(')
            depth++;
        else if (!quoted && depth && *p == ')')
            depth--;
    }
    return !depth && !quoted && !literal;
}

/* The domain of ADDR from AT (the index of its '@', as GMime found it
 * outside quotes; < 0: none), lowercased, without trailing dots; NULL
 * when there is none. Caller frees. */
static char *
s_domain_of(const char *addr, int at)
{
    if (!addr || at < 0 || (size_t)at >= strlen(addr))
        return NULL;
    const char *d = addr + at + 1;
    size_t n = strlen(d);
    while (n && d[n - 1] == '.')
        n--;
    if (!n)
        return NULL;
    char *low = g_ascii_strdown(d, (gssize)n);
    char *out = pm_strdup(low);
    g_free(low);
    return out;
}

typedef struct {
    int mailboxes;      /* mailboxes seen, groups' members included */
    bool group;         /* a group was seen */
    bool open;          /* a value left a comment or quote open */
    char *first_domain; /* of the first mailbox, or NULL (no domain) */
    GHashTable *seen;   /* the domains in F so far (keys are F's) */
} s_count_t;

/* Adds domain D (taken; NULL: none) to F once. A hash, not a look
 * through the list: a 250 KB From of 26 000 domains cost 1.9 s of CPU. */
static void
s_add_domain(pm_from_t *f, s_count_t *c, char *d)
{
    if (!d || g_hash_table_contains(c->seen, d)) {
        free(d);
        return;
    }
    f->domains =
        pm_realloc(f->domains, (f->n_domains + 1) * sizeof *f->domains);
    f->domains[f->n_domains++] = d;
    g_hash_table_add(c->seen, d);
}

/* Walks LIST (groups too), adding every mailbox's domain to F. */
static void
s_walk(pm_from_t *f, InternetAddressList *list, s_count_t *c, int level)
{
    int n = list ? internet_address_list_length(list) : 0;
    for (int i = 0; i < n; i++) {
        InternetAddress *ia = internet_address_list_get_address(list, i);
        if (INTERNET_ADDRESS_IS_GROUP(ia)) {
            c->group = true;
            if (level < 4)
                s_walk(f,
                       internet_address_group_get_members(
                           INTERNET_ADDRESS_GROUP(ia)),
                       c, level + 1);
            continue;
        }
        if (!INTERNET_ADDRESS_IS_MAILBOX(ia))
            continue;
        InternetAddressMailbox *mb = INTERNET_ADDRESS_MAILBOX(ia);
        const char *addr = internet_address_mailbox_get_addr(mb);
        if (c->mailboxes++ == 0)
            c->first_domain = s_domain_of(addr, mb->at);
        s_add_domain(f, c, s_domain_of(addr, mb->at));
        /* the ACE form: its domain holds no '@' */
        const char *idn = internet_address_mailbox_get_idn_addr(mb);
        const char *at = mb->at >= 0 && idn ? strrchr(idn, '@') : NULL;
        s_add_domain(f, c, at ? s_domain_of(idn, (int)(at - idn)) : NULL);
    }
}

/* Appends VALUE as read (comments dropped, then also decoded) to *text. */
static void
s_add_text(GString *text, const char *unfolded)
{
    char *clean = s_drop_comments(unfolded);
    char *decoded = g_mime_utils_header_decode_text(NULL, clean);
    char *a = g_ascii_strdown(clean, -1);
    char *b = g_ascii_strdown(decoded ? decoded : "", -1);
    g_string_append_printf(text, "%s\n%s\n", a, b);
    g_free(a);
    g_free(b);
    g_free(decoded);
    free(clean);
}

void
pm_from_parse(const char *const *values, size_t n, pm_from_t *out)
{
    memset(out, 0, sizeof *out);
    if (!values || !n)
        return;
    pm_mime_init();
    GString *text = g_string_new("");
    s_count_t c = {.seen = g_hash_table_new(g_str_hash, g_str_equal)};
    for (size_t i = 0; i < n; i++) {
        char *unfolded = s_unfold(values[i] ? values[i] : "");
        if (s_closed(unfolded)) {
            InternetAddressList *list =
                internet_address_list_parse(NULL, unfolded);
            s_walk(out, list, &c, 0);
            if (list)
                g_object_unref(list);
        } else {
            c.open = true;
        }
        s_add_text(text, unfolded);
        free(unfolded);
    }
    out->text = pm_strdup(text->str);
    g_string_free(text, TRUE);
    out->kind = PM_FROM_AMBIGUOUS;
    if (n > 1)
        out->problem = pm_asprintf("%zu From headers", n);
    else if (c.open)
        out->problem =
            pm_strdup("a comment, quoted string or domain literal left "
                      "open or malformed in From");
    else if (c.group)
        out->problem = pm_strdup("a group in From");
    else if (c.mailboxes != 1)
        out->problem = pm_asprintf("%d mailboxes in From", c.mailboxes);
    else if (!c.first_domain)
        out->problem = pm_strdup("no domain in the From address");
    else {
        out->kind = PM_FROM_ONE;
        out->domain = c.first_domain;
        c.first_domain = NULL;
    }
    free(c.first_domain);
    g_hash_table_destroy(c.seen);
}

static bool
s_label_char(char c)
{
    return g_ascii_isalnum(c) || c == '-';
}

bool
pm_from_names(const pm_from_t *f, const char *domain)
{
    if (!f || !domain || !*domain)
        return false;
    for (size_t i = 0; i < f->n_domains; i++)
        if (strcmp(f->domains[i], domain) == 0)
            return true;
    size_t len = strlen(domain);
    for (const char *p = f->text ? strstr(f->text, domain) : NULL; p;
         p = strstr(p + 1, domain)) {
        if (s_label_char(p[len]))
            continue;
        const char *b = p;
        while (b > f->text && (b[-1] == ' ' || b[-1] == '\t'))
            b--;
        if (b > f->text && b[-1] == '@')
            return true;
        if (f->kind == PM_FROM_AMBIGUOUS &&
            (p == f->text || (!s_label_char(p[-1]) && p[-1] != '.')))
            return true;
    }
    return false;
}

void
pm_from_clear(pm_from_t *f)
{
    if (!f)
        return;
    free(f->domain);
    free(f->problem);
    for (size_t i = 0; i < f->n_domains; i++)
        free(f->domains[i]);
    free(f->domains);
    free(f->text);
    memset(f, 0, sizeof *f);
}
