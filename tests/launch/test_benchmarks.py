"""The GPU and packing benchmarks' code paths, end to end on tiny configs on the CPU. No timing is asserted: speed
targets live in the benchmarks' output, not in tests."""

import argparse
import csv
import importlib.util
import json
import math
import os
import re
import sys
from pathlib import Path

import pytest

from tests.helpers import ROOT, run_ours_in_process, write_rows, write_sst2, write_tsv


def test_gpu_script_on_cpu_with_a_tiny_config(tiny_bert, tmp_path, capsys, monkeypatch):
    """benchmarks/gpu.py cannot be run here without a GPU; its whole path runs on a tiny config instead (in this
    process, and its runs too: run_ours_in_process). LoRA's mode is left out: the same code path as ours."""
    from benchmarks import gpu, speed

    run_ours_in_process(monkeypatch, speed)

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
        assert list(r["ms_per_step"]) == ["padded", "padding_free", "one_layout"]
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
    assert "| padded ms/step | padding-free ms/step | padding-free, one attention layout ms/step |" in text
    # sentence pairs (--task rte): each row is tokenized as a pair
    rte = tmp_path / "RTE"
    write_tsv(rte, "train.tsv", [("index", "sentence1", "sentence2", "label")]
              + [(str(i), "good movie " * (i + 1), "bad film", "entailment") for i in range(8)])  # fmt: skip
    pairs = packing.read_rows(str(rte), 8, "rte")
    assert pairs[2] == (("good movie " * 3, "bad film"), 0)
    # bf16 autocast (the GPU run's setting) takes the same path
    bf16 = [*base, "--architectures", "llama", "--repeats", "1", "--bf16", "--out", str(tmp_path / "bf16.json")]
    assert packing.cli(bf16) == 0
    assert json.loads((tmp_path / "bf16.json").read_text())["settings"]["bf16"] is True
    assert packing.cli(["--data_dir", str(tmp_path), "--tiny", "--out", str(tmp_path / "x.json")]) == 2
    assert not (tmp_path / "x.json").exists()


def test_packing_levers_on_a_tiny_config(tiny_bert, tmp_path):
    """The dropout levers tried on the padding-free step (issue 40) take the same path, --steps times only the first
    batches, and warm-up seconds are recorded. The torch.compile modes are left out here: compiling even this tiny
    model's training step takes minutes on 2 cores."""
    from benchmarks import packing
    from scripts import make_results_readme as make

    data = write_sst2(tmp_path / "SST-2", n_train=24)
    out = tmp_path / "levers.json"
    levers = ["padding_free", "fast_dropout", "no_dropout"]
    argv = ["--data_dir", data, "--tokenizer", tiny_bert, "--tiny", "--rows", "24", "--batch_size", "4", "--steps",
            "3", "--architectures", "bert", "--orders", "grouped", "--repeats", "1", "--modes", *levers, "--out",
            str(out)]  # fmt: skip
    assert packing.cli(argv) == 0
    record = json.loads(out.read_text())
    (r,) = record["results"]
    assert r["steps"] == 3 and list(r["ms_per_step"]) == levers and "the first 3 batches timed" in record["data"]
    assert all(len(w) == 1 and w[0] > 0 for w in r["warmup_s"].values())
    # a compiled mode's seconds to compile reach the table (a record with one, its timings made up)
    r["median_ms_per_step"]["padded_compiled"], r["warmup_s"]["padded_compiled"] = 9.0, [77.4, 80.0]
    (tmp_path / "results" / "speed").mkdir(parents=True)
    (tmp_path / "results" / "speed" / "packing-cpu-2026-01-01.json").write_text(json.dumps(record))
    text = make.render(str(tmp_path / "results"), {}, plt=None)
    assert "| padding-free, faster dropout masks ms/step | padding-free, no dropout (bound) ms/step |" in text
    assert "| 9.0 (79 s to compile) |" in text


def test_fast_dropout_keeps_one_minus_p_and_is_seeded():
    """The fast_dropout lever is a dropout: P(keep) = 1 - p, kept values scaled by 1 / (1 - p), the same mask for the
    gradient, the same draw from the same seed, nothing dropped in eval; attention's dropout module is left to SDPA."""
    import torch

    from benchmarks import packing

    model = torch.nn.Module()
    model.hidden = torch.nn.Dropout(0.1)
    model.attention = torch.nn.Module()
    model.attention.self = torch.nn.Module()
    model.attention.self.dropout = torch.nn.Dropout(0.1)
    packing.fast_dropout(model)
    assert type(model.hidden) is not torch.nn.Dropout and type(model.attention.self.dropout) is torch.nn.Dropout
    x = torch.ones(1001, 999, requires_grad=True)  # an odd count: the last 32-bit draw half used
    torch.manual_seed(0)
    y = model.hidden(x)
    assert abs((y > 0).float().mean().item() - 0.9) < 0.002
    assert y.unique().tolist() == [0.0, pytest.approx(1 / 0.9)]
    y.sum().backward()
    assert torch.equal(x.grad, y.detach())
    torch.manual_seed(0)
    assert torch.equal(model.hidden(x), y)
    model.eval()
    assert torch.equal(model.hidden(x), x)


def test_scale_script_on_tiny_files(tiny_bert, tmp_path):
    """benchmarks/scale.py's path (a cold training run, a prediction run, the record, its table) on a tiny model and
    40-row files, each a real subprocess; the warm run (the cold run's command again, on its cache) and the HF
    reference's runs are left out here (the same runner, ~6 s a run)."""
    from benchmarks import scale
    from benchmarks._runs import cpu_flags
    from scripts import make_results_readme as make
    from tests.helpers import sentiment_rows

    data = tmp_path / "scale"
    data.mkdir()
    write_rows(data / "train-40.csv", [{"sentence": r["sentence"], "label": r["label"]} for r in sentiment_rows(40)])
    write_rows(data / "test.csv", [{"sentence": r["sentence"], "label": r["label"]} for r in sentiment_rows(12, 1)])
    out = tmp_path / "scale.json"
    argv = ["--data_dir", str(data), "--model", tiny_bert, "--rows", "40", "--max_seq_length", "32"]
    # ours_stream and ours_upfront_cold: the same runner with a flag more (their commands checked below), not run
    argv += ["--modes", "ours_cold", "--predict_modes", "ours", "--predict_rows", "10", "--out", str(out)]
    assert scale.main(argv) == 0
    record = json.loads(out.read_text())
    runs = record["runs"]["40"]
    assert list(runs) == ["ours_cold", "ours_predict"]
    args = scale.parse(argv)
    cold = scale.train_command(scale.OURS, args, 40, "out")
    stream = scale.train_command(scale.OURS, args, 40, "out", streaming=True)
    upfront = scale.train_command(scale.OURS, args, 40, "out", flags=scale.MODE_FLAGS["ours_upfront_cold"])
    assert stream == [*cold, "--streaming", "true"] and upfront == [*cold, "--tokenize", "upfront"]
    assert "--streaming" not in runs["ours_cold"]["command"] and "--tokenize" not in runs["ours_cold"]["command"]
    cold = runs["ours_cold"]
    assert 0 < cold["first_step_s"] < cold["wall_s"] and cold["train_samples_per_second"] > 0
    assert cold["peak_rss_bytes"] > 10 * 2**20 and "--max_steps 20" in cold["command"]
    assert runs["ours_predict"]["predict_rows"] == 10 and runs["ours_predict"]["predict_samples_per_second"] > 0
    assert record["benchmark"] == "scale" and record["git_sha"] and record["environment"]["packages"]["datasets"]
    (tmp_path / "results" / "speed").mkdir(parents=True)
    (tmp_path / "results" / "speed" / "scale-cpu-x.json").write_text(json.dumps(record))
    text = make.render(str(tmp_path / "results"), {}, plt=None)
    assert "### scale-cpu-x" in text and f"`{record['command']}`" in text
    assert record["peak_rss"] == "own" and "Peak RSS is each run's own (wait4 through" in text
    shown = ", ".join(cpu_flags()) or "none of AVX2/AVX-512/AMX"
    assert record["cpu_flags"] == cpu_flags() and f"(CPU flags {shown})" in text
    assert f"| 40 | ours_cold | {cold['peak_rss_bytes'] / 1e9:.2f} |" in text
    # a folder without the files: one clear error, nothing written
    assert scale.main(["--data_dir", str(tmp_path), "--rows", "7", "--out", str(tmp_path / "x.json")]) == 2
    assert not (tmp_path / "x.json").exists()


