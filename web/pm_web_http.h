/* pm_web_http.h - privmta-web's HTTPS server: libmicrohttpd (GnuTLS)
 * serving the page's files, embedded at build time, and the JSON API.
 *
 * libmicrohttpd's one thread does TLS, reads requests and serves the
 * page's files; API calls run on a thread of their own (pm_web_worker),
 * their connections suspended meanwhile, so that a login's argon2id or a
 * controller that does not answer holds up only other API calls. Bodies
 * are read only when the API allows one (a login, or a live session: the
 * API's thread says, before the body is read) and only up to its cap,
 * checked while reading. Every
 * answer carries a strict Content-Security-Policy (the page is 'self'
 * only: no inline script), nosniff, no framing, no referrer, HSTS. A POST
 * whose Origin is another site, or that the browser marks cross-site
 * (Sec-Fetch-Site), is refused before the API sees it; the CSRF token is
 * checked behind that (pm_web_api).
 */
#ifndef PM_WEB_HTTP_H
#define PM_WEB_HTTP_H

#include "pm_web_api.h"

/* Connections at once, and from one address. libmicrohttpd's timeout is
 * for idleness: a client sending a byte every few seconds holds its
 * connections, so the bound per address is what a browser opens (6 for
 * HTTP/1.1) with room for a script, and the total (poll(2): no
 * FD_SETSIZE bound; ~64 KiB each with TLS) takes 64 such addresses to
 * fill. */
#define PM_WEB_CONNS 512
#define PM_WEB_CONNS_PER_IP 8
#define PM_WEB_TIMEOUT_S 30 /* an idle connection is closed after */

typedef struct pm_web_http_t pm_web_http_t;

/* Serves API (borrowed; used from the API's thread only) on LISTEN
 * ("HOST:PORT", numeric; port 0 picks one) over TLS with the PEM texts.
 * NULL with *why when it cannot listen. */
pm_web_http_t *pm_web_http_new(const char *listen, pm_web_api_t *api,
                               const char *cert_pem, const char *key_pem,
                               char **why);
void pm_web_http_destroy(pm_web_http_t **self_p);

/* The port it listens on. */
unsigned pm_web_http_port(const pm_web_http_t *self);

#endif
