"""``featherweight query`` is sandboxed: it reads its own database and nothing else. Statements that would write
another file, attach another database, load extensions or change settings are refused with one ``error: query
refused`` line (exit status 2), reading any other file fails the same way, and neither the database nor any other file
changes. Ordinary reads of the views (including a reader's temporary views) keep working."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from analysis.views import open_store
from db.store import ExperimentStore
from sweep.cli import main
from tests.fakes import make_record


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def db_path(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("sandbox") / "fw.duckdb"
    store = open_store(path)
    store.start_sweep("s", {}, "test", "/tmp/s")
    store.record_trial(make_record("s", "t0", seed=0, metrics={"score": 0.8, "accuracy": 0.8}))
    store.checkpoint()
    return path


@pytest.mark.parametrize(
    "sql",
    [
        "COPY (SELECT 'x') TO '{other}' (FORMAT csv)",
        "COPY trials TO '{dir}/trials.csv'",
        "ATTACH '{other}' AS a (READ_WRITE); DROP TABLE a.trials",
        "SELECT 1; ATTACH '{dir}/new.duckdb' AS n",
        "DETACH fw",
        "SELECT * FROM read_csv('{secret}')",
        "SELECT * FROM '{secret}'",
        "SELECT * FROM read_text('/etc/hostname')",
        "INSTALL httpfs",
        "LOAD httpfs",
        "EXPORT DATABASE '{dir}/exported'",
        "IMPORT DATABASE '{dir}/exported'",
        "SET enable_external_access = true",
        "RESET lock_configuration",
        "PRAGMA enable_profiling",
        "CALL enable_profiling()",
    ],
)
def test_refused_with_one_line_and_nothing_changes(db_path, tmp_path, capsys, sql):
    other = tmp_path / "other.duckdb"
    other.write_text("not yours\n")
    secret = tmp_path / "secret.csv"
    secret.write_text("a,b\n1,2\n")
    before = sha256(db_path)
    rc = main(["query", sql.format(other=other, dir=tmp_path, secret=secret), "--db", str(db_path)])
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert rc == 2, err
    assert len(lines) == 1 and lines[0].startswith("error: query refused: "), err
    assert "featherweight query only reads its database" in lines[0] and "featherweight db export" in lines[0]
    assert out == ""
    assert sha256(db_path) == before
    assert other.read_text() == "not yours\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other.duckdb", "secret.csv"]


def test_reads_still_work(db_path, capsys):
    before = sha256(db_path)
    for sql in ("SELECT count(*) AS n FROM trial_results", "PRAGMA show_tables", "DESCRIBE skyline"):
        assert main(["query", sql, "--db", str(db_path), "--format", "csv"]) == 0, sql
    out = capsys.readouterr().out
    assert "n\n1\n" in out and "trial_results" in out and "skyline_rank" in out
    assert main(["query", "SELECT count(*) AS n FROM skyline WHERE kind = 'trial'", "--db", str(db_path)]) == 0
    assert sha256(db_path) == before


def test_sandbox_keeps_temporary_views_and_export(db_path, tmp_path, capsys):
    """A read-only store whose views differ from the installed ones shadows them with temporary views on each
    (sandboxed) connection; that keeps working, and so does writing Parquet through pyarrow (db export)."""
    ro = ExperimentStore(db_path, read_only=True, views=[("n_trials", "SELECT count(*) AS c FROM trials")])
    assert ro.query("SELECT c FROM n_trials")["c"][0] == 1
    settings = "SELECT current_setting('enable_external_access') AS a, current_setting('lock_configuration') AS l"
    assert ro.query(settings).to_dict("records") == [{"a": False, "l": True}]
    before = sha256(db_path)
    assert main(["db", "export", "--db", str(db_path), "--output", str(tmp_path / "export")]) == 0
    assert {"trials.parquet", "trial_results.parquet", "skyline.parquet"} <= {
        p.name for p in (tmp_path / "export").iterdir()
    }
    assert (
        main(
            [
                "query",
                "SELECT * FROM trial_results",
                "--db",
                str(db_path),
                "--format",
                "parquet",
                "-o",
                str(tmp_path / "t.parquet"),
            ]
        )
        == 0
    )
    assert (tmp_path / "t.parquet").stat().st_size > 0
    assert sha256(db_path) == before
    capsys.readouterr()
