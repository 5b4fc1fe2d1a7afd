#!/usr/bin/env bash
# Create .venv with the CPU build of torch (pinned: a plain `torch` pulls a multi-GB CUDA build) and the project.
# GPU machines: install a CUDA torch first (https://pytorch.org/get-started), then `pip install -e .[dev]`.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip 2>&1 | grep -v "is ignored" || true
.venv/bin/python -c "import torch" 2>/dev/null || .venv/bin/python -m pip install -q torch==2.13.0 2>&1 | grep -v "is ignored" || true
.venv/bin/python -m pip install -q -e ".[dev]" 2>&1 | grep -v "is ignored" || true
.venv/bin/python -c "import torch, featherweight_core; print('featherweight ready, torch', torch.__version__)"
