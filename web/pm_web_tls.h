/* pm_web_tls.h - privmta-web's certificate: the admin's, or a self-signed
 * one made on first start for the demo.
 *
 * libmicrohttpd (with GnuTLS) takes the PEM texts; OpenSSL's libcrypto
 * makes the key (EC P-256) and the certificate. The key file is created
 * 0600 and never logged.
 */
#ifndef PM_WEB_TLS_H
#define PM_WEB_TLS_H

/* Reads CERT and KEY (PEM) into *cert_pem and *key_pem (caller frees).
 * When neither file exists, first writes a self-signed certificate for
 * HOSTNAME (and localhost, 127.0.0.1), valid for a year, and its key.
 * Returns PM_OK, or an error with *why; one file without the other is an
 * error (an admin's half-installed certificate is not overwritten). */
int pm_web_tls_load(const char *cert, const char *key, const char *hostname,
                    char **cert_pem, char **key_pem, char **why);

#endif
