"""Building blocks of run_classification.py: each step of its main() is a function of the module named for the data
it works on, tested on its own. The steps, in the order main() runs them:

| step | function |
|---|---|
| parse flags (defaults < recipe < command line) | args.parse_args |
| check the flags alone | checks.check_flags |
| the training settings a checkpoint must match | run_folder.training_settings |
| lock output_dir; refuse, resume, finish or start over there | run_folder.hold_output_dir |
| a finished training asked again: evaluate its saved model | run_folder.evaluate_saved_model |
| a packaged hub id -> its installed folder | modeling.resolve_model_paths |
| load an `evaluate` metric (--metric_name) | metrics.load_hub_metric |
| the GLUE task (--task_name) | glue.get_glue_task |
| load the splits (local files, GLUE folder, hub) | data.load_raw_datasets |
| choose each role's splits and rows | data.select_splits |
| find the text, pair, label and id columns | data.resolve_split_columns |
| load the model config and tokenizer | modeling.load_config_and_tokenizer |
| check the truncation length | checks.check_max_seq_length |
| long texts: truncate, head and tail, or windows | checks.check_long_documents |
| problem type and label map | labels.resolve_labels |
| check the label-dependent flags | checks.check_label_flags |
| a search continued: the same space and objective? | search.check_study |
| tokenize (and encode the labels of) every split | tokenization.tokenize_splits |
| build the model, with LoRA | modeling.build_classifier |
| check the optimizer and scheduler | checks.check_optimizer_and_scheduler |
| check --metric_for_best_model | checks.check_best_metric |
| room on disk for the model and a checkpoint | run_folder.check_disk_space |
| build the Trainer (loss, samplers, batches, metrics) | trainer.build_trainer |
| write recipe.json | outputs.write_run_recipe |
| or search hyperparameters: trials, best_recipe.json | search.run_search |
| train (Trainer.train, resuming from a checkpoint) | |
| save the trained model and its results | outputs.save_training |
| evaluate, predict, GLUE submission files | evaluation.evaluate_and_predict |
| all_results.json, merged model, model card | outputs.write_run_summary |

Beside them: collate (batches from Arrow, padded or padding-free), packing (padding-free attention), glue (the
task table and the original TSV reader), submission (GLUE server files), distributed (launch checks), results
(results files), run_folder (the output folder: lock, checkpoints, settings),
report (the evaluation's pictures and report), io (atomic writes), errors (UserError).
"""
