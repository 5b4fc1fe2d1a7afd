"""``featherweight demo`` end to end, as a new user runs it after ``bash scripts/setup.sh`` (the environment's
``featherweight`` executable, not on PATH), and the commands it prints work as printed, from the same directory."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from analysis.views import open_store
from sweep.demo import featherweight_command

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent


def _env_without_venv_on_path() -> dict[str, str]:
    """The environment of a shell in which the README's `.venv` is not activated."""
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONHOME")}
    keep = [d for d in env.get("PATH", "").split(os.pathsep) if d and not (Path(d) / "featherweight").exists()]
    env["PATH"] = os.pathsep.join(keep or ["/usr/bin", "/bin"])
    env["PYTHONUNBUFFERED"] = "1"
    return env


@pytest.mark.slow
def test_demo_end_to_end_and_its_printed_commands_run_as_printed(tmp_path):
    env = _env_without_venv_on_path()
    exe = VENV_BIN / "featherweight"
    if exe.is_file():  # as the README runs it: .venv/bin/featherweight demo
        argv = [str(exe), "demo", "--output", "runs/demo"]
    else:  # an environment without the console script (e.g. a bare checkout): the module
        argv = [sys.executable, "-m", "sweep.cli", "demo", "--output", "runs/demo"]
        env["PYTHONPATH"] = str(ROOT)
    r = subprocess.run(argv, capture_output=True, text=True, cwd=tmp_path, env=env, timeout=900)
    assert r.returncode == 0, r.stderr[-4000:]
    out = tmp_path / "runs" / "demo"
    assert any((out / "report").glob("*.html"))
    st = open_store(out / "featherweight.duckdb", read_only=True).sweep_status("demo")
    assert st["status"] == "finished"
    assert st["by_stage"]["distill"].get("finished") == 24 and st["by_stage"]["compress"].get("finished") == 6
    # progress: every line says how long the demo has run; Optuna's own log lines stay out of it
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("[")]
    assert any("distillation trials" in ln for ln in lines) and any("compression stage" in ln for ln in lines)
    assert all(re.match(r"\[\d+m\d\ds\] ", ln) for ln in lines), lines[:5]
    assert "A new study created" not in r.stderr
    # every command the demo prints runs as printed, in a shell in the same directory without the venv on PATH
    printed = [ln.strip() for ln in r.stdout.splitlines() if ln.startswith("  ") and " --db " in ln]
    assert len(printed) == 4, r.stdout
    for line in printed:
        q = subprocess.run(["bash", "-c", line], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120)
        assert q.returncode == 0, (line, q.stderr)
        assert q.stdout.strip()
    # and the sweep is findable with no flags at all
    s = subprocess.run(
        [*argv[: argv.index("demo")], "sweep", "status", "demo"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=120,
    )
    assert s.returncode == 0 and "finished" in s.stdout, s.stderr


def test_printed_command_is_the_environments_featherweight(tmp_path, monkeypatch):
    """Not on PATH: the path of the environment's executable, relative when it is under the working directory."""
    venv_bin = tmp_path / ".venv" / "bin"
    venv_bin.mkdir(parents=True)
    (venv_bin / "featherweight").write_text("#!/bin/sh\n")
    (venv_bin / "featherweight").chmod(0o755)
    monkeypatch.setattr(sys, "executable", str(venv_bin / "python"))
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    monkeypatch.chdir(tmp_path)
    assert featherweight_command() == ".venv/bin/featherweight"
    monkeypatch.chdir(venv_bin)
    assert featherweight_command() == "./featherweight"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert featherweight_command() == str(venv_bin / "featherweight")
    # on PATH as this very program (an activated environment): the bare name
    monkeypatch.setenv("PATH", f"{venv_bin}:/usr/bin:/bin")
    assert featherweight_command() == "featherweight"
