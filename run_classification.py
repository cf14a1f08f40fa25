#!/usr/bin/env python
"""Fine-tune, evaluate and predict with any Hugging Face sequence-classification model, full or LoRA.

    python run_classification.py --model_name_or_path M --train_file train.csv --validation_file dev.csv \\
        --do_train --do_eval --output_dir out
    python run_classification.py recipes/glue/rte/all-MiniLM-L6-v2.json --learning_rate 3e-5
    accelerate launch --config_file recipes/accelerate/multi_gpu.yaml run_classification.py RECIPE.json

main() is the whole pipeline, top to bottom; each line is one step, a function of the textcls/ module named for the
data it works on (textcls/__init__.py has the table). Every flag check runs before the step that needs it, and all
of them before anything is written.
"""

import logging
import sys
import time

from textcls.config import checks
from textcls.config.args import given_flags, parse_args
from textcls.data import folds as F
from textcls.data import labels as L
from textcls.data import load as D
from textcls.data import tokenization as TK
from textcls.data.glue import get_glue_task
from textcls.errors import TrainingStopped, UserError
from textcls.evaluation import metrics
from textcls.evaluation import outputs as O
from textcls.evaluation.predict import evaluate_and_predict
from textcls.evaluation.results import git_state, record_from_output_dir
from textcls.export import onnx as X
from textcls.io import is_disk_full
from textcls.model import build as M
from textcls.train import contrastive as SF
from textcls.train import cross_validation as CV
from textcls.train import method, search
from textcls.train import run_folder as RF
from textcls.train import trainer as T
from textcls.train.distributed import release_process_group, resolve_bf16

logger = logging.getLogger("run_classification")


def main(argv: list[str] | None = None) -> dict:
    start = time.monotonic()
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)  # defaults < recipe < command line
    setup_logging(args.training.disable_tqdm)
    checks.check_flags(args)  # everything the flags alone can get wrong, before any work
    code_version = git_state() if args.data.results_file else None  # the code that runs now, not at the end
    if CV.drives(args):  # --cross_validate K: K ordinary runs of this command, one a fold, then what they found
        with CV.hold_folder(args):
            for fold_argv in CV.fold_commands(argv, args):
                main(fold_argv)
            return CV.summarise(args)
    training = args.training
    settings = RF.training_settings(args.resolved, args.data, training.world_size) if training.do_train else None
    with RF.hold_output_dir(training, args.data.overwrite_output_dir, settings) as folder:  # locked; the plan
        if folder.finished and not (training.do_eval or training.do_predict):
            return RF.finished_results(training.output_dir)
        if folder.finished:  # trained there before with these settings: evaluate and predict with its model only
            args, settings = parse_args(argv + RF.evaluate_saved_model(training.output_dir)), None
        args = args._replace(model=M.resolve_model_paths(args.model))  # a packaged hub id -> its installed folder
        return run(args, argv, folder.resume_from, settings, (start, code_version))


