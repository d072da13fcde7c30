/* privmta-controller: owns the policy store and serves the ctl API. */
#include "pm_conf.h"
#include "pm_ctld.h"
#include "pm_keys.h"
#include "pm_log.h"
#include "pm_mem.h"
#include "pm_metrics.h"
#include "pm_store.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <string.h>

static pm_param_t s_params[] = {
    {"endpoint", "tcp://127.0.0.1:7420", "where privmta-ctl connects", NULL},
    {"agent_endpoint", "tcp://127.0.0.1:7421", "where agents connect", NULL},
    {"heartbeat_ms", "1000", "heartbeat period to and from agents", NULL},
    {"stale_after_ms", "5000", "silence before a node shows as stale", NULL},
    {"down_after_ms", "30000", "silence before a node shows as down", NULL},
    {"agent_hwm", "16",
     "messages queued for (and read ahead from) one agent connection; "
     "beyond that they are dropped and the agent resyncs",
     NULL},
    {"snapshot_gap_ms", "1000",
     "least time between two snapshots sent to one agent (HELLO/RESYNC "
     "inside the gap are answered when it ends)",
     NULL},
    {"state_dir", "/var/lib/privmta", "store, keys and allow-lists", NULL},
    {"store_max_mb", "1024",
     "the most the policy store (one LMDB map) may grow to, in MiB; it "
     "grows on demand",
     NULL},
    {"history_keep", "10000",
     "policy revisions kept (the newest), besides every revision a node "
     "still runs; 0 keeps all",
     NULL},
    {"log_level", "info", "debug, info, warning or error", NULL},
    {"syslog", "no", "also log to syslog (mail facility): yes or no", NULL},
    {"standby", "no",
     "yes: start as a standby that follows the primary among peers (the "
     "first start only: afterwards the store's role record decides, and "
     "--promote makes a standby primary)",
     NULL},
    {"peers", "",
     "the other controllers' ctl endpoints, comma separated (a standby "
     "follows the primary among them; a primary steps down when one of "
     "them was promoted past it); empty: a lone controller",
     NULL},
    {"follow_ms", "500", "how often a standby asks the primary for news", NULL},
    {"peer_timeout_ms", "3000", "the longest wait for one peer's answer", NULL},
    {"metrics_listen", "",
     "HOST:PORT to serve Prometheus metrics on (GET /metrics), e.g. "
     "127.0.0.1:9466; empty: off",
     NULL},
    {NULL, NULL, NULL, NULL},
};

/* `privmta-controller --promote`: a standby's role record becomes
 * primary at the next epoch. The running standby (another process, same
 * store) sees it within a tick; a stopped one starts as primary. */
static int
s_promote(pm_store_t *store, const char *dir)
{
    bool primary = false;
    uint64_t epoch = 0;
    int rc = pm_store_role_get(store, &primary, &epoch);
    if (rc == PM_OK && primary) {
        printf("%s is already primary (epoch %llu)\n", dir,
               (unsigned long long)epoch);
        return 0;
    }
    if (rc != PM_OK && rc != PM_ENOTFOUND)
        pm_fatal("cannot read the role record: %s", pm_strerror(rc));
    rc = pm_store_role_put(store, true, epoch + 1);
    if (rc != PM_OK)
        pm_fatal("cannot promote: %s", pm_strerror(rc));
    uint64_t head = 0;
    pm_store_head(store, &head);
    printf("promoted %s: primary at epoch %llu, head revision %llu; a "
           "privmta-controller running on it takes over within a second\n",
           dir, (unsigned long long)epoch + 1, (unsigned long long)head);
    return 0;
}

/* The first start writes the role record from `standby`; later starts
 * read it. Sets *standby and *epoch. */
static void
s_role(pm_store_t *store, bool *standby, uint64_t *epoch)
{
    bool primary = true;
    int rc = pm_store_role_get(store, &primary, epoch);
    if (rc == PM_ENOTFOUND) {
        primary = strcmp(pm_conf_get(s_params, "standby"), "yes") != 0;
        *epoch = primary ? 1 : 0;
        rc = pm_store_role_put(store, primary, *epoch);
    }
    if (rc != PM_OK)
        pm_fatal("the store's role record: %s", pm_strerror(rc));
    *standby = !primary;
}

static pm_store_t *
s_store_open(const char *dir)
{
    char *store_dir = pm_asprintf("%s/store", dir);
    pm_store_t *store = NULL;
    int rc = pm_store_open(store_dir, 0, 0, &store);
    if (rc != PM_OK)
        pm_fatal("cannot open the store in %s: %s", store_dir, pm_strerror(rc));
    free(store_dir);
    rc = pm_store_set_map_max(
        store, (size_t)pm_conf_int(s_params, "store_max_mb", 16, 1048576)
                   << 20);
    if (rc != PM_OK)
        pm_fatal("store size: %s", pm_strerror(rc));
    rc = pm_store_set_retention(
        store, (uint64_t)pm_conf_int(s_params, "history_keep", 0, 1000000000));
    if (rc != PM_OK)
        pm_fatal("store retention: %s", pm_strerror(rc));
    return store;
}

