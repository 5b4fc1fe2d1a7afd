"""The analysis views: their SQL lives in ``analysis/sql/NN_name.sql`` (file ``NN_name.sql`` defines view ``name``),
and ``open_store`` opens the experiment database with them installed (writable) or shadowed (read-only).

Every file starts with a header line naming the views it reads, dbt-style::

    -- depends on: trial_results, pareto_points

(``-- depends on: none`` for a view over tables only). The loader installs the views in dependency (topological)
order, ties broken by file number, and refuses a file that reads a view it does not declare, declares an unknown
view, or closes a cycle: a missing declaration would otherwise only show up when a fresh database installs the views
in the wrong order.
"""

from __future__ import annotations

import functools
import heapq
import re
from dataclasses import dataclass
from pathlib import Path

from db.store import ExperimentStore

SQL_DIR = Path(__file__).with_name("sql")
_VIEW_FILE = re.compile(r"^(\d+)_([a-z][a-z0-9_]*)\.sql$")
_HEADER = re.compile(r"^--\s*depends on:\s*(.*?)\s*$", re.IGNORECASE)
_NO_DEPENDENCIES = "none"


class ViewDefinitionError(Exception):
    """A view file breaks the conventions above (a bug in the view SQL, not a user error)."""


@dataclass(frozen=True)
class ViewFile:
    number: int
    name: str
    depends_on: tuple[str, ...]
    sql: str  # the SELECT statement, without a trailing semicolon
    path: Path


def _strip_comments_and_strings(sql: str) -> str:
    sql = re.sub(r"'(?:[^']|'')*'", "''", sql)  # string literals (a view name inside one is no reference)
    sql = re.sub(r"--[^\n]*", "", sql)
    return re.sub(r"/\*.*?\*/", "", sql, flags=re.DOTALL)


def referenced_views(sql: str, names: set[str]) -> set[str]:
    """Which of ``names`` the SQL mentions as an identifier (outside comments and string literals)."""
    body = _strip_comments_and_strings(sql)
    return {n for n in names if re.search(rf"(?<![\w$]){re.escape(n)}(?![\w$])", body, flags=re.IGNORECASE)}


def parse_view_files(sql_dir: Path = SQL_DIR) -> list[ViewFile]:
    """Every view file of ``sql_dir`` in file-number order, with its declared dependencies (headers checked)."""
    files = []
    for path in sorted(Path(sql_dir).glob("*.sql")):
        m = _VIEW_FILE.match(path.name)
        if not m:
            raise ViewDefinitionError(f"{path}: view files are named NN_name.sql (lower-case name)")
        text = path.read_text()
        first = text.split("\n", 1)[0]
        header = _HEADER.match(first)
        if not header:
            raise ViewDefinitionError(f"{path}: must start with '-- depends on: VIEW, ...' (or 'none'), got {first!r}")
        declared = header.group(1).strip()
        deps = (
            () if declared.lower() == _NO_DEPENDENCIES else tuple(d.strip() for d in declared.split(",") if d.strip())
        )
        sql = text.strip().rstrip(";").strip()
        files.append(ViewFile(int(m.group(1)), m.group(2), deps, sql, path))
    names = [f.name for f in files]
    if len(set(names)) != len(names):
        raise ViewDefinitionError(f"{sql_dir}: two files define the same view: {sorted(names)}")
    return files


def order_views(files: list[ViewFile]) -> list[ViewFile]:
    """Check the declarations against the SQL and return the views in dependency order (ties: file number)."""
    by_name = {f.name: f for f in files}
    for f in files:
        unknown = sorted(set(f.depends_on) - set(by_name))
        if unknown:
            raise ViewDefinitionError(f"{f.path.name}: depends on unknown view(s) {', '.join(unknown)}")
        if f.name in f.depends_on:
            raise ViewDefinitionError(f"{f.path.name}: a view cannot depend on itself")
        undeclared = sorted(referenced_views(f.sql, set(by_name) - {f.name}) - set(f.depends_on))
        if undeclared:
            raise ViewDefinitionError(
                f"{f.path.name}: reads view(s) {', '.join(undeclared)} without declaring them in its "
                "'-- depends on:' header"
            )
    waiting = {f.name: set(f.depends_on) for f in files}
    ready = [(f.number, f.name) for f in files if not f.depends_on]
    heapq.heapify(ready)
    out: list[ViewFile] = []
    while ready:
        _, name = heapq.heappop(ready)
        out.append(by_name[name])
        for other, deps in waiting.items():
            if name in deps:
                deps.discard(name)
                if not deps:
                    heapq.heappush(ready, (by_name[other].number, other))
    if len(out) != len(files):
        stuck = sorted(set(by_name) - {f.name for f in out})
        raise ViewDefinitionError(f"dependency cycle among views: {', '.join(stuck)}")
    return out


@functools.lru_cache(maxsize=8)
def _load(sql_dir: str) -> tuple[tuple[str, str], ...]:
    return tuple((f.name, f.sql) for f in order_views(parse_view_files(Path(sql_dir))))


def load_views(sql_dir: str | Path = SQL_DIR) -> tuple[tuple[str, str], ...]:
    """``((view_name, select_sql), ...)`` in installation (dependency) order."""
    return _load(str(Path(sql_dir).resolve()))


def view_names() -> list[str]:
    return [name for name, _ in load_views()]


def open_store(path: str | Path | None = None, read_only: bool = False, **kw) -> ExperimentStore:
    """The experiment database (``path``, default ``$FEATHERWEIGHT_DB`` or runs/featherweight.duckdb) with the analysis
    views: installed when writable, shadowed for this reader when read-only and the file's views are other ones."""
    return ExperimentStore(path, read_only=read_only, views=load_views(), **kw)
