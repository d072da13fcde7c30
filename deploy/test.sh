#!/usr/bin/env bash
# Installs what is needed, builds privmta with ASan+UBSan and -Werror, and
# runs every test (Criterion unit tests and end-to-end scripts) under ctest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash deploy/install-deps.sh
BUILD=${PM_BUILD_DIR:-build-test}
cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Debug -DPM_SANITIZE=ON \
    -DPM_WERROR=ON >/dev/null
cmake --build "$BUILD" -j"$(nproc)"
# A leak or undefined behaviour fails the test that caused it.
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:halt_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
cd "$BUILD"
ctest --output-on-failure --timeout 300 "$@"
