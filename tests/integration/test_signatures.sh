#!/usr/bin/env bash
# End-to-end: ClamAV databases fetched about once per cluster and shared
# among agents (issue 9). A controller, three nodes (agent + privmta-milter
# as its own user; the agents' Postfix backend is not what is tested here,
# so they run the noop backend), and a loopback mirror (tests/data/clamav/
# mirror.py) serving ClamAV's own signed test database "test":
#   - mirror at version 1: every node's milter loads version 1;
#   - an hour between mirror checks, version 2 published: nothing moves
#     until `privmta-ctl signatures check`, then every node loads it;
#   - controller stopped, one node stopped, mirror advanced to version 6 by
#     five CDIFFs: the running nodes load 6 without the controller; the
#     stopped node catches up from its peers when it comes back (by CDIFF: every
#     node keeps the CDIFFs it applied, to share); the
#     mirror served each file at most twice for the whole cluster;
#   - the mirror says 429 with Retry-After: no node asks it again before
#     the deadline, even when the fetch duty moves; nodes shows it;
#   - an enrolled node whose database file is corrupt (it claims version
#     7) is distrusted by the others, who keep version 6.
source "$(dirname "$0")/lib.sh" "$@"

AGENT="$BUILD/nodeagent/privmta-agent"
MILTER="$BUILD/scan/privmta-milter"
DB="$SRC/tests/data/clamav"
for tool in setpriv jq useradd python3; do
    command -v "$tool" >/dev/null || skip "$tool not installed"
done
[ "$(id -u)" -eq 0 ] || skip "needs root (the milter runs as its own user)"
MUSER=privmta-test-milter
getent passwd "$MUSER" >/dev/null ||
    useradd --system --user-group --no-create-home --shell /usr/sbin/nologin "$MUSER" ||
    skip "cannot create the user $MUSER"

chmod 0755 "$WORK"
STATE="$WORK/controller"
PORT=$(free_port)
APORT=$(free_port)
export PRIVMTA_STATE_DIR="$STATE" PRIVMTA_CONTROLLER="tcp://127.0.0.1:$PORT"
export PRIVMTA_CTL_CONFIG=/dev/null
NODES=(mx1 mx2 mx3)
declare -A APID MPID

# ---- the mirror -----------------------------------------------------------------
WWW="$WORK/www"
mkdir -p "$WWW"
cp "$DB/test-1.cvd" "$WWW/test.cvd"
python3 "$DB/mirror.py" "$WWW" "$WORK/mirror.port" "$WORK/access.log" >"$WORK/mirror.out" 2>&1 &
track "$!"
check "the mirror listens" wait_for 10 test -s "$WORK/mirror.port"
MIRROR="http://127.0.0.1:$(cat "$WORK/mirror.port")"
touch "$WORK/access.log"

