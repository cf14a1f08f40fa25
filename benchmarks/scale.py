#!/usr/bin/env python
"""Data at scale: our defaults vs run_glue.py's pipeline (benchmarks/hf_reference.py: datasets' memory-mapped cache,
dynamic padding, length-grouped batches) on large CSVs, each run a fresh process, one at a time.

    python scripts/make_scale_data.py ../shared/data/glue/SST-2 data/scale     # the files (about 2.2 GB)
    python benchmarks/scale.py --data_dir data/scale --rows 100000 1000000 4000000

For each N: training runs (--max_steps 20, batch 32, --logging_steps 1) of
  ours_cold  run_classification.py with an empty datasets cache (HF_DATASETS_CACHE is a fresh folder)
  ours_warm  the same command again, on the cache the cold run left
  hf_cold    hf_reference.py on the same files, with an empty cache of its own
  ours_stream  (not by default) run_classification.py --streaming true: the training rows read and tokenized as
             training goes, nothing cached
  ours_upfront_cold  (not by default) ours_cold with --tokenize upfront: the whole split tokenized (and cached)
             before training starts, as every run did before --tokenize (ours_cold on CPU from 100,000 rows
             tokenizes each batch as training reads it)
  peer_cold  (not by default) the real run_glue.py (../shared/peers/run_glue.py, HF's script patched only to run
             offline) with its best flags for this: --pad_to_max_length false and length grouping (transformers
             5's --train_sampling_strategy group_by_length, once --group_by_length), empty cache
  peer_cold_bf16, ours_cold_fp32  (not by default) peer_cold with --bf16 true (its fastest on a CPU with AMX), and
             ours_cold with --bf16 false (fp32, where our default is bf16 training steps)
--steps N (default 20) trains N steps instead: with a few hundred, train samples/s is the steady state, and
end_to_end_vs_peer* (the peer's wall time over ours) the whole process at that length (issue 40's 100k-row check).
and for the first N only, prediction runs on the first --predict_rows rows of test.csv (default 10,000 of its
100,000: forward passes alone run at about 36 rows/s on 2 cores) with the model the training run saved:
  ours_predict, hf_predict (ours selects the rows before tokenizing; hf_reference.py tokenizes the whole file
  first, as run_glue.py does).
Each run records its peak RSS (its own, not this script's: _runs.OwnPeakRss; datasets' num_proc workers are not
counted), the seconds from its start to its first logged training step (the end of step 1: the line Trainer prints
after it), training samples/s over the 20 steps (Trainer's train_samples_per_second), and for prediction rows/s
(Trainer's predict_samples_per_second) and wall time. The record (results/speed/scale-*.json by default) holds every
run, the ratios against the targets of issue 15, the exact command, versions and hardware. Run it alone on the
machine.
"""

import argparse
import csv
import datetime
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from benchmarks._runs import PEER, OwnPeakRss, cpu_flags  # noqa: E402
from textcls.evaluation.results import environment, git_state  # noqa: E402
from textcls.io import write_json_atomic  # noqa: E402  (the repository root is put on the path just above)
from textcls.model.build import resolve_model_path  # noqa: E402

OURS = os.path.join(ROOT, "run_classification.py")
HF = os.path.join(ROOT, "benchmarks", "hf_reference.py")
STEPS = 20  # --steps: the default
# (the peer's Trainer refuses --bf16 on a machine without a GPU unless told --use_cpu)
MODE_FLAGS = {"ours_upfront_cold": ["--tokenize", "upfront"], "ours_cold_fp32": ["--bf16", "false"],
              "peer_cold_bf16": ["--bf16", "true", "--use_cpu", "true"]}  # fmt: skip
OWN_CACHE = ("ours_stream", "ours_upfront_cold", "peer_cold", "peer_cold_bf16", "ours_cold_fp32")
BATCH = 32


class RunFailed(Exception):
    pass


def label_id_copy(path: str, folder: str) -> str:
    """A copy of a CSV with its class names replaced by their ids in sorted order (run_glue.py's own label map), for
    the peer: under transformers 5 / datasets 5 it maps class names to ids but its datasets.map writes them back
    into the string 'label' column as '0' and '1', and its collator then fails on strings (measured 2026-12-06). Made
    once per file, before and outside the timed run."""
    out = os.path.join(folder, "ids-" + os.path.basename(path))
    if os.path.exists(out):
        return out
    with open(path, encoding="utf-8", newline="") as f:
        names = sorted({row["label"] for row in csv.DictReader(f)})
    ids = {name: str(i) for i, name in enumerate(names)}
    with open(path, encoding="utf-8", newline="") as f, open(out + ".tmp", "w", encoding="utf-8", newline="") as g:
        reader = csv.DictReader(f)
        writer = csv.DictWriter(g, fieldnames=reader.fieldnames)
        writer.writeheader()
        for row in reader:
            writer.writerow({**row, "label": ids[row["label"]]})
    os.replace(out + ".tmp", out)
    return out


