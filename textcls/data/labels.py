"""Labels: what the head predicts (problem type), the class names in output-id order (the label map), and the
encoding of each split's raw labels into model targets."""

import json
import logging
import math
from dataclasses import dataclass

import datasets
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from sklearn.utils.class_weight import compute_class_weight

from textcls.data.load import arrow_column
from textcls.errors import UserError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Labels:
    """problem_type: single_label_classification, multi_label_classification or regression. names: the classes in
    output-id order (None for regression). data_names: the class names the data itself carries (a hub ClassLabel),
    whose ids its rows hold."""

    problem_type: str
    names: list[str] | None
    data_names: list[str] | None


def default_label_names(config) -> bool:
    """True when a config carries transformers' placeholder labels (LABEL_0, ...) rather than a real map."""
    return all(name == f"LABEL_{i}" for i, name in sorted(config.id2label.items()))


def resolve_labels(raw, columns, data_args, config, training: bool) -> Labels:
    """The run's label map. A saved fine-tuned model keeps its own label map unless we train.

    A streamed training split (--streaming) cannot be scanned: its head stands in for it, and the classes are those
    of its head and the validation split, unless --label_names (or the data) names them."""
    stream = getattr(raw.get("train"), "head", None)
    if stream is not None:
        raw = {**raw, "train": stream}
    labelled = next(
        (raw[s] for s in ("train", "validation", *raw) if s in raw and columns.label in raw[s].features), None
    )
    has_map = not default_label_names(config)
    if labelled is None:
        # Predicting with a saved model on text alone: its config says what the head predicts.
        if not (has_map or config.problem_type == "regression"):
            raise UserError(
                "no split has labels and the model has no label map of its own, so nothing says what its outputs "
                "mean. Pass a fine-tuned model folder as --model, or train one with --do_train on labelled data."
            )
        feature = None
        problem_type = data_args.problem_type or config.problem_type or "single_label_classification"
    else:
        feature = labelled.features[columns.label]
        problem_type = data_args.problem_type
    if problem_type is None:
        problem_type = (
            config.problem_type
            if (has_map and not training and config.problem_type)
            else infer_problem_type(feature, labelled[columns.label])
        )
    if problem_type == "regression":
        if data_args.label_names:
            raise UserError("--label_names names classes, but regression labels have no classes: drop it.")
        return Labels(problem_type, None, None)
    data_names = class_label_names(feature) if feature is not None else None
    model_names = [config.id2label[i] for i in range(len(config.id2label))] if has_map else None
    if not training and model_names is not None:
        if data_args.label_names is not None and data_args.label_names != model_names:
            raise UserError(
                f"the model's head predicts {model_names}, not --label_names {data_args.label_names}. "
                "Drop --label_names, or fine-tune with --do_train to get a new head."
            )
        return Labels(problem_type, model_names, data_names)
    multi = problem_type == "multi_label_classification"
    source = raw["train"] if "train" in raw and columns.label in raw["train"].features else labelled
    # The training labels decide the classes only when neither --label_names nor the data names them.
    scan = data_args.label_names is None and data_names is None
    counts = label_counts(source, columns.label) if scan else []
    if counts is None:
        seen = list(source[columns.label])
    elif multi:  # one row holding every distinct item (after the count of rows without a list)
        seen = [[value for value, _ in counts[1:]]]
    else:
        seen = [value for value, _ in counts]
    if scan and stream is not None and "validation" in raw and columns.label in raw["validation"].features:
        seen = seen + list(raw["validation"][columns.label])  # read whole anyway: a class the head lacks
    names = build_label_names(seen, data_args.label_names, data_names, multi)
    if scan and stream is not None:
        validation = " and the validation split" if "validation" in raw else ""
        logger.warning(
            "--streaming: the classes %s are those of the first %d training rows%s. A later training row with "
            "another label stops the run; pass --label_names to list every class.",
            names,
            len(stream),
            validation,
        )
    if training and not multi and len(names) < 2:
        raise UserError(
            f"the training data has a single class, {names[0]!r}: a classifier needs at least two. Check "
            "--label_column (and --max_train_samples, which takes the first rows), or list every class with "
            "--label_names."
        )
    if (
        training
        and model_names is not None
        and sorted(model_names) == sorted(names)
        and data_args.label_names is None
        and data_names is None
    ):
        names = model_names  # continue training a fine-tuned model without reshuffling its head
    rows = len(source) if hasattr(source, "__len__") else 0
    if training and not multi and len(names) > 20 and rows and len(names) > rows / 2:
        logger.warning(
            "%d classes for %d training rows (%.1f rows a class): is --label_column %r really the label? An id or "
            "text column read as labels gives a model that learns nothing.",
            len(names),
            rows,
            rows / len(names),
            columns.label,
        )
    return Labels(problem_type, names, data_names)


