"""Arguments: three dataclasses of our own plus TrainingArguments, filled from dataclass defaults < a JSON recipe < the
command line. A recipe is turned into the same tokens a user would type, so argparse checks its types exactly as it
checks flags, and "last one wins" gives the precedence for free."""

import json
import os
import re
import sys
from argparse import ArgumentTypeError
from dataclasses import dataclass, field, fields
from enum import Enum
from typing import NamedTuple

import torch
from transformers import HfArgumentParser, TrainingArguments
from transformers.hf_argparser import string_to_bool

from textcls.errors import UserError, suggest
from textcls.io import write_json_atomic
from textcls.model.packing import supported_names

PROBLEM_TYPES = ("single_label_classification", "multi_label_classification", "regression")


@dataclass
class ModelArguments:
    model_name_or_path: str | None = field(
        default=None,
        metadata={
            "help": "Hub id or local folder of the model to fine-tune, or a folder written by an earlier run "
            "(full model or LoRA adapter) to evaluate or predict with.",
            "aliases": ["--model"],
        },
    )
    tokenizer_name: str | None = field(
        default=None, metadata={"help": "Tokenizer id or folder, when it differs from the model's."}
    )
    revision: str = field(default="main", metadata={"help": "Hub branch, tag or commit of the model."})
    cache_dir: str | None = field(default=None, metadata={"help": "Where downloaded models and datasets are stored."})
    pooling: str = field(
        default="auto",
        metadata={
            "help": "The vector an encoder's head reads: 'cls' (the first token, the architecture's own); 'mean' or "
            "'max' over the real tokens (padding excluded), under the architecture's head; 'auto' (default): what the "
            "model folder says (a sentence-transformers 1_Pooling/config.json, or a folder trained here), else cls. "
            "Decoder LMs keep their last-token head.",
            "choices": ("auto", "cls", "mean", "max"),
        },
    )
    train_layers: str = field(
        default="all",
        metadata={
            "help": "Which weights train: 'all' (default); 'head': the classification head only (with the "
            "architecture's own pooler, e.g. BERT's; a linear probe of the frozen encoder); 'top:N': the head and "
            "the last N transformer layers. Frozen weights get no optimizer state."
        },
    )
    trust_remote_code: bool = field(
        default=False,
        metadata={
            "help": "Run Python code shipped inside a model or dataset repository. Off by default: it executes "
            "whatever the repository contains."
        },
    )
    attn_implementation: str | None = field(
        default=None,
        metadata={
            "help": "Attention kernel: 'sdpa', 'eager', 'flash_attention_2'... Default: transformers' choice "
            "(SDPA where the model supports it)."
        },
    )
    config_overrides: str | None = field(
        default=None,
        metadata={
            "help": "Change the model config before loading the weights, e.g. "
            "'hidden_dropout_prob=0,attention_probs_dropout_prob=0'."
        },
    )
    ignore_mismatched_sizes: bool = field(
        default=False,
        metadata={
            "help": "Re-initialise a classification head whose size differs from the number of labels (e.g. "
            "fine-tuning an MNLI model on a 2-class task)."
        },
    )


