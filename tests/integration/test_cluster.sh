#!/usr/bin/env bash
# The README's first command, as a user runs it: deploy/cluster.sh up starts
# a controller, three nodes (Postfix, agent, milter each), pushes the
# example policy, shows the nodes; then every node enforces it,
# deploy/cluster.sh restart restarts them all node by node under
# continuous SMTP load without losing a message, a broken node halts a
# rollout, a killed controller resumes one, a canary push goes to its
# canary first and on to the others only when it is healthy (reverted
# when its filter is down or its Postfix refuses the revision, with
# --auto-revert), and deploy/cluster.sh down stops
# everything it started.
source "$(dirname "$0")/lib.sh" "$@"

demo_cluster 127.0.2 # 127.0.2.11-13: no other test uses them

expect_exit 0 "deploy/cluster.sh up" bash "$SRC/deploy/cluster.sh" up
check "it shows three nodes" test "$(grep -c '^mx[123] ' "$WORK/out")" -eq 3
export PRIVMTA_STATE_DIR="$WORK/cluster/controller" PRIVMTA_CONTROLLER=tcp://127.0.0.1:$CTL_PORT
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
check "and has the fetch duty check the mirror now (signatures check)" \
    grep -q "^test: fetched by mx[123]$" "$WORK/out"
check "version 6 spreads to every node's filter" wait_for 60 loaded_all 6
check "the mirror served each file at most twice for the whole cluster" \
    awk '$3 == 200 { n[$2]++ } END { for (f in n) if (n[f] > 2) exit 1 }' \
    "$WORK/cluster/mirror/access.log" ||
    { awk '$3 == 200 { print "# served: " $0 }' "$WORK/cluster/mirror/access.log"
      grep -H "duty\|fetch\|version [0-9]* from\|distrust" "$WORK"/cluster/mx*/agent.log |
          sed "s|^$WORK/cluster/|# |" | tail -30; }
# metric URL NAME: NAME's value in URL's exposition (0 when absent)
metric() {
    curl -sf "$1/metrics" | awk -v k="$2" '$1 == k { v = $2 } END { print v + 0 }'
}
metric_is() { [ "$(metric "$1" "$2")" = "$3" ]; }
metric_above() { [ "$(metric "$1" "$2")" -gt "$3" ]; }
REJ='privmta_milter_messages_total{verdict="rejected_attachment"}'
ACC='privmta_milter_messages_total{verdict="accepted"}'
for i in 1 2 3; do rej_before[i]=$(metric "http://127.0.2.1$i:9467" "$REJ"); done
printf 'MZ\n' >"$WORK/x.bin"
# swaks_final ARGS...: swaks ARGS (output in swaks.out, exit code in rc)
# until it gets a final answer: a 4xx (the filter busy or slow under a
# loaded machine: "try again later", which Postfix's clients do) is tried
# again, up to a deadline
swaks_final() {
    local deadline=$((SECONDS + 60 * ${PM_TEST_WAIT_SCALE:-3}))
    while :; do
        swaks "$@" --timeout 20 >"$WORK/swaks.out" 2>&1
        rc=$?
        grep -Eq '^<[-*~]+ +4[0-9]{2}[ -]' "$WORK/swaks.out" && [ "$SECONDS" -lt "$deadline" ] || return 0
        echo "# answered 4xx (swaks $rc), again: $(grep -Em1 '^<[-*~]+ +4[0-9]{2}' "$WORK/swaks.out")"
        sleep 1
    done
}
send_exe() { # I: invoice.exe to mx I
    swaks_final --server "127.0.2.1$1:2525" --from a@remote.example --to "postmaster@mx$1.test" \
        --attach-type application/octet-stream --attach-name invoice.exe --attach "@$WORK/x.bin"
}
for i in 1 2 3; do
    send_exe "$i"
    check "mx$i refuses an .exe (swaks $rc)" \
        bash -c "[ $rc -eq 26 ] && grep -q '554' '$WORK/swaks.out'"
    msgid[i]=$(sed -n 's/^ -> Message-Id: \(<[^>]*>\).*/\1/p' "$WORK/swaks.out" | head -1)
done
# the notices come back through a listener without milters, which each
# agent added to its node's master.cf (notify_listener) and named to its
# filter (milter.conf names none: the filter's default is 127.0.0.1:10026)
check "mx1's agent handed its listener to the filter, root:nogroup 0640" \
    test "$(stat -c '%U:%G %a' "$WORK/cluster/mx1/handoff/notify.addr") $(cat "$WORK/cluster/mx1/handoff/notify.addr")" \
    = "root:nogroup 640 $PM_CLUSTER_NET.11:2526"
