#!/usr/bin/env bash
# One command: install (scripts/setup.sh --dev), lint, and run the test suite. .ci/run runs exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --dev
. .venv/bin/activate
ruff check .
# One worker per core (pytest-xdist), a test file per worker at a time (module fixtures are built once); the slowest
# 15 tests are printed so that drift shows.
HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 python -m pytest -q -n auto --dist loadfile --durations=15 "$@"
