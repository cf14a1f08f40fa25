#!/usr/bin/env python
"""The majority-class baseline of each local GLUE task: predict the training set's most frequent class for every dev
row, scored by the same metrics as a model (textcls.evaluation.metrics.compute_metrics); written to results/baselines/.

    python scripts/majority_baseline.py ../shared/data/glue [--output results/baselines/glue-majority-class.json]

A model that learned only the class prior scores this; on WNLI, whose dev set pairs each training sentence with the
opposite label, it is what most fine-tuned models fail to reach. STS-B is a regression: a constant prediction has no
correlation with the gold scores (Pearson is undefined), so it has no row.
"""

import argparse
import collections
import datetime
import os
import shlex
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from textcls.data.glue import GLUE_TASKS, load_glue_dir  # noqa: E402  (the repository root is put on the path above)
from textcls.evaluation.metrics import PROBABILITY_METRICS, compute_metrics  # noqa: E402
from textcls.io import write_json_atomic  # noqa: E402

DEFAULT_OUTPUT = os.path.join(ROOT, "results", "baselines", "glue-majority-class.json")


def majority_baseline(task_name: str, data_dir: str) -> dict:
    """{majority label, counts, the dev metrics of predicting it everywhere} for one task folder."""
    task = GLUE_TASKS[task_name]
    data = load_glue_dir(task_name, data_dir)
    train = collections.Counter(data["train"]["label"])
    majority = max(sorted(train), key=lambda label: train[label])  # ties: the lower id
    dev = np.asarray(data["validation"]["label"])
    logits = np.zeros((len(dev), len(task.label_names)))
    logits[:, majority] = 1.0
    metrics = compute_metrics(logits, dev, "single_label_classification", task_name, list(task.label_names))
    # A constant's probabilities rank nothing: AUC, log loss and calibration say nothing about a prior.
    metrics = {f"eval_{k}": v for k, v in metrics.items() if k not in PROBABILITY_METRICS}
    return {
        "majority_label": task.label_names[majority],
        "train_counts": {task.label_names[k]: v for k, v in sorted(train.items())},
        "eval_rows": len(dev),
        "eval_share_of_majority": float((dev == majority).mean()),
        "metrics": metrics,
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("glue_dir", help="the folder of the original GLUE task folders (CoLA/, SST-2/, ...)")
    parser.add_argument("--output", default=DEFAULT_OUTPUT)
    args = parser.parse_args(argv)
    tasks = {}
    for name, task in GLUE_TASKS.items():
        folder = os.path.join(args.glue_dir, task.dir_name)
        if task.is_regression or not os.path.isfile(os.path.join(folder, "train.tsv")):
            continue
        tasks[name] = majority_baseline(name, folder)
    if not tasks:
        print(f"error: no GLUE task folder with a train.tsv under {args.glue_dir}.", file=sys.stderr)
        return 2
    record = {
        "command": shlex.join(
            ["python", "scripts/majority_baseline.py", *(argv if argv is not None else sys.argv[1:])]
        ),
        "date": datetime.date.today().isoformat(),
        "tasks": tasks,
    }
    write_json_atomic(args.output, record)
    for name, t in tasks.items():
        shown = " ".join(f"{k.removeprefix('eval_')} {100 * v:.2f}" for k, v in t["metrics"].items())
        print(f"{name}: always {t['majority_label']}: {shown}")
    print(f"wrote {os.path.relpath(args.output)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
