"""Test-set predictions in the layout the GLUE server (gluebenchmark.com) scores: one TSV per task, zipped flat.

Each file has the header `index<TAB>prediction` and one row per test example in the test file's order: the label
name for the NLI tasks (MNLI, AX, QNLI, RTE), the class id 0/1 for CoLA, SST-2, MRPC, QQP and WNLI, and the STS-B
score clipped to [0, 5]. AX, the diagnostic set, is predicted by the MNLI model (hub config nyu-mll/glue "ax").

Assemble a submission from the output_dirs of --do_predict runs (one per task, plus the AX run):

    python -m textcls.evaluation.submission glue_submission outputs/glue/*/bert-base-cased \\
        outputs/glue/ax/bert-base-cased
"""

import argparse
import json
import os
import sys
import zipfile

from textcls.data.glue import GLUE_TASKS, get_glue_task
from textcls.data.load import split_suffix
from textcls.errors import UserError
from textcls.io import write_text_atomic

AX_FILE = "AX.tsv"
AX_LABELS = GLUE_TASKS["mnli"].label_names
# The server wants label names where the original files spell labels as names, and ids where they use digits.
_NAMED_LABELS = ("mnli", "ax", "qnli", "rte")
# Rows per test file of the official GLUE release: the server rejects a file with any other count.
TEST_ROWS = {
    "CoLA.tsv": 1063,
    "SST-2.tsv": 1821,
    "MRPC.tsv": 1725,
    "STS-B.tsv": 1379,
    "QQP.tsv": 390965,
    "MNLI-m.tsv": 9796,
    "MNLI-mm.tsv": 9847,
    "QNLI.tsv": 5463,
    "RTE.tsv": 3000,
    "WNLI.tsv": 146,
    AX_FILE: 1104,
}
SUBMISSION_FILES = tuple(TEST_ROWS)
_STSB_RANGE = (0.0, 5.0)


def submission_file(task_name: str, split_name: str) -> str:
    """GLUE server file name of a task's test split: ("mnli", "test_mismatched") -> "MNLI-mm.tsv"."""
    if task_name.lower() == "ax":
        return AX_FILE
    task = get_glue_task(task_name)
    if split_name not in task.test_splits:
        raise UserError(
            f"{split_name!r} is not a test split of GLUE {task.dir_name} ({', '.join(task.test_splits)}); the "
            "server scores test-set predictions only."
        )
    return task.submission_files[task.test_splits.index(split_name)]


def _index(row: dict, line: int) -> int:
    value = row.get("id")
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    raise UserError(
        f"prediction row {line} has id {value!r}, not the GLUE test index. Predict with --task_name (which uses the "
        "test set's 'idx' column as the id) or pass --id_column idx."
    )


def _prediction(task_name: str, row: dict, line: int) -> str:
    if task_name == "stsb":
        if "prediction" not in row:
            raise UserError(f"STS-B prediction row {line} has no 'prediction' score: was the model trained on STS-B?")
        low, high = _STSB_RANGE
        return f"{min(max(float(row['prediction']), low), high):.3f}"
    names = AX_LABELS if task_name == "ax" else GLUE_TASKS[task_name].label_names
    label = str(row.get("label"))
    # A model trained on files that spell labels as ids predicts "0"/"1"; one trained on the hub predicts names.
    ids = {name: i for i, name in enumerate(names)} | {str(i): i for i in range(len(names))}
    if label not in ids:
        raise UserError(
            f"prediction row {line} has label {label!r}, which is not a {task_name} label ({', '.join(names)}). "
            f"Predict with a model fine-tuned on {task_name}."
        )
    i = ids[label]
    return names[i] if task_name in _NAMED_LABELS else str(i)


