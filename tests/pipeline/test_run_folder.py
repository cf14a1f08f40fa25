"""The output folder a run can trust (textcls.train.run_folder): damaged checkpoints are skipped and removed, a full
disk is one clear error that keeps the last good checkpoint, a resume with other training settings is refused, a
finished run asked again trains nothing, one run holds a folder at a time, and --overwrite_output_dir clears only a
folder of ours.

One finished run (module fixture) with a checkpoint every 2 of its 8 steps; each test copies it and damages the copy
as a kill, a full disk or a user would."""

import errno
import json
import os
import re
import shutil
import signal
from types import SimpleNamespace

import pytest
import safetensors.torch
import torch
from safetensors.torch import load_file

import run_classification as R
from tests.helpers import ROOT, sentiment_rows, write_rows
from textcls.errors import UserError
from textcls.train import run_folder as RF
from textcls.train.resume import GracefulStop

STEPS = 8


def argv_for(model, files, out, *extra):
    return [
        "--model", model, "--train_file", files["train"], "--validation_file", files["dev"],
        "--test_file", files["test"], "--do_train", "--do_eval", "--do_predict", "--output_dir", str(out),
        "--use_cpu", "--seed", "0", "--per_device_train_batch_size", "4", "--per_device_eval_batch_size", "8",
        "--num_train_epochs", "2", "--learning_rate", "1e-3", "--save_strategy", "steps", "--save_steps", "2",
        "--logging_steps", "2", "--disable_tqdm", "true", "--plots", "false",
        "--save_total_limit", "10",  # every checkpoint, which killed_copy picks from (the default keeps the newest)
        *extra,
    ]  # fmt: skip


@pytest.fixture(scope="module")
def done(tiny_bert, tmp_path_factory):
    folder = tmp_path_factory.mktemp("run-folder")
    files = {
        "train": write_rows(folder / "train.csv", sentiment_rows(16, 0)),
        "dev": write_rows(folder / "dev.csv", sentiment_rows(8, 1)),
        "test": write_rows(folder / "test.csv", sentiment_rows(5, 2)),
    }
    out = folder / "done"
    R.main(argv_for(tiny_bert, files, out))
    return SimpleNamespace(out=out, files=files, argv=lambda o, *extra: argv_for(tiny_bert, files, o, *extra))


def killed_copy(done, tmp_path, after_step: int):
    """The folder a kill -9 right after checkpoint-<after_step> leaves: marker, recipe and the checkpoints so far."""
    out = tmp_path / "out"
    out.mkdir()
    for name in (RF.MARKER, "recipe.json"):
        shutil.copy(done.out / name, out / name)
    for step in range(2, after_step + 1, 2):
        shutil.copytree(done.out / f"checkpoint-{step}", out / f"checkpoint-{step}")
    return out


def same_weights(a, b) -> bool:
    x, y = load_file(a / "model.safetensors"), load_file(b / "model.safetensors")
    return x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x)


def cut(path, keep=0.5):
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


# ------------------------------------------------------------------------------------------------ damaged checkpoints

DAMAGES = {
    "model cut in half": lambda c: cut(c / "model.safetensors"),
    "optimizer cut in half": lambda c: cut(c / "optimizer.pt"),
    "rng state truncated": lambda c: cut(c / "rng_state.pth", 0.9),
    "model missing": lambda c: (c / "model.safetensors").unlink(),
    "scheduler missing": lambda c: (c / "scheduler.pt").unlink(),
    "trainer state cut": lambda c: cut(c / "trainer_state.json"),
    "manifest never written": lambda c: ((c / RF.MANIFEST).unlink(), cut(c / "optimizer.pt")),
}


@pytest.mark.parametrize("damage", list(DAMAGES))
def test_every_kind_of_damage_makes_a_checkpoint_incomplete(done, tmp_path, damage):
    checkpoint = tmp_path / "checkpoint-4"
    shutil.copytree(done.out / "checkpoint-4", checkpoint)
    assert RF.checkpoint_problem(str(checkpoint)) is None
    DAMAGES[damage](checkpoint)
    assert RF.checkpoint_problem(str(checkpoint)) is not None


def test_a_checkpoint_without_a_manifest_counts_when_every_file_is_whole(done, tmp_path):
    """Checkpoints written before manifests existed (or by stock Trainer) are judged by their files alone."""
    checkpoint = tmp_path / "checkpoint-4"
    shutil.copytree(done.out / "checkpoint-4", checkpoint)
    (checkpoint / RF.MANIFEST).unlink()
    assert RF.checkpoint_problem(str(checkpoint)) is None


