#!/usr/bin/env bash
# The search side by side with Optuna (issue 7): our NSGA-II (with and without ASHA), Optuna's
# NSGAIISampler and RandomSampler over the same NAC space written define-by-run, the same data,
# trial count, per-trial budget, number of workers and seeds; hypervolume of (validation
# distance, log10 BOPs) against trials and wall time -> docs/benchmarks/search.md.
# Sizes by environment: SEARCH_TRIALS (96), SEARCH_EPOCHS (6), SEARCH_PATCHES (10000),
# SEARCH_WORKERS (2), SEARCH_SEEDS ("1 2"), SEARCH_RUNGS (1,3).
set -euo pipefail
cd "$(dirname "$0")/.."
B=${BRAGGNAC_BUILD_DIR:-build}/app/braggnac/braggnac
T=${SEARCH_TRIALS:-96}; E=${SEARCH_EPOCHS:-6}; N=${SEARCH_PATCHES:-10000}; W=${SEARCH_WORKERS:-2}
SEEDS=${SEARCH_SEEDS:-"1 2"}; RUNGS=${SEARCH_RUNGS:-1,3}
WORK=${SEARCH_WORK:-$(mktemp -d /tmp/braggnac-search-bench.XXXXXX)}
mkdir -p "$WORK"
PY=/usr/bin/python3
DATA="$WORK/patches.h5"
[ -f "$DATA" ] || "$B" simulate patches --out "$DATA" --n "$N" --seed 11 ${SEARCH_SIM_FLAGS:-}
runs=()
for s in $SEEDS; do
  for variant in nsga2 nsga2-asha; do
    db="$WORK/ours-$variant-$s.db"
    extra=(); [ "$variant" = nsga2-asha ] && extra=(--asha --rungs "$RUNGS")
    [ -f "$db.done" ] || { "$B" search "$DATA" --space nac --study "$db" --trials "$T" --epochs "$E" \
        --workers "$W" --threads 1 --seed "$s" --population 20 "${extra[@]}" --quiet > /dev/null; touch "$db.done"; }
    "$B" study "$db" --json > "$WORK/ours-$variant-$s.json"
    $PY bench/search_ours.py "$WORK/ours-$variant-$s.json" "braggnac-$variant" "$s" "$WORK/run-ours-$variant-$s.json"
    runs+=("$WORK/run-ours-$variant-$s.json")
  done
  for sampler in nsga2 random; do
    out="$WORK/run-optuna-$sampler-$s.json"
    [ -f "$out" ] || $PY bench/search_optuna.py "$B" "$DATA" resources/spaces/nac.json "$out" --sampler "$sampler" \
        --trials "$T" --epochs "$E" --workers "$W" --seed "$s" --population 20
    runs+=("$out")
  done
done
$PY bench/search_report.py "$WORK/table.md" "${runs[@]}"
echo "runs in $WORK"
