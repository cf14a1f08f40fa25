"""The entry point stays the thin pipeline it promises: main() calls exactly the steps textcls/__init__.py's table
lists, in that order, each one a function of the module the table names; nothing in textcls/ reaches back up into
the script."""

import ast
import importlib
import pathlib
import re

import textcls

ROOT = pathlib.Path(__file__).resolve().parents[1]
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
