/* pm_check.h - syntax checks for single policy values.
 *
 * Pure functions, no I/O. Each check returns NULL when VALUE is acceptable,
 * or a newly allocated sentence saying what is wrong with it and why
 * ("prefix /33 is longer than 32 bits of an IPv4 address"). The caller owns
 * the problem text and must free() it. The sentence does not repeat the key
 * name; the policy table prefixes it.
 */
#ifndef PM_CHECK_H
#define PM_CHECK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PM_EXTENSION_MAX 32      /* characters in one blocked extension */
#define PM_SUBJECT_PREFIX_MAX 32 /* characters (not bytes) in the prefix */
#define PM_DURATION_MIN 1u       /* seconds */
#define PM_DURATION_MAX 4838400u /* 8 weeks, in seconds */

/* A file extension to block: no leading dot, no slash, no regex or glob
 * metacharacters; letters, digits, '-' and '_' only; 1..32 characters. */
char *pm_check_extension(const char *value);

/* A mynetworks entry: IPv4 "a.b.c.d/n" (n 0..32) or IPv6 "[addr]/n" or
 * "addr/n" (n 0..128); a bare address is a host. Host bits under the prefix
 * must be zero (the problem suggests the network that was meant). */
char *pm_check_cidr(const char *value);

/* A network that may relay without authentication (outbound.mynetworks):
 * a valid pm_check_cidr entry that is not, in effect, the Internet. Refused:
 * any /0 (IPv4 or IPv6; an open relay); IPv4 networks wider than /8,
 * since no private range is wider (10.0.0.0/8) and two /1 halves are /0
 * again; IPv6 networks wider than /7, since the widest private range is
 * fc00::/7; IPv6 networks that cover IPv4-mapped addresses (::ffff:0:0/96)
 * are measured as the IPv4 network they cover. A network wider than
 * PM_MYNETWORK_PUBLIC_V4 (IPv4) or PM_MYNETWORK_PUBLIC_V6 (IPv6) must lie
 * within a private or local range (10/8, 100.64/10, 127/8, 172.16/12,
 * 192.168/16, 169.254/16; fc00::/7, fe80::/10): a public /8 is millions of
 * outside clients no installation relays for, and the web console's key
 * may change this key. */
#define PM_MYNETWORK_V4_MIN 8
#define PM_MYNETWORK_V6_MIN 7
#define PM_MYNETWORK_PUBLIC_V4 16
#define PM_MYNETWORK_PUBLIC_V6 32
char *pm_check_mynetwork(const char *value);

/* A Postfix relay host: "host", "host:port", "[host]:port", "[a.b.c.d]",
 * "[ipv6:addr]:port"; port 1..65535; hostname labels per RFC 1123.
 * The empty string is accepted (no relay host). */
char *pm_check_relay_host(const char *value);

/* The address family a relay host (as pm_check_relay_host accepts) needs:
 * AF_INET6 for "[ipv6:...]", AF_INET for an IPv4 literal "[a.b.c.d]",
 * 0 for a host name, bracketed or not ("[1e100.net]:25" too). */
int pm_check_relay_family(const char *value);

/* A signature mirror: http:// or https:// URL with a host, optional port
 * 1..65535 and path; no spaces, control characters, user info or fragment. */
char *pm_check_url(const char *value);

/* A ClamAV database name as mirrors publish it ("main", "daily",
 * "bytecode"; "test" in ClamAV's test database): the file is NAME.cvd and
 * NAME-N.cdiff, so 1..64 of [a-z0-9_-] and nothing that could name a path. */
#define PM_DATABASE_NAME_MAX 64
char *pm_check_database_name(const char *value);

/* A database file as mirrors and peers name it: NAME.cvd or NAME.cld with
 * NAME as pm_check_database_name allows, so it can never name a path. */
char *pm_check_database_file(const char *value);

/* A CDIFF as mirrors and peers name it: NAME-N.cdiff, NAME as
 * pm_check_database_name allows and N a version 1..4294967295 in decimal
 * without a leading zero; *VERSION (may be NULL) gets N. */
char *pm_check_cdiff_file(const char *value, uint32_t *version);

/* An email address local@domain (dot-atom local part, hostname domain). */
char *pm_check_address(const char *value);

/* The antispam subject prefix: valid UTF-8, at most 32 characters, no
 * control characters at all (CR/LF would inject headers). Empty is fine. */
char *pm_check_subject_prefix(const char *value);

/* A DNS domain name (RFC 1123 labels, at least two labels). */
char *pm_check_domain(const char *value);

/* A DKIM selector: one or more RFC 1123 labels separated by dots. */
char *pm_check_selector(const char *value);

/* A custom signature file name: a base name (no '/') ending in an extension
 * libclamav loads (.ndb .hdb .hsb .mdb .msb .ldb .cdb .ign2 .fp .sfp .yar
 * .yara .ftm .cbc .pdb .wdb .idb .crb). */
char *pm_check_signature_name(const char *value);

/* Parses a duration: an integer followed by s, m, h, d or w (1w = 604800 s);
 * a bare integer means seconds. Accepts PM_DURATION_MIN..PM_DURATION_MAX.
 * On success sets *secs and returns NULL; otherwise returns the problem and
 * leaves *secs alone. */
char *pm_duration_parse(const char *value, uint32_t *secs);

/* Writes SECS in the largest unit that divides it exactly ("2h", "90m",
 * "1w", "45s") into buf; returns buf. */
char *pm_duration_format(uint32_t secs, char *buf, size_t size);

#endif
