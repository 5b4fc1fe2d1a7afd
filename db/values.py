"""Value cleaning for the writes: NaN/inf -> NULL, numpy and torch scalars -> Python numbers, anything -> JSON text,
unix seconds -> UTC timestamps; and the one INSERT statement every write uses."""

from __future__ import annotations

import dataclasses
import json
import math
import re
from contextlib import suppress
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from db.columns import INT_COLUMNS

if TYPE_CHECKING:
    import duckdb


# A stage's name (``trials.stage``, ``stages.stage``): the sweep driver's registry says which stages exist; the
# database only insists on a name it can show and query (lower-case letters, digits and '_').
STAGE_NAME = re.compile(r"[a-z][a-z0-9_]*")


def is_stage_name(value: Any) -> bool:
    return isinstance(value, str) and STAGE_NAME.fullmatch(value) is not None


def finite(x: Any) -> Any:
    """NaN/inf -> None (a NaN score would sort above every number in DuckDB and break skylines and maxima)."""
    if x is None:
        return None
    if hasattr(x, "item") and not isinstance(x, (list, dict)):  # numpy / torch scalars
        with suppress(TypeError, ValueError):
            x = x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def json_safe(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        obj = dataclasses.asdict(obj)
    if isinstance(obj, dict):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set)):
        return [json_safe(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    obj = finite(obj)
    if obj is None or isinstance(obj, (str, int, float, bool)):
        return obj
    if hasattr(obj, "tolist"):
        return json_safe(obj.tolist())
    return str(obj)


def to_json(obj: Any) -> str:
    return json.dumps(json_safe(obj), sort_keys=True)


def timestamp(unix: float | None) -> datetime | None:
    """Unix seconds -> naive UTC datetime (stored as TIMESTAMP, documented as UTC)."""
    unix = finite(unix)
    if unix is None:
        return None
    return datetime.fromtimestamp(float(unix), timezone.utc).replace(tzinfo=None)


def utc_now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def number(value: Any, column: str) -> Any:
    value = finite(value)
    if value is None or isinstance(value, (dict, list, str)):
        return None
    if isinstance(value, bool):
        value = int(value)
    return int(round(value)) if column in INT_COLUMNS else float(value)


def text_or_none(value: Any) -> str | None:
    return None if value is None else str(value)


def first_set(*values: Any) -> Any:
    """The first value that is not None (a TrialRecord field before the same key of its metrics / sizes)."""
    return next((v for v in values if v is not None), None)


def insert_rows(con: duckdb.DuckDBPyConnection, table: str, columns: tuple[str, ...], rows: list[list]) -> None:
    """One INSERT with named columns (a migration that adds columns never shifts the values)."""
    if not rows:
        return
    one = "(" + ", ".join("?" * len(columns)) + ")"
    con.execute(
        f"INSERT INTO {table} ({', '.join(columns)}) VALUES {', '.join([one] * len(rows))}",
        [v for row in rows for v in row],
    )
