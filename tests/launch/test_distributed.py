"""Distributed and mixed precision: a 2-process CPU DDP run (the documented accelerate command) must report what
one process reports; launch mistakes are refused; every accelerate config loads."""

import glob
import json
import math
import os
import subprocess
from types import SimpleNamespace

import pytest

import run_classification as R
from tests.helpers import ROOT, TRAIN_FLAGS, sentiment_rows, two_cpu_processes, write_rows
from textcls.errors import UserError
from textcls.train.distributed import check_launch

CONFIGS = sorted(glob.glob(os.path.join(ROOT, "recipes", "accelerate", "*.yaml")))


@pytest.mark.parametrize("path", CONFIGS, ids=os.path.basename)
def test_accelerate_config_loads(path):
    from accelerate.commands.config.config_args import load_config_from_file

    config = load_config_from_file(path)
    assert config.num_processes >= 1
    with open(path) as f:
        assert "accelerate launch --config_file recipes/accelerate/" + os.path.basename(path) in f.read()


def test_accelerate_readme_documents_every_config():
    with open(os.path.join(ROOT, "recipes", "accelerate", "README.md")) as f:
        text = f.read()
    for path in CONFIGS:
        assert os.path.basename(path) in text


def args(**kw):
    return SimpleNamespace(**{"world_size": 1, "fp16": False, "bf16": False, "use_cpu": True, **kw})


