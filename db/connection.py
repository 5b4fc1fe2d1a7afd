"""Opening the DuckDB file: where it is, retrying with backoff while another process holds its lock, transactions.

DuckDB lets only one process hold the file at a time (not even a read-only opener gets in while a writer holds it), so
every operation opens the file, does one short thing and closes it again, and an opener that finds the file locked
retries with growing, jittered sleeps for up to ``lock_timeout`` seconds before giving up with a StoreError.

A read-only connection is sandboxed (``sandbox``): once its own file is open, DuckDB is told to reach no other file
and no network (no ATTACH, COPY, read_csv, extension INSTALL/LOAD) and its configuration is locked, so SQL a user hands
to ``featherweight query`` can read the database and nothing else. It also has limits (``db.limits``): DuckDB's
``memory_limit`` with no temporary files (nothing is spilled next to the database), and a watchdog thread that
interrupts the connection once its time is up (DuckDB has no statement timeout); either ends as a ``QueryLimitError``.

Every connection, read-only or writable, is opened with extension auto-install and auto-load switched off in its
``config`` (so they apply before anything runs): a file DuckDB would hand to an extension (a SQLite file) must not
make it reach the network. A file that is not DuckDB's at all is refused before DuckDB sees it. A writable connection
creates new files in the storage format of ``STORAGE_COMPATIBILITY`` so any DuckDB 1.x shell can open them.
"""

from __future__ import annotations

import os
import random
import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb

from db.errors import ForeignDatabaseError, LockedError, QueryLimitError, StoreError
from db.limits import DEFAULT_LIMITS, QueryLimits

DEFAULT_DB_PATH = "runs/featherweight.duckdb"
DB_ENV_VAR = "FEATHERWEIGHT_DB"
# The storage format new files are written in: one DuckDB 1.1 reads, so the DuckDB shell users have (1.1 or newer,
# e.g. duckdb-cli from PyPI) opens them. A newer DuckDB writes its own newer format by default, which older shells
# refuse ("database file with version number 69, but we can only read versions between 64 and 68"). An existing
# file keeps the format it was created with.
STORAGE_COMPATIBILITY = "v1.1.0"
# Passed to every connect: DuckDB would otherwise download and load an extension on its own (e.g. sqlite_scanner
# when handed a SQLite file), reaching the network from a command that promises not to.
NO_EXTENSION_AUTOLOADING = {"autoinstall_known_extensions": False, "autoload_known_extensions": False}
DUCKDB_MAGIC = b"DUCK"  # bytes 8..11 of every DuckDB database file (after the header's checksum)
SQLITE_MAGIC = b"SQLite format 3\x00"


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


def check_duckdb_file(path: Path) -> None:
    """ForeignDatabaseError unless ``path`` is missing, empty, or starts like a DuckDB database file: another
    program's file (SQLite, Parquet, text) is refused before DuckDB opens it (and perhaps looks for an extension)."""
    try:
        if not path.is_file() or path.stat().st_size == 0:
            return
        with open(path, "rb") as f:
            head = f.read(16)
    except OSError as e:
        raise StoreError(f"cannot read {path}: {e.strerror or e}") from None
    if head[8:12] == DUCKDB_MAGIC:
        return
    kind = "a SQLite database" if head.startswith(SQLITE_MAGIC) else "another kind of file"
    raise ForeignDatabaseError(f"{path} is not a DuckDB database (it is {kind}); featherweight leaves it untouched")


def limited_config(limits: QueryLimits) -> dict[str, Any]:
    """The connect settings of a read-only connection with ``limits``: its memory, and no temporary directory (no
    file is written next to the database; a query that would spill runs out of memory instead)."""
    return {**NO_EXTENSION_AUTOLOADING, "memory_limit": f"{limits.memory_bytes}B", "temp_directory": ""}


