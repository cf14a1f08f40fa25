"""Data: load splits from anywhere, choose the rows each role uses, resolve the text/label columns.

Every function here is pure or touches only the files it is given, so each is unit-tested on its own."""

import csv
import glob
import json
import logging
import os
from dataclasses import dataclass, field

import datasets
import pyarrow.parquet as pq

from textcls.data.glue import load_glue_dir
from textcls.errors import DiskFull, UserError, suggest
from textcls.io import free_bytes, is_disk_full, size_text

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


def local_files(path: str) -> list[str]:
    """A file, or the shards a glob pattern names ('data/train-*.parquet', as Spark, Ray Data or datasets write
    them), sorted; every one of them must exist and share one extension."""
    if glob.has_magic(path):
        files = sorted(glob.glob(path))
        if not files:
            raise UserError(f"{path} matches no file. Check the pattern (relative paths start from {os.getcwd()}).")
        extensions = {os.path.splitext(f)[1].lower() for f in files}
        if len(extensions) > 1:
            raise UserError(f"{path} matches files of several kinds ({', '.join(sorted(extensions))}): narrow it.")
        return files
    return [path]


def load_local_file(path: str, cache_dir: str | None = None) -> datasets.Dataset:
    files = local_files(path)
    for file in files:
        _check_file(file)
    ext = os.path.splitext(files[0])[1].lower()
    builder, kwargs = LOCAL_FORMATS[ext]
    data_files = files[0] if len(files) == 1 else files
    try:
        ds = datasets.load_dataset(builder, data_files=data_files, split="train", cache_dir=cache_dir, **kwargs)
    except Exception as e:  # datasets wraps pandas/pyarrow parse errors in several types
        raise _read_error(path, e) from None
    if len(ds) == 0:
        raise UserError(f"data file {path} has no rows. Point at a file with data.")
    _check_delimiter(path, ds.column_names)
    return ds


def _read_error(path: str, e: Exception) -> UserError:
    ext = os.path.splitext(local_files(path)[0])[1].lower()
    builder = LOCAL_FORMATS[ext][0]
    if "corresponds to no data" in str(e):  # a header and no rows
        return UserError(f"data file {path} has no rows. Point at a file with data.")
    cause = e.__cause__ or e
    if is_disk_full(e) or is_disk_full(cause):
        cache = getattr(cause, "filename", None) or str(datasets.config.HF_DATASETS_CACHE)
        return DiskFull(
            f"the disk is full while reading {path} into the datasets cache ({cache}): "
            f"{size_text(free_bytes(cache))} free. Free some space there, or point HF_DATASETS_CACHE (or --cache_dir) "
            "at a disk with room."
        )
    if isinstance(cause, UnicodeDecodeError):
        where = first_non_utf8(local_files(path)[0])  # the decoder's offset counts from the chunk it was reading
        at = f"byte {where[2]:#x} at offset {where[0]}, line {where[1]}" if where else "somewhere"
        return UserError(
            f"data file {path} is not UTF-8 text ({at}). Re-save it as UTF-8, e.g. iconv -f latin1 -t utf-8 {path} "
            f"> fixed{ext}."
        )
    if builder == "json" and (line := first_bad_json_line(local_files(path)[0])):
        return UserError(
            f"could not read {path}: line {line[0]} is not a JSON object ({line[1]}). .jsonl holds one JSON object "
            "per line, .json one list of objects."
        )
    return UserError(
        f"could not read {path} as {ext[1:]}: {type(cause).__name__}: {str(cause).strip()}. {PARSE_FIXES[builder]}"
    )


def first_non_utf8(path: str) -> tuple[int, int, int] | None:
    """(byte offset, line number, the byte) of the file's first byte that is not UTF-8, or None. Read line by line, so
    a character is never cut between two reads; only called once reading has failed."""
    offset = 0
    with open(path, "rb") as f:
        for number, raw in enumerate(f, 1):
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError as e:
                return offset + e.start, number, raw[e.start]
            offset += len(raw)
    return None


def first_bad_json_line(path: str) -> tuple[int, str] | None:
    """(line number from 1, what is wrong) of a .jsonl file's first line that is not a JSON object, or None (pyarrow
    names the row counting from 0). Only called once reading has failed."""
    if not path.lower().endswith(".jsonl"):
        return None
    with open(path, encoding="utf-8-sig", errors="replace") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError as e:
                return number, e.msg
            if not isinstance(row, dict):
                return number, f"a {type(row).__name__}, not an object"
    return None


