/* test_check.c - tables of accepted and rejected values for pm_check.
 *
 * Every rejection names the fact the admin needs (the bad prefix, the
 * suggested network, the unit...), so each row carries a fragment that the
 * problem text must contain. Every problem text is also checked to hold
 * only printable ASCII: values echo back to a terminal.
 */
#include <criterion/criterion.h>

#include <sys/socket.h>

#include <stdlib.h>
#include <string.h>

#include "pm_check.h"

typedef char *(*check_fn)(const char *value);

typedef struct {
    const char *value;
    const char *needle; /* must occur in the problem text */
} bad_t;

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

static void
s_assert_printable(const char *value, const char *problem)
{
    for (const char *p = problem; *p; p++)
        cr_assert(*p >= 0x20 && *p < 0x7f,
                  "problem for a %zu-byte value holds raw byte 0x%02x",
                  strlen(value), (unsigned char)*p);
}

static void
s_expect_ok(check_fn fn, const char *const *values, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char *problem = fn(values[i]);
        cr_assert_null(problem, "'%s' was rejected: %s", values[i], problem);
    }
}

static void
s_expect_bad(check_fn fn, const bad_t *rows, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char *problem = fn(rows[i].value);
        cr_assert_not_null(problem, "row %zu ('%s') was accepted", i,
                           rows[i].value);
        s_assert_printable(rows[i].value, problem);
        cr_assert_not_null(strstr(problem, rows[i].needle),
                           "row %zu: '%s' should mention \"%s\"; got: %s", i,
                           rows[i].value, rows[i].needle, problem);
        free(problem);
    }
}

/* ------------------------------------------------------------------------
 * Extensions */

Test(check, extension_ok)
{
    static const char *const ok[] = {
        "exe",    "EXE",
        "Js",     "7z",
        "tar-gz", "a_b",
        "x",      "abcdefghijklmnopqrstuvwxyz012345", /* 32 characters */
    };
    s_expect_ok(pm_check_extension, ok, COUNT(ok));
}

Test(check, extension_bad)
{
    static const bad_t bad[] = {
        {"", "empty"},
        {".exe", "'.exe' starts with a dot; write the extension without it"},
        {".", "starts with a dot"},
        {"tar.gz", "write a single extension, such as 'gz'"},
        {"exe.", "contains a dot"},
        {"a/b", "'/', a path separator"},
        {"a\\b", "'\\', a path separator"},
        {"*", "contains '*', a glob/regex metacharacter; write a plain "
              "extension"},
        {"ex?", "'?', a glob/regex"},
        {"[ex]e", "'[', a glob/regex"},
        {"e]", "']', a glob/regex"},
        {"{a}", "'{', a glob/regex"},
        {"a}", "'}', a glob/regex"},
        {"(a)", "'(', a glob/regex"},
        {"a)", "')', a glob/regex"},
        {"a|b", "'|', a glob/regex"},
        {"^exe", "'^', a glob/regex"},
        {"exe$", "'$', a glob/regex"},
        {"ex+", "'+', a glob/regex"},
        {"ex e", "whitespace"},
        {"exe\t", "whitespace ('\\t')"},
        {"exe\r\nX-Evil: 1", "line break ('\\r')"},
        {"ex\x01", "control character '\\x01'"},
        {"ex\x7f", "'\\x7F'"},
        {"\xc3\xa9xe", "'\\xC3'"},
        {"ex@", "'@'"},
        {"abcdefghijklmnopqrstuvwxyz0123456", "33 characters long"},
    };
    s_expect_bad(pm_check_extension, bad, COUNT(bad));
}

/* ------------------------------------------------------------------------
 * mynetworks entries */

Test(check, cidr_ok)
{
    static const char *const ok[] = {
        "127.0.0.0/8",
        "10.0.0.0/8",
        "192.168.1.0/24",
        "192.168.1.77/32",
        "10.0.0.128/25", /* host bits below /25 are all zero */
        "0.0.0.0/0",    /* syntactically a network; policy may warn elsewhere */
        "192.168.1.77", /* bare address: a host */
        "[::1]/128",
        "::1/128",
        "[::1]",
        "::1",
        "[2001:db8::]/32",
        "2001:db8::/32",
        "[::]/0",
        "fe80::/10",
        "::ffff:10.0.0.0/104",
    };
    s_expect_ok(pm_check_cidr, ok, COUNT(ok));
}

