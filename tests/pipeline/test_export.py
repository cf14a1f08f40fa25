"""--export onnx: the graph holds everything from token ids to logits (pooling, head, temperature), its logits match
PyTorch's, the folder predicts with bare onnxruntime and a tokenizer, and the export says what int8 changed."""

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from scipy.special import softmax

from tests.helpers import TRAIN_FLAGS, run_main, sentiment_rows, write_rows


def files_for(folder, label_fn=None):
    kwargs = {} if label_fn is None else {"label_fn": label_fn}
    return {
        s: write_rows(folder / f"{s}.csv", sentiment_rows(n, i, **kwargs))
        for i, (s, n) in enumerate((("train", 32), ("dev", 20), ("test", 7)))
    }


def export_run(model, folder, *flags, label_fn=None):
    files = files_for(folder, label_fn)
    argv = ["--train_file", files["train"], "--validation_file", files["dev"], "--test_file", files["test"]]
    argv += ["--do_train", "--do_eval", "--do_predict", "--export", "onnx", *flags]
    results = run_main(model, folder / "out", *argv)
    report = json.loads((folder / "out" / "onnx" / "export_report.json").read_text())
    return results, report


@pytest.fixture(scope="module")
def pooled(tiny_bert, tmp_path_factory):
    """One export shared by the tests that read its folder: mean pooling and a temperature, both inside the graph."""
    folder = tmp_path_factory.mktemp("export-pooled")
    results, report = export_run(tiny_bert, folder, "--pooling", "mean", "--calibrate", "temperature")
    return folder, results, report


def test_pooling_and_temperature_are_inside_the_graph(pooled):
    _, results, report = pooled
    assert report["max_abs_logit_difference"]["onnx_fp32"] < 1e-4
    assert report["temperature_in_graph"] == pytest.approx(results["eval_temperature"], rel=1e-6)  # (float32)


def test_both_graphs_run_onnxruntimes_fused_operators(pooled):
    """Attention, skip layer norm and bias-GELU fused (the speed of the export), the logits still PyTorch's."""
    folder, _, report = pooled
    fused = report["fused_operators"]
    assert fused["model.onnx"]["attention"] == 2 and fused["model.onnx"]["skip_layer_normalization"] >= 2
    assert fused["model_int8.onnx"]["bias_gelu"] == 2
    operators = {n.op_type for n in onnx.load(str(folder / "out" / "onnx" / "model.onnx")).graph.node}
    assert {"Attention", "SkipLayerNormalization", "BiasGelu"} <= operators and "Softmax" not in operators
    assert report["max_abs_logit_difference"]["onnx_int8"] < 0.5  # fused int8 of a tiny model: near, not equal
    assert not (folder / "out" / "onnx.incomplete").exists()


@pytest.mark.parametrize("decoder", ["tiny_gpt2", "tiny_llama"])
def test_decoder_lms_export_without_their_cache_or_packing(decoder, request, tmp_path):
    """A decoder trains padding-free (a hook torch.export cannot trace) and has a KV cache: the graph has neither.
    GPT-2's fused graph is one onnxruntime refuses (Gemm on a rank-3 input): the unfused one is kept."""
    results, report = export_run(request.getfixturevalue(decoder), tmp_path)
    assert report["max_abs_logit_difference"]["onnx_fp32"] < 1e-4
    assert [o.name for o in ort.InferenceSession(str(tmp_path / "out" / "onnx" / "model.onnx")).get_outputs()] == [
        "logits"
    ]
    assert results["export_int8_within_tolerance"] in (True, False)


