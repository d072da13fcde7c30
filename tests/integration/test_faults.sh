#!/usr/bin/env bash
# Faults on one real node (controller, Postfix, agent, milter as its own
# user): every file system the node writes lives on a small tmpfs this test
# fills, and the agent is killed (SIGKILL, through its debug_crash_at hook)
# at each step of an apply. After each fault: nothing acknowledged is lost,
# the error is reported while it lasts, Postfix and the milter stay on the
# same revision, and the node converges by itself once the fault clears.
source "$(dirname "$0")/lib.sh" "$@"

AGENT="$BUILD/nodeagent/privmta-agent"
MILTER="$BUILD/scan/privmta-milter"
PFN="$SRC/deploy/postfix-node.sh"
for tool in postfix swaks setpriv jq useradd mount fiu-ctrl; do
    command -v "$tool" >/dev/null || skip "$tool not installed"
done
[ "$(id -u)" -eq 0 ] || skip "needs root (Postfix, tmpfs mounts)"
MUSER=privmta-test-milter
getent passwd "$MUSER" >/dev/null ||
    useradd --system --user-group --no-create-home --shell /usr/sbin/nologin "$MUSER" ||
    skip "cannot create the user $MUSER"

chmod 0755 "$WORK"
STATE="$WORK/controller"
N="$WORK/mx1"
ADDR=127.0.0.51
SMTP=$(free_port)
PORT=$(free_port)
APORT=$(free_port)
export PRIVMTA_STATE_DIR="$STATE" PRIVMTA_CONTROLLER="tcp://127.0.0.1:$PORT"
export PRIVMTA_CTL_CONFIG=/dev/null
MOUNTS=()
cleanup_node() {
    "$PFN" stop "$N" >/dev/null 2>&1
    local m
    for m in "${MOUNTS[@]}"; do umount "$m" 2>/dev/null; done
}
trap 'cleanup_node; cleanup' EXIT
on_kill "'$PFN' stop '$N'"
small_fs() { # DIR SIZE: DIR becomes a tmpfs of SIZE, keeping what it held
    mkdir -p "$1" "$WORK/keep"
    cp -a "$1/." "$WORK/keep/" 2>/dev/null
    mount -t tmpfs -o "size=$2,mode=0755" tmpfs "$1" || skip "cannot mount a tmpfs"
    MOUNTS+=("$1")
    on_kill "umount '$1'"
    cp -a "$WORK/keep/." "$1/"
    rm -rf "$WORK/keep"
}
fill() { dd if=/dev/zero of="$1/filler" bs=4k 2>/dev/null; sync; }

applied() { "$CTL" nodes --json | jq -r '.[0].applied_rev'; }
last_error() { "$CTL" nodes --json | jq -r '.[0].last_error'; }
head_rev() { "$CTL" policy history --limit 1 --json | jq -r '.[0].revision'; }
mrev() { jq -r .policy.revision "$N/run/status.json" 2>/dev/null; }
# converged: mx1 applied the head without error, the milter runs it too
converged() {
    local h
    h=$(head_rev)
    [ "$(applied)" = "$h" ] && [ -z "$(last_error)" ] && [ "$(mrev)" = "$h" ]
}
helo_refused() { # exit 0 when Postfix refuses an invalid HELO
    swaks --server "$ADDR:$SMTP" --helo 'bad helo!' --from postmaster@mx1.test \
        --to postmaster@mx1.test --timeout 10 >"$WORK/swaks.out" 2>&1
    local rc=$?
    [ "$rc" -ge 22 ] && [ "$rc" -le 24 ]
}
# enforces BOOL: Postfix enforces helo_valid=BOOL
enforces() { if [ "$1" = true ]; then helo_refused; else ! helo_refused; fi; }
WANT=false
# toggle: one revision that changes Postfix (helo) and the milter (.bat)
toggle() {
    if [ "$WANT" = true ]; then WANT=false; else WANT=true; fi
    local ext='inbound.blocked_extensions-=bat'
    [ "$WANT" = true ] && ext='inbound.blocked_extensions+=bat'
    "$CTL" policy set "inbound.checks.helo_valid=$WANT" "$ext" "$@"
}

