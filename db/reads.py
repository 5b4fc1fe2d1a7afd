"""The reads: SQL to a DataFrame or an Arrow table, the list of relations, and the typed reads the sweep runner
and the reports use (sweep status, finished trial ids, a parent's compression history). Each takes an open
connection; ``ExperimentStore`` opens it. Typed reads go to the tables, never to the views (the store does not own
the views; they may not be installed).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import duckdb

from db.connection import first_line
from db.errors import QueryLimitError, StoreError
from db.limits import QueryLimits
from db.values import is_stage_name
from featherweight_core.vocab import SIZE_MEASURES

if TYPE_CHECKING:  # pandas and pyarrow are imported lazily: the writer never needs them
    import pandas
    import pyarrow


def query(
    con: duckdb.DuckDBPyConnection, sql: str, params: list | dict | None = None, limits: QueryLimits | None = None
) -> pandas.DataFrame:
    """Run one SQL statement and return its rows as a DataFrame. Bad SQL, or SQL without a statement (only a
    comment) -> StoreError with DuckDB's message. With ``limits``, the rows are fetched in chunks and a result larger
    than the memory limit is a QueryLimitError (DuckDB's own memory limit does not count what it hands over)."""
    try:
        result = con.execute(sql, params) if params is not None else con.execute(sql)
        if result is None:  # DuckDB parsed no statement at all
            raise StoreError(NO_STATEMENT)
        return result.df() if limits is None else _bounded_frame(result, limits)
    except duckdb.Error as e:
        raise StoreError(f"query failed: {first_line(e)}") from e


NO_STATEMENT = "no SQL statement in the query (only comments, blanks or semicolons)"
_CHUNK_VECTORS = 16  # DuckDB vectors (2048 rows each) fetched at a time when the result is bounded


def _bounded_frame(result: duckdb.DuckDBPyConnection, limits: QueryLimits) -> pandas.DataFrame:
    import pandas as pd

    chunks, total = [], 0
    while True:
        chunk = result.fetch_df_chunk(_CHUNK_VECTORS)
        if not chunks or len(chunk):  # the first chunk, even empty, carries the columns
            chunks.append(chunk)
        if not len(chunk):
            break
        total += int(chunk.memory_usage(deep=True, index=False).sum())
        if total > limits.memory_bytes:
            raise QueryLimitError(limits.memory_message("query result"))
    return chunks[0] if len(chunks) == 1 else pd.concat(chunks, ignore_index=True)


def arrow(
    con: duckdb.DuckDBPyConnection, sql: str, params: list | dict | None = None, limits: QueryLimits | None = None
) -> pyarrow.Table:
    """Like ``query`` but returns a pyarrow Table (keeps DuckDB's types exactly, e.g. for Parquet export)."""
    import pyarrow as pa

    try:
        # a relation (con.sql) converts to Arrow without the extra copy a DB-API result makes
        rel = con.sql(sql, params=params) if params is not None else con.sql(sql)
        if rel is None:  # a statement without a result
            return pa.table({})
        if limits is not None:
            reader = _arrow_reader(rel)
            batches, total = [], 0
            for batch in reader:
                batches.append(batch)
                total += batch.nbytes
                if total > limits.memory_bytes:
                    raise QueryLimitError(limits.memory_message("query result"))
            return pa.Table.from_batches(batches, schema=reader.schema)
        for method in ("to_arrow_table", "fetch_arrow_table", "arrow"):  # the name moved across DuckDB versions
            if hasattr(rel, method):
                table = getattr(rel, method)()
                return table.read_all() if hasattr(table, "read_all") else table
        raise RuntimeError("this DuckDB cannot return Arrow tables")
    except duckdb.Error as e:
        raise StoreError(f"query failed: {first_line(e)}") from e


def _arrow_reader(rel: duckdb.DuckDBPyRelation) -> pyarrow.RecordBatchReader:
    for method in ("to_arrow_reader", "fetch_arrow_reader", "record_batch"):  # the name moved across versions
        if hasattr(rel, method):
            return getattr(rel, method)(_CHUNK_VECTORS * 2048)
    raise RuntimeError("this DuckDB cannot stream Arrow batches")


def relations(con: duckdb.DuckDBPyConnection) -> list[tuple[str, str]]:
    """``[(name, "table" | "view"), ...]`` of the user-visible tables and views (temporary views included)."""
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
    return out


SWEEP_COLUMNS = ("name", "status", "message", "started_at", "finished_at", "code_version", "storage_path")


def sweeps(con: duckdb.DuckDBPyConnection) -> pandas.DataFrame:
    """One row per sweep with its trial counts."""
    return query(
        con,
        f"""
        SELECT {", ".join("s." + c for c in SWEEP_COLUMNS)},
               count(t.trial_id) AS trials,
               count(t.trial_id) FILTER (WHERE t.status = 'finished') AS finished,
               count(t.trial_id) FILTER (WHERE t.status = 'error') AS errors
        FROM sweeps s LEFT JOIN trials t ON t.sweep = s.name
        GROUP BY ALL ORDER BY s.started_at, s.name
        """,
    )


def _unknown_sweep(con: duckdb.DuckDBPyConnection, name: str) -> StoreError:
    known = [r[0] for r in con.execute("SELECT name FROM sweeps ORDER BY name").fetchall()]
    return StoreError(f"unknown sweep {name!r} (known: {', '.join(known) or 'none'})")


def sweep_spec(con: duckdb.DuckDBPyConnection, name: str) -> dict:
    """The spec the sweep was (last) started with, as recorded by ``start_sweep``. Unknown sweep -> StoreError."""
    row = con.execute("SELECT spec FROM sweeps WHERE name = ?", [name]).fetchone()
    if row is None:
        raise _unknown_sweep(con, name)
    return json.loads(row[0]) if isinstance(row[0], str) else (row[0] or {})


def sweep_status(con: duckdb.DuckDBPyConnection, name: str) -> dict[str, Any]:
    """``{name, status, message, started_at, finished_at, code_version, storage_path, trials, by_status, by_stage}``;
    ``by_stage`` is ``{stage: {status: count}}``. Unknown sweep -> StoreError naming the known ones."""
    row = con.execute(f"SELECT {', '.join(SWEEP_COLUMNS)} FROM sweeps WHERE name = ?", [name]).fetchone()
    if row is None:
        raise _unknown_sweep(con, name)
    counts = con.execute(
        "SELECT stage, status, count(*) FROM trials WHERE sweep = ? GROUP BY ALL ORDER BY ALL", [name]
    ).fetchall()
    by_stage: dict[str, dict[str, int]] = {}
    by_status: dict[str, int] = {}
    for stage, status, n in counts:
        by_stage.setdefault(stage, {})[status] = n
        by_status[status] = by_status.get(status, 0) + n
    return {
        **dict(zip(SWEEP_COLUMNS, row, strict=True)),
        "trials": sum(by_status.values()),
        "by_status": by_status,
        "by_stage": by_stage,
    }


def _check_stage(stage: str | None) -> None:
    if stage is not None and not is_stage_name(stage):
        raise ValueError(f"stage must be a stage's name or None, got {stage!r}")


def finished_trial_ids(con: duckdb.DuckDBPyConnection, sweep: str, stage: str | None = None) -> set[str]:
    """Ids of the sweep's finished trials (of one stage if given)."""
    _check_stage(stage)
    rows = con.execute(
        "SELECT trial_id FROM trials WHERE sweep = ? AND status = 'finished' AND (? IS NULL OR stage = ?)",
        [sweep, stage, stage],
    ).fetchall()
    return {r[0] for r in rows}


def trial_ids_with_status(
    con: duckdb.DuckDBPyConnection, sweep: str, statuses: tuple[str, ...], stage: str | None = None
) -> set[str]:
    """Ids of the sweep's trials whose status is one of ``statuses`` (of one stage if given)."""
    _check_stage(stage)
    rows = con.execute(
        "SELECT trial_id FROM trials WHERE sweep = ? AND list_contains(?, status) AND (? IS NULL OR stage = ?)",
        [sweep, list(statuses), stage, stage],
    ).fetchall()
    return {r[0] for r in rows}


def trial_scores(
    con: duckdb.DuckDBPyConnection, sweep: str, stage: str
) -> dict[str, tuple[str, float | None, int | None]]:
    """``{trial_id: (status, score, params)}`` of the sweep's trials of ``stage`` (score and params None where not
    recorded)."""
    _check_stage(stage)
    rows = con.execute(
        """
        SELECT t.trial_id, t.status, r.score, r.params
        FROM trials t LEFT JOIN results r USING (sweep, trial_id)
        WHERE t.sweep = ? AND t.stage = ?
        """,
        [sweep, stage],
    ).fetchall()
    return {tid: (status, score, params) for tid, status, score, params in rows}


def rung_entries(con: duckdb.DuckDBPyConnection, sweep: str, stage: str) -> list[dict[str, Any]]:
    """The rung results a scheduler recorded for the sweep's finished and stopped trials of ``stage``: the
    ``metrics`` (parsed) of each ``epochs`` row that carries a ``rung``, with its ``trial_id`` and ``epoch``, in
    arrival order (``rung_seq``)."""
    _check_stage(stage)
    rows = con.execute(
        """
        SELECT e.trial_id, e.epoch, e.metrics
        FROM epochs e JOIN trials t USING (sweep, trial_id)
        WHERE t.sweep = ? AND t.stage = ? AND t.status IN ('finished', 'stopped')
          AND json_extract(e.metrics, '$.rung') IS NOT NULL
        ORDER BY CAST(json_extract(e.metrics, '$.rung_seq') AS BIGINT), e.trial_id
        """,
        [sweep, stage],
    ).fetchall()
    out = []
    for tid, epoch, metrics in rows:
        m = json.loads(metrics) if isinstance(metrics, str) else dict(metrics or {})
        out.append({"trial_id": tid, "epoch": epoch, **m})
    return out


def compress_history(
    con: duckdb.DuckDBPyConnection, sweep: str, parent_trial_id: str, size_measure: str
) -> list[tuple[dict, float | None, float | None]]:
    """``[(config, score, size), ...]`` of the finished compress-stage trials of ``parent_trial_id`` in ``sweep``,
    oldest first: what a resumed stage 2 feeds its search. ``size`` is the ``size_measure`` column of ``results``."""
    if size_measure not in SIZE_MEASURES:  # interpolated as a column name below: only known names
        raise StoreError(f"size measure must be one of {SIZE_MEASURES}, got {size_measure!r}")
    rows = con.execute(
        f"""
        SELECT t.config, r.score, r.{size_measure}
        FROM trials t LEFT JOIN results r USING (sweep, trial_id)
        WHERE t.sweep = ? AND t.parent_trial_id = ? AND t.stage = 'compress' AND t.status = 'finished'
        ORDER BY t.finished_at NULLS LAST, t.recorded_at, t.trial_id
        """,
        [sweep, parent_trial_id],
    ).fetchall()
    out = []
    for config, score, size in rows:
        cfg = json.loads(config) if isinstance(config, str) else (config or {})
        out.append((cfg, None if score is None else float(score), None if size is None else float(size)))
    return out


STAGE_COLUMNS = (
    "sweep",
    "task",
    "stage",
    "fingerprint",
    "status",
    "started_at",
    "finished_at",
    "seconds",
    "device",
    "node",
    "output",
    "message",
    "detail",
    "attempts",
)


def stages(con: duckdb.DuckDBPyConnection, sweep: str) -> list[dict[str, Any]]:
    """The sweep's rows of the ``stages`` table (``detail`` parsed from JSON), by start time."""
    rows = con.execute(
        f"SELECT {', '.join(STAGE_COLUMNS)} FROM stages WHERE sweep = ? ORDER BY started_at, task, stage",
        [sweep],
    ).fetchall()
    out = []
    for row in rows:
        d = dict(zip(STAGE_COLUMNS, row, strict=True))
        d["detail"] = json.loads(d["detail"]) if d["detail"] else None
        out.append(d)
    return out


TRIAL_ARTEFACT_COLUMNS = (
    "sweep",
    "trial_id",
    "stage",
    "status",
    "task",
    "checkpoint_path",
    "parent_trial_id",
    "parent_checkpoint_path",
    "params",
    "disk_bytes",
    "gzip_bytes",
)


def trial_artefacts(con: duckdb.DuckDBPyConnection, trial_id: str, sweep: str | None = None) -> list[dict[str, Any]]:
    """Where a trial's saved model is and the sizes recorded for it: one dict per sweep holding ``trial_id`` (of
    ``sweep`` only, if given), with :data:`TRIAL_ARTEFACT_COLUMNS` (``parent_checkpoint_path``: the checkpoint of the
    trial a compress trial started from; sizes from ``results``, None where not recorded), by sweep name."""
    rows = con.execute(
        """
        SELECT t.sweep, t.trial_id, t.stage, t.status, t.task, t.checkpoint_path, t.parent_trial_id,
               p.checkpoint_path, r.params, r.disk_bytes, r.gzip_bytes
        FROM trials t
        LEFT JOIN results r USING (sweep, trial_id)
        LEFT JOIN trials p ON p.sweep = t.sweep AND p.trial_id = t.parent_trial_id
        WHERE t.trial_id = ? AND (? IS NULL OR t.sweep = ?)
        ORDER BY t.sweep
        """,
        [trial_id, sweep, sweep],
    ).fetchall()
    return [dict(zip(TRIAL_ARTEFACT_COLUMNS, row, strict=True)) for row in rows]
