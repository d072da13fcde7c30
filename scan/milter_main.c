/* privmta-milter: the node's content filter (libmilter). Holds no
 * control-plane key; reads the policy the agent hands over (pm_handoff.h)
 * and nothing else of the agent's; runs unprivileged once its socket is
 * open, and reads nothing before that. See scan/pm_milter.h for what it
 * does and for the Postfix settings it needs. */
#include "pm_conf.h"
#include "pm_declog.h"
#include "pm_file.h"
#include "pm_handoff.h"
#include "pm_log.h"
#include "pm_mem.h"
#include "pm_milter.h"
#include "pm_milter_smfi.h"
#include "pm_milter_wake.h"
#include "pm_priv.h"
#include "pm_sandbox.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <locale.h>
#include <libmilter/mfapi.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#define S_STR_(x) #x
#define S_STR(x) S_STR_(x)

static pm_param_t s_params[] = {
    {"socket", "unix:/run/privmta-milter/milter.sock",
     "unix:PATH or inet:PORT@ADDRESS (libmilter syntax)", NULL},
    {"socket_group", "postfix", "group allowed to use the unix socket", NULL},
    {"policy_file", PM_HANDOFF_DIR "/" PM_HANDOFF_POLICY,
     "the applied revision, as the agent hands it over", NULL},
    {"store_dir", "",
     "obsolete (the milter no longer opens the agent's store): ignored", NULL},
    {"node", "",
     "this node's name: per-node overrides, and every log line is tagged "
     "privmta-milter/NODE",
     NULL},
    {"sig_dir", "/var/lib/clamav", "ClamAV signature databases", NULL},
    {"dkim_key_dir", PM_HANDOFF_DIR "/" PM_HANDOFF_DKIM,
     "DKIM private keys (KEYDIR/<key>), as the agent writes them", NULL},
    {"dkim_query_file", "", "DKIM keys from this file, not DNS (tests)", NULL},
    {"spamd", "127.0.0.1:783", "spamd address: host:port or /socket", NULL},
    {"spamd_timeout_ms", "15000",
     "longest spamd check (waiting for a connection included) before "
     "tempfail",
     NULL},
    {"spamd_max_conns", "5",
     "spamd requests at once (spamd's default --max-children)", NULL},
    {"spamd_max_bytes", "512000",
     "larger messages are not scored (X-Privmta-Antispam says so)", NULL},
    {"max_scans", "8", "messages scanned at once; the others wait", NULL},
    {"av_max_recursion", "17", "libclamav: nesting levels looked into", NULL},
    {"av_max_files", "10000", "libclamav: files looked at per message", NULL},
    {"av_max_filesize", "104857600", "libclamav: largest file looked at", NULL},
    {"av_max_scansize", "419430400", "libclamav: bytes looked at per message",
     NULL},
    {"av_max_scantime_ms", "120000", "libclamav: longest scan (then 451 4.3.0)",
     NULL},
    {"scan_wait_ms", "60000",
     "longest wait for a scan slot before 451 4.3.2 (busy)", NULL},
    {"notify_smtp", "127.0.0.1:10026",
     "Postfix listener without milters, for notifications, when the agent "
     "names none (its notify_listener, handed over beside policy_file, "
     "comes first)",
     NULL},
    {"notify_from", "", "From: of notifications (default postmaster)", NULL},
    {"status_dir", "/run/privmta-milter", "where status.json is written", NULL},
    {"temp_dir", "",
     "libclamav's temporary files: the MIME parts and archive members it "
     "extracts while scanning (empty: STATUS_DIR/tmp, on tmpfs under the "
     "packaged unit). Made by the milter's user, mode 0700. On a disk file "
     "system every part costs a file create, write and unlink (+8 ms a "
     "message measured on ext4 with discard); on tmpfs it costs memory: up "
     "to max_scans messages' extracted content at once",
     NULL},
    {"decision_log_records", S_STR(PM_DECLOG_RECORDS_DEFAULT),
     "decisions kept in status_dir/decisions.jsonl and decisions.1.jsonl "
     "for privmta-ctl why, both files together: time, queue id, "
     "Message-ID, envelope sender and recipients, verdict, reply, "
     "deciding policy key and reason, policy revision; addresses only, "
     "never a body, a Subject or another header. Readable by root and the "
     "milter's group. 0 turns the log off (and why finds nothing)",
     NULL},
    {"decision_log_bytes_mb", "64",
     "MiB the decision log keeps at most, both files together (1 to 64, "
     "the most privmta-agent reads): when the current file holds half of "
     "this (or half of decision_log_records), it replaces the previous "
     "one",
     NULL},
    {"decision_log_days", S_STR(PM_DECLOG_DAYS_DEFAULT),
     "days the decision log keeps a record, about (1 to 3650): the current "
     "file is also replaced once its first record is half that old",
     NULL},
    {"poll_ms", "100", "how often the store head is checked", NULL},
    {"sig_poll_ms", "5000", "how often sig_dir is checked for changes", NULL},
    {"sig_jitter_ms", "60000",
     "a change in sig_dir is loaded after a random delay up to this, so "
     "that the nodes of a cluster do not all compile new databases at once",
     NULL},
    {"status_ms", "1000", "how often status.json is rewritten", NULL},
    {"max_message_bytes", "52428800", "largest message scanned (else 4xx)",
     NULL},
    {"milter_timeout", "300", "libmilter I/O timeout, seconds", NULL},
    {"user", "nobody", "run as this user when started as root", NULL},
    {"log_level", "info", "debug, info, warning or error", NULL},
    {"syslog", "no", "also log to syslog (mail facility): yes or no", NULL},
    {NULL, NULL, NULL, NULL},
};

