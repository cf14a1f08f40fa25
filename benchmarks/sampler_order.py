#!/usr/bin/env python
"""Does our length-grouped batch order cost accuracy? The real run_glue.py against our script in random order and in
our default grouping, several seeds per GLUE task, on the HF README hyperparameters (issue 40).

    python benchmarks/sampler_order.py --glue_dir ../shared/data/glue --tasks sst2 cola mrpc rte --seeds 1 2 3 4 5

Per task and seed, one process each (timed whole):

- peer: ../shared/peers/run_glue.py (HF's script, patched only to run offline), the hyperparameters of our
  recipes/glue/<task>/all-MiniLM-L6-v2_hf-readme.json (its README's: lr 2e-5, batch 32, 3 epochs, 5 for MRPC, max
  length 128), its random order, `--pad_to_max_length false` (the same batches' numbers, less padding: no effect on
  what it learns) on CSV copies of the task's TSVs, scored with its --metric_task (the task's GLUE metric);
- random: run_classification.py with that recipe and `--train_sampling_strategy random`;
- group: the same recipe, our default order (group_by_length).

Both of ours run the recipe with `--eval_strategy no`: evaluated once at the end, as the peer is (the recipe's
evaluation each epoch would count in our train_runtime, not in the peer's). Every run, the peer's too, keeps one
checkpoint every SAVE_STEPS steps (the peer's own default interval): a full SST-2 run outlives a session, and a
stopped run goes on from its checkpoint when the benchmark runs again (saving draws no random numbers; ours resumes
bit-identically, tested). A resumed run's seconds are not a timing: the record marks it ("resumed") and
results/README.md leaves it out of the medians.

--group_from RESULTS_FILE takes the group runs from our recipe's own results file (results/glue/<task>/
all-MiniLM-L6-v2_hf-readme.json, written by scripts/run_seeds.py) instead of training them again: the same recipe
and seeds, which evaluated each epoch (that changes no training: no load-best, no random numbers drawn) and were
timed then, on that record's machine with those evaluations inside (the record names the file and each run's
command; results/README.md shows their metric, not their seconds: the step-time cost of each order is measured alone
by benchmarks/packing.py). For SST-2 that saves 5 runs of ~40 minutes.

The recipe's stock [CLS] pooler head (--pooling cls) is the peer's, so random vs the peer compares the two scripts
on one model and order, and group vs random our ordering alone. Records: results/sampler-order/<task>.json, every
run's eval metrics, train_runtime and wall seconds, rewritten after each run: a stopped benchmark resumes at the next
missing run. The training seconds compare only between runs of one machine alone on it (the record keeps the CPU,
its 1-minute load at each start and OMP_NUM_THREADS).

CPU cost on 2 cores (all-MiniLM-L6-v2): a full SST-2 run is ~45 min, so the whole table is many hours, spread over
sessions run by run."""

import argparse
import datetime
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from benchmarks._runs import (  # noqa: E402  (the repository root is on the path above)
    PEER,
    command_line,
    cpu_flags,
    peer_csvs,
    prune_run,
    run_logged,
)
from textcls.data.glue import GLUE_TASKS  # noqa: E402
from textcls.evaluation.results import environment, git_state  # noqa: E402
from textcls.io import write_json_atomic  # noqa: E402
from textcls.model.build import resolve_model_path  # noqa: E402

VARIANTS = ("peer", "random", "group")
SAVE_STEPS = 500  # run_glue.py's default checkpoint interval (Trainer's), ours set alike
# The only flags a run_seeds.py command of the recipe may add for its runs to stand for this benchmark's group runs.
SAME_TRAINING_FLAGS = {"--data_dir", "--disable_tqdm", "--plots", "--seed", "--output_dir", "--results_file"}
PRIMARY = {"sst2": "accuracy", "cola": "matthews_correlation", "mrpc": "f1", "rte": "accuracy", "wnli": "accuracy",
           "qnli": "accuracy", "stsb": "pearson"}  # fmt: skip


def recipe_path(task: str) -> str:
    return os.path.join(ROOT, "recipes", "glue", task, "all-MiniLM-L6-v2_hf-readme.json")


