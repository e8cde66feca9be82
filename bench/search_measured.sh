#!/usr/bin/env bash
# The measured search of issue 7 (docs/benchmarks/search-measured.md): the default (NAC) space on
# 30k realistic simulated patches, 2 workers x 1 LibTorch thread, ASHA over epochs, stopped by
# SIGINT after a wall-clock budget (the search stores every finished trial and requeues the
# running ones); then braggnn and nac trained with the search's per-trial budget as reference
# points, the front's members retrained with the full recipe (as braggnn and nac), the front
# drawn by braggnac-plot, and the report.
#
#   bench/search_measured.sh                        # everything (about 2 hours)
#   BUDGET=600 N=4000 bench/search_measured.sh      # a short run
#   STAGES="retrain plot report" bench/search_measured.sh
#
# Environment: BRAGGNAC_BUILD_DIR (build), WORK (a folder, kept: stages skip what is there),
# DATA (a patch file; default: simulated here, realistic regime, N patches, seed 8), N (30000),
# BUDGET (wall seconds of the search, 5400), EPOCHS (per-trial budget, 18), RUNGS (2,6),
# MAX_BOPS (2.5e8), WORKERS (2), SEED (1), FULL_EPOCHS (the full recipe, 50), RETRAIN_MAX_BOPS
# (retrain front members up to this many standard BOPs, 1.3e8), RETRAIN_SEEDS ("1 2"),
# REFS (a folder holding braggnn.model / nac.model trained with the full recipe on DATA and
# their *.train.json, e.g. bench/compress.sh's WORK; default: trained here).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
B=$ROOT/${BRAGGNAC_BUILD_DIR:-build}/app/braggnac/braggnac
PLOT=$ROOT/${BRAGGNAC_BUILD_DIR:-build}/app/braggnac-plot/braggnac-plot
PY=/usr/bin/python3
WORK=${WORK:-$ROOT/build/search-measured}
N=${N:-30000}; BUDGET=${BUDGET:-5400}; EPOCHS=${EPOCHS:-18}; RUNGS=${RUNGS:-2,6}
MAX_BOPS=${MAX_BOPS:-2.5e8}; WORKERS=${WORKERS:-2}; SEED=${SEED:-1}; FULL_EPOCHS=${FULL_EPOCHS:-50}
RETRAIN_MAX_BOPS=${RETRAIN_MAX_BOPS:-1.3e8}; RETRAIN_SEEDS=${RETRAIN_SEEDS:-"1 2"}
STAGES=${STAGES:-"data search refs retrain plot report"}
mkdir -p "$WORK"
DATA=${DATA:-$WORK/realistic.h5}
STUDY=$WORK/measured.db
has() { [[ " $STAGES " == *" $1 "* ]]; }
log() { echo "[$(date -u +%H:%M:%S)] $*" >&2; }

if has data && [ ! -f "$DATA" ]; then
  log "simulate $N realistic patches"
  "$B" simulate patches --out "$DATA" --n "$N" --seed 8 --regime realistic --quiet
fi

if has search && [ ! -f "$WORK/search.done" ]; then
  log "search for $BUDGET s (stopped by SIGINT; the same command resumes)"
  { date -u +%FT%TZ; uptime; } >"$WORK/search.start"
  rc=0
  timeout -s INT "$BUDGET" "$B" search "$DATA" --space nac --study "$STUDY" --trials 100000 \
    --workers "$WORKERS" --threads 1 --asha --rungs "$RUNGS" --epochs "$EPOCHS" --max-bops "$MAX_BOPS" \
    --population 20 --seed "$SEED" --progress 2>"$WORK/search.log" || rc=$?
  { echo "rc=$rc"; date -u +%FT%TZ; uptime; } >"$WORK/search.done"
fi

# braggnn and nac with the search's per-trial budget (the same recipe, 1 thread each, in parallel)
if has refs; then
  for arch in braggnn nac; do
    [ -f "$WORK/budget-$arch.json" ] && continue
    log "reference $arch, $EPOCHS epochs"
    "$B" trial "$DATA" --arch "$arch" --epochs "$EPOCHS" --threads 1 --seed "$SEED" \
      --out "$WORK/budget-$arch.model" --force --json --quiet >"$WORK/budget-$arch.json.part" &&
      mv "$WORK/budget-$arch.json.part" "$WORK/budget-$arch.json" &
  done
  wait
fi

# The front's members up to RETRAIN_MAX_BOPS, retrained with the full recipe, two at a time.
if has retrain; then
  "$B" study "$STUDY" --pareto --json >"$WORK/front.json"
  $PY - "$WORK/front.json" "$RETRAIN_MAX_BOPS" "$WORK" <<'EOF'
import json, sys
front, limit, work = json.load(open(sys.argv[1])), float(sys.argv[2]), sys.argv[3]
for t in front["trials"]:
    if t["values"][1] <= limit:
        json.dump(t["spec"], open(f"{work}/front-{t['number']}.spec.json", "w"))
EOF
  jobs=()
  for spec in "$WORK"/front-*.spec.json; do
    [ -e "$spec" ] || continue
    n=$(basename "$spec" .spec.json); n=${n#front-}
    for s in $RETRAIN_SEEDS; do
      out="$WORK/full-$n-s$s"
      [ -f "$out.json" ] && continue
      log "retrain trial $n, $FULL_EPOCHS epochs, seed $s"
      ( "$B" train "$DATA" --arch "$spec" --epochs "$FULL_EPOCHS" --threads 1 --seed "$s" \
          --out "$out.model" --force --json --quiet >"$out.json.part" && mv "$out.json.part" "$out.json" ) &
      jobs+=($!)
      if [ "${#jobs[@]}" -ge 2 ]; then wait "${jobs[0]}"; jobs=("${jobs[@]:1}"); fi
    done
  done
  wait
  # braggnn and nac with the full recipe: seed 2 always (ref2-*), seed 1 unless REFS holds them.
  full_ref() { # ARCH SEED MODEL JSON (in WORK), in the background
    [ -f "$WORK/$4" ] && return 0
    log "full recipe $1, seed $2"
    "$B" train "$DATA" --arch "$1" --epochs "$FULL_EPOCHS" --threads 1 --seed "$2" --out "$WORK/$3" \
      --force --json --quiet >"$WORK/$4.part" && mv "$WORK/$4.part" "$WORK/$4" &
  }
  for arch in braggnn nac; do full_ref "$arch" 2 "ref2-$arch.model" "ref2-$arch.json"; done
  wait
  if [ -z "${REFS:-}" ]; then
    REFS=$WORK
    for arch in braggnn nac; do full_ref "$arch" 1 "$arch.model" "$arch.train.json"; done
    wait
  fi
fi

if has plot; then
  "$PLOT" front --study "$STUDY" --out "$WORK/search-measured-front.png" --metric validation --ymax 0.5 \
    --ref braggnn="$WORK/budget-braggnn.model" --ref nac="$WORK/budget-nac.model"
fi

if has report; then
  "$B" study "$STUDY" --json >"$WORK/study.json"
  "$B" study "$STUDY" --pareto --json >"$WORK/front.json"
  for arch in braggnn nac; do "$B" cost --arch "$arch" --json >"$WORK/$arch.cost.json"; done
  $PY bench/search_measured.py --work "$WORK" --refs "${REFS:-$WORK}" --budget "$BUDGET" --epochs "$EPOCHS" \
    --full-epochs "$FULL_EPOCHS" --out "$WORK/report.md"
  log "report: $WORK/report.md"
fi
