#!/usr/bin/env bash
# bench_signatures.sh - how fast a new ClamAV database version reaches every
# node (one fetch from the mirror, then agent-to-agent gossip), side by side
# with Serf's user events (Debian's serf, -coalesce=false) in the same run.
# Not a test: it prints figures.
#
# usage: bench/bench_signatures.sh [N...]     (as root; default N: 10 30 60)
#   ROUNDS=5          updates measured per N (and Serf events per N)
#   GOSSIP_MS=200     the agents' --gossip-ms (Serf's gossip interval is
#                     200 ms to 3 nodes; ours is a round to 3 members)
#   PM_BUILD_DIR=build  a release build (RelWithDebInfo when made here; the
#                     four programs are built first). Never the ASan build.
#   KEEP=DIR          keep the work folder (logs) in DIR afterwards
#   PEER_LINKS=       the agents' --peer-links (default the agent's)
#   CDIFF_MIN_KIB=    the agents' --cdiff-min-kib (default the agent's,
#                     8192: the 40 KiB test database comes whole); 0 makes
#                     every node catch up by CDIFF, as daily would
#   CHECK=1           as an admin of a private mirror would: every publish
#                     is followed at once by `privmta-ctl signatures check`
#                     and the policy checks the mirror every hour, so the
#                     figures are the trigger's, not the 1 s poll's (Serf's
#                     `serf event` is such a trigger too); the in-process
#                     row is left out (it has no controller)
#   INPROC=1000       N for the in-process row (bench_sigsync: the agents'
#                     signature sync as actors in INPROC_PROCS processes,
#                     the way the propagation bench runs 1000 agents); ""
#                     skips it
#   INPROC_GOSSIP_MS=2000 INPROC_LINKS=3 INPROC_ROUNDS=2
#   INPROC_TIMEOUT_MS=10000 INPROC_PROCS=1
#                     its gossip round, peer links per node, rounds, peer
#                     reply timeout and processes: 1000 nodes share 2 cores
#                     (gossip every 1000 ms alone took 1.4 of them here; a
#                     node gets 1/500 of a core, so answers are slow) and
#                     a process's open-file limit (a link is ~3
#                     descriptors); INPROC_PROCS=10 spreads the agents
#                     over 10 processes (bench_sigsync.c says why; it
#                     changed nothing measurable here, README)
#
# privmta, for each N: a controller (heartbeat 200 ms, stale 1 s, down
# 3 s), the loopback mirror (tests/data/clamav/mirror.py) serving ClamAV's
# signed test database "test" at version 1, N agents (noop backend, own
# state and sig_dir, a fixed peer port each on 127.0.0.1), enrolled, and a
# policy naming that mirror and [test] with update_frequency 1s (the
# smallest the policy allows). Every node holds version 1, then per round:
#   t0       the mirror's test.cvd is replaced by version 6 (the CDIFFs
#            2..6 are already there), as ClamAV's CDN publishes;
#   t_fetch  the fetch-duty node's test.cld (version 6) appears;
#   t_all    the last node's version 6 file appears.
# A file enters sig_dir only verified, by rename(2); its ctime is that
# rename (ext4 sets it on rename), read from the kernel when the file is
# first seen (the duty holder's next check links the file into its fetch
# directory, which moves the ctime on), so the figures do not depend on
# how often this script polls (every 50 ms). Timestamps are coarse-grained (a
# kernel tick, a few ms). Misses: nodes without version 6 after 30 s.
# Upstream fetches: the mirror's 200 answers in the round (a 1 -> 6 update
# is five CDIFFs: 5 for one fetch; version checks are ranged, 206), the
# most times any one file was served, and how many nodes fetched from the
# mirror (their "version 6 from http://" log lines).
# Between rounds every node must be back at version 1, and only versions 1
# and 6 exist as signed CVDs: the policy drops `test` (agents delete the
# files of a database the policy no longer names), the mirror goes back to
# version 1, the policy names `test` again and the cluster fetches and
# shares version 1 as it does any update. Agents keep running: membership,
# peer connections and duties are those of a cluster that has been up.
#
# Serf, for each N: N `serf agent`s on 127.0.0.1 (own -bind and -rpc-addr
# ports), joined, each with an event handler for user events that appends
# $EPOCHREALTIME (bash's clock, no fork of date) to a per-node file. Per
# round `serf event -coalesce=false` at a random node; t0 just before it,
# first/last = the handlers' timestamps; misses after 30 s. The two
# systems run one after the other, never at the same time.
set -uo pipefail
cd "$(dirname "$0")/.."
SRC=$PWD
NS=("$@")
[ ${#NS[@]} -gt 0 ] || NS=(10 30 60)
ROUNDS=${ROUNDS:-5}
GOSSIP_MS=${GOSSIP_MS:-200}
INPROC=${INPROC-1000}
[ "${CHECK:-}" = 1 ] && INPROC=
INPROC_GOSSIP_MS=${INPROC_GOSSIP_MS:-2000}
INPROC_LINKS=${INPROC_LINKS:-3}
INPROC_ROUNDS=${INPROC_ROUNDS:-2}
INPROC_TIMEOUT_MS=${INPROC_TIMEOUT_MS:-10000}
INPROC_PROCS=${INPROC_PROCS:-1}
BUILD=${PM_BUILD_DIR:-build}
MISS_S=30
[ "$(id -u)" -eq 0 ] || { echo "run as root"; exit 2; }
for tool in python3 jq; do
    command -v "$tool" >/dev/null || { echo "needs $tool"; exit 2; }
done

# ---- a release build, only what this needs, brought up to date -------------
[ -f "$BUILD/CMakeCache.txt" ] ||
    nice cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null ||
    { echo "configuring $BUILD failed"; exit 1; }
echo "building $BUILD..."
nice cmake --build "$BUILD" -j"$(nproc)" --target privmta-controller \
    privmta-agent privmta-sigfetch privmta-ctl bench_sigsync >/dev/null ||
    { echo "build failed"; exit 1; }
BUILD=$(cd "$BUILD" && pwd)
if grep -q 'fsanitize' "$BUILD/CMakeCache.txt" 2>/dev/null; then
    echo "$BUILD is a sanitizer build: no figures from it"; exit 2
fi
CTL="$BUILD/controller/privmta-ctl"
CONTROLLER="$BUILD/controller/privmta-controller"
AGENT="$BUILD/nodeagent/privmta-agent"
DB="$SRC/tests/data/clamav"
if ! command -v serf >/dev/null; then
    echo "installing serf (the peer)..."
    apt-get install -y serf >/dev/null 2>&1 || echo "serf could not be installed"
fi

W=$(mktemp -d /tmp/privmta-bench-sig.XXXXXX)
chmod 0755 "$W" # the agents' fetch_user (nobody) passes through to sig_dir
PIDS=()
stop_pids() { # PID...: TERM, KILL what is left after 5 s; forgets them
    local p i alive keep=()
    kill "$@" 2>/dev/null
    for i in $(seq 1 50); do
        alive=0
        for p in "$@"; do kill -0 "$p" 2>/dev/null && alive=1; done
        [ "$alive" -eq 0 ] && break
        sleep 0.1
    done
    kill -9 "$@" 2>/dev/null
    wait "$@" 2>/dev/null
    for p in "${PIDS[@]}"; do
        case " $* " in *" $p "*) ;; *) keep+=("$p") ;; esac
    done
    PIDS=("${keep[@]}")
}
cleanup() {
    [ ${#PIDS[@]} -gt 0 ] && stop_pids "${PIDS[@]}"
    [ -n "${KEEP:-}" ] && cp -r "$W" "$KEEP" && echo "kept in $KEEP"
    rm -rf "$W"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# A free port on 127.0.0.1 below the ephemeral range, never given twice.
# Called as $(free_port), in a subshell: the ports given are kept in a
# file (a variable set there was lost, and of the ~180 ports a run at N=60
# takes, two collided about every other run: a Serf agent that could not
# bind never joined, and the wait for it took minutes).
free_port() {
    local port low
    low=$(cut -f1 /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
    while :; do
        port=$((12000 + RANDOM % (low - 12000)))
        grep -qx "$port" "$W/.ports-given" 2>/dev/null && continue
        (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && continue
        echo "$port" >>"$W/.ports-given"
        echo "$port"
        return
    done
}
# idle_cpu SECONDS PID...: % of one core the processes use (user +
# system, all threads) over about SECONDS, divided by the time that really
# passed between the two readings (a loaded machine delays them)
idle_cpu() {
    python3 - "$@" <<'PY'
import os, sys, time
def cpu():
    t = 0
    for p in sys.argv[2:]:
        try:
            t += sum(int(x) for x in open("/proc/%s/stat" % p).read()
                     .rsplit(")", 1)[1].split()[11:13])
        except OSError:
            pass
    return t / os.sysconf("SC_CLK_TCK"), time.monotonic()
c0, t0 = cpu()
time.sleep(float(sys.argv[1]))
c1, t1 = cpu()
print("%.0f" % ((c1 - c0) * 100 / (t1 - t0)))
PY
}
# rss PID...: "largest / median" resident memory of the processes, MiB,
# and the medians of its two parts: anonymous (the process's own) and file
# pages (mostly shared libraries' code, shared with every other process
# that maps them: an agent links libzmq, libclamav, libcurl...)
rss() {
    python3 - "$@" <<'PY'
import statistics, sys
v, anon, file = [], [], []
for p in sys.argv[1:]:
    try:
        f = {l.split(":")[0]: int(l.split()[1]) / 1024
             for l in open("/proc/%s/status" % p) if l.startswith(("VmRSS", "RssAnon", "RssFile"))}
        v.append(f["VmRSS"]); anon.append(f["RssAnon"]); file.append(f["RssFile"])
    except (OSError, KeyError, IndexError, ValueError):
        pass
print("%.1f / %.1f (anon %.1f, file %.1f)" % (max(v), statistics.median(v),
      statistics.median(anon), statistics.median(file)) if v else "-")
PY
}
wait_for() { # SECONDS COMMAND...
    local deadline=$((SECONDS + $1))
    shift
    until "$@"; do
        [ "$SECONDS" -ge "$deadline" ] && return 1
        sleep 0.1
    done
}

# ---- the clock side, in one small Python helper ---------------------------
cat >"$W/sig.py" <<'PY'
import os, shlex, shutil, statistics, subprocess, sys, time

def held(d):
    """(version, ctime) of d/test.cld or d/test.cvd, the newer one."""
    best = (0, 0.0)
    for ext in ("cld", "cvd"):
        try:
            with open(os.path.join(d, "test." + ext), "rb") as f:
                head, st = f.read(512), os.fstat(f.fileno())
            v = int(head.split(b":")[2])
        except (OSError, IndexError, ValueError):
            continue
        if v > best[0]:
            best = (v, st.st_ctime_ns / 1e9)
    return best

def wait(v, timeout, dirs):
    """Until every dir holds exactly version v; prints how many do."""
    end = time.time() + timeout
    while True:
        n = sum(held(d)[0] == v for d in dirs)
        if n == len(dirs) or time.time() > end:
            print(n)
            return n == len(dirs)
        time.sleep(0.05)

def publish(www, src, v, timeout, dirs):
    """Mirror -> version v; t0 .. every dir at v. Prints, in ms:
    all fetch spread misses."""
    for k in range(2, v + 1):
        shutil.copy(os.path.join(os.path.dirname(src), "test-%d.cdiff" % k),
                    www)
    cvd = os.path.join(www, "test.cvd")
    # the mirror answers 304 to If-Modified-Since in the same second
    while int(time.time()) <= int(os.path.getmtime(cvd)):
        time.sleep(0.05)
    shutil.copyfile(src, cvd + ".tmp")
    os.replace(cvd + ".tmp", cvd)
    t0 = time.time()
    trigger = os.environ.get("SIG_TRIGGER") # CHECK=1: the admin's command
    checker = subprocess.Popen(shlex.split(trigger),
                               stdout=subprocess.DEVNULL) if trigger else None
    end = t0 + timeout
    # each node's file as first seen at v: the duty holder's next check
    # links the file into the fetch directory, and a link count change
    # moves the ctime on (a second later, with the 1 s update_frequency)
    got = [(0, 0.0)] * len(dirs)
    while True:
        got = [g if g[0] >= v else held(d) for d, g in zip(dirs, got)]
        if all(g[0] >= v for g in got) or time.time() > end:
            break
        time.sleep(0.05)
    if checker and checker.wait() != 0:
        print("%s: exit %d" % (trigger, checker.returncode), file=sys.stderr)
    times = [g[1] for g in got if g[0] >= v]
    miss = len(dirs) - len(times)
    if os.environ.get("SIG_DETAIL"): # per node, ms after t0, for a look
        with open(os.environ["SIG_DETAIL"], "w") as f:
            for d, g in sorted(zip(dirs, got), key=lambda x: x[1][1]):
                f.write("%s %d %.1f\n" % (d, g[0], (g[1] - t0) * 1e3))
    if not times:
        print("nan nan nan %d" % miss)
        return
    first, last = min(times), max(times)
    print("%.1f %.1f %.1f %d" % ((last - t0) * 1e3, (first - t0) * 1e3,
                                 (last - first) * 1e3, miss))

def serf(tag, t0, timeout, files):
    """Until every file has a line "TIME tag"; prints as publish does."""
    end = float(t0) + timeout
    while True:
        seen = []
        for p in files:
            try:
                with open(p) as f:
                    seen += [float(l.split()[0]) for l in f
                             if l.split()[1:2] == [tag]][:1]
            except OSError:
                pass
        if len(seen) == len(files) or time.time() > end:
            break
        time.sleep(0.05)
    t0 = float(t0)
    miss = len(files) - len(seen)
    if not seen:
        print("nan nan nan %d" % miss)
        return
    first, last = min(seen), max(seen)
    print("%.1f %.1f %.1f %d" % ((last - t0) * 1e3, (first - t0) * 1e3,
                                 (last - first) * 1e3, miss))

def summary(path):
    """Rows "all fetch spread misses": p50 and max of each, misses summed."""
    rows = [l.split() for l in open(path) if l.strip()]
    out = []
    for i in range(3):
        xs = sorted(float(r[i]) for r in rows if r[i] != "nan")
        out += ["%.0f" % statistics.median_low(xs) if xs else "-",
                "%.0f" % xs[-1] if xs else "-"]
    out.append(str(sum(int(r[3]) for r in rows)))
    print(" ".join(out))

cmd = sys.argv[1]
if cmd == "wait":
    sys.exit(0 if wait(int(sys.argv[2]), float(sys.argv[3]), sys.argv[4:]) else 1)
elif cmd == "publish":
    publish(sys.argv[2], sys.argv[3], int(sys.argv[4]), float(sys.argv[5]),
            sys.argv[6:])
elif cmd == "serf":
    serf(sys.argv[2], sys.argv[3], float(sys.argv[4]), sys.argv[5:])
elif cmd == "summary":
    summary(sys.argv[2])
PY
sig() { python3 "$W/sig.py" "$@"; }

# ---- privmta ----------------------------------------------------------------
policy() { # FILE DATABASES
    cat >"$1" <<YAML
antispam.enabled: false
antivirus:
  enabled: true
  mirrors: ["$MIRROR"]
  databases: $2
  update_frequency: $([ "${CHECK:-}" = 1 ] && echo 1h || echo 1s)
YAML
}
all_up() {
    "$CTL" nodes --json 2>/dev/null | jq -e --argjson n "$1" \
        'length == $n and all(.liveness == "up")' >/dev/null
}
# nodes holding the fetch duty for test (the controller's view)
duty_holders() {
    "$CTL" nodes --json 2>/dev/null | jq '[.[] | select(any(.databases[]?;
        .name == "test" and .next_check > 0))] | length'
}
# the agents log "node NAME: test version 6 from mirror URL" (or "from peer")
mirror_fetchers() { cat "$C"/n*/agent.log | grep -c "test version 6 from mirror "; }
# TCP connections this machine opened so far (every agent's, the fetcher's)
tcp_opens() { awk '$1 == "Tcp:" && $6 ~ /^[0-9]+$/ { print $6 }' /proc/net/snmp; }

run_privmta() { # N: one line per round in $W/pm.N
    local n=$1 i r
    C="$W/pm$n"
    mkdir -p "$C/www"
    local port aport pids=()
    port=$(free_port)
    aport=$(free_port)
    export PRIVMTA_STATE_DIR="$C/controller" PRIVMTA_CONTROLLER="tcp://127.0.0.1:$port"
    export PRIVMTA_CTL_CONFIG=/dev/null
    cp "$DB/test-1.cvd" "$C/www/test.cvd"
    python3 "$DB/mirror.py" "$C/www" "$C/mirror.port" "$C/access.log" \
        >"$C/mirror.out" 2>&1 &
    pids+=($!)
    "$CONTROLLER" --state-dir "$C/controller" --endpoint "tcp://127.0.0.1:$port" \
        --agent-endpoint "tcp://127.0.0.1:$aport" --heartbeat-ms 200 \
        --stale-after-ms 1000 --down-after-ms 3000 >"$C/controller.log" 2>&1 &
    pids+=($!)
    PIDS+=("${pids[@]}")
    wait_for 15 test -s "$C/mirror.port" &&
        wait_for 15 "$CTL" --timeout 0.3 policy history --limit 1 >/dev/null 2>&1 ||
        { echo "N=$n: controller or mirror did not start"; return 1; }
    MIRROR="http://127.0.0.1:$(cat "$C/mirror.port")"
    touch "$C/access.log"
    local dirs=() args apids=()
    for i in $(seq 1 "$n"); do
        # a fixed peer port: what a deployment has (peer_bind in its config)
        args=(--name "n$i" --state-dir "$C/n$i/agent" --backend noop
            --controller "tcp://127.0.0.1:$aport"
            --controller-key "$C/controller/keys/controller.cert"
            --address 127.0.0.1 --heartbeat-ms 200 --dead-after-ms 1000
            --milter-status "$C/n$i/status.json" --sig-dir "$C/n$i/sigs"
            --peer-bind "tcp://127.0.0.1:$(free_port)" --gossip-ms "$GOSSIP_MS"
            ${CDIFF_MIN_KIB:+--cdiff-min-kib "$CDIFF_MIN_KIB"}
            ${PEER_LINKS:+--peer-links "$PEER_LINKS"})
        mkdir -p "$C/n$i"
        "$CTL" node add "n$i" "$("$AGENT" "${args[@]}" --public-key)" >/dev/null ||
            { echo "N=$n: enrolling n$i failed"; return 1; }
        "$AGENT" "${args[@]}" >"$C/n$i/agent.log" 2>&1 &
        PIDS+=($!)
        pids+=($!)
        apids+=($!)
        dirs+=("$C/n$i/sigs")
    done
    policy "$C/with.yaml" "[test]"
    policy "$C/without.yaml" "[]"
    "$CTL" policy validate "$C/with.yaml" >/dev/null || { echo "policy refused"; return 1; }
    wait_for 60 all_up "$n" || echo "N=$n: not every node is up"
    "$CTL" policy push "$C/with.yaml" --wait=60 >/dev/null ||
        echo "N=$n: policy push did not reach every node"
    sig wait 1 60 "${dirs[@]}" >/dev/null || echo "N=$n: not every node holds version 1"
    sleep 2
    idle_cpu 5 "${apids[@]}" >"$W/pmcpu.$n"
    echo "  privmta N=$n: the idle agents use $(cat "$W/pmcpu.$n") % of one core together"
    : >"$W/pm.$n"
    local before f0 o0 opens res
    for r in $(seq 1 "$ROUNDS"); do
        if [ "$r" -gt 1 ]; then # back to version 1 everywhere
            "$CTL" policy push "$C/without.yaml" --wait=60 >/dev/null
            sig wait 0 30 "${dirs[@]}" >/dev/null || echo "N=$n: files of test stay"
            rm -f "$C/www/"*.cdiff
            cp "$DB/test-1.cvd" "$C/www/test.cvd.tmp" && mv "$C/www/test.cvd.tmp" "$C/www/test.cvd"
            "$CTL" policy push "$C/with.yaml" --wait=60 >/dev/null
            sig wait 1 60 "${dirs[@]}" >/dev/null ||
                echo "N=$n round $r: not every node back at version 1"
        fi
        wait_for 30 all_up "$n" || echo "N=$n round $r: not every node up"
        sleep 2 # the fetcher's checks in their steady rhythm
        echo "  round $r: duty holders $(duty_holders)" >>"$W/notes.$n"
        before=$(wc -l <"$C/access.log")
        f0=$(mirror_fetchers)
        o0=$(tcp_opens)
        res=$(SIG_DETAIL="$C/arrivals.$r" SIG_TRIGGER="$([ "${CHECK:-}" = 1 ] && echo "$CTL signatures check")" sig publish "$C/www" "$DB/test-6.cvd" 6 "$MISS_S" "${dirs[@]}")
        sleep 0.5 # a late second fetch would show in the log
        local ok maxfile
        ok=$(tail -n +$((before + 1)) "$C/access.log" | grep -c ' 200 ')
        maxfile=$(tail -n +$((before + 1)) "$C/access.log" | awk '$3 == 200 { c[$2]++ }
            END { m = 0; for (k in c) if (c[k] > m) m = c[k]; print m }')
        opens=$(($(tcp_opens) - o0))
        echo "$res $ok $maxfile $(($(mirror_fetchers) - f0)) $opens" >>"$W/pm.$n"
        printf '  privmta N=%-3d round %d: publish->all %s ms, publish->fetch %s ms, fetch->all %s ms, misses %s; mirror 200s %s (max %s per file), nodes that fetched %s, TCP connections opened %s\n' \
            "$n" "$r" $res "$ok" "$maxfile" "$(($(mirror_fetchers) - f0))" "$opens"
    done
    "$CTL" nodes --json >"$C/nodes.json" 2>/dev/null
    rss "${apids[@]}" >"$W/pmrss.$n"
    stop_pids "${pids[@]}"
}

# ---- privmta, N agents as actors in INPROC_PROCS processes ------------------
run_inproc() { # N: rounds in $W/pm.N, as run_privmta writes them
    local n=$1 out
    C="$W/inproc$n"
    mkdir -p "$C/www"
    cp "$DB/test-1.cvd" "$C/www/test.cvd"
    touch "$C/access.log"
    python3 "$DB/mirror.py" "$C/www" "$C/mirror.port" "$C/access.log" \
        >"$C/mirror.out" 2>&1 &
    local mpid=$!
    PIDS+=("$mpid")
    wait_for 15 test -s "$C/mirror.port" || { echo "N=$n: no mirror"; return 1; }
    "$BUILD/bench/bench_sigsync" "$n" "$INPROC_ROUNDS" "$BUILD/nodeagent/privmta-sigfetch" \
        "http://127.0.0.1:$(cat "$C/mirror.port")" "$C/www" "$C/access.log" "$DB" \
        "$C/nodes" "$INPROC_GOSSIP_MS" "$INPROC_LINKS" "$INPROC_TIMEOUT_MS" "$INPROC_PROCS" \
        >"$C/out" 2>"$C/err" ||
        { echo "N=$n in-process failed: $(tail -3 "$C/err")"; }
    sed -n 's/^round [0-9]*: //p' "$C/out" >"$W/pm.$n"
    sed -n 's/^idle-cpu //p' "$C/out" >"$W/pmcpu.$n"
    out=$(grep -E '^(rss-mib|threads|helpers|open-files)' "$C/out" | tr '\n' ' ')
    echo "  privmta N=$n in $INPROC_PROCS processes: idle $(cat "$W/pmcpu.$n") % of one core; $out"
    awk '{ printf "  round %d: publish->all %s ms, publish->fetch %s ms, fetch->all %s ms, misses %s; mirror 200s %s (max %s per file), nodes that fetched %s\n", NR, $1, $2, $3, $4, $5, $6, $7 }' "$W/pm.$n"
    echo "  ($INPROC_PROCS processes: $n agents' CPU on $(nproc) cores, gossip every $INPROC_GOSSIP_MS ms, $INPROC_LINKS links per node, peer timeout $INPROC_TIMEOUT_MS ms; $out)" >>"$W/notes.$n"
    stop_pids "$mpid"
}

# ---- Serf ---------------------------------------------------------------------
run_serf() { # N: one line per round in $W/serf.N
    local n=$1 i r seed pids=() rpc=() files=()
    S="$W/serf$n"
    mkdir -p "$S/ev"
    cat >"$S/handler.sh" <<SH
#!/bin/bash
echo "\$EPOCHREALTIME \$SERF_USER_EVENT" >>"$S/ev/\$SERF_SELF_NAME"
SH
    chmod +x "$S/handler.sh"
    seed=$(free_port)
    for i in $(seq 1 "$n"); do
        local bind=$seed
        [ "$i" -gt 1 ] && bind=$(free_port)
        rpc+=("127.0.0.1:$(free_port)")
        serf agent -node="s$i" -bind="127.0.0.1:$bind" -rpc-addr="${rpc[-1]}" \
            -retry-join="127.0.0.1:$seed" -retry-interval=1s -log-level=err \
            -event-handler="user=$S/handler.sh" >"$S/s$i.log" 2>&1 &
        PIDS+=($!)
        pids+=($!)
        files+=("$S/ev/s$i")
    done
    # one minute for all of them to see each other, not a minute each
    local joined=0 until=$((SECONDS + 60))
    for i in $(seq 1 "$n"); do
        wait_for $((until > SECONDS ? until - SECONDS : 1)) bash -c "[ \$(serf members -rpc-addr=${rpc[i - 1]} -status=alive 2>/dev/null | wc -l) -eq $n ]" &&
            joined=$((joined + 1))
    done
    [ "$joined" -eq "$n" ] || echo "Serf N=$n: only $joined agents see all $n members"
    sleep 2
    idle_cpu 5 "${pids[@]}" >"$W/serfcpu.$n"
    rss "${pids[@]}" >"$W/serfrss.$n"
    echo "  serf    N=$n: the idle agents use $(cat "$W/serfcpu.$n") % of one core together"
    : >"$W/serf.$n"
    local t0 res at
    for r in $(seq 1 "$ROUNDS"); do
        at=${rpc[RANDOM % n]}
        t0=$EPOCHREALTIME
        serf event -rpc-addr="$at" -coalesce=false "bench-$r" "round $r" >/dev/null ||
            echo "Serf N=$n: serf event failed"
        res=$(sig serf "bench-$r" "$t0" "$MISS_S" "${files[@]}")
        echo "$res" >>"$W/serf.$n"
        printf '  serf    N=%-3d round %d: fire->all %s ms, fire->first %s ms, first->all %s ms, misses %s\n' \
            "$n" "$r" $res
        sleep 1
    done
    stop_pids "${pids[@]}"
}

echo "privmta vs Serf: a new signature version / a user event to every node"
echo "N = ${NS[*]}${INPROC:+ and $INPROC in-process}, $ROUNDS rounds each, gossip ${GOSSIP_MS} ms, $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
if [ -n "$INPROC" ]; then
    echo "N=$INPROC: privmta, agents as actors in $INPROC_PROCS processes..."
    run_inproc "$INPROC"
fi
for n in "${NS[@]}"; do
    echo "N=$n: privmta..."
    run_privmta "$n"
    if command -v serf >/dev/null; then
        echo "N=$n: Serf..."
        run_serf "$n"
    fi
done

echo
echo "privmta: mirror publishes version 6$([ "${CHECK:-}" = 1 ] && echo " and the admin runs privmta-ctl signatures check" || echo " (polled every 1 s)") -> every agent holds it verified;"
echo "Serf: serf event -coalesce=false -> every agent's handler ran. p50 / max over $ROUNDS rounds, ms."
printf '%-4s | %-15s %-15s %-15s %-6s %-10s %-8s | %-15s %-15s %-6s | %-7s %-7s\n' \
    N "publish->all" "publish->fetch" "fetch->all" misses "200s/round" fetchers \
    "fire->all" "first->all" misses "ratio" "ratio"
printf '%-4s | %-15s %-15s %-15s %-6s %-10s %-8s | %-15s %-15s %-6s | %-7s %-7s\n' \
    "" "" "" "" "" "(max/file)" "/round" "" "" "" "all/all" "spread"
for n in "${NS[@]}" $INPROC; do
    [ -s "$W/pm.$n" ] || continue
    read -r pa pam pf pfm ps psm pmiss < <(sig summary "$W/pm.$n")
    ok=$(awk '{ s += $5; if ($6 > m) m = $6 } END { printf "%.1f (%d)", s / NR, m }' "$W/pm.$n")
    fetchers=$(awk '{ s += $7 } END { printf "%.1f", s / NR }' "$W/pm.$n")
    sa=- sam=- ss=- ssm=- smiss=- r1=- r2=-
    if [ -s "$W/serf.$n" ]; then
        read -r sa sam _ _ ss ssm smiss < <(sig summary "$W/serf.$n")
        r1=$(awk -v a="$pa" -v b="$sa" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }')
        r2=$(awk -v a="$ps" -v b="$ss" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }')
    fi
    printf '%-4s | %-15s %-15s %-15s %-6s %-10s %-8s | %-15s %-15s %-6s | %-7s %-7s\n' \
        "$n" "$pa / $pam" "$pf / $pfm" "$ps / $psm" "$pmiss" "$ok" "$fetchers" \
        "$sa / $sam" "$ss / $ssm" "$smiss" "$r1" "$r2"
    [ -f "$W/notes.$n" ] && grep -v 'duty holders 1$' "$W/notes.$n"
done
echo "idle agents' CPU together (% of one core, 5 s after convergence): $(for n in "${NS[@]}" $INPROC; do
    printf 'N=%s privmta %s serf %s; ' "$n" "$(cat "$W/pmcpu.$n" 2>/dev/null)" "$(cat "$W/serfcpu.$n" 2>/dev/null)"
done)"
echo "agents' resident memory, largest / median MiB (median anonymous and file-backed parts; privmta after the rounds: the largest is a fetcher): $(for n in "${NS[@]}"; do
    printf 'N=%s privmta %s serf %s; ' "$n" "$(cat "$W/pmrss.$n" 2>/dev/null)" "$(cat "$W/serfrss.$n" 2>/dev/null)"
done)"
echo "(ratio all/all: privmta publish->all p50 / Serf fire->all p50; spread:"
echo " privmta fetch->all p50 / Serf first->all p50. 200s/round: full downloads"
echo " from the mirror per update; a 1 -> 6 update is 5 CDIFFs, one fetch = 5.)"