static pm_fleet_t *
s_fleet(pm_store_t *store, zcert_t *cert, const char *clients)
{
    pm_fleet_opts_t opts = {
        (int)pm_conf_int(s_params, "heartbeat_ms", 10, 3600000),
        (int)pm_conf_int(s_params, "stale_after_ms", 10, 3600000),
        (int)pm_conf_int(s_params, "down_after_ms", 10, 3600000),
        (int)pm_conf_int(s_params, "agent_hwm", 1, 100000),
        (int)pm_conf_int(s_params, "snapshot_gap_ms", 10, 3600000)};
    char *why = NULL;
    pm_fleet_t *fleet =
        pm_fleet_new(store, pm_conf_get(s_params, "agent_endpoint"), cert,
                     clients, &opts, &why);
    if (!fleet)
        pm_fatal("%s", why);
    return fleet;
}

int
main(int argc, char **argv)
{
    bool promote = pm_conf_main(
        s_params, argc, argv,
        "usage: privmta-controller [-c FILE] [--option VALUE]... [--promote]",
        "--promote");
    pm_conf_log_init(s_params, argv[0]);
    const char *dir = pm_conf_get(s_params, "state_dir");
    if (promote) {
        pm_store_t *store = s_store_open(dir);
        int rc = s_promote(store, dir);
        pm_store_close(&store);
        pm_conf_free(s_params);
        return rc;
    }
    /* one file descriptor per connected agent: take what we may */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    if (!pm_mem_map_large()) /* only a sanitizer's allocator refuses */
        pm_debug("mallopt: large blocks stay on the heap");
    zsys_set_max_sockets(0);
    zsys_init();
    zsys_set_logstream(NULL);
    char *why = NULL, *clients = pm_asprintf("%s/clients", dir);
    char *cert_file = pm_asprintf("%s/keys/controller.cert", dir);
    zcert_t *cert = pm_keys_controller(dir, &why); /* makes DIR too */
    if (!cert)
        pm_fatal("keys: %s", why);
    pm_store_t *store = s_store_open(dir);
    bool standby = false;
    uint64_t epoch = 0;
    s_role(store, &standby, &epoch);
    pm_ctld_peers_t peers = {
        pm_conf_get(s_params, "peers"), cert_file, cert_file,
        (int)pm_conf_int(s_params, "follow_ms", 10, 3600000),
        (int)pm_conf_int(s_params, "peer_timeout_ms", 10, 3600000)};
    if (standby && !*peers.peers)
        pm_fatal("this controller is a standby (epoch %llu) but peers is "
                 "empty: set peers to the primary's ctl endpoint, or "
                 "promote it with --promote",
                 (unsigned long long)epoch);
    if (!standby && pm_ctld_fence_check(&peers, epoch, &why) != 0)
        pm_fatal("%s", why);
    const char *endpoint = pm_conf_get(s_params, "endpoint");
    pm_ctld_t *ctld = pm_ctld_new(store, endpoint, cert, clients, &why);
    if (!ctld || pm_ctld_set_peers(ctld, &peers, &why) != 0)
        pm_fatal("%s", why);
    pm_metrics_server_t *metrics = NULL;
    const char *listen = pm_conf_get(s_params, "metrics_listen");
    if (*listen && !(metrics = pm_metrics_server_new(listen, &why)))
        pm_fatal("metrics_listen: %s", why);
    if (metrics)
        pm_info("metrics on http://%s/metrics", listen);
    pm_ctld_set_metrics(ctld, metrics);
    pm_fleet_t *fleet = NULL;
    int rc = PM_CTLD_PROMOTED;
    while (rc == PM_CTLD_PROMOTED) {
        uint64_t head = 0;
        pm_store_head(store, &head);
        if (pm_ctld_is_standby(ctld)) {
            pm_info("standby: serving pings on %s, following %s (head "
                    "revision %llu, epoch %llu)",
                    endpoint, peers.peers, (unsigned long long)head,
                    (unsigned long long)epoch);
        } else {
            fleet = s_fleet(store, cert, clients);
            pm_ctld_set_fleet(ctld, fleet);
            pm_info("serving admins on %s and agents on %s (head revision "
                    "%llu, keys allowed from %s)",
                    endpoint, pm_conf_get(s_params, "agent_endpoint"),
                    (unsigned long long)head, clients);
        }
        rc = pm_ctld_run(ctld);
    }
    pm_info("stopping");
    pm_metrics_server_destroy(&metrics);
    pm_fleet_destroy(&fleet);
    pm_ctld_destroy(&ctld);
    pm_store_close(&store);
    zcert_destroy(&cert);
    free(cert_file);
    free(clients);
    pm_conf_free(s_params);
    return rc == PM_CTLD_FENCED ? 1 : 0;
}
