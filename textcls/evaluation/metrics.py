"""Evaluation metrics computed offline with scikit-learn / scipy.

``evaluate.load`` fetches metric code from the Hub, which machines without network cannot reach, so the standard
GLUE-style metrics are computed here; hub metrics are an optional extra (``load_hub_metric``).
"""

from dataclasses import dataclass

import numpy as np
from scipy.special import expit
from scipy.stats import pearsonr, spearmanr
from sklearn.metrics import (
    average_precision_score,
    confusion_matrix,
    f1_score,
    log_loss,
    matthews_corrcoef,
    precision_recall_curve,
    precision_recall_fscore_support,
    roc_auc_score,
)

from textcls.errors import UserError
from textcls.evaluation.calibration import scale

PROBLEM_TYPES = ("single_label_classification", "multi_label_classification", "regression")

# Mirrors the GLUE leaderboard; any other task falls back to the problem type's default.
_TASK_PRIMARY = {"single_label_classification": {"cola": "matthews_correlation", "mrpc": "f1", "qqp": "f1"}}
_DEFAULT_PRIMARY = {
    "single_label_classification": "accuracy",
    "multi_label_classification": "micro_f1",
    "regression": "pearson",
}


def _check_problem_type(problem_type: str) -> None:
    if problem_type not in PROBLEM_TYPES:
        raise ValueError(f"problem_type must be one of {PROBLEM_TYPES}, got {problem_type!r}")


def _labelled(predictions, label_ids, problem_type: str, threshold: float, num_labels: int | None = None):
    """(gold, predicted) for the labelled rows: class ids, multi-hot bool matrices, or float vectors (regression)."""
    _check_problem_type(problem_type)
    predictions = np.asarray(predictions)
    label_ids = np.asarray(label_ids, dtype=float)
    if problem_type == "regression":
        pred, gold = predictions.astype(float).reshape(-1), label_ids.reshape(-1)
        if pred.shape != gold.shape:
            raise ValueError(f"regression predictions {predictions.shape} do not match labels {label_ids.shape}")
        keep = ~np.isnan(gold)
        return gold[keep], pred[keep]

    if predictions.ndim != 2:
        raise ValueError(f"expected logits of shape (n, num_labels), got {predictions.shape}")
    if num_labels is not None and predictions.shape[1] != num_labels:
        raise ValueError(f"logits have {predictions.shape[1]} columns but there are {num_labels} label names")
    if problem_type == "multi_label_classification":
        if label_ids.shape != predictions.shape:
            raise ValueError(f"multi-label logits {predictions.shape} do not match labels {label_ids.shape}")
        # -1 marks unlabelled rows in GLUE-style test splits, -100 is torch's ignore index and Trainer's padding.
        keep = ~(np.isnan(label_ids) | (label_ids < 0)).any(axis=1)
        # Rounds soft / label-smoothed targets to the class they stand for.
        return label_ids[keep] >= 0.5, expit(predictions[keep].astype(float)) >= threshold

    gold = label_ids.reshape(-1)
    if gold.shape[0] != predictions.shape[0]:
        raise ValueError(f"{predictions.shape[0]} predictions but {gold.shape[0]} labels")
    keep = ~(np.isnan(gold) | (gold < 0))
    gold = gold[keep].astype(int)
    if gold.size and gold.max() >= predictions.shape[1]:
        raise ValueError(f"label id {gold.max()} is out of range for {predictions.shape[1]} logit columns")
    return gold, predictions[keep].argmax(axis=1)


def _per_class(gold: np.ndarray, pred: np.ndarray, num_labels: int):
    """Per-class precision, recall, F1, support over all classes, and the macro F1.

    Macro F1 averages only classes seen in the gold labels or the predictions (sklearn's default label set), so a
    class absent from a small eval set and never predicted does not pull the average down with a 0.
    """
    precision, recall, f1, support = precision_recall_fscore_support(
        gold, pred, labels=range(num_labels), zero_division=0
    )
    predicted = pred.sum(axis=0) if pred.ndim == 2 else np.bincount(pred, minlength=num_labels)
    seen = (support > 0) | (predicted > 0)
    macro_f1 = float(f1[seen].mean()) if seen.any() else 0.0
    return precision, recall, f1, support, macro_f1


