"""Trainer with fixes for classification and for runs that get interrupted (its loss: train/loss.py; its signal
handling and exact resumes: train/resume.py).

1. Length-grouped training batches read the lengths computed at tokenization. Stock Trainer drops the 'length'
   column before building the sampler and then re-measures every row, which costs seconds per 10k rows.
2. Evaluation and prediction always run in dataset order. Stock Trainer uses a length-grouped (shuffled) sampler
   for evaluation too when train_sampling_strategy='group_by_length', so trainer.predict() returns rows in a
   permuted order that no longer lines up with the data. We get the padding savings instead by sorting the eval
   set by length ourselves (sort_by_length) and un-sorting the predictions (unsort).
3. A run killed at any point and started again with the same command ends bit-identical to one never interrupted
   (on CPU): the length-grouped shuffle depends on (seed, epoch) only, the running training loss is saved in each
   checkpoint and restored, and a checkpoint the kill left half-written is never resumed from.
4. SIGTERM (pre-emption) or Ctrl-C during training finishes the optimizer step under way, saves a checkpoint and
   raises TrainingStopped; transformers' enable_jit_checkpoint saves in the middle of a step instead (before the
   optimizer step, after the forward pass drew its dropout masks), so a resumed run differs, and it lets train()
   return as if training had finished."""

import dataclasses
import functools
import json
import logging
import os
import shutil
import time

import datasets
import torch
from torch.utils.data import SequentialSampler
from transformers import EarlyStoppingCallback, Trainer, TrainerCallback
from transformers.trainer_pt_utils import nested_gather
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR, EvalLoopOutput, EvalPrediction, denumpify_detensorize

from textcls.data.collate import ArrowRows, FastPaddingCollator, TokenizingRows, make_collator
from textcls.data.labels import class_weights
from textcls.data.load import arrow_column, split_suffix
from textcls.data.tokenization import DOCUMENT, join_windows
from textcls.errors import DiskFull, TrainingStopped
from textcls.evaluation.metrics import make_compute_metrics, primary_metric
from textcls.io import is_disk_full, write_json_atomic, write_text_atomic
from textcls.model.build import parameter_depths, setup_padding_free
from textcls.model.pooling import mark_folder
from textcls.train.loss import exact_loss, loss_over_step
from textcls.train.resume import GracefulStop, RestoreLoss, SeededLengthGroupedSampler
from textcls.train.run_folder import (
    DECIDED,
    SETTINGS,
    TRAINER_STATE,
    checkpoint_bytes,
    disk_full_message,
    last_complete_checkpoint,
    write_manifest,
)

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class BestMetric:
    """The metric that selects the best checkpoint and scores a search's trials, decided once (resolve_best_metric):
    --metric_for_best_model and --greater_is_better, or the task's primary metric."""

    name: str | None
    greater_is_better: bool | None


def resolve_best_metric(training_args, problem_type: str, task, eval_splits: list[str]) -> BestMetric:
    """--metric_for_best_model (and greater_is_better) when not given: the task's primary metric, on the first
    evaluation split (with --prediction_loss_only, the loss when a best model is kept)."""
    eval_names = [split_suffix(n) for n in eval_splits]
    name, greater = training_args.metric_for_best_model, training_args.greater_is_better
    if name is None and not training_args.prediction_loss_only:
        metric = primary_metric(problem_type, task.name if task else None)
        # With several eval splits (MNLI) Trainer names metrics eval_<split>_<metric>: select on the first split.
        name = f"{eval_names[0]}_{metric}" if len(eval_names) > 1 else metric
        greater = metric != "mse"
    elif name is None and training_args.load_best_model_at_end:
        name, greater = "loss", False  # all it computes
    return BestMetric(name, greater)


