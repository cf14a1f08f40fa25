#!/usr/bin/env python
"""Where a training step's time goes on the GPU, outside Trainer: one bert-base step (forward, backward, clip, fused
AdamW, bf16 autocast over fp32 weights, as Trainer runs it) on real length-grouped SST-2 batches, eager and under
torch.compile, at several batch sizes. For each: ms per step (CUDA-synchronised), the host's time to issue a step,
the GPU's busy time per step (the profiler's kernel time), samples/s, real tokens/s, MFU on real tokens, and the
kernels that take the most time. It answers what benchmarks/gpu.py's sweep cannot: is a step bound by the host
(launches, Python) or by the kernels, and what compiling the model buys. Modes: eager and compile on padded batches;
packed and packed_compile on the same batches laid end to end (textcls/model/packing.py, our default for BERT).

    python3 benchmarks/gpu_step.py --data_dir .gpu_bench/data/SST-2 --tokenizer .gpu_bench/tokenizer \\
        --out $OUT/gpu-step-h200.json            (or: bash benchmarks/gpu_run.sh $OUT step)

On a CPU only with --tiny --allow_cpu (tests/launch/test_benchmarks.py): the numbers then mean nothing.
"""

import argparse
import os
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from benchmarks import gpu, speed  # noqa: E402  (the repository root is put on the path just above)
from textcls.errors import UserError  # noqa: E402
from textcls.io import write_json_atomic  # noqa: E402
from textcls.model.packing import enable_packing, first_position, pack_padded  # noqa: E402


