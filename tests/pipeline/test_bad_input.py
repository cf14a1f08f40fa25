"""Bad input: every flag, file and value a user can get wrong is one clear line, exit 2, and no output_dir (the table
BAD_INPUTS); code shipped with a model or metric runs only when asked."""

import json
import os
import shutil

import pytest

import run_classification as R
from tests.helpers import sentiment_rows, three_class_rows, write_rows
from textcls.config.args import parse_args
from textcls.data import tokenization as T

# ------------------------------------------------------------------------------------------------ bad input


def _write(folder, name, content):
    path = folder / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return str(path)


def _custom_code_model(folder, model):
    """A copy of the tiny BERT whose config asks for its own code; the code leaves a mark if it ever runs."""
    path = folder / "custom"
    shutil.copytree(model, path)
    config = json.loads((path / "config.json").read_text())
    config.update(model_type="evil-bert", auto_map={"AutoConfig": "configuration_evil.EvilConfig"})
    (path / "config.json").write_text(json.dumps(config))
    (path / "configuration_evil.py").write_text(f"open({str(folder / 'CODE_RAN')!r}, 'w').close()\n")
    return str(path)


def _recipe(folder, text):
    return _write(folder, "recipe.json", text)


# Each: (id, argv builder (folder, model, files) -> flags, key words of the message). The builder adds the rest:
# --model (unless given), --output_dir, --use_cpu.
BAD_INPUTS = [
    ("missing file", lambda d, m, f: ["--train_file", str(d / "nope.csv"), "--do_train"], ["does not exist"]),
    ("a folder", lambda d, m, f: ["--train_file", str(d), "--do_train"], ["is a folder", "pass a file"]),
    (
        "unsupported extension",
        lambda d, m, f: ["--train_file", _write(d, "t.xlsx", "a"), "--do_train"],
        ["unsupported extension '.xlsx'", ".csv"],
    ),
    ("empty file", lambda d, m, f: ["--train_file", _write(d, "e.csv", ""), "--do_train"], ["is empty"]),
    ("header only", lambda d, m, f: ["--train_file", _write(d, "h.csv", "text,label\n"), "--do_train"], ["no rows"]),
    (
        "not UTF-8",
        lambda d, m, f: [
            "--train_file",
            _write(d, "l.csv", "text,label\ncaf\xe9,1\nbad,0\n".encode("latin-1")),
            "--do_train",
        ],
        ["not UTF-8", "iconv"],
    ),
    (
        "ragged csv",
        lambda d, m, f: ["--train_file", _write(d, "r.csv", "text,label\ngood,1\nbad, sad,0\n"), "--do_train"],
        ["line 3", "must be quoted"],
    ),
    (
        "semicolon-separated csv",
        lambda d, m, f: ["--train_file", _write(d, "s.csv", "text;label\ngood;1\nbad;0\n"), "--do_train"],
        ["one column, 'text;label'", "separated by ';'", "comma-separated"],
    ),
    (
        "broken jsonl",
        lambda d, m, f: [
            "--train_file",
            _write(d, "b.jsonl", '{"text": "a", "label": 1}\n{"text": "b", '),
            "--do_train",
        ],
        ["could not read", "one JSON object per line"],
    ),
    (
        "text column missing",
        lambda d, m, f: ["--train_file", f["train"], "--do_train", "--text_column", "sentense"],
        ["'sentense' is not a column", "'sentence', 'label'", "Did you mean 'sentence'"],
    ),
    (
        "pair column missing",
        lambda d, m, f: ["--train_file", f["train"], "--do_train", "--text_pair_column", "hypothesis"],
        ["'hypothesis' is not a column", "'sentence'"],
    ),
    (
        "label column missing",
        lambda d, m, f: ["--train_file", f["train"], "--do_train", "--label_column", "stars"],
        ["'stars' is not a column", "'label'"],
    ),
    (
        "eval split without the text column",
        lambda d, m, f: [
            "--train_file",
            f["train"],
            "--validation_file",
            write_rows(d / "v.csv", [{"text": "a", "label": 1}]),
            "--do_train",
            "--do_eval",
        ],
        ["validation split has no column 'sentence'", "Columns: text, label"],
    ),
    (
        "eval split without labels",
        lambda d, m, f: [
            "--train_file",
            f["train"],
            "--validation_file",
            write_rows(d / "v.csv", [{"sentence": "a"}]),
            "--do_train",
            "--do_eval",
        ],
        ["--do_eval needs labels", "no column 'label'", "--label_column"],
    ),
    (
        "eval label never seen in training",
        lambda d, m, f: [
            "--train_file",
            f["train"],
            "--validation_file",
            write_rows(d / "v.csv", [{"sentence": "good", "label": 1}, {"sentence": "bad", "label": 7}]),
            "--do_train",
            "--do_eval",
        ],
        ["never seen in training: 7", "Known labels: 0, 1", "--label_names"],
    ),
    (
        "missing label",
        lambda d, m, f: ["--train_file", _write(d, "n.csv", "text,label\ngood,1\nbad,\nfine,0\n"), "--do_train"],
        ["1 of 3 rows", "no label", "Fill or drop"],
    ),
    (
        "NaN / null label",
        lambda d, m, f: [
            "--train_file",
            _write(
                d,
                "n.jsonl",
                '{"text": "a", "label": "pos"}\n{"text": "b", "label": null}\n{"text": "c", "label": "neg"}\n',
            ),
            "--do_train",
        ],
        ["1 of 3 rows", "no label"],
    ),
    (
        "all texts empty",
        lambda d, m, f: ["--train_file", _write(d, "e.csv", 'text,label\n"",1\n"  ",0\n'), "--do_train"],
        ["all 2 rows", "empty 'text'", "--text_column"],
    ),
    (
        "a single class",
        lambda d, m, f: ["--train_file", _write(d, "o.csv", "text,label\ngood,1\nbad,1\n"), "--do_train"],
        ["single class", "--label_names"],
    ),
    (
        "multi-label rows of mixed types",
        lambda d, m, f: [
            "--train_file",
            _write(d, "m.jsonl", '{"text": "a", "labels": ["x"]}\n{"text": "b", "labels": "y"}\n'),
            "--do_train",
        ],
        ["must each hold a list", "row 2", "'y'"],
    ),
    (
        "labels of mixed types",
        lambda d, m, f: [
            "--train_file",
            _write(d, "m.jsonl", '{"text": "a", "label": 1}\n{"text": "b", "label": "pos"}\n'),
            "--do_train",
        ],
        ["mix types", "--problem_type single_label_classification"],
    ),
    (
        "non-numeric regression label",
        lambda d, m, f: [
            "--train_file",
            _write(d, "r.csv", "text,score\ngood,1.5\nbad,high\n"),
            "--do_train",
            "--problem_type",
            "regression",
        ],
        ["'high'", "not a number"],
    ),
    (
        "recipe with a JSON syntax error",
        lambda d, m, f: [_recipe(d, '{"learning_rate": 1e-4,\n "seed": }'), "--train_file", f["train"], "--do_train"],
        ["not valid JSON", "line 2, column 10"],
    ),
    (
        "recipe with an unknown key",
        lambda d, m, f: [_recipe(d, '{"learning_rat": 1e-4}'), "--train_file", f["train"], "--do_train"],
        ["unknown key 'learning_rat'", "Did you mean 'learning_rate'"],
    ),
    (
        "recipe with a wrong type",
        lambda d, m, f: [_recipe(d, '{"learning_rate": "fast"}'), "--train_file", f["train"], "--do_train"],
        ["recipe", "--learning_rate", "invalid float value: 'fast'"],
    ),
    (
        "unknown flag",
        lambda d, m, f: ["--train_file", f["train"], "--do_train", "--learning_rat", "1"],
        ["unknown flag '--learning_rat'", "Did you mean 'learning_rate'"],
    ),
    (
        "model folder that does not exist",
        lambda d, m, f: ["--model", str(d / "no-model"), "--train_file", f["train"], "--do_train"],
        ["no-model", "not a local folder", "local copy"],
    ),
    (
        "hub model while offline",
        lambda d, m, f: ["--model", "bert-base-uncased", "--train_file", f["train"], "--do_train"],
        ["'bert-base-uncased'", "offline", "Point --model_name_or_path at a local copy"],
    ),
    (
        "model with its own code, not trusted",
        lambda d, m, f: ["--model", _custom_code_model(d, m), "--train_file", f["train"], "--do_train"],
        ["ships its own model code", "--trust_remote_code"],
    ),
    (
        "saved head of another size",
        lambda d, m, f: [
            "--validation_file",
            write_rows(d / "v.csv", three_class_rows(6, 1)),
            "--do_eval",
        ],
        ["does not have 3 output(s)", "--do_train"],
    ),
    (
        "max_seq_length above the model's",
        lambda d, m, f: ["--train_file", f["train"], "--do_train", "--max_seq_length", "512"],
        ["512 is above this model's maximum of 64", "--max_seq_length 64"],
    ),
    (
        "max_train_samples 0",
        lambda d, m, f: ["--train_file", f["train"], "--do_train", "--max_train_samples", "0"],
        ["--max_train_samples 0 leaves no rows"],
    ),
    (
        "do_predict without a test set",
        lambda d, m, f: ["--train_file", f["train"], "--do_train", "--do_predict"],
        ["--do_predict needs a 'test' split", "--test_file"],
    ),
    (
        "LoRA target that does not exist",
        lambda d, m, f: ["--train_file", f["train"], "--do_train", "--use_lora", "--lora_target_modules", "qkv_nope"],
        ["qkv_nope", "do not exist"],
    ),
    ("fp16 on CPU", lambda d, m, f: ["--train_file", f["train"], "--do_train", "--fp16"], ["--fp16 needs a GPU"]),
    (
        "community metric, not trusted",
        lambda d, m, f: ["--validation_file", f["train"], "--do_eval", "--metric_name", "someone/metric"],
        ["community metric", "--trust_remote_code"],
    ),
    ("nothing to do", lambda d, m, f: ["--train_file", f["train"]], ["nothing to do", "--do_train"]),
    (
        "label smoothing on regression",
        lambda d, m, f: (
            ["--train_file", _write(d, "g.csv", "text,label\ngood,0.5\nbad,1.5\n"), "--do_train"]
            + ["--label_smoothing_factor", "0.1"]
        ),
        ["--label_smoothing_factor", "regression", "single-label"],
    ),
    (
        "label smoothing on multi-label",
        lambda d, m, f: (
            ["--train_file", _write(d, "m.jsonl", '{"text": "a", "labels": ["x"]}\n'), "--do_train"]
            + ["--label_smoothing_factor", "0.1"]
        ),
        ["--label_smoothing_factor", "multi_label_classification", "single-label"],
    ),
    (
        "prediction_loss_only with do_predict",
        lambda d, m, f: ["--test_file", f["train"], "--do_predict", "--prediction_loss_only", "true"],
        ["--prediction_loss_only", "no predictions", "--do_predict"],
    ),
    (
        "eval_do_concat_batches false",
        lambda d, m, f: ["--train_file", f["train"], "--do_train", "--eval_do_concat_batches", "false"],
        ["--eval_do_concat_batches false", "every batch", "Drop the flag"],
    ),
    (
        "batch_eval_metrics",
        lambda d, m, f: ["--train_file", f["train"], "--do_train", "--batch_eval_metrics", "true"],
        ["--batch_eval_metrics", "every prediction", "--eval_accumulation_steps"],
    ),
    (
        "scheduler without its settings",
        lambda d, m, f: ["--train_file", f["train"], "--do_train", "--lr_scheduler_type", "warmup_stable_decay"],
        ["--lr_scheduler_type warmup_stable_decay", "num_decay_steps", "--lr_scheduler_kwargs"],
    ),
    (
        "optimizer from a package that is not installed",
        lambda d, m, f: ["--train_file", f["train"], "--do_train", "--optim", "adamw_bnb_8bit"],
        ["--optim adamw_bnb_8bit", "pip install -U bitsandbytes"],
    ),
    (
        "liger kernels not installed",
        lambda d, m, f: ["--train_file", f["train"], "--do_train", "--use_liger_kernel", "true"],
        ["--use_liger_kernel", "pip install liger-kernel"],
    ),
    (
        "metric_for_best_model the task does not compute",
        lambda d, m, f: (
            ["--train_file", f["train"], "--validation_file", f["train"], "--do_train", "--do_eval"]
            + [
                "--eval_strategy",
                "epoch",
                "--save_strategy",
                "epoch",
                "--load_best_model_at_end",
                "--metric_for_best_model",
            ]
            + ["f1"]
        ),
        ["--metric_for_best_model f1", "accuracy", "macro_f1", "loss"],
    ),
    (
        "eval_strategy without a validation split",
        lambda d, m, f: ["--train_file", f["train"], "--do_train", "--eval_strategy", "epoch"],
        ["--eval_strategy epoch needs a 'validation' split", "--validation_file"],
    ),
    (
        "batch size 0",
        lambda d, m, f: ["--train_file", f["train"], "--do_train", "--per_device_train_batch_size", "0"],
        ["--per_device_train_batch_size 0", "1 or more"],
    ),
    (
        "negative learning rate",
        lambda d, m, f: ["--train_file", f["train"], "--do_train", "--learning_rate", "-1"],
        ["--learning_rate -1", "0 or more"],
    ),
    (
        "zero epochs",
        lambda d, m, f: ["--train_file", f["train"], "--do_train", "--num_train_epochs", "0"],
        ["--num_train_epochs 0", "trains nothing", "--do_train"],
    ),
    (
        "label names for regression",
        lambda d, m, f: (
            ["--train_file", _write(d, "g.csv", "text,label\ngood,0.5\nbad,1.5\n"), "--do_train"]
            + ["--label_names", "neg", "pos"]
        ),
        ["--label_names", "regression", "no classes"],
    ),
    (
        "a transformers 4 flag",
        lambda d, m, f: ["--train_file", f["train"], "--do_train", "--group_by_length"],
        ["--group_by_length", "--train_sampling_strategy group_by_length"],
    ),
]


