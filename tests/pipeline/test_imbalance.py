"""--class_weights: the weights formula, the weighted loss under accumulation, the flag's errors, and a run that
records its weights."""

import json
import random

import datasets
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from sklearn.metrics import f1_score

import run_classification as R
from tests.helpers import TRAIN_FLAGS, run_main, sentence, sentiment_rows, write_rows
from textcls.data.labels import Labels, class_weights
from textcls.errors import UserError
from textcls.train.loss import loss_over_step

SINGLE = Labels("single_label_classification", ["a", "b", "c"], None)


def rows(targets):
    return datasets.Dataset.from_dict({"labels": targets})


def test_balanced_weights_are_scikit_learns_rule():
    weights = class_weights("balanced", SINGLE, rows([0, 0, 0, 0, 0, 0, 1, 1, 2, 2, 2, 2]))
    # rows / (classes x class rows): 12 / (3 x 6), 12 / (3 x 2), 12 / (3 x 4)
    assert weights == pytest.approx({"a": 12 / 18, "b": 12 / 6, "c": 12 / 12})


def test_balanced_multi_label_weights_are_negatives_over_positives():
    multi = Labels("multi_label_classification", ["x", "y"], None)
    hot = [[1.0, 0.0], [1.0, 1.0], [0.0, 0.0], [1.0, 0.0]]
    ds = datasets.Dataset.from_dict(
        {"labels": hot}, features=datasets.Features({"labels": datasets.List(datasets.Value("float32"))})
    )
    assert class_weights("balanced", multi, ds) == pytest.approx({"x": 1 / 3, "y": 3 / 1})


@pytest.mark.parametrize(
    "spec, labels, error",
    [
        ('{"a": 2, "z": 1}', SINGLE, "names 'z', which is not a class. Classes: a, b, c"),
        ('{"a": 0}', SINGLE, "weights must be numbers above 0"),
        ('{"a": "heavy"}', SINGLE, "weights must be numbers above 0"),
        ("heavy", SINGLE, "pass 'balanced' or a JSON map"),
        ("balanced", Labels("regression", None, None), "regression labels have none"),
        ("balanced", SINGLE, "c never occurs in the training data"),
    ],
)
def test_bad_class_weights_are_one_clear_error(spec, labels, error):
    with pytest.raises(UserError, match=error):
        class_weights(spec, labels, rows([0, 1, 1]))


def test_a_partial_map_leaves_the_other_classes_at_1():
    assert class_weights('{"b": 4}', SINGLE, None) == {"a": 1.0, "b": 4.0, "c": 1.0}


def test_the_weighted_loss_over_an_accumulated_step_is_the_weighted_sum_over_its_rows():
    torch.manual_seed(0)
    logits, labels, w = torch.randn(6, 3), torch.tensor([0, 1, 2, 2, 0, 1]), [0.5, 2.0, 1.0]
    kwargs = {"problem_type": "single_label_classification", "smoothing": 0.0, "weights": w}
    # two micro-batches of 4 and 2 rows, the step counting 6
    parts = [loss_over_step({"logits": logits[s]}, labels[s], 6, **kwargs) for s in (slice(0, 4), slice(4, 6))]
    expected = (torch.tensor(w)[labels] * F.cross_entropy(logits, labels, reduction="none")).sum() / 6
    assert sum(parts) == pytest.approx(expected.item())
    # evaluation (no count): the plain mean, unweighted
    assert loss_over_step({"logits": logits}, labels, None, **kwargs) == pytest.approx(
        F.cross_entropy(logits, labels).item()
    )


def run(model, files, out, *extra):
    data = ["--train_file", files["train"], "--validation_file", files["dev"], "--do_train", "--do_eval"]
    return run_main(model, out, *data, *extra)