def test_scale_targets(tmp_path):
    from benchmarks import scale

    def run(rss_gb, first, sps):
        return {"peak_rss_bytes": rss_gb * 1e9, "first_step_s": first, "train_samples_per_second": sps}

    runs = {
        "100": {"ours_cold": run(2.5, 10, 12.0)},
        "1000": {
            **{"ours_cold": run(3.0, 40, 11.0), "ours_warm": run(2.9, 15, 12.0), "hf_cold": run(3.1, 100, 12.0)},
            "ours_stream": run(2.0, 8, 10.0),
        },
    }
    targets = scale.ratios(runs, [100, 1000])
    assert targets["peak_rss_vs_hf_at_1000"]["value"] == pytest.approx(3.0 / 3.1)
    assert targets["peak_rss_vs_hf_at_1000"]["met"]
    assert targets["peak_rss_above_100_at_1000_gb"]["value"] == pytest.approx(0.5)
    assert targets["first_step_cold_vs_hf_at_1000"]["value"] == pytest.approx(0.4)
    assert targets["first_step_warm_vs_hf_at_1000"]["met"]  # 15 / 100 <= 0.2
    assert not targets["train_throughput_1000_vs_100"]["met"]  # 11 / 12 < 0.95
    assert targets["first_step_stream_vs_hf_at_1000"]["value"] == pytest.approx(0.08)
    assert targets["peak_rss_stream_vs_hf_at_1000"]["met"]
    assert targets["train_throughput_stream_vs_cached_at_1000"]["value"] == pytest.approx(10 / 11)
    runs["1000"] |= {"ours_upfront_cold": run(3.1, 90, 11.5), "peer_cold": run(3.2, 160, 12.0)}
    targets = scale.ratios(runs, [100, 1000])
    assert targets["first_step_cold_vs_peer_at_1000"]["value"] == pytest.approx(0.25)
    assert targets["first_step_cold_vs_upfront_at_1000"]["met"]  # 40 / 90 <= 0.5
    assert targets["train_throughput_cold_vs_upfront_at_1000"]["value"] == pytest.approx(11 / 11.5)
    assert targets["peak_rss_cold_vs_peer_at_1000"]["met"]
    # the peer: its best flags, on copies of the files with label ids (it cannot train on class names)
    data = tmp_path / "d"
    data.mkdir()
    rows = [{"sentence": "a, b", "label": "pos"}, {"sentence": "c", "label": "neg"}]
    write_rows(data / "train-2.csv", rows)
    write_rows(data / "dev.csv", rows[::-1])
    args = scale.parse(["--data_dir", str(data), "--peer", "peer.py"])
    args.peer_data = str(tmp_path / "peer-data")
    peer = scale.train_command("peer.py", args, 2, "o")
    assert peer[peer.index("--train_sampling_strategy") + 1] == "group_by_length"
    assert peer[peer.index("--pad_to_max_length") + 1] == "false" and "--tokenize" not in peer
    with open(peer[peer.index("--train_file") + 1], newline="") as f:
        assert list(csv.DictReader(f)) == [{"sentence": "a, b", "label": "1"}, {"sentence": "c", "label": "0"}]
    with open(peer[peer.index("--validation_file") + 1], newline="") as f:
        assert [r["label"] for r in csv.DictReader(f)] == ["0", "1"]
    # steady state (issue 40): longer runs, and the peer's best flags with bf16 autocast too
    args = scale.parse(["--data_dir", str(data), "--peer", "peer.py", "--steps", "300"])
    args.peer_data = str(tmp_path / "peer-data")
    peer = scale.train_command("peer.py", args, 2, "o", flags=scale.MODE_FLAGS["peer_cold_bf16"])
    assert peer[peer.index("--max_steps") + 1] == "300" and peer[-4:] == ["--bf16", "true", "--use_cpu", "true"]
    assert scale.MODE_FLAGS["ours_cold_fp32"] == ["--bf16", "false"]
    runs["1000"] |= {"peer_cold_bf16": {**run(3.2, 150, 13.0), "wall_s": 300.0}}
    runs["1000"]["ours_cold"]["wall_s"], runs["1000"]["peer_cold"]["wall_s"] = 200.0, 330.0
    targets = scale.ratios(runs, [100, 1000])
    assert targets["end_to_end_vs_peer_at_1000"]["value"] == pytest.approx(330 / 200)
    assert targets["end_to_end_vs_peer_bf16_at_1000"]["value"] == pytest.approx(1.5)
    assert targets["end_to_end_vs_peer_bf16_at_1000"]["met"]  # >= 1.3
    assert targets["train_throughput_vs_peer_bf16_at_1000"]["value"] == pytest.approx(11 / 13)
    assert not targets["train_throughput_vs_peer_bf16_at_1000"]["met"]


def test_balanced_sampling_benchmark_draws_the_classes_evenly_and_reproducibly():
    import numpy as np

    from benchmarks.balanced_sampling import BalancedSampler

    labels = np.array([0] * 90 + [1] * 10)
    epoch = [0]
    sampler = BalancedSampler(labels, seed=3, epoch=lambda: epoch[0])
    first = list(sampler)
    assert len(first) == 100 and first == list(sampler)  # the same epoch draws the same rows
    drawn = []
    for epoch[0] in range(1, 51):
        drawn += list(sampler)
    assert list(sampler) != first
    share = np.mean(labels[drawn])  # the 10% class is drawn about half the time
    assert 0.45 < share < 0.55


def test_inference_script_on_a_tiny_model(tiny_bert, tmp_path, monkeypatch):
    """benchmarks/inference.py runs each mode in a process of its own and records the targets (here the script and
    its runs run in this process, run_ours_in_process, and the model is exported as it is trained; without an onnx
    folder the script exports with the same --export onnx run)."""
    from benchmarks import inference

    run_ours_in_process(monkeypatch, sys.modules[inference.timed_run.__module__])  # scale, as inference imports it
    from tests.helpers import ROOT, run_main, sentiment_rows, write_rows

    files = {s: write_rows(tmp_path / f"{s}.csv", sentiment_rows(n, i)) for i, (s, n) in enumerate(
        (("train", 16), ("dev", 8), ("rows", 12))
    )}  # fmt: skip
    argv = ["--train_file", files["train"], "--validation_file", files["dev"], "--do_train", "--do_eval"]
    run_main(tiny_bert, tmp_path / "model", *argv, "--max_steps", "1", "--export", "onnx")
    record = tmp_path / "record.json"
    model = os.path.relpath(tmp_path / "model", ROOT)  # relative, as a user types it (links to it must still work)
    argv = ["--model", model, "--dev", files["dev"], "--rows_file", files["rows"], "--rows", "10"]
    argv += ["--output", str(record)]
    monkeypatch.chdir(ROOT)
    assert inference.main(argv) == 0
    result = json.loads(record.read_text())
    assert set(result["runs"]) == {"pytorch", "onnx_fp32", "onnx_int8"}
    assert all(r["predict_rows_per_second"] > 0 and r["peak_rss_bytes"] > 0 for r in result["runs"].values())
    assert set(result["met"]) == set(result["targets"]) and result["measured"]["fp32_max_abs_logit_difference"] < 1e-4
    assert "<tmp>" in result["runs"]["onnx_int8"]["command"]  # no temporary path in the record
    assert result["peak_rss"] == "own"  # each run's own peak memory (scale.timed_run through OwnPeakRss)
    from scripts import make_results_readme as make

    text = "\n".join(make.inference_table("inference-cpu-2026-01-01", result))
    assert "Peak RSS is each run's own (wait4 through" in text