def variant_argv(variant: str, task: str, args, seed: int, out: str, csvs: tuple[str, str], resume=False) -> list[str]:
    with open(recipe_path(task), encoding="utf-8") as f:
        recipe = json.load(f)
    model = args.model or recipe["model_name_or_path"]
    rows = ["--max_train_samples", str(args.max_train_samples)] if args.max_train_samples else []
    length = str(args.max_seq_length or recipe["max_seq_length"])
    if variant == "peer":
        return [
            args.peer,
            "--model_name_or_path",
            resolve_model_path(model),
            "--train_file",
            csvs[0],
            "--validation_file",
            csvs[1],
            "--metric_task",
            task,
            "--do_train",
            "--do_eval",
            "--max_seq_length",
            length,
            "--learning_rate",
            str(recipe["learning_rate"]),
            "--per_device_train_batch_size",
            str(recipe["per_device_train_batch_size"]),
            "--per_device_eval_batch_size",
            str(recipe["per_device_eval_batch_size"]),
            "--num_train_epochs",
            str(recipe["num_train_epochs"]),
            "--seed",
            str(seed),
            "--output_dir",
            out,
            "--pad_to_max_length",
            "false",
            "--use_cpu",
            "--report_to",
            "none",
            "--save_steps",
            str(SAVE_STEPS),
            "--save_total_limit",
            "1",
            "--disable_tqdm",
            "true",
            *rows,
            *([] if resume else ["--overwrite_output_dir"]),
        ]  # fmt: skip  (it resumes from its last checkpoint)
    order = ["--train_sampling_strategy", "random"] if variant == "random" else []
    data = ["--data_dir", os.path.join(args.glue_dir, GLUE_TASKS[task].dir_name)]
    # evaluated once, at the end, as the peer is: the recipe's evaluation each epoch would count in train_runtime
    flags = [
        "--seed",
        str(seed),
        "--output_dir",
        out,
        "--eval_strategy",
        "no",
        "--save_strategy",
        "steps",
        "--save_steps",
        str(SAVE_STEPS),
        "--save_total_limit",
        "1",
    ]  # fmt: skip  (the same command resumes)
    flags += ["--max_seq_length", length]
    # fp32, as the peer trains and as every run before our bf16 default for CPUs with AMX: the order alone differs
    flags += ["--bf16", "false"]
    script = os.path.join(ROOT, "run_classification.py")
    return [script, recipe_path(task), "--model", model, *data, *flags, "--disable_tqdm", "true", *order, *rows]


def has_checkpoint(out: str) -> bool:
    return os.path.isdir(out) and any(name.startswith("checkpoint-") for name in os.listdir(out))


def group_runs_from(path: str, task: str, seeds: list[int]) -> list[dict]:
    """The group runs of `seeds` from a results file of this task's hf-readme recipe (scripts/run_seeds.py), as
    this benchmark's records; refused where the file is another recipe's or a run added flags that change training."""
    with open(path, encoding="utf-8") as f:
        results = json.load(f)
    recipe = os.path.relpath(recipe_path(task), ROOT)
    runs = []
    for run in results["runs"]:
        words = run["command"].split()
        if recipe not in words:
            raise SystemExit(f"--group_from {path}: its run of seed {run['seed']} is not of {recipe}")
        added = {w for w in words if w.startswith("--")} - SAME_TRAINING_FLAGS
        if added:
            raise SystemExit(f"--group_from {path}: its run of seed {run['seed']} adds {sorted(added)} to the recipe")
        if run["seed"] not in seeds:
            continue
        runs.append({
            "variant": "group", "seed": run["seed"], "max_train_samples": None,
            "metrics": {k: v for k, v in run["metrics"].items() if k.startswith("eval_")},
            "train_runtime_s": (run.get("timing") or {}).get("train_runtime"), "wall_s": run.get("wall_time_s"),
            "date": run["date"][:10], "git_sha": run.get("git_sha"), "git_dirty": run.get("git_dirty"),
            "source": os.path.relpath(os.path.abspath(path), ROOT), "source_command": run["command"],
            "torch_threads": (run.get("environment") or {}).get("torch_threads"),
        })  # fmt: skip
    return runs


