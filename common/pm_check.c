/* pm_check.c - syntax checks for single policy values.
 *
 * Every check echoes the offending value or character back to an admin's
 * terminal, so nothing here ever prints a raw control byte: values pass
 * through s_quote() and single characters through s_char().
 */
#include "pm_check.h"
#include "pm_mem.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define S_QUOTE_SIZE 256 /* room for 48 input bytes at 4 bytes each + "..." */
#define S_QUOTE_INPUT 48
#define S_CHAR_SIZE 8
#define S_LABEL_MAX 63
#define S_NAME_MAX 253
#define S_LOCAL_MAX 64
#define S_ADDRESS_MAX 254 /* RFC 5321 path of 256 octets minus the <> */
#define S_FILE_NAME_MAX 255

/* Options for s_check_name(): the rules differ slightly between a domain,
 * a DKIM selector and a relay or mirror host. */
typedef struct {
    size_t min_labels;
    bool numeric_tld_ok; /* selectors like "20230601" are all digits */
} s_name_rules_t;

static bool
s_is_alpha(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool
s_is_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}

static bool
s_is_alnum(unsigned char c)
{
    return s_is_alpha(c) || s_is_digit(c);
}

/* Control bytes, DEL and every non-ASCII byte are escaped: a terminal may
 * treat a UTF-8 encoded C1 control (e.g. U+009B, CSI) as an escape. */
static bool
s_is_printable(unsigned char c)
{
    return c >= 0x20 && c < 0x7f;
}

/* Renders one byte for a message: "x", "\r", "\n", "\t" or "\xHH". */
static const char *
s_char(unsigned char c, char out[S_CHAR_SIZE])
{
    if (c == '\r')
        return "\\r";
    if (c == '\n')
        return "\\n";
    if (c == '\t')
        return "\\t";
    if (s_is_printable(c))
        snprintf(out, S_CHAR_SIZE, "%c", c);
    else
        snprintf(out, S_CHAR_SIZE, "\\x%02X", c);
    return out;
}

/* Renders LEN bytes of S for a message, escaped and cut after
 * S_QUOTE_INPUT bytes so one absurd value cannot flood the output. */
static const char *
s_quote(const char *s, size_t len, char out[S_QUOTE_SIZE])
{
    size_t used = 0;
    size_t i;
    char c[S_CHAR_SIZE];

    out[0] = '\0';
    for (i = 0; i < len && i < S_QUOTE_INPUT; i++) {
        const char *r = s_char((unsigned char)s[i], c);
        size_t rlen = strlen(r);
        memcpy(out + used, r, rlen + 1);
        used += rlen;
    }
    if (i < len)
        memcpy(out + used, "...", 4);
    return out;
}

/* The first byte that is a control character, DEL or space, or NULL. */
static const char *
s_find_control(const char *s)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c <= 0x20 || c == 0x7f)
            return s;
    }
    return NULL;
}

/* Line breaks get their own sentence because they are the attack: a CR/LF
 * smuggled into a value ends up in a header or a main.cf line. */
static char *
s_control_problem(unsigned char c)
{
    char buf[S_CHAR_SIZE];

    if (c == '\r' || c == '\n')
        return pm_asprintf("contains a line break ('%s'); CR/LF would let it "
                           "inject a mail header or a configuration line",
                           s_char(c, buf));
    if (c == ' ')
        return pm_strdup("contains a space, which is not allowed here");
    return pm_asprintf("contains the control character '%s'", s_char(c, buf));
}

/* Parses a decimal port of LEN bytes into 1..65535. */
static char *
s_check_port(const char *s, size_t len)
{
    char q[S_QUOTE_SIZE];
    unsigned long port = 0;
    size_t i;

    if (len == 0)
        return pm_strdup("has ':' but no port after it");
    for (i = 0; i < len; i++) {
        if (!s_is_digit((unsigned char)s[i]))
            return pm_asprintf("port '%s' is not a number 1-65535",
                               s_quote(s, len, q));
        if (port <= 65535) /* stop growing: overflow-safe, still too big */
            port = port * 10 + (unsigned long)(s[i] - '0');
    }
    if (port == 0 || port > 65535)
        return pm_asprintf("port %s is out of range 1-65535",
                           s_quote(s, len, q));
    return NULL;
}

/* Checks one RFC 1123 label of LEN bytes. */
static char *
s_check_label(const char *label, size_t len)
{
    char q[S_QUOTE_SIZE];
    char c[S_CHAR_SIZE];
    size_t i;

    s_quote(label, len, q);
    if (len > S_LABEL_MAX)
        return pm_asprintf("label '%s' is %zu characters long; a DNS label "
                           "holds at most 63",
                           q, len);
    for (i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)label[i];
        if (!s_is_alnum(ch) && ch != '-')
            return pm_asprintf("label '%s' contains '%s'; host names allow "
                               "only letters, digits and '-'",
                               q, s_char(ch, c));
    }
    if (label[0] == '-' || label[len - 1] == '-')
        return pm_asprintf("label '%s' starts or ends with '-', which RFC "
                           "1123 does not allow",
                           q);
    return NULL;
}

static bool
s_all_digits(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (!s_is_digit((unsigned char)s[i]))
            return false;
    return true;
}

/* Checks a dotted host name of LEN bytes. A trailing dot is rejected: the
 * policy stores names in one canonical form so that comparing a DKIM domain
 * with a sender's domain is a plain string comparison. */
