"""Small helpers the benchmark scripts share (imported as ``_util``: a script's own folder is first on sys.path)."""

from __future__ import annotations

import os
import statistics


def load_average() -> str:
    """The 1, 5 and 15 minute load averages, printed next to every figure: these machines are shared."""
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def latency_summary(samples_ms: list[float]) -> str:
    """``median / p95 / max`` of latencies in milliseconds, and how many there were."""
    if not samples_ms:
        return "no samples"
    s = sorted(samples_ms)
    p95 = s[min(len(s) - 1, int(0.95 * len(s)))]
    return f"median {statistics.median(s):7.1f} ms   p95 {p95:7.1f} ms   max {s[-1]:7.1f} ms   (n={len(s)})"
