#!/usr/bin/env bash
# Builds the libFuzzer targets (fuzz/, clang, -fsanitize=fuzzer,address,undefined) into
# build-fuzz and runs each of them for SECONDS (default 60), niced, at most JOBS (default 2) at a
# time. Corpora live in build-fuzz/corpus/<target> (seeded from tests/data/fuzz/<target> and from
# the project's own simulator), crashes in build-fuzz/artifacts/<target>/ and a summary per
# target in build-fuzz/logs/<target>.log. Exit 1 when any target found a crash, leak or timeout.
#   scripts/fuzz.sh [SECONDS] [TARGET...]       e.g. scripts/fuzz.sh 30    scripts/fuzz.sh 600 tiff hdf5
# Environment: BRAGGNAC_FUZZ_DIR (build folder, default build-fuzz), BRAGGNAC_FUZZ_JOBS (2),
#   BRAGGNAC_CLI (the braggnac used to make seed frames; default build/app/braggnac/braggnac,
#   built there with scripts/build.sh when missing).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
SECONDS_EACH=${1:-60}
shift || true
DIR=${BRAGGNAC_FUZZ_DIR:-build-fuzz}
JOBS=${BRAGGNAC_FUZZ_JOBS:-2}
case "$DIR" in /*) ;; *) DIR="$ROOT/$DIR" ;; esac

SAN="-fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer -D_GLIBCXX_ASSERTIONS"
LAUNCHER=()
command -v ccache >/dev/null && LAUNCHER=(-DCMAKE_C_COMPILER_LAUNCHER=ccache -DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
if [ ! -f "$DIR/build.ninja" ]; then
  cmake -S "$ROOT" -B "$DIR" -G Ninja -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_FLAGS_RELWITHDEBINFO="-O1 -g" \
    -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g" -DCMAKE_C_FLAGS="$SAN" -DCMAKE_CXX_FLAGS="$SAN" \
    -DBRAGGNAC_BUILD_FUZZ=ON -DBRAGGNAC_BUILD_UI=OFF -DBRAGGNAC_BUILD_TESTS=OFF \
    -DBRAGGNAC_BUILD_BENCH=OFF "${LAUNCHER[@]}" >/dev/null
fi
nice -n 19 cmake --build "$DIR" -j"${BRAGGNAC_BUILD_JOBS:-2}" --target fuzzers

TARGETS=("$@")
if [ ${#TARGETS[@]} -eq 0 ]; then
  for f in "$DIR"/fuzz/fuzz_*; do
    [ -x "$f" ] && TARGETS+=("$(basename "$f" | sed 's/^fuzz_//')")
  done
fi

# Seed corpora: the regression inputs, hand-written JSON, and simulated frames / patches.
SEEDS="$DIR/seeds"
if [ ! -f "$SEEDS/.done" ]; then
  CLI=${BRAGGNAC_CLI:-$ROOT/build/app/braggnac/braggnac}
  if [ ! -x "$CLI" ]; then
    ./scripts/build.sh
  fi
  rm -rf "$SEEDS" && mkdir -p "$SEEDS"/{ge,tiff,hdf5,patchdataset,archspec,searchspace,studystore}
  T=$(mktemp -d)
  "$CLI" simulate frames --format h5 --out "$T/a.h5" --frames 2 --size 32 --peaks 3 --seed 1 >/dev/null
  "$CLI" simulate frames --format h5 --out "$T/b.h5" --frames 1 --size 16 --peaks 1 --seed 2 >/dev/null
  "$CLI" simulate frames --format tiff --out "$T/a.tiff" --frames 2 --size 32 --peaks 3 --seed 1 >/dev/null
  "$CLI" simulate frames --format tiff --out "$T/b.tiff" --frames 1 --size 16 --peaks 1 --seed 2 >/dev/null
  "$CLI" simulate patches --out "$T/p.h5" --n 8 --seed 1 >/dev/null
  "$CLI" simulate patches --out "$T/q.h5" --n 3 --patch-size 9 --seed 2 --no-compress >/dev/null
  cp "$T/a.h5" "$T/b.h5" "$SEEDS/hdf5/"
  cp "$T/a.tiff" "$T/b.tiff" "$SEEDS/tiff/"
  cp "$T/p.h5" "$T/q.h5" "$SEEDS/patchdataset/"
  cp "$T/a.h5" "$SEEDS/patchdataset/frames.h5"     # a frames file where patches are expected
  cp "$T/p.h5" "$SEEDS/hdf5/patches.h5"            # and the other way round
  rm -rf "$T"
  # GE inputs encode the file length (see fuzz/fuzzentries.h): one frame, two frames, one short.
  printf '\x01\x00\x00' >"$SEEDS/ge/one-frame"
  printf '\x02\x00\x00\x00\x00\x01\x02\x03\x04' >"$SEEDS/ge/two-frames"
  printf '\x05\xfe\xff' >"$SEEDS/ge/short-by-two"
  for b in braggnn nac; do
    cp "$ROOT/resources/arch/$b.json" "$SEEDS/archspec/"
  done
  cp "$ROOT"/resources/spaces/*.json "$SEEDS/searchspace/"
  BRAGGNAC_FUZZ_WRITE_SEED="$SEEDS/studystore/three-trials.db" "$DIR/fuzz/fuzz_studystore"
  rm -f "$SEEDS"/studystore/*-wal "$SEEDS"/studystore/*-shm
  touch "$SEEDS/.done"
fi

mkdir -p "$DIR/logs"
# allocator_may_return_null=1: a failed huge malloc returns NULL as in production (HDF5 then
# fails cleanly); huge allocations that are used still end the run through -rss_limit_mb.
export ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1:fast_unwind_on_malloc=0
export LSAN_OPTIONS="suppressions=$ROOT/fuzz/lsan.supp:print_suppressions=0"
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1

# Replays each saved input and files it by where it failed: the first stack frame outside the
# sanitizer runtime, libFuzzer and libc. In Debian's libhdf5/libtiff: a known upstream library
# bug we cannot fix here (moved to artifacts/<target>/upstream/, listed, not failing the run);
# anywhere else: ours (kept in artifacts/<target>/, fails the run).
triage() {
  local t=$1 exe="$DIR/fuzz/fuzz_$1" art="$DIR/artifacts/$1" f where
  for f in "$art"/crash-* "$art"/leak-* "$art"/oom-* "$art"/timeout-*; do
    [ -f "$f" ] || continue
    where=$(timeout 120 "$exe" -rss_limit_mb=2048 -malloc_limit_mb=16384 -timeout=20 "$f" 2>&1 \
      | grep -a -E '^ +#[0-9]+ ' \
      | grep -a -v -E '__interceptor_|__asan|__sanitizer|__lsan|fuzzer::|/libc\.so|sysdeps/|libc_start| in (malloc|calloc|realloc|free|strdup|memcpy|memmove|abort|raise)|operator new|gsignal|__GI_' \
      | head -1) || true
    if [ -z "$where" ]; then
      echo "fuzz $t: $(basename "$f") no longer fails (fixed, or flaky)"; rm -f "$f"
    elif echo "$where" | grep -q -E 'libhdf5|libtiff'; then
      mkdir -p "$art/upstream" && mv "$f" "$art/upstream/"
      echo "fuzz $t: $(basename "$f") in an upstream library:$(echo "$where" | sed 's/^ *#[0-9]* 0x[0-9a-f]* in//' | cut -c1-120)"
    else
      echo "fuzz $t: $(basename "$f") OURS:$(echo "$where" | sed 's/^ *#[0-9]* 0x[0-9a-f]* in//' | cut -c1-160)"
    fi
  done
}

run_one() {
  local t=$1 exe="$DIR/fuzz/fuzz_$1"
  local corpus="$DIR/corpus/$t" art="$DIR/artifacts/$t" dict=()
  rm -rf "$art" && mkdir -p "$corpus" "$art"
  if [ -f "$ROOT/fuzz/$t.dict" ]; then dict=(-dict="$ROOT/fuzz/$t.dict"); fi
  local seeds=("$SEEDS/$t")
  if [ -d "$ROOT/tests/data/fuzz/$t" ]; then seeds+=("$ROOT/tests/data/fuzz/$t"); fi
  # -fork=1 -ignore_*=1: keep fuzzing after a crash, OOM or timeout (each input is saved in
  # $art) so one known bug does not hide the next; triage below decides what fails the run.
  local maxlen=65536
  case "$t" in archspec|searchspace) maxlen=8192 ;; esac
  ( cd "$art" && /usr/bin/time -f "cpu_seconds %U %S wall_seconds %e" \
      nice -n 19 "$exe" -fork=1 -ignore_crashes=1 -ignore_ooms=1 -ignore_timeouts=1 \
        -max_total_time="$SECONDS_EACH" -timeout=20 -rss_limit_mb=2048 -malloc_limit_mb=16384 \
        -max_len=$maxlen -artifact_prefix="$art/" "${dict[@]}" "$corpus" "${seeds[@]}" ) \
    >"$DIR/logs/$t.log" 2>&1 || true
  triage "$t"
  local execs crashes upstream
  execs=$(grep -a -o '^#[0-9]*' "$DIR/logs/$t.log" | tail -1 | tr -d '#') || true
  crashes=$(find "$art" -maxdepth 1 -type f \( -name 'crash-*' -o -name 'leak-*' -o -name 'timeout-*' -o -name 'oom-*' \) | wc -l)
  upstream=0
  if [ -d "$art/upstream" ]; then upstream=$(find "$art/upstream" -type f | wc -l); fi
  echo "fuzz $t: ${SECONDS_EACH}s, executions ${execs:-?}, corpus $(ls "$corpus" | wc -l) files, ours $crashes, upstream $upstream ($(grep cpu_seconds "$DIR/logs/$t.log" | tail -1))"
}

running=0
for t in "${TARGETS[@]}"; do
  [ -x "$DIR/fuzz/fuzz_$t" ] || { echo "no fuzz target '$t' in $DIR/fuzz" >&2; exit 2; }
  run_one "$t" &
  running=$((running + 1))
  if [ "$running" -ge "$JOBS" ]; then
    wait -n || true
    running=$((running - 1))
  fi
done
wait || true
# Inputs of runs that crashed never reached their destructor: remove their tmpfs copies.
rm -f /dev/shm/braggnac-fuzz-* "${TMPDIR:-/tmp}"/braggnac-fuzz-* 2>/dev/null || true

found=0
for t in "${TARGETS[@]}"; do
  n=$(find "$DIR/artifacts/$t" -maxdepth 1 -type f \( -name 'crash-*' -o -name 'leak-*' -o -name 'timeout-*' -o -name 'oom-*' \) | wc -l)
  if [ "$n" -gt 0 ]; then
    echo "fuzz $t: $n crash/leak/timeout/oom inputs in $DIR/artifacts/$t (minimise: $DIR/fuzz/fuzz_$t -minimize_crash=1 -runs=10000 FILE)" >&2
    found=1
  fi
done
exit $found
