#!/usr/bin/env python
"""Fine-tune, evaluate and predict with any Hugging Face sequence-classification model, full or LoRA.

    python run_classification.py --model_name_or_path M --train_file train.csv --validation_file dev.csv \\
        --do_train --do_eval --output_dir out
    python run_classification.py recipes/glue/rte/all-MiniLM-L6-v2.json --learning_rate 3e-5
    accelerate launch --config_file recipes/accelerate/multi_gpu.yaml run_classification.py RECIPE.json

The pipeline reads top to bottom: arguments -> data -> columns -> labels -> tokenize -> model (+LoRA) -> Trainer ->
outputs. Each step is a small function in textcls/, tested on its own; main() only wires them.
"""

import logging
import os
import sys
import time

import transformers
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR, enable_full_determinism, set_seed

from textcls import data as D
from textcls import modeling as M
from textcls.args import parse_args, write_recipe
from textcls.distributed import check_launch, check_threads
from textcls.errors import UserError
from textcls.io import write_json_atomic
from textcls.metrics import (
    classification_report,
    compute_hub_metric,
    compute_metrics,
    load_hub_metric,
    metric_names,
    primary_metric,
)
from textcls.outputs import prediction_rows, split_suffix, write_model_card
from textcls.trainer import ClassificationTrainer, TrainingStopped, last_complete_checkpoint, sort_by_length, unsort

logger = logging.getLogger("run_classification")


def check_output_dir(training_args, overwrite: bool) -> str | None:
    """Refuse to train into a non-empty folder unless asked; resume from its last checkpoint if it has one."""
    out = training_args.output_dir  # transformers 5 defaults it to ./trainer_output
    if not training_args.do_train or not os.path.isdir(out) or overwrite:
        return None
    last = last_complete_checkpoint(out)
    if last is not None:
        logger.info("Resuming from %s (pass --overwrite_output_dir to start over).", last)
        return last
    entries = os.listdir(out)
    # What a run killed before its first complete checkpoint leaves behind: starting over loses nothing.
    leftovers = [n for n in entries if n not in ("recipe.json", "runs") and not n.startswith(PREFIX_CHECKPOINT_DIR)]
    if leftovers:
        raise UserError(
            f"output_dir {out} is not empty and holds no checkpoint. Pass --overwrite_output_dir to "
            "train into it anyway, or choose another --output_dir."
        )
    if entries:
        logger.warning("output_dir %s holds an interrupted run with no complete checkpoint: starting over.", out)
    return None


# evaluate's own metric repositories; a metric from any other is a script by whoever owns that repository.
EVALUATE_ORGS = ("evaluate-metric", "evaluate-measurement", "evaluate-comparison")


def check_training_flags(training_args) -> None:
    """Values Trainer would accept and fail on later (a batch size of 0, a negative learning rate), or that train
    nothing; and Trainer options that would leave the metrics (F1, Matthews, Spearman: computed over every prediction
    at once) or the predictions file without their inputs."""
    if training_args.do_train:
        if training_args.per_device_train_batch_size < 1:
            raise UserError(
                f"--per_device_train_batch_size {training_args.per_device_train_batch_size}: pass 1 or more."
            )
        if training_args.learning_rate < 0:
            raise UserError(f"--learning_rate {training_args.learning_rate:g}: pass 0 or more.")
        if training_args.max_steps <= 0 and training_args.num_train_epochs <= 0:
            raise UserError(
                f"--num_train_epochs {training_args.num_train_epochs:g} trains nothing: pass more, or drop --do_train "
                "to evaluate or predict only."
            )
    if (training_args.do_eval or training_args.do_predict) and training_args.per_device_eval_batch_size < 1:
        raise UserError(f"--per_device_eval_batch_size {training_args.per_device_eval_batch_size}: pass 1 or more.")
    if not training_args.eval_do_concat_batches:
        raise UserError(
            "--eval_do_concat_batches false is not supported: the metrics and predictions here need every batch's "
            "outputs joined. Drop the flag."
        )
    if training_args.batch_eval_metrics:
        raise UserError(
            "--batch_eval_metrics is not supported: these metrics need every prediction at once. Drop it; "
            "--eval_accumulation_steps N moves predictions off the accelerator every N steps if memory is short."
        )
    if training_args.prediction_loss_only and training_args.do_predict:
        raise UserError("--prediction_loss_only leaves no predictions for --do_predict to write. Drop one of the two.")


