"""--streaming: the training rows read as a datasets IterableDataset and tokenized as training reads them. The same
rows in the same order train exactly as the cached split does; length grouping works within a buffer; a stopped run
resumes bit-identical; bad rows past the stream's head still stop the run with one clear error; each process of a
2-process launch reads its own rows."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import run_classification as R
from tests.helpers import (
    ROOT,
    assert_stop_at_step_7_resumes_bit_identical,
    history,
    same_weights,
    sentiment_rows,
    two_cpu_processes,
    write_rows,
)
from tests.helpers import (
    short_run_argv as argv,
)
from textcls.config import checks
from textcls.config.args import parse_args
from textcls.data.load import STREAM_HEAD_ROWS
from textcls.data.tokenization import group_by_length_within
from textcls.errors import UserError


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("stream")
    return {
        "train": write_rows(folder / "train.csv", sentiment_rows(64, 0)),
        "dev": write_rows(folder / "dev.csv", sentiment_rows(12, 1)),
    }


@pytest.mark.parametrize(
    "extra, fix",
    [
        ([], "--streaming needs --max_steps N"),
        (["--max_steps", "5", "--train_sampling_strategy", "batch_rebalance"], "batch_rebalance needs every row"),
    ],
)
def test_streaming_flags_that_cannot_work_are_refused_up_front(extra, fix):
    args = parse_args(["--model", "m", "--train_file", "t.csv", "--do_train", "--streaming", "true", *extra])
    with pytest.raises(UserError, match=fix):
        checks.check_flags(args)
    glue = parse_args(["--model", "m", "--task_name", "rte", "--data_dir", "d", "--do_train", "--streaming", "true"])
    with pytest.raises(UserError, match="original GLUE folder is small enough"):
        checks.check_flags(glue)


def test_a_sequential_stream_trains_exactly_as_the_cached_split(tiny_bert, files, tmp_path):
    # Same rows, same order, dropout on: token ids, labels, batches and the RNG's draws must all agree.
    common = ["--max_steps", "12", "--train_sampling_strategy", "sequential"]
    cached, streamed = tmp_path / "cached", tmp_path / "streamed"
    R.main(argv(tiny_bert, files["train"], files["dev"], cached, *common))
    results = R.main(argv(tiny_bert, files["train"], files["dev"], streamed, *common, "--streaming", "true"))
    assert same_weights(cached, streamed)
    # Trainer's 'epoch' of a stream is steps / max_steps: it cannot know the stream's length.
    drop_epoch = lambda logs: [{k: v for k, v in e.items() if k != "epoch"} for e in logs]  # noqa: E731
    assert drop_epoch(history(streamed)) == drop_epoch(history(cached))
    assert results["train_samples"] == 12 * 4  # the rows its steps took (the cached run: the split's 64)


def test_group_by_length_within_a_run_of_batches():
    rng = np.random.default_rng(0)
    lengths = rng.integers(1, 100, size=103).tolist()
    rows = {"length": lengths, "input_ids": [[7] * n for n in lengths], "labels": list(range(103))}
    out = group_by_length_within(rows, batch_size=10, seed=0)
    assert sorted(out["labels"]) == list(range(103))  # every row once
    assert all(len(ids) == n for ids, n in zip(out["input_ids"], out["length"], strict=True))
    batches = [out["length"][i : i + 10] for i in range(0, 103, 10)]
    # Each batch holds rows of neighbouring lengths: its spread is far below a random batch's.
    spread = np.mean([max(b) - min(b) for b in batches[:-1]])
    assert spread < 20 < np.mean([max(b) - min(b) for b in np.array_split(np.array(lengths)[:100], 10)])
    assert len(batches[-1]) == 3 and max(batches[-1]) <= min(lengths) + 10  # the short batch stays last
    assert group_by_length_within(rows, 10, 0) == out  # the same run, the same batches
    assert group_by_length_within(rows, 10, 1)["labels"] != out["labels"]  # another seed, another batch order


def test_a_stopped_stream_resumes_bit_identical(tiny_bert, files, tmp_path, monkeypatch):
    # Default order (shuffle buffer + length groups), dropout on, 24 steps over a 64-row stream: the run passes
    # the end of the stream (16 batches) and starts it again; the stop at step 7 falls inside the first pass.
    common = ["--max_steps", "24", "--streaming", "true", "--save_strategy", "steps", "--save_steps", "5"]
    assert_stop_at_step_7_resumes_bit_identical(tiny_bert, files, tmp_path, monkeypatch, *common)


@pytest.mark.parametrize("bad, error", [("unknown", "labels never seen in training: 7"), ("missing", "have no label")])
def test_a_bad_label_past_the_streams_head_stops_the_run(tiny_bert, tmp_path, capsys, bad, error):
    rows = sentiment_rows(STREAM_HEAD_ROWS + 100, 0)
    rows[STREAM_HEAD_ROWS + 50]["label"] = 7 if bad == "unknown" else None
    train = write_rows(tmp_path / "train.jsonl", rows)
    dev = write_rows(tmp_path / "dev.csv", sentiment_rows(12, 1))
    out = tmp_path / "out"
    extra = ["--streaming", "true", "--max_steps", "40", "--per_device_train_batch_size", "32"]
    assert R.cli(argv(tiny_bert, train, dev, out, *extra)) == 2
    err = capsys.readouterr().err
    assert error in err and "--streaming: found in a row read during training" in err and "Traceback" not in err
    assert not (out / "model.safetensors").exists()


def test_streamed_classes_come_from_the_head_and_validation_or_label_names(tiny_bert, tmp_path, capsys):
    # The head (first 1,000 rows) has 'neg' and 'pos' only; the validation split adds 'neutral'.
    rows = sentiment_rows(STREAM_HEAD_ROWS + 8, 0, label_fn=lambda pos: "pos" if pos else "neg")
    # (jsonl: datasets sleeps 5 s whenever a parquet stream's reader closes, for an Arrow bug, apache/arrow#45214)
    train = write_rows(tmp_path / "train.jsonl", rows)
    dev = write_rows(tmp_path / "dev.csv", [{**r, "label": "neutral"} for r in sentiment_rows(6, 1)])
    extra = ["--streaming", "true", "--max_steps", "2"]
    R.main(argv(tiny_bert, train, dev, tmp_path / "a", *extra))
    config = json.loads((tmp_path / "a" / "config.json").read_text())
    assert list(config["id2label"].values()) == ["neg", "neutral", "pos"]
    log = capsys.readouterr().out
    assert "--streaming: the classes ['neg', 'neutral', 'pos'] are those of the first 1000" in log
    assert "pass --label_names" in log
    R.main(argv(tiny_bert, train, dev, tmp_path / "b", *extra, "--label_names", "pos", "neg", "neutral"))
    config = json.loads((tmp_path / "b" / "config.json").read_text())
    assert list(config["id2label"].values()) == ["pos", "neg", "neutral"]


def test_two_processes_each_read_their_own_shards(tiny_bert, tmp_path):
    from transformers import AutoTokenizer

    rows = sentiment_rows(200, 0)
    unique = list({r["sentence"]: r for r in rows}.values())[:128]  # a row is told by its tokens
    shards = [unique[:64], unique[64:]]
    for i, shard in enumerate(shards):
        write_rows(tmp_path / f"train-{i}.csv", shard)  # csv: see the note on parquet streams above
    dev = write_rows(tmp_path / "dev.csv", sentiment_rows(12, 1))
    out = tmp_path / "out"
    cmd = [
        *two_cpu_processes("tests/stream_probe.py"),
        *argv(tiny_bert, str(tmp_path / "train-*.csv"), dev, out),
        "--streaming", "true", "--max_steps", "6", "--padding_free", "false",
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    tokenizer = AutoTokenizer.from_pretrained(tiny_bert)
    shard_rows = [{tuple(tokenizer(r["sentence"])["input_ids"]) for r in shard} for shard in shards]
    seen = [[tuple(ids) for ids in json.loads((out / f"rows_{rank}.json").read_text())] for rank in range(2)]
    for rank in range(2):
        assert len(seen[rank]) == 6 * 4  # its own batches: 6 steps of 4 rows
        assert set(seen[rank]) <= shard_rows[rank]  # every one from its own shard (file)
        assert len(set(seen[rank])) == 24  # no row twice within the first pass
    assert "each process reads (and tokenizes) the whole stream" not in proc.stderr


def test_shard_data_writes_the_file_as_parquet_shards_in_order(tmp_path):
    import pandas as pd

    sys.path.insert(0, os.path.join(ROOT, "scripts"))
    from shard_data import main, shard

    rows = sentiment_rows(10, 0)
    src = write_rows(tmp_path / "train.csv", rows)
    files = shard(src, str(tmp_path / "shards"), 3)
    assert [os.path.basename(f) for f in files] == [f"train-{i:05d}-of-00003.parquet" for i in range(3)]
    back = pd.concat([pd.read_parquet(f) for f in sorted(files)]).to_dict("records")
    assert back == rows and not list((tmp_path / "shards").glob("*.tmp"))
    assert main([src, str(tmp_path / "more"), "--num_shards", "11"]) == 2 and not (tmp_path / "more").exists()


def test_fewer_shards_than_processes_is_a_warning_and_each_process_keeps_its_batches(caplog, tmp_path):
    from types import SimpleNamespace

    import datasets

    from textcls.config.args import parse_args
    from textcls.train.trainer import BestMetric, trainer_arguments, warn_about_shards

    rows = datasets.Dataset.from_dict({"x": [1, 2, 3]}).to_iterable_dataset(num_shards=1)
    for world, warned in ((1, False), (2, True)):
        caplog.clear()
        warn_about_shards(SimpleNamespace(world_size=world), rows)
        assert ("1 shard(s) for 2 processes" in caplog.text) == warned
    parsed = parse_args(["--model", "m", "--do_train", "--output_dir", str(tmp_path)]).training
    resolved = trainer_arguments(parsed, BestMetric(None, None), streamed=True)
    assert resolved.accelerator_config.dispatch_batches is False  # each process reads; none sends the others batches
    assert parsed.accelerator_config.dispatch_batches is None  # the parsed arguments stay as parsed


def test_a_hub_dataset_streams_its_train_split_and_reads_the_others_whole(monkeypatch):
    import datasets

    from textcls.data import load as D

    splits = {name: datasets.Dataset.from_list(sentiment_rows(n, 0)) for name, n in (("train", 30), ("validation", 5))}
    calls = []

    def load_dataset(name, config=None, split=None, streaming=False, **kwargs):
        calls.append((name, config, split, streaming))
        return splits[split].to_iterable_dataset() if streaming else splits[split]

    monkeypatch.setattr(datasets, "get_dataset_split_names", lambda name, config=None: list(splits))
    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    args = parse_args(["--model", "m", "--dataset_name", "org/reviews", "--do_train", "--streaming", "true"])
    raw = D.load_raw_datasets(args.data, args.model)
    assert isinstance(raw["train"], D.Stream) and len(raw["train"].head) == 30
    assert isinstance(raw["validation"], datasets.Dataset) and len(raw["validation"]) == 5
    assert sorted(calls) == [("org/reviews", None, "train", True), ("org/reviews", None, "validation", False)]