static char *
s_check_name(const char *name, size_t len, s_name_rules_t rules)
{
    const char *label = name;
    const char *end = name + len;
    size_t labels = 0;
    char *problem;

    if (len == 0)
        return pm_strdup("is empty");
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)name[i] <= 0x20 || name[i] == 0x7f)
            return s_control_problem((unsigned char)name[i]);
    if (len > S_NAME_MAX)
        return pm_asprintf("is %zu characters long; a DNS name holds at "
                           "most 253",
                           len);
    if (name[0] == '.')
        return pm_strdup("starts with a dot");
    if (name[len - 1] == '.')
        return pm_strdup("ends with a dot; write the name without it");
    while (label < end) {
        const char *dot = memchr(label, '.', (size_t)(end - label));
        size_t llen = (size_t)((dot ? dot : end) - label);
        if (llen == 0)
            return pm_strdup("has an empty label (two dots in a row)");
        if ((problem = s_check_label(label, llen)) != NULL)
            return problem;
        labels++;
        if (!dot && !rules.numeric_tld_ok && s_all_digits(label, llen))
            return pm_strdup("ends in an all-digit label; a top-level domain "
                             "is never numeric");
        label = dot ? dot + 1 : end;
    }
    if (labels < rules.min_labels)
        return pm_strdup("has a single label; write a full domain name such "
                         "as example.com");
    return NULL;
}

/* ------------------------------------------------------------------------
 * Extensions */

static char *
s_extension_char_problem(const char *value, unsigned char ch)
{
    char q[S_QUOTE_SIZE];
    char last[S_QUOTE_SIZE];
    char c[S_CHAR_SIZE];
    const char *dot = strrchr(value, '.');

    s_quote(value, strlen(value), q);
    if (ch == '.' && dot[1] != '\0')
        return pm_asprintf("'%s' contains a dot; write a single extension, "
                           "such as '%s'",
                           q, s_quote(dot + 1, strlen(dot + 1), last));
    if (ch == '.')
        return pm_asprintf("'%s' contains a dot; write one extension "
                           "without dots",
                           q);
    if (ch == '/' || ch == '\\')
        return pm_asprintf("contains '%s', a path separator; write only the "
                           "extension",
                           s_char(ch, c));
    if (strchr("*?[]{}()|^$+", ch))
        return pm_asprintf("contains '%c', a glob/regex metacharacter; "
                           "write a plain extension",
                           ch);
    if (ch == ' ' || ch == '\t')
        return pm_asprintf("contains whitespace ('%s'); write one extension "
                           "per list item",
                           ch == ' ' ? " " : "\\t");
    if (ch < 0x20 || ch == 0x7f)
        return s_control_problem(ch);
    return pm_asprintf("contains '%s'; an extension may hold only letters, "
                       "digits, '-' and '_'",
                       s_char(ch, c));
}

char *
pm_check_extension(const char *value)
{
    char q[S_QUOTE_SIZE];
    size_t len = strlen(value);

    if (len == 0)
        return pm_strdup("is empty; write an extension such as 'exe'");
    if (value[0] == '.')
        return pm_asprintf("'%s' starts with a dot; write the extension "
                           "without it",
                           s_quote(value, len, q));
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)value[i];
        if (!s_is_alnum(ch) && ch != '-' && ch != '_')
            return s_extension_char_problem(value, ch);
    }
    if (len > PM_EXTENSION_MAX)
        return pm_asprintf("is %zu characters long; an extension holds at "
                           "most %d",
                           len, PM_EXTENSION_MAX);
    return NULL;
}

/* ------------------------------------------------------------------------
 * Addresses and networks */

/* Copies LEN bytes into BUF as a C string for inet_pton(); false if they
 * do not fit, which no valid address would. */
static bool
s_copy(char *buf, size_t size, const char *s, size_t len)
{
    if (len >= size)
        return false;
    memcpy(buf, s, len);
    buf[len] = '\0';
    return true;
}

/* Parses the address part of a mynetworks entry into BYTES. */
static char *
s_cidr_address(const char *s, size_t len, bool bracketed, int *family,
               unsigned char bytes[16])
{
    char buf[INET6_ADDRSTRLEN];
    char q[S_QUOTE_SIZE];

    s_quote(s, len, q);
    if (len == 0)
        return pm_strdup("has no address before the prefix");
    *family = memchr(s, ':', len) ? AF_INET6 : AF_INET;
    if (bracketed && *family == AF_INET)
        return pm_asprintf("brackets are for IPv6 addresses; write '%s' "
                           "without them",
                           q);
    if (s_copy(buf, sizeof buf, s, len) && inet_pton(*family, buf, bytes) == 1)
        return NULL;
    if (*family == AF_INET)
        return pm_asprintf("'%s' is not a valid IPv4 address (four numbers "
                           "0-255 separated by dots)",
                           q);
    return pm_asprintf("'%s' is not a valid IPv6 address", q);
}

/* Parses the digits after '/' into *bits, at most MAXBITS. */
static char *
s_cidr_prefix(const char *s, int family, unsigned *bits)
{
    unsigned maxbits = family == AF_INET ? 32 : 128;
    char q[S_QUOTE_SIZE];
    unsigned long n = 0;

    s_quote(s, strlen(s), q);
    if (*s == '\0')
        return pm_strdup("has '/' but no prefix length after it");
    for (const char *p = s; *p; p++) {
        if (!s_is_digit((unsigned char)*p))
            return pm_asprintf("prefix '/%s' is not a number", q);
        if (n <= 128) /* stop growing: overflow-safe, already too long */
            n = n * 10 + (unsigned long)(*p - '0');
    }
    if (n > maxbits)
        return pm_asprintf("prefix /%s is longer than the %u bits of an %s "
                           "address",
                           q, maxbits, family == AF_INET ? "IPv4" : "IPv6");
    *bits = (unsigned)n;
    return NULL;
}

