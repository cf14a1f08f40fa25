"""End to end on a tiny random BERT: main([...]) is called directly; we assert files, keys and behaviour, never
accuracy (the model is random and trains for a few steps)."""

import glob
import json
import os
import random
import shutil

import pytest

import run_classification as R
from tests.helpers import run_main, sentence, sentiment_rows, write_rows
from textcls.errors import UserError

EXPECTED_FILES = {
    "model.safetensors",
    "config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "recipe.json",
    "train_results.json",
    "eval_results.json",
    "all_results.json",
    "trainer_state.json",
    "README.md",
    "eval_classification_report.json",
    "predict_results.json",
    "predictions.jsonl",
}


run = run_main


def all_splits(path):
    """Train, evaluate and predict on the same file."""
    return [
        "--train_file",
        path,
        "--validation_file",
        path,
        "--test_file",
        path,
        "--do_train",
        "--do_eval",
        "--do_predict",
    ]


def read_jsonl(path):
    with open(path) as f:
        return [json.loads(line) for line in f]


def test_single_sentence_full_run(tiny_bert, sentiment_files, tmp_path):
    out = tmp_path / "out"
    results = run(
        tiny_bert,
        out,
        "--train_file",
        sentiment_files["train"],
        "--validation_file",
        sentiment_files["dev"],
        "--test_file",
        sentiment_files["test"],
        "--do_train",
        "--do_eval",
        "--do_predict",
    )
    assert EXPECTED_FILES <= set(os.listdir(out))
    assert not any(f.endswith(".tmp") for f in os.listdir(out))
    for key in ("train_loss", "eval_accuracy", "eval_macro_f1", "eval_samples", "predict_samples", "trainable_params"):
        assert key in results
    assert results["eval_samples"] == 21 and results["predict_samples"] == 13
    with open(out / "all_results.json") as f:
        assert json.load(f) == pytest.approx(results)
    config = json.loads((out / "config.json").read_text())
    assert config["id2label"] == {"0": "0", "1": "1"} and config["problem_type"] == "single_label_classification"
    report = json.loads((out / "eval_classification_report.json").read_text())
    assert sum(map(sum, report["confusion_matrix"])) == 21 and set(report["per_class"]) == {"0", "1"}
    rows = read_jsonl(out / "predictions.jsonl")
    test_rows = sentiment_rows(13, 2)
    assert [r["id"] for r in rows] == [r["id"] for r in test_rows]  # input order survives length-sorted prediction
    assert [r["text"] for r in rows] == [r["sentence"] for r in test_rows]
    assert [r["gold"] for r in rows] == [str(r["label"]) for r in test_rows]
    assert all(abs(sum(r["probabilities"].values()) - 1) < 1e-4 for r in rows)
    assert all(r["label"] == max(r["probabilities"], key=r["probabilities"].get) for r in rows)

    # The saved folder loads in pipeline() and predicts what predictions.jsonl says.
    from transformers import pipeline

    clf = pipeline("text-classification", model=str(out), device="cpu")
    got = clf([r["text"] for r in rows])
    assert [g["label"] for g in got] == [r["label"] for r in rows]
    assert [g["score"] for g in got] == pytest.approx([max(r["probabilities"].values()) for r in rows], abs=1e-4)

    # Predict-only from the saved folder reuses its label map and gives the same predictions.
    again = tmp_path / "again"
    R.main(
        [
            "--model",
            str(out),
            "--test_file",
            sentiment_files["test"],
            "--do_predict",
            "--output_dir",
            str(again),
            "--use_cpu",
        ]
    )
    assert [r["label"] for r in read_jsonl(again / "predictions.jsonl")] == [r["label"] for r in rows]
    assert not (again / "train_results.json").exists()

    # The written recipe replays the run.
    recipe = json.loads((out / "recipe.json").read_text())
    assert recipe["train_file"] == sentiment_files["train"] and recipe["learning_rate"] == 1e-3


