"""Real SST-2 dev accuracy without a teacher (alpha=1), one seed, thesis table 6.1 defaults unless overridden.

Targets: BiLSTM bpe (vs1000, d25) >= 80 %, FFN hash d25 >= 72 %. Thesis table 7.1 ("No distill",
vocab 5000, mean of four seeds): BiLSTM bpe25 82.9, BiLSTM hash25 78.5, RNN bpe25 79.9, RNN hash25 75.0,
FFN bpe25 81.3, FFN hash25* (K=2500) 74.8, BiLSTM char100 72.9, RNN char100 79.1, FFN char100 59.5.

Epochs are capped (``--max-epochs``) to keep the run affordable on a 2-core CPU; the per-epoch dev
accuracy is printed so a reader can see whether a run was still improving when the cap hit.

    .venv/bin/python bench/bench_quality.py --data data/glue --bpemb-dir data/bpemb
    export FEATHERWEIGHT_SHARED_DATA=data   # or pass --data / --bpemb-dir to each run
    .venv/bin/python bench/bench_quality.py --only bilstm:bpe ffn:hash --max-epochs 10
    .venv/bin/python bench/bench_quality.py --only ffn:hash --set lr=1e-3   # try a non-default setting
"""

from __future__ import annotations

import argparse
import json
import os
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import torch  # noqa: E402
from _util import data_path, load_average  # noqa: E402

from featherweight_core.data.loading import load_task_data  # noqa: E402
from featherweight_core.data.tasks import get_task  # noqa: E402
from featherweight_core.pipeline.prepare import prepare  # noqa: E402
from featherweight_core.pipeline.run import run_distillation, student_config_for  # noqa: E402
from featherweight_core.students.distill import DistillConfig  # noqa: E402

EMBEDDINGS = {"bpe": (25, 1000), "hash": (25, 5000), "char": (100, None)}
TARGETS = {("bilstm", "bpe"): 0.80, ("ffn", "hash"): 0.72}
THESIS = {
    ("bilstm", "bpe"): 82.9,
    ("bilstm", "hash"): 78.5,
    ("bilstm", "char"): 72.9,
    ("rnn", "bpe"): 79.9,
    ("rnn", "hash"): 75.0,
    ("rnn", "char"): 79.1,
    ("ffn", "bpe"): 81.3,
    ("ffn", "hash"): 74.8,
    ("ffn", "char"): 59.5,
}
STUDENT_KEYS = {"hidden", "classifier_hidden", "dropout", "pooling"}


def parse_set(items: list[str]) -> dict:
    out = {}
    for item in items:
        key, _, value = item.partition("=")
        try:
            out[key] = int(value)
        except ValueError:
            try:
                out[key] = float(value)
            except ValueError:
                out[key] = None if value == "none" else value
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=None, help="GLUE root (default $FEATHERWEIGHT_SHARED_DATA/glue)")
    ap.add_argument("--bpemb-dir", default=None, help="default $FEATHERWEIGHT_SHARED_DATA/bpemb")
    ap.add_argument("--only", nargs="*", default=None, help="arch:embedding pairs (default: all nine)")
    ap.add_argument("--max-epochs", type=int, default=10)
    ap.add_argument("--patience", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--set", nargs="*", default=[], help="overrides, e.g. lr=1e-3 optimizer=adam dropout=0.2")
    ap.add_argument("--json", default=None, help="append one JSON line per run to this file")
    args = ap.parse_args()
    args.data = data_path(args.data, "glue", "--data")
    args.bpemb_dir = data_path(args.bpemb_dir, "bpemb", "--bpemb-dir")
    torch.set_num_threads(args.threads)
    task = get_task("sst2")
    task_data = load_task_data(task, args.data)
    configs = [(a, e) for a in ("bilstm", "rnn", "ffn") for e in EMBEDDINGS]
    if args.only:
        configs = [tuple(x.split(":")) for x in args.only]
    overrides = parse_set(args.set)
    student_over = {k: v for k, v in overrides.items() if k in STUDENT_KEYS}
    distill_over = {k: v for k, v in overrides.items() if k not in STUDENT_KEYS}
    print(
        f"SST-2 train {len(task_data.train)}, dev {len(task_data.splits['validation'])}; alpha=1, seed {args.seed},"
        f" max {args.max_epochs} epochs, patience {args.patience}, {args.threads} thread(s); overrides {overrides}"
    )
    rows = []
    prepared = {}
    for arch, emb in configs:
        dim, vocab = EMBEDDINGS[emb]
        if emb not in prepared:
            prepared[emb] = prepare(
                task,
                embedding=emb,
                emb_dim=dim,
                vocab_size=vocab,
                bpemb_dir=args.bpemb_dir,
                cache_dir=None,
                task_data=task_data,
            )
        p = prepared[emb]
        student = student_config_for(p, arch, **student_over)
        cfg = DistillConfig(max_epochs=args.max_epochs, patience=args.patience, seed=args.seed, **distill_over)
        print(f"\n{arch} {emb} d{dim} vocab {vocab}: {cfg.resolved(arch, False)}  load {load_average()}", flush=True)

        def on_epoch(r):
            print(
                f"  epoch {r.epoch:2d} loss {r.train_loss:.4f} dev {r.score:.4f}"
                f" ({r.seconds:.0f}s, {r.samples_per_second:,.0f} samples/s, load {load_average()})",
                flush=True,
            )

        t0 = time.perf_counter()
        result = run_distillation(p, student, cfg, on_epoch=on_epoch)
        acc = result.train.metrics["accuracy"]
        row = {
            "arch": arch,
            "embedding": emb,
            "dim": dim,
            "vocab": vocab,
            "dev_accuracy": acc,
            "best_epoch": result.train.best_epoch,
            "epochs": len(result.train.history),
            "seconds": round(time.perf_counter() - t0, 1),
            "params": result.sizes["params"]["total"],
            "overrides": overrides,
            "load": load_average(),
        }
        rows.append(row)
        target = TARGETS.get((arch, emb))
        verdict = "" if target is None else (" target met" if acc >= target else f" BELOW target {target:.0%}")
        print(
            f"=> {arch} {emb}: dev accuracy {acc:.4f} (best epoch {row['best_epoch']}/{row['epochs']},"
            f" {row['seconds']:.0f}s; thesis {THESIS.get((arch, emb))}){verdict}",
            flush=True,
        )
        if args.json:
            with open(args.json, "a") as f:
                f.write(json.dumps(row) + "\n")
    print(f"\n{'arch':<7}{'emb':<6}{'dim':>4}{'params':>9}{'dev acc':>9}{'thesis':>8}{'epochs':>8}")
    for r in rows:
        th = THESIS.get((r["arch"], r["embedding"]))
        print(
            f"{r['arch']:<7}{r['embedding']:<6}{r['dim']:>4}{r['params']:>9,}{100 * r['dev_accuracy']:>8.1f}%"
            f"{th:>7}%{r['best_epoch']:>4}/{r['epochs']}"
        )


if __name__ == "__main__":
    main()
