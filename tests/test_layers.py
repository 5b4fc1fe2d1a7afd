"""The core library stays free of orchestration: importing it (every submodule) loads no ray/duckdb/optuna/altair."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

FORBIDDEN = ("ray", "duckdb", "optuna", "altair")

WALK = """
import importlib, json, pkgutil, sys
import featherweight_core
names = ["featherweight_core"]
for info in pkgutil.walk_packages(featherweight_core.__path__, "featherweight_core."):
    importlib.import_module(info.name)
    names.append(info.name)
forbidden = sorted(m for m in sys.modules if m.split(".")[0] in %r)
print(json.dumps({"modules": names, "forbidden": forbidden}))
"""


def _run(code: str) -> dict:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300,
                          cwd=Path(__file__).resolve().parents[1])  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_core_and_all_submodules_import_no_orchestration():
    result = _run(WALK % (FORBIDDEN,))
    # the walk really covered the package (these exist since the core library landed)
    for name in ("tasks", "data", "synthetic", "encoders", "students", "batching", "distill", "measure",
                 "prepare", "run", "checkpoint", "commands.distill", "commands.analyze"):  # fmt: skip
        assert f"featherweight_core.{name}" in result["modules"]
    assert result["forbidden"] == [], f"featherweight_core imports {result['forbidden']}"


def test_cli_parser_builds_without_heavy_imports():
    """`featherweight --help` builds every command's parser; the core commands must not pull in orchestration."""
    code = (
        "import json, sys\n"
        "import featherweight_core.commands.distill as d, featherweight_core.commands.analyze as a, argparse\n"
        "p = argparse.ArgumentParser(); sub = p.add_subparsers()\n"
        "d.add_parser(sub); a.add_parser(sub)\n"
        f"print(json.dumps({{'forbidden': sorted(m for m in sys.modules if m.split('.')[0] in {FORBIDDEN!r}),"
        " 'torch': 'torch' in sys.modules}))\n"
    )
    result = _run(code)
    assert result["forbidden"] == []
