"""Columns, labels, file loading and tokenization, unit by unit."""

import datasets
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.helpers import write_rows
from textcls.data import collate as C
from textcls.data import labels as L
from textcls.data import load as D
from textcls.data import tokenization as T
from textcls.data.glue import get_glue_task
from textcls.errors import UserError


def feats(**kinds):
    table = {"s": datasets.Value("string"), "i": datasets.Value("int64"), "f": datasets.Value("float64")}
    return datasets.Features({k: table[v] for k, v in kinds.items()})


# ------------------------------------------------------------------------------------------------ columns


def test_columns_auto_single_and_pair():
    assert D.resolve_columns(feats(text="s", label="i")) == D.Columns("text", None, "label", None)
    c = D.resolve_columns(feats(idx="i", premise="s", hypothesis="s", label="i"))
    assert (c.text, c.text_pair, c.label, c.id) == ("premise", "hypothesis", "label", "idx")


def test_columns_only_string_column_is_the_text():
    c = D.resolve_columns(feats(body="s", stars="i"), label_column="stars")
    assert c.text == "body" and c.label == "stars"


def test_columns_explicit_missing_lists_columns():
    with pytest.raises(UserError) as e:
        D.resolve_columns(feats(review="s", label="i"), text_column="reveiw")
    msg = str(e.value)
    assert "'reveiw' is not a column" in msg and "'review'" in msg and "Did you mean 'review'" in msg


def test_columns_ambiguous_text_asks():
    with pytest.raises(UserError, match="--text_column"):
        D.resolve_columns(feats(title="s", body="s", label="i"))


def test_columns_no_label():
    with pytest.raises(UserError, match="--label_column"):
        D.resolve_columns(feats(text="s", stars="i"))
    assert D.resolve_columns(feats(text="s"), need_label=False).label is None


def test_columns_glue_task():
    c = D.resolve_columns(feats(question="s", sentence="s", label="i", idx="i"), task=get_glue_task("qnli"))
    assert (c.text, c.text_pair) == ("question", "sentence")


@given(
    st.lists(
        st.sampled_from(["text", "sentence", "body", "label", "score", "idx", "x", "sentence2"]),
        min_size=1,
        max_size=6,
        unique=True,
    )
)
@settings(max_examples=60, deadline=None)
def test_columns_property(names):
    """Whatever the columns, resolution either names existing, distinct columns or raises UserError."""
    f = datasets.Features({n: datasets.Value("string") for n in names})
    try:
        c = D.resolve_columns(f)
    except UserError:
        return
    chosen = [x for x in (c.text, c.text_pair, c.label) if x]
    assert all(x in names for x in chosen) and len(set(chosen)) == len(chosen)


# ------------------------------------------------------------------------------------------------ labels


def test_problem_type_inference():
    assert L.infer_problem_type(datasets.ClassLabel(names=["a", "b"])) == "single_label_classification"
    assert L.infer_problem_type(datasets.Value("int64")) == "single_label_classification"
    assert L.infer_problem_type(datasets.Value("string")) == "single_label_classification"
    assert L.infer_problem_type(datasets.Value("float32")) == "regression"
    assert L.infer_problem_type(datasets.List(datasets.Value("string"))) == "multi_label_classification"


def test_label_names_sorted_numeric_and_lexicographic():
    assert L.build_label_names([10, 2, 1, 2]) == ["1", "2", "10"]
    assert L.build_label_names(["pos", "neg", "neutral"]) == ["neg", "neutral", "pos"]
    assert L.build_label_names([["b", "a"], ["c"], []], multi_label=True) == ["a", "b", "c"]
    assert L.build_label_names([0, 1], data_names=["unacceptable", "acceptable"]) == ["unacceptable", "acceptable"]
    assert L.build_label_names(["x"], label_names=["z", "x"]) == ["z", "x"]


def test_minus_one_is_a_class_in_training_but_unlabelled_in_glue_test():
    names = L.build_label_names([-1, 0, 1])
    assert names == ["-1", "0", "1"]
    assert L.encode_labels([-1, 1], names, "single_label_classification", "train") == [0, 2]
    glue = ["unacceptable", "acceptable"]
    assert L.encode_labels(
        [-1, -1], glue, "single_label_classification", "test", data_names=glue, require_labels=False
    ) == [-1, -1]


def test_encode_unseen_label_is_an_error():
    with pytest.raises(UserError, match="never seen in training: maybe"):
        L.encode_labels(["yes", "maybe"], ["no", "yes"], "single_label_classification", "validation")


def test_encode_missing_labels_counted():
    with pytest.raises(UserError, match="2 of 3 rows in the train split have no label"):
        L.encode_labels(["a", None, float("nan")], ["a"], "single_label_classification", "train")


