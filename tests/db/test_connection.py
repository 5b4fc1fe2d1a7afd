"""db.connection: where the file is, opening errors, lock retries with a timeout, transactions."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import duckdb
import pytest

from db.connection import DEFAULT_DB_PATH, Connector, default_db_path
from db.errors import StoreError
from db.store import ExperimentStore
from featherweight_core.errors import UserError


def test_default_path_and_env(monkeypatch):
    monkeypatch.delenv("FEATHERWEIGHT_DB", raising=False)
    assert str(default_db_path()) == DEFAULT_DB_PATH == "runs/featherweight.duckdb"
    monkeypatch.setenv("FEATHERWEIGHT_DB", "/x/y.duckdb")
    assert str(default_db_path()) == "/x/y.duckdb"


def test_store_error_is_a_user_error_and_a_value_error():
    assert issubclass(StoreError, UserError) and issubclass(StoreError, ValueError)


def test_transaction_commits_or_rolls_back(tmp_path):
    c = Connector(tmp_path / "x.duckdb", read_only=False, lock_timeout=1)
    c.transaction(lambda con: con.execute("CREATE TABLE t (a INTEGER)"))
    c.transaction(lambda con: con.execute("INSERT INTO t VALUES (1)"))

    def fails(con):
        con.execute("INSERT INTO t VALUES (2)")
        raise KeyError("boom")

    with pytest.raises(KeyError):
        c.transaction(fails)
    with c.connect() as con:
        assert con.execute("SELECT list(a) FROM t").fetchone()[0] == [1]


def test_unreadable_file_is_one_line_store_error(tmp_path):
    garbage = tmp_path / "garbage.duckdb"
    garbage.write_bytes(b"not a database" * 100)
    with pytest.raises(StoreError, match="cannot open") as e, Connector(garbage, True, lock_timeout=1).connect():
        pass
    assert "\n" not in str(e.value)


def test_lock_timeout_names_the_file(tmp_path):
    path = tmp_path / "fw.duckdb"
    ExperimentStore(path)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(f"""
            import duckdb, sys, time
            con = duckdb.connect({str(path)!r})
            print("held", flush=True)
            time.sleep(30)
        """),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(StoreError, match="locked by another process"):
            ExperimentStore(path, read_only=True, lock_timeout=0.3)
    finally:
        holder.kill()
        holder.wait()
    assert ExperimentStore(path, read_only=True).schema_version() >= 1  # lock gone: fine again
    duckdb.connect(str(path)).close()
