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
import subprocess
import sys
import time
from types import SimpleNamespace

import datasets
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from safetensors.torch import load_file

import run_classification as R
from tests.conftest import sentiment_rows, write_rows
from textcls.config.args import parse_args
from textcls.data import labels as L
from textcls.data import tokenization as T
from textcls.errors import UserError
from textcls.io import write_text_atomic
from textcls.train.run_folder import checkpoint_problem, last_complete_checkpoint, plan_output_dir, write_manifest
from textcls.train.trainer import GracefulStop

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STEPS_PER_EPOCH = 8
TOTAL_STEPS = 24
TIMING = ("runtime", "per_second")


def three_class_rows(n, seed):
    rows = sentiment_rows(n, seed)
    for row in rows:
        row["label"] = "neutral" if row["id"] % 4 == 0 else ("pos" if row["label"] else "neg")
    return rows


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


def start(argv, logs):
    """The command line, in a process of its own; its output goes to files (a full pipe would stall it). It runs at
    the lowest priority: on cores shared with other test workers, the test polling for its checkpoint must get the
    CPU before the run races through the remaining steps (a tiny model's step takes milliseconds; at nice 10 the
    SIGTERM test still lost that race once in a plain suite run)."""
    with open(logs / "stdout", "w") as stdout, open(logs / "stderr", "w") as stderr:
        return subprocess.Popen(
            [sys.executable, "run_classification.py", *argv],
            cwd=ROOT,
            stdout=stdout,
            stderr=stderr,
            preexec_fn=lambda: os.nice(19),
        )


