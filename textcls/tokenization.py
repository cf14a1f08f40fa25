"""Tokenizing: each split's texts (and text pairs) into token ids, lengths and encoded labels."""

import logging

import datasets

from textcls.data import Columns
from textcls.errors import UserError
from textcls.labels import encode_labels
from textcls.trainer import sort_by_length

logger = logging.getLogger(__name__)


def tokenize_splits(splits, columns: Columns, tokenizer, labels, data_args) -> dict:
    """{(role, split): (tokenized rows, order)}: training rows as they are (order None); evaluation and test rows
    sorted by length (big evaluation batches then pad little), with the order that undoes it."""
    tokenized = {}
    for role, names in splits.items():
        for name, ds in names.items():
            has_label = columns.label is not None and columns.label in ds.features
            targets = (
                encode_labels(
                    list(ds[columns.label]),
                    labels.names,
                    labels.problem_type,
                    name,
                    labels.data_names,
                    require_labels=role != "test",
                )
                if has_label
                else None
            )
            if role == "test" and targets is not None and any(v is None or v == -1 for v in targets):
                targets = None  # unlabelled test rows (GLUE's -1): predict only, no loss
            tok = tokenize_split(
                ds, tokenizer, columns, targets, data_args.max_seq_length, data_args.pad_to_max_length, name
            )
            tokenized[(role, name)] = (tok, None) if role == "train" else sort_by_length(tok)
    return tokenized


def clean_texts(values, column: str, split: str) -> list[str]:
    """None becomes ''; empty texts are kept (the model sees only special tokens) and counted in a warning. A split
    whose texts are all empty is an error: the column is most likely the wrong one."""
    texts = ["" if v is None else str(v) for v in values]
    empty = sum(1 for t in texts if not t.strip())
    if texts and empty == len(texts):
        raise UserError(
            f"all {empty} rows of the {split} split have an empty '{column}'. Check that it is the text column "
            "(--text_column NAME, --text_pair_column NAME), or fill the texts."
        )
    if empty:
        logger.warning(
            "%d of %d rows in the %s split have an empty '%s'; they are kept as empty input.",
            empty,
            len(texts),
            split,
            column,
        )
    return texts


def tokenize_split(
    ds: datasets.Dataset,
    tokenizer,
    columns: Columns,
    labels: list | None,
    max_seq_length: int,
    pad_to_max_length: bool,
    split: str,
) -> datasets.Dataset:
    """Tokenize one split into input_ids/attention_mask(/token_type_ids), 'labels' and 'length'. A pair is encoded
    as a pair (segment ids, truncation of the longer text), never concatenated."""
    texts = clean_texts(ds[columns.text], columns.text, split)
    pairs = clean_texts(ds[columns.text_pair], columns.text_pair, split) if columns.text_pair else None
    enc = tokenizer(
        texts, pairs, truncation=True, max_length=max_seq_length, padding="max_length" if pad_to_max_length else False
    )
    data = dict(enc)
    data["length"] = [sum(mask) for mask in enc["attention_mask"]]
    if labels is not None:
        data["labels"] = labels
    return datasets.Dataset.from_dict(data)
