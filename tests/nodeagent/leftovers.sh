#!/usr/bin/env bash
# leftovers.sh SRC - stops what a killed test runner left: the Postfix
# instances (deploy/postfix-node.sh destroy) and sink under each
# /tmp/pm-test-{postfix,restart}.* whose runner (owner.pid, written by
# testsh_base_new) is gone, and removes the directory. A directory whose
# runner still runs (another ctest beside this one), or that names no
# runner, is left alone. ctest runs it after test_postfix and test_restart
# (FIXTURES_CLEANUP), also when they timed out.
set -u
SRC=$1
for base in /tmp/pm-test-postfix.* /tmp/pm-test-restart.*; do
    [ -f "$base/owner.pid" ] || continue
    pid=$(cat "$base/owner.pid")
    case $pid in '' | *[!0-9]*) continue ;; esac
    kill -0 "$pid" 2>/dev/null && continue
    echo "leftovers: $base was left by runner $pid, which is gone: stopping what it started"
    for d in "$base"/*/; do
        [ -d "$d/etc" ] && bash "$SRC/deploy/postfix-node.sh" destroy "$d" >/dev/null 2>&1
    done
    pkill -F "$base/sink.pid" 2>/dev/null
    rm -rf "$base"
done
exit 0
