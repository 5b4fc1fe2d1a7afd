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


def run_cli_exit(argv, capsys):
    """Like run_cli, also for command-line mistakes (argparse exits)."""
    try:
        rc = main(argv)
    except SystemExit as e:
        rc = e.code
    out = capsys.readouterr()
    return rc, out.out, out.err


def one_error_line(rc: int, err: str) -> str:
    lines = err.strip().splitlines()
    assert rc == 2 and len(lines) == 1 and lines[0].startswith("error: "), (rc, err)
    return lines[0]


@pytest.mark.parametrize(
    "sql, message",
    [
        ("-- hi", "no SQL statement"),
        ("/* x */", "no SQL statement"),
        (";", "no SQL statement"),
        (" ; ;\n", "no SQL statement"),
        ("-- a comment\n;", "no SQL statement"),
        ("SELECT 1; SELECT 2", "2 SQL statements"),
        ("SELECT 1; SELECT 2; -- three?", "2 SQL statements"),
    ],
)
def test_sql_without_exactly_one_statement_is_one_line(db_path, tmp_path, capsys, sql, message):
    for fmt in ("table", "parquet"):
        argv = ["query", sql, "--db", str(db_path), "--format", fmt, "-o", str(tmp_path / "r")]
        line = one_error_line(*run_cli(argv, capsys)[::2])
        assert message in line and "exactly one" in line if "statements" in message else message in line
    assert list(tmp_path.iterdir()) == []
    rc, out, _ = run_cli(["query", "SELECT 1 AS one;  -- trailing comment", "--db", str(db_path)], capsys)
    assert rc == 0 and "(1 row)" in out  # one statement with a semicolon and a comment is fine


SLOW_SQL = "SELECT sum(range % 7) FROM range(1000000000000)"  # hours of work


def test_time_limit_stops_the_query_and_frees_the_file_for_a_writer(db_path, tmp_path):
    path = tmp_path / "fw.duckdb"
    path.write_bytes(db_path.read_bytes())
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-m", "sweep.cli", "query", SLOW_SQL, "--db", str(path), "--timeout", "1"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,  # the query stops after 1 s; only a query that ignored its limit would get near this
    )
    line = one_error_line(done.returncode, done.stderr)
    assert line == "error: query stopped after the 1 s time limit (--timeout)"
    # the file is free at once: a writer (as the sweep's) gets in without waiting
    ExperimentStore(path, lock_timeout=0).record_trial(make_record("s", "after", seed=9))
    assert len(open_store(path, read_only=True).query("SELECT * FROM trials WHERE trial_id = 'after'")) == 1


def test_time_limit_applies_to_every_read_only_open(db_path):
    from db.errors import QueryLimitError
    from db.limits import QueryLimits

    store = open_store(db_path, read_only=True, limits=QueryLimits(timeout_s=1.5))
    with pytest.raises(QueryLimitError, match=r"1\.5 s time limit \(--timeout\)"):
        store.query(SLOW_SQL)
    with pytest.raises(QueryLimitError, match="time limit"):
        store.arrow(SLOW_SQL)
    assert store.query("SELECT count(*) AS n FROM trials")["n"][0] == 4  # the next connection has its own time


@pytest.mark.parametrize(
    "sql, what",
    [
        ("SELECT len(list(range)) FROM range(400000000)", "error: query exceeded"),  # DuckDB's own memory
        ("SELECT range FROM range(400000000)", "error: query result exceeded"),  # the rows handed over
    ],
)
def test_memory_limit_stops_the_query(db_path, tmp_path, capsys, sql, what):
    for fmt in ("csv", "parquet"):
        argv = ["query", sql, "--db", str(db_path), "--memory-limit", "100MB", "--format", fmt]
        line = one_error_line(*run_cli([*argv, "-o", str(tmp_path / "r")], capsys)[::2])
        assert line.startswith(what) and line.endswith("the memory limit of 100MB (--memory-limit)"), line
    assert list(tmp_path.iterdir()) == []


def test_read_only_connections_are_limited_and_spill_nothing(db_path):
    from db.limits import QueryLimits

    store = open_store(db_path, read_only=True, limits=QueryLimits(memory_limit="100MB"))
    settings = store.query(
        "SELECT current_setting('memory_limit') AS m, current_setting('temp_directory') AS t,"
        " current_setting('autoinstall_known_extensions') AS i, current_setting('autoload_known_extensions') AS l"
    ).to_dict("records")[0]
    assert settings == {"m": "95.3 MiB", "t": "", "i": False, "l": False}
    default = open_store(db_path, read_only=True).query("SELECT current_setting('memory_limit') AS m")["m"][0]
    assert default == "953.6 MiB"  # 1GB


@pytest.mark.parametrize(
    "option, value",
    [
        ("--timeout", "0"),
        ("--timeout", "-1"),
        ("--timeout", "inf"),
        ("--timeout", "soon"),
        ("--memory-limit", "lots"),
        ("--memory-limit", "1KB"),
        ("--memory-limit", "-5MB"),
        ("--memory-limit", "12XB"),
    ],
)
@pytest.mark.parametrize(
    "command",
    [
        ["query", "SELECT 1"],
        ["report", "s"],
        ["db", "tables"],
        ["db", "export", "-o", "x"],
        ["export", "t0", "-o", "x"],
        ["sweep", "status", "s"],
    ],
    ids=["query", "report", "tables", "db-export", "export", "status"],
)
def test_limit_options_are_checked(db_path, capsys, option, value, command):
    line = one_error_line(*run_cli_exit([*command, "--db", str(db_path), f"{option}={value}"], capsys)[::2])
    assert option in line and repr(value) in line, line


def test_query_output_place_is_checked_before_the_query(db_path, tmp_path, capsys):
    (tmp_path / "x").write_text("a file")
    (tmp_path / "d").mkdir()
    for output, names in (("x/sub.csv", "exists and is not a directory"), ("d", "is a directory")):
        for fmt in ("csv", "parquet"):
            argv = ["query", SLOW_SQL, "--db", str(db_path), "--format", fmt, "-o", str(tmp_path / output)]
            line = one_error_line(*run_cli(argv, capsys)[::2])  # no time spent on the query: checked first
            assert f"--output {tmp_path / output}: " in line and names in line, line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d", "x"] and not list((tmp_path / "d").iterdir())


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes to a read-only directory anyway")
def test_unwritable_output_directory_is_one_line(db_path, tmp_path, capsys):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        for argv in (
            ["query", "SELECT 1", "-o", str(locked / "r.csv")],
            ["report", "s", "-o", str(locked / "rep")],
            ["report", "s", "-o", str(locked)],
            ["db", "export", "-o", str(locked)],
        ):
            line = one_error_line(*run_cli([*argv, "--db", str(db_path)], capsys)[::2])
            assert "--output" in line and str(locked) in line, line
        assert list(locked.iterdir()) == []
    finally:
        locked.chmod(0o755)
