"""BiLSTM (bpe vs1000 dim 25) on real SST-2 distilled from a fine-tuned teacher: dev accuracy at alpha 1 (labels
only), 0.5 and 0 (teacher logits only), without and with bootstrap data (thesis table 7.1 design).

    .venv/bin/python bench/bench_distill_teacher.py --teacher .cache/teachers/minilm-sst2 --train-n 3000

On a busy 2-core CPU the full 67k-sentence train split (plus ~15x bootstrap data, as in the thesis) is out of reach,
so by default the students train on a random slice of SST-2 train (--train-n, seed 0) with bootstrap data made
from that slice (embedding mode, vectors trained on the full SST-2 train text; N=20, p=0.4, K=15, --ratio of the
variants kept). Dev accuracy is on the full GLUE dev set (872). Teacher logits come from the soft-target store.
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
    ap.add_argument("--teacher", default=".cache/teachers/minilm-sst2")
    ap.add_argument("--data", default=None, help="GLUE data directory (default: $FEATHERWEIGHT_SHARED_DATA/glue)")
    ap.add_argument(
        "--bpemb-dir", default=None, help="BPEmb cache directory (default: $FEATHERWEIGHT_SHARED_DATA/bpemb)"
    )
    ap.add_argument("--train-n", type=int, default=3000, help="random rows of SST-2 train; 0 = all")
    ap.add_argument("--N", type=int, default=20, help="augmentation variants tried per sentence")
    ap.add_argument("--ratio", type=float, default=0.25, help="fraction of generated variants kept")
    ap.add_argument("--alphas", default="1,0.5,0")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-epochs", type=int, default=4)
    ap.add_argument("--patience", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--cache-dir", default=".cache/featherweight")
    ap.add_argument("--out", default=None, help="also write the JSON report here")
    args = ap.parse_args()
    args.data = data_path(args.data, "glue", "--data")
    args.bpemb_dir = data_path(args.bpemb_dir, "bpemb", "--bpemb-dir")

    import numpy as np
    import torch

    from featherweight_core.data.loading import load_task_data
    from featherweight_core.data.taskdata import TaskData
    from featherweight_core.data.tasks import get_task
    from featherweight_core.data.wordvectors import task_word_vectors
    from featherweight_core.pipeline.prepare import prepare
    from featherweight_core.pipeline.run import run_distillation, student_config_for
    from featherweight_core.students.distill import DistillConfig
    from featherweight_core.teacher.augment import AugmentConfig, augment_to_file, format_label_distribution
    from featherweight_core.teacher.loading import read_teacher_meta
    from featherweight_core.teacher.softtargets import SoftTargetStore

    torch.set_num_threads(args.threads)
    task = get_task("sst2")
    full = load_task_data(task, args.data)
    data = full
    if args.train_n:
        rows = np.sort(np.random.default_rng(0).choice(len(full.train), args.train_n, replace=False))
        data = TaskData(task, {**full.splits, "train": full.train.subset(rows)}, full.report, f"{full.source}[slice]")
    cache = Path(args.cache_dir)
    t0 = time.perf_counter()
    kv, _ = task_word_vectors(full, cache)  # vectors from all of SST-2 train: more text, better neighbours
    aug_path = cache / "bench" / f"sst2-{data.fingerprint()}-N{args.N}-r{args.ratio}.parquet"
    aug_report = augment_to_file(data, aug_path, AugmentConfig(n=args.N, ratio=args.ratio), vectors=kv)
    aug_s = time.perf_counter() - t0
    store = SoftTargetStore(cache / "softtargets", device="cpu")
    t0 = time.perf_counter()
    prepared = prepare(
        task,
        None,
        "bpe",
        25,
        1000,
        args.bpemb_dir,
        cache_dir=cache,
        task_data=data,
        teacher=args.teacher,
        bootstrap=aug_path,
        store=store,
    )
    prep_s = time.perf_counter() - t0
    teacher_dev = read_teacher_meta(args.teacher).get("metrics", {}).get("accuracy")
    train_agree = float((prepared.train.teacher_logits.argmax(-1) == prepared.train.labels).mean())
    results = []
    for boot in (False, True):
        for alpha in [float(a) for a in args.alphas.split(",")]:
            student = student_config_for(prepared, "bilstm")
            cfg = DistillConfig(alpha=alpha, max_epochs=args.max_epochs, patience=args.patience, seed=args.seed)
            t0 = time.perf_counter()
            r = run_distillation(prepared, student, cfg, train_split=prepared.train_split(boot))
            row = {
                "alpha": alpha,
                "bootstrap": boot,
                "train_examples": len(prepared.train_split(boot)),
                "dev_accuracy": round(r.train.metrics["accuracy"], 4),
                "best_epoch": r.train.best_epoch,
                "epochs": len(r.train.history),
                "seconds": round(time.perf_counter() - t0, 1),
            }
            results.append(row)
            print(json.dumps(row), file=sys.stderr, flush=True)
    report = {
        "bench": "distill_teacher_sst2",
        "teacher": args.teacher,
        "teacher_dev_accuracy": teacher_dev,
        "teacher_train_slice_agreement": round(train_agree, 4),
        "student": "bilstm bpe vs1000 d25 (table 6.1 defaults)",
        "train_slice": len(prepared.train),
        "bootstrap": {
            "N": args.N,
            "p": 0.4,
            "K": 15,
            "ratio": args.ratio,
            "rows": len(prepared.bootstrap),
            "augment_seconds": round(aug_s, 1),
        },
        "label_distribution": format_label_distribution(
            task.label_names,
            {
                "original (gold)": prepared.train.labels,
                "augmented (source label)": aug_report.augmented_source_labels,
                "augmented (teacher argmax)": prepared.bootstrap.labels,
            },
        ),
        "prepare_seconds": round(prep_s, 1),
        "teacher_model_runs": store.model_runs,
        "max_epochs": args.max_epochs,
        "patience": args.patience,
        "seed": args.seed,
        "threads": args.threads,
        "results": results,
        "loadavg_end": [round(x, 2) for x in os.getloadavg()],
    }
    text = json.dumps(report, indent=2)
    print(text)
    print(report["label_distribution"])
    if args.out:
        Path(args.out).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