def test_a_benchmarks_run_is_a_logged_subprocess_and_a_failed_one_stops_the_benchmark(tmp_path):
    """benchmarks/_runs.run_logged, which the end-to-end tests below replace with an in-process run of our script:
    the command and its output are appended to the log, and a failing run is a SystemExit naming the log."""
    from benchmarks._runs import run_logged

    log = tmp_path / "runs.log"
    assert run_logged(["-c", "print('trained')"], str(log)) >= 0
    with pytest.raises(SystemExit, match=f"run failed \\(3\\); see {re.escape(str(log))}"):
        run_logged(["-c", "import sys; print('oops', file=sys.stderr); sys.exit(3)"], str(log))
    text = log.read_text()
    assert "$ -c print('trained')\ntrained\n" in text and text.endswith("oops\n")


def test_a_finished_runs_weights_and_checkpoints_are_removed_and_its_reports_kept(tmp_path):
    """benchmarks/_runs.prune_run: what the accuracy benchmarks do to a run once its values are recorded (hundreds of
    runs of 87-350 MB each filled a disk)."""
    from benchmarks._runs import prune_run

    run = tmp_path / "finetune-8-1"
    for name, size in {"model.safetensors": 1000, "checkpoint-30/optimizer.pt": 2000, "checkpoint-30/x.json": 5,
                       "setfit_body/model.safetensors": 300, "checkpoints/step_1/model.safetensors": 40,
                       "all_results.json": 7, "eval_report.md": 9, "setfit_body/config.json": 3}.items():  # fmt: skip
        (run / name).parent.mkdir(parents=True, exist_ok=True)
        (run / name).write_bytes(b"x" * size)
    assert prune_run(str(run)) == 1000 + 2000 + 5 + 300 + 40
    left = sorted(str(p.relative_to(run)) for p in run.rglob("*") if p.is_file())
    assert left == ["all_results.json", "eval_report.md", "setfit_body/config.json"]


CHILD = "import sys; x = bytearray(200 * 2**20); print('step', flush=True); print({'loss': 1.0}, flush=True)"


def test_a_timed_run_is_a_subprocess_measured_by_its_own_peak_rss_and_a_failed_one_raises():
    """speed.run_process and scale.run_process, which the end-to-end tests replace with in-process runs: the peak RSS
    is the child's own (wait4): a child holding 200 MB reports about that, not this test process's (torch loaded:
    more) nor a bigger earlier child's; scale's also times the first line holding a loss; a failing child raises
    RunFailed with the tail of its log."""
    import resource
    import tempfile

    from benchmarks import scale, speed

    with tempfile.TemporaryDirectory() as tmp:
        log = os.path.join(tmp, "run.log")
        bigger = [sys.executable, "-c", CHILD.replace("200", "400")]
        speed.run_process(bigger, log)
        wall, rss = speed.run_process([sys.executable, "-c", CHILD], log)
        ours = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        assert 200 * 2**20 < rss < 300 * 2**20 < ours and wall > 0
        wall, first_step, rss = scale.run_process([sys.executable, "-c", CHILD], dict(os.environ), log)
        assert 0 < first_step <= wall and 200 * 2**20 < rss < 300 * 2**20
        assert "{'loss': 1.0}" in open(log).read()
        failing = [sys.executable, "-c", "import sys; print('oops'); sys.exit(3)"]
        with pytest.raises(speed.RunFailed, match=r"exited with 3:\noops"):
            speed.run_process(failing, log)
        with pytest.raises(scale.RunFailed, match=r"exited with 3:\noops"):
            scale.run_process(failing, dict(os.environ), log)


def test_label_noise_benchmark_on_a_tiny_model(tiny_bert, tmp_path, monkeypatch):
    """benchmarks/label_noise.py end to end on a tiny SST-2 folder: the flips are the record's, the flagged rows are
    the run's label_issues.jsonl, precision and recall are computed against the flips, and a rerun skips the point."""
    from benchmarks import label_noise

    run_ours_in_process(monkeypatch, label_noise)
    glue = tmp_path / "glue"
    glue.mkdir()
    write_sst2(glue / "SST-2", n_train=40)
    out, work = tmp_path / "results" / "label-noise", tmp_path / "work"
    argv = ["--glue_dir", str(glue), "--tasks", "sst2", "--noise", "0.1", "--model", tiny_bert, "--train_rows", "30"]
    argv += ["--folds", "2", "--max_seq_length", "64", "--work", str(work), "--out", str(out), "--cv_seeds", "3"]
    assert label_noise.main(argv) == 0
    spread = json.loads((out / "sst2-cv-spread.json").read_text())
    folds = json.loads((work / "sst2" / "cv-seed3" / "cv_results.json").read_text())["folds"]
    assert spread["seeds"]["3"]["heldout"] == [f["predict_cv_heldout_accuracy"] for f in folds]
    assert (
        spread["seeds"]["3"]["cv"] == sum(spread["seeds"]["3"]["heldout"]) / 2
        and len(spread["seeds"]["3"]["dev"]) == 2
    )
    record = json.loads((out / "sst2-noise10.json").read_text())
    assert len(record["flipped_rows"]) == 3 and record["folds"] == 2
    issues = [
        json.loads(x) for x in (work / "sst2" / "noise10" / "cv" / "label_issues.jsonl").read_text().splitlines()
    ]
    hits = {r["row"] for r in issues} & set(record["flipped_rows"])
    assert record["flagged"] == len(issues) and record["recall"] == len(hits) / 3
    assert set(record["dev"]) == {"noisy", "noisy_without_flagged", "clean"}
    noisy = (work / "sst2" / "noise10" / "train.csv").read_text().splitlines()[1:]
    clean = (work / "sst2" / "train.csv").read_text().splitlines()[1:]
    assert [i for i, (a, b) in enumerate(zip(noisy, clean, strict=True)) if a != b] == record["flipped_rows"]
    stamp = (out / "sst2-noise10.json").stat().st_mtime_ns
    assert label_noise.main(argv) == 0 and (out / "sst2-noise10.json").stat().st_mtime_ns == stamp
    spec = importlib.util.spec_from_file_location("mk", os.path.join(ROOT, "scripts", "make_results_readme.py"))
    make = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make)
    text = make.render(str(tmp_path / "results"), {}, plt=None)
    assert "## Label issues on corrupted labels" in text
    single = [100 * v for v in spread["seeds"]["3"]["heldout"]]
    assert f"| sst2 (accuracy) | 1 × 2 | {make._sd(single):.2f} ({min(single):.1f}-{max(single):.1f}) |" in text
    assert f"| sst2 (accuracy) | 10% (3) | {record['flagged']} | {100 * record['precision']:.1f}% |" in text


def test_label_flips_are_seeded_and_change_each_chosen_label():
    from benchmarks import label_noise

    rows = [{"sentence": str(i), "label": "positive" if i % 3 else "negative"} for i in range(100)]
    noisy, flipped = label_noise.flip(rows, 0.1, ["negative", "positive"], seed=1)
    assert len(flipped) == 10 and label_noise.flip(rows, 0.1, ["negative", "positive"], seed=1)[1] == flipped
    assert [i for i in range(100) if noisy[i]["label"] != rows[i]["label"]] == flipped


