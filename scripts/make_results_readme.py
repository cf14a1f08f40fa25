#!/usr/bin/env python
"""Write results/README.md (and results/plots/) from the result files under results/ and the published numbers.

    python scripts/make_results_readme.py
    python scripts/make_results_readme.py --published ../shared/reference/glue_published.json --results_dir results

Per benchmark and model: a table of our median +- std over seeds next to the published number for the same model
(source named, delta shown) or, where none exists, a reference model's number marked as a different model; the
hardware and date of the runs; PNG plots of every run's training curves and of ours vs published per task
(when matplotlib is installed). Everything under results/plots/ is rewritten on each call.
"""

import argparse
import glob
import hashlib
import json
import os
import shlex
import shutil
import statistics
import sys

from scipy.stats import combine_pvalues, mannwhitneyu

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from textcls.data.glue import GLUE_TASKS  # noqa: E402
from textcls.errors import UserError  # noqa: E402  (the repository root is put on the path just above)
from textcls.evaluation.results import load_results  # noqa: E402
from textcls.train.method import pick  # noqa: E402

DEFAULT_PUBLISHED = os.path.join(ROOT, "..", "shared", "reference", "glue_published.json")

# The short metric names of glue_published.json -> our result keys.
METRIC_KEYS = {
    "mcc": "eval_matthews_correlation",
    "acc": "eval_accuracy",
    "f1": "eval_f1",
    "pearson": "eval_pearson",
    "spearman": "eval_spearmanr",
    "acc_m": "eval_matched_accuracy",
    "acc_mm": "eval_mismatched_accuracy",
}
METRIC_LABELS = {
    "mcc": "MCC",
    "acc": "accuracy",
    "f1": "F1",
    "pearson": "Pearson",
    "spearman": "Spearman",
    "acc_m": "accuracy (matched)",
    "acc_mm": "accuracy (mismatched)",
}
# What the table shows per task, the GLUE leaderboard's metrics; the first is the one plotted.
GLUE_DISPLAY = {
    "cola": ("mcc",),
    "sst2": ("acc",),
    "mrpc": ("f1", "acc"),
    "stsb": ("pearson", "spearman"),
    "qqp": ("acc", "f1"),
    "mnli": ("acc_m", "acc_mm"),
    "qnli": ("acc",),
    "rte": ("acc",),
    "wnli": ("acc",),
}
# A source that gives one number per task without naming its metric is compared with our GLUE primary metric.
UNSTATED_METRIC = {"cola": "mcc", "mrpc": "f1", "stsb": "pearson", "qqp": "f1", "mnli": "acc_m"}

# Recipe name (results file stem) -> (source id, keys leading to its per-task numbers). Same model, same method.
SAME_MODEL = {
    "bert-base-cased": ("hf_run_glue_bert_base_cased", ("results",)),
    "bert-base-uncased": ("hf_examples_v2_bert_base_uncased_historical", ("results",)),
    "distilbert-base-uncased": ("distilbert_paper_table1_dev", ("results_distilbert",)),
    "roberta-base_lora": ("lora_paper_table2_roberta_base", ("results",)),
}
# No published numbers exist for these: the closest reference, shown as what it is, a different model.
OTHER_MODEL = {"all-MiniLM-L6-v2": ("minilm_card", ("results", "MiniLM-L6xH384"), "MiniLM-L6xH384")}
# Recipe name -> (the recipe measured beside it as its baseline, what that baseline is): shown as columns of the
# model's table, not as a model of its own.
BASELINE_OF = {"all-MiniLM-L6-v2": ("all-MiniLM-L6-v2_hf-readme", "run_glue.py's settings (HF README), same model")}
# Written by scripts/majority_baseline.py: the training set's majority class, predicted for every dev row.
MAJORITY_FILE = os.path.join("baselines", "glue-majority-class.json")
MODEL_ORDER = (
    "bert-base-uncased",
    "bert-base-cased",
    "distilbert-base-uncased",
    "roberta-base_lora",
    "all-MiniLM-L6-v2",
)


def load_published(path: str) -> dict:
    try:
        with open(path, encoding="utf-8") as f:
            return {source["id"]: source for source in json.load(f)["sources"]}
    except FileNotFoundError:
        raise UserError(f"no published numbers at {path}: pass --published PATH/glue_published.json.") from None


def _task_of(key: str) -> str | None:
    return "mnli" if key == "mnli_m" else key if key in GLUE_TASKS else None


def published_numbers(entry: dict) -> dict:
    """A source's per-task results -> {task: {short metric: (value, +-spread or None, metric stated)}}."""
    numbers = {}
    for key, value in entry.items():
        task = _task_of(key)
        if task is None:
            continue
        if isinstance(value, int | float):
            metric = "acc_m" if key == "mnli_m" else UNSTATED_METRIC.get(task, "acc")
            numbers[task] = {metric: (float(value), None, False)}
            continue
        found = {}
        for short, number in value.items():
            # A lone MNLI "acc" is the matched set's (the LoRA README gives it as matched/mismatched).
            short = "acc_m" if task == "mnli" and short == "acc" else short
            if short in METRIC_KEYS and isinstance(number, int | float):
                found[short] = (float(number), value.get("pm"), True)
        numbers[task] = found
    return numbers


def reference_for(name: str, sources: dict):
    """(source id, per-task numbers, other model's name or None) for a recipe name, or None."""
    if name in SAME_MODEL:
        source_id, keys = SAME_MODEL[name]
        other = None
    elif name in OTHER_MODEL:
        source_id, keys, other = OTHER_MODEL[name]
    else:
        return None
    entry = sources.get(source_id)
    if entry is None:
        return None
    for key in keys:
        entry = entry[key]
    return source_id, published_numbers(entry), other


def collect(results_dir: str) -> dict:
    """{benchmark: {name: {task: results file content}}} for every result file under results_dir."""
    found = {}
    for path in sorted(glob.glob(os.path.join(results_dir, "**", "*.json"), recursive=True)):
        rel = os.path.relpath(path, results_dir).split(os.sep)
        # speed records have their own section; baselines and searches are not runs of a recipe
        if rel[0] in (
            "plots",
            "speed",
            "baselines",
            "hp_search",
            "label-noise",
            "small-data",
            "sampler-order",
            "cpu-bf16",
            "calibration",
        ):
            continue
        data = load_results(path)
        if not data["runs"]:
            continue
        name = os.path.splitext(rel[-1])[0]
        benchmark = rel[0] if len(rel) > 1 else "other"  # a --results_file given at the top of results/
        task = rel[-2] if len(rel) >= 3 else (data["runs"][-1].get("task") or name)
        found.setdefault(benchmark, {}).setdefault(name, {})[task] = data
    return found


def _ordered(names):
    return sorted(names, key=lambda n: (MODEL_ORDER.index(n) if n in MODEL_ORDER else len(MODEL_ORDER), n))


def _task_order(task: str):
    tasks = list(GLUE_TASKS)
    return (tasks.index(task) if task in tasks else len(tasks), task)


def display_metrics(task: str, summary: dict) -> list[tuple[str, str, str]]:
    """(short name, result key, label) of the metrics shown for a task."""
    if task in GLUE_DISPLAY:
        return [(s, METRIC_KEYS[s], METRIC_LABELS[s]) for s in GLUE_DISPLAY[task] if METRIC_KEYS[s] in summary]
    keys = [k for k in summary if k.startswith("eval_") and not k.endswith("loss")]
    return [(k, k, k.removeprefix("eval_")) for k in keys]


def hardware(run: dict) -> str:
    env = run.get("environment") or {}
    gpus = env.get("gpus") or []
    if gpus:
        text = f"{len(gpus)}x {gpus[0]}" if len(set(gpus)) == 1 else ", ".join(gpus)
    else:
        text = f"{env.get('cpu', '?')} ({env.get('cpu_count', '?')} cores)"
        threads = env.get("torch_threads")
        if threads and threads < (env.get("cpu_count") or 0):
            text += f", {threads} thread{'s' if threads > 1 else ''} per run"
    processes = env.get("world_size", 1)
    return text + (f", {processes} processes" if processes > 1 else "")


def _fmt(value: float) -> str:
    return f"{value:.2f}"


def _ours(s: dict) -> str:
    std = f" ± {100 * s['std']:.2f}" if s["std"] is not None else ""
    return f"{100 * s['median']:.2f}{std} (n={s['n']})"


def training_subset(runs: list[dict]) -> str | None:
    """'first N training rows' when the runs trained on a subset (--max_train_samples), for the table to say so."""
    caps = set()
    for run in runs:
        words = shlex.split(run.get("command") or "")
        cap = next((words[i + 1] for i, w in enumerate(words[:-1]) if w == "--max_train_samples"), None)
        cap = cap or next((w.split("=", 1)[1] for w in words if w.startswith("--max_train_samples=")), None)
        caps.add(cap)
    if caps == {None}:
        return None
    return ", ".join(f"first {int(c):,} training rows" if c else "all training rows" for c in sorted(caps, key=str))


def curve_plot_path(plots_dir: str, benchmark: str, task: str, name: str, seed) -> str:
    return os.path.join(plots_dir, benchmark, task, name, f"seed-{seed}.png")


def recipe_model(task: str, name: str) -> str | None:
    """The model id of recipes/glue/<task>/<name>.json, or None when there is no such recipe."""
    path = os.path.join(ROOT, "recipes", "glue", task, f"{name}.json")
    if not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8") as f:
        return json.load(f).get("model_name_or_path")


def stale_recipe(benchmark: str, task: str, name: str, runs: list[dict]) -> bool:
    """True when recipes/<benchmark>/<task>/<name>.json exists and differs from the recipe file the runs used (so
    the row is not what the recipe gives today)."""
    path = os.path.join(ROOT, "recipes", benchmark, task, f"{name}.json")
    if not os.path.isfile(path):
        return False
    with open(path, "rb") as f:
        current = hashlib.sha256(f.read()).hexdigest()
    return any(r.get("recipe_sha256") not in (None, current) for r in runs)


def published_only_table(name: str, sources: dict) -> list[str]:
    """A published model we have a recipe for and no run of: every published number, the recipe command that
    targets it, and why it was not run here."""
    ref = reference_for(name, sources)
    if ref is None:
        return []
    source_id, numbers, _ = ref
    lines = [f"### {name}", "", f"Published: `{source_id}` (same model and method). Not run here yet.", ""]
    lines += ["| task | metric | published | recipe | ours |", "|---|---|---|---|---|"]
    for task in sorted(numbers, key=_task_order):
        model = recipe_model(task, name)
        command = f"`python run_classification.py recipes/glue/{task}/{name}.json`" if model else "(no recipe)"
        why = f"not run here: needs {model} from the hub and a GPU" if model else "—"
        label = GLUE_TASKS[task].dir_name if task in GLUE_TASKS else task
        for short in GLUE_DISPLAY.get(task, tuple(numbers[task])):
            if short not in numbers[task]:
                continue
            value, spread, stated = numbers[task][short]
            published = _fmt(value) + (f" ± {spread:g}" if spread is not None else "") + ("" if stated else " ‡")
            lines.append(f"| {label} | {METRIC_LABELS[short]} | {published} | {command} | {why} |")
    scores = [
        [numbers.get(task, {}).get(short) for short in GLUE_DISPLAY[task]] for task in GLUE_DISPLAY if task in numbers
    ]
    if len(scores) == len(GLUE_DISPLAY) and all(v is not None for task in scores for v in task):
        score = sum(sum(v[0] for v in task) / len(task) for task in scores) / len(scores)
        lines.append(f"| **GLUE score (9 tasks)** | each task's metrics averaged | **{score:.2f}** | | |")
    lines.append("")
    return lines


