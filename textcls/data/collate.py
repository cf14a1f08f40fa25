"""Batches: rows fetched from Arrow as one table and padded (or laid end to end) column-wise, in numpy."""

import itertools

import datasets
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch
from transformers import DataCollatorWithPadding, default_data_collator


class ArrowRows(torch.utils.data.Dataset):
    """A datasets.Dataset whose batch fetch returns the rows as one Arrow table instead of a list of Python dicts.
    FastPaddingCollator pads the table's columns without turning them into Python lists. Single rows (dataset[i])
    come back as datasets gives them. (datasets' own batch fetch gathers row by row, in Python: 40 ms for 4,096 rows
    against 5 ms for one take.)

    The rows are taken record batch by record batch: `Table.take` on a table of many chunks (a split read from a file
    is one chunk per 1,000 rows) first concatenates each whole column, so every training batch copied the whole split
    out of its memory-mapped file (measured: +197 MB of memory for one 32-row take from a 1M-row column of 100-token
    rows; 4M rows peaked 2.1 GB above 100k)."""

    def __init__(self, dataset: datasets.Dataset):
        self.dataset = dataset
        table = dataset.data.table  # memory-mapped when the split is on disk
        self.batches = table.to_batches()  # zero-copy; split where any column's chunks end
        self.schema = table.schema
        self.starts = np.cumsum([0] + [b.num_rows for b in self.batches])
        indices = getattr(dataset, "_indices", None)
        # A select/sort/shuffle view: each batch's positions are looked up in its indices.
        self.indices = None if indices is None else indices.column(0).combine_chunks()

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index):
        return self.dataset[index]

    def __getitems__(self, indices) -> pa.Table:
        positions = pa.array(indices, type=pa.int64())
        if self.indices is not None:
            positions = self.indices.take(positions)
        positions = positions.to_numpy(zero_copy_only=False).astype(np.int64)  # a view's indices are uint64
        chunk = np.searchsorted(self.starts, positions, side="right") - 1
        order = np.argsort(chunk, kind="stable")  # rows grouped by the record batch they are in
        by_chunk, wanted = chunk[order], positions[order]
        pieces = []
        for group in np.split(np.arange(len(order)), np.flatnonzero(np.diff(by_chunk)) + 1):
            if len(group):
                c = by_chunk[group[0]]
                pieces.append(self.batches[c].take(pa.array(wanted[group] - self.starts[c])))
        rows = pa.Table.from_batches(pieces, schema=self.schema).combine_chunks()  # one batch's rows: small
        inverse = np.empty_like(order)
        inverse[order] = np.arange(len(order))
        return rows.take(pa.array(inverse))  # back in the order asked for

    def __getattr__(self, name):  # column_names, features...: whoever looks at the dataset sees the dataset
        if name in ("dataset", "batches", "schema", "starts", "indices", "encode"):
            raise AttributeError(name)
        return getattr(self.dataset, name)


class TokenizingRows(ArrowRows):
    """ArrowRows of a training split kept as text (--tokenize per_batch): each batch's texts are tokenized as the
    batch is fetched, by `encode` (textcls.data.tokenization.per_batch_encoder: the row encoder up-front tokenizing
    uses), into the columns FastPaddingCollator pads, the labels (encoded before training) carried over."""

    def __init__(self, dataset: datasets.Dataset, encode):
        super().__init__(dataset)
        self.encode = encode

    def __getitem__(self, index):
        return self.__getitems__([index]).to_pylist()[0]

    def __getitems__(self, indices) -> pa.Table:
        return self.encode(super().__getitems__(indices))

    def lengths(self, indices) -> list[int]:
        """The rows' token counts (what up-front tokenizing stores as 'length'), for the length-grouped sampler."""
        return pc.list_value_length(self.__getitems__(indices).column("input_ids")).to_pylist()