def test_pair_string_labels_unbalanced_jsonl(tiny_bert, tmp_path):
    rng = random.Random(0)
    labels = ["entailment", "neutral", "contradiction"]

    def rows(n):
        return [
            {
                "premise": sentence(rng, True),
                "hypothesis": sentence(rng, False),
                "label": labels[0] if i % 5 else rng.choice(labels),
            }
            for i in range(n)
        ]

    train, dev = write_rows(tmp_path / "t.jsonl", rows(40)), write_rows(tmp_path / "d.jsonl", rows(15))
    out = tmp_path / "out"
    results = run(tiny_bert, out, "--train_file", train, "--validation_file", dev, "--do_train", "--do_eval")
    config = json.loads((out / "config.json").read_text())
    assert config["label2id"] == {"contradiction": 0, "entailment": 1, "neutral": 2}
    assert "eval_accuracy" in results


def test_label_names_fix_order(tiny_bert, sentiment_files, tmp_path):
    out = tmp_path / "out"
    run(
        tiny_bert,
        out,
        "--train_file",
        sentiment_files["train"],
        "--do_train",
        "--label_names",
        "1",
        "0",
        "--report_to",
        "tensorboard",
    )
    assert json.loads((out / "config.json").read_text())["id2label"] == {"0": "1", "1": "0"}
    assert glob.glob(str(out / "runs" / "*" / "events.out.tfevents.*"))  # tensorboard works offline


def test_multi_label(tiny_bert, tmp_path):
    rng = random.Random(1)
    tags = ["action", "comedy", "drama"]
    rows = [{"text": sentence(rng, True), "labels": rng.sample(tags, rng.randint(0, 2))} for _ in range(30)]
    path = write_rows(tmp_path / "ml.jsonl", rows)
    out = tmp_path / "out"
    results = run(tiny_bert, out, *all_splits(path))
    assert {"eval_micro_f1", "eval_subset_accuracy"} <= set(results)
    assert json.loads((out / "config.json").read_text())["problem_type"] == "multi_label_classification"
    pred = read_jsonl(out / "predictions.jsonl")[0]
    assert set(pred["probabilities"]) == set(tags) and isinstance(pred["labels"], list)
    assert pred["gold"] == rows[0]["labels"]


def test_regression(tiny_bert, tmp_path):
    rng = random.Random(2)
    rows = [
        {"sentence1": sentence(rng, True), "sentence2": sentence(rng, False), "score": rng.uniform(0, 5)}
        for _ in range(30)
    ]
    path = write_rows(tmp_path / "r.csv", rows)
    out = tmp_path / "out"
    results = run(tiny_bert, out, *all_splits(path))
    assert {"eval_pearson", "eval_spearmanr", "eval_mse"} <= set(results)
    config = json.loads((out / "config.json").read_text())
    assert config["problem_type"] == "regression" and len(config["id2label"]) == 1
    pred = read_jsonl(out / "predictions.jsonl")[0]
    assert isinstance(pred["prediction"], float) and pred["gold"] == pytest.approx(rows[0]["score"])
    assert not (out / "eval_classification_report.json").exists()