def _check_delimiter(path: str, names: list[str]) -> None:
    ext = os.path.splitext(local_files(path)[0])[1].lower()
    builder, kwargs = LOCAL_FORMATS[ext]
    if builder == "csv" and len(names) == 1:
        # Spreadsheets in many locales export ';'-separated "CSV": it reads as one column named 'text;label'.
        name = names[0]
        other = next((sep for sep in ";\t|," if sep in name and sep != kwargs.get("delimiter", ",")), None)
        if other is not None:
            raise UserError(
                f"data file {path} reads as one column, {name!r}: its fields look separated by {other!r}. Save it "
                "comma-separated as .csv, or tab-separated as .tsv."
            )


# Rows of a stream read up front: its columns and their types, and a first look at its labels and texts.
STREAM_HEAD_ROWS = 1000


@dataclass
class Stream:
    """A training split read as a stream (--streaming). `rows` (a datasets.IterableDataset) is read as training goes;
    `head`, its first STREAM_HEAD_ROWS rows read up front, stands in for it wherever a split is inspected (columns,
    types, labels, empty texts): a stream cannot be scanned without reading all of it. Rows past the head are checked
    as they are tokenized (textcls/data/tokenization.py): a bad one stops the run with the same error."""

    rows: datasets.IterableDataset
    head: datasets.Dataset
    source: str
    cache_files = ()  # nothing on disk to share between processes

    @property
    def features(self) -> datasets.Features:
        return self.head.features

    @property
    def column_names(self) -> list[str]:
        return self.head.column_names


def stream_local_file(path: str) -> Stream:
    files = local_files(path)
    for file in files:
        _check_file(file)
    builder, kwargs = LOCAL_FORMATS[os.path.splitext(files[0])[1].lower()]
    try:
        rows = datasets.load_dataset(builder, data_files=files, split="train", streaming=True, **kwargs)
    except Exception as e:
        raise _read_error(path, e) from None
    stream = Stream(rows, _stream_head(rows, path), path)
    _check_delimiter(path, stream.column_names)
    return stream


def _stream_head(rows: datasets.IterableDataset, source: str, local: bool = True) -> datasets.Dataset:
    try:
        head = list(rows.take(STREAM_HEAD_ROWS))
    except Exception as e:  # the first rows do not parse
        if not local:
            raise
        raise _read_error(source, e) from None
    if not head:
        raise UserError(f"data file {source} has no rows. Point at a file with data.")
    return datasets.Dataset.from_list(head, features=rows.features)


def _check_file(path: str) -> None:
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


def header_columns(path: str) -> list[str] | None:
    """A local file's column names, read from its first line (csv, tsv, jsonl) or its schema (parquet) without
    reading the rows; None where that cannot be told cheaply (a .json list, an unreadable file: load_local_file
    then says what is wrong)."""

    ext = os.path.splitext(path)[1].lower()
    try:
        if ext == ".parquet":
            return pq.read_schema(path).names
        with open(path, encoding="utf-8-sig", newline="") as f:
            first = f.readline()
        if ext in (".csv", ".tsv"):
            return next(csv.reader([first], delimiter="\t" if ext == ".tsv" else ","), None)
        if ext in (".json", ".jsonl"):
            row = json.loads(first)
            return list(row) if isinstance(row, dict) else None
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    return None


def check_header(path: str, data_args, needs_label: bool) -> None:
    """The columns named by flags exist in the file (the label column: in a file to train or evaluate on)."""
    names = header_columns(path)
    if not names:
        return
    _check_delimiter(path, names)  # before reading: a comma inside a tab-separated row reads as a ragged CSV row
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:  # pandas would rename the second 'text' to 'text.1' and the run would read the first, unasked
        raise UserError(
            f"data file {path} has several columns named {duplicates[0]!r}. Give each column its own name in the "
            "header."
        )
    listing = ", ".join(f"'{n}'" for n in names)
    for flag in ("text_column", "text_pair_column", "label_column", "id_column"):
        value = getattr(data_args, flag)
        if value is not None and value not in names and (needs_label or flag != "label_column"):
            raise UserError(
                f"--{flag} '{value}' is not a column of {path}. Columns: {listing}.{suggest(value, names)}"
            )