@dataclass
class DataArguments:
    task_name: str | None = field(
        default=None,
        metadata={
            "help": "GLUE task (cola, sst2, mrpc, stsb, qqp, mnli, qnli, rte, wnli): sets columns, labels and "
            "metric. Data comes from --data_dir (original GLUE TSVs), local files, or the hub (nyu-mll/glue)."
        },
    )
    data_dir: str | None = field(
        default=None,
        metadata={"help": "Folder of an original GLUE task (train.tsv, dev.tsv, test.tsv). Needs --task_name."},
    )
    dataset_name: str | None = field(default=None, metadata={"help": "Hub dataset id, e.g. 'imdb'."})
    dataset_config_name: str | None = field(default=None, metadata={"help": "Configuration of the hub dataset."})
    train_file: str | None = field(
        default=None,
        metadata={
            "help": "Training data: csv, tsv, json, jsonl or parquet; a file, or a glob of shards "
            "('data/train-*.parquet')."
        },
    )
    validation_file: str | None = field(default=None, metadata={"help": "Evaluation data, same formats."})
    test_file: str | None = field(default=None, metadata={"help": "Prediction data, same formats; labels optional."})
    text_column: str | None = field(
        default=None, metadata={"help": "Column holding the text. Auto-detected if unset."}
    )
    text_pair_column: str | None = field(
        default=None, metadata={"help": "Second text of a sentence pair, encoded as a pair. Auto-detected if unset."}
    )
    label_column: str | None = field(
        default=None, metadata={"help": "Column holding the label. Auto-detected if unset."}
    )
    id_column: str | None = field(
        default=None,
        metadata={"help": "Column used as the row id in predictions (default: 'idx' or 'id' if present)."},
    )
    # Filled from --label_names, which TrainingArguments owns (see ClassificationTrainingArguments.label_names).
    label_names: list[str] | None = field(default=None, init=False)
    problem_type: str | None = field(
        default=None,
        metadata={
            "help": "Inferred from the labels if unset (floats: regression, lists: multi-label).",
            "choices": PROBLEM_TYPES,
        },
    )
    max_seq_length: int | None = field(
        default=None,
        metadata={
            "help": "Texts are truncated to this many tokens (default: 128, or the model's maximum if smaller)."
        },
    )
    long_document_strategy: str | None = field(
        default=None,
        metadata={
            "help": "A text longer than max_seq_length: 'truncate' keeps its start; 'head_tail' keeps its first "
            "quarter of max_seq_length tokens and its last three quarters (Sun et al. 2019, 'How to Fine-Tune BERT "
            "for Text Classification'), single texts only; 'chunk' splits it into windows of max_seq_length tokens "
            "overlapping by --doc_stride, trains on every window with the text's label, and evaluates and predicts "
            "per text from its windows' logits (--chunk_aggregation); of a pair, the second text is split. Default: "
            "what the model folder was trained with (its config's long_document), else 'truncate'.",
            "choices": ("truncate", "head_tail", "chunk"),
        },
    )
    doc_stride: int | None = field(
        default=None,
        metadata={
            "help": "--long_document_strategy chunk: tokens each window shares with the one before it (the "
            "tokenizer's stride, as run_qa.py's --doc_stride). Default: a quarter of max_seq_length."
        },
    )
    chunk_aggregation: str | None = field(
        default=None,
        metadata={
            "help": "--long_document_strategy chunk: a text's logits are the 'mean' (default) or the 'max' of its "
            "windows' logits.",
            "choices": ("mean", "max"),
        },
    )
    pad_to_max_length: bool = field(
        default=False,
        metadata={
            "help": "Pad every row to max_seq_length and sample randomly, as the HF example does (slow; for "
            "comparison). Default: dynamic padding and length-grouped batches."
        },
    )
    padding_free: str = field(
        default="auto",
        metadata={
            "help": "Lay each batch's rows end to end so that all but attention runs on real tokens only (same "
            f"results as padded batches, less arithmetic). 'auto': where the model supports it ({supported_names()}, "
            "with SDPA attention), else padded, and padded for bf16 training on the CPU with length-grouped batches "
            "(measured faster there); 'true': required; 'false': padded batches.",
            "choices": ("auto", "true", "false"),
        },
    )
    tokenize: str = field(
        default="auto",
        metadata={
            "help": "When the training texts become token ids. 'upfront': the whole split before training starts "
            "(cached beside a file's datasets copy for the next run); 'per_batch': each batch as training reads it "
            "(the fast tokenizer takes a few milliseconds for 32 rows), so training starts without the wait (a "
            "new 1M-row file: 24 s to the first step instead of 195 s on 2 cores); length-grouped batches are "
            "then sorted by true lengths, each run of 50 batches tokenized for them when reached. "
            "'auto': per_batch for a training split of 100,000 rows or more on CPU, upfront otherwise.",
            "choices": ("auto", "upfront", "per_batch"),
        },
    )
    preprocessing_num_workers: int | None = field(
        default=None,
        metadata={
            "help": "Tokenize with this many processes (datasets' num_proc). Default: one process, whose fast "
            "tokenizer already uses every core."
        },
    )
    streaming: bool = field(
        default=False,
        metadata={
            "help": "Read the training rows as a stream (datasets' IterableDataset: --train_file, a glob of its "
            "shards, or --dataset_name) and tokenize them as training reads them, with no disk cache: for data "
            "bigger than the disk. Needs --max_steps. Evaluation and test splits are read as usual."
        },
    )
    max_train_samples: int | None = field(default=None, metadata={"help": "Use only the first N training rows."})
    max_eval_samples: int | None = field(default=None, metadata={"help": "Use only the first N evaluation rows."})
    max_predict_samples: int | None = field(default=None, metadata={"help": "Use only the first N prediction rows."})
    metric_name: str | None = field(
        default=None, metadata={"help": "Also compute this `evaluate` metric (needs the hub or a local copy)."}
    )
    multi_label_threshold: str | None = field(
        default=None,
        metadata={
            "help": "Multi-label: a label is predicted when its sigmoid reaches this value; or 'tune': after "
            "training, each label's threshold is the one that maximises its F1 on the validation split, used for "
            "the test predictions and saved in the model's config (multi_label_thresholds). Default: the thresholds "
            "the model folder saved, else 0.5."
        },
    )
    export: str = field(
        default="none",
        metadata={
            "help": "'onnx': write output_dir/onnx/: the model as an ONNX graph (token ids in, logits out: pooling, "
            "head and calibration temperature inside), its dynamic-int8 copy, the tokenizer and config, and "
            "export_report.json: each graph's largest logit difference from PyTorch, metrics, changed predictions, "
            "rows/s and size, on the validation split (else the training split).",
            "choices": ("none", "onnx"),
        },
    )
    export_int8_tolerance: float = field(
        default=1.0,
        metadata={
            "help": "--export onnx: points of the task's primary metric the int8 graph may lose against PyTorch "
            "before the run warns to deploy the fp32 graph instead."
        },
    )
    calibrate: str = field(
        default="none",
        metadata={
            "help": "'temperature': after training, fit one temperature (multi-label: one per label) that divides the "
            "logits, minimising the log loss on the validation split (Guo et al. 2017), save it in the model's config "
            "and predict with it: probabilities that mean what they say, the same decisions. The metrics show ECE "
            "and log loss before and after. A model folder calibrated earlier predicts with its temperature.",
            "choices": ("none", "temperature"),
        },
    )
    calibration_temperature: float | None = field(
        default=None,
        metadata={
            "help": "A temperature to divide the logits by, fitted elsewhere: saved in the trained model's config and "
            "predicted with, as --calibrate temperature does with the one it fits. --auto_select cross_validation "
            "sets it from the pick's out-of-fold predictions (so the recipe replays it); a single-label model only.",
        },
    )
    method: str = field(
        default="finetune",
        metadata={
            "help": "'finetune': train the model on the labelled rows (the default). 'setfit': first SetFit's "
            "contrastive phase (the setfit library: the encoder fine-tuned on same/different-class pairs of the "
            "training texts, into output_dir/setfit_body/), then the ordinary run from that encoder (add "
            "--train_layers head for SetFit's frozen body and trained head). For a few labelled rows per class; "
            "single texts, single- or multi-label. 'auto': SetFit with the head alone, or fine-tuning on a small-data "
            "schedule (lr 1e-4, 10% warm-up, at least 100 steps), or plain fine-tuning, chosen by cross-validating "
            "the first two on your rows where that applies (--auto_select), else by the training set's smallest "
            "class at the sizes the learning curve measured (results/small-data/); flags you set are kept; the log "
            "says what it chose and why.",
            "choices": ("finetune", "setfit", "auto"),
        },
    )
    auto_select: str | None = field(
        default=None,
        metadata={
            "help": "--method auto: how it picks. 'cross_validation' (the default where it applies: single texts, "
            "one label a row, 4 or more rows per class, within the sizes the learning curve measured, and no "
            "--cross_validate or --hp_trials of your own): small-data fine-tuning and SetFit are each "
            "cross-validated on your training rows (4 folds, stratified, in output_dir/auto_select/; the validation "
            "split is not used), and the size rule's pick trains the model unless the other's out-of-fold score is "
            "higher on 90% of paired bootstrap resamples of the rows; the pick comes calibrated on its out-of-fold "
            "predictions. It costs 8 more training runs on 3/4 of the rows (about 15x small-data fine-tuning's own "
            "run at 64 rows per class); the log and output_dir/auto_select/selection.json give the scores. 'size': "
            "by the training set's rows per class alone, at the learning curve's measured crossover (one run).",
            "choices": ("size", "cross_validation"),
        },
    )
    auto_pick: str | None = field(
        default=None,
        metadata={
            "help": "Set by --auto_select cross_validation for each candidate's cross-validation; not a flag to pass "
            "yourself.",
            "choices": ("finetune-small", "setfit"),
        },
    )
    setfit_epochs: int = field(default=1, metadata={"help": "--method setfit: epochs over the pairs (setfit's 1)."})
    setfit_learning_rate: float = field(
        default=2e-5, metadata={"help": "--method setfit: the encoder's learning rate on the pairs (setfit's 2e-5)."}
    )
    setfit_batch_size: int = field(default=16, metadata={"help": "--method setfit: pairs per step (setfit's 16)."})
    setfit_num_iterations: int | None = field(
        default=None,
        metadata={
            "help": "--method setfit: pairs drawn per training text (setfit's num_iterations); default: setfit's "
            "oversampling (every pair of texts), bounded at 20 pairs of each kind per text (the SetFit paper's) "
            "where that is fewer."
        },
    )
    cross_validate: int = field(
        default=0,
        metadata={
            "help": "K >= 2: K-fold cross-validation of the training split. Each fold is an ordinary run of this "
            "command in output_dir/folds/fold-k/ (resumable), trained on the other folds' rows and predicting its "
            "own held-out rows; then cv_results.json (each fold's metrics, mean, std, min, max), cv_report.md and "
            "oof_predictions.jsonl (every training row's out-of-fold prediction, input order). Folds: stratified "
            "by label (scikit-learn), plain K-fold for regression and multi-label; shuffled with --seed."
        },
    )
    cross_validate_refit: bool = field(
        default=False,
        metadata={
            "help": "--cross_validate: then train a model on all the training rows into output_dir/refit/ (it "
            "evaluates and predicts the test split). Without it each fold predicts the test split in its folder."
        },
    )
    find_label_issues: bool = field(
        default=False,
        metadata={
            "help": "From the out-of-fold probabilities of --cross_validate (this run's, or those already in "
            "output_dir: no training), rank the training rows whose given label is most likely wrong, with cleanlab "
            "(confident learning): label_issues.jsonl (rank, id, text, given, suggested, label quality, fold), "
            "label_issues_summary.json and the report's top 20 with each class's estimated share of wrong labels."
        },
    )
    exclude_rows: str | None = field(
        default=None,
        metadata={
            "help": "A file of training row ids to leave out (a JSON list, one id per line, or JSON lines with an "
            "'id', e.g. a reviewed label_issues.jsonl). Ids are the id column's values, else 0-based row positions "
            "in the training file."
        },
    )
    cv_fold: int | None = field(
        default=None,
        metadata={"help": "Set by --cross_validate for each fold's run (0-based); not a flag to pass yourself."},
    )
    overwrite_output_dir: bool = field(
        default=False,
        metadata={
            "help": "Train into a non-empty output_dir, ignoring its checkpoints. Without it, a non-empty "
            "output_dir is refused, or resumed from its last checkpoint."
        },
    )
    plots: bool = field(
        default=True,
        metadata={
            "help": "Draw each evaluated split's pictures (confusion matrix, ROC and precision-recall curves, "
            "reliability diagram; regression: predicted vs gold) and the training curves into output_dir/plots/, "
            "linked from <prefix>_report.md. false: the report without pictures."
        },
    )
    results_file: str | None = field(
        default=None,
        metadata={
            "help": "Record this run (metrics, command, recipe hash, git SHA, versions, hardware, wall time, peak "
            "memory, curves) in this results file, replacing an earlier run of the same seed; median and std are "
            "recomputed. Convention: results/<benchmark>/<task>/<recipe>.json (scripts/run_seeds.py sets it)."
        },
    )


