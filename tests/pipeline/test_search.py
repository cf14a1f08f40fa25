"""--hp_trials / --hp_space: optuna trials recorded, the best written as a recipe that replays to the same metric, a
search continued (a trial a kill left running is run again), bad spaces refused before anything runs."""

import json
import os

import optuna
import pytest

import run_classification as R
from tests.helpers import TRAIN_FLAGS

SPACE = {
    "learning_rate": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True},
    "num_train_epochs": {"type": "categorical", "choices": [1, 2]},
}


def command(tiny_bert, sentiment_files, out, trials) -> list[str]:
    argv = [
        "--model",
        tiny_bert,
        "--train_file",
        sentiment_files["train"],
        "--validation_file",
        sentiment_files["dev"],
    ]
    return [*argv, "--do_train", "--do_eval", "--output_dir", str(out), *TRAIN_FLAGS, "--hp_trials", str(trials)]


def search(tiny_bert, sentiment_files, out, trials, space=SPACE, *flags):
    return R.main([*command(tiny_bert, sentiment_files, out, trials), "--hp_space", json.dumps(space), *flags])


def test_two_trials_are_recorded_and_the_best_recipe_replays(tiny_bert, sentiment_files, tmp_path):
    out = tmp_path / "hp"
    best = search(tiny_bert, sentiment_files, out, 2, SPACE, "--save_strategy", "steps", "--save_steps", "2")
    record = json.loads((out / "hp_trials.json").read_text())
    assert [t["number"] for t in record["trials"]] == [0, 1]
    # what reproduces it: the command line, the commit, the machine
    assert (
        record["command"].startswith("python run_classification.py --model ") and "--hp_trials 2" in record["command"]
    )
    assert "git_sha" in record and record["environment"]["cpu_count"] >= 1
    assert all(t["state"] == "COMPLETE" and set(t["params"]) == set(SPACE) for t in record["trials"])
    values = [t["eval_accuracy"] for t in record["trials"]]
    assert record["best"]["eval_accuracy"] == best["objective"] == max(values)
    assert (out / "hp_trials.png").stat().st_size > 1000
    assert not list(out.rglob("checkpoint-*"))  # asked to save every 2 steps, trials still keep no checkpoints
    recipe = json.loads((out / "best_recipe.json").read_text())
    assert recipe["learning_rate"] == best["params"]["learning_rate"] and "hp_trials" not in recipe
    replay = R.main([str(out / "best_recipe.json")])
    assert replay["eval_accuracy"] == pytest.approx(best["objective"], abs=1e-6)


def test_a_rerun_continues_the_search_and_reruns_a_trial_cut_off(tiny_bert, sentiment_files, tmp_path):
    out = tmp_path / "hp"
    search(tiny_bert, sentiment_files, out, 1)
    first = json.loads((out / "hp_trials.json").read_text())["trials"][0]
    storage = f"sqlite:///{out / 'hp_search.db'}"
    optuna.load_study(study_name="run_classification", storage=storage).ask()  # a trial a kill left running
    search(tiny_bert, sentiment_files, out, 2)
    trials = json.loads((out / "hp_trials.json").read_text())["trials"]
    assert trials[0] == first  # kept, not run again
    assert [t["state"] for t in trials] == ["COMPLETE", "FAIL", "COMPLETE"]


@pytest.mark.parametrize(
    "space, error",
    [
        (
            {"learning_rat": {"type": "float", "low": 1, "high": 2}},
            "names 'learning_rat', which is not a training flag",
        ),
        ({"learning_rate": {"type": "float", "low": 1e-3, "high": 1e-5}}, "low 0.001 is above high 1e-05"),
        ({"num_train_epochs": {"type": "categorical", "choices": []}}, "needs a non-empty list of 'choices'"),
        ({"learning_rate": {"type": "uniform", "low": 0, "high": 1}}, "'type' must be one of float, int, categorical"),
        ({"learning_rate": {"type": "float", "low": 0, "high": 1, "log": True}}, "a log range needs low above 0"),
        ({}, "give a JSON object of flag -> range"),
    ],
)
def test_bad_spaces_are_one_clear_error_before_anything_runs(
    tiny_bert, sentiment_files, tmp_path, capsys, space, error
):
    argv = command(tiny_bert, sentiment_files, tmp_path / "o", 2)
    assert R.cli([*argv, "--hp_space", json.dumps(space)]) == 2
    assert error in capsys.readouterr().err
    assert not os.path.exists(tmp_path / "o")


def test_a_search_needs_both_flags(tiny_bert, sentiment_files, tmp_path, capsys):
    argv = command(tiny_bert, sentiment_files, tmp_path / "o", 2)
    assert R.cli(argv) == 2
    assert "needs both --hp_trials and --hp_space: pass --hp_space" in capsys.readouterr().err


def test_a_study_in_hp_storage_outlives_its_output_dir_and_keeps_its_space(
    tiny_bert, sentiment_files, tmp_path, capsys
):
    """--hp_storage FILE (optuna's journal: JSON lines) holds the study outside output_dir: another output_dir (a new
    machine, the same file copied over) continues it; a different space or objective is refused before any trial;
    --overwrite_output_dir starts the study over."""
    journal = tmp_path / "kept" / "study.jsonl"
    search(tiny_bert, sentiment_files, tmp_path / "a", 1, SPACE, "--hp_storage", str(journal))
    first = json.loads((tmp_path / "a" / "hp_trials.json").read_text())["trials"][0]
    assert not (tmp_path / "a" / "hp_search.db").exists()
    assert all(json.loads(line) for line in journal.read_text().splitlines())  # a text file to keep with results

    search(tiny_bert, sentiment_files, tmp_path / "b", 2, SPACE, "--hp_storage", str(journal))
    trials = json.loads((tmp_path / "b" / "hp_trials.json").read_text())["trials"]
    assert trials[0] == first and [t["number"] for t in trials] == [0, 1]

    # the same command run again in the same output_dir continues (nothing to do), it is not "a non-empty folder"
    search(tiny_bert, sentiment_files, tmp_path / "b", 2, SPACE, "--hp_storage", str(journal))
    assert json.loads((tmp_path / "b" / "hp_trials.json").read_text())["trials"] == trials

    size = journal.stat().st_size
    other = {**SPACE, "num_train_epochs": {"type": "categorical", "choices": [1, 3]}}
    argv = [*command(tiny_bert, sentiment_files, tmp_path / "c", 3), "--hp_storage", str(journal)]
    assert R.cli([*argv, "--hp_space", json.dumps(other)]) == 2
    err = capsys.readouterr().err
    assert "was searched over another space" in err and "num_train_epochs" in err and "--overwrite_output_dir" in err
    assert not (tmp_path / "c").exists() and journal.stat().st_size == size
    assert R.cli([*argv, "--hp_space", json.dumps(SPACE), "--metric_for_best_model", "loss"]) == 2
    assert "scored eval_accuracy (maximize), not eval_loss (minimize)" in capsys.readouterr().err
    assert not (tmp_path / "c").exists()
    assert journal.stat().st_size == size

    search(
        tiny_bert, sentiment_files, tmp_path / "c", 1, other, "--hp_storage", str(journal), "--overwrite_output_dir"
    )
    trials = json.loads((tmp_path / "c" / "hp_trials.json").read_text())["trials"]
    assert [t["number"] for t in trials] == [0] and trials[0]["params"]["num_train_epochs"] in (1, 3)
