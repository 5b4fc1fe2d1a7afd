"""The schema: numbered migrations in ``db/migrations/NNN_name.sql`` (tracked in ``schema_version``) and installing
the views a caller hands over (the store owns no view SQL: ``analysis.views`` does).

A database is Featherweight's when its ``schema_version`` table has the columns and the first migration this code
writes; a DuckDB file with other tables (another program's) is refused by every opener and never changed, while an
empty one (no tables, no views) is adopted by a writable open.

Installed views are remembered by a hash of their SQL in ``meta.views_hash``: a writer re-installs them only when the
text changed; a read-only opener of a file with other view text shadows them with temporary views for its own session.
"""

from __future__ import annotations

import hashlib
import re
import shlex
from collections.abc import Sequence
from pathlib import Path

import duckdb

from db.connection import Connector, first_line, run_in_transaction
from db.errors import ForeignDatabaseError, StoreError
from db.values import utc_now

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
_MIGRATION_FILE = re.compile(r"^(\d+)_(.+)\.sql$")

View = tuple[str, str]  # (view name, SELECT statement)


def migrations() -> list[tuple[int, str, str]]:
    """``[(version, name, sql), ...]`` in version order."""
    out = []
    for path in sorted(MIGRATIONS_DIR.glob("*.sql")):
        m = _MIGRATION_FILE.match(path.name)
        if m:
            out.append((int(m.group(1)), m.group(2), path.read_text()))
    out.sort()
    versions = [v for v, _, _ in out]
    if len(set(versions)) != len(versions):
        raise RuntimeError(f"duplicate migration numbers in {MIGRATIONS_DIR}: {versions}")
    return out


def latest_schema_version() -> int:
    found = migrations()
    return found[-1][0] if found else 0


def views_hash(views: Sequence[View]) -> str:
    h = hashlib.sha256()
    for name, sql in views:
        h.update(name.encode() + b"\0" + sql.encode() + b"\0")
    return h.hexdigest()[:16]


def schema_version(con: duckdb.DuckDBPyConnection) -> int:
    exists = con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'main' AND table_name = 'schema_version'"
    ).fetchone()[0]
    if not exists:
        return 0
    return con.execute("SELECT coalesce(max(version), 0) FROM schema_version").fetchone()[0]


SCHEMA_VERSION_COLUMNS = ("version", "name", "applied_at")
FIRST_MIGRATION = (1, "initial")  # the row every featherweight database has had since its first release
_SHOWN = 4  # relation names a "not featherweight's" message lists


