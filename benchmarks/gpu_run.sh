#!/bin/bash
# The whole GPU speed run, as one command on the device machine (after benchmarks/gpu_prepare.sh here):
# installs the carried wheels, prints the environment, then runs benchmarks/gpu.py: HF default vs ours vs LoRA at
# batch 32 (the CPU benchmark's hyperparameters), then our defaults at larger batches (the MFU headroom).
#   bash benchmarks/gpu_run.sh OUT_DIR [GPU.PY ARGS]     (the device tool: carry .gpu_bench and .whl, OUT_DIR $OUT;
#                                                       default args: --sweep 256 1024 4096; about 9 minutes)
#   bash benchmarks/gpu_run.sh OUT_DIR step [ARGS]       benchmarks/gpu_step.py instead: one step's time, host vs
#                                                       kernels, eager vs torch.compile (about 4 minutes)
#   bash benchmarks/gpu_run.sh OUT_DIR packing [ARGS]    benchmarks/packing.py instead: padded vs padding-free per
#                                                       architecture (default args: bf16, batch 256, 16,384 rows)
# gpu.py rewrites OUT_DIR/gpu-h200.json after every stage, so a run cut short still leaves what it measured.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT_DIR=${1:?give the folder for the JSON and the log}
shift
SCRIPT=gpu.py NAME=gpu-h200
if [ "${1:-}" = step ]; then
    SCRIPT=gpu_step.py NAME=gpu-step-h200
    shift
elif [ "${1:-}" = packing ]; then
    SCRIPT=packing.py NAME=packing-h200
    shift
    [ $# -eq 0 ] && set -- --device cuda --bf16 --batch_size 256 --rows 16384
elif [ $# -eq 0 ]; then
    set -- --sweep 256 1024 4096
fi
mkdir -p "$OUT_DIR"
if [ -n "$(ls .whl/*.whl 2>/dev/null)" ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        || { echo "error: installing the carried wheels failed" >&2; exit 3; }
    export PYTHONPATH=/tmp/site
fi
export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
python3 - <<'EOF' || exit 3
import importlib.metadata as md, sys, torch
names = "torch transformers datasets peft accelerate huggingface_hub tokenizers pyarrow regex numpy".split()
print("python", sys.version.split()[0], *(f"{n} {md.version(n)}" for n in names))
print("cuda", torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else "")
import transformers, datasets, peft, sklearn, scipy  # noqa: F401  (fail here, not in the middle of the runs)
EOF
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,power.limit --format=csv 2>/dev/null
nproc
python3 "benchmarks/$SCRIPT" --data_dir .gpu_bench/data/SST-2 --tokenizer .gpu_bench/tokenizer \
    --out "$OUT_DIR/$NAME.json" "$@" 2>&1 | tee "$OUT_DIR/$NAME.log"