def trainer_arguments(training_args, best: BestMetric, streamed: bool):
    """The Trainer's own copy of the TrainingArguments, with what this run decided after parsing: the best metric;
    no enable_jit_checkpoint (ours saves at a step boundary, on SIGINT too, and exits non-zero: GracefulStop); a
    stream's batches read by each process (shard_streams); a search's trials saving no checkpoints. The parsed
    arguments stay as parsed."""
    changes = {"metric_for_best_model": best.name, "greater_is_better": best.greater_is_better}
    if training_args.enable_jit_checkpoint:
        logger.info("--enable_jit_checkpoint is not needed: SIGTERM and Ctrl-C already save a checkpoint.")
        changes["enable_jit_checkpoint"] = False
    if streamed:
        changes["accelerator_config"] = dataclasses.replace(training_args.accelerator_config, dispatch_batches=False)
    if getattr(training_args, "hp_trials", 0):
        # A trial cut off is run again from its start, so its checkpoints would only fill the disk (a checkpoint of
        # all-MiniLM-L6-v2 is 261 MB: 5 GB for 20 trials); each trial's objective is its last evaluation.
        if str(getattr(training_args.save_strategy, "value", training_args.save_strategy)) != "no":
            logger.info("hyperparameter search: trials save no checkpoints and keep their last weights")
        changes |= {"save_strategy": "no", "load_best_model_at_end": False}
    return dataclasses.replace(training_args, **changes)


def build_trainer(
    model, args, tokenizer, data, best, hub_metric=None, run_settings=None, bf16=False
) -> "ClassificationTrainer":
    """The Trainer of this run: our loss and samplers, padded or padding-free batches, the run's metrics, and the
    metric to select the best checkpoint on (best: resolve_best_metric). run_settings: what each checkpoint records
    it was trained with (run_folder.training_settings); bf16: as distributed.resolve_bf16 decided (unset --bf16 on
    a CPU with AMX: bf16 training steps, ClassificationTrainer.autocast_smart_context_manager)."""
    training_args, data_args = args.training, args.data
    # Measured on a CPU with AMX (results/speed/packing-sst2-amx-*.json): on length-grouped SST-2 batches (5.6%
    # padding) padded steps took 0.87x padding-free ones' time in bf16 (level in fp32); random: padding-free won.
    grouped = str(training_args.train_sampling_strategy) == "group_by_length"
    padded_is_faster = bf16 and training_args.use_cpu and grouped
    first_position = setup_padding_free(model, data_args.padding_free, data_args.pad_to_max_length, padded_is_faster)
    # A multiple of 8 suits a GPU's tensor cores under mixed precision; on the CPU it is only more padding on padded
    # batches (SST-2's rows average 13 tokens: about a quarter more). The real run_glue.py pads so for fp16 only.
    tensor_cores = (training_args.fp16 or bf16) and not training_args.use_cpu
    collator = make_collator(tokenizer, data_args.pad_to_max_length, tensor_cores, first_position)
    eval_sets = {split_suffix(n): data.tokenized[("eval", n)][0] for n in data.names("eval")}
    train_rows = data.train_rows()
    streamed = isinstance(train_rows, datasets.IterableDataset)
    if streamed:
        warn_about_shards(training_args, train_rows)
    weights = class_weights(training_args.class_weights, data.labels, train_rows) if training_args.do_train else None
    if weights is not None:
        logger.info("class weights: %s", ", ".join(f"{k} {v:.3g}" for k, v in weights.items()))
        model.config.class_weights = weights  # saved with the model: what its training loss weighed
    long_docs = data.long_documents
    if long_docs.strategy != "truncate":  # saved with the model: a folder predicts as it trained
        model.config.long_document = {"strategy": long_docs.strategy, "max_seq_length": long_docs.max_length}
        if long_docs.strategy == "chunk":
            model.config.long_document |= {"doc_stride": long_docs.stride, "aggregation": long_docs.aggregation}
    training_args = trainer_arguments(training_args, best, streamed)
    model_init = None
    if getattr(training_args, "hp_trials", 0):  # a search: every trial starts from the same initial weights
        initial = {k: v.detach().clone() for k, v in model.state_dict().items()}

        def model_init(trial=None):
            model.load_state_dict(initial)
            return model

    return ClassificationTrainer(
        model=None if model_init else model,
        model_init=model_init,
        args=training_args,
        train_dataset=train_rows,
        eval_dataset=(eval_sets.get("") if list(eval_sets) == [""] else eval_sets) or None,
        processing_class=tokenizer,
        data_collator=collator,
        compute_metrics=make_compute_metrics(
            data.labels, data.task_name, data.thresholds.value, hub_metric, data.calibration.temperature
        ),
        train_lengths=None if train_rows is None or streamed else lengths_of(train_rows),
        class_weights=weights,
        chunk_aggregation=long_docs.aggregation,
        run_settings=run_settings,
        train_encoder=data.train_encoder,
        autocast_training=bf16 and not training_args.bf16,  # decided, not asked for: training steps only
    )


