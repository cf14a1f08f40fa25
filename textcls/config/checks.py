"""Every up-front check of the flags, in the order a user meets them: each raises one UserError that names the fix,
before the step that would otherwise fail on it, and before anything is written.

    check_flags                   the flags alone (nothing loaded yet)
    resolve_long_documents        once the model's config and tokenizer are known: the window and how texts fit it
    check_label_flags             once the labels are known: and the multi-label threshold
    check_optimizer_and_scheduler once the model is built (Trainer builds both only when training starts)
    check_best_metric             once the metrics the evaluation reports are known
"""

import dataclasses
import logging
import os

import torch
from transformers import Trainer
from transformers.optimization import get_scheduler
from transformers.utils.import_utils import is_liger_kernel_available

from textcls.data.labels import class_weights
from textcls.data.load import split_suffix
from textcls.errors import UserError
from textcls.evaluation.metrics import metric_names
from textcls.export.onnx import check_onnx_flags, onnx_file
from textcls.train.distributed import check_launch, check_threads
from textcls.train.search import parse_space

logger = logging.getLogger(__name__)

# evaluate's own metric repositories; a metric from any other is a script by whoever owns that repository.
EVALUATE_ORGS = ("evaluate-metric", "evaluate-measurement", "evaluate-comparison")


def check_flags(args) -> None:
    """What the flags alone say is wrong, before a file is read or a model loaded."""
    training = args.training
    if not (training.do_train or training.do_eval or training.do_predict or args.data.find_label_issues):
        raise UserError("nothing to do: pass --do_train, --do_eval and/or --do_predict.")
    check_cross_validation_flags(args)
    check_auto_select_flags(args.data)
    check_training_flags(training)
    check_numbers(args)
    check_onnx_flags(args)  # an exported ONNX folder as --model: evaluate and predict only
    check_launch(training)
    check_threads(training)
    if args.model.model_name_or_path is None:
        raise UserError("--model_name_or_path (or --model) is required: a hub id or a local model folder.")
    if args.model.trust_remote_code:
        logger.warning("trust_remote_code is ON: code from the model/dataset repository will run on this machine.")
    if args.lora.merge_lora and not (args.lora.use_lora or _is_adapter(args.model.model_name_or_path)):
        raise UserError("--merge_lora merges a LoRA adapter: pass --use_lora (or an adapter folder as --model).")
    if args.data.metric_name:
        check_metric_source(args.data.metric_name, args.model.trust_remote_code)
    for flag in ("max_train_samples", "max_eval_samples", "max_predict_samples"):
        cap = getattr(args.data, flag)
        if cap is not None and cap < 1:
            raise UserError(f"--{flag} {cap} leaves no rows. Pass 1 or more, or leave it out to use every row.")
    if args.data.streaming:
        check_streaming_flags(args.data, training)
    check_layer_flags(args)
    if args.lora.use_lora and training.do_train and training.learning_rate == 5e-5:
        # measured (issue 16): a 1,500-row sentiment set, LoRA 60.3% at 5e-4 and 74.3% at 2e-3; 5e-5 barely moves it
        logger.warning(
            "--use_lora at Trainer's default --learning_rate 5e-5 barely trains the adapters: LoRA wants about 10x "
            "the full fine-tuning rate (the LoRA paper: 4e-4 to 5e-4 on GLUE with roberta-base). Pass "
            "--learning_rate, e.g. 5e-4."
        )
    if training.hp_trials or training.hp_space:
        check_search_flags(training)


def check_auto_select_flags(data) -> None:
    """--auto_select cross_validation: a way for --method auto to pick; --auto_pick is its own, for its candidates."""
    if data.auto_pick and (data.method != "auto" or not data.cross_validate):
        raise UserError("--auto_pick is set by --auto_select cross_validation for its candidates' runs: drop it.")
    if data.auto_select == "cross_validation" and data.method != "auto":
        raise UserError(
            f"--auto_select cross_validation is how --method auto picks; --method {data.method} is already a "
            "choice. Pass --method auto, or drop --auto_select."
        )
    if data.auto_select == "cross_validation" and data.cross_validate and not data.auto_pick:
        raise UserError(
            "--auto_select cross_validation cross-validates the methods to pick one; --cross_validate K "
            "cross-validates one method. Pick first (drop --cross_validate), then cross-validate the recipe.json it "
            "writes."
        )


