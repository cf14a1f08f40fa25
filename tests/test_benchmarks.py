"""The speed benchmark's code path, end to end on the tiny model: every mode runs, the record and the table hold what
the README and the issue promise. No timing is asserted: speed targets live in the benchmark's output, not in tests."""

import json
import random
import subprocess
import sys

import pytest
from conftest import sentence

from benchmarks import speed


def write_sst2(folder, n_train=40, n_dev=12):
    rng = random.Random(0)
    folder.mkdir()
    for name, n in (("train.tsv", n_train), ("dev.tsv", n_dev)):
        rows = []
        for i in range(n):
            positive = i % 2 == 0
            rows.append(f"{sentence(rng, positive, n=rng.randint(1, 12))}\t{int(positive)}\n")
        (folder / name).write_text("sentence\tlabel\n" + "".join(rows), encoding="utf-8")
    (folder / "test.tsv").write_text("index\tsentence\n0\tgood movie\n1\tbad film\n", encoding="utf-8")
    return str(folder)


@pytest.fixture(scope="module")
def speed_record(tiny_bert, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("speed")
    data = write_sst2(tmp / "SST-2")
    out = tmp / "cpu.json"
    command = [
        sys.executable,
        "benchmarks/speed.py",
        "--data_dir",
        data,
        "--model",
        tiny_bert,
        "--train_rows",
        "32",
        "--max_seq_length",
        "64",
        "--repeats",
        "1",
        "--scaling",
        "--scaling_rows",
        "16",
        "--scaling_lengths",
        "16",
        "64",
        "--out",
        str(out),
    ]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads(out.read_text()), proc.stdout


def test_every_default_mode_is_measured(speed_record):
    record, _ = speed_record
    assert list(record["medians"]) == list(speed.DEFAULT_MODES)
    for runs in record["runs"].values():
        assert len(runs) == 1
        run = runs[0]
        assert run["wall_s"] > run["train_s"] > 0
        assert run["peak_rss_bytes"] > 10 * 2**20  # a Python process with torch loaded: its own RSS, not 0
        assert 0 <= run["eval_accuracy"] <= 1
        assert "--max_train_samples 32" in run["command"]
    # the slow mode really pads and samples at random; hf_best is the reference pipeline with grouped batches
    assert "--pad_to_max_length true --train_sampling_strategy random" in record["runs"]["slow"][0]["command"]
    assert record["runs"]["hf_best"][0]["command"].startswith("python benchmarks/hf_reference.py")
    assert "--use_lora true" in record["runs"]["ours_lora"][0]["command"]


def test_record_has_ratios_scaling_and_provenance(speed_record):
    record, stdout = speed_record
    assert set(record["targets"]) == {name for name, *_ in speed.TARGETS}
    m = record["medians"]
    assert record["targets"]["lora_step_time_vs_full"]["value"] == pytest.approx(
        m["ours_lora"]["train_s"] / m["ours"]["train_s"]
    )
    assert record["targets"]["end_to_end_vs_hf_best"]["value"] == pytest.approx(
        m["hf_best"]["wall_s"] / m["ours"]["wall_s"]
    )
    assert record["real_tokens"] > 32  # [CLS] and [SEP] at least, per row
    assert m["ours"]["real_tokens_per_second"] == pytest.approx(record["real_tokens"] / m["ours"]["train_s"])
    assert [s["train_rows"] for s in record["scaling"]["rows"]] == [16]
    lengths = record["scaling"]["max_seq_length"]
    assert [s["max_seq_length"] for s in lengths] == [16, 64]
    assert lengths[1]["command"] == record["runs"]["slow"][0]["command"]  # the slow mode's run, not a second one
    assert "--max_seq_length 16" in lengths[0]["command"]
    assert record["command"].startswith("python benchmarks/speed.py --data_dir")
    assert record["git_sha"] and record["environment"]["packages"]["torch"]
    assert "| ours |" in stdout and "lora_step_time_vs_full" in stdout


def test_ratios_against_targets():
    medians = {
        "slow": {"train_samples_per_second": 10.0, "eval_accuracy": 0.80, "wall_s": 100.0, "train_s": 50.0},
        "hf_best": {"train_samples_per_second": 60.0, "eval_accuracy": 0.80, "wall_s": 30.0, "train_s": 10.0},
        "ours": {"train_samples_per_second": 120.0, "eval_accuracy": 0.806, "wall_s": 15.0, "train_s": 5.0},
        "ours_lora": {"train_samples_per_second": 150.0, "eval_accuracy": 0.7, "wall_s": 14.0, "train_s": 4.0},
    }
    checks = speed.ratios(medians)
    assert checks["train_throughput_vs_slow"]["value"] == pytest.approx(12)
    assert checks["train_throughput_vs_slow"]["met"]
    assert checks["end_to_end_vs_hf_best"]["value"] == pytest.approx(2) and checks["end_to_end_vs_hf_best"]["met"]
    assert checks["accuracy_vs_slow_points"]["value"] == pytest.approx(0.6)
    assert not checks["accuracy_vs_slow_points"]["met"]
    assert checks["lora_step_time_vs_full"]["value"] == pytest.approx(0.8)
    assert not checks["lora_step_time_vs_full"]["met"]


def test_missing_data_dir_is_one_clear_error(tmp_path, capsys):
    assert speed.cli(["--data_dir", str(tmp_path)]) == 2
    assert "has no train.tsv" in capsys.readouterr().err


def test_results_readme_shows_the_speed_record(speed_record, tmp_path):
    """The README generator reads what the benchmark writes (a format drift between the two fails here)."""
    from scripts import make_results_readme as make

    record, _ = speed_record
    (tmp_path / "speed").mkdir()
    (tmp_path / "speed" / "cpu-2026-01-01.json").write_text(json.dumps(record))
    text = make.render(str(tmp_path), {}, plt=None)
    assert "## Speed" in text and "### cpu-2026-01-01" in text
    assert f"`{record['command']}`" in text
    ours = record["medians"]["ours"]
    assert f"| ours | {ours['train_samples_per_second']:.1f} |" in text
    for name in record["targets"]:
        assert f"| {name} |" in text
    assert "| ours | 16 |" in text and "| slow | 16 |" in text  # the scaling rows
    assert "## glue" not in text  # a speed record is not a GLUE result
    assert f"each a fresh process. {record['environment']['cpu']} (" in text
    assert "| \\|x\\| <= 0.5 |" in text  # escaped: a bare | would split the cell


def test_speed_plot(speed_record, tmp_path):
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from scripts import make_results_readme as make

    record, _ = speed_record
    (tmp_path / "speed").mkdir()
    (tmp_path / "speed" / "cpu-x.json").write_text(json.dumps(record))
    text = make.render(str(tmp_path), {}, plt=plt)
    assert "![speed cpu-x](plots/speed/cpu-x.png)" in text
    assert (tmp_path / "plots" / "speed" / "cpu-x.png").stat().st_size > 1000


def test_gpu_script_on_cpu_with_a_tiny_config(tiny_bert, tmp_path, capsys):
    """benchmarks/gpu.py cannot be run here without a GPU; its whole path runs on a tiny config instead (in this
    process; its runs are subprocesses as always). LoRA's mode is left out: the same code path as ours, 15 s more."""
    from benchmarks import gpu

    data = write_sst2(tmp_path / "SST-2")
    out = tmp_path / "gpu.json"
    argv = ["--tiny", "--allow_cpu", "--data_dir", data, "--tokenizer", tiny_bert, "--train_rows", "16"]
    argv += ["--max_seq_length", "64", "--repeats", "1", "--peak_tflops", "1", "--modes", "hf_default", "ours"]
    # bf16: the flags the GPU run passes; the sweep: one larger-batch run of our defaults, over 2 epochs
    argv += ["--precision", "bf16", "--sweep", "8:--logging_steps 3", "--sweep_rows", "24", "--sweep_epochs", "2"]
    assert gpu.cli([*argv, "--out", str(out)]) == 0
    stdout = capsys.readouterr().out
    record = json.loads(out.read_text())
    assert list(record["medians"]) == ["hf_default", "ours"]
    arch = record["architecture"]
    assert arch["layers"] == 2 and arch["hidden"] == 32 and 0 < arch["non_embedding_params"] < arch["total_params"]
    for mode, value in record["mfu_real_tokens"].items():  # flops / train time / (1 TFLOP/s)
        assert value == pytest.approx(record["useful_flops_per_epoch"] / record["medians"][mode]["train_s"] / 1e12)
    assert "--bf16 true --use_cpu true" in record["runs"]["ours"][0]["command"]
    assert "MFU on real tokens, ours:" in stdout
    (sweep,) = record["sweep"]
    assert (sweep["batch_size"], sweep["flags"], sweep["epochs"], sweep["train_rows"]) == (
        8,
        "--logging_steps 3",
        2,
        24,
    )
    assert sweep["mfu_real_tokens"] == pytest.approx(2 * sweep["useful_flops_per_epoch"] / sweep["train_s"] / 1e12)
    assert sweep["useful_flops_per_epoch"] > record["useful_flops_per_epoch"]  # 24 rows vs 16

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from scripts import make_results_readme as make

    (tmp_path / "results" / "speed").mkdir(parents=True)
    (tmp_path / "results" / "speed" / "gpu-h200.json").write_text(json.dumps(record))
    text = make.render(str(tmp_path / "results"), {}, plt=plt)
    assert "### gpu-h200" in text and "MFU on real tokens (cpu, measured peak 1 TFLOP/s): hf_default" in text
    assert "| 8 | --logging_steps 3 | 24 x 2 |" in text  # the sweep's row
    assert (tmp_path / "results" / "plots" / "speed" / "gpu-h200.png").stat().st_size > 1000


def test_gpu_flops_count():
    from benchmarks import gpu

    arch = {"non_embedding_params": 1000, "layers": 2, "hidden": 8}
    # dense: 6 x 1000 x (3 + 5) tokens; attention: 12 x 2 layers x 8 x (9 + 25)
    assert gpu.useful_flops(arch, [3, 5]) == 6 * 1000 * 8 + 12 * 2 * 8 * 34


def test_gpu_script_refuses_to_run_without_a_gpu(tmp_path, capsys):
    import torch

    from benchmarks import gpu

    if torch.cuda.is_available():
        pytest.skip("a GPU is visible")
    assert gpu.cli(["--data_dir", str(tmp_path), "--tokenizer", str(tmp_path), "--out", str(tmp_path / "x")]) == 2
    assert "no GPU is visible" in capsys.readouterr().err


def test_a_failing_run_is_one_error_and_no_record(tmp_path, capsys):
    data = write_sst2(tmp_path / "SST-2")
    out = tmp_path / "speed.json"
    argv = ["--data_dir", data, "--model", str(tmp_path / "no-model"), "--modes", "ours", "--repeats", "1"]
    assert speed.cli([*argv, "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert "exited with 2" in err and "no-model" in err
    assert not out.exists()


def test_gpu_step_script_on_cpu_with_a_tiny_config(tiny_bert, tmp_path):
    """benchmarks/gpu_step.py's whole path (grouped batches, timed and profiled steps, the record) on a CPU."""
    from benchmarks import gpu_step

    data = write_sst2(tmp_path / "SST-2")
    out = tmp_path / "step.json"
    argv = ["--data_dir", data, "--tokenizer", tiny_bert, "--tiny", "--allow_cpu", "--peak_tflops", "1"]
    argv += ["--batch_sizes", "2", "4", "--modes", "eager", "packed", "--steps", "2", "--warmup", "1"]
    argv += ["--out", str(out)]
    assert gpu_step.cli(argv) == 0
    record = json.loads(out.read_text())
    runs = [(r["batch_size"], r["mode"]) for r in record["results"]]
    assert runs == [(2, "eager"), (2, "packed"), (4, "eager"), (4, "packed")]
    for r in record["results"]:
        assert "error" not in r, r
        assert r["samples_per_second"] == pytest.approx(r["batch_size"] * 1000 / r["ms_per_step"])
        assert 0 < r["real_tokens_per_step"] <= r["padded_tokens_per_step"] and r["top_kernels"]
    # a folder without train.tsv: one clear error, exit 2, nothing written
    bad = ["--data_dir", str(tmp_path), *argv[2:-1], str(tmp_path / "x.json")]
    assert gpu_step.cli(bad) == 2 and not (tmp_path / "x.json").exists()


def test_packing_script_on_a_tiny_config(tiny_bert, tmp_path):
    """benchmarks/packing.py's whole path (both orders, every architecture it knows, both modes, the record)."""
    from benchmarks import packing

    data = write_sst2(tmp_path / "SST-2", n_train=24)
    out = tmp_path / "packing.json"
    base = ["--data_dir", data, "--tokenizer", tiny_bert, "--tiny", "--rows", "24", "--batch_size", "4"]
    argv = [*base, "--repeats", "2", "--architectures", *sorted(packing.CONFIGS), "--out", str(out)]
    assert packing.cli(argv) == 0
    record = json.loads(out.read_text())
    assert [(r["architecture"], r["order"]) for r in record["results"]] == [
        (a, o) for a in sorted(packing.CONFIGS) for o in ("grouped", "random")
    ]
    for r in record["results"]:
        assert r["steps"] == 6 and 0 < r["real_tokens"] <= r["positions"]
        assert all(len(t) == 2 and min(t) > 0 for t in r["ms_per_step"].values())
    assert record["command"].startswith("python benchmarks/packing.py") and record["environment"]
    # results/README.md's generator renders it beside the speed records
    from scripts import make_results_readme as make

    (tmp_path / "results" / "speed").mkdir(parents=True)
    (tmp_path / "results" / "speed" / "packing-cpu-2026-01-01.json").write_text(json.dumps(record))
    text = make.render(str(tmp_path / "results"), {}, plt=None)
    first = record["results"][0]
    assert "### packing-cpu-2026-01-01" in text and f"`{record['command']}`" in text
    assert f"| {first['architecture']} | grouped | {100 * first['padding']:.1f}% |" in text
    # bf16 autocast (the GPU run's setting) takes the same path
    bf16 = [*base, "--architectures", "llama", "--repeats", "1", "--bf16", "--out", str(tmp_path / "bf16.json")]
    assert packing.cli(bf16) == 0
    assert json.loads((tmp_path / "bf16.json").read_text())["settings"]["bf16"] is True
    assert packing.cli(["--data_dir", str(tmp_path), "--tiny", "--out", str(tmp_path / "x.json")]) == 2
    assert not (tmp_path / "x.json").exists()
