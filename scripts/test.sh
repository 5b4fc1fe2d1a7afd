#!/usr/bin/env bash
# Set up (if needed), lint, and run the test suite without the slow end-to-end tests (sweeps through Ray, the demo,
# the README walkthrough: `.venv/bin/python -m pytest -m slow` runs those; CI runs both).
# Tests that need real data read its directory from FEATHERWEIGHT_SHARED_DATA and skip without it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/python -m pytest -m "not slow" "$@"
