"""Data at scale on tiny files: the batched, cached tokenizing gives exactly what tokenizing the whole split at once
gave; the cache is reused for the same inputs and not for changed ones; labels are checked for the whole split
before any tokenizing; predictions stream out in input order; bad columns are seen in a file's header."""

import json
import logging
import os

import pytest

import run_classification as R
from tests.helpers import TRAIN_FLAGS, sentiment_rows, write_rows
from textcls.data import load as D
from textcls.data import tokenization as T
from textcls.data.labels import LabelEncoder, Labels, encode_labels
from textcls.errors import UserError
from textcls.evaluation import predict as E


@pytest.fixture(scope="module")
def tokenizer(tiny_bert):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_bert)


def rows_of(kind: str):
    """Rows with labels of one kind, an empty and a missing text among them."""
    rows = sentiment_rows(11, seed=3)
    for i, row in enumerate(rows):
        positive = row["label"]
        row["pair"] = f"the plot {'good' if positive else 'bad'}" if i % 3 else ""
        if kind == "strings":
            row["label"] = "pos" if positive else "neg"
        elif kind == "multi":
            row["label"] = ["pos"] + (["dull"] if i % 2 else []) if positive else []
        elif kind == "regression":
            row["label"] = 0.5 * i
    rows[4]["sentence"] = ""
    rows[7]["sentence"] = None
    return rows


KINDS = {
    "ints": (Labels("single_label_classification", ["0", "1"], None), False),
    "strings": (Labels("single_label_classification", ["neg", "pos"], None), True),
    "multi": (Labels("multi_label_classification", ["dull", "pos"], None), False),
    "regression": (Labels("regression", None, None), True),
}


def whole_split(ds, tokenizer, columns, labels, max_length=16):
    """What the tokenizing did before batches: the whole split as Python lists, in one tokenizer call."""
    texts = ["" if v is None else str(v) for v in ds[columns.text]]
    pairs = ["" if v is None else str(v) for v in ds[columns.text_pair]] if columns.text_pair else None
    enc = tokenizer(texts, pairs, truncation=True, max_length=max_length)
    targets = encode_labels(list(ds[columns.label]), labels.names, labels.problem_type, "train", labels.data_names)
    return enc["input_ids"], [len(ids) for ids in enc["input_ids"]], targets