def mixed_precision(trainer) -> dict:
    """What this run's numbers were computed in, for all_results.json and the results file: "no" (fp32), "bf16" or
    "fp16" (--bf16 / --fp16: autocast around every forward, evaluation too), or "bf16_training" (--bf16 unset on a
    CPU with AMX: training steps in bf16, evaluation and prediction in fp32)."""
    if getattr(trainer, "autocast_training", False):
        return {"mixed_precision": "bf16_training"}
    return {"mixed_precision": getattr(trainer.args, "mixed_precision", "no")}  # an ONNX folder's predictor: "no"


def lengths_of(rows) -> list[int]:
    return arrow_column(rows, "length").to_numpy().tolist()


def warn_about_shards(training_args, rows) -> None:
    """Each process of a launch reads its own part of a streamed training split: accelerate's dataloader, with
    dispatch_batches off (trainer_arguments), gives each process whole shards (files) of the stream when there are at
    least as many as processes (datasets' IterableDataset.shard, what datasets.distributed.split_dataset_by_node
    does), and otherwise every process reads the stream and keeps its own batches of it. (Left on, as accelerate
    defaults for a stream, the main process reads every batch and sends the others theirs, which needs every batch
    padded to one shape.)"""
    processes = training_args.world_size
    if processes > 1 and rows.num_shards < processes:
        logger.warning(
            "--streaming: %d shard(s) for %d processes, so each process reads (and tokenizes) the whole stream and "
            "trains on its own batches of it. Write the training data as %d or more files (e.g. parquet shards; "
            "scripts/shard_data.py) and pass them as a glob, so that each process reads only its own.",
            rows.num_shards,
            processes,
            processes,
        )