def check_cross_validation_flags(args) -> None:
    """--cross_validate, --cross_validate_refit, --find_label_issues, --exclude_rows: what they need of the other
    flags (the data's own checks, e.g. K above the smallest class, run in data.folds once it is read)."""
    data, training = args.data, args.training
    k = data.cross_validate
    if k == 1 or k < 0:
        raise UserError(f"--cross_validate {k}: cross-validation needs at least 2 folds. Pass --cross_validate 5.")
    if data.exclude_rows and not os.path.isfile(data.exclude_rows):
        raise UserError(f"--exclude_rows {data.exclude_rows}: no such file. Pass a file of training row ids.")
    if data.exclude_rows and not training.do_train and data.cv_fold is None:
        raise UserError("--exclude_rows leaves training rows out: add --do_train.")
    if data.cv_fold is not None and not 0 <= data.cv_fold < max(k, 1):
        raise UserError("--cv_fold is set by --cross_validate for each fold's run: drop it.")
    if not k:
        if data.cross_validate_refit:
            raise UserError("--cross_validate_refit refits after a cross-validation: add --cross_validate 5.")
        if data.find_label_issues and training.do_train:
            raise UserError(
                "--find_label_issues ranks out-of-fold probabilities, which --cross_validate K produces: add "
                "--cross_validate 5 (or drop --do_train to re-rank those of an earlier cross-validation in "
                "output_dir)."
            )
        return
    if data.cv_fold is None and not training.do_train:
        raise UserError(f"--cross_validate {k} trains {k} models: add --do_train.")
    if training.hp_trials:
        raise UserError("--cross_validate with --hp_trials is not supported: search first, then cross-validate.")
    if data.streaming:
        raise UserError("--cross_validate reads the training split whole: drop --streaming.")
    if data.results_file:
        raise UserError(
            "--results_file records one run; a cross-validation is K of them (cv_results.json has them all). Drop "
            "it, or record a single run."
        )


def check_search_flags(training) -> None:
    """--hp_trials and --hp_space come together, with training and an evaluation to score; the space is checked
    whole (textcls.train.search.parse_space) before any data is read."""

    if not training.hp_trials or not training.hp_space:
        missing = "--hp_space" if training.hp_trials else "--hp_trials N"
        raise UserError(f"a hyperparameter search needs both --hp_trials and --hp_space: pass {missing}.")
    if training.hp_trials < 1:
        raise UserError(f"--hp_trials {training.hp_trials}: pass 1 or more.")
    if not (training.do_train and training.do_eval):
        raise UserError(
            "a hyperparameter search trains and scores each trial on the validation split: pass --do_train and "
            "--do_eval."
        )
    parse_space(training.hp_space, training)


def check_layer_flags(args) -> None:
    """--train_layers' form (the layer count is checked against the model when it is built) and
    --layerwise_lr_decay's range."""
    spec = args.model.train_layers
    top = spec.removeprefix("top:")
    if spec not in ("all", "head") and not (spec.startswith("top:") and top.isdigit() and int(top) >= 1):
        raise UserError(f"--train_layers {spec}: pass 'all', 'head', or 'top:N' with N 1 or more (e.g. top:2).")
    if spec != "all" and (args.lora.use_lora or _is_adapter(args.model.model_name_or_path)):
        raise UserError(
            f"--train_layers {spec} freezes layers of a full fine-tuning; LoRA already freezes every base weight "
            "and trains its adapters and the head. Drop one of the two (for LoRA on the top layers only, name their "
            "modules in --lora_target_modules)."
        )
    if args.lora.lora_init_from and not args.lora.use_lora:
        raise UserError("--lora_init_from starts a new LoRA adapter from another one: pass --use_lora too.")
    if args.model.pooling in ("mean", "max") and (args.lora.use_lora or _is_adapter(args.model.model_name_or_path)):
        raise UserError(
            f"--pooling {args.model.pooling} with LoRA is not supported yet (the saved adapter folder would not "
            "carry the pooling). Use --pooling cls with --use_lora, or fine-tune in full."
        )
    decay = args.training.layerwise_lr_decay
    if decay is not None and not 0 < decay <= 1:
        raise UserError(f"--layerwise_lr_decay {decay}: pass a factor above 0 and at most 1 (e.g. 0.9).")


