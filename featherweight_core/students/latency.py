"""Timing models on the CPU, interleaved: the models take turns, a short block of items each, so a change in the
machine's load falls on all of them alike and the ratio of two (a speed-up) is measured under the same conditions,
while each is timed warm, as it runs serving requests on its own.

:func:`interleaved_times` is the one timing loop (teacher compression's ``cpu_latencies_ms`` uses it too);
:func:`measure_latencies` times several :class:`Timed` models at batch size 1 (median and 90th percentile
milliseconds) and in large batches (examples per second), and returns one :class:`Latency` per model.
"""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch

THROUGHPUT_BATCH = 256
BLOCK = 10  # items a model runs back to back before the next model's turn (interleaved_times)


@dataclass
class Timed:
    """One model to time. run: calls the model on one input; singles: inputs of one example each; batches: inputs
    of up to :data:`THROUGHPUT_BATCH` examples with ``batch_rows`` their sizes (empty: no throughput)."""

    name: str  # what the model is: trial | teacher
    runtime: str  # torch | onnxruntime
    precision: str  # float | int8
    run: Callable[[Any], Any]
    singles: Sequence[Any]
    batches: Sequence[Any] = ()
    batch_rows: Sequence[int] = ()


@dataclass
class Latency:
    """CPU speed of one model in one runtime: batch-1 latency (median and 90th percentile, milliseconds, over
    ``examples`` single examples repeated), throughput (examples per second in batches of ``batch_size``), with the
    thread count and the machine it was measured on."""

    model: str
    runtime: str
    precision: str
    p50_ms: float
    p90_ms: float
    throughput: float | None
    batch_size: int
    threads: int
    examples: int
    machine: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def machine() -> str:
    """The machine as latency rows record it: processor, core count and host name."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), cpu)
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, {platform.node()}"


def interleaved_times(
    calls: Sequence[Callable[[int], Any]],
    items: Sequence[int],
    min_seconds: float = 1.0,
    warmup: int = 3,
    block: int = BLOCK,
) -> list[list[float]]:
    """Seconds of each call per item. The calls take turns block by block: for each run of ``block`` consecutive
    ``items``, ``calls[0]`` runs on them back to back, then ``calls[1]``, and so on, each after one untimed call on
    the block's first item. So each model is timed as it runs when it serves requests on its own, not right after
    another model (a 90 MB teacher) has pushed its code and weights out of the CPU's caches, while a change in the
    machine's load still falls on all of them alike. Passes over ``items`` repeat until ``min_seconds`` have passed
    (at least one pass); each call first runs on its first ``warmup`` items untimed."""
    items = list(items)
    for call in calls:
        for i in items[:warmup]:
            call(i)
    times: list[list[float]] = [[] for _ in calls]
    start = time.perf_counter()
    while True:
        step = max(1, block)
        for b in range(0, len(items), step):
            chunk = items[b : b + step]
            for j, call in enumerate(calls):
                call(chunk[0])  # back into the caches
                for i in chunk:
                    t0 = time.perf_counter()
                    call(i)
                    times[j].append(time.perf_counter() - t0)
        if time.perf_counter() - start >= min_seconds:
            break
    return times


@torch.inference_mode()
def measure_latencies(
    models: Sequence[Timed],
    n: int = 100,
    min_seconds: float = 1.0,
    batch_seconds: float = 1.0,
    warmup: int = 3,
) -> list[Latency]:
    """Batch-1 latency of each model over its first ``n`` single inputs, interleaved (the models take turns, a block
    of examples each: :func:`interleaved_times`, ``min_seconds`` in all), then throughput over the batches, interleaved
    the same way (``batch_seconds``). Uses the calling process' torch thread count (ONNX Runtime sessions are built
    with it)."""
    if not models or not all(len(m.singles) for m in models):
        raise ValueError("measure_latencies needs models with at least one input each")
    items = range(min(n, *(len(m.singles) for m in models)))
    single = interleaved_times(
        [lambda i, m=m: m.run(m.singles[i]) for m in models], items, min_seconds=min_seconds, warmup=warmup
    )
    batched = [m for m in models if len(m.batches)]
    rates: dict[int, float] = {}
    if batched:
        k = range(max(len(m.batches) for m in batched))
        times = interleaved_times(
            [lambda i, m=m: m.run(m.batches[i % len(m.batches)]) for m in batched], k, batch_seconds, warmup=1
        )
        for m, t in zip(batched, times, strict=True):
            rows = sum(m.batch_rows[i % len(m.batches)] for i in range(len(t)))
            rates[id(m)] = rows / float(np.sum(t))
    where, threads = machine(), torch.get_num_threads()
    out = []
    for m, t in zip(models, single, strict=True):
        ms = np.asarray(t) * 1000.0
        out.append(
            Latency(
                m.name,
                m.runtime,
                m.precision,
                float(np.median(ms)),
                float(np.percentile(ms, 90)),
                rates.get(id(m)),
                max(m.batch_rows, default=0),
                threads,
                len(items),
                where,
            )
        )
    return out


def latency_table(latencies: Sequence[Latency], reference: Latency | None = None) -> list[str]:
    """Lines of a text table of ``latencies``; with ``reference`` (the teacher, or the float model), each row's
    speed-up over it at batch 1."""
    head = f"  {'model':<10} {'runtime':<12} {'precision':<9} {'p50 ms':>8} {'p90 ms':>8} {'ex/s @256':>10}"
    lines = [head + ("  speed-up" if reference else "")]
    for lat in latencies:
        rate = f"{lat.throughput:,.0f}" if lat.throughput else "-"
        line = (
            f"  {lat.model:<10} {lat.runtime:<12} {lat.precision:<9} {lat.p50_ms:>8.3f} {lat.p90_ms:>8.3f} {rate:>10}"
        )
        if reference:
            line += f"  {reference.p50_ms / lat.p50_ms:>7.2f}x"
        lines.append(line)
    threads = {lat.threads for lat in latencies}
    lines.append(f"  batch 1: median / 90th percentile; {', '.join(map(str, sorted(threads)))} thread(s)")
    return lines
