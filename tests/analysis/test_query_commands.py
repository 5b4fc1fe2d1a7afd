"""``featherweight query`` and ``featherweight db ...`` (analysis.query_commands): formats, export, one-line errors,
files written atomically with the umask's mode, reading while a writer writes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest

from analysis.views import open_store
from db.store import ExperimentStore
from sweep.cli import main
from tests.fakes import make_record

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def db_path(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("cli") / "fw.duckdb"
    store = open_store(path)
    store.start_sweep("s", {}, "test", "/tmp/s")
    for i in range(4):
        acc = 0.8 + i / 100
        store.record_trial(make_record("s", f"t{i}", seed=i, metrics={"score": acc, "accuracy": acc}))
    return path


def run_cli(argv, capsys):
    rc = main(argv)
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_query_table_csv_json(db_path, capsys):
    sql = "SELECT trial_id, score FROM trial_results ORDER BY trial_id"
    rc, out, _ = run_cli(["query", sql, "--db", str(db_path)], capsys)
    assert rc == 0 and "t3" in out and "(4 rows)" in out
    rc, out, _ = run_cli(["query", sql, "--db", str(db_path), "--format", "csv"], capsys)
    assert rc == 0 and out.splitlines()[0] == "trial_id,score" and len(out.splitlines()) == 5
    rc, out, _ = run_cli(["query", sql, "--db", str(db_path), "--format", "json"], capsys)
    rows = json.loads(out)
    assert rc == 0 and [r["trial_id"] for r in rows] == ["t0", "t1", "t2", "t3"]
    assert rows[3]["score"] == pytest.approx(0.83)
    rc, out, _ = run_cli(["query", "SELECT * FROM trial_results WHERE false", "--db", str(db_path)], capsys)
    assert rc == 0 and "(0 rows)" in out


def test_query_env_var_and_output_files(db_path, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("FEATHERWEIGHT_DB", str(db_path))
    out_csv = tmp_path / "out" / "r.csv"
    rc, _, _ = run_cli(["query", "SELECT * FROM skyline", "--format", "csv", "--output", str(out_csv)], capsys)
    assert rc == 0 and len(pd.read_csv(out_csv)) > 0
    out_pq = tmp_path / "r.parquet"
    rc, _, err = run_cli(["query", "SELECT * FROM trial_results", "--format", "parquet", "-o", str(out_pq)], capsys)
    assert rc == 0 and "4 rows" in err
    df = pd.read_parquet(out_pq)
    assert len(df) == 4 and {"trial_id", "score", "gzip_bytes"} <= set(df.columns)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp files left behind
    umask = os.umask(0)
    os.umask(umask)
    assert out_pq.stat().st_mode & 0o777 == 0o666 & ~umask  # as a plain open() would make it, not mkstemp's 0600


@pytest.mark.parametrize(
    "argv, message",
    [
        (["query", "SELEC nonsense"], "query failed"),
        (["query", "SELECT * FROM nope"], "nope"),
        (["query", "DELETE FROM trials"], "query failed"),
        (["query", "   "], "empty SQL"),
        (["query", "SELECT 1", "--format", "parquet"], "--output"),
        (["query", "SELECT 1", "--db", "/nonexistent/fw.duckdb"], "no experiment database at /nonexistent/fw.duckdb"),
        (["db", "export", "--db", "/nonexistent/fw.duckdb", "-o", "/tmp/x"], "no experiment database"),
        (["report", "nope"], "unknown sweep 'nope'"),
    ],
)
def test_bad_input_is_one_line_error(db_path, capsys, argv, message):
    if "--db" not in argv:
        argv = [*argv, "--db", str(db_path)]
    rc, out, err = run_cli(argv, capsys)
    assert rc == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], err
    assert open_store(db_path, read_only=True).query("SELECT count(*) AS n FROM trials")["n"][0] == 4


def test_export_writes_every_table_and_view(db_path, tmp_path, capsys):
    rc, out, _ = run_cli(["db", "export", "--db", str(db_path), "--output", str(tmp_path / "export")], capsys)
    assert rc == 0
    files = {p.stem: p for p in (tmp_path / "export").glob("*.parquet")}
    expected = {
        "sweeps",
        "trials",
        "results",
        "epochs",
        "baselines",
        "schema_version",
        "meta",
        "trial_results",
        "seed_summary",
        "pareto_points",
        "skyline",
        "compression",
    }
    assert expected <= set(files)
    assert len(pd.read_parquet(files["trials"])) == 4
    assert len(pd.read_parquet(files["epochs"])) == 20
    assert len(pd.read_parquet(files["baselines"])) == 12
    assert len(out.splitlines()) == len(files)


def test_db_tables_and_migrate(db_path, tmp_path, capsys):
    rc, out, _ = run_cli(["db", "tables", "--db", str(db_path)], capsys)
    assert rc == 0 and "skyline" in out and "trials" in out
    fresh = tmp_path / "new.duckdb"
    ExperimentStore(fresh)  # created without views (as the sweep runner does)
    rc, out, _ = run_cli(["db", "migrate", "--db", str(fresh)], capsys)
    assert rc == 0 and "schema version" in out and fresh.is_file()
    assert dict(ExperimentStore(fresh, read_only=True).relations())["skyline"] == "view"  # now stored in the file


WRITER = textwrap.dedent(
    """
    import sys, time
    sys.path.insert(0, {repo!r})
    from db.store import ExperimentStore
    from tests.fakes import make_record
    from pathlib import Path
    store = ExperimentStore({path!r})  # as the sweep runner writes: without views
    stop = Path({stop!r})
    store.record_trial(make_record("w", "w00000", seed=0))
    print("ready", flush=True)
    deadline = time.monotonic() + 120  # safety net; the test creates the stop file long before
    i = 1
    while not stop.exists() and time.monotonic() < deadline:
        store.record_trial(make_record("w", f"w{{i:05d}}", seed=i))
        i += 1
        time.sleep(0.01)  # a sweep's driver does other work between writes; back-to-back writes starved readers
    print(i, flush=True)
    """
)


def test_query_while_another_process_writes(tmp_path):
    """DuckDB lets one process hold the file at a time; short write transactions + retries let readers in."""
    path = tmp_path / "fw.duckdb"
    stop = tmp_path / "stop"
    ExperimentStore(path)  # no views installed in the file: readers bring their own (temporary) ones
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER.format(repo=str(REPO), path=str(path), stop=str(stop))],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert writer.stdout.readline().strip() == "ready"
        # A fixed number of reads, all while the writer keeps writing (it runs until the stop file
        # appears), so a slow, loaded machine makes the test slower, never flaky.
        counts = []
        for _ in range(4):
            store = open_store(path, read_only=True)
            counts.append(int(store.query("SELECT count(*) AS n FROM trial_results")["n"][0]))
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        cli = subprocess.run(
            [
                sys.executable,
                "-m",
                "sweep.cli",
                "query",
                "SELECT count(*) AS n FROM trials",
                "--db",
                str(path),
                "--format",
                "csv",
            ],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
        )
        assert cli.returncode == 0, cli.stderr
        assert int(cli.stdout.splitlines()[1]) >= counts[-1]
    finally:
        stop.touch()
        out, _ = writer.communicate(timeout=60)
    assert writer.returncode == 0
    written = int(out.strip().splitlines()[-1])
    assert len(counts) == 4 and counts == sorted(counts)  # every read succeeded and saw a consistent, growing table
    assert counts[-1] > 0 and written > counts[0]
    assert open_store(path, read_only=True).query("SELECT count(*) AS n FROM trials")["n"][0] == written