def wait_for_checkpoint(proc, out, after_step: int, timeout: float = 180) -> str:
    """The first complete checkpoint of a step above after_step, polled while the process trains."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        last = last_complete_checkpoint(out) if os.path.isdir(out) else None
        if last is not None and int(last.rsplit("-", 1)[1]) > after_step:
            return last
        if proc.poll() is not None:
            pytest.fail(f"the run ended (exit {proc.returncode}) before a checkpoint past step {after_step}")
        time.sleep(0.02)
    proc.kill()
    pytest.fail(f"no checkpoint past step {after_step} within {timeout} s")


# ------------------------------------------------------------------------------------------------ faults


def test_kill_9_mid_epoch_then_the_same_command_resumes_bit_identical(reference, tmp_path, capsys):
    out = tmp_path / "out"
    argv = reference.argv(out)
    proc = start(argv, tmp_path)
    # Past step 8: the resumed run starts inside the second epoch and crosses into the third.
    wait_for_checkpoint(proc, out, after_step=STEPS_PER_EPOCH)
    proc.kill()
    assert proc.wait() == -signal.SIGKILL
    assert not (out / "model.safetensors").exists() and not (out / "all_results.json").exists()
    resumed_from = last_complete_checkpoint(out)
    assert int(resumed_from.rsplit("-", 1)[1]) % STEPS_PER_EPOCH != 0  # mid-epoch

    R.main(argv)
    assert f"Resuming from {resumed_from}" in capsys.readouterr().out
    assert_same_run(reference.out, out)


def test_sigterm_saves_a_checkpoint_at_the_next_step_and_exits_then_resumes(reference, tmp_path):
    out = tmp_path / "out"
    argv = reference.argv(out)
    proc = start(argv, tmp_path)
    wait_for_checkpoint(proc, out, after_step=0)
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=180)
    err = (tmp_path / "stderr").read_text()
    assert proc.returncode == 128 + signal.SIGTERM, err[-2000:]
    assert "Traceback" not in err
    found = re.search(r"stopped by SIGTERM at step (\d+): checkpoint saved in (\S+)\. Run the same command again", err)
    assert found, err[-2000:]
    step, checkpoint = int(found.group(1)), found.group(2)
    assert step < TOTAL_STEPS and checkpoint == str(out / f"checkpoint-{step}")
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


def signal_at_step(monkeypatch, step, signum=signal.SIGTERM):
    """Training raises the signal in-process at the end of this optimizer step (before GracefulStop looks)."""
    original = GracefulStop.on_step_end

    def raise_it(self, args, state, control, **kwargs):
        if state.global_step == step:
            signal.raise_signal(signum)
        return original(self, args, state, control, **kwargs)

    monkeypatch.setattr(GracefulStop, "on_step_end", raise_it)
    return lambda: monkeypatch.setattr(GracefulStop, "on_step_end", original)


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


# ------------------------------------------------------------------------------------------------ bad input


def _write(folder, name, content):
    path = folder / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return str(path)


def _custom_code_model(folder, model):
    """A copy of the tiny BERT whose config asks for its own code; the code leaves a mark if it ever runs."""
    path = folder / "custom"
    shutil.copytree(model, path)
    config = json.loads((path / "config.json").read_text())
    config.update(model_type="evil-bert", auto_map={"AutoConfig": "configuration_evil.EvilConfig"})
    (path / "config.json").write_text(json.dumps(config))
    (path / "configuration_evil.py").write_text(f"open({str(folder / 'CODE_RAN')!r}, 'w').close()\n")
    return str(path)


def _recipe(folder, text):
    return _write(folder, "recipe.json", text)


# Each: (id, argv builder (folder, model, files) -> flags, key words of the message). The builder adds the rest:
# --model (unless given), --output_dir, --use_cpu.
BAD_INPUTS = [
    ("missing file", lambda d, m, f: ["--train_file", str(d / "nope.csv"), "--do_train"], ["does not exist"]),
    ("a folder", lambda d, m, f: ["--train_file", str(d), "--do_train"], ["is a folder", "pass a file"]),
    (
        "unsupported extension",
        lambda d, m, f: ["--train_file", _write(d, "t.xlsx", "a"), "--do_train"],
        ["unsupported extension '.xlsx'", ".csv"],
    ),
    ("empty file", lambda d, m, f: ["--train_file", _write(d, "e.csv", ""), "--do_train"], ["is empty"]),
    ("header only", lambda d, m, f: ["--train_file", _write(d, "h.csv", "text,label\n"), "--do_train"], ["no rows"]),
    (
        "not UTF-8",
        lambda d, m, f: [
            "--train_file",
            _write(d, "l.csv", "text,label\ncaf\xe9,1\nbad,0\n".encode("latin-1")),
            "--do_train",
        ],
        ["not UTF-8", "iconv"],
    ),
    (
        "ragged csv",
        lambda d, m, f: ["--train_file", _write(d, "r.csv", "text,label\ngood,1\nbad, sad,0\n"), "--do_train"],
        ["line 3", "must be quoted"],
    ),
    (
        "semicolon-separated csv",
        lambda d, m, f: ["--train_file", _write(d, "s.csv", "text;label\ngood;1\nbad;0\n"), "--do_train"],
        ["one column, 'text;label'", "separated by ';'", "comma-separated"],
    ),
    (
        "broken jsonl",
        lambda d, m, f: [
            "--train_file",
            _write(d, "b.jsonl", '{"text": "a", "label": 1}\n{"text": "b", '),
            "--do_train",
        ],
        ["could not read", "one JSON object per line"],
    ),
    (
        "text column missing",
        lambda d, m, f: ["--train_file", f["train"], "--do_train", "--text_column", "sentense"],
        ["'sentense' is not a column", "'sentence', 'label'", "Did you mean 'sentence'"],
    ),
    (
        "pair column missing",
        lambda d, m, f: ["--train_file", f["train"], "--do_train", "--text_pair_column", "hypothesis"],
        ["'hypothesis' is not a column", "'sentence'"],
    ),
    (
        "label column missing",
        lambda d, m, f: ["--train_file", f["train"], "--do_train", "--label_column", "stars"],
        ["'stars' is not a column", "'label'"],
    ),
    (
        "eval split without the text column",
        lambda d, m, f: [
            "--train_file",
            f["train"],
            "--validation_file",
            write_rows(d / "v.csv", [{"text": "a", "label": 1}]),
            "--do_train",
            "--do_eval",
        ],
        ["validation split has no column 'sentence'", "Columns: text, label"],
    ),
    (
        "eval split without labels",
        lambda d, m, f: [
            "--train_file",
            f["train"],
            "--validation_file",
            write_rows(d / "v.csv", [{"sentence": "a"}]),
            "--do_train",
            "--do_eval",
        ],
        ["--do_eval needs labels", "no column 'label'", "--label_column"],
    ),
    (
        "eval label never seen in training",
        lambda d, m, f: [
            "--train_file",
            f["train"],
            "--validation_file",
            write_rows(d / "v.csv", [{"sentence": "good", "label": 1}, {"sentence": "bad", "label": 7}]),
            "--do_train",
            "--do_eval",
        ],
        ["never seen in training: 7", "Known labels: 0, 1", "--label_names"],
    ),
    (
        "missing label",
        lambda d, m, f: ["--train_file", _write(d, "n.csv", "text,label\ngood,1\nbad,\nfine,0\n"), "--do_train"],
        ["1 of 3 rows", "no label", "Fill or drop"],
    ),
    (
        "NaN / null label",
        lambda d, m, f: [
            "--train_file",
            _write(
                d,
                "n.jsonl",
                '{"text": "a", "label": "pos"}\n{"text": "b", "label": null}\n{"text": "c", "label": "neg"}\n',
            ),
            "--do_train",
        ],
        ["1 of 3 rows", "no label"],
    ),
    (
        "all texts empty",
        lambda d, m, f: ["--train_file", _write(d, "e.csv", 'text,label\n"",1\n"  ",0\n'), "--do_train"],
        ["all 2 rows", "empty 'text'", "--text_column"],
    ),
    (
        "a single class",
        lambda d, m, f: ["--train_file", _write(d, "o.csv", "text,label\ngood,1\nbad,1\n"), "--do_train"],
        ["single class", "--label_names"],
    ),
    (
        "multi-label rows of mixed types",
        lambda d, m, f: [
            "--train_file",
            _write(d, "m.jsonl", '{"text": "a", "labels": ["x"]}\n{"text": "b", "labels": "y"}\n'),
            "--do_train",
        ],
        ["must each hold a list", "row 2", "'y'"],
    ),
    (
        "labels of mixed types",
        lambda d, m, f: [
            "--train_file",
            _write(d, "m.jsonl", '{"text": "a", "label": 1}\n{"text": "b", "label": "pos"}\n'),
            "--do_train",
        ],
        ["mix types", "--problem_type single_label_classification"],
    ),
    (
        "non-numeric regression label",
        lambda d, m, f: [
            "--train_file",
            _write(d, "r.csv", "text,score\ngood,1.5\nbad,high\n"),
            "--do_train",
            "--problem_type",
            "regression",
        ],
        ["'high'", "not a number"],
    ),
    (
        "recipe with a JSON syntax error",
        lambda d, m, f: [_recipe(d, '{"learning_rate": 1e-4,\n "seed": }'), "--train_file", f["train"], "--do_train"],
        ["not valid JSON", "line 2, column 10"],
    ),
    (
        "recipe with an unknown key",
        lambda d, m, f: [_recipe(d, '{"learning_rat": 1e-4}'), "--train_file", f["train"], "--do_train"],
        ["unknown key 'learning_rat'", "Did you mean 'learning_rate'"],
    ),
    (
        "recipe with a wrong type",
        lambda d, m, f: [_recipe(d, '{"learning_rate": "fast"}'), "--train_file", f["train"], "--do_train"],
        ["recipe", "--learning_rate", "invalid float value: 'fast'"],
    ),
    (
        "unknown flag",
        lambda d, m, f: ["--train_file", f["train"], "--do_train", "--learning_rat", "1"],
        ["unknown flag '--learning_rat'", "Did you mean 'learning_rate'"],
    ),
    (
        "model folder that does not exist",
        lambda d, m, f: ["--model", str(d / "no-model"), "--train_file", f["train"], "--do_train"],
        ["no-model", "not a local folder", "local copy"],
    ),
    (
        "hub model while offline",
        lambda d, m, f: ["--model", "bert-base-uncased", "--train_file", f["train"], "--do_train"],
        ["'bert-base-uncased'", "offline", "Point --model_name_or_path at a local copy"],
    ),
    (
        "model with its own code, not trusted",
        lambda d, m, f: ["--model", _custom_code_model(d, m), "--train_file", f["train"], "--do_train"],
        ["ships its own model code", "--trust_remote_code"],
    ),
    (
        "saved head of another size",
        lambda d, m, f: [
            "--validation_file",
            write_rows(d / "v.csv", three_class_rows(6, 1)),
            "--do_eval",
        ],
        ["does not have 3 output(s)", "--do_train"],
    ),
    (
        "max_seq_length above the model's",
        lambda d, m, f: ["--train_file", f["train"], "--do_train", "--max_seq_length", "512"],
        ["512 is above this model's maximum of 64", "--max_seq_length 64"],
    ),
    (
        "max_train_samples 0",
        lambda d, m, f: ["--train_file", f["train"], "--do_train", "--max_train_samples", "0"],
        ["--max_train_samples 0 leaves no rows"],
    ),
    (
        "do_predict without a test set",
        lambda d, m, f: ["--train_file", f["train"], "--do_train", "--do_predict"],
        ["--do_predict needs a 'test' split", "--test_file"],
    ),
    (
        "LoRA target that does not exist",
        lambda d, m, f: ["--train_file", f["train"], "--do_train", "--use_lora", "--lora_target_modules", "qkv_nope"],
        ["qkv_nope", "do not exist"],
    ),
    ("fp16 on CPU", lambda d, m, f: ["--train_file", f["train"], "--do_train", "--fp16"], ["--fp16 needs a GPU"]),
    (
        "community metric, not trusted",
        lambda d, m, f: ["--validation_file", f["train"], "--do_eval", "--metric_name", "someone/metric"],
        ["community metric", "--trust_remote_code"],
    ),
    ("nothing to do", lambda d, m, f: ["--train_file", f["train"]], ["nothing to do", "--do_train"]),
    (
        "label smoothing on regression",
        lambda d, m, f: (
            ["--train_file", _write(d, "g.csv", "text,label\ngood,0.5\nbad,1.5\n"), "--do_train"]
            + ["--label_smoothing_factor", "0.1"]
        ),
        ["--label_smoothing_factor", "regression", "single-label"],
    ),
    (
        "label smoothing on multi-label",
        lambda d, m, f: (
            ["--train_file", _write(d, "m.jsonl", '{"text": "a", "labels": ["x"]}\n'), "--do_train"]
            + ["--label_smoothing_factor", "0.1"]
        ),
        ["--label_smoothing_factor", "multi_label_classification", "single-label"],
    ),
    (
        "prediction_loss_only with do_predict",
        lambda d, m, f: ["--test_file", f["train"], "--do_predict", "--prediction_loss_only", "true"],
        ["--prediction_loss_only", "no predictions", "--do_predict"],
    ),
    (
        "eval_do_concat_batches false",
        lambda d, m, f: ["--train_file", f["train"], "--do_train", "--eval_do_concat_batches", "false"],
        ["--eval_do_concat_batches false", "every batch", "Drop the flag"],
    ),
    (
        "batch_eval_metrics",
        lambda d, m, f: ["--train_file", f["train"], "--do_train", "--batch_eval_metrics", "true"],
        ["--batch_eval_metrics", "every prediction", "--eval_accumulation_steps"],
    ),
    (
        "scheduler without its settings",
        lambda d, m, f: ["--train_file", f["train"], "--do_train", "--lr_scheduler_type", "warmup_stable_decay"],
        ["--lr_scheduler_type warmup_stable_decay", "num_decay_steps", "--lr_scheduler_kwargs"],
    ),
    (
        "optimizer from a package that is not installed",
        lambda d, m, f: ["--train_file", f["train"], "--do_train", "--optim", "adamw_bnb_8bit"],
        ["--optim adamw_bnb_8bit", "pip install -U bitsandbytes"],
    ),
    (
        "liger kernels not installed",
        lambda d, m, f: ["--train_file", f["train"], "--do_train", "--use_liger_kernel", "true"],
        ["--use_liger_kernel", "pip install liger-kernel"],
    ),
    (
        "metric_for_best_model the task does not compute",
        lambda d, m, f: (
            ["--train_file", f["train"], "--validation_file", f["train"], "--do_train", "--do_eval"]
            + [
                "--eval_strategy",
                "epoch",
                "--save_strategy",
                "epoch",
                "--load_best_model_at_end",
                "--metric_for_best_model",
            ]
            + ["f1"]
        ),
        ["--metric_for_best_model f1", "accuracy", "macro_f1", "loss"],
    ),
    (
        "eval_strategy without a validation split",
        lambda d, m, f: ["--train_file", f["train"], "--do_train", "--eval_strategy", "epoch"],
        ["--eval_strategy epoch needs a 'validation' split", "--validation_file"],
    ),
    (
        "batch size 0",
        lambda d, m, f: ["--train_file", f["train"], "--do_train", "--per_device_train_batch_size", "0"],
        ["--per_device_train_batch_size 0", "1 or more"],
    ),
    (
        "negative learning rate",
        lambda d, m, f: ["--train_file", f["train"], "--do_train", "--learning_rate", "-1"],
        ["--learning_rate -1", "0 or more"],
    ),
    (
        "zero epochs",
        lambda d, m, f: ["--train_file", f["train"], "--do_train", "--num_train_epochs", "0"],
        ["--num_train_epochs 0", "trains nothing", "--do_train"],
    ),
    (
        "label names for regression",
        lambda d, m, f: (
            ["--train_file", _write(d, "g.csv", "text,label\ngood,0.5\nbad,1.5\n"), "--do_train"]
            + ["--label_names", "neg", "pos"]
        ),
        ["--label_names", "regression", "no classes"],
    ),
    (
        "a transformers 4 flag",
        lambda d, m, f: ["--train_file", f["train"], "--do_train", "--group_by_length"],
        ["--group_by_length", "--train_sampling_strategy group_by_length"],
    ),
]


def _training_with(*flags):
    return lambda d, m, f: ["--train_file", f["train"], "--do_train", *flags]


# Values that crashed mid-run (a traceback, recipe.json left behind) or were accepted and did something else.
BAD_NUMBERS = [
    ("--max_seq_length", "-5", "pass 1 or more tokens"),
    ("--max_seq_length", "0", "pass 1 or more tokens"),
    ("--gradient_accumulation_steps", "0", "1 or more"),
    ("--seed", "-1", "from 0 to 4294967295"),
    ("--label_smoothing_factor", "1.5", "up to, not including, 1"),
    ("--dataloader_num_workers", "-1", "0 (load in the main process)"),
    ("--weight_decay", "-1", "0 or more"),
    ("--save_total_limit", "0", "keep every checkpoint"),
]
BAD_INPUTS += [
    (f"{flag} {value}", _training_with(flag, value), [f"{flag} {value}", fix]) for flag, value, fix in BAD_NUMBERS
]
BAD_INPUTS += [
    (
        "a tsv saved as .csv, commas in its texts",
        lambda d, m, f: [
            "--train_file",
            _write(d, "t.csv", "text\tlabel\ngood, fine\t1\nbad\t0\nok, ok, ok\t1\n"),
            "--do_train",
        ],
        ["its fields look separated by '\\t'", "tab-separated as .tsv"],
    ),
    (
        "a list of strings as the text",
        lambda d, m, f: [
            "--train_file",
            write_rows(d / "lists.parquet", [{"text": ["a", "b"], "label": i % 2} for i in range(6)]),
            "--do_train",
        ],
        ["column 'text' of the train split holds a list in each row", "Join"],
    ),
    (
        "not UTF-8 deep in the file",
        lambda d, m, f: [
            "--train_file",
            _write(d, "deep.csv", b"text,label\n" + b"good fine,1\n" * 40 + b"caf\xe9,1\n"),
            "--do_train",
        ],
        ["not UTF-8", "byte 0xe9 at offset 494, line 42"],
    ),
    (
        "a bad jsonl line, counted from 1",
        lambda d, m, f: [
            "--train_file",
            _write(d, "b6.jsonl", '{"text": "a", "label": 1}\n' * 5 + '{"text": "b", \n'),
            "--do_train",
        ],
        ["line 6 is not a JSON object"],
    ),
    (
        "one fraction among class ids",
        lambda d, m, f: [
            "--train_file",
            _write(d, "frac.csv", "text,label\n" + "".join(f"t {i},{i % 3}\n" for i in range(30)) + "odd,2.5\n"),
            "--do_train",
        ],
        ["whole numbers (0, 1, 2) except 1 of 31", "2.5", "--problem_type regression"],
    ),
    (
        "two columns of one name",
        lambda d, m, f: ["--train_file", _write(d, "dup.csv", "text,label,text\na,1,b\nc,0,d\n"), "--do_train"],
        ["several columns named 'text'"],
    ),
    (
        "save_steps 0",
        _training_with("--save_strategy", "steps", "--save_steps", "0"),
        ["--save_steps 0", "never save", "1 or more"],
    ),
    (
        "eval_steps 0",
        lambda d, m, f: [
            *_training_with("--eval_strategy", "steps", "--eval_steps", "0")(d, m, f),
            *["--validation_file", f["train"]],
        ],
        ["--eval_steps 0", "never eval"],
    ),
    (
        "a scheduler setting that is not a number",
        _training_with(
            "--lr_scheduler_type", "cosine_with_restarts", "--lr_scheduler_kwargs", '{"num_cycles": "two"}'
        ),
        ["--lr_scheduler_type cosine_with_restarts", "--lr_scheduler_kwargs"],
    ),
]


@pytest.fixture(scope="module")
def two_class_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bad-input-data")
    return {
        "train": write_rows(
            folder / "train.csv", [{"sentence": r["sentence"], "label": r["label"]} for r in sentiment_rows(8)]
        )
    }


@pytest.mark.parametrize("build, words", [case[1:] for case in BAD_INPUTS], ids=[case[0] for case in BAD_INPUTS])
def test_bad_input_one_clear_line_exit_2_no_output_dir(tiny_bert, two_class_files, tmp_path, capsys, build, words):
    flags = build(tmp_path, tiny_bert, two_class_files)
    recipe = [flags.pop(0)] if flags[0].endswith(".json") else []  # a recipe comes first
    model = [] if "--model" in flags else ["--model", tiny_bert]
    out = tmp_path / "out"
    code = R.cli([*recipe, *model, *flags, "--output_dir", str(out), "--use_cpu"])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("error: ")]
    assert code == 2, err[-3000:]
    assert len(lines) == 1 and "Traceback" not in err
    for word in words:
        assert word in lines[0], (word, lines[0])
    assert not out.exists()
    assert not (tmp_path / "CODE_RAN").exists()


@pytest.mark.parametrize("where", ["a file", "read-only", "empty"])
def test_an_output_dir_that_cannot_be_written_is_one_clear_error(tiny_bert, two_class_files, tmp_path, capsys, where):
    if where == "a file":
        out, words = tmp_path / "file", ["is a file, not a folder"]
        out.write_text("x")
    elif where == "read-only":
        if os.geteuid() == 0:
            pytest.skip("root writes into read-only folders")  # (CI runs as root: the file case covers the path)
        parent = tmp_path / "ro"
        parent.mkdir(mode=0o500)
        out, words = parent / "out", ["cannot write into output_dir"]
    else:
        out, words = "", ["--output_dir is empty"]
    argv = ["--model", tiny_bert, "--train_file", two_class_files["train"], "--do_train", "--output_dir", str(out)]
    assert R.cli(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and all(w in err for w in words), err
    assert sorted(os.listdir(tmp_path)) == sorted(
        ["file"] if where == "a file" else ["ro"] if where == "read-only" else []
    )


def test_non_empty_output_dir_is_left_as_it_was(tiny_bert, two_class_files, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    code = R.cli(
        ["--model", tiny_bert, "--train_file", two_class_files["train"], "--do_train", "--output_dir", str(out)]
    )
    err = capsys.readouterr().err
    assert code == 2 and "no run of run_classification.py wrote (notes.txt)" in err and "Traceback" not in err
    assert os.listdir(out) == ["notes.txt"] and (out / "notes.txt").read_text() == "mine"


def test_some_empty_texts_are_counted_and_kept(caplog):
    texts = T.clean_texts(["good", "", "   ", None, "bad"], "text", "train")
    assert texts == ["good", "", "   ", "", "bad"]
    assert "3 of 5 rows in the train split have an empty 'text'; they are kept as empty input" in caplog.text


# ------------------------------------------------------------------------------------------------ security


def test_trust_remote_code_is_off_unless_asked_and_says_so_when_on(tiny_bert, tmp_path, capsys):
    model_args = parse_args(["--output_dir", "o"])[0]
    assert model_args.trust_remote_code is False
    argv = [
        "--model",
        tiny_bert,
        "--train_file",
        str(tmp_path / "nope.csv"),
        "--do_train",
        "--output_dir",
        str(tmp_path / "o"),
    ]
    R.cli(argv)
    assert "trust_remote_code is ON" not in capsys.readouterr().out
    R.cli([*argv, "--trust_remote_code"])
    assert "trust_remote_code is ON" in capsys.readouterr().out


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
