/* privmta-web: the admin console, a client of the controller's ctl API
 * with its own enrolled key (role web), serving the page over HTTPS. It
 * never opens the controller's store. */
#include "pm_conf.h"
#include "pm_error.h"
#include "pm_file.h"
#include "pm_ctl_client.h"
#include "pm_keys.h"
#include "pm_log.h"
#include "pm_mem.h"
#include "pm_web_api.h"
#include "pm_web_http.h"
#include "pm_web_tls.h"

#include <czmq.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static pm_param_t s_params[] = {
    {"listen", "127.0.0.1:7443", "HOST:PORT to serve HTTPS on", NULL},
    {"controller", "tcp://127.0.0.1:7420",
     "the controller's ctl endpoint, or a list of them (a primary and its "
     "standbys)",
     NULL},
    {"server_key", "/var/lib/privmta/keys/controller.cert",
     "the controller's public key file", NULL},
    {"state_dir", "/var/lib/privmta-web",
     "this console's key (NAME.cert, NAME.cert_secret) and certificate", NULL},
    {"name", "web",
     "this console's key name: revisions made here show \"NAME (user)\" as "
     "their author",
     NULL},
    {"enroll_dir", "",
     "on the controller's host: its clients/ directory, where the first "
     "start enrols this console's key (web-NAME.cert); empty: copy "
     "STATE_DIR/NAME.cert there yourself",
     NULL},
    {"users", "/etc/privmta/web-users",
     "the users file (privmta-ctl web user add|remove|passwd)", NULL},
    {"tls_cert", "",
     "certificate (PEM); empty: STATE_DIR/tls.crt, self-signed on first "
     "start",
     NULL},
    {"tls_key", "", "its key (PEM); empty: STATE_DIR/tls.key", NULL},
    {"hostname", "",
     "the name in a self-signed certificate (empty: this "
     "host's name)",
     NULL},
    {"timeout", "5", "seconds to wait for the controller", NULL},
    {"log_level", "info", "debug, info, warning or error", NULL},
    {"syslog", "no", "also log to syslog (mail facility): yes or no", NULL},
    {NULL, NULL, NULL, NULL},
};

/* The console's CURVE key, made (and enrolled, with enroll_dir) on first
 * start. Returns its secret file's path. */
static char *
s_key(const char *dir, const char *name)
{
    char *why = NULL, *path = pm_asprintf("%s/%s.cert_secret", dir, name);
    const char *enroll = pm_conf_get(s_params, "enroll_dir");
    if (access(path, F_OK) != 0) {
        if (pm_keys_create(dir, name, PM_ROLE_WEB, *enroll ? enroll : NULL,
                           &why) != 0)
            pm_fatal("key: %s", why);
        if (*enroll)
            pm_info("key made and enrolled as %s/web-%s.cert", enroll, name);
        else
            pm_info("key made: enrol it by copying %s/%s.cert into the "
                    "controller's clients/ directory as web-%s.cert",
                    dir, name, name);
    }
    return path;
}

static pm_web_http_t *
s_server(pm_web_api_t *api, const char *dir)
{
    const char *cert = pm_conf_get(s_params, "tls_cert");
    const char *key = pm_conf_get(s_params, "tls_key");
    char *cert_path = *cert ? pm_strdup(cert) : pm_asprintf("%s/tls.crt", dir);
    char *key_path = *key ? pm_strdup(key) : pm_asprintf("%s/tls.key", dir);
    char host[256] = "localhost", *why = NULL, *cert_pem = NULL,
         *key_pem = NULL;
    if (*pm_conf_get(s_params, "hostname"))
        snprintf(host, sizeof host, "%s", pm_conf_get(s_params, "hostname"));
    else
        gethostname(host, sizeof host - 1);
    if (pm_web_tls_load(cert_path, key_path, host, &cert_pem, &key_pem, &why) !=
        PM_OK)
        pm_fatal("%s", why);
    const char *listen = pm_conf_get(s_params, "listen");
    pm_web_http_t *http = pm_web_http_new(listen, api, cert_pem, key_pem, &why);
    if (!http)
        pm_fatal("%s", why);
    pm_info("serving https://%s/ (certificate %s)", listen, cert_path);
    memset(key_pem, 0, strlen(key_pem));
    free(key_pem);
    free(cert_pem);
    free(cert_path);
    free(key_path);
    return http;
}

int
main(int argc, char **argv)
{
    pm_conf_main(s_params, argc, argv,
                 "usage: privmta-web [-c FILE] [--option value]...\n"
                 "The web console: the policy page over HTTPS, a client of "
                 "the controller.",
                 NULL);
    pm_conf_log_init(s_params, "privmta-web");
    /* SIGINT and SIGTERM are taken by sigwait below, in no other thread */
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop, NULL);
    zsys_handler_set(NULL);
    zsys_init();
    zsys_set_logstream(NULL);
    const char *dir = pm_conf_get(s_params, "state_dir");
    char *why = NULL;
    if (pm_file_mkdir(dir, 0700, (gid_t)-1, &why) != PM_OK)
        pm_fatal("state_dir: %s", why);
    char *key = s_key(dir, pm_conf_get(s_params, "name"));
    pm_ctl_client_t *client = pm_ctl_client_new(
        pm_conf_get(s_params, "controller"), key,
        pm_conf_get(s_params, "server_key"),
        (int)pm_conf_int(s_params, "timeout", 1, 600) * 1000, &why);
    if (!client)
        pm_fatal("%s", why);
    pm_web_api_t *api = pm_web_api_new(client, pm_conf_get(s_params, "users"));
    pm_web_http_t *http = s_server(api, dir);
    int sig = 0;
    sigwait(&stop, &sig);
    pm_info("stopping (%s)", sig == SIGINT ? "SIGINT" : "SIGTERM");
    pm_web_http_destroy(&http);
    pm_web_api_destroy(&api);
    free(key);
    pm_conf_free(s_params);
    return 0;
}
