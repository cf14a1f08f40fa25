"""--export onnx: the trained model as an ONNX graph from token ids to logits (pooling, head and any calibration
temperature inside it), plus its dynamic-int8 quantized copy, checked against the PyTorch model before anyone ships
it. Written to output_dir/onnx/ with the tokenizer and the config (label map, problem type, thresholds, temperature),
so the folder loads with plain onnxruntime.InferenceSession and a tokenizer, without any code of ours.

Exported with torch.onnx's dynamo exporter (torch.export): the TorchScript exporter (dynamo=False) traced the
attention mask's shape logic as constants, and a graph exported on one batch shape gave logits 0.012 off on another
(measured on a tiny BERT, transformers 5.25, torch 2.13); the dynamo graph stayed within 4e-9. Quantized with
onnxruntime's quantize_dynamic (int8 weights, activations quantized at run time), the path sentence-transformers and
optimum take for CPU inference; the check below says what it cost.

Both graphs are then rewritten with onnxruntime's fused operators (onnxscript's ort_fusions: Attention or
MultiHeadAttention, SkipLayerNormalization, BiasGelu), the rewrite optimum's ORTOptimizer and onnxruntime's
transformers optimizer make. torch.onnx's dynamo graph spells attention as its parts, which onnxruntime's own
optimizer does not match (0 Attention nodes on all-MiniLM-L6-v2). Measured on the quickstart model, 512 review rows,
2 cores: fp32 29.6 -> 42.4 rows/s, int8 47.5 -> 71.4, logits unchanged to 1e-6 (README, Export). int8 is quantized
from the unfused graph, then fused: quantizing a fused Attention leaves its QKV weights in fp32 (31 MB instead of
23 MB). A fused graph that onnxruntime refuses or that moves the logits is dropped for the unfused one (said in the
log and the report).

Everything is written to onnx.incomplete/ and renamed to onnx/ only once checked, so a failed or interrupted export
leaves no folder that looks like a finished one."""

import contextlib
import copy
import json
import logging
import os
import re
import shutil
import time
import warnings

import numpy as np
import torch
from transformers.trainer_pt_utils import log_metrics
from transformers.trainer_utils import EvalPrediction, PredictionOutput

from textcls.data.collate import FastPaddingCollator
from textcls.errors import UserError
from textcls.evaluation.metrics import compute_metrics, make_compute_metrics, primary_metric
from textcls.io import write_json_atomic
from textcls.model.packing import disable_packing
from textcls.train.loss import exact_loss

logger = logging.getLogger(__name__)

FOLDER = "onnx"
INCOMPLETE = FOLDER + ".incomplete"  # where an export is written until it is checked
FUSION_TOLERANCE = 1e-4  # largest logit change the fused-operator rewrite may make against the graph it rewrote
FP32, INT8 = "model.onnx", "model_int8.onnx"
CHECK_ROWS = 2000  # rows of the validation split (else the training split) the export is checked on
BATCH = 64


class _Logits(torch.nn.Module):
    """The model as the graph sees it: token ids in, logits out, divided by the calibration temperature if any."""

    def __init__(self, model, names, temperature):
        super().__init__()
        self.model, self.names = model, names
        self.register_buffer("temperature", torch.tensor(1.0 if temperature is None else temperature))

    def forward(self, input_ids, attention_mask, token_type_ids=None):
        inputs = {"input_ids": input_ids, "attention_mask": attention_mask}
        if token_type_ids is not None:
            inputs["token_type_ids"] = token_type_ids
        return self.model(**inputs).logits / self.temperature


