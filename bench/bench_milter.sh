#!/usr/bin/env bash
# bench_milter.sh - messages/s and added latency of privmta-milter behind a
# real Postfix instance, against Postfix alone and (when the packages can be
# installed) Postfix + clamav-milter (clamd with the same signatures) +
# opendkim. Not a test: it prints figures.
#
# usage: bench/bench_milter.sh BUILD_DIR [MESSAGES]   (as root)
#        FAST=1 bench/bench_milter.sh ...: Postfix alone and privmta-milter only
#
# Load: bench/smtp_load (C, libcurl multi; its own CPU share is printed on
# each row) in LOAD_PROCS processes (2: one process waiting for a CPU held
# up every session it drove, see smtp_load.c), 10 concurrent persistent
# SMTP sessions in all, every
# message a different 50 KB MIME message (text + a random base64
# attachment), so no scanner's result cache flatters it. Postfix relays
# everything to an smtp-sink on 127.0.0.1. First with spam checks off,
# then on for both (one spamd with the shipped rules, local tests only:
# -L, no DNS); privmta-milter checks attachments (the 27-entry
# preset) and scans with libclamav (one custom signature).
#   throughput  = MESSAGES / (first connection .. queue empty at the sink)
#   latency     = wall time of one smtp-source session sending one
#                 message, sequentially (connect .. QUIT), p50 (and mean)
#                 of SEQ messages; compare the rows: the difference is
#                 what a filter adds.
#   CPU         = busy CPU time of the whole machine over the throughput
#                 run per message (Postfix, filters, client), and of the
#                 filter's own processes
set -uo pipefail

BUILD=${1:?usage: bench_milter.sh BUILD_DIR [MESSAGES]}
BUILD=$(cd "$BUILD" && pwd)
N=${2:-300}
SEQ=${SEQ:-60}
SRC=$(cd "$(dirname "$0")/.." && pwd)
PFN="$SRC/deploy/postfix-node.sh"
MILTER="$BUILD/scan/privmta-milter"
MKPOLICY="$BUILD/tests/scan/mkpolicy"
[ "$(id -u)" -eq 0 ] || { echo "run as root"; exit 2; }
for f in "$MILTER" "$MKPOLICY" "$BUILD/bench/smtp_load"; do
    [ -x "$f" ] || { echo "missing $f: build first"; exit 2; }
done

# Under /var/lib, not /tmp: opendkim refuses files below a world-writable
# directory.
W=$(mktemp -d /var/lib/privmta-bench.XXXXXX)
chmod 0755 "$W"
# libclamav's temporary files on tmpfs, as the packaged unit has them
# (/run/privmta-milter/tmp); TMP_DISK=1 puts them under $W (ext4 here).
SHM=$(mktemp -d /dev/shm/privmta-bench.XXXXXX)
chown nobody "$SHM"
MTMP="$SHM/tmp"
[ -n "${TMP_DISK:-}" ] && MTMP="$W/run/st/tmp"
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
    sleep 0.3
    for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null; done
    "$PFN" destroy "$W/node" >/dev/null 2>&1
    wait 2>/dev/null
    rm -rf "$W" "$SHM"
}
trap cleanup EXIT

port() {
    local p
    while :; do
        p=$((20000 + RANDOM % 30000))
        (exec 3<>/dev/tcp/127.0.0.1/$p) 2>/dev/null || { echo "$p"; return; }
    done
}
PORT=$(port)
SINK=$(port)
MPORT=$(port)

# --- messages -------------------------------------------------------------
echo "generating $N + $SEQ distinct 50 KB messages..."
mkdir -p "$W/msgs"
for i in $(seq 1 $((N + SEQ))); do
    {
        printf 'From: bench%d@remote.test\nTo: someone@remote.test\n' "$i"
        printf 'Subject: bench %d\nMIME-Version: 1.0\n' "$i"
        printf 'Content-Type: multipart/mixed; boundary="b%d"\n\n' "$i"
        printf -- '--b%d\nContent-Type: text/plain\n\nmessage %d %s\n' "$i" "$i" "$RANDOM$RANDOM"
        printf -- '--b%d\nContent-Type: application/octet-stream\n' "$i"
        printf 'Content-Disposition: attachment; filename="data%d.bin"\n' "$i"
        printf 'Content-Transfer-Encoding: base64\n\n'
        head -c 36000 /dev/urandom | base64 -w 76
        printf -- '--b%d--\n' "$i"
    } >"$W/msgs/$i.eml"
done

