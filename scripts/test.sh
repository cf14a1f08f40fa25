#!/usr/bin/env bash
# One command: install (scripts/setup.sh --dev), lint, and run the test suite. .ci/run runs exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --dev
. .venv/bin/activate
ruff check .
HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 python -m pytest -q "$@"
