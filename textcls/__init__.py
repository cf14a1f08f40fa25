"""Building blocks of run_classification.py, in a folder for each stage of the pipeline:

    config/      the flags and recipes (args), and every up-front check of them (checks)
    data/        files to model inputs: loading and splits (load), GLUE (glue), labels, the training rows and folds
                 (folds), tokenization, batches (collate)
    model/       the classifier: building it with LoRA (build), pooling, padding-free attention (packing)
    train/       the Trainer (trainer), its loss (loss), signals and exact resumes (resume), the output folder
                 (run_folder), search, launches (distributed), K-fold runs (cross_validation), SetFit's
                 contrastive phase (contrastive)
    evaluation/  metrics, predictions (predict), the report and pictures (report), label issues, GLUE submission files,
                 the saved model, recipe and model card (outputs), results files (results)
    export/      what ships: the ONNX graph and its int8 copy, checked (onnx)
    errors.py, io.py, hardware.py   UserError and the interruption exceptions; atomic writes; the CPU's flags

Each step of main() is a function of the module named for the data it works on, tested on its own. The steps, in the
order main() runs them:

| step | function |
|---|---|
| parse flags (defaults < recipe < command line) | config.args.parse_args |
| check the flags alone | config.checks.check_flags |
| --cross_validate K: is this command a cross-validation (not one of its folds)? | train.cross_validation.drives |
| lock its output_dir; refuse a folder of someone else's files | train.cross_validation.hold_folder |
| each fold's command (and the refit's): run by main() itself | train.cross_validation.fold_commands |
| merge out-of-fold predictions, cv_results.json, label issues | train.cross_validation.summarise |
| the training settings a checkpoint must match | train.run_folder.training_settings |
| lock output_dir; refuse, resume, finish or start over there | train.run_folder.hold_output_dir |
| a finished training asked again: evaluate its saved model | train.run_folder.evaluate_saved_model |
| a packaged hub id -> its installed folder | model.build.resolve_model_paths |
| load an `evaluate` metric (--metric_name) | evaluation.metrics.load_hub_metric |
| the GLUE task (--task_name) | data.glue.get_glue_task |
| load the splits (local files, GLUE folder, hub) | data.load.load_raw_datasets |
| choose each role's splits and rows | data.load.select_splits |
| find the text, pair, label and id columns | data.load.resolve_split_columns |
| load the model config and tokenizer | model.build.load_config_and_tokenizer |
| the window; long texts truncated, cut head and tail, or windowed | config.checks.resolve_long_documents |
| problem type and label map | data.labels.resolve_labels |
| the training rows: less --exclude_rows, a fold's (its held-out rows a test split) | data.folds.select_training_rows |
| check the label-dependent flags; the multi-label threshold | config.checks.check_label_flags |
| temperature scaling: fit one, or the folder's own | config.checks.resolve_calibration |
| the metric that picks the best checkpoint | train.trainer.resolve_best_metric |
| a search continued: the same space and objective? | train.search.check_study |
| the flags the user set (--method auto leaves them as they are) | config.args.given_flags |
| --method auto: SetFit or fine-tuning, by the training set's smallest class | train.method.choose |
| --auto_select cross_validation: both cross-validated; the pick and its temperature | train.method.cross_validated |
| --method auto: its settings in place (and in the recipe written below) | train.method.apply |
| --method setfit: refuse pairs, regression, token ids, a set too large to pair | train.contrastive.check_setfit |
| what a resumed checkpoint's run chose for its 'auto' flags | train.run_folder.decided |
| --tokenize: training texts tokenized up front, or per batch as read | data.tokenization.resolve_tokenize |
| --bf16 unset: bf16 autocast on a CPU with AMX (measured), else fp32 | train.distributed.resolve_bf16 |
| per batch: length groups sorted by true lengths (a resumed older run: as it began) | train.run_folder.length_order |
| --method setfit: its contrastive encoder in bf16 where the steps are | train.contrastive.contrastive_bf16 |
| ...and those choices, recorded in each checkpoint for a resume | train.run_folder.with_decided |
| tokenize (and encode the labels of) every split | data.tokenization.tokenize_splits |
| --tokenize per_batch: what makes a batch of training texts model inputs | data.tokenization.per_batch_encoder |
| --method setfit: the contrastive phase (setfit), the encoder the run trains from | train.contrastive.setfit_body |
| or an exported ONNX folder: predict with onnxruntime | export.onnx.onnx_predictor |
| build the model, with LoRA | model.build.build_classifier |
| a temperature given (--calibration_temperature): into the model config | model.build.carry_temperature |
| check the optimizer and scheduler | config.checks.check_optimizer_and_scheduler |
| check --metric_for_best_model | config.checks.check_best_metric |
| room on disk for the model and a checkpoint | train.run_folder.check_disk_space |
| build the Trainer (its own resolved arguments, loss, samplers, batches) | train.trainer.build_trainer |
| write recipe.json | evaluation.outputs.write_run_recipe |
| or search hyperparameters: trials, best_recipe.json | train.search.run_search |
| train (Trainer.train, resuming from a checkpoint) | |
| save the trained model and its results | evaluation.outputs.save_training |
| evaluate, predict, GLUE submission files | evaluation.predict.evaluate_and_predict |
| a fold's held-out rows (cv_fold.json); the excluded rows' count | data.folds.write_selection |
| --export onnx: fp32 and int8 graphs, checked against PyTorch | export.onnx.export_model |
| the precision the numbers were computed in | train.trainer.mixed_precision |
| --method setfit: the precision its contrastive phase trained in | train.contrastive.contrastive_record |
| all_results.json, merged model, model card | evaluation.outputs.write_run_summary |

Where a flag's value is decided: every flag once, by config.args.parse_args (defaults < recipe < command line), and
nothing writes to the parsed arguments after it (tests/artifacts/test_structure.py checks it). The values decided
later, from the model, the data or the task, are each decided by one function and passed on as a frozen object:

| flags | decided by, passed on as |
|---|---|
| --model_name_or_path, --tokenizer_name | model.build.resolve_model_paths: a new ModelArguments |
| --max_seq_length, --long_document_strategy | config.checks.resolve_long_documents: LongDocuments (RunData) |
| --doc_stride, --chunk_aggregation | config.checks.resolve_long_documents: LongDocuments (RunData) |
| --multi_label_threshold | config.checks.check_label_flags: Thresholds (in RunData); tuned: evaluation.predict |
| --calibrate (and the fitted temperature) | config.checks.resolve_calibration: Calibration (RunData) |
| --metric_for_best_model, --greater_is_better | train.trainer.resolve_best_metric: BestMetric |
| --bf16 (unset: on for a CPU with AMX) | train.distributed.resolve_bf16: a bool (the Trainer's copy) |
| the Trainer's arguments (jit checkpoints, a stream, a search) | train.trainer.trainer_arguments: a copy |
| what a folder's training does: resume, refuse, finish | train.run_folder.plan_output_dir: FolderPlan |
| --exclude_rows, --cross_validate (a fold's rows) | data.folds.select_training_rows: RowSelection (RunData) |
| --method setfit (the model the run trains from) | train.contrastive.setfit_body: a new ModelArguments |
| --method auto (lr, steps, warm-up, batch, layers it fills in) | train.method.apply: new groups, resolved |
"""