def test_learning_curve_benchmark_runs_ours_and_the_setfit_library_on_one_draw_and_resumes(
    tiny_bert, tmp_path, monkeypatch
):
    """benchmarks/learning_curve.py end to end on a tiny SST-2 folder: our script and the setfit library each train
    on the same drawn rows and are scored on the same dev set; the record names the rows; a rerun adds nothing."""
    from benchmarks import learning_curve

    run_ours_in_process(monkeypatch, learning_curve)
    glue = tmp_path / "glue"
    glue.mkdir()
    write_sst2(glue / "SST-2", n_train=40)
    out, work = tmp_path / "results" / "small-data", tmp_path / "work"
    argv = ["--glue_dir", str(glue), "--tasks", "sst2", "--per_class", "3", "--draws", "1", "--model", tiny_bert]
    argv += [
        "--methods",
        "finetune",
        "setfit-library",
        "--max_seq_length",
        "32",
        "--work",
        str(work),
        "--out",
        str(out),
    ]
    assert learning_curve.main(argv) == 0
    record = json.loads((out / "sst2.json").read_text())
    rows = record["draws"]["3"]["1"]
    assert len(rows) == 6 and record["validation_rows"] == 12
    assert [(r["method"], r["train_rows"]) for r in record["runs"]] == [("finetune", 6), ("setfit-library", 6)]
    assert all(0 <= r["accuracy"] <= 1 and r["wall_s"] > 0 for r in record["runs"])
    finetune = json.loads((work / "sst2" / "finetune-3-1" / "all_results.json").read_text())
    assert record["runs"][0]["accuracy"] == finetune["eval_accuracy"]
    assert not list(work.rglob("*.safetensors"))  # each run's weights go once its values are recorded
    # calibration beside the metric, ours from the run's own evaluation, the library's from its predict_proba
    ours = record["runs"][0]
    assert (ours["log_loss"], ours["ece"]) == (finetune["eval_log_loss"], finetune["eval_ece"])
    assert record["runs"][1]["log_loss"] > 0 and 0 <= record["runs"][1]["ece"] <= 1
    # the precision each trained in: ours as its all_results.json says (bf16 training with AMX), the library fp32
    assert ours["mixed_precision"] == finetune["mixed_precision"] and record["runs"][1]["mixed_precision"] == "no"
    assert (work / "sst2" / "train-3-1.csv").read_text().count("\n") == 7  # the header and the 6 drawn rows
    # the full training set once: no leaderboard record of this model, so one finetune run on every row
    (full,) = record["full"]
    whole = json.loads((work / "sst2" / "finetune-full" / "all_results.json").read_text())
    assert (full["method"], full["train_rows"], full["accuracy"]) == ("finetune", 40, whole["eval_accuracy"])
    stamp = (out / "sst2.json").stat().st_mtime_ns
    assert learning_curve.main(argv) == 0 and (out / "sst2.json").stat().st_mtime_ns == stamp
    assert not os.path.exists(os.path.join(ROOT, "checkpoints"))  # the setfit library's default folder, not here
    spec = importlib.util.spec_from_file_location("mk", os.path.join(ROOT, "scripts", "make_results_readme.py"))
    make = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make)
    text = make.render(str(tmp_path / "results"), {}, plt=None)  # the record is not taken for a recipe's results
    value = 100 * record["runs"][1]["accuracy"]
    assert "## Few labels: learning curves" in text and f"| 3 | {100 * record['runs'][0]['accuracy']:.1f} (" in text
    assert f"{value:.1f} ({value:.1f}-{value:.1f}) ×1 |" in text
    # the one command that makes every run of the record (its points may each have had an invocation of their own)
    assert (
        "`python benchmarks/learning_curve.py --glue_dir ../shared/data/glue --tasks sst2 --per_class 3 --draws 1`"
        in text
    )
    library = record["runs"][1]
    assert f"| 3 | {ours['log_loss']:.2f} / {ours['ece']:.3f} ×1 | {library['log_loss']:.2f} / " in text
    assert "Flags of each method (the record's): finetune `the defaults`; setfit-library `setfit library" in text
    threads = os.environ.get("OMP_NUM_THREADS") or "?"  # the record's, each run's
    assert (f"The full training set (40 rows): finetune (the defaults), every training row, seed 1 "
            f"{100 * full['accuracy']:.1f} ({full['wall_s']:.0f} s, OMP threads {threads}).") in text  # fmt: skip
    assert f"| 3 | {ours['wall_s']:.0f} ({threads}) | {library['wall_s']:.0f} ({threads}) |" in text
    record["runs"][0]["setfit_contrastive_precision"] = "bf16"  # as a SetFit run on a CPU with AMX records it
    (out / "sst2.json").write_text(json.dumps(record))
    text = make.render(str(tmp_path / "results"), {}, plt=None)
    assert "phase fp32): finetune at 3 (1 of 1 draws)." in text
    del record["runs"][0]["setfit_contrastive_precision"]
    record["superseded"] = [dict(record["runs"][0], flags="--old")]
    (out / "sst2.json").write_text(json.dumps(record))
    text = make.render(str(tmp_path / "results"), {}, plt=None)
    assert "1 earlier runs of finetune ran with flags since changed: they stay in the record under" in text
    # runs of one record from two machines: each named by its CPU flags, its letter in the wall-time cells
    record["runs"][0]["cpu_flags"], record["runs"][0]["date"] = ["avx2"], "2000-01-01"
    record["runs"][1]["cpu_flags"] = ["amx_bf16", "avx2"]
    (out / "sst2.json").write_text(json.dumps(record))
    text = make.render(str(tmp_path / "results"), {}, plt=None)
    assert "machine A: CPU flags avx2; machine B: CPU flags amx_bf16, avx2 (the newest runs: " in text
    assert f"| 3 | {ours['wall_s']:.0f} ({threads}; A) | {library['wall_s']:.0f} ({threads}; B) |" in text


def test_learning_curve_auto_cv_picks_by_cross_validation_on_the_draw_alone(tmp_path, monkeypatch):
    """auto-cv (a pick by cross-validation on the user's own rows, measured before --method auto does it): each
    candidate cross-validated on the draw with no evaluation on the dev set, picked by the product's rule (the size
    rule's pick unless the other is ahead beyond noise), scored by the pick's own run on the draw; it needs those
    runs first; the folds' weights go; a changed rule re-picks from the kept cross-validation. The runs are
    stand-ins here (tests/pipeline/test_method_auto.py trains the real cross-validations): each writes what a run
    of ours writes, the candidates' dev scores and out-of-fold hits chosen so that the two disagree."""
    from benchmarks import learning_curve as lc

    dev_accuracy, oof_hits = {"finetune": 0.7, "setfit": 0.6}, {"finetune": 4, "setfit": 7}  # of the draw's 8 rows
    commands = []

    def run(argv, log):
        commands.append(argv)
        out = argv[argv.index("--output_dir") + 1]
        kind = [argv[i + 1] for i, a in enumerate(argv) if a == "--method"][-1]
        os.makedirs(os.path.join(out, "folds", "fold-0"), exist_ok=True)
        (Path(out) / "folds" / "fold-0" / "model.safetensors").write_bytes(b"w")
        if "--cross_validate" in argv:
            train = list(csv.DictReader(open(argv[argv.index("--train_file") + 1], encoding="utf-8")))
            names = sorted({r["label"] for r in train})
            wrong = {a: b for a, b in zip(names, names[::-1], strict=True)}
            rows = [{"gold": r["label"], "label": r["label"] if i < oof_hits[kind] else wrong[r["label"]],
                     "probabilities": dict.fromkeys(names, 0.5)} for i, r in enumerate(train)]  # fmt: skip
            (Path(out) / "oof_predictions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        else:
            values = {"eval_accuracy": dev_accuracy[kind], "eval_log_loss": 0.5, "eval_ece": 0.1}
            (Path(out) / "all_results.json").write_text(json.dumps(values))
        return 1.0

    monkeypatch.setattr(lc, "run_logged", run)
    glue = tmp_path / "glue"
    glue.mkdir()
    write_sst2(glue / "SST-2", n_train=40)
    out, work = tmp_path / "results", tmp_path / "work"
    argv = ["--glue_dir", str(glue), "--tasks", "sst2", "--per_class", "4", "--draws", "1", "--model", "m",
            "--work", str(work), "--out", str(out), "--no-full", "--methods"]  # fmt: skip
    with pytest.raises(SystemExit, match=r"run finetune-small setfit there first \(--methods finetune-small setfit"):
        lc.main([*argv, "auto-cv"])
    assert lc.main([*argv, "finetune-small", "setfit", "auto-cv"]) == 0
    record = json.loads((out / "sst2.json").read_text())
    auto = {r["method"]: r for r in record["runs"]}["auto-cv"]
    assert auto["cv"]["finetune-small"]["accuracy"] == 4 / 8 and auto["cv"]["setfit"]["accuracy"] == 7 / 8
    assert auto["size_rule"] == "finetune-small" and auto["confidence"]["setfit"] >= 0.9  # 3 rows of 8 apart
    assert auto["picked"] == "setfit" and auto["accuracy"] == 0.6  # the pick's own dev score, not the better one
    assert auto["folds"] == lc.CV_FOLDS and auto["wall_s"] == 2.0 and auto["log_loss"] == 0.5
    for command in commands[2:]:  # the candidates' cross-validations: on the draw, the dev set not evaluated
        assert command[command.index("--cross_validate") + 1] == str(lc.CV_FOLDS)
        last = len(command) - 1 - command[::-1].index("--do_eval")  # the later flag wins
        assert command[last + 1] == "false"
    assert len(commands) == 4 and not list(work.rglob("*.safetensors"))  # every run's and fold's weights gone
    assert record["methods"]["auto-cv"] == lc.AUTO_CV_FLAGS and lc.same_flags(lc.AUTO_CV_FLAGS, lc.AUTO_CV_FLAGS)
    assert not lc.same_flags(lc.AUTO_CV_FLAGS.replace("0.002", "0.001"), lc.AUTO_CV_FLAGS)  # a candidate changed
    # the rule changes (here: a confidence nothing reaches): the run is superseded, the same cross-validation is
    # picked again by the new rule, and nothing trains
    monkeypatch.setattr(lc.auto, "CV_CONFIDENCE", 1.01)
    monkeypatch.setattr(lc, "AUTO_CV_FLAGS", lc.AUTO_CV_FLAGS.replace("90%", "101%"))
    assert lc.main([*argv, "finetune-small", "setfit", "auto-cv"]) == 0 and len(commands) == 4
    record = json.loads((out / "sst2.json").read_text())
    again = {r["method"]: r for r in record["runs"]}["auto-cv"]
    assert again["picked"] == "finetune-small" and again["accuracy"] == 0.7 and again["cv_reused"]
    assert again["cv"] == auto["cv"] and again["wall_s"] == auto["wall_s"] and record["superseded"][0] == {
        **auto, "flags": record["superseded"][0]["flags"]}  # fmt: skip
    auto = again
    spec = importlib.util.spec_from_file_location("mk", os.path.join(ROOT, "scripts", "make_results_readme.py"))
    make = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make)
    (tmp_path / "r" / "small-data").mkdir(parents=True)
    (out / "sst2.json").rename(tmp_path / "r" / "small-data" / "sst2.json")
    text = make.render(str(tmp_path / "r"), {}, plt=None)
    assert f'out-of-fold predictions"): at 4: {auto["picked"]} 1 of 1.' in text
    assert "| auto-cv | --auto_select size |" in text
    # the pooled out-of-fold score: every row once, whichever fold held it out
    oof = tmp_path / "oof.jsonl"
    rows = [("1", "1", 0.9), ("0", "1", 0.6), ("0", "0", 0.2), ("1", "0", 0.3)]  # gold, predicted, P(1)
    oof.write_text("".join(json.dumps({"gold": g, "label": p, "probabilities": {"0": 1 - q, "1": q}}) + "\n"
                           for g, p, q in rows))  # fmt: skip
    pooled = lc.out_of_fold_scores(str(oof), "accuracy")
    assert pooled["accuracy"] == 0.5
    assert pooled["log_loss"] == pytest.approx(-sum(map(math.log, [0.9, 0.4, 0.8, 0.3])) / 4, abs=1e-6)


