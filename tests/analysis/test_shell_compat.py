"""The database file opens in the DuckDB shell users have: files are written in an older storage format
(``db.connection.STORAGE_COMPATIBILITY``), so a DuckDB 1.x shell (``duckdb-cli`` from PyPI, a dev extra) reads the
tables and the analysis views even when the Python package is a newer DuckDB."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from analysis.views import open_store
from db.connection import STORAGE_COMPATIBILITY
from tests.fakes import make_record


def duckdb_shell() -> str | None:
    here = Path(sys.executable).parent / "duckdb"  # the venv's duckdb-cli
    return str(here) if here.is_file() else shutil.which("duckdb")


@pytest.fixture(scope="module")
def db_path(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("shell") / "fw.duckdb"
    store = open_store(path)
    store.start_sweep("s", {}, "test", "/tmp/s")
    store.record_trial(make_record("s", "t0", seed=0, metrics={"score": 0.8, "accuracy": 0.8}))
    store.finish_sweep("s", "finished")
    store.record_trial(make_record("s", "t1", seed=1, metrics={"score": 0.7, "accuracy": 0.7}))
    return path


def test_file_is_written_in_the_compatible_storage_format(db_path):
    con = duckdb.connect(str(db_path), read_only=True)
    try:
        tags = con.execute("SELECT tags FROM duckdb_databases() WHERE database_name = current_database()").fetchone()
    finally:
        con.close()
    # e.g. {'storage_version': 'v1.0.0+'}: the oldest DuckDB release line able to read the file
    version = dict(tags[0])["storage_version"]
    assert version.startswith("v1."), version
    assert tuple(int(x) for x in version.strip("v+").split(".")[:2]) <= (1, 1), (version, STORAGE_COMPATIBILITY)


def test_duckdb_shell_reads_the_file(db_path):
    shell = duckdb_shell()
    if shell is None:
        pytest.skip("no duckdb shell (pip install duckdb-cli, a dev extra)")
    version = subprocess.run([shell, "-version"], capture_output=True, text=True, timeout=60).stdout.strip()
    sql = "SELECT count(*) AS n FROM trial_results; SELECT count(*) AS n FROM skyline WHERE kind = 'trial';"
    done = subprocess.run([shell, "-readonly", "-csv", str(db_path), sql], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, (version, done.stderr)
    assert done.stdout.split() == ["n", "2", "n", str(_skyline_trials(db_path))], (version, done.stdout)


def _skyline_trials(path: Path) -> int:
    return int(open_store(path, read_only=True).query("SELECT count(*) AS n FROM skyline WHERE kind = 'trial'")["n"][0])
