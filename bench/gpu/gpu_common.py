"""What the GPU benchmark's parts share: the student they measure, how a part reports its result to the parent,
printing, and the SST-2 data (found under ``--data``, cut to a subset for quick runs). Imported by name: the
benchmark's folder is first on sys.path when ``bench_gpu.py`` runs."""

from __future__ import annotations

import os
from pathlib import Path

RESULT = "BENCH_RESULT "  # a child's result line: this prefix, then its JSON
ARCH, EMB, DIM, VOCAB = "bilstm", "hash", 25, 5000


def say(line: str = "") -> None:
    print(line, flush=True)


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


# ---------------------------------------------------------------------------------------------------- data


def find_sst2(data: Path) -> Path:
    """The directory holding SST-2's train.tsv and dev.tsv: ``data`` itself, ``data/SST-2`` or ``data/glue/SST-2``."""
    for d in (data, data / "SST-2", data / "glue" / "SST-2"):
        if (d / "train.tsv").is_file() and (d / "dev.tsv").is_file():
            return d
    raise SystemExit(f"error: no SST-2 train.tsv and dev.tsv in {data}, {data}/SST-2 or {data}/glue/SST-2")


def subset_sst2(src: Path, dst: Path, train_n: int | None, dev_n: int | None) -> Path:
    """A copy of SST-2 with at most ``train_n`` / ``dev_n`` rows (a fixed random subset), as a task directory."""
    import numpy as np

    dst.mkdir(parents=True, exist_ok=True)
    for name, n in (("train.tsv", train_n), ("dev.tsv", dev_n)):
        lines = (src / name).read_text(encoding="utf-8").splitlines(keepends=True)
        header, rows = lines[0], lines[1:]
        if n is not None and n < len(rows):
            keep = np.sort(np.random.default_rng(0).choice(len(rows), n, replace=False))
            rows = [rows[i] for i in keep]
        (dst / name).write_text(header + "".join(rows), encoding="utf-8")
    return dst