# ---- the node, every writable place on its own small file system -------------------
small_fs "$STATE" 160m
daemon_bg controller "$WORK/controller.log" "$CONTROLLER" --state-dir "$STATE" \
    --endpoint "tcp://127.0.0.1:$PORT" --agent-endpoint "tcp://127.0.0.1:$APORT" \
    --heartbeat-ms 200 --stale-after-ms 1000 --down-after-ms 3000 --history-keep 8
check "controller starts" wait_for 15 "$CTL" --timeout 0.3 policy history --limit 1 >/dev/null 2>&1
"$PFN" create "$N" "$ADDR" "$SMTP" mx1 >/dev/null || { fail "postfix create"; finish; exit 1; }
small_fs "$N/etc" 2m
"$PFN" start "$N" >/dev/null || { fail "postfix starts"; finish; exit 1; }
small_fs "$N/agent" 32m
chmod 0700 "$N/agent"
small_fs "$N/handoff" 16m
chmod 0750 "$N/handoff"
mkdir -p "$N/run" "$N/sigs"
daemon_bg milter "$WORK/milter.log" "$MILTER" --socket "unix:$N/milter.sock" \
    --policy-file "$N/handoff/policy.pb" --dkim-key-dir "$N/handoff/dkim" \
    --sig-dir "$N/sigs" --status-dir "$N/run" --status-ms 200 \
    --spamd 127.0.0.1:1 --user "$MUSER"
agent=("$AGENT" --name mx1 --state-dir "$N/agent" --postfix-dir "$N/etc"
    --controller "tcp://127.0.0.1:$APORT" --controller-key "$STATE/keys/controller.cert"
    --address "$ADDR:$SMTP" --heartbeat-ms 200 --dead-after-ms 1000
    --milter-socket "unix:$N/milter.sock" --milter-dir "$N/handoff"
    --milter-group "$MUSER" --milter-status "$N/run/status.json")
"$CTL" node add mx1 "$("${agent[@]}" --public-key)" >/dev/null || fail "enrol mx1"
agent_up() { # [extra options]
    daemon_bg agent "$WORK/agent.log" "${agent[@]}" "$@"
    APID=$DAEMON_PID
}
agent_up
cat >"$WORK/policy.yaml" <<'YAML'
inbound:
  blocked_extensions: [exe]
  notify_admin: false
  notify_recipient: false
  checks: {helo_valid: false, sender_domain: false}
outbound.mynetworks: [127.0.0.0/8]
antispam.enabled: false
YAML
expect_exit 0 "push revision 1" "$CTL" policy push "$WORK/policy.yaml" --wait=$(waits 20)
expect_exit 0 "a DKIM key, so every revision carries a secret" \
    "$CTL" dkim add signed.test --selector s1 --generate
check "converged at the start" wait_for 15 converged

# ---- ENOSPC on main.cf's file system -----------------------------------------------
fill "$N/etc"
before=$(applied)
toggle --wait=5 >/dev/null 2>&1
check "full /etc: the node reports why" \
    wait_for 10 bash -c "'$CTL' nodes --json | jq -e '.[0].last_error | test(\"No space left\")' >/dev/null"
check "full /etc: nothing claimed beyond revision $before" test "$(applied)" = "$before"
check "full /etc: Postfix runs the old policy" enforces "$([ "$WANT" = true ] && echo false || echo true)"
check "full /etc: the milter stays on revision $before with Postfix" \
    wait_for 10 bash -c "[ \"\$(jq -r .policy.revision '$N/run/status.json')\" = $before ]"
rm -f "$N/etc/filler"
check "room again: the node converges by itself" wait_for 40 converged
check "no scratch copy of the configuration is left behind" \
    test -z "$(ls -A "$N/etc" | grep '^\.privmta\.')"
