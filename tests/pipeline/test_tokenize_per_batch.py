"""--tokenize per_batch: the training texts tokenized batch by batch as training reads them, instead of the whole
split before training starts. The same rows in the same order train exactly as up-front tokenizing does (same token
ids, labels, batches); lengths for length grouping are estimated from text size and follow the true ones; a stopped
run resumes bit-identical; auto takes it only for a long split on CPU; what it cannot do is refused in one line."""

import json
import signal

import datasets
import numpy as np
import pytest

import run_classification as R
from tests.helpers import (
    assert_stop_at_step_7_resumes_bit_identical,
    history,
    same_weights,
    sentiment_rows,
    signal_at_step,
    write_rows,
)
from tests.helpers import short_run_argv as argv
from textcls.config.args import parse_args
from textcls.config.checks import LongDocuments
from textcls.data import tokenization as TK
from textcls.data.load import Columns
from textcls.errors import UserError
from textcls.model.build import load_config_and_tokenizer
from textcls.train import run_folder as RF

SINGLE = Columns(text="sentence", text_pair=None, label="label", id=None)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("per-batch")
    return {
        "train": write_rows(folder / "train.csv", sentiment_rows(64, 0)),
        "dev": write_rows(folder / "dev.csv", sentiment_rows(12, 1)),
    }


@pytest.mark.parametrize(
    "order, workers", [("random", "0"), ("sequential", "0"), ("random", "2"), ("group_by_length", "0")]
)
def test_per_batch_trains_exactly_as_upfront(tiny_bert, files, tmp_path, capsys, order, workers):
    # Random, sequential or length-grouped order, dropout on: token ids, labels, batches and the RNG's draws must all
    # agree; with dataloader workers (what a GPU run would use) each worker tokenizes the batches it fetches. Grouped,
    # the sampler sorts each megabatch by the rows' true lengths, measured as it reaches them (estimates alone left
    # 10x the padding on review-like rows).
    common = ["--max_steps", "12", "--train_sampling_strategy", order]
    upfront, per_batch = tmp_path / "upfront", tmp_path / "per_batch"
    expected = R.main(argv(tiny_bert, files["train"], files["dev"], upfront, *common, "--tokenize", "upfront"))
    results = R.main(argv(tiny_bert, files["train"], files["dev"], per_batch, *common, "--tokenize", "per_batch",
                          "--dataloader_num_workers", workers))  # fmt: skip
    log = capsys.readouterr().out
    assert "training texts are tokenized batch by batch" in log
    assert same_weights(upfront, per_batch)
    assert history(per_batch) == history(upfront)
    assert results["eval_accuracy"] == expected["eval_accuracy"]


def test_a_stopped_per_batch_run_resumes_bit_identical(tiny_bert, files, tmp_path, monkeypatch):
    # The default order (length groups, each megabatch measured as reached), dropout on, past an epoch (16 batches).
    common = ["--max_steps", "24", "--tokenize", "per_batch", "--save_strategy", "steps", "--save_steps", "5"]
    assert_stop_at_step_7_resumes_bit_identical(tiny_bert, files, tmp_path, monkeypatch, *common)