def test_learning_curve_keeps_the_precision_of_setfits_contrastive_phase(tmp_path):
    """A run's record carries what its all_results.json says of the contrastive phase (absent before it was
    recorded: fp32 then)."""
    from benchmarks import learning_curve as lc

    values = {"eval_accuracy": 0.8, "mixed_precision": "bf16_training", "setfit_contrastive_precision": "bf16"}
    (tmp_path / "all_results.json").write_text(json.dumps(values))
    found = lc.dev_values("setfit", str(tmp_path), "accuracy")
    assert found == {"accuracy": 0.8, "mixed_precision": "bf16_training", "setfit_contrastive_precision": "bf16"}


def test_learning_curve_full_set_reuses_the_leaderboard_records_of_the_same_model():
    """SST-2 and CoLA's full-set point is the committed results/glue records' medians (our tuned recipe and the HF
    README settings, all-MiniLM-L6-v2); another model has none there, so the curve runs its own."""
    from benchmarks import learning_curve as lc

    tuned, readme = lc.reused_full("cola", lc.MODEL, "matthews_correlation", 8551)
    record = json.loads(Path(ROOT, "results/glue/cola/all-MiniLM-L6-v2.json").read_text())
    assert tuned["matthews_correlation"] == record["summary"]["eval_matthews_correlation"]["median"]
    assert (tuned["label"], readme["label"]) == ("our tuned recipe", "the HF README settings")
    assert readme["source"] == "results/glue/cola/all-MiniLM-L6-v2_hf-readme.json" and tuned["train_rows"] == 8551
    assert lc.reused_full("cola", "bert-base-uncased", "matthews_correlation", 8551) == []
    assert lc.reused_full("stsb-source", lc.MODEL, "accuracy", 4727) == []


def test_learning_curve_details_change_one_setting_and_show_as_paired_differences(tmp_path):
    """A small-data detail is its method's run with one setting changed (the later flag wins), run only when asked;
    results/README.md shows it apart from the curve, as per-draw differences against the method on the same draws."""
    from benchmarks import learning_curve as lc
    from scripts import make_results_readme as make
    from textcls.config.args import parse_args

    def argv(method):
        return lc.method_argv(method, "m", "train.csv", "dev.csv", "out", 16, 1, 128, "accuracy")

    base, detail = argv("finetune-small"), argv("finetune-small:no-warmup")
    assert detail[: detail.index("--max_steps")] == [*base[: base.index("--max_steps")], "--warmup_steps", "0"]
    assert detail[detail.index("--max_steps") + 1] == str(lc.training_steps(16))  # the method's small-data steps
    parsed = parse_args(["--output_dir", "o", *argv("finetune-small:no-warmup")[1:]]).training
    assert (parsed.warmup_steps, parsed.learning_rate) == (0, 1e-4)
    parsed = parse_args(["--output_dir", "o", *argv("setfit:pairs-32")[1:]])
    assert parsed.data.setfit_num_iterations == 32 and parsed.training.learning_rate == 2e-3
    assert set(lc.DETAILS) <= set(lc.METHODS) and not set(lc.DETAILS) & set(lc.CURVE)

    def run(method, draw, value):
        return {"per_class": 8, "draw": draw, "method": method, "accuracy": value, "wall_s": 10.0,
                "omp_num_threads": "1", "cpu_flags": ["avx2"], "date": "2026-12-07", "git_sha": "abc"}  # fmt: skip

    methods = {m: " ".join(f) for m, f in lc.METHODS.items() if f is not None}
    runs = [run("finetune-small", 1, 0.60), run("finetune-small", 2, 0.70), run("finetune-small", 3, 0.65)]
    runs += [run("finetune-small:no-warmup", 1, 0.62), run("finetune-small:no-warmup", 2, 0.66)]
    for r, loss in zip(runs, (1.0, 1.2, 9.0, 0.5, 0.7), strict=True):
        r["log_loss"] = loss
    record = {"benchmark": "learning-curve", "task": "sst2", "model": "m", "metric": "accuracy", "methods": methods,
              "runs": runs, "command": "python benchmarks/learning_curve.py"}  # fmt: skip
    (tmp_path / "small-data").mkdir()
    (tmp_path / "small-data" / "sst2.json").write_text(json.dumps(record))
    text = make.render(str(tmp_path), {}, plt=None)
    assert "| rows per class | finetune-small | --auto_select size |" in text  # not a column of the curve
    # draws 1 and 2 (draw 3 has no changed run): 60 -> 62, 70 -> 66
    row = (
        "| finetune-small:no-warmup | `--warmup_steps 0` | 8 | 65.0 | 64.0 | -1.0 (-4.0 to +2.0) | 2 | 1.10 -> 0.60 |"
    )
    assert row in text  # the log losses of the same two draws
    assert make._span([61.2, 70.5]) == "61.2-70.5" and make._span([-6.4, 4.5]) == "-6.4 to 4.5"  # MCC goes below 0