def check_streaming_flags(data_args, training_args) -> None:
    """A stream has no length and no index: what needs either cannot be asked of it."""
    if not training_args.do_train:
        raise UserError(
            "--streaming streams the training rows: it needs --do_train (evaluation splits are read whole)."
        )
    if data_args.data_dir or not (data_args.train_file or data_args.dataset_name):
        raise UserError(
            "--streaming reads --train_file (a file, or a glob of its shards) or --dataset_name. An original GLUE "
            "folder is small enough to read whole: drop --streaming."
        )
    if training_args.max_steps <= 0:
        raise UserError(
            "--streaming needs --max_steps N: a stream's length is unknown until it has been read, so epochs cannot "
            "set the schedule. One pass over R rows is R / (per_device_train_batch_size x processes x "
            "gradient_accumulation_steps) steps; a stream that ends sooner starts again, reshuffled."
        )
    if training_args.train_sampling_strategy == "batch_rebalance":
        raise UserError(
            "--train_sampling_strategy batch_rebalance needs every row's length up front, which a stream does not "
            "have. Use group_by_length (within a buffer of rows), random or sequential."
        )


def _is_adapter(path: str) -> bool:
    return os.path.isfile(os.path.join(path, "adapter_config.json"))


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


def _value(x):
    return getattr(x, "value", x)


# (flag, the test a good value passes, what to pass instead): values Trainer, torch or numpy would crash on mid-run or
# silently accept (--save_steps 0 never saves; --weight_decay -1 pushes weights away from zero).
NUMBER_RULES = (
    ("max_seq_length", lambda v: v is None or v >= 1, "pass 1 or more tokens (default: 128, or the model's maximum)"),
    ("gradient_accumulation_steps", lambda v: v >= 1, "pass 1 or more (1: no accumulation)"),
    ("seed", lambda v: 0 <= v < 2**32, "pass a whole number from 0 to 4294967295"),
    ("data_seed", lambda v: v is None or 0 <= v < 2**32, "pass a whole number from 0 to 4294967295"),
    ("label_smoothing_factor", lambda v: 0 <= v < 1, "pass a value from 0 (none) up to, not including, 1 (e.g. 0.1)"),
    ("dataloader_num_workers", lambda v: v >= 0, "pass 0 (load in the main process) or more worker processes"),
    ("weight_decay", lambda v: v >= 0, "pass 0 or more (e.g. 0.01)"),
    ("max_grad_norm", lambda v: v is None or v >= 0, "pass 0 (no clipping) or more (default 1.0)"),
    ("warmup_steps", lambda v: v >= 0, "pass 0 or more steps (below 1: a share of the training steps)"),
    ("adam_beta1", lambda v: 0 <= v < 1, "pass a value from 0 up to, not including, 1 (default 0.9)"),
    ("adam_beta2", lambda v: 0 <= v < 1, "pass a value from 0 up to, not including, 1 (default 0.999)"),
    ("adam_epsilon", lambda v: v >= 0, "pass a small positive value (default 1e-8)"),
    ("save_total_limit", lambda v: v is None or v >= 1, "pass 1 or more (default 1: the newest, for resume)"),
    ("logging_steps", lambda v: v > 0, "pass 1 or more steps (below 1: a share of the training steps)"),
    ("eval_accumulation_steps", lambda v: v is None or v >= 1, "pass 1 or more, or leave it out"),
    ("early_stopping_threshold", lambda v: v is None or v >= 0, "pass 0 or more"),
)


def check_numbers(args) -> None:
    """Each number flag in its range, and the step counts that their strategy reads (--save_steps with
    --save_strategy steps...): one error naming the flag and a good value, before anything is written."""
    training = args.training
    for flag, ok, fix in NUMBER_RULES:
        group = args.data if hasattr(args.data, flag) else training
        value = getattr(group, flag, None)
        if not ok(value):
            raise UserError(f"--{flag} {value}: {fix}.")
    for what in ("save", "eval"):
        strategy = _value(getattr(training, f"{what}_strategy"))
        steps = args.resolved.get(f"{what}_steps")  # as given: Trainer turns --eval_steps 0 into --logging_steps
        if strategy == "steps" and steps is not None and steps <= 0:
            raise UserError(
                f"--{what}_steps {steps} with --{what}_strategy steps would never {what}: pass 1 or more steps "
                f"(below 1: a share of the training steps), or --{what}_strategy epoch."
            )
    if training.output_dir is not None and not str(training.output_dir).strip():
        raise UserError("--output_dir is empty: pass the folder the run writes to.")
    if training.output_dir and os.path.isfile(training.output_dir):
        raise UserError(f"--output_dir {training.output_dir} is a file, not a folder. Choose another --output_dir.")