@dataclass
class LoraArguments:
    use_lora: bool = field(default=False, metadata={"help": "Train a LoRA adapter (peft) instead of all weights."})
    lora_r: int = field(default=8, metadata={"help": "LoRA rank."})
    lora_alpha: int = field(default=16, metadata={"help": "LoRA scaling numerator (scale = alpha / r)."})
    lora_dropout: float = field(default=0.1, metadata={"help": "Dropout on the LoRA input."})
    lora_target_modules: list[str] | None = field(
        default=None,
        metadata={
            "help": "Module names to adapt (default: the architecture's attention projections, e.g. "
            "query/value for BERT, q_proj/v_proj for Llama, c_attn for GPT-2)."
        },
    )
    lora_modules_to_save: list[str] | None = field(
        default=None,
        metadata={
            "help": "Modules trained and saved in full (default: the classification head, found automatically)."
        },
    )
    merge_lora: bool = field(
        default=False, metadata={"help": "Also save the adapter merged into the base model (loads without peft)."}
    )
    lora_init_from: str | None = field(
        default=None,
        metadata={
            "help": "Start the new LoRA adapter (and the classification head, where its size fits) from the weights "
            "of this adapter folder, as the LoRA paper starts MRPC, RTE and STS-B from its MNLI adapter. Its rank "
            "and target modules must be this run's."
        },
    )