def parse(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data_dir", required=True, help="original GLUE SST-2 folder (train.tsv)")
    p.add_argument("--tokenizer", required=True, help="folder of the uncased WordPiece tokenizer")
    p.add_argument("--batch_sizes", type=int, nargs="+", default=[32, 1024, 4096])
    p.add_argument(
        "--modes",
        nargs="+",
        default=["eager", "packed", "compile", "packed_compile"],
        choices=["eager", "packed", "compile", "packed_compile"],
    )
    p.add_argument("--steps", type=int, default=20, help="timed steps per setting, after --warmup steps")
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--out", required=True)
    gpu.add_device_args(p)
    return p.parse_args(argv)


def grouped_batches(tokenizer, texts: list[str], batch: int, count: int, seed: int = 0) -> list[dict]:
    """`count` batches as a length-grouped sampler makes them: draw 50 x batch rows, sort by length, cut."""
    import numpy as np

    from textcls.data.collate import FastPaddingCollator

    rng = np.random.default_rng(seed)
    collate = FastPaddingCollator(tokenizer, pad_to_multiple_of=8)
    out = []
    for _ in range(count):
        rows = rng.choice(len(texts), size=min(50 * batch, len(texts)), replace=False)
        enc = tokenizer([texts[i] for i in rows], truncation=True, max_length=128)
        order = np.argsort([len(ids) for ids in enc["input_ids"]], kind="stable")
        start = int(rng.integers(0, max(1, len(order) - batch)))
        chosen = order[start : start + batch]
        features = [{k: enc[k][i] for k in enc} | {"labels": int(rng.integers(0, 2))} for i in chosen]
        out.append(collate(features))
    return out


def measure(model, batches: list[dict], steps: int, warmup: int, device: str, compiled: bool) -> dict:
    """Time `steps` training steps after `warmup` ones; then profile a few more for kernel time."""
    import torch

    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5, fused=device == "cuda")
    if compiled:
        # Compiled code is cached per function, guarded on the model object: every setting's fresh model recompiles
        # into the same cache, and past torch._dynamo's recompile limit (8) later settings would run eager, unnoticed.
        torch._dynamo.reset()
    run = torch.compile(model) if compiled else model
    amp = torch.autocast(device, dtype=torch.bfloat16) if device == "cuda" else torch.autocast(device, enabled=False)

    def step(batch):
        with amp:
            loss = run(**batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return loss

    def sync():
        if device == "cuda":
            torch.cuda.synchronize()

    on_device = [{k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in b.items()} for b in batches]
    start = time.perf_counter()
    for i in range(warmup):
        step(on_device[i % len(on_device)])
    sync()
    warmup_s = time.perf_counter() - start
    issue = 0.0
    start = time.perf_counter()
    for i in range(steps):
        t = time.perf_counter()
        step(on_device[i % len(on_device)])
        issue += time.perf_counter() - t
    sync()
    wall = time.perf_counter() - start
    activities = [torch.profiler.ProfilerActivity.CPU]
    if device == "cuda":
        activities.append(torch.profiler.ProfilerActivity.CUDA)
    profiled = min(5, steps)
    with torch.profiler.profile(activities=activities) as prof:
        for i in range(profiled):
            step(on_device[i % len(on_device)])
        sync()
    events = [e for e in prof.key_averages() if e.device_type.name == "CUDA" or device != "cuda"]
    kernel_us = sum(e.self_device_time_total for e in events) if device == "cuda" else 0.0
    top = sorted(events, key=lambda e: e.self_device_time_total if device == "cuda" else e.self_cpu_time_total)[::-1]
    return {
        "ms_per_step": 1000 * wall / steps,
        "host_issue_ms_per_step": 1000 * issue / steps,
        "gpu_kernel_ms_per_step": kernel_us / 1000 / profiled,
        "warmup_s": warmup_s,
        "top_kernels": [
            {
                "name": e.key[:120],
                "ms_per_step": (e.self_device_time_total if device == "cuda" else e.self_cpu_time_total)
                / 1000
                / profiled,
                "calls_per_step": e.count / profiled,
            }
            for e in top[:12]
        ],
        "kernels_per_step": sum(e.count for e in events) / profiled if device == "cuda" else None,
    }


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse(argv)
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from textcls.data.glue import load_glue_dir

    cuda = gpu.cuda_or_error(args.allow_cpu)
    if not os.path.isfile(os.path.join(args.data_dir, "train.tsv")):
        raise UserError(f"{args.data_dir} has no train.tsv: pass the original GLUE SST-2 folder as --data_dir.")
    device = "cuda" if cuda else "cpu"
    peak = args.peak_tflops or (gpu.measure_peak_tflops() if cuda else None)
    tokenizer = AutoTokenizer.from_pretrained(args.tokenizer)
    texts = list(load_glue_dir("sst2", args.data_dir)["train"]["sentence"])
    record = {
        "benchmark": "gpu-step",
        "command": "python3 benchmarks/gpu_step.py " + " ".join(argv),
        "device": torch.cuda.get_device_name(0) if cuda else "cpu",
        "torch": torch.__version__,
        "peak_bf16_tflops_measured": peak,
        "results": [],
    }
    with tempfile.TemporaryDirectory() as work:
        arch = gpu.build_model(args.tokenizer, work, args.tiny)
        record["architecture"] = arch
        for batch in args.batch_sizes:
            batches = grouped_batches(tokenizer, texts, batch, count=4)
            lengths = [int(n) for b in batches for n in b["attention_mask"].sum(1)]
            flops_per_step = gpu.useful_flops(arch, lengths) / len(batches)
            real_per_step = sum(lengths) / len(batches)
            padded_per_step = sum(b["input_ids"].numel() for b in batches) / len(batches)
            for mode in args.modes:
                torch.manual_seed(0)
                model = AutoModelForSequenceClassification.from_pretrained(work).to(device)
                feed = batches
                if mode.startswith("packed"):
                    enable_packing(model)
                    feed = [pack_padded(b, first_position(model)) for b in batches]
                try:
                    m = measure(model, feed, args.steps, args.warmup, device, mode.endswith("compile"))
                except Exception as e:  # one setting's failure (say, out of memory) is recorded, the rest still run
                    m = {"error": f"{type(e).__name__}: {str(e)[:300]}"}
                del model
                if cuda:
                    torch.cuda.empty_cache()
                if "ms_per_step" in m:
                    seconds = m["ms_per_step"] / 1000
                    m["samples_per_second"] = batch / seconds
                    m["real_tokens_per_second"] = real_per_step / seconds
                    m["mfu_real_tokens"] = flops_per_step / seconds / (peak * 1e12) if peak else None
                    m["gpu_busy_fraction"] = m["gpu_kernel_ms_per_step"] / m["ms_per_step"] if cuda else None
                entry = {"batch_size": batch, "mode": mode, "real_tokens_per_step": real_per_step}
                record["results"].append(entry | {"padded_tokens_per_step": padded_per_step} | m)
                os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
                write_json_atomic(args.out, record)  # after every setting: a run cut short keeps what it measured
                shown = (
                    m.get("error")
                    or f"{m['ms_per_step']:.1f} ms/step (host issues in {m['host_issue_ms_per_step']:.1f}, kernels "
                    f"{m['gpu_kernel_ms_per_step']:.1f}), {m['samples_per_second']:.0f} samples/s, MFU "
                    + (f"{100 * m['mfu_real_tokens']:.1f}%" if m["mfu_real_tokens"] is not None else "n/a")
                )
                print(f"batch {batch} {mode}: {shown}", flush=True)
    print(f"wrote {args.out}")
    return 0


def cli(argv=None) -> int:
    return speed.run_cli(main, argv)


if __name__ == "__main__":
    sys.exit(cli())