def test_a_failed_export_is_one_error_and_leaves_no_onnx_folder(tiny_bert, tmp_path, monkeypatch, capsys):
    """The exporter's message (ANSI colours and all) becomes one plain line; the trained model stays; neither onnx/
    nor the staging folder is left behind, so no half-written folder passes for an export."""
    import torch

    import run_classification as R

    def refuse(*args, **kwargs):
        raise RuntimeError("\x1b[1mFailed to export\x1b[0m the model with torch.export.\nmore lines")

    monkeypatch.setattr(torch.onnx, "export", refuse)
    files = files_for(tmp_path)
    argv = ["--model_name_or_path", str(tiny_bert), "--output_dir", str(tmp_path / "out"), *TRAIN_FLAGS]
    argv += ["--train_file", files["train"], "--validation_file", files["dev"], "--do_train", "--export", "onnx"]
    assert R.cli(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "\x1b" not in err
    assert "could not export this bert model (RuntimeError: Failed to export the model" in err
    assert (tmp_path / "out" / "model.safetensors").is_file()
    assert not (tmp_path / "out" / "onnx").exists() and not (tmp_path / "out" / "onnx.incomplete").exists()


@pytest.mark.parametrize(
    "case, flags",
    [
        ("cls", ["--pooling", "cls"]),
        ("lora merged", ["--use_lora", "--learning_rate", "1e-2"]),
        # accelerate's autocast wraps the trained model's forward: the graph is still traced in fp32, on the copy
        ("asked for bf16", ["--bf16", "true"]),
    ],
)
def test_the_fp32_graph_gives_pytorchs_logits(tiny_bert, tmp_path, case, flags, capfd, recwarn):
    results, report = export_run(tiny_bert, tmp_path, *flags)
    # the log a person reads: our export lines, not the exporters' own chatter (158 lines of onnxscript's passes, its
    # progress prints, torchvision notices, shape-naming and pre-processing warnings), and the folder as it ends up
    out, err = capfd.readouterr()
    noise = ("onnx_ir", "onnxscript", "[torch.onnx]", "torchvision", "pre-processing before quantization")
    assert not [line for line in (out + err).splitlines() if any(n in line for n in noise)]
    assert not [w for w in recwarn if "axis name" in str(w.message) or "LeafSpec" in str(w.message)]
    assert f"ONNX export: {tmp_path / 'out' / 'onnx' / 'model.onnx'} and " in out and ".incomplete" not in out
    assert report["max_abs_logit_difference"]["onnx_fp32"] < 1e-4
    assert results["export_fp32_max_abs_logit_difference"] < 1e-4
    assert report["rows"] == 20 and report["split"] == "validation"
    assert set(report["metrics"]) == {"pytorch", "onnx_fp32", "onnx_int8"}
    assert report["file_bytes"]["model_int8.onnx"] < report["file_bytes"]["model.onnx"]


@pytest.mark.parametrize(
    "problem, label_fn",
    [("regression", lambda pos: 0.25 + 0.5 * pos), ("multi_label_classification", lambda pos: ["pos"] if pos else [])],
)
def test_regression_and_multi_label_export_too(tiny_bert, tmp_path, problem, label_fn):
    if problem == "multi_label_classification":
        rows = {s: [{**r, "label": label_fn(r["label"])} for r in sentiment_rows(n, i)] for i, (s, n) in enumerate(
            (("train", 32), ("dev", 20), ("test", 7))
        )}  # fmt: skip
        files = {s: write_rows(tmp_path / f"{s}.jsonl", r) for s, r in rows.items()}
        argv = ["--train_file", files["train"], "--validation_file", files["dev"], "--test_file", files["test"]]
        run_main(tiny_bert, tmp_path / "out", *argv, "--do_train", "--do_eval", "--do_predict", "--export", "onnx")
        report = json.loads((tmp_path / "out" / "onnx" / "export_report.json").read_text())
    else:
        _, report = export_run(tiny_bert, tmp_path, label_fn=label_fn)
    assert report["max_abs_logit_difference"]["onnx_fp32"] < 1e-4


def test_the_folder_predicts_with_bare_onnxruntime_and_a_tokenizer(pooled):
    """The lines the README shows (onnxruntime and the tokenizers library only): the same probabilities as the
    PyTorch run's predictions.jsonl."""
    from tokenizers import Tokenizer

    tmp_path = pooled[0]
    folder = tmp_path / "out" / "onnx"
    session = ort.InferenceSession(str(folder / "model.onnx"))
    tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
    tokenizer.enable_padding(pad_id=0)
    tokenizer.enable_truncation(64)
    id2label = json.loads((folder / "config.json").read_text())["id2label"]
    rows = [json.loads(line) for line in (tmp_path / "out" / "predictions.jsonl").read_text().splitlines()]
    enc = tokenizer.encode_batch([r["text"] for r in rows])
    columns = {"input_ids": "ids", "attention_mask": "attention_mask", "token_type_ids": "type_ids"}
    feed = {i.name: np.array([getattr(e, columns[i.name]) for e in enc], dtype=np.int64) for i in session.get_inputs()}
    probabilities = softmax(session.run(["logits"], feed)[0], axis=1)
    for row, p in zip(rows, probabilities, strict=True):
        assert [row["probabilities"][id2label[str(i)]] for i in range(len(p))] == pytest.approx(p, abs=2e-6)
        assert row["label"] == id2label[str(int(p.argmax()))]


def test_each_graph_is_one_file_and_int8_is_the_smaller(pooled):
    tmp_path, _, report = pooled
    folder = tmp_path / "out" / "onnx"
    assert sorted(p.name for p in folder.glob("model*")) == ["model.onnx", "model_int8.onnx"]  # no external data
    assert report["summary"]["int8_size_share"] < 1


def test_model_onnx_folder_predicts_what_the_pytorch_run_predicted(tiny_bert, tmp_path, capsys):
    """--model OUT/onnx --do_predict: onnxruntime, the same predictions.jsonl and metrics (the fp32 graph here: the
    int8 one is set aside when its check fails, as a tolerance below zero makes it). Such an int8 graph, one that
    'loses too much' as a degraded one would, is named in a warning."""
    results, report = export_run(tiny_bert, tmp_path, "--pooling", "mean", "--export_int8_tolerance", "-1")
    assert report["summary"]["int8_within_tolerance"] is False and results["export_int8_within_tolerance"] is False
    assert "deploy model.onnx, not model_int8.onnx" in capsys.readouterr().out
    files = {s: str(tmp_path / f"{s}.csv") for s in ("dev", "test")}
    onnx = tmp_path / "out" / "onnx"
    argv = ["--validation_file", files["dev"], "--test_file", files["test"], "--do_eval", "--do_predict"]
    again = run_main(onnx, tmp_path / "pred", *argv, "--do_train", "false")
    assert again["eval_accuracy"] == results["eval_accuracy"]
    assert again["eval_loss"] == pytest.approx(results["eval_loss"], abs=1e-5)
    ours = [json.loads(x) for x in (tmp_path / "pred" / "predictions.jsonl").read_text().splitlines()]
    theirs = [json.loads(x) for x in (tmp_path / "out" / "predictions.jsonl").read_text().splitlines()]
    assert [r["label"] for r in ours] == [r["label"] for r in theirs]
    for a, b in zip(ours, theirs, strict=True):
        assert a["probabilities"] == pytest.approx(b["probabilities"], abs=1e-5)
    assert (tmp_path / "pred" / "eval_report.md").is_file()


def test_an_onnx_folder_only_evaluates_and_predicts_and_needs_its_config(pooled, capsys):
    import run_classification as R

    folder = pooled[0]
    onnx = folder / "out" / "onnx"
    argv = ["--model", str(onnx), "--train_file", str(folder / "train.csv"), "--do_train", "--output_dir"]
    assert R.cli([*argv, str(folder / "t")]) == 2
    assert "is an exported ONNX folder: it evaluates and predicts" in capsys.readouterr().err
    # the graph divides its logits by the temperature it was exported with: another one is refused, not ignored
    argv = ["--model", str(onnx), "--test_file", str(folder / "test.csv"), "--do_predict", "--output_dir"]
    assert R.cli([*argv, str(folder / "t2"), "--calibration_temperature", "2"]) == 2
    err = capsys.readouterr().err
    assert "--calibration_temperature: an exported ONNX graph divides its logits by the temperature" in err
    assert not (folder / "t2").exists()
    broken = folder / "no-config"
    broken.mkdir()
    for name in ("model.onnx", "tokenizer.json", "tokenizer_config.json"):
        (broken / name).symlink_to(onnx / name)
    argv = ["--model", str(broken), "--test_file", str(folder / "test.csv"), "--do_predict", "--output_dir"]
    assert R.cli([*argv, str(folder / "p")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "Traceback" not in err


@pytest.mark.parametrize(
    "within, int8_speed, chosen",
    [(True, 120.0, "model_int8.onnx"), (True, 80.0, "model.onnx"), (False, 120.0, "model.onnx")],
)
def test_the_folder_predicts_with_int8_only_when_it_was_within_tolerance_and_faster(
    tmp_path, within, int8_speed, chosen
):
    """On a CPU without int8 dot products (AVX2 only) int8 was slower than fp32: the check's speeds decide."""
    from textcls.export.onnx import onnx_file

    for name in ("model.onnx", "model_int8.onnx"):
        (tmp_path / name).write_bytes(b"")
    report = {
        "summary": {"int8_within_tolerance": within},
        "rows_per_second": {"onnx_fp32": 100.0, "onnx_int8": int8_speed},
    }
    (tmp_path / "export_report.json").write_text(json.dumps(report))
    assert onnx_file(str(tmp_path)) == str(tmp_path / chosen)
