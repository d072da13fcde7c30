/* pm_ctl_testmsg.c - test messages checked, their envelope read with
 * GMime, answers compared. */
#include "pm_ctl_testmsg.h"

#include "pm_mem.h"
#include "pm_text.h"

#include <gmime/gmime.h>
#include <pthread.h>
#include <string.h>
#include <strings.h>

/* Bytes of an offending line shown, before and after escaping. */
#define S_SHOWN_MAX 40
#define S_SHOWN_ESCAPED_MAX 64
/* Groups inside groups (RFC 5322 has none; GMime accepts some). */
#define S_GROUP_DEPTH_MAX 4

/* One line of a message: where it starts, its length without the line
 * end, and where the next one starts. */
typedef struct {
    const char *text;
    size_t len;
    size_t next;
} s_line_t;

static s_line_t
s_line_at(const char *data, size_t len, size_t pos)
{
    const char *eol = memchr(data + pos, '\n', len - pos);
    size_t end = eol ? (size_t)(eol - data) : len;
    s_line_t l = {data + pos, end - pos, eol ? end + 1 : len};
    if (l.len && l.text[l.len - 1] == '\r')
        l.len--;
    return l;
}

/* The length of the field name at the start of L when a ':' follows it
 * (RFC 5322 ftext: printable ASCII but ':'), else 0. */
static size_t
s_field_name(const s_line_t *l)
{
    size_t n = 0;
    while (n < l->len && l->text[n] > 32 && l->text[n] < 127 &&
           l->text[n] != ':')
        n++;
    return n < l->len && l->text[n] == ':' ? n : 0;
}

static bool
s_continues(const s_line_t *l)
{
    return l->len && (l->text[0] == ' ' || l->text[0] == '\t');
}

/* "line N is not a header (\"TEXT\")" for line L, numbered N. */
static char *
s_not_a_header(const s_line_t *l, unsigned n)
{
    char *raw =
        pm_strndup(l->text, l->len < S_SHOWN_MAX ? l->len : S_SHOWN_MAX);
    char *shown = pm_text_escape(raw, S_SHOWN_ESCAPED_MAX);
    bool mbox = l->len >= 5 && memcmp(l->text, "From ", 5) == 0 && n == 1;
    char *why = pm_asprintf("not a mail message: line %u is not a header "
                            "(\"%s%s\")%s",
                            n, shown, l->len > S_SHOWN_MAX ? "..." : "",
                            mbox ? ": an mbox separator; give the message "
                                   "alone, as a .eml file"
                                 : "");
    free(shown);
    free(raw);
    return why;
}

char *
pm_ctl_testmsg_check(const char *data, size_t len)
{
    if (len == 0)
        return pm_strdup("not a mail message: the file is empty");
    const char *nul = memchr(data, '\0', len);
    if (nul)
        return pm_asprintf("not a mail message: a NUL byte at byte %zu (a "
                           "binary file?)",
                           (size_t)(nul - data));
    unsigned n = 1;
    for (size_t pos = 0; pos < len; n++) {
        s_line_t l = s_line_at(data, len, pos);
        if (l.len == 0 && n == 1)
            return pm_strdup("not a mail message: line 1 is empty, where the "
                             "header should start");
        if (l.len == 0)
            break; /* the end of the header */
        if (!(s_continues(&l) && n > 1) && !s_field_name(&l))
            return s_not_a_header(&l, n);
        pos = l.next;
    }
    return NULL;
}

static pthread_once_t s_once = PTHREAD_ONCE_INIT;

static void
s_init(void)
{
    g_mime_init();
}

/* Appends ADDR to the list *LIST of *N, unless it holds it already. */
static void
s_add(char ***list, size_t *n, const char *addr)
{
    for (size_t i = 0; i < *n; i++)
        if (strcasecmp((*list)[i], addr) == 0)
            return;
    *list = pm_realloc(*list, (*n + 2) * sizeof **list);
    (*list)[(*n)++] = pm_strdup(addr);
    (*list)[*n] = NULL;
}

/* Every mailbox of LIST (groups' members too) into *OUT (*N of them). */
static void
s_mailboxes(InternetAddressList *list, char ***out, size_t *n, int depth)
{
    int count = list ? internet_address_list_length(list) : 0;
    for (int i = 0; i < count; i++) {
        InternetAddress *ia = internet_address_list_get_address(list, i);
        if (INTERNET_ADDRESS_IS_GROUP(ia) && depth < S_GROUP_DEPTH_MAX) {
            s_mailboxes(
                internet_address_group_get_members(INTERNET_ADDRESS_GROUP(ia)),
                out, n, depth + 1);
        } else if (INTERNET_ADDRESS_IS_MAILBOX(ia)) {
            InternetAddressMailbox *mb = INTERNET_ADDRESS_MAILBOX(ia);
            const char *addr = internet_address_mailbox_get_idn_addr(mb);
            if (addr && mb->at > 0) /* "nobody" is no address to use */
                s_add(out, n, addr);
        }
    }
}

/* The mailboxes of one field's value (its lines, line ends dropped). */
static void
s_field(const char *value, size_t len, char ***out, size_t *n)
{
    char *unfolded = pm_malloc(len + 1), *w = unfolded;
    for (size_t i = 0; i < len; i++)
        if (value[i] != '\r' && value[i] != '\n')
            *w++ = value[i];
    *w = '\0';
    InternetAddressList *list = internet_address_list_parse(NULL, unfolded);
    s_mailboxes(list, out, n, 0);
    if (list)
        g_object_unref(list);
    free(unfolded);
}

void
pm_ctl_testmsg_envelope(const char *data, size_t len, char **from,
                        char ***rcpts, size_t *n_rcpts)
{
    char **senders = NULL;
    size_t n_senders = 0;
    *rcpts = NULL;
    *n_rcpts = 0;
    pthread_once(&s_once, s_init);
    for (size_t pos = 0; pos < len;) {
        s_line_t l = s_line_at(data, len, pos);
        size_t name = l.len ? s_field_name(&l) : 0;
        if (!name)
            break; /* the end of the header (or a line that is not one) */
        /* the field runs on over its continuation lines */
        size_t end = l.next;
        for (s_line_t c = s_line_at(data, len, end);
             end < len && s_continues(&c); c = s_line_at(data, len, end))
            end = c.next;
        const char *value = l.text + name + 1;
        size_t value_len = (size_t)(data + end - value);
        if (name == 4 && strncasecmp(l.text, "From", 4) == 0 && !n_senders)
            s_field(value, value_len, &senders, &n_senders);
        else if (name == 2 && strncasecmp(l.text, "To", 2) == 0)
            s_field(value, value_len, rcpts, n_rcpts);
        pos = end;
    }
    *from = n_senders ? pm_strdup(senders[0]) : NULL;
    for (size_t i = 0; i < n_senders; i++)
        free(senders[i]);
    free(senders);
}

bool
pm_ctl_testmsg_same(const Pm__TestResult *a, const Pm__TestResult *b)
{
    return strcmp(a->verdict, b->verdict) == 0 &&
           strncmp(a->reply, b->reply, 3) == 0 && strcmp(a->key, b->key) == 0;
}
