# lib.sh - shared helpers for privmta's integration tests (bash).
# Usage: source lib.sh BUILD_DIR SOURCE_DIR. Every process a test starts is
# recorded and killed on exit, by PID, so a failing test leaves nothing
# running. All traffic stays on 127.0.0.1.

BUILD=${1:?build dir}
SRC=${2:?source dir}
CTL="$BUILD/controller/privmta-ctl"
CONTROLLER="$BUILD/controller/privmta-controller"
WORK=$(mktemp -d /tmp/privmta-test.XXXXXX)
# Postfix daemons and spamd run as other users and must reach their files
chmod 755 "$WORK"
PASSED=0
FAILED=0
PIDS=()

cleanup() {
    for pid in "${PIDS[@]}"; do kill -9 "$pid" 2>/dev/null; done
    wait 2>/dev/null
    rm -rf "$WORK"
}
trap cleanup EXIT

pass() { PASSED=$((PASSED + 1)); echo "ok - $*"; }
fail() { FAILED=$((FAILED + 1)); echo "FAIL - $*"; }

# check DESCRIPTION COMMAND...: passes when COMMAND exits 0
check() {
    local what=$1
    shift
    if "$@"; then pass "$what"; else fail "$what"; fi
}

# expect_exit CODE DESCRIPTION COMMAND...: passes when COMMAND exits CODE
expect_exit() {
    local want=$1 what=$2
    shift 2
    "$@" >"$WORK/out" 2>"$WORK/err"
    local got=$?
    if [ "$got" -eq "$want" ]; then
        pass "$what"
    else
        fail "$what (exit $got, wanted $want)"
        sed 's/^/    | /' "$WORK/out" "$WORK/err" | head -20
    fi
}

# A free TCP port on 127.0.0.1.
free_port() {
    local port
    while :; do
        port=$((20000 + RANDOM % 30000))
        (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null || { echo "$port"; return; }
    done
}

# start_controller STATE_DIR PORT: starts it and waits until it answers.
start_controller() {
    local state=$1 port=$2
    "$CONTROLLER" --state-dir "$state" --endpoint "tcp://127.0.0.1:$port" \
        >>"$WORK/controller.log" 2>&1 &
    CONTROLLER_PID=$!
    PIDS+=("$CONTROLLER_PID")
    for _ in $(seq 1 100); do
        [ -f "$state/keys/admin.cert_secret" ] &&
            "$CTL" --timeout 0.2 --state-dir "$state" \
                --controller "tcp://127.0.0.1:$port" policy history \
                --limit 1 >/dev/null 2>&1 && return 0
        sleep 0.05
    done
    echo "controller did not come up:"; cat "$WORK/controller.log"
    return 1
}

finish() {
    echo "$PASSED passed, $FAILED failed"
    [ "$FAILED" -eq 0 ]
}
