#!/usr/bin/env bash
# Pseudo-Voigt fit benchmark: the C++ fitter (bench_fit) and scipy.optimize.least_squares
# (bench/fit_scipy.py) on the same simulated patches, in the same run; rewrites
# docs/benchmarks/fit.md (realistic patches, the default) and docs/benchmarks/fit-easy.md.
# Usage: bench/fit.sh   (env: BRAGGNAC_BUILD_DIR=build, FIT_BENCH_N=20000,
#                         FIT_BENCH_SCIPY_N=1000, FIT_BENCH_REPEATS=5)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BRAGGNAC_BUILD_DIR:-build}
N=${FIT_BENCH_N:-20000}
NSCIPY=${FIT_BENCH_SCIPY_N:-1000}
REPEATS=${FIT_BENCH_REPEATS:-5}

if [ ! -f "$BUILD/build.ninja" ]; then
  cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release
fi
cmake --build "$BUILD" -j "$(nproc)" --target bench_fit

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
machine=$(lscpu | grep 'Model name' | sed 's/Model name:[[:space:]]*//')
load_before=$(cut -d' ' -f1-3 /proc/loadavg)

for regime in realistic easy; do
  page=docs/benchmarks/fit.md
  [ "$regime" = easy ] && page=docs/benchmarks/fit-easy.md
  echo "bench_fit: $regime, $N patches, $REPEATS repeats" >&2
  "$BUILD/bench/bench_fit" --regime "$regime" --out "$work/patches.h5" --n "$N" --repeats "$REPEATS" > "$work/cpp.json"
  isa_args=()
  for isa in avx2 sse2; do
    BRAGGNAC_FIT_ISA=$isa "$BUILD/bench/bench_fit" --regime "$regime" --no-write --n "$N" --repeats "$REPEATS" \
      --modes two-peak > "$work/cpp_$isa.json"
    isa_args+=(--isa "$isa=$work/cpp_$isa.json")
  done
  mkdir -p docs/benchmarks
  load_after=$(cut -d' ' -f1-3 /proc/loadavg)
  OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 /usr/bin/python3 bench/fit_scipy.py "$work/patches.h5" --cpp "$work/cpp.json" "${isa_args[@]}" \
    --n "$NSCIPY" --markdown "$page" --machine "$machine" \
    --load "$load_before at the start, $load_after before scipy" \
    --command "bench/fit.sh (FIT_BENCH_N=$N FIT_BENCH_SCIPY_N=$NSCIPY FIT_BENCH_REPEATS=$REPEATS)" \
    > "$work/scipy_$regime.json"
  echo "wrote $page" >&2
done