WNLI_NOTE = (
    "WNLI: its dev set is adversarial to its training set. Sentences of the training set come back in dev with "
    "another hypothesis and the opposite label, so the better a model fits the training pairs, the more of those dev "
    "pairs it gets wrong. The majority class scores 56.34; the HF README's bert-base-cased scores exactly that (it "
    "predicts the majority), its older bert-base-uncased 45.07, below it; BERT's paper leaves WNLI out of its "
    "average. A score of 56.34 here means the model predicts the majority class for every pair."
)


def load_majority(results_dir: str) -> dict:
    """{task: its majority-class record} from results/baselines/, or {} before scripts/majority_baseline.py ran."""
    path = os.path.join(results_dir, MAJORITY_FILE)
    if not os.path.isfile(path):
        return {}
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)["tasks"]
    except (OSError, ValueError, KeyError) as e:
        raise UserError(
            f"{path} is not a majority_baseline.py record ({e}): run scripts/majority_baseline.py again."
        ) from None


def task_score(task: str, summary: dict) -> float | None:
    """A task's GLUE score (x100): the mean of its leaderboard metrics (MRPC: F1 and accuracy), None if one lacks."""
    values = [summary.get(METRIC_KEYS[short]) for short in GLUE_DISPLAY[task]]
    if any(v is None for v in values):
        return None
    return 100 * sum(values) / len(values)


def average_row(tasks: dict, baseline: dict | None, numbers_of, columns: int) -> str | None:
    """The average over the table's GLUE tasks of each task's score, for ours, the baseline and the reference, where
    each has every task; named a GLUE score only when all nine tasks are in."""
    glue = [t for t in tasks if t in GLUE_DISPLAY]
    if not glue:
        return None
    ours = [task_score(t, {k: v["median"] for k, v in tasks[t]["summary"].items()}) for t in glue]
    if any(v is None for v in ours):
        return None
    label = "GLUE score (9 tasks)" if len(glue) == len(GLUE_DISPLAY) else f"average of these {len(glue)} tasks"
    cells = [f"**{label}**", "each task's metrics averaged", f"**{sum(ours) / len(ours):.2f}**"]
    if baseline is not None:
        theirs = [
            task_score(t, {k: v["median"] for k, v in baseline[t]["summary"].items()}) if t in baseline else None
            for t in glue
        ]
        if any(v is None for v in theirs):
            cells += ["—", "—"]
        else:
            mean = sum(theirs) / len(theirs)
            cells += [f"{mean:.2f}", f"{sum(ours) / len(ours) - mean:+.2f}"]
        cells.append("—")  # the majority class has no STS-B score, so no average
    published = [numbers_of(t) for t in glue]
    if all(p is not None for p in published):
        mean = sum(published) / len(published)
        cells += [f"{mean:.2f}", f"{sum(ours) / len(ours) - mean:+.2f}"]
    else:
        cells += ["—", "—"]
    cells += [""] * (columns - len(cells))
    return "| " + " | ".join(cells) + " |"


def model_table(benchmark: str, name: str, tasks: dict, sources: dict, plots, baseline=None, majority=None) -> list:
    """One model's rows: our median per task and metric; beside it the baseline measured with it (BASELINE_OF) and
    the majority class where given, and the published (or reference) number."""
    ref = reference_for(name, sources) if benchmark == "glue" else None
    majority = majority or {}
    lines = [f"### {name}", ""]
    if ref is not None:
        source_id, _, other = ref
        if other:
            lines.append(
                f"No published numbers exist for this model. For orientation only: `{source_id}`, {other}, "
                "**a different model**."
            )
        else:
            lines.append(f"Published: `{source_id}` (same model and method).")
        lines.append("")
    if baseline is not None:
        base_name, base_label = baseline[0], baseline[1]
        lines += [
            f"Beside ours, measured the same way on the same machine: {base_label} "
            f"(`recipes/glue/<task>/{base_name}.json`), and the majority class of each training set predicted for "
            "every dev row (`scripts/majority_baseline.py`).",
            "",
        ]
    published_col = "reference (different model)" if ref and ref[2] else "published"
    header = "| task | metric | ours: median ± std (n seeds) |"
    if baseline is not None:
        header += f" {base_label}: median ± std (n) | Δ ours − it | majority class |"
    header += f" {published_col} | Δ | hardware | date |"
    if plots:
        header += " curves |"
    columns = header.count("|") - 1
    lines += [header, "|" + "---|" * columns]
    for task in sorted(tasks, key=_task_order):
        data = tasks[task]
        last = max(data["runs"], key=lambda r: r["date"])  # the newest run: its day
        machines = "; ".join(dict.fromkeys(hardware(r) for r in data["runs"]))  # each setup the seeds ran on
        numbers = ref[1].get(task, {}) if ref else {}
        label = GLUE_TASKS[task].dir_name if task in GLUE_TASKS else task
        subset = training_subset(data["runs"])
        if subset:
            label += f" (subset: {subset})"
        if stale_recipe(benchmark, task, name, data["runs"]):
            label += " (runs of an earlier version of the recipe)"
        for row_number, (short, key, metric_label) in enumerate(display_metrics(task, data["summary"])):
            s = data["summary"][key]
            published, delta = "—", "—"
            if short in numbers:
                value, spread, stated = numbers[short]
                published = _fmt(value) + (f" ± {spread:g}" if spread is not None else "")
                published += "" if stated else " ‡"
                delta = f"{100 * s['median'] - value:+.2f}"
            row = f"| {label} | {metric_label} | {_ours(s)} |"
            if baseline is not None:
                other = baseline[2].get(task, {}).get("summary", {}).get(key)
                theirs, gap = (
                    ("—", "—") if other is None else (_ours(other), f"{100 * (s['median'] - other['median']):+.2f}")
                )
                prior = majority.get(task, {}).get("metrics", {}).get(key)
                row += f" {theirs} | {gap} | {'—' if prior is None else _fmt(100 * prior)} |"
            row += f" {published} | {delta} | {machines} | {last['date'][:10]} |"
            if plots:
                links = " ".join(
                    f"[{r['seed']}](plots/{benchmark}/{task}/{name}/seed-{r['seed']}.png)"
                    for r in data["runs"]
                    if r.get("log_history") and row_number == 0  # once per task, not per metric
                )
                row += f" {links} |"
            lines.append(row)
    if benchmark == "glue":

        def published_score(task):
            found = ref[1].get(task, {}) if ref else {}
            values = [found.get(short) for short in GLUE_DISPLAY[task]]
            return None if any(v is None for v in values) else sum(v[0] for v in values) / len(values)

        stale = [t for t in tasks if stale_recipe(benchmark, t, name, tasks[t]["runs"])]
        row = None if stale else average_row(tasks, baseline[2] if baseline else None, published_score, columns)
        if row:
            lines.append(row)
        elif stale:  # an average over runs of different recipe versions would describe no recipe
            names = ", ".join(GLUE_TASKS[t].dir_name if t in GLUE_TASKS else t for t in sorted(stale, key=_task_order))
            lines += ["", f"No average yet: the runs of {names} are of an earlier version of the recipe."]
    if benchmark == "glue" and "wnli" in tasks:
        lines += ["", WNLI_NOTE]
    lines.append("")
    return lines


def plot_curves(run: dict, keys: list[str], path: str, title: str, plt) -> None:
    """Training loss per logging step beside the dev metrics (`keys`) per evaluation."""
    history = run["log_history"]
    steps = [(h["step"], h["loss"]) for h in history if "loss" in h and "step" in h]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.5))
    if steps:
        left.plot(*zip(*steps, strict=True), linewidth=1)
    left.set(xlabel="step", ylabel="training loss", title="loss")
    for key in keys:
        points = [(h["epoch"], 100 * h[key]) for h in history if key in h and "epoch" in h]
        if points:
            right.plot(*zip(*points, strict=True), marker="o", label=key.removeprefix("eval_"))
    right.set(xlabel="epoch", ylabel="dev metric (x100)", title="evaluation")
    if right.get_legend_handles_labels()[0]:
        right.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fig.savefig(path, dpi=80, metadata={"Software": None})
    plt.close(fig)


def plot_vs_published(models: dict, sources: dict, path: str, plt, majority: dict | None = None) -> None:
    """One panel per task, its first display metric: our median (error bar: std) beside the published number; the
    majority class's score as a dashed line."""
    tasks = sorted({t for tasks in models.values() for t in tasks if t in GLUE_DISPLAY}, key=_task_order)
    if not tasks:
        return
    fig, axes = plt.subplots(1, len(tasks), figsize=(3.2 * len(tasks), 3.8), squeeze=False)
    for ax, task in zip(axes[0], tasks, strict=True):
        short = GLUE_DISPLAY[task][0]
        key = METRIC_KEYS[short]
        names = [n for n in _ordered(models) if task in models[n] and key in models[n][task]["summary"]]
        for i, name in enumerate(names):
            s = models[name][task]["summary"][key]
            color = "tab:orange" if name in {b for b, _ in BASELINE_OF.values()} else "tab:blue"
            ax.bar(i - 0.2, 100 * s["median"], 0.4, yerr=100 * (s["std"] or 0), color=color, capsize=3)
            ref = reference_for(name, sources)
            if ref and short in ref[1].get(task, {}):
                ax.bar(i + 0.2, ref[1][task][short][0], 0.4, color="lightgrey", hatch="//" if ref[2] else None)
        prior = (majority or {}).get(task, {}).get("metrics", {}).get(key)
        if prior is not None:
            ax.axhline(100 * prior, color="tab:red", linestyle="--", linewidth=1)
        ax.set_xticks(range(len(names)), names, rotation=60, ha="right", fontsize=7)
        ax.set_title(f"{GLUE_TASKS[task].dir_name} ({METRIC_LABELS[short]})", fontsize=9)
    axes[0][0].set_ylabel("dev metric (x100)")
    fig.suptitle(
        "blue: ours (median, bar: std)   orange: a baseline measured beside ours   grey: published   hatched: a "
        "different model   red dashes: majority class",
        fontsize=9,
    )
    fig.tight_layout()
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fig.savefig(path, dpi=80, metadata={"Software": None})
    plt.close(fig)


