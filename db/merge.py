"""Merging Featherweight databases: the sweeps of other database files (another machine's, an older version's) copied
into one target file (``featherweight db merge``).

- Each source is read while holding it read-only (a running sweep's writer makes it wait) and copied; the copy is
  migrated to this code's schema, so an older version's file merges like a current one and the source itself is never
  changed. A file that is not a Featherweight database is refused (``ForeignDatabaseError``) before anything is
  written.
- The target is built in a temporary copy next to it and moved into place with ``os.replace``: a merge that fails
  (a conflicting spec, an interrupt, a full disk) leaves the target as it was.
- Tables are merged by what their columns say, read from the schema itself, so a table a later migration adds is
  merged without changes here: ``sweeps`` by name; a table with ``sweep`` and ``trial_id`` columns trial by trial
  (``TRIAL_TABLE``: all of a trial's rows come from one file); any other table with a ``sweep`` column row by row,
  keyed by its primary key (``baselines``, which has none, by ``NATURAL_KEYS``); ``GLOBAL_TABLES`` belong to the
  file, not to a sweep. A table that is none of these stops the merge (``table_kinds``): it is a bug to fix here.
- A sweep in both files must have the same spec up to where things are on a machine (``MACHINE_KEYS``), else it is an
  error naming it unless ``--rename OLD=NEW`` gives the incoming sweep another name. A trial in both keeps one row;
  a finished trial replaces an errored one or one a scheduler stopped, and a stopped one replaces an errored one
  (as a resumed sweep would); two finished trials whose results differ are a
  conflict: reported, the target's row kept.
- Checkpoint paths are kept as recorded; those of the merged trials not found on this machine are counted.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from db.connection import Connector, check_duckdb_file
from db.errors import ForeignDatabaseError, StoreError
from db.limits import QueryLimits
from db.schema import View, check_featherweight, migrate

GLOBAL_TABLES = ("schema_version", "meta")  # the file's own: its schema version, its installed views
SWEEPS_TABLE = "sweeps"
TRIAL_TABLE = "trials"  # a trial is in a file when it has a row here; the other trial tables follow it
RESULT_TABLE = "results"  # two finished trials of one id conflict when their rows here differ
NATURAL_KEYS = {"baselines": ("sweep", "task", "name", "source")}  # tables without a primary key
# spec keys that say where things are on the machine that ran the sweep (sweep.spec TOP_KEYS), or only how it was
# run: two machines running one sweep differ in them
MACHINE_KEYS = (
    "name",
    "description",
    "storage",
    "database",
    "bpemb_dir",
    "cache_dir",
    "address",
    "resources",
    "report",
    "measure",  # whether trials were timed on that machine's CPU: the trials are the same
)
RESULT_IGNORED = ("sweep", "trial_id", "metrics", "sizes")  # JSON copies of the columns compared
COPY_LIMITS = QueryLimits(timeout_s=3600.0)  # holding a source while it is copied
SHOWN = 5  # conflicts and missing checkpoints named in the summary


class MergeError(StoreError):
    """A merge that cannot go ahead (a sweep of one name with two specs, a bad --rename): nothing was written."""


@dataclass
class SweepMerge:
    source: str
    sweep: str  # its name in the source
    name: str  # its name in the target
    how: str  # added | merged
    trials_added: int = 0
    trials_same: int = 0
    trials_replaced: int = 0  # an errored (or stopped) trial replaced by the source's finished (or stopped) one
    conflicts: list[tuple[str, list[str]]] = field(default_factory=list)  # (trial id, differing result columns)
    rows: dict[str, int] = field(default_factory=dict)  # table -> rows inserted
    missing_checkpoints: list[str] = field(default_factory=list)


@dataclass
class MergeSummary:
    target: Path
    sweeps: list[SweepMerge] = field(default_factory=list)
    baselines_added: int = 0  # baselines of every sweep (sweep NULL)

    def lines(self) -> list[str]:
        out = []
        for s in self.sweeps:
            renamed = f" as {s.name}" if s.name != s.sweep else ""
            out.append(
                f"{s.source}: sweep {s.sweep}{renamed} {s.how}: {s.trials_added} trial(s) added, {s.trials_same} "
                f"already there, {s.trials_replaced} errored trial(s) replaced by finished ones, "
                f"{len(s.conflicts)} conflict(s)"
            )
            for trial, cols in s.conflicts[:SHOWN]:
                out.append(
                    f"  conflict: trial {trial} has other results in {s.source} ({', '.join(cols)}); kept the target's"
                )
            if len(s.conflicts) > SHOWN:
                out.append(f"  ... {len(s.conflicts) - SHOWN} more conflict(s)")
            if s.missing_checkpoints:
                out.append(
                    f"  {len(s.missing_checkpoints)} checkpoint(s) not found on this machine (paths kept as recorded), "
                    f"e.g. {s.missing_checkpoints[0]}"
                )
        if self.baselines_added:
            out.append(f"{self.baselines_added} baseline(s) of every sweep added")
        return out

    @property
    def conflicts(self) -> int:
        return sum(len(s.conflicts) for s in self.sweeps)


def parse_renames(pairs: Sequence[str]) -> dict[str, str]:
    """``["OLD=NEW", ...]`` -> ``{OLD: NEW}``; MergeError naming a malformed or repeated one."""
    out: dict[str, str] = {}
    for pair in pairs:
        old, sep, new = pair.partition("=")
        old, new = old.strip(), new.strip()
        if not sep or not old or not new:
            raise MergeError(f"--rename {pair!r}: expected OLD=NEW (a sweep name in a source, the name it gets)")
        if old in out:
            raise MergeError(f"--rename {pair!r}: sweep {old!r} is renamed twice")
        out[old] = new
    return out


# ---- the tables ----------------------------------------------------------------------------------------------------


def _columns(con: duckdb.DuckDBPyConnection, table: str) -> list[str]:
    return [
        r[0]
        for r in con.execute(
            "SELECT column_name FROM duckdb_columns() WHERE database_name = current_database() AND schema_name = 'main' "
            "AND table_name = ? ORDER BY column_index",
            [table],
        ).fetchall()
    ]


def _primary_key(con: duckdb.DuckDBPyConnection, table: str) -> list[str]:
    rows = con.execute(
        "SELECT constraint_column_names FROM duckdb_constraints() WHERE database_name = current_database() "
        "AND schema_name = 'main' AND table_name = ? AND constraint_type = 'PRIMARY KEY'",
        [table],
    ).fetchall()
    return list(rows[0][0]) if rows else []


def table_kinds(con: duckdb.DuckDBPyConnection) -> dict[str, str]:
    """Every table of the open database -> how it merges: ``global`` | ``sweeps`` | ``trial`` | ``sweep``.
    RuntimeError (a bug: this module must learn the table) for a table that is none of them."""
    tables = [
        r[0]
        for r in con.execute(
            "SELECT table_name FROM duckdb_tables() WHERE database_name = current_database() AND schema_name = 'main' "
            "AND NOT temporary ORDER BY table_name"
        ).fetchall()
    ]
    kinds = {}
    for table in tables:
        cols = set(_columns(con, table))
        if table in GLOBAL_TABLES:
            kinds[table] = "global"
        elif table == SWEEPS_TABLE:
            kinds[table] = "sweeps"
        elif {"sweep", "trial_id"} <= cols:
            kinds[table] = "trial"
        elif "sweep" in cols:
            kinds[table] = "sweep"
        else:
            raise RuntimeError(
                f"table {table} has no sweep column and is not one of the file's own ({', '.join(GLOBAL_TABLES)}): "
                "db.merge does not know how to merge it"
            )
    if TRIAL_TABLE not in kinds or RESULT_TABLE not in kinds or SWEEPS_TABLE not in kinds:
        raise RuntimeError(f"the schema lacks one of {SWEEPS_TABLE}, {TRIAL_TABLE}, {RESULT_TABLE}")
    return kinds


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _key_match(cols: Sequence[str], left: str, right: str) -> str:
    return " AND ".join(f"{left}.{_q(c)} IS NOT DISTINCT FROM {right}.{_q(c)}" for c in cols)


def machine_free_spec(spec_json: str | None) -> object:
    """The spec without the keys that differ between machines running the same sweep (``MACHINE_KEYS``)."""
    try:
        spec = json.loads(spec_json) if spec_json else None
    except ValueError:
        return spec_json
    if isinstance(spec, dict):
        return {k: v for k, v in spec.items() if k not in MACHINE_KEYS}
    return spec


# ---- sources -------------------------------------------------------------------------------------------------------


def _copy_in_child(*pairs: tuple[Path, Path]) -> None:
    """Copy each (source, destination) file in one child process. DuckDB's lock on a file is a POSIX record lock,
    which this process would lose the moment it closed any descriptor of the file, such as the one a copy made here
    opens and closes: the copy must not release the lock that keeps writers out while it runs."""
    code = "import shutil, sys; a = sys.argv[1:]; [shutil.copyfile(s, d) for s, d in zip(a[::2], a[1::2])]"
    args = [str(p) for pair in pairs for p in pair]
    done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True)
    if done.returncode:
        why = done.stderr.strip().splitlines()[-1] if done.stderr.strip() else f"exit {done.returncode}"
        raise StoreError(f"cannot copy {pairs[0][0]}: {why}")


def _copy_source(path: Path, into: Path, lock_timeout: float) -> Path:
    """A migrated copy of the source at ``into``; ForeignDatabaseError / StoreError naming it when it is not a
    Featherweight database (or a newer one), with nothing written."""
    if not path.is_file():
        raise StoreError(f"no database at {path} (expected a Featherweight database file to merge)")
    check_duckdb_file(path)
    if path.stat().st_size == 0:
        raise ForeignDatabaseError(f"{path} is not a featherweight experiment database (it is an empty file)")
    with Connector(path, read_only=True, lock_timeout=lock_timeout, limits=COPY_LIMITS).connect() as con:
        check_featherweight(con, path, empty_ok=False)
        wal = Path(f"{path}.wal")
        wal_pair = [(wal, Path(f"{into}.wal"))] if wal.is_file() else []
        _copy_in_child((path, into), *wal_pair)  # while held: no writer can change either meanwhile
    try:
        migrate(Connector(into, read_only=False, lock_timeout=lock_timeout), views=())
    except StoreError as e:  # e.g. a newer version's file: named as the user named it, not by its copy
        raise StoreError(str(e).replace(str(into), str(path))) from e
    return into


# ---- the merge -----------------------------------------------------------------------------------------------------


@contextmanager
def _built_next_to(target: Path, lock_timeout: float) -> Iterator[Path]:
    """A temporary copy of ``target`` (empty when there is none) in its directory; moved onto ``target`` when the
    block ends without an exception, removed otherwise.

    An existing target stays open for writing from the copy until it has been replaced: DuckDB's lock keeps every
    other writer out meanwhile (a sweep writing to it waits, or journals the write and applies it later), so no write
    lands in the old file between the copy and the move and is lost. Opening it for writing also folds an unfinished
    write-ahead log into the file before it is copied. Closing the old file afterwards leaves the new one alone."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.merge-", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(name)
    tmp.unlink()  # DuckDB makes the file itself (an empty file would be another program's)
    existing = target.is_file() and target.stat().st_size > 0
    if existing:
        check_duckdb_file(target)
    held = Connector(target, read_only=False, lock_timeout=lock_timeout).connect() if existing else nullcontext()
    try:
        with held as con:
            if con is not None:
                check_featherweight(con, target, empty_ok=True)
                con.execute("CHECKPOINT")
                _copy_in_child((target, tmp))
                shutil.copymode(target, tmp)
            yield tmp
            os.replace(tmp, target)
    finally:
        for p in (tmp, Path(f"{tmp}.wal")):
            p.unlink(missing_ok=True)


