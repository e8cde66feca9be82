#!/usr/bin/env bash
# Runs every benchmark side by side with its reference and rewrites docs/benchmarks/*.md.
# Usage: bench/run-benchmarks.sh [finder|fit|train|fixed|compress|search ...]   (default: finder fit train fixed;
# compress (hours) and search (hours) only when named)
# Installs the reference tools (Debian's python3-numpy/h5py/scipy/torch) with apt-get.
set -euo pipefail
cd "$(dirname "$0")/.."
BRAGGNAC_BENCH=1 ./scripts/setup-debian.sh
topics=("$@")
[ ${#topics[@]} -gt 0 ] || topics=(finder fit train fixed)
for t in "${topics[@]}"; do
  echo "=== benchmark: $t"
  bash "bench/$t.sh"
done
echo "Results: docs/benchmarks.md and docs/benchmarks/"
