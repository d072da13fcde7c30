#!/usr/bin/env bash
# postfix-node.sh - one isolated Postfix instance per directory, side by side.
#
# Usage:
#   postfix-node.sh create  DIR ADDRESS PORT [NAME]
#   postfix-node.sh start   DIR
#   postfix-node.sh stop    DIR
#   postfix-node.sh status  DIR      exit 0 when running, 1 when not
#   postfix-node.sh destroy DIR      stop, then remove DIR
#
# create makes DIR a complete Postfix instance (see ENVIRONMENT.md) and
# prints its configuration directory, DIR/etc:
#   DIR/etc/main.cf, master.cf   configuration directory (postfix -c DIR/etc);
#                                only root-owned files, so `postfix check`
#                                stays quiet
#   DIR/etc/aliases              texthash alias map: postmaster, abuse -> root
#   DIR/queue                    queue_directory
#   DIR/data                     data_directory (owned by postfix)
#   DIR/maillog                  maillog_file (postlog service, no syslog)
#   DIR/mail/USER                local mailboxes (mail_spool_directory;
#                                mail to root lands in DIR/mail/nobody)
# The other commands accept DIR or DIR/etc.
# The only SMTP listener is a master.cf service named ADDRESS:PORT (smtpd);
# inet_interfaces = ADDRESS, inet_protocols = ipv4 (ipv6 when ADDRESS
# contains ':'), chroot off everywhere, no DNS (smtp_dns_support_level =
# disabled, smtpd_peername_lookup = no), myhostname NAME.test, mydestination
# NAME.test + localhost (delivered to DIR/mail), relay_domains empty.
# NAME defaults to the last component of DIR.
#
# Every command is idempotent: create on an existing instance rewrites its
# configuration (stop it first if it runs), start on a running instance and
# stop/destroy on a stopped or missing one succeed. Run as root. Errors go to
# stderr with the failing step; the exit code is non-zero.
set -euo pipefail

