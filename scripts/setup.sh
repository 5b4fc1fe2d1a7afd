#!/usr/bin/env bash
# Create .venv with the CPU build of torch (pinned: a plain `torch` pulls a multi-GB CUDA build) and the project.
# GPU machines: install a CUDA torch first (https://pytorch.org/get-started), then `pip install -e .[dev]`.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
LOG=$(mktemp)
trap 'rm -f "$LOG"' EXIT
quiet() {  # run pip quietly; show its output only when it fails
  if ! "$@" >"$LOG" 2>&1; then cat "$LOG" >&2; echo "setup failed: $*" >&2; exit 1; fi
}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
quiet .venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -c "import torch" 2>/dev/null || quiet .venv/bin/python -m pip install -q torch==2.13.0
quiet .venv/bin/python -m pip install -q -e ".[dev]"
.venv/bin/python -c "import torch, featherweight_core; print('featherweight ready, torch', torch.__version__)"