def test_a_per_batch_checkpoint_from_before_measured_lengths_resumes_sorted_by_the_estimates(
    tiny_bert, files, tmp_path, monkeypatch, capsys
):
    # Per-batch checkpoints of code before commit 5699103 sorted each megabatch by the rows' byte estimates and record
    # no length order: resumed by today's code, they go on in that order, so the run ends as it would have then.
    common = ["--max_steps", "24", "--tokenize", "per_batch", "--save_strategy", "steps", "--save_steps", "5"]
    measured, whole, out = tmp_path / "measured", tmp_path / "whole", tmp_path / "out"
    R.main(argv(tiny_bert, files["train"], files["dev"], measured, *common))
    by_estimates = RF.length_order
    monkeypatch.setattr(RF, "length_order", lambda decided, per_batch: "estimated")  # the order the old code trained
    R.main(argv(tiny_bert, files["train"], files["dev"], whole, *common))
    assert history(whole) != history(measured)  # the two orders differ on these rows: the test can fail
    put_back = signal_at_step(monkeypatch, 7, signal.SIGINT)
    assert R.cli(argv(tiny_bert, files["train"], files["dev"], out, *common)) == 128 + signal.SIGINT
    put_back()
    monkeypatch.setattr(RF, "length_order", by_estimates)
    for path in out.glob("checkpoint-*/run_settings.json"):  # as the code before the fix wrote them
        settings = json.loads(path.read_text())
        settings[RF.DECIDED].pop("length_order")
        path.write_text(json.dumps(settings))
        RF.write_manifest(str(path.parent))  # its new size: complete again
    capsys.readouterr()
    R.main(argv(tiny_bert, files["train"], files["dev"], out, *common))
    assert "goes on sorting them by the estimates" in capsys.readouterr().out
    assert same_weights(whole, out) and history(out) == history(whole)
    assert RF.length_order({"tokenize": "per_batch"}, True) == "measured"  # a new run
    assert RF.length_order({}, False) is None  # tokenized up front: true lengths


def test_estimated_lengths_follow_the_true_ones_and_stop_at_the_window(tiny_bert, monkeypatch):
    _, tokenizer = load_config_and_tokenizer(parse_args(["--model", tiny_bert, "--output_dir", "o"]).model)
    rng = np.random.default_rng(0)
    texts = [" ".join(["good"] * n) for n in rng.integers(1, 60, size=300)]
    ds = datasets.Dataset.from_dict({"sentence": texts, "label": [0] * 300})
    monkeypatch.setattr(TK, "LENGTH_SAMPLE", 40)  # the ratio is measured on 40 rows, applied to 300
    window = LongDocuments(max_length=32)
    estimate = TK.estimate_lengths(ds, SINGLE, tokenizer, window, "train")
    truth = np.array([min(len(tokenizer(t)["input_ids"]), 32) for t in texts])
    assert estimate.max() == 32 and np.corrcoef(estimate, truth)[0, 1] > 0.95
    assert np.abs(estimate - truth).max() <= 2


def test_auto_tokenizes_per_batch_from_the_threshold_on_cpu_only(monkeypatch):
    def resolve(rows, *flags, columns=SINGLE, strategy="truncate"):
        args = parse_args(["--model", "m", "--output_dir", "o", "--do_train", "--use_cpu", *flags])
        train = datasets.Dataset.from_dict({"sentence": ["x"] * rows, "label": [0] * rows})
        return TK.resolve_tokenize(args.data, args.training, columns, LongDocuments(32, strategy), train)

    monkeypatch.setattr(TK, "PER_BATCH_FROM_ROWS", 50)
    assert resolve(50) and not resolve(49) and resolve(5, "--tokenize", "per_batch")
    assert not resolve(50, "--tokenize", "upfront") and not resolve(50, "--pad_to_max_length", "true")
    assert not resolve(50, strategy="chunk")
    monkeypatch.setattr(TK, "_device_type", lambda training_args: "cuda")
    assert not resolve(50)  # on a GPU a small model's step is milliseconds: not by default


def test_auto_resumes_as_its_checkpoint_decided_on_another_device(tiny_bert, files, tmp_path, monkeypatch, capsys):
    # auto decides by the device; a run stopped on CPU (per batch) and resumed where auto would tokenize up front
    # must go on as it started: up front, the lengths behind the batch order are the true ones, not the estimates.
    monkeypatch.setattr(TK, "PER_BATCH_FROM_ROWS", 50)
    monkeypatch.setattr(TK, "_device_type", lambda training_args: "cpu")
    common = ["--max_steps", "24", "--save_strategy", "steps", "--save_steps", "5"]
    whole, out = tmp_path / "whole", tmp_path / "out"
    R.main(argv(tiny_bert, files["train"], files["dev"], whole, *common))
    put_back = signal_at_step(monkeypatch, 7, signal.SIGINT)
    assert R.cli(argv(tiny_bert, files["train"], files["dev"], out, *common)) == 128 + signal.SIGINT
    put_back()
    capsys.readouterr()
    monkeypatch.setattr(TK, "_device_type", lambda training_args: "cuda")
    R.main(argv(tiny_bert, files["train"], files["dev"], out, *common))
    assert "--tokenize auto: per batch, as the checkpoint it resumes was trained" in capsys.readouterr().out
    assert same_weights(whole, out)
    assert history(out) == history(whole)