def _correlation(func, x: np.ndarray, y: np.ndarray) -> float:
    # Undefined for constant inputs (scipy returns NaN and warns); 0.0 = "no linear relation", as sklearn's MCC does.
    if x.size < 2 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return 0.0
    return float(func(x, y).statistic)


def compute_metrics(
    predictions: np.ndarray,
    label_ids: np.ndarray,
    problem_type: str,
    task_name: str | None = None,
    label_names: list[str] | None = None,
    multi_label_threshold=0.5,
) -> dict[str, float]:
    """Flat dict of floats (Trainer prefixes the keys with ``eval_``); {} when no row is labelled.

    ``predictions`` are raw model outputs: logits (n, num_labels), or (n,) / (n, 1) for regression. Rows labelled -1
    / -100 (classification) or NaN are unlabelled and skipped. ``label_names``, when given, must match the number of
    logit columns. ``task_name`` adds the GLUE task's own metric: cola matthews_correlation, mrpc/qqp f1 (of class
    1), stsb combined_score.
    """
    task = task_name.lower() if task_name else None
    num_labels = len(label_names) if label_names is not None and problem_type != "regression" else None
    gold, pred = _labelled(predictions, label_ids, problem_type, multi_label_threshold, num_labels)
    if gold.shape[0] == 0:
        return {}

    if problem_type == "regression":
        metrics = {
            "pearson": _correlation(pearsonr, pred, gold),
            "spearmanr": _correlation(spearmanr, pred, gold),
            "mse": float(np.mean((pred - gold) ** 2)),
        }
        if task == "stsb":
            metrics["combined_score"] = (metrics["pearson"] + metrics["spearmanr"]) / 2
        return metrics

    _, _, f1, _, macro_f1 = _per_class(gold, pred, np.asarray(predictions).shape[1])
    scores = probability_metrics(predictions, label_ids, problem_type).metrics
    if problem_type == "multi_label_classification":
        return {
            "micro_f1": float(f1_score(gold, pred, average="micro", zero_division=0)),
            "macro_f1": macro_f1,
            "subset_accuracy": float((gold == pred).all(axis=1).mean()),
            "hamming_accuracy": float((gold == pred).mean()),
            **scores,
        }

    metrics = {"accuracy": float((gold == pred).mean()), "macro_f1": macro_f1}
    if task == "cola":
        metrics["matthews_correlation"] = float(matthews_corrcoef(gold, pred))
    if task in ("mrpc", "qqp"):
        metrics["f1"] = float(f1[1])
    return metrics | scores


ECE_BINS = 15
# the keys probability_metrics adds to compute_metrics: they score the probabilities, not the decisions
PROBABILITY_METRICS = (
    "roc_auc",
    "roc_auc_weighted",
    "average_precision",
    "average_precision_weighted",
    "log_loss",
    "ece",
)


@dataclass
class ProbabilityMetrics:
    """What the predicted probabilities score, beyond the decisions: `metrics` (flat floats), `per_class` (class
    index -> {roc_auc, average_precision}) and `undefined` (metric name -> why it is left out)."""

    metrics: dict
    per_class: dict
    undefined: dict


def probabilities(logits: np.ndarray, problem_type: str) -> np.ndarray:
    """Softmax over classes (single-label) or each label's sigmoid (multi-label), in float64."""
    logits = np.asarray(logits, dtype=np.float64)
    if problem_type == "multi_label_classification":
        return expit(logits)
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def labelled_probabilities(predictions, label_ids, problem_type: str):
    """(probabilities, one-hot or multi-hot truth, indices of the labelled rows) of a classification's rows;
    unlabelled rows (-1, -100, NaN) are left out."""
    predictions = np.asarray(predictions)
    label_ids = np.asarray(label_ids, dtype=float)
    if problem_type == "multi_label_classification":
        keep = np.flatnonzero(~(np.isnan(label_ids) | (label_ids < 0)).any(axis=1))
        hot = (label_ids[keep] >= 0.5).astype(int)
    else:
        flat = label_ids.reshape(-1)
        keep = np.flatnonzero(~(np.isnan(flat) | (flat < 0)))
        hot = np.eye(predictions.shape[1], dtype=int)[flat[keep].astype(int)]
    return probabilities(predictions[keep], problem_type), hot, keep


