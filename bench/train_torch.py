#!/usr/bin/python3
"""Python (PyTorch) reference for bench/train.sh: the same networks, data, recipe and loop as the
C++ trainer (core/nn/trainer.cpp), written the idiomatic PyTorch way.

The network is built from the architecture-spec JSON the C++ side writes
(`bench_train --write-spec NAME OUT.json`), layer for layer as core/nn/torch_net.cpp builds it:
conv (valid, stride 1) -> BatchNorm2d | LayerNorm([C, H, W]) -> act; the conv-attention block is
BraggNN's non-local block; flatten; Linear -> LayerNorm | BatchNorm1d -> act; Linear to 2.
Inputs are min-max normalised per patch; the target is centre / S; MSE; RMSprop (lr 1.5e-3,
weight decay 2.2e-9), cosine schedule over the epochs, batch 256 (the NAC recipe).

Two data pipelines (--pipeline): "dataloader" (default) is the upstream BraggNN / NAC training
code's: a torch Dataset whose __getitem__ min-max normalises one patch, batched by a shuffling
DataLoader (num_workers=0, so both sides use the same cores); "tensor" is the C++ trainer's own
loop (one pre-normalised tensor, index_select on a shuffled permutation), for comparison.

  train_torch.py throughput --data P.h5 --spec S.json [--threads 1] [--batch 256] [--epochs 6]
                            [--infer-batch 256] [--infer-repeats 5] [--pipeline dataloader|tensor]
  train_torch.py inference  --data P.h5 --spec S.json [--threads 1] [--infer-batch 256]
                            [--infer-repeats 5]      (inference alone, in a fresh process)
  train_torch.py accuracy   --data P.h5 --spec S.json [--threads 1] [--epochs 20] [--seed 1]

Both print one JSON object on stdout. The data file must carry /split (braggnac simulate patches
writes one); rows with /fit/converged == 0 are left out, as in the C++ trainer.
"""
import argparse
import json
import math
import os
import statistics
import sys
import time

import h5py
import numpy as np
import torch
import torch.nn as nn

EXPECTED_PARAMS = {"braggnn": 45394, "nac": 17226}


def activation(name):
    name = (name or "none").lower()
    if name == "relu":
        return nn.ReLU()
    if name == "leakyrelu":
        return nn.LeakyReLU(0.01)
    if name == "gelu":
        return nn.GELU()
    if name == "none":
        return None
    raise ValueError("unknown activation " + name)


class ConvUnit(nn.Module):
    def __init__(self, cin, size, layer, kernel):
        super().__init__()
        self.conv = nn.Conv2d(cin, layer["channels"], kernel, stride=1, padding=0)
        out = size - kernel + 1
        norm = layer.get("norm", "none")
        self.norm = (nn.BatchNorm2d(layer["channels"]) if norm == "batch" else
                     nn.LayerNorm([layer["channels"], out, out]) if norm == "layer" else None)
        self.act = activation(layer.get("act"))

    def forward(self, x):
        x = self.conv(x)
        if self.norm is not None:
            x = self.norm(x)
        if self.act is not None:
            x = self.act(x)
        return x


class NonLocalBlock(nn.Module):
    """BraggNN's NLB: softmax over positions of theta^T phi, times g, 1x1 back, residual."""

    def __init__(self, channels, h, act):
        super().__init__()
        self.h = h
        self.theta = nn.Conv2d(channels, h, 1)
        self.phi = nn.Conv2d(channels, h, 1)
        self.g = nn.Conv2d(channels, h, 1)
        self.out = nn.Conv2d(h, channels, 1)
        self.act = activation(act)

    def forward(self, x):
        n, _, hh, ww = x.shape
        theta = self.theta(x).view(n, self.h, hh * ww).permute(0, 2, 1)
        phi = self.phi(x).view(n, self.h, hh * ww)
        g = self.g(x).view(n, self.h, hh * ww).permute(0, 2, 1)
        att = torch.softmax(torch.matmul(theta, phi), -1)
        y = torch.matmul(att, g).permute(0, 2, 1).contiguous().view(n, self.h, hh, ww)
        out = self.out(y) + x
        if self.act is not None:
            out = self.act(out)
        return out


