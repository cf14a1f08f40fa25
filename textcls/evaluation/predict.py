"""Evaluation and prediction: every eval split's metrics and per-class report, every test split's predictions in
input order, and for a GLUE task the server's submission files."""

import functools
import logging
import os

import numpy as np

from textcls.data.labels import gold_name
from textcls.data.load import split_suffix
from textcls.data.tokenization import unsort
from textcls.errors import UserError
from textcls.evaluation.calibration import fit_temperature, scale
from textcls.evaluation.metrics import (
    PROBABILITY_METRICS,
    classification_report,
    compute_metrics,
    probabilities,
    probability_metrics,
    tune_thresholds,
)
from textcls.evaluation.report import EvaluatedSplit, training_curves, write_report
from textcls.evaluation.submission import write_glue_submission, zip_submission
from textcls.io import write_json_atomic, write_jsonl_atomic

logger = logging.getLogger(__name__)


def evaluate_and_predict(trainer, data, data_args) -> dict:
    """Evaluate every eval split and predict every test split; the main process writes metrics, the per-class
    report, predictions in input order and, for a GLUE task, the server's submission files. Returns the metrics."""
    out = trainer.args.output_dir
    main_process = trainer.is_world_process_zero()
    labels = data.labels
    results = {}
    tuned = False
    threshold = data.thresholds.value  # tuned on the first evaluation split with --multi_label_threshold tune
    temperature, fitted = data.calibration.temperature, False  # fitted on the first one with --calibrate temperature
    for role in ("eval", "test"):
        for name in data.names(role):
            tok, order = data.tokenized[(role, name)]
            suffix = split_suffix(name)
            prefix = ("eval" if role == "eval" else "predict") + (f"_{suffix}" if suffix else "")
            out_pred = trainer.predict(tok, metric_key_prefix=prefix)
            # a chunked split (--long_document_strategy chunk) counts texts, not windows
            samples = len(out_pred.predictions) if order is None and out_pred.predictions is not None else len(tok)
            metrics = {**(out_pred.metrics or {}), f"{prefix}_samples": samples}
            predictions = gold = None
            if out_pred.predictions is not None:  # (--prediction_loss_only: the loss is all there is)
                # sorted by length to predict, or (chunked) already one row per text in the split's order
                restore = (lambda values: values) if order is None else functools.partial(unsort, order=order)
                predictions = restore(out_pred.predictions)
                gold = restore(out_pred.label_ids) if out_pred.label_ids is not None else None
            raw, fitted_here = predictions, False
            if role == "eval" and data.calibration.fit and gold is not None and not fitted:
                temperature, calibrated = fit_and_use_temperature(trainer, labels, predictions, gold, prefix)
                metrics |= calibrated
                fitted = fitted_here = True
            if predictions is not None and labels.problem_type != "regression":
                predictions = scale(predictions, temperature)  # every probability below is the calibrated one
            tuning = role == "eval" and data.thresholds.tune and gold is not None and not tuned
            if tuning:  # on the first evaluation split; the test splits after it are predicted with them
                threshold, tuned_metrics = use_tuned_thresholds(trainer, labels, predictions, gold, threshold, prefix)
                metrics |= tuned_metrics
                tuned = True
            results.update(metrics)
            trainer.log_metrics(prefix, metrics)
            if not main_process:
                continue
            write_json_atomic(os.path.join(out, f"{prefix}_results.json"), metrics)
            if predictions is None:
                continue
            report = {}
            if role == "eval" and labels.problem_type != "regression":
                report = classification_report(predictions, gold, labels.names, labels.problem_type, threshold)
                scores = probability_metrics(predictions, gold, labels.problem_type)
                for j, values in scores.per_class.items():
                    report["per_class"][labels.names[j]].update(values)
                if scores.undefined:
                    report["undefined"] = scores.undefined
                if labels.problem_type == "multi_label_classification":
                    report["thresholds"] = dict(
                        zip(labels.names, np.broadcast_to(threshold, len(labels.names)).tolist(), strict=True)
                    )
                    report["thresholds_tuned_on_this_split"] = tuning
                write_json_atomic(os.path.join(out, f"{prefix}_classification_report.json"), report)
            if role == "eval":
                uncalibrated = raw if fitted_here else None  # its diagram shows before and after
                evaluated = EvaluatedSplit(name, prefix, predictions, gold, report, metrics, threshold, uncalibrated)
                write_eval_report(trainer, data, evaluated, data_args.plots)
            if role == "test":
                rows = functools.partial(
                    prediction_rows,
                    data.test_rows[name],
                    data.columns,
                    predictions,
                    labels.problem_type,
                    labels.names,
                    labels.data_names,
                    threshold,
                )
                path = os.path.join(out, f"predictions{'_' + suffix if suffix else ''}.jsonl")
                write_jsonl_atomic(path, rows())
                logger.info("predictions: %s", path)
                if data.task is not None:  # GLUE test splits are small: their rows are read again, as a list
                    folder = os.path.join(out, "glue_submission")
                    write_submission(data.task.name, name, list(rows()), folder, data.split_sizes[name])
    if main_process and data_args.plots and trainer.args.do_train:
        training_curves(out)
    return results


def write_eval_report(trainer, data, evaluated: EvaluatedSplit, plots: bool) -> None:
    """<prefix>_report.md and the split's pictures (textcls.evaluation.report), after its metrics are written: a
    failure here is a warning, never a failed run."""
    try:
        rows = data.eval_rows.get(evaluated.name)
        path = write_report(trainer.args.output_dir, evaluated, data.labels, data.columns, rows, plots)
        logger.info("evaluation report: %s", path)
    except Exception as e:
        logger.warning(
            "could not write the evaluation report of %s (%s: %s); its metrics are written.",
            evaluated.name,
            type(e).__name__,
            e,
        )


