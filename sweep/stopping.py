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

import _thread
import contextlib
import os
import shlex
import signal
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

EXIT_INTERRUPTED = 130  # 128 + SIGINT
EXIT_TERMINATED = 143  # 128 + SIGTERM

_state = {"installed": False, "terminated": False, "ray_lost": False}


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


def _local_ray_processes() -> list:
    """The processes (``subprocess.Popen``) of the local Ray this driver started; none when it joined a cluster or
    has not started Ray."""
    try:
        import ray

        node = ray._private.worker._global_node
        return [i.process for infos in node.all_processes.values() for i in infos if i.process is not None]
    except Exception:
        return []


def _ray_lost(procs: list, within_s: float) -> bool:
    """Whether one of ``procs`` ends within ``within_s`` (returns as soon as one has)."""
    deadline = time.monotonic() + within_s
    while True:
        if any(p.poll() is not None for p in procs):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.1)


def _watch_ray(procs: list, within_s: float = 60.0) -> None:
    """While Tune stops gracefully: should the local Ray still go (its processes were slow to die of the same
    SIGTERM), interrupt the main thread instead of letting it wait for a GCS that no longer answers."""

    def watch() -> None:
        if _ray_lost(procs, within_s) and _state["installed"]:
            _state["ray_lost"] = True
            _thread.interrupt_main()

    threading.Thread(target=watch, name="featherweight-ray-watch", daemon=True).start()


def _on_sigterm(signum, frame) -> None:
    """SIGTERM as Ctrl-C. The local Ray runs in a process group of its own (``sweep.tuner``), so a SIGTERM sent to
    the driver's process group reaches the driver alone. One sent to every process of the job (a cgroup kill) reaches
    Ray's processes too (they ignore Ctrl-C, not SIGTERM): its services die and its GCS stops serving, and Tune could
    not stop gracefully; the driver then stops at once (the runner still records the sweep)."""
    _state["terminated"] = True
    procs = _local_ray_processes()
    if _ray_lost(procs, 1.0 if procs else 0.0):
        _state["ray_lost"] = True
        raise KeyboardInterrupt
    on_sigint = signal.getsignal(signal.SIGINT)
    if callable(on_sigint) and on_sigint is not signal.default_int_handler:
        if procs:
            _watch_ray(procs)
        on_sigint(signal.SIGINT, frame)  # Tune's handler while it runs trials: stop gracefully, as on Ctrl-C
        return
    raise KeyboardInterrupt


def exit_now_if_ray_was_terminated(status: int) -> None:
    """After a SIGTERM that reached the local Ray's own processes too, Ray's shutdown at exit would wait a minute for
    a GCS that no longer answers and then fail: kill what is left of that Ray and exit with ``status`` at once (the
    sweep is recorded by then). Returns when Ray was not hit."""
    if not _state.get("ray_lost"):
        return
    procs = _local_ray_processes()
    for p in procs:
        with contextlib.suppress(OSError):
            p.kill()
    for p in procs:
        with contextlib.suppress(Exception):
            p.wait(timeout=10)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


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
    _state.update(installed=True, terminated=False, ray_lost=False)
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
    # deferred: loads duckdb only when called (importing this module does not)
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
    return f"{featherweight_command()} db {action}{db_args(spec.database_as_written, spec.database)}"