def merge_databases(
    sources: Sequence[str | Path],
    target: str | Path,
    renames: dict[str, str] | None = None,
    views: Sequence[View] = (),
    lock_timeout: float = 10.0,
) -> MergeSummary:
    """Merge the sweeps of ``sources`` into ``target`` (created if missing), atomically; see the module docstring.
    ``views`` are installed in the target (the analysis views)."""
    target = Path(target)
    renames = dict(renames or {})
    resolved_target = target.resolve()
    for s in sources:
        if Path(s).resolve() == resolved_target:
            raise MergeError(f"{s} is the target itself: name other databases to merge into it")
    summary = MergeSummary(target)
    with tempfile.TemporaryDirectory(prefix=".featherweight-merge-", dir=_existing_dir(target)) as work:
        copies = [
            (str(s), _copy_source(Path(s), Path(work) / f"source{i}.duckdb", lock_timeout))
            for i, s in enumerate(sources)
        ]
        unknown = set(renames) - _sweep_names([c for _, c in copies])
        if unknown:
            raise MergeError(f"--rename {sorted(unknown)[0]}=...: no source has a sweep of that name")
        with _built_next_to(target, lock_timeout) as tmp:
            connector = Connector(tmp, read_only=False, lock_timeout=lock_timeout)
            migrate(connector, views)
            with connector.connect() as con:
                kinds = table_kinds(con)
                for label, copy in copies:
                    con.execute(f"ATTACH '{_sql_text(copy)}' AS src (READ_ONLY)")
                    try:
                        con.execute("BEGIN TRANSACTION")
                        _merge_source(con, kinds, label, renames, summary)
                        con.execute("COMMIT")
                    except BaseException:
                        con.execute("ROLLBACK")
                        raise
                    finally:
                        con.execute("DETACH src")
                con.execute("CHECKPOINT")
    return summary


