"""How a sweep stops early, and what it says about it.

Ctrl-C (SIGINT) and SIGTERM (``kill PID``, a batch scheduler ending the job) stop a sweep the same way: Tune, while
it runs trials, stops gracefully and returns; anywhere else the driver's main thread gets a ``KeyboardInterrupt``.
The runner then records the sweep ``interrupted`` with how far it got and raises :class:`StageStopped`, whose message
says how to resume (a command that works as printed from where the sweep was started); ``sweep.cli`` prints it and
exits 130 after Ctrl-C, 143 after SIGTERM (the shell's 128 + signal number).

Ray's driver installs its own SIGTERM handlers when it starts (a Python one that exits 15 and a native one that dumps
a C++ stack trace first); :func:`sigterm_as_interrupt` installs ours and :func:`reclaim_sigterm` puts it back after
``ray.init``.
"""

from __future__ import annotations

import contextlib
import shlex
import signal
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

EXIT_INTERRUPTED = 130  # 128 + SIGINT
EXIT_TERMINATED = 143  # 128 + SIGTERM

_state = {"installed": False, "terminated": False}


class StageStopped(KeyboardInterrupt):
    """A sweep stopped before its end (Ctrl-C or SIGTERM): the message says how far it got and how to resume. The
    runner raises it so no later stage starts and the sweep is recorded ``interrupted``."""


def terminated() -> bool:
    """Whether this process got SIGTERM while :func:`sigterm_as_interrupt` was active."""
    return _state["terminated"]


def how_stopped() -> str:
    """``"terminated (SIGTERM)"`` or ``"interrupted"``: the first words of a stopped sweep's message."""
    return "terminated (SIGTERM)" if terminated() else "interrupted"


def exit_status() -> int:
    return EXIT_TERMINATED if terminated() else EXIT_INTERRUPTED


def _on_sigterm(signum, frame) -> None:
    _state["terminated"] = True
    on_sigint = signal.getsignal(signal.SIGINT)
    if callable(on_sigint) and on_sigint is not signal.default_int_handler:
        on_sigint(signal.SIGINT, frame)  # Tune's handler while it runs trials: stop gracefully, as on Ctrl-C
        return
    raise KeyboardInterrupt


def reclaim_sigterm() -> None:
    """Install our SIGTERM handler again (after ``ray.init`` replaced it), when :func:`sigterm_as_interrupt` is
    active; otherwise leave Ray's."""
    if _state["installed"] and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _on_sigterm)


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM behaves like Ctrl-C inside the block (main thread only; elsewhere nothing changes)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGTERM)
    _state.update(installed=True, terminated=False)
    signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        yield
    finally:
        _state["installed"] = False
        signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)


# ---- commands printed to the user ----------------------------------------------------------------------------------


def featherweight_command() -> str:
    """How to run ``featherweight`` as printed: the bare name when it is on PATH as this very program (an activated
    environment), otherwise the path of the one next to this Python - relative to the working directory when it is
    under it (``.venv/bin/featherweight`` from the project root), else absolute."""
    import shutil

    here = Path(sys.executable).parent / "featherweight"
    on_path = shutil.which("featherweight")
    if on_path and (not here.is_file() or Path(on_path).resolve() == here.resolve()):
        return "featherweight"
    if not here.is_file():
        return f"{shlex.quote(sys.executable)} -m sweep.cli"
    try:  # shorter when the environment is under the working directory: .venv/bin/featherweight
        rel = str(here.absolute().relative_to(Path.cwd().absolute()))
        return shlex.quote(rel if "/" in rel else f"./{rel}")
    except ValueError:
        return shlex.quote(str(here))


DEFAULT_STORAGE = "runs"  # where `sweep resume` / `sweep status` look without --storage (sweep.commands)


def _path_arg(raw: str, resolved: Path) -> str:
    """A path as the user wrote it when that works from the same directory (relative, no ``~``), else absolute."""
    return shlex.quote(raw if not raw.startswith("~") else str(resolved))


def storage_args(raw_storage: str, storage: Path) -> str:
    """`` --storage DIR`` when ``storage`` is not the default the commands look in (empty otherwise)."""
    if storage == Path(DEFAULT_STORAGE).resolve():
        return ""
    return f" --storage {_path_arg(raw_storage, storage)}"


def db_args(raw_database: str | None, database: Path) -> str:
    """`` --db FILE`` when ``database`` is not the default database of the ``db`` / ``query`` commands."""
    from db.connection import default_db_path

    if database == default_db_path().expanduser().resolve():
        return ""
    return f" --db {_path_arg(raw_database or str(database), database)}"


def resume_command(spec) -> str:
    """``featherweight sweep resume NAME`` with ``--storage`` when the spec's storage is not the default: the
    command that continues ``spec``'s sweep, run from the directory the sweep was started in."""
    return f"{featherweight_command()} sweep resume {spec.name}{storage_args(spec.raw['storage'], spec.storage)}"


def db_command(spec, action: str) -> str:
    """``featherweight db ACTION`` with ``--db`` when the spec's database is not the default one."""
    raw = spec.raw.get("database") or str(Path(spec.raw["storage"]) / "featherweight.duckdb")
    return f"{featherweight_command()} db {action}{db_args(raw, spec.database)}"