def test_a_weighted_run_records_its_weights_and_weights_of_1_change_nothing(tiny_bert, tmp_path):
    labelled = lambda pos: "pos" if pos else "neg"  # noqa: E731
    files = {
        "train": write_rows(tmp_path / "train.csv", sentiment_rows(48, 0, labelled)),
        "dev": write_rows(tmp_path / "dev.csv", sentiment_rows(12, 1, labelled)),
    }
    plain = run(tiny_bert, files, tmp_path / "plain")
    ones = run(tiny_bert, files, tmp_path / "ones", "--class_weights", '{"neg": 1, "pos": 1}')
    weighted = run(tiny_bert, files, tmp_path / "balanced", "--class_weights", "balanced")

    def weights(name):
        return load_file(tmp_path / name / "model.safetensors")

    a, b, c = weights("plain"), weights("ones"), weights("balanced")
    assert all(torch.equal(a[k], b[k]) for k in a) and plain["train_loss"] == ones["train_loss"]
    assert not all(torch.equal(a[k], c[k]) for k in a) and weighted["train_loss"] != plain["train_loss"]
    config = json.loads((tmp_path / "balanced" / "config.json").read_text())
    counts = {"neg": 0, "pos": 0}
    for r in sentiment_rows(48, 0, labelled):
        counts[r["label"]] += 1
    assert config["class_weights"] == pytest.approx({k: 48 / (2 * n) for k, n in counts.items()})
    assert "The training loss weighed the classes (balanced): neg" in (tmp_path / "balanced" / "README.md").read_text()


def test_a_bad_map_stops_the_run_before_tokenizing(tiny_bert, tmp_path, capsys, monkeypatch):
    from textcls.data import tokenization

    files = {
        "train": write_rows(tmp_path / "train.csv", sentiment_rows(16, 0)),
        "dev": write_rows(tmp_path / "dev.csv", sentiment_rows(4, 1)),
    }
    monkeypatch.setattr(tokenization, "tokenize_split", lambda *a, **k: pytest.fail("tokenized before the check"))
    argv = ["--model", tiny_bert, "--train_file", files["train"], "--do_train", "--output_dir", str(tmp_path / "o")]
    assert R.cli([*argv, *TRAIN_FLAGS, "--class_weights", '{"2": 3}']) == 2
    assert "--class_weights names '2', which is not a class. Classes: 0, 1" in capsys.readouterr().err
    assert not np.any([p.name == "o" for p in tmp_path.iterdir()])


# ------------------------------------------------------------------------------------------------ early stopping


def evaluated_each_epoch(model, tmp_path, epochs: int, *extra):
    """A run of 32 rows (4 steps an epoch) evaluated and saved each epoch: its trainer_state and evaluations."""
    files = {
        "train": write_rows(tmp_path / "train.csv", sentiment_rows(32, 0)),
        "dev": write_rows(tmp_path / "dev.csv", sentiment_rows(12, 1)),
    }
    flags = list(TRAIN_FLAGS)
    flags[flags.index("--num_train_epochs") + 1] = str(epochs)
    flags[flags.index("--save_strategy") + 1] = "epoch"
    out = tmp_path / "out"
    argv = ["--model", model, "--train_file", files["train"], "--validation_file", files["dev"], "--do_train"]
    R.main([*argv, "--do_eval", "--output_dir", str(out), *flags, "--eval_strategy", "epoch", *extra])
    state = json.loads((out / "trainer_state.json").read_text())
    return out, state, [e for e in state["log_history"] if "eval_loss" in e]


def test_early_stopping_stops_at_patience_and_keeps_the_best_model(tiny_bert, tmp_path):
    # A threshold no evaluation can beat: the first sets the best, the next 2 do not improve on it, then it stops.
    extra = ["--early_stopping_patience", "2", "--early_stopping_threshold", "100", "--metric_for_best_model", "loss"]
    out, state, evals = evaluated_each_epoch(tiny_bert, tmp_path, 20, *extra)
    assert len(evals) == 3 and state["epoch"] == 3  # of 20 epochs: stopped at the third
    # The loss still fell (by less than the threshold): the best is the last, 12 steps of 8 rows; loaded back.
    assert state["best_model_checkpoint"].endswith("checkpoint-12")
    final = json.loads((out / "all_results.json").read_text())
    assert final["eval_loss"] == pytest.approx(min(e["eval_loss"] for e in evals))
    assert json.loads((out / "recipe.json").read_text())["early_stopping_patience"] == 2


def test_the_best_model_is_the_primary_metrics_unless_a_metric_is_named(tiny_bert, tmp_path):
    # transformers would select on the loss; here, as with --save_strategy best, the task's primary metric decides.
    out, state, evals = evaluated_each_epoch(tiny_bert, tmp_path, 3, "--load_best_model_at_end")
    assert state["best_metric"] == max(e["eval_accuracy"] for e in evals)
    assert json.loads((out / "recipe.json").read_text()).get("metric_for_best_model") is None  # chosen per run


