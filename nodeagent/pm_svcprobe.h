/* pm_svcprobe.h - looking at this node's mail services from the node:
 * where Postfix accepts SMTP, how many SMTP sessions are open there, does
 * it greet, does the milter accept a connection.
 *
 * Used by a restart (pm_restart) to know when a drain is over and whether
 * the services came back. Everything is seen from the agent's own network
 * namespace, which is Postfix's (one agent per node, beside its Postfix).
 *
 * Open sessions are counted in the kernel's socket tables (/proc/net/tcp
 * and /proc/net/tcp6): ESTABLISHED connections whose local end is a
 * listener. That is the one count that holds every session whatever
 * Postfix process serves it (an smtpd still on the configuration before a
 * reload included) and none that is over: smtpd processes outlive their
 * sessions (max_idle), so counting processes would wait for idle ones,
 * and Postfix has no interface that lists sessions. A session between
 * connect and smtpd's accept is counted too, which is right: it is a
 * client that will be served.
 */
#ifndef PM_SVCPROBE_H
#define PM_SVCPROBE_H

#include <stdbool.h>
#include <stddef.h>

/* One SMTP listener: a master.cf service of type inet whose command is
 * smtpd or postscreen. */
typedef struct {
    char *service;   /* its master.cf name ("127.0.0.1:2525", "smtp") */
    char *host;      /* where to connect: the name's host, else the first
                        of inet_interfaces (127.0.0.1 or ::1 for all,
                        loopback-only or localhost) */
    int port;        /* the name's port, numeric or from /etc/services */
    bool any;        /* the name has no host: Postfix listens on every
                        inet_interfaces address, sessions on any local
                        address count */
    bool unfiltered; /* its master.cf entry turns the milters off (-o
                        smtpd_milters=..., or receive_override_options
                        with no_milters), as the milter's notification
                        listener does: mail through it meets no filter */
} pm_svcprobe_listener_t;

/* The SMTP listeners of the Postfix instance whose configuration
 * directory is DIR (postconf -c DIR -M, inet_interfaces and
 * inet_protocols). Sets *LIST (caller frees with pm_svcprobe_free) and *N;
 * none is no error (*LIST NULL, *N 0). Returns PM_OK; PM_EIO when postconf
 * fails; PM_EINVAL when a listener's port is neither a number nor a
 * known service name. Always with *why on error; outputs set only on
 * success. */
int pm_svcprobe_listeners(const char *dir, pm_svcprobe_listener_t **list,
                          size_t *n, char **why);

/* Frees N listeners and their strings; accepts NULL, nulls *LIST_P. */
void pm_svcprobe_free(pm_svcprobe_listener_t **list_p, size_t n);

/* ESTABLISHED TCP connections whose local end is one of LIST: the port,
 * and the address too unless the listener is ANY (an address of either
 * family, IPv4 also as ::ffff:a.b.c.d in tcp6). -1 when /proc/net/tcp
 * cannot be read. */
int pm_svcprobe_sessions(const pm_svcprobe_listener_t *list, size_t n);

/* Connects to L within TIMEOUT_MS and reads its greeting: true when it is
 * 220 (then QUIT is sent and the connection closed). Else false with
 * *why: "SERVICE (HOST:PORT): connect: Connection refused", "... answered
 * \"421 4.3.2 ...\"" or "... no greeting within N ms". */
bool pm_svcprobe_smtp(const pm_svcprobe_listener_t *l, int timeout_ms,
                      char **why);

/* Connects to a milter socket in Postfix syntax within TIMEOUT_MS:
 * "unix:/path" (or "local:/path"), "inet:HOST:PORT" or "inet:PORT@HOST".
 * A relative unix path ("unix:privmta/milter.sock") is Postfix's: its
 * daemons, chrooted or not, run in the queue directory, so the path is
 * taken from QUEUE_DIR (NULL: such a path is refused).
 * True when it accepts the connection (closed again at once). Else false
 * with *why ("milter unix:/run/m.sock: connect: No such file or
 * directory", or "... is not unix:/path or inet:host:port"). */
bool pm_svcprobe_milter(const char *socket, const char *queue_dir,
                        int timeout_ms, char **why);

#endif