def test_a_damaged_last_checkpoint_is_skipped_removed_and_the_rerun_resumes_from_the_one_before(
    done, tmp_path, capsys
):
    out = killed_copy(done, tmp_path, after_step=6)
    cut(out / "checkpoint-6" / "optimizer.pt")
    (out / "checkpoint-4" / "model.safetensors").unlink()
    R.main(done.argv(out))
    log = capsys.readouterr().out
    assert "checkpoint-6 cannot be resumed from (optimizer.pt is " in log and "when it was saved" in log
    assert "checkpoint-4 cannot be resumed from (model.safetensors is missing)" in log
    assert f"Resuming from {out / 'checkpoint-2'}" in log
    assert same_weights(done.out, out)  # the run resumed at step 2 ends as the uninterrupted one
    assert json.loads((out / "train_results.json").read_text())["resumed_from_step"] == 2


@pytest.mark.parametrize("damage", ["truncated weights", "broken config"])
def test_a_damaged_model_folder_given_as_model_is_one_clear_error(done, tmp_path, capsys, damage):
    model = tmp_path / "model"
    shutil.copytree(done.out, model, ignore=shutil.ignore_patterns("checkpoint-*"))
    if damage == "truncated weights":
        cut(model / "model.safetensors")
    else:
        (model / "config.json").write_text('{"model_type": "bert", ')
    argv = [
        "--model",
        str(model),
        "--validation_file",
        done.files["dev"],
        "--do_eval",
        "--output_dir",
        str(tmp_path / "o"),
    ]
    assert R.cli(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "Traceback" not in err
    assert ("model.safetensors is truncated" if damage == "truncated weights" else "config.json cannot be read") in err
    assert not (tmp_path / "o").exists()


# ------------------------------------------------------------------------------------------------ a full disk


def no_space_on(monkeypatch, save_number: int):
    """safetensors' save raises ENOSPC on its save_number-th call, as it does when the disk fills up mid-write (after
    writing part of the file)."""
    calls = []
    real = safetensors.torch.save_file
    import transformers.modeling_utils

    def save_file(tensors, filename, *args, **kwargs):
        calls.append(filename)
        if len(calls) == save_number:
            with open(filename, "wb") as f:
                f.write(b"\0" * 100)
            raise OSError(errno.ENOSPC, "No space left on device", filename)
        return real(tensors, filename, *args, **kwargs)

    monkeypatch.setattr(transformers.modeling_utils, "safe_save_file", save_file)  # as transformers imports it
    return calls


def test_a_full_disk_while_checkpointing_keeps_the_last_complete_one_and_the_rerun_resumes(
    done, tmp_path, monkeypatch, capsys
):
    out = tmp_path / "out"
    no_space_on(monkeypatch, save_number=2)  # checkpoint-2 saves, checkpoint-4 hits the full disk
    assert R.cli(done.argv(out)) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: the disk holding") and "Traceback" not in err
    assert "saving checkpoint-4 needs about" in err and "free" in err
    assert f"Kept: {out / 'checkpoint-2'}, complete" in err and "it resumes from there" in err
    assert not (out / "checkpoint-4").exists()  # the partial one is gone: it holds the space the next save needs
    monkeypatch.undo()
    R.main(done.argv(out))
    assert same_weights(done.out, out)


def test_a_full_disk_at_the_final_save_keeps_the_checkpoint_and_the_rerun_saves_the_model(
    done, tmp_path, monkeypatch, capsys
):
    out = tmp_path / "out"
    no_space_on(monkeypatch, save_number=STEPS // 2 + 1)  # every checkpoint saves, the final model does not
    assert R.cli(done.argv(out)) == 2
    err = capsys.readouterr().err
    assert "saving the trained model needs about" in err and f"Kept: {out / 'checkpoint-8'}, complete" in err
    assert not RF.is_finished(str(out))
    monkeypatch.undo()
    R.main(done.argv(out))
    assert same_weights(done.out, out)


def test_a_full_disk_at_the_final_save_without_checkpoints_says_the_training_is_lost(
    done, tmp_path, monkeypatch, capsys
):
    no_space_on(monkeypatch, save_number=1)
    assert R.cli(done.argv(tmp_path / "out", "--save_strategy", "no")) == 2
    err = capsys.readouterr().err
    assert "No checkpoint was kept (--save_strategy no), so the training is lost" in err


def test_a_disk_without_room_for_the_model_is_refused_before_training(done, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(RF, "free_bytes", lambda path: 1000)
    out = tmp_path / "out"
    assert R.cli(done.argv(out)) == 2
    err = capsys.readouterr().err
    assert "has 1.0 KB free, and this run needs about" in err and "a checkpoint" in err
    assert not out.exists()


def test_a_full_datasets_cache_is_not_blamed_on_the_csv(done, tmp_path, monkeypatch, capsys):
    import datasets

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "cache"))

    monkeypatch.setattr(datasets, "load_dataset", full)
    assert R.cli(done.argv(tmp_path / "out")) == 2
    err = capsys.readouterr().err
    assert "disk" in err and "full" in err and "quot" not in err


# ------------------------------------------------------------------------------------------------ changed settings


def test_a_finished_run_asked_again_trains_nothing_and_evaluates_its_model(done, tmp_path, capsys):
    out = tmp_path / "out"
    shutil.copytree(done.out, out)
    before = {n: (out / n).read_bytes() for n in ("model.safetensors", "train_results.json", "recipe.json")}
    results = R.main(done.argv(out))
    log = capsys.readouterr().out
    assert "training finished earlier" in log and "nothing is trained again" in log
    assert {n: (out / n).read_bytes() for n in before} == before  # the training record is the real one
    assert "eval_accuracy" in results and (out / "recipe_eval.json").is_file()
    assert json.loads((out / "eval_results.json").read_text())["eval_accuracy"] == results["eval_accuracy"]


@pytest.mark.parametrize(
    "flags, named",
    [
        (["--learning_rate", "0.01"], "--learning_rate 0.01 (it was 0.001)"),
        (["--per_device_train_batch_size", "2"], "--per_device_train_batch_size 2 (it was 4)"),
        (["--seed", "1"], "--seed 1 (it was 0)"),
    ],
)
@pytest.mark.parametrize("state", ["finished", "interrupted"])
def test_other_training_settings_are_refused_naming_each_difference(done, tmp_path, capsys, flags, named, state):
    out = tmp_path / "out"
    if state == "finished":
        shutil.copytree(done.out, out)
    else:
        out = killed_copy(done, tmp_path, after_step=4)
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert R.cli(done.argv(out, *flags)) == 2
    err = capsys.readouterr().err
    assert named in err and "--overwrite_output_dir" in err and "another --output_dir" in err
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before  # recipe.json does not lie


def test_other_training_data_is_refused_and_a_moved_copy_resumes(done, tmp_path, capsys):
    out = killed_copy(done, tmp_path, after_step=4)
    moved = str(shutil.copy(done.files["train"], tmp_path / "moved.csv"))
    argv = done.argv(out)
    argv[argv.index("--train_file") + 1] = moved
    changed = tmp_path / "changed.csv"
    changed.write_text(open(moved).read().replace("good", "bad", 1))
    argv_changed = list(argv)
    argv_changed[argv.index("--train_file") + 1] = str(changed)
    assert R.cli(argv_changed) == 2
    assert "the training data's content" in capsys.readouterr().err
    R.main(argv + ["--logging_steps", "1", "--per_device_eval_batch_size", "3"])  # safe to change
    assert same_weights(done.out, out)


def test_save_strategy_may_change_on_resume_unless_the_best_checkpoint_is_loaded(done, tmp_path):
    # a run started with --save_strategy no (stopped by a signal, which checkpoints anyway) may go on with periodic
    # checkpoints: which checkpoints are written trains nothing differently, unless the best one is loaded at the end
    out = killed_copy(done, tmp_path, after_step=4)
    R.main(done.argv(out, "--save_strategy", "epoch"))
    assert same_weights(done.out, out)
    saved = {"save_strategy": "no", "load_best_model_at_end": False}
    assert RF.settings_differences(saved, {**saved, "save_strategy": "steps"}) == []
    best = {**saved, "load_best_model_at_end": True}
    assert RF.settings_differences(best, {**best, "save_strategy": "steps"}) == ["--save_strategy steps (it was no)"]


def test_a_flag_added_after_a_checkpoint_is_no_change_at_the_value_its_code_had(tmp_path):
    # checkpoints of code before --tokenize: settings without it; that code tokenized up front
    old = {"learning_rate": 1e-3}
    assert RF.settings_differences(old, {**old, "tokenize": "auto"}) == []
    assert RF.settings_differences(old, {**old, "tokenize": "upfront"}) == []
    assert RF.settings_differences(old, {**old, "tokenize": "per_batch"}) == ["--tokenize per_batch (it was unset)"]
    assert RF.settings_differences({**old, "tokenize": "upfront"}, {**old, "tokenize": "auto"}) == [
        "--tokenize auto (it was upfront)"
    ]  # fmt: skip  (recorded: compared as ever)
    checkpoint = tmp_path / "checkpoint-5"
    checkpoint.mkdir()
    assert RF.decided(str(checkpoint)) == {"tokenize": "upfront"}  # no settings recorded at all
    (checkpoint / RF.SETTINGS).write_text(json.dumps(old))
    assert RF.decided(str(checkpoint)) == {"tokenize": "upfront"}
    (checkpoint / RF.SETTINGS).write_text(
        json.dumps({**old, "tokenize": "auto", RF.DECIDED: {"tokenize": "per_batch"}})
    )
    # (and sorted its length groups by the byte estimates: no length_order recorded then)
    assert RF.decided(str(checkpoint)) == {"tokenize": "per_batch", "length_order": "estimated"}
    (checkpoint / RF.SETTINGS).write_text(
        json.dumps({**old, "tokenize": "auto", RF.DECIDED: {"tokenize": "per_batch", "length_order": "measured"}})
    )
    assert RF.decided(str(checkpoint)) == {"tokenize": "per_batch", "length_order": "measured"}
    assert RF.decided(None) == {}


def test_bf16_unset_resumes_as_the_checkpoint_trained(tmp_path):
    old = {"learning_rate": 1e-3, "bf16": False}  # code from before --bf16 could be unset: always set
    assert RF.settings_differences(old, {**old, "bf16": None}) == []  # resumes in fp32, read back by decided()
    assert RF.settings_differences(old, {**old, "bf16": True}) == ["--bf16 True (it was False)"]
    auto = {"learning_rate": 1e-3, "bf16": None, RF.DECIDED: {"bf16": True}}  # unset, decided bf16 on an AMX CPU
    now = {"learning_rate": 1e-3}
    assert RF.settings_differences(auto, {**now, "bf16": None}) == []
    assert RF.settings_differences(auto, {**now, "bf16": True}) == []  # what it decided, now given
    assert RF.settings_differences(auto, {**now, "bf16": False}) == ["--bf16 False (it was unset)"]
    checkpoint = tmp_path / "checkpoint-5"
    checkpoint.mkdir()
    for saved, bf16 in ((old, False), ({**old, "bf16": True}, True), (auto, True)):
        (checkpoint / RF.SETTINGS).write_text(json.dumps(saved))
        assert RF.decided(str(checkpoint))["bf16"] is bf16


def test_readme_lists_the_flags_safe_to_change_on_resume():
    readme = open(os.path.join(ROOT, "README.md")).read()
    section = readme.split("### Interruptions", 1)[1].split("\n### ", 1)[0]
    listed = set(re.findall(r"`--([a-z0-9_]+)`", section.split("These may change on a resume", 1)[1]))
    missing = [f for f in RF.SAFE_TO_CHANGE + RF.SAFE_WITHOUT_EVAL_DURING_TRAINING + RF.SAFE_WITHOUT_LOAD_BEST
               if f not in listed]  # fmt: skip
    assert not missing, missing


# ------------------------------------------------------------------------------------------------ lock and overwrite


def test_a_second_run_on_a_held_folder_is_refused_naming_the_holder(done, tmp_path, capsys):
    out = tmp_path / "out"
    held = RF.OutputLock(str(out)).acquire()
    try:
        assert R.cli(done.argv(out)) == 2
    finally:
        held.release()
    err = capsys.readouterr().err
    assert f"is in use by another run (process {os.getpid()} on " in err
    assert not any(n.startswith("checkpoint") for n in os.listdir(out))


def test_a_lock_left_by_a_killed_run_is_taken_over_with_a_warning(done, tmp_path, capsys):
    out = killed_copy(done, tmp_path, after_step=6)
    (out / RF.LOCK).write_text('{"pid": 999999, "host": "gone", "started": "2026-01-01 00:00:00"}')
    R.main(done.argv(out))
    assert "ended without releasing it (process 999999 on gone" in capsys.readouterr().out
    assert same_weights(done.out, out) and not (out / RF.LOCK).exists()


def test_overwrite_refuses_a_folder_no_run_of_ours_made(done, tmp_path, capsys):
    out = tmp_path / "project"
    out.mkdir()
    (out / "README.md").write_text("my project")
    assert R.cli(done.argv(out, "--overwrite_output_dir")) == 2
    assert "holds files that no run of run_classification.py wrote (README.md)" in capsys.readouterr().err
    assert os.listdir(out) == ["README.md"] and (out / "README.md").read_text() == "my project"


def test_overwrite_clears_a_folder_of_ours_old_checkpoints_included(done, tmp_path):
    out = killed_copy(done, tmp_path, after_step=6)
    (out / "checkpoint-6" / "model.safetensors").unlink()
    R.main(done.argv(out, "--overwrite_output_dir", "--save_strategy", "no"))
    assert not any(n.startswith("checkpoint") for n in os.listdir(out))
    assert same_weights(done.out, out)


# ------------------------------------------------------------------------------------------------ interruptions


def test_ctrl_c_while_evaluating_after_training_says_the_rerun_evaluates_and_it_does(
    done, tmp_path, monkeypatch, capsys
):
    from textcls.evaluation import predict as evaluation

    out = tmp_path / "out"
    argv = done.argv(out, "--save_strategy", "no")
    real = evaluation.evaluate_and_predict
    # Python's own Ctrl-C handler, as a fresh process has it: an earlier in-process test on this worker can leave
    # another one installed (seen once in a fresh clone's suite: the SIGINT was swallowed and evaluation went on).
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    request_restore = lambda: signal.signal(signal.SIGINT, previous)  # noqa: E731
    monkeypatch.setattr(R, "evaluate_and_predict", lambda *a, **k: signal.raise_signal(signal.SIGINT))
    assert R.cli(argv) == 130
    err = capsys.readouterr().err
    assert "run the same command again to evaluate and predict with it (nothing is trained again)" in err
    monkeypatch.setattr(R, "evaluate_and_predict", real)
    before = (out / "model.safetensors").read_bytes()
    assert "eval_accuracy" in R.main(argv)
    assert (out / "model.safetensors").read_bytes() == before and (out / "predictions.jsonl").is_file()
    request_restore()


def test_ctrl_c_under_overwrite_says_the_rerun_starts_over_and_how_to_resume_instead(
    done, tmp_path, monkeypatch, capsys
):
    out = tmp_path / "out"
    original = GracefulStop.on_step_end

    def ctrl_c_at_step_3(self, args, state, control, **kwargs):
        if state.global_step == 3:
            signal.raise_signal(signal.SIGINT)
        return original(self, args, state, control, **kwargs)

    monkeypatch.setattr(GracefulStop, "on_step_end", ctrl_c_at_step_3)
    assert R.cli(done.argv(out, "--overwrite_output_dir")) == 128 + signal.SIGINT
    err = capsys.readouterr().err
    assert "Run the same command again to start over (--overwrite_output_dir clears" in err
    assert f"drop --overwrite_output_dir to resume from {out / 'checkpoint-3'} instead" in err
    monkeypatch.setattr(GracefulStop, "on_step_end", original)
    R.main(done.argv(out))  # without the flag: resumes, as the message said
    assert same_weights(done.out, out)


def test_a_refused_run_leaves_no_folder_and_no_lock(done, tmp_path):
    out = tmp_path / "out"
    with pytest.raises(UserError):
        R.main(done.argv(out, "--text_column", "nope"))
    assert not out.exists()


def test_predicting_unlabelled_rows_with_the_training_commands_label_column(done, tmp_path):
    """Test labels are optional: --label_column names them where the file has them."""
    unlabelled = write_rows(tmp_path / "new.csv", [{"sentence": r["sentence"]} for r in sentiment_rows(4, 3)])
    out = tmp_path / "pred"
    argv = ["--model", str(done.out), "--test_file", unlabelled, "--do_predict", "--label_column", "label"]
    R.main([*argv, "--output_dir", str(out)])
    rows = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert len(rows) == 4 and all("prediction" in r or "label" in r for r in rows)


def test_an_unknown_gold_class_with_a_saved_model_gives_advice_that_does_not_loop(done, tmp_path, capsys):
    rows = [{"sentence": r["sentence"], "label": 7} for r in sentiment_rows(3, 3)]
    argv = ["--model", str(done.out), "--test_file", write_rows(tmp_path / "g.csv", rows), "--do_predict"]
    assert R.cli([*argv, "--output_dir", str(tmp_path / "p")]) == 2
    err = capsys.readouterr().err
    assert "never seen in training: 7" in err and "A saved model predicts only its own classes" in err
