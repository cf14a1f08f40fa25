"""Data tokenized already (an `input_ids` column of token ids, as Ray Data, Spark or an earlier pipeline write it as
parquet): used as it is, never tokenized again, and training on it is training on the text it was made from."""

import json

import datasets
import pytest
import torch
from safetensors.torch import load_file

import run_classification as R
from tests.helpers import sentiment_rows, write_rows
from textcls.data import load as D
from textcls.data import tokenization as T
from textcls.errors import UserError

TIMING = ("runtime", "per_second")


def token_rows(tokenizer, rows, pairs=False):
    out = []
    for r in rows:
        enc = tokenizer(r["sentence"], r["sentence"][::-1] if pairs else None, truncation=True, max_length=64)
        out.append({"id": r["id"], "input_ids": enc["input_ids"], "token_type_ids": enc["token_type_ids"]})
        out[-1]["label"] = r["label"]
    return out


@pytest.fixture(scope="module")
def tokenizer(tiny_bert):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_bert)


def argv(model, train, dev, out, *extra):
    return [
        "--model", model, "--train_file", train, "--validation_file", dev, "--test_file", dev, "--do_train",
        "--do_eval", "--do_predict", "--output_dir", str(out), "--use_cpu", "--seed", "0",
        "--per_device_train_batch_size", "4", "--num_train_epochs", "1", "--learning_rate", "1e-3",
        "--save_strategy", "no", "--logging_steps", "2", "--disable_tqdm", "true",
        "--train_sampling_strategy", "sequential", *extra,
    ]  # fmt: skip


def run_outputs(out):
    weights = load_file(out / "model.safetensors")
    logs = json.loads((out / "trainer_state.json").read_text())["log_history"]
    logs = [{k: v for k, v in e.items() if not any(t in k for t in TIMING) and k != "epoch"} for e in logs]
    predictions = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    return weights, logs, [{k: v for k, v in p.items() if k != "text"} for p in predictions]


def assert_same(a, b):
    (wa, la, pa), (wb, lb, pb) = run_outputs(a), run_outputs(b)
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
    assert la == lb and pa == pb


def test_token_ids_train_exactly_as_the_text_they_were_made_from(tiny_bert, tokenizer, tmp_path, monkeypatch):
    rows, dev_rows = sentiment_rows(40, 0), sentiment_rows(10, 1)
    text = R.main(argv(tiny_bert, write_rows(tmp_path / "t.csv", rows), write_rows(tmp_path / "d.csv", dev_rows),
                       tmp_path / "text"))  # fmt: skip
    # Never tokenized again: the tokenizer's batch encoder must not run.
    monkeypatch.setattr(T, "batch_encoder", lambda *a, **k: pytest.fail("token ids were tokenized again"))
    train = write_rows(tmp_path / "t.parquet", token_rows(tokenizer, rows))
    dev = write_rows(tmp_path / "d.parquet", token_rows(tokenizer, dev_rows))
    ids = R.main(argv(tiny_bert, train, dev, tmp_path / "ids"))
    assert_same(tmp_path / "text", tmp_path / "ids")
    assert ids["eval_accuracy"] == text["eval_accuracy"]
    first = json.loads((tmp_path / "ids" / "predictions.jsonl").read_text().splitlines()[0])
    assert "text" not in first and first["id"] == 0  # ids are not written back as text


def test_streamed_token_id_shards_train_as_the_text(tiny_bert, tokenizer, tmp_path):
    rows, dev_rows = sentiment_rows(40, 0), sentiment_rows(10, 1)
    dev = write_rows(tmp_path / "d.csv", dev_rows)
    R.main(argv(tiny_bert, write_rows(tmp_path / "t.csv", rows), dev, tmp_path / "text", "--max_steps", "10"))
    ids, extra = token_rows(tokenizer, rows), ["--streaming", "true", "--max_steps", "10"]
    with pytest.raises(UserError, match="the validation split has no column 'input_ids', but the first split holds"):
        R.main(argv(tiny_bert, write_rows(tmp_path / "ids.jsonl", ids), dev, tmp_path / "mixed", *extra))
    dev = write_rows(tmp_path / "d.jsonl", token_rows(tokenizer, dev_rows))
    for i in range(2):  # (jsonl, not parquet: datasets sleeps 5 s when a parquet stream's reader closes)
        write_rows(tmp_path / f"shard-{i}.jsonl", ids[20 * i : 20 * (i + 1)])
    R.main(argv(tiny_bert, str(tmp_path / "shard-*.jsonl"), dev, tmp_path / "stream", *extra))
    assert_same(tmp_path / "text", tmp_path / "stream")


def test_token_ids_are_chosen_unless_a_text_column_is_named():
    feats = datasets.Features(
        {
            "text": datasets.Value("string"),
            "input_ids": datasets.List(datasets.Value("int32")),
            "label": datasets.Value("int64"),
            "id": datasets.Value("int64"),
        }
    )
    assert D.resolve_columns(feats) == D.Columns("input_ids", None, "label", "id", token_ids=True)
    assert D.resolve_columns(feats, text_column="text") == D.Columns("text", None, "label", "id")
    with pytest.raises(UserError, match="whose pairs are encoded already"):
        D.resolve_columns(feats, text_pair_column="text")


@pytest.mark.parametrize(
    "ids, error",
    [
        ([[2, 5, 3], [2, 99, 3]], "token id 99, outside this tokenizer's vocabulary"),
        ([[2, 5, 3], [2] + [5] * 70 + [3]], "rows of up to 72 token ids, more than --max_seq_length 64"),
        ([[], []], "all 2 rows of the train split have no token ids"),
    ],
)
def test_token_ids_that_do_not_fit_the_model_are_one_clear_error(tokenizer, ids, error):
    ds = datasets.Dataset.from_dict({"input_ids": ids})
    with pytest.raises(UserError, match=error):
        T.check_token_ids(ds, "train", tokenizer, 64)


def test_token_ids_with_pad_to_max_length_are_refused(tiny_bert, tokenizer, tmp_path, capsys):
    train = write_rows(tmp_path / "t.parquet", token_rows(tokenizer, sentiment_rows(8, 0)))
    code = R.cli(argv(tiny_bert, train, train, tmp_path / "o", "--pad_to_max_length", "true"))
    assert code == 2 and "--pad_to_max_length pads text as it is tokenized" in capsys.readouterr().err