/* Postfix silently matches the whole network when host bits are set, so
 * "10.1.2.3/8" trusts far more than the admin probably meant: reject it
 * and name the network it would really cover. */
static char *
s_cidr_host_bits(int family, unsigned char bytes[16], unsigned bits,
                 bool bracketed)
{
    size_t nbytes = family == AF_INET ? 4 : 16;
    char net[INET6_ADDRSTRLEN];
    bool set = false;

    for (size_t i = 0; i < nbytes; i++) {
        unsigned keep = bits >= 8 * (i + 1) ? 8
                        : bits > 8 * i      ? bits - 8 * (unsigned)i
                                            : 0;
        unsigned char mask = (unsigned char)(0xff00u >> keep);
        if (bytes[i] & ~mask) {
            set = true;
            bytes[i] &= mask;
        }
    }
    if (!set)
        return NULL;
    inet_ntop(family, bytes, net, sizeof net);
    return pm_asprintf("host bits are set below the /%u prefix; did you mean "
                       "%s%s%s/%u?",
                       bits, bracketed ? "[" : "", net, bracketed ? "]" : "",
                       bits);
}

/* Parses VALUE into FAMILY, BYTES and BITS (a bare address: the full
 * length) or returns the problem. */
static char *
s_cidr(const char *value, int *family_p, unsigned char bytes[16],
       unsigned *bits_p)
{
    const char *addr = value;
    const char *slash;
    const char *ctl = s_find_control(value);
    bool bracketed = value[0] == '[';
    size_t alen;
    unsigned bits;
    int family = AF_INET;
    char *problem;

    if (*value == '\0')
        return pm_strdup("is empty; write an address or a network such as "
                         "192.168.0.0/16");
    if (ctl)
        return s_control_problem((unsigned char)*ctl);
    if (bracketed) {
        const char *close = strchr(value, ']');
        if (!close)
            return pm_strdup("has '[' without a closing ']'");
        if (close[1] != '\0' && close[1] != '/')
            return pm_strdup("has text after ']'; only '/prefix' may follow");
        addr = value + 1;
        alen = (size_t)(close - addr);
        slash = close[1] == '/' ? close + 1 : NULL;
    } else {
        slash = strchr(value, '/');
        alen = slash ? (size_t)(slash - value) : strlen(value);
    }
    if ((problem = s_cidr_address(addr, alen, bracketed, &family, bytes)))
        return problem;
    bits = family == AF_INET ? 32 : 128; /* a bare address is one host */
    if (slash && (problem = s_cidr_prefix(slash + 1, family, &bits)))
        return problem;
    if ((problem = s_cidr_host_bits(family, bytes, bits, bracketed)))
        return problem;
    *family_p = family;
    *bits_p = bits;
    return NULL;
}

char *
pm_check_cidr(const char *value)
{
    unsigned char bytes[16] = {0};
    unsigned bits;
    int family;
    return s_cidr(value, &family, bytes, &bits);
}

/* The IPv4 prefix length an IPv6 network covers through IPv4-mapped
 * addresses (::ffff:a.b.c.d, which are IPv4 clients), or -1 when it covers
 * none of them. */
static int
s_mapped_v4_bits(const unsigned char bytes[16], unsigned bits)
{
    static const unsigned char mapped[12] = {0, 0, 0, 0, 0,    0,
                                             0, 0, 0, 0, 0xff, 0xff};
    unsigned common = bits < 96 ? bits : 96;
    for (unsigned i = 0; i < common; i++) {
        unsigned char mask = (unsigned char)(0x80u >> (i % 8));
        if ((bytes[i / 8] & mask) != (mapped[i / 8] & mask))
            return -1;
    }
    return bits <= 96 ? 0 : (int)bits - 96;
}

/* Whether the network BYTES/BITS (IPv4: the first 4 bytes) lies within
 * one of the private or local ranges of pm_check.h. */
static bool
s_private(int family, const unsigned char *b, unsigned bits)
{
    static const struct {
        int family;
        unsigned char net[4];
        unsigned bits;
    } ranges[] = {
        {AF_INET, {10, 0, 0, 0}, 8},    {AF_INET, {100, 64, 0, 0}, 10},
        {AF_INET, {127, 0, 0, 0}, 8},   {AF_INET, {169, 254, 0, 0}, 16},
        {AF_INET, {172, 16, 0, 0}, 12}, {AF_INET, {192, 168, 0, 0}, 16},
        {AF_INET6, {0xfc, 0, 0, 0}, 7}, {AF_INET6, {0xfe, 0x80, 0, 0}, 10},
    };
    for (size_t i = 0; i < sizeof ranges / sizeof ranges[0]; i++) {
        if (ranges[i].family != family || bits < ranges[i].bits)
            continue;
        bool in = true;
        for (unsigned k = 0; in && k < ranges[i].bits; k++) {
            unsigned char mask = (unsigned char)(0x80u >> (k % 8));
            in = (b[k / 8] & mask) == (ranges[i].net[k / 8] & mask);
        }
        if (in)
            return true;
    }
    return false;
}