Test(check, cidr_bad)
{
    static const bad_t bad[] = {
        {"", "empty"},
        {"10.0.0.0/33",
         "prefix /33 is longer than the 32 bits of an IPv4 address"},
        {"10.0.0.0/99999999999999999999", "longer than the 32 bits"},
        {"[::1]/129", "prefix /129 is longer than the 128 bits of an IPv6"},
        {"::/129", "128 bits"},
        {"10.1.2.3/8",
         "host bits are set below the /8 prefix; did you mean 10.0.0.0/8?"},
        {"192.168.1.1/24", "did you mean 192.168.1.0/24?"},
        {"192.168.1.1/0", "did you mean 0.0.0.0/0?"},
        {"[2001:db8::1]/32", "did you mean [2001:db8::]/32?"},
        {"2001:db8::1/64", "did you mean 2001:db8::/64?"},
        {"[::1]/0", "did you mean [::]/0?"},
        {"10.0.0.0/", "no prefix length"},
        {"10.0.0.0/x", "prefix '/x' is not a number"},
        {"10.0.0.0/-1", "not a number"},
        {"10.0.0.0/8/9", "not a number"},
        {"/8", "no address"},
        {"256.0.0.0/8", "'256.0.0.0' is not a valid IPv4 address"},
        {"10.0.0/8", "not a valid IPv4"},
        {"010.0.0.0/8", "not a valid IPv4"},
        {"example.com", "not a valid IPv4"},
        {"[10.0.0.0]/8", "brackets are for IPv6 addresses"},
        {"[::1/128", "without a closing ']'"},
        {"[::1]128", "only '/prefix' may follow"},
        {"[]", "no address"},
        {"2001:db8:::1/64", "'2001:db8:::1' is not a valid IPv6 address"},
        {"fe80::1%eth0", "not a valid IPv6"},
        {"10.0.0.0/8 ", "space"},
        {"10.0.0.0/8\n", "line break ('\\n')"},
    };
    s_expect_bad(pm_check_cidr, bad, COUNT(bad));
}

/* mynetworks relays without authentication: networks that are, in
 * effect, the Internet are refused; the private ranges are not. */
Test(check, mynetwork_ok)
{
    static const char *const ok[] = {
        "127.0.0.0/8",
        "10.0.0.0/8",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "192.168.1.10",
        "[::1]/128",
        "fc00::/7",
        "[fd00:1234::]/48",
        "fe80::/10",
        "2001:db8::/32",
        "::ffff:10.0.0.0/104",
        "[::ffff:192.168.0.0]/112",
        "100.64.0.0/10",
        "169.254.0.0/16",
        "198.51.0.0/16",
        "10.0.0.0/9",
        "fc00::/8",
        "[2001:db8:1::]/48",
    };
    s_expect_ok(pm_check_mynetwork, ok, COUNT(ok));
}

Test(check, mynetwork_open_relay)
{
    static const bad_t bad[] = {
        {"0.0.0.0/0", "/0 is every IPv4 address"},
        {"0.0.0.0/0", "open relay"},
        {"[::]/0", "/0 is every IPv6 address"},
        {"::/0", "open relay"},
        {"0.0.0.0/1", "/1 is 2147483648 IPv4 addresses"},
        {"128.0.0.0/1", "the widest network allowed is /8"},
        {"8.0.0.0/7", "/7 is 33554432 IPv4 addresses"},
        {"8000::/1", "a half of every IPv6 address"},
        {"2000::/3", "the widest network allowed is /7"},
        {"[::ffff:0.0.0.0]/96", "every IPv4-mapped address"},
        {"::/8", "every IPv4-mapped address"},
        {"::ffff:0.0.0.0/97", "/1 is 2147483648 IPv4 addresses"},
        /* public networks: /16 (IPv4), /32 (IPv6) at widest */
        {"8.0.0.0/8", "/8 is 16777216 public IPv4 addresses"},
        {"198.0.0.0/15", "a public network may be /16 at widest"},
        {"11.0.0.0/8", "public"},
        {"172.0.0.0/8", "public"}, /* wider than 172.16.0.0/12 */
        {"::ffff:8.0.0.0/104", "/8 is 16777216 public IPv4 addresses"},
        {"2000::/7", "a public IPv6 network of 2^121 addresses"},
        {"2001::/16", "a public network may be /32 at widest"},
        {"fc00::/6", "the widest network allowed is /7"},
        /* and every syntax problem of pm_check_cidr */
        {"10.0.0.0/33", "longer than the 32 bits"},
        {"10.1.2.3/8", "did you mean 10.0.0.0/8?"},
    };
    s_expect_bad(pm_check_mynetwork, bad, COUNT(bad));
}

