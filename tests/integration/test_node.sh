#!/usr/bin/env bash
# End-to-end, one node as deployed: a controller, a real Postfix, the agent
# (root) and privmta-milter as its own unprivileged user, fed by the agent
# only (no test helper writes its policy). What this checks is the privilege
# boundary between the two and the node's durability:
#   - the milter started before the agent picks up the first policy itself;
#   - everything the agent writes for the milter is root-owned, readable
#     through the milter's group, and the milter's user can plant nothing in
#     it; the milter holds no handle on the agent's state;
#   - `dkim add` after start makes the milter sign, without a restart;
#   - a hostile status file (a FIFO, a huge file) cannot stall the agent:
#     the filter shows down with the reason, heartbeats and applies go on;
#   - an agent killed between writing main.cf and the reload makes Postfix
#     run what it acknowledges once it is back;
#   - a full file system fails the apply truthfully, and the agent retries
#     by itself once there is room again;
#   - a hand edit of a parameter the policy owns is put back and reported
#     (nodes, drift), also one made while the agent was down; one of a
#     parameter it does not own stays.
source "$(dirname "$0")/lib.sh" "$@"

AGENT="$BUILD/nodeagent/privmta-agent"
MILTER="$BUILD/scan/privmta-milter"
PFN="$SRC/deploy/postfix-node.sh"
for tool in postfix swaks setpriv jq useradd mount; do
    command -v "$tool" >/dev/null || skip "$tool not installed"
done
[ "$(id -u)" -eq 0 ] || skip "needs root (Postfix, a user for the milter, tmpfs)"

MUSER=privmta-test-milter # its own user and group, as in production
getent passwd "$MUSER" >/dev/null ||
    useradd --system --user-group --no-create-home --shell /usr/sbin/nologin "$MUSER" ||
    skip "cannot create the user $MUSER"
as_milter() { setpriv --reuid="$MUSER" --regid="$MUSER" --init-groups "$@"; }

chmod 0755 "$WORK"
STATE="$WORK/controller"
N="$WORK/mx1"
HANDOFF="$N/handoff"
ADDR=127.0.0.41
SMTP=$(free_port)
PORT=$(free_port)
APORT=$(free_port)
export PRIVMTA_STATE_DIR="$STATE" PRIVMTA_CONTROLLER="tcp://127.0.0.1:$PORT"
export PRIVMTA_CTL_CONFIG=/dev/null
cleanup_node() {
    "$PFN" destroy "$N" >/dev/null 2>&1
    umount "$HANDOFF" 2>/dev/null
}
trap 'cleanup_node; cleanup' EXIT
on_kill "'$PFN' destroy '$N'; umount '$HANDOFF'"

nodes_json() { "$CTL" nodes --json 2>/dev/null; }
# svc SERVICE FIELD: mx1's antivirus/dkim/... state or detail
svc() { nodes_json | jq -r ".[] | select(.name == \"mx1\") | .$1.$2"; }
svc_is() { [ "$(svc "$1" state)" = "$2" ] && svc "$1" detail | grep -q -- "$3"; }
applied() { nodes_json | jq -r '.[] | select(.name == "mx1") | .applied_rev'; }
mstatus() { jq -r "$1" "$N/run/status.json" 2>/dev/null; }
mstatus_is() { [ "$(mstatus "$1")" = "$2" ]; }
bad_helo() { # exit 0 when Postfix refuses an invalid HELO
    swaks --server "$ADDR:$SMTP" --helo 'bad helo!' --from postmaster@mx1.test \
        --to postmaster@mx1.test --timeout 10 >"$WORK/swaks.out" 2>&1
    local rc=$?
    [ "$rc" -ge 22 ] && [ "$rc" -le 24 ]
}
good_helo() {
    swaks --server "$ADDR:$SMTP" --helo 'bad helo!' --from postmaster@mx1.test \
        --to postmaster@mx1.test --timeout 10 >"$WORK/swaks.out" 2>&1
}
send_exe() { # exit code of swaks sending an .exe attachment
    printf 'MZ not really a program\n' >"$WORK/evil.bin"
    swaks --server "$ADDR:$SMTP" --from a@remote.example --to postmaster@mx1.test \
        --attach-type application/octet-stream --attach-name invoice.exe \
        --attach "@$WORK/evil.bin" --timeout 20 >"$WORK/swaks.out" 2>&1
}

# ---- controller and Postfix --------------------------------------------------
daemon_bg controller "$WORK/controller.log" "$CONTROLLER" --state-dir "$STATE" \
    --endpoint "tcp://127.0.0.1:$PORT" --agent-endpoint "tcp://127.0.0.1:$APORT" \
    --heartbeat-ms 200 --stale-after-ms 1000 --down-after-ms 3000
