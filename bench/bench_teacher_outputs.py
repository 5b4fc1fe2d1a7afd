"""A teacher you cannot run, on real SST-2: the same students taught by the teacher's own logits (keyed by example)
and by a file of its outputs keyed by text (probabilities, as an LLM's answers would come), and by its hard labels
only (the argmax of the same outputs): what the file route costs (nothing, within seed noise) and what soft targets
are worth over hard labels, in points.

    FEATHERWEIGHT_SHARED_DATA=DIR .venv/bin/python bench/bench_teacher_outputs.py --train-n 5000 --seeds 0,1

The teacher's outputs are MiniLM's soft targets for SST-2 (``teacher/minilm-sst2/sst2-{train,dev}-logits.parquet``
under the data directory), converted here to a JSON-lines file of ``{"sentence", "probs"}`` rows (and one of
``{"sentence", "label"}`` rows) for the train slice and dev, standing in for an LLM's answers. The students train on
a random slice of SST-2 train (--train-n, seed 0) and are scored on the full dev set (872). Also printed: how fast
the outputs file is read and matched, and the teacher's dev accuracy computed from the file.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from _util import data_path, load_average  # noqa: E402 (bench/ is on sys.path when a script runs)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=None, help="GLUE data directory (default: $FEATHERWEIGHT_SHARED_DATA/glue)")
    ap.add_argument("--logits", default=None, help="directory of the teacher's sst2-{train,dev}-logits.parquet")
    ap.add_argument(
        "--bpemb-dir", default=None, help="BPEmb cache directory (default: $FEATHERWEIGHT_SHARED_DATA/bpemb)"
    )
    ap.add_argument("--train-n", type=int, default=5000, help="random rows of SST-2 train; 0 = all")
    ap.add_argument("--arch", default="ffn")
    ap.add_argument("--alpha", type=float, default=0.0, help="weight of the label loss (0: the teacher alone)")
    ap.add_argument("--seeds", default="0,1")
    ap.add_argument("--max-epochs", type=int, default=4)
    ap.add_argument("--cache-dir", default=".cache/featherweight")
    args = ap.parse_args()
    args.data = data_path(args.data, "glue", "--data")
    args.logits = data_path(args.logits, "teacher/minilm-sst2", "--logits")
    args.bpemb_dir = data_path(args.bpemb_dir, "bpemb", "--bpemb-dir")

    import numpy as np
    import torch

    from featherweight_core.data.loading import load_task_data
    from featherweight_core.data.taskdata import TaskData
    from featherweight_core.data.tasks import get_task
    from featherweight_core.pipeline.prepare import load_teacher_logits, prepare
    from featherweight_core.pipeline.run import run_distillation, student_config_for
    from featherweight_core.students.distill import DistillConfig
    from featherweight_core.teacher.outputs import read_teacher_outputs

    torch.set_num_threads(1)
    task = get_task("sst2")
    full = load_task_data(task, args.data)
    data = full
    if args.train_n:
        rows = np.sort(np.random.default_rng(0).choice(len(full.train), args.train_n, replace=False))
        data = TaskData(task, {**full.splits, "train": full.train.subset(rows)}, full.report, f"{full.source}[slice]")
    tmp = Path(tempfile.mkdtemp(prefix="fw-outputs-"))
    files = {"probs": tmp / "llm-probs.jsonl", "label": tmp / "llm-labels.jsonl"}
    with files["probs"].open("w") as fp, files["label"].open("w") as fl:
        for split, name in (("train", "train"), ("validation", "dev")):
            keys, logits = load_teacher_logits(args.logits / f"sst2-{name}-logits.parquet")
            index = {k: i for i, k in enumerate(keys)}
            sp = data.splits[split]
            z = logits[[index[k] for k in sp.keys]].astype(np.float64)
            probs = np.exp(z - z.max(1, keepdims=True))
            probs /= probs.sum(1, keepdims=True)
            for (text,), p in zip(sp.texts, probs, strict=True):
                fp.write(json.dumps({"sentence": text, "probs": [round(float(x), 6) for x in p]}) + "\n")
                fl.write(json.dumps({"sentence": text, "label": task.label_names[int(p.argmax())]}) + "\n")
    t0 = time.perf_counter()
    outputs = {k: read_teacher_outputs(f, task) for k, f in files.items()}
    read_s = time.perf_counter() - t0
    n_rows = sum(o.rows_read for o in outputs.values())
    teacher_dev = outputs["probs"].dev_metrics(data)
    print(
        f"read and checked {n_rows:,} rows of teacher outputs in {read_s:.2f} s ({n_rows / read_s:,.0f} rows/s);"
        f" teacher dev accuracy from the file {teacher_dev['accuracy']:.4f}; load {load_average()}",
        file=sys.stderr,
    )
    common = {"cache_dir": args.cache_dir, "task_data": data}
    prepared = {
        "logits (by key)": prepare(
            task, None, "bpe", 25, 1000, args.bpemb_dir, args.logits / "sst2-train-logits.parquet", **common
        ),
        "probs file (by text)": prepare(
            task, None, "bpe", 25, 1000, args.bpemb_dir, teacher_outputs=outputs["probs"], **common
        ),
        "hard labels file": prepare(
            task, None, "bpe", 25, 1000, args.bpemb_dir, teacher_outputs=outputs["label"], **common
        ),
    }
    seeds = [int(s) for s in args.seeds.split(",")]
    scores: dict[str, list[float]] = {}
    for name, p in prepared.items():
        for seed in seeds:
            cfg = DistillConfig(
                alpha=args.alpha, max_epochs=args.max_epochs, patience=2, seed=seed, optimizer="adam", lr=3e-3
            )
            r = run_distillation(p, student_config_for(p, args.arch), cfg)
            scores.setdefault(name, []).append(r.train.metrics["accuracy"])
            print(f"{name:22s} seed {seed}: dev accuracy {scores[name][-1]:.4f}", file=sys.stderr, flush=True)
    print(
        f"\nSST-2, {args.arch} bpe vs1000 d25, alpha {args.alpha}, {len(data.train):,} train rows,"
        f" {args.max_epochs} epochs, seeds {seeds}"
    )
    print(f"{'teacher':24s}" + "".join(f"seed {s:<8d}" for s in seeds) + "mean")
    for name, v in scores.items():
        print(f"{name:24s}" + "".join(f"{x:<13.4f}" for x in v) + f"{statistics.mean(v):.4f}")
    base = statistics.mean(scores["logits (by key)"])
    print(
        f"file vs logits: {100 * (statistics.mean(scores['probs file (by text)']) - base):+.2f} points;"
        f" soft targets vs hard labels: "
        f"{100 * (statistics.mean(scores['probs file (by text)']) - statistics.mean(scores['hard labels file'])):+.2f}"
        " points"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