class FastPaddingCollator:
    """DataCollatorWithPadding's output (same keys, dtypes, values, padding side), built with one numpy array per
    column instead of tokenizer.pad's row-by-row Python: 4 ms instead of 64 ms for 1,024 SST-2 rows given as
    dicts; 2.4 ms for fetch and padding together when ArrowRows gives them as one Arrow table (112 ms stock). The
    stock collator runs in the training loop's own process (unless dataloader workers are set), and on a GPU at
    large batches it takes longer than the step it feeds. Rows it does not know how to pad (tensors, text, unknown
    list columns) go to the stock collator."""

    LABELS = ("labels", "label", "label_ids")  # DataCollatorWithPadding passes 'label' and 'label_ids' on as 'labels'

    def __init__(self, tokenizer, pad_to_multiple_of: int | None = None, first_position: int | None = None):
        """first_position: lay the rows end to end instead (textcls.model.packing), numbering each row's positions from
        this id. None: pad."""

        self.stock = DataCollatorWithPadding(tokenizer, pad_to_multiple_of=pad_to_multiple_of)
        self.multiple = pad_to_multiple_of
        self.first_position = first_position
        self.left = tokenizer.padding_side == "left"
        self.pad_values = {
            "input_ids": tokenizer.pad_token_id,
            "attention_mask": 0,
            "token_type_ids": tokenizer.pad_token_type_id,
            "special_tokens_mask": 1,
        }

    def __call__(self, features):
        table = isinstance(features, pa.Table)
        columns = None
        if self.pad_values["input_ids"] is not None:  # without a pad token, the stock collator's error names the fix
            columns = self._table_columns(features) if table else self._row_columns(features)
        if columns is None:
            return self.stock(features.to_pylist() if table else features)
        if self.first_position is not None and columns[0].min() > 0:  # a row without tokens would attend to nothing
            return self._pack(*columns)
        return self._pad(*columns)

    def _row_columns(self, rows: list[dict]):
        first = rows[0]
        padded = [k for k in first if k in self.pad_values]
        rest = [k for k in first if k not in self.pad_values]
        if (
            "input_ids" not in padded
            or not all(isinstance(first[k], list) for k in padded)
            or any(k not in self.LABELS and not isinstance(first[k], (int, float)) for k in rest)
        ):
            return None
        lengths = np.fromiter((len(r["input_ids"]) for r in rows), dtype=np.int64, count=len(rows))
        total = int(lengths.sum())
        tokens = {k: np.fromiter(itertools.chain.from_iterable(r[k] for r in rows), np.int64, total) for k in padded}
        other = {k: [r[k] for r in rows] for k in rest if first[k] is not None}
        return lengths, tokens, {k: torch.tensor(v) for k, v in other.items()}

    def _table_columns(self, table: pa.Table):
        names = table.column_names
        padded = [k for k in names if k in self.pad_values]
        rest = [k for k in names if k not in self.pad_values]
        numeric = lambda t: pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t)  # noqa: E731
        if "input_ids" not in padded or not all(pa.types.is_list(table.schema.field(k).type) for k in padded):
            return None
        other = {}
        for k in rest:
            kind = table.schema.field(k).type
            column = table.column(k).combine_chunks()
            if numeric(kind):
                values = column.to_numpy(zero_copy_only=False)
            elif k in self.LABELS and pa.types.is_list(kind) and numeric(kind.value_type):  # multi-label rows
                values = column.flatten().to_numpy(zero_copy_only=False).reshape(len(table), -1)
            else:
                return None
            # the dtypes torch.tensor gives Python values: int64, float32, bool
            other[k] = torch.from_numpy(values.astype(np.float32 if values.dtype.kind == "f" else values.dtype))
        lists = {k: table.column(k).combine_chunks() for k in padded}
        lengths = lists["input_ids"].value_lengths().to_numpy().astype(np.int64)
        tokens = {k: column.flatten().to_numpy(zero_copy_only=False).astype(np.int64) for k, column in lists.items()}
        return lengths, tokens, other

    def _pad(self, lengths, tokens: dict, other: dict) -> dict:
        width = int(lengths.max())
        if self.multiple:
            width = -(-width // self.multiple) * self.multiple
        positions = np.arange(width)
        # the cells that hold tokens, row-major: the rows' tokens laid end to end fill them in order
        filled = positions >= width - lengths[:, None] if self.left else positions < lengths[:, None]
        batch = {}
        for key, flat in tokens.items():
            array = np.full((len(lengths), width), self.pad_values[key], dtype=np.int64)
            array[filled] = flat
            batch[key] = torch.from_numpy(array)
        if "attention_mask" not in batch:  # not stored (textcls/data/tokenization.py): every row's tokens are real
            batch["attention_mask"] = torch.from_numpy(filled.astype(np.int64))
        for key, values in other.items():
            batch["labels" if key in self.LABELS else key] = values
        return batch

    def _pack(self, lengths, tokens: dict, other: dict) -> dict:
        """The rows' tokens end to end, shape (1, tokens), with what textcls.model.packing needs to lay them back out
        as (rows, longest row): each row's start (cu_seq_lens_q), the longest row, each token's cell in that layout.
        Per-row values come first: Trainer takes a batch's size from its first tensor."""
        total, longest = int(lengths.sum()), int(lengths.max())
        ends = np.cumsum(lengths)
        within = np.arange(total) - np.repeat(ends - lengths, lengths)  # each token's position in its row
        rows = np.repeat(np.arange(len(lengths)), lengths)
        batch = {"labels" if key in self.LABELS else key: values for key, values in other.items()}
        for key, flat in tokens.items():
            if key != "attention_mask":  # every packed position is a token
                batch[key] = torch.from_numpy(flat)[None]
        batch["position_ids"] = torch.from_numpy(within + self.first_position)[None]
        batch["cu_seq_lens_q"] = torch.from_numpy(np.concatenate([[0], ends]).astype(np.int32))
        batch["max_length_q"] = longest
        batch["packed_index"] = torch.from_numpy(rows * longest + within)
        return batch


def make_collator(tokenizer, pad_to_max_length: bool, mixed_precision: bool, first_position: int | None = None):
    """Rows already padded to max_seq_length are stacked as they are. Otherwise, with `first_position` set (the
    model takes padding-free batches, textcls.model.packing) the rows are laid end to end; else each batch is padded to
    its longest row, to a multiple of 8 under mixed precision (tensor-core friendly shapes on GPUs)."""

    if pad_to_max_length:
        return default_data_collator
    return FastPaddingCollator(
        tokenizer, pad_to_multiple_of=8 if mixed_precision else None, first_position=first_position
    )