def load_raw_datasets(data_args, model_args, task=None) -> datasets.DatasetDict:
    """Splits named as on the hub: train, validation (or the task's eval splits), test (or the task's test splits)."""
    files = {"train": data_args.train_file, "validation": data_args.validation_file, "test": data_args.test_file}
    if data_args.data_dir:
        if task is None:
            raise UserError(
                "--data_dir reads an original GLUE task folder and needs --task_name (e.g. --task_name rte)."
            )

        return load_glue_dir(task.name, data_args.data_dir)
    if any(files.values()):
        for split, path in files.items():  # a misnamed column is seen before a large file is read whole
            if path:
                check_header(local_files(path)[0], data_args, needs_label=split != "test")
        streamed = "train" if data_args.streaming else None
        return datasets.DatasetDict(
            {
                split: stream_local_file(path) if split == streamed else load_local_file(path, model_args.cache_dir)
                for split, path in files.items()
                if path
            }
        )
    name, config = data_args.dataset_name, data_args.dataset_config_name
    if name is None and task is not None:
        name, config = "nyu-mll/glue", task.name
    if name is None:
        raise UserError(
            "no data given. Pass --train_file/--validation_file/--test_file, --dataset_name, "
            "or --task_name (with --data_dir for an original GLUE folder)."
        )
    trust = model_args.trust_remote_code or None
    try:
        if data_args.streaming:  # the training split streamed, the others (small) read whole
            found = datasets.get_dataset_split_names(name, config)
            raw = {
                split: datasets.load_dataset(name, config, split=split, cache_dir=model_args.cache_dir)
                for split in found
                if split != "train"
            }
            train = datasets.load_dataset(name, config, split="train", streaming=True)
            return datasets.DatasetDict({"train": Stream(train, _stream_head(train, name, local=False), name), **raw})
        return datasets.load_dataset(name, config, cache_dir=model_args.cache_dir, trust_remote_code=trust)
    except UserError:
        raise
    except Exception as e:
        raise UserError(
            f"could not load dataset '{name}'{f' ({config})' if config else ''} from the hub: "
            f"{type(e).__name__}: {e}. "
            "Offline? Use local files (--train_file ...) or an original GLUE folder (--task_name T --data_dir DIR)."
        ) from None


def select_first(ds: datasets.Dataset, n: int | None) -> datasets.Dataset:
    """Take the first n rows before any tokenization, so capped runs do not pay for the whole split."""
    if isinstance(ds, Stream):
        return ds if n is None else Stream(ds.rows.take(n), select_first(ds.head, n), ds.source)
    return ds if n is None or n >= len(ds) else ds.select(range(n))


def arrow_column(ds: datasets.Dataset, name: str):
    """One column of a split as Arrow (memory-mapped where the split is), in the split's row order."""
    if ds._indices is None:
        return ds.data.column(name)
    return ds.with_format("arrow")[name]  # a select/sort view: its rows taken, in its order


# ---------------------------------------------------------------------------------------------------- splits


def split_names(raw, task, training_args) -> dict[str, list[str]]:
    """Which splits of the loaded data train, evaluate and predict; an asked-for split that is absent is an error."""
    eval_names = list(task.eval_splits) if task else ["validation"]
    test_names = list(task.test_splits) if task else ["test"]
    available = ", ".join(raw) or "none"
    wanted = {
        "train": ["train"] if training_args.do_train else [],
        "eval": eval_names if training_args.do_eval else [],
        "test": test_names if training_args.do_predict else [],
    }
    fixes = {"train": "--train_file", "eval": "--validation_file", "test": "--test_file"}
    for role, names in wanted.items():
        for name in names:
            if name not in raw:
                flag = f"--do_{'predict' if role == 'test' else role}"
                if role == "eval" and training_args.eval_strategy != "no":
                    flag = f"--eval_strategy {getattr(training_args.eval_strategy, 'value', '')}"  # it sets do_eval
                raise UserError(f"{flag} needs a '{name}' split, but the data has: {available}. Pass {fixes[role]}.")
    return wanted


def select_splits(raw, task, training_args, data_args) -> dict[str, dict[str, datasets.Dataset]]:
    """role (train, eval, test) -> split name -> its rows, the first --max_*_samples of them."""
    caps = {
        "train": data_args.max_train_samples,
        "eval": data_args.max_eval_samples,
        "test": data_args.max_predict_samples,
    }
    roles = split_names(raw, task, training_args)
    return {role: {name: select_first(raw[name], caps[role]) for name in names} for role, names in roles.items()}


# ---------------------------------------------------------------------------------------------------- columns


@dataclass(frozen=True)
class Columns:
    text: str
    text_pair: str | None
    label: str | None
    id: str | None
    # The text column holds token ids already (input_ids, as an engine that tokenized the data wrote them): they are
    # used as they are, not tokenized again.
    token_ids: bool = False


TOKEN_IDS = "input_ids"


