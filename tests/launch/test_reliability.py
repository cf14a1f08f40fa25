"""Reliability: an interrupted run (kill -9, SIGTERM, Ctrl-C) resumes with the same command and ends bit-identical to
one never interrupted; bad input gets one clear line and leaves no output_dir; outputs are never half-written.

The fault tests share one uninterrupted reference run (module fixture): 32 rows, batch 4, 3 epochs = 24 steps, with
dropout (the tiny BERT's 0.1), length-grouped shuffling, a new 3-class head, a checkpoint every 5 steps and a log
every 2, so checkpoints fall mid-epoch and between two logs, and an evaluation at the end of each epoch."""

import glob
import json
import os
import re
import shutil
import signal
import time
from types import SimpleNamespace

import datasets
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from safetensors.torch import load_file

import run_classification as R
from tests.helpers import signal_at_step, start_with_signal_at_step, three_class_rows, write_rows
from textcls.data import labels as L
from textcls.data import tokenization as T
from textcls.errors import UserError
from textcls.io import write_text_atomic
from textcls.train.resume import GracefulStop
from textcls.train.run_folder import checkpoint_problem, last_complete_checkpoint, plan_output_dir, write_manifest

STEPS_PER_EPOCH = 8
TOTAL_STEPS = 24
TIMING = ("runtime", "per_second")


def run_argv(model, files, out):
    return [
        "--model", model, "--train_file", files["train"], "--validation_file", files["dev"],
        "--test_file", files["test"], "--do_train", "--do_eval", "--do_predict", "--output_dir", str(out),
        "--use_cpu", "--seed", "0", "--per_device_train_batch_size", "4", "--per_device_eval_batch_size", "8",
        "--num_train_epochs", "3", "--learning_rate", "1e-3", "--save_strategy", "steps", "--save_steps", "5",
        "--save_total_limit", "2", "--logging_steps", "2", "--eval_strategy", "epoch", "--disable_tqdm", "true",
    ]  # fmt: skip


@pytest.fixture(scope="module")
def reference(tiny_bert, tmp_path_factory):
    """The uninterrupted run, recording which files were put in place by an atomic rename."""
    folder = tmp_path_factory.mktemp("reliability")
    files = {
        "train": write_rows(folder / "train.csv", three_class_rows(32, 0)),
        "dev": write_rows(folder / "dev.csv", three_class_rows(12, 1)),
        "test": write_rows(folder / "test.csv", three_class_rows(6, 2)),
    }
    out = folder / "reference"
    renamed = []
    real_replace = os.replace
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(os, "replace", lambda src, dst: renamed.append(dst) or real_replace(src, dst))
        R.main(run_argv(tiny_bert, files, out))
    return SimpleNamespace(out=out, argv=lambda o: run_argv(tiny_bert, files, o), renamed=renamed)


def assert_same_run(expected, got):
    """Bit-identical weights, metrics (but timings), predictions, and logged losses and evaluations."""
    a, b = load_file(expected / "model.safetensors"), load_file(got / "model.safetensors")
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a), [k for k in a if not torch.equal(a[k], b[k])]

    def metrics(folder):
        results = json.loads((folder / "all_results.json").read_text())
        # a resumed run's training record says where it resumed (its runtime is the resumed part's)
        return {k: v for k, v in results.items() if not any(t in k for t in TIMING) and k != "resumed_from_step"}

    assert metrics(got) == metrics(expected)
    assert (got / "predictions.jsonl").read_text() == (expected / "predictions.jsonl").read_text()

    def history(folder):
        logs = json.loads((folder / "trainer_state.json").read_text())["log_history"]
        return [{k: v for k, v in entry.items() if not any(t in k for t in TIMING)} for entry in logs]

    assert history(got) == history(expected)
    assert sum("loss" in entry for entry in history(got)) == TOTAL_STEPS // 2
    assert sum("eval_loss" in entry for entry in history(got)) == TOTAL_STEPS // STEPS_PER_EPOCH


def checkpoint_is_complete(path, step) -> bool:
    return checkpoint_problem(str(path), step) is None


# ------------------------------------------------------------------------------------------------ faults


