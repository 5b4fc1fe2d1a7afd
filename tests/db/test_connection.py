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
    with pytest.raises(StoreError, match="not a DuckDB database") as e, Connector(garbage, True, 1).connect():
        pass
    assert "\n" not in str(e.value)
    truncated = tmp_path / "truncated.duckdb"  # a DuckDB header, then nothing: DuckDB's own message
    ExperimentStore(tmp_path / "fw.duckdb")
    truncated.write_bytes((tmp_path / "fw.duckdb").read_bytes()[:5000])
    with pytest.raises(StoreError, match="cannot open") as e, Connector(truncated, True, lock_timeout=1).connect():
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


def test_sqlite_file_is_refused_without_reaching_for_an_extension(tmp_path):
    """DuckDB would try to download (or load) its sqlite extension for a SQLite file: refused before that."""
    import sqlite3

    from db.errors import ForeignDatabaseError

    lite = tmp_path / "lite.db"
    con = sqlite3.connect(lite)
    con.execute("CREATE TABLE t (a INTEGER)")
    con.commit()
    con.close()
    before = lite.read_bytes()
    for read_only in (True, False):
        with pytest.raises(ForeignDatabaseError) as e, Connector(lite, read_only, lock_timeout=1).connect():
            pass
        msg = str(e.value)
        assert msg == f"{lite} is not a DuckDB database (it is a SQLite database); featherweight leaves it untouched"
        assert "extension" not in msg.lower() and "download" not in msg.lower()
    assert lite.read_bytes() == before


def test_every_connection_has_extension_autoloading_off(tmp_path):
    path = tmp_path / "fw.duckdb"
    ExperimentStore(path)
    sql = "SELECT current_setting('autoinstall_known_extensions'), current_setting('autoload_known_extensions')"
    for read_only in (False, True):
        with Connector(path, read_only, lock_timeout=1).connect() as con:
            assert con.execute(sql).fetchone() == (False, False), read_only
