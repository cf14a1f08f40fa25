#!/usr/bin/env python
"""Does class-balanced sampling help beyond --class_weights? The measurement behind issue 17's question.

    python benchmarks/balanced_sampling.py recipes/imbalance/sst2-20to1/all-MiniLM-L6-v2.json --seeds 1 2 3 \\
        --out results/imbalance/sst2-20to1/balanced-sampling.json

Runs the recipe once per seed with its training batches drawn by a class-balanced sampler (torch's
WeightedRandomSampler: each row drawn with probability 1 / (classes x its class's rows), with replacement, as many
draws an epoch as rows, seeded from (seed, epoch) so that a resumed run draws the same), everything else as the
recipe says, and records each seed's accuracy, macro-F1 and per-class recall on the validation split in --out (a
results file, as --results_file writes). The sampler is
put in for this measurement only (ClassificationTrainer._get_train_sampler, patched here): run_classification.py
does not offer it unless it wins.
"""

import argparse
import json
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import numpy as np  # noqa: E402
import torch  # noqa: E402

import run_classification as R  # noqa: E402
from textcls.data.load import arrow_column  # noqa: E402
from textcls.evaluation.results import git_state, record_run  # noqa: E402
from textcls.train import trainer as T  # noqa: E402

SAMPLER = "class-balanced: torch WeightedRandomSampler, with replacement, seeded from (seed, epoch)"


class BalancedSampler(torch.utils.data.Sampler):
    def __init__(self, labels: np.ndarray, seed: int, epoch):
        counts = np.bincount(labels)
        self.weights = torch.as_tensor(1.0 / (len(counts) * counts[labels]), dtype=torch.float64)
        self.seed, self.epoch = seed, epoch

    def __len__(self):
        return len(self.weights)

    def __iter__(self):
        generator = torch.Generator().manual_seed(self.seed + self.epoch())
        return iter(torch.multinomial(self.weights, len(self.weights), True, generator=generator).tolist())


def balanced(self, train_dataset=None):
    labels = arrow_column(self.train_dataset, "labels").to_numpy()
    return BalancedSampler(labels, self.args.seed, lambda: int(self.state.epoch or 0))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("recipe")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--out", required=True)
    parser.add_argument("--output_dir", default="outputs/balanced-sampling")
    args, extra = parser.parse_known_args(argv)
    T.ClassificationTrainer._get_train_sampler = balanced
    code = git_state()  # the code that runs, taken before it runs
    command = " ".join(["python", "benchmarks/balanced_sampling.py", *(argv if argv is not None else sys.argv[1:])])
    for seed in args.seeds:
        out = os.path.join(args.output_dir, f"seed-{seed}")
        start = time.monotonic()
        flags = [args.recipe, *extra, "--seed", str(seed), "--output_dir", out, "--overwrite_output_dir"]
        metrics = R.main(flags)
        with open(os.path.join(out, "eval_classification_report.json")) as f:
            report = json.load(f)
        measured = {k: metrics[k] for k in ("eval_accuracy", "eval_macro_f1")}
        measured |= {f"eval_recall_{name}": c["recall"] for name, c in report["per_class"].items()}
        extra_fields = {"wall_time_s": round(time.monotonic() - start, 1), "sampler": SAMPLER}
        record_run(args.out, seed, measured, command, args.recipe, extra_fields, code)
        print(json.dumps({"seed": seed, **measured}), flush=True)
    print(f"recorded in {args.out}")


if __name__ == "__main__":
    main()
