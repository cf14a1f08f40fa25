"""--method auto: the pick by cross-validation on the training rows (the default) or by the training set's smallest
class at the measured thresholds, the user's flags kept, the choice logged and written into the run's recipe so that
a replay is the same run."""

import json
import shutil

import datasets
import numpy as np
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
            "--validation_file", dev, "--do_train", "--do_eval", "--method", "auto", "--auto_select", "size",
            "--setfit_num_iterations", "1", "--max_steps", "2", "--max_seq_length", "32",
            "--disable_tqdm", "true"]  # fmt: skip
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


def test_cross_validation_compares_the_candidates_only_where_both_can_run():
    """--auto_select cross_validation compares small-data fine-tuning and SetFit where the size rule picks one of
    them, for single texts of one label a row, with a row of each class for every fold; elsewhere the size rule."""
    assert choice(8).candidates == choice(64).candidates == method.CV_CANDIDATES
    assert choice(300).candidates == ()  # beyond them: the defaults
    assert choice(3).candidates == ()  # fewer rows in a class than folds
    pairs = Columns(text="sentence", text_pair="sentence2", label="label", id=None)
    assert choice(8, columns=pairs).candidates == () and choice(8, "--use_lora").candidates == ()
    multi = Labels("multi_label_classification", ["a", "b"], None)
    assert choice(8, labels=multi, values=[["a"], ["b"]] * 8).candidates == ()
    forced = choice(8, "--auto_pick", "finetune-small", "--cross_validate", "4")  # a candidate's own runs
    assert forced.name == "finetune-small" and forced.settings["learning_rate"] == 1e-4


def test_auto_picks_by_cross_validation_unless_told_or_the_run_cross_validates_or_searches_itself():
    """Cross-validation is --method auto's default way to pick (ahead of or level with the size rule on every point
    of the learning curve it ran); a run's own --cross_validate or --hp_trials would run it inside every fold or
    trial, so there the size rule picks, as it does when asked (--auto_select size)."""
    assert choice(8).select == "cross_validation"
    assert choice(8, "--auto_select", "size").select == "size"
    assert choice(8, "--cross_validate", "5").select == "size"
    assert choice(8, "--hp_trials", "4").select == "size"
    assert choice(8, "--auto_select", "cross_validation").select == "cross_validation"


def write_oof(path, gold, predicted, names=("neg", "pos")):
    """oof_predictions.jsonl as --cross_validate writes it: one row per training row, in its order."""
    with open(path, "w") as f:
        for g, p in zip(gold, predicted, strict=True):
            probs = {n: (0.9 if n == names[p] else 0.1 / (len(names) - 1)) for n in names}
            f.write(json.dumps({"gold": names[g], "label": names[p], "probabilities": probs}) + "\n")
    return str(path)