def class_weights(spec: str | None, labels: Labels, train_rows) -> dict[str, float] | None:
    """--class_weights -> {class name: weight} in output-id order (None: unweighted). 'balanced' counts the encoded
    training targets from Arrow: scikit-learn's compute_class_weight for single-label; for multi-label each label's
    negatives / positives (the pos_weight of BCEWithLogitsLoss, which weighs a label's positive rows)."""

    if spec is None:
        return None
    if labels.problem_type == "regression":
        raise UserError("--class_weights weighs classes, but regression labels have none: drop it.")
    names = labels.names
    if spec.strip() == "balanced":
        if not isinstance(train_rows, datasets.Dataset):
            raise UserError(
                "--class_weights balanced counts the training rows' classes, which a stream (--streaming) cannot "
                "do up front. Give the weights as JSON, e.g. --class_weights '{\"rare\": 10}'."
            )
        targets = arrow_column(train_rows, "labels")
        if labels.problem_type == "multi_label_classification":
            hot = pc.list_flatten(targets).to_numpy(zero_copy_only=False).reshape(len(train_rows), len(names))
            positives = hot.sum(axis=0)
            absent = [n for n, p in zip(names, positives, strict=True) if p == 0]
            weights = (len(train_rows) - positives) / np.maximum(positives, 1)
        else:
            ids = targets.to_numpy()
            absent = [n for i, n in enumerate(names) if not (ids == i).any()]
            if not absent:
                weights = compute_class_weight("balanced", classes=np.arange(len(names)), y=ids)
        if absent:
            raise UserError(
                f"--class_weights balanced: {', '.join(absent[:5])} never occurs in the training data, so it has no "
                "balanced weight. Give the weights as JSON instead."
            )
        return {name: float(w) for name, w in zip(names, weights, strict=True)}
    try:
        given = json.loads(spec)
    except ValueError:
        given = None
    if not isinstance(given, dict):
        raise UserError(f"--class_weights {spec}: pass 'balanced' or a JSON map of class name to weight.")
    unknown = [k for k in given if k not in names]
    if unknown:
        raise UserError(f"--class_weights names {unknown[0]!r}, which is not a class. Classes: {', '.join(names)}.")
    bad = {k: v for k, v in given.items() if not isinstance(v, int | float) or isinstance(v, bool) or v <= 0}
    if bad:
        raise UserError(f"--class_weights: weights must be numbers above 0, not {bad}.")
    return {name: float(given.get(name, 1.0)) for name in names}


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
        _check_stray_fractions(values)
        return "regression"
    if isinstance(feature, datasets.Value):
        return "single_label_classification"
    raise UserError(
        f"labels of type {feature} are not supported: use ints or strings (classes), lists of them "
        "(multi-label) or floats (regression)."
    )


def _check_stray_fractions(values) -> None:
    """Class ids with a typo (one 2.5 among 0, 1 and 2) read as floats, which would silently make the task a
    regression: refuse when at least 90% of the labels are whole numbers of at most 20 distinct values and a few are
    not. Scores (STS-B's 0-5 similarity) have fractions throughout."""
    if values is None:
        return
    numbers = [float(v) for v in values if not is_missing(v)]
    fractions = [(i, v) for i, v in enumerate(numbers, 1) if not v.is_integer()]
    wholes = {v for v in numbers if v.is_integer()}
    if fractions and len(fractions) <= 0.1 * len(numbers) and len(wholes) <= 20:
        row, value = fractions[0]
        raise UserError(
            f"the labels are whole numbers ({', '.join(f'{v:g}' for v in sorted(wholes)[:8])}) except "
            f"{len(fractions)} of {len(numbers)} (the first: {value:g}, labelled row {row}): as classes, those rows "
            "are typos; as scores, the task is regression. Fix those rows, or pass --problem_type regression if the "
            "labels are scores."
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
            f"{', '.join(label_names)}. Fix the data; when training, --label_names can list every class. A saved "
            "model predicts only its own classes: drop or relabel those rows, or leave out the label column to "
            "predict without gold labels."
        )
    if missing and require_labels:
        raise UserError(
            f"{missing} of {len(values)} rows in the {split} split have no label (empty, NaN or -1). "
            "Fill or drop them."
        )
    return encoded


