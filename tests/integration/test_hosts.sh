#!/usr/bin/env bash
# Separate hosts, for real: the controller and three nodes (real Postfix
# and an agent each) live in network namespaces of their own, each with
# its own address on one bridge (veth pairs), as hosts on one LAN: no
# process can take a loopback shortcut. Then:
#   - partition: mx3's link goes down for 30 s while 20 revisions are
#     pushed. mx3 keeps enforcing its last revision and accepting mail,
#     `nodes` shows it stale then down; healed, it converges to the head
#     (the time it took is printed for the README). Meanwhile the mirror
#     (in the controller's namespace) publishes version 6 of ClamAV's
#     test database (five CDIFFs): mx1 and mx2 get it, one from the mirror
#     and the other by gossip; healed, mx3 gets it from them.
#   - kill -9 loop: a client pushes revisions one after another and
#     records every one the controller acknowledged, while the controller
#     is killed at random moments and restarted, until 1000 pushes were
#     acknowledged (PM_TEST_PUSHES). Then every acknowledged revision is in
#     the history with the digest it was acknowledged with, and the agents
#     converge to the head.
#   - slow and lossy link: mx3's link holds every frame 200 ms each way
#     (this kernel has no sch_netem: its veth pair is replaced by two TAP
#     devices joined by linkdelay.c), loses 5 % of the packets each way
#     (nftables numgen) and is throttled to 1 Mbit/s (tbf) while revisions
#     are pushed with --wait: each push reaches every node, and a --wait
#     that says so is true. The delay stays for the kill -9 loop.
source "$(dirname "$0")/lib.sh" "$@"

[ "$(id -u)" -eq 0 ] || skip "needs root (namespaces, Postfix)"
for tool in postfix swaks jq ip nft tc python3; do
    command -v "$tool" >/dev/null || skip "$tool not installed"
done
AGENT="$BUILD/nodeagent/privmta-agent"
NODE="$SRC/deploy/postfix-node.sh"
DB="$SRC/tests/data/clamav"
# the kill -9 loop: pushes until this many were acknowledged, the
# controller killed at a random moment within 3 s of each restart
PUSHES=${PM_TEST_PUSHES:-1000}
# names unique to this run (interface names: 15 characters at most)
P="pm$$"
NET=10.213.0
CTL_ADDR=$NET.1
NODES=(mx1 mx2 mx3)
declare -A ADDR=([mx1]=$NET.11 [mx2]=$NET.12 [mx3]=$NET.13) APID
STATE="$WORK/controller"
export PRIVMTA_STATE_DIR="$STATE" PRIVMTA_CONTROLLER="tcp://$CTL_ADDR:7420"
export PRIVMTA_CTL_CONFIG=/dev/null

in_ns() { local ns=$1; shift; ip netns exec "$P$ns" "$@"; }
ctl() { in_ns c "$CTL" "$@"; }

teardown_hosts() {
    for n in "${NODES[@]}"; do in_ns "$n" bash "$NODE" stop "$WORK/$n" >/dev/null 2>&1; done
    for ns in c "${NODES[@]}"; do ip netns del "$P$ns" 2>/dev/null; done
    ip link del "${P}br" 2>/dev/null
}
trap 'teardown_hosts; cleanup' EXIT
on_kill "for n in ${NODES[*]}; do ip netns exec $P\$n bash '$NODE' stop '$WORK/'\$n; done;" \
    "for ns in c ${NODES[*]}; do ip netns del $P\$ns; done; ip link del ${P}br"

# host NS ADDR: a namespace with lo and one veth on the bridge
host() {
    local ns=$1 addr=$2
    ip netns add "$P$ns" &&
        in_ns "$ns" ip link set lo up &&
        ip link add "${P}${ns}h" type veth peer name "${P}${ns}n" &&
        ip link set "${P}${ns}n" netns "$P$ns" &&
        ip link set "${P}${ns}h" master "${P}br" &&
        ip link set "${P}${ns}h" up &&
        in_ns "$ns" ip addr add "$addr/24" dev "${P}${ns}n" &&
        in_ns "$ns" ip link set "${P}${ns}n" up
}
ip link add "${P}br" type bridge && ip link set "${P}br" up ||
    skip "cannot make a bridge here"
host c "$CTL_ADDR" || skip "cannot make network namespaces here"
for n in "${NODES[@]}"; do host "$n" "${ADDR[$n]}" || skip "namespace for $n"; done