/* ------------------------------------------------------------------------
 * Relay host */

Test(check, relay_host_ok)
{
    static const char *const ok[] = {
        "",
        "smtp.example.com",
        "relay",
        "smtp.example.com:587",
        "smtp.example.com:25",
        "smtp.example.com:1",
        "smtp.example.com:65535",
        "smtp.example.com:smtp",
        "smtp.example.com:submission",
        "[smtp.example.com]",
        "[smtp.example.com]:587",
        "[192.0.2.1]",
        "[1.2.3.4]:25",
        "[ipv6:2001:db8::1]",
        "[ipv6:2001:db8::1]:25",
        "[IPv6:::1]:2525",
        "a-b.c-d.example",
        "0mail.example.com",
    };
    s_expect_ok(pm_check_relay_host, ok, COUNT(ok));
}

Test(check, relay_host_bad)
{
    static char long_label[80];
    static char long_name[300];
    bad_t bad[] = {
        {"smtp.example.com:0", "port 0 is out of range 1-65535"},
        {"smtp.example.com:65536", "port 65536 is out of range 1-65535"},
        {"smtp.example.com:99999999999999999999", "out of range"},
        {"smtp.example.com:25x", "port '25x' is not a number"},
        {"smtp.example.com:", "no port"},
        {":25", "no host before the port"},
        {"[1.2.3.4]:0", "port 0 is out of range"},
        {"[1.2.3.4]:", "no port"},
        {"smtp.example.com:pop3", "service names smtp, submission"},
        {"2001:db8::1", "write [ipv6:2001:db8::1]"},
        {"2001:db8::1:25", "[ipv6:"},
        {"a:b:c", "more than one ':'"},
        {"[2001:db8::1]:25", "needs the 'ipv6:' prefix"},
        {"[2001:db8::1]:25", "write [ipv6:2001:db8::1]"},
        {"[ipv6:2001:db8:::1]", "'2001:db8:::1' is not a valid IPv6"},
        {"[ipv6:1.2.3.4]", "not a valid IPv6"},
        {"[ipv6:]", "neither an address nor a host name"},
        {"[1.2.3.4", "without a closing ']'"},
        {"[1.2.3.4]25", "only ':port' may follow"},
        {"[]", "nothing inside the brackets"},
        {"[1.2.3.256]", "'1.2.3.256' is not a valid IPv4"},
        {"1.2.3.4", "write it in brackets as [1.2.3.4]"},
        {"1.2.3.4:25", "[1.2.3.4]"},
        {"1.2.3.999", "not a valid IPv4"},
        {"smtp_relay.example.com", "label 'smtp_relay' contains '_'"},
        {"-smtp.example.com", "starts or ends with '-'"},
        {"smtp-.example.com", "starts or ends with '-'"},
        {"smtp..example.com", "empty label"},
        {".example.com", "starts with a dot"},
        {"example.com.", "ends with a dot"},
        {"example.123", "all-digit label"},
        {long_label, "64 characters long; a DNS label holds at most 63"},
        {long_name, "characters long; a DNS name holds at most 253"},
        {"smtp example.com", "space"},
        {"smtp.example.com\r\n", "line break"},
        {"smtp.exa\x01mple.com", "'\\x01'"},
    };

    memset(long_label, 'a', 64);
    memcpy(long_label + 64, ".com", 5);
    for (size_t i = 0; i < 254; i += 2)
        memcpy(long_name + i, "a.", 2);
    long_name[254] = 'a';
    s_expect_bad(pm_check_relay_host, bad, COUNT(bad));
}

Test(check, relay_host_name_bounds)
{
    char name[260];
    char *problem;

    /* 63-character label: the longest RFC 1123 allows */
    memset(name, 'a', 63);
    memcpy(name + 63, ".com", 5);
    cr_assert_null(pm_check_relay_host(name));
    /* 253 characters: "a.a.a....a" with 127 labels */
    for (size_t i = 0; i < 252; i += 2)
        memcpy(name + i, "a.", 2);
    name[252] = 'a';
    name[253] = '\0';
    cr_assert_null(pm_check_domain(name));
    name[253] = 'a';
    name[254] = '\0';
    problem = pm_check_domain(name);
    cr_assert_not_null(problem);
    cr_assert_not_null(strstr(problem, "254 characters long"));
    free(problem);
}

