import json
import math
import sys
import types

import numpy as np
import pytest
from sklearn.metrics import f1_score

from textcls.errors import UserError
from textcls.evaluation.metrics import (
    PROBABILITY_METRICS,
    PROBLEM_TYPES,
    classification_report,
    compute_hub_metric,
    compute_metrics,
    load_hub_metric,
    primary_metric,
)

SINGLE, MULTI, REGRESSION = PROBLEM_TYPES


def decisions(metrics: dict) -> dict:
    """The metrics of the predicted classes (the probabilities' own are tested in test_eval_report.py)."""
    return {k: v for k, v in metrics.items() if k not in PROBABILITY_METRICS}


def logits_for(class_ids, num_labels):
    """Logits whose argmax is class_ids (with noise so argmax is not trivially the first column)."""
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(len(class_ids), num_labels))
    logits[np.arange(len(class_ids)), class_ids] += 10
    return logits


def multi_hot_logits(multi_hot):
    return np.where(np.asarray(multi_hot) == 1, 2.0, -2.0)


# gold / predicted for 3 classes; per class (P, R, F1): 0 (1/2, 1/2, 1/2), 1 (2/3, 1, 4/5), 2 (1, 1/2, 2/3)
GOLD3 = np.array([0, 0, 1, 1, 2, 2])
PRED3 = np.array([0, 1, 1, 1, 2, 0])
MACRO_F1_3 = (1 / 2 + 4 / 5 + 2 / 3) / 3

# binary: tp=4, fn=1, tn=2, fp=1
GOLD2 = np.array([1, 1, 1, 0, 0, 1, 0, 1])
PRED2 = np.array([1, 0, 1, 0, 1, 1, 0, 1])

MULTI_GOLD = np.array([[1, 0, 1], [0, 1, 0], [1, 1, 0], [0, 0, 0]], dtype=float)
MULTI_PRED = np.array([[1, 0, 0], [0, 1, 0], [1, 1, 1], [0, 0, 0]])


def test_single_label_accuracy_and_macro_f1():
    metrics = decisions(compute_metrics(logits_for(PRED3, 3), GOLD3, SINGLE))
    assert metrics == pytest.approx({"accuracy": 4 / 6, "macro_f1": MACRO_F1_3})
    assert metrics["macro_f1"] == pytest.approx(f1_score(GOLD3, PRED3, average="macro"))
    assert all(type(v) is float for v in metrics.values())


def test_cola_adds_matthews_correlation_by_formula():
    tp, tn, fp, fn = 4, 2, 1, 1
    mcc = (tp * tn - fp * fn) / math.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))  # 7 / 15
    metrics = compute_metrics(logits_for(PRED2, 2), GOLD2, SINGLE, task_name="cola")
    assert metrics["matthews_correlation"] == pytest.approx(mcc)
    assert metrics["matthews_correlation"] == pytest.approx(7 / 15)
    assert "f1" not in metrics


@pytest.mark.parametrize("task", ["mrpc", "qqp", "MRPC"])
def test_mrpc_qqp_f1_is_of_positive_class(task):
    metrics = compute_metrics(logits_for(PRED2, 2), GOLD2, SINGLE, task_name=task)
    # class 1: P = 4/5, R = 4/5; class 0 would give 2/3
    assert metrics["f1"] == pytest.approx(4 / 5)
    assert metrics["accuracy"] == pytest.approx(6 / 8)
    assert "matthews_correlation" not in metrics


def test_f1_only_for_mrpc_qqp():
    metrics = compute_metrics(logits_for(PRED2, 2), GOLD2, SINGLE, task_name="sst2")
    assert set(decisions(metrics)) == {"accuracy", "macro_f1"}