def test_learning_curve_calibration_is_log_loss_and_the_top_class_ece():
    from benchmarks import learning_curve

    probs = [[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]]
    values = learning_curve.calibration(probs, [0, 1, 1, 1])  # the third is wrong at 0.6
    assert values["log_loss"] == pytest.approx(-(math.log(0.9) + math.log(0.8) + math.log(0.4) + math.log(0.7)) / 4)
    # 15 bins: 0.6 | 0.7 | 0.8 | 0.9 alone each: |0 - 0.6| + |1 - 0.7| + |1 - 0.8| + |1 - 0.9|, over 4 rows
    assert values["ece"] == pytest.approx((0.6 + 0.3 + 0.2 + 0.1) / 4)


def test_learning_curve_runs_a_method_again_when_its_flags_changed(tmp_path, capsys):
    """A record's runs of a method whose flags have changed since (an auto setting measured anew) move to
    "superseded" with the flags they ran with, and are missing again; flags that parse to the same run are the same
    (1e-4 is 0.0001, --method finetune the default), and superseded runs whose flags are the method's again return."""
    from benchmarks import learning_curve

    new = "--method setfit --learning_rate 0.002 --label_smoothing_factor 0.1"
    fresh = {"model": "m", "validation_rows": 12,
             "methods": {"finetune-small": "--method finetune --learning_rate 0.0001", "setfit": new}}  # fmt: skip
    runs = [{"per_class": 8, "draw": 1, "method": m, "accuracy": 0.5} for m in ("finetune-small", "setfit")]
    before = {"finetune-small": "--learning_rate 1e-4", "setfit": "--method setfit --learning_rate 2e-3"}
    old = {**fresh, "methods": before, "runs": runs, "not_run": [{"per_class": 1024, "draw": 1, "method": "setfit"}]}
    path = tmp_path / "sst2.json"
    path.write_text(json.dumps(old))
    record = learning_curve.load_record(str(path), fresh)
    assert [r["method"] for r in record["runs"]] == ["finetune-small"] and record["not_run"] == []
    assert record["superseded"] == [{**runs[1], "flags": "--method setfit --learning_rate 2e-3"}]
    assert record["methods"] == fresh["methods"] and "the flags of setfit changed" in capsys.readouterr().out
    path.write_text(json.dumps(record))  # nothing changed since: nothing moves
    assert learning_curve.load_record(str(path), fresh) == record
    back = {**fresh, "methods": {**fresh["methods"], "setfit": "--method setfit --learning_rate 2e-3"}}
    record = learning_curve.load_record(str(path), back)  # the old setting again: its runs return, the new ones go
    assert record["runs"] == runs and "superseded" not in record
    assert learning_curve.same_flags(learning_curve.LIBRARY, learning_curve.LIBRARY)
    assert not learning_curve.same_flags(learning_curve.LIBRARY, "")


def test_learning_curve_draws_are_balanced_seeded_and_nested():
    from benchmarks import learning_curve

    labels = ["a" if i % 4 else "b" for i in range(200)]  # 150 a, 50 b
    eight = learning_curve.draw(labels, 8, seed=1)
    assert sorted(labels[i] for i in eight) == ["a"] * 8 + ["b"] * 8
    assert learning_curve.draw(labels, 8, seed=1) == eight != learning_curve.draw(labels, 8, seed=2)
    assert set(eight) < set(learning_curve.draw(labels, 16, seed=1))  # a draw's smaller set is inside its larger
    assert len(learning_curve.draw(labels, 64, seed=1)) == 64 + 50  # a class with fewer rows gives all it has
    assert learning_curve.training_steps(16) == learning_curve.MIN_STEPS and learning_curve.training_steps(800) == 300


def test_the_held_out_detail_chooses_on_a_quarter_of_the_draw_and_is_scored_on_dev(tmp_path):
    """finetune-small:best-of-held-out: every 4th row of each class of the draw (the last of a class of 2-3) is held
    out to choose the checkpoint on, the rest train for the whole draw's steps, and the dev set, a test split here,
    gives its score (predict_*), never the held-out rows' (eval_*)."""
    from benchmarks import learning_curve
    from textcls.config.args import parse_args

    rows = [{"sentence": f"s{i}", "label": "b" if i in (3, 7, 9) else "a"} for i in range(12)]  # 9 a, 3 b
    train = write_rows(tmp_path / "train-8-1.csv", rows)
    fit, held = learning_curve.held_out_split(train)
    read = lambda path: [r["sentence"] for r in csv.DictReader(open(path))]  # noqa: E731
    assert read(held) == ["s4", "s10", "s9"]  # a (s0 s1 s2 s4 s5 s6 s8 s10 s11): its 4th and 8th; b: its last
    assert sorted(read(fit) + read(held), key=lambda x: int(x[1:])) == [r["sentence"] for r in rows]
    name = "finetune-small:best-of-held-out"
    argv = learning_curve.method_argv(name, "m", train, "dev.csv", "out", 16, 1, 64, "accuracy")
    flag = lambda f: argv[len(argv) - 1 - argv[::-1].index(f) + 1]  # noqa: E731  (the last one wins)
    assert (flag("--train_file"), flag("--validation_file"), flag("--test_file")) == (fit, held, "dev.csv")
    assert flag("--max_steps") == str(learning_curve.training_steps(16)) and flag("--save_strategy") == "steps"
    parsed = parse_args(argv[1:])  # every flag is one of ours, and they agree (eval and save every tenth)
    assert parsed.training.load_best_model_at_end and parsed.training.metric_for_best_model == "loss"
    out = tmp_path / "out"
    out.mkdir()
    (out / "all_results.json").write_text(json.dumps({"eval_accuracy": 1.0, "predict_accuracy": 0.75,
                                                      "predict_log_loss": 0.5, "eval_log_loss": 0.1}))  # fmt: skip
    values = learning_curve.dev_values(name, str(out), "accuracy")
    assert values["accuracy"] == 0.75 and values["log_loss"] == 0.5


