#!/bin/sh
# make-conf.sh PROGRAM HEAD OUT: the /etc file of PROGRAM, made at build
# time (deploy/packaging.cmake): its settings as --print-config shows them
# (every one commented out with its default), with HEAD, the values the
# package sets, after the first three lines.
set -e
"$1" --print-config >"$3.tmp"
{
    head -n 3 "$3.tmp"
    echo '#'
    cat "$2"
    tail -n +4 "$3.tmp"
} >"$3"
rm -f "$3.tmp"