def check_metric_source(name: str, trust_remote_code: bool) -> None:
    """evaluate.load runs the metric's Python script on this machine: a community one needs --trust_remote_code."""
    if trust_remote_code or "/" not in name or os.path.exists(name) or name.split("/")[0] in EVALUATE_ORGS:
        return
    raise UserError(
        f"--metric_name {name} is a community metric: loading it runs the Python code of that hub repository. "
        "Read it, then pass --trust_remote_code to allow it, or use one of evaluate's own metrics (e.g. accuracy)."
    )


def check_max_seq_length(max_seq_length: int | None, config, tokenizer) -> int:
    """The truncation length: unless given, the window a model folder was trained with --long_document_strategy
    head_tail or chunk (its config's long_document), else 128 (or the model's maximum if smaller); above the maximum
    is an error."""
    model_max = min(getattr(config, "max_position_embeddings", None) or 10**9, tokenizer.model_max_length)
    trained = (getattr(config, "long_document", None) or {}).get("max_seq_length")
    if max_seq_length is None and trained:
        logger.info("--max_seq_length %d, the window the model was trained with (its config's long_document)", trained)
        max_seq_length = trained
    if max_seq_length is None:
        return min(128, model_max)
    if max_seq_length > model_max:
        raise UserError(
            f"--max_seq_length {max_seq_length} is above this model's maximum of {model_max} "
            f"tokens. Pass --max_seq_length {model_max} or less."
        )
    return max_seq_length


@dataclasses.dataclass(frozen=True)
class LongDocuments:
    """How a text is cut to the model's window, decided once (resolve_long_documents) and passed on to tokenizing, the
    Trainer (saved in the model's config) and evaluation (joining a text's windows)."""

    max_length: int  # --max_seq_length
    strategy: str = "truncate"  # --long_document_strategy: truncate | head_tail | chunk
    stride: int | None = None  # --doc_stride (chunk only): tokens a window shares with the one before it
    aggregation: str | None = None  # --chunk_aggregation (chunk only): mean | max of a text's windows' logits


def resolve_long_documents(data_args, config, tokenizer, columns) -> LongDocuments:
    """--max_seq_length, --long_document_strategy and its settings, resolved and checked before any tokenizing. Unset,
    the strategy is what the model folder was trained with (its config's long_document, written by build_trainer), so
    that a folder trained on windows predicts on windows; else 'truncate'. A window must hold more new tokens than it
    shares with the one before it (the tokenizer panics otherwise), and the pair's first text, which every window
    repeats, is checked row by row as it is tokenized."""
    length = check_max_seq_length(data_args.max_seq_length, config, tokenizer)
    saved = getattr(config, "long_document", None) or {}
    strategy, stride, aggregation = data_args.long_document_strategy, data_args.doc_stride, data_args.chunk_aggregation
    if strategy is None:
        strategy = saved.get("strategy", "truncate")
        if saved.get("strategy") not in (None, "truncate"):
            logger.info("long documents: %s, as the model was trained (its config's long_document)", saved)
        if strategy == "chunk":
            stride = saved.get("doc_stride") if stride is None else stride
            aggregation = aggregation or saved.get("aggregation")
    if strategy == "head_tail" and (columns.text_pair or columns.token_ids or data_args.pad_to_max_length):
        what = "token ids" if columns.token_ids else "text pairs" if columns.text_pair else "--pad_to_max_length"
        raise UserError(
            f"--long_document_strategy head_tail cuts the middle out of single texts; it does not work with {what}. "
            "Drop one of the two."
        )
    if strategy != "chunk":
        given = [f for f in ("doc_stride", "chunk_aggregation") if getattr(data_args, f) is not None]
        if given:
            raise UserError(
                f"--{given[0]} is a setting of --long_document_strategy chunk, and this run's strategy is {strategy}. "
                f"Pass --long_document_strategy chunk, or drop --{given[0]}."
            )
        return LongDocuments(length, strategy)
    if columns.token_ids or data_args.pad_to_max_length:
        what = "token ids given in the data" if columns.token_ids else "--pad_to_max_length"
        raise UserError(f"--long_document_strategy chunk tokenizes texts into windows; it does not work with {what}.")
    if not getattr(tokenizer, "is_fast", False):
        raise UserError(
            "--long_document_strategy chunk needs a fast (Rust) tokenizer, which splits texts into windows; this "
            f"model's is {type(tokenizer).__name__}. Use truncate or head_tail."
        )
    room = length - tokenizer.num_special_tokens_to_add(pair=columns.text_pair is not None)
    stride = length // 4 if stride is None else stride
    if not 0 <= stride < room:
        raise UserError(
            f"--doc_stride {stride}: a window of --max_seq_length {length} holds {room} tokens of text "
            f"besides its special tokens, and shares --doc_stride of them with the window before it, so it must be "
            f"from 0 to {room - 1}."
        )
    return LongDocuments(length, strategy, stride, aggregation or "mean")


