"""The experiment store: one DuckDB file holding sweeps, trials, results, per-epoch history and baselines.

Contract (the sweep driver and every reader rely on it):

- One writer: the sweep driver's Tune Callback. Workers never open the database.
- Every operation opens the DuckDB file, runs one short transaction and closes it again, so another process (for
  example ``featherweight query``) can get in between. DuckDB lets only one process hold the file at a time (not even
  a read-only opener gets in while a writer holds it), so readers and writers retry with backoff for up to
  ``lock_timeout`` seconds (10 s by default) when the file is locked.
- Trials are keyed by ``(sweep, trial_id)``. Finished trials are append-only: ``record_trial`` of a trial already
  recorded as finished changes nothing and returns False; a trial recorded as ``error`` may be replaced by a later
  record of the same id (a resumed sweep re-runs it). Nothing is ever duplicated.
- The first writable open creates the file, applies the numbered migrations in ``db/migrations`` (tracked in
  ``schema_version``) and installs the analysis views (``analysis/sql/*.sql``) as persistent views, so any DuckDB
  client sees them. A read-only open never changes the file.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import random
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb

if TYPE_CHECKING:  # pandas is imported lazily: the writer never needs it
    import pandas

DEFAULT_DB_PATH = "runs/featherweight.duckdb"
DB_ENV_VAR = "FEATHERWEIGHT_DB"
MIGRATIONS_DIR = Path(__file__).with_name("migrations")
STAGES = ("distill", "compress")
TRIAL_STATUSES = ("finished", "error")

# Columns of ``results`` filled from TrialRecord.metrics / .sizes (everything is also kept in the JSON columns).
METRIC_COLUMNS = ("score", "accuracy", "f1", "accuracy_matched", "accuracy_mismatched", "best_epoch", "epochs")
SIZE_COLUMNS = (
    "params",
    "params_embedding",
    "params_encoder",
    "params_classifier",
    "nonzero_params",
    "disk_bytes",
    "gzip_bytes",
    "ideal_bytes",
)
_INT_COLUMNS = {"best_epoch", "epochs", *SIZE_COLUMNS}


_MIGRATED: set[tuple] = set()  # files this process has migrated: (resolved path, device, inode, views hash)


class StoreError(ValueError):
    """A database problem the user can act on (missing file, locked file, bad SQL, unknown sweep)."""


def default_db_path() -> Path:
    """``$FEATHERWEIGHT_DB`` if set, else ``runs/featherweight.duckdb`` (relative to the working directory)."""
    return Path(os.environ.get(DB_ENV_VAR) or DEFAULT_DB_PATH)


@dataclass
class TrialRecord:
    """One trial as the sweep driver reports it; ``metrics`` scores are fractions in [0, 1], sizes are bytes/counts."""

    sweep: str
    trial_id: str
    stage: str  # "distill" | "compress"
    task: str
    arch: str
    embedding: str
    emb_dim: int
    vocab_size: int | None
    alpha: float | None
    temperature: float | None
    bootstrap: bool
    seed: int
    pooling: str | None
    parent_trial_id: str | None = None
    pruning: str | None = None  # describe() string, None = not pruned
    quantization: str | None = None  # describe() string, None = not quantized
    status: str = "finished"  # "finished" | "error"
    error: str | None = None
    config: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)
    sizes: dict = field(default_factory=dict)
    started_at: float | None = None  # unix seconds
    finished_at: float | None = None
    seconds: float | None = None
    checkpoint_path: str | None = None
    history: list[dict] = field(
        default_factory=list
    )  # per epoch: epoch, train_loss, score, seconds, samples_per_second, metrics

    def validate(self) -> None:
        if not self.sweep or not self.trial_id:
            raise StoreError(
                f"trial record needs a sweep and a trial_id, got sweep={self.sweep!r} trial_id={self.trial_id!r}"
            )
        if self.stage not in STAGES:
            raise StoreError(f"trial {self.trial_id}: stage must be one of {STAGES}, got {self.stage!r}")
        if self.status not in TRIAL_STATUSES:
            raise StoreError(f"trial {self.trial_id}: status must be one of {TRIAL_STATUSES}, got {self.status!r}")


# ---------------------------------------------------------------------------------------------------------- helpers


def _finite(x: Any) -> Any:
    """NaN/inf -> None (a NaN score would sort above every number in DuckDB and break skylines and maxima)."""
    if x is None:
        return None
    if hasattr(x, "item") and not isinstance(x, (list, dict)):  # numpy / torch scalars
        with suppress(TypeError, ValueError):
            x = x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def _json_safe(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        obj = dataclasses.asdict(obj)
    if isinstance(obj, dict):
        return {str(k): _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set)):
        return [_json_safe(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    obj = _finite(obj)
    if obj is None or isinstance(obj, (str, int, float, bool)):
        return obj
    if hasattr(obj, "tolist"):
        return _json_safe(obj.tolist())
    return str(obj)


def _to_json(obj: Any) -> str:
    return json.dumps(_json_safe(obj), sort_keys=True)


def _ts(unix: float | None) -> datetime | None:
    """Unix seconds -> naive UTC datetime (stored as TIMESTAMP, documented as UTC)."""
    unix = _finite(unix)
    if unix is None:
        return None
    return datetime.fromtimestamp(float(unix), timezone.utc).replace(tzinfo=None)


def _now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def _num(value: Any, column: str) -> Any:
    value = _finite(value)
    if value is None or isinstance(value, (dict, list, str)):
        return None
    if isinstance(value, bool):
        value = int(value)
    return int(round(value)) if column in _INT_COLUMNS else float(value)


def flatten_sizes(sizes: dict) -> dict:
    """Accept both the contract's flat keys and the core's ``size_report`` shape (``{"params": {"total": ...}}``).

    >>> flatten_sizes({"params": {"total": 10, "embedding": 6, "nonzero": 9}, "disk_bytes": 80})["params_embedding"]
    6
    """
    flat = dict(sizes)
    nested = flat.get("params")
    if isinstance(nested, dict):
        flat["params"] = nested.get("total")
        for part in ("embedding", "encoder", "classifier"):
            flat.setdefault(f"params_{part}", nested.get(part))
        flat.setdefault("nonzero_params", nested.get("nonzero"))
    return flat


def _history_row(entry: Any, index: int) -> dict:
    if dataclasses.is_dataclass(entry) and not isinstance(entry, type):
        entry = dataclasses.asdict(entry)
    entry = dict(entry)
    known = {"epoch", "train_loss", "score", "seconds", "samples_per_second", "metrics"}
    metrics = dict(entry.get("metrics") or {})
    metrics.update({k: v for k, v in entry.items() if k not in known})  # keep extra keys rather than drop them
    epoch = _finite(entry.get("epoch"))
    return {
        "epoch": int(epoch) if epoch is not None else index + 1,
        "train_loss": _num(entry.get("train_loss"), "train_loss"),
        "score": _num(entry.get("score"), "score"),
        "seconds": _num(entry.get("seconds"), "seconds"),
        "samples_per_second": _num(entry.get("samples_per_second"), "samples_per_second"),
        "metrics": _to_json(metrics),
    }


def _is_lock_error(e: BaseException) -> bool:
    msg = str(e).lower()
    return "lock" in msg and ("could not set lock" in msg or "conflicting lock" in msg or "database is locked" in msg)


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


# ----------------------------------------------------------------------------------------------------------- views

_VIEW_FILE = re.compile(r"^(\d+)_([a-z][a-z0-9_]*)\.sql$")


def default_views_dir() -> Path | None:
    """``analysis/sql`` next to this package (source tree or installed), found without importing ``analysis``."""
    import importlib.util

    spec = importlib.util.find_spec("analysis")
    if spec is None or not spec.submodule_search_locations:
        return None
    for loc in spec.submodule_search_locations:
        d = Path(loc) / "sql"
        if d.is_dir():
            return d
    return None


def load_views(views_dir: Path | None) -> list[tuple[str, str]]:
    """``[(view_name, select_sql), ...]`` in file-number order; ``NN_name.sql`` defines view ``name``."""
    if views_dir is None:
        return []
    out = []
    for path in sorted(Path(views_dir).glob("*.sql")):
        m = _VIEW_FILE.match(path.name)
        if not m:
            continue
        sql = path.read_text().strip().rstrip(";").strip()
        out.append((int(m.group(1)), m.group(2), sql))
    out.sort()
    return [(name, sql) for _, name, sql in out]


def _views_hash(views: list[tuple[str, str]]) -> str:
    h = hashlib.sha256()
    for name, sql in views:
        h.update(name.encode() + b"\0" + sql.encode() + b"\0")
    return h.hexdigest()[:16]


def _migrations() -> list[tuple[int, str, str]]:
    out = []
    for path in sorted(MIGRATIONS_DIR.glob("*.sql")):
        m = re.match(r"^(\d+)_(.+)\.sql$", path.name)
        if m:
            out.append((int(m.group(1)), m.group(2), path.read_text()))
    out.sort()
    versions = [v for v, _, _ in out]
    if len(set(versions)) != len(versions):
        raise RuntimeError(f"duplicate migration numbers in {MIGRATIONS_DIR}: {versions}")
    return out


def latest_schema_version() -> int:
    migrations = _migrations()
    return migrations[-1][0] if migrations else 0


# ----------------------------------------------------------------------------------------------------------- store


class ExperimentStore:
    """Front of the DuckDB experiment database; see the module docstring for the contract."""

    def __init__(
        self,
        path: str | Path | None = None,
        read_only: bool = False,
        lock_timeout: float = 10.0,
        views_dir: str | Path | None = None,
    ):
        self.path = Path(path) if path is not None else default_db_path()
        self.read_only = read_only
        self.lock_timeout = float(lock_timeout)
        self.views = load_views(Path(views_dir) if views_dir is not None else default_views_dir())
        self._views_hash = _views_hash(self.views)
        self._temp_views = False  # read-only open of a file whose installed views are stale
        if read_only:
            if not self.path.is_file():
                raise StoreError(
                    f"no experiment database at {self.path} (run a sweep first, or pass --db / set {DB_ENV_VAR})"
                )
            self._check_readable()
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # The driver may build a store per write: migrate once per process and file, not on every construction.
            if not (self.path.is_file() and self._file_key() in _MIGRATED):
                self.migrate()

    # -- connections -------------------------------------------------------------------------------------------

    def _connect_once(self) -> duckdb.DuckDBPyConnection:
        if self.read_only:
            return duckdb.connect(str(self.path), read_only=True)
        # Closing checkpoints the write-ahead log into the file. Skipping that (disable_checkpoint_on_shutdown) saves
        # ~25 ms a write at first, but every later open replays the whole WAL: measured, 400 trials later a write
        # took 0.35 s and a read-only open 0.7 s. So each write pays its checkpoint.
        return duckdb.connect(str(self.path))

    @contextmanager
    def connect(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """Open the file (retrying while another process holds the lock), yield the connection, close it."""
        deadline = time.monotonic() + self.lock_timeout
        delay = 0.01
        while True:
            try:
                con = self._connect_once()
                break
            except duckdb.IOException as e:
                if not _is_lock_error(e):
                    raise StoreError(f"cannot open {self.path}: {_first_line(e)}") from e
                if time.monotonic() >= deadline:
                    raise StoreError(
                        f"{self.path} is locked by another process (gave up after {self.lock_timeout:g} s)"
                    ) from e
                time.sleep(delay * (0.5 + random.random()))
                delay = min(delay * 2, 0.5)
            except duckdb.Error as e:
                raise StoreError(f"cannot open {self.path}: {_first_line(e)}") from e
        try:
            if self._temp_views:
                self._install_views(con, temp=True)
            yield con
        finally:
            con.close()

    def _transaction(self, fn: Callable[[duckdb.DuckDBPyConnection], Any]) -> Any:
        with self.connect() as con:
            con.execute("BEGIN TRANSACTION")
            try:
                out = fn(con)
            except BaseException:
                con.execute("ROLLBACK")
                raise
            con.execute("COMMIT")
            return out

    # -- schema ------------------------------------------------------------------------------------------------

    @staticmethod
    def _schema_version(con: duckdb.DuckDBPyConnection) -> int:
        exists = con.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'main' AND table_name = 'schema_version'"
        ).fetchone()[0]
        if not exists:
            return 0
        return con.execute("SELECT coalesce(max(version), 0) FROM schema_version").fetchone()[0]

    def schema_version(self) -> int:
        with self.connect() as con:
            return self._schema_version(con)

    def migrate(self) -> int:
        """Apply pending migrations (each in its own transaction) and (re)install the views; returns the version.

        One open of the file does it all; a process that already migrated this file skips it (see ``__init__``)."""
        if self.read_only:
            raise StoreError("cannot migrate a database opened read-only")
        with self.connect() as con:

            def txn(fn):
                con.execute("BEGIN TRANSACTION")
                try:
                    out = fn()
                except BaseException:
                    con.execute("ROLLBACK")
                    raise
                con.execute("COMMIT")
                return out

            def current_version():
                con.execute(
                    "CREATE TABLE IF NOT EXISTS schema_version "
                    "(version INTEGER PRIMARY KEY, name VARCHAR, applied_at TIMESTAMP)"
                )
                return self._schema_version(con)

            current = txn(current_version)
            if current > latest_schema_version():
                raise StoreError(
                    f"{self.path} has schema version {current}, newer than this code knows "
                    f"({latest_schema_version()}); upgrade featherweight"
                )
            for version, name, sql in _migrations():
                if version <= current:
                    continue

                def apply(version=version, name=name, sql=sql):
                    con.execute(sql)
                    con.execute("INSERT INTO schema_version VALUES (?, ?, ?)", [version, name, _now()])

                txn(apply)
                current = version
            txn(lambda: self._refresh_views(con))
        _MIGRATED.add(self._file_key())
        return current

    def _file_key(self) -> tuple:
        st = os.stat(self.path)
        return (str(self.path.resolve()), st.st_dev, st.st_ino, self._views_hash)

    def _refresh_views(self, con: duckdb.DuckDBPyConnection) -> None:
        row = con.execute("SELECT value FROM meta WHERE key = 'views_hash'").fetchone()
        if row and row[0] == self._views_hash:
            return
        self._install_views(con, temp=False)
        con.execute("INSERT OR REPLACE INTO meta VALUES ('views_hash', ?)", [self._views_hash])

    def _install_views(self, con: duckdb.DuckDBPyConnection, temp: bool) -> None:
        kind = "TEMP VIEW" if temp else "VIEW"
        for name, sql in self.views:
            try:
                con.execute(f"CREATE OR REPLACE {kind} {name} AS {sql}")
            except duckdb.Error as e:
                raise RuntimeError(f"view {name} failed to install: {_first_line(e)}") from e

    def _check_readable(self) -> None:
        with self.connect() as con:
            version = self._schema_version(con)
            if version == 0:
                raise StoreError(f"{self.path} is not a featherweight experiment database (no schema_version table)")
            if version < latest_schema_version():
                raise StoreError(
                    f"{self.path} has schema version {version}, older than {latest_schema_version()}; "
                    "open it once for writing (featherweight db migrate) to upgrade it"
                )
            row = con.execute("SELECT value FROM meta WHERE key = 'views_hash'").fetchone()
        # An older writer installed different view SQL: shadow it with this code's views for this reader only.
        self._temp_views = bool(self.views) and (row is None or row[0] != self._views_hash)

    # -- sweeps ------------------------------------------------------------------------------------------------

    def start_sweep(self, name: str, spec: dict, code_version: str, storage_path: str) -> None:
        """Create the sweep row, or mark an existing one running again (a resume keeps the original start time)."""
        if not name:
            raise StoreError("sweep name must not be empty")

        def run(con):
            exists = con.execute("SELECT 1 FROM sweeps WHERE name = ?", [name]).fetchone()
            if exists:
                con.execute(
                    "UPDATE sweeps SET spec = ?, status = 'running', finished_at = NULL, code_version = ?, storage_path = ? "
                    "WHERE name = ?",
                    [_to_json(spec), code_version, str(storage_path), name],
                )
            else:
                con.execute(
                    "INSERT INTO sweeps VALUES (?, ?, ?, NULL, 'running', ?, ?)",
                    [name, _to_json(spec), _now(), code_version, str(storage_path)],
                )

        self._transaction(run)

    def finish_sweep(self, name: str, status: str) -> None:
        def run(con):
            if not con.execute("SELECT 1 FROM sweeps WHERE name = ?", [name]).fetchone():
                raise StoreError(f"unknown sweep {name!r}")
            con.execute("UPDATE sweeps SET status = ?, finished_at = ? WHERE name = ?", [status, _now(), name])

        self._transaction(run)
        self.checkpoint()

    def checkpoint(self) -> None:
        """Fold the write-ahead log into the database file (done at the end of a sweep)."""
        with self.connect() as con:
            con.execute("CHECKPOINT")

    def sweeps(self) -> pandas.DataFrame:
        """One row per sweep with its trial counts."""
        return self.query(
            """
            SELECT s.name, s.status, s.started_at, s.finished_at, s.code_version, s.storage_path,
                   count(t.trial_id) AS trials,
                   count(t.trial_id) FILTER (WHERE t.status = 'finished') AS finished,
                   count(t.trial_id) FILTER (WHERE t.status = 'error') AS errors
            FROM sweeps s LEFT JOIN trials t ON t.sweep = s.name
            GROUP BY ALL ORDER BY s.started_at, s.name
            """
        )

    def sweep_status(self, name: str) -> dict:
        """``{name, status, started_at, finished_at, code_version, storage_path, trials, by_status, by_stage}``;
        ``by_stage`` is ``{stage: {status: count}}``. Unknown sweep -> StoreError."""
        with self.connect() as con:
            row = con.execute(
                "SELECT name, status, started_at, finished_at, code_version, storage_path FROM sweeps WHERE name = ?",
                [name],
            ).fetchone()
            if row is None:
                known = [r[0] for r in con.execute("SELECT name FROM sweeps ORDER BY name").fetchall()]
                raise StoreError(f"unknown sweep {name!r} (known: {', '.join(known) or 'none'})")
            counts = con.execute(
                "SELECT stage, status, count(*) FROM trials WHERE sweep = ? GROUP BY ALL ORDER BY ALL", [name]
            ).fetchall()
        by_stage: dict[str, dict[str, int]] = {}
        by_status: dict[str, int] = {}
        for stage, status, n in counts:
            by_stage.setdefault(stage, {})[status] = n
            by_status[status] = by_status.get(status, 0) + n
        keys = ("name", "status", "started_at", "finished_at", "code_version", "storage_path")
        return {
            **dict(zip(keys, row, strict=True)),
            "trials": sum(by_status.values()),
            "by_status": by_status,
            "by_stage": by_stage,
        }

    # -- trials ------------------------------------------------------------------------------------------------

    def record_trial(self, rec: TrialRecord) -> bool:
        """Store one trial (config, metrics, sizes, history) in one transaction.

        Returns False, changing nothing, when ``(rec.sweep, rec.trial_id)`` is already recorded as finished. A trial
        recorded as ``error`` is replaced by a new record of the same id.
        """
        rec.validate()
        sizes = flatten_sizes(rec.sizes)
        trial_row = [
            rec.sweep,
            rec.trial_id,
            rec.stage,
            rec.parent_trial_id,
            rec.task,
            rec.arch,
            rec.embedding,
            int(rec.emb_dim),
            None if rec.vocab_size is None else int(rec.vocab_size),
            _num(rec.alpha, "alpha"),
            _num(rec.temperature, "temperature"),
            bool(rec.bootstrap),
            int(rec.seed),
            rec.pooling,
            rec.pruning,
            rec.quantization,
            rec.status,
            rec.error,
            _to_json(rec.config),
            _ts(rec.started_at),
            _ts(rec.finished_at),
            _num(rec.seconds, "seconds"),
            None if rec.checkpoint_path is None else str(rec.checkpoint_path),
            _now(),
        ]
        has_results = bool(rec.metrics) or bool(sizes)
        result_row = [
            rec.sweep,
            rec.trial_id,
            *(_num(rec.metrics.get(c), c) for c in METRIC_COLUMNS),
            *(_num(sizes.get(c), c) for c in SIZE_COLUMNS),
            _to_json(rec.metrics),
            _to_json(sizes),
        ]
        epoch_rows = {}
        for i, entry in enumerate(rec.history):
            row = _history_row(entry, i)
            epoch_rows[row["epoch"]] = row  # a repeated epoch number keeps the last report
        key = [rec.sweep, rec.trial_id]

        def run(con):
            row = con.execute("SELECT status FROM trials WHERE sweep = ? AND trial_id = ?", key).fetchone()
            if row is not None:
                if row[0] == "finished":
                    return False
                for table in ("epochs", "results", "trials"):
                    con.execute(f"DELETE FROM {table} WHERE sweep = ? AND trial_id = ?", key)
            con.execute(f"INSERT INTO trials VALUES ({', '.join('?' * len(trial_row))})", trial_row)
            if has_results:
                con.execute(f"INSERT INTO results VALUES ({', '.join('?' * len(result_row))})", result_row)
            if epoch_rows:
                values = [
                    v
                    for r in epoch_rows.values()
                    for v in (
                        *key,
                        r["epoch"],
                        r["train_loss"],
                        r["score"],
                        r["seconds"],
                        r["samples_per_second"],
                        r["metrics"],
                    )
                ]
                placeholders = ", ".join(["(?, ?, ?, ?, ?, ?, ?, ?)"] * len(epoch_rows))
                con.execute(f"INSERT INTO epochs VALUES {placeholders}", values)  # one statement, not one per epoch
            return True

        return self._transaction(run)

    def finished_trial_ids(self, sweep: str) -> set[str]:
        with self.connect() as con:
            rows = con.execute(
                "SELECT trial_id FROM trials WHERE sweep = ? AND status = 'finished'", [sweep]
            ).fetchall()
        return {r[0] for r in rows}

    def record_teacher(
        self,
        sweep: str,
        task: str,
        name: str,
        score: float,
        accuracy: float | None,
        f1: float | None,
        params: int,
        disk_bytes: int,
        gzip_bytes: int | None,
        accuracy_matched: float | None = None,
        accuracy_mismatched: float | None = None,
        note: str | None = None,
    ) -> None:
        """A teacher a sweep used, as measured (source 'measured'); re-recording (sweep, task, name) replaces it."""

        def run(con):
            con.execute(
                "DELETE FROM baselines WHERE sweep = ? AND task = ? AND name = ? AND source = 'measured'",
                [sweep, task, name],
            )
            con.execute(
                "INSERT INTO baselines VALUES (?, ?, ?, 'measured', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    sweep,
                    task,
                    name,
                    _num(score, "score"),
                    _num(accuracy, "accuracy"),
                    _num(f1, "f1"),
                    _num(accuracy_matched, "accuracy_matched"),
                    _num(accuracy_mismatched, "accuracy_mismatched"),
                    _num(params, "params"),
                    _num(disk_bytes, "disk_bytes"),
                    _num(gzip_bytes, "gzip_bytes"),
                    note or "teacher",
                    _now(),
                ],
            )

        self._transaction(run)

    # -- reading -----------------------------------------------------------------------------------------------

    def query(self, sql: str, params: list | dict | None = None) -> pandas.DataFrame:
        """Run one SQL statement and return its rows as a DataFrame. Bad SQL -> StoreError with DuckDB's message."""
        with self.connect() as con:
            try:
                return con.execute(sql, params).df() if params is not None else con.execute(sql).df()
            except duckdb.Error as e:
                raise StoreError(f"query failed: {_first_line(e)}") from e

    def arrow(self, sql: str, params: list | dict | None = None):
        """Like ``query`` but returns a pyarrow Table (keeps DuckDB's types exactly, e.g. for Parquet export)."""
        with self.connect() as con:
            try:
                # a relation (con.sql) converts to Arrow without the extra copy a DB-API result makes
                rel = con.sql(sql, params=params) if params is not None else con.sql(sql)
                if rel is None:  # a statement without a result
                    import pyarrow as pa

                    return pa.table({})
                for method in ("to_arrow_table", "fetch_arrow_table", "arrow"):  # the name moved across DuckDB versions
                    if hasattr(rel, method):
                        table = getattr(rel, method)()
                        return table.read_all() if hasattr(table, "read_all") else table
                raise RuntimeError("this DuckDB cannot return Arrow tables")
            except duckdb.Error as e:
                raise StoreError(f"query failed: {_first_line(e)}") from e

    def relations(self) -> list[tuple[str, str]]:
        """``[(name, "table" | "view"), ...]`` of the user-visible tables and views."""
        with self.connect() as con:
            rows = con.execute(
                "SELECT table_name, table_type FROM information_schema.tables "
                "WHERE table_schema = 'main' OR table_type = 'LOCAL TEMPORARY' ORDER BY table_type, table_name"
            ).fetchall()
        out, seen = [], set()
        for name, kind in rows:
            if name in seen:
                continue
            seen.add(name)
            out.append((name, "view" if "VIEW" in kind.upper() else "table"))
        view_names = {n for n, _ in self.views}
        return [(n, "view" if n in view_names else k) for n, k in out]