def _existing_dir(target: Path) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    return target.parent


def _sql_text(path: Path) -> str:
    return str(path).replace("'", "''")


def _sweep_names(copies: list[Path]) -> set[str]:
    names: set[str] = set()
    for copy in copies:
        with duckdb.connect(str(copy), read_only=True) as con:
            names |= {r[0] for r in con.execute("SELECT name FROM sweeps").fetchall()}
    return names


def _merge_source(
    con: duckdb.DuckDBPyConnection, kinds: dict[str, str], label: str, renames: dict[str, str], summary: MergeSummary
) -> None:
    for (sweep,) in con.execute("SELECT name FROM src.sweeps ORDER BY name").fetchall():
        name = renames.get(sweep, sweep)
        target_spec = con.execute("SELECT spec FROM main.sweeps WHERE name = ?", [name]).fetchone()
        source_spec = con.execute("SELECT spec FROM src.sweeps WHERE name = ?", [sweep]).fetchone()[0]
        if target_spec is None:
            _add_sweep(con, kinds, label, sweep, name, summary)
            continue
        if machine_free_spec(target_spec[0]) != machine_free_spec(source_spec):
            hint = f"--rename {sweep}=NEW_NAME" if name == sweep else f"another --rename {sweep}=..."
            raise MergeError(
                f"sweep {name!r} is in {summary.target} and in {label} with different specs; keep both with {hint}"
            )
        summary.sweeps.append(_merge_sweep(con, kinds, label, sweep, name))
    _merge_global_baselines(con, summary)