def test_learning_curve_stsb_source_task_labels_sentences_by_their_corpus_and_keeps_dev_unseen(tmp_path):
    """stsb-source: the first sentence of each STS-B pair from four sources, labelled with its source file; other
    sources left out; a dev sentence also in train (any case) or repeated is left out."""
    from benchmarks import learning_curve

    header = "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\tscore"
    rows = {
        "train": [("headlines", "Explosion hits pipeline"), ("MSRvid", "A man is playing a flute."),
                  ("images", "A cat under a chair."), ("MSRpar", "The company said on Monday."),
                  ("deft-forum", "Then the captain was gone."), ("headlines", "Explosion hits pipeline")],
        "dev": [("headlines", "Drug lord captured"), ("MSRvid", "a man is playing a flute."),
                ("answers-forums", "How about it?"), ("images", "Two trains."), ("images", "Two trains.")],
    }  # fmt: skip
    folder = tmp_path / "STS-B"
    folder.mkdir()
    for split, items in rows.items():
        lines = [header] + [f"{i}\tg\t{src}\t2012\t{i}\tnone\tnone\t{text}\tother\t1.0" for i, (src, text) in
                            enumerate(items)]  # fmt: skip
        (folder / f"{split}.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    train, dev = learning_curve.task_rows("stsb-source", str(tmp_path))
    assert [(r["label"], r["sentence"]) for r in train] == [
        ("headlines", "Explosion hits pipeline"), ("MSRvid", "A man is playing a flute."),
        ("images", "A cat under a chair."), ("MSRpar", "The company said on Monday."),
    ]  # fmt: skip
    assert [(r["label"], r["sentence"]) for r in dev] == [
        ("headlines", "Drug lord captured"),
        ("images", "Two trains."),
    ]
    assert learning_curve.METRIC["stsb-source"] == "accuracy"


def test_learning_curve_crossovers_pick_the_cheapest_method_within_the_tie():
    from benchmarks import learning_curve as lc

    def record(metric, table):  # {size: {method: [scores x100 per draw]}}
        runs = [{"per_class": n, "method": m, metric: v / 100} for n, by in table.items() for m, vs in by.items()
                for v in vs]  # fmt: skip
        return {"metric": metric, "runs": runs}

    a = record("accuracy", {8: {"setfit": [70, 71, 72], "finetune-small": [60, 61, 62], "finetune": [50, 50, 50]},
                            64: {"setfit": [80, 80, 80], "finetune-small": [80.2, 79.8, 80.3], "finetune": [70] * 3},
                            256: {"setfit": [90] * 3, "finetune-small": [85] * 3, "finetune": [90.4] * 3},
                            1024: {"setfit": [99] * 2, "finetune-small": [99] * 3, "finetune": [1] * 3}})  # fmt: skip
    # 64: setfit 80 vs finetune-small 80.2: the cheaper within TIE; 256: finetune within TIE of setfit; 1024: too
    # few setfit draws to count
    assert lc.crossovers([a])["winners"] == {8: "setfit", 64: "finetune-small", 256: "finetune"}
    b = record("matthews_correlation", {8: {"setfit": [0] * 3, "finetune-small": [10] * 3, "finetune": [0] * 3}})
    both = lc.crossovers([a, b])  # at 8: setfit (71 + 0) / 2 = 35.5 against finetune-small (61 + 10) / 2 = 35.5
    assert both["winners"][8] == "finetune-small" and both["scores"][8]["setfit"] == 35.5
    assert set(both["winners"]) == {8}  # 64 and 256: measured on one task of the two, deciding nothing yet


FAKE_PEER = """import json, os, sys
argv = sys.argv[1:]
out = argv[argv.index("--output_dir") + 1]
os.makedirs(out, exist_ok=True)
rows = sum(1 for _ in open(argv[argv.index("--train_file") + 1])) - 1
results = {"eval_accuracy": 0.25, "train_runtime": 1.5, "argv": argv, "rows": rows}
json.dump(results, open(os.path.join(out, "all_results.json"), "w"))
"""


def sampler_order_folders(tmp_path):
    """A tiny GLUE root (SST-2), the stand-in peer, and the benchmark's record and work folders."""
    glue = tmp_path / "glue"
    glue.mkdir()
    write_sst2(glue / "SST-2", n_train=20)
    peer = tmp_path / "peer.py"
    peer.write_text(FAKE_PEER)
    return glue, peer, tmp_path / "results" / "sampler-order", tmp_path / "work"


def test_sampler_order_benchmark_runs_the_peer_and_ours_on_the_recipes_settings_and_resumes(
    tiny_bert, tmp_path, monkeypatch
):
    """benchmarks/sampler_order.py on a tiny SST-2 folder: the peer (a stand-in here: tests do not need ../shared) gets
    the HF README recipe's hyperparameters and a CSV copy of the task; ours runs the recipe itself; a rerun adds
    nothing; random order is our flag for it."""
    from benchmarks import sampler_order

    run_ours_in_process(monkeypatch, sampler_order)
    glue, peer, out, work = sampler_order_folders(tmp_path)
    argv = ["--glue_dir", str(glue), "--tasks", "sst2", "--seeds", "3", "--variants", "peer", "group", "--model",
            tiny_bert, "--max_train_samples", "16", "--max_seq_length", "32", "--peer", str(peer), "--work",
            str(work), "--out", str(out)]  # fmt: skip
    assert sampler_order.main(argv) == 0
    record = json.loads((out / "sst2.json").read_text())
    assert [(r["variant"], r["seed"]) for r in record["runs"]] == [("peer", 3), ("group", 3)]
    recipe = json.loads((Path(ROOT) / record["recipe"]).read_text())
    seen = json.loads((work / "sst2" / "peer-3" / "all_results.json").read_text())
    flags = {a: seen["argv"][i + 1] for i, a in enumerate(seen["argv"][:-1]) if a.startswith("--")}
    assert seen["rows"] == 20 and flags["--metric_task"] == "sst2" and flags["--seed"] == "3"
    assert float(flags["--learning_rate"]) == recipe["learning_rate"]
    assert int(flags["--num_train_epochs"]) == recipe["num_train_epochs"]
    assert flags["--per_device_train_batch_size"] == str(recipe["per_device_train_batch_size"])
    ours = json.loads((work / "sst2" / "group-3" / "all_results.json").read_text())
    assert record["runs"][1]["metrics"]["eval_accuracy"] == ours["eval_accuracy"] and ours["train_samples"] == 16
    assert not list((work / "sst2" / "group-3").glob("*.safetensors"))  # its weights go once it is recorded
    stamp = (out / "sst2.json").stat().st_mtime_ns
    assert sampler_order.main(argv) == 0 and (out / "sst2.json").stat().st_mtime_ns == stamp
    args = argparse.Namespace(glue_dir=str(glue), model=tiny_bert, max_train_samples=None, peer=str(peer),
                              max_seq_length=None)  # fmt: skip
    random_order = sampler_order.variant_argv("random", "sst2", args, 1, "o", ("", ""))
    assert random_order[random_order.index("--train_sampling_strategy") + 1] == "random"
    assert random_order[random_order.index("--bf16") + 1] == "false"  # fp32 as the peer: the order alone differs
    assert "--train_sampling_strategy" not in sampler_order.variant_argv("group", "sst2", args, 1, "o", ("", ""))
    spec = importlib.util.spec_from_file_location("mk", os.path.join(ROOT, "scripts", "make_results_readme.py"))
    make = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make)
    text = make.render(str(tmp_path / "results"), {}, plt=None)
    assert "## Batch order: the real run_glue.py" in text and "| peer | 16 | 1 | 25.00 (25.00-25.00) | 2 |" in text
    value = 100 * ours["eval_accuracy"]
    assert f"| group | 16 | 1 | {value:.2f} ({value:.2f}-{value:.2f}) |" in text


def test_sampler_order_resumes_a_stopped_run_and_takes_group_runs_from_the_recipes_results(tmp_path):
    """A run stopped with a checkpoint goes on from it (the peer without --overwrite_output_dir; its seconds marked as
    no timing); the group runs can come from the recipe's own results file, which must be that recipe's, unchanged."""
    from benchmarks import sampler_order

    glue, peer, out, work = sampler_order_folders(tmp_path)
    (work / "sst2" / "peer-2" / "checkpoint-500").mkdir(parents=True)  # a peer run stopped after step 500
    recipe = "recipes/glue/sst2/all-MiniLM-L6-v2_hf-readme.json"

    def results_file(name, extra=""):
        runs = [{"seed": seed, "command": f"python run_classification.py {recipe} --data_dir d --seed {seed} "
                 f"--output_dir o --results_file r{extra}", "metrics": {"eval_accuracy": 0.5 + seed / 100,
                 "eval_loss": 1.0}, "timing": {"train_runtime": 100.0 + seed}, "wall_time_s": 120.0 + seed,
                 "date": "2026-12-03T18:21:32+00:00", "git_sha": "abc", "git_dirty": False}
                for seed in (1, 2, 3)]  # fmt: skip
        path = tmp_path / name
        path.write_text(json.dumps({"runs": runs}))
        return str(path)

    argv = ["--glue_dir", str(glue), "--tasks", "sst2", "--seeds", "2", "3", "--variants", "peer", "group", "--peer",
            str(peer), "--work", str(work), "--out", str(out), "--model", "m"]  # fmt: skip
    with pytest.raises(SystemExit, match=r"seed 1 adds \['--learning_rate'\] to the recipe"):
        sampler_order.main([*argv, "--group_from", results_file("changed.json", " --learning_rate 1e-4")])
    assert sampler_order.main([*argv, "--seeds", "2", "--group_from", results_file("same.json")]) == 0
    record = json.loads((out / "sst2.json").read_text())
    assert [(r["variant"], r["seed"], r.get("resumed")) for r in record["runs"]] == [("group", 2, None),
                                                                                     ("peer", 2, True)]  # fmt: skip
    group = record["runs"][0]
    assert group["metrics"] == {"eval_accuracy": 0.52, "eval_loss": 1.0} and group["train_runtime_s"] == 102.0
    seen = json.loads((work / "sst2" / "peer-2" / "all_results.json").read_text())["argv"]
    assert "--overwrite_output_dir" not in seen and seen[seen.index("--save_steps") + 1] == "500"
    args = argparse.Namespace(glue_dir=str(glue), model="m", max_train_samples=None, peer=str(peer),
                              max_seq_length=None)  # fmt: skip
    assert "--overwrite_output_dir" in sampler_order.variant_argv("peer", "sst2", args, 1, "o", ("a", "b"))
    ours = sampler_order.variant_argv("random", "sst2", args, 1, "o", ("", ""))
    assert ours[ours.index("--save_strategy") + 1] == "steps" and ours[ours.index("--save_steps") + 1] == "500"
    spec = importlib.util.spec_from_file_location("mk", os.path.join(ROOT, "scripts", "make_results_readme.py"))
    make = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make)
    text = make.render(str(tmp_path / "results"), {}, plt=None)
    assert "| peer | all | 1 | 25.00 (25.00-25.00) | - | - |" in text  # resumed: no timing
    assert "| group | all | 1 | 52.00 (52.00-52.00) | - | - |" in text  # timed on that record's machine
    assert "resumed from a checkpoint (seconds left out): peer seed 2" in text
    del record["runs"][0]["source"]  # as if run here: timed
    (out / "sst2.json").write_text(json.dumps(record))
    assert "| group | all | 1 | 52.00 (52.00-52.00) | 102 | 122 |" in make.render(
        str(tmp_path / "results"), {}, plt=None
    )
    record["runs"][0]["not_timed"] = True  # shared the CPU: its seconds are left out too
    (out / "sst2.json").write_text(json.dumps(record))
    assert "| group | all | 1 | 52.00 (52.00-52.00) | - | - |" in make.render(str(tmp_path / "results"), {}, plt=None)
    assert re.search(r"group seeds 2: the recipe's own runs in \S*same.json \(evaluated each epoch", text)