char *
pm_check_mynetwork(const char *value)
{
    unsigned char bytes[16] = {0};
    unsigned bits;
    int family;
    char *problem = s_cidr(value, &family, bytes, &bits);
    if (problem)
        return problem;
    int v4 = family == AF_INET ? (int)bits : s_mapped_v4_bits(bytes, bits);
    if (bits == 0)
        return pm_asprintf("/0 is every %s address: every node would relay "
                           "mail from anyone on the Internet without "
                           "authentication (an open relay)",
                           family == AF_INET ? "IPv4" : "IPv6");
    if (v4 == 0)
        return pm_strdup("covers every IPv4-mapped address (::ffff:0:0/96), "
                         "that is every IPv4 client: every node would relay "
                         "mail from anyone on the Internet without "
                         "authentication (an open relay)");
    if (v4 > 0 && v4 < PM_MYNETWORK_V4_MIN)
        return pm_asprintf("/%d is %llu IPv4 addresses, public ones among "
                           "them: every node would relay their mail without "
                           "authentication (an open relay for them); the "
                           "widest network allowed is /%d, as 10.0.0.0/8",
                           v4, 1ull << (32 - v4), PM_MYNETWORK_V4_MIN);
    if (family == AF_INET6 && v4 < 0 && bits < PM_MYNETWORK_V6_MIN)
        return pm_asprintf("/%u is a %s of every IPv6 address, public ones "
                           "among them: every node would relay their mail "
                           "without authentication (an open relay for "
                           "them); the widest network allowed is /%d, as "
                           "fc00::/7 (unique local addresses)",
                           bits, bits == 1 ? "half" : "large part",
                           PM_MYNETWORK_V6_MIN);
    const unsigned char *v4_bytes = family == AF_INET ? bytes : bytes + 12;
    if (v4 > 0 && v4 < PM_MYNETWORK_PUBLIC_V4 &&
        !s_private(AF_INET, v4_bytes, (unsigned)v4))
        return pm_asprintf("/%d is %llu public IPv4 addresses: every node "
                           "would relay their mail without authentication; "
                           "a public network may be /%d at widest (list "
                           "several), a private one as wide as its range "
                           "(10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16...)",
                           v4, 1ull << (32 - v4), PM_MYNETWORK_PUBLIC_V4);
    if (family == AF_INET6 && v4 < 0 && bits < PM_MYNETWORK_PUBLIC_V6 &&
        !s_private(AF_INET6, bytes, bits))
        return pm_asprintf("/%u is a public IPv6 network of 2^%u addresses: "
                           "every node would relay their mail without "
                           "authentication; a public network may be /%d at "
                           "widest, a private one as wide as its range "
                           "(fc00::/7, fe80::/10)",
                           bits, 128 - bits, PM_MYNETWORK_PUBLIC_V6);
    return NULL;
}

static bool
s_is_dotted_digits(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (!s_is_digit((unsigned char)s[i]) && s[i] != '.')
            return false;
    return len > 0;
}

/* A host in a relay host or URL: an IPv4 literal or a host name. */
static char *
s_check_host(const char *s, size_t len)
{
    static const s_name_rules_t rules = {1, false};
    struct in_addr a4;
    char buf[INET_ADDRSTRLEN];
    char q[S_QUOTE_SIZE];

    if (!s_is_dotted_digits(s, len))
        return s_check_name(s, len, rules);
    if (s_copy(buf, sizeof buf, s, len) && inet_pton(AF_INET, buf, &a4) == 1)
        return NULL;
    return pm_asprintf("'%s' is not a valid IPv4 address (four numbers "
                       "0-255 separated by dots)",
                       s_quote(s, len, q));
}

/* ------------------------------------------------------------------------
 * Relay host */

/* A numeric port, or a service name every /etc/services has; the check
 * is pure, so it cannot ask getservbyname() about anything else. */
static char *
s_relay_port(const char *s)
{
    char q[S_QUOTE_SIZE];

    if (s_is_alpha((unsigned char)*s)) {
        if (strcmp(s, "smtp") == 0 || strcmp(s, "submission") == 0)
            return NULL;
        return pm_asprintf("port '%s' is neither a number 1-65535 nor one "
                           "of the service names smtp, submission",
                           s_quote(s, strlen(s), q));
    }
    return s_check_port(s, strlen(s));
}

/* The part inside "[...]": IPv4, "ipv6:" + IPv6, or a host name (brackets
 * tell Postfix to skip the MX lookup). */
static char *
s_relay_bracketed_host(const char *s, size_t len)
{
    unsigned char bytes[16];
    char buf[INET6_ADDRSTRLEN + 5];
    char q[S_QUOTE_SIZE];

    s_quote(s, len, q);
    if (len == 0)
        return pm_strdup("has nothing inside the brackets");
    if (len > 5 && strncasecmp(s, "ipv6:", 5) == 0) {
        if (s_copy(buf, sizeof buf, s + 5, len - 5) &&
            inet_pton(AF_INET6, buf, bytes) == 1)
            return NULL;
        return pm_asprintf("'%s' is not a valid IPv6 address",
                           s_quote(s + 5, len - 5, q));
    }
    if (memchr(s, ':', len)) {
        if (s_copy(buf, sizeof buf, s, len) &&
            inet_pton(AF_INET6, buf, bytes) == 1)
            return pm_asprintf("an IPv6 address in brackets needs the "
                               "'ipv6:' prefix in Postfix; write [ipv6:%s]",
                               q);
        return pm_asprintf("'%s' inside the brackets is neither an address "
                           "nor a host name",
                           q);
    }
    return s_check_host(s, len);
}