@dataclasses.dataclass(frozen=True)
class Thresholds:
    """The multi-label decision threshold, decided once (check_label_flags): one sigmoid value, or one per label in
    label order; tune: pick each label's F1-best value on the validation split (evaluation.predict), from value."""

    value: float | tuple = 0.5
    tune: bool = False


def check_label_flags(args, labels, config=None) -> Thresholds:
    """The flags that depend on the labels: --class_weights' map, label smoothing; returns the multi-label
    threshold."""
    training_args = args.training
    thresholds = check_threshold(args.data, training_args, labels, config)
    if training_args.do_train and training_args.class_weights not in (None, "balanced"):
        class_weights(training_args.class_weights, labels, None)  # a bad map fails here, before any tokenizing
    smoothing = training_args.label_smoothing_factor
    if training_args.do_train and smoothing and labels.problem_type != "single_label_classification":
        # Trainer would crash on regression targets mid-run and silently drop it for multi-label.
        raise UserError(
            f"--label_smoothing_factor smooths single-label class targets, but these labels are "
            f"{labels.problem_type}. Drop the flag."
        )
    return thresholds


def check_threshold(data_args, training_args, labels, config=None) -> Thresholds:
    """--multi_label_threshold -> the threshold to predict with: one number, or one per label (a list in
    label order): as given; unset, the ones the model folder saved (its config's multi_label_thresholds, by label
    name), else 0.5. 'tune' starts from that and tunes."""
    value, tune = data_args.multi_label_threshold, False
    multi = labels.problem_type == "multi_label_classification"
    if value == "tune":
        if not multi:
            raise UserError(
                f"--multi_label_threshold tune is for multi-label classification; these labels are "
                f"{labels.problem_type}. Drop the flag."
            )
        if not training_args.do_eval:
            raise UserError(
                "--multi_label_threshold tune picks each label's threshold on the validation split: "
                "pass --do_eval (and a validation split), or give a number."
            )
        value, tune = None, True
    if value is None:
        saved = (getattr(config, "multi_label_thresholds", None) or {}) if multi else {}
        if saved and set(saved) >= set(labels.names):
            logger.info("multi-label thresholds: the model's own (its config's multi_label_thresholds)")
            return Thresholds([float(saved[name]) for name in labels.names], tune)
        return Thresholds(0.5, tune)
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = None
    if number is None or not 0 < number < 1:
        raise UserError(
            f"--multi_label_threshold {value}: pass a number between 0 and 1 (a sigmoid value), or 'tune'."
        )
    return Thresholds(number, tune)


@dataclasses.dataclass(frozen=True)
class Calibration:
    """The temperature the logits are divided by before any probability is taken, decided once (resolve_calibration):
    a model folder's saved one (its config's calibration_temperature), or none; fit: fit it on the first validation
    split (--calibrate temperature, evaluation.predict)."""

    temperature: float | list | None = None
    fit: bool = False
    given: bool = False  # --calibration_temperature: the trained model's config carries it (textcls.model.build)