def test_learning_curve_counts_the_setfit_librarys_steps_and_records_a_run_too_long_as_not_run(tmp_path, monkeypatch):
    from setfit.sampler import ContrastiveDataset

    from benchmarks import learning_curve

    for n, k in ((16, 2), (40, 3), (90, 4)):
        labels = [i % k for i in range(n)]
        pairs = len(ContrastiveDataset([str(i) for i in range(n)], labels, False, None, "oversampling"))
        assert learning_curve.library_steps([str(x) for x in labels]) == -(-pairs // 16)
    glue = tmp_path / "glue"
    glue.mkdir()
    write_sst2(glue / "SST-2", n_train=40)
    monkeypatch.setattr(learning_curve, "LIBRARY_MAX_STEPS", 5)  # 8 rows per class: 16 texts, 9 steps
    out = tmp_path / "results" / "small-data"
    argv = ["--glue_dir", str(glue), "--tasks", "sst2", "--per_class", "8", "--draws", "1", "--methods",
            "setfit-library", "--work", str(tmp_path / "work"), "--out", str(out)]  # fmt: skip
    assert learning_curve.main(argv) == 0  # nothing trained (the model would not even be needed)
    record = json.loads((out / "sst2.json").read_text())
    assert record["runs"] == [] and [(r["per_class"], r["steps"]) for r in record["not_run"]] == [(8, 9)]
    spec = importlib.util.spec_from_file_location("mk", os.path.join(ROOT, "scripts", "make_results_readme.py"))
    make = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make)
    assert "| 8 | not run (9 steps) |" in make.render(str(tmp_path / "results"), {}, plt=None)


@pytest.mark.parametrize("name", ["finetune-small", "setfit", "setfit-finetune"])
def test_learning_curve_measures_exactly_what_method_auto_runs(name, monkeypatch):
    """The curve's candidate and --method auto's pick of it parse to the same run on a draw of 8 rows per class: the
    thresholds auto takes from the curve are measurements of the settings it applies."""
    import datasets

    from benchmarks import learning_curve
    from textcls.config.args import given_flags, parse_args
    from textcls.data.labels import Labels
    from textcls.data.load import Columns
    from textcls.train import method

    monkeypatch.setattr(method, "MEASURED", {8: name})
    common = ("m", "train.csv", "dev.csv", "out", 16, 1, 128, "accuracy")
    curve = parse_args(learning_curve.method_argv(name, *common)[1:])
    auto_argv = [*learning_curve.method_argv("finetune", *common)[1:], "--method", "auto"]  # our defaults + auto
    auto = parse_args(auto_argv)
    train = datasets.Dataset.from_dict({"sentence": ["x"] * 16, "label": ["a"] * 8 + ["b"] * 8})
    columns = Columns(text="sentence", text_pair=None, label="label", id=None)
    picked = method.choose(auto, given_flags(auto_argv), train, columns, Labels("single_label_classification",
                                                                               ["a", "b"], None))  # fmt: skip
    auto = method.apply(auto, picked)
    assert picked.name == name
    assert (auto.training, auto.data, auto.model, auto.lora) == (curve.training, curve.data, curve.model, curve.lora)


def test_oof_calibration_scores_the_dev_set_raw_and_with_each_temperature(tmp_path, monkeypatch):
    """benchmarks/oof_calibration.py: for each kept cross-validation of the learning curve, the candidate trained on
    the draw predicts the dev set (a stand-in run here, overconfident), scored raw, with the temperature fitted on the
    out-of-fold rows and with the one fitted on dev; resumable; a draw without a cross-validation is skipped."""
    from benchmarks import oof_calibration as oc

    work = tmp_path / "work"
    cv = work / "sst2" / "auto-cv-4-1" / "finetune-small"
    cv.mkdir(parents=True)

    def rows(n, right, sure):  # the first `right` rows answered right, each with probability `sure`
        out = []
        for i in range(n):
            gold = ("negative", "positive")[i % 2]
            label = gold if i < right else ("positive" if gold == "negative" else "negative")
            probs = {c: (sure if c == label else 1 - sure) for c in ("negative", "positive")}
            out.append(json.dumps({"gold": gold, "label": label, "probabilities": probs}) + "\n")
        return "".join(out)

    (cv / "oof_predictions.jsonl").write_text(rows(8, 6, 0.99))
    write_rows(work / "sst2" / "train-4-1.csv", [{"sentence": "a", "label": "0"}] * 8)
    write_rows(work / "sst2" / "dev.csv", [{"sentence": "a", "label": "0"}] * 20)
    commands = []

    def run(argv, log):
        commands.append(argv)
        out = Path(argv[argv.index("--output_dir") + 1])
        out.mkdir(parents=True, exist_ok=True)
        (out / "predictions.jsonl").write_text(rows(20, 15, 0.999))
        return 2.0

    monkeypatch.setattr(oc, "run_logged", run)
    record_path = tmp_path / "r.json"
    argv = ["--tasks", "sst2", "--per_class", "4", "--draws", "2", "--candidates", "finetune-small", "--work",
            str(work), "--scratch", str(tmp_path / "s"), "--out", str(record_path)]  # fmt: skip
    assert oc.main(argv) == 0
    (run_,) = json.loads(record_path.read_text())["runs"]  # draw 2 has no cross-validation: skipped
    assert run_["dev_accuracy"] == 0.75 and run_["dev_rows"] == 20 and "--do_predict" in commands[0]
    assert run_["temperature_out_of_fold"] > 1 and run_["temperature_dev"] > 1  # both soften overconfidence
    assert run_["dev_fitted"]["log_loss"] <= run_["out_of_fold"]["log_loss"] < run_["raw"]["log_loss"]
    assert run_["raw"]["log_loss"] == pytest.approx(-(15 * math.log(0.999) + 5 * math.log(0.001)) / 20, abs=1e-3)
    assert oc.main(argv) == 0 and len(commands) == 1  # resumed: nothing runs again
    spec = importlib.util.spec_from_file_location("mk", os.path.join(ROOT, "scripts", "make_results_readme.py"))
    make = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make)
    (tmp_path / "r" / "calibration").mkdir(parents=True)
    record_path.rename(tmp_path / "r" / "calibration" / "oof-temperature.json")
    text = make.render(str(tmp_path / "r"), {}, plt=None)
    row = next(line for line in text.splitlines() if line.startswith("| sst2 | 4 | finetune-small | 1 | 75.0 | "))
    assert f"{run_['raw']['log_loss']:.3f} / {run_['out_of_fold']['log_loss']:.3f} / " in row
    ece_lower = int(run_["out_of_fold"]["ece"] < run_["raw"]["ece"])
    assert row.endswith(f"| 1 and {ece_lower} of 1 |")
