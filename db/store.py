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
- The first writable open creates the file and applies the numbered migrations in ``db/migrations`` (tracked in
  ``schema_version``). The store owns no view SQL: it installs the ``views`` it is given as persistent views (so any
  DuckDB client sees them), and a read-only store given views shadows differing installed ones with temporary views
  for its own connections. Given no views, it never touches installed ones. ``analysis.views.open_store`` passes the
  analysis views. A read-only open never changes the file, and each of its connections runs under ``limits`` (time and
  memory, ``db.limits``; defaults when not given).
- A file that is not a Featherweight database (another program's DuckDB file with tables of its own, a SQLite file) is
  refused by every opener and never changed; an empty DuckDB file is adopted by a writable open.
- Everything reaches the database through this class's methods; user-fixable problems raise ``StoreError``.

The work is split by job: ``db.connection`` (opening, lock retries, transactions), ``db.schema`` (migrations, view
installation), ``db.rows`` (TrialRecord and the trial writes), ``db.sweep_rows`` and ``db.baseline_rows`` (the writes of
sweeps and baselines), ``db.values`` (value cleaning), ``db.columns`` (each table's written columns), ``db.reads``
(queries and typed reads).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from db import baseline_rows, reads, rows, schema, sweep_rows, values
from db.columns import SWEEP_STATUSES
from db.connection import DB_ENV_VAR, DEFAULT_DB_PATH, Connector, default_db_path
from db.errors import StoreError
from db.limits import QueryLimits
from db.rows import TrialRecord, class_metric_rows, flatten_sizes
from db.schema import latest_schema_version

if TYPE_CHECKING:
    import duckdb
    import pandas
    import pyarrow

__all__ = [
    "DB_ENV_VAR",
    "DEFAULT_DB_PATH",
    "SWEEP_STATUSES",
    "ExperimentStore",
    "StoreError",
    "TrialRecord",
    "class_metric_rows",
    "default_db_path",
    "flatten_sizes",
    "latest_schema_version",
]

_MIGRATED: set[tuple] = set()  # files this process has migrated: (resolved path, device, inode, views hash)


class ExperimentStore:
    """Front of the DuckDB experiment database; see the module docstring for the contract.

    ``views``: ``[(name, select_sql), ...]`` to install (writable) or shadow (read-only), in dependency order.
    """

    def __init__(
        self,
        path: str | Path | None = None,
        read_only: bool = False,
        lock_timeout: float = 10.0,
        views: Sequence[tuple[str, str]] = (),
        limits: QueryLimits | None = None,
    ):
        self.path = Path(path) if path is not None else default_db_path()
        self.read_only = read_only
        self.lock_timeout = float(lock_timeout)
        self.views: tuple[tuple[str, str], ...] = tuple((str(n), str(sql)) for n, sql in views)
        self._views_hash = schema.views_hash(self.views) if self.views else None
        self._shadow_views = False  # read-only open of a file whose installed views differ from self.views
        self._connector = Connector(self.path, read_only, self.lock_timeout, on_open=self._on_open, limits=limits)
        self.limits = self._connector.limits  # None when writable
        if read_only:
            if not self.path.is_file():
                raise StoreError(
                    f"no experiment database at {self.path} (run a sweep first, or pass --db / set {DB_ENV_VAR})"
                )
            self._shadow_views = schema.check_readable(self._connector, self.views)
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # The driver may build a store per write: migrate once per process and file, not on every construction.
            if not (self.path.is_file() and self._file_key() in _MIGRATED):
                self.migrate()

    # -- connections -------------------------------------------------------------------------------------------

    def _on_open(self, con: duckdb.DuckDBPyConnection) -> None:
        if self._shadow_views:
            schema.install_views(con, self.views, temp=True)

    @contextmanager
    def connect(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """Open the file (retrying while another process holds the lock), yield the connection, close it."""
        with self._connector.connect() as con:
            yield con

    def _file_key(self) -> tuple:
        st = os.stat(self.path)
        return (str(self.path.resolve()), st.st_dev, st.st_ino, self._views_hash)

    # -- schema ------------------------------------------------------------------------------------------------

    def schema_version(self) -> int:
        with self.connect() as con:
            return schema.schema_version(con)

    def migrate(self) -> int:
        """Apply pending migrations (each in its own transaction) and install this store's views if they changed;
        returns the schema version. One open of the file does it all; a process that already migrated this file
        skips it on later constructions."""
        version = schema.migrate(self._connector, self.views)
        _MIGRATED.add(self._file_key())
        return version

    def checkpoint(self) -> None:
        """Fold the write-ahead log into the database file (done at the end of a sweep)."""
        with self.connect() as con:
            con.execute("CHECKPOINT")

    # -- writes ------------------------------------------------------------------------------------------------

    def start_sweep(self, name: str, spec: dict, code_version: str, storage_path: str) -> None:
        """Create the sweep row (status 'running'), or mark an existing one running again: a resume keeps the original
        start time and clears finished_at and message."""
        self._connector.transaction(lambda con: sweep_rows.start_sweep(con, name, spec, code_version, storage_path))

    def finish_sweep(self, name: str, status: str, message: str | None = None) -> None:
        """Record the outcome: ``status`` 'finished' | 'failed' | 'interrupted', a human-readable ``message`` (e.g.
        "12 of 12 trials failed; first error: ..."), and finished_at; then checkpoint the file."""
        self._connector.transaction(lambda con: sweep_rows.finish_sweep(con, name, status, message))
        self.checkpoint()

    def record_trial(self, rec: TrialRecord) -> bool:
        """Store one trial (config, metrics, sizes, history, device, node) in one transaction.

        Returns False, changing nothing, when ``(rec.sweep, rec.trial_id)`` is already recorded as finished. A trial
        recorded as ``error`` is replaced by a new record of the same id.
        """
        prepared = rows.trial_rows(rec)
        return self._connector.transaction(lambda con: rows.insert_trial(con, prepared))

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
        args = (
            sweep,
            task,
            name,
            score,
            accuracy,
            f1,
            params,
            disk_bytes,
            gzip_bytes,
            accuracy_matched,
            accuracy_mismatched,
            note,
        )
        self._connector.transaction(lambda con: baseline_rows.record_teacher(con, *args))

    def record_baseline(
        self,
        sweep: str | None,
        task: str,
        name: str,
        score: float,
        params: int | None = None,
        disk_bytes: int | None = None,
        gzip_bytes: int | None = None,
        accuracy: float | None = None,
        f1: float | None = None,
        macro_f1: float | None = None,
        source: str = "user",
        note: str | None = None,
    ) -> None:
        """A user reference point on ``task``'s skyline: ``source`` 'user' (``featherweight db add-baseline``) or
        'spec' (a sweep spec's baselines); ``sweep`` None applies to every sweep with trials on ``task``. Scores are
        fractions in [0, 1] (anything else: StoreError). Re-recording (sweep, task, name, source) replaces it."""
        row = baseline_rows.baseline_row(
            sweep, task, name, score, params, disk_bytes, gzip_bytes, accuracy, f1, macro_f1, source, note
        )
        self._connector.transaction(lambda con: baseline_rows.insert_baseline(con, row))

    def start_stage(
        self, sweep: str, task: str, stage: str, fingerprint: str, output: str | None = None, detail: dict | None = None
    ) -> None:
        """Mark a whole-study stage (``teacher`` | ``bootstrap`` | ``soft_targets``) running: a new row, or (a run
        after a killed or failed one) the same row running again with ``attempts`` + 1."""
        self._connector.transaction(lambda con: _start_stage(con, sweep, task, stage, fingerprint, output, detail))

    def finish_stage(
        self,
        sweep: str,
        task: str,
        stage: str,
        fingerprint: str,
        status: str,
        seconds: float | None = None,
        device: str | None = None,
        node: str | None = None,
        output: str | None = None,
        message: str | None = None,
        detail: dict | None = None,
    ) -> None:
        """Record a stage's end: ``status`` 'finished' | 'failed' | 'cached' (the output was already there), with
        where it ran and for how long; creates the row if there is none (a cached stage)."""
        args = (sweep, task, stage, fingerprint, status, seconds, device, node, output, message, detail)
        self._connector.transaction(lambda con: _finish_stage(con, *args))

    # -- reads -------------------------------------------------------------------------------------------------

    def stages(self, sweep: str) -> list[dict[str, Any]]:
        """The sweep's stage rows (``db/migrations/005_stages.sql``), oldest first."""
        with self.connect() as con:
            return reads.stages(con, sweep)

    def query(self, sql: str, params: list | dict | None = None) -> pandas.DataFrame:
        """Run one SQL statement and return its rows as a DataFrame. Bad SQL -> StoreError with DuckDB's message."""
        with self.connect() as con:
            return reads.query(con, sql, params, limits=self.limits)

    def arrow(self, sql: str, params: list | dict | None = None) -> pyarrow.Table:
        """Like ``query`` but returns a pyarrow Table (keeps DuckDB's types exactly, e.g. for Parquet export)."""
        with self.connect() as con:
            return reads.arrow(con, sql, params, limits=self.limits)

    def relations(self) -> list[tuple[str, str]]:
        """``[(name, "table" | "view"), ...]`` of the user-visible tables and views."""
        with self.connect() as con:
            found = reads.relations(con)
        view_names = {n for n, _ in self.views}  # this store's temporary views list as views too
        return [(n, "view" if n in view_names else k) for n, k in found]

    def sweeps(self) -> pandas.DataFrame:
        """One row per sweep (name, status, message, times, code_version, storage_path) with its trial counts."""
        with self.connect() as con:
            return reads.sweeps(con)

    def sweep_status(self, name: str) -> dict[str, Any]:
        """``{name, status, message, started_at, finished_at, code_version, storage_path, trials, by_status,
        by_stage}``; ``by_stage`` is ``{stage: {status: count}}``. Unknown sweep -> StoreError."""
        with self.connect() as con:
            return reads.sweep_status(con, name)

    def sweep_spec(self, name: str) -> dict:
        """The spec (parsed JSON) the sweep was last started with. Unknown sweep -> StoreError."""
        with self.connect() as con:
            return reads.sweep_spec(con, name)

    def finished_trial_ids(self, sweep: str, stage: str | None = None) -> set[str]:
        """Ids of the sweep's finished trials, of one stage ('distill' | 'compress' | 'teacher_compression') if given."""
        with self.connect() as con:
            return reads.finished_trial_ids(con, sweep, stage)

    def trial_ids_with_status(self, sweep: str, statuses: tuple[str, ...], stage: str | None = None) -> set[str]:
        """Ids of the sweep's trials whose status is one of ``statuses`` ('finished', 'error', 'stopped')."""
        with self.connect() as con:
            return reads.trial_ids_with_status(con, sweep, statuses, stage)

    def trial_scores(self, sweep: str, stage: str) -> dict[str, tuple[str, float | None, int | None]]:
        """``{trial_id: (status, score, params)}`` of the sweep's trials of one stage."""
        with self.connect() as con:
            return reads.trial_scores(con, sweep, stage)

    def rung_entries(self, sweep: str, stage: str) -> list[dict[str, Any]]:
        """The rung results a scheduler recorded for the sweep's finished and stopped trials of one stage, in
        arrival order (``db.reads.rung_entries``)."""
        with self.connect() as con:
            return reads.rung_entries(con, sweep, stage)

    def compress_history(
        self, sweep: str, parent_trial_id: str, size_measure: str
    ) -> list[tuple[dict, float | None, float | None]]:
        """``[(config, score, size), ...]`` of the finished compress trials of one parent, oldest first (config
        parsed from JSON; size is the ``size_measure`` column: gzip_bytes | disk_bytes | params)."""
        with self.connect() as con:
            return reads.compress_history(con, sweep, parent_trial_id, size_measure)


# ---- the stages table (written here: few rows, one short transaction each) -----------------------------------------

STAGE_STATUSES = ("running", "finished", "cached", "failed")


def _check_stage_args(stage: str, status: str) -> None:  # the runner passes literals: another value is a bug
    if not values.is_stage_name(stage):
        raise ValueError(f"stage must be a stage's name, got {stage!r}")
    if status not in STAGE_STATUSES:
        raise ValueError(f"stage status must be one of {STAGE_STATUSES}, got {status!r}")


def _start_stage(con, sweep, task, stage, fingerprint, output, detail) -> None:
    """A new ``running`` row, or the same row running again (a run after a killed or failed one): attempts + 1."""
    _check_stage_args(stage, "running")
    detail_json = values.to_json(detail) if detail is not None else None
    con.execute(
        "INSERT INTO stages (sweep, task, stage, fingerprint, status, started_at, output, detail, attempts)"
        " VALUES (?, ?, ?, ?, 'running', ?, ?, ?, 1) ON CONFLICT (sweep, task, stage, fingerprint) DO UPDATE SET"
        " status = 'running', started_at = excluded.started_at, finished_at = NULL, seconds = NULL, device = NULL,"
        " node = NULL, message = NULL, output = coalesce(excluded.output, stages.output),"
        " detail = coalesce(excluded.detail, stages.detail), attempts = stages.attempts + 1",
        [sweep, task, stage, fingerprint, values.utc_now(), output, detail_json],
    )


def _finish_stage(con, sweep, task, stage, fingerprint, status, seconds, device, node, output, message, detail) -> None:
    """The stage's end on its row; a stage found done (``cached``) may have no row yet: one is created."""
    if status == "running":
        raise ValueError("finish_stage needs a final status, not 'running'")
    _check_stage_args(stage, status)
    now = values.utc_now()
    detail_json = values.to_json(detail) if detail is not None else None
    con.execute(
        "INSERT INTO stages (sweep, task, stage, fingerprint, status, started_at, finished_at, seconds, device, node,"
        " output, message, detail, attempts) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1)"
        " ON CONFLICT (sweep, task, stage, fingerprint) DO UPDATE SET status = excluded.status,"
        " finished_at = excluded.finished_at, seconds = excluded.seconds, device = excluded.device,"
        " node = excluded.node, output = coalesce(excluded.output, stages.output), message = excluded.message,"
        " detail = coalesce(excluded.detail, stages.detail)",
        [sweep, task, stage, fingerprint, status, now, now, seconds, device, node, output, message, detail_json],
    )
