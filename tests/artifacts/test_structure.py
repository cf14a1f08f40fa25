"""The entry point stays the thin pipeline it promises: main() calls exactly the steps textcls/__init__.py's table
lists, in that order, each one a function of the module the table names; nothing in textcls/ reaches back up into
the script."""

import ast
import importlib
import pathlib
import re

import pytest

import textcls
from tests import helpers

ROOT = pathlib.Path(helpers.ROOT)
SCRIPT = ROOT / "run_classification.py"


def table_steps():
    return re.findall(r"^\| [^|]+ \| (\w+\.\w+)\.(\w+) \|$", textcls.__doc__, flags=re.M)


def main_calls():
    """(module, function) of every call in main() and the run() it ends in, in source order, resolved through the
    script's imports; a step called again (a finished run's flags parsed again) counts once."""
    tree = ast.parse(SCRIPT.read_text())
    imported = {}
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("textcls"):
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                if (ROOT / node.module.replace(".", "/")).is_dir():
                    # from textcls.data import load as D: a module (folder.module)
                    imported[alias.asname or alias.name] = (full.removeprefix("textcls."), None)
                else:  # from textcls.config.args import parse_args: a function of a module
                    imported[alias.asname or alias.name] = (node.module.removeprefix("textcls."), alias.name)
    main = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "main")
    run = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "run")
    calls = []
    for node in [*ast.walk(main), *ast.walk(run)]:
        if not isinstance(node, ast.Call):
            continue
        f = node.func
        if isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name) and f.value.id in imported:
            calls.append((node.lineno, imported[f.value.id][0], f.attr))
        elif isinstance(f, ast.Name) and f.id in imported and imported[f.id][1] is not None:
            calls.append((node.lineno, *imported[f.id]))
    ordered = [(module, name) for _, module, name in sorted(calls)]
    return list(dict.fromkeys(ordered)), main


def test_main_calls_the_table_steps_in_order():
    steps = table_steps()
    assert len(steps) >= 15
    for module, name in steps:
        assert callable(getattr(importlib.import_module(f"textcls.{module}"), name)), f"{module}.{name}"
    calls, _ = main_calls()
    pipeline = [c for c in calls if c in steps]  # the constructors of carried state (RunData) are not steps
    assert pipeline == steps
    others = {c for c in calls if c not in steps}
    assert others == {
        ("data.load", "RunData"),
        ("evaluation.results", "git_state"),
        ("evaluation.results", "record_from_output_dir"),
        ("train.run_folder", "finished_results"),
        ("export.onnx", "onnx_file"),  # the branch between the PyTorch model and an exported graph
    }


def test_main_fits_on_a_screen_and_the_script_stays_thin():
    _, main = main_calls()
    assert main.end_lineno - main.lineno + 1 <= 60
    assert len(SCRIPT.read_text().splitlines()) < 200


def test_nothing_in_textcls_imports_the_script():
    for path in (ROOT / "textcls").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                assert all(a.name != "run_classification" for a in node.names), path
            if isinstance(node, ast.ImportFrom):
                assert node.module != "run_classification", path


# the names the parsed arguments go by in textcls/ and the script (RunArgs and its four groups)
PARSED = {"args", "data_args", "training_args", "model_args", "lora_args", "training"}


def _parsed_target(node) -> bool:
    """args.x, data_args.x, args.data.x, training.accelerator_config.x ... : an attribute of the parsed arguments."""
    while isinstance(node, ast.Attribute):
        node = node.value
    return isinstance(node, ast.Name) and node.id in PARSED


def test_nothing_writes_to_the_parsed_arguments_after_parsing():
    """Settings are decided once and passed on as frozen objects (textcls/__init__.py's second table): outside
    config/args.py no assignment, augmented assignment or setattr targets the parsed arguments."""
    found = []
    for path in [SCRIPT, *(ROOT / "textcls").rglob("*.py")]:
        if path == ROOT / "textcls" / "config" / "args.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            targets = []
            if isinstance(node, ast.Assign):
                targets = node.targets
            elif isinstance(node, ast.AugAssign | ast.AnnAssign):
                targets = [node.target]
            elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "setattr":
                targets = [node.args[0]] if node.args else []
            for target in targets:
                for t in target.elts if isinstance(target, ast.Tuple) else [target]:
                    if (isinstance(t, ast.Attribute) or node.__class__ is ast.Call) and _parsed_target(t):
                        found.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not found, found


# Signatures that mirror a transformers API, which calls them by keyword (a comment above each says so).
MIRRORS_AN_API = {"packed_sdpa"}


