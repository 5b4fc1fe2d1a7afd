#!/usr/bin/env bash
# Build the wheel directory bench/gpu/run.sh installs from on a GPU machine without internet access:
# manylinux x86_64 wheels for Python 3.12 of what the sweep needs beyond torch, transformers, numpy, pandas and
# pyarrow (which a GPU machine brings). Versions are the ones this checkout's .venv uses (unpinned if absent).
# The ray wheel is rewritten without ray/jars/ (Java support, unused) so the directory stays under 64 MiB.
#
#   bash bench/gpu/make_wheels.sh [DIR]          # default DIR: .wheels-gpu (ignored by git)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
DIR="${1:-$ROOT/.wheels-gpu}"
PY="${PYTHON:-$ROOT/.venv/bin/python}"
PYVER="${PYVER:-3.12}"
mkdir -p "$DIR"

# --no-deps: the list is the closure of ray[tune], duckdb and optuna minus what a GPU machine with torch and
# transformers has; nothing in it depends on torch.
PKGS=(ray duckdb optuna sqlalchemy alembic mako markupsafe colorlog jsonschema jsonschema-specifications referencing
      rpds-py attrs tensorboardx protobuf msgpack click fsspec pydantic pydantic-core annotated-types typing-inspection
      typing-extensions pyyaml filelock packaging requests urllib3 idna certifi charset-normalizer tqdm greenlet
      setuptools wheel)
SPECS=()
for p in "${PKGS[@]}"; do
  v="$("$PY" -c "import importlib.metadata as m, sys
try: print(m.version(sys.argv[1]))
except m.PackageNotFoundError: pass" "$p" 2>/dev/null || true)"
  SPECS+=("${p}${v:+==$v}")
done
echo "downloading ${#SPECS[@]} wheels for CPython $PYVER manylinux x86_64 into $DIR"
"$PY" -m pip download --quiet --no-deps --only-binary=:all: --python-version "$PYVER" \
  --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux_2_28_x86_64 \
  --implementation cp -d "$DIR" "${SPECS[@]}"

# ray without ray/jars/: unpack, drop the directory and its RECORD lines, repack (a wheel is a zip)
for whl in "$DIR"/ray-*.whl; do
  [ -e "$whl" ] || continue
  "$PY" - "$whl" <<'PYEOF'
import os, sys, zipfile
src = sys.argv[1]
tmp = src + ".tmp"
with zipfile.ZipFile(src) as zin:
    names = zin.namelist()
    if not any(n.startswith("ray/jars/") for n in names):
        sys.exit(0)
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            if info.filename.startswith("ray/jars/"):
                continue
            data = zin.read(info.filename)
            if info.filename.endswith(".dist-info/RECORD"):
                data = b"".join(l for l in data.splitlines(keepends=True) if not l.startswith(b"ray/jars/"))
            zout.writestr(info, data)
os.replace(tmp, src)
print(f"rewrote {os.path.basename(src)} without ray/jars/")
PYEOF
done
du -sh "$DIR"
ls "$DIR"