def test_duplicate_launch_is_refused(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(UserError, match="2 processes were launched but they formed no process group"):
        check_launch(args())
    check_launch(args(world_size=2))


def test_precision_conflicts(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    with pytest.raises(UserError, match="--fp16 needs a GPU"):
        check_launch(args(fp16=True))
    monkeypatch.setenv("ACCELERATE_MIXED_PRECISION", "bf16")
    with pytest.raises(UserError, match="mixed_precision=bf16.*--bf16 true"):
        check_launch(args())
    check_launch(args(bf16=True))


def test_bf16_on_a_cpu_without_bf16_instructions_warns_what_it_costs(monkeypatch, caplog):
    from textcls.train import distributed

    monkeypatch.delenv("WORLD_SIZE", raising=False)
    monkeypatch.delenv("ACCELERATE_MIXED_PRECISION", raising=False)
    monkeypatch.setattr(distributed, "has_accelerator", lambda: False)
    for flags, warned in (({"avx2"}, True), ({"avx2", "avx512_bf16"}, False), ({"amx_bf16"}, False), (None, False)):
        monkeypatch.setattr(distributed, "cpu_flags", lambda flags=flags: flags)
        caplog.clear()
        with caplog.at_level("WARNING", logger="textcls.train.distributed"):
            check_launch(args(bf16=True))
            check_launch(args())  # fp32: nothing to say
        said = [r.getMessage() for r in caplog.records]
        assert said == (["--bf16 on a CPU without bf16 instructions (avx512_bf16 or amx_bf16): torch emulates bf16 "
                         "here, and training measured 12x slower than fp32 (all-MiniLM-L6-v2, 2 AVX2 cores: 4.0 "
                         "against 48.5 samples/s, the same accuracy). Drop --bf16 to train in fp32."]
                        if warned else []), flags  # fmt: skip


def test_bf16_unset_turns_on_only_where_it_was_measured_to_pay(monkeypatch, caplog):
    from textcls.train import distributed

    monkeypatch.delenv("ACCELERATE_MIXED_PRECISION", raising=False)
    monkeypatch.setattr(distributed, "has_accelerator", lambda: False)
    unset = args(bf16=None, use_cpu=True)
    amx = {"avx2", "avx512_bf16", "amx_bf16", "amx_tile"}
    for flags, on in ((amx, True), ({"avx2", "avx512_bf16"}, False), ({"avx2"}, False), (None, False)):
        monkeypatch.setattr(distributed, "cpu_flags", lambda flags=flags: flags)
        caplog.clear()
        with caplog.at_level("INFO", logger="textcls.train.distributed"):
            assert distributed.resolve_bf16(unset) is on, flags
        assert ("bf16 autocast for the training steps, as this CPU has amx_bf16 " in caplog.text) is on
        caplog.clear()
        with caplog.at_level("INFO", logger="textcls.train.distributed"):
            assert distributed.resolve_bf16(args(bf16=None, use_cpu=True, do_train=False)) is on
        assert "bf16 autocast" not in caplog.text  # evaluating or predicting only: no training steps to speak of
        assert distributed.resolve_bf16(args(bf16=False, use_cpu=True)) is False  # given: the flag
        assert distributed.resolve_bf16(args(bf16=True, use_cpu=True)) is True
        assert distributed.resolve_bf16(unset, {"bf16": not on}) is (not on)  # a resume: as its checkpoint's run
    monkeypatch.setattr(distributed, "cpu_flags", lambda: amx)
    assert distributed.resolve_bf16(args(bf16=None, use_cpu=True, fp16=True)) is False
    monkeypatch.setattr(distributed, "has_accelerator", lambda: True)  # a GPU: the user's choice, as transformers
    assert distributed.resolve_bf16(args(bf16=None, use_cpu=False)) is False
    assert distributed.resolve_bf16(unset) is True  # --use_cpu on a machine with a GPU: this CPU decides
    monkeypatch.setenv("ACCELERATE_MIXED_PRECISION", "no")  # accelerate's default, not a choice: the CPU decides
    assert distributed.resolve_bf16(unset) is True
    monkeypatch.setenv("ACCELERATE_MIXED_PRECISION", "bf16")  # then the flag must say so (check_launch), as before
    with pytest.raises(UserError, match="mixed_precision=bf16.*--bf16 true"):
        check_launch(args(bf16=None))


def test_bf16_on_cpu_trains_and_evaluates(tiny_bert, sentiment_files, tmp_path, monkeypatch, capfd):
    from textcls.train import distributed

    def run(out, *flags):
        files = ["--train_file", sentiment_files["train"], "--validation_file", sentiment_files["dev"]]
        results = R.main(["--model", tiny_bert, *files, "--do_train", "--do_eval", "--output_dir", str(out),
                          *TRAIN_FLAGS, *flags])  # fmt: skip
        with open(os.path.join(out, "all_results.json")) as f:
            return results, json.load(f)["mixed_precision"]

    from textcls.train import trainer

    multiples = []
    make_collator = trainer.make_collator
    monkeypatch.setattr(trainer, "make_collator", lambda *a: multiples.append(a[2]) or make_collator(*a))
    results, precision = run(tmp_path / "o", "--bf16", "true", "--padding_free", "false")
    assert multiples == [False]  # no rounding up to 8 tokens on the CPU: tensor cores are a GPU's
    assert math.isfinite(results["train_loss"]) and 0 <= results["eval_accuracy"] <= 1 and precision == "bf16"
    # unset: a CPU with AMX trains in bf16, recorded; --bf16 false keeps fp32 there
    monkeypatch.delenv("ACCELERATE_MIXED_PRECISION", raising=False)
    monkeypatch.setattr(distributed, "cpu_flags", lambda: {"avx512f", "amx_bf16"})
    capfd.readouterr()
    assert run(tmp_path / "auto")[1] == "bf16_training"  # training steps; evaluation in fp32
    # and padded batches: length-grouped ones carry little padding, and padded steps measured faster in bf16 there
    assert "padded batches: length-grouped batches carry little padding" in capfd.readouterr().out
    assert run(tmp_path / "random", "--train_sampling_strategy", "random")[1] == "bf16_training"
    assert "padding-free batches: the rows of a batch are laid end to end" in capfd.readouterr().out
    assert run(tmp_path / "fp32", "--bf16", "false")[1] == "no"


def test_two_process_ddp_matches_one_process(tiny_bert, tmp_path):
    train = write_rows(tmp_path / "train.csv", sentiment_rows(64, 0))
    dev = write_rows(tmp_path / "dev.csv", sentiment_rows(21, 1))  # 21: does not divide by 2 processes
    # Dropout off, so that 1 and 2 processes compute the same thing up to float summation order.
    common = [
        "--model",
        tiny_bert,
        "--config_overrides",
        "hidden_dropout_prob=0,attention_probs_dropout_prob=0",
        "--train_file",
        train,
        "--validation_file",
        dev,
        "--test_file",
        dev,
        "--do_train",
        "--do_eval",
        "--do_predict",
        "--num_train_epochs",
        "2",
        "--learning_rate",
        "1e-2",
        "--logging_steps",
        "5",  # 16 steps: logged at 5, 10 and 15; step 16 reaches train_loss unlogged (Trainer keeps it per process)
        "--save_strategy",
        "no",
        "--seed",
        "0",
        "--disable_tqdm",
        "true",
        "--train_sampling_strategy",
        "sequential",
        "--per_device_eval_batch_size",
        "4",
        "--bf16",
        "false",  # fp32: bf16 training (the default on a CPU with AMX) rounds the two summation orders apart
    ]
    single = tmp_path / "single"
    R.main([*common, "--per_device_train_batch_size", "8", "--output_dir", str(single)])

    ddp = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [
        *two_cpu_processes(),
        *common,
        "--per_device_train_batch_size",
        "4",
        "--output_dir",
        str(ddp),
    ]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]

    def rows(out):
        with open(out / "predictions.jsonl") as f:
            return [json.loads(line) for line in f]

    def history(out):
        with open(out / "trainer_state.json") as f:
            return [h["loss"] for h in json.load(f)["log_history"] if "loss" in h]

    # Same global batch (8 = 2 x 4), same rows per step: the logged losses agree. A world-size scaling bug
    # would double them. 1e-4: float32 sums in another order over 16 steps, far below any real difference.
    assert len(history(ddp)) == len(history(single)) == 3
    assert history(ddp) == pytest.approx(history(single), abs=1e-4)
    res_single = json.loads((single / "all_results.json").read_text())
    res_ddp = json.loads((ddp / "all_results.json").read_text())
    for key in ("eval_accuracy", "eval_loss"):
        assert res_ddp[key] == pytest.approx(res_single[key], abs=1e-4), key
    # it includes step 16, never logged: Trainer added it as each process's own loss (off by 1.6e-4 here)
    assert res_ddp["train_loss"] == pytest.approx(res_single["train_loss"], abs=1e-5)
    assert res_ddp["eval_samples"] == 21
    # The model has learned (lr 1e-2), so rows differ in loss: the eval loss must be over the 21 rows exactly, not
    # over the repeated rows DDP pads the last batch with. Recomputed here from the written probabilities.
    gold = [r["label"] for r in sentiment_rows(21, 1)]
    probs = [p["probabilities"][str(g)] for p, g in zip(rows(single), gold, strict=True)]
    assert res_single["eval_loss"] == pytest.approx(-sum(map(math.log, probs)) / 21, abs=1e-4)

    # Every row exactly once, in order, in one predictions file.
    assert not glob.glob(str(ddp / "predictions_*.jsonl"))
    a, b = rows(single), rows(ddp)
    assert [r["id"] for r in b] == [r["id"] for r in a] == list(range(21))
    for x, y in zip(a, b, strict=True):
        assert y["probabilities"] == pytest.approx(x["probabilities"], abs=1e-4)
    report = json.loads((ddp / "eval_classification_report.json").read_text())
    assert sum(map(sum, report["confusion_matrix"])) == 21
    # the report and the pictures, written once (by the main process), as one process writes them
    assert sorted(os.listdir(ddp / "plots")) == sorted(os.listdir(single / "plots"))
    assert (ddp / "eval_report.md").read_text().count("## Per class") == 1


@pytest.mark.parametrize(
    "local, threads, cores, warned",
    [(2, 2, 2, "oversubscribed"), (2, 1, 8, "use only 2 of 8 cores"), (2, 1, 2, None), (1, 2, 2, None)],
)
def test_thread_warnings(monkeypatch, caplog, local, threads, cores, warned):
    from textcls.train import distributed

    monkeypatch.setenv("LOCAL_WORLD_SIZE", str(local))
    monkeypatch.setattr(distributed.torch, "get_num_threads", lambda: threads)
    monkeypatch.setattr(distributed.os, "cpu_count", lambda: cores)
    monkeypatch.setattr(distributed, "has_accelerator", lambda: False)
    with caplog.at_level("WARNING"):
        distributed.check_threads(None)
    text = caplog.text
    if warned:
        assert warned in text and f"OMP_NUM_THREADS={max(1, cores // local)}" in text
    else:
        assert "OMP_NUM_THREADS" not in text


GA_CASES = {  # a model maker, the overrides that turn its dropout off, and the label kind
    "bert-single-label": ("bert", "single"),
    "llama-single-label": ("llama", "single"),
    "llama-regression": ("llama", "regression"),
    "bert-multi-label": ("bert", "multi"),
}


@pytest.mark.parametrize("case", sorted(GA_CASES))
def test_gradient_accumulation_matches_one_big_batch(case, tmp_path):
    """Batch 4 x 2 accumulation steps is batch 8: same loss, same update, also for a last step of unequal
    micro-batches. transformers' Trainer takes a head whose forward has **kwargs to normalise its loss over the
    accumulated batch itself, which the heads do not: the loss and gradients came out 2x (transformers issue 47688)."""
    from tests.helpers import make_bert, make_llama

    arch, kind = GA_CASES[case]
    make, no_dropout = {
        "bert": (make_bert, "hidden_dropout_prob=0,attention_probs_dropout_prob=0"),
        "llama": (make_llama, "attention_dropout=0"),
    }[arch]
    model = make(tmp_path / arch)
    label = {
        "single": lambda i, pos: int(pos),
        "regression": lambda i, pos: float(pos) + 0.1 * (i % 7),
        "multi": lambda i, pos: ["a", "b"][: i % 3],
    }[kind]
    # 30 rows: the last step's micro-batches hold 4 and 2 rows; each row must weigh the same in it
    rows = [r | {"label": label(i, r["label"])} for i, r in enumerate(sentiment_rows(30, 4))]
    data = write_rows(tmp_path / "rows.jsonl", rows)
    flags = ["--train_file", data, "--validation_file", data, "--do_train", "--do_eval", *TRAIN_FLAGS]
    # Sequential batches, no dropout, plain SGD without clipping: the update is proportional to the gradient
    flags += ["--train_sampling_strategy", "sequential", "--config_overrides", no_dropout, "--optim", "sgd"]
    flags += ["--learning_rate", "0.05", "--max_grad_norm", "0", "--logging_steps", "3"]
    flags += ["--bf16", "false"]  # fp32: bf16 training (the default on a CPU with AMX) rounds each batching apart

    def run(out, batch, steps):
        argv = ["--model", model, "--output_dir", str(tmp_path / out), *flags, "--per_device_train_batch_size"]
        return R.main([*argv, str(batch), "--gradient_accumulation_steps", str(steps)])

    one = run("one", 8, 1)
    accumulated = run("accumulated", 4, 2)
    assert one["train_loss"] == pytest.approx(accumulated["train_loss"], rel=1e-5)
    assert one["eval_loss"] == pytest.approx(accumulated["eval_loss"], rel=1e-5)


def test_a_two_process_search_runs_every_trial_without_pruning(tiny_bert, tmp_path):
    """transformers' DDP search runs the study on process 0 only: a trial pruned there would keep training on the
    other process and hang the next trial (measured before the fix: gloo 'Connection closed by peer' after the
    first pruned trial, with eval_loss as the objective, which prunes trial 5 here). Pruning is off on many processes.
    And only process 0 touches the study's storage: before, process 1 could mark the trial process 0 had just
    started as failed (measured: 'Trial#0 has already finished and can not be updated')."""
    train = write_rows(tmp_path / "train.csv", sentiment_rows(64, 0))
    dev = write_rows(tmp_path / "dev.csv", sentiment_rows(21, 1))
    out = tmp_path / "hp"
    space = {"learning_rate": {"type": "float", "low": 1e-5, "high": 1e-1, "log": True}}
    cmd = [
        *two_cpu_processes(),
        *("--model", tiny_bert, "--train_file", train, "--validation_file", dev, "--do_train", "--do_eval"),
        *("--output_dir", str(out), "--num_train_epochs", "3", "--eval_strategy", "epoch", "--save_strategy", "no"),
        *("--disable_tqdm", "true", "--plots", "false", "--metric_for_best_model", "loss"),
        *("--hp_trials", "6", "--hp_space", json.dumps(space)),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "trials are not pruned" in proc.stdout + proc.stderr
    record = json.loads((out / "hp_trials.json").read_text())
    assert [t["state"] for t in record["trials"]] == ["COMPLETE"] * 6
    assert (
        json.loads((out / "best_recipe.json").read_text())["learning_rate"]
        == record["best"]["params"]["learning_rate"]
    )


def test_two_processes_pick_by_cross_validation_once_and_agree(tiny_bert, tmp_path):
    """--method auto cross-validates its candidates by default: under a 2-process launch the main process merges
    each candidate's out-of-fold predictions, and before the fix the other read them first (FileNotFoundError on
    auto_select/setfit/oof_predictions.jsonl, measured). Both processes now log the same pick, and the run ends."""
    pytest.importorskip("setfit")
    train = write_rows(tmp_path / "train.csv", sentiment_rows(24, 0))
    dev = write_rows(tmp_path / "dev.csv", sentiment_rows(10, 1))
    out = tmp_path / "auto"
    cmd = [
        *two_cpu_processes(),
        *("--model", tiny_bert, "--train_file", train, "--validation_file", dev, "--do_train", "--do_eval"),
        *("--method", "auto", "--setfit_num_iterations", "1", "--max_steps", "4", "--max_seq_length", "32"),
        *("--output_dir", str(out), "--disable_tqdm", "true", "--plots", "false"),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    picks = [line.split("--method auto chose ")[1].split(":")[0] for line in (proc.stdout + proc.stderr).splitlines()
             if "--method auto chose" in line and "cross-validated on the" in line]  # fmt: skip
    selection = json.loads((out / "auto_select" / "selection.json").read_text())
    assert picks == [selection["picked"]] * 2  # one line per process, the same pick
    assert json.loads((out / "recipe.json").read_text())["calibration_temperature"] == selection["temperature"]


@pytest.mark.parametrize("ending", ["success", "bad input"])
def test_every_ending_of_the_cli_tears_down_the_process_group(ending, monkeypatch, tmp_path):
    """Left to the interpreter's exit, a gloo group can abort a finished process with SIGABRT (seen once in CI on
    process 1 of the 2-process search above: every trial done, exit code -6). cli() destroys it on every ending."""
    import torch.distributed as dist

    store = dist.FileStore(str(tmp_path / "store"), 1)
    dist.init_process_group("gloo", store=store, rank=0, world_size=1)
    try:
        if ending == "success":
            monkeypatch.setattr(R, "main", lambda argv: {})
        else:
            monkeypatch.setattr(R, "main", lambda argv: (_ for _ in ()).throw(UserError("bad flag")))
        assert R.cli([]) == (0 if ending == "success" else 2)
        assert not dist.is_initialized()
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
