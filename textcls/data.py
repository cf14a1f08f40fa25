"""Data: load splits from anywhere, resolve the text/label columns, build the label map, tokenize.

Every function here is pure or touches only the files it is given, so each is unit-tested on its own."""

import itertools
import logging
import math
import os
from dataclasses import dataclass

import datasets
import numpy as np
import pyarrow as pa
import torch

from textcls.errors import UserError, suggest

logger = logging.getLogger(__name__)

# extension -> (datasets builder, builder kwargs)
LOCAL_FORMATS = {
    ".csv": ("csv", {}),
    ".tsv": ("csv", {"delimiter": "\t"}),
    ".json": ("json", {}),
    ".jsonl": ("json", {}),
    ".parquet": ("parquet", {}),
}
TEXT_CANDIDATES = (
    "text",
    "sentence",
    "sentence1",
    "question1",
    "premise",
    "question",
    "content",
    "review",
    "document",
)
# first text column -> its usual partner
PAIR_CANDIDATES = {
    "sentence1": "sentence2",
    "question1": "question2",
    "premise": "hypothesis",
    "question": "sentence",
    "text": "text_pair",
    "text1": "text2",
}
# What to look for when a file does not parse.
PARSE_FIXES = {
    "csv": "Check the line it names: a field holding the delimiter, a quote or a newline must be quoted.",
    "json": "Check the line it names: .jsonl holds one JSON object per line, .json one list of objects.",
    "parquet": "The file may be truncated or not parquet: write it again.",
}
LABEL_CANDIDATES = ("label", "labels", "score", "target", "class", "category")
ID_CANDIDATES = ("idx", "id", "index", "guid")


# ---------------------------------------------------------------------------------------------------- loading


def load_local_file(path: str, cache_dir: str | None = None) -> datasets.Dataset:
    if not os.path.exists(path):
        raise UserError(f"data file {path} does not exist. Check the path (relative paths start from {os.getcwd()}).")
    if os.path.isdir(path):
        raise UserError(f"{path} is a folder; pass a file. For an original GLUE folder use --task_name T --data_dir.")
    ext = os.path.splitext(path)[1].lower()
    if ext not in LOCAL_FORMATS:
        raise UserError(
            f"data file {path} has unsupported extension '{ext or '(none)'}'. "
            f"Use one of {', '.join(LOCAL_FORMATS)} (rename the file if its content is one of those)."
        )
    if os.path.getsize(path) == 0:
        raise UserError(f"data file {path} is empty. Point at a file with a header and rows.")
    builder, kwargs = LOCAL_FORMATS[ext]
    try:
        ds = datasets.load_dataset(builder, data_files=path, split="train", cache_dir=cache_dir, **kwargs)
    except Exception as e:  # datasets wraps pandas/pyarrow parse errors in several types
        if "corresponds to no data" in str(e):  # a header and no rows
            raise UserError(f"data file {path} has no rows. Point at a file with data.") from None
        cause = e.__cause__ or e
        if isinstance(cause, UnicodeDecodeError):
            raise UserError(
                f"data file {path} is not UTF-8 text (byte {cause.object[cause.start]:#x} at offset {cause.start}). "
                f"Re-save it as UTF-8, e.g. iconv -f latin1 -t utf-8 {path} > fixed{ext}."
            ) from None
        raise UserError(
            f"could not read {path} as {ext[1:]}: {type(cause).__name__}: {str(cause).strip()}. {PARSE_FIXES[builder]}"
        ) from None
    if len(ds) == 0:
        raise UserError(f"data file {path} has no rows. Point at a file with data.")
    if builder == "csv" and len(ds.column_names) == 1:
        # Spreadsheets in many locales export ';'-separated "CSV": it reads as one column named 'text;label'.
        name = ds.column_names[0]
        other = next((sep for sep in ";\t|," if sep in name and sep != kwargs.get("delimiter", ",")), None)
        if other is not None:
            raise UserError(
                f"data file {path} reads as one column, {name!r}: its fields look separated by {other!r}. Save it "
                "comma-separated as .csv, or tab-separated as .tsv."
            )
    return ds