def test_glue_folder_with_unlabelled_test(tiny_bert, tmp_path):
    rte = tmp_path / "RTE"
    rte.mkdir()
    rng = random.Random(3)
    lab = ["entailment", "not_entailment"]
    for name, n, labelled in (("train", 24, True), ("dev", 9, True), ("test", 7, False)):
        lines = ["index\tsentence1\tsentence2" + ("\tlabel" if labelled else "")]
        for i in range(n):
            lines.append(
                f'{i}\t{sentence(rng, True)}\t"{sentence(rng, False)}' + (f"\t{rng.choice(lab)}" if labelled else "")
            )
        (rte / f"{name}.tsv").write_text("\n".join(lines) + "\n")
    out = tmp_path / "out"
    results = run(
        tiny_bert, out, "--task_name", "rte", "--data_dir", str(rte), "--do_train", "--do_eval", "--do_predict"
    )
    assert results["eval_samples"] == 9 and "eval_accuracy" in results
    assert json.loads((out / "config.json").read_text())["id2label"] == {"0": "entailment", "1": "not_entailment"}
    rows = read_jsonl(out / "predictions.jsonl")
    assert [r["id"] for r in rows] == list(range(7)) and "gold" not in rows[0]
    assert rows[0]["text_pair"].startswith('"')  # quoting is off: the quote is part of the text
    assert "predict_loss" not in results  # unlabelled test: no loss, no metrics
    assert (out / "glue_submission" / "RTE.tsv").read_text().count("\n") == 8  # header + every test row

    # Part of the test split: a file the GLUE server would reject is not written.
    part = tmp_path / "part"
    flags = ["--task_name", "rte", "--data_dir", str(rte), "--do_predict", "--max_predict_samples", "5"]
    R.main(["--model", str(out), "--output_dir", str(part), *flags])
    assert len(read_jsonl(part / "predictions.jsonl")) == 5 and not (part / "glue_submission").exists()


