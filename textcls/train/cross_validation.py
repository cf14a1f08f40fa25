"""--cross_validate K: K ordinary runs of the same command, one per fold, then what they tell together.

Each fold runs in output_dir/folds/fold-k/ as any run does (its own lock, checkpoints, resume, metrics, report):
the command's flags plus --cv_fold k, which makes data.folds hold the fold's rows out of training and predict them
as the test split `cv_heldout`. So the same command after an interruption re-evaluates the finished folds (their saved
models; nothing is trained again) and resumes the fold that was training. Then, in output_dir:

- oof_predictions.jsonl: every training row's prediction by the model that did not see it, in input order ("row" is
  its 0-based position in the training file, "fold" the fold that held it out). The folds' prediction files are
  merged as streams: one row per fold in memory.
- cv_results.json and cv_report.md: each fold's held-out and validation metrics, their mean, sample std, min, max.
- with --find_label_issues, the ranked label issues (evaluation.label_issues).
- with --cross_validate_refit, refit/: an ordinary run on all the training rows (it predicts the test split).

Without --do_train, --find_label_issues re-ranks the out-of-fold predictions already in output_dir."""

import contextlib
import json
import logging
import math
import os

import numpy as np

from textcls.data.folds import FOLD_FILE, HELDOUT
from textcls.errors import UserError
from textcls.evaluation import label_issues
from textcls.io import write_json_atomic, write_jsonl_atomic, write_text_atomic
from textcls.train import run_folder as RF

logger = logging.getLogger(__name__)

FOLDS, REFIT = "folds", "refit"
OOF = "oof_predictions.jsonl"
CV_RESULTS, CV_REPORT = "cv_results.json", "cv_report.md"
_NOT_METRICS = ("_runtime", "_per_second", "_samples", "_steps_per_second")


def drives(args) -> bool:
    """This command is a cross-validation (not one of its folds), or a re-ranking of an earlier one's label issues."""
    data = args.data
    return data.cv_fold is None and (
        data.cross_validate > 0 or (data.find_label_issues and not args.training.do_train)
    )