def run(args, argv, resume_from, settings, timing) -> dict:
    """The pipeline in an output_dir this run holds: data, model, training, evaluation, outputs."""
    hub_metric = metrics.load_hub_metric(args.data.metric_name) if args.data.metric_name else None

    # ---- data: splits -> columns -> labels -> tokens
    task = get_glue_task(args.data.task_name) if args.data.task_name else None
    raw = D.load_raw_datasets(args.data, args.model, task)
    splits = D.select_splits(raw, task, args.training, args.data)
    columns = D.resolve_split_columns(splits, args.data, task, args.training.do_train or args.training.do_eval)
    config, tokenizer = M.load_config_and_tokenizer(args.model)
    long_docs = checks.resolve_long_documents(args.data, config, tokenizer, columns)  # window; truncate, chunk...
    labels = L.resolve_labels(raw, columns, args.data, config, args.training.do_train)
    splits, rows = F.select_training_rows(raw, splits, columns, labels, args.data, args.training.seed)  # folds...
    names = labels.names or []  # (regression: none) 3,000 of them made one log line of 30 KB
    shown = names[:20] + ([f"and {len(names) - 20} more"] if len(names) > 20 else [])
    logger.info("problem_type=%s labels=%s columns=%s", labels.problem_type, shown, columns)
    thresholds = checks.check_label_flags(args, labels, config)  # and the multi-label threshold
    calibration = checks.resolve_calibration(args, labels, config)  # temperature scaling
    best = T.resolve_best_metric(args.training, labels.problem_type, task, list(splits["eval"]))
    search.check_study(args, best)  # a search continued: same space and objective?
    train = splits["train"].get("train")
    choice = method.choose(args, given_flags(argv), train, columns, labels)  # --method auto: SetFit or fine-tuning
    choice = method.cross_validated(choice, args, argv, given_flags(argv), (train, columns, labels),
                                    args.data.task_name, main)  # --auto_select cross_validation  # fmt: skip
    args = method.apply(args, choice)
    if choice is not None and "calibration_temperature" in choice.settings:  # the pick's out-of-fold one
        calibration = checks.resolve_calibration(args, labels, config)
    SF.check_setfit(args.data.method, columns, labels, args.training.do_train, train)  # pairs, too many rows...
    decided = RF.decided(resume_from)  # what the run a checkpoint belongs to chose for its 'auto' flags
    per_batch = TK.resolve_tokenize(args.data, args.training, columns, long_docs, train, decided)  # or up front
    bf16 = resolve_bf16(args.training, decided)  # --bf16 unset: on for a CPU with AMX (measured)
    order = RF.length_order(decided, per_batch)  # per batch: megabatches sorted by true lengths (or, resumed, as then)
    tokenize = "per_batch" if per_batch else "upfront"
    setfit_bf16 = SF.contrastive_bf16(args.data.method, bf16, decided, resume_from is not None)  # as the steps
    settings = RF.with_decided(settings, tokenize=tokenize, bf16=bf16, length_order=order, setfit_bf16=setfit_bf16)
    tokenized = TK.tokenize_splits(splits, columns, tokenizer, labels, args.data, long_docs, args.training, per_batch)
    encoder = TK.per_batch_encoder(tokenizer, columns, long_docs) if per_batch else None
    args = args._replace(model=SF.setfit_body(args, train, columns, labels, long_docs.max_length, setfit_bf16))
    sizes = {name: len(raw[name] if name in raw else ds) for name, ds in splits["test"].items()}
    evals, tests = splits["eval"], splits["test"]
    data = D.RunData(
        task, tests, sizes, columns, labels, tokenized, evals, long_docs, thresholds, calibration, rows, encoder
    )
    del raw, splits  # their memory-mapped text: the rest of the run needs the tokens (and the test rows, kept above)

    # ---- model (+LoRA) and Trainer; an exported ONNX folder predicts with onnxruntime instead
    if X.onnx_file(args.model.model_name_or_path):
        trainer = X.onnx_predictor(args, tokenizer, data, config, hub_metric)
    else:
        model, params = M.build_classifier(args, config, tokenizer, labels)
        M.carry_temperature(model, data.calibration)  # --calibration_temperature: saved with the trained model
        checks.check_optimizer_and_scheduler(args.training, model)
        checks.check_best_metric(args.training, labels, data.task_name, data.names("eval"), hub_metric)
        RF.check_disk_space(args.training, model)  # room for the model and a checkpoint, before hours of training
        trainer = T.build_trainer(model, args, tokenizer, data, best, hub_metric, settings, bf16)
    recipe_name = O.write_run_recipe(trainer, args.resolved)

    # ---- train, evaluate, predict, write
    if args.training.hp_trials:  # a search: many training runs, written as trials and best_recipe.json
        return search.run_search(trainer, args, argv)
    results = {}
    if args.training.do_train:
        train_result = trainer.train(resume_from_checkpoint=resume_from)
        results |= O.save_training(trainer, train_result, params, resume_from)
    results |= evaluate_and_predict(trainer, data, args.data)
    results |= F.write_selection(trainer, data.rows)  # a fold's held-out rows; what --exclude_rows dropped
    results |= X.export_model(trainer, data, args.data)  # --export onnx: fp32 and int8 graphs, checked
    results |= T.mixed_precision(trainer)  # fp32, bf16 (training steps only, unless asked for) or fp16
    results |= SF.contrastive_record(args)  # --method setfit: the precision its contrastive phase trained in
    O.write_run_summary(trainer, args, data, results)
    if args.data.results_file and trainer.is_world_process_zero():
        out, (start, code_version) = args.training.output_dir, timing
        record_from_output_dir(args.data.results_file, out, argv, time.monotonic() - start, recipe_name, code_version)
        logger.info("recorded in %s", args.data.results_file)
    return results


def setup_logging(disable_tqdm: bool) -> None:
    import transformers

    # Our own steps at INFO, every other library at WARNING: with the root at INFO an --export run's log was 158 lines
    # of onnxscript's rewriter passes in 214 (transformers keeps its own verbosity, set below).
    logging.basicConfig(
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        level=logging.WARNING,
        handlers=[logging.StreamHandler(sys.stdout)],
        force=True,
    )
    for name in ("textcls", logger.name):
        logging.getLogger(name).setLevel(logging.INFO)
    transformers.utils.logging.set_verbosity_warning()
    if disable_tqdm:  # datasets' and transformers' own bars too (loading, splitting, tokenizing)
        import datasets

        datasets.disable_progress_bars()
        transformers.utils.logging.disable_progress_bar()


def cli(argv=None) -> int:
    try:
        main(argv)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except TrainingStopped as e:
        print(e, file=sys.stderr)
        return e.exit_code
    except (OSError, RuntimeError) as e:
        if not is_disk_full(e):
            raise
        where = getattr(e, "filename", None) or "a file this run writes"
        print(
            f"error: the disk is full: writing {where} failed ({e}). Free some space and run the same command.",
            file=sys.stderr,
        )
        return 2
    except KeyboardInterrupt as e:
        print(f"interrupted. {getattr(e, 'advice', 'Run the same command again.')}", file=sys.stderr)
        return 130
    finally:
        release_process_group()  # under DDP, before the interpreter's exit can abort a finished run (see there)
    return 0


if __name__ == "__main__":
    code = cli()
    # Everything is written and flushed. Without this the interpreter's exit walks every object torch and transformers
    # made with the cyclic garbage collector: about 2.5 s of a 50 s run on 2 cores (benchmarks/README.md).
    import gc

    gc.freeze()
    sys.exit(code)