def test_the_other_candidate_is_picked_only_when_ahead_beyond_noise(tmp_path):
    """The size rule's pick stands unless the other candidate's out-of-fold score is higher on at least
    CV_CONFIDENCE of paired resamples of the rows: ahead by 1 row of 128 is noise, by 16 it is not."""
    names = ["neg", "pos"]
    gold = [0, 1] * 64
    base = [g if i >= 32 else 1 - g for i, g in enumerate(gold)]  # 32 of 128 wrong: accuracy 0.75
    close = [g if i >= 31 else 1 - g for i, g in enumerate(gold)]  # one more right (and the same rows else)
    far = [g if i >= 16 else 1 - g for i, g in enumerate(gold)]  # 16 more right
    b = write_oof(tmp_path / "b.jsonl", gold, base)
    c, f = write_oof(tmp_path / "c.jsonl", gold, close), write_oof(tmp_path / "f.jsonl", gold, far)
    for metric in ("accuracy", "matthews_correlation", "macro_f1"):
        near = method.lead_confidence(b, c, names, metric)
        clear = method.lead_confidence(b, f, names, metric)
        assert 0.3 < near < method.CV_CONFIDENCE <= clear, (metric, near, clear)
        assert method.lead_confidence(b, b, names, metric) == 0  # a tie is not ahead
        assert method.lead_confidence(f, b, names, metric) < 0.01
    assert method.lead_confidence(b, f, names, "accuracy", seed=3) == method.lead_confidence(
        b, f, names, "accuracy", seed=3)  # fmt: skip
    # the metrics of the confusion matrices are sklearn's, on 3 classes, one never predicted
    from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef

    rng = np.random.default_rng(0)
    g, p = rng.integers(0, 3, 50), rng.integers(0, 2, 50)
    c = np.zeros((3, 3))
    np.add.at(c, (g, p), 1)
    expected = {
        "accuracy": accuracy_score(g, p),
        "matthews_correlation": matthews_corrcoef(g, p),
        "macro_f1": f1_score(g, p, average="macro", zero_division=0),
        "f1": f1_score(g, p, average=None)[1],
    }
    for metric, value in expected.items():
        assert method._decision_metric(metric)(c) == pytest.approx(value), metric
    scores = {"finetune-small": 0.75, "setfit": 0.76}
    assert method.decide("finetune-small", scores, {"setfit": 0.89}) == "finetune-small"
    assert method.decide("finetune-small", scores, {"setfit": 0.9}) == "setfit"
    shuffled = write_oof(tmp_path / "s.jsonl", gold[::-1][1:] + [0], far)
    with pytest.raises(ValueError, match="not predictions of the same rows"):
        method.lead_confidence(b, shuffled, names, "accuracy")


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--method", "setfit", "--auto_select", "cross_validation"], "--method setfit is already a choice"),
        (["--method", "auto", "--auto_select", "cross_validation", "--cross_validate", "5"], "Pick first"),
        (["--method", "auto", "--auto_pick", "setfit"], "--auto_pick is set by --auto_select cross_validation"),
    ],
)
def test_auto_select_flags_that_cannot_work_are_refused(flags, message, tmp_path):
    from textcls.config import checks
    from textcls.errors import UserError

    args = parse_args(["--model", "m", "--output_dir", str(tmp_path), "--do_train", *flags])
    with pytest.raises(UserError, match=message):
        checks.check_flags(args)


