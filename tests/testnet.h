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

/* A stand-in server on 127.0.0.1: a thread accepts connections one at a
 * time and calls SERVE(fd, ARG) for each, closing fd after it. */
typedef struct testnet_server_t testnet_server_t;

/* Starts one; its port in *PORT. NULL with errno on failure. */
testnet_server_t *testnet_server_start(void (*serve)(int fd, void *arg),
                                       void *arg, int *port);

/* Ends the thread (its accept fails) once the connection in hand is
 * served, and frees the server; accepts NULL. */
void testnet_server_stop(testnet_server_t **self_p);

#endif
