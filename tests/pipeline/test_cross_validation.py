"""--cross_validate K, --find_label_issues, --exclude_rows on a tiny BERT: each fold an ordinary run, out-of-fold
predictions from the model that did not see the row, in input order; label issues through cleanlab; resume at the
fold that was training; one clear error for bad input before any training."""

import json
import signal

import pytest

import run_classification as R
from tests.helpers import TRAIN_FLAGS, sentiment_rows, write_rows
from textcls.train.resume import GracefulStop

K = 3


def cv_argv(model, folder, *flags, rows=None):
    rows = rows if rows is not None else sentiment_rows(30, 0)
    train = write_rows(folder / "train.jsonl", rows)
    dev = write_rows(folder / "dev.csv", sentiment_rows(12, 1))
    argv = ["--model_name_or_path", str(model), "--output_dir", str(folder / "out"), *TRAIN_FLAGS]
    return argv + ["--train_file", train, "--validation_file", dev, "--do_train", "--do_eval", *flags]


def read_jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def cv_run(tiny_bert, tmp_path_factory):
    folder = tmp_path_factory.mktemp("cv")
    argv = cv_argv(tiny_bert, folder, "--cross_validate", str(K), "--find_label_issues", "--cross_validate_refit")
    results = R.main(argv)
    return folder, argv, results


def test_folds_are_disjoint_cover_every_row_once_and_oof_is_in_input_order(cv_run):
    folder, _, results = cv_run
    out = folder / "out"
    heldout = [
        json.loads((out / "folds" / f"fold-{k}" / "cv_fold.json").read_text())["heldout_rows"] for k in range(K)
    ]
    assert sorted(sum(heldout, [])) == list(range(30))
    oof = read_jsonl(out / "oof_predictions.jsonl")
    assert [r["row"] for r in oof] == list(range(30)) and [r["id"] for r in oof] == list(range(30))
    given = {r["id"]: r for r in sentiment_rows(30, 0)}
    for r in oof:
        assert r["row"] in heldout[r["fold"]]  # predicted by the fold that held it out
        assert r["text"] == given[r["id"]]["sentence"] and r["gold"] == str(given[r["id"]]["label"])
        assert set(r["probabilities"]) == {"0", "1"}


def test_each_fold_trained_on_the_other_folds_rows_only(cv_run):
    folder, _, _ = cv_run
    for k in range(K):
        fold = folder / "out" / "folds" / f"fold-{k}"
        held = json.loads((fold / "cv_fold.json").read_text())["heldout_rows"]
        assert json.loads((fold / "train_results.json").read_text())["train_samples"] == 30 - len(held)
        predicted = read_jsonl(fold / "predictions_cv_heldout.jsonl")
        assert [r["id"] for r in predicted] == held  # the sentiment rows' id column is their position
        assert not (fold / "onnx").exists()


def test_cv_results_report_and_returned_metrics(cv_run):
    folder, _, results = cv_run
    out = folder / "out"
    summary = json.loads((out / "cv_results.json").read_text())
    accuracies = [f["predict_cv_heldout_accuracy"] for f in summary["folds"]]
    assert results["cv_accuracy"] == pytest.approx(sum(accuracies) / K)
    assert summary["summary"]["predict_cv_heldout_accuracy"]["min"] == min(accuracies)
    assert results["cv_accuracy_std"] >= 0 and "eval_accuracy" in summary["summary"]
    report = (out / "cv_report.md").read_text()
    assert "# Cross-validation: 3 folds, 30 training rows" in report and "## Label issues" in report
    assert (out / "refit" / "model.safetensors").is_file() and summary["refit"]["train_samples"] == 30


def test_label_issues_are_cleanlabs_ranking_of_the_out_of_fold_probabilities(cv_run):
    import numpy as np
    from cleanlab.filter import find_label_issues

    folder, _, results = cv_run
    out = folder / "out"
    oof = read_jsonl(out / "oof_predictions.jsonl")
    probs = np.array([[r["probabilities"]["0"], r["probabilities"]["1"]] for r in oof])
    given = np.array([int(r["gold"]) for r in oof])
    expected = find_label_issues(given, probs, return_indices_ranked_by="self_confidence")
    issues = read_jsonl(out / "label_issues.jsonl")
    assert [r["row"] for r in issues] == [int(i) for i in expected]
    assert results["label_issues"] == len(expected)
    for r in issues:
        assert r["given"] == oof[r["row"]]["gold"] and r["suggested"] in ("0", "1") and "label_quality" in r


def test_find_label_issues_alone_reranks_without_training(cv_run):
    folder, argv, _ = cv_run
    out = folder / "out"
    weights = {p: p.stat().st_mtime_ns for p in out.rglob("model.safetensors")}
    (out / "label_issues.jsonl").unlink()
    results = R.main(["--output_dir", str(out), "--find_label_issues", "--model", argv[1]])
    assert (out / "label_issues.jsonl").is_file() and "label_issues" in results
    assert {p: p.stat().st_mtime_ns for p in out.rglob("model.safetensors")} == weights
    assert "# Cross-validation: 3 folds" in (out / "cv_report.md").read_text()


