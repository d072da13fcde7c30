#!/usr/bin/env bash
# cluster.sh - a local privmta cluster: one controller and NODES agents
# (default 3), each agent with its own real Postfix on its own loopback
# address (127.0.0.11, .12, ...; SMTP on port 2525) and its own
# privmta-milter (attachments, ClamAV, DKIM; spamd scoring through one
# spamd on 127.0.0.1:7783 with SpamAssassin's shipped rules).
#
#   deploy/cluster.sh up      install, build, start everything, push
#                             deploy/example-policy.yaml, wait, show nodes
#   deploy/cluster.sh status  privmta-ctl nodes
#   deploy/cluster.sh publish the local mirror moves ClamAV's test database
#                             from version 1 to 6 (five CDIFFs) and has
#                             the cluster check it now (privmta-ctl
#                             signatures check): watch `status` as one
#                             node fetches it and the others pull it from
#                             their peers
#   deploy/cluster.sh restart privmta-ctl restart --rolling --service all:
#                             node by node, drained, restarted, checked
#   deploy/cluster.sh milter NAME   (re)start node NAME's privmta-milter:
#                             what its agent runs in a rolling restart
#   deploy/cluster.sh down    stop what `up` started (by PID) and the Postfix
#                             instances; the state stays in .cluster/
#
# PRIVMTA_CLUSTER_DIR (default .cluster) holds its state and logs;
# PM_BUILD_DIR (default build) its programs; PM_CLUSTER_NO_BUILD=1 skips
# installing and building (tests/integration/test_cluster.sh).
# PM_CLUSTER_NET (default 127.0.0; node i listens on NET.(10+i)) and
# PM_CLUSTER_PORTS (default "7420 7421 7783 7784 9466 7443": controller,
# agents, spamd, mirror, the controller's metrics, the web console; each
# agent serves its metrics on its node's address, port 9467) let a second
# cluster run beside the first, as the test suite's does; `up` keeps them
# in $PRIVMTA_CLUSTER_DIR/cluster.env for the other commands.
#
# The nodes' antivirus uses ClamAV's own signed test database ("test",
# tests/data/clamav), served by a local mirror on 127.0.0.1:7784
# (tests/data/clamav/mirror.py), never the Internet: the pushed policy is
# deploy/example-policy.yaml pointed at that mirror, checking it every 30 s.
#
# Each node has a STARTTLS certificate and one login, demo@mxI.test, its
# password (the same on every node) in $PRIVMTA_CLUSTER_DIR/mail-password
# (0600), so that the policy's outbound auth rules meet a real login.
#
# The web console (privmta-web) serves https://127.0.0.1:7443/ with a
# self-signed certificate; its user is "admin", with a random password
# written to $PRIVMTA_CLUSTER_DIR/web-password (mode 0600).
#
# Afterwards, talk to it with:
#   export PRIVMTA_STATE_DIR=$PWD/.cluster/controller
#   build/controller/privmta-ctl policy show
set -euo pipefail
cd "$(dirname "$0")/.."
TOP=$PWD
ROOT=${PRIVMTA_CLUSTER_DIR:-$TOP/.cluster}
BUILD=${PM_BUILD_DIR:-$TOP/build}
NODES=${NODES:-3}
CTL="$BUILD/controller/privmta-ctl"
if [ "${1:-}" != up ] && [ -f "$ROOT/cluster.env" ]; then
    source "$ROOT/cluster.env" # what `up` was given
fi
NET=${PM_CLUSTER_NET:-127.0.0}
read -r CTL_PORT AGENT_PORT SPAMD_PORT MIRROR_PORT METRICS_PORT WEB_PORT \
    <<<"${PM_CLUSTER_PORTS:-7420 7421 7783 7784 9466 7443}"
METRICS_PORT=${METRICS_PORT:-9466}
WEB_PORT=${WEB_PORT:-7443}
export PRIVMTA_STATE_DIR="$ROOT/controller"
export PRIVMTA_CONTROLLER=tcp://127.0.0.1:$CTL_PORT
export PRIVMTA_CTL_CONFIG=/dev/null

say() { echo "cluster: $*"; }

start_bg() { # NAME LOG COMMAND...
    local name=$1 log=$2
    shift 2
    nohup "$@" >>"$log" 2>&1 &
    echo "$! $name" >>"$ROOT/pids"
}