def load_raw_datasets(data_args, model_args, task=None) -> datasets.DatasetDict:
    """Splits named as on the hub: train, validation (or the task's eval splits), test (or the task's test splits)."""
    files = {"train": data_args.train_file, "validation": data_args.validation_file, "test": data_args.test_file}
    if data_args.data_dir:
        if task is None:
            raise UserError(
                "--data_dir reads an original GLUE task folder and needs --task_name (e.g. --task_name rte)."
            )
        from textcls.glue import load_glue_dir

        return load_glue_dir(task.name, data_args.data_dir)
    if any(files.values()):
        return datasets.DatasetDict(
            {split: load_local_file(path, model_args.cache_dir) for split, path in files.items() if path}
        )
    name, config = data_args.dataset_name, data_args.dataset_config_name
    if name is None and task is not None:
        name, config = "nyu-mll/glue", task.name
    if name is None:
        raise UserError(
            "no data given. Pass --train_file/--validation_file/--test_file, --dataset_name, "
            "or --task_name (with --data_dir for an original GLUE folder)."
        )
    try:
        return datasets.load_dataset(
            name, config, cache_dir=model_args.cache_dir, trust_remote_code=model_args.trust_remote_code or None
        )
    except Exception as e:
        raise UserError(
            f"could not load dataset '{name}'{f' ({config})' if config else ''} from the hub: "
            f"{type(e).__name__}: {e}. "
            "Offline? Use local files (--train_file ...) or an original GLUE folder (--task_name T --data_dir DIR)."
        ) from None


def select_first(ds: datasets.Dataset, n: int | None) -> datasets.Dataset:
    """Take the first n rows before any tokenization, so capped runs do not pay for the whole split."""
    return ds if n is None or n >= len(ds) else ds.select(range(n))


# ---------------------------------------------------------------------------------------------------- columns


@dataclass(frozen=True)
class Columns:
    text: str
    text_pair: str | None
    label: str | None
    id: str | None


def _is_string_feature(feature) -> bool:
    return isinstance(feature, datasets.Value) and feature.dtype in ("string", "large_string")


def resolve_columns(
    features: datasets.Features,
    text_column=None,
    text_pair_column=None,
    label_column=None,
    id_column=None,
    task=None,
    need_label: bool = True,
) -> Columns:
    """Explicit names win (and must exist); then the GLUE task's names; then common names; then the only string
    column. When the choice is ambiguous, the error lists the columns so the user can pick."""
    names = list(features)
    listing = ", ".join(f"'{n}'" for n in names)

    def check(flag, value):
        if value is not None and value not in features:
            raise UserError(
                f"--{flag} '{value}' is not a column of the data. Columns: {listing}.{suggest(value, names)}"
            )
        return value

    check("text_column", text_column)
    check("text_pair_column", text_pair_column)
    check("label_column", label_column)
    check("id_column", id_column)

    if label_column is None:
        if task is not None and "label" in features:
            label_column = "label"
        else:
            label_column = next((c for c in LABEL_CANDIDATES if c in features), None)
    if label_column is None and need_label:
        raise UserError(f"cannot tell which column holds the labels. Columns: {listing}. Pass --label_column NAME.")

    if text_column is None and task is not None and task.text_column in features:
        text_column, text_pair_column = task.text_column, text_pair_column or task.text_pair_column
    if text_column is None:
        text_column = next((c for c in TEXT_CANDIDATES if c in features), None)
    if text_column is None:
        strings = [n for n in names if _is_string_feature(features[n]) and n != label_column]
        if len(strings) == 1:
            text_column = strings[0]
        else:
            raise UserError(
                f"cannot tell which column holds the text. Columns: {listing}. Pass --text_column NAME "
                "(and --text_pair_column NAME for sentence pairs)."
            )
    if text_pair_column is None and text_column in PAIR_CANDIDATES and PAIR_CANDIDATES[text_column] in features:
        text_pair_column = PAIR_CANDIDATES[text_column]
    if text_pair_column == text_column:
        raise UserError(f"--text_pair_column and --text_column are both '{text_column}'; pick two different columns.")
    if id_column is None:
        id_column = next((c for c in ID_CANDIDATES if c in features and c not in (text_column, label_column)), None)
    return Columns(text_column, text_pair_column, label_column, id_column)