def train_command(script: str, args, rows: int, output_dir: str, streaming: bool = False, flags=()) -> list[str]:
    train = os.path.join(args.data_dir, f"train-{rows}.csv")
    model = args.model
    if script == args.peer:  # it knows no packaged models (the installed folder of ours) nor class-name labels
        model = resolve_model_path(model)
        os.makedirs(args.peer_data, exist_ok=True)
        train = label_id_copy(train, args.peer_data)
    common = ["--model_name_or_path", model, "--train_file", train, "--output_dir", output_dir]
    common += ["--max_steps", str(args.steps), "--per_device_train_batch_size", str(BATCH), "--logging_steps", "1"]
    common += ["--max_seq_length", str(args.max_seq_length), "--learning_rate", "5e-5", "--seed", "42"]
    if script == OURS:
        common += ["--do_train", "--save_strategy", "no", "--overwrite_output_dir", "true", "--report_to", "none"]
        common += ["--disable_tqdm", "true", "--plots", "false"] + (["--streaming", "true"] if streaming else [])
    elif script == args.peer:  # run_glue.py needs a validation file beside the training file
        dev = label_id_copy(os.path.join(args.data_dir, "dev.csv"), args.peer_data)
        common += ["--validation_file", dev, "--do_train", "--save_strategy", "no"]
        common += ["--pad_to_max_length", "false", "--train_sampling_strategy", "group_by_length"]
        common += ["--overwrite_output_dir", "--report_to", "none"]
    else:
        common += ["--group_by_length"]
    return [sys.executable, script, *common, *flags]


def predict_command(script: str, args, model_dir: str, output_dir: str) -> list[str]:
    test = os.path.join(args.data_dir, "test.csv")
    common = ["--model_name_or_path", model_dir, "--test_file", test, "--output_dir", output_dir]
    common += ["--max_predict_samples", str(args.predict_rows)]
    if script == OURS:
        common += ["--do_predict", "--disable_tqdm", "true", "--report_to", "none", "--plots", "false"]
    else:
        common += ["--do_train", "false", "--do_predict", "--per_device_eval_batch_size", "64"]
    common += ["--max_seq_length", str(args.max_seq_length)]
    return [sys.executable, script, *common]


def timed_run(command: list[str], cache: str, log_path: str) -> dict:
    """One fresh process with HF_DATASETS_CACHE=cache: wall time, peak RSS (wait4), seconds to the first logged
    training step (the first line of its output holding a 'loss' entry)."""
    env = {**os.environ, "HF_DATASETS_CACHE": cache, "PYTHONUNBUFFERED": "1", "HF_HUB_OFFLINE": "1"}
    env["HF_DATASETS_OFFLINE"] = "1"
    wall, first_step, rss = run_process(command, env, log_path)
    return {
        "command": shlex.join(["python", os.path.relpath(command[1], ROOT), *command[2:]]),
        "wall_s": wall,
        "first_step_s": first_step,
        "peak_rss_bytes": rss,
    }


def run_process(command: list[str], env: dict, log_path: str) -> tuple[float, float | None, int]:
    """Run one command in a fresh process with env, its output to log_path: wall seconds, seconds to its first logged
    training step (None without one), peak RSS in bytes (its own, not this process's: _runs.OwnPeakRss). A failed
    run raises RunFailed with the log's tail."""
    start = time.perf_counter()
    first_step = None
    with open(log_path, "w") as log:
        run = OwnPeakRss(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=ROOT, env=env, text=True)
        for line in run.proc.stdout:
            log.write(line)
            if first_step is None and "'loss'" in line:
                first_step = time.perf_counter() - start
        code, rss = run.wait()
    wall = time.perf_counter() - start
    if code != 0:
        with open(log_path) as f:
            tail = f.read()[-3000:]
        raise RunFailed(f"{shlex.join(command)} exited with {code}:\n{tail}")
    return wall, first_step, rss


def metrics_of(output_dir: str, name: str) -> dict:
    path = os.path.join(output_dir, name)
    if not os.path.exists(path):
        return {}
    with open(path) as f:
        return json.load(f)


