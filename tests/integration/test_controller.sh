#!/usr/bin/env bash
# End-to-end: a real privmta-controller on 127.0.0.1 driven by privmta-ctl.
source "$(dirname "$0")/lib.sh" "$@"

STATE="$WORK/state"
PORT=$(free_port)
export PRIVMTA_STATE_DIR="$STATE" PRIVMTA_CONTROLLER="tcp://127.0.0.1:$PORT"
export PRIVMTA_CTL_CONFIG=/dev/null
VALID="$SRC/tests/policy/valid"

check "controller starts" start_controller "$STATE" "$PORT"

# --- keys ----------------------------------------------------------------
mode() { stat -c %a "$1"; }
check "controller secret key is 0600" test "$(mode "$STATE/keys/controller.cert_secret")" = 600
check "admin secret key is 0600" test "$(mode "$STATE/keys/admin.cert_secret")" = 600
check "admin key is enrolled" test -f "$STATE/clients/admin-admin.cert"

# --- offline validation: the whole invalid corpus ------------------------
for f in "$SRC"/tests/policy/invalid/*.yaml; do
    key=$(sed -n '1s/^# expect: //p' "$f")
    "$CTL" policy validate "$f" >"$WORK/out" 2>"$WORK/err"
    rc=$?
    name=$(basename "$f")
    if [ $rc -ne 1 ]; then
        fail "validate $name exits 1 (got $rc)"
    elif ! grep -q "^$f:[0-9][0-9]*: " "$WORK/err"; then
        fail "validate $name: lines are FILE:LINE: ..."; cat "$WORK/err"
    elif [ "$key" != "-" ] && ! grep -qF ": $key: " "$WORK/err"; then
        fail "validate $name names $key"; cat "$WORK/err"
    else
        pass "validate $name rejected, naming ${key/-/the line}"
    fi
done
expect_exit 0 "validate a valid policy" "$CTL" policy validate "$VALID/full.nested.yaml"
expect_exit 2 "validate without a file is a usage error" "$CTL" policy validate

# --- DKIM keys: stored apart from the policy, which names them -------------
expect_exit 1 "a policy naming DKIM keys the controller lacks is refused" "$CTL" policy push "$VALID/full.nested.yaml"
check "the refusal says how to add the key" grep -q "privmta-ctl dkim add example.com" "$WORK/err"
expect_exit 0 "dkim add --generate" "$CTL" dkim add example.com --selector mail2024 --generate
check "dkim add prints the DNS record" grep -q '^mail2024._domainkey.example.com. IN TXT' "$WORK/out"
openssl genrsa -out "$WORK/org.pem" 2048 2>/dev/null
expect_exit 0 "dkim add --key FILE" "$CTL" dkim add example.org --selector s1.mail --key "$WORK/org.pem"
expect_exit 1 "dkim add with a file that is no key" "$CTL" dkim add example.net --selector s1 --key /etc/hostname
"$CTL" dkim list >"$WORK/dkim.txt"
id_of() { awk -v d="$1" '$1 == d {print $3}' "$WORK/dkim.txt"; }
check "dkim list shows both domains" test -n "$(id_of example.com)" -a -n "$(id_of example.org)"
check "policy show never contains a private key" bash -c "! '$CTL' policy show | grep -q PRIVATE"
# the full example names its keys; point it at the stored ones
FULL="$WORK/full.yaml"
sed -e "s/example-com-2024/$(id_of example.com)/" -e "s/\bexample-org\b/$(id_of example.org)/" \
    "$VALID/full.nested.yaml" >"$FULL"
cp -r "$VALID/sigs" "$WORK/" 2>/dev/null

# --- push, show, round trip ------------------------------------------------
expect_exit 0 "push a full policy" "$CTL" policy push "$FULL" -m "first"
check "push prints revision 3 (after the two dkim adds)" grep -q "^revision 3 committed" "$WORK/out"
"$CTL" policy show >"$WORK/show1.yaml"
check "show is YAML with the revision header" grep -q "^# privmta policy revision 3" "$WORK/show1.yaml"
expect_exit 0 "show output pushed back" "$CTL" policy push "$WORK/show1.yaml"
check "round trip is unchanged (same digest)" grep -q "^unchanged: the policy equals revision 3" "$WORK/out"
"$CTL" policy show --json >"$WORK/show1.json"
expect_exit 0 "show --json output pushed back" "$CTL" policy push "$WORK/show1.json"
check "JSON round trip is unchanged" grep -q "^unchanged" "$WORK/out"

# --- a rejected push stores nothing -----------------------------------------
head_rev() { "$CTL" policy history --limit 1 --json | sed -n 's/.*"revision": \([0-9]*\).*/\1/p' | head -1; }
before=$(head_rev)
expect_exit 1 "push of an invalid policy is rejected" "$CTL" policy push "$SRC/tests/policy/invalid/cidr_v4_prefix_33.yaml"
check "nothing stored after a rejected push" test "$(head_rev)" = "$before"
pushed=0
for f in "$SRC"/tests/policy/invalid/*.yaml; do
    "$CTL" policy push "$f" >/dev/null 2>&1
    [ $? -eq 1 ] && pushed=$((pushed + 1))
done
# privmta-ctl refuses these itself; the controller's own checks on the same
# corpus, sent raw, are tests/controller/test_ctld_corpus.c
check "every file of the invalid corpus is refused by push ($pushed)" \
    test "$pushed" -eq "$(ls "$SRC"/tests/policy/invalid/*.yaml | wc -l)"
check "and none of them was stored" test "$(head_rev)" = "$before"
expect_exit 1 "set of an invalid value is rejected" "$CTL" policy set antispam.tag_percent=101
check "the rejection names the key" grep -q "antispam.tag_percent" "$WORK/err"
check "nothing stored after a rejected set" test "$(head_rev)" = "$before"
expect_exit 1 "set of an unknown key suggests one" "$CTL" policy set inbound.notify_admn=false
check "did you mean" grep -q "did you mean inbound.notify_admin" "$WORK/err"

# --- set, history, diff, rollback --------------------------------------------
expect_exit 0 "set helo_valid=true" "$CTL" policy set inbound.checks.helo_valid=true -m "helo on"
expect_exit 0 "set blocked_extensions=[]" "$CTL" policy set 'inbound.blocked_extensions=[]'
expect_exit 0 "set blocked_extensions+=@common" "$CTL" policy set 'inbound.blocked_extensions+="@common"'
check "it says Postfix reloads (the milter's main.cf settings)" \
    grep -q "^takes effect: Postfix reloads on every node" "$WORK/out"
"$CTL" policy show --json >"$WORK/show.json"
check "@common adds the 27 extensions" test "$(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))["inbound"]["blocked_extensions"]))' "$WORK/show.json")" -eq 27
expect_exit 0 "set a level" "$CTL" policy set antispam.level=high
check "a spam level takes effect at once" grep -q "^takes effect: at once, nothing restarts" "$WORK/out"
"$CTL" policy show --json >"$WORK/show.json"
check "level high is 16/66" python3 -c 'import json,sys; a=json.load(open(sys.argv[1]))["antispam"]; sys.exit(not (a["tag_percent"]==16 and a["kill_percent"]==66))' "$WORK/show.json"
expect_exit 0 "history" "$CTL" policy history
check "history is newest first" bash -c "sed -n 2p '$WORK/out' | grep -q '^7 '"
check "history shows the message" grep -q "helo on" "$WORK/out"
expect_exit 0 "diff 3 4" "$CTL" policy diff 3 4
check "diff names the changed key" grep -q "^inbound.checks.helo_valid: false -> true" "$WORK/out"
check "diff shows only changed keys" test "$(wc -l <"$WORK/out")" -eq 1
expect_exit 0 "rollback 3" "$CTL" policy rollback 3
check "rollback makes a new revision" grep -q "^revision 8 committed" "$WORK/out"
"$CTL" policy show >"$WORK/show5.yaml"
check "rollback restores revision 3's content" diff <(grep -v '^#' "$WORK/show1.yaml") <(grep -v '^#' "$WORK/show5.yaml")
expect_exit 1 "rollback to a missing revision" "$CTL" policy rollback 99

# --- per-node overrides --------------------------------------------------------
expect_exit 0 "per-node override" "$CTL" policy set 'outbound.mynetworks+=10.9.0.0/16' --node mx2
"$CTL" policy show --node mx2 --json >"$WORK/mx2.json"
"$CTL" policy show --json >"$WORK/all.json"
"$CTL" policy show --node mx1 --json >"$WORK/mx1.json"
check "mx2's effective mynetworks has the extra network" bash -c "nets() { jq -r '.outbound.mynetworks[]' \"\$1\"; }; nets '$WORK/mx2.json' | grep -qx 10.9.0.0/16"
check "mx1's effective mynetworks does not" bash -c "! jq -r '.outbound.mynetworks[]' '$WORK/mx1.json' | grep -qx 10.9.0.0/16"
check "mx2's effective policy has no overrides left" bash -c "[ \"\$(jq -r '.nodes // {} | length' '$WORK/mx2.json')\" = 0 ]"
check "the cluster value is unchanged" bash -c "! grep -q '10.9.0.0/16' <(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[\"outbound\"])' '$WORK/all.json')"
"$CTL" policy show --node mx2 >"$WORK/mx2.yaml"
check "show --node lists the override" grep -q "overridden for it: outbound.mynetworks" "$WORK/mx2.yaml"
expect_exit 1 "cluster-wide key cannot be set per node" "$CTL" policy set antispam.enabled=false --node mx2

# --- overrides that match no enrolled node ----------------------------------------
"$CTL" keygen "$WORK/mx1" >/dev/null
expect_exit 0 "enrol node mx1" "$CTL" node add mx1 "$WORK/mx1.cert"
expect_exit 0 "an override for MX1 (not mx1) is accepted" "$CTL" policy set outbound.sasl_auth=false --node MX1
check "with a warning naming the enrolled node" grep -q "^privmta-ctl: warning: nodes.MX1: no enrolled node is named 'MX1' (node names are case-sensitive; did you mean 'mx1'?)" "$WORK/err"
expect_exit 0 "an override for the enrolled mx1" "$CTL" policy set outbound.sasl_auth=false --node mx1
check "gets no warning about mx1" bash -c "! grep -q \"named 'mx1'\" '$WORK/err'"
expect_exit 0 "show" "$CTL" policy show
check "show marks MX1's overrides as matching no enrolled node" grep -q "^# warning: nodes.MX1: no enrolled node is named 'MX1'" "$WORK/out"
check "show marks mx2's too (never enrolled)" grep -q "^# warning: nodes.mx2: no enrolled node is named 'mx2': its overrides apply to no node" "$WORK/out"
check "show does not mark mx1" bash -c "! grep -q \"named 'mx1'\" '$WORK/out'"
cp "$WORK/out" "$WORK/warned.yaml"
expect_exit 0 "show output with the warnings is pushed back" "$CTL" policy push "$WORK/warned.yaml"
check "it is unchanged" grep -q "^unchanged" "$WORK/out"
expect_exit 0 "the MX1 override is reset" "$CTL" policy set --reset outbound.sasl_auth --node MX1

# --- dangerous values ------------------------------------------------------------------
expect_exit 1 "mynetworks 0.0.0.0/0 (an open relay) is refused" "$CTL" policy set 'outbound.mynetworks+=0.0.0.0/0'
check "the refusal says why" grep -q "outbound.mynetworks: '0.0.0.0/0': /0 is every IPv4 address: .*open relay" "$WORK/err"
expect_exit 1 "per node too" "$CTL" policy set 'outbound.mynetworks=::/0' --node mx1
check "the refusal names the node" grep -q "node mx1: '::/0': /0 is every IPv6 address" "$WORK/err"

# --- files are read by privmta-ctl, never by the controller --------------------------------
printf 'Privmta.Cli:0:*:707269766d74612d636c69\n' >"$WORK/cli.ndb"
expect_exit 0 "a signature record naming a file here is sent with its content" \
    "$CTL" policy set "antivirus.custom_signatures+={name: cli.ndb, file: $WORK/cli.ndb}"
"$CTL" policy show --json >"$WORK/sig.json"
check "the controller stored the file's content" \
    python3 -c 'import json,sys; s=json.load(open(sys.argv[1]))["antivirus"]["custom_signatures"]; sys.exit(not any(x["name"]=="cli.ndb" and x["content"].startswith("Privmta.Cli:") for x in s))' "$WORK/sig.json"
mkfifo "$WORK/sig.fifo"
expect_exit 2 "a FIFO named as a signature file is refused by privmta-ctl, without blocking" \
    timeout 10 "$CTL" policy set "antivirus.custom_signatures=[{name: f.ndb, file: $WORK/sig.fifo}]"
check "it says the FIFO is no regular file" grep -q "sig.fifo.*regular file" "$WORK/err"
expect_exit 0 "the controller answers at once afterwards" timeout 5 "$CTL" --timeout 2 policy history --limit 1
expect_exit 0 "the signature is removed again" "$CTL" policy set 'antivirus.custom_signatures-=cli.ndb'

# --- compare-and-swap ---------------------------------------------------------
head=$(head_rev)
expect_exit 0 "--expect-rev at the head succeeds" "$CTL" policy set antispam.subject_prefix='[SPAM]' --expect-rev "$head"
expect_exit 1 "--expect-rev of a stale head conflicts" "$CTL" policy set antispam.subject_prefix='[X]' --expect-rev "$head"
check "conflict says so" grep -q "conflict\|not $head" "$WORK/err"

# --- authentication --------------------------------------------------------------
"$CTL" keygen "$WORK/stranger" >/dev/null
check "keygen secret is 0600" test "$(mode "$WORK/stranger.cert_secret")" = 600
expect_exit 3 "unknown client key is refused" "$CTL" --key "$WORK/stranger.cert_secret" policy history
check "refusal says the key is not enrolled" grep -q "refused this client's key" "$WORK/err"
cp "$WORK/stranger.cert" "$STATE/clients/"
expect_exit 0 "enrolled key is served" "$CTL" --key "$WORK/stranger.cert_secret" policy history
expect_exit 0 "push by the second admin" "$CTL" --key "$WORK/stranger.cert_secret" policy set antispam.subject_prefix='[Y]'
"$CTL" policy history --limit 1 >"$WORK/out"
check "author is the enrolled key's name" grep -q " stranger" "$WORK/out"

expect_exit 3 "no key in the state directory named" env -u PRIVMTA_KEY \
    "$CTL" --state-dir "$WORK/no-such-dir" policy history
check "which says where the key was looked for and how to name another" bash -c \
    "grep -q 'cannot read key file $WORK/no-such-dir/keys/admin.cert_secret' '$WORK/err' &&
     grep -q 'name it with --state-dir or PRIVMTA_STATE_DIR, or the key with --key' '$WORK/err'"

# --- unreachable -------------------------------------------------------------------
expect_exit 3 "unreachable controller times out with exit 3" "$CTL" --timeout 0.5 --controller "tcp://127.0.0.1:$(free_port)" policy history
check "says it cannot reach the controller" grep -q "cannot reach the controller" "$WORK/err"
expect_exit 2 "unknown command is a usage error" "$CTL" policy frobnicate
check "which shows the usage of the policy commands only" bash -c \
    "grep -q 'privmta-ctl policy set KEY=VALUE' '$WORK/err' && ! grep -q 'privmta-ctl nodes' '$WORK/err'"
expect_exit 2 "restart with a bad --batch is a usage error" "$CTL" restart --rolling --batch 150%
check "which names the option and what it takes" grep -q -- \
    "bad value '150%': --batch takes a number of nodes (1 or more) or a percentage (1% to 100%)" "$WORK/err"
for form in "--limit 5000" "--limit=5000"; do
    expect_exit 2 "history $form is a usage error" "$CTL" policy history $form
    check "which names the option and its range" grep -q -- "bad value '5000' for --limit (1 to 1000)" "$WORK/err"
done

# --- nodes --watch: a frame a period until Ctrl-C, then exit 0 ------------------------------
# piped, as into a log: frames one after another, no escape codes
# SIGINT goes once it has its handler and has drawn two frames (a signal
# sent earlier, while a process started in the background still ignores
# SIGINT, is lost: that once held up the whole suite under load)
"$CTL" nodes --watch 1 2>"$WORK/err" >"$WORK/watch.txt" &
watch=$!
track "$watch"
count_frames() { grep -c "^every 1 s, controller tcp://127.0.0.1:$PORT, " "$WORK/watch.txt"; }
two_frames() { catches "$watch" INT && [ "$(count_frames)" -ge 2 ]; }
wait_for 10 two_frames
kill -INT "$watch"
wait_for 10 bash -c "! kill -0 $watch 2>/dev/null" || kill -9 "$watch"
wait "$watch"
rc=$?
frames=$(count_frames)
check "nodes --watch 1 ends on SIGINT with exit 0 (got $rc)" test "$rc" -eq 0
check "it drew at least two frames before ($frames)" test "$frames" -ge 2
check "each frame has the table" test "$(grep -c '^NAME ' "$WORK/watch.txt")" -eq "$frames"
check "piped, it writes no escape code" test "$(tr -dc '\033' <"$WORK/watch.txt" | wc -c)" -eq 0
expect_exit 2 "nodes --watch --json is a usage error" "$CTL" nodes --watch --json
check "the error says why (--json)" grep -q -- "--watch cannot go with --json" "$WORK/err"

# --- Ctrl-C and SIGTERM stop any command at once -------------------------------------------
# a controller that never answers: nothing listens on the port, and the
# command would wait 60 s for it
for sig in INT TERM; do
    want=$([ $sig = INT ] && echo 130 || echo 143)
    "$CTL" --timeout 60 --controller "tcp://127.0.0.1:$(free_port)" policy history >/dev/null 2>&1 &
    pid=$!
    track "$pid"
    wait_for 10 catches "$pid" "$sig"
    start=$SECONDS
    kill -$sig "$pid"
    wait "$pid"
    rc=$?
    check "SIG$sig stops a waiting privmta-ctl with exit $want (got $rc)" test "$rc" -eq "$want"
    check "at once" test $((SECONDS - start)) -le 2
done

# --- kill -9 during a stream of pushes ---------------------------------------------------
ACKS="$WORK/acks"
: >"$ACKS"
(
    for i in $(seq 1 400); do
        out=$("$CTL" --timeout 2 policy set "antispam.subject_prefix=[k$i]" 2>/dev/null) || exit 0
        echo "$out" | sed -n 's/^revision \([0-9]*\) committed (digest \([0-9a-f]*\)).*/\1 \2/p' >>"$ACKS"
    done
) &
PUSHER=$!
track "$PUSHER"
check "pushes are being acknowledged" wait_for 30 bash -c "[ \$(wc -l <'$ACKS') -ge 20 ]"
kill_daemon "$CONTROLLER_PID"
wait "$PUSHER" 2>/dev/null
acked=$(wc -l <"$ACKS")
check "pushes were acknowledged before the kill ($acked)" test "$acked" -gt 5
check "controller restarts after kill -9" start_controller "$STATE" "$PORT"
"$CTL" policy history --limit 1000 --json >"$WORK/hist.json"
missing=0
while read -r rev digest; do
    python3 - "$WORK/hist.json" "$rev" "$digest" <<'PY' || missing=$((missing + 1))
import json, sys
revs = {r["revision"]: r["digest"] for r in json.load(open(sys.argv[1]))}
rev, digest = int(sys.argv[2]), sys.argv[3]
sys.exit(0 if revs.get(rev, "").startswith(digest) else 1)
PY
done <"$ACKS"
check "every acknowledged revision is present after kill -9 ($missing missing)" test "$missing" -eq 0
expect_exit 0 "head is readable after kill -9" "$CTL" policy show
last=$(tail -1 "$ACKS" | cut -d' ' -f1)
check "head is at least the last acknowledged revision" test "$(head_rev)" -ge "$last"
check "revisions are contiguous" python3 -c 'import json,sys; r=sorted(x["revision"] for x in json.load(open(sys.argv[1]))); sys.exit(r != list(range(r[0], r[0]+len(r))))' "$WORK/hist.json"

# --- clean shutdown -------------------------------------------------------------------
stop_daemons
check "SIGTERM stops the controller (exit 0)" bash -c "! kill -0 $CONTROLLER_PID 2>/dev/null"
check "the controller logged its stop" grep -q "stopping" "$WORK/controller.log"


finish