def test_encode_multi_label_and_regression():
    assert L.encode_labels([["b"], ["a", "b"], []], ["a", "b"], "multi_label_classification", "train") == [
        [0.0, 1.0],
        [1.0, 1.0],
        [0.0, 0.0],
    ]
    with pytest.raises(UserError, match="list of labels"):
        L.encode_labels([["a"], "a"], ["a"], "multi_label_classification", "train")
    assert L.encode_labels([1, "2.5"], None, "regression", "train") == [1.0, 2.5]
    with pytest.raises(UserError, match="not a number"):
        L.encode_labels([1.0, "high"], None, "regression", "train")


@given(st.lists(st.one_of(st.integers(-3, 50), st.sampled_from(["a", "b", "pos", "neg", "10"])), min_size=1))
@settings(max_examples=100, deadline=None)
def test_label_map_property(values):
    """Deterministic (order of rows does not matter), complete, and every training label round-trips."""
    names = L.build_label_names(values)
    assert names == L.build_label_names(list(reversed(values)))
    assert len(set(names)) == len(names)
    ids = L.encode_labels(values, names, "single_label_classification", "train")
    assert [names[i] for i in ids] == [str(v) for v in values]


# ------------------------------------------------------------------------------------------------ files


@pytest.mark.parametrize("ext", [".csv", ".tsv", ".json", ".jsonl", ".parquet"])
def test_load_every_format(tmp_path, ext):
    rows = [{"text": "a b", "label": "x"}, {"text": 'c, "d"', "label": "y"}]
    ds = D.load_local_file(write_rows(tmp_path / f"f{ext}", rows))
    assert ds.column_names == ["text", "label"] and list(ds["text"]) == ["a b", 'c, "d"']


@pytest.mark.parametrize(
    "content, name, words",
    [
        (None, "missing.csv", ["does not exist"]),
        ("a,b\n", "f.xlsx", ["unsupported extension '.xlsx'", ".csv"]),
        ("", "empty.csv", ["is empty"]),
        ("text,label\n", "header.csv", ["no rows"]),
        ('{"text": "a", "label": ', "broken.jsonl", ["could not read"]),
    ],
)
def test_bad_files(tmp_path, content, name, words):
    path = tmp_path / name
    if content is not None:
        path.write_text(content)
    with pytest.raises(UserError) as e:
        D.load_local_file(str(path))
    for w in words:
        assert w in str(e.value)


def test_tokenize_pair_is_a_real_pair(tiny_bert):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_bert)
    ds = datasets.Dataset.from_dict({"a": ["good movie", "bad"], "b": ["the plot", None]})
    out = T.tokenize_split(ds, tok, D.Columns("a", "b", None, None), None, T.Encoding(16), "test")
    # no attention mask: unpadded rows' masks are all ones, and the collator builds each batch's from the lengths
    assert set(out.column_names) == {"input_ids", "token_type_ids", "length"}
    assert out[0]["token_type_ids"] == [0, 0, 0, 0, 1, 1, 1]  # [CLS] good movie [SEP] the plot [SEP]
    assert out["length"] == [7, 4]
    padded = T.tokenize_split(ds, tok, D.Columns("a", "b", None, None), None, T.Encoding(16, True), "test")
    assert {len(x) for x in padded["input_ids"]} == {16}
    assert padded["attention_mask"][1] == [1] * 4 + [0] * 12 and padded["length"] == [7, 4]


@pytest.mark.parametrize(("mixed", "width"), [(False, 5), (True, 8)])
def test_batches_pad_to_their_longest_row_and_to_8_under_mixed_precision(tiny_bert, mixed, width):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_bert)
    rows = [{"input_ids": ids, "labels": 0} for ids in ([2, 5, 3], [2, 5, 6, 7, 3])]
    batch = C.make_collator(tokenizer, pad_to_max_length=False, mixed_precision=mixed)(rows)
    assert batch["input_ids"].shape == (2, width)
    assert batch["input_ids"][0, 3:].tolist() == [tokenizer.pad_token_id] * (width - 3)


