"""The command line's error contract: UserError -> one ``error:`` line and exit 2; anything else is a bug and shows
its traceback with exit 1."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import sweep.spec
from featherweight_core.errors import UserError
from sweep.cli import main

ROOT = Path(__file__).resolve().parents[2]


def _python(code: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, cwd=cwd, env=env, timeout=120
    )


def test_user_error_is_one_line_exit_2(tmp_path):
    r = _python("import sys, sweep.cli; sys.exit(sweep.cli.main(['sweep', 'validate', 'missing.yaml']))", tmp_path)
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == ["error: missing.yaml: sweep spec not found"]


def test_a_bug_shows_its_traceback_exit_1(tmp_path):
    # A ValueError raised by a bug (not a UserError) must not pass for the user's mistake
    r = _python(
        """
        import sys, sweep.spec
        def broken(*args, **kwargs):
            raise ValueError("internal invariant broken")
        sweep.spec.load_spec = broken
        import sweep.cli
        sys.exit(sweep.cli.main(["sweep", "validate", "any.yaml"]))
        """,
        tmp_path,
    )
    assert r.returncode == 1
    assert "Traceback (most recent call last)" in r.stderr
    assert r.stderr.strip().splitlines()[-1] == "ValueError: internal invariant broken"
    assert "error: internal" not in r.stderr


def test_in_process_bug_propagates(monkeypatch, capsys):
    def broken(*args, **kwargs):
        raise FileNotFoundError("a path the code built wrongly")

    monkeypatch.setattr(sweep.spec, "load_spec", broken)
    with pytest.raises(FileNotFoundError):
        main(["sweep", "validate", "any.yaml"])

    def user_mistake(*args, **kwargs):
        raise sweep.spec.SpecError("grid.dims[0]: expected an integer, got 'x'")

    monkeypatch.setattr(sweep.spec, "load_spec", user_mistake)
    assert main(["sweep", "validate", "any.yaml"]) == 2
    assert capsys.readouterr().err == "error: grid.dims[0]: expected an integer, got 'x'\n"
    assert issubclass(sweep.spec.SpecError, UserError)


def test_status_finds_nothing_names_what_it_tried(tmp_path):
    r = _python("import sys, sweep.cli; sys.exit(sweep.cli.main(['sweep', 'status', 'nope']))", tmp_path)
    assert r.returncode == 2
    line = r.stderr.strip()
    assert line.startswith("error: no sweep 'nope' found (tried runs/nope/spec.yaml and runs/featherweight.duckdb)")


def test_unwritable_storage_is_one_line_before_anything_runs(tmp_path):
    spec = tmp_path / "ro.yaml"
    spec.write_text(
        "name: ro\nstorage: /proc/featherweight-nope/runs\ntasks: {synthetic: {}}\n"
        "grid: {archs: [ffn], embeddings: [hash], dims: [8], vocab_sizes: [100]}\n"
    )
    before = sorted(p.name for p in tmp_path.iterdir())
    r = _python(f"import sys, sweep.cli; sys.exit(sweep.cli.main(['sweep', 'run', {str(spec)!r}]))", tmp_path)
    assert r.returncode == 2, r.stderr
    assert r.stderr.strip().splitlines() == [
        "error: storage /proc/featherweight-nope/runs: cannot create the directory (No such file or directory)"
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == before
