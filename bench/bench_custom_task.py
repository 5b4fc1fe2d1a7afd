"""A custom task end to end: SST-2 recast as the user's own CSV files, swept like any task.

The GLUE SST-2 TSVs become a directory of CSVs with string labels (``negative`` / ``positive``) and an extra column:
``train.csv`` (train minus a stratified held-out set), ``dev.csv`` (GLUE dev) and ``test.csv`` (the held-out set,
since GLUE's test labels are not public). A sweep over FFN and BiLSTM students with hash and char embeddings, scored
by macro-F1, runs through both stages (distillation grid, then pruning + quantization of the skyline) into DuckDB.

Printed: the time of the whole sweep, each trial's dev and test macro-F1 and size, and the skyline.

    export FEATHERWEIGHT_SHARED_DATA=data        # holding glue/SST-2; or pass --data
    .venv/bin/python bench/bench_custom_task.py  # ~3-5 min on 2 cores
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _util import data_path, load_average  # noqa: E402

LABELS = ("negative", "positive")


def write_csv_task(glue: Path, out: Path, test_rows: int, seed: int) -> dict[str, int]:
    """SST-2 TSVs -> train/dev/test CSVs with string labels; returns rows per file."""

    def read(name: str) -> list[tuple[str, int]]:
        with open(glue / "SST-2" / name, newline="") as f:
            return [(r["sentence"], int(r["label"])) for r in csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)]

    train, dev = read("train.tsv"), read("dev.tsv")
    rng = np.random.default_rng(seed)
    labels = np.array([y for _, y in train])
    held = set()
    for y in (0, 1):  # stratified held-out test set
        idx = np.flatnonzero(labels == y)
        held |= set(rng.choice(idx, size=round(test_rows * len(idx) / len(train)), replace=False).tolist())
    files = {
        "train.csv": [r for i, r in enumerate(train) if i not in held],
        "dev.csv": dev,
        "test.csv": [r for i, r in enumerate(train) if i in held],
    }
    out.mkdir(parents=True, exist_ok=True)
    for name, rows in files.items():
        with open(out / name, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["id", "sentiment", "text"])
            w.writerows((i, LABELS[y], text) for i, (text, y) in enumerate(rows))
    return {k: len(v) for k, v in files.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=None, help="GLUE root (default $FEATHERWEIGHT_SHARED_DATA/glue)")
    ap.add_argument("--test-rows", type=int, default=2000)
    ap.add_argument("--max-epochs", type=int, default=2)
    ap.add_argument("--samples", type=int, default=3, help="Optuna compression samples per skyline parent")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--optimizer", default=None, help="default: the thesis' optimizer per arch")
    ap.add_argument("--lr", type=float, default=None)
    args = ap.parse_args()
    glue = data_path(args.data, "glue", "--data")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    from analysis.views import open_store
    from sweep.runner import run_sweep
    from sweep.spec import validate

    with tempfile.TemporaryDirectory(prefix="fw-bench-custom-") as tmp:
        tmp = Path(tmp)
        rows = write_csv_task(glue, tmp / "sst2csv", args.test_rows, seed=0)
        print(f"custom task files: {rows}; load {load_average()}", flush=True)
        spec = validate(
            {
                "name": "sst2csv",
                "storage": str(tmp / "runs"),
                "cache_dir": str(tmp / "cache"),
                "tasks": {
                    "sst2csv": {
                        "data": str(tmp / "sst2csv"),
                        "text_columns": ["text"],
                        "label_column": "sentiment",
                        "labels": list(LABELS),
                        "metric": "macro_f1",
                    }
                },
                "grid": {
                    "archs": ["ffn", "bilstm"],
                    "embeddings": ["hash", "char"],
                    "dims": [25],
                    "vocab_sizes": [5000],
                    "seeds": [0],
                },
                "training": {
                    "max_epochs": args.max_epochs,
                    "patience": args.max_epochs,
                    "optimizer": args.optimizer,
                    "lr": args.lr,
                },
                "resources": {"cpus_per_trial": 1, "num_cpus": args.workers},
                "compress": {
                    "parents": "skyline",
                    "search": {"num_samples": args.samples, "max_concurrent": args.workers},
                },
            }
        )
        t0 = time.perf_counter()
        out = run_sweep(spec, say=lambda line: print(f"  {line}", flush=True))
        wall = time.perf_counter() - t0
        store = open_store(spec.database, read_only=True)
        res = store.query(
            "SELECT stage, label, score, macro_f1, test_macro_f1, gzip_bytes, seconds FROM trial_results"
            " WHERE sweep = 'sst2csv' ORDER BY stage DESC, score DESC"
        )
        sky = store.query(
            "SELECT skyline_rank, name, score_value AS dev_macro_f1, size_value AS gzip_bytes FROM skyline"
            " WHERE sweep = 'sst2csv' AND score_measure = 'score' AND size_measure = 'gzip_bytes' ORDER BY skyline_rank"
        )
        print()
        print(
            f"sweep: {out.distill_ran} distillation + {out.compress_ran} compression trials, {out.failed} failed,"
            f" {wall:.0f} s wall ({args.workers} workers, {args.max_epochs} epoch(s), optimizer {args.optimizer or 'thesis'}"
            f" lr {args.lr or 'default'}); load {load_average()}"
        )
        print(res.to_string(index=False, float_format=lambda x: f"{x:.4f}"))
        print("\nskyline (dev macro-F1 vs gzip bytes):")
        print(sky.to_string(index=False, float_format=lambda x: f"{x:.4f}"))


if __name__ == "__main__":
    main()