def export_model(trainer, data, data_args) -> dict:
    """Write output_dir/onnx/ (fp32 and int8 graphs, tokenizer, config, export_report.json) and return the report's
    headline numbers as metrics (export_*). Only the main process writes."""
    if data_args.export != "onnx" or not trainer.is_world_process_zero():
        return {}
    final = os.path.join(trainer.args.output_dir, FOLDER)
    out = os.path.join(trainer.args.output_dir, INCOMPLETE)
    shutil.rmtree(out, ignore_errors=True)  # an earlier export that failed or was interrupted
    os.makedirs(out)
    model = _plain_copy(trainer.model)
    tokenizer = trainer.processing_class
    rows = _check_rows(data)
    example = _batches(tokenizer, rows[:BATCH])[0]
    names = [k for k in ("input_ids", "attention_mask", "token_type_ids") if k in example]
    temperature = getattr(model.config, "calibration_temperature", None)
    graph = _Logits(model, names, temperature).eval()
    fp32, int8 = os.path.join(out, FP32), os.path.join(out, INT8)
    started = time.monotonic()
    with _quiet_exporters():
        _export(graph, example, names, fp32)
        _quantize(fp32, int8)
        fused = {FP32: _fuse(fp32, example, names)}
        fused[INT8] = _fuse(int8, example, names, reference=_logits(fp32, example, names))
    seconds = time.monotonic() - started
    report = check_export(graph, rows, tokenizer, data, (fp32, int8), data_args.export_int8_tolerance)
    report["fused_operators"] = fused
    model.config.save_pretrained(out)
    tokenizer.save_pretrained(out)
    write_json_atomic(os.path.join(out, "export_report.json"), report)
    shutil.rmtree(final, ignore_errors=True)  # an earlier export of this folder's model: replaced whole
    os.replace(out, final)
    logger.info("ONNX export: %s and %s in %.1f s", os.path.join(final, FP32), os.path.join(final, INT8), seconds)
    report["summary"]["folder"] = final
    logger.info("ONNX export checked: %s", json.dumps(report["summary"]))
    if report["summary"]["int8_within_tolerance"] is False:
        logger.warning(
            "the int8 model loses %.2f points of %s against PyTorch (tolerance %.2f): deploy %s, not %s "
            "(onnx/export_report.json has every number).",
            report["summary"]["int8_points_lost"],
            report["summary"]["metric"],
            data_args.export_int8_tolerance,
            FP32,
            INT8,
        )
    return {f"export_{k}": v for k, v in report["summary"].items() if isinstance(v, int | float | bool)}


def _plain_copy(model):
    """A CPU float32 copy in eval mode, a LoRA adapter merged into its weights (the graph needs no peft), padded
    batches with plain SDPA (no packing hooks: torch.export cannot trace them) and no KV cache (a classifier's
    forward needs none; a decoder's graph would otherwise return one)."""
    model = copy.deepcopy(model).to("cpu", torch.float32).eval()
    # --bf16/--fp16: accelerate replaced the instance's forward by one under autocast that calls the original model's
    # (a closure deepcopy does not copy): the graph would be traced in bf16 on the trained model, not this copy
    for module in (model, getattr(model, "base_model", None)):
        if module is not None:
            vars(module).pop("forward", None)
            vars(module).pop("_original_forward", None)
    if hasattr(model, "merge_and_unload"):
        model = model.merge_and_unload()
    disable_packing(model)
    model.config.use_cache = False
    return model


def _check_rows(data) -> list[dict]:
    """Token ids of up to CHECK_ROWS rows: the first validation split's, else the training split's first ones."""
    names = data.names("eval")
    source = data.tokenized[("eval", names[0])][0] if names else data.train_rows()
    if source is None:
        raise UserError("--export onnx checks the exported graph on the validation or training split: pass one.")
    source = source.select(range(min(CHECK_ROWS, len(source))))
    if not names and data.train_encoder is not None:  # training rows kept as text (--tokenize per_batch)
        return data.train_encoder(source.with_format("arrow")[:]).to_pylist()
    keep = [c for c in ("input_ids", "token_type_ids", "labels") if c in source.column_names]
    return source.select_columns(keep).to_list()


def _batches(tokenizer, rows: list[dict]) -> list[dict]:
    """Padded numpy batches of BATCH rows (int64), in the rows' order."""
    batches = []
    for i in range(0, len(rows), BATCH):
        chunk = [{k: v for k, v in r.items() if k != "labels"} for r in rows[i : i + BATCH]]
        padded = tokenizer.pad(chunk, padding=True, return_tensors="np")
        batches.append({k: np.asarray(v, dtype=np.int64) for k, v in padded.items()})
    return batches


# What the exporters say that a user cannot act on: torch's notices that torchvision's operators are not registered,
# its shape-naming and pytree deprecation warnings, onnxruntime's advice to pre-process before quantizing (a root
# logger warning; its dynamic int8 is checked against PyTorch below instead).
_EXPORTER_LOGGERS = ("torch.onnx", "onnxscript", "onnx_ir")
_EXPORTER_WARNINGS = (r".*The axis name: .* will not be used", r".*isinstance\(treespec, LeafSpec\)")