/* ------------------------------------------------------------------------
 * URLs */

Test(check, url_ok)
{
    static const char *const ok[] = {
        "http://mirror.example.com",
        "https://mirror.example.com/",
        "HTTPS://Mirror.Example.com/clamav",
        "http://mirror.example.com:8080/clamav/",
        "https://mirror.example.com:443",
        "http://localhost/db",
        "http://192.0.2.10/clamav",
        "http://192.0.2.10:3128/",
        "http://[2001:db8::1]/clamav",
        "http://[::1]:8080",
        "https://mirror.example.com/path?x=1&y=2",
        "https://mirror.example.com/a%20b",
        "https://mirror.example.com?x",
    };
    s_expect_ok(pm_check_url, ok, COUNT(ok));
}

Test(check, url_bad)
{
    static const bad_t bad[] = {
        {"", "empty"},
        {"ftp://mirror.example.com/",
         "scheme 'ftp' is not allowed; mirrors must be http:// or https://"},
        {"file:///etc/passwd", "scheme 'file' is not allowed"},
        {"httpx://a.example", "scheme 'httpx'"},
        {"mirror.example.com/clamav", "no scheme"},
        {"http:/mirror.example.com", "no scheme"},
        {"http://", "no host"},
        {"http:///clamav", "no host"},
        {"http://:8080/", "no host before"},
        {"http://user:pw@mirror.example.com/", "user info"},
        {"http://user@mirror.example.com/", "user info"},
        {"http://mirror.example.com:0/", "port 0 is out of range 1-65535"},
        {"http://mirror.example.com:65536/", "port 65536 is out of range"},
        {"http://mirror.example.com:80x/", "port '80x' is not a number"},
        {"http://mirror.example.com:/", "no port"},
        {"http://mirror.example.com/#frag", "'#', a fragment"},
        {"http://mirror.example.com/a b", "space"},
        {"http://mirror.example.com/\r\nHost: evil", "line break ('\\r')"},
        {"http://mirror.example.com/\t", "'\\t'"},
        {"http://mirror.example.com/\x7f", "'\\x7F'"},
        {"http://mirr\xc3\xb6r.example.com/", "non-ASCII byte \\xC3"},
        {"http://mirror.example.com/<x>", "'<'"},
        {"http://mirror.example.com/a%2", "two hex digits"},
        {"http://mirror.example.com/a%zz", "two hex digits"},
        {"http://2001:db8::1/", "write an IPv6 host in brackets"},
        {"http://[2001:db8::1/", "without a closing ']'"},
        {"http://[2001:db8:::1]/", "'2001:db8:::1' is not a valid IPv6"},
        {"http://[ipv6:2001:db8::1]/", "not a valid IPv6"},
        {"http://[::1]x/", "only ':port' may follow"},
        {"http://[::1]:0/", "port 0"},
        {"http://300.0.0.1/", "'300.0.0.1' is not a valid IPv4"},
        {"http://mirror_1.example.com/", "contains '_'"},
        {"http://-mirror.example.com/", "starts or ends with '-'"},
        {"http://mirror..example.com/", "empty label"},
    };
    s_expect_bad(pm_check_url, bad, COUNT(bad));
}

/* ------------------------------------------------------------------------
 * Addresses */

Test(check, address_ok)
{
    static const char *const ok[] = {
        "postmaster@example.com",
        "postmaster@localhost",
        "first.last@mail.example.org",
        "a+tag@example.com",
        "x!#$%&'*+-/=?^_`{|}~y@example.com",
        "A@B.example",
        "1234567890123456789012345678901234567890123456789012345678901234"
        "@example.com", /* 64-octet local part */
    };
    s_expect_ok(pm_check_address, ok, COUNT(ok));
}

