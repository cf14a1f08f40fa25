"""--find_label_issues: the training rows whose given label is most likely wrong, found by confident learning
(Northcutt et al. 2021) through the cleanlab library, from out-of-fold probabilities (--cross_validate): each row
scored by a model that never saw it. Nothing here re-implements cleanlab: find_label_issues (which rows),
get_label_quality_scores (the ranking score: self-confidence, the probability of the given label) and
rank_classes_by_label_quality (each class's estimated share of wrong labels); multi-label data goes through
cleanlab.multilabel_classification.

Written to output_dir: label_issues.jsonl (ranked: rank, id, row, text, given, suggested, label_quality, fold),
label_issues_summary.json, and the report's section (top 20, per class). A flagged row is a row to review: on small
data most flagged rows are hard rows with the right label (README, Label issues, has the measurement)."""

import json
import logging
import os
from collections import Counter
from dataclasses import dataclass

import numpy as np

from textcls.errors import UserError
from textcls.io import write_json_atomic, write_jsonl_atomic

logger = logging.getLogger(__name__)

ISSUES, SUMMARY = "label_issues.jsonl", "label_issues_summary.json"
TOP = 20  # rows shown in the report


@dataclass(frozen=True)
class Found:
    metrics: dict
    report_lines: list


def read_out_of_fold(path: str, problem_type: str, names: list[str]) -> tuple[list[dict], np.ndarray, list]:
    """The rows of oof_predictions.jsonl, their probabilities (rows x classes, in label order) and given labels
    (class indices; multi-label: lists of them)."""
    if problem_type == "regression":
        raise UserError("--find_label_issues ranks class labels; a regression has none. Drop the flag.")
    rows, probs, given = [], [], []
    index = {name: i for i, name in enumerate(names)}
    with open(path, encoding="utf-8") as f:
        for line in f:
            row = json.loads(line)
            if "gold" not in row:
                raise UserError(f"{path}: row {row.get('row')} has no given label; label issues need them.")
            probs.append([row["probabilities"][n] for n in names])
            if problem_type == "multi_label_classification":
                given.append([index[g] for g in row["gold"]])
            else:
                given.append(index[row["gold"]])
            rows.append({k: row.get(k) for k in ("row", "id", "text", "text_pair", "fold", "gold") if k in row})
    return rows, np.asarray(probs, dtype=float), given


def rank(given, probs: np.ndarray, problem_type: str, names: list[str]) -> tuple[np.ndarray, np.ndarray, dict]:
    """cleanlab's verdict: the flagged rows (indices, most likely wrong first), every row's label quality score,
    and per class its flagged rows and estimated share of wrong labels."""
    if problem_type == "multi_label_classification":
        from cleanlab.multilabel_classification import get_label_quality_scores
        from cleanlab.multilabel_classification.dataset import rank_classes_by_multilabel_quality
        from cleanlab.multilabel_classification.filter import find_label_issues

        flagged = find_label_issues(given, probs, return_indices_ranked_by="self_confidence")
        quality = get_label_quality_scores(given, probs)
        classes = rank_classes_by_multilabel_quality(given, probs, class_names=names)
    else:
        from cleanlab.dataset import rank_classes_by_label_quality
        from cleanlab.filter import find_label_issues
        from cleanlab.rank import get_label_quality_scores

        given = np.asarray(given)
        flagged = find_label_issues(given, probs, return_indices_ranked_by="self_confidence")
        quality = get_label_quality_scores(given, probs, method="self_confidence")
        classes = rank_classes_by_label_quality(given, probs, class_names=names)
    flagged_given = Counter()
    for i in flagged:
        flagged_given.update(given[i] if problem_type == "multi_label_classification" else [given[i]])
    per_class = {
        str(r["Class Name"]): {
            "flagged": flagged_given[names.index(str(r["Class Name"]))],
            "estimated_label_issues": int(r["Label Issues"]),
            "estimated_share_wrong": float(r["Label Noise"]),
            "label_quality": float(r["Label Quality Score"]),
        }
        for r in classes.to_dict("records")
    }
    return np.asarray(flagged, dtype=np.int64), np.asarray(quality, dtype=float), per_class


def find(out: str, oof_path: str, problem_type: str, names: list[str]) -> Found:
    """Rank the label issues of the out-of-fold predictions at oof_path; write label_issues.jsonl and its summary
    into out; return their metrics and the report's section."""
    rows, probs, given = read_out_of_fold(oof_path, problem_type, names)
    flagged, quality, per_class = rank(given, probs, problem_type, names)
    multi = problem_type == "multi_label_classification"

    def suggested(i):
        if multi:
            return [n for n, p in zip(names, probs[i], strict=True) if p >= 0.5]
        return names[int(probs[i].argmax())]

    def issues():
        for r, i in enumerate(flagged, 1):
            row = {k: v for k, v in rows[i].items() if k != "gold"}
            yield {"rank": r, **row, "given": rows[i]["gold"], "suggested": suggested(i),
                   "label_quality": round(float(quality[i]), 6)}  # fmt: skip

    write_jsonl_atomic(os.path.join(out, ISSUES), issues())
    share = len(flagged) / max(len(rows), 1)
    summary = {"rows": len(rows), "label_issues": len(flagged), "share": share, "per_class": per_class,
               "method": "cleanlab find_label_issues (prune_by_noise_rate), ranked by self-confidence"}  # fmt: skip
    write_json_atomic(os.path.join(out, SUMMARY), summary)
    logger.info("label issues: %d of %d training rows flagged (%.1f%%): %s", len(flagged), len(rows), 100 * share,
                os.path.join(out, ISSUES))  # fmt: skip
    lines = [
        "## Label issues",
        "",
        f"cleanlab flagged {len(flagged)} of {len(rows)} training rows ({100 * share:.1f}%) whose given label the "
        "out-of-fold probabilities doubt; ranked most doubtful first in label_issues.jsonl. Review them before "
        "dropping any (--exclude_rows FILE): on small data many are hard rows labelled right.",
        "",
        "| class (given) | flagged rows | estimated share of wrong labels (cleanlab) |",
        "|---|---|---|",
    ]
    for name, c in per_class.items():
        lines.append(f"| {name} | {c['flagged']} | {100 * c['estimated_share_wrong']:.1f}% |")
    lines += ["", f"Top {min(TOP, len(flagged))}:", "", "| rank | id | text | given | suggested | label quality |",
              "|---|---|---|---|---|---|"]  # fmt: skip
    for n, i in enumerate(flagged[:TOP], 1):
        text = str(rows[i].get("text", ""))[:120].replace("|", "\\|").replace("\n", " ")
        lines.append(f"| {n} | {rows[i]['id']} | {text} | {rows[i]['gold']} | {suggested(i)} | {quality[i]:.3f} |")
    metrics = {"label_issues": len(flagged), "label_issues_share": share}
    return Found(metrics, lines + [""])
