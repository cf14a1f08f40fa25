"""Results files, the multi-seed runner, the results README generator and the GLUE submission writer, on small fake
result files and predictions: nothing here trains a model."""

import dataclasses
import importlib.util
import json
import os
import statistics
import zipfile
from pathlib import Path

import pytest

from tests.helpers import ROOT
from textcls.errors import UserError
from textcls.evaluation import results as R
from textcls.evaluation.submission import (
    SUBMISSION_FILES,
    collect_run,
    submission_problems,
    write_glue_submission,
    zip_submission,
)


def load_script(name):
    spec = importlib.util.spec_from_file_location(name, os.path.join(ROOT, "scripts", f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_recipe(root, rel="recipes/glue/rte/tiny.json", **values):
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    recipe = {"_command": f"python run_classification.py {rel}", "task_name": "rte", "output_dir": "out/rte"}
    path.write_text(json.dumps({**recipe, **values}))
    return str(path)


# ---- results files


def test_results_path_mirrors_the_recipe_path(tmp_path):
    recipe = tmp_path / "repo" / "recipes" / "glue" / "rte" / "bert-base-cased.json"
    assert R.results_path(str(recipe)) == str(tmp_path / "repo" / "results" / "glue" / "rte" / "bert-base-cased.json")
    assert R.results_path(os.path.join(ROOT, "recipes", "quickstart", "x.json")) == os.path.join(
        ROOT, "results", "quickstart", "x.json"
    )
    with pytest.raises(UserError, match="--results_file"):
        R.results_path(str(tmp_path / "elsewhere" / "x.json"))


def test_record_run_adds_replaces_and_summarises(tmp_path):
    recipe = write_recipe(tmp_path)
    path = str(tmp_path / "results" / "glue" / "rte" / "tiny.json")
    for seed, acc in ((3, 0.70), (1, 0.60), (2, 0.66)):
        data = R.record_run(path, seed, {"eval_accuracy": acc, "eval_loss": 1 - acc}, f"cmd {seed}", recipe)
    assert data == json.loads(open(path).read())
    assert data["schema_version"] == 1 and data["seeds"] == [1, 2, 3]
    assert [r["seed"] for r in data["runs"]] == [1, 2, 3]
    acc = data["summary"]["eval_accuracy"]
    assert acc["median"] == 0.66 and acc["n"] == 3 and acc["values"] == [0.60, 0.66, 0.70]
    assert acc["std"] == pytest.approx(statistics.stdev([0.60, 0.66, 0.70]))

    data = R.record_run(path, 2, {"eval_accuracy": 0.80}, "cmd 2 again", recipe)
    assert [r["command"] for r in data["runs"]] == ["cmd 1", "cmd 2 again", "cmd 3"]
    assert data["summary"]["eval_accuracy"]["median"] == 0.70
    assert data["summary"]["eval_loss"]["n"] == 2  # the rerun of seed 2 did not report it

    run = data["runs"][0]
    assert run["recipe_sha256"] == data["config_sha256"] and len(run["recipe_sha256"]) == 64
    assert set(run["environment"]) >= {
        "python",
        "packages",
        "platform",
        "cpu",
        "cpu_count",
        "cpu_flags",
        "gpus",
        "world_size",
        "torch_threads",
    }
    assert set(run["environment"]["packages"]) >= {"torch", "transformers", "peft", "accelerate", "datasets"}
    assert {"git_sha", "git_dirty", "date"} <= set(run)
    assert data["recipe"] == recipe  # outside the repository: kept as given
    assert os.listdir(os.path.dirname(path)) == ["tiny.json"]  # atomic writes leave no temporary file


def test_single_run_has_no_std(tmp_path):
    data = R.record_run(str(tmp_path / "r.json"), 0, {"eval_accuracy": 0.5}, "cmd", None)
    assert data["summary"]["eval_accuracy"] == {"median": 0.5, "std": None, "n": 1, "values": [0.5]}


def test_a_runs_peak_memory_is_its_own_not_its_parents():
    """This process (the test worker, torch loaded) is the parent of a small Python run: the run's record must hold the
    run's own peak, not this process's, which getrusage's ru_maxrss in the child would report (Linux keeps the
    pre-exec address space's high-water mark)."""
    import resource
    import subprocess
    import sys

    code = "from textcls.evaluation.results import peak_memory; print(peak_memory()['cpu_rss_bytes'])"
    child = int(subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True).stdout)
    ours = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    assert 0 < child < 100 * 2**20 < ours


def test_runs_of_another_configuration_are_kept_but_not_summarised(tmp_path):
    path = str(tmp_path / "r.json")
    R.record_run(path, 1, {"eval_accuracy": 0.5}, "old", None, {"config_sha256": "a"})
    R.record_run(path, 2, {"eval_accuracy": 0.6}, "old", None, {"config_sha256": "a"})
    data = R.record_run(path, 1, {"eval_accuracy": 0.9}, "new", None, {"config_sha256": "b"})
    assert [r["command"] for r in data["runs"]] == ["new"] and data["config_sha256"] == "b"
    assert data["summary"]["eval_accuracy"]["values"] == [0.9]
    assert [(r["seed"], r["config_sha256"]) for r in data["superseded_runs"]] == [(1, "a"), (2, "a")]


def test_config_hash_ignores_where_and_seed_only():
    base = {"learning_rate": 2e-5, "seed": 1, "output_dir": "a", "results_file": "x", "data_dir": "glue/RTE"}
    same = {**base, "seed": 2, "output_dir": "b", "data_dir": None}
    assert R.config_sha256(base) == R.config_sha256(same)
    assert R.config_sha256(base) != R.config_sha256({**base, "learning_rate": 3e-5})


def test_foreign_json_is_refused(tmp_path):
    (tmp_path / "r.json").write_text('{"a": 1}')
    with pytest.raises(UserError, match="schema version 1"):
        R.record_run(str(tmp_path / "r.json"), 1, {}, "cmd", None)
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(UserError, match="not valid JSON"):
        R.load_results(str(tmp_path / "bad.json"))


LOG_HISTORY = [
    {"epoch": 0.5, "step": 5, "loss": 0.69, "learning_rate": 1e-5},
    {"epoch": 1.0, "step": 10, "loss": 0.60, "learning_rate": 5e-6},
    {"epoch": 1.0, "step": 10, "eval_accuracy": 0.61, "eval_loss": 0.66, "eval_runtime": 1.0},
    {"epoch": 2.0, "step": 20, "loss": 0.50, "learning_rate": 0.0},
    {"epoch": 2.0, "step": 20, "eval_accuracy": 0.66, "eval_loss": 0.62, "eval_runtime": 1.0},
    {"epoch": 2.0, "step": 20, "train_runtime": 9.0, "train_loss": 0.59},
]


def fake_output_dir(path, seed, accuracy, lr=2e-5):
    path.mkdir(parents=True)
    resolved = {"task_name": "rte", "model_name_or_path": "m", "seed": seed, "output_dir": str(path), "lr": lr}
    resolved["do_train"] = True
    (path / "recipe.json").write_text(json.dumps(resolved))
    all_results = {
        "epoch": 2.0,
        "train_loss": 0.59,
        "train_runtime": 9.0,
        "train_samples_per_second": 20.0,
        "train_samples": 90,
        "trainable_params": 10,
        "total_params": 100,
        "trainable_params_pct": 10.0,
        "eval_accuracy": accuracy,
        "eval_loss": 0.62,
        "eval_runtime": 1.0,
        "eval_samples": 27,
        "predict_runtime": 0.5,
    }
    (path / "all_results.json").write_text(json.dumps(all_results))
    (path / "trainer_state.json").write_text(json.dumps({"log_history": LOG_HISTORY}))
    return str(path)


def test_record_from_output_dir(tmp_path):
    recipe = write_recipe(tmp_path)
    out = fake_output_dir(tmp_path / "out" / "seed-7", 7, 0.66)
    results_file = str(tmp_path / "results.json")
    argv = [recipe, "--seed", "7", "--output_dir", out, "--results_file", results_file]
    data = R.record_from_output_dir(results_file, out, argv, wall_time_s=12.345)
    run = data["runs"][0]
    assert run["seed"] == 7
    assert run["metrics"] == {"train_loss": 0.59, "eval_accuracy": 0.66, "eval_loss": 0.62}
    assert run["timing"] == {
        "train_runtime": 9.0,
        "train_samples_per_second": 20.0,
        "eval_runtime": 1.0,
        "predict_runtime": 0.5,
    }
    assert run["samples"] == {"train_samples": 90, "eval_samples": 27}
    assert (run["trainable_params"], run["total_params"]) == (10, 100)
    assert run["log_history"] == LOG_HISTORY
    assert run["command"].startswith(f"python run_classification.py {recipe} --seed 7 --output_dir ")
    assert run["wall_time_s"] == 12.3 and run["peak_memory"]["cpu_rss_bytes"] > 0
    assert run["task"] == "rte" and run["model"] == "m" and run["output_dir"] == out
    assert len(run["recipe_sha256"]) == 64 and data["config_sha256"] == run["config_sha256"]

    # Another seed of the same configuration joins the summary; the output_dir differs, the configuration does not.
    out2 = fake_output_dir(tmp_path / "out" / "seed-8", 8, 0.70)
    data = R.record_from_output_dir(results_file, out2, [recipe, "--seed", "8"], wall_time_s=1)
    assert data["seeds"] == [7, 8] and data["summary"]["eval_accuracy"]["median"] == pytest.approx(0.68)


def test_record_from_output_dir_needs_a_finished_run(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "recipe.json").write_text("{}")
    with pytest.raises(UserError, match="all_results.json is missing"):
        R.record_from_output_dir(str(tmp_path / "r.json"), str(tmp_path / "out"), [], 1.0)


# ---- scripts/run_seeds.py


@pytest.fixture
def run_seeds():
    return load_script("run_seeds")


def fake_runner(calls, fail_seed=None):
    """Stands in for the run_classification.py subprocess: records the run as the real script would."""

    def run(command):
        calls.append(command)
        seed = int(command[command.index("--seed") + 1])
        if seed == fail_seed:
            return 3
        results_file = command[command.index("--results_file") + 1]
        recipe = next(c for c in command if c.endswith(".json"))
        R.record_run(results_file, seed, {"eval_accuracy": 0.5 + seed / 100}, " ".join(command[1:]), recipe)
        return 0

    return run


def test_run_seeds_runs_each_seed_and_prints_the_summary(tmp_path, monkeypatch, capsys, run_seeds):
    recipe = write_recipe(tmp_path)
    calls = []
    monkeypatch.setattr(run_seeds, "run_one", fake_runner(calls))
    assert run_seeds.main([recipe, "--seeds", "1", "2", "3", "--", "--max_train_samples", "50"]) == 0
    results_file = str(tmp_path / "results" / "glue" / "rte" / "tiny.json")
    assert [c[1:] for c in calls] == [
        [
            run_seeds.SCRIPT,
            recipe,
            "--max_train_samples",
            "50",
            "--seed",
            str(seed),
            "--output_dir",
            os.path.join("out/rte", f"seed-{seed}"),
            "--results_file",
            results_file,
        ]
        for seed in (1, 2, 3)
    ]
    assert calls[0][0].endswith("python") or "python" in os.path.basename(calls[0][0])
    out = capsys.readouterr().out
    assert "seeds 1 2 3" in out
    assert "eval_accuracy" in out and "0.5200 +-  0.0100   3  0.5100 0.5200 0.5300" in out


def test_run_seeds_launcher_and_output_dir_override(tmp_path, monkeypatch, run_seeds):
    recipe = write_recipe(tmp_path)
    calls = []
    monkeypatch.setattr(run_seeds, "run_one", fake_runner(calls))
    flags = ["--launcher", "accelerate launch --num_processes 2", "--results_file", str(tmp_path / "r.json")]
    assert run_seeds.main([recipe, "--seeds", "4", *flags, "--", "--output_dir=elsewhere"]) == 0
    assert calls[0][:4] == ["accelerate", "launch", "--num_processes", "2"]
    assert calls[0][calls[0].index("--output_dir") + 1] == os.path.join("elsewhere", "seed-4")
    assert calls[0].count("--output_dir") == 1 and "--output_dir=elsewhere" not in calls[0]
    assert json.loads((tmp_path / "r.json").read_text())["seeds"] == [4]


def test_run_seeds_stops_at_the_first_failure(tmp_path, monkeypatch, capsys, run_seeds):
    recipe = write_recipe(tmp_path)
    calls = []
    monkeypatch.setattr(run_seeds, "run_one", fake_runner(calls, fail_seed=2))
    assert run_seeds.main([recipe, "--seeds", "1", "2", "3"]) == 3
    assert len(calls) == 2
    assert "seed 2 failed (exit code 3)" in capsys.readouterr().err


@pytest.mark.parametrize("flag", ["--seed", "--results_file=x"])
def test_run_seeds_refuses_flags_it_sets(tmp_path, monkeypatch, capsys, run_seeds, flag):
    recipe = write_recipe(tmp_path)
    monkeypatch.setattr(run_seeds, "run_one", fake_runner([]))
    assert run_seeds.main([recipe, "--seeds", "1", "--", flag, "5"]) == 2
    assert "set per seed by run_seeds.py" in capsys.readouterr().err


def test_run_seeds_needs_an_output_dir(tmp_path, capsys, run_seeds):
    recipe = write_recipe(tmp_path, output_dir=None)
    assert run_seeds.main([recipe, "--seeds", "1"]) == 2
    assert "has no output_dir" in capsys.readouterr().err


# ---- scripts/make_results_readme.py

PUBLISHED = {
    "sources": [
        {
            "id": "hf_run_glue_bert_base_cased",
            "model": "bert-base-cased",
            "source": "HF README",
            "results": {"rte": {"acc": 65.70}, "mrpc": {"f1": 88.85, "acc": 84.07}},
        },
        {
            "id": "lora_paper_table2_roberta_base",
            "model": "roberta-base",
            "source": "LoRA paper",
            "runs": "median of 5 seeds",
            "results": {"mnli": {"acc": 87.5, "pm": 0.3, "acc_m_mm_readme": "87.5/86.9"}},
        },
        {
            "id": "distilbert_paper_table1_dev",
            "model": "distilbert",
            "source": "DistilBERT paper",
            "results_distilbert": {"score": 77.0, "cola": 51.3},
        },
        {
            "id": "minilm_card",
            "model": "MiniLM",
            "source": "MiniLM card",
            "results": {"MiniLM-L6xH384": {"params": "22M", "rte": 68.8, "mnli_m": 83.3}},
        },
    ]
}


def fake_results(results_dir, rel, runs, task="rte"):
    """Write a results file with (seed, metrics) runs through record_run, as real runs do."""
    path = str(results_dir / rel)
    for seed, metrics in runs:
        extra = {
            "task": task,
            "log_history": LOG_HISTORY,
            "date": "2025-02-03T10:00:00+00:00",
            "environment": {"gpus": ["NVIDIA H200"], "cpu": "x", "cpu_count": 16, "world_size": 1},
        }
        R.record_run(path, seed, metrics, "cmd", None, extra)


@pytest.fixture
def results_dir(tmp_path):
    results = tmp_path / "results"
    fake_results(
        results,
        "glue/rte/bert-base-cased.json",
        [(1, {"eval_accuracy": 0.65, "eval_loss": 0.6}), (2, {"eval_accuracy": 0.67}), (3, {"eval_accuracy": 0.66})],
    )
    fake_results(
        results,
        "glue/mrpc/bert-base-cased.json",
        [(1, {"eval_f1": 0.89, "eval_accuracy": 0.85})],
        task="mrpc",
    )
    fake_results(
        results,
        "glue/mnli/roberta-base_lora.json",
        [(1, {"eval_matched_accuracy": 0.87, "eval_mismatched_accuracy": 0.86})],
        task="mnli",
    )
    fake_results(results, "glue/cola/distilbert-base-uncased.json", [(1, {"eval_matthews_correlation": 0.5})], "cola")
    fake_results(results, "glue/rte/all-MiniLM-L6-v2.json", [(1, {"eval_accuracy": 0.6})])
    fake_results(results, "glue/rte/all-MiniLM-L6-v2_hf-readme.json", [(1, {"eval_accuracy": 0.55})])
    fake_results(results, "glue/wnli/all-MiniLM-L6-v2.json", [(1, {"eval_accuracy": 0.5634})], "wnli")
    majority = {"command": "c", "date": "d", "tasks": {"rte": {"metrics": {"eval_accuracy": 0.5271}}}}
    (results / "baselines").mkdir()
    (results / "baselines" / "glue-majority-class.json").write_text(json.dumps(majority))
    (results / "hp_search" / "rte").mkdir(parents=True)
    (results / "hp_search" / "rte" / "all-MiniLM-L6-v2.json").write_text('{"trials": []}')  # not a results file
    fake_results(results, "quickstart/sst2-sample.json", [(1, {"eval_accuracy": 0.87, "eval_macro_f1": 0.86})], "x")
    published = tmp_path / "glue_published.json"
    published.write_text(json.dumps(PUBLISHED))
    return results, str(published)


def test_results_readme_tables(results_dir):
    make = load_script("make_results_readme")
    results, published = results_dir
    text = make.render(str(results), make.load_published(published), plt=None)
    assert "Plots skipped: matplotlib is not installed" in text
    assert "## glue" in text and "## quickstart" in text
    # same model: ours, the published number, its source and the delta
    assert "Published: `hf_run_glue_bert_base_cased` (same model and method)." in text
    assert "| RTE | accuracy | 66.00 ± 1.00 (n=3) | 65.70 | +0.30 | 1x NVIDIA H200 | 2025-02-03 |" in text
    assert "| MRPC | F1 | 89.00 (n=1) | 88.85 | +0.15 |" in text
    assert "| MRPC | accuracy | 85.00 (n=1) | 84.07 | +0.93 |" in text
    # LoRA: a lone MNLI accuracy is the matched set's, with the paper's spread; mismatched has no published number
    assert "| MNLI | accuracy (matched) | 87.00 (n=1) | 87.50 ± 0.3 | -0.50 |" in text
    assert "| MNLI | accuracy (mismatched) | 86.00 (n=1) | — | — |" in text
    # a number without a named metric is marked
    assert "| CoLA | MCC | 50.00 (n=1) | 51.30 ‡ | -1.30 |" in text
    # no published numbers for the model: the reference is labelled as a different model
    minilm = text[text.index("### all-MiniLM-L6-v2") :]
    assert "`minilm_card`, MiniLM-L6xH384, **a different model**" in minilm
    # its baseline, measured beside it, and the majority class are columns of its table, not a model of their own
    assert "### all-MiniLM-L6-v2_hf-readme" not in text
    assert (
        "| task | metric | ours: median ± std (n seeds) | run_glue.py's settings (HF README), same model: median "
        "± std (n) | Δ ours − it | majority class | reference (different model) | Δ |"
    ) in minilm
    assert "| RTE | accuracy | 60.00 (n=1) | 55.00 (n=1) | +5.00 | 52.71 | 68.80 ‡ | -8.80 |" in minilm
    assert "| WNLI | accuracy | 56.34 (n=1) | — | — | — | — | — |" in minilm
    # no WNLI baseline run: no average for it; ours averages the two tasks' scores
    assert "| **average of these 2 tasks** | each task's metrics averaged | **58.17** | — | — | — | — | — |" in minilm
    assert make.WNLI_NOTE in minilm
    # a benchmark without published numbers lists its metrics
    quick = text[text.index("## quickstart") :]
    assert "| x | accuracy | 87.00 (n=1) | — | — |" in quick and "| x | macro_f1 | 86.00 (n=1) | — | — |" in quick
    assert "- `lora_paper_table2_roberta_base`: roberta-base; LoRA paper. median of 5 seeds." in text


def test_results_readme_plots_and_main(results_dir, capsys):
    pytest.importorskip("matplotlib")
    make = load_script("make_results_readme")
    results, published = results_dir
    (results / "plots" / "stale.png").parent.mkdir(parents=True)
    (results / "plots" / "stale.png").write_bytes(b"")
    assert make.main(["--results_dir", str(results), "--published", published]) == 0
    text = (results / "README.md").read_text()
    assert "![ours vs published](plots/glue/vs_published.png)" in text
    assert "[1](plots/glue/rte/bert-base-cased/seed-1.png) [2](plots/glue/rte/bert-base-cased/seed-2.png)" in text
    for png in ("glue/vs_published.png", "glue/rte/bert-base-cased/seed-3.png", "quickstart/x/sst2-sample/seed-1.png"):
        assert (results / "plots" / png).read_bytes().startswith(b"\x89PNG"), png
    assert not (results / "plots" / "stale.png").exists()


def test_results_readme_without_results_or_published(tmp_path, capsys):
    make = load_script("make_results_readme")
    results = tmp_path / "results"
    results.mkdir()
    assert make.main(["--results_dir", str(results), "--published", str(tmp_path / "none.json")]) == 2
    assert "pass --published" in capsys.readouterr().err
    (tmp_path / "p.json").write_text(json.dumps(PUBLISHED))
    assert make.main(["--results_dir", str(results), "--published", str(tmp_path / "p.json")]) == 0
    text = (results / "README.md").read_text()
    assert "No results yet" in text
    # the published rows our recipes target show without our runs, with the recipe and why it was not run
    assert "### bert-base-cased" in text and "### roberta-base_lora" in text
    row = "| RTE | accuracy | 65.70 | `python run_classification.py recipes/glue/rte/bert-base-cased.json` |"
    assert row + " not run here: needs google-bert/bert-base-cased from the hub and a GPU |" in text
    assert "- `hf_run_glue_bert_base_cased`: bert-base-cased; HF README." in text


# ---- textcls/evaluation/submission.py


def rows(labels, start=0):
    return [{"id": start + i, "text": "t", "label": label} for i, label in enumerate(labels)]


def test_glue_submission_files_and_formats(tmp_path):
    out = str(tmp_path / "sub")
    write_glue_submission("cola", "test", rows(["acceptable", "unacceptable"]), out)
    write_glue_submission("sst2", "test", rows(["positive", "negative"]), out)
    write_glue_submission("mrpc", "test", rows(["equivalent", "not_equivalent"]), out)
    write_glue_submission("qqp", "test", rows(["duplicate", "not_duplicate"]), out)
    write_glue_submission("wnli", "test", rows(["entailment", "not_entailment"]), out)
    write_glue_submission("rte", "test", rows(["not_entailment", "entailment"]), out)
    write_glue_submission("qnli", "test", rows(["entailment"]), out)
    write_glue_submission("mnli", "test_matched", rows(["neutral", "contradiction"]), out)
    write_glue_submission("mnli", "test_mismatched", rows(["entailment"], start=5), out)
    write_glue_submission("ax", "test", rows(["contradiction"]), out)
    stsb = [{"id": 0, "prediction": 3.14159}, {"id": 1, "prediction": -0.2}, {"id": 2, "prediction": 5.7}]
    write_glue_submission("stsb", "test", stsb, out)

    def read(name):
        return (tmp_path / "sub" / name).read_text()

    assert sorted(os.listdir(out)) == sorted(SUBMISSION_FILES)
    assert read("CoLA.tsv") == "index\tprediction\n0\t1\n1\t0\n"
    assert read("SST-2.tsv") == "index\tprediction\n0\t1\n1\t0\n"
    assert read("MRPC.tsv") == "index\tprediction\n0\t1\n1\t0\n"
    assert read("QQP.tsv") == "index\tprediction\n0\t1\n1\t0\n"
    assert read("WNLI.tsv") == "index\tprediction\n0\t1\n1\t0\n"
    assert read("RTE.tsv") == "index\tprediction\n0\tnot_entailment\n1\tentailment\n"
    assert read("QNLI.tsv") == "index\tprediction\n0\tentailment\n"
    assert read("MNLI-m.tsv") == "index\tprediction\n0\tneutral\n1\tcontradiction\n"
    assert read("MNLI-mm.tsv") == "index\tprediction\n5\tentailment\n"
    assert read("AX.tsv") == "index\tprediction\n0\tcontradiction\n"
    assert read("STS-B.tsv") == "index\tprediction\n0\t3.142\n1\t0.000\n2\t5.000\n"

    path = zip_submission(out)
    assert path == os.path.join(out, "submission.zip")
    with zipfile.ZipFile(path) as zf:
        assert sorted(zf.namelist()) == sorted(SUBMISSION_FILES)
        assert zf.read("RTE.tsv").decode() == read("RTE.tsv")
    problems = submission_problems(out)
    assert "CoLA.tsv has 2 predictions, the GLUE test set 1063 (--max_predict_samples?)" in problems
    assert len(problems) == len(SUBMISSION_FILES)


def test_glue_submission_accepts_label_ids_and_string_ids(tmp_path):
    path = write_glue_submission("CoLA", "test", [{"id": "7", "label": "1"}, {"id": 8, "label": "0"}], str(tmp_path))
    assert open(path).read() == "index\tprediction\n7\t1\n8\t0\n"


@pytest.mark.parametrize(
    "task, split, row, message",
    [
        ("rte", "test", {"id": 0, "label": "positive"}, "not a rte label"),
        ("rte", "test", {"id": None, "label": "entailment"}, "not the GLUE test index"),
        ("rte", "validation", {"id": 0, "label": "entailment"}, "not a test split"),
        ("mnli", "test", {"id": 0, "label": "neutral"}, "not a test split"),
        ("stsb", "test", {"id": 0, "label": "x"}, "no 'prediction' score"),
        ("boolq", "test", {"id": 0, "label": "x"}, "unknown GLUE task"),
    ],
)
def test_glue_submission_bad_input(tmp_path, task, split, row, message):
    with pytest.raises(UserError, match=message):
        write_glue_submission(task, split, [row], str(tmp_path))


def test_zip_submission_of_an_empty_folder(tmp_path):
    with pytest.raises(UserError, match="holds none of the GLUE server files"):
        zip_submission(str(tmp_path))


def write_run(run_dir, recipe, predictions):
    run_dir.mkdir(parents=True)
    (run_dir / "recipe.json").write_text(json.dumps(recipe))
    for name, labels in predictions.items():
        (run_dir / name).write_text("".join(json.dumps(r) + "\n" for r in rows(labels)))
    return str(run_dir)


def test_submission_cli_collects_runs(tmp_path, capsys):
    from textcls.evaluation import submission

    rte = write_run(tmp_path / "rte", {"task_name": "rte"}, {"predictions.jsonl": ["entailment"]})
    mnli = write_run(
        tmp_path / "mnli",
        {"task_name": "mnli"},
        {"predictions_matched.jsonl": ["neutral"], "predictions_mismatched.jsonl": ["entailment"]},
    )
    ax = write_run(tmp_path / "ax", {"dataset_config_name": "ax"}, {"predictions.jsonl": ["contradiction"]})
    out = str(tmp_path / "sub")
    assert submission.main([out, rte, mnli, ax]) == 1  # written, but not every task is there
    assert sorted(os.listdir(out)) == ["AX.tsv", "MNLI-m.tsv", "MNLI-mm.tsv", "RTE.tsv", "submission.zip"]
    captured = capsys.readouterr()
    assert "not ready to submit: CoLA.tsv is missing" in captured.err
    assert (tmp_path / "sub" / "MNLI-mm.tsv").read_text() == "index\tprediction\n0\tentailment\n"

    other = write_run(tmp_path / "other", {"train_file": "x.csv"}, {"predictions.jsonl": ["a"]})
    with pytest.raises(UserError, match="is not a GLUE run"):
        collect_run(other, out)
    no_pred = write_run(tmp_path / "nopred", {"task_name": "rte"}, {})
    assert submission.main([out, no_pred]) == 2
    assert "run" in capsys.readouterr().err


def test_hardware_names_gpus_processes_and_reduced_threads():
    make = load_script("make_results_readme")
    cpu = {"cpu": "AMD EPYC", "cpu_count": 2, "world_size": 1}
    assert make.hardware({"environment": {**cpu, "torch_threads": 2}}) == "AMD EPYC (2 cores)"
    assert make.hardware({"environment": {**cpu, "torch_threads": 1}}) == "AMD EPYC (2 cores), 1 thread per run"
    assert make.hardware({"environment": cpu}) == "AMD EPYC (2 cores)"  # records from before threads were kept
    gpus = {"gpus": ["NVIDIA H200"] * 4, "world_size": 4, "torch_threads": 1, "cpu_count": 16}
    assert make.hardware({"environment": gpus}) == "4x NVIDIA H200, 4 processes"


def test_a_training_subset_is_named_in_the_table(tmp_path):
    make = load_script("make_results_readme")
    results = tmp_path / "results"
    path = str(results / "glue" / "sst2" / "all-MiniLM-L6-v2.json")
    for seed in (1, 2):
        command = f"python run_classification.py r.json --max_train_samples 10000 --seed {seed}"
        R.record_run(path, seed, {"eval_accuracy": 0.85}, command, None, {"task": "sst2"})
    R.record_run(str(results / "glue" / "rte" / "x.json"), 1, {"eval_accuracy": 0.6}, "python r.py", None, {})
    text = make.render(str(results), {}, plt=None)
    assert "| SST-2 (subset: first 10,000 training rows) | accuracy |" in text
    assert "| RTE | accuracy |" in text  # full training set: no label
    assert make.training_subset([{"command": "x --max_train_samples=500"}, {"command": "x"}]) == (
        "first 500 training rows, all training rows"
    )


def test_record_of_an_evaluation_run_in_a_trained_folder(tmp_path):
    """Its flags are in recipe_eval.json; the folder's trainer_state.json is the training run's, not its own."""
    out = fake_output_dir(tmp_path / "out", 3, 0.7)
    evaluation = {"task_name": "rte", "model_name_or_path": out, "seed": 9, "output_dir": out, "do_eval": True}
    (tmp_path / "out" / "recipe_eval.json").write_text(json.dumps(evaluation))
    results_file = str(tmp_path / "results.json")
    data = R.record_from_output_dir(results_file, out, ["--do_eval"], 1.0, "recipe_eval.json")
    run = data["runs"][0]
    assert run["seed"] == 9 and run["model"] == out
    assert run["log_history"] == []


def test_record_keeps_the_code_version_taken_at_the_start(tmp_path):
    """A long run records the commit it started from, not whatever the checkout holds when it ends."""
    out = fake_output_dir(tmp_path / "out", 1, 0.7)
    started = {"git_sha": "a" * 40, "git_dirty": False}
    data = R.record_from_output_dir(str(tmp_path / "r.json"), out, [], 1.0, code_version=started)
    assert data["runs"][0]["git_sha"] == "a" * 40 and data["runs"][0]["git_dirty"] is False


def test_table_lists_every_setup_the_seeds_ran_on(tmp_path):
    make = load_script("make_results_readme")
    path = str(tmp_path / "results" / "glue" / "rte" / "m.json")
    for seed, threads in ((1, 2), (2, 2), (3, 1)):
        env = {"cpu": "AMD EPYC", "cpu_count": 2, "world_size": 1, "torch_threads": threads}
        R.record_run(path, seed, {"eval_accuracy": 0.6}, "python r.py", None, {"task": "rte", "environment": env})
    text = make.render(str(tmp_path / "results"), {}, plt=None)
    assert "| AMD EPYC (2 cores); AMD EPYC (2 cores), 1 thread per run |" in text


def test_a_bad_results_file_stops_the_readme_before_the_old_plots_go(results_dir, capsys):
    make = load_script("make_results_readme")
    results, published = results_dir
    assert make.main(["--results_dir", str(results), "--published", published]) == 0
    plots = sorted(p.relative_to(results) for p in (results / "plots").rglob("*.png"))
    (results / "glue" / "rte" / "broken.json").write_text('{"not": "a results file"}')
    assert make.main(["--results_dir", str(results), "--published", published]) == 2
    assert "broken.json is not a results file" in capsys.readouterr().err
    assert sorted(p.relative_to(results) for p in (results / "plots").rglob("*.png")) == plots and plots


def test_a_published_table_with_all_nine_tasks_gets_its_glue_score():
    make = load_script("make_results_readme")
    two = {"mrpc": {"f1": 90.0, "acc": 80.0}, "stsb": {"pearson": 88.0, "spearman": 86.0}}
    two |= {"qqp": {"acc": 90.0, "f1": 70.0}, "mnli": {"acc": 84.0, "acc_mm": 84.0}}
    one = {t: {"mcc" if t == "cola" else "acc": 50.0} for t in ("cola", "sst2", "qnli", "rte", "wnli")}
    sources = {"hf_run_glue_bert_base_cased": {"id": "hf_run_glue_bert_base_cased", "results": two | one}}
    text = "\n".join(make.published_only_table("bert-base-cased", sources))
    # per task the mean of its metrics (MRPC 85, STS-B 87, QQP 80, MNLI 84), then the mean over the nine
    assert (
        f"| **GLUE score (9 tasks)** | each task's metrics averaged | **{(85 + 87 + 80 + 84 + 5 * 50) / 9:.2f}** |"
        in text
    )
    del sources["hf_run_glue_bert_base_cased"]["results"]["wnli"]
    assert "GLUE score" not in "\n".join(make.published_only_table("bert-base-cased", sources))


def test_rows_recorded_with_another_version_of_the_recipe_say_so():
    import hashlib

    make = load_script("make_results_readme")
    path = os.path.join(ROOT, "recipes", "glue", "rte", "bert-base-cased.json")
    with open(path, "rb") as f:
        current = hashlib.sha256(f.read()).hexdigest()
    assert not make.stale_recipe("glue", "rte", "bert-base-cased", [{"recipe_sha256": current}, {}])
    assert make.stale_recipe("glue", "rte", "bert-base-cased", [{"recipe_sha256": current}, {"recipe_sha256": "0"}])
    assert not make.stale_recipe("glue", "rte", "no-such-recipe", [{"recipe_sha256": "0"}])
    # a table with such a row has no average: it would describe no one recipe
    run = {"seed": 1, "date": "2026-01-01", "recipe_sha256": "0", "environment": {}}
    summary = {"eval_accuracy": {"median": 0.6, "std": None, "n": 1, "values": [0.6]}}
    lines = make.model_table("glue", "all-MiniLM-L6-v2", {"rte": {"runs": [run], "summary": summary}}, {}, False)
    text = "\n".join(lines)
    assert "RTE (runs of an earlier version of the recipe)" in text
    assert (
        "No average yet: the runs of RTE are of an earlier version of the recipe." in text
        and "average of these" not in text
    )


def test_every_committed_record_renders(tmp_path):
    """The generator reads every record results/ holds today (it crashed on the first inference record), and each
    speed record gets its own table."""
    make = load_script("make_results_readme")
    results = Path(ROOT) / "results"
    text = make.render(str(results), {}, plt=None)
    for path in (results / "speed").glob("*.json"):
        assert f"### {path.stem}" in text, path.name
    inference = sorted((results / "speed").glob("inference-*.json"))
    if inference:
        table = text[text.index(f"### {inference[0].stem}") :]
        assert "| int8_speedup |" in table and "| onnx_int8 |" in table


def test_method_auto_switches_where_the_measured_learning_curves_cross():
    """textcls/train/method.py's thresholds are benchmarks/learning_curve.py's crossovers of the committed records:
    a new measurement that moves a crossover fails here until the code follows it."""
    from benchmarks.learning_curve import AUTO_CANDIDATES, METHODS, crossovers
    from textcls.train import method

    records = [json.loads(p.read_text()) for p in sorted(Path(ROOT, "results", "small-data").glob("*.json"))]
    assert method.MEASURED == crossovers(records)["winners"]
    for record in records:  # ...and the runs behind them ran with what auto sets now (a changed setting reruns)
        for name in AUTO_CANDIDATES:
            assert record["methods"][name] == " ".join(METHODS[name]), (record["task"], name)


def test_the_readme_table_of_method_auto_is_what_the_code_picks():
    """README's "What it picks" table: one row per run of sizes with the same pick, its range and its method."""
    from textcls.train import method

    ranges, last = [], max(method.MEASURED) * 2
    for n in range(1, last + 2):
        name = method.pick(n)
        if ranges and ranges[-1][2] == name:
            ranges[-1][1] = n
        else:
            ranges.append([n, n, name])
    words = {"finetune-small": "small-data fine-tuning", "setfit": "`--method setfit", "finetune": "plain fine-tuning"}
    readme = Path(ROOT, "README.md").read_text()
    for i, (low, high, name) in enumerate(ranges):
        if i == 0:
            label = f"up to {high}"
        elif i == len(ranges) - 1:
            label = f"more than {low - 1}"
        else:
            label = f"{low} to {high}"
        row = next((line for line in readme.splitlines() if line.startswith(f"| {label} | ")), None)
        assert row is not None and words[name] in row, (label, name)


def test_the_defaults_table_takes_each_number_from_its_record(tmp_path):
    """results/README.md's "what each speed default buys and costs": every number from the newest record of its
    kind, the CPU flags beside it, and grouping's accuracy cost per task as grouped minus random median."""
    make = load_script("make_results_readme")
    speed, order = tmp_path / "speed", tmp_path / "sampler-order"
    speed.mkdir()
    order.mkdir()

    def packing(ms):  # (order, padded, padding_free, one_layout)
        return [{"architecture": "bert", "order": o, "padding": 0.2, "median_ms_per_step": {"padded": a,
                 "padding_free": b, "one_layout": c}, "speedup": a / b, "buckets_speedup": c / b}
                for o, a, b, c in ms]  # fmt: skip

    older = {"benchmark": "packing", "data": "SST-2 train.tsv first 1024 rows", "results": packing(
        [("grouped", 9, 1, 1), ("random", 9, 1, 1)])}  # fmt: skip
    sst2 = {"benchmark": "packing", "data": "sst2 train.tsv first 1024 rows", "cpu_flags": ["avx2"],
            "results": packing([("grouped", 820, 700, 672), ("random", 1750, 735, 792)])}  # fmt: skip
    rte = {"benchmark": "packing", "data": "rte train.tsv first 192 rows", "cpu_flags": ["avx512_bf16"],
           "results": packing([("grouped", 6000, 3300, 3800), ("random", 5800, 3000, 3600)])}  # fmt: skip
    for name, record in (("packing-cpu-2026-11-29.json", older), ("packing-sst2-cpu-2026-12-06.json", sst2),
                         ("packing-rte-cpu-2026-12-06.json", rte)):  # fmt: skip
        (speed / name).write_text(json.dumps(record))
    runs = [{"variant": v, "seed": s, "metrics": {"eval_accuracy": a}} for v, s, a in
            (("group", 1, 0.60), ("group", 2, 0.62), ("random", 1, 0.65), ("peer", 1, 0.7))]  # fmt: skip
    (order / "rte.json").write_text(json.dumps({"task": "rte", "primary_metric": "accuracy", "runs": runs}))
    (order / "sst2.json").write_text(json.dumps({"task": "sst2", "primary_metric": "accuracy", "runs": runs[:2]}))
    text = "\n".join(make.defaults_section(str(tmp_path)))
    assert "| steps 1.17x faster than padded (length-grouped SST-2 batches), 2.38x (random) |" in text
    assert "packing-sst2-cpu-2026-12-06.json (avx2)" in text and "packing-cpu-2026-11-29" not in text
    assert "steps 1.05x faster than random batches" in text  # 735 / 700
    # median 61 - 65; two seeds against one cannot tell an order from noise
    assert "rte -4.00 points (2 vs 1 seeds; within seed noise, Mann-Whitney p 0.67); sst2: not both orders yet" in text
    runs = [{"variant": v, "seed": s, "metrics": {"eval_accuracy": a}} for s in range(5)
            for v, a in (("group", 0.60 + s / 100), ("random", 0.66 + s / 100))]  # fmt: skip
    (order / "rte.json").write_text(json.dumps({"task": "rte", "primary_metric": "accuracy", "runs": runs}))
    text = "\n".join(make.defaults_section(str(tmp_path)))
    assert "rte -6.00 points (5 vs 5 seeds; beyond seed noise, Mann-Whitney p 0.01)" in text  # no overlap
    assert "across the" not in text  # one task with both orders: nothing to pool
    # two tasks, each within noise alone, grouped 2 points lower on both: pooled, the two small costs add up
    (order / "rte.json").unlink()
    for task in ("sst2", "cola"):
        runs = [{"variant": v, "seed": s, "metrics": {"eval_accuracy": a + s / 100}} for s in range(5)
                for v, a in (("group", 0.60), ("random", 0.62))]  # fmt: skip
        (order / f"{task}.json").write_text(json.dumps({"task": task, "primary_metric": "accuracy", "runs": runs}))
    text = "\n".join(make.defaults_section(str(tmp_path)))
    assert "sst2 -2.00 points (5 vs 5 seeds; within seed noise, Mann-Whitney p 0.11)" in text
    assert "; across the 2 tasks: grouped lower on 2, pooled a cost beyond seed noise (one-sided" in text
    assert "Stouffer p 0.01)" in text
    assert "steps 1.20x faster on random RTE pair batches, 1.08x on random SST-2 | 0.96x on loosely" in text
    assert "(avx512_bf16) |" in text
    assert "--tokenize auto" not in text  # no record of it: no row
    assert "vs the real run_glue.py" not in text
    peer = {"benchmark": "speed", "data": "SST-2 train.tsv first 8000 rows", "cpu_flags": ["avx2"],
            "medians": {"ours": {"eval_accuracy": 0.8314}, "peer_best": {"eval_accuracy": 0.8406}},
            "targets": {"end_to_end_vs_peer_best": {"value": 0.99}, "train_time_vs_peer_best": {"value": 0.95},
                        "end_to_end_random_vs_peer_random": {"value": 2.27}}}  # fmt: skip
    (speed / "peer-sst2-8k-cpu-2026-12-06.json").write_text(json.dumps(peer))
    text = "\n".join(make.defaults_section(str(tmp_path)))
    flags = "`--pad_to_max_length false --train_sampling_strategy group_by_length`"
    assert f"end to end 0.99x its best flags ({flags}; a step 0.95x), 2.27x its default random order" in text
    assert "dev accuracy 83.14 against its 84.06" in text and "peer-sst2-8k-cpu-2026-12-06.json (avx2) |" in text
    # a CPU with AMX: its own rows, its records kept out of the rows above (their numbers are another machine's)
    amx = {**sst2, "cpu_flags": ["amx_bf16"], "settings": {"bf16": True},
           "results": packing([("grouped", 700, 800, 800), ("random", 1400, 1000, 1000)])}  # fmt: skip
    (speed / "packing-sst2-cpu-2026-12-07.json").write_text(json.dumps(amx))
    medians = {"ours": {"eval_accuracy": 0.83, "wall_s": 60, "train_s": 50},
               "peer_best": {"eval_accuracy": 0.84, "wall_s": 66, "train_s": 55},
               "peer_best_bf16": {"eval_accuracy": 0.84, "wall_s": 77.4, "train_s": 62.5}}  # fmt: skip
    targets = {"end_to_end_vs_peer_best": {"value": 1.1}, "train_time_vs_peer_best": {"value": 1.1}}
    amx_peer = {**peer, "cpu_flags": ["amx_bf16"], "medians": medians, "targets": targets}
    (speed / "peer-sst2-8k-cpu-2026-12-07.json").write_text(json.dumps(amx_peer))
    text = "\n".join(make.defaults_section(str(tmp_path)))
    assert "| steps 1.17x faster than padded (length-grouped SST-2 batches), 2.38x (random) |" in text  # still avx2's
    assert "| step time, padded / padding-free: bf16 0.88x length-grouped SST-2 batches, 1.40x random (below 1" in text
    assert "end to end 1.29x its best flags with `--bf16 true` (a step 1.25x), 1.10x its best flags in fp32 (" in text
    assert "dev accuracy 83.00 against its 84.00 | peer-sst2-8k-cpu-2026-12-07.json (amx_bf16) |" in text
    assert "end to end 0.99x its best flags" in text  # the AVX2 machine's row stays
    # steady state on long rows (scale.py --steps): against the peer's best flags in bf16 and fp32
    t = {"end_to_end_vs_peer_bf16_at_100000": 1.08, "train_throughput_vs_peer_bf16_at_100000": 1.02,
         "end_to_end_vs_peer_at_100000": 1.66, "train_throughput_cold_vs_upfront_at_100000": 1.0,
         "peak_rss_cold_vs_peer_at_100000": 1.16}  # fmt: skip
    steady = {"benchmark": "scale", "settings": {"max_steps": 300}, "cpu_flags": ["amx_bf16"],
              "targets": {k: {"value": v} for k, v in t.items()}}  # fmt: skip
    (speed / "scale-100k-amx-2026-12-07.json").write_text(json.dumps(steady))
    text = "\n".join(make.defaults_section(str(tmp_path)))
    assert (
        "| our defaults vs the real run_glue.py on 100,000 review-like rows (300 steps, cold caches) | end to end "
        "1.08x its best flags with `--bf16 true` (a step 1.02x), 1.66x them in fp32; per-batch tokenizing trains at "
        "1.00x up front's speed | peak memory 1.16x the peer's fp32 run"
    ) in text and "scale-100k-amx-2026-12-07.json (amx_bf16) |" in text
    assert make.defaults_section(str(tmp_path / "none")) == []


def test_imported_group_runs_show_no_seconds_beside_runs_timed_here(tmp_path):
    """Group runs taken from the recipe's results file (sampler_order.py --group_from) were timed on another machine
    and evaluated each epoch inside their train_runtime: their seconds must not stand beside the random runs' as a
    comparison; the row shows their metric only, and the note says why."""
    make = load_script("make_results_readme")
    order = tmp_path / "sampler-order"
    order.mkdir()
    source = "results/glue/rte/all-MiniLM-L6-v2_hf-readme.json"
    runs = [{"variant": "group", "seed": s, "metrics": {"eval_accuracy": a}, "train_runtime_s": 300.0,
             "wall_s": 345.0, "source": source} for s, a in ((1, 0.60), (2, 0.62))]  # fmt: skip
    runs += [{"variant": "random", "seed": 1, "metrics": {"eval_accuracy": 0.65}, "train_runtime_s": 700.0,
              "wall_s": 760.0, "cpu_flags": ["avx2"]}]  # fmt: skip
    record = {"task": "rte", "primary_metric": "accuracy", "command": "sampler_order.py", "runs": runs}
    (order / "rte.json").write_text(json.dumps(record))
    text = "\n".join(make.sampler_order_section(str(tmp_path)))
    assert "| group | all | 2 | 61.00 (60.00-62.00) | - | - |" in text
    assert "| random | all | 1 | 65.00 (65.00-65.00) | 700 | 760 |" in text
    assert f"group seeds 1, 2: the recipe's own runs in {source}" in text and "seconds left out" in text
    assert "; CPU flags avx2 (random 1)." in text


def test_each_batch_order_table_says_how_far_our_orders_are_from_the_real_peer(tmp_path):
    """Issue 40: our median must beat the real run_glue.py's (HF README settings): each table's line says by how
    much each of our orders does, over how many seeds, and whether it is beyond seed noise."""
    make = load_script("make_results_readme")
    order = tmp_path / "sampler-order"
    order.mkdir()
    runs = [{"variant": v, "seed": s, "metrics": {"eval_accuracy": a}, "train_runtime_s": 1.0, "wall_s": 2.0}
            for v, values in (("peer", (0.80, 0.81, 0.82)), ("group", (0.83, 0.84, 0.85, 0.86, 0.87)),
                              ("random", (0.79, 0.82)))
            for s, a in enumerate(values, 1)]  # fmt: skip
    record = {"task": "sst2", "primary_metric": "accuracy", "command": "sampler_order.py", "runs": runs}
    (order / "sst2.json").write_text(json.dumps(record))
    text = "\n".join(make.sampler_order_section(str(tmp_path)))
    assert (
        "Against the real run_glue.py, median minus its median: our default (length-grouped) +4.00 points (5 vs 3 "
        "seeds; beyond seed noise, Mann-Whitney p 0.04); our random order -0.50 points (2 vs 3 seeds; within seed "
        "noise, Mann-Whitney p 1.00)."
    ) in text
    # ...and the defaults table says it beside grouping's cost against random order
    assert make._grouping_cost(str(tmp_path)).endswith("; our default minus the real run_glue.py's median: sst2 "
                                                       "+4.00 (5 vs 3 seeds)")  # fmt: skip
    record["runs"] = [r for r in runs if r["variant"] != "peer"]  # no peer: no line
    (order / "sst2.json").write_text(json.dumps(record))
    assert "Against the real" not in "\n".join(make.sampler_order_section(str(tmp_path)))
    assert "run_glue" not in make._grouping_cost(str(tmp_path))


def test_sampler_order_seconds_compare_within_one_machine(tmp_path):
    """The runs of one table span sessions, and sessions machines: the header names each machine with its runs, and
    a row's seconds are the median of the timed runs on the latest machine only (a note says so)."""
    make = load_script("make_results_readme")
    order = tmp_path / "sampler-order"
    order.mkdir()
    runs = [{"variant": "random", "seed": s, "metrics": {"eval_accuracy": 0.6}, "train_runtime_s": t, "wall_s": t + 20,
             "cpu_flags": flags} for s, t, flags in ((1, 700.0, ["avx2"]), (2, 300.0, ["amx_bf16", "avx2"]),
                                                     (3, 320.0, ["amx_bf16", "avx2"]))]  # fmt: skip
    record = {"task": "rte", "primary_metric": "accuracy", "command": "sampler_order.py", "runs": runs}
    (order / "rte.json").write_text(json.dumps(record))
    text = "\n".join(make.sampler_order_section(str(tmp_path)))
    assert "; CPU flags avx2 (random 1); CPU flags amx_bf16, avx2 (random 2, random 3)." in text
    assert "| random | all | 3 | 60.00 (60.00-60.00) | 310 | 330 |" in text
    assert "- random: seconds of its 2 timed runs on the latest machine only" in text


def test_cpu_bf16_section_pairs_each_recipe_in_both_precisions(tmp_path):
    """results/README.md's "CPU bf16 against fp32": per task, both precisions' metric, seconds and memory from the
    run_seeds.py records, the CPU flags they ran on, bf16's time ratio, metric difference, noise test."""
    make = load_script("make_results_readme")
    env = {"cpu": "Intel Xeon", "cpu_count": 2, "torch_threads": 2, "world_size": 1, "gpus": [],
           "cpu_flags": ["amx_bf16", "avx512_bf16"]}  # fmt: skip
    cmd = "python run_classification.py recipes/glue/rte/all-MiniLM-L6-v2.json --data_dir X{flag} --seed {s}"
    for precision, runs in (("fp32", ((1, 0.60, 100), (2, 0.62, 110), (3, 0.58, 90))),
                            ("bf16", ((1, 0.61, 80), (2, 0.59, 90), (3, 0.63, 70)))):  # fmt: skip
        path = str(tmp_path / "cpu-bf16" / "rte" / f"all-MiniLM-L6-v2_{precision}.json")
        for seed, acc, seconds in runs:
            extra = {"environment": env, "timing": {"train_runtime": seconds, "train_samples_per_second": 25.0},
                     "peak_memory": {"cpu_rss_bytes": 2**31}}  # fmt: skip
            flag = " --bf16 true" if precision == "bf16" else ""
            R.record_run(path, seed, {"eval_accuracy": acc}, cmd.format(s=seed, flag=flag), None, extra)
    text = "\n".join(make.cpu_bf16_section(str(tmp_path)))
    assert "### rte: all-MiniLM-L6-v2 (accuracy)" in text
    assert "`python run_classification.py recipes/glue/rte/all-MiniLM-L6-v2.json --data_dir X` (`--bf16 true`" in text
    assert "Intel Xeon (2 cores); CPU flags amx_bf16, avx512_bf16." in text
    assert "| fp32 | 1, 2, 3 | 60.00 (58.00-62.00) | 100 (90-110) | 25.0 | 2048 |" in text
    assert "| bf16 | 1, 2, 3 | 61.00 (59.00-63.00) | 80 (70-90) | 25.0 | 2048 |" in text
    assert "bf16 trains in 0.80x fp32's time; its accuracy +1.00 points (within seed noise, Mann-Whitney p" in text
    assert "; peak memory 1.00x." in text
    assert "cpu-bf16" not in make.collect(str(tmp_path))  # not also a table of recipe runs
    row = "| bf16 autocast on a CPU with AMX (`--bf16` unset) | training in 0.80x fp32's time on rte (`--bf16 true`) "
    row += "(3 seeds) | dev metric +1.00 points (within seed noise); peak memory 1.00x | cpu-bf16/ (amx_bf16, "
    row += "avx512_bf16) |"
    assert row in make.defaults_section(str(tmp_path))
    assert make.cpu_bf16_section(str(tmp_path / "none")) == []


def test_the_readme_states_the_cross_validation_rule_the_code_applies():
    """README's --auto_select cross_validation paragraph and the flag's help name the confidence and resamples of
    textcls.train.method (a change of either must change what users read)."""
    from textcls.config.args import DataArguments
    from textcls.train import method

    said = f"{method.CV_CONFIDENCE:.0%} of {method.CV_RESAMPLES:,} paired bootstrap resamples"
    assert said in " ".join(Path(ROOT, "README.md").read_text().split())
    help_text = next(f for f in dataclasses.fields(DataArguments) if f.name == "auto_select").metadata["help"]
    assert f"{method.CV_CONFIDENCE:.0%} of paired bootstrap" in help_text and f"{method.CV_FOLDS} folds" in help_text


def _curve_medians():
    """{(task, per_class, method): {draw: metric x100}} of the committed learning-curve records."""
    found = {}
    for path in sorted(Path(ROOT, "results", "small-data").glob("*.json")):
        record = json.loads(path.read_text())
        for r in record["runs"]:
            found.setdefault((record["task"], r["per_class"], r["method"]), {})[r["draw"]] = 100 * r[record["metric"]]
    return found


def _readme_table(heading_row: str) -> list[list[str]]:
    """The cells of the README table whose header row starts with heading_row (the header and rule left out)."""
    lines = Path(ROOT, "README.md").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(heading_row))
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip("|").split("|")])
    return rows