PROG=${0##*/}

die() {
    echo "$PROG: $*" >&2
    exit 1
}

usage() {
    sed -n '3,9p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

# The configuration directory of instance DIR (DIR/etc, or DIR itself).
conf_of() {
    if [[ -f "$1/etc/main.cf" ]]; then
        echo "$1/etc"
    elif [[ -f "$1/main.cf" ]]; then
        echo "$1"
    fi
}

need_dir() {
    [[ -n "$(conf_of "$1")" ]] || die "$1: no Postfix instance here (no main.cf)"
}

# The instance's master runs: its pid file names a live process (not a
# zombie nobody reaped) called master. What `postfix status` checks, but
# `postfix status` also refuses a main.cf with a bad value, and then such
# an instance was never stopped.
is_running() {
    local queue pid stat
    queue=$(postconf -c "$1" -h queue_directory 2>/dev/null) || return 1
    pid=$(head -1 "$queue/pid/master.pid" 2>/dev/null | tr -d ' ')
    [[ -n "$pid" ]] && stat=$(cat "/proc/$pid/stat" 2>/dev/null) &&
        [[ "$stat" == *"(master) "[!ZX]* ]]
}

cmd_create() {
    local dir=$1 addr=$2 port=$3 name=${4:-}
    [[ $EUID -eq 0 ]] || die "create: must run as root"
    [[ -n "$dir" && -n "$addr" && -n "$port" ]] || usage
    [[ "$port" =~ ^[0-9]+$ ]] && ((port > 0 && port < 65536)) ||
        die "create: port '$port' is not a number 1-65535"
    id postfix >/dev/null 2>&1 || die "create: no 'postfix' user (install postfix)"
    command -v postconf >/dev/null || die "create: postconf not found"
    mkdir -p "$dir" || die "create: cannot make $dir"
    dir=$(cd "$dir" && pwd)
    [[ -n "$name" ]] || name=$(basename "$dir" | tr -c 'A-Za-z0-9.\n-' '-')
    local etc=$dir/etc
    if [[ -f "$etc/main.cf" ]] && is_running "$etc"; then
        die "create: $dir is running; stop it first"
    fi
    local proto=ipv4 listen=$addr ifaces=$addr
    if [[ "$addr" == *:* ]]; then
        proto=ipv6
        listen="[$addr]"
    fi
    # Postfix wants inet_interfaces to be addresses of an interface; other
    # loopback addresses (127.0.0.2...) still accept connections on Linux,
    # so listen through the master.cf service name and let proxy_interfaces
    # tell Postfix the address is its own.
    if ! ip -o addr show 2>/dev/null | grep -qE "inet6? ${addr//./\\.}/"; then
        ifaces=loopback-only
    fi
    # local(8) delivers as nobody: the tree must be traversable.
    chmod 0755 "$dir"
    mkdir -p "$etc" "$dir/queue" "$dir/data" "$dir/mail"
    chown postfix "$dir/data"
    # postlogd (root) appends to the maillog; postsuper, run by `postfix
    # start` as the mail owner before postlogd is up, writes its warnings
    # there itself: a message cut mid-receipt by a hard stop leaves a file
    # postsuper warns about, and a maillog it cannot open makes the start
    # fail ("Postfix integrity check failed").
    touch "$dir/maillog"
    chown postfix "$dir/maillog"
    chmod 0700 "$dir/data"
    chmod 1777 "$dir/mail"
    : >"$etc/main.cf"
    cp /etc/postfix/master.cf.proto "$etc/master.cf" 2>/dev/null ||
        cp /usr/share/postfix/master.cf.dist "$etc/master.cf" ||
        die "create: no master.cf template found"
    printf 'postmaster root\nabuse root\n' >"$etc/aliases"
    postconf -c "$etc" -e \
        "queue_directory = $dir/queue" \
        "data_directory = $dir/data" \
        "maillog_file = $dir/maillog" \
        "maillog_file_prefixes = /var, /dev/stdout, $dir" \
        "mail_owner = postfix" \
        "setgid_group = postdrop" \
        "compatibility_level = 3.6" \
        "inet_interfaces = $ifaces" \
        "proxy_interfaces = $addr" \
        "inet_protocols = $proto" \
        "myhostname = $name.test" \
        "mydomain = $name.test" \
        "myorigin = \$myhostname" \
        "mydestination = \$myhostname, localhost" \
        "relay_domains =" \
        "mynetworks = 127.0.0.0/8 [::1]/128" \
        "smtp_dns_support_level = disabled" \
        "smtpd_peername_lookup = no" \
        "alias_maps = texthash:$etc/aliases" \
        "alias_database =" \
        "mail_spool_directory = $dir/mail" \
        "home_mailbox =" \
        "mailbox_command =" \
        "biff = no" \
        "smtp_bind_address = $( [[ $proto == ipv4 ]] && echo "$addr" )" \
        "smtpd_banner = \$myhostname ESMTP" \
        "maximal_backoff_time = 10s" \
        "minimal_backoff_time = 5s" \
        "queue_run_delay = 5s" ||
        die "create: postconf -e failed"
    # One SMTP listener, ADDRESS:PORT; no chroot; no port 25.
    postconf -c "$etc" -MX smtp/inet
    postconf -c "$etc" -M "$listen:$port/inet=$listen:$port inet n - n - - smtpd" ||
        die "create: cannot add the $listen:$port service"
    postconf -c "$etc" -F '*/*/chroot = n' || die "create: postconf -F failed"
    postconf -c "$etc" -M "postlog/unix-dgram=postlog unix-dgram n - n - 1 postlogd"
    # postfix(1) reports on stderr only to a terminal; its log is the
    # maillog, which only exists once postlogd runs: show it via script(1).
    if ! postfix -c "$etc" check >/dev/null 2>&1; then
        script -qc "postfix -c '$etc' check" /dev/null >&2 || true
        die "create: postfix -c $etc check failed"
    fi
    echo "$etc"
}

cmd_start() {
    need_dir "$1"
    local dir
    dir=$(conf_of "$1")
    if is_running "$dir"; then
        return 0
    fi
    local out
    out=$(postfix -c "$dir" start 2>&1) || die "start: postfix -c $dir start: $out"
    # master takes a moment to write its pid file and bind the listener.
    for _ in $(seq 1 50); do
        is_running "$dir" && return 0
        sleep 0.1
    done
    die "start: $dir did not come up; see $(postconf -c "$dir" -h maillog_file)"
}

cmd_stop() {
    local dir
    dir=$(conf_of "$1")
    [[ -n "$dir" ]] || return 0
    is_running "$dir" || return 0
    postfix -c "$dir" stop >/dev/null 2>&1 || true
    for _ in $(seq 1 50); do
        is_running "$dir" || return 0
        sleep 0.1
    done
    # Last resort: the master pid of this instance only.
    local pid
    pid=$(head -1 "$(postconf -c "$dir" -h queue_directory)/pid/master.pid" \
        2>/dev/null | tr -d ' ') || true
    [[ -n "$pid" ]] && kill -9 "$pid" 2>/dev/null || true
    sleep 0.2
    is_running "$dir" && die "stop: $dir is still running"
    return 0
}

cmd_status() {
    need_dir "$1"
    local dir
    dir=$(conf_of "$1")
    if is_running "$dir"; then
        echo "$dir: running"
        return 0
    fi
    echo "$dir: stopped"
    return 1
}

cmd_destroy() {
    local dir=$1
    [[ -e "$dir" ]] || return 0
    [[ "$(basename "$dir")" == etc && -f "$dir/main.cf" ]] && dir=$(dirname "$dir")
    cmd_stop "$dir"
    rm -rf -- "$dir" || die "destroy: cannot remove $dir"
}

[[ $# -ge 2 ]] || usage
cmd=$1
shift
case "$cmd" in
create) [[ $# -ge 3 && $# -le 4 ]] || usage; cmd_create "$@" ;;
start) cmd_start "$1" ;;
stop) cmd_stop "$1" ;;
status) cmd_status "$1" ;;
destroy) cmd_destroy "$1" ;;
*) usage ;;
esac