# --- the relay: smtp-sink, and a Postfix node relaying to it ---------------------
smtp-sink -u postfix -c "127.0.0.1:$SINK" 1000 >/dev/null 2>&1 &
PIDS+=($!)
ETC=$("$PFN" create "$W/node" 127.0.0.1 "$PORT" bench) || exit 1
postconf -c "$ETC" -e "relayhost = [127.0.0.1]:$SINK" \
    "smtp_bind_address = 127.0.0.1" "default_process_limit = 100" \
    "milter_default_action = tempfail" "smtp_destination_concurrency_limit = 20" \
    "default_destination_concurrency_limit = 20"
"$PFN" start "$W/node" >/dev/null || exit 1

queue_empty() {
    postqueue -c "$ETC" -p 2>/dev/null | grep -q "Mail queue is empty"
}

# busy and idle (+ iowait) ticks of the whole machine
machine_ticks() { awk '/^cpu /{print $2 + $3 + $4 + $7 + $8 + $9, $5 + $6}' /proc/stat; }
# user + system ticks of the processes PIDS
pid_ticks() {
    local t=0 p
    for p in "$@"; do t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0))); done
    echo "$t"
}
HZ=$(getconf CLK_TCK)

# timed FILE CMD...: CMD's wall time appended to FILE ("start end")
timed() {
    local file=$1 a=$EPOCHREALTIME
    shift
    "$@" >/dev/null 2>&1
    echo "$a $EPOCHREALTIME" >>"$file"
}
# p50_mean FILE: "P50 MEAN" in ms of the times timed wrote to FILE
p50_mean() {
    awk '{print ($2 - $1) * 1000}' "$1" | sort -n |
        awk '{v[NR] = $1; s += $1} END {printf "%.1f %.1f\n", v[int((NR + 1) / 2)], s / NR}'
}

