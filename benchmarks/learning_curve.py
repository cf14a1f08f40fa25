#!/usr/bin/env python
"""Which method wins at which training-set size: a learning curve per task, every method of this repository and the
setfit library itself side by side on the same draws (issue 39).

    python benchmarks/learning_curve.py --glue_dir ../shared/data/glue --tasks sst2 stsb-source cola \\
        --per_class 8 16 32 64 256 1024 --draws 5

Per task: training sets of N rows per class drawn from the task's train.tsv (draw d takes the first N of each class
in an order seeded by d, so a draw's smaller sets are inside its larger ones; the rows are in the record), the task's
whole dev set for every point. Per point and draw, each method is one process, timed whole (load, train, evaluate):

- finetune: run_classification.py with its defaults (HF's: lr 5e-5, 3 epochs, batch 8, no warm-up);
- finetune-small: full fine-tuning set for small data: lr 1e-4, warm-up 10%, at least MIN_STEPS steps;
- head: the frozen encoder and a linear head (`--train_layers head`), lr 2e-3, the same steps;
- lora: `--use_lora` (r 8), lr 5e-4, the same steps;
- setfit: `--method setfit` (setfit's contrastive phase with its defaults), then the head as `head` trains it;
- setfit-finetune: `--method setfit`'s contrastive phase, then the whole model trained as finetune-small;
- setfit-library: the setfit library with every default (SetFitModel.from_pretrained, Trainer.train), the peer.

On asking (--methods), the small-data details: one setting of --method auto's methods changed (DETAILS), on the
same draws and seeds, e.g. `--methods finetune-small:no-warmup finetune-small:lr-5e-5 --per_class 8 16`; and
auto-cv, a pick by cross-validation on the draw's own rows (cv_pick), e.g. `--methods finetune-small setfit auto-cv`.

Records: results/small-data/<task>.json, rewritten after every run, so a stopped benchmark resumes at the next run
missing from it (a run is keyed by size, draw and method). Each run records its commit, its CPU and the machine's
1-minute load when it started and OMP_NUM_THREADS: wall times compare only between runs of one machine with the same
load and threads. Beside another busy process, give each OMP_NUM_THREADS=1 (two processes of two threads each on
two cores trained at 0.2 steps/s against 4.4 with one thread each: finetune-small at 8 rows per class, AVX2 EPYC)."""

import argparse
import csv
import datetime
import json
import math
import os
import random
import shutil
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from benchmarks._runs import (  # noqa: E402  (the root is on the path above)
    command_line,
    cpu_flags,  # noqa: E402
    prune_run,
    run_logged,
    write_csv,
)
from textcls.data.glue import GLUE_TASKS, load_glue_dir  # noqa: E402
from textcls.evaluation.results import environment, git_state  # noqa: E402
from textcls.io import write_json_atomic  # noqa: E402
from textcls.train import method as auto  # noqa: E402
from textcls.train.method import MIN_STEPS, SCHEDULE, SETTINGS  # noqa: E402

MODEL = "sentence-transformers/all-MiniLM-L6-v2"
METRIC = {"sst2": "accuracy", "cola": "matthews_correlation", "stsb-source": "accuracy"}
# stsb-source, a multi-class task made from GLUE's files (no multi-class single-text task is offline here): which
# corpus an STS-B sentence comes from. STS-B's rows carry their source file; four sources are in both its train and
# dev files: news headlines, MSR paraphrase-corpus news sentences, MSR video descriptions and image captions. The
# label is that recorded provenance, not a judgement of ours; the task is style/topic classification, as a user's
# routing or domain tagger is. Two pairs of the four are close (two news sources, two caption sources).
STSB_SOURCES = ("headlines", "MSRpar", "MSRvid", "images")
COMMON = ["--save_strategy", "no", "--plots", "false", "--disable_tqdm", "true", "--logging_steps", "25",
          "--per_device_eval_batch_size", "64", "--do_train", "--do_eval"]  # fmt: skip


def auto_flags(name: str) -> list[str]:
    """--method auto's settings for SETTINGS[name] as command-line flags: the curve measures exactly what auto runs
    (MIN_STEPS, the small-data floor, is its too: at 8 rows per class an epoch is one or two steps)."""
    return [x for flag, value in SETTINGS[name].items() for x in (f"--{flag}", str(value))]


