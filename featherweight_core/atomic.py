"""One atomic-write helper: write to a temporary sibling, then rename into place.

A reader (another process, a resumed run) sees the old file or the complete new one, never half of one; a failed
write leaves nothing behind. :func:`atomic_write` does this for files (whatever writes them), :func:`atomic_dir`
for a directory built file by file (a saved model).

>>> import tempfile, pathlib
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> write_text_atomic(d / "a.txt", "hello").read_text()
'hello'
>>> sorted(p.name for p in d.iterdir())
['a.txt']
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import stat
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from featherweight_core.errors import OutputError

# Free space an output directory must have before a command starts writing there (megabytes); the environment
# variable overrides it (0 switches the check off). Generous on purpose: it catches a full disk, not a tight one.
MIN_FREE_MB_ENV = "FEATHERWEIGHT_MIN_FREE_MB"
DEFAULT_MIN_FREE_MB = 50


def atomic_write(path: str | Path, write: Callable[[Path], Any], suffix: str = "") -> Path:
    """Call ``write(tmp)`` on a temporary file next to ``path`` (same filesystem), then rename it to ``path``.

    ``suffix`` is kept on the temporary name for writers that insist on one (``np.savez`` appends ``.npz``).
    The final file gets the mode a plain ``open(path, "w")`` would give (the process umask applies).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".tmp{suffix}", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def write_text_atomic(path: str | Path, text: str) -> Path:
    return atomic_write(path, lambda tmp: tmp.write_text(text))


def write_json_atomic(path: str | Path, obj: Any, indent: int | None = 2) -> Path:
    """``obj`` as JSON (indented by default, newline-terminated)."""
    return write_text_atomic(path, json.dumps(obj, indent=indent) + "\n")


def _umask() -> int:
    """The process umask: read from ``/proc`` where there is one (setting it to read it back would, for a moment,
    give files other threads create a umask of 0)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    umask = os.umask(0o077)
    os.umask(umask)
    return umask


def follow_umask(root: str | Path) -> None:
    """Give ``root`` and everything under it the mode a plain ``open(path, "w")`` / ``mkdir`` would have given them
    (``0o666`` / ``0o777`` less the umask; files with an execute bit keep it): some writers (safetensors, ``mkstemp``,
    ``mkdtemp``) create private ``0o600`` files, and every output should follow the umask as the user set it."""
    umask = _umask()
    root = Path(root)
    if root.is_symlink():
        return
    if root.is_dir():
        os.chmod(root, 0o777 & ~umask)
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = os.path.join(dirpath, name)
            st = os.lstat(p)
            if stat.S_ISDIR(st.st_mode):
                os.chmod(p, 0o777 & ~umask)
            elif stat.S_ISREG(st.st_mode):
                os.chmod(p, (0o777 if st.st_mode & 0o111 else 0o666) & ~umask)


@contextlib.contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Build a directory in a fresh temporary sibling of ``path`` (the ``with`` target), then swap it into place.

    On leaving the block normally, an existing ``path`` is renamed aside, the new directory renamed to ``path``
    and the old one deleted: a reader finds the old directory or the complete new one, never a half-written one
    (between the two renames, ``path`` is briefly absent). If the block raises, ``path`` is left as it was and the
    temporary directory is deleted. Whether an existing ``path`` may be replaced is the caller's decision. The
    directory and its files get the modes the umask gives (:func:`follow_umask`), whatever wrote them.

    >>> import tempfile, pathlib
    >>> out = pathlib.Path(tempfile.mkdtemp()) / "model"
    >>> with atomic_dir(out) as tmp:
    ...     _ = (tmp / "config.json").write_text("{}")
    >>> sorted(p.name for p in out.iterdir()), sorted(p.name for p in out.parent.iterdir())
    (['config.json'], ['model'])
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        os.chmod(tmp, 0o777 & ~_umask())  # as a plain mkdir would make it (mkdtemp makes it private)
        yield tmp
        follow_umask(tmp)  # files written 0600 (safetensors weights) get the umask's mode like every other output
        old = None
        if path.exists() or path.is_symlink():
            old = tmp.with_name(tmp.name[: -len(".tmp")] + ".old")  # unique: tmp's random name
            os.replace(path, old)
        os.replace(tmp, path)
        if old is not None:
            if old.is_dir() and not old.is_symlink():
                shutil.rmtree(old, ignore_errors=True)
            else:
                old.unlink(missing_ok=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # only still there when the block or a rename failed


def min_free_mb() -> float:
    raw = os.environ.get(MIN_FREE_MB_ENV)
    if raw is None or not raw.strip():
        return DEFAULT_MIN_FREE_MB
    try:
        value = float(raw)
    except ValueError:
        raise OutputError(f"{MIN_FREE_MB_ENV}={raw!r}: expected a number of megabytes") from None
    if value != value or value < 0:
        raise OutputError(f"{MIN_FREE_MB_ENV}={raw!r}: expected a number of megabytes >= 0")
    return value


def check_output_dir(path: str | Path, what: str | None = None, min_free: float | None = None) -> list[Path]:
    """Make sure ``path`` is a directory this process can write to, with ``min_free`` MB free (default:
    :func:`min_free_mb`): create it (and missing parents), write and remove a probe file, ask for the free space.

    Returns the directories it created, deepest first (:func:`checked_output_dir` removes them again when the
    command fails). Raises :class:`OutputError` naming ``what`` (default: the directory) on any failure, having
    removed what it created.
    """
    path = Path(path)
    what = what or str(path)
    created: list[Path] = []
    p = path
    while not (p.exists() or p.is_symlink()) and p != p.parent:
        created.append(p)
        p = p.parent
    if not p.is_dir():
        raise OutputError(f"{what}: {p} exists and is not a directory")
    try:
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise OutputError(f"{what}: cannot create the directory ({e.strerror or e})") from None
        try:
            fd, name = tempfile.mkstemp(prefix=".featherweight-probe.", suffix=".tmp", dir=path)
            try:
                os.write(fd, b"probe")
            finally:
                os.close(fd)
                os.unlink(name)
        except OSError as e:
            raise OutputError(f"{what}: cannot write to the directory ({e.strerror or e})") from None
        need = min_free_mb() if min_free is None else min_free
        if need > 0:
            free = shutil.disk_usage(path).free
            if free < need * 1e6:
                raise OutputError(
                    f"{what}: only {free / 1e6:.1f} MB free on its filesystem, need at least {need:g} MB"
                    f" (set {MIN_FREE_MB_ENV} to change the threshold)"
                )
    except BaseException:
        _remove_empty(created)
        raise
    return created


@contextlib.contextmanager
def checked_output_dir(path: str | Path | None, what: str | None = None) -> Iterator[Path | None]:
    """:func:`check_output_dir` before the block (nothing when ``path`` is None); if the block raises, the
    directories the check created are removed again when still empty, so a failed command leaves nothing behind."""
    if path is None:
        yield None
        return
    created = check_output_dir(path, what)
    try:
        yield Path(path)
    except BaseException:
        _remove_empty(created)
        raise


def _remove_empty(dirs: list[Path]) -> None:
    for d in dirs:  # deepest first
        try:
            d.rmdir()
        except OSError:
            return
