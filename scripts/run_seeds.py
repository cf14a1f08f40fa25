#!/usr/bin/env python
"""Run one recipe once per seed, record every run in its results file, and print the median +- std per metric.

    python scripts/run_seeds.py recipes/glue/rte/bert-base-cased.json --seeds 1 2 3 4 5
    python scripts/run_seeds.py RECIPE.json --seeds 1 2 3 -- --max_train_samples 500   # flags after -- go to every run
    python scripts/run_seeds.py RECIPE.json --seeds 1 2 --launcher "accelerate launch --num_processes 4"

Seed S runs `run_classification.py RECIPE [flags] --seed S --output_dir <output_dir>/seed-S --results_file
results/<benchmark>/<task>/<recipe>.json`, one after the other; <output_dir> is the recipe's, or --output_dir
after --. An interrupted seed resumes from its last checkpoint when run again; a seed already in the results file
is run again and replaces its entry. The LoRA paper reports the median of 5 seeds.
"""

import argparse
import os
import shlex
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from textcls.config.args import load_recipe  # noqa: E402  (the repository root is put on the path just above)
from textcls.errors import UserError  # noqa: E402
from textcls.evaluation.results import load_results, results_path  # noqa: E402

SCRIPT = os.path.join(ROOT, "run_classification.py")
# Set per seed by this script: the same flag after -- would make every seed's run identical or share one record.
OWNED_FLAGS = ("--seed", "--results_file")


def _pop_output_dir(flags: list[str]) -> tuple[str | None, list[str]]:
    """(value of --output_dir among the flags, the flags without it): it becomes the base of the seed folders."""
    value, rest, i = None, [], 0
    while i < len(flags):
        if flags[i] == "--output_dir" and i + 1 < len(flags):
            value, i = flags[i + 1], i + 2
            continue
        if flags[i].startswith("--output_dir="):
            value = flags[i].split("=", 1)[1]
        else:
            rest.append(flags[i])
        i += 1
    return value, rest


def seed_commands(recipe: str, seeds: list[int], extra: list[str], results_file: str, launcher: str):
    """The command line of each seed's run, in order."""
    clash = [f for f in extra if f.split("=", 1)[0] in OWNED_FLAGS]
    if clash:
        raise UserError(f"{clash[0]} is set per seed by run_seeds.py; drop it from the flags after --.")
    base, extra = _pop_output_dir(extra)
    base = base or load_recipe(recipe).get("output_dir")
    if not base:
        raise UserError(f"recipe {recipe} has no output_dir: add one, or pass -- --output_dir DIR.")
    prefix = [sys.executable] if launcher == "python" else shlex.split(launcher)
    return [
        [
            *prefix,
            SCRIPT,
            recipe,
            *extra,
            "--seed",
            str(seed),
            "--output_dir",
            os.path.join(base, f"seed-{seed}"),
            "--results_file",
            results_file,
        ]
        for seed in seeds
    ]


def run_one(command: list[str]) -> int:
    """One seed's run, its output streaming to this terminal; the exit code."""
    return subprocess.run(command).returncode


def summary_table(results: dict) -> str:
    lines = [
        f"{results['recipe']}: seeds {' '.join(map(str, results['seeds']))}",
        f"{'metric':<32} {'median':>8}   {'std':>7} {'n':>3}  per seed",
    ]
    for metric, s in results["summary"].items():
        std = f"{s['std']:.4f}" if s["std"] is not None else "-"
        values = " ".join(f"{v:.4f}" for v in s["values"])
        lines.append(f"{metric:<32} {s['median']:>8.4f} +- {std:>7} {s['n']:>3}  {values}")
    return "\n".join(lines)


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    extra = argv[argv.index("--") + 1 :] if "--" in argv else []
    own = argv[: argv.index("--")] if "--" in argv else argv
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("recipe", help="recipe JSON, e.g. recipes/glue/rte/bert-base-cased.json")
    parser.add_argument("--seeds", type=int, nargs="+", required=True, help="one run per seed, in this order")
    parser.add_argument(
        "--results_file", help="where the runs are recorded (default: the recipe's mirror under results/)"
    )
    parser.add_argument(
        "--launcher", default="python", help="'python' (default) or a launcher command, e.g. 'accelerate launch'"
    )
    args = parser.parse_args(own)
    try:
        results_file = args.results_file or results_path(args.recipe)
        commands = seed_commands(args.recipe, args.seeds, extra, results_file, args.launcher)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for seed, command in zip(args.seeds, commands, strict=True):
        print(f"==> seed {seed}: {shlex.join(command)}", flush=True)
        returncode = run_one(command)
        if returncode != 0:
            # A failure is usually the configuration's, so the remaining seeds would fail the same way.
            print(f"error: seed {seed} failed (exit code {returncode}); later seeds not run.", file=sys.stderr)
            return returncode
    results = load_results(results_file)
    if results is None:
        print(f"error: the runs finished but wrote no {results_file}.", file=sys.stderr)
        return 1
    print(summary_table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
