#!/usr/bin/env python
"""GPU training speed in bf16: the HF example's default behaviour vs our defaults vs LoRA, on a bert-base-uncased
architecture (random init: no hub there) with the 30,522-token uncased WordPiece vocabulary, on real SST-2 rows.
Reports train samples/s, real tokens/s and MFU on real tokens next to the measured bf16 matrix-product peak.

Prepare here (copies SST-2 and the tokenizer, downloads the wheels the device lacks, all into git-excluded folders):

    bash benchmarks/gpu_prepare.sh ../shared/data/glue

Run on the device (one call of the `run` tool, carrying .gpu_bench and .whl; about 9 minutes with the sweep):

    bash benchmarks/gpu_run.sh $OUT --sweep 256 1024 4096

(it installs the wheels, prints the versions, then runs this script with those arguments), then copy the JSON to
results/speed/gpu-h200.json and run scripts/make_results_readme.py. benchmarks/README.md has the results and the
next run.

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


def add_device_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--tiny", action="store_true", help="a 2-layer, 32-wide model: checks the script on a CPU")
    p.add_argument("--allow_cpu", action="store_true", help="run without a GPU (MFU only with --peak_tflops)")
    p.add_argument("--peak_tflops", type=float, help="skip the peak measurement and use this value")


def cuda_or_error(allow_cpu: bool) -> bool:
    """Whether a GPU is visible; without one, an error unless the run is a CPU check."""
    import torch

    cuda = torch.cuda.is_available()
    if not cuda and not allow_cpu:
        raise UserError("no GPU is visible. Run this on the GPU machine, or pass --allow_cpu --tiny to check it here.")
    return cuda


def parse(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data_dir", required=True, help="original GLUE SST-2 folder (train.tsv, dev.tsv)")
    p.add_argument("--tokenizer", required=True, help="folder of the uncased WordPiece tokenizer")
    p.add_argument("--train_rows", type=int, default=20000)
    p.add_argument("--batch_size", type=int, default=32)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--max_seq_length", type=int, default=128)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--modes", nargs="+", default=list(DEFAULT_MODES), choices=list(speed.MODES))
    p.add_argument(
        "--sweep",
        nargs="*",
        default=[],
        metavar="BATCH[:FLAGS]",
        help="after the modes, our defaults at these batch sizes (1 run each, --sweep_rows x --sweep_epochs), "
        "each with optional extra flags: '1024' '4096' '4096:--torch_compile true'. The table's MFU headroom.",
    )
    p.add_argument("--sweep_rows", type=int, default=67349, help="default: all of SST-2's training rows")
    p.add_argument("--sweep_epochs", type=int, default=3)
    p.add_argument("--precision", choices=["bf16", "fp32"], help="default: bf16 on a GPU, fp32 on a CPU")
    p.add_argument("--out", required=True)
    add_device_args(p)
    return p.parse_args(argv)


def run_speed(args, model_dir, work, name, rows, batch, epochs, modes, repeats, flags) -> dict:
    """One benchmarks/speed.py invocation on the random-init model; its record (a failed run raises RunFailed)."""
    out = os.path.join(work, f"{name}.json")
    argv = ["--data_dir", args.data_dir, "--model", model_dir, "--train_rows", str(rows), "--batch_size", str(batch)]
    argv += ["--epochs", str(epochs), "--max_seq_length", str(args.max_seq_length), "--repeats", str(repeats)]
    argv += ["--slow_repeats", str(repeats), "--modes", *modes, "--out", out, "--work_dir", work]
    speed.main([*argv, f"--run_flags={flags}"])
    with open(out) as f:
        return json.load(f)


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse(argv)
    import torch

    cuda = cuda_or_error(args.allow_cpu)
    sweep = []
    for spec in args.sweep:
        batch, _, flags = spec.partition(":")
        if not batch.isdigit() or int(batch) < 1:
            raise UserError(f"--sweep {spec!r}: give BATCH or BATCH:FLAGS, e.g. 4096 or '4096:--torch_compile true'.")
        sweep.append((int(batch), flags))
    precision = args.precision or ("bf16" if cuda else "fp32")
    flags = ("--bf16 true" if precision == "bf16" else "") + ("" if cuda else " --use_cpu true")
    peak = args.peak_tflops or (measure_peak_tflops() if cuda else None)
    with tempfile.TemporaryDirectory() as work:
        model_dir = os.path.join(work, "bert-base-uncased-random")
        arch = build_model(args.tokenizer, model_dir, args.tiny)

        def epoch_flops(rows: int) -> float:
            return useful_flops(arch, speed.row_lengths(model_dir, args.data_dir, rows, args.max_seq_length))

        def mfu(medians: dict, flops: float, epochs: int) -> dict:
            return {
                mode: (epochs * flops / m["train_s"] / (peak * 1e12) if peak else None) for mode, m in medians.items()
            }

        record = run_speed(
            args,
            model_dir,
            work,
            "modes",
            args.train_rows,
            args.batch_size,
            args.epochs,
            args.modes,
            args.repeats,
            flags,
        )
        record.update(
            {
                "benchmark": "speed-gpu",
                "command": "python3 benchmarks/gpu.py " + " ".join(argv),
                "model": f"bert-base-uncased architecture{' (tiny)' if args.tiny else ''}, random init",
                "device": torch.cuda.get_device_name(0) if cuda else "cpu",
                "precision": precision,
                "architecture": arch,
                "peak_bf16_tflops_measured": peak,
                "useful_flops_per_epoch": (flops := epoch_flops(args.train_rows)),
                "mfu_real_tokens": mfu(record["medians"], flops, args.epochs),
                "mfu_target": ">= 0.45 (ours)",
                "anchor": "HF README, Titan RTX fp16, bert-base: about 255 train samples/s",
                "sweep": [],
            }
        )
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        write_json_atomic(args.out, record)  # the modes are kept even if a sweep run fails or time runs out
        for mode, value in record["mfu_real_tokens"].items():
            shown = f"{100 * value:.1f}%" if value is not None else "n/a (no peak)"
            print(f"MFU on real tokens, {mode}: {shown}", flush=True)
        sweep_flops = epoch_flops(args.sweep_rows) if sweep else None
        for i, (batch, extra) in enumerate(sweep):
            run_flags = f"{flags} {extra}".strip()
            ours = run_speed(
                args, model_dir, work, f"sweep-{i}", args.sweep_rows, batch, args.sweep_epochs, ["ours"], 1, run_flags
            )["medians"]["ours"]
            entry = {
                "batch_size": batch,
                "flags": extra,
                "train_rows": args.sweep_rows,
                "epochs": args.sweep_epochs,
                **ours,
                "useful_flops_per_epoch": sweep_flops,
                "mfu_real_tokens": mfu({"ours": ours}, sweep_flops, args.sweep_epochs)["ours"],
            }
            record["sweep"].append(entry)
            write_json_atomic(args.out, record)
            shown = f"{100 * entry['mfu_real_tokens']:.1f}%" if peak else "n/a"
            print(f"sweep: batch {batch} {extra}: {ours['train_samples_per_second']:.0f} samples/s, MFU {shown}")
    print(f"wrote {args.out}")
    return 0


def cli(argv=None) -> int:
    return speed.run_cli(main, argv)


if __name__ == "__main__":
    sys.exit(cli())
