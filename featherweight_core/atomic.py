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
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any


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
    umask = os.umask(0)
    os.umask(umask)
    return umask


@contextlib.contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Build a directory in a fresh temporary sibling of ``path`` (the ``with`` target), then swap it into place.

    On leaving the block normally, an existing ``path`` is renamed aside, the new directory renamed to ``path``
    and the old one deleted: a reader finds the old directory or the complete new one, never a half-written one
    (between the two renames, ``path`` is briefly absent). If the block raises, ``path`` is left as it was and the
    temporary directory is deleted. Whether an existing ``path`` may be replaced is the caller's decision.

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