controller_up() {
    # ip netns exec execs the program: the PID is the controller's
    daemon_bg controller "$WORK/controller.log" ip netns exec "${P}c" \
        "$CONTROLLER" --state-dir "$STATE" --endpoint "tcp://$CTL_ADDR:7420" \
        --agent-endpoint "tcp://$CTL_ADDR:7421" --heartbeat-ms 500 \
        --stale-after-ms 2000 --down-after-ms 8000
    CONTROLLER_PID=$DAEMON_PID
    wait_for 20 ctl --timeout 0.3 policy history --limit 1 >/dev/null 2>&1
}
agent_cmd() { # NAME
    echo "$AGENT" --name "$1" --state-dir "$WORK/$1/agent" --postfix-dir "$WORK/$1/etc" \
        --controller "tcp://$CTL_ADDR:7421" --controller-key "$STATE/keys/controller.cert" \
        --address "${ADDR[$1]}:2525" --heartbeat-ms 500 --dead-after-ms 2000 \
        --sig-dir "$WORK/$1/sigs" --peer-bind "tcp://${ADDR[$1]}:7422" \
        --gossip-ms 200 --cdiff-min-kib 0
}
# a ClamAV-style mirror on the controller's host, with ClamAV's own signed
# test database at version 1
WWW="$WORK/www"
mkdir -p "$WWW" && cp "$DB/test-1.cvd" "$WWW/test.cvd"
touch "$WORK/access.log"
# (ip netns exec execs python: $! is the mirror's PID, killed at the end)
ip netns exec "${P}c" python3 "$DB/mirror.py" "$WWW" "$WORK/mirror.port" "$WORK/access.log" 8080 "$CTL_ADDR" \
    >"$WORK/mirror.out" 2>&1 &
track "$!"
check "the mirror listens on $CTL_ADDR" wait_for 10 test -s "$WORK/mirror.port"
# held NODE: the version of "test" the node holds, as nodes --json says
held() { ctl nodes --json | jq -r ".[] | select(.name == \"$1\") | .databases[]? | select(.name == \"test\") | .version"; }
held_is() { [ "$(held "$1")" = "$2" ]; }
downloads() { grep -c "^GET /$1 200 " "$WORK/access.log"; }
check "the controller starts in its namespace" controller_up
for n in "${NODES[@]}"; do
    in_ns "$n" bash "$NODE" create "$WORK/$n" "${ADDR[$n]}" 2525 "$n" >/dev/null &&
        in_ns "$n" bash "$NODE" start "$WORK/$n" >/dev/null || { fail "postfix $n"; finish; exit 1; }
    ctl node add "$n" "$(in_ns "$n" $(agent_cmd "$n") --public-key)" >/dev/null || fail "enrol $n"
    daemon_bg "agent $n" "$WORK/$n.log" ip netns exec "$P$n" $(agent_cmd "$n")
    APID[$n]=$DAEMON_PID
done
cat >"$WORK/base.yaml" <<YAML
inbound.checks: {helo_valid: false, sender_domain: false}
outbound.mynetworks: [$NET.0/24]
antivirus:
  mirrors: ["http://$CTL_ADDR:8080"]
  databases: [test]
  update_frequency: 5s
YAML
expect_exit 0 "a policy reaches the three hosts" ctl policy push "$WORK/base.yaml" --wait=$(waits 20)
check "no loopback shortcut: from mx1, nothing listens on 127.0.0.1:7421" \
    in_ns mx1 bash -c "! exec 3<>/dev/tcp/127.0.0.1/7421" 2>/dev/null

# node_field NAME JQ: one node's field in `nodes --json`
node_field() { ctl nodes --json | jq -r ".[] | select(.name == \"$1\") | $2"; }
node_is() { [ "$(node_field "$1" "$2")" = "$3" ]; }
relayhost() { postconf -c "$WORK/$1/etc" -h relayhost; }
head_rev() { ctl policy history --limit 1 --json | jq -r '.[0].revision'; }
send() { # NODE: mail to the node's own postmaster, from its own host
    in_ns "$1" swaks --server "${ADDR[$1]}:2525" --from "a@remote.example" \
        --to "postmaster@$1.test" --timeout 10 >"$WORK/swaks.$1" 2>&1
}

for n in "${NODES[@]}"; do
    check "$n holds test version 1" wait_for 30 held_is "$n" 1
done

