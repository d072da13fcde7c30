#!/usr/bin/env bash
# privmta-ctl policy test end to end, on the demo cluster (deploy/cluster.sh
# up: a controller, three nodes with real Postfix, agent, milter, spamd):
# a candidate policy rehearsed on one node's real Postfix and filter,
# against the head, with the answer, the deciding key and the evidence for
# each message; and nothing of the node's live mail or configuration
# touched meanwhile.
source "$(dirname "$0")/lib.sh" "$@"

demo_cluster 127.0.4 # 127.0.4.11-13: no other test uses them

expect_exit 0 "deploy/cluster.sh up" bash "$SRC/deploy/cluster.sh" up
export PRIVMTA_STATE_DIR="$WORK/cluster/controller" PRIVMTA_CONTROLLER=tcp://127.0.0.1:$CTL_PORT
export PRIVMTA_CTL_CONFIG=/dev/null
CTL="$BUILD/controller/privmta-ctl"
MX1="$WORK/cluster/mx1"

# ---- the messages and the candidate ----------------------------------------------
mail() { # mail FILE SUBJECT [ATTACHMENT-NAME CONTENT]
    {
        printf 'From: Alice <alice@remote.example>\nTo: root@mx1.test\n'
        printf 'Subject: %s\nMessage-ID: <%s@remote.example>\nMIME-Version: 1.0\n' "$2" "$RANDOM$RANDOM"
        if [ -n "${3:-}" ]; then
            printf 'Content-Type: multipart/mixed; boundary="b1"\n\n--b1\n'
            printf 'Content-Type: text/plain\n\nsee attached\n--b1\n'
            printf 'Content-Type: application/octet-stream; name="%s"\n' "$3"
            printf 'Content-Disposition: attachment; filename="%s"\n' "$3"
            printf 'Content-Transfer-Encoding: base64\n\n%s\n--b1--\n' "$(printf '%s' "$4" | base64 -w0)"
        else
            printf 'Content-Type: text/plain\n\nhello, %s\n' "$2"
        fi
    } >"$1"
}
mail "$WORK/iso.eml" "the quarterly report" report.iso "an ISO image, as it were"
mail "$WORK/plain.eml" "no attachment"
mail "$WORK/marked.eml" "marked" notes.txt "this file holds privmta-test-marker inside"
GTUBE='XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X'
mail "$WORK/gtube.eml" "cheap watches"
printf '%s\n' "$GTUBE" >>"$WORK/gtube.eml"
printf 'GIF89a\x01\x00\x01\x00\x00\x00\x00;' >"$WORK/photo.gif"

# the candidate: the head's file (as cluster.sh pushed it), blocking .iso
# too, with a custom signature the head does not have (added to the list of
# the head's, which ends the file: the demo's EICAR signature)
sed 's/^  blocked_extensions: \["@common"\]$/  blocked_extensions: ["@common", "iso"]/' \
    "$WORK/cluster/policy.yaml" >"$WORK/candidate.yaml"
check "(set-up: the head's custom signatures end its file)" test \
    "$(grep -v '^ ' "$WORK/candidate.yaml" | tail -n 1)" = "antivirus.custom_signatures:"
printf '  - {name: cand.ndb, content: "PrivmtaTest.Marker:0:*:707269766d74612d746573742d6d61726b6572"}\n' \
    >>"$WORK/candidate.yaml"
check "the candidate differs from the head" bash -c "! cmp -s '$WORK/cluster/policy.yaml' '$WORK/candidate.yaml'"

# The node's milter.conf names its temp_dir (read by the scratch milter of
# each test, not by the live one, which started before): a milter empties
# its temp_dir at start, and the scratch one used to empty the live one's
# (a part the live milter was scanning, as the milter's user).
echo "temp_dir = $MX1/milter/tmp" >>"$MX1/milter.conf"
mkdir -p "$MX1/milter/tmp"
echo part >"$MX1/milter/tmp/live-part"
chown -R "$(stat -c %U "$MX1/milter")" "$MX1/milter/tmp"