def test_a_checkpoint_from_before_the_flag_resumes_as_that_code_tokenized(
    tiny_bert, files, tmp_path, monkeypatch, capsys
):
    # Checkpoints of code older than --tokenize record no such setting; that code tokenized up front. Resuming one
    # with today's default (auto, per batch here) is no change of settings: it goes on up front, as it began.
    monkeypatch.setattr(TK, "PER_BATCH_FROM_ROWS", 50)
    common = ["--max_steps", "24", "--save_strategy", "steps", "--save_steps", "5"]
    whole, out = tmp_path / "whole", tmp_path / "out"
    R.main(argv(tiny_bert, files["train"], files["dev"], whole, *common, "--tokenize", "upfront"))
    put_back = signal_at_step(monkeypatch, 7, signal.SIGINT)
    assert R.cli(argv(tiny_bert, files["train"], files["dev"], out, *common, "--tokenize", "upfront")) == 130
    put_back()
    for path in out.glob("checkpoint-*/run_settings.json"):  # as the code before the flag wrote them
        settings = json.loads(path.read_text())
        path.write_text(json.dumps({k: v for k, v in settings.items() if k not in ("tokenize", RF.DECIDED)}))
        RF.write_manifest(str(path.parent))  # its new size: complete again
    # asked for explicitly, per batch is another way of training than that checkpoint's: refused as a change
    with pytest.raises(UserError, match=r"--tokenize per_batch \(it was unset"):
        R.main(argv(tiny_bert, files["train"], files["dev"], out, *common, "--tokenize", "per_batch"))
    capsys.readouterr()
    R.main(argv(tiny_bert, files["train"], files["dev"], out, *common))
    assert "--tokenize auto: up front, as the checkpoint it resumes was trained" in capsys.readouterr().out
    assert same_weights(whole, out) and history(out) == history(whole)


@pytest.mark.parametrize(
    "flags, strategy, why",
    [
        (["--pad_to_max_length", "true"], "truncate", "--pad_to_max_length pads each row as it is tokenized"),
        ([], "chunk", "chunk makes each text as many rows as it has windows"),
    ],
)
def test_per_batch_where_it_cannot_work_is_one_clear_error(flags, strategy, why):
    args = parse_args(["--model", "m", "--output_dir", "o", "--do_train", "--tokenize", "per_batch", *flags])
    train = datasets.Dataset.from_dict({"sentence": ["x"], "label": [0]})
    with pytest.raises(UserError, match=f"--tokenize per_batch cannot work here: .*{why}.*Drop the flag"):
        TK.resolve_tokenize(args.data, args.training, SINGLE, LongDocuments(32, strategy), train)


def test_per_batch_with_balanced_class_weights_pairs_and_export(tiny_bert, tmp_path):
    # The encoded labels are there to count; text pairs keep their segment ids; the ONNX check reads training rows.
    rows = sentiment_rows(40, 0)
    for row in rows:
        row["question"] = row["sentence"][::-1]
    train = write_rows(tmp_path / "train.csv", rows)
    out = tmp_path / "out"
    flags = ["--train_file", train, "--text_pair_column", "question", "--tokenize", "per_batch", "--max_steps", "3"]
    results = R.main(["--model", tiny_bert, "--output_dir", str(out), "--do_train", "--use_cpu", "--save_strategy",
                      "no", "--class_weights", "balanced", "--export", "onnx", *flags])  # fmt: skip
    assert results["train_samples"] == 40 and (out / "onnx").is_dir()
