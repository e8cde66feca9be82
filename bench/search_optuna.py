#!/usr/bin/python3
"""Optuna's NSGAIISampler / RandomSampler over the NAC search space (resources/spaces/nac.json)
written as a define-by-run objective, as the NAC code does, training every trial with the same
trainer as BraggNAC through `braggnac trial DATA --arch SPEC.json --json` (the bridge verb).

Usage: search_optuna.py BRAGGNAC DATA SPACE.json OUT.json --sampler nsga2|random --trials N
       --epochs E --workers W --seed S [--population 20]
Writes {"sampler", "seed", "trials": [{"number", "values": [distance, bops], "start", "end"}]}
with start/end in seconds from the study's start.
"""
import argparse
import json
import os
import subprocess
import tempfile
import threading
import time

import optuna


def build_spec(trial, space):
    """A define-by-run spec: block parameters exist only under their block type (so Optuna's
    NSGA-II samples them with its independent sampler, as in the NAC code)."""
    stem = space["stem"]
    spec = {"name": "optuna-%d" % trial.number, "input_size": space["input_size"],
            "force_one_by_one": space["force_one_by_one"],
            "stem": {"channels": trial.suggest_categorical("stem.channels", stem["channels"]),
                     "kernel": stem["kernel"][0], "norm": stem["norm"][0], "act": stem["act"][0]},
            "blocks": [], "head": []}
    b = space["blocks"]
    for i in range(b["slots"]):
        kind = trial.suggest_categorical("blocks[%d].type" % i, b["types"])
        if kind == "none":
            continue
        if kind == "conv":
            conv = b["conv"]
            layers = []
            for j in range(conv["layers"][0]):
                p = "blocks[%d].layers[%d]." % (i, j)
                layers.append({"channels": trial.suggest_categorical(p + "channels", conv["channels"]),
                               "kernel": trial.suggest_categorical(p + "kernel", conv["kernel"]),
                               "norm": trial.suggest_categorical(p + "norm", conv["norm"]),
                               "act": trial.suggest_categorical(p + "act", conv["act"])})
            spec["blocks"].append({"type": "conv", "layers": layers})
        else:
            att = b["conv-attention"]
            p = "blocks[%d]." % i
            spec["blocks"].append({"type": "conv-attention",
                                   "attention_channels": trial.suggest_categorical(p + "attention_channels", att["attention_channels"]),
                                   "act": trial.suggest_categorical(p + "act", att["act"])})
    h = space["head"]
    for k in range(h["layers"][0]):
        p = "head[%d]." % k
        spec["head"].append({"width": trial.suggest_categorical(p + "width", h["width"]),
                             "norm": trial.suggest_categorical(p + "norm", h["norm"]),
                             "act": trial.suggest_categorical(p + "act", h["act"])})
    return spec


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("braggnac")
    ap.add_argument("data")
    ap.add_argument("space")
    ap.add_argument("out")
    ap.add_argument("--sampler", choices=["nsga2", "random"], required=True)
    ap.add_argument("--trials", type=int, required=True)
    ap.add_argument("--epochs", type=int, required=True)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--population", type=int, default=20)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--enqueue-nac", type=int, default=1, help="first trial = the nac network (1) or not (0)")
    a = ap.parse_args()
    space = json.load(open(a.space))
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = (optuna.samplers.NSGAIISampler(population_size=a.population, seed=a.seed)
               if a.sampler == "nsga2" else optuna.samplers.RandomSampler(seed=a.seed))
    study = optuna.create_study(directions=["minimize", "minimize"], sampler=sampler)
    if a.enqueue_nac:
        # The same head start as BraggNAC's first generation (which also holds braggnn, outside
        # this space): the NAC paper's network, a point of the space.
        nac = json.load(open(os.path.join(os.path.dirname(os.path.abspath(a.space)), "..", "arch", "nac.json")))
        params = {"stem.channels": nac["stem"]["channels"]}
        for i, blk in enumerate(nac["blocks"]):
            params["blocks[%d].type" % i] = blk["type"]
            for j, l in enumerate(blk.get("layers", [])):
                for k in ("channels", "kernel", "norm", "act"):
                    params["blocks[%d].layers[%d].%s" % (i, j, k)] = l[k]
        for k, l in enumerate(nac["head"]):
            for key in ("width", "norm", "act"):
                params["head[%d].%s" % (k, key)] = l[key]
        study.enqueue_trial(params)
    t0 = time.monotonic()
    times = {}
    lock = threading.Lock()
    tmp = tempfile.mkdtemp(prefix="braggnac-optuna-")

    def objective(trial):
        start = time.monotonic() - t0
        spec = build_spec(trial, space)
        path = os.path.join(tmp, "spec-%d.json" % trial.number)
        with open(path, "w") as f:
            json.dump(spec, f)
        r = subprocess.run([a.braggnac, "trial", a.data, "--arch", path, "--epochs", str(a.epochs),
                            "--batch", str(a.batch), "--threads", "1", "--seed", str(a.seed), "--json"],
                           capture_output=True, text=True)
        with lock:
            times[trial.number] = (start, time.monotonic() - t0)
        if r.returncode != 0:
            raise optuna.TrialPruned("trial failed: " + r.stderr.strip()[-200:])
        j = json.loads(r.stdout)
        return j["metrics"]["validation"]["mean"], j["cost"]["bops"]

    study.optimize(objective, n_trials=a.trials, n_jobs=a.workers, catch=(Exception,))
    trials = []
    for t in study.trials:
        if t.state == optuna.trial.TrialState.COMPLETE and t.number in times:
            trials.append({"number": t.number, "values": list(t.values),
                           "start": times[t.number][0], "end": times[t.number][1]})
    json.dump({"sampler": "optuna-" + a.sampler, "seed": a.seed, "trials": trials}, open(a.out, "w"))


if __name__ == "__main__":
    main()
