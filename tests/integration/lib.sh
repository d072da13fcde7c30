# lib.sh - shared helpers for privmta's integration tests (bash).
# Usage: source lib.sh BUILD_DIR SOURCE_DIR. Every process a test starts is
# recorded and killed on exit, by PID, so a failing test leaves nothing
# running. All traffic stays on 127.0.0.1.
#
# Our own daemons (controller, agents, milters) are started through
# daemon_bg: at finish each is stopped with SIGTERM and must exit 0 by
# itself; its log, like every *.log under $WORK, must hold no sanitizer
# report. The sanitizers exit 86 (deploy/test.sh), which nothing else uses.

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
DAEMONS=() # "PID LOG NAME": the name last, as it may hold spaces ("agent mx1")
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:halt_on_error=1:exitcode=86}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1:exitcode=86}

# start_of PID: when process PID started (clock ticks since boot, from
# /proc), or nothing when there is none. A PID with the start time it was
# tracked with is still that process: PIDs are reused (pid_max 32768
# here), and a test that spawns thousands of processes (test_hosts' kill
# loop) once killed, at its end, another test's process that had been
# given the PID of a controller it had killed and reaped long before.
start_of() {
    local stat
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 0
    set -- ${stat##*) } # the fields after "(comm)", which may hold spaces
    echo "${20}"
}

# kill_tracked: kill -9 each "PID START" line read that is still that
# process.
kill_tracked() {
    local pid start
    while read -r pid start; do
        [ -n "$start" ] && [ "$(start_of "$pid")" = "$start" ] &&
            kill -9 "$pid" 2>/dev/null
    done
    return 0
}

# A watchdog for when this script is killed (ctest's timeout sends
# SIGKILL, which runs no trap): it kills what track recorded, runs what
# on_kill recorded (stopping Postfix instances), and removes $WORK.
SCRIPT_PID=$$
(
    while kill -0 "$SCRIPT_PID" 2>/dev/null; do sleep 1; done
    [ -d "$WORK" ] || exit 0
    echo "watchdog: the test was killed; cleaning up after it" >&2
    [ -f "$WORK/.pids" ] && kill_tracked <"$WORK/.pids"
    [ -f "$WORK/.on-kill" ] && bash "$WORK/.on-kill" >/dev/null 2>&1
    rm -rf "$WORK"
) </dev/null >/dev/null 2>&1 &
WATCHDOG=$!

# track PID: a process of this test, killed at exit (or by the watchdog)
# if it is still running then
track() {
    local entry
    entry="$1 $(start_of "$1")"
    PIDS+=("$entry")
    echo "$entry" >>"$WORK/.pids"
}

# on_kill COMMAND: a shell line the watchdog runs if the script is killed
# (what the script's EXIT trap would do; variables expanded by the caller)
on_kill() { echo "$*" >>"$WORK/.on-kill"; }

cleanup() {
    # only the script itself: a subshell (a background command still
    # expanding its words when a test signals it) may run this trap too
    [ "$BASHPID" = "$SCRIPT_PID" ] || return 0
    kill "$WATCHDOG" 2>/dev/null
    [ ${#PIDS[@]} -eq 0 ] || printf '%s\n' "${PIDS[@]}" | kill_tracked
    wait 2>/dev/null
    # KEEP=DIR keeps the test's folder (logs) for a look afterwards
    [ -n "${KEEP:-}" ] && cp -r "$WORK" "$KEEP" && echo "kept in $KEEP"
    rm -rf "$WORK"
}
trap cleanup EXIT

# skip WHY: the test cannot run here; ctest shows it as skipped (code 77)
skip() { echo "SKIP: $*"; exit 77; }

pass() { PASSED=$((PASSED + 1)); echo "ok - $*"; }
fail() { FAILED=$((FAILED + 1)); echo "FAIL - $*"; }

# check DESCRIPTION COMMAND...: passes when COMMAND exits 0
check() {
    local what=$1
    shift
    if "$@"; then pass "$what"; else fail "$what"; return 1; fi
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

# A free TCP port on 127.0.0.1, below the kernel's ephemeral range (so an
# outgoing connection can never take it between this pick and the bind)
# and never one this test already handed out. Called as $(free_port), in a
# subshell, so the ports handed out are kept in a file, not a variable.
free_port() {
    local port low
    low=$(cut -f1 /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
    while :; do
        port=$((12000 + RANDOM % (low - 12000)))
        grep -qx "$port" "$WORK/.ports-given" 2>/dev/null && continue
        (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && continue
        echo "$port" >>"$WORK/.ports-given"
        echo "$port"
        return
    done
}

# demo_cluster NET [TOOL...]: this test's own demo cluster (deploy/cluster.sh)
# on NET.11-13 and free ports, so a demo on the defaults (or another test's
# cluster) can run beside it; stopped when the test ends or is killed.
# Sets CTL_PORT, AGENT_PORT, METRICS_PORT and WEB_PORT. Skips the test
# without root, Postfix, swaks, spamd, jq or one of the TOOLs.
demo_cluster() {
    local net=$1
    shift
    [ "$(id -u)" -eq 0 ] || skip "needs root (Postfix instances)"
    for tool in postfix swaks spamd jq "$@"; do
        command -v "$tool" >/dev/null || skip "$tool not installed"
    done
    chmod 0755 "$WORK"
    CTL_PORT=$(free_port) AGENT_PORT=$(free_port)
    METRICS_PORT=$(free_port) WEB_PORT=$(free_port)
    export PM_CLUSTER_NET=$net
    export PM_CLUSTER_PORTS="$CTL_PORT $AGENT_PORT $(free_port) $(free_port) $METRICS_PORT $WEB_PORT"
    export PRIVMTA_CLUSTER_DIR="$WORK/cluster" PM_BUILD_DIR="$BUILD" PM_CLUSTER_NO_BUILD=1
    trap 'bash "$SRC/deploy/cluster.sh" down >/dev/null 2>&1; cleanup' EXIT
    on_kill "PRIVMTA_CLUSTER_DIR='$PRIVMTA_CLUSTER_DIR' PM_CLUSTER_NET='$PM_CLUSTER_NET'" \
        "PM_CLUSTER_PORTS='$PM_CLUSTER_PORTS' PM_BUILD_DIR='$BUILD' PM_CLUSTER_NO_BUILD=1" \
        "bash '$SRC/deploy/cluster.sh' down"
}

# catches PID SIG: whether process PID (the program, exec'd) has its own
# handler for SIG (INT, TERM...) yet. A test sends a signal only then: a process started in the
# background of a non-interactive shell (as under CI) inherits SIGINT
# ignored, and a signal sent before main() installs its handler (ASan's
# start-up alone can take seconds on a loaded machine) is lost.
catches() {
    local mask num
    # still the shell that forked it, not yet the program: not the handler
    [ "$(readlink "/proc/$1/exe")" != "$(readlink -f "$BASH")" ] || return 1
    num=$(kill -l "$2") || return 1
    mask=$(awk '/^SigCgt:/ {print $2}' "/proc/$1/status" 2>/dev/null) || return 1
    [ -n "$mask" ] && (((0x$mask >> (num - 1)) & 1))
}

# wait_for SECONDS COMMAND...: runs COMMAND every 0.1 s until it succeeds
# (0) or SECONDS pass (1). The one way these tests wait: on a condition.
# SECONDS is what an idle two-core machine needs; the deadline is that
# times PM_TEST_WAIT_SCALE (3), since a passing wait returns at once and
# a loaded machine (ASan build, fuzzing alongside) once needed more than
# 30 s for the milter to load 1024 DKIM keys and 64 signatures.
wait_for() {
    local deadline=$((SECONDS + $1 * ${PM_TEST_WAIT_SCALE:-3}))
    shift
    while :; do
        "$@" && return 0
        [ "$SECONDS" -ge "$deadline" ] && return 1
        sleep 0.1
    done
}

# waits SECONDS: the same deadline for privmta-ctl's --wait, which waits
# on a condition too (every node applied): --wait=$(waits 10)
waits() { echo $(($1 * ${PM_TEST_WAIT_SCALE:-3})); }

# daemon_bg NAME LOG COMMAND...: starts one of our daemons in the
# background; sets DAEMON_PID.
daemon_bg() {
    local name=$1 log=$2
    shift 2
    "$@" >>"$log" 2>&1 &
    DAEMON_PID=$!
    track "$DAEMON_PID"
    DAEMONS+=("$DAEMON_PID $log $name")
}

# kill_daemon PID: kill -9 on purpose (a crash test); it is then no longer
# expected to exit cleanly
kill_daemon() {
    local entry keep=()
    kill -9 "$1" 2>/dev/null
    { wait "$1"; } 2>/dev/null # no "Killed" notice from the shell
    for entry in "${DAEMONS[@]}"; do
        [ "${entry%% *}" = "$1" ] || keep+=("$entry")
    done
    DAEMONS=("${keep[@]}")
}

# threads_of PID: where each thread of a process that does not stop is
# waiting (the kernel's view, then gdb's stacks when gdb is installed)
threads_of() {
    local t
    for t in /proc/"$1"/task/*; do
        echo "thread ${t##*/} $(cat "$t/comm" 2>/dev/null): in $(cat "$t/wchan" 2>/dev/null)"
    done
    command -v gdb >/dev/null &&
        timeout 30 gdb -p "$1" -batch -ex 'thread apply all bt' 2>/dev/null | grep -E '^(Thread|#)'
}

# stop_daemons: SIGTERM to each daemon still running; each must exit 0
# within 10 s (a sanitizer report exits 86). One that does not is killed,
# after its threads' stacks are added to its log.
stop_daemons() {
    local entry pid name log rc
    for entry in "${DAEMONS[@]}"; do
        read -r pid log name <<<"$entry"
        kill -TERM "$pid" 2>/dev/null
    done
    for entry in "${DAEMONS[@]}"; do
        read -r pid log name <<<"$entry"
        wait_for 10 bash -c "! kill -0 $pid 2>/dev/null" ||
            { threads_of "$pid" >>"$log" 2>&1; kill -9 "$pid" 2>/dev/null; }
        wait "$pid" 2>/dev/null
        rc=$?
        # 127: reaped earlier by a test (it checked that exit itself)
        if [ "$rc" -ne 0 ] && [ "$rc" -ne 127 ]; then
            fail "$name exits cleanly (exit $rc)"
            tail -120 "$log" | sed 's/^/    | /'
        fi
    done
    DAEMONS=()
}

# sanitizer_reports: every log under $WORK free of sanitizer reports
sanitizer_reports() {
    grep -rl -E "ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:|SUMMARY: (Address|Undefined)" \
        --include='*.log' "$WORK" 2>/dev/null
}

# start_controller STATE_DIR PORT: starts it and waits until it answers.
start_controller() {
    local state=$1 port=$2
    daemon_bg controller "$WORK/controller.log" \
        "$CONTROLLER" --state-dir "$state" --endpoint "tcp://127.0.0.1:$port" \
        --agent-endpoint "tcp://127.0.0.1:${AGENT_PORT:=$(free_port)}"
    CONTROLLER_PID=$DAEMON_PID
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
    stop_daemons
    local bad
    bad=$(sanitizer_reports)
    if [ -n "$bad" ]; then
        fail "sanitizer reports in: $bad"
        grep -h -A12 -E "ERROR: (Address|Leak)Sanitizer|runtime error:" $bad | head -40
    fi
    echo "$PASSED passed, $FAILED failed"
    [ "$FAILED" -eq 0 ]
}