def _training_with(*flags):
    return lambda d, m, f: ["--train_file", f["train"], "--do_train", *flags]


def _regression_with(*flags):  # float labels: a regression
    rows = "text,label\ngood,0.5\nbad,1.5\nok,1.25\n"
    return lambda d, m, f: ["--train_file", _write(d, "r.csv", rows), "--do_train", *flags]


# Values that crashed mid-run (a traceback, recipe.json left behind) or were accepted and did something else.
BAD_NUMBERS = [
    ("--max_seq_length", "-5", "pass 1 or more tokens"),
    ("--max_seq_length", "0", "pass 1 or more tokens"),
    ("--gradient_accumulation_steps", "0", "1 or more"),
    ("--seed", "-1", "from 0 to 4294967295"),
    ("--label_smoothing_factor", "1.5", "up to, not including, 1"),
    ("--dataloader_num_workers", "-1", "0 (load in the main process)"),
    ("--weight_decay", "-1", "0 or more"),
    ("--save_total_limit", "0", "the newest, for resume"),
]
BAD_INPUTS += [
    (f"{flag} {value}", _training_with(flag, value), [f"{flag} {value}", fix]) for flag, value, fix in BAD_NUMBERS
]
BAD_INPUTS += [
    (
        "calibration without a validation split",
        _training_with("--calibrate", "temperature"),
        ["--calibrate temperature is fitted on the validation split", "--do_eval"],
    ),
    (
        "calibrating a regression",
        _regression_with("--calibrate", "temperature"),
        ["--calibrate temperature scales class probabilities", "regression"],
    ),
    (
        "a temperature of 0",
        _training_with("--calibration_temperature", "0"),
        ["--calibration_temperature must be above 0 (got 0.0)", "1 changes nothing"],
    ),
    (
        "a temperature given and one to fit",
        _training_with("--calibrate", "temperature", "--calibration_temperature", "2"),
        ["--calibrate temperature fits a temperature and --calibration_temperature gives one", "one of them"],
    ),
    (
        "a temperature for a regression",
        _regression_with("--calibration_temperature", "2"),
        ["--calibration_temperature scales single-label class probabilities, not a regression's", "Drop the flag"],
    ),
    (
        "a temperature for a multi-label task",
        lambda d, m, f: [
            "--train_file",
            _write(d, "ml.jsonl", '{"text": "a", "labels": ["x"]}\n{"text": "b", "labels": ["x", "y"]}\n'),
            "--do_train",
            "--calibration_temperature",
            "2",
        ],
        ["--calibration_temperature scales single-label class probabilities, not a multi label classification's"],
    ),
    (
        "a tsv saved as .csv, commas in its texts",
        lambda d, m, f: [
            "--train_file",
            _write(d, "t.csv", "text\tlabel\ngood, fine\t1\nbad\t0\nok, ok, ok\t1\n"),
            "--do_train",
        ],
        ["its fields look separated by '\\t'", "tab-separated as .tsv"],
    ),
    (
        "a list of strings as the text",
        lambda d, m, f: [
            "--train_file",
            write_rows(d / "lists.parquet", [{"text": ["a", "b"], "label": i % 2} for i in range(6)]),
            "--do_train",
        ],
        ["column 'text' of the train split holds a list in each row", "Join"],
    ),
    (
        "not UTF-8 deep in the file",
        lambda d, m, f: [
            "--train_file",
            _write(d, "deep.csv", b"text,label\n" + b"good fine,1\n" * 40 + b"caf\xe9,1\n"),
            "--do_train",
        ],
        ["not UTF-8", "byte 0xe9 at offset 494, line 42"],
    ),
    (
        "a bad jsonl line, counted from 1",
        lambda d, m, f: [
            "--train_file",
            _write(d, "b6.jsonl", '{"text": "a", "label": 1}\n' * 5 + '{"text": "b", \n'),
            "--do_train",
        ],
        ["line 6 is not a JSON object"],
    ),
    (
        "one fraction among class ids",
        lambda d, m, f: [
            "--train_file",
            _write(d, "frac.csv", "text,label\n" + "".join(f"t {i},{i % 3}\n" for i in range(30)) + "odd,2.5\n"),
            "--do_train",
        ],
        ["whole numbers (0, 1, 2) except 1 of 31", "2.5", "--problem_type regression"],
    ),
    (
        "two columns of one name",
        lambda d, m, f: ["--train_file", _write(d, "dup.csv", "text,label,text\na,1,b\nc,0,d\n"), "--do_train"],
        ["several columns named 'text'"],
    ),
    (
        "save_steps 0",
        _training_with("--save_strategy", "steps", "--save_steps", "0"),
        ["--save_steps 0", "never save", "1 or more"],
    ),
    (
        "eval_steps 0",
        lambda d, m, f: [
            *_training_with("--eval_strategy", "steps", "--eval_steps", "0")(d, m, f),
            *["--validation_file", f["train"]],
        ],
        ["--eval_steps 0", "never eval"],
    ),
    (
        "a scheduler setting that is not a number",
        _training_with(
            "--lr_scheduler_type", "cosine_with_restarts", "--lr_scheduler_kwargs", '{"num_cycles": "two"}'
        ),
        ["--lr_scheduler_type cosine_with_restarts", "--lr_scheduler_kwargs"],
    ),
]


