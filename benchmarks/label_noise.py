#!/usr/bin/env python
"""Does --find_label_issues find label errors, and does dropping what it finds pay? Measured on real GLUE sentences
whose labels we corrupt ourselves at known rows (issue 38).

    python benchmarks/label_noise.py --glue_dir ../shared/data/glue --tasks sst2 cola --noise 0.05 0.10

Per task: TRAIN_ROWS training rows drawn from the task's train.tsv (seeded), its whole dev set. Per noise level:
that share of the training labels flipped (seeded; the flipped positions are saved in the record), then one
command, `run_classification.py --cross_validate 5 --find_label_issues --cross_validate_refit` (the refit is the
model trained on the noisy labels), and one more run with `--exclude_rows label_issues.jsonl` (every flagged row
dropped). Once per task, the same training on the clean labels. Recorded: precision and recall of the flagged rows
against the flipped ones, precision among the top-ranked k (k = the number flipped), and the dev metric of noisy,
noisy-without-flagged and clean training, in results/label-noise/<task>-noise<pct>.json (and <task>-clean.json).

Resumable: a point whose record exists is skipped; a point's runs resume as any run does (its output folder is kept
under --work). Accuracy records: the wall times are whole-process seconds, measured beside whatever else ran."""

import argparse
import datetime
import json
import os
import random
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from benchmarks._runs import command_line as shared_command_line  # noqa: E402  (the root is on the path above)
from benchmarks._runs import run_logged, write_csv  # noqa: E402
from textcls.data.glue import GLUE_TASKS, load_glue_dir  # noqa: E402
from textcls.evaluation.results import environment, git_state  # noqa: E402
from textcls.io import write_json_atomic  # noqa: E402

MODEL = "sentence-transformers/all-MiniLM-L6-v2"
TRAIN_ROWS = 2000
FOLDS = 5
# The quickstart's settings (recipes/quickstart), 2 epochs: a fold trains on 1,600 rows.
SETTINGS = ["--learning_rate", "1e-4", "--num_train_epochs", "2", "--per_device_train_batch_size", "32",
            "--per_device_eval_batch_size", "64", "--warmup_steps", "0.06", "--weight_decay", "0.01",
            "--save_strategy", "no", "--logging_steps", "50", "--disable_tqdm", "true",
            "--plots", "false"]  # fmt: skip
METRIC = {"sst2": "accuracy", "cola": "matthews_correlation", "mrpc": "accuracy"}


def write_task_files(task: str, glue_dir: str, folder: str, seed: int, n: int) -> tuple[str, str, list[dict]]:
    """train.csv (n rows drawn from the task's training split) and dev.csv in folder; the training rows."""
    spec = GLUE_TASKS[task]
    raw = load_glue_dir(task, os.path.join(glue_dir, spec.dir_name))
    columns = [c for c in (spec.text_column, spec.text_pair_column) if c]
    names = spec.label_names

    def rows_of(split):
        return [{**{c: r[c] for c in columns}, "label": names[int(r["label"])]} for r in raw[split]]

    train = random.Random(seed).sample(rows_of("train"), n)
    os.makedirs(folder, exist_ok=True)
    paths = []
    for name, rows in (("train", train), ("dev", rows_of("validation"))):
        path = os.path.join(folder, f"{name}.csv")
        write_csv(path, rows)
        paths.append(path)
    return paths[0], paths[1], train


def flip(rows: list[dict], share: float, names: list[str], seed: int) -> tuple[list[dict], list[int]]:
    """The rows with round(share * n) labels flipped to another class (uniformly among the others), and which."""
    rng = random.Random(seed)
    flipped = sorted(rng.sample(range(len(rows)), round(share * len(rows))))
    noisy = [dict(r) for r in rows]
    for i in flipped:
        noisy[i]["label"] = rng.choice([n for n in names if n != rows[i]["label"]])
    return noisy, flipped


def run(argv: list[str], log: str) -> float:
    return run_logged([os.path.join(ROOT, "run_classification.py"), *argv], log)


