#!/usr/bin/env bash
# End-to-end: a primary controller and a standby that follows it, three
# agents on real Postfix that know both. The primary is killed, the standby
# promoted; the next push reaches every node through it, and the old
# primary, restarted, refuses to act as primary.
source "$(dirname "$0")/lib.sh" "$@"

AGENT="$BUILD/nodeagent/privmta-agent"
NODE="$SRC/deploy/postfix-node.sh"
A="$WORK/a" B="$WORK/b"
PA=$(free_port) PB=$(free_port) AA=$(free_port) AB=$(free_port)
SMTP=$(free_port)
CTLS="tcp://127.0.0.1:$PA, tcp://127.0.0.1:$PB"
export PRIVMTA_STATE_DIR="$A" PRIVMTA_CONTROLLER="$CTLS"
export PRIVMTA_CTL_CONFIG=/dev/null
NODES=(mx1 mx2 mx3)
declare -A ADDR=([mx1]=127.0.0.41 [mx2]=127.0.0.42 [mx3]=127.0.0.43)

cleanup_nodes() {
    for n in "${NODES[@]}"; do bash "$NODE" stop "$WORK/$n" >/dev/null 2>&1; done
}
trap 'cleanup_nodes; cleanup' EXIT

controller_cmd() { # STATE ENDPOINT-PORT AGENT-PORT PEER-PORT [options]
    local state=$1 p=$2 ap=$3 peer=$4
    shift 4
    echo "$CONTROLLER" --state-dir "$state" --endpoint "tcp://127.0.0.1:$p" \
        --agent-endpoint "tcp://127.0.0.1:$ap" --peers "tcp://127.0.0.1:$peer" \
        --heartbeat-ms 200 --stale-after-ms 1000 --down-after-ms 3000 \
        --follow-ms 200 --peer-timeout-ms 1000 "$@"
}
ping_of() { "$CTL" --timeout 1 --controller "tcp://127.0.0.1:$1" ping --json 2>/dev/null; }
field_of() { ping_of "$1" | jq -r ".$2"; }
head_is() { [ "$(field_of "$1" head)" = "$2" ]; }
role_is() { [ "$(ping_of "$1" | jq -r '.role + " " + (.epoch | tostring)')" = "$2" ]; }
applied_everywhere() { # REV
    "$CTL" nodes --json >"$WORK/nodes.json" 2>/dev/null &&
        jq -e --argjson r "$1" 'length == 3 and all(.applied_rev >= $r)' \
            "$WORK/nodes.json" >/dev/null
}
rev_of_push() { sed -n 's/^revision \([0-9]*\) committed.*/\1/p' "$WORK/out"; }
send() { # NODE HELO
    swaks --server "${ADDR[$1]}:$SMTP" --helo "$2" --from "postmaster@$1.test" \
        --to "postmaster@$1.test" --timeout 15 >"$WORK/swaks.out" 2>&1
}

# ---- the primary, and a standby holding a copy of its keypair ---------------
daemon_bg controller-a "$WORK/a.log" $(controller_cmd "$A" "$PA" "$AA" "$PB")
APID=$DAEMON_PID
check "the primary answers" wait_for 10 head_is "$PA" 0
mkdir -p -m 700 "$B/keys"
cp -p "$A/keys/controller.cert" "$A/keys/controller.cert_secret" "$B/keys/"
daemon_bg controller-b "$WORK/b.log" $(controller_cmd "$B" "$PB" "$AB" "$PA" --standby yes)
check "the standby answers as a standby" wait_for 10 role_is "$PB" "standby 1"
check "the primary says it is primary at epoch 1" role_is "$PA" "primary 1"

# ---- nodes that know both controllers ------------------------------------------
for n in "${NODES[@]}"; do
    if ! bash "$NODE" create "$WORK/$n" "${ADDR[$n]}" "$SMTP" "$n" >/dev/null ||
        ! bash "$NODE" start "$WORK/$n" >/dev/null; then
        fail "postfix $n starts"
        finish
        exit 1
    fi
    cmd="$AGENT --name $n --state-dir $WORK/$n/agent --postfix-dir $WORK/$n/etc \
        --controller tcp://127.0.0.1:$AA,tcp://127.0.0.1:$AB \
        --controller-key $A/keys/controller.cert --address ${ADDR[$n]}:$SMTP \
        --milter-dir $WORK/$n/milter --heartbeat-ms 200 --dead-after-ms 1000"
    "$CTL" node add "$n" "$($cmd --public-key)" >/dev/null || fail "enrol $n"
    daemon_bg "agent-$n" "$WORK/$n.log" $cmd
