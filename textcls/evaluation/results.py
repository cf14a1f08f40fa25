"""Measured results: one JSON file per recipe, results/<benchmark>/<task>/<recipe>.json, one run per seed.

The file mirrors the recipe's path under recipes/ and holds (schema_version 1):

    {
      "schema_version": 1,
      "recipe": "recipes/glue/rte/bert-base-cased.json",
      "config_sha256": "...",          # the configuration the runs below share (see config_sha256())
      "seeds": [1, 2, 3],
      "summary": {"eval_accuracy": {"median": 0.66, "std": 0.012, "n": 3, "values": [...]}, ...},
      "runs": [                        # sorted by seed; a rerun of a seed replaces it
        {"seed": 1, "metrics": {"eval_accuracy": 0.66, "eval_loss": 0.7, "train_loss": 0.6},
         "command": "python run_classification.py recipes/glue/rte/bert-base-cased.json --seed 1 ...",
         "recipe_sha256": "...", "config_sha256": "...", "task": "rte", "model": "google-bert/bert-base-cased",
         "date": "2025-01-31T12:00:00+00:00", "git_sha": "...", "git_dirty": false,
         "wall_time_s": 812.5, "peak_memory": {"cpu_rss_bytes": ..., "gpu_allocated_bytes": ...},
         "trainable_params": ..., "total_params": ..., "timing": {"train_runtime": ..., ...},
         "samples": {"train_samples": ..., "eval_samples": ...},
         "environment": {"python": ..., "packages": {"torch": ..., ...}, "platform": ..., "cpu": ..., "cpu_count": ...,
                         "gpus": [...], "world_size": 1},
         "output_dir": "...", "log_history": [...trainer_state.json's: loss per logging step, eval per epoch...]}
      ],
      "superseded_runs": [...]         # runs of an earlier configuration: kept, never summarised
    }

Metrics are stored as Trainer reports them (fractions, eval_ prefix); tables multiply by 100. The median and the
sample standard deviation (n - 1) are the LoRA paper's convention: "median over 5 random seeds".
"""

import contextlib
import datetime
import fcntl
import hashlib
import json
import os
import platform
import resource
import shlex
import statistics
import subprocess
import sys
from importlib import metadata

from textcls.errors import UserError
from textcls.hardware import timing_flags
from textcls.io import write_json_atomic

SCHEMA_VERSION = 1
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGES = ("torch", "transformers", "peft", "accelerate", "datasets", "numpy", "scikit-learn")

# Flags that say where a run goes, which seed it uses or how fast it evaluates, not what it computes: runs that differ
# only in these are repeats of one configuration and are summarised together. data_dir is here because a local GLUE
# copy and the hub hold the same data.
RUN_KEYS = frozenset(
    {
        "seed",
        "data_seed",
        "output_dir",
        "overwrite_output_dir",
        "results_file",
        "logging_dir",
        "run_name",
        "data_dir",
        "cache_dir",
        "report_to",
        "disable_tqdm",
        "per_device_eval_batch_size",
        "dataloader_num_workers",
    }
)
_TIMING_SUFFIXES = ("_runtime", "_samples_per_second", "_steps_per_second")
_PARAM_KEYS = ("trainable_params", "total_params")


def results_path(recipe_path: str) -> str:
    """recipes/glue/rte/x.json -> results/glue/rte/x.json beside the same recipes/ folder (absolute path)."""
    parts = os.path.abspath(recipe_path).split(os.sep)
    if "recipes" not in parts[:-1]:
        raise UserError(
            f"{recipe_path} is not inside a recipes/ folder, so it has no results/ mirror. Pass --results_file "
            "PATH explicitly."
        )
    i = len(parts) - 1 - parts[::-1].index("recipes")
    return os.sep.join([*parts[:i], "results", *parts[i + 1 :]])


