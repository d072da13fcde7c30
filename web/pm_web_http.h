/* pm_web_http.h - privmta-web's HTTPS server: libmicrohttpd (GnuTLS)
 * serving the page's files, embedded at build time, and the JSON API.
 *
 * One thread serves every connection, one request at a time (the API
 * talks to the controller with a deadline; an admin console needs no
 * more). Bodies are read only when the API allows one (a login, or a
 * live session) and only up to its cap, checked while reading. Every
 * answer carries a strict Content-Security-Policy (the page is 'self'
 * only: no inline script), nosniff, no framing, no referrer, HSTS. A POST
 * whose Origin is another site, or that the browser marks cross-site
 * (Sec-Fetch-Site), is refused before the API sees it; the CSRF token is
 * checked behind that (pm_web_api).
 */
#ifndef PM_WEB_HTTP_H
#define PM_WEB_HTTP_H

#include "pm_web_api.h"

#define PM_WEB_CONNS 64 /* connections at once */
#define PM_WEB_CONNS_PER_IP 16
#define PM_WEB_TIMEOUT_S 30 /* an idle connection is closed after */

typedef struct pm_web_http_t pm_web_http_t;

/* Serves API (borrowed; used from the server's thread only) on LISTEN
 * ("HOST:PORT", numeric; port 0 picks one) over TLS with the PEM texts.
 * NULL with *why when it cannot listen. */
pm_web_http_t *pm_web_http_new(const char *listen, pm_web_api_t *api,
                               const char *cert_pem, const char *key_pem,
                               char **why);
void pm_web_http_destroy(pm_web_http_t **self_p);

/* The port it listens on. */
unsigned pm_web_http_port(const pm_web_http_t *self);

#endif