@pytest.mark.parametrize(
    "extra, error",
    [
        (["--eval_strategy", "no"], "counts evaluations, but --eval_strategy is 'no'"),
        (
            ["--eval_strategy", "epoch", "--load_best_model_at_end", "false"],
            "cannot run with --load_best_model_at_end",
        ),
        (["--eval_strategy", "epoch", "--early_stopping_patience", "0"], "pass 1 or more evaluations"),
    ],
)
def test_early_stopping_flags_that_cannot_work_are_refused(extra, error):
    from textcls.config.args import parse_args

    argv = ["--model", "m", "--train_file", "t.csv", "--do_train", "--save_strategy", "epoch"]
    with pytest.raises(UserError, match=error):
        parse_args([*argv, "--early_stopping_patience", "3", *extra])


# ------------------------------------------------------------------------------------------------ long documents


def test_head_tail_keeps_a_long_texts_first_quarter_and_its_end(tiny_bert):
    from transformers import AutoTokenizer

    from textcls.data import load as D
    from textcls.data import tokenization as T

    tok = AutoTokenizer.from_pretrained(tiny_bert)
    long = " ".join(["good", "movie", "bad", "plot"] * 30)  # 120 words, 122 tokens with [CLS] and [SEP]
    ds = datasets.Dataset.from_dict({"text": [long, "a fine film"]})
    columns = D.Columns("text", None, None, None)
    out = T.tokenize_split(ds, tok, columns, None, T.Encoding(16, head_tail=True), "train")
    full = tok(long)["input_ids"]
    assert out[0]["input_ids"] == full[:4] + full[-12:] and out[0]["length"] == 16  # 16 // 4 head, 12 tail
    assert out[0]["input_ids"][-1] == tok.sep_token_id and out[0]["input_ids"][0] == tok.cls_token_id
    assert out[1]["input_ids"] == tok("a fine film")["input_ids"]  # a short text is left alone
    truncated = T.tokenize_split(ds, tok, columns, None, T.Encoding(16), "train")
    assert truncated[0]["input_ids"] == tok(long, truncation=True, max_length=16)["input_ids"]
    assert truncated._fingerprint != out._fingerprint  # a cached truncating run is not reused


def test_head_tail_refuses_text_pairs(tiny_bert, tmp_path, capsys):
    rows = [{**r, "sentence2": r["sentence"]} for r in sentiment_rows(8, 0)]
    train = write_rows(tmp_path / "t.csv", rows)
    argv = [
        "--model",
        tiny_bert,
        "--train_file",
        train,
        "--text_column",
        "sentence",
        "--text_pair_column",
        "sentence2",
    ]
    argv += ["--do_train", "--output_dir", str(tmp_path / "o"), *TRAIN_FLAGS, "--long_document_strategy", "head_tail"]
    assert R.cli(argv) == 2
    assert "head_tail cuts the middle out of single texts; it does not work with text pairs" in capsys.readouterr().err


def test_tuned_thresholds_are_each_labels_f1_optimum():
    from textcls.evaluation.metrics import tune_thresholds

    probs = np.array([[0.9, 0.2, 0.5], [0.6, 0.3, 0.5], [0.4, 0.35, 0.5], [0.2, 0.1, 0.5], [0.55, 0.8, 0.5]])
    gold = np.array([[1, 1, 0], [1, 1, 0], [1, 0, 0], [0, 0, 0], [0, 1, 0]], dtype=np.float32)
    logits = np.log(probs / (1 - probs))
    thresholds, untuned = tune_thresholds(logits, gold, 0.5)
    # label 0: keeping scores >= 0.4, all three positives and one false positive (F1 6/7) beats 0.6 (F1 4/5) and
    # 0.2 (F1 3/4); label 1: keeping >= 0.2, 3 of 3 positives with one false positive (F1 6/7) beats 0.8 (F1 1/2) and
    # 0.1 (F1 3/4); each threshold lies halfway to the next lower score (0.2, 0.1); label 2 has no positive row: it
    # keeps the start
    assert thresholds == pytest.approx([0.3, 0.15, 0.5])
    assert untuned == [2]
    # by brute force over a fine grid, no threshold gives label 0 or 1 a higher F1
    for j in (0, 1):
        best = max(f1_score(gold[:, j], probs[:, j] >= t) for t in np.linspace(0, 1, 201))
        assert f1_score(gold[:, j], probs[:, j] >= thresholds[j]) == pytest.approx(best)
        # the kept scores are kept when they move by float noise (as another batch's padding moves them, ~1e-9)
        noisy = np.clip(probs[:, j] + np.random.default_rng(j).uniform(-1e-6, 1e-6, len(probs)), 0, 1)
        assert ((noisy >= thresholds[j]) == (probs[:, j] >= thresholds[j])).all()