# run LABEL KEY [PID...]: throughput and latency with the current
# smtpd_milters; CPU per message of the whole machine over the throughput
# run (everything: Postfix, the filters, the client) and of PIDS alone
run() {
    local label=$1 key=$2
    shift 2
    postfix -c "$ETC" reload >/dev/null 2>&1
    sleep 1
    # warm up (process pools, engines)
    for i in 1 2 3; do smtp-source -s 1 -m 1 -F "$W/msgs/1.eml" -f b@remote.test \
        -t someone@remote.test "127.0.0.1:$PORT" >/dev/null 2>&1; done
    local t0 t1 fails m0 m1 f0 f1
    read -r -a m0 < <(machine_ticks)
    f0=$(pid_ticks "$@")
    t0=$(date +%s%N)
    # 10 persistent sessions, every message different (bench/smtp_load)
    "$BUILD/bench/smtp_load" --procs "${LOAD_PROCS:-2}" 127.0.0.1 "$PORT" 10 \
        $(seq -f "$W/msgs/%g.eml" 1 "$N") >"$W/load.out" 2>&1
    sed -n 's/.*failed \([0-9]*\).*/\1/p' "$W/load.out" | grep -v '^0$' | sed 's/^/x/' >"$W/fails"
    while ! queue_empty; do sleep 0.05; done
    t1=$(date +%s%N)
    read -r -a m1 < <(machine_ticks)
    f1=$(pid_ticks "$@")
    fails=$(wc -l <"$W/fails")
    local busy idle cpu filt=""
    busy=$((m1[0] - m0[0]))
    idle=$((m1[1] - m0[1]))
    cpu=$(echo "scale=2; $busy * 1000 / $HZ / $N" | bc)
    [ $# -gt 0 ] && filt=$(echo "scale=2; ($f1 - $f0) * 1000 / $HZ / $N" | bc)
    local secs rate
    secs=$(echo "scale=3; ($t1 - $t0) / 1000000000" | bc)
    rate=$(echo "scale=1; $N / $secs" | bc)
    # the client's CPU over the run, in % of one core
    local client
    client=$(awk -v s="$secs" '{for (i = 1; i < NF; i++) if ($i == "cpu") printf "%.0f", 100 * $(i + 1) / s}' "$W/load.out")
    # sequential latency: each message alone, p50 and mean of SEQ
    local lat mean
    : >"$W/lat.all"
    for i in $(seq $((N + 1)) $((N + SEQ))); do
        timed "$W/lat.all" smtp-source -s 1 -m 1 -F "$W/msgs/$i.eml" \
            -f b@remote.test -t someone@remote.test "127.0.0.1:$PORT"
    done
    read -r lat mean < <(p50_mean "$W/lat.all")
    printf '%-44s %8s msgs/s  %7s ms/msg  (%d msgs in %ss, %d failed, client %s%% of a core)\n' \
        "$label" "$rate" "$lat" "$N" "$secs" "$fails" "${client:-?}"
    printf '%-44s latency p50 %s ms, mean %s ms (one message at a time)\n' "" "$lat" "$mean"
    printf '%-44s CPU %s ms/msg all%s, machine idle %s%%\n' "" "$cpu" \
        "${filt:+ (filter processes $filt)}" "$((100 * idle / (busy + idle + 1)))"
    echo "$lat" >"$W/lat.$key"
}

# --- privmta-milter -------------------------------------------------------------
NDB='PrivmtaBench.Marker:0:*:707269766d74612d62656e63682d6d61726b6572'
mkdir -p "$W/sigs" "$W/run"
chmod 0755 "$W/sigs" "$W/run"
cat >"$W/policy.yaml" <<EOF
inbound:
  blocked_extensions: ["@common"]
  notify_admin: false
  notify_recipient: false
antispam:
  enabled: false
antivirus:
  enabled: true
  custom_signatures:
    - name: bench.ndb
      content: |
        $NDB
EOF
"$MKPOLICY" "$W/handoff.pb" 1 "$W/policy.yaml" "$(getent group nogroup | cut -d: -f3)" || exit 1
start_privmta() { # SOCKET
    "$MILTER" --socket "$1" --policy-file "$W/handoff.pb" --sig-dir "$W/sigs" \
        --status-dir "$W/run/st" --temp-dir "$MTMP" --notify-smtp "127.0.0.1:1" \
        --user nobody --socket-group postfix --log-level warning >>"$W/milter.log" 2>&1 &
    PIDS+=($!)
    for _ in $(seq 1 100); do
        grep -q '"loaded": true' "$W/run/st/status.json" 2>/dev/null && break
        sleep 0.1
    done
    echo $! >"$W/milter.pid"
}

echo
printf '%-44s %15s %15s\n' "configuration" "throughput" "latency"
postconf -c "$ETC" -e "smtpd_milters ="
run "Postfix alone" base
start_privmta "unix:$W/run/milter.sock"
postconf -c "$ETC" -e "smtpd_milters = unix:$W/run/milter.sock"
run "Postfix + privmta-milter (unix socket)" unix "$(cat "$W/milter.pid")"
kill "$(cat "$W/milter.pid")"
sleep 0.5
start_privmta "inet:$MPORT@127.0.0.1"
postconf -c "$ETC" -e "smtpd_milters = inet:127.0.0.1:$MPORT"
run "Postfix + privmta-milter (TCP 127.0.0.1)" tcp "$(cat "$W/milter.pid")"
kill "$(cat "$W/milter.pid")"

# the latency each filter row adds to Postfix alone
summary() {
    echo
    local base k
    base=$(cat "$W/lat.base")
    for k in unix tcp peers spam spampeers; do
        [ -f "$W/lat.$k" ] || continue
        printf 'added latency (p50) %-6s %s ms/msg\n' "$k:" "$(echo "scale=1; $(cat "$W/lat.$k") - $base" | bc)"
    done
    # spam rows against Postfix alone plus spamd's own time
    [ -f "$W/lat.spamd" ] || return 0
    for k in spam spampeers; do
        [ -f "$W/lat.$k" ] || continue
        printf 'added over Postfix alone + spamd alone (p50) %-10s %s ms/msg\n' "$k:" \
            "$(echo "scale=1; $(cat "$W/lat.$k") - $base - $(cat "$W/lat.spamd")" | bc)"
    done
}
# FAST=1: these three rows only, for a quick before/after of a change
[ -n "${FAST:-}" ] && { summary; exit 0; }

# --- peers: clamav-milter + opendkim ------------------------------------------------
peers() {
    if ! command -v clamav-milter >/dev/null || ! command -v opendkim >/dev/null ||
        ! command -v clamd >/dev/null; then
        echo "installing clamav-daemon clamav-milter opendkim (peers)..."
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
            clamav-daemon clamav-milter opendkim >/dev/null 2>&1 || return 1
    fi
    mkdir -p "$W/clam/db" "$W/dkim"
    echo "$NDB" >"$W/clam/db/bench.ndb"
    chown -R clamav "$W/clam" 2>/dev/null
    cat >"$W/clam/clamd.conf" <<EOF
LocalSocket $W/clam/clamd.sock
FixStaleSocket true
DatabaseDirectory $W/clam/db
Foreground true
User clamav
LogFile $W/clam/clamd.log
EOF
    clamd -c "$W/clam/clamd.conf" >/dev/null 2>&1 &
    PIDS+=($!)
    local peer_pids=($!)
    for _ in $(seq 1 100); do [ -S "$W/clam/clamd.sock" ] && break; sleep 0.1; done
    [ -S "$W/clam/clamd.sock" ] || return 1
    cat >"$W/clam/clamav-milter.conf" <<EOF
MilterSocket inet:$((MPORT + 1))@127.0.0.1
ClamdSocket unix:$W/clam/clamd.sock
Foreground true
User clamav
OnInfected Reject
LogFile $W/clam/milter.log
EOF
    clamav-milter -c "$W/clam/clamav-milter.conf" >/dev/null 2>&1 &
    PIDS+=($!)
    peer_pids+=($!)
    chown opendkim "$W/dkim" 2>/dev/null
    cat >"$W/dkim/opendkim.conf" <<EOF
Socket inet:$((MPORT + 2))@127.0.0.1
Mode v
Background no
UserID opendkim
Syslog no
PidFile $W/dkim/opendkim.pid
EOF
    chmod 0644 "$W/dkim/opendkim.conf"
    opendkim -x "$W/dkim/opendkim.conf" >"$W/dkim/log" 2>&1 &
    PIDS+=($!)
    peer_pids+=($!)
    sleep 1
    postconf -c "$ETC" -e \
        "smtpd_milters = inet:127.0.0.1:$((MPORT + 1)) inet:127.0.0.1:$((MPORT + 2))"
    run "Postfix + clamav-milter/clamd + opendkim (TCP)" peers "${peer_pids[@]}"
}
peers || echo "Postfix + clamav-milter + opendkim: skipped (could not install or start them)"

# --- the same with spam checks on, for both ------------------------------------------
# spamd with SpamAssassin's shipped rules; the mail comes from 127.0.0.1,
# which both filters skip by default, so privmta scans outbound mail
# (antispam.scan_outbound) and spamass-milter ignores no network.
SPORT=$(port)
spamd --listen="127.0.0.1:$SPORT" -x -L --allowed-ips=127.0.0.1 --max-children=2 \
    -u nobody --syslog=stderr >"$W/spamd.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 1 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$SPORT") 2>/dev/null && break
    sleep 0.1