class _NoQuantizerAdvice(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "pre-processing before quantization" not in record.getMessage()


@contextlib.contextmanager
def _quiet_exporters():
    """torch.onnx, onnxscript and onnxruntime's quantizer without their notices and progress lines (a run's log was
    214 lines with 158 of theirs); their errors still raise, and the export's own check says what the graphs do."""
    levels = {name: logging.getLogger(name).level for name in _EXPORTER_LOGGERS}
    advice = _NoQuantizerAdvice()
    root = logging.getLogger()
    try:
        for name in _EXPORTER_LOGGERS:
            logging.getLogger(name).setLevel(logging.ERROR)
        root.addFilter(advice)
        with warnings.catch_warnings():
            for message in _EXPORTER_WARNINGS:
                warnings.filterwarnings("ignore", message=message)
            yield
    finally:
        root.removeFilter(advice)
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)


def _export(graph, example: dict, names: list[str], path: str) -> None:
    args = tuple(torch.from_numpy(example[k]) for k in names)
    batch, sequence = torch.export.Dim("batch"), torch.export.Dim("sequence")
    shapes = {k: {0: batch, 1: sequence} for k in names}
    try:
        torch.onnx.export(
            graph,
            args,
            path,
            input_names=names,
            output_names=["logits"],
            dynamic_shapes=shapes,
            dynamo=True,
            verbose=False,  # its progress prints ("[torch.onnx] Run decompositions...")
            external_data=False,  # one file (weights inside; under protobuf's 2 GB): what a service loads
        )
    except Exception as e:  # the exporter's errors are many types; one line says which model could not go
        shutil.rmtree(os.path.dirname(path), ignore_errors=True)
        lines = [line for line in _plain_text(str(e)).splitlines() if line.strip()] or [""]
        raise UserError(
            f"--export onnx: torch.onnx could not export this {graph.model.config.model_type} model "
            f"({type(e).__name__}: {lines[0][:200]}). The trained model in the output folder is kept; drop "
            "--export, or use a model type the exporter supports (BERT, RoBERTa, DistilBERT, ELECTRA, GPT-2, "
            "Llama...)."
        ) from None


def _plain_text(text: str) -> str:
    """The exporter's message without the terminal colour codes it writes into it."""
    return re.sub(r"\x1b\[[0-9;]*m", "", text)


def _quantize(fp32: str, int8: str) -> None:
    # onnxruntime's quantizer: imported here, when exporting (optional for every other run)
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(fp32, int8, weight_type=QuantType.QInt8, per_channel=True)


def _logits(path: str, example: dict, names: list[str]) -> np.ndarray:
    import onnxruntime as ort  # optional: only an export or an ONNX run needs it

    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    return session.run(["logits"], {k: example[k] for k in names})[0]


def _fuse(path: str, example: dict, names: list[str], reference: np.ndarray | None = None) -> dict:
    """Rewrite the graph at `path` with onnxruntime's fused transformer operators (see the module's docstring) and
    keep the rewrite only if onnxruntime loads it and its logits on `example` are the unfused graph's within
    FUSION_TOLERANCE. For the int8 graph (`reference`: the fp32 graph's logits) fusing changes which activations are
    quantized together, so the fused graph must instead be no further from fp32 than the unfused one (twice its
    distance at most; measured on the quickstart model: 0.33 against 0.35); check_export then scores it against
    PyTorch on the whole check split. Returns the count of each fusion applied ({} when the unfused graph was kept)."""
    import onnx_ir as ir  # optional: only an export needs the ONNX rewriting tools
    from onnxscript.rewriter.ort_fusions import optimize_for_ort

    before = _logits(path, example, names)
    fused_path = path + ".fused"
    try:
        model, counts = optimize_for_ort(ir.load(path))
        ir.save(model, fused_path)
        after = _logits(fused_path, example, names)
    except Exception as e:  # onnxruntime refusing a fused graph (e.g. a decoder's Gemm on a rank-3 input)
        logger.warning("ONNX export: %s stays unfused: onnxruntime refused the fused graph (%s)", path, e)
        counts, after = {}, None
    if reference is None:
        moved, allowed = (None if after is None else float(np.abs(after - before).max())), FUSION_TOLERANCE
    else:
        moved = None if after is None else float(np.abs(after - reference).max())
        allowed = 2 * float(np.abs(before - reference).max()) + FUSION_TOLERANCE
    if moved is None or moved > allowed:
        if moved is not None:
            logger.warning("ONNX export: %s stays unfused: fusion moved a logit by %.2g (allowed %.2g)", path, moved,
                           allowed)  # fmt: skip
        if os.path.exists(fused_path):
            os.remove(fused_path)
        return {}
    os.replace(fused_path, path)
    return {k: v for k, v in counts.items() if v}