Test(check, address_bad)
{
    static const bad_t bad[] = {
        {"", "empty"},
        {"postmaster", "no '@'"},
        {"a@b@example.com", "more than one '@'"},
        {"@example.com", "nothing before the '@'"},
        {"postmaster@", "nothing after the '@'"},
        {".a@example.com", "starts or ends with a dot"},
        {"a.@example.com", "starts or ends with a dot"},
        {"a..b@example.com", "two dots in a row"},
        {"\"a b\"@example.com", "space"},
        {"\"ab\"@example.com", "quoted local parts"},
        {"a(b)@example.com", "'('"},
        {"a,b@example.com", "','"},
        {"a\\b@example.com", "'\\'"},
        {"j\xc3\xb6rg@example.com", "'\\xC3'"},
        {"12345678901234567890123456789012345678901234567890123456789012345"
         "@example.com",
         "local part is 65 bytes long; the limit is 64"},
        {"a@[192.0.2.1]", "address literals"},
        {"a@exa_mple.com", "the domain label 'exa_mple' contains '_'"},
        {"a@example..com", "the domain has an empty label"},
        {"a@example.com.", "the domain ends with a dot"},
        {"a@-example.com", "starts or ends with '-'"},
        {"a@1.2.3.4", "all-digit label"},
        {"a@example.com\r\nBcc: x@evil.example", "line break ('\\r')"},
        {"a@example.com\n", "line break ('\\n')"},
        {"a @example.com", "space"},
    };
    s_expect_bad(pm_check_address, bad, COUNT(bad));
}

/* ------------------------------------------------------------------------
 * Subject prefix */

Test(check, subject_prefix_ok)
{
    static const char *const ok[] = {
        "",
        "[SPAM]",
        "***SPAM*** ",
        "[Спам]",
        "[垃圾邮件]",
        "\xf0\x9f\x92\xa9 ",                /* U+1F4A9, 4 bytes */
        "\xc2\xa0[SPAM]",                   /* U+00A0: just past C1 */
        "12345678901234567890123456789012", /* 32 ASCII */
    };
    s_expect_ok(pm_check_subject_prefix, ok, COUNT(ok));
}

Test(check, subject_prefix_counts_characters)
{
    char buf[4 * 40 + 1] = "";
    char *problem;

    /* 32 two-byte characters (64 bytes) fit: the limit counts characters */
    for (int i = 0; i < 32; i++)
        strcat(buf, "\xc3\xa9");
    cr_assert_null(pm_check_subject_prefix(buf));
    strcat(buf, "\xc3\xa9");
    problem = pm_check_subject_prefix(buf);
    cr_assert_not_null(problem);
    cr_assert_not_null(strstr(problem, "33 characters long; the limit is 32"),
                       "%s", problem);
    free(problem);

    /* 32 four-byte characters (128 bytes) fit too */
    buf[0] = '\0';
    for (int i = 0; i < 32; i++)
        strcat(buf, "\xf0\x9f\x92\xa9");
    cr_assert_null(pm_check_subject_prefix(buf));
    strcat(buf, "x");
    problem = pm_check_subject_prefix(buf);
    cr_assert_not_null(problem);
    cr_assert_not_null(strstr(problem, "33 characters"), "%s", problem);
    free(problem);
}

Test(check, subject_prefix_bad)
{
    static const bad_t bad[] = {
        {"a\r\nBcc: x", "contains a line break (CR/LF would let it inject a "
                        "mail header)"},
        {"[SPAM]\n", "line break"},
        {"[SPAM]\r", "line break"},
        {"[SPAM]\t", "tab ('\\t')"},
        {"\x01", "control character U+0001"},
        {"\x1b[31m", "U+001B"},
        {"\x7f", "U+007F"},
        {"\xc2\x80", "C1 control character U+0080"},
        {"\xc2\x85", "U+0085"}, /* NEL, a line break to some readers */
        {"\xc2\x9f", "U+009F"},
        {"\xff", "not valid UTF-8 (byte \\xFF at offset 0)"},
        {"ab\xc3", "byte \\xC3 at offset 2"},    /* truncated */
        {"\xc3\x28", "not valid UTF-8"},         /* bad continuation */
        {"\xc0\xaf", "not valid UTF-8"},         /* overlong '/' */
        {"\xe0\x80\xaf", "not valid UTF-8"},     /* overlong */
        {"\xed\xa0\x80", "not valid UTF-8"},     /* surrogate */
        {"\xf4\x90\x80\x80", "not valid UTF-8"}, /* > U+10FFFF */
        {"\x80", "not valid UTF-8"},             /* lone continuation */
        {"123456789012345678901234567890123", "33 characters long"},
    };
    s_expect_bad(pm_check_subject_prefix, bad, COUNT(bad));
}

/* ------------------------------------------------------------------------
 * Domains and selectors */

