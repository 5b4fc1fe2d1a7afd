"""The time and memory limits of a read-only connection (``featherweight query``, reports, exports, status).

DuckDB has no statement timeout and, by default, lets a query use 80% of the machine's memory: one runaway query
would run for ever, hold the database file (the sweep's writer waits meanwhile) and take the memory the sweep needs.
So every read-only open gets limits, with defaults chosen for an experiment database (a few megabytes; the reports'
queries take milliseconds and tens of megabytes):

- ``DEFAULT_TIMEOUT_S`` (60 s): far above any query on such a file, short enough that a mistaken query (a cross join,
  a huge ``range``) gives the file back to the sweep within a minute;
- ``DEFAULT_MEMORY_LIMIT`` (1GB): DuckDB's own memory (``memory_limit``, no spilling to temporary files) and, counted
  separately, the result a command collects; room for any sensible ad-hoc query while a runaway one stops long before
  it hurts the sweep running beside it.

This module imports no DuckDB, so the command line can parse the options without it.
"""

from __future__ import annotations

import argparse
import math
import re
from dataclasses import dataclass

DEFAULT_TIMEOUT_S = 60.0
DEFAULT_MEMORY_LIMIT = "1GB"
MIN_MEMORY_BYTES = 16 * 10**6  # DuckDB needs some blocks to open a file at all (1000 bytes: it cannot)
TIMEOUT_OPTION = "--timeout"
MEMORY_OPTION = "--memory-limit"

_UNITS = {
    "b": 1,
    "bytes": 1,
    "kb": 10**3,
    "mb": 10**6,
    "gb": 10**9,
    "tb": 10**12,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
    "tib": 2**40,
}
_SIZE = re.compile(r"\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*([A-Za-z]*)\s*")
SIZE_EXAMPLES = "a size such as 500MB, 2GB or 1.5GiB"


def parse_memory_size(text: str) -> int:
    """``"1GB"`` -> 10**9 bytes (KB/MB/GB/TB = powers of 1000, KiB/MiB/GiB/TiB = powers of 1024, B or bytes; a
    bare number is bytes). ValueError, naming the value, for anything else or a size under 16MB.

    >>> parse_memory_size("1GB"), parse_memory_size("1.5 GiB"), parse_memory_size("100000000")
    (1000000000, 1610612736, 100000000)
    """
    m = _SIZE.fullmatch(str(text))
    if not m or m.group(2).lower() not in ("", *_UNITS):
        raise ValueError(f"expected {SIZE_EXAMPLES}, got {text!r}")
    size = float(m.group(1)) * _UNITS[m.group(2).lower() or "b"]
    if not math.isfinite(size) or size < MIN_MEMORY_BYTES:
        raise ValueError(f"expected a size of at least 16MB, got {text!r}")
    return int(size)


@dataclass(frozen=True)
class QueryLimits:
    """How long one read-only connection may run (seconds) and how much memory its queries may take."""

    timeout_s: float = DEFAULT_TIMEOUT_S
    memory_limit: str = DEFAULT_MEMORY_LIMIT  # as the user wrote it (named in the error message)

    def __post_init__(self) -> None:
        if not (isinstance(self.timeout_s, (int, float)) and math.isfinite(self.timeout_s) and self.timeout_s > 0):
            raise ValueError(f"timeout must be a number of seconds > 0, got {self.timeout_s!r}")
        parse_memory_size(self.memory_limit)

    @property
    def memory_bytes(self) -> int:
        return parse_memory_size(self.memory_limit)

    def timeout_message(self) -> str:
        return f"query stopped after the {self.timeout_s:g} s time limit ({TIMEOUT_OPTION})"

    def memory_message(self, what: str = "query") -> str:
        return f"{what} exceeded the memory limit of {self.memory_limit} ({MEMORY_OPTION})"


DEFAULT_LIMITS = QueryLimits()


# ---- the command-line options -----------------------------------------------------------------------------------


def _timeout_arg(value: str) -> float:
    try:
        x = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds > 0, got {value!r}") from None
    if not (math.isfinite(x) and x > 0):
        raise argparse.ArgumentTypeError(f"expected a number of seconds > 0, got {value!r}")
    return x


def _memory_arg(value: str) -> str:
    try:
        parse_memory_size(value)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    return value.strip()


def add_limit_args(p: argparse.ArgumentParser) -> None:
    """``--timeout SECONDS`` and ``--memory-limit SIZE`` (a bad value: one error line naming the option)."""
    p.add_argument(
        TIMEOUT_OPTION,
        type=_timeout_arg,
        default=DEFAULT_TIMEOUT_S,
        metavar="SECONDS",
        help=f"stop a database query that runs longer than this (default: {DEFAULT_TIMEOUT_S:g})",
    )
    p.add_argument(
        MEMORY_OPTION,
        type=_memory_arg,
        default=DEFAULT_MEMORY_LIMIT,
        metavar="SIZE",
        help=f"stop a database query whose work or result needs more memory, e.g. 500MB, 4GB (default: "
        f"{DEFAULT_MEMORY_LIMIT})",
    )


def limits_from_args(args: argparse.Namespace) -> QueryLimits:
    return QueryLimits(
        timeout_s=getattr(args, "timeout", DEFAULT_TIMEOUT_S),
        memory_limit=getattr(args, "memory_limit", DEFAULT_MEMORY_LIMIT),
    )