def test_kill_9_mid_epoch_then_the_same_command_resumes_bit_identical(reference, tmp_path, capsys):
    out = tmp_path / "out"
    argv = reference.argv(out)
    # Killed at step 11, after checkpoint-10: the resumed run starts in the second epoch and crosses into the third.
    proc = start_with_signal_at_step(argv, tmp_path, 11, signal.SIGKILL)
    assert proc.wait(timeout=600) == -signal.SIGKILL, (tmp_path / "stderr").read_text()[-2000:]
    assert not (out / "model.safetensors").exists() and not (out / "all_results.json").exists()
    resumed_from = last_complete_checkpoint(out)
    assert resumed_from == str(out / "checkpoint-10") and 10 % STEPS_PER_EPOCH != 0  # mid-epoch

    R.main(argv)
    assert f"Resuming from {resumed_from}" in capsys.readouterr().out
    assert_same_run(reference.out, out)


def test_sigterm_saves_a_checkpoint_at_the_next_step_and_exits_then_resumes(reference, tmp_path):
    out = tmp_path / "out"
    argv = reference.argv(out)
    proc = start_with_signal_at_step(argv, tmp_path, 6, signal.SIGTERM)  # past checkpoint-5, not a save step
    proc.wait(timeout=600)
    err = (tmp_path / "stderr").read_text()
    assert proc.returncode == 128 + signal.SIGTERM, err[-2000:]
    assert "Traceback" not in err
    found = re.search(r"stopped by SIGTERM at step (\d+): checkpoint saved in (\S+)\. Run the same command again", err)
    assert found, err[-2000:]
    step, checkpoint = int(found.group(1)), found.group(2)
    assert step == 6 and checkpoint == str(out / "checkpoint-6")  # at the step it came, not the next save
    assert checkpoint_is_complete(checkpoint, step) and last_complete_checkpoint(out) == checkpoint
    # Stopped, not finished: nothing in output_dir claims to be the final model or results.
    assert not (out / "model.safetensors").exists() and not (out / "train_results.json").exists()

    R.main(argv)
    assert_same_run(reference.out, out)


