"""The evaluation a person reads: ROC-AUC, average precision, log loss and ECE against scikit-learn (and a hand
computation) on fixed toy predictions, undefined cases left out with the reason; the pictures, the report's most
confident mistakes, and a drawing failure that leaves the metrics intact."""

import json
import random

import numpy as np
import pytest
from PIL import Image
from sklearn.metrics import average_precision_score, log_loss, roc_auc_score

import run_classification as R
from tests.helpers import TRAIN_FLAGS, sentence, sentiment_rows, write_rows
from textcls.data.labels import Labels
from textcls.evaluation import report as P
from textcls.evaluation.metrics import expected_calibration_error, probabilities, probability_metrics

SINGLE, MULTI = "single_label_classification", "multi_label_classification"
RNG = np.random.default_rng(0)
LOGITS3 = RNG.normal(size=(12, 3))
GOLD3 = np.array([0, 1, 2, 0, 1, 2, 0, 1, 2, 0, 0, 1])


def test_binary_scores_are_scikit_learns():
    logits = RNG.normal(size=(10, 2))
    gold = np.array([0, 1, 1, 0, 1, 0, 0, 1, 1, 1])
    probs = probabilities(logits, SINGLE)
    m = probability_metrics(logits, gold, SINGLE).metrics
    assert m["roc_auc"] == pytest.approx(roc_auc_score(gold, probs[:, 1]))
    assert m["average_precision"] == pytest.approx(average_precision_score(gold, probs[:, 1]))
    assert m["log_loss"] == pytest.approx(log_loss(gold, probs))


def test_multi_class_scores_are_scikit_learns_one_vs_rest():
    probs = probabilities(LOGITS3, SINGLE)
    out = probability_metrics(LOGITS3, GOLD3, SINGLE)
    m = out.metrics
    assert m["roc_auc"] == pytest.approx(roc_auc_score(GOLD3, probs, multi_class="ovr", average="macro"))
    assert m["roc_auc_weighted"] == pytest.approx(roc_auc_score(GOLD3, probs, multi_class="ovr", average="weighted"))
    hot = np.eye(3)[GOLD3]
    assert m["average_precision"] == pytest.approx(average_precision_score(hot, probs, average="macro"))
    assert m["average_precision_weighted"] == pytest.approx(average_precision_score(hot, probs, average="weighted"))
    assert m["log_loss"] == pytest.approx(log_loss(GOLD3, probs))
    assert out.per_class[2]["roc_auc"] == pytest.approx(roc_auc_score(GOLD3 == 2, probs[:, 2]))


def test_multi_label_scores_are_scikit_learns_over_labels():
    logits = RNG.normal(size=(8, 3))
    gold = np.array([[1, 0, 1], [0, 1, 0], [1, 1, 0], [0, 0, 0], [1, 0, 1], [0, 1, 1], [1, 0, 0], [0, 0, 1]])
    probs = probabilities(logits, MULTI)
    m = probability_metrics(logits, gold, MULTI).metrics
    assert m["roc_auc"] == pytest.approx(roc_auc_score(gold, probs, average="macro"))
    assert m["average_precision"] == pytest.approx(average_precision_score(gold, probs, average="macro"))
    bce = -np.mean(gold * np.log(probs) + (1 - gold) * np.log(1 - probs))
    assert m["log_loss"] == pytest.approx(bce)


def test_undefined_scores_are_left_out_with_the_reason():
    absent = probability_metrics(LOGITS3[GOLD3 != 2], GOLD3[GOLD3 != 2], SINGLE)
    assert "roc_auc" not in absent.metrics and "average_precision" not in absent.metrics
    assert "ids [2]" in absent.undefined["roc_auc"] and "has no row" in absent.undefined["roc_auc"]
    assert set(absent.per_class) == {0, 1} and "log_loss" in absent.metrics  # still defined
    regression = probability_metrics(np.array([1.0, 2.0]), np.array([1.0, 2.0]), "regression")
    assert regression.metrics == {} and "regression" in regression.undefined["roc_auc"]
    one_class = probability_metrics(RNG.normal(size=(4, 2)), np.array([1, 1, 1, 1]), SINGLE)
    assert "roc_auc" not in one_class.metrics and one_class.undefined
    assert not any(np.isnan(v) for v in absent.metrics.values())


def test_ece_by_hand():
    # 15 bins of width 1/15: 0.95 and 0.99 share the last bin (accuracy 1/2, confidence 0.97: gap 0.47); 0.6 is
    # alone (right: gap 0.4); 0.05 is alone (wrong: gap 0.05). Weighted by rows: (2 x 0.47 + 0.4 + 0.05) / 4
    confidence = np.array([0.95, 0.99, 0.6, 0.05])
    correct = np.array([1, 0, 1, 0])
    assert expected_calibration_error(confidence, correct) == pytest.approx((2 * 0.47 + 0.4 + 0.05) / 4)