# ---------------------------------------------------------------------------------------------------- labels


def is_missing(value) -> bool:
    return (
        value is None
        or (isinstance(value, float) and math.isnan(value))
        or (isinstance(value, str) and not value.strip())
    )


def infer_problem_type(feature, values=None) -> str:
    """ClassLabel/int/str/bool: single-label; a list per row: multi-label; floats: regression. JSON whose rows mix
    types is typed Json: the values decide."""
    if isinstance(feature, datasets.Json) and values is not None:
        kinds = {type(v).__name__ for v in values if not is_missing(v)}
        if "list" in kinds:
            return "multi_label_classification"  # encode_labels names the first row that is not a list
        if len(kinds) > 1:
            raise UserError(
                f"the labels mix types ({', '.join(sorted(kinds))}). Make them all class names, all lists "
                "(multi-label) or all numbers (regression), or pass --problem_type single_label_classification to "
                "treat every value as a class name."
            )
    if isinstance(feature, datasets.ClassLabel):
        return "single_label_classification"
    if isinstance(feature, datasets.Sequence | datasets.List | list | datasets.LargeList):
        return "multi_label_classification"
    if isinstance(feature, datasets.Value) and feature.dtype.startswith("float"):
        return "regression"
    if isinstance(feature, datasets.Value):
        return "single_label_classification"
    raise UserError(
        f"labels of type {feature} are not supported: use ints or strings (classes), lists of them "
        "(multi-label) or floats (regression)."
    )


def class_label_names(feature) -> list[str] | None:
    """Names carried by the data itself (hub ClassLabel), which fix the label order."""
    inner = getattr(feature, "feature", feature)
    return list(inner.names) if isinstance(inner, datasets.ClassLabel) else None


def _label_key(value) -> str:
    # Labels are matched by their string form so that 1, "1" and a config's "1" are the same class.
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value)


def _sort_key(key: str):
    try:
        return (0, float(key), key)
    except ValueError:
        return (1, 0.0, key)


def build_label_names(
    train_values, label_names: list[str] | None = None, data_names: list[str] | None = None, multi_label: bool = False
) -> list[str]:
    """Deterministic label order: --label_names, else names carried by the data (ClassLabel), else the labels seen
    in training, numbers in numeric order and strings in lexicographic order."""
    if label_names is not None:
        if len(set(label_names)) != len(label_names):
            raise UserError(f"--label_names has duplicates: {label_names}.")
        return list(label_names)
    if data_names is not None:
        return list(data_names)
    seen = set()
    for value in train_values:
        for v in value if multi_label and isinstance(value, list) else [value]:
            if not is_missing(v):
                seen.add(_label_key(v))
    if not seen:
        raise UserError("the training data has no labels. Check --label_column.")
    return sorted(seen, key=_sort_key)


def encode_labels(
    values,
    label_names: list[str],
    problem_type: str,
    split: str,
    data_names: list[str] | None = None,
    require_labels: bool = True,
) -> list:
    """Raw labels -> model targets: class ids, multi-hot float vectors, or floats. Unlabelled rows (None, NaN, empty,
    GLUE's -1) become -1 / None and are an error where labels are required. An unknown label is always an error."""
    label2id = {name: i for i, name in enumerate(label_names or [])}

    def key(v):
        if data_names is not None and isinstance(v, int) and not isinstance(v, bool):
            return data_names[v] if v >= 0 else None
        return None if is_missing(v) else _label_key(v)

    encoded, missing, unknown = [], 0, set()
    if problem_type == "regression":
        for v in values:
            if is_missing(v) or (data_names is None and v == -1 and not require_labels):
                encoded.append(None)
                missing += 1
                continue
            try:
                encoded.append(float(v))
            except (TypeError, ValueError):
                raise UserError(
                    f"regression label {v!r} in the {split} split is not a number. Fix the data, or pass "
                    "--problem_type single_label_classification if the labels are classes."
                ) from None
    elif problem_type == "multi_label_classification":
        for number, v in enumerate(values, 1):
            if v is None:
                encoded.append(None)
                missing += 1
                continue
            if not isinstance(v, list):
                raise UserError(
                    f"multi-label rows must each hold a list of labels; row {number} of the {split} split has {v!r}. "
                    'Make every label a list (e.g. ["a", "b"], or [] for none).'
                )
            row = [0.0] * len(label_names)
            for item in v:
                k = key(item)
                if k not in label2id:
                    unknown.add(repr(item))
                else:
                    row[label2id[k]] = 1.0
            encoded.append(row)
    else:
        for v in values:
            k = key(v)
            if k is None or (k == "-1" and k not in label2id):
                encoded.append(-1)
                missing += 1
            elif k not in label2id:
                unknown.add(k)
            else:
                encoded.append(label2id[k])
    if unknown:
        shown = ", ".join(sorted(unknown)[:10])
        raise UserError(
            f"the {split} split has labels never seen in training: {shown}. Known labels: "
            f"{', '.join(label_names)}. Fix the data or list every class with --label_names."
        )
    if missing and require_labels:
        raise UserError(
            f"{missing} of {len(values)} rows in the {split} split have no label (empty, NaN or -1). "
            "Fill or drop them."
        )
    return encoded


