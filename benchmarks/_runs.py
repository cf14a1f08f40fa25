"""What the benchmarks share: CSV files for a run (and the real run_glue.py's copies of a GLUE task), one run as a
logged subprocess, the command line as a record shows it (the accuracy benchmarks: label_noise.py,
learning_curve.py, sampler_order.py), a run measured by its own peak memory (speed.py, scale.py, inference.py), and
the CPU's flags that every timing is recorded with."""

import csv
import os
import shutil
import subprocess
import sys
import time

from textcls.data.glue import GLUE_TASKS, load_glue_dir
from textcls.hardware import timing_flags as cpu_flags  # noqa: F401  (the benchmarks import it from here)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The real run_glue.py (HF's script patched only to run offline), beside the repository: the reference peer.
PEER = os.path.join(os.path.dirname(ROOT), "shared", "peers", "run_glue.py")


# A child's peak RSS from wait4 (ru_maxrss) is at least its parent's peak: at exec Linux keeps the high-water mark of
# the address space the child had until then, the parent's (a copy after fork; the very same under vfork, which
# subprocess uses). Measured: `python -c pass` started by a parent that had held 800 MB reported 810 MB, after the
# parent had freed them. So a run whose memory a benchmark records starts through this launcher, a fresh interpreter
# of ~10 MB: it forks the command, waits for it and writes the command's own ru_maxrss (KiB; bytes on macOS) to the
# file descriptor it is given; its exit status is the command's (128 + the signal that ended it).
_OWN_RSS_LAUNCHER = """import os, sys
fd, command = int(sys.argv[1]), sys.argv[2:]
pid = os.fork()
if pid == 0:
    os.close(fd)
    try:
        os.execvp(command[0], command)
    finally:
        os._exit(127)
_, status, usage = os.wait4(pid, 0)
os.write(fd, str(usage.ru_maxrss).encode())
code = os.waitstatus_to_exitcode(status)
sys.exit(code if code >= 0 else 128 - code)
"""


class OwnPeakRss:
    """`command` started as subprocess.Popen(command, **popen_kwargs) would start it (its .proc, whose stdout a caller
    may read), except that .wait() returns its exit code and its own peak RSS in bytes, not its parent's."""

    def __init__(self, command: list[str], **popen_kwargs):
        read, write = os.pipe()
        try:
            launcher = [sys.executable, "-c", _OWN_RSS_LAUNCHER, str(write), *command]
            self.proc = subprocess.Popen(launcher, pass_fds=(write,), **popen_kwargs)
        except BaseException:
            os.close(read)
            raise
        finally:
            os.close(write)
        self._read = read

    def wait(self) -> tuple[int, int]:
        code = self.proc.wait()
        with os.fdopen(self._read) as f:
            written = f.read()
        return code, int(written or 0) * (1 if sys.platform == "darwin" else 1024)


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


# What a finished run of an accuracy benchmark no longer needs once its values are in the record: the model's weights
# and Trainer's checkpoints (weights + optimizer state). Measured: 87 MB (weights) to 350 MB (with the last
# checkpoint) per run of all-MiniLM-L6-v2; the learning curve's few hundred runs had filled 41 GB of a shared disk,
# and a CI run on it then failed for want of space. Its reports, results and logs stay (a few hundred KB).
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".onnx", ".joblib")


def prune_run(out: str) -> int:
    """Remove a finished run's checkpoint folders (checkpoint-N; the setfit library's checkpoints/) and weight files
    from `out`, everything else kept; the bytes freed."""
    freed = 0
    for root, folders, files in os.walk(out, topdown=True):
        for name in [f for f in folders if f.startswith("checkpoint")]:
            path = os.path.join(root, name)
            freed += sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(path) for f in fs)
            shutil.rmtree(path)
            folders.remove(name)
        for name in files:
            if name.endswith(WEIGHT_SUFFIXES):
                path = os.path.join(root, name)
                freed += os.path.getsize(path)
                os.remove(path)
    return freed


def command_line(script: str, argv: list[str]) -> str:
    """The command as run from the repository root, paths relative to it (a record names no path of one machine)."""
    shown = [os.path.relpath(a, ROOT) if os.path.isabs(a) and os.path.exists(a) else a for a in argv]
    return f"python benchmarks/{script} " + " ".join(shown)