down() {
    if [ -f "$ROOT/pids" ]; then
        while read -r pid name; do
            kill "$pid" 2>/dev/null && say "stopped $name (pid $pid)" || true
        done <"$ROOT/pids"
        rm -f "$ROOT/pids"
    fi
    for dir in "$ROOT"/mx*; do
        [ -d "$dir/etc" ] && bash deploy/postfix-node.sh stop "$dir" >/dev/null 2>&1 || true
    done
}

wait_for_controller() {
    for _ in $(seq 1 100); do
        "$CTL" --timeout 0.2 policy history --limit 1 >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    echo "cluster: the controller did not start; see $ROOT/controller.log" >&2
    return 1
}

up() {
    if [ -z "${PM_CLUSTER_NO_BUILD:-}" ]; then # tests bring their own build
        bash deploy/install-deps.sh
        cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
        cmake --build "$BUILD" -j"$(nproc)" >/dev/null
    fi
    down
    mkdir -p "$ROOT"
    printf 'PM_CLUSTER_NET=%q\nPM_CLUSTER_PORTS=%q\n' "$NET" \
        "$CTL_PORT $AGENT_PORT $SPAMD_PORT $MIRROR_PORT $METRICS_PORT $WEB_PORT" \
        >"$ROOT/cluster.env"
    start_bg spamd "$ROOT/spamd.log" spamd --listen=127.0.0.1:$SPAMD_PORT -x \
        --allowed-ips=127.0.0.1 --max-children=2 -u nobody --syslog=stderr
    mkdir -p "$ROOT/mirror/www"
    cp tests/data/clamav/test-1.cvd "$ROOT/mirror/www/test.cvd"
    rm -f "$ROOT/mirror/www/"*.cdiff "$ROOT/mirror/port"
    start_bg mirror "$ROOT/mirror/mirror.log" python3 tests/data/clamav/mirror.py \
        "$ROOT/mirror/www" "$ROOT/mirror/port" "$ROOT/mirror/access.log" "$MIRROR_PORT"
    start_bg controller "$ROOT/controller.log" \
        "$BUILD/controller/privmta-controller" --state-dir "$ROOT/controller" \
        --endpoint "tcp://127.0.0.1:$CTL_PORT" --agent-endpoint "tcp://127.0.0.1:$AGENT_PORT" \
        --metrics-listen "127.0.0.1:$METRICS_PORT"
    wait_for_controller
    say "controller up on 127.0.0.1:$CTL_PORT (agents: $AGENT_PORT;" \
        "metrics: http://127.0.0.1:$METRICS_PORT/metrics)"
    for i in $(seq 1 "$NODES"); do
        local name="mx$i" addr="$NET.$((10 + i))" dir="$ROOT/mx$i"
        # a node that exists keeps its main.cf, as the agent left it: made
        # anew, every parameter the policy owns was gone, and each agent
        # reported them all as hand edits it put back (a second `up`)
        [ -f "$dir/etc/main.cf" ] ||
            bash deploy/postfix-node.sh create "$dir" "$addr" 2525 "$name" >/dev/null
        logins "$dir" "$name"
        bash deploy/postfix-node.sh start "$dir" >/dev/null
        # the milter first: it waits for the policy the agent hands over
        # ($dir/handoff, root:nogroup 0750), as nobody, reading through
        # its group only; start order does not matter
        mkdir -p "$dir/milter" "$dir/sigs"
        milter "$name"
        local agent=("$BUILD/nodeagent/privmta-agent" --name "$name"
            --state-dir "$dir/agent" --postfix-dir "$dir/etc"
            --controller "tcp://127.0.0.1:$AGENT_PORT"
            --controller-key "$ROOT/controller/keys/controller.cert"
            --address "$addr:2525" --milter-socket "unix:$dir/milter.sock"
            --notify-listener "$addr:2526" # in master.cf, and the milter's
            --milter-dir "$dir/handoff" --milter-group nogroup
            --milter-status "$dir/milter/status.json"
            --sig-dir "$dir/sigs" --peer-bind "tcp://$addr:7422"
            --metrics-listen "$addr:9467"
            --milter-restart "$TOP/deploy/cluster.sh milter $name"
            --milter-program "$BUILD/scan/privmta-milter"
            --milter-config "$dir/milter.conf" --rehearsal-dir "$dir/rehearsal")
        "$CTL" node add "$name" "$("${agent[@]}" --public-key)" >/dev/null
        start_bg "agent $name" "$dir/agent.log" "${agent[@]}"
        say "node $name: Postfix on $addr:2525, agent enrolled, milter started;" \
            "metrics: http://$addr:9467/metrics"
    done
    sed 's/^  update_frequency: .*/  update_frequency: 30s/' deploy/example-policy.yaml \
        >"$ROOT/policy.yaml"
    printf 'antivirus.mirrors: ["http://127.0.0.1:%s"]\nantivirus.databases: [test]\n' "$MIRROR_PORT" \
        >>"$ROOT/policy.yaml"
    # ClamAV's test database detects only ClamAV's test files; the EICAR
    # test file, which the official databases detect and which is what an
    # admin sends first, by a custom signature (the 68 bytes, anywhere)
    cat >>"$ROOT/policy.yaml" <<'EOF'
antivirus.custom_signatures:
  - name: eicar.ndb
    content: "Eicar-Test-Signature:0:*:58354f2150254041505b345c505a58353428505e2937434329377d2445494341522d5354414e444152442d414e544956495255532d544553542d46494c452124482b482a\n"
EOF
    "$CTL" policy push "$ROOT/policy.yaml" -m "example policy, local mirror" --wait=20
    say "waiting for every node to load ClamAV's test database"
    for _ in $(seq 1 300); do
        "$CTL" nodes --json | jq -e 'all(.databases | length > 0 and
            all(.loaded_version > 0))' >/dev/null && break
        sleep 0.1
    done
    web
    "$CTL" nodes
    say "logs in $ROOT; stop with: deploy/cluster.sh down"
}

