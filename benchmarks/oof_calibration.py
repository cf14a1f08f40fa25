#!/usr/bin/env python
"""Does a temperature fitted on a cross-validation's out-of-fold predictions calibrate the model trained on all the
rows? (--auto_select cross_validation fits one on its pick's and saves it in the model: textcls.train.method.)

    python benchmarks/learning_curve.py --glue_dir ../shared/data/glue --tasks sst2 --per_class 32 \\
        --methods finetune-small setfit auto-cv        # the draws and their cross-validations, kept in --work
    python benchmarks/oof_calibration.py --tasks sst2 --per_class 32 --draws 3 --candidates finetune-small

Per task, size, draw and candidate with a cross-validation in the learning curve's work folder
(<work>/<task>/auto-cv-<size>-<draw>/<candidate>/oof_predictions.jsonl): the candidate trained on the whole draw as
the curve trains it, predicting the dev set; its dev log loss and calibration error (ECE) raw, divided by the
temperature fitted on the out-of-fold predictions, and divided by the one fitted on the dev set itself (the best any
single temperature can do there, for scale). A temperature never changes a decision, so accuracy is the run's.
Record: results/calibration/oof-temperature.json, rewritten after every run; a run in it is not run again."""

import argparse
import csv
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks import learning_curve as lc  # noqa: E402  (the root is on the path above)
from benchmarks._runs import prune_run, run_logged  # noqa: E402
from textcls.evaluation.calibration import fit_temperature  # noqa: E402
from textcls.evaluation.metrics import probability_metrics  # noqa: E402
from textcls.io import write_json_atomic  # noqa: E402
from textcls.train import method  # noqa: E402

SINGLE = "single_label_classification"


def scores(logits: np.ndarray, gold: np.ndarray, temperature: float) -> dict:
    found = probability_metrics(logits / temperature, gold, SINGLE).metrics
    return {"log_loss": round(found["log_loss"], 4), "ece": round(found["ece"], 4)}


def measure(task: str, per_class: int, d: int, candidate: str, args) -> dict | None:
    folder = os.path.join(args.work, task)
    oof = os.path.join(folder, f"{lc.AUTO_CV}-{per_class}-{d}", candidate, "oof_predictions.jsonl")
    if not os.path.isfile(oof):
        return None
    with open(oof, encoding="utf-8") as f:
        names = list(json.loads(f.readline())["probabilities"])
    train, dev = os.path.join(folder, f"train-{per_class}-{d}.csv"), os.path.join(folder, "dev.csv")
    out = os.path.join(args.scratch, f"{task}-{candidate}-{per_class}-{d}")
    with open(train, encoding="utf-8", newline="") as f:
        rows = sum(1 for _ in csv.DictReader(f))  # (a quoted text may span lines)
    argv = lc.method_argv(candidate, args.model, train, dev, out, rows, d, args.max_seq_length, lc.METRIC[task])
    wall = run_logged([*argv, "--test_file", dev, "--do_predict", "--overwrite_output_dir"], out + ".log")
    prune_run(out)
    dev_logits, dev_gold, predicted = method.read_logits(os.path.join(out, "predictions.jsonl"), names)
    oof_logits, oof_gold, _ = method.read_logits(oof, names)
    t_oof = fit_temperature(oof_logits, oof_gold, SINGLE)
    t_dev = fit_temperature(dev_logits, dev_gold, SINGLE)
    return {
        "task": task, "per_class": per_class, "draw": d, "candidate": candidate,
        "dev_accuracy": round(float((predicted == dev_gold).mean()), 4), "dev_rows": len(dev_gold),
        "temperature_out_of_fold": round(t_oof, 4), "temperature_dev": round(t_dev, 4),
        "raw": scores(dev_logits, dev_gold, 1.0), "out_of_fold": scores(dev_logits, dev_gold, t_oof),
        "dev_fitted": scores(dev_logits, dev_gold, t_dev), **lc.provenance(wall, os.getloadavg()[0]),
    }  # fmt: skip


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tasks", nargs="+", default=["sst2", "cola"], choices=sorted(lc.METRIC))
    p.add_argument("--per_class", nargs="+", type=int, default=[32, 64])
    p.add_argument("--draws", type=int, default=3)
    p.add_argument("--candidates", nargs="+", default=list(method.CV_CANDIDATES), choices=method.CV_CANDIDATES)
    p.add_argument("--work", default=os.path.join("outputs", "learning-curve"), help="the learning curve's --work")
    p.add_argument("--scratch", default=os.path.join("outputs", "oof-calibration"))
    p.add_argument("--out", default=os.path.join("results", "calibration", "oof-temperature.json"))
    p.add_argument("--model", default=lc.MODEL)
    p.add_argument("--max_seq_length", type=int, default=128)
    args = p.parse_args(argv)
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    os.makedirs(args.scratch, exist_ok=True)
    record = {"benchmark": "oof-calibration", "model": args.model, "runs": []}
    if os.path.isfile(args.out):
        with open(args.out, encoding="utf-8") as f:
            record = json.load(f)
    record["command"] = lc.command_line("oof_calibration.py", sys.argv[1:] if argv is None else argv)
    key = lambda r: (r["task"], r["per_class"], r["draw"], r["candidate"])  # noqa: E731
    done = {key(r) for r in record["runs"]}
    for task in args.tasks:
        for per_class in args.per_class:
            for d in range(1, args.draws + 1):
                for candidate in args.candidates:
                    if (task, per_class, d, candidate) in done:
                        continue
                    run = measure(task, per_class, d, candidate, args)
                    if run is None:
                        print(f"{task} {per_class}/class draw {d} {candidate}: no cross-validation in {args.work}")
                        continue
                    record["runs"].append(run)
                    record["environment"] = lc.environment()
                    write_json_atomic(args.out, record)
                    print(f"{task} {per_class}/class draw {d} {candidate}: log loss {run['raw']['log_loss']} -> "
                          f"{run['out_of_fold']['log_loss']} (dev-fitted {run['dev_fitted']['log_loss']})",
                          flush=True)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