def check_export(graph, rows, tokenizer, data, paths, tolerance: float) -> dict:
    """PyTorch, fp32 ONNX and int8 ONNX on the same padded batches: the largest logit difference of each graph from
    PyTorch, the metrics of each, the share of predictions that change, rows/s of each (one thread count: all
    cores), file sizes."""
    import onnxruntime as ort  # optional: only an export or an ONNX run needs it

    batches = _batches(tokenizer, rows)
    gold = np.asarray([r["labels"] for r in rows]) if "labels" in rows[0] else None
    names = graph.names
    timings, logits = {}, {}
    with torch.no_grad():
        started = time.monotonic()
        logits["pytorch"] = np.concatenate([graph(*(torch.from_numpy(b[k]) for k in names)).numpy() for b in batches])
        timings["pytorch"] = time.monotonic() - started
    for label, path in zip(("onnx_fp32", "onnx_int8"), paths, strict=True):
        session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
        started = time.monotonic()
        logits[label] = np.concatenate([session.run(["logits"], {k: b[k] for k in names})[0] for b in batches])
        timings[label] = time.monotonic() - started
    labels = data.labels
    primary = primary_metric(labels.problem_type, data.task_name)
    threshold = data.thresholds.value
    scores = (
        {
            k: compute_metrics(v, gold, labels.problem_type, data.task_name, labels.names, threshold)
            for k, v in logits.items()
        }
        if gold is not None
        else {}
    )
    decided = {k: _decisions(v, labels.problem_type, threshold) for k, v in logits.items()}
    report = {
        "temperature_in_graph": float(graph.temperature),  # the graph's logits are already divided by it
        "rows": len(rows),
        "split": data.names("eval")[0] if data.names("eval") else "train",
        "max_abs_logit_difference": {k: float(np.abs(v - logits["pytorch"]).max()) for k, v in logits.items()},
        "changed_predictions": {k: _changed(v, decided["pytorch"]) for k, v in decided.items()},
        "metrics": scores,
        "rows_per_second": {k: len(rows) / max(t, 1e-9) for k, t in timings.items()},
        "file_bytes": {os.path.basename(p): os.path.getsize(p) for p in paths},
    }
    lost = None
    if scores and primary in scores["pytorch"]:
        sign = -1 if primary == "mse" else 1
        lost = sign * 100 * (scores["pytorch"][primary] - scores["onnx_int8"][primary])
    report["summary"] = {
        "metric": primary,
        "fp32_max_abs_logit_difference": report["max_abs_logit_difference"]["onnx_fp32"],
        "int8_changed_predictions": report["changed_predictions"]["onnx_int8"],
        "int8_points_lost": lost,
        "int8_within_tolerance": None if lost is None else bool(lost <= tolerance),
        "int8_speedup": report["rows_per_second"]["onnx_int8"] / report["rows_per_second"]["pytorch"],
        "int8_size_share": report["file_bytes"][INT8] / report["file_bytes"][FP32],
    }
    return report


def _decisions(logits, problem_type: str, threshold):
    """What each row's prediction is: its class, its labels (a sigmoid at the threshold: a logit at its log-odds), or
    its value to 6 decimals (regression)."""
    logits = np.asarray(logits, dtype=np.float64)
    if problem_type == "regression":
        return np.round(logits.reshape(-1), 6)
    if problem_type == "multi_label_classification":
        threshold = np.asarray(threshold, dtype=np.float64)
        return logits >= np.log(threshold / (1 - threshold))
    return logits.argmax(axis=-1)


def _changed(decisions, reference) -> float:
    """The share of rows whose prediction differs from the reference's."""
    differ = decisions != reference
    return float(np.mean(differ.any(axis=-1) if differ.ndim > 1 else differ))


# ------------------------------------------------------------------------------------------------ predicting


def onnx_file(folder: str) -> str | None:
    """The graph a folder written by --export onnx predicts with: the int8 one when its export check found it within
    tolerance and faster than the fp32 one, else the fp32 one; None for a folder that holds neither. Faster is the
    check's measurement on the exporting machine: int8 pays on CPUs with int8 dot products (AVX-512 VNNI, AVX-VNNI,
    AMX), and on one with AVX2 only it was slower than fp32 (README, Export)."""
    report = os.path.join(folder, "export_report.json")
    use_int8 = True
    if os.path.isfile(report):
        with open(report, encoding="utf-8") as f:
            checked = json.load(f)
        speed = checked.get("rows_per_second", {})
        within = checked.get("summary", {}).get("int8_within_tolerance")
        use_int8 = within is not False and speed.get("onnx_int8", 1) >= speed.get("onnx_fp32", 0)
    for name in (INT8, FP32) if use_int8 else (FP32,):
        if os.path.isfile(os.path.join(folder, name)):
            return os.path.join(folder, name)
    return None


