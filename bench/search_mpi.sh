#!/usr/bin/env bash
# Search over MPI against the same search in one process (issue 7, "Scale"): the same trials with
# 1 and 2 training workers, locally (--workers W) and under mpirun (-np W+1: rank 0 owns the
# optimiser and the study store, ranks 1..W train), twice each, interleaved. Per run: the search's
# seconds, the command's wall seconds, the mean trial seconds from the store, the per-trial
# overhead (worker-slot seconds not spent inside a trial, per trial) and the study-store write
# latency of the driver (search --json "store_writes"). `mpirun -np 1` has no training rank and is
# refused (exit 2): checked here too. Writes a Markdown table to $WORK/mpi.md.
#   bench/search_mpi.sh      (env: BRAGGNAC_BUILD_DIR, WORK, TRIALS 16, EPOCHS 3, N 4000, REPEATS 2)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
B=$ROOT/${BRAGGNAC_BUILD_DIR:-build}/app/braggnac/braggnac
PY=/usr/bin/python3
WORK=${WORK:-$(mktemp -d /tmp/braggnac-mpi-bench.XXXXXX)}
TRIALS=${TRIALS:-16}; EPOCHS=${EPOCHS:-3}; N=${N:-4000}; REPEATS=${REPEATS:-2}
mkdir -p "$WORK"
DATA=$WORK/p.h5
[ -f "$DATA" ] || "$B" simulate patches --out "$DATA" --n "$N" --seed 5 --regime realistic --quiet
MPIRUN=(mpirun --allow-run-as-root --oversubscribe)
COMMON=(--space nac --trials "$TRIALS" --epochs "$EPOCHS" --population 8 --seed 5 --threads 1 --json --quiet)

rc=0
"${MPIRUN[@]}" -np 1 "$B" search "$DATA" --study "$WORK/np1.db" "${COMMON[@]}" >/dev/null 2>"$WORK/np1.err" || rc=$?
echo "mpirun -np 1: exit $rc, study written: $([ -e "$WORK/np1.db" ] && echo yes || echo no); $(head -c 300 "$WORK/np1.err")" >"$WORK/np1.txt"

for r in $(seq 1 "$REPEATS"); do
  for w in 1 2; do
    for mode in local mpi; do
      db=$WORK/$mode-w$w-r$r.db
      [ -f "$db.json" ] && continue
      rm -rf "$db" "$db-wal" "$db-shm" "${db%.db}.models"
      start=$(date +%s.%N)
      if [ "$mode" = local ]; then
        "$B" search "$DATA" --study "$db" --workers "$w" "${COMMON[@]}" >"$db.out"
      else
        "${MPIRUN[@]}" -np $((w + 1)) "$B" search "$DATA" --study "$db" "${COMMON[@]}" >"$db.out"
      fi
      end=$(date +%s.%N)
      "$B" study "$db" --json >"$db.trials"
      $PY - "$db.out" "$db.trials" "$start" "$end" "$mode" "$w" "$r" >"$db.json" <<'EOF'
import json, sys
out, trials = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))["trials"]
start, end, mode, w, r = float(sys.argv[3]), float(sys.argv[4]), sys.argv[5], int(sys.argv[6]), int(sys.argv[7])
done = [t for t in trials if t["state"] in ("complete", "pruned")]
inside = sum(t["seconds"] for t in done)
print(json.dumps({"mode": mode, "workers": w, "repeat": r, "trials": len(done), "search_s": out["seconds"],
                  "wall_s": end - start, "mean_trial_s": inside / len(done),
                  "overhead_per_trial_s": (out["seconds"] * w - inside) / len(done),
                  "ranks": sorted({t["rank"] for t in done}), "store": out["store_writes"]}))
EOF
    done
  done
done

$PY - "$WORK" <<'EOF' >"$WORK/mpi.md"
import glob, json, sys
rows = [json.load(open(p)) for p in sorted(glob.glob(sys.argv[1] + "/*-w*-r*.db.json"))]
print("| workers | run | repeat | trials | search s | command wall s | mean trial s | overhead per trial s | "
      "store writes | write median ms | p99 ms | max ms | training ranks |")
print("| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
for x in sorted(rows, key=lambda x: (x["workers"], x["mode"], x["repeat"])):
    s = x["store"]
    run = "local --workers %d" % x["workers"] if x["mode"] == "local" else "mpirun -np %d" % (x["workers"] + 1)
    print(f"| {x['workers']} | {run} | {x['repeat']} | {x['trials']} | {x['search_s']:.1f} | {x['wall_s']:.1f} | "
          f"{x['mean_trial_s']:.2f} | {x['overhead_per_trial_s']:.2f} | {s['count']} | {s['median_ms']:.3f} | "
          f"{s['p99_ms']:.2f} | {s['max_ms']:.2f} | {','.join(map(str, x['ranks']))} |")
print()
print(open(sys.argv[1] + "/np1.txt").read())
EOF
cat "$WORK/mpi.md"
