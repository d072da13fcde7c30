/* testnet.c - see testnet.h. */
#include "testnet.h"

#include <arpa/inet.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

int
testnet_socket(const char *addr, bool listening, int *port)
{
    struct sockaddr_in sa = {.sin_family = AF_INET};
    socklen_t len = sizeof sa;
    if (inet_pton(AF_INET, addr, &sa.sin_addr) != 1) {
        errno = EINVAL;
        return -1;
    }
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0 ||
        (listening && listen(fd, 8) != 0) ||
        getsockname(fd, (struct sockaddr *)&sa, &len) != 0) {
        int saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    *port = ntohs(sa.sin_port);
    return fd;
}

int
testnet_free_port(const char *addr)
{
    int port = -1, fd = testnet_socket(addr, false, &port);
    if (fd < 0)
        return -1;
    close(fd);
    return port;
}

struct testnet_server_t {
    int fd;
    void (*serve)(int fd, void *arg);
    void *arg;
    pthread_t thread;
};

static void *
s_accept_loop(void *arg)
{
    testnet_server_t *self = arg;
    for (;;) {
        int c = accept(self->fd, NULL, NULL);
        if (c < 0)
            return NULL; /* shut down: the test is over */
        self->serve(c, self->arg);
        close(c);
    }
}

testnet_server_t *
testnet_server_start(void (*serve)(int fd, void *arg), void *arg, int *port)
{
    testnet_server_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->serve = serve;
    self->arg = arg;
    self->fd = testnet_socket("127.0.0.1", true, port);
    int rc = self->fd < 0
                 ? errno
                 : pthread_create(&self->thread, NULL, s_accept_loop, self);
    if (rc != 0) {
        if (self->fd >= 0)
            close(self->fd);
        free(self);
        errno = rc;
        return NULL;
    }
    return self;
}

void
testnet_server_stop(testnet_server_t **self_p)
{
    testnet_server_t *self = self_p ? *self_p : NULL;
    if (!self)
        return;
    shutdown(self->fd, SHUT_RDWR);
    pthread_join(self->thread, NULL);
    close(self->fd);
    free(self);
    *self_p = NULL;
}