for i in 1 2 3; do
    check "mx$i's notice of the refused .exe is delivered (the agent's listener)" \
        wait_for 30 grep -rqs invoice.exe "$WORK/cluster/mx$i/mail"
done
# ---- privmta-ctl why: every node's filter says what it decided, and why -------
expect_exit 0 "why --from: the sender's refusals, asked of every node" \
    "$CTL" why --from A@Remote.Example --json
check "one record from each node, each refused by inbound.blocked_extensions naming invoice.exe" \
    jq -e '[.records[] | select(.verdict == "rejected")] as $r |
           ($r | map(.node) | sort) == ["mx1","mx2","mx3"] and
           all($r[]; .key == "inbound.blocked_extensions" and
               (.evidence | test("invoice.exe")) and (.reply | startswith("554")) and .revision >= 1) and
           (.missing | length) == 0' "$WORK/out" >/dev/null
expect_exit 0 "why MESSAGE-ID: one message, found on the node that saw it" \
    "$CTL" why "${msgid[2]}" --json
check "it is mx2's, with its queue id and recipient" \
    jq -e --arg m "${msgid[2]}" '(.records | length) == 1 and .records[0].node == "mx2" and
        .records[0].message_id == $m and (.records[0].queue_id | length) > 0 and
        .records[0].rcpts == ["postmaster@mx2.test"]' "$WORK/out" >/dev/null
QID=$(jq -r '.records[0].queue_id' "$WORK/out")
expect_exit 0 "why QUEUE-ID, for a person" "$CTL" why "$QID"
check "it shows the answer, the key and the evidence" bash -c \
    "grep -q 'decided by inbound.blocked_extensions' '$WORK/out' && grep -q 'answer 554' '$WORK/out'"
sed 's/^/# /' "$WORK/out"
# a refusal by Postfix itself, before the filter: kept by the agent from its log
swaks --server 127.0.2.11:2525 --helo 'bad_name!' --from helo@remote.example \
    --to postmaster@mx1.test --timeout 20 >"$WORK/swaks.out" 2>&1
