"""--method auto: the pick by the training set's smallest class at the measured thresholds, the user's flags kept, the
choice logged and written into the run's recipe so that a replay is the same run."""

import json

import datasets
import pytest

import run_classification as R
from tests.helpers import sentiment_rows, write_rows
from textcls.config.args import given_flags, parse_args
from textcls.data.labels import Labels
from textcls.data.load import Columns
from textcls.train import method


@pytest.fixture(autouse=True)
def thresholds(monkeypatch):
    """The mechanism at fixed thresholds; tests/artifacts/test_results.py ties the real ones to the measurements."""
    monkeypatch.setattr(method, "MEASURED", {8: "setfit", 64: "finetune-small", 256: "finetune"})


SINGLE = Columns(text="sentence", text_pair=None, label="label", id=None)
LABELS = Labels("single_label_classification", ["a", "b"], None)


def choice(rows_per_class: int, *flags, columns=SINGLE, labels=LABELS, values=None):
    argv = ["--model", "m", "--output_dir", "o", "--method", "auto", "--do_train", *flags]
    labels_column = values or ["a"] * rows_per_class + ["b"] * (rows_per_class + 5)
    train = datasets.Dataset.from_dict({"sentence": ["x"] * len(labels_column), "label": labels_column})
    return method.choose(parse_args(argv), given_flags(argv), train, columns, labels)


