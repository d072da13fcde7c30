#!/usr/bin/env bash
# Installs what is needed, builds privmta with ASan+UBSan and -Werror, and
# runs every test (Criterion unit tests and end-to-end scripts) under ctest,
# then fuzzes every parser of hostile input briefly (tests/fuzz/run.sh --ci,
# a clang build of its own; PM_TEST_FUZZ=0 skips it). Extra arguments go
# to ctest (e.g. -R test_policy). Tests run as many at a time as there are
# cores (PM_TEST_JOBS): none shares a port, an address or a directory with
# another, and the whole suite passes ten runs in a row that way.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
bash deploy/install-deps.sh || exit 1
BUILD=${PM_BUILD_DIR:-build-test}
cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Debug -DPM_SANITIZE=ON \
    -DPM_WERROR=ON >/dev/null || exit 1
cmake --build "$BUILD" -j"$(nproc)" || exit 1
# the sanitizers exit 86, a code no privmta program uses: an end-to-end
# test tells "ASan stopped privmta-ctl" from "privmta-ctl said rejected (1)"
export ASAN_OPTIONS=detect_leaks=1:halt_on_error=1:exitcode=86
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1:exitcode=86
cd "$BUILD" || exit 1
ctest -j"${PM_TEST_JOBS:-$(nproc)}" --output-on-failure --timeout 600 "$@"
rc=$?
log=Testing/Temporary/LastTest.log
echo
echo "Criterion summaries:"
grep -h "Synthesis:" "$log" | sed 's/^/  /'
# Criterion reports a test that leaks (or trips UBSan in a worker) as
# passed; the sanitizers' own words in the output decide instead.
if grep -q -E "ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:" "$log"; then
    echo "sanitizer reports in the test output:"
    grep -E "ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:" "$log" | head -20
    rc=1
fi
# After ctest and the summaries above, which stay as they were;
# about 3 minutes on two cores: a clang build, then seven targets, 30 s
# each, two at a time.
if [ "${PM_TEST_FUZZ:-1}" != 0 ]; then
    echo
    echo "Fuzzing (tests/fuzz/run.sh --ci):"
    bash "$ROOT/tests/fuzz/run.sh" --ci || rc=1
fi
exit $rc