done
BASE="$WORK/base.yaml"
cat >"$BASE" <<YAML
inbound.checks: {helo_valid: false, sender_domain: false}
outbound.mynetworks: [127.0.0.0/8]
YAML
expect_exit 0 "push a base policy to every node" "$CTL" policy push "$BASE" --wait=$(waits 20)
# the head names the key from now on: a push on the new primary checks
# that it holds it
expect_exit 0 "dkim add on the primary" "$CTL" dkim add example.com --selector s1 --generate
for i in 1 2 3; do
    "$CTL" policy set "antispam.subject_prefix=[rev$i]" -m "change $i" >/dev/null || fail "push $i"
done
HEAD=$(field_of "$PA" head)
check "the standby follows to the head ($HEAD)" wait_for 10 head_is "$PB" "$HEAD"
"$CTL" --controller "tcp://127.0.0.1:$PA" policy history --json >"$WORK/history.a.json"
expect_exit 1 "the standby refuses a change" "$CTL" --controller "tcp://127.0.0.1:$PB" policy set antispam.subject_prefix=x
check "and says it is a standby, naming the primary" grep -q "standby.*127.0.0.1:$PA" "$WORK/err"
check "the standby holds the agents' enrolled keys" test -f "$B/clients/agent-mx3.cert"
check "and the admin's" test -f "$B/clients/admin-admin.cert"

# ---- the primary dies; the standby is promoted ------------------------------------
kill_daemon "$APID"
expect_exit 0 "privmta-controller --promote" "$CONTROLLER" --state-dir "$B" --promote
check "it says the new epoch" grep -q "primary at epoch 2" "$WORK/out"
check "the standby takes over as primary at epoch 2" wait_for 10 role_is "$PB" "primary 2"
export PRIVMTA_TIMEOUT=2 # the dead primary costs each call this much
"$CTL" --controller "tcp://127.0.0.1:$PB" policy history --json >"$WORK/history.b.json"
check "every revision is in the new primary's history, with its digest" \
    bash -c "jq -S '[.[] | {revision, digest, author, message}]' '$WORK/history.a.json' >'$WORK/ha' &&
             jq -S '[.[] | {revision, digest, author, message}]' '$WORK/history.b.json' >'$WORK/hb' && cmp -s '$WORK/ha' '$WORK/hb'"
expect_exit 0 "dkim list on the new primary" "$CTL" dkim list
check "it holds the DKIM key made on the old one" grep -q "^example.com" "$WORK/out"
expect_exit 0 "the next push goes through the list to the new primary" \
    "$CTL" policy set inbound.checks.helo_valid=true -m "after failover" --wait=$(waits 20)
REV=$(rev_of_push)
check "it is revision $((HEAD + 1))" test "$REV" = "$((HEAD + 1))"
check "every node applied it" applied_everywhere "$REV"
for n in "${NODES[@]}"; do
    send "$n" 'bad helo!'
    rc=$?
    check "$n's Postfix enforces it: an invalid HELO is refused (swaks $rc)" test "$rc" -ge 22 -a "$rc" -le 24
done
for n in "${NODES[@]}"; do
    check "$n's agent moved to the standby's agent endpoint" grep -q "trying tcp://127.0.0.1:$AB" "$WORK/$n.log"
done

# ---- the old primary comes back: it must not act as primary ----------------------
$(controller_cmd "$A" "$PA" "$AA" "$PB") >"$WORK/a2.log" 2>&1 &
OLD=$!
track "$OLD"
check "the old primary, restarted, exits" wait_for 10 bash -c "! kill -0 $OLD 2>/dev/null"
wait "$OLD"
check "with status 1" test $? -eq 1
check "saying the standby is primary at a newer epoch" grep -q "refusing to act as primary.*127.0.0.1:$PB.*epoch 2" "$WORK/a2.log"
check "the new primary still serves" head_is "$PB" "$REV"

finish