def write_glue_submission(task_name: str, split_name: str, predictions_rows, out_dir: str) -> str:
    """Write one GLUE server file from predictions.jsonl rows (id, and label or, for STS-B, prediction).

    `task_name` is a GLUE task or "ax"; `split_name` the test split predicted (test, test_matched...). Returns the
    file's path: out_dir/<CoLA.tsv|SST-2.tsv|...>.
    """
    task_name = "ax" if task_name.lower() == "ax" else get_glue_task(task_name).name
    name = submission_file(task_name, split_name)
    lines = ["index\tprediction"]
    for i, row in enumerate(predictions_rows, start=1):
        lines.append(f"{_index(row, i)}\t{_prediction(task_name, row, i)}")
    path = os.path.join(out_dir, name)
    write_text_atomic(path, "\n".join(lines) + "\n")
    return path


def submission_problems(submission_dir: str) -> list[str]:
    """What keeps the folder from being accepted by the server: missing files, wrong row counts."""
    problems = []
    for name, expected in TEST_ROWS.items():
        path = os.path.join(submission_dir, name)
        if not os.path.isfile(path):
            problems.append(f"{name} is missing")
            continue
        with open(path, encoding="utf-8") as f:
            rows = sum(1 for _ in f) - 1
        if rows != expected:
            problems.append(f"{name} has {rows} predictions, the GLUE test set {expected} (--max_predict_samples?)")
    return problems


def zip_submission(submission_dir: str) -> str:
    """Zip the server files found in `submission_dir`, flat (the server reads them from the zip's root), into
    submission_dir/submission.zip. Returns the zip's path."""
    present = [name for name in SUBMISSION_FILES if os.path.isfile(os.path.join(submission_dir, name))]
    if not present:
        raise UserError(f"{submission_dir} holds none of the GLUE server files ({', '.join(SUBMISSION_FILES)}).")
    path = os.path.join(submission_dir, "submission.zip")
    tmp = path + ".tmp"
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name in present:
            zf.write(os.path.join(submission_dir, name), arcname=name)
    os.replace(tmp, path)
    return path


def _read_jsonl(path: str) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def collect_run(run_dir: str, submission_dir: str) -> list[str]:
    """Write the server files of one --do_predict output_dir (task read from its recipe.json). Returns their paths."""
    try:
        with open(os.path.join(run_dir, "recipe.json"), encoding="utf-8") as f:
            resolved = json.load(f)
    except FileNotFoundError:
        raise UserError(f"{run_dir} has no recipe.json: pass output_dirs of run_classification.py runs.") from None
    is_ax = (resolved.get("dataset_config_name") or "").lower() == "ax"
    if not resolved.get("task_name") and not is_ax:
        raise UserError(
            f"{run_dir} is not a GLUE run: its recipe.json has neither task_name nor dataset_config_name ax."
        )
    task_name = "ax" if is_ax else get_glue_task(resolved["task_name"]).name
    splits = ("test",) if is_ax else GLUE_TASKS[task_name].test_splits
    written = []
    for split in splits:
        suffix = split_suffix(split)
        path = os.path.join(run_dir, f"predictions{'_' + suffix if suffix else ''}.jsonl")
        if not os.path.isfile(path):
            raise UserError(f"{path} is missing: run {run_dir}'s recipe again with --do_predict.")
        written.append(write_glue_submission(task_name, split, _read_jsonl(path), submission_dir))
    return written


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description="Assemble GLUE server files and a zip from the output_dirs of --do_predict runs."
    )
    parser.add_argument("submission_dir", help="folder to write CoLA.tsv ... AX.tsv and submission.zip into")
    parser.add_argument("run_dirs", nargs="+", help="output_dirs of run_classification.py --do_predict runs")
    args = parser.parse_args(argv)
    try:
        for run_dir in args.run_dirs:
            for path in collect_run(run_dir, args.submission_dir):
                print(f"wrote {path}")
        print(f"zip: {zip_submission(args.submission_dir)}")
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    problems = submission_problems(args.submission_dir)
    for problem in problems:
        print(f"not ready to submit: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