/* The largest TCP segment the milter's listener announces. Postfix grows
 * the buffer of a TCP stream to twice the segment size when the segment is
 * larger than half its 4 KiB buffer (vstream_tweak_tcp). Over loopback
 * (MSS 32741 on a 64 KiB MTU) that is a 64 KiB buffer, which each Postfix
 * process that talks to the milter allocates and fills (Postfix's
 * mymalloc) for every message: bench_milter measured 2.5 ms of CPU a
 * message, most of it in cleanup. 8192 keeps the buffer at 16 KiB;
 * Ethernet's 1460 is below it and unchanged. */
#define S_TCP_MSS 8192

/* libmilter keeps its listening socket to itself, and an accepted socket
 * inherits the listener's options, so they are set there:
 * - TCP_NODELAY: replies made of several milter packets (header changes +
 *   the final answer) go out at once instead of waiting for a delayed ACK
 *   (~40 ms each);
 * - TCP_MAXSEG: S_TCP_MSS, announced in the SYN-ACK. */
static void
s_tune_listeners(void)
{
    for (int fd = 0; fd < 1024; fd++) {
        int acc = 0, one = 1, mss = S_TCP_MSS;
        socklen_t len = sizeof acc;
        struct sockaddr_storage ss;
        socklen_t slen = sizeof ss;
        if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &acc, &len) != 0 ||
            !acc || getsockname(fd, (struct sockaddr *)&ss, &slen) != 0)
            continue;
        if (ss.ss_family != AF_INET && ss.ss_family != AF_INET6)
            continue;
        if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) != 0 ||
            setsockopt(fd, IPPROTO_TCP, TCP_MAXSEG, &mss, sizeof mss) != 0)
            pm_warn("milter socket: TCP option not set: %s", strerror(errno));
    }
}

/* The path of CONN (libmilter syntax) when it is a unix socket, else
 * NULL. */
static const char *
s_unix_path(const char *conn)
{
    if (strncmp(conn, "unix:", 5) == 0 || strncmp(conn, "local:", 6) == 0)
        return strchr(conn, ':') + 1;
    return conn[0] == '/' ? conn : NULL;
}

static void
s_open_socket(void)
{
    const char *conn = pm_conf_get(s_params, "socket");
    if (smfi_setconn((char *)conn) != MI_SUCCESS ||
        smfi_settimeout((int)pm_conf_int(s_params, "milter_timeout", 1,
                                         86400)) != MI_SUCCESS)
        pm_fatal("bad socket '%s'", conn);
    const char *path = s_unix_path(conn);
    mode_t old = umask(0117); /* socket 0660 */
    if (smfi_opensocket(true) != MI_SUCCESS)
        pm_fatal("cannot open the milter socket %s", conn);
    umask(old);
    s_tune_listeners();
    if (path && geteuid() == 0) {
        /* the socket's directory may be the milter user's (status_dir's
         * default is the same /run/privmta-milter): a link put there in
         * place of the socket is not followed */
        struct group *gr = getgrnam(pm_conf_get(s_params, "socket_group"));
        if (!gr || fchownat(AT_FDCWD, path, (uid_t)-1, gr->gr_gid,
                            AT_SYMLINK_NOFOLLOW) != 0)
            pm_warn("socket %s: group %s not set", path,
                    pm_conf_get(s_params, "socket_group"));
    }
}