def test_stsb_regression():
    pred = np.array([[1.0], [2.0], [3.0], [4.0]])
    gold = np.array([1.0, 3.0, 2.0, 10.0])
    # pearson: cov 13, sum of squares 5 and 50; spearman: ranks 1 2 3 4 vs 1 3 2 4 -> 1 - 6 * 2 / (4 * 15)
    pearson, spearman = 13 / math.sqrt(5 * 50), 1 - 6 * 2 / (4 * 15)
    metrics = compute_metrics(pred, gold, REGRESSION, task_name="stsb")
    assert metrics == pytest.approx(
        {"pearson": pearson, "spearmanr": spearman, "mse": 38 / 4, "combined_score": (pearson + spearman) / 2}
    )
    assert set(compute_metrics(pred.reshape(-1), gold, REGRESSION)) == {"pearson", "spearmanr", "mse"}


def test_multi_label():
    metrics = decisions(compute_metrics(multi_hot_logits(MULTI_PRED), MULTI_GOLD, MULTI))
    # per label F1: 1, 1, 0; micro: tp 4, fp 1, fn 1
    assert metrics == pytest.approx(
        {"micro_f1": 8 / 10, "macro_f1": 2 / 3, "subset_accuracy": 2 / 4, "hamming_accuracy": 10 / 12}
    )


def test_multi_label_threshold_applies_to_sigmoid():
    logits = np.array([[0.3, -2.0]])  # sigmoid(0.3) ~ 0.574
    gold = np.array([[1.0, 0.0]])
    assert compute_metrics(logits, gold, MULTI)["subset_accuracy"] == 1.0
    assert compute_metrics(logits, gold, MULTI, multi_label_threshold=0.6)["subset_accuracy"] == 0.0


def test_macro_f1_skips_classes_neither_gold_nor_predicted():
    logits = np.hstack([multi_hot_logits(MULTI_PRED), np.full((4, 1), -2.0)])
    gold = np.hstack([MULTI_GOLD, np.zeros((4, 1))])
    assert compute_metrics(logits, gold, MULTI)["macro_f1"] == pytest.approx(2 / 3)
    assert compute_metrics(logits_for(PRED3, 5), GOLD3, SINGLE)["macro_f1"] == pytest.approx(MACRO_F1_3)


def test_unlabelled_rows_are_excluded():
    expected = compute_metrics(logits_for(PRED3, 3), GOLD3, SINGLE)
    logits = np.vstack([logits_for(PRED3, 3), logits_for([0, 1], 3)])
    assert compute_metrics(logits, np.append(GOLD3, [-1, -100]), SINGLE) == pytest.approx(expected)

    gold = np.vstack([MULTI_GOLD, [np.nan, 1, 0], [-1, -1, -1]])
    logits = np.vstack([multi_hot_logits(MULTI_PRED), multi_hot_logits([[0, 0, 1], [1, 1, 1]])])
    assert compute_metrics(logits, gold, MULTI)["subset_accuracy"] == pytest.approx(2 / 4)

    metrics = compute_metrics(np.array([1.0, 2.0, 3.0, 50.0]), np.array([1.0, 2.0, 3.0, np.nan]), REGRESSION)
    assert metrics["mse"] == 0.0


@pytest.mark.parametrize(
    "problem_type, predictions, labels",
    [
        (SINGLE, logits_for([0, 1], 2), [-1, -1]),
        (MULTI, np.zeros((2, 2)), np.full((2, 2), np.nan)),
        (REGRESSION, np.array([1.0, 2.0]), np.array([np.nan, np.nan])),
    ],
)
def test_all_unlabelled_returns_empty(problem_type, predictions, labels):
    assert compute_metrics(predictions, np.asarray(labels), problem_type) == {}
    assert compute_hub_metric(None, predictions, np.asarray(labels), problem_type) == {}
    if problem_type != REGRESSION:
        assert classification_report(predictions, np.asarray(labels), ["a", "b"], problem_type) == {}


@pytest.mark.filterwarnings("error")
def test_constant_predictions_give_zero_not_nan():
    metrics = compute_metrics(np.full(4, 2.5), np.array([1.0, 2.0, 3.0, 4.0]), REGRESSION, task_name="stsb")
    assert metrics["pearson"] == 0.0 and metrics["spearmanr"] == 0.0 and metrics["combined_score"] == 0.0
    assert metrics["mse"] == pytest.approx((1.5**2 + 0.5**2) * 2 / 4)
    assert compute_metrics(np.array([2.0]), np.array([1.0]), REGRESSION)["pearson"] == 0.0

    metrics = compute_metrics(logits_for([1, 1, 1, 1], 2), np.array([0, 1, 0, 1]), SINGLE, task_name="cola")
    assert metrics["matthews_correlation"] == 0.0


