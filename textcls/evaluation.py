"""Evaluation and prediction: every eval split's metrics and per-class report, every test split's predictions in
input order, and for a GLUE task the server's submission files."""

import functools
import logging
import os

import numpy as np

from textcls.errors import UserError
from textcls.io import write_json_atomic, write_jsonl_atomic
from textcls.labels import gold_name
from textcls.metrics import classification_report
from textcls.outputs import split_suffix
from textcls.tokenization import unsort

logger = logging.getLogger(__name__)


def evaluate_and_predict(trainer, data, data_args) -> dict:
    """Evaluate every eval split and predict every test split; the main process writes metrics, the per-class
    report, predictions in input order and, for a GLUE task, the server's submission files. Returns the metrics."""
    out = trainer.args.output_dir
    main_process = trainer.is_world_process_zero()
    labels = data.labels
    results = {}
    for role in ("eval", "test"):
        for name in data.names(role):
            tok, order = data.tokenized[(role, name)]
            suffix = split_suffix(name)
            prefix = ("eval" if role == "eval" else "predict") + (f"_{suffix}" if suffix else "")
            out_pred = trainer.predict(tok, metric_key_prefix=prefix)
            metrics = {**(out_pred.metrics or {}), f"{prefix}_samples": len(tok)}
            results.update(metrics)
            trainer.log_metrics(prefix, metrics)
            if not main_process:
                continue
            write_json_atomic(os.path.join(out, f"{prefix}_results.json"), metrics)
            if out_pred.predictions is None:  # --prediction_loss_only: the loss is all there is
                continue
            predictions = unsort(out_pred.predictions, order)
            gold = unsort(out_pred.label_ids, order) if out_pred.label_ids is not None else None
            if role == "eval" and labels.problem_type != "regression":
                report = classification_report(
                    predictions, gold, labels.names, labels.problem_type, data_args.multi_label_threshold
                )
                write_json_atomic(os.path.join(out, f"{prefix}_classification_report.json"), report)
            if role == "test":
                rows = functools.partial(
                    prediction_rows,
                    data.test_rows[name],
                    data.columns,
                    predictions,
                    labels.problem_type,
                    labels.names,
                    labels.data_names,
                    data_args.multi_label_threshold,
                )
                path = os.path.join(out, f"predictions{'_' + suffix if suffix else ''}.jsonl")
                write_jsonl_atomic(path, rows())
                logger.info("predictions: %s", path)
                if data.task is not None:  # GLUE test splits are small: their rows are read again, as a list
                    folder = os.path.join(out, "glue_submission")
                    write_submission(data.task.name, name, list(rows()), folder, data.split_sizes[name])
    return results


def write_submission(task_name, split, rows, folder, total: int):
    """The GLUE server's file for this test split, and the zip of every file written so far. A model whose labels
    are not the task's, or predictions for part of the split, cannot be submitted: warn, since the run succeeded."""
    from textcls.submission import write_glue_submission, zip_submission

    if len(rows) < total:
        logger.warning(
            "no GLUE submission file: %d of the %d rows of %s were predicted (--max_predict_samples), and the GLUE "
            "server needs every row.",
            len(rows),
            total,
            split,
        )
        return

    try:
        write_glue_submission(task_name, split, rows, folder)
    except UserError as e:
        logger.warning("no GLUE submission file: %s", e)
        return
    logger.info("GLUE server files: %s", zip_submission(folder))


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


PREDICTION_BATCH_ROWS = 10_000  # rows of the test split read at a time to write predictions.jsonl


def prediction_rows(
    ds, columns, predictions: np.ndarray, problem_type: str, label_names, data_names, threshold: float = 0.5
):
    """One JSON object per input row, in input order: id, text(s), the prediction and, when present, the gold label.
    A generator, reading the split PREDICTION_BATCH_ROWS rows at a time: a million test rows are never all Python
    objects at once."""
    has_gold = columns.label is not None and columns.label in ds.features
    text = None if columns.token_ids else columns.text  # token ids given in the data are not written back
    wanted = [c for c in dict.fromkeys((columns.id, text, columns.text_pair, columns.label)) if c in ds.features]
    wanted = wanted or [ds.column_names[0]]  # a batch's row count comes from some column
    if problem_type == "regression":
        values = predictions.reshape(len(ds), -1)[:, 0]
    elif problem_type == "multi_label_classification":
        probs = 1.0 / (1.0 + np.exp(-predictions))
    else:
        probs = _softmax(predictions)
    start = 0
    for batch in ds.select_columns(wanted).iter(batch_size=PREDICTION_BATCH_ROWS):
        n = len(batch[wanted[0]])
        ids = batch[columns.id] if columns.id else range(start, start + n)
        for j in range(n):
            i = start + j
            row = {"id": ids[j]}
            if text is not None:
                row["text"] = batch[text][j]
            if columns.text_pair:
                row["text_pair"] = batch[columns.text_pair][j]
            gold = batch[columns.label][j] if has_gold else None
            if problem_type == "regression":
                row["prediction"] = float(values[i])
                if gold is not None and not (isinstance(gold, float) and np.isnan(gold)):
                    row["gold"] = float(gold)
            else:
                row["probabilities"] = {
                    name: round(float(p), 6) for name, p in zip(label_names, probs[i], strict=True)
                }
                if problem_type == "multi_label_classification":
                    row["labels"] = [name for name, p in zip(label_names, probs[i], strict=True) if p >= threshold]
                    if gold is not None:
                        row["gold"] = [gold_name(v, label_names, data_names) for v in gold]
                else:
                    row["label"] = label_names[int(probs[i].argmax())]
                    gold = gold_name(gold, label_names, data_names) if has_gold else None
                    if gold is not None:
                        row["gold"] = gold
            yield row
        start += n