/* Makes STATUS (when missing) and gives it to UID:GID, never through a
 * link: the milter's user could have put one there in a previous run, and
 * root would give it whatever it points to. Warns when it cannot. */
static void
s_give_status_dir(const char *status, uid_t uid, gid_t gid, const char *user)
{
    if (mkdir(status, 0755) != 0 && errno != EEXIST) {
        pm_warn("status dir %s: %s", status, strerror(errno));
        return;
    }
    int fd = open(status, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0 || fchown(fd, uid, gid) != 0)
        pm_warn("status dir %s: cannot give it to %s: %s", status, user,
                strerror(errno));
    if (fd >= 0)
        close(fd);
}

/* Drops root for good (pm_priv_drop). The status dir is made and given
 * to the user first. */
static void
s_drop_privileges(void)
{
    const char *status = pm_conf_get(s_params, "status_dir");
    if (geteuid() != 0) {
        if (*status)
            mkdir(status, 0755);
        return;
    }
    const char *user = pm_conf_get(s_params, "user");
    uid_t uid;
    gid_t gid;
    char *why = NULL;
    if (pm_priv_lookup(user, &uid, &gid, &why) != PM_OK)
        pm_fatal("%s", why);
    if (*status)
        s_give_status_dir(status, uid, gid, user);
    if (pm_priv_drop(user, &why) != PM_OK)
        pm_fatal("%s", why);
}

/* temp_dir as configured, or STATUS_DIR/tmp; "" leaves libclamav's
 * default ($TMPDIR or /tmp). */
static char *
s_temp_dir(void)
{
    const char *dir = pm_conf_get(s_params, "temp_dir");
    const char *status = pm_conf_get(s_params, "status_dir");
    if (*dir || !*status)
        return pm_strdup(dir);
    return pm_asprintf("%s/tmp", status);
}

/* Makes DIR as the milter's (unprivileged) user, or takes the one there
 * when it is a real directory of ours, and empties it: libclamav writes
 * the parts of hostile mail there, so nobody else may read them or plant
 * links, and what a crashed milter left (on tmpfs: memory) goes. */
static void
s_make_temp_dir(const char *dir)
{
    char *why = NULL;
    if (!*dir)
        return;
    if (pm_file_mkdir(dir, 0700, (gid_t)-1, &why) != PM_OK)
        pm_fatal("temp_dir %s: refusing to put mail there: %s", dir, why);
    if (pm_file_remove_tree(dir, true, &why) != PM_OK) {
        pm_warn("temp_dir %s: leftovers not removed: %s", dir, why);
        free(why);
    }
}

/* Content beyond these is never "clean" (pm_av.h): 554 or 451. */
static pm_av_limits_t
s_av_limits(void)
{
    return (pm_av_limits_t){
        .max_recursion =
            (uint32_t)pm_conf_int(s_params, "av_max_recursion", 2, 1000),
        .max_files =
            (uint32_t)pm_conf_int(s_params, "av_max_files", 1, 10000000),
        .max_filesize =
            (uint64_t)pm_conf_int(s_params, "av_max_filesize", 1024, 1L << 32),
        .max_scansize =
            (uint64_t)pm_conf_int(s_params, "av_max_scansize", 1024, 1L << 34),
        .max_scantime_ms =
            (uint32_t)pm_conf_int(s_params, "av_max_scantime_ms", 10, 3600000),
    };
}