static char *
s_relay_bracketed(const char *value)
{
    const char *close = strchr(value, ']');
    char *problem;

    if (!close)
        return pm_strdup("has '[' without a closing ']'");
    problem = s_relay_bracketed_host(value + 1, (size_t)(close - value - 1));
    if (problem)
        return problem;
    if (close[1] == '\0')
        return NULL;
    if (close[1] != ':')
        return pm_strdup("has text after ']'; only ':port' may follow");
    return s_relay_port(close + 2);
}

char *
pm_check_relay_host(const char *value)
{
    const char *ctl = s_find_control(value);
    const char *colon = strchr(value, ':');
    size_t hlen = colon ? (size_t)(colon - value) : strlen(value);
    unsigned char a6[16];
    char q[S_QUOTE_SIZE];
    char *problem;

    if (*value == '\0')
        return NULL; /* no relay host: deliver directly */
    if (ctl)
        return s_control_problem((unsigned char)*ctl);
    if (value[0] == '[')
        return s_relay_bracketed(value);
    s_quote(value, strlen(value), q);
    if (colon && strchr(colon + 1, ':')) {
        if (inet_pton(AF_INET6, value, a6) == 1)
            return pm_asprintf("a bare IPv6 address is ambiguous with "
                               "host:port; write [ipv6:%s]",
                               q);
        return pm_strdup("has more than one ':'; write an IPv6 address as "
                         "[ipv6:addr]:port");
    }
    if (hlen == 0)
        return pm_strdup("has no host before the port");
    if ((problem = s_check_host(value, hlen)))
        return problem;
    if (s_is_dotted_digits(value, hlen))
        return pm_asprintf("'%.*s' is an IP address; write it in brackets "
                           "as [%.*s] so Postfix does not look up MX records "
                           "for it",
                           (int)hlen, value, (int)hlen, value);
    return colon ? s_relay_port(colon + 1) : NULL;
}

/* ------------------------------------------------------------------------
 * URL */

static bool
s_is_hex(unsigned char c)
{
    return s_is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* Characters RFC 3986 never allows unescaped, plus the fragment: the
 * server never sees a fragment, so one in a mirror URL is a mistake. */
static char *
s_url_char_problem(const char *value)
{
    char c[S_CHAR_SIZE];

    for (const char *p = value; *p; p++) {
        unsigned char ch = (unsigned char)*p;
        if (ch <= 0x20 || ch == 0x7f)
            return s_control_problem(ch);
        if (ch >= 0x80)
            return pm_asprintf("contains the non-ASCII byte %s; "
                               "percent-encode it",
                               s_char(ch, c));
        if (ch == '#')
            return pm_strdup("contains '#', a fragment; the server never "
                             "sees it, so remove it");
        if (strchr("<>\"{}|\\^`", ch))
            return pm_asprintf("contains '%c', which a URL may not hold "
                               "unescaped; percent-encode it",
                               ch);
        if (ch == '%' &&
            !(s_is_hex((unsigned char)p[1]) && s_is_hex((unsigned char)p[2])))
            return pm_strdup("contains '%' not followed by two hex digits");
    }
    return NULL;
}

/* The authority: host, "[IPv6]" or IPv4, then an optional ":port". */
static char *
s_url_authority(const char *a, size_t len)
{
    unsigned char a6[16];
    char buf[INET6_ADDRSTRLEN];
    char q[S_QUOTE_SIZE];
    const char *end = a + len;
    const char *host_end;
    char *problem;

    if (len == 0)
        return pm_strdup("has no host after the scheme");
    if (memchr(a, '@', len))
        return pm_strdup("contains user info before '@'; credentials do not "
                         "belong in a policy every node receives");
    if (a[0] == '[') {
        host_end = memchr(a, ']', len);
        if (!host_end)
            return pm_strdup("has '[' without a closing ']'");
        if (!s_copy(buf, sizeof buf, a + 1, (size_t)(host_end - a - 1)) ||
            inet_pton(AF_INET6, buf, a6) != 1)
            return pm_asprintf("'%s' is not a valid IPv6 address",
                               s_quote(a + 1, (size_t)(host_end - a - 1), q));
        host_end++;
        if (host_end < end && *host_end != ':')
            return pm_strdup("has text after ']'; only ':port' may follow");
    } else {
        host_end = memchr(a, ':', len);
        if (host_end && memchr(host_end + 1, ':', (size_t)(end - host_end - 1)))
            return pm_strdup("has more than one ':'; write an IPv6 host in "
                             "brackets, as http://[2001:db8::1]/");
        host_end = host_end ? host_end : end;
        if (host_end == a)
            return pm_strdup("has no host before the port");
        if ((problem = s_check_host(a, (size_t)(host_end - a))))
            return problem;
    }
    if (host_end == end)
        return NULL;
    return s_check_port(host_end + 1, (size_t)(end - host_end - 1));
}

char *
pm_check_database_name(const char *value)
{
    char q[S_QUOTE_SIZE];
    char c[S_CHAR_SIZE];
    size_t len = strlen(value);

    if (len == 0)
        return pm_strdup("is empty; write a database name such as 'daily'");
    if (len > PM_DATABASE_NAME_MAX)
        return pm_asprintf("is %zu characters long; a database name holds "
                           "at most %d",
                           len, PM_DATABASE_NAME_MAX);
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)value[i];
        if (!(ch >= 'a' && ch <= 'z') && !(ch >= '0' && ch <= '9') &&
            ch != '-' && ch != '_')
            return pm_asprintf("'%s' contains %s; a database name is "
                               "lowercase letters, digits, '-' and '_' "
                               "(the mirror serves NAME.cvd)",
                               s_quote(value, len, q), s_char(ch, c));
    }
    return NULL;
}