class DenseUnit(nn.Module):
    def __init__(self, fin, layer):
        super().__init__()
        self.linear = nn.Linear(fin, layer["width"])
        norm = layer.get("norm", "none")
        self.norm = (nn.BatchNorm1d(layer["width"]) if norm == "batch" else
                     nn.LayerNorm(layer["width"]) if norm == "layer" else None)
        self.act = activation(layer.get("act"))

    def forward(self, x):
        x = self.linear(x)
        if self.norm is not None:
            x = self.norm(x)
        if self.act is not None:
            x = self.act(x)
        return x


class PeakNet(nn.Module):
    def __init__(self, spec):
        super().__init__()
        size = spec.get("input_size", 11)
        force = spec.get("force_one_by_one", False)
        features = []
        channels = 1

        def kernel_for(layer):
            k = layer.get("kernel", 3)
            if k > size:
                if not force:
                    raise ValueError("kernel collapses the map")
                k = 1
            return k

        k = kernel_for(spec["stem"])
        features.append(ConvUnit(channels, size, spec["stem"], k))
        channels, size = spec["stem"]["channels"], size - k + 1
        for block in spec.get("blocks", []):
            if block["type"] == "conv":
                for layer in block["layers"]:
                    k = kernel_for(layer)
                    features.append(ConvUnit(channels, size, layer, k))
                    channels, size = layer["channels"], size - k + 1
            elif block["type"] == "conv-attention":
                features.append(NonLocalBlock(channels, block["attention_channels"], block.get("act")))
        self.features = nn.Sequential(*features)
        head = []
        width = channels * size * size
        for layer in spec.get("head", []):
            head.append(DenseUnit(width, layer))
            width = layer["width"]
        head.append(nn.Linear(width, 2))
        self.head = nn.Sequential(*head)

    def forward(self, x):
        return self.head(self.features(x).flatten(1))


def normalise(patches):
    """[N, S, S] raw counts -> [N, 1, S, S] in [0, 1] per patch (constant patches -> 0)."""
    p = patches.astype(np.float32)
    finite = np.isfinite(p)
    lo = np.where(finite, p, np.inf).min(axis=(1, 2), keepdims=True)
    hi = np.where(finite, p, -np.inf).max(axis=(1, 2), keepdims=True)
    rng = hi - lo
    ok = np.isfinite(rng) & (rng > 0)
    out = np.where(finite & ok, (p - lo) / np.where(ok, rng, 1), 0).astype(np.float32)
    return torch.from_numpy(out[:, None, :, :].copy())


def load(path):
    with h5py.File(path, "r") as f:
        patches = f["/patches"][...]
        centers = f["/centers"][...].astype(np.float32)
        if "/split" not in f:
            sys.exit(path + ": /split: missing (the reference needs an explicit split)")
        split = f["/split"][...].astype(np.int64)
        use = np.ones(len(split), bool)
        if "/fit/converged" in f:
            use = f["/fit/converged"][...] != 0
    size = patches.shape[1]
    return patches, centers, split, use, size


def build(spec_path, threads, seed):
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    with open(spec_path) as f:
        spec = json.load(f)
    model = PeakNet(spec)
    params = sum(p.numel() for p in model.parameters())
    want = EXPECTED_PARAMS.get(spec.get("name"))
    if want is not None and params != want:
        sys.exit("%s: built %d parameters, expected %d" % (spec_path, params, want))
    return spec, model, params