@dataclass
class ClassificationTrainingArguments(TrainingArguments):
    # Length-grouped batches cut padding several-fold at the same accuracy: the fast path is the default.
    train_sampling_strategy: str = field(
        default="group_by_length",
        metadata={
            "help": "'group_by_length' (default here: batches of similar length, little padding), 'random', "
            "'sequential' or 'batch_rebalance'."
        },
    )
    # Resume needs only the newest checkpoint; Trainer keeps every one by default: 12 of 260 MB (weights + AdamW
    # state) for 3 epochs of SST-2 at batch 32 with all-MiniLM-L6-v2, 16 GB with bert-base, beside the saved model.
    # With --load_best_model_at_end transformers keeps the best one too, and at the end of training only the best.
    save_total_limit: int | None = field(
        default=1,
        metadata={
            "help": "Checkpoints kept in output_dir, the newest (default 1 here: what a resume needs; with "
            "--load_best_model_at_end the best too, and only the best once training ends). N keeps the last N."
        },
    )
    # Evaluation runs sorted by length (textcls/train/trainer.py), so large batches cost little padding; Trainer's 8
    # pays per-batch overhead 8 times as often for the same predictions.
    per_device_eval_batch_size: int = field(
        default=64, metadata={"help": "Batch size per device for evaluation and prediction (default 64 here)."}
    )
    # With True, stock transformers 5 multiplies a classification head's loss by the world size under DDP. Our loss
    # (textcls/train/trainer.py) divides by the label count of the whole step, gathered across processes when True,
    # so both values train the same here; False is kept as the default that needs no gather.
    average_tokens_across_devices: bool = field(
        default=False,
        metadata={"help": "Gather the label count across processes (default false here; both train the same)."},
    )
    # transformers turns it on for every model not using gradient checkpointing, which costs DDP an extra graph
    # traversal per step; classification models use all their trainable parameters.
    ddp_find_unused_parameters: bool | None = field(
        default=False,
        metadata={"help": "Pass true if DDP reports parameters that received no gradient (default false here)."},
    )
    class_weights: str | None = field(
        default=None,
        metadata={
            "help": "Weigh the training loss by class: 'balanced' (rows / (classes x the class's rows), "
            "scikit-learn's rule; multi-label: each label's negatives / positives, BCE's pos_weight) or a JSON map "
            "of class name to weight, e.g. '{\"spam\": 5}' (classes not named: 1). The evaluation loss stays "
            "unweighted. Recorded in the saved config."
        },
    )
    early_stopping_patience: int | None = field(
        default=None,
        metadata={
            "help": "Stop training after this many evaluations in a row without a better --metric_for_best_model "
            "(transformers' EarlyStoppingCallback), then load the best checkpoint (--load_best_model_at_end is "
            "turned on). Needs --eval_strategy and a --save_strategy that matches it."
        },
    )
    hp_trials: int = field(
        default=0,
        metadata={
            "help": "Search hyperparameters instead of training once: this many optuna trials over --hp_space, each "
            "a training run scored on the validation split; writes hp_trials.json and best_recipe.json. Rerunning "
            "continues the search (its study: output_dir/hp_search.db, or --hp_storage)."
        },
    )
    hp_storage: str | None = field(
        default=None,
        metadata={
            "help": "Where the search's optuna study lives (default output_dir/hp_search.db): a file (.db/.sqlite: "
            "SQLite; any other name: optuna's journal, a JSON-lines text file) or an optuna storage URL "
            "(sqlite:///..., postgresql://...). Kept off the machine, the same command continues the search on "
            "another one. One search process at a time per study."
        },
    )
    hp_space: str | None = field(
        default=None,
        metadata={
            "help": 'The search space, JSON (a recipe can give it as an object): training flag -> {"type": '
            '"float"|"int"|"categorical", "low", "high", "log", "step" | "choices"}.'
        },
    )
    hp_seed: int | None = field(default=None, metadata={"help": "Seed of the search's sampler (default: --seed)."})
    hp_pruner: str = field(
        default="median",
        metadata={
            "help": "'median': stop a trial whose evaluation is below the median of earlier trials at that step "
            "(needs --eval_strategy); 'none'.",
            "choices": ("median", "none"),
        },
    )
    layerwise_lr_decay: float | None = field(
        default=None,
        metadata={
            "help": "Layer-wise learning-rate decay (e.g. 0.9; Howard & Ruder 2018, Sun et al. 2019): the head keeps "
            "--learning_rate, the top transformer layer gets it times the factor, each layer below once more, the "
            "embeddings lowest. Default: one learning rate for all."
        },
    )
    early_stopping_threshold: float = field(
        default=0.0,
        metadata={"help": "With --early_stopping_patience: how much better an evaluation must be to count as better."},
    )
    # None: on with --early_stopping_patience (which keeps the best model), else off, as in transformers.
    load_best_model_at_end: bool | None = field(
        default=None,
        metadata={
            "help": "Load the best checkpoint (by --metric_for_best_model) when training ends (default: on with "
            "--early_stopping_patience, else off)."
        },
    )
    # None: decided per run (textcls.train.distributed.resolve_bf16), where it was measured to pay.
    bf16: bool | None = field(
        default=None,
        metadata={
            "help": "bf16 mixed precision (torch autocast over fp32 weights). Default: on for a run on a CPU with AMX "
            "(amx_bf16), where it trained faster than fp32 at the same accuracy (results/README.md, 'CPU bf16 "
            "against fp32'): its training steps, evaluation stays fp32; off elsewhere (GPUs: pass it). false: fp32."
        },
    )
    # Trainer's own label_names (the input keys holding labels) is always 'labels' here, so the flag is given the
    # meaning users of a classification script expect: the class names, in output-id order.
    label_names: list[str] | None = field(
        default=None,
        metadata={
            "help": "Class names in the order of the model's output ids (default: as the data names them, "
            "else sorted). Every label in the data must be one of them."
        },
    )

    def __post_init__(self):
        # With no GPU, select the CPU explicitly: only then does a multi-process launch form a (gloo) process group;
        # otherwise `accelerate launch --multi_gpu` starts independent duplicate runs.
        if not self.use_cpu and not torch.accelerator.is_available():
            self.use_cpu = True
        self._check_early_stopping()
        chosen, greater = self.metric_for_best_model, self.greater_is_better
        super().__post_init__()
        plateau = str(getattr(self.lr_scheduler_type, "value", self.lr_scheduler_type)) in (
            "reduce_lr_on_plateau",
            "greedy",
        )
        if chosen is None and self.load_best_model_at_end and not plateau:
            # transformers picks 'loss' for --load_best_model_at_end; here, as for --save_strategy best, the best
            # checkpoint is the task's primary metric's (accuracy, F1, Matthews...): build_trainer chooses it.
            self.metric_for_best_model, self.greater_is_better = None, greater

    def _check_early_stopping(self) -> None:
        patience = self.early_stopping_patience
        if patience is None:
            self.load_best_model_at_end = bool(self.load_best_model_at_end)
            return
        if patience < 1:
            raise UserError(f"--early_stopping_patience {patience}: pass 1 or more evaluations.")
        if str(getattr(self.eval_strategy, "value", self.eval_strategy)) == "no":
            raise UserError(
                "--early_stopping_patience counts evaluations, but --eval_strategy is 'no'. Pass --eval_strategy "
                "epoch (or steps with --eval_steps N), and --save_strategy the same, with a --validation_file."
            )
        if self.load_best_model_at_end is False:
            raise UserError(
                "--early_stopping_patience stops after the best evaluation and keeps the best model: it cannot run "
                "with --load_best_model_at_end false. Drop that flag."
            )
        self.load_best_model_at_end = True


