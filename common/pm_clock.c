/* pm_clock.c - the monotonic clock (see pm_clock.h). */
#include "pm_clock.h"

#include <time.h>

int64_t
pm_clock_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}
