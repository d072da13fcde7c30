/* pm_handoff.h - the applied revision, handed from the agent to the milter.
 *
 * The agent (root) and privmta-milter (unprivileged, parses hostile mail)
 * share no store and no lock: after applying revision N the agent writes
 * this node's effective revision to one file, root-owned, mode 0640,
 * group = the milter's group, in a root-owned directory (pm_file_write:
 * never through a link, replaced atomically). The milter only ever reads
 * it, and every byte goes through pm_wire's revision gate. A milter started
 * before the agent waits for the file; the agent's state is never mapped
 * or locked by the milter.
 *
 * The default layout, one for both programs (documented in the README):
 *     /var/lib/privmta-milter/           root:<milter group> 0750
 *     /var/lib/privmta-milter/policy.pb  root:<milter group> 0640
 *     /var/lib/privmta-milter/dkim/      root:<milter group> 0750
 *     /var/lib/privmta-milter/dkim/<id>  root:<milter group> 0640
 *     /var/lib/privmta-milter/probe.key  root:<milter group> 0640
 *     /var/lib/privmta-milter/notify.addr  root:<milter group> 0640
 *
 * notify.addr: the agent's notify_listener ("127.0.0.1:10026\n"), the
 * Postfix listener without milters it added to master.cf, where the
 * milter sends its notices; absent when the agent names none (the
 * milter's own notify_smtp then). One address, set in one place: the two
 * configurations used to have to agree by hand.
 *
 * The probe: to check a node's mail path after a restart, the agent writes
 * a random token to probe.key and sends, from the node itself, a message
 * carrying the header "X-Privmta-Probe: <token>" through the node's
 * Postfix listener. A message from a loopback client whose header holds
 * the token is checked like any other and, when every check lets it
 * through, refused at the end of DATA with "550 5.7.0 PM_PROBE_PASSED":
 * the filter's own answer proves that smtpd, cleanup and the filter saw
 * it and that every check passed (a 250 would be no proof: a listener
 * without the filter, or milter_default_action = accept with the filter
 * down, delivers), and nothing reaches a mailbox or needs a transport of
 * the admin's. Anything else with that header (another client, another
 * token) is ordinary mail.
 */
#ifndef PM_HANDOFF_H
#define PM_HANDOFF_H

#include "privmta.pb-c.h"

#include <sys/types.h>

#define PM_HANDOFF_DIR "/var/lib/privmta-milter"
#define PM_HANDOFF_POLICY "policy.pb"
#define PM_HANDOFF_DKIM "dkim"
#define PM_HANDOFF_PROBE "probe.key"
#define PM_HANDOFF_NOTIFY "notify.addr"
#define PM_HANDOFF_NOTIFY_MAX 300 /* bytes of notify.addr, read or written */
#define PM_PROBE_HEADER "X-Privmta-Probe"
#define PM_PROBE_TOKEN_MAX 128 /* bytes of a token, read or written */
#define PM_PROBE_PASSED "privmta probe: every check passed"

/* Writes REV (its policy already this node's effective one) to PATH, mode
 * 0640, group GID (-1: unchanged). PM_OK, or PM_EIO with *why. */
int pm_handoff_write(const char *path, const Pm__Revision *rev, gid_t gid,
                     char **why);

/* Reads PATH (at most PM_WIRE_MESSAGE_MAX bytes, no link followed) and
 * unpacks it through pm_wire. PM_OK and *rev (caller frees with
 * pm__revision__free_unpacked); PM_ENOTFOUND when there is no file yet;
 * PM_EINVAL, PM_EIO or PM_EPROTO with *why. */
int pm_handoff_read(const char *path, Pm__Revision **rev, char **why);

#endif