DATACLASSES = (ModelArguments, DataArguments, LoraArguments, ClassificationTrainingArguments)


class _Parser(HfArgumentParser):
    """argparse prints a usage line listing ~150 flags and exits; we raise one readable error instead."""

    def error(self, message):
        raise UserError(f"{message}. Run with --help to list the flags.")


# transformers 4 flags that tutorials and older commands still use, with what replaces them (a closest-name suggestion
# would mislead for most: warmup_ratio -> warmup_steps needs a fraction, logging_dir -> logging_first_step).
REMOVED_IN_TRANSFORMERS_5 = {
    "group_by_length": "Use --train_sampling_strategy group_by_length (the default here).",
    "evaluation_strategy": "Use --eval_strategy.",
    "warmup_ratio": "Use --warmup_steps 0.1: a fraction below 1 is a share of the training steps.",
    "no_cuda": "Use --use_cpu.",
    "per_gpu_train_batch_size": "Use --per_device_train_batch_size.",
    "per_gpu_eval_batch_size": "Use --per_device_eval_batch_size.",
    "logging_dir": "Set the TENSORBOARD_LOGGING_DIR environment variable instead.",
    "save_safetensors": "Drop it: weights are always saved as safetensors.",
    "use_mps_device": "Drop it: an available MPS device is used (--use_cpu to avoid it).",
}

