/* pm_pf_listener.c - see pm_pf_listener.h. */
#include "pm_pf_listener.h"
#include "pm_mem.h"
#include "pm_pf_run.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define S_SERVICE                                                              \
    "inet n - n - - smtpd -o smtpd_milters= -o non_smtpd_milters= "            \
    "-o receive_override_options=no_milters"

/* ADDR's numeric address in *AI (caller frees), or PM_EINVAL */
static pm_err_t
s_resolve(const char *addr, struct addrinfo **ai, char **why)
{
    const char *colon = strrchr(addr, ':');
    char *host = colon ? pm_strndup(addr, (size_t)(colon - addr)) : NULL;
    size_t hl = host ? strlen(host) : 0;
    if (host && hl >= 2 && host[0] == '[' && host[hl - 1] == ']') {
        memmove(host, host + 1, hl - 2);
        host[hl - 2] = '\0';
    } else if (host && strchr(host, ':')) {
        PM_FREE(&host); /* an IPv6 address without brackets */
    }
    char *end = NULL;
    long port = colon ? strtol(colon + 1, &end, 10) : 0;
    struct addrinfo hints = {.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV,
                             .ai_socktype = SOCK_STREAM};
    int rc = host && *host && end && !*end && port >= 1 && port <= 65535
                 ? getaddrinfo(host, colon + 1, &hints, ai)
                 : EAI_NONAME;
    free(host);
    if (rc != 0) {
        *why = pm_asprintf("notify listener \"%s\": not a numeric "
                           "address and port (127.0.0.1:10026, [::1]:10026)",
                           addr);
        return PM_EINVAL;
    }
    return PM_OK;
}

pm_err_t
pm_pf_listener_check(const char *addr, char **why)
{
    struct addrinfo *ai = NULL;
    pm_err_t err = s_resolve(addr, &ai, why);
    if (ai)
        freeaddrinfo(ai);
    return err;
}

/* PM_OK when ADDR can be bound now (nothing listens there) */
static pm_err_t
s_free_to_bind(const char *addr, char **why)
{
    struct addrinfo *ai = NULL;
    pm_err_t err = s_resolve(addr, &ai, why);
    if (err != PM_OK)
        return err;
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int on = 1; /* as Postfix binds: TIME_WAIT sessions do not count */
    if (fd < 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on) != 0 ||
        bind(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
        err = errno == EADDRINUSE ? PM_EEXIST : PM_EIO;
        *why = pm_asprintf("notify listener %s: %s; not added to master.cf "
                           "(Postfix's master would die at the reload)",
                           addr,
                           err == PM_EEXIST
                               ? "something else listens there already"
                               : strerror(errno));
    }
    if (fd >= 0)
        close(fd);
    freeaddrinfo(ai);
    return err;
}

/* True when master.cf of CONFIG_DIR has a service called NAME */
static pm_err_t
s_present(const char *config_dir, const char *name, bool *present, char **why)
{
    char *argv[] = {"postconf", "-c",         (char *)config_dir,
                    "-M",       (char *)name, NULL};
    pm_cmd_result_t res;
    int rc = pm_pf_run(argv, NULL, false, 0, &res);
    /* a service that is not there: exit 0, a warning, nothing on stdout */
    *present = rc == 0 && res.out_len > 0;
    if (rc != 0)
        *why = pm_cmd_why("postconf -M (reading master.cf)", &res);
    pm_cmd_result_clear(&res);
    return rc == 0 ? PM_OK : PM_EIO;
}

pm_err_t
pm_pf_listener_ensure(const char *config_dir, const char *addr, bool *added,
                      char **why)
{
    *added = false;
    bool present = false;
    char *name = pm_asprintf("%s/inet", addr);
    pm_err_t err = s_present(config_dir, name, &present, why);
    if (err == PM_OK && !present)
        err = s_free_to_bind(addr, why);
    if (err == PM_OK && !present) {
        char *entry = pm_asprintf("%s=%s " S_SERVICE, name, addr);
        char *argv[] = {"postconf", "-c",  (char *)config_dir,
                        "-M",       entry, NULL};
        pm_cmd_result_t res;
        int rc = pm_pf_run(argv, NULL, false, 0, &res);
        /* read back: postconf may warn about other lines and still write */
        if (rc != 0 || s_present(config_dir, name, &present, why) != PM_OK ||
            !present) {
            if (!*why)
                *why = pm_cmd_why("postconf -M (adding the notify listener)",
                                  &res);
            err = PM_EIO;
        }
        *added = err == PM_OK;
        pm_cmd_result_clear(&res);
        free(entry);
    }
    free(name);
    return err;
}