char *
pm_check_database_file(const char *value)
{
    size_t len = strlen(value);
    if (len < 5 || (strcmp(value + len - 4, ".cvd") != 0 &&
                    strcmp(value + len - 4, ".cld") != 0))
        return pm_strdup("not NAME.cvd or NAME.cld");
    char *name = pm_strndup(value, len - 4);
    char *bad = pm_check_database_name(name);
    free(name);
    return bad;
}

char *
pm_check_cdiff_file(const char *value, uint32_t *version)
{
    size_t len = strlen(value);
    const char *dash = memrchr(value, '-', len);
    if (len < 8 || strcmp(value + len - 6, ".cdiff") != 0 || !dash)
        return pm_strdup("not NAME-VERSION.cdiff");
    const char *num = dash + 1, *end = value + len - 6;
    uint64_t n = 0;
    for (const char *p = num; p < end; p++) {
        if (*p < '0' || *p > '9' || (p == num && *p == '0') ||
            (n = n * 10 + (uint64_t)(*p - '0')) > UINT32_MAX)
            return pm_strdup("not NAME-VERSION.cdiff with VERSION a number "
                             "from 1 to 4294967295");
    }
    if (num == end)
        return pm_strdup("not NAME-VERSION.cdiff: no version");
    char *name = pm_strndup(value, (size_t)(dash - value));
    char *bad = pm_check_database_name(name);
    free(name);
    if (!bad && version)
        *version = (uint32_t)n;
    return bad;
}

char *
pm_check_url(const char *value)
{
    const char *sep;
    const char *auth;
    char q[S_QUOTE_SIZE];
    size_t slen;
    char *problem;

    if (*value == '\0')
        return pm_strdup("is empty; write a URL such as "
                         "https://mirror.example.com/clamav");
    if ((problem = s_url_char_problem(value)))
        return problem;
    sep = strstr(value, "://");
    if (!sep)
        return pm_strdup("has no scheme; write http:// or https:// before "
                         "the host");
    slen = (size_t)(sep - value);
    if (!((slen == 4 && strncasecmp(value, "http", 4) == 0) ||
          (slen == 5 && strncasecmp(value, "https", 5) == 0)))
        return pm_asprintf("scheme '%s' is not allowed; mirrors must be "
                           "http:// or https://",
                           s_quote(value, slen, q));
    auth = sep + 3;
    return s_url_authority(auth, strcspn(auth, "/?"));
}

/* ------------------------------------------------------------------------
 * Email address */

/* The local part as an RFC 5322 dot-atom; quoted strings are refused
 * because Postfix parameters and notification headers would need them
 * re-quoted everywhere they are written. */
static char *
s_check_local_part(const char *s, size_t len)
{
    char c[S_CHAR_SIZE];

    if (len == 0)
        return pm_strdup("has nothing before the '@'");
    if (len > S_LOCAL_MAX)
        return pm_asprintf("local part is %zu bytes long; the limit is %d", len,
                           S_LOCAL_MAX);
    if (s[0] == '.' || s[len - 1] == '.')
        return pm_strdup("local part starts or ends with a dot");
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch == '.' && s[i + 1] == '.')
            return pm_strdup("local part has two dots in a row");
        if (ch == '"')
            return pm_strdup("quoted local parts are not supported");
        if (!s_is_alnum(ch) && !strchr(".!#$%&'*+-/=?^_`{|}~", ch))
            return pm_asprintf("local part contains '%s', which an unquoted "
                               "address may not hold",
                               s_char(ch, c));
    }
    return NULL;
}

char *
pm_check_address(const char *value)
{
    static const s_name_rules_t rules = {1, false}; /* "localhost" is ok */
    const char *ctl = s_find_control(value);
    const char *at = strchr(value, '@');
    size_t len = strlen(value);
    char *problem;
    char *wrapped;

    if (len == 0)
        return pm_strdup("is empty; write an address such as "
                         "postmaster@example.com");
    if (ctl)
        return s_control_problem((unsigned char)*ctl);
    if (!at)
        return pm_strdup("has no '@'; write local@domain");
    if (strchr(at + 1, '@'))
        return pm_strdup("contains more than one '@'");
    if (len > S_ADDRESS_MAX)
        return pm_asprintf("is %zu characters long; an address holds at "
                           "most %d",
                           len, S_ADDRESS_MAX);
    if ((problem = s_check_local_part(value, (size_t)(at - value))))
        return problem;
    if (at[1] == '\0')
        return pm_strdup("has nothing after the '@'");
    if (at[1] == '[')
        return pm_strdup("address literals such as [192.0.2.1] are not "
                         "supported; use a domain name");
    if (!(problem = s_check_name(at + 1, strlen(at + 1), rules)))
        return NULL;
    wrapped = pm_asprintf("the domain %s", problem);
    free(problem);
    return wrapped;
}

/* ------------------------------------------------------------------------
 * Subject prefix */

/* Decodes one UTF-8 sequence; returns its length, or 0 when it is not
 * valid UTF-8 (overlong forms, surrogates, beyond U+10FFFF, truncated). */
static size_t
s_utf8_decode(const unsigned char *s, uint32_t *cp)
{
    static const uint32_t min[5] = {0, 0, 0x80, 0x800, 0x10000};
    size_t n;

    if (s[0] < 0x80) {
        *cp = s[0];
        return 1;
    }
    if (s[0] >= 0xc2 && s[0] <= 0xdf)
        n = 2, *cp = s[0] & 0x1fu;
    else if (s[0] >= 0xe0 && s[0] <= 0xef)
        n = 3, *cp = s[0] & 0x0fu;
    else if (s[0] >= 0xf0 && s[0] <= 0xf4)
        n = 4, *cp = s[0] & 0x07u;
    else
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80) /* also stops at the terminating NUL */
            return 0;
        *cp = (*cp << 6) | (s[i] & 0x3fu);
    }
    if (*cp < min[n] || *cp > 0x10ffff || (*cp >= 0xd800 && *cp <= 0xdfff))
        return 0;
    return n;
}