def _caused_by(e: BaseException | None, kind: type[BaseException]) -> bool:
    seen = set()
    while e is not None and id(e) not in seen:
        if isinstance(e, kind):
            return True
        seen.add(id(e))
        e = e.__cause__ or e.__context__
    return False


class Watchdog:
    """Interrupts ``con`` once ``timeout_s`` have passed, and keeps interrupting it (DuckDB forgets an interrupt
    that arrives between two statements) until ``stop()``. ``fired`` says whether the time ran out."""

    INTERVAL_S = 0.05

    def __init__(self, con: duckdb.DuckDBPyConnection, timeout_s: float):
        self.con = con
        self.timeout_s = timeout_s
        self.fired = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="featherweight-query-timeout", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        if self._stop.wait(min(self.timeout_s, threading.TIMEOUT_MAX)):  # a year or a century: the same
            return
        self.fired = True
        while not self._stop.is_set():
            try:
                self.con.interrupt()
            except duckdb.Error:  # closing under us: nothing left to interrupt
                return
            self._stop.wait(self.INTERVAL_S)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def limit_error(e: BaseException, limits: QueryLimits, timed_out: bool) -> QueryLimitError | None:
    """The QueryLimitError ``e`` amounts to (an interrupt after the time ran out, DuckDB out of memory), else None."""
    if isinstance(e, QueryLimitError):
        return None
    if timed_out and _caused_by(e, duckdb.InterruptException):
        return QueryLimitError(limits.timeout_message())
    if _caused_by(e, duckdb.OutOfMemoryException):
        return QueryLimitError(limits.memory_message())
    return None


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
    """Opens ``path`` on demand. ``on_open(con)``, if given, runs on every fresh connection (e.g. temp views).

    A read-only connector applies ``limits`` (default ``db.limits.DEFAULT_LIMITS``) to each connection: the time
    counts from the open to the close, the memory is DuckDB's; a writable one has none (the sweep's writer)."""

    def __init__(
        self,
        path: Path,
        read_only: bool,
        lock_timeout: float,
        on_open: Callable[[duckdb.DuckDBPyConnection], None] | None = None,
        limits: QueryLimits | None = None,
    ):
        self.path = path
        self.read_only = read_only
        self.lock_timeout = float(lock_timeout)
        self.on_open = on_open
        self.limits = (limits or DEFAULT_LIMITS) if read_only else None

    def _connect_once(self) -> duckdb.DuckDBPyConnection:
        check_duckdb_file(self.path)
        if self.limits is not None:
            con = duckdb.connect(str(self.path), read_only=True, config=limited_config(self.limits))
            try:
                sandbox(con)
            except BaseException:
                con.close()
                raise
            return con
        # Closing checkpoints the write-ahead log into the file. Skipping that (disable_checkpoint_on_shutdown) saves
        # ~25 ms a write at first, but every later open replays the whole WAL: measured, 400 trials later a write
        # took 0.35 s and a read-only open 0.7 s. So each write pays its checkpoint.
        return duckdb.connect(
            str(self.path),
            config={**NO_EXTENSION_AUTOLOADING, "storage_compatibility_version": STORAGE_COMPATIBILITY},
        )

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
                if self.limits is not None and (err := limit_error(e, self.limits, timed_out=False)) is not None:
                    raise err from e
                raise StoreError(f"cannot open {self.path}: {first_line(e)}") from e
        watchdog = Watchdog(con, self.limits.timeout_s) if self.limits is not None else None
        try:
            if self.on_open is not None:
                self.on_open(con)
            yield con
        except Exception as e:
            if self.limits is not None and (err := limit_error(e, self.limits, watchdog.fired)) is not None:
                raise err from e
            raise
        finally:
            if watchdog is not None:
                watchdog.stop()
            con.close()

    def transaction(self, fn: Callable[[duckdb.DuckDBPyConnection], Any]) -> Any:
        """Open the file, run ``fn(con)`` in one transaction, commit (or roll back on an exception), close."""
        with self.connect() as con:
            return run_in_transaction(con, lambda: fn(con))
