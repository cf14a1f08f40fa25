#!/usr/bin/env python
"""The baseline of benchmarks/speed.py: the pipeline of Hugging Face's
examples/pytorch/text-classification/run_glue.py, step for step, written here from that script's behaviour (it
cannot run as is offline: it loads its data and its GLUE metric from the hub).

What it does, in run_glue.py's order: load config, tokenizer and model; tokenize every split of the task (all 67,349
SST-2 training rows even when --max_train_samples is small); then select the first rows; a stock Trainer with the
TrainingArguments defaults (eval batch 8, the collator Trainer picks); train, save the model, the metrics and the
state; evaluate. Not charged to it: importing `evaluate` and loading its metric (about a second here): accuracy
is computed with numpy. So the baseline is, if anything, slightly faster than the real script.

    python benchmarks/hf_reference.py --model_name_or_path M --data_dir ../shared/data/glue/SST-2 --task_name sst2 \\
        --output_dir /tmp/hf --max_train_samples 2000 [--pad_to_max_length] [--group_by_length]

With --train_file (and --validation_file, --test_file: csv with `sentence` and `label` columns), it follows
run_glue.py's path for local files instead: `load_dataset("csv", data_files=...)`, which datasets converts to an
Arrow cache on disk and memory-maps; the label list is the sorted distinct training labels; tokenizing is
`datasets.map` into that cache; --do_predict runs `trainer.predict` on the test file and writes
`predict_results.txt` (index, predicted label), as run_glue.py does. benchmarks/scale.py runs it that way.
"""

import argparse
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def _bool(text: str) -> bool:
    return text.lower() in ("1", "true", "yes")


