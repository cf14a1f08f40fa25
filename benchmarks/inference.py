#!/usr/bin/env python
"""Prediction speed and accuracy of a trained model: PyTorch (run_classification.py as it predicts today) against its
ONNX export, fp32 and dynamic int8 (--export onnx), each mode a fresh process, one at a time. Run it alone on the
machine.

    python scripts/make_scale_data.py ../shared/data/glue/SST-2 data/scale --rows 100000   # test.csv: 100k rows
    python benchmarks/inference.py --model outputs/quickstart-sst2-sample \\
        --dev data/sst2-sample/dev.csv --rows_file data/scale/test.csv --rows 100000

Without MODEL/onnx/ it is exported first (run_classification.py --export onnx on --dev). Each mode runs
`run_classification.py --model M --validation_file DEV --test_file ROWS --do_eval --do_predict --max_predict_samples
N` in a process of its own: M is the model folder (pytorch), or a folder holding only the fp32 or only the int8 graph
with the export's config and tokenizer (onnx_fp32, onnx_int8). Recorded per mode: rows/s predicting the rows file
(Trainer's predict_samples_per_second: the forward passes and batching, after tokenizing), rows/s evaluating the dev
set, dev accuracy, wall time and peak RSS of the process; and the export's check (logit differences, sizes). The
record (results/speed/inference-cpu-<date>.json by default) holds the targets of issue 37 met or missed, the exact
command, versions and the CPU's flags (VNNI, AMX)."""

import argparse
import datetime
import json
import os
import shlex
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))

from scale import RunFailed, metrics_of, timed_run  # noqa: E402

from benchmarks._runs import cpu_flags  # noqa: E402
from textcls.evaluation.results import environment, git_state  # noqa: E402
from textcls.io import write_json_atomic  # noqa: E402  (the repository root is put on the path just above)

OURS = os.path.join(ROOT, "run_classification.py")
MODES = ("pytorch", "onnx_fp32", "onnx_int8")
SHARED = ("config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt")
# issue 37's targets, on this machine
TARGETS = {
    "int8_speedup": 3.0,
    "int8_points_lost": 0.5,
    "fp32_max_abs_logit_difference": 1e-4,
    "int8_size_share": 1 / 3,
}


def _environment() -> dict:
    """The run's environment, with the onnxruntime that ran the graphs."""
    from importlib.metadata import PackageNotFoundError, version

    env = environment()
    try:
        env["packages"]["onnxruntime"] = version("onnxruntime")
    except PackageNotFoundError:
        pass
    return env


def graph_folder(onnx: str, graph: str, parent: str) -> str:
    """A folder holding one graph of the export (as model.onnx or model_int8.onnx) and what it needs beside it."""
    onnx, folder = os.path.abspath(onnx), os.path.join(parent, graph.split(".")[0])
    os.makedirs(folder)
    for name in (graph, *SHARED):
        if os.path.isfile(os.path.join(onnx, name)):
            os.symlink(os.path.join(onnx, name), os.path.join(folder, name))
    return folder


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="a model folder written by run_classification.py")
    parser.add_argument("--dev", required=True, help="a labelled file: accuracy of each mode (and the export check)")
    parser.add_argument("--rows_file", required=True, help="the file whose rows are predicted")
    parser.add_argument("--rows", type=int, default=100000, help="rows of --rows_file predicted")
    parser.add_argument("--output", default=None, help="the record (default results/speed/inference-cpu-DATE.json)")
    args = parser.parse_args(argv)
    date = datetime.date.today().isoformat()
    output = args.output or os.path.join(ROOT, "results", "speed", f"inference-cpu-{date}.json")
    onnx = os.path.join(args.model, "onnx")
    with tempfile.TemporaryDirectory() as work:
        cache = os.path.join(work, "cache")
        if not os.path.isfile(os.path.join(onnx, "export_report.json")):
            export = [sys.executable, OURS, "--model", args.model, "--validation_file", args.dev, "--do_eval"]
            export += ["--export", "onnx", "--output_dir", args.model, "--disable_tqdm", "true", "--plots", "false"]
            timed_run(export, cache, os.path.join(work, "export.log"))
        with open(os.path.join(onnx, "export_report.json"), encoding="utf-8") as f:
            export_report = json.load(f)
        models = {
            "pytorch": args.model,
            "onnx_fp32": graph_folder(onnx, "model.onnx", work),
            "onnx_int8": graph_folder(onnx, "model_int8.onnx", work),
        }
        runs = {}
        for mode in MODES:
            out = os.path.join(work, f"out-{mode}")
            command = [sys.executable, OURS, "--model", models[mode], "--validation_file", args.dev]
            command += ["--test_file", args.rows_file, "--do_eval", "--do_predict", "--output_dir", out]
            command += ["--max_predict_samples", str(args.rows), "--disable_tqdm", "true", "--plots", "false"]
            print(f"{mode}: {shlex.join(command)}", flush=True)
            run = timed_run(command, cache, os.path.join(work, f"{mode}.log"))
            results = metrics_of(out, "all_results.json")
            run |= {
                "predict_rows_per_second": results.get("predict_samples_per_second"),
                "eval_rows_per_second": results.get("eval_samples_per_second"),
                "dev_accuracy": results.get("eval_accuracy"),
            }
            run["command"] = run["command"].replace(work, "<tmp>")
            runs[mode] = run
            print(json.dumps({mode: run}), flush=True)
    speedup = runs["onnx_int8"]["predict_rows_per_second"] / runs["pytorch"]["predict_rows_per_second"]
    lost = 100 * (runs["pytorch"]["dev_accuracy"] - runs["onnx_int8"]["dev_accuracy"])
    measured = {
        "int8_speedup": speedup,
        "int8_points_lost": lost,
        "fp32_max_abs_logit_difference": export_report["summary"]["fp32_max_abs_logit_difference"],
        "int8_size_share": export_report["summary"]["int8_size_share"],
    }
    met = {k: (v >= TARGETS[k] if k == "int8_speedup" else v <= TARGETS[k]) for k, v in measured.items()}
    record = {
        "benchmark": "inference",
        "date": date,
        "command": shlex.join(["python", "benchmarks/inference.py", *(argv if argv is not None else sys.argv[1:])]),
        "model": args.model,
        "rows": args.rows,
        "peak_rss": "own",  # each run's own peak (scale.timed_run through OwnPeakRss), not this script's
        "runs": runs,
        "export_check": export_report["summary"],
        "file_bytes": export_report["file_bytes"],
        "targets": TARGETS,
        "measured": measured,
        "met": met,
        "cpu_flags": cpu_flags(),
        "environment": _environment(),
        **git_state(),
    }
    write_json_atomic(output, record)
    print(json.dumps({"measured": measured, "met": met}, indent=1))
    print(f"recorded in {os.path.relpath(output, ROOT)}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except RunFailed as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)