SMALL = [x for flag, value in SCHEDULE.items() for x in (f"--{flag}", str(value))]  # head and lora: the same schedule
METHODS = {
    "finetune": [],
    "finetune-small": auto_flags("finetune-small"),
    "head": [*SMALL, "--train_layers", "head", "--learning_rate", "2e-3"],
    "lora": [*SMALL, "--use_lora", "--learning_rate", "5e-4"],
    "setfit": auto_flags("setfit"),
    "setfit-finetune": auto_flags("setfit-finetune"),
    "setfit-library": None,  # not this repository's script: setfit_library() below, in its own process
}
CURVE = list(METHODS)  # the curve's methods (the default of --methods); DETAILS below are run on asking
# The small-data details (issue 39): --method auto's settings changed one at a time, on the same draws and seeds as
# the method they vary, so each draw gives a paired difference (results/README.md, "Small-data details"). Name:
# "<method>:<change>" -> the flags added after that method's (the later flag wins). Not among them: setfit's
# class-balanced pairs (its sampler's own default).
DETAILS = {
    "finetune-small:no-warmup": ["--warmup_steps", "0"],
    "finetune-small:lr-5e-5": ["--learning_rate", "5e-5"],  # HF's default learning rate on the small-data schedule
    "finetune-small:lr-2e-5": ["--learning_rate", "2e-5"],
    # trained to a near-zero loss on a few rows, finetune-small is sure of every answer (SST-2 dev log loss 1.2-1.5,
    # CoLA 1.6-2.4, ECE 0.25-0.47): SetFit's head gets 0.1 for the same reason (textcls/train/method.py)
    "finetune-small:smooth-0.1": ["--label_smoothing_factor", "0.1"],
    "setfit:head-lr-1e-3": ["--learning_rate", "1e-3"],
    "setfit:body-lr-5e-5": ["--setfit_learning_rate", "5e-5"],  # the contrastive phase's (setfit's 2e-5)
    # pairs per text and kind: 32 gives the setfit library's own pair count at 64 rows per class of two classes
    # (every pair, 8,192 of 128 texts), where our bound (20, the SetFit paper's) gives 5,120
    "setfit:pairs-32": ["--setfit_num_iterations", "32"],
    # Evaluating during training and keeping the best checkpoint needs a validation split apart from the dev set the
    # curve scores on (a choice made on it would be scored on itself), and a user with N rows per class has only
    # those: so this holds out a quarter of each class of the draw (held_out_split), evaluates on it every tenth of
    # the training (by its loss: a few rows give accuracy in coarse steps), trains on the rest for the same steps,
    # keeps the best checkpoint, and is scored on the dev set as a test split (predict_*, dev_values).
    "finetune-small:best-of-held-out": [
        "--eval_strategy",
        "steps",
        "--eval_steps",
        "0.1",
        "--save_strategy",
        "steps",
        "--save_steps",
        "0.1",
        "--save_total_limit",
        "1",
        "--load_best_model_at_end",
        "true",
        "--metric_for_best_model",
        "loss",
        "--do_predict",
    ],  # fmt: skip
}
HELD_OUT = {"finetune-small:best-of-held-out"}  # the details that train on 3/4 of the draw and choose on 1/4
METHODS |= {name: [*METHODS[name.split(":")[0]], *flags] for name, flags in DETAILS.items()}
LIBRARY = "setfit library defaults"  # the record's flags of setfit-library
STEPS_FROM = {
    "finetune-small",
    "head",
    "lora",
    "setfit",
    "setfit-finetune",
}  # the methods whose length is max(MIN_STEPS, 3 epochs) (and their details)


AUTO_CANDIDATES = ("finetune", "finetune-small", "setfit")  # --method auto's choices, cheapest first
TIE = 0.5  # points of the metric: a method must win by more than this over a cheaper one to be chosen
MIN_DRAWS = 3  # a size counts for the crossover once every candidate has this many draws there, on every task


