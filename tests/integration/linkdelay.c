/* linkdelay - tests only: a network link with a fixed one-way delay, for a
 * kernel without sch_netem (this one has none).
 *
 *   linkdelay MS TAP_A TAP_B READYFILE
 *
 * Makes two TAP devices and forwards every Ethernet frame that leaves one
 * into the other, MS milliseconds later: a veth pair whose wire takes MS
 * each way. The test moves one end into a host's namespace and puts the
 * other on the bridge, as it does with a veth pair. Loss and rate stay the
 * kernel's (nft numgen, tc tbf on either device); the delay is all this
 * adds. At most PM_LD_QUEUE frames wait in each direction; more are
 * dropped, as a full netem queue drops them. Writes READYFILE once both
 * devices exist, runs until SIGTERM (the devices go with it). Exit 2 on a
 * usage or setup error, with what failed. */
#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#define PM_LD_QUEUE 4096
#define PM_LD_FRAME 65536 /* the most one read of a TAP returns */

typedef struct {
    int64_t due_ns;
    size_t len;
    unsigned char *data;
} ld_frame_t;

/* frames read from `from`, written to `to` when due (a ring, oldest first) */
typedef struct {
    int from, to;
    ld_frame_t ring[PM_LD_QUEUE];
    size_t head, count;
    unsigned long forwarded, dropped;
} ld_dir_t;

static volatile sig_atomic_t s_stop;

static void
s_on_term(int sig)
{
    (void)sig;
    s_stop = 1;
}

static int64_t
s_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int
s_tap_open(const char *name)
{
    struct ifreq ifr = {0};
    int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        fprintf(stderr, "linkdelay: /dev/net/tun: %s\n", strerror(errno));
        return -1;
    }
    ifr.ifr_flags = IFF_TAP | IFF_NO_PI;
    if (strlen(name) >= IFNAMSIZ) {
        fprintf(stderr, "linkdelay: %s: longer than %d characters\n", name,
                IFNAMSIZ - 1);
        close(fd);
        return -1;
    }
    memcpy(ifr.ifr_name, name, strlen(name));
    if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
        fprintf(stderr, "linkdelay: TUNSETIFF %s: %s\n", name, strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

/* everything `from` has to give, queued until now + delay */
static void
s_take(ld_dir_t *dir, int64_t delay_ns, unsigned char *buf)
{
    for (;;) {
        ssize_t n = read(dir->from, buf, PM_LD_FRAME);
        if (n <= 0)
            return; /* EAGAIN: all read; EIO while the device is down */
        if (dir->count == PM_LD_QUEUE) {
            dir->dropped++;
            continue;
        }
        ld_frame_t *f = &dir->ring[(dir->head + dir->count) % PM_LD_QUEUE];
        f->data = malloc((size_t)n);
        if (!f->data) {
            dir->dropped++;
            continue;
        }
        memcpy(f->data, buf, (size_t)n);
        f->len = (size_t)n;
        f->due_ns = s_now_ns() + delay_ns;
        dir->count++;
    }
}

/* writes the frames that are due; returns ns until the next one, or -1 */
static int64_t
s_give(ld_dir_t *dir)
{
    int64_t now = s_now_ns();
    while (dir->count > 0) {
        ld_frame_t *f = &dir->ring[dir->head];
        if (f->due_ns > now)
            return f->due_ns - now;
        /* a frame the kernel does not take (device down) is lost on the
         * wire, as it would be on a cable */
        if (write(dir->to, f->data, f->len) == (ssize_t)f->len)
            dir->forwarded++;
        else
            dir->dropped++;
        free(f->data);
        dir->head = (dir->head + 1) % PM_LD_QUEUE;
        dir->count--;
    }
    return -1;
}

int
main(int argc, char **argv)
{
    char *end;
    long ms = argc == 5 ? strtol(argv[1], &end, 10) : -1;
    if (argc != 5 || *end || ms < 0 || ms > 60000) {
        fprintf(stderr,
                "usage: linkdelay MS TAP_A TAP_B READYFILE (MS 0-60000)\n");
        return 2;
    }
    static ld_dir_t a_to_b, b_to_a;
    static unsigned char buf[PM_LD_FRAME];
    int a = s_tap_open(argv[2]), b = a < 0 ? -1 : s_tap_open(argv[3]);
    if (b < 0)
        return 2;
    a_to_b.from = b_to_a.to = a;
    a_to_b.to = b_to_a.from = b;
    struct sigaction sa = {.sa_handler = s_on_term};
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    FILE *ready = fopen(argv[4], "w");
    if (!ready || fprintf(ready, "%ld\n", (long)getpid()) < 0 ||
        fclose(ready) != 0) {
        fprintf(stderr, "linkdelay: %s: %s\n", argv[4], strerror(errno));
        return 2;
    }
    int64_t delay_ns = (int64_t)ms * 1000000;
    while (!s_stop) {
        int64_t next_ab = s_give(&a_to_b), next_ba = s_give(&b_to_a);
        int64_t next = next_ab < 0         ? next_ba
                       : next_ba < 0       ? next_ab
                       : next_ab < next_ba ? next_ab
                                           : next_ba;
        struct timespec wait = {next / 1000000000, next % 1000000000};
        struct pollfd fds[2] = {{.fd = a, .events = POLLIN},
                                {.fd = b, .events = POLLIN}};
        if (ppoll(fds, 2, next < 0 ? NULL : &wait, NULL) < 0 &&
            errno != EINTR) {
            fprintf(stderr, "linkdelay: poll: %s\n", strerror(errno));
            return 2;
        }
        if ((fds[0].revents | fds[1].revents) &
            (POLLERR | POLLHUP | POLLNVAL)) {
            fprintf(stderr, "linkdelay: a device went away\n");
            return 2;
        }
        if (fds[0].revents & POLLIN)
            s_take(&a_to_b, delay_ns, buf);
        if (fds[1].revents & POLLIN)
            s_take(&b_to_a, delay_ns, buf);
    }
    fprintf(stderr,
            "linkdelay: %s -> %s %lu frames (%lu dropped), %s -> %s %lu (%lu "
            "dropped)\n",
            argv[2], argv[3], a_to_b.forwarded, a_to_b.dropped, argv[3],
            argv[2], b_to_a.forwarded, b_to_a.dropped);
    return 0;
}
