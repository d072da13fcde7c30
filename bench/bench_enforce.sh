#!/usr/bin/env bash
# bench_enforce.sh - push -> enforced on real Postfix nodes.
#
# usage: bench/bench_enforce.sh [PUSHES]   (as root; builds if needed)
#
# Starts the demo cluster (deploy/cluster.sh: a controller and 3 agents,
# each with its own Postfix) in a directory of its own, then PUSHES times
# flips inbound.checks.helo_fqdn and times `privmta-ctl policy set ...
# --wait`: commit, distribution, postconf into a scratch copy, smtpd -S
# probe, rename, SIGHUP to the master and its "reload" log line,
# acknowledgement (`postfix check` ran at each agent's first apply, before
# the timed pushes). --wait polls every 20 ms for the first second, then
# every 100 ms. The figure is what an admin waits for; then, per node, the
# mean of where its applies went, from each agent's log line ("postfix
# DIR: revision N in T ms (...)").
# Stops the cluster at the end. Not a test: it prints figures.
set -euo pipefail
cd "$(dirname "$0")/.."
PUSHES=${1:-10}
export PRIVMTA_CLUSTER_DIR=${PRIVMTA_CLUSTER_DIR:-/tmp/privmta-bench-cluster}
export PRIVMTA_STATE_DIR="$PRIVMTA_CLUSTER_DIR/controller"
export PRIVMTA_CONTROLLER=tcp://127.0.0.1:7420 PRIVMTA_CTL_CONFIG=/dev/null
CTL=${PM_BUILD_DIR:-build}/controller/privmta-ctl
trap 'bash deploy/cluster.sh down >/dev/null' EXIT
bash deploy/cluster.sh up >/dev/null
# one push not measured: every agent has made its first apply (with
# `postfix check`) before the measured ones start
"$CTL" policy set inbound.checks.helo_fqdn=false --wait=60 >/dev/null
# each agent's log from here on: only the measured pushes' applies
declare -A logged
for n in mx1 mx2 mx3; do
    logged[$n]=$(wc -l <"$PRIVMTA_CLUSTER_DIR/$n/agent.log")
done
times=()
for i in $(seq 1 "$PUSHES"); do
    v=$([ $((i % 2)) -eq 0 ] && echo false || echo true)
    t0=$(date +%s%N)
    "$CTL" policy set "inbound.checks.helo_fqdn=$v" --wait=30 >/dev/null
    t1=$(date +%s%N)
    times+=($(((t1 - t0) / 1000000)))
done
printf '%s\n' "${times[@]}" | sort -n | awk -v n="$PUSHES" '
    { v[NR] = $1; sum += $1 }
    END { printf "push -> enforced on 3 Postfix nodes (%d pushes): " \
                 "p50 %d ms, max %d ms, mean %d ms\n",
                 n, v[int((n + 1) / 2)], v[n], sum / n }'
# where each apply went, per node, from its log line "revision N in T ms
# (scratch copy and postconf A, smtpd -S B, postfix check C..., main.cf swap
# and reload D)"
for n in mx1 mx2 mx3; do
    tail -n +$((logged[$n] + 1)) "$PRIVMTA_CLUSTER_DIR/$n/agent.log" |
        sed -n 's/.* in \([0-9]*\) ms (scratch copy and postconf \([0-9]*\), smtpd -S \([0-9]*\), postfix check \([0-9]*\).*reload \([0-9]*\))$/\1 \2 \3 \4 \5/p' |
        awk -v n="$n" '
            { k++; t += $1; w += $2; p += $3; c += $4; r += $5 }
            END { if (k) printf "  %s, mean of %d applies: %d ms (postconf %d, " \
                                "smtpd -S %d, postfix check %d, swap and reload %d)\n",
                                n, k, t / k, w / k, p / k, c / k, r / k }'
done
