"""The one user-error base class.

Every exception the code raises *on purpose* because the user's input is wrong (a bad value, a missing or malformed
file, a spec that cannot run) derives from :class:`UserError`. The command line prints such an error as one
``error: ...`` line and exits with status 2. Anything else that escapes is a bug: the command line lets it show its
traceback (exit status 1), so it gets reported instead of being mistaken for a user's mistake.

Subclasses also derive from the built-in exception they stand for (``ValueError`` mostly), so library callers can
keep catching those.
"""

from __future__ import annotations


class UserError(Exception):
    """Raised on purpose for input the user can fix; its message names the bad value or file and what was expected."""


class InputFileError(UserError, FileNotFoundError):
    """A file or directory the user named does not exist or cannot be used."""


class ConfigError(UserError, ValueError):
    """A setting, or a combination of settings, the user chose cannot work: an unknown arch, optimizer or task, a
    value out of range, command-line options that contradict each other."""


class OutputError(UserError, OSError):
    """An output location the user named cannot be written: not creatable, not writable, not a directory, or on a
    filesystem with too little free space."""
