"""What a run leaves in output_dir beside the model and the evaluation: the recipe, the trained model's files, the
summary of results, the model card."""

import logging
import os

import numpy as np

from textcls.config.args import write_recipe
from textcls.errors import DiskFull
from textcls.io import is_disk_full, write_json_atomic, write_text_atomic
from textcls.model.pooling import mark_folder
from textcls.train.run_folder import checkpoint_bytes, disk_full_message, last_complete_checkpoint

logger = logging.getLogger(__name__)


def write_model_card(trainer, args, data, results: dict) -> None:
    """A plain model card written without the hub (Trainer.create_model_card looks metadata up online): what was
    trained (the model's own config says its class weights and pooling; peft's attribute, whether it is LoRA), on
    what, how, and the evaluation."""
    out, training_args, data_args, lora_args = trainer.args.output_dir, trainer.args, args.data, args.lora
    model_name = args.resolved["model_name_or_path"]
    problem_type, label_names = data.labels.problem_type, data.labels.names
    class_weights = getattr(trainer.model.config, "class_weights", None)
    pooling = getattr(trainer.model.config, "textcls_pooling", None)
    is_lora = hasattr(trainer.model, "peft_config")
    seq = data.long_documents.max_length
    source = (
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
    method = f"LoRA (r={lora_args.lora_r}, alpha={lora_args.lora_alpha})" if is_lora else "full fine-tuning"
    labels = ", ".join(label_names) if label_names else "(regression: one output)"
    weighted = ""
    if class_weights:
        pairs = ", ".join(f"{k} {v:.3g}" for k, v in class_weights.items())
        weighted = f"\nThe training loss weighed the classes ({training_args.class_weights}): {pairs}."
    if results.get("train_excluded_rows"):
        weighted += (
            f"\n{results['train_excluded_rows']} training rows were left out: those "
            f"`{results['train_excluded_rows_file']}` names (--exclude_rows)."
        )
    temperature = getattr(trainer.model.config, "calibration_temperature", None)
    if temperature is not None:  # transformers' pipeline reads the logits raw: say what the probabilities need
        shown = ", ".join(f"{t:.4g}" for t in np.atleast_1d(temperature))
        weighted += (
            f"\nCalibrated: divide the logits by the temperature {shown} (config.json's `calibration_temperature`) "
            "before the softmax (multi-label: each label's sigmoid). run_classification.py and the exported ONNX "
            "graph do; transformers' `pipeline` does not."
        )
    if pooling:
        weighted += (
            f"\nThe head reads the {pooling} of each text's tokens: load this folder with "
            '`pipeline("text-classification", model=..., trust_remote_code=True)` (see textcls_pooling.py).'
        )
    text = f"""---
library_name: {"peft" if is_lora else "transformers"}
base_model: {model_name}
pipeline_tag: text-classification
tags: [text-classification, run_classification]
---

# {os.path.basename(os.path.abspath(out))}

Fine-tuned from `{model_name}` on {source} with {method} by `run_classification.py`.
Problem type: {problem_type}. Labels: {labels}.

## Evaluation

| metric | value |
|---|---|
{metrics or "| (no evaluation run) | |"}

{pictures(out)}## Training

learning_rate {training_args.learning_rate}, per-device batch {training_args.per_device_train_batch_size},
epochs {training_args.num_train_epochs}, seed {training_args.seed}, max_seq_length {seq}.{weighted}
The exact arguments are in `recipe.json`: `python run_classification.py recipe.json` replays the run.
"""
    write_text_atomic(os.path.join(out, "README.md"), text)


def pictures(out: str) -> str:
    """The model card's links to the evaluation report and its pictures (textcls.evaluation.report), where the run
    wrote them."""
    if not os.path.isfile(os.path.join(out, "eval_report.md")):
        return ""
    folder = os.path.join(out, "plots")
    names = sorted(f for f in os.listdir(folder) if f.endswith(".png")) if os.path.isdir(folder) else []
    images = "".join(f"![{name[:-4]}](plots/{name})\n" for name in names)
    report = "The whole evaluation (per class, the most confident mistakes): [eval_report.md](eval_report.md)."
    return f"{report}\n\n{images}\n"


def write_run_recipe(trainer, resolved: dict) -> str:
    """recipe.json: every resolved flag, so that the folder replays the run. An evaluation or prediction run into a
    trained model's folder writes recipe_eval.json and keeps that folder's training recipe. Returns the name."""

    out = trainer.args.output_dir
    name = "recipe.json"
    if not trainer.args.do_train and os.path.isfile(os.path.join(out, name)):
        name = "recipe_eval.json"
    if trainer.is_world_process_zero():
        write_recipe(resolved, out, name)
    return name


def save_training(trainer, train_result, params: dict, resume_from: str | None = None) -> dict:
    """The trained model (or adapter), its config with the label map, train_results.json and trainer_state.json
    (written last: it marks the training finished, run_folder.is_finished). Returns the training metrics; a resumed
    run's say from which step (its runtime is the resumed part's)."""
    out = trainer.args.output_dir
    try:
        trainer.save_model()
    except (OSError, RuntimeError) as e:
        if not is_disk_full(e):
            raise
        raise _final_save_failed(trainer, e) from None
    metrics = {**train_result.metrics, "train_samples": train_samples(trainer), **params}
    if resume_from:
        metrics["resumed_from_step"] = int(resume_from.rstrip("/").rsplit("-", 1)[1])
    trainer.log_metrics("train", metrics)
    if trainer.is_world_process_zero():
        trainer.model.config.save_pretrained(out)  # LoRA saves only the adapter: keep the label map beside it
        mark_folder(out, trainer.model.config)  # --pooling mean|max: not a stock folder (textcls.model.pooling)
        write_json_atomic(os.path.join(out, "train_results.json"), metrics)
        trainer.save_state()
    return metrics


def _final_save_failed(trainer, error: BaseException) -> DiskFull:
    out = trainer.args.output_dir
    kept = last_complete_checkpoint(out)
    needed = checkpoint_bytes(trainer.model, optimizer=False)
    return DiskFull(
        disk_full_message(out, "the trained model", needed, error)
        + (
            f"Kept: {kept}, complete. Free some space, then run the same command: it resumes from there and saves "
            "the model."
            if kept
            else "No checkpoint was kept (--save_strategy no), so the training is lost. Free some space, or choose "
            "an --output_dir on a disk with room, and train again (with checkpoints, a full disk loses only the "
            "steps since the last one)."
        )
    )


def train_samples(trainer) -> int:
    """The training split's rows; for a stream (no length), the rows its steps took: steps x batch x processes x
    accumulation (a stream that ended and started again counts its rows again)."""
    try:
        return len(trainer.train_dataset)
    except TypeError:
        args = trainer.args
        per_step = args.per_device_train_batch_size * args.world_size * args.gradient_accumulation_steps
        return trainer.state.global_step * per_step


def write_run_summary(trainer, args, data, results: dict) -> None:
    """all_results.json, written fresh from this run's numbers (no stale keys from an earlier run in the folder);
    after training, the merged model (--merge_lora) and the model card."""
    if not trainer.is_world_process_zero():
        return
    out = trainer.args.output_dir
    write_json_atomic(os.path.join(out, "all_results.json"), results)
    if trainer.args.do_train:
        if hasattr(trainer.model, "peft_config") and args.lora.merge_lora:
            merged_dir = os.path.join(out, "merged")
            trainer.model.merge_and_unload().save_pretrained(merged_dir)
            trainer.processing_class.save_pretrained(merged_dir)
            logger.info("merged model: %s", merged_dir)
        write_model_card(trainer, args, data, results)
    logger.info("model, metrics and predictions are in %s", os.path.abspath(out))