def test_confident_mistakes_come_surest_first():
    logits = np.log(np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7], [0.05, 0.95]]))
    gold = np.array([1, 0, 1, 1, 1])
    labels = Labels(SINGLE, ["neg", "pos"], None)
    mistakes = P.confident_mistakes(logits, gold, labels)
    assert [m["row"] for m in mistakes] == [0, 1, 2]  # wrong at 0.9, 0.8, 0.6
    assert mistakes[0] == {"row": 0, "gold": "pos", "predicted": "neg", "probability": pytest.approx(0.9)}


@pytest.fixture(scope="module")
def run(tiny_bert, tmp_path_factory):
    """A 3-class run that evaluates every epoch and draws everything."""
    tmp = tmp_path_factory.mktemp("report")
    rows = sentiment_rows(60, 0, label_fn=lambda pos: "pos" if pos else "neg")
    rng = random.Random(3)
    for row in rows[::3]:
        row["label"], row["sentence"] = "mixed", sentence(rng, True) + " " + sentence(rng, False)
    path = write_rows(tmp / "train.csv", rows)
    out = tmp / "out"
    argv = ["--model", tiny_bert, "--train_file", path, "--validation_file", path, "--do_train", "--do_eval"]
    argv += ["--output_dir", str(out), *TRAIN_FLAGS, "--plots", "true", "--eval_strategy", "epoch"]
    return out, R.main([*argv, "--num_train_epochs", "2"]), rows


def test_a_run_writes_the_scores_the_pictures_and_the_report(run):
    out, results, rows = run
    for key in ("eval_roc_auc", "eval_roc_auc_weighted", "eval_average_precision", "eval_log_loss", "eval_ece"):
        assert 0 <= results[key] and np.isfinite(results[key]), key
    written = json.loads((out / "eval_results.json").read_text())
    assert written["eval_roc_auc"] == results["eval_roc_auc"]
    report = json.loads((out / "eval_classification_report.json").read_text())
    assert set(report["per_class"]["mixed"]) >= {"roc_auc", "average_precision", "f1"}
    for name in ("eval_confusion_matrix", "eval_roc", "eval_pr", "eval_reliability", "training_curves"):
        with Image.open(out / "plots" / f"{name}.png") as image:
            image.verify()
        with Image.open(out / "plots" / f"{name}.png") as image:
            width, height = image.size
            assert 300 <= width <= 4000 and 300 <= height <= 4000, (name, image.size)
    text = (out / "eval_report.md").read_text()
    assert "![confusion matrix](plots/eval_confusion_matrix.png)" in text and "| roc_auc |" in text
    # the most confident mistakes, surest first, with their texts
    table = text.split("most confident mistakes")[1].splitlines()[4:]
    shown = [float(line.rsplit("|", 2)[1]) for line in table if line.startswith("| ")]
    assert shown == sorted(shown, reverse=True) and len(shown) <= 20
    first = int(table[0].split("|")[1])
    assert rows[first]["sentence"] in table[0]
    card = (out / "README.md").read_text()
    assert "eval_report.md" in card and "plots/eval_confusion_matrix.png" in card


def test_a_picture_that_fails_to_draw_is_a_warning_and_the_metrics_stay(tiny_bert, tmp_path, monkeypatch, capsys):
    def broken(*args, **kwargs):
        raise RuntimeError("no fonts")

    monkeypatch.setattr(P, "confusion_matrix_plot", broken)
    path = write_rows(tmp_path / "t.csv", sentiment_rows(16, 0))
    argv = ["--model", tiny_bert, "--train_file", path, "--validation_file", path, "--do_train", "--do_eval"]
    results = R.main([*argv, "--output_dir", str(tmp_path / "o"), *TRAIN_FLAGS, "--plots", "true"])
    assert "could not draw the confusion matrix (RuntimeError: no fonts)" in capsys.readouterr().out  # the log
    assert json.loads((tmp_path / "o" / "eval_results.json").read_text())["eval_accuracy"] == results["eval_accuracy"]
    assert (tmp_path / "o" / "plots" / "eval_roc.png").exists()
    assert not (tmp_path / "o" / "plots" / "eval_confusion_matrix.png").exists()
    assert "![confusion matrix]" not in (tmp_path / "o" / "eval_report.md").read_text()


def test_plots_false_writes_the_report_without_pictures(tiny_bert, tmp_path):
    path = write_rows(tmp_path / "t.csv", sentiment_rows(16, 0))
    argv = ["--model", tiny_bert, "--train_file", path, "--validation_file", path, "--do_train", "--do_eval"]
    R.main([*argv, "--output_dir", str(tmp_path / "o"), *TRAIN_FLAGS])  # TRAIN_FLAGS: --plots false
    assert not (tmp_path / "o" / "plots").exists()
    assert "most confident mistakes" in (tmp_path / "o" / "eval_report.md").read_text()


def test_confusion_matrix_stays_readable_at_30_classes(tmp_path):
    names = [f"class_with_a_long_name_{i}" for i in range(30)]
    matrix = np.random.default_rng(0).integers(0, 50, size=(30, 30))
    path = P.confusion_matrix_plot(matrix, names, str(tmp_path / "cm.png"))
    with Image.open(path) as image:
        width, height = image.size
    assert width > 1500 and height > 800  # grows with the classes