# what must not change on the node while tests run
live_state() {
    sha256sum "$MX1/etc/main.cf" "$MX1/etc/master.cf"
    find "$MX1/queue" -type f -path '*/[adhi]*/*' | sort
    find "$MX1/mail" -type f -exec sha256sum {} + | sort
    sha256sum "$MX1/milter/decisions.jsonl" 2>/dev/null
    sha256sum "$MX1/milter/tmp/live-part" 2>&1
}
live_state >"$WORK/live.before"
# root starts the demo's filters (and the policy test's) with `user`: no
# systemd unit filters them, their own seccomp filter does
milter_sandboxed() {
    local s
    s=$(cat "/proc/$(cat "$MX1/milter.pid")/status") &&
        grep -q '^NoNewPrivs:[[:space:]]*1' <<<"$s" && grep -q '^Seccomp:[[:space:]]*2' <<<"$s"
}
check "the filter runs with no_new_privs and a seccomp filter of its own" milter_sandboxed
head_rev() { "$CTL" ping | grep -o 'head revision [0-9]*'; }
HEAD=$(head_rev)
check "the head is known ($HEAD)" test -n "$HEAD"

# ---- the acceptance examples -----------------------------------------------------
t0=$(date +%s%N)
expect_exit 1 "report.iso: a different answer under the candidate (exit 1)" \
    "$CTL" policy test "$WORK/candidate.yaml" "$WORK/iso.eml" --node mx1
echo "# one message, two policies (a scratch Postfix and filter, the test database): $((($(date +%s%N) - t0) / 1000000)) ms"
sed 's/^/# /' "$WORK/out"
check "the head accepts it (250)" grep -Eq 'head.* 250 ' "$WORK/out"
check "the candidate refuses it (554) by inbound.blocked_extensions, naming the file" \
    bash -c "grep -E 'candidate.* 554 ' '$WORK/out' | grep 'inbound.blocked_extensions' | grep -q 'report.iso'"

expect_exit 0 "the same message without an attachment: the same answer (exit 0)" \
    "$CTL" policy test "$WORK/candidate.yaml" "$WORK/plain.eml" --node mx1
check "accepted under both" grep -Eq 'both +accepted +250 .*same under both' "$WORK/out"

expect_exit 1 "a custom signature in the candidate only" \
    "$CTL" policy test "$WORK/candidate.yaml" "$WORK/marked.eml" --node mx1 --json
check "the candidate finds PrivmtaTest.Marker, the head lets it through" \
    jq -e '[.results[] | select(.policy == "candidate")][0] as $c |
           [.results[] | select(.policy == "head")][0] as $h |
           ($c.reply | startswith("554")) and ($c.evidence | test("PrivmtaTest.Marker")) and
           ($c.key | startswith("antivirus")) and ($h.reply | startswith("250"))' "$WORK/out" >/dev/null

expect_exit 0 "GTUBE: discarded under both" \
    "$CTL" policy test "$WORK/candidate.yaml" "$WORK/gtube.eml" --node mx1 --json
check "discarded by antispam.kill_percent, the score shown against the kill level" \
    jq -e 'all(.results[]; .verdict == "discarded" and .key == "antispam.kill_percent" and
           (.evidence | test("score")))' "$WORK/out" >/dev/null

expect_exit 0 "an invalid HELO name" \
    "$CTL" policy test "$WORK/candidate.yaml" "$WORK/plain.eml" --node mx1 --helo 'bad_name!' --json
check "refused at RCPT by inbound.checks.helo_valid, naming the HELO" \
    jq -e 'all(.results[]; (.reply | test("^5")) and .key == "inbound.checks.helo_valid" and
           (.evidence | test("bad_name!")))' "$WORK/out" >/dev/null

