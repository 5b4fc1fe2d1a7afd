"""Compression benchmark on real students: prints figures, not pass/fail.

For each parent checkpoint (e.g. SST-2 BiLSTM bpe vs1000 d25, FFN hash d25 from ``featherweight distill``):

- float baseline: dev accuracy, disk / gzip / ideal bytes;
- ``q``: quantization alone (all groups, dynamic classifier) and with a static classifier;
- hash students with ``--importance-bits 8 6 4``: ``q-imp8``, ``q-imp6``, ... = ``q`` with the importance scalars
  as 8-, 6-, 4-bit codes instead of float16;
- ``p``: table 6.3 top-v pruning (post-training, local);  ``p+q``: both;
- ratios of gzip bytes to the float gzip bytes, accuracy drops in points;
- latency (batch 1, median ms) and throughput (batch 256, examples/s), float vs ``q`` / ``q-impN`` / ``p+q``;
- BiLSTM only: movement vs magnitude pruning at equal encoder sparsity (default 50% and 80%; embedding and
  classifier left dense): one-shot magnitude, gradual magnitude and movement with the same fine-tuning budget.

Usage::

    .venv/bin/python bench/bench_compress.py --parent /tmp/bilstm/student.pt --parent /tmp/ffn/student.pt \\
        --data data/glue --bpemb-dir data/bpemb --out /tmp/bench_compress.json

FFN only (no movement pruning, which runs only for recurrent students)::

    .venv/bin/python bench/bench_compress.py --parent /tmp/ffn/student.pt --data data/glue \\
        --bpemb-dir data/bpemb --importance-bits 8 6 4 --out /tmp/bench_compress_ffn.json

Runs single-threaded (``torch.set_num_threads(1)``); note ``uptime`` load with the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def _uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, timeout=5).stdout.strip()
    except Exception:  # noqa: BLE001 - informational only
        return "?"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--parent", action="append", required=True, help="student.pt from featherweight distill")
    ap.add_argument("--data", default=None, help="GLUE dir (default: the task's default source)")
    ap.add_argument("--bpemb-dir", default=None)
    ap.add_argument("--cache-dir", default=None)
    ap.add_argument("--prune-epochs", type=int, default=2, help="fine-tuning epochs for gradual / movement")
    ap.add_argument("--encoder-sparsity", type=float, nargs="*", default=[0.5, 0.8])
    ap.add_argument("--skip-movement", action="store_true")
    ap.add_argument("--train-limit", type=int, default=None, help="use only the first N training rows")
    ap.add_argument(
        "--importance-bits",
        type=int,
        nargs="*",
        default=[],
        metavar="BITS",
        help="hash students: also quantize with the importance scalars as BITS-bit codes (2..8; variants q-impBITS)",
    )
    ap.add_argument("--out", default=None, help="write all figures as JSON here")
    args = ap.parse_args(argv)
    bad = [b for b in args.importance_bits if not 2 <= b <= 8]
    if bad:
        ap.error(f"--importance-bits: {bad[0]} is not in 2..8 (16 is the plain q variant)")

    import numpy as np
    import torch

    from featherweight_core.data.tasks import get_task
    from featherweight_core.pipeline.checkpoint import load_checkpoint
    from featherweight_core.pipeline.compress import PruneConfig, QuantConfig, compress_student, measure_sizes
    from featherweight_core.pipeline.prepare import DEFAULT_CACHE_DIR, prepare
    from featherweight_core.students.distill import DistillConfig, evaluate
    from featherweight_core.students.measure import inference_speed

    torch.set_num_threads(1)
    report: dict = {
        "machine": f"{platform.machine()} {os.cpu_count()} cpus, torch {torch.__version__}",
        "uptime_start": _uptime(),
        "parents": [],
    }
    print(f"# machine: {report['machine']}; threads 1; {report['uptime_start']}")
    for ckpt in args.parent:
        model, cfg, meta = load_checkpoint(ckpt)
        cfg = cfg.resolved()
        task = get_task(meta.get("task", "sst2"))
        prepared = prepare(
            task,
            args.data,
            cfg.embedding,
            cfg.emb_dim,
            cfg.vocab_size,
            args.bpemb_dir,
            None,
            args.cache_dir or DEFAULT_CACHE_DIR,
        )
        train = prepared.train
        if args.train_limit:
            train = train.take(np.arange(min(args.train_limit, len(train))))
        dev = prepared.evals[next(iter(prepared.evals))]
        dist = meta.get("distill") or {}
        dcfg = DistillConfig(
            alpha=1.0,
            temperature=dist.get("temperature"),
            seed=dist.get("seed", 0),
            optimizer=dist.get("optimizer"),
            lr=dist.get("lr"),
        )
        name = f"{cfg.arch}-{cfg.embedding}{cfg.emb_dim}"
        print(f"\n## {name}  ({ckpt}; train {len(train)}, dev {len(dev)})")
        float_metrics = evaluate(model, prepared.evals, task)
        float_sizes = measure_sizes(model)
        rows = [
            {
                "variant": "float",
                "prune": "none",
                "quant": "none",
                "accuracy": float_metrics["accuracy"],
                **{k: float_sizes[k] for k in ("disk_bytes", "gzip_bytes", "ideal_bytes", "nonzero_params")},
                "seconds": 0.0,
            }
        ]
        models = {"float": model}
        variants = [
            ("q", None, QuantConfig()),
            ("q-static-cls", None, QuantConfig(static_classifier=True)),
            ("p", PruneConfig(method="topv"), None),
            ("p+q", PruneConfig(method="topv"), QuantConfig()),
        ]
        if cfg.embedding == "hash":
            variants[1:1] = [(f"q-imp{b}", None, QuantConfig(importance_bits=b)) for b in args.importance_bits]
        for label, p, q in variants:
            res = compress_student(model, cfg, p, q, train, prepared.evals, task, dcfg)
            models[label] = res.model
            d = res.describe()
            rows.append(
                {
                    "variant": label,
                    "prune": d["prune"],
                    "quant": d["quant"],
                    "accuracy": res.metrics["accuracy"],
                    **{k: res.sizes[k] for k in ("disk_bytes", "gzip_bytes", "ideal_bytes", "nonzero_params")},
                    "sparsity": res.sparsity["overall"],
                    "seconds": res.seconds,
                }
            )
        base = rows[0]
        print(
            f"{'variant':<14}{'acc':>7}{'drop':>7}{'disk':>10}{'gzip':>10}{'gz ratio':>9}{'ideal':>10}"
            f"{'sparsity':>9}  labels"
        )
        for r in rows:
            r["drop_points"] = 100 * (base["accuracy"] - r["accuracy"])
            r["gzip_ratio"] = r["gzip_bytes"] / base["gzip_bytes"]
            print(
                f"{r['variant']:<14}{100 * r['accuracy']:>7.2f}{r['drop_points']:>7.2f}{r['disk_bytes']:>10,}"
                f"{r['gzip_bytes']:>10,}{r['gzip_ratio']:>9.3f}{r['ideal_bytes']:>10,}"
                f"{r.get('sparsity', 0.0):>9.3f}  {r['prune']} | {r['quant']}"
            )

        speed = {}
        for label in ("float", "q", *(f"q-imp{b}" for b in args.importance_bits if f"q-imp{b}" in models), "p+q"):
            lat = inference_speed(models[label], dev, 1, max_batches=300, min_seconds=2.0)
            thr = inference_speed(models[label], dev, 256, min_seconds=2.0)
            speed[label] = {"latency_ms": lat["ms_per_batch"], "throughput": thr["examples_per_second"]}
        print(f"{'speed':<14}{'b1 ms':>9}{'x':>7}{'b256 ex/s':>12}{'x':>7}")
        for label, s in speed.items():
            s["latency_speedup"] = speed["float"]["latency_ms"] / s["latency_ms"]
            s["throughput_speedup"] = s["throughput"] / speed["float"]["throughput"]
            print(
                f"{label:<14}{s['latency_ms']:>9.3f}{s['latency_speedup']:>7.2f}{s['throughput']:>12.0f}"
                f"{s['throughput_speedup']:>7.2f}"
            )

        movement = []
        if cfg.arch in ("bilstm", "rnn") and not args.skip_movement:
            print(f"{'encoder sparsity':<17}{'method':<26}{'acc':>7}{'enc sparsity':>13}{'seconds':>9}")
            for s in args.encoder_sparsity:
                targets = {"encoder": s, "embedding": 0.0, "classifier": 0.0}
                for label, pc in (
                    ("magnitude one-shot", PruneConfig(method="magnitude", targets=targets)),
                    (
                        "magnitude gradual",
                        PruneConfig(method="magnitude", targets=targets, schedule="gradual", epochs=args.prune_epochs),
                    ),
                    ("movement", PruneConfig(method="movement", targets=targets, epochs=args.prune_epochs)),
                ):
                    t0 = time.perf_counter()
                    res = compress_student(model, cfg, pc, None, train, prepared.evals, task, dcfg)
                    rec = {
                        "target": s,
                        "method": label,
                        "label": res.describe()["prune"],
                        "accuracy": res.metrics["accuracy"],
                        "encoder_sparsity": res.sparsity["encoder"],
                        "seconds": time.perf_counter() - t0,
                    }
                    movement.append(rec)
                    print(
                        f"{s:<17}{label:<26}{100 * rec['accuracy']:>7.2f}{rec['encoder_sparsity']:>13.3f}"
                        f"{rec['seconds']:>9.1f}",
                        flush=True,
                    )
        report["parents"].append(
            {"name": name, "checkpoint": str(ckpt), "rows": rows, "speed": speed, "movement_vs_magnitude": movement}
        )
    report["uptime_end"] = _uptime()
    print(f"\n# {report['uptime_end']}")
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