@pytest.mark.filterwarnings("ignore")
def test_an_auto_run_by_cross_validation_trains_the_better_candidate_and_says_why(tiny_bert, tmp_path, capsys):
    """Each candidate cross-validated on the training rows alone (the validation split unseen), the better pooled
    out-of-fold score trains the model, selection.json and the log say why; the same command then trains nothing."""
    pytest.importorskip("setfit")
    train = write_rows(tmp_path / "train.csv", sentiment_rows(16, 0))
    dev = write_rows(tmp_path / "dev.csv", sentiment_rows(8, 1))
    out = tmp_path / "out"
    argv = ["--model", str(tiny_bert), "--output_dir", str(out), "--train_file", train, "--validation_file", dev,
            "--do_train", "--do_eval", "--method", "auto", "--auto_select", "cross_validation",
            "--setfit_num_iterations", "1", "--max_steps", "2", "--max_seq_length", "32", "--disable_tqdm", "true",
            "--plots", "false"]  # fmt: skip
    results = R.main(argv)
    log = capsys.readouterr().out
    selection = json.loads((out / "auto_select" / "selection.json").read_text())
    assert selection["metric"] == "accuracy" and set(selection["scores"]) == set(method.CV_CANDIDATES)
    picked, rule, other = selection["picked"], "setfit", "finetune-small"  # the fixture's size rule at 8 a class
    assert selection["size_rule"] == rule and set(selection["confidence"]) == {other}
    ahead = selection["confidence"][other] >= method.CV_CONFIDENCE
    assert picked == (other if ahead else rule)
    for name in method.CV_CANDIDATES:  # pooled over the folds, every training row once
        oof = [json.loads(line) for line in (out / "auto_select" / name / "oof_predictions.jsonl").open()]
        assert len(oof) == 16 and selection["scores"][name] == sum(r["label"] == str(r["gold"]) for r in oof) / 16
        summary = json.loads((out / "auto_select" / name / "cv_results.json").read_text())["summary"]
        assert summary and not any(k.startswith("eval_") for k in summary)  # the validation split takes no part
        assert not (out / "auto_select" / name / "folds").exists()  # the folds' models go once they are scored
    assert f"--method auto chose {picked}: cross-validated on the 16 training rows (4 folds" in log
    assert f"{other} ahead of {rule} on " in log
    recipe = json.loads((out / "recipe.json").read_text())
    assert recipe["method"] == method.SETTINGS[picked]["method"] and recipe["max_steps"] == 2
    assert results["eval_accuracy"] >= 0 and (out / "model.safetensors").is_file()
    assert recipe["auto_select"] == "size" and recipe["_auto_select"].startswith("cross_validation: cross-validated")
    # the pick's out-of-fold predictions calibrate it: the temperature that minimises their log loss, in the model
    # and the recipe
    t = selection["temperature"]
    logits, gold, _ = method.read_logits(str(out / "auto_select" / picked / "oof_predictions.jsonl"), ["0", "1"])
    nll = lambda x: float(np.mean(np.logaddexp(*(logits / x).T) - (logits / x)[np.arange(len(gold)), gold]))  # noqa: E731
    assert nll(t) <= min(nll(t * 0.9), nll(1.0))  # (the tiny model is near chance: t may sit at the search's bound)
    assert selection["out_of_fold_log_loss"] == pytest.approx([nll(1.0), nll(t)], abs=1e-6)
    assert recipe["calibration_temperature"] == t and f"calibration temperature {t:.3f} from its out-of-fold" in log
    assert json.loads((out / "config.json").read_text())["calibration_temperature"] == t
    replay = R.main([str(out / "recipe.json"), "--output_dir", str(tmp_path / "replay")])  # the pick, no new one
    assert replay["eval_accuracy"] == results["eval_accuracy"] and not (tmp_path / "replay" / "auto_select").exists()
    assert replay["eval_log_loss"] == results["eval_log_loss"]  # calibrated alike
    assert R.main(argv)["eval_accuracy"] == results["eval_accuracy"]  # finished: evaluated again, no new pick
    assert "cross-validated" not in capsys.readouterr().out
    # stopped after its pick, before a checkpoint: the same command takes the pick from selection.json
    again = tmp_path / "again"
    again.mkdir()
    for name in (".textcls_run.json", "recipe.json"):
        shutil.copy(out / name, again / name)
    shutil.copytree(out / "auto_select", again / "auto_select")
    assert R.main([*argv, "--output_dir", str(again)])["eval_accuracy"] == results["eval_accuracy"]
    log = capsys.readouterr().out
    assert f"--method auto chose {picked}: cross-validated" in log and "--auto_select cross_validation: " not in log
    # stopped while cross-validating SetFit, a fold half-written (its folds keep no checkpoint): the same command
    # keeps fine-tuning's finished cross-validation and starts SetFit's over
    stopped = tmp_path / "stopped"
    stopped.mkdir()
    for name in (".textcls_run.json", "recipe.json"):
        shutil.copy(out / name, stopped / name)
    shutil.copytree(out / "auto_select", stopped / "auto_select")
    (stopped / "auto_select" / "selection.json").unlink()
    setfit = stopped / "auto_select" / "setfit"
    for name in ("candidate.json", "oof_predictions.jsonl", "cv_results.json"):
        (setfit / name).unlink()
    (setfit / "folds" / "fold-1").mkdir(parents=True)
    for name in (".textcls_run.json", "recipe.json", "all_results.json"):  # a run's files, and no model
        shutil.copy(out / name, setfit / "folds" / "fold-1" / name)
    assert R.main([*argv, "--output_dir", str(stopped)])["eval_accuracy"] == results["eval_accuracy"]
    log = capsys.readouterr().out
    assert "finetune-small cross-validated by an earlier run of this command" in log
    assert "setfit was stopped mid-way; it starts over" in log
    assert json.loads((stopped / "auto_select" / "selection.json").read_text())["scores"] == selection["scores"]
