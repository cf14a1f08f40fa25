"""Which training rows a run trains on: all of them less those --exclude_rows names, and under --cross_validate K
the rows of one fold (its held-out rows become a test split, `cv_heldout`, whose predictions are the out-of-fold
ones). Folds come from scikit-learn: StratifiedKFold on the label for single-label data, KFold for regression and
multi-label data (iterative stratification is not in scikit-learn; the log says so). Both shuffle with --seed, so
every fold of one command, and the same command run again, sees the same rows."""

import json
import logging
import os
from collections import Counter
from dataclasses import dataclass

import datasets
import numpy as np
from sklearn.model_selection import KFold, StratifiedKFold

from textcls.data.load import Stream, arrow_column
from textcls.errors import UserError
from textcls.io import write_json_atomic

logger = logging.getLogger(__name__)

HELDOUT = "cv_heldout"  # the test split of a fold's run: the training rows its model did not see
FOLD_FILE = "cv_fold.json"  # in each fold's folder: the fold, and the training rows it held out (input positions)


@dataclass(frozen=True)
class RowSelection:
    """What the training split became: the rows dropped by --exclude_rows, and the fold (if any) with the input
    positions of the rows it holds out."""

    excluded: int = 0
    exclude_file: str | None = None
    fold: int | None = None
    folds: int | None = None
    heldout: tuple = ()
    ids_are_positions: bool = True  # the data has no id column: a row's id is its 0-based position in the file


