"""The nine GLUE tasks, and a reader for their original TSV files (the layout download_glue_data.py writes).

load_glue_dir gives the same splits, columns and feature types as the hub dataset nyu-mll/glue, so code written
against the hub works unchanged on a local copy of the data.
"""

import csv
import math
import os
from collections.abc import Callable
from dataclasses import dataclass

import datasets

from textcls.errors import UserError


@dataclass(frozen=True)
class GlueTask:
    name: str
    dir_name: str
    text_column: str
    text_pair_column: str | None
    label_names: tuple[str, ...] | None
    eval_splits: tuple[str, ...]
    test_splits: tuple[str, ...]
    submission_files: tuple[str, ...]

    @property
    def is_regression(self) -> bool:
        return self.label_names is None


_NLI_2 = ("entailment", "not_entailment")

# fmt: off
GLUE_TASKS: dict[str, GlueTask] = {
    task.name: task
    for task in (
        GlueTask("cola", "CoLA", "sentence", None, ("unacceptable", "acceptable"), ("validation",), ("test",),
                 ("CoLA.tsv",)),
        GlueTask("sst2", "SST-2", "sentence", None, ("negative", "positive"), ("validation",), ("test",),
                 ("SST-2.tsv",)),
        GlueTask("mrpc", "MRPC", "sentence1", "sentence2", ("not_equivalent", "equivalent"), ("validation",),
                 ("test",), ("MRPC.tsv",)),
        GlueTask("stsb", "STS-B", "sentence1", "sentence2", None, ("validation",), ("test",), ("STS-B.tsv",)),
        GlueTask("qqp", "QQP", "question1", "question2", ("not_duplicate", "duplicate"), ("validation",), ("test",),
                 ("QQP.tsv",)),
        GlueTask("mnli", "MNLI", "premise", "hypothesis", ("entailment", "neutral", "contradiction"),
                 ("validation_matched", "validation_mismatched"), ("test_matched", "test_mismatched"),
                 ("MNLI-m.tsv", "MNLI-mm.tsv")),
        GlueTask("qnli", "QNLI", "question", "sentence", _NLI_2, ("validation",), ("test",), ("QNLI.tsv",)),
        GlueTask("rte", "RTE", "sentence1", "sentence2", _NLI_2, ("validation",), ("test",), ("RTE.tsv",)),
        GlueTask("wnli", "WNLI", "sentence1", "sentence2", ("not_entailment", "entailment"), ("validation",),
                 ("test",), ("WNLI.tsv",)),
    )
}
# fmt: on


def get_glue_task(name: str) -> GlueTask:
    """Case-insensitive; also accepts 'sst-2', 'sts-b' spellings. Unknown name -> UserError naming the valid ones."""
    key = name.strip().lower().replace("-", "")
    if key not in GLUE_TASKS:
        raise UserError(f"unknown GLUE task {name!r}; valid tasks: {', '.join(GLUE_TASKS)}")
    return GLUE_TASKS[key]


@dataclass(frozen=True)
class _FileLayout:
    """Where a task's fields sit in its original files."""

    text_columns: tuple[str, ...]  # header names in the file of the task's text_column (and text_pair_column)
    label_column: str
    # CoLA train/dev are the only files without a header line; these names stand in for it.
    implied_header: tuple[str, ...] | None = None


_PAIR = ("sentence1", "sentence2")

_LAYOUTS: dict[str, _FileLayout] = {
    "cola": _FileLayout(("sentence",), "label", ("source", "label", "original_marker", "sentence")),
    "sst2": _FileLayout(("sentence",), "label"),
    "mrpc": _FileLayout(("#1 String", "#2 String"), "Quality"),
    "stsb": _FileLayout(_PAIR, "score"),
    "qqp": _FileLayout(("question1", "question2"), "is_duplicate"),
    # label1 (MNLI train/dev) is one annotator's vote; gold_label, the last column, is the consensus the hub uses.
    "mnli": _FileLayout(_PAIR, "gold_label"),
    "qnli": _FileLayout(("question", "sentence"), "label"),
    "rte": _FileLayout(_PAIR, "label"),
    "wnli": _FileLayout(_PAIR, "label"),
}

# Only "index" is a row index: QQP's "id" is a question-pair id in train/dev, and the hub numbers those rows.
_INDEX_COLUMN = "index"

_STSB_RANGE = (0.0, 5.0)

# Fields are never quoted in these files; the limit only has to exceed the longest sentence.
_FIELD_SIZE_LIMIT = 2**31 - 1


def _split_files(task: GlueTask) -> dict[str, str]:
    """Hub split name -> original file name: the hub's "validation" is the files' "dev"."""
    splits = ("train", *task.eval_splits, *task.test_splits)
    return {split: split.replace("validation", "dev") + ".tsv" for split in splits}


def _text_columns(task: GlueTask) -> tuple[str, ...]:
    return (task.text_column,) if task.text_pair_column is None else (task.text_column, task.text_pair_column)


