"""scripts/majority_baseline.py: the training set's majority class predicted for every dev row, scored as a model."""

import json
import os
import sys

import pytest

from tests.helpers import ROOT, write_tsv

sys.path.insert(0, os.path.join(ROOT, "scripts"))
import majority_baseline  # noqa: E402  (scripts/ is put on the path just above)

HEADER = ["index", "sentence1", "sentence2", "label"]


def test_majority_of_train_scored_on_dev(tmp_path):
    # WNLI's file labels: 0 = not_entailment. Train: three 0s, one 1; dev: the opposite majority (two 1s, one 0).
    write_tsv(tmp_path / "WNLI", "train.tsv", [HEADER] + [[str(i), "a", "b", lab] for i, lab in enumerate("0001")])
    write_tsv(tmp_path / "WNLI", "dev.tsv", [HEADER] + [[str(i), "a", "b", lab] for i, lab in enumerate("110")])
    stsb = ["index", "genre", "filename", "year", "old_index", "source1", "source2", "sentence1", "sentence2", "score"]
    write_tsv(tmp_path / "STS-B", "train.tsv", [stsb, ["0", "g", "f", "y", "0", "s", "s", "a", "b", "1.0"]])
    out = tmp_path / "out" / "majority.json"
    assert majority_baseline.main([str(tmp_path), "--output", str(out)]) == 0
    record = json.loads(out.read_text())
    assert set(record["tasks"]) == {"wnli"}  # STS-B, a regression, has no majority class
    wnli = record["tasks"]["wnli"]
    assert wnli["majority_label"] == "not_entailment"
    assert wnli["train_counts"] == {"not_entailment": 3, "entailment": 1}
    assert wnli["metrics"]["eval_accuracy"] == pytest.approx(1 / 3)
    assert wnli["eval_share_of_majority"] == pytest.approx(1 / 3)
    assert "eval_roc_auc" not in wnli["metrics"]
    assert record["command"].startswith("python scripts/majority_baseline.py ")


def test_no_task_folder_is_an_error(tmp_path, capsys):
    assert majority_baseline.main([str(tmp_path), "--output", str(tmp_path / "x.json")]) == 2
    assert "no GLUE task folder" in capsys.readouterr().err
    assert not (tmp_path / "x.json").exists()