# ---------------------------------------------------------------------------------------------------- tokenizing


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


class ArrowRows(torch.utils.data.Dataset):
    """A datasets.Dataset whose batch fetch returns the rows as one Arrow table (one `take`) instead of a list of
    Python dicts. FastPaddingCollator pads the table's columns without turning them into Python lists. Single rows
    (dataset[i]) come back as datasets gives them. (datasets' own batch fetch gathers row by row, in Python: 40 ms
    for 4,096 rows against 5 ms for one take.)"""

    def __init__(self, dataset: datasets.Dataset):
        self.dataset = dataset
        self.table = dataset.data.table
        indices = getattr(dataset, "_indices", None)
        if indices is not None:  # a select/sort/shuffle view: its rows, in its order, taken once
            self.table = self.table.take(indices.column(0))

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index):
        return self.dataset[index]

    def __getitems__(self, indices) -> pa.Table:
        return self.table.take(pa.array(indices, type=pa.int64()))

    def __getattr__(self, name):  # column_names, features...: whoever looks at the dataset sees the dataset
        if name in ("dataset", "table"):
            raise AttributeError(name)
        return getattr(self.dataset, name)


class FastPaddingCollator:
    """DataCollatorWithPadding's output (same keys, dtypes, values, padding side), built with one numpy array per
    column instead of tokenizer.pad's row-by-row Python: 4 ms instead of 64 ms for 1,024 SST-2 rows given as
    dicts; 2.4 ms for fetch and padding together when ArrowRows gives them as one Arrow table (112 ms stock). The
    stock collator runs in the training loop's own process (unless dataloader workers are set), and on a GPU at
    large batches it takes longer than the step it feeds. Rows it does not know how to pad (tensors, text, unknown
    list columns) go to the stock collator."""

    LABELS = ("labels", "label", "label_ids")  # DataCollatorWithPadding passes 'label' and 'label_ids' on as 'labels'

    def __init__(self, tokenizer, pad_to_multiple_of: int | None = None, first_position: int | None = None):
        """first_position: lay the rows end to end instead (textcls.packing), numbering each row's positions from
        this id. None: pad."""
        from transformers import DataCollatorWithPadding

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
        for key, values in other.items():
            batch["labels" if key in self.LABELS else key] = values
        return batch

    def _pack(self, lengths, tokens: dict, other: dict) -> dict:
        """The rows' tokens end to end, shape (1, tokens), with what textcls.packing needs to lay them back out as
        (rows, longest row): each row's start (cu_seq_lens_q), the longest row, each token's cell in that layout.
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
    model takes padding-free batches, textcls.packing) the rows are laid end to end; else each batch is padded to
    its longest row, to a multiple of 8 under mixed precision (tensor-core friendly shapes on GPUs)."""
    from transformers import default_data_collator

    if pad_to_max_length:
        return default_data_collator
    return FastPaddingCollator(
        tokenizer, pad_to_multiple_of=8 if mixed_precision else None, first_position=first_position
    )
