/* pm_pf_listener.h - the Postfix listener the filter's notifications come
 * back through.
 *
 * privmta-milter sends each notification (a blocked attachment's, to the
 * admin and to the recipient) by SMTP to its notify_smtp address. That
 * must be a Postfix smtpd that runs no milter, or the notice would be
 * filtered like the mail it is about. The agent puts the policy into
 * main.cf; this is the one service it adds to master.cf, so that a node
 * set up with the two enrolment commands notifies without a third:
 *
 *   ADDR inet n - n - - smtpd -o smtpd_milters= -o non_smtpd_milters=
 *        -o receive_override_options=no_milters
 *
 * named ADDR/inet, as `postconf -M` names services. An entry of that name
 * the admin already has is left as it is, whatever it says.
 */
#ifndef PM_PF_LISTENER_H
#define PM_PF_LISTENER_H

#include "pm_error.h"

#include <stdbool.h>

/* ADDR is "IPv4:PORT" or "[IPv6]:PORT", numeric, port 1-65535: PM_OK, or
 * PM_EINVAL with *why (caller frees) saying what is wrong. */
pm_err_t pm_pf_listener_check(const char *addr, char **why);

/* Makes sure master.cf of the instance in CONFIG_DIR has the listener
 * ADDR/inet. Already there: PM_OK, *added false. Missing: added with
 * `postconf -M` (which rewrites master.cf atomically) and *added true;
 * the caller reloads Postfix. Before adding, ADDR is bound once to see
 * that nothing else listens there: Postfix's master dies at the reload
 * when a new service cannot bind, so an address in use is refused
 * (PM_EEXIST) with what listens there unsaid but the address named.
 * Other failures: PM_EIO with *why. */
pm_err_t pm_pf_listener_ensure(const char *config_dir, const char *addr,
                               bool *added, char **why);

#endif