expect_exit 0 "relaying for an outside client to an outside domain" \
    "$CTL" policy test "$WORK/candidate.yaml" "$WORK/plain.eml" --node mx1 --rcpt bob@elsewhere.example --json
check "denied by outbound.mynetworks, naming the client" \
    jq -e 'all(.results[]; .stage == "rcpt" and .key == "outbound.mynetworks" and
           (.evidence | test("192.0.2.1")))' "$WORK/out" >/dev/null
expect_exit 0 "the same from a client inside mynetworks" \
    "$CTL" policy test "$WORK/candidate.yaml" "$WORK/plain.eml" --node mx1 --rcpt bob@elsewhere.example \
    --client 127.0.0.9 --json
check "it may relay (250)" jq -e 'all(.results[]; .reply | startswith("250"))' "$WORK/out" >/dev/null

# ---- bad input -------------------------------------------------------------------
expect_exit 2 "not a message" "$CTL" policy test "$WORK/candidate.yaml" "$WORK/photo.gif" --node mx1
check "the error names the file and why" grep -q 'photo.gif: not a mail message' "$WORK/err"
expect_exit 2 "an unknown node: the test cannot run (2, not the 1 of a changed answer)" \
    "$CTL" policy test "$WORK/candidate.yaml" "$WORK/plain.eml" --node mx9
check "the error names the node" grep -q 'mx9' "$WORK/err"
printf 'inbound.blocked_extensions: [iso]\nantispam.kill_percent: 250\n' >"$WORK/invalid.yaml"
expect_exit 2 "an invalid candidate: 2, with FILE:LINE" \
    "$CTL" policy test "$WORK/invalid.yaml" "$WORK/plain.eml" --node mx1
check "the error names the file, line and key" grep -q 'invalid.yaml:2: antispam.kill_percent' "$WORK/err"

# ---- nothing of the live node changed -------------------------------------------
live_state >"$WORK/live.after"
check "mx1's main.cf, master.cf, queue, mailboxes, decision log and the live milter's temp files are as before" \
    diff "$WORK/live.before" "$WORK/live.after"
check "no notification reached a mailbox" bash -c "! grep -rqs 'report.iso' '$MX1/mail'"
check "no scratch instance is left" bash -c "[ -z \"\$(ls -A '$MX1/rehearsal' 2>/dev/null)\" ]"
check "no scratch Postfix runs" bash -c "! pgrep -f 'rehearsal/run\\.' >/dev/null"
check "the head did not move" test "$(head_rev)" = "$HEAD"

# ---- a forged DKIM-domain message ------------------------------------------------
# the head comes to require bank.example's signature; the candidate (the
# file from before) does not
expect_exit 0 "dkim add bank.example: a new head" \
    "$CTL" dkim add bank.example --selector s1 --generate
NEW_HEAD=$(head_rev)
mx1_at_head() { "$CTL" nodes --json | jq -e --arg h "${NEW_HEAD#head revision }" \
    '.[] | select(.name == "mx1") | .applied_rev == ($h | tonumber)' >/dev/null; }
check "mx1 applied it" wait_for 30 mx1_at_head
mail "$WORK/forged.eml" "wire the money"
sed -i 's/^From: .*/From: CEO <ceo@bank.example>/' "$WORK/forged.eml"
expect_exit 1 "a message from bank.example without its signature" \
    "$CTL" policy test "$WORK/candidate.yaml" "$WORK/forged.eml" --node mx1 --rcpt root@mx1.test --json
check "the head refuses it by dkim.domains, naming the domain; the candidate accepts it" \
    jq -e '[.results[] | select(.policy == "head")][0] as $h |
           [.results[] | select(.policy == "candidate")][0] as $c |
           ($h.reply | startswith("550")) and $h.key == "dkim.domains" and
           ($h.evidence | test("bank.example")) and ($c.reply | startswith("250"))' "$WORK/out" >/dev/null
finish
