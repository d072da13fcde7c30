#!/usr/bin/env bash
# Separate hosts, for real: the controller and three nodes (real Postfix
# and an agent each) live in network namespaces of their own, each with
# its own address on one bridge (veth pairs), as hosts on one LAN: no
# process can take a loopback shortcut. Then:
#   - partition: mx3's link goes down for 30 s while 20 revisions are
#     pushed. mx3 keeps enforcing its last revision and accepting mail,
#     `nodes` shows it stale then down; healed, it converges to the head
#     (the time it took is printed for the README).
#   - kill -9 loop: a client pushes revisions one after another and
#     records every one the controller acknowledged, while the controller
#     is killed at random moments and restarted. After each restart every
#     acknowledged revision is in the history with the digest it was
#     acknowledged with, and the agents converge to the head.
# Slow and lossy links (netem) are not tested here: this machine's kernel
# has no sch_netem.
source "$(dirname "$0")/lib.sh" "$@"

[ "$(id -u)" -eq 0 ] || skip "needs root (namespaces, Postfix)"
for tool in postfix swaks jq ip; do
    command -v "$tool" >/dev/null || skip "$tool not installed"
done
AGENT="$BUILD/nodeagent/privmta-agent"
NODE="$SRC/deploy/postfix-node.sh"
KILLS=${PM_TEST_KILLS:-10} # controller kills in the loop, each within 5 s
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
        --address "${ADDR[$1]}:2525" --heartbeat-ms 500 --dead-after-ms 2000
}
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

# ---- partition ----------------------------------------------------------------
BEFORE=$(node_field mx3 .applied_rev)
RELAY_BEFORE=$(relayhost mx3)
ip link set "${P}mx3h" down
t_cut=$SECONDS
check "nodes shows mx3 stale once cut off" wait_for 3 node_is mx3 .liveness stale
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
echo "# partition healed -> mx3's Postfix at the head: $(((t_conv - t_heal) / 1000000)) ms"

# ---- kill -9 loop -----------------------------------------------------------------
# push_one I: one revision; prints "REV DIGEST12" when the controller
# acknowledged it ("revision N committed (digest D)")
push_one() {
    ctl --timeout 2 policy set "antispam.subject_prefix=[k$1]" -m "kill loop $1" 2>/dev/null |
        sed -n 's/^revision \([0-9]*\) committed (digest \([0-9a-f]*\))$/\1 \2/p'
}
: >"$WORK/acked"
for k in $(seq 1 "$KILLS"); do
    # the kill comes at a random moment among this round's pushes; the
    # pushes stop at the first one not acknowledged (the controller is gone)
    (sleep "$((RANDOM % 5)).$((RANDOM % 10))"; kill -9 "$CONTROLLER_PID") &
    killer=$!
    for j in $(seq 1 1000); do
        ack=$(push_one "$k-$j")
        [ -n "$ack" ] || break
        echo "$ack" >>"$WORK/acked"
    done
    wait "$killer"
    kill_daemon "$CONTROLLER_PID"
    controller_up || { fail "the controller restarts after kill $k"; break; }
done
ctl policy history --limit 1000 --json >"$WORK/history.json"
lost=$(jq -r --slurpfile h "$WORK/history.json" -R -s '
    split("\n") | map(select(length > 0) | split(" ")) |
    map(. as [$n, $d] | select(($h[0] | map(select(.revision == ($n | tonumber) and
        (.digest | startswith($d)))) | length) != 1)) |
    length' "$WORK/acked")
check "every acknowledged revision is in the history with its digest ($(wc -l <"$WORK/acked") acknowledged, $KILLS kills, $lost missing)" \
    test "$lost" = 0
HEAD=$(head_rev)
converged() {
    [ "$(ctl nodes --json | jq "[.[] | .applied_rev == $HEAD] | all")" = true ]
}
check "the agents converge to the head ($HEAD)" wait_for 30 converged
finish
