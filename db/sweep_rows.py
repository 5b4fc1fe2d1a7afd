"""Sweep rows: a sweep's start (or resume) and its end, written into ``sweeps``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from db.columns import FINAL_SWEEP_STATUSES
from db.errors import StoreError
from db.values import insert_rows, text_or_none, to_json, utc_now

if TYPE_CHECKING:
    import duckdb


def start_sweep(con: duckdb.DuckDBPyConnection, name: str, spec: dict, code_version: str, storage_path: str) -> None:
    """Create the sweep row, or mark an existing one running again (a resume keeps the original start time)."""
    if not name:
        raise StoreError("sweep name must not be empty")
    if con.execute("SELECT 1 FROM sweeps WHERE name = ?", [name]).fetchone():
        con.execute(
            "UPDATE sweeps SET spec = ?, status = 'running', message = NULL, finished_at = NULL, code_version = ?, "
            "storage_path = ? WHERE name = ?",
            [to_json(spec), code_version, str(storage_path), name],
        )
    else:
        insert_rows(
            con,
            "sweeps",
            ("name", "spec", "started_at", "status", "code_version", "storage_path"),
            [[name, to_json(spec), utc_now(), "running", code_version, str(storage_path)]],
        )


def finish_sweep(con: duckdb.DuckDBPyConnection, name: str, status: str, message: str | None = None) -> None:
    """Set the final ``status`` ('finished' | 'failed' | 'interrupted'), ``message`` and ``finished_at``."""
    if status not in FINAL_SWEEP_STATUSES:  # the runner passes literals: another value is a bug
        raise ValueError(f"sweep status must be one of {FINAL_SWEEP_STATUSES}, got {status!r}")
    if not con.execute("SELECT 1 FROM sweeps WHERE name = ?", [name]).fetchone():
        raise StoreError(f"unknown sweep {name!r}")
    con.execute(
        "UPDATE sweeps SET status = ?, message = ?, finished_at = ? WHERE name = ?",
        [status, text_or_none(message), utc_now(), name],
    )