def resolve_calibration(args, labels, config) -> Calibration:
    """--calibrate temperature needs a labelled validation split and class probabilities; unset, a folder calibrated
    earlier keeps its temperature (when its classes are this run's: a new head is not calibrated)."""
    data_args, training_args = args.data, args.training
    fit, given = data_args.calibrate == "temperature", data_args.calibration_temperature
    if fit and given is not None:
        raise UserError("--calibrate temperature fits a temperature and --calibration_temperature gives one: pass "
                        "one of them.")  # fmt: skip
    if fit and labels.problem_type == "regression":
        raise UserError("--calibrate temperature scales class probabilities; a regression has none. Drop the flag.")
    if fit and not training_args.do_eval:
        raise UserError(
            "--calibrate temperature is fitted on the validation split: pass --do_eval (and a validation split)."
        )
    if given is not None:
        if labels.problem_type != "single_label_classification":
            raise UserError(f"--calibration_temperature scales single-label class probabilities, not a "
                            f"{labels.problem_type.replace('_', ' ')}'s. Drop the flag.")  # fmt: skip
        if not given > 0:
            raise UserError(f"--calibration_temperature must be above 0 (got {given}); 1 changes nothing.")
    saved = getattr(config, "calibration_temperature", None)
    if onnx_file(args.model.model_name_or_path) is not None:
        if given is not None:
            raise UserError("--calibration_temperature: an exported ONNX graph divides its logits by the "
                            "temperature it was exported with; drop the flag, or export again from the model's "
                            "folder.")  # fmt: skip
        return Calibration(None, fit)  # an exported graph divides its logits by it already
    if given is not None:
        logger.info("calibration: temperature %s (--calibration_temperature)", given)
        return Calibration(given, False, given=True)
    names = [config.id2label[i] for i in range(len(config.id2label))] if getattr(config, "id2label", None) else None
    if saved is not None and not training_args.do_train and names == labels.names:
        logger.info("calibration: the model's own temperature %s (its config's calibration_temperature)", saved)
        return Calibration(saved, fit)
    return Calibration(None, fit)


def check_optimizer_and_scheduler(training_args, model) -> None:
    """Trainer builds the optimizer and the scheduler when training starts, after the data and the model are loaded
    and the output folder is begun: a package or a setting they lack should stop the run before all that."""

    if not training_args.do_train:
        return
    optim = getattr(training_args.optim, "value", training_args.optim)
    try:
        Trainer.get_optimizer_cls_and_kwargs(training_args, model)
    except (ImportError, ValueError) as e:
        raise UserError(f"--optim {optim}: {e}") from None
    name = getattr(training_args.lr_scheduler_type, "value", training_args.lr_scheduler_type)
    probe = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    try:
        scheduler = get_scheduler(
            name, probe, 1, 10, scheduler_specific_kwargs=training_args.lr_scheduler_kwargs or {}
        )
        for _ in range(3):  # a setting of the wrong type ("num_cycles": "two") fails only when the rate is computed
            probe.step()
            scheduler.step()
    except (TypeError, ValueError) as e:
        raise UserError(
            f"--lr_scheduler_type {name}: {e}. Pass its settings as --lr_scheduler_kwargs '{{\"setting\": value}}'."
        ) from None
    if training_args.use_liger_kernel and not is_liger_kernel_available():
        raise UserError("--use_liger_kernel needs the liger-kernel package (GPU only): pip install liger-kernel.")


def check_best_metric(training_args, labels, task_name, eval_splits, hub_metric) -> None:
    """--metric_for_best_model must be a metric this evaluation reports; Trainer finds out at the first evaluation,
    after training has begun. (A hub metric's keys are known only once it has run.)"""
    name = training_args.metric_for_best_model
    if name is None or hub_metric is not None:
        return
    loss_only = training_args.prediction_loss_only
    keys = ["loss"] + ([] if loss_only else metric_names(labels.problem_type, task_name, len(labels.names or ())))
    if len(eval_splits) > 1:
        keys = [f"{split_suffix(split)}_{key}" for split in eval_splits for key in keys]
    if name.removeprefix("eval_") not in keys:
        raise UserError(
            f"--metric_for_best_model {name}: this evaluation reports {', '.join(keys)}. Pick one of them."
        )
