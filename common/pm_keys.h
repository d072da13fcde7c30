/* pm_keys.h - CURVE keys of the controller and its enrolled clients.
 *
 * Layout under the controller's state directory:
 *   keys/controller.cert          public key (give it to clients and agents)
 *   keys/controller.cert_secret   secret key, mode 0600
 *   keys/admin.cert(_secret)      the first admin client key, for privmta-ctl
 *   clients/ROLE-NAME.cert        allow-list: enrolled public keys, with
 *                                 metadata name=NAME and role=admin|agent
 * A client whose public key is not in clients/ is refused during the CURVE
 * handshake (pm_ctlzap); nothing it sends reaches the controller.
 */
#ifndef PM_KEYS_H
#define PM_KEYS_H

#include <czmq.h>
#include <stdbool.h>

/* Loads the controller keypair from STATE_DIR/keys, creating it (and the
 * admin client key, enrolled in clients/) on first start. Secret files are
 * created with mode 0600 and never logged. Returns NULL and sets *why (caller
 * frees) on failure. Caller destroys the cert. */
zcert_t *pm_keys_controller(const char *state_dir, char **why);

/* Roles an enrolled key may have; the controller serves each socket only
 * to keys of its role, so an agent's key cannot push policy. */
#define PM_ROLE_ADMIN "admin"
#define PM_ROLE_AGENT "agent"
/* A peer controller: the controller's own public key, enrolled under this
 * role by pm_keys_controller, so that a standby holding the same keypair
 * may follow (REPLICATE) and ask who is primary (PING), and nothing else. */
#define PM_ROLE_CONTROLLER "controller"
/* The web console (privmta-web): reads the policy, the nodes and the
 * history and changes the policy, nothing else (no enrolment, no DKIM
 * keys, no rollouts); its own key, so that it can be revoked alone. */
#define PM_ROLE_WEB "web"

/* Whether ROLE is one of the roles above. */
bool pm_keys_role_known(const char *role);

/* Creates the keypair NAME in KEYS_DIR (NAME.cert, NAME.cert_secret mode
 * 0600) with metadata name=NAME and role=ROLE; if ENROLL_DIR is not NULL,
 * also writes the public part there as ROLE-NAME.cert. Returns 0, or -1 with
 * *why set. */
int pm_keys_create(const char *keys_dir, const char *name, const char *role,
                   const char *enroll_dir, char **why);

/* Enrols a public key (40-character Z85) as NAME with ROLE: writes
 * CLIENTS_DIR/ROLE-NAME.cert. Returns 0, or -1 with *why set. */
int pm_keys_enroll(const char *clients_dir, const char *name, const char *role,
                   const char *public_txt, char **why);

/* Whether KEY is a CURVE public key in Z85 text: 40 characters of the Z85
 * alphabet that decode. Check a key from elsewhere (a peer, a file, the
 * command line) before czmq sees it: czmq asserts on one libzmq refuses. */
bool pm_keys_is_public(const char *key);

/* Withdraws NAME's enrolment of ROLE. Returns 0, or -1 with *why set (not
 * enrolled). */
int pm_keys_withdraw(const char *clients_dir, const char *name,
                     const char *role, char **why);

/* Loads a certificate file (public or secret). Returns NULL with *why. */
zcert_t *pm_keys_load(const char *path, char **why);

/* Called by pm_keys_each for one enrolled key: its name and role metadata,
 * its public key (40-character Z85) and the file it was read from. The
 * strings last only for the call. */
typedef void(pm_keys_each_fn)(const char *name, const char *role,
                              const char *public_txt, const char *path,
                              void *arg);

/* Reads the allow-list CLIENTS_DIR now and calls FN for every enrolled key:
 * each *.cert file that loads as a certificate with name and role metadata
 * (others are skipped). Returns 0, or -1 with *why set when the directory
 * cannot be read (FN is then not called). */
int pm_keys_each(const char *clients_dir, pm_keys_each_fn *fn, void *arg,
                 char **why);

#endif
