"""The experiment database: a DuckDB file behind ``ExperimentStore`` (see ``db.store`` for the contract).

Names are loaded lazily so that importing the package does not import duckdb.
"""

from __future__ import annotations

__all__ = ["DEFAULT_DB_PATH", "ExperimentStore", "StoreError", "TrialRecord", "default_db_path"]


def __getattr__(name: str):
    if name in __all__:
        from db import store

        return getattr(store, name)
    raise AttributeError(f"module 'db' has no attribute {name!r}")