def read_row_ids(path: str) -> list[str]:
    """The row ids a --exclude_rows file names: a JSON list, one id per line, or JSON lines with an "id" (e.g. the
    label_issues.jsonl a --find_label_issues run wrote, with the rows to keep deleted). As strings: an id column's
    values and row positions are compared as text."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        raise UserError(f"--exclude_rows {path}: cannot read it ({e.strerror}). Pass a file of row ids.") from None
    stripped = text.strip()
    if not stripped:
        return []
    if stripped.startswith("["):
        try:
            values = json.loads(stripped)
        except ValueError as e:
            raise UserError(f"--exclude_rows {path}: not a JSON list ({e}).") from None
        return [str(v) for v in values]
    ids = []
    for number, line in enumerate(stripped.splitlines(), 1):
        line = line.strip()
        if not line:
            continue
        if line.startswith("{"):
            try:
                row = json.loads(line)
            except ValueError as e:
                raise UserError(f"--exclude_rows {path}, line {number}: not a JSON object ({e}).") from None
            if "id" not in row:
                raise UserError(f'--exclude_rows {path}, line {number}: a JSON line needs an "id".')
            ids.append(str(row["id"]))
        else:
            ids.append(line)
    return ids


def row_ids(ds: datasets.Dataset, id_column: str | None) -> list[str]:
    """Each row's id as text: the id column's value, else its 0-based position."""
    if id_column is None:
        return [str(i) for i in range(len(ds))]
    return [str(v) for v in arrow_column(ds, id_column).to_pylist()]


def fold_positions(labels: list, problem_type: str, k: int, seed: int) -> list[np.ndarray]:
    """The held-out positions of each of k folds (sorted): disjoint, and together every position once."""
    n = len(labels)
    if problem_type == "single_label_classification":
        splitter = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
        splits = splitter.split(np.zeros(n), [str(v) for v in labels])
    else:
        splits = KFold(n_splits=k, shuffle=True, random_state=seed).split(np.zeros(n))
    return [np.sort(heldout) for _, heldout in splits]


def check_folds(labels: list, problem_type: str, k: int) -> None:
    """K-fold needs k >= 2, k rows at least, and (stratified) k rows of every class: one error before training."""
    if k < 2:
        raise UserError(f"--cross_validate {k}: cross-validation needs at least 2 folds. Pass --cross_validate 5.")
    if len(labels) < k:
        raise UserError(f"--cross_validate {k}: the training split has {len(labels)} rows, fewer than the folds.")
    if problem_type == "single_label_classification":
        counts = Counter(str(v) for v in labels)
        label, smallest = min(counts.items(), key=lambda item: item[1])
        if smallest < k:
            raise UserError(
                f"--cross_validate {k}: class '{label}' has {smallest} training rows, fewer than the folds, so some "
                f"fold would hold none of it out. Pass --cross_validate {max(2, smallest)} or fewer, or label more "
                "rows of that class."
            )


def select_training_rows(raw, splits, columns, labels, data_args, seed: int) -> tuple[dict, RowSelection]:
    """The splits with the training rows this run trains on: less the --exclude_rows ids, and, for a fold of
    --cross_validate, its training part; the fold's held-out rows are added as the test split `cv_heldout`. Every
    check runs here, before any training."""
    excluded_ids = read_row_ids(data_args.exclude_rows) if data_args.exclude_rows else None
    fold = data_args.cv_fold
    if excluded_ids is None and fold is None:
        return splits, RowSelection()
    if "train" not in raw:
        raise UserError("--exclude_rows and --cross_validate choose training rows: pass --train_file.")
    if isinstance(raw["train"], Stream):
        raise UserError(
            "--exclude_rows and --cross_validate read the training split whole: drop --streaming (they are for data "
            "that fits on one machine)."
        )
    train = splits["train"].get("train") if splits.get("train") else None
    if train is None:  # a finished fold evaluated again (nothing trains): its rows are the same ones
        cap = data_args.max_train_samples
        train = raw["train"] if cap is None or cap >= len(raw["train"]) else raw["train"].select(range(cap))
    keep = np.arange(len(train))
    excluded = 0
    if excluded_ids is not None:
        keep, excluded = _drop_ids(train, excluded_ids, columns.id, data_args.exclude_rows)
    if fold is None:
        logger.info("--exclude_rows %s: %d training rows dropped", data_args.exclude_rows, excluded)
        splits = {**splits, "train": {"train": train.select(keep)}}
        return splits, RowSelection(excluded, data_args.exclude_rows)
    if data_args.find_label_issues and labels.problem_type == "regression":
        raise UserError("--find_label_issues ranks class labels; a regression has none. Drop the flag.")
    gold = arrow_column(train, columns.label).to_pylist()
    gold = [gold[i] for i in keep]
    k = data_args.cross_validate
    check_folds(gold, labels.problem_type, k)
    if labels.problem_type != "single_label_classification":
        logger.info("--cross_validate: plain K-fold for %s labels (not stratified)", labels.problem_type)
    heldout = keep[fold_positions(gold, labels.problem_type, k, seed)[fold]]
    trained = np.setdiff1d(keep, heldout)
    logger.info(
        "cross-validation fold %d of %d: training on %d rows, predicting the %d held-out rows", fold, k, len(trained),
        len(heldout),
    )  # fmt: skip
    splits = dict(splits)
    if splits.get("train"):
        splits["train"] = {"train": train.select(trained)}
    splits["test"] = {**splits.get("test", {}), HELDOUT: train.select(heldout)}
    selection = RowSelection(
        excluded, data_args.exclude_rows, fold, k, tuple(int(i) for i in heldout), columns.id is None
    )
    return splits, selection


def _drop_ids(train, ids: list[str], id_column: str | None, path: str) -> tuple[np.ndarray, int]:
    known = row_ids(train, id_column)
    where = {v: i for i, v in enumerate(known)}
    unknown = [i for i in dict.fromkeys(ids) if i not in where]
    if unknown:
        what = (
            f"values of the id column '{id_column}'"
            if id_column
            else "0-based row positions (the data has no id column)"
        )
        raise UserError(
            f"--exclude_rows {path} names {len(unknown)} rows the training split does not have (e.g. "
            f"{', '.join(unknown[:5])}); ids are {what}. Fix the file, or pass the training file it was made for."
        )
    drop = np.asarray(sorted({where[i] for i in ids}), dtype=np.int64)
    keep = np.setdiff1d(np.arange(len(train)), drop)
    return keep, len(drop)


def write_selection(trainer, selection: RowSelection) -> dict:
    """cv_fold.json in a fold's folder (which fold, and the input positions of its held-out rows, in the order of its
    predictions_cv_heldout.jsonl); the rows --exclude_rows dropped, as metrics for all_results and the model card."""
    if selection is None:
        return {}
    results = {}
    if selection.exclude_file:
        results = {"train_excluded_rows": selection.excluded, "train_excluded_rows_file": selection.exclude_file}
    if selection.fold is None or not trainer.is_world_process_zero():
        return results
    out = trainer.args.output_dir
    write_json_atomic(
        os.path.join(out, FOLD_FILE),
        {
            "fold": selection.fold,
            "folds": selection.folds,
            "heldout_rows": list(selection.heldout),
            "ids_are_positions": selection.ids_are_positions,
        },
    )
    return results
