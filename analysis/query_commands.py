"""``featherweight query`` and ``featherweight db ...``: SQL over the experiment database, Parquet export, migration.

The database is opened read-only for ``query``, ``db export`` and ``db tables`` (retrying while a running sweep holds
the file), so they never change it. ``query`` is sandboxed: its connection reaches no file but its database and no
network, and statements that would write elsewhere, attach other databases, load extensions or change settings
(ATTACH, DETACH, COPY, EXPORT, IMPORT, INSTALL, LOAD, SET, RESET, USE, config PRAGMAs) are refused before they run;
``db migrate`` opens it writable and installs the analysis views. The read-only commands run under a time and a
memory limit (``--timeout``, ``--memory-limit``: ``db.limits``), and check where they write before they read. The
documented tables and views are listed in docs/database.md. These commands live in ``analysis`` because they need its
views.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from db.errors import StoreError
from db.limits import add_limit_args, limits_from_args
from featherweight_core.atomic import atomic_write, checked_output_dir, write_text_atomic
from featherweight_core.cli.common import output_parent
from featherweight_core.errors import OutputError

FORMATS = ("table", "csv", "json", "parquet")
REFUSED_HINT = "featherweight query only reads its database (use `featherweight db export` to write Parquet)"
# statement types refused outright (INSTALL and LOAD are both LOAD; USE and RESET are SET; IMPORT DATABASE is PRAGMA)
_REFUSED_TYPES = ("ATTACH", "DETACH", "COPY", "COPY_DATABASE", "EXPORT", "LOAD", "EXTENSION", "SET", "VARIABLE_SET")
# PRAGMAs that only read; every other PRAGMA (settings, IMPORT DATABASE) is refused
_READ_PRAGMAS = frozenset(
    [
        "show_tables",
        "show_tables_expanded",
        "table_info",
        "show",
        "storage_info",
        "database_size",
        "database_list",
        "version",
        "platform",
        "functions",
        "collations",
        "metadata_info",
        "user_agent",
    ]
)


QUERY_DESCRIPTION = """Run one SQL statement against the experiment database and print the result (a table, CSV, JSON, or
a Parquet file with --output). The database is opened read-only, retrying while a running sweep holds it, so a query
works while a sweep runs and never changes it. The query is sandboxed: it reaches no file but its database and no
network; statements that would write, attach other databases, load extensions or change settings (ATTACH, DETACH,
COPY, EXPORT, IMPORT, INSTALL, LOAD, SET, RESET, USE, config PRAGMAs) are refused before they run, and so is SQL
holding no statement or several. A query that runs longer than --timeout or needs more memory than --memory-limit
(for its work or its result) is stopped with one error line; the file is free again at once."""
QUERY_EPILOG = """Tables and views (trial_results, seed_summary, skyline, compression, class_results, sweeps, ...) are
documented in docs/database.md. Example: featherweight query "SELECT label, score, gzip_bytes FROM skyline" """
DB_DESCRIPTION = """Experiment database maintenance. `db export` writes every table and view as Parquet, `db tables`
lists them with row counts (both open the database read-only); `db migrate` creates the database or brings its
schema and the analysis views up to date; `db add-baseline` records a reference model on a task's skyline; `db sync`
applies trial results a sweep journaled but could not write; `db merge` copies the sweeps of other databases (other
machines', older versions') into one."""
MERGE_DESCRIPTION = """Copy the sweeps of other Featherweight databases (trials, results, per-epoch history, stages,
class metrics, baselines, teachers) into one database, e.g. the files of the machines one study ran on. Sources are
only read (a copy of each is brought to this version's schema); files that are not Featherweight databases are
refused. A sweep in both with different specs is an error unless --rename gives the incoming one another name; a
sweep in both with the same spec merges trial by trial (a trial in both keeps one row; two finished trials with other
results are reported as conflicts and the target's kept). The target is written atomically: a merge that fails leaves
it as it was. Checkpoint paths are kept as recorded; those not on this machine are reported."""


def _db_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--db", default=None, help="experiment database (default: $FEATHERWEIGHT_DB or runs/featherweight.duckdb)"
    )


def add_parser(sub) -> None:
    q = sub.add_parser(
        "query",
        help="run SQL against the experiment database (read-only)",
        description=QUERY_DESCRIPTION,
        epilog=QUERY_EPILOG,
    )
    q.add_argument("sql", help="one SQL statement, e.g. \"SELECT * FROM skyline WHERE task = 'sst2'\"")
    _db_arg(q)
    add_limit_args(q)
    q.add_argument("--format", choices=FORMATS, default="table", help="output format (default: table)")
    q.add_argument(
        "--output",
        "-o",
        default=None,
        help="write to this file instead of stdout (required for parquet; default: stdout)",
    )
    q.set_defaults(func=run_query)

    d = sub.add_parser(
        "db",
        help="experiment database maintenance: export, tables, migrate, add-baseline, sync, merge",
        description=DB_DESCRIPTION,
    )
    dsub = d.add_subparsers(dest="db_command", metavar="ACTION", required=True)
    e = dsub.add_parser("export", help="write every table and view as Parquet (one file each) into a directory")
    _db_arg(e)
    e.add_argument("--output", "-o", required=True, help="directory to write <name>.parquet files into")
    add_limit_args(e)
    e.set_defaults(func=run_export)
    m = dsub.add_parser("migrate", help="create the database or bring its schema and the analysis views up to date")
    _db_arg(m)
    m.set_defaults(func=run_migrate)
    t = dsub.add_parser("tables", help="list the tables and views with their row counts")
    _db_arg(t)
    add_limit_args(t)
    t.set_defaults(func=run_tables)
    b = dsub.add_parser("add-baseline", help="record a reference model on a task's skyline (your own baseline)")
    _db_arg(b)
    b.add_argument("--task", required=True, help="the task it belongs to (its skyline only)")
    b.add_argument("--name", required=True, help="the name shown on charts and tables")
    b.add_argument("--score", required=True, type=float, help="its score on the task's metric, a fraction in [0, 1]")
    b.add_argument("--sweep", default=None, help="only this sweep (default: every sweep with trials on the task)")
    b.add_argument("--params", type=int, default=None, help="parameter count (default: unknown)")
    b.add_argument("--disk-bytes", type=int, default=None, help="size on disk in bytes (default: unknown)")
    b.add_argument("--gzip-bytes", type=int, default=None, help="gzip -9 size in bytes (default: the disk size)")
    b.add_argument("--note", default=None, help="free text (default: none)")
    b.set_defaults(func=run_add_baseline)
    y = dsub.add_parser(
        "sync",
        help="apply trial results a sweep journaled but could not write (e.g. while another process held the database)",
    )
    _db_arg(y)
    y.set_defaults(func=run_sync)
    g = dsub.add_parser(
        "merge", help="copy the sweeps of other databases into one (atomically)", description=MERGE_DESCRIPTION
    )
    g.add_argument("sources", nargs="+", metavar="SOURCE.duckdb", help="databases to copy sweeps from (only read)")
    g.add_argument(
        "--into", required=True, metavar="TARGET.duckdb", help="the database to merge into (created if missing)"
    )
    g.add_argument(
        "--rename",
        action="append",
        default=[],
        metavar="OLD=NEW",
        help="give a source's sweep OLD the name NEW in the target, repeat for several (default: names kept)",
    )
    g.set_defaults(func=run_merge)


def _open(db: str | None, read_only: bool = True, args: argparse.Namespace | None = None):
    """The store, with the analysis views; read-only with the time and memory limits of ``args``."""
    # imported here: it loads duckdb, which building the parser (`featherweight --help`) does not need
    from analysis.views import open_store

    return open_store(db, read_only=read_only, limits=limits_from_args(args) if args is not None else None)


def format_frame(df, fmt: str) -> str:
    """Render a DataFrame as text: an aligned table, CSV, or a JSON array of row objects."""
    if fmt == "csv":
        return df.to_csv(index=False)
    if fmt == "json":
        return df.to_json(orient="records", date_format="iso", indent=None) + "\n"
    if df.empty:
        return " | ".join(map(str, df.columns)) + "\n(0 rows)\n"
    import pandas as pd

    with pd.option_context("display.max_rows", None, "display.max_columns", None, "display.width", 1_000_000):
        shown = df.astype(object).where(df.notna(), "NULL")  # as DuckDB's own shell shows missing values
        return shown.to_string(index=False, max_colwidth=60) + f"\n({len(df)} row{'s' if len(df) != 1 else ''})\n"


def check_read_only_sql(sql: str) -> None:
    """StoreError ("query refused: ...") unless every statement of ``sql`` only reads. SQL DuckDB cannot parse is
    left to the query itself, which reports the parser's error. The read-only, sandboxed connection is the real
    guard (writes to the database fail there, other files are out of reach); this names the common attempts early."""
    import duckdb

    try:
        statements = duckdb.extract_statements(sql)
    except duckdb.Error:
        return
    for st in statements:
        kind = st.type.name
        text = " ".join(st.query.split()).rstrip(";").rstrip()
        word = text.split(" ", 1)[0].upper() if text else kind
        if kind == "PRAGMA":
            m = re.match(r"\s*PRAGMA\s+(\w+)", st.query, re.IGNORECASE)
            if m and m.group(1).lower() in _READ_PRAGMAS:
                continue
        elif kind not in _REFUSED_TYPES:
            continue
        shown = text if len(text) <= 60 else text[:57] + "..."
        raise StoreError(f"query refused: {word} statement ({shown}); {REFUSED_HINT}")


def check_one_statement(sql: str) -> None:
    """StoreError unless ``sql`` holds exactly one statement: only comments, blanks or semicolons is no statement
    (DuckDB would run nothing), and several would run one after another with only the last one's rows shown. SQL
    DuckDB cannot parse is left to the query itself, which reports the parser's error."""
    import duckdb

    from db.reads import NO_STATEMENT  # imported here as duckdb is: `featherweight --help` loads neither

    try:
        statements = duckdb.extract_statements(sql)
    except duckdb.Error:
        return
    if not statements:
        raise StoreError(NO_STATEMENT)
    if len(statements) > 1:
        raise StoreError(
            f"{len(statements)} SQL statements in the query; featherweight query runs exactly one (run them one at a "
            "time, or combine them into one SELECT)"
        )


def output_file_dir(output: str) -> Path:
    """The directory ``--output FILE`` is written in (``checked_output_dir`` then checks it takes a new file);
    OutputError naming the option when FILE is an existing directory."""

    if Path(output).expanduser().is_dir():
        raise OutputError(f"--output {output}: is a directory (expected a file name)")
    return output_parent(output)


def _refused_if_sandboxed(e: Exception) -> Exception:
    """A query that failed on the sandbox (file or network access, a locked setting) as a 'query refused' error."""
    import duckdb

    cause = e.__cause__
    if isinstance(cause, duckdb.PermissionException) or "configuration has been locked" in str(cause):
        msg = str(e).removeprefix("query failed: ")
        return StoreError(f"query refused: {msg}; {REFUSED_HINT}")
    return e


def run_query(args: argparse.Namespace) -> int:

    if args.format == "parquet" and not args.output:
        raise StoreError("--format parquet writes a binary file: pass --output FILE")
    if not args.sql.strip():
        raise StoreError("empty SQL statement")
    check_read_only_sql(args.sql)
    check_one_statement(args.sql)
    if args.output:
        with checked_output_dir(
            output_file_dir(args.output), f"--output {args.output}"
        ):  # checked before the query runs
            return _run_query(args)
    return _run_query(args)


def _run_query(args: argparse.Namespace) -> int:

    store = _open(args.db, args=args)
    try:
        result = store.arrow(args.sql) if args.format == "parquet" else store.query(args.sql)
    except StoreError as e:
        raise _refused_if_sandboxed(e) from e.__cause__
    if args.format == "parquet":
        import pyarrow.parquet as pq

        table = result
        atomic_write(args.output, lambda tmp: pq.write_table(table, tmp))
        print(f"wrote {table.num_rows} rows to {args.output}", file=sys.stderr)
        return 0
    text = format_frame(result, args.format)
    if args.output:
        write_text_atomic(args.output, text)
        print(f"wrote {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


def export_parquet(store, out_dir: str | Path) -> list[Path]:
    """Write every table and view of ``store`` to ``out_dir/<name>.parquet``; returns the paths written."""
    import pyarrow.parquet as pq

    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise StoreError(f"--output {out_dir} exists and is not a directory")
    written = []
    for name, _kind in store.relations():
        table = store.arrow(f'SELECT * FROM "{name}"')
        path = out_dir / f"{name}.parquet"
        atomic_write(path, lambda tmp, table=table: pq.write_table(table, tmp))
        written.append(path)
    return written


def run_export(args: argparse.Namespace) -> int:

    with checked_output_dir(args.output, f"--output {args.output}"):  # before the database is read
        store = _open(args.db, args=args)
        written = export_parquet(store, args.output)
    for path in written:
        print(path)
    return 0


def run_migrate(args: argparse.Namespace) -> int:
    store = _open(args.db, read_only=False)
    print(f"{store.path}: schema version {store.schema_version()}")
    return 0


def run_add_baseline(args: argparse.Namespace) -> int:
    from db.baseline_rows import baseline_row  # imported here: `featherweight --help` needs no row modules

    values = dict(
        sweep=args.sweep,
        task=args.task,
        name=args.name,
        score=args.score,
        params=args.params,
        disk_bytes=args.disk_bytes,
        gzip_bytes=args.gzip_bytes,
        source="user",
        note=args.note,
    )
    baseline_row(**values)  # a bad value is a StoreError before the file is opened (or created)
    store = _open(args.db, read_only=False)
    store.record_baseline(**values)
    where = f"sweep {args.sweep}" if args.sweep else "every sweep"
    print(f"{store.path}: baseline {args.name!r} on task {args.task} ({where}), score {args.score:g}")
    return 0


def run_tables(args: argparse.Namespace) -> int:
    store = _open(args.db, args=args)
    for name, kind in store.relations():
        n = store.query(f'SELECT count(*) AS n FROM "{name}"')["n"].iloc[0]
        print(f"{name:<16} {kind:<6} {n:>8} rows")
    return 0


def run_sync(args: argparse.Namespace) -> int:
    """Every sweep in the database: apply ``<storage_path>/journal.jsonl`` records the database lacks."""
    from db.journal import JOURNAL_NAME, Journal, apply_journal  # imported here: `featherweight --help` needs none

    store = _open(args.db, read_only=False)
    for _, row in store.sweeps().iterrows():
        journal = Journal(Path(str(row["storage_path"])) / JOURNAL_NAME)
        n = apply_journal(store, journal, row["name"]) if journal.path.is_file() else 0
        print(f"{row['name']}: {n} journaled result(s) applied")
    return 0


def run_merge(args: argparse.Namespace) -> int:
    # imported here: they load duckdb, which building the parser (`featherweight --help`) does not need
    from analysis.views import load_views
    from db.merge import merge_databases, parse_renames

    renames = parse_renames(args.rename)  # a bad pair: one error line before any file is read
    summary = merge_databases(args.sources, args.into, renames, views=load_views())
    for line in summary.lines():
        print(line)
    print(f"{summary.target}: {len(summary.sweeps)} sweep(s) merged, {summary.conflicts} conflict(s)")
    return 0