def parse(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model_name_or_path", required=True)
    p.add_argument("--task_name", help="a GLUE task, read from --data_dir")
    p.add_argument("--data_dir", help="an original GLUE task folder (run_glue.py: the hub)")
    p.add_argument("--train_file", help="local csv files instead of a GLUE folder")
    p.add_argument("--validation_file")
    p.add_argument("--test_file")
    p.add_argument("--do_train", type=_bool, nargs="?", const=True, default=True)
    p.add_argument("--do_predict", action="store_true")
    p.add_argument("--max_steps", type=int, default=-1)
    p.add_argument("--logging_steps", type=float, default=500)
    p.add_argument("--per_device_eval_batch_size", type=int, default=8)
    p.add_argument("--output_dir", required=True)
    p.add_argument("--max_train_samples", type=int)
    p.add_argument("--max_predict_samples", type=int)
    p.add_argument("--max_seq_length", type=int, default=128)
    p.add_argument("--pad_to_max_length", action="store_true", help="run_glue.py's default: pad every row to 128")
    p.add_argument("--group_by_length", action="store_true", help="train_sampling_strategy=group_by_length")
    p.add_argument("--per_device_train_batch_size", type=int, default=32)
    p.add_argument("--learning_rate", type=float, default=5e-5)
    p.add_argument("--num_train_epochs", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--bf16", type=_bool, nargs="?", const=True, default=False, help="bf16 mixed precision")
    p.add_argument("--use_cpu", type=_bool, nargs="?", const=True, default=False, help="train on the CPU")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse(argv)
    import numpy as np
    from transformers import (
        AutoConfig,
        AutoModelForSequenceClassification,
        AutoTokenizer,
        DataCollatorWithPadding,
        Trainer,
        TrainingArguments,
        default_data_collator,
        set_seed,
    )

    from textcls.data.glue import get_glue_task, load_glue_dir
    from textcls.model.build import resolve_model_path

    training_args = TrainingArguments(
        output_dir=args.output_dir,
        do_train=args.do_train,
        do_eval=args.validation_file is not None or args.data_dir is not None,
        do_predict=args.do_predict,
        max_steps=args.max_steps,
        logging_steps=args.logging_steps,
        per_device_eval_batch_size=args.per_device_eval_batch_size,
        per_device_train_batch_size=args.per_device_train_batch_size,
        learning_rate=args.learning_rate,
        num_train_epochs=args.num_train_epochs,
        seed=args.seed,
        bf16=args.bf16,
        use_cpu=args.use_cpu,
        train_sampling_strategy="group_by_length" if args.group_by_length else "random",
        save_strategy="no",
        report_to="none",
        disable_tqdm=True,
    )
    set_seed(training_args.seed)
    if args.train_file or args.test_file:
        from datasets import load_dataset

        files = {"train": args.train_file, "validation": args.validation_file, "test": args.test_file}
        raw = load_dataset("csv", data_files={k: v for k, v in files.items() if v})
        # run_glue.py: label_list = raw_datasets["train"].unique("label"), sorted; a saved model keeps its own map
        first = raw["train"] if "train" in raw else raw["test"]
        label_list = sorted(first.unique("label")) if "train" in raw else None
        keys = ("sentence", None)
        finetuning_task = None
    else:
        task = get_glue_task(args.task_name)
        raw = load_glue_dir(task.name, args.data_dir)  # run_glue.py: load_dataset("nyu-mll/glue", task)
        label_list = raw["train"].features["label"].names
        keys = (task.text_column, task.text_pair_column)
        finetuning_task = task.name
    model_path = resolve_model_path(args.model_name_or_path)
    if label_list is None:  # predicting with a fine-tuned model: its label map
        label_list = [AutoConfig.from_pretrained(model_path).id2label[i] for i in range(2)]
    config = AutoConfig.from_pretrained(model_path, num_labels=len(label_list), finetuning_task=finetuning_task)
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    model = AutoModelForSequenceClassification.from_pretrained(model_path, config=config)
    model.config.label2id = {name: i for i, name in enumerate(label_list)}
    model.config.id2label = dict(enumerate(label_list))

    padding = "max_length" if args.pad_to_max_length else False

    label_to_id = {v: i for i, v in enumerate(label_list)}

    def preprocess(examples):
        texts = (examples[keys[0]],) if keys[1] is None else (examples[keys[0]], examples[keys[1]])
        result = tokenizer(*texts, padding=padding, max_length=args.max_seq_length, truncation=True)
        if args.train_file or args.test_file:  # run_glue.py maps file labels to ids in the same function
            # as 'labels': datasets 5 casts a returned 'label' back to the column's string type
            result["labels"] = [label_to_id.get(v, -1) for v in examples["label"]]
        return result

    with training_args.main_process_first(desc="dataset map pre-processing"):
        drop = ["label"] if args.train_file or args.test_file else None
        raw = raw.map(preprocess, batched=True, remove_columns=drop, desc="Running tokenizer on dataset")
    train_dataset = raw["train"] if "train" in raw else None
    if train_dataset is not None and args.max_train_samples is not None:
        train_dataset = train_dataset.select(range(min(len(train_dataset), args.max_train_samples)))
    eval_dataset = raw["validation"] if "validation" in raw else None

    def compute_metrics(p):
        preds = np.argmax(p.predictions, axis=1)
        return {"accuracy": float((preds == p.label_ids).mean())}

    trainer = Trainer(
        model=model,
        args=training_args,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        compute_metrics=compute_metrics,
        processing_class=tokenizer,
        # run_glue.py pads to a multiple of 8 under fp16 only, not bf16
        data_collator=default_data_collator if args.pad_to_max_length else DataCollatorWithPadding(tokenizer),
    )
    if args.do_train:
        train_result = trainer.train()
        metrics = {**train_result.metrics, "train_samples": len(train_dataset)}
        trainer.save_model()
        trainer.log_metrics("train", metrics)
        trainer.save_metrics("train", metrics)
        trainer.save_state()
    if eval_dataset is not None:
        metrics = {**trainer.evaluate(eval_dataset=eval_dataset), "eval_samples": len(eval_dataset)}
        trainer.log_metrics("eval", metrics)
        trainer.save_metrics("eval", metrics)
    if args.do_predict:
        # run_glue.py: drop the label column, predict, write index and predicted label per row
        test = raw["test"].remove_columns("labels" if "labels" in raw["test"].column_names else "label")
        if args.max_predict_samples is not None:  # run_glue.py selects after tokenizing, as here
            test = test.select(range(min(len(test), args.max_predict_samples)))
        output = trainer.predict(test, metric_key_prefix="predict")
        predictions = np.argmax(output.predictions, axis=1)
        trainer.log_metrics("predict", output.metrics)
        trainer.save_metrics("predict", output.metrics)
        with open(os.path.join(args.output_dir, "predict_results.txt"), "w") as writer:
            writer.write("index\tprediction\n")
            for index, item in enumerate(predictions):
                writer.write(f"{index}\t{label_list[item]}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
