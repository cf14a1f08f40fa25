#!/usr/bin/env bash
# One command: install, then fine-tune all-MiniLM-L6-v2 on the shipped SST-2 sample (data/sst2-sample) on CPU,
# evaluate on the full SST-2 dev set and write predictions. Extra flags are passed to run_classification.py.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 python run_classification.py recipes/quickstart/sst2-sample_all-MiniLM-L6-v2.json "$@"