def _is_token_ids(feature) -> bool:
    inner = getattr(feature, "feature", None)
    kinds = ("int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64")
    return isinstance(feature, datasets.Sequence | datasets.List | datasets.LargeList) and (
        isinstance(inner, datasets.Value) and inner.dtype in kinds
    )


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
    if need_label or label_column in features:  # a test split's gold labels are optional: predict without them
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
    if text_column in (None, TOKEN_IDS) and TOKEN_IDS in features and _is_token_ids(features[TOKEN_IDS]):
        # Tokenized already (e.g. by Ray Data or Spark, written as parquet): its ids are used as they are.
        if text_pair_column is not None:
            raise UserError(
                f"--text_pair_column {text_pair_column}: the data holds token ids ({TOKEN_IDS}), whose pairs are "
                "encoded already. Drop the flag, or pass --text_column NAME to tokenize text columns instead."
            )
        if id_column is None:
            id_column = next((c for c in ID_CANDIDATES if c in features and c != label_column), None)
        return Columns(TOKEN_IDS, None, label_column, id_column, token_ids=True)
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


def resolve_split_columns(splits, data_args, task, need_label: bool) -> "Columns":
    """The columns, read off the first split used and then checked in every split."""
    first = next(ds for names in splits.values() for ds in names.values())
    columns = resolve_columns(
        first.features,
        data_args.text_column,
        data_args.text_pair_column,
        data_args.label_column,
        data_args.id_column,
        task,
        need_label=need_label,
    )
    check_split_columns(splits, columns)
    return columns


def check_split_columns(splits, columns) -> None:
    """Every split has the text columns; every split that is trained or evaluated on has the labels."""
    for role, names in splits.items():
        for name, ds in names.items():
            missing = [c for c in (columns.text, columns.text_pair) if c and c not in ds.features]
            if missing and columns.token_ids:
                raise UserError(
                    f"the {name} split has no column '{TOKEN_IDS}', but the first split holds token ids: give every "
                    "split as token ids made by the same tokenizer, or every split as text (--text_column NAME)."
                )
            if missing:
                raise UserError(f"the {name} split has no column {missing[0]!r}. Columns: {', '.join(ds.features)}.")
            for column in (c for c in (columns.text, columns.text_pair) if c and not columns.token_ids):
                if isinstance(ds.features[column], datasets.Sequence | datasets.List | datasets.LargeList):
                    raise UserError(
                        f"column {column!r} of the {name} split holds a list in each row, not one text. Join each "
                        "row's pieces into one string before training (e.g. ' '.join), or pass --text_column NAME "
                        "of a text column."
                    )
            if role != "test" and columns.label not in ds.features:
                raise UserError(
                    f"--do_{role} needs labels, but the {name} split has no column {columns.label!r}. Columns: "
                    f"{', '.join(ds.features)}. Add the labels to it, or pass --label_column NAME."
                )


def split_suffix(split: str) -> str:
    """'validation' -> '', 'validation_matched' -> 'matched', 'test_mismatched' -> 'mismatched'."""
    for prefix in ("validation", "test"):
        if split == prefix:
            return ""
        if split.startswith(prefix + "_"):
            return split[len(prefix) + 1 :]
    return split


# ---------------------------------------------------------------------------------------------------- the run's data


@dataclass
class RunData:
    """What the data steps resolved, carried to the model, Trainer and evaluation steps. Of the rows themselves it
    keeps the tokenized ones, the test rows (for the predictions file) and the evaluation rows (the report quotes
    a few), not the training rows: a split read from a file is memory-mapped, and every page of its text that
    tokenizing read would otherwise stay in the process's memory while it trains (measured at 1M rows of ~100
    tokens: 0.4 GB)."""

    task: object  # textcls.data.glue.GlueTask, or None
    test_rows: dict  # test split name -> its rows (ids, texts, gold labels), for predictions.jsonl
    split_sizes: dict  # test split name -> its rows before --max_predict_samples (a GLUE submission needs them all)
    columns: Columns
    labels: object  # textcls.data.labels.Labels
    tokenized: dict = field(default_factory=dict)  # (role, split name) -> (tokenized rows, order or None)
    eval_rows: dict = field(default_factory=dict)  # eval split name -> its rows, for the report's mistakes (a few)
    long_documents: object = None  # config.checks.LongDocuments: the window and how a long text fits it
    thresholds: object = None  # config.checks.Thresholds: the multi-label decision threshold
    calibration: object = None  # config.checks.Calibration: the temperature probabilities are taken at
    rows: object = None  # data.folds.RowSelection: the training rows --exclude_rows dropped, and the fold
    # --tokenize per_batch: the training rows are text, and this makes a fetched batch of them model inputs
    # (textcls.data.tokenization.per_batch_encoder); None: they are tokenized already
    train_encoder: object = None

    @property
    def task_name(self) -> str | None:
        return self.task.name if self.task else None

    def names(self, role: str) -> list[str]:
        return [name for r, name in self.tokenized if r == role]

    def train_rows(self):
        return self.tokenized[("train", "train")][0] if ("train", "train") in self.tokenized else None