Test(check, domain_ok)
{
    static const char *const ok[] = {
        "example.com", "mail.example.co.uk", "EXAMPLE.COM", "xn--bcher-kva.de",
        "a.b",         "123.example.com",    "a-1.example",
    };
    s_expect_ok(pm_check_domain, ok, COUNT(ok));
}

Test(check, domain_bad)
{
    static const bad_t bad[] = {
        {"", "empty"},
        {"localhost", "single label"},
        /* Trailing dot rejected: one canonical spelling per domain, so the
         * DKIM domain list compares as plain strings. */
        {"example.com.", "ends with a dot"},
        {".example.com", "starts with a dot"},
        {"example..com", "empty label"},
        {"ex_ample.com", "label 'ex_ample' contains '_'"},
        {"exa mple.com", "space"},
        {"-example.com", "starts or ends with '-'"},
        {"example-.com", "starts or ends with '-'"},
        {"1.2.3.4", "all-digit label"},
        {"b\xc3\xbc"
         "cher.de",
         "contains '\\xC3'"},
        {"example.com\r\n", "line break"},
    };
    s_expect_bad(pm_check_domain, bad, COUNT(bad));
}

Test(check, selector_ok)
{
    static const char *const ok[] = {
        "default", "mail", "20230601", "s1", "mail.2024", "a-b",
    };
    s_expect_ok(pm_check_selector, ok, COUNT(ok));
}

Test(check, selector_bad)
{
    static const bad_t bad[] = {
        {"", "empty"},
        {"my_selector", "contains '_'"},
        {"sel.", "ends with a dot"},
        {".sel", "starts with a dot"},
        {"a..b", "empty label"},
        {"-sel", "starts or ends with '-'"},
        {"sel ector", "space"},
        {"sel\n", "line break"},
    };
    s_expect_bad(pm_check_selector, bad, COUNT(bad));
}

/* ------------------------------------------------------------------------
 * Signature file names */

Test(check, signature_name_ok)
{
    static const char *const ok[] = {
        "local.ndb", "local.hdb", "local.hsb",        "local.mdb",
        "local.msb", "local.ldb", "local.cdb",        "local.ign2",
        "local.fp",  "local.sfp", "rules.yar",        "rules.yara",
        "local.ftm", "local.cbc", "local.pdb",        "local.wdb",
        "local.idb", "local.crb", "my-sigs_v2.1.ndb",
    };
    s_expect_ok(pm_check_signature_name, ok, COUNT(ok));
}

Test(check, signature_name_bad)
{
    static char long_name[300];
    bad_t bad[] = {
        {"", "empty"},
        {"../main.cvd", "contains '/'; write a base name, not a path"},
        {"/var/lib/clamav/x.ndb", "contains '/'"},
        {".ndb", "no name before the extension"},
        {".hidden.ndb", "starts with a dot"},
        {"local", "has no extension; use one of .ndb"},
        {"local.txt", "extension '.txt' is not one libclamav loads"},
        {"local.cvd", "'.cvd' is not one"},
        {"local.ign", "'.ign' is not one"},
        {"local.ndb.bak", "'.bak'"},
        {"local.", "extension '.'"},
        {"local.NDB", "'.NDB' must be written in lowercase"},
        {"local sigs.ndb", "space"},
        {"local\n.ndb", "line break"},
        {"local*.ndb", "contains '*'"},
        {long_name, "256 bytes long; a file name holds at most 255"},
    };

    memset(long_name, 'a', 252);
    memcpy(long_name + 252, ".ndb", 5);
    s_expect_bad(pm_check_signature_name, bad, COUNT(bad));
    long_name[251] = '\0';
    strcat(long_name, ".ndb"); /* 255 bytes: the limit */
    cr_assert_null(pm_check_signature_name(long_name));
}

/* ------------------------------------------------------------------------
 * Durations */

Test(check, duration_ok)
{
    static const struct {
        const char *value;
        uint32_t secs;
    } ok[] = {
        {"1", 1},
        {"1s", 1},
        {"45s", 45},
        {"1m", 60},
        {"90m", 5400},
        {"2h", 7200},
        {"1d", 86400},
        {"1w", 604800},
        {"2w", 1209600},
        {"8w", 4838400},
        {"56d", 4838400},
        {"4838400", 4838400},
        {"4838400s", 4838400},
        {"1H", 3600},
        {"007m", 420},
    };
    for (size_t i = 0; i < COUNT(ok); i++) {
        uint32_t secs = 0;
        char *problem = pm_duration_parse(ok[i].value, &secs);
        cr_assert_null(problem, "'%s' rejected: %s", ok[i].value, problem);
        cr_assert_eq(secs, ok[i].secs, "'%s' gave %u, not %u", ok[i].value,
                     secs, ok[i].secs);
    }
}

