/* testnet.c - see testnet.h. */
#include "testnet.h"

#include <arpa/inet.h>
#include <errno.h>
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