def fit_and_use_temperature(trainer, labels, predictions, gold, prefix: str) -> tuple:
    """--calibrate temperature, on this evaluation split's logits: the temperature that minimises their log loss
    (evaluation.calibration) becomes the run's, for its report, for the splits predicted after it, and in the model's
    config (calibration_temperature; the main process rewrites config.json where training saved the model), so that
    the folder predicts with it. Returns it and this split's metrics that it changes: <prefix>_temperature,
    <prefix>_calibrated_ece and <prefix>_calibrated_log_loss (beside <prefix>_ece and <prefix>_log_loss, before)."""
    temperature = fit_temperature(predictions, gold, labels.problem_type)
    after = probability_metrics(scale(predictions, temperature), gold, labels.problem_type).metrics
    shown = ", ".join(f"{t:.3f}" for t in np.atleast_1d(temperature))
    logger.info(
        "calibration on %s: temperature %s; ECE %.4f, log loss %.4f after",
        prefix,
        shown,
        after.get("ece", float("nan")),
        after.get("log_loss", float("nan")),
    )
    if hasattr(trainer.compute_metrics, "temperature"):
        trainer.compute_metrics.temperature = temperature
    trainer.model.config.calibration_temperature = temperature  # a merged model written later carries it too
    config = os.path.join(trainer.args.output_dir, "config.json")
    if trainer.is_world_process_zero() and trainer.args.do_train and os.path.isfile(config):
        trainer.model.config.save_pretrained(trainer.args.output_dir)
    metrics = {f"{prefix}_temperature": temperature}
    metrics |= {f"{prefix}_calibrated_{k}": after[k] for k in ("ece", "log_loss") if k in after}
    return temperature, metrics


def use_tuned_thresholds(trainer, labels, predictions, gold, start, prefix: str) -> tuple[list, dict]:
    """--multi_label_threshold tune, on this evaluation split's predictions: each label's F1-best threshold
    (metrics.tune_thresholds) becomes the run's, for its report, for the test splits' metrics and predictions, and in
    the model's config (multi_label_thresholds; the main process rewrites config.json where training saved the
    model), so that the folder predicts with them. start: the thresholds tuning starts from. Returns the thresholds and
    this split's metrics at them, under <prefix>_tuned_: optimistic, since they were chosen on these very rows."""

    thresholds, untuned = tune_thresholds(predictions, gold, start)
    if hasattr(trainer.compute_metrics, "threshold"):
        trainer.compute_metrics.threshold = thresholds.tolist()
    chosen = dict(zip(labels.names, thresholds.tolist(), strict=True))
    logger.info("multi-label thresholds tuned on %s: %s", prefix, ", ".join(f"{k} {v:.3f}" for k, v in chosen.items()))
    if untuned:
        logger.warning(
            "%d label(s) have no positive row in the %s split, so their threshold was not tuned: %s",
            len(untuned),
            prefix,
            ", ".join(labels.names[j] for j in untuned[:10]),
        )
    trainer.model.config.multi_label_thresholds = chosen  # a merged model written later carries them too
    config = os.path.join(trainer.args.output_dir, "config.json")
    if trainer.is_world_process_zero() and trainer.args.do_train and os.path.isfile(config):
        trainer.model.config.save_pretrained(trainer.args.output_dir)
    metrics = compute_metrics(predictions, gold, labels.problem_type, None, labels.names, thresholds)
    return thresholds.tolist(), {f"{prefix}_tuned_{k}": v for k, v in metrics.items() if k not in PROBABILITY_METRICS}


def write_submission(task_name, split, rows, folder, total: int):
    """The GLUE server's file for this test split, and the zip of every file written so far. A model whose labels
    are not the task's, or predictions for part of the split, cannot be submitted: warn, since the run succeeded."""

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


PREDICTION_BATCH_ROWS = 10_000  # rows of the test split read at a time to write predictions.jsonl


def prediction_rows(ds, columns, predictions: np.ndarray, problem_type: str, label_names, data_names, threshold=0.5):
    """One JSON object per input row, in input order: id, text(s), the prediction and, when present, the gold label.
    A generator, reading the split PREDICTION_BATCH_ROWS rows at a time: a million test rows are never all Python
    objects at once."""
    has_gold = columns.label is not None and columns.label in ds.features
    text = None if columns.token_ids else columns.text  # token ids given in the data are not written back
    wanted = [c for c in dict.fromkeys((columns.id, text, columns.text_pair, columns.label)) if c in ds.features]
    wanted = wanted or [ds.column_names[0]]  # a batch's row count comes from some column
    if problem_type == "regression":
        values = predictions.reshape(len(ds), -1)[:, 0]
    else:  # as the metrics compute them (float64): a label at its threshold is predicted in both
        probs = probabilities(predictions, problem_type)
        cuts = np.broadcast_to(np.asarray(threshold, dtype=float), (len(label_names),))  # one, or one per label
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
                    row["labels"] = [name for name, p, t in zip(label_names, probs[i], cuts, strict=True) if p >= t]
                    if gold is not None:
                        row["gold"] = [gold_name(v, label_names, data_names) for v in gold]
                else:
                    row["label"] = label_names[int(probs[i].argmax())]
                    gold = gold_name(gold, label_names, data_names) if has_gold else None
                    if gold is not None:
                        row["gold"] = gold
            yield row
        start += n