@settings(max_examples=60, deadline=None)
@given(
    lengths=st.lists(st.integers(1, 12), min_size=1, max_size=6),
    left=st.booleans(),
    multiple=st.sampled_from([None, 8]),
    label=st.sampled_from(["int", "float", "multi", "label", "none"]),
    pairs=st.booleans(),
)
def test_fast_collator_matches_the_stock_one(tiny_bert, lengths, left, multiple, label, pairs):
    """Same keys, shapes, dtypes and values as DataCollatorWithPadding, for either padding side."""
    import torch
    from transformers import AutoTokenizer, DataCollatorWithPadding

    tokenizer = AutoTokenizer.from_pretrained(tiny_bert)
    tokenizer.padding_side = "left" if left else "right"
    rows = []
    for i, n in enumerate(lengths):
        row = {"input_ids": list(range(5, 5 + n)), "attention_mask": [1] * n}
        if pairs:
            row["token_type_ids"] = [0] * (n // 2) + [1] * (n - n // 2)
        if label == "int":
            row["labels"] = i % 3
        elif label == "float":
            row["labels"] = i / 3
        elif label == "multi":
            row["labels"] = [1.0, 0.0, float(i % 2)]
        elif label == "label":
            row["label"] = i % 2
        rows.append(row)
    collator = C.FastPaddingCollator(tokenizer, pad_to_multiple_of=multiple)
    stock = DataCollatorWithPadding(tokenizer, pad_to_multiple_of=multiple)(rows)
    # rows as Python dicts, and as the Arrow table that ArrowRows fetches (in a shuffled order, as a sampler asks)
    order = list(range(len(rows)))[::-1]
    table = C.ArrowRows(datasets.Dataset.from_list(rows)).__getitems__(order)
    stock_reordered = DataCollatorWithPadding(tokenizer, pad_to_multiple_of=multiple)([rows[i] for i in order])
    for fast, expected in ((collator(rows), stock), (collator(table), stock_reordered)):
        assert set(fast) == set(expected)
        for key in expected:
            assert fast[key].dtype == expected[key].dtype, key
            assert torch.equal(fast[key], expected[key]), key


def test_fast_collator_hands_rows_it_cannot_pad_to_the_stock_one(tiny_bert):
    import torch
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_bert)
    collator = C.FastPaddingCollator(tokenizer)
    rows = [{"input_ids": torch.tensor([5, 6]), "labels": 0}, {"input_ids": torch.tensor([5]), "labels": 1}]
    assert collator(rows)["input_ids"].tolist() == [[5, 6], [5, tokenizer.pad_token_id]]
    text = [{"input_ids": [5, 6], "labels": 0, "idx": "a"}, {"input_ids": [5], "labels": 1, "idx": "b"}]
    with pytest.raises(ValueError):  # the stock collator's own error for a string column
        collator(C.ArrowRows(datasets.Dataset.from_list(text)).__getitems__([0, 1]))


def test_prepadded_rows_are_stacked_as_they_are():
    from transformers import default_data_collator

    assert C.make_collator(None, pad_to_max_length=True, mixed_precision=True) is default_data_collator


def test_trainer_fetches_batches_as_arrow_and_pads_them_like_the_stock_collator(tiny_bert, tmp_path):
    """The training DataLoader reads each batch with one Arrow take (ArrowRows) and gives the tensors that the
    stock per-row path gives; the prepadded (HF default) path keeps the stock per-row fetch."""
    import torch
    from transformers import (
        AutoModelForSequenceClassification,
        AutoTokenizer,
        DataCollatorWithPadding,
        TrainingArguments,
    )

    from textcls.train.trainer import ClassificationTrainer

    tokenizer = AutoTokenizer.from_pretrained(tiny_bert)
    model = AutoModelForSequenceClassification.from_pretrained(tiny_bert, num_labels=2)
    texts = ["a good movie", "bad", "the plot was thin and the acting worse", "fine", "ok then"]
    ds = datasets.Dataset.from_dict({"text": texts, "label": [1, 0, 0, 1, 1]})
    columns = D.Columns("text", None, "label", None)
    train = T.tokenize_split(ds, tokenizer, columns, [1, 0, 0, 1, 1], T.Encoding(32), "train")
    args = TrainingArguments(str(tmp_path), per_device_train_batch_size=5, report_to="none", use_cpu=True)
    for pad_to_max_length in (False, True):
        collator, arrow = C.make_collator(tokenizer, pad_to_max_length, True), not pad_to_max_length
        trainer = ClassificationTrainer(model=model, args=args, train_dataset=train, data_collator=collator)
        loader = trainer.get_train_dataloader()
        assert isinstance(loader.dataset, C.ArrowRows) == arrow
        if arrow:
            (batch,) = list(loader)
            lengths = batch["attention_mask"].sum(1)
            ids = [row[: int(n)].tolist() for row, n in zip(batch["input_ids"], lengths, strict=True)]
            order = [train["input_ids"].index(row) for row in ids]
            assert sorted(order) == list(range(5))
            rows = [{k: train[i][k] for k in ("input_ids", "token_type_ids", "labels")} for i in order]
            expected = DataCollatorWithPadding(tokenizer, pad_to_multiple_of=8)(rows)
            assert set(batch) == set(expected)
            assert all(torch.equal(batch[k], expected[k]) for k in expected)


def test_arrow_rows_fetch_follows_a_selected_or_sorted_view():
    ds = datasets.Dataset.from_dict({"input_ids": [[1], [2, 2], [3, 3, 3]], "labels": [0, 1, 2]})
    view = C.ArrowRows(ds.select([2, 0, 1]))
    assert view.__getitems__([0, 2]).to_pydict() == {"input_ids": [[3, 3, 3], [2, 2]], "labels": [2, 1]}
    assert len(view) == 3 and view[0]["labels"] == 2 and view.column_names == ["input_ids", "labels"]
    nested = C.ArrowRows(ds.select([2, 0, 1]).select([2, 0]))  # a view of a view: datasets composes the indices
    assert nested.__getitems__([0, 1]).to_pydict() == {"input_ids": [[2, 2], [3, 3, 3]], "labels": [1, 2]}