static char *
s_subject_char_problem(uint32_t cp)
{
    if (cp == '\r' || cp == '\n')
        return pm_strdup("contains a line break (CR/LF would let it inject "
                         "a mail header)");
    if (cp == '\t')
        return pm_strdup("contains a tab ('\\t'); control characters are "
                         "not allowed in a subject");
    if (cp < 0x20 || cp == 0x7f)
        return pm_asprintf("contains the control character U+%04X; control "
                           "characters are not allowed in a subject",
                           (unsigned)cp);
    if (cp >= 0x80 && cp <= 0x9f)
        return pm_asprintf("contains the C1 control character U+%04X; "
                           "control characters are not allowed in a subject",
                           (unsigned)cp);
    return NULL;
}

char *
pm_check_subject_prefix(const char *value)
{
    const unsigned char *p = (const unsigned char *)value;
    size_t chars = 0;
    uint32_t cp;
    char *problem;

    while (*p) {
        size_t n = s_utf8_decode(p, &cp);
        if (n == 0)
            return pm_asprintf("is not valid UTF-8 (byte \\x%02X at offset "
                               "%zu)",
                               *p, (size_t)(p - (const unsigned char *)value));
        if ((problem = s_subject_char_problem(cp)))
            return problem;
        chars++;
        p += n;
    }
    if (chars > PM_SUBJECT_PREFIX_MAX)
        return pm_asprintf("is %zu characters long; the limit is %d", chars,
                           PM_SUBJECT_PREFIX_MAX);
    return NULL;
}

/* ------------------------------------------------------------------------
 * DNS names */

char *
pm_check_domain(const char *value)
{
    static const s_name_rules_t rules = {2, false};

    return s_check_name(value, strlen(value), rules);
}

char *
pm_check_selector(const char *value)
{
    static const s_name_rules_t rules = {1, true};

    return s_check_name(value, strlen(value), rules);
}

/* ------------------------------------------------------------------------
 * Signature file names */

/* The one list of extensions, also quoted verbatim in the problem text. */
static const char s_sig_exts[] = ".ndb .hdb .hsb .mdb .msb .ldb .cdb .ign2 "
                                 ".fp .sfp .yar .yara .ftm .cbc .pdb .wdb "
                                 ".idb .crb";

/* Whether EXT is a whole token of s_sig_exts, compared with CMP. */
static bool
s_sig_ext_known(const char *ext, int (*cmp)(const char *, const char *, size_t))
{
    size_t len = strlen(ext);

    for (const char *t = s_sig_exts; *t;) {
        size_t tlen = strcspn(t, " ");
        if (tlen == len && cmp(t, ext, len) == 0)
            return true;
        t += tlen;
        t += *t == ' ';
    }
    return false;
}

/* Lowercase only: libclamav itself compares case-insensitively, but one
 * spelling keeps "a.NDB" and "a.ndb" from being two files on disk. */
static char *
s_sig_extension(const char *ext)
{
    char q[S_QUOTE_SIZE];

    s_quote(ext, strlen(ext), q);
    if (s_sig_ext_known(ext, strncmp))
        return NULL;
    if (s_sig_ext_known(ext, strncasecmp))
        return pm_asprintf("extension '%s' must be written in lowercase", q);
    return pm_asprintf("extension '%s' is not one libclamav loads; use one "
                       "of %s",
                       q, s_sig_exts);
}

char *
pm_check_signature_name(const char *value)
{
    const char *ctl = s_find_control(value);
    const char *dot = strrchr(value, '.');
    size_t len = strlen(value);
    char q[S_QUOTE_SIZE];
    char c[S_CHAR_SIZE];

    s_quote(value, len, q);
    if (len == 0)
        return pm_strdup("is empty; write a file name such as local.ndb");
    if (ctl)
        return s_control_problem((unsigned char)*ctl);
    if (strchr(value, '/'))
        return pm_asprintf("'%s' contains '/'; write a base name, not a path",
                           q);
    if (len > S_FILE_NAME_MAX)
        return pm_asprintf("is %zu bytes long; a file name holds at most %d",
                           len, S_FILE_NAME_MAX);
    if (!dot)
        return pm_asprintf("'%s' has no extension; use one of %s", q,
                           s_sig_exts);
    if (dot == value)
        return pm_asprintf("'%s' has no name before the extension", q);
    if (value[0] == '.')
        return pm_asprintf("'%s' starts with a dot, which hides the file", q);
    for (const char *p = value; *p; p++)
        if (!s_is_alnum((unsigned char)*p) && !strchr(".-_", *p))
            return pm_asprintf("contains '%s'; a signature file name may "
                               "hold only letters, digits, '.', '-' and '_'",
                               s_char((unsigned char)*p, c));
    return s_sig_extension(dot);
}

/* ------------------------------------------------------------------------
 * Durations */

typedef enum {
    S_TERM_OK,
    S_TERM_FRACTION,
    S_TERM_BAD_UNIT,
} s_term_t;

static const struct {
    char unit;
    uint32_t secs;
} s_units[] = {{'w', 604800}, {'d', 86400}, {'h', 3600}, {'m', 60}, {'s', 1}};