def test_ctrl_c_checkpoints_at_the_step_boundary_and_a_half_written_checkpoint_is_skipped(
    reference, tmp_path, monkeypatch, capsys
):
    out = tmp_path / "out"
    argv = reference.argv(out)
    original = GracefulStop.on_step_end

    def ctrl_c_at_step_7(self, args, state, control, **kwargs):
        if state.global_step == 7:
            signal.raise_signal(signal.SIGINT)
        return original(self, args, state, control, **kwargs)

    monkeypatch.setattr(GracefulStop, "on_step_end", ctrl_c_at_step_7)
    handler = signal.getsignal(signal.SIGINT)
    assert R.cli(argv) == 128 + signal.SIGINT
    err = capsys.readouterr().err
    assert f"stopped by SIGINT at step 7: checkpoint saved in {out / 'checkpoint-7'}. Run the same command" in err
    assert checkpoint_is_complete(out / "checkpoint-7", 7)  # step 7 is neither a save nor a log step
    assert signal.getsignal(signal.SIGINT) is handler  # put back once training stopped
    monkeypatch.setattr(GracefulStop, "on_step_end", original)

    # A kill while saving checkpoint-9 would have left this: newer, but with a truncated state and weights.
    partial = out / "checkpoint-9"
    shutil.copytree(out / "checkpoint-7", partial)
    for name in ("trainer_state.json", "model.safetensors"):
        data = (partial / name).read_bytes()
        (partial / name).write_bytes(data[: len(data) // 2])
    loads = []
    real_load = torch.load
    monkeypatch.setattr(torch, "load", lambda *a, **k: loads.append(k.get("weights_only")) or real_load(*a, **k))

    R.main(argv)
    assert f"Resuming from {out / 'checkpoint-7'}" in capsys.readouterr().out
    assert_same_run(reference.out, out)
    # Resuming unpickles the optimizer, scheduler and RNG states, all in torch's weights-only mode.
    assert loads and all(w is True for w in loads)


def epoch_evaluations(checkpoint):
    logs = json.loads((checkpoint / "trainer_state.json").read_text())["log_history"]
    return [entry["epoch"] for entry in logs if "eval_loss" in entry]


@pytest.mark.parametrize("save_strategy, step", [("steps", STEPS_PER_EPOCH), ("best", 2 * STEPS_PER_EPOCH)])
def test_a_stop_at_an_epochs_last_step_checkpoints_after_its_evaluation_and_resumes_bit_identical(
    reference, tmp_path, monkeypatch, save_strategy, step
):
    # Saved at the step's end, before the epoch's evaluation, the checkpoint had neither that evaluation in its log
    # nor the RNG state the evaluation leaves: the resumed run's next epoch drew other dropout masks. With best, the
    # second epoch's evaluation is no new best (the first's accuracy again) and must not cancel the stop's checkpoint.
    out = tmp_path / "out"
    argv = reference.argv(out) + ["--save_strategy", save_strategy]
    put_back = signal_at_step(monkeypatch, step)
    assert R.cli(argv) == 128 + signal.SIGTERM
    put_back()
    checkpoint = out / f"checkpoint-{step}"
    assert checkpoint_is_complete(checkpoint, step)
    assert epoch_evaluations(checkpoint) == [float(e + 1) for e in range(step // STEPS_PER_EPOCH)]
    R.main(argv)
    assert_same_run(reference.out, out)


def test_a_periodic_checkpoint_at_an_epochs_last_step_resumes_bit_identical(reference, tmp_path, capsys):
    # --save_steps 4 lands on each epoch's last step (8 steps an epoch). A kill -9 right after checkpoint-8 leaves
    # just that checkpoint to resume from: here, a copy of the whole run's.
    whole, out = tmp_path / "whole", tmp_path / "out"
    extra = ["--save_steps", "4", "--save_total_limit", "10"]
    R.main(reference.argv(whole) + extra)
    assert epoch_evaluations(whole / "checkpoint-16") == [1.0, 2.0]
    shutil.copytree(whole / "checkpoint-8", out / "checkpoint-8")
    R.main(reference.argv(out) + extra)
    assert f"Resuming from {out / 'checkpoint-8'}" in capsys.readouterr().out
    assert_same_run(reference.out, out)


def test_a_second_signal_stops_at_once():
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    stop = GracefulStop()
    stop.on_train_begin(None, None, None)
    try:
        signal.raise_signal(signal.SIGINT)
        assert stop.signum == signal.SIGINT
        with pytest.raises(KeyboardInterrupt):
            signal.raise_signal(signal.SIGINT)
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        stop.release()
        signal.signal(signal.SIGINT, previous)


def test_same_seed_twice_gives_identical_results(reference, tmp_path):
    # In the same process, after other runs moved the global RNG: the new head must still be drawn from --seed.
    again = tmp_path / "again"
    R.main(reference.argv(again))
    assert_same_run(reference.out, again)


def test_results_predictions_recipe_and_state_are_written_atomically(reference, tmp_path, monkeypatch):
    renamed = {os.path.basename(p) for p in reference.renamed}
    assert {
        "recipe.json",
        "train_results.json",
        "eval_results.json",
        "eval_classification_report.json",
        "predict_results.json",
        "all_results.json",
        "predictions.jsonl",
        "trainer_state.json",
        "README.md",
        "loss_state.json",
    } <= renamed
    assert not [name for _, _, names in os.walk(reference.out) for name in names if name.endswith(".tmp")]

    # A crash in the middle of a write leaves the previous file whole, and no temporary file behind.
    path = tmp_path / "all_results.json"
    path.write_text('{"old": 1}\n')

    def crash(fd):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "fsync", crash)
    with pytest.raises(KeyboardInterrupt):
        write_text_atomic(str(path), '{"new": 2}\n')
    monkeypatch.undo()
    assert path.read_text() == '{"old": 1}\n' and os.listdir(tmp_path) == ["all_results.json"]

    # The new file gets the permissions of any other file (mkstemp would make it private, 0600).
    write_text_atomic(str(tmp_path / "new.json"), "{}\n")
    (tmp_path / "plain.json").write_text("{}\n")
    assert os.stat(tmp_path / "new.json").st_mode == os.stat(tmp_path / "plain.json").st_mode


def test_output_dir_of_an_interrupted_run(reference, tmp_path):
    """Resume from the newest complete checkpoint; with none, start over if the run left nothing of the user's."""
    out = tmp_path / "out"
    out.mkdir()
    shutil.copy(reference.out / "recipe.json", out / "recipe.json")
    shutil.copytree(reference.out / "checkpoint-20", out / "checkpoint-4")
    state = json.loads((out / "checkpoint-4" / "trainer_state.json").read_text())
    (out / "checkpoint-4" / "trainer_state.json").write_text(json.dumps({**state, "global_step": 4}))
    write_manifest(str(out / "checkpoint-4"))
    (out / "checkpoint-8").mkdir()
    (out / "checkpoint-8" / "trainer_state.json").write_text('{"global_st')
    (out / "checkpoint-12").mkdir()
    args = SimpleNamespace(output_dir=str(out), do_train=True)
    plan = plan_output_dir(args, overwrite=False, settings=None)
    assert plan.resume_from == str(out / "checkpoint-4")
    assert [p for p, _ in plan.damaged] == [str(out / "checkpoint-12"), str(out / "checkpoint-8")]

    shutil.rmtree(out / "checkpoint-4")
    assert plan_output_dir(args, overwrite=False, settings=None).resume_from is None  # killed before its first one
    (out / "notes.txt").write_text("mine")
    with pytest.raises(UserError, match="no finished training and no complete checkpoint"):
        plan_output_dir(args, overwrite=False, settings=None)


# ------------------------------------------------------------------------------------------------ security


def test_weights_are_safetensors(reference):
    for folder in [reference.out, *glob.glob(str(reference.out / "checkpoint-*"))]:
        names = os.listdir(folder)
        assert "model.safetensors" in names
        # training_args.bin is Trainer's pickled arguments, never loaded; the weights are safetensors only.
        assert not [n for n in names if n.startswith(("pytorch_model", "tf_model", "flax_model", "adapter_model.bin"))]


# ------------------------------------------------------------------------------------------------ properties


MESSY = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-2, 12),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=4),
    st.lists(st.one_of(st.sampled_from(["a", "b"]), st.integers(0, 2), st.none()), max_size=3),
)


