#!/usr/bin/python3
"""Reads the runs of bench/search.sh (JSON files of trials with values and times) and writes the
side-by-side table of docs/benchmarks/search.md: hypervolume of (validation distance, log10 BOPs)
against the reference (1.0 px, 10^10 BOPs), against trial count and against wall time."""
import json
import math
import statistics
import sys

REF = (1.0, 10.0)


def hv2(points):
    pts = sorted((d, math.log10(b)) for d, b in points if d < REF[0] and b > 0 and math.log10(b) < REF[1])
    area, best_y = 0.0, REF[1]
    for x, y in pts:
        if y < best_y:
            area += (REF[0] - x) * (best_y - y)
            best_y = y
    return area


def curve(trials):
    """(k, end time, hv of the first k finished trials) by completion order."""
    done = sorted(trials, key=lambda t: t["end"])
    out, pts = [], []
    for k, t in enumerate(done, 1):
        pts.append(t["values"])
        out.append((k, t["end"], hv2(pts)))
    return out


def at_trials(c, k):
    v = [h for n, _, h in c if n <= k]
    return v[-1] if v else 0.0


def time_to(c, target):
    for _, t, h in c:
        if h >= target:
            return t
    return float("nan")


def main():
    out, runs = sys.argv[1], sys.argv[2:]
    data = [json.load(open(r)) for r in runs]
    by = {}
    for d in data:
        by.setdefault(d["sampler"], []).append(d)
    ref_final = statistics.median(curve(d["trials"])[-1][2] for d in by.get("optuna-nsga2", data)) if data else 0
    rows = []
    for name in ["braggnac-nsga2", "braggnac-nsga2-asha", "optuna-nsga2", "optuna-random"]:
        if name not in by:
            continue
        for d in sorted(by[name], key=lambda x: x["seed"]):
            c = curve(d["trials"])
            n = len(c)
            rows.append((name, d["seed"], n, at_trials(c, n // 4), at_trials(c, n // 2), c[-1][2] if c else 0,
                         c[-1][1] if c else float("nan"), time_to(c, ref_final)))
    with open(out, "w") as f:
        f.write("| search | seed | trials | HV at 1/4 | HV at 1/2 | HV final | wall s | s to Optuna NSGA-II's median final HV |\n")
        f.write("| --- | --- | --- | --- | --- | --- | --- | --- |\n")
        for r in rows:
            f.write("| %s | %d | %d | %.4f | %.4f | %.4f | %.0f | %s |\n" % (
                r[0], r[1], r[2], r[3], r[4], r[5], r[6], "-" if math.isnan(r[7]) else "%.0f" % r[7]))
        f.write("\nMedians over seeds:\n\n| search | HV final | wall s | s to reference HV |\n| --- | --- | --- | --- |\n")
        for name in ["braggnac-nsga2", "braggnac-nsga2-asha", "optuna-nsga2", "optuna-random"]:
            rs = [r for r in rows if r[0] == name]
            if not rs:
                continue
            finite = [r[7] for r in rs if not math.isnan(r[7])]
            f.write("| %s | %.4f | %.0f | %s |\n" % (name, statistics.median(r[5] for r in rs),
                                                   statistics.median(r[6] for r in rs),
                                                   "%.0f" % statistics.median(finite) if finite else "not reached"))
    print(open(out).read())


if __name__ == "__main__":
    main()