def check_optimizer_and_scheduler(training_args, model) -> None:
    """Trainer builds the optimizer and the scheduler when training starts, after the data and the model are loaded
    and the output folder is begun: a package or a setting they lack should stop the run before all that."""
    import torch
    from transformers import Trainer
    from transformers.optimization import get_scheduler
    from transformers.utils.import_utils import is_liger_kernel_available

    optim = getattr(training_args.optim, "value", training_args.optim)
    try:
        Trainer.get_optimizer_cls_and_kwargs(training_args, model)
    except (ImportError, ValueError) as e:
        raise UserError(f"--optim {optim}: {e}") from None
    name = getattr(training_args.lr_scheduler_type, "value", training_args.lr_scheduler_type)
    probe = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    try:
        get_scheduler(name, probe, 1, 10, scheduler_specific_kwargs=training_args.lr_scheduler_kwargs or {})
    except (TypeError, ValueError) as e:
        raise UserError(
            f"--lr_scheduler_type {name}: {e}. Pass its settings as --lr_scheduler_kwargs '{{\"setting\": value}}'."
        ) from None
    if training_args.use_liger_kernel and not is_liger_kernel_available():
        raise UserError("--use_liger_kernel needs the liger-kernel package (GPU only): pip install liger-kernel.")


def check_best_metric(name: str, problem_type: str, task_name, label_names, eval_names, loss_only: bool) -> None:
    """--metric_for_best_model must be a metric this evaluation reports; Trainer finds out at the first evaluation,
    after training has begun."""
    keys = ["loss"] + ([] if loss_only else metric_names(problem_type, task_name, len(label_names or ())))
    if len(eval_names) > 1:
        keys = [f"{split}_{key}" for split in eval_names for key in keys]
    if name.removeprefix("eval_") not in keys:
        raise UserError(
            f"--metric_for_best_model {name}: this evaluation reports {', '.join(keys)}. Pick one of them."
        )


def check_metric_source(name: str, trust_remote_code: bool) -> None:
    """evaluate.load runs the metric's Python script on this machine: a community one needs --trust_remote_code."""
    if trust_remote_code or "/" not in name or os.path.exists(name) or name.split("/")[0] in EVALUATE_ORGS:
        return
    raise UserError(
        f"--metric_name {name} is a community metric: loading it runs the Python code of that hub repository. "
        "Read it, then pass --trust_remote_code to allow it, or use one of evaluate's own metrics (e.g. accuracy)."
    )


def load_config_and_tokenizer(model_args):
    try:
        return M.load_config(model_args), M.load_tokenizer(model_args)
    except ValueError as e:
        # transformers refuses a repository with custom code (auto_map) unless trust_remote_code is set.
        if isinstance(e, UserError) or "trust_remote_code" not in str(e):
            raise
        raise UserError(
            f"{model_args.model_name_or_path} ships its own model code, which runs only with --trust_remote_code. "
            "Read that code, then pass --trust_remote_code if you trust it, or use a model transformers supports."
        ) from None


def split_names(raw, task, training_args, data_args):
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


def resolve_labels(raw, columns, data_args, config, training: bool):
    """(problem_type, label_names, data_names). A saved fine-tuned model keeps its own label map unless we train."""
    labelled = next(
        (raw[s] for s in ("train", "validation", *raw) if s in raw and columns.label in raw[s].features), None
    )
    has_map = not M.default_label_names(config)
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
            else D.infer_problem_type(feature, labelled[columns.label])
        )
    if problem_type == "regression":
        if data_args.label_names:
            raise UserError("--label_names names classes, but regression labels have no classes: drop it.")
        return problem_type, None, None
    data_names = D.class_label_names(feature) if feature is not None else None
    model_names = [config.id2label[i] for i in range(len(config.id2label))] if has_map else None
    if not training and model_names is not None:
        if data_args.label_names is not None and data_args.label_names != model_names:
            raise UserError(
                f"the model's head predicts {model_names}, not --label_names {data_args.label_names}. "
                "Drop --label_names, or fine-tune with --do_train to get a new head."
            )
        return problem_type, model_names, data_names
    multi = problem_type == "multi_label_classification"
    source = raw["train"] if "train" in raw and columns.label in raw["train"].features else labelled
    # Read every training label only when they decide the classes: a row-by-row scan of 67k rows costs a second.
    scan = data_args.label_names is None and data_names is None
    names = D.build_label_names(list(source[columns.label]) if scan else [], data_args.label_names, data_names, multi)
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
    return problem_type, names, data_names


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


