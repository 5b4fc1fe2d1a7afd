"""The database's user error."""

from __future__ import annotations

from featherweight_core.errors import UserError


class StoreError(UserError, ValueError):
    """A database problem the user can act on (missing file, locked file, bad SQL, unknown sweep or trial).

    Problems only a bug can cause (a view that fails to install, a broken migration) are plain exceptions instead.
    """


class LockedError(StoreError):
    """Another process held the database file for longer than this opener was willing to wait."""


class QueryLimitError(StoreError):
    """A read-only query ran past its time limit or needed more than its memory limit (``db.limits``)."""


class ForeignDatabaseError(StoreError):
    """The file is not a Featherweight experiment database (another program's DuckDB file, or not DuckDB at all):
    it is left untouched."""
