"""Opening the DuckDB file: where it is, retrying with backoff while another process holds its lock, transactions.

DuckDB lets only one process hold the file at a time (not even a read-only opener gets in while a writer holds it), so
every operation opens the file, does one short thing and closes it again, and an opener that finds the file locked
retries with growing, jittered sleeps for up to ``lock_timeout`` seconds before giving up with a StoreError.

A read-only connection is sandboxed (``sandbox``): once its own file is open, DuckDB is told to reach no other file
and no network (no ATTACH, COPY, read_csv, extension INSTALL/LOAD) and its configuration is locked, so SQL a user hands
to ``featherweight query`` can read the database and nothing else. A writable connection creates new files in the
storage format of ``STORAGE_COMPATIBILITY`` so any DuckDB 1.x shell can open them.
"""

from __future__ import annotations

import os
import random
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb

from db.errors import LockedError, StoreError

DEFAULT_DB_PATH = "runs/featherweight.duckdb"
DB_ENV_VAR = "FEATHERWEIGHT_DB"
# The storage format new files are written in: one DuckDB 1.1 reads, so the DuckDB shell users have (1.1 or newer,
# e.g. duckdb-cli from PyPI) opens them. A newer DuckDB writes its own newer format by default, which older shells
# refuse ("database file with version number 69, but we can only read versions between 64 and 68"). An existing
# file keeps the format it was created with.
STORAGE_COMPATIBILITY = "v1.1.0"


def default_db_path() -> Path:
    """``$FEATHERWEIGHT_DB`` if set, else ``runs/featherweight.duckdb`` (relative to the working directory)."""
    return Path(os.environ.get(DB_ENV_VAR) or DEFAULT_DB_PATH)


def is_lock_error(e: BaseException) -> bool:
    msg = str(e).lower()
    return "lock" in msg and ("could not set lock" in msg or "conflicting lock" in msg or "database is locked" in msg)


def lock_holder(e: BaseException) -> str:
    """Who holds the file, as DuckDB's lock error names it.

    >>> lock_holder(Exception('Conflicting lock is held in /usr/bin/python3.11 (PID 4242) by user root.'))
    'another process (/usr/bin/python3.11, PID 4242)'
    >>> lock_holder(Exception('Could not set lock on file'))
    'another process'
    """
    m = re.search(r"held in (.+?) \(PID (\d+)\)", str(e))
    return f"another process ({m.group(1)}, PID {m.group(2)})" if m else "another process"


def first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def sandbox(con: duckdb.DuckDBPyConnection) -> None:
    """Lock an open read-only connection into its own database: no other file, no network, no extension loading,
    and no configuration change afterwards (``lock_configuration``). Must come after the database file is open (it is
    attached at connect); temporary views can still be created on the connection."""
    con.execute("SET enable_external_access = false")
    con.execute("SET lock_configuration = true")


def run_in_transaction(con: duckdb.DuckDBPyConnection, fn: Callable[[], Any]) -> Any:
    """``fn()`` between BEGIN and COMMIT on ``con``; any exception rolls back and propagates."""
    con.execute("BEGIN TRANSACTION")
    try:
        out = fn()
    except BaseException:
        con.execute("ROLLBACK")
        raise
    con.execute("COMMIT")
    return out


class Connector:
    """Opens ``path`` on demand. ``on_open(con)``, if given, runs on every fresh connection (e.g. temp views)."""

    def __init__(
        self,
        path: Path,
        read_only: bool,
        lock_timeout: float,
        on_open: Callable[[duckdb.DuckDBPyConnection], None] | None = None,
    ):
        self.path = path
        self.read_only = read_only
        self.lock_timeout = float(lock_timeout)
        self.on_open = on_open

    def _connect_once(self) -> duckdb.DuckDBPyConnection:
        if self.read_only:
            con = duckdb.connect(str(self.path), read_only=True)
            try:
                sandbox(con)
            except BaseException:
                con.close()
                raise
            return con
        # Closing checkpoints the write-ahead log into the file. Skipping that (disable_checkpoint_on_shutdown) saves
        # ~25 ms a write at first, but every later open replays the whole WAL: measured, 400 trials later a write
        # took 0.35 s and a read-only open 0.7 s. So each write pays its checkpoint.
        return duckdb.connect(str(self.path), config={"storage_compatibility_version": STORAGE_COMPATIBILITY})

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
                if not is_lock_error(e):
                    raise StoreError(f"cannot open {self.path}: {first_line(e)}") from e
                if time.monotonic() >= deadline:
                    raise LockedError(
                        f"{self.path} is locked by {lock_holder(e)} (gave up after {self.lock_timeout:g} s)"
                    ) from e
                time.sleep(delay * (0.5 + random.random()))
                delay = min(delay * 2, 0.5)
            except duckdb.Error as e:
                raise StoreError(f"cannot open {self.path}: {first_line(e)}") from e
        try:
            if self.on_open is not None:
                self.on_open(con)
            yield con
        finally:
            con.close()

    def transaction(self, fn: Callable[[duckdb.DuckDBPyConnection], Any]) -> Any:
        """Open the file, run ``fn(con)`` in one transaction, commit (or roll back on an exception), close."""
        with self.connect() as con:
            return run_in_transaction(con, lambda: fn(con))
