"""Recipe parsing: defaults < recipe < command line, unknown keys with suggestions, readable errors."""

import json

import pytest

from textcls.config.args import parse_args
from textcls.errors import UserError


def write(tmp_path, obj, name="r.json"):
    path = tmp_path / name
    path.write_text(obj if isinstance(obj, str) else json.dumps(obj))
    return str(path)


def test_defaults_recipe_cli_precedence(tmp_path):
    recipe = write(
        tmp_path,
        {
            "learning_rate": 3e-4,
            "num_train_epochs": 7,
            "use_lora": True,
            "output_dir": "o",
            "lora_target_modules": ["query", "value"],
            "label_names": ["neg", "pos"],
        },
    )
    m, d, lora, t, resolved = parse_args([recipe, "--learning_rate", "1e-5", "--model", "bert"])
    assert t.learning_rate == 1e-5  # CLI beats recipe
    assert t.num_train_epochs == 7  # recipe beats default
    assert t.per_device_train_batch_size == 8  # default
    assert lora.use_lora is True and lora.lora_target_modules == ["query", "value"]
    assert m.model_name_or_path == "bert"  # --model alias
    assert d.label_names == ["neg", "pos"] and t.label_names is None
    assert resolved["learning_rate"] == 1e-5 and resolved["num_train_epochs"] == 7


def test_fast_path_and_ddp_defaults():
    _, _, _, t, _ = parse_args(["--output_dir", "o"])
    assert t.train_sampling_strategy == "group_by_length"
    assert t.average_tokens_across_devices is False
    assert t.per_device_eval_batch_size == 64  # length-sorted evaluation makes large batches cheap
    _, _, _, t, _ = parse_args(["--output_dir", "o", "--per_device_eval_batch_size", "4"])
    assert t.per_device_eval_batch_size == 4


def test_cli_can_turn_off_recipe_bool(tmp_path):
    recipe = write(tmp_path, {"use_lora": True, "do_train": True})
    _, _, lora, t, _ = parse_args([recipe, "--use_lora", "false"])
    assert lora.use_lora is False and t.do_train is True


def test_resolved_recipe_replays_identically(tmp_path):
    first = parse_args(
        [
            "--model",
            "m",
            "--output_dir",
            "o",
            "--learning_rate",
            "2e-5",
            "--do_train",
            "--lr_scheduler_kwargs",
            '{"power": 2.0}',
            "--label_names",
            "a",
            "b",
        ]
    )
    replay = write(tmp_path, {k: v for k, v in first[-1].items() if v is not None})
    second = parse_args([replay])
    assert second[-1] == first[-1]
    assert second[3].lr_scheduler_kwargs == {"power": 2.0}


@pytest.mark.parametrize(
    "recipe, words",
    [
        ({"learning_rte": 1e-4}, ["unknown key 'learning_rte'", "learning_rate"]),
        ({"learning_rate": "fast"}, ["learning_rate", "invalid float value", "r.json"]),
        ({"do_train": "maybe"}, ["do_train"]),
        ('{"learning_rate": 1e-4,\n "seed": }', ["not valid JSON", "line 2", "column"]),
        ("[1, 2]", ["JSON object"]),
    ],
)
def test_bad_recipes(tmp_path, recipe, words):
    with pytest.raises(UserError) as e:
        parse_args([write(tmp_path, recipe)])
    for w in words:
        assert w in str(e.value)


def test_unknown_flag_suggests():
    with pytest.raises(UserError, match="unknown flag '--lerning_rate'.*learning_rate"):
        parse_args(["--lerning_rate", "1e-4"])


def test_no_abbreviations():
    # argparse would otherwise accept --learn as --learning_rate: a typo must not silently set something else.
    with pytest.raises(UserError, match="unknown flag"):
        parse_args(["--learn", "1e-4"])


def test_missing_recipe_file(tmp_path):
    with pytest.raises(UserError, match="cannot read recipe"):
        parse_args([str(tmp_path / "nope.json")])


def test_comment_keys_are_ignored(tmp_path):
    _, _, _, t, _ = parse_args([write(tmp_path, {"_source": "HF README", "seed": 3})])
    assert t.seed == 3


@pytest.mark.parametrize("terminal", [False, True])
def test_progress_bars_off_when_output_is_not_a_terminal(monkeypatch, terminal):
    """A log file gets one line per logging step instead of a progress-bar update per step; an explicit flag wins,
    and the recipe keeps the flag unset so that a replay decides again."""
    import sys

    monkeypatch.setattr(sys.stderr, "isatty", lambda: terminal, raising=False)
    *_, t, resolved = parse_args(["--model", "bert", "--output_dir", "o"])
    assert t.disable_tqdm is (not terminal) and resolved["disable_tqdm"] is None
    *_, t, _ = parse_args(["--model", "bert", "--output_dir", "o", "--disable_tqdm", "false"])
    assert t.disable_tqdm is False
    *_, t, _ = parse_args(["--model", "bert", "--output_dir", "o", "--disable_tqdm", "true"])
    assert t.disable_tqdm is True


@pytest.mark.parametrize(
    "value, expected",
    [("non_padding", "non_padding"), ("all", "all"), ("no", "no"), ("true", "all"), ("false", "no"), (None, "all")],
)
def test_text_or_bool_flag_takes_its_words(tmp_path, value, expected):
    """include_num_input_tokens_seen is `str | bool` in TrainingArguments; HfArgumentParser parses it as a bool and
    refused 'non_padding' and 'all'. From the command line and from a recipe."""
    flag = ["--include_num_input_tokens_seen"] + ([] if value is None else [value])
    _, _, _, t, resolved = parse_args(["--output_dir", "o", *flag])
    assert t.include_num_input_tokens_seen == expected
    if value is not None:
        recipe = write(
            tmp_path, {"output_dir": "o", "include_num_input_tokens_seen": resolved["include_num_input_tokens_seen"]}
        )
        assert parse_args([recipe])[3].include_num_input_tokens_seen == expected
    with pytest.raises(UserError, match="include_num_input_tokens_seen.*'some'.*all, non_padding, no"):
        parse_args(["--output_dir", "o", "--include_num_input_tokens_seen", "some"])


def test_transformers_4_flags_name_their_replacement():
    """Every flag in the table is gone from the parser, and every flag its replacement names exists."""
    import re

    from textcls.config.args import REMOVED_IN_TRANSFORMERS_5, _dests, build_parser

    dests = _dests(build_parser())
    for old, fix in REMOVED_IN_TRANSFORMERS_5.items():
        assert old not in dests, old
        for new in re.findall(r"--(\w+)", fix):
            assert new in dests, (old, new)
    with pytest.raises(UserError, match=r"'--warmup_ratio': transformers 5 removed it\. Use --warmup_steps 0\.1"):
        parse_args(["--output_dir", "o", "--warmup_ratio", "0.1"])