def make_compute_metrics(problem_type, task_name, label_names, threshold, hub_metric=None):
    def fn(eval_pred):
        metrics = compute_metrics(
            eval_pred.predictions, eval_pred.label_ids, problem_type, task_name, label_names, threshold
        )
        if hub_metric is not None and metrics:
            metrics.update(
                compute_hub_metric(hub_metric, eval_pred.predictions, eval_pred.label_ids, problem_type, threshold)
            )
        return metrics

    return fn


def check_split_columns(splits, columns) -> None:
    """Every split has the text columns; every split that is trained or evaluated on has the labels."""
    for role, names in splits.items():
        for name, ds in names.items():
            missing = [c for c in (columns.text, columns.text_pair) if c and c not in ds.features]
            if missing:
                raise UserError(f"the {name} split has no column {missing[0]!r}. Columns: {', '.join(ds.features)}.")
            if role != "test" and columns.label not in ds.features:
                raise UserError(
                    f"--do_{role} needs labels, but the {name} split has no column {columns.label!r}. Columns: "
                    f"{', '.join(ds.features)}. Add the labels to it, or pass --label_column NAME."
                )


def tokenize_splits(splits, columns, tokenizer, label_names, problem_type, data_names, data_args) -> dict:
    """{(role, split): tokenized rows}; evaluation and test rows sorted by length, with the order to undo it."""
    tokenized = {}
    for role, names in splits.items():
        for name, ds in names.items():
            has_label = columns.label is not None and columns.label in ds.features
            labels = (
                D.encode_labels(
                    list(ds[columns.label]), label_names, problem_type, name, data_names, require_labels=role != "test"
                )
                if has_label
                else None
            )
            if role == "test" and labels is not None and any(v is None or v == -1 for v in labels):
                labels = None  # unlabelled test rows (GLUE's -1): predict only, no loss
            tok = D.tokenize_split(
                ds, tokenizer, columns, labels, data_args.max_seq_length, data_args.pad_to_max_length, name
            )
            tokenized[(role, name)] = tok if role == "train" else sort_by_length(tok)
    return tokenized


def evaluate_and_predict(
    trainer, roles, tokenized, splits, columns, problem_type, label_names, data_names, data_args, task, split_sizes
) -> dict:
    """Evaluate every eval split and predict every test split; the main process writes metrics, the per-class
    report, predictions in input order and, for a GLUE task, the server's submission files. Returns the metrics."""
    out = trainer.args.output_dir
    main_process = trainer.is_world_process_zero()
    results = {}
    for role in ("eval", "test"):
        for name in roles[role]:
            tok, order = tokenized[(role, name)]
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
            if role == "eval" and problem_type != "regression":
                report = classification_report(
                    predictions, gold, label_names, problem_type, data_args.multi_label_threshold
                )
                write_json_atomic(os.path.join(out, f"{prefix}_classification_report.json"), report)
            if role == "test":
                from textcls.io import write_jsonl_atomic

                rows = prediction_rows(
                    splits[role][name],
                    columns,
                    predictions,
                    problem_type,
                    label_names,
                    data_names,
                    data_args.multi_label_threshold,
                )
                path = os.path.join(out, f"predictions{'_' + suffix if suffix else ''}.jsonl")
                write_jsonl_atomic(path, rows)
                logger.info("predictions: %s", path)
                if task is not None:
                    folder = os.path.join(out, "glue_submission")
                    write_submission(task.name, name, rows, folder, split_sizes[name])
    return results