check "mx1's Postfix refuses an invalid HELO name" grep -q '^<\*\* 5.*Helo command rejected' "$WORK/swaks.out"
why_helo() { "$CTL" why --from helo@remote.example --json >"$WORK/why.json" 2>/dev/null &&
    jq -e '(.records | length) == 1 and .records[0].node == "mx1" and
        .records[0].key == "inbound.checks.helo_valid" and
        (.records[0].evidence | test("bad_name!")) and
        (.records[0].reply | startswith("5")) and .records[0].revision >= 1' "$WORK/why.json" >/dev/null; }
check "why finds it on mx1: the key inbound.checks.helo_valid, the HELO as evidence" wait_for 10 why_helo
# the EICAR test file, which ClamAV's test database does not detect: the
# demo policy's custom signature does
printf '%s' 'X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*' >"$WORK/eicar.txt"
swaks_final --server 127.0.2.13:2525 --from eicar@remote.example --to postmaster@mx3.test \
    --attach-type text/plain --attach-name readme.txt --attach "@$WORK/eicar.txt"
check "mx3 refuses the EICAR test file as a virus" \
    grep -q '^<\*\* 554 .*virus found: Eicar-Test-Signature' "$WORK/swaks.out"
check "why names the key that decided it: antivirus.custom_signatures" bash -c \
    "'$CTL' why --from eicar@remote.example --json | jq -e '.records[0].key == \"antivirus.custom_signatures\"' >/dev/null"
# ---- SMTP AUTH: the policy's outbound rules meet a real login -----------------
# cluster.sh gave each node a certificate, a Cyrus sasldb user demo@mxI.test
# (password in mail-password, to swaks through its environment, never argv)
# and smtpd_sender_login_maps; the policy turns AUTH on, only after STARTTLS,
# and refuses a sender whose address the login does not own
check "nodes shows AUTH ok on every node" bash -c \
    "'$CTL' nodes --json | jq -e 'all(.auth.state == \"ok\")' >/dev/null"
check "the demo's mail password is root's alone (0600)" \
    test "$(stat -c '%U %a' "$WORK/cluster/mail-password")" = "root 600"
swaks --server 127.0.2.11:2525 --quit-after EHLO --timeout 20 >"$WORK/swaks.out" 2>&1
check "mx1 offers STARTTLS and no AUTH before it (outbound.tls_auth_only)" bash -c \
    "grep -q '^<- *250-STARTTLS' '$WORK/swaks.out' && ! grep -q 'AUTH' '$WORK/swaks.out'"
swaks --server 127.0.2.11:2525 --from demo@mx1.test --to postmaster@mx1.test \
    --timeout 20 >"$WORK/swaks.out" 2>&1
check "mx1 refuses demo@mx1.test as sender without a login (reject_sender_login_mismatch)" \
    grep -q '^<\*\* 553 .*not logged in' "$WORK/swaks.out"
SWAKS_OPT_auth_password=$(cat "$WORK/cluster/mail-password") \
    swaks_final --server 127.0.2.11:2525 --tls --auth PLAIN --auth-user demo@mx1.test \
    --from demo@mx1.test --to postmaster@mx1.test --header "Subject: logged in"
check "after STARTTLS, demo@mx1.test logs in and its mail is accepted" bash -c \
    "grep -q '^<~ *235 ' '$WORK/swaks.out' && grep -q '^<~ *250 .*queued as' '$WORK/swaks.out'" ||
    sed 's/^/# /' "$WORK/swaks.out" | tail -8
check "and delivered" wait_for 30 grep -rqs "Subject: logged in" "$WORK/cluster/mx1/mail"
SWAKS_OPT_auth_password=not-the-password \
    swaks --server 127.0.2.11:2525 --tls --auth PLAIN --auth-user demo@mx1.test \
    --from demo@mx1.test --to postmaster@mx1.test --timeout 20 >"$WORK/swaks.out" 2>&1
check "a wrong password is refused (535)" grep -q '^<~\* *535 ' "$WORK/swaks.out"
# a node that does not answer (its agent stopped) is named, the others' records come
MX3_AGENT=$(awk '$2 == "agent" && $3 == "mx3" { print $1 }' "$WORK/cluster/pids")
kill -STOP "$MX3_AGENT"
expect_exit 0 "why with mx3's agent stopped answers within its deadline" \
    "$CTL" --timeout 20 why --from a@remote.example --json
kill -CONT "$MX3_AGENT"
check "with mx1's and mx2's records, naming mx3 as silent" \
    jq -e '([.records[] | select(.verdict == "rejected") | .node] | sort) == ["mx1","mx2"] and
           (.missing | length) == 1 and (.missing[0] | test("^mx3: "))' "$WORK/out" >/dev/null
expect_exit 1 "why for something no node saw exits 1" "$CTL" why --from nobody@nowhere.example
expect_exit 2 "why needs one thing to look for" "$CTL" why
for i in 1 2 3; do
    # the filter writes its status every second, the agent reads it at
    # each heartbeat
    check "mx$i's agent metrics count that refusal" wait_for 10 \
        metric_is "http://127.0.2.1$i:9467" "$REJ" $((rej_before[i] + 1))
done
check "nodes --json carries the same counters" bash -c \
    "'$CTL' nodes --json | jq -e 'all(.messages.rejected_attachment >= 1)' >/dev/null"
curl -sf "http://127.0.2.11:9467/metrics" >"$WORK/mx1.metrics"
check "mx1's metrics say its revision and that version 6 is loaded" bash -c \
    "grep -qx 'privmta_agent_applied_revision 1' '$WORK/mx1.metrics' &&
     grep -qx 'privmta_signature_version{database=\"test\"} 6' '$WORK/mx1.metrics'"
CM="http://127.0.0.1:$METRICS_PORT"
check "the controller's metrics: three nodes up, at the head, acknowledged" bash -c \
    "curl -sf $CM/metrics >'$WORK/ctl.metrics' &&
     grep -qx 'privmta_controller_nodes{liveness=\"up\"} 3' '$WORK/ctl.metrics' &&
     grep -qx 'privmta_controller_head_revision 1' '$WORK/ctl.metrics' &&
     [ \$(grep -c 'privmta_controller_node_lag_revisions{node=\"mx[123]\"} 0' '$WORK/ctl.metrics') = 3 ] &&
     grep -qx 'privmta_controller_push_ack_seconds_count 3' '$WORK/ctl.metrics'" ||
    sed 's/^/# /' "$WORK/ctl.metrics"

# ---- a rolling restart of everything, under continuous load ----------------------
# Four clients send through all three nodes the whole time; every message a
# client got 250 for must be delivered, and no client may see a 5xx or a
# session cut after the greeting (smtp_account.py counts each session).
LOAD="$WORK/load"
mkdir -p "$LOAD"
python3 "$SRC/tests/integration/smtp_account.py" "$LOAD" "$LOAD/stop" \
    127.0.2.11:2525=mx1.test 127.0.2.12:2525=mx2.test 127.0.2.13:2525=mx3.test &
LOADPID=$!
# the load writes its first line a moment after it starts
accepted() { { wc -l <"$LOAD/accepted"; } 2>/dev/null || echo 0; }
accepted_at_least() { [ "$(accepted)" -ge "$1" ]; }
check "mail flows before the restart" wait_for 30 accepted_at_least 20
t0=$(date +%s%N)
expect_exit 0 "deploy/cluster.sh restart (restart --rolling --service all --wait)" \
    bash "$SRC/deploy/cluster.sh" restart
t1=$(date +%s%N)
check "mail flows after it" wait_for 30 accepted_at_least $(($(accepted) + 20))
for i in 1 2 3; do # the restarted filters count from 0 again
    check "mx$i's agent metrics count the mail it accepted" wait_for 10 \
        metric_above "http://127.0.2.1$i:9467" "$ACC" 0
done
touch "$LOAD/stop"
wait "$LOADPID"
"$CTL" rollout status --json >"$WORK/rollout.json"
check "the rollout is done, node by node in name order" jq -e '.state == "done" and
    ([.nodes[].name] == ["mx1", "mx2", "mx3"]) and all(.nodes[]; .state == "done")' "$WORK/rollout.json" >/dev/null
check "no node started before the one before it was done" jq -e \
    '[.nodes[] | [.started, .finished]] | . as $n | all(range(1; length); $n[.][0] >= $n[. - 1][1])' \
    "$WORK/rollout.json" >/dev/null
check "every node restarted Postfix and its milter once" bash -c \
    "for i in 1 2 3; do [ \$(grep -c 'restarting all (rollout 1' '$WORK/cluster/mx'\$i/agent.log) = 1 ] || exit 1; done"
check "every node's gate sent a probe through Postfix that its milter passed" bash -c \
    "for i in 1 2 3; do grep -q 'probe: every check passed' '$WORK/cluster/mx'\$i/milter.log || exit 1; done"
jq -r '.counts | to_entries | map("\(.key) \(.value)") | join(", ")' "$LOAD/summary.json" >"$WORK/counts"
check "clients saw no 5xx ($(cat "$WORK/counts"))" jq -e '.counts.permfail == 0' "$LOAD/summary.json" >/dev/null
check "and no session cut after the greeting" jq -e '.counts.dropped == 0' "$LOAD/summary.json" >/dev/null ||
    jq '.examples' "$LOAD/summary.json"
delivered() {
    cat "$WORK"/cluster/mx*/mail/* 2>/dev/null | sed -n 's/^Subject: \(load-[0-9]*-[0-9]*\)$/\1/p' |
        sort -u >"$LOAD/delivered"
    sort -u "$LOAD/accepted" >"$LOAD/accepted.sorted"
    [ -z "$(comm -23 "$LOAD/accepted.sorted" "$LOAD/delivered")" ]
}
check "every message a client got 250 for was delivered ($(wc -l <"$LOAD/accepted"))" wait_for 60 delivered ||
    comm -23 "$LOAD/accepted.sorted" "$LOAD/delivered" | head -5
# figures for the README (bench/ has the same, repeated)
echo "# rolling restart of 3 nodes (postfix + milter) under load: $(((t1 - t0) / 1000000)) ms;" \
    "$(cat "$WORK/counts")"
jq -r '.nodes[] | "# \(.name): out of rotation \(.settling_since - .started) ms (drain, restart, gate), healthy check \(.finished - .settling_since) ms"' \
    "$WORK/rollout.json"
grep -h "restart 1[ :]" "$WORK/cluster/mx1/agent.log" | sed 's/^/# mx1: /'

# ---- a node whose milter does not come back halts the rollout there ---------------------
# (its socket path is taken by a directory: the new milter cannot listen)
rm -f "$WORK/cluster/mx2/milter.sock"
mkdir "$WORK/cluster/mx2/milter.sock"
expect_exit 1 "a rolling restart with mx2 broken exits 1" "$CTL" restart --rolling --service all --min-healthy 1s --wait=120
check "it names mx2 and the failed check" grep -q "mx2.*does not listen" "$WORK/err"
"$CTL" rollout status --json >"$WORK/rollout.json"
check "halted: mx1 done, mx2 failed, mx3 untouched" jq -e '.state == "halted" and
    ([.nodes[].state] == ["done", "failed", "pending"])' "$WORK/rollout.json" >/dev/null
check "mx3's agent got no order" test "$(grep -c 'restarting all' "$WORK/cluster/mx3/agent.log")" = 1
check "a halted rollout is over: policy changes are taken again" \
    "$CTL" policy set inbound.notify_admin=false --wait=20
rmdir "$WORK/cluster/mx2/milter.sock"
expect_exit 0 "mx2's milter back by hand" bash "$SRC/deploy/cluster.sh" milter mx2

# ---- the controller killed mid-rollout resumes it, no node restarted twice ---------------
expect_exit 0 "a rolling restart of Postfix, 3 s healthy each" \
    "$CTL" restart --rolling --service postfix --min-healthy 3s
check "mx1 is settling" wait_for 30 bash -c \
    "'$CTL' rollout status --json | jq -e '.nodes[0].state == \"settling\"' >/dev/null"
expect_exit 1 "a push while it runs is refused" "$CTL" policy set inbound.notify_admin=true
check "saying why" grep -q "rolling restart is running" "$WORK/err"
CPID=$(awk '$2 == "controller" { print $1 }' "$WORK/cluster/pids")
kill -9 "$CPID"
daemon_bg controller "$WORK/controller2.log" "$BUILD/controller/privmta-controller" \
    --state-dir "$WORK/cluster/controller" --endpoint "tcp://127.0.0.1:$CTL_PORT" \
    --agent-endpoint "tcp://127.0.0.1:$AGENT_PORT"
echo "$DAEMON_PID controller" >>"$WORK/cluster/pids"
check "the restarted controller takes the rollout up" wait_for 10 grep -q "taking it up where it was" "$WORK/controller2.log"
check "and finishes it" wait_for 120 bash -c \
    "'$CTL' rollout status --json | jq -e '.state == \"done\" and .id == 3' >/dev/null"
check "each node restarted Postfix exactly once in it" bash -c \
    "for i in 1 2 3; do [ \$(grep -c 'restarting postfix (rollout 3' '$WORK/cluster/mx'\$i/agent.log) = 1 ] || exit 1; done"

# ---- a canary push: the new revision on one node first, gated on its health -------------
head0=$("$CTL" policy history --json --limit 1 | jq -r '.[0].revision')
applied_all() { # REV: every node applied REV
    "$CTL" nodes --json | jq -e "all(.applied_rev == $1)" >/dev/null
}
check "every node is on revision $head0" wait_for 30 applied_all "$head0"
sed 's/^  subject_prefix: .*/  subject_prefix: "[canary]"/' "$WORK/cluster/policy.yaml" >"$WORK/canary.yaml"
check "(set-up: the canary policy differs)" grep -q '"\[canary\]"' "$WORK/canary.yaml"
# mx1's filter is broken: as a canary it never turns healthy
kill "$(cat "$WORK/cluster/mx1/milter.pid")"
check "mx1 reports its antivirus down" wait_for 30 bash -c \
    "'$CTL' nodes --json | jq -e '.[] | select(.name == \"mx1\") | .antivirus.state == \"down\"' >/dev/null"
expect_exit 1 "a canary push to mx1 with --auto-revert fails there" \
    "$CTL" policy push "$WORK/canary.yaml" --canary mx1 --auto-revert --min-healthy 2s \
    --deadline 15s --wait=120
check "it names mx1 and the broken filter" grep -q "canary mx1 failed: settling: antivirus down" "$WORK/err"
check "mx1 had the pushed revision $((head0 + 1))" \
    grep -q "applied revision $((head0 + 1))\$" "$WORK/cluster/mx1/agent.log"
check "mx2 and mx3 never had it" bash -c \
    "! grep -q 'applied revision $((head0 + 1))\$' '$WORK/cluster/mx2/agent.log' '$WORK/cluster/mx3/agent.log'"
check "auto-revert: revision $((head0 + 2)) reverts it" bash -c \
    "'$CTL' policy history --json --limit 1 | jq -e '.[0].revision == $((head0 + 2)) and (.[0].message | startswith(\"revert of revision $((head0 + 1))\"))' >/dev/null"
check "every node applied the revert" wait_for 30 applied_all $((head0 + 2))
expect_exit 0 "mx1's milter back by hand" bash "$SRC/deploy/cluster.sh" milter mx1
check "mx1's antivirus is back" wait_for 60 bash -c \
    "'$CTL' nodes --json | jq -e '.[] | select(.name == \"mx1\") | .antivirus.state == \"ok\"' >/dev/null"
probes_before=$(grep -c 'probe: every check passed' "$WORK/cluster/mx2/milter.log")
expect_exit 0 "a canary push to mx2 passes and reaches every node" \
    "$CTL" policy push "$WORK/canary.yaml" --canary mx2 --min-healthy 2s --wait=120
check "mx2, the canary, checked mail through its Postfix and filter first" bash -c \
    "grep -q 'checking mail through Postfix and the filter (canary push' '$WORK/cluster/mx2/agent.log' &&
     [ \$(grep -c 'probe: every check passed' '$WORK/cluster/mx2/milter.log') -gt $probes_before ]"
check "every node applied revision $((head0 + 3))" wait_for 30 applied_all $((head0 + 3))
"$CTL" rollout status --json >"$WORK/rollout.json"
check "the rollout: mx2 alone, done" jq -e '.state == "done" and
    ([.nodes[] | .name + ":" + .state] == ["mx2:done"])' "$WORK/rollout.json" >/dev/null
# a revision the canary's Postfix refuses (IPv6 relay host, IPv4-only Postfix)
sed 's/^  relay_host: .*/  relay_host: "[ipv6:::1]:2526"/' "$WORK/canary.yaml" >"$WORK/refused.yaml"
# (without --auto-revert: it stays halted until the admin aborts it)
expect_exit 1 "a canary push mx3's Postfix refuses halts there" \
    "$CTL" policy push "$WORK/refused.yaml" --canary mx3 --min-healthy 2s \
    --deadline 30s --wait=120
check "it names mx3 and Postfix's refusal" grep -q "canary mx3 failed: apply: .*inet_protocols" "$WORK/err"
check "the push stays halted, nothing reverted" bash -c \
    "'$CTL' rollout status --json | jq -e '.state == \"halted\"' >/dev/null &&
     '$CTL' policy history --json --limit 1 | jq -e '.[0].revision == $((head0 + 4))' >/dev/null"
# while it holds the others back, nothing may replace it: a restart of the
# controller would then send the failed revision everywhere, and a new
# canary push would take it as the revision to go back to
expect_exit 1 "a rolling restart is refused while the halted push holds the others" \
    "$CTL" restart --rolling --service postfix
check "naming the push and what to do" grep -q "revision $((head0 + 4)) is on its canaries only and every other node keeps revision $((head0 + 3)); first .privmta-ctl rollout abort" "$WORK/err"
expect_exit 1 "so is another canary push" \
    "$CTL" policy push "$WORK/canary.yaml" --canary mx2 --min-healthy 2s
check "(nothing committed)" bash -c \
    "'$CTL' policy history --json --limit 1 | jq -e '.[0].revision == $((head0 + 4))' >/dev/null"
expect_exit 0 "rollout abort puts the canary back" "$CTL" rollout abort
check "saying so" grep -q "aborted: the canaries go back to the content of revision $((head0 + 3))" "$WORK/out"
check "mx1 and mx2 never had revision $((head0 + 4))" bash -c \
    "! grep -q 'applied revision $((head0 + 4))\$' '$WORK/cluster/mx1/agent.log' '$WORK/cluster/mx2/agent.log'"
check "the revert ($((head0 + 5))) brings mx3 back with the others" wait_for 30 applied_all $((head0 + 5))
check "and nodes shows no error on any node" bash -c \
    "'$CTL' nodes --json | jq -e 'all(.last_error == \"\")' >/dev/null"

sed -i 's/^/| /' "$WORK/out"
expect_exit 0 "deploy/cluster.sh down" bash "$SRC/deploy/cluster.sh" down
# (the bracket keeps pgrep from matching this check's own command line)
check "nothing it started is left running" \
    wait_for 10 bash -c "! pgrep -f '$WORK/cluste[r]' >/dev/null"
finish