Test(check, duration_bad)
{
    static const bad_t bad[] = {
        {"", "empty"},
        {"0s", "'0s' is zero"},
        {"0", "is zero"},
        {"-1h", "'-1h' is negative"},
        {"1.5h", "not a whole number"},
        {"1,5h", "not a whole number"},
        {"h", "'h' has no number before the unit"},
        {"1x", "'1x' has unknown unit 'x'; use s, m, h, d or w"},
        {"1min", "unknown unit 'min'"},
        {"1hr", "unknown unit 'hr'"},
        {"2h30m", "combines units; write one number and one unit, such as "
                  "'150m'"},
        {"1w1d", "'8d'"},
        {"8w1s", "combines units"}, /* sum too long to suggest a unit */
        {"9w", "8 weeks is the longest interval; '9w' is longer"},
        {"57d", "'57d' is longer"},
        {"4838401", "longest interval"},
        {"99999999999w", "longest interval"},
        {"18446744073709551617s", "longest interval"},
        {"1 h", "unexpected text after '1'"},
        {"1h ", "unexpected text after '1h'"},
        {" 1h", "not a duration"},
        {"+1h", "not a duration"},
        {"1h\r\n", "unexpected text"},
        {"1\x01", "unexpected text after '1'"},
    };
    uint32_t secs = 12345;

    for (size_t i = 0; i < COUNT(bad); i++) {
        char *problem = pm_duration_parse(bad[i].value, &secs);
        cr_assert_not_null(problem, "'%s' was accepted", bad[i].value);
        s_assert_printable(bad[i].value, problem);
        cr_assert_not_null(strstr(problem, bad[i].needle),
                           "'%s' should mention \"%s\"; got: %s", bad[i].value,
                           bad[i].needle, problem);
        free(problem);
    }
    cr_assert_eq(secs, 12345, "a rejected duration changed *secs");
}

Test(check, duration_week_is_seven_days)
{
    uint32_t w = 0;
    uint32_t d = 0;

    cr_assert_null(pm_duration_parse("1w", &w));
    cr_assert_null(pm_duration_parse("7d", &d));
    cr_assert_eq(w, 604800u);
    cr_assert_eq(w, d);
}

Test(check, duration_format)
{
    static const struct {
        uint32_t secs;
        const char *text;
    } rows[] = {
        {604800, "1w"},    {7200, "2h"},    {5400, "90m"},  {45, "45s"},
        {1, "1s"},         {60, "1m"},      {86400, "1d"},  {4838400, "8w"},
        {90061, "90061s"}, {1209600, "2w"}, {172800, "2d"}, {0, "0s"},
    };
    char buf[32];

    for (size_t i = 0; i < COUNT(rows); i++)
        cr_assert_str_eq(pm_duration_format(rows[i].secs, buf, sizeof buf),
                         rows[i].text);
}

Test(check, duration_format_round_trips)
{
    char buf[32];

    for (uint32_t s = PM_DURATION_MIN; s <= PM_DURATION_MAX; s += 599) {
        uint32_t back = 0;
        char *problem =
            pm_duration_parse(pm_duration_format(s, buf, sizeof buf), &back);
        cr_assert_null(problem, "%u -> '%s': %s", s, buf, problem);
        cr_assert_eq(back, s, "%u -> '%s' -> %u", s, buf, back);
    }
}

/* Which relay hosts need an address family (an ipv4-only or ipv6-only
 * node refuses the other's literal): a host name in brackets that starts
 * with a digit is a name, not an IPv4 address. */
Test(check, relay_host_family)
{
    struct {
        const char *relay;
        int family;
    } cases[] = {{"[192.0.2.1]", AF_INET},
                 {"[192.0.2.1]:2525", AF_INET},
                 {"[ipv6:::1]:25", AF_INET6},
                 {"[IPv6:2001:db8::1]", AF_INET6},
                 {"[1e100.net]:25", 0},
                 {"[3com.example]", 0},
                 {"mail.example.com:587", 0},
                 {"192.0.2.1", 0},
                 {"", 0}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        cr_expect_eq(pm_check_relay_family(cases[i].relay), cases[i].family,
                     "%s", cases[i].relay);
}