def _features(task: GlueTask) -> datasets.Features:
    features = {column: datasets.Value("string") for column in _text_columns(task)}
    if task.label_names is None:
        features["label"] = datasets.Value("float32")
    else:
        features["label"] = datasets.ClassLabel(names=list(task.label_names))
    # int32, not int64: the hub's feature type, so the two sources stay interchangeable (e.g. concatenable).
    features["idx"] = datasets.Value("int32")
    return datasets.Features(features)


def _label_parser(task: GlueTask, path: str) -> Callable[[str, int], float]:
    """Return a function (label field, line number) -> label value, raising UserError on an unknown label."""
    if task.label_names is None:
        low, high = _STSB_RANGE

        def parse_score(text: str, line: int) -> float:
            try:
                score = float(text)
            except ValueError:
                score = math.nan  # fails the range check below, like "nan" itself
            if not low <= score <= high:
                raise UserError(f"{path}, line {line}: score {text!r} is not a number from {low:g} to {high:g}")
            return score

        return parse_score

    # Files spell a label either by name (RTE, QNLI, MNLI) or by its ClassLabel id (CoLA, SST-2, MRPC, QQP, WNLI).
    ids = {name: i for i, name in enumerate(task.label_names)} | {str(i): i for i in range(len(task.label_names))}

    def parse_label(text: str, line: int) -> int:
        if text not in ids:
            raise UserError(f"{path}, line {line}: label {text!r} is not one of {', '.join(ids)}")
        return ids[text]

    return parse_label


def _read_split(task: GlueTask, path: str, is_test: bool) -> datasets.Dataset:
    layout = _LAYOUTS[task.name]
    columns: dict[str, list] = {column: [] for column in (*_text_columns(task), "label", "idx")}
    parse_label = _label_parser(task, path)
    missing_label = -1.0 if task.is_regression else -1
    csv.field_size_limit(_FIELD_SIZE_LIMIT)
    # utf-8-sig drops the byte-order mark MRPC train/dev start with, which would otherwise stick to "Quality".
    with open(path, encoding="utf-8-sig", newline="") as file:
        reader = csv.reader(file, delimiter="\t", quoting=csv.QUOTE_NONE)
        try:
            header = list(layout.implied_header) if layout.implied_header and not is_test else next(reader, None)
            if header is None:
                raise UserError(f"{path} is empty; expected a header line and rows in the original GLUE layout")
            required = list(layout.text_columns) + ([] if is_test else [layout.label_column])
            missing = [name for name in required if name not in header]
            if missing:
                raise UserError(
                    f"{path}: header has no column {', '.join(map(repr, missing))} (found: {', '.join(header)}); "
                    f"is this the original GLUE {task.dir_name} file?"
                )
            text_positions = dict(zip(_text_columns(task), map(header.index, layout.text_columns), strict=True))
            label_position = header.index(layout.label_column) if layout.label_column in header else None
            index_position = header.index(_INDEX_COLUMN) if _INDEX_COLUMN in header else None
            for row in reader:
                if not row:  # a blank line (csv gives []) holds no example; the hub's DictReader skips it too
                    continue
                line = reader.line_num
                if len(row) != len(header):
                    raise UserError(
                        f"{path}, line {line}: expected {len(header)} tab-separated fields "
                        f"({', '.join(header)}), found {len(row)}"
                    )
                for column, position in text_positions.items():
                    columns[column].append(row[position])
                columns["label"].append(
                    missing_label if label_position is None else parse_label(row[label_position], line)
                )
                if index_position is None:
                    columns["idx"].append(len(columns["idx"]))
                else:
                    try:
                        columns["idx"].append(int(row[index_position]))
                    except ValueError:
                        raise UserError(
                            f"{path}, line {line}: {_INDEX_COLUMN} {row[index_position]!r} is not an integer"
                        ) from None
        except UnicodeDecodeError as error:
            raise UserError(f"{path} is not UTF-8 text: {error}") from None
    return datasets.Dataset.from_dict(columns, features=_features(task))


def load_glue_dir(task_name: str, data_dir: str) -> datasets.DatasetDict:
    """Read one task's original GLUE TSV files into the splits, columns and feature types of hub nyu-mll/glue.

    data_dir is the task's folder (e.g. glue_data/RTE); the GLUE root holding it (glue_data) is accepted too.
    Splits whose file is absent are left out; test splits carry label -1 (-1.0 for STS-B), as on the hub.
    """
    task = get_glue_task(task_name)
    files = _split_files(task)
    expected = ", ".join(files.values())
    fix = f"point --data_dir at the folder holding {expected} of the task (e.g. glue_data/{task.dir_name})"
    if not os.path.isdir(data_dir):
        raise UserError(f"GLUE {task.dir_name} data folder {data_dir} does not exist; {fix}")
    present = {split: name for split, name in files.items() if os.path.isfile(os.path.join(data_dir, name))}
    nested = os.path.join(data_dir, task.dir_name)
    if not present and os.path.isdir(nested):
        return load_glue_dir(task.name, nested)
    if not present:
        raise UserError(f"{data_dir} holds none of the GLUE {task.dir_name} files ({expected}); {fix}")
    return datasets.DatasetDict(
        {
            split: _read_split(task, os.path.join(data_dir, name), is_test=split in task.test_splits)
            for split, name in present.items()
        }
    )