def test_tuned_thresholds_predict_and_are_saved_with_the_model(tiny_bert, tmp_path):
    rng = random.Random(1)
    tags = ["action", "comedy", "drama"]
    rows = [{"text": sentence(rng, True), "labels": rng.sample(tags, rng.randint(0, 2))} for _ in range(30)]
    path = write_rows(tmp_path / "ml.jsonl", rows)
    out = tmp_path / "out"
    argv = ["--model", tiny_bert, "--train_file", path, "--validation_file", path, "--test_file", path]
    argv += ["--do_train", "--do_eval", "--do_predict", *TRAIN_FLAGS]
    results = R.main([*argv, "--output_dir", str(out), "--multi_label_threshold", "tune"])
    saved = json.loads((out / "config.json").read_text())["multi_label_thresholds"]
    assert set(saved) == set(tags) and any(t != 0.5 for t in saved.values())
    assert results["eval_tuned_macro_f1"] >= results["eval_macro_f1"]  # each label's F1 at its best on this split
    report = json.loads((out / "eval_classification_report.json").read_text())
    assert report["thresholds"] == saved and report["thresholds_tuned_on_this_split"] is True
    assert report["macro_f1"] == pytest.approx(results["eval_tuned_macro_f1"])
    # the test split (the same rows) is predicted with them: its metrics, and the labels written, are the tuned ones
    assert results["predict_macro_f1"] == pytest.approx(results["eval_tuned_macro_f1"])
    predicted = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    hot = lambda names: [t in names for t in tags]  # noqa: E731
    f1 = f1_score([hot(p["gold"]) for p in predicted], [hot(p["labels"]) for p in predicted], average=None)
    assert f1 == pytest.approx([report["per_class"][t]["f1"] for t in tags])
    # transformers' pipeline() gives every label's sigmoid; the saved thresholds, applied to it, give our labels
    from transformers import pipeline

    scores = pipeline("text-classification", model=str(out), top_k=None, device="cpu")([rows[0]["text"]])[0]
    chosen = {s["label"] for s in scores if s["score"] >= saved[s["label"]]}
    assert chosen == set(predicted[0]["labels"])
    # the folder predicts with its saved thresholds when none is given; a number given overrides them
    again = tmp_path / "again"
    R.main(["--model", str(out), "--test_file", path, "--do_predict", "--use_cpu", "--output_dir", str(again)])
    assert (again / "predictions.jsonl").read_text() == (out / "predictions.jsonl").read_text()
    half = tmp_path / "half"
    argv = ["--model", str(out), "--test_file", path, "--do_predict", "--use_cpu", "--output_dir", str(half)]
    R.main([*argv, "--multi_label_threshold", "0.5"])
    for p in [json.loads(line) for line in (half / "predictions.jsonl").read_text().splitlines()]:
        assert p["labels"] == [t for t in tags if p["probabilities"][t] >= 0.5]


@pytest.mark.parametrize(
    "flags, error",
    [
        (["--multi_label_threshold", "tune", "--do_train"], "pass --do_eval"),
        (["--multi_label_threshold", "1.5", "--do_train"], "pass a number between 0 and 1"),
    ],
)
def test_bad_thresholds_are_one_clear_error(tiny_bert, tmp_path, capsys, flags, error):
    rows = [{"text": "good movie", "labels": ["a"]}, {"text": "bad film", "labels": ["b"]}]
    path = write_rows(tmp_path / "ml.jsonl", rows)
    argv = ["--model", tiny_bert, "--train_file", path, "--output_dir", str(tmp_path / "o"), *TRAIN_FLAGS]
    assert R.cli([*argv, *flags]) == 2
    assert error in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_tune_on_single_label_data_is_refused(tiny_bert, sentiment_files, tmp_path, capsys):
    argv = ["--model", tiny_bert, "--train_file", sentiment_files["train"], "--do_train", "--do_eval"]
    argv += ["--validation_file", sentiment_files["dev"], "--output_dir", str(tmp_path / "o"), *TRAIN_FLAGS]
    assert R.cli([*argv, "--multi_label_threshold", "tune"]) == 2
    assert "tune is for multi-label classification" in capsys.readouterr().err
