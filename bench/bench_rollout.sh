#!/usr/bin/env bash
# bench_rollout.sh - restarting Postfix and the milter on all three nodes of
# the demo cluster under continuous SMTP load: privmta's rolling restart
# side by side, in the same run, with the way it is done by hand today (the
# seed page: "restart the MTA" after a change; node by node, no drain).
# Not a test: it prints figures.
#
# usage: bench/bench_rollout.sh                 (as root)
#   CLIENTS=4          SMTP clients sending the whole time, through all nodes
#   PM_BUILD_DIR=build a release build (made here when missing; never ASan)
#   KEEP=DIR           keep the cluster's folder (logs, mailboxes) in DIR
#
# Each method runs with the load started 3 s before and stopped 3 s after;
# tests/integration/smtp_account.py counts every session:
#   250      accepted; "lost" are those not delivered 60 s after the load
#   4xx      told to come back later (a drain's 421 4.3.2)
#   5xx      refused for good: must be 0
#   cut      the session ended without a reply after the greeting (e.g.
#            mid-DATA): the client does not know whether the message went
#   no listener  connection refused or reset before any greeting
# and "out" is the longest a node was out of rotation: by hand, from
# `postfix stop` to its first 220; privmta, from the order to the gate
# passed (settling_since - started, `rollout status --json`).
#
# By hand, per node: postfix stop; deploy/cluster.sh milter NODE (the
# milter restart privmta's agents run too); postfix start; wait for 220.
# privmta: privmta-ctl restart --rolling --service all --min-healthy 2s
# --wait (drain, restart, gate on each node in turn, 2 s healthy each).
set -euo pipefail
cd "$(dirname "$0")/.."
TOP=$PWD
BUILD=${PM_BUILD_DIR:-$TOP/build}
CLIENTS=${CLIENTS:-4}
[ "$(id -u)" -eq 0 ] || { echo "bench_rollout: run as root" >&2; exit 2; }
for port in 7420 7421 7783 7784; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
        echo "bench_rollout: port $port is taken (a demo cluster running?)" >&2
        exit 2
    fi
done
[ -f "$BUILD/CMakeCache.txt" ] ||
    cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$BUILD" -j"$(nproc)" >/dev/null
WORK=$(mktemp -d /tmp/privmta-bench-rollout.XXXXXX)
chmod 0755 "$WORK"
export PRIVMTA_CLUSTER_DIR="$WORK/cluster" PM_BUILD_DIR="$BUILD" PM_CLUSTER_NO_BUILD=1
export PRIVMTA_STATE_DIR="$WORK/cluster/controller" PRIVMTA_CONTROLLER=tcp://127.0.0.1:7420
export PRIVMTA_CTL_CONFIG=/dev/null
CTL="$BUILD/controller/privmta-ctl"
finish() {
    bash deploy/cluster.sh down >/dev/null 2>&1 || true
    if [ -n "${KEEP:-}" ]; then
        rm -rf "$KEEP" && mv "$WORK" "$KEEP" && echo "kept in $KEEP"
    else
        rm -rf "$WORK"
    fi
}
trap finish EXIT
bash deploy/cluster.sh up >"$WORK/up.log" 2>&1 || { tail -20 "$WORK/up.log"; exit 1; }
NODES=(mx1 mx2 mx3)
SERVERS=()
for i in 1 2 3; do SERVERS+=("127.0.0.1$i:2525=mx$i.test"); done

now_ms() { echo $(($(date +%s%N) / 1000000)); }
greets() { # ADDR: a 220 within 1 s
    python3 - "$1" <<'PY'
import socket, sys
try:
    s = socket.create_connection((sys.argv[1], 2525), timeout=1)
    sys.exit(0 if s.recv(4).startswith(b"220") else 1)
except OSError:
    sys.exit(1)
PY
}

# by hand: one node after the other; prints the longest time out
by_hand() {
    local worst=0 i t0 out
    for i in 1 2 3; do
        t0=$(now_ms)
        postfix -c "$WORK/cluster/mx$i/etc" stop >/dev/null 2>&1
        bash deploy/cluster.sh milter "mx$i" >/dev/null
        postfix -c "$WORK/cluster/mx$i/etc" start >"$WORK/start.log" 2>&1 ||
            { echo "by hand: mx$i did not start:" >&2; cat "$WORK/start.log" >&2; }
        local end=$((SECONDS + 60))
        until greets "127.0.0.1$i"; do
            [ "$SECONDS" -lt "$end" ] || { echo "by hand: mx$i does not greet" >&2; break; }
            sleep 0.05
        done
        out=$(($(now_ms) - t0))
        [ "$out" -gt "$worst" ] && worst=$out
    done
    echo "$worst" >"$WORK/out_ms"
}

rolling() {
    "$CTL" restart --rolling --service all --min-healthy 2s --wait=600 >/dev/null
    "$CTL" rollout status --json |
        jq '[.nodes[] | .settling_since - .started] | max' >"$WORK/out_ms"
}

delivered_all() { # DIR: every accepted id is in a mailbox
    cat "$WORK"/cluster/mx*/mail/* 2>/dev/null |
        sed -n 's/^Subject: \(load-[0-9]*-[0-9]*\)$/\1/p' | sort -u >"$1/delivered"
    sort -u "$1/accepted" >"$1/accepted.sorted"
    comm -23 "$1/accepted.sorted" "$1/delivered" >"$1/lost"
    [ ! -s "$1/lost" ]
}

# measure LABEL FUNCTION: one line of figures
measure() {
    local dir="$WORK/$2" t0 t1
    mkdir -p "$dir"
    SMTP_LOAD_CLIENTS=$CLIENTS python3 tests/integration/smtp_account.py \
        "$dir" "$dir/stop" "${SERVERS[@]}" &
    local load=$!
    sleep 3
    t0=$(now_ms)
    "$2"
    t1=$(now_ms)
    sleep 3
    touch "$dir/stop"
    wait "$load"
    for _ in $(seq 1 600); do delivered_all "$dir" && break; sleep 0.1; done
    jq -r --arg name "$1" --arg wall "$(((t1 - t0) / 100))" \
        --arg out "$(cat "$WORK/out_ms")" --arg lost "$(wc -l <"$dir/lost")" \
        '.counts | "\($name)|\($wall | tonumber / 10)|\(.accepted)|\(.tempfail)|\(.permfail)|\(.dropped)|\(.refused)|\($lost)|\($out | tonumber / 1000)"' \
        "$dir/summary.json"
}

{
    echo "method|wall s|250|4xx|5xx|cut|no listener|lost|out s (max)"
    measure "by hand (stop, milter, start)" by_hand
    measure "privmta restart --rolling" rolling
} | column -t -s '|'
echo "($CLIENTS clients through 3 nodes; each method under load from 3 s before to 3 s after)"