def confidence_and_correct(probs: np.ndarray, hot: np.ndarray, problem_type: str):
    """What calibration is measured on: the top class's probability and whether it is right; multi-label, each
    label's decision (at 0.5) and its probability."""
    if problem_type == "multi_label_classification":
        return np.maximum(probs, 1 - probs).reshape(-1), ((probs >= 0.5) == hot).reshape(-1)
    return probs.max(axis=1), probs.argmax(axis=1) == hot.argmax(axis=1)


def confidence_bins(confidence: np.ndarray, bins: int = ECE_BINS) -> np.ndarray:
    """Each row's equal-width bin, 0 to bins - 1 (the first closed on the left)."""
    return np.clip(np.ceil(np.asarray(confidence) * bins).astype(int) - 1, 0, bins - 1)


def expected_calibration_error(confidence: np.ndarray, correct: np.ndarray, bins: int = ECE_BINS) -> float:
    """ECE: over equal-width confidence bins, the row-weighted mean of |accuracy - mean confidence| (Guo et al.
    2017). scikit-learn has calibration_curve but no ECE: these 10 lines, checked in tests against a hand
    computation."""
    confidence, correct = np.asarray(confidence, dtype=float), np.asarray(correct, dtype=float)
    if confidence.size == 0:
        return 0.0
    which = confidence_bins(confidence, bins)
    total = 0.0
    for b in np.unique(which):
        rows = which == b
        total += rows.sum() * abs(correct[rows].mean() - confidence[rows].mean())
    return float(total / confidence.size)


def probability_metrics(predictions, label_ids, problem_type: str) -> ProbabilityMetrics:
    """ROC-AUC, average precision (PR-AUC), log loss and ECE of the labelled rows, by scikit-learn:
    - binary: roc_auc and average_precision of class 1;
    - more classes: one-vs-rest roc_auc / average_precision (macro) and *_weighted (by support), each class's in
      per_class; left out when a class has no row in the split (its curve is undefined);
    - multi-label: the same over labels (a label whose rows are all positive or all negative is left out of the
      macro, and says so); log loss is the mean binary cross-entropy over every (row, label);
    - ece: of the top class's probability against being right (multi-label: each label's decision);
    - regression: none (no probabilities)."""

    if problem_type == "regression":
        return ProbabilityMetrics({}, {}, {"roc_auc": "regression has no class probabilities"})
    probs, hot, _ = labelled_probabilities(predictions, label_ids, problem_type)
    out = ProbabilityMetrics({}, {}, {})
    if len(hot) == 0:
        return out
    classes = probs.shape[1]
    for j in range(classes):
        if 0 < hot[:, j].sum() < len(hot):
            out.per_class[j] = {
                "roc_auc": float(roc_auc_score(hot[:, j], probs[:, j])),
                "average_precision": float(average_precision_score(hot[:, j], probs[:, j])),
            }
    if problem_type == "single_label_classification" and classes == 2:
        if 1 in out.per_class:
            out.metrics["roc_auc"] = out.per_class[1]["roc_auc"]
            out.metrics["average_precision"] = out.per_class[1]["average_precision"]
        else:
            out.undefined["roc_auc"] = "the split holds one class only"
    elif len(out.per_class) == classes:
        support = hot.sum(axis=0)
        for name in ("roc_auc", "average_precision"):
            values = np.array([out.per_class[j][name] for j in range(classes)])
            out.metrics[name] = float(values.mean())
            out.metrics[f"{name}_weighted"] = float((values * support).sum() / support.sum())
    else:
        missing = [j for j in range(classes) if j not in out.per_class]
        what = "has no row" if problem_type == "single_label_classification" else "is all positive or all negative"
        out.undefined["roc_auc"] = f"{len(missing)} class(es) (ids {missing[:10]}) {what} in this split"
    if problem_type == "multi_label_classification":
        out.metrics["log_loss"] = float(log_loss(hot.reshape(-1), probs.reshape(-1), labels=[0, 1]))
    else:
        out.metrics["log_loss"] = float(log_loss(hot.argmax(axis=1), probs, labels=list(range(classes))))
    out.metrics["ece"] = expected_calibration_error(*confidence_and_correct(probs, hot, problem_type))
    return out


