#include "pm_sigcheck.h"
#include "pm_mem.h"

#include <clamav.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* libclamav reports why a load failed only through its message callback,
 * which is process-wide; each thread keeps the first error it saw. */
static __thread char s_last[512];
static pthread_once_t s_once = PTHREAD_ONCE_INIT;
static cl_error_t s_init_rc;

static void
s_on_msg(enum cl_msg severity, const char *fullmsg, const char *msg,
         void *context)
{
    (void)fullmsg;
    (void)context;
    /* The first error is the specific one ("Problem parsing database at
     * line 3"); later ones only repeat the scratch path. */
    if (severity != CL_MSG_ERROR || !msg || s_last[0])
        return;
    snprintf(s_last, sizeof s_last, "%s", msg);
    size_t n = strlen(s_last);
    while (n && (s_last[n - 1] == '\n' || s_last[n - 1] == ' '))
        s_last[--n] = '\0';
}

static void
s_init(void)
{
    cl_set_clcb_msg(s_on_msg);
    s_init_rc = cl_init(CL_INIT_DEFAULT);
}

static char *
s_write_scratch(const char *dir, const char *name, const void *content,
                size_t len)
{
    char *path = pm_asprintf("%s/%s", dir, name);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
    size_t done = 0;
    while (fd >= 0 && done < len) {
        ssize_t w = write(fd, (const char *)content + done, len - done);
        if (w <= 0)
            break;
        done += (size_t)w;
    }
    if (fd < 0 || done < len || close(fd) != 0) {
        if (fd >= 0)
            unlink(path);
        PM_FREE(&path);
    }
    return path;
}

char *
pm_sigcheck(const char *name, const void *content, size_t len, unsigned *nsigs)
{
    pthread_once(&s_once, s_init);
    if (s_init_rc != CL_SUCCESS)
        return pm_asprintf("libclamav failed to initialise: %s",
                           cl_strerror(s_init_rc));
    char dir[] = "/tmp/privmta-sigcheck.XXXXXX";
    if (!mkdtemp(dir))
        return pm_asprintf("cannot create a scratch directory to test it");
    char *problem = NULL;
    char *path = s_write_scratch(dir, name, content, len);
    struct cl_engine *engine = cl_engine_new();
    unsigned sigs = 0;
    s_last[0] = '\0';
    cl_error_t rc =
        path && engine ? cl_load(path, engine, &sigs, CL_DB_STDOPT) : CL_EMEM;
    if (rc == CL_SUCCESS)
        rc = cl_engine_compile(engine);
    if (rc != CL_SUCCESS)
        problem = pm_asprintf("libclamav refuses it: %s%s%s", cl_strerror(rc),
                              s_last[0] && !strstr(s_last, dir) ? ": " : "",
                              s_last[0] && !strstr(s_last, dir) ? s_last : "");
    else if (sigs == 0)
        problem = pm_asprintf("libclamav loads no signature from it");
    else if (nsigs)
        *nsigs = sigs;
    if (engine)
        cl_engine_free(engine);
    if (path)
        unlink(path);
    free(path);
    rmdir(dir);
    return problem;
}