check "controller starts" wait_for 15 "$CTL" --timeout 0.3 policy history --limit 1 >/dev/null 2>&1
"$PFN" create "$N" "$ADDR" "$SMTP" mx1 >/dev/null && "$PFN" start "$N" >/dev/null ||
    { fail "postfix starts"; finish; exit 1; }
mkdir -p "$N/sigs" "$N/run" "$HANDOFF"
chmod 0755 "$N" "$N/sigs"
# the handoff dir on a small file system of its own, to fill it later
mount -t tmpfs -o size=512k,mode=0750 tmpfs "$HANDOFF" || skip "cannot mount a tmpfs"

# ---- the milter first, with nothing to read yet -------------------------------
daemon_bg milter "$WORK/milter.log" "$MILTER" --socket "unix:$N/milter.sock" \
    --policy-file "$HANDOFF/policy.pb" --dkim-key-dir "$HANDOFF/dkim" \
    --sig-dir "$N/sigs" --status-dir "$N/run" --status-ms 200 --poll-ms 100 \
    --spamd 127.0.0.1:1 --user "$MUSER" --log-level info
MPID=$DAEMON_PID
check "the milter starts before the agent and says it has no policy" \
    wait_for 10 mstatus_is .policy.loaded false
check "it runs as $MUSER" test "$(ps -o user= -p "$MPID")" = "$MUSER"

# ---- then the agent ---------------------------------------------------------
agent=("$AGENT" --name mx1 --state-dir "$N/agent" --postfix-dir "$N/etc"
    --controller "tcp://127.0.0.1:$APORT" --controller-key "$STATE/keys/controller.cert"
    --address "$ADDR:$SMTP" --heartbeat-ms 200 --dead-after-ms 1000
    --milter-socket "unix:$N/milter.sock" --milter-dir "$HANDOFF"
    --milter-group "$MUSER" --milter-status "$N/run/status.json")