@given(st.lists(MESSY, min_size=1, max_size=12))
@settings(max_examples=150, deadline=None)
def test_messy_labels_give_a_valid_encoding_or_a_user_error(values):
    """Whatever a label column holds, the label functions encode it consistently or raise UserError, never crash."""
    try:
        problem_type = L.infer_problem_type(datasets.Json(), values)
    except UserError:
        problem_type = None
    kinds = (
        [problem_type] if problem_type else ["single_label_classification", "multi_label_classification", "regression"]
    )
    for kind in kinds:
        try:
            names = None if kind == "regression" else L.build_label_names(values, multi_label=kind.startswith("multi"))
            encoded = L.encode_labels(values, names, kind, "train")
        except UserError:
            continue
        assert len(encoded) == len(values)
        if kind == "single_label_classification":
            assert all(0 <= i < len(names) for i in encoded)
        elif kind == "multi_label_classification":
            assert all(len(row) == len(names) and set(row) <= {0.0, 1.0} for row in encoded)
        else:
            assert all(isinstance(v, float) for v in encoded)


_BATCHES = []


def _interrupting(batch):
    """A worker's share of a map: its first batch is written (a temporary cache file begins), then at its second it
    sends SIGINT to the parent and to itself (as Ctrl-C reaches the whole process group) and works on a while."""
    _BATCHES.append(1)
    if len(_BATCHES) == 2:
        os.kill(os.getppid(), signal.SIGINT)
        signal.raise_signal(signal.SIGINT)
        time.sleep(2)
    return batch


def test_ctrl_c_while_workers_tokenize_is_one_interrupt_and_leaves_no_temporary_file(tmp_path, capfd):
    source = datasets.Dataset.from_dict({"text": [f"row {i}" for i in range(40)]})
    source.save_to_disk(str(tmp_path / "ds"))
    ds = datasets.load_from_disk(str(tmp_path / "ds"))  # on disk: the map writes its cache files beside it
    with pytest.raises(KeyboardInterrupt):  # not datasets' TimeoutError
        with T.interruptible_workers(ds, 2):
            ds.map(_interrupting, batched=True, batch_size=5, writer_batch_size=5, num_proc=2)
    assert not glob.glob(str(tmp_path / "ds" / "tmp*"))
    assert "Traceback" not in capfd.readouterr().err  # the workers ignored it
