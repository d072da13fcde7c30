/* pm_actor.c - actors end on $TERM only; see pm_actor.h for why. */
#include "pm_actor.h"

#include <errno.h>
#include <stdarg.h>

zmsg_t *
pm_actor_recv(zsock_t *pipe)
{
    for (;;) {
        zmsg_t *msg = zmsg_recv(pipe);
        if (msg || zmq_errno() == ETERM)
            return msg;
        /* EINTR (a signal reached this thread) or EAGAIN: wait on */
    }
}

char *
pm_actor_recv_str(zsock_t *pipe)
{
    zmsg_t *msg = pm_actor_recv(pipe);
    char *cmd = msg ? zmsg_popstr(msg) : NULL;
    zmsg_destroy(&msg);
    return cmd;
}

zpoller_t *
pm_actor_poller(zsock_t *pipe, ...)
{
    zpoller_t *poller = zpoller_new(pipe, NULL);
    va_list ap;
    va_start(ap, pipe);
    for (void *reader = va_arg(ap, void *); reader; reader = va_arg(ap, void *))
        zpoller_add(poller, reader);
    va_end(ap);
    zpoller_set_nonstop(poller, true);
    return poller;
}

bool
pm_actor_ended(zpoller_t *poller)
{
    return zpoller_terminated(poller) && zmq_errno() == ETERM;
}
