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
  rm -rf "$SEEDS" && mkdir -p "$SEEDS"/{ge,tiff,hdf5,patchdataset,archspec}
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
  touch "$SEEDS/.done"
fi

mkdir -p "$DIR/logs"
run_one() {
  local t=$1 exe="$DIR/fuzz/fuzz_$1"
  local corpus="$DIR/corpus/$t" art="$DIR/artifacts/$t" dict=()
  rm -rf "$art" && mkdir -p "$corpus" "$art"
  [ -f "$ROOT/fuzz/$t.dict" ] && dict=(-dict="$ROOT/fuzz/$t.dict")
  local seeds=("$SEEDS/$t")
  [ -d "$ROOT/tests/data/fuzz/$t" ] && seeds+=("$ROOT/tests/data/fuzz/$t")
  # -fork=1 -ignore_crashes=1: keep fuzzing after a crash (each one is saved in $art) so one
  # known bug does not hide the next; the run still fails below when any crash was saved.
  local maxlen=65536
  [ "$t" = archspec ] && maxlen=8192
  ( cd "$art" && ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=0 \
      UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
      /usr/bin/time -f "cpu_seconds %U %S wall_seconds %e" \
      nice -n 19 "$exe" -fork=1 -ignore_crashes=1 -ignore_ooms=0 -ignore_timeouts=0 \
        -max_total_time="$SECONDS_EACH" -timeout=20 -rss_limit_mb=2048 -malloc_limit_mb=1024 \
        -max_len=$maxlen -artifact_prefix="$art/" "${dict[@]}" "$corpus" "${seeds[@]}" ) \
    >"$DIR/logs/$t.log" 2>&1 || true
  local execs crashes
  execs=$(grep -o 'exec/s: [0-9]*\|#[0-9]*' "$DIR/logs/$t.log" | grep '^#' | tail -1 | tr -d '#')
  crashes=$(find "$art" -maxdepth 1 -type f \( -name 'crash-*' -o -name 'leak-*' -o -name 'timeout-*' -o -name 'oom-*' \) | wc -l)
  echo "fuzz $t: ${SECONDS_EACH}s, executions ${execs:-?}, corpus $(ls "$corpus" | wc -l) files, artifacts $crashes ($(grep cpu_seconds "$DIR/logs/$t.log" | tail -1))"
}

running=0
for t in "${TARGETS[@]}"; do
  [ -x "$DIR/fuzz/fuzz_$t" ] || { echo "no fuzz target '$t' in $DIR/fuzz" >&2; exit 2; }
  run_one "$t" &
  running=$((running + 1))
  if [ "$running" -ge "$JOBS" ]; then
    wait -n
    running=$((running - 1))
  fi
done
wait

found=0
for t in "${TARGETS[@]}"; do
  n=$(find "$DIR/artifacts/$t" -maxdepth 1 -type f \( -name 'crash-*' -o -name 'leak-*' -o -name 'timeout-*' -o -name 'oom-*' \) | wc -l)
  if [ "$n" -gt 0 ]; then
    echo "fuzz $t: $n crash/leak/timeout/oom inputs in $DIR/artifacts/$t (minimise: $DIR/fuzz/fuzz_$t -minimize_crash=1 -runs=10000 FILE)" >&2
    found=1
  fi
done
exit $found