def test_classification_report_confusion_matrix_orientation():
    report = classification_report(logits_for(PRED3, 3), GOLD3, ["a", "b", "c"], SINGLE)
    # gold a was predicted a and b; gold c was predicted c and a; nothing gold b was predicted a
    assert report["confusion_matrix"] == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
    assert report["labels"] == ["a", "b", "c"]
    assert report["per_class"]["b"] == pytest.approx({"precision": 2 / 3, "recall": 1.0, "f1": 4 / 5, "support": 2})
    assert report["accuracy"] == pytest.approx(4 / 6)
    assert report["macro_f1"] == pytest.approx(MACRO_F1_3)
    assert report["weighted_f1"] == pytest.approx(MACRO_F1_3)  # equal supports
    json.dumps(report)


def test_classification_report_keeps_class_absent_from_eval_set():
    names = ["neg", "neu", "pos"]
    report = classification_report(logits_for([0, 2, 2, 2], 3), np.array([0, 0, 2, 2]), names, SINGLE)
    assert report["per_class"]["neu"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    assert report["confusion_matrix"] == [[1, 0, 1], [0, 0, 0], [0, 0, 2]]
    # neg F1 2/3, pos F1 4/5; neu (never gold, never predicted) is left out of the average, as in compute_metrics
    assert report["macro_f1"] == pytest.approx((2 / 3 + 4 / 5) / 2)
    json.dumps(report)


def test_classification_report_multi_label():
    report = classification_report(multi_hot_logits(MULTI_PRED), MULTI_GOLD, ["x", "y", "z"], MULTI)
    assert "confusion_matrix" not in report and "accuracy" not in report
    assert report["per_class"]["z"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}
    assert report["per_class"]["x"]["support"] == 2
    assert report["macro_f1"] == pytest.approx(2 / 3)
    assert report["weighted_f1"] == pytest.approx((2 + 2 + 0) / 5)
    json.dumps(report)


def test_classification_report_rejects_regression():
    with pytest.raises(ValueError, match="regression"):
        classification_report(np.zeros(2), np.zeros(2), ["a"], REGRESSION)


def test_shape_mismatches_raise():
    with pytest.raises(ValueError, match="label names"):
        compute_metrics(logits_for(PRED3, 3), GOLD3, SINGLE, label_names=["a", "b"])
    with pytest.raises(ValueError, match="out of range"):
        compute_metrics(logits_for([0, 1], 2), np.array([0, 2]), SINGLE)
    with pytest.raises(ValueError, match="problem_type"):
        compute_metrics(logits_for([0, 1], 2), np.array([0, 1]), "classification")


@pytest.mark.parametrize(
    "problem_type, task, expected",
    [
        (SINGLE, "cola", "matthews_correlation"),
        (SINGLE, "CoLA", "matthews_correlation"),
        (SINGLE, "mrpc", "f1"),
        (SINGLE, "qqp", "f1"),
        (REGRESSION, "stsb", "pearson"),
        (SINGLE, "sst2", "accuracy"),
        (SINGLE, "mnli", "accuracy"),
        (SINGLE, None, "accuracy"),
        (REGRESSION, None, "pearson"),
        (MULTI, None, "micro_f1"),
    ],
)
def test_primary_metric(problem_type, task, expected):
    assert primary_metric(problem_type, task) == expected


@pytest.mark.parametrize("task", [None, "cola", "mrpc", "qqp", "stsb", "sst2"])
@pytest.mark.parametrize("problem_type", PROBLEM_TYPES)
def test_primary_metric_is_always_computed(problem_type, task):
    if problem_type == REGRESSION:
        predictions, labels = np.array([1.0, 2.0, 3.0]), np.array([1.0, 3.0, 2.0])
    elif problem_type == MULTI:
        predictions, labels = multi_hot_logits(MULTI_PRED), MULTI_GOLD
    else:
        predictions, labels = logits_for(PRED2, 2), GOLD2
    assert primary_metric(problem_type, task) in compute_metrics(predictions, labels, problem_type, task)


def test_load_hub_metric_offline_raises_user_error(monkeypatch):
    def offline_load(name):
        raise ConnectionError("Couldn't reach the Hugging Face Hub")

    monkeypatch.setitem(sys.modules, "evaluate", types.SimpleNamespace(load=offline_load))
    with pytest.raises(UserError) as excinfo:
        load_hub_metric("glue")
    message = str(excinfo.value)
    assert "'glue'" in message and "Hub" in message
    assert "offline metrics are computed anyway" in message
    assert "local path" in message and "HF_HUB_OFFLINE" in message
    assert isinstance(excinfo.value.__cause__, ConnectionError)


def test_load_hub_metric_returns_the_metric(monkeypatch):
    metric = object()
    monkeypatch.setitem(sys.modules, "evaluate", types.SimpleNamespace(load=lambda name: metric))
    assert load_hub_metric("accuracy") is metric


class FakeMetric:
    def __init__(self, result):
        self.result = result
        self.calls = []

    def compute(self, predictions, references):
        self.calls.append((predictions, references))
        return self.result


def test_compute_hub_metric_single_label():
    metric = FakeMetric(
        {"accuracy": np.float64(0.5), "scores": {"f1": 1}, "per_class": np.array([0.25, 0.75]), "version": "1.0"}
    )
    result = compute_hub_metric(metric, logits_for([1, 0, 1], 2), np.array([1, -1, 0]), SINGLE)
    assert metric.calls == [([1, 1], [1, 0])]
    assert result == {"accuracy": 0.5, "scores_f1": 1.0, "per_class_0": 0.25, "per_class_1": 0.75}
    assert all(type(v) is float for v in result.values())


def test_compute_hub_metric_regression_and_multi_label():
    metric = FakeMetric({"pearson": 1.0})
    compute_hub_metric(metric, np.array([[0.5], [1.5]]), np.array([1.0, np.nan]), REGRESSION)
    assert metric.calls == [([0.5], [1.0])]

    metric = FakeMetric({"f1": 1.0})
    compute_hub_metric(metric, multi_hot_logits([[1, 0]]), np.array([[1.0, 0.0]]), MULTI)
    assert metric.calls == [([[1, 0]], [[1, 0]])]


@pytest.mark.parametrize(
    "problem_type, task",
    [
        ("single_label_classification", None),
        ("single_label_classification", "cola"),
        ("single_label_classification", "mrpc"),
        ("multi_label_classification", None),
        ("regression", None),
        ("regression", "stsb"),
    ],
)
def test_metric_names_hold_the_primary_metric(problem_type, task):
    """--metric_for_best_model is checked against metric_names; the default (the primary metric) must pass."""
    from textcls.evaluation.metrics import metric_names, primary_metric

    names = metric_names(problem_type, task, 3)
    assert primary_metric(problem_type, task) in names
    assert ("matthews_correlation" in names) == (task == "cola") and ("combined_score" in names) == (task == "stsb")


def test_a_report_of_many_classes_keeps_the_confusion_cells_that_count():
    """3,000 classes wrote a dense 3,000 x 3,000 matrix (81 MB of zeros): past DENSE_CONFUSION_CLASSES, the non-zero
    cells, most frequent first."""
    from textcls.evaluation.metrics import DENSE_CONFUSION_CLASSES

    n = DENSE_CONFUSION_CLASSES + 1
    names = [f"c{i}" for i in range(n)]
    gold = np.array([0, 0, 0, 1, 2])
    logits = np.eye(n)[[0, 0, 1, 1, 0]]
    report = classification_report(logits, gold, names, "single_label_classification")
    assert "confusion_matrix" not in report
    assert report["confusion_pairs"] == [["c0", "c0", 2], ["c0", "c1", 1], ["c1", "c1", 1], ["c2", "c0", 1]]
