"""Augmentation throughput (source sentences/s) in embedding mode on an SST-2 train slice, 1 vs 2 worker processes.

    .venv/bin/python bench/bench_augment.py --n 10000

Word vectors are trained on the full SST-2 training text first (timed separately, cached under --cache-dir);
p=0.4, N=20, K=15 as in TinyBERT. Output goes to a temporary directory.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from _util import data_path  # noqa: E402 (bench/ is on sys.path when a script runs)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=None, help="GLUE data directory (default: $FEATHERWEIGHT_SHARED_DATA/glue)")
    ap.add_argument("--n", type=int, default=10000, help="first N rows of SST-2 train")
    ap.add_argument("--N", type=int, default=20)
    ap.add_argument("--workers", default="1,2")
    ap.add_argument("--cache-dir", default=".cache/featherweight")
    args = ap.parse_args()
    args.data = data_path(args.data, "glue", "--data")

    from featherweight_core.data.loading import load_task_data
    from featherweight_core.data.tasks import get_task
    from featherweight_core.data.wordvectors import task_word_vectors
    from featherweight_core.teacher.augment import AugmentConfig, augment_to_file

    data = load_task_data(get_task("sst2"), args.data)
    t0 = time.perf_counter()
    kv, path = task_word_vectors(data, args.cache_dir)
    vec_s = time.perf_counter() - t0
    report = {
        "bench": "augment_embedding",
        "rows": args.n,
        "N": args.N,
        "p": 0.4,
        "K": 15,
        "vectors": f"word2vec d{kv.vector_size} on SST-2 train ({len(kv.index_to_key):,} words)",
        "vectors_seconds_or_cache_load": round(vec_s, 1),
        "cpu_count": os.cpu_count(),
        "loadavg_start": [round(x, 2) for x in os.getloadavg()],
    }
    with tempfile.TemporaryDirectory() as tmp:
        for w in [int(x) for x in args.workers.split(",")]:
            cfg = AugmentConfig(n=args.N, workers=w, chunk_size=500)
            rep = augment_to_file(data, Path(tmp) / f"w{w}.parquet", cfg, vectors=kv, max_examples=args.n)
            size = (Path(tmp) / f"w{w}.parquet").stat().st_size
            report[f"workers_{w}"] = {
                "seconds": round(rep.seconds, 2),
                "source_sentences_per_second": round(rep.sentences_per_second, 1),
                "augmented_rows": rep.kept,
                "augmented_rows_per_second": round(rep.kept / rep.seconds, 1),
                "file_mb": round(size / 1e6, 1),
            }
        report["label_table_last"] = rep.label_table()
    report["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