class PatchDataset(torch.utils.data.Dataset):
    """The upstream BraggNN / NAC data pipeline: one normalised patch per __getitem__."""

    def __init__(self, patches, centers, size):
        self.patches, self.centers, self.size = patches, centers, size

    def __len__(self):
        return len(self.patches)

    def __getitem__(self, i):
        p = self.patches[i].astype(np.float32)
        lo, hi = p.min(), p.max()
        p = (p - lo) / (hi - lo) if hi > lo else np.zeros_like(p)
        return p[np.newaxis], (self.centers[i] / self.size).astype(np.float32)


def tensor_batches(x, y, batch, gen):
    """The C++ trainer's way: one pre-normalised tensor, index_select on a shuffled permutation."""
    n = x.shape[0]
    nb = (n + batch - 1) // batch
    if nb > 1 and n % batch == 1:
        nb -= 1
    perm = torch.randperm(n, generator=gen)
    for b in range(nb):
        idx = perm[b * batch:(b + 1) * batch]
        yield x.index_select(0, idx), y.index_select(0, idx)


def train_epochs(model, train, epochs, batch, lr, weight_decay, seed, pipeline="tensor",
                 xval=None, yval=None, size=11):
    """train = (x, y) normalised tensors (pipeline "tensor") or (patches, centers) raw arrays
    (pipeline "dataloader"). MSE, RMSprop, cosine schedule; best epoch on validation kept."""
    opt = torch.optim.RMSprop(model.parameters(), lr=lr, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs)
    gen = torch.Generator().manual_seed(seed)
    if pipeline == "dataloader":
        loader = torch.utils.data.DataLoader(PatchDataset(train[0], train[1], size),
                                             batch_size=batch, shuffle=True, generator=gen,
                                             num_workers=0)
    n = len(train[0])
    history, best, best_state = [], math.inf, None
    for epoch in range(epochs):
        t0 = time.perf_counter()
        model.train()
        total = 0.0
        batches = loader if pipeline == "dataloader" else tensor_batches(train[0], train[1], batch, gen)
        for xb, yb in batches:
            loss = torch.nn.functional.mse_loss(model(xb), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(xb)
        lr_used = opt.param_groups[0]["lr"]
        sched.step()
        val = float("nan")
        if xval is not None and len(xval):
            val = float(distances(model, xval, yval, size).mean())
            if val < best:
                best = val
                best_state = {k: v.clone() for k, v in model.state_dict().items()}
        history.append({"epoch": epoch + 1, "loss": total / n, "validation_mean": val, "lr": lr_used,
                        "seconds": time.perf_counter() - t0})
    if best_state is not None:
        model.load_state_dict(best_state)
    return history


def distances(model, x, y, size, batch=512):
    model.eval()
    out = []
    with torch.inference_mode():
        for i in range(0, x.shape[0], batch):
            out.append(((model(x[i:i + batch]) - y[i:i + batch]) ** 2).sum(1).sqrt() * size)
    return torch.cat(out).numpy().astype(np.float64)


def predict(model, patches, size, batch, pipeline):
    model.eval()
    out = []
    if pipeline == "dataloader":
        loader = torch.utils.data.DataLoader(PatchDataset(patches, np.zeros((len(patches), 2), np.float32), size),
                                             batch_size=batch, shuffle=False, num_workers=0)
        with torch.no_grad():
            for xb, _ in loader:
                out.append((model(xb) * size).numpy())
    else:
        with torch.inference_mode():
            for i in range(0, len(patches), batch):
                out.append((model(normalise(patches[i:i + batch])) * size).numpy())
    return np.concatenate(out)


def throughput(a):
    patches, centers, _, _, size = load(a.data)
    spec, model, params = build(a.spec, a.threads, 1)
    if a.pipeline == "dataloader":
        train_data = (patches, centers)
    else:
        train_data = (normalise(patches), torch.from_numpy(centers / size))
    hist = train_epochs(model, train_data, a.epochs, a.batch, 1.5e-3, 2.2e-9, 1, a.pipeline, size=size)
    train = [len(patches) / h["seconds"] for h in hist[1:]]
    infer = []
    for k in range(a.infer_repeats + 1):
        t0 = time.perf_counter()
        predict(model, patches, size, a.infer_batch, a.pipeline)
        if k > 0:
            infer.append(len(patches) / (time.perf_counter() - t0))
    print(json.dumps({"impl": "python-" + a.pipeline, "torch": torch.__version__, "arch": spec.get("name"),
                      "params": params, "threads": a.threads, "batch": a.batch,
                      "infer_batch": a.infer_batch, "samples": len(patches),
                      "train_samples_per_s": statistics.median(train),
                      "infer_samples_per_s": statistics.median(infer),
                      "train_epochs_samples_per_s": train, "infer_repeats_samples_per_s": infer}))


def inference(a):
    """Inference alone in a fresh process (a standalone prediction script): build the net, then
    time predict() passes over the file with the tensor pipeline (warm-up pass excluded)."""
    patches, _, _, _, size = load(a.data)
    spec, model, params = build(a.spec, a.threads, 1)
    infer = []
    for k in range(a.infer_repeats + 1):
        t0 = time.perf_counter()
        predict(model, patches, size, a.infer_batch, "tensor")
        if k > 0:
            infer.append(len(patches) / (time.perf_counter() - t0))
    impl = "python-fresh-malloc" if os.environ.get("MALLOC_MMAP_THRESHOLD_") else "python-fresh"
    print(json.dumps({"impl": impl, "torch": torch.__version__, "arch": spec.get("name"),
                      "params": params, "threads": a.threads, "infer_batch": a.infer_batch,
                      "samples": len(patches), "infer_samples_per_s": statistics.median(infer),
                      "infer_repeats_samples_per_s": infer}))


def accuracy(a):
    patches, centers, split, use, size = load(a.data)
    spec, model, params = build(a.spec, a.threads, a.seed)
    x = normalise(patches)
    y = torch.from_numpy(centers / size)
    rows = {k: np.nonzero((split == k) & use)[0] for k in (0, 1, 2)}
    train_data = ((patches[rows[0]], centers[rows[0]]) if a.pipeline == "dataloader"
                  else (x[rows[0]], y[rows[0]]))
    t0 = time.perf_counter()
    hist = train_epochs(model, train_data, a.epochs, a.batch, a.lr, a.weight_decay, a.seed,
                        a.pipeline, x[rows[1]], y[rows[1]], size)
    d = distances(model, x[rows[2]], y[rows[2]], size)
    seconds = time.perf_counter() - t0
    best = min(range(len(hist)), key=lambda i: hist[i]["validation_mean"]) + 1
    test = {"n": len(d), "mean": float(d.mean()), "p50": float(np.percentile(d, 50)),
            "p75": float(np.percentile(d, 75)), "p95": float(np.percentile(d, 95)),
            "max": float(d.max())}
    print(json.dumps({"impl": "python-" + a.pipeline, "arch": spec.get("name"), "params": params,
                      "epochs": len(hist), "best_epoch": best, "test": test, "seconds": seconds,
                      "history": hist}))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("mode", choices=["throughput", "inference", "accuracy"])
    p.add_argument("--data", required=True)
    p.add_argument("--spec", required=True)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--infer-batch", type=int, default=256)
    p.add_argument("--infer-repeats", type=int, default=5)
    p.add_argument("--lr", type=float, default=1.5e-3)
    p.add_argument("--weight-decay", type=float, default=2.2e-9)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--pipeline", choices=["dataloader", "tensor"], default="dataloader",
                   help="dataloader: the upstream BraggNN/NAC Dataset + DataLoader (default); "
                        "tensor: the C++ trainer's pre-normalised tensor + index_select loop")
    a = p.parse_args()
    if a.epochs is None:
        a.epochs = 6 if a.mode == "throughput" else 20
    {"throughput": throughput, "inference": inference, "accuracy": accuracy}[a.mode](a)


if __name__ == "__main__":
    main()