def crossovers(records: list[dict]) -> dict:
    """Which method --method auto takes at each measured size, from learning-curve records: at each size measured by
    every candidate (at least MIN_DRAWS draws) on every task, each candidate's score is the mean over the tasks of its
    median over the draws (x100); the winner is the best, unless a cheaper candidate is within TIE of it. A size some
    task lacks decides nothing yet: the tasks disagree (SST-2 alone would have put SetFit at 64 rows per class, where
    CoLA and stsb-source put small-data fine-tuning ahead). Returns {"winners": {size: method}, "scores": {size:
    {method: score}}}."""
    import statistics

    scores: dict[int, dict[str, list[float]]] = {}
    for record in records:
        metric = record["metric"]
        cell: dict[tuple, list[float]] = {}
        for r in record["runs"]:
            cell.setdefault((r["per_class"], r["method"]), []).append(100 * r[metric])
        for size in sorted({r["per_class"] for r in record["runs"]}):
            if all(len(cell.get((size, m), [])) >= MIN_DRAWS for m in AUTO_CANDIDATES):
                for m in AUTO_CANDIDATES:
                    scores.setdefault(size, {}).setdefault(m, []).append(statistics.median(cell[(size, m)]))
    every = {size: by for size, by in scores.items() if all(len(v) == len(records) for v in by.values())}
    counted = {size: {m: statistics.mean(v) for m, v in by.items()} for size, by in sorted(every.items())}
    winners = {}
    for size, by in counted.items():
        best = max(by.values())
        winners[size] = next(m for m in AUTO_CANDIDATES if by[m] >= best - TIE)
    return {"winners": winners, "scores": counted}


# auto-cv: would --method auto pick better by cross-validating its candidates on the user's own rows than by the
# training set's size? One size threshold cannot serve SST-2 (SetFit ahead at 32 and 64 rows per class) and CoLA
# (small-data fine-tuning ahead) both. Measured here before it is built into --method auto: each candidate is
# cross-validated on the draw alone (CV_FOLDS folds, stratified, run_classification.py --cross_validate; the dev set
# is not seen), scored on its pooled out-of-fold predictions (a fold of 16 rows gives accuracy and MCC in coarse
# steps), and picked as --auto_select cross_validation picks (textcls.train.method.decide: the size rule's pick
# unless the other is ahead on CV_CONFIDENCE of paired resamples of the rows); the pick's own run on the draw gives
# the dev score, and the cross-validation's wall time is the price of the choice.
AUTO_CV = "auto-cv"
CV_CANDIDATES = auto.CV_CANDIDATES
CV_FOLDS = auto.CV_FOLDS
# (with the candidates' flags and the rule: where one changes, auto-cv's runs are superseded with its runs)
AUTO_CV_FLAGS = (
    f"by {CV_FOLDS}-fold cross-validation on the draw, the size rule's pick unless the other is ahead on "
    f"{auto.CV_CONFIDENCE:.0%} of {auto.CV_RESAMPLES} paired resamples of its rows, of "
    + "; ".join(f"{m} {' '.join(METHODS[m])}" for m in CV_CANDIDATES)
)


def cv_pick(args, record: dict, per_class: int, d: int, train: str, dev: str, folder: str, rows: int,
            metric: str) -> dict:  # fmt: skip
    """auto-cv on one draw (see AUTO_CV_FLAGS): the candidates' pooled out-of-fold scores, the pick, and the pick's
    own run on the draw (the record must have both candidates' runs there: it is their dev score that counts)."""
    ran = {r["method"]: r for r in record["runs"] if (r["per_class"], r["draw"]) == (per_class, d)}
    missing = [m for m in CV_CANDIDATES if m not in ran]
    if missing:
        raise SystemExit(
            f"auto-cv at {per_class} rows per class, draw {d}, is scored by its pick's own run on the "
            f"draw: run {' '.join(missing)} there first (--methods {' '.join(CV_CANDIDATES)} auto-cv)"
        )
    rule = auto.pick(per_class)
    if rule not in CV_CANDIDATES:
        raise SystemExit(f"auto-cv at {per_class} rows per class: the size rule picks {rule} there, and "
                         "--auto_select cross_validation compares nothing")  # fmt: skip
    out = os.path.join(folder, f"{AUTO_CV}-{per_class}-{d}")
    oof = {name: os.path.join(out, name, "oof_predictions.jsonl") for name in CV_CANDIDATES}
    earlier = reusable_cv(record, per_class, d, oof, metric)
    if earlier:  # the same cross-validation, picked by today's rule
        scores, provenance_ = earlier["cv"], {k: earlier[k] for k in earlier if k in PROVENANCE}
        provenance_["cv_reused"] = True
    else:
        scores, wall, load = {}, 0.0, os.getloadavg()[0]
        for name in CV_CANDIDATES:
            shutil.rmtree(os.path.join(out, name), ignore_errors=True)  # a stopped one's: timed whole, from the start
            argv = method_argv(name, args.model, train, dev, os.path.join(out, name), rows, d, args.max_seq_length,
                               metric)  # fmt: skip
            # the folds' held-out rows are what it chooses on: no evaluation on the dev set
            argv += ["--cross_validate", str(CV_FOLDS), "--do_eval", "false"]
            wall += run_logged(argv, os.path.join(folder, "runs.log"))
            scores[name] = out_of_fold_scores(oof[name], metric)
            if not args.keep_models:
                prune_run(os.path.join(out, name))
        provenance_ = provenance(wall, load)
    names = sorted(record_labels(oof[rule]))
    confidence = {m: auto.lead_confidence(oof[rule], oof[m], names, metric) for m in CV_CANDIDATES if m != rule}
    picked = auto.decide(rule, {m: scores[m][metric] for m in CV_CANDIDATES}, confidence)
    chosen = ran[picked]
    values = {k: chosen[k] for k in (metric, "log_loss", "ece") if k in chosen}
    return {"method": AUTO_CV, "train_rows": rows, "picked": picked, "size_rule": rule, "cv": scores,
            "confidence": confidence, "folds": CV_FOLDS, **values, **provenance_}  # fmt: skip


