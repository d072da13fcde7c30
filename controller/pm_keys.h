/* pm_keys.h - CURVE keys of the controller and its enrolled clients.
 *
 * Layout under the controller's state directory:
 *   keys/controller.cert          public key (give it to clients and agents)
 *   keys/controller.cert_secret   secret key, mode 0600
 *   keys/admin.cert(_secret)      the first admin client key, for privmta-ctl
 *   clients/NAME.cert             allow-list: public keys of admin clients
 * A client whose public key is not in clients/ is refused during the CURVE
 * handshake (zauth); nothing it sends reaches the controller.
 */
#ifndef PM_KEYS_H
#define PM_KEYS_H

#include <czmq.h>

/* Loads the controller keypair from STATE_DIR/keys, creating it (and the
 * admin client key, enrolled in clients/) on first start. Secret files are
 * created with mode 0600 and never logged. Returns NULL and sets *why (caller
 * frees) on failure. Caller destroys the cert. */
zcert_t *pm_keys_controller(const char *state_dir, char **why);

/* Creates the keypair NAME in KEYS_DIR (NAME.cert, NAME.cert_secret mode
 * 0600) with metadata name=NAME; if ENROLL_DIR is not NULL, also writes the
 * public part there. Returns 0, or -1 with *why set. */
int pm_keys_create(const char *keys_dir, const char *name,
                   const char *enroll_dir, char **why);

/* Loads a certificate file (public or secret). Returns NULL with *why. */
zcert_t *pm_keys_load(const char *path, char **why);

#endif