def benchmark(args) -> int:
    os.makedirs(args.out, exist_ok=True)
    if "peer" in args.variants and not os.path.isfile(args.peer):
        raise SystemExit(f"the peer script is not at {args.peer}: pass --peer PATH (../shared/peers/run_glue.py)")
    for task in args.tasks:
        folder = os.path.join(args.work, task)
        os.makedirs(folder, exist_ok=True)
        task_dir = os.path.join(args.glue_dir, GLUE_TASKS[task].dir_name)
        csvs = peer_csvs(task, task_dir, folder) if "peer" in args.variants else ("", "")
        path = os.path.join(args.out, f"{task}.json")
        record = {"benchmark": "sampler-order", "task": task, "primary_metric": PRIMARY[task], "runs": []}
        if os.path.isfile(path):
            with open(path, encoding="utf-8") as f:
                record = json.load(f)
        record["recipe"] = os.path.relpath(recipe_path(task), ROOT)
        record["command"] = command_line("sampler_order.py", sys.argv[1:])
        done = {(r["variant"], r["seed"], r.get("max_train_samples")) for r in record["runs"]}
        if args.group_from and "group" in args.variants:
            for run in group_runs_from(args.group_from, task, args.seeds):
                if ("group", run["seed"], None) not in done:
                    record["runs"].append(run)
                    done.add(("group", run["seed"], None))
            write_json_atomic(path, record)
        for seed in args.seeds:
            for variant in args.variants:
                if (variant, seed, args.max_train_samples) in done:
                    continue
                out = os.path.join(folder, f"{variant}-{seed}")
                load, resumed = os.getloadavg()[0], has_checkpoint(out)
                argv = variant_argv(variant, task, args, seed, out, csvs, resume=resumed)
                wall = run_logged(argv, os.path.join(folder, "runs.log"))
                with open(os.path.join(out, "all_results.json"), encoding="utf-8") as f:
                    results = json.load(f)
                if not args.keep_models:
                    prune_run(out)
                record["runs"].append({
                    "variant": variant, "seed": seed, "max_train_samples": args.max_train_samples,
                    "metrics": {k: v for k, v in results.items() if k.startswith("eval_")},
                    "train_runtime_s": results.get("train_runtime"), "wall_s": round(wall, 1), "resumed": resumed,
                    "load_1m_at_start": round(load, 2), "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
                    "date": datetime.date.today().isoformat(), "cpu_flags": cpu_flags(), **git_state(),
                })  # fmt: skip
                record["environment"] = environment()
                write_json_atomic(path, record)
                value = results.get(f"eval_{PRIMARY[task]}")
                print(f"{task} seed {seed} {variant}: {PRIMARY[task]} {value} ({wall:.0f} s)", flush=True)
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--glue_dir", required=True, help="the GLUE root (../shared/data/glue)")
    p.add_argument("--tasks", nargs="+", default=["sst2", "cola", "mrpc", "rte"], choices=sorted(PRIMARY))
    p.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3, 4, 5])
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    p.add_argument("--model", help="instead of the recipe's model (a folder or a packaged hub id)")
    p.add_argument("--max_seq_length", type=int, help="instead of the recipe's (both scripts)")
    p.add_argument("--max_train_samples", type=int, help="the first N training rows, both scripts (a quick look)")
    p.add_argument(
        "--group_from",
        help="our recipe's results file (results/glue/<task>/all-MiniLM-L6-v2_hf-readme"
        ".json): its runs of --seeds are the group runs, not trained again (one task)",
    )
    p.add_argument("--peer", default=PEER, help="run_glue.py (default: ../shared/peers/run_glue.py)")
    p.add_argument("--work", default=os.path.join(ROOT, "outputs", "sampler-order"), help="run folders")
    p.add_argument("--out", default=os.path.join(ROOT, "results", "sampler-order"))
    p.add_argument("--keep_models", action="store_true",
                   help="keep each run's weights and checkpoints (default: removed once its values are recorded, "
                        "350 MB a run; its reports stay)")  # fmt: skip
    args = p.parse_args(argv)
    if args.group_from and (len(args.tasks) != 1 or args.max_train_samples):
        p.error("--group_from stands for one task's runs on all its training rows: pass one --tasks and no "
                "--max_train_samples")  # fmt: skip
    return benchmark(args)


if __name__ == "__main__":
    sys.exit(main())