def record_labels(path: str) -> set:
    with open(path, encoding="utf-8") as f:
        return {str(json.loads(line)["gold"]) for line in f}


def reusable_cv(record: dict, per_class: int, d: int, oof: dict, metric: str) -> dict | None:
    """An earlier auto-cv run of this draw (superseded when the rule changed) whose cross-validation is still in
    its folder: its out-of-fold scores, recomputed from the files, equal the ones it recorded. Re-picking from it
    costs no training; its wall time and provenance are the cross-validation's own."""
    if not all(os.path.isfile(p) for p in oof.values()):
        return None
    found = {name: out_of_fold_scores(p, metric) for name, p in oof.items()}
    for r in record.get("superseded", []):
        if r["method"] == AUTO_CV and (r["per_class"], r["draw"]) == (per_class, d) and r.get("cv") == found:
            return r
    return None


def out_of_fold_scores(path: str, metric: str) -> dict:
    """{metric, "log_loss"} of a cross-validation's out-of-fold predictions, pooled over its folds."""
    from textcls.evaluation.metrics import probability_metrics

    with open(path, encoding="utf-8") as f:
        classes = sorted(json.loads(f.readline())["probabilities"])
    logits, gold, predicted = auto.read_logits(path, classes)
    loss = probability_metrics(logits, gold, "single_label_classification")
    return {metric: score(metric, gold.tolist(), predicted.tolist()), "log_loss": loss.metrics["log_loss"]}


LIBRARY_MAX_STEPS = 5_000  # ~4 h a run here (3 s a step, one thread): the setfit library beyond it is not run


