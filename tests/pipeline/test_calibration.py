"""--calibrate temperature: fitted on the validation split after training, saved in the model's config, used for every
probability after it (metrics, report, predictions, a later run on the folder), never changing a decision."""

import json

import numpy as np
import pytest

from tests.helpers import run_main, sentiment_rows, write_rows


def read_jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def runs(tiny_bert, tmp_path_factory):
    folder = tmp_path_factory.mktemp("calibration")
    files = {s: write_rows(folder / f"{s}.csv", sentiment_rows(n, i)) for i, (s, n) in enumerate(
        (("train", 48), ("dev", 24), ("test", 9))
    )}  # fmt: skip
    argv = ["--train_file", files["train"], "--validation_file", files["dev"], "--test_file", files["test"]]
    argv += ["--do_train", "--do_eval", "--do_predict", "--num_train_epochs", "3"]
    plain = run_main(tiny_bert, folder / "plain", *argv)
    calibrated = run_main(tiny_bert, folder / "calibrated", *argv, "--calibrate", "temperature", "--plots", "true")
    return folder, files, plain, calibrated


def test_the_temperature_is_fitted_saved_and_lowers_the_log_loss(runs):
    folder, _, plain, calibrated = runs
    t = calibrated["eval_temperature"]
    assert t > 0 and json.loads((folder / "calibrated" / "config.json").read_text())["calibration_temperature"] == t
    assert calibrated["eval_calibrated_log_loss"] <= calibrated["eval_log_loss"] + 1e-9
    assert calibrated["eval_log_loss"] == pytest.approx(plain["eval_log_loss"])  # "before" is the plain model's
    assert "eval_calibrated_ece" in calibrated
    card = (folder / "calibrated" / "README.md").read_text()
    assert f"divide the logits by the temperature {t:.4g}" in card and "`pipeline` does not" in card
    assert "Calibrated" not in (folder / "plain" / "README.md").read_text()
    report = (folder / "calibrated" / "eval_report.md").read_text()
    assert "calibrated_ece" in report and "temperature" in report
    assert (folder / "calibrated" / "plots" / "eval_reliability.png").is_file()


def test_decisions_are_unchanged_and_probabilities_are_the_tempered_ones(runs):
    folder, _, plain, calibrated = runs
    t = calibrated["eval_temperature"]
    assert calibrated["eval_accuracy"] == plain["eval_accuracy"]
    before, after = (
        read_jsonl(folder / "plain" / "predictions.jsonl"),
        read_jsonl(folder / "calibrated" / "predictions.jsonl"),
    )
    assert [r["label"] for r in before] == [r["label"] for r in after]
    for b, a in zip(before, after, strict=True):
        p = np.array([b["probabilities"][k] for k in ("0", "1")]) ** (1 / t)
        # (the file rounds to 6 decimals; the power 1 / t magnifies that rounding)
        assert [a["probabilities"][k] for k in ("0", "1")] == pytest.approx(p / p.sum(), abs=1e-4)


def test_a_later_run_on_the_folder_predicts_with_its_temperature(runs):
    folder, files, _, calibrated = runs
    again = folder / "again"
    run_main(folder / "calibrated", again, "--test_file", files["test"], "--do_predict", "--do_train", "false")
    first = read_jsonl(folder / "calibrated" / "predictions.jsonl")
    assert read_jsonl(again / "predictions.jsonl") == first


def test_a_temperature_given_is_saved_and_predicted_with_as_a_fitted_one(runs, tiny_bert):
    """--calibration_temperature (what --auto_select cross_validation sets from out-of-fold predictions): the same
    training with the calibrated run's temperature given predicts what the calibrated run predicts, and saves it."""
    folder, files, _, calibrated = runs
    t = calibrated["eval_temperature"]
    argv = ["--train_file", files["train"], "--validation_file", files["dev"], "--test_file", files["test"]]
    given = run_main(tiny_bert, folder / "given", *argv, "--do_train", "--do_eval", "--do_predict",
                     "--num_train_epochs", "3", "--calibration_temperature", str(t))  # fmt: skip
    assert json.loads((folder / "given" / "config.json").read_text())["calibration_temperature"] == t
    first = read_jsonl(folder / "calibrated" / "predictions.jsonl")
    assert read_jsonl(folder / "given" / "predictions.jsonl") == first
    assert given["eval_log_loss"] == pytest.approx(calibrated["eval_calibrated_log_loss"])
    assert "eval_temperature" not in given  # nothing fitted
