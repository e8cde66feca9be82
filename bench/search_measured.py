#!/usr/bin/python3
"""Report of bench/search_measured.sh (issue 7's measured search): the study's front (validation
distance vs standard BOPs among the complete trials, i.e. the highest fidelity), how the front
moved with time, the reference points at the search's budget, and the front's members retrained
with the full recipe against braggnn and nac trained the same way. Writes Markdown."""
import argparse
import glob
import json
import math
import os
import re
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from search_report import hv2  # noqa: E402  (the same hypervolume and reference as the side-by-side)


def front(trials):
    """Non-dominated (distance, bops) among the given trials, sorted by distance."""
    out, best_b = [], math.inf
    for t in sorted(trials, key=lambda t: (t["values"][0], t["values"][1], t["number"])):
        if t["values"][1] < best_b:
            out.append(t)
            best_b = t["values"][1]
    return out


def load(path):
    with open(path) as f:
        return json.load(f)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", required=True)
    ap.add_argument("--refs", required=True)
    ap.add_argument("--budget", type=float, required=True)
    ap.add_argument("--epochs", type=int, required=True)
    ap.add_argument("--full-epochs", type=int, required=True)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    w = a.work
    study = load(f"{w}/study.json")
    trials = study["trials"]
    done = [t for t in trials if t["state"] in ("complete", "pruned", "failed")]
    complete = [t for t in trials if t["state"] == "complete" and t.get("values")]
    t0 = min(t["queued_at"] for t in trials)
    t_end = max(t["finished_at"] for t in done)
    bops = {arch: load(f"{w}/{arch}.cost.json")["bops"] for arch in ("braggnn", "nac")}
    full = {arch: load(f"{a.refs}/{arch}.train.json") for arch in ("braggnn", "nac")}
    budget = {arch: load(f"{w}/budget-{arch}.json") for arch in ("braggnn", "nac")
              if os.path.exists(f"{w}/budget-{arch}.json")}
    target_bops = bops["braggnn"] / 25
    target_test = full["braggnn"]["test"]["mean"]
    L = []
    c = study["counts"]
    epochs_trained = sum(t.get("fidelity") or 0 for t in done)
    L.append(f"- Trials: **{len(done)} finished** in {(t_end - t0) / 60:.1f} min of search ({c['complete']} complete "
             f"at {a.epochs} epochs, {c['pruned']} stopped early by ASHA, {c['failed']} failed; "
             f"{c['queued'] + c['running']} requeued by the stop), {epochs_trained:,} trial-epochs in all, "
             f"{len(done) / ((t_end - t0) / 3600):.0f} trials per hour.")
    if os.path.exists(f"{w}/search.start"):
        L.append(f"- Start / stop: `{open(f'{w}/search.start').read().split()[0]}`"
                 + (f" / {' '.join(open(f'{w}/search.done').read().split()[:2])}" if os.path.exists(f"{w}/search.done") else ""))
    L.append("")
    L.append("### The front (complete trials: the highest fidelity)")
    L.append("")
    L.append(f"Validation and test mean distance after the search's {a.epochs}-epoch budget; `x braggnn` = "
             f"float32 braggnn's standard BOPs ({bops['braggnn']:.4g}) / the trial's.")
    L.append("")
    L.append("| trial | validation px | test px | standard BOPs | x braggnn | params | trial s | found at min |")
    L.append("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    fr = front(complete)
    for t in fr:
        L.append(f"| {t['number']} | {t['values'][0]:.4f} | {t['metrics']['test']['mean']:.4f} | {t['values'][1]:.4g} | "
                 f"{bops['braggnn'] / t['values'][1]:.1f} | {t['cost']['params']:,} | {t['seconds']:.0f} | "
                 f"{(t['finished_at'] - t0) / 60:.1f} |")
    for arch, r in budget.items():
        L.append(f"| {arch} ({a.epochs} epochs, reference) | {r['metrics']['validation']['mean']:.4f} | "
                 f"{r['metrics']['test']['mean']:.4f} | {bops[arch]:.4g} | {bops['braggnn'] / bops[arch]:.1f} | "
                 f"{r['cost']['params']:,} | {r['seconds']:.0f} | - |")
    L.append("")
    L.append("### How the front moved")
    L.append("")
    L.append("Hypervolume of (validation px, log10 BOPs) against (1 px, 10^10), as the side-by-side; "
             "the front's lowest distance and the fewest BOPs at or below nac's budget-run validation distance.")
    L.append("")
    nac_val = budget["nac"]["metrics"]["validation"]["mean"] if "nac" in budget else None
    L.append("| minutes | finished trials | complete | hypervolume | best validation px | fewest BOPs at <= nac's distance | front |")
    L.append("| ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    marks = [m for m in (5, 15, 30, 45, 60, 75, 90, 105, 120) if m * 60 < t_end - t0] + [(t_end - t0) / 60]
    for m in marks:
        cut = t0 + m * 60
        cd = [t for t in complete if t["finished_at"] <= cut]
        nd = sum(1 for t in done if t["finished_at"] <= cut)
        f = front(cd)
        good = [t["values"][1] for t in cd if nac_val is not None and t["values"][0] <= nac_val]
        L.append(f"| {m:.0f} | {nd} | {len(cd)} | {hv2([t['values'] for t in cd]):.4f} | "
                 f"{(f[0]['values'][0] if f else float('nan')):.4f} | {(min(good) if good else float('nan')):.3g} | "
                 + ", ".join(f"#{t['number']} {t['values'][0]:.3f}@{t['values'][1]:.2g}" for t in f) + " |")
    L.append("")
    L.append(f"### Retrained with the full recipe ({a.full_epochs} epochs, as braggnn and nac)")
    L.append("")
    L.append(f"Goal: test mean distance <= braggnn's ({target_test:.4f} px) at >= 25x fewer standard BOPs "
             f"(<= {target_bops:.4g}).")
    L.append("")
    L.append("| network | standard BOPs | x braggnn | params | test px by seed | test px mean | validation px mean | "
             "test / braggnn | goal |")
    L.append("| --- | ---: | ---: | ---: | --- | ---: | ---: | ---: | --- |")
    second = {arch: load(f"{w}/ref2-{arch}.json") for arch in ("braggnn", "nac") if os.path.exists(f"{w}/ref2-{arch}.json")}
    for arch in ("braggnn", "nac"):
        r = full[arch]
        runs = [r] + ([second[arch]] if arch in second else [])
        tests = [x["test"]["mean"] for x in runs]
        L.append(f"| {arch} (seed 1{', 2' if arch in second else ''}) | {bops[arch]:.4g} | {bops['braggnn'] / bops[arch]:.1f} | "
                 f"{r['params']:,} | " + " / ".join(f"{v:.4f}" for v in tests) + f" | {statistics.mean(tests):.4f} | "
                 f"{statistics.mean(x['validation']['mean'] for x in runs):.4f} | "
                 f"{statistics.mean(tests) / target_test:.3f} | - |")
    braggnn_mean = statistics.mean([full["braggnn"]["test"]["mean"]] + ([second["braggnn"]["test"]["mean"]] if "braggnn" in second else []))
    by_trial = {}
    for p in glob.glob(f"{w}/full-*-s*.json"):
        m = re.match(r"full-(\d+)-s(\d+)\.json$", os.path.basename(p))
        if m:
            by_trial.setdefault(int(m.group(1)), {})[int(m.group(2))] = load(p)
    info = {t["number"]: t for t in trials}
    met = []
    for n in sorted(by_trial, key=lambda n: info[n]["values"][1]):
        runs = by_trial[n]
        t = info[n]
        tests = [runs[s]["test"]["mean"] for s in sorted(runs)]
        vals = [runs[s]["validation"]["mean"] for s in sorted(runs)]
        mean = statistics.mean(tests)
        ok = mean <= target_test and t["values"][1] <= target_bops
        if ok:
            met.append((n, t, mean))
        L.append(f"| trial {n} | {t['values'][1]:.4g} | {bops['braggnn'] / t['values'][1]:.1f} | {t['cost']['params']:,} | "
                 + " / ".join(f"{v:.4f}" for v in tests) + f" | {mean:.4f} | {statistics.mean(vals):.4f} | "
                 f"{mean / target_test:.3f} | {'**met**' if ok else 'no'} |")
    L.append("")
    L.append(f"`test / braggnn` and `goal` compare with braggnn's seed-1 run ({target_test:.4f} px), the reference of the "
             f"compression benchmark; braggnn's mean over its seeds is {braggnn_mean:.4f} px.")
    L.append("")
    if met:
        n, t, mean = min(met, key=lambda x: x[1]["values"][1])
        found = (t["finished_at"] - t0) / 60
        nbefore = sum(1 for x in done if x["finished_at"] <= t["finished_at"])
        L.append(f"**Goal met** by trial {n}: test {mean:.4f} px (braggnn {target_test:.4f}) at "
                 f"{bops['braggnn'] / t['values'][1]:.1f}x fewer standard BOPs; the search had found it after "
                 f"{found:.1f} min and {nbefore} finished trials.")
    else:
        L.append("**Goal not met** by any retrained front member.")
    with open(a.out, "w") as f:
        f.write("\n".join(L) + "\n")


if __name__ == "__main__":
    main()