"$CTL" node add mx1 "$("${agent[@]}" --public-key)" >/dev/null || fail "enrol mx1"
agent_up() {
    daemon_bg agent "$WORK/agent.log" "${agent[@]}"
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
antivirus.enabled: true
antivirus.databases: []  # custom signatures only: see test_signatures.sh
YAML
expect_exit 0 "push revision 1 and wait for mx1" "$CTL" policy push "$WORK/policy.yaml" --wait=$(waits 20)
check "the milter picked revision 1 up by itself" wait_for 10 mstatus_is .policy.revision 1
check "the handoff dir is root:$MUSER 0750" \
    test "$(stat -c '%U:%G %a' "$HANDOFF")" = "root:$MUSER 750"
check "the handed-over revision is root:$MUSER 0640" \
    test "$(stat -c '%U:%G %a' "$HANDOFF/policy.pb")" = "root:$MUSER 640"
send_exe
rc=$?
check "an .exe is refused by the filter the agent fed (swaks $rc)" \
    bash -c "[ $rc -eq 26 ] && grep -q '554.*invoice.exe' '$WORK/swaks.out'"

# ---- DKIM added while everything runs -----------------------------------------
expect_exit 0 "dkim add signed.test after start" "$CTL" dkim add signed.test --selector s1 --generate
check "the milter signs for it without a restart" \
    wait_for 15 mstatus_is '.dkim.usable[0]' signed.test
check "same milter process" kill -0 "$MPID"
KEY=$(ls "$HANDOFF/dkim/" | head -1)
check "the key file is root:$MUSER 0640" \
    test "$(stat -c '%U:%G %a' "$HANDOFF/dkim/$KEY")" = "root:$MUSER 640"
check "the key dir is root:$MUSER 0750" \
    test "$(stat -c '%U:%G %a' "$HANDOFF/dkim")" = "root:$MUSER 750"
swaks --server "$ADDR:$SMTP" --from ceo@signed.test --to postmaster@mx1.test \
    --header "From: ceo@signed.test" --header "Subject: signme" --timeout 20 >"$WORK/swaks.out" 2>&1
check "outbound mail from signed.test arrives signed" \
    wait_for 15 grep -q -s "DKIM-Signature:.*d=signed.test" "$N/mail/root" ||
    { tail -5 "$WORK/swaks.out"; tail -5 "$N/maillog"; ls -la "$N/mail"; }
check "nothing in the handoff belongs to the milter's user" \
    test -z "$(find "$HANDOFF" -user "$MUSER")"

# ---- the milter's user cannot reach into what root writes ---------------------
check "the milter's user can read its key (through the group)" \
    as_milter cat "$HANDOFF/dkim/$KEY" >/dev/null
check "the milter's user cannot plant a link among the keys" \
    bash -c "! setpriv --reuid=$MUSER --regid=$MUSER --init-groups ln -s /etc/passwd '$HANDOFF/dkim/$KEY.tmp' 2>/dev/null"
check "nor replace the handed-over revision" \
    bash -c "! setpriv --reuid=$MUSER --regid=$MUSER --init-groups sh -c 'echo x > $HANDOFF/policy.pb' 2>/dev/null"
check "the milter maps nothing of the agent's state" \
    bash -c "! grep -q '$N/agent' /proc/$MPID/maps"
check "the milter has no descriptor on the agent's state" \
    bash -c "! ls -l /proc/$MPID/fd | grep -q '$N/agent'"

# ---- a hostile status file ---------------------------------------------------------
check "mx1's antivirus is ok to begin with" wait_for 10 svc_is antivirus ok ""
kill -STOP "$MPID" # the milter would rewrite its status every 200 ms
rm -f "$N/run/status.json"
as_milter mkfifo "$N/run/status.json"
check "a FIFO as status: the filter shows down with the reason" \
    wait_for 10 svc_is antivirus down "not a regular file"
expect_exit 0 "the agent still applies while the FIFO is there" \
    "$CTL" policy set 'inbound.blocked_extensions+=bat' --wait=$(waits 10)
rm -f "$N/run/status.json"
as_milter truncate -s 200M "$N/run/status.json"
check "a 200 MB status: down with the reason, read no further" \
    wait_for 10 svc_is antivirus down "allowed"
check "the agent's memory stayed small (< 64 MB RSS)" \
    test "$(ps -o rss= -p "$APID")" -lt 65536
rm -f "$N/run/status.json"
printf '{"policy": {"revision": ' | as_milter tee "$N/run/status.json" >/dev/null
check "malformed JSON: down with the reason" \
    wait_for 10 svc_is antivirus down "not valid JSON"
rm -f "$N/run/status.json"
kill -CONT "$MPID"
check "with the milter writing again, antivirus is ok" wait_for 10 svc_is antivirus ok ""

# ---- agent killed between writing main.cf and the reload ----------------------------
# New smtpd processes read main.cf as they start, but the master and the
# processes already running keep what they loaded until a reload: an agent
# that died between the write and the reload must reload once it is back,
# even though main.cf already says what it acknowledges.
expect_exit 0 "helo check on" "$CTL" policy set inbound.checks.helo_valid=true --wait=$(waits 10)
check "Postfix refuses a bad HELO" bad_helo
reloads() { grep -c "postfix/postfix-script.*refreshing\|reload -- version" "$N/maillog"; }
kill_daemon "$APID"
before=$(reloads)
agent_up
check "the restarted agent reloads Postfix though main.cf is unchanged" \
    wait_for 15 bash -c "[ \$(grep -c 'postfix/postfix-script.*refreshing\|reload -- version' '$N/maillog') -gt $before ]"
check "and reports the revision applied" wait_for 10 bash -c "'$CTL' nodes --json | jq -e '.[0].applied_rev == $(applied) and .[0].last_error == \"\"' >/dev/null"
check "Postfix still refuses a bad HELO" bad_helo
expect_exit 0 "helo check off" "$CTL" policy set inbound.checks.helo_valid=false --wait=$(waits 10)

# ---- a full file system, then room again ------------------------------------------
head=$(applied)
dd if=/dev/zero of="$HANDOFF/filler" bs=4k 2>/dev/null
expect_exit 4 "a push while the handoff fs is full: --wait names mx1" \
    "$CTL" policy set 'inbound.blocked_extensions+=com' --wait=5
check "the error says why" grep -q "mx1.*No space left on device" "$WORK/err"
check "mx1 still claims only revision $head" test "$(applied)" = "$head"
check "the milter still enforces revision $head" mstatus_is .policy.revision "$head"
check "nodes reports the error" bash -c "'$CTL' nodes | grep -q 'No space left'"
rm -f "$HANDOFF/filler"
check "with room again the agent retries by itself and applies $((head + 1))" \
    wait_for 20 bash -c "[ \"\$('$CTL' nodes --json | jq -r '.[0].applied_rev')\" = $((head + 1)) ]"
check "and the milter follows" wait_for 10 mstatus_is .policy.revision $((head + 1))
check "no revision was pushed to get there" \
    test "$("$CTL" policy history --json --limit 1 | jq -r '.[0].revision')" = $((head + 1))

# ---- Postfix refuses a revision: the milter stays with what Postfix kept ----------------
head=$(applied)
expect_exit 4 "a relay host this IPv4-only Postfix refuses: --wait names mx1" \
    "$CTL" policy set 'outbound.relay_host=[ipv6:::1]:2526' --node mx1 --wait=5
check "mx1 reports why" wait_for 10 bash -c "'$CTL' nodes --json | jq -e '.[0].last_error | test(\"inet_protocols\")' >/dev/null"
check "the milter is back on revision $head, which Postfix kept" \
    wait_for 10 mstatus_is .policy.revision "$head"
expect_exit 0 "drop the override" "$CTL" policy set --reset outbound.relay_host --node mx1 --wait=$(waits 10)

# ---- hand edits: what the policy owns is put back, the rest stays ----------------
pc() { postconf -c "$N/etc" "$@"; }
owned=$(pc -h smtpd_helo_restrictions)
start=$(date +%s%N)
pc -e "smtpd_helo_restrictions = reject_non_fqdn_helo_hostname"
check "a hand edit of smtpd_helo_restrictions is put back" \
    wait_for 10 bash -c "[ \"\$(postconf -c '$N/etc' -h smtpd_helo_restrictions)\" = '$owned' ]"
echo "# put back after $((($(date +%s%N) - start) / 1000000)) ms (the agent looks every second)"
drift_is() { nodes_json | jq -e ".[0].drift[0] | .parameter == \"smtpd_helo_restrictions\" and
    .found == \"reject_non_fqdn_helo_hostname\" and .applied == \"$owned\" and .reverted" >/dev/null; }
check "nodes --json reports it: parameter, found, applied, put back" wait_for 10 drift_is
check "nodes shows it under mx1" bash -c "'$CTL' nodes | grep -q 'drift: smtpd_helo_restrictions set by hand to \"reject_non_fqdn_helo_hostname\" at .*; put back'"
check "the controller keeps it: privmta-ctl drift mx1" \
    bash -c "'$CTL' drift mx1 | grep -q '^mx1 .*smtpd_helo_restrictions set by hand'"
check "and logged it" grep -q "mx1.*smtpd_helo_restrictions was changed by hand" "$WORK/controller.log"
at=$(nodes_json | jq '.[0].drift[0].at')
pc -e 'smtpd_banner = $myhostname ESMTP hand-edited'
sleep 3 # three checks of the agent
check "a hand edit of smtpd_banner, which the policy does not own, stays" \
    test "$(pc -h smtpd_banner)" = '$myhostname ESMTP hand-edited'
check "and is no drift" test "$(nodes_json | jq '.[0].drift[0].at')" = "$at"
check "still one entry in the history" test "$("$CTL" drift mx1 --json | jq length)" = 1
# an edit made while the agent is down is put back at its start, and reported
kill_daemon "$APID"
pc -e "smtpd_helo_restrictions = reject_invalid_helo_hostname, permit"
agent_up
check "an edit made while the agent was down is put back at its start" \
    wait_for 10 bash -c "[ \"\$(postconf -c '$N/etc' -h smtpd_helo_restrictions)\" = '$owned' ]"
stopped_drift_is() { nodes_json | jq -e '.[0].drift[0] | .parameter == "smtpd_helo_restrictions" and
    .found == "reject_invalid_helo_hostname, permit" and .reverted' >/dev/null; }
check "and reported as drift, put back" wait_for 10 stopped_drift_is
check "the history has it too" test "$("$CTL" drift mx1 --json | jq length)" = 2

# ---- the documented maxima: the node stays up and reports its status ---------------
KEYID=$(jq -r '.dkim.domains[0].key' <("$CTL" policy show --json))
{
    cat "$WORK/policy.yaml"
    echo "dkim:"
    echo "  domains:"
    echo "    - {domain: signed.test, selector: s1, key: $KEYID}"
    for i in $(seq 2 1024); do echo "    - {domain: d$i.example, selector: s1, key: $KEYID}"; done
    echo "antivirus.custom_signatures:"
    for i in $(seq 1 64); do
        printf '  - name: sig%d.ndb\n    content: |\n      Max.Sig%d:0:*:%s\n' \
            "$i" "$i" "$(printf 'privmta-max-%04d' "$i" | od -An -tx1 | tr -d ' \n')"
    done
} >"$WORK/max.yaml"
for i in $(seq 1 5000); do echo "t$i.example smtp:[127.0.0.9]:25"; done >"$N/etc/transport"
postconf -c "$N/etc" -e "transport_maps = texthash:$N/etc/transport"
expect_exit 0 "push 1024 DKIM domains and 64 custom signatures" \
    "$CTL" --timeout 60 policy push "$WORK/max.yaml" --wait=$(waits 60)
check "the milter signs for all 1024" \
    wait_for 30 mstatus_is '.dkim.usable | length' 1024
check "mx1 is up and reports 1024 domains signing" \
    wait_for 20 svc_is dkim ok "1024 domains signing"
check "mx1 lists the first transport entries and counts the rest" \
    wait_for 20 bash -c "'$CTL' nodes --json | jq -e '.[0].relay_overrides | (length == 101 and .[100] == \"... and 4900 more\")' >/dev/null"
check "mx1 is still up" wait_for 10 bash -c "'$CTL' nodes --json | jq -e '.[0].liveness == \"up\"' >/dev/null"

finish
