/* pm_mem.h - allocation that never returns NULL.
 *
 * As Postfix's mymalloc and czmq's zmalloc: running out of memory aborts the
 * process in one place, so no caller carries an untestable NULL branch.
 */
#ifndef PM_MEM_H
#define PM_MEM_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

void *pm_malloc(size_t size);
void *pm_calloc(size_t n, size_t size);
void *pm_realloc(void *ptr, size_t size);
char *pm_strdup(const char *s);
/* Like strndup: copies at most N bytes of S, stopping at its end. */
char *pm_strndup(const char *s, size_t n);
/* Formats into a new string. Caller owns the result and must free it. */
char *pm_asprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
char *pm_vasprintf(const char *fmt, va_list ap);

/* For a process whose every request allocates and frees a few hundred
 * KiB from many threads (the milter): glibc gives the top of a heap back
 * to the kernel once 128 KiB of it are free, so each request paid
 * brk/munmap, page faults and a TLB flush on every CPU. After this call
 * each heap keeps up to PM_MEM_KEEP_HEAP free, and blocks that large are
 * mapped on their own (a fixed threshold: glibc's moving one climbs to 32
 * MiB). Call before starting threads. False when glibc refused. */
#define PM_MEM_KEEP_HEAP (4 << 20)
bool pm_mem_keep_heap(void);

/* The opposite, for a process that holds many connections (the
 * controller): CURVE encrypts a copy of each large message per connection
 * (a whole MEMBERS list is ~60 KiB at 1000 nodes), held until the socket
 * takes it. From the heap, those copies left ~30 MiB that stayed resident
 * after each burst; mapped on their own (PM_MEM_MAP_LARGE and up) they go
 * back to the kernel when freed. Call before starting threads. */
#define PM_MEM_MAP_LARGE (32 << 10)
bool pm_mem_map_large(void);

/* Frees *ptr_p and sets it to NULL; safe on NULL. */
#define PM_FREE(ptr_p)                                                         \
    do {                                                                       \
        free(*(ptr_p));                                                        \
        *(ptr_p) = NULL;                                                       \
    } while (0)

#endif
