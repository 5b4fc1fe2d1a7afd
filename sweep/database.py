"""The sweep's experiment database as the driver uses it (:class:`SweepDatabase`): checked before Ray starts,
opened once, and kept in step with the journal every trial record is appended to first (``db.journal``)."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from analysis.views import open_store
from db.errors import LockedError
from db.journal import Journal, apply_journal
from featherweight_core.errors import OutputError
from sweep.callback import journal_notice
from sweep.spec import SweepSpec
from sweep.stopping import db_command

DB_WAIT_S = 600.0  # how long the driver waits for a reader holding the database (results are journaled meanwhile)


def check_database_path(database: Path) -> None:
    """The database must be a file this process can write, or not exist yet: one error line before Ray starts or
    anything is written (the directory itself is checked by ``checked_output_dir``)."""
    if database.is_dir():
        raise OutputError(f"database: {database} is a directory; expected a DuckDB file (or a path where one can go)")
    if database.exists() and not database.is_file():
        raise OutputError(f"database: {database} is not a regular file; expected a DuckDB file")
    if database.is_file() and not os.access(database, os.R_OK | os.W_OK):
        raise OutputError(f"database: {database} cannot be written (permission denied)")
    if database.is_file() and not os.access(database.parent, os.W_OK | os.X_OK):  # DuckDB writes its WAL beside it
        raise OutputError(f"database: {database.parent} cannot be written (permission denied)")


@dataclass(frozen=True)
class SweepDatabase:
    """Where sweep ``name`` records its results: the database ``path`` and the ``journal_path``; ``sync_command``:
    the command that applies the journal later, as printed."""

    name: str
    path: Path
    journal_path: Path
    sync_command: str

    @classmethod
    def of(cls, spec: SweepSpec) -> SweepDatabase:
        return cls(spec.name, spec.database, spec.journal_path, db_command(spec, "sync"))

    def check(self) -> None:
        check_database_path(self.path)

    def open(self, lock_timeout: float = DB_WAIT_S):
        """The store (``db.store.ExperimentStore``; installs or updates the analysis views the compression stage's
        selection reads); waits up to ``lock_timeout`` for a reader holding the file."""
        return open_store(self.path, lock_timeout=lock_timeout)

    def sync(self, store, say: Callable[[str], None]) -> int:
        """Apply the journal's records the database lacks (see ``db.journal``). When another process holds the file,
        say so and wait for it (``store``'s lock timeout); the records are safe in the journal meanwhile."""
        journal = Journal(self.journal_path)
        if not journal.path.is_file():
            return 0
        notice = journal_notice(self.journal_path)
        try:
            n = apply_journal(self.open(lock_timeout=1.0), journal, self.name)
        except LockedError as e:
            notice.locked(e)
            say(
                f"waiting (up to {store.lock_timeout:.0f} s) for the database: {e}; every result is safe in"
                f" {journal.path}, and `{self.sync_command}` applies it later"
            )
            n = apply_journal(store, journal, self.name)
        notice.written()
        return n
