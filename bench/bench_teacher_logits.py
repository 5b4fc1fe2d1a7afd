"""Teacher-logit throughput (sentences/s) on SST-2 train, CPU: our length-sorted dynamic padding against naive
batching (input order, every batch padded to max_length) and unsorted dynamic padding, measured in the same run.

    .venv/bin/python bench/bench_teacher_logits.py --teacher .cache/teachers/minilm-sst2 --n 4000

Tokenization is done once and timed separately; the three variants time only the model runs on the same rows.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from _util import data_path  # noqa: E402 (bench/ is on sys.path when a script runs)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--teacher",
        default=".cache/teachers/minilm-sst2",
        help="teacher dir (falls back to .cache/minilm with a fresh head: same cost)",
    )
    ap.add_argument("--data", default=None, help="GLUE data directory (default: $FEATHERWEIGHT_SHARED_DATA/glue)")
    ap.add_argument("--n", type=int, default=4000, help="rows of SST-2 train (random, seed 0); 0 = all 67,349")
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--max-length", type=int, default=64)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    args.data = data_path(args.data, "glue", "--data")

    import numpy as np
    import torch

    from featherweight_core.data.loading import load_task_data
    from featherweight_core.data.tasks import get_task
    from featherweight_core.teacher.batches import tokenize
    from featherweight_core.teacher.loading import load_classifier
    from featherweight_core.teacher.predict import predict_logits

    torch.set_num_threads(args.threads)
    teacher = args.teacher if Path(args.teacher).is_dir() else ".cache/minilm"
    model, tok = load_classifier(teacher, **({} if teacher == args.teacher else {"num_labels": 2}))
    train = load_task_data(get_task("sst2"), args.data).train
    rows = np.arange(len(train))
    if args.n:
        rows = np.sort(np.random.default_rng(0).choice(len(train), args.n, replace=False))
    texts = [train.texts[i] for i in rows]
    t0 = time.perf_counter()
    tokd = tokenize(tok, texts, args.max_length, model)
    tok_s = time.perf_counter() - t0
    load0 = os.getloadavg()
    out = {}
    ref = None
    variants = {
        "sorted_dynamic": {"sort_by_length": True, "fixed_length": False},
        "unsorted_dynamic": {"sort_by_length": False, "fixed_length": False},
        "naive_fixed_length": {"sort_by_length": False, "fixed_length": True},
    }
    for name, kw in variants.items():
        t0 = time.perf_counter()
        logits = predict_logits(model, tok, texts, args.batch_size, args.max_length, "cpu", tokenized=tokd, **kw)
        dt = time.perf_counter() - t0
        out[name] = {"seconds": round(dt, 2), "sentences_per_second": round(len(texts) / dt, 1)}
        if ref is None:
            ref = logits
        else:
            out[name]["max_abs_diff_vs_sorted"] = float(np.abs(logits - ref).max())
    base = out["naive_fixed_length"]["sentences_per_second"]
    report = {
        "bench": "teacher_logits",
        "teacher": teacher,
        "rows": len(texts),
        "mean_tokens": round(float(tokd.lengths.mean()), 1),
        "max_length": args.max_length,
        "batch_size": args.batch_size,
        "threads": args.threads,
        "tokenize_seconds": round(tok_s, 2),
        **out,
        "speedup_sorted_vs_naive": round(out["sorted_dynamic"]["sentences_per_second"] / base, 2),
        "loadavg_start": [round(x, 2) for x in load0],
        "loadavg_end": [round(x, 2) for x in os.getloadavg()],
    }
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