def main(argv: list[str] | None = None) -> dict:
    start = time.monotonic()
    argv = list(sys.argv[1:] if argv is None else argv)
    model_args, data_args, lora_args, training_args, resolved = parse_args(argv)
    logging.basicConfig(
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        level=logging.INFO,
        handlers=[logging.StreamHandler(sys.stdout)],
        force=True,
    )
    transformers.utils.logging.set_verbosity_warning()
    if training_args.disable_tqdm:  # datasets' and transformers' own bars too (loading, splitting, tokenizing)
        import datasets

        datasets.disable_progress_bars()
        transformers.utils.logging.disable_progress_bar()
    if not (training_args.do_train or training_args.do_eval or training_args.do_predict):
        raise UserError("nothing to do: pass --do_train, --do_eval and/or --do_predict.")
    check_training_flags(training_args)
    check_launch(training_args)
    check_threads(training_args)
    code_version = None
    if data_args.results_file:
        from textcls.results import git_state

        code_version = git_state()  # the code that runs now, not what the folder holds when the run ends
    if model_args.model_name_or_path is None:
        raise UserError("--model_name_or_path (or --model) is required: a hub id or a local model folder.")
    if model_args.trust_remote_code:
        logger.warning("trust_remote_code is ON: code from the model/dataset repository will run on this machine.")
    model_args.model_name_or_path = M.resolve_model_path(model_args.model_name_or_path)
    model_args.tokenizer_name = M.resolve_model_path(model_args.tokenizer_name)
    last_checkpoint = check_output_dir(training_args, data_args.overwrite_output_dir)
    if lora_args.merge_lora and not (lora_args.use_lora or M.adapter_base(model_args.model_name_or_path)):
        raise UserError("--merge_lora merges a LoRA adapter: pass --use_lora (or an adapter folder as --model).")

    # Fetched first: a metric that cannot be loaded should fail the run before any work is done.
    hub_metric = None
    if data_args.metric_name:
        check_metric_source(data_args.metric_name, model_args.trust_remote_code)
        hub_metric = load_hub_metric(data_args.metric_name)

    # ---- data
    from textcls.glue import get_glue_task

    for flag in ("max_train_samples", "max_eval_samples", "max_predict_samples"):
        cap = getattr(data_args, flag)
        if cap is not None and cap < 1:
            raise UserError(f"--{flag} {cap} leaves no rows. Pass 1 or more, or leave it out to use every row.")

    task = get_glue_task(data_args.task_name) if data_args.task_name else None
    task_name = task.name if task else None
    raw = D.load_raw_datasets(data_args, model_args, task)
    roles = split_names(raw, task, training_args, data_args)
    caps = {
        "train": data_args.max_train_samples,
        "eval": data_args.max_eval_samples,
        "test": data_args.max_predict_samples,
    }
    splits = {role: {name: D.select_first(raw[name], caps[role]) for name in names} for role, names in roles.items()}
    first = next(ds for names in splits.values() for ds in names.values())
    columns = D.resolve_columns(
        first.features,
        data_args.text_column,
        data_args.text_pair_column,
        data_args.label_column,
        data_args.id_column,
        task,
        need_label=training_args.do_train or training_args.do_eval,
    )
    check_split_columns(splits, columns)

    # ---- model config, tokenizer, labels
    config, tokenizer = load_config_and_tokenizer(model_args)
    model_max = min(getattr(config, "max_position_embeddings", None) or 10**9, tokenizer.model_max_length)
    if data_args.max_seq_length is None:
        data_args.max_seq_length = min(128, model_max)
    elif data_args.max_seq_length > model_max:
        raise UserError(
            f"--max_seq_length {data_args.max_seq_length} is above this model's maximum of {model_max} "
            f"tokens. Pass --max_seq_length {model_max} or less."
        )
    problem_type, label_names, data_names = resolve_labels(raw, columns, data_args, config, training_args.do_train)
    logger.info("problem_type=%s labels=%s columns=%s", problem_type, label_names, columns)
    smoothing = training_args.label_smoothing_factor
    if training_args.do_train and smoothing and problem_type != "single_label_classification":
        # Trainer would crash on regression targets mid-run and silently drop it for multi-label.
        raise UserError(
            f"--label_smoothing_factor smooths single-label class targets, but these labels are {problem_type}. "
            "Drop the flag."
        )

    tokenized = tokenize_splits(splits, columns, tokenizer, label_names, problem_type, data_names, data_args)

    # ---- model (+LoRA)
    # Seeded here, not only by Trainer later: a new classification head and LoRA's matrices are drawn when built.
    if training_args.full_determinism:
        enable_full_determinism(training_args.seed)
    else:
        set_seed(training_args.seed)
    model = M.build_model(model_args, config, tokenizer, label_names, problem_type, training_args.do_train)
    adapter_dir = model_args.model_name_or_path if M.adapter_base(model_args.model_name_or_path) else None
    if adapter_dir:
        model = M.load_adapter(model, adapter_dir, is_trainable=training_args.do_train)
    elif lora_args.use_lora:
        model = M.apply_lora(model, lora_args)
    if training_args.do_train:
        check_optimizer_and_scheduler(training_args, model)
    # Training on from an adapter folder is LoRA too: merge it and describe it as such.
    lora_args.use_lora = lora_args.use_lora or adapter_dir is not None
    params = M.count_parameters(model)
    logger.info(
        "trainable parameters: %d of %d (%.4f%%)",
        params["trainable_params"],
        params["total_params"],
        params["trainable_params_pct"],
    )

    # ---- Trainer
    eval_names = [split_suffix(n) for n in roles["eval"]]
    loss_only = training_args.prediction_loss_only  # evaluation reports the loss alone (and Trainer selects on it)
    if training_args.metric_for_best_model is not None and hub_metric is None:
        check_best_metric(
            training_args.metric_for_best_model, problem_type, task_name, label_names, eval_names, loss_only
        )
    if training_args.metric_for_best_model is None and problem_type is not None and not loss_only:
        metric = primary_metric(problem_type, task_name)
        # With several eval splits (MNLI) Trainer names metrics eval_<split>_<metric>: select on the first split.
        training_args.metric_for_best_model = f"{eval_names[0]}_{metric}" if len(eval_names) > 1 else metric
        training_args.greater_is_better = metric != "mse"
    first_position = M.setup_padding_free(model, data_args.padding_free, data_args.pad_to_max_length)
    collator = D.make_collator(
        tokenizer, data_args.pad_to_max_length, training_args.fp16 or training_args.bf16, first_position
    )
    eval_sets = {split_suffix(n): tokenized[("eval", n)][0] for n in roles["eval"]}
    train_ds = tokenized.get(("train", "train"))
    if training_args.enable_jit_checkpoint:
        # Ours saves at a step boundary, on SIGINT too, and exits non-zero (textcls/trainer.py says why).
        logger.info("--enable_jit_checkpoint is not needed: SIGTERM and Ctrl-C already save a checkpoint.")
        training_args.enable_jit_checkpoint = False
    trainer = ClassificationTrainer(
        model=model,
        args=training_args,
        train_dataset=train_ds,
        eval_dataset=(eval_sets.get("") if list(eval_sets) == [""] else eval_sets) or None,
        processing_class=tokenizer,
        data_collator=collator,
        compute_metrics=make_compute_metrics(
            problem_type, task_name, label_names, data_args.multi_label_threshold, hub_metric
        ),
        train_lengths=list(train_ds["length"]) if train_ds is not None else None,
    )
    out = training_args.output_dir
    main_process = trainer.is_world_process_zero()
    # An evaluation or prediction run into a trained model's folder keeps that folder's training recipe.
    recipe_name = "recipe.json"
    if not training_args.do_train and os.path.isfile(os.path.join(out, recipe_name)):
        recipe_name = "recipe_eval.json"
    if main_process:
        write_recipe(resolved, out, recipe_name)

    results = {}
    if training_args.do_train:
        train_result = trainer.train(resume_from_checkpoint=last_checkpoint)
        trainer.save_model()
        if main_process:
            model.config.save_pretrained(out)  # LoRA saves only the adapter: keep the label map beside it
        metrics = {**train_result.metrics, "train_samples": len(train_ds), **params}
        results.update(metrics)
        trainer.log_metrics("train", metrics)
        if main_process:
            write_json_atomic(os.path.join(out, "train_results.json"), metrics)
            trainer.save_state()

    results.update(
        evaluate_and_predict(
            trainer,
            roles,
            tokenized,
            splits,
            columns,
            problem_type,
            label_names,
            data_names,
            data_args,
            task,
            {name: len(raw[name]) for name in roles["test"]},  # before --max_predict_samples
        )
    )

    if main_process:
        # Written fresh from this run's numbers: no stale keys from an earlier run in the same folder.
        write_json_atomic(os.path.join(out, "all_results.json"), results)
        if training_args.do_train:
            if lora_args.use_lora and lora_args.merge_lora:
                merged_dir = os.path.join(out, "merged")
                trainer.model.merge_and_unload().save_pretrained(merged_dir)
                tokenizer.save_pretrained(merged_dir)
                logger.info("merged model: %s", merged_dir)
            write_model_card(
                out,
                resolved["model_name_or_path"],
                data_args,
                lora_args,
                training_args,
                results,
                problem_type,
                label_names,
            )
        logger.info("model, metrics and predictions are in %s", os.path.abspath(out))
        if data_args.results_file:
            from textcls.results import record_from_output_dir

            record_from_output_dir(
                data_args.results_file, out, argv, time.monotonic() - start, recipe_name, code_version
            )
            logger.info("recorded in %s", data_args.results_file)
    return results


def cli(argv=None) -> int:
    try:
        main(argv)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except TrainingStopped as e:
        print(e, file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("interrupted. Run the same command again to resume from the last checkpoint.", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    code = cli()
    # Everything is written and flushed. Without this the interpreter's exit walks every object torch and transformers
    # made with the cyclic garbage collector: about 2.5 s of a 50 s run on 2 cores (benchmarks/README.md).
    import gc

    gc.freeze()
    sys.exit(code)
