"""Columns, labels, file loading and tokenization, unit by unit."""

import datasets
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import write_rows
from textcls import data as D
from textcls.errors import UserError
from textcls.glue import get_glue_task


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
    assert D.infer_problem_type(datasets.ClassLabel(names=["a", "b"])) == "single_label_classification"
    assert D.infer_problem_type(datasets.Value("int64")) == "single_label_classification"
    assert D.infer_problem_type(datasets.Value("string")) == "single_label_classification"
    assert D.infer_problem_type(datasets.Value("float32")) == "regression"
    assert D.infer_problem_type(datasets.List(datasets.Value("string"))) == "multi_label_classification"


def test_label_names_sorted_numeric_and_lexicographic():
    assert D.build_label_names([10, 2, 1, 2]) == ["1", "2", "10"]
    assert D.build_label_names(["pos", "neg", "neutral"]) == ["neg", "neutral", "pos"]
    assert D.build_label_names([["b", "a"], ["c"], []], multi_label=True) == ["a", "b", "c"]
    assert D.build_label_names([0, 1], data_names=["unacceptable", "acceptable"]) == ["unacceptable", "acceptable"]
    assert D.build_label_names(["x"], label_names=["z", "x"]) == ["z", "x"]


def test_minus_one_is_a_class_in_training_but_unlabelled_in_glue_test():
    names = D.build_label_names([-1, 0, 1])
    assert names == ["-1", "0", "1"]
    assert D.encode_labels([-1, 1], names, "single_label_classification", "train") == [0, 2]
    glue = ["unacceptable", "acceptable"]
    assert D.encode_labels(
        [-1, -1], glue, "single_label_classification", "test", data_names=glue, require_labels=False
    ) == [-1, -1]


def test_encode_unseen_label_is_an_error():
    with pytest.raises(UserError, match="never seen in training: maybe"):
        D.encode_labels(["yes", "maybe"], ["no", "yes"], "single_label_classification", "validation")


def test_encode_missing_labels_counted():
    with pytest.raises(UserError, match="2 of 3 rows in the train split have no label"):
        D.encode_labels(["a", None, float("nan")], ["a"], "single_label_classification", "train")


def test_encode_multi_label_and_regression():
    assert D.encode_labels([["b"], ["a", "b"], []], ["a", "b"], "multi_label_classification", "train") == [
        [0.0, 1.0],
        [1.0, 1.0],
        [0.0, 0.0],
    ]
    with pytest.raises(UserError, match="list of labels"):
        D.encode_labels([["a"], "a"], ["a"], "multi_label_classification", "train")
    assert D.encode_labels([1, "2.5"], None, "regression", "train") == [1.0, 2.5]
    with pytest.raises(UserError, match="not a number"):
        D.encode_labels([1.0, "high"], None, "regression", "train")


@given(st.lists(st.one_of(st.integers(-3, 50), st.sampled_from(["a", "b", "pos", "neg", "10"])), min_size=1))
@settings(max_examples=100, deadline=None)
def test_label_map_property(values):
    """Deterministic (order of rows does not matter), complete, and every training label round-trips."""
    names = D.build_label_names(values)
    assert names == D.build_label_names(list(reversed(values)))
    assert len(set(names)) == len(names)
    ids = D.encode_labels(values, names, "single_label_classification", "train")
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
    out = D.tokenize_split(ds, tok, D.Columns("a", "b", None, None), None, 16, False, "test")
    assert set(out.column_names) == {"input_ids", "token_type_ids", "attention_mask", "length"}
    assert out[0]["token_type_ids"] == [0, 0, 0, 0, 1, 1, 1]  # [CLS] good movie [SEP] the plot [SEP]
    assert out["length"] == [7, 4]
    padded = D.tokenize_split(ds, tok, D.Columns("a", "b", None, None), None, 16, True, "test")
    assert {len(x) for x in padded["input_ids"]} == {16}


@pytest.mark.parametrize(("mixed", "width"), [(False, 5), (True, 8)])
def test_batches_pad_to_their_longest_row_and_to_8_under_mixed_precision(tiny_bert, mixed, width):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_bert)
    rows = [{"input_ids": ids, "labels": 0} for ids in ([2, 5, 3], [2, 5, 6, 7, 3])]
    batch = D.make_collator(tokenizer, pad_to_max_length=False, mixed_precision=mixed)(rows)
    assert batch["input_ids"].shape == (2, width)
    assert batch["input_ids"][0, 3:].tolist() == [tokenizer.pad_token_id] * (width - 3)


def test_prepadded_rows_are_stacked_as_they_are():
    from transformers import default_data_collator

    assert D.make_collator(None, pad_to_max_length=True, mixed_precision=True) is default_data_collator
