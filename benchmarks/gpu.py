#!/usr/bin/env python
"""GPU training speed in bf16: the HF example's default behaviour vs our defaults vs LoRA, on a bert-base-uncased
architecture (random init: no hub there) with the 30,522-token uncased WordPiece vocabulary, on real SST-2 rows.
Reports train samples/s, real tokens/s and MFU on real tokens next to the measured bf16 matrix-product peak.

Prepare here (copies SST-2 and the tokenizer, downloads the wheels the device lacks, all into git-excluded folders):

    bash benchmarks/gpu_prepare.sh ../shared/data/glue

Run on the device (one call of the `run` tool, carrying .gpu_bench and .whl; about 5 minutes):

    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \\
        .whl/*.whl && export PYTHONPATH=/tmp/site || exit; PYTHONUNBUFFERED=1 python3 benchmarks/gpu.py \\
        --data_dir .gpu_bench/data/SST-2 --tokenizer .gpu_bench/tokenizer --out $OUT/gpu-h200.json

then copy the JSON to results/speed/gpu-h200.json and run scripts/make_results_readme.py.

MFU counts the useful work only: 6 x (non-embedding parameters) x (real tokens) + 12 x layers x hidden x (sum over
rows of length^2) for attention, forward and backward, over the train time and the peak measured on this device (an
8192^3 bf16 matrix product). Padding is not useful work, so the padded HF default scores low by construction.
The anchor: the HF README's Titan RTX fp16 run of bert-base trained at about 255 samples/s.
"""

import argparse
import json
import os
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from benchmarks import speed  # noqa: E402  (the repository root is put on the path just above)
from textcls.errors import UserError  # noqa: E402
from textcls.io import write_json_atomic  # noqa: E402

DEFAULT_MODES = ("hf_default", "ours", "ours_lora")
TINY = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64}


def measure_peak_tflops(size: int = 8192, repeats: int = 10) -> float:
    """bf16 matrix-product throughput on this GPU, the mean of `repeats` timed products after three warm-ups."""
    import torch

    a = torch.randn(size, size, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(size, size, device="cuda", dtype=torch.bfloat16)
    for _ in range(3):
        a @ b
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    torch.cuda.synchronize()
    return 2 * size**3 * repeats / (time.perf_counter() - start) / 1e12


def build_model(tokenizer_dir: str, out_dir: str, tiny: bool) -> dict:
    """bert-base-uncased's architecture (BertConfig's defaults) with random weights, saved with the tokenizer."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    config = BertConfig(vocab_size=len(tokenizer), num_labels=2, **(TINY if tiny else {}))
    torch.manual_seed(0)
    model = BertForSequenceClassification(config)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    embeddings = sum(p.numel() for p in model.bert.embeddings.parameters())
    total = sum(p.numel() for p in model.parameters())
    return {
        "non_embedding_params": total - embeddings,
        "total_params": total,
        "layers": config.num_hidden_layers,
        "hidden": config.hidden_size,
    }


def useful_flops(arch: dict, lengths: list[int]) -> float:
    """Training FLOPs of one pass over rows of these lengths: dense layers plus attention, forward and backward."""
    dense = 6 * arch["non_embedding_params"] * sum(lengths)
    attention = 12 * arch["layers"] * arch["hidden"] * sum(n * n for n in lengths)
    return float(dense + attention)


def parse(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data_dir", required=True, help="original GLUE SST-2 folder (train.tsv, dev.tsv)")
    p.add_argument("--tokenizer", required=True, help="folder of the uncased WordPiece tokenizer")
    p.add_argument("--train_rows", type=int, default=20000)
    p.add_argument("--batch_size", type=int, default=32)
    p.add_argument("--max_seq_length", type=int, default=128)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--modes", nargs="+", default=list(DEFAULT_MODES), choices=list(speed.MODES))
    p.add_argument("--out", required=True)
    p.add_argument("--tiny", action="store_true", help="a 2-layer, 32-wide model: checks this script on a CPU")
    p.add_argument("--allow_cpu", action="store_true", help="run without a GPU (fp32; MFU only with --peak_tflops)")
    p.add_argument("--peak_tflops", type=float, help="skip the peak measurement and use this value")
    return p.parse_args(argv)


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse(argv)
    import torch

    cuda = torch.cuda.is_available()
    if not cuda and not args.allow_cpu:
        raise UserError("no GPU is visible. Run this on the GPU machine, or pass --allow_cpu --tiny to check it here.")
    peak = args.peak_tflops or (measure_peak_tflops() if cuda else None)
    with tempfile.TemporaryDirectory() as work:
        model_dir = os.path.join(work, "bert-base-uncased-random")
        arch = build_model(args.tokenizer, model_dir, args.tiny)
        speed_json = os.path.join(work, "speed.json")
        speed_argv = [
            "--data_dir",
            args.data_dir,
            "--model",
            model_dir,
            "--train_rows",
            str(args.train_rows),
            "--batch_size",
            str(args.batch_size),
            "--max_seq_length",
            str(args.max_seq_length),
            "--repeats",
            str(args.repeats),
            "--slow_repeats",
            str(args.repeats),
            "--modes",
            *args.modes,
            "--out",
            speed_json,
        ]
        if cuda:
            speed_argv.append("--run_flags=--bf16 true")
        if speed.main(speed_argv) != 0:
            return 1
        with open(speed_json) as f:
            record = json.load(f)
        lengths = speed.row_lengths(model_dir, args.data_dir, args.train_rows, args.max_seq_length)
    flops = useful_flops(arch, lengths)
    mfu = {mode: (flops / m["train_s"] / (peak * 1e12) if peak else None) for mode, m in record["medians"].items()}
    record.update(
        {
            "benchmark": "speed-gpu",
            "command": "python3 benchmarks/gpu.py " + " ".join(argv),
            "model": f"bert-base-uncased architecture{' (tiny)' if args.tiny else ''}, random init",
            "device": torch.cuda.get_device_name(0) if cuda else "cpu",
            "precision": "bf16" if cuda else "fp32",
            "architecture": arch,
            "peak_bf16_tflops_measured": peak,
            "useful_flops_per_epoch": flops,
            "mfu_real_tokens": mfu,
            "mfu_target": ">= 0.45 (ours)",
            "anchor": "HF README, Titan RTX fp16, bert-base: about 255 train samples/s",
        }
    )
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    write_json_atomic(args.out, record)
    for mode, value in mfu.items():
        shown = f"{100 * value:.1f}%" if value is not None else "n/a (no peak)"
        print(f"MFU on real tokens, {mode}: {shown}")
    print(f"wrote {args.out}")
    return 0


def cli(argv=None) -> int:
    return speed.run_cli(main, argv)


if __name__ == "__main__":
    sys.exit(cli())