@pytest.mark.parametrize("kind", list(KINDS))
def test_batched_tokenizing_equals_the_whole_split_at_once(kind, tokenizer, tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(T, "BATCH_ROWS", 3)  # 11 rows: batches of 3, 3, 3, 2
    labels, pair = KINDS[kind]
    path = write_rows(tmp_path / "train.jsonl", rows_of(kind))
    ds = D.load_local_file(path, cache_dir=str(tmp_path / "cache"))
    columns = D.Columns("sentence", "pair" if pair else None, "label", "id")
    encoder = LabelEncoder(labels, "train", require_labels=True)
    with caplog.at_level(logging.WARNING):
        assert encoder.check(ds, "label")
        out = T.tokenize_split(ds, tokenizer, columns, None, T.Encoding(16), "train", encoder=encoder)
    ids, lengths, targets = whole_split(ds, tokenizer, columns, labels)
    assert out["input_ids"] == ids and out["length"] == lengths
    assert out["labels"] == targets
    assert out.features["input_ids"].feature.dtype == "uint16" and "attention_mask" not in out.column_names
    assert "2 of 11 rows in the train split have an empty 'sentence'" in caplog.text
    assert out.cache_files, "a split read from a file is tokenized into a file"


def test_num_proc_tokenizes_the_same_rows(tokenizer, tmp_path, monkeypatch):
    monkeypatch.setattr(T, "BATCH_ROWS", 2)
    labels, _ = KINDS["strings"]
    path = write_rows(tmp_path / "t.csv", rows_of("strings"))
    columns = D.Columns("sentence", None, "label", None)
    runs = {}
    for workers in (None, 2):  # each in a cache of its own, or the second would read the first's result
        ds = D.load_local_file(path, cache_dir=str(tmp_path / f"cache-{workers}"))
        encoder = LabelEncoder(labels, "t", True)
        runs[workers] = T.tokenize_split(
            ds, tokenizer, columns, None, T.Encoding(16), "t", encoder=encoder, num_proc=workers
        )
    assert len(runs[2].cache_files) == 2  # one file per worker
    assert runs[2].to_dict() == runs[None].to_dict()


def test_the_cache_is_reused_for_the_same_inputs_and_only_for_them(tiny_bert, tokenizer, tmp_path, caplog):
    from transformers import AutoTokenizer

    cache = str(tmp_path / "cache")
    path = write_rows(tmp_path / "train.csv", rows_of("strings"))
    labels, _ = KINDS["strings"]
    columns = D.Columns("sentence", None, "label", None)

    def tokenize(path=path, tok=tokenizer, columns=columns, length=16, labels=labels):
        ds = D.load_local_file(path, cache_dir=cache)
        encoder = LabelEncoder(labels, "train", True)
        out = T.tokenize_split(ds, tok, columns, None, T.Encoding(length), "train", encoder=encoder)
        return out.cache_files[0]["filename"], out

    first, out = tokenize()
    with caplog.at_level(logging.INFO):
        again, same = tokenize()
    assert again == first and "tokenized by an earlier run" in caplog.text
    assert same.to_dict() == out.to_dict()

    cased = AutoTokenizer.from_pretrained(tiny_bert, do_lower_case=False)
    changed = {
        "max_seq_length": tokenize(length=8),
        "columns": tokenize(columns=D.Columns("sentence", "pair", "label", None)),
        "label map": tokenize(labels=Labels("single_label_classification", ["pos", "neg"], None)),
        "tokenizer": tokenize(tok=cased),
    }
    rows = rows_of("strings")
    rows[0]["sentence"] = "a different first row"
    other = write_rows(tmp_path / "other.csv", rows)
    os.replace(other, path)  # the same path, new content
    changed["file"] = tokenize()
    names = {what: name for what, (name, _) in changed.items()}
    assert first not in names.values() and len(set(names.values())) == len(names), names
    assert changed["label map"][1]["labels"] == [1 - v for v in out["labels"]]
    assert changed["file"][1]["input_ids"][0] != out["input_ids"][0]


def test_labels_are_checked_for_the_whole_split_before_tokenizing(tokenizer, tmp_path, monkeypatch):
    labels, _ = KINDS["strings"]
    rows = rows_of("strings")
    rows[9]["label"] = "maybe"
    ds = D.load_local_file(write_rows(tmp_path / "dev.csv", rows), cache_dir=str(tmp_path / "c"))
    with pytest.raises(UserError, match="the validation split has labels never seen in training: maybe. Known"):
        LabelEncoder(labels, "validation", True).check(ds, "label")
    rows[9]["label"], rows[2]["label"] = "", None
    ds = D.load_local_file(write_rows(tmp_path / "dev2.csv", rows), cache_dir=str(tmp_path / "c"))
    with pytest.raises(UserError, match="2 of 11 rows in the validation split have no label"):
        LabelEncoder(labels, "validation", True).check(ds, "label")
    assert not LabelEncoder(labels, "test", require_labels=False).check(ds, "label")  # predict only


def test_a_run_stops_on_a_bad_label_before_tokenizing(tiny_bert, tmp_path, monkeypatch):
    train = write_rows(tmp_path / "train.csv", sentiment_rows(20, 0))
    dev_rows = sentiment_rows(10, 1)
    dev_rows[-1]["label"] = 7
    dev = write_rows(tmp_path / "dev.csv", dev_rows)
    calls = []
    monkeypatch.setattr(T, "tokenize_split", lambda *a, **k: calls.append(a))
    argv = ["--model", tiny_bert, "--train_file", train, "--validation_file", dev, "--do_train", "--do_eval"]
    with pytest.raises(UserError, match="validation split has labels never seen in training: 7"):
        R.main([*argv, "--output_dir", str(tmp_path / "out"), *TRAIN_FLAGS])
    assert calls == []  # every split's labels are checked before any split is tokenized


def test_predictions_stream_in_input_order(tokenizer, tmp_path, monkeypatch):
    import numpy as np

    ds = D.load_local_file(write_rows(tmp_path / "test.csv", rows_of("strings")), cache_dir=str(tmp_path / "c"))
    columns = D.Columns("sentence", "pair", "label", "id")
    logits = np.random.default_rng(0).normal(size=(len(ds), 2))
    args = (ds, columns, logits, "single_label_classification", ["neg", "pos"], None)
    whole = list(E.prediction_rows(*args))
    monkeypatch.setattr(E, "PREDICTION_BATCH_ROWS", 4)
    assert list(E.prediction_rows(*args)) == whole
    assert [r["id"] for r in whole] == list(range(len(ds)))
    assert [r["label"] for r in whole] == ["pos" if a < b else "neg" for a, b in logits]
    assert (
        whole[3]["gold"] == rows_of("strings")[3]["label"] and whole[1]["text_pair"] == rows_of("strings")[1]["pair"]
    )


def test_progress_lines_while_tokenizing_and_predicting(tiny_bert, sentiment_files, tmp_path, monkeypatch, capsys):
    from textcls.train.trainer import PredictionProgress

    monkeypatch.setattr(T, "BATCH_ROWS", 8)
    monkeypatch.setattr(T, "PROGRESS_SECONDS", 0.0)
    monkeypatch.setattr(PredictionProgress, "PROGRESS_SECONDS", 0.0)
    argv = ["--model", tiny_bert, "--train_file", sentiment_files["train"], "--test_file", sentiment_files["test"]]
    argv += ["--do_train", "--do_predict", "--output_dir", str(tmp_path / "out"), *TRAIN_FLAGS]
    R.main([*argv, "--per_device_eval_batch_size", "4"])  # the log goes to stdout
    out = capsys.readouterr().out
    assert "tokenizing the train split: 8 of 64 rows (12%)" in out and "s left" in out
    assert "predicting: batch 1 of 4 (25%)" in out


def test_a_misnamed_column_is_seen_in_the_header_before_the_file_is_read(tiny_bert, tmp_path, monkeypatch):
    train = write_rows(tmp_path / "train.parquet", sentiment_rows(8, 0))
    dev = write_rows(tmp_path / "dev.csv", sentiment_rows(8, 1))
    monkeypatch.setattr(D, "load_local_file", lambda *a, **k: pytest.fail("a file was read before its header"))
    for extra, where in ((["--text_column", "sentense"], "train.parquet"), (["--label_column", "lable"], "train")):
        argv = ["--model", tiny_bert, "--train_file", train, "--validation_file", dev, "--do_train", "--do_eval"]
        with pytest.raises(UserError, match=rf"--{extra[0][2:]} '{extra[1]}' is not a column of \S*{where}"):
            R.main([*argv, *extra, "--output_dir", str(tmp_path / "out"), *TRAIN_FLAGS])
    assert D.header_columns(dev) == ["id", "sentence", "label"]
    jsonl = write_rows(tmp_path / "t.jsonl", sentiment_rows(2, 0))
    assert D.header_columns(jsonl) == ["id", "sentence", "label"]
    assert json.loads((tmp_path / "t.jsonl").read_text().splitlines()[0])["id"] == 0


def test_a_glob_of_parquet_shards_is_one_split(tmp_path):
    rows = sentiment_rows(30, 0)
    (tmp_path / "shards").mkdir()
    for i in range(3):
        write_rows(tmp_path / "shards" / f"train-{i:05d}.parquet", rows[10 * i : 10 * (i + 1)])
    ds = D.load_local_file(str(tmp_path / "shards" / "train-*.parquet"), cache_dir=str(tmp_path / "c"))
    assert ds["id"][:] == list(range(30))  # every shard, in the order of their names
    with pytest.raises(UserError, match="matches no file"):
        D.load_local_file(str(tmp_path / "shards" / "dev-*.parquet"))
    write_rows(tmp_path / "shards" / "train-x.csv", rows[:2])
    with pytest.raises(UserError, match=r"matches files of several kinds \(.csv, .parquet\)"):
        D.load_local_file(str(tmp_path / "shards" / "train-*"))


def test_numeric_regression_labels_are_checked_without_reading_them_one_by_one():
    import datasets

    regression = Labels("regression", None, None)
    ds = datasets.Dataset.from_dict({"score": [0.5, -1.0, 2.0]})
    assert LabelEncoder(regression, "train", True).check(ds, "score")  # -1.0 is a score where labels are required
    assert not LabelEncoder(regression, "test", False).check(ds, "score")  # GLUE's unlabelled test rows
    nan = datasets.Dataset.from_dict({"score": [0.5, float("nan"), None]})
    with pytest.raises(UserError, match="2 of 3 rows in the train split have no label"):
        LabelEncoder(regression, "train", True).check(nan, "score")
    ints = datasets.Dataset.from_dict({"score": [1, None, 3]})
    with pytest.raises(UserError, match="1 of 3 rows in the validation split have no label"):
        LabelEncoder(regression, "validation", True).check(ints, "score")


def test_rows_are_taken_chunk_by_chunk_in_the_order_asked(tmp_path):
    """A split read from a file is many record batches; a batch's rows come back as datasets gives them, in the
    order asked, from a plain split and from a sorted view of it."""
    import datasets
    import numpy as np

    from textcls.data.collate import ArrowRows

    parts = [
        datasets.Dataset.from_dict({"input_ids": [[i] * (1 + i % 3) for i in range(k, k + 5)]}) for k in (0, 5, 10)
    ]
    ds = datasets.concatenate_datasets(parts)
    assert len(ds.data.table.to_batches()) == 3
    rng = np.random.default_rng(0)
    for view in (ds, ds.select(rng.permutation(15))):
        rows = ArrowRows(view)
        for _ in range(5):
            asked = rng.choice(15, size=6, replace=False).tolist()
            assert rows.__getitems__(asked).to_pylist() == [view[i] for i in asked]
    assert ArrowRows(ds).__getitems__([14, 0, 7, 7]).column("input_ids").to_pylist() == [
        [14] * 3,
        [0],
        [7] * 2,
        [7] * 2,
    ]