# ---- controller, milters, agents ----------------------------------------------------
controller_up() {
    daemon_bg controller "$WORK/controller.log" "$CONTROLLER" --state-dir "$STATE" \
        --endpoint "tcp://127.0.0.1:$PORT" --agent-endpoint "tcp://127.0.0.1:$APORT" \
        --heartbeat-ms 200 --stale-after-ms 1000 --down-after-ms 3000
    CONTROLLER_PID=$DAEMON_PID
    wait_for 15 "$CTL" --timeout 0.3 policy history --limit 1 >/dev/null 2>&1
}
agent_args() { # NAME
    local n=$1
    echo --name "$n" --state-dir "$WORK/$n/agent" --backend noop \
        --controller "tcp://127.0.0.1:$APORT" --controller-key "$STATE/keys/controller.cert" \
        --address "127.0.0.1" --heartbeat-ms 200 --dead-after-ms 1000 \
        --milter-socket "unix:$WORK/$n/milter.sock" --milter-dir "$WORK/$n/handoff" \
        --milter-group "$MUSER" --milter-status "$WORK/$n/run/status.json" \
        --sig-dir "$WORK/$n/sigs" --peer-bind tcp://127.0.0.1:0 --gossip-ms 200 \
        --cdiff-min-kib 0
}
agent_up() { # NAME
    daemon_bg "agent $1" "$WORK/$1.log" "$AGENT" $(agent_args "$1")
    APID[$1]=$DAEMON_PID
}
milter_up() { # NAME
    local n=$1
    mkdir -p "$WORK/$n/run"
    chown "$MUSER:$MUSER" "$WORK/$n/run"
    daemon_bg "milter $n" "$WORK/$n-milter.log" "$MILTER" --socket "unix:$WORK/$n/milter.sock" \
        --policy-file "$WORK/$n/handoff/policy.pb" --dkim-key-dir "$WORK/$n/handoff/dkim" \
        --sig-dir "$WORK/$n/sigs" --sig-poll-ms 200 --sig-jitter-ms 1000 \
        --status-dir "$WORK/$n/run" --status-ms 200 --poll-ms 100 \
        --spamd 127.0.0.1:1 --user "$MUSER" --log-level info
    MPID[$1]=$DAEMON_PID
}
# loaded NAME: the version of "test" NAME's milter engine was built from
loaded() { jq -r '.antivirus.databases[]? | select(.name == "test") | .version' \
    "$WORK/$1/run/status.json" 2>/dev/null; }
loaded_is() { [ "$(loaded "$1")" = "$2" ]; }
all_loaded() { # VERSION [NODES...]
    local v=$1 n
    shift
    for n in "${@:-${NODES[@]}}"; do loaded_is "$n" "$v" || return 1; done
}
nodes_json() { "$CTL" nodes --json 2>/dev/null; }
node_db() { # NAME FIELD: a field of NAME's "test" database in nodes --json
    nodes_json | jq -r ".[] | select(.name == \"$1\") | .databases[]? | select(.name == \"test\") | .$2"
}
# full downloads of FILE in the mirror's log (version checks are ranged)
downloads() { grep -c "^GET /$1 200 " "$WORK/access.log"; }

controller_up || { fail "controller starts"; finish; exit 1; }
for n in "${NODES[@]}"; do
    mkdir -p "$WORK/$n"
    "$CTL" node add "$n" "$("$AGENT" $(agent_args "$n") --public-key)" >/dev/null || fail "enrol $n"
    milter_up "$n"
    agent_up "$n"
done
expect_exit 1 "signatures check with no database in the policy: nobody holds a fetch duty" \
    "$CTL" signatures check
check "and it says so" grep -q "no node holds a fetch duty" "$WORK/err"
expect_exit 2 "signatures check takes no other argument" "$CTL" signatures check --now
cat >"$WORK/policy.yaml" <<YAML
antispam.enabled: false
antivirus:
  enabled: true
  mirrors: ["$MIRROR"]
  databases: [test]
  update_frequency: 5s
YAML
expect_exit 0 "push a policy naming the mirror and the test database" \
    "$CTL" policy push "$WORK/policy.yaml" --wait=20

# ---- version 1 everywhere ---------------------------------------------------------
check "every node's milter loads test version 1" wait_for 30 all_loaded 1
for n in "${NODES[@]}"; do
    check "$n's sig dir is root:$MUSER 0751 (the fetch user may pass through)" \
        test "$(stat -c '%U:%G %a' "$WORK/$n/sigs")" = "root:$MUSER 751"
