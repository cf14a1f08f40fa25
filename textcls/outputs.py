"""What a run leaves in output_dir beside the model: prediction rows and the model card."""

import os

import numpy as np

from textcls.io import write_text_atomic


def split_suffix(split: str) -> str:
    """'validation' -> '', 'validation_matched' -> 'matched', 'test_mismatched' -> 'mismatched'."""
    for prefix in ("validation", "test"):
        if split == prefix:
            return ""
        if split.startswith(prefix + "_"):
            return split[len(prefix) + 1 :]
    return split


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _gold_name(value, label_names, data_names):
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    if data_names is not None and isinstance(value, int):
        return data_names[value] if value >= 0 else None
    key = str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)
    return None if key == "-1" and key not in label_names else key


def prediction_rows(
    ds, columns, predictions: np.ndarray, problem_type: str, label_names, data_names, threshold: float = 0.5
) -> list[dict]:
    """One JSON object per input row, in input order: id, text(s), the prediction and, when present, the gold label."""
    ids = list(ds[columns.id]) if columns.id else list(range(len(ds)))
    texts = list(ds[columns.text])
    pairs = list(ds[columns.text_pair]) if columns.text_pair else None
    golds = list(ds[columns.label]) if columns.label and columns.label in ds.features else None
    if problem_type == "regression":
        values = predictions.reshape(len(ds), -1)[:, 0]
    elif problem_type == "multi_label_classification":
        probs = 1.0 / (1.0 + np.exp(-predictions))
    else:
        probs = _softmax(predictions)
    rows = []
    for i in range(len(ds)):
        row = {"id": ids[i], "text": texts[i]}
        if pairs is not None:
            row["text_pair"] = pairs[i]
        if problem_type == "regression":
            row["prediction"] = float(values[i])
            gold = golds[i] if golds is not None else None
            if gold is not None and not (isinstance(gold, float) and np.isnan(gold)):
                row["gold"] = float(gold)
        else:
            row["probabilities"] = {name: round(float(p), 6) for name, p in zip(label_names, probs[i], strict=True)}
            if problem_type == "multi_label_classification":
                row["labels"] = [name for name, p in zip(label_names, probs[i], strict=True) if p >= threshold]
                if golds is not None and golds[i] is not None:
                    row["gold"] = [_gold_name(v, label_names, data_names) for v in golds[i]]
            else:
                row["label"] = label_names[int(probs[i].argmax())]
                gold = _gold_name(golds[i], label_names, data_names) if golds is not None else None
                if gold is not None:
                    row["gold"] = gold
        rows.append(row)
    return rows


def write_model_card(out, model_name, data_args, lora_args, training_args, results, problem_type, label_names):
    """A plain model card written without the hub (Trainer.create_model_card looks metadata up online)."""
    data = (
        data_args.dataset_name
        or (f"GLUE {data_args.task_name}" if data_args.task_name else None)
        or ", ".join(f for f in (data_args.train_file, data_args.validation_file) if f)
    )
    speed = ("_runtime", "_per_second")
    metrics = "\n".join(
        f"| {k} | {v:.4f} |" if isinstance(v, float) else f"| {k} | {v} |"
        for k, v in sorted(results.items())
        if k.startswith("eval_") and not k.endswith(speed)
    )
    method = f"LoRA (r={lora_args.lora_r}, alpha={lora_args.lora_alpha})" if lora_args.use_lora else "full fine-tuning"
    labels = ", ".join(label_names) if label_names else "(regression: one output)"
    text = f"""---
library_name: {"peft" if lora_args.use_lora else "transformers"}
base_model: {model_name}
pipeline_tag: text-classification
tags: [text-classification, run_classification]
---

# {os.path.basename(os.path.abspath(out))}

Fine-tuned from `{model_name}` on {data} with {method} by `run_classification.py`.
Problem type: {problem_type}. Labels: {labels}.

## Evaluation

| metric | value |
|---|---|
{metrics or "| (no evaluation run) | |"}

## Training

learning_rate {training_args.learning_rate}, per-device batch {training_args.per_device_train_batch_size},
epochs {training_args.num_train_epochs}, seed {training_args.seed}, max_seq_length {data_args.max_seq_length}.
The exact arguments are in `recipe.json`: `python run_classification.py recipe.json` replays the run.
"""
    write_text_atomic(os.path.join(out, "README.md"), text)
