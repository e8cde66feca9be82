#!/usr/bin/python3
"""Turns `braggnac study S.db --json` into the run format of search_report.py: complete trials
with their (distance, bops) values and start/end seconds from the study's first trial."""
import json
import sys

study_json, name, seed, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
j = json.load(open(study_json))
trials = j["trials"]
t0 = min(t["queued_at"] for t in trials) if trials else 0
runs = [{"number": t["number"], "values": t["values"], "start": t["started_at"] - t0, "end": t["finished_at"] - t0}
        for t in trials if t["state"] == "complete" and len(t["values"]) == 2]
json.dump({"sampler": name, "seed": seed, "trials": runs}, open(out, "w"))
