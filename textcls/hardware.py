"""What this machine's CPU can do: its feature flags, read without importing torch (a results file records them, and
CPU timings and the cost of --bf16 depend on them)."""

import contextlib

BF16_INSTRUCTIONS = ("avx512_bf16", "amx_bf16")  # CPU flags (Linux /proc/cpuinfo) of native bf16 dot products


def cpu_flags() -> set[str] | None:
    """This CPU's feature flags, or None where they cannot be read (not Linux)."""
    with contextlib.suppress(OSError, StopIteration), open("/proc/cpuinfo", encoding="utf-8") as f:
        return set(next(line for line in f if line.startswith("flags")).split(":", 1)[1].split())
    return None


def timing_flags() -> list[str]:
    """The CPU's vector and matrix extensions (AVX2, AVX-512, its VNNI and bf16, AMX): what CPU timings depend on."""
    return sorted(f for f in cpu_flags() or () if f.startswith(("avx512", "amx", "avx2", "avx_vnni")))
