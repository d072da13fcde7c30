/* pm_pf_render.h - the policy as main.cf parameters: pure, no I/O.
 *
 * The policy owns a fixed set of Postfix parameters; every other parameter
 * of main.cf is the node's. Which parameters those are, and which keys
 * drive each, is declared once, in the policy table (pm_key_t.postfix);
 * this module holds only how each parameter is rendered (a key copied as
 * it is, or a function of several keys) and what the node must support
 * for part of it to be turned on (pm_pf_caps_t). A parameter with no
 * render function copies the one key that drives it: a switch becomes
 * yes/no, text is copied.
 */
#ifndef PM_PF_RENDER_H
#define PM_PF_RENDER_H

#include "pm_postconf.h"
#include "privmta.pb-c.h"

#include <stdbool.h>
#include <stddef.h>

/* What the node supports. The policy says what is wanted; the node's own
 * configuration (parameters the policy does not own) says what works. */
typedef struct {
    bool sasl;          /* a SASL backend answers: AUTH may be turned on */
    bool login_maps;    /* smtpd_sender_login_maps is set */
    const char *milter; /* this node's privmta-milter, or NULL */
} pm_pf_caps_t;

/* A node that supports everything, with the milter at its packaged socket
 * (unix:/run/privmta-milter/milter.sock): the policy's full intent. */
extern const pm_pf_caps_t pm_pf_caps_all;

/* Renders EFFECTIVE for a node supporting CAPS into every parameter the
 * policy owns, in table order (the order they are written in). What CAPS
 * lacks is left out: AUTH without sasl, reject_sender_login_mismatch
 * without login_maps, the milters without milter. Sets *n; caller frees
 * with pm_postconf_params_free. */
pm_postconf_param_t *pm_pf_render(const Pm__Policy *effective,
                                  const pm_pf_caps_t *caps, size_t *n);

/* True when the policy owns Postfix parameter PARAM (it is rendered). */
bool pm_pf_render_owns(const char *param);

#endif