def _plain(kind) -> bool:
    return any(
        test(kind)
        for test in (pa.types.is_integer, pa.types.is_floating, pa.types.is_string, pa.types.is_large_string)
    ) or pa.types.is_boolean(kind)


def label_counts(ds, column: str) -> list[tuple[object, int]] | None:
    """(value, rows) for each distinct label of a split, counted by Arrow: a million labels are never Python
    objects. For list labels (multi-label): (None, rows without a list) first, then each distinct item. None for a
    column whose Arrow type is not plain (JSON of mixed types): those are read value by value."""
    values = arrow_column(ds, column)
    kind = values.type
    if pa.types.is_list(kind) or pa.types.is_large_list(kind):
        if not _plain(kind.value_type):
            return None
        counts = [(None, values.null_count)]
        values = pc.list_flatten(values)
    elif _plain(kind) or pa.types.is_null(kind):
        counts = []
    else:
        return None
    found = pc.value_counts(values)
    return counts + list(zip(found.field("values").to_pylist(), found.field("counts").to_pylist(), strict=True))


class LabelEncoder:
    """Raw labels -> model targets, batch by batch, as encode_labels does for a whole split. check() first reads the
    split's distinct labels (Arrow) and raises encode_labels' errors for the whole split, before anything is
    tokenized; encode() is then applied to each batch of rows."""

    def __init__(self, labels: Labels, split: str, require_labels: bool, every_batch: bool = False):
        """every_batch: raise for missing labels batch by batch too (a stream, whose rows past the head check() saw
        are checked only as they are encoded)."""
        self.labels, self.split, self.require_labels = labels, split, require_labels
        self.every_batch = every_batch

    def __call__(self, values) -> list:
        lab = self.labels
        if not self.every_batch:
            return encode_labels(values, lab.names, lab.problem_type, self.split, lab.data_names, require_labels=False)
        try:
            return encode_labels(values, lab.names, lab.problem_type, self.split, lab.data_names, self.require_labels)
        except UserError as e:
            where = "--streaming: found in a row read during training, past the first rows checked"
            raise UserError(f"{e} ({where}.)") from None

    def check(self, ds, column: str) -> bool:
        """Raise for unknown labels, and for missing ones where labels are required. Returns whether every row has a
        label."""
        values = arrow_column(ds, column)
        if self.labels.problem_type == "regression" and (
            pa.types.is_floating(values.type) or pa.types.is_integer(values.type)
        ):  # numbers: only the missing ones need counting, not a million distinct values
            missing = values.null_count
            if pa.types.is_floating(values.type):
                missing += pc.sum(pc.fill_null(pc.is_nan(values), False)).as_py() or 0
            if not self.require_labels:  # encode_labels: -1 marks an unlabelled row where labels are optional
                missing += pc.sum(pc.fill_null(pc.equal(values, -1), False)).as_py() or 0
            return self._missing(missing, len(ds))
        counts = label_counts(ds, column)
        if counts is None:  # labels Arrow cannot count: the whole column, value by value
            targets = encode_labels(
                list(ds[column]),
                self.labels.names,
                self.labels.problem_type,
                self.split,
                self.labels.data_names,
                self.require_labels,
            )
            return not any(v is None or v == -1 for v in targets)
        if self.labels.problem_type == "multi_label_classification":
            (_, missing), *items = counts
            self([[value for value, _ in items]])  # raises for a label never seen in training
        else:
            targets = self([value for value, _ in counts])  # raises for a label never seen in training
            missing = sum(n for (_, n), t in zip(counts, targets, strict=True) if t is None or t == -1)
        return self._missing(missing, len(ds))

    def _missing(self, missing: int, rows: int) -> bool:
        if missing and self.require_labels:
            raise UserError(
                f"{missing} of {rows} rows in the {self.split} split have no label (empty, NaN or -1). "
                "Fill or drop them."
            )
        return missing == 0


def gold_name(value, label_names, data_names):
    """A raw gold label as the class name predictions are written with; None for an unlabelled row."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if data_names is not None and isinstance(value, int):
        return data_names[value] if value >= 0 else None
    key = str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)
    return None if key == "-1" and key not in label_names else key
