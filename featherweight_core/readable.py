"""Opening the input files a user names (data files, teacher logits, student checkpoints, augmented data).

A file that exists but cannot be read - permission denied, a directory where a file belongs, an I/O error - is an
:class:`~featherweight_core.errors.InputFileError` naming the file and the reason, never a traceback. Every loader
of such a file opens it through :func:`check_readable` or :func:`read_input_bytes` first.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from featherweight_core.errors import InputFileError


def unreadable(path: str | Path, what: str, e: OSError) -> InputFileError:
    """The one-line error for ``what`` at ``path`` that ``e`` stopped from being read."""
    if isinstance(e, IsADirectoryError) or e.errno == errno.EISDIR:
        reason = f"a directory, not a {what}"
    else:
        reason = f"cannot read the {what} ({e.strerror or type(e).__name__})"
    return InputFileError(f"{path}: {reason}")


def check_readable(path: str | Path, what: str) -> None:
    """Open ``path`` and read its first byte (non-blocking: a FIFO does not hang); an InputFileError if that fails
    for any reason other than the file being absent (each loader words "not found" itself), or if ``path`` is not a
    regular file."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        raise
    except OSError as e:
        raise unreadable(path, what, e) from None
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISREG(mode):
            os.read(fd, 1)  # an I/O error shows on the first read, not on open
    except OSError as e:
        raise unreadable(path, what, e) from None
    finally:
        os.close(fd)
    if stat.S_ISDIR(mode):
        raise InputFileError(f"{path}: a directory, not a {what}")
    if not stat.S_ISREG(mode):
        raise InputFileError(f"{path}: not a regular file (a pipe, socket or device); expected a {what}")


def read_input_bytes(path: str | Path, what: str) -> bytes:
    """The bytes of ``path``; an InputFileError naming it when it cannot be read."""
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise
    except OSError as e:
        raise unreadable(path, what, e) from None
