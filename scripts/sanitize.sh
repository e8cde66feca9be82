#!/usr/bin/env bash
# The sanitizer suite: builds the whole project and its tests with AddressSanitizer +
# UndefinedBehaviorSanitizer (gcc, -fsanitize=address,undefined, no recovery) into build-asan and
# runs every test with CTest. Any sanitizer report fails the run, also one from a child process
# (the CLI run by a test): reports go to files under build-asan/sanitizer-reports/ (log_path),
# and the run fails when any exists, even if the test that caused it passed. Sanitizer exit
# code 86, so a report is never mistaken for the CLI's own exit codes 1 and 2.
# LibTorch, Qt, HDF5, OpenCV are Debian's (not instrumented); what is suppressed and why is in
# scripts/sanitize.supp.
#   scripts/sanitize.sh [ctest args...]        e.g. scripts/sanitize.sh -R tst_patchdataset
# Environment: BRAGGNAC_ASAN_DIR (default build-asan), BRAGGNAC_JOBS (build jobs, default nproc).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
DIR=${BRAGGNAC_ASAN_DIR:-build-asan}
case "$DIR" in /*) ;; *) DIR="$ROOT/$DIR" ;; esac
JOBS=${BRAGGNAC_JOBS:-$(nproc)}
SAN="-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer"
if [ ! -f "$DIR/build.ninja" ]; then
  LAUNCHER=()
  command -v ccache >/dev/null && LAUNCHER=(-DCMAKE_C_COMPILER_LAUNCHER=ccache -DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
  # -O1 -g1: line numbers in reports, and torch-including files compile faster than at -O2.
  cmake -S "$ROOT" -B "$DIR" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCMAKE_C_FLAGS_RELWITHDEBINFO="-O1 -g1" -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g1" \
    -DCMAKE_C_FLAGS="$SAN" -DCMAKE_CXX_FLAGS="$SAN" -DCMAKE_EXE_LINKER_FLAGS="$SAN" \
    -DCMAKE_SHARED_LINKER_FLAGS="$SAN" -DBRAGGNAC_BUILD_BENCH=OFF "${LAUNCHER[@]}" >/dev/null
fi
start=$(date +%s)
cmake --build "$DIR" -j "$JOBS"
echo "sanitize: build $(( $(date +%s) - start )) s"

REPORTS="$DIR/sanitizer-reports"
rm -rf "$REPORTS" && mkdir -p "$REPORTS" /tmp/braggnac-xdg && chmod 700 /tmp/braggnac-xdg
SUPP="$ROOT/scripts/sanitize.supp"
# allocator_may_return_null=1: a malloc too big to satisfy returns NULL as it does in production
# (HDF5 asks for 0x3434343434343458 bytes on a corrupt file and then fails cleanly; our code
# gets std::bad_alloc); without it ASan reports the request itself.
export ASAN_OPTIONS="halt_on_error=1:exitcode=86:detect_leaks=1:allocator_may_return_null=1:strict_init_order=1:log_path=$REPORTS/asan"
export LSAN_OPTIONS="suppressions=$SUPP:print_suppressions=0"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:exitcode=86:log_path=$REPORTS/ubsan:suppressions=$SUPP"
start=$(date +%s)
rc=0
( cd "$DIR" && QT_QPA_PLATFORM=offscreen ctest --output-on-failure --timeout 1800 "$@" ) || rc=$?
echo "sanitize: tests $(( $(date +%s) - start )) s"
if [ -n "$(ls -A "$REPORTS")" ]; then
  echo "sanitize: sanitizer reports (each file is one process):" >&2
  for f in "$REPORTS"/*; do
    echo "==== $f" >&2
    cat "$f" >&2
  done
  rc=1
fi
exit $rc