def library_steps(labels: list[str], batch: int = 16) -> int:
    """The setfit library's steps with its defaults on texts of these labels: its oversampling trains on twice the
    larger of its same-class and other-class pair lists (every two texts once, a text with itself too), so n²."""
    from collections import Counter

    n = len(labels)
    same = sum(k * (k + 1) // 2 for k in Counter(labels).values())
    return math.ceil(2 * max(same, n * (n + 1) // 2 - same) / batch)


def training_steps(rows: int, batch: int = SCHEDULE["per_device_train_batch_size"], epochs: int = 3) -> int:
    return max(MIN_STEPS, math.ceil(epochs * rows / batch))


def draw(labels: list[str], per_class: int, seed: int) -> list[int]:
    """Row positions of `per_class` rows of each class (all of a class that has fewer), in input order. The order
    within a class is seeded by (seed, class) alone, so draw `seed` at N is the first N of draw `seed` at 2N."""
    chosen = []
    for name in sorted(set(labels)):
        rows = [i for i, label in enumerate(labels) if label == name]
        random.Random(f"{seed}-{name}").shuffle(rows)
        chosen += rows[:per_class]
    return sorted(chosen)


def stsb_source_rows(glue_dir: str) -> tuple[list[dict], list[dict]]:
    """stsb-source's (training rows, dev rows): the first sentence of every STS-B pair from the four sources, labelled
    with its source; a sentence seen before in the split, or (for dev) in train, is left out (case-insensitive), so
    no dev sentence was trained on. From the GLUE files of 2026: 4,727 training rows, 885 dev rows (MSRpar 250,
    headlines 234, images 213, MSRvid 188)."""
    seen, splits = set(), []
    for name in ("train", "dev"):
        with open(os.path.join(glue_dir, "STS-B", f"{name}.tsv"), encoding="utf-8", newline="") as f:
            lines = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
            header = next(lines)
            rows = []
            for line in lines:
                row = dict(zip(header, line, strict=True))  # every STS-B line has its ten fields
                key = row["sentence1"].strip().lower()
                if row["filename"] in STSB_SOURCES and key not in seen:
                    seen.add(key)
                    rows.append({"sentence": row["sentence1"].strip(), "label": row["filename"]})
        splits.append(rows)
    return splits[0], splits[1]


def task_rows(task: str, glue_dir: str) -> tuple[list[dict], list[dict]]:
    """(training rows, dev rows) of a task as {"sentence", "label"} with the label's name."""
    if task == "stsb-source":
        return stsb_source_rows(glue_dir)
    spec = GLUE_TASKS[task]
    raw = load_glue_dir(task, os.path.join(glue_dir, spec.dir_name))
    names = spec.label_names
    return tuple(
        [{"sentence": r[spec.text_column], "label": names[int(r["label"])]} for r in raw[split]]
        for split in ("train", "validation")
    )


# The full training set, once per task (issue 39: "reusing results/ where a run exists"): the leaderboard's records of
# the task on the same model and dev set (our tuned recipe and the HF README settings, medians over their seeds);
# a task without them gets one run of finetune (the defaults, what --method auto runs past its measured sizes) on
# every training row, seed 1.
FULL_FROM = {
    task: (f"results/glue/{task}/all-MiniLM-L6-v2.json", f"results/glue/{task}/all-MiniLM-L6-v2_hf-readme.json")
    for task in ("sst2", "cola")
}


def reused_full(task: str, model: str, metric: str, train_rows: int) -> list[dict]:
    """The full-set entries of a task from its leaderboard records (FULL_FROM), [] where they are missing or of
    another model (then the curve runs its own)."""
    entries = []
    for path in FULL_FROM.get(task, ()):
        if not os.path.isfile(os.path.join(ROOT, path)):
            return []
        with open(os.path.join(ROOT, path), encoding="utf-8") as f:
            record = json.load(f)
        with open(os.path.join(ROOT, record["recipe"]), encoding="utf-8") as f:
            recipe = json.load(f)
        summary = record["summary"].get(f"eval_{metric}")
        if recipe["model_name_or_path"] != model or not summary:
            return []
        entries.append({
            "label": "the HF README settings" if path.endswith("_hf-readme.json") else "our tuned recipe",
            "source": path, "recipe": record["recipe"], "config_sha256": record["config_sha256"],
            "train_rows": train_rows, metric: summary["median"], "values": summary["values"],
        })  # fmt: skip
    return entries


def read_csv(path: str) -> list[dict]:
    with open(path, encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def score(metric: str, gold: list, predicted: list) -> float:
    from sklearn.metrics import accuracy_score, matthews_corrcoef

    return float((accuracy_score if metric == "accuracy" else matthews_corrcoef)(gold, predicted))


def setfit_library(model: str, train: str, dev: str, metric: str, seed: int, out: str) -> None:
    """The peer: the setfit library with its defaults, nothing of this repository in the way. Writes {metric} to
    out/setfit_library.json. Its checkpoints go under out (its default is ./checkpoints, wherever it is started)."""
    from datasets import Dataset
    from setfit import SetFitModel, Trainer, TrainingArguments

    from textcls.model.build import resolve_model_path  # a packaged hub id -> its installed folder (offline)

    train_rows, dev_rows = read_csv(train), read_csv(dev)
    data = Dataset.from_dict({"text": [r["sentence"] for r in train_rows], "label": [r["label"] for r in train_rows]})
    trainer = Trainer(
        model=SetFitModel.from_pretrained(resolve_model_path(model)),
        args=TrainingArguments(
            output_dir=os.path.join(out, "checkpoints"), seed=seed, show_progress_bar=False, report_to="none"
        ),  # fmt: skip
        train_dataset=data,
    )
    trainer.train()
    texts, gold = [r["sentence"] for r in dev_rows], [r["label"] for r in dev_rows]
    predicted = [str(p) for p in trainer.model.predict(texts, batch_size=64)]
    probs = np.asarray(trainer.model.predict_proba(texts, batch_size=64, as_numpy=True), dtype=float)
    classes = [str(c) for c in trainer.model.model_head.classes_]  # predict_proba's columns, in this order
    values = {metric: score(metric, gold, predicted), **calibration(probs, [classes.index(g) for g in gold])}
    write_json_atomic(os.path.join(out, "setfit_library.json"), values)


def calibration(probs, gold: list[int]) -> dict:
    """Dev log loss and ECE of the setfit library's probabilities, computed by the code that gives
    run_classification.py's eval_log_loss and eval_ece (its probabilities are the softmax of their logs)."""
    from textcls.evaluation.metrics import probability_metrics

    logits = np.log(np.clip(np.asarray(probs, dtype=float), 1e-12, None))
    metrics = probability_metrics(logits, np.asarray(gold), "single_label_classification").metrics
    return {"log_loss": metrics["log_loss"], "ece": metrics["ece"]}


def method_argv(method: str, model: str, train: str, dev: str, out: str, rows: int, seed: int, length: int,
                metric: str) -> list:  # fmt: skip
    if METHODS[method] is None:
        peer = [os.path.abspath(__file__), "setfit-library", model, train, dev]
        return [*peer, "--metric", metric, "--seed", str(seed), "--out", out]
    steps = ["--max_steps", str(training_steps(rows))] if method.split(":")[0] in STEPS_FROM else []
    data = ["--train_file", train, "--validation_file", dev, "--output_dir", out, "--seed", str(seed)]
    if method in HELD_OUT:  # the same steps as the whole draw's run; the dev set scored as a test split
        fit, held = held_out_split(train)
        data = ["--train_file", fit, "--validation_file", held, "--test_file", dev, *data[4:]]
    if metric != "accuracy":  # --task_name adds the task's own metric (CoLA's Matthews correlation) on csv files
        data += ["--task_name", {v: k for k, v in METRIC.items()}[metric]]
    return [os.path.join(ROOT, "run_classification.py"), "--model", model, *data, "--max_seq_length", str(length),
            *COMMON, *METHODS[method], *steps]  # fmt: skip


def held_out_split(train: str) -> tuple[str, str]:
    """A draw's CSV -> (its rows to train on, its rows to choose a checkpoint on), beside it: every fourth row of each
    class (the 4th, 8th, ...; the last of a class of 2-3 rows) is held out, the rest keep their order."""
    with open(train, encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    seen: dict[str, int] = {}
    fit, held = [], []
    for row in rows:
        seen[row["label"]] = seen.get(row["label"], 0) + 1
        (held if seen[row["label"]] % 4 == 0 else fit).append(row)
    for label, count in seen.items():
        if 1 < count < 4:  # a class of 2-3 rows: its last row is held out (a class of one row trains on it)
            last = max(i for i, r in enumerate(fit) if r["label"] == label)
            held.append(fit.pop(last))
    stem = os.path.splitext(train)[0]
    return write_csv(f"{stem}-fit.csv", fit), write_csv(f"{stem}-held-out.csv", held)


def dev_values(method: str, out: str, metric: str) -> dict:
    """The run's dev {metric, "log_loss", "ece"} (the last two where the run measured them) and the precision it
    trained in (ours: bf16 training steps by default on a CPU with AMX, "bf16_training"; the library: fp32, "no").
    A held-out detail's evaluation split is its held-out rows: its dev scores are its test split's (predict_*)."""
    name = "setfit_library.json" if METHODS[method] is None else "all_results.json"
    with open(os.path.join(out, name), encoding="utf-8") as f:
        values = json.load(f)
    prefix = "" if METHODS[method] is None else "predict_" if method in HELD_OUT else "eval_"
    found = {k: values[prefix + k] for k in (metric, "log_loss", "ece") if prefix + k in values}
    found |= {"mixed_precision": values.get("mixed_precision", "no")}
    if "setfit_contrastive_precision" in values:  # recorded since 2026-12-07: before, the phase was always fp32
        found["setfit_contrastive_precision"] = values["setfit_contrastive_precision"]
    return found


def same_flags(a: str, b: str) -> bool:
    """Two methods' flags (as the record keeps them: one string) make the same run of run_classification.py: they
    parse to the same arguments. The setfit library's "setfit library defaults" equals only itself."""
    if a == b:
        return True
    if LIBRARY in (a, b) or AUTO_CV_FLAGS in (a, b):  # words, not flags: equal only to themselves
        return False
    from textcls.config.args import parse_args

    parse = lambda flags: parse_args(["--model", "m", "--output_dir", "o", *flags.split()])  # noqa: E731
    x, y = parse(a), parse(b)
    return (x.training, x.data, x.model, x.lora) == (y.training, y.data, y.model, y.lora)


def load_record(path: str, fresh: dict) -> dict:
    if not os.path.isfile(path):
        return fresh
    with open(path, encoding="utf-8") as f:
        record = json.load(f)
    if record["model"] != fresh["model"] or record["validation_rows"] != fresh["validation_rows"]:
        raise SystemExit(f"{path} holds another model or dev set; move it away or pass another --out")
    # A method whose flags changed since its runs (an auto setting measured anew): its runs no longer say what the
    # method does now. They move to "superseded", with the flags they ran with, and run again; a record whose
    # runs were kept under the new flags would report numbers nobody measured. Flags are compared as the script
    # parses them (1e-4 is 0.0001, --method finetune is the default), and a superseded run whose flags are the
    # method's again comes back.
    old, fresh_flags = record["methods"], fresh["methods"]
    changed = sorted(m for m, flags in fresh_flags.items() if m in old and not same_flags(old[m], flags))
    back = [r for r in record.get("superseded", []) if same_flags(r["flags"], fresh_flags.get(r["method"], LIBRARY))]
    moved = [{**r, "flags": old[r["method"]]} for r in record["runs"] if r["method"] in changed]
    record["superseded"] = [r for r in record.get("superseded", []) if r not in back] + moved
    record["runs"] = [r for r in record["runs"] if r["method"] not in changed] + [
        {k: v for k, v in r.items() if k != "flags"} for r in back]  # fmt: skip
    if changed:
        record["not_run"] = [r for r in record.get("not_run", []) if r["method"] not in changed]
        print(f"{path}: the flags of {', '.join(changed)} changed since their runs: {len(moved)} runs moved to "
              "'superseded', to run again", flush=True)  # fmt: skip
    if back:
        print(f"{path}: {len(back)} superseded runs ran with their method's flags as they are now: back", flush=True)
    if not record["superseded"]:
        record.pop("superseded")
    record["methods"] = {**old, **fresh["methods"]}
    return record


def curve(args) -> int:
    os.makedirs(args.out, exist_ok=True)
    for task in args.tasks:
        metric = METRIC[task]
        train_rows, dev_rows = task_rows(task, args.glue_dir)
        labels = [r["label"] for r in train_rows]
        folder = os.path.join(args.work, task)
        os.makedirs(folder, exist_ok=True)
        dev = write_csv(os.path.join(folder, "dev.csv"), dev_rows)
        path = os.path.join(args.out, f"{task}.json")
        record = load_record(path, {
            "benchmark": "learning-curve", "task": task, "model": args.model, "metric": metric,
            "validation_rows": len(dev_rows), "max_seq_length": args.max_seq_length, "min_steps": MIN_STEPS,
            "methods": {m: (LIBRARY if f is None else " ".join(f)) for m, f in METHODS.items()} | {
                AUTO_CV: AUTO_CV_FLAGS},  # fmt: skip
            "common_flags": " ".join(COMMON), "draws": {}, "runs": [],
        })  # fmt: skip
        record["command"] = command_line("learning_curve.py", sys.argv[1:])
        done = {(r["per_class"], r["draw"], r["method"]) for r in record["runs"] + record.get("not_run", [])}
        for per_class in args.per_class:
            for d in range(1, args.draws + 1):
                rows = draw(labels, per_class, d)
                record["draws"].setdefault(str(per_class), {})[str(d)] = rows
                train = write_csv(os.path.join(folder, f"train-{per_class}-{d}.csv"), [train_rows[i] for i in rows])
                for method in args.methods:
                    if (per_class, d, method) in done:
                        continue
                    steps = library_steps([labels[i] for i in rows]) if method == "setfit-library" else 0
                    if steps > LIBRARY_MAX_STEPS:  # recorded as not run, with why, rather than days of CPU
                        record.setdefault("not_run", []).append({
                            "per_class": per_class, "draw": d, "method": method, "steps": steps,
                            "reason": f"setfit's default pairs every two texts: {steps:,} steps of 16 pairs "
                                      f"(more than {LIBRARY_MAX_STEPS:,})",
                        })  # fmt: skip
                        write_json_atomic(path, record)
                        done.add((per_class, d, method))
                        continue
                    if method == AUTO_CV:
                        run = cv_pick(args, record, per_class, d, train, dev, folder, len(rows), metric)
                    else:
                        out = os.path.join(folder, f"{method}-{per_class}-{d}")
                        run = run_method(method, args, train, dev, out, len(rows), d, metric)
                    record["runs"].append({"per_class": per_class, "draw": d, **run})
                    record["environment"] = environment()
                    write_json_atomic(path, record)
                    done.add((per_class, d, method))
                    print(f"{task} {per_class}/class draw {d} {method}: {metric} {run[metric]:.4f} "
                          f"({run['wall_s']:.0f} s)", flush=True)  # fmt: skip
        # last: with a model the leaderboard has no record of, it trains on every row (hours on SST-2)
        if args.full and not record.get("full"):
            record["full"] = reused_full(task, args.model, metric, len(train_rows))
            if not record["full"]:
                train = write_csv(os.path.join(folder, "train-full.csv"), train_rows)
                run = run_method("finetune", args, train, dev, os.path.join(folder, "finetune-full"),
                                 len(train_rows), 1, metric)  # fmt: skip
                record["full"] = [{"label": "finetune (the defaults), every training row, seed 1", **run}]
            record["environment"] = environment()
            write_json_atomic(path, record)
            print(f"{task} full training set: " + "; ".join(f"{e['label']} {e[metric]:.4f}" for e in record["full"]))
    return 0


def run_method(method: str, args, train: str, dev: str, out: str, rows: int, seed: int, metric: str) -> dict:
    """One run of a method on a training CSV, in a process of its own: its dev values, timing and provenance."""
    argv = method_argv(method, args.model, train, dev, out, rows, seed, args.max_seq_length, metric)
    load = os.getloadavg()[0]
    wall = run_logged(argv, os.path.join(os.path.dirname(out), "runs.log"))
    values = dev_values(method, out, metric)
    if not args.keep_models:
        prune_run(out)
    return {"method": method, "train_rows": rows, **values, **provenance(wall, load)}


PROVENANCE = ("wall_s", "load_1m_at_start", "omp_num_threads", "date", "cpu_flags", "git_sha", "git_dirty")


def provenance(wall: float, load: float) -> dict:
    """A run's wall seconds and where and how it ran: its CPU, the load when it started, threads, date, commit."""
    return {
        "wall_s": round(wall, 1), "load_1m_at_start": round(load, 2),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "date": datetime.date.today().isoformat(), "cpu_flags": cpu_flags(), **git_state(),
    }  # fmt: skip


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["setfit-library"]:
        p = argparse.ArgumentParser(prog="learning_curve.py setfit-library")
        p.add_argument("model")
        p.add_argument("train")
        p.add_argument("dev")
        p.add_argument("--metric", choices=sorted(set(METRIC.values())), required=True)
        p.add_argument("--seed", type=int, default=1)
        p.add_argument("--out", required=True)
        a = p.parse_args(argv[1:])
        os.makedirs(a.out, exist_ok=True)
        setfit_library(a.model, a.train, a.dev, a.metric, a.seed, a.out)
        return 0
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--glue_dir", required=True, help="the GLUE root (../shared/data/glue)")
    p.add_argument("--tasks", nargs="+", default=["sst2", "stsb-source", "cola"], choices=sorted(METRIC))
    p.add_argument("--per_class", nargs="+", type=int, default=[8, 16, 32, 64, 256, 1024])
    p.add_argument("--draws", type=int, default=5)
    p.add_argument("--full", action=argparse.BooleanOptionalAction, default=True,
                   help="the full training set once per task (FULL_FROM's leaderboard records where they exist, "
                        "else one finetune run on every row); --no-full leaves it out")  # fmt: skip
    details = f"default: the curve's; also the small-data details (one setting changed): {', '.join(DETAILS)}"
    details += f"; and {AUTO_CV}: {AUTO_CV_FLAGS} (after its candidates' runs)"
    # (argparse %-formats help: the rule's "90%" is doubled, not changed in AUTO_CV_FLAGS, which records compare)
    p.add_argument("--methods", nargs="+", default=CURVE, choices=[*METHODS, AUTO_CV], help=details.replace("%", "%%"))
    p.add_argument("--model", default=MODEL)
    p.add_argument("--max_seq_length", type=int, default=128)
    p.add_argument("--work", default=os.path.join(ROOT, "outputs", "learning-curve"), help="run folders")
    p.add_argument("--keep_models", action="store_true",
                   help="keep each run's weights and checkpoints (default: removed once its values are recorded, "
                        "87-350 MB a run; its reports stay)")  # fmt: skip
    p.add_argument("--out", default=os.path.join(ROOT, "results", "small-data"))
    return curve(p.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
