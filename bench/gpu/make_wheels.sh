#!/usr/bin/env bash
# Build the wheel directory bench/gpu/run.sh installs from on a GPU machine without internet access:
# manylinux x86_64 wheels for Python 3.12 of what the sweep needs beyond torch, transformers, numpy, pandas and
# pyarrow (which a GPU machine brings). Versions are the ones this checkout's .venv uses (unpinned if absent).
# The ray and duckdb wheels are slimmed and recompressed so the directory stays under 64 MiB (about 60).
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

# Shrink the two big wheels so the directory fits in 64 MiB: ray without ray/jars/ (Java support) and the parts a
# sweep never imports (ray/serve/, ray/llm/, the dashboard's web client), their RECORD lines dropped; ray and duckdb
# recompressed with LZMA (pip installs LZMA-compressed wheels; it takes a few minutes of CPU here, once).
rm -f "$DIR"/*.whl.tmp
for whl in "$DIR"/ray-*.whl "$DIR"/duckdb-*.whl; do
  [ -e "$whl" ] || continue
  "$PY" - "$whl" <<'PYEOF'
import copy, os, sys, zipfile
src = sys.argv[1]
tmp = src + ".tmp"
DROP = ("ray/jars/", "ray/serve/", "ray/llm/", "ray/dashboard/client/build/")
with zipfile.ZipFile(src) as zin:
    if all(i.compress_type == zipfile.ZIP_LZMA for i in zin.infolist() if i.file_size):
        sys.exit(0)  # done before
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_LZMA) as zout:
        for info in zin.infolist():
            if info.filename.startswith(DROP):
                continue
            data = zin.read(info.filename)
            if info.filename.endswith(".dist-info/RECORD"):
                drop = tuple(d.encode() for d in DROP)
                data = b"".join(l for l in data.splitlines(keepends=True) if not l.startswith(drop))
            out = copy.copy(info)
            out.compress_type = zipfile.ZIP_LZMA
            zout.writestr(out, data)
before = os.path.getsize(src)
os.replace(tmp, src)
print(f"rewrote {os.path.basename(src)}: {before / 2**20:.1f} -> {os.path.getsize(src) / 2**20:.1f} MiB")
PYEOF
done
du -sh "$DIR"
ls "$DIR"