def test_the_readme_tells_a_user_with_50_rows_per_class_the_measured_medians():
    """README's "With 50 rows per class" table: each cell the median over the draws at 64 rows per class of the
    method its row names, from the committed records ("not run" where the record has none)."""
    from textcls.train import method

    runs = _curve_medians()
    rows = {"`--method auto`": "auto-cv", "`--method auto --auto_select size`": method.pick(64), "SetFit": "setfit",
            "the setfit library": "setfit-library", "our full-data defaults": "finetune"}  # fmt: skip
    table = _readme_table("| 64 rows per class |")
    assert len(table) == len(rows)
    for cells in table:
        name = next(m for label, m in rows.items() if cells[0].startswith(label))
        for task, cell in zip(("sst2", "cola", "stsb-source"), cells[1:], strict=True):
            values = list(runs.get((task, 64, name), {}).values())
            said = f"{statistics.median(values):.1f}" if values else "not run"
            if values and len(values) != 3:  # the table's draws are 3 unless the cell says otherwise
                said += f" ({len(values)} draws)"
            assert cell == said, (cells[0], task)


def test_the_readme_check_of_cross_validation_against_the_size_rule_is_the_records():
    """README's check table: at each size, auto-cv's median and the size rule's pick's median over the same draws
    (the draws auto-cv ran), "-" where auto-cv has not run."""
    from textcls.train import method

    runs = _curve_medians()
    table = _readme_table("| rows per class | SST-2 | CoLA | stsb-source |")
    assert [int(cells[0]) for cells in table] == sorted({n for (_, n, m) in runs if m == "auto-cv"})
    for cells in table:
        n = int(cells[0])
        for task, cell in zip(("sst2", "cola", "stsb-source"), cells[1:], strict=True):
            cv = runs.get((task, n, "auto-cv"), {})
            rule = runs.get((task, n, method.pick(n)), {})
            both = (statistics.median(cv.values()), statistics.median(rule[d] for d in cv)) if cv else None
            expected = f"{both[0]:.1f} / {both[1]:.1f}" if both else "-"
            assert cell == expected, (n, task)