def ratios(runs: dict, rows: list[int]) -> dict:
    """issue 15's targets, from what was measured: (name, run, measure, against, target), each where both runs
    exist. 'against' is (rows, mode), or a mode at the same rows; peak_rss_above_* is a difference in GB."""
    first = rows[0]
    comparisons = []
    for n in rows[1:]:
        comparisons += [
            (f"peak_rss_vs_hf_at_{n}", (n, "ours_cold"), "peak_rss_bytes", (n, "hf_cold"), "<= 1"),
            (f"peak_rss_above_{first}_at_{n}_gb", (n, "ours_cold"), "peak_rss_bytes", (first, "ours_cold"), "<= 1"),
            (f"train_throughput_{n}_vs_{first}", (n, "ours_cold"), "train_samples_per_second", (first, "ours_cold"),
             ">= 0.95"),
            (f"first_step_cold_vs_hf_at_{n}", (n, "ours_cold"), "first_step_s", (n, "hf_cold"), "<= 0.5"),
            (f"first_step_warm_vs_hf_at_{n}", (n, "ours_warm"), "first_step_s", (n, "hf_cold"), "<= 0.2"),
        ]  # fmt: skip
    for n in rows:  # issue 40: against the real run_glue.py, and what per-batch tokenizing buys and costs
        comparisons += [
            (f"first_step_cold_vs_peer_at_{n}", (n, "ours_cold"), "first_step_s", (n, "peer_cold"), "<= 0.5"),
            (f"first_step_cold_vs_upfront_at_{n}", (n, "ours_cold"), "first_step_s", (n, "ours_upfront_cold"),
             "<= 0.5"),
            (f"train_throughput_cold_vs_upfront_at_{n}", (n, "ours_cold"), "train_samples_per_second",
             (n, "ours_upfront_cold"), ">= 0.95"),
            (f"peak_rss_cold_vs_peer_at_{n}", (n, "ours_cold"), "peak_rss_bytes", (n, "peer_cold"), "<= 1"),
        ]  # fmt: skip
        for peer, name in (("peer_cold", "peer"), ("peer_cold_bf16", "peer_bf16")):  # steady state (--steps)
            comparisons += [
                (f"end_to_end_vs_{name}_at_{n}", (n, peer), "wall_s", (n, "ours_cold"), ">= 1.3"),
                (f"train_throughput_vs_{name}_at_{n}", (n, "ours_cold"), "train_samples_per_second", (n, peer),
                 ">= 1"),
            ]  # fmt: skip
    for n in rows:
        comparisons += [
            (f"first_step_stream_vs_hf_at_{n}", (n, "ours_stream"), "first_step_s", (n, "hf_cold"), "<= 0.5"),
            (f"peak_rss_stream_vs_hf_at_{n}", (n, "ours_stream"), "peak_rss_bytes", (n, "hf_cold"), "<= 1"),
            (f"train_throughput_stream_vs_cached_at_{n}", (n, "ours_stream"), "train_samples_per_second",
             (n, "ours_cold"), ">= 0.95"),
        ]  # fmt: skip
    out = {}
    for name, (n, mode), measure, (m, base), target in comparisons:
        a, b = runs.get(str(n), {}).get(mode), runs.get(str(m), {}).get(base)
        if a is None or b is None or a.get(measure) is None or b.get(measure) is None:
            continue
        value = (a[measure] - b[measure]) / 1e9 if name.endswith("_gb") else a[measure] / b[measure]
        sign, bound = target.split()
        met = value <= float(bound) if sign == "<=" else value >= float(bound)
        out[name] = {"value": value, "target": target, "met": met}
    return out