static pm_milter_t *
s_start(const char *temp_dir)
{
    pm_milter_opts_t o = {
        .policy_file = pm_conf_get(s_params, "policy_file"),
        .node = pm_conf_get(s_params, "node"),
        .sig_dir = pm_conf_get(s_params, "sig_dir"),
        .key_dir = pm_conf_get(s_params, "dkim_key_dir"),
        .spamd = pm_conf_get(s_params, "spamd"),
        .spamd_timeout_ms =
            (int)pm_conf_int(s_params, "spamd_timeout_ms", 10, 600000),
        .dkim_query_file = pm_conf_get(s_params, "dkim_query_file"),
        .status_dir = pm_conf_get(s_params, "status_dir"),
        .notify_smtp = pm_conf_get(s_params, "notify_smtp"),
        .notify_from = pm_conf_get(s_params, "notify_from"),
        .poll_ms = (int)pm_conf_int(s_params, "poll_ms", 10, 60000),
        .sig_poll_ms = (int)pm_conf_int(s_params, "sig_poll_ms", 100, 3600000),
        .sig_jitter_ms =
            (int)pm_conf_int(s_params, "sig_jitter_ms", 0, 3600000),
        .status_ms = (int)pm_conf_int(s_params, "status_ms", 100, 3600000),
        .max_bytes =
            (size_t)pm_conf_int(s_params, "max_message_bytes", 1024, 1L << 31),
        .max_scans = (int)pm_conf_int(s_params, "max_scans", 1, 1024),
        .scan_wait_ms = (int)pm_conf_int(s_params, "scan_wait_ms", 1, 3600000),
        .spamd_max_conns =
            (int)pm_conf_int(s_params, "spamd_max_conns", 1, 1024),
        .spamd_max_bytes =
            (size_t)pm_conf_int(s_params, "spamd_max_bytes", 1024, 1L << 31),
        .av_limits = s_av_limits(),
        .temp_dir = temp_dir,
        .decision_log_records =
            (size_t)pm_conf_int(s_params, "decision_log_records", 0, 100000000),
        .decision_log_bytes =
            (size_t)pm_conf_int(s_params, "decision_log_bytes_mb", 1, 64) << 20,
        .decision_log_days =
            (int)pm_conf_int(s_params, "decision_log_days", 1, 3650),
    };
    char *why = NULL;
    if (*pm_conf_get(s_params, "store_dir"))
        pm_warn("store_dir is obsolete and ignored: the policy is read from "
                "%s (policy_file)",
                o.policy_file);
    pm_milter_t *m = pm_milter_new(&o, &why);
    if (!m)
        pm_fatal("%s", why);
    return m;
}

int
main(int argc, char **argv)
{
    pm_conf_main(s_params, argc, argv,
                 "usage: privmta-milter [-c FILE] [--option VALUE]...", NULL);
    pm_conf_log_init(s_params, argv[0]);
    pm_log_set_node(pm_conf_get(s_params, "node"));
    /* measured with bench/bench_scan, a 50 KB message: the attachment
     * check 1.3-1.9 ms before, 0.17 ms after */
    if (!pm_mem_keep_heap()) /* only a sanitizer's allocator refuses */
        pm_debug("mallopt refused: glibc's heap defaults stay");
    /* libarchive converts an archive's names to the locale's charset and
     * gives none it cannot: in the C locale every name outside ASCII (a
     * zip's UTF-8 names, all of 7z's) would fail the archive (pm_archive.h).
     * Character types only: messages and numbers stay as in C. */
    if (!setlocale(LC_CTYPE, "C.UTF-8"))
        pm_warn("no C.UTF-8 locale: archives holding names outside ASCII "
                "will be refused as unreadable");
    /* libmilter's own thread takes SIGTERM, SIGINT and SIGHUP with
     * sigwait() and makes smfi_main return; every thread started before
     * it (ours) must have them blocked too, or one of ours gets the signal
     * and the default action kills the process without cleanup. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    char *why = NULL;
    /* hostile mail is parsed later: a filter taken over starts no process
     * (one that outlives it: the policy test stops its filter by process
     * group), runs no set-user-id program, touches no other process; the
     * network stays (spamd, DNS, notices over SMTP). Nothing of it is
     * needed before either (dropping root signals only its own threads).
     * First, while there is one thread: the filter goes on it through
     * prctl(2), which systemd's @system-service filter allows where the
     * seccomp(2) call that would reach threads already started is not.
     * Under the packaged unit systemd filters too; a filter root starts
     * (the policy test's) has only this. */
    if (pm_sandbox_no_spawn(PM_SANDBOX_NETWORK, &why) != PM_OK)
        pm_fatal("%s", why);
    char *temp_dir = s_temp_dir();
    pm_milter_t *milter = s_start(temp_dir);
    bool unix_socket = s_unix_path(pm_conf_get(s_params, "socket")) != NULL;
    if (pm_milter_smfi_register(milter, unix_socket) != PM_OK)
        pm_fatal("libmilter refused the filter description");
    s_open_socket();
    s_drop_privileges();
    s_make_temp_dir(temp_dir);
    PM_FREE(&temp_dir);
    if (pm_milter_start(milter) != PM_OK)
        pm_fatal("cannot start the milter's threads");
    pm_info("listening on %s", pm_conf_get(s_params, "socket"));
    if (pm_milter_wake_start(pthread_self(), &why) != PM_OK) {
        pm_warn("%s: a stop may take up to 5 s", why);
        free(why);
    }
    int rc = smfi_main();
    pm_milter_wake_stop();
    pm_info("stopping");
    pm_milter_destroy(&milter);
    pm_conf_free(s_params);
    return rc == MI_SUCCESS ? 0 : 1;
}