/* Seconds in the unit spelled by LEN letters at S, or 0 if unknown.
 * Uppercase is accepted; "1M" cannot mean months, which we have not. */
static uint32_t
s_unit_secs(const char *s, size_t len)
{
    char u = s[0] >= 'A' && s[0] <= 'Z' ? (char)(s[0] - 'A' + 'a') : s[0];

    if (len != 1)
        return 0;
    for (size_t i = 0; i < sizeof s_units / sizeof s_units[0]; i++)
        if (s_units[i].unit == u)
            return s_units[i].secs;
    return 0;
}

/* Reads "<digits>[unit]" at P (which starts with a digit) into *secs.
 * The number stops growing above PM_DURATION_MAX, so "99999999999w"
 * cannot overflow yet still reads as too long. On S_TERM_BAD_UNIT, *end
 * and *unit_len delimit the unit. */
static s_term_t
s_duration_term(const char *p, uint64_t *secs, const char **end,
                size_t *unit_len)
{
    uint64_t n = 0;
    uint32_t mult = 1;
    size_t ulen = 0;

    for (; s_is_digit((unsigned char)*p); p++)
        if (n <= PM_DURATION_MAX)
            n = n * 10 + (uint64_t)(*p - '0');
    if ((*p == '.' || *p == ',') && s_is_digit((unsigned char)p[1]))
        return S_TERM_FRACTION;
    while (s_is_alpha((unsigned char)p[ulen]))
        ulen++;
    *end = p;
    *unit_len = ulen;
    if (ulen > 0 && (mult = s_unit_secs(p, ulen)) == 0)
        return S_TERM_BAD_UNIT;
    *secs = n * mult;
    *end = p + ulen;
    return S_TERM_OK;
}

/* "2h30m": say so, and when the sum is in range, how to write it. */
static char *
s_duration_compound(const char *value, const char *quoted)
{
    uint64_t sum = 0;
    uint64_t secs;
    size_t ulen;
    char buf[16];
    const char *p = value;

    while (s_is_digit((unsigned char)*p) &&
           s_duration_term(p, &secs, &p, &ulen) == S_TERM_OK)
        sum += secs;
    if (*p || sum < PM_DURATION_MIN || sum > PM_DURATION_MAX)
        return pm_asprintf("'%s' combines units; write one number and one "
                           "unit",
                           quoted);
    return pm_asprintf("'%s' combines units; write one number and one unit, "
                       "such as '%s'",
                       quoted,
                       pm_duration_format((uint32_t)sum, buf, sizeof buf));
}

char *
pm_duration_parse(const char *value, uint32_t *secs)
{
    char q[S_QUOTE_SIZE];
    char u[S_QUOTE_SIZE];
    const char *end;
    uint64_t total = 0;
    size_t ulen;

    s_quote(value, strlen(value), q);
    if (*value == '\0')
        return pm_strdup("is empty; write a number and a unit such as '4h'");
    if (*value == '-')
        return pm_asprintf("'%s' is negative; the shortest interval is 1s", q);
    if (s_is_alpha((unsigned char)*value))
        return pm_asprintf("'%s' has no number before the unit", q);
    if (!s_is_digit((unsigned char)*value))
        return pm_asprintf("'%s' is not a duration; write a whole number "
                           "followed by s, m, h, d or w",
                           q);
    switch (s_duration_term(value, &total, &end, &ulen)) {
    case S_TERM_FRACTION:
        return pm_asprintf("'%s' is not a whole number; use a smaller unit "
                           "instead (e.g. '90m', not '1.5h')",
                           q);
    case S_TERM_BAD_UNIT:
        return pm_asprintf("'%s' has unknown unit '%s'; use s, m, h, d or w", q,
                           s_quote(end, ulen, u));
    case S_TERM_OK:
        break;
    }
    if (s_is_digit((unsigned char)*end))
        return s_duration_compound(value, q);
    if (*end)
        return pm_asprintf("'%s' has unexpected text after '%s'; write a "
                           "number directly followed by s, m, h, d or w",
                           q, s_quote(value, (size_t)(end - value), u));
    if (total < PM_DURATION_MIN)
        return pm_asprintf("'%s' is zero; the shortest interval is 1s", q);
    if (total > PM_DURATION_MAX)
        return pm_asprintf("8 weeks is the longest interval; '%s' is longer",
                           q);
    *secs = (uint32_t)total;
    return NULL;
}

char *
pm_duration_format(uint32_t secs, char *buf, size_t size)
{
    size_t i = 0;

    /* 0 is not a valid duration, but "0s" is the honest rendering */
    while (secs != 0 && secs % s_units[i].secs != 0)
        i++;
    if (secs == 0)
        i = sizeof s_units / sizeof s_units[0] - 1;
    snprintf(buf, size, "%lu%c", (unsigned long)(secs / s_units[i].secs),
             s_units[i].unit);
    return buf;
}

int
pm_check_relay_family(const char *value)
{
    if (strncasecmp(value, "[ipv6:", 6) == 0)
        return AF_INET6;
    const char *end = value[0] == '[' ? strchr(value, ']') : NULL;
    char inside[INET_ADDRSTRLEN];
    struct in_addr a;
    if (!end || (size_t)(end - value - 1) >= sizeof inside)
        return 0;
    memcpy(inside, value + 1, (size_t)(end - value - 1));
    inside[end - value - 1] = '\0';
    return inet_pton(AF_INET, inside, &a) == 1 ? AF_INET : 0;
}
