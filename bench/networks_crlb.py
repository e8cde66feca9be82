#!/usr/bin/python3
"""The networks' centre error against the noise limit (issue 11, "The noise limit"): per SNR bin,
the rms distance of a network's predictions to the true centres divided by the rms Cramer-Rao
bound of those patches, beside the pseudo-Voigt fitter on the same patches.

  networks_crlb.py BENCH.h5 NAME=PRED.h5 [NAME=PRED.h5 ...] [--split test] > table.md

BENCH.h5: a patch file written by bench_fit (its /bench/crlb, /bench/snr and the fitter's
/bench/two-peak/params; `bench_fit --out B.h5 --n N --seed S --regime realistic` simulates the
same patches as `braggnac simulate patches --n N --seed S --regime realistic`, checked here).
PRED.h5: `braggnac predict MODEL DATA --out PRED.h5` of those patches (/predicted [N, 2])."""
import os
import sys

import h5py
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fit_scipy import SNR_EDGES, crlb_bins  # noqa: E402  (the fit benchmark's bins and ratios)


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    split = "test"
    if "--split" in sys.argv:
        split = sys.argv[sys.argv.index("--split") + 1]
        args.remove(split)
    bench, preds = args[0], [a.split("=", 1) for a in args[1:]]
    with h5py.File(bench, "r") as h:
        truth = h["/truth/params"][...].astype(float)
        crlb = h["/bench/crlb"][...].astype(float)
        snr = h["/bench/snr"][...].astype(float)
        fit = h["/bench/two-peak/params"][...].astype(float)
        patches = h["/patches"][...]
        splits = h["/split"][...]
    code = {"train": 0, "validation": 1, "test": 2}[split]
    sel = splits == code
    rows = [("pseudo-Voigt fitter (two-peak, default)", fit)]
    for name, path in preds:
        with h5py.File(path, "r") as h:
            if not np.array_equal(h["/patches"][...], patches):
                sys.exit(f"{path}: its patches are not those of {bench}")
            p = h["/predicted"][...].astype(float)
        est = np.zeros_like(truth)
        est[:, 2], est[:, 3] = p[:, 0], p[:, 1]
        rows.append((name, est))
    print(f"{int(sel.sum())} {split} patches. Ratio = rms distance / rms CRLB in the bin (1 = at the noise "
          "limit); median ratio = median of per-patch distance / bound; mean in px.\n")
    head = "| estimator | " + " | ".join(f"SNR {lo:g}-{hi:g}" if np.isfinite(hi) else f"SNR {lo:g}+"
                                       for lo, hi in zip(SNR_EDGES[:-1], SNR_EDGES[1:])) + " | all: mean px |"
    print(head)
    print("| --- |" + " ---: |" * (len(SNR_EDGES) - 1) + " ---: |")
    counts = None
    for name, est in rows:
        bins = crlb_bins(est[sel], truth[sel], crlb[sel], snr[sel])
        counts = [b["n"] for b in bins]
        err = np.hypot(est[sel, 2] - truth[sel, 2], est[sel, 3] - truth[sel, 3])
        cells = [f"{b['ratio']:.2f} ({b['mean']:.3f} px)" if b["n"] else "-" for b in bins]
        print(f"| {name} | " + " | ".join(cells) + f" | {err.mean():.4f} |")
    print("| patches in the bin | " + " | ".join(str(c) for c in counts) + f" | {int(sel.sum())} |")


if __name__ == "__main__":
    main()