# TrainingArguments fields typed `str | bool`, which HfArgumentParser parses as a bool only (so it refuses the words).
TEXT_OR_BOOL = {"include_num_input_tokens_seen": ("all", "non_padding", "no")}


def _text_or_bool(words: tuple[str, ...]):
    def parse(value: str):
        lowered = value.lower()
        if lowered in words:
            return lowered
        try:
            return string_to_bool(value)
        except ArgumentTypeError:
            raise ArgumentTypeError(f"'{value}' is not one of {', '.join(words)}, true, false") from None

    return parse


def build_parser() -> HfArgumentParser:
    parser = _Parser(DATACLASSES, allow_abbrev=False)

    for action in parser._actions:
        # argparse %-formats each help text when --help prints it: a plain "90%" would crash it ("%o format: an
        # integer is required"), so a lone % is doubled; "%%" (transformers' texts) and "%(default)s" stay.
        if action.help:
            action.help = re.sub(r"%%|%\(|%", lambda m: m[0] if len(m[0]) == 2 else "%%", action.help)
        if action.dest in TEXT_OR_BOOL:
            action.type = _text_or_bool(TEXT_OR_BOOL[action.dest])
        elif action.type is string_to_bool and action.nargs is None:
            # A `bool | None` flag (None: decided later, e.g. --load_best_model_at_end): bare, it means true, as a
            # plain bool flag does.
            action.nargs, action.const = "?", True
    return parser