done
# spamd's own time for the latency messages, one at a time (spamc, p50):
# what the spam rows' latency has to be compared with
spamd_own() {
    command -v spamc >/dev/null ||
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
            spamc >/dev/null 2>&1 || return 1
    local i
    for i in $(seq 1 10); do # warm up: spamd's children compile rules lazily
        spamc -d 127.0.0.1 -p "$SPORT" -y <"$W/msgs/$i.eml" >/dev/null 2>&1
    done
    : >"$W/spamd.all"
    for i in $(seq $((N + 1)) $((N + SEQ))); do
        # SYMBOLS, the request privmta-milter makes
        timed "$W/spamd.all" spamc -d 127.0.0.1 -p "$SPORT" -y \
            <"$W/msgs/$i.eml"
    done
    p50_mean "$W/spamd.all" | cut -d' ' -f1 >"$W/lat.spamd"
    printf '%-44s %s ms p50 a message (spamc, one at a time)\n' "spamd alone" "$(cat "$W/lat.spamd")"
}
spamd_own || echo "spamd alone: not measured (spamc could not be installed)"
sed -e 's/^  enabled: false/  enabled: true\n  scan_outbound: true/' "$W/policy.yaml" >"$W/policy-spam.yaml"
"$MKPOLICY" "$W/handoff.pb" 2 "$W/policy-spam.yaml" "$(getent group nogroup | cut -d: -f3)" || exit 1
spam_privmta() {
    "$MILTER" --socket "unix:$W/run/milter.sock" --policy-file "$W/handoff.pb" \
        --sig-dir "$W/sigs" --status-dir "$W/run/st" --temp-dir "$MTMP" --notify-smtp "127.0.0.1:1" \
        --spamd "127.0.0.1:$SPORT" --user nobody --socket-group postfix \
        --log-level warning >>"$W/milter.log" 2>&1 &
    PIDS+=($!)
    echo $! >"$W/milter.pid"
    sleep 1.5
    postconf -c "$ETC" -e "smtpd_milters = unix:$W/run/milter.sock"
    run "Postfix + privmta-milter + spamd (unix)" spam "$(cat "$W/milter.pid")"
    kill "$(cat "$W/milter.pid")"
}
spam_peers() {
    command -v spamass-milter >/dev/null ||
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
            spamass-milter >/dev/null 2>&1 || return 1
    spamass-milter -p "inet:$((MPORT + 3))@127.0.0.1" -i 192.0.2.1 \
        -- -d 127.0.0.1 -p "$SPORT" >"$W/spamass.log" 2>&1 &
    PIDS+=($!)
    sleep 1
    postconf -c "$ETC" -e "smtpd_milters = inet:127.0.0.1:$((MPORT + 1)) inet:127.0.0.1:$((MPORT + 2)) inet:127.0.0.1:$((MPORT + 3))"
    run "Postfix + clamav-milter + opendkim + spamass-milter" spampeers
}
spam_privmta
spam_peers || echo "spamass-milter: skipped (could not install or start it)"

summary
