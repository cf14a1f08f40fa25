"""Launch checks: a distributed run must be one job, with sane threads and one mixed-precision setting.

Traps measured with transformers 5.24 / accelerate 1.15 on a CPU-only machine: `accelerate launch --multi_gpu
--num_processes 2` with a script that does not select the CPU starts two independent duplicate runs; accelerate
sets OMP_NUM_THREADS=1 per process; two processes each using every core slow each other down several-fold."""

import logging
import os

import torch
import torch.distributed as dist

from textcls.errors import UserError
from textcls.hardware import BF16_INSTRUCTIONS, cpu_flags

logger = logging.getLogger(__name__)


def has_accelerator() -> bool:
    return torch.accelerator.is_available()


# Where --bf16, left unset, turns on: CPUs with AMX tiles for bf16. Measured there (2 cores of an Intel Xeon with
# amx_bf16, all-MiniLM-L6-v2, our tuned recipes, 3 seeds alternating with fp32): SST-2 8k rows 0.90x fp32's training
# time at the same accuracy, RTE 0.79x (results/README.md, "CPU bf16 against fp32"). avx512_bf16 alone (AMD Zen 4) is
# not measured, so it stays fp32 there; on GPUs the flag stays the user's choice, as in transformers.
AUTO_BF16_INSTRUCTIONS = ("amx_bf16",)


def resolve_bf16(training_args, decided: dict | None = None) -> bool:
    """--bf16, decided once: bf16 autocast over fp32 weights or not (given: Trainer's, every forward; decided here:
    the training steps only, trainer.ClassificationTrainer.autocast_smart_context_manager). Given, the flag; unset,
    what a resumed checkpoint's run decided (decided: run_folder.decided), else on for a run on the CPU where the CPU
    has AUTO_BF16_INSTRUCTIONS. Logs an automatic choice and why. (accelerate configured with bf16 or fp16 needs the
    flag given: check_launch says so.)"""
    if training_args.bf16 is not None:
        return training_args.bf16
    if "bf16" in (decided or {}):
        return bool(decided["bf16"])
    if training_args.fp16:
        return False
    if os.environ.get("ACCELERATE_MIXED_PRECISION", "no") != "no":
        return False  # refused by check_launch unless the flag says the same
    if has_accelerator() and not training_args.use_cpu:
        return False
    found = sorted((cpu_flags() or set()) & set(AUTO_BF16_INSTRUCTIONS))
    if found and getattr(training_args, "do_train", True):  # a run that trains nothing has nothing to say here
        logger.info(
            "mixed precision: bf16 autocast for the training steps, as this CPU has %s (measured faster than fp32 at "
            "the same accuracy; evaluation and prediction stay fp32; pass --bf16 false to train in fp32)",
            ", ".join(found),
        )
    return bool(found)


def launched_world_size() -> int:
    """How many processes the launcher (torchrun, accelerate, Slurm via either) says it started."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def check_launch(training_args) -> None:
    """Refuse a launch whose processes would each train alone, and a precision that disagrees with accelerate."""
    launched = launched_world_size()
    if launched > 1 and training_args.world_size == 1:
        raise UserError(
            f"{launched} processes were launched but they formed no process group: each would train the same model "
            "alone and write the same files. On CPU pass --use_cpu (gloo DDP); on GPUs check that every process sees "
            "a GPU."
        )
    if training_args.fp16 and not has_accelerator():
        raise UserError(
            "--fp16 needs a GPU. On CPU drop it (fp32), or use --bf16 (correct, but much slower than fp32 on "
            "CPUs without bf16 instructions)."
        )
    flags = cpu_flags()
    if training_args.bf16 and not has_accelerator() and flags is not None and not flags & set(BF16_INSTRUCTIONS):
        # measured: results/speed/cpu-bf16-avx2-2026-12-06.json (benchmarks/speed.py --modes ours ours_bf16)
        logger.warning(
            "--bf16 on a CPU without bf16 instructions (%s): torch emulates bf16 here, and training measured 12x "
            "slower than fp32 (all-MiniLM-L6-v2, 2 AVX2 cores: 4.0 against 48.5 samples/s, the same accuracy). "
            "Drop --bf16 to train in fp32.",
            " or ".join(BF16_INSTRUCTIONS),
        )
    accelerate_mp = os.environ.get("ACCELERATE_MIXED_PRECISION", "no")
    ours = "bf16" if training_args.bf16 else "fp16" if training_args.fp16 else "no"
    if accelerate_mp != "no" and accelerate_mp != ours:
        raise UserError(
            f"accelerate is configured with mixed_precision={accelerate_mp} but this run has "
            f"{'--' + ours if ours != 'no' else 'neither --bf16 nor --fp16'}. Pass --{accelerate_mp} true, or set "
            f"mixed_precision: '{ours}' in the accelerate config / launch with --mixed_precision {ours}."
        )


def release_process_group() -> None:
    """Tear down this process's process group (if any) while the interpreter is still whole.

    Left to the interpreter's exit, gloo's worker threads can outlive the Python objects they hold and the process
    dies of SIGABRT ("terminate called without an active exception") after all its work is done: seen once in CI, on
    process 1 of a 2-process search that had finished its trials (pytorch PR #179291 describes the race, and was
    abandoned). The call is local: it waits for no other process, so a process that failed early does not hang."""

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def check_threads(training_args) -> None:
    """Warn when CPU processes x threads over- or under-use the cores; both cost several-fold on CPU."""
    if has_accelerator():
        return
    cores = os.cpu_count() or 1
    local = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    threads = torch.get_num_threads()
    best = max(1, cores // local)
    if threads * local > cores:
        logger.warning(
            "%d process(es) x %d threads on %d cores: oversubscribed, each step waits for descheduled threads. "
            "Set OMP_NUM_THREADS=%d.",
            local,
            threads,
            cores,
            best,
        )
    elif threads * local < cores // 2 or (threads < best and threads * local < cores):
        logger.warning(
            "%d process(es) x %d thread(s) use only %d of %d cores (accelerate launch sets OMP_NUM_THREADS=1). "
            "Set OMP_NUM_THREADS=%d for this launch.",
            local,
            threads,
            threads * local,
            cores,
            best,
        )