def _dests(parser) -> dict[str, object]:
    """Flag destination -> argparse action, for every flag (aliases and --no_x map to their destination)."""
    return {a.dest: a for a in parser._actions if a.dest != "help"}


def load_recipe(path: str) -> dict:
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        raise UserError(f"cannot read recipe {path}: {e.strerror}. Check the path.") from None
    try:
        recipe = json.loads(text)
    except json.JSONDecodeError as e:
        raise UserError(f"recipe {path} is not valid JSON: {e.msg} at line {e.lineno}, column {e.colno}.") from None
    if not isinstance(recipe, dict):
        raise UserError(
            f"recipe {path} must hold one JSON object of flag names to values, not {type(recipe).__name__}."
        )
    return recipe


def recipe_to_tokens(recipe: dict, parser, source: str) -> list[str]:
    """{"learning_rate": 3e-4, "do_train": true, "lora_target_modules": ["query", "value"]} -> the same flags a user
    would type. Keys starting with '_' are comments."""
    dests = _dests(parser)
    tokens = []
    for key, value in recipe.items():
        if key.startswith("_"):
            continue
        if key not in dests:
            raise UserError(f"unknown key '{key}' in {source}.{suggest(key, dests)}")
        if value is None:
            continue
        if isinstance(value, bool):
            value = str(value).lower()
        if isinstance(value, list):
            if not value:
                continue
            tokens += [f"--{key}", *(json.dumps(v) if isinstance(v, dict) else str(v) for v in value)]
        else:
            tokens += [f"--{key}", json.dumps(value) if isinstance(value, dict) else str(value)]
    return tokens


