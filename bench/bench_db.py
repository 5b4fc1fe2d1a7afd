"""Experiment-database write latency: ``ExperimentStore.record_trial`` per call, as the sweep driver pays it.

Each write opens the DuckDB file, runs one transaction (trial + results + per-epoch history) and closes it (which
checkpoints). Baseline measured in the same run: a bare ``duckdb.connect`` + one-row INSERT + close on a similar file,
i.e. the floor that the open/close-per-write contract imposes. Also: a read-only ``query`` of the ``trial_results``
view (what ``featherweight query`` pays) and a skyline query, as the database grows.

    .venv/bin/python bench/bench_db.py [--trials 1000] [--epochs 10]

Prints figures, asserts nothing. The load average is printed with the figures: other work on the machine slows
the writes down.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import duckdb  # noqa: E402
from _util import latency_summary  # noqa: E402

from analysis.views import open_store  # noqa: E402
from tests.fakes import make_record  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=1000)
    ap.add_argument("--epochs", type=int, default=10, help="history rows per trial")
    ap.add_argument("--window", type=int, default=100, help="report latency per window of this many writes")
    args = ap.parse_args()

    print(f"duckdb {duckdb.__version__}; load average {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} ")
    with tempfile.TemporaryDirectory() as tmp:
        base_path = Path(tmp) / "baseline.duckdb"
        con = duckdb.connect(str(base_path))
        con.execute("CREATE TABLE t (sweep VARCHAR, trial_id VARCHAR, score DOUBLE, PRIMARY KEY (sweep, trial_id))")
        con.close()
        baseline = []
        for i in range(100):
            t0 = time.perf_counter()
            con = duckdb.connect(str(base_path))
            con.execute("INSERT INTO t VALUES ('s', ?, 0.5)", [f"t{i}"])
            con.close()
            baseline.append((time.perf_counter() - t0) * 1000)
        base_med = statistics.median(baseline)
        print(f"baseline   duckdb open + 1-row INSERT + close     {latency_summary(baseline)}")

        store = open_store(Path(tmp) / "fw.duckdb")
        store.start_sweep("bench", {}, "bench", tmp)
        history = [
            {
                "epoch": e,
                "train_loss": 1.0 / e,
                "score": 0.8,
                "seconds": 2.0,
                "samples_per_second": 900.0,
                "metrics": {"accuracy": 0.8},
            }
            for e in range(1, args.epochs + 1)
        ]
        reader = None
        window: list[float] = []
        all_writes: list[float] = []
        for i in range(args.trials):
            rec = make_record("bench", f"t{i:06d}", seed=i, history=history)
            t0 = time.perf_counter()
            store.record_trial(rec)
            dt = (time.perf_counter() - t0) * 1000
            window.append(dt)
            all_writes.append(dt)
            if len(window) == args.window or i == args.trials - 1:
                reader = reader or open_store(store.path, read_only=True)
                t0 = time.perf_counter()
                reader.query("SELECT count(*) FROM trial_results")
                q_ms = (time.perf_counter() - t0) * 1000
                t0 = time.perf_counter()
                reader.query("SELECT * FROM skyline WHERE sweep = 'bench'")
                s_ms = (time.perf_counter() - t0) * 1000
                print(
                    f"trials {i + 1 - len(window):>5}-{i + 1:<5} record_trial {latency_summary(window)}   "
                    f"ratio vs baseline {statistics.median(window) / base_med:4.1f}x   "
                    f"read-only query {q_ms:6.1f} ms   skyline {s_ms:6.1f} ms"
                )
                window = []
        t0 = time.perf_counter()
        again = store.record_trial(make_record("bench", "t000000", history=history))
        print(f"re-record of a finished trial (no-op, returned {again}): {(time.perf_counter() - t0) * 1000:.1f} ms")
        size = os.path.getsize(store.path)
        print(f"all {args.trials} writes: {latency_summary(all_writes)}; file {size / 1e6:.1f} MB")
        print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
