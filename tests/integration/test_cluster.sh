#!/usr/bin/env bash
# The README's first command, as a user runs it: deploy/cluster.sh up starts
# a controller, three nodes (Postfix, agent, milter each), pushes the
# example policy, shows the nodes; then every node enforces it and
# deploy/cluster.sh down stops everything it started.
source "$(dirname "$0")/lib.sh" "$@"

[ "$(id -u)" -eq 0 ] || skip "needs root (Postfix instances)"
for tool in postfix swaks spamd jq; do
    command -v "$tool" >/dev/null || skip "$tool not installed"
done
for port in 7420 7421 7783 7784; do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && skip "port $port is taken (a demo cluster running?)"
done
chmod 0755 "$WORK"
export PRIVMTA_CLUSTER_DIR="$WORK/cluster" PM_BUILD_DIR="$BUILD" PM_CLUSTER_NO_BUILD=1
cleanup_cluster() { bash "$SRC/deploy/cluster.sh" down >/dev/null 2>&1; }
trap 'cleanup_cluster; cleanup' EXIT

expect_exit 0 "deploy/cluster.sh up" bash "$SRC/deploy/cluster.sh" up
check "it shows three nodes" test "$(grep -c '^mx[123] ' "$WORK/out")" -eq 3
export PRIVMTA_STATE_DIR="$WORK/cluster/controller" PRIVMTA_CONTROLLER=tcp://127.0.0.1:7420
export PRIVMTA_CTL_CONFIG=/dev/null
"$CTL" nodes --json >"$WORK/nodes.json"
check "every node applied revision 1 and is up" \
    jq -e 'length == 3 and all(.applied_rev == 1 and .liveness == "up")' "$WORK/nodes.json" >/dev/null
check "every node's filter reports its policy revision" wait_for 15 bash -c \
    "for i in 1 2 3; do jq -e '.policy.revision == 1' '$WORK/cluster/mx'\$i/milter/status.json >/dev/null || exit 1; done"
loaded_all() { # VERSION: every node's filter was built from test VERSION
    for i in 1 2 3; do
        jq -e ".antivirus.databases[]? | select(.name == \"test\" and .version == $1)" \
            "$WORK/cluster/mx$i/milter/status.json" >/dev/null || return 1
    done
}
check "every node's filter loaded ClamAV's test database, version 1" wait_for 30 loaded_all 1
check "nodes shows it, with every antivirus ok" bash -c \
    "'$CTL' nodes --json | jq -e 'all(.antivirus.state == \"ok\")' >/dev/null && '$CTL' nodes | grep -q 'test 1'"
expect_exit 0 "deploy/cluster.sh publish" bash "$SRC/deploy/cluster.sh" publish
check "version 6 spreads to every node's filter" wait_for 60 loaded_all 6
check "the mirror served each file at most twice for the whole cluster" \
    awk '$3 == 200 { n[$2]++ } END { for (f in n) if (n[f] > 2) exit 1 }' \
    "$WORK/cluster/mirror/access.log"
printf 'MZ\n' >"$WORK/x.bin"
for i in 1 2 3; do
    swaks --server "127.0.0.1$i:2525" --from a@remote.example --to "postmaster@mx$i.test" \
        --attach-type application/octet-stream --attach-name invoice.exe \
        --attach "@$WORK/x.bin" --timeout 20 >"$WORK/swaks.out" 2>&1
    rc=$?
    check "mx$i refuses an .exe (swaks $rc)" \
        bash -c "[ $rc -eq 26 ] && grep -q '554' '$WORK/swaks.out'"
done
sed -i 's/^/| /' "$WORK/out"
expect_exit 0 "deploy/cluster.sh down" bash "$SRC/deploy/cluster.sh" down
# (the bracket keeps pgrep from matching this check's own command line)
check "nothing it started is left running" \
    wait_for 10 bash -c "! pgrep -f '$WORK/cluste[r]' >/dev/null"
finish