# ---- partition ----------------------------------------------------------------
BEFORE=$(node_field mx3 .applied_rev)
RELAY_BEFORE=$(relayhost mx3)
ip link set "${P}mx3h" down
t_cut=$SECONDS
check "nodes shows mx3 stale once cut off" wait_for 3 node_is mx3 .liveness stale
for v in 2 3 4 5 6; do cp "$DB/test-$v.cdiff" "$WWW/"; done
cp "$DB/test-6.cvd" "$WWW/test.cvd.tmp" && mv "$WWW/test.cvd.tmp" "$WWW/test.cvd"
mail_ok=0 mail_tries=0 pushed=0
for i in $(seq 1 20); do
    ctl policy set "outbound.relay_host=[relay$i.example]:25" -m "partition $i" >/dev/null && pushed=$((pushed + 1))
    if [ $((i % 4)) -eq 0 ]; then
        mail_tries=$((mail_tries + 1))
        send mx3 && mail_ok=$((mail_ok + 1))
    fi
    sleep 0.5
done
check "20 revisions pushed while mx3 is cut off ($pushed)" test "$pushed" -eq 20
check "then down" wait_for 30 node_is mx3 .liveness down
both_hold() { held_is mx1 "$1" && held_is mx2 "$1"; }
check "mx1 and mx2, which still see each other, hold test version 6" wait_for 30 both_hold 6
cdiffs_once() { for v in 2 3 4 5 6; do [ "$(downloads "test-$v.cdiff")" -eq 1 ] || return 1; done; }
check "the mirror served each CDIFF once (the other node got them by gossip)" cdiffs_once
while [ $((SECONDS - t_cut)) -lt 30 ]; do
    mail_tries=$((mail_tries + 1))
    send mx3 && mail_ok=$((mail_ok + 1))
    sleep 2
done
check "mx3 accepted mail the whole time ($mail_ok of $mail_tries)" test "$mail_ok" -eq "$mail_tries"
check "mx3 still enforces its last revision ($BEFORE)" test "$(relayhost mx3)" = "$RELAY_BEFORE"
HEAD=$(head_rev)
others_at() { [ "$(node_field mx1 .applied_rev) $(node_field mx2 .applied_rev)" = "$1 $1" ]; }
# under load an apply takes seconds: they get there, mx3 still cut off
check "mx1 and mx2 reach the head, $HEAD" wait_for 20 others_at "$HEAD"
ip link set "${P}mx3h" up
t_heal=$(date +%s%N)
at_head() { [ "$(relayhost mx3)" = "[relay20.example]:25" ]; }
check "healed, mx3 enforces the head" wait_for 60 at_head
t_conv=$(date +%s%N)
check "and says so to the controller" wait_for 10 node_is mx3 .applied_rev "$HEAD"
check "healed, mx3 gets test version 6 too" wait_for 30 held_is mx3 6
served_once() { [ "$(grep -c ' 200 ' "$WORK/access.log")" -eq 6 ] || { grep ' 200 ' "$WORK/access.log" >&2; false; }; }
check "the mirror served no file again for it" served_once
echo "# partition healed -> mx3's Postfix at the head: $(((t_conv - t_heal) / 1000000)) ms"

# ---- slow and lossy link ------------------------------------------------------------
# slow_wire: mx3's veth pair replaced by a 200 ms wire (linkdelay), with the
# veth's MAC (the controller's neighbour entry stays right) and address:
# mx3's connections carry on over it
slow_wire() {
    local mac
    mac=$(in_ns mx3 cat "/sys/class/net/${P}mx3n/address") || return 1
    "$BUILD/tests/integration/linkdelay" 200 "${P}mx3w" "${P}mx3x" "$WORK/wire.ready" \
        2>"$WORK/wire.log" &
    track "$!"
    wait_for 10 test -s "$WORK/wire.ready" &&
        ip link del "${P}mx3h" &&
        ip link set "${P}mx3x" netns "${P}mx3" &&
        in_ns mx3 ip link set "${P}mx3x" address "$mac" &&
        in_ns mx3 ip addr add "${ADDR[mx3]}/24" dev "${P}mx3x" &&
        in_ns mx3 ip link set "${P}mx3x" up &&
        ip link set "${P}mx3w" master "${P}br" &&
        ip link set "${P}mx3w" up
}
# 5 % loss each way on mx3's side
lossy() {
    in_ns mx3 nft -f - <<'NFT'
table inet pmloss {
    chain in { type filter hook input priority 0; numgen random mod 100 < 5 drop; }
    chain out { type filter hook output priority 0; numgen random mod 100 < 5 drop; }
}
NFT
}
# connect_ms: how long a TCP connection from mx3 to the mirror takes to open
connect_ms() {
    local t0=$(date +%s%N)
    in_ns mx3 bash -c "exec 3<>/dev/tcp/$CTL_ADDR/8080" 2>/dev/null || return 1
    echo $((($(date +%s%N) - t0) / 1000000))
}
check "mx3's veth replaced by a wire of 200 ms each way" slow_wire
rtt=$(connect_ms)
check "a connection from mx3 takes a round trip of the wire (${rtt:-no} ms, >= 400)" \
    test "${rtt:-0}" -ge 400