check "and Postfix enforces the new policy" enforces "$WANT"

# LMDB reuses the pages it has: a fault test needs revisions that take new
# ones, here with 1.5 MB of custom signatures (one per line)
bigsig() { # FILE TAG
    local i
    for i in $(seq 1 1500); do
        printf 'Big.%s%d:0:*:%s\n' "$2" "$i" "$(head -c 500 /dev/urandom | od -An -tx1 | tr -d ' \n')"
    done >"$1"
}
bigsig "$WORK/big1.ndb" A
bigsig "$WORK/big2.ndb" B

# ---- ENOSPC on the agent's store ------------------------------------------------------
fill "$N/agent"
"$CTL" policy set "antivirus.custom_signatures+=$WORK/big1.ndb" >/dev/null
check "full agent store: reported" \
    wait_for 10 bash -c "'$CTL' nodes --json | jq -e '.[0].last_error | test(\"local store\")' >/dev/null"
check "full agent store: the revision is not acknowledged" \
    bash -c "[ \"\$('$CTL' nodes --json | jq -r '.[0].applied_rev')\" -lt $(head_rev) ]"
rm -f "$N/agent/filler"
check "room again: converged" wait_for 40 converged
kill_daemon "$APID"
agent_up
check "a restart keeps what was acknowledged" wait_for 15 converged

# ---- ENOSPC on the controller's store -----------------------------------------------------
h=$(head_rev)
"$CTL" policy history --limit 100 --json >"$WORK/hist-before.json"
fill "$STATE"
expect_exit 1 "full controller store: the push is refused" \
    "$CTL" policy set "antivirus.custom_signatures+=$WORK/big2.ndb"
check "it says the storage failed" grep -qi "storage\|space\|full" "$WORK/err"
check "nothing was stored" test "$(head_rev)" = "$h"
rm -f "$STATE/filler"
expect_exit 0 "room again: the push goes through" \
    "$CTL" policy set "antivirus.custom_signatures+=$WORK/big2.ndb" --wait=$(waits 20)
expect_exit 0 "and the next" toggle --wait=$(waits 10)
check "every earlier revision is still there" bash -c \
    "'$CTL' policy history --limit 100 --json | jq -e --slurpfile b '$WORK/hist-before.json' '[.[].digest] as \$now | all(\$b[0][]; .digest as \$d | \$now | index(\$d))' >/dev/null"

# ---- EIO: fsync and fdatasync fail in the agent (libfiu) ---------------------------------
# libfiu's POSIX preload makes chosen calls fail with a chosen errno in
# one process, switched on and off from outside (fiu-ctrl). pm_file syncs
# with fsync (the milter's copy, keys, main.cf), LMDB with fdatasync.
{
    preload="/usr/lib/fiu/fiu_run_preload.so /usr/lib/fiu/fiu_posix_preload.so"
    # an ASan build needs its runtime first; no leak checks in the children
    # (Postfix's own programs) that inherit it
    asan=$(ldd "$AGENT" | sed -n 's/.*\(libasan[^ ]*\) => \([^ ]*\).*/\2/p')
    fiu_agent_up() {
        kill_daemon "$APID"
        FIU_CTRL_FIFO="$WORK/fiu" LD_PRELOAD="${asan:+$asan }$preload" \
            ASAN_OPTIONS="${ASAN_OPTIONS:-}:detect_leaks=0" agent_up
    }
    fiu() { fiu-ctrl -f "$WORK/fiu" -c "$1" "$APID"; }
    fiu_agent_up
    check "(EIO) the agent under libfiu is up at the head" wait_for 15 converged
    h=$(head_rev)
    fiu "enable name=posix/io/sync/fsync,failinfo=5"
    toggle >/dev/null
    check "(EIO on fsync) reported" wait_for 10 bash -c \
        "'$CTL' nodes --json | jq -e '.[0].last_error | test(\"Input/output error\")' >/dev/null"
    check "(EIO on fsync) nothing claimed, the milter stays on $h" \
        bash -c "[ \$('$CTL' nodes --json | jq -r '.[0].applied_rev') = $h ] && [ \$(jq -r .policy.revision '$N/run/status.json') = $h ]"
    check "(EIO on fsync) Postfix was not touched" \
        enforces "$([ "$WANT" = true ] && echo false || echo true)"
    fiu "disable name=posix/io/sync/fsync"
    check "(EIO on fsync) cleared: converged" wait_for 40 converged
    check "(EIO on fsync) Postfix enforces the head" enforces "$WANT"
    fiu "enable name=posix/io/sync/fdatasync,failinfo=5"
    toggle >/dev/null
    check "(EIO on the agent's store) reported" wait_for 10 bash -c \
        "'$CTL' nodes --json | jq -e '.[0].last_error | test(\"local store\")' >/dev/null"
    check "(EIO on the agent's store) the revision is not acknowledged" \
        bash -c "[ \$('$CTL' nodes --json | jq -r '.[0].applied_rev') -lt $(head_rev) ]"
    fiu "disable name=posix/io/sync/fdatasync"
    check "(EIO on the agent's store) cleared: converged" wait_for 40 converged
    check "(EIO on the agent's store) Postfix enforces the head" enforces "$WANT"
    kill_daemon "$APID"
    agent_up
}