def read_predictions(path: str, names: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(probabilities, gold, predicted) of a single-label prediction file with gold labels (OOF, or a run's
    predictions.jsonl of a labelled split): probabilities rows x classes in names' order, the classes as indices
    into names, in the file's row order. (--find_label_issues reads OOF itself: multi-label, and its own errors.)"""
    probs, gold, predicted = [], [], []
    with open(path, encoding="utf-8") as f:
        for line in f:
            row = json.loads(line)
            probs.append([row["probabilities"][n] for n in names])
            gold.append(names.index(str(row["gold"])))
            predicted.append(names.index(str(row["label"])))
    return np.asarray(probs, dtype=float).reshape(len(probs), len(names)), np.asarray(gold), np.asarray(predicted)


def fold_dir(out: str, k: int) -> str:
    return os.path.join(out, FOLDS, f"fold-{k}")


def fold_commands(argv: list[str], args) -> list[list[str]]:
    """The command of each fold (and of the refit): this command's flags, later flags overriding earlier ones. A
    fold exports nothing; with a refit, the refit predicts the test split and the folds do not."""
    if not args.training.do_train:
        return []  # --find_label_issues alone: re-rank what is there
    out, data = args.training.output_dir, args.data
    fold_flags = ["--export", "none", "--cross_validate_refit", "false"]
    if data.cross_validate_refit:
        fold_flags += ["--do_predict", "false"]
    commands = [
        [*argv, "--output_dir", fold_dir(out, k), "--cv_fold", str(k), *fold_flags] for k in range(data.cross_validate)
    ]
    if data.cross_validate_refit:
        refit = ["--output_dir", os.path.join(out, REFIT), "--cross_validate", "0", "--cross_validate_refit", "false"]
        refit += ["--find_label_issues", "false"]
        commands.append([*argv, *refit])
    return commands


@contextlib.contextmanager
def hold_folder(args):
    """Lock output_dir for the whole cross-validation (each fold locks its own folder too), refuse a folder of
    someone else's files, and with --overwrite_output_dir (when training) start over there."""
    training = args.training
    out = training.output_dir
    if training.process_index != 0:
        yield
        return
    lock = RF.OutputLock(out).acquire()
    failed = True
    try:
        entries = [n for n in os.listdir(out) if n not in (RF.MARKER, RF.LOCK)]
        if entries and not RF.is_ours(out):
            raise UserError(
                f"output_dir {out} holds files that no run of run_classification.py wrote ({', '.join(entries[:5])}). "
                "Choose another --output_dir for the cross-validation."
            )
        if not training.do_train and not os.path.isfile(os.path.join(out, OOF)):
            raise UserError(
                f"--find_label_issues without --do_train re-ranks the out-of-fold predictions of an earlier "
                f"--cross_validate run, and {out} holds none ({OOF}). Add --do_train --cross_validate 5."
            )
        if training.do_train:
            RF.claim(out, RF.FolderPlan(clear=args.data.overwrite_output_dir and bool(entries)), None)
        failed = False
        yield
    except BaseException:
        failed = True
        raise
    finally:
        lock.release(failed=failed)


def summarise(args) -> dict:
    """After the folds: the out-of-fold predictions merged, cv_results.json and cv_report.md, the label issues. The
    returned metrics: cv_<metric> (the folds' mean on their held-out rows) and cv_<metric>_std, label_issues_*."""
    training = args.training
    if training.process_index != 0:
        return {}
    out = training.output_dir
    config = _fold_config(out)
    results, lines = {}, []
    if training.do_train:
        folds = [_read_json(os.path.join(fold_dir(out, k), FOLD_FILE)) for k in range(args.data.cross_validate)]
        rows = merge_out_of_fold(out, folds)
        summary = fold_metrics(out, len(folds))
        summary["rows"] = rows
        summary["refit"] = (
            _read_json(os.path.join(out, REFIT, "all_results.json")) if args.data.cross_validate_refit else None
        )
        write_json_atomic(os.path.join(out, CV_RESULTS), summary)
        heldout = f"predict_{HELDOUT}_"
        for name, s in summary["summary"].items():
            if name.startswith(heldout):
                results[f"cv_{name[len(heldout) :]}"] = s["mean"]
                results[f"cv_{name[len(heldout) :]}_std"] = s["std"]
        lines += cv_report_lines(summary, args.data.cross_validate)
        logger.info("cross-validation: %s", json.dumps({k: round(v, 4) for k, v in results.items() if v is not None}))
        logger.info("out-of-fold predictions: %s", os.path.join(out, OOF))
    elif os.path.isfile(os.path.join(out, CV_REPORT)):  # a re-ranking keeps the cross-validation's part
        with open(os.path.join(out, CV_REPORT), encoding="utf-8") as f:
            lines += f.read().split("\n## Label issues")[0].rstrip("\n").split("\n") + [""]
    if args.data.find_label_issues:
        found = label_issues.find(out, os.path.join(out, OOF), config.get("problem_type"), _names(config))
        results |= found.metrics
        lines += found.report_lines
    write_text_atomic(os.path.join(out, CV_REPORT), "\n".join(lines) + "\n")
    logger.info("report: %s", os.path.join(out, CV_REPORT))
    return results


def merge_out_of_fold(out: str, folds: list[dict]) -> int:
    """oof_predictions.jsonl from each fold's predictions_cv_heldout.jsonl (written in its held-out rows' input
    order): the files read as streams, one line at a time, in input order. Returns the row count."""
    owner = {}
    for k, fold in enumerate(folds):
        for position in fold["heldout_rows"]:
            owner[position] = k
    files = [
        open(os.path.join(fold_dir(out, k), f"predictions_{HELDOUT}.jsonl"), encoding="utf-8")
        for k in range(len(folds))
    ]

    def rows():
        for position in sorted(owner):
            k = owner[position]
            row = json.loads(files[k].readline())
            if folds[k]["ids_are_positions"]:
                row["id"] = position
            yield {"row": position, "fold": k, **row}

    try:
        write_jsonl_atomic(os.path.join(out, OOF), rows())
    finally:
        for f in files:
            f.close()
    return len(owner)


def fold_metrics(out: str, k: int) -> dict:
    """Each fold's metrics (held-out rows: predict_cv_heldout_*; validation split: eval_*) and, per metric, the
    mean, sample standard deviation, min and max over the folds."""
    per_fold = []
    for i in range(k):
        results = _read_json(os.path.join(fold_dir(out, i), "all_results.json"))
        per_fold.append(
            {
                name: value
                for name, value in results.items()
                if name.startswith((f"predict_{HELDOUT}_", "eval_"))
                and isinstance(value, int | float)
                and not isinstance(value, bool)
                and not name.endswith(_NOT_METRICS)
            }
        )
    names = [n for n in per_fold[0] if all(n in f for f in per_fold)]
    summary = {}
    for name in names:
        values = np.asarray([f[name] for f in per_fold], dtype=float)
        summary[name] = {
            "mean": float(values.mean()),
            "std": float(values.std(ddof=1)) if len(values) > 1 else None,
            "min": float(values.min()),
            "max": float(values.max()),
        }
    return {"folds": per_fold, "summary": summary}


def cv_report_lines(summary: dict, k: int) -> list[str]:
    heldout = f"predict_{HELDOUT}_"
    names = [n for n in summary["summary"] if n.startswith(heldout) and not n.endswith("_loss")]
    lines = [
        f"# Cross-validation: {k} folds, {summary['rows']} training rows",
        "",
        "Each fold's model was trained on the other folds' rows and scored on its own held-out rows. mean ± sample "
        "std over the folds (min-max).",
        "",
        "| metric | " + " | ".join(f"fold {i}" for i in range(k)) + " | mean ± std | min-max |",
        "|---|" + "---|" * (k + 2),
    ]
    for name in names:
        s = summary["summary"][name]
        folds = " | ".join(f"{f[name]:.4f}" for f in summary["folds"])
        std = "" if s["std"] is None or math.isnan(s["std"]) else f" ± {s['std']:.4f}"
        lines.append(f"| {name[len(heldout) :]} | {folds} | {s['mean']:.4f}{std} | {s['min']:.4f}-{s['max']:.4f} |")
    evals = [n for n in summary["summary"] if n.startswith("eval_") and not n.endswith("_loss")]
    if evals:
        lines += [
            "",
            "On the validation split (each fold's model):",
            "",
            "| metric | mean ± std | min-max |",
            "|---|---|---|",
        ]
        for name in evals:
            s = summary["summary"][name]
            std = "" if s["std"] is None else f" ± {s['std']:.4f}"
            lines.append(f"| {name[5:]} | {s['mean']:.4f}{std} | {s['min']:.4f}-{s['max']:.4f} |")
    refit = summary.get("refit")
    if refit:
        shown = ", ".join(
            f"{k[5:]} {v:.4f}"
            for k, v in refit.items()
            if k.startswith("eval_") and isinstance(v, float) and not k.endswith(_NOT_METRICS)
        )
        lines += ["", f"Refit on all {summary['rows']} rows (refit/): {shown or 'no validation split'}."]
    return lines + [""]


def _fold_config(out: str) -> dict:
    path = os.path.join(fold_dir(out, 0), "config.json")
    if not os.path.isfile(path):
        raise UserError(f"{out} holds no finished cross-validation fold ({path}): run it with --cross_validate K.")
    return _read_json(path)


def _names(config: dict) -> list[str]:
    id2label = config.get("id2label") or {}
    return [id2label[str(i)] if str(i) in id2label else id2label[i] for i in range(len(id2label))]


def _read_json(path: str) -> dict:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        raise UserError(f"cross-validation: cannot read {path} ({e}). Run the same command again.") from None