# logins DIR NAME: what a mail node has and a bare instance lacks for SMTP
# AUTH to work, so that the policy's outbound auth rules meet a real login:
# a certificate for STARTTLS (self-signed, key 0600; AUTH is offered only
# after STARTTLS), one mailbox user demo@NAME.test in a Cyrus sasldb
# (root:postfix 0640, what smtpd reads), the password the same on every
# node, random, in $ROOT/mail-password (0600, given to saslpasswd2 on
# stdin), and smtpd_sender_login_maps naming demo as the owner of its
# address, which reject_sender_login_mismatch needs. Without them every
# node showed AUTH degraded ("no client can log in").
logins() {
    local dir=$1 name=$2 etc=$1/etc pw="$ROOT/mail-password"
    [ -s "$pw" ] || (umask 077 && openssl rand -base64 12 >"$pw")
    mkdir -p "$etc/tls" "$etc/sasl"
    if [ ! -s "$etc/tls/key.pem" ] || [ ! -s "$etc/tls/cert.pem" ]; then
        local out
        out=$( (umask 077 && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 \
            -nodes -days 825 -subj "/CN=$name.test" -addext "subjectAltName=DNS:$name.test" \
            -keyout "$etc/tls/key.pem" -out "$etc/tls/cert.pem") 2>&1) ||
            { echo "cluster: cannot make $name's TLS certificate in $etc/tls: $out" >&2; return 1; }
        chmod 0644 "$etc/tls/cert.pem"
    fi
    printf 'pwcheck_method: auxprop\nauxprop_plugin: sasldb\nsasldb_path: %s\nmech_list: PLAIN LOGIN\n' \
        "$etc/sasl/sasldb2" >"$etc/sasl/smtpd.conf"
    rm -f "$etc/sasl/sasldb2" # it holds the password: made 0600, then opened to postfix
    (umask 077 && tr -d '\n' <"$pw" |
        saslpasswd2 -f "$etc/sasl/sasldb2" -c -p -u "$name.test" demo) ||
        { echo "cluster: saslpasswd2 failed for $name" >&2; return 1; }
    chown root:postfix "$etc/sasl/sasldb2"
    chmod 0640 "$etc/sasl/sasldb2"
    grep -q '^demo ' "$etc/aliases" || # a mailbox, so its address is known
        echo "demo root" >>"$etc/aliases"
    echo "demo@$name.test demo@$name.test" >"$etc/logins"
    postconf -c "$etc" -e \
        "smtpd_tls_chain_files = $etc/tls/key.pem, $etc/tls/cert.pem" \
        "smtpd_tls_security_level = may" \
        "cyrus_sasl_config_path = $etc/sasl" \
        "smtpd_sender_login_maps = texthash:$etc/logins"
}

