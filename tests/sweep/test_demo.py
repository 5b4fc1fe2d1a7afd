"""``featherweight demo`` end to end, as a new user runs it, and the commands it prints work as printed."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from analysis.views import open_store

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def test_demo_end_to_end(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
    r = subprocess.run([sys.executable, "-m", "sweep.cli", "demo", "--output", "runs/demo"], capture_output=True,
                       text=True, cwd=tmp_path, env=env, timeout=900)  # fmt: skip
    assert r.returncode == 0, r.stderr[-4000:]
    out = tmp_path / "runs" / "demo"
    assert (out / "report" / "index.html").is_file() or any((out / "report").glob("*.html"))
    st = open_store(out / "featherweight.duckdb", read_only=True).sweep_status("demo")
    assert st["status"] == "finished"
    assert st["by_stage"]["distill"].get("finished") == 24 and st["by_stage"]["compress"].get("finished") == 6
    # every command the demo prints runs as printed (from the same directory)
    printed = [ln.strip() for ln in r.stdout.splitlines() if ln.startswith("  ") and " --db " in ln]
    assert len(printed) == 4, r.stdout
    for line in printed:
        argv = shlex.split(line)
        if argv[0] == "featherweight" or argv[0].endswith("/featherweight"):
            argv = [sys.executable, "-m", "sweep.cli", *argv[1:]]  # the test's interpreter stands for the venv's
        q = subprocess.run(argv, capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120)
        assert q.returncode == 0, (line, q.stderr)
        assert q.stdout.strip()
    # and the sweep is findable with no flags at all
    s = subprocess.run([sys.executable, "-m", "sweep.cli", "sweep", "status", "demo"], capture_output=True, text=True,
                       cwd=tmp_path, env=env, timeout=120)  # fmt: skip
    assert s.returncode == 0 and "finished" in s.stdout, s.stderr