def _sha256_file(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def config_sha256(resolved: dict) -> str:
    """Hash of a run's resolved flags (output_dir/recipe.json) without RUN_KEYS: equal for repeats of one config."""
    kept = {k: v for k, v in resolved.items() if k not in RUN_KEYS}
    return hashlib.sha256(json.dumps(kept, sort_keys=True, default=str).encode()).hexdigest()


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def git_state() -> dict:
    """Commit of the code that ran, and whether tracked code differed from it (results/ itself excluded)."""
    sha = _git("rev-parse", "HEAD")
    status = _git("status", "--porcelain", "--untracked-files=no", "--", ".", ":(exclude)results") if sha else None
    return {"git_sha": sha, "git_dirty": bool(status) if status is not None else None}


def _cpu_name() -> str:
    with contextlib.suppress(OSError), open("/proc/cpuinfo", encoding="utf-8") as f:
        for line in f:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def environment() -> dict:
    packages = {}
    for name in PACKAGES:
        try:
            packages[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            packages[name] = None
    gpus = []
    torch = sys.modules.get("torch")  # a training process has it loaded; nothing else needs the import cost
    if torch is not None and torch.cuda.is_available():
        gpus = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    return {
        "python": platform.python_version(),
        "packages": packages,
        "platform": platform.platform(),
        "cpu": _cpu_name(),
        "cpu_count": os.cpu_count(),
        "cpu_flags": timing_flags(),  # CPU timings, and what --bf16 costs, depend on them
        "gpus": gpus,
        "world_size": int(os.environ.get("WORLD_SIZE", "1")),
        # wall times depend on it: two runs sharing a 2-core machine use one thread each
        "torch_threads": torch.get_num_threads() if torch is not None else None,
    }


def peak_memory() -> dict:
    """This process's peak resident memory and, on CUDA, its peak allocated GPU memory, in bytes."""
    torch = sys.modules.get("torch")
    gpu = torch.cuda.max_memory_allocated() if torch is not None and torch.cuda.is_available() else None
    return {"cpu_rss_bytes": own_peak_rss(), "gpu_allocated_bytes": gpu}


def own_peak_rss() -> int:
    """This process's own peak resident memory in bytes: Linux's VmHWM, the high-water mark of the address space it
    has had since it started. Not getrusage's ru_maxrss there, which also keeps the high-water mark of the address
    space it had before exec, its parent's: measured, a run holding 111 MB, started by a parent that held 800 MB,
    reported 810 MB (a launcher, a benchmark or a test process would lend a run its own peak). ru_maxrss elsewhere
    (macOS: in bytes)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024  # kB
    except OSError:
        pass
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss if sys.platform == "darwin" else rss * 1024


def split_metrics(all_results: dict) -> tuple[dict, dict, dict]:
    """all_results.json -> (quality metrics, timing, sample counts). Quality: eval_* scores and losses, train_loss."""
    metrics, timing, samples = {}, {}, {}
    for key, value in all_results.items():
        if not isinstance(value, int | float) or isinstance(value, bool):
            continue
        if key.endswith(_TIMING_SUFFIXES):
            timing[key] = value
        elif key.endswith("_samples"):
            samples[key] = value
        elif key.startswith("eval_") or key == "train_loss":
            metrics[key] = value
    return metrics, timing, samples


def summarize(runs: list[dict]) -> dict:
    """Per metric: median, sample std (None for one run), n and the values in seed order."""
    summary = {}
    for key in sorted({k for run in runs for k in run["metrics"]}):
        values = [run["metrics"][key] for run in runs if key in run["metrics"]]
        summary[key] = {
            "median": statistics.median(values),
            "std": statistics.stdev(values) if len(values) > 1 else None,
            "n": len(values),
            "values": values,
        }
    return summary


def _relative(path: str) -> str:
    absolute = os.path.abspath(path)
    inside = absolute.startswith(REPO_ROOT + os.sep)
    return os.path.relpath(absolute, REPO_ROOT) if inside else path


def load_results(path: str) -> dict | None:
    if not os.path.isfile(path):
        return None
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except json.JSONDecodeError as e:
        raise UserError(f"results file {path} is not valid JSON ({e.msg}, line {e.lineno}); fix or move it.") from None
    if not isinstance(data, dict) or data.get("schema_version") != SCHEMA_VERSION:
        raise UserError(
            f"{path} is not a results file of schema version {SCHEMA_VERSION}; move it away or pick another "
            "--results_file."
        )
    return data


@contextlib.contextmanager
def _locked(folder: str):
    """Serialise read-modify-write of a results file between runs of other seeds finishing at the same time.
    The folder itself is locked, so no lock file is left among the results."""
    os.makedirs(folder, exist_ok=True)
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def record_run(
    path: str,
    seed: int,
    metrics: dict,
    command: str,
    recipe_path: str | None,
    extra: dict | None = None,
    code_version: dict | None = None,
) -> dict:
    """Add this seed's run to the results file at `path` (replacing an earlier run of the same seed), recompute the
    summary and write the file atomically. Returns the new content.

    `extra` adds or overrides run fields (wall_time_s, peak_memory, log_history, config_sha256, environment...);
    `code_version` is git_state() of the code that ran, when taken earlier (default: the repository now).
    Runs whose configuration (config_sha256, else recipe_sha256) differs from this one's move to superseded_runs.
    """
    run = {
        "seed": seed,
        "metrics": dict(metrics),
        "command": command,
        "recipe_sha256": _sha256_file(recipe_path) if recipe_path else None,
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        **(code_version or git_state()),  # taken when the run started, when the caller has it
        "environment": environment(),
        **(extra or {}),
    }

    def key(r):
        return r.get("config_sha256") or r.get("recipe_sha256")

    with _locked(os.path.dirname(os.path.abspath(path))):
        data = load_results(path) or {"schema_version": SCHEMA_VERSION, "runs": [], "superseded_runs": []}
        superseded = [r for r in data["runs"] if key(r) != key(run)]
        runs = [r for r in data["runs"] if key(r) == key(run) and r["seed"] != seed] + [run]
        runs.sort(key=lambda r: r["seed"])
        content = {
            "schema_version": SCHEMA_VERSION,
            "recipe": _relative(recipe_path) if recipe_path else None,
            "config_sha256": key(run),
            "seeds": [r["seed"] for r in runs],
            "summary": summarize(runs),
            "runs": runs,
            "superseded_runs": data["superseded_runs"] + superseded,
        }
        write_json_atomic(path, content)
    return content


def _read_json(path: str, why: str):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        raise UserError(f"{path} is missing, {why}") from None


def record_from_output_dir(
    results_file: str,
    output_dir: str,
    argv: list[str],
    wall_time_s: float,
    recipe_name: str = "recipe.json",
    code_version: dict | None = None,
) -> dict:
    """Record the run that just wrote `output_dir` (run_classification.py's --results_file), from its main process.

    `argv` is the script's argument list (recipe first, if any); the seed and configuration come from the resolved
    flags in output_dir/recipe.json (recipe_eval.json for an evaluation run into a trained model's folder), metrics
    from all_results.json, curves from trainer_state.json when it trained.
    """
    resolved = _read_json(os.path.join(output_dir, recipe_name), "though every run writes it before training.")
    all_results = _read_json(os.path.join(output_dir, "all_results.json"), "though every finished run writes it.")
    state_file = os.path.join(output_dir, "trainer_state.json")
    log_history = []
    if resolved.get("do_train") and os.path.isfile(state_file):  # an earlier training run's, otherwise
        with open(state_file, encoding="utf-8") as f:
            log_history = json.load(f)["log_history"]
    recipe = argv[0] if argv and argv[0].endswith(".json") and not argv[0].startswith("-") else None
    metrics, timing, samples = split_metrics(all_results)
    extra = {
        "config_sha256": config_sha256(resolved),
        "task": resolved.get("task_name"),
        "model": resolved.get("model_name_or_path"),
        "wall_time_s": round(wall_time_s, 1),
        "peak_memory": peak_memory(),
        **{k: all_results.get(k) for k in _PARAM_KEYS},
        "mixed_precision": all_results.get("mixed_precision"),  # "no", "bf16", "fp16"; None: not recorded then
        "timing": timing,
        "samples": samples,
        "output_dir": output_dir,
        "log_history": log_history,
    }
    command = shlex.join(["python", "run_classification.py", *argv])
    return record_run(results_file, resolved["seed"], metrics, command, recipe, extra, code_version)