# ---- kill -9 at each step of an apply ------------------------------------------------------
for step in keys handoff main.cf reload stored; do
    kill_daemon "$APID"
    agent_up --debug-crash-at "$step"
    check "($step) the armed agent is up at the head" wait_for 15 converged
    toggle >/dev/null
    check "($step) the agent dies at that step" \
        wait_for 15 bash -c "! kill -0 $APID 2>/dev/null"
    grep -q "debug_crash_at $step" "$WORK/agent.log" || fail "($step) it died elsewhere"
    kill_daemon "$APID"
    agent_up
    check "($step) restarted, the node converges on the head" wait_for 20 converged
    check "($step) Postfix enforces the head" enforces "$WANT"
done
# ---- 30 pushes, each with a different 4 MiB signature file ---------------------------------
# on an agent whose store starts with a 64 MiB map on a 32 MiB disk (the
# controller keeps 8 revisions, plus what a node runs: history_keep)
"$CTL" policy set 'antivirus.custom_signatures=[]' --wait=$(waits 20) >/dev/null
ok=0
for i in $(seq 1 30); do
    for j in $(seq 1 4); do head -c 1048576 /dev/urandom; done | od -An -tx1 -v -w500 |
        tr -d ' ' | head -n 4190 | awk -v i="$i" '{printf "Big.P%d.%d:0:*:%s\n", i, NR, $0}' >"$WORK/p.ndb"
    if "$CTL" policy set "antivirus.custom_signatures=[]" "antivirus.custom_signatures+=$WORK/p.ndb" \
        --wait=$(waits 60) >/dev/null 2>"$WORK/p.err"; then
        ok=$((ok + 1))
    else
        echo "# push $i of 30 failed: $(tail -3 "$WORK/p.err" | tr '\n' ' ')"
    fi
done
check "30 pushes of a 4 MiB signature file: every one applied ($ok)" test "$ok" -eq 30
check "the node runs the last, without error" wait_for 20 converged
check "the controller kept only the newest revisions" \
    test "$("$CTL" policy history --limit 100 --json | jq length)" -le 9

check "revisions are contiguous and the node runs the head" bash -c \
    "'$CTL' policy history --limit 1000 --json | jq -e '[.[].revision] | . == [range(.[0]; .[0] - length; -1)]' >/dev/null && [ \"\$('$CTL' nodes --json | jq -r '.[0].applied_rev')\" = \$('$CTL' policy history --limit 1 --json | jq -r '.[0].revision') ]"

finish
