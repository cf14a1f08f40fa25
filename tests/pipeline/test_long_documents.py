"""--long_document_strategy chunk: the window splitter (the tokenizer's own overflow, every token covered, pairs),
joining the windows' logits per text (across batches and across 2 processes), and runs that train, evaluate and
predict per text, from flags and from the saved folder."""

import json
import os
import random
import subprocess

import datasets
import numpy as np
import pytest
from transformers import AutoTokenizer

import run_classification as R
from tests.helpers import TRAIN_FLAGS, sentence, two_cpu_processes, write_rows
from textcls.data import tokenization as T
from textcls.data.load import Columns
from textcls.errors import UserError

TEXTS = [
    "good great fine nice happy love best fun bad awful poor sad hate worst boring",  # 15 tokens: 4 windows
    "good movie",  # short: one window
    "",
    "the plot was dull and the actor was bad",
]


def documents(n, seed):
    """Texts of 1-6 sentences, the label the polarity they share: many are longer than a 16-token window."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        positive = rng.random() < 0.5
        text = " ".join(sentence(rng, positive) for _ in range(rng.randint(1, 6)))
        rows.append({"id": i, "text": text, "label": int(positive)})
    return rows


def windows(tokenizer, texts, pairs=None, length=8, stride=2):
    ds = datasets.Dataset.from_dict({"text": texts, **({"pair": pairs} if pairs else {})})
    columns = Columns(text="text", text_pair="pair" if pairs else None, label=None, id=None)
    return T.tokenize_split(ds, tokenizer, columns, None, T.Encoding(length, stride=stride, documents=True), "dev")


def test_windows_are_the_tokenizers_overflow_and_cover_every_token(tiny_bert):
    tok = AutoTokenizer.from_pretrained(tiny_bert)
    out = windows(tok, TEXTS)
    ref = tok(TEXTS, truncation=True, max_length=8, stride=2, return_overflowing_tokens=True)
    assert out["input_ids"] == ref["input_ids"]
    assert out["document"] == ref["overflow_to_sample_mapping"] == [0, 0, 0, 0, 1, 2, 3, 3]
    assert out["length"] == [len(ids) for ids in ref["input_ids"]]
    for doc, text in enumerate(TEXTS):
        inner = [ids[1:-1] for ids, d in zip(out["input_ids"], out["document"], strict=True) if d == doc]
        assert all(len(w) <= 6 for w in inner)
        # each window after the first repeats the stride's 2 tokens of the one before, then goes on
        for a, b in zip(inner, inner[1:], strict=False):
            assert b[:2] == a[-2:]
        joined = inner[0] + [t for w in inner[1:] for t in w[2:]]
        assert joined == tok(text, add_special_tokens=False)["input_ids"]


def test_pair_windows_split_the_second_text_and_repeat_the_first(tiny_bert):
    tok = AutoTokenizer.from_pretrained(tiny_bert)
    out = windows(tok, ["the movie", "a film"], [TEXTS[0], "good"], length=10, stride=1)
    first = tok("the movie", add_special_tokens=False)["input_ids"]
    mine = [ids for ids, d in zip(out["input_ids"], out["document"], strict=True) if d == 0]
    assert len(mine) == 4  # 15 tokens, 5 a window, 1 shared: 5 + 4 + 4 + 2
    for ids in mine:
        assert ids[1:3] == first  # [CLS] the movie [SEP] ...
    assert out["document"].count(1) == 1
    assert set(out["token_type_ids"][0]) == {0, 1}


def test_a_first_text_too_long_for_the_windows_is_one_clear_error(tiny_bert):
    tok = AutoTokenizer.from_pretrained(tiny_bert)
    with pytest.raises(UserError, match="a first text of the dev split has 5 tokens"):
        windows(tok, ["good great fine nice happy"], ["bad awful poor sad hate worst"], length=10, stride=2)
    # the same first text with a second that fits whole needs no windows
    assert len(windows(tok, ["good great fine nice happy"], ["bad"], length=10, stride=2)) == 1


def test_join_windows_means_or_maxes_each_texts_windows_in_any_order():
    # texts 0, 1, 2 with 3, 1, 2 windows, in the shuffled order a length-sorted split holds them
    docs = np.array([2, 0, 1, 0, 2, 0])
    logits = np.array([[5.0, 0.0], [1.0, 2.0], [0.0, 9.0], [3.0, 0.0], [1.0, 4.0], [2.0, 1.0]], dtype=np.float32)
    labels = np.array([1, 0, 1, 0, 1, 0])
    mean, gold = T.join_windows(logits, labels, docs, "mean")
    np.testing.assert_allclose(mean, [[2.0, 1.0], [0.0, 9.0], [3.0, 2.0]])
    assert mean.dtype == np.float32 and gold.tolist() == [0, 1, 1]
    top, _ = T.join_windows(logits, labels, docs, "max")
    np.testing.assert_allclose(top, [[3.0, 2.0], [0.0, 9.0], [5.0, 4.0]])
    # split across two "processes" as gathered (rank 0's rows, then rank 1's): the same texts
    halves = np.concatenate([logits[::2], logits[1::2]])
    again, _ = T.join_windows(halves, None, np.concatenate([docs[::2], docs[1::2]]), "mean")
    np.testing.assert_allclose(again, mean)
    regression, _ = T.join_windows(np.array([1.0, 3.0, 2.0]), None, np.array([0, 0, 1]))
    np.testing.assert_allclose(regression, [2.0, 2.0])
    with pytest.raises(ValueError, match="text 1 has no window"):
        T.join_windows(logits[:2], None, np.array([0, 2]))


@pytest.fixture(scope="module")
def chunked(tiny_bert, tmp_path_factory):
    """A model trained on 16-token windows, its evaluation and predictions per text."""
    tmp = tmp_path_factory.mktemp("chunk")
    train = write_rows(tmp / "train.csv", documents(64, 0))
    dev = write_rows(tmp / "dev.csv", documents(21, 1))
    out = tmp / "out"
    argv = ["--model", tiny_bert, "--train_file", train, "--validation_file", dev, "--test_file", dev]
    argv += ["--do_train", "--do_eval", "--do_predict", "--output_dir", str(out), *TRAIN_FLAGS]
    argv += ["--learning_rate", "5e-3", "--num_train_epochs", "2"]
    results = R.main([*argv, "--max_seq_length", "16", "--long_document_strategy", "chunk", "--doc_stride", "4"])
    return tmp, out, results


def read(path):
    with open(path) as f:
        return [json.loads(line) for line in f]


def test_chunk_trains_on_windows_and_evaluates_and_predicts_per_text(chunked, tiny_bert):
    tmp, out, results = chunked
    rows = documents(21, 1)
    tok = AutoTokenizer.from_pretrained(tiny_bert)
    expected = len(windows(tok, [r["text"] for r in rows], length=16, stride=4))
    assert results["eval_samples"] == 21 and results["eval_windows"] == expected > 30
    predicted = read(out / "predictions.jsonl")
    assert [p["id"] for p in predicted] == list(range(21))
    assert [p["text"] for p in predicted] == [r["text"] for r in rows]
    correct = [p["label"] == str(r["label"]) for p, r in zip(predicted, rows, strict=True)]
    assert results["eval_accuracy"] == pytest.approx(np.mean(correct))
    report = json.loads((out / "eval_classification_report.json").read_text())
    assert sum(map(sum, report["confusion_matrix"])) == 21
    config = json.loads((out / "config.json").read_text())
    assert config["long_document"] == {
        "strategy": "chunk",
        "max_seq_length": 16,
        "doc_stride": 4,
        "aggregation": "mean",
    }


def test_the_saved_folder_predicts_on_the_same_windows_without_flags(chunked, tmp_path):
    tmp, out, _ = chunked
    argv = ["--model", str(out), "--test_file", str(tmp / "dev.csv"), "--do_predict", "--use_cpu"]
    again = R.main([*argv, "--output_dir", str(tmp_path / "p"), "--disable_tqdm", "true"])
    assert again["predict_windows"] > 30
    a, b = read(out / "predictions.jsonl"), read(tmp_path / "p" / "predictions.jsonl")
    assert [(r["id"], r["label"]) for r in b] == [(r["id"], r["label"]) for r in a]
    for x, y in zip(a, b, strict=True):
        assert y["probabilities"] == pytest.approx(x["probabilities"], abs=1e-5)
    # asking for the max of the windows changes the probabilities, not the rows
    R.main([*argv, "--output_dir", str(tmp_path / "m"), "--chunk_aggregation", "max"])
    top = read(tmp_path / "m" / "predictions.jsonl")
    assert [p["id"] for p in top] == list(range(21))
    assert [p["probabilities"] for p in top] != [p["probabilities"] for p in read(out / "predictions.jsonl")]


def test_two_processes_join_each_text_once(chunked, tmp_path):
    """An odd number of windows, 3 to a batch, 2 processes: a text's windows land on both, and the last batch is
    padded with repeated windows; the joined predictions and metrics must be the single process's."""
    tmp, out, results = chunked
    argv = ["--model", str(out), "--validation_file", str(tmp / "dev.csv"), "--test_file", str(tmp / "dev.csv")]
    argv += ["--do_eval", "--do_predict", "--per_device_eval_batch_size", "3", "--disable_tqdm", "true"]
    single = tmp_path / "single"
    R.main([*argv, "--output_dir", str(single), "--use_cpu"])
    cmd = [
        *two_cpu_processes(),
        *argv,
        "--output_dir",
        str(tmp_path / "ddp"),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    a, b = read(single / "predictions.jsonl"), read(tmp_path / "ddp" / "predictions.jsonl")
    assert [r["id"] for r in b] == list(range(21))
    for x, y in zip(a, b, strict=True):
        assert y["probabilities"] == pytest.approx(x["probabilities"], abs=1e-5)
    ddp = json.loads((tmp_path / "ddp" / "eval_results.json").read_text())
    assert ddp["eval_samples"] == 21 and ddp["eval_windows"] == results["eval_windows"]
    assert ddp["eval_accuracy"] == results["eval_accuracy"]


@pytest.mark.parametrize(
    "flags, error",
    [
        (["--doc_stride", "4"], "--doc_stride is a setting of --long_document_strategy chunk"),
        (["--long_document_strategy", "chunk", "--doc_stride", "14"], "so it must be from 0 to 13"),
        (["--long_document_strategy", "chunk", "--pad_to_max_length"], "does not work with --pad_to_max_length"),
    ],
)
def test_bad_chunk_flags_are_one_clear_error(tiny_bert, tmp_path, capsys, flags, error):
    train = write_rows(tmp_path / "train.csv", documents(8, 0))
    argv = ["--model", tiny_bert, "--train_file", train, "--do_train", "--output_dir", str(tmp_path / "o")]
    assert R.cli([*argv, *TRAIN_FLAGS, "--max_seq_length", "16", *flags]) == 2
    assert error in capsys.readouterr().err
    assert not os.path.exists(tmp_path / "o")


def test_chunk_with_lora_evaluates_per_text(tiny_bert, tmp_path):
    train = write_rows(tmp_path / "train.csv", documents(24, 0))
    argv = ["--model", tiny_bert, "--train_file", train, "--validation_file", train, "--do_train", "--do_eval"]
    argv += ["--output_dir", str(tmp_path / "o"), *TRAIN_FLAGS, "--use_lora", "--learning_rate", "5e-3"]
    results = R.main([*argv, "--max_seq_length", "16", "--long_document_strategy", "chunk"])
    assert results["eval_samples"] == 24 and results["eval_windows"] > 24