def _add_sweep(con, kinds, label, sweep, name, summary) -> None:
    done = SweepMerge(label, sweep, name, "added")
    spec = con.execute("SELECT spec FROM src.sweeps WHERE name = ?", [sweep]).fetchone()[0]
    if name != sweep and spec:
        parsed = json.loads(spec)
        if isinstance(parsed, dict) and parsed.get("name") == sweep:
            spec = json.dumps({**parsed, "name": name})
    con.execute(
        "INSERT INTO main.sweeps BY NAME SELECT * REPLACE (?::VARCHAR AS name, ?::JSON AS spec) FROM src.sweeps "
        "WHERE name = ?",
        [name, spec, sweep],
    )
    for table, kind in kinds.items():
        if kind in ("trial", "sweep"):
            n = con.execute(
                f"INSERT INTO main.{_q(table)} BY NAME SELECT * REPLACE (?::VARCHAR AS sweep) FROM src.{_q(table)} "
                "WHERE sweep = ?",
                [name, sweep],
            ).fetchone()[0]
            done.rows[table] = n
    done.trials_added = done.rows.get(TRIAL_TABLE, 0)
    done.missing_checkpoints = _missing_checkpoints(con, "src", sweep, None)
    summary.sweeps.append(done)


def _merge_sweep(con, kinds, label, sweep, name) -> SweepMerge:
    """A sweep in both files: trial by trial."""
    done = SweepMerge(label, sweep, name, "merged")
    con.execute(
        "CREATE OR REPLACE TEMP TABLE incoming AS SELECT s.trial_id, s.status AS src_status, t.status AS tgt_status "
        "FROM src.trials s LEFT JOIN main.trials t ON t.sweep = ? AND t.trial_id = s.trial_id WHERE s.sweep = ?",
        [name, sweep],
    )
    new = [r[0] for r in con.execute("SELECT trial_id FROM incoming WHERE tgt_status IS NULL").fetchall()]
    replaced = [
        r[0]
        for r in con.execute(
            "SELECT trial_id FROM incoming WHERE "
            "(tgt_status IN ('error', 'stopped') AND src_status = 'finished') "
            "OR (tgt_status = 'error' AND src_status = 'stopped')"
        ).fetchall()
    ]
    result_cols = [c for c in _columns(con, RESULT_TABLE) if c not in RESULT_IGNORED]
    differs = ", ".join(f"s.{_q(c)} IS DISTINCT FROM t.{_q(c)}" for c in result_cols)
    for trial, *flags in con.execute(
        f"SELECT s.trial_id, {differs} FROM src.results s JOIN main.results t ON t.sweep = ? AND t.trial_id = s.trial_id "
        "JOIN incoming i ON i.trial_id = s.trial_id WHERE s.sweep = ? AND i.tgt_status = 'finished' "
        "AND i.src_status = 'finished' ORDER BY s.trial_id",
        [name, sweep],
    ).fetchall():
        differ = [c for c, d in zip(result_cols, flags, strict=True) if d]
        if differ:
            done.conflicts.append((trial, differ))
    in_both = con.execute("SELECT count(*) FROM incoming WHERE tgt_status IS NOT NULL").fetchone()[0]
    done.trials_same = in_both - len(replaced) - len(done.conflicts)
    taken = new + replaced
    con.execute("CREATE OR REPLACE TEMP TABLE taken (trial_id VARCHAR)")
    if taken:
        con.executemany("INSERT INTO taken VALUES (?)", [[t] for t in taken])
    for table, kind in kinds.items():
        if kind == "trial":
            con.execute(
                f"DELETE FROM main.{_q(table)} WHERE sweep = ? AND trial_id IN (SELECT trial_id FROM taken)", [name]
            )
            done.rows[table] = con.execute(
                f"INSERT INTO main.{_q(table)} BY NAME SELECT * REPLACE (?::VARCHAR AS sweep) FROM src.{_q(table)} "
                "WHERE sweep = ? AND trial_id IN (SELECT trial_id FROM taken)",
                [name, sweep],
            ).fetchone()[0]
        elif kind == "sweep":
            key = _primary_key(con, table) or list(NATURAL_KEYS.get(table, ())) or _columns(con, table)
            others = [c for c in key if c != "sweep"]
            match = " AND ".join(["t.sweep = ?"] + [f"t.{_q(c)} IS NOT DISTINCT FROM s.{_q(c)}" for c in others])
            done.rows[table] = con.execute(
                f"INSERT INTO main.{_q(table)} BY NAME SELECT * REPLACE (?::VARCHAR AS sweep) FROM src.{_q(table)} s "
                f"WHERE s.sweep = ? AND NOT EXISTS (SELECT 1 FROM main.{_q(table)} t WHERE {match})",
                [name, sweep, name],
            ).fetchone()[0]
    done.trials_added, done.trials_replaced = len(new), len(replaced)
    done.missing_checkpoints = _missing_checkpoints(con, "src", sweep, "taken")
    return done


def _merge_global_baselines(con, summary: MergeSummary) -> None:
    """Baselines of every sweep (sweep NULL: the thesis rows, ``db add-baseline`` without --sweep) the target lacks."""
    key = NATURAL_KEYS["baselines"]
    summary.baselines_added += con.execute(
        "INSERT INTO main.baselines BY NAME SELECT * FROM src.baselines s WHERE s.sweep IS NULL AND NOT EXISTS "
        f"(SELECT 1 FROM main.baselines t WHERE {_key_match(key, 't', 's')})"
    ).fetchone()[0]


def _missing_checkpoints(con, db: str, sweep: str, only: str | None) -> list[str]:
    where = " AND trial_id IN (SELECT trial_id FROM taken)" if only else ""
    paths = [
        r[0]
        for r in con.execute(
            f"SELECT checkpoint_path FROM {db}.trials WHERE sweep = ? AND checkpoint_path IS NOT NULL{where} "
            "ORDER BY trial_id",
            [sweep],
        ).fetchall()
    ]
    return [p for p in paths if not Path(p).exists()]
