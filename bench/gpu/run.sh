#!/usr/bin/env bash
# Run the GPU benchmark on a CUDA machine that has torch (a CUDA build), transformers, numpy, pandas and pyarrow
# but maybe not the sweep's other dependencies:
#
#   bash bench/gpu/run.sh --wheels DIR --data DIR [bench_gpu.py options, e.g. --budget-s 540]
#
# 1. installs what the machine lacks (ray, duckdb, optuna and their dependencies) from the wheel directory DIR
#    (built with bench/gpu/make_wheels.sh), offline, with a constraints file that pins the machine's own torch,
#    transformers, numpy, pandas and pyarrow so none of them changes; without --wheels nothing is installed;
# 2. installs this project without dependencies (editable); if that cannot be done offline it runs from the
#    checkout through PYTHONPATH instead;
# 3. runs bench/gpu/bench_gpu.py with the remaining arguments (see its --help).
# PYTHON selects the interpreter (default python3).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
PY="${PYTHON:-python3}"
WHEELS=""
ARGS=()
while [ $# -gt 0 ]; do
  case "$1" in
    --wheels) WHEELS="$2"; shift 2 ;;
    --wheels=*) WHEELS="${1#--wheels=}"; shift ;;
    *) ARGS+=("$1"); shift ;;
  esac
done

echo "python: $("$PY" -c 'import sys; print(sys.version.split()[0])'); torch: $("$PY" -c 'import torch; print(torch.__version__, "cuda", torch.version.cuda, "available", torch.cuda.is_available())')"
if [ -n "$WHEELS" ]; then
  CONSTRAINTS="$(mktemp)"
  trap 'rm -f "$CONSTRAINTS"' EXIT
  # pin what the machine already has: an offline install must never replace its torch (CUDA build) or friends
  "$PY" - > "$CONSTRAINTS" <<'PYEOF'
import importlib.metadata as m
for name in ("torch", "transformers", "tokenizers", "huggingface-hub", "safetensors", "numpy", "pandas", "pyarrow"):
    try:
        print(f"{name}=={m.version(name)}")
    except m.PackageNotFoundError:
        pass
PYEOF
  echo "constraints: $(tr '\n' ' ' < "$CONSTRAINTS")"
  # already-satisfied requirements are left as they are; the rest (and their dependencies) come from the directory
  echo "installing from $WHEELS what is missing of ray[tune], duckdb, optuna and their dependencies"
  "$PY" -m pip install --quiet --no-index --find-links "$WHEELS" -c "$CONSTRAINTS" "ray[tune]" duckdb optuna pyyaml
  if "$PY" -m pip install --quiet --no-index --find-links "$WHEELS" --no-deps -e "$ROOT" 2>/tmp/fw-pip-project.log; then
    echo "installed featherweight (editable, no dependencies)"
  else
    echo "could not install the project offline ($(tail -1 /tmp/fw-pip-project.log)); running from the checkout"
  fi
fi
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"  # Ray workers inherit it: trainables/ and featherweight_core/
exec "$PY" "$ROOT/bench/gpu/bench_gpu.py" "${ARGS[@]}"
