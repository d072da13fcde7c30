/* pm_sigmirror.c - see pm_sigmirror.h. */
#include "pm_sigmirror.h"
#include "pm_check.h"
#include "pm_http.h"
#include "pm_mem.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct pm_sigmirror {
    pm_http_t *http;
    char *dir;
    char url[64];
};

/* The file in DIR that URL names, or NULL when it names none we serve. */
static char *
s_path(const char *dir, const char *url)
{
    if (url[0] != '/')
        return NULL;
    const char *file = url + 1;
    size_t len = strlen(file);
    char *bad = pm_check_cdiff_file(file, NULL);
    if (!bad)
        return pm_asprintf("%s/%s", dir, file);
    free(bad);
    if (len <= 4 || strcmp(file + len - 4, ".cvd") != 0)
        return NULL;
    char *name = pm_strndup(file, len - 4);
    bad = pm_check_database_name(name);
    char *path =
        bad ? NULL : pm_asprintf("%s/%s" PM_SIGMIRROR_HEAD_EXT, dir, name);
    free(bad);
    free(name);
    return path;
}

static enum MHD_Result
s_answer(struct MHD_Connection *c, unsigned status, int fd, size_t size)
{
    struct MHD_Response *r =
        fd >= 0
            ? MHD_create_response_from_fd(size, fd)
            : MHD_create_response_from_buffer(0, "", MHD_RESPMEM_PERSISTENT);
    if (!r && fd >= 0)
        close(fd); /* a response made from FD would have closed it */
    return pm_http_send(c, status, r);
}

static enum MHD_Result
s_on_request(void *cls, struct MHD_Connection *c, const char *url,
             const char *method)
{
    const pm_sigmirror_t *self = cls;
    char *path = strcmp(method, "GET") == 0 ? s_path(self->dir, url) : NULL;
    int fd = path ? open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC) : -1;
    free(path);
    struct stat st;
    if (fd >= 0 && (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))) {
        close(fd);
        fd = -1;
    }
    if (fd < 0)
        return s_answer(c, MHD_HTTP_NOT_FOUND, -1, 0);
    return s_answer(c, MHD_HTTP_OK, fd, (size_t)st.st_size);
}

pm_sigmirror_t *
pm_sigmirror_new(const char *dir, char **why)
{
    pm_sigmirror_t *self = pm_calloc(1, sizeof *self);
    self->dir = pm_strdup(dir);
    /* loopback only: libfreshclam in this process is the one client */
    pm_http_conf_t conf = {.name = "sigmirror",
                           .listen = "127.0.0.1:0",
                           .answer = s_on_request,
                           .cls = self,
                           .conns = 16,
                           .timeout_s = 60};
    if (pm_http_new(&conf, &self->http, why) != PM_OK) {
        pm_why(why, "sigmirror", "cannot serve %s on 127.0.0.1", dir);
        pm_sigmirror_destroy(&self);
        return NULL;
    }
    snprintf(self->url, sizeof self->url, "http://127.0.0.1:%u",
             pm_http_port(self->http));
    return self;
}

const char *
pm_sigmirror_url(const pm_sigmirror_t *self)
{
    return self->url;
}

void
pm_sigmirror_destroy(pm_sigmirror_t **self_p)
{
    pm_sigmirror_t *self = self_p ? *self_p : NULL;
    if (!self)
        return;
    pm_http_destroy(&self->http);
    free(self->dir);
    free(self);
    *self_p = NULL;
}
