/* pm_milter_wake.c - see pm_milter_wake.h. */
#include "pm_milter_wake.h"

#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <string.h>
#include <time.h>

static struct {
    pthread_t listener, kicker;
    atomic_bool stop;
    bool running;
} s_wake;

static void
s_on_usr1(int sig)
{
    (void)sig; /* only to interrupt the listener's select */
}

static void *
s_kick(void *arg)
{
    (void)arg;
    struct timespec tick = {0, PM_MILTER_WAKE_MS * 1000000L};
    while (!atomic_load(&s_wake.stop)) {
        nanosleep(&tick, NULL);
        if (!atomic_load(&s_wake.stop))
            pthread_kill(s_wake.listener, SIGUSR1);
    }
    return NULL;
}

int
pm_milter_wake_start(pthread_t listener, char **why)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = s_on_usr1;
    sa.sa_flags = SA_RESTART; /* select and poll return EINTR anyway */
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGUSR1, &sa, NULL) != 0) {
        pm_why(why, "milter", "SIGUSR1: %s", strerror(errno));
        return PM_EINTERNAL;
    }
    s_wake.listener = listener;
    atomic_store(&s_wake.stop, false);
    int rc = pthread_create(&s_wake.kicker, NULL, s_kick, NULL);
    if (rc != 0) {
        pm_why(why, "milter", "the listener's waker: %s", strerror(rc));
        return PM_EINTERNAL;
    }
    s_wake.running = true;
    return PM_OK;
}

void
pm_milter_wake_stop(void)
{
    if (!s_wake.running)
        return;
    atomic_store(&s_wake.stop, true);
    pthread_join(s_wake.kicker, NULL);
    s_wake.running = false;
}