def read_json(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def dev_metric(folder: str, metric: str) -> float:
    return read_json(os.path.join(folder, "all_results.json"))[f"eval_{metric}"]


def command_line(argv: list[str]) -> str:
    return shared_command_line("label_noise.py", argv)


def base_record(args, task: str) -> dict:
    return {
        "benchmark": "label-noise",
        "task": task,
        "model": args.model,
        "train_rows": args.train_rows,
        "folds": args.folds,
        "settings": [*SETTINGS, "--max_seq_length", str(args.max_seq_length)],
        "seed": args.seed,
        "date": datetime.date.today().isoformat(),
        "command": command_line(sys.argv[1:]),
        "environment": environment(),
        **git_state(),
        "note": "an accuracy record: wall seconds are whole-process, measured beside other work",
    }


def with_seed(flags: list[str], seed: int) -> list[str]:
    at = flags.index("--seed")
    return [*flags[:at], "--seed", str(seed), *flags[at + 2 :]]


def cv_spread(args, task: str, metric: str, flags: list[str], train: str, dev: str, folder: str, log: str) -> None:
    """Is a cross-validated score steadier than one split's? On the clean training rows, --cross_validate K once
    per seed in --cv_seeds (the seed shuffles the folds and seeds the training). Each fold is what a user holding
    out one random 1/K of the rows would have measured: its held-out score is a single-split estimate, and the same
    model's score on the task's dev set is the reference it estimates. Written after each seed to
    <task>-cv-spread.json; a seed already in it is skipped."""
    path = os.path.join(args.out, f"{task}-cv-spread.json")
    record = read_json(path) if os.path.isfile(path) else {**base_record(args, task), "metric": metric, "seeds": {}}
    for seed in args.cv_seeds:
        if str(seed) in record["seeds"]:
            continue
        out = os.path.join(folder, f"cv-seed{seed}")
        wall = run([*with_seed(flags, seed), "--train_file", train, "--validation_file", dev,
                    "--cross_validate", str(args.folds), "--output_dir", out], log)  # fmt: skip
        folds = read_json(os.path.join(out, "cv_results.json"))["folds"]
        heldout = [f[f"predict_cv_heldout_{metric}"] for f in folds]
        record["seeds"][str(seed)] = {
            "heldout": heldout,  # per fold: the single-split estimate
            "dev": [f[f"eval_{metric}"] for f in folds],  # per fold: the same model on the whole dev set
            "cv": sum(heldout) / len(heldout),
            "wall_s": wall,
        }
        record["command"] = command_line(sys.argv[1:])
        write_json_atomic(path, record)
        print(f"{task} cross-validation seed {seed}: {metric} {record['seeds'][str(seed)]['cv']:.4f}", flush=True)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--glue_dir", required=True, help="the GLUE root (../shared/data/glue)")
    p.add_argument("--tasks", nargs="+", default=["sst2", "cola"], choices=sorted(METRIC))
    p.add_argument("--noise", nargs="+", type=float, default=[0.05, 0.10])
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--model", default=MODEL)
    p.add_argument("--train_rows", type=int, default=TRAIN_ROWS)
    p.add_argument("--folds", type=int, default=FOLDS)
    p.add_argument("--max_seq_length", type=int, default=128)
    p.add_argument("--cv_seeds", nargs="*", type=int, default=[], help="also: the clean rows cross-validated per seed")
    p.add_argument("--work", default=os.path.join(ROOT, "outputs", "label-noise"), help="run folders (kept: resume)")
    p.add_argument("--out", default=os.path.join(ROOT, "results", "label-noise"))
    args = p.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    flags = [
        "--model",
        args.model,
        *SETTINGS,
        "--max_seq_length",
        str(args.max_seq_length),
        "--seed",
        str(args.seed),
        "--do_train",
        "--do_eval",
    ]
    for task in args.tasks:
        metric, names = METRIC[task], GLUE_TASKS[task].label_names
        # --task_name adds the task's own metric (CoLA's Matthews correlation, MRPC's F1) to a run on csv files
        run_flags = [*flags, *(["--task_name", task] if metric != "accuracy" else [])]
        folder = os.path.join(args.work, task)
        train, dev, rows = write_task_files(task, args.glue_dir, folder, args.seed, args.train_rows)
        log = os.path.join(folder, "runs.log")
        clean_record = os.path.join(args.out, f"{task}-clean.json")
        if not os.path.isfile(clean_record):
            out = os.path.join(folder, "clean")
            wall = run([*run_flags, "--train_file", train, "--validation_file", dev, "--output_dir", out], log)
            write_json_atomic(clean_record, {**base_record(args, task), "dev": {metric: dev_metric(out, metric)},
                                             "wall_s": wall})  # fmt: skip
            print(f"{task} clean: dev {metric} {dev_metric(out, metric):.4f}", flush=True)
        if args.cv_seeds:
            cv_spread(args, task, metric, run_flags, train, dev, folder, log)
        for share in args.noise:
            record_path = os.path.join(args.out, f"{task}-noise{round(100 * share):02d}.json")
            if os.path.isfile(record_path):
                continue
            noisy, flipped = flip(rows, share, names, args.seed)
            point = os.path.join(folder, f"noise{round(100 * share):02d}")
            os.makedirs(point, exist_ok=True)
            noisy_train = os.path.join(point, "train.csv")
            write_csv(noisy_train, noisy)
            cv = os.path.join(point, "cv")
            data = ["--train_file", noisy_train, "--validation_file", dev]
            cv_flags = ["--cross_validate", str(args.folds), "--find_label_issues", "--cross_validate_refit"]
            wall_cv = run([*run_flags, *data, *cv_flags, "--output_dir", cv], log)
            issues = [json.loads(line) for line in open(os.path.join(cv, "label_issues.jsonl"), encoding="utf-8")]
            flagged = [r["row"] for r in issues]
            found = set(flagged) & set(flipped)
            top = set(flagged[: len(flipped)]) & set(flipped)
            dropped = os.path.join(point, "without-flagged")
            exclude = ["--exclude_rows", os.path.join(cv, "label_issues.jsonl"), "--output_dir", dropped]
            wall_drop = run([*run_flags, *data, *exclude], log)
            cv_results = read_json(os.path.join(cv, "cv_results.json"))
            record = {
                **base_record(args, task),
                "noise": share,
                "flipped_rows": flipped,
                "flagged": len(flagged),
                "flagged_flipped": len(found),
                "precision": len(found) / max(len(flagged), 1),
                "recall": len(found) / len(flipped),
                "precision_top_k": len(top) / len(flipped),
                "cv": {k: v for k, v in cv_results["summary"].items() if k.endswith(metric)},
                "dev": {
                    "noisy": dev_metric(os.path.join(cv, "refit"), metric),
                    "noisy_without_flagged": dev_metric(dropped, metric),
                    "clean": read_json(clean_record)["dev"][metric],
                },
                "metric": metric,
                "wall_s": {"cross_validation_and_refit": wall_cv, "without_flagged": wall_drop},
            }
            write_json_atomic(record_path, record)
            print(f"{task} noise {share:.0%}: flagged {len(flagged)}, precision {record['precision']:.3f}, recall "
                  f"{record['recall']:.3f}, dev {json.dumps(record['dev'])}", flush=True)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
