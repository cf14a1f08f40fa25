"""What the benchmarks share: CSV files for a run (and the real run_glue.py's copies of a GLUE task), one run as a
logged subprocess, the command line as a record shows it (the accuracy benchmarks: label_noise.py,
learning_curve.py, sampler_order.py), and the CPU's flags that every timing is recorded with."""

import csv
import os
import subprocess
import sys
import time

from textcls.data.glue import GLUE_TASKS, load_glue_dir
from textcls.hardware import timing_flags as cpu_flags  # noqa: F401  (the benchmarks import it from here)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The real run_glue.py (HF's script patched only to run offline), beside the repository: the reference peer.
PEER = os.path.join(os.path.dirname(ROOT), "shared", "peers", "run_glue.py")


def write_csv(path: str, rows: list[dict]) -> str:
    with open(path, "w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def peer_csvs(task: str, data_dir: str, folder: str) -> tuple[str, str]:
    """train.csv and dev.csv in `folder` for the real run_glue.py (it reads csv/json only) from the GLUE task's
    original TSV folder: the task's text column(s) as sentence / sentence1, sentence2 and the label id. Made before and
    outside any timed run."""
    spec = GLUE_TASKS[task]
    data = load_glue_dir(task, data_dir)
    columns = [spec.text_column] + ([spec.text_pair_column] if spec.text_pair_column else [])
    names = ["sentence"] if len(columns) == 1 else ["sentence1", "sentence2"]
    paths = []
    for split, name in (("train", "train.csv"), (spec.eval_splits[0], "dev.csv")):
        path = os.path.join(folder, name)
        with open(path + ".tmp", "w", encoding="utf-8", newline="") as f:
            writer = csv.writer(f)
            writer.writerow([*names, "label"])
            for row in data[split]:
                writer.writerow([*(row[c] for c in columns), row["label"]])
        os.replace(path + ".tmp", path)
        paths.append(path)
    return paths[0], paths[1]


def run_logged(argv: list[str], log: str) -> float:
    """`python *argv`, its output appended to `log` after the command; its wall seconds. A failed run stops the
    benchmark (SystemExit naming the log): a record never holds a run that did not finish."""
    started = time.monotonic()
    with open(log, "a", encoding="utf-8") as f:
        f.write(f"\n$ {' '.join(argv)}\n")
        f.flush()
        done = subprocess.run([sys.executable, *argv], stdout=f, stderr=f)
    if done.returncode != 0:
        raise SystemExit(f"run failed ({done.returncode}); see {log}")
    return time.monotonic() - started


def command_line(script: str, argv: list[str]) -> str:
    """The command as run from the repository root, paths relative to it (a record names no path of one machine)."""
    shown = [os.path.relpath(a, ROOT) if os.path.isabs(a) and os.path.exists(a) else a for a in argv]
    return f"python benchmarks/{script} " + " ".join(shown)