@pytest.fixture(scope="module")
def two_class_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bad-input-data")
    return {
        "train": write_rows(
            folder / "train.csv", [{"sentence": r["sentence"], "label": r["label"]} for r in sentiment_rows(8)]
        )
    }


@pytest.mark.parametrize("build, words", [case[1:] for case in BAD_INPUTS], ids=[case[0] for case in BAD_INPUTS])
def test_bad_input_one_clear_line_exit_2_no_output_dir(tiny_bert, two_class_files, tmp_path, capsys, build, words):
    flags = build(tmp_path, tiny_bert, two_class_files)
    recipe = [flags.pop(0)] if flags[0].endswith(".json") else []  # a recipe comes first
    model = [] if "--model" in flags else ["--model", tiny_bert]
    out = tmp_path / "out"
    code = R.cli([*recipe, *model, *flags, "--output_dir", str(out), "--use_cpu"])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("error: ")]
    assert code == 2, err[-3000:]
    assert len(lines) == 1 and "Traceback" not in err
    for word in words:
        assert word in lines[0], (word, lines[0])
    assert not out.exists()
    assert not (tmp_path / "CODE_RAN").exists()


@pytest.mark.parametrize("where", ["a file", "read-only", "empty"])
def test_an_output_dir_that_cannot_be_written_is_one_clear_error(tiny_bert, two_class_files, tmp_path, capsys, where):
    if where == "a file":
        out, words = tmp_path / "file", ["is a file, not a folder"]
        out.write_text("x")
    elif where == "read-only":
        if os.geteuid() == 0:
            pytest.skip("root writes into read-only folders")  # (CI runs as root: the file case covers the path)
        parent = tmp_path / "ro"
        parent.mkdir(mode=0o500)
        out, words = parent / "out", ["cannot write into output_dir"]
    else:
        out, words = "", ["--output_dir is empty"]
    argv = ["--model", tiny_bert, "--train_file", two_class_files["train"], "--do_train", "--output_dir", str(out)]
    assert R.cli(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and all(w in err for w in words), err
    assert sorted(os.listdir(tmp_path)) == sorted(
        ["file"] if where == "a file" else ["ro"] if where == "read-only" else []
    )


def test_non_empty_output_dir_is_left_as_it_was(tiny_bert, two_class_files, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    code = R.cli(
        ["--model", tiny_bert, "--train_file", two_class_files["train"], "--do_train", "--output_dir", str(out)]
    )
    err = capsys.readouterr().err
    assert code == 2 and "no run of run_classification.py wrote (notes.txt)" in err and "Traceback" not in err
    assert os.listdir(out) == ["notes.txt"] and (out / "notes.txt").read_text() == "mine"


def test_some_empty_texts_are_counted_and_kept(caplog):
    texts = T.clean_texts(["good", "", "   ", None, "bad"], "text", "train")
    assert texts == ["good", "", "   ", "", "bad"]
    assert "3 of 5 rows in the train split have an empty 'text'; they are kept as empty input" in caplog.text


def test_trust_remote_code_is_off_unless_asked_and_says_so_when_on(tiny_bert, tmp_path, capsys):
    model_args = parse_args(["--output_dir", "o"])[0]
    assert model_args.trust_remote_code is False
    argv = [
        "--model",
        tiny_bert,
        "--train_file",
        str(tmp_path / "nope.csv"),
        "--do_train",
        "--output_dir",
        str(tmp_path / "o"),
    ]
    R.cli(argv)
    assert "trust_remote_code is ON" not in capsys.readouterr().out
    R.cli([*argv, "--trust_remote_code"])
    assert "trust_remote_code is ON" in capsys.readouterr().out