def test_output_dir_safety_and_fresh_results(tiny_bert, sentiment_files, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    args = ["--train_file", sentiment_files["train"], "--validation_file", sentiment_files["dev"], "--do_train"]
    for extra in ([], ["--overwrite_output_dir"]):  # a folder no run of ours made is never written into
        with pytest.raises(UserError, match="no run of run_classification.py wrote.*another --output_dir"):
            run(tiny_bert, out, *args, *extra)
        assert os.listdir(out) == ["notes.txt"]  # nothing half-written
    out = tmp_path / "ours"
    run(tiny_bert, out, *args, "--do_eval")
    run(tiny_bert, out, *args, "--overwrite_output_dir")
    assert not any(k.startswith("eval_") for k in json.loads((out / "all_results.json").read_text()))


def test_resume_from_checkpoint(tiny_bert, sentiment_files, tmp_path):
    """An interrupted run (here: the checkpoint a kill after step 4 leaves) continues; training a finished run for
    longer is refused (its schedule was set for the steps it had), so its record never mixes two runs."""
    whole, out = tmp_path / "whole", tmp_path / "out"
    base = ["--train_file", sentiment_files["train"], "--do_train", "--save_strategy", "steps", "--save_steps", "4"]
    run(tiny_bert, whole, *base, "--max_steps", "8", "--save_total_limit", "2")
    assert sorted(p.name for p in whole.glob("checkpoint-*")) == ["checkpoint-4", "checkpoint-8"]
    out.mkdir()
    shutil.copy(whole / ".textcls_run.json", out / ".textcls_run.json")
    shutil.copytree(whole / "checkpoint-4", out / "checkpoint-4")
    run(tiny_bert, out, *base, "--max_steps", "8")
    state = json.loads((out / "trainer_state.json").read_text())
    assert state["global_step"] == 8
    assert [h["step"] for h in state["log_history"] if "loss" in h] == [2, 4, 6, 8]  # continued, not restarted
    # by default only the newest checkpoint stays (Trainer's own default keeps every one: GBs on a long run)
    assert [p.name for p in out.glob("checkpoint-*")] == ["checkpoint-8"]
    with pytest.raises(UserError, match=r"--max_steps 12 \(it was 8\)"):
        run(tiny_bert, out, *base, "--max_steps", "12")


def test_recipe_file_and_replay(tiny_bert, sentiment_files, tmp_path):
    recipe = tmp_path / "r.json"
    recipe.write_text(
        json.dumps(
            {
                "model_name_or_path": tiny_bert,
                "train_file": sentiment_files["train"],
                "validation_file": sentiment_files["dev"],
                "do_train": True,
                "do_eval": True,
                "learning_rate": 5.0,
                "max_steps": 3,
            }
        )
    )
    out = tmp_path / "out"
    first = R.main(
        [
            str(recipe),
            "--output_dir",
            str(out),
            "--learning_rate",
            "1e-3",
            "--use_cpu",
            "--seed",
            "1",
            "--save_strategy",
            "no",
        ]
    )
    resolved = json.loads((out / "recipe.json").read_text())
    assert resolved["learning_rate"] == 1e-3 and resolved["max_steps"] == 3
    replay = R.main([str(out / "recipe.json"), "--output_dir", str(tmp_path / "replay")])
    assert replay["eval_accuracy"] == first["eval_accuracy"] and replay["train_loss"] == first["train_loss"]


def test_cli_exit_code_and_message(tiny_bert, tmp_path, capsys):
    code = R.cli(
        [
            "--model",
            tiny_bert,
            "--train_file",
            str(tmp_path / "missing.csv"),
            "--do_train",
            "--output_dir",
            str(tmp_path / "out"),
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: data file") and "does not exist" in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_metric_name_adds_an_evaluate_metric(tiny_bert, sentiment_files, tmp_path, monkeypatch):
    class FakeMetric:
        def compute(self, predictions, references):
            return {"hits": float(sum(p == r for p, r in zip(predictions, references, strict=True)))}

    monkeypatch.setattr("textcls.evaluation.metrics.load_hub_metric", lambda name: FakeMetric())
    results = run(
        tiny_bert, tmp_path / "out", "--validation_file", sentiment_files["dev"], "--do_eval", "--metric_name", "fake"
    )
    assert results["eval_hits"] == pytest.approx(results["eval_accuracy"] * 21)


def test_metric_name_offline_is_a_clear_error(tiny_bert, sentiment_files, tmp_path, capsys):
    code = R.cli(
        [
            "--model",
            tiny_bert,
            "--validation_file",
            sentiment_files["dev"],
            "--do_eval",
            "--metric_name",
            "surely_not_a_metric_xyz",
            "--output_dir",
            str(tmp_path / "out"),
        ]
    )
    assert code == 2 and "surely_not_a_metric_xyz" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def fake_hub_glue(task, splits):
    """What load_dataset('nyu-mll/glue', task) returns, built offline: ClassLabel labels, -1 in test splits."""
    import datasets

    from textcls.data.glue import get_glue_task

    t = get_glue_task(task)
    rng = random.Random(4)
    features = {t.text_column: datasets.Value("string")}
    if t.text_pair_column:
        features[t.text_pair_column] = datasets.Value("string")
    features["label"] = datasets.ClassLabel(names=list(t.label_names))
    features["idx"] = datasets.Value("int32")
    out = {}
    for split, n in splits.items():
        rows = {k: [] for k in features}
        for i in range(n):
            rows[t.text_column].append(sentence(rng, True))
            if t.text_pair_column:
                rows[t.text_pair_column].append(sentence(rng, False))
            rows["label"].append(-1 if split.startswith("test") else rng.randrange(len(t.label_names)))
            rows["idx"].append(i)
        out[split] = datasets.Dataset.from_dict(rows, features=datasets.Features(features))
    return datasets.DatasetDict(out)


def test_glue_hub_shortcut_mnli(tiny_bert, tmp_path, monkeypatch):
    calls = []
    hub = fake_hub_glue(
        "mnli",
        {"train": 30, "validation_matched": 11, "validation_mismatched": 7, "test_matched": 5, "test_mismatched": 4},
    )

    def load_dataset(name, config=None, **kwargs):
        calls.append((name, config))
        return hub

    monkeypatch.setattr("textcls.data.load.datasets.load_dataset", load_dataset)
    out = tmp_path / "out"
    # eval_strategy epoch: the default metric_for_best_model must name an MNLI metric that exists.
    results = run(
        tiny_bert, out, "--task_name", "mnli", "--do_train", "--do_eval", "--do_predict", "--eval_strategy", "epoch"
    )
    assert calls == [("nyu-mll/glue", "mnli")]
    assert results["eval_matched_samples"] == 11 and results["eval_mismatched_samples"] == 7
    assert {"eval_matched_accuracy", "eval_mismatched_accuracy"} <= set(results)
    assert json.loads((out / "config.json").read_text())["label2id"] == {
        "entailment": 0,
        "neutral": 1,
        "contradiction": 2,
    }
    assert len(read_jsonl(out / "predictions_matched.jsonl")) == 5
    assert len(read_jsonl(out / "predictions_mismatched.jsonl")) == 4
    assert {"eval_matched_results.json", "eval_mismatched_results.json"} <= set(os.listdir(out))
    submission = out / "glue_submission"
    assert {"MNLI-m.tsv", "MNLI-mm.tsv", "submission.zip"} <= set(os.listdir(submission))
    lines = (submission / "MNLI-m.tsv").read_text().splitlines()
    assert lines[0] == "index\tprediction" and len(lines) == 6
    assert {line.split("\t")[1] for line in lines[1:]} <= {"entailment", "neutral", "contradiction"}


def test_results_file_records_the_run(tiny_bert, sentiment_files, tmp_path):
    results_file = tmp_path / "results" / "r.json"
    for seed in ("1", "2"):
        run(
            tiny_bert,
            tmp_path / f"out{seed}",
            "--train_file",
            sentiment_files["train"],
            "--validation_file",
            sentiment_files["dev"],
            "--do_train",
            "--do_eval",
            "--results_file",
            str(results_file),
            "--seed",
            seed,
        )
    recorded = json.loads(results_file.read_text())
    assert [r["seed"] for r in recorded["runs"]] == [1, 2]
    assert recorded["summary"]["eval_accuracy"]["n"] == 2
    assert recorded["runs"][0]["trainable_params"] > 0 and recorded["runs"][0]["log_history"]


def test_merge_lora_without_lora_is_an_error(tiny_bert, sentiment_files, tmp_path):
    with pytest.raises(UserError, match="--merge_lora merges a LoRA adapter"):
        run(tiny_bert, tmp_path / "out", "--train_file", sentiment_files["train"], "--do_train", "--merge_lora")


def test_config_overrides(tiny_bert, sentiment_files, tmp_path):
    out = tmp_path / "out"
    run(
        tiny_bert,
        out,
        "--train_file",
        sentiment_files["train"],
        "--do_train",
        "--config_overrides",
        "hidden_dropout_prob=0,attention_probs_dropout_prob=0.05",
    )
    config = json.loads((out / "config.json").read_text())
    assert config["hidden_dropout_prob"] == 0 and config["attention_probs_dropout_prob"] == 0.05
    with pytest.raises(UserError, match="has no 'hiden_dropout_prob'.*hidden_dropout_prob"):
        run(
            tiny_bert,
            tmp_path / "o2",
            "--train_file",
            sentiment_files["train"],
            "--do_train",
            "--config_overrides",
            "hiden_dropout_prob=0",
        )


def test_evaluating_a_trained_folder_in_place_keeps_its_training_recipe(tiny_bert, sentiment_files, tmp_path):
    out = tmp_path / "out"
    run(tiny_bert, out, "--train_file", sentiment_files["train"], "--do_train")
    trained = (out / "recipe.json").read_text()
    R.main(
        [
            "--model_name_or_path",
            str(out),
            "--output_dir",
            str(out),
            "--validation_file",
            sentiment_files["dev"],
            "--do_eval",
            "--per_device_eval_batch_size",
            "4",
        ]
    )
    assert (out / "recipe.json").read_text() == trained  # still replays the training run
    evaluation = json.loads((out / "recipe_eval.json").read_text())
    assert evaluation["do_eval"] is True and evaluation["model_name_or_path"] == str(out)
    assert "do_train" not in evaluation or evaluation["do_train"] is False
    assert "eval_accuracy" in json.loads((out / "eval_results.json").read_text())


def test_drop_last_drops_training_rows_only(tiny_bert, sentiment_files, tmp_path):
    """--dataloader_drop_last is for training batches; Trainer applied it to evaluation and prediction too, which
    dropped the last rows of the dev set from the metrics (and crashed our in-order predictions)."""
    files = ["--train_file", sentiment_files["train"], "--validation_file", sentiment_files["dev"]]
    files += ["--test_file", sentiment_files["test"], "--do_train", "--do_eval", "--do_predict"]
    plain = run(tiny_bert, tmp_path / "plain", *files)
    dropped = run(tiny_bert, tmp_path / "dropped", *files, "--dataloader_drop_last", "true")
    # 64 training rows in batches of 8: nothing to drop there, so the model and every metric are the same
    assert dropped["eval_samples"] == 21 and dropped["predict_samples"] == 13
    for key in ("train_loss", "eval_loss", "eval_accuracy", "predict_accuracy"):
        assert dropped[key] == pytest.approx(plain[key], rel=1e-6), key
    assert len(read_jsonl(tmp_path / "dropped" / "predictions.jsonl")) == 13


def test_prediction_loss_only_evaluates_the_loss(tiny_bert, sentiment_files, tmp_path):
    out = tmp_path / "out"
    files = ["--train_file", sentiment_files["train"], "--validation_file", sentiment_files["dev"], "--do_train"]
    results = run(tiny_bert, out, *files, "--do_eval", "--prediction_loss_only", "true", "--eval_strategy", "epoch")
    assert "eval_loss" in results and "eval_accuracy" not in results
    assert not (out / "eval_classification_report.json").exists()


@pytest.mark.parametrize("kind", ["single", "multi", "regression"])
def test_predict_on_text_alone_with_a_saved_model(tiny_bert, tmp_path, kind):
    """The README's `--model out/my-run --test_file new.jsonl --do_predict`: a file with no label column at all (it
    crashed: no split had labels to read the problem from). The saved model's config says what its head predicts."""
    rng = random.Random(5)
    label = {
        "single": lambda pos: ["neg", "pos"][pos],
        "multi": lambda pos: ["a", "b"][: rng.randint(0, 2)],
        "regression": lambda pos: float(pos) + rng.random(),
    }[kind]
    rows = [{"text": sentence(rng, pos), "label": label(pos)} for pos in [True, False] * 12]
    trained = tmp_path / "trained"
    run(tiny_bert, trained, "--train_file", write_rows(tmp_path / "train.jsonl", rows), "--do_train")
    new = write_rows(tmp_path / "new.jsonl", [{"text": r["text"]} for r in rows[:5]])
    out = tmp_path / "pred"
    R.main(["--model", str(trained), "--test_file", new, "--do_predict", "--output_dir", str(out)])
    predictions = read_jsonl(out / "predictions.jsonl")
    assert [p["text"] for p in predictions] == [r["text"] for r in rows[:5]]
    key = {"single": "label", "multi": "labels", "regression": "prediction"}[kind]
    assert all(key in p and "gold" not in p for p in predictions)
    if kind == "single":
        assert {p["label"] for p in predictions} <= {"neg", "pos"} and set(predictions[0]["probabilities"]) == {
            "neg",
            "pos",
        }


def test_predict_on_text_alone_needs_a_fine_tuned_model(tiny_bert, tmp_path):
    new = write_rows(tmp_path / "new.jsonl", [{"text": "good movie"}])
    with pytest.raises(UserError, match="no split has labels and the model has no label map"):
        R.main(["--model", tiny_bert, "--test_file", new, "--do_predict", "--output_dir", str(tmp_path / "o")])
    assert not (tmp_path / "o").exists()
