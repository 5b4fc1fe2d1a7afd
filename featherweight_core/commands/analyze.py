"""``featherweight analyze``: size analysis of a student configuration without training (thesis appendix C.5)."""

from __future__ import annotations

import argparse
import json

from featherweight_core import vocab


def add_parser(sub) -> None:
    p = sub.add_parser("analyze", help="parameter counts and sizes of a student configuration (no training)",
                       description=__doc__)  # fmt: skip
    p.add_argument("--task", required=True, help="task name (decides classes and single/pair)")
    p.add_argument("--arch", required=True, choices=vocab.ARCHS)
    p.add_argument("--embedding", required=True, choices=vocab.EMBEDDINGS)
    p.add_argument("--dim", required=True, type=int)
    p.add_argument(
        "--vocab-size", type=int, default=None, help=f"BPE vocabulary / hash K (default {vocab.DEFAULT_VOCAB_SIZE})"
    )
    p.add_argument("--bpemb-dir", default=None,
                   help="accepted for symmetry with distill; sizes do not need the BPEmb files")  # fmt: skip
    p.add_argument("--pooling", choices=vocab.POOLINGS, default="last")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from featherweight_core.measure import size_report
    from featherweight_core.students import StudentConfig, build_student
    from featherweight_core.tasks import get_task

    task = get_task(args.task)
    cfg = StudentConfig(args.arch, args.embedding, args.dim, task.num_labels, pair=task.pair,
                        vocab_size=args.vocab_size, pooling=args.pooling).resolved()  # fmt: skip
    report = {"task": task.name, "config": cfg.to_dict(), **size_report(build_student(cfg))}
    if args.json:
        print(json.dumps(report))
        return 0
    p = report["params"]
    print(f"{task.name}  {cfg.arch} {cfg.embedding} d{cfg.emb_dim} vocab {cfg.vocab_size}")
    for k in ("total", "embedding", "encoder", "classifier", "nonzero"):
        print(f"  params {k:<11}{p[k]:>12,}")
    print(f"  disk bytes        {report['disk_bytes']:>12,}")
    print(f"  gzip bytes        {report['gzip_bytes']:>12,}")
    return 0
