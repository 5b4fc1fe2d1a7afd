"""One atomic-write helper: write to a temporary sibling, then rename into place.

A reader (another process, a resumed run) sees the old file or the complete new one, never half of one; a failed
write leaves nothing behind.

>>> import tempfile, pathlib
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> write_text_atomic(d / "a.txt", "hello").read_text()
'hello'
>>> sorted(p.name for p in d.iterdir())
['a.txt']
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
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
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
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
