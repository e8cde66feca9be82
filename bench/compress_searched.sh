#!/usr/bin/env bash
# Compression of a searched network (issue 8, "from the best searched network"): a model folder
# trained with the full recipe (bench/search_measured.sh's retrain stage) quantised and pruned at
# several bit widths in parallel, every (bits, round) record measured with the integer reference
# and stored in one study; the chosen folders' fake-quantised vs integer-reference agreement and
# integer-reference throughput (bench_compress); the records drawn by braggnac-plot; a table
# against float32 braggnn (docs/benchmarks/compress.md, "From the searched network").
#   START=/path/full-499-s1.model DATA=patches.h5 REFS=dir-with-braggnn.model bench/compress_searched.sh
# Environment: BRAGGNAC_BUILD_DIR (build), WORK, BITS ("12 10"), ROUNDS (6), FRACTION (0.2),
# MARGIN (0), EPOCHS_PER_ROUND (1), NAME (the start folder's name), STAGES ("compress agree plot report").
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BUILD=$ROOT/${BRAGGNAC_BUILD_DIR:-build}
B=$BUILD/app/braggnac/braggnac
P=$BUILD/app/braggnac-plot/braggnac-plot
BC=$BUILD/bench/bench_compress
PY=/usr/bin/python3
: "${START:?START=a trained model folder}" "${DATA:?DATA=the labelled patch file}" "${REFS:?REFS=a folder with braggnn.model and braggnn.train.json}"
NAME=${NAME:-$(basename "$START" .model)}
WORK=${WORK:-$ROOT/build/compress-searched}
BITS=${BITS:-"12 10"}; ROUNDS=${ROUNDS:-6}; FRACTION=${FRACTION:-0.2}; MARGIN=${MARGIN:-0}; EPR=${EPOCHS_PER_ROUND:-1}
STAGES=${STAGES:-"compress agree plot report"}
has() { [[ " $STAGES " == *" $1 "* ]]; }
log() { echo "[$(date -u +%H:%M:%S)] $*" >&2; }
mkdir -p "$WORK"
DB=$WORK/compress.db
BR_TEST=$($PY -c 'import json,sys; print(json.load(open(sys.argv[1]))["test"]["mean"])' "$REFS/braggnn.train.json")
BR_VAL=$($PY -c 'import json,sys; print(json.load(open(sys.argv[1]))["validation"]["mean"])' "$REFS/braggnn.train.json")
BR_BOPS=$("$B" cost --arch braggnn --json | $PY -c 'import json,sys; print(json.load(sys.stdin)["bops"])')
TARGET=$($PY -c "print(1.05 * $BR_VAL)")

if has compress; then
  for b in $BITS; do
    out=$WORK/$NAME-b$b
    [ -f "$out.json" ] && continue
    log "compress $NAME at $b bits, $ROUNDS rounds of $FRACTION, margin $MARGIN"
    rm -rf "$out.model"
    ( "$B" compress "$START" "$DATA" --out "$out.model" --bits "$b" --prune-rounds "$ROUNDS" \
        --prune-fraction "$FRACTION" --epochs-per-round "$EPR" --calibration-margin "$MARGIN" \
        --target-distance "$TARGET" --study "$DB" --threads 1 --seed 1 --json >"$out.json.part" 2>"$out.log" &&
      mv "$out.json.part" "$out.json" ) &
  done
  wait
fi

if has agree; then
  for f in "$WORK/$NAME"-b*.json; do
    [ -f "$f" ] || continue
    m=${f%.json}
    case $m in *.agree) continue ;; esac
    [ -f "$m.agree.json" ] && continue
    log "agreement and throughput: $m.model"
    "$BC" --model "$m.model" --data "$DATA" --split test --threads 1,2 --repeats 3 >"$m.agree.json.part"
    mv "$m.agree.json.part" "$m.agree.json"
  done
fi

if has plot; then
  "$P" compress --study "$DB" --out "$WORK/compress-searched.png" --metric test --y-scale log \
    --ref "braggnn=$REFS/braggnn.model" --ref "searched float=$START" \
    --goal-bops "$($PY -c "print($BR_BOPS / 1000)")" --goal-distance "$($PY -c "print(1.05 * $BR_TEST)")" \
    --title "$NAME compressed (QAT + global L1 pruning, exact fixed point): test distance vs standard BOPs" \
    --width 1400 --height 850
fi

if has report; then
  "$B" study "$DB" --compress --json >"$WORK/records.json"
  $PY - "$WORK" "$NAME" "$BR_TEST" "$BR_BOPS" "$START" <<'PYEOF' >"$WORK/report.md"
import glob, json, os, sys
work, name, br_test, br_bops, start = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4]), sys.argv[5]
recs = json.load(open(f"{work}/records.json"))
rows = []
for run in recs["compress_runs"]:
    for r in run["records"]:
        rows.append((run, r))
print(f"Goal: <= {br_bops / 1000:.4g} standard BOPs (1000x fewer than float32 braggnn, {br_bops:.4g}) at "
      f"<= {1.05 * br_test:.4f} px test (1.05x braggnn's {br_test:.4f}).\n")
print("| bits | round | sparsity | standard BOPs | x braggnn | non-zero params | validation px | test px | test / braggnn | goal |")
print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
best = None
for run, r in sorted(rows, key=lambda x: (x[1]["bits"], x[1]["round"])):
    ok = r["bops"] <= br_bops / 1000 and r["test"] <= 1.05 * br_test
    if ok and (best is None or r["bops"] < best[1]["bops"]):
        best = (run, r)
    print(f"| {r['bits']} | {r['round']} | {r['sparsity']:.3f} | {r['bops']:.4e} | {br_bops / r['bops']:.0f}x | "
          f"{r['params']:,} | {r['validation']:.4f} | {r['test']:.4f} | {r['test'] / br_test:.3f} | "
          f"{'**met**' if ok else ''} |")
print()
for f in sorted(glob.glob(f"{work}/{name}-b*.agree.json")):
    a = json.load(open(f))
    print(f"- `{os.path.basename(f)}`: " + json.dumps(a)[:600])
print()
if best:
    print(f"**Goal met**: {best[1]['bits']} bits, round {best[1]['round']}, {br_bops / best[1]['bops']:.0f}x fewer "
          f"standard BOPs than float32 braggnn at {best[1]['test']:.4f} px test.")
else:
    print("**Goal not met** by any record.")
PYEOF
  log "report: $WORK/report.md"
fi
