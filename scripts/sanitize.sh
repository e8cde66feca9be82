#!/usr/bin/env bash
# The sanitizer suite: builds the whole project and its tests with AddressSanitizer +
# UndefinedBehaviorSanitizer (gcc, -fsanitize=address,undefined, no recovery) into build-asan and
# runs every test with CTest. Any sanitizer report fails the run, also one from a child process
# (the CLI run by a test): reports go to files under build-asan/sanitizer-reports/ (log_path),
# and the run fails when any exists, even if the test that caused it passed. Sanitizer exit
# code 86, so a report is never mistaken for the CLI's own exit codes 1 and 2.
# LibTorch, Qt, HDF5, OpenCV are Debian's (not instrumented); what is suppressed and why is in
# scripts/sanitize.supp.
#   scripts/sanitize.sh [--core] [ctest args...]   e.g. scripts/sanitize.sh -R tst_patchdataset
# --core: build and run only the tests labelled "core" (tests/CMakeLists.txt: no LibTorch, no
# studio, no CLI: readers, parsers, study store, search, cost, compression, HLS; target
# core_tests). That is what .ci/run runs; the whole suite is the run without --core.
# Environment: BRAGGNAC_ASAN_DIR (default build-asan), BRAGGNAC_JOBS (build jobs, default nproc),
# BRAGGNAC_ASAN_KEEP_GOING=1 (build what builds, ninja -k 0, and test that; a test whose
# executable did not build then fails as "not run").
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
SCOPE=all
if [ "${1:-}" = --core ]; then
  SCOPE=core
  shift
fi
DIR=${BRAGGNAC_ASAN_DIR:-build-asan}
case "$DIR" in /*) ;; *) DIR="$ROOT/$DIR" ;; esac
JOBS=${BRAGGNAC_JOBS:-$(nproc)}
SAN="-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer"
export CCACHE_BASEDIR=${CCACHE_BASEDIR:-$ROOT}   # as scripts/build.sh: clones share the cache
if [ ! -f "$DIR/build.ninja" ]; then
  LAUNCHER=()
  command -v ccache >/dev/null && LAUNCHER=(-DCMAKE_C_COMPILER_LAUNCHER=ccache -DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
  # -O1 -g1: line numbers in reports, and torch-including files compile faster than at -O2.
  cmake -S "$ROOT" -B "$DIR" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCMAKE_C_FLAGS_RELWITHDEBINFO="-O1 -g1" -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g1" \
    -DCMAKE_C_FLAGS="$SAN" -DCMAKE_CXX_FLAGS="$SAN" -DCMAKE_EXE_LINKER_FLAGS="$SAN" \
    -DCMAKE_SHARED_LINKER_FLAGS="$SAN" -DBRAGGNAC_BUILD_BENCH=OFF "${LAUNCHER[@]}" >/dev/null
fi
# Sanitized tests run several times slower (a CLI run starts LibTorch under ASan in seconds):
# CTest's per-test limit and QtTest's per-function watchdog (300 s by default) are raised.
cmake -DBRAGGNAC_TEST_TIMEOUT=3600 "$DIR" >/dev/null
export QTEST_FUNCTION_TIMEOUT=3600000
TARGET=()
LABEL=()
if [ "$SCOPE" = core ]; then
  TARGET=(--target core_tests)
  LABEL=(-L core)
fi
start=$(date +%s)
if [ "${BRAGGNAC_ASAN_KEEP_GOING:-0}" = 1 ]; then
  cmake --build "$DIR" -j "$JOBS" "${TARGET[@]}" -- -k 0 || echo "sanitize: some targets did not build" >&2
else
  cmake --build "$DIR" -j "$JOBS" "${TARGET[@]}"
fi
echo "sanitize: build $(( $(date +%s) - start )) s"

REPORTS="$DIR/sanitizer-reports"
rm -rf "$REPORTS" && mkdir -p "$REPORTS" /tmp/braggnac-xdg && chmod 700 /tmp/braggnac-xdg
SUPP="$ROOT/scripts/sanitize.supp"
# allocator_may_return_null=1: a malloc too big to satisfy returns NULL as it does in production
# (HDF5 asks for 0x3434343434343458 bytes on a corrupt file and then fails cleanly; our code
# gets std::bad_alloc); without it ASan reports the request itself.
export ASAN_OPTIONS="halt_on_error=1:exitcode=86:detect_leaks=1:allocator_may_return_null=1:strict_init_order=1:log_path=$REPORTS/asan"
export LSAN_OPTIONS="suppressions=$SUPP:print_suppressions=0"
# UBSan gets no suppressions file: it suppresses nothing, and its parser refuses the "leak:"
# lines (it reports "failed to parse suppressions" instead of the finding).
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:exitcode=86:log_path=$REPORTS/ubsan"
start=$(date +%s)
rc=0
( cd "$DIR" && QT_QPA_PLATFORM=offscreen ctest --output-on-failure "${LABEL[@]}" "$@" ) || rc=$?
echo "sanitize: tests $(( $(date +%s) - start )) s"
# A report file holds an error ("ERROR: AddressSanitizer", "runtime error:", a leak's
# "SUMMARY:") or only warnings (allocator_may_return_null's "failed to allocate 0x... bytes",
# from the fuzz regression inputs that make HDF5 ask for absurd sizes): errors fail the run,
# warnings are listed.
findings=0
for f in "$REPORTS"/*; do
  [ -e "$f" ] || continue
  if grep -q -E 'ERROR: |runtime error|SUMMARY: ' "$f"; then
    findings=$((findings + 1))
    echo "==== sanitizer report $f" >&2
    cat "$f" >&2
  else
    echo "sanitize: warnings only in $f: $(sort -u "$f" | head -3 | tr '\n' ' ')" >&2
  fi
done
if [ "$findings" -gt 0 ]; then
  echo "sanitize: $findings process(es) with sanitizer reports" >&2
  rc=1
fi
exit $rc
