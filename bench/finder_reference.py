#!/usr/bin/python3
"""Reference peak finder in numpy/scipy for bench/finder.sh: the same algorithm as
core/peaks/finder.cpp (threshold = median + 5 * 1.4826 * MAD on the same subsample,
8-connected scipy.ndimage.label, 3..2500 px, intensity-weighted centroid with weights
value - median, maximum position), without patches or the merged flag. Prints one JSON object.
usage: finder_reference.py FRAMES.h5 [--reps 7] [--dataset /entry/data/data]"""
import argparse
import json
import time

import h5py
import numpy as np
from scipy import ndimage

FULL_SAMPLE_LIMIT = 512 * 512
SAMPLE_TARGET = 32768
SAMPLE_RUN = 16
STRUCTURE = np.ones((3, 3), dtype=bool)


def find(frame, auto_sigma=5.0, min_pixels=3, max_pixels=2500):
    flat = frame.ravel()
    if flat.size <= FULL_SAMPLE_LIMIT:
        sample = flat
    else:  # runs of SAMPLE_RUN pixels every `stride` (odd), as frameThreshold() does
        stride = ((flat.size // SAMPLE_TARGET) * SAMPLE_RUN) | 1
        index = (np.arange(0, flat.size, stride)[:, None] + np.arange(SAMPLE_RUN)).ravel()
        sample = flat[index[index < flat.size]]
    sample = sample[np.isfinite(sample)]
    median = float(np.median(sample))
    sigma = 1.4826 * float(np.median(np.abs(sample - median)))
    threshold = np.float32(median + auto_sigma * sigma)
    mask = (frame > threshold) & np.isfinite(frame)
    labels, n = ndimage.label(mask, structure=STRUCTURE)
    sizes = np.bincount(labels.ravel(), minlength=n + 1)
    keep = np.nonzero((sizes >= min_pixels) & (sizes <= max_pixels))[0]
    keep = keep[keep > 0]
    if keep.size == 0:
        return []
    centroids = ndimage.center_of_mass(frame - median, labels, keep)
    maxima = ndimage.maximum_position(frame, labels, keep)
    return [(m[0], m[1], c[0], c[1]) for m, c in zip(maxima, centroids)]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("frames")
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--dataset", default="/entry/data/data")
    a = ap.parse_args()
    with h5py.File(a.frames, "r") as f:
        ds = f[a.dataset]
        count = ds.shape[0]
        t0 = time.perf_counter()
        frames = [ds[i].astype(np.float32) for i in range(count)]
        read_seconds = time.perf_counter() - t0
    in_memory = []
    peaks = None
    for _ in range(a.reps):
        t0 = time.perf_counter()
        found = [find(fr) for fr in frames]
        in_memory.append(time.perf_counter() - t0)
        peaks = found
    with_read = []
    for _ in range(max(1, a.reps // 2)):
        t0 = time.perf_counter()
        with h5py.File(a.frames, "r") as f:
            ds = f[a.dataset]
            for i in range(count):
                find(ds[i].astype(np.float32))
        with_read.append(time.perf_counter() - t0)
    fps = sorted(count / s for s in in_memory)
    fps_read = sorted(count / s for s in with_read)
    print(json.dumps({
        "frames": count,
        "peaks_found": sum(len(p) for p in peaks),
        "peaks_per_frame": [len(p) for p in peaks],
        "in_memory": {"frames_per_s_median": float(np.median(fps)), "frames_per_s_min": fps[0],
                      "frames_per_s_max": fps[-1], "reps": len(fps)},
        "with_hdf5_read": {"frames_per_s_median": float(np.median(fps_read)), "reps": len(fps_read)},
        "hdf5_read_seconds": read_seconds,
        "numpy": np.__version__,
        "scipy": __import__("scipy").__version__,
    }))


if __name__ == "__main__":
    main()