def test_the_same_command_resumes_at_the_fold_that_was_stopped(tiny_bert, tmp_path, monkeypatch):
    """SIGTERM in fold 1 at step 2: fold 0 finished, fold 1 holds a checkpoint. The same command then evaluates
    fold 0's saved model (nothing retrained) and resumes fold 1 from step 2."""
    original = GracefulStop.on_step_end

    def stop_in_fold_1(self, args, state, control, **kwargs):
        if state.global_step == 2 and args.output_dir.endswith("fold-1"):
            signal.raise_signal(signal.SIGTERM)
        return original(self, args, state, control, **kwargs)

    monkeypatch.setattr(GracefulStop, "on_step_end", stop_in_fold_1)
    argv = cv_argv(tiny_bert, tmp_path, "--cross_validate", "2")
    assert R.cli(argv) != 0
    fold0 = tmp_path / "out" / "folds" / "fold-0"
    stamp = (fold0 / "model.safetensors").stat().st_mtime_ns
    assert (tmp_path / "out" / "folds" / "fold-1" / "checkpoint-2").is_dir()
    monkeypatch.setattr(GracefulStop, "on_step_end", original)
    results = R.main(argv)
    assert (fold0 / "model.safetensors").stat().st_mtime_ns == stamp
    resumed = json.loads((tmp_path / "out" / "folds" / "fold-1" / "train_results.json").read_text())
    assert resumed["resumed_from_step"] == 2
    assert len(read_jsonl(tmp_path / "out" / "oof_predictions.jsonl")) == 30 and "cv_accuracy" in results


def test_exclude_rows_removes_exactly_the_listed_ids(tiny_bert, tmp_path):
    """Ids from a reviewed label_issues.jsonl (JSON lines with "id"); without an id column, ids are positions."""
    rows = [{k: v for k, v in r.items() if k != "id"} for r in sentiment_rows(30, 0)]
    listed = tmp_path / "drop.jsonl"
    listed.write_text("\n".join(json.dumps({"id": i, "text": "x"}) for i in (0, 7, 29)) + "\n")
    results = R.main(cv_argv(tiny_bert, tmp_path, "--exclude_rows", str(listed), rows=rows))
    assert results["train_samples"] == 27 and results["train_excluded_rows"] == 3
    assert "3 training rows were left out" in (tmp_path / "out" / "README.md").read_text()


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--cross_validate", "1"], "cross-validation needs at least 2 folds"),
        (["--cross_validate", "40"], "fewer than the folds"),
        (["--cross_validate", "3", "--do_train", "false"], "trains 3 models: add --do_train"),
        (["--find_label_issues"], "add --cross_validate 5"),
        (["--cross_validate_refit"], "add --cross_validate 5"),
        (["--exclude_rows", "MISSING"], "no such file"),
        (["--exclude_rows", "UNKNOWN"], "names 2 rows the training split does not have (e.g. 30, 99)"),
    ],
)
def test_bad_input_is_one_error_before_any_training(tiny_bert, tmp_path, capsys, flags, message):
    (tmp_path / "unknown.txt").write_text("3\n30\n99\n")
    paths = {"MISSING": str(tmp_path / "none.txt"), "UNKNOWN": str(tmp_path / "unknown.txt")}
    flags = [paths.get(f, f) for f in flags]
    assert R.cli(cv_argv(tiny_bert, tmp_path, *flags)) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1
    assert not list((tmp_path).rglob("model.safetensors"))


def test_a_class_with_fewer_rows_than_folds_names_the_class(tiny_bert, tmp_path, capsys):
    rows = sentiment_rows(30, 0)
    for r in rows[:2]:
        r["label"] = 2  # two rows of a third class
    assert R.cli(cv_argv(tiny_bert, tmp_path, "--cross_validate", "3", rows=rows)) == 2
    assert "class '2' has 2 training rows, fewer than the folds" in capsys.readouterr().err


def test_multi_label_folds_and_label_issues_go_through_cleanlabs_multi_label_path(tiny_bert, tmp_path):
    rows = [{**r, "label": (["pos"] if r["label"] else []) + (["x"] if r["id"] % 3 == 0 else [])}
            for r in sentiment_rows(30, 0)]  # fmt: skip
    argv = cv_argv(tiny_bert, tmp_path, "--cross_validate", "3", "--find_label_issues", rows=rows)
    argv = [a for a in argv if a not in ("--do_eval", "--validation_file") and not a.endswith("dev.csv")]
    results = R.main(argv)
    assert "cv_subset_accuracy" in results and results["label_issues"] > 0
    issues = read_jsonl(tmp_path / "out" / "label_issues.jsonl")
    assert all(isinstance(r["given"], list) and isinstance(r["suggested"], list) for r in issues)
    summary = json.loads((tmp_path / "out" / "label_issues_summary.json").read_text())
    assert set(summary["per_class"]) == {"pos", "x"} and summary["label_issues"] == len(issues)
