"""Fine-tune the MiniLM teacher (all-MiniLM-L6-v2) on real SST-2 on CPU and print dev accuracy and time.

    # once, online: save sentence-transformers/all-MiniLM-L6-v2 (model and tokenizer) with save_pretrained
    # into .cache/minilm
    .venv/bin/python bench/bench_teacher_finetune.py --model .cache/minilm --output .cache/teachers/minilm-sst2

Not a pass/fail test: it prints the figures (dev accuracy, seconds, examples/s) and the machine load.
Target from the issue: >= 88% dev accuracy within one epoch.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from _util import data_path  # noqa: E402 (bench/ is on sys.path when a script runs)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=".cache/minilm")
    ap.add_argument("--data", default=None, help="GLUE data directory (default: $FEATHERWEIGHT_SHARED_DATA/glue)")
    ap.add_argument("--output", default=".cache/teachers/minilm-sst2")
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--lr", type=float, default=5e-5)
    ap.add_argument("--max-length", type=int, default=64)
    ap.add_argument("--max-train", type=int, default=None, help="train on a random slice (default: all 67,349)")
    ap.add_argument("--eval-every", type=int, default=500)
    ap.add_argument(
        "--threads",
        type=int,
        default=1,
        help="1 (default): on a 2-core CPU that also runs other work, 2 threads oversubscribe badly",
    )
    args = ap.parse_args()
    args.data = data_path(args.data, "glue", "--data")

    import torch

    from featherweight_core.data.loading import load_task_data
    from featherweight_core.data.tasks import get_task
    from featherweight_core.teacher.config import TeacherConfig
    from featherweight_core.teacher.finetune import finetune_teacher

    torch.set_num_threads(args.threads)
    task_data = load_task_data(get_task("sst2"), args.data)
    cfg = TeacherConfig(
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        max_length=args.max_length,
        device="cpu",
        max_train_examples=args.max_train,
        eval_every=args.eval_every,
    )
    load0 = os.getloadavg()
    t0 = time.perf_counter()
    metrics = finetune_teacher(args.model, task_data, args.output, cfg, progress=sys.stderr.isatty(), overwrite=True)
    wall = time.perf_counter() - t0
    load1 = os.getloadavg()
    n = metrics["train_examples"] * args.epochs
    report = {
        "bench": "teacher_finetune",
        "model": args.model,
        "dev_accuracy": round(metrics["accuracy"], 4),
        "train_seconds": metrics["train_seconds"],
        "wall_seconds": round(wall, 1),
        "train_examples_per_second": round(n / metrics["train_seconds"], 1),
        "config": cfg.to_dict(),
        "threads": args.threads,
        "cpu": f"{os.cpu_count()} cores, {platform.processor() or platform.machine()}",
        "loadavg_start": [round(x, 2) for x in load0],
        "loadavg_end": [round(x, 2) for x in load1],
    }
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