slow="rate 1mbit burst 16kb latency 400ms"
if lossy && in_ns mx3 tc qdisc add dev "${P}mx3x" root tbf $slow &&
    tc qdisc add dev "${P}mx3w" root tbf $slow; then
    pass "mx3's link loses 5 % each way and is throttled to 1 Mbit/s"
    ok=0 honest=0
    t_lossy=$SECONDS
    for i in $(seq 1 10); do
        if ctl policy set "antispam.subject_prefix=[lossy$i]" -m "lossy $i" \
            --wait=$(waits 20) >"$WORK/lossy.out" 2>&1; then
            ok=$((ok + 1))
            rev=$(sed -n 's/^revision \([0-9]*\) committed.*/\1/p' "$WORK/lossy.out")
            # what --wait said, checked against every node's own report
            [ -n "$rev" ] && [ "$(ctl nodes --json | jq "[.[] | .applied_rev >= $rev] | all")" = true ] &&
                honest=$((honest + 1))
        fi
    done
    check "every push with --wait reached every node ($ok of 10)" test "$ok" -eq 10
    check "and every node's own report agrees ($honest of 10)" test "$honest" -eq 10
    echo "# 10 pushes with --wait over the slow, lossy link: $((SECONDS - t_lossy)) s"
    in_ns mx3 nft delete table inet pmloss
    in_ns mx3 tc qdisc del dev "${P}mx3x" root
    tc qdisc del dev "${P}mx3w" root
else
    fail "mx3's link made lossy and slow (nft, tc tbf)"
fi

# ---- kill -9 loop -----------------------------------------------------------------
# push_one I: one revision; prints "REV DIGEST12" when the controller
# acknowledged it ("revision N committed (digest D)"). The push in flight
# when the controller dies waits out the timeout: 1 s (a push takes
# 40-160 ms here); one slower than that only goes unrecorded.
push_one() {
    ctl --timeout 1 policy set "antispam.subject_prefix=[k$1]" -m "kill loop $1" 2>/dev/null |
        sed -n 's/^revision \([0-9]*\) committed (digest \([0-9a-f]*\))$/\1 \2/p'
}
: >"$WORK/acked"
kills=0
t_kills=$SECONDS
while [ "$(wc -l <"$WORK/acked")" -lt "$PUSHES" ] && [ "$kills" -lt 1000 ]; do
    # the kill comes at a random moment among this round's pushes; the
    # pushes stop at the first one not acknowledged (the controller is gone)
    (sleep "$((RANDOM % 3)).$((RANDOM % 10))"; kill -9 "$CONTROLLER_PID") &
    killer=$!
    k=$((kills + 1))
    for j in $(seq 1 1000); do
        ack=$(push_one "$k-$j")
        [ -n "$ack" ] || break
        echo "$ack" >>"$WORK/acked"
    done
    wait "$killer"
    kills=$k
    kill_daemon "$CONTROLLER_PID"
    controller_up || { fail "the controller restarts after kill $k"; break; }
done
echo "# kill -9 loop: $(wc -l <"$WORK/acked") pushes acknowledged across $kills kills in $((SECONDS - t_kills)) s"
# the whole history, 1000 at a time (the most one answer carries)
before=$(($(head_rev) + 1))
: >"$WORK/history.pages"
while [ "$before" -gt 1 ] &&
    page=$(ctl policy history --limit 1000 --before "$before" --json) &&
    [ "$(jq length <<<"$page")" -gt 0 ]; do
    echo "$page" >>"$WORK/history.pages"
    before=$(jq 'map(.revision) | min' <<<"$page")
done
jq -s add "$WORK/history.pages" >"$WORK/history.json"
lost=$(jq -r --slurpfile h "$WORK/history.json" -R -s '
    split("\n") | map(select(length > 0) | split(" ")) |
    map(. as [$n, $d] | select(($h[0] | map(select(.revision == ($n | tonumber) and
        (.digest | startswith($d)))) | length) != 1)) |
    length' "$WORK/acked")
check "every acknowledged revision is in the history with its digest ($(wc -l <"$WORK/acked") acknowledged, $kills kills, $lost missing)" \
    test "$lost" = 0 -a "$(wc -l <"$WORK/acked")" -ge "$PUSHES"
HEAD=$(head_rev)
converged() {
    [ "$(ctl nodes --json | jq "[.[] | .applied_rev == $HEAD] | all")" = true ]
}
check "the agents converge to the head ($HEAD)" wait_for 30 converged
finish
