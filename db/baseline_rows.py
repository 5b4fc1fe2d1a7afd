"""Baseline rows: the teachers a sweep measured and the user's reference points (literature figures, a spec's
baselines), validated and written into ``baselines``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from db.errors import StoreError
from db.values import finite, insert_rows, number, text_or_none, utc_now

if TYPE_CHECKING:
    import duckdb

# User reference points: 'user' (featherweight db add-baseline) and 'spec' (a sweep spec's tasks.<task>.baselines);
# 'thesis table 7.5' rows come with the schema and 'measured' teachers through record_teacher.
BASELINE_SOURCES = ("user", "spec")
BASELINE_COLUMNS = (
    "sweep",
    "task",
    "name",
    "source",
    "score",
    "accuracy",
    "f1",
    "macro_f1",
    "params",
    "disk_bytes",
    "gzip_bytes",
    "note",
    "recorded_at",
)


def record_teacher(
    con: duckdb.DuckDBPyConnection,
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
    con.execute(
        "DELETE FROM baselines WHERE sweep = ? AND task = ? AND name = ? AND source = 'measured'", [sweep, task, name]
    )
    columns = (
        "sweep",
        "task",
        "name",
        "source",
        "score",
        "accuracy",
        "f1",
        "accuracy_matched",
        "accuracy_mismatched",
        "params",
        "disk_bytes",
        "gzip_bytes",
        "note",
        "recorded_at",
    )
    insert_rows(
        con,
        "baselines",
        columns,
        [
            [
                sweep,
                task,
                name,
                "measured",
                number(score, "score"),
                number(accuracy, "accuracy"),
                number(f1, "f1"),
                number(accuracy_matched, "accuracy_matched"),
                number(accuracy_mismatched, "accuracy_mismatched"),
                number(params, "params"),
                number(disk_bytes, "disk_bytes"),
                number(gzip_bytes, "gzip_bytes"),
                note or "teacher",
                utc_now(),
            ]
        ],
    )


def _fraction(value: Any, what: str) -> float | None:
    value = finite(value)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= float(value) <= 1.0:
        raise StoreError(f"baseline {what}: expected a fraction in [0, 1] (0.87, not 87), got {value!r}")
    return float(value)


def _count(value: Any, what: str) -> int | None:
    value = finite(value)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0 or value != int(value):
        raise StoreError(f"baseline {what}: expected a non-negative whole number, got {value!r}")
    return int(value)


def baseline_row(
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
) -> list:
    """Validate a user reference point into a ``baselines`` row (BASELINE_COLUMNS); StoreError names a bad value."""
    if not task or not isinstance(task, str):
        raise StoreError(f"baseline: expected a task name, got {task!r}")
    if not name or not isinstance(name, str):
        raise StoreError(f"baseline: expected a non-empty name, got {name!r}")
    if sweep is not None and (not isinstance(sweep, str) or not sweep):
        raise StoreError(f"baseline: sweep must be a sweep name or None (every sweep), got {sweep!r}")
    if source not in BASELINE_SOURCES:
        raise StoreError(f"baseline source must be one of {BASELINE_SOURCES}, got {source!r}")
    if finite(score) is None:
        raise StoreError(f"baseline score: expected a fraction in [0, 1], got {score!r}")
    return [
        sweep,
        task,
        name,
        source,
        _fraction(score, "score"),
        _fraction(accuracy, "accuracy"),
        _fraction(f1, "f1"),
        _fraction(macro_f1, "macro_f1"),
        _count(params, "params"),
        _count(disk_bytes, "disk_bytes"),
        _count(gzip_bytes, "gzip_bytes"),
        text_or_none(note),
        utc_now(),
    ]


def insert_baseline(con: duckdb.DuckDBPyConnection, row: list) -> None:
    """Write a ``baseline_row``; a baseline of the same (sweep, task, name, source) is replaced."""
    sweep, task, name, source = row[:4]
    con.execute(
        "DELETE FROM baselines WHERE sweep IS NOT DISTINCT FROM ? AND task = ? AND name = ? AND source = ?",
        [sweep, task, name, source],
    )
    insert_rows(con, "baselines", BASELINE_COLUMNS, [row])