SPEED_COLUMNS = (
    ("train samples/s", lambda m: f"{m['train_samples_per_second']:.1f}"),
    ("real tokens/s", lambda m: f"{m['real_tokens_per_second']:.0f}"),
    ("train s", lambda m: f"{m['train_s']:.1f}"),
    ("eval s", lambda m: f"{m['eval_s']:.1f}"),
    ("start-up, load, tokenize, save s", lambda m: f"{m['other_s']:.1f}"),
    ("end-to-end s", lambda m: f"{m['wall_s']:.1f}"),
    ("peak RSS MiB", lambda m: f"{m['peak_rss_bytes'] / 2**20:.0f}"),
    ("dev accuracy", lambda m: f"{100 * m['eval_accuracy']:.2f}"),
)


def plot_speed(record: dict, path: str, plt) -> None:
    """Train samples/s and end-to-end wall per mode; with scaling runs, train time vs rows and vs padded length."""
    medians = record["medians"]
    scaling = record.get("scaling") or {}
    sweep = record.get("sweep") or []
    panels = 2 + bool(scaling.get("rows")) + bool(scaling.get("max_seq_length")) + bool(sweep)
    fig, axes = plt.subplots(1, panels, figsize=(3.6 * panels, 3.4))
    modes = list(medians)
    axes[0].bar(modes, [medians[m]["train_samples_per_second"] for m in modes], color="tab:blue")
    axes[0].set_title("train samples/s (higher is better)", fontsize=9)
    axes[1].bar(modes, [medians[m]["wall_s"] for m in modes], color="tab:orange")
    axes[1].set_title("end-to-end wall s (lower is better)", fontsize=9)
    for ax in axes[:2]:
        ax.tick_params(axis="x", labelrotation=30, labelsize=8)
    i = 2
    for key, x_key, label in (("rows", "train_rows", "rows"), ("max_seq_length", "max_seq_length", "padded length")):
        points = scaling.get(key)
        if points:
            axes[i].plot([p[x_key] for p in points], [p["train_s"] for p in points], marker="o")
            axes[i].set_xlabel(label, fontsize=8)
            axes[i].set_title(f"train s vs {label}", fontsize=9)
            axes[i].set_ylim(bottom=0)
            i += 1
    if sweep:
        labels = [f"{p['batch_size']}{' ' + p['flags'] if p['flags'] else ''}" for p in sweep]
        axes[i].bar(labels, [p["train_samples_per_second"] for p in sweep], color="tab:green")
        axes[i].set_xlabel("batch size (ours)", fontsize=8)
        axes[i].set_title("train samples/s vs batch", fontsize=9)
    fig.suptitle(f"{record['model']}, {record['data']}", fontsize=9)
    fig.tight_layout()
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fig.savefig(path, dpi=80, metadata={"Software": None})
    plt.close(fig)


def packing_table(name: str, record: dict) -> list[str]:
    """A results/speed/packing-*.json written by benchmarks/packing.py: padded vs padding-free ms per step."""
    env = record.get("environment") or {}
    packages = env.get("packages") or {}
    lines = [
        f"### {name}",
        "",
        "Padded vs padding-free batches, one training step at a time (random init, sizes "
        f"{json.dumps(record['sizes'])}); "
        f"{record['data']}; settings {json.dumps(record['settings'])}; medians. {hardware({'environment': env})}, "
        f"torch {packages.get('torch')}, transformers {packages.get('transformers')}, {record['date']}, commit "
        f"{(record.get('git_sha') or '?')[:8]}{' (uncommitted changes)' if record.get('git_dirty') else ''}"
        + (
            f"; CPU flags {', '.join(record['cpu_flags']) or 'none of AVX2/AVX-512/AMX'}."
            if "cpu_flags" in record
            else "."
        ),
        "",
        f"`{record['command']}`",
        "",
    ]
    # one_layout (records from 2026-12-06 on): padding-free with attention on one padded layout, before the buckets
    titles = {
        "padded": "padded",
        "padding_free": "padding-free",
        "one_layout": "padding-free, one attention layout",
        # the levers tried on the padding-free step (benchmarks/packing.py's docstring says what each is)
        "fast_dropout": "padding-free, faster dropout masks",
        "no_dropout": "padding-free, no dropout (bound)",
        "padded_compiled": "padded, torch.compile",
        "padding_free_compiled": "padding-free, torch.compile",
    }
    modes = [m for m in titles if m in record["results"][0]["median_ms_per_step"]]
    ratios = [k for k in ("speedup", "buckets_speedup") if k in record["results"][0]]
    ratio_titles = {"speedup": "padded / padding-free", "buckets_speedup": "one layout / buckets"}
    lines += [
        "| architecture | batches | padding | "
        + " | ".join(f"{titles[m]} ms/step" for m in modes)
        + "".join(f" | {ratio_titles[k]}" for k in ratios)
        + " |",
        "|---|---|---" + "|---" * (len(modes) + len(ratios)) + "|",
    ]
    for r in record["results"]:
        m = r["median_ms_per_step"]
        warmup = {mode: statistics.median(w) for mode, w in r.get("warmup_s", {}).items()}
        cells = [
            f"{m[mode]:.1f}" + (f" ({warmup[mode]:.0f} s to compile)" if mode.endswith("_compiled") else "")
            for mode in modes
        ] + [f"{r[k]:.2f}x" for k in ratios]
        lines.append(f"| {r['architecture']} | {r['order']} | {100 * r['padding']:.1f}% | " + " | ".join(cells) + " |")
    if record.get("notes"):
        lines += [""] + [f"- {note}" for note in record["notes"]]
    return lines + [""]


def _rss_note(record: dict, peaks) -> str:
    """How a benchmark record's peak RSS (peaks: its runs' figures, bytes) was measured. Its runs' own since records
    say so (peak_rss: benchmarks/_runs.py's launcher); before that, a run's wait4 figure was at least the benchmark
    script's own peak (~0.5 GB), so the note says whether every run of the record peaked above it (then each figure
    is the run's own)."""
    if record.get("peak_rss") == "own":
        return "Peak RSS is each run's own (wait4 through benchmarks/_runs.py's launcher)."
    if record.get("benchmark") == "speed-gpu":  # its script had initialised CUDA first: its own peak is unknown
        return "Peak RSS from wait4, which also counted gpu.py's own peak then (CUDA initialised): an upper bound."
    smallest = min(peaks) / 1e9
    if smallest > 0.6:
        return (f"Peak RSS from wait4, which also counted this script's own ~0.5 GB then: every run here peaked "
                f"higher ({smallest:.2f} GB or more), so each figure is the run's own.")  # fmt: skip
    return "Peak RSS from wait4, which also counted this script's own ~0.5 GB then: a run below it shows the script's."


def scale_table(name: str, record: dict) -> list[str]:
    """A results/speed/scale-*.json written by benchmarks/scale.py: ours vs run_glue.py's pipeline on large CSVs."""
    env = record.get("environment") or {}
    packages = env.get("packages") or {}
    flags = record.get("cpu_flags")
    flags = "" if flags is None else f" (CPU flags {', '.join(flags) or 'none of AVX2/AVX-512/AMX'})"
    lines = [
        f"### {name}",
        "",
        f"Training {record['settings']['max_steps']} steps of batch {record['settings']['batch_size']} on N-row CSVs "
        "(scripts/make_scale_data.py: 8 SST-2 sentences a row, about 100 tokens), each run a fresh process, one "
        f"at a time; cold: an empty datasets cache, warm: the same command again. "
        f"{_rss_note(record, [r['peak_rss_bytes'] for runs in record['runs'].values() for r in runs.values()])} "
        f"{record['settings']['model']}. {hardware({'environment': env})}"
        + flags
        + f", torch {packages.get('torch')}, "
        f"transformers {packages.get('transformers')}, datasets {packages.get('datasets')}, {record['date']}, commit "
        f"{(record.get('git_sha') or '?')[:8]}{' (uncommitted changes)' if record.get('git_dirty') else ''}.",
        "",
        f"`{record['command']}`",
        "",
        "| rows | run | peak RSS GB | s to first step | train samples/s | predict rows/s | wall s |",
        "|---|---|---|---|---|---|---|",
    ]
    for rows, runs in record["runs"].items():
        for mode, r in runs.items():
            first = f"{r['first_step_s']:.1f}" if r.get("first_step_s") is not None else "-"
            train = f"{r['train_samples_per_second']:.1f}" if r.get("train_samples_per_second") else "-"
            predict = f"{r['predict_samples_per_second']:.0f}" if r.get("predict_samples_per_second") else "-"
            lines.append(
                f"| {int(rows):,} | {mode} | {r['peak_rss_bytes'] / 1e9:.2f} | {first} | {train} | {predict} | "
                f"{r['wall_s']:.0f} |"
            )
    if record.get("targets"):
        lines += ["", "| target | value | bound | met |", "|---|---|---|---|"]
        for target, c in record["targets"].items():
            lines.append(f"| {target} | {c['value']:.2f} | {c['target']} | {'yes' if c['met'] else '**no**'} |")
    if record.get("notes"):
        lines += [""] + [f"- {note}" for note in record["notes"]]
    return lines + [""]


def inference_table(name: str, record: dict) -> list[str]:
    """A results/speed/inference-*.json written by benchmarks/inference.py: PyTorch vs ONNX fp32 vs ONNX int8
    prediction, each a fresh process, and issue 37's targets met or missed."""
    env = record.get("environment") or {}
    packages = env.get("packages") or {}
    vnni = "AVX-512 VNNI" if "avx512_vnni" in (record.get("cpu_flags") or []) else "no AVX-512 VNNI"
    lines = [
        f"### {name}",
        "",
        f"{record['model']}; {record['rows']:,} rows predicted; {hardware({'environment': env})} ({vnni}), "
        f"torch {packages.get('torch')}, "
        + (f"onnxruntime {packages['onnxruntime']}, " if packages.get("onnxruntime") else "")
        + f"{record['date']}, "
        f"commit {(record.get('git_sha') or '?')[:8]}{' (uncommitted changes)' if record.get('git_dirty') else ''}.",
        "",
        f"`{record['command']}`",
        "",
        "| mode | predict rows/s | dev rows/s | dev accuracy | peak RSS GB | wall s |",
        "|---|---|---|---|---|---|",
    ]
    for mode, r in record["runs"].items():
        lines.append(
            f"| {mode} | {r['predict_rows_per_second']:.1f} | {r['eval_rows_per_second']:.0f} | "
            f"{100 * r['dev_accuracy']:.2f} | {r['peak_rss_bytes'] / 1e9:.2f} | {r['wall_s']:.0f} |"
        )
    lines += ["", _rss_note(record, [r["peak_rss_bytes"] for r in record["runs"].values()])]
    sizes = ", ".join(f"{k} {v / 1e6:.1f} MB" for k, v in (record.get("file_bytes") or {}).items())
    if sizes:
        lines += ["", f"Files: {sizes}."]
    lines += ["", "| target | measured | bound | met |", "|---|---|---|---|"]
    for target, bound in record["targets"].items():
        direction = ">=" if target == "int8_speedup" else "<="
        met = "yes" if record["met"][target] else "**no**"
        lines.append(f"| {target} | {record['measured'][target]:.3g} | {direction} {bound:.3g} | {met} |")
    if record.get("notes"):
        lines += [""] + [f"- {note}" for note in record["notes"]]
    return lines + [""]