def test_no_function_takes_more_than_eight_parameters():
    """A wide signature is a sign of settings that belong in an object (Encoding, EvaluatedSplit, LongDocuments)."""
    wide = []
    for path in [SCRIPT, *(ROOT / "textcls").rglob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name not in MIRRORS_AN_API:
                a = node.args
                names = [x.arg for x in (*a.posonlyargs, *a.args, *a.kwonlyargs)] + [
                    x.arg for x in (a.vararg, a.kwarg) if x
                ]
                count = len([n for n in names if n not in ("self", "cls")])
                if count > 8:
                    wide.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({count})")
    assert not wide, wide


def test_no_test_file_imports_another():
    """What tests share lives in tests/helpers.py (and fixtures in conftest.py): a test file importing another would
    run that file's module code, and its tests would be collected twice under another name."""
    found = []
    for path in (ROOT / "tests").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            names += [a.name for a in node.names] if isinstance(node, ast.Import) else []
            found += [f"{path.relative_to(ROOT)}: {n}" for n in names if re.search(r"(^|\.)(test_\w+|conftest)$", n)]
    assert not found, found


def test_the_unit_tier_runs_no_pipeline():
    """tests/unit holds pure functions only: nothing there calls main() or cli(), or starts a process."""
    found = []
    for path in (ROOT / "tests" / "unit").rglob("*.py"):
        text = path.read_text()
        found += [
            f"{path.relative_to(ROOT)}: {w}" for w in ("R.main(", "R.cli(", "subprocess", "run_main(") if w in text
        ]
    assert not found, found


# Imported inside the function that needs them, with a comment or docstring saying why: heavy, optional to most runs.
LOCAL_IMPORTS = {
    "optuna", "peft", "matplotlib", "evaluate",  # search, LoRA, pictures, hub metrics
    "onnxruntime", "onnx_ir", "onnxscript",  # --export onnx
    "cleanlab", "setfit", "sentence_transformers",  # --find_label_issues, --method setfit
}  # fmt: skip


def _textcls_modules():
    for path in sorted((ROOT / "textcls").rglob("*.py")):
        name = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        yield name, ast.parse(path.read_text())


def test_imports_sit_at_the_top_of_each_module_unless_heavy_and_optional():
    local = []
    for name, tree in _textcls_modules():
        for fn in ast.walk(tree):
            if isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef):
                for node in ast.walk(fn):
                    if isinstance(node, ast.Import | ast.ImportFrom):
                        module = node.module if isinstance(node, ast.ImportFrom) else node.names[0].name
                        if module.split(".")[0] not in LOCAL_IMPORTS:
                            local.append(f"{name}.{fn.name}: {module}")
    assert not local, local


def test_the_import_graph_of_textcls_has_no_cycle():
    graph = {}
    for name, tree in _textcls_modules():
        edges = set()
        for node in tree.body:
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("textcls"):
                for alias in node.names:  # from textcls.data import load: the module textcls.data.load
                    full = f"{node.module}.{alias.name}"
                    edges.add(full if (ROOT / (full.replace(".", "/") + ".py")).is_file() else node.module)
            elif isinstance(node, ast.Import):
                edges.update(a.name for a in node.names if a.name.startswith("textcls"))
        graph[name] = {e for e in edges if e != name and not name.startswith(e + ".")}
    state = {}

    def visit(node, path):
        state[node] = "open"
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                pytest.fail("import cycle: " + " -> ".join(path[path.index(nxt) :] + [nxt]))
            if nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])


SCRIPTS = sorted(
    str(p.relative_to(ROOT))
    for p in [SCRIPT, *ROOT.glob("benchmarks/*.py"), *ROOT.glob("scripts/*.py")]
    if 'if __name__ == "__main__"' in p.read_text()
)


@pytest.mark.parametrize("path", SCRIPTS)
def test_every_scripts_help_prints_its_usage_and_exits_0(path, monkeypatch, capsys):
    """--help is what a new user types first. argparse %-formats help texts, so a plain "90%" in one made
    run_classification.py --help and the learning curve's crash with a TypeError; and scripts that read
    sys.argv by position took "--help" for a path."""
    import runpy

    monkeypatch.chdir(ROOT)
    monkeypatch.setattr("sys.argv", [path, "--help"])
    with pytest.raises(SystemExit) as stop:
        runpy.run_path(str(ROOT / path), run_name="__main__")
    assert stop.value.code in (0, None)
    assert "usage:" in capsys.readouterr().out