def _plain(value):
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


class RunArgs(NamedTuple):
    """The parsed flags: one dataclass per group, and `resolved`, every flag's final value, ready to be written as a
    recipe that replays the run."""

    model: ModelArguments
    data: DataArguments
    lora: LoraArguments
    training: ClassificationTrainingArguments
    resolved: dict


def parse_args(argv: list[str] | None = None) -> RunArgs:
    """defaults < recipe (a first argument ending in .json) < command line."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    recipe_tokens = []
    if argv and not argv[0].startswith("-") and argv[0].endswith(".json"):
        path = argv.pop(0)
        recipe_tokens = recipe_to_tokens(load_recipe(path), parser, f"recipe {path}")
        # Parse the recipe alone first so a bad value is blamed on the recipe, not on the command line.
        try:
            parser.parse_known_args(recipe_tokens)
        except UserError as e:
            raise UserError(f"recipe {path}: {e}") from None

    namespace, unknown = parser.parse_known_args(recipe_tokens + argv)
    if unknown:
        flags = [u for u in unknown if u.startswith("-")] or unknown
        name = flags[0].lstrip("-").split("=")[0]
        if not flags[0].startswith("-"):
            raise UserError(
                f"unexpected argument '{flags[0]}'. A recipe must come first and end in .json; flags start with --."
            )
        if name in REMOVED_IN_TRANSFORMERS_5:
            raise UserError(f"unknown flag '{flags[0]}': transformers 5 removed it. {REMOVED_IN_TRANSFORMERS_5[name]}")
        raise UserError(f"unknown flag '{flags[0]}'.{suggest(name, _dests(parser))}")

    values = vars(namespace)
    resolved = {k: _plain(v) for k, v in values.items()}
    if values.get("disable_tqdm") is None and not sys.stderr.isatty():
        # In a log file every progress-bar update is another line; Trainer then prints one line per logging step.
        # Left unset in the recipe: a replay decides again by where its output goes.
        values["disable_tqdm"] = True
    outputs = []
    for dtype in DATACLASSES:
        kwargs = {f.name: values[f.name] for f in fields(dtype) if f.init}
        try:
            outputs.append(dtype(**kwargs))
        except (ValueError, TypeError) as e:
            if isinstance(e, UserError):
                raise
            raise UserError(f"invalid arguments: {e}") from None
    model_args, data_args, lora_args, training_args = outputs
    data_args.label_names, training_args.label_names = training_args.label_names, None
    return RunArgs(model_args, data_args, lora_args, training_args, resolved)


def given_flags(argv: list[str]) -> frozenset:
    """The flags a command line (and its recipe) set, by destination (--no_x counts as x): the others are defaults.
    argv as parse_args takes it, already parsed by it (so valid)."""
    parser, tokens = build_parser(), list(argv)
    if tokens and not tokens[0].startswith("-") and tokens[0].endswith(".json"):
        path = tokens.pop(0)
        tokens = recipe_to_tokens(load_recipe(path), parser, f"recipe {path}") + tokens
    actions = parser._option_string_actions  # the parser takes no abbreviations: a flag is its exact spelling
    return frozenset(actions[t.split("=")[0]].dest for t in tokens if t.split("=")[0] in actions)


def write_recipe(resolved: dict, output_dir: str, name: str = "recipe.json") -> str:
    """The resolved flags, replayable with `python run_classification.py OUTPUT_DIR/recipe.json`."""

    path = os.path.join(output_dir, name)
    write_json_atomic(path, {k: v for k, v in resolved.items() if v is not None})
    return path