def label_noise_section(results_dir: str) -> list[str]:
    """results/label-noise/*.json written by benchmarks/label_noise.py: labels flipped at known rows, what
    --find_label_issues flagged, and the dev metric trained on noisy, noisy-without-flagged and clean labels."""
    paths = sorted(glob.glob(os.path.join(results_dir, "label-noise", "*-noise*.json")))
    if not paths:
        return []
    records = []
    for path in paths:
        with open(path, encoding="utf-8") as f:
            records.append(json.load(f))
    first = records[0]
    env = first.get("environment") or {}
    lines = [
        "## Label issues on corrupted labels",
        "",
        f"{first['model']}; {first['train_rows']:,} training rows drawn from each task's train.tsv, a share of their "
        f"labels flipped at known rows (seeded; the rows are in the record), {first['folds']}-fold "
        "`--cross_validate --find_label_issues --cross_validate_refit`, then a run with `--exclude_rows` of every "
        f"flagged row; each task's whole dev set. {hardware({'environment': env})}, {first['date']}, commit "
        f"{(first.get('git_sha') or '?')[:8]}. Accuracy records: wall times measured beside other work.",
        "",
        f"`{first['command']}`",
        "",
        "| task | flipped | flagged | precision | recall | precision in top k | cv metric (noisy) | dev: noisy | "
        "dev: without flagged | dev: clean |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in records:
        metric = r["metric"]
        cv = r["cv"].get(f"predict_cv_heldout_{metric}") or {}
        spread = f"{100 * cv['mean']:.2f} ± {100 * (cv.get('std') or 0):.2f}" if cv else "-"
        dev = r["dev"]
        lines.append(
            f"| {r['task']} ({metric}) | {100 * r['noise']:.0f}% ({len(r['flipped_rows'])}) | {r['flagged']} | "
            f"{100 * r['precision']:.1f}% | {100 * r['recall']:.1f}% | {100 * r['precision_top_k']:.1f}% | {spread} | "
            f"{100 * dev['noisy']:.2f} | {100 * dev['noisy_without_flagged']:.2f} | {100 * dev['clean']:.2f} |"
        )
    return lines + [""] + cv_spread_lines(results_dir)


def _sd(values: list[float]) -> float:
    mean = sum(values) / len(values)
    return (sum((v - mean) ** 2 for v in values) / (len(values) - 1)) ** 0.5 if len(values) > 1 else float("nan")


def cv_spread_lines(results_dir: str) -> list[str]:
    """results/label-noise/<task>-cv-spread.json (benchmarks/label_noise.py --cv_seeds): how far one held-out split's
    score and a cross-validated score move over folds and seeds, beside how far the models themselves differ."""
    paths = sorted(glob.glob(os.path.join(results_dir, "label-noise", "*-cv-spread.json")))
    if not paths:
        return []
    lines = [
        "### Is a cross-validated score steadier than one split's?",
        "",
        "The clean training rows, `--cross_validate` once per seed (the seed shuffles the folds and seeds training).",
        "A fold's held-out score is what one random held-out split would have told a user; the cross-validated score",
        "is the mean over a seed's folds. The same fold models scored on the task's whole dev set show how much of a",
        "split's spread is the models' own and how much the split's sampling (sd: sample standard deviation, x100).",
        "",
        "| task | seeds × folds | one split: sd (range) | cross-validated: sd over seeds (range) | "
        "the fold models on the dev set: sd (range) | command |",
        "|---|---|---|---|---|---|",
    ]

    def spread(values):
        return f"{100 * _sd(values):.2f} ({100 * min(values):.1f}-{100 * max(values):.1f})"

    for path in paths:
        with open(path, encoding="utf-8") as f:
            r = json.load(f)
        seeds = list(r["seeds"].values())
        single = [v for s in seeds for v in s["heldout"]]
        dev = [v for s in seeds for v in s["dev"]]
        lines.append(
            f"| {r['task']} ({r['metric']}) | {len(seeds)} × {len(seeds[0]['heldout'])} | {spread(single)} | "
            f"{spread([s['cv'] for s in seeds])} | {spread(dev)} | `{r['command']}` |"
        )
    return lines + [""]


def oof_calibration_section(results_dir: str) -> list[str]:
    """results/calibration/oof-temperature.json (benchmarks/oof_calibration.py): the dev log loss and ECE of a
    candidate trained on a learning-curve draw, raw and divided by the temperature fitted on its out-of-fold
    predictions (what --auto_select cross_validation saves in its pick) or on dev itself."""
    path = os.path.join(results_dir, "calibration", "oof-temperature.json")
    if not os.path.isfile(path):
        return []
    with open(path, encoding="utf-8") as f:
        record = json.load(f)
    groups = {}
    for r in record["runs"]:
        groups.setdefault((r["task"], r["per_class"], r["candidate"]), []).append(r)
    lines = [
        "## Calibration from out-of-fold predictions",
        "",
        "`--auto_select cross_validation` divides its pick's logits by the temperature that minimises the log loss",
        "of the pick's out-of-fold predictions on the training rows (no validation split spent). Here each candidate,",
        "trained on a learning-curve draw, predicts the dev set: its log loss and ECE raw, with that temperature, and",
        "with the one fitted on dev itself (the most any one temperature can do there). Medians over the draws;",
        "accuracy is the run's (a temperature changes no decision). "
        f"`{record['command']}`; CPU flags {', '.join(record['runs'][-1].get('cpu_flags') or []) or '?'}.",
        "",
        "| task | rows per class | candidate | draws | dev accuracy | temperature: out of fold / dev | dev log loss: "
        "raw / out-of-fold T / dev T | dev ECE: raw / out-of-fold T / dev T | lower with out-of-fold T (log loss, "
        "ECE) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for (task, per_class, candidate), runs in sorted(groups.items()):
        med = lambda f, runs=runs: _median([f(r) for r in runs])  # noqa: E731
        kinds = ("raw", "out_of_fold", "dev_fitted")
        loss = " / ".join(f"{med(lambda r, k=k: r[k]['log_loss']):.3f}" for k in kinds)
        ece = " / ".join(f"{med(lambda r, k=k: r[k]['ece']):.3f}" for k in kinds)
        better = [sum(r["out_of_fold"][m] < r["raw"][m] for r in runs) for m in ("log_loss", "ece")]
        lines.append(
            f"| {task} | {per_class} | {candidate} | {len(runs)} | {100 * med(lambda r: r['dev_accuracy']):.1f} | "
            f"{med(lambda r: r['temperature_out_of_fold']):.2f} / {med(lambda r: r['temperature_dev']):.2f} | "
            f"{loss} | {ece} | {better[0]} and {better[1]} of {len(runs)} |"
        )
    return lines + [""]


def _median(values: list[float]) -> float:
    values = sorted(values)
    mid = len(values) // 2
    return values[mid] if len(values) % 2 else (values[mid - 1] + values[mid]) / 2


def _benchmark_records(results_dir: str, folder: str) -> list[dict]:
    """The records a benchmark wrote into results/<folder>/, one a task, in name order."""
    records = []
    for path in sorted(glob.glob(os.path.join(results_dir, folder, "*.json"))):
        with open(path, encoding="utf-8") as f:
            records.append(json.load(f))
    return records


def _speed_records(results_dir: str) -> list[tuple[str, dict]]:
    """(file name, record) of results/speed/*.json, in name order (so the newest of a kind is the last)."""
    records = []
    for path in sorted(glob.glob(os.path.join(results_dir, "speed", "*.json"))):
        with open(path, encoding="utf-8") as f:
            records.append((os.path.basename(path), json.load(f)))
    return records


def _flags(record: dict) -> str:
    return ", ".join(record.get("cpu_flags") or []) or "?"


def _grouping_cost(results_dir: str) -> str:
    """What grouping costs in accuracy, per task of results/sampler-order/: our grouped median minus our random
    median on all training rows (HF README settings), with the seeds behind each, and whether that difference is
    beyond seed noise: a two-sided Mann-Whitney U test of the two orders' seeds (scipy; exact at these sizes) at
    p < 0.05, which 5 seeds against 5 pass only when the orders barely overlap (issue 40: "more than seed noise").
    Where two tasks or more have both orders, a small cost too small for any one task's seeds to show can still add
    up across them: the one-sided tests (grouped lower) are pooled by Stouffer's method (scipy's combine_pvalues),
    each task weighted alike."""
    parts, one_sided, lower, against = [], [], 0, []
    for record in _benchmark_records(results_dir, "sampler-order"):
        key = f"eval_{record['primary_metric']}"
        values = {
            v: [
                100 * r["metrics"][key] for r in record["runs"] if r["variant"] == v and not r.get("max_train_samples")
            ]
            for v in ("group", "random", "peer")
        }
        if values["group"] and values["peer"]:
            delta = _median(values["group"]) - _median(values["peer"])
            against.append(f"{record['task']} {delta:+.2f} ({len(values['group'])} vs {len(values['peer'])} seeds)")
        if values["group"] and values["random"]:
            delta, difference = _seed_difference(values["group"], values["random"])
            one_sided.append(mannwhitneyu(values["group"], values["random"], alternative="less").pvalue)
            lower += delta < 0
            parts.append(f"{record['task']} {difference}")
        else:
            parts.append(f"{record['task']}: not both orders yet")
    if not parts:
        return "accuracy: not measured yet (benchmarks/sampler_order.py)"
    pooled = ""
    if len(one_sided) > 1:
        p = combine_pvalues(one_sided, method="stouffer").pvalue
        verdict = "a cost beyond seed noise" if p < 0.05 else "within seed noise"
        pooled = (
            f"; across the {len(one_sided)} tasks: grouped lower on {lower}, pooled {verdict} (one-sided "
            f"Mann-Whitney per task, Stouffer p {p:.2f})"
        )
    peer = f"; our default minus the real run_glue.py's median: {', '.join(against)}" if against else ""
    return "accuracy, grouped minus random median (table below): " + "; ".join(parts) + pooled + peer


def defaults_section(results_dir: str) -> list[str]:
    """Issue 40's question, answered from the records below it: what each of our speed defaults buys and what it
    costs, each number taken from the named record (newest of its kind). A default without a record is listed as
    not measured rather than left out."""
    speed = _speed_records(results_dir)
    rows = []

    def newest(test):
        found = [(name, r) for name, r in speed if test(name, r)]
        return found[-1] if found else (None, None)

    def packing_result(record, order, architecture="bert"):
        return next(r for r in record["results"] if r["order"] == order and r["architecture"] == architecture)

    def padded_vs_padding_free(record, *orders):
        """A packing record with both modes for BERT in each of these orders (not a record of levers alone)."""
        if record.get("benchmark") != "packing":
            return False
        have = {(r["architecture"], r["order"]) for r in record["results"]
                if {"padded", "padding_free"} <= set(r["median_ms_per_step"])}  # fmt: skip
        return all(("bert", o) in have for o in orders)

    def amx(record):  # a CPU with bf16 matrix tiles: its own rows below, its numbers unlike an AVX2 CPU's
        return "amx_bf16" in (record.get("cpu_flags") or [])

    def sst2_packing(n, r):
        return padded_vs_padding_free(r, "grouped", "random") and "sst2" in r["data"].lower().replace("-", "")

    name, rec = newest(lambda n, r: sst2_packing(n, r) and not amx(r))
    if rec:
        grouped, random_ = packing_result(rec, "grouped"), packing_result(rec, "random")
        rows.append(
            f"| padding-free batches (`--padding_free auto`) | steps {grouped['speedup']:.2f}x faster than padded "
            f"(length-grouped SST-2 batches), {random_['speedup']:.2f}x (random) | none in results: the padded "
            f"model's logits and gradients to rounding (tests/pipeline/test_packing.py) | {name} ({_flags(rec)}) |"
        )
        if "one_layout" in grouped["median_ms_per_step"]:
            ms = {o: packing_result(rec, o)["median_ms_per_step"]["padding_free"] for o in ("grouped", "random")}
            rows.append(
                f"| length-grouped batches (`--train_sampling_strategy group_by_length`) | steps "
                f"{ms['random'] / ms['grouped']:.2f}x faster than random batches (SST-2, padding-free) | "
                f"{_grouping_cost(results_dir)} | {name}, sampler-order/ |"
            )
    name_b, rec_b = newest(lambda n, r: padded_vs_padding_free(r, "random") and "rte" in r["data"].lower())
    if rec_b and rec and "buckets_speedup" in packing_result(rec, "grouped"):
        pairs, short = packing_result(rec_b, "random"), packing_result(rec, "random")
        grouped = packing_result(rec, "grouped")
        rows.append(
            f"| attention in buckets (CPU, packed batches) | steps {pairs['buckets_speedup']:.2f}x faster on random "
            f"RTE pair batches, {short['buckets_speedup']:.2f}x on random SST-2 | {grouped['buckets_speedup']:.2f}x "
            f"on loosely grouped SST-2 batches (few batches bucket in a real grouped run) | {name_b}, {name} "
            f"({_flags(rec_b)}) |"
        )
    name, rec = newest(lambda n, r: n.startswith("scale-") and "first_step_cold_vs_upfront_at_1000000" in r.get(
        "targets", {}))  # fmt: skip
    if rec:
        t = rec["targets"]
        rows.append(
            f"| `--tokenize auto` (per batch from 100,000 rows on CPU) | first training step on a new 1M-row file "
            f"{1 / t['first_step_cold_vs_upfront_at_1000000']['value']:.1f}x sooner than tokenizing up front, "
            f"{1 / t['first_step_cold_vs_peer_at_1000000']['value']:.1f}x sooner than the real run_glue.py | training "
            f"speed {t['train_throughput_cold_vs_upfront_at_1000000']['value']:.2f}x up front's in its "
            f"{rec['settings']['max_steps']} steps (all from the first, longest megabatch); peak memory "
            f"{t['peak_rss_cold_vs_peer_at_1000000']['value']:.4f}x the peer's | {name} ({_flags(rec)}) |"
        )
    name, rec = newest(lambda n, r: n.startswith("scale-") and any(
        k.startswith("end_to_end_vs_peer_bf16_at_") for k in r.get("targets", {})))  # fmt: skip
    if rec:  # steady state on long rows (scale.py --steps): our defaults against the peer's best flags
        t = rec["targets"]
        n = next(k for k in t if k.startswith("end_to_end_vs_peer_bf16_at_")).rsplit("_", 1)[1]
        fp32, bf16 = t.get(f"end_to_end_vs_peer_at_{n}"), t[f"end_to_end_vs_peer_bf16_at_{n}"]
        step = t[f"train_throughput_vs_peer_bf16_at_{n}"]["value"]
        upfront = t.get(f"train_throughput_cold_vs_upfront_at_{n}")
        rows.append(
            f"| our defaults vs the real run_glue.py on {int(n):,} review-like rows ({rec['settings']['max_steps']} "
            f"steps, cold caches) | end to end {bf16['value']:.2f}x its best flags with `--bf16 true` (a step "
            f"{step:.2f}x)"
            + (f", {fp32['value']:.2f}x them in fp32" if fp32 else "")
            + (f"; per-batch tokenizing trains at {upfront['value']:.2f}x up front's speed" if upfront else "")
            + f" | peak memory {t[f'peak_rss_cold_vs_peer_at_{n}']['value']:.2f}x the peer's fp32 run (accuracy: "
            f"not measured in a few hundred steps; the 8k-row rows) | {name} ({_flags(rec)}) |"
        )
    name, rec = newest(lambda n, r: "end_to_end_vs_peer_best" in r.get("targets", {}) and not amx(r))
    if rec:  # all of them together, against the real run_glue.py, each order against its own
        t, m = rec["targets"], rec["medians"]
        random_ = t.get("end_to_end_random_vs_peer_random")
        rows.append(
            f"| all of the above together (our defaults, vs the real run_glue.py) | end to end "
            f"{t['end_to_end_vs_peer_best']['value']:.2f}x its best flags (`--pad_to_max_length false "
            f"--train_sampling_strategy group_by_length`; a step {t['train_time_vs_peer_best']['value']:.2f}x)"
            + (f", {random_['value']:.2f}x its default random order (our random order against it)" if random_ else "")
            + f" ({rec['data']}) | dev accuracy {100 * m['ours']['eval_accuracy']:.2f} against its "
            f"{100 * m['peer_best']['eval_accuracy']:.2f} (one seed a side: the batch-order tables are the verdict) "
            f"| {name} ({_flags(rec)}) |"
        )
    amx_packing = {}  # the newest AMX record of each precision
    for n, r in speed:
        if sst2_packing(n, r) and amx(r):
            amx_packing["bf16" if (r.get("settings") or {}).get("bf16") else "fp32"] = (n, r)
    if amx_packing:
        rows.append(
            "| padding-free batches on a CPU with AMX | step time, padded / padding-free: "
            + "; ".join(f"{p} {packing_result(r, 'grouped')['speedup']:.2f}x length-grouped SST-2 batches, "
                        f"{packing_result(r, 'random')['speedup']:.2f}x random"
                        for p, (n, r) in sorted(amx_packing.items()))
            + " (below 1: padded is faster) | as above | "
            + ", ".join(n for _, (n, _) in sorted(amx_packing.items()))
            + f" ({_flags(next(iter(amx_packing.values()))[1])}) |"
        )  # fmt: skip
    name, rec = newest(lambda n, r: amx(r) and {"ours", "peer_best_bf16"} <= set(r.get("medians", {})))
    if rec:  # the newest record of our default against the peer's fastest flags there (bf16), fp32 beside if timed
        m, t = rec["medians"], rec.get("targets", {})
        fp32 = (f", {t['end_to_end_vs_peer_best']['value']:.2f}x its best flags in fp32"
                if "end_to_end_vs_peer_best" in t else "")  # fmt: skip
        peer16 = m["peer_best_bf16"]
        rows.append(
            f"| our defaults vs the real run_glue.py on a CPU with AMX (bf16 training steps) | end to end "
            f"{peer16['wall_s'] / m['ours']['wall_s']:.2f}x its best flags with `--bf16 true` (a step "
            f"{peer16['train_s'] / m['ours']['train_s']:.2f}x){fp32} (below 1: the peer is faster) | dev accuracy "
            f"{100 * m['ours']['eval_accuracy']:.2f} against its {100 * peer16['eval_accuracy']:.2f} | {name} "
            f"({_flags(rec)}) |"
        )
    native = {"avx512_bf16", "amx_bf16"}
    name, rec = newest(lambda n, r: "bf16_train_time_vs_fp32" in r.get("targets", {})
                       and not native & set(r.get("cpu_flags") or []))  # fmt: skip
    if rec:
        t = rec["targets"]
        rows.append(
            "| fp32 on a CPU without bf16 instructions (`--bf16` unset) | "
            f"{t['bf16_train_time_vs_fp32']['value']:.1f}x faster training than `--bf16` (same dev accuracy, "
            f"{t['bf16_accuracy_vs_fp32_points']['value']:+.2f} points) | nothing: `--bf16` is emulated there | "
            f"{name} ({_flags(rec)}) |"
        )
    measured = [(task + (" (the default)" if recipe.endswith("-default") else " (`--bf16 true`)"), found)
                for (task, recipe), by_precision in sorted(_cpu_bf16_pairs(results_dir).items())
                if (found := _bf16_against_fp32(by_precision, _primary_key(task)[0]))]  # fmt: skip
    if measured:
        flags = sorted({f for d in _cpu_bf16_pairs(results_dir).values() for p in d.values() for r in p["runs"]
                        for f in r["environment"].get("cpu_flags") or [] if "bf16" in f or "amx" in f})  # fmt: skip
        rows.append(
            "| bf16 autocast on a CPU with AMX (`--bf16` unset) | training in "
            + ", ".join(f"{f['time']:.2f}x fp32's time on {task}" for task, f in measured)
            + f" ({'/'.join(str(f['seeds']) for _, f in measured)} seeds) | dev metric "
            + ", ".join(f"{f['points']:+.2f} points ({f['noise']} seed noise)" for _, f in measured)
            + "; peak memory "
            + ", ".join(f"{f['memory']:.2f}x" for _, f in measured)
            + f" | cpu-bf16/ ({', '.join(flags) or '?'}) |"
        )
    if not rows:
        return []
    return [
        "## What each speed default buys and costs",
        "",
        "Each number is taken from the record named (results/speed/), measured alone on the CPU whose flags follow;",
        "ratios compare runs of one record only.",
        "",
        "| default | buys | costs | record |",
        "|---|---|---|---|",
        *rows,
        "",
    ]


PRECISIONS = ("fp32", "bf16")


def cpu_bf16_section(results_dir: str) -> list[str]:
    """results/cpu-bf16/<task>/<recipe>_fp32.json and _bf16.json, written by scripts/run_seeds.py: one recipe and
    seeds trained in fp32 and with `--bf16 true` (torch's CPU autocast) on one machine, the two alternating seed by
    seed. Per task: each precision's primary metric, median (range), its training seconds and peak memory, the CPU and
    its flags; then what bf16 buys (its median train time / fp32's) and costs (its median minus fp32's, and whether
    that is beyond seed noise: a two-sided Mann-Whitney U test at p < 0.05)."""
    pairs = _cpu_bf16_pairs(results_dir)
    if not pairs:
        return []
    lines = [
        "## CPU bf16 against fp32",
        "",
        "One recipe, the same seeds, trained in fp32 and in bf16 (torch's CPU autocast: bf16 matrix products over",
        "fp32 weights) on one machine alone, the two alternating seed by seed; median (lowest-highest). Names ending",
        "-default: our default there (`--bf16` unset: bf16 training steps, padded length-grouped batches) against",
        "`--bf16 false`; the others `--bf16 true` (Trainer's: every forward) against fp32.",
        "Seconds are each run's train_runtime (evaluation each epoch inside, as the recipe has it).",
        "",
    ]
    for (task, recipe), by_precision in sorted(pairs.items()):
        first = (by_precision.get("fp32") or next(iter(by_precision.values())))["runs"][0]
        key, label = _primary_key(task)
        bf16_runs = (by_precision.get("bf16") or {"runs": [{}]})["runs"]
        how = "`--bf16 true` added for bf16" if "--bf16 true" in bf16_runs[0].get("command", "") else (
            "bf16: the same without `--bf16 false`, our default there")  # fmt: skip
        flags = sorted({f for d in by_precision.values() for r in d["runs"] for f in r["environment"].get("cpu_flags")
                        or []})  # fmt: skip
        lines += [
            f"### {task}: {recipe} ({label})",
            "",
            f"`{first['command'].split(' --seed ')[0]}` ({how}); {hardware(first)}; CPU flags "
            f"{', '.join(flags) or 'not recorded'}.",
            "",
            f"| precision | seeds | {label} | train s | train samples/s | peak RSS MiB |",
            "|---|---|---|---|---|---|",
        ]
        for precision in PRECISIONS:
            runs = by_precision.get(precision, {"runs": []})["runs"]
            if not runs:
                continue
            v = [100 * r["metrics"][key] for r in runs]
            t = [r["timing"]["train_runtime"] for r in runs]
            rate = _median([r["timing"]["train_samples_per_second"] for r in runs])
            rss = _median([r["peak_memory"]["cpu_rss_bytes"] / 2**20 for r in runs])
            lines.append(
                f"| {precision} | {', '.join(str(r['seed']) for r in runs)} | {_median(v):.2f} ({min(v):.2f}-"
                f"{max(v):.2f}) | {_median(t):.0f} ({min(t):.0f}-{max(t):.0f}) | {rate:.1f} | {rss:.0f} |"
            )
        found = _bf16_against_fp32(by_precision, key)
        if found:
            lines += [
                "",
                f"bf16 trains in {found['time']:.2f}x fp32's time; its {label} {found['points']:+.2f} points "
                f"({found['noise']} seed noise, Mann-Whitney p {found['p']:.2f}); peak memory {found['memory']:.2f}x.",
            ]
        lines.append("")
    return lines


def _cpu_bf16_pairs(results_dir: str) -> dict[tuple[str, str], dict[str, dict]]:
    """{(task, recipe): {"fp32": results file content, "bf16": ...}} of results/cpu-bf16/<task>/<recipe>_<p>.json."""
    pairs: dict[tuple[str, str], dict[str, dict]] = {}
    for path in sorted(glob.glob(os.path.join(results_dir, "cpu-bf16", "*", "*.json"))):
        name = os.path.splitext(os.path.basename(path))[0]
        recipe, _, precision = name.rpartition("_")
        if precision in PRECISIONS:
            pairs.setdefault((os.path.basename(os.path.dirname(path)), recipe), {})[precision] = load_results(path)
    return pairs


def _primary_key(task: str) -> tuple[str, str]:
    """(result key, label) of a task's primary metric; a task named <glue task>-<variant> is that GLUE task's."""
    short = GLUE_DISPLAY.get(task.split("-")[0], ("acc",))[0]
    return METRIC_KEYS[short], METRIC_LABELS[short]


def _bf16_against_fp32(by_precision: dict[str, dict], key: str) -> dict | None:
    """bf16's median train time / fp32's, its median metric minus fp32's (points), that difference's two-sided
    Mann-Whitney p and verdict (beyond seed noise at p < 0.05), and its median peak memory / fp32's."""
    runs = {p: by_precision[p]["runs"] for p in PRECISIONS if by_precision.get(p, {}).get("runs")}
    if len(runs) < 2:
        return None

    def median(precision, value):
        return _median([value(r) for r in runs[precision]])

    values = {p: [100 * r["metrics"][key] for r in runs[p]] for p in PRECISIONS}
    p = mannwhitneyu(values["bf16"], values["fp32"]).pvalue
    return {
        "time": median("bf16", lambda r: r["timing"]["train_runtime"])
        / median("fp32", lambda r: r["timing"]["train_runtime"]),
        "points": _median(values["bf16"]) - _median(values["fp32"]),
        "p": p,
        "noise": "beyond" if p < 0.05 else "within",
        "memory": median("bf16", lambda r: r["peak_memory"]["cpu_rss_bytes"])
        / median("fp32", lambda r: r["peak_memory"]["cpu_rss_bytes"]),
        "seeds": min(len(v) for v in values.values()),
    }


def sampler_order_section(results_dir: str) -> list[str]:
    """results/sampler-order/<task>.json written by benchmarks/sampler_order.py: per task, the real run_glue.py, our
    script in random order and in our default grouping: the primary metric's median (range) over seeds, and the
    median training and whole-process seconds."""
    records = _benchmark_records(results_dir, "sampler-order")
    if not records:
        return []
    lines = [
        "## Batch order: the real run_glue.py, our random order, our length grouping",
        "",
        "HF README hyperparameters (the task's all-MiniLM-L6-v2_hf-readme recipe, stock [CLS] head), one process per",
        "run; median (lowest-highest) over the seeds and their number; seconds are medians of one run's training",
        "(train_runtime) and whole process, comparable only within a table's machine and load (in the record).",
        "",
    ]
    for record in records:
        metric = record["primary_metric"]
        # the runs span sessions, and sessions machines: each machine's flags with the runs it made
        machines: dict[str, list[str]] = {}
        for r in record["runs"]:
            if r.get("cpu_flags") is not None:
                flags = ", ".join(r["cpu_flags"]) or "none of AVX2/AVX-512/AMX"
                machines.setdefault(flags, []).append(f"{r['variant']} {r['seed']}")
        where = "; ".join(f"CPU flags {flags} ({', '.join(runs)})" for flags, runs in machines.items())
        lines += [f"### {record['task']} ({metric})", "", f"`{record['command']}`; {where or 'CPU flags ?'}.", ""]
        lines += [f"| order | rows | seeds | {metric} | train s | wall s |", "|---|---|---|---|---|---|"]
        groups: dict[tuple, list[dict]] = {}
        mixed: list[str] = []
        for r in record["runs"]:
            groups.setdefault((r["variant"], r.get("max_train_samples") or "all"), []).append(r)
        for (variant, rows), runs in groups.items():
            values = [100 * r["metrics"][f"eval_{metric}"] for r in runs]
            # a resumed run's seconds are its last part's; a run marked not_timed shared the CPU (its note says how);
            # an imported run (source) was timed on another machine, with evaluation each epoch inside
            timed = [r for r in runs if not r.get("resumed") and not r.get("not_timed") and not r.get("source")]
            if len({tuple(r.get("cpu_flags") or ()) for r in timed}) > 1:  # seconds compare within one machine
                latest = tuple(timed[-1].get("cpu_flags") or ())
                timed = [r for r in timed if tuple(r.get("cpu_flags") or ()) == latest]
                mixed.append(f"{variant}: seconds of its {len(timed)} timed runs on the latest machine only")
            train = [r["train_runtime_s"] for r in timed if r.get("train_runtime_s") is not None]
            seconds = f"{_median(train):.0f} | {_median([r['wall_s'] for r in timed]):.0f}" if train else "- | -"
            lines.append(
                f"| {variant} | {rows} | {len(runs)} | {_median(values):.2f} ({min(values):.2f}-{max(values):.2f}) "
                f"| {seconds} |"
            )
        lines += _against_the_peer(groups, metric)
        notes = list(record.get("notes", []))
        for source in sorted({r["source"] for r in record["runs"] if r.get("source")}):
            seeds = [r["seed"] for r in record["runs"] if r.get("source") == source]
            notes.append(
                f"group seeds {', '.join(map(str, seeds))}: the recipe's own runs in {source} (evaluated each epoch, "
                "which changes no training; timed then, on the machine of that record and with those evaluations "
                "inside: their seconds left out here)"
            )
        resumed = [f"{r['variant']} seed {r['seed']}" for r in record["runs"] if r.get("resumed")]
        if resumed:
            notes.append(f"resumed from a checkpoint (seconds left out): {', '.join(resumed)}")
        notes += mixed
        lines += [""] + [f"- {note}" for note in notes] + ([""] if notes else [])
    return lines


VARIANTS = ("peer", "group", "random")  # benchmarks/sampler_order.py's: the real run_glue.py, our two orders


def _against_the_peer(groups: dict, metric: str) -> list[str]:
    """One line under a batch-order table: our two orders' medians minus the real run_glue.py's, on all training rows,
    with the seeds behind each and a two-sided Mann-Whitney U test (beyond seed noise at p < 0.05; issue 40: our
    median must beat the peer's over 5 seeds each)."""
    values = {v: [100 * r["metrics"][f"eval_{metric}"] for r in groups.get((v, "all"), [])] for v in VARIANTS}
    if not values["peer"]:
        return []
    parts = [
        f"{words} {_seed_difference(values[variant], values['peer'])[1]}"
        for variant, words in (("group", "our default (length-grouped)"), ("random", "our random order"))
        if values[variant]
    ]
    return ["", "Against the real run_glue.py, median minus its median: " + "; ".join(parts) + "."] if parts else []


def _seed_difference(ours: list[float], theirs: list[float]) -> tuple[float, str]:
    """Our seeds' median minus theirs and how a batch-order line says it: '+0.34 points (5 vs 2 seeds; within seed
    noise, Mann-Whitney p 0.70)', beyond seed noise where a two-sided Mann-Whitney U test gives p < 0.05."""
    delta = _median(ours) - _median(theirs)
    p = mannwhitneyu(ours, theirs).pvalue
    verdict = "beyond" if p < 0.05 else "within"
    seeds = f"{len(ours)} vs {len(theirs)} seeds"
    return delta, f"{delta:+.2f} points ({seeds}; {verdict} seed noise, Mann-Whitney p {p:.2f})"


def _machine(run: dict) -> tuple:
    """A learning-curve run's machine, as far as its record tells: its CPU flags."""
    return tuple(sorted(run.get("cpu_flags") or []))


def _threads_and_machines(runs: list[dict], machine_of: dict | None) -> str:
    """'1', '1/2' (runs with one and with two OMP threads), and '; A/B' when the record spans machines."""
    threads = "/".join(sorted({str(r.get("omp_num_threads") or "?") for r in runs}))
    return threads + (f"; {'/'.join(sorted({machine_of[_machine(r)] for r in runs}))}" if machine_of else "")


def _curve_command(record: dict, sizes: list[int]) -> str:
    """The one command that makes every run of a learning-curve record (its points were run one size or method at a
    time): the task, its sizes and the most draws any point has."""
    draws = max([r["draw"] for r in record["runs"]], default=1)
    return (f"python benchmarks/learning_curve.py --glue_dir ../shared/data/glue --tasks {record['task']} "
            f"--per_class {' '.join(map(str, sizes))} --draws {draws}")  # fmt: skip


def _span(values: list[float]) -> str:
    """A range of one decimal: '61.2-70.5', or '-6.4 to 4.5' where a minus sign would read as the dash (MCC)."""
    low, high = min(values), max(values)
    return f"{low:.1f}-{high:.1f}" if low >= 0 else f"{low:.1f} to {high:.1f}"


def _details_table(record: dict, details: list[str], cell: dict, metric: str) -> list[str]:
    """The small-data details of a learning-curve record (benchmarks/learning_curve.py DETAILS): each one setting of
    a method changed, run on the same draws and seeds as that method, so each draw gives a paired difference."""
    lines = [
        f"Small-data details: one setting of a method changed, on its draws and seeds; the difference is the change's "
        f"{metric} minus the method's, per draw (x100), median (lowest-highest).",
        "",
        "| change | flags added | rows per class | the method | changed | difference per draw | draws | dev log loss, "
        "the method -> changed |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name in details:
        base = name.split(":")[0]
        full, of_base = record["methods"][name], record["methods"][base]
        added = full[len(of_base) :].strip() if full.startswith(of_base) else full
        for n in sorted({n for n, m in cell if m == name}):
            by_draw = {r["draw"]: 100 * r[metric] for r in cell.get((n, base), [])}
            changed = {r["draw"]: 100 * r[metric] for r in cell[(n, name)] if r["draw"] in by_draw}
            if not changed:
                continue
            diffs = [v - by_draw[d] for d, v in changed.items()]
            losses = [[r["log_loss"] for r in cell[(n, m)] if r["draw"] in changed and "log_loss" in r]
                      for m in (base, name)]  # fmt: skip
            loss = " -> ".join(f"{_median(v):.2f}" if v else "-" for v in losses)
            lines.append(
                f"| {name} | `{added}` | {n} | {_median([by_draw[d] for d in changed]):.1f} | "
                f"{_median(list(changed.values())):.1f} | {_median(diffs):+.1f} ({min(diffs):+.1f} to "
                f"{max(diffs):+.1f}) | {len(diffs)} | {loss} |"
            )
    return lines


def learning_curve_section(results_dir: str, plots_dir: str, plt) -> list[str]:
    """results/small-data/<task>.json written by benchmarks/learning_curve.py: per training-set size and method, the
    dev metric's median and range over the draws, and the median wall time of one run; a picture per task."""
    records = _benchmark_records(results_dir, "small-data")
    if not records:
        return []
    lines = [
        "## Few labels: learning curves",
        "",
        "Each point: N training rows per class drawn from the task's train.tsv (draw d seeded by d, the rows in the",
        "record), scored on the task's whole dev set; the median over the draws with (lowest-highest) and the number",
        "of draws. Methods are defined in benchmarks/learning_curve.py; `setfit-library` is the setfit library with",
        "its defaults on the same weights. Wall time: one whole process (load, train, evaluate), median over draws.",
        "`auto-cv` is what `--method auto` runs by default at these sizes (single texts, one label a row): small-data",
        "fine-tuning and SetFit cross-validated on the draw alone, the pick's own run scored. `--auto_select size` is",
        "the method the size rule picks at that size (textcls/train/method.py: the winner at the nearest size",
        "measured over all tasks, benchmarks/learning_curve.py crossovers()), so its column repeats that run.",
        "",
    ]
    for record in records:
        metric, methods, runs = record["metric"], list(record["methods"]), record["runs"]
        sizes = sorted({r["per_class"] for r in runs + record.get("not_run", [])})
        methods = [m for m in methods if any(r["method"] == m for r in runs + record.get("not_run", []))]
        # "<method>:<change>": one setting varied, a table of its own (grouped by the method, in the record's order)
        details = sorted((m for m in methods if ":" in m), key=lambda m: m.split(":")[0])
        methods = [m for m in methods if m not in details]
        cell = {}
        for r in runs:
            cell.setdefault((r["per_class"], r["method"]), []).append(r)
        env = record.get("environment") or {}
        # runs of one record can come from several machines (sessions move between CPUs): each machine, named by
        # its CPU flags, gets a letter that the wall-time cells carry, so no time is read against another machine's
        machine_of = {}
        for r in sorted(runs, key=lambda r: r.get("date") or ""):
            machine_of.setdefault(_machine(r), chr(ord("A") + len(machine_of)))
        if len(machine_of) > 1:
            where = "; ".join(f"machine {m}: CPU flags {', '.join(f) or '?'}" for f, m in machine_of.items())
            where = f"{where} (the newest runs: {hardware({'environment': env})})"
        else:
            flags = next(iter(machine_of), ())
            where = f"{hardware({'environment': env})}, CPU flags {', '.join(flags) or '?'}"
        lines += [
            f"### {record['task']} ({metric}, {record['model']})",
            "",
            f"`{_curve_command(record, sizes)}` (resumable: it runs what the record lacks; the latest invocation was "
            f"`{record['command']}`); {where}; "
            f"commits {', '.join(sorted({(r.get('git_sha') or '?')[:8] for r in runs}))}.",
            "",
            "| rows per class | " + " | ".join(methods) + " | --auto_select size |",
            "|---|" + "---|" * (len(methods) + 1),
        ]
        skipped = {(r["per_class"], r["method"]): r["steps"] for r in record.get("not_run", [])}
        for n in sizes:
            row = []
            for m in methods:
                values = [100 * r[metric] for r in cell.get((n, m), [])]
                blank = f"not run ({skipped[(n, m)]:,} steps)" if (n, m) in skipped else "-"
                row.append(f"{_median(values):.1f} ({_span(values)}) ×{len(values)}" if values
                           else blank)  # fmt: skip
            chosen = [100 * r[metric] for r in cell.get((n, pick(n)), [])]  # auto is that method's run at this size
            row.append(f"{_median(chosen):.1f} ({pick(n)})" if chosen else f"- ({pick(n)})")
            lines.append(f"| {n} | " + " | ".join(row) + " |")
        # a run's threads decide its wall time as much as its method does (one thread beside another busy process,
        # or two alone): each cell says the OMP_NUM_THREADS its runs had
        several = len(machine_of) > 1
        head = f"| wall s per run (OMP threads{'; machine' if several else ''}) | " + " | ".join(methods) + " |"
        lines += ["", head, "|---|" + "---|" * len(methods)]
        for n in sizes:
            walls = [cell.get((n, m)) for m in methods]
            lines.append(f"| {n} | " + " | ".join(f"{_median([r['wall_s'] for r in w]):.0f} "
                                                  f"({_threads_and_machines(w, machine_of if several else None)})"
                                                  if w else "-" for w in walls) + " |")  # fmt: skip
        picks = [r for r in runs if "picked" in r]  # auto-cv: a pick by cross-validation on the draw's own rows
        if picks:
            said = []
            for n in sorted({r["per_class"] for r in picks}):
                at = [r["picked"] for r in picks if r["per_class"] == n]
                said.append(f"at {n}: " + ", ".join(f"{m} {at.count(m)}" for m in sorted(set(at))) + f" of {len(at)}")
            lines += ["", "auto-cv's picks (draws; its wall time is the cross-validation's, before the pick's own "
                      "run; its log loss and ECE are the pick's run's, before the temperature --auto_select "
                      "cross_validation fits on the pick's out-of-fold predictions: see \"Calibration from "
                      "out-of-fold predictions\"): " + "; ".join(said) + "."]  # fmt: skip
        bf16_phase = [r for r in runs if r.get("setfit_contrastive_precision") == "bf16"]
        if bf16_phase:  # recorded since 2026-12-07; before, every contrastive phase ran in fp32
            count: dict[tuple, int] = {}
            for r in bf16_phase:
                count[(r["per_class"], r["method"])] = count.get((r["per_class"], r["method"]), 0) + 1
            said = ", ".join(f"{m} at {n} ({k} of {len(cell[(n, m)])} draws)" for (n, m), k in sorted(count.items()))
            lines += ["", f"SetFit's contrastive phase with its encoder in bf16 (a CPU with AMX, since 2026-12-07; "
                      f"every other run's phase fp32): {said}."]  # fmt: skip
        if any("ece" in r for r in runs):  # recorded since 2026-12-06: the older runs measured the metric only
            lines += [
                "",
                "| dev log loss / ECE, median | " + " | ".join(methods) + " |",
                "|---|" + "---|" * len(methods),
            ]
            for n in sizes:
                row = []
                for m in methods:
                    rs = [r for r in cell.get((n, m), []) if "ece" in r]
                    row.append(f"{_median([r['log_loss'] for r in rs]):.2f} / {_median([r['ece'] for r in rs]):.3f}"
                               f" ×{len(rs)}" if rs else "-")  # fmt: skip
                lines.append(f"| {n} | " + " | ".join(row) + " |")
        full = record.get("full") or []
        if full:  # the whole training set once: the ceiling the curve climbs toward
            said = []
            for e in full:
                how = (f"{len(e['values'])} seeds, median; {e['source']}" if "values" in e
                       else f"{e['wall_s']:.0f} s, OMP threads {e.get('omp_num_threads') or '?'}")  # fmt: skip
                said.append(f"{e['label']} {100 * e[metric]:.1f} ({how})")
            lines += ["", f"The full training set ({full[0]['train_rows']:,} rows): " + "; ".join(said) + "."]
        given = [f"{m} `{record['methods'][m] or 'the defaults'}`" for m in methods if m in record["methods"]]
        lines += ["", "Flags of each method (the record's): " + "; ".join(given) + "."]
        superseded = record.get("superseded", [])
        if superseded:
            by = sorted({r["method"] for r in superseded})
            lines.append(f"{len(superseded)} earlier runs of {', '.join(by)} ran with flags since changed: they stay "
                         "in the record under `superseded`, with their flags, out of the tables.")  # fmt: skip
        if details:
            lines += ["", *_details_table(record, details, cell, metric)]
        if plt is not None:
            picture = os.path.join(plots_dir, "small-data", f"{record['task']}.png")
            os.makedirs(os.path.dirname(picture), exist_ok=True)
            fig, ax = plt.subplots(figsize=(9.5, 4.5))
            for m in methods:
                xs = [n for n in sizes if (n, m) in cell]
                values = [[100 * r[metric] for r in cell[(n, m)]] for n in xs]
                shown = "auto-cv (--method auto)" if m == "auto-cv" else m  # what a user types to get it
                ax.plot(xs, [_median(v) for v in values], marker="o", label=shown)
                ax.fill_between(xs, [min(v) for v in values], [max(v) for v in values], alpha=0.12)
            for i, e in enumerate(full):
                ax.axhline(100 * e[metric], color="grey", linestyle=("--", ":", "-.")[i % 3], linewidth=1,
                           label=f"all {e['train_rows']:,} rows: {e['label']}")  # fmt: skip
            ax.set_xscale("log", base=2)
            ax.set_xticks(sizes, [str(n) for n in sizes])
            ax.set_xlabel("training rows per class")
            ax.set_ylabel(f"dev {metric} x100 (median, range over draws)")
            ax.set_title(f"{record['task']}: {record['model']}")
            ax.grid(alpha=0.3)
            ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5))  # outside: the lines fill the box
            fig.tight_layout()
            fig.savefig(picture, dpi=100)
            plt.close(fig)
            lines += ["", f"![{record['task']} learning curve](plots/small-data/{record['task']}.png)"]
        lines.append("")
    return lines


def speed_section(results_dir: str, plots_dir: str, plt) -> list[str]:
    """One table per results/speed/*.json written by benchmarks/speed.py or gpu.py (medians per mode, ratios vs
    targets), or by benchmarks/packing.py or scale.py."""
    paths = sorted(glob.glob(os.path.join(results_dir, "speed", "*.json")))
    if not paths:
        return []
    lines = ["## Speed", ""]
    for path in paths:
        name = os.path.splitext(os.path.basename(path))[0]
        with open(path, encoding="utf-8") as f:
            record = json.load(f)
        if record.get("benchmark") == "packing":
            lines += packing_table(name, record)
            continue
        if record.get("benchmark") == "scale":
            lines += scale_table(name, record)
            continue
        if record.get("benchmark") == "inference":
            lines += inference_table(name, record)
            continue
        env = record.get("environment") or {}
        packages = env.get("packages") or {}
        lines += [
            f"### {name}",
            "",
            f"{record['model']}; {record['data']}; settings {json.dumps(record['settings'])}; medians of "
            f"{record['repeats']} runs per mode ({record.get('slow_repeats', record['repeats'])} of the slow mode), "
            f"each a fresh process. {hardware({'environment': env})}"
            + (
                f" (CPU flags {', '.join(record['cpu_flags']) or 'none of AVX2/AVX-512/AMX'})"
                if "cpu_flags" in record
                else ""
            )  # fmt: skip
            + f", torch {packages.get('torch')}, transformers {packages.get('transformers')}, "
            f"{record['date']}, commit {(record.get('git_sha') or '?')[:8]}"
            f"{' (uncommitted changes)' if record.get('git_dirty') else ''}.",
            "",
            f"`{record['command']}`",
            "",
            "| mode | " + " | ".join(c for c, _ in SPEED_COLUMNS) + " |",
            "|---|" + "---|" * len(SPEED_COLUMNS),
        ]
        for mode, m in record["medians"].items():
            lines.append(f"| {mode} | " + " | ".join(fmt(m) for _, fmt in SPEED_COLUMNS) + " |")
        lines += ["", _rss_note(record, [r["peak_rss_bytes"] for runs in record["runs"].values() for r in runs])]
        peak = record.get("peak_bf16_tflops_measured")
        if record.get("mfu_real_tokens") and peak:
            mfu = ", ".join(f"{mode} {100 * v:.1f}%" for mode, v in record["mfu_real_tokens"].items() if v is not None)
            lines += ["", f"MFU on real tokens ({record.get('device')}, measured peak {peak:.0f} TFLOP/s): {mfu}."]
        lines += ["", "| ratio | how | value | target | met |", "|---|---|---|---|---|"]
        for ratio, c in record["targets"].items():
            met = "yes" if c["met"] else "**no**"
            target = c["target"].replace("|", "\\|")  # |x| would split the table cell
            lines.append(f"| {ratio} | {c['how']} | {c['value']:.2f} | {target} | {met} |")
        if record.get("sweep"):
            lines += [
                "",
                "| our defaults at batch | extra flags | rows x epochs | train samples/s | real tokens/s | train s | "
                "end-to-end s | MFU on real tokens |",
                "|---|---|---|---|---|---|---|---|",
            ]
            for p in record["sweep"]:
                mfu = f"{100 * p['mfu_real_tokens']:.1f}%" if p.get("mfu_real_tokens") is not None else "n/a"
                lines.append(
                    f"| {p['batch_size']} | {p['flags'] or '-'} | {p['train_rows']} x {p['epochs']} | "
                    f"{p['train_samples_per_second']:.0f} | {p['real_tokens_per_second']:.0f} | {p['train_s']:.1f} | "
                    f"{p['wall_s']:.1f} | {mfu} |"
                )
        if record.get("notes"):
            lines += [""] + [f"- {note}" for note in record["notes"]]
        scaling = record.get("scaling") or {}
        if scaling.get("rows"):
            lines += ["", "| mode | training rows | real tokens | train s | train s per 1k rows | end-to-end s |"]
            lines.append("|---|---|---|---|---|---|")
            for p in scaling["rows"]:
                lines.append(
                    f"| ours | {p['train_rows']} | {p['real_tokens']} | {p['train_s']:.1f} | "
                    f"{p['train_s_per_1k_rows']:.1f} | {p['wall_s']:.1f} |"
                )
        if scaling.get("max_seq_length"):
            lines += ["", "| mode | padded length | train samples/s | train s |", "|---|---|---|---|"]
            for p in scaling["max_seq_length"]:
                lines.append(
                    f"| slow | {p['max_seq_length']} | {p['train_samples_per_second']:.1f} | {p['train_s']:.1f} |"
                )
        if plt is not None:
            plot_speed(record, os.path.join(plots_dir, "speed", f"{name}.png"), plt)
            lines += ["", f"![speed {name}](plots/speed/{name}.png)"]
        lines.append("")
    return lines


def render(results_dir: str, sources: dict, plt) -> str:
    """The README text; writes the plots under results_dir/plots when `plt` (matplotlib.pyplot) is given."""
    found = collect(results_dir)
    plots_dir = os.path.join(results_dir, "plots")
    lines = [
        "# Results",
        "",
        "Generated by `python scripts/make_results_readme.py` from `results/<benchmark>/<task>/<recipe>.json` (one",
        "file per recipe, one run per seed, written by `run_classification.py --results_file` and",
        "`scripts/run_seeds.py`). Do not edit by hand.",
        "",
        "Numbers are x100, on dev sets. *ours*: median ± sample standard deviation over seeds; Δ = our median minus",
        "the published number. ‡: the source does not name its metric; compared with our GLUE primary metric.",
        "Every run's exact command, recipe hash, git commit, library versions, wall time and peak memory are in its",
        "result file.",
        "",
    ]
    if not found:
        lines += [
            "No results yet. Record one with",
            "`python scripts/run_seeds.py recipes/glue/rte/all-MiniLM-L6-v2.json --seeds 1 2 3 -- --data_dir "
            "../shared/data/glue/RTE`.",
            "",
        ]
    if plt is None:
        lines += ["Plots skipped: matplotlib is not installed (`pip install matplotlib`, then run this again).", ""]
    used = set()
    published_only = [n for n in _ordered(SAME_MODEL) if n not in found.get("glue", {}) and reference_for(n, sources)]
    for benchmark in sorted(set(found) | ({"glue"} if published_only else set())):
        models = found.get(benchmark, {})
        lines += [f"## {benchmark}", ""]
        if plt is not None and benchmark == "glue":
            path = os.path.join(plots_dir, benchmark, "vs_published.png")
            plot_vs_published(models, sources, path, plt, load_majority(results_dir))
            if os.path.isfile(os.path.join(plots_dir, benchmark, "vs_published.png")):
                lines += [f"![ours vs published](plots/{benchmark}/vs_published.png)", ""]
        baselines = {b for n, (b, _) in BASELINE_OF.items() if n in models and benchmark == "glue"}
        for name in _ordered(models):
            if name in baselines:  # shown as columns of the model it is the baseline of
                continue
            baseline = None
            if benchmark == "glue" and name in BASELINE_OF:
                base, label = BASELINE_OF[name]
                baseline = (base, label, models.get(base, {}))
            majority = load_majority(results_dir) if baseline else None
            lines += model_table(benchmark, name, models[name], sources, plt is not None, baseline, majority)
            ref = reference_for(name, sources) if benchmark == "glue" else None
            if ref:
                used.add(ref[0])
            if plt is None:
                continue
            for task, data in models[name].items():
                keys = [key for _, key, _ in display_metrics(task, data["summary"])]
                for run in data["runs"]:
                    if run.get("log_history"):
                        path = curve_plot_path(plots_dir, benchmark, task, name, run["seed"])
                        plot_curves(run, keys, path, f"{benchmark} {task} {name} seed {run['seed']}", plt)
        if benchmark == "glue":  # the published rows our recipes target, where we have no run of them
            for name in published_only:
                lines += published_only_table(name, sources)
                used.add(reference_for(name, sources)[0])
    lines += label_noise_section(results_dir)
    lines += learning_curve_section(results_dir, plots_dir, plt)
    lines += oof_calibration_section(results_dir)
    lines += defaults_section(results_dir)
    lines += sampler_order_section(results_dir)
    lines += cpu_bf16_section(results_dir)
    lines += speed_section(results_dir, plots_dir, plt)
    if used:
        lines += ["## Sources", ""]
        for source_id in sorted(used):
            source = sources[source_id]
            runs = f" {source['runs']}." if source.get("runs") else ""
            lines.append(f"- `{source_id}`: {source.get('model', '')}; {source['source']}.{runs}")
        lines.append("")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--results_dir", default=os.path.join(ROOT, "results"))
    parser.add_argument("--published", default=DEFAULT_PUBLISHED, help="glue_published.json")
    args = parser.parse_args(argv)
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        plt = None
        print("matplotlib is not installed: the README is written without plots.", file=sys.stderr)
    try:
        sources = load_published(args.published)
        collect(args.results_dir)  # every results file read (and a bad one refused) before the old plots go
        shutil.rmtree(os.path.join(args.results_dir, "plots"), ignore_errors=True)
        text = render(args.results_dir, sources, plt)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    path = os.path.join(args.results_dir, "README.md")
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    print(f"wrote {os.path.relpath(path)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
