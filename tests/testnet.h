/* testnet.h - loopback sockets for tests: one way to get a listener or a
 * free port, so no two tests share a fixed one. */
#ifndef PM_TESTNET_H
#define PM_TESTNET_H

#include <stdbool.h>

/* A TCP socket bound to ADDR ("127.0.0.1", any loopback address) on a
 * port the kernel picks, listening when LISTENING; the port in *PORT.
 * Returns the descriptor (close-on-exec), or -1 with errno. */
int testnet_socket(const char *addr, bool listening, int *port);

/* A port on ADDR that nobody listens on: one the kernel just gave out
 * (bound, then closed). -1 with errno on failure. */
int testnet_free_port(const char *addr);

#endif