class OnnxPredictor:
    """What evaluation.predict asks of a Trainer, answered by onnxruntime: predict(split) -> logits, labels and
    metrics, in the split's order. Batches of --per_device_eval_batch_size rows, taken in the order the split was
    sorted (by length: each batch pads little), padded by the collator the Trainer uses; every core's threads (the
    session's default). Memory: one batch's inputs and the split's logits."""

    def __init__(self, path: str, args, tokenizer, compute_metrics, config):
        import onnxruntime as ort  # optional: only an export or an ONNX run needs it

        self.path, self.args, self.processing_class = path, args, tokenizer
        self.compute_metrics, self.model = compute_metrics, _ConfigOnly(config)
        self.session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
        self.inputs = [i.name for i in self.session.get_inputs()]
        self.collate = FastPaddingCollator(tokenizer)
        logger.info("predicting with onnxruntime: %s (inputs %s)", path, ", ".join(self.inputs))

    def is_world_process_zero(self) -> bool:
        return True

    def log_metrics(self, split, metrics):
        log_metrics(self, split, metrics)

    def predict(self, dataset, metric_key_prefix: str = "test"):
        started = time.monotonic()
        size = self.args.per_device_eval_batch_size
        arrow = dataset.with_format("arrow")
        logits, labels = [], []
        for i in range(0, len(dataset), size):
            batch = self.collate(arrow[i : i + size])
            feed = {k: np.asarray(batch[k], dtype=np.int64) for k in self.inputs}
            logits.append(self.session.run(["logits"], feed)[0])
            if "labels" in batch:
                labels.append(np.asarray(batch["labels"]))
        logits = np.concatenate(logits) if logits else np.zeros((0, len(self.model.config.id2label)))
        gold = np.concatenate(labels) if labels else None
        seconds = time.monotonic() - started
        metrics = {}
        if gold is not None:
            problem_type = self.model.config.problem_type
            loss = exact_loss(logits, gold, problem_type)
            if loss is not None:
                metrics["loss"] = loss
            metrics |= self.compute_metrics(EvalPrediction(logits, gold))
        metrics |= {"runtime": round(seconds, 4), "samples_per_second": round(len(dataset) / max(seconds, 1e-9), 3)}
        metrics = {f"{metric_key_prefix}_{k}": v for k, v in metrics.items()}
        return PredictionOutput(predictions=logits, label_ids=gold, metrics=metrics)


class _ConfigOnly:
    """Stands for the model where evaluation.predict reads model.config (thresholds, temperature)."""

    def __init__(self, config):
        self.config = config


def onnx_predictor(args, tokenizer, data, config, hub_metric=None) -> OnnxPredictor:
    """The predictor of a run whose --model is a folder written by --export onnx. The graph's logits include the
    calibration temperature, so none is applied again (config.checks.resolve_calibration)."""
    if data.long_documents.strategy == "chunk":
        raise UserError(
            "an exported ONNX folder does not join a text's windows yet (--long_document_strategy chunk): predict "
            "with the PyTorch model folder it was exported from."
        )
    compute = make_compute_metrics(data.labels, data.task_name, data.thresholds.value, hub_metric, None)
    return OnnxPredictor(onnx_file(args.model.model_name_or_path), args.training, tokenizer, compute, config)


def check_onnx_flags(args) -> None:
    """What a run with an exported ONNX folder as --model cannot do: train it, export it, or fit a temperature on it
    (its logits are calibrated already, when it was)."""
    if onnx_file(args.model.model_name_or_path) is None:
        return
    asked = [
        flag
        for flag, on in (
            ("--do_train", args.training.do_train),
            ("--export onnx", args.data.export == "onnx"),
            ("--calibrate temperature", args.data.calibrate == "temperature"),
            ("--use_lora", args.lora.use_lora),
        )
        if on
    ]
    if asked:
        raise UserError(
            f"{args.model.model_name_or_path} is an exported ONNX folder: it evaluates and predicts (--do_eval, "
            f"--do_predict), nothing else. Drop {', '.join(asked)}, or pass the PyTorch model folder it was "
            "exported from."
        )