def metric_names(problem_type: str, task_name: str | None = None, num_labels: int = 2) -> list[str]:
    """The keys compute_metrics returns for this problem and task, read off a two-row evaluation so that they cannot
    drift from it."""
    num_labels = max(num_labels, 2)
    if problem_type == "regression":
        predictions, labels = np.array([0.0, 1.0]), np.array([0.0, 1.0])
    elif problem_type == "multi_label_classification":  # every label both present and absent
        predictions, labels = np.zeros((2, num_labels)), np.array([[1.0] * num_labels, [0.0] * num_labels])
    else:  # every class present
        predictions, labels = np.eye(num_labels), np.arange(num_labels)
    return list(compute_metrics(predictions, labels, problem_type, task_name))


def primary_metric(problem_type: str, task_name: str | None = None) -> str:
    """Name of the metric for ``metric_for_best_model`` and results tables (a key of ``compute_metrics``)."""
    _check_problem_type(problem_type)
    task = task_name.lower() if task_name else None
    return _TASK_PRIMARY.get(problem_type, {}).get(task, _DEFAULT_PRIMARY[problem_type])


# Above this many classes the confusion matrix is written as its non-zero cells (gold, predicted, count) and not drawn.
DENSE_CONFUSION_CLASSES = 100


def classification_report(
    predictions: np.ndarray,
    label_ids: np.ndarray,
    label_names: list[str],
    problem_type: str,
    multi_label_threshold=0.5,
) -> dict:
    """JSON-serialisable per-class report; {} when no row is labelled.

    Every class in ``label_names`` appears, with zeros when absent from the eval set. Single-label reports add
    accuracy and the confusion matrix (rows = gold, columns = predicted, in ``label_names`` order).
    """
    if problem_type == "regression":
        raise ValueError("classification_report is for classification problems, not regression")
    num_labels = len(label_names)
    gold, pred = _labelled(predictions, label_ids, problem_type, multi_label_threshold, num_labels)
    if gold.shape[0] == 0:
        return {}

    precision, recall, f1, support, macro_f1 = _per_class(gold, pred, num_labels)
    _, _, weighted_f1, _ = precision_recall_fscore_support(
        gold, pred, labels=range(num_labels), average="weighted", zero_division=0
    )
    report = {
        "labels": list(label_names),
        "per_class": {
            name: {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
            for name, p, r, f, s in zip(label_names, precision, recall, f1, support, strict=True)
        },
        "macro_f1": macro_f1,
        "weighted_f1": float(weighted_f1),
    }
    if problem_type == "single_label_classification":
        report["accuracy"] = float((gold == pred).mean())
        if num_labels <= DENSE_CONFUSION_CLASSES:
            report["confusion_matrix"] = confusion_matrix(gold, pred, labels=range(num_labels)).tolist()
        else:  # 3,000 classes made an 81 MB report of zeros: the cells that count, most frequent first
            pairs, counts = np.unique(np.stack([gold, pred], axis=1), axis=0, return_counts=True)
            order = np.argsort(-counts, kind="stable")
            report["confusion_pairs"] = [
                [label_names[int(pairs[i][0])], label_names[int(pairs[i][1])], int(counts[i])] for i in order
            ]
    return report


def load_hub_metric(name: str):
    """``evaluate.load(name)``, turning a failed fetch (typically: no network) into a UserError that says the fix."""
    # Imported here: evaluate pulls in datasets, which is slow and only needed when a hub metric is asked for.
    import evaluate

    try:
        return evaluate.load(name)
    except Exception as err:
        raise UserError(
            f"could not load metric {name!r} from the Hugging Face Hub ({type(err).__name__}: {err}). "
            "The built-in offline metrics are computed anyway. To use this metric, connect to the network, "
            "or download it beforehand and pass its local path, or set HF_HUB_OFFLINE=1 with a cached copy."
        ) from err


def _flatten(result: dict, prefix: str = "") -> dict[str, float]:
    flat = {}
    for key, value in result.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{name}_"))
            continue
        array = np.asarray(value)
        # Strings and other non-numeric entries (e.g. a version tag) are not metrics Trainer can log or compare.
        if array.dtype.kind not in "biuf":
            continue
        if array.size == 1:
            flat[name] = float(array.reshape(()))
        else:
            flat.update({f"{name}_{i}": float(v) for i, v in enumerate(array.reshape(-1))})
    return flat


def compute_hub_metric(
    metric, predictions, label_ids, problem_type: str, multi_label_threshold=0.5
) -> dict[str, float]:
    """Run an ``evaluate`` metric on the labelled rows and flatten its result to floats under the metric's own names.

    It gets class ids (argmax) for single-label, multi-hot rows for multi-label, values for regression.
    """
    gold, pred = _labelled(predictions, label_ids, problem_type, multi_label_threshold)
    if gold.shape[0] == 0:
        return {}
    if problem_type != "regression":
        gold, pred = gold.astype(int), pred.astype(int)
    return _flatten(metric.compute(predictions=pred.tolist(), references=gold.tolist()))


def make_compute_metrics(labels, task_name, threshold, hub_metric=None, temperature=None):
    """Trainer's compute_metrics: the built-in metrics of this problem (and task), plus the hub metric if asked.
    `fn.threshold` (multi-label: one value, or one per label) and `fn.temperature` (the logits are divided by it:
    evaluation.calibration) are read at each call, so the thresholds tuned and the temperature fitted after training
    apply to the splits predicted after them."""

    def fn(eval_pred):
        t = fn.threshold
        logits = scale(eval_pred.predictions, fn.temperature)
        metrics = compute_metrics(logits, eval_pred.label_ids, labels.problem_type, task_name, labels.names, t)
        if hub_metric is not None and metrics:
            metrics.update(compute_hub_metric(hub_metric, logits, eval_pred.label_ids, labels.problem_type, t))
        return metrics

    fn.threshold, fn.temperature = threshold, temperature
    return fn


def tune_thresholds(logits: np.ndarray, label_ids: np.ndarray, start) -> tuple[np.ndarray, list[int]]:
    """--multi_label_threshold tune: for each label, the sigmoid threshold that maximises its F1 on these rows
    (scikit-learn's precision_recall_curve; of equally good ones, the lowest), predicting the label where the sigmoid
    reaches it. The threshold is put halfway between the lowest score it keeps and the next lower score (0 below the
    lowest), not on that score itself: the same rows are kept, and a score that moves by float noise (less than half
    the gap) when the folder predicts again does not flip. Measured: padding the same text into another batch moved a
    tiny model's sigmoid by 1e-9, which flipped 2 of 30 rows' labels with the threshold on a score. A label without a
    positive row here keeps its `start` threshold (its F1 is 0 whatever the threshold); their indices are returned
    too. Unlabelled rows (-1, -100, NaN) are left out."""

    logits = np.asarray(logits, dtype=float)
    label_ids = np.asarray(label_ids, dtype=float)
    keep = ~(np.isnan(label_ids) | (label_ids < 0)).any(axis=1)
    probs, gold = expit(logits[keep]), label_ids[keep] >= 0.5
    thresholds = np.broadcast_to(np.asarray(start, dtype=float), (logits.shape[1],)).copy()
    untuned = []
    for j in range(logits.shape[1]):
        if not gold[:, j].any():
            untuned.append(j)
            continue
        precision, recall, candidates = precision_recall_curve(gold[:, j], probs[:, j])
        precision, recall = precision[:-1], recall[:-1]  # the last point (recall 0) has no threshold
        denominator = precision + recall
        f1 = np.divide(2 * precision * recall, denominator, out=np.zeros_like(denominator), where=denominator > 0)
        best = int(np.argmax(f1))  # candidates are the distinct scores, ascending
        below = candidates[best - 1] if best > 0 else 0.0
        thresholds[j] = (candidates[best] + below) / 2
    return thresholds, untuned