# web: the console, its key enrolled on first start, one user "admin"
# with a random password (kept 0600 in $ROOT/web-password, never shown).
web() {
    local pw="$ROOT/web-password" users="$ROOT/web-users"
    if [ ! -s "$pw" ] || [ ! -s "$users" ]; then
        (umask 077 && openssl rand -base64 18 >"$pw")
        rm -f "$users"
        "$CTL" --web-users "$users" web user add admin <"$pw" >/dev/null
    fi
    start_bg web "$ROOT/web.log" "$BUILD/web/privmta-web" \
        --listen "127.0.0.1:$WEB_PORT" --state-dir "$ROOT/web" \
        --enroll-dir "$ROOT/controller/clients" --users "$users" \
        --controller "tcp://127.0.0.1:$CTL_PORT" \
        --server-key "$ROOT/controller/keys/controller.cert"
    for _ in $(seq 1 100); do
        curl -sk -o /dev/null "https://127.0.0.1:$WEB_PORT/" && break
        sleep 0.1
    done
    say "web console: https://127.0.0.1:$WEB_PORT/ (self-signed certificate;" \
        "user admin, password in $pw)"
}

# milter NAME: (re)starts node NAME's privmta-milter, detached, and waits
# until it listens. Run by `up`, and by NAME's agent (milter_restart) in a
# rolling restart: the old one is stopped first (by its PID file) and
# waited for, so the new one takes over its socket.
milter() {
    local name=$1 dir="$ROOT/$1" addr old
    addr="$NET.$((10 + ${1#mx}))"
    [ -d "$dir/etc" ] || { echo "cluster: no node $name" >&2; return 1; }
    if old=$(cat "$dir/milter.pid" 2>/dev/null) && kill "$old" 2>/dev/null; then
        for _ in $(seq 1 100); do kill -0 "$old" 2>/dev/null || break; sleep 0.1; done
    fi
    rm -f "$dir/milter.sock" 2>/dev/null || true # so the wait below sees the new one
    # its settings in a file, as a package installs them: the agent's
    # policy tests start a scratch milter from the same file
    cat >"$dir/milter.conf" <<EOF
socket = unix:$dir/milter.sock
node = $name
policy_file = $dir/handoff/policy.pb
dkim_key_dir = $dir/handoff/dkim
sig_dir = $dir/sigs
sig_jitter_ms = 3000
spamd = 127.0.0.1:$SPAMD_PORT
status_dir = $dir/milter
user = nobody
EOF
    setsid nohup "$BUILD/scan/privmta-milter" -c "$dir/milter.conf" \
        >>"$dir/milter.log" 2>&1 </dev/null &
    echo $! >"$dir/milter.pid"
    echo "$! milter $name" >>"$ROOT/pids"
    for _ in $(seq 1 100); do [ -S "$dir/milter.sock" ] && return 0; sleep 0.1; done
    echo "cluster: the milter of $name does not listen; see $dir/milter.log" >&2
    return 1
}

publish() {
    local www="$ROOT/mirror/www"
    for v in 2 3 4 5 6; do cp "tests/data/clamav/test-$v.cdiff" "$www/"; done
    cp tests/data/clamav/test-6.cvd "$www/test.cvd.tmp"
    mv "$www/test.cvd.tmp" "$www/test.cvd"
    say "the mirror now serves test version 6"
    # as an admin of a private mirror would after cvdupdate: no waiting for
    # the next planned check (the demo's update_frequency, 30 s)
    if "$CTL" signatures check; then
        say "the node holding the fetch duty fetches it now and the others"
    else
        say "within 30 s one node fetches it (its next planned check) and the others"
    fi
    say "pull it from their peers: deploy/cluster.sh status"
}

case "${1:-}" in
up) up ;;
publish) publish ;;
down) down ;;
milter) milter "${2:?usage: deploy/cluster.sh milter NAME}" ;;
restart) "$CTL" restart --rolling --service all --wait=600 ;;
status) "$CTL" nodes ;;
*)
    sed -n '2,/^set -e/p' "$0" | grep '^#' | sed 's/^# \{0,1\}//' >&2
    exit 2
    ;;
esac