def test_auto_picks_the_winner_of_the_nearest_measured_size():
    picked = choice(8)
    assert picked.name == "setfit" and picked.settings["train_layers"] == "head"
    assert picked.settings["learning_rate"] == 2e-3 and picked.settings["warmup_steps"] == 0.1
    assert picked.settings["max_steps"] == max(method.MIN_STEPS, -(-3 * (2 * 8 + 5) // 8))
    assert "8 rows in the smallest class" in picked.reason and "64: finetune-small" in picked.reason
    # nearest on a log scale: 22 is nearer 8 (x2.75) than 64 (x2.9); 23 nearer 64; 128 is nearer 64 than 256 on a tie
    assert [choice(n).name for n in (1, 22, 23, 128)] == ["setfit", "setfit", "finetune-small", "finetune-small"]
    assert choice(23).settings["learning_rate"] == 1e-4 and "train_layers" not in choice(23).settings
    assert choice(300).name == "finetune" and choice(300).settings == {"method": "finetune"}
    beyond = choice(513)  # more than twice the largest measured size: the defaults
    assert beyond.name == "finetune" and "beyond twice the largest size measured" in beyond.reason


def test_the_flags_given_are_read_from_the_command_line_and_its_recipe(tmp_path):
    recipe = tmp_path / "r.json"
    recipe.write_text(json.dumps({"learning_rate": 1e-3, "do_train": True}))
    given = given_flags([str(recipe), "--model", "m", "--no_remove_unused_columns", "--seed=3"])
    assert given == {"learning_rate", "do_train", "model_name_or_path", "remove_unused_columns", "seed"}


def test_auto_keeps_every_flag_the_user_set():
    picked = choice(1, "--learning_rate", "3e-5", "--num_train_epochs", "7", "--train_layers", "all")
    assert picked.name == "setfit" and picked.settings["method"] == "setfit"
    assert not {"learning_rate", "max_steps", "train_layers"} & set(picked.settings)
    batch = choice(1, "--per_device_train_batch_size", "2", "--gradient_accumulation_steps", "3")
    assert batch.settings["max_steps"] == method.MIN_STEPS and "per_device_train_batch_size" not in batch.settings
    many = 200 * method.MIN_STEPS  # 3 epochs of rows / (2 x 3) per step
    picked = choice(1, "--per_device_train_batch_size", "2", "--gradient_accumulation_steps", "3",
                    values=["a"] * 1 + ["b"] * (many - 1))  # fmt: skip
    assert picked.settings["max_steps"] == 3 * many // 6


def test_auto_never_picks_setfit_for_pairs_lora_regression_or_a_stream():
    pairs = Columns(text="sentence", text_pair="sentence2", label="label", id=None)
    assert choice(1, columns=pairs).name == "finetune-small"
    assert choice(1, "--use_lora").name == "finetune-small"
    regression = Labels("regression", None, None)
    assert choice(1, labels=regression, values=[0.5, 1.5]).name == "finetune"
    argv = ["--model", "m", "--output_dir", "o", "--method", "auto", "--do_train"]
    stream = datasets.Dataset.from_dict({"sentence": ["x"], "label": ["a"]}).to_iterable_dataset()
    assert method.choose(parse_args(argv), frozenset(), stream, SINGLE, LABELS).name == "finetune"
    assert method.choose(parse_args(argv[:4]), frozenset(), stream, SINGLE, LABELS) is None


def test_setfits_head_is_label_smoothed_for_single_labels_only():
    """SetFit's head trained on tight clusters is sure of every answer: smoothing its targets keeps its probabilities
    honest (textcls/train/method.py). Multi-label targets are not one class a row: no smoothing there (the flag's
    check refuses it), the rest of the pick the same."""
    assert choice(8).settings["label_smoothing_factor"] == 0.1
    assert "label_smoothing_factor" not in choice(64).settings  # finetune-small: not measured, not set
    assert choice(8, "--label_smoothing_factor", "0").settings.get("label_smoothing_factor") is None  # the user's
    multi = choice(8, labels=Labels("multi_label_classification", ["a", "b"], None), values=[["a"], ["b"]] * 8)
    assert multi.name == "setfit" and "label_smoothing_factor" not in multi.settings
    assert multi.settings["train_layers"] == "head" and multi.settings["learning_rate"] == 2e-3


def test_multi_label_counts_the_rows_carrying_each_label():
    labels = Labels("multi_label_classification", ["x", "y"], None)
    train = datasets.Dataset.from_dict({"sentence": ["s"] * 4, "label": [["x"], ["x", "y"], ["x"], []]})
    assert method.rows_per_class(train, SINGLE, labels) == 1


@pytest.mark.filterwarnings("ignore")
def test_an_auto_run_logs_its_pick_and_its_recipe_replays_it(tiny_bert, tmp_path, capsys):
    pytest.importorskip("setfit")
    train = write_rows(tmp_path / "train.csv", sentiment_rows(12, 0))
    dev = write_rows(tmp_path / "dev.csv", sentiment_rows(8, 1))
    argv = ["--model", str(tiny_bert), "--output_dir", str(tmp_path / "out"), "--train_file", train,
            "--validation_file", dev, "--do_train", "--do_eval", "--method", "auto", "--setfit_num_iterations", "1",
            "--max_steps", "2", "--max_seq_length", "32", "--disable_tqdm", "true"]  # fmt: skip
    results = R.main(argv)
    log, err = capsys.readouterr()
    assert "it/s]" not in err and "s/it]" not in err  # --disable_tqdm: no progress bar, the contrastive phase's too
    assert "--method auto chose setfit: 6 rows in the smallest class" in log
    recipe = json.loads((tmp_path / "out" / "recipe.json").read_text())
    assert recipe["method"] == "setfit" and recipe["train_layers"] == "head" and recipe["learning_rate"] == 2e-3
    assert recipe["max_steps"] == 2 and recipe["warmup_steps"] == 0.1  # the flag given kept, the rest chosen
    assert recipe["label_smoothing_factor"] == 0.1
    assert (tmp_path / "out" / "setfit_body").is_dir()
    assert R.main(argv)["eval_accuracy"] == results["eval_accuracy"]  # finished: the same command evaluates it again
    replay = R.main([str(tmp_path / "out" / "recipe.json"), "--output_dir", str(tmp_path / "replay")])
    assert replay["eval_accuracy"] == results["eval_accuracy"] and replay["eval_loss"] == results["eval_loss"]