class ClassificationTrainer(Trainer):
    def __init__(
        self,
        *args,
        train_lengths=None,
        class_weights=None,
        chunk_aggregation="mean",
        run_settings=None,
        train_encoder=None,
        autocast_training=False,
        **kwargs,
    ):
        super().__init__(*args, **kwargs)
        self.autocast_training = autocast_training  # bf16 training steps, fp32 evaluation (autocast_smart_context...)
        self.train_encoder = train_encoder  # --tokenize per_batch: the training rows are text, tokenized as read
        self.run_settings = run_settings  # the training settings, recorded in each checkpoint (run_folder)
        self.chunk_aggregation = chunk_aggregation  # how a text's windows' logits are joined (join_windows)
        # Trainer takes a model whose forward has **kwargs to normalise its loss over the whole accumulated batch
        # (num_items_in_batch) and then skips its own division by gradient_accumulation_steps. The
        # ...ForSequenceClassification heads take **kwargs but drop num_items_in_batch: their loss is the batch mean,
        # so with accumulation the loss and gradients came out gradient_accumulation_steps times too large
        # (transformers issue 47688). Dividing each micro-batch's mean instead would weigh rows unequally when the
        # micro-batches differ in size (an epoch's last step, train_sampling_strategy batch_rebalance). So the loss is
        # ours: the heads' own loss summed over the micro-batch and divided by the label count of the whole step.
        self.model_accepts_loss_kwargs = False  # the model gets no labels and no count
        self.compute_loss_func = functools.partial(
            loss_over_step,
            problem_type=self.model.config.problem_type,
            smoothing=self.args.label_smoothing_factor,
            weights=None if class_weights is None else list(class_weights.values()),
        )
        self.train_lengths = train_lengths
        self.stop = GracefulStop()
        self.add_callback(self.stop)
        patience = getattr(self.args, "early_stopping_patience", None)  # plain TrainingArguments have none
        if patience is not None:
            self.add_callback(EarlyStoppingCallback(patience, self.args.early_stopping_threshold))
        if self.args.disable_tqdm:  # no progress bar (a log file, a batch job): a line every few seconds instead
            self.add_callback(PredictionProgress())
        self.add_callback(RestoreLoss(self))
        self._resume_dir = None
        self._whole_run_loss = False

    def train(self, resume_from_checkpoint: str | bool | None = None, **kwargs):
        # With True, Trainer finds the checkpoint itself and the loss is not carried over.
        self._resume_dir = resume_from_checkpoint if isinstance(resume_from_checkpoint, str) else None
        try:
            output = super().train(resume_from_checkpoint=resume_from_checkpoint, **kwargs)
        finally:
            self.stop.release()
        if self.stop.signum is not None:
            step = self.state.global_step
            saved = self.stop.saved_step == step
            checkpoint = os.path.join(self.args.output_dir, f"{PREFIX_CHECKPOINT_DIR}-{step}") if saved else None
            raise TrainingStopped(self.stop.signum, step, checkpoint)
        return output

    def autocast_smart_context_manager(self, cache_enabled: bool | None = True):
        # --bf16 unset on a CPU with AMX (distributed.resolve_bf16): the training steps run in bf16 autocast, where the
        # time goes; evaluation and prediction in fp32, the saved model's own precision, so that predictions.jsonl is
        # what the model folder predicts anywhere (its ONNX graph, a pipeline). --bf16 true keeps Trainer's way:
        # accelerate's autocast around every forward, evaluation too.
        if self.autocast_training and self.model.training:
            return torch.autocast(self.args.device.type, dtype=torch.bfloat16, cache_enabled=cache_enabled)
        return super().autocast_smart_context_manager(cache_enabled)

    def _finalize_training(self, trial, num_train_samples, start_time):
        # Trainer averages the loss over processes at each logging step, but adds the steps since the last one as this
        # process's own value: under DDP, train_loss would be partly rank 0's alone. Average that part too.
        if self.args.world_size > 1:
            self._tr_loss = nested_gather(self._tr_loss.detach(), self.args.parallel_mode).mean()
        return super()._finalize_training(trial, num_train_samples, start_time)

    def create_optimizer(self, model=None):
        """Trainer's optimizer; with --layerwise_lr_decay each of its parameter groups (weight decay or not) split
        by depth (modeling.parameter_depths), depth d getting the learning rate x decay^(top - d): the head the full
        rate, the top layer one factor less, the embeddings the least. Built before the scheduler, which then scales
        each group's own rate."""
        if self.optimizer is not None or getattr(self.args, "layerwise_lr_decay", None) is None:
            return super().create_optimizer(model)
        optimizer = super().create_optimizer(model)
        opt_model = self.model if model is None else model
        depths = parameter_depths(opt_model)
        by_id = {id(p): depths[n] for n, p in opt_model.named_parameters()}
        top, decay = max(depths.values()), self.args.layerwise_lr_decay
        groups = []
        for group in optimizer.param_groups:
            settings = {k: v for k, v in group.items() if k != "params"}
            for depth in sorted({by_id[id(p)] for p in group["params"]}):
                params = [p for p in group["params"] if by_id[id(p)] == depth]
                groups.append(
                    {**settings, "params": params, "lr": group["lr"] * decay ** (top - depth), "depth": depth}
                )
        optimizer.param_groups = []
        for group in groups:
            optimizer.add_param_group(group)
        logger.info(
            "layer-wise lr decay %g: from %.3g (head) down to %.3g (embeddings)",
            decay,
            self.args.learning_rate,
            self.args.learning_rate * decay**top,
        )
        return optimizer

    def _get_train_sampler(self, train_dataset=None):
        if self.args.train_sampling_strategy == "group_by_length" and self.train_lengths is not None:
            # tokenized batch by batch, the rows' lengths are estimates: each megabatch is sorted by its true lengths
            # (a checkpoint of a run that sorted by the estimates resumes so: run_folder.length_order)
            by_estimates = ((self.run_settings or {}).get(DECIDED) or {}).get("length_order") == "estimated"
            measure = None
            if self.train_encoder is not None and not by_estimates:
                measure = TokenizingRows(self.train_dataset, self.train_encoder).lengths
            return SeededLengthGroupedSampler(
                self.args.train_batch_size * self.args.gradient_accumulation_steps,
                lengths=self.train_lengths,
                seed=self.args.data_seed if self.args.data_seed is not None else self.args.seed,
                epoch=lambda: int(self.state.epoch or 0),
                measure=measure,
            )
        return super()._get_train_sampler(train_dataset)

    def _get_dataloader(self, dataset, description, batch_size, sampler_fn=None, is_training=False, **kwargs):
        # --dataloader_drop_last is for training batches; Trainer applies it to evaluation and prediction as well,
        # which leaves the last rows out of the metrics and the predictions.
        drop_last = self.args.dataloader_drop_last
        self.args.dataloader_drop_last = drop_last and is_training
        try:
            loader = super()._get_dataloader(dataset, description, batch_size, sampler_fn, is_training, **kwargs)
        finally:
            self.args.dataloader_drop_last = drop_last
        if not is_training and isinstance(dataset, datasets.Dataset) and DOCUMENT in dataset.column_names:
            # the text each window is from (--long_document_strategy chunk), for evaluation_loop; Trainer drops the
            # column from the batches the model sees
            loader.text_of_window = arrow_column(dataset, DOCUMENT).to_numpy()
        return loader

    def _remove_unused_columns(self, dataset, description=None):
        # Trainer calls this on a datasets.Dataset just before building each DataLoader. With our collator, batches
        # are fetched as one Arrow table and padded column-wise: the stock per-row path costs more than a GPU step.
        if self.train_encoder is not None and dataset is self.train_dataset:  # text: its batches tokenized as read
            return TokenizingRows(dataset, self.train_encoder)
        dataset = super()._remove_unused_columns(dataset, description)
        return ArrowRows(dataset) if isinstance(self.data_collator, FastPaddingCollator) else dataset

    def _get_eval_sampler(self, eval_dataset):
        if self.args.world_size <= 1:
            return SequentialSampler(eval_dataset)
        return None  # accelerate shards in order and gather_for_metrics restores it

    def evaluation_loop(
        self, dataloader, description, prediction_loss_only=None, ignore_keys=None, metric_key_prefix="eval"
    ):
        windows = getattr(dataloader, "text_of_window", None)
        compute_metrics = self.compute_metrics
        if windows is not None:  # metrics are computed below, per text, once its windows are joined
            self.compute_metrics = None
        try:
            output = super().evaluation_loop(
                dataloader, description, prediction_loss_only, ignore_keys, metric_key_prefix
            )
        finally:
            self.compute_metrics = compute_metrics
        key = f"{metric_key_prefix}_loss"
        if self.args.world_size > 1 and key in output.metrics and output.predictions is not None:
            # Under DDP the last batch of a split that does not divide evenly is padded with repeated rows: the
            # predictions drop them, but Trainer's eval loss averages them in. Recompute it from the rows themselves.
            problem_type, smoothing = self.model.config.problem_type, self.args.label_smoothing_factor
            exact = exact_loss(output.predictions, output.label_ids, problem_type, smoothing)
            if exact is not None:
                output.metrics[key] = exact
        if windows is None or output.predictions is None:
            return output
        # The loss stays the windows' (what training minimises); predictions and metrics are the texts'. Every
        # process holds every window's logits here (gathered in order), so each text is joined whole, once.
        predictions, label_ids = join_windows(output.predictions, output.label_ids, windows, self.chunk_aggregation)
        metrics = dict(output.metrics)
        metrics[f"{metric_key_prefix}_windows"] = len(windows)
        if compute_metrics is not None and label_ids is not None:
            computed = denumpify_detensorize(compute_metrics(EvalPrediction(predictions, label_ids)))
            metrics |= {f"{metric_key_prefix}_{k}": v for k, v in computed.items()}
        return EvalLoopOutput(predictions, label_ids, metrics, num_samples=len(predictions))

    def _maybe_log_save_evaluate(self, tr_loss, grad_norm, model, trial, *args, **kwargs):
        super()._maybe_log_save_evaluate(tr_loss, grad_norm, model, trial, *args, **kwargs)
        if self.stop.owes_checkpoint(self.state, self.control):
            self._save_checkpoint(model, trial)
            self.control = self.callback_handler.on_save(self.args, self.state, self.control)

    def save_model(self, output_dir=None, _internal_call=False):
        super().save_model(output_dir, _internal_call)
        if self.is_world_process_zero():  # checkpoints too: a pooled model's folder is never a stock one
            mark_folder(output_dir or self.args.output_dir, self.model.config)

    def _loss_state_file(self) -> str:
        return "loss_state.json" if self.args.world_size <= 1 else f"loss_state_{self.args.process_index}.json"

    def _save_checkpoint(self, model, trial):
        # Trainer keeps the running training loss in memory only, so a resumed run would report the mean loss of
        # its own steps: saved here, and restored by RestoreLoss. Every process writes its own, as Trainer's RNG
        # states. Then Trainer's files, and last the manifest (run_folder.write_manifest): only from then on does the
        # checkpoint count, so a kill or a full disk during the save leaves one that a resume skips.
        folder = os.path.join(self._get_output_dir(trial=trial), f"{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}")
        try:
            if self.run_settings is not None and self.is_world_process_zero():
                write_json_atomic(os.path.join(folder, SETTINGS), self.run_settings)
            write_json_atomic(
                os.path.join(folder, self._loss_state_file()),
                {
                    "global_step": self.state.global_step,
                    "total_loss": self._total_loss_scalar,
                    "pending_loss": self._tr_loss.item(),
                    "last_logged_step": self._globalstep_last_logged,
                },
            )
            super()._save_checkpoint(model, trial)
            if self.args.world_size > 1:
                self.accelerator.wait_for_everyone()  # every process's RNG and loss files are in the folder
            if self.is_world_process_zero() and os.path.isdir(folder):
                write_manifest(folder)
        except (OSError, RuntimeError) as e:
            if not is_disk_full(e):
                raise
            raise self._disk_full(folder, e) from None

    def _disk_full(self, folder: str, error: BaseException) -> DiskFull:
        """The checkpoint being saved when the disk filled up is removed (a resume would skip it anyway, and it
        holds the space a later save needs); the error says what it needed and what is kept."""
        shutil.rmtree(folder, ignore_errors=True)
        out = self.args.output_dir
        kept = last_complete_checkpoint(out)
        needed = checkpoint_bytes(self.model, optimizer=True)
        return DiskFull(
            disk_full_message(out, os.path.basename(folder), needed, error)
            + (f"Kept: {kept}, complete. " if kept else "No complete checkpoint is kept. ")
            + "Free some space (or keep fewer checkpoints with --save_total_limit N: the disk then holds N + 1 of "
            "them while the next is written; or choose an --output_dir on a disk with room), then run the same "
            "command: " + ("it resumes from there." if kept else "it starts over.")
        )

    def log(self, logs, start_time=None):
        if "train_loss" in logs and self._whole_run_loss:
            # Trainer divides by the steps of this train() call; the restored sum covers the run from step 0.
            logs["train_loss"] = self._total_loss_scalar / self.state.global_step
        super().log(logs, start_time)

    def save_state(self):
        if self.is_world_process_zero():
            text = json.dumps(dataclasses.asdict(self.state), indent=2, sort_keys=True) + "\n"
            write_text_atomic(os.path.join(self.args.output_dir, TRAINER_STATE), text)


class PredictionProgress(TrainerCallback):
    """Evaluating or predicting a large split without a progress bar: a log line every PROGRESS_SECONDS with the
    batches done, the rate and the time left (Trainer calls on_prediction_step after each batch)."""

    PROGRESS_SECONDS = 10.0

    def __init__(self):
        self.done = 0
        self.start = self.last = None

    def on_prediction_step(self, args, state, control, eval_dataloader=None, **kwargs):

        now = time.monotonic()
        if self.start is None:
            self.start = self.last = now
        self.done += 1
        total = len(eval_dataloader) if eval_dataloader is not None else 0
        if self.done >= total:  # the split's last batch: the next evaluation counts afresh
            self.done, self.start = 0, None
            return
        if now - self.last >= self.PROGRESS_SECONDS:
            self.last = now
            rate = self.done / max(now - self.start, 1e-6)
            logger.info(
                "predicting: batch %d of %d (%.0f%%), %.1f batches/s, about %.0f s left",
                self.done,
                total,
                100 * self.done / total,
                rate,
                (total - self.done) / rate,
            )