def parse(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data_dir", required=True, help="the folder scripts/make_scale_data.py wrote")
    p.add_argument("--model", default="sentence-transformers/all-MiniLM-L6-v2")
    p.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000, 4_000_000])
    p.add_argument(
        "--modes",
        nargs="+",
        default=["ours_cold", "ours_warm", "hf_cold"],
        choices=["ours_cold", "ours_warm", "ours_stream", "ours_upfront_cold", "ours_cold_fp32", "hf_cold",
                 "peer_cold", "peer_cold_bf16"],
    )  # fmt: skip
    p.add_argument("--steps", type=int, default=STEPS, help="training steps a run (a few hundred: steady state)")
    p.add_argument("--peer", default=PEER, help="run_glue.py (default: ../shared/peers/run_glue.py)")
    p.add_argument("--predict_modes", nargs="*", default=["ours", "hf"], help="prediction runs (none: skip them)")
    p.add_argument("--max_seq_length", type=int, default=128)
    p.add_argument(
        "--predict_rows",
        type=int,
        default=10_000,
        help="rows of test.csv predicted (forward passes run at about 36 rows/s on 2 cores: 100,000 take 47 min)",
    )
    p.add_argument("--work_dir", help="where caches and outputs go (default: a temporary folder, removed after)")
    p.add_argument("--out", help="record path (default results/speed/scale-cpu-DATE.json)")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse(argv)
    missing = [
        f"train-{n}.csv" for n in args.rows if not os.path.isfile(os.path.join(args.data_dir, f"train-{n}.csv"))
    ]
    if args.predict_modes and not os.path.isfile(os.path.join(args.data_dir, "test.csv")):
        missing.append("test.csv")
    if missing:
        print(
            f"error: {args.data_dir} has no {', '.join(missing)}. Write them with python scripts/make_scale_data.py "
            f"../shared/data/glue/SST-2 {args.data_dir} --rows {' '.join(map(str, args.rows))}",
            file=sys.stderr,
        )
        return 2
    out = args.out or os.path.join(ROOT, "results", "speed", f"scale-cpu-{datetime.date.today().isoformat()}.json")
    work = args.work_dir or tempfile.mkdtemp(prefix="scale-")
    os.makedirs(work, exist_ok=True)
    args.peer_data = os.path.join(work, "peer-data")
    record = {
        "benchmark": "scale",
        "command": shlex.join(["python", "benchmarks/scale.py", *(argv if argv is not None else sys.argv[1:])]),
        "settings": {
            "max_steps": args.steps,
            "batch_size": BATCH,
            "max_seq_length": args.max_seq_length,
            "model": args.model,
        },
        **git_state(),
        "environment": environment(),
        "cpu_flags": cpu_flags(),
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "peak_rss": "own",  # each run's own peak (OwnPeakRss), not at least this script's as before 2026-12-07
        "runs": {},
    }
    try:
        for n in args.rows:
            runs = record["runs"].setdefault(str(n), {})
            caches = {"ours": os.path.join(work, f"cache-ours-{n}"), "hf": os.path.join(work, f"cache-hf-{n}")}
            for mode in args.modes:
                script = OURS if mode.startswith("ours") else args.peer if mode.startswith("peer") else HF
                cache = caches["ours" if script == OURS else "hf"]
                if mode in OWN_CACHE:  # a cache of their own
                    cache = os.path.join(work, f"cache-{mode}-{n}")
                if mode.endswith("_cold"):
                    shutil.rmtree(cache, ignore_errors=True)
                out_dir = os.path.join(work, f"{mode}-{n}")
                log = os.path.join(work, f"{mode}-{n}.log")
                flags = MODE_FLAGS.get(mode, [])
                command = train_command(script, args, n, out_dir, streaming=mode == "ours_stream", flags=flags)
                load = os.getloadavg()[0]
                run = timed_run(command, cache, log)
                run["load_1m_at_start"] = round(load, 2)
                run["train_samples_per_second"] = metrics_of(out_dir, "train_results.json")["train_samples_per_second"]
                runs[mode] = run
                print(f"{n} {mode}: {json.dumps(run)}", flush=True)
                write_json_atomic(out, {**record, "targets": ratios(record["runs"], args.rows)})
            if n == args.rows[0]:
                for who in args.predict_modes:
                    mode, script = f"{who}_predict", OURS if who == "ours" else HF
                    trained = os.path.join(work, f"{who}_cold-{n}")
                    out_dir = os.path.join(work, f"{mode}-{n}")
                    cache = os.path.join(work, f"cache-{mode}")
                    shutil.rmtree(cache, ignore_errors=True)
                    run = timed_run(predict_command(script, args, trained, out_dir), cache, os.path.join(work, mode))
                    metrics = metrics_of(out_dir, "predict_results.json")
                    run["predict_samples_per_second"] = metrics.get("predict_samples_per_second")
                    run["predict_rows"] = metrics.get("predict_samples")
                    runs[mode] = run
                    print(f"{n} {mode}: {json.dumps(run)}", flush=True)
                    write_json_atomic(out, {**record, "targets": ratios(record["runs"], args.rows)})
    except RunFailed as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    finally:
        if not args.work_dir:
            shutil.rmtree(work, ignore_errors=True)
    record["targets"] = ratios(record["runs"], args.rows)
    write_json_atomic(out, record)
    for name, entry in record["targets"].items():
        print(f"{name}: {entry['value']:.3f} (target {entry['target']}: {'met' if entry['met'] else 'NOT met'})")
    print(f"recorded in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