done
# privmta-sigfetch parses what mirrors and peers send as the agent's
# fetch_user (default nobody), never as root
FUSER=nobody
check "the fetcher fetched into a directory of $FUSER's, 0700" bash -c \
    "[ -n \"\$(ls -d '$WORK'/mx*/sigs/.pm-fetch)\" ] &&
     for d in '$WORK'/mx*/sigs/.pm-fetch; do
         [ \"\$(stat -c '%U %a' \"\$d\")\" = '$FUSER 700' ] || exit 1
     done"
check "libfreshclam ran as $FUSER (its freshclam.dat is $FUSER's)" bash -c \
    "stat -c %U '$WORK'/mx*/sigs/.pm-fetch/freshclam.dat | grep -qx '$FUSER'"
check "what went live is root's, not $FUSER's" bash -c \
    "for f in '$WORK'/mx*/sigs/test.c[lv]d; do [ \"\$(stat -c %U \"\$f\")\" = root ] || exit 1; done"
sigfetch_as() { # USER WHAT [MIN_SECONDS]: the agents' privmta-sigfetch
    # children running as USER, for MIN_SECONDS or longer
    local n
    for n in "${NODES[@]}"; do ps -o user=,etimes=,args= --ppid "${APID[$n]}"; done |
        awk -v u="$1" -v what="$2" -v age="${3:-0}" \
            '$1 == u && $2 >= age && index($0, "privmta-sigfetch " what)' | wc -l
}
check "the peers' files were checked by verifiers running as $FUSER" \
    test "$(sigfetch_as "$FUSER" --verify-server)" -ge 1
# a helper is root from its exec to its first step, loading its libraries
# (milliseconds; a fetch or CDIFF catch-up may be starting as ps looks):
# one that is root a second on is the defect
check "and no privmta-sigfetch of theirs stays root" test "$(sigfetch_as root "" 1)" -eq 0
node_db_is() { [ "$(node_db "$1" "$2")" = "$3" ]; }
check "nodes shows version 1 held and loaded on mx1" wait_for 10 node_db_is mx1 loaded_version 1
check "every node's antivirus is ok with it" wait_for 10 bash -c \
    "'$CTL' nodes --json | jq -e 'length == 3 and all(.antivirus.state == \"ok\" and (.antivirus.detail | test(\"test 1\")))' >/dev/null"
check "the mirror served test.cvd once for the whole cluster" test "$(downloads test.cvd)" -eq 1
check "at least one node got it from a peer" bash -c \
    "'$CTL' nodes --json | jq -e '[.[].databases[]? | select(.source | startswith(\"peer \"))] | length >= 1' >/dev/null"

# ---- signatures check: a version published between two planned checks ----------------
# an hour between mirror checks: the duty holder's next check follows the new
# period from its last one, and version 2 on the mirror waits for it, until
# `signatures check` has the holder check at once
expect_exit 0 "an hour between mirror checks" \
    "$CTL" policy set antivirus.update_frequency=1h --wait=20
duty_holder() {
    nodes_json | jq -r '[.[] | select(.liveness == "up") | select(.databases[]? | select(.name == "test" and .next_check > 0))] | .[0].name'
}
holder=$(duty_holder)
check "one node holds the fetch duty ($holder)" test -n "$holder" -a "$holder" != null
check "its next mirror check is about an hour away" wait_for 10 bash -c \
    "[ \"\$('$CTL' nodes --json | jq '.[] | select(.name == \"$holder\") | .databases[] | select(.name == \"test\") | .next_check')\" -ge $(($(date +%s) + 3000)) ]"
cp "$DB/test-2.cdiff" "$WWW/"
cp "$DB/test-2.cvd" "$WWW/test.cvd.tmp" && mv "$WWW/test.cvd.tmp" "$WWW/test.cvd"
sleep 3
check "version 2 on the mirror is not fetched before the planned check" all_loaded 1
expect_exit 0 "signatures check" "$CTL" signatures check
check "it names the node that checks test" grep -q "^test: fetched by $holder\$" "$WORK/out"
check "every node's milter loads version 2 at once" wait_for 30 all_loaded 2
check "test-2.cdiff was fetched once, test.cvd not again" \
    test "$(downloads test-2.cdiff)" -eq 1 -a "$(downloads test.cvd)" -eq 1
expect_exit 0 "back to a mirror check every 5 s" \
    "$CTL" policy set antivirus.update_frequency=5s --wait=20

# ---- controller down, a node down, mirror at version 6 (five CDIFFs) --------------------
# the node holding the fetch duty stays up: it keeps it while the controller
# is away (the last MEMBERS it got), the node that is not needed goes down
holder=$(duty_holder)
check "one node holds the fetch duty ($holder)" test -n "$holder" -a "$holder" != null
for n in "${NODES[@]}"; do [ "$n" != "$holder" ] && down=$n; done
kill "${APID[$down]}" && wait "${APID[$down]}"
kill "$CONTROLLER_PID" && wait "$CONTROLLER_PID"
up=()
for n in "${NODES[@]}"; do [ "$n" != "$down" ] && up+=("$n"); done
for v in 3 4 5 6; do cp "$DB/test-$v.cdiff" "$WWW/"; done
cp "$DB/test-6.cvd" "$WWW/test.cvd.tmp" && mv "$WWW/test.cvd.tmp" "$WWW/test.cvd"
check "with the controller down, ${up[*]} load version 6" wait_for 40 all_loaded 6 "${up[@]}"
for v in 2 3 4 5 6; do
    check "test-$v.cdiff was fetched once" test "$(downloads "test-$v.cdiff")" -eq 1
done
check "test.cvd was still fetched only once" test "$(downloads test.cvd)" -eq 1
check "$down's milter still has version 2 meanwhile" loaded_is "$down" 2
agent_up "$down"
check "$down, back, catches up to version 6 from its peers" wait_for 30 all_loaded 6 "$down"
check "no file was fetched from the mirror again for it" \
    test "$(grep -c ' 200 ' "$WORK/access.log")" -eq 6
controller_up || fail "the controller comes back"
check "nodes shows version 6 loaded on every node" wait_for 20 bash -c \
    "'$CTL' nodes --json | jq -e 'length == 3 and all(.databases[]? | select(.name == \"test\") | .loaded_version == 6)' >/dev/null"
check "the two nodes that did not fetch caught up by CDIFF, not the whole file" bash -c \
    "'$CTL' nodes --json | jq -e '[.[] | select(.name != \"$holder\") | .databases[]? | select(.name == \"test\") | .source | endswith(\" by CDIFF\")] | length == 2 and all' >/dev/null" ||
    "$CTL" nodes --json | jq -r '.[] | "# \(.name): \(.databases[]? | select(.name == "test") | "version \(.version), loaded \(.loaded_version), from \(.source)")"'
check "every node keeps test-2..6.cdiff to share (root's, 0644, in a 0700 directory)" bash -c \
    "for n in ${NODES[*]}; do d='$WORK'/\$n/sigs/.pm-cdiff
         [ \"\$(stat -c '%U %a' \$d)\" = 'root 700' ] || exit 1
         for v in 2 3 4 5 6; do [ \"\$(stat -c '%U %a' \$d/test-\$v.cdiff)\" = 'root 644' ] || exit 1; done
     done"

# ---- 429 with Retry-After: a cluster fact ------------------------------------------------
echo "429 120" >"$WWW/.status"
check "a mirror check meets the 429 and nodes shows the cool-down" wait_for 30 bash -c \
    "'$CTL' nodes --json | jq -e '[.[].cooldowns[]? | select(.http_status == 429)] | length >= 1' >/dev/null"
until_ts=$(nodes_json | jq '[.[].cooldowns[]? | select(.http_status == 429) | .until] | max')
check "the deadline honours Retry-After (about 120 s)" \
    bash -c "[ $until_ts -ge $(($(date +%s) + 100)) ] && [ $until_ts -le $(($(date +%s) + 125)) ]"
check "every node learns the cool-down" wait_for 20 bash -c \
    "'$CTL' nodes --json | jq -e 'all(.cooldowns | length >= 1)' >/dev/null"
# from here the whole cluster knows: no node may ask before the deadline.
# (Until every node knew, a duty moving under load could meet the 429 once
# more: that node had not heard of it yet.)
asked=$(wc -l <"$WORK/access.log")
expect_exit 1 "signatures check while every mirror is cooling down" "$CTL" signatures check
check "says so" grep -q "every mirror of the policy is cooling down" "$WORK/err"
# stop whichever node holds the duty: the next holder must not ask either
holder=$(duty_holder)
check "one node holds the fetch duty ($holder)" test -n "$holder" -a "$holder" != null
kill "${APID[$holder]}" && wait "${APID[$holder]}"
check "the duty moves to another node, which plans no check before the deadline" \
    wait_for 30 bash -c "'$CTL' nodes --json | jq -e '[.[] | select(.name != \"$holder\" and .liveness == \"up\") | .databases[]? | select(.name == \"test\" and .next_check >= $until_ts)] | length >= 1' >/dev/null"
check "nobody asked the mirror since the cluster knew of the 429" \
    test "$(wc -l <"$WORK/access.log")" -eq "$asked" ||
    tail -n +$((asked + 1)) "$WORK/access.log" | sed 's/^/# asked after: /'
# no mirror to ask and no newer version anywhere: the fetcher says so, and
# its filter keeps scanning with what it has
check "the new fetcher's antivirus is degraded, saying the mirrors are cooling down" \
    wait_for 20 bash -c "'$CTL' nodes --json | jq -e '[.[] | select(.name != \"$holder\" and .antivirus.state == \"degraded\" and (.antivirus.detail | test(\"cooling down\")))] | length == 1' >/dev/null"
check "and every running filter still has version 6 loaded" bash -c \
    "for n in ${NODES[*]}; do [ \$n = $holder ] && continue; jq -e '.antivirus.loaded and (.antivirus.databases[] | select(.name == \"test\") | .version == 6)' $WORK/\$n/run/status.json >/dev/null || exit 1; done"
agent_up "$holder"
rm -f "$WWW/.status"

# ---- a peer with a corrupt file claiming version 7 -----------------------------------------
mkdir -p "$WORK/evil/sigs"
python3 - "$DB/test-6.cvd" "$WORK/evil/sigs/test.cvd" <<'PY'
import sys
data = bytearray(open(sys.argv[1], "rb").read())
head = bytes(data[:512]).split(b":")
head[2] = b"7"                        # the version field of the header
new = b":".join(head)[:512].ljust(512, b" ")
data[:512] = new
data[len(data) // 2] ^= 0xFF          # and a flipped byte in the body
open(sys.argv[2], "wb").write(bytes(data))
PY
chmod 0750 "$WORK/evil/sigs"
"$CTL" node add evil "$("$AGENT" $(agent_args evil) --public-key)" >/dev/null || fail "enrol evil"
agent_up evil
check "the nodes distrust evil and say why" wait_for 30 bash -c \
    "'$CTL' nodes --json | jq -e '[.[] | select(.name != \"evil\") | .distrusted[]? | select(.peer == \"evil\")] | length >= 1' >/dev/null"
check "every node keeps version 6" all_loaded 6
check "no node holds a version 7" bash -c \
    "! '$CTL' nodes --json | jq -e '.[] | select(.name != \"evil\") | .databases[]? | select(.version == 7)' >/dev/null"

# ---- SIGTERM while every peer is frozen -------------------------------------------------
# a gossip round with three silent peers lasts 3 x 2 s: the agent must not
# wait for it (nor for one exchange) before it exits
frozen=(mx2 mx3 evil)
for n in "${frozen[@]}"; do kill -STOP "${APID[$n]}"; done
sleep 1 # mx1 is inside a round with them by now
kill -TERM "${APID[mx1]}"
check "mx1 exits on SIGTERM while its peers are frozen" \
    wait_for 10 bash -c "! kill -0 ${APID[mx1]} 2>/dev/null"
for n in "${frozen[@]}"; do kill -CONT "${APID[$n]}"; done

finish
