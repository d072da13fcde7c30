/* pm_sigverify.c - see pm_sigverify.h. */
#include "pm_sigverify.h"
#include "pm_cmd.h"
#include "pm_mem.h"
#include "pm_sigfetch.h"
#include "pm_wire.h"

#include <czmq.h>
#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

struct pm_sigverify {
    char *helper;
    char *user; /* NULL: the helper runs as we do */
    pm_cmd_child_t child;
};

pm_sigverify_t *
pm_sigverify_new(const char *helper, const char *user)
{
    pm_sigverify_t *self = pm_calloc(1, sizeof *self);
    self->helper = pm_strdup(helper ? helper : "");
    self->user = user ? pm_strdup(user) : NULL;
    self->child = (pm_cmd_child_t){-1, -1};
    return self;
}

void
pm_sigverify_destroy(pm_sigverify_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    pm_cmd_stop(&(*self_p)->child);
    free((*self_p)->helper);
    free((*self_p)->user);
    free(*self_p);
    *self_p = NULL;
}

pm_err_t
pm_sigverify_send(int fd, const uint8_t *buf, size_t len, char **why)
{
    uint8_t head[4] = {(uint8_t)(len >> 24), (uint8_t)(len >> 16),
                       (uint8_t)(len >> 8), (uint8_t)len};
    const uint8_t *parts[2] = {head, buf};
    size_t sizes[2] = {4, len};
    for (int i = 0; i < 2; i++)
        for (size_t done = 0; done < sizes[i];) {
            ssize_t w =
                send(fd, parts[i] + done, sizes[i] - done, MSG_NOSIGNAL);
            if (w < 0 && errno == EINTR)
                continue;
            if (w <= 0) {
                pm_why(why, "sigverify", "send: %s", strerror(errno));
                return PM_EIO;
            }
            done += (size_t)w;
        }
    return PM_OK;
}

/* Reads exactly LEN bytes into BUF by DEADLINE (0: none). */
static pm_err_t
s_read_all(int fd, uint8_t *buf, size_t len, int64_t deadline, char **why)
{
    for (size_t done = 0; done < len;) {
        int wait = -1;
        if (deadline) {
            int64_t left = deadline - zclock_mono();
            if (left <= 0) {
                pm_why(why, "sigverify", "no answer in time");
                return PM_ETIMEDOUT;
            }
            wait = (int)left;
        }
        struct pollfd p = {fd, POLLIN, 0};
        int n = poll(&p, 1, wait);
        if (n < 0 && errno == EINTR)
            continue;
        if (n == 0)
            continue; /* the deadline check above ends it */
        ssize_t r = n > 0 ? read(fd, buf + done, len - done) : -1;
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            pm_why(why, "sigverify", "%s",
                   r == 0 ? "the other end closed" : strerror(errno));
            return PM_EIO;
        }
        done += (size_t)r;
    }
    return PM_OK;
}

pm_err_t
pm_sigverify_recv(int fd, size_t max, int timeout_ms, uint8_t **buf,
                  size_t *len, char **why)
{
    int64_t deadline = timeout_ms >= 0 ? zclock_mono() + timeout_ms : 0;
    uint8_t head[4];
    pm_err_t err = s_read_all(fd, head, 4, deadline, why);
    if (err != PM_OK)
        return err;
    size_t n = (size_t)head[0] << 24 | (size_t)head[1] << 16 |
               (size_t)head[2] << 8 | head[3];
    if (n > max) { /* checked before anything is allocated */
        pm_why(why, "sigverify", "a frame of %zu bytes, more than %zu", n, max);
        return PM_EPROTO;
    }
    *buf = pm_malloc(n ? n : 1);
    err = s_read_all(fd, *buf, n, deadline, why);
    if (err != PM_OK) {
        PM_FREE(buf);
        return err;
    }
    *len = n;
    return PM_OK;
}

/* One request and its answer over the running helper; PM_EINTERNAL (with
 * *WHY) for anything that is the helper's fault. */
static pm_err_t
s_ask(pm_sigverify_t *self, const Pm__VerifyRequest *req, int timeout_ms,
      pm_sigfetch_report_t **r, char **why)
{
    const char *name = req->name;
    size_t len = 0;
    uint8_t *buf = pm_wire_pack(&req->base, &len);
    pm_err_t err = pm_sigverify_send(self->child.fd, buf, len, why);
    free(buf);
    buf = NULL;
    if (err == PM_OK)
        err = pm_sigverify_recv(self->child.fd, PM_WIRE_FETCH_MAX, timeout_ms,
                                &buf, &len, why);
    const char *dbs[] = {name};
    pm_sigfetch_opts_t asked = {.databases = dbs, .n_databases = 1};
    if (err == PM_OK)
        err = pm_sigfetch_report_unpack(buf, len, &asked, r, why);
    free(buf);
    return err == PM_OK ? PM_OK : PM_EINTERNAL;
}

/* PATH (database NAME) checked, or only its header read, by the helper
 * (started when it is not running). */
static pm_err_t
s_request(pm_sigverify_t *self, const char *path, const char *name,
          bool header_only, int timeout_ms, unsigned *version, unsigned *sigs,
          time_t *built, char **why)
{
    Pm__VerifyRequest req = PM__VERIFY_REQUEST__INIT;
    req.path = (char *)path;
    req.name = (char *)name;
    req.header_only = header_only;
    char *argv[] = {self->helper, "--verify-server",
                    self->user ? "--user" : NULL, self->user, NULL};
    if (self->child.pid <= 0 &&
        pm_cmd_start(argv, true, &self->child, why) != 0)
        return PM_EINTERNAL;
    pm_sigfetch_report_t *r = NULL;
    if (s_ask(self, &req, timeout_ms, &r, why) != PM_OK) {
        pm_cmd_stop(&self->child); /* the next call starts afresh */
        return PM_EINTERNAL;
    }
    pm_err_t err = r->dbs[0].err;
    if (err != PM_OK) {
        pm_why(why, "sigverify", "%s", r->dbs[0].why);
        /* Without ClamAV's key a hostile file can only attack what runs
         * before the signature check refuses it: a helper that refused a
         * file answers nothing more. */
        pm_cmd_stop(&self->child);
    } else {
        if (version)
            *version = r->dbs[0].version;
        if (sigs)
            *sigs = r->dbs[0].sigs;
        if (built)
            *built = r->dbs[0].built;
    }
    pm_sigfetch_report_destroy(&r);
    return err;
}

pm_err_t
pm_sigverify_file(pm_sigverify_t *self, const char *path, const char *name,
                  int timeout_ms, unsigned *version, unsigned *sigs,
                  time_t *built, char **why)
{
    return s_request(self, path, name, false, timeout_ms, version, sigs, built,
                     why);
}

pm_err_t
pm_sigverify_head(pm_sigverify_t *self, const char *path, const char *name,
                  int timeout_ms, unsigned *version, unsigned *sigs,
                  time_t *built, char **why)
{
    return s_request(self, path, name, true, timeout_ms, version, sigs, built,
                     why);
}

pid_t
pm_sigverify_pid(const pm_sigverify_t *self)
{
    return self->child.pid > 0 ? self->child.pid : 0;
}
