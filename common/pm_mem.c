#include "pm_mem.h"

#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void
s_oom(size_t size)
{
    fprintf(stderr, "privmta: out of memory allocating %zu bytes\n", size);
    abort();
}

void *
pm_malloc(size_t size)
{
    void *p = malloc(size ? size : 1);
    if (!p)
        s_oom(size);
    return p;
}

void *
pm_calloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p)
        s_oom(n * size);
    return p;
}

void *
pm_realloc(void *ptr, size_t size)
{
    void *p = realloc(ptr, size ? size : 1);
    if (!p)
        s_oom(size);
    return p;
}

char *
pm_strdup(const char *s)
{
    return pm_strndup(s, strlen(s));
}

char *
pm_strndup(const char *s, size_t n)
{
    /* like strndup: at most N bytes, never past the string's end */
    n = strnlen(s, n);
    char *p = pm_malloc(n + 1);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

char *
pm_vasprintf(const char *fmt, va_list ap)
{
    char *out = NULL;
    if (vasprintf(&out, fmt, ap) < 0)
        s_oom(0);
    return out;
}

char *
pm_asprintf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *out = pm_vasprintf(fmt, ap);
    va_end(ap);
    return out;
}

bool
pm_mem_keep_heap(void)
{
    return mallopt(M_TRIM_THRESHOLD, PM_MEM_KEEP_HEAP) &&
           mallopt(M_MMAP_THRESHOLD, PM_MEM_KEEP_HEAP);
}

bool
pm_mem_map_large(void)
{
    return mallopt(M_MMAP_THRESHOLD, PM_MEM_MAP_LARGE) != 0;
}
