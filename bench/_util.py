"""Small helpers the benchmark scripts share (imported as ``_util``: a script's own folder is first on sys.path)."""

from __future__ import annotations

import os
import statistics
from pathlib import Path

DATA_ENV = "FEATHERWEIGHT_SHARED_DATA"


def data_path(given: str | Path | None, subdir: str, flag: str) -> Path:
    """Where a benchmark's data is: ``given`` (its command-line argument ``flag``), else ``subdir`` of the directory
    named by the ``FEATHERWEIGHT_SHARED_DATA`` environment variable. There is no default location: with neither,
    the script stops with a message saying what to pass."""
    if given:
        return Path(given)
    root = os.environ.get(DATA_ENV)
    if root:
        return Path(root) / subdir
    raise SystemExit(f"error: pass {flag} PATH, or set {DATA_ENV} to a data directory that holds {subdir}/")


def load_average() -> str:
    """The 1, 5 and 15 minute load averages, printed next to every figure: other work on the machine slows a benchmark down."""
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def latency_summary(samples_ms: list[float]) -> str:
    """``median / p95 / max`` of latencies in milliseconds, and how many there were."""
    if not samples_ms:
        return "no samples"
    s = sorted(samples_ms)
    p95 = s[min(len(s) - 1, int(0.95 * len(s)))]
    return f"median {statistics.median(s):7.1f} ms   p95 {p95:7.1f} ms   max {s[-1]:7.1f} ms   (n={len(s)})"