def _user_relations(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Tables and views of the file (every schema of this database, not the temporary ones), as schema.name when
    the schema is not ``main``."""
    rows = con.execute(
        "SELECT schema_name, table_name FROM duckdb_tables() WHERE database_name = current_database() "
        "AND NOT temporary UNION ALL "
        "SELECT schema_name, view_name FROM duckdb_views() WHERE database_name = current_database() "
        "AND NOT temporary AND NOT internal ORDER BY 1, 2"
    ).fetchall()
    return [name if schema == "main" else f"{schema}.{name}" for schema, name in rows]


def is_featherweight(con: duckdb.DuckDBPyConnection, relations: list[str]) -> bool:
    """Whether the file holding ``relations`` is a featherweight database: a ``schema_version`` table of
    featherweight's shape recording its first migration, or (a first migration that did not finish) that table alone
    and empty."""
    if "schema_version" not in relations:
        return False
    cols = [
        r[0]
        for r in con.execute(
            "SELECT column_name FROM duckdb_columns() WHERE database_name = current_database() "
            "AND schema_name = 'main' AND table_name = 'schema_version' ORDER BY column_index"
        ).fetchall()
    ]
    if tuple(cols[:3]) != SCHEMA_VERSION_COLUMNS:
        return False
    rows = con.execute("SELECT version, name FROM schema_version WHERE version = 1").fetchall()
    if rows:
        return tuple(rows[0]) == FIRST_MIGRATION
    return relations == ["schema_version"] and not con.execute("SELECT count(*) FROM schema_version").fetchone()[0]


def check_featherweight(con: duckdb.DuckDBPyConnection, path: Path, empty_ok: bool) -> None:
    """ForeignDatabaseError unless the open file is a featherweight database, or empty (no tables or views) and
    ``empty_ok`` (a writable open adopts it)."""
    relations = _user_relations(con)
    if not relations:
        if empty_ok:
            return
        raise ForeignDatabaseError(
            f"{path} is not a featherweight experiment database (it is an empty DuckDB file: run a sweep on it or "
            f"`featherweight db migrate --db {shlex.quote(str(path))}` first)"
        )
    if is_featherweight(con, relations):
        return
    shown = ", ".join(relations[:_SHOWN]) + (f", ... ({len(relations)} in all)" if len(relations) > _SHOWN else "")
    raise ForeignDatabaseError(
        f"{path} is not a featherweight experiment database (another program's DuckDB file, holding {shown}); "
        "featherweight leaves it untouched: choose another database file"
    )


def install_views(con: duckdb.DuckDBPyConnection, views: Sequence[View], temp: bool) -> None:
    """``CREATE OR REPLACE [TEMP] VIEW`` each, in the order given (a view must come after those it reads)."""
    kind = "TEMP VIEW" if temp else "VIEW"
    for name, sql in views:
        try:
            con.execute(f"CREATE OR REPLACE {kind} {name} AS {sql}")
        except duckdb.Error as e:  # the view SQL is code, not user input: a bug
            raise RuntimeError(f"view {name} failed to install: {first_line(e)}") from e


def installed_views_hash(con: duckdb.DuckDBPyConnection) -> str | None:
    row = con.execute("SELECT value FROM meta WHERE key = 'views_hash'").fetchone()
    return row[0] if row else None


def migrate(connector: Connector, views: Sequence[View], target: int | None = None) -> int:
    """Apply pending migrations up to ``target`` (default: all), each in its own transaction, then install ``views``
    unless they are installed already (none given: installed views are left alone). Returns the schema version."""
    if connector.read_only:
        raise StoreError("cannot migrate a database opened read-only")
    latest = latest_schema_version()
    looked = connector.path.is_file() and connector.path.stat().st_size > 0
    if looked:
        # look before opening for writing: a writable open alone may change another program's file (it folds the
        # file's write-ahead log into it)
        with Connector(connector.path, read_only=True, lock_timeout=connector.lock_timeout).connect() as con:
            check_featherweight(con, connector.path, empty_ok=True)
    with connector.connect() as con:
        if not looked:  # a file another program created since the look
            check_featherweight(con, connector.path, empty_ok=True)

        def current_version() -> int:
            con.execute(
                "CREATE TABLE IF NOT EXISTS schema_version "
                "(version INTEGER PRIMARY KEY, name VARCHAR, applied_at TIMESTAMP)"
            )
            return schema_version(con)

        current = run_in_transaction(con, current_version)
        if current > latest:
            raise StoreError(
                f"{connector.path} has schema version {current}, newer than this code knows ({latest}); "
                "upgrade featherweight"
            )
        for version, name, sql in migrations():
            if version <= current or (target is not None and version > target):
                continue

            def apply(version=version, name=name, sql=sql):
                con.execute(sql)
                con.execute("INSERT INTO schema_version VALUES (?, ?, ?)", [version, name, utc_now()])

            run_in_transaction(con, apply)
            current = version
        if views:
            wanted = views_hash(views)

            def refresh():
                if installed_views_hash(con) != wanted:
                    install_views(con, views, temp=False)
                    con.execute("INSERT OR REPLACE INTO meta VALUES ('views_hash', ?)", [wanted])

            run_in_transaction(con, refresh)
    return current


def check_readable(connector: Connector, views: Sequence[View]) -> bool:
    """StoreError unless the file is a featherweight database at the current schema version. Returns whether the
    installed views differ from ``views`` (then the reader should shadow them with temporary views)."""
    with connector.connect() as con:
        check_featherweight(con, connector.path, empty_ok=False)
        version = schema_version(con)
        if version == 0:
            raise StoreError(f"{connector.path} is not a featherweight experiment database (no schema_version table)")
        latest = latest_schema_version()
        if version < latest:
            raise StoreError(
                f"{connector.path} has schema version {version}, older than {latest}; "
                f"open it once for writing (`featherweight db migrate --db {shlex.quote(str(connector.path))}`) to "
                "upgrade it"
            )
        if version > latest:
            raise StoreError(
                f"{connector.path} has schema version {version}, newer than this code knows ({latest}); "
                "upgrade featherweight"
            )
        installed = installed_views_hash(con)
    return bool(views) and installed != views_hash(views)
